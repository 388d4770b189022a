"""
Property tests (hypothesis) for the codec and the framing of
L{msnp.protocol.MSNPProtocol}: chunking never changes what is read, hostile
streams never escape C{dataReceived}, every request ends once the
connection is lost, buffers stay within the limits, and replies find their
requests in any order. Example counts are kept modest so the file runs in a
few seconds.
"""

from __future__ import annotations

from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ServerError
from msnp.protocol import MSNPProtocol
from msnp.wire import Command, Direction, parseCommand, serialize

SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
MAX_LINE = 300
MAX_PAYLOAD = 2000

# -- generated commands -----------------------------------------------------------

token = st.text(
    alphabet=st.characters(exclude_characters=" \r\n", codec="utf-8"), min_size=1, max_size=12
)
payloads = st.binary(max_size=300) | st.sampled_from([b"", b"\r\n", b"MSG 1 N 3\r\nabc", b"\xff\xfe"])
trids = st.integers(min_value=0, max_value=2**31)

#: Server commands by shape: (no TrID / TrID) x (payload / none).
NO_TRID_PLAIN = ["NLN", "FLN", "QNG", "OUT", "JOI", "BYE", "RNG"]
TRID_PLAIN = ["CHG", "BLP", "PRP", "CHL", "SBS", "XFR", "CAL", "ACK", "IRO", "USR", "VER", "ILN", "ANS"]
NO_TRID_PAYLOAD = ["MSG", "NOT", "UBX", "UBN", "UBM", "IPG", "NFY"]
TRID_PAYLOAD = ["GCF", "ADL", "RML", "FQY", "UUX", "SDG", "PUT", "DEL", "GET"]


@st.composite
def serverCommands(draw: Any) -> Command:
    shape = draw(st.integers(0, 6))
    args = tuple(draw(st.lists(token, max_size=5)))
    if shape == 0:
        return Command(draw(st.sampled_from(NO_TRID_PLAIN)), None, args)
    if shape == 1:
        return Command(draw(st.sampled_from(TRID_PLAIN)), draw(trids), args)
    if shape == 2:
        return Command(draw(st.sampled_from(NO_TRID_PAYLOAD)), None, args, draw(payloads))
    if shape == 3:
        return Command(draw(st.sampled_from(TRID_PAYLOAD)), draw(trids), args, draw(payloads))
    if shape == 4:
        return Command(draw(st.sampled_from(["ADL", "RML", "UUN"])), draw(trids), ("OK",))
    if shape == 5:
        return Command("QRY", draw(trids))
    code = str(draw(st.integers(200, 999)))
    return Command(code, draw(trids), (), draw(st.none() | payloads))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points + [len(data)]:
        pieces.append(data[start:p])
        start = p
    return pieces


class Recorder(MSNPProtocol):
    def __init__(self, **kw: Any) -> None:
        MSNPProtocol.__init__(self, **kw)
        self.seen: list[Command] = []

    def commandReceived(self, command: Command) -> None:
        self.seen.append(command)


def connect(**kw: Any) -> tuple[Recorder, StringTransport, list[dict[str, Any]]]:
    p = Recorder(clock=Clock(), **kw)
    events: list[dict[str, Any]] = []
    p.log = Logger(observer=cast(ILogObserver, events.append))  # type: ignore[misc]
    transport = StringTransport()
    p.makeConnection(transport)
    return p, transport, events


class RoundTripProperties(SynchronousTestCase):
    """
    Serialize, parse and frame agree with each other.
    """

    @SETTINGS
    @given(serverCommands())
    def test_serializeParse(self, command: Command) -> None:
        """
        Every generated server command parses back to itself.
        """
        self.assertEqual(parseCommand(serialize(command), Direction.FROM_SERVER), command)

    @SETTINGS
    @given(st.lists(serverCommands(), max_size=25), st.lists(st.integers(0, 10**6), max_size=30))
    def test_chunkingIrrelevant(self, commands: list[Command], cuts: list[int]) -> None:
        """
        A stream split at arbitrary points yields the same commands as the
        stream fed whole, and those are the commands that were written.
        """
        stream = b"".join(serialize(c) for c in commands)
        whole, _, _ = connect(maxLineLength=10**5, maxPayloadLength=10**5)
        whole.dataReceived(stream)
        pieces, _, _ = connect(maxLineLength=10**5, maxPayloadLength=10**5)
        for piece in split(stream, cuts):
            pieces.dataReceived(piece)
        self.assertEqual(whole.seen, commands)
        self.assertEqual(pieces.seen, commands)


# -- hostile streams ------------------------------------------------------------------


@st.composite
def hostileStreams(draw: Any) -> bytes:
    commands = draw(st.lists(serverCommands(), max_size=12))
    stream = bytearray(b"".join(serialize(c) for c in commands))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 7))
        at = draw(st.integers(0, len(stream)))
        if kind == 0 and stream:  # flip a byte
            i = at % len(stream)
            stream[i] ^= draw(st.integers(1, 255))
        elif kind == 1:  # truncate
            del stream[at:]
        elif kind == 2:  # huge length
            n = draw(st.sampled_from([2**63, 2**63 - 1, 2**31, MAX_PAYLOAD + 1, 10**30]))
            stream[at:at] = b"MSG Hotmail Hotmail %d\r\n" % n
        elif kind == 3:  # a line without end
            stream[at:at] = b"NLN " + b"x" * draw(st.integers(0, 2 * MAX_LINE))
        elif kind == 4:  # invalid UTF-8
            stream[at:at] = draw(st.sampled_from([b"\xff", b"\xc3(", b"MSG \xff\xfe x 4\r\nabcd", b"\xed\xa0\x80"]))
        elif kind == 5:  # bad percent-encoding in a parameter
            stream[at:at] = draw(st.sampled_from([b"PRP 1 MFN %zz%\r\n", b"NLN NLN 1:a@b %C3 1:0 0\r\n"]))
        elif kind == 6:  # raw garbage
            stream[at:at] = draw(st.binary(max_size=40))
        else:  # error lines with odd lengths
            stream[at:at] = draw(st.sampled_from([b"241 1 x\r\n", b"241 1 99999999999\r\n", b"911\r\n", b"241 1 3\r\n"]))
    return bytes(stream)


