"""
Unit tests of L{msnp.circlechat.CircleManager}'s sends and pushed
commands, over a fake NS protocol and a L{Clock} (the end-to-end tests are
in C{test_circles_e2e}).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.circlechat import ChatCircle, CircleError, CircleManager
from msnp.circlewire import CircleMessageType, buildMessagePayload, buildRosterNotification
from msnp.errors import ConnectionLost, MessageNotDelivered, ServerError
from msnp.wire import Command

from test.support import EventRecorder, Summary

CIRCLE = "00000000-0000-0000-0009-0123456789ab"
GUID = "{7F7E3A0B-9C1D-4C4B-9E22-2C1A5B8D0F11}"


class FakeProtocol:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Optional[bytes], Deferred[Command]]] = []

    def sendCommand(self, name: str, *args: str, payload: Optional[bytes] = None, **kw: Any) -> "Deferred[Command]":
        cancelled: list[bool] = []
        d: Deferred[Command] = Deferred(lambda d: cancelled.append(True))
        self.sent.append((name, payload, d))
        return d


class FakeSession:
    account = "alice@example.com"
    machineGuid = GUID


#: What the circle-routing tests compare (the only events recorded).
CIRCLE_TRAFFIC: dict[str, Summary] = {
    "circleMessageReceived": lambda session, circle, sender, message: (circle.circleId, sender, message.text),
    "circleRosterChanged": lambda session, circle, joined, left: (circle.circleId, joined, left),
}


class CircleManagerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.protocol = FakeProtocol()
        self.observer = EventRecorder("alice", CIRCLE_TRAFFIC, clock=self.clock)
        self.manager = CircleManager(
            FakeSession(), self.protocol, None, None, self.observer, self.clock, requestTimeout=30.0  # type: ignore[arg-type]
        )
        self.circle = ChatCircle(CIRCLE, "Family", manager=self.manager)
        self.manager.circles[CIRCLE] = self.circle

    def test_sendResolvesAfterQuietWindow(self) -> None:
        """
        An SDG nobody refused fires only once the quiet window passed on
        the clock, and its request is then forgotten (cancelled).
        """
        d = self.circle.sendText("hi")
        [(name, payload, request)] = self.protocol.sent
        self.assertEqual(name, "SDG")
        self.assertIn(b"hi", payload or b"")
        self.assertNoResult(d)
        self.clock.advance(self.manager.quietWindow - 0.01)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(request.called)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_quietWindowBoundedByRequestTimeout(self) -> None:
        """
        With a request timeout shorter than the window, the timeout wins.
        """
        manager = CircleManager(FakeSession(), self.protocol, None, None, None, self.clock, requestTimeout=0.5)  # type: ignore[arg-type]
        self.assertEqual(manager.quietWindow, 0.5)

    def test_refusedAndLost(self) -> None:
        """
        A numeric error for the SDG's TrID, or a lost connection, fails the
        send with L{MessageNotDelivered} at once and stops the timer.
        """
        refused = self.circle.sendText("one")
        lost = self.circle.sendNudge()
        self.protocol.sent[0][2].errback(ServerError(201, "SDG"))
        self.protocol.sent[1][2].errback(ConnectionLost("gone"))
        self.failureResultOf(refused, MessageNotDelivered)
        self.failureResultOf(lost, MessageNotDelivered)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_notAMember(self) -> None:
        """
        A circle that is not the session's cannot be sent to; nothing is sent.
        """
        other = ChatCircle("00000000-0000-0000-0009-00000000ffff", "Other", manager=self.manager)
        self.failureResultOf(other.sendText("x"), CircleError)
        self.assertEqual(self.protocol.sent, [])

    def test_pushedCommands(self) -> None:
        """
        A message and a roster change for our circle become events; the
        same for an unknown circle, and garbage, are ignored.
        """
        message = buildMessagePayload(CIRCLE, "bob@example.com", GUID, 1, CircleMessageType.TEXT, "yo")
        roster = buildRosterNotification(CIRCLE, "alice@example.com", ["alice@example.com", "bob@example.com"])
        unknown = "00000000-0000-0000-0009-00000000ffff"
        for command in (
            Command("SDG", 0, (), message),
            Command("NFY", None, ("PUT",), roster),
            Command("SDG", 0, (), message.replace(CIRCLE.encode(), unknown.encode())),
            Command("NFY", None, ("PUT",), roster.replace(CIRCLE.encode(), unknown.encode())),
            Command("SDG", 0, (), b"\x00garbage"),
            Command("NFY", None, ("PUT",), roster.replace(b"</roster>", b"")),
        ):
            self.manager.commandReceived(command)
        self.assertEqual(
            self.observer.events,
            [("circleMessageReceived", CIRCLE, "bob@example.com", "yo"), ("circleRosterChanged", CIRCLE, frozenset({"bob@example.com"}), frozenset())],
        )
        self.assertEqual(self.circle.online, {"bob@example.com"})
