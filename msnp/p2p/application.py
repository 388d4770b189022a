# -*- test-case-name: test.test_p2p_files -*-
"""
The seams of the P2P applications other than MSN objects (file transfer,
L{msnp.p2p.files}): between them and L{msnp.p2p.session.P2PManager}
(L{IP2PApplication}), and between the file sessions and what they read,
write and report to (L{IFileSource}, L{IFileSink}, L{IFileEvents}).

The manager keeps the transport: identifiers, ACKs, the per-peer outboxes
and their pacing (one payload per peer at a time, control before data).
An application sees only what the object sessions do not own and hands
its data chunks over one at a time when an outbox is idle, so a file is
read as it is sent, never queued whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from twisted.python.failure import Failure
from zope.interface import Interface

from msnp.p2p import slp
from msnp.p2p.transport import Chunk, Header

if TYPE_CHECKING:
    from msnp.p2p.files import FileOffer, Transfer


class IP2PApplication(Interface):
    """
    Another P2P application (file transfer) riding on a L{P2PManager}: it
    gets what the object sessions do not own and may hand data chunks to
    the manager's outboxes when they are idle, so it streams without
    queueing a whole file (L{P2PManager.addApplication}).
    """

    def inviteReceived(peer: str, invite: slp.SLPMessage) -> bool:
        """
        An INVITE (already acknowledged) with an unknown Call-ID and an
        EUF-GUID other than MSN objects; L{True} if the application took it.
        """

    def slpReceived(peer: str, message: slp.SLPMessage) -> bool:
        """
        Any other SLP message; L{True} (it will be acknowledged) if its
        Call-ID belongs to the application.
        """

    def chunkReceived(peer: str, chunk: Chunk) -> bool:
        """
        A non-ACK chunk for a SessionID the object sessions do not know;
        L{True} if the application owns the session.
        """

    def ackReceived(peer: str, header: Header) -> None:
        """
        An ACK from C{peer}.
        """

    def nextChunk(peer: str) -> Optional[tuple[Chunk, Callable[[Optional[Failure]], None]]]:
        """
        The next data chunk for C{peer} and what to call once it was sent
        (with the failure, or L{None}); L{None} when there is nothing now
        (call L{P2PManager.wake} later).
        """

    def peerGone(peer: str, reason: str) -> None:
        """
        The path to C{peer} closed (L{P2PManager.peerGone}).
        """


class IFileSource(Interface):
    """
    Where a sent file's bytes come from, pulled one chunk at a time.
    """

    def start(wake: Callable[[], None]) -> None:
        """
        The peer accepted: reading begins. A source that answered L{read}
        with L{None} calls C{wake} once it has bytes again.
        """

    def read(count: int) -> Optional[bytes]:
        """
        Up to C{count} bytes (never more), L{None} when none are ready yet,
        C{b""} when the source ended.
        """

    def close() -> None:
        """
        The transfer ended (either way): release the file or producer.
        """


class IFileSink(Interface):
    """
    Where a received file's bytes go, in order.
    """

    def write(data: bytes) -> None:
        """
        The next bytes; raising L{OSError} fails the transfer.
        """

    def finish() -> object:
        """
        All bytes were written; the result (a path, the consumer) is what
        the accepting Deferred fires with.
        """

    def abort() -> None:
        """
        The transfer failed: drop what was written.
        """


class IFileEvents(Interface):
    """
    What L{FileSessions} tells its owner (L{msnp.filetransfer.FileTransfers}).
    """

    def offerReceived(offer: "FileOffer") -> None:
        """
        A peer offers a file; answer with L{msnp.p2p.files.FileOffer.accept} or
        L{msnp.p2p.files.FileOffer.decline}.
        """

    def transferProgressed(transfer: "Transfer") -> None:
        """
        C{transfer.bytesDone} grew (called for every chunk: rate-limit).
        """

    def transferEnded(transfer: "Transfer") -> None:
        """
        C{transfer} ended; C{transfer.error} says how.
        """
