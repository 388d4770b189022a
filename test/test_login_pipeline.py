"""
The pipelined end of L{msnp.client.MSNClient.login}, in memory: the NS is
a C{StringTransport} answered line by line from the test, the HTTP
services are a L{msnp.server.LocalNetwork}'s resources behind
L{treq.testing.StubTreq} on a L{Clock} (no socket, no wall-clock wait).

After C{USR OK} the client writes C{BLP}, every initial C{ADL}, C{PRP},
both C{UUX} and C{CHG} back to back before any of their replies, and a
numeric reply to any one of them fails the login with that code.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.client import MSNClient
from msnp.endpoints import Endpoints
from msnp.errors import AuthenticationError, ServerError
from msnp.server.network import LocalNetwork
from msnp.wire import Command, Direction

from test.support import commandsIn

ALICE = "alice@example.com"
PASSWORD = "pw-alice"
BASE = "http://127.0.0.1:9"
NONCE = "BuQMZCPqK0R6/J68yErhdzd6pBQqpT6HtpiPksRo9jRPbY2is7ADeWLBK6P+BCuM"


class PipelinedLoginTests(SynchronousTestCase):
    """
    alice with three contacts; the test plays the notification server.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.network = LocalNetwork(reactor=self.reactor)
        self.network.addAccount(ALICE, PASSWORD, "Alice")
        for name in ("bob", "carol", "dave"):
            self.network.addAccount(f"{name}@example.com", "pw", name.capitalize())
            self.network.addContact(ALICE, f"{name}@example.com", mutual=True)
        self.http = StubTreq(self.network._httpRoot())
        self.endpoints = Endpoints(
            dispatch="tcp:127.0.0.1:1863",
            sso=f"{BASE}/RST2.srf",
            sharing=f"{BASE}/abservice/SharingService.asmx",
            addressBook=f"{BASE}/abservice/abservice.asmx",
            rsi=f"{BASE}/rsi/rsi.asmx",
            storage=f"{BASE}/storageservice/SchematizedStore.asmx",
        )

    def sent(self) -> list[Command]:
        return commandsIn(self.transport, Direction.FROM_CLIENT)

    def reply(self, line: str) -> None:
        self.protocol.dataReceived(line.encode("utf-8") + b"\r\n")
        self.http.flush()

    def lose(self) -> None:
        """
        The client aborted the connection (a C{StringTransport} only
        records that): deliver its C{connectionLost}.
        """
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def authenticated(self) -> "Deferred[Any]":
        """
        Run the login up to the pipelined batch: VER, CVR/USR SSO I, the
        SSO request, USR OK, both ABCH downloads and the roamed profile.
        """
        d = self.challenged()
        usr = self.sent()[-1]
        self.assertEqual((usr.name, usr.arg(0), usr.arg(1)), ("USR", "SSO", "S"))
        self.transport.clear()
        self.reply(f"USR {usr.trid} OK {ALICE} 1 0")
        for _ in range(5):
            self.http.flush()
        return d

    def requests(self) -> list[str]:
        """
        Record the paths of the HTTP requests the client makes from now on.
        """
        paths: list[str] = []
        post = self.http.post

        def recording(url: Any, *args: Any, **kwargs: Any) -> Any:
            paths.append(str(url).rsplit("/", 1)[-1])
            return post(url, *args, **kwargs)

        self.http.post = recording  # type: ignore[method-assign]
        return paths

    def challenged(self) -> "Deferred[Any]":
        """
        Run the login up to C{USR SSO S} written (the SSO request done).
        """
        client = MSNClient(ALICE, PASSWORD, self.endpoints, reactor=self.reactor, httpClient=self.http)
        d = client.login()
        host, port, factory = self.reactor.tcpClients[0][:3]
        self.protocol = factory.buildProtocol(None)  # the endpoint's wrapper
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.reply("VER 1 MSNP18")
        self.reply("CVR 2 14.0.8089 14.0.8089 14.0.8089 http://example.invalid http://example.invalid")
        self.reply(f"USR 3 SSO S MBI_KEY_OLD {NONCE}")
        self.http.flush()
        return d

    def test_downloadsStartWithUSR(self) -> None:
        """
        The memberships, the address book and the roamed profile are asked
        for right after C{USR SSO S} is written, before the NS answers it
        (they need the tickets only); the login still waits for C{USR OK}.
        """
        paths = self.requests()
        d = self.challenged()
        usr = self.sent()[-1]
        self.assertEqual((usr.name, usr.arg(1)), ("USR", "S"))
        self.assertEqual(paths[0], "RST2.srf")
        self.assertEqual(sorted(paths[1:]), ["SchematizedStore.asmx", "SharingService.asmx", "abservice.asmx"])
        self.assertNoResult(d)
        self.transport.clear()
        self.reply(f"USR {usr.trid} OK {ALICE} 1 0")
        self.http.flush()
        self.assertEqual([c.name for c in self.sent()], ["BLP", "ADL", "PRP", "UUX", "UUX", "CHG"])
        self.assertEqual(len(paths), 4)
        d.cancel()
        self.lose()
        self.failureResultOf(d, CancelledError)

    def test_refusedTicketWinsOverTheDownloads(self) -> None:
        """
        A C{911} to C{USR SSO S} fails the login with
        L{AuthenticationError} although the downloads it started have
        succeeded meanwhile; nothing is left unhandled or scheduled.
        """
        d = self.challenged()
        usr = self.sent()[-1]
        self.reply(f"911 {usr.trid}")
        self.lose()
        self.failureResultOf(d, AuthenticationError)
        self.reactor.advance(60)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_batchWrittenBeforeAnyReply(self) -> None:
        """
        After C{USR OK} and the downloads, C{BLP}, the C{ADL}, C{PRP MFN},
        the two C{UUX} and C{CHG} are all on the wire, in that order,
        before the server has answered any of them; answering them all
        signs in.
        """
        d = self.authenticated()
        batch = self.sent()
        self.assertEqual([c.name for c in batch], ["BLP", "ADL", "PRP", "UUX", "UUX", "CHG"])
        self.assertNoResult(d)
        self.assertIn(b"<PrivateEndpointData>", batch[3].payload or b"")
        self.assertIn(b"<Data>", batch[4].payload or b"")
        for command in batch[:-1]:
            if command.name == "UUX":
                self.reply(f"UUX {command.trid} 0")
            elif command.name == "ADL":
                self.reply(f"ADL {command.trid} OK")
            else:
                self.reply(f"{command.name} {command.trid} {' '.join(command.arguments)}")
            self.assertNoResult(d)
        chg = batch[-1]
        self.reply(f"CHG {chg.trid} {' '.join(chg.arguments)}")
        session = self.successResultOf(d)
        self.assertEqual(session.status.code, "NLN")
        self.assertEqual(len(session.contacts), 3)
        self.assertEqual(session.displayName, "Alice")
        session.protocol.stopKeepAlive()

    def test_refusedADLFailsTheLogin(self) -> None:
        """
        A numeric reply to the C{ADL} of the batch fails the login with
        L{ServerError} carrying that code, even though the later commands
        were written already and answered; the connection is closed and
        nothing is left unhandled or scheduled.
        """
        d = self.authenticated()
        batch = self.sent()
        (adl,) = [c for c in batch if c.name == "ADL"]
        self.reply(f"BLP {batch[0].trid} AL")
        self.reply(f"241 {adl.trid}")
        for command in batch[2:]:
            self.reply(f"{command.name} {command.trid} {' '.join(command.arguments) or '0'}")
        self.lose()
        failure = self.failureResultOf(d, ServerError)
        self.assertEqual(failure.value.code, 241)
        self.reactor.advance(60)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_refusedCHGFailsTheLogin(self) -> None:
        """
        A refused C{CHG}, answered after everything else, is the login's
        error as well.
        """
        d = self.authenticated()
        batch = self.sent()
        chg = batch[-1]
        self.reply(f"201 {chg.trid}")
        self.lose()
        failure = self.failureResultOf(d, ServerError)
        self.assertEqual(failure.value.code, 201)

    def test_cancelledDuringBatch(self) -> None:
        """
        Cancelling the login while the batch waits for its replies fails it
        with L{CancelledError}, the pending commands leaving no unhandled
        failure.
        """
        d = self.authenticated()
        self.assertEqual(len(self.sent()), 6)
        d.cancel()
        self.lose()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.protocol._wrappedProtocol.pendingCount, 0)
