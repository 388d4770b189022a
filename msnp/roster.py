# -*- test-case-name: test.test_roster -*-
"""
Contact management: adding, removing, blocking, accepting, and groups.

Since MSNP13 every change to the contact list is made twice (reference
section 3): once through the ABCH SOAP services, which store it, and once
with C{ADL}/C{RML} on the notification server, which routes presence by it.
L{RosterManager} runs the recipes of reference section 3.8 and 3.9 step by
step and keeps the session's L{ContactList} honest:

  - the local list is changed only after every remote step succeeded, so a
    failure anywhere leaves it exactly as it was (the one exception: while
    an address is being added it is held on no list at all, so that the
    presence the server announces once it has the C{ADL} is not dropped
    while later steps are still running; it goes again if the add fails);
  - when a later step fails after earlier ones succeeded, the earlier ones
    are undone on the server as well as possible (best effort, logged),
    and the caller sees the original error (L{ServiceError},
    L{ServerError}, ...), never the undo's;
  - local preconditions (unknown contact, not pending, no such group, a name
    already taken, a malformed address) fail with L{ContactListError}
    before any request is sent;
  - operations run one at a time, so two concurrent calls can never
    interleave their SOAP and C{ADL}/C{RML} steps.

It also reacts to list changes the server pushes: a server-initiated
C{ADL}/C{RML} (someone added or removed us, or another place of ours changed
the list) and the address-book-changed C{NOT} (reference sections 3.5 and
3.11).
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Optional, TypeVar, Union

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.coalesce import Coalescer
from msnp.contacts import (
    NETWORK_PASSPORT,
    ROLE_LISTS,
    Contact,
    ContactList,
    Group,
    Lists,
    normalizeEmail,
)
from msnp.listpayload import ListEntry, buildListPayloads
from msnp.errors import ContactListError
from msnp.interfaces import notifyObserver
from msnp.soap.addressbook import AddressBookResult, AddressBookService
from msnp.soap.sharing import MembershipResult, SharingService
from msnp.soap.envelope import ABCHFault
from msnp.soap.sync import applyAddressBookDelta, applyMembershipDelta, buildContactList, mergeMember
from msnp.wire import Command

__all__ = ["RosterManager", "GroupReference", "SendListCommand", "isValidAddress"]

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


class RosterManager:
    """
    Changes the contact list on the server and, once the server agreed, in
    the session's L{ContactList}.

    Every public operation returns a L{Deferred}; see the module docstring
    for the guarantees on failure.

    @ivar contacts: the session's contact list (changed in place).
    @ivar sharing: the sharing-service client (memberships).
    @ivar addressBook: the address-book client (forward list, groups).
    @ivar observer: receives C{contactAddedYou}, C{contactRemovedYou} and
        C{contactListChanged}.
    @ivar session: passed to C{contactListChanged}.
    """

    def __init__(
        self,
        contacts: ContactList,
        sharing: SharingService,
        addressBook: AddressBookService,
        sendListCommand: SendListCommand,
        observer: Optional[object],
        session: Optional[object] = None,
        ownEmail: str = "",
        clock: Optional[Any] = None,
    ) -> None:
        """
        @param sendListCommand: sends C{ADL}/C{RML} with a payload and fires
            with the server's C{OK} reply (or fails with L{ServerError}).
        @param ownEmail: the signed-in account, which is never a contact;
            taken from C{session.account} when not given.
        @param clock: debounces the refreshes the address-book-changed
            C{NOT}s ask for (see L{msnp.coalesce}); without one a refresh
            starts as soon as the previous one is done.
        """
        self.contacts = contacts
        self.sharing = sharing
        self.addressBook = addressBook
        self.sendListCommand = sendListCommand
        self.observer = observer
        self.session = session
        if not ownEmail and session is not None:
            ownEmail = str(getattr(session, "account", "") or "")
        self.ownEmail = normalizeEmail(ownEmail)
        self._lock = DeferredLock()
        # Another place's changes are applied on arrival (serverListChanged);
        # each gets a serial number so that a download that started before
        # it cannot take the contact away again (see _reconcile).
        self._otherPlaceSerial = 0
        self._otherPlaceAdded: dict[str, int] = {}
        self._closed = False
        # The last full (or delta-merged) answers of both services: what a
        # refresh asks deltas against (see rememberSync).
        self._lastMembership: Optional[MembershipResult] = None
        self._lastBook: Optional[AddressBookResult] = None
        # Another place's list command was applied: the next refresh tells
        # the observer even if it fails.
        self._tellAfterRefresh = False
        # A burst of NOTs costs one refresh: at most one in flight, one pending.
        self._refreshes = Coalescer(
            lambda: self._serialised(self._addressBookChanged), clock=clock
        )

    def close(self) -> None:
        """
        The session ended: drop the pending refresh, cancel the one in
        flight, and start no more (their L{Deferred}s still fire).
        """
        self._closed = True
        self._refreshes.close()

    def rememberSync(self, membership: MembershipResult, addressBook: AddressBookResult) -> None:
        """
        Keep the answers the contact list was built from (the sign-in's
        full sync): later refreshes ask each service only for what changed
        since their C{lastChange} (C{deltasOnly}), merge the delta into
        these answers (L{applyMembershipDelta}, L{applyAddressBookDelta})
        and reconcile the list with the merged result, so the list ends
        exactly as a full sync would leave it. Without them, or when the
        service refuses deltas (C{FullSyncRequired}, or any other fault to
        a delta request), a refresh downloads everything.
        """
        self._lastMembership = membership
        self._lastBook = addressBook

    def __repr__(self) -> str:
        return f"<RosterManager for {self.ownEmail or '?'}: {self.contacts!r}>"

    # -- plumbing -------------------------------------------------------------

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

    # -- adding and removing ----------------------------------------------------

    def addContact(
        self,
        email: str,
        group: Optional[GroupReference] = None,
        inviteMessage: Optional[str] = None,
    ) -> "Deferred[Contact]":
        """
        Put C{email} on the forward and allow lists, optionally into a group.

        Steps: C{ABContactAdd} (C{ContactSave}, C{LivePending}, the service
        also adds the Allow membership), C{ADL l="3"} (C{l="1"} if the
        address is blocked: allow and block exclude each other), then
        C{ABGroupContactAdd} when C{group} is given.

        @param group: a L{Group}, a group id or a group name.
        @param inviteMessage: the text shown to the other person.
        @return: a L{Deferred} firing with the (new or updated) L{Contact}.
        @raise ContactListError: (through the Deferred) the address is
            malformed or already on the forward list, or the group is unknown.
        """
        return self._serialised(lambda: self._addContact(email, group, inviteMessage))

    async def _addContact(
        self, email: str, group: Optional[GroupReference], inviteMessage: Optional[str]
    ) -> Contact:
        key = self._address(email)
        existing = self.contacts.get(key)
        if existing is not None and existing.onForwardList:
            raise ContactListError(f"{key} is already on the contact list")
        target = self._group(group) if group is not None else None
        network = existing.network if existing is not None else NETWORK_PASSPORT
        wasAllowed = existing is not None and existing.isAllowed
        blocked = existing is not None and existing.isBlocked
        bits = Lists.FORWARD if blocked else Lists.FORWARD | Lists.ALLOW
        placeholder: Optional[Contact] = None
        if existing is None:
            # The session records presence (NLN, UBX) only for an address it
            # knows. The NS announces the new contact's presence right after
            # its ADL OK (the local network now waits for the OK; a real
            # server owes us no such order and may even be quicker), and
            # with a group this add still has ABGroupContactAdd to wait for
            # at that moment. So the race is real on any server, not a
            # workaround for an old local one: a placeholder on no list
            # catches that presence. It is removed again if the add fails,
            # so the list still ends exactly as it began.
            placeholder = self.contacts.add(Contact(email=key, displayName=key, network=network))
        rollback = _Rollback(f"adding {key}")
        try:
            contactId = await self.addressBook.contactAdd(
                key, inviteMessage=inviteMessage, scenario=SCENARIO_CONTACT_SAVE, network=network
            )
            rollback.push(
                "ABContactDelete",
                lambda: self.addressBook.contactDelete(contactId, scenario=SCENARIO_TIMER),
            )
            if not wasAllowed and not blocked:
                # EnableAllowListManagement put the address on Allow too.
                rollback.push(
                    "DeleteMember Allow",
                    lambda: self.sharing.deleteMember(
                        "Allow", email=key, scenario=SCENARIO_CONTACT_SAVE, network=network
                    ),
                )
            await self._listCommand("ADL", key, bits, network)
            rollback.push("RML", lambda: self._listCommand("RML", key, bits, network))
            if target is not None:
                await self.addressBook.groupContactAdd(
                    target.groupId, contactId, scenario=SCENARIO_GROUP_SAVE
                )
        except Exception as e:
            if placeholder is not None and self.contacts.get(key) is placeholder:
                self.contacts.remove(key)
            await rollback.run(e)
            raise

        # Normally the placeholder; a fresh one if another place's RML of
        # the same address dropped it meanwhile.
        contact = self._contactFor(key, network=network)
        contact.lists |= bits
        contact.contactId = contactId
        contact.isMessengerUser = True
        contact.groupIds = {target.groupId} if target is not None else set()
        log.info("Added {email} to the contact list", email=key)
        return contact

    def removeContact(self, email: str) -> "Deferred[None]":
        """
        Take C{email} off the forward list: C{ABContactDelete} (C{Timer}),
        then C{RML l="1"}. Its Allow/Block memberships stay as they are; a
        contact left on no list at all is forgotten.

        @raise ContactListError: (through the Deferred) the address is not
            on the forward list.
        """
        return self._serialised(lambda: self._removeContact(email))

    async def _removeContact(self, email: str) -> None:
        contact = self._known(email)
        key = normalizeEmail(contact.email)
        if not contact.onForwardList:
            raise ContactListError(f"{key} is not on the forward list")
        if not contact.contactId:
            raise ContactListError(f"{key} has no address-book id; refresh the list first")
        contactId = contact.contactId
        groupIds = sorted(contact.groupIds)
        network = contact.network
        rollback = _Rollback(f"removing {key}")

        async def readd() -> None:
            # The address book hands out a new id; the next refresh picks it up.
            newId = await self.addressBook.contactAdd(
                key, scenario=SCENARIO_CONTACT_SAVE, network=network
            )
            for groupId in groupIds:
                await self.addressBook.groupContactAdd(groupId, newId, scenario=SCENARIO_GROUP_SAVE)

        try:
            await self.addressBook.contactDelete(contactId, scenario=SCENARIO_TIMER)
            rollback.push("ABContactAdd", lambda: ensureDeferred(readd()))
            await self._listCommand("RML", key, Lists.FORWARD, network)
        except Exception as e:
            await rollback.run(e)
            raise

        contact.lists &= ~Lists.FORWARD
        contact.contactId = None
        contact.groupIds = set()
        contact.isMessengerUser = False
        if not contact.lists:
            self.contacts.remove(key)
        log.info("Removed {email} from the contact list", email=key)

    # -- blocking ---------------------------------------------------------------

    def blockContact(self, email: str) -> "Deferred[None]":
        """
        Block C{email} (it need not be on the list): when it is allowed,
        C{DeleteMember Allow} and C{RML l="2"}; then C{AddMember Block} and
        C{ADL l="4"} (all C{BlockUnblock}).

        @raise ContactListError: (through the Deferred) the address is
            malformed or already blocked.
        """
        return self._serialised(lambda: self._block(email))

    async def _block(self, email: str) -> None:
        key = self._address(email)
        contact = self.contacts.get(key)
        if contact is not None and contact.isBlocked:
            raise ContactListError(f"{key} is already blocked")
        network = contact.network if contact is not None else NETWORK_PASSPORT
        allowed = contact is not None and contact.isAllowed
        rollback = _Rollback(f"blocking {key}")
        try:
            if allowed:
                await self._dropRole(rollback, key, "Allow", network, SCENARIO_BLOCK_UNBLOCK)
            await self._addRole(rollback, key, "Block", network, SCENARIO_BLOCK_UNBLOCK)
        except Exception as e:
            await rollback.run(e)
            raise
        contact = self._contactFor(key, network=network)
        contact.lists = (contact.lists & ~Lists.ALLOW) | Lists.BLOCK
        contact.membershipIds.pop("Allow", None)
        log.info("Blocked {email}", email=key)

    def unblockContact(self, email: str) -> "Deferred[None]":
        """
        Undo L{blockContact}: C{DeleteMember Block}, C{RML l="4"},
        C{AddMember Allow}, C{ADL l="2"} (all C{BlockUnblock}).

        @raise ContactListError: (through the Deferred) the address is not
            blocked.
        """
        return self._serialised(lambda: self._unblock(email))

    async def _unblock(self, email: str) -> None:
        contact = self._known(email)
        key = normalizeEmail(contact.email)
        if not contact.isBlocked:
            raise ContactListError(f"{key} is not blocked")
        network = contact.network
        rollback = _Rollback(f"unblocking {key}")
        try:
            await self._dropRole(rollback, key, "Block", network, SCENARIO_BLOCK_UNBLOCK)
            await self._addRole(rollback, key, "Allow", network, SCENARIO_BLOCK_UNBLOCK)
        except Exception as e:
            await rollback.run(e)
            raise
        contact.lists = (contact.lists & ~Lists.BLOCK) | Lists.ALLOW
        contact.membershipIds.pop("Block", None)
        log.info("Unblocked {email}", email=key)

    async def _addRole(
        self, rollback: _Rollback, key: str, role: str, network: int, scenario: str
    ) -> None:
        """
        C{AddMember role} then C{ADL} with the role's bit, recording undos.
        """
        bit = ROLE_LISTS[role]
        await self.sharing.addMember(role, key, scenario, network=network)
        rollback.push(
            f"AddMember {role}",
            lambda: self.sharing.deleteMember(role, email=key, scenario=scenario, network=network),
        )
        await self._listCommand("ADL", key, bit, network)
        rollback.push(f"ADL l={int(bit)}", lambda: self._listCommand("RML", key, bit, network))

    async def _dropRole(
        self, rollback: _Rollback, key: str, role: str, network: int, scenario: str
    ) -> None:
        """
        C{DeleteMember role} then C{RML} with the role's bit, recording undos.
        """
        bit = ROLE_LISTS[role]
        await self.sharing.deleteMember(role, email=key, scenario=scenario, network=network)
        rollback.push(
            f"DeleteMember {role}",
            lambda: self.sharing.addMember(role, key, scenario, network=network),
        )
        await self._listCommand("RML", key, bit, network)
        rollback.push(f"RML l={int(bit)}", lambda: self._listCommand("ADL", key, bit, network))

    # -- answering someone who added us -----------------------------------------

    def acceptContactRequest(self, email: str, addToList: bool = True) -> "Deferred[Contact]":
        """
        Accept someone who added us (they are on the Pending list).

        Steps (reference section 3.8): C{AddMember Allow} + C{ADL l="2"};
        with C{addToList}, C{ABContactAdd} + C{ADL l="1"} so that both see
        each other; C{AddMember Reverse}; C{DeleteMember Pending} by
        membership id (last, because a deleted Pending membership cannot be
        restored if a later step failed). Sharing calls use C{ContactMsgrAPI}. Steps whose result
        already holds (already allowed, already on the forward list) are
        skipped; a blocked requester is unblocked first.

        @return: a L{Deferred} firing with the updated L{Contact}.
        @raise ContactListError: (through the Deferred) the address is not
            pending.
        """
        return self._serialised(lambda: self._answer(email, accept=True, addToList=addToList))

    def declineContactRequest(self, email: str) -> "Deferred[Contact]":
        """
        Decline someone who added us: like L{acceptContactRequest}, but
        C{AddMember Block} + C{ADL l="4"} instead of Allow, and no contact
        is added to the forward list.

        @raise ContactListError: (through the Deferred) the address is not
            pending.
        """
        return self._serialised(lambda: self._answer(email, accept=False, addToList=False))

    async def _answer(self, email: str, accept: bool, addToList: bool) -> Contact:
        contact = self._known(email)
        key = normalizeEmail(contact.email)
        if not contact.isPending:
            raise ContactListError(f"{key} has no pending request")
        network = contact.network
        wanted, unwanted = ("Allow", "Block") if accept else ("Block", "Allow")
        hasWanted = bool(contact.lists & ROLE_LISTS[wanted])
        hasUnwanted = bool(contact.lists & ROLE_LISTS[unwanted])
        addForward = accept and addToList and not contact.onForwardList
        pendingId = contact.membershipIds.get("Pending")
        scenario = SCENARIO_CONTACT_MSGR_API
        rollback = _Rollback(f"{'accepting' if accept else 'declining'} {key}")
        contactId: Optional[str] = None
        try:
            if hasUnwanted:
                await self._dropRole(rollback, key, unwanted, network, scenario)
            if not hasWanted:
                await self._addRole(rollback, key, wanted, network, scenario)
            if addForward:
                newId = await self.addressBook.contactAdd(
                    key, scenario=SCENARIO_CONTACT_SAVE, network=network
                )
                contactId = newId
                rollback.push(
                    "ABContactDelete",
                    lambda: self.addressBook.contactDelete(newId, scenario=SCENARIO_TIMER),
                )
                await self._listCommand("ADL", key, Lists.FORWARD, network)
                rollback.push(
                    "ADL l=1", lambda: self._listCommand("RML", key, Lists.FORWARD, network)
                )
            # Reverse first: it only acknowledges what is true anyway (they
            # have us on their list), so it needs no undo, and the Pending
            # membership, which cannot be put back once deleted, goes last.
            await self.sharing.addMember("Reverse", key, scenario, network=network)
            if pendingId is not None:
                await self.sharing.deleteMember("Pending", membershipId=pendingId, scenario=scenario)
            else:
                await self.sharing.deleteMember(
                    "Pending", email=key, scenario=scenario, network=network
                )
        except Exception as e:
            await rollback.run(e)
            raise

        contact.lists = (contact.lists & ~(Lists.PENDING | ROLE_LISTS[unwanted])) | (
            ROLE_LISTS[wanted] | Lists.REVERSE
        )
        contact.membershipIds.pop("Pending", None)
        contact.membershipIds.pop(unwanted, None)
        if addForward:
            contact.lists |= Lists.FORWARD
            contact.contactId = contactId
            contact.isMessengerUser = True
        log.info(
            "{verb} the request of {email}", verb="Accepted" if accept else "Declined", email=key
        )
        return contact

    # -- groups -----------------------------------------------------------------

    def addGroup(self, name: str) -> "Deferred[Group]":
        """
        Create a group (C{ABGroupAdd}, C{GroupSave}).

        @return: a L{Deferred} firing with the new L{Group}.
        @raise ContactListError: (through the Deferred) the name is empty,
            too long, or already taken.
        """
        return self._serialised(lambda: self._addGroup(name))

    async def _addGroup(self, name: str) -> Group:
        text = self._groupName(name)
        if self._groupCalled(text) is not None:
            raise ContactListError(f"a group called {text!r} already exists")
        groupId = await self.addressBook.groupAdd(text, scenario=SCENARIO_GROUP_SAVE)
        group = Group(groupId, text)
        self.contacts.groups[groupId] = group
        log.info("Created group {name}", name=text)
        return group

    def renameGroup(self, group: GroupReference, newName: str) -> "Deferred[Group]":
        """
        Rename a group (C{ABGroupUpdate}, C{GroupSave}); the L{Group} object
        is renamed in place.

        @param group: a L{Group}, a group id or a group name.
        @raise ContactListError: (through the Deferred) no such group, or
            another group already has that name.
        """
        return self._serialised(lambda: self._renameGroup(group, newName))

    async def _renameGroup(self, group: GroupReference, newName: str) -> Group:
        found = self._group(group)
        text = self._groupName(newName)
        clash = self._groupCalled(text)
        if clash is not None and clash.groupId != found.groupId:
            raise ContactListError(f"a group called {text!r} already exists")
        await self.addressBook.groupUpdate(found.groupId, text, scenario=SCENARIO_GROUP_SAVE)
        found.name = text
        return found

    def removeGroup(self, group: GroupReference) -> "Deferred[None]":
        """
        Delete a group (C{ABGroupDelete}, C{Timer}); its contacts stay on
        the list, in no group.

        @param group: a L{Group}, a group id or a group name.
        @raise ContactListError: (through the Deferred) no such group.
        """
        return self._serialised(lambda: self._removeGroup(group))

    async def _removeGroup(self, group: GroupReference) -> None:
        found = self._group(group)
        await self.addressBook.groupDelete(found.groupId, scenario=SCENARIO_TIMER)
        del self.contacts.groups[found.groupId]
        for contact in self.contacts:
            contact.groupIds.discard(found.groupId)
        log.info("Deleted group {name}", name=found.name)

    def moveContactToGroup(
        self, email: str, group: Optional[GroupReference]
    ) -> "Deferred[Contact]":
        """
        Put a forward-list contact into exactly one group, or (C{group=None})
        into none: C{ABGroupContactDelete} from each other group it is in,
        then C{ABGroupContactAdd} to the new one.

        @raise ContactListError: (through the Deferred) the contact is not on
            the forward list, or no such group.
        """
        return self._serialised(lambda: self._move(email, group))

    async def _move(self, email: str, group: Optional[GroupReference]) -> Contact:
        contact = self._known(email)
        key = normalizeEmail(contact.email)
        if not contact.onForwardList or not contact.contactId:
            raise ContactListError(f"{key} is not on the forward list")
        target = self._group(group) if group is not None else None
        contactId = contact.contactId
        leaving = sorted(g for g in contact.groupIds if target is None or g != target.groupId)
        rollback = _Rollback(f"moving {key}")
        try:
            for groupId in leaving:
                await self.addressBook.groupContactDelete(
                    groupId, contactId, scenario=SCENARIO_GROUP_SAVE
                )
                rollback.push(
                    "ABGroupContactDelete",
                    lambda groupId=groupId: self.addressBook.groupContactAdd(  # type: ignore[misc]
                        groupId, contactId, scenario=SCENARIO_GROUP_SAVE
                    ),
                )
            if target is not None and target.groupId not in contact.groupIds:
                await self.addressBook.groupContactAdd(
                    target.groupId, contactId, scenario=SCENARIO_GROUP_SAVE
                )
        except Exception as e:
            await rollback.run(e)
            raise
        contact.groupIds = {target.groupId} if target is not None else set()
        return contact

    # -- changes the server pushes ------------------------------------------------

    def serverListChanged(self, entries: list[ListEntry], added: bool) -> "Deferred[None]":
        """
        Handle a server-initiated C{ADL 0}/C{RML 0} (reference section 3.5).

        Entries with the reverse bit (C{l="8"}) mean someone added
        (C{added}) or removed us: the memberships are re-read with
        C{MessengerPendingList}, the Reverse/Pending bits merged into the
        list, and the observer told C{contactAddedYou(email, displayName)}
        (only when the person now waits for an answer; someone we already
        allowed or blocked gives C{contactListChanged} instead) or
        C{contactRemovedYou(email)}. Other bits mean another place of ours
        changed the list (MPOP): the whole list is re-read by the coalesced
        refresh of L{addressBookChanged} (one for a burst of such commands
        and C{NOT}s) and the observer told C{contactListChanged(session)}.

        The list is first updated from the entries themselves, so a failed
        refresh (logged, never raised) still leaves a usable list. The
        FL/AL/BL bits of another place are applied at once, even while an
        earlier operation or refresh is still running: the server follows
        such an C{ADL} with the new contact's presence, which the session
        can only record for an address it already knows.

        @return: a L{Deferred} that fires when the list is up to date; it
            never fails.
        """
        entries = list(entries)
        other = self._otherPlaceEntries(entries)
        if other:
            self._guessOther(other, added)
            if added:
                self._otherPlaceSerial += 1
                for entry in other:
                    self._otherPlaceAdded[normalizeEmail(entry.email)] = self._otherPlaceSerial
        done = self._serialised(lambda: self._serverListChanged(entries, added))
        if other:
            # The whole list is re-read by the same coalesced refresh the
            # address-book NOTs ask for (the other place's change sends
            # those too): one refresh for the burst, not one per command.
            # The observer hears of the applied entries even if it fails.
            self._tellAfterRefresh = True
            done.addCallback(lambda _: self._refreshes.request())
        return done

    def _otherPlaceEntries(self, entries: list[ListEntry]) -> list[ListEntry]:
        """
        The entries that carry FL/AL/BL bits: changes made at another place
        of this account (MPOP).
        """
        return [
            entry
            for entry in entries
            if normalizeEmail(entry.email) not in ("", self.ownEmail)
            and entry.lists & (Lists.FORWARD | Lists.ALLOW | Lists.BLOCK)
        ]

    async def _serverListChanged(self, entries: list[ListEntry], added: bool) -> None:
        reverse: list[ListEntry] = []
        for entry in entries:
            email = normalizeEmail(entry.email)
            if not email or email == self.ownEmail:
                continue
            if entry.lists & Lists.REVERSE:
                reverse.append(entry)
        other = self._otherPlaceEntries(entries)
        if not reverse and not other:
            return
        quiet = False

        if reverse:
            self._guessReverse(reverse, added)
            try:
                membership = await self.sharing.findMembership(scenario=SCENARIO_PENDING_LIST)
            except Exception as e:
                log.error("Could not refresh the memberships after a list change: {reason}", reason=str(e))
            else:
                if self._lastMembership is not None:
                    self._lastMembership = membership
                self._mergeReversePending(membership)
            for entry in reverse:
                email = normalizeEmail(entry.email)
                if not added:
                    notifyObserver(self.observer, "contactRemovedYou", self.session, email)
                    continue
                contact = self.contacts.get(email)
                if contact is None or not contact.isPending:
                    # Someone we already allowed or blocked (typically a
                    # contact accepting our own request): nothing to
                    # answer, only the reverse bit changed.
                    quiet = True
                    continue
                name = entry.displayName
                if not name and contact.displayName != email:
                    name = contact.displayName
                notifyObserver(self.observer, "contactAddedYou", self.session, email, name or None)

        # Another place's entries were applied on arrival; the refresh
        # serverListChanged queues after this settles them and tells the
        # observer.
        if quiet:
            notifyObserver(self.observer, "contactListChanged", self.session)

    def addressBookChanged(self) -> "Deferred[None]":
        """
        Handle the address-book-changed C{NOT} (site 45705, C{ABCHInternal};
        reference section 3.11): re-read memberships and address book side by
        side, bring the list up to date and tell the observer
        C{contactListChanged(session)}.

        A burst of these C{NOT}s is answered by one refresh that starts
        after the last of them (L{Coalescer}: debounced on the clock, at
        most one in flight and one pending).

        @return: a L{Deferred} that fires when done; it never fails (a
            failed refresh is logged and leaves the list as it was).
        """
        return self._refreshes.request()

    async def _addressBookChanged(self) -> None:
        if self._closed:
            return
        refreshed = await self._refreshAll(SCENARIO_CHANGE_ALERT)
        tell, self._tellAfterRefresh = self._tellAfterRefresh, False
        if refreshed or (tell and not self._closed):
            notifyObserver(self.observer, "contactListChanged", self.session)

    async def _refreshAll(self, scenario: str) -> bool:
        """
        Re-read both services in parallel and reconcile; whether it worked.
        """
        started = self._otherPlaceSerial
        try:
            downloads: list["Deferred[Any]"] = [
                ensureDeferred(self._membershipNow(scenario)),
                ensureDeferred(self._bookNow(scenario)),
            ]
            results: list[Any] = await gatherResults(downloads, consumeErrors=True)
        except Exception as e:
            if self._closed:
                return False
            reason = e
            subFailure = getattr(e, "subFailure", None)
            if subFailure is not None:
                reason = subFailure.value
            log.error("Could not refresh the contact list: {reason}", reason=str(reason))
            return False
        membership, addressBook = results
        if self._closed:
            return False
        self.rememberSync(membership, addressBook)
        self._reconcile(membership, addressBook, started)
        return True

    async def _membershipNow(self, scenario: str) -> MembershipResult:
        """
        The memberships as a full download would give them: a delta since
        the remembered answer merged into it, or a full download when
        there is none or the service refuses the delta.
        """
        base = self._lastMembership
        if base is not None and base.lastChange:
            try:
                delta = await self.sharing.findMembership(scenario=scenario, lastChange=base.lastChange)
            except ABCHFault as e:
                log.info("FindMembership refused deltas ({code}); downloading everything", code=e.errorCode)
            else:
                return applyMembershipDelta(base, delta)
        return await self.sharing.findMembership(scenario=scenario)

    async def _bookNow(self, scenario: str) -> AddressBookResult:
        """
        The address book as a full download would give it (see
        L{_membershipNow}).
        """
        base = self._lastBook
        if base is not None and base.lastChange:
            try:
                delta = await self.addressBook.findContactsPaged(scenario=scenario, lastChange=base.lastChange)
            except ABCHFault as e:
                log.info("ABFindContactsPaged refused deltas ({code}); downloading everything", code=e.errorCode)
            else:
                return applyAddressBookDelta(base, delta)
        return await self.addressBook.findContactsPaged(scenario=scenario)

    # -- merging --------------------------------------------------------------------

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

    def _guessReverse(self, entries: list[ListEntry], added: bool) -> None:
        """
        Apply what a server-sent C{l="8"} says by itself: the person now has
        (or no longer has) us on their list, and is pending unless we have
        already decided about them.
        """
        for entry in entries:
            email = normalizeEmail(entry.email)
            if added:
                contact = self._contactFor(email, entry.displayName or "", entry.network)
                contact.lists |= Lists.REVERSE
                if not contact.lists & (Lists.ALLOW | Lists.BLOCK):
                    contact.lists |= Lists.PENDING
            else:
                existing = self.contacts.get(email)
                if existing is not None:
                    existing.lists &= ~(Lists.REVERSE | Lists.PENDING)
                    existing.membershipIds.pop("Pending", None)
                    existing.membershipIds.pop("Reverse", None)
                    self._dropIfEmpty(existing)

    def _guessOther(self, entries: list[ListEntry], added: bool) -> None:
        """
        Apply what an MPOP C{ADL}/C{RML} says by itself (FL/AL/BL bits).
        """
        for entry in entries:
            email = normalizeEmail(entry.email)
            bits = entry.lists & (Lists.FORWARD | Lists.ALLOW | Lists.BLOCK)
            if added:
                contact = self._contactFor(email, entry.displayName or "", entry.network)
                contact.lists |= bits
                if bits & Lists.BLOCK:
                    contact.lists &= ~Lists.ALLOW
                elif bits & Lists.ALLOW:
                    contact.lists &= ~Lists.BLOCK
                if bits & Lists.FORWARD:
                    contact.isMessengerUser = True
            else:
                existing = self.contacts.get(email)
                if existing is not None:
                    existing.lists &= ~bits
                    self._dropIfEmpty(existing)

    def _mergeReversePending(self, membership: MembershipResult) -> None:
        """
        Make the Reverse and Pending bits (and ids, names, invitation texts)
        match the sharing service.
        """
        for role in ("Reverse", "Pending"):
            flag = ROLE_LISTS[role]
            members = membership.members(role)
            for contact in self.contacts:
                if contact.lists & flag and normalizeEmail(contact.email) not in members:
                    contact.lists &= ~flag
                    contact.membershipIds.pop(role, None)
                    self._dropIfEmpty(contact)
            for email, member in members.items():
                if email == self.ownEmail:
                    continue
                mergeMember(self._contactFor(email, member.displayName, member.network), role, member)

    def _reconcile(
        self, membership: MembershipResult, addressBook: AddressBookResult, started: Optional[int] = None
    ) -> None:
        """
        Bring the list in line with a full download, keeping what only the
        NS knows (presence, endpoints, personal messages) and the L{Contact}
        and L{Group} objects callers may hold.

        @param started: the serial of the other places' changes when the
            download began. A contact another place added after that is
            kept even if the download lacks it (the download may predate
            the change); the refresh queued with that change settles it.
        """
        fresh = buildContactList(membership, addressBook, self.ownEmail).contacts
        for contact in self.contacts:
            if fresh.get(contact.email) is None:
                addedAt = self._otherPlaceAdded.get(normalizeEmail(contact.email))
                if started is not None and addedAt is not None and addedAt > started:
                    log.debug("Keeping {email}: added at another place after this download began",
                              email=contact.email)
                    continue
                self.contacts.remove(contact.email)
        if started is not None:
            for email, addedAt in list(self._otherPlaceAdded.items()):
                if addedAt <= started:
                    del self._otherPlaceAdded[email]
        for new in fresh:
            old = self.contacts.get(new.email)
            if old is None:
                self.contacts.add(new)
                continue
            old.lists = new.lists
            old.contactId = new.contactId
            old.groupIds = set(new.groupIds)
            old.isMessengerUser = new.isMessengerUser
            old.membershipIds = dict(new.membershipIds)
            old.network = new.network
            if new.cid is not None:
                old.cid = new.cid
            if new.inviteMessage is not None:
                old.inviteMessage = new.inviteMessage
            if not old.isOnline and new.displayName:
                # An online contact's name comes from its presence, fresher
                # than the stored one.
                old.displayName = new.displayName
        groups = self.contacts.groups
        for groupId in list(groups):
            if groupId not in fresh.groups:
                del groups[groupId]
        for groupId, group in fresh.groups.items():
            if groupId in groups:
                groups[groupId].name = group.name
            else:
                groups[groupId] = group
