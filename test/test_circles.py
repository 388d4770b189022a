"""
L{msnp.circles}: circle identifiers, roles and states, the circle ticket
and C{USR SHA A}, circle C{ADL} payloads and the circle C{NOT}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.circles import (
    CircleAddress,
    CircleProtocolError,
    CircleRole,
    CircleState,
    CircleTicket,
    buildCircleListPayload,
    circleAddress,
    circleAuthArguments,
    circleIdOfNotification,
    circleTarget,
    decodeCircleAuth,
    isCircleListPayload,
    memberVia,
    normalizeCircleId,
    parseCircleAddress,
    parseCircleListPayload,
)
from msnp.errors import ProtocolError
from msnp.wire import Command, serialize

FAMILY = "00000000-0000-0000-0009-0123456789ab"
#: The fixture ticket of reference 8.3 (H3), unescaped.
FIXTURE_TICKET = (
    '<?xml version="1.0" encoding="utf-16"?><SignedTicket ver="1" keyVer="1">'
    "<Data>RVhBTVBMRQ==</Data><Sig>U0lH</Sig></SignedTicket>"
)


class IdentifierTests(SynchronousTestCase):
    def test_normalize(self) -> None:
        """
        Circle ids are lower-cased and must carry the circle prefix; the
        personal book's all-zero id and garbage are refused.
        """
        self.assertEqual(normalizeCircleId(" 00000000-0000-0000-0009-0123456789AB "), FAMILY)
        for bad in ("00000000-0000-0000-0000-000000000000", "", "x" * 500, FAMILY + "0"):
            self.assertRaises(CircleProtocolError, normalizeCircleId, bad)

    def test_addresses(self) -> None:
        """
        The NS, SDG-target and via forms of Q.4.1.
        """
        self.assertEqual(circleAddress(FAMILY), f"9:{FAMILY}@live.com")
        self.assertEqual(circleTarget(FAMILY), f"9:{FAMILY}@live.com;path=IM")
        self.assertEqual(memberVia("Bob@Example.com", FAMILY), f"1:bob@example.com;via=9:{FAMILY}@live.com")

    def test_parseAddress(self) -> None:
        """
        Routing addresses keep their network, account and parameters; a
        circle address knows its circle id, a person's does not.
        """
        target = parseCircleAddress(circleTarget(FAMILY))
        self.assertEqual((target.network, target.path, target.circleId), (9, "IM", FAMILY))
        sender = parseCircleAddress("1:Alice@example.com;epid={6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}")
        self.assertEqual(sender.account, "alice@example.com")
        self.assertEqual(sender.epid, "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}")
        self.assertIsNone(sender.circleId)
        self.assertIsNone(CircleAddress(9, "nothing@live.com").circleId)
        self.assertEqual(str(target), circleTarget(FAMILY))

    def test_parseAddressHostile(self) -> None:
        """
        No network, no account, spaces or absurd lengths are protocol errors.
        """
        for bad in ("alice@example.com", ":x", "1:", "x:alice", "1:a b", "1:" + "a" * 600, "9999:x"):
            self.assertRaises(CircleProtocolError, parseCircleAddress, bad)
        self.assertTrue(issubclass(CircleProtocolError, ProtocolError))


class RoleStateTests(SynchronousTestCase):
    def test_names_and_numbers(self) -> None:
        """
        Roles and states read from names (any case) or numbers, and write
        back the names of Q.4.11.
        """
        self.assertIs(CircleRole.fromWire("Admin"), CircleRole.ADMIN)
        self.assertIs(CircleRole.fromWire("statependingoutbound"), CircleRole.PENDING)
        self.assertIs(CircleRole.fromWire("2"), CircleRole.ASSISTANT_ADMIN)
        self.assertIs(CircleState.fromWire("WaitingResponse"), CircleState.WAITING_RESPONSE)
        self.assertIs(CircleState.fromWire("3"), CircleState.ACCEPTED)
        self.assertEqual(CircleState.REJECTED.wireName, "Rejected")
        self.assertTrue(CircleRole.ASSISTANT_ADMIN.mayInvite)
        self.assertFalse(CircleRole.MEMBER.mayInvite)

    def test_unknown(self) -> None:
        """
        Unknown names and out-of-range numbers are protocol errors.
        """
        for bad in ("Owner", "9", "", "12345"):
            self.assertRaises(CircleProtocolError, CircleRole.fromWire, bad)
            self.assertRaises(CircleProtocolError, CircleState.fromWire, bad)


class TicketTests(SynchronousTestCase):
    def test_fixtureVector(self) -> None:
        """
        The fixture ticket gives exactly the C{USR 12 SHA A} line of Q.4.3.
        """
        line = serialize(Command("USR", 12, circleAuthArguments(CircleTicket(FIXTURE_TICKET))))
        self.assertEqual(
            line,
            b"USR 12 SHA A PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTE2Ij8+PFNpZ25lZFRpY2tldCB2ZXI9"
            b"IjEiIGtleVZlcj0iMSI+PERhdGE+UlZoQlRWQk1SUT09PC9EYXRhPjxTaWc+VTBsSDwvU2lnPjwvU2lnbmVkVGlja2V0Pg==\r\n",
        )

    def test_bytesAsReceived(self) -> None:
        """
        Whitespace and non-ASCII characters survive: the ticket is encoded
        as UTF-8 and never re-serialised.
        """
        text = "<SignedTicket>\r\n\t<Data>é</Data></SignedTicket>"
        self.assertEqual(decodeCircleAuth(CircleTicket(text).encoded()), text)

    def test_secret(self) -> None:
        """
        The ticket is kept out of its repr and out of a logged command.
        """
        ticket = CircleTicket(FIXTURE_TICKET)
        self.assertNotIn("Data", repr(ticket))
        described = Command("USR", 12, circleAuthArguments(ticket)).describe()
        self.assertNotIn(ticket.encoded(), described)

    def test_hostile(self) -> None:
        """
        An empty ticket and an argument that is not base64 of UTF-8 are refused.
        """
        self.assertRaises(CircleProtocolError, CircleTicket, "  ")
        self.assertRaises(CircleProtocolError, decodeCircleAuth, "not base64!")
        self.assertRaises(CircleProtocolError, decodeCircleAuth, "/w==")
        self.assertRaises(CircleProtocolError, decodeCircleAuth, "A" * 200_000)


class ListPayloadTests(SynchronousTestCase):
    def test_vector(self) -> None:
        """
        One circle gives the 93-byte payload of Q.4.4; duplicates merge.
        """
        payload = buildCircleListPayload([FAMILY, FAMILY.upper()])
        self.assertEqual(
            payload,
            b'<ml l="1"><d n="live.com"><c n="00000000-0000-0000-0009-0123456789ab" l="3" t="9" /></d></ml>',
        )
        self.assertEqual(len(payload), 93)
        self.assertEqual(buildCircleListPayload([]), b"")
        self.assertTrue(isCircleListPayload(payload))
        self.assertFalse(isCircleListPayload(b'<ml><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>'))

    def test_roundTrip(self) -> None:
        """
        What is built parses back to the same ids and bits.
        """
        other = "00000000-0000-0000-0009-00000000000f"
        entries = parseCircleListPayload(buildCircleListPayload([FAMILY, other], lists=4))
        self.assertEqual([(e.circleId, e.lists) for e in entries], [(FAMILY, 4), (other, 4)])

    def test_hostile(self) -> None:
        """
        Anything but one live.com domain of valid t=9 entries is refused.
        """
        bad = [
            b"<ml>",
            b"<x/>",
            b'<ml><d n="live.com"></d></ml>',
            b'<ml><d n="example.com"><c n="' + FAMILY.encode() + b'" l="3" t="9" /></d></ml>',
            b'<ml><d n="live.com"><c n="bob" l="3" t="1" /></d></ml>',
            b'<ml><d n="live.com"><c n="' + FAMILY.encode() + b'" l="x" t="9" /></d></ml>',
            b'<ml><d n="live.com"><c n="00000000-0000-0000-0000-000000000000" l="3" t="9" /></d></ml>',
            b'<ml><d n="live.com"><c n="' + FAMILY.encode() + b'" l="3" t="9" /></d><d n="live.com" /></ml>',
            b'<!DOCTYPE ml [<!ENTITY a "b">]><ml/>',
            b"<ml>" + b" " * 70_000 + b"</ml>",
        ]
        for payload in bad:
            self.assertRaises(CircleProtocolError, parseCircleListPayload, payload)


class NotificationTests(SynchronousTestCase):
    CIRCLE_NOT = (
        '<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><TO pid="0x00000003:0xbe19c000" '
        'name="alice@example.com"><VIA agent="messenger" /></TO><MSG id="0"><SUBSCR url="s.htm" />'
        '<ACTION url="a.htm" /><BODY>&lt;NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"&gt;&lt;HasNewItem&gt;true&lt;/HasNewItem&gt;'
        "&lt;CircleId&gt;00000000-0000-0000-0009-0123456789ab&lt;/CircleId&gt;&lt;/NotificationData&gt;"
        "</BODY></MSG></NOTIFICATION>"
    ).encode()

    def test_circleNot(self) -> None:
        """
        The 505-byte circle C{NOT} of Q.4.9 names its circle.
        """
        self.assertEqual(len(self.CIRCLE_NOT), 505)
        self.assertEqual(circleIdOfNotification(self.CIRCLE_NOT), FAMILY)

    def test_otherNot(self) -> None:
        """
        The C{ABCHInternal} form and other sites are not circle notices.
        """
        abch = self.CIRCLE_NOT.replace(b"CircleId", b"Service")
        self.assertIsNone(circleIdOfNotification(abch))
        self.assertIsNone(circleIdOfNotification(self.CIRCLE_NOT.replace(b"45705", b"12345")))

    def test_hostileNot(self) -> None:
        """
        Broken XML and a bad circle id are protocol errors.
        """
        self.assertRaises(CircleProtocolError, circleIdOfNotification, b"<NOTIFICATION CircleId")
        bad = self.CIRCLE_NOT.replace(b"0009-0123456789ab", b"0000-0123456789ab")
        self.assertRaises(CircleProtocolError, circleIdOfNotification, bad)
