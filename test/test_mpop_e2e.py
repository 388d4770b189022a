"""
MPOP list synchronisation end to end (reference sections 3.5, 3.11 and 5):
alice signed in at two places (different machine GUIDs) on a
L{msnp.server.network.LocalNetwork} over loopback sockets. A change made at
one place reaches the other through the echoed C{ADL 0}/C{RML 0} and the
address-book C{NOT}, so both places end with the same contact list and keep
seeing their contacts' presence.

Each test waits for observer events (never for wall-clock time); a missing
event fails the test through a per-wait timeout.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.contacts import Contact, ContactList, Lists, Status
from msnp.listpayload import ListEntry, parseListPayload
from msnp.endpoints import ClientIdentity, newMachineGuid
from msnp.roster import RosterManager
from msnp.soap.addressbook import ABContact, AddressBookResult
from msnp.soap.sharing import Member, MembershipResult
from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.network import LocalNetwork
from msnp.server.notification import addressBookChangedPayload, notificationPid
from msnp.wire import Command
from msnp.xmlsafe import parseXML, textOf
from test.support import LIST_EVENTS, EventRecorder, Summary, PendingServices

PASSWORD = "secret-pw"
ALICE = "alice@example.com"
BOB = "bob@example.com"

#: The example of reference section 3.11, byte for byte (605 bytes).
REFERENCE_NOT = (
    b'<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><TO pid="0x00000003:0xbe19c000" '
    b'name="alice@example.com"><VIA agent="messenger" /></TO><MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" />'
    b'<BODY>&lt;NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"&gt;&lt;Service&gt;ABCHInternal&lt;/Service&gt;'
    b"&lt;CID&gt;-5100000000000000001&lt;/CID&gt;&lt;LastModifiedDate&gt;2010-01-01T00:05:00.0000000-08:00"
    b"&lt;/LastModifiedDate&gt;&lt;HasNewItem&gt;false&lt;/HasNewItem&gt;&lt;/NotificationData&gt;</BODY>"
    b"</MSG></NOTIFICATION>"
)


#: What these tests compare of the list and presence events (the only ones
#: recorded).
PLACE_EVENTS: dict[str, Summary] = {
    **LIST_EVENTS,
    "endpointsChanged": lambda session, places: (len(places),),
}


def listView(session: Any) -> dict[str, Any]:
    """
    What must agree between two places of one account: every contact's
    lists, address-book id, groups (by name) and messenger flag, and the
    set of group names.
    """
    groups = {g.groupId: g.name for g in session.contacts.groups.values()}
    contacts = {
        c.email: (
            int(c.lists & (Lists.FORWARD | Lists.ALLOW | Lists.BLOCK | Lists.REVERSE | Lists.PENDING)),
            c.contactId,
            sorted(groups.get(g, "?") for g in c.groupIds),
            c.isMessengerUser,
        )
        for c in session.contacts
    }
    return {"contacts": contacts, "groups": sorted(groups.values())}


class ServerLog:
    """
    Records the commands the NS sends to one signed-in place.
    """

    def __init__(self, server: Any) -> None:
        self.sent: list[Command] = []
        original = server.sendRaw

        def sendRaw(command: Command) -> None:
            self.sent.append(command)
            original(command)

        server.sendRaw = sendRaw

    def named(self, name: str) -> list[Command]:
        return [c for c in self.sent if c.name == name]


class NotificationPayloadTests(SynchronousTestCase):
    """
    The address-book-changed C{NOT} payload.
    """

    def test_referenceExample(self) -> None:
        """
        For the account of reference section 3.11 the payload is the
        reference's example byte for byte (605 bytes).
        """
        store = AccountStore()
        account = store.addAccount(ALICE, PASSWORD)
        account.cid = -5100000000000000001
        account.puid = (0xBE19C000 << 32) | 0x3
        payload = addressBookChangedPayload(account, "2010-01-01T00:05:00.0000000-08:00")
        self.assertEqual(payload, REFERENCE_NOT)
        self.assertEqual(len(payload), 605)

    def test_pid(self) -> None:
        """
        The C{pid} is the PUID's low and high halves, eight hex digits each.
        """
        self.assertEqual(notificationPid(0x0123456789ABCDEF), "0x89abcdef:0x01234567")

    def test_escaped(self) -> None:
        """
        The account name is escaped, and the body parses back to the
        C{NotificationData} with C{ABCHInternal} and the CID.
        """
        store = AccountStore()
        account = store.addAccount("o'neil&co@example.com", PASSWORD)
        root = parseXML(addressBookChangedPayload(account, "2026-01-01T00:00:00.0000000Z"))
        self.assertEqual(root.get("siteid"), "45705")
        self.assertEqual(root.find("TO").get("name"), "o'neil&co@example.com")  # type: ignore[union-attr]
        body = parseXML(textOf(root, "MSG", "BODY").encode("utf-8"))
        self.assertEqual(textOf(body, "Service"), "ABCHInternal")
        self.assertEqual(textOf(body, "CID"), str(account.cid))
        self.assertEqual(textOf(body, "HasNewItem"), "false")


class OtherPlaceRosterTests(SynchronousTestCase):
    """
    How a place applies an C{ADL 0}/C{RML 0} from another place of its
    account while it is still busy with an earlier refresh.
    """

    def setUp(self) -> None:
        self.services = PendingServices()
        self.recorder = EventRecorder("B", PLACE_EVENTS)
        self.contacts = ContactList()
        self.roster = RosterManager(
            self.contacts, self.services, self.services,  # type: ignore[arg-type]
            lambda name, payload: succeed(Command(name, 1, ("OK",), None)),
            self.recorder, ownEmail=ALICE,
        )

    def test_appliedAtOnceWhileBusy(self) -> None:
        """
        With a refresh still running (the NOT's), an echoed C{ADL 0 l="3"}
        puts the contact on the list at once, so the presence the server
        sends right after it is not lost; the queued refresh still runs and
        the observer hears contactListChanged.
        """
        busy = self.roster.addressBookChanged()
        self.assertEqual(len(self.services.pending), 2)
        done = self.roster.serverListChanged([ListEntry(BOB, Lists.FORWARD | Lists.ALLOW)], True)
        contact = self.contacts.get(BOB)
        assert contact is not None
        self.assertEqual(contact.lists, Lists.FORWARD | Lists.ALLOW)
        self.assertTrue(contact.isMessengerUser)
        self.services.failAll()
        self.successResultOf(busy)
        self.assertEqual(len(self.services.pending), 2)
        self.services.failAll()
        self.successResultOf(done)
        self.assertIs(self.contacts.get(BOB), contact)
        self.assertEqual(self.recorder.count("contactListChanged"), 1)

    def test_staleDownloadKeepsOtherPlaceContact(self) -> None:
        """
        A refresh whose download began before the other place added bob
        does not take bob (and the presence recorded on him) away; the
        refresh queued with the change then confirms him, the same object.
        """
        self.roster.addressBookChanged()
        self.roster.serverListChanged([ListEntry(BOB, Lists.FORWARD | Lists.ALLOW)], True)
        contact = self.contacts.get(BOB)
        assert contact is not None
        contact.status = Status.ONLINE
        self.services.answerAll(MembershipResult(), AddressBookResult())
        self.assertIs(self.contacts.get(BOB), contact)
        withBob = MembershipResult()
        withBob.roles["Allow"][BOB] = Member(BOB, 7)
        book = AddressBookResult(contacts=[ABContact("c-1", BOB, "Bob", isMessengerUser=True)])
        self.services.answerAll(withBob, book)
        self.assertIs(self.contacts.get(BOB), contact)
        self.assertEqual(contact.lists, Lists.FORWARD | Lists.ALLOW)
        self.assertEqual((contact.contactId, contact.status), ("c-1", Status.ONLINE))
        # Later downloads that lack bob do remove him.
        self.roster.addressBookChanged()
        self.services.answerAll(MembershipResult(), AddressBookResult())
        self.assertIsNone(self.contacts.get(BOB))

    def test_removalAppliedAtOnce(self) -> None:
        """
        An echoed C{RML 0 l="1"} takes the forward bit off at once; a
        contact left on no list is forgotten.
        """
        self.contacts.add(Contact(email=BOB, lists=Lists.FORWARD | Lists.ALLOW))
        self.contacts.add(Contact(email="carol@example.com", lists=Lists.FORWARD))
        self.roster.addressBookChanged()
        self.roster.serverListChanged(
            [ListEntry(BOB, Lists.FORWARD), ListEntry("carol@example.com", Lists.FORWARD)], False
        )
        self.assertEqual(self.contacts.get(BOB).lists, Lists.ALLOW)  # type: ignore[union-attr]
        self.assertIsNone(self.contacts.get("carol@example.com"))
        self.services.failAll()
        self.services.failAll()


class MPOPEndToEndTests(TestCase):
    """
    alice at two places (A and B), and bob.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        from msnp.client import MSNClient

        self.MSNClient = MSNClient
        self.network = LocalNetwork(reactor=reactor)
        self.network.addAccount(ALICE, PASSWORD, "Alice")
        self.network.addAccount(BOB, PASSWORD, "Bob")
        self.endpoints = await self.network.start()
        self.addCleanup(self.network.stop)

    async def signIn(self, email: str, name: str) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(name, PLACE_EVENTS)
        client = self.MSNClient(
            email,
            PASSWORD,
            endpoints=self.endpoints,
            observer=recorder,
            reactor=reactor,
            identity=ClientIdentity(machineGuid=newMachineGuid(), placeName=name),
        )
        session = await client.login()
        self.addCleanup(self._logout, session)
        return session, recorder

    async def _logout(self, session: Any) -> None:
        try:
            await session.logout()
        except Exception:
            pass

    async def twoPlaces(self) -> tuple[Any, EventRecorder, Any, EventRecorder]:
        """
        Sign alice in at A, then at B, and wait until each knows the other.
        """
        a, aEvents = await self.signIn(ALICE, "A")
        b, bEvents = await self.signIn(ALICE, "B")
        self.assertNotEqual(a.machineGuid.lower(), b.machineGuid.lower())
        await aEvents.waitFor(lambda: len(a.places) == 2, "A sees two places")
        await bEvents.waitFor(lambda: len(b.places) == 2, "B sees two places")
        return a, aEvents, b, bEvents

    def serverLogs(self) -> dict[str, ServerLog]:
        """
        A recorder of what the NS sends to each of alice's places, by GUID.
        """
        return {
            (s.machineGuid or "").strip("{}").lower(): ServerLog(s) for s in self.network.onlineSessions(ALICE)
        }

    def account(self, email: str) -> Account:
        found = self.network.store.get(email)
        assert found is not None
        return found

    def sees(self, session: Any, email: str, status: Status) -> Callable[[], bool]:
        def check() -> bool:
            contact = session.contacts.get(email)
            return contact is not None and contact.status is status

        return check

    async def converged(self, a: Any, aEvents: EventRecorder, b: Any, bEvents: EventRecorder) -> None:
        """
        Wait until both places hold the same list (events drive the checks).
        """
        same = lambda: listView(a) == listView(b)  # noqa: E731
        await bEvents.waitFor(same, "B's list to equal A's")
        self.assertEqual(listView(a), listView(b))

    async def test_addAtOnePlaceReachesTheOther(self) -> None:
        """
        A adds bob: B's list follows (forward and allow, same contact id),
        B's observer hears contactListChanged, both places see bob online
        and both follow his later status change.
        """
        bob, _ = await self.signIn(BOB, "bob")
        a, aEvents, b, bEvents = await self.twoPlaces()
        listChanges = bEvents.count("contactListChanged")
        added = await a.addContact(BOB)
        await bEvents.waitFor(
            lambda: b.contacts.get(BOB) is not None and b.contacts.get(BOB).onForwardList, "bob at B"
        )
        await bEvents.waitFor(lambda: bEvents.count("contactListChanged") > listChanges, "B's contactListChanged")
        await self.converged(a, aEvents, b, bEvents)
        self.assertEqual(b.contacts.get(BOB).contactId, added.contactId)
        self.assertTrue(b.contacts.get(BOB).isAllowed)
        await aEvents.waitFor(self.sees(a, BOB, Status.ONLINE), "bob online at A")
        await bEvents.waitFor(self.sees(b, BOB, Status.ONLINE), "bob online at B")
        await bob.setStatus(Status.AWAY)
        await aEvents.waitFor(self.sees(a, BOB, Status.AWAY), "bob away at A")
        await bEvents.waitFor(self.sees(b, BOB, Status.AWAY), "bob away at B")
        self.assertEqual(aEvents.count("contactAddedYou") + bEvents.count("contactAddedYou"), 0)

    async def test_removeAtOtherPlace(self) -> None:
        """
        With bob a mutual contact, B removes him: A's list follows and A's
        observer hears contactListChanged; bob stays allowed at both.
        """
        self.network.addContact(ALICE, BOB, mutual=True)
        bob, _ = await self.signIn(BOB, "bob")
        a, aEvents, b, bEvents = await self.twoPlaces()
        await aEvents.waitFor(self.sees(a, BOB, Status.ONLINE), "bob online at A")
        await bEvents.waitFor(self.sees(b, BOB, Status.ONLINE), "bob online at B")
        listChanges = aEvents.count("contactListChanged")
        await b.removeContact(BOB)
        await aEvents.waitFor(lambda: not a.contacts.get(BOB).onForwardList, "bob off A's forward list")
        await aEvents.waitFor(lambda: aEvents.count("contactListChanged") > listChanges, "A's contactListChanged")
        same = lambda: listView(a) == listView(b)  # noqa: E731
        await aEvents.waitFor(same, "A's list to equal B's")
        self.assertTrue(a.contacts.get(BOB).isAllowed)
        self.assertFalse(self.account(ALICE).onForwardList(BOB))

    async def test_blockAndUnblock(self) -> None:
        """
        A blocks bob: B's copy of bob is blocked too and B hears
        contactListChanged; bob sees alice offline, while both of alice's
        places still see bob online. Unblocking at A undoes it at B.
        """
        self.network.addContact(ALICE, BOB, mutual=True)
        bob, bobEvents = await self.signIn(BOB, "bob")
        a, aEvents, b, bEvents = await self.twoPlaces()
        await bobEvents.waitFor(self.sees(bob, ALICE, Status.ONLINE), "alice online at bob")
        listChanges = bEvents.count("contactListChanged")
        await a.blockContact(BOB)
        await bEvents.waitFor(lambda: b.contacts.get(BOB).isBlocked, "bob blocked at B")
        await bEvents.waitFor(lambda: bEvents.count("contactListChanged") > listChanges, "B's contactListChanged")
        await self.converged(a, aEvents, b, bEvents)
        self.assertFalse(b.contacts.get(BOB).isAllowed)
        await bobEvents.waitFor(self.sees(bob, ALICE, Status.OFFLINE), "alice offline at bob")
        self.assertIs(a.contacts.get(BOB).status, Status.ONLINE)
        self.assertIs(b.contacts.get(BOB).status, Status.ONLINE)

        await a.unblockContact(BOB)
        await bEvents.waitFor(lambda: not b.contacts.get(BOB).isBlocked, "bob unblocked at B")
        await self.converged(a, aEvents, b, bEvents)
        self.assertTrue(b.contacts.get(BOB).isAllowed)
        await bobEvents.waitFor(self.sees(bob, ALICE, Status.ONLINE), "alice online again at bob")

    async def test_groups(self) -> None:
        """
        A group created at A appears at B; renaming it and moving bob into
        it at A shows at B; deleting it at B removes it at A.
        """
        self.network.addContact(ALICE, BOB, mutual=True)
        a, aEvents, b, bEvents = await self.twoPlaces()
        listChanges = bEvents.count("contactListChanged")
        friends = await a.addGroup("Friends")
        await bEvents.waitFor(lambda: friends.groupId in b.contacts.groups, "the group at B")
        await bEvents.waitFor(lambda: bEvents.count("contactListChanged") > listChanges, "B's contactListChanged")
        self.assertEqual(b.contacts.groups[friends.groupId].name, "Friends")
        await a.renameGroup(friends, "Pals")
        await a.moveContactToGroup(BOB, friends)
        await bEvents.waitFor(lambda: b.contacts.get(BOB).groupIds == {friends.groupId}, "bob in the group at B")
        await bEvents.waitFor(lambda: b.contacts.groups[friends.groupId].name == "Pals", "the rename at B")
        await self.converged(a, aEvents, b, bEvents)
        await b.removeGroup(friends.groupId)
        await aEvents.waitFor(lambda: friends.groupId not in a.contacts.groups, "the group gone at A")
        await aEvents.waitFor(lambda: listView(a) == listView(b), "A's list to equal B's")
        self.assertEqual(a.contacts.get(BOB).groupIds, set())

    async def test_serverTellsOnlyTheOtherPlace(self) -> None:
        """
        On the wire: an incremental ADL from A is echoed to B only, as
        C{ADL 0} with the same entry; the address-book change it made
        reaches B only, as a C{NOT} of site 45705 for alice; A gets neither.
        """
        a, aEvents, b, bEvents = await self.twoPlaces()
        logs = self.serverLogs()
        aLog = logs[a.machineGuid.strip("{}").lower()]
        bLog = logs[b.machineGuid.strip("{}").lower()]
        await a.addContact(BOB)
        await bEvents.waitFor(lambda: b.contacts.get(BOB) is not None and b.contacts.get(BOB).onForwardList,
                              "bob at B")
        echoes = [c for c in bLog.named("ADL") if c.trid == 0]
        self.assertEqual(len(echoes), 1)
        entries = parseListPayload(echoes[0].payload or b"")
        self.assertEqual([(e.email, e.lists) for e in entries], [(BOB, Lists.FORWARD | Lists.ALLOW)])
        self.assertEqual([c for c in aLog.named("ADL") if c.trid == 0], [])
        notices = bLog.named("NOT")
        self.assertGreaterEqual(len(notices), 1)
        root = parseXML(notices[0].payload or b"")
        self.assertEqual((root.get("siteid"), root.find("TO").get("name")), ("45705", ALICE))  # type: ignore[union-attr]
        body = parseXML(textOf(root, "MSG", "BODY").encode("utf-8"))
        self.assertEqual(textOf(body, "CID"), str(self.account(ALICE).cid))
        self.assertEqual(aLog.named("NOT"), [])

    async def test_singlePlaceGetsNoEcho(self) -> None:
        """
        An account signed in at one place is sent neither echoes nor
        C{NOT}s about its own changes.
        """
        a, aEvents = await self.signIn(ALICE, "A")
        (aLog,) = self.serverLogs().values()
        await a.addContact(BOB)
        await a.addGroup("Friends")
        self.assertEqual([c for c in aLog.sent if c.name in ("NOT", "ADL", "RML") and c.trid in (0, None)], [])
        self.assertEqual(aEvents.count("contactListChanged"), 0)
