"""
Tests for L{msnp.protocol.MSNPProtocol}: framing with raw mode, TrID
correlation, timeouts on a L{Clock}, cancellation, connection loss and the
handling of hostile input, over a L{StringTransport}.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ConnectionLost, ProtocolError, RequestTimeout, ServerError
from msnp.protocol import MSNPProtocol
from msnp.wire import Command, Direction

ML = b'<ml><d n="example.com"><c n="bob" l="8" t="1" /></d></ml>'
UBX_BOB = (
    b"<Data><PSM>Bob here</PSM><CurrentMedia></CurrentMedia>"
    b'<EndpointData id="{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}">'
    b"<Capabilities>2789003324:48</Capabilities></EndpointData></Data>"
)


class RecordingProtocol(MSNPProtocol):
    """
    Records what reaches the handlers; C{handle_BOOM} raises.
    """

    def __init__(self, **kw: Any) -> None:
        MSNPProtocol.__init__(self, **kw)
        self.received: list[Command] = []
        self.unknown: list[Command] = []
        self.errors: list[Command] = []

    def handle_NLN(self, command: Command) -> None:
        self.received.append(command)

    handle_UBX = handle_MSG = handle_IRO = handle_CHL = handle_GCF = handle_NOT = handle_NLN
    handle_CHG = handle_VER = handle_ADL = handle_FLN = handle_NLN

    def handle_BOOM(self, command: Command) -> None:
        raise ZeroDivisionError("handler bug")

    def unknownCommand(self, command: Command) -> None:
        self.unknown.append(command)

    def errorReceived(self, command: Command) -> None:
        self.errors.append(command)


class ServerSideProtocol(RecordingProtocol):
    receiving = Direction.FROM_CLIENT


def connect(
    cls: type[RecordingProtocol] = RecordingProtocol, **kw: Any
) -> tuple[RecordingProtocol, StringTransport, Clock, list[dict[str, Any]]]:
    clock = Clock()
    protocol = cls(clock=clock, **kw)
    events: list[dict[str, Any]] = []
    protocol.log = Logger(observer=cast(ILogObserver, events.append))  # type: ignore[misc]
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock, events


def results(d: "Deferred[Any]") -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


class FramingTests(SynchronousTestCase):
    """
    Lines and payloads are framed exactly, in any chunking.
    """

    def test_payloadInRawMode(self) -> None:
        """
        A payload split across chunks is delivered once, whole, and only
        when its last byte arrives.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"UBX 1:bob@example.com 176\r\n" + UBX_BOB[:50])
        self.assertEqual(p.received, [])
        p.dataReceived(UBX_BOB[50:100])
        self.assertEqual(p.received, [])
        p.dataReceived(UBX_BOB[100:])
        self.assertEqual(p.received, [Command("UBX", None, ("1:bob@example.com",), UBX_BOB)])

    def test_byteByByte(self) -> None:
        """
        Feeding a stream one byte at a time gives the same commands.
        """
        stream = b"UBX 1:bob@example.com 176\r\n" + UBX_BOB + b"NLN NLN 1:bob@example.com Bob 1:0 0\r\n"
        p, _, _, _ = connect()
        for i in range(len(stream)):
            p.dataReceived(stream[i:i + 1])
        self.assertEqual([c.name for c in p.received], ["UBX", "NLN"])
        self.assertEqual(p.received[0].payload, UBX_BOB)

    def test_zeroLengthDispatchedAtOnce(self) -> None:
        """
        C{UBX ... 0} is dispatched as soon as its line ends, with C{b""}.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"UBX 1:alice@example.com 0\r\n")
        self.assertEqual(p.received, [Command("UBX", None, ("1:alice@example.com",), b"")])

    def test_bytesAfterPayloadAreTheNextLine(self) -> None:
        """
        The bytes right after a payload (no CRLF in between) are the next
        command line.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"NOT 3\r\nabcNLN NLN 1:bob@example.com Bob 1:0 0\r\nGCF 0 2\r\nxyCHL 0 123\r\n")
        self.assertEqual(
            p.received,
            [
                Command("NOT", None, (), b"abc"),
                Command("NLN", None, ("NLN", "1:bob@example.com", "Bob", "1:0", "0")),
                Command("GCF", 0, (), b"xy"),
                Command("CHL", 0, ("123",)),
            ],
        )

    def test_payloadContainingNewlines(self) -> None:
        """
        CRLFs inside a payload are payload bytes, not line ends.
        """
        payload = b"MIME-Version: 1.0\r\nNLN NLN x\r\n\r\n"
        p, _, _, _ = connect()
        p.dataReceived(b"MSG Hotmail Hotmail %d\r\n" % len(payload) + payload + b"CHL 0 1\r\n")
        self.assertEqual(p.received[0].payload, payload)
        self.assertEqual(p.received[1].name, "CHL")
        self.assertEqual(len(p.received), 2)

    def test_unknownPayloadCommandConsumedWhole(self) -> None:
        """
        A payload command with no handler (C{IPG}, C{NFY}, an error with a
        payload and no request) is consumed whole and the stream stays in
        step.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"IPG 10\r\nNLN NLN xy\r\nNFY PUT 4\r\nCHL \r\n241 77 57\r\n" + ML + b"CHL 0 5\r\n")
        self.assertEqual(p.unknown, [Command("IPG", None, (), b"NLN NLN xy"), Command("NFY", None, ("PUT",), b"CHL ")])
        self.assertEqual(p.errors, [Command("241", 77, (), ML)])
        self.assertEqual(p.received, [Command("CHL", 0, ("5",))])

    def test_bareLF(self) -> None:
        """
        Lines ended by a bare LF are accepted, and empty lines ignored.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"CHL 0 1\n\r\n\nNOT 2\nabCHL 0 2\r\n")
        self.assertEqual(
            p.received, [Command("CHL", 0, ("1",)), Command("NOT", None, (), b"ab"), Command("CHL", 0, ("2",))]
        )

    def test_serverSideDirection(self) -> None:
        """
        A protocol reading L{Direction.FROM_CLIENT} frames C{MSG 3 N len}
        with TrID 3.
        """
        p, _, _, _ = connect(ServerSideProtocol)
        p.dataReceived(b"MSG 3 N 5\r\nhelloMSG 4 A 1\r\nx")
        self.assertEqual(p.received, [Command("MSG", 3, ("N",), b"hello"), Command("MSG", 4, ("A",), b"x")])

    def test_thousandsOfPayloadsInOneChunk(self) -> None:
        """
        Five thousand payload commands in a single chunk are all dispatched
        without recursing once per command (no RecursionError).
        """
        p, transport, _, events = connect()
        one = b"UBX 1:bob@example.com 176\r\n" + UBX_BOB + b"NOT 0\r\n"
        p.dataReceived(one * 5000)
        self.assertEqual(len(p.received), 10000)
        self.assertFalse(transport.disconnecting)
        self.assertEqual([e for e in events if e.get("log_failure")], [])

    def test_thousandsOfMalformedPayloadLines(self) -> None:
        """
        Thousands of malformed lines whose payloads must be skipped, in
        one chunk, do not recurse either.
        """
        p, transport, _, _ = connect()
        p.dataReceived(b"MSG \xff Bob 3\r\nabc" * 5000 + b"CHL 0 9\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("9",))])
        self.assertFalse(transport.disconnecting)


class RequestTests(SynchronousTestCase):
    """
    L{MSNPProtocol.sendCommand}: TrIDs, replies, errors, timeouts.
    """

    def test_writesWithIncreasingTrids(self) -> None:
        """
        Each request gets the next TrID; payloads get their byte length.
        """
        p, transport, _, _ = connect()
        p.sendCommand("VER", "MSNP18", "CVR0")
        p.sendCommand("UUX", payload="ç".encode())
        self.assertEqual(p.sendNoReply("PNG", withTrid=False), None)
        self.assertEqual(p.sendNoReply("MSG", "U", payload=b"x"), 3)
        self.assertEqual(
            transport.value(), b"VER 1 MSNP18 CVR0\r\nUUX 2 2\r\n\xc3\xa7PNG\r\nMSG 3 U 1\r\nx"
        )

    def test_sendRaw(self) -> None:
        """
        L{MSNPProtocol.sendRaw} writes a command exactly, TrID included,
        without allocating one.
        """
        p, transport, _, _ = connect()
        p.sendRaw(Command("USR", 5, ("OK", "a@b.c", "1", "0")))
        self.assertEqual(transport.value(), b"USR 5 OK a@b.c 1 0\r\n")
        p.sendCommand("PNG")
        self.assertTrue(transport.value().endswith(b"PNG 1\r\n"))

    def test_interleavedReplies(self) -> None:
        """
        Replies arriving out of order, mixed with unsolicited commands, go
        to the request with their TrID; the rest go to the handlers.
        """
        p, _, _, _ = connect()
        d1, d2, d3 = (results(p.sendCommand(name)) for name in ("CHG", "BLP", "PRP"))
        p.dataReceived(b"PRP 3 MFN x\r\nNLN NLN 1:b@x Bob 1:0 0\r\nCHG 99 NLN\r\nBLP 2 AL\r\nCHG 1 NLN\r\n")
        self.assertEqual(d1, [Command("CHG", 1, ("NLN",))])
        self.assertEqual(d2, [Command("BLP", 2, ("AL",))])
        self.assertEqual(d3, [Command("PRP", 3, ("MFN", "x"))])
        self.assertEqual([c.name for c in p.received], ["NLN", "CHG"])
        self.assertEqual(p.received[1].trid, 99)
        self.assertEqual(p.pendingCount, 0)

    def test_expectFilters(self) -> None:
        """
        With C{expect={"ANS"}}, C{IRO} lines with the same TrID go to
        C{handle_IRO} and the request fires on C{ANS OK}.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("ANS", "a@b.c", "auth", "1", expect={"ANS"}))
        p.dataReceived(b"IRO 1 1 2 bob@example.com Bob 1:0\r\nIRO 1 2 2 carol@example.net Carol 1:0\r\n")
        self.assertEqual(d, [])
        self.assertEqual(len(p.received), 2)
        p.dataReceived(b"ANS 1 OK\r\n")
        self.assertEqual(d, [Command("ANS", 1, ("OK",))])

    def test_expectAlternatives(self) -> None:
        """
        C{USR SSO I} with C{expect=("USR", "XFR")} fires on an C{XFR}.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("USR", "SSO", "I", "a@b.c", expect=("USR", "XFR")))
        p.dataReceived(b"XFR 1 NS 127.0.0.1:1863 U D\r\n")
        self.assertEqual(d[0].name, "XFR")

    def test_payloadReply(self) -> None:
        """
        A reply with a payload (C{UUX 1 0}) fires with C{b""}.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("UUX", payload=b"<Data/>"))
        p.dataReceived(b"UUX 1 0\r\n")
        self.assertEqual(d, [Command("UUX", 1, (), b"")])

    def test_numericError(self) -> None:
        """
        C{911 1} fails the request with L{ServerError} carrying the code,
        its meaning and the command name.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("USR", "SSO", "S", "t", "r", "{g}"))
        p.dataReceived(b"911 1\r\n")
        error = d[0].value
        self.assertIsInstance(error, ServerError)
        self.assertEqual((error.code, error.meaning, error.command, error.payload), (911, "authentication failed", "USR", None))
        self.assertEqual(p.pendingCount, 0)

    def test_numericErrorWithPayload(self) -> None:
        """
        C{241 1 57} fails an C{ADL} with the echoed C{<ml>} as payload, and
        the stream stays in step afterwards.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("ADL", payload=ML))
        p.dataReceived(b"241 1 57\r\n" + ML + b"CHL 0 1\r\n")
        self.assertIsInstance(d[0].value, ServerError)
        self.assertEqual(d[0].value.code, 241)
        self.assertEqual(d[0].value.payload, ML)
        self.assertEqual(p.received, [Command("CHL", 0, ("1",))])

    def test_unsolicitedError(self) -> None:
        """
        An error for a TrID nobody waits for goes to C{errorReceived}.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"715 42\r\n")
        self.assertEqual(p.errors, [Command("715", 42)])

    def test_defaultErrorReceivedLogs(self) -> None:
        """
        The base C{errorReceived} logs the code and its meaning.
        """
        clock = Clock()
        p = MSNPProtocol(clock=clock)
        events: list[dict[str, Any]] = []
        p.log = Logger(observer=cast(ILogObserver, events.append))  # type: ignore[misc]
        p.makeConnection(StringTransport())
        p.dataReceived(b"600 0\r\nXYZ 1\r\n")
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn("server busy", text)
        self.assertIn("XYZ", text)

    def test_timeout(self) -> None:
        """
        Without a reply the request fails with L{RequestTimeout} after
        C{requestTimeout} seconds on the clock, not before; a late reply
        then goes to the handler.
        """
        p, _, clock, _ = connect(requestTimeout=10.0)
        d = results(p.sendCommand("CHG", "NLN"))
        clock.advance(9.9)
        self.assertEqual(d, [])
        clock.advance(0.2)
        self.assertIsInstance(d[0].value, RequestTimeout)
        self.assertEqual(p.pendingCount, 0)
        p.dataReceived(b"CHG 1 NLN\r\n")
        self.assertEqual(p.received, [Command("CHG", 1, ("NLN",))])

    def test_perRequestTimeout(self) -> None:
        """
        C{timeout=} overrides the default; C{timeout=None} never expires.
        """
        p, _, clock, _ = connect(requestTimeout=10.0)
        short = results(p.sendCommand("PNG", timeout=1.0))
        forever = results(p.sendCommand("XFR", "SB", timeout=None))
        clock.advance(1.5)
        self.assertIsInstance(short[0].value, RequestTimeout)
        clock.advance(10**6)
        self.assertEqual(forever, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_noTimeoutByDefaultWhenNone(self) -> None:
        """
        C{requestTimeout=None} schedules no timer at all.
        """
        p, _, clock, _ = connect(requestTimeout=None)
        p.sendCommand("PNG")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_replyCancelsTimer(self) -> None:
        """
        A reply cancels the request's timer.
        """
        p, _, clock, _ = connect()
        p.sendCommand("BLP", "AL")
        p.dataReceived(b"BLP 1 AL\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """
        Cancelling a request fails it with L{CancelledError}, forgets it
        and cancels its timer.
        """
        p, _, clock, _ = connect()
        d = p.sendCommand("XFR", "SB")
        out = results(d)
        d.cancel()
        self.assertIsInstance(out[0].value, CancelledError)
        self.assertEqual(p.pendingCount, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_badArgumentRegistersNothing(self) -> None:
        """
        An argument with a space raises L{ValueError} at once and leaves
        no pending request or timer behind.
        """
        p, transport, clock, _ = connect()
        self.assertRaises(ValueError, p.sendCommand, "PRP", "MFN", "Alice Liddell")
        self.assertEqual(p.pendingCount, 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(transport.value(), b"")


class ConnectionLossTests(SynchronousTestCase):
    """
    A lost connection ends every pending request.
    """

    def test_failsAllPending(self) -> None:
        """
        Every pending request fails with L{ConnectionLost} and its timer
        is cancelled.
        """
        p, _, clock, _ = connect()
        ds = [results(p.sendCommand(n)) for n in ("CHG", "BLP", "XFR")]
        p.connectionLost(Failure(Exception("gone")))
        for d in ds:
            self.assertIsInstance(d[0].value, ConnectionLost)
        self.assertEqual(p.pendingCount, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_errbackCancelsAnotherPending(self) -> None:
        """
        When the failure of one pending request makes its caller cancel
        another (a login abandoning the USR sent with a failed CVR), that
        one ends once, cancelled, and nothing raises.
        """
        p, _, _, _ = connect()
        first = p.sendCommand("CVR")
        second = p.sendCommand("USR")
        outcome = results(second)
        first.addErrback(lambda _: second.cancel())
        p.connectionLost(Failure(Exception("gone")))
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0].value, CancelledError)
        self.assertEqual(p.pendingCount, 0)

    def test_noDelayOnConnect(self) -> None:
        """
        A connection disables Nagle's algorithm when the transport allows it,
        so small commands are not held back behind delayed ACKs.
        """

        class TCPLikeTransport(StringTransport):
            noDelay = False

            def setTcpNoDelay(self, enabled: bool) -> None:
                self.noDelay = enabled

        transport = TCPLikeTransport()
        RecordingProtocol(clock=Clock()).makeConnection(transport)
        self.assertTrue(transport.noDelay)

    def test_sendAfterLoss(self) -> None:
        """
        A request made after the loss fails at once with L{ConnectionLost}.
        """
        p, _, _, _ = connect()
        p.connectionLost(Failure(Exception("gone")))
        d = results(p.sendCommand("PNG"))
        self.assertIsInstance(d[0].value, ConnectionLost)

    def test_lossMidPayload(self) -> None:
        """
        Losing the connection in the middle of a payload dispatches
        nothing and releases the partial payload.
        """
        p, _, _, _ = connect()
        d = results(p.sendCommand("ADL", payload=ML))
        p.dataReceived(b"241 1 57\r\n" + ML[:10])
        p.connectionLost(Failure(Exception("gone")))
        self.assertIsInstance(d[0].value, ConnectionLost)
        self.assertEqual(p._payloadChunks, [])
        p.dataReceived(ML[10:] + b"CHL 0 1\r\n")
        self.assertEqual(p.received, [])

    def test_callbackSendingDuringFailAll(self) -> None:
        """
        An errback that sends a new request while pending requests are
        being failed gets a failed Deferred, never a hanging one.
        """
        p, _, _, _ = connect()
        later: list[Any] = []

        def retry(f: Failure) -> None:
            later.extend(results(p.sendCommand("PNG")))

        p.sendCommand("CHG").addErrback(retry)
        p.connectionLost(Failure(Exception("gone")))
        self.assertEqual(len(later), 1)
        self.assertIsInstance(later[0].value, ConnectionLost)
        self.assertEqual(p.pendingCount, 0)


class HostileInputTests(SynchronousTestCase):
    """
    Bad input is logged and skipped, or drops the connection; it never
    raises out of C{dataReceived}.
    """

    def assertDropped(self, p: RecordingProtocol, transport: StringTransport, events: list[dict[str, Any]]) -> None:
        self.assertTrue(transport.disconnecting)
        self.assertTrue(any("Dropping" in formatEvent(e) for e in events))
        self.assertEqual(p._buffer, b"")
        self.assertEqual(p._payloadChunks, [])

    def test_lineTooLong(self) -> None:
        """
        A line longer than C{maxLineLength} drops the connection, fails
        the pending request with L{ProtocolError}, and nothing after it is
        read.
        """
        p, transport, _, events = connect(maxLineLength=100)
        d = results(p.sendCommand("CHG"))
        p.dataReceived(b"NLN " + b"x" * 200 + b"\r\nCHG 1 NLN\r\n")
        self.assertIsInstance(d[0].value, ProtocolError)
        self.assertDropped(p, transport, events)
        p.dataReceived(b"CHL 0 1\r\n")
        self.assertEqual(p.received, [])

    def test_unterminatedLineTooLong(self) -> None:
        """
        Bytes without a line end beyond the limit drop the connection
        before the whole line arrives.
        """
        p, transport, _, events = connect(maxLineLength=100)
        for _ in range(10):
            p.dataReceived(b"A" * 30)
        self.assertDropped(p, transport, events)

    def test_lineAtLimit(self) -> None:
        """
        A line of exactly C{maxLineLength} bytes plus CRLF is accepted.
        """
        p, transport, _, _ = connect(maxLineLength=100)
        line = b"CHL 0 " + b"1" * 94
        self.assertEqual(len(line), 100)
        p.dataReceived(line + b"\r\n" + line + b"\n")
        self.assertEqual(len(p.received), 2)
        p.dataReceived(line + b"1\r\n")
        self.assertTrue(transport.disconnecting)

    def test_payloadTooLong(self) -> None:
        """
        A payload longer than C{maxPayloadLength} drops the connection at
        once, without buffering it; lengths up to 2**63 and beyond are
        handled the same way.
        """
        for length in (1001, 2**31, 2**63, 10**40):
            p, transport, _, events = connect(maxPayloadLength=1000)
            d = results(p.sendCommand("ADL", payload=b"x"))
            p.dataReceived(b"MSG Hotmail Hotmail %d\r\n" % length + b"x" * 5000)
            self.assertIsInstance(d[0].value, ProtocolError)
            self.assertDropped(p, transport, events)
            self.assertEqual(p.received, [])

    def test_payloadAtLimit(self) -> None:
        """
        A payload of exactly C{maxPayloadLength} bytes is accepted.
        """
        p, transport, _, _ = connect(maxPayloadLength=1000)
        p.dataReceived(b"NOT 1000\r\n" + b"x" * 1000)
        self.assertEqual(len(p.received[0].payload or b""), 1000)
        self.assertFalse(transport.disconnecting)

    def test_errorPayloadTooLong(self) -> None:
        """
        An error line announcing a huge payload drops the connection too.
        """
        p, transport, _, events = connect(maxPayloadLength=1000)
        p.dataReceived(b"241 1 99999999\r\n")
        self.assertDropped(p, transport, events)

    def test_malformedPayloadLineTooLong(self) -> None:
        """
        A malformed (non-UTF-8) line announcing a huge payload drops the
        connection: its payload cannot be skipped safely.
        """
        p, transport, _, events = connect(maxPayloadLength=1000)
        p.dataReceived(b"MSG \xff x 5000\r\n")
        self.assertDropped(p, transport, events)

    def test_invalidUTF8Skipped(self) -> None:
        """
        A line that is not UTF-8 is logged and skipped; its payload is
        skipped too, and the next line is read.
        """
        p, transport, _, events = connect()
        p.dataReceived(b"CHG 1 \xff\xfe\r\nMSG \xc3( Bob 5\r\nCHL 0CHL 0 7\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("7",))])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len([e for e in events if "malformed" in formatEvent(e)]), 2)

    def test_nonNumericLengthSkipped(self) -> None:
        """
        A payload command with a non-numeric length is logged and skipped.
        """
        p, transport, _, events = connect()
        p.dataReceived(b"GCF 0 abc\r\nNOT -1\r\nUBX 1:b@x 0x10\r\nCHL 0 7\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("7",))])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len([e for e in events if "malformed" in formatEvent(e)]), 3)

    def test_garbageSkipped(self) -> None:
        """
        Binary garbage lines are skipped without raising or dropping.
        """
        p, transport, _, _ = connect()
        p.dataReceived(b"\x00\x01\x02\r\n\xff\xff\xff\xff\n  \r\nlow 1\r\n\r\r\r\nCHL 0 7\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("7",))])
        self.assertFalse(transport.disconnecting)

    def test_handlerRaises(self) -> None:
        """
        A handler that raises is logged with its traceback and the
        connection goes on.
        """
        p, transport, _, events = connect()
        p.dataReceived(b"BOO 1\r\nCHL 0 7\r\n")
        p.handle_BOO = p.handle_BOOM  # type: ignore[attr-defined]
        p.dataReceived(b"BOO 1\r\nCHL 0 8\r\n")
        self.assertEqual([c.arguments for c in p.received], [("7",), ("8",)])
        failures = [e for e in events if e.get("log_failure")]
        self.assertEqual(len(failures), 1)
        self.assertIsInstance(failures[0]["log_failure"].value, ZeroDivisionError)
        self.assertFalse(transport.disconnecting)

    def test_replyCallbackRaises(self) -> None:
        """
        A request callback that raises does not break the reading of the
        stream.
        """
        p, transport, _, _ = connect()
        d = p.sendCommand("CHG")
        d.addCallback(lambda c: 1 / 0)
        d.addErrback(lambda f: f.trap(ZeroDivisionError))
        p.dataReceived(b"CHG 1 NLN\r\nCHL 0 1\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("1",))])
        self.assertFalse(transport.disconnecting)

    def test_handlerClosesConnection(self) -> None:
        """
        Once a handler has closed the connection, the rest of the chunk and
        anything arriving later are dropped, and the buffer is released.
        """
        p, transport, _, _ = connect()
        p.handle_OUT = lambda command: transport.loseConnection()  # type: ignore[attr-defined]
        p.dataReceived(b"OUT OTH\r\nCHL 0 1\r\nNOT 5\r\nab")
        self.assertEqual(p.received, [])
        self.assertEqual(p._buffer, b"")
        p.dataReceived(b"CHL 0 2\r\n" * 1000)
        self.assertEqual(p.received, [])
        self.assertEqual(p._buffer, b"")

    def test_violationFromPayloadHandler(self) -> None:
        """
        A handler that declares a protocol violation while handling a
        payload command stops the reading of the rest of the chunk.
        """
        p, transport, _, _ = connect()
        p.handle_IPG = lambda command: p.protocolViolation(ProtocolError("no"))  # type: ignore[attr-defined]
        d = results(p.sendCommand("CHG"))
        p.dataReceived(b"IPG 2\r\nxyCHG 1 NLN\r\nCHL 0 1\r\n")
        self.assertIsInstance(d[0].value, ProtocolError)
        self.assertEqual(p.received, [])
        self.assertTrue(transport.disconnecting)

    def test_trailingSpaceOnPayloadLine(self) -> None:
        """
        A payload line with a trailing space still frames its payload.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"NOT 3 \r\nabcCHL 0 1\r\n")
        self.assertEqual(p.received, [Command("NOT", None, (), b"abc"), Command("CHL", 0, ("1",))])

    def test_traceRedacts(self) -> None:
        """
        With C{trace=True}, commands are logged both ways but secrets are
        not.
        """
        p, _, _, events = connect(trace=True)
        p.sendCommand("USR", "SSO", "S", "t=TICKETSECRET", "MBISECRET", "{g}")
        p.dataReceived(b"XFR 2 SB 127.0.0.1:1 CKI SBSECRET U messenger.msn.com 1\r\n")
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn("USR 1 SSO S", text)
        self.assertIn("XFR 2 SB", text)
        for secret in ("TICKETSECRET", "MBISECRET", "SBSECRET"):
            self.assertNotIn(secret, text)


class FramingLoopTests(SynchronousTestCase):
    """
    The framing loop of L{MSNPProtocol.dataReceived} (which walks one
    buffer instead of re-entering C{LineReceiver}) keeps C{LineReceiver}'s
    rules for re-entrant data, pausing and payload boundaries.
    """

    def test_reentrantDataComesAfterTheChunk(self) -> None:
        """
        Bytes a handler feeds back into C{dataReceived} (a synchronous
        transport) are read after the rest of the current chunk, in order.
        """
        p, _, _, _ = connect()
        fed: list[bool] = []

        def handle(command: Command) -> None:
            p.received.append(command)
            if not fed:
                fed.append(True)
                p.dataReceived(b"CHL 0 3\r\nNOT 2\r\nxy")

        p.handle_CHL = handle  # type: ignore[method-assign]
        p.dataReceived(b"CHL 0 1\r\nNLN NLN 1:a@b.c A 0 0\r\nCHL 0 2\r\n")
        self.assertEqual(
            [(c.name, c.arguments, c.payload) for c in p.received],
            [
                ("CHL", ("1",), None),
                ("NLN", ("NLN", "1:a@b.c", "A", "0", "0"), None),
                ("CHL", ("2",), None),
                ("CHL", ("3",), None),
                ("NOT", (), b"xy"),
            ],
        )
        self.assertEqual(p._buffer, b"")

    def test_pauseStopsReadingUntilResumed(self) -> None:
        """
        A handler that pauses the protocol stops the reading of the rest of
        the chunk (a payload included); resuming reads what was buffered.
        """
        p, transport, _, _ = connect()

        def pause(command: Command) -> None:
            p.received.append(command)
            p.pauseProducing()

        p.handle_CHL = pause  # type: ignore[method-assign]
        p.dataReceived(b"CHL 0 1\r\nNOT 3\r\nabcFLN 1:a@b.c\r\n")
        self.assertEqual([c.name for c in p.received], ["CHL"])
        self.assertEqual(transport.producerState, "paused")
        p.handle_CHL = p.handle_NLN  # type: ignore[method-assign]
        p.resumeProducing()
        self.assertEqual(
            p.received[1:], [Command("NOT", None, (), b"abc"), Command("FLN", None, ("1:a@b.c",))]
        )
        self.assertEqual(p._buffer, b"")

    def test_payloadSplitAcrossChunks(self) -> None:
        """
        A payload that arrives in several chunks, the last one ending
        exactly where the payload does, is delivered whole; the next line
        is read from the next chunk.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"UBX 1:bob@example.com %d\r\n" % len(UBX_BOB) + UBX_BOB[:7])
        p.dataReceived(UBX_BOB[7:50])
        self.assertEqual(p.received, [])
        self.assertEqual(p._payloadReceived, 50)
        p.dataReceived(UBX_BOB[50:])
        self.assertEqual(p.received, [Command("UBX", None, ("1:bob@example.com",), UBX_BOB)])
        self.assertEqual((p._payloadChunks, p._payloadReceived, p._buffer), ([], 0, b""))
        p.dataReceived(b"CHL 0 9\r\n")
        self.assertEqual(p.received[-1], Command("CHL", 0, ("9",)))

    def test_malformedPayloadSkippedAcrossChunks(self) -> None:
        """
        The payload of a malformed line is counted across chunks without
        being kept, and the line after it is read.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"MSG \xff 6\r\nabc")
        self.assertEqual(p._payloadChunks, [])
        p.dataReceived(b"defCHL 0 1\r\n")
        self.assertEqual(p.received, [Command("CHL", 0, ("1",))])

    def test_partialLineKeptBetweenChunks(self) -> None:
        """
        An unfinished line waits in the buffer and is completed by the
        next chunk.
        """
        p, _, _, _ = connect()
        p.dataReceived(b"CHL 0 1\r\nFLN 1:a")
        self.assertEqual(p._buffer, b"FLN 1:a")
        p.dataReceived(b"@b.c\r\n")
        self.assertEqual(p.received[-1], Command("FLN", None, ("1:a@b.c",)))
        self.assertEqual(p._buffer, b"")
