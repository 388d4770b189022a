"""
Unit tests for L{msnp.switchboard}: the MIME helpers, the switchboard
protocol and conversations, over StringTransport and a Clock.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ContactOffline, MessageNotDelivered, RequestTimeout
from msnp.conversation import Conversation, ConversationManager
from msnp.uum import DeliveryResult
from msnp.mime import (
    MAX_PAYLOAD,
    ChunkAssembler,
    MalformedMime,
    MessageFormat,
    TextMessage,
    buildNudgePayload,
    buildTextPayload,
    buildTextPayloads,
    buildTypingPayload,
    colorFromHTML,
    parseHeaderLines,
    parseMime,
)
from msnp.nsmessages import Invitation, SwitchboardTicket
from msnp.switchboard import SwitchboardProtocol
from msnp.wire import Command, Direction

from test.support import EventRecorder, commandsIn

# Reference section 8.4.
TXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nHi Bob! \xc3\xa7a va?"
TYPING_BOB = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n"
REPLY = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nX-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nFine, thanks!"

ALICE = "alice@example.com"
ALICE_GUID = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
BOB_GUID = "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"
LONG_TEXT = ("Grüße, ça va? Ελληνικά 日本語 😀 " * 200)[:4000]


def written(transport: StringTransport) -> list[Command]:
    """
    Every command the client wrote, parsed as a server reads them.
    """
    return commandsIn(transport, Direction.FROM_CLIENT)


def serverMSG(sender: str, name: str, payload: bytes) -> bytes:
    return f"MSG {sender} {name} {len(payload)}\r\n".encode() + payload


class Harness:
    """
    A ConversationManager whose connections are StringTransports.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.observer = EventRecorder("alice", clock=self.clock)
        self.xfrRequests: list[Deferred[SwitchboardTicket]] = []
        self.autoTicket = True
        self.connections: list[tuple[str, SwitchboardProtocol, StringTransport]] = []
        self.manager = ConversationManager(
            ALICE,
            ALICE_GUID,
            lambda: "Alice",
            self.requestSwitchboard,
            observer=self.observer,
            reactor=self.clock,
            setupTimeout=60.0,
            ackTimeout=30.0,
            connector=self.connect,
        )

    def requestSwitchboard(self) -> "Deferred[SwitchboardTicket]":
        d: Deferred[SwitchboardTicket] = Deferred()
        self.xfrRequests.append(d)
        if self.autoTicket:
            d.callback(SwitchboardTicket("127.0.0.1:1864", f"token{len(self.xfrRequests)}"))
        return d

    def connect(self, address: str, protocol: SwitchboardProtocol) -> "Deferred[Any]":
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((address, protocol, transport))
        return succeed(protocol)

    @property
    def protocol(self) -> SwitchboardProtocol:
        return self.connections[-1][1]

    @property
    def transport(self) -> StringTransport:
        return self.connections[-1][2]

    def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def sent(self) -> list[Command]:
        return written(self.transport)

    def drop(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def joinBob(self, sid: str = "11752013") -> None:
        """
        Answer USR, CAL and join bob with both MPOP lines.
        """
        self.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
        self.feed(f"CAL 2 RINGING {sid}\r\n".encode())
        self.feed(f"JOI bob@example.com;{BOB_GUID} Bob 2789003324:48\r\n".encode())
        self.feed(b"JOI bob@example.com Bob 2789003324:48\r\n")

    def openWithBob(self) -> Conversation:
        results: list[Conversation] = []
        self.manager.openConversation("bob@example.com").addCallback(results.append)
        self.joinBob()
        assert results, "conversation did not open"
        return results[0]


class PayloadTests(SynchronousTestCase):
    """
    The MIME payloads are byte-exact.
    """

    def test_textPayloadMatchesReference(self) -> None:
        """
        The default-format text payload is exactly the 132 bytes of 8.4.
        """
        self.assertEqual(buildTextPayload("Hi Bob! ça va?"), TXT)
        self.assertEqual(len(TXT), 132)
        self.assertEqual(buildTextPayloads("Fine, thanks!"), [REPLY])

    def test_typingPayloadMatchesReference(self) -> None:
        """
        The typing notification is exactly 8.4's 88 bytes for bob, and 90
        for alice as 6.6 b says.
        """
        self.assertEqual(buildTypingPayload("bob@example.com"), TYPING_BOB)
        self.assertEqual(len(buildTypingPayload(ALICE)), 90)

    def test_nudgePayload(self) -> None:
        """
        The nudge is the 69-byte WLM form of 6.6 c.
        """
        payload = buildNudgePayload()
        self.assertEqual(len(payload), 69)
        self.assertTrue(payload.endswith(b"\r\n\r\nID: 1\r\n\r\n"))

    def test_headerSplitsOnFirstColonSpace(self) -> None:
        """
        A header value keeps its own colons, and lookups ignore case.
        """
        headers = parseHeaderLines(b"Message-ID: {A:B}\r\nX-URL: http://x:80/\r\nbare:value\r\nnocolon\r\n")
        self.assertEqual(headers, (("Message-ID", "{A:B}"), ("X-URL", "http://x:80/"), ("bare", "value")))
        mime = parseMime(b"content-type: Text/Plain; charset=UTF-8\r\n\r\nbody")
        self.assertEqual(mime.contentType, "text/plain")
        self.assertEqual(mime.header("CONTENT-TYPE"), "Text/Plain; charset=UTF-8")

    def test_mimeWithoutBlankLine(self) -> None:
        """
        A payload without the blank line after the headers is refused.
        """
        self.assertRaises(MalformedMime, parseMime, b"MIME-Version: 1.0\r\nContent-Type: text/plain")


class FormatTests(SynchronousTestCase):
    """
    C{X-MMS-IM-Format} values.
    """

    def test_defaultHeader(self) -> None:
        """
        The default format is written as in the reference example.
        """
        self.assertEqual(MessageFormat().toHeader(), "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0")

    def test_roundTrip(self) -> None:
        """
        Every field survives writing and reading.
        """
        fmt = MessageFormat("Comic Sans MS", "BIU", colorFromHTML("#FF8000"), 0x80, 0x22, True)
        header = fmt.toHeader()
        self.assertIn("CO=80ff", header)
        self.assertIn("PF=22", header)
        self.assertIn("CS=80", header)
        self.assertEqual(MessageFormat.fromHeader(header), fmt)
        self.assertEqual(fmt.htmlColor, "#ff8000")

    def test_zeroPaddedColour(self) -> None:
        """
        pidgin's six-digit colour and WLM's stripped one read the same, as
        BBGGRR.
        """
        self.assertEqual(MessageFormat.fromHeader("FN=Arial; EF=I; CO=0000ff; PF=0").color, 0xFF)
        self.assertEqual(MessageFormat.fromHeader("FN=Arial; CO=ff").htmlColor, "#ff0000")

    def test_junkTolerated(self) -> None:
        """
        Unknown fields and bad values fall back to the defaults.
        """
        fmt = MessageFormat.fromHeader("FN=; EF=XZ; CO=zz; CS=ZZZZZZZZZZZ; PF=; XX=1; garbage")
        self.assertEqual(fmt, MessageFormat())

    def test_badHTMLColour(self) -> None:
        """
        Only C{#RRGGBB} converts.
        """
        self.assertRaises(ValueError, colorFromHTML, "#12345")


class ChunkingTests(SynchronousTestCase):
    """
    Splitting long texts and joining them back.
    """

    def test_longTextRoundTrip(self) -> None:
        """
        4,000 non-ASCII characters become parts of at most 1664 bytes with
        bodies of at most 1400, a multi-byte character is cut between two
        parts, and reassembly gives the exact text.
        """
        payloads = buildTextPayloads(LONG_TEXT)
        self.assertGreater(len(payloads), 1)
        cut = False
        for payload in payloads:
            self.assertLessEqual(len(payload), MAX_PAYLOAD)
            body = parseMime(payload).body
            self.assertLessEqual(len(body), 1400)
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                cut = True
        self.assertTrue(cut, "expected a character split across parts")
        first = parseMime(payloads[0])
        self.assertEqual(first.header("Chunks"), str(len(payloads)))
        self.assertEqual(parseMime(payloads[1]).header("Chunk"), "1")
        self.assertEqual(parseMime(payloads[1]).header("Message-ID"), first.header("Message-ID"))
        assembler = ChunkAssembler(Clock())
        results = [assembler.feed("bob@example.com", parseMime(p)) for p in payloads]
        self.assertEqual(results[:-1], [None] * (len(payloads) - 1))
        whole = results[-1]
        assert whole is not None
        self.assertEqual(whole.body.decode("utf-8"), LONG_TEXT)
        self.assertEqual(whole.contentType, "text/plain")
        self.assertEqual(assembler.pendingCount, 0)

    def test_shortTextNotSplit(self) -> None:
        """
        A text whose single payload fits is not split, even above 1400 bytes.
        """
        payloads = buildTextPayloads("x" * 1500)
        self.assertEqual(len(payloads), 1)
        self.assertLessEqual(len(payloads[0]), MAX_PAYLOAD)

    def test_hugeChunkCountDropped(self) -> None:
        """
        A first part announcing 1024 or more parts is dropped.
        """
        assembler = ChunkAssembler(Clock())
        mime = parseMime(b"Content-Type: text/plain\r\nMessage-ID: {X}\r\nChunks: 99999\r\n\r\nabc")
        self.assertIsNone(assembler.feed("bob@example.com", mime))
        self.assertEqual(assembler.pendingCount, 0)

    def test_outOfOrderDropped(self) -> None:
        """
        A part arriving out of order drops the whole message.
        """
        assembler = ChunkAssembler(Clock())
        payloads = buildTextPayloads(LONG_TEXT)
        assembler.feed("bob@example.com", parseMime(payloads[0]))
        self.assertIsNone(assembler.feed("bob@example.com", parseMime(payloads[2])))
        self.assertEqual(assembler.pendingCount, 0)
        self.assertIsNone(assembler.feed("bob@example.com", parseMime(payloads[1])))

    def test_incompleteExpires(self) -> None:
        """
        An incomplete message is forgotten after the timeout.
        """
        clock = Clock()
        assembler = ChunkAssembler(clock, timeout=10)
        assembler.feed("bob@example.com", parseMime(buildTextPayloads(LONG_TEXT)[0]))
        self.assertEqual(assembler.pendingCount, 1)
        clock.advance(10)
        self.assertEqual(assembler.pendingCount, 0)

    def test_sizeCap(self) -> None:
        """
        Parts beyond the total size cap drop the message.
        """
        assembler = ChunkAssembler(Clock(), maxBytes=2000)
        payloads = buildTextPayloads(LONG_TEXT)
        assembler.feed("bob@example.com", parseMime(payloads[0]))
        self.assertIsNone(assembler.feed("bob@example.com", parseMime(payloads[1])))
        self.assertEqual(assembler.pendingCount, 0)


class OpeningTests(SynchronousTestCase):
    """
    Opening a switchboard: XFR, USR, CAL, JOI.
    """

    def test_openWithYourselfFails(self) -> None:
        """
        Asking for a conversation with your own address is refused through
        the returned L{Deferred} (never raised), and opens nothing.
        """
        h = Harness()
        outcome: list[Failure] = []
        h.manager.openConversation(ALICE.upper()).addErrback(outcome.append)
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0].value, ValueError)
        self.assertEqual(h.manager.conversations, [])

    def test_openSendsUSRAndCAL(self) -> None:
        """
        The client presents C{account;{guid} token}, calls the contact, and
        the conversation is ready on JOI with bob as the only participant.
        """
        h = Harness()
        conversation = h.openWithBob()
        sent = h.sent()
        self.assertEqual((sent[0].name, sent[0].trid, sent[0].arguments), ("USR", 1, (f"{ALICE};{ALICE_GUID}", "token1")))
        self.assertEqual((sent[1].name, sent[1].arguments), ("CAL", ("bob@example.com",)))
        self.assertEqual(conversation.participants, {"bob@example.com"})
        self.assertTrue(conversation.isActive)
        self.assertEqual(len(h.observer.named("participantJoined")), 1)
        self.assertEqual(h.manager.conversations, [conversation])

    def test_reuseOpenConversation(self) -> None:
        """
        Opening a conversation with the same single contact reuses it.
        """
        h = Harness()
        conversation = h.openWithBob()
        again: list[Conversation] = []
        h.manager.openConversation("Bob@Example.com").addCallback(again.append)
        self.assertEqual(again, [conversation])
        self.assertEqual(len(h.xfrRequests), 1)

    def test_contactOffline(self) -> None:
        """
        C{217} on CAL fails the opening with ContactOffline.
        """
        h = Harness()
        d = h.manager.openConversation("bob@example.com")
        h.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
        h.feed(b"217 2\r\n")
        self.failureResultOf(d, ContactOffline)
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.manager.conversations, [])

    def test_setupTimeout(self) -> None:
        """
        Nobody joining within the set-up timeout fails the opening and the
        queued text.
        """
        h = Harness()
        conversation = Conversation(h.manager, ["bob@example.com"])
        text = conversation.sendText("hello")
        h.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
        h.feed(b"CAL 2 RINGING 1\r\n")
        h.clock.advance(60)
        failure = self.failureResultOf(text, MessageNotDelivered)
        self.assertIsInstance(failure.value.__cause__, RequestTimeout)
        self.assertFalse(conversation.isActive)

    def test_xfrNeverAnswered(self) -> None:
        """
        An XFR SB that never gets an answer is covered by the set-up timeout.
        """
        h = Harness()
        h.autoTicket = False
        d = h.manager.openConversation("bob@example.com")
        h.clock.advance(60)
        self.failureResultOf(d, RequestTimeout)

    def test_queuedFlushedInOrder(self) -> None:
        """
        Texts sent before JOI are written in order once bob joins.
        """
        h = Harness()
        conversation = Conversation(h.manager, ["bob@example.com"])
        first = conversation.sendText("one")
        second = conversation.sendText("two")
        nudge = conversation.sendNudge()
        self.assertEqual([c.name for c in h.sent()], ["USR"])
        h.joinBob()
        messages = [c for c in h.sent() if c.name == "MSG"]
        self.assertEqual([parseMime(m.payload or b"").body for m in messages[:2]], [b"one", b"two"])
        self.assertEqual([m.arguments for m in messages], [("A",), ("A",), ("N",)])
        self.successResultOf(nudge)
        self.assertNoResult(first)
        h.feed(f"ACK {messages[0].trid}\r\nACK {messages[1].trid}\r\n".encode())
        self.successResultOf(first)
        self.successResultOf(second)


