# -*- test-case-name: test.test_client,test.test_places,test.test_pictures,test.test_roaming -*-
"""
L{SessionProfile}: what a signed-in account shows of itself, a base class
of L{msnp.session.Session}.

Its status, display name, personal message and "now playing", the roamed
copy of them (storage service), its other places (MPOP), its privacy
(C{BLP}), its display picture and its custom emoticons, winks and voice
clips. They are apart from L{msnp.session} so that module keeps the
session's lifetime and what the NS connection tells it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred, ensureDeferred, fail, gatherResults, succeed
from twisted.logger import Logger

from msnp.contacts import Place, Status, formatCurrentMedia, normalizeGuid
from msnp.p2p.msnobject import MSNObject
from msnp.emoticons import UnfetchableObject, checkFetchable
from msnp.p2p.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, TYPE_WINK
from msnp.richcontent import VoiceClip, Wink
from msnp.pictures import NoDisplayPicture, pictureMimeType
from msnp.roaming import RoamingProfileSync
from msnp.settings import MpopMode, Privacy, meAnnotations
from msnp.uun import PlaceSignOut

if TYPE_CHECKING:
    from msnp.client import MSNClient
    from msnp.contacts import ContactList, Profile
    from msnp.emoticons import RichContent
    from msnp.notification import NotificationProtocol
    from msnp.nsmessages import SessionState
    from msnp.pictures import DisplayPictures
    from msnp.soap.addressbook import AddressBookService

log = Logger()


class SessionProfile:
    """
    The profile methods of L{msnp.session.Session} (status, name, message,
    roaming, places, privacy, display picture, custom emoticons); every
    change is reflected only once the server confirmed it.
    """

    if TYPE_CHECKING:
        # Set up by msnp.session.Session, which this class is a base of.
        _addressBook: AddressBookService
        _ended_: bool
        client: Optional[MSNClient]
        protocol: NotificationProtocol
        roaming: Optional[RoamingProfileSync]

        @property
        def account(self) -> str: ...

        @property
        def pictures(self) -> DisplayPictures: ...

        @property
        def rich(self) -> RichContent: ...

        @property
        def contacts(self) -> ContactList: ...

        @property
        def currentMedia(self) -> str: ...

        @property
        def otherPlaces(self) -> dict[str, Place]: ...

        @property
        def personalMessage(self) -> str: ...

        @property
        def profile(self) -> Optional[Profile]: ...

        @property
        def state(self) -> SessionState: ...

        @property
        def status(self) -> Status: ...

    # -- presence ----------------------------------------------------------------------------------

    def setStatus(self, status: Status) -> "Deferred[Status]":
        """
        Change the status (C{UUX} place state, then C{CHG}); fires with the
        status the server echoed.
        """
        if status is Status.OFFLINE:
            return fail(ValueError("cannot set FLN; use logout() or Status.HIDDEN"))
        if status is self.status:
            return succeed(status)

        async def change() -> Status:
            await self.protocol.publishEndpoint(status)
            return await self.protocol.changeStatus(status)

        return ensureDeferred(change())

    def setDisplayName(self, name: str) -> "Deferred[str]":
        """
        Change the display name (C{PRP MFN}); fires with the echoed name.
        """
        if not name.strip():
            return fail(ValueError("a display name cannot be empty"))

        def roam(echoed: str) -> str:
            self._roam(displayName=echoed)
            return echoed

        return self.protocol.setDisplayName(name).addCallback(roam)

    def setPersonalMessage(self, text: str) -> "Deferred[None]":
        """
        Change the personal message (C{UUX}); fires on C{UUX trid 0}. The
        roamed copy follows in the background (see L{roaming}).
        """

        def roam(_: None) -> None:
            self._roam(personalMessage=text)

        return self.protocol.publishPersonalData(text, self.currentMedia).addCallback(roam)

    # -- the roamed profile (storage service) --------------------------------------------------

    def useRoamingProfile(self, sync: RoamingProfileSync) -> None:
        """
        From now on keep C{sync}'s roamed copy in step with the name,
        message and picture set here (the login calls this).
        """
        self.roaming = sync

    def _roam(self, **changes: Any) -> None:
        """
        Write a change the server accepted to the roamed copy too, in the
        background: the sync logs and retries failures itself.
        """
        if self.roaming is not None and not self._ended_:
            self.roaming.change(**changes)

    def roamDisplayPicture(self, data: bytes, mimeType: str = "image/png") -> "Deferred[bool]":
        """
        Store C{data} as the roamed display picture, so the next sign-in
        (here or at another place) can start with it. The hook for the
        display-picture setter of the P2P layer, which announces the
        picture itself (C{CHG} with the MSN object).

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing C{True} once stored, C{False} if the
            write failed (it is retried later) or there is no storage.
        """
        if self.roaming is None or self._ended_:
            return succeed(False)
        return self.roaming.change(picture=data, mimeType=mimeType)

    def fetchRoamedPicture(self) -> "Deferred[Optional[bytes]]":
        """
        The roamed display picture's bytes, L{None} when none was roamed or
        the storage service failed (logged).
        """
        if self.roaming is None:
            return succeed(None)
        return self.roaming.fetchPicture()

    # -- places (MPOP) --------------------------------------------------------------------------

    def signOutPlace(self, placeId: str) -> "Deferred[None]":
        """
        Sign one of this account's other places out: C{UUN} type 4
        C{goawyplzthxbye} addressed to that place's GUID (reference 5.4).

        @raise ValueError: (in the L{Deferred <twisted.internet.defer.Deferred>}) C{placeId} is not one of
            L{otherPlaces}.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the server accepted it.
        """
        try:
            guid = normalizeGuid(placeId)
        except ValueError as e:
            return fail(ValueError(f"not a place id: {e}"))
        if guid not in self.otherPlaces:
            return fail(ValueError(f"{placeId} is not another signed-in place of {self.account}"))
        d = self.protocol.sendUserNotification(self.account, PlaceSignOut(), guid)
        return d.addCallback(lambda _: None)

    def signOutEverywhereElse(self) -> "Deferred[list[Place]]":
        """
        Sign every other place of this account out, one C{UUN} per place
        (never one to the bare address, which would also reach this place
        on some servers, supplement Q.5.2).

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the places asked to sign out.
        """
        places = list(self.otherPlaces.values())
        sent = [self.signOutPlace(place.guid) for place in places]
        d: Deferred[Any] = gatherResults(sent, consumeErrors=True)
        return d.addCallback(lambda _: places)

    def setMpopMode(self, mode: MpopMode) -> "Deferred[MpopMode]":
        """
        Keep the MPOP choice in the address book (C{MSN.IM.MPOP}, as
        MSNPSharp and WLM do); fires with it once stored.
        """

        async def store() -> MpopMode:
            await self._addressBook.contactUpdateMe(meAnnotations(mpop=mode), scenario="GeneralDialogApply")
            if self.profile is not None:
                self.profile.mpop = mode is MpopMode.KEEP_OTHER_PLACES
                self.profile.annotations.update(meAnnotations(mpop=mode))
            return mode

        return ensureDeferred(store())

    # -- privacy ----------------------------------------------------------------------------------

    def setPrivacy(self, privacy: Privacy) -> "Deferred[Privacy]":
        """
        Choose who may see and reach me: persisted in the address book
        first (C{MSN.IM.BLP} of the Me contact, as WLM and MSNPSharp do, so
        every later sign-in sends the same C{BLP}), then C{BLP} on the NS.
        Contacts who added me and are not decided on stay on the list as
        pending either way.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the privacy in effect, failing
            with L{msnp.errors.ServiceError} (nothing changed) or
            L{msnp.errors.ServerError} (stored, not applied until the next
            sign-in).
        """
        if not isinstance(privacy, Privacy):
            return fail(TypeError(f"not a Privacy: {privacy!r}"))

        async def change() -> Privacy:
            await self._addressBook.contactUpdateMe(meAnnotations(privacy=privacy))
            if self.profile is not None:
                self.profile.annotations.update(meAnnotations(privacy=privacy))
            await self.protocol.setPrivacy(privacy.value)
            if self.profile is not None:
                self.profile.blp = privacy.value
            return privacy

        return ensureDeferred(change())

    def setCurrentMedia(
        self, title: str, artist: str = "", album: str = "", category: str = "Music"
    ) -> "Deferred[None]":
        """
        Show (or, with an empty C{title}, clear) "now playing".
        """
        media = formatCurrentMedia(title, artist, album, category)
        return self.protocol.publishPersonalData(self.personalMessage, media)

    # -- display pictures (see msnp.pictures) ------------------------------------------------------------

    @property
    def displayPicture(self) -> Optional[MSNObject]:
        """
        The MSN object of the display picture this session publishes and
        serves, or L{None}.
        """
        return self.pictures.published

    def setDisplayPicture(self, data: Optional[bytes]) -> "Deferred[Optional[MSNObject]]":
        """
        Publish C{data} (PNG or JPEG bytes) as the display picture, or
        clear it with L{None}: the object goes into C{CHG} (contacts see it
        in C{NLN}/C{ILN}), the bytes are served to every contact who asks
        over P2P, and the client keeps them for its next logins.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the published
            L{msnp.p2p.msnobject.MSNObject} (L{None} when cleared) once the
            server echoed the C{CHG}; failing with L{ValueError} for data
            that is empty, over L{msnp.pictures.MAX_PICTURE_SIZE} or not a
            PNG/JPEG (nothing changes then).
        """
        try:
            obj = self.pictures.publish(data)
        except ValueError as e:
            return fail(e)
        if self.client is not None:
            self.client.displayPicture = None if data is None else bytes(data)
        xml = obj.toXml() if obj is not None else ""
        if self.status is Status.OFFLINE:
            # Not announced yet: the login's first CHG carries it.
            self.state.msnObject = xml or None
            return succeed(obj)

        def roam(_: object) -> Optional[MSNObject]:
            # The roamed copy follows in the background; a storage failure
            # is logged and retried by the sync, never the caller's error.
            if data is not None:
                self.roamDisplayPicture(bytes(data), pictureMimeType(data))
            return obj

        return self.protocol.changeStatus(self.status, xml).addCallback(roam)

    def fetchDisplayPicture(self, email: str) -> "Deferred[bytes]":
        """
        The bytes of C{email}'s current display picture (the object of
        their last C{NLN}/C{ILN}, L{msnp.contacts.Contact.picture}): from
        the cache when it holds that SHA1D, else asked for over P2P and
        checked against the SHA1D before it is cached and returned.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the bytes, or failing with a
            L{msnp.p2p.errors.TransferError}: L{msnp.pictures.NoDisplayPicture}
            (no picture announced), C{TransferDeclined}, C{TransferTimeout},
            C{TransferInterrupted} (the switchboard closed), C{ChecksumMismatch}.
        """
        contact = self.contacts.get(email.strip().lower())
        obj = contact.picture if contact is not None else None
        if obj is None:
            return fail(NoDisplayPicture(f"{email} has announced no display picture"))
        return self.pictures.fetch(obj)

    # -- custom emoticons, winks, voice clips (see msnp.emoticons) ----------------------------------

    def setCustomEmoticon(self, shortcut: str, data: Optional[bytes]) -> Optional[MSNObject]:
        """
        Bind C{shortcut} to an image (PNG, GIF or JPEG bytes; L{None}
        unbinds): every later L{Conversation.sendText} whose text contains
        it announces the emoticon first, and the image is served over P2P.

        The client keeps the binding for its later sessions (reconnects),
        as it keeps the display picture.

        @return: the emoticon's type 2 object, L{None} when unbound.
        @raise ValueError: see L{msnp.emoticons.RichContent.setEmoticon}.
        """
        obj = self.rich.setEmoticon(shortcut, data)
        kept = getattr(self.client, "customEmoticons", None)
        if kept is not None:
            if data is None:
                kept.pop(shortcut, None)
            else:
                kept[shortcut] = bytes(data)
        return obj

    def fetchEmoticon(self, msnObject: MSNObject) -> "Deferred[bytes]":
        """
        The image of a received custom emoticon (an object of
        L{msnp.mime.TextMessage.emoticons}), fetched over P2P from its
        Creator and SHA1D-checked, or from the cache shared with pictures.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the bytes, failing with a
            L{msnp.p2p.errors.TransferError} (L{msnp.emoticons.UnfetchableObject}
            for a non-emoticon or oversized object, C{ChecksumMismatch},
            C{TransferDeclined}, C{TransferTimeout}, ...).
        """
        return self._fetchObject(msnObject, TYPE_EMOTICON)

    def fetchWink(self, wink: Wink) -> "Deferred[bytes]":
        """
        The bytes of a received wink (C{winkReceived}), as L{fetchEmoticon}.
        """
        return self._fetchObject(wink.msnObject, TYPE_WINK)

    def fetchVoiceClip(self, clip: VoiceClip) -> "Deferred[bytes]":
        """
        The bytes of a received voice clip (C{voiceClipReceived}), as
        L{fetchEmoticon}.
        """
        return self._fetchObject(clip.msnObject, TYPE_VOICE_CLIP)

    def _fetchObject(self, obj: MSNObject, type: int) -> "Deferred[bytes]":
        try:
            checkFetchable(obj, type)
        except UnfetchableObject as e:
            return fail(e)
        return self.pictures.fetch(obj)
