# -*- test-case-name: test.test_server_store,test.test_server_roaming_store -*-
"""
The account database file itself: its schema (L{MIGRATIONS}, applied by
L{migrate}), how it is opened (L{openDatabase}: WAL mode, the
C{synchronous} setting, migrations), the one-server-per-file
L{ServerLock}, and the errors (L{StoreError}, L{DatabaseLocked}).

L{msnp.server.sqlstore.SQLiteAccountStore} keeps the accounts in such a
file; this module knows nothing of accounts beyond the tables' names, so
a reader looking for what the file holds, or adding a schema version,
finds it here apart from the store's logic (C{docs/store.md}).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import Optional

from twisted.logger import Logger

log = Logger()


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