class AckTests(SynchronousTestCase):
    """
    What happens to a sent text.
    """

    def test_ack(self) -> None:
        """
        ACK of its TrID fires the Deferred.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.sendText("Hi Bob! ça va?")
        msg = h.sent()[-1]
        self.assertEqual((msg.name, msg.arguments, msg.payload), ("MSG", ("A",), TXT))
        self.assertNoResult(d)
        h.feed(f"ACK {msg.trid}\r\n".encode())
        self.assertEqual(self.successResultOf(d), DeliveryResult.DELIVERED_ONLINE)

    def test_nak(self) -> None:
        """
        NAK fails it with MessageNotDelivered.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.sendText("x")
        h.feed(f"NAK {h.sent()[-1].trid}\r\n".encode())
        self.failureResultOf(d, MessageNotDelivered)

    def test_timeout(self) -> None:
        """
        No acknowledgement within ackTimeout fails it.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.sendText("x")
        h.clock.advance(30)
        self.failureResultOf(d, MessageNotDelivered)

    def test_dropBeforeAckThenReopen(self) -> None:
        """
        The switchboard dropping before the ACK fails the text; the next
        text opens a new switchboard calling bob again.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.sendText("lost")
        h.drop()
        self.failureResultOf(d, MessageNotDelivered)
        self.assertEqual(len(h.observer.named("conversationEnded")), 1)
        self.assertEqual(conversation.participants, set())
        again = conversation.sendText("again")
        self.assertEqual(len(h.connections), 2)
        self.assertEqual(len(h.xfrRequests), 2)
        h.joinBob()
        msg = h.sent()[-1]
        self.assertEqual(parseMime(msg.payload or b"").body, b"again")
        self.assertEqual([c.arguments for c in h.sent() if c.name == "CAL"], [("bob@example.com",)])
        h.feed(f"ACK {msg.trid}\r\n".encode())
        self.successResultOf(again)

    def test_resendFromErrback(self) -> None:
        """
        A text sent from the failure callback of one lost with the
        switchboard goes to a new switchboard.
        """
        h = Harness()
        conversation = h.openWithBob()
        retried: list[Deferred[None]] = []
        conversation.sendText("lost").addErrback(lambda _: retried.append(conversation.sendText("retry")))
        h.drop()
        self.assertEqual(len(retried), 1)
        self.assertEqual(len(h.connections), 2)
        h.joinBob()
        self.assertEqual(parseMime(h.sent()[-1].payload or b"").body, b"retry")

    def test_chunkedAckedWhole(self) -> None:
        """
        A split text fires only when every part is acknowledged, and every
        MSG line stays within the limit.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.sendText(LONG_TEXT)
        parts = [c for c in h.sent() if c.name == "MSG"]
        self.assertGreater(len(parts), 2)
        for part in parts:
            self.assertLessEqual(len(part.payload or b""), MAX_PAYLOAD)
        for part in parts[:-1]:
            h.feed(f"ACK {part.trid}\r\n".encode())
        self.assertNoResult(d)
        h.feed(f"ACK {parts[-1].trid}\r\n".encode())
        self.successResultOf(d)

    def test_typingOnlyWhenOpen(self) -> None:
        """
        Typing goes out with mode U on an open switchboard and is dropped
        (no switchboard opened) otherwise.
        """
        h = Harness()
        Conversation(h.manager, ["bob@example.com"]).sendTyping()
        self.assertEqual(h.connections, [])
        conversation = h.openWithBob()
        conversation.sendTyping()
        msg = h.sent()[-1]
        self.assertEqual((msg.arguments, msg.payload), (("U",), buildTypingPayload(ALICE)))

    def test_leave(self) -> None:
        """
        leave() writes OUT, closes, and fires when the connection is gone.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.leave()
        self.assertEqual(h.transport.value().endswith(b"OUT\r\n"), True)
        self.assertTrue(h.transport.disconnecting)
        self.assertNoResult(d)
        h.drop()
        self.successResultOf(d)
        self.assertEqual(len(h.observer.named("conversationEnded")), 1)


