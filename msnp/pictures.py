# -*- test-case-name: test.test_pictures -*-
"""
Display pictures for a session: the glue between L{msnp.p2p.P2PManager}
and the conversations.

L{DisplayPictures} is the session's P2P side. It is, at once:
  - the manager's L{IP2PTransport}: a payload for a peer goes out as
    C{MSG trid D len} through the one-to-one L{msnp.conversation.Conversation}
    with that peer (opened when needed, shared with the texts, whose queue
    it waits in, so a picture never holds a text back by more than one
    chunk);
  - the manager's L{IObjectSource}: it serves the one picture the session
    publishes, to every contact who asks;
  - the conversations' L{msnp.conversationlink.IP2PReceiver}: every
    C{application/x-msnmsgrp2p} payload goes to the manager, and a closed
    one-to-one switchboard fails that peer's running fetches with
    L{msnp.p2p.errors.TransferInterrupted} (the next fetch opens a new one);
  - a cache in front of the fetches (L{PictureCache}): by SHA1D in memory,
    bounded, and optionally in a directory, so a bot restarted with the same
    directory never fetches the same picture twice.

L{msnp.session.Session.setDisplayPicture} and
L{msnp.session.Session.fetchDisplayPicture} are the public face; this module
holds the logic so the session stays a list of small methods.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.conversation import Conversation
from msnp.conversationlink import IP2PReceiver
from msnp.p2p.errors import TransferError
from msnp.p2p.msnobject import TYPE_DISPLAY_PICTURE, MSNObject, friendlyName
from msnp.p2p.session import MAX_OBJECT_SIZE, IObjectSource, IP2PTransport, P2PManager

log = Logger()

#: The largest picture L{msnp.session.Session.setDisplayPicture} accepts
#: (bytes). WLM 2009 scales pictures to 96x96 and sends a few KB; 256 KiB
#: leaves room for large PNGs while keeping a transfer to a few hundred
#: switchboard messages.
MAX_PICTURE_SIZE = 256 * 1024
#: How many bytes of fetched pictures the memory cache keeps.
MEMORY_CACHE_BYTES = 16 * 1024 * 1024

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


class NoDisplayPicture(TransferError):
    """
    The contact has announced no display picture (or none that parses), so
    there is nothing to fetch.
    """



def pictureMimeType(data: bytes) -> str:
    """
    The MIME type the storage service records for a picture that passed
    L{checkPicture}: it is either PNG or JPEG.
    """
    return "image/jpeg" if bytes(data[:3]) == _JPEG else "image/png"


def checkPicture(data: bytes, maxSize: int = MAX_PICTURE_SIZE) -> None:
    """
    Refuse what cannot be published as a display picture.

    @raise ValueError: not bytes, empty, over C{maxSize}, or neither PNG
        nor JPEG (by their signatures).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"a display picture is bytes, not {type(data).__name__}")
    if not data:
        raise ValueError("a display picture cannot be empty; use None to clear it")
    if len(data) > maxSize:
        raise ValueError(f"display picture of {len(data)} bytes is over the {maxSize}-byte cap")
    if not (data.startswith(_PNG) or data.startswith(_JPEG)):
        raise ValueError("a display picture must be PNG or JPEG data")


def pictureObject(account: str, data: bytes, name: str = "") -> MSNObject:
    """
    The MSN object (type 3) naming C{data} as C{account}'s picture.
    """
    if not name:
        return MSNObject.fromData(account, bytes(data), TYPE_DISPLAY_PICTURE)
    return MSNObject.fromData(account, bytes(data), TYPE_DISPLAY_PICTURE, friendly=friendlyName(name))


