"""
L{msnp.roster.RosterManager} against the real SOAP clients and the local
network's ABCH service, in memory (C{StubTreq}), with a fake NS: after each
operation the server's store holds what the recipe promises, and a SOAP
fault or an NS error leaves both the local list and the store as they were.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import ContactList, Lists
from msnp.listpayload import ListEntry
from msnp.errors import ContactListError, ServerError, ServiceError
from msnp.roster import RosterManager
from msnp.server.abch import ABCHResource
from msnp.server.accountmodel import ALLOW, BLOCK, PENDING, REVERSE
from msnp.server.accounts import AccountStore
from msnp.soap.addressbook import AddressBookService
from msnp.soap.sharing import SharingService
from msnp.soap.sync import buildContactList
from msnp.wire import Command

from test.support import LIST_CHANGES, EventRecorder, stubTreq

FL, AL, BL, RL, PL = Lists.FORWARD, Lists.ALLOW, Lists.BLOCK, Lists.REVERSE, Lists.PENDING
BASE = "http://127.0.0.1:8080/abservice/"


class RosterOverSOAPTests(SynchronousTestCase):
    """
    alice (signed in) has bob as a mutual contact; dave added alice (she
    has him pending); carol exists and is unrelated; nobody@ has no account.
    """

    def setUp(self) -> None:
        self.store = AccountStore()
        self.alice = self.store.addAccount("alice@example.com", "pw-alice", "Alice")
        self.bob = self.store.addAccount("bob@example.com", "pw-bob", "Bob")
        self.carol = self.store.addAccount("carol@example.net", "pw-carol", "Carol")
        self.dave = self.store.addAccount("dave@example.com", "pw-dave", "Dave")
        self.store.addContact("alice@example.com", "bob@example.com", mutual=True)
        self.store.addToAddressBook(self.dave, "alice@example.com")
        self.store.setRole(self.dave, ALLOW, "alice@example.com")
        grant = self.store.issueTickets(self.alice)
        self.treq = stubTreq(b"abservice", ABCHResource(self.store))
        clock = Clock()
        self.sharing = SharingService(
            self.treq, BASE + "SharingService.asmx", lambda: grant.contactsTicket, clock
        )
        self.addressBook = AddressBookService(
            self.treq, BASE + "abservice.asmx", lambda: grant.contactsTicket, clock
        )
        downloads: list[Deferred[Any]] = [
            self.sharing.findMembership(),
            self.addressBook.findContactsPaged(),
        ]
        membership, book = self.resolve(gatherResults(downloads))
        self.contacts: ContactList = buildContactList(membership, book, "alice@example.com").contacts
        self.listCommands: list[tuple[str, bytes]] = []
        self.failListCommands = False
        self.observer = EventRecorder("roster", LIST_CHANGES, clock=clock)
        self.roster = RosterManager(
            self.contacts,
            self.sharing,
            self.addressBook,
            self.sendListCommand,
            self.observer,
            ownEmail="alice@example.com",
        )

    def sendListCommand(self, name: str, payload: bytes) -> Deferred[Command]:
        self.listCommands.append((name, payload))
        if self.failListCommands:
            return fail(ServerError(241, name))
        return succeed(Command(name, len(self.listCommands), ("OK",)))

    def resolve(self, d: Deferred[Any]) -> Any:
        """
        Let the in-memory HTTP exchanges run until C{d} fires; its result.
        """
        for _ in range(100):
            if d.called:
                break
            self.treq.flush()
        return self.successResultOf(d)

    def resolveFailure(self, d: Deferred[Any], *types: type) -> Any:
        for _ in range(100):
            if d.called:
                break
            self.treq.flush()
        return self.failureResultOf(d, *types)

    def storeState(self) -> Any:
        """
        Everything the ABCH stores about alice and who has her on Reverse/Pending.
        """
        a = self.alice
        return (
            {k: (e.contactId, sorted(e.groupIds), e.isMessengerUser) for k, e in a.addressBook.items()},
            {g.groupId: g.name for g in a.groups.values()},
            {role: sorted(m) for role, m in a.memberships.items()},
            {
                other.email: (other.hasRole(REVERSE, a.email), other.hasRole(PENDING, a.email))
                for other in self.store
            },
        )

    def test_initialList(self) -> None:
        """
        The fixture's list is what the store says (the premise of the rest).
        """
        self.assertEqual(self.contacts.get("bob@example.com").lists, FL | AL | RL)  # type: ignore[union-attr]
        self.assertEqual(self.contacts.get("dave@example.com").lists, RL | PL)  # type: ignore[union-attr]

    def test_addContactWithGroup(self) -> None:
        """
        Adding carol into a new group: the store has her on alice's forward
        and allow lists, in the group, with the contact id the list holds;
        carol now has alice pending; the ADL said l=3.
        """
        group = self.resolve(self.roster.addGroup("Friends"))
        contact = self.resolve(self.roster.addContact("carol@example.net", group))
        entry = self.alice.addressBook["carol@example.net"]
        self.assertEqual(contact.contactId, entry.contactId)
        self.assertEqual(entry.groupIds, {group.groupId})
        self.assertTrue(self.alice.hasRole(ALLOW, "carol@example.net"))
        self.assertTrue(self.carol.hasRole(PENDING, "alice@example.com"))
        self.assertEqual(contact.lists, FL | AL)
        self.assertEqual(
            self.listCommands,
            [("ADL", b'<ml><d n="example.net"><c n="carol" l="3" t="1" /></d></ml>')],
        )

    def test_addUnknownAddressFault(self) -> None:
        """
        Adding an address with no account: the service faults with
        InvalidPassportUser, no ADL is sent, list and store are unchanged.
        """
        before, stored = self.contacts.snapshot(), self.storeState()
        failure = self.resolveFailure(self.roster.addContact("nobody@example.org"), ServiceError)
        self.assertEqual(getattr(failure.value, "errorCode", None), "InvalidPassportUser")
        self.assertEqual(self.listCommands, [])
        self.assertEqual(self.contacts.snapshot(), before)
        self.assertEqual(self.storeState(), stored)

    def test_addRolledBackWhenADLFails(self) -> None:
        """
        When the NS refuses the ADL, the address-book add and its Allow
        membership are undone on the server: the store ends as it began.
        """
        before, stored = self.contacts.snapshot(), self.storeState()
        self.failListCommands = True
        self.resolveFailure(self.roster.addContact("carol@example.net"), ServerError)
        self.assertEqual(self.contacts.snapshot(), before)
        self.assertEqual(self.storeState(), stored)

    def test_removeContact(self) -> None:
        """
        Removing bob: he leaves alice's address book (and she his Reverse
        list), while alice still allows him.
        """
        self.resolve(self.roster.removeContact("bob@example.com"))
        self.assertNotIn("bob@example.com", self.alice.addressBook)
        self.assertFalse(self.bob.hasRole(REVERSE, "alice@example.com"))
        self.assertTrue(self.alice.hasRole(ALLOW, "bob@example.com"))
        self.assertEqual(self.contacts.get("bob@example.com").lists, AL | RL)  # type: ignore[union-attr]

    def test_blockAndUnblock(self) -> None:
        """
        Blocking moves bob from Allow to Block in the store; unblocking
        moves him back.
        """
        self.resolve(self.roster.blockContact("bob@example.com"))
        self.assertTrue(self.alice.hasRole(BLOCK, "bob@example.com"))
        self.assertFalse(self.alice.hasRole(ALLOW, "bob@example.com"))
        self.resolve(self.roster.unblockContact("bob@example.com"))
        self.assertTrue(self.alice.hasRole(ALLOW, "bob@example.com"))
        self.assertFalse(self.alice.hasRole(BLOCK, "bob@example.com"))
        self.assertEqual(self.contacts.get("bob@example.com").lists, FL | AL | RL)  # type: ignore[union-attr]

    def test_accept(self) -> None:
        """
        Accepting dave: he is allowed, on alice's forward list, no longer
        pending (deleted by membership id), and dave sees alice on his
        Reverse list.
        """
        self.resolve(self.roster.acceptContactRequest("dave@example.com"))
        self.assertTrue(self.alice.hasRole(ALLOW, "dave@example.com"))
        self.assertFalse(self.alice.hasRole(PENDING, "dave@example.com"))
        self.assertIn("dave@example.com", self.alice.addressBook)
        self.assertTrue(self.dave.hasRole(REVERSE, "alice@example.com"))
        self.assertEqual(self.contacts.get("dave@example.com").lists, FL | AL | RL)  # type: ignore[union-attr]

    def test_decline(self) -> None:
        """
        Declining dave: blocked, no longer pending, not added.
        """
        self.resolve(self.roster.declineContactRequest("dave@example.com"))
        self.assertTrue(self.alice.hasRole(BLOCK, "dave@example.com"))
        self.assertFalse(self.alice.hasRole(PENDING, "dave@example.com"))
        self.assertNotIn("dave@example.com", self.alice.addressBook)

    def test_groups(self) -> None:
        """
        Create, rename, move a contact into, and delete a group: the store
        follows each step.
        """
        group = self.resolve(self.roster.addGroup("Work"))
        self.assertEqual(self.alice.groups[group.groupId].name, "Work")
        self.resolve(self.roster.renameGroup("Work", "Office"))
        self.assertEqual(self.alice.groups[group.groupId].name, "Office")
        self.resolve(self.roster.moveContactToGroup("bob@example.com", "Office"))
        self.assertEqual(self.alice.addressBook["bob@example.com"].groupIds, {group.groupId})
        other = self.resolve(self.roster.addGroup("Family"))
        self.resolve(self.roster.moveContactToGroup("bob@example.com", other))
        self.assertEqual(self.alice.addressBook["bob@example.com"].groupIds, {other.groupId})
        self.resolve(self.roster.moveContactToGroup("bob@example.com", None))
        self.assertEqual(self.alice.addressBook["bob@example.com"].groupIds, set())
        self.resolve(self.roster.removeGroup(group))
        self.assertNotIn(group.groupId, self.alice.groups)
        self.assertEqual(sorted(g.name for g in self.contacts.groups.values()), ["Family"])

    def test_groupNameClashIsLocalError(self) -> None:
        """
        A name differing only in case from an existing group is refused
        locally, as the service would refuse it.
        """
        self.resolve(self.roster.addGroup("Work"))
        self.resolveFailure(self.roster.addGroup("WORK"), ContactListError)

    def test_someoneAddedYouThenAccept(self) -> None:
        """
        carol adds alice (store), the NS pushes ADL l=8: the refresh makes
        carol pending with her real membership id, the observer hears of
        it, and accepting her works against the service.
        """
        self.store.addToAddressBook(self.carol, "alice@example.com")
        self.resolve(
            self.roster.serverListChanged([ListEntry("carol@example.net", RL, 1, "Carol")], True)
        )
        self.assertEqual(self.observer.events, [("contactAddedYou", None, "carol@example.net", "Carol")])
        carol = self.contacts.get("carol@example.net")
        assert carol is not None
        self.assertEqual(carol.lists, RL | PL)
        self.assertEqual(
            carol.membershipIds["Pending"], self.alice.memberships[PENDING]["carol@example.net"].membershipId
        )
        self.resolve(self.roster.acceptContactRequest("carol@example.net"))
        self.assertFalse(self.alice.hasRole(PENDING, "carol@example.net"))

    def test_addressBookChanged(self) -> None:
        """
        A change made elsewhere (carol added directly in the store) shows
        up after the ABCH NOT.
        """
        self.store.addContact("alice@example.com", "carol@example.net")
        self.resolve(self.roster.addressBookChanged())
        carol = self.contacts.get("carol@example.net")
        assert carol is not None
        self.assertEqual(carol.lists, FL | AL)
        self.assertEqual(carol.contactId, self.alice.addressBook["carol@example.net"].contactId)
        self.assertEqual(self.observer.events, [("contactListChanged", None)])
