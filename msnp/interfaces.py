# -*- test-case-name: test.test_interfaces -*-
"""
The events a messenger session reports, as one zope interface.

Users pass an observer to L{msnp.MSNClient}; nobody has to subclass a
protocol to hear about a message. An observer may implement any subset of
these methods (missing ones are skipped), and an exception raised by one is
logged and never breaks the session.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from twisted.logger import Logger
from zope.interface import Interface

_log = Logger()


class IMessengerObserver(Interface):
    """
    Receives everything that happens to a signed-in session.

    Arguments are msnp value objects: C{session} is an L{msnp.session.Session},
    C{contact} an L{msnp.contacts.Contact}, C{conversation} an
    L{msnp.conversation.Conversation}, C{message} an
    L{msnp.mime.TextMessage}.
    """

    # -- the session ----------------------------------------------------------

    def loginStep(step: str, elapsed: float) -> None:
        """
        A step of the sign-in finished (C{"VER"}, C{"XFR"}, C{"SSO"},
        C{"USR OK"}, C{"contacts"}, C{"ADL"}, C{"online"}, ...), after
        C{elapsed} seconds since L{msnp.MSNClient.login} was called; for
        progress displays.
        """

    def signedIn(session: Any) -> None:
        """
        The session is ready: contacts are known and presence is announced.
        """

    def signedOut(session: Any, reason: Optional[str]) -> None:
        """
        The session ended. C{reason} is the server's C{OUT} code (C{"OTH"}:
        signed in elsewhere, C{"SSD"}: server going down), C{"logout"} for
        L{msnp.session.Session.logout}, or C{"connection lost"}.
        """

    def profileReceived(session: Any, profile: dict[str, str]) -> None:
        """
        The server sent the account profile headers after sign-in.
        """

    def endpointsChanged(session: Any, endpoints: dict[str, Any]) -> None:
        """
        The set of places this account is signed in at changed (MPOP).
        """

    def placeSignedIn(session: Any, place: Any) -> None:
        """
        Another place of this account signed in (MPOP); C{place} is an
        L{msnp.contacts.Place} with its name. See
        L{msnp.session.Session.otherPlaces}.
        """

    def placeSignedOut(session: Any, place: Any) -> None:
        """
        Another place of this account signed out (or was signed out).
        """

    def notificationReceived(session: Any, notification: Any) -> None:
        """
        A C{UBN} this library does not act on itself arrived, parsed into an
        L{msnp.uun.ReceivedNotification} (sign-out requests end the session
        instead; unknown types are only logged).
        """

    # -- contacts and presence ----------------------------------------------

    def contactStatusChanged(contact: Any, status: Any) -> None:
        """
        A contact went online, offline or changed status (an
        L{msnp.contacts.Status}).
        """

    def contactNameChanged(contact: Any, displayName: str) -> None:
        """
        A contact changed their display name.
        """

    def contactPersonalMessageChanged(contact: Any, personalMessage: str) -> None:
        """
        A contact changed their personal message (or current media).
        """

    def contactPictureChanged(contact: Any, msnObject: Any) -> None:
        """
        A contact announced a new display picture (C{NLN}/C{ILN} with
        another SHA1D): C{msnObject} is the new
        L{msnp.p2p.msnobject.MSNObject}, or L{None} when they removed it.
        L{msnp.session.Session.fetchDisplayPicture} gets the bytes.
        """

    def contactCurrentMediaChanged(contact: Any, currentMedia: str) -> None:
        """
        A contact started, changed or stopped "now playing";
        C{currentMedia} is the line to show (C{"Title - Artist"}, C{""}
        when stopped), also readable as C{contact.nowPlaying}.
        """

    def contactAddedYou(email: str, displayName: Optional[str]) -> None:
        """
        Someone put you on their contact list; accept or decline with
        L{msnp.session.Session.acceptContactRequest} /
        L{msnp.session.Session.declineContactRequest}.
        """

    def contactRemovedYou(email: str) -> None:
        """
        Someone took you off their contact list.
        """

    def contactListChanged(session: Any) -> None:
        """
        The contact list changed on the server (from another place, or a
        list update the server pushed).
        """

    # -- conversations --------------------------------------------------------

    def conversationStarted(conversation: Any) -> None:
        """
        Someone invited you to a conversation and you joined it.
        """

    def messageReceived(conversation: Any, message: Any) -> None:
        """
        A text message arrived (whole, after reassembly of chunks).
        """

    def typingReceived(conversation: Any, email: str) -> None:
        """
        A participant is typing.
        """

    def nudgeReceived(conversation: Any, email: str) -> None:
        """
        A participant sent a nudge.
        """

    def participantJoined(conversation: Any, email: str) -> None:
        """
        Someone joined the conversation.
        """

    def participantLeft(conversation: Any, email: str) -> None:
        """
        Someone left the conversation.
        """

    def conversationEnded(conversation: Any) -> None:
        """
        The conversation's switchboard closed (everyone left, idle, or the
        connection dropped). Sending again opens a new one.
        """

    # -- circles (group chats) ------------------------------------------------

    def circleJoined(session: Any, circle: Any) -> None:
        """
        The account is now in C{circle} (an L{msnp.circlechat.ChatCircle}):
        created or accepted here or at another place, or found at sign-in
        after it changed elsewhere.
        """

    def circleLeft(session: Any, circle: Any) -> None:
        """
        The account is no longer in C{circle} (left here or elsewhere).
        """

    def circleChanged(session: Any, circle: Any) -> None:
        """
        A circle C{NOT}: C{circle}'s members (roles, pending invitations)
        were re-read.
        """

    def circleInvitationReceived(session: Any, invitation: Any) -> None:
        """
        Someone invited the account into a circle; call
        C{invitation.accept()} or C{invitation.decline()}
        (an L{msnp.circlechat.PendingCircleInvitation}).
        """

    def circleRosterChanged(session: Any, circle: Any, joined: frozenset[str], left: frozenset[str]) -> None:
        """
        Members joined (C{NFY PUT}) or left (C{NFY DEL}) the circle's
        conversation; C{circle.online} already says who is in it.
        """

    def circleMessageReceived(session: Any, circle: Any, sender: str, message: Any) -> None:
        """
        C{sender} sent a text to C{circle}; C{message} is an
        L{msnp.circlewire.CircleMessage} (C{message.text}).
        """

    def circleTypingReceived(session: Any, circle: Any, sender: str) -> None:
        """
        C{sender} is typing in C{circle}.
        """

    def circleNudgeReceived(session: Any, circle: Any, sender: str) -> None:
        """
        C{sender} nudged C{circle}.
        """

    # -- offline messages and other networks (docs/offline.md) -----------------

    def offlineMessageReceived(session: Any, message: Any) -> None:
        """
        An offline message left while you were away (an
        L{msnp.oim.OfflineMessage}: C{sender}, C{senderName}, C{text}, and
        C{sent}, when it was sent, in UTC). Messages arrive in the order
        they were sent, each once per session; it is deleted from the
        server after this method returned (even if it raised).
        """

    def offlineMessageFailed(session: Any, failure: Any) -> None:
        """
        A step of fetching offline messages failed (an
        L{msnp.offline.OfflineFailure}: C{messageId}, C{stage}, C{error},
        C{attempt}, C{willRetry}). A message that was not delivered stays
        on the server; the session is not affected.
        """

    def networkMessageReceived(session: Any, message: Any) -> None:
        """
        A text from a contact on another network (network 32, Yahoo!),
        which arrives without a switchboard (C{UBM}): an
        L{msnp.mime.TextMessage}. Answer with
        L{msnp.session.Session.sendNetworkText}.
        """

    def networkTypingReceived(session: Any, email: str) -> None:
        """
        A contact on another network is typing.
        """

    def networkNudgeReceived(session: Any, email: str) -> None:
        """
        A contact on another network sent a nudge.
        """

    def winkReceived(session: Any, conversation: Any, sender: str, wink: Any) -> None:
        """
        C{sender} sent a wink in C{conversation}: a L{msnp.richcontent.Wink}
        whose bytes L{msnp.session.Session.fetchWink} fetches over P2P.
        """

    def voiceClipReceived(session: Any, conversation: Any, sender: str, clip: Any) -> None:
        """
        C{sender} sent a voice clip: a L{msnp.richcontent.VoiceClip}, fetched
        with L{msnp.session.Session.fetchVoiceClip}.
        """

    def inkReceived(session: Any, conversation: Any, sender: str, ink: Any) -> None:
        """
        C{sender} sent handwriting: a L{msnp.richcontent.Ink} with the
        decoded GIF or ISF bytes and which format it is.
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
        self._observers: list[object] = [o for o in observers if o is not None]

    def __repr__(self) -> str:
        return f"<Observers {self._observers!r}>"

    def __iter__(self) -> Iterator[object]:
        return iter(list(self._observers))

    def __len__(self) -> int:
        return len(self._observers)

    def add(self, observer: object) -> None:
        """
        Tell C{observer} about every later event (once, even if added twice).
        """
        if not any(o is observer for o in self._observers):
            self._observers.append(observer)

    def remove(self, observer: object) -> None:
        """
        Stop telling C{observer}; an observer that was not added is ignored.
        """
        self._observers = [o for o in self._observers if o is not observer]

    def replace(self, observer: Optional[object]) -> None:
        """
        Keep only C{observer} (none at all for L{None}).
        """
        self._observers = [] if observer is None else [observer]


def _deliver(observer: object, event: str, args: tuple[Any, ...]) -> None:
    method = getattr(observer, event, None)
    if method is None:
        return
    try:
        method(*args)
    except Exception:
        _log.failure("Observer {observer!r} failed in {event}", observer=observer, event=event)


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
    if isinstance(observer, Observers):
        for each in observer:
            _deliver(each, event, args)
        return
    _deliver(observer, event, args)
