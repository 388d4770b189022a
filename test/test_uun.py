"""
Tests for L{msnp.uun}: every C{UUN}/C{UBN} type of the reference is built
and read as its own value, unknown ones become L{UnknownNotification}, and
the bytes match the reference's examples.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.uun import (
    EverywhereSignOut,
    NotificationError,
    NotificationType,
    OpaqueNotification,
    PlaceSignOut,
    ReceivedNotification,
    RTCActivity,
    SwitchboardClosed,
    UnknownNotification,
    buildUUN,
    encodeBody,
    isSignOutRequest,
    parseBody,
    parseUBN,
    uunRecipient,
)
from msnp.wire import Command, Direction, parseCommand, serialize

OTHER_PLACE = "{11111111-2222-3333-4444-555555555555}"


class BuildTests(SynchronousTestCase):
    """
    Building C{UUN} lines.
    """

    def test_signOutPlaceBytes(self) -> None:
        """
        Signing one place out is byte for byte the reference's example
        (section 5.4): bare address, braced epid, type 4, 14 bytes.
        """
        command = buildUUN(21, "Alice@Example.com", PlaceSignOut(), OTHER_PLACE.lower())
        self.assertEqual(
            serialize(command),
            b"UUN 21 alice@example.com;{11111111-2222-3333-4444-555555555555} 4 14\r\ngoawyplzthxbye",
        )

    def test_noMoreMpop(self) -> None:
        """
        The AutoLogoff variant appends C{-nomorempop} (25 bytes).
        """
        self.assertEqual(encodeBody(PlaceSignOut(noMoreMpop=True)), (4, b"goawyplzthxbye-nomorempop"))

    def test_everywhere(self) -> None:
        """
        Signing out everywhere is type 8 C{gtfo} to the bare address.
        """
        self.assertEqual(
            serialize(buildUUN(5, "alice@example.com", EverywhereSignOut())),
            b"UUN 5 alice@example.com 8 4\r\ngtfo",
        )

    def test_switchboardClosed(self) -> None:
        """
        Type 5 joins session id and detail with C{;}.
        """
        self.assertEqual(
            encodeBody(SwitchboardClosed("11752013", "17262740.1050826919.32308")),
            (5, b"11752013;17262740.1050826919.32308"),
        )

    def test_rtcActivity(self) -> None:
        """
        Type 11 is the activity number followed by its parameters.
        """
        self.assertEqual(encodeBody(RTCActivity(3, ("a", "b"))), (11, b"3 a b"))

    def test_opaqueAndUnknown(self) -> None:
        """
        Opaque bodies go out unchanged; an unknown numeric type too.
        """
        self.assertEqual(encodeBody(OpaqueNotification(NotificationType.P2P_DATA, b"x")), (3, b"x"))
        self.assertEqual(encodeBody(UnknownNotification("42", b"y")), (42, b"y"))

    def test_unusableBodies(self) -> None:
        """
        What cannot be put on the wire raises L{NotificationError}: a
        non-numeric type, an oversized payload, separators in fields.
        """
        for body in (
            UnknownNotification("x4", b""),
            OpaqueNotification(NotificationType.XML_DATA, b"a" * 8000),
            SwitchboardClosed("1;2", "x"),
            SwitchboardClosed("", "x"),
            SwitchboardClosed("1", "a b"),
            RTCActivity(1, ("a b",)),
        ):
            self.assertRaises(NotificationError, encodeBody, body)

    def test_unusableRecipients(self) -> None:
        """
        A recipient that would break the line, or an epid that is not a
        GUID, is refused before anything is sent.
        """
        self.assertRaises(NotificationError, uunRecipient, "not an address")
        self.assertRaises(NotificationError, uunRecipient, "a@b;c")
        self.assertRaises(NotificationError, uunRecipient, "alice@example.com", "{nope}")
        self.assertRaises(NotificationError, uunRecipient, "alice@example.com", "")


class ParseTests(SynchronousTestCase):
    """
    Reading C{UBN} lines.
    """

    def ubn(self, raw: bytes) -> ReceivedNotification:
        return parseUBN(parseCommand(raw, Direction.FROM_SERVER))

    def test_signOutFromOwnPlace(self) -> None:
        """
        The reference's C{UBN} (lower-case sender epid) reads as a place
        sign-out from alice's place, the epid normalised.
        """
        received = self.ubn(
            b"UBN alice@example.com;{6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b} 4 14\r\ngoawyplzthxbye"
        )
        self.assertEqual(
            received,
            ReceivedNotification(
                "alice@example.com", "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}", PlaceSignOut()
            ),
        )
        self.assertTrue(isSignOutRequest(received, "Alice@example.com"))

    def test_strangerCannotSignMeOut(self) -> None:
        """
        The same payload from another account is not a sign-out request.
        """
        received = self.ubn(b"UBN mallory@example.com 4 14\r\ngoawyplzthxbye")
        self.assertIsInstance(received.body, PlaceSignOut)
        self.assertFalse(isSignOutRequest(received, "alice@example.com"))

    def test_everywhereAndPrefixedSender(self) -> None:
        """
        Type 8 C{gtfo} with a network-prefixed sender.
        """
        received = self.ubn(b"UBN 1:alice@example.com 8 4\r\ngtfo")
        self.assertEqual(received, ReceivedNotification("alice@example.com", None, EverywhereSignOut()))
        self.assertTrue(isSignOutRequest(received, "alice@example.com"))

    def test_wrongPayloadIsNotASignOut(self) -> None:
        """
        Type 4 or 8 with another payload is unknown, never a sign-out.
        """
        self.assertEqual(parseBody("4", b"hello"), UnknownNotification("4", b"hello"))
        self.assertEqual(parseBody("8", b"bye"), UnknownNotification("8", b"bye"))

    def test_noMoreMpop(self) -> None:
        """
        The C{-nomorempop} variant is recognised.
        """
        self.assertEqual(parseBody("4", b"goawyplzthxbye-nomorempop"), PlaceSignOut(noMoreMpop=True))

    def test_everyListedType(self) -> None:
        """
        Each listed type reads back as what was built.
        """
        for body in (
            OpaqueNotification(NotificationType.XML_DATA, b"<x/>"),
            OpaqueNotification(NotificationType.SIP_INVITE, b"INVITE"),
            OpaqueNotification(NotificationType.P2P_DATA, b"MSNSLP"),
            PlaceSignOut(),
            SwitchboardClosed("3046487520", "207.46.108.38:1863"),
            OpaqueNotification(NotificationType.RESYNCHRONIZE, b""),
            EverywhereSignOut(),
            OpaqueNotification(NotificationType.TURN, b"turn"),
            RTCActivity(1, ("x",)),
            OpaqueNotification(NotificationType.TUNNELLED_SIP, b"<sip/>"),
        ):
            kind, payload = encodeBody(body)
            self.assertEqual(parseBody(str(kind), payload), body)

    def test_unknownTypes(self) -> None:
        """
        Unlisted, non-numeric and absurdly long types are kept raw.
        """
        for kind in ("7", "99", "x", "", "123456789"):
            self.assertEqual(parseBody(kind, b"p"), UnknownNotification(kind, b"p"))

    def test_garbledStructuredPayloads(self) -> None:
        """
        Unreadable type 5 and 11 payloads are unknown, not errors.
        """
        self.assertIsInstance(parseBody("5", b"\xff\xfe"), UnknownNotification)
        self.assertIsInstance(parseBody("5", b";x"), UnknownNotification)
        self.assertIsInstance(parseBody("11", b"abc"), UnknownNotification)
        self.assertIsInstance(parseBody("11", b""), UnknownNotification)

    def test_badEndpointIsDropped(self) -> None:
        """
        A sender suffix that is no GUID leaves the endpoint unknown.
        """
        self.assertIsNone(parseUBN(Command("UBN", None, ("bob@example.com;", "1"), b"")).senderEndpoint)

    def test_malformedLines(self) -> None:
        """
        A UBN without sender or type, or whose sender is no address, or
        another command, raises L{NotificationError}.
        """
        for command in (
            Command("UBN", None, ("bob@example.com",), b""),
            Command("UBN", None, ("1:", "4"), b""),
            Command("UUN", 1, ("bob@example.com", "4"), b""),
        ):
            self.assertRaises(NotificationError, parseUBN, command)
