# -*- test-case-name: test.test_server_store,test.test_server_durability -*-
"""
The account model of the local network: an L{Account} with its address
book (L{AddressBookEntry}, L{Group}), its sharing-service role lists
(L{Membership}, the roles L{ALLOW}, L{BLOCK}, L{REVERSE} and L{PENDING})
and the ABCH services' L{AddressBookState}, plus the address rules
(L{normalizeEmail}, L{isValidAddress}).

These are the values every server part reads and changes; they are kept
apart from the store that holds them (L{msnp.server.accounts}) because
they are what the protocol code works with, while only the store's
owners create and look up accounts. The model reports its own changes
(L{msnp.server.observed}) to the C{_observer} of each account, so the
durable store (L{msnp.server.sqlstore}) commits what the protocol code
assigns without that code knowing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# The store keys accounts exactly as the client keys its contacts, so both
# sides share one definition (re-exported here for the server modules).
from msnp.contacts import NETWORK_PASSPORT
from msnp.contacts import normalizeEmail as normalizeEmail
from msnp.server.interfaces import IAccountObserver
from msnp.server.observed import Observed, ObservedDict, ObservedSet

#: Membership roles of the sharing service (reference section 3.1).
ALLOW = "Allow"
BLOCK = "Block"
REVERSE = "Reverse"
PENDING = "Pending"
ROLES = (ALLOW, BLOCK, REVERSE, PENDING)


def isValidAddress(email: str) -> bool:
    """
    Whether a normalised C{email} can name an account: one C{@} with text
    on both sides, no spaces. Account creation and the ABCH services ask
    the same question, so they answer it here once.
    """
    local, sep, domain = email.partition("@")
    return bool(sep and local and domain and "@" not in domain and " " not in email)


@dataclass
class Group(Observed):
    """
    A group of the owner's address book.
    """

    groupId: str
    name: str


@dataclass
class AddressBookEntry(Observed):
    """
    One contact of an owner's address book (the forward list when
    C{isMessengerUser} is true).
    """

    email: str
    contactId: str
    displayName: str
    groupIds: set[str] = field(default_factory=set)
    isMessengerUser: bool = True

    def _wrapField(self, name: str, value: Any) -> Any:
        if name == "groupIds" and not isinstance(value, ObservedSet):
            return ObservedSet(value, onChange=self._changed)
        return value


@dataclass
class Membership(Observed):
    """
    One member of a sharing-service role list.
    """

    email: str
    membershipId: int
    displayName: str = ""


@dataclass
class AddressBookState(Observed):
    """
    What the ABCH services say about an account beyond its lists: the Me
    contact's id and annotations, when the address book was created and
    last changed, the invitation texts of pending requests, and the cache
    key and session id of the answers.

    It is kept on the L{Account} rather than in the service resource so
    that a resource built anew over the same store answers with the same
    Me contact id, annotations and cache key: a client that cached them
    must not see them change under it.
    """

    meContactId: str
    created: float
    lastChange: float
    annotations: dict[str, str] = field(
        default_factory=lambda: {
            "MSN.IM.MBEA": "0",
            "MSN.IM.GTC": "1",
            "MSN.IM.MPOP": "1",
            "MSN.IM.RoamLiveProperties": "1",
        }
    )
    #: invitation text of each address that added this account (Pending).
    inviteMessages: dict[str, str] = field(default_factory=dict)
    cacheKey: str = ""
    sessionId: str = ""

    def _wrapField(self, name: str, value: Any) -> Any:
        if name in ("annotations", "inviteMessages") and not isinstance(value, ObservedDict):
            return ObservedDict(value.items(), onChange=lambda key: self._changed())
        return value


#: The fields of an L{Account} kept in its own record (not its lists).
ACCOUNT_FIELDS = ("passwordHash", "displayName", "personalMessage", "blp")


@dataclass
class Account(Observed):
    """
    A user of the local network.

    Only a salted scrypt hash of the password is kept
    (L{msnp.server.passwords}), and it is excluded from the C{repr} so it
    cannot leak into logs.

    Every change to the account, its address book, groups, memberships and
    ABCH state is reported to its C{_observer} (set by a durable store);
    the in-memory store sets none.
    """

    email: str
    passwordHash: str = field(repr=False)
    displayName: str
    cid: int
    puid: int
    personalMessage: str = ""
    blp: str = "AL"
    #: 1 (Live) or 32: an account standing for a Yahoo! user, reached
    #: with UUM/UBM only (docs/offline.md).
    network: int = NETWORK_PASSPORT
    addressBook: dict[str, AddressBookEntry] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    memberships: dict[str, dict[str, Membership]] = field(
        default_factory=lambda: {role: {} for role in ROLES}
    )
    #: the ABCH services' own state, created by them on first use.
    addressBookState: Optional[AddressBookState] = field(default=None, repr=False, compare=False)

    _observer: Optional[IAccountObserver] = field(default=None, repr=False, compare=False, init=False)

    def _wrapField(self, name: str, value: Any) -> Any:
        if name == "addressBook" and not isinstance(value, ObservedDict):
            return ObservedDict(value.items(), onChange=self._entryChanged)
        if name == "groups" and not isinstance(value, ObservedDict):
            return ObservedDict(value.items(), onChange=self._groupChanged)
        if name == "memberships":
            return {
                role: members if isinstance(members, ObservedDict)
                else ObservedDict(members.items(), onChange=self._membershipCallback(role))
                for role, members in value.items()
            }
        if name == "addressBookState" and value is not None:
            object.__setattr__(value, "_onChange", self._stateChanged)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, self._wrapField(name, value))
        observer = self.__dict__.get("_observer")
        if observer is None:
            return
        if name in ACCOUNT_FIELDS:
            observer.accountChanged(self)
        elif name == "addressBookState":
            observer.stateChanged(self)

    def _entryChanged(self, key: str) -> None:
        observer = self.__dict__.get("_observer")
        if observer is not None:
            observer.entryChanged(self, key)

    def _groupChanged(self, groupId: str) -> None:
        observer = self.__dict__.get("_observer")
        if observer is not None:
            observer.groupChanged(self, groupId)

    def _membershipCallback(self, role: str) -> Callable[[str], None]:
        def changed(key: str) -> None:
            observer = self.__dict__.get("_observer")
            if observer is not None:
                observer.membershipChanged(self, role, key)

        return changed

    def _stateChanged(self) -> None:
        observer = self.__dict__.get("_observer")
        if observer is not None:
            observer.stateChanged(self)

    def onForwardList(self, email: str) -> bool:
        """
        Whether C{email} is on this account's forward list: in the address
        book and marked a messenger user (other entries are only address
        book contacts, whose presence the account does not follow).
        """
        entry = self.addressBook.get(normalizeEmail(email))
        return entry is not None and entry.isMessengerUser

    def hasRole(self, role: str, email: str) -> bool:
        """
        Whether C{email} is on this account's C{role} membership list.
        """
        return normalizeEmail(email) in self.memberships[role]
