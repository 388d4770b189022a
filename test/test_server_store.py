"""
Tests for the account stores: one contract suite run against the in-memory
L{AccountStore} and the SQLite L{SQLiteAccountStore}, then what only the
durable store promises (restart round trips, migrations, the server lock,
changes made by another process), and the password hashes.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from msnp.server import passwords
from msnp.server.accountmodel import ALLOW, BLOCK, PENDING, REVERSE, AddressBookState
from msnp.server.accounts import AccountStore
from msnp.server.interfaces import IAccountStore
from msnp.server.passwords import PasswordHasher, ScryptCost, significantPassword
from msnp.server.sqlschema import MIGRATIONS, DatabaseLocked, StoreError
from msnp.server.sqlstore import SQLiteAccountStore

from test.support import tempDirectory

ALICE = "alice@example.com"
BOB = "bob@example.com"


class StoreContract:
    """
    What every L{IAccountStore} does; subclasses say how to make one.
    """

    def makeStore(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.makeStore()

    def test_interface(self: Any) -> None:
        """
        The store provides L{IAccountStore}.
        """
        self.assertTrue(verifyObject(IAccountStore, self.store))

    def test_addGetRemove(self: Any) -> None:
        """
        An added account is found by any spelling of its address; removed,
        it is gone and off every other account's lists.
        """
        self.store.addAccount(ALICE, "pw", "Alice")
        self.store.addAccount(BOB, "pw")
        self.store.addContact(ALICE, BOB, mutual=True)
        self.assertEqual(self.store.get("Alice@Example.COM").displayName, "Alice")
        self.assertEqual(len(self.store), 2)
        self.assertTrue(self.store.removeAccount(ALICE))
        self.assertFalse(self.store.removeAccount(ALICE))
        self.assertIsNone(self.store.get(ALICE))
        bob = self.store.get(BOB)
        self.assertFalse(bob.onForwardList(ALICE))
        self.assertFalse(bob.hasRole(ALLOW, ALICE))
        self.assertEqual([a.email for a in self.store], [BOB])

    def test_duplicateAndMalformed(self: Any) -> None:
        """
        An existing or malformed address is refused with L{ValueError}.
        """
        self.store.addAccount(ALICE, "pw")
        self.assertRaises(ValueError, self.store.addAccount, ALICE.upper(), "pw")
        self.assertRaises(ValueError, self.store.addAccount, "no-at-sign", "pw")
        self.assertEqual(len(self.store), 1)

    def test_passwordHashedAndChecked(self: Any) -> None:
        """
        The password is kept only as a scrypt hash; the right one (its
        first 16 characters) signs in, a wrong one does not; C{setPassword}
        replaces it.
        """
        account = self.store.addAccount(ALICE, "a-very-long-password-indeed")
        self.assertNotIn("a-very-long", account.passwordHash)
        self.assertTrue(account.passwordHash.startswith("scrypt$"))
        self.assertNotIn("passwordHash", repr(account))
        self.assertIs(self.store.checkPassword(ALICE, "a-very-long-password-indeed"), account)
        self.assertIs(self.store.checkPassword(ALICE, "a-very-long-pass"), account)
        self.assertIsNone(self.store.checkPassword(ALICE, "a-very-long-pas"))
        self.assertIsNone(self.store.checkPassword(BOB, "whatever"))
        self.store.setPassword(ALICE, "new")
        self.assertIsNone(self.store.checkPassword(ALICE, "a-very-long-password-indeed"))
        self.assertIs(self.store.checkPassword(ALICE, "new"), account)
        self.assertRaises(KeyError, self.store.setPassword, BOB, "x")

    def test_lists(self: Any) -> None:
        """
        Adding to the address book records Reverse and Pending on the other
        side; Allow and Block exclude each other; removing undoes Reverse.
        """
        alice = self.store.addAccount(ALICE, "pw")
        bob = self.store.addAccount(BOB, "pw")
        self.store.addToAddressBook(alice, BOB)
        self.assertTrue(bob.hasRole(REVERSE, ALICE) and bob.hasRole(PENDING, ALICE))
        self.store.setRole(bob, BLOCK, ALICE)
        self.store.setRole(bob, ALLOW, ALICE)
        self.assertFalse(bob.hasRole(BLOCK, ALICE))
        self.store.removeFromAddressBook(alice, BOB)
        self.assertFalse(bob.hasRole(REVERSE, ALICE))
        first = self.store.newMembershipId()
        self.assertGreater(self.store.newMembershipId(), first)

    def test_offlineMessages(self: Any) -> None:
        """
        Offline messages are kept per recipient, oldest first, with unique
        ids; deleting takes only the recipient's own.
        """
        self.store.addAccount(ALICE, "pw")
        self.store.addAccount(BOB, "pw")
        first = self.store.storeOfflineMessage(ALICE, BOB, "Bob", b"hello")
        second = self.store.storeOfflineMessage(ALICE.upper(), BOB, "Bob", b"again")
        other = self.store.storeOfflineMessage(BOB, ALICE, "Alice", b"hi")
        self.assertEqual(len({first.messageId, second.messageId, other.messageId}), 3)
        self.assertEqual([m.payload for m in self.store.listOfflineMessages(ALICE)], [b"hello", b"again"])
        self.assertEqual(self.store.listOfflineMessages(ALICE)[0].sender, BOB)
        self.assertNotIn("hello", repr(first))
        self.assertEqual(self.store.deleteOfflineMessages(ALICE, [first.messageId, other.messageId]), 1)
        self.assertEqual([m.payload for m in self.store.listOfflineMessages(ALICE)], [b"again"])
        self.assertEqual([m.payload for m in self.store.listOfflineMessages(BOB)], [b"hi"])
        self.assertEqual(self.store.listOfflineMessages("ghost@example.com"), [])
        self.assertRaises(KeyError, self.store.storeOfflineMessage, "ghost@example.com", BOB, "", b"x")

    def test_loadJSON(self: Any) -> None:
        """
        A JSON accounts document becomes accounts with mutual contacts.
        """
        self.store.loadJSON(
            '[{"email": "alice@example.com", "password": "a", "contacts": ["bob@example.com"]},'
            ' {"email": "bob@example.com", "password": "b"}]'
        )
        self.assertTrue(self.store.get(BOB).onForwardList(ALICE))
        self.assertIsNotNone(self.store.checkPassword(BOB, "b"))


class ThreadedCheckTests(TestCase):
    """
    L{AccountStore.checkPasswordInThread} verifies off the reactor thread.
    """

    def test_checkInThread(self) -> "Deferred[None]":
        """
        It fires with the account for the right password and L{None} for a
        wrong one or an unknown account.
        """
        from twisted.internet import reactor

        store = AccountStore()
        account = store.addAccount(ALICE, "pw")

        async def check() -> None:
            self.assertIs(await store.checkPasswordInThread(ALICE, "pw", reactor), account)
            self.assertIsNone(await store.checkPasswordInThread(ALICE, "wrong", reactor))
            self.assertIsNone(await store.checkPasswordInThread(BOB, "pw", reactor))

        return ensureDeferred(check())


class MemoryStoreTests(StoreContract, SynchronousTestCase):
    """
    The contract, in memory.
    """

    def makeStore(self) -> Any:
        return AccountStore()


class SQLiteStoreTests(StoreContract, SynchronousTestCase):
    """
    The contract on SQLite, plus what survives a restart.
    """

    def makeStore(self) -> Any:
        self.path = os.path.join(tempDirectory(self), "store.sqlite3")
        store = SQLiteAccountStore(self.path)
        self.addCleanup(lambda: self.store.close())
        return store

    def reopen(self) -> Any:
        """
        Close the store and open the file again, as a restart does.
        """
        self.store.close()
        self.store = SQLiteAccountStore(self.path)
        return self.store

    def assertSurvivesRestart(self, email: str) -> None:
        before = self.store.get(email)
        store = self.reopen()
        after = store.get(email)
        self.assertEqual(after, before)
        self.assertEqual(after.addressBook, before.addressBook)

    def test_walMode(self) -> None:
        """
        The database is in WAL mode at the latest schema version.
        """
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], len(MIGRATIONS))

    def test_restartAccounts(self) -> None:
        """
        Added and removed accounts, and passwords, survive a restart.
        """
        self.store.addAccount(ALICE, "pw-a", "Alice")
        self.store.addAccount(BOB, "pw-b")
        self.store.removeAccount(BOB)
        store = self.reopen()
        self.assertEqual([a.email for a in store], [ALICE])
        self.assertIsNotNone(store.checkPassword(ALICE, "pw-a"))

    def test_restartContactsAndBlock(self) -> None:
        """
        Contacts added, removed and blocked through the store and by
        assignment (as the NS and ABCH code do) survive a restart.
        """
        alice = self.store.addAccount(ALICE, "pw")
        bob = self.store.addAccount(BOB, "pw")
        self.store.addAccount("carol@example.com", "pw")
        self.store.addContact(ALICE, BOB, mutual=True)
        self.store.addToAddressBook(alice, "carol@example.com")
        self.store.removeFromAddressBook(alice, "carol@example.com")
        self.store.setRole(bob, BLOCK, ALICE)
        alice.addressBook[BOB].displayName = "Bobby"
        alice.addressBook[BOB].isMessengerUser = False
        bob.memberships[BLOCK][ALICE].displayName = "blocked Alice"
        self.assertSurvivesRestart(ALICE)
        bob = self.store.get(BOB)
        self.assertTrue(bob.hasRole(BLOCK, ALICE))
        self.assertFalse(bob.hasRole(ALLOW, ALICE))
        self.assertEqual(bob.memberships[BLOCK][ALICE].displayName, "blocked Alice")
        alice = self.store.get(ALICE)
        self.assertNotIn("carol@example.com", alice.addressBook)
        self.assertFalse(self.store.get("carol@example.com").hasRole(REVERSE, ALICE))

    def test_restartGroups(self) -> None:
        """
        Groups created, renamed, deleted and contacts' group ids survive.
        """
        alice = self.store.addAccount(ALICE, "pw")
        self.store.addAccount(BOB, "pw")
        self.store.addContact(ALICE, BOB)
        friends = self.store.addGroup(alice, "Friends")
        work = self.store.addGroup(alice, "Work")
        friends.name = "Close friends"
        del alice.groups[work.groupId]
        alice.addressBook[BOB].groupIds.add(friends.groupId)
        alice.addressBook[BOB].groupIds.add(work.groupId)
        alice.addressBook[BOB].groupIds.discard(work.groupId)
        self.assertSurvivesRestart(ALICE)
        alice = self.store.get(ALICE)
        self.assertEqual([g.name for g in alice.groups.values()], ["Close friends"])
        self.assertEqual(alice.addressBook[BOB].groupIds, {friends.groupId})

    def test_restartProfile(self) -> None:
        """
        Display name, personal message, BLP and the ABCH state (its
        annotations and invitations changed in place) survive.
        """
        alice = self.store.addAccount(ALICE, "pw")
        alice.displayName = "Alice in Wonderland"
        alice.personalMessage = "<Data><PSM>hi</PSM></Data>"
        alice.blp = "BL"
        alice.addressBookState = AddressBookState(meContactId="me", created=1.0, lastChange=2.0)
        alice.addressBookState.annotations["MSN.IM.MBEA"] = "1"
        alice.addressBookState.inviteMessages[BOB] = "let me in"
        alice.addressBookState.lastChange = 3.0
        store = self.reopen()
        alice = store.get(ALICE)
        self.assertEqual(
            (alice.displayName, alice.personalMessage, alice.blp),
            ("Alice in Wonderland", "<Data><PSM>hi</PSM></Data>", "BL"),
        )
        state = alice.addressBookState
        self.assertEqual((state.meContactId, state.lastChange), ("me", 3.0))
        self.assertEqual(state.annotations["MSN.IM.MBEA"], "1")
        self.assertEqual(state.inviteMessages, {BOB: "let me in"})
        alice.addressBookState.cacheKey = "changed after reload"
        self.assertEqual(self.reopen().get(ALICE).addressBookState.cacheKey, "changed after reload")

    def test_restartOfflineMessagesAndIds(self) -> None:
        """
        Offline messages survive; neither message ids nor membership ids
        are reused after a restart.
        """
        self.store.addAccount(ALICE, "pw")
        kept = self.store.storeOfflineMessage(ALICE, BOB, "Bob", b"\x00binary\xff")
        gone = self.store.storeOfflineMessage(ALICE, BOB, "Bob", b"gone")
        self.store.deleteOfflineMessages(ALICE, [gone.messageId])
        membershipId = self.store.newMembershipId()
        store = self.reopen()
        self.assertEqual(store.listOfflineMessages(ALICE), [kept])
        self.assertGreater(store.storeOfflineMessage(ALICE, BOB, "Bob", b"new").messageId, gone.messageId)
        self.assertGreater(store.newMembershipId(), membershipId)

    def test_failedImportLeavesNothing(self) -> None:
        """
        An import that fails half-way is rolled back, in memory and on disk.
        """
        self.store.addAccount(ALICE, "pw")
        self.assertRaises(
            ValueError,
            self.store.loadJSON,
            '[{"email": "bob@example.com", "password": "b", "contacts": ["ghost@example.com"]}]',
        )
        self.assertIsNone(self.store.get(BOB))
        self.assertEqual([a.email for a in self.reopen()], [ALICE])

    def test_refusalKeepsCache(self) -> None:
        """
        A refused change that wrote nothing leaves the cached account
        objects (which signed-in sessions hold) in place.
        """
        alice = self.store.addAccount(ALICE, "pw")
        self.assertRaises(ValueError, self.store.addAccount, ALICE, "pw")
        self.assertIs(self.store.get(ALICE), alice)

    def test_otherProcessChanges(self) -> None:
        """
        Accounts another connection adds, re-passwords or removes (the
        admin command) are seen by the running store at its next lookup.
        """
        alice = self.store.addAccount(ALICE, "old")
        self.store.addAccount(BOB, "pw")
        self.store.addContact(ALICE, BOB, mutual=True)
        admin = SQLiteAccountStore(self.path)
        admin.addAccount("carol@example.com", "carol-pw")
        admin.setPassword(ALICE, "new")
        admin.removeAccount(BOB)
        admin.close()
        self.assertIsNotNone(self.store.checkPassword("carol@example.com", "carol-pw"))
        self.assertIs(self.store.checkPassword(ALICE, "new"), alice)
        self.assertIsNone(self.store.get(BOB))
        self.assertNotIn(BOB, alice.addressBook)
        self.assertEqual(self.reopen().get(ALICE).addressBook, {})

    def test_serverLock(self) -> None:
        """
        A second exclusive opener is refused with L{DatabaseLocked}, naming
        the holder; after the first closes, it may open.
        """
        first = SQLiteAccountStore(self.path + ".locked", exclusive=True)
        error = self.assertRaises(DatabaseLocked, SQLiteAccountStore, self.path + ".locked", exclusive=True)
        self.assertIn(f"pid {os.getpid()}", str(error))
        first.close()
        SQLiteAccountStore(self.path + ".locked", exclusive=True).close()

    def test_notADatabase(self) -> None:
        """
        A file that is not SQLite is refused with a one-line L{StoreError}.
        """
        path = os.path.join(tempDirectory(self), "garbage")
        with open(path, "wb") as f:
            f.write(b"this is not a database" * 100)
        error = self.assertRaises(StoreError, SQLiteAccountStore, path)
        self.assertIn(path, str(error))
        self.assertNotIn("\n", str(error))

    def test_unreadableRow(self) -> None:
        """
        A row this code cannot read stops the store with a L{StoreError}
        instead of a traceback from deep inside the load.
        """
        self.store.addAccount(ALICE, "pw")
        self.store.close()
        db = sqlite3.connect(self.path)
        db.execute("UPDATE accounts SET addressBookState = '{not json'")
        db.commit()
        db.close()
        error = self.assertRaises(StoreError, SQLiteAccountStore, self.path)
        self.assertIn("unreadable data", str(error))
        self.store = SQLiteAccountStore(self.path + ".other")

    def test_newerSchema(self) -> None:
        """
        A database from a newer msnp is refused rather than misread.
        """
        self.store.close()
        db = sqlite3.connect(self.path)
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
        db.close()
        error = self.assertRaises(StoreError, SQLiteAccountStore, self.path)
        self.assertIn("newer", str(error))
        self.store = SQLiteAccountStore(self.path + ".other")


class PasswordTests(SynchronousTestCase):
    """
    The hashes: salted, self-describing, 16 significant characters.
    """

    def test_saltedAndVerified(self) -> None:
        """
        Two hashes of one password differ (salt); both verify; a wrong
        password or a malformed hash does not.
        """
        hasher = PasswordHasher(ScryptCost(n=16, r=1, p=1))
        one, two = hasher.hash("secret"), hasher.hash("secret")
        self.assertNotEqual(one, two)
        self.assertTrue(hasher.verify("secret", one) and hasher.verify("secret", two))
        self.assertFalse(hasher.verify("Secret", one))
        for bad in ("", "plain", "scrypt$x$1$1$AA==$AA==", "bcrypt$16$1$1$AA==$AA=="):
            self.assertFalse(hasher.verify("secret", bad))

    def test_costRecorded(self) -> None:
        """
        A hash records its cost, so a hasher of another cost still verifies
        it; production cost is the one used unless a test changes it.
        """
        cheap = PasswordHasher(ScryptCost(n=16, r=1, p=1)).hash("pw")
        self.assertTrue(cheap.startswith("scrypt$16$1$1$"))
        self.assertTrue(PasswordHasher(ScryptCost(n=32, r=2, p=1)).verify("pw", cheap))
        self.assertEqual(passwords.PRODUCTION_COST, ScryptCost(n=2**14, r=8, p=1))

    def test_sixteenCharacters(self) -> None:
        """
        Only the first 16 characters are significant.
        """
        self.assertEqual(significantPassword("0123456789abcdefXYZ"), "0123456789abcdef")
        hasher = PasswordHasher(ScryptCost(n=16, r=1, p=1))
        self.assertTrue(hasher.verify("0123456789abcdef", hasher.hash("0123456789abcdefXYZ")))


class ObservedTests(SynchronousTestCase):
    """
    The observed containers report every mutation, and only mutations.
    """

    def test_dict(self) -> None:
        """
        Setting, deleting, popping, updating, C{setdefault} and clearing
        report each key touched; reads and missing pops report nothing.
        """
        from msnp.server.observed import ObservedDict

        seen: list[str] = []
        d: ObservedDict[str, int] = ObservedDict({"a": 1}.items(), onChange=seen.append)
        d["b"] = 2
        del d["a"]
        d.pop("b")
        d.pop("missing", None)
        d.update(c=3)
        d.setdefault("c", 9)
        d.setdefault("e", 5)
        d |= {"f": 6}
        _ = d.get("c"), list(d.items())
        d.clear()
        self.assertEqual(seen, ["b", "a", "b", "c", "e", "f", "c", "e", "f"])
        self.assertEqual(d, {})

    def test_set(self) -> None:
        """
        Every mutating set method reports; the result is still a set.
        """
        from msnp.server.observed import ObservedSet

        count = [0]

        def changed() -> None:
            count[0] += 1

        s: ObservedSet[str] = ObservedSet({"x"}, onChange=changed)
        s.add("y")
        s.discard("x")
        s |= {"z"}
        s -= {"z"}
        s.update({"w"})
        s.remove("w")
        self.assertEqual(count[0], 6)
        self.assertEqual(s, {"y"})

    def test_valueChangesReportTheirKey(self) -> None:
        """
        Changing an attribute of an observed value reports the key it is
        stored under.
        """
        from msnp.server.accountmodel import Group
        from msnp.server.observed import ObservedDict

        seen: list[str] = []
        d: ObservedDict[str, Group] = ObservedDict(onChange=seen.append)
        group = Group("g1", "Friends")
        d["g1"] = group
        group.name = "Close friends"
        self.assertEqual(seen, ["g1", "g1"])

    def test_suspendReopens(self) -> None:
        """
        A suspended SQLite store opens its connection again on first use
        and loses nothing.
        """
        path = os.path.join(tempDirectory(self), "s.sqlite3")
        store = SQLiteAccountStore(path, exclusive=True)
        self.addCleanup(store.close)
        alice = store.addAccount(ALICE, "pw")
        store.suspend()
        alice.displayName = "after suspend"
        store.close()
        self.assertRaises(StoreError, store.get, ALICE)
        reopened = SQLiteAccountStore(path, exclusive=True)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.get(ALICE).displayName, "after suspend")
