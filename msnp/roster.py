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
from typing import Any, Optional

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.logger import Logger

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
from msnp.errors import ContactListError
from msnp.rosterbase import (
    SCENARIO_BLOCK_UNBLOCK,
    SCENARIO_CONTACT_MSGR_API,
    SCENARIO_CONTACT_SAVE,
    SCENARIO_GROUP_SAVE,
    SCENARIO_TIMER,
    GroupReference,
    SendListCommand,
    _Rollback,
    isValidAddress,
)
from msnp.rostersync import RosterSync
from msnp.soap.addressbook import AddressBookResult, AddressBookService
from msnp.soap.sharing import MembershipResult, SharingService

__all__ = ["RosterManager", "GroupReference", "SendListCommand", "isValidAddress"]

log = Logger()


class RosterManager(RosterSync):
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
        self._lockObject: Optional[DeferredLock] = None
        # Another place's changes are applied on arrival (serverListChanged);
        # each gets a serial number so that a download that started before
        # it cannot take the contact away again (see _reconcile).
        self._otherPlaceSerial = 0
        self._otherPlaceAdded: dict[str, int] = {}
        self._closed = False
        # The last full (or delta-merged) answers of both services: what a
        # refresh asks deltas against (see rememberSync).
        self._lastMembershipData: Optional[bytes] = None
        self._lastBookData: Optional[bytes] = None
        # Another place's list command was applied: the next refresh tells
        # the observer even if it fails.
        self._tellAfterRefresh = False
        # A burst of NOTs costs one refresh (built on first use: _refreshes).
        self._refreshCoalescer: Optional[Coalescer] = None
        self._refreshClock = clock

    def close(self) -> None:
        """
        The session ended: drop the pending refresh, cancel the one in
        flight, and start no more (their L{Deferred}s still fire).
        """
        self._closed = True
        if self._refreshCoalescer is not None:
            self._refreshCoalescer.close()
    def __repr__(self) -> str:
        return f"<RosterManager for {self.ownEmail or '?'}: {self.contacts!r}>"
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
