"""
Circles in the SQLite database (L{msnp.server.sqlcircles}): the registry's
memberships and invitations survive a restart of the store, a damaged row
is skipped, and a circle made over loopback by a real client on a network
served from the database is there after the network is rebuilt on it.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.circles import CircleRole, CircleState
from msnp.server.circles import CircleRegistry
from msnp.server.network import LocalNetwork
from msnp.server.sqlcircles import SQLiteCircleStore, recordFromJSON, recordToJSON
from msnp.server.sqlstore import SQLiteAccountStore

from test.support import signIn, tempDirectory

PASSWORD = "secret-pw"


class SQLiteCircleStoreTests(SynchronousTestCase):
    """
    The store under a registry, reopened from the file.
    """

    def setUp(self) -> None:
        self.path = os.path.join(tempDirectory(self), "circles.sqlite3")

    def openStore(self) -> SQLiteAccountStore:
        store = SQLiteAccountStore(self.path)
        self.addCleanup(store.close)
        return store

    def test_survivesReopening(self) -> None:
        """
        A circle, its accepted member and a pending invitation are read
        back by a new registry on a new store over the same file; a circle
        whose last member left is gone.
        """
        registry = CircleRegistry(SQLiteCircleStore(self.openStore()))
        record = registry.create("alice@example.com", "Family")
        registry.invite("alice@example.com", record.circleId, "bob@example.com", connected=True)
        registry.invite("alice@example.com", record.circleId, "carol@example.com", connected=True)
        registry.respond("bob@example.com", record.circleId, accept=True)
        gone = registry.create("dave@example.com", "Solo")
        registry.leave("dave@example.com", gone.circleId)

        again = CircleRegistry(SQLiteCircleStore(self.openStore()))
        [loaded] = list(again)
        self.assertEqual((loaded.circleId, loaded.name), (record.circleId, "Family"))
        alice, bob, carol = (loaded.members[e] for e in ("alice@example.com", "bob@example.com", "carol@example.com"))
        self.assertEqual((alice.role, alice.state), (CircleRole.ADMIN, CircleState.ACCEPTED))
        self.assertEqual(bob.state, CircleState.ACCEPTED)
        self.assertEqual((carol.state, carol.inviter), (CircleState.WAITING_RESPONSE, "alice@example.com"))
        self.assertTrue(again.isMember("bob@example.com", record.circleId))
        self.assertIsNone(again.get(gone.circleId))

    def test_damagedRowSkipped(self) -> None:
        """
        A row that is not a stored circle is logged and skipped; the
        others load.
        """
        store = self.openStore()
        circles = SQLiteCircleStore(store)
        good = CircleRegistry(circles).create("alice@example.com", "Good")
        store.database().execute("INSERT INTO circles (circleId, record) VALUES ('x', '{\"name\": 1}')")
        self.assertEqual([r.circleId for r in circles.loadCircles()], [good.circleId])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_jsonRoundTrip(self) -> None:
        """
        The stored form gives back an equal record.
        """
        registry = CircleRegistry()
        record = registry.create("alice@example.com", "Ünïcode <&>")
        registry.invite("alice@example.com", record.circleId, "bob@example.com", connected=False)
        self.assertEqual(recordFromJSON(recordToJSON(record)), record)


class DurableCirclesTests(TestCase):
    """
    A real client against a network served from the database.
    """

    timeout = 60

    async def test_circleSurvivesRestart(self) -> None:
        """
        alice creates a circle; the network is stopped and a new one built
        on a new store over the same file: at her next sign-in the circle is listed and
        joined again.
        """
        path = os.path.join(tempDirectory(self), "net.sqlite3")
        store = SQLiteAccountStore(path)
        self.addCleanup(store.close)
        store.addAccount("alice@example.com", PASSWORD, "Alice")
        network = LocalNetwork(reactor=reactor, store=store)
        endpoints = await network.start()
        session = await signIn(self, "alice@example.com", PASSWORD, endpoints)
        circle = await session.createCircle("Durable")
        await session.logout()
        await network.stop()
        store.close()

        reopened = SQLiteAccountStore(path)
        self.addCleanup(reopened.close)
        network = LocalNetwork(reactor=reactor, store=reopened)
        endpoints = await network.start()
        self.addCleanup(network.stop)
        again = await signIn(self, "alice@example.com", PASSWORD, endpoints)
        self.assertEqual(list(again.circles), [circle.circleId])
        self.assertEqual(again.circles[circle.circleId].name, "Durable")