class FallbackTests(SynchronousTestCase):
    """
    L{Conversation.sendText} falls back to an offline message when the
    contact cannot be reached online (docs/offline.md).
    """

    def harness(self, offline: tuple[str, ...] = (), networks: Optional[dict[str, int]] = None) -> Harness:
        h = Harness()
        self.left: list[tuple[str, str]] = []
        self.result: Deferred[DeliveryResult] = Deferred()

        def sendOffline(email: str, text: str, format: Any) -> "Deferred[DeliveryResult]":
            self.left.append((email, text))
            return succeed(
                DeliveryResult.SENT_TO_NETWORK if (networks or {}).get(email) == 32 else DeliveryResult.STORED_OFFLINE
            )

        h.manager.sendOffline = sendOffline
        h.manager._isKnownOffline = lambda email: email in offline
        h.manager._contactNetwork = lambda email: (networks or {}).get(email)
        return h

    def test_knownOffline(self) -> None:
        """
        A contact known to be offline: no switchboard at all.
        """
        h = self.harness(offline=("bob@example.com",))
        conversation = Conversation(h.manager, ["bob@example.com"])
        d = conversation.sendText("later")
        self.assertEqual(self.successResultOf(d), DeliveryResult.STORED_OFFLINE)
        self.assertEqual(self.left, [("bob@example.com", "later")])
        self.assertEqual(h.xfrRequests, [])

    def test_network32(self) -> None:
        """
        A network-32 contact is always written to without a switchboard.
        """
        h = self.harness(networks={"eve@yahoo.com": 32})
        conversation = Conversation(h.manager, ["eve@yahoo.com"])
        self.assertEqual(self.successResultOf(conversation.sendText("hi")), DeliveryResult.SENT_TO_NETWORK)
        self.assertEqual(h.xfrRequests, [])

    def test_calRefused(self) -> None:
        """
        C{217} on C{CAL}: the queued text becomes an offline message; with
        C{strict=True} it fails as before.
        """
        for strict in (False, True):
            h = self.harness()
            conversation = Conversation(h.manager, ["bob@example.com"])
            d = conversation.sendText("hello?", strict=strict)
            h.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
            h.feed(b"217 2\r\n")
            if strict:
                failure = self.failureResultOf(d, MessageNotDelivered)
                self.assertIsInstance(failure.value.__cause__, ContactOffline)
                self.assertEqual(self.left, [])
            else:
                self.assertEqual(self.successResultOf(d), DeliveryResult.STORED_OFFLINE)
                self.assertEqual(self.left, [("bob@example.com", "hello?")])

    def test_nak(self) -> None:
        """
        C{NAK} (the message reached nobody) falls back too.
        """
        h = self.harness()
        conversation = h.openWithBob()
        d = conversation.sendText("x")
        h.feed(f"NAK {h.sent()[-1].trid}\r\n".encode())
        self.assertEqual(self.successResultOf(d), DeliveryResult.STORED_OFFLINE)

    def test_closedBeforeAckWhileOnline(self) -> None:
        """
        The switchboard closed before the ACK and the contact still looks
        online: the text may have arrived, so it fails instead (no
        fallback that could duplicate it).
        """
        h = self.harness()
        conversation = h.openWithBob()
        d = conversation.sendText("x")
        h.drop()
        self.failureResultOf(d, MessageNotDelivered)
        self.assertEqual(self.left, [])

    def test_closedBeforeAckAfterGoingOffline(self) -> None:
        """
        The same with the contact known offline meanwhile: offline message.
        """
        h = self.harness()
        conversation = h.openWithBob()
        d = conversation.sendText("x")
        h.manager._isKnownOffline = lambda email: True
        h.drop()
        self.assertEqual(self.successResultOf(d), DeliveryResult.STORED_OFFLINE)

    def test_severalPeopleNoFallback(self) -> None:
        """
        A conversation with several people never falls back.
        """
        h = self.harness(offline=("bob@example.com", "carol@example.com"))
        conversation = Conversation(h.manager, ["bob@example.com", "carol@example.com"])
        conversation.sendText("hi all")
        self.assertEqual(self.left, [])
        self.assertEqual(len(h.xfrRequests), 1)


