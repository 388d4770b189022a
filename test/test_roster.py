"""
Unit tests of L{msnp.roster.RosterManager} with fake SOAP services and a
fake C{sendListCommand}: the exact calls of every recipe, the list left
untouched by every failure, the events of server-pushed list changes, and
the serialisation of concurrent operations.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import Contact, ContactList, Group, Lists, Status
from msnp.listpayload import ListEntry
from msnp.errors import ContactListError, ServerError, ServiceError
from msnp.roster import RosterManager, isValidAddress
from msnp.soap.addressbook import ABContact, AddressBookResult
from msnp.soap.sharing import Member, MembershipResult
from msnp.wire import Command

from test.support import LIST_CHANGES, EventRecorder

FL, AL, BL, RL, PL = Lists.FORWARD, Lists.ALLOW, Lists.BLOCK, Lists.REVERSE, Lists.PENDING


def adl(domain: str, local: str, bits: int) -> str:
    return f'ADL <ml><d n="{domain}"><c n="{local}" l="{bits}" t="1" /></d></ml>'


def rml(domain: str, local: str, bits: int) -> str:
    return f'RML <ml><d n="{domain}"><c n="{local}" l="{bits}" t="1" /></d></ml>'


class Remote:
    """
    Records every remote call (SOAP and NS) as one line of text, in order,
    and answers from a script: succeed, fail the call with index C{failAt},
    or (C{manual}) hold every answer until the test fires it.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failAt: Optional[int] = None
        self.failAll: Optional[Callable[[str], bool]] = None
        self.manual = False
        self.held: list[tuple[Deferred[Any], Any]] = []
        self.membership = MembershipResult()
        self.addressBook = AddressBookResult()
        self._ids = itertools.count(1)

    def nextId(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def call(self, description: str, result: Any = None) -> Deferred[Any]:
        index = len(self.calls)
        self.calls.append(description)
        if self.failAt == index or (self.failAll is not None and self.failAll(description)):
            if description.startswith(("ADL ", "RML ")):
                return fail(ServerError(241, description[:3]))
            return fail(ServiceError(f"fault in {description.split()[0]}", status=500))
        if self.manual:
            d: Deferred[Any] = Deferred()
            self.held.append((d, result))
            return d
        return succeed(result)

    def release(self) -> None:
        """
        Fire the oldest held answer.
        """
        d, result = self.held.pop(0)
        d.callback(result)


class FakeSharing:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def findMembership(self, scenario: str = "Initial", lastChange: Optional[str] = None) -> Deferred[Any]:
        return self.remote.call(f"FindMembership {scenario}", self.remote.membership)

    def addMember(self, role: str, email: str, scenario: str, network: int = 1) -> Deferred[Any]:
        return self.remote.call(f"AddMember {role} {email} {scenario}")

    def deleteMember(
        self,
        role: str,
        email: Optional[str] = None,
        membershipId: Optional[int] = None,
        scenario: str = "BlockUnblock",
        network: int = 1,
    ) -> Deferred[Any]:
        who = f"id={membershipId}" if membershipId is not None else email
        return self.remote.call(f"DeleteMember {role} {who} {scenario}")


class FakeAddressBook:
    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def findContactsPaged(self, scenario: str = "Initial", lastChange: Optional[str] = None) -> Deferred[Any]:
        return self.remote.call(f"ABFindContactsPaged {scenario}", self.remote.addressBook)

    def contactAdd(
        self,
        email: str,
        displayName: Optional[str] = None,
        inviteMessage: Optional[str] = None,
        scenario: str = "ContactSave",
        network: int = 1,
    ) -> Deferred[Any]:
        return self.remote.call(f"ABContactAdd {email} {scenario}", self.remote.nextId("contact"))

    def contactDelete(self, contactId: str, scenario: str = "Timer") -> Deferred[Any]:
        return self.remote.call(f"ABContactDelete {contactId} {scenario}")

    def groupAdd(self, name: str, scenario: str = "GroupSave") -> Deferred[Any]:
        return self.remote.call(f"ABGroupAdd {name} {scenario}", self.remote.nextId("group"))

    def groupUpdate(self, groupId: str, name: str, scenario: str = "GroupSave") -> Deferred[Any]:
        return self.remote.call(f"ABGroupUpdate {groupId} {name} {scenario}")

    def groupDelete(self, groupId: str, scenario: str = "Timer") -> Deferred[Any]:
        return self.remote.call(f"ABGroupDelete {groupId} {scenario}")

    def groupContactAdd(self, groupId: str, contactId: str, scenario: str = "GroupSave") -> Deferred[Any]:
        return self.remote.call(f"ABGroupContactAdd {groupId} {contactId} {scenario}")

    def groupContactDelete(self, groupId: str, contactId: str, scenario: str = "GroupSave") -> Deferred[Any]:
        return self.remote.call(f"ABGroupContactDelete {groupId} {contactId} {scenario}")


SESSION = object()


def standardList() -> ContactList:
    """
    bob: mutual contact in group "Friends"; carol: forward-only, allowed;
    dave: added us (pending, membership 301); eve: blocked, not on FL.
    """
    return ContactList(
        contacts=[
            Contact("bob@example.com", "Bob", contactId="cid-bob", lists=FL | AL | RL,
                    groupIds={"g-friends"}, isMessengerUser=True,
                    membershipIds={"Allow": 11, "Reverse": 12}),
            Contact("carol@example.net", "Carol", contactId="cid-carol", lists=FL | AL,
                    isMessengerUser=True),
            Contact("dave@example.com", "Dave", lists=RL | PL,
                    membershipIds={"Pending": 301, "Reverse": 302}),
            Contact("eve@example.org", "Eve", lists=BL, membershipIds={"Block": 40}),
        ],
        groups=[Group("g-friends", "Friends"), Group("g-work", "Work")],
    )


class RosterTestMixin:
    def setUpRoster(self, contacts: Optional[ContactList] = None) -> None:
        self.remote = Remote()
        self.observer = EventRecorder("roster", LIST_CHANGES, clock=Clock())
        self.contacts = contacts if contacts is not None else standardList()
        self.roster = RosterManager(
            self.contacts,
            FakeSharing(self.remote),  # type: ignore[arg-type]
            FakeAddressBook(self.remote),  # type: ignore[arg-type]
            self.sendListCommand,
            self.observer,
            session=SESSION,
            ownEmail="alice@example.com",
        )

    def sendListCommand(self, name: str, payload: bytes) -> Deferred[Command]:
        return self.remote.call(f"{name} {payload.decode('utf-8')}", Command(name, 7, ("OK",)))


class RecipeTests(RosterTestMixin, SynchronousTestCase):
    """
    Each operation sends exactly the documented calls, in order, and
    updates the local list only afterwards.
    """

    def setUp(self) -> None:
        self.setUpRoster()

    def test_addContact(self) -> None:
        """
        Adding sends ABContactAdd (ContactSave) then ADL l=3, and the new
        contact is on FL and AL with the address-book id.
        """
        contact = self.successResultOf(self.roster.addContact("Frank@Example.org"))
        self.assertEqual(
            self.remote.calls,
            ["ABContactAdd frank@example.org ContactSave", adl("example.org", "frank", 3)],
        )
        self.assertIs(self.contacts.get("frank@example.org"), contact)
        self.assertEqual(contact.lists, FL | AL)
        self.assertEqual(contact.contactId, "contact-1")
        self.assertTrue(contact.isMessengerUser)
        self.assertEqual(contact.groupIds, set())

    def test_addContactIntoGroup(self) -> None:
        """
        With a group (by name), ABGroupContactAdd follows the ADL and the
        contact is in that group.
        """
        contact = self.successResultOf(self.roster.addContact("frank@example.org", "Work"))
        self.assertEqual(
            self.remote.calls,
            [
                "ABContactAdd frank@example.org ContactSave",
                adl("example.org", "frank", 3),
                "ABGroupContactAdd g-work contact-1 GroupSave",
            ],
        )
        self.assertEqual(contact.groupIds, {"g-work"})

    def test_addPendingContactKeepsRoles(self) -> None:
        """
        Adding someone already known (dave, pending) updates the same
        Contact object and keeps its Reverse/Pending bits.
        """
        dave = self.contacts.get("dave@example.com")
        contact = self.successResultOf(self.roster.addContact("dave@example.com"))
        self.assertIs(contact, dave)
        self.assertEqual(contact.lists, FL | AL | RL | PL)

    def test_addBlockedContactSendsForwardOnly(self) -> None:
        """
        A blocked address is added with ADL l=1: AL and BL together would
        be refused by the server.
        """
        contact = self.successResultOf(self.roster.addContact("eve@example.org"))
        self.assertEqual(self.remote.calls[1], adl("example.org", "eve", 1))
        self.assertEqual(contact.lists, FL | BL)

    def test_removeContact(self) -> None:
        """
        Removing sends ABContactDelete (Timer) then RML l=1; the contact
        keeps its AL/RL bits and loses its id and groups.
        """
        self.successResultOf(self.roster.removeContact("bob@example.com"))
        self.assertEqual(
            self.remote.calls,
            ["ABContactDelete cid-bob Timer", rml("example.com", "bob", 1)],
        )
        bob = self.contacts.get("bob@example.com")
        assert bob is not None
        self.assertEqual(bob.lists, AL | RL)
        self.assertIsNone(bob.contactId)
        self.assertEqual(bob.groupIds, set())

    def test_removeLastListForgetsContact(self) -> None:
        """
        A contact left on no list at all after the removal is forgotten.
        """
        self.contacts.get("carol@example.net").lists = FL  # type: ignore[union-attr]
        self.successResultOf(self.roster.removeContact("carol@example.net"))
        self.assertNotIn("carol@example.net", self.contacts)

    def test_blockAllowed(self) -> None:
        """
        Blocking an allowed contact: DeleteMember Allow, RML l=2,
        AddMember Block, ADL l=4, all BlockUnblock.
        """
        self.successResultOf(self.roster.blockContact("bob@example.com"))
        self.assertEqual(
            self.remote.calls,
            [
                "DeleteMember Allow bob@example.com BlockUnblock",
                rml("example.com", "bob", 2),
                "AddMember Block bob@example.com BlockUnblock",
                adl("example.com", "bob", 4),
            ],
        )
        self.assertEqual(self.contacts.get("bob@example.com").lists, FL | BL | RL)  # type: ignore[union-attr]

    def test_blockStranger(self) -> None:
        """
        Blocking an unknown address skips the Allow steps and records the
        address as blocked.
        """
        self.successResultOf(self.roster.blockContact("spam@example.biz"))
        self.assertEqual(
            self.remote.calls,
            ["AddMember Block spam@example.biz BlockUnblock", adl("example.biz", "spam", 4)],
        )
        self.assertEqual(self.contacts.get("spam@example.biz").lists, BL)  # type: ignore[union-attr]

    def test_unblock(self) -> None:
        """
        Unblocking is the reverse: DeleteMember Block, RML l=4, AddMember
        Allow, ADL l=2.
        """
        self.successResultOf(self.roster.unblockContact("eve@example.org"))
        self.assertEqual(
            self.remote.calls,
            [
                "DeleteMember Block eve@example.org BlockUnblock",
                rml("example.org", "eve", 4),
                "AddMember Allow eve@example.org BlockUnblock",
                adl("example.org", "eve", 2),
            ],
        )
        eve = self.contacts.get("eve@example.org")
        assert eve is not None
        self.assertEqual(eve.lists, AL)
        self.assertNotIn("Block", eve.membershipIds)

    def test_accept(self) -> None:
        """
        Accepting: AddMember Allow + ADL l=2, ABContactAdd + ADL l=1,
        AddMember Reverse, then DeleteMember Pending by membership id; the
        contact ends on FL, AL and RL and is no longer pending.
        """
        contact = self.successResultOf(self.roster.acceptContactRequest("dave@example.com"))
        self.assertEqual(
            self.remote.calls,
            [
                "AddMember Allow dave@example.com ContactMsgrAPI",
                adl("example.com", "dave", 2),
                "ABContactAdd dave@example.com ContactSave",
                adl("example.com", "dave", 1),
                "AddMember Reverse dave@example.com ContactMsgrAPI",
                "DeleteMember Pending id=301 ContactMsgrAPI",
            ],
        )
        self.assertEqual(contact.lists, FL | AL | RL)
        self.assertEqual(contact.contactId, "contact-1")
        self.assertNotIn("Pending", contact.membershipIds)

    def test_acceptWithoutAdding(self) -> None:
        """
        With addToList=False no address-book contact is created.
        """
        contact = self.successResultOf(
            self.roster.acceptContactRequest("dave@example.com", addToList=False)
        )
        self.assertEqual(
            self.remote.calls,
            [
                "AddMember Allow dave@example.com ContactMsgrAPI",
                adl("example.com", "dave", 2),
                "AddMember Reverse dave@example.com ContactMsgrAPI",
                "DeleteMember Pending id=301 ContactMsgrAPI",
            ],
        )
        self.assertEqual(contact.lists, AL | RL)

    def test_acceptWithoutMembershipIdUsesAddress(self) -> None:
        """
        A pending contact whose membership id is unknown is deleted from
        Pending by address.
        """
        self.contacts.get("dave@example.com").membershipIds.clear()  # type: ignore[union-attr]
        self.successResultOf(self.roster.acceptContactRequest("dave@example.com", addToList=False))
        self.assertIn("DeleteMember Pending dave@example.com ContactMsgrAPI", self.remote.calls)

    def test_decline(self) -> None:
        """
        Declining: AddMember Block + ADL l=4, AddMember Reverse,
        DeleteMember Pending; no address-book contact.
        """
        contact = self.successResultOf(self.roster.declineContactRequest("dave@example.com"))
        self.assertEqual(
            self.remote.calls,
            [
                "AddMember Block dave@example.com ContactMsgrAPI",
                adl("example.com", "dave", 4),
                "AddMember Reverse dave@example.com ContactMsgrAPI",
                "DeleteMember Pending id=301 ContactMsgrAPI",
            ],
        )
        self.assertEqual(contact.lists, BL | RL)

    def test_addGroup(self) -> None:
        """
        ABGroupAdd (GroupSave) creates the group; the new L{Group} is in
        the list.
        """
        group = self.successResultOf(self.roster.addGroup("  Family "))
        self.assertEqual(self.remote.calls, ["ABGroupAdd Family GroupSave"])
        self.assertEqual(group, Group("group-1", "Family"))
        self.assertIs(self.contacts.groups["group-1"], group)

    def test_renameGroup(self) -> None:
        """
        ABGroupUpdate renames; the Group object is renamed in place, and
        the group may be named by object, id or name.
        """
        friends = self.contacts.groups["g-friends"]
        for ref, name in ((friends, "Pals"), ("g-friends", "Mates"), ("Mates", "Friends")):
            self.successResultOf(self.roster.renameGroup(ref, name))
        self.assertEqual(
            self.remote.calls,
            [
                "ABGroupUpdate g-friends Pals GroupSave",
                "ABGroupUpdate g-friends Mates GroupSave",
                "ABGroupUpdate g-friends Friends GroupSave",
            ],
        )
        self.assertIs(self.contacts.groups["g-friends"], friends)
        self.assertEqual(friends.name, "Friends")

    def test_removeGroup(self) -> None:
        """
        ABGroupDelete (Timer) removes the group and every contact leaves it.
        """
        self.successResultOf(self.roster.removeGroup("Friends"))
        self.assertEqual(self.remote.calls, ["ABGroupDelete g-friends Timer"])
        self.assertNotIn("g-friends", self.contacts.groups)
        self.assertEqual(self.contacts.get("bob@example.com").groupIds, set())  # type: ignore[union-attr]

    def test_moveContact(self) -> None:
        """
        Moving deletes the contact from its old group, then adds it to the
        new one.
        """
        self.successResultOf(self.roster.moveContactToGroup("bob@example.com", "Work"))
        self.assertEqual(
            self.remote.calls,
            [
                "ABGroupContactDelete g-friends cid-bob GroupSave",
                "ABGroupContactAdd g-work cid-bob GroupSave",
            ],
        )
        self.assertEqual(self.contacts.get("bob@example.com").groupIds, {"g-work"})  # type: ignore[union-attr]

    def test_moveContactToNoGroup(self) -> None:
        """
        group=None takes the contact out of every group.
        """
        self.successResultOf(self.roster.moveContactToGroup("bob@example.com", None))
        self.assertEqual(self.remote.calls, ["ABGroupContactDelete g-friends cid-bob GroupSave"])
        self.assertEqual(self.contacts.get("bob@example.com").groupIds, set())  # type: ignore[union-attr]

    def test_moveIntoSameGroupIsNoop(self) -> None:
        """
        Moving a contact into the group it is already in sends nothing.
        """
        self.successResultOf(self.roster.moveContactToGroup("bob@example.com", "Friends"))
        self.assertEqual(self.remote.calls, [])


class PreconditionTests(RosterTestMixin, SynchronousTestCase):
    """
    Local preconditions fail with L{ContactListError} before any request.
    """

    def setUp(self) -> None:
        self.setUpRoster()

    def assertRefused(self, d: Deferred[Any]) -> None:
        before = self.contacts.snapshot()
        self.failureResultOf(d, ContactListError)
        self.assertEqual(self.remote.calls, [])
        self.assertEqual(self.contacts.snapshot(), before)

    def test_invalidAddresses(self) -> None:
        """
        Malformed addresses (and our own) are refused by every operation.
        """
        for bad in ("", "frank", "@example.org", "frank@", "a b@example.org", "x;y@example.org",
                    "a@b@c", "frank@example..org", "alice@example.com", "<x>@example.org"):
            self.assertRefused(self.roster.addContact(bad))
            self.assertRefused(self.roster.blockContact(bad))

    def test_isValidAddress(self) -> None:
        """
        Ordinary addresses pass the syntax check.
        """
        for good in ("frank@example.org", "first.last+tag@sub.example.co.uk", "x@localhost"):
            self.assertTrue(isValidAddress(good), good)

    def test_alreadyOnList(self) -> None:
        """
        Adding a forward-list contact again is refused.
        """
        self.assertRefused(self.roster.addContact("BOB@example.com"))

    def test_unknownGroup(self) -> None:
        """
        Unknown groups are refused by add, move, rename and remove.
        """
        self.assertRefused(self.roster.addContact("frank@example.org", "Nope"))
        self.assertRefused(self.roster.moveContactToGroup("bob@example.com", "Nope"))
        self.assertRefused(self.roster.renameGroup("Nope", "X"))
        self.assertRefused(self.roster.removeGroup(Group("g-gone", "Gone")))

    def test_unknownContact(self) -> None:
        """
        Removing, unblocking, accepting or moving an unknown address is refused.
        """
        self.assertRefused(self.roster.removeContact("nobody@example.org"))
        self.assertRefused(self.roster.unblockContact("nobody@example.org"))
        self.assertRefused(self.roster.acceptContactRequest("nobody@example.org"))
        self.assertRefused(self.roster.moveContactToGroup("nobody@example.org", "Work"))

    def test_wrongState(self) -> None:
        """
        Removing a contact not on FL, blocking a blocked one, unblocking an
        unblocked one, accepting or declining someone not pending are refused.
        """
        self.assertRefused(self.roster.removeContact("eve@example.org"))
        self.assertRefused(self.roster.blockContact("eve@example.org"))
        self.assertRefused(self.roster.unblockContact("bob@example.com"))
        self.assertRefused(self.roster.acceptContactRequest("bob@example.com"))
        self.assertRefused(self.roster.declineContactRequest("carol@example.net"))
        self.assertRefused(self.roster.moveContactToGroup("dave@example.com", "Work"))

    def test_groupNames(self) -> None:
        """
        Empty, too long or already used group names are refused.
        """
        self.assertRefused(self.roster.addGroup("   "))
        self.assertRefused(self.roster.addGroup("x" * 62))
        self.assertRefused(self.roster.addGroup("Friends"))
        self.assertRefused(self.roster.renameGroup("Friends", "Work"))


#: Operations and the exact undo calls expected when call number N fails,
#: as (operation, {failing index: calls made after the failure}).
FAILURE_CASES: list[tuple[str, Callable[[RosterManager], Deferred[Any]], dict[int, list[str]]]] = [
    (
        "add",
        lambda r: r.addContact("frank@example.org", "Work"),
        {
            0: [],
            1: ["DeleteMember Allow frank@example.org ContactSave", "ABContactDelete contact-1 Timer"],
            2: [
                rml("example.org", "frank", 3),
                "DeleteMember Allow frank@example.org ContactSave",
                "ABContactDelete contact-1 Timer",
            ],
        },
    ),
    (
        "remove",
        lambda r: r.removeContact("bob@example.com"),
        {
            0: [],
            1: ["ABContactAdd bob@example.com ContactSave", "ABGroupContactAdd g-friends contact-1 GroupSave"],
        },
    ),
    (
        "block",
        lambda r: r.blockContact("bob@example.com"),
        {
            0: [],
            1: ["AddMember Allow bob@example.com BlockUnblock"],
            2: [adl("example.com", "bob", 2), "AddMember Allow bob@example.com BlockUnblock"],
            3: [
                "DeleteMember Block bob@example.com BlockUnblock",
                adl("example.com", "bob", 2),
                "AddMember Allow bob@example.com BlockUnblock",
            ],
        },
    ),
    (
        "unblock",
        lambda r: r.unblockContact("eve@example.org"),
        {
            0: [],
            1: ["AddMember Block eve@example.org BlockUnblock"],
            2: [adl("example.org", "eve", 4), "AddMember Block eve@example.org BlockUnblock"],
            3: [
                "DeleteMember Allow eve@example.org BlockUnblock",
                adl("example.org", "eve", 4),
                "AddMember Block eve@example.org BlockUnblock",
            ],
        },
    ),
    (
        "accept",
        lambda r: r.acceptContactRequest("dave@example.com"),
        {
            0: [],
            1: ["DeleteMember Allow dave@example.com ContactMsgrAPI"],
            2: [rml("example.com", "dave", 2), "DeleteMember Allow dave@example.com ContactMsgrAPI"],
            3: [
                "ABContactDelete contact-1 Timer",
                rml("example.com", "dave", 2),
                "DeleteMember Allow dave@example.com ContactMsgrAPI",
            ],
            4: [
                rml("example.com", "dave", 1),
                "ABContactDelete contact-1 Timer",
                rml("example.com", "dave", 2),
                "DeleteMember Allow dave@example.com ContactMsgrAPI",
            ],
            5: [
                rml("example.com", "dave", 1),
                "ABContactDelete contact-1 Timer",
                rml("example.com", "dave", 2),
                "DeleteMember Allow dave@example.com ContactMsgrAPI",
            ],
        },
    ),
    (
        "decline",
        lambda r: r.declineContactRequest("dave@example.com"),
        {
            0: [],
            1: ["DeleteMember Block dave@example.com ContactMsgrAPI"],
            2: [rml("example.com", "dave", 4), "DeleteMember Block dave@example.com ContactMsgrAPI"],
            3: [rml("example.com", "dave", 4), "DeleteMember Block dave@example.com ContactMsgrAPI"],
        },
    ),
    ("addGroup", lambda r: r.addGroup("Family"), {0: []}),
    ("renameGroup", lambda r: r.renameGroup("Work", "Job"), {0: []}),
    ("removeGroup", lambda r: r.removeGroup("Work"), {0: []}),
    (
        "move",
        lambda r: r.moveContactToGroup("bob@example.com", "Work"),
        {0: [], 1: ["ABGroupContactAdd g-friends cid-bob GroupSave"]},
    ),
]


class FailureTests(RosterTestMixin, SynchronousTestCase):
    """
    Whichever remote step fails, the local list is exactly as before, the
    caller gets the original typed error, and the steps already done are
    undone on the server in reverse order.
    """

    def test_everyFailurePoint(self) -> None:
        """
        For every operation and every one of its remote steps, failing that
        step leaves a deep-equal list, fails with L{ServiceError} (SOAP) or
        L{ServerError} (ADL/RML), and sends exactly the expected undo calls.
        """
        for name, operation, cases in FAILURE_CASES:
            self.setUpRoster()
            self.successResultOf(operation(self.roster))
            steps = list(self.remote.calls)
            self.assertEqual(sorted(cases), list(range(len(steps))), name)
            for index, undo in cases.items():
                self.setUpRoster()
                before = self.contacts.snapshot()
                self.remote.failAt = index
                failure = self.failureResultOf(operation(self.roster))
                expected = ServerError if steps[index].startswith(("ADL", "RML")) else ServiceError
                self.assertIsInstance(failure.value, expected, (name, index))
                self.assertEqual(self.remote.calls, steps[: index + 1] + undo, (name, index))
                self.assertEqual(self.contacts.snapshot(), before, (name, index))

    def test_failedUndoIsLoggedNotRaised(self) -> None:
        """
        When an undo fails too, the caller still gets the first error and
        the undo's failure is logged.
        """
        self.setUpRoster()
        before = self.contacts.snapshot()
        self.remote.failAll = lambda call: call.startswith(("ADL", "ABContactDelete"))
        failure = self.failureResultOf(self.roster.addContact("frank@example.org"))
        self.assertIsInstance(failure.value, ServerError)
        self.assertEqual(self.contacts.snapshot(), before)
        self.assertEqual(len(self.flushLoggedErrors(ServiceError)), 1)

    def test_failureReleasesLock(self) -> None:
        """
        A failed operation does not block the next one.
        """
        self.setUpRoster()
        self.remote.failAt = 0
        self.failureResultOf(self.roster.addGroup("Family"), ServiceError)
        self.remote.failAt = None
        self.successResultOf(self.roster.addGroup("Family"))


class SerialisationTests(RosterTestMixin, SynchronousTestCase):
    """
    Concurrent operations run one after the other.
    """

    def test_noInterleaving(self) -> None:
        """
        A second operation sends nothing until the first one finished, and
        its preconditions are checked against the list the first left.
        """
        self.setUpRoster()
        self.remote.manual = True
        first = self.roster.addContact("frank@example.org")
        second = self.roster.blockContact("frank@example.org")
        third = self.roster.addContact("frank@example.org")
        self.assertEqual(self.remote.calls, ["ABContactAdd frank@example.org ContactSave"])
        self.remote.release()
        self.assertEqual(len(self.remote.calls), 2)
        self.remote.release()
        self.successResultOf(first)
        self.assertEqual(self.remote.calls[2], "DeleteMember Allow frank@example.org BlockUnblock")
        while self.remote.held:
            self.remote.release()
        self.successResultOf(second)
        self.failureResultOf(third, ContactListError)
        self.assertEqual(len(self.remote.calls), 6)
        self.assertEqual(self.contacts.get("frank@example.org").lists, FL | BL)  # type: ignore[union-attr]


    def test_presenceDuringAddIsKept(self) -> None:
        """
        While an add is under way the new address is held on no list, so
        presence the NS announces before the ADL reply is not lost; the
        final contact keeps it.
        """
        self.setUpRoster()
        self.remote.manual = True
        d = self.roster.addContact("frank@example.org")
        held = self.contacts.get("frank@example.org")
        assert held is not None
        self.assertEqual(held.lists, Lists(0))
        held.status = Status.AWAY
        while self.remote.held:
            self.remote.release()
        contact = self.successResultOf(d)
        self.assertIs(contact, held)
        self.assertEqual((contact.lists, contact.status), (FL | AL, Status.AWAY))

    def test_presenceAfterADLDuringGroupStepIsKept(self) -> None:
        """
        A server that announces presence only after answering the C{ADL}
        still races an add into a group: C{ABGroupContactAdd} is not done
        yet. The address is still held then, so that presence is kept.
        """
        self.setUpRoster()
        self.remote.manual = True
        d = self.roster.addContact("frank@example.org", "Friends")
        self.remote.release()  # ABContactAdd
        self.remote.release()  # ADL OK: the server now sends presence
        self.assertTrue(self.remote.calls[-1].startswith("ABGroupContactAdd g-friends"))
        held = self.contacts.get("frank@example.org")
        assert held is not None
        held.status = Status.BUSY
        self.remote.release()
        contact = self.successResultOf(d)
        self.assertIs(contact, held)
        self.assertEqual(
            (contact.lists, contact.status, contact.groupIds), (FL | AL, Status.BUSY, {"g-friends"})
        )


class ServerPushTests(RosterTestMixin, SynchronousTestCase):
    """
    Server-initiated ADL/RML and the address-book NOT.
    """

    def setUp(self) -> None:
        self.setUpRoster()

    def test_someoneAddedYou(self) -> None:
        """
        ADL l=8 re-reads the memberships (MessengerPendingList), merges the
        Pending member with its id and invitation, and tells the observer.
        """
        self.remote.membership.roles["Reverse"]["frank@example.org"] = Member("frank@example.org", 501)
        self.remote.membership.roles["Pending"]["frank@example.org"] = Member(
            "frank@example.org", 502, "Frank F.", inviteMessage="hi, it's Frank"
        )
        self.remote.membership.roles["Reverse"]["bob@example.com"] = Member("bob@example.com", 12)
        self.remote.membership.roles["Reverse"]["dave@example.com"] = Member("dave@example.com", 302)
        self.remote.membership.roles["Pending"]["dave@example.com"] = Member("dave@example.com", 301)
        entries = [ListEntry("frank@example.org", RL, 1, "Frank F.")]
        self.successResultOf(self.roster.serverListChanged(entries, True))
        self.assertEqual(self.remote.calls, ["FindMembership MessengerPendingList"])
        self.assertEqual(self.observer.events, [("contactAddedYou", SESSION, "frank@example.org", "Frank F.")])
        frank = self.contacts.get("frank@example.org")
        assert frank is not None
        self.assertEqual(frank.lists, RL | PL)
        self.assertEqual(frank.membershipIds, {"Reverse": 501, "Pending": 502})
        self.assertEqual(frank.inviteMessage, "hi, it's Frank")
        self.successResultOf(self.roster.acceptContactRequest("frank@example.org"))
        self.assertIn("DeleteMember Pending id=502 ContactMsgrAPI", self.remote.calls)

    def test_addedYouRefreshFails(self) -> None:
        """
        When the refresh fails the event still arrives, the contact is
        marked pending from the ADL alone, and nothing is raised.
        """
        self.remote.failAt = 0
        entries = [ListEntry("frank@example.org", RL, 1, "Frank")]
        self.successResultOf(self.roster.serverListChanged(entries, True))
        self.assertEqual(self.observer.events, [("contactAddedYou", SESSION, "frank@example.org", "Frank")])
        self.assertEqual(self.contacts.get("frank@example.org").lists, RL | PL)  # type: ignore[union-attr]

    def test_addedYouWhenAlreadyAllowed(self) -> None:
        """
        Someone we already allowed is not made pending, and there is no
        request to announce: only contactListChanged.
        """
        self.remote.failAt = 0
        self.successResultOf(self.roster.serverListChanged([ListEntry("carol@example.net", RL)], True))
        self.assertEqual(self.contacts.get("carol@example.net").lists, FL | AL | RL)  # type: ignore[union-attr]
        self.assertEqual(self.observer.events, [("contactListChanged", SESSION)])

    def test_someoneRemovedYou(self) -> None:
        """
        RML l=8 clears Reverse/Pending (a contact left on no list is
        forgotten) and tells the observer.
        """
        self.successResultOf(
            self.roster.serverListChanged(
                [ListEntry("dave@example.com", RL), ListEntry("bob@example.com", RL)], False
            )
        )
        self.assertEqual(
            self.observer.events,
            [("contactRemovedYou", SESSION, "dave@example.com"), ("contactRemovedYou", SESSION, "bob@example.com")],
        )
        self.assertNotIn("dave@example.com", self.contacts)
        self.assertEqual(self.contacts.get("bob@example.com").lists, FL | AL)  # type: ignore[union-attr]

    def test_ownAddressIgnored(self) -> None:
        """
        An entry about ourselves changes nothing and sends nothing.
        """
        before = self.contacts.snapshot()
        self.successResultOf(self.roster.serverListChanged([ListEntry("alice@example.com", RL)], True))
        self.assertEqual(self.remote.calls, [])
        self.assertEqual(self.observer.events, [])
        self.assertEqual(self.contacts.snapshot(), before)

    def mirrorOnServer(self) -> None:
        """
        Make the fake services describe standardList() with these changes:
        carol deleted, grace added into a new group "Family", Work renamed.
        """
        ab = AddressBookResult()
        ab.groups = [Group("g-friends", "Friends"), Group("g-work", "Office"), Group("g-fam", "Family")]
        ab.contacts = [
            ABContact("cid-bob", "bob@example.com", "Bob (stored)", groupIds={"g-friends"}, isMessengerUser=True),
            ABContact("cid-grace", "grace@example.com", "Grace", groupIds={"g-fam"}, isMessengerUser=True),
        ]
        self.remote.addressBook = ab
        m = self.remote.membership
        m.roles["Allow"] = {e: Member(e, i) for i, e in enumerate(["bob@example.com", "grace@example.com"], 11)}
        m.roles["Reverse"] = {"bob@example.com": Member("bob@example.com", 12), "dave@example.com": Member("dave@example.com", 302)}
        m.roles["Pending"] = {"dave@example.com": Member("dave@example.com", 301)}
        m.roles["Block"] = {"eve@example.org": Member("eve@example.org", 40)}

    def test_mpopChangeRefreshesEverything(self) -> None:
        """
        ADL with FL/AL bits (another place changed the list) re-reads both
        services, reconciles the list and sends contactListChanged.
        """
        self.mirrorOnServer()
        bob = self.contacts.get("bob@example.com")
        assert bob is not None
        bob.status = Status.BUSY
        work = self.contacts.groups["g-work"]
        self.successResultOf(
            self.roster.serverListChanged([ListEntry("grace@example.com", FL | AL)], True)
        )
        self.assertEqual(
            sorted(self.remote.calls),
            ["ABFindContactsPaged ABChangeNotifyAlert", "FindMembership ABChangeNotifyAlert"],
        )
        self.assertEqual(self.observer.events, [("contactListChanged", SESSION)])
        self.assertIsNone(self.contacts.get("carol@example.net"))
        grace = self.contacts.get("grace@example.com")
        assert grace is not None
        self.assertEqual((grace.lists, grace.contactId, grace.groupIds), (FL | AL, "cid-grace", {"g-fam"}))
        self.assertIs(self.contacts.get("bob@example.com"), bob)
        self.assertEqual(bob.status, Status.BUSY)
        self.assertEqual(bob.displayName, "Bob")
        self.assertIs(self.contacts.groups["g-work"], work)
        self.assertEqual(work.name, "Office")
        self.assertEqual(sorted(self.contacts.groups), ["g-fam", "g-friends", "g-work"])

    def test_mpopRefreshFailureKeepsGuess(self) -> None:
        """
        If the refresh fails, the ADL's own bits are applied and the observer
        is still told; nothing is raised.
        """
        self.remote.failAt = 0
        self.successResultOf(
            self.roster.serverListChanged([ListEntry("grace@example.com", FL | AL)], True)
        )
        self.assertEqual(self.contacts.get("grace@example.com").lists, FL | AL)  # type: ignore[union-attr]
        self.assertEqual(self.observer.events, [("contactListChanged", SESSION)])

    def test_addressBookChanged(self) -> None:
        """
        The ABCH NOT re-reads both services and reconciles the list.
        """
        self.mirrorOnServer()
        self.successResultOf(self.roster.addressBookChanged())
        self.assertEqual(len(self.remote.calls), 2)
        self.assertEqual(self.observer.events, [("contactListChanged", SESSION)])
        self.assertEqual(
            sorted(c.email for c in self.contacts),
            ["bob@example.com", "dave@example.com", "eve@example.org", "grace@example.com"],
        )
        self.assertEqual(self.contacts.get("dave@example.com").membershipIds, {"Pending": 301, "Reverse": 302})  # type: ignore[union-attr]

    def test_addressBookChangedFailure(self) -> None:
        """
        A failed refresh leaves the list as it was, tells nobody, and the
        Deferred still fires.
        """
        self.mirrorOnServer()
        before = self.contacts.snapshot()
        self.remote.failAt = 1
        self.successResultOf(self.roster.addressBookChanged())
        self.assertEqual(self.contacts.snapshot(), before)
        self.assertEqual(self.observer.events, [])
