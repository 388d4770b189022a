# -*- test-case-name: test.test_filetransfer -*-
"""
File transfer for a session: the glue between L{msnp.p2p.files} and the
session's conversations, files and observer.

L{msnp.p2p.files.FileSessions} speaks the protocol and knows nothing of
disks; this module supplies what it reads from and writes to, and turns
its callbacks into observer events:

  - sources (L{openSource}): a path or a binary file object is read one
    chunk at a time when the switchboard is ready for it; an
    C{IBodyProducer}-like object (C{length}, C{startProducing(consumer)})
    writes into a bounded buffer and is paused above L{HIGH_WATER} bytes,
    so memory stays flat whatever the file's size;
  - sinks (L{openSink}): a directory (the offer's sanitised name, never
    overwriting: C{name (1).ext} and so on), a file path (likewise never
    overwritten), or an C{IConsumer}; a failed transfer removes its
    partial file;
  - events: C{fileOfferReceived}, C{transferProgress} (at most one per
    C{progressInterval} per transfer, on the session's clock, and one at
    the end) and C{transferEnded}.

Decisions and their reasons: docs/p2p.md, "File transfer".
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from twisted.internet.interfaces import IConsumer, IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.conversation import IFileSender
from msnp.interfaces import notifyObserver
from msnp.p2p.application import IFileEvents, IFileSink, IFileSource
from msnp.p2p.filecontext import safeFileName
from msnp.p2p.files import MAX_FILE_SIZE, OFFER_TIMEOUT, FileOffer, FileSessions, Transfer

log = Logger()

#: Bytes a streaming producer may get ahead of the switchboard before it
#: is paused, and the level below which it is resumed.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
#: Seconds between two C{transferProgress} events of one transfer.
PROGRESS_INTERVAL = 0.25
#: How many C{name (n).ext} variants are tried before giving up.
FREE_NAME_ATTEMPTS = 1000


@implementer(IFileSource)
class FileObjectSource:
    """
    Reads a binary file object as the transfer asks, C{count} bytes at a
    time (reads from a local disk are short enough not to block for long).

    @param closeWhenDone: close the file at the end (we opened it).
    """

    def __init__(self, fileObject: Any, closeWhenDone: bool = False) -> None:
        self._file = fileObject
        self._closeWhenDone = closeWhenDone

    def start(self, wake: Callable[[], None]) -> None:
        pass

    def read(self, count: int) -> Optional[bytes]:
        data = self._file.read(count)
        return bytes(data) if data is not None else None

    def close(self) -> None:
        if self._closeWhenDone:
            self._file.close()


@implementer(IFileSource, IConsumer)
class ProducerSource:
    """
    Adapts a push producer (C{IBodyProducer}: C{startProducing(consumer)}
    returning a L{Deferred <twisted.internet.defer.Deferred>}, C{pauseProducing}, C{resumeProducing},
    C{stopProducing}) to the pull of a transfer, with a buffer of at most
    about L{HIGH_WATER} bytes: above it the producer is paused, below
    L{LOW_WATER} it is resumed.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._buffer = bytearray()
        self._paused = False
        self._finished = False
        self._closed = False
        self._wake: Callable[[], None] = lambda: None
        self.peakBuffered = 0

    def start(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        d = self._producer.startProducing(self)

        def ended(result: object) -> None:
            self._finished = True
            if isinstance(result, Failure) and not self._closed:
                log.warn("File producer failed: {why}", why=result.getErrorMessage())
            self._wake()

        d.addBoth(ended)

    # IConsumer: what the producer writes into.
    def write(self, data: bytes) -> None:
        self._buffer += data
        self.peakBuffered = max(self.peakBuffered, len(self._buffer))
        if len(self._buffer) > HIGH_WATER and not self._paused:
            self._paused = True
            self._producer.pauseProducing()
        self._wake()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def read(self, count: int) -> Optional[bytes]:
        if not self._buffer:
            return b"" if self._finished else None
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        if self._paused and len(self._buffer) < LOW_WATER:
            self._paused = False
            self._producer.resumeProducing()
        return data

    def close(self) -> None:
        self._closed = True
        self._buffer.clear()
        if not self._finished:
            self._finished = True
            try:
                self._producer.stopProducing()
            except Exception:
                log.failure("stopping a file producer")


def openSource(source: Any, size: Optional[int] = None) -> tuple[IFileSource, int]:
    """
    What L{msnp.conversation.Conversation.sendFile} reads from, and the
    size to announce.

    @param source: a path (C{str} or C{os.PathLike}), a binary file
        object (C{read}), or a producer with C{length} and
        C{startProducing}.
    @param size: the size, when the source cannot tell (a pipe, a
        producer of unknown length); else it is taken from the file.
    @raise ValueError: no size could be found, or C{source} is none of
        these.
    @raise OSError: the path cannot be opened.
    """
    if isinstance(source, (str, os.PathLike)):
        handle = open(source, "rb")
        return FileObjectSource(handle, closeWhenDone=True), size if size is not None else os.fstat(handle.fileno()).st_size
    if hasattr(source, "startProducing"):
        length = getattr(source, "length", None)
        if size is None:
            size = length if isinstance(length, int) and length >= 0 else None
        if size is None:
            raise ValueError("a producer of unknown length needs size=")
        return ProducerSource(source), size
    if hasattr(source, "read"):
        if size is None:
            try:
                size = os.fstat(source.fileno()).st_size - source.tell()
            except (AttributeError, OSError, ValueError):
                try:
                    here = source.tell()
                    size = source.seek(0, os.SEEK_END) - here
                    source.seek(here)
                except (AttributeError, OSError, ValueError):
                    raise ValueError("cannot tell the size of this file object; pass size=") from None
        return FileObjectSource(source), size
    raise ValueError(f"cannot send from {type(source).__name__}: give a path, a binary file or a producer")


@implementer(IFileSink)
class FileSink:
    """
    Writes into a file created for this transfer (never one that existed);
    removes it if the transfer fails.

    @ivar path: the file being written.
    """

    def __init__(self, path: str, handle: Any) -> None:
        self.path = path
        self._handle = handle

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def finish(self) -> object:
        self._handle.close()
        return self.path

    def abort(self) -> None:
        self._handle.close()
        try:
            os.remove(self.path)
        except OSError as e:
            log.warn("Cannot remove the partial file {path}: {error}", path=self.path, error=str(e))


@implementer(IFileSink)
class ConsumerSink:
    """
    Writes into an C{IConsumer}; L{finish} returns the consumer.
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def write(self, data: bytes) -> None:
        self.consumer.write(data)

    def finish(self) -> object:
        return self.consumer

    def abort(self) -> None:
        pass


def createFree(directory: str, name: str) -> tuple[str, Any]:
    """
    Create a new file for C{name} in C{directory}: C{name}, else C{stem
    (1).ext}, C{stem (2).ext}, ... (created exclusively, so an existing
    file is never overwritten, even by a race).

    @return: the path and the open binary file.
    @raise OSError: no free name among L{FREE_NAME_ATTEMPTS}, or the
        directory is not writable.
    """
    stem, extension = os.path.splitext(name)
    for attempt in range(FREE_NAME_ATTEMPTS):
        candidate = name if attempt == 0 else f"{stem} ({attempt}){extension}"
        path = os.path.join(directory, candidate)
        try:
            return path, open(path, "xb")
        except FileExistsError:
            continue
    raise OSError(f"no free name for {name!r} in {directory}")


def openSink(destination: object, offer: FileOffer) -> IFileSink:
    """
    The sink L{FileOffer.accept} writes into.

    @param destination: a directory (the file is saved there under the
        offer's sanitised name), a file path (its directory must exist;
        when the file exists a free variant of the name is used), or an
        C{IConsumer} (anything with C{write}).
    @raise OSError: the file cannot be created.
    @raise ValueError: C{destination} is none of these.
    """
    if isinstance(destination, (str, os.PathLike)):
        path = os.fspath(destination)
        if os.path.isdir(path):
            name = safeFileName(offer.name)
            directory = os.path.realpath(path)
            written, handle = createFree(directory, name)
            if os.path.dirname(os.path.realpath(written)) != directory:  # belt and braces
                handle.close()
                os.remove(written)
                raise ValueError(f"refusing to write {name!r} outside {directory}")
            return FileSink(written, handle)
        directory, name = os.path.split(os.path.abspath(path))
        return FileSink(*createFree(directory, name))
    if IConsumer.providedBy(destination) or hasattr(destination, "write"):
        return ConsumerSink(destination)
    raise ValueError(f"cannot save into {type(destination).__name__}: give a directory, a path or a consumer")


@implementer(IFileEvents, IFileSender)
class FileTransfers:
    """
    The file transfers of one session: L{sendFile} for
    L{msnp.conversation.Conversation.sendFile}, and the observer events.

    @param manager: the session's L{msnp.p2p.session.P2PManager}.
    @param observer: the session's observer.
    @param session: passed first in every event.
    @param clock: the session's clock (timeouts, progress rate).
    @param conversationOf: the conversation a peer's P2P last came
        through, for C{fileOfferReceived}.
    @ivar sessions: the protocol side, L{msnp.p2p.files.FileSessions};
        its C{maxFileSize} and C{offerTimeout} may be changed at any time.
    """

    def __init__(
        self,
        manager: Any,
        observer: Any,
        session: Any,
        clock: IReactorTime,
        conversationOf: Callable[[str], Any] = lambda peer: None,
        *,
        maxFileSize: int = MAX_FILE_SIZE,
        offerTimeout: float = OFFER_TIMEOUT,
        progressInterval: float = PROGRESS_INTERVAL,
        otherPlaces: Callable[[], bool] = lambda: False,
        **options: Any,
    ) -> None:
        self.observer = observer
        self.session = session
        self.clock = clock
        self.conversationOf = conversationOf
        self.progressInterval = progressInterval
        self.sessions = FileSessions(
            manager, clock, self, openSink, maxFileSize=maxFileSize, offerTimeout=offerTimeout,
            otherPlaces=otherPlaces, **options,
        )
        self._lastShown: dict[Transfer, tuple[float, int]] = {}
        self._pending: dict[Transfer, IDelayedCall] = {}

    def sendFile(self, conversation: Any, name: str, source: Any, size: Optional[int] = None,
                 preview: Optional[bytes] = None) -> Transfer:
        """
        Offer a file in a one-to-one C{conversation}; see
        L{msnp.conversation.Conversation.sendFile}.
        """
        people = set(conversation.participants) | set(conversation.contacts)
        if len(people) != 1:
            raise ValueError("files go to one contact: use a one-to-one conversation")
        reader, total = openSource(source, size)
        try:
            return self.sessions.offer(next(iter(people)), name, total, reader, preview)
        except ValueError:
            reader.close()
            raise

    # -- IFileEvents --------------------------------------------------------------------

    def offerReceived(self, offer: FileOffer) -> None:
        notifyObserver(self.observer, "fileOfferReceived", self.session, self.conversationOf(offer.sender), offer)

    def transferProgressed(self, transfer: Transfer) -> None:
        if transfer in self._pending:
            return
        now = self.clock.seconds()
        last = self._lastShown.get(transfer)
        if last is None or now - last[0] >= self.progressInterval:
            self._show(transfer)
        else:
            self._pending[transfer] = self.clock.callLater(last[0] + self.progressInterval - now, self._show, transfer)

    def transferEnded(self, transfer: Transfer) -> None:
        pending = self._pending.pop(transfer, None)
        if pending is not None and pending.active():
            pending.cancel()
        last = self._lastShown.pop(transfer, None)
        if transfer.bytesDone and (last is None or last[1] != transfer.bytesDone):
            notifyObserver(self.observer, "transferProgress", self.session, transfer)
        notifyObserver(self.observer, "transferEnded", self.session, transfer)

    def _show(self, transfer: Transfer) -> None:
        self._pending.pop(transfer, None)
        if transfer.done:
            return
        self._lastShown[transfer] = (self.clock.seconds(), transfer.bytesDone)
        notifyObserver(self.observer, "transferProgress", self.session, transfer)

    def close(self) -> None:
        """
        The session ended: every transfer fails with
        L{msnp.p2p.errors.TransferInterrupted} (through the manager).
        """
        self.sessions.peerGone("", "signed out")
