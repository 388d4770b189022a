"""
The roamed profiles kept by the account stores (L{IRoamingProfileStore}
on L{AccountStore} and L{SQLiteAccountStore}): round trips, removal with
the account, a restart of the SQLite store, the migration of a version-1
database, and end to end a roamed message surviving a restart of the
whole local network.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from msnp.client import MSNClient
from msnp.server.accounts import AccountStore
from msnp.server.network import LocalNetwork
from msnp.server.roaming import IRoamingProfileStore, RoamedPicture, RoamedProfile
from msnp.server.sqlschema import MIGRATIONS
from msnp.server.sqlstore import SQLiteAccountStore

from test.support import tempDirectory

ALICE = "alice@example.com"
PROFILE = RoamedProfile(
    displayName="Alice \u2603",
    displayNameModified=10.0,
    personalMessage="",
    personalMessageModified=11.0,
    picture=RoamedPicture(b"\x89PNG\r\n\x1a\ntile", "image/png", "tile", 3),
    modified=12.0,
)


class RoamingStoreContract:
    """
    What every account store does with roamed profiles.
    """

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.makeStore()
        self.store.addAccount(ALICE, "pw", "Alice")

    def test_interface(self: Any) -> None:
        """
        The store provides L{IRoamingProfileStore}, so L{LocalNetwork} keeps
        roamed profiles in it.
        """
        self.assertTrue(verifyObject(IRoamingProfileStore, self.store))
        self.assertIs(LocalNetwork(store=self.store).roamingProfiles, self.store)

    def test_roundTrip(self: Any) -> None:
        """
        Nothing roamed is L{None}; a set profile reads back equal (an
        empty message stays empty, not missing), by any spelling; a second
        set replaces it, without a picture too.
        """
        self.assertIsNone(self.store.getRoamingProfile(ALICE))
        self.store.setRoamingProfile(ALICE, PROFILE)
        self.assertEqual(self.store.getRoamingProfile("Alice@Example.com"), PROFILE)
        replaced = RoamedProfile(displayName=None, personalMessage="hi", modified=13.0)
        self.store.setRoamingProfile(ALICE, replaced)
        self.assertEqual(self.store.getRoamingProfile(ALICE), replaced)

    def test_unknownAccountAndRemoval(self: Any) -> None:
        """
        Only an existing account has a roamed profile; it goes with it.
        """
        self.assertRaises(KeyError, self.store.setRoamingProfile, "nobody@example.com", PROFILE)
        self.store.setRoamingProfile(ALICE, PROFILE)
        self.store.removeAccount(ALICE)
        self.store.addAccount(ALICE, "pw")
        self.assertIsNone(self.store.getRoamingProfile(ALICE))


class MemoryRoamingStoreTests(RoamingStoreContract, SynchronousTestCase):
    def makeStore(self) -> Any:
        return AccountStore()


class SQLiteRoamingStoreTests(RoamingStoreContract, SynchronousTestCase):
    def makeStore(self) -> Any:
        self.path = os.path.join(tempDirectory(self), "store.sqlite3")
        self.addCleanup(lambda: self.store.close())
        return SQLiteAccountStore(self.path)

    def test_survivesRestart(self) -> None:
        """
        A roamed profile is on disk: a reopened store reads it.
        """
        self.store.setRoamingProfile(ALICE, PROFILE)
        self.store.close()
        self.store = SQLiteAccountStore(self.path)
        self.assertEqual(self.store.getRoamingProfile(ALICE), PROFILE)

    def test_migratesVersionOne(self) -> None:
        """
        A database of schema version 1 (before roamed profiles) keeps its
        accounts and gains the table.
        """
        self.store.close()
        path = os.path.join(tempDirectory(self), "old.sqlite3")
        db = sqlite3.connect(path, isolation_level=None)
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version=1")
        db.close()
        self.store = SQLiteAccountStore(path)
        self.store.addAccount(ALICE, "pw")
        self.store.setRoamingProfile(ALICE, PROFILE)
        self.assertEqual(self.store.getRoamingProfile(ALICE), PROFILE)
        self.assertEqual(len(MIGRATIONS), 2)


class DurableRoamingEndToEndTests(TestCase):
    """
    The local network on a SQLite store, restarted between two places.
    """

    timeout = 60

    async def startNetwork(self, path: str) -> tuple[Any, Any]:
        store = SQLiteAccountStore(path)
        network = LocalNetwork(reactor=reactor, store=store)
        endpoints = await network.start()

        async def stop() -> None:
            await network.stop()
            store.close()

        return endpoints, stop

    async def test_roamedMessageSurvivesRestart(self) -> None:
        """
        alice sets a message at place 1; after the whole network restarts
        on the same database, place 2 starts with it.
        """
        path = os.path.join(tempDirectory(self), "network.sqlite3")
        store = SQLiteAccountStore(path)
        store.addAccount(ALICE, "pw", "Alice")
        store.close()

        endpoints, stop = await self.startNetwork(path)
        try:
            one = await MSNClient(ALICE, "pw", endpoints, reactor=reactor).login()
            await one.setPersonalMessage("kept on disk")
            await one.logout()
        finally:
            await stop()

        endpoints, stop = await self.startNetwork(path)
        self.addCleanup(stop)
        two = await MSNClient(ALICE, "pw", endpoints, reactor=reactor).login()
        self.addCleanup(two.logout)
        self.assertEqual(two.personalMessage, "kept on disk")
