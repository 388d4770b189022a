"""
The C{UBX} scanner (L{msnp.nsmessages.scanUserData}) against the strict
parser: property tests over payloads of the common shapes, of shapes only
the strict parser handles, and of hostile ones. Whenever the scanner
answers, the strict parser accepts the same bytes and gives the same
result; everything else falls back (the scanner answers L{None}).
"""

from __future__ import annotations

import signal
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ProtocolError
from msnp.nsmessages import AccountReference, _parseUserDataXML, parseUserData, scanUserData
from msnp.ubxscan import UserDataTails, scanUserDataFields
from msnp.wire import Command
from msnp.xmlsafe import XMLError

SETTINGS = settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

ACCOUNT = AccountReference("bob@example.com", 1, None, None)

_pieces = st.sampled_from([
    "a", "Café", "☕", " ", "\t", "\n", "\r", "\r\n", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&", "<", ">",
    "]]>", "]]", "]", "&#x7B;", "&#125;", "&#0;", "&#x110000;", "&#xD800;", "&#13;", "&nbsp;", "\x00", "\x1f",
    "\ufffe", "\\0Music\\01\\0{0}\\0", "<![CDATA[x]]>", "<!-- c -->", "<?pi x?>", "<b>x</b>", "\u2028",
])
_benign = st.sampled_from(["a", "Café", "☕", " ", "\t", "\n", "&amp;", "&lt;", "&gt;", "&#x7B;", "&#125;", "]", ">"])
_text = st.one_of(st.lists(_benign, max_size=6), st.lists(_pieces, max_size=6)).map("".join)
_guid = st.sampled_from(["{AB12-CD}", "ab12-cd", "{ab12-cd}", "", "{}", "x y", "{A&amp;B}", "{A\"B}"])
_names = st.sampled_from(["PSM", "CurrentMedia", "MachineGuid", "DDP", "Scene", "ColorScheme", "EndpointData",
                          "PrivateEndpointData", "x:PSM", "Capabilities", "a-b"])


@st.composite
def _item(draw: Any) -> str:
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return (f'<EndpointData id="{draw(_guid)}"><Capabilities>{draw(_text)}</Capabilities></EndpointData>')
    if kind == 1:
        return f"<PrivateEndpointData><EpName>{draw(_text)}</EpName><Idle>true</Idle></PrivateEndpointData>"
    if kind == 2:
        return f"<{draw(_names)}{draw(st.sampled_from(['/', ' /', '  /']))}>"
    if kind == 3:
        return draw(st.sampled_from([" ", "\n", "<!-- x -->", "text", "<EndpointData/>", '<EndpointData id="{A}"/>']))
    name = draw(_names)
    return f"<{name}>{draw(_text)}</{name}>"


@st.composite
def payloads(draw: Any) -> bytes:
    root = draw(st.sampled_from(["Data"] * 6 + ['Data xmlns="urn:x"', "Other"]))
    body = "".join(draw(st.lists(_item(), max_size=8)))
    prefix = draw(st.sampled_from(["", "", "", "", '<?xml version="1.0"?>', " ", "\ufeff"]))
    doc = f"{prefix}<{root}>{body}</{root.split()[0]}>".encode("utf-8")
    if draw(st.integers(0, 3)) == 0:
        # A hostile byte or two anywhere.
        cut = draw(st.integers(0, len(doc)))
        doc = doc[:cut] + draw(st.binary(max_size=2)) + doc[cut:]
    return doc


def strict(payload: bytes) -> Optional[tuple[str, str, dict[str, Any], bool]]:
    try:
        data = _parseUserDataXML(ACCOUNT, payload)
    except (XMLError, ProtocolError):
        return None
    assert data.endpoints is not None
    return data.personalMessage, data.currentMedia, data.endpoints, data.private


