"""
The compact forms a signed-in session keeps its state in (issue 13: many
sessions in one process), checked for behaviour only: the profile headers
kept as bytes and parsed on read, one shared copy of equal C{GCF}
policies, the roster's refresh coalescer built at the first refresh, and
the slotted ABCH results.
"""

from __future__ import annotations

import copy
import pickle

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.circles import Circle, CircleInvitation, CircleRole, CircleState, CircleTicket
from msnp.contacts import ContactList, Group
from msnp.nsmessages import SessionState
from msnp.roster import RosterManager
from msnp.soap.addressbook import ABContact, AddressBookResult, MeContact
from msnp.soap.circles import CircleListing
from msnp.soap.sharing import Member, MembershipResult
from msnp.wire import Command

from test.support import NotificationHarness, PendingServices

PROFILE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    b"LoginTime: 1262304000\r\nMSPAuth: secret-auth-value\r\nMemberIdLow: -5\r\n\r\n"
)


class ProfileHeadTests(SynchronousTestCase):
    """
    L{SessionState.hotmailProfile} over the header bytes it keeps.
    """

    def test_emptyByDefault(self) -> None:
        self.assertEqual(SessionState("a@example.com", "{GUID}").hotmailProfile, {})

    def test_received(self) -> None:
        """
        The profile message's headers read back as they came; each read is
        a new dict, so changing one changes nothing kept.
        """
        h = NotificationHarness(self)
        h.receive(b"MSG Hotmail Hotmail %d\r\n" % len(PROFILE) + PROFILE)
        profile = h.protocol.state.hotmailProfile
        self.assertEqual(profile["LoginTime"], "1262304000")
        self.assertEqual(profile["Content-Type"], "text/x-msmsgsprofile; charset=UTF-8")
        profile["LoginTime"] = "changed"
        self.assertEqual(h.protocol.state.hotmailProfile["LoginTime"], "1262304000")

    def test_assignDict(self) -> None:
        """
        Assigning a dict (as before) keeps it, in order.
        """
        state = SessionState("a@example.com", "{GUID}")
        state.hotmailProfile = {"LoginTime": "1", "sid": "507", "Name": "Grüße"}
        self.assertEqual(list(state.hotmailProfile.items()), [("LoginTime", "1"), ("sid", "507"), ("Name", "Grüße")])

    def test_notInRepr(self) -> None:
        """
        The header block (it holds C{MSPAuth}) stays out of the C{repr}.
        """
        state = SessionState("a@example.com", "{GUID}")
        state.profileHead = PROFILE
        self.assertNotIn("secret-auth-value", repr(state))


class SharedPolicyTests(SynchronousTestCase):
    """
    Equal C{GCF} documents on two connections are one object.
    """

    def gcf(self, payload: bytes) -> bytes:
        h = NotificationHarness(self)
        h.receive(b"GCF 0 %d\r\n" % len(payload) + payload)
        assert h.protocol.policy is not None
        return h.protocol.policy

    def test_shared(self) -> None:
        first = self.gcf(b"<Policies><Policy type='SHIELDS'>x</Policy></Policies>")
        second = self.gcf(b"<Policies><Policy type='SHIELDS'>x</Policy></Policies>")
        self.assertEqual(first, second)
        self.assertIs(first, second)

    def test_differentKept(self) -> None:
        first = self.gcf(b"<Policies>one</Policies>")
        second = self.gcf(b"<Policies>two</Policies>")
        self.assertEqual((first, second), (b"<Policies>one</Policies>", b"<Policies>two</Policies>"))


class LazyRosterRefreshTests(SynchronousTestCase):
    """
    The roster's coalescer exists from the first refresh asked for.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.services = PendingServices()
        self.roster = RosterManager(
            ContactList(), self.services, self.services,  # type: ignore[arg-type]
            lambda name, payload: succeed(Command(name, 1, ("OK",), None)),
            None, ownEmail="owner@example.com", clock=self.clock,
        )

    def test_builtOnFirstRefresh(self) -> None:
        self.assertIsNone(self.roster._refreshCoalescer)
        done = self.roster.addressBookChanged()
        self.assertIsNotNone(self.roster._refreshCoalescer)
        self.clock.advance(1)
        self.assertEqual(len(self.services.pending), 2)
        for d, result in zip(self.services.pending, [MembershipResult(), AddressBookResult()]):
            d.callback(result)
        self.assertIsNone(self.successResultOf(done))

    def test_rememberedBaseReadsBackEqual(self) -> None:
        """
        The delta-sync base (kept pickled) reads back equal to what was
        remembered, circles and their hidden ticket included, as new
        objects each time (a merge may change them in place).
        """
        membership = MembershipResult(lastChange="2026-12-03T10:00:00Z")
        membership.roles["Allow"]["a@example.com"] = Member("a@example.com", 7, "A", cid=-5)
        membership.deleted["Block"] = {"gone@example.com"}
        ticket = CircleTicket("<Ticket>secret-circle-ticket</Ticket>")
        book = AddressBookResult(
            me=MeContact("me-id", "owner@example.com", "Owner", 3, {"MSN.IM.BLP": "1"}),
            contacts=[ABContact("id-a", "a@example.com", "A", groupIds=frozenset({"g1"}), annotations={"k": "v"})],
            groups=[Group("g1", "Friends")],
            lastChange="2026-12-03T10:00:01Z",
            circleTicket="<Ticket>secret-circle-ticket</Ticket>",
            circles=CircleListing(
                circles={"c1": Circle("c1", "Club", CircleRole.ADMIN, CircleState.ACCEPTED, representativeId="r1")},
                invitations={"c2": CircleInvitation("c2", "Other", "r2", "x@example.com", "X")},
                ticket=ticket,
                representativeIds={"c1": "r1"},
            ),
        )
        self.assertIsNone(self.roster._lastBook)
        self.roster.rememberSync(membership, book)
        self.assertEqual(self.roster._lastMembership, membership)
        readBook = self.roster._lastBook
        self.assertEqual(readBook, book)
        self.assertIsNot(readBook, book)
        assert readBook is not None and readBook.circles is not None and readBook.circles.ticket is not None
        self.assertEqual(readBook.circles.ticket, ticket)
        self.assertNotIn("secret-circle-ticket", repr(self.roster))

    def test_closedBeforeAnyRefresh(self) -> None:
        """
        A refresh asked for after C{close()} downloads nothing and fires.
        """
        self.roster.close()
        done = self.roster.addressBookChanged()
        self.clock.advance(10)
        self.assertEqual(self.services.pending, [])
        self.assertIsNone(self.successResultOf(done))


class SlottedResultTests(SynchronousTestCase):
    """
    The slotted ABCH results still compare, copy, pickle and refuse
    unknown attributes.
    """

    def test_copyAndPickle(self) -> None:
        for value in (
            Member("a@example.com", 5, "A", cid=7, inviteMessage="hi"),
            ABContact("id", "a@example.com", "A", groupIds={"g"}, annotations={"k": "v"}),
            MeContact("id", "me@example.com", "Me", 3, {"MSN.IM.BLP": "1"}),
        ):
            self.assertEqual(copy.deepcopy(value), value)
            self.assertEqual(pickle.loads(pickle.dumps(value)), value)
            self.assertFalse(hasattr(value, "__dict__"))
