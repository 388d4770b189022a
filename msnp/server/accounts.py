# -*- test-case-name: test.test_server_store,test.test_server_durability -*-
"""
The local network's account store: who exists, their passwords, their
address books and memberships, and the tickets the SSO service issued.

Every server part (the SSO and ABCH HTTP services, the notification and
switchboard servers) reads and writes this one store, so what the SOAP
services say and what the notification server routes never disagree.
All methods are synchronous and run in the reactor thread.

L{AccountStore} keeps everything in memory (the default of
L{msnp.server.network.LocalNetwork}, and what tests use);
L{msnp.server.sqlstore.SQLiteAccountStore} is the same store made durable.
Both provide L{msnp.server.interfaces.IAccountStore}. The values it holds
are the account model of L{msnp.server.accountmodel} (which reports its
own changes, so the durable store commits what the protocol code assigns
without that code knowing) and the tickets of L{msnp.server.tickets}.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO
from msnp.server.accountmodel import (
    ALLOW,
    BLOCK,
    PENDING,
    REVERSE,
    ROLES,
    Account,
    AddressBookEntry,
    Group,
    Membership,
    isValidAddress,
    normalizeEmail,
)
# abch.py, addressbook.py and sharing.py (changed by work in parallel)
# still import the model and ticket names from here; the one they need
# that this module does not use is imported for them.
from msnp.server.accountmodel import AddressBookState as AddressBookState
from msnp.server.interfaces import IAccountStore, IRoamingProfileStore
from msnp.server.passwords import PasswordHasher
from msnp.server.tickets import DEFAULT_TICKET_LIFETIME, TicketCheck, TicketGrant, TicketState

if TYPE_CHECKING:
    from msnp.server.roaming import RoamedProfile


class AccountFileError(ValueError):
    """
    An accounts file could not be used; the message names the problem.
    """


@dataclass(frozen=True)
class OfflineMessage:
    """
    A message kept for an offline account (the OIM mailbox).

    @ivar messageId: unique in its store, never reused.
    @ivar received: when it was stored (seconds on the store's clock).
    @ivar payload: the message as the OIM service will hand it out.
    """

    messageId: int
    recipient: str
    sender: str
    senderName: str
    received: float
    payload: bytes = field(repr=False)


def _randomTicket() -> str:
    return "t=" + secrets.token_urlsafe(48) + "&p=" + secrets.token_urlsafe(24)


@implementer(IAccountStore, IRoamingProfileStore)
class AccountStore:
    """
    The accounts and lists of the local network, in memory.

    L{msnp.server.sqlstore.SQLiteAccountStore} extends it through the
    hooks L{_adopt}, L{_forget} and L{_membershipIdIssued}, and by
    overriding the offline-message methods.
    """

    def __init__(
        self,
        ticketLifetime: float = DEFAULT_TICKET_LIFETIME,
        clock: Optional[IReactorTime] = None,
        passwordHasher: Optional[PasswordHasher] = None,
    ) -> None:
        """
        @param ticketLifetime: seconds each SSO grant stays valid.
        @param clock: where "now" comes from for ticket lifetimes (the
            system time when L{None}); tests pass a
            L{twisted.internet.task.Clock} to expire tickets at will.
        @param passwordHasher: makes and checks password hashes (scrypt at
            L{msnp.server.passwords.defaultCost} by default).
        """
        if not ticketLifetime > 0:
            raise ValueError(f"a ticket lifetime must be positive, not {ticketLifetime!r}")
        self.ticketLifetime = ticketLifetime
        self.clock = clock
        self.passwordHasher = passwordHasher if passwordHasher is not None else PasswordHasher()
        self._accounts: dict[str, Account] = {}
        self._tickets: dict[str, TicketGrant] = {}
        self._contactsTickets: dict[str, TicketGrant] = {}
        self._webTickets: dict[str, TicketGrant] = {}
        self._nextMembershipId = 100
        self._offline: dict[str, list[OfflineMessage]] = {}
        self._roamed: dict[str, "RoamedProfile"] = {}
        self._nextMessageId = 1

    # -- hooks of a durable store ---------------------------------------------

    def _adopt(self, account: Account) -> None:
        """
        C{account} was just created here: a durable store writes it and
        starts observing it.
        """

    def _forget(self, account: Account) -> None:
        """
        C{account} was just removed (its lists already emptied).
        """

    def _membershipIdIssued(self, membershipId: int) -> None:
        """
        C{membershipId} was just handed out and must never be again.
        """

    # -- accounts -----------------------------------------------------------

    def addAccount(
        self, email: str, password: str, displayName: Optional[str] = None,
        network: int = NETWORK_PASSPORT,
    ) -> Account:
        """
        Create an account; its display name defaults to the e-mail address.

        @param network: 1, or 32 for an account that stands for a Yahoo!
            user (its contacts reach it with UUM/UBM only).
        @raise ValueError: the address is malformed or already exists, or
            the network is neither.
        """
        if network not in (NETWORK_PASSPORT, NETWORK_YAHOO):
            raise ValueError(f"an account is on network 1 or 32, not {network!r}")
        key = normalizeEmail(email)
        if not isValidAddress(key):
            raise ValueError(f"not an e-mail address: {email!r}")
        if key in self._accounts:
            raise ValueError(f"account already exists: {email!r}")
        cid = int.from_bytes(os.urandom(8), "big", signed=True)
        puid = int.from_bytes(os.urandom(8), "big") >> 8
        account = Account(
            email=key,
            passwordHash=self.passwordHasher.hash(password),
            displayName=displayName if displayName is not None else key,
            cid=cid,
            puid=puid,
            network=network,
        )
        self._accounts[key] = account
        self._adopt(account)
        return account

    def removeAccount(self, email: str) -> bool:
        """
        Delete the account for C{email}: it leaves every other account's
        address book and role lists, its offline messages go, and its
        tickets stop working. Whether it existed.
        """
        account = self.get(email)
        if account is None:
            return False
        for other in list(self._accounts.values()):
            if other is account:
                continue
            other.addressBook.pop(account.email, None)
            for role in ROLES:
                other.memberships[role].pop(account.email, None)
        del self._accounts[account.email]
        self._offline.pop(account.email, None)
        self._roamed.pop(account.email, None)
        self._forget(account)
        return True

    def setPassword(self, email: str, password: str) -> None:
        """
        Replace the password of C{email} (a fresh salt and hash).

        @raise KeyError: no such account.
        """
        self._require(email).passwordHash = self.passwordHasher.hash(password)

    def get(self, email: str) -> Optional[Account]:
        """
        The account for C{email}, or L{None}.
        """
        return self._accounts.get(normalizeEmail(email))

    def __iter__(self) -> Iterator[Account]:
        return iter(list(self._accounts.values()))

    def __len__(self) -> int:
        return len(self._accounts)

    def checkPassword(self, email: str, password: str) -> Optional[Account]:
        """
        The account if C{password} is right (compared in constant time), else
        L{None}. Only the first 16 characters count
        (L{msnp.server.passwords.significantPassword}).
        """
        account = self.get(email)
        if account is None:
            return None
        if self.passwordHasher.verify(password, account.passwordHash):
            return account
        return None

    def checkPasswordInThread(
        self, email: str, password: str, reactor: Any = None
    ) -> "Deferred[Optional[Account]]":
        """
        L{checkPassword} with the scrypt computation (tens of milliseconds
        at production cost) in the reactor's thread pool, so a sign-in does
        not stall every other connection; the lookup itself stays in the
        reactor thread. Fires with the account or L{None}.
        """
        from twisted.internet.threads import deferToThreadPool

        from msnp.reactors import reactorOrDefault

        reactor = reactorOrDefault(reactor)
        account = self.get(email)
        if account is None:
            return succeed(None)
        encoded = account.passwordHash
        d: Deferred[bool] = deferToThreadPool(
            reactor, reactor.getThreadPool(), self.passwordHasher.verify, password, encoded
        )
        return d.addCallback(lambda ok: account if ok and self.get(email) is account else None)

    # -- lists --------------------------------------------------------------

    def newMembershipId(self) -> int:
        """
        A membership id never handed out before by this store: clients
        delete memberships by id, so ids must not be reused.
        """
        self._nextMembershipId += 1
        self._membershipIdIssued(self._nextMembershipId)
        return self._nextMembershipId

    def setRole(self, owner: Account, role: str, email: str, displayName: str = "") -> Membership:
        """
        Put C{email} on C{owner}'s C{role} list (idempotent). Allow and Block
        exclude each other, as the real service insists.
        """
        key = normalizeEmail(email)
        if role == ALLOW:
            owner.memberships[BLOCK].pop(key, None)
        elif role == BLOCK:
            owner.memberships[ALLOW].pop(key, None)
        existing = owner.memberships[role].get(key)
        if existing is not None:
            return existing
        membership = Membership(key, self.newMembershipId(), displayName)
        owner.memberships[role][key] = membership
        return membership

    def clearRole(self, owner: Account, role: str, email: str) -> bool:
        """
        Take C{email} off C{owner}'s C{role} list; whether it was there.
        """
        return owner.memberships[role].pop(normalizeEmail(email), None) is not None

    def addToAddressBook(
        self, owner: Account, email: str, displayName: Optional[str] = None
    ) -> AddressBookEntry:
        """
        Add C{email} to C{owner}'s forward list (idempotent) and record on the
        other account, if it exists, that C{owner} has it on their list
        (Reverse, and Pending unless it already allowed or blocked C{owner}).
        """
        key = normalizeEmail(email)
        entry = owner.addressBook.get(key)
        if entry is None:
            other = self.get(key)
            name = displayName or (other.displayName if other else key)
            entry = AddressBookEntry(key, str(uuid.uuid4()), name)
            owner.addressBook[key] = entry
        entry.isMessengerUser = True
        other = self.get(key)
        if other is not None:
            self.setRole(other, REVERSE, owner.email, owner.displayName)
            if not (other.hasRole(ALLOW, owner.email) or other.hasRole(BLOCK, owner.email)):
                self.setRole(other, PENDING, owner.email, owner.displayName)
        return entry

    def removeFromAddressBook(self, owner: Account, email: str) -> Optional[AddressBookEntry]:
        """
        Remove C{email} from C{owner}'s address book, and C{owner} from the
        other account's Reverse and Pending lists.
        """
        key = normalizeEmail(email)
        entry = owner.addressBook.pop(key, None)
        other = self.get(key)
        if entry is not None and other is not None:
            self.clearRole(other, REVERSE, owner.email)
            self.clearRole(other, PENDING, owner.email)
        return entry

    def addContact(self, owner: str, contact: str, mutual: bool = False) -> None:
        """
        Give C{owner} the contact C{contact}: forward and allow lists.
        With C{mutual}, the contact gets C{owner} the same way, so both see
        each other without any request to accept.

        @raise KeyError: an account does not exist.
        """
        ownerAccount = self._require(owner)
        contactAccount = self._require(contact)
        self.addToAddressBook(ownerAccount, contactAccount.email)
        self.setRole(ownerAccount, ALLOW, contactAccount.email)
        if mutual:
            self.addToAddressBook(contactAccount, ownerAccount.email)
            self.setRole(contactAccount, ALLOW, ownerAccount.email)
            self.clearRole(contactAccount, PENDING, ownerAccount.email)
            self.clearRole(ownerAccount, PENDING, contactAccount.email)

    def addGroup(self, owner: Account, name: str) -> Group:
        """
        Give C{owner} a new group with a fresh id (names are checked by the
        caller, which knows the service's rules).
        """
        group = Group(str(uuid.uuid4()), name)
        owner.groups[group.groupId] = group
        return group

    def canSee(self, watcher: Account, subject: Account) -> bool:
        """
        Whether C{watcher} may see C{subject}'s presence: C{watcher} has the
        subject on its forward list and the subject does not block it (and,
        with C{BLP BL}, explicitly allows it).
        """
        if not watcher.onForwardList(subject.email):
            return False
        if subject.hasRole(BLOCK, watcher.email):
            return False
        if subject.blp == "BL" and not subject.hasRole(ALLOW, watcher.email):
            return False
        return True

    def watchersOf(self, subject: Account) -> list[Account]:
        """
        Every account allowed to see C{subject}'s presence.
        """
        return [a for a in self._accounts.values() if a is not subject and self.canSee(a, subject)]

    # -- tickets ------------------------------------------------------------

    def now(self) -> float:
        """
        The current time on the store's clock.
        """
        return self.clock.seconds() if self.clock is not None else time.time()

    def issueTickets(self, account: Account) -> TicketGrant:
        """
        Issue a fresh ticket set and a fresh 24-byte proof key for one login,
        valid for L{ticketLifetime} seconds from now.
        """
        issued = self.now()
        grant = TicketGrant(
            email=account.email,
            clearTicket=_randomTicket(),
            binarySecret=base64.b64encode(os.urandom(24)).decode("ascii"),
            contactsTicket=_randomTicket(),
            webTicket=_randomTicket(),
            issued=issued,
            expires=issued + self.ticketLifetime,
        )
        self._tickets[grant.clearTicket] = grant
        self._contactsTickets[grant.contactsTicket] = grant
        self._webTickets[grant.webTicket] = grant
        return grant

    def grantForTicket(self, clearTicket: str) -> Optional[TicketGrant]:
        """
        The grant a C{messengerclear.live.com} ticket belongs to, or L{None}.
        """
        return self._tickets.get(clearTicket)

    def isExpired(self, grant: TicketGrant) -> bool:
        """
        Whether C{grant} is past its lifetime now.
        """
        return grant.isExpired(self.now())

    def checkContactsTicket(self, ticket: str) -> TicketCheck:
        """
        Classify a presented C{contacts.msn.com} ticket: valid (with its
        account), expired, or unknown (never issued, or its account is
        gone). The ABCH answers the last two differently.
        """
        return self._checkTicket(self._contactsTickets.get(ticket))

    def _checkTicket(self, grant: Optional[TicketGrant]) -> TicketCheck:
        """
        Classify the grant a presented ticket names (L{None}: never issued).
        """
        if grant is None:
            return TicketCheck(TicketState.UNKNOWN)
        account = self.get(grant.email)
        if account is None:
            return TicketCheck(TicketState.UNKNOWN)
        if self.isExpired(grant):
            return TicketCheck(TicketState.EXPIRED)
        return TicketCheck(TicketState.VALID, account, grant)

    def checkWebTicket(self, ticket: str) -> TicketCheck:
        """
        Classify a presented C{messenger.msn.com} ticket (the RSI
        service's), like L{checkContactsTicket}.
        """
        return self._checkTicket(self._webTickets.get(ticket))

    def accountForContactsTicket(self, ticket: str) -> Optional[Account]:
        """
        The account a valid (known and unexpired) C{contacts.msn.com}
        ticket was issued to, or L{None}.
        """
        return self.checkContactsTicket(ticket).account

    # -- roamed profiles (msnp.server.roaming.IRoamingProfileStore) ------------

    def getRoamingProfile(self, email: str) -> Optional["RoamedProfile"]:
        """
        The roamed profile of C{email}, or L{None} when nothing was roamed.
        """
        return self._roamed.get(normalizeEmail(email))

    def setRoamingProfile(self, email: str, profile: "RoamedProfile") -> None:
        """
        Replace the roamed profile of the existing account C{email}.

        @raise KeyError: no such account.
        """
        account = self._require(email)
        self._roamed[account.email] = profile

    # -- offline messages ---------------------------------------------------

    def storeOfflineMessage(
        self, recipient: str, sender: str, senderName: str, payload: bytes
    ) -> OfflineMessage:
        """
        Keep C{payload} for C{recipient} (see L{IAccountStore}).

        @raise KeyError: no such recipient account.
        """
        account = self._require(recipient)
        message = OfflineMessage(
            self._nextMessageId, account.email, normalizeEmail(sender), senderName, self.now(), payload
        )
        self._nextMessageId += 1
        self._offline.setdefault(account.email, []).append(message)
        return message

    def listOfflineMessages(self, recipient: str) -> list[OfflineMessage]:
        """
        The messages kept for C{recipient}, oldest first.
        """
        return list(self._offline.get(normalizeEmail(recipient), []))

    def deleteOfflineMessages(self, recipient: str, messageIds: Any) -> int:
        """
        Delete the given messages of C{recipient}; how many were deleted.
        """
        key = normalizeEmail(recipient)
        wanted = set(messageIds)
        kept = [m for m in self._offline.get(key, []) if m.messageId not in wanted]
        deleted = len(self._offline.get(key, [])) - len(kept)
        if kept:
            self._offline[key] = kept
        else:
            self._offline.pop(key, None)
        return deleted

    # -- files --------------------------------------------------------------

    def loadJSON(self, text: str) -> None:
        """
        Add the accounts of a JSON document: a list of objects with
        C{email}, C{password}, optional C{displayName} and optional
        C{contacts} (addresses of other accounts in the same document, made
        mutual).

        @raise AccountFileError: naming exactly what is wrong.
        """
        try:
            document: Any = json.loads(text)
        except ValueError as e:
            raise AccountFileError(f"not valid JSON: {e}") from None
        if not isinstance(document, list):
            raise AccountFileError("the document must be a JSON list of accounts")
        pairs: list[tuple[str, str]] = []
        for index, item in enumerate(document):
            where = f"account #{index + 1}"
            if not isinstance(item, dict):
                raise AccountFileError(f"{where} is not a JSON object")
            email = item.get("email")
            password = item.get("password")
            if not isinstance(email, str) or not email:
                raise AccountFileError(f"{where} has no 'email' string")
            if not isinstance(password, str) or not password:
                raise AccountFileError(f"{where} ({email}) has no 'password' string")
            displayName = item.get("displayName", item.get("display_name"))
            if displayName is not None and not isinstance(displayName, str):
                raise AccountFileError(f"{where} ({email}): 'displayName' must be a string")
            contacts = item.get("contacts", [])
            if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
                raise AccountFileError(f"{where} ({email}): 'contacts' must be a list of e-mail strings")
            try:
                self.addAccount(email, password, displayName)
            except ValueError as e:
                raise AccountFileError(f"{where}: {e}") from None
            pairs.extend((email, c) for c in contacts)
        for owner, contact in pairs:
            if self.get(contact) is None:
                raise AccountFileError(f"{owner} lists unknown contact {contact!r}")
            self.addContact(owner, contact, mutual=True)

    def _require(self, email: str) -> Account:
        account = self.get(email)
        if account is None:
            raise KeyError(f"no such account: {email}")
        return account
