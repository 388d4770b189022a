"""
The durable server as deployed: a real C{twistd msnp-server} process on a
SQLite database, changed by a real client over loopback sockets.

- Killed with SIGKILL in the middle of a run of changes, then started
  again: every change the server had acknowledged is there, and the
  database passes SQLite's integrity check.
- Every kind of change (contact added, removed, blocked, a group and a
  contact in it, display name, personal message) survives a clean restart,
  as the client sees it when it signs in again.
- A second server on the same database is refused with one line and a
  non-zero exit; shutdown tells a signed-in client C{OUT SSD} (both inside
  the round-trip test, to start fewer processes).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from msnp.client import MSNClient
from msnp.endpoints import Endpoints
from msnp.server.accountmodel import BLOCK
from msnp.server.sqlstore import SQLiteAccountStore

from test.support import childEnvironment, freePorts, tempDirectory

ALICE = "alice@example.com"
PASSWORD = "alice-pw"
CONTACTS = [f"friend{i}@example.com" for i in range(12)]


def readFile(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class DurableServerTests(TestCase):
    """
    A C{twistd msnp-server} child on a database file in a temp directory.
    """

    timeout = 60

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.directory = tempDirectory(self)
        self.database = os.path.join(self.directory, "server.sqlite3")
        # Accounts made here hash with the suite's cheap scrypt cost; a
        # hash records its cost, so the child verifies them as cheaply.
        store = SQLiteAccountStore(self.database)
        store.addAccount(ALICE, PASSWORD, "Alice")
        for email in CONTACTS:
            store.addAccount(email, "pw")
        store.close()
        self.dsPort, self.nsPort, self.sbPort, self.httpPort = freePorts(4)
        base = f"http://127.0.0.1:{self.httpPort}"
        self.endpoints = Endpoints(
            dispatch=f"tcp:127.0.0.1:{self.dsPort}",
            sso=f"{base}/RST2.srf",
            sharing=f"{base}/abservice/SharingService.asmx",
            addressBook=f"{base}/abservice/abservice.asmx",
        )
        self.logs: list[str] = []

    def serverArgs(self, log: str) -> list[str]:
        return [
            sys.executable, "-m", "twisted", "--log-format=text", f"--log-file={log}",
            "msnp-server", "--database", self.database,
            "--port", str(self.dsPort), "--ns-port", str(self.nsPort), "--sb-port", str(self.sbPort),
            "--http-port", str(self.httpPort),
        ]

    async def startServer(self) -> "subprocess.Popen[bytes]":
        log = os.path.join(self.directory, f"server-{len(self.logs)}.log")
        self.logs.append(log)
        process = subprocess.Popen(
            self.serverArgs(log), cwd=self.directory, env=childEnvironment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.addCleanup(self.kill, process)
        await self.waitUntil(lambda: "msnp-server ready" in readFile(log), 20, "the server to start", process)
        return process

    async def startDaemon(self) -> int:
        """
        Start the server as twistd does by default: forked into the
        background (its store is reopened after the fork). Returns its pid.
        """
        log = os.path.join(self.directory, f"daemon-{len(self.logs)}.log")
        pidfile = os.path.join(self.directory, "daemon.pid")
        self.logs.append(log)
        args = self.serverArgs(log)
        twistd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                  f"--pidfile={pidfile}", f"--logfile={log}", *args[args.index("msnp-server"):]]
        subprocess.run(twistd, cwd=self.directory, env=childEnvironment(), timeout=30, check=True)
        await self.waitUntil(lambda: "msnp-server ready" in readFile(log), 20, "the daemon to start")
        pid = int(readFile(pidfile))
        self.addCleanup(self.stopDaemon, pid)
        self.assertEqual(readFile(self.database + "-lock").strip(), str(pid))
        return pid

    def stopDaemon(self, pid: int) -> "Deferred[None]":
        async def stop() -> None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                return

            def gone() -> bool:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                return False

            await self.waitUntil(gone, 10, "the daemon to exit")

        return ensureDeferred(stop())

    def kill(self, process: "subprocess.Popen[bytes]") -> None:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    async def waitUntil(
        self, condition: Callable[[], bool], timeout: float, what: str,
        process: "Optional[subprocess.Popen[bytes]]" = None,
    ) -> None:
        deadline = self.reactor.seconds() + timeout
        while not condition():
            if process is not None and process.poll() is not None:
                self.fail(f"server exited with {process.returncode} waiting for {what}\n{self.allLogs()}")
            if self.reactor.seconds() > deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}\n{self.allLogs()}")
            await deferLater(self.reactor, 0.02, lambda: None)

    def allLogs(self) -> str:
        return "\n".join(f"--- {path}\n{readFile(path)[-3000:]}" for path in self.logs)

    async def signIn(self) -> Any:
        session = await MSNClient(ALICE, PASSWORD, self.endpoints, reactor=self.reactor).login()
        return session

    def openDatabase(self) -> SQLiteAccountStore:
        db = sqlite3.connect(self.database)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        finally:
            db.close()
        store = SQLiteAccountStore(self.database)
        self.addCleanup(store.close)
        return store

    # -- SIGKILL -------------------------------------------------------------------------

    def test_sigkillLosesNothingAcknowledged(self) -> "Deferred[None]":
        """
        A loop of changes, each awaited until the server acknowledged it;
        one more sent and the server killed with SIGKILL before its answer
        is read. Reopened, the database is intact and holds every
        acknowledged change.
        """
        return ensureDeferred(self._sigkill())

    async def _sigkill(self) -> None:
        server = await self.startServer()
        session = await self.signIn()
        acknowledged: dict[str, Any] = {"contacts": [], "blocked": [], "groups": []}
        for i, email in enumerate(CONTACTS[:-1]):
            await session.addContact(email)
            acknowledged["contacts"].append(email)
            if i % 3 == 1:
                await session.blockContact(CONTACTS[i - 1])
                acknowledged["blocked"].append(CONTACTS[i - 1])
            if i % 4 == 2:
                await session.addGroup(f"group {i}")
                acknowledged["groups"].append(f"group {i}")
            await session.setDisplayName(f"Alice {i}")
            acknowledged["displayName"] = f"Alice {i}"
        inFlight = session.addContact(CONTACTS[-1])
        inFlight.addErrback(lambda _: None)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        await session.whenEnded()

        store = self.openDatabase()
        alice = store.get(ALICE)
        assert alice is not None
        for email in acknowledged["contacts"]:
            self.assertTrue(alice.onForwardList(email), email)
        for email in acknowledged["blocked"]:
            self.assertTrue(alice.hasRole(BLOCK, email), email)
        self.assertEqual(sorted(g.name for g in alice.groups.values()), sorted(acknowledged["groups"]))
        self.assertEqual(alice.displayName, acknowledged["displayName"])

        # And a server starts on it again and serves what it holds, this
        # time forked into the background as twistd does by default.
        store.close()
        pid = await self.startDaemon()
        session = await self.signIn()
        self.addCleanup(lambda: session.logout() if session.isActive else None)
        for email in acknowledged["contacts"]:
            self.assertIn(email, session.contacts)
        await session.addContact(CONTACTS[-1])
        await session.logout()
        await self.stopDaemon(pid)
        self.assertTrue(self.openDatabase().get(ALICE).onForwardList(CONTACTS[-1]))

    # -- restart round trips ---------------------------------------------------------------

    def test_everyChangeSurvivesRestart(self) -> "Deferred[None]":
        """
        Contacts added, removed and blocked, a group with a contact moved
        into it, the display name and the personal message: after the
        server is stopped and started again, the client signing in sees the
        same list, and the database the same personal message. Meanwhile
        a second server on the same database is refused (one line, non-zero
        exit), and the SIGTERM that stops the first tells its signed-in
        client C{OUT SSD}.
        """
        return ensureDeferred(self._roundTrips())

    async def _roundTrips(self) -> None:
        server = await self.startServer()
        session = await self.signIn()
        for email in CONTACTS[:4]:
            await session.addContact(email)
        await session.removeContact(CONTACTS[1])
        await session.blockContact(CONTACTS[2])
        group = await session.addGroup("Close friends")
        await session.moveContactToGroup(CONTACTS[3], group)
        await session.setDisplayName("Alice in Wonderland")
        await session.setPersonalMessage("down the rabbit hole")
        before = self.view(session)

        # A second server on the same database is refused with one line
        # naming the first one; the first keeps serving.
        log = os.path.join(self.directory, "second.log")
        second = subprocess.run(
            self.serverArgs(log), cwd=self.directory, env=childEnvironment(),
            capture_output=True, text=True, timeout=30,
        )
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(f"in use by another msnp-server (pid {server.pid})", second.stderr)
        self.assertNotIn("Traceback", second.stdout + second.stderr)
        self.assertTrue(session.isActive)

        # Stopped, the server tells the signed-in client it is going down.
        server.send_signal(signal.SIGTERM)
        self.assertEqual(await session.whenEnded(), "SSD")
        server.wait(timeout=10)
        # The personal message is checked before signing in again: a client
        # publishes its own (here empty) one at sign-in.
        store = self.openDatabase()
        alice = store.get(ALICE)
        assert alice is not None
        self.assertEqual(alice.personalMessage, "down the rabbit hole")
        store.close()
        await self.startServer()
        session = await self.signIn()
        self.addCleanup(lambda: session.logout() if session.isActive else None)
        self.assertEqual(self.view(session), before)
        self.assertIn(CONTACTS[0], session.contacts)
        removed = session.contacts.get(CONTACTS[1])
        self.assertTrue(removed is None or not removed.onForwardList)
        self.assertTrue(session.contacts.get(CONTACTS[2]).isBlocked)
        self.assertEqual([g.name for g in session.contacts.groups.values()], ["Close friends"])
        self.assertEqual(session.displayName, "Alice in Wonderland")
        await session.logout()

    def view(self, session: Any) -> Any:
        groups = {g.groupId: g.name for g in session.contacts.groups.values()}
        contacts = sorted(
            (c.email, c.onForwardList, c.isBlocked, sorted(groups[g] for g in c.groupIds))
            for c in session.contacts
        )
        return contacts, sorted(groups.values()), session.displayName
