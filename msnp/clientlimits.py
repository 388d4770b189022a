# -*- test-case-name: test.test_clientlimits -*-
"""
What a hostile server (or a peer it relays) can make the client hold.

A server decides how many places a contact has, how many invitations
arrive and who they claim to come from. Without caps a server sending
C{NLN} with endless new endpoint ids, or a flood of C{RNG}, grows the
client's memory and its open sockets without bound (issue 11, points 17
and 18). Every such quantity has a cap here, in one frozen value passed
to L{msnp.client.MSNClient} (C{limits=}); C{docs/limits.md} lists them.

What is dropped or refused is logged as a summary (the first time, then
every L{SUMMARY_EVERY}th), never one line per hostile line, so that the
flood does not move from memory into the log.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()

#: A refusal or drop is logged the first time and then every this many.
SUMMARY_EVERY = 1000

_V = TypeVar("_V")


@dataclass(frozen=True)
class ClientLimits:
    """
    The client's caps against a hostile server; every value must be
    positive.

    @ivar placesPerContact: signed-in places (MPOP endpoints) kept per
        contact, and for the user's own account. A further new one makes
        the oldest known one be forgotten (C{NLN}); a C{UBX} listing more
        keeps the ones already known first.
    @ivar invitationsPerContact: invitations (C{RNG}) from one inviter
        answered within L{invitationWindow}; further ones are ignored.
    @ivar invitationWindow: seconds of that window (on the client's
        reactor, so tests move it with a C{Clock}).
    @ivar openConversations: conversations with a switchboard open or being
        opened; an invitation arriving when this many are open is ignored.
        Conversations the user opens are not refused, but count.
    @ivar keptConversations: conversations kept at all (open or dormant);
        past this, the oldest dormant ones with nothing queued are
        forgotten.
    @ivar trackedInviters: inviters whose recent invitations are counted;
        past this the least recently seen is forgotten, so invented
        inviter addresses cannot grow the bookkeeping.
    """

    placesPerContact: int = 16
    invitationsPerContact: int = 5
    invitationWindow: float = 60.0
    openConversations: int = 64
    keptConversations: int = 256
    trackedInviters: int = 1024

    def __post_init__(self) -> None:
        for each in fields(self):
            value = getattr(self, each.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ClientLimits.{each.name} must be a positive number, not {value!r}")

    def replace(self, **changes: Any) -> "ClientLimits":
        """
        A copy with some fields changed (checked like the original).
        """
        from dataclasses import replace

        return replace(self, **changes)


#: The limits used when none are given.
DEFAULT_CLIENT_LIMITS = ClientLimits()


class RefusalSummary:
    """
    Counts one kind of drop or refusal and logs the first and every
    L{SUMMARY_EVERY}th, with the total so far.
    """

    def __init__(self, what: str, every: int = SUMMARY_EVERY) -> None:
        """
        @param what: what is dropped, for the log line ("places of a contact").
        """
        self.what = what
        self.every = every
        self.count = 0

    def add(self, detail: str, count: int = 1) -> None:
        """
        Count C{count} more; C{detail} (already short, no peer bytes beyond
        an address) goes into the log line when one is written.
        """
        before = self.count
        self.count += count
        if before == 0 or before // self.every != self.count // self.every:
            log.warn(
                "Client limit: dropped {what} ({total} so far; latest: {detail})",
                what=self.what,
                total=self.count,
                detail=detail,
            )


def addPlace(places: "dict[str, _V]", guid: str, place: _V, limit: int) -> int:
    """
    Add C{place} under C{guid} to C{places}, forgetting the oldest ones
    (insertion order) so that at most C{limit} remain.

    @return: how many were forgotten.
    """
    dropped = 0
    if guid not in places:
        while len(places) >= limit:
            del places[next(iter(places))]
            dropped += 1
    places[guid] = place
    return dropped


def boundPlaces(
    new: "Mapping[str, _V]", known: "Mapping[str, Any]", limit: int
) -> "tuple[dict[str, _V], int]":
    """
    The places of a C{UBX}, at most C{limit}: those already in C{known}
    first (in C{new}'s order), then new ones; the rest, unknown, dropped.

    @return: the kept places and how many were dropped.
    """
    if len(new) <= limit:
        return dict(new), 0
    ordered = [g for g in new if g in known] + [g for g in new if g not in known]
    kept = {g: new[g] for g in ordered[:limit]}
    return kept, len(new) - len(kept)


class InvitationRate:
    """
    Invitations answered per inviter within a sliding window, on an
    injectable clock. Memory is bounded: at most C{limit} times per
    inviter and at most C{trackedInviters} inviters.
    """

    def __init__(self, limits: ClientLimits, clock: IReactorTime) -> None:
        self.limits = limits
        self.clock = clock
        self._seen: "OrderedDict[str, deque[float]]" = OrderedDict()

    def admit(self, inviter: str) -> bool:
        """
        Whether an invitation from C{inviter} may be answered now; if so
        it is counted.
        """
        now = self.clock.seconds()
        horizon = now - self.limits.invitationWindow
        times = self._seen.pop(inviter, None)
        if times is None:
            times = deque()
        while times and times[0] <= horizon:
            times.popleft()
        self._seen[inviter] = times
        while len(self._seen) > self.limits.trackedInviters:
            self._seen.popitem(last=False)
        if len(times) >= self.limits.invitationsPerContact:
            return False
        times.append(now)
        return True

    def tracked(self) -> int:
        """
        How many inviters are being counted (for tests and benchmarks).
        """
        return len(self._seen)


def permitsInvitation(contact: Optional[Any], blp: str) -> bool:
    """
    Whether the user's privacy lets an invitation from C{contact} (a
    L{msnp.contacts.Contact}, or L{None} for a stranger) be answered: never
    when blocked; with C{BLP BL} ("only people on my allow list") only
    when on the Allow list. The server is meant to refuse these already;
    this is for a server that does not.
    """
    if contact is not None and contact.isBlocked:
        return False
    if blp == "BL":
        return contact is not None and contact.isAllowed
    return True
