# -*- test-case-name: test.test_p2p_files -*-
"""
File transfer sessions over MSNP2P v1, sans-IO (MSNP18-p2p.md P.9).

L{FileSessions} is an L{IP2PApplication} of a L{P2PManager}: the manager
keeps identifiers, ACKs and the per-peer pacing; this module keeps the file
sessions. For files the inviter sends the data: C{INVITE} with EUF-GUID
C{{5D3E02AB-...}}, AppID 2 and the file context, C{200 OK} or C{603}, then
one data message (f6 C{0x01000030}, footer 2) of 1202-byte chunks, the
receiver's ACK of it and its C{BYE}.

What it guarantees:
  - a file is never held in memory: the sender pulls one chunk from its
    L{IFileSource} each time the peer's outbox is idle (that is, after the
    switchboard acknowledged the previous payload), the receiver writes
    each chunk to its L{IFileSink} as it arrives;
  - every L{Transfer} ends exactly once, successfully or with a
    L{TransferError}: L{TransferDeclined}, L{TransferCancelled} (by either
    side), L{TransferTimeout}, L{TransferInterrupted} (the switchboard
    closed, the session ended, a send failed) or a plain L{TransferError}
    (the peer's data disagreed with its offer, the sink failed);
  - hostile offers and data (contexts too short, sizes above
    C{maxFileSize}, data beyond or before what was received, data before
    an answer) are refused with a logged reason; names are only offered
    through L{safeFileName}.

Decisions and their reasons: docs/p2p.md, "File transfer".
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.p2p import slp
from msnp.p2p.application import IFileEvents, IFileSink, IFileSource, IP2PApplication
from msnp.p2p.errors import (
    TransferCancelled,
    TransferDeclined,
    TransferError,
    TransferInterrupted,
    TransferTimeout,
)
from msnp.p2p.filecontext import MAX_PREVIEW, FileContext, MalformedFileContext, safeFileName
from msnp.p2p.transport import (
    APP_FILE,
    DATA_FLAGS,
    DATA_PREPARATION,
    FLAG_ERROR,
    FLAG_FILE_DATA,
    FLAG_NONE,
    FLAG_TLP_ERROR,
    MAX_CHUNK,
    Chunk,
    Header,
)

log = Logger()

#: Default cap on a file we accept (bytes); 4 GiB and more breaks pidgin
#: and papyon anyway (P.9.1).
MAX_FILE_SIZE = 2 * 1024**3
#: Seconds an offer waits for the user before it is declined.
OFFER_TIMEOUT = 120.0
#: Seconds the sender waits for accept or decline (longer than the
#: receiver's own offer timeout, so the receiver's decline arrives first).
ANSWER_TIMEOUT = 180.0
#: Seconds without progress before a running transfer gives up (P.14.2).
TRANSFER_TIMEOUT = 60.0
#: Seconds the sender waits, once all data is out, for the ACK or BYE
#: before counting the transfer done anyway (papyon waits 5; pidgin sends
#: neither, P.9.3).
COMPLETION_GRACE = 5.0
#: How many closed sessions are remembered so late chunks drop quietly.
CLOSED_MEMORY = 256


class Direction(enum.Enum):
    """
    Which way a L{Transfer} goes.
    """

    SEND = "send"
    RECEIVE = "receive"


class TransferState(enum.Enum):
    """
    Where a L{Transfer} is.
    """

    OFFERED = "offered"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Transfer:
    """
    One file going to or coming from a peer.

    @ivar peer: the other account.
    @ivar name: the file's name (sanitised when receiving).
    @ivar total: the file's size in bytes.
    @ivar bytesDone: bytes acknowledged by the switchboard (sending) or
        written to the sink (receiving); never decreases.
    @ivar direction: L{Direction}.
    @ivar state: L{TransferState}.
    @ivar error: why it failed, or L{None}.
    """

    def __init__(
        self, sessions: "FileSessions", direction: Direction, peer: str, name: str, total: int,
        callId: str, sessionId: int,
    ) -> None:
        self._sessions = sessions
        self.direction = direction
        self.peer = peer
        self.name = name
        self.total = total
        self.bytesDone = 0
        self.state = TransferState.OFFERED
        self.error: Optional[TransferError] = None
        self.result: object = None
        self.callId = callId
        self.sessionId = sessionId
        self._waiters: list[Deferred[Any]] = []
        self._timer: Optional[IDelayedCall] = None
        self._source: Optional[IFileSource] = None
        self._sink: Optional[IFileSink] = None
        self._invite: Optional[slp.SLPMessage] = None
        self._sent = 0  # bytes handed to the transport (the next offset)
        self._identifier = 0
        self._ackId = 0
        self._peerIdentifier: Optional[int] = None

    def __repr__(self) -> str:
        return (f"<Transfer {self.direction.value} {self.name!r} {self.bytesDone}/{self.total}"
                f" with {self.peer} ({self.state.value})>")

    @property
    def done(self) -> bool:
        return self.state in (TransferState.DONE, TransferState.FAILED)

    def whenDone(self) -> "Deferred[Any]":
        """
        A new L{Deferred} firing when the file is complete (with the sink's
        result when receiving, L{None} when sending) or failing with the
        L{TransferError} that ended it.
        """
        if self.state is TransferState.DONE:
            d: Deferred[Any] = Deferred()
            d.callback(self.result)
            return d
        if self.error is not None:
            return fail(self.error)
        d = Deferred()
        self._waiters.append(d)
        return d

    def cancel(self) -> None:
        """
        Stop: decline an unanswered offer, else C{BYE}; L{whenDone} fails
        with L{TransferCancelled}. Nothing happens once it ended.
        """
        self._sessions._cancel(self)


class FileOffer:
    """
    A file a peer offers, as the observer sees it (C{fileOfferReceived}).

    @ivar sender: the offering account.
    @ivar name: the name to save under, made safe by L{safeFileName}.
    @ivar originalName: the name exactly as sent (for display only).
    @ivar size: bytes.
    @ivar preview: the preview image the sender attached, or L{None}.
    @ivar transfer: the receiving L{Transfer}, for progress.
    """

    def __init__(self, transfer: Transfer, originalName: str, preview: Optional[bytes]) -> None:
        self.transfer = transfer
        self.sender = transfer.peer
        self.name = transfer.name
        self.originalName = originalName
        self.size = transfer.total
        self.preview = preview

    def __repr__(self) -> str:
        return f"<FileOffer {self.name!r} ({self.size} bytes) from {self.sender}>"

    @property
    def pending(self) -> bool:
        """
        Whether it still waits for an answer.
        """
        return self.transfer.state is TransferState.OFFERED

    def accept(self, destination: object) -> "Deferred[Any]":
        """
        Accept and stream the file into C{destination}: an L{IFileSink},
        or whatever the session's sink factory understands (a directory, a
        file path, an C{IConsumer}: L{msnp.filetransfer.openSink}).

        @return: fires with the sink's result (the path written, the
            consumer) when the file is complete, or fails with a
            L{TransferError}; fails with L{TransferError} at once if the
            offer was already answered or timed out, and with the sink
            factory's error (L{OSError}) if the destination cannot be
            opened (the offer is declined then).
        """
        return self.transfer._sessions._accept(self, destination)

    def decline(self) -> None:
        """
        Answer C{603 Decline}; does nothing once answered.
        """
        if self.pending:
            self.transfer._sessions._decline(self.transfer, "declined")


@implementer(IP2PApplication)
class FileSessions:
    """
    The file transfers of one account, riding on a L{P2PManager}.

    @param manager: the account's P2P manager (it is told to hand us what
        is ours through L{P2PManager.addApplication}).
    @param clock: for every timeout.
    @param events: L{IFileEvents}.
    @param sinkFor: makes an L{IFileSink} from what
        L{FileOffer.accept} was given (raises L{OSError} or L{ValueError}
        when it cannot).
    @param otherPlaces: whether another place of ours may answer an offer
        (then an unanswered one is dropped silently instead of declined,
        P.14.1).
    @ivar maxFileSize: offers above this are declined.
    @ivar offerTimeout: seconds before an unanswered offer is declined.
    """

    def __init__(
        self,
        manager: Any,
        clock: IReactorTime,
        events: IFileEvents,
        sinkFor: Callable[[object, FileOffer], IFileSink],
        *,
        maxFileSize: int = MAX_FILE_SIZE,
        offerTimeout: float = OFFER_TIMEOUT,
        answerTimeout: float = ANSWER_TIMEOUT,
        transferTimeout: float = TRANSFER_TIMEOUT,
        completionGrace: float = COMPLETION_GRACE,
        otherPlaces: Callable[[], bool] = lambda: False,
    ) -> None:
        self.manager = manager
        self.account: str = manager.account
        self.clock = clock
        self.events = events
        self.sinkFor = sinkFor
        self.maxFileSize = maxFileSize
        self.offerTimeout = offerTimeout
        self.answerTimeout = answerTimeout
        self.transferTimeout = transferTimeout
        self.completionGrace = completionGrace
        self.otherPlaces = otherPlaces
        self._byCallId: dict[str, Transfer] = {}
        self._bySession: dict[tuple[str, int], Transfer] = {}
        self._closed: OrderedDict[tuple[str, int], None] = OrderedDict()
        manager.addApplication(self)

    def transfers(self) -> list[Transfer]:
        """
        The transfers that have not ended.
        """
        return list(self._byCallId.values())

    # -- sending ----------------------------------------------------------------------

    def offer(self, peer: str, name: str, size: int, source: IFileSource, preview: Optional[bytes] = None) -> Transfer:
        """
        Offer a file to C{peer}; the data follows once they accept.

        @raise ValueError: an empty file (papyon and MSNPSharp never
            complete one, P.14.3), a negative size, an empty name, or a
            preview above L{MAX_PREVIEW} bytes (receivers drop it).
        """
        peer = peer.lower()
        if preview is not None and len(preview) > MAX_PREVIEW:
            raise ValueError(f"a preview of {len(preview)} bytes is over the {MAX_PREVIEW}-byte cap")
        if size <= 0:
            raise ValueError("cannot send an empty file" if size == 0 else f"negative size {size}")
        if not name:
            raise ValueError("a file needs a name")
        sessionId = self.manager.newSessionId(peer)
        context = FileContext(name, size, preview).toBase64()
        invite = slp.buildInvite(
            peer, self.account, eufGuid=slp.EUF_FILE, sessionId=sessionId, appId=APP_FILE, context=context,
        )
        transfer = Transfer(self, Direction.SEND, peer, name, size, invite.callId, sessionId)
        transfer._source = source
        self._register(transfer)
        self._arm(transfer, self.answerTimeout)
        self.manager.sendSLP(peer, invite)
        return transfer

    def nextChunk(self, peer: str) -> Optional[tuple[Chunk, Callable[[Optional[Failure]], None]]]:
        running = [t for t in self._byCallId.values()
                   if t.peer == peer and t.direction is Direction.SEND and t.state is TransferState.RUNNING
                   and t._sent < t.total]
        for transfer in running:
            assert transfer._source is not None
            try:
                data = transfer._source.read(min(MAX_CHUNK, transfer.total - transfer._sent))
            except OSError as e:
                self._abort(transfer, TransferError(f"cannot read {transfer.name!r}: {e}"))
                continue
            if data is None:
                continue
            if not data or len(data) > transfer.total - transfer._sent:
                self._abort(transfer, TransferError(
                    f"{transfer.name!r} changed size: {transfer._sent + len(data)} bytes, {transfer.total} offered"))
                continue
            header = Header(transfer.sessionId, transfer._identifier, transfer._sent, transfer.total, len(data),
                            FLAG_FILE_DATA, transfer._ackId)
            transfer._sent += len(data)
            # Fairness between transfers to one peer: the one served goes last.
            self._byCallId[transfer.callId.upper()] = self._byCallId.pop(transfer.callId.upper())
            return Chunk(header, data, APP_FILE), lambda failure, t=transfer, n=len(data): self._chunkSent(t, n, failure)
        return None

    def _chunkSent(self, transfer: Transfer, count: int, failure: Optional[Failure]) -> None:
        if transfer.done:
            return
        if failure is not None:
            self._finish(transfer, TransferInterrupted(f"could not send to {transfer.peer}: {failure.getErrorMessage()}"))
            return
        transfer.bytesDone += count
        self.events.transferProgressed(transfer)
        if transfer.bytesDone >= transfer.total:
            self._arm(transfer, self.completionGrace, lambda: self._finish(transfer))
        else:
            self._arm(transfer, self.transferTimeout)

    def _wake(self, transfer: Transfer) -> None:
        if not transfer.done:
            self.manager.wake(transfer.peer)

    # -- IP2PApplication ----------------------------------------------------------------

    def inviteReceived(self, peer: str, invite: slp.SLPMessage) -> bool:
        if (invite.field("EUF-GUID") or "").upper() != slp.EUF_FILE:
            return False
        sessionId = invite.sessionId
        if not sessionId:
            log.warn("Declining a file INVITE without SessionID from {peer}", peer=peer)
            self.manager.sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return True
        try:
            context = FileContext.fromBase64(invite.field("Context") or "")
        except MalformedFileContext as e:
            log.warn("Declining a file INVITE from {peer}: {reason}", peer=peer, reason=str(e))
            self.manager.sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return True
        if context.size > self.maxFileSize:
            log.warn("Declining a {size}-byte file from {peer}: the cap is {cap}",
                     size=context.size, peer=peer, cap=self.maxFileSize)
            self.manager.sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return True
        if (peer, sessionId) in self._bySession:
            log.warn("Declining a file INVITE from {peer} reusing session {sid}", peer=peer, sid=sessionId)
            self.manager.sendSLP(peer, slp.buildResponse(invite, self.account, 603))
            return True
        transfer = Transfer(self, Direction.RECEIVE, peer, safeFileName(context.name), context.size,
                            invite.callId, sessionId)
        transfer._invite = invite
        self._register(transfer)
        self._arm(transfer, self.offerTimeout, lambda: self._offerTimedOut(transfer))
        self.events.offerReceived(FileOffer(transfer, context.name, context.preview))
        return True

    def slpReceived(self, peer: str, message: slp.SLPMessage) -> bool:
        transfer = self._byCallId.get(message.callId.upper())
        if transfer is None and message.sessionId:
            transfer = self._bySession.get((peer, message.sessionId))
        if transfer is None:
            return message.sessionId is not None and (peer, message.sessionId) in self._closed
        if transfer.peer != peer:
            return False
        if message.method == "INVITE":
            if message.contentType == slp.TRANSPORT_REQUEST:
                self.manager.sendSLP(peer, slp.buildTransportDecline(message, self.account))
        elif message.method == "BYE":
            if transfer.state is TransferState.RUNNING and transfer.bytesDone >= transfer.total:
                self._finish(transfer)
            else:
                self._finish(transfer, TransferCancelled(f"{peer} cancelled the transfer", byPeer=True))
        elif message.method is None and transfer.direction is Direction.SEND and transfer.state is TransferState.OFFERED:
            if message.contentType != slp.SESSION_REQUEST:
                return True
            if message.status == 200:
                transfer.state = TransferState.RUNNING
                transfer._identifier = self.manager.nextIdentifier()
                transfer._ackId = self.manager.newAckId()
                self._arm(transfer, self.transferTimeout)
                assert transfer._source is not None
                transfer._source.start(lambda: self._wake(transfer))
                self.manager.wake(peer)
            else:
                self._finish(transfer, TransferDeclined(message.status or 0, message.reason))
        return True

    def chunkReceived(self, peer: str, chunk: Chunk) -> bool:
        header = chunk.header
        transfer = self._bySession.get((peer, header.sessionId))
        if transfer is None:
            return (peer, header.sessionId) in self._closed
        if header.flags in (FLAG_TLP_ERROR, FLAG_ERROR):
            self._finish(transfer, TransferCancelled(f"{peer} aborted the transfer", byPeer=True))
            return True
        if transfer.direction is Direction.SEND:
            return True  # nothing but ACKs and BYEs comes back
        if header.flags == FLAG_NONE and header.totalSize == 4 and chunk.payload == DATA_PREPARATION:
            self.manager.ack(peer, header)  # papyon sends one before file data too (P.9.2)
            return True
        if header.flags not in DATA_FLAGS:
            log.info("Ignoring a {flags:#x} message in file session {sid} from {peer}",
                     flags=header.flags, sid=header.sessionId, peer=peer)
            return True
        if transfer.state is not TransferState.RUNNING:
            log.warn("Dropping file data from {peer} for an offer not accepted", peer=peer)
            return True
        if header.totalSize != transfer.total:
            log.warn("Refusing {size}-byte data from {peer} for a {total}-byte file",
                     size=header.totalSize, peer=peer, total=transfer.total)
            self._abort(transfer, TransferError(f"{peer} sent {header.totalSize} bytes for a {transfer.total}-byte file"))
            return True
        if transfer._peerIdentifier is None and header.offset == 0:
            transfer._peerIdentifier = header.identifier
        if header.identifier != transfer._peerIdentifier:
            return True  # a second place's stream (P.14.1), or a message never started
        if header.offset < transfer.bytesDone:
            return True  # a repeated chunk
        if header.offset > transfer.bytesDone:
            log.warn("File data from {peer} jumps to {offset} after {done} bytes", peer=peer,
                     offset=header.offset, done=transfer.bytesDone)
            self._abort(transfer, TransferError(f"{peer} sent data at {header.offset} after {transfer.bytesDone} bytes"))
            return True
        assert transfer._sink is not None
        try:
            transfer._sink.write(chunk.payload)
        except OSError as e:
            self._abort(transfer, TransferError(f"cannot write {transfer.name!r}: {e}"))
            return True
        transfer.bytesDone += header.length
        self.events.transferProgressed(transfer)
        if transfer.bytesDone < transfer.total:
            self._arm(transfer, self.transferTimeout)
            return True
        self.manager.ack(peer, header)
        self._sendBye(transfer)
        self._finish(transfer)
        return True

    def ackReceived(self, peer: str, header: Header) -> None:
        transfer = self._bySession.get((peer, header.sessionId)) if header.sessionId else None
        if (transfer is not None and transfer.direction is Direction.SEND and transfer.bytesDone >= transfer.total
                and header.ackSize == transfer.total):
            self._finish(transfer)  # the receiver has everything

    def peerGone(self, peer: str, reason: str) -> None:
        for transfer in [t for t in self._byCallId.values() if not peer or t.peer == peer]:
            self._finish(transfer, TransferInterrupted(reason))

    # -- answering ------------------------------------------------------------------------

    def _accept(self, offer: FileOffer, destination: object) -> "Deferred[Any]":
        transfer = offer.transfer
        if transfer.state is not TransferState.OFFERED:
            return fail(TransferError(f"the offer of {transfer.name!r} was already answered"))
        try:
            sink = destination if IFileSink.providedBy(destination) else self.sinkFor(destination, offer)
        except (OSError, ValueError) as e:
            self._decline(transfer, f"cannot save: {e}")
            return fail(e)
        transfer._sink = sink
        transfer.state = TransferState.RUNNING
        assert transfer._invite is not None
        self.manager.sendSLP(transfer.peer, slp.buildResponse(transfer._invite, self.account, 200))
        done = transfer.whenDone()
        if transfer.total == 0:
            self._sendBye(transfer)
            self._finish(transfer)
        else:
            self._arm(transfer, self.transferTimeout)
        return done

    def _decline(self, transfer: Transfer, why: str) -> None:
        assert transfer._invite is not None
        self.manager.sendSLP(transfer.peer, slp.buildResponse(transfer._invite, self.account, 603))
        self._finish(transfer, TransferDeclined(603, why))

    def _offerTimedOut(self, transfer: Transfer) -> None:
        if self.otherPlaces():
            self._finish(transfer, TransferTimeout("nobody answered the offer here"))
        else:
            self._decline(transfer, "nobody answered the offer in time")

    def _cancel(self, transfer: Transfer) -> None:
        if transfer.done:
            return
        if transfer.state is TransferState.OFFERED and transfer.direction is Direction.RECEIVE:
            assert transfer._invite is not None
            self.manager.sendSLP(transfer.peer, slp.buildResponse(transfer._invite, self.account, 603))
        else:
            self._sendBye(transfer)
        self._finish(transfer, TransferCancelled("cancelled", byPeer=False))

    # -- bookkeeping ----------------------------------------------------------------------

    def _register(self, transfer: Transfer) -> None:
        self._byCallId[transfer.callId.upper()] = transfer
        self._bySession[(transfer.peer, transfer.sessionId)] = transfer

    def _arm(self, transfer: Transfer, seconds: float, action: Optional[Callable[[], None]] = None) -> None:
        if transfer._timer is not None and transfer._timer.active():
            transfer._timer.cancel()
        transfer._timer = self.clock.callLater(seconds, action or (lambda: self._timedOut(transfer)))

    def _timedOut(self, transfer: Transfer) -> None:
        waited = "an answer" if transfer.state is TransferState.OFFERED else "progress"
        self._abort(transfer, TransferTimeout(f"no {waited} from {transfer.peer} in time"))

    def _sendBye(self, transfer: Transfer) -> None:
        self.manager.sendSLP(transfer.peer, slp.buildBye(transfer.peer, self.account, transfer.callId, transfer.sessionId))

    def _abort(self, transfer: Transfer, error: TransferError) -> None:
        self._sendBye(transfer)
        self._finish(transfer, error)

    def _finish(self, transfer: Transfer, error: Optional[TransferError] = None) -> None:
        if transfer.done:
            return
        if transfer._timer is not None and transfer._timer.active():
            transfer._timer.cancel()
        transfer._timer = None
        self._byCallId.pop(transfer.callId.upper(), None)
        self._bySession.pop((transfer.peer, transfer.sessionId), None)
        self._closed[(transfer.peer, transfer.sessionId)] = None
        while len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)
        if transfer._source is not None:
            transfer._source.close()
        if error is None and transfer._sink is not None:
            try:
                transfer.result = transfer._sink.finish()
            except OSError as e:
                error = TransferError(f"cannot complete {transfer.name!r}: {e}")
        if error is not None and transfer._sink is not None:
            transfer._sink.abort()
        transfer.error = error
        transfer.state = TransferState.FAILED if error is not None else TransferState.DONE
        waiters, transfer._waiters = transfer._waiters, []
        for waiter in waiters:
            if error is not None:
                waiter.errback(Failure(error))
            else:
                waiter.callback(transfer.result)
        self.events.transferEnded(transfer)


__all__ = [
    "Direction",
    "FileOffer",
    "FileSessions",
    "IFileEvents",
    "IFileSink",
    "IFileSource",
    "Transfer",
    "TransferState",
]
