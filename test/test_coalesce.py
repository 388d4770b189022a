"""
Tests for L{msnp.coalesce}: a burst of address-book-changed C{NOT}s costs
one refresh, and nothing runs after the session ends.
"""

from __future__ import annotations



from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.coalesce import Coalescer
from msnp.contacts import ContactList
from msnp.roster import RosterManager
from msnp.soap.addressbook import ABContact, AddressBookResult
from msnp.soap.sharing import Member, MembershipResult
from msnp.soap.sync import buildContactList
from msnp.wire import Command

from test.support import PendingServices

OWNER = "owner@example.com"


class Work:
    """
    Work whose runs stay pending until the test ends them.
    """

    def __init__(self) -> None:
        self.runs: list[Deferred[None]] = []
        self.cancelled = 0

    def __call__(self) -> "Deferred[None]":
        def cancel(d: Deferred[None]) -> None:
            self.cancelled += 1

        d: Deferred[None] = Deferred(cancel)
        self.runs.append(d)
        return d


class CoalescerTests(SynchronousTestCase):
    """
    L{Coalescer}: debounce, one in flight and one pending, close.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.work = Work()
        self.coalescer = Coalescer(self.work, clock=self.clock, delay=0.25, maxDelay=2.0)

    def test_burstIsOneRun(self) -> None:
        """
        Requests closer together than the delay share one run, which starts
        a delay after the last of them; all their Deferreds fire with it.
        """
        waiters = []
        for _ in range(5):
            waiters.append(self.coalescer.request())
            self.clock.advance(0.1)
        self.assertEqual(self.work.runs, [])
        self.clock.advance(0.15)
        self.assertEqual(len(self.work.runs), 1)
        for waiter in waiters:
            self.assertNoResult(waiter)
        self.work.runs[0].callback(None)
        for waiter in waiters:
            self.assertIsNone(self.successResultOf(waiter))
        self.assertFalse(self.coalescer.busy)

    def test_maxDelay(self) -> None:
        """
        A steady stream of requests is still answered within C{maxDelay}.
        """
        for _ in range(20):
            self.coalescer.request()
            self.clock.advance(0.2)
            if self.work.runs:
                break
        self.assertEqual(len(self.work.runs), 1)
        self.assertLessEqual(self.clock.seconds(), 2.2)

    def test_onePendingBehindInFlight(self) -> None:
        """
        Requests during a run make one more run, started only when the
        first is over; those requests wait for the second run.
        """
        first = self.coalescer.request()
        self.clock.advance(1)
        later = [self.coalescer.request() for _ in range(3)]
        self.clock.advance(1)
        self.assertEqual(len(self.work.runs), 1)
        self.work.runs[0].callback(None)
        self.successResultOf(first)
        self.assertEqual(len(self.work.runs), 2)
        for waiter in later:
            self.assertNoResult(waiter)
        self.work.runs[1].callback(None)
        for waiter in later:
            self.successResultOf(waiter)
        self.assertEqual(self.coalescer.runs, 2)

    def test_failedRunStillFires(self) -> None:
        """
        A run that fails still fires its waiters, with L{None}.
        """
        waiter = self.coalescer.request()
        self.clock.advance(1)
        self.work.runs[0].errback(RuntimeError("boom"))
        self.assertIsNone(self.successResultOf(waiter))

    def test_closeDropsAndCancels(self) -> None:
        """
        L{Coalescer.close} cancels the run in flight, drops the pending one
        and its timer, fires every waiter, and later requests run nothing.
        """
        first = self.coalescer.request()
        self.clock.advance(1)
        pending = self.coalescer.request()
        self.coalescer.close()
        self.assertEqual(self.work.cancelled, 1)
        self.successResultOf(pending)
        self.successResultOf(self.coalescer.request())
        # The canceller did not fire it: Deferred.cancel errbacks it.
        self.successResultOf(first)
        self.clock.advance(10)
        self.assertEqual(len(self.work.runs), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noClock(self) -> None:
        """
        Without a clock a run starts at once; requests during it share the
        next run.
        """
        coalescer = Coalescer(self.work)
        coalescer.request()
        self.assertEqual(len(self.work.runs), 1)
        coalescer.request()
        coalescer.request()
        self.work.runs[0].callback(None)
        self.assertEqual(len(self.work.runs), 2)


class RosterRefreshTests(SynchronousTestCase):
    """
    L{RosterManager.addressBookChanged} over the coalescer: one download
    per burst, the list ends as a full sync leaves it, nothing after close.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.services = PendingServices()
        self.contacts = ContactList()
        self.roster = RosterManager(
            self.contacts, self.services, self.services,  # type: ignore[arg-type]
            lambda name, payload: succeed(Command(name, 1, ("OK",), None)),
            None, ownEmail=OWNER, clock=self.clock,
        )

    def documents(self, count: int) -> tuple[MembershipResult, AddressBookResult]:
        membership = MembershipResult()
        contacts = []
        for i in range(count):
            email = f"c{i}@example.com"
            membership.roles["Allow"][email] = Member(email, i + 1)
            contacts.append(ABContact(f"id-{i}", email, f"C {i}", isMessengerUser=True))
        return membership, AddressBookResult(contacts=contacts)

    def test_burstOneDownload(self) -> None:
        """
        800 NOTs in a burst download both documents once, and the list then
        equals what a full sync of the same documents builds.
        """
        waiters = [self.roster.addressBookChanged() for _ in range(800)]
        self.clock.advance(1)
        self.assertEqual(len(self.services.pending), 2)
        membership, book = self.documents(5)
        self.services.answerAll(membership, book)
        for waiter in waiters:
            self.successResultOf(waiter)
        self.assertEqual(self.services.pending, [])
        expected = buildContactList(membership, book, OWNER)
        self.assertEqual(
            sorted((c.email, c.lists, c.contactId) for c in self.contacts),
            sorted((c.email, c.lists, c.contactId) for c in expected.contacts),
        )

    def test_noRefreshAfterClose(self) -> None:
        """
        Closing the roster (the session's logout) cancels the download in
        flight and drops the queued refresh: no request is made after it,
        and the list is left alone.
        """
        self.roster.addressBookChanged()
        self.clock.advance(1)
        inFlight = list(self.services.pending)
        queued = self.roster.addressBookChanged()
        self.roster.close()
        self.successResultOf(queued)
        # Cancelled (the gather consumed their CancelledError).
        self.assertEqual([d.called for d in inFlight], [True, True])
        self.services.pending = []
        self.clock.advance(10)
        self.successResultOf(self.roster.addressBookChanged())
        self.clock.advance(10)
        self.assertEqual(self.services.pending, [])
        self.assertEqual(list(self.contacts), [])


