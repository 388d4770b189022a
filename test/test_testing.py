"""
Tests for L{msnp.testing}: the helpers users test their own bots with,
over real loopback sockets against a L{msnp.server.LocalNetwork}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.handlers import ObserverBase
from msnp.interfaces import IMessengerObserver
from msnp.testing import RecordingObserver, signIn, startLocalNetwork, waitUntil

from test.support import asyncTest


class _Echo(ObserverBase):
    def messageReceived(self, session: Any, conversation: Any, message: Any) -> None:
        conversation.sendText(f"echo: {message.text}")


class RecordingObserverTests(SynchronousTestCase):
    """
    L{RecordingObserver} is generated from the interface and waits on a clock.
    """

    def test_everyEvent(self) -> None:
        """
        It provides the interface and has a method for every event, each
        recording the event's name and arguments.
        """
        observer = RecordingObserver("r", reactor=Clock())
        self.assertTrue(IMessengerObserver.providedBy(observer))
        for name in IMessengerObserver.names():
            getattr(observer, name)(1, 2)
        self.assertEqual(sorted(e[0] for e in observer.events), sorted(IMessengerObserver.names()))
        self.assertEqual(observer.named("signedIn"), [(1, 2)])

    def test_waitTimesOut(self) -> None:
        """
        A wait that never holds fails after its timeout on the given clock
        with an L{AssertionError} naming what was awaited.
        """
        clock = Clock()
        observer = RecordingObserver("r", reactor=clock, timeout=5)
        d = observer.waitForEvent("signedIn")
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        failure = self.failureResultOf(d, AssertionError)
        self.assertIn("1 x signedIn", str(failure.value))

    def test_waitFiresOnEvent(self) -> None:
        """
        A wait fires as soon as the event that satisfies it is recorded.
        """
        observer = RecordingObserver("r", reactor=Clock())
        d = observer.waitForEvent("nudgeReceived", count=2)
        observer.nudgeReceived("c", "bob@example.com")
        self.assertNoResult(d)
        observer.nudgeReceived("c", "bob@example.com")
        self.successResultOf(d)


class LocalNetworkHelperTests(TestCase):
    """
    The helpers end to end: a bot and a user on a local network.
    """

    timeout = 30

    @asyncTest
    async def test_echoBot(self) -> None:
        """
        A user signed in with L{signIn} talks to a bot and the recording
        observer sees the answer; L{waitUntil} sees the server's view.
        """
        network, endpoints = await startLocalNetwork(
            [("bot@example.com", "pw-b", "Bot"), ("me@example.com", "pw-m", "Me")],
            mutualContacts=[("bot@example.com", "me@example.com")],
            addCleanup=self.addCleanup,
            reactor=reactor,
        )
        await signIn("bot@example.com", "pw-b", endpoints, observer=_Echo(), addCleanup=self.addCleanup)
        me = RecordingObserver("me")
        session = await signIn("me@example.com", "pw-m", endpoints, observer=me, addCleanup=self.addCleanup)
        await waitUntil(lambda: len(network.onlineSessions("bot@example.com")) == 1)
        conversation = await session.openConversation("bot@example.com")
        await conversation.sendText("hi")
        await me.waitForEvent("messageReceived")
        ((heardBy, heardIn, message),) = me.named("messageReceived")
        self.assertEqual(message.text, "echo: hi")
        # The event names the session and the conversation it happened in.
        self.assertIs(heardBy, session)
        self.assertIs(heardIn, conversation)
