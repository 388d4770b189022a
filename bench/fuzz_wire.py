#!/usr/bin/env python
"""
Fuzz the MSNP framing: run many mutated, randomly chunked NS/SB/DS streams
through the protocols and check that none of them misbehaves.

A stream I{misbehaves} when an exception escapes C{dataReceived}, when the
framing code's own catch-all fires (an internal error), when buffered bytes
exceed the protocol's line or payload limit, or when a request is still
unresolved after the connection is lost. A stream I{fails cleanly} when the
protocol dropped the connection (L{ProtocolError}) or logged and skipped
lines. Handler exceptions that L{MSNPProtocol} catches and logs are counted
apart: they are not framing faults but may point at handler bugs.

Usage::

    python bench/fuzz_wire.py [--count N] [--jobs J] [--seed S] [--replay I]

The exit status is 1 if any stream misbehaved. The streams and checks
are C{test/fuzzstreams.py}'s, which the test suite also runs (fewer of them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from typing import Any, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from twisted.logger import globalLogBeginner  # noqa: E402

from test.fuzzstreams import LogTally, runOne, targets  # noqa: E402


def worker(args: tuple[int, int, int]) -> dict[str, Any]:
    first, count, seed = args
    tally = LogTally()
    globalLogBeginner.beginLoggingTo([tally], discardBuffer=True, redirectStandardIO=False)
    found = targets()
    weighted = [t for t in found for _ in range(t.weight)]
    outcomes: Counter[str] = Counter()
    perTarget: Counter[str] = Counter()
    samples: list[str] = []
    for i in range(first, first + count):
        rng = random.Random(seed * 1_000_003 + i)
        target = weighted[rng.randrange(len(weighted))]
        outcome, detail = runOne(rng, target, tally)
        outcomes[outcome] += 1
        perTarget[target.name] += 1
        if outcome == "misbehaved" and len(samples) < 5:
            samples.append(f"stream {i} ({target.name}): {detail}")
    return {
        "outcomes": outcomes, "perTarget": perTarget, "samples": samples,
        "handlerErrors": tally.handlerErrors, "targets": [t.name for t in found],
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10**6, help="streams to run (default 10**6)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--seed", type=int, default=1, help="base seed (stream i is reproducible from it)")
    parser.add_argument("--replay", type=int, default=None, help="rerun only stream I, verbosely")
    options = parser.parse_args(argv)

    if options.replay is not None:
        result = worker((options.replay, 1, options.seed))
        print(result)
        return 1 if result["outcomes"]["misbehaved"] else 0

    started = time.perf_counter()
    jobs = max(1, options.jobs)
    slices = [(options.count * k // jobs, options.count * (k + 1) // jobs - options.count * k // jobs, options.seed)
              for k in range(jobs)]
    if jobs == 1:
        results = [worker(slices[0])]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(worker, slices)
    elapsed = time.perf_counter() - started

    outcomes: Counter[str] = Counter()
    perTarget: Counter[str] = Counter()
    handlerErrors: Counter[str] = Counter()
    samples: list[str] = []
    for r in results:
        outcomes.update(r["outcomes"])
        perTarget.update(r["perTarget"])
        handlerErrors.update(r["handlerErrors"])
        samples += r["samples"]
    ran = sum(outcomes.values())
    print(f"targets: {', '.join(results[0]['targets'])}")
    print(f"ran:               {ran} streams in {elapsed:.1f}s ({ran / elapsed:,.0f}/s, {jobs} process(es), seed {options.seed})")
    print(f"clean:             {outcomes['clean']}")
    print(f"failed cleanly:    {outcomes['dropped'] + outcomes['skipped']} "
          f"(dropped {outcomes['dropped']}, lines skipped {outcomes['skipped']})")
    print(f"misbehaved:        {outcomes['misbehaved']}")
    for name, n in sorted(perTarget.items()):
        print(f"  {name:<28} {n}")
    if handlerErrors:
        print("handler exceptions caught and logged by MSNPProtocol (not framing faults):")
        for name, n in handlerErrors.most_common():
            print(f"  {name:<40} {n}")
    for sample in samples:
        print("MISBEHAVED", sample)
    return 1 if outcomes["misbehaved"] else 0


if __name__ == "__main__":
    sys.exit(main())
