# -*- test-case-name: test.test_handlers -*-
"""
Ready-made observers (bot handlers) for C{twistd msnp --handler}.

A handler is any object with some of the methods of
L{msnp.interfaces.IMessengerObserver}; missing methods are skipped and an
exception in one is logged without harming the session. C{twistd msnp}
builds it from a I{factory}: a callable taking the L{msnp.client.MSNClient}
and returning the observer. A class whose constructor takes the client is
such a factory, so a bot of your own is::

    # mybot.py
    from msnp import ObserverBase

    class ShoutBot(ObserverBase):
        def __init__(self, client):
            self.client = client

        def messageReceived(self, session, conversation, message):
            conversation.sendText(message.text.upper())

and C{PYTHONPATH=. twistd -n msnp --account bot@example.com --handler
mybot.ShoutBot}: C{twistd} does not import from the current directory, so
C{mybot} must be on C{PYTHONPATH} (or installed). In your own program, pass the observer straight to
L{msnp.client.MSNClient}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.interfaces import EVENTS, IMessengerObserver, declareNoOps

if TYPE_CHECKING:
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

#: A handler factory: the client in, the observer out.
HandlerFactory = Callable[[Any], object]


def _statusCode(status: Any) -> str:
    return str(getattr(status, "code", status))


def _participants(conversation: Any) -> list[str]:
    people: Any = getattr(conversation, "participants", None) or getattr(conversation, "contacts", None) or ()
    return sorted(people)


@implementer(IMessengerObserver)
class ObserverBase:
    """
    An observer that ignores every event: subclass it and override the
    events a bot cares about (implementing only some methods of a plain
    class works too; this base just makes the interface complete).
    """

    def loginStep(self, client: MSNClient, step: str, elapsed: float) -> None:
        pass

    def signedIn(self, session: Session) -> None:
        pass

    def signedOut(self, session: Session, reason: Optional[str]) -> None:
        pass

    def profileReceived(self, session: Session, profile: dict[str, str]) -> None:
        pass

    def endpointsChanged(self, session: Session, endpoints: dict[str, Place]) -> None:
        pass

    def placeSignedIn(self, session: Session, place: Place) -> None:
        pass

    def placeSignedOut(self, session: Session, place: Place) -> None:
        pass

    def notificationReceived(self, session: Session, notification: ReceivedNotification) -> None:
        pass

    def contactStatusChanged(self, session: Session, contact: Contact, status: Status) -> None:
        pass

    def contactNameChanged(self, session: Session, contact: Contact, displayName: str) -> None:
        pass

    def contactPersonalMessageChanged(self, session: Session, contact: Contact, personalMessage: str) -> None:
        pass

    def contactPictureChanged(self, session: Session, contact: Contact, msnObject: Optional[MSNObject]) -> None:
        pass

    def contactCurrentMediaChanged(self, session: Session, contact: Contact, currentMedia: str) -> None:
        pass

    def contactAddedYou(self, session: Session, email: str, displayName: Optional[str]) -> None:
        pass

    def contactRemovedYou(self, session: Session, email: str) -> None:
        pass

    def contactListChanged(self, session: Session) -> None:
        pass

    def conversationStarted(self, session: Session, conversation: Conversation) -> None:
        pass

    def messageReceived(self, session: Session, conversation: Conversation, message: TextMessage) -> None:
        pass

    def typingReceived(self, session: Session, conversation: Conversation, email: str) -> None:
        pass

    def nudgeReceived(self, session: Session, conversation: Conversation, email: str) -> None:
        pass

    def participantJoined(self, session: Session, conversation: Conversation, email: str) -> None:
        pass

    def participantLeft(self, session: Session, conversation: Conversation, email: str) -> None:
        pass

    def conversationEnded(self, session: Session, conversation: Conversation) -> None:
        pass

    def circleJoined(self, session: Session, circle: ChatCircle) -> None:
        pass

    def circleLeft(self, session: Session, circle: ChatCircle) -> None:
        pass

    def circleChanged(self, session: Session, circle: ChatCircle) -> None:
        pass

    def circleInvitationReceived(self, session: Session, invitation: PendingCircleInvitation) -> None:
        pass

    def circleRosterChanged(self, session: Session, circle: ChatCircle, joined: frozenset[str], left: frozenset[str]) -> None:
        pass

    def circleMessageReceived(self, session: Session, circle: ChatCircle, sender: str, message: CircleMessage) -> None:
        pass

    def circleTypingReceived(self, session: Session, circle: ChatCircle, sender: str) -> None:
        pass

    def circleNudgeReceived(self, session: Session, circle: ChatCircle, sender: str) -> None:
        pass

    def offlineMessageReceived(self, session: Session, message: OfflineMessage) -> None:
        pass

    def offlineMessageFailed(self, session: Session, failure: OfflineFailure) -> None:
        pass

    def networkMessageReceived(self, session: Session, message: TextMessage) -> None:
        pass

    def networkTypingReceived(self, session: Session, email: str) -> None:
        pass

    def networkNudgeReceived(self, session: Session, email: str) -> None:
        pass

    def winkReceived(self, session: Session, conversation: Conversation, sender: str, wink: Wink) -> None:
        pass

    def voiceClipReceived(self, session: Session, conversation: Conversation, sender: str, clip: VoiceClip) -> None:
        pass

    def inkReceived(self, session: Session, conversation: Conversation, sender: str, ink: Ink) -> None:
        pass

    def fileOfferReceived(self, session: Session, conversation: Optional[Conversation], offer: FileOffer) -> None:
        pass

    def transferProgress(self, session: Session, transfer: Transfer) -> None:
        pass

    def transferEnded(self, session: Session, transfer: Transfer) -> None:
        pass


# A subclass that leaves an event alone does not listen for it: what only
# that event needs is not computed (see msnp.interfaces.observes).
declareNoOps(vars(ObserverBase)[name] for name in sorted(EVENTS) if name in vars(ObserverBase))


@implementer(IMessengerObserver)
class EchoHandler(ObserverBase):
    """
    Answers every text message with the same text, in the same
    conversation. The simplest useful bot, and the one the end-to-end
    tests talk to.

    @ivar echoed: how many messages were sent back.
    """

    log = Logger()

    def __init__(self, client: Any = None) -> None:
        """
        @param client: the client it serves (unused; accepted so the class
            is a handler factory).
        """
        self.client = client
        self.echoed = 0

    def messageReceived(self, session: Session, conversation: Conversation, message: TextMessage) -> None:
        """
        Send C{message.text} back to the conversation it came from.
        """
        text = getattr(message, "text", "")
        if not text:
            return
        self.echoed += 1
        d = conversation.sendText(text)
        d.addErrback(self._failed, getattr(message, "sender", "?"))

    def _failed(self, failure: Failure, sender: str) -> None:
        self.log.warn(
            "Could not echo a message back to {sender}: {error}",
            sender=sender,
            error=failure.getErrorMessage(),
        )


@implementer(IMessengerObserver)
class LogHandler:
    """
    Turns every session event into a structured C{twisted.logger} event.

    Each event carries C{msnpEvent} (the observer method's name) and the
    event's fields as plain values (addresses, status codes, texts), so
    they can be filtered or written as JSON with
    C{twistd --logger} / C{jsonFileLogObserver}.
    """

    def __init__(self, client: Any = None, logger: Optional[Logger] = None) -> None:
        """
        @param client: the client it serves (unused; accepted so the class
            is a handler factory).
        @param logger: where to log (a new L{Logger <twisted.logger.Logger>} by default).
        """
        self.client = client
        self.log = logger if logger is not None else Logger(namespace="msnp.events")

    def _emit(self, event: str, format: str, **fields: Any) -> None:
        self.log.info(format, msnpEvent=event, **fields)

    # -- the session -------------------------------------------------------------

    def loginStep(self, client: MSNClient, step: str, elapsed: float) -> None:
        self._emit("loginStep", "login step {step} after {elapsed:.3f}s", step=step, elapsed=elapsed)

    def signedIn(self, session: Session) -> None:
        self._emit("signedIn", "signed in as {account}", account=getattr(session, "account", None))

    def signedOut(self, session: Session, reason: Optional[str]) -> None:
        self._emit(
            "signedOut", "{account} signed out ({reason})", account=getattr(session, "account", None), reason=reason
        )

    def profileReceived(self, session: Session, profile: dict[str, str]) -> None:
        self._emit("profileReceived", "profile received ({count} headers)", count=len(profile))

    def endpointsChanged(self, session: Session, endpoints: dict[str, Place]) -> None:
        self._emit(
            "endpointsChanged", "signed in at {count} place(s)", count=len(endpoints), places=sorted(endpoints)
        )

    def placeSignedIn(self, session: Session, place: Place) -> None:
        self._emit(
            "placeSignedIn", "signed in at another place {place!r}",
            place=getattr(place, "name", ""), guid=getattr(place, "guid", None),
        )

    def placeSignedOut(self, session: Session, place: Place) -> None:
        self._emit(
            "placeSignedOut", "another place {place!r} signed out",
            place=getattr(place, "name", ""), guid=getattr(place, "guid", None),
        )

    def notificationReceived(self, session: Session, notification: ReceivedNotification) -> None:
        self._emit(
            "notificationReceived", "notification {kind} from {sender}",
            kind=type(getattr(notification, "body", None)).__name__, sender=getattr(notification, "sender", None),
        )

    # -- contacts and presence ---------------------------------------------------

    def contactStatusChanged(self, session: Session, contact: Contact, status: Status) -> None:
        self._emit(
            "contactStatusChanged",
            "{contact} is now {status}",
            contact=getattr(contact, "email", contact),
            status=_statusCode(status),
        )

    def contactNameChanged(self, session: Session, contact: Contact, displayName: str) -> None:
        self._emit(
            "contactNameChanged",
            "{contact} is now called {displayName!r}",
            contact=getattr(contact, "email", contact),
            displayName=displayName,
        )

    def contactPersonalMessageChanged(self, session: Session, contact: Contact, personalMessage: str) -> None:
        self._emit(
            "contactPersonalMessageChanged",
            "{contact} set the personal message {personalMessage!r}",
            contact=getattr(contact, "email", contact),
            personalMessage=personalMessage,
        )

    def contactPictureChanged(self, session: Session, contact: Contact, msnObject: Optional[MSNObject]) -> None:
        self._emit(
            "contactPictureChanged",
            "{contact} changed their display picture ({sha1d})",
            contact=getattr(contact, "email", contact),
            sha1d=getattr(msnObject, "sha1d", None),
            size=getattr(msnObject, "size", None),
        )

    def contactCurrentMediaChanged(self, session: Session, contact: Contact, currentMedia: str) -> None:
        self._emit(
            "contactCurrentMediaChanged",
            "{contact} is playing {currentMedia!r}",
            contact=getattr(contact, "email", contact),
            currentMedia=currentMedia,
        )

    def contactAddedYou(self, session: Session, email: str, displayName: Optional[str]) -> None:
        self._emit("contactAddedYou", "{email} added you", email=email, displayName=displayName)

    def contactRemovedYou(self, session: Session, email: str) -> None:
        self._emit("contactRemovedYou", "{email} removed you", email=email)

    def contactListChanged(self, session: Session) -> None:
        self._emit("contactListChanged", "the contact list changed")

    # -- conversations -----------------------------------------------------------

    def conversationStarted(self, session: Session, conversation: Conversation) -> None:
        self._emit(
            "conversationStarted",
            "conversation started with {participants}",
            participants=_participants(conversation),
        )

    def messageReceived(self, session: Session, conversation: Conversation, message: TextMessage) -> None:
        self._emit(
            "messageReceived",
            "message from {sender}: {text!r}",
            sender=getattr(message, "sender", None),
            senderName=getattr(message, "senderName", None),
            text=getattr(message, "text", None),
        )

    def typingReceived(self, session: Session, conversation: Conversation, email: str) -> None:
        self._emit("typingReceived", "{email} is typing", email=email)

    def nudgeReceived(self, session: Session, conversation: Conversation, email: str) -> None:
        self._emit("nudgeReceived", "{email} sent a nudge", email=email)

    def participantJoined(self, session: Session, conversation: Conversation, email: str) -> None:
        self._emit("participantJoined", "{email} joined the conversation", email=email)

    def participantLeft(self, session: Session, conversation: Conversation, email: str) -> None:
        self._emit("participantLeft", "{email} left the conversation", email=email)

    def conversationEnded(self, session: Session, conversation: Conversation) -> None:
        self._emit(
            "conversationEnded",
            "conversation with {participants} ended",
            participants=_participants(conversation),
        )

    # -- circles -----------------------------------------------------------------

    def _circle(self, event: str, format: str, circle: Any, **fields: Any) -> None:
        self._emit(event, format, circle=getattr(circle, "circleId", None),
                   circleName=getattr(circle, "name", None), **fields)

    def circleJoined(self, session: Session, circle: ChatCircle) -> None:
        self._circle("circleJoined", "joined circle {circleName!r}", circle)

    def circleLeft(self, session: Session, circle: ChatCircle) -> None:
        self._circle("circleLeft", "left circle {circleName!r}", circle)

    def circleChanged(self, session: Session, circle: ChatCircle) -> None:
        self._circle("circleChanged", "circle {circleName!r} changed", circle)

    def circleInvitationReceived(self, session: Session, invitation: PendingCircleInvitation) -> None:
        self._circle("circleInvitationReceived", "{inviter} invites you into circle {circleName!r}", invitation,
                     inviter=getattr(invitation, "inviterEmail", None))

    def circleRosterChanged(self, session: Session, circle: ChatCircle, joined: frozenset[str], left: frozenset[str]) -> None:
        self._circle("circleRosterChanged", "circle {circleName!r}: joined {joined}, left {left}", circle,
                     joined=sorted(joined), left=sorted(left))

    def circleMessageReceived(self, session: Session, circle: ChatCircle, sender: str, message: CircleMessage) -> None:
        self._circle("circleMessageReceived", "{sender} in circle {circleName!r}: {text!r}", circle,
                     sender=sender, text=getattr(message, "text", None))

    def circleTypingReceived(self, session: Session, circle: ChatCircle, sender: str) -> None:
        self._circle("circleTypingReceived", "{sender} is typing in circle {circleName!r}", circle, sender=sender)

    def circleNudgeReceived(self, session: Session, circle: ChatCircle, sender: str) -> None:
        self._circle("circleNudgeReceived", "{sender} nudged circle {circleName!r}", circle, sender=sender)

    # -- offline messages and other networks ---------------------------------------

    def offlineMessageReceived(self, session: Session, message: OfflineMessage) -> None:
        sent = getattr(message, "sent", None)
        self._emit(
            "offlineMessageReceived",
            "offline message from {sender} (sent {sent}): {text!r}",
            sender=getattr(message, "sender", None),
            senderName=getattr(message, "senderName", None),
            text=getattr(message, "text", None),
            sent=sent.isoformat() if sent is not None else None,
        )

    def offlineMessageFailed(self, session: Session, failure: OfflineFailure) -> None:
        self._emit(
            "offlineMessageFailed",
            "offline message {messageId}: {stage} failed ({error}){retry}",
            messageId=getattr(failure, "messageId", None),
            stage=getattr(failure, "stage", None),
            error=str(getattr(failure, "error", "")),
            retry=", will retry" if getattr(failure, "willRetry", False) else "",
        )

    def networkMessageReceived(self, session: Session, message: TextMessage) -> None:
        self._emit(
            "networkMessageReceived",
            "message from {sender} (other network): {text!r}",
            sender=getattr(message, "sender", None),
            text=getattr(message, "text", None),
        )

    def networkTypingReceived(self, session: Session, email: str) -> None:
        self._emit("networkTypingReceived", "{email} is typing (other network)", email=email)

    def networkNudgeReceived(self, session: Session, email: str) -> None:
        self._emit("networkNudgeReceived", "{email} sent a nudge (other network)", email=email)

    def winkReceived(self, session: Session, conversation: Conversation, sender: str, wink: Wink) -> None:
        obj = getattr(wink, "msnObject", None)
        self._emit("winkReceived", "{sender} sent a wink ({sha1d})", sender=sender,
                   sha1d=getattr(obj, "sha1d", None), size=getattr(obj, "size", None))

    def voiceClipReceived(self, session: Session, conversation: Conversation, sender: str, clip: VoiceClip) -> None:
        obj = getattr(clip, "msnObject", None)
        self._emit("voiceClipReceived", "{sender} sent a voice clip ({sha1d})", sender=sender,
                   sha1d=getattr(obj, "sha1d", None), size=getattr(obj, "size", None))

    def inkReceived(self, session: Session, conversation: Conversation, sender: str, ink: Ink) -> None:
        self._emit("inkReceived", "{sender} sent ink ({inkFormat}, {size} bytes)", sender=sender,
                   inkFormat=getattr(ink, "format", None), size=len(getattr(ink, "data", b"")))

    def fileOfferReceived(self, session: Session, conversation: Optional[Conversation], offer: FileOffer) -> None:
        self._emit(
            "fileOfferReceived", "{sender} offers the file {name!r} ({size} bytes)",
            sender=getattr(offer, "sender", None), name=getattr(offer, "name", None), size=getattr(offer, "size", None),
        )

    def transferProgress(self, session: Session, transfer: Transfer) -> None:
        self._emit(
            "transferProgress", "File {name!r} with {peer}: {done}/{total} bytes",
            name=getattr(transfer, "name", None), peer=getattr(transfer, "peer", None),
            done=getattr(transfer, "bytesDone", None), total=getattr(transfer, "total", None),
        )

    def transferEnded(self, session: Session, transfer: Transfer) -> None:
        error = getattr(transfer, "error", None)
        self._emit(
            "transferEnded", "File {name!r} with {peer}: {outcome} ({done}/{total} bytes)",
            name=getattr(transfer, "name", None), peer=getattr(transfer, "peer", None),
            outcome="complete" if error is None else f"failed: {error}",
            done=getattr(transfer, "bytesDone", None), total=getattr(transfer, "total", None),
        )


#: The handlers C{--handler} knows by name.
BUILTIN_HANDLERS: dict[str, HandlerFactory] = {
    "echo": EchoHandler,
    "log": LogHandler,
}


def loadHandlerFactory(name: str) -> HandlerFactory:
    """
    The handler factory for C{--handler}: a built-in name (C{echo},
    C{log}) or the dotted path of a callable.

    @raise ValueError: the path does not import or does not name a callable.
    """
    from twisted.python.reflect import namedAny

    if name in BUILTIN_HANDLERS:
        return BUILTIN_HANDLERS[name]
    if "." not in name:
        raise ValueError(
            f"unknown handler {name!r}: use {', '.join(sorted(BUILTIN_HANDLERS))} "
            "or the dotted path of a factory (package.module.name)"
        )
    try:
        factory = namedAny(name)
    except Exception as e:
        raise ValueError(f"handler {name!r} does not import: {type(e).__name__}: {e}{_pathHint(name)}") from None
    if not callable(factory):
        raise ValueError(f"handler {name!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _pathHint(name: str) -> str:
    """
    When the handler's module sits in the current directory but is not on
    C{sys.path} (C{twistd} does not add the current directory), say so.
    """
    import os
    import sys

    top = name.split(".")[0]
    here = os.getcwd()
    inCwd = os.path.exists(os.path.join(here, top + ".py")) or os.path.isdir(os.path.join(here, top))
    onPath = any(os.path.abspath(entry or os.curdir) == here for entry in sys.path)
    if inCwd and not onPath:
        return f" ({top} is in the current directory, which twistd does not import from: run with PYTHONPATH=.)"
    return ""


def checkHandlerFactory(name: str, factory: HandlerFactory) -> None:
    """
    Check, without calling it, that C{factory} can be called with the
    client, so that C{--handler os.getcwd} is refused with a sentence
    instead of failing with a C{TypeError} once the service starts.

    @raise ValueError: its signature does not accept one argument.
    """
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        # Some builtins have no introspectable signature: let them be.
        return
    try:
        signature.bind(object())
    except TypeError:
        raise ValueError(
            f"handler {name!r} cannot be called with the client (its signature is {signature}): "
            "it must be a callable(client) returning an observer, e.g. a class whose __init__ takes the client"
        ) from None
