"""
Tests for C{python -m msnp.server accounts} (L{msnp.server.__main__}):
the commands on a real SQLite database, and an account added by the
command (a separate process) signing in at once on a running server.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.client import MSNClient
from msnp.errors import AuthenticationError
from msnp.server.__main__ import run
from msnp.server.network import LocalNetwork
from msnp.server.sqlstore import SQLiteAccountStore

from test.support import childEnvironment, tempDirectory, writeTempFile


class Captured:
    """
    The exit status and output of one in-process run.
    """

    def __init__(self, testCase: SynchronousTestCase, argv: list[str], stdin: str = "") -> None:
        self.stdout = io.StringIO()
        stderr = io.StringIO()
        original = sys.stderr
        sys.stderr = stderr
        try:
            self.status = run(argv, io.StringIO(stdin), self.stdout, prompt=testCase.fail)
        finally:
            sys.stderr = original
        self.out = self.stdout.getvalue()
        self.err = stderr.getvalue()


class CommandTests(SynchronousTestCase):
    """
    Each sub-command does what it says to the database, and refuses what it
    cannot do with one line and status 1.
    """

    def setUp(self) -> None:
        self.path = os.path.join(tempDirectory(self), "server.sqlite3")

    def accounts(self, *args: str, stdin: str = "") -> Captured:
        return Captured(self, ["accounts", "--database", self.path, *args], stdin)

    def openStore(self) -> SQLiteAccountStore:
        store = SQLiteAccountStore(self.path)
        self.addCleanup(store.close)
        return store

    def test_addListPasswdRemove(self) -> None:
        """
        C{add} stores a hash of the password read from standard input,
        C{list} shows the account, C{passwd} replaces the password,
        C{remove} deletes the account; no output repeats a password.
        """
        added = self.accounts("add", "--display-name", "Carol", "Carol@Example.com", stdin="carol-pw\n")
        self.assertEqual((added.status, added.out), (0, "added carol@example.com\n"))
        self.assertEqual(self.accounts("list").out, "carol@example.com\tCarol\n")
        store = self.openStore()
        self.assertIsNotNone(store.checkPassword("carol@example.com", "carol-pw"))
        changed = self.accounts("passwd", "carol@example.com", stdin="a-password-longer-than-16\n")
        self.assertEqual(changed.status, 0)
        self.assertIn("first 16 characters", changed.out)
        self.assertIsNone(store.checkPassword("carol@example.com", "carol-pw"))
        self.assertIsNotNone(store.checkPassword("carol@example.com", "a-password-longer-than-16"))
        for result in (added, changed):
            self.assertNotIn("pw", result.out + result.err)
        removed = self.accounts("remove", "carol@example.com")
        self.assertEqual((removed.status, removed.out), (0, "removed carol@example.com\n"))
        self.assertEqual(self.accounts("list").out, "")

    def test_refusals(self) -> None:
        """
        A duplicate, an unknown account, an empty password and a bad import
        file are refused with status 1 and one line naming the problem.
        """
        self.accounts("add", "carol@example.com", stdin="pw\n")
        cases = [
            (self.accounts("add", "carol@example.com", stdin="pw\n"), "already exists"),
            (self.accounts("remove", "dave@example.com"), "no such account"),
            (self.accounts("passwd", "dave@example.com", stdin="pw\n"), "no such account"),
            (self.accounts("add", "dave@example.com", stdin="\n"), "empty password"),
            (self.accounts("add", "not-an-address", stdin="pw\n"), "not an e-mail address"),
            (self.accounts("import", writeTempFile(self, [{"email": "x@example.com"}])), "password"),
        ]
        for result, fragment in cases:
            self.assertEqual(result.status, 1, result.err)
            self.assertIn(fragment, result.err)
            self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertEqual([a.email for a in self.openStore()], ["carol@example.com"])

    def test_import(self) -> None:
        """
        C{import} adds the accounts of a JSON file with their contacts.
        """
        path = writeTempFile(
            self,
            [{"email": "a@example.com", "password": "a", "contacts": ["b@example.com"]},
             {"email": "b@example.com", "password": "b"}],
        )
        self.assertEqual(self.accounts("import", path).out, "imported 2 accounts\n")
        self.assertTrue(self.openStore().get("b@example.com").onForwardList("a@example.com"))

    def test_usage(self) -> None:
        """
        A missing or unknown sub-command is bad usage: status 2.
        """
        self.assertEqual(Captured(self, []).status, 2)
        self.assertEqual(self.accounts().status, 2)
        self.assertEqual(self.accounts("frobnicate").status, 2)
        self.assertEqual(self.accounts("add").status, 2)


class WhileServerRunsTests(TestCase):
    """
    The command, run as its own process, changes the database of a running
    server; the server sees it at the next sign-in.
    """

    timeout = 60

    def test_addedAccountSignsInAtOnce(self) -> "Deferred[None]":
        """
        An account added by the command while the server runs signs in
        immediately; once removed by the command, it no longer can.
        """
        return ensureDeferred(self._addedAccountSignsIn())

    def admin(self, path: str, *args: str, stdin: str = "") -> "subprocess.CompletedProcess[str]":
        result = subprocess.run(
            [sys.executable, "-m", "msnp.server", "accounts", "--database", path, *args],
            input=stdin, env=childEnvironment(), capture_output=True, text=True, timeout=30,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    async def _addedAccountSignsIn(self) -> None:
        from twisted.internet import reactor

        path = os.path.join(tempDirectory(self), "server.sqlite3")
        store = SQLiteAccountStore(path, exclusive=True)
        self.addCleanup(store.close)
        store.addAccount("alice@example.com", "alice-pw")
        network = LocalNetwork(reactor=reactor, store=store)
        endpoints = await network.start()
        self.addCleanup(network.stop)

        self.admin(path, "add", "carol@example.com", stdin="carol-pw\n")
        session = await MSNClient("carol@example.com", "carol-pw", endpoints, reactor=reactor).login()
        await session.logout()

        self.admin(path, "remove", "carol@example.com")
        with self.assertRaises(AuthenticationError):
            await MSNClient("carol@example.com", "carol-pw", endpoints, reactor=reactor).login()
        self.assertEqual([a.email for a in store], ["alice@example.com"])
