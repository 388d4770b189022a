# -*- test-case-name: test.test_roster,test.test_coalesce,test.test_mpop_e2e -*-
"""
The contact list's refresh from the server: the changes the server pushes
(a server-initiated C{ADL}/C{RML}, the address-book-changed C{NOT}), the
coalesced address-book refresh they ask for, the ABCH delta sync
(L{RosterSync.rememberSync}: deltas merged into the last answers, a full
download when the service refuses them) and the reconciling of the local
list with the result.

L{RosterSync} is mixed into L{msnp.roster.RosterManager}, which sets the
state declared here; it is separate from the user-facing operations of
L{msnp.roster} because it changes the list from what the server says
rather than from what the user asks.
"""

from __future__ import annotations

import pickle
import zlib
from functools import partial
from typing import Any, Callable, Optional, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.logger import Logger

from msnp.coalesce import Coalescer
from msnp.contacts import ROLE_LISTS, Lists, normalizeEmail
from msnp.listpayload import ListEntry
from msnp.interfaces import notifyObserver
from msnp.rosterbase import SCENARIO_CHANGE_ALERT, SCENARIO_PENDING_LIST, RosterBase
from msnp.soap.addressbook import ABContact, AddressBookResult, MeContact
from msnp.soap.sharing import Member, MembershipResult
from msnp.soap.envelope import ABCHFault
from msnp.soap.sync import applyAddressBookDelta, applyMembershipDelta, buildContactList, mergeMember

__all__ = ["RosterSync"]

log = Logger()


def _sampleBase() -> bytes:
    """
    The pickles of a one-contact membership listing and address book: the
    preset dictionary of L{_pickled}. A session's base is mostly the
    class paths, field layout, role and annotation names these share, so
    with it a small list's base is about a third smaller (issue 13: 0.85
    KiB against 1.2 KiB per session at 3 contacts); at 1,000 contacts it
    matters little (it helps only the start of the stream). Built from
    this process's own classes, so it matches the pickles it helps with;
    the base never leaves the process, so no other dictionary is ever
    met.
    """
    email, guid, stamp = "someone@example.com", "00000000-0000-0000-0000-000000000000", "2026-01-01T00:00:00.0000000Z"
    member = Member(email=email, membershipId=100, displayName="Someone", network=1, cid=-1234567890123456789)
    membership = MembershipResult(
        roles={"Allow": {email: member}, "Block": {}, "Reverse": {email: member}, "Pending": {}},
        lastChange=stamp, deleted={},
    )
    annotations = {"MSN.IM.BLP": "1", "MSN.IM.GTC": "1", "MSN.IM.MBEA": "0", "MSN.IM.MPOP": "1",
                   "MSN.IM.RoamLiveProperties": "1"}
    me = MeContact(contactId=guid, email="me@example.com", displayName="Me", cid=1234567890123456789,
                   annotations=annotations)
    contact = ABContact(contactId=guid, email=email, displayName="Someone", cid=-1234567890123456789,
                        groupIds=frozenset(), isMessengerUser=True, contactType="Regular", network=1, annotations={})
    book = AddressBookResult(me=me, contacts=[contact], groups=[], lastChange=stamp,
                             deletedContactIds=[], deletedGroupIds=[])
    return pickle.dumps(membership, pickle.HIGHEST_PROTOCOL) + pickle.dumps(book, pickle.HIGHEST_PROTOCOL)


_PRESET: Optional[bytes] = None


def _preset() -> bytes:
    global _PRESET
    if _PRESET is None:
        _PRESET = _sampleBase()
    return _PRESET


def _pickled(value: Any) -> Optional[bytes]:
    """
    C{value} pickled and compressed (zlib level 1, with L{_sampleBase} as
    preset dictionary: 0.8 ms and a third of the size at 1,000 contacts),
    or L{None}.
    """
    if value is None:
        return None
    compressor = zlib.compressobj(1, zdict=_preset())
    return compressor.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) + compressor.flush()


def _unpickled(data: Optional[bytes]) -> Any:
    if data is None:
        return None
    decompressor = zlib.decompressobj(zdict=_preset())
    return pickle.loads(decompressor.decompress(data) + decompressor.flush())


