"""
The in-memory P2P harness shared by L{test.test_p2p_session} and
L{test.test_p2p_files}: two sans-IO L{msnp.p2p.session.P2PManager}s wired
through a fake switchboard that delivers when the test says so, on a
L{Clock}.
"""

from __future__ import annotations

import random
from typing import Any, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from msnp.p2p.msnobject import MSNObject
from msnp.p2p.session import IObjectSource, IP2PTransport, P2PManager
from msnp.p2p.transport import classify, parseFrame

ALICE = "alice@example.com"
BOB = "bob@example.com"
#: The switchboard's payload limit (MSNP18.md 6.5).
MAX_PAYLOAD = 1664


def picture(size: int, seed: int = 7) -> bytes:
    return bytes((seed * i) % 256 for i in range(size))


@implementer(IObjectSource)
class Published:
    """
    The objects one side serves, by SHA1D.
    """

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.override: Optional[bytes] = None

    def publish(self, creator: str, data: bytes) -> MSNObject:
        obj = MSNObject.fromData(creator, data)
        self.objects[obj.sha1d] = data
        return obj

    def objectData(self, requested: MSNObject) -> Optional[bytes]:
        data = self.objects.get(requested.sha1d)
        return self.override if data is not None and self.override is not None else data


@implementer(IP2PTransport)
class Wire:
    """
    One side's switchboard: each payload waits in a queue shared by both
    sides until the test delivers it; its Deferred fires (the switchboard's
    C{ACK}) on delivery.
    """

    def __init__(self, queue: list[Any], me: str) -> None:
        self.queue = queue
        self.me = me
        self.other: Optional[P2PManager] = None
        self.sent: list[bytes] = []
        self.connected = True
        self.failNext = False

    def sendP2P(self, peer: str, payload: bytes) -> "Deferred[Any]":
        if not self.connected or self.failNext:
            self.failNext = False
            return fail(ConnectionError("switchboard closed"))
        self.sent.append(payload)
        d: Deferred[None] = Deferred()

        def deliver() -> None:
            if self.connected and self.other is not None:
                self.other.payloadReceived(self.me, payload)
            d.callback(None)

        self.queue.append(deliver)
        return d

    def kinds(self) -> list[str]:
        result = []
        for payload in self.sent:
            chunk = parseFrame(payload).chunk
            result.append(classify(chunk.header, chunk.payload).value)
        return result


class Pair:
    """
    Alice fetches, Bob owns pictures.
    """

    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.queue: list[Any] = []
        self.aliceWire, self.bobWire = Wire(self.queue, ALICE), Wire(self.queue, BOB)
        self.bobObjects = Published()
        self.alice = P2PManager(ALICE, self.aliceWire, Published(), self.clock, rng=random.Random(1), **options)
        self.bob = P2PManager(BOB, self.bobWire, self.bobObjects, self.clock, rng=random.Random(2), **options)
        self.aliceWire.other, self.bobWire.other = self.bob, self.alice

    def step(self, count: int = 1) -> None:
        """
        Deliver the next C{count} queued payloads (in the order sent).
        """
        for _ in range(count):
            if self.queue:
                self.queue.pop(0)()

    def run(self, limit: int = 100000) -> None:
        """
        Deliver until the wire is quiet (timers stay pending on the clock).
        """
        for _ in range(limit):
            if not self.queue:
                return
            self.queue.pop(0)()
        raise AssertionError("the wire never went quiet")


class LogCatcher:
    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def text(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)
