"""
Tests for the local storage service L{msnp.server.storage}, driven by the
real client L{msnp.soap.storage.StorageService} in memory (C{StubTreq}):
the roaming profile and the picture document round-trip, only the owner's
ticket gets in, and bad requests get specific faults.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from msnp.errors import ServiceError
from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.tickets import TicketState
from msnp.server.roaming import (
    IRoamingProfileStore,
    IStorageTickets,
    MemoryRoamingProfiles,
    RoamedProfile,
    StorageTickets,
)
from msnp.server.storage import MAX_PICTURE_BYTES, StorageResource
from msnp.soap.storage import STORAGE_NS, StorageFault, StorageService

from test.support import stubTreq

BASE = "http://127.0.0.1:8080/storageservice/"
URL = BASE + "SchematizedStore.asmx"
PNG = b"\x89PNG\r\n\x1a\n" + b"tile bytes"


class StorageServerTests(SynchronousTestCase):
    """
    alice and bob exist; alice holds a storage ticket.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.store = AccountStore(ticketLifetime=100, clock=self.clock)
        self.alice = self.store.addAccount("alice@example.com", "pw", "Alice")
        self.bob = self.store.addAccount("bob@example.com", "pw", "Bob")
        self.tickets = StorageTickets(self.store)
        self.grant = self.store.issueTickets(self.alice)
        self.ticket = self.tickets.issue(self.grant)
        self.profiles = MemoryRoamingProfiles()
        self.changes: list[tuple[Account, RoamedProfile]] = []
        self.resource = StorageResource(
            self.tickets, self.profiles, self.clock, onChange=lambda a, p: self.changes.append((a, p))
        )
        self.treq = stubTreq(b"storageservice", self.resource)
        self.presented = self.ticket
        self.service = StorageService(self.treq, URL, lambda: self.presented, self.clock)

    def resolve(self, d: "Deferred[Any]") -> Any:
        self.treq.flush()
        return self.successResultOf(d)

    def failure(self, d: "Deferred[Any]", kind: type = ServiceError) -> Any:
        self.treq.flush()
        return self.failureResultOf(d, kind).value

    def test_interfaces(self) -> None:
        """
        The in-memory parts provide the seams the durable store will.
        """
        verifyObject(IRoamingProfileStore, self.profiles)
        verifyObject(IStorageTickets, self.tickets)

    def test_freshProfile(self) -> None:
        """
        An account that never roamed anything has a profile with ids of
        its CID and nothing set.
        """
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        key = f"{self.alice.cid & 0xFFFFFFFFFFFFFFFF:016x}"
        self.assertEqual(profile.resourceId, key + "!106")
        self.assertEqual(profile.expressionProfileId, key + "!118")
        self.assertEqual((profile.displayName, profile.personalMessage, profile.picture), (None, None, None))

    def test_updateRoundTrip(self) -> None:
        """
        Name and message written are read back (unescaped), kept in the
        profile store, and reported to C{onChange}; clearing the message
        removes it.
        """
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        self.resolve(self.service.updateProfile(profile.resourceId, "Alice <&>", "At the beach"))
        again = self.resolve(self.service.getProfile(self.alice.cid))
        self.assertEqual((again.displayName, again.personalMessage), ("Alice <&>", "At the beach"))
        stored = self.profiles.getRoamingProfile("alice@example.com")
        assert stored is not None
        self.assertEqual(stored.displayName, "Alice <&>")
        self.assertEqual(self.changes[-1][0], self.alice)
        self.resolve(self.service.updateProfile(profile.resourceId, personalMessage=""))
        cleared = self.resolve(self.service.getProfile(self.alice.cid))
        self.assertEqual((cleared.displayName, cleared.personalMessage), ("Alice <&>", None))

    def test_pictureRoundTrip(self) -> None:
        """
        A created picture appears in the profile with its sniffed type and
        size, its bytes come from its URL with the ticket, and an update
        replaces them under a new URL.
        """
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        photoId = self.resolve(self.service.createDocument(self.alice.cid, PNG, mimeType="png"))
        self.resolve(self.service.createRelationship(profile.expressionProfileId, photoId))
        picture = self.resolve(self.service.getProfile(self.alice.cid)).picture
        self.assertEqual((picture.resourceId, picture.mimeType, picture.size), (photoId, "image/png", len(PNG)))
        self.assertEqual(self.resolve(self.service.fetchPicture(picture)), PNG)
        self.assertEqual(
            [d.resourceId for d in self.resolve(self.service.findDocuments(self.alice.cid))], [photoId]
        )
        self.resolve(self.service.updateDocument(photoId, b"GIF89a new"))
        updated = self.resolve(self.service.getProfile(self.alice.cid)).picture
        self.assertNotEqual(updated.url, picture.url)
        self.assertEqual(updated.mimeType, "image/gif")
        self.assertEqual(self.resolve(self.service.fetchPicture(updated)), b"GIF89a new")

    def test_deleteRelationshipRemovesPicture(self) -> None:
        """
        Unlinking the picture removes it; unlinking again is still success
        for the client (C{ItemDoesNotExist}).
        """
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        photoId = self.resolve(self.service.createDocument(self.alice.cid, PNG))
        self.resolve(self.service.deleteRelationship(profile.expressionProfileId, photoId))
        self.assertIsNone(self.resolve(self.service.getProfile(self.alice.cid)).picture)
        self.resolve(self.service.deleteRelationship(profile.expressionProfileId, photoId))

    def test_updateMissingDocument(self) -> None:
        """
        Updating a picture that was never created is C{ItemDoesNotExist}.
        """
        key = f"{self.alice.cid & 0xFFFFFFFFFFFFFFFF:016x}"
        fault = self.failure(self.service.updateDocument(key + "!205", PNG), StorageFault)
        self.assertTrue(fault.itemMissing)

    def test_unknownTicket(self) -> None:
        """
        A ticket never issued (or none) gets a bare 403.
        """
        for ticket in ("t=forged&p=", ""):
            self.presented = ticket
            error = self.failure(self.service.getProfile(self.alice.cid))
            self.assertNotIsInstance(error, StorageFault)
            self.assertEqual(error.status, 403)

    def test_otherTicketKinds(self) -> None:
        """
        The contacts ticket of the same login is not a storage ticket.
        """
        self.presented = self.grant.contactsTicket
        self.assertEqual(self.failure(self.service.getProfile(self.alice.cid)).status, 403)

    def test_expiredTicket(self) -> None:
        """
        A storage ticket past its grant's lifetime gets C{TicketExpired}.
        """
        self.clock.advance(100)
        self.assertEqual(self.tickets.checkStorageTicket(self.ticket).state, TicketState.EXPIRED)
        fault = self.failure(self.service.getProfile(self.alice.cid), StorageFault)
        self.assertEqual((fault.errorCode, fault.status), ("TicketExpired", 500))

    def test_oldTicketsForgotten(self) -> None:
        """
        A ticket expired for longer than its lifetime is forgotten at the
        next issue (unknown, 403); a recently expired one is still known.
        """
        self.clock.advance(150)
        other = self.tickets.issue(self.store.issueTickets(self.bob))
        self.assertEqual(self.tickets.checkStorageTicket(self.ticket).state, TicketState.EXPIRED)
        self.clock.advance(50)
        self.tickets.issue(self.store.issueTickets(self.bob))
        self.assertEqual(self.tickets.checkStorageTicket(self.ticket).state, TicketState.UNKNOWN)
        self.assertEqual(self.tickets.checkStorageTicket(other).state, TicketState.VALID)

    def test_otherAccountsProfile(self) -> None:
        """
        alice's ticket cannot read or change bob's profile: it is answered
        as missing, and bob's stays untouched.
        """
        self.assertTrue(self.failure(self.service.getProfile(self.bob.cid), StorageFault).itemMissing)
        bobKey = f"{self.bob.cid & 0xFFFFFFFFFFFFFFFF:016x}"
        self.failure(self.service.updateProfile(bobKey + "!106", "pwned"), StorageFault)
        self.failure(self.service.createDocument(self.bob.cid, PNG), StorageFault)
        self.assertIsNone(self.profiles.getRoamingProfile("bob@example.com"))

    def test_pictureBytesOnlyForOwner(self) -> None:
        """
        The picture URL without a ticket, or with bob's, is refused.
        """
        self.resolve(self.service.createDocument(self.alice.cid, PNG))
        picture = self.resolve(self.service.getProfile(self.alice.cid)).picture
        bobTicket = self.tickets.issue(self.store.issueTickets(self.bob))
        for ticket in ("", bobTicket, "t=forged"):
            self.presented = ticket
            self.assertEqual(self.failure(self.service.fetchPicture(picture)).status, 403)

    def test_badPictures(self) -> None:
        """
        An empty or oversized picture is refused with C{InvalidArgument}.
        """
        for data in (b"", b"x" * (MAX_PICTURE_BYTES + 1)):
            fault = self.failure(self.service.createDocument(self.alice.cid, data), StorageFault)
            self.assertEqual(fault.errorCode, "InvalidArgument")
        self.assertEqual(self.changes, [])

    def test_tooLongText(self) -> None:
        """
        A display name beyond the limit is refused, nothing saved.
        """
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        fault = self.failure(self.service.updateProfile(profile.resourceId, "x" * 5000), StorageFault)
        self.assertEqual(fault.errorCode, "InvalidArgument")
        self.assertIsNone(self.profiles.getRoamingProfile("alice@example.com"))

    def raw(self, body: bytes, action: str = f"{STORAGE_NS}/GetProfile") -> tuple[int, bytes]:
        d = self.treq.post(URL, data=body, headers={b"SOAPAction": [action.encode()]})
        self.treq.flush()
        response = self.successResultOf(d)
        content = self.treq.content(response)
        self.treq.flush()
        return response.code, self.successResultOf(content)

    def envelope(self, method: str) -> bytes:
        return (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
            f'<StorageUserHeader xmlns="{STORAGE_NS}"><TicketToken>{self.ticket.replace("&", "&amp;")}</TicketToken>'
            f"</StorageUserHeader></soap:Header><soap:Body>{method}</soap:Body></soap:Envelope>"
        ).encode()

    def test_malformedAndUnknown(self) -> None:
        """
        Malformed XML is a 400 fault; an unknown method a fault naming it.
        """
        status, body = self.raw(b"<soap:Envelope")
        self.assertEqual(status, 400)
        self.assertIn(b"InvalidArgument", body)
        status, body = self.raw(self.envelope(f'<ShareItem xmlns="{STORAGE_NS}"/>'))
        self.assertEqual(status, 500)
        self.assertIn(b"ShareItem", body)

    def test_answersInNamespaceAsked(self) -> None:
        """
        A call made with the 2008 namespace (MSNPSharp) is answered in it.
        """
        method = (
            '<GetProfile xmlns="http://www.msn.com/webservices/storage/2008"><profileHandle><Alias>'
            f"<Name>{self.alice.cid}</Name><NameSpace>MyCidStuff</NameSpace></Alias></profileHandle></GetProfile>"
        )
        status, body = self.raw(self.envelope(method), "http://www.msn.com/webservices/storage/2008/GetProfile")
        self.assertEqual(status, 200)
        self.assertIn(b'<GetProfileResponse xmlns="http://www.msn.com/webservices/storage/2008">', body)

    def test_oversizedRequest(self) -> None:
        """
        A request body beyond the cap is refused unread with 413.
        """
        self.assertEqual(self.raw(b"x" * (MAX_PICTURE_BYTES * 2))[0], 413)

    def test_ticketsStable(self) -> None:
        """
        Asking twice for the same grant's ticket gives the same ticket; the
        repr shows none.
        """
        self.assertEqual(self.tickets.issue(self.grant), self.ticket)
        self.assertNotIn(self.ticket, repr(self.tickets))

    def test_onChangeErrorsLogged(self) -> None:
        """
        A failing C{onChange} does not fail the call.
        """

        def broken(account: Account, profile: RoamedProfile) -> None:
            raise RuntimeError("boom")

        self.resource.onChange = broken
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        self.resolve(self.service.updateProfile(profile.resourceId, "A"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_customStore(self) -> None:
        """
        The resource reads and writes only through the store seam.
        """
        calls: list[tuple[str, str]] = []

        class Recording(MemoryRoamingProfiles):
            def getRoamingProfile(self, email: str) -> Optional[RoamedProfile]:
                calls.append(("get", email))
                return super().getRoamingProfile(email)

            def setRoamingProfile(self, email: str, profile: RoamedProfile) -> None:
                calls.append(("set", email))
                super().setRoamingProfile(email, profile)

        self.resource.profiles = Recording()
        profile = self.resolve(self.service.getProfile(self.alice.cid))
        self.resolve(self.service.updateProfile(profile.resourceId, "A"))
        self.assertIn(("set", "alice@example.com"), calls)
        self.assertEqual(calls[0], ("get", "alice@example.com"))
