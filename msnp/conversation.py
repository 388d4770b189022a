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

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError as DeferredTimeoutError,
    ensureDeferred,
    fail,
    succeed,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits, InvitationRate, RefusalSummary
from msnp.contacts import NETWORK_YAHOO, normalizeEmail, normalizeGuid
from msnp.errors import (
    ConnectionLost,
    ContactOffline,
    MessageNotDelivered,
    MSNPError,
    ProtocolError,
    RequestTimeout,
)
from msnp.interfaces import notifyObserver
from msnp.mime import (
    MessageFormat,
    MimeMessage,
    TextMessage,
    buildNudgePayload,
    buildTextPayloads,
    buildTypingPayload,
    datacastId,
)
from msnp.nsmessages import Invitation, SwitchboardTicket
from msnp.reactors import reactorOrDefault
from msnp.switchboard import SwitchboardProtocol
from msnp.uum import DeliveryResult

log = Logger()

def _endpointKey(guid: str) -> str:
    """
    The key one place of a participant is tracked under: servers echo a
    GUID in any case, with or without braces, and the C{JOI} and C{BYE} of
    one place must still meet. An empty C{{}} keeps a key of its own rather
    than failing, so a peer cannot break the bookkeeping with it.
    """
    try:
        return normalizeGuid(guid)
    except ValueError:
        return ""


class IP2PReceiver(Interface):
    """
    Where a conversation hands what belongs to the P2P layer (display
    pictures, L{msnp.pictures}): the payloads of type
    C{application/x-msnmsgrp2p} and the end of a switchboard.
    """

    def p2pReceived(conversation: "Conversation", sender: str, payload: bytes) -> None:
        """
        A whole C{application/x-msnmsgrp2p} payload from C{sender} (the
        C{MSG} line's account). Must not raise.
        """

    def p2pSwitchboardClosed(conversation: "Conversation", peers: frozenset[str]) -> None:
        """
        The switchboard of C{conversation} is gone; C{peers} were on it.
        Must not raise.
        """


# -- the connection -----------------------------------------------------------

# -- conversations ------------------------------------------------------------

Connector = Callable[[str, SwitchboardProtocol], "Deferred[Any]"]
#: Sends one text to a contact without a switchboard (offline message, or
#: C{UUM} to another network): C{Session.sendOfflineMessage}.
OfflineSender = Callable[[str, str, Optional[MessageFormat]], "Deferred[DeliveryResult]"]