class ParticipantTests(SynchronousTestCase):
    """
    JOI, IRO and BYE with MPOP lines.
    """

    def test_dedupAndIgnoreSelf(self) -> None:
        """
        Two JOI lines per person make one participant; lines about our own
        address (another place of ours) are ignored.
        """
        h = Harness()
        conversation = h.openWithBob()
        h.feed("JOI alice@example.com;{11111111-2222-3333-4444-555555555555} Alice 1:0\r\n".encode())
        h.feed(b"JOI ALICE@example.com Alice 1:0\r\n")
        h.feed(b"JOI carol@example.net;{22222222-3333-4444-5555-666666666666} Carol 1:0\r\n")
        h.feed(b"JOI carol@example.net Carol 1:0\r\n")
        self.assertEqual(conversation.participants, {"bob@example.com", "carol@example.net"})
        joined = [e[2] for e in h.observer.named("participantJoined")]
        self.assertEqual(joined, ["bob@example.com", "carol@example.net"])

    def test_byeEndsOnLast(self) -> None:
        """
        BYE endpoint + bare lines remove a person once; when the last one
        leaves, the client sends OUT and the conversation ends.
        """
        h = Harness()
        conversation = h.openWithBob()
        h.feed(b"JOI carol@example.net Carol 1:0\r\n")
        h.feed(b"BYE carol@example.net;{22222222-3333-4444-5555-666666666666}\r\nBYE carol@example.net\r\n")
        self.assertEqual(conversation.participants, {"bob@example.com"})
        self.assertEqual([e[2] for e in h.observer.named("participantLeft")], ["carol@example.net"])
        self.assertFalse(h.transport.disconnecting)
        h.feed(f"BYE bob@example.com;{BOB_GUID}\r\nBYE bob@example.com 1\r\n".encode())
        self.assertTrue(h.transport.value().endswith(b"OUT\r\n"))
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(len(h.observer.named("conversationEnded")), 1)
        self.assertEqual(conversation.contacts, {"bob@example.com"})
        self.assertFalse(conversation.isActive)

    def test_mpopEndpointsLeaveOneByOne(self) -> None:
        """
        With bob at two places, one place leaving changes nothing; bob
        leaves when his last place and his bare line go, reported once.
        """
        h = Harness()
        conversation = h.openWithBob()
        h.feed(b"JOI carol@example.net Carol 1:0\r\n")
        second = "{33333333-3333-4444-5555-666666666666}"
        h.feed(f"JOI bob@example.com;{second} Bob 1:0\r\n".encode())
        h.feed(f"BYE bob@example.com;{second}\r\n".encode())
        self.assertEqual(conversation.participants, {"bob@example.com", "carol@example.net"})
        h.feed(f"BYE bob@example.com;{BOB_GUID.lower()}\r\nBYE bob@example.com\r\n".encode())
        self.assertEqual(conversation.participants, {"carol@example.net"})
        self.assertEqual([e[2] for e in h.observer.named("participantLeft")], ["bob@example.com"])

    def test_endpointOnlyBye(self) -> None:
        """
        A server that sends only the endpoint line on BYE still removes the
        person once their only known endpoint leaves.
        """
        h = Harness()
        conversation = h.openWithBob()
        h.feed(b"JOI carol@example.net;{22222222-3333-4444-5555-666666666666} Carol 1:0\r\n")
        h.feed(b"BYE carol@example.net;{22222222-3333-4444-5555-666666666666}\r\n")
        self.assertEqual(conversation.participants, {"bob@example.com"})

    def test_leaveDuringSetup(self) -> None:
        """
        leave() while the switchboard is still being requested fires at
        once and fails what was queued; nothing is left waiting.
        """
        h = Harness()
        h.autoTicket = False
        conversation = Conversation(h.manager, ["bob@example.com"])
        text = conversation.sendText("queued")
        self.successResultOf(conversation.leave())
        self.failureResultOf(text, MessageNotDelivered)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_invitationReusesDormant(self) -> None:
        """
        An invitation from bob reuses the dormant one-to-one conversation
        with him.
        """
        h = Harness()
        conversation = h.openWithBob()
        h.drop()
        h.manager.invited(Invitation("s2", "127.0.0.1:1865", "tok", "bob@example.com", "Bob"))
        h.feed(b"IRO 1 1 1 bob@example.com Bob 1:0\r\nANS 1 OK\r\n")
        self.assertEqual(h.observer.named("conversationStarted"), [(None, conversation)])
        self.assertTrue(conversation.isActive)

    def test_invitedButEmpty(self) -> None:
        """
        If nobody is left when the invitation is answered, the client leaves
        that switchboard at once.
        """
        h = Harness()
        h.manager.invited(Invitation("s2", "127.0.0.1:1865", "tok", "bob@example.com", "Bob"))
        h.feed(b"ANS 1 OK\r\n")
        self.assertTrue(h.transport.disconnecting)
        conversation = h.observer.named("conversationStarted")[0][1]
        self.assertFalse(conversation.isActive)
        self.assertEqual(conversation.contacts, {"bob@example.com"})

    def test_invitedAnswers(self) -> None:
        """
        An invitation is answered with ANS; IRO lines (endpoint and bare)
        give one participant, ANS OK starts the conversation, and the
        self-JOI that follows is ignored.
        """
        h = Harness()
        h.manager.invited(Invitation("abc123", "127.0.0.1:1865", "tok", "bob@example.com", "Bob"))
        self.assertEqual(h.connections[0][0], "127.0.0.1:1865")
        ans = h.sent()[0]
        self.assertEqual((ans.name, ans.arguments), ("ANS", (f"{ALICE};{ALICE_GUID}", "tok", "abc123")))
        h.feed(f"IRO 1 1 2 bob@example.com;{BOB_GUID} Bob 2789003324:48\r\n".encode())
        h.feed(b"IRO 1 2 2 bob@example.com Bob 2789003324:48\r\n")
        self.assertEqual(h.observer.named("conversationStarted"), [])
        h.feed(b"ANS 1 OK\r\n")
        h.feed(f"JOI {ALICE};{ALICE_GUID} Alice 1:0\r\n".encode())
        started = h.observer.named("conversationStarted")
        self.assertEqual(len(started), 1)
        conversation = started[0][1]
        self.assertEqual(conversation.participants, {"bob@example.com"})
        self.assertIs(h.manager.conversations[0], conversation)

    def test_invitationRefused(self) -> None:
        """
        911 on ANS leaves no conversation behind and tells nobody.
        """
        h = Harness()
        h.manager.invited(Invitation("abc123", "127.0.0.1:1865", "tok", "bob@example.com", "Bob"))
        h.feed(b"911 1\r\n")
        self.assertEqual(h.manager.conversations, [])
        self.assertEqual(h.observer.named("conversationStarted"), [])

    def test_tokensNotInRepr(self) -> None:
        """
        Auth tokens stay out of the reprs.
        """
        self.assertNotIn("secret", repr(SwitchboardTicket("1.2.3.4:5", "secret")))
        self.assertNotIn("secret", repr(Invitation("1", "1.2.3.4:5", "secret", "b@x", "B")))


