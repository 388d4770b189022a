# -*- test-case-name: test.test_server_store -*-
"""
The contracts of the local network's account store.

L{IAccountStore} is what the server parts (SSO, ABCH, NS, SB) and the
admin command rely on; L{msnp.server.accounts.AccountStore} (in memory)
and L{msnp.server.sqlstore.SQLiteAccountStore} (durable) provide it, and
one shared test suite (C{test/test_server_store.py}) runs against both.

All methods are synchronous and called in the reactor thread. A durable
store has committed a change before the method that makes it returns, and
changes the protocol code makes by assigning to the account model are
committed before the assignment returns (L{IAccountObserver}), so a reply
written after them acknowledges only what is on disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from msnp.server.roaming import RoamedProfile


class IAccountObserver(Interface):
    """
    Told by an L{msnp.server.accounts.Account} after each change to it; a
    durable store commits the change before the method returns.
    """

    def accountChanged(account: Any) -> None:
        """
        The account's own fields (display name, personal message, BLP,
        password hash) changed.
        """

    def entryChanged(account: Any, email: str) -> None:
        """
        The address-book entry for C{email} was added, changed or removed.
        """

    def groupChanged(account: Any, groupId: str) -> None:
        """
        The group C{groupId} was added, renamed or removed.
        """

    def membershipChanged(account: Any, role: str, email: str) -> None:
        """
        C{email} was put on, changed on or taken off the C{role} list.
        """

    def stateChanged(account: Any) -> None:
        """
        The account's ABCH state (annotations, invitations, cache key,
        last change) changed.
        """


class IAccountStore(Interface):
    """
    Accounts, their lists, address books and groups, SSO tickets, and
    offline messages.
    """

    ticketLifetime = Attribute("Seconds each SSO grant stays valid.")

    # -- accounts

    def addAccount(email: str, password: str, displayName: Any = None, network: int = 1) -> Any:
        """
        Create an account, storing only a salted hash of C{password};
        C{network=32} makes it stand for a Yahoo! user (docs/offline.md).

        @raise ValueError: the address is malformed or already exists.
        """

    def removeAccount(email: str) -> bool:
        """
        Delete an account and take it off every other account's lists;
        whether it existed.
        """

    def setPassword(email: str, password: str) -> None:
        """
        Replace an account's password.

        @raise KeyError: no such account.
        """

    def get(email: str) -> Any:
        """
        The account for C{email}, or L{None}.
        """

    def __iter__() -> Any:
        """
        Every account (a snapshot).
        """

    def __len__() -> int:
        """
        How many accounts exist.
        """

    def checkPassword(email: str, password: str) -> Any:
        """
        The account if C{password} is right, else L{None}.
        """

    # -- lists, address book, groups

    def newMembershipId() -> int:
        """
        A membership id never handed out before by this store.
        """

    def setRole(owner: Any, role: str, email: str, displayName: str = "") -> Any:
        """
        Put C{email} on C{owner}'s C{role} list (Allow and Block exclusive).
        """

    def clearRole(owner: Any, role: str, email: str) -> bool:
        """
        Take C{email} off C{owner}'s C{role} list; whether it was there.
        """

    def addToAddressBook(owner: Any, email: str, displayName: Any = None) -> Any:
        """
        Add C{email} to C{owner}'s forward list and record the reverse side.
        """

    def removeFromAddressBook(owner: Any, email: str) -> Any:
        """
        Remove C{email} from C{owner}'s address book and the reverse side.
        """

    def addContact(owner: str, contact: str, mutual: bool = False) -> None:
        """
        Administrative: give C{owner} the contact C{contact}.
        """

    def addGroup(owner: Any, name: str) -> Any:
        """
        Give C{owner} a new group with a fresh id.
        """

    def canSee(watcher: Any, subject: Any) -> bool:
        """
        Whether C{watcher} may see C{subject}'s presence.
        """

    def watchersOf(subject: Any) -> Any:
        """
        Every account allowed to see C{subject}'s presence.
        """

    # -- tickets (never durable: a restart makes clients sign in again)

    def now() -> float:
        """
        The current time on the store's clock.
        """

    def issueTickets(account: Any) -> Any:
        """
        Issue a fresh ticket set for one login.
        """

    def grantForTicket(clearTicket: str) -> Any:
        """
        The grant of a C{messengerclear.live.com} ticket, or L{None}.
        """

    def isExpired(grant: Any) -> bool:
        """
        Whether C{grant} is past its lifetime now.
        """

    def checkContactsTicket(ticket: str) -> Any:
        """
        Classify a presented C{contacts.msn.com} ticket.
        """

    def accountForContactsTicket(ticket: str) -> Any:
        """
        The account of a valid contacts ticket, or L{None}.
        """

    def checkWebTicket(ticket: str) -> Any:
        """
        Classify a presented C{messenger.msn.com} ticket (the RSI
        service's), like L{checkContactsTicket}.
        """

    # -- offline messages (the OIM service's mailbox; see docs/store.md)

    def storeOfflineMessage(recipient: str, sender: str, senderName: str, payload: bytes) -> Any:
        """
        Keep a message for C{recipient}, who is offline; it is committed
        before this returns. Returns the stored
        L{msnp.server.accounts.OfflineMessage} (its C{messageId} is unique
        in the store and never reused).

        @raise KeyError: no such recipient account.
        """

    def listOfflineMessages(recipient: str) -> Any:
        """
        The messages kept for C{recipient}, oldest first (an empty list for
        an unknown account).
        """

    def deleteOfflineMessages(recipient: str, messageIds: Any) -> int:
        """
        Delete the given messages of C{recipient} (ids of other recipients
        are ignored); how many were deleted.
        """

    # -- files

    def loadJSON(text: str) -> None:
        """
        Add the accounts of a JSON accounts document.
        """


class IRoamingProfileStore(Interface):
    """
    Where roamed profiles are kept: the seam the account stores implement
    (in memory, or in the SQLite database). Calls are synchronous and run in the reactor thread.
    """

    def getRoamingProfile(email: str) -> Optional[RoamedProfile]:
        """
        The roamed profile of the account C{email} (normalised), or L{None}
        when nothing was ever roamed.
        """

    def setRoamingProfile(email: str, profile: RoamedProfile) -> None:
        """
        Replace the roamed profile of C{email}.
        """
