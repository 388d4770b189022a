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

import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from msnp.server.accounts import (
    DEFAULT_TICKET_LIFETIME,
    ROLES,
    Account,
    AccountStore,
    AddressBookEntry,
    AddressBookState,
    Group,
    Membership,
    OfflineMessage,
    normalizeEmail,
)
from msnp.server.interfaces import IAccountObserver
from msnp.server.passwords import PasswordHasher
from msnp.server.roaming import RoamedPicture, RoamedProfile

log = Logger()

#: The file name C{twistd msnp-server} uses without C{--database}.
DEFAULT_DATABASE = "msnp-server.sqlite3"


class StoreError(Exception):
    """
    The database cannot be used; the message says why in one line.
    """


class DatabaseLocked(StoreError):
    """
    Another server process has the database open.
    """


#: The schema, one tuple of statements per version. C{PRAGMA user_version}
#: records how many have been applied; new versions are only ever appended.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE accounts ("
        " email TEXT PRIMARY KEY, passwordHash TEXT NOT NULL, displayName TEXT NOT NULL,"
        " personalMessage TEXT NOT NULL DEFAULT '', blp TEXT NOT NULL DEFAULT 'AL',"
        " cid INTEGER NOT NULL, puid INTEGER NOT NULL, addressBookState TEXT)",
        "CREATE TABLE contacts ("
        " owner TEXT NOT NULL, email TEXT NOT NULL, contactId TEXT NOT NULL,"
        " displayName TEXT NOT NULL, groupIds TEXT NOT NULL, isMessengerUser INTEGER NOT NULL,"
        " PRIMARY KEY (owner, email))",
        "CREATE TABLE groups ("
        " owner TEXT NOT NULL, groupId TEXT NOT NULL, name TEXT NOT NULL,"
        " PRIMARY KEY (owner, groupId))",
        "CREATE TABLE memberships ("
        " owner TEXT NOT NULL, role TEXT NOT NULL, email TEXT NOT NULL,"
        " membershipId INTEGER NOT NULL, displayName TEXT NOT NULL,"
        " PRIMARY KEY (owner, role, email))",
        "CREATE TABLE offlineMessages ("
        " messageId INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL,"
        " sender TEXT NOT NULL, senderName TEXT NOT NULL, received REAL NOT NULL,"
        " payload BLOB NOT NULL)",
        "CREATE INDEX offlineByRecipient ON offlineMessages (recipient, messageId)",
        "INSERT INTO meta (key, value) VALUES ('nextMembershipId', '100')",
    ),
    (
        # The roamed profile of the storage service (issue #17): NULL texts
        # were never roamed; a NULL picture is no picture.
        "CREATE TABLE roamingProfiles ("
        " email TEXT PRIMARY KEY, displayName TEXT, displayNameModified REAL NOT NULL,"
        " personalMessage TEXT, personalMessageModified REAL NOT NULL, modified REAL NOT NULL,"
        " pictureData BLOB, pictureMimeType TEXT, pictureName TEXT, pictureVersion INTEGER)",
    ),
)


def openDatabase(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """
    Open (creating if needed) the database at C{path}, in WAL mode, and
    bring its schema up to date.

    @param synchronous: SQLite's C{synchronous} setting: C{"FULL"} (the
        default) fsyncs every commit, so an acknowledged change survives a
        power cut too; C{"NORMAL"} survives a killed process but not a
        power cut, at a fraction of the cost (C{docs/store.md}).

    @raise StoreError: the file is not a usable database, or its schema is
        newer than this code.
    """
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the database {path!r}: {e}") from None
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"the database {path!r} cannot use WAL mode (it is in {mode!r} mode)")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        db.execute(f"PRAGMA synchronous={synchronous}")
        migrate(db, path)
    except sqlite3.Error as e:
        db.close()
        raise StoreError(f"cannot use the database {path!r}: {e}") from None
    except StoreError:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, path: str = "") -> int:
    """
    Apply the migrations C{db} lacks, each in its own transaction; the
    schema version reached.
    """
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the database {path!r} has schema version {version}, newer than this msnp"
            f" understands ({len(MIGRATIONS)})"
        )
    for number, statements in enumerate(MIGRATIONS[version:], version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("Database {path} migrated to schema version {version}", path=path, version=number)
    return len(MIGRATIONS)


class ServerLock:
    """
    An exclusive C{flock} on C{PATH-lock}: one server process per database.

    The admin command does not take it; SQLite itself serialises its writes
    with the server's.
    """

    def __init__(self, databasePath: str) -> None:
        self.path = databasePath + "-lock"
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """
        @raise DatabaseLocked: another process holds the lock.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseLocked(
                f"the database {self.path[:-5]!r} is in use by another msnp-server (pid {holder})"
            ) from None
        self._fd = fd
        self.recordPid()

    def recordPid(self) -> None:
        """
        Write this process's pid into the lock file (again after twistd
        forked into the background, so the error names the live process).
        """
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, str(os.getpid()).encode("ascii"), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