class IncomingTests(SynchronousTestCase):
    """
    Messages from peers.
    """

    def setUp(self) -> None:
        self.h = Harness()
        self.conversation = self.h.openWithBob()

    def test_text(self) -> None:
        """
        A text arrives as a TextMessage with the sender's decoded name.
        """
        self.h.feed(serverMSG("bob@example.com", "Bob%20B", REPLY))
        [event] = self.h.observer.named("messageReceived")
        self.assertIs(event[1], self.conversation)
        self.assertEqual(event[2], TextMessage("bob@example.com", "Bob B", "Fine, thanks!", MessageFormat()))

    def test_chunkedText(self) -> None:
        """
        A split text arrives once, whole.
        """
        for payload in buildTextPayloads(LONG_TEXT):
            self.h.feed(serverMSG("bob@example.com", "Bob", payload))
        [event] = self.h.observer.named("messageReceived")
        self.assertEqual(event[2].text, LONG_TEXT)

    def test_typingAndNudge(self) -> None:
        """
        Typing and nudge payloads become their events; pidgin's short nudge
        body works too.
        """
        self.h.feed(serverMSG("bob@example.com", "Bob", TYPING_BOB))
        self.h.feed(serverMSG("bob@example.com", "Bob", buildNudgePayload()))
        self.h.feed(serverMSG("bob@example.com", "Bob", b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n"))
        self.assertEqual([e[2] for e in self.h.observer.named("typingReceived")], ["bob@example.com"])
        self.assertEqual(len(self.h.observer.named("nudgeReceived")), 2)

    def test_hostile(self) -> None:
        """
        No blank line, a huge Chunks, bad UTF-8, unknown types: nothing
        raises, the connection stays, bad UTF-8 becomes U+FFFD.
        """
        h = self.h
        h.feed(serverMSG("bob@example.com", "Bob", b"MIME-Version: 1.0\r\nContent-Type: text/plain"))
        h.feed(serverMSG("bob@example.com", "Bob", b"Content-Type: text/plain\r\nMessage-ID: {X}\r\nChunks: 4294967296\r\n\r\nx"))
        h.feed(serverMSG("bob@example.com", "Bob", b"Content-Type: text/plain\r\nMessage-ID: {X}\r\nChunk: 5\r\n\r\nx"))
        h.feed(serverMSG("bob@example.com", "Bob", b"Content-Type: application/x-unknown\r\n\r\n\x00\xff"))
        h.feed(serverMSG("bob@example.com", "Bob", b"Content-Type: text/plain\r\nX-MMS-IM-Format: \xff\xfe\r\n\r\nbad \xff\xfe utf8"))
        [event] = h.observer.named("messageReceived")
        self.assertEqual(event[2].text, "bad \ufffd\ufffd utf8")
        self.assertFalse(h.transport.disconnecting)

    def test_selfMessageIgnored(self) -> None:
        """
        A message from another place of ours is not shown as from a peer.
        """
        self.h.feed(serverMSG(ALICE, "Alice", REPLY))
        self.assertEqual(self.h.observer.named("messageReceived"), [])


class InviteTests(SynchronousTestCase):
    """
    Inviting more people.
    """

    def test_inviteJoins(self) -> None:
        """
        invite() sends CAL and fires when the invitee joins.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.invite("carol@example.net")
        cal = h.sent()[-1]
        self.assertEqual((cal.name, cal.arguments), ("CAL", ("carol@example.net",)))
        h.feed(f"CAL {cal.trid} RINGING 11752013\r\n".encode())
        self.assertNoResult(d)
        h.feed(b"JOI carol@example.net Carol 1:0\r\n")
        self.successResultOf(d)

    def test_inviteWhileAnswering(self) -> None:
        """
        An invite() made while an invitation is being answered is called
        once ANS OK arrives.
        """
        h = Harness()
        h.manager.invited(Invitation("s1", "127.0.0.1:1865", "tok", "bob@example.com", "Bob"))
        conversation = h.manager.conversations[0]
        d = conversation.invite("carol@example.net")
        h.feed(b"IRO 1 1 1 bob@example.com Bob 1:0\r\nANS 1 OK\r\n")
        cal = h.sent()[-1]
        self.assertEqual((cal.name, cal.arguments), ("CAL", ("carol@example.net",)))
        h.feed(f"CAL {cal.trid} RINGING s1\r\nJOI carol@example.net Carol 1:0\r\n".encode())
        self.successResultOf(d)
        self.assertEqual(conversation.participants, {"bob@example.com", "carol@example.net"})

    def test_inviteOffline(self) -> None:
        """
        217 fails invite() with ContactOffline.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.invite("carol@example.net")
        h.feed(f"217 {h.sent()[-1].trid}\r\n".encode())
        self.failureResultOf(d, ContactOffline)

    def test_inviteTimeout(self) -> None:
        """
        An invitee that never joins fails invite() after the timeout.
        """
        h = Harness()
        conversation = h.openWithBob()
        d = conversation.invite("carol@example.net")
        h.feed(f"CAL {h.sent()[-1].trid} RINGING 1\r\n".encode())
        h.clock.advance(60)
        self.failureResultOf(d, RequestTimeout)

    def test_closeAll(self) -> None:
        """
        closeAll leaves every conversation and fails what is queued.
        """
        h = Harness()
        h.openWithBob()
        carol = Conversation(h.manager, ["carol@example.net"])
        h.manager.conversations.append(carol)
        pending = carol.sendText("queued")
        self.assertEqual(len(h.connections), 2)
        h.manager.closeAll()
        self.assertTrue(h.connections[0][2].disconnecting)
        self.failureResultOf(pending, MessageNotDelivered)
        self.assertEqual(h.manager.conversations, [])


class PropertyTests(SynchronousTestCase):
    """
    Round trips over generated input.
    """

    def test_anyTextRoundTrips(self) -> None:
        """
        Any text, split or not, fits the payload limit part by part and
        reassembles exactly.
        """
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=60, deadline=None)
        @given(st.text(min_size=0, max_size=3000))
        def check(text: str) -> None:
            payloads = buildTextPayloads(text)
            assembler = ChunkAssembler(Clock())
            whole = None
            for payload in payloads:
                self.assertLessEqual(len(payload), MAX_PAYLOAD)
                whole = assembler.feed("bob@example.com", parseMime(payload))
            assert whole is not None
            self.assertEqual(whole.body.decode("utf-8"), text)

        check()

    def test_anyFormatRoundTrips(self) -> None:
        """
        Any format survives toHeader/fromHeader.
        """
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=100, deadline=None)
        @given(
            st.text(min_size=1, max_size=40).filter(lambda f: f.strip() == f and f),
            st.text(alphabet="BIUS", max_size=4),
            st.integers(0, 0xFFFFFF),
            st.integers(0, 0xFF),
            st.integers(0, 0xFF),
            st.booleans(),
        )
        def check(font: str, effects: str, color: int, charset: int, pitch: int, rtl: bool) -> None:
            fmt = MessageFormat(font, effects, color, charset, pitch, rtl)
            self.assertEqual(MessageFormat.fromHeader(fmt.toHeader()), fmt)

        check()

    def test_anyPayloadHandled(self) -> None:
        """
        Arbitrary bytes from a peer never raise out of the protocol.
        """
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=100, deadline=None)
        @given(st.binary(max_size=400))
        def check(payload: bytes) -> None:
            h = Harness()
            h.openWithBob()
            h.feed(serverMSG("bob@example.com", "Bob", payload))
            self.assertFalse(h.transport.disconnecting)

        check()


