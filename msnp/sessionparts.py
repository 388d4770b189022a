# -*- test-case-name: test.test_sessionparts -*-
"""
L{SessionParts}: the managers of a signed-in account that most sessions
never use, built on first use (a base class of L{msnp.session.Session}).

A session of a process holding many of them (issue 13: 1,000 sessions,
20 KiB each) mostly sits online: it never opens a conversation, sends a
picture or a file, joins a circle or receives an offline message. The
conversation manager with its P2P, picture, file and rich-content parts,
the circle manager, the offline inbox and the circle refresh's coalescer
cost several KiB each session, so each is built the first time anything
reads its attribute: a method of the session, the user, or an event of the
NS connection (a switchboard invitation, a circle command, an offline-message
announcement). The public attributes (C{session.conversationManager},
C{.pictures}, C{.files}, C{.rich}, C{.circleManager}, C{.offlineInbox})
stay as they were; only when they come into being changes. A part first
read after the session ended is built already closed, as it would have
been had it existed at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred, succeed

from msnp.circlechat import CircleManager
from msnp.clientlimits import ClientLimits
from msnp.coalesce import Coalescer
from msnp.conversation import ConversationManager
from msnp.emoticons import RichContent
from msnp.filetransfer import FileTransfers
from msnp.offline import OfflineInbox
from msnp.oim import MailData, MalformedMailData, parseMailDataPayload
from msnp.pictures import DisplayPictures, PictureCache
from msnp.reactors import reactorOrDefault
from msnp.soap.circles import CircleListing, CircleService

if TYPE_CHECKING:
    from msnp.client import MSNClient
    from msnp.contacts import Place
    from msnp.mime import MessageFormat
    from msnp.uum import DeliveryResult
    from msnp.notification import NotificationProtocol
    from msnp.oim import OfflineMessage
    from msnp.offline import OfflineFailure
    from msnp.soap.addressbook import AddressBookService
    from msnp.soap.rsi import RSIService
    from msnp.soap.sharing import SharingService

__all__ = ["SessionParts"]


class SessionParts:
    """
    The lazily built managers of L{msnp.session.Session}; the session's
    constructor keeps what building them needs (L{_keepPartsOptions}).
    """

    if TYPE_CHECKING:
        # Set up by msnp.session.Session, which this class is a base of.
        _addressBook: AddressBookService
        _ended_: bool
        client: Optional[MSNClient]
        observer: Optional[object]
        protocol: NotificationProtocol
        rsi: Optional[RSIService]

        @property
        def account(self) -> str: ...

        @property
        def machineGuid(self) -> str: ...

        @property
        def displayName(self) -> str: ...

        @property
        def places(self) -> dict[str, Place]: ...

        def _permitsInvitation(self, email: str) -> bool: ...

        def sendOfflineMessage(
            self, email: str, text: str, format: Optional[MessageFormat] = None
        ) -> Deferred[DeliveryResult]: ...

        def _contactNetwork(self, email: str) -> Optional[int]: ...

        def _isKnownOffline(self, email: str) -> bool: ...

        def _refreshCircles(self) -> Deferred[None]: ...

        def _deliverOffline(self, message: OfflineMessage) -> None: ...

        def _offlineFailed(self, failure: OfflineFailure) -> None: ...

    # What the parts are built from: one tuple rather than seven attributes
    # (reactor, request timeout, trace, limits, picture cache, sharing
    # service), set by _keepPartsOptions.
    _partsOptions: tuple[Any, float, bool, ClientLimits, Optional[PictureCache], SharingService]
    _rich: Optional[RichContent] = None
    _pictures: Optional[DisplayPictures] = None
    _files: Optional[FileTransfers] = None
    _conversationManager: Optional[ConversationManager] = None
    _circleManager: Optional[CircleManager] = None
    _offlineInbox: Optional[OfflineInbox] = None
    _circleCoalescer: Optional[Coalescer] = None

    def _keepPartsOptions(
        self, reactor: Any, requestTimeout: float, trace: bool, limits: ClientLimits,
        pictureCache: Optional[PictureCache], sharing: SharingService,
    ) -> None:
        """
        Remember what the parts are built from (the session's constructor).
        """
        self._partsOptions = (reactor, requestTimeout, trace, limits, pictureCache, sharing)

    # -- the parts ---------------------------------------------------------------------------------

    @property
    def rich(self) -> RichContent:
        """
        Custom emoticons, winks, voice clips and ink (docs/p2p.md 8).
        """
        rich = self._rich
        if rich is None:
            rich = self._rich = RichContent(self.account)
            for shortcut, image in getattr(self.client, "customEmoticons", {}).items():
                # Set on an earlier session of this client (a reconnect).
                rich.setEmoticon(shortcut, image)
        return rich

    @property
    def pictures(self) -> DisplayPictures:
        """
        Display pictures, published and fetched (L{msnp.pictures}); the P2P
        manager of the session's switchboards.
        """
        pictures = self._pictures
        if pictures is None:
            reactor, _, _, _, cache, _ = self._partsOptions
            pictures = DisplayPictures(
                self.account,
                openConversation=self._openForPictures,
                clock=reactorOrDefault(reactor),
                cache=cache,
                otherPlaces=self._hasOtherPlaces,
                sources=[self.rich],
            )
            self._pictures = pictures
            if self._ended_:
                pictures.close()
        return pictures

    @property
    def files(self) -> FileTransfers:
        """
        File transfers (L{msnp.filetransfer.FileTransfers}):
        L{msnp.conversation.Conversation.sendFile} and the offers;
        C{files.sessions.maxFileSize} and C{.offerTimeout} are the caps.
        """
        files = self._files
        if files is None:
            pictures = self.pictures
            files = self._files = FileTransfers(
                pictures.manager, self.observer, self, reactorOrDefault(self._partsOptions[0]),
                conversationOf=pictures.lastConversation.get,
                otherPlaces=self._hasOtherPlaces,
            )
        return files

    @property
    def conversationManager(self) -> ConversationManager:
        """
        The switchboard conversations (L{msnp.conversation.ConversationManager}).
        """
        manager = self._conversationManager
        if manager is None:
            reactor, requestTimeout, trace, limits, _, _ = self._partsOptions
            manager = ConversationManager(
                account=self.account,
                machineGuid=self.machineGuid,
                displayName=self._nameInConversations,
                requestSwitchboard=self.protocol.requestSwitchboard,
                observer=self.observer,
                reactor=reactor,
                requestTimeout=requestTimeout,
                connectTimeout=requestTimeout,
                ackTimeout=requestTimeout,
                setupTimeout=2 * requestTimeout,
                trace=trace,
                session=self,
                p2p=self.pictures,
                files=self.files,
                rich=self.rich,
                limits=limits,
                permits=self._permitsInvitation,
                sendOffline=self.sendOfflineMessage,
                contactNetwork=self._contactNetwork,
                isKnownOffline=self._isKnownOffline,
            )
            self._conversationManager = manager
        return manager

    @property
    def circleManager(self) -> CircleManager:
        """
        The circles (group chats) of this account (L{msnp.circlechat.CircleManager}).
        """
        manager = self._circleManager
        if manager is None:
            _, requestTimeout, _, _, _, sharing = self._partsOptions
            manager = self._circleManager = CircleManager(
                self, self.protocol, CircleService(sharing, self._addressBook), self._addressBook,
                self.observer, clock=self.protocol.clock, requestTimeout=requestTimeout,
            )
        return manager

    @property
    def offlineInbox(self) -> Optional[OfflineInbox]:
        """
        Where announced offline messages are fetched, delivered and
        deleted (L{msnp.offline.OfflineInbox}); L{None} without an RSI
        service.
        """
        inbox = self._offlineInbox
        if inbox is None and self.rsi is not None:
            inbox = self._offlineInbox = OfflineInbox.overRSI(
                self.rsi, self._deliverOffline, self.protocol.clock, report=self._offlineFailed
            )
            if self._ended_:
                inbox.stop()
        return inbox

    @property
    def _circleRefreshes(self) -> Coalescer:
        """
        A burst of address-book C{NOT}s re-reads the circles once too.
        """
        coalescer = self._circleCoalescer
        if coalescer is None:
            coalescer = self._circleCoalescer = Coalescer(self._refreshCircles, clock=self._partsOptions[0])
            if self._ended_:
                coalescer.close()
        return coalescer

    def signInCircles(self, listing: Optional[CircleListing]) -> Deferred[None]:
        """
        The login's step after the first C{CHG}: sign in to the circles of
        the address book's C{listing} (L{CircleManager.signIn}). An account
        in no circle and invited to none has nothing to do there, so its
        circle manager is left unbuilt (an empty listing changes nothing
        in a new manager: no C{USR SHA}, no event).
        """
        if self._circleManager is None and (listing is None or not (listing.circles or listing.invitations)):
            return succeed(None)
        return self.circleManager.signIn(listing)

    def _announceOffline(self, payload: bytes) -> None:
        """
        Hand an offline-message announcement (mail data) to the inbox. The
        sign-in's initial mail data usually announces nothing: then the
        inbox is not built for it (a new inbox does nothing with an empty
        announcement); anything else, an unreadable payload included (the
        inbox reports it), builds it.
        """
        inbox = self._offlineInbox
        if inbox is None and self.rsi is not None:
            try:
                mailData: Optional[MailData] = parseMailDataPayload(payload)
            except MalformedMailData:
                mailData = None
            if mailData is not None and not mailData.tooLarge and not mailData.messages:
                return
            inbox = self.offlineInbox
            assert inbox is not None
            if mailData is not None:
                inbox.announce(mailData)
                return
        if inbox is not None:
            inbox.announcePayload(payload)

    # -- what the parts call back (methods, not per-session closures) --------------------------------

    def _openForPictures(self, email: str) -> Deferred[Any]:
        return self.conversationManager.openConversation(email)

    def _hasOtherPlaces(self) -> bool:
        return len(self.places) > 1

    def _nameInConversations(self) -> str:
        return self.displayName or self.account

    # -- closing only what exists ------------------------------------------------------------------

    def _builtParts(self) -> tuple[
        Optional[DisplayPictures], Optional[ConversationManager], Optional[OfflineInbox], Optional[Coalescer]
    ]:
        """
        The parts that need closing at the end and exist (a part never
        built has nothing to close; reading its attribute would build it).
        """
        return self._pictures, self._conversationManager, self._offlineInbox, self._circleCoalescer

    def _partBuilt(self, name: str) -> bool:
        """
        Whether the part C{name} (C{"conversationManager"}, C{"circleManager"},
        ...) has been built; for the tests and the benchmarks.
        """
        return getattr(self, "_" + ("circleCoalescer" if name == "_circleRefreshes" else name)) is not None

