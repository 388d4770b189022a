# -*- test-case-name: test.test_testing -*-
"""
Helpers for testing your own bots against a real local network.

    - L{startLocalNetwork}: a L{msnp.server.LocalNetwork} on loopback with
      the accounts and contact pairs you name;
    - L{signIn}: a real L{msnp.MSNClient} signed in to it;
    - L{RecordingObserver}: an observer with every L{IMessengerObserver}
      method (generated from the interface, so it never misses a new
      event) that records what it hears and lets a test wait for a
      condition, with a timeout, instead of sleeping;
    - L{waitUntil}: re-check a condition no event announces, with a timeout.

This is the one module of C{msnp} outside C{msnp.server} and
C{msnp.__main__} that imports the local network: it exists to test
against it. The library itself never imports it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater
from zope.interface import classImplements

from msnp.client import MSNClient
from msnp.endpoints import Endpoints
from msnp.interfaces import IMessengerObserver
from msnp.reactors import reactorOrDefault
from msnp.server.network import LocalNetwork
from msnp.session import Session

#: Seconds a wait may take by default before it fails: loopback answers in
#: milliseconds, so this only matters when something is broken.
DEFAULT_TIMEOUT = 10.0

__all__ = ["DEFAULT_TIMEOUT", "EventLog", "RecordingObserver", "signIn", "startLocalNetwork", "waitUntil"]


class EventLog:
    """
    Records events and lets a test wait until a condition over them holds.
    L{RecordingObserver} adds one method per observer event; a hand-made
    observer can inherit this and call L{_record} from its own methods.
    """

    def __init__(self, name: str = "observer", reactor: Any = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """
        @param name: names this observer in failure messages.
        @param reactor: the clock waits time out on (the global reactor by
            default; a L{twisted.internet.task.Clock} in unit tests).
        @param timeout: seconds L{waitFor} waits by default.
        """
        self.name = name
        self.reactor = reactorOrDefault(reactor)
        self.timeout = timeout
        #: Every event heard, oldest first: C{(eventName, *arguments)}.
        self.events: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        for entry in list(self._waiters):
            check, d = entry
            if check():
                self._waiters.remove(entry)
                d.callback(None)

    def named(self, event: str) -> list[tuple[Any, ...]]:
        """
        The arguments of every recorded C{event}, oldest first.
        """
        return [e[1:] for e in self.events if e[0] == event]

    def waitFor(self, check: Callable[[], bool], what: str, timeout: Optional[float] = None) -> "Deferred[None]":
        """
        Fire once C{check()} is true (it is re-checked after every event);
        fail after C{timeout} seconds with an L{AssertionError} naming
        C{what} and the last events, so a missing event is a readable test
        failure rather than a hang.
        """
        if check():
            return succeed(None)
        d: Deferred[None] = Deferred()
        entry = (check, d)
        self._waiters.append(entry)

        def timedOut(failure: Any, seconds: float) -> None:
            if entry in self._waiters:
                self._waiters.remove(entry)
            raise AssertionError(f"{self.name}: still waiting for {what}; events: {self.events[-10:]}")

        d.addTimeout(self.timeout if timeout is None else timeout, self.reactor, onTimeoutCancel=timedOut)
        return d

    def waitForEvent(self, event: str, count: int = 1, timeout: Optional[float] = None) -> "Deferred[None]":
        """
        Fire once C{event} has been heard C{count} times in all.
        """
        return self.waitFor(lambda: len(self.named(event)) >= count, f"{count} x {event}", timeout)


def _recorder(event: str) -> Callable[..., None]:
    def record(self: EventLog, *args: Any) -> None:
        self._record(event, *args)

    record.__name__ = event
    record.__doc__ = f"Record C{{{event}}} with its arguments."
    return record


class RecordingObserver(EventLog):
    """
    An L{IMessengerObserver} that records every event with its arguments.

    Subclass it to record something else for an event (call L{_record}
    with the event name first) or to act on one (a bot under test).
    """


for _event in sorted(IMessengerObserver.names()):
    setattr(RecordingObserver, _event, _recorder(_event))
del _event
classImplements(RecordingObserver, IMessengerObserver)  # type: ignore[misc]  # methods set above


async def startLocalNetwork(
    accounts: Iterable[tuple[str, str, Optional[str]]],
    mutualContacts: Iterable[tuple[str, str]] = (),
    oneWayContacts: Iterable[tuple[str, str]] = (),
    addCleanup: Optional[Callable[..., Any]] = None,
    **networkArgs: Any,
) -> tuple[LocalNetwork, Endpoints]:
    """
    Start a L{LocalNetwork} on loopback (free ports) with these accounts.

    @param accounts: C{(email, password, displayName)} of each account.
    @param mutualContacts: C{(a, b)} pairs that are each other's contacts.
    @param oneWayContacts: C{(owner, contact)} pairs where only C{owner}
        added C{contact}.
    @param addCleanup: a test case's C{addCleanup}, to stop the network
        when the test ends.
    @param networkArgs: passed to L{LocalNetwork} as they are.
    @return: the network and the L{Endpoints} a client uses to reach it.
    """
    network = LocalNetwork(**networkArgs)
    for email, password, displayName in accounts:
        network.addAccount(email, password, displayName)
    for a, b in mutualContacts:
        network.addContact(a, b, mutual=True)
    for owner, contact in oneWayContacts:
        network.addContact(owner, contact)
    endpoints = await network.start()
    if addCleanup is not None:
        addCleanup(network.stop)
    return network, endpoints


async def signIn(
    email: str,
    password: str,
    endpoints: Endpoints,
    observer: Optional[object] = None,
    addCleanup: Optional[Callable[..., Any]] = None,
    reactor: Any = None,
    **clientArgs: Any,
) -> Session:
    """
    Sign a real L{MSNClient} in; with C{addCleanup}, sign it out again when
    the test ends (quietly: the test may have ended the session already).

    @param clientArgs: passed to L{MSNClient} (timeouts, C{trace}, ...).
    """
    client = MSNClient(email, password, endpoints, observer=observer, reactor=reactorOrDefault(reactor), **clientArgs)
    session = await client.login()
    if addCleanup is not None:

        async def logoutQuietly() -> None:
            try:
                await session.logout()
            except Exception:
                pass

        addCleanup(logoutQuietly)
    return session


async def waitUntil(
    condition: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT, interval: float = 0.01, reactor: Any = None
) -> None:
    """
    Re-check C{condition} every C{interval} seconds until it holds, for
    state no observer event announces (the server's view, a service).

    @raise AssertionError: it did not hold within C{timeout} seconds.
    """
    clock = reactorOrDefault(reactor)
    deadline = clock.seconds() + timeout
    while not condition():
        if clock.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await deferLater(clock, interval, lambda: None)
