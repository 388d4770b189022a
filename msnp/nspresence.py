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
from msnp.contacts import Place, Status
from msnp.errors import ProtocolError, ServiceError
from msnp.interfaces import notifyObserver
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
from msnp.presencelines import readOffline, readPresence, readUserDataHeader
from msnp.p2p.msnobject import parsePicture, pictureIdentity
from msnp.wire import Command

__all__ = ["PresenceHandlers"]

log = Logger()


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

    def _isSelf(self, account: AccountReference) -> bool:
        return account.email == self.state.account

    # What the presence lines set off is all in apply*: the general path
    # (handle_*) and the line readers (read*Line, taking the common shapes
    # straight from the bytes; see msnp.presencelines) both end there.

    def readNLNLine(self, line: bytes) -> bool:
        update = readPresence(line)
        if update is None:
            return False
        self.applyPresence(update)
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
        if update.account.email == self.state.account:
            # Another place changed the account's status (MPOP).
            self.state.status = update.status
            self.state.displayName = update.displayName
            return
        contact = self.state.contacts.get(update.account.email)
        if contact is None:
            log.debug("Presence of {email}, who is not a contact", email=update.account.email)
            return
        oldStatus, oldName, oldPicture = contact.status, contact.displayName, contact.picture
        contact.status = update.status
        contact.displayName = update.displayName
        contact.capabilities = update.capabilities
        # Every NLN repeats the object; only a different text is parsed.
        pictureMayChange = contact.msnObject != update.msnObject
        if pictureMayChange:
            contact.msnObject = update.msnObject
            contact.picture = parsePicture(update.msnObject)
        if update.account.endpoint is not None and update.account.endpoint not in contact.endpoints:
            dropped = addPlace(
                contact.endpoints, update.account.endpoint,
                Place(update.account.endpoint, update.capabilities), self.limits.placesPerContact,
            )
            if dropped:
                self._droppedPlaces.add(f"oldest place of {contact.email}", dropped)
        if oldStatus is not contact.status:
            notifyObserver(self.observer, "contactStatusChanged", self.session, contact, contact.status)
        if oldName != contact.displayName:
            notifyObserver(self.observer, "contactNameChanged", self.session, contact, contact.displayName)
        newPicture = contact.picture
        if pictureMayChange and pictureIdentity(oldPicture) != pictureIdentity(newPicture):
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
        if self._isSelf(data.account):
            self.state.personalMessage = data.personalMessage
            self.state.currentMedia = data.currentMedia
            if data.endpoints is not None and data.endpoints != self.state.places:
                before = self.state.places
                self.state.places = self._boundPlaces(data.endpoints, self.state.places, "our own account")
                notifyObserver(self.observer, "endpointsChanged", self.session, dict(self.state.places))
                self._announcePlaces(before)
            return
        contact = self.state.contacts.get(data.account.email)
        if contact is None:
            return
        mediaChanged = contact.currentMedia != data.currentMedia
        changed = mediaChanged or contact.personalMessage != data.personalMessage
        # The "now playing" line is read from the raw value only when that
        # changed: most UBXs repeat it (or leave it empty).
        playingBefore = contact.nowPlaying if mediaChanged else ""
        contact.personalMessage = data.personalMessage
        contact.currentMedia = data.currentMedia
        if data.endpoints is not None:
            contact.endpoints = self._boundPlaces(data.endpoints, contact.endpoints, contact.email)
        if changed:
            notifyObserver(self.observer, "contactPersonalMessageChanged", self.session, contact, contact.personalMessage)
        if mediaChanged:
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
