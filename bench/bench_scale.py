"""
Many sessions in one process: how long N concurrent sign-ins take and how
much memory each signed-in session costs, against N idle plain TCP
connections to the same server as a baseline.

The L{LocalNetwork} runs in a child process (L{_localnet.NetworkProcess})
with C{max(N)} accounts, each with a few mutual contacts, so every number
below is the client's. Each measurement runs in a fresh worker process
(this script with C{--worker}), so that memory freed by one measurement
cannot hide the cost of the next:

  - C{sessions N}: sign N accounts in with at most C{--concurrency} logins
    in flight (the default C{MSNClient}: the sessions share the reactor's
    HTTP pool, kept open as real sessions keep it), time it, then read C{VmRSS}
    from C{/proc/self/status} before and after (after C{gc.collect()});
  - C{bare N}: open N connections with a bare L{Protocol} to the dispatch
    server and measure the same way.

Usage: C{python bench/bench_scale.py [--max 1000] [--concurrency 50] [--contacts 2]}
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess, accountName, accountPassword  # noqa: E402

DEFAULT_SIZES = (10, 100, 1000)


def residentKiB() -> int:
    """
    This process's resident set size in KiB (Linux C{/proc}).
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _quietLogs() -> None:
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False,
    )


# -- the workers ------------------------------------------------------------------------


