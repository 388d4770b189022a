"""
Tests for L{msnp.preamble}: the C{VER}/C{CVR}/C{USR SSO I} conversation on
the first server(s) of a login, over L{StringTransport} with a L{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from msnp.preamble import (
    DEFAULT_NS_PORT,
    PreambleProtocol,
    NSRedirect,
    SSOChallenge,
    parseTransferAddress,
)
from msnp.endpoints import ClientIdentity
from msnp.errors import (
    ConnectionLost,
    ProtocolError,
    RequestTimeout,
    ServerError,
    UnsupportedProtocol,
)

ACCOUNT = "test@live.cn"
NONCE = "BuQMZCPqK0R6/J68yErhdzd6pBQqpT6HtpiPksRo9jRPbY2is7ADeWLBK6P+BCuM"
SEED_IDENTITY = ClientIdentity(localeId="0x0804", osType="winnt", osVersion="5.1", architecture="i386")


def connect(identity: ClientIdentity = SEED_IDENTITY, timeout: float = 30.0) -> tuple[PreambleProtocol, StringTransportWithDisconnection, Clock]:
    clock = Clock()
    protocol = PreambleProtocol(ACCOUNT, identity, clock=clock, requestTimeout=timeout)
    transport = StringTransportWithDisconnection()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, transport, clock


def take(transport: StringTransportWithDisconnection) -> bytes:
    data = transport.value()
    transport.clear()
    return bytes(data)


class NegotiationTests(SynchronousTestCase):
    """
    The whole negotiation, line by line, as the seed capture shows it.
    """

    def test_seedLines(self) -> None:
        """
        The client sends exactly WLM 2009's lines: C{VER 1 MSNP18 MSNP17
        CVR0}, then C{CVR 2 ...} and C{USR 3 SSO I ...} back to back.
        """
        protocol, transport, _ = connect()
        d = protocol.negotiate()
        self.assertEqual(take(transport), b"VER 1 MSNP18 MSNP17 CVR0\r\n")
        protocol.dataReceived(b"VER 1 MSNP18\r\n")
        self.assertEqual(
            take(transport),
            b"CVR 2 0x0804 winnt 5.1 i386 MSNMSGR 14.0.8089.0726 msmsgs test@live.cn\r\n"
            b"USR 3 SSO I test@live.cn\r\n",
        )
        self.assertNoResult(d)
        self.assertEqual(protocol.version, "MSNP18")

    def test_redirect(self) -> None:
        """
        C{XFR 3 NS host:port U D} (after the C{CVR} reply) gives an
        L{NSRedirect} with that host and port.
        """
        protocol, transport, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\n")
        protocol.dataReceived(
            b"CVR 2 14.0.8089 14.0.8089 14.0.8089 http://x.invalid/a.exe http://x.invalid\r\n"
            b"XFR 3 NS 207.46.124.241:1863 U D\r\n"
        )
        self.assertEqual(self.successResultOf(d), NSRedirect("207.46.124.241", 1863))

    def test_redirectWithoutPort(self) -> None:
        """
        An C{XFR NS} address without a port means port 1863.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\nXFR 3 NS ns.example.com U D\r\n")
        self.assertEqual(self.successResultOf(d), NSRedirect("ns.example.com", DEFAULT_NS_PORT))

    def test_oldRedirectForm(self) -> None:
        """
        The pre-MSNP13 form C{XFR trid NS host:port 0 current:port} is read
        by its address token only.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\nXFR 3 NS 10.0.0.1:1864 0 10.0.0.2:1863\r\n")
        self.assertEqual(self.successResultOf(d), NSRedirect("10.0.0.1", 1864))

    def test_challengeOnSameConnection(self) -> None:
        """
        A server that is also the NS answers C{USR SSO I} with the SSO
        challenge; the result is an L{SSOChallenge}, and a C{GCF} pushed on
        the way is kept.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\n")
        protocol.dataReceived(b"GCF 0 10\r\n<Policies>")
        protocol.dataReceived(b"USR 3 SSO S MBI_KEY_OLD " + NONCE.encode() + b"\r\n")
        self.assertEqual(self.successResultOf(d), SSOChallenge("MBI_KEY_OLD", NONCE))
        self.assertEqual(protocol.policy, b"<Policies>")

    def test_restartOnSameConnection(self) -> None:
        """
        C{XFR trid NS 0} means "start over here": the client sends C{VER}
        again on the same connection, with the TrIDs continuing.
        """
        protocol, transport, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\nXFR 3 NS 0 U D\r\n")
        self.assertNoResult(d)
        self.assertTrue(take(transport).endswith(b"VER 4 MSNP18 MSNP17 CVR0\r\n"))
        protocol.dataReceived(b"VER 4 MSNP18\r\nCVR 5 1 1 1 a b\r\nUSR 6 SSO S MBI_KEY_OLD abc\r\n")
        self.assertEqual(self.successResultOf(d), SSOChallenge("MBI_KEY_OLD", "abc"))

    def test_endlessRestartsRefused(self) -> None:
        """
        A server that keeps saying "start over" is given up on with a
        L{ProtocolError}.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        trid = 1
        for _ in range(10):
            protocol.dataReceived(
                f"VER {trid} MSNP18\r\nCVR {trid + 1} 1 1 1 a b\r\nXFR {trid + 2} NS 0\r\n".encode()
            )
            trid += 3
        self.failureResultOf(d, ProtocolError)


class VersionTests(SynchronousTestCase):
    """
    The version negotiation's failure cases (reference 2.2, 7.2).
    """

    def test_versionZero(self) -> None:
        """
        C{VER trid 0} fails with L{UnsupportedProtocol} naming the problem.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 0\r\n")
        failure = self.failureResultOf(d, UnsupportedProtocol)
        self.assertIn("no common protocol version", str(failure.value))

    def test_noVersionToken(self) -> None:
        """
        A C{VER} reply with no C{MSNPnn} token at all is unsupported too.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 CVR0\r\n")
        self.failureResultOf(d, UnsupportedProtocol)

    def test_versionNotOffered(self) -> None:
        """
        A server choosing a version the client never offered is a
        L{ProtocolError}.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP21\r\n")
        failure = self.failureResultOf(d, ProtocolError)
        self.assertNotIsInstance(failure.value, UnsupportedProtocol)

    def test_oldServerEchoesCVR0(self) -> None:
        """
        Old servers answer C{VER 1 MSNP18 CVR0}; the version is still found.
        """
        protocol, _, _ = connect()
        protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP17 CVR0\r\n")
        self.assertEqual(protocol.version, "MSNP17")

    def test_configuredVersions(self) -> None:
        """
        The offered list comes from L{ClientIdentity.protocolVersions}.
        """
        protocol, transport, _ = connect(SEED_IDENTITY.replace(protocolVersions=("MSNP18",)))
        protocol.negotiate()
        self.assertEqual(take(transport), b"VER 1 MSNP18 CVR0\r\n")


