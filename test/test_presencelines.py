"""
The fast paths of the presence storm against the strict ones they stand
in for: the line readers of L{msnp.presencelines} against
L{msnp.wire.parseIncoming} plus the C{parse*} functions of
L{msnp.nsmessages}, the C-level percent decoding against
L{urllib.parse.unquote}, and the plain C{<msnobj/>} tokenizer against the
general attribute scanner. Whenever a fast path answers, the strict path
gives the same value for the same input; otherwise it declines (L{None})
and the strict path runs. A protocol with its readers and one without are
also fed the same generated streams and must end in the same state.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote, unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import Contact, Status
from msnp.endpoints import ClientIdentity
from msnp.errors import ProtocolError
from msnp.notification import NotificationProtocol
from msnp.nsmessages import parseOffline, parsePresence, parseUserData
from msnp.p2p.msnobject import MSNObject, _attributes, _scannedAttributes
from msnp.presencelines import readOffline, readPresence, readUserDataHeader
from msnp.wire import Command, Direction, MalformedLine, _percentDecode, decodeParameter, parseIncoming

SETTINGS = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

_EMAILS = ["bob@example.com", "Bob@Example.COM", "carol@example.com", " x@y", "1:", "", "bob", "12", "a:b@c"]
_GUIDS = ["", ";{0C2B8A1E-9A34-4D22-8D4D-4E3F1D1B9F01}", ";{0c2b8a1e-9a34-4d22-8d4d-4e3f1d1b9f01}", ";{}",
          ";via=9:x@y", ";0C2B8A1E-9A34-4D22-8D4D-4E3F1D1B9F01", ";{zz}"]
_TOKENS = ["NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN", "FLN", "nln", "XYZ", "0", "1", "", "  ",
           "2789003324:48", "0:0", "bob%20smith", "%E2%98%95", "%", "%4", "%ZZ", "a\\b", "Café", "%C3%A9%C3",
           quote('<msnobj Creator="bob@example.com" Size="10" Type="3" Location="0" Friendly="AAA=" SHA1D="x"/>', safe="")]
_prefix = st.sampled_from(["1:", "1:", "1:", "32:", "", "x:", "01:"])
_account = st.builds(lambda p, e, g: p + e + g, _prefix, st.sampled_from(_EMAILS), st.sampled_from(_GUIDS))
_token = st.sampled_from(_TOKENS) | st.text(alphabet="ab%0123456789ABCDEF: é", max_size=6)


@st.composite
def presenceLines(draw: Any) -> bytes:
    """
    Lines of the three commands, mostly well formed, with odd tokens,
    doubled spaces, old-style network ids, non-ASCII and CRs mixed in.
    """
    kind = draw(st.sampled_from(["NLN", "FLN", "UBX", "ILN", "NLN"]))
    tokens = [kind]
    if kind in ("NLN", "ILN"):
        tokens.append(draw(st.sampled_from(_TOKENS[:9])))
    tokens.append(draw(_account))
    tokens += draw(st.lists(_token, max_size=5))
    if kind == "UBX" and draw(st.booleans()):
        tokens.append(str(draw(st.integers(0, 10**12))))
    separator = draw(st.sampled_from([" "] * 8 + ["  "]))
    return separator.join(tokens).encode("utf-8")


def _strict(line: bytes) -> tuple[str, Any]:
    """
    What the general path makes of C{line}: the parsed value, or the
    name of the exception that stopped it.
    """
    try:
        parsed = parseIncoming(line, Direction.FROM_SERVER)
    except MalformedLine:
        return ("error", "MalformedLine")
    name = parsed.name
    try:
        if name == "NLN" and isinstance(parsed, Command):
            return ("value", parsePresence(parsed))
        if name == "FLN" and isinstance(parsed, Command):
            return ("value", parseOffline(parsed))
        if name == "UBX" and not isinstance(parsed, Command):
            command = parsed.withPayload(b"")
            return ("value", (parseUserData(command).account, parsed.payloadLength))
    except ProtocolError as e:
        return ("error", type(e).__name__)
    return ("other", name)


class LineReaderTests(SynchronousTestCase):
    """
    The readers answer the strict result or nothing.
    """

    def test_commonShapes(self) -> None:
        """
        The lines every server writes are read by the readers.
        """
        nln = b"NLN BSY 1:bob@example.com Bob%20Smith 2789003324:48 0"
        update = readPresence(nln)
        assert update is not None
        self.assertEqual(update.status, Status.BUSY)
        self.assertEqual(update.displayName, "Bob Smith")
        self.assertEqual(_strict(nln), ("value", update))
        fln = b"FLN 1:bob@example.com;{0C2B8A1E-9A34-4D22-8D4D-4E3F1D1B9F01} 0:0"
        self.assertEqual(_strict(fln), ("value", readOffline(fln)))
        ubx = b"UBX 1:bob@example.com 215"
        header = readUserDataHeader(ubx)
        assert header is not None
        self.assertEqual(header[1], 215)
        self.assertEqual(_strict(ubx), ("value", header))

    def test_declined(self) -> None:
        """
        Shapes outside the common one are left to the general path.
        """
        for line in [
            b"NLN BSY bob@example.com 1 Bob 0:0 0",  # MSNP15-17 network id
            b"NLN BSY  1:bob@example.com Bob 0:0 0",  # doubled space
            b"NLN XYZ 1:bob@example.com Bob 0:0 0",  # unknown status
            "NLN NLN 1:bob@example.com Café 0:0 0".encode("utf-8"),  # raw UTF-8
            b"NLN NLN 1:bob@example.com Bob 0:0",  # short
            b"UBX 1:bob@example.com 1234567890123",  # huge length
            b"UBX 1:bob@example.com x",
            b"FLN",
        ]:
            self.assertIsNone(readPresence(line) or readOffline(line) or readUserDataHeader(line), line)

    @SETTINGS
    @given(presenceLines())
    def test_readersAgreeWithStrictPath(self, line: bytes) -> None:
        """
        Whenever a reader answers, the general path parses the same line
        to the same value.
        """
        for reader in (readPresence, readOffline, readUserDataHeader):
            fast = reader(line)
            if fast is not None:
                self.assertEqual(_strict(line), ("value", fast), line)


class PercentDecodingTests(SynchronousTestCase):
    """
    L{msnp.wire._percentDecode} is C{unquote(text, errors="replace")}.
    """

    def test_examples(self) -> None:
        for text in ["%41", "%4", "%", "%%41", "a%C3%A9b", "é%C3", "%E2%82x", "%ZZ", "\\%41", "%c3%a9",
                     "x\x00%00", "%ED%A0%80", "%F0%9F%98%80", "a\\x41%41", "100%", "%\\x41"]:
            self.assertEqual(_percentDecode(text), unquote(text, errors="replace"), text)
            self.assertEqual(decodeParameter(text), unquote(text, errors="replace"), text)

    @SETTINGS
    @given(st.lists(st.one_of(
        st.sampled_from(["%", "%4", "%C3", "%A9", "%ff", "%00", "%25", "\\", "\\x", "x", "é", "☕", " ", "+"]),
        st.text(max_size=4),
        st.binary(max_size=4).map(lambda b: quote(b, safe="")),
    ), max_size=12).map("".join))
    def test_sameAsUnquote(self, text: str) -> None:
        self.assertEqual(_percentDecode(text), unquote(text, errors="replace"))


_ATTR_NAMES = st.sampled_from(["Creator", "Size", "Type", "Location", "Friendly", "SHA1D", "SHA1C", "stamp",
                               "creator", "x.y", "_a", "9bad"])
_ATTR_VALUES = st.sampled_from(["bob@example.com", "10", "3", "0", "AAA=", "x", "", "a&amp;b", "&#x41;", "<", "é",
                                "'", '"', " "])


@st.composite
def objectTags(draw: Any) -> str:
    pairs = draw(st.lists(st.tuples(_ATTR_NAMES, _ATTR_VALUES, st.sampled_from(['"', "'"])), max_size=9))
    space = draw(st.sampled_from([" ", " ", " ", "  ", "\n"]))
    body = "".join(f"{space}{name}={quote_}{value}{quote_}" for name, value, quote_ in pairs)
    end = draw(st.sampled_from(["/>", " />", "/>", "></msnobj>", "/>\n", ">"]))
    return draw(st.sampled_from(["<msnobj", "<msnobj", "<MSNOBJ", " <msnobj"])) + body + end


class ObjectTokenizerTests(SynchronousTestCase):
    """
    The plain-shape tokenizer of L{msnp.p2p.msnobject} against the
    general scanner.
    """

    @SETTINGS
    @given(objectTags())
    def test_sameAsScanner(self, text: str) -> None:
        try:
            expected: Optional[list[tuple[str, str]]] = _scannedAttributes(text)
        except ProtocolError:
            expected = None
        try:
            fast: Optional[list[tuple[str, str]]] = _attributes(text)
        except ProtocolError:
            fast = None
        self.assertEqual(fast, expected, text)

    def test_parsedObject(self) -> None:
        text = '<msnobj Creator="bob@example.com" Size="10" Type="3" Location="0" Friendly="AAA=" SHA1D="x" stamp="s"/>'
        obj = MSNObject.parse(text)
        self.assertEqual((obj.creator, obj.size, obj.type, obj.sha1d, obj.extra), ("bob@example.com", 10, 3, "x",
                                                                                  (("stamp", "s"),)))


def _protocol(readers: bool) -> NotificationProtocol:
    protocol = NotificationProtocol("alice@example.com", ClientIdentity(), clock=Clock())
    if not readers:
        protocol.lineReaders = {}
    protocol.makeConnection(StringTransport())
    for email in ("bob@example.com", "carol@example.com"):
        protocol.state.contacts.add(Contact(email))
    return protocol


def _contacts(protocol: NotificationProtocol) -> list[tuple[Any, ...]]:
    return [
        (c.email, c.status, c.displayName, c.capabilities, c.msnObject, c.personalMessage, c.currentMedia,
         sorted((g, p.capabilities) for g, p in c.endpoints.items()))
        for c in sorted(protocol.state.contacts, key=lambda c: c.email)
    ]


_UBX_PAYLOADS = st.sampled_from([
    b"", b"<Data><PSM>hi</PSM><CurrentMedia></CurrentMedia></Data>",
    b'<Data><PSM>a &amp; b</PSM><EndpointData id="{0C2B8A1E-9A34-4D22-8D4D-4E3F1D1B9F01}">'
    b"<Capabilities>1:2</Capabilities></EndpointData></Data>",
    b"<Data><PSM>x</PSM>", b"<Data><PSM><![CDATA[c]]></PSM></Data>", b"\xff\xfe", b"junk",
])


class StreamEquivalenceTests(SynchronousTestCase):
    """
    A protocol with its line readers and one without end in the same
    state after the same stream.
    """

    @SETTINGS
    @given(st.lists(st.tuples(presenceLines(), _UBX_PAYLOADS), max_size=15), st.sampled_from([b"\r\n", b"\n"]))
    def test_sameState(self, items: list[tuple[bytes, bytes]], ending: bytes) -> None:
        stream = b""
        for line, payload in items:
            line = line.replace(b"bob@example.com", b"bob@example.com").replace(b"\r", b"")
            if line.startswith(b"UBX"):
                head = line.split(b" ")[:2]
                line = b" ".join(head + [str(len(payload)).encode()])
                stream += line + ending + payload
            else:
                stream += line + ending
        with_, without = _protocol(True), _protocol(False)
        with_.dataReceived(stream)
        without.dataReceived(stream)
        self.assertEqual(_contacts(with_), _contacts(without))


class OverridingSubclassTests(SynchronousTestCase):
    """
    A subclass of L{NotificationProtocol} that overrides a handler the
    line readers go around gets every such line through its override.
    """

    def _feed(self, cls: type, stream: bytes) -> Any:
        protocol = cls("alice@example.com", ClientIdentity(), clock=Clock())
        protocol.makeConnection(StringTransport())
        protocol.state.contacts.add(Contact("bob@example.com"))
        protocol.dataReceived(stream)
        return protocol

    def test_handlerOverrides(self) -> None:
        """
        Overriding C{handle_NLN}, C{handle_FLN} or C{handle_UBX} drops
        that reader only; the others still read their lines.
        """
        seen: list[str] = []

        class Custom(NotificationProtocol):
            def handle_NLN(self, command: Command) -> None:
                seen.append(command.name)
                NotificationProtocol.handle_NLN(self, command)

        self.assertEqual(sorted(Custom.lineReaders), [b"FLN ", b"UBX "])
        self.assertEqual(sorted(NotificationProtocol.lineReaders), [b"FLN ", b"NLN ", b"UBX "])
        payload = b"<Data><PSM>hi</PSM></Data>"
        protocol = self._feed(Custom, b"NLN BSY 1:bob@example.com Bob 0 0\r\nUBX 1:bob@example.com %d\r\n%s"
                              % (len(payload), payload))
        self.assertEqual(seen, ["NLN"])
        bob = protocol.state.contacts.get("bob@example.com")
        self.assertEqual((bob.status, bob.personalMessage), (Status.BUSY, "hi"))

    def test_applyOverrides(self) -> None:
        """
        Overriding C{applyPresence} or C{applyUserData}, which the NLN and
        UBX readers go around, drops those readers too.
        """
        applied: list[Any] = []

        class Custom(NotificationProtocol):
            def applyPresence(self, update: Any) -> None:
                applied.append(update.displayName)

            def applyUserData(self, data: Any) -> None:
                applied.append(data.personalMessage)

        self.assertEqual(list(Custom.lineReaders), [b"FLN "])
        payload = b"<Data><PSM>hi</PSM></Data>"
        self._feed(Custom, b"NLN BSY 1:bob@example.com Bob 0 0\r\nUBX 1:bob@example.com %d\r\n%s"
                   % (len(payload), payload))
        self.assertEqual(applied, ["Bob", "hi"])

    def test_declaredReadersKept(self) -> None:
        """
        A subclass that declares C{lineReaders} itself keeps what it
        declared, overrides or not.
        """
        class Custom(NotificationProtocol):
            lineReaders = NotificationProtocol.lineReaders

            def handle_NLN(self, command: Command) -> None:
                pass

        self.assertEqual(sorted(Custom.lineReaders), [b"FLN ", b"NLN ", b"UBX "])
