"""
Contact management end to end: real L{msnp.client.MSNClient}s signed in to
a L{msnp.server.network.LocalNetwork} over loopback sockets.

Each test waits for events the observers receive (never for wall-clock
time); a missing event fails the test through a per-wait timeout.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from msnp.contacts import Lists, Status
from msnp.errors import ContactListError, ServiceError
from msnp.server.accountmodel import Account

from test.support import LIST_EVENTS, EventRecorder, Summary, signIn, startLocalNetwork

PASSWORD = "secret-pw"


#: What these tests compare of each contact event (the only ones recorded).
CONTACT_EVENTS: dict[str, Summary] = {
    **LIST_EVENTS,
    "signedIn": lambda session: (),
    "signedOut": lambda session, reason: (reason,),
}


class ContactsEndToEndTests(TestCase):
    """
    alice, bob and carol on one local network, strangers to each other
    unless a test says otherwise.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(f"{name}@example.com", PASSWORD, name.capitalize()) for name in ("alice", "bob", "carol")],
            reactor=reactor,
        )

    async def signIn(self, name: str) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(name, CONTACT_EVENTS)
        session = await signIn(self, f"{name}@example.com", PASSWORD, self.endpoints, recorder)
        return session, recorder

    def account(self, email: str) -> Account:
        """
        The server's record of C{email}.
        """
        found = self.network.store.get(email)
        assert found is not None
        return found

    def seesOnline(self, session: Any, email: str) -> Callable[[], bool]:
        def check() -> bool:
            contact = session.contacts.get(email)
            return contact is not None and contact.status not in (Status.OFFLINE, Status.HIDDEN)

        return check

    def seesOffline(self, session: Any, email: str) -> Callable[[], bool]:
        online = self.seesOnline(session, email)
        return lambda: not online()

    async def test_addAcceptSeeEachOther(self) -> None:
        """
        alice adds bob: bob hears contactAddedYou and has alice pending;
        bob accepts: both see each other online, and the store has both on
        each other's forward and allow lists.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        contact = await alice.addContact("bob@example.com")
        self.assertEqual(contact.lists & (Lists.FORWARD | Lists.ALLOW), Lists.FORWARD | Lists.ALLOW)
        await bobEvents.waitFor(lambda: bool(bobEvents.named("contactAddedYou")), "contactAddedYou")
        self.assertEqual(bobEvents.named("contactAddedYou")[0][0], "alice@example.com")
        pending = bob.contacts.get("alice@example.com")
        self.assertTrue(pending is not None and pending.isPending)

        await bob.acceptContactRequest("alice@example.com")
        self.assertFalse(bob.contacts.get("alice@example.com").isPending)
        await aliceEvents.waitFor(self.seesOnline(alice, "bob@example.com"), "bob online")
        await bobEvents.waitFor(self.seesOnline(bob, "alice@example.com"), "alice online")
        # bob's ADL tells alice she is on his list; she allowed him already,
        # so that is a list change, not a request to answer.
        await aliceEvents.waitFor(
            lambda: ("contactListChanged",) in aliceEvents.events, "alice's contactListChanged"
        )
        self.assertEqual(aliceEvents.named("contactAddedYou"), [])
        self.assertTrue(alice.contacts.get("bob@example.com").onReverseList)
        self.assertTrue(self.account("alice@example.com").onForwardList("bob@example.com"))
        self.assertTrue(self.account("bob@example.com").onForwardList("alice@example.com"))
        self.assertFalse(self.account("bob@example.com").hasRole("Pending", "alice@example.com"))

    async def test_threeClientsAcceptAndDecline(self) -> None:
        """
        alice adds bob and carol; bob accepts and carol declines: alice
        sees bob online and never carol, carol has alice blocked.
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        carol, carolEvents = await self.signIn("carol")
        await alice.addContact("bob@example.com")
        await alice.addContact("carol@example.com")
        await bobEvents.waitFor(lambda: bool(bobEvents.named("contactAddedYou")), "bob's request")
        await carolEvents.waitFor(lambda: bool(carolEvents.named("contactAddedYou")), "carol's request")
        await bob.acceptContactRequest("alice@example.com")
        declined = await carol.declineContactRequest("alice@example.com")
        self.assertTrue(declined.isBlocked)
        await aliceEvents.waitFor(self.seesOnline(alice, "bob@example.com"), "bob online")
        await aliceEvents.waitFor(self.seesOffline(alice, "carol@example.com"), "carol offline")
        self.assertFalse(
            self.network.store.canSee(self.account("alice@example.com"), self.account("carol@example.com"))
        )
        self.assertTrue(self.account("carol@example.com").hasRole("Block", "alice@example.com"))

    async def test_removeContact(self) -> None:
        """
        alice removes her mutual contact bob: bob hears contactRemovedYou,
        alice's list keeps him only as allowed, the store forgets him.
        """
        self.network.addContact("alice@example.com", "bob@example.com", mutual=True)
        alice, _ = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        await alice.removeContact("bob@example.com")
        await bobEvents.waitFor(lambda: bool(bobEvents.named("contactRemovedYou")), "contactRemovedYou")
        self.assertEqual(bobEvents.named("contactRemovedYou"), [("alice@example.com",)])
        left = alice.contacts.get("bob@example.com")
        self.assertTrue(left is None or not left.onForwardList)
        self.assertFalse(self.account("alice@example.com").onForwardList("bob@example.com"))

    async def test_blockHidesPresence(self) -> None:
        """
        With alice and bob mutual and online, alice blocking bob makes alice
        appear offline to bob; unblocking makes her appear again.
        """
        self.network.addContact("alice@example.com", "bob@example.com", mutual=True)
        alice, _ = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        await bobEvents.waitFor(self.seesOnline(bob, "alice@example.com"), "alice online")
        await alice.blockContact("bob@example.com")
        self.assertTrue(alice.contacts.get("bob@example.com").isBlocked)
        await bobEvents.waitFor(self.seesOffline(bob, "alice@example.com"), "alice offline after block")
        await alice.unblockContact("bob@example.com")
        self.assertFalse(alice.contacts.get("bob@example.com").isBlocked)
        await bobEvents.waitFor(self.seesOnline(bob, "alice@example.com"), "alice online after unblock")

    async def test_groupsSurviveFreshLogin(self) -> None:
        """
        Groups created, renamed, filled and deleted in one session are what
        a fresh login of the same account downloads.
        """
        self.network.addContact("alice@example.com", "bob@example.com", mutual=True)
        alice, _ = await self.signIn("alice")
        friends = await alice.addGroup("Friends")
        work = await alice.addGroup("Work")
        await alice.renameGroup(friends.groupId, "Pals")
        await alice.moveContactToGroup("bob@example.com", "Pals")
        await alice.moveContactToGroup("bob@example.com", work)
        await alice.moveContactToGroup("bob@example.com", "Pals")
        await alice.removeGroup("Work")
        await alice.logout()

        again, _ = await self.signIn("alice")
        groups = {g.name: g.groupId for g in again.contacts.groups.values()}
        self.assertEqual(sorted(groups), ["Pals"])
        self.assertEqual(again.contacts.get("bob@example.com").groupIds, {groups["Pals"]})

    async def test_soapFaultLeavesListUnchanged(self) -> None:
        """
        Adding an address with no account fails with the service's fault
        and leaves the session's list exactly as it was; adding an existing
        contact again is refused locally.
        """
        self.network.addContact("alice@example.com", "bob@example.com", mutual=True)
        alice, _ = await self.signIn("alice")
        before = alice.contacts.snapshot()
        with self.assertRaises(ServiceError):
            await alice.addContact("ghost@example.com")
        self.assertEqual(alice.contacts.snapshot(), before)
        with self.assertRaises(ContactListError):
            await alice.addContact("bob@example.com")
        self.assertEqual(alice.contacts.snapshot(), before)

    async def test_otherPlaceChangeAfterRefresh(self) -> None:
        """
        With alice signed in at two places, a contact added at one reaches
        the other's list through the address-book refresh the ABCH C{NOT}
        triggers (called directly here, independently of the C{NOT} the local
        network also sends).
        """
        first, _ = await self.signIn("alice")
        second, secondEvents = await self.signIn("alice")
        await first.addContact("bob@example.com")
        await second.roster.addressBookChanged()
        contact = second.contacts.get("bob@example.com")
        self.assertTrue(contact is not None and contact.onForwardList and contact.isAllowed)
        self.assertEqual(contact.contactId, first.contacts.get("bob@example.com").contactId)
        self.assertIn(("contactListChanged",), secondEvents.events)
