"""
Tests for L{msnp.roaming}: the sign-in choice of name and message, and
L{RoamingProfileSync} against the real local storage resource in memory
(C{StubTreq}, retries on a L{Clock}), including a service that fails.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from msnp.roaming import FIRST_RETRY_DELAY, RoamingProfileSync, SignInProfile, chooseSignInProfile
from msnp.server.accounts import AccountStore
from msnp.server.roaming import MemoryRoamingProfiles, StorageTickets
from msnp.server.storage import StorageResource
from msnp.soap.storage import RoamingProfile, StorageService

from test.support import stubTreq

PNG = b"\x89PNG\r\n\x1a\n" + b"sync tile"
URL = "http://127.0.0.1/storageservice/SchematizedStore.asmx"


class ChooseTests(SynchronousTestCase):
    """
    L{chooseSignInProfile}.
    """

    roamed = RoamingProfile("x!106", displayName="Roamed", personalMessage="Roamed PSM")

    def test_callerWins(self) -> None:
        """
        Values the caller set are used as they are, even an empty message.
        """
        self.assertEqual(
            chooseSignInProfile(self.roamed, "Mine", "", "fallback"), SignInProfile("Mine", "")
        )

    def test_roamedUsed(self) -> None:
        """
        Without the caller's values the roamed ones are used, and said so.
        """
        self.assertEqual(
            chooseSignInProfile(self.roamed, None, None, "fallback"),
            SignInProfile("Roamed", "Roamed PSM", True, True),
        )

    def test_nothingRoamed(self) -> None:
        """
        Nothing roamed (or no profile at all): the fallback name, no message.
        """
        for roamed in (None, RoamingProfile("x!106")):
            self.assertEqual(chooseSignInProfile(roamed, None, None, "AB name"), SignInProfile("AB name", ""))


class Switchable(Resource):
    """
    The real storage resource, or HTTP 500 while C{broken}.
    """

    def __init__(self, real: Resource) -> None:
        super().__init__()
        self.real = real
        self.broken = False
        self.calls = 0

    def getChild(self, path: bytes, request: Request) -> Any:
        self.calls += 1
        if self.broken:
            return Broken()
        return self.real.getChildWithDefault(path, request)


class Broken(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(500)
        return b""


class SyncTests(SynchronousTestCase):
    """
    L{RoamingProfileSync} for alice.
    """

    def setUp(self) -> None:
        self.store = AccountStore()
        self.alice = self.store.addAccount("alice@example.com", "pw", "Alice")
        tickets = StorageTickets(self.store)
        ticket = tickets.issue(self.store.issueTickets(self.alice))
        self.profiles = MemoryRoamingProfiles()
        self.switch = Switchable(StorageResource(tickets, self.profiles))
        self.treq = stubTreq(b"storageservice", self.switch)
        self.clock = Clock()
        self.service = StorageService(self.treq, URL, lambda: ticket, self.clock)
        self.sync = RoamingProfileSync(self.service, self.alice.cid, self.clock)

    def resolve(self, d: "Deferred[Any]") -> Any:
        self.treq.flush()
        return self.successResultOf(d)

    def test_loadFailureIsNone(self) -> None:
        """
        A failing service gives L{None} at sign-in, not a failure.
        """
        self.switch.broken = True
        self.assertIsNone(self.resolve(self.sync.load()))
        self.assertIsNone(self.resolve(self.sync.fetchPicture()))

    def test_changesRoamToNextPlace(self) -> None:
        """
        Name, message and picture changed here are what the next place
        loads, picture bytes included; a second picture replaces the first.
        """
        self.resolve(self.sync.load())
        self.assertTrue(self.resolve(self.sync.change(displayName="Alice 2", personalMessage="Hi")))
        self.assertTrue(self.resolve(self.sync.change(picture=b"GIF89a first")))
        self.assertTrue(self.resolve(self.sync.change(picture=PNG)))
        nextPlace = RoamingProfileSync(self.service, self.alice.cid, self.clock)
        loaded = self.resolve(nextPlace.load())
        self.assertEqual((loaded.displayName, loaded.personalMessage), ("Alice 2", "Hi"))
        self.assertEqual(self.resolve(nextPlace.fetchPicture()), PNG)
        self.assertFalse(self.sync.pending)

    def test_withoutLoad(self) -> None:
        """
        A change before any load reads the profile first.
        """
        self.assertTrue(self.resolve(self.sync.change(personalMessage="early")))
        stored = self.profiles.getRoamingProfile("alice@example.com")
        assert stored is not None
        self.assertEqual(stored.personalMessage, "early")

    def test_coalesced(self) -> None:
        """
        Changes made while a write is under way end up stored, newest last.
        """
        first = self.sync.change(personalMessage="one")
        second = self.sync.change(personalMessage="two")
        self.treq.flush()
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (True, True))
        stored = self.profiles.getRoamingProfile("alice@example.com")
        assert stored is not None
        self.assertEqual(stored.personalMessage, "two")

    def test_retriedLater(self) -> None:
        """
        A failed write answers C{False}, is retried after the delay on the
        clock (not before), and then stored.
        """
        self.resolve(self.sync.load())
        self.switch.broken = True
        self.assertFalse(self.resolve(self.sync.change(displayName="Later")))
        self.assertTrue(self.sync.pending)
        self.switch.broken = False
        calls = self.switch.calls
        self.clock.advance(FIRST_RETRY_DELAY - 1)
        self.assertEqual(self.switch.calls, calls)
        self.clock.advance(1)
        self.treq.flush()
        self.assertFalse(self.sync.pending)
        stored = self.profiles.getRoamingProfile("alice@example.com")
        assert stored is not None
        self.assertEqual(stored.displayName, "Later")

    def test_backoffAndStop(self) -> None:
        """
        Repeated failures double the delay; L{stop} ends the retries and
        later changes answer C{False} at once.
        """
        self.switch.broken = True
        self.resolve(self.sync.change(displayName="x"))
        self.clock.advance(FIRST_RETRY_DELAY)
        self.treq.flush()
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [FIRST_RETRY_DELAY * 3])
        self.sync.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.successResultOf(self.sync.change(displayName="y")))
