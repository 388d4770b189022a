# -*- test-case-name: test.test_notification,test.test_places,test.test_pictures -*-
"""
The presence half of the NS client: C{ILN}/C{NLN}, C{FLN} and C{UBX},
applied to the contacts of the session's L{SessionState} (status, name,
picture, personal message, places) or, for our own account, to the
account's state and its other places (MPOP), with the observer told what
changed.

L{PresenceHandlers} is mixed into
L{msnp.notification.NotificationProtocol}, whose state (C{state},
C{observer}, C{session}, C{limits}) it uses; it is separate because
presence is the bulk of what the server pushes and is read and tuned on
its own (the C{handle_<NAME>} dispatch finds these methods as before).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from twisted.logger import Logger

from msnp.clientlimits import ClientLimits, RefusalSummary, addPlace, boundPlaces
from msnp.contacts import Contact, Place, Status
from msnp.errors import ProtocolError, ServiceError
from msnp.interfaces import notifyObserver, observes
from msnp.nsmessages import (
    AccountReference,
    PresenceUpdate,
    SessionState,
    UserData,
    parseOffline,
    parsePresence,
    parseUserData,
    userDataOf,
)
from msnp.ubxscan import UserDataTails, scanUserDataFields
from msnp.presencelines import presenceFields, readOffline, readUserDataHeader
from msnp.p2p.msnobject import parsePicture, pictureIdentity
from msnp.wire import Command

__all__ = ["PresenceHandlers"]

log = Logger()

#: No C{contactPictureChanged} to send (L{None} is a picture removed).
_UNCHANGED = object()


def _isPlace(place: Optional[Place], capabilities: str) -> bool:
    """
    Whether C{place} is what C{Place(guid, capabilities)} would be.
    """
    return (place is not None and place.capabilities == capabilities and not place.name
            and not place.idle and not place.clientType and not place.state)


def _placesFor(capabilities: dict[str, str], known: dict[str, Place]) -> dict[str, Place]:
    """
    The places of a scanned C{UBX} (capabilities by GUID): those of
    C{known} that are what a new L{Place} would be are kept rather than
    built again, and C{known} itself when nothing changed (most C{UBX}s
    repeat the places and change the personal message).
    """
    count = len(capabilities)
    if count == 1 and len(known) == 1:
        # One place, the usual case: no iterators.
        for guid, caps in capabilities.items():
            if _isPlace(known.get(guid), caps):
                return known
    elif count == len(known):
        for (guid, caps), (knownGuid, place) in zip(capabilities.items(), known.items()):
            if guid != knownGuid or not _isPlace(place, caps):
                break
        else:
            return known
    places: dict[str, Place] = {}
    for guid, caps in capabilities.items():
        kept = known.get(guid)
        places[guid] = kept if kept is not None and _isPlace(kept, caps) else Place(guid, caps)
    return places


class PresenceHandlers:
    """
    C{handle_NLN}/C{handle_ILN}, C{handle_FLN} and C{handle_UBX} of the NS
    connection, over the state it keeps (declared here, set by it).
    """

    state: SessionState
    observer: Optional[object]
    session: Optional[object]
    limits: ClientLimits
    _droppedPlaces: RefusalSummary
    _userDataTails: UserDataTails

    # What the presence lines set off is all in _record*: the general path
    # (handle_* and apply*) and the line readers (read*Line, taking the
    # common shapes straight from the bytes; see msnp.presencelines) both
    # end there.

    def readNLNLine(self, line: bytes) -> bool:
        fields = presenceFields(line)
        if fields is None:
            return False
        self._recordPresence(*fields)
        return True

    def readFLNLine(self, line: bytes) -> bool:
        account = readOffline(line)
        if account is None:
            return False
        self.applyOffline(account)
        return True

    def readUBXLine(self, line: bytes) -> bool:
        header = readUserDataHeader(line)
        if header is None:
            return False
        account, length = header
        if length == 0:
            self.applyUserData(UserData(account))
        else:
            self.receivePayload(length, partial(self._userDataReceived, account))
        return True

    def _userDataReceived(self, account: AccountReference, payload: bytes) -> None:
        state = self.state
        contact = None if account.email == state.account else state.contacts.getNormalized(account.email)
        if contact is not None:
            fields = self._userDataTails.scan(contact.email, payload, len(state.contacts))
        else:
            fields = scanUserDataFields(payload)
        if fields is not None:
            personalMessage, currentMedia, capabilities = fields
            known = contact.endpoints if contact is not None else {}
            self._recordUserData(account, personalMessage, currentMedia, _placesFor(capabilities, known), contact)
            return
        try:
            data = userDataOf(account, payload)
        except (ProtocolError, ServiceError) as e:
            log.info("Ignoring malformed UBX: {error}", error=str(e))
            return
        self.applyUserData(data)

    if TYPE_CHECKING:
        # Provided by msnp.protocol.MSNPProtocol, which this is mixed into.
        def receivePayload(self, length: int, deliver: Optional[Callable[[bytes], None]]) -> None: ...

    #: For L{msnp.protocol.MSNPProtocol.lineReaders}.
    presenceLineReaders: Mapping[bytes, Callable[[Any, bytes], bool]] = {
        b"NLN ": readNLNLine, b"FLN ": readFLNLine, b"UBX ": readUBXLine,
    }
    #: The methods each reader goes around: a subclass that overrides one
    #: of them loses that reader (L{__init_subclass__}), so its override
    #: sees every such line, unless it declares C{lineReaders} itself.
    _readerBypasses: Mapping[bytes, tuple[str, ...]] = {
        b"NLN ": ("handle_NLN", "applyPresence"),
        b"FLN ": ("handle_FLN",),
        b"UBX ": ("handle_UBX", "applyUserData"),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        readers = getattr(cls, "lineReaders", None)
        if not readers or "lineReaders" in cls.__dict__:
            # A class that declares its readers has chosen them.
            return
        kept = {
            prefix: reader for prefix, reader in readers.items()
            if not any(
                getattr(cls, name, None) is not getattr(PresenceHandlers, name)
                for name in PresenceHandlers._readerBypasses.get(prefix, ())
            )
        }
        if len(kept) != len(readers):
            setattr(cls, "lineReaders", kept)  # MSNPProtocol.lineReaders, once mixed in

    def handle_NLN(self, command: Command) -> None:
        """
        A contact (or another place of ours) is online with a status.
        """
        try:
            update = parsePresence(command)
        except ProtocolError as e:
            log.info("Ignoring malformed {name}: {error}", name=command.name, error=str(e))
            return
        self.applyPresence(update)

    handle_ILN = handle_NLN

    def applyPresence(self, update: PresenceUpdate) -> None:
        """
        Record a parsed C{NLN}/C{ILN} and tell the observer what changed.
        Presence of an address that is not on the list is dropped (the
        session has nowhere to keep it), which is why
        L{msnp.roster.RosterManager} holds an address being added.
        """
        self._recordPresence(
            update.account, update.status, update.displayName, update.capabilities, update.msnObject
        )

    def _recordPresence(
        self, account: AccountReference, status: Status, displayName: str,
        capabilities: str, msnObject: Optional[str],
    ) -> None:
        """
        L{applyPresence} on the fields themselves, which is what the line
        reader has (no L{PresenceUpdate} is built for each line).
        """
        state = self.state
        email = account.email
        if email == state.account:
            # Another place changed the account's status (MPOP).
            state.status = status
            state.displayName = displayName
            return
        contact = state.contacts.getNormalized(email)
        if contact is None:
            log.debug("Presence of {email}, who is not a contact", email=email)
            return
        oldStatus, oldName = contact.status, contact.displayName
        contact.status = status
        contact.displayName = displayName
        contact.capabilities = capabilities
        # Every NLN repeats the object; only a different text can be a new
        # picture. Nobody listening for pictures, it is parsed when the
        # contact's picture is first read.
        newPicture: Any = _UNCHANGED
        if contact.msnObject != msnObject:
            if observes(self.observer, "contactPictureChanged"):
                oldPicture = contact.picture
                contact.msnObject = msnObject
                contact.picture = parsePicture(msnObject)
                if pictureIdentity(oldPicture) != pictureIdentity(contact.picture):
                    newPicture = contact.picture
            else:
                contact.announceObject(msnObject)
        endpoint = account.endpoint
        if endpoint is not None and endpoint not in contact.endpoints:
            dropped = addPlace(
                contact.endpoints, endpoint, Place(endpoint, capabilities), self.limits.placesPerContact,
            )
            if dropped:
                self._droppedPlaces.add(f"oldest place of {contact.email}", dropped)
        if oldStatus is not status:
            notifyObserver(self.observer, "contactStatusChanged", self.session, contact, status)
        if oldName != displayName:
            notifyObserver(self.observer, "contactNameChanged", self.session, contact, displayName)
        if newPicture is not _UNCHANGED:
            notifyObserver(self.observer, "contactPictureChanged", self.session, contact, newPicture)

    def _boundPlaces(self, new: dict[str, Place], known: dict[str, Place], whose: str) -> dict[str, Place]:
        """
        The places of a C{UBX}, cut to L{ClientLimits.placesPerContact}
        (known ones kept first), the cut logged as a summary.
        """
        kept, dropped = boundPlaces(new, known, self.limits.placesPerContact)
        if dropped:
            self._droppedPlaces.add(f"unknown places of {whose} in a UBX", dropped)
        return kept

    def handle_FLN(self, command: Command) -> None:
        """
        A contact signed out (or went hidden). With C{;{epid}} only that
        place left; the contact stays online while another remains.
        """
        try:
            account = parseOffline(command)
        except ProtocolError as e:
            log.info("Ignoring malformed FLN: {error}", error=str(e))
            return
        self.applyOffline(account)

    def applyOffline(self, account: AccountReference) -> None:
        """
        Record a parsed C{FLN}: the place, or the whole contact, is gone.
        """
        if account.email == self.state.account:
            if account.endpoint is not None and account.endpoint in self.state.places:
                before = dict(self.state.places)
                del self.state.places[account.endpoint]
                notifyObserver(self.observer, "endpointsChanged", self.session, dict(self.state.places))
                self._announcePlaces(before)
            return
        contact = self.state.contacts.get(account.email)
        if contact is None:
            return
        if account.endpoint is not None:
            contact.removeEndpoint(account.endpoint)
            if contact.endpoints:
                return
        contact.endpoints.clear()
        if contact.status is not Status.OFFLINE:
            contact.status = Status.OFFLINE
            notifyObserver(self.observer, "contactStatusChanged", self.session, contact, Status.OFFLINE)

    def handle_UBX(self, command: Command) -> None:
        """
        A contact's (or our own account's) personal data and endpoints.
        A malformed payload is logged and ignored.
        """
        try:
            data = parseUserData(command)
        except (ProtocolError, ServiceError) as e:
            log.info("Ignoring malformed UBX: {error}", error=str(e))
            return
        self.applyUserData(data)

    def applyUserData(self, data: UserData) -> None:
        """
        Record a parsed C{UBX}: our own (another place changed the PSM or
        the places) or a contact's; like presence, dropped for an address
        that is not on the list.
        """
        self._recordUserData(
            data.account, data.personalMessage, data.currentMedia,
            None if data.endpoints is None else dict(data.endpoints),
        )

    def _recordUserData(
        self, account: AccountReference, personalMessage: str, currentMedia: str,
        endpoints: Optional[dict[str, Place]], contact: Optional[Contact] = None,
    ) -> None:
        """
        L{applyUserData} on the fields themselves; C{endpoints} (L{None}:
        nothing known) is a dict this call may keep, C{contact} the
        contact of C{account} if the caller looked it up already.
        """
        state = self.state
        if account.email == state.account:
            state.personalMessage = personalMessage
            state.currentMedia = currentMedia
            if endpoints is not None and endpoints != state.places:
                before = state.places
                state.places = self._boundPlaces(endpoints, state.places, "our own account")
                notifyObserver(self.observer, "endpointsChanged", self.session, dict(state.places))
                self._announcePlaces(before)
            return
        if contact is None:
            contact = state.contacts.getNormalized(account.email)
            if contact is None:
                return
        mediaChanged = contact.currentMedia != currentMedia
        changed = mediaChanged or contact.personalMessage != personalMessage
        # The "now playing" line is read from the raw value only when that
        # changed (most UBXs repeat it, or leave it empty) and someone
        # listens for it.
        tellPlaying = mediaChanged and observes(self.observer, "contactCurrentMediaChanged")
        playingBefore = contact.nowPlaying if tellPlaying else ""
        contact.personalMessage = personalMessage
        contact.currentMedia = currentMedia
        if endpoints is not None:
            if len(endpoints) <= self.limits.placesPerContact:
                contact.endpoints = endpoints
            else:
                contact.endpoints = self._boundPlaces(endpoints, contact.endpoints, contact.email)
        if changed:
            notifyObserver(self.observer, "contactPersonalMessageChanged", self.session, contact, personalMessage)
        if tellPlaying:
            playing = contact.nowPlaying
            if playing != playingBefore:
                notifyObserver(self.observer, "contactCurrentMediaChanged", self.session, contact, playing)

    def _announcePlaces(self, before: dict[str, Place]) -> None:
        """
        Tell the observer which of the account's other places appeared
        (C{placeSignedIn}) or went (C{placeSignedOut}) since C{before};
        this place is never announced.
        """
        now, own = self.state.places, self.state.machineGuid
        for guid, place in now.items():
            if guid != own and guid not in before:
                notifyObserver(self.observer, "placeSignedIn", self.session, place)
        for guid, place in before.items():
            if guid != own and guid not in now:
                notifyObserver(self.observer, "placeSignedOut", self.session, place)
