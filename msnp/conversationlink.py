# -*- test-case-name: test.test_switchboard,test.test_clientlimits -*-
"""
The switchboard side of a conversation: L{SwitchboardLink}, the base class
of L{msnp.conversation.Conversation}.

It holds one conversation's current switchboard and everything that drives
it: the queue of what is sent while one is being set up, the set-up itself
(C{XFR SB} + C{USR} + C{CAL}, or C{ANS} for an invitation) with its
deadline, the invitations of more people, and the switchboard's events
(C{JOI}, C{BYE}, each C{MSG} dispatched by type to the observer, the rich
content, the P2P layer; the close). It is separate from
L{msnp.conversation} so that module keeps what a user calls (the sends,
L{msnp.conversation.ConversationManager}) and this one the switchboard
machinery under it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, cast

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError as DeferredTimeoutError,
    ensureDeferred,
    succeed,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

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
from msnp.mime import MessageFormat, MimeMessage, TextMessage, datacastId
from msnp.nsmessages import Invitation
from msnp.switchboard import SwitchboardProtocol

if TYPE_CHECKING:
    from msnp.conversation import Conversation, ConversationManager

log = Logger()


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


class SwitchboardLink:
    """
    One conversation's switchboard (L{msnp.conversation.Conversation}
    inherits it): the state, the send queue, the set-up and the
    switchboard's events.
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
            notifyObserver(self.manager.observer, "participantJoined", self.session, self, email)

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
        notifyObserver(self.manager.observer, "participantLeft", self.session, self, email)
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
            emoticons = self.manager.rich.takeEmoticons(cast("Conversation", self), email, text) if self.manager.rich is not None else {}
            notifyObserver(observer, "messageReceived", self.session, self, TextMessage(email, name, text, format, emoticons))
        elif self.manager.rich is not None and self.manager.rich.handles(kind, message):
            self.manager.rich.received(cast("Conversation", self), email, kind, message)
        elif kind == "text/x-msmsgscontrol":
            # The sender, not the TypingUser header: a peer cannot make
            # someone else appear to type.
            notifyObserver(observer, "typingReceived", self.session, self, email)
        elif kind == "text/x-msnmsgr-datacast":
            ident = datacastId(message)
            if ident == 1:
                notifyObserver(observer, "nudgeReceived", self.session, self, email)
            else:
                log.info("Ignoring datacast {id} from {sender}", id=ident, sender=email)
        elif kind == "application/x-msnmsgrp2p":
            if self.manager.p2p is not None:
                self.manager.p2p.p2pReceived(cast("Conversation", self), email, _rawPayload(message))
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
            self.manager.p2p.p2pSwitchboardClosed(cast("Conversation", self), peers)
        if self.manager.rich is not None:
            self.manager.rich.forget(cast("Conversation", self))
        self._endpoints.clear()
        self._failJoinWaiters(ConnectionLost("the switchboard closed"))
        if wasReady:
            notifyObserver(self.manager.observer, "conversationEnded", self.session, self)
        if self._queue:
            # Something was submitted after the close was noticed: reopen.
            self._ensureOpen()