class PinnedBehaviourTests(SynchronousTestCase):
    """
    Behaviours no other test pinned (each was changed in a copy of the code
    and the whole suite still passed).
    """

    def test_reopenAfterRefusedOpen(self) -> None:
        """
        A conversation whose switchboard could not be opened (C{217}) opens
        a new one on the next C{sendText} instead of queueing forever.
        """
        h = Harness()
        conversation = Conversation(h.manager, ["bob@example.com"])
        first = conversation.sendText("one")
        h.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
        h.feed(b"217 2\r\n")
        self.failureResultOf(first, MessageNotDelivered)
        second = conversation.sendText("two")
        self.assertEqual(len(h.xfrRequests), 2)
        self.assertEqual(len(h.connections), 2)
        h.joinBob()
        messages = [c for c in h.sent() if c.name == "MSG"]
        self.assertEqual([parseMime(m.payload or b"").body for m in messages], [b"two"])
        h.feed(f"ACK {messages[0].trid}\r\n".encode())
        self.successResultOf(second)

    def test_reopenAfterTimedOutOpen(self) -> None:
        """
        Likewise after the set-up timeout: the next text opens again.
        """
        h = Harness()
        conversation = Conversation(h.manager, ["bob@example.com"])
        first = conversation.sendText("one")
        h.clock.advance(60)
        self.failureResultOf(first, MessageNotDelivered)
        conversation.sendText("two")
        self.assertEqual(len(h.xfrRequests), 2)
        h.joinBob()
        self.assertEqual(
            [parseMime(c.payload or b"").body for c in h.sent() if c.name == "MSG"], [b"two"]
        )

    def test_textFromOpenCallbackAfterQueued(self) -> None:
        """
        A text sent from the C{openConversation} callback goes out after
        the texts already queued on that conversation, not before them.
        """
        h = Harness()
        opened = h.manager.openConversation("bob@example.com")
        conversation = h.manager.conversations[-1]
        conversation.sendText("one")
        conversation.sendText("two")
        opened.addCallback(lambda c: c.sendText("three"))
        h.joinBob()
        bodies = [parseMime(c.payload or b"").body for c in h.sent() if c.name == "MSG"]
        self.assertEqual(bodies, [b"one", b"two", b"three"])

    def test_switchboardLimitIs1664Bytes(self) -> None:
        """
        A text whose payload is exactly 1,664 bytes goes as one message; one
        byte more and it is split (the literal limit, not the constant).
        """
        base = len(buildTextPayload(""))
        fits = "x" * (1664 - base)
        self.assertEqual(len(buildTextPayload(fits)), 1664)
        self.assertEqual(buildTextPayloads(fits), [buildTextPayload(fits)])
        self.assertGreater(len(buildTextPayloads(fits + "x")), 1)
