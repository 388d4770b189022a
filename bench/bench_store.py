"""
What durability costs the reactor: the account store's write-through on
SQLite against the in-memory store doing the same work, in the same run.

Measured (median of C{--repeat} rounds, each of C{--changes} changes):

- one acknowledged change, as the NS and ABCH code make them (display
  name assignment; contact added, which also writes the other side's
  Reverse/Pending; contact blocked; group added and the contact moved into
  it), in memory (the baseline), on SQLite with C{synchronous=FULL} (the
  default: committed and fsynced before the reply), and with
  C{synchronous=NORMAL} (durable against a process kill, not a power cut);
- an account lookup (C{get}), which on SQLite also checks C{PRAGMA
  data_version} for the admin command's changes;
- loading a database of C{--accounts} accounts with C{--contacts} contacts
  each at start-up;
- one scrypt hash at the production cost (what a sign-in's password check
  costs the reactor) and at the test cost.

Every figure is printed with its ratio to the in-memory baseline.
The database is a temporary file in C{--dir} (default: the current
directory, so fsync reaches a real disk rather than a tmpfs).

Usage: C{python bench/bench_store.py [--changes 200] [--repeat 5] [--accounts 200] [--contacts 50] [--dir .]}
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from msnp.server import passwords  # noqa: E402
from msnp.server.accountmodel import BLOCK  # noqa: E402
from msnp.server.accounts import AccountStore  # noqa: E402
from msnp.server.passwords import PRODUCTION_COST, TEST_COST, PasswordHasher  # noqa: E402
from msnp.server.sqlstore import SQLiteAccountStore  # noqa: E402

CHEAP = PasswordHasher(TEST_COST)


def populate(store: Any, count: int) -> list[str]:
    emails = [f"user{i}@example.com" for i in range(count)]
    for email in emails:
        store.addAccount(email, "pw")
    return emails


def changes(store: Any, emails: list[str], count: int) -> float:
    """
    C{count} changes by the owner C{emails[0]}; seconds per change.
    """
    owner = store.get(emails[0])
    others = emails[1:]
    start = time.perf_counter()
    done = 0
    i = 0
    while done < count:
        other = others[i % len(others)]
        kind = i % 4
        if kind == 0:
            owner.displayName = f"name {i}"
        elif kind == 1:
            store.addToAddressBook(owner, other)
        elif kind == 2:
            store.setRole(owner, BLOCK, other)
        else:
            group = store.addGroup(owner, f"group {i}")
            entry = owner.addressBook.get(others[(i - 2) % len(others)])
            if entry is not None:
                entry.groupIds.add(group.groupId)
        done += 1
        i += 1
    return (time.perf_counter() - start) / count


def lookups(store: Any, emails: list[str], count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        store.get(emails[i % len(emails)])
    return (time.perf_counter() - start) / count


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()
    passwords.defaultCost = TEST_COST
    directory = tempfile.mkdtemp(prefix="bench-store-", dir=args.dir)
    try:
        run(args, directory)
    finally:
        shutil.rmtree(directory, True)


def run(args: Any, directory: str) -> None:
    counter = iter(range(10**6))

    def freshSQLite(synchronous: str) -> Any:
        return SQLiteAccountStore(
            os.path.join(directory, f"db{next(counter)}.sqlite3"), passwordHasher=CHEAP, synchronous=synchronous
        )

    def changeRound(make: Callable[[], Any]) -> Callable[[], float]:
        def round() -> float:
            store = make()
            emails = populate(store, 50)
            result = changes(store, emails, args.changes)
            if hasattr(store, "close"):
                store.close()
            return result

        return round

    memory = median(changeRound(lambda: AccountStore(passwordHasher=CHEAP)), args.repeat)
    full = median(changeRound(lambda: freshSQLite("FULL")), args.repeat)
    normal = median(changeRound(lambda: freshSQLite("NORMAL")), args.repeat)

    print(f"store bench: {args.changes} changes x {args.repeat} rounds, database in {os.path.abspath(args.dir)}")
    print("one acknowledged change (median per change):")
    print(f"  in memory (baseline)        {memory * 1e6:10.1f} us   1.0x")
    print(f"  SQLite synchronous=FULL     {full * 1e6:10.1f} us   {full / memory:8.1f}x  (the default)")
    print(f"  SQLite synchronous=NORMAL   {normal * 1e6:10.1f} us   {normal / memory:8.1f}x")

    memoryStore = AccountStore(passwordHasher=CHEAP)
    sqliteStore = freshSQLite("FULL")
    memoryEmails = populate(memoryStore, 100)
    sqliteEmails = populate(sqliteStore, 100)
    memoryGet = median(lambda: lookups(memoryStore, memoryEmails, 20000), args.repeat)
    sqliteGet = median(lambda: lookups(sqliteStore, sqliteEmails, 20000), args.repeat)
    print("account lookup (get):")
    print(f"  in memory (baseline)        {memoryGet * 1e6:10.2f} us   1.0x")
    print(f"  SQLite (+ data_version)     {sqliteGet * 1e6:10.2f} us   {sqliteGet / memoryGet:8.1f}x")
    sqliteStore.close()

    path = os.path.join(directory, "big.sqlite3")
    big = SQLiteAccountStore(path, passwordHasher=CHEAP)
    emails = populate(big, args.accounts)
    with big._transaction():
        for i, email in enumerate(emails):
            owner = big.get(email)
            for j in range(1, args.contacts + 1):
                big.addToAddressBook(owner, emails[(i + j) % len(emails)])
    big.close()

    def load() -> float:
        start = time.perf_counter()
        SQLiteAccountStore(path, passwordHasher=CHEAP).close()
        return time.perf_counter() - start

    loadTime = median(load, args.repeat)
    print(f"start-up load of {args.accounts} accounts x {args.contacts} contacts: {loadTime * 1e3:.1f} ms")

    def hashTime(cost: Any) -> Callable[[], float]:
        hasher = PasswordHasher(cost)

        def once() -> float:
            start = time.perf_counter()
            hasher.hash("correct horse")
            return time.perf_counter() - start

        return once

    production = median(hashTime(PRODUCTION_COST), args.repeat)
    cheap = median(hashTime(TEST_COST), args.repeat)
    print("one scrypt hash (each sign-in verifies one):")
    print(f"  test cost n={TEST_COST.n} r={TEST_COST.r}       {cheap * 1e3:10.3f} ms   1.0x")
    print(
        f"  production n={PRODUCTION_COST.n} r={PRODUCTION_COST.r}  {production * 1e3:10.3f} ms"
        f"   {production / cheap:8.0f}x"
    )


if __name__ == "__main__":
    main()