class PictureCache:
    """
    Fetched pictures by SHA1D: in memory (least recently used dropped past
    C{memoryBytes}) and, with a C{directory}, on disk, one file per SHA1D.

    Whatever is read back (from memory or disk) is checked against its
    SHA1D, so a corrupted or tampered file is ignored, never handed out.
    Disk errors are logged and make the cache behave as if empty.
    """

    def __init__(self, directory: Optional[str] = None, memoryBytes: int = MEMORY_CACHE_BYTES) -> None:
        self.directory = directory
        self.memoryBytes = memoryBytes
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        if directory is not None:
            os.makedirs(directory, exist_ok=True)

    def __repr__(self) -> str:
        return f"<PictureCache {len(self._memory)} in memory, directory={self.directory!r}>"

    def _path(self, sha1d: str) -> Optional[str]:
        try:
            digest = base64.b64decode(sha1d, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(digest) != 20 or self.directory is None:
            return None
        return os.path.join(self.directory, digest.hex() + ".picture")

    def get(self, sha1d: str) -> Optional[bytes]:
        """
        The bytes whose base64 SHA-1 is C{sha1d}, or L{None}.
        """
        data = self._memory.get(sha1d)
        if data is not None:
            self._memory.move_to_end(sha1d)
            return data
        path = self._path(sha1d)
        if path is None or not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_OBJECT_SIZE + 1)
        except OSError as e:
            log.warn("Cannot read cached picture {path}: {error}", path=path, error=str(e))
            return None
        if _sha1(data) != sha1d:
            log.warn("Ignoring cached picture {path}: its content does not match its name", path=path)
            return None
        self._remember(sha1d, data)
        return data

    def put(self, sha1d: str, data: bytes) -> None:
        """
        Keep C{data} (whose SHA1D the caller checked) under C{sha1d}.
        """
        if _sha1(data) != sha1d:
            raise ValueError("data does not match its SHA1D")
        self._remember(sha1d, data)
        path = self._path(sha1d)
        if path is None or os.path.exists(path):
            return
        assert self.directory is not None
        try:
            fd, temporary = tempfile.mkstemp(dir=self.directory, suffix=".partial")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temporary, path)
        except OSError as e:
            log.warn("Cannot write cached picture {path}: {error}", path=path, error=str(e))

    def _remember(self, sha1d: str, data: bytes) -> None:
        if sha1d in self._memory:
            self._memory.move_to_end(sha1d)
            return
        self._memory[sha1d] = data
        self._size += len(data)
        while self._size > self.memoryBytes and len(self._memory) > 1:
            _, dropped = self._memory.popitem(last=False)
            self._size -= len(dropped)


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