class FailureTests(SynchronousTestCase):
    """
    Errors, silence and hang-ups during the negotiation.
    """

    def setUp(self) -> None:
        self.errors: list[Any] = []
        from twisted.logger import globalLogPublisher

        def observe(event: dict[str, Any]) -> None:
            if event.get("isError") or "log_failure" in event:
                self.errors.append(event)

        globalLogPublisher.addObserver(observe)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, observe)  # type: ignore[arg-type]

    def test_cvrError(self) -> None:
        """
        A numeric reply to C{CVR} (710) fails the negotiation with a
        L{ServerError}, and the C{USR} sent with it is abandoned cleanly.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\n710 2\r\n")
        failure = self.failureResultOf(d, ServerError)
        self.assertEqual(failure.value.code, 710)
        self.assertEqual(protocol.pendingCount, 0)
        self.assertEqual(self.errors, [])

    def test_usrError(self) -> None:
        """
        A numeric reply to C{USR SSO I} (e.g. 601) is a L{ServerError}.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\n601 3\r\n")
        self.assertEqual(self.failureResultOf(d, ServerError).value.code, 601)

    def test_unexpectedUSR(self) -> None:
        """
        A C{USR} reply that is not the SSO challenge is a L{ProtocolError}.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\nUSR 3 OK test@live.cn 1 0\r\n")
        self.failureResultOf(d, ProtocolError)

    def test_silence(self) -> None:
        """
        A server that never answers C{VER} fails the request after the
        configured timeout on the injected clock.
        """
        protocol, _, clock = connect(timeout=5)
        d = protocol.negotiate()
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.failureResultOf(d, RequestTimeout)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_hangUp(self) -> None:
        """
        A hang-up in the middle fails with L{ConnectionLost}, and
        L{PreambleProtocol.whenLost} fires.
        """
        protocol, transport, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"VER 1 MSNP18\r\n")
        lost = protocol.whenLost()
        self.assertNoResult(lost)
        transport.loseConnection()
        self.failureResultOf(d, ConnectionLost)
        self.successResultOf(lost)
        self.assertEqual(self.errors, [])

    def test_closeAbort(self) -> None:
        """
        L{PreambleProtocol.close} with C{abort} drops the connection and
        fires once it is gone.
        """
        protocol, transport, _ = connect()
        d = protocol.close(abort=True)
        self.successResultOf(d)
        self.assertTrue(transport.disconnected)
        self.successResultOf(protocol.whenLost())

    def test_garbageIgnored(self) -> None:
        """
        A malformed line is logged and skipped; the negotiation goes on.
        """
        protocol, _, _ = connect()
        d = protocol.negotiate()
        protocol.dataReceived(b"\xff\xfe garbage\r\nVER 1 MSNP18\r\nCVR 2 1 1 1 a b\r\nXFR 3 NS 1.2.3.4:5\r\n")
        self.assertEqual(self.successResultOf(d), NSRedirect("1.2.3.4", 5))


class TransferAddressTests(SynchronousTestCase):
    """
    L{parseTransferAddress}.
    """

    def test_hostPort(self) -> None:
        """
        C{host:port} splits into both.
        """
        self.assertEqual(parseTransferAddress("127.0.0.1:4000"), NSRedirect("127.0.0.1", 4000))
        self.assertEqual(NSRedirect("127.0.0.1", 4000).address, "127.0.0.1:4000")

    def test_zero(self) -> None:
        """
        C{0} means "start over on this connection": L{None}.
        """
        self.assertIsNone(parseTransferAddress("0"))

    def test_ipv6(self) -> None:
        """
        A bracketed IPv6 address keeps its port; a bare one gets 1863.
        """
        self.assertEqual(parseTransferAddress("[::1]:1864"), NSRedirect("::1", 1864))
        self.assertEqual(parseTransferAddress("::1"), NSRedirect("::1", 1863))

    def test_badPorts(self) -> None:
        """
        Non-numeric or out-of-range ports and empty hosts are refused.
        """
        for token in ("host:http", "host:0", "host:70000", ":1863", "a/b:1"):
            self.assertRaises(ProtocolError, parseTransferAddress, token)



class CloseTests(SynchronousTestCase):
    """
    Closing never waits on the peer for long.
    """

    def test_stuckCloseIsAborted(self) -> None:
        """
        A clean close that does not complete (a peer that stopped reading
        keeps the unsent data, and so the connection, around) is turned into
        an abort after C{CLOSE_TIMEOUT} seconds on the protocol's clock, and
        the Deferred of L{PreambleProtocol.close} fires.
        """
        from twisted.internet.testing import StringTransport

        from msnp.protocol import CLOSE_TIMEOUT

        class StuckTransport(StringTransport):
            aborted = False

            def loseConnection(self) -> None:
                self.disconnecting = True

            def abortConnection(self) -> None:
                self.aborted = True
                protocol.connectionLost(Failure(ConnectionDone("aborted")))

        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        clock = Clock()
        protocol = PreambleProtocol("alice@example.com", SEED_IDENTITY, clock=clock)
        transport = StuckTransport()
        protocol.makeConnection(transport)
        closed: list[object] = []
        protocol.close().addBoth(closed.append)
        clock.advance(CLOSE_TIMEOUT - 0.1)
        self.assertEqual(closed, [])
        self.assertFalse(transport.aborted)
        clock.advance(0.1)
        self.assertTrue(transport.aborted)
        self.assertEqual(closed, [None])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cleanCloseCancelsTimer(self) -> None:
        """
        When the connection closes in time, no abort timer is left behind.
        """
        protocol, transport, clock = connect()
        closed: list[object] = []
        protocol.close().addBoth(closed.append)
        self.assertEqual(closed, [None])
        self.assertEqual(clock.getDelayedCalls(), [])