class HostileProperties(SynchronousTestCase):
    """
    Whatever arrives, nothing escapes C{dataReceived}, buffers stay
    bounded, and every request ends once the connection is gone.
    """

    def run_stream(self, pieces: list[bytes], requests: int) -> None:
        p, transport, events = connect(maxLineLength=MAX_LINE, maxPayloadLength=MAX_PAYLOAD)
        outcomes: list[list[Any]] = []
        for i in range(requests):
            out: list[Any] = []
            p.sendCommand(["CHG", "ADL", "XFR", "PRP"][i % 4]).addBoth(out.append)
            outcomes.append(out)
        for piece in pieces:
            p.dataReceived(piece)  # must not raise
            self.assertLessEqual(len(p._buffer), MAX_LINE + 1)
            self.assertLessEqual(sum(len(c) for c in p._payloadChunks), MAX_PAYLOAD)
            self.assertLessEqual(p._payloadReceived, MAX_PAYLOAD)
        self.assertEqual([e for e in events if e.get("log_failure")], [])
        p.connectionLost(Failure(Exception("test over")))
        for out in outcomes:
            self.assertEqual(len(out), 1)
        self.assertEqual(p.pendingCount, 0)
        self.assertEqual(p._buffer, b"")

    @SETTINGS
    @given(st.binary(max_size=2000), st.lists(st.integers(0, 10**6), max_size=20), st.integers(0, 5))
    def test_arbitraryBytes(self, data: bytes, cuts: list[int], requests: int) -> None:
        """
        Arbitrary bytes in arbitrary chunks.
        """
        self.run_stream(split(data, cuts), requests)

    @SETTINGS
    @given(hostileStreams(), st.lists(st.integers(0, 10**6), max_size=20), st.integers(0, 5))
    def test_mutatedStreams(self, data: bytes, cuts: list[int], requests: int) -> None:
        """
        Valid streams with flipped bytes, truncation, huge lengths, endless
        lines, invalid UTF-8, bad percent-encoding and garbage.
        """
        self.run_stream(split(data, cuts), requests)


# -- TrID correlation -------------------------------------------------------------------


class CorrelationProperties(SynchronousTestCase):
    """
    Replies find their requests whatever the order they arrive in.
    """

    @SETTINGS
    @given(st.data())
    def test_randomInterleaving(self, data: Any) -> None:
        """
        N requests, their replies (some numeric errors, some preceded by
        same-TrID commands that are not in C{expect}) and unsolicited
        commands, shuffled and chunked: every request fires with its own
        reply or fails with its own error, everything else reaches the
        handlers.
        """
        p, _, _ = connect()
        n = data.draw(st.integers(1, 12))
        kinds = data.draw(st.lists(st.sampled_from(["ok", "error", "ans"]), min_size=n, max_size=n))
        outcomes: list[list[Any]] = []
        replies: list[Command] = []
        extras: list[Command] = []
        for kind in kinds:
            out: list[Any] = []
            if kind == "ans":
                d: Deferred[Command] = p.sendCommand("ANS", "a@b.c", "auth", "1", expect={"ANS"})
            else:
                d = p.sendCommand("CHG", "NLN")
            d.addBoth(out.append)
            trid = p._nextTrid - 1
            outcomes.append(out)
            if kind == "ok":
                replies.append(Command("CHG", trid, ("NLN",)))
            elif kind == "error":
                replies.append(Command("241", trid, (), b"<ml/>"))
            else:
                extras.append(Command("IRO", trid, ("1", "1", "x@y", "X", "1:0")))
                replies.append(Command("ANS", trid, ("OK",)))
        unsolicited = data.draw(st.lists(st.sampled_from([
            Command("NLN", None, ("NLN", "1:b@x", "B", "1:0", "0")),
            Command("UBX", None, ("1:b@x",), b"<Data/>"),
            Command("CHL", 0, ("123",)),
            Command("CHG", 10**6, ("NLN",)),
        ]), max_size=8))
        everything = data.draw(st.permutations(replies + extras + unsolicited))
        stream = b"".join(serialize(c) for c in everything)
        for piece in split(stream, data.draw(st.lists(st.integers(0, 10**5), max_size=10))):
            p.dataReceived(piece)
        for kind, out, reply in zip(kinds, outcomes, replies):
            self.assertEqual(len(out), 1)
            if kind == "error":
                self.assertIsInstance(out[0], Failure)
                self.assertIsInstance(out[0].value, ServerError)
                self.assertEqual(out[0].value.code, 241)
                self.assertEqual(out[0].value.payload, b"<ml/>")
            else:
                self.assertEqual(out[0], reply)
        handled = [c for c in everything if c in extras or c in unsolicited]
        self.assertEqual(p.seen, handled)
        self.assertEqual(p.pendingCount, 0)
