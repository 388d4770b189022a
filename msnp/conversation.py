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

from msnp.contacts import normalizeEmail, normalizeGuid
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


# -- the connection -----------------------------------------------------------

# -- conversations ------------------------------------------------------------

Connector = Callable[[str, SwitchboardProtocol], "Deferred[Any]"]


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

    def sendText(self, text: str, format: Optional[MessageFormat] = None) -> "Deferred[None]":
        """
        Send a text (ack mode C{A}); split into parts when too long.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the switchboard acknowledged every
            part, failing with L{MessageNotDelivered} on C{NAK}, on the
            acknowledgement timeout, when the switchboard closes first, or
            when no switchboard could be opened.
        """
        d: Deferred[None] = Deferred()
        try:
            payloads = buildTextPayloads(text, format)
        except ValueError as e:
            d.errback(MessageNotDelivered(str(e)))
            return d
        self._submit(_Outgoing(payloads, "A", d))
        return d

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
                    raise MessageNotDelivered("the switchboard could not deliver the message (NAK)")

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
        self._switchboard = None
        self._state = ConversationState.IDLE
        self.participants.clear()
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
    ) -> None:
        """
        @param session: the session the conversations belong to
            (L{Conversation.session}).
        @param displayName: returns the user's current display name.
        @param requestSwitchboard: sends C{XFR SB} on the NS.
        @param reactor: for connections and timeouts.
        @param connectTimeout: seconds for the TCP connection.
        @param setupTimeout: seconds for a whole set-up (connect, C{USR},
            C{CAL}, first C{JOI}; or connect, C{ANS}).
        @param ackTimeout: seconds a text waits for its C{ACK}.
        @param connector: opens a connection for a protocol (tests pass a
            fake one); by default a TCP connector on C{reactor}.
        """
        self.account = normalizeEmail(account)
        self.machineGuid = machineGuid
        self.displayName = displayName
        self.requestSwitchboard = requestSwitchboard
        self.observer = observer
        self.session = session
        self.reactor = reactorOrDefault(reactor)
        self.connectTimeout = connectTimeout
        self.setupTimeout = setupTimeout
        self.ackTimeout = ackTimeout
        self.requestTimeout = requestTimeout
        self.trace = trace
        self.connector: Connector = connector or tcpConnector(self.reactor, connectTimeout)
        self.conversations: list[Conversation] = []
        self._closed = False

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
            self.conversations.append(conversation)
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
        conversation = self._find(inviter)
        if conversation is None or conversation.state is not ConversationState.IDLE:
            conversation = Conversation(self, [])
            self.conversations.append(conversation)
        answered = conversation

        def started(_: None) -> None:
            notifyObserver(self.observer, "conversationStarted", answered)

        def failed(failure: Failure) -> None:
            log.info("Could not answer an invitation from {inviter}: {error}", inviter=inviter,
                     error=failure.getErrorMessage())
            self._forgetIfUnused(answered)

        conversation.answer(invitation).addCallbacks(started, failed)

    def closeAll(self) -> None:
        """
        Leave every conversation (logout).
        """
        self._closed = True
        conversations, self.conversations = self.conversations, []
        for conversation in conversations:
            conversation.leave()

