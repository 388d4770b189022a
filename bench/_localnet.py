"""
Run a L{msnp.server.network.LocalNetwork} in a child process, for the
benchmarks.

The benchmarks measure the client, so the servers must not share its
process (nor its reactor, CPU time or memory). L{NetworkProcess} starts
this file as a script; the child builds the accounts, starts the network on
ephemeral loopback ports, prints the endpoints as one JSON line and serves
until its standard input closes.

Accounts are C{user<N>@example.com} with password C{pw-<N>}; with
C{--contacts K} each account has its K following accounts (in a ring) as
mutual contacts.

This module is not a benchmark itself (no C{bench_} prefix, never collected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def accountName(index: int) -> str:
    return f"user{index}@example.com"


def accountPassword(index: int) -> str:
    return f"pw-{index}"


@dataclass
class NetworkProcess:
    """
    A running child network and the endpoints to give clients.
    """

    process: "subprocess.Popen[bytes]"
    endpoints: Any

    @classmethod
    def start(cls, accounts: int, contacts: int = 0, sendChallenge: bool = True) -> "NetworkProcess":
        from msnp.endpoints import Endpoints

        command = [
            sys.executable, os.path.abspath(__file__),
            "--accounts", str(accounts), "--contacts", str(contacts),
        ]
        if not sendChallenge:
            command.append("--no-challenge")
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise RuntimeError(f"the network process exited with {process.returncode}")
        values = json.loads(line)
        return cls(process, Endpoints(**values))

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """
        Close the child's stdin (it stops its network and exits) and wait.
        """
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait()


def _serve(accounts: int, contacts: int, sendChallenge: bool) -> None:
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver

    from msnp.server.limits import DEFAULT_LIMITS
    from msnp.server.network import LocalNetwork

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False,
    )
    # Every benchmark client connects from 127.0.0.1: lift the per-address
    # connection cap (see docs/limits.md) so a thousand sessions fit.
    limits = replace(DEFAULT_LIMITS, connectionsPerAddress=1_000_000)
    network = LocalNetwork(reactor=reactor, sendChallenge=sendChallenge, limits=limits)
    for index in range(accounts):
        network.addAccount(accountName(index), accountPassword(index), f"User {index}")
    for index in range(accounts):
        for step in range(1, min(contacts, accounts - 1) + 1):
            other = (index + step) % accounts
            network.addContact(accountName(index), accountName(other), mutual=True)

    async def run() -> None:
        endpoints = await network.start()
        sys.stdout.write(json.dumps({
            "dispatch": endpoints.dispatch, "sso": endpoints.sso,
            "sharing": endpoints.sharing, "addressBook": endpoints.addressBook,
        }) + "\n")
        sys.stdout.flush()

    def watchStdin() -> None:
        sys.stdin.buffer.read()
        reactor.callFromThread(stop)  # type: ignore[attr-defined]

    def stop() -> None:
        d = network.stop()
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    def failed(failure: Any) -> None:
        sys.stderr.write(failure.getTraceback())
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addErrback(failed))  # type: ignore[attr-defined]
    threading.Thread(target=watchStdin, daemon=True).start()
    reactor.run()  # type: ignore[attr-defined]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--contacts", type=int, default=0)
    parser.add_argument("--no-challenge", action="store_true")
    args = parser.parse_args(argv)
    _serve(args.accounts, args.contacts, not args.no_challenge)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
