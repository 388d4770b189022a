"""
Tests for L{msnp.server.abch}: the local network's sharing and address-book
services, exercised through the library's own SOAP clients over
L{treq.testing.StubTreq}.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import Lists
from msnp.listpayload import ListEntry
from msnp.errors import ServiceError
from msnp.server.accountmodel import ALLOW, BLOCK, PENDING, REVERSE, Account
from msnp.soap.envelope import ABCHFault
from msnp.soap.sync import buildContactList, initialListEntries

from test.support import BASE, ServerHarness

T = TypeVar("T")


class ABCHTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.net = ServerHarness()
        self.sharing, self.book = self.net.clients()

    def run_(self, d: "Deferred[T]") -> T:
        self.net.treq.flush()
        return self.successResultOf(d)

    def fault(self, d: "Deferred[Any]") -> ABCHFault:
        self.net.treq.flush()
        error = self.failureResultOf(d, ServiceError).value
        assert isinstance(error, ABCHFault), repr(error)
        return error


class ReadTests(ABCHTestCase):
    """
    FindMembership and ABFindContactsPaged reflect the store.
    """

    def test_membership(self) -> None:
        """
        alice's roles: Allow bob+carol, Reverse bob+dave, Pending dave (with
        his name and an integer id), Block empty.
        """
        result = self.run_(self.sharing.findMembership())
        self.assertEqual(result.emails("Allow"), {"bob@example.com", "carol@example.com"})
        self.assertEqual(result.emails("Block"), set())
        self.assertEqual(result.emails("Reverse"), {"bob@example.com", "dave@example.com"})
        dave = result.members("Pending")["dave@example.com"]
        self.assertEqual(dave.displayName, "Dave")
        self.assertEqual(dave.membershipId, self.net.account("alice").memberships[PENDING]["dave@example.com"].membershipId)
        self.assertEqual(dave.cid, self.net.account("dave").cid)

    def test_addressBookAndSync(self) -> None:
        """
        The address book has the Me contact and bob and carol; merged with
        the memberships it gives the fixture-like list and initial ADL.
        """
        membership = self.run_(self.sharing.findMembership())
        book = self.run_(self.book.findContactsPaged())
        alice = self.net.account("alice")
        assert book.me is not None
        self.assertEqual(book.me.email, "alice@example.com")
        self.assertEqual(book.me.cid, alice.cid)
        self.assertEqual(book.me.annotations["MSN.IM.BLP"], "1")
        self.assertEqual(book.me.annotations["MSN.IM.MPOP"], "1")
        self.assertEqual(
            {(c.email, c.contactId) for c in book.contacts},
            {(e.email, e.contactId) for e in alice.addressBook.values()},
        )
        synced = buildContactList(membership, book, "alice@example.com")
        self.assertEqual(synced.profile.blp, "AL")
        self.assertEqual(synced.profile.displayName, "Alice")
        dave = synced.contacts.get("dave@example.com")
        assert dave is not None
        self.assertEqual(dave.lists, Lists.REVERSE | Lists.PENDING)
        self.assertEqual(
            initialListEntries(synced.contacts),
            [
                ListEntry("bob@example.com", Lists.FORWARD | Lists.ALLOW),
                ListEntry("carol@example.com", Lists.FORWARD | Lists.ALLOW),
            ],
        )

    def test_findAll(self) -> None:
        """
        The legacy ABFindAll answers the same contacts.
        """
        book = self.run_(self.book.findAll())
        self.assertEqual({c.email for c in book.contacts}, {"bob@example.com", "carol@example.com"})

    def test_cacheKey(self) -> None:
        """
        A CacheKey is handed out and sent back on the next call.
        """
        self.run_(self.sharing.findMembership())
        key = self.sharing.cacheKey
        assert key is not None
        self.assertTrue(key.startswith("12r1:"))
        self.run_(self.book.findContactsPaged())
        self.assertEqual(self.book.cacheKey, key)

    def test_caseInsensitivePath(self) -> None:
        """
        The endpoint names are matched case-insensitively.
        """
        sharing, _ = self.net.clients(sharingPath="sharingservice.ASMX")
        self.assertIn("bob@example.com", self.run_(sharing.findMembership()).emails("Allow"))


class RefusalTests(ABCHTestCase):
    """
    Tickets, unknown actions and malformed requests.
    """

    def test_noTicket(self) -> None:
        """
        An empty ticket gets a bare 403, which the client reports as a
        L{ServiceError} with status 403 and no fault.
        """
        sharing, _ = self.net.clients(ticket="")
        d = sharing.findMembership()
        self.net.treq.flush()
        error = self.failureResultOf(d, ServiceError).value
        self.assertEqual(error.status, 403)
        self.assertNotIsInstance(error, ABCHFault)

    def test_invalidTicketNoBody(self) -> None:
        """
        A ticket the store never issued gets HTTP 403 with an empty body.
        """
        d = self.net.treq.post(
            BASE + "abservice.asmx",
            data=b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soap:Header><ABAuthHeader><TicketToken>t=forged&amp;p=x</TicketToken></ABAuthHeader>"
            b"</soap:Header><soap:Body><ABFindAll/></soap:Body></soap:Envelope>",
            headers={b"SOAPAction": [b'"http://www.msn.com/webservices/AddressBook/ABFindAll"']},
        )
        self.net.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 403)
        content = self.net.treq.content(response)
        self.net.treq.flush()
        self.assertEqual(self.successResultOf(content), b"")

    def test_actionFromBody(self) -> None:
        """
        Without a C{SOAPAction} header the body's method element names the
        action.
        """
        ticket = self.net.store.issueTickets(self.net.account("alice")).contactsTicket
        envelope = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
            f"<ABAuthHeader><TicketToken>{ticket.replace('&', '&amp;')}</TicketToken></ABAuthHeader>"
            '</soap:Header><soap:Body><ABFindAll xmlns="http://www.msn.com/webservices/AddressBook"/>'
            "</soap:Body></soap:Envelope>"
        )
        d = self.net.treq.post(BASE + "abservice.asmx", data=envelope.encode("utf-8"), headers={})
        self.net.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        content = self.net.treq.content(response)
        self.net.treq.flush()
        self.assertIn(b"<ABFindAllResponse", self.successResultOf(content))

    def test_unknownAction(self) -> None:
        """
        An unknown action is a SOAP fault delivered with HTTP 200.
        """
        error = self.fault(self.sharing.call("ABContactAdd", "<ABContactAdd/>", "Initial"))
        self.assertEqual(error.status, 200)
        error = self.fault(self.book.call("Bogus", "<Bogus/>", "Initial"))
        self.assertEqual(error.status, 200)

    def test_malformed(self) -> None:
        """
        A body that is not XML gets HTTP 400 with a fault.
        """
        d = self.net.treq.post(BASE + "abservice.asmx", data=b"<soap:Envelope", headers={})
        self.net.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 400)
        content = self.net.treq.content(response)
        self.net.treq.flush()
        self.assertIn(b"Fault", self.successResultOf(content))


class ContactTests(ABCHTestCase):
    """
    ABContactAdd, ABContactDelete, ABContactUpdate.
    """

    def test_addContact(self) -> None:
        """
        Adding frank puts him on alice's forward and allow lists, puts alice
        on frank's Reverse and Pending lists with the invitation, and tells
        onChange.
        """
        contactId = self.run_(self.book.contactAdd("Frank@example.com", "Alice A.", "hi <frank>"))
        alice, frank = self.net.account("alice"), self.net.account("frank")
        self.assertEqual(alice.addressBook["frank@example.com"].contactId, contactId)
        self.assertTrue(alice.hasRole(ALLOW, "frank@example.com"))
        self.assertTrue(frank.hasRole(REVERSE, "alice@example.com"))
        self.assertTrue(frank.hasRole(PENDING, "alice@example.com"))
        self.assertEqual(self.net.changes, [("alice@example.com", "ABContactAdd")])
        sharing, _ = self.net.clients("frank")
        pending = self.run_(sharing.findMembership()).members("Pending")["alice@example.com"]
        self.assertEqual((pending.displayName, pending.inviteMessage), ("Alice A.", "hi <frank>"))
        book = self.run_(self.book.findContactsPaged())
        self.assertIn(contactId, {c.contactId for c in book.contacts})
        # Idempotent: adding again keeps the id.
        self.assertEqual(self.run_(self.book.contactAdd("frank@example.com")), contactId)

    def test_addUnknown(self) -> None:
        """
        An address without an account is refused with InvalidPassportUser
        and nothing changes.
        """
        before = dict(self.net.account("alice").addressBook)
        error = self.fault(self.book.contactAdd("nobody@example.com"))
        self.assertEqual(error.errorCode, "InvalidPassportUser")
        self.assertEqual(error.status, 500)
        self.assertEqual(self.net.account("alice").addressBook, before)
        self.assertEqual(self.net.changes, [])

    def test_deleteContact(self) -> None:
        """
        Deleting carol by contact id removes her from the address book and
        alice from carol's Reverse list; an unknown id is a fault.
        """
        alice, carol = self.net.account("alice"), self.net.account("carol")
        contactId = alice.addressBook["carol@example.com"].contactId
        self.run_(self.book.contactDelete(contactId.upper()))
        self.assertNotIn("carol@example.com", alice.addressBook)
        self.assertFalse(carol.hasRole(REVERSE, "alice@example.com"))
        self.assertEqual(self.fault(self.book.contactDelete(contactId)).errorCode, "ContactDoesNotExist")
        self.assertEqual(self.net.changes, [("alice@example.com", "ABContactDelete")])

    def test_updateDisplayName(self) -> None:
        """
        A contact's stored name can be changed.
        """
        alice = self.net.account("alice")
        self.run_(self.book.contactUpdateDisplayName(alice.addressBook["bob@example.com"].contactId, "Bobby & co"))
        self.assertEqual(alice.addressBook["bob@example.com"].displayName, "Bobby & co")
        book = self.run_(self.book.findContactsPaged())
        self.assertIn("Bobby & co", {c.displayName for c in book.contacts})

    def test_updateMeBLP(self) -> None:
        """
        The Me contact's BLP annotation sets the account's privacy mode and
        reads back through the profile; other annotations are kept.
        """
        self.run_(self.book.contactUpdateMe({"MSN.IM.BLP": "0", "MSN.IM.MPOP": "0"}))
        self.assertEqual(self.net.account("alice").blp, "BL")
        membership = self.run_(self.sharing.findMembership())
        book = self.run_(self.book.findContactsPaged())
        assert book.me is not None
        self.assertEqual(book.me.annotations["MSN.IM.BLP"], "2")
        profile = buildContactList(membership, book, "alice@example.com").profile
        self.assertEqual(profile.blp, "BL")
        self.assertFalse(profile.mpop)
        self.run_(self.book.contactUpdateMe({"MSN.IM.BLP": "1"}, displayName="Alice <3"))
        alice = self.net.account("alice")
        self.assertEqual((alice.blp, alice.displayName), ("AL", "Alice <3"))


class MemberTests(ABCHTestCase):
    """
    AddMember and DeleteMember.
    """

    def test_blockUnblock(self) -> None:
        """
        Block: delete Allow, add Block; unblock: the reverse. Each step is
        in the store and in FindMembership.
        """
        alice = self.net.account("alice")
        self.run_(self.sharing.deleteMember("Allow", "bob@example.com"))
        self.run_(self.sharing.addMember("Block", "bob@example.com", "BlockUnblock"))
        self.assertTrue(alice.hasRole(BLOCK, "bob@example.com"))
        self.assertFalse(alice.hasRole(ALLOW, "bob@example.com"))
        result = self.run_(self.sharing.findMembership())
        self.assertEqual(result.emails("Block"), {"bob@example.com"})
        self.run_(self.sharing.deleteMember("Block", "bob@example.com"))
        self.run_(self.sharing.addMember("Allow", "bob@example.com", "BlockUnblock"))
        self.assertTrue(alice.hasRole(ALLOW, "bob@example.com"))
        self.assertFalse(alice.hasRole(BLOCK, "bob@example.com"))
        self.assertEqual([a for _, a in self.net.changes], ["DeleteMember", "AddMember"] * 2)

    def test_acceptPendingById(self) -> None:
        """
        Accepting dave deletes the Pending membership by its id; Reverse
        stays, as the server maintains it.
        """
        alice = self.net.account("alice")
        pending = self.run_(self.sharing.findMembership()).members("Pending")["dave@example.com"]
        assert pending.membershipId is not None
        self.run_(self.sharing.deleteMember("Pending", membershipId=pending.membershipId, scenario="ContactMsgrAPI"))
        self.run_(self.sharing.addMember("Allow", "dave@example.com", "ContactMsgrAPI"))
        self.run_(self.sharing.addMember("Reverse", "dave@example.com", "ContactMsgrAPI"))
        self.assertFalse(alice.hasRole(PENDING, "dave@example.com"))
        self.assertTrue(alice.hasRole(ALLOW, "dave@example.com"))
        self.assertTrue(alice.hasRole(REVERSE, "dave@example.com"))
        error = self.fault(self.sharing.deleteMember("Pending", membershipId=pending.membershipId))
        self.assertEqual(error.errorCode, "MemberDoesNotExist")

    def test_pendingRestoredOnlyWhenTrue(self) -> None:
        """
        A client can put back a Pending membership it deleted (dave really
        has alice on his list), but cannot invent one (carol has not).
        """
        alice = self.net.account("alice")
        self.run_(self.sharing.deleteMember("Pending", "dave@example.com"))
        self.assertFalse(alice.hasRole(PENDING, "dave@example.com"))
        self.run_(self.sharing.addMember("Pending", "dave@example.com", "ContactMsgrAPI"))
        self.assertTrue(alice.hasRole(PENDING, "dave@example.com"))
        self.run_(self.sharing.addMember("Pending", "carol@example.com", "ContactMsgrAPI"))
        self.assertFalse(alice.hasRole(PENDING, "carol@example.com"))

    def test_deleteUnknownMember(self) -> None:
        """
        Deleting someone not on the list is a fault and changes nothing.
        """
        error = self.fault(self.sharing.deleteMember("Block", "bob@example.com"))
        self.assertEqual(error.errorCode, "MemberDoesNotExist")
        self.assertEqual(self.net.changes, [])

    def test_badRole(self) -> None:
        """
        An unknown role is refused.
        """
        self.assertEqual(self.fault(self.sharing.addMember("Friends", "bob@example.com", "X")).errorCode,
                         "InvalidArgument")


class GroupTests(ABCHTestCase):
    """
    ABGroupAdd, ABGroupUpdate, ABGroupDelete, ABGroupContactAdd and
    ABGroupContactDelete.
    """

    def test_roundTrip(self) -> None:
        """
        Create, rename, fill, empty and delete a group; each step shows in
        the store and in the address book.
        """
        alice = self.net.account("alice")
        bobId = alice.addressBook["bob@example.com"].contactId
        groupId = self.run_(self.book.groupAdd("Work & Play"))
        self.assertEqual(alice.groups[groupId].name, "Work & Play")
        self.run_(self.book.groupUpdate(groupId, "Job"))
        self.assertEqual(alice.groups[groupId].name, "Job")
        self.run_(self.book.groupContactAdd(groupId, bobId))
        self.assertEqual(alice.addressBook["bob@example.com"].groupIds, {groupId})
        book = self.run_(self.book.findContactsPaged())
        self.assertEqual([(g.groupId, g.name) for g in book.groups], [(groupId, "Job")])
        bob = next(c for c in book.contacts if c.email == "bob@example.com")
        self.assertEqual(bob.groupIds, {groupId})
        self.run_(self.book.groupContactDelete(groupId, bobId))
        self.assertEqual(alice.addressBook["bob@example.com"].groupIds, set())
        self.run_(self.book.groupContactAdd(groupId, bobId))
        self.run_(self.book.groupDelete(groupId))
        self.assertEqual(alice.groups, {})
        self.assertEqual(alice.addressBook["bob@example.com"].groupIds, set())
        self.assertEqual(
            [a for _, a in self.net.changes],
            ["ABGroupAdd", "ABGroupUpdate", "ABGroupContactAdd", "ABGroupContactDelete",
             "ABGroupContactAdd", "ABGroupDelete"],
        )

    def test_unknownIds(self) -> None:
        """
        Unknown group or contact ids are faults and change nothing.
        """
        alice = self.net.account("alice")
        bobId = alice.addressBook["bob@example.com"].contactId
        groupId = self.run_(self.book.groupAdd("Work"))
        self.assertEqual(self.fault(self.book.groupDelete("no-such-group")).errorCode, "GroupDoesNotExist")
        self.assertEqual(self.fault(self.book.groupUpdate("no-such-group", "X")).errorCode, "GroupDoesNotExist")
        self.assertEqual(self.fault(self.book.groupContactAdd("no-such-group", bobId)).errorCode, "GroupDoesNotExist")
        self.assertEqual(self.fault(self.book.groupContactAdd(groupId, "no-such-contact")).errorCode,
                         "ContactDoesNotExist")
        self.assertEqual(self.fault(self.book.groupContactDelete(groupId, "nope")).errorCode, "ContactDoesNotExist")
        self.assertEqual(alice.addressBook["bob@example.com"].groupIds, set())
        self.assertEqual(len(self.net.changes), 1)

    def test_duplicateAndEmptyNames(self) -> None:
        """
        Group names are unique (ignoring case) and not empty.
        """
        self.run_(self.book.groupAdd("Work"))
        self.assertEqual(self.fault(self.book.groupAdd("work")).errorCode, "GroupAlreadyExists")
        self.assertEqual(self.fault(self.book.groupAdd("  ")).errorCode, "InvalidArgument")
        self.assertEqual(len(self.net.account("alice").groups), 1)


class HookTests(SynchronousTestCase):
    """
    The C{onChange} hook.
    """

    def test_hookFailureIgnored(self) -> None:
        """
        An exception in onChange is logged, and the call still succeeds.
        """
        net = ServerHarness()

        def broken(account: Account, action: str) -> None:
            raise RuntimeError("boom")

        net.abch.onChange = broken
        _, book = net.clients()
        d = book.groupAdd("Work")
        net.treq.flush()
        self.successResultOf(d)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_noHook(self) -> None:
        """
        Without onChange, mutations work as well.
        """
        net = ServerHarness()
        net.abch.onChange = None
        _, book = net.clients()
        d = book.groupAdd("Work")
        net.treq.flush()
        self.assertIn(self.successResultOf(d), net.account("alice").groups)
