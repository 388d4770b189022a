"""
Tests for L{msnp.uum}: the C{UUM}/C{UBM} shapes of reference 4.14 and Q.2.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.mime import MessageFormat
from msnp.uum import (
    MAX_UUM_PAYLOAD,
    MalformedNetworkMessage,
    MessageKind,
    buildNetworkNudge,
    buildNetworkText,
    buildNetworkTyping,
    buildOfflineText,
    buildTextPayload,
    parseUBM,
    parseUUM,
    relayAsUBM,
)
from msnp.wire import Command, Direction, parseCommand, serialize


def roundTrip(command: Command, direction: Direction) -> Command:
    """
    C{command} written to the wire and read back as the peer reads it.
    """
    return parseCommand(serialize(command), direction)


class BuildTests(SynchronousTestCase):
    """
    The commands this library sends.
    """

    def test_offlineTextMatchesReference(self) -> None:
        """
        The offline message of reference Q.1.2, byte for byte (153 bytes).
        """
        command = buildOfflineText(27, "Bob@Example.com", "See you tomorrow")
        wire = serialize(command)
        self.assertEqual(
            wire,
            b"UUM 27 bob@example.com 1 1 153\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=UTF-8\r\n"
            b"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n"
            b"Dest-Agent: client\r\n"
            b"\r\n"
            b"See you tomorrow",
        )

    def test_yahooShapes(self) -> None:
        """
        Text, typing and nudge to network 32 (reference Q.2): no
        C{Dest-Agent}, the right types, the nudge datacast.
        """
        text = buildNetworkText(31, "eve@yahoo.com", "hi eve")
        self.assertEqual(text.arguments, ("eve@yahoo.com", "32", "1"))
        self.assertNotIn(b"Dest-Agent", text.payload or b"")
        typing = buildNetworkTyping(32, "eve@yahoo.com", "Alice@Example.com")
        self.assertEqual(typing.arguments[2], "2")
        self.assertIn(b"TypingUser: alice@example.com\r\n", typing.payload or b"")
        nudge = buildNetworkNudge(33, "eve@yahoo.com")
        self.assertEqual((nudge.arguments[2], nudge.payload and nudge.payload.endswith(b"ID: 1\r\n\r\n")), ("3", True))

    def test_sizeLimit(self) -> None:
        """
        1,200 four-byte characters fit; a text past the limit is a
        L{ValueError} naming the sizes; so is a NUL.
        """
        buildOfflineText(1, "bob@example.com", "🦊" * 1200)
        error = self.assertRaises(ValueError, buildTextPayload, "x" * MAX_UUM_PAYLOAD, offline=True)
        self.assertIn(str(MAX_UUM_PAYLOAD), str(error))
        self.assertRaises(ValueError, buildTextPayload, "a\x00b")

    def test_badAddresses(self) -> None:
        """
        Addresses with spaces or an epid, and unknown networks, are refused.
        """
        self.assertRaises(ValueError, buildOfflineText, 1, "bob @example.com", "x")
        self.assertRaises(ValueError, buildOfflineText, 1, "bob@example.com;{X}", "x")
        self.assertRaises(ValueError, buildNetworkText, 1, "eve@yahoo.com", "x", network=4)


class ParseTests(SynchronousTestCase):
    """
    Reading C{UBM} (client) and C{UUM} (server).
    """

    UBM = (
        b"UBM eve@yahoo.com 32 alice@example.com 1 1 123\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=UTF-8\r\n"
        b"X-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=0\r\n"
        b"\r\n"
        b"hello alice"
    )

    def test_ubmText(self) -> None:
        """
        The reference's C{UBM}: sender, networks, text and font.
        """
        message = parseUBM(parseCommand(self.UBM, Direction.FROM_SERVER))
        self.assertEqual(
            (message.sender, message.senderNetwork, message.recipient, message.recipientNetwork),
            ("eve@yahoo.com", 32, "alice@example.com", 1),
        )
        self.assertEqual((message.kind, message.text), (MessageKind.TEXT, "hello alice"))
        self.assertEqual(message.format, MessageFormat(font="Arial", charset=0))
        self.assertFalse(message.offline)

    def test_prefixedSender(self) -> None:
        """
        papyon's C{32:eve@yahoo.com} first field is accepted; a prefix that
        contradicts the network field is not.
        """
        line = self.UBM.replace(b"UBM eve@", b"UBM 32:eve@")
        self.assertEqual(parseUBM(parseCommand(line, Direction.FROM_SERVER)).sender, "eve@yahoo.com")
        bad = self.UBM.replace(b"UBM eve@", b"UBM 1:eve@")
        self.assertRaises(MalformedNetworkMessage, parseUBM, parseCommand(bad, Direction.FROM_SERVER))

    def test_typingAndNudge(self) -> None:
        """
        Typing and nudge commands built here are read back as such.
        """
        typing = roundTrip(buildNetworkTyping(2, "eve@yahoo.com", "alice@example.com"), Direction.FROM_CLIENT)
        self.assertEqual(parseUUM(typing).kind, MessageKind.TYPING)
        nudge = roundTrip(buildNetworkNudge(3, "eve@yahoo.com"), Direction.FROM_CLIENT)
        self.assertEqual(parseUUM(nudge).kind, MessageKind.NUDGE)

    def test_uumOffline(self) -> None:
        """
        The server reads an offline C{UUM}: recipient, text, the
        C{Dest-Agent} mark; non-ASCII text with a newline survives.
        """
        command = roundTrip(buildOfflineText(9, "bob@example.com", "ça va?\nbien"), Direction.FROM_CLIENT)
        message = parseUUM(command)
        self.assertEqual((message.recipient, message.recipientNetwork), ("bob@example.com", 1))
        self.assertEqual((message.text, message.offline), ("ça va?\nbien", True))

    def test_relay(self) -> None:
        """
        A relayed C{UUM} becomes a C{UBM} the recipient's client reads,
        payload unchanged.
        """
        uum = parseUUM(roundTrip(buildNetworkText(4, "eve@yahoo.com", "hi eve"), Direction.FROM_CLIENT))
        ubm = roundTrip(relayAsUBM(uum, "alice@example.com"), Direction.FROM_SERVER)
        self.assertEqual(ubm.payload, uum.payload)
        back = parseUBM(ubm)
        self.assertEqual((back.sender, back.recipient, back.recipientNetwork, back.text),
                         ("alice@example.com", "eve@yahoo.com", 32, "hi eve"))

    def test_hostile(self) -> None:
        """
        Wrong field counts, unknown networks and types, a body without a
        blank line, and a body that does not match its type are all
        L{MalformedNetworkMessage}.
        """
        payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nx"
        bad = [
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1"), payload),
            Command("UBM", None, ("eve@yahoo.com", "99", "alice@example.com", "1", "1"), payload),
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1", "7"), payload),
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1", "x"), payload),
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1", "1"), b"no blank"),
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1", "2"), payload),
            Command("UBM", None, ("eve@yahoo.com", "32", "alice@example.com", "1", "3"), payload),
            Command("UBM", None, ("nobody", "32", "alice@example.com", "1", "1"), payload),
        ]
        for command in bad:
            self.assertRaises(MalformedNetworkMessage, parseUBM, command)
        self.assertRaises(MalformedNetworkMessage, parseUUM, Command("UUM", 1, ("a@b.c", "1"), payload))
