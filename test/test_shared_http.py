"""
One HTTP connection pool per reactor (issue 13): the sessions of a
process share it, a logout gives the session's claim back without
closing what the others use, and the last one closes every connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.httpclient import SharedHTTPClient, _shared, sharedHTTPClient

from test.support import WAIT, asyncTest, pollUntil, signIn, startLocalNetwork

ALICE, BOB = "alice@example.com", "bob@example.com"


class SharedClaimTests(SynchronousTestCase):
    """
    L{sharedHTTPClient} claims, on memory reactors.
    """

    def test_oneClientPerReactor(self) -> None:
        """
        Claims on one reactor share one client; another reactor, or another
        trust root, gets its own.
        """
        one, two = MemoryReactorClock(), MemoryReactorClock()
        a, b, c = sharedHTTPClient(one), sharedHTTPClient(one), sharedHTTPClient(two)
        self.assertIs(a.client, b.client)
        self.assertIsNot(a.client, c.client)
        closing = [claim.close() for claim in (a, b, c)]
        one.advance(0)
        two.advance(0)
        for d in closing:
            self.successResultOf(d)

    def test_oneEndpointPerHost(self) -> None:
        """
        The pool's endpoint factory builds one endpoint per scheme, host and
        port and hands the same one out for every later request there.
        """
        import weakref

        from twisted.web.client import URI, BrowserLikePolicyForHTTPS

        from msnp.httpclient import _EndpointFactory

        factory = _EndpointFactory(MemoryReactorClock(), BrowserLikePolicyForHTTPS(), weakref.WeakSet())
        first = factory.endpointForURI(URI.fromBytes(b"http://127.0.0.1:9/a"))
        self.assertIs(factory.endpointForURI(URI.fromBytes(b"http://127.0.0.1:9/b?c")), first)
        self.assertIsNot(factory.endpointForURI(URI.fromBytes(b"http://127.0.0.1:10/a")), first)
        self.assertIsNot(factory.endpointForURI(URI.fromBytes(b"https://127.0.0.1:9/a")), first)

    def test_addressesNeedNoResolver(self) -> None:
        """
        An IPv4 or IPv6 address is connected to directly (no resolver, no
        thread); a host name goes through L{HostnameEndpoint}.
        """
        import weakref

        from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
        from twisted.web.client import URI, BrowserLikePolicyForHTTPS

        from msnp.httpclient import _EndpointFactory

        factory = _EndpointFactory(MemoryReactorClock(), BrowserLikePolicyForHTTPS(), weakref.WeakSet())
        for url, kind in ((b"http://127.0.0.1:9/", TCP4ClientEndpoint), (b"http://[::1]:9/", TCP6ClientEndpoint),
                          (b"http://localhost:9/", HostnameEndpoint)):
            tracked: Any = factory.endpointForURI(URI.fromBytes(url))
            self.assertIsInstance(tracked._endpoint, kind)

    def test_closedWithTheLastClaim(self) -> None:
        """
        The shared client stays open while any claim is held (closing one
        claim twice counts once), and is closed and forgotten with the last:
        the next claim gets a fresh client.
        """
        memory = MemoryReactorClock()
        a, b = sharedHTTPClient(memory), sharedHTTPClient(memory)
        closed: list[bool] = []
        original = a.handle.close
        a.handle.close = lambda: (closed.append(True), original())[1]  # type: ignore[method-assign]
        self.successResultOf(a.close())
        self.successResultOf(a.close())
        self.assertEqual(closed, [])
        self.assertIn((id(memory), None), _shared)
        d = b.close()
        self.assertEqual(closed, [True])
        memory.advance(0)
        self.successResultOf(d)
        self.assertNotIn((id(memory), None), _shared)
        fresh = sharedHTTPClient(memory)
        self.assertIsNot(fresh.client, a.client)
        fresh.close()
        memory.advance(0)


class SharedSessionsTests(TestCase):
    """
    Two default clients signed in on the real reactor.
    """

    timeout = 30

    @asyncTest
    async def test_logoutGivesTheClaimBack(self) -> None:
        """
        When C{logout()} fires, the session has ended and given its HTTP
        claim back: the only session's logout leaves no shared pool behind
        (the next login starts a fresh one), with no polling.
        """
        network, endpoints = await startLocalNetwork(self, [(ALICE, "pw-a", "Alice")])
        alice = await signIn(self, ALICE, "pw-a", endpoints)
        self.assertIn((id(reactor), None), _shared)
        await alice.logout()
        self.assertNotIn((id(reactor), None), _shared)
        self.assertEqual(await alice.whenEnded(), "logout")

    @asyncTest
    async def test_twoSessionsShareOnePool(self) -> None:
        """
        alice's and bob's sessions share one HTTP client; alice's logout
        leaves bob's working (an address-book call after it succeeds), and
        bob's logout closes the pool.
        """
        network, endpoints = await startLocalNetwork(
            self, [(ALICE, "pw-a", "Alice"), (BOB, "pw-b", "Bob")], mutualContacts=[(ALICE, BOB)]
        )
        alice = await signIn(self, ALICE, "pw-a", endpoints)
        bob = await signIn(self, BOB, "pw-b", endpoints)
        claims: list[Any] = [alice._http, bob._http]
        self.assertIsInstance(claims[0], SharedHTTPClient)
        self.assertIs(claims[0].handle, claims[1].handle)
        handle = claims[0].handle
        await alice.logout()
        self.assertIn((id(reactor), None), _shared)
        group = await bob.roster.addGroup("Friends")
        self.assertEqual(group.name, "Friends")
        await bob.logout()
        await bob.whenEnded()
        self.assertTrue(await pollUntil(lambda: (id(reactor), None) not in _shared, WAIT))
        self.assertEqual(
            [p for p in handle._connections if getattr(p, "state", "CONNECTION_LOST") != "CONNECTION_LOST"], []
        )
