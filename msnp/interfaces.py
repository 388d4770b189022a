# -*- test-case-name: test.test_interfaces -*-
"""
The events a messenger session reports, as one zope interface.

Users pass an observer to L{msnp.MSNClient}; nobody has to subclass a
protocol to hear about a message. An observer may implement any subset of
these methods (missing ones are skipped), and an exception raised by one is
logged and never breaks the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from twisted.logger import Logger
from zope.interface import Interface

if TYPE_CHECKING:
    # For the annotations only: the modules below import this one.
    from msnp.circlechat import ChatCircle, PendingCircleInvitation
    from msnp.circlewire import CircleMessage
    from msnp.client import MSNClient
    from msnp.contacts import Contact, Place, Status
    from msnp.conversation import Conversation
    from msnp.mime import TextMessage
    from msnp.offline import OfflineFailure
    from msnp.oim import OfflineMessage
    from msnp.p2p.files import FileOffer, Transfer
    from msnp.p2p.msnobject import MSNObject
    from msnp.richcontent import Ink, VoiceClip, Wink
    from msnp.session import Session
    from msnp.uun import ReceivedNotification

_log = Logger()


class IMessengerObserver(Interface):
    """
    Receives everything that happens to a signed-in session.

    Every event's first argument is the L{msnp.session.Session} it happened
    to (only L{loginStep}, which comes before there is a session, carries
    the L{msnp.MSNClient}), so one observer can serve several sessions and
    a bot never has to keep the session from L{signedIn}. The other
    arguments are msnp value objects, typed below: C{contact} an
    L{msnp.contacts.Contact}, C{conversation} an
    L{msnp.conversation.Conversation}, C{message} an
    L{msnp.mime.TextMessage}.
    """

    # -- the session ----------------------------------------------------------

    def loginStep(client: MSNClient, step: str, elapsed: float) -> None:
        """
        A step of the sign-in finished (C{"VER"}, C{"XFR"}, C{"SSO"},
        C{"USR OK"}, C{"contacts"}, C{"ADL"}, C{"online"}, ...), after
        C{elapsed} seconds since L{msnp.MSNClient.login} was called; for
        progress displays.

        The one event whose first argument is not a session: the steps
        come before the L{msnp.session.Session} exists (it is built
        complete, in one call, once the NS accepted the ticket), so the
        event carries the L{msnp.MSNClient} signing in, which an observer
        of several clients tells apart the same way, and whose
        C{client.login()} Deferred fires with the session.
        """

    def signedIn(session: Session) -> None:
        """
        The session is ready: contacts are known and presence is announced.
        """

    def signedOut(session: Session, reason: Optional[str]) -> None:
        """
        The session ended. C{reason} is the server's C{OUT} code (C{"OTH"}:
        signed in elsewhere, C{"SSD"}: server going down), C{"logout"} for
        L{msnp.session.Session.logout}, or C{"connection lost"}.
        """

    def profileReceived(session: Session, profile: dict[str, str]) -> None:
        """
        The server sent the account profile headers after sign-in.
        """

    def endpointsChanged(session: Session, endpoints: dict[str, Place]) -> None:
        """
        The set of places this account is signed in at changed (MPOP).
        """

    def placeSignedIn(session: Session, place: Place) -> None:
        """
        Another place of this account signed in (MPOP); C{place} is an
        L{msnp.contacts.Place} with its name. See
        L{msnp.session.Session.otherPlaces}.
        """

    def placeSignedOut(session: Session, place: Place) -> None:
        """
        Another place of this account signed out (or was signed out).
        """

    def notificationReceived(session: Session, notification: ReceivedNotification) -> None:
        """
        A C{UBN} this library does not act on itself arrived, parsed into an
        L{msnp.uun.ReceivedNotification} (sign-out requests end the session
        instead; unknown types are only logged).
        """

    # -- contacts and presence ----------------------------------------------

    def contactStatusChanged(session: Session, contact: Contact, status: Status) -> None:
        """
        A contact went online, offline or changed status (an
        L{msnp.contacts.Status}).
        """

    def contactNameChanged(session: Session, contact: Contact, displayName: str) -> None:
        """
        A contact changed their display name.
        """

    def contactPersonalMessageChanged(session: Session, contact: Contact, personalMessage: str) -> None:
        """
        A contact changed their personal message (or current media).
        """

    def contactPictureChanged(session: Session, contact: Contact, msnObject: Optional[MSNObject]) -> None:
        """
        A contact announced a new display picture (C{NLN}/C{ILN} with
        another SHA1D): C{msnObject} is the new
        L{msnp.p2p.msnobject.MSNObject}, or L{None} when they removed it.
        L{msnp.session.Session.fetchDisplayPicture} gets the bytes.
        """

    def contactCurrentMediaChanged(session: Session, contact: Contact, currentMedia: str) -> None:
        """
        A contact started, changed or stopped "now playing";
        C{currentMedia} is the line to show (C{"Title - Artist"}, C{""}
        when stopped), also readable as C{contact.nowPlaying}.
        """

    def contactAddedYou(session: Session, email: str, displayName: Optional[str]) -> None:
        """
        Someone put you on their contact list; accept or decline with
        L{msnp.session.Session.acceptContactRequest} /
        L{msnp.session.Session.declineContactRequest}.
        """

    def contactRemovedYou(session: Session, email: str) -> None:
        """
        Someone took you off their contact list.
        """

    def contactListChanged(session: Session) -> None:
        """
        The contact list changed on the server (from another place, or a
        list update the server pushed).
        """

    # -- conversations --------------------------------------------------------

    def conversationStarted(session: Session, conversation: Conversation) -> None:
        """
        Someone invited you to a conversation and you joined it.
        """

    def messageReceived(session: Session, conversation: Conversation, message: TextMessage) -> None:
        """
        A text message arrived (whole, after reassembly of chunks).
        """

    def typingReceived(session: Session, conversation: Conversation, email: str) -> None:
        """
        A participant is typing.
        """

    def nudgeReceived(session: Session, conversation: Conversation, email: str) -> None:
        """
        A participant sent a nudge.
        """

    def participantJoined(session: Session, conversation: Conversation, email: str) -> None:
        """
        Someone joined the conversation.
        """

    def participantLeft(session: Session, conversation: Conversation, email: str) -> None:
        """
        Someone left the conversation.
        """

    def conversationEnded(session: Session, conversation: Conversation) -> None:
        """
        The conversation's switchboard closed (everyone left, idle, or the
        connection dropped). Sending again opens a new one.
        """

    # -- circles (group chats) ------------------------------------------------

    def circleJoined(session: Session, circle: ChatCircle) -> None:
        """
        The account is now in C{circle} (an L{msnp.circlechat.ChatCircle}):
        created or accepted here or at another place, or found at sign-in
        after it changed elsewhere.
        """

    def circleLeft(session: Session, circle: ChatCircle) -> None:
        """
        The account is no longer in C{circle} (left here or elsewhere).
        """

    def circleChanged(session: Session, circle: ChatCircle) -> None:
        """
        A circle C{NOT}: C{circle}'s members (roles, pending invitations)
        were re-read.
        """

    def circleInvitationReceived(session: Session, invitation: PendingCircleInvitation) -> None:
        """
        Someone invited the account into a circle; call
        C{invitation.accept()} or C{invitation.decline()}
        (an L{msnp.circlechat.PendingCircleInvitation}).
        """

    def circleRosterChanged(session: Session, circle: ChatCircle, joined: frozenset[str], left: frozenset[str]) -> None:
        """
        Members joined (C{NFY PUT}) or left (C{NFY DEL}) the circle's
        conversation; C{circle.online} already says who is in it.
        """

    def circleMessageReceived(session: Session, circle: ChatCircle, sender: str, message: CircleMessage) -> None:
        """
        C{sender} sent a text to C{circle}; C{message} is an
        L{msnp.circlewire.CircleMessage} (C{message.text}).
        """

    def circleTypingReceived(session: Session, circle: ChatCircle, sender: str) -> None:
        """
        C{sender} is typing in C{circle}.
        """

    def circleNudgeReceived(session: Session, circle: ChatCircle, sender: str) -> None:
        """
        C{sender} nudged C{circle}.
        """

    # -- offline messages and other networks (docs/offline.md) -----------------

    def offlineMessageReceived(session: Session, message: OfflineMessage) -> None:
        """
        An offline message left while you were away (an
        L{msnp.oim.OfflineMessage}: C{sender}, C{senderName}, C{text}, and
        C{sent}, when it was sent, in UTC). Messages arrive in the order
        they were sent, each once per session; it is deleted from the
        server after this method returned (even if it raised).
        """

    def offlineMessageFailed(session: Session, failure: OfflineFailure) -> None:
        """
        A step of fetching offline messages failed (an
        L{msnp.offline.OfflineFailure}: C{messageId}, C{stage}, C{error},
        C{attempt}, C{willRetry}). A message that was not delivered stays
        on the server; the session is not affected.
        """

    def networkMessageReceived(session: Session, message: TextMessage) -> None:
        """
        A text from a contact on another network (network 32, Yahoo!),
        which arrives without a switchboard (C{UBM}): an
        L{msnp.mime.TextMessage}. Answer with
        L{msnp.session.Session.sendNetworkText}.
        """

    def networkTypingReceived(session: Session, email: str) -> None:
        """
        A contact on another network is typing.
        """

    def networkNudgeReceived(session: Session, email: str) -> None:
        """
        A contact on another network sent a nudge.
        """

    def winkReceived(session: Session, conversation: Conversation, sender: str, wink: Wink) -> None:
        """
        C{sender} sent a wink in C{conversation}: a L{msnp.richcontent.Wink}
        whose bytes L{msnp.session.Session.fetchWink} fetches over P2P.
        """

    def voiceClipReceived(session: Session, conversation: Conversation, sender: str, clip: VoiceClip) -> None:
        """
        C{sender} sent a voice clip: a L{msnp.richcontent.VoiceClip}, fetched
        with L{msnp.session.Session.fetchVoiceClip}.
        """

    def inkReceived(session: Session, conversation: Conversation, sender: str, ink: Ink) -> None:
        """
        C{sender} sent handwriting: a L{msnp.richcontent.Ink} with the
        decoded GIF or ISF bytes and which format it is.
        """

    def fileOfferReceived(session: Session, conversation: Optional[Conversation], offer: FileOffer) -> None:
        """
        A contact offers a file (L{msnp.p2p.files.FileOffer}: sender,
        sanitised name, size, preview). Answer with C{offer.accept(dir)}
        or C{offer.decline()}; an offer left unanswered is declined after
        the session's offer timeout. C{conversation} is the one it came
        through (L{None} if it is gone already).
        """

    def transferProgress(session: Session, transfer: Transfer) -> None:
        """
        A file transfer (L{msnp.p2p.files.Transfer}) moved on:
        C{transfer.bytesDone} of C{transfer.total}. Rate-limited on the
        session's clock (a few per second), and always once at the end.
        """

    def transferEnded(session: Session, transfer: Transfer) -> None:
        """
        A file transfer ended: C{transfer.error} is L{None} when it
        completed, else the L{msnp.p2p.errors.TransferError}.
        """


#: The event names an observer may be told about.
EVENTS = frozenset(IMessengerObserver.names())


class Observers:
    """
    The observers of one client, in the order they were added.

    The client hands this one object to everything that reports events
    (the NS connection, the roster, the conversations), so an observer
    added or removed later, even after sign-in, hears exactly the events
    from then on. One observer raising never keeps the others from hearing
    the event.
    """

    def __init__(self, observers: Iterable[object] = ()) -> None:
        # A tuple, replaced (never changed) by add/remove/replace: an event
        # being delivered goes on over the observers it started with,
        # without a copy per event.
        self._observers: tuple[object, ...] = tuple(o for o in observers if o is not None)

    def __repr__(self) -> str:
        return f"<Observers {list(self._observers)!r}>"

    def __iter__(self) -> Iterator[object]:
        return iter(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def add(self, observer: object) -> None:
        """
        Tell C{observer} about every later event (once, even if added twice).
        """
        if not any(o is observer for o in self._observers):
            self._observers += (observer,)

    def remove(self, observer: object) -> None:
        """
        Stop telling C{observer}; an observer that was not added is ignored.
        """
        self._observers = tuple(o for o in self._observers if o is not observer)

    def replace(self, observer: Optional[object]) -> None:
        """
        Keep only C{observer} (none at all for L{None}).
        """
        self._observers = () if observer is None else (observer,)


#: Event methods known to do nothing (L{msnp.handlers.ObserverBase}'s).
_NO_OPS: set[object] = set()


def declareNoOps(functions: Iterable[object]) -> None:
    """
    Record event methods that do nothing, so that an observer inheriting
    one is not taken to listen for its event (L{observes}).
    """
    _NO_OPS.update(functions)


def observes(observer: Optional[object], event: str) -> bool:
    """
    Whether anyone would act on C{event}: work done only to fill the
    event (parsing a display picture for C{contactPictureChanged}) can be
    left for later when nobody listens. An observer without the method,
    or with a no-op one (L{declareNoOps}), does not listen.
    """
    if observer is None:
        return False
    for each in observer._observers if isinstance(observer, Observers) else (observer,):
        method = getattr(each, event, None)
        if method is not None and getattr(method, "__func__", method) not in _NO_OPS:
            return True
    return False


def notifyObserver(observer: Optional[object], event: str, *args: Any) -> None:
    """
    Call C{observer.<event>(*args)} if the observer has that method; for an
    L{Observers}, call it on each of them in turn.

    Observer code is user code: whatever it raises is logged here and goes
    no further, so a buggy bot cannot break the protocol underneath it nor
    keep the other observers from the event.

    @raise ValueError: C{event} is not a method of L{IMessengerObserver}
        (a typo would otherwise be silently never delivered).
    """
    if event not in EVENTS:
        raise ValueError(f"{event!r} is not an IMessengerObserver event")
    if observer is None:
        return
    # The loop is written out (no helper call per observer): a presence
    # storm delivers a couple of events for every line it reads.
    for each in observer._observers if isinstance(observer, Observers) else (observer,):
        method = getattr(each, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:
            _log.failure("Observer {observer!r} failed in {event}", observer=each, event=event)
