# -*- test-case-name: test.test_server_storage -*-
"""
What the local storage service keeps, behind the seams a durable store
implements: the roamed profile of each account (L{IRoamingProfileStore}:
C{getRoamingProfile}/C{setRoamingProfile}) and the C{storage.msn.com}
tickets issued with each SSO grant (L{IStorageTickets}).

L{MemoryRoamingProfiles} and L{StorageTickets} keep them in memory for the
life of the process.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Optional

from zope.interface import Interface, implementer

from msnp.server.accounts import AccountStore, TicketCheck, TicketGrant, TicketState
from msnp.server.interfaces import IRoamingProfileStore


@dataclass(frozen=True)
class RoamedPicture:
    """
    The stored display picture (the bytes stay out of the C{repr}).

    @ivar version: raised at every change, so a C{PreAuthURL} changes with it.
    """

    data: bytes = field(repr=False)
    mimeType: str
    name: str = "tile"
    version: int = 1


@dataclass(frozen=True)
class RoamedProfile:
    """
    What is roamed for one account. L{None} means "never set", which the
    service leaves out of C{GetProfile} (as Escargot does).
    """

    displayName: Optional[str] = None
    displayNameModified: float = 0.0
    personalMessage: Optional[str] = None
    personalMessageModified: float = 0.0
    picture: Optional[RoamedPicture] = None
    modified: float = 0.0


@implementer(IRoamingProfileStore)
class MemoryRoamingProfiles:
    """
    Roamed profiles in a dict, for the life of the process.
    """

    def __init__(self) -> None:
        self._profiles: dict[str, RoamedProfile] = {}

    def getRoamingProfile(self, email: str) -> Optional[RoamedProfile]:
        return self._profiles.get(email)

    def setRoamingProfile(self, email: str, profile: RoamedProfile) -> None:
        self._profiles[email] = profile


class IStorageTickets(Interface):
    """
    Who a presented C{storage.msn.com} ticket belongs to.
    """

    def checkStorageTicket(ticket: str) -> TicketCheck:
        """
        Classify C{ticket}: valid (with account and grant), expired or unknown.
        """


@implementer(IStorageTickets)
class StorageTickets:
    """
    The storage tickets issued with each SSO grant, valid as long as it.

    The SSO service asks L{issue} for the C{storage.msn.com} token of a
    grant; the storage service asks L{checkStorageTicket}. Tickets are kept
    only in memory and are never logged.
    """

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self._grants: dict[str, TicketGrant] = {}
        self._byGrant: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<StorageTickets {len(self._grants)} issued>"

    def issue(self, grant: TicketGrant) -> str:
        """
        The storage ticket of C{grant} (the same one if asked again).
        """
        self._forgetExpired()
        existing = self._byGrant.get(id(grant))
        if existing is not None and self._grants.get(existing) is grant:
            return existing
        ticket = "t=" + secrets.token_urlsafe(48) + "&p=" + secrets.token_urlsafe(24)
        self._grants[ticket] = grant
        self._byGrant[id(grant)] = ticket
        return ticket

    def _forgetExpired(self) -> None:
        """
        Drop the tickets of grants expired for longer than their lifetime,
        so a long-running network does not keep every ticket it ever
        issued; a recently expired one is still recognised (and answered
        C{TicketExpired}, the cue to renew).
        """
        now = self.store.now()
        for ticket, grant in list(self._grants.items()):
            if now >= grant.expires + (grant.expires - grant.issued):
                del self._grants[ticket]
                if self._byGrant.get(id(grant)) == ticket:
                    del self._byGrant[id(grant)]

    def checkStorageTicket(self, ticket: str) -> TicketCheck:
        grant = self._grants.get(ticket)
        if grant is None:
            return TicketCheck(TicketState.UNKNOWN)
        account = self.store.get(grant.email)
        if account is None:
            return TicketCheck(TicketState.UNKNOWN)
        if self.store.isExpired(grant):
            return TicketCheck(TicketState.EXPIRED)
        return TicketCheck(TicketState.VALID, account, grant)


