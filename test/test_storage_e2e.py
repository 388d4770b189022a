"""
The storage client against the real storage resource over a real loopback
HTTP port (C{twisted.web} C{Site} on 127.0.0.1:0, the library's own HTTP
client): the round trip of name, message and picture, a wrong ticket
refused, and a fault, a bare 500 and a silent server each giving a typed
error.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from msnp.errors import ServiceError
from msnp.server.accounts import AccountStore
from msnp.server.roaming import MemoryRoamingProfiles, StorageTickets
from msnp.server.storage import StorageResource
from msnp.soap.storage import StorageFault, StorageService
from msnp.httpclient import makeHTTPClient

from test.support import Silent, TrackingFactory, asyncTest, stopTracked

#: Deadline of the calls that should succeed; loopback answers in milliseconds.
TIMEOUT = 10.0
PNG = b"\x89PNG\r\n\x1a\n" + b"e2e tile"


class Broken(Resource):
    """
    Answers every POST with HTTP 500 and an HTML page (no SOAP fault).
    """

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        request.setResponseCode(500)
        return b"<html><body>Internal Server Error</body></html>"


class StorageOverLoopbackTests(TestCase):
    """
    alice has a storage ticket; the storage resource listens on loopback.
    """

    def setUp(self) -> None:
        self.store = AccountStore()
        self.alice = self.store.addAccount("alice@example.com", "pw", "Alice")
        self.tickets = StorageTickets(self.store)
        self.ticket = self.tickets.issue(self.store.issueTickets(self.alice))
        self.profiles = MemoryRoamingProfiles()
        root = Resource()
        root.putChild(b"storageservice", StorageResource(self.tickets, self.profiles))
        root.putChild(b"broken", Broken())
        self.silent = Silent()
        root.putChild(b"silent", self.silent)
        self.factory = TrackingFactory(Site(root))
        listener: Any = reactor
        port = listener.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(stopTracked, port, self.factory)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        handle = makeHTTPClient(reactor, persistent=True)
        self.addCleanup(handle.close)
        self.http = handle.client

    def service(self, path: str = "/storageservice/SchematizedStore.asmx", ticket: str = "", clock: Any = None) -> StorageService:
        return StorageService(
            self.http, self.base + path, lambda: ticket or self.ticket, clock or reactor, timeout=TIMEOUT
        )

    @asyncTest
    async def test_roundTrip(self) -> None:
        """
        What place 1 roams (name, message, picture) is what a second
        client, as place 2 would, reads back, bytes included.
        """
        place1 = self.service()
        profile = await place1.getProfile(self.alice.cid)
        await place1.updateProfile(profile.resourceId, "Alice at home", "Roaming works")
        photoId = await place1.createDocument(self.alice.cid, PNG)
        await place1.createRelationship(profile.expressionProfileId or "", photoId)
        place2 = self.service()
        seen = await place2.getProfile(self.alice.cid)
        self.assertEqual((seen.displayName, seen.personalMessage), ("Alice at home", "Roaming works"))
        assert seen.picture is not None
        self.assertTrue(seen.picture.url.startswith(self.base + "/storageservice/usertile/"))
        self.assertEqual(await place2.fetchPicture(seen.picture), PNG)

    @asyncTest
    async def test_wrongTicketRefused(self) -> None:
        """
        A ticket the network never issued gets HTTP 403, a typed
        L{ServiceError}, and nothing is stored.
        """
        intruder = self.service(ticket="t=forged&p=")
        with self.assertRaises(ServiceError) as caught:
            await intruder.updateProfile("x!106", "pwned")
        self.assertEqual(caught.exception.status, 403)
        self.assertIsNone(self.profiles.getRoamingProfile("alice@example.com"))

    @asyncTest
    async def test_fault(self) -> None:
        """
        A refused call comes back as a L{StorageFault} with HTTP 500 and
        its error code.
        """
        with self.assertRaises(StorageFault) as caught:
            await self.service().getProfile(self.alice.cid + 1)
        self.assertEqual((caught.exception.status, caught.exception.errorCode), (500, "ItemDoesNotExist"))

    @asyncTest
    async def test_bare500(self) -> None:
        """
        HTTP 500 without a SOAP fault is a L{ServiceError} with the status,
        not a fault.
        """
        with self.assertRaises(ServiceError) as caught:
            await self.service("/broken").getProfile(self.alice.cid)
        self.assertNotIsInstance(caught.exception, StorageFault)
        self.assertEqual(caught.exception.status, 500)

    def test_timeout(self) -> "Deferred[Any]":
        """
        A server that never answers fails the call at the deadline (on a
        L{Clock}) with a L{ServiceError}, and the connection is closed.
        """
        clock = Clock()
        d = self.assertFailure(self.service("/silent", clock=clock).getProfile(self.alice.cid), ServiceError)

        def arrived(_: Any) -> "Deferred[Any]":
            clock.advance(TIMEOUT - 0.1)
            self.assertNoResult(d)
            clock.advance(0.1)
            return d

        def check(error: ServiceError) -> "Deferred[Any]":
            self.assertIn("within 10s", str(error))
            return DeferredList([c.lost for c in self.factory.everyConnection])

        return self.silent.received.addCallback(arrived).addCallback(check)
