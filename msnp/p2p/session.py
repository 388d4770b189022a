# -*- test-case-name: test.test_p2p_session -*-
"""
P2P sessions over the switchboard, sans-IO: MSN objects fetched and served.

L{P2PManager} is fed whole switchboard payloads of type
C{application/x-msnmsgrp2p} (L{P2PManager.payloadReceived}) and hands the
payloads it wants sent to an L{IP2PTransport}, one at a time per peer, each
already framed for C{MSG trid D len}. It knows nothing of switchboards,
conversations or sockets; the only other things it is given are an
L{IObjectSource} (the objects this side publishes) and an C{IReactorTime}
for its timers. That is the whole integration seam.

What it guarantees:
  - every L{Deferred} from L{P2PManager.fetchObject} fires with bytes whose
    SHA-1 is the object's SHA1D, or fails with a L{TransferError}: declined,
    cancelled by the peer, timed out (no answer to the INVITE within
    C{responseTimeout}, no progress within C{transferTimeout}), interrupted
    (a send failed, L{P2PManager.peerGone}, L{P2PManager.close}), checksum;
  - hostile or foreign input (version 2, malformed chunks or SLP, data of
    sessions nobody opened, totals above the cap, gaps) is logged with its
    reason and dropped; memory is bounded by the reassembler's caps;
  - control messages (ACKs, SLP, data preparation) to a peer go before
    queued data chunks, and only one payload per peer is handed to the
    transport at a time, so a large transfer leaves room on the switchboard
    for text between its chunks.

Message flow and the choices behind it: docs/p2p.md.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.p2p import slp
from msnp.p2p.application import IP2PApplication
from msnp.p2p.errors import (
    ChecksumMismatch,
    MalformedP2P,
    MalformedSLP,
    P2PVersion2,
    TransferCancelled,
    TransferDeclined,
    TransferError,
    TransferInterrupted,
    TransferTimeout,
)
from msnp.p2p.msnobject import TYPE_DISPLAY_PICTURE, TYPE_EMOTICON, MalformedMSNObject, MSNObject
from msnp.p2p.seam import IObjectSource, IP2PTransport
from msnp.p2p.transport import (
    APP_DISPLAY_PICTURE,
    APP_EMOTICON,
    APP_NONE,
    APP_OBJECT_OLD,
    DATA_FLAGS,
    DATA_PREPARATION,
    FLAG_NONE,
    FLAG_OBJECT_DATA,
    Chunk,
    Complete,
    Header,
    Kind,
    Reassembler,
    buildFrame,
    makeAck,
    parseFrame,
    splitMessage,
)

log = Logger()

#: One OS-backed generator for every P2P session: a C{random.Random}
#: instance carries about 2.5 KiB of state even when, like this one, it
#: never uses it, and every signed-in session has a P2P session.
_SYSTEM_RANDOM = random.SystemRandom()

#: Default cap on an object we fetch or hold partially (bytes).
MAX_OBJECT_SIZE = 1024 * 1024
#: Seconds to wait for the answer to an INVITE (papyon's 60 s).
RESPONSE_TIMEOUT = 60.0
#: Seconds without progress before a running transfer gives up (P.14.2).
TRANSFER_TIMEOUT = 60.0
#: Seconds a provider keeps a served session for its ACK or BYE.
SERVE_GRACE = 30.0
#: How many closed (peer, SessionID) pairs are remembered so late chunks
#: are dropped quietly.
CLOSED_MEMORY = 256


def appIdFor(obj: MSNObject) -> int:
    """
    The AppID of an object INVITE (P.1): 12 for display pictures, 11 for
    emoticons, 1 otherwise (pidgin's and MSNPSharp's value).
    """
    return {TYPE_DISPLAY_PICTURE: APP_DISPLAY_PICTURE, TYPE_EMOTICON: APP_EMOTICON}.get(obj.type, APP_OBJECT_OLD)


@dataclass
class _Item:
    chunk: Chunk
    owner: Optional["_Session"] = None
    last: bool = False
    onSent: Optional[Callable[[Optional[Failure]], None]] = None


@dataclass
class _Outbox:
    peer: str
    control: deque[_Item] = field(default_factory=deque)
    data: deque[_Item] = field(default_factory=deque)
    busy: bool = False

    def pop(self) -> Optional[_Item]:
        if self.control:
            return self.control.popleft()
        if self.data:
            return self.data.popleft()
        return None


@dataclass
class _Session:
    """
    One object session, as fetcher (C{deferred} set) or as provider.
    """

    peer: str
    callId: str
    sessionId: int
    obj: MSNObject
    deferred: Optional["Deferred[bytes]"] = None
    accepted: bool = False
    data: bytes = b""
    appId: int = APP_NONE
    timer: Optional[IDelayedCall] = None
    done: bool = False

    @property
    def fetching(self) -> bool:
        return self.deferred is not None


class P2PManager:
    """
    The P2P side of one signed-in account: fetches objects from peers and
    serves its own (MSNP18-p2p.md P.7).

    @param account: our account; messages whose C{P2P-Dest} names another
        one are dropped (multi-party switchboards carry everyone's P2P).
    @param transport: where payloads go (L{IP2PTransport}).
    @param objects: what we serve (L{IObjectSource}); L{None} serves
        nothing and declines every request.
    @param clock: the reactor's time, for every timeout.
    @param maxObjectSize: the largest object fetched or reassembled.
    @param declineUnknown: answer requests for objects we lack with C{603};
        L{False} stays silent, for when another place of ours is in the
        conversation and may have the object (P.14.1).
    @param rng: source of identifiers and session ids (tests pass a seeded
        one).
    """

    def __init__(
        self,
        account: str,
        transport: IP2PTransport,
        objects: Optional[IObjectSource],
        clock: IReactorTime,
        *,
        maxObjectSize: int = MAX_OBJECT_SIZE,
        responseTimeout: float = RESPONSE_TIMEOUT,
        transferTimeout: float = TRANSFER_TIMEOUT,
        declineUnknown: bool = True,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.account = account.lower()
        self.transport = transport
        self.objects = objects
        self.clock = clock
        self.maxObjectSize = maxObjectSize
        self.responseTimeout = responseTimeout
        self.transferTimeout = transferTimeout
        self.declineUnknown = declineUnknown
        self._rng = rng or _SYSTEM_RANDOM
        self._identifier = self._rng.randrange(10000, 2**31 - 2**20)
        self._reassembler = Reassembler(maxSize=maxObjectSize)
        self._outboxes: dict[str, _Outbox] = {}
        self._byCallId: dict[str, _Session] = {}
        self._bySession: dict[tuple[str, int], _Session] = {}
        self._closed: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._applications: list[IP2PApplication] = []

    def addApplication(self, application: IP2PApplication) -> None:
        """
        Let C{application} (L{IP2PApplication}) handle the INVITEs, SLP,
        chunks and ACKs the object sessions do not own, and pull data
        chunks into idle outboxes.
        """
        self._applications.append(application)

    # -- for applications (IP2PApplication) -----------------------------------------

    def sendSLP(self, peer: str, message: slp.SLPMessage) -> None:
        """
        Queue an SLP message for C{peer}, ahead of data.
        """
        self._sendSLP(peer.lower(), message)

    def ack(self, peer: str, header: Header) -> None:
        """
        Queue the ACK of the complete message whose header is C{header}.
        """
        self._ack(peer.lower(), header)

    def newSessionId(self, peer: str) -> int:
        return self._newSessionId(peer.lower())

    def nextIdentifier(self) -> int:
        return self._nextId()

    def newAckId(self) -> int:
        return self._ackId()

    def wake(self, peer: str) -> None:
        """
        An application has data for C{peer} again: pull it if the outbox
        is idle.
        """
        peer = peer.lower()
        outbox = self._outboxes.get(peer)
        if outbox is None:
            outbox = self._outboxes[peer] = _Outbox(peer)
        self._pump(outbox)

    # -- public -----------------------------------------------------------------

    def fetchObject(self, obj: MSNObject) -> "Deferred[bytes]":
        """
        Fetch C{obj} from its Creator: INVITE, wait for C{200 OK}, take the
        data, check its SHA1D, BYE. Cancelling the result sends BYE.

        @return: fires with the object's bytes or fails with a
            L{TransferError}.
        """
        peer = obj.creator.lower()
        if obj.size > self.maxObjectSize:
            return fail(TransferError(f"object of {obj.size} bytes exceeds the cap of {self.maxObjectSize}"))
        if obj.size == 0 or peer == self.account:
            return fail(TransferError("nothing to fetch: empty object or our own"))
        sessionId = self._newSessionId(peer)
        invite = slp.buildInvite(
            peer, self.account, eufGuid=slp.EUF_MSN_OBJECT, sessionId=sessionId,
            appId=appIdFor(obj), context=obj.contextValue(),
        )
        session = _Session(peer, invite.callId, sessionId, obj)
        session.deferred = Deferred(lambda d: self._cancelFetch(session))
        self._register(session)
        self._arm(session, self.responseTimeout)
        self._sendSLP(session.peer, invite, owner=session)
        return session.deferred

    def payloadReceived(self, sender: str, payload: bytes) -> None:
        """
        One switchboard payload of type C{application/x-msnmsgrp2p} from
        C{sender} (the C{MSG} line's account). Never raises.
        """
        sender = sender.lower()
        if sender == self.account:
            return  # our own other places (P.2.3)
        try:
            frame = parseFrame(payload)
        except P2PVersion2 as e:
            log.info("Dropping P2P from {peer}: {reason}; this client speaks version 1 only", peer=sender, reason=e)
            return
        except MalformedP2P as e:
            log.warn("Dropping malformed P2P message from {peer}: {reason}", peer=sender, reason=e)
            return
        if frame.destination.account != self.account:
            return
        chunk = frame.chunk
        header = chunk.header
        if header.isAck:
            self._ackReceived(sender, header)
            return
        sid = header.sessionId
        session = self._bySession.get((sender, sid)) if sid else None
        if sid and session is None:
            if any(app.chunkReceived(sender, chunk) for app in self._applications):
                return
            if (sender, sid) not in self._closed:
                log.info("Dropping P2P chunk of unknown session {sid} from {peer}", sid=sid, peer=sender)
            return
        if session is not None and session.fetching and header.flags in DATA_FLAGS and header.totalSize != session.obj.size:
            log.warn("Refusing {size}-byte data from {peer} for a {expected}-byte object",
                     size=header.totalSize, peer=sender, expected=session.obj.size)
            self._sendBye(session)
            self._finish(session, ChecksumMismatch(f"data of {header.totalSize} bytes for an object of {session.obj.size}"))
            return
        if not sid and header.totalSize > slp.MAX_SLP:
            log.warn("Dropping {size}-byte SLP message from {peer}", size=header.totalSize, peer=sender)
            return
        try:
            complete = self._reassembler.add(sender, chunk)
        except MalformedP2P as e:
            log.warn("Dropping P2P chunk from {peer}: {reason}", peer=sender, reason=e)
            return
        if session is not None and session.fetching and session.accepted:
            self._arm(session, self.transferTimeout)  # progress
        if complete is not None:
            self._messageReceived(sender, complete, session)

    def peerGone(self, peer: str, reason: Optional[str] = None) -> None:
        """
        The switchboard to C{peer} closed (or the peer left): fail its
        running fetches with L{TransferInterrupted}, stop serving it, drop
        its partial messages and queued payloads.
        """
        peer = peer.lower()
        why = reason or f"the switchboard with {peer} closed"
        for session in [s for s in self._byCallId.values() if s.peer == peer]:
            self._finish(session, TransferInterrupted(why))
        self._reassembler.discard(peer)
        outbox = self._outboxes.get(peer)
        if outbox is not None:
            outbox.control.clear()
            outbox.data.clear()
        for app in self._applications:
            app.peerGone(peer, why)

    def close(self) -> None:
        """
        Fail everything (the session signed out).
        """
        for peer in {s.peer for s in self._byCallId.values()} | set(self._outboxes):
            self.peerGone(peer, "signed out")
        for app in self._applications:
            app.peerGone("", "signed out")

    def activeSessions(self) -> int:
        return len(self._byCallId)

    # -- receiving ------------------------------------------------------------------

    def _messageReceived(self, peer: str, message: Complete, session: Optional[_Session]) -> None:
        kind = message.kind
        if kind is Kind.SLP:
            self._slpReceived(peer, message)
        elif session is None:
            log.info("Ignoring P2P {kind} message with session 0 from {peer}", kind=kind.value, peer=peer)
        elif kind is Kind.DATA_PREPARATION:
            self._ack(peer, message.header)
        elif kind is Kind.DATA and session.fetching:
            self._ack(peer, message.header)
            self._dataReceived(session, message.payload)
        elif kind in (Kind.ABORT, Kind.CLOSE):
            if session.fetching and kind is Kind.ABORT:
                self._finish(session, TransferCancelled(f"{peer} aborted the transfer"))
            elif not session.fetching:
                self._finish(session)
        else:
            log.info("Ignoring P2P {kind} message (flags {flags:#x}) from {peer}",
                     kind=kind.value, flags=message.header.flags, peer=peer)

    def _slpReceived(self, peer: str, message: Complete) -> None:
        try:
            request = slp.parseSLP(message.payload)
        except MalformedSLP as e:
            log.warn("Dropping malformed SLP message from {peer}: {reason}", peer=peer, reason=e)
            return
        if request.sender and request.sender != peer:
            log.warn("Dropping SLP from {peer} claiming to be from {claimed}", peer=peer, claimed=request.sender)
            return
        session = self._byCallId.get(request.callId.upper())
        if session is None and request.sessionId:
            session = self._bySession.get((peer, request.sessionId))
        if session is not None and session.peer != peer:
            log.warn("Dropping SLP from {peer} for a session with {other}", peer=peer, other=session.peer)
            return
        if session is None and any(app.slpReceived(peer, request) for app in self._applications):
            self._ack(peer, message.header)
            return
        if request.method == "INVITE":
            self._ack(peer, message.header)
            if session is None:
                self._inviteReceived(peer, request)
            elif request.contentType == slp.TRANSPORT_REQUEST:
                self._sendSLP(peer, slp.buildTransportDecline(request, self.account))
        elif request.method == "BYE":
            if session is None:
                if request.sessionId and (peer, request.sessionId) in self._closed:
                    self._ack(peer, message.header)  # a BYE after the data's ACK closed it
                return
            self._ack(peer, message.header)
            if session.fetching:
                self._finish(session, TransferCancelled(f"{peer} closed the session"))
            else:
                self._finish(session)
        elif request.method is not None:
            log.info("Ignoring SLP {method} from {peer}", method=request.method, peer=peer)
        elif session is None or not session.fetching:
            return  # responses for Call-IDs we do not know: normal with MPOP
        else:
            self._ack(peer, message.header)
            if session.accepted or request.contentType != slp.SESSION_REQUEST:
                return  # a second place's answer, or a transport answer
            if request.status == 200:
                session.accepted = True
                self._arm(session, self.transferTimeout)
            else:
                self._sendBye(session)
                self._finish(session, TransferDeclined(request.status or 0, request.reason))

    def _inviteReceived(self, peer: str, invite: slp.SLPMessage) -> None:
        euf = (invite.field("EUF-GUID") or "").upper()
        sessionId = invite.sessionId
        if euf != slp.EUF_MSN_OBJECT and any(app.inviteReceived(peer, invite) for app in self._applications):
            return
        if euf != slp.EUF_MSN_OBJECT or not sessionId:
            log.info("Declining SLP INVITE for {euf} from {peer}", euf=euf or "nothing", peer=peer)
            self._sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return
        try:
            obj = MSNObject.fromContext(invite.field("Context") or "")
        except MalformedMSNObject as e:
            log.warn("Declining object INVITE from {peer}: {reason}", peer=peer, reason=e)
            self._sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return
        data = self.objects.objectData(obj) if self.objects is not None else None
        if data is None or len(data) == 0:
            if self.declineUnknown:
                self._sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return
        appIdText = (invite.field("AppID") or "").strip()
        appId = int(appIdText) if appIdText.isdigit() and len(appIdText) <= 9 else APP_OBJECT_OLD
        session = _Session(peer, invite.callId, sessionId, obj, data=data, appId=appId)
        self._register(session)
        self._arm(session, self.transferTimeout)
        self._sendSLP(peer, slp.buildResponse(invite, self.account, 200))
        prep = Header(sessionId, self._nextId(), 0, 4, 4, FLAG_NONE, self._ackId())
        self._enqueue(peer, [Chunk(prep, DATA_PREPARATION, session.appId)], owner=session, control=True)
        chunks = splitMessage(
            data, sessionId=sessionId, identifier=self._nextId(), flags=FLAG_OBJECT_DATA,
            ackId=self._ackId(), appId=session.appId,
        )
        self._enqueue(peer, chunks, owner=session, control=False)

    def _dataReceived(self, session: _Session, data: bytes) -> None:
        if not session.obj.matches(data):
            self._sendBye(session)
            self._finish(session, ChecksumMismatch(f"data from {session.peer} does not match SHA1D {session.obj.sha1d}"))
            return
        self._sendBye(session)
        self._finish(session, result=data)

    def _ackReceived(self, peer: str, header: Header) -> None:
        session = self._bySession.get((peer, header.sessionId)) if header.sessionId else None
        if session is not None and not session.fetching and header.ackSize == len(session.data):
            self._finish(session)  # the requester has everything
        elif session is None:
            for app in self._applications:
                app.ackReceived(peer, header)

    # -- sessions ---------------------------------------------------------------------

    def _register(self, session: _Session) -> None:
        self._byCallId[session.callId.upper()] = session
        self._bySession[(session.peer, session.sessionId)] = session

    def _arm(self, session: _Session, seconds: float) -> None:
        if session.timer is not None and session.timer.active():
            session.timer.cancel()
        session.timer = self.clock.callLater(seconds, self._timedOut, session)

    def _timedOut(self, session: _Session) -> None:
        session.timer = None
        if session.fetching:
            self._sendBye(session)
            waited = "an answer" if not session.accepted else "data"
            self._finish(session, TransferTimeout(f"{session.peer} sent no {waited} in time"))
        else:
            self._finish(session)

    def _finish(
        self,
        session: _Session,
        error: Optional[TransferError] = None,
        result: Optional[bytes] = None,
        fire: bool = True,
    ) -> None:
        if session.done:
            return
        session.done = True
        if session.timer is not None and session.timer.active():
            session.timer.cancel()
        session.timer = None
        self._byCallId.pop(session.callId.upper(), None)
        self._bySession.pop((session.peer, session.sessionId), None)
        self._reassembler.discard(session.peer, session.sessionId)
        self._closed[(session.peer, session.sessionId)] = None
        while len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)
        outbox = self._outboxes.get(session.peer)
        if outbox is not None:
            outbox.data = deque(i for i in outbox.data if i.owner is not session)
        if session.deferred is not None and fire:
            if error is not None:
                session.deferred.errback(Failure(error))
            else:
                session.deferred.callback(result if result is not None else b"")

    def _cancelFetch(self, session: _Session) -> None:
        """
        The caller cancelled a fetch: BYE, forget it; the L{twisted.internet.defer.Deferred} then
        fails with C{CancelledError}.
        """
        if not session.done:
            self._sendBye(session)
            self._finish(session, fire=False)

    # -- sending ----------------------------------------------------------------------

    def _nextId(self) -> int:
        self._identifier = self._identifier + 1 if self._identifier < 2**32 - 1 else 10000
        return self._identifier

    def _ackId(self) -> int:
        return self._rng.randrange(1, 2**32)

    def _newSessionId(self, peer: str) -> int:
        while True:
            sid = self._rng.randrange(50000, 2**31)
            if (peer, sid) not in self._bySession and (peer, sid) not in self._closed:
                return sid

    def _ack(self, peer: str, header: Header) -> None:
        self._enqueue(peer, [makeAck(header, self._nextId())], control=True)

    def _sendSLP(self, peer: str, message: slp.SLPMessage, owner: Optional[_Session] = None) -> None:
        chunks = splitMessage(message.encode(), sessionId=0, identifier=self._nextId(), flags=FLAG_NONE, ackId=self._ackId())
        self._enqueue(peer, chunks, owner=owner, control=True)

    def _sendBye(self, session: _Session) -> None:
        self._sendSLP(session.peer, slp.buildBye(session.peer, self.account, session.callId, session.sessionId))

    def _enqueue(self, peer: str, chunks: list[Chunk], owner: Optional[_Session] = None, control: bool = True) -> None:
        outbox = self._outboxes.get(peer)
        if outbox is None:
            outbox = self._outboxes[peer] = _Outbox(peer)
        queue = outbox.control if control else outbox.data
        for index, chunk in enumerate(chunks):
            queue.append(_Item(chunk, owner, index == len(chunks) - 1))
        self._pump(outbox)

    def _pump(self, outbox: _Outbox) -> None:
        while not outbox.busy:
            item = outbox.pop() or self._pull(outbox.peer)
            if item is None:
                if self._outboxes.get(outbox.peer) is outbox:
                    del self._outboxes[outbox.peer]
                return
            if item.owner is not None and item.owner.done:
                continue
            outbox.busy = True
            inLoop = [True]

            def sent(result: object, item: _Item = item, inLoop: list[bool] = inLoop) -> None:
                outbox.busy = False
                if item.onSent is not None:
                    item.onSent(result if isinstance(result, Failure) else None)
                elif isinstance(result, Failure):
                    self._sendFailed(outbox.peer, item, result)
                elif item.last and item.owner is not None and not item.owner.done and not item.owner.fetching:
                    if item.chunk.header.flags == FLAG_OBJECT_DATA:
                        self._arm(item.owner, SERVE_GRACE)  # all data out: wait for ACK or BYE
                if not inLoop[0]:
                    self._pump(outbox)

            maybeDeferred(self.transport.sendP2P, outbox.peer, buildFrame(outbox.peer, item.chunk)).addBoth(sent)
            inLoop[0] = False

    def _pull(self, peer: str) -> Optional[_Item]:
        for app in self._applications:
            pulled = app.nextChunk(peer)
            if pulled is not None:
                return _Item(pulled[0], onSent=pulled[1])
        return None

    def _sendFailed(self, peer: str, item: _Item, failure: Failure) -> None:
        log.info("P2P message to {peer} not delivered: {why}", peer=peer, why=failure.getErrorMessage())
        if item.owner is not None and not item.owner.done:
            self._finish(item.owner, TransferInterrupted(f"could not send to {peer}: {failure.getErrorMessage()}"))
