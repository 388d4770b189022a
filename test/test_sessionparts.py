"""
The session's managers built on first use (L{msnp.sessionparts}), end to
end: real L{msnp.client.MSNClient}s on a L{msnp.server.network.LocalNetwork}
over loopback sockets.

What matters is that the laziness cannot be seen: a manager nobody read
still receives its first event (a switchboard invitation, an offline
message), the public attributes work as before, and a part first read
after the end is built closed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from msnp.uum import DeliveryResult

from test.support import CONVERSATION_EVENTS, EventRecorder, pollUntil, signIn, startLocalNetwork

PASSWORD = "secret-pw"
ALICE = "alice@example.com"
BOB = "bob@example.com"

EVENTS = dict(CONVERSATION_EVENTS, offlineMessageReceived=None, offlineMessageFailed=None)

LAZY = ("conversationManager", "pictures", "files", "rich", "circleManager", "offlineInbox", "_circleRefreshes")


class LazyPartsEndToEndTests(TestCase):
    """
    alice and bob, mutual contacts, on one local network.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self, [(ALICE, PASSWORD, "Alice"), (BOB, PASSWORD, "Bob")], mutualContacts=[(ALICE, BOB)],
            reactor=reactor,
        )

    async def signIn(self, email: str) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(email.split("@")[0], EVENTS)
        session = await signIn(self, email, PASSWORD, self.endpoints, recorder, uumGracePeriod=0.2)
        return session, recorder

    def assertUnbuilt(self, session: Any, *names: str) -> None:
        self.assertEqual([n for n in names if session._partBuilt(n)], [])

    async def test_idleSessionBuildsNothing(self) -> None:
        """
        A signed-in session nobody used has none of the lazy parts, not
        even after the initial mail data (which announces nothing) or an
        empty circle listing; reading C{conversations} builds nothing
        either.
        """
        alice, _ = await self.signIn(ALICE)
        self.assertEqual(alice.conversations, [])
        self.assertUnbuilt(alice, *LAZY)

    async def test_invitationReachesUnbuiltManager(self) -> None:
        """
        bob never touched his conversations: alice's invitation builds his
        manager, he hears C{conversationStarted} and the text.
        """
        alice, _ = await self.signIn(ALICE)
        bob, bobEvents = await self.signIn(BOB)
        self.assertUnbuilt(bob, "conversationManager")
        conversation = await alice.openConversation(BOB)
        await bobEvents.waitForEvent("conversationStarted")
        await conversation.sendText("hello lazy bob")
        await bobEvents.waitForEvent("messageReceived")
        self.assertEqual(bobEvents.named("messageReceived")[0][1].text, "hello lazy bob")
        self.assertTrue(bob._partBuilt("conversationManager"))
        self.assertEqual(len(bob.conversations), 1)

    async def test_offlineMessageReachesUnbuiltInbox(self) -> None:
        """
        An offline message waiting at sign-in builds the inbox, which
        fetches and delivers it.
        """
        alice, _ = await self.signIn(ALICE)
        self.assertEqual(await alice.sendOfflineMessage(BOB, "while you were out"), DeliveryResult.STORED_OFFLINE)
        bob, bobEvents = await self.signIn(BOB)
        await bobEvents.waitForEvent("offlineMessageReceived")
        self.assertEqual(bobEvents.named("offlineMessageReceived")[0][1].text, "while you were out")
        self.assertTrue(await pollUntil(lambda: not self.network.offlineStore.listOfflineMessages(BOB), 5))

    async def test_offlineMessageWhileOnline(self) -> None:
        """
        A live OIM notification (bob online, the inbox not yet built) is
        fetched and delivered too.
        """
        bob, bobEvents = await self.signIn(BOB)
        alice, _ = await self.signIn(ALICE)
        self.assertUnbuilt(bob, "offlineInbox")
        await alice.logout()
        # bob now sees alice offline; she leaves him a message from a new session.
        again, _ = await self.signIn(ALICE)
        await again.sendOfflineMessage(BOB, "are you there?")
        await bobEvents.waitFor(
            lambda: bobEvents.count("offlineMessageReceived") + bobEvents.count("messageReceived") >= 1,
            "the message",
        )

    async def test_publicAttributesBuildOnRead(self) -> None:
        """
        Reading a public attribute builds the part, once; the parts share
        what they did before (the files over the pictures' P2P manager,
        the conversations over both).
        """
        alice, _ = await self.signIn(ALICE)
        manager = alice.conversationManager
        self.assertIs(alice.conversationManager, manager)
        self.assertIs(manager.files, alice.files)
        self.assertIs(manager.rich, alice.rich)
        self.assertIs(alice.files.sessions.manager, alice.pictures.manager)
        self.assertEqual(alice.circles, {})
        self.assertEqual(alice.circleInvitations, {})
        self.assertIsNotNone(alice.offlineInbox)

    async def test_builtAfterTheEndIsClosed(self) -> None:
        """
        A part first read after the session ended starts closed: the
        inbox stopped, the circle refresh closed.
        """
        alice, _ = await self.signIn(ALICE)
        await alice.logout()
        await alice.whenEnded()
        self.assertFalse(alice.isActive)
        self.assertUnbuilt(alice, "offlineInbox", "pictures")
        inbox = alice.offlineInbox
        assert inbox is not None
        self.assertTrue(inbox._stopped)
        self.assertTrue(alice._circleRefreshes._closed)
