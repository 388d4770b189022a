# -*- test-case-name: test.test_client -*-
"""
L{Session}: one signed-in account, the long-lived state a user works with.

It is built complete by L{msnp.client.MSNClient.login} once the NS has
accepted the ticket: its roster (L{msnp.roster.RosterManager}) over the ABCH
services, its conversations (L{msnp.conversation.ConversationManager}) over
the NS connection, and itself as that connection's
L{msnp.notification.INotificationListener}. Every attribute reflects what
the server confirmed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred, ensureDeferred, fail, gatherResults, succeed
from twisted.logger import Logger
from zope.interface import implementer

from msnp.circlechat import ChatCircle, CircleManager, PendingCircleInvitation
from msnp.coalesce import Coalescer
from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits, permitsInvitation
from msnp.contacts import (
    NETWORK_PASSPORT,
    NETWORK_YAHOO,
    Contact,
    ContactList,
    Group,
    Place,
    Profile,
    Status,
    formatCurrentMedia,
    normalizeGuid,
)
from msnp.conversation import Conversation, ConversationManager
from msnp.errors import ConnectionLost, ServiceError
from msnp.httpclient import HTTPClientHandle
from msnp.interfaces import notifyObserver
from msnp.listpayload import ListEntry
from msnp.mime import MessageFormat, TextMessage
from msnp.offline import UUM_GRACE_PERIOD, OfflineFailure, OfflineInbox, acceptedUnlessRefused
from msnp.oim import OfflineMessage
from msnp.soap.rsi import RSIService
from msnp.uum import (
    DeliveryResult,
    MessageKind,
    NetworkMessage,
    buildNetworkNudge,
    buildNetworkText,
    buildNetworkTyping,
    buildOfflineText,
)
from msnp.wire import Command
from msnp.notification import INotificationListener, NotificationProtocol
from msnp.reactors import reactorOrDefault
from msnp.nsmessages import Invitation, SessionState
from msnp.p2p.msnobject import MSNObject
from msnp.pictures import DisplayPictures, NoDisplayPicture, PictureCache, pictureMimeType
from msnp.roaming import RoamingProfileSync
from msnp.roster import GroupReference, RosterManager
from msnp.settings import MpopMode, Privacy, meAnnotations
from msnp.soap.addressbook import AddressBookService
from msnp.soap.circles import CircleService
from msnp.soap.sharing import SharingService
from msnp.uun import PlaceSignOut

if TYPE_CHECKING:
    from msnp.client import MSNClient

log = Logger()


# -- tickets ------------------------------------------------------------------------------


class ContactsTicket:
    """
    The session's current C{contacts.msn.com} ticket, which the ABCH
    clients read at every call; a renewal swaps it in place. Calling the
    object returns the ticket, so it is itself the ticket provider.
    The ticket never appears in the C{repr}.
    """

    def __init__(self, ticket: str, renew: Optional[Callable[[], "Deferred[str]"]] = None) -> None:
        """
        @param renew: runs a new SSO request and fires with the new ticket
            (L{None}: this ticket cannot be renewed).
        """
        self._ticket = ticket
        self._renew = renew
        self._closed = False

    def __call__(self) -> str:
        return self._ticket

    def replace(self, ticket: str) -> None:
        """
        Use C{ticket} from the next call on.
        """
        self._ticket = ticket

    def __repr__(self) -> str:
        return "<ContactsTicket (hidden)>"

    def renew(self) -> "Deferred[None]":
        """
        Get a new ticket and use it from the next call on; the ABCH clients
        call this when the service says the ticket has expired.
        """
        if self._closed:
            return fail(ServiceError("the session has ended; its tickets cannot be renewed"))
        if self._renew is None:
            return fail(ServiceError("this session has no HTTP client to renew its tickets with"))
        return self._renew().addCallback(self.replace)

    def close(self) -> None:
        """
        The session ended: refuse renewals from now on.
        """
        self._closed = True


# -- the session --------------------------------------------------------------------------


@implementer(INotificationListener)
class Session:
    """
    A signed-in account: its state, its contacts, its conversations.

    Every attribute reflects what the server confirmed; the setters change
    them only when the server echoes the change.
    """

    def __init__(
        self,
        protocol: NotificationProtocol,
        sharing: SharingService,
        addressBook: AddressBookService,
        contactsTicket: ContactsTicket,
        observer: Optional[object],
        reactor: Any,
        requestTimeout: float = 30.0,
        trace: bool = False,
        http: Optional[HTTPClientHandle] = None,
        client: Optional["MSNClient"] = None,
        pictureCache: Optional[PictureCache] = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
        rsi: Optional[RSIService] = None,
        webTicket: Optional[ContactsTicket] = None,
        uumGracePeriod: float = UUM_GRACE_PERIOD,
    ) -> None:
        """
        Build the whole session at once: its roster over the two ABCH
        services, its conversation manager over the NS connection, and
        itself as that connection's L{INotificationListener}.

        @param contactsTicket: the ticket the ABCH services read (and renew).
        @param http: the HTTP pool the login created, closed when the
            session ends (L{None}: the caller's own client, left open).
        @param client: the L{msnp.client.MSNClient} that signed in, if any.
        @param pictureCache: where fetched display pictures are kept (the
            client's, so it outlives reconnects); by default a new one in
            memory.
        @param limits: the caps against a hostile server; every switchboard
            wait (connect, acknowledgement, set-up) derives from
            C{requestTimeout}.
        @param rsi: the RSI client offline messages are fetched and deleted
            with (L{None}: announced offline messages are not fetched).
        @param webTicket: the C{messenger.msn.com} ticket C{rsi} reads,
            closed when the session ends.
        @param uumGracePeriod: seconds an offline message may still be
            refused by a numeric error before it counts as stored
            (docs/offline.md).
        """
        self.client = client
        self.protocol = protocol
        self.observer = observer
        self._http = http
        self._signedIn = False
        self._ended_ = False
        self._endReason: Optional[str] = None
        self._endWaiters: list[Deferred[Optional[str]]] = []
        self._cleanedUp: Optional[Deferred[None]] = None
        self._contactsTicket = contactsTicket
        self._addressBook = addressBook
        #: The roamed profile (storage service), L{None} until the login
        #: set it up or when the network has no storage ticket.
        self.roaming: Optional[RoamingProfileSync] = None
        self.roster = RosterManager(
            self.contacts, sharing, addressBook, protocol.sendListCommand, observer,
            session=self, ownEmail=self.account, clock=reactor,
        )
        self.pictures = DisplayPictures(
            self.account,
            openConversation=lambda email: self.conversationManager.openConversation(email),
            clock=reactorOrDefault(reactor),
            cache=pictureCache,
            otherPlaces=lambda: len(self.places) > 1,
        )
        self.conversationManager = ConversationManager(
            account=self.account,
            machineGuid=self.machineGuid,
            displayName=lambda: self.displayName or self.account,
            requestSwitchboard=protocol.requestSwitchboard,
            observer=observer,
            reactor=reactor,
            requestTimeout=requestTimeout,
            connectTimeout=requestTimeout,
            ackTimeout=requestTimeout,
            setupTimeout=2 * requestTimeout,
            trace=trace,
            session=self,
            p2p=self.pictures,
            limits=limits,
            permits=self._permitsInvitation,
            sendOffline=self.sendOfflineMessage,
            contactNetwork=self._contactNetwork,
            isKnownOffline=self._isKnownOffline,
        )
        self.circleManager = CircleManager(
            self, protocol, CircleService(sharing, addressBook), addressBook, observer,
            clock=protocol.clock, requestTimeout=requestTimeout,
        )
        # A burst of address-book NOTs re-reads the circles once too.
        self._circleRefreshes = Coalescer(self._refreshCircles, clock=reactor)
        self.uumGracePeriod = uumGracePeriod
        self._webTicket = webTicket
        self._announcements: list[bytes] = []
        self.offlineInbox: Optional[OfflineInbox] = None
        self.rsi = rsi
        if rsi is not None:
            self.offlineInbox = OfflineInbox.overRSI(
                rsi, self._deliverOffline, protocol.clock, report=self._offlineFailed
            )
        protocol.session = self
        protocol.listener = self

    def __repr__(self) -> str:
        return f"<Session {self.account} {self.status.code}{' ended' if self._ended_ else ''}>"

    def renewTicket(self) -> "Deferred[None]":
        """
        Renew the C{contacts.msn.com} ticket the ABCH clients use: run the
        SSO request of the login again (same account, password and policy)
        and swap in the new ticket. The NS session is not touched (reference
        section 7.4). The ABCH clients do this by themselves when the
        service says the ticket has expired.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the new ticket is in use, or
            failing with L{msnp.errors.AuthenticationError} (the password is
            no longer accepted) or L{msnp.errors.ServiceError}.
        """
        return self._contactsTicket.renew()

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """
        The NS connection's live state; the other properties read it, so
        they never disagree with what the server confirmed.
        """
        return self.protocol.state

    @property
    def account(self) -> str:
        return self.state.account

    @property
    def contacts(self) -> ContactList:
        return self.state.contacts

    @property
    def profile(self) -> Optional[Profile]:
        return self.state.profile

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def displayName(self) -> str:
        return self.state.displayName

    @property
    def personalMessage(self) -> str:
        return self.state.personalMessage

    @property
    def currentMedia(self) -> str:
        return self.state.currentMedia

    @property
    def machineGuid(self) -> str:
        return self.state.machineGuid

    @property
    def policy(self) -> Optional[bytes]:
        """
        The C{GCF} policy document the server pushed at login, if any.
        """
        return self.protocol.policy

    @property
    def places(self) -> dict[str, Place]:
        """
        This account's signed-in places (MPOP), ours included.
        """
        return self.state.places

    @property
    def otherPlaces(self) -> dict[str, Place]:
        """
        This account's other signed-in places (MPOP), by normalised GUID,
        each with its name (C{Place.name}); this place is left out.
        """
        own = self.machineGuid
        return {guid: place for guid, place in self.places.items() if guid != own}

    @property
    def privacy(self) -> Privacy:
        """
        Who may see and reach me (C{BLP}), as the address book keeps it.
        """
        profile = self.profile
        return Privacy.fromCommand(profile.blp) if profile is not None else Privacy.EVERYONE_NOT_BLOCKED

    @property
    def mpopMode(self) -> MpopMode:
        """
        The MPOP choice the address book keeps (C{MSN.IM.MPOP}).
        """
        profile = self.profile
        if profile is None or profile.mpop:
            return MpopMode.KEEP_OTHER_PLACES
        return MpopMode.SIGN_OUT_OTHER_PLACES

    @property
    def hotmailProfile(self) -> dict[str, str]:
        return self.state.hotmailProfile

    @property
    def isActive(self) -> bool:
        """
        Whether the login finished and the session has not ended: only
        then do requests on it make sense.
        """
        return self._signedIn and not self._ended_

    # -- what the NS connection tells us (INotificationListener) ----------------------------------

    def useContactList(self, contacts: ContactList, profile: Profile) -> None:
        """
        The login downloaded the lists: from now on they are the session's
        (and its roster's) contact list and profile.
        """
        self.state.contacts = contacts
        self.state.profile = profile
        self.roster.contacts = contacts

    def markSignedIn(self) -> None:
        """
        The login finished (C{CHG} echoed): from now on the session is
        active and its end is reported to the observer; offline messages
        announced so far start to be fetched.
        """
        self._signedIn = True
        announcements, self._announcements = self._announcements, []
        for payload in announcements:
            self.mailDataReceived(payload)

    def mailDataReceived(self, payload: bytes) -> None:
        """
        The NS sent mail data or an OIM notification: fetch the messages
        it announces (after sign-in; earlier ones wait until then).
        """
        if self._ended_:
            return
        if not self._signedIn:
            if len(self._announcements) < 100:
                self._announcements.append(payload)
            return
        if self.offlineInbox is None:
            log.info("Offline messages announced for {account}, but no RSI service to fetch them",
                     account=self.account)
            return
        self.offlineInbox.announcePayload(payload)

    def networkMessageReceived(self, message: NetworkMessage) -> None:
        """
        A C{UBM} for us from a contact on another network: tell the
        observer.
        """
        sender = message.sender or ""
        if message.kind is MessageKind.TEXT:
            contact = self.contacts.get(sender)
            name = contact.displayName if contact is not None else sender
            notifyObserver(
                self.observer, "networkMessageReceived", self,
                TextMessage(sender, name, message.text, message.format),
            )
        elif message.kind is MessageKind.TYPING:
            notifyObserver(self.observer, "networkTypingReceived", self, sender)
        else:
            notifyObserver(self.observer, "networkNudgeReceived", self, sender)

    def _deliverOffline(self, message: OfflineMessage) -> None:
        notifyObserver(self.observer, "offlineMessageReceived", self, message)

    def _offlineFailed(self, failure: OfflineFailure) -> None:
        notifyObserver(self.observer, "offlineMessageFailed", self, failure)

    def _contactNetwork(self, email: str) -> Optional[int]:
        contact = self.contacts.get(email)
        return contact.network if contact is not None else None

    def _isKnownOffline(self, email: str) -> bool:
        contact = self.contacts.get(email)
        return contact is not None and contact.status is Status.OFFLINE

    def serverListChanged(self, entries: list[ListEntry], added: bool) -> None:
        d = self.roster.serverListChanged(entries, added)
        d.addErrback(lambda f: log.info("Applying a server list change failed: {e}", e=f.getErrorMessage()))

    def addressBookChanged(self) -> None:
        d = self.roster.addressBookChanged()
        d.addErrback(lambda f: log.info("Address book refresh failed: {e}", e=f.getErrorMessage()))
        self._circleRefreshes.request()

    def _refreshCircles(self) -> "Deferred[None]":
        circles = self.circleManager.refresh()
        circles.addErrback(lambda f: log.info("Circle refresh failed: {e}", e=f.getErrorMessage()))
        return circles

    def circleCommandReceived(self, command: Command) -> None:
        self.circleManager.commandReceived(command)

    def circleNotified(self, circleId: str) -> None:
        d = self.circleManager.circleNotified(circleId)
        d.addErrback(lambda f: log.info("Circle {circle} refresh failed: {e}", circle=circleId, e=f.getErrorMessage()))

    def invited(self, invitation: Invitation) -> None:
        self.conversationManager.invited(invitation)

    def _permitsInvitation(self, email: str) -> bool:
        """
        Whether our privacy, as known now, lets C{email} reach us: not
        blocked, and on the Allow list under C{BLP BL}. The conversations
        ask at the moment of use (each C{RNG}, each message).
        """
        profile = self.profile
        return permitsInvitation(self.contacts.get(email), profile.blp if profile is not None else "AL")

    def notificationEnded(self, reason: Optional[str]) -> None:
        self._ended(reason)

    def _ended(self, reason: Optional[str]) -> None:
        """
        The NS connection closed: end everything that hangs off it.
        """
        if self._ended_:
            return
        self._ended_ = True
        self._endReason = reason
        self.roster.close()
        self._circleRefreshes.close()
        self._contactsTicket.close()
        self.pictures.close()
        if self._webTicket is not None:
            self._webTicket.close()
        if self.offlineInbox is not None:
            self.offlineInbox.stop()
        if self.roaming is not None:
            self.roaming.stop()
        try:
            self.conversationManager.closeAll()
        except Exception:
            log.failure("Error while closing the conversations of {account}", account=self.account)
        cleanup: Deferred[None] = self._http.close() if self._http is not None else succeed(None)
        cleanup.addErrback(lambda f: log.failure("Error while closing the HTTP pool", f))
        self._cleanedUp = cleanup
        if not self._signedIn:
            return
        log.info("Session of {account} ended: {reason}", account=self.account, reason=reason)
        notifyObserver(self.observer, "signedOut", self, reason)

        def tellWaiters(_: object) -> None:
            waiters, self._endWaiters = self._endWaiters, []
            for waiter in waiters:
                waiter.callback(reason)

        cleanup.addCallback(tellWaiters)

    # -- lifetime ----------------------------------------------------------------------------------

    def logout(self) -> "Deferred[None]":
        """
        Send C{OUT}, close the conversations and the connection.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing when everything is closed.
        """
        return ensureDeferred(self._logout())

    async def _logout(self) -> None:
        if not self._ended_ and self.roaming is not None and self.roaming.pending:
            # Give a roaming write the user is waiting on its chance (it
            # never fails; it is bounded by the storage call's deadline).
            await self.roaming.change()
        self.roster.close()
        self._circleRefreshes.close()
        if not self._ended_:
            try:
                self.conversationManager.closeAll()
            except Exception:
                log.failure("Error while closing the conversations of {account}", account=self.account)
        await self.protocol.signOut()
        if self._cleanedUp is not None and not self._cleanedUp.called:
            done: Deferred[None] = Deferred()

            def passOn(result: object) -> object:
                done.callback(None)
                return result

            self._cleanedUp.addBoth(passOn)
            await done

    def whenEnded(self) -> "Deferred[Optional[str]]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing once the session is over, with the reason: the
        server's C{OUT} code (C{"OTH"}, C{"SSD"}, ...), C{"logout"},
        C{"connection lost"}, or C{"signed out from another place"}.
        """
        if self._ended_ and not self._endWaiters and self._cleanedUp is not None and self._cleanedUp.called:
            return succeed(self._endReason)
        d: Deferred[Optional[str]] = Deferred()
        self._endWaiters.append(d)
        return d

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

    # -- conversations ---------------------------------------------------------------------------------

    def openConversation(self, email: str) -> "Deferred[Conversation]":
        """
        Start (or reuse) a conversation with C{email}.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the L{Conversation} once the
            contact has joined, or failing (L{msnp.errors.ContactOffline},
            L{msnp.errors.ServerError}, a timeout).
        """
        return self.conversationManager.openConversation(email)

    # -- messages without a switchboard (docs/offline.md) -----------------------------------------------

    def sendOfflineMessage(
        self, email: str, text: str, format: Optional[MessageFormat] = None
    ) -> "Deferred[DeliveryResult]":
        """
        Leave C{text} for C{email} as an offline message (C{UUM ... 1 1}
        with C{Dest-Agent: client}); to a contact on another network
        (network 32), send it with L{sendNetworkText} instead.

        Servers never answer C{UUM}: the message counts as stored when no
        numeric error came back within L{uumGracePeriod} seconds.

        @return: a L{twisted.internet.defer.Deferred} firing with L{DeliveryResult.STORED_OFFLINE}
            (or L{DeliveryResult.SENT_TO_NETWORK}); failing with
            L{ValueError} (the text is longer than one offline message may
            be, or the address is not one), L{msnp.errors.ServerError}
            (refused), or L{msnp.errors.ConnectionLost}.
        """
        if self._contactNetwork(email) == NETWORK_YAHOO:
            return self.sendNetworkText(email, text, format)
        try:
            command = buildOfflineText(0, email, text, format)
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.STORED_OFFLINE)

    def sendNetworkText(
        self, email: str, text: str, format: Optional[MessageFormat] = None,
        network: Optional[int] = None,
    ) -> "Deferred[DeliveryResult]":
        """
        Send C{text} to a contact on another network (C{UUM email 32 1}):
        such contacts have no switchboard. The server passes it on if they
        are signed in; there is no offline store on their network.

        @param network: the recipient's network id (by default the
            contact's, else 32).
        @return: a L{twisted.internet.defer.Deferred} firing with L{DeliveryResult.SENT_TO_NETWORK},
            failing like L{sendOfflineMessage}.
        """
        try:
            command = buildNetworkText(0, email, text, self._networkOf(email, network), format)
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def sendNetworkTyping(self, email: str, network: Optional[int] = None) -> "Deferred[DeliveryResult]":
        """
        Tell a contact on another network that you are typing
        (C{UUM email 32 2}); never sent to a Live contact.
        """
        try:
            command = buildNetworkTyping(0, email, self.account, self._networkOf(email, network))
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def sendNetworkNudge(self, email: str, network: Optional[int] = None) -> "Deferred[DeliveryResult]":
        """
        Nudge a contact on another network (C{UUM email 32 3}).
        """
        try:
            command = buildNetworkNudge(0, email, self._networkOf(email, network))
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def _networkOf(self, email: str, network: Optional[int]) -> int:
        if network is not None:
            return network
        known = self._contactNetwork(email)
        return known if known is not None and known != NETWORK_PASSPORT else NETWORK_YAHOO

    def _sendUUM(self, command: Command, result: DeliveryResult) -> "Deferred[DeliveryResult]":
        if self._ended_:
            return fail(ConnectionLost("the session has ended"))
        try:
            sent = self.protocol.sendCommand(
                "UUM", *command.arguments, payload=command.payload, timeout=self.uumGracePeriod
            )
        except ValueError as e:
            return fail(e)
        return acceptedUnlessRefused(sent, result)

    # -- conversations (continued) -----------------------------------------------------------------------

    @property
    def conversations(self) -> list[Conversation]:
        """
        The open L{msnp.conversation.Conversation}s.
        """
        return self.conversationManager.conversations

    # -- circles (see msnp.circlechat.CircleManager) ----------------------------------------------------

    @property
    def circles(self) -> dict[str, ChatCircle]:
        """
        The circles (group chats) this account is in, by circle id.
        """
        return self.circleManager.circles

    @property
    def circleInvitations(self) -> dict[str, PendingCircleInvitation]:
        """
        The circle invitations not yet accepted or declined, by circle id.
        """
        return self.circleManager.invitations

    def createCircle(self, name: str) -> "Deferred[ChatCircle]":
        """
        Create a circle with this account as its administrator and join
        its conversation; fires with the new circle.
        """
        return self.circleManager.createCircle(name)

    # -- contact management (see msnp.roster.RosterManager) ---------------------------------------------

    def addContact(self, email: str, group: Optional[GroupReference] = None) -> "Deferred[Contact]":
        """
        Add C{email} to the contact list (optionally into C{group}); fires
        with the new L{Contact}.
        """
        return self.roster.addContact(email, group)

    def removeContact(self, email: str) -> "Deferred[None]":
        """
        Take C{email} off the contact list (address book and forward list).
        """
        return self.roster.removeContact(email)

    def blockContact(self, email: str) -> "Deferred[None]":
        """
        Block C{email}: they see you offline and cannot talk to you.
        """
        return self.roster.blockContact(email).addCallback(
            lambda _: self.conversationManager.contactBlocked(email)
        )

    def unblockContact(self, email: str) -> "Deferred[None]":
        """
        Allow C{email} again.
        """
        return self.roster.unblockContact(email)

    def acceptContactRequest(self, email: str, addToList: bool = True) -> "Deferred[Contact]":
        """
        Accept someone who added you; with C{addToList} (the default) add
        them to your list too, so you see each other.
        """
        return self.roster.acceptContactRequest(email, addToList)

    def declineContactRequest(self, email: str) -> "Deferred[Contact]":
        """
        Decline someone who added you: they are blocked.
        """
        return self.roster.declineContactRequest(email)

    def addGroup(self, name: str) -> "Deferred[Group]":
        """
        Create a group; fires with the new L{msnp.contacts.Group}.
        """
        return self.roster.addGroup(name)

    def renameGroup(self, group: GroupReference, newName: str) -> "Deferred[Group]":
        """
        Rename a group, given as a L{msnp.contacts.Group}, its id or its name.
        """
        return self.roster.renameGroup(group, newName)

    def removeGroup(self, group: GroupReference) -> "Deferred[None]":
        """
        Delete a group (its contacts stay on the list, without the group).
        """
        return self.roster.removeGroup(group)

    def moveContactToGroup(self, email: str, group: Optional[GroupReference]) -> "Deferred[Contact]":
        """
        Put a contact in C{group} only (L{None}: in no group).
        """
        return self.roster.moveContactToGroup(email, group)