class ScannerTests(SynchronousTestCase):
    def test_commonShape(self) -> None:
        """
        The document every client writes is read by the scanner.
        """
        payload = (b'<Data><PSM>a &amp; b</PSM><CurrentMedia></CurrentMedia><EndpointData id="{ab12-cd}">'
                   b"<Capabilities>2789003324:48</Capabilities></EndpointData><MachineGuid>&#x7B;AB&#x7D;</MachineGuid>"
                   b"<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene><ColorScheme>-3</ColorScheme></Data>")
        scanned = scanUserData(payload)
        assert scanned is not None
        self.assertEqual(scanned, strict(payload)[:3])  # type: ignore[index]

    @SETTINGS
    @given(payloads())
    def test_scannerAgreesWithStrictParser(self, payload: bytes) -> None:
        """
        Whenever the scanner answers, the strict parser accepts the bytes
        too and reads the same personal message, media and places (no
        private places); and L{parseUserData} gives the strict result
        whatever the payload, or fails as the strict parser does.
        """
        expected = strict(payload)
        scanned = scanUserData(payload)
        if scanned is not None:
            self.assertIsNotNone(expected, payload)
            assert expected is not None
            self.assertEqual(scanned, expected[:3], payload)
            self.assertFalse(expected[3])
        command = Command("UBX", None, ("1:bob@example.com", str(len(payload))), payload)
        if expected is None:
            if payload.strip():
                self.assertRaises((XMLError, ProtocolError), parseUserData, command)
            return
        data = parseUserData(command)
        self.assertEqual((data.personalMessage, data.currentMedia, data.endpoints, data.private), expected)


#: One thing the scanner must refuse in otherwise plain text.
_lone = st.sampled_from(["a & b", "]]>", "x]]>y", "&#0;", "&#xFFFE;", "&bogus;", "\r", "\x01", "\ufffe", "<", "&#x7B;"])


@st.composite
def _heads(draw: Any) -> bytes:
    """
    What comes before a payload's places: C{<Data>}, the personal message
    and the media in their usual and unusual spellings, sometimes with a
    hostile byte or two.
    """
    def element(name: str) -> Any:
        return st.one_of(st.sampled_from(["", f"<{name}/>", f"<{name} />", f"<{name}>"]),
                         st.one_of(_text, _lone).map(lambda text: f"<{name}>{text}</{name}>"))
    head = f"<Data>{draw(element('PSM'))}{draw(element('CurrentMedia'))}".encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(head)))
        head = head[:cut] + draw(st.binary(max_size=2)) + head[cut:]
    return head


@st.composite
def _tails(draw: Any) -> bytes:
    """
    What comes after: places, flat elements and anything else, then
    C{</Data>}.
    """
    common = st.one_of(
        _benign.map(lambda caps: f'<EndpointData id="{{AB12-CD}}"><Capabilities>{caps}:48</Capabilities></EndpointData>'),
        st.sampled_from(["<MachineGuid>&#x7B;AB&#x7D;</MachineGuid>", "<DDP></DDP>", "<Scene/>", "<ColorScheme>-3</ColorScheme>"]),
    )
    items = draw(st.lists(st.one_of(common, common, _item()), max_size=5))
    tail = ("".join(items) + "</Data>").encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        cut = draw(st.integers(0, len(tail)))
        tail = tail[:cut] + draw(st.binary(max_size=2)) + tail[cut:]
    return tail


