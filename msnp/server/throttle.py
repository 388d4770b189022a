# -*- test-case-name: test.test_server_limits -*-
"""
Sign-in rate limiting: failed password checks slow the next attempts
down, per account and per peer address, without ever locking anyone out.

A hard lockout after N failures would itself be a denial of service (any
stranger could lock a friend out by guessing wrong on purpose), so the
rule is a delay instead: the first C{signInFreeFailures} failures within
C{signInWindow} seconds are answered at once; after that each attempt's
answer is held back C{signInDelay} seconds, doubling per further failure
up to C{signInMaxDelay}. The delay of an attempt is the larger of its
account's and its address's. Attempts still being held back count as
failures for the ones that arrive meanwhile, so sending many in parallel
does not dodge the delay. A success clears its account's count (not its
address's, so one known password does not reset a guessing address).

Memory is bounded: at most C{MAX_TRACKED} keys are remembered, the
oldest dropped first, and a key is forgotten C{signInWindow} seconds
after its first failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from twisted.internet.interfaces import IReactorTime

from msnp.server.limits import DEFAULT_LIMITS, ServerLimits

#: Accounts and addresses remembered at most.
MAX_TRACKED = 100_000


@dataclass
class _Record:
    first: float
    failures: int = 0
    inFlight: int = 0


class SignInThrottle:
    """
    The failure counts of accounts and addresses, and the delay they earn.
    """

    def __init__(self, clock: IReactorTime, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        self.clock = clock
        self.limits = limits
        self._records: dict[str, _Record] = {}

    @staticmethod
    def keys(account: str, address: str) -> tuple[str, str]:
        """
        The two keys an attempt is counted under.
        """
        return ("account:" + account.strip().lower(), "address:" + address)

    def _record(self, key: str, now: float) -> _Record:
        records = self._records
        while records:
            oldest = next(iter(records))
            if records[oldest].first + self.limits.signInWindow > now and len(records) < MAX_TRACKED:
                break
            if records[oldest].inFlight and len(records) < MAX_TRACKED:
                break
            del records[oldest]
        record = records.get(key)
        if record is None or (record.first + self.limits.signInWindow <= now and not record.inFlight):
            records.pop(key, None)
            record = records[key] = _Record(now)
        return record

    def delayFor(self, failures: int) -> float:
        """
        The hold-back earned by C{failures} recent failures.
        """
        excess = failures - self.limits.signInFreeFailures
        if excess < 0:
            return 0.0
        return float(min(self.limits.signInDelay * 2 ** min(excess, 32), self.limits.signInMaxDelay))

    def begin(self, keys: Iterable[str]) -> float:
        """
        An attempt arrives under C{keys}: its delay (0 to answer at once).
        Every L{begin} must be followed by one L{end} with the same keys.
        """
        now = self.clock.seconds()
        worst = 0
        for key in keys:
            record = self._record(key, now)
            worst = max(worst, record.failures + record.inFlight)
            record.inFlight += 1
        return self.delayFor(worst)

    def end(self, keys: Iterable[str], succeeded: bool) -> None:
        """
        The attempt begun under C{keys} was answered.
        """
        now = self.clock.seconds()
        for index, key in enumerate(keys):
            record = self._records.get(key)
            if record is None:
                record = self._record(key, now)
            record.inFlight = max(0, record.inFlight - 1)
            if succeeded and index == 0:
                record.failures = 0
            elif not succeeded:
                record.failures += 1

    def failuresOf(self, key: str) -> int:
        """
        The failures counted under C{key} now (for tests and the log).
        """
        record = self._records.get(key)
        return record.failures if record is not None else 0
