# -*- test-case-name: test.test_switchboard -*-
"""
Conversations: what a user sees of the switchboards.

L{Conversation} outlives its switchboards: the server closes idle ones, the
other side leaves; the next message transparently opens a new one with
C{XFR SB} + C{CAL} of the same people (reference section 6.8).
L{ConversationManager}, owned by the session, opens conversations, answers
invitations (C{RNG}) and closes everything at logout.

Every L{Deferred <twisted.internet.defer.Deferred>} handed out fires or fails; switchboard set-up has its own
deadline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits, InvitationRate, RefusalSummary
from msnp.contacts import NETWORK_YAHOO, normalizeEmail
from msnp.conversationlink import Connector, ConversationState, IP2PReceiver, SwitchboardLink, _Outgoing, tcpConnector
from msnp.errors import ContactOffline, MessageNotDelivered
from msnp.interfaces import notifyObserver
from msnp.mime import MessageFormat, buildNudgePayload, buildTextPayloads, buildTypingPayload
from msnp.nsmessages import Invitation, SwitchboardTicket
from msnp.reactors import reactorOrDefault
from msnp.uum import DeliveryResult

if TYPE_CHECKING:
    from msnp.emoticons import RichContent
    from msnp.richcontent import Ink, VoiceClip, Wink

log = Logger()


# -- conversations ------------------------------------------------------------

#: Sends one text to a contact without a switchboard (offline message, or
#: C{UUM} to another network): C{Session.sendOfflineMessage}.
OfflineSender = Callable[[str, str, Optional[MessageFormat]], "Deferred[DeliveryResult]"]


class IFileSender(Interface):
    """
    What L{Conversation.sendFile} hands a file to
    (L{msnp.filetransfer.FileTransfers}).
    """

    def sendFile(conversation: "Conversation", name: str, source: Any, size: Optional[int] = None,
                 preview: Optional[bytes] = None) -> Any:
        """
        Offer the file to the conversation's one contact; returns the
        L{msnp.p2p.files.Transfer}.
        """


class Conversation(SwitchboardLink):
    """
    A conversation with one or more contacts.

    It outlives its switchboards: when one closes (idle, everyone left),
    the observer hears C{conversationEnded}, and the next L{sendText},
    L{sendNudge} or L{invite} opens a new switchboard and calls the same
    people again. What is sent while a switchboard is being set up is
    queued and written in order once someone has joined.

    @ivar participants: the addresses present on the current switchboard
        (never the user's own).
    """

    # -- user API ----------------------------------------------------------------

    def sendText(
        self,
        text: str,
        format: Optional[MessageFormat] = None,
        strict: bool = False,
        emoticons: Optional[Mapping[str, bytes]] = None,
    ) -> "Deferred[DeliveryResult]":
        """
        Send a text (ack mode C{A}); split into parts when too long.

        In a conversation with one contact, a text that cannot reach them
        online becomes an offline message (C{UUM}, docs/offline.md): when
        the contact is known to be offline, when C{CAL} is answered
        C{217}, when the switchboard answers C{NAK}, or when the contact
        went offline and the switchboard closed before acknowledging (in
        that last case the contact may, rarely, get it twice: losing a
        message is worse). A contact on another network (network 32) is
        always written to with C{UUM}, without a switchboard.

        Custom emoticons (docs/p2p.md section 8): when the text contains
        shortcuts registered with
        L{msnp.session.Session.setCustomEmoticon} or given in
        C{emoticons}, their definitions (C{text/x-mms-emoticon}, ack mode
        C{N}) go first, in the same queue, and the images are served over
        P2P to whoever asks. A text without such shortcuts is sent exactly
        as before. An offline message carries no emoticons.

        @param strict: never fall back: fail as described below instead.
        @param emoticons: shortcut to image bytes (PNG, GIF or JPEG),
            registered for this and later texts.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with how the text went out
            (L{DeliveryResult.DELIVERED_ONLINE}: every part acknowledged;
            L{DeliveryResult.STORED_OFFLINE}; L{DeliveryResult.SENT_TO_NETWORK}),
            failing with L{MessageNotDelivered} on C{NAK}, on the
            acknowledgement timeout, when the switchboard closes first, or
            when no switchboard could be opened (and no fallback applied),
            or with the offline send's failure (L{ValueError}: too long
            for one offline message; L{msnp.errors.ServerError}); with
            L{ValueError} when an C{emoticons} entry is refused.
        """
        target = None if strict else self._fallbackTarget()
        onSwitchboard = target is not None and self._isUsable() and target in self.participants
        if target is not None and self.manager.needsNoSwitchboard(target, onSwitchboard):
            return self.manager.leaveOffline(target, text, format)
        d: Deferred[None] = Deferred()
        try:
            payloads = buildTextPayloads(text, format)
        except ValueError as e:
            d.errback(MessageNotDelivered(str(e)))
            return d  # type: ignore[return-value]
        rich = self.manager.rich
        if rich is None and emoticons:
            return fail(ValueError("this conversation's session has no custom emoticons"))
        if rich is not None and (emoticons or rich.emoticons):
            try:
                definitions = rich.definitionsFor(text, emoticons)
            except ValueError as e:
                return fail(e)
            if definitions:
                written: Deferred[None] = Deferred()
                # The text's own Deferred reports the outcome; this one
                # fails with it when the queue does.
                written.addErrback(lambda _: None)
                self._submit(_Outgoing(definitions, "N", written))
        self._submit(_Outgoing(payloads, "A", d))
        result: Deferred[DeliveryResult] = d.addCallback(lambda _: DeliveryResult.DELIVERED_ONLINE)
        if target is not None:
            result.addErrback(self._fallBack, target, text, format)
        return result

    def _fallbackTarget(self) -> Optional[str]:
        """
        The one contact of a one-to-one conversation, when the session can
        leave offline messages; else L{None}.
        """
        if self.manager.sendOffline is None:
            return None
        people = self.participants | self._callList
        if len(people) != 1:
            return None
        return next(iter(people))

    def _fallBack(
        self, failure: Failure, email: str, text: str, format: Optional[MessageFormat]
    ) -> "Deferred[DeliveryResult] | Failure":
        error = failure.value
        if not isinstance(error, MessageNotDelivered):
            return failure
        cause = error.__cause__
        if not (
            isinstance(cause, ContactOffline)
            or error.reachedNobody
            or self.manager.isKnownOffline(email)
        ):
            return failure
        log.info("{email} cannot be reached online ({error}); leaving an offline message",
                 email=email, error=str(error))
        return self.manager.leaveOffline(email, text, format)

    def sendNudge(self) -> "Deferred[None]":
        """
        Send a nudge (ack mode C{N}); fires once it is written, fails with
        L{MessageNotDelivered} if no switchboard could be opened.
        """
        d: Deferred[None] = Deferred()
        self._submit(_Outgoing([buildNudgePayload()], "N", d))
        return d

    def sendInk(self, ink: "Ink") -> "Deferred[None]":
        """
        Send handwriting (C{image/gif} or C{application/x-ms-ink}, ack
        mode C{N}, split into parts when long); fires once written.

        @raise ValueError: see L{msnp.richcontent.buildInkPayloads}.
        """
        return self._sendRich(self._rich().inkPayloads(ink))

    def sendWink(self, data: bytes, name: str = "") -> "Deferred[Wink]":
        """
        Send C{data} as a wink: its object is served over P2P to whoever
        asks, and the datacast (C{ID: 2}, ack mode C{N}) announces it.

        @return: fires with the L{msnp.richcontent.Wink} once written.
        @raise ValueError: empty or over L{msnp.emoticons.MAX_MEDIA_SIZE}.
        """
        wink, payload = self._rich().winkPayload(data, name)
        return self._sendRich([payload]).addCallback(lambda _: wink)

    def sendVoiceClip(self, data: bytes) -> "Deferred[VoiceClip]":
        """
        Send C{data} as a voice clip (datacast C{ID: 3}), served like a
        wink.

        @return: fires with the L{msnp.richcontent.VoiceClip} once written.
        @raise ValueError: empty or over L{msnp.emoticons.MAX_MEDIA_SIZE}.
        """
        clip, payload = self._rich().voiceClipPayload(data)
        return self._sendRich([payload]).addCallback(lambda _: clip)

    def _rich(self) -> "RichContent":
        if self.manager.rich is None:
            raise ValueError("this conversation's session has no rich content")
        return self.manager.rich

    def _sendRich(self, payloads: list[bytes]) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        self._submit(_Outgoing(payloads, "N", d))
        return d

    def sendTyping(self) -> None:
        """
        Tell the others the user is typing (ack mode C{U}). Only sent on an
        open switchboard: a typing notification is not worth opening one.
        """
        if self._isUsable() and self._switchboard is not None:
            self._switchboard.sendUnacknowledged("U", buildTypingPayload(self.manager.account))

    def sendP2P(self, payload: bytes) -> "Deferred[None]":
        """
        Send one framed P2P payload (ack mode C{D}), in turn with the texts:
        it waits in the same queue, so a picture sent chunk by chunk never
        holds a text back by more than one chunk.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing on the switchboard's C{ACK}, failing
            with L{MessageNotDelivered} on C{NAK}, time-out, a closed
            switchboard or none that could be opened.
        """
        d: Deferred[None] = Deferred()
        self._submit(_Outgoing([payload], "D", d))
        return d

    def sendFile(self, name: str, source: Any, size: Optional[int] = None, preview: Optional[bytes] = None) -> Any:
        """
        Offer a file to this conversation's one contact over P2P (an
        MSNSLP INVITE with the file context: C{name}, the size and an
        optional C{preview} PNG); once they accept, the data follows chunk
        by chunk in this conversation's queue, so texts pass between
        chunks (docs/p2p.md, "File transfer").

        @param source: a path, a binary file object, or a producer with
            C{length} and C{startProducing(consumer)} (an
            C{IBodyProducer}); it is read as the switchboard takes the
            chunks, never whole.
        @param size: the size to announce when the source cannot tell.
        @return: the L{msnp.p2p.files.Transfer} (C{bytesDone}, C{total},
            C{whenDone()}, C{cancel()}).
        @raise ValueError: a group conversation, an empty file, a size the
            source cannot tell, or a session without file transfer.
        @raise OSError: the path cannot be opened.
        """
        if self.manager.files is None:
            raise ValueError("this session does not transfer files")
        return self.manager.files.sendFile(self, name, source, size, preview)

    def invite(self, email: str) -> "Deferred[None]":
        """
        Bring C{email} into this conversation.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing when C{email} has joined; failing with
            L{ContactOffline} (C{217}), L{RequestTimeout} if they do not
            join within the set-up timeout, or L{ConnectionLost}.
        """
        email = normalizeEmail(email)
        if email in self.participants:
            return succeed(None)
        self._callList.add(email)
        waiter: Deferred[None] = Deferred()
        self._joinWaiters.setdefault(email, []).append(waiter)
        timer = self.manager.reactor.callLater(self.manager.setupTimeout, self._inviteTimedOut, email, waiter)

        def stopTimer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        waiter.addBoth(stopTimer)
        if self._isUsable() and self._switchboard is not None:
            self._called.add(email)
            self._switchboard.call(email).addErrback(self._inviteFailed, email)
        else:
            self._ensureOpen()
        return waiter

    def leave(self) -> "Deferred[None]":
        """
        Leave the switchboard (C{OUT}); what is still queued fails with
        L{MessageNotDelivered}. The conversation can be used again later (a
        new switchboard is opened).

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the connection is closed.
        """
        self._failQueue(MessageNotDelivered("the conversation was closed"))
        switchboard = self._switchboard
        if self._opening is not None:
            self._opening.cancel()
        if switchboard is None or switchboard.closed or switchboard.transport is None:
            return succeed(None)
        d = switchboard.whenLost()
        switchboard.leave()
        return d


class ConversationManager:
    """
    Every conversation of one session.

    Observer events (through L{notifyObserver}): C{conversationStarted} when
    an invitation was answered (a conversation opened with
    L{openConversation} is handed back by its L{Deferred <twisted.internet.defer.Deferred>} instead);
    C{participantJoined} / C{participantLeft} for each person (once, however
    many places they are signed in at), C{messageReceived} with a
    L{TextMessage}, C{typingReceived}, C{nudgeReceived}, and
    C{conversationEnded} when a conversation's switchboard closes (the
    conversation stays usable: the next text opens a new one).

    @ivar conversations: the conversations in use (active or dormant),
        newest last.
    """

    def __init__(
        self,
        account: str,
        machineGuid: str,
        displayName: Callable[[], str],
        requestSwitchboard: Callable[[], "Deferred[SwitchboardTicket]"],
        observer: Any = None,
        reactor: Any = None,
        connectTimeout: float = 30.0,
        setupTimeout: float = 60.0,
        ackTimeout: float = 30.0,
        requestTimeout: float = 30.0,
        trace: bool = False,
        connector: Optional[Connector] = None,
        session: Optional[object] = None,
        p2p: Optional[IP2PReceiver] = None,
        files: Optional[IFileSender] = None,
        rich: Optional["RichContent"] = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
        permits: Optional[Callable[[str], bool]] = None,
        sendOffline: Optional[OfflineSender] = None,
        contactNetwork: Optional[Callable[[str], Optional[int]]] = None,
        isKnownOffline: Optional[Callable[[str], bool]] = None,
    ) -> None:
        """
        @param p2p: told of P2P payloads and closed switchboards
            (L{msnp.pictures.DisplayPictures}); L{None} drops P2P.
        @param files: where L{Conversation.sendFile} goes; L{None}: no
            file transfer.
        @param rich: the session's emoticons, winks, voice clips and ink
            (L{msnp.emoticons.RichContent}); L{None} ignores them.
        @param session: the session the conversations belong to
            (L{Conversation.session}).
        @param sendOffline: sends one text as an offline message (or, to a
            network-32 contact, as C{UUM}): what L{Conversation.sendText}
            falls back to; L{None}: no fallback.
        @param contactNetwork: the network of a contact, L{None} if unknown.
        @param isKnownOffline: whether a contact is known to be offline
            now (its last presence was C{FLN}, or none was received).
        @param displayName: returns the user's current display name.
        @param requestSwitchboard: sends C{XFR SB} on the NS.
        @param reactor: for connections and timeouts.
        @param connectTimeout: seconds for the TCP connection.
        @param setupTimeout: seconds for a whole set-up (connect, C{USR},
            C{CAL}, first C{JOI}; or connect, C{ANS}).
        @param ackTimeout: seconds a text waits for its C{ACK}.
        @param connector: opens a connection for a protocol (tests pass a
            fake one); by default a TCP connector on C{reactor}.
        @param limits: caps on invitations answered and conversations kept.
        @param permits: whether our privacy lets an address reach us now
            (asked for each C{RNG} and each message); everyone by default.
        """
        self.account = normalizeEmail(account)
        self.machineGuid = machineGuid
        self.displayName = displayName
        self.requestSwitchboard = requestSwitchboard
        self.observer = observer
        self.session = session
        self.p2p = p2p
        self.files = files
        self.rich = rich
        self.reactor = reactorOrDefault(reactor)
        self.connectTimeout = connectTimeout
        self.setupTimeout = setupTimeout
        self.ackTimeout = ackTimeout
        self.requestTimeout = requestTimeout
        self.trace = trace
        self.connector: Connector = connector or tcpConnector(self.reactor, connectTimeout)
        self.conversations: list[Conversation] = []
        self.sendOffline: Optional[OfflineSender] = sendOffline
        self._contactNetwork = contactNetwork
        self._isKnownOffline = isKnownOffline
        self._closed = False
        self.limits = limits
        self.permits: Callable[[str], bool] = permits or (lambda email: True)
        self.invitationRate = InvitationRate(limits, self.reactor)
        self.refusedInvitations = RefusalSummary("invitations (RNG)")
        self.droppedMessages = RefusalSummary("switchboard messages")

    def leaveOffline(self, email: str, text: str, format: Optional[MessageFormat]) -> "Deferred[DeliveryResult]":
        """
        Send C{text} to C{email} without a switchboard (L{sendOffline}).
        """
        sender: Optional[OfflineSender] = self.sendOffline
        if sender is None:
            return fail(MessageNotDelivered("this session cannot leave offline messages"))
        return sender(email, text, format)

    def isKnownOffline(self, email: str) -> bool:
        """
        Whether C{email} is known to be offline now.
        """
        return self._isKnownOffline is not None and self._isKnownOffline(normalizeEmail(email))

    def needsNoSwitchboard(self, email: str, onSwitchboard: bool = False) -> bool:
        """
        Whether a text to C{email} goes straight to C{UUM}: the contact is
        on another network (reachable only that way), or known offline
        and not on an open switchboard with us (presence may lag behind).
        """
        network = self._contactNetwork(email) if self._contactNetwork is not None else None
        if network == NETWORK_YAHOO:
            return True
        return not onSwitchboard and self.isKnownOffline(email)

    def _find(self, email: str) -> Optional[Conversation]:
        for conversation in self.conversations:
            if conversation.contacts == {email}:
                return conversation
        return None

    def _forgetIfUnused(self, conversation: Conversation) -> None:
        """
        Drop a conversation whose set-up failed, unless it is in use after
        all (another set-up succeeded, or messages wait in its queue for
        the next attempt), so that failed attempts do not pile up.
        """
        if not conversation.isActive and conversation in self.conversations and not conversation.hasQueuedMessages:
            self.conversations.remove(conversation)

    def openConversation(self, email: str) -> "Deferred[Conversation]":
        """
        A conversation with C{email}: the open (or dormant) one-to-one
        conversation with them if there is one, else a new one.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the L{Conversation} once C{email}
            has joined; failing with L{ContactOffline} (C{217}),
            L{RequestTimeout}, L{ConnectionLost} or L{ServerError}; with
            L{ValueError} for your own address (as a failed L{Deferred <twisted.internet.defer.Deferred>}, like
            every other outcome, never raised).
        """
        email = normalizeEmail(email)
        if email == self.account:
            return fail(ValueError("cannot open a conversation with yourself"))
        conversation = self._find(email)
        if conversation is None:
            conversation = Conversation(self, [email])
            self._keep(conversation)
        created = conversation

        def failed(failure: Failure) -> Failure:
            self._forgetIfUnused(created)
            return failure

        return conversation.whenReady().addCallbacks(lambda _: created, failed)

    def invited(self, invitation: Invitation) -> None:
        """
        Answer an invitation (C{RNG}) and tell the observer
        C{conversationStarted} once the switchboard is joined. A dormant
        one-to-one conversation with the inviter is reused.
        """
        if self._closed:
            return
        inviter = normalizeEmail(invitation.inviter)
        refusal = self._refusal(inviter)
        if refusal is not None:
            self.refusedInvitations.add(f"from {inviter}: {refusal}")
            return
        conversation = self._find(inviter)
        if conversation is None or conversation.state is not ConversationState.IDLE:
            conversation = Conversation(self, [])
            self._keep(conversation)
        answered = conversation

        def started(_: None) -> None:
            notifyObserver(self.observer, "conversationStarted", self.session, answered)

        def failed(failure: Failure) -> None:
            log.info("Could not answer an invitation from {inviter}: {error}", inviter=inviter,
                     error=failure.getErrorMessage())
            self._forgetIfUnused(answered)

        conversation.answer(invitation).addCallbacks(started, failed)

    def _refusal(self, inviter: str) -> Optional[str]:
        """
        Why an invitation from C{inviter} is not answered, or L{None}: our
        privacy does not permit them; a one-to-one conversation with them
        is already open, or being opened by answering an earlier
        invitation (it is reused: one conversation and one connection per
        contact set, however many C{RNG}s); too many invitations from them
        within L{ClientLimits.invitationWindow}; too many conversations
        open. One that we are opening ourselves does not refuse it: both
        sides calling at once must still meet.
        """
        if not self.permits(inviter):
            return "our privacy does not permit them"
        existing = self._find(inviter)
        if existing is not None and (
            (existing.isActive and inviter in existing.participants)
            or (existing.state is ConversationState.CONNECTING and existing._answering)
        ):
            return "a conversation with them is already open"
        if self.openCount() >= self.limits.openConversations:
            return f"{self.limits.openConversations} conversations are open"
        if not self.invitationRate.admit(inviter):
            return (
                f"more than {self.limits.invitationsPerContact} invitations"
                f" within {self.limits.invitationWindow:g}s"
            )
        return None

    def openCount(self) -> int:
        """
        How many conversations have a switchboard open or being opened.
        """
        return sum(1 for c in self.conversations if c.state is not ConversationState.IDLE)

    def _keep(self, conversation: Conversation) -> None:
        """
        Add C{conversation}, forgetting the oldest dormant ones with nothing
        queued beyond L{ClientLimits.keptConversations}.
        """
        self.conversations.append(conversation)
        excess = len(self.conversations) - self.limits.keptConversations
        if excess <= 0:
            return
        for old in list(self.conversations):
            if excess <= 0:
                break
            if old is not conversation and old.state is ConversationState.IDLE and not old.hasQueuedMessages:
                self.conversations.remove(old)
                excess -= 1

    def contactBlocked(self, email: str) -> None:
        """
        C{email} was blocked: leave the one-to-one conversations with them
        (their messages in shared group conversations are dropped from now
        on, see L{permits}).
        """
        email = normalizeEmail(email)
        for conversation in list(self.conversations):
            alone = conversation.contacts == {email} or conversation.participants == {email}
            if alone and conversation.state is not ConversationState.IDLE:
                log.info("Leaving the conversation with {email}, who was blocked", email=email)
                conversation.leave()

    def closeAll(self) -> None:
        """
        Leave every conversation (logout).
        """
        self._closed = True
        conversations, self.conversations = self.conversations, []
        for conversation in conversations:
            conversation.leave()