class TailMemoTests(SynchronousTestCase):
    """
    L{UserDataTails}: a contact's remembered tail spares reading it again,
    and the answer is always what the scanner reads from the whole payload.
    """

    COMMON_TAIL = (b'<EndpointData id="{ab12-cd}"><Capabilities>2789003324:48</Capabilities></EndpointData>'
                   b"<MachineGuid>&#x7B;AB&#x7D;</MachineGuid><DDP></DDP><Scene></Scene></Data>")

    @SETTINGS
    @given(st.lists(_heads(), min_size=1, max_size=4), st.lists(_tails(), min_size=1, max_size=3),
           st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 1)), min_size=1, max_size=12))
    def test_sameAnswerAsTheScanner(self, heads: list[bytes], tails: list[bytes],
                                    order: list[tuple[int, int, int]]) -> None:
        """
        Payloads made of a few heads and tails in any order, from two
        contacts: each answer is the scanner's for the whole payload (which
        the test above holds to the strict parser).
        """
        memo = UserDataTails(storm=0)
        for headIndex, tailIndex, who in order:
            payload = heads[headIndex % len(heads)] + tails[tailIndex % len(tails)]
            self.assertEqual(memo.scan(("bob", "carol")[who], payload, 2), scanUserDataFields(payload), payload)

    def test_repeatedTailNotReadAgain(self) -> None:
        """
        A payload ending with the remembered tail has only its head read:
        the places are the remembered capabilities, the very dict.
        """
        memo = UserDataTails(storm=0)
        first = memo.scan("bob", b"<Data><PSM>one</PSM>" + self.COMMON_TAIL, 1)
        second = memo.scan("bob", b"<Data><PSM>two &amp; more</PSM><CurrentMedia/>" + self.COMMON_TAIL, 1)
        assert first is not None and second is not None
        self.assertEqual(first, ("one", "", {"{AB12-CD}": "2789003324:48"}))
        self.assertEqual(second[:2], ("two & more", ""))
        self.assertIs(second[2], first[2])
        # A head the scanner refuses is refused with a remembered tail too.
        self.assertIsNone(memo.scan("bob", b"<Data><PSM>a & b</PSM>" + self.COMMON_TAIL, 1))
        self.assertIsNone(memo.scan("bob", b"<Data> <PSM>x</PSM>" + self.COMMON_TAIL, 1))
        # A tail remembered for bob says nothing about carol's payloads.
        self.assertIsNone(memo.scan("carol", b"<Data><PSM>x</PSM>" + self.COMMON_TAIL[:-7] + b"<Q></Data>", 1))

    def test_remembersOnlyAfterAStorm(self) -> None:
        """
        Nothing is remembered until C{storm} payloads were read, and the
        tails are forgotten when they outnumber twice the contacts.
        """
        memo = UserDataTails(storm=3)
        for n in range(2):
            memo.scan(f"c{n}", b"<Data><PSM>x</PSM>" + self.COMMON_TAIL, 1)
        self.assertIsNone(memo._tails)
        memo.scan("c2", b"<Data><PSM>x</PSM>" + self.COMMON_TAIL, 1)
        self.assertEqual(memo._tails and list(memo._tails), ["c2"])
        for n in range(3, 30):
            memo.scan(f"c{n}", b"<Data><PSM>x</PSM>" + self.COMMON_TAIL, 1)
        assert memo._tails is not None
        self.assertLessEqual(len(memo._tails), 2 * 1 + 16 + 1)


    def test_longTailNotRemembered(self) -> None:
        """
        A padded tail is read, but not kept: a hostile peer cannot make a
        session hold a large payload per contact.
        """
        memo = UserDataTails(storm=0)
        memo.scan("bob", b"<Data><PSM>x</PSM>" + self.COMMON_TAIL, 1)
        padded = self.COMMON_TAIL[:-7] + b"<DDP>" + b"a" * 8000 + b"</DDP></Data>"
        payload = b"<Data><PSM>y</PSM>" + padded
        self.assertEqual(memo.scan("bob", payload, 1), scanUserDataFields(payload))
        self.assertEqual(memo._tails, {})


class BacktrackingTests(SynchronousTestCase):
    """
    Payloads that almost match the scanner's shape. With a run of text
    characters repeated inside a repetition, each of these made the
    regular expression backtrack exponentially (a UBX held the reactor
    until the test runner gave up); they must be settled at once.
    """

    def setUp(self) -> None:
        # A relapse would hang rather than fail: an interval timer turns it
        # into a failure after a generous 30 s (the cases settle in about
        # 20 ms). The regular expression engine checks for signals while it
        # backtracks, so the handler's exception interrupts the match.
        if not hasattr(signal, "setitimer"):
            return

        def expired(signum: int, frame: Any) -> None:
            raise self.failureException("the scanner is still matching after 30 s: it backtracks")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, 30.0)

        def restore() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

        self.addCleanup(restore)

    def test_almostMatchingPayloads(self) -> None:
        cases = [
            b"<Data><PSM>" + b"a" * 60000 + b"</PSMx></Data>",
            b"<Data><PSM>x</PSM><A>" + b"b" * 60000 + b"</B></Data>",
            b"<Data>" + b"<A>x</A>" * 7000 + b"<Q></Data>",
            b"<Data><PSM>" + b"&amp;" * 12000 + b"&</PSM></Data>",
            b"<Data>"
            + b'<EndpointData id="{1}"><Capabilities>1:2</Capabilities></EndpointData>' * 700
            + b"<X></Data>",
        ]
        for payload in cases:
            self.assertIsNone(scanUserData(payload))
        self.assertIsNotNone(scanUserData(b"<Data><PSM>" + b"]" * 60000 + b"</PSM></Data>"))