class RosterSync(RosterBase):
    """
    Keeps the list in line with the server's pushes and the ABCH services,
    over the state declared here (set by L{msnp.roster.RosterManager}).
    """

    _otherPlaceSerial: int
    _otherPlaceAdded: dict[str, int]
    _closed: bool
    # The delta-sync base, pickled (see rememberSync).
    _lastMembershipData: Optional[bytes]
    _lastBookData: Optional[bytes]
    _tellAfterRefresh: bool
    _refreshCoalescer: Optional[Coalescer]
    _refreshClock: Optional[Any]
    #: Whether the address-book delta of the last refresh listed any
    #: circle, circle invitation or circle representative; L{None} when
    #: that refresh got no delta (a full download, or none at all). The
    #: session's circle refresh after a C{NOT} reads it: a delta without
    #: circles cannot change an account in none.
    bookDeltaListsCircles: Optional[bool] = None

    @property
    def _refreshes(self) -> Coalescer:
        """
        The coalesced refresh: a burst of C{NOT}s costs one, at most one in
        flight and one pending. Built at the first refresh asked for (most
        sessions never get a C{NOT}; issue 13), closed if the roster is.
        """
        coalescer = self._refreshCoalescer
        if coalescer is None:
            coalescer = self._refreshCoalescer = Coalescer(self._serialisedRefresh, clock=self._refreshClock)
            if self._closed:
                coalescer.close()
        return coalescer

    def _serialisedRefresh(self) -> "Deferred[None]":
        return self._serialised(self._addressBookChanged)

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

    # The base is kept pickled: as objects it costs a session more than its
    # contact list does (about 6 KiB at 2 contacts, megabytes at 1,000;
    # issue 13), and it is read only when a refresh merges a delta into it
    # (1.8 ms to load at 1,000 contacts). Only this process's own objects
    # are ever unpickled.

    @property
    def _lastMembership(self) -> Optional[MembershipResult]:
        membership: Optional[MembershipResult] = _unpickled(self._lastMembershipData)
        return membership

    @_lastMembership.setter
    def _lastMembership(self, membership: Optional[MembershipResult]) -> None:
        self._lastMembershipData = _pickled(membership)

    @property
    def _lastBook(self) -> Optional[AddressBookResult]:
        book: Optional[AddressBookResult] = _unpickled(self._lastBookData)
        return book

    @_lastBook.setter
    def _lastBook(self, book: Optional[AddressBookResult]) -> None:
        self._lastBookData = _pickled(book)
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
        self.bookDeltaListsCircles = None
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
        The memberships as a full download would give them (L{_sinceLast}).
        """
        return await _sinceLast(
            self._lastMembership, partial(self.sharing.findMembership, scenario=scenario),
            applyMembershipDelta, "FindMembership",
        )

    async def _bookNow(self, scenario: str) -> AddressBookResult:
        """
        The address book as a full download would give it (L{_sinceLast}).
        """
        def merge(base: AddressBookResult, delta: AddressBookResult) -> AddressBookResult:
            self.bookDeltaListsCircles = _listsCircles(delta)
            return applyAddressBookDelta(base, delta)

        return await _sinceLast(
            self._lastBook, partial(self.addressBook.findContactsPaged, scenario=scenario),
            merge, "ABFindContactsPaged",
        )

    # -- merging --------------------------------------------------------------------
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


def _listsCircles(book: AddressBookResult) -> bool:
    """
    Whether an address-book answer says anything about circles: a circle
    or invitation in its C{CircleResult}, or a hidden representative
    (a contact of type C{Circle}) among its contacts.
    """
    listing = book.circles
    if listing is not None and (listing.circles or listing.invitations or listing.representativeIds):
        return True
    return any(contact.contactType == "Circle" for contact in book.contacts)


_Result = TypeVar("_Result", MembershipResult, AddressBookResult)


async def _sinceLast(
    base: Optional[_Result],
    download: Callable[..., "Deferred[_Result]"],
    merge: Callable[[_Result, _Result], _Result],
    action: str,
) -> _Result:
    """
    One service's answer as a full download would give it: a delta since
    the remembered answer C{base} merged into it, or a full download when
    there is none or the service refuses the delta (C{FullSyncRequired},
    or any other fault to a delta request).
    """
    if base is not None and base.lastChange:
        try:
            delta = await download(lastChange=base.lastChange)
        except ABCHFault as e:
            log.info("{action} refused deltas ({code}); downloading everything", action=action, code=e.errorCode)
        else:
            return merge(base, delta)
    return await download()
