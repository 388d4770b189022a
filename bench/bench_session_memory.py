"""
Resident memory per signed-in client session, 1,000 sessions in one
process, against the 20 KiB goal of issue 13 and against a bare TCP
connection to the same server.

The L{LocalNetwork} runs in a child process (L{_localnet.NetworkProcess});
each measurement runs in a fresh worker process (the workers of
L{bench_scale}): N default L{msnp.MSNClient} logins (50 in flight at most)
kept signed in, C{VmRSS} read before and after, after C{gc.collect()}, the
difference divided by N; then the same for N idle bare connections. The
two are run alternately, C{--repeat} times each, and medians are printed.

Usage: C{python bench/bench_session_memory.py [--quick] [--sessions 1000]
[--repeat 2]}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess  # noqa: E402
from bench_scale import _runWorker  # noqa: E402

GOAL_KIB = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 sessions, once")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=2, help="mutual contacts per account")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.repeat = 300, 1

    n = args.sessions
    network = NetworkProcess.start(accounts=n + 1, contacts=args.contacts)
    sessions: list[float] = []
    bare: list[float] = []
    seconds: list[float] = []
    try:
        for _ in range(args.repeat):
            s = _runWorker("sessions", n, args.concurrency, network.endpoints)
            b = _runWorker("bare", n, args.concurrency, network.endpoints)
            if s["active"] != n or b["active"] != n:
                raise RuntimeError(f"only {s['active']} sessions / {b['active']} connections of {n}")
            sessions.append((s["rssAfterKiB"] - s["rssBeforeKiB"]) / n)
            bare.append((b["rssAfterKiB"] - b["rssBeforeKiB"]) / n)
            seconds.append(s["seconds"])
    finally:
        network.stop()

    perSession, perBare = statistics.median(sessions), statistics.median(bare)
    print(f"RSS per signed-in session, {n} default MSNClient sessions in one process ({args.contacts} contacts each), "
          f"LocalNetwork in a child process, Python {sys.version.split()[0]}")
    print()
    print(f"{'':<34}{'median':>10}  runs")
    print(f"{'msnp session':<34}{perSession:>7.1f}KiB  {[round(x, 1) for x in sessions]}")
    print(f"{'bare TCP connection':<34}{perBare:>7.1f}KiB  {[round(x, 1) for x in bare]}")
    print()
    print(f"session / goal ({GOAL_KIB:g} KiB): {perSession / GOAL_KIB:.2f}x;  session / bare connection: "
          f"{perSession / perBare:.1f}x" if perBare > 0 else "bare connection: n/a")
    print(f"(signing the {n} in took {statistics.median(seconds):.1f}s)")


if __name__ == "__main__":
    main()
