# -*- test-case-name: test.test_server_admin -*-
"""
C{python -m msnp.server accounts ...}: manage the accounts of an
C{msnp-server} database, also while the server runs::

    python -m msnp.server accounts [--database PATH] add [--display-name NAME] EMAIL
    python -m msnp.server accounts [--database PATH] list
    python -m msnp.server accounts [--database PATH] remove EMAIL
    python -m msnp.server accounts [--database PATH] passwd EMAIL
    python -m msnp.server accounts [--database PATH] import FILE

Passwords are asked for on the terminal (or read as one line from standard
input when it is not a terminal), never taken from the command line where
other users could see them. The command opens the database with its own
connection and does not take the server lock: SQLite serialises its writes
with the server's, and the running server notices the change at its next
account lookup (L{msnp.server.sqlstore}), so an added account can sign in
at once.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any, Callable, Optional, TextIO

from twisted.python import usage

from msnp.server.accounts import AccountFileError
from msnp.server.passwords import MAX_PASSWORD_LENGTH
from msnp.server.sqlschema import StoreError
from msnp.server.sqlstore import DEFAULT_DATABASE, SQLiteAccountStore


class _EmailOptions(usage.Options):
    def parseArgs(self, email: str) -> None:  # type: ignore[override]
        self["email"] = email


class AddOptions(_EmailOptions):
    synopsis = "[--display-name NAME] EMAIL"
    optParameters = [["display-name", None, None, "The display name (default: the address)."]]


class RemoveOptions(_EmailOptions):
    synopsis = "EMAIL"


class PasswdOptions(_EmailOptions):
    synopsis = "EMAIL"


class ListOptions(usage.Options):
    synopsis = ""


class ImportOptions(usage.Options):
    synopsis = "FILE"

    def parseArgs(self, path: str) -> None:  # type: ignore[override]
        self["file"] = path


class AccountsOptions(usage.Options):
    synopsis = "[--database PATH] add|list|remove|passwd|import ..."
    optParameters = [
        ["database", None, DEFAULT_DATABASE,
         f"The msnp-server SQLite database (default: {DEFAULT_DATABASE} in the working directory)."],
    ]
    subCommands = [
        ["add", None, AddOptions, "Add an account (asks for its password)."],
        ["list", None, ListOptions, "List the accounts."],
        ["remove", None, RemoveOptions, "Remove an account and take it off everyone's lists."],
        ["passwd", None, PasswdOptions, "Set an account's password (asks for it)."],
        ["import", None, ImportOptions, "Import a JSON accounts file (as twistd msnp-server --accounts)."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("say what to do: add, list, remove, passwd or import")


class Options(usage.Options):
    synopsis = "accounts ..."
    subCommands = [["accounts", None, AccountsOptions, "Manage the accounts of an msnp-server database."]]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("say what to manage: accounts")


class AdminError(Exception):
    """
    The command cannot be done; the message says why in one line.
    """


def _askPassword(stdin: TextIO, prompt: Callable[[str], str]) -> str:
    if stdin.isatty():
        password = prompt("Password: ")
        if prompt("Again: ") != password:
            raise AdminError("the passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("an empty password is not allowed")
    return password


def run(
    argv: list[str],
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    prompt: Callable[[str], str] = getpass.getpass,
) -> int:
    """
    Run the command line C{argv} (without the program name).

    @return: the exit status (0 done, 1 refused, 2 bad usage); errors are
        one line on C{sys.stderr}.
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"{options}\nerror: {e}\n")
        return 2
    accounts: Any = options.subOptions
    try:
        store = SQLiteAccountStore(accounts["database"])
    except (StoreError, OSError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    try:
        _perform(store, accounts.subCommand, accounts.subOptions, stdin, stdout, prompt)
    except (AdminError, AccountFileError, ValueError, KeyError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        sys.stderr.write(f"error: {message}\n")
        return 1
    finally:
        store.close()
    return 0


def _perform(
    store: SQLiteAccountStore,
    command: str,
    options: Any,
    stdin: TextIO,
    stdout: TextIO,
    prompt: Callable[[str], str],
) -> None:
    if command == "list":
        for account in store:
            stdout.write(f"{account.email}\t{account.displayName}\n")
        return
    if command == "import":
        with open(options["file"], encoding="utf-8") as f:
            text = f.read()
        before = len(store)
        store.loadJSON(text)
        stdout.write(f"imported {len(store) - before} accounts\n")
        return
    email = options["email"]
    if command == "remove":
        if not store.removeAccount(email):
            raise AdminError(f"no such account: {email}")
        stdout.write(f"removed {email}\n")
        return
    if command == "add":
        if store.get(email) is not None:
            raise AdminError(f"account already exists: {email}")
        password = _askPassword(stdin, prompt)
        account = store.addAccount(email, password, options["display-name"])
        stdout.write(f"added {account.email}\n")
    elif command == "passwd":
        if store.get(email) is None:
            raise AdminError(f"no such account: {email}")
        password = _askPassword(stdin, prompt)
        store.setPassword(email, password)
        stdout.write(f"password of {email} changed\n")
    if len(password) > MAX_PASSWORD_LENGTH:
        stdout.write(
            f"note: Messenger clients send only the first {MAX_PASSWORD_LENGTH} characters of a password;"
            " only those count\n"
        )


def main(argv: Optional[list[str]] = None) -> None:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