@implementer(IP2PTransport, IObjectSource, IP2PReceiver)
class DisplayPictures:
    """
    The display pictures of one session: the one it publishes and serves,
    and the contacts' it fetches (through the cache).

    @param account: the session's account.
    @param openConversation: the session's
        L{msnp.conversation.ConversationManager.openConversation}.
    @param clock: for the P2P timeouts.
    @param cache: where fetched pictures are kept (shared across the
        sessions of one L{msnp.client.MSNClient}, so reconnects keep it).
    @param otherPlaces: whether the account is signed in somewhere else
        too; then requests for objects we lack stay unanswered, since
        another place of ours may hold them (MSNP18-p2p.md P.14.1).
    @param sources: further objects to serve, asked in turn after our
        picture (L{msnp.emoticons.RichContent}: emoticons, winks, clips).
    @ivar fetchCount: fetches that went to the network (not the cache).
    @ivar servedCount: requests for our picture answered with its data.
    """

    def __init__(
        self,
        account: str,
        openConversation: Callable[[str], "Deferred[Conversation]"],
        clock: IReactorTime,
        cache: Optional[PictureCache] = None,
        otherPlaces: Callable[[], bool] = lambda: False,
        maxObjectSize: int = MAX_OBJECT_SIZE,
        sources: Sequence[IObjectSource] = (),
        **managerOptions: Any,
    ) -> None:
        self.account = account.lower()
        self.sources = list(sources)
        self._openConversation = openConversation
        self.cache = cache if cache is not None else PictureCache()
        self._otherPlaces = otherPlaces
        self.manager = P2PManager(
            self.account, self, self, clock, maxObjectSize=maxObjectSize, declineUnknown=True,
            **managerOptions,
        )
        self._published: Optional[tuple[MSNObject, bytes]] = None
        self._running: dict[tuple[str, str], list[Deferred[bytes]]] = {}
        self.fetchCount = 0
        self.servedCount = 0
        #: The conversation each peer's P2P last came through (file
        #: offers name it in their event).
        self.lastConversation: dict[str, Conversation] = {}

    def __repr__(self) -> str:
        state = self._published[0].sha1d if self._published else "none"
        return f"<DisplayPictures of {self.account}: published {state}>"

    # -- our picture ----------------------------------------------------------------

    @property
    def published(self) -> Optional[MSNObject]:
        """
        The object of the picture being served, or L{None}.
        """
        return self._published[0] if self._published else None

    def publish(self, data: Optional[bytes], maxSize: int = MAX_PICTURE_SIZE) -> Optional[MSNObject]:
        """
        Serve C{data} from now on (L{None}: serve nothing).

        @return: its MSN object, to announce in C{CHG}.
        @raise ValueError: see L{checkPicture}; nothing changes then.
        """
        if data is None:
            self._published = None
            return None
        checkPicture(data, maxSize)
        obj = pictureObject(self.account, data)
        self._published = (obj, bytes(data))
        return obj

    def objectData(self, requested: MSNObject) -> Optional[bytes]:
        published = self._published
        if published is not None:
            obj, data = published
            if requested.sha1d == obj.sha1d and requested.type == obj.type:
                self.servedCount += 1
                return data
        for source in self.sources:
            found = source.objectData(requested)
            if found is not None:
                return found
        return None

    # -- their pictures ---------------------------------------------------------------

    def fetch(self, obj: MSNObject) -> "Deferred[bytes]":
        """
        The bytes of C{obj}: from the cache, else over P2P from its Creator
        (one transfer for any number of callers asking at once). Any type
        of object: pictures, emoticons, winks and voice clips share the
        cache, keyed by SHA1D.

        @return: fires with bytes whose SHA1D is C{obj}'s, or fails with a
            L{TransferError}.
        """
        cached = self.cache.get(obj.sha1d)
        if cached is not None and len(cached) == obj.size:
            return succeed(cached)
        key = (obj.creator.lower(), obj.sha1d)
        waiters = self._running.get(key)
        if waiters is None:
            waiters = self._running[key] = []
            self.fetchCount += 1
            self.manager.fetchObject(obj).addBoth(self._fetched, key, obj)

        def cancel(d: Deferred[bytes]) -> None:
            if d in waiters:
                waiters.remove(d)

        waiter: Deferred[bytes] = Deferred(cancel)
        waiters.append(waiter)
        return waiter

    def _fetched(self, result: object, key: tuple[str, str], obj: MSNObject) -> None:
        waiters = self._running.pop(key, [])
        if isinstance(result, bytes):
            self.cache.put(obj.sha1d, result)
        elif isinstance(result, Failure):
            log.info("Fetching a type {type} object of {peer} failed: {why}", type=obj.type, peer=obj.creator,
                     why=result.getErrorMessage())
        for waiter in waiters:
            if isinstance(result, bytes):
                waiter.callback(result)
            else:
                waiter.errback(result if isinstance(result, Failure) else Failure(TransferError(repr(result))))

    # -- IP2PTransport -------------------------------------------------------------

    def sendP2P(self, peer: str, payload: bytes) -> "Deferred[Any]":
        d = self._openConversation(peer)
        return d.addCallback(lambda conversation: conversation.sendP2P(payload))

    # -- IP2PReceiver ----------------------------------------------------------------

    def p2pReceived(self, conversation: Conversation, sender: str, payload: bytes) -> None:
        self.manager.declineUnknown = not self._otherPlaces()
        self.lastConversation[sender.lower()] = conversation
        self.manager.payloadReceived(sender, payload)

    def p2pSwitchboardClosed(self, conversation: Conversation, peers: frozenset[str]) -> None:
        # Only the one-to-one switchboard carries our P2P with a peer; a
        # group's closing changes nothing for it.
        for peer in peers:
            if conversation.contacts == {peer}:
                self.lastConversation.pop(peer, None)
                self.manager.peerGone(peer)

    def close(self) -> None:
        """
        The session ended: fail every running fetch, serve nothing more.
        """
        self.manager.close()
        for key in list(self._running):
            for waiter in self._running.pop(key, []):
                waiter.errback(Failure(TransferError("the session ended")))
