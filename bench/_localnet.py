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
mutual contacts; with C{--star K} instead, account 0 alone has accounts
1..K as mutual contacts (the others have only account 0).

With C{--storm FILE} the child also listens on a I{control} port (its
number is the C{"control"} key of the JSON line): a connection sending
C{STORM <email> [I]\\n} makes the NS write the bytes of C{FILE} (the I-th
C{--storm} given, the first by default), as they are,
to that account's signed-in NS connection (a scripted tail after a real
sign-in); C{REPLAY [I]\\n} writes the same bytes to the control connection
itself (the same stream, from the same process, for a baseline reader).
Either way the child answers nothing else. C{COUNT\\n} answers with one JSON
line of request counters of the HTTP site (C{{"abch": N, "sso": N}}).

With C{MSNP_BENCH_PROFILE=FILE} in its environment the child runs under
cProfile and writes the profile to C{FILE} when it stops.

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
    control: Optional[int] = None

    @classmethod
    def start(
        cls, accounts: int, contacts: int = 0, sendChallenge: bool = True,
        star: int = 0, storms: tuple[str, ...] = (),
    ) -> "NetworkProcess":
        from msnp.endpoints import Endpoints

        command = [
            sys.executable, os.path.abspath(__file__),
            "--accounts", str(accounts), "--contacts", str(contacts), "--star", str(star),
        ]
        if not sendChallenge:
            command.append("--no-challenge")
        for storm in storms:
            command += ["--storm", storm]
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise RuntimeError(f"the network process exited with {process.returncode}")
        values = json.loads(line)
        control = values.pop("control", None)
        return cls(process, Endpoints(**values), control)

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


def _controlFactory(network: Any, storms: list[bytes]) -> Any:
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineOnlyReceiver

    class Control(LineOnlyReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            words = line.decode("ascii").split()
            assert self.transport is not None
            if words[:1] == ["STORM"]:
                storm = storms[int(words[2]) if len(words) > 2 else 0]
                for session in network.onlineSessions(words[1]):
                    session.transport.write(storm)
                    break
            elif words[:1] == ["REPLAY"]:
                self.transport.write(storms[int(words[1]) if len(words) > 1 else 0])
            elif words[:1] == ["COUNT"]:
                self.transport.write(json.dumps(_COUNTERS).encode("ascii") + b"\n")

    return Factory.forProtocol(Control)


#: Requests the HTTP site received, by service.
_COUNTERS = {"abch": 0, "sso": 0}


def _countRequests(site: Any) -> None:
    """
    Wrap C{site.getResourceFor} to count what the HTTP services are asked.
    """
    original = site.getResourceFor

    def getResourceFor(request: Any) -> Any:
        _COUNTERS["abch" if b"abservice" in request.path else "sso"] += 1
        return original(request)

    site.getResourceFor = getResourceFor


def _serve(accounts: int, contacts: int, sendChallenge: bool, star: int = 0, stormFiles: Optional[list[str]] = None) -> None:
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver

    from msnp.server.limits import DEFAULT_LIMITS
    from msnp.server import passwords
    from msnp.server.network import LocalNetwork

    # The benchmarks measure the client: the server's scrypt check (tens of
    # ms per sign-in at production cost, see bench_store.py) would swamp it.
    passwords.defaultCost = passwords.TEST_COST
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False,
    )
    # Every benchmark client connects from 127.0.0.1: lift the per-address
    # connection cap (see docs/limits.md) so a thousand sessions fit, and the
    # sign-in throttle, which counts concurrent attempts from one address
    # like failures (50 logins in flight would be held back up to 30 s).
    limits = replace(DEFAULT_LIMITS, connectionsPerAddress=1_000_000, signInFreeFailures=1_000_000)
    network = LocalNetwork(reactor=reactor, sendChallenge=sendChallenge, limits=limits)
    for index in range(accounts):
        network.addAccount(accountName(index), accountPassword(index), f"User {index}")
    for index in range(accounts):
        for step in range(1, min(contacts, accounts - 1) + 1):
            other = (index + step) % accounts
            network.addContact(accountName(index), accountName(other), mutual=True)
    for other in range(1, min(star, accounts - 1) + 1):
        network.addContact(accountName(0), accountName(other), mutual=True)

    async def run() -> None:
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.web.server import Site

        endpoints = await network.start()
        values: dict[str, Any] = {
            "dispatch": endpoints.dispatch, "sso": endpoints.sso,
            "sharing": endpoints.sharing, "addressBook": endpoints.addressBook,
            # Without these the clients would try the historical hosts.
            "rsi": endpoints.rsi, "storage": endpoints.storage,
        }
        # The HTTP site (inside its tracking wrapper), for the counters; a
        # private attribute, so its absence only loses the counts.
        for factory in getattr(network, "_factories", ()):
            if isinstance(getattr(factory, "wrappedFactory", None), Site):
                _countRequests(factory.wrappedFactory)
        if stormFiles:
            storms = []
            for name in stormFiles:
                with open(name, "rb") as f:
                    storms.append(f.read())
            port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(_controlFactory(network, storms))
            values["control"] = port.getHost().port
        sys.stdout.write(json.dumps(values) + "\n")
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
    profileTo = os.environ.get("MSNP_BENCH_PROFILE")
    if profileTo:
        # For profiling the servers under a benchmark's load.
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    reactor.run()  # type: ignore[attr-defined]
    if profileTo:
        profiler.disable()
        profiler.dump_stats(profileTo)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--contacts", type=int, default=0)
    parser.add_argument("--star", type=int, default=0)
    parser.add_argument("--storm", action="append")
    parser.add_argument("--no-challenge", action="store_true")
    args = parser.parse_args(argv)
    _serve(args.accounts, args.contacts, not args.no_challenge, args.star, args.storm)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