async def _sessions(reactor: Any, endpoints: Any, count: int, concurrency: int) -> dict[str, Any]:
    from twisted.internet.defer import DeferredSemaphore, gatherResults

    from msnp.client import MSNClient

    # Import and warm up everything a login touches before the first reading.
    warm = await MSNClient(accountName(count), accountPassword(count), endpoints, reactor=reactor).login()
    await warm.logout()
    gc.collect()
    before = residentKiB()

    semaphore = DeferredSemaphore(concurrency)
    latencies: list[float] = []

    async def one(index: int) -> Any:
        started = time.perf_counter()
        session = await MSNClient(
            accountName(index), accountPassword(index), endpoints, reactor=reactor, loginTimeout=300.0,
        ).login()
        latencies.append(time.perf_counter() - started)
        return session

    from twisted.internet.defer import ensureDeferred

    started = time.perf_counter()
    cpuStarted = time.process_time()
    sessions = await gatherResults(
        [semaphore.run(lambda index: ensureDeferred(one(index)), i) for i in range(count)], consumeErrors=True
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpuStarted
    gc.collect()
    after = residentKiB()
    active = sum(1 for s in sessions if s.isActive)
    await gatherResults([s.logout() for s in sessions], consumeErrors=True)
    latencies.sort()
    return {
        "count": count, "active": active, "seconds": elapsed, "cpuSeconds": cpu,
        "rssBeforeKiB": before, "rssAfterKiB": after,
        "medianLoginSeconds": latencies[len(latencies) // 2],
    }


async def _bare(reactor: Any, endpoints: Any, count: int, concurrency: int) -> dict[str, Any]:
    from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    class Idle(Protocol):
        def __init__(self) -> None:
            self.lost: Deferred[None] = Deferred()

        def connectionLost(self, reason: Any = None) -> None:
            self.lost.callback(None)

    _, host, port = endpoints.dispatch.split(":")
    endpoint = TCP4ClientEndpoint(reactor, host, int(port))
    first = await connectProtocol(endpoint, Idle())
    first.transport.loseConnection()
    await first.lost
    gc.collect()
    before = residentKiB()
    semaphore = DeferredSemaphore(concurrency)
    started = time.perf_counter()
    protocols = await gatherResults(
        [semaphore.run(lambda: connectProtocol(endpoint, Idle())) for _ in range(count)], consumeErrors=True
    )
    elapsed = time.perf_counter() - started
    gc.collect()
    after = residentKiB()
    open_ = sum(1 for p in protocols if not p.lost.called)
    for p in protocols:
        p.transport.loseConnection()
    await gatherResults([p.lost for p in protocols])
    return {"count": count, "active": open_, "seconds": elapsed, "rssBeforeKiB": before, "rssAfterKiB": after}


def worker(kind: str, count: int, concurrency: int, endpointsJSON: str) -> None:
    _quietLogs()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from msnp.endpoints import Endpoints

    endpoints = Endpoints(**json.loads(endpointsJSON))
    results: list[Any] = []
    run = _sessions if kind == "sessions" else _bare

    def done(result: Any) -> None:
        results.append(result)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: ensureDeferred(run(reactor, endpoints, count, concurrency)).addBoth(done)
    )
    reactor.run()  # type: ignore[attr-defined]
    result = results[0]
    if hasattr(result, "getTraceback"):
        sys.stderr.write(result.getTraceback())
        sys.exit(1)
    print(json.dumps(result))


# -- the orchestrator ---------------------------------------------------------------------


def _runWorker(kind: str, count: int, concurrency: int, endpoints: Any) -> dict[str, Any]:
    values = {"dispatch": endpoints.dispatch, "sso": endpoints.sso,
              "sharing": endpoints.sharing, "addressBook": endpoints.addressBook,
              "rsi": endpoints.rsi, "storage": endpoints.storage}
    output = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", kind, "--count", str(count),
         "--concurrency", str(concurrency), "--endpoints", json.dumps(values)],
        check=True, stdout=subprocess.PIPE,
    ).stdout
    result: dict[str, Any] = json.loads(output.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=max(DEFAULT_SIZES), help="largest N")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--concurrency", type=int, default=50, help="logins in flight at once")
    parser.add_argument("--contacts", type=int, default=2, help="mutual contacts per account")
    parser.add_argument("--worker", choices=("sessions", "bare"))
    parser.add_argument("--count", type=int)
    parser.add_argument("--endpoints")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.count, args.concurrency, args.endpoints)
        return

    sizes = sorted({n for n in map(int, args.sizes.split(",")) if n <= args.max} | {args.max})
    # One extra account for each worker's warm-up login.
    network = NetworkProcess.start(accounts=max(sizes) + 1, contacts=args.contacts)
    rows = []
    try:
        for n in sizes:
            sessions = _runWorker("sessions", n, args.concurrency, network.endpoints)
            bare = _runWorker("bare", n, args.concurrency, network.endpoints)
            if sessions["active"] != n or bare["active"] != n:
                raise RuntimeError(f"only {sessions['active']} sessions / {bare['active']} connections of {n}")
            rows.append((n, sessions, bare))
    finally:
        network.stop()

    print(f"N concurrent sessions in one process ({args.concurrency} logins in flight at most, "
          f"{args.contacts} mutual contacts each), LocalNetwork in a child process, Python {sys.version.split()[0]}")
    print()
    header = (f"{'N':>6}{'sign-in all':>13}{'client CPU':>12}{'logins/s':>10}{'median login':>14}"
              f"{'RSS/session':>13}{'RSS/bare conn':>15}{'ratio':>8}")
    print(header)
    for n, s, b in rows:
        perSession = (s["rssAfterKiB"] - s["rssBeforeKiB"]) / n
        perBare = (b["rssAfterKiB"] - b["rssBeforeKiB"]) / n
        ratio = f"{perSession / perBare:.0f}x" if perBare > 0 else "n/a"
        print(f"{n:>6}{s['seconds']:>12.2f}s{s['cpuSeconds'] / s['seconds']:>11.0%} {n / s['seconds']:>9.0f}{s['medianLoginSeconds'] * 1000:>12.1f}ms"
              f"{perSession:>10.1f}KiB{perBare:>12.1f}KiB{ratio:>8}")
    print()
    print("client CPU: the client process's CPU time during the sign-ins over their wall time (the network")
    print("has its own process). RSS figures are VmRSS deltas divided by N; for small N they are dominated")
    print("by allocator granularity.")


if __name__ == "__main__":
    main()
