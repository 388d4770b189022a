"""
L{msnp.circlewire}: the routed payloads of C{PUT}/C{SDG}/C{NFY}. The
reference's four examples (Q.4.6-Q.4.8) are reproduced byte for byte;
property tests (hypothesis) show the parsers never raise anything but
L{MalformedRoutedPayload} and that what is built parses back.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.circlewire import (
    CircleMessageType,
    ContentBlock,
    RosterChange,
    applyRosterChange,
    buildPartPayload,
    rosterUserOf,
    MalformedRoutedPayload,
    buildJoinPayload,
    buildLeaveNotification,
    buildMessagePayload,
    buildRosterDocument,
    buildRosterNotification,
    formatEpid,
    parseCircleMessage,
    parseRosterChange,
    parseRosterDocument,
    parseRoutedPayload,
)

FAMILY = "00000000-0000-0000-0009-0123456789ab"
ALICE_EPID = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

PUT_EXAMPLE = (
    "Routing: 1.0\r\nTo: 9:00000000-0000-0000-0009-0123456789ab@live.com\r\n"
    "From: 1:alice@example.com;epid={6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}\r\n\r\n"
    "Reliability: 1.0\r\nStream: 0\r\nSegment: 0\r\n\r\n"
    "Publication: 1.0\r\nUri: /circle\r\nContent-Type: application/circles+xml\r\nContent-Length: 86\r\n\r\n"
    "<circle><roster><id>IM</id><user><id>1:alice@example.com</id></user></roster></circle>"
).encode()

SDG_EXAMPLE = (
    "Routing: 1.0\r\nTo: 9:00000000-0000-0000-0009-0123456789ab@live.com;path=IM\r\n"
    "From: 1:alice@example.com;epid={6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}\r\n\r\n"
    "Reliability: 1.0\r\nStream: 0\r\nSegment: 1\r\n\r\n"
    "Messaging: 1.0\r\nContent-Length: 12\r\nContent-Type: Text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\nMessage-Type: Text\r\nMIME-Version: 1.0\r\n"
    "X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nHello circle"
).encode()


class ReferenceVectorTests(SynchronousTestCase):
    def test_put(self) -> None:
        """
        The join C{PUT} is the 362 bytes of Q.4.6 (epid lower-cased).
        """
        payload = buildJoinPayload(FAMILY, "alice@example.com", ALICE_EPID)
        self.assertEqual(payload, PUT_EXAMPLE)
        self.assertEqual(len(payload), 362)

    def test_sdg(self) -> None:
        """
        The text C{SDG} is the 409 bytes of Q.4.8, and reads back.
        """
        payload = buildMessagePayload(FAMILY, "alice@example.com", ALICE_EPID, 1, text="Hello circle")
        self.assertEqual(payload, SDG_EXAMPLE)
        message = parseCircleMessage(parseRoutedPayload(payload))
        assert message is not None
        self.assertEqual(
            (message.circleId, message.senderEmail, message.type, message.text, message.segment),
            (FAMILY, "alice@example.com", CircleMessageType.TEXT, "Hello circle", 1),
        )
        self.assertEqual(message.senderEpid, "{6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}")

    def test_nfyPut(self) -> None:
        """
        The roster C{NFY PUT} is 366 bytes (Q.4.7 a) and lists both members.
        """
        payload = buildRosterNotification(FAMILY, "alice@example.com", ["alice@example.com", "bob@example.com"])
        self.assertEqual(len(payload), 366)
        change = parseRosterChange("PUT", parseRoutedPayload(payload))
        assert change is not None
        self.assertEqual(change.present, ("alice@example.com", "bob@example.com"))

    def test_nfyDel(self) -> None:
        """
        The C{NFY DEL} is 288 bytes (Q.4.7 d) and names who left.
        """
        payload = buildLeaveNotification(FAMILY, "alice@example.com", "bob@example.com", 2)
        self.assertEqual(len(payload), 288)
        change = parseRosterChange("DEL", parseRoutedPayload(payload))
        assert change is not None
        self.assertEqual((change.circleId, change.left), (FAMILY, ("bob@example.com",)))


class MessageTests(SynchronousTestCase):
    def test_nudgeAndTyping(self) -> None:
        """
        Nudge and typing build with the headers of Q.4.8 and read back.
        """
        nudge = buildMessagePayload(FAMILY, "bob@example.com", "{AB}", 4, CircleMessageType.NUDGE)
        self.assertIn(b"Message-Type: Nudge\r\n", nudge)
        self.assertTrue(nudge.endswith(b"\r\n\r\nID: 1\r\n\r\n"))
        typing = buildMessagePayload(FAMILY, "bob@example.com", "{AB}", 5, CircleMessageType.TYPING)
        self.assertIn(b"TypingUser: bob@example.com\r\n", typing)
        for payload, kind in ((nudge, CircleMessageType.NUDGE), (typing, CircleMessageType.TYPING)):
            message = parseCircleMessage(parseRoutedPayload(payload))
            assert message is not None
            self.assertIs(message.type, kind)

    def test_multilineUnicode(self) -> None:
        """
        A multi-line, non-ASCII text survives (the body is everything after
        the content block, whatever Content-Length counts).
        """
        text = "première ligne\nzweite Zeile\n\nend"
        payload = buildMessagePayload(FAMILY, "bob@example.com", "{AB}", 0, text=text)
        characterCount = payload.replace(b"Content-Length: 38", b"Content-Length: 33")
        for data in (payload, characterCount):
            message = parseCircleMessage(parseRoutedPayload(data))
            assert message is not None
            self.assertEqual(message.text, text)

    def test_lfOnlyHeaders(self) -> None:
        """
        Bare LF line ends in the header blocks are read too.
        """
        data = SDG_EXAMPLE.replace(b"\r\n", b"\n")
        message = parseCircleMessage(parseRoutedPayload(data))
        assert message is not None
        self.assertEqual(message.text, "Hello circle")

    def test_unknownTypeIgnored(self) -> None:
        """
        A message type the library does not know reads as L{None}.
        """
        data = SDG_EXAMPLE.replace(b"Message-Type: Text", b"Message-Type: Wink")
        self.assertIsNone(parseCircleMessage(parseRoutedPayload(data)))

    def test_notToACircle(self) -> None:
        """
        An C{SDG} whose C{To} is a person, or whose block is not
        C{Messaging}, is malformed for the circle reader.
        """
        person = SDG_EXAMPLE.replace(b"9:00000000-0000-0000-0009-0123456789ab@live.com;path=IM", b"1:bob@example.com")
        self.assertRaises(MalformedRoutedPayload, parseCircleMessage, parseRoutedPayload(person))
        self.assertRaises(MalformedRoutedPayload, parseCircleMessage, parseRoutedPayload(PUT_EXAMPLE))
        self.assertRaises(
            MalformedRoutedPayload, parseCircleMessage, parseRoutedPayload(SDG_EXAMPLE.replace(b"\r\n\r\nHello", b"\r\n\r\n\xff"))
        )

    def test_formatEpid(self) -> None:
        """
        Endpoint ids are written lower case in braces, with or without input braces.
        """
        self.assertEqual(formatEpid("6F0D1A2B-3C4D"), "{6f0d1a2b-3c4d}")
        self.assertEqual(formatEpid(ALICE_EPID), "{6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}")
        self.assertRaises(ValueError, formatEpid, "{}")


class RosterTests(SynchronousTestCase):
    def test_document(self) -> None:
        """
        Roster documents round-trip; escaping is applied.
        """
        document = parseRosterDocument(buildRosterDocument(["a@x.com", "b&c@x.com"]))
        self.assertEqual(document.emails, ("a@x.com", "b&c@x.com"))

    def test_hostileDocuments(self) -> None:
        """
        Broken or empty rosters are malformed.
        """
        for bad in (
            b"<circle>",
            b"<circle><props/></circle>",
            b"<circle><roster><user><id>1:a@x.com</id></user></roster></circle>",
            b"<circle><roster><id>IM</id><user /></roster></circle>",
            b'<!DOCTYPE x [<!ENTITY y "z">]><circle/>',
            b"<circle><roster><id>IM</id>" + b"<user><id>1:a@x.com</id></user>" * 1001 + b"</roster></circle>",
        ):
            self.assertRaises(MalformedRoutedPayload, parseRosterDocument, bad)

    def test_rosterChangeRules(self) -> None:
        """
        An C{NFY} not from a circle, or with another content type, is
        malformed; the "new circle" notification and a non-IM roster carry
        no roster change.
        """
        good = buildRosterNotification(FAMILY, "alice@example.com", ["bob@example.com"])
        fromPerson = good.replace(b"From: 9:00000000-0000-0000-0009-0123456789ab@live.com", b"From: 1:eve@example.com")
        self.assertRaises(MalformedRoutedPayload, parseRosterChange, "PUT", parseRoutedPayload(fromPerson))
        wrongType = good.replace(b"application/circles+xml", b"text/plain")
        self.assertRaises(MalformedRoutedPayload, parseRosterChange, "PUT", parseRoutedPayload(wrongType))
        self.assertRaises(MalformedRoutedPayload, parseRosterChange, "ZAP", parseRoutedPayload(good))
        empty = buildLeaveNotification(FAMILY, "a@x.com", "b@x.com").replace(b"Uri: /circle/roster(IM)/user(1:b@x.com)", b"Uri: /circle")
        self.assertIsNone(parseRosterChange("DEL", parseRoutedPayload(empty)))
        self.assertIsNone(parseRosterChange("PUT", parseRoutedPayload(empty.replace(b"Notification: 1.0", b"Publication: 1.0"))))
        other = good.replace(b"<id>IM</id>", b"<id>Other</id>")
        self.assertIsNone(parseRosterChange("PUT", parseRoutedPayload(other)))


class RosterStateTests(SynchronousTestCase):
    def test_apply(self) -> None:
        """
        C{NFY PUT} adds (never removes), C{NFY DEL} removes, the account
        itself is never counted; the result names who joined and who left.
        """
        online: set[str] = {"carol@x.com"}
        joined, left = applyRosterChange(online, RosterChange(FAMILY, present=("me@x.com", "bob@x.com")), "Me@x.com")
        self.assertEqual((joined, left, online), ({"bob@x.com"}, set(), {"bob@x.com", "carol@x.com"}))
        joined, left = applyRosterChange(online, RosterChange(FAMILY, present=("bob@x.com",)), "me@x.com")
        self.assertEqual((joined, left), (set(), set()))
        joined, left = applyRosterChange(online, RosterChange(FAMILY, left=("carol@x.com", "zed@x.com")), "me@x.com")
        self.assertEqual((joined, left, online), (set(), {"carol@x.com"}, {"bob@x.com"}))

    def test_partPayload(self) -> None:
        """
        The roster C{DEL} names the sender's roster user, as MSNPSharp writes it.
        """
        routed = parseRoutedPayload(buildPartPayload(FAMILY, "alice@example.com", ALICE_EPID))
        self.assertEqual(routed.kind, ContentBlock.PUBLICATION)
        self.assertEqual(routed.header("Uri"), "/circle/roster(IM)/user(1:alice@example.com)")
        self.assertEqual(rosterUserOf(routed), "alice@example.com")
        self.assertEqual(routed.body, b"")


class WireTests(SynchronousTestCase):
    def test_commandsFrame(self) -> None:
        """
        The circle commands frame as the reference shows: the C{PUT}/C{DEL}
        acknowledgement C{OK 0} reads as the C{OK} form with an empty
        payload, server C{NFY} carries its verb and no TrID, C{SDG 0} a TrID 0.
        """
        from msnp.wire import Command, Direction, parseCommand, serialize

        ack = parseCommand(serialize(Command("PUT", 14, ("OK", "0"))), Direction.FROM_SERVER)
        self.assertEqual((ack.trid, ack.arguments, ack.payload), (14, ("OK",), b""))
        nfy = buildRosterNotification(FAMILY, "alice@example.com", ["bob@example.com"])
        parsed = parseCommand(serialize(Command("NFY", None, ("PUT",), nfy)), Direction.FROM_SERVER)
        self.assertEqual((parsed.trid, parsed.arguments, parsed.payload), (None, ("PUT",), nfy))
        relayed = parseCommand(serialize(Command("SDG", 0, (), SDG_EXAMPLE)), Direction.FROM_SERVER)
        self.assertEqual((relayed.trid, relayed.payload), (0, SDG_EXAMPLE))
        sent = parseCommand(serialize(Command("SDG", 15, (), SDG_EXAMPLE)), Direction.FROM_CLIENT)
        self.assertEqual((sent.trid, sent.payload), (15, SDG_EXAMPLE))


class StructureTests(SynchronousTestCase):
    def test_missingBlocks(self) -> None:
        """
        No routing block, no content block, no To/From, bad header lines:
        all L{MalformedRoutedPayload}.
        """
        for bad in (
            b"",
            b"Routing: 1.0\r\nTo: 1:a@x.com\r\n",
            b"Reliability: 1.0\r\n\r\nMessaging: 1.0\r\n\r\n",
            b"Routing: 1.0\r\nTo: 1:a@x.com\r\nFrom: 1:b@x.com\r\n\r\nReliability: 1.0\r\n\r\nBogus: 1.0\r\n\r\n",
            b"Routing: 1.0\r\nTo: 1:a@x.com\r\n\r\nMessaging: 1.0\r\n\r\n",
            b"Routing: 1.0\r\nTo: a\r\nFrom: b\r\n\r\nMessaging: 1.0\r\n\r\n",
            b"Routing: 1.0\r\nno colon\r\n\r\nMessaging: 1.0\r\n\r\n",
            b"Routing: 1.0\r\n\xff: 1\r\n\r\nMessaging: 1.0\r\n\r\n",
            b"Routing: 1.0\r\n" + b"X: 1\r\n" * 40 + b"\r\nMessaging: 1.0\r\n\r\n",
        ):
            self.assertRaises(MalformedRoutedPayload, parseRoutedPayload, bad)

    def test_noReliabilityBlock(self) -> None:
        """
        The reliability block is optional when reading.
        """
        data = b"Routing: 1.0\r\nTo: 9:" + FAMILY.encode() + b"@live.com\r\nFrom: 1:a@x.com\r\n\r\nPublication: 1.0\r\n\r\nbody"
        routed = parseRoutedPayload(data)
        self.assertEqual((routed.kind, routed.body, routed.reliability), (ContentBlock.PUBLICATION, b"body", ()))

    def test_headerInjection(self) -> None:
        """
        A value that would break its line cannot be built.
        """
        self.assertRaises(ValueError, buildMessagePayload, FAMILY, "a@x.com", "{1}", 0, format="x\r\nTo: 1:eve@x.com")


# -- properties -------------------------------------------------------------------------

texts = st.text(max_size=80)
emails = st.from_regex(r"[a-z0-9]{1,8}@[a-z]{1,6}\.com", fullmatch=True)
circleIds = st.from_regex(r"00000000-0000-0000-0009-[0-9a-f]{12}", fullmatch=True)
epids = st.uuids().map(lambda u: "{" + str(u).upper() + "}")


class PropertyTests(SynchronousTestCase):
    @SETTINGS
    @given(st.binary(max_size=600))
    def test_anyBytes(self, data: bytes) -> None:
        """
        Any bytes either parse or raise L{MalformedRoutedPayload}; so do the
        circle readers on top.
        """
        try:
            routed = parseRoutedPayload(data)
        except MalformedRoutedPayload:
            return
        for read in (lambda: parseCircleMessage(routed), lambda: parseRosterChange("PUT", routed), lambda: parseRosterChange("DEL", routed)):
            try:
                read()
            except MalformedRoutedPayload:
                pass

    @SETTINGS
    @given(st.lists(st.sampled_from([
        b"Routing: 1.0", b"To: 9:00000000-0000-0000-0009-0123456789ab@live.com;path=IM", b"From: 1:a@x.com;epid={1}",
        b"Reliability: 1.0", b"Segment: 99999999999", b"Messaging: 1.0", b"Publication: 1.0", b"Message-Type: Text",
        b"Content-Type: application/circles+xml", b"Uri: /circle/roster(IM)/user(1:)", b"<circle><roster><id>IM</id>",
        b"", b"\xc3", b":", b"<user><id>1:b@x.com</id></user></roster></circle>",
    ]), max_size=20))
    def test_structuredGarbage(self, lines: list[bytes]) -> None:
        """
        Near-valid payloads assembled from real header lines never raise
        anything but L{MalformedRoutedPayload}.
        """
        data = b"\r\n".join(lines)
        try:
            routed = parseRoutedPayload(data)
            parseCircleMessage(routed)
        except MalformedRoutedPayload:
            pass
        try:
            routed = parseRoutedPayload(data)
            parseRosterChange("PUT", routed)
            parseRosterChange("DEL", routed)
        except MalformedRoutedPayload:
            pass

    @SETTINGS
    @given(circleIds, emails, epids, st.integers(0, 2**31), texts)
    def test_messageRoundTrip(self, circleId: str, email: str, epid: str, segment: int, text: str) -> None:
        """
        Any text message reads back as sent (every line end, CR LF, CR or
        LF, normalised to LF).
        """
        payload = buildMessagePayload(circleId, email, epid, segment, text=text)
        message = parseCircleMessage(parseRoutedPayload(payload))
        assert message is not None
        expected = text.replace("\r\n", "\n").replace("\r", "\n")
        self.assertEqual((message.circleId, message.senderEmail, message.segment), (circleId, email, segment))
        self.assertEqual(message.text, expected)
        self.assertEqual(message.senderEpid, epid.lower())

    @SETTINGS
    @given(circleIds, emails, st.lists(emails, max_size=10))
    def test_rosterRoundTrip(self, circleId: str, to: str, members: list[str]) -> None:
        """
        Any roster notification reads back with its members in order.
        """
        change = parseRosterChange("PUT", parseRoutedPayload(buildRosterNotification(circleId, to, members)))
        assert change is not None
        self.assertEqual((change.circleId, change.present), (circleId, tuple(members)))
