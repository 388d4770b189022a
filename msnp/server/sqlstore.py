# -*- test-case-name: test.test_server_store -*-
"""
L{SQLiteAccountStore}: the account store kept in a SQLite database.

It is the in-memory L{AccountStore} (same code, same behaviour) with every
change written through to SQLite and committed before the call that makes
it returns: store methods commit themselves, and changes the protocol code
makes by assigning to the account model reach L{IAccountObserver} methods
here, which commit them. The server replies only after such a call
returned, so nothing it acknowledged is lost if the process is killed
(C{docs/store.md} says why a synchronous write-through on a WAL database
was chosen over a thread, with the figures of C{bench/bench_store.py}).

Reads are served from memory. Another process (the admin command,
C{python -m msnp.server accounts}) may add, remove or re-password accounts
on the same file while a server runs; the server notices through SQLite's
C{PRAGMA data_version} on its next account lookup (cheap: no I/O) and
loads the difference, so a new account can sign in at once.

SSO tickets are not kept: after a restart, clients sign in again.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from msnp.server.accountmodel import (
    ROLES,
    Account,
    AddressBookEntry,
    AddressBookState,
    Group,
    Membership,
    normalizeEmail,
)
from msnp.server.accounts import AccountStore, OfflineMessage
from msnp.server.interfaces import IAccountObserver
from msnp.server.passwords import PasswordHasher
from msnp.server.roaming import RoamedPicture, RoamedProfile
# The errors stay public names of this module too (see __all__).
from msnp.server.sqlschema import DatabaseLocked as DatabaseLocked
from msnp.server.sqlschema import ServerLock, StoreError, openDatabase
from msnp.server.tickets import DEFAULT_TICKET_LIFETIME

log = Logger()

#: The file name C{twistd msnp-server} uses without C{--database}.
DEFAULT_DATABASE = "msnp-server.sqlite3"


def _stateToJSON(state: Optional[AddressBookState]) -> Optional[str]:
    if state is None:
        return None
    return json.dumps(
        {
            "meContactId": state.meContactId,
            "created": state.created,
            "lastChange": state.lastChange,
            "annotations": dict(state.annotations),
            "inviteMessages": dict(state.inviteMessages),
            "cacheKey": state.cacheKey,
            "sessionId": state.sessionId,
        }
    )


def _stateFromJSON(text: Optional[str]) -> Optional[AddressBookState]:
    if text is None:
        return None
    data = json.loads(text)
    return AddressBookState(**data)


@implementer(IAccountObserver)
class SQLiteAccountStore(AccountStore):
    """
    The account store in a SQLite file (see the module docstring).
    """

    def __init__(
        self,
        path: str,
        ticketLifetime: float = DEFAULT_TICKET_LIFETIME,
        clock: Optional[IReactorTime] = None,
        passwordHasher: Optional[PasswordHasher] = None,
        exclusive: bool = False,
        synchronous: str = "FULL",
    ) -> None:
        """
        @param path: the database file (created if missing).
        @param synchronous: see L{openDatabase}.
        @param exclusive: take the L{ServerLock} (a server does; the admin
            command does not).

        @raise StoreError: the database cannot be used.
        @raise DatabaseLocked: with C{exclusive}, another server has it.
        """
        super().__init__(ticketLifetime=ticketLifetime, clock=clock, passwordHasher=passwordHasher)
        self.path = path
        self._synchronous = synchronous
        self._connection: Optional[sqlite3.Connection] = None
        self._closed = False
        self._lock: Optional[ServerLock] = None
        if exclusive:
            self._lock = ServerLock(path)
            self._lock.acquire()
        try:
            self._connection = openDatabase(path, synchronous)
        except BaseException:
            self._releaseLock()
            raise
        self._inTransaction = False
        self._quiet = False
        self._dataVersion = -1
        try:
            self._reload()
        except (sqlite3.Error, ValueError, TypeError) as e:
            self.close()
            raise StoreError(f"the database {path!r} holds unreadable data: {e}") from None

    @property
    def _db(self) -> sqlite3.Connection:
        """
        The connection, opened again on first use after L{suspend}.
        """
        if self._connection is None:
            if self._closed:
                raise StoreError(f"the store on {self.path!r} is closed")
            self._connection = openDatabase(self.path, self._synchronous)
            if self._lock is not None:
                self._lock.recordPid()
        return self._connection

    def database(self) -> sqlite3.Connection:
        """
        The open connection, for stores that keep their own tables in the
        same file (L{msnp.server.sqlcircles.SQLiteCircleStore}).
        """
        return self._db

    def suspend(self) -> None:
        """
        Close the connection but keep the cache and the server lock; the
        next use opens it again. C{twistd} calls options before it forks
        into the background, and a SQLite connection must not cross a
        fork, so the options suspend the store they opened.
        """
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """
        Close the database (everything is committed already) and release
        the server lock.
        """
        self.suspend()
        self._closed = True
        self._releaseLock()

    def _releaseLock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """
        Group the writes of one store operation into one commit. If it
        fails after writing, the database is rolled back and the memory
        reloaded from it, so the two never disagree (a failure before any
        write, such as a refused address, leaves the cache alone).
        """
        if self._inTransaction:
            yield
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        self._inTransaction = True
        written = db.total_changes
        try:
            yield
        except BaseException:
            self._inTransaction = False
            db.execute("ROLLBACK")
            if db.total_changes != written:
                self._reload()
            raise
        self._inTransaction = False
        self._db.execute("COMMIT")

    # -- loading ----------------------------------------------------------------

    def _reload(self) -> None:
        """
        Build the whole cache from the database.
        """
        self._accounts = {}
        for row in self._db.execute("SELECT email FROM accounts ORDER BY rowid"):
            self._loadAccount(row[0])
        self._nextMembershipId = int(
            self._db.execute("SELECT value FROM meta WHERE key = 'nextMembershipId'").fetchone()[0]
        )
        self._dataVersion = self._currentDataVersion()

    def _loadAccount(self, email: str) -> Optional[Account]:
        db = self._db
        row = db.execute(
            "SELECT passwordHash, displayName, personalMessage, blp, cid, puid, addressBookState"
            " FROM accounts WHERE email = ?",
            (email,),
        ).fetchone()
        if row is None:
            return None
        account = Account(
            email=email,
            passwordHash=row[0],
            displayName=row[1],
            cid=row[4],
            puid=row[5],
            personalMessage=row[2],
            blp=row[3],
            addressBookState=_stateFromJSON(row[6]),
        )
        for contact, contactId, name, groupIds, messenger in db.execute(
            "SELECT email, contactId, displayName, groupIds, isMessengerUser FROM contacts"
            " WHERE owner = ? ORDER BY rowid",
            (email,),
        ):
            account.addressBook[contact] = AddressBookEntry(
                contact, contactId, name, set(json.loads(groupIds)), bool(messenger)
            )
        for groupId, name in db.execute(
            "SELECT groupId, name FROM groups WHERE owner = ? ORDER BY rowid", (email,)
        ):
            account.groups[groupId] = Group(groupId, name)
        for role, member, membershipId, name in db.execute(
            "SELECT role, email, membershipId, displayName FROM memberships"
            " WHERE owner = ? ORDER BY rowid",
            (email,),
        ):
            if role in account.memberships:
                account.memberships[role][member] = Membership(member, membershipId, name)
        account._observer = self
        self._accounts[email] = account
        return account

    def _currentDataVersion(self) -> int:
        version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        return version

    def _syncFromDisk(self) -> None:
        """
        Take in what another process changed: accounts added, removed or
        given a new password (what the admin command does).
        """
        version = self._currentDataVersion()
        if version == self._dataVersion:
            return
        self._dataVersion = version
        onDisk = dict(self._db.execute("SELECT email, passwordHash FROM accounts"))
        self._quiet = True
        try:
            for email in [e for e in self._accounts if e not in onDisk]:
                log.info("Account {email} was removed from the database", email=email)
                AccountStore.removeAccount(self, email)
            for email, passwordHash in onDisk.items():
                account = self._accounts.get(email)
                if account is None:
                    log.info("Account {email} was added to the database", email=email)
                    self._loadAccount(email)
                elif account.passwordHash != passwordHash:
                    object.__setattr__(account, "passwordHash", passwordHash)
        finally:
            self._quiet = False

    # -- reads that notice other processes -----------------------------------

    def get(self, email: str) -> Optional[Account]:
        self._syncFromDisk()
        return self._accounts.get(normalizeEmail(email))

    def __iter__(self) -> Iterator[Account]:
        self._syncFromDisk()
        return super().__iter__()

    def __len__(self) -> int:
        self._syncFromDisk()
        return super().__len__()

    # -- operations made atomic ----------------------------------------------

    def addAccount(
        self, email: str, password: str, displayName: Optional[str] = None, network: int = 1
    ) -> Account:
        # (network 32 is kept in memory only: the schema has no column for
        # it, as such accounts are a test device; docs/offline.md.)
        self._syncFromDisk()
        with self._transaction():
            return super().addAccount(email, password, displayName, network=network)

    def removeAccount(self, email: str) -> bool:
        with self._transaction():
            return super().removeAccount(email)

    def addToAddressBook(self, owner: Account, email: str, displayName: Optional[str] = None) -> AddressBookEntry:
        with self._transaction():
            return super().addToAddressBook(owner, email, displayName)

    def removeFromAddressBook(self, owner: Account, email: str) -> Optional[AddressBookEntry]:
        with self._transaction():
            return super().removeFromAddressBook(owner, email)

    def setRole(self, owner: Account, role: str, email: str, displayName: str = "") -> Membership:
        with self._transaction():
            return super().setRole(owner, role, email, displayName)

    def addContact(self, owner: str, contact: str, mutual: bool = False) -> None:
        with self._transaction():
            super().addContact(owner, contact, mutual)

    def loadJSON(self, text: str) -> None:
        with self._transaction():
            super().loadJSON(text)

    # -- hooks ----------------------------------------------------------------

    def _adopt(self, account: Account) -> None:
        self._db.execute(
            "INSERT INTO accounts (email, passwordHash, displayName, personalMessage, blp, cid, puid,"
            " addressBookState) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                account.email,
                account.passwordHash,
                account.displayName,
                account.personalMessage,
                account.blp,
                account.cid,
                account.puid,
                _stateToJSON(account.addressBookState),
            ),
        )
        account._observer = self

    def _forget(self, account: Account) -> None:
        account._observer = None
        if self._quiet:
            return
        for table, column in (
            ("accounts", "email"),
            ("contacts", "owner"),
            ("groups", "owner"),
            ("memberships", "owner"),
            ("offlineMessages", "recipient"),
            ("roamingProfiles", "email"),
        ):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (account.email,))

    def _membershipIdIssued(self, membershipId: int) -> None:
        self._db.execute(
            "UPDATE meta SET value = ? WHERE key = 'nextMembershipId'", (str(membershipId),)
        )

    # -- IAccountObserver -------------------------------------------------------

    def accountChanged(self, account: Account) -> None:
        if self._quiet:
            return
        self._db.execute(
            "UPDATE accounts SET passwordHash = ?, displayName = ?, personalMessage = ?, blp = ?"
            " WHERE email = ?",
            (account.passwordHash, account.displayName, account.personalMessage, account.blp, account.email),
        )

    def stateChanged(self, account: Account) -> None:
        if self._quiet:
            return
        self._db.execute(
            "UPDATE accounts SET addressBookState = ? WHERE email = ?",
            (_stateToJSON(account.addressBookState), account.email),
        )

    def entryChanged(self, account: Account, email: str) -> None:
        if self._quiet:
            return
        entry = account.addressBook.get(email)
        if entry is None:
            self._db.execute("DELETE FROM contacts WHERE owner = ? AND email = ?", (account.email, email))
            return
        self._db.execute(
            "INSERT INTO contacts (owner, email, contactId, displayName, groupIds, isMessengerUser)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, email) DO UPDATE SET"
            " contactId = excluded.contactId, displayName = excluded.displayName,"
            " groupIds = excluded.groupIds, isMessengerUser = excluded.isMessengerUser",
            (
                account.email,
                email,
                entry.contactId,
                entry.displayName,
                json.dumps(sorted(entry.groupIds)),
                int(entry.isMessengerUser),
            ),
        )

    def groupChanged(self, account: Account, groupId: str) -> None:
        if self._quiet:
            return
        group = account.groups.get(groupId)
        if group is None:
            self._db.execute("DELETE FROM groups WHERE owner = ? AND groupId = ?", (account.email, groupId))
            return
        self._db.execute(
            "INSERT INTO groups (owner, groupId, name) VALUES (?, ?, ?)"
            " ON CONFLICT (owner, groupId) DO UPDATE SET name = excluded.name",
            (account.email, groupId, group.name),
        )

    def membershipChanged(self, account: Account, role: str, email: str) -> None:
        if self._quiet:
            return
        membership = account.memberships[role].get(email)
        if membership is None:
            self._db.execute(
                "DELETE FROM memberships WHERE owner = ? AND role = ? AND email = ?",
                (account.email, role, email),
            )
            return
        self._db.execute(
            "INSERT INTO memberships (owner, role, email, membershipId, displayName)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, role, email) DO UPDATE SET"
            " membershipId = excluded.membershipId, displayName = excluded.displayName",
            (account.email, role, email, membership.membershipId, membership.displayName),
        )

    # -- roamed profiles ------------------------------------------------------------

    def getRoamingProfile(self, email: str) -> Optional[RoamedProfile]:
        row = self._db.execute(
            "SELECT displayName, displayNameModified, personalMessage, personalMessageModified, modified,"
            " pictureData, pictureMimeType, pictureName, pictureVersion FROM roamingProfiles WHERE email = ?",
            (normalizeEmail(email),),
        ).fetchone()
        if row is None:
            return None
        picture = None
        if row[5] is not None:
            picture = RoamedPicture(bytes(row[5]), row[6] or "application/octet-stream", row[7] or "tile", row[8] or 1)
        return RoamedProfile(row[0], row[1], row[2], row[3], picture, row[4])

    def setRoamingProfile(self, email: str, profile: RoamedProfile) -> None:
        account = self._require(email)
        picture = profile.picture
        self._db.execute(
            "INSERT INTO roamingProfiles (email, displayName, displayNameModified, personalMessage,"
            " personalMessageModified, modified, pictureData, pictureMimeType, pictureName, pictureVersion)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET"
            " displayName = excluded.displayName, displayNameModified = excluded.displayNameModified,"
            " personalMessage = excluded.personalMessage,"
            " personalMessageModified = excluded.personalMessageModified, modified = excluded.modified,"
            " pictureData = excluded.pictureData, pictureMimeType = excluded.pictureMimeType,"
            " pictureName = excluded.pictureName, pictureVersion = excluded.pictureVersion",
            (
                account.email, profile.displayName, profile.displayNameModified, profile.personalMessage,
                profile.personalMessageModified, profile.modified,
                picture.data if picture is not None else None,
                picture.mimeType if picture is not None else None,
                picture.name if picture is not None else None,
                picture.version if picture is not None else None,
            ),
        )

    # -- offline messages -------------------------------------------------------

    def storeOfflineMessage(
        self, recipient: str, sender: str, senderName: str, payload: bytes
    ) -> OfflineMessage:
        account = self._require(recipient)
        received = self.now()
        cursor = self._db.execute(
            "INSERT INTO offlineMessages (recipient, sender, senderName, received, payload)"
            " VALUES (?, ?, ?, ?, ?)",
            (account.email, normalizeEmail(sender), senderName, received, payload),
        )
        assert cursor.lastrowid is not None
        return OfflineMessage(
            cursor.lastrowid, account.email, normalizeEmail(sender), senderName, received, payload
        )

    def listOfflineMessages(self, recipient: str) -> list[OfflineMessage]:
        key = normalizeEmail(recipient)
        return [
            OfflineMessage(row[0], key, row[1], row[2], row[3], bytes(row[4]))
            for row in self._db.execute(
                "SELECT messageId, sender, senderName, received, payload FROM offlineMessages"
                " WHERE recipient = ? ORDER BY messageId",
                (key,),
            )
        ]

    def deleteOfflineMessages(self, recipient: str, messageIds: Any) -> int:
        key = normalizeEmail(recipient)
        deleted = 0
        with self._transaction():
            for messageId in set(messageIds):
                deleted += self._db.execute(
                    "DELETE FROM offlineMessages WHERE recipient = ? AND messageId = ?",
                    (key, int(messageId)),
                ).rowcount
        return deleted


__all__ = ["DEFAULT_DATABASE", "DatabaseLocked", "SQLiteAccountStore", "StoreError", "ROLES"]