def _splitHostPort(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProtocolError(f"bad switchboard address {address!r}")
    return host.strip("[]"), int(port)


def tcpConnector(reactor: Any, timeout: float) -> Connector:
    """
    A connector that opens a TCP connection to C{host:port} on C{reactor}
    with a connect timeout.
    """
    from twisted.internet.abstract import isIPAddress
    from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint

    from msnp.endpoints import connectQuietly

    def connect(address: str, protocol: SwitchboardProtocol) -> "Deferred[Any]":
        host, port = _splitHostPort(address)
        if isIPAddress(host):
            endpoint: Any = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        else:
            endpoint = HostnameEndpoint(reactor, host.encode("idna"), port, timeout=timeout)
        return connectQuietly(endpoint, protocol)

    return connect


def _rawPayload(message: MimeMessage) -> bytes:
    """
    A message's payload again as bytes (header lines, blank line, body),
    for the P2P codec, which reads the frame itself.
    """
    head = "".join(f"{name}: {value}\r\n" for name, value in message.headers)
    return head.encode("utf-8") + b"\r\n" + message.body


class ConversationState(enum.Enum):
    """
    Where a conversation's switchboard is.
    """

    #: No switchboard; the next message opens one.
    IDLE = "idle"
    #: A switchboard is being set up; messages are queued.
    CONNECTING = "connecting"
    #: Someone has joined; messages go out at once.
    READY = "ready"


@dataclass
class _Outgoing:
    payloads: list[bytes]
    mode: str
    deferred: "Deferred[None]" = field(repr=False)


class Conversation:
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

    def __init__(self, manager: "ConversationManager", people: Sequence[str] = ()) -> None:
        self.manager = manager
        self.participants: set[str] = set()
        self.names: dict[str, str] = {}
        self._callList: set[str] = {normalizeEmail(p) for p in people}
        self._switchboard: Optional[SwitchboardProtocol] = None
        self._state = ConversationState.IDLE
        self._queue: list[_Outgoing] = []
        self._opening: Optional[Deferred[None]] = None
        self._readyWaiters: list[Deferred[None]] = []
        self._joinWaiters: dict[str, list[Deferred[None]]] = {}
        self._firstJoin: Optional[Deferred[None]] = None
        self._invitation: Optional[Invitation] = None
        self._endpoints: dict[str, set[str]] = {}
        self._called: set[str] = set()
        self._answering = False

    def __repr__(self) -> str:
        return f"<Conversation with {sorted(self.participants or self._callList)} ({self._state.value})>"

    @property
    def state(self) -> "ConversationState":
        """
        Whether a switchboard is open, opening or not there.
        """
        return self._state

    @property
    def hasQueuedMessages(self) -> bool:
        """
        Whether messages wait for the next switchboard.
        """
        return bool(self._queue)

    @property
    def session(self) -> Optional[object]:
        """
        The L{msnp.session.Session} this conversation belongs to.
        """
        return self.manager.session

    @property
    def isActive(self) -> bool:
        """
        Whether a switchboard is open and usable now.
        """
        return self._state is ConversationState.READY

    @property
    def contacts(self) -> frozenset[str]:
        """
        The people this conversation calls when it (re)opens a switchboard.
        """
        return frozenset(self._callList)

    # -- user API ----------------------------------------------------------------

    def sendText(
        self, text: str, format: Optional[MessageFormat] = None, strict: bool = False
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

        @param strict: never fall back: fail as described below instead.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with how the text went out
            (L{DeliveryResult.DELIVERED_ONLINE}: every part acknowledged;
            L{DeliveryResult.STORED_OFFLINE}; L{DeliveryResult.SENT_TO_NETWORK}),
            failing with L{MessageNotDelivered} on C{NAK}, on the
            acknowledgement timeout, when the switchboard closes first, or
            when no switchboard could be opened (and no fallback applied),
            or with the offline send's failure (L{ValueError}: too long
            for one offline message; L{msnp.errors.ServerError}).
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

    # -- sending ------------------------------------------------------------------

    def _submit(self, item: _Outgoing) -> None:
        if self._isUsable() and not self._queue:
            self._transmit(item)
        else:
            self._queue.append(item)
            self._ensureOpen()

    def _isUsable(self) -> bool:
        return self._state is ConversationState.READY and self._switchboard is not None and not self._switchboard.closed

    def _transmit(self, item: _Outgoing) -> None:
        switchboard = self._switchboard
        assert switchboard is not None
        if item.mode in ("U", "N"):
            for payload in item.payloads:
                switchboard.sendUnacknowledged(item.mode, payload)
            item.deferred.callback(None)
            return
        acks = [
            switchboard.sendMessage(item.mode, payload, timeout=self.manager.ackTimeout)
            for payload in item.payloads
        ]

        def outcome(results: list[tuple[bool, Any]]) -> None:
            for ok, value in results:
                if not ok:
                    error = value.value
                    if isinstance(error, RequestTimeout):
                        raise MessageNotDelivered("no acknowledgement from the switchboard") from error
                    if isinstance(error, ConnectionLost):
                        raise MessageNotDelivered("the switchboard closed before acknowledging") from error
                    raise MessageNotDelivered(f"not delivered: {error}") from error
                if value.name == "NAK":
                    raise MessageNotDelivered(
                        "the switchboard could not deliver the message (NAK)", reachedNobody=True
                    )

        DeferredList(acks, consumeErrors=True).addCallback(outcome).chainDeferred(item.deferred)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for item in queue:
            if self._state is not ConversationState.READY:
                self._queue.append(item)
                continue
            self._transmit(item)

    def _failQueue(self, error: Exception) -> None:
        queue, self._queue = self._queue, []
        for item in queue:
            item.deferred.errback(Failure(error))

    # -- opening ------------------------------------------------------------------

    def whenReady(self) -> "Deferred[None]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing when a switchboard is ready (opening one if
        needed), or failing with the reason it could not be opened.
        """
        if self._isUsable():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._readyWaiters.append(waiter)
        self._ensureOpen()
        return waiter

    def _ensureOpen(self) -> None:
        """
        Start setting up a switchboard unless one is open or opening.
        """
        if self._state is ConversationState.IDLE:
            self._state = ConversationState.CONNECTING
            invitation, self._invitation = self._invitation, None
            self._answering = invitation is not None
            opening = ensureDeferred(self._open(invitation))
            opening.addTimeout(self.manager.setupTimeout, self.manager.reactor)
            self._opening = opening
            opening.addCallbacks(self._opened, self._openFailed)

    async def _open(self, invitation: Optional[Invitation]) -> None:
        manager = self.manager
        switchboard = SwitchboardProtocol(
            manager.account,
            manager.machineGuid,
            clock=manager.reactor,
            requestTimeout=manager.requestTimeout,
            trace=manager.trace,
        )
        switchboard.listener = self
        self._switchboard = switchboard
        self._called = set()
        firstJoin: Deferred[None] = Deferred()
        self._firstJoin = firstJoin
        try:
            if invitation is not None:
                await manager.connector(invitation.address, switchboard)
                await switchboard.answer(invitation.authToken, invitation.sessionId)
                return
            ticket = await manager.requestSwitchboard()
            await manager.connector(ticket.address, switchboard)
            await switchboard.authenticate(ticket.authToken)
            if not self._callList:
                raise ProtocolError("nobody to call")
            people = sorted(self._callList)
            self._called.update(people)
            results: list[tuple[bool, Any]] = await DeferredList(  # type: ignore[assignment]
                [switchboard.call(email) for email in people], consumeErrors=True
            )
            failures = [value for ok, value in results if not ok]
            for email, (ok, value) in zip(people, results):
                if not ok:
                    self._inviteFailed(value, email)
            if len(failures) == len(people):
                failures[0].raiseException()
            await firstJoin
        except BaseException:
            switchboard.listener = None
            switchboard.abort()
            raise
        finally:
            # Nobody else waits on it: never leave a failure unhandled.
            firstJoin.addErrback(lambda _: None)

    def _opened(self, _: None) -> None:
        self._opening = None
        self._firstJoin = None
        self._state = ConversationState.READY
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.callback(None)
        switchboard = self._switchboard
        if not self.participants and switchboard is not None:
            # Answered an invitation, but the inviter had already gone: this
            # switchboard is of no use; queued messages go to a new one.
            log.info("Nobody left on the switchboard just joined; leaving it")
            self._detach()
            switchboard.leave()
            return
        if switchboard is not None:
            # invite() calls made while this switchboard was being set up.
            for email in sorted(set(self._joinWaiters) - self._called - self.participants):
                self._called.add(email)
                switchboard.call(email).addErrback(self._inviteFailed, email)
        self._flush()

    def _openFailed(self, failure: Failure) -> None:
        self._opening = None
        self._firstJoin = None
        self._switchboard = None
        self._state = ConversationState.IDLE
        self.participants.clear()
        self._endpoints.clear()
        error = failure.value
        if isinstance(error, DeferredTimeoutError):
            error = RequestTimeout("the switchboard was not set up in time")
        elif isinstance(error, CancelledError):
            error = ConnectionLost("the switchboard set-up was cancelled")
        if not isinstance(error, MSNPError):
            error = ConnectionLost(f"could not open a switchboard: {error}")
        log.info("Could not open a switchboard for {conv}: {error}", conv=self, error=str(error))
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.errback(Failure(error))
        queued = MessageNotDelivered(f"no switchboard: {error}")
        queued.__cause__ = error
        self._failQueue(queued)
        self._failJoinWaiters(error)

    def _inviteFailed(self, failure: Failure, email: str) -> None:
        waiters = self._joinWaiters.pop(email, [])
        if isinstance(failure.value, ContactOffline) and email not in self.participants:
            if len(self._callList) > 1:
                self._callList.discard(email)
        for d in waiters:
            d.errback(failure.value)

    def _inviteTimedOut(self, email: str, waiter: Deferred[None]) -> None:
        waiters = self._joinWaiters.get(email, [])
        if waiter in waiters:
            waiters.remove(waiter)
            waiter.errback(RequestTimeout(f"{email} did not join"))

    def _failJoinWaiters(self, error: Exception) -> None:
        pending, self._joinWaiters = self._joinWaiters, {}
        for waiters in pending.values():
            for d in waiters:
                d.errback(Failure(error))

    def answer(self, invitation: Invitation) -> "Deferred[None]":
        """
        Join the switchboard of C{invitation} (the manager calls this for
        C{RNG}); fires once joined.
        """
        self._callList.add(normalizeEmail(invitation.inviter))
        if invitation.inviterName:
            self.names[normalizeEmail(invitation.inviter)] = invitation.inviterName
        self._invitation = invitation
        return self.whenReady()

    # -- switchboard events ------------------------------------------------------

    def switchboardJoined(
        self, switchboard: SwitchboardProtocol, email: str, guid: Optional[str], name: str
    ) -> None:
        if switchboard is not self._switchboard:
            return
        self.names[email] = name
        if guid is not None:
            self._endpoints.setdefault(email, set()).add(_endpointKey(guid))
        isNew = email not in self.participants
        self.participants.add(email)
        self._callList.add(email)
        if self._firstJoin is not None and not self._firstJoin.called:
            self._firstJoin.callback(None)
        for d in self._joinWaiters.pop(email, []):
            d.callback(None)
        if isNew:
            notifyObserver(self.manager.observer, "participantJoined", self, email)

    def switchboardLeft(self, switchboard: SwitchboardProtocol, email: str, guid: Optional[str]) -> None:
        """
        A C{BYE}. With MPOP a person leaves with one line per endpoint and
        one bare line: the bare line, or the line of the last endpoint we
        knew of, removes them; the other lines change nothing.
        """
        if switchboard is not self._switchboard or email not in self.participants:
            return
        if guid is not None:
            endpoints = self._endpoints.get(email, set())
            endpoints.discard(_endpointKey(guid))
            if endpoints:
                return
        self._endpoints.pop(email, None)
        self.participants.discard(email)
        if self.participants:
            self._callList.discard(email)
        notifyObserver(self.manager.observer, "participantLeft", self, email)
        if not self.participants and self._state is ConversationState.READY:
            # The last one left: this switchboard is finished (reference 6.3).
            self._detach()
            switchboard.leave()

    def switchboardMessage(
        self, switchboard: SwitchboardProtocol, email: str, name: str, message: MimeMessage
    ) -> None:
        if switchboard is not self._switchboard:
            return
        if not self.manager.permits(email):
            # Blocked (or not allowed under BLP BL) since this switchboard
            # opened: a server that still relays them is not obeyed.
            self.manager.droppedMessages.add(f"a message from {email}, whom our privacy does not permit")
            return
        observer = self.manager.observer
        kind = message.contentType
        if kind == "text/plain":
            formatHeader = message.header("X-MMS-IM-Format")
            format = MessageFormat.fromHeader(formatHeader) if formatHeader else MessageFormat()
            text = message.body.decode("utf-8", "replace")
            notifyObserver(observer, "messageReceived", self, TextMessage(email, name, text, format))
        elif kind == "text/x-msmsgscontrol":
            # The sender, not the TypingUser header: a peer cannot make
            # someone else appear to type.
            notifyObserver(observer, "typingReceived", self, email)
        elif kind == "text/x-msnmsgr-datacast":
            ident = datacastId(message)
            if ident == 1:
                notifyObserver(observer, "nudgeReceived", self, email)
            else:
                log.info("Ignoring datacast {id} from {sender}", id=ident, sender=email)
        elif kind == "application/x-msnmsgrp2p":
            if self.manager.p2p is not None:
                self.manager.p2p.p2pReceived(self, email, _rawPayload(message))
        elif kind in ("text/x-clientcaps", "text/x-clientinfo", "text/x-keepalive"):
            pass
        else:
            log.info("Ignoring a {kind!r} message from {sender}", kind=kind[:80], sender=email)

    def switchboardClosed(self, switchboard: SwitchboardProtocol) -> None:
        if switchboard is not self._switchboard:
            return
        if self._state is ConversationState.CONNECTING:
            if self._firstJoin is not None and not self._firstJoin.called:
                self._firstJoin.errback(ConnectionLost("the switchboard closed during set-up"))
            return
        self._detach()

    def _detach(self) -> None:
        """
        The current switchboard is finished: go dormant and say so.
        """
        wasReady = self._state is ConversationState.READY
        peers = frozenset(self.participants)
        self._switchboard = None
        self._state = ConversationState.IDLE
        self.participants.clear()
        if self.manager.p2p is not None and peers:
            self.manager.p2p.p2pSwitchboardClosed(self, peers)
        self._endpoints.clear()
        self._failJoinWaiters(ConnectionLost("the switchboard closed"))
        if wasReady:
            notifyObserver(self.manager.observer, "conversationEnded", self)
        if self._queue:
            # Something was submitted after the close was noticed: reopen.
            self._ensureOpen()


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
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
        permits: Optional[Callable[[str], bool]] = None,
        sendOffline: Optional[OfflineSender] = None,
        contactNetwork: Optional[Callable[[str], Optional[int]]] = None,
        isKnownOffline: Optional[Callable[[str], bool]] = None,
    ) -> None:
        """
        @param p2p: told of P2P payloads and closed switchboards
            (L{msnp.pictures.DisplayPictures}); L{None} drops P2P.
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
            notifyObserver(self.observer, "conversationStarted", answered)

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

