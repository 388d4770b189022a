"""
Tests for L{msnp.server.switchboard}: the local network's switchboard
server, against a small fake network, over StringTransport and over
loopback with the client's L{ConversationManager}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.errors import ContactOffline
from msnp.server.accountmodel import BLOCK
from msnp.server.switchboard import (
    SwitchboardDirectory,
    SwitchboardServerFactory,
)
from msnp.conversation import ConversationManager
from msnp.mime import buildTextPayload
from msnp.nsmessages import Invitation, SwitchboardTicket

from test.support import (
    ALICE_GUID,
    BOB_GUID,
    BOB_GUID2,
    CONVERSATION_EVENTS,
    Client,
    EventRecorder,
    FakeNetwork,
    FakeNS,
    Ring,
)

class ServerTests(SynchronousTestCase):
    """
    The switchboard server protocol over StringTransport.
    """

    def setUp(self) -> None:
        self.network = FakeNetwork()
        self.factory = SwitchboardServerFactory(self.network)

    def usr(self, email: str = "alice@example.com", guid: str = ALICE_GUID) -> Client:
        token = self.network.switchboards.issueXfrToken(email, guid)
        client = Client(self.factory)
        client.send(f"USR 1 {email};{guid} {token}\r\n".encode())
        return client

    def conversation(self) -> tuple[Client, Client]:
        """
        Alice opens a switchboard and Bob answers.
        """
        alice = self.usr()
        alice.send(b"CAL 2 bob@example.com\r\n")
        ring = self.network.rings[-1]
        bob = Client(self.factory)
        bob.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        alice.clear()
        bob.clear()
        return alice, bob

    def test_usr(self) -> None:
        """
        A valid XFR token gives C{USR trid OK account;{guid} name}.
        """
        client = self.usr()
        self.assertEqual(client.lines(), [f"USR 1 OK alice@example.com;{ALICE_GUID} Alice"])
        self.assertFalse(client.transport.disconnecting)

    def test_tokenSingleUse(self) -> None:
        """
        A token works once; the second use gets 911 and a close.
        """
        token = self.network.switchboards.issueXfrToken("alice@example.com", ALICE_GUID)
        first, second = Client(self.factory), Client(self.factory)
        first.send(f"USR 1 alice@example.com;{ALICE_GUID} {token}\r\n".encode())
        second.send(f"USR 1 alice@example.com;{ALICE_GUID} {token}\r\n".encode())
        self.assertEqual(second.lines(), ["911 1"])
        self.assertTrue(second.transport.disconnecting)

    def test_tokenExpires(self) -> None:
        """
        A token past its lifetime is refused.
        """
        token = self.network.switchboards.issueXfrToken("alice@example.com", ALICE_GUID)
        self.network.clock.advance(3600)
        client = Client(self.factory)
        client.send(f"USR 1 alice@example.com;{ALICE_GUID} {token}\r\n".encode())
        self.assertEqual(client.lines(), ["911 1"])

    def test_accountMismatch(self) -> None:
        """
        Someone else's token is refused with 911.
        """
        token = self.network.switchboards.issueXfrToken("alice@example.com", ALICE_GUID)
        client = Client(self.factory)
        client.send(f"USR 1 bob@example.com;{BOB_GUID} {token}\r\n".encode())
        self.assertEqual(client.lines(), ["911 1"])
        self.assertTrue(client.transport.disconnecting)

    def test_commandBeforeAuth(self) -> None:
        """
        Anything but USR/ANS first closes the connection.
        """
        client = Client(self.factory)
        client.send(b"CAL 1 bob@example.com\r\n")
        self.assertTrue(client.transport.disconnecting)

    def test_calRings(self) -> None:
        """
        CAL rings the callee with a fresh token and answers RINGING with a
        31-character lower-case hex session id.
        """
        alice = self.usr()
        alice.clear()
        alice.send(b"CAL 2 Bob@Example.com\r\n")
        [ring] = self.network.rings
        self.assertEqual(ring.callee, "bob@example.com")
        self.assertEqual(ring.caller.email, "alice@example.com")
        self.assertEqual(ring.callerName, "Alice")
        self.assertRegex(ring.sessionId, r"^[0-9a-f]{31}$")
        self.assertEqual(alice.lines(), [f"CAL 2 RINGING {ring.sessionId}"])

    def test_calOffline(self) -> None:
        """
        CAL to someone offline, unknown or blocking the caller gets 217; a
        malformed address 208.
        """
        alice = self.usr()
        alice.clear()
        alice.send(b"CAL 2 carol@example.net\r\nCAL 3 nobody@example.org\r\nCAL 4 junk\r\n")
        bob = self.network.store.get("bob@example.com")
        assert bob is not None
        self.network.store.setRole(bob, BLOCK, "alice@example.com")
        alice.send(b"CAL 5 bob@example.com\r\n")
        self.assertEqual(alice.lines(), ["217 2", "217 3", "208 4", "217 5"])
        self.assertEqual(self.network.rings, [])
        self.assertFalse(alice.transport.disconnecting)

    def test_calAlreadyThere(self) -> None:
        """
        CAL for someone already in the session gets 215.
        """
        alice, bob = self.conversation()
        alice.send(b"CAL 3 bob@example.com\r\n")
        self.assertEqual(alice.lines(), ["215 3"])

    def test_ans(self) -> None:
        """
        ANS lists the others with IRO (endpoint line, then bare line), ends
        with ANS OK, tells the others JOI twice and the newcomer about
        itself.
        """
        alice = self.usr()
        alice.send(b"CAL 2 bob@example.com\r\n")
        ring = self.network.rings[-1]
        alice.clear()
        bob = Client(self.factory)
        bob.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.assertEqual(
            bob.lines(),
            [
                f"IRO 1 1 2 alice@example.com;{ALICE_GUID} Alice 2789003324:48",
                "IRO 1 2 2 alice@example.com Alice 2789003324:48",
                "ANS 1 OK",
                f"JOI bob@example.com;{BOB_GUID} Bob%20B 2789003324:48",
            ],
        )
        self.assertEqual(
            alice.lines(),
            [f"JOI bob@example.com;{BOB_GUID} Bob%20B 2789003324:48", "JOI bob@example.com Bob%20B 2789003324:48"],
        )

    def test_mpopAnswer(self) -> None:
        """
        A second endpoint of bob answers with the same token; alice sees
        only its endpoint line (bob is already there), the token cannot be
        reused by the same endpoint.
        """
        alice = self.usr()
        alice.send(b"CAL 2 bob@example.com\r\n")
        ring = self.network.rings[-1]
        bob1 = Client(self.factory)
        bob1.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        alice.clear()
        bob2 = Client(self.factory)
        bob2.send(f"ANS 1 bob@example.com;{BOB_GUID2} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.assertEqual(alice.lines(), [f"JOI bob@example.com;{BOB_GUID2} Bob%20B 2789003324:48"])
        again = Client(self.factory)
        again.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.assertEqual(again.lines(), ["911 1"])

    def test_ansWrongSession(self) -> None:
        """
        A token with another session id, or by another account, gets 911.
        """
        alice = self.usr()
        alice.send(b"CAL 2 bob@example.com\r\n")
        ring = self.network.rings[-1]
        bad = Client(self.factory)
        bad.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} 0123\r\n".encode())
        self.assertEqual(bad.lines(), ["911 1"])
        other = Client(self.factory)
        other.send(f"ANS 1 carol@example.net;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.assertEqual(other.lines(), ["911 1"])

    def test_thirdPartyIRO(self) -> None:
        """
        A third person answering gets IRO lines for both others, numbered
        1..4 out of 4, and both others get carol's JOI.
        """
        self.network.online["carol@example.net"] = [FakeNS("carol@example.net", "{CCCCCCCC-0000-0000-0000-000000000000}", "Carol")]
        alice, bob = self.conversation()
        alice.send(b"CAL 3 carol@example.net\r\n")
        ring = self.network.rings[-1]
        alice.clear()
        carol = Client(self.factory)
        carol.send(f"ANS 7 carol@example.net;{{CCCCCCCC-0000-0000-0000-000000000000}} {ring.authToken} {ring.sessionId}\r\n".encode())
        iro = [c for c in carol.commands() if c.name == "IRO"]
        self.assertEqual([(c.trid, c.arguments[:3]) for c in iro], [
            (7, ("1", "4", f"alice@example.com;{ALICE_GUID}")),
            (7, ("2", "4", "alice@example.com")),
            (7, ("3", "4", f"bob@example.com;{BOB_GUID}")),
            (7, ("4", "4", "bob@example.com")),
        ])
        self.assertEqual([c.arguments[0] for c in alice.commands()], ["carol@example.net;{CCCCCCCC-0000-0000-0000-000000000000}", "carol@example.net"])
        self.assertEqual(len(bob.commands()), 2)

    def test_unknownCommandCloses(self) -> None:
        """
        An unknown command, or a USR without its token, closes the connection.
        """
        alice, bob = self.conversation()
        alice.send(b"FOO 3 bar\r\n")
        self.assertTrue(alice.transport.disconnecting)
        client = Client(self.factory)
        client.send(b"USR 1 alice@example.com\r\n")
        self.assertEqual(client.lines(), ["911 1"])
        self.assertTrue(client.transport.disconnecting)

    def test_msgRelayAndAck(self) -> None:
        """
        MSG A is relayed as C{MSG sender name len} and acknowledged; U and N
        are relayed without reply.
        """
        alice, bob = self.conversation()
        payload = buildTextPayload("Hi Bob! ça va?")
        alice.send(f"MSG 3 A {len(payload)}\r\n".encode() + payload)
        alice.send(f"MSG 4 U {len(payload)}\r\n".encode() + payload)
        alice.send(f"MSG 5 N {len(payload)}\r\n".encode() + payload)
        alice.send(f"MSG 6 D {len(payload)}\r\n".encode() + payload)
        self.assertEqual(alice.lines(), ["ACK 3", "ACK 6"])
        relayed = bob.commands()
        self.assertEqual(len(relayed), 4)
        self.assertEqual((relayed[0].name, relayed[0].arguments, relayed[0].payload), ("MSG", ("alice@example.com", "Alice"), payload))

    def test_nakWhenAlone(self) -> None:
        """
        With nobody else there, A and N get NAK and U nothing.
        """
        alice = self.usr()
        alice.clear()
        alice.send(b"MSG 2 A 3\r\nabcMSG 3 U 3\r\nabcMSG 4 N 3\r\nabc")
        self.assertEqual(alice.lines(), ["NAK 2", "NAK 4"])

    def test_badAckModeCloses(self) -> None:
        """
        Ack mode S (or lower case) closes the connection.
        """
        for mode in ("S", "a"):
            alice, bob = self.conversation()
            alice.send(f"MSG 3 {mode} 3\r\nabc".encode())
            self.assertTrue(alice.transport.disconnecting)
            self.assertEqual(bob.commands(), [])

    def test_oversizedCloses(self) -> None:
        """
        A payload over 1664 bytes closes the connection without relaying;
        1664 is still fine.
        """
        alice, bob = self.conversation()
        alice.send(b"MSG 3 A 1664\r\n" + b"x" * 1664)
        self.assertEqual(alice.lines(), ["ACK 3"])
        alice.send(b"MSG 4 A 1665\r\n" + b"x" * 1665)
        self.assertTrue(alice.transport.disconnecting)
        self.assertEqual(len(bob.commands()), 1)

    def test_outSendsBye(self) -> None:
        """
        OUT closes; the others get BYE with and without the GUID.
        """
        alice, bob = self.conversation()
        alice.send(b"OUT\r\n")
        self.assertTrue(alice.transport.disconnecting)
        alice.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(bob.lines(), [f"BYE alice@example.com;{ALICE_GUID}", "BYE alice@example.com"])

    def test_dropSendsBye1(self) -> None:
        """
        A dropped connection gives BYE ... 1; the empty session goes away.
        """
        alice, bob = self.conversation()
        bob.drop()
        self.assertEqual(alice.lines(), [f"BYE bob@example.com;{BOB_GUID} 1", "BYE bob@example.com 1"])
        alice.drop()
        self.assertEqual(self.network.switchboards.sessions, {})

    def test_idleTimeout(self) -> None:
        """
        With an idle timeout configured, a silent connection is closed.
        """
        factory = SwitchboardServerFactory(self.network, idleTimeout=30)
        token = self.network.switchboards.issueXfrToken("alice@example.com", ALICE_GUID)
        client = Client(factory)
        client.send(f"USR 1 alice@example.com;{ALICE_GUID} {token}\r\n".encode())
        self.network.clock.advance(29)
        self.assertFalse(client.transport.disconnecting)
        self.network.clock.advance(1)
        self.assertTrue(client.transport.disconnecting)


class LoopbackTests(TestCase):
    """
    The client's conversations against the server over real sockets; the
    fake network delivers RNG straight to the callee's manager.
    """

    timeout = 10

    async def _start(self) -> None:
        self.network = FakeNetwork(clock=reactor)
        self.network.switchboards = SwitchboardDirectory(self.network, clock=reactor)
        factory = SwitchboardServerFactory(self.network)
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(self.port.stopListening)
        self.network.switchboardAddress = f"127.0.0.1:{self.port.getHost().port}"
        self.recorders = {email: EventRecorder(email, CONVERSATION_EVENTS) for email in ("alice@example.com", "bob@example.com")}
        self.managers = {
            email: self._manager(email, guid)
            for email, guid in (("alice@example.com", ALICE_GUID), ("bob@example.com", BOB_GUID))
        }

        def ring(r: Ring) -> None:
            self.managers[r.callee].invited(
                Invitation(r.sessionId, self.network.switchboardAddress, r.authToken, r.caller.email, r.callerName)
            )

        self.network.onRing = ring

    def _manager(self, email: str, guid: str) -> ConversationManager:
        def xfr() -> "Deferred[SwitchboardTicket]":
            from twisted.internet.defer import succeed

            token = self.network.switchboards.issueXfrToken(email, guid)
            return succeed(SwitchboardTicket(self.network.switchboardAddress, token))

        manager = ConversationManager(email, guid, lambda: email, xfr, observer=self.recorders[email], reactor=reactor)
        self.addCleanup(self._close, manager)
        return manager

    async def _close(self, manager: ConversationManager) -> None:
        waits = [c._switchboard.whenLost() for c in manager.conversations if c._switchboard is not None]
        manager.closeAll()
        await DeferredList(waits)

    def waitFor(self, email: str, event: str) -> "Deferred[Any]":
        """
        Fire with the arguments (after the session) of the next C{event}
        C{email} hears.
        """
        recorder = self.recorders[email]
        heard = recorder.count(event)
        d = recorder.waitFor(lambda: recorder.count(event) > heard, event)
        return d.addCallback(lambda _: recorder.named(event)[heard])

    async def test_conversation(self) -> None:
        """
        Alice opens a conversation, bob is invited automatically, texts
        (one of them split) go both ways with ACKs.
        """
        await self._start()
        started = self.waitFor("bob@example.com", "conversationStarted")
        conversation = await self.managers["alice@example.com"].openConversation("bob@example.com")
        (bobSide,) = await started
        self.assertEqual(conversation.participants, {"bob@example.com"})
        self.assertEqual(bobSide.participants, {"alice@example.com"})
        long = "ünïcødé ✓ " * 400
        got = self.waitFor("bob@example.com", "messageReceived")
        await conversation.sendText(long)
        (_, message) = await got
        self.assertEqual(message.text, long)
        self.assertEqual(message.sender, "alice@example.com")
        back = self.waitFor("alice@example.com", "messageReceived")
        await bobSide.sendText("Fine, thanks!")
        (_, reply) = await back
        self.assertEqual(reply.text, "Fine, thanks!")

    async def test_offline(self) -> None:
        """
        Calling someone offline fails with ContactOffline.
        """
        await self._start()
        with self.assertRaises(ContactOffline):
            await self.managers["alice@example.com"].openConversation("carol@example.net")

    async def test_leaveEndsOtherSide(self) -> None:
        """
        When bob leaves, alice's conversation ends; her next text opens a
        new switchboard and bob is rung again.
        """
        await self._start()
        started = self.waitFor("bob@example.com", "conversationStarted")
        conversation = await self.managers["alice@example.com"].openConversation("bob@example.com")
        (bobSide,) = await started
        ended = self.waitFor("alice@example.com", "conversationEnded")
        await bobSide.leave()
        await ended
        self.assertFalse(conversation.isActive)
        got = self.waitFor("bob@example.com", "messageReceived")
        await conversation.sendText("still there?")
        (_, message) = await got
        self.assertEqual(message.text, "still there?")
        self.assertEqual(len(self.network.rings), 2)
