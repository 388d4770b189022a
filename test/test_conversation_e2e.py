"""
Conversations end to end: real L{msnp.client.MSNClient}s signed in to a
L{msnp.server.network.LocalNetwork} over loopback sockets, talking through
its switchboard server.

Each test waits for observer events (never for wall-clock time); a missing
event fails the test through a per-wait timeout.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.trial.unittest import TestCase

from msnp.errors import ContactOffline, MessageNotDelivered

from test.support import (
    CONVERSATION_EVENTS,
    EventRecorder,
    logoutQuietly,
    messageTexts,
    signIn,
    startLocalNetwork,
)

PASSWORD = "secret-pw"
LONG_TEXT = ("Grüße aus Zürich — ça va? Ελληνικά 日本語 😀 ✓ " * 120)[:4000]


async def logoutAfterSwitchboards(session: Any) -> None:
    """
    Sign C{session} out and wait until its switchboard connections are
    closed too, so none outlives the test.
    """
    manager = session.conversationManager
    closing = []
    if manager is not None:
        closing = [c._switchboard.whenLost() for c in manager.conversations if c._switchboard is not None]
    await logoutQuietly(session)
    await DeferredList(closing)


class ConversationEndToEndTests(TestCase):
    """
    alice, bob and carol signed in on one local network; dave exists but
    stays offline.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(f"{name}@example.com", PASSWORD, name.capitalize()) for name in ("alice", "bob", "carol", "dave")],
            mutualContacts=[
                (f"{a}@example.com", f"{b}@example.com")
                for a, b in (("alice", "bob"), ("alice", "carol"), ("bob", "carol"), ("alice", "dave"))
            ],
            reactor=reactor,
        )

    async def signIn(self, name: str) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(name, CONVERSATION_EVENTS)
        session = await signIn(
            self, f"{name}@example.com", PASSWORD, self.endpoints, recorder, signOut=logoutAfterSwitchboards
        )
        return session, recorder

    def serverSide(self, email: str) -> list[Any]:
        """
        The switchboard server connections of C{email}.
        """
        return [
            member
            for session in self.network.switchboards.sessions.values()
            for member in session.members
            if member.account == email
        ]

    async def test_bothDirections(self) -> None:
        """
        alice opens a conversation with bob; bob's client answers the RNG by
        itself and hears conversationStarted; texts go both ways, including
        a 4,000-character non-ASCII text that arrives whole.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        conversation = await alice.openConversation("bob@example.com")
        self.assertEqual(conversation.participants, {"bob@example.com"})
        await bobEvents.waitForEvent("conversationStarted")
        (bobSide,) = bobEvents.named("conversationStarted")[0]
        self.assertEqual(bobSide.participants, {"alice@example.com"})
        self.assertIn(bobSide, bob.conversations)

        await conversation.sendText("Hi Bob! ça va?")
        await bobEvents.waitForEvent("messageReceived")
        message = bobEvents.named("messageReceived")[0][1]
        self.assertEqual((message.sender, message.senderName, message.text), ("alice@example.com", "Alice", "Hi Bob! ça va?"))

        await bobSide.sendText("Fine, thanks!")
        await aliceEvents.waitForEvent("messageReceived")
        self.assertEqual(messageTexts(aliceEvents), ["Fine, thanks!"])

        await conversation.sendText(LONG_TEXT)
        await bobEvents.waitForEvent("messageReceived", 2)
        self.assertEqual(messageTexts(bobEvents)[1], LONG_TEXT)

    async def test_typingAndNudge(self) -> None:
        """
        Typing notifications and nudges reach the other side.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        conversation = await alice.openConversation("bob@example.com")
        await bobEvents.waitForEvent("conversationStarted")
        conversation.sendTyping()
        await bobEvents.waitForEvent("typingReceived")
        self.assertEqual(bobEvents.named("typingReceived")[0][1], "alice@example.com")
        await conversation.sendNudge()
        await bobEvents.waitForEvent("nudgeReceived")
        self.assertEqual(bobEvents.named("nudgeReceived")[0][1], "alice@example.com")

    async def test_threeParty(self) -> None:
        """
        alice invites carol into her conversation with bob; every text
        reaches both others.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        carol, carolEvents = await self.signIn("carol")
        conversation = await alice.openConversation("bob@example.com")
        await conversation.invite("carol@example.com")
        self.assertEqual(conversation.participants, {"bob@example.com", "carol@example.com"})
        await carolEvents.waitForEvent("conversationStarted")
        (carolSide,) = carolEvents.named("conversationStarted")[0]
        self.assertEqual(carolSide.participants, {"alice@example.com", "bob@example.com"})
        await bobEvents.waitFor(
            lambda: ("carol@example.com" in [e[1] for e in bobEvents.named("participantJoined")]), "carol joins"
        )

        await conversation.sendText("hello both")
        await bobEvents.waitForEvent("messageReceived")
        await carolEvents.waitForEvent("messageReceived")
        await carolSide.sendText("hi from carol")
        await aliceEvents.waitForEvent("messageReceived")
        await bobEvents.waitForEvent("messageReceived", 2)
        self.assertEqual(messageTexts(bobEvents), ["hello both", "hi from carol"])
        self.assertEqual(messageTexts(aliceEvents), ["hi from carol"])
        self.assertEqual(carolEvents.named("messageReceived")[0][1].sender, "alice@example.com")

    async def test_offlineContact(self) -> None:
        """
        Calling a contact who is offline fails with ContactOffline.
        """
        alice, aliceEvents = await self.signIn("alice")
        with self.assertRaises(ContactOffline):
            await alice.openConversation("dave@example.com")
        self.assertEqual(alice.conversations, [])

    async def test_switchboardKilledBeforeAck(self) -> None:
        """
        The switchboard dies while a text waits for its ACK: that text fails
        with MessageNotDelivered, and the next one goes through on a new
        switchboard (bob is rung again and his client answers).
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        conversation = await alice.openConversation("bob@example.com")
        await bobEvents.waitForEvent("conversationStarted")
        first = conversation._switchboard
        lost = conversation.sendText("this one is lost")
        for server in self.serverSide("alice@example.com"):
            server.transport.abortConnection()
        with self.assertRaises(MessageNotDelivered):
            await lost
        await aliceEvents.waitForEvent("conversationEnded")
        self.assertFalse(conversation.isActive)

        await conversation.sendText("second try")
        self.assertIsNot(conversation._switchboard, first)
        await bobEvents.waitFor(lambda: "second try" in messageTexts(bobEvents), "the second text")
        self.assertNotIn("this one is lost", messageTexts(bobEvents))
        self.assertEqual(len(bobEvents.named("conversationStarted")), 2)

    async def test_leaveEndsOneToOne(self) -> None:
        """
        When bob leaves, alice's one-to-one conversation ends (she sees him
        leave); reopening with openConversation reuses the same object.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        conversation = await alice.openConversation("bob@example.com")
        await bobEvents.waitForEvent("conversationStarted")
        (bobSide,) = bobEvents.named("conversationStarted")[0]
        await bobSide.leave()
        await aliceEvents.waitForEvent("conversationEnded")
        self.assertEqual([e[1] for e in aliceEvents.named("participantLeft")], ["bob@example.com"])
        again = await alice.openConversation("bob@example.com")
        self.assertIs(again, conversation)
        self.assertTrue(again.isActive)
