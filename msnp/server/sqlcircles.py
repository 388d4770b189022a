# -*- test-case-name: test.test_server_circles_store -*-
"""
L{SQLiteCircleStore}: the L{msnp.server.circles.ICircleStore} of a
network whose accounts live in a L{msnp.server.sqlstore.SQLiteAccountStore},
in the same database file.

A circle is small and always changed whole (the registry saves the whole
record after every change), so each is one row: its id and the record as
JSON. Each save is one statement, committed before the ABCH call that made
it answers, like every other acknowledged change of the store. The table is
created here if missing (C{CREATE TABLE IF NOT EXISTS}) rather than by a
numbered migration of the account schema, so the two stores can evolve
apart; a database without circles simply gains an empty table.

Conversation rosters and subscriptions are not stored: they belong to
signed-in places, which are gone after a restart. Circle tickets are signed
with a key made at start, so after a restart a client's old ticket fails
C{USR SHA A} (C{911}) until it downloads its address book again.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from twisted.logger import Logger
from zope.interface import implementer

from msnp.circles import CircleRole, CircleState
from msnp.server.circles import CircleMembership, CircleRecord, ICircleStore
from msnp.server.sqlstore import SQLiteAccountStore

log = Logger()

_SCHEMA = "CREATE TABLE IF NOT EXISTS circles (circleId TEXT PRIMARY KEY, record TEXT NOT NULL)"


def recordToJSON(record: CircleRecord) -> str:
    """
    The stored form of a circle.
    """
    return json.dumps(
        {
            "circleId": record.circleId,
            "name": record.name,
            "created": record.created,
            "cid": record.cid,
            "members": [
                {
                    "email": m.email,
                    "role": int(m.role),
                    "state": int(m.state),
                    "contactId": m.contactId,
                    "inviter": m.inviter,
                    "message": m.message,
                    "connected": m.connected,
                }
                for m in record.members.values()
            ],
        }
    )


def recordFromJSON(text: str) -> CircleRecord:
    """
    @raise ValueError: not a stored circle (the row is skipped and logged).
    """
    data: Any = json.loads(text)
    try:
        members = {}
        for m in data["members"]:
            members[str(m["email"])] = CircleMembership(
                email=str(m["email"]),
                role=CircleRole(int(m["role"])),
                state=CircleState(int(m["state"])),
                contactId=str(m["contactId"]),
                inviter=None if m.get("inviter") is None else str(m["inviter"]),
                message=str(m.get("message", "")),
                connected=bool(m.get("connected", True)),
            )
        return CircleRecord(
            circleId=str(data["circleId"]),
            name=str(data["name"]),
            created=float(data["created"]),
            members=members,
            cid=int(data.get("cid", 0)),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a stored circle: {e!r}") from None


@implementer(ICircleStore)
class SQLiteCircleStore:
    """
    Circles in the account store's database.
    """

    def __init__(self, accounts: SQLiteAccountStore) -> None:
        self.accounts = accounts
        self._db().execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"<SQLiteCircleStore {self.accounts.path!r}>"

    def _db(self) -> sqlite3.Connection:
        return self.accounts.database()

    def loadCircles(self) -> Iterable[CircleRecord]:
        records = []
        for circleId, text in self._db().execute("SELECT circleId, record FROM circles ORDER BY rowid"):
            try:
                records.append(recordFromJSON(text))
            except ValueError as e:
                log.warn("Skipping the unreadable stored circle {circle}: {error}", circle=circleId, error=str(e))
        return records

    def saveCircle(self, record: CircleRecord) -> None:
        self._db().execute(
            "INSERT INTO circles (circleId, record) VALUES (?, ?)"
            " ON CONFLICT (circleId) DO UPDATE SET record = excluded.record",
            (record.circleId, recordToJSON(record)),
        )

    def deleteCircle(self, circleId: str) -> None:
        self._db().execute("DELETE FROM circles WHERE circleId = ?", (circleId,))
