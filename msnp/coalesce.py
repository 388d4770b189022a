# -*- test-case-name: test.test_coalesce -*-
"""
Coalescing of repeated requests for the same idempotent work.

The address-book-changed C{NOT} (reference section 3.11) only says "the
lists changed, read them again". A burst of 800 of them must not mean 800
downloads of both contact documents: each one asks for the lists to be
I{current}, and one download that starts after the last C{NOT} of the
burst answers all of them. L{Coalescer} runs such work with

  - at most one run in flight and at most one pending: requests that come
    while a run is pending join it, requests that come while a run is in
    flight make (or join) the single pending run after it;
  - a debounce on an injected clock: the pending run starts C{delay}
    seconds after the latest request, but never later than C{maxDelay}
    seconds after the first request it answers, so a steady stream of
    requests still gets answered;
  - L{Coalescer.close}: the pending run is dropped and the one in flight
    cancelled, and every waiter fires (the work is best effort and its
    L{Deferred}s never fail).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall

__all__ = ["Coalescer"]


class Coalescer:
    """
    Run C{work} for many requests at once; see the module docstring.

    @ivar runs: how many times the work was started (for tests and benches).
    """

    def __init__(
        self,
        work: Callable[[], "Deferred[Any]"],
        clock: Optional[Any] = None,
        delay: float = 0.25,
        maxDelay: float = 2.0,
    ) -> None:
        """
        @param work: starts one run; its L{Deferred} must never fail (a
            failure is passed on to nobody and swallowed here).
        @param clock: an L{twisted.internet.interfaces.IReactorTime}; without one there is no debounce
            and a run starts as soon as the previous one is done.
        """
        self._work = work
        self._clock = clock
        self._delay = delay
        self._maxDelay = maxDelay
        self._waiters: list[Deferred[None]] = []
        self._timer: Optional[IDelayedCall] = None
        self._firstAsked = 0.0
        self._inFlight: Optional[Deferred[Any]] = None
        self._closed = False
        self.runs = 0

    @property
    def busy(self) -> bool:
        """
        Whether a run is pending or in flight.
        """
        return bool(self._waiters) or self._inFlight is not None

    def request(self) -> "Deferred[None]":
        """
        Ask for a run that starts after now.

        @return: a L{Deferred} firing with L{None} once such a run is over
            (or the coalescer closed); it never fails.
        """
        if self._closed:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if self._clock is None:
            self._maybeStart()
            return waiter
        now = self._clock.seconds()
        if self._timer is None:
            self._firstAsked = now
            self._timer = self._clock.callLater(self._delay, self._timerFired)
        else:
            # Debounce: wait for the burst to end, within maxDelay.
            due = min(now + self._delay, self._firstAsked + self._maxDelay)
            if due > self._timer.getTime():
                self._timer.reset(due - now)
        return waiter

    def _timerFired(self) -> None:
        self._timer = None
        self._maybeStart()

    def _maybeStart(self) -> None:
        """
        Start the pending run unless one is in flight (it then starts when
        that one is done) or its debounce is still running.
        """
        if self._closed or self._inFlight is not None or self._timer is not None or not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        self.runs += 1
        d = self._work()
        self._inFlight = d

        def done(result: object) -> None:
            if self._inFlight is d:
                self._inFlight = None
            for waiter in waiters:
                waiter.callback(None)
            self._maybeStart()

        d.addBoth(done)

    def close(self) -> None:
        """
        Drop the pending run and cancel the one in flight; every waiter
        fires. Later requests fire at once without running anything.
        """
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self._waiters = self._waiters, []
        inFlight, self._inFlight = self._inFlight, None
        if inFlight is not None:
            inFlight.cancel()
        for waiter in waiters:
            waiter.callback(None)
