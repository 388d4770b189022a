# -*- test-case-name: test.test_roster,test.test_roster_soap -*-
"""
The plumbing that L{msnp.roster.RosterManager} is built on: the names of a
group reference and of the NS hook, the partner scenarios, address and
group-name validation (L{isValidAddress}), the C{_Rollback} of remote
steps, and L{RosterBase}, whose helpers (one operation at a time, the
local lookups, one incremental C{ADL}/C{RML}) both the user-facing
operations of L{msnp.roster} and the refresh machinery of
L{msnp.rostersync} use.

It is separate so that neither of those two modules has to import the
other: each builds on this one.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Optional, TypeVar, Union

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.contacts import NETWORK_PASSPORT, Contact, ContactList, Group, Lists, normalizeEmail
from msnp.listpayload import ListEntry, buildListPayloads
from msnp.errors import ContactListError
from msnp.soap.addressbook import AddressBookService
from msnp.soap.sharing import SharingService
from msnp.wire import Command

__all__ = ["RosterBase", "GroupReference", "SendListCommand", "isValidAddress"]

log = Logger()

_T = TypeVar("_T")

#: How a caller names a group: the L{Group} itself, its id, or its name.
GroupReference = Union[Group, str]

#: The NS hook: send C{ADL} or C{RML} with a payload, fire with the reply.
SendListCommand = Callable[[str, bytes], "Deferred[Command]"]

#: Partner scenarios (reference section 3.2).
SCENARIO_CONTACT_SAVE = "ContactSave"
SCENARIO_TIMER = "Timer"
SCENARIO_BLOCK_UNBLOCK = "BlockUnblock"
SCENARIO_CONTACT_MSGR_API = "ContactMsgrAPI"
SCENARIO_GROUP_SAVE = "GroupSave"
SCENARIO_PENDING_LIST = "MessengerPendingList"
SCENARIO_CHANGE_ALERT = "ABChangeNotifyAlert"

#: Characters that have no business in a Passport name and that would
#: break the NS grammar (C{;} separates endpoints) or the XML payloads.
_ADDRESS = re.compile(r"^[^@\s;,<>\"'&()\\]+@[^@\s;,<>\"'&()\\]+$")
#: Longest address the services accept (RFC 5321 path limit).
_MAX_ADDRESS = 254
#: Longest group name the address book accepts (WLM 2009's limit).
MAX_GROUP_NAME = 61


def isValidAddress(email: str) -> bool:
    """
    Whether C{email} looks like a Passport name: one C{@}, something on both
    sides, no whitespace and none of the characters that would break the
    NS grammar or the list payloads.
    """
    text = email.strip()
    if not text or len(text) > _MAX_ADDRESS:
        return False
    if not _ADDRESS.match(text):
        return False
    local, _, domain = text.partition("@")
    return not (domain.startswith(".") or domain.endswith(".") or ".." in domain)


class _Rollback:
    """
    The compensating steps of the remote steps done so far, undone in
    reverse order when a later step fails.

    An undo that fails is logged and skipped: the caller must hear about
    the first failure, and the server's state is then reconciled by the
    next address-book refresh.
    """

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self._steps: list[tuple[str, Callable[[], "Deferred[Any]"]]] = []

    def push(self, description: str, undo: Callable[[], "Deferred[Any]"]) -> None:
        self._steps.append((description, undo))

    async def run(self, reason: BaseException) -> None:
        log.info(
            "{operation} failed ({reason}); undoing {count} remote step(s)",
            operation=self.operation,
            reason=str(reason),
            count=len(self._steps),
        )
        while self._steps:
            description, undo = self._steps.pop()
            try:
                await undo()
            except Exception:
                log.failure(
                    "Could not undo {step} of {operation}; the server keeps it until the next refresh",
                    Failure(),
                    step=description,
                    operation=self.operation,
                )


class RosterBase:
    """
    The state every roster operation works on (set by
    L{msnp.roster.RosterManager}) and the helpers they share.
    """

    contacts: ContactList
    sharing: SharingService
    addressBook: AddressBookService
    sendListCommand: SendListCommand
    observer: Optional[object]
    session: Optional[object]
    ownEmail: str
    _lockObject: Optional[DeferredLock]

    @property
    def _lock(self) -> DeferredLock:
        """
        What serialises the operations, built by the first one (most
        sessions never change their list; issue 13).
        """
        lock = self._lockObject
        if lock is None:
            lock = self._lockObject = DeferredLock()
        return lock

    def _serialised(self, work: Callable[[], Awaitable[_T]]) -> "Deferred[_T]":
        """
        Run C{work} once every earlier operation has finished.
        """

        def start() -> "Deferred[_T]":
            return ensureDeferred(work())  # type: ignore[arg-type]

        return self._lock.run(start)

    def _address(self, email: str) -> str:
        """
        The normalised form of C{email}.

        @raise ContactListError: it is malformed or is the user's own.
        """
        if not isinstance(email, str) or not isValidAddress(email):
            raise ContactListError(f"not a valid address: {email!r}")
        key = normalizeEmail(email)
        if self.ownEmail and key == self.ownEmail:
            raise ContactListError("you cannot put yourself on your own contact list")
        return key

    def _known(self, email: str) -> Contact:
        key = self._address(email)
        contact = self.contacts.get(key)
        if contact is None:
            raise ContactListError(f"{key} is not on the contact list")
        return contact

    def _group(self, group: GroupReference) -> Group:
        """
        The local group C{group} stands for (a L{Group}, an id, or a name).

        @raise ContactListError: there is no such group.
        """
        if isinstance(group, Group):
            found = self.contacts.groups.get(group.groupId)
        elif isinstance(group, str):
            found = self.contacts.groups.get(group)
            if found is None:
                lowered = group.lower()
                found = next(
                    (g for g in self.contacts.groups.values() if g.groupId.lower() == lowered), None
                )
            if found is None:
                found = self.contacts.groupNamed(group)
        else:
            found = None
        if found is None:
            raise ContactListError(f"no such group: {group!r}")
        return found

    def _groupCalled(self, name: str) -> Optional[Group]:
        """
        The group whose name equals C{name} ignoring case, as the address
        book compares them.
        """
        wanted = name.lower()
        return next((g for g in self.contacts.groups.values() if g.name.lower() == wanted), None)

    @staticmethod
    def _groupName(name: str) -> str:
        if not isinstance(name, str):
            raise ContactListError(f"a group name must be text, not {name!r}")
        text = name.strip()
        if not text:
            raise ContactListError("a group name cannot be empty")
        if len(text) > MAX_GROUP_NAME:
            raise ContactListError(f"a group name is at most {MAX_GROUP_NAME} characters")
        return text

    def _listCommand(self, name: str, email: str, bits: Lists, network: int) -> "Deferred[Command]":
        """
        Send one incremental C{ADL} or C{RML} about one address.
        """
        (payload,) = buildListPayloads([ListEntry(email, bits, network)], initial=False)
        return self.sendListCommand(name, payload)
    def _contactFor(self, email: str, displayName: str = "", network: int = NETWORK_PASSPORT) -> Contact:
        contact = self.contacts.get(email)
        if contact is None:
            contact = self.contacts.add(
                Contact(email=email, displayName=displayName or email, network=network)
            )
        return contact

    def _dropIfEmpty(self, contact: Contact) -> None:
        if not contact.lists:
            self.contacts.remove(contact.email)
