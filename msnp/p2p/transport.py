# -*- test-case-name: test.test_p2p_transport -*-
"""
The MSNP2P version 1 transport codec: switchboard payloads to chunks and back.

A P2P message travels inside a switchboard C{MSG ... D} payload: MIME
headers (C{Content-Type: application/x-msnmsgrp2p}, C{P2P-Dest}), then a
48-byte little-endian binary header (nine fields, f1...f9), at most
L{MAX_CHUNK} payload bytes and a 4-byte big-endian footer carrying the
application id (MSNP18-p2p.md P.2, P.3). A transport message longer than
one chunk is split into chunks that share f1, f2, f4, f6 and f7, and
reassembled by offset and total size (P.3.5).

Everything here is pure: bytes in, values out, no clock and no sockets.
Version 2 messages (an endpoint id after C{;} in C{P2P-Dest} or
C{P2P-Src}, P.13) raise L{P2PVersion2} before their binary part is read,
so they are never misparsed with the version 1 layout.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Optional

from msnp.p2p.errors import MalformedP2P, P2PVersion2

#: The Content-Type of P2P switchboard messages.
CONTENT_TYPE = "application/x-msnmsgrp2p"
#: The largest chunk payload on a switchboard (pidgin, MSNPSharp; P.2.2).
MAX_CHUNK = 1202
#: The binary header: f1 f2 (u32) f3 f4 (u64) f5 f6 f7 f8 (u32) f9 (u64).
HEADER = struct.Struct("<IIQQIIIIQ")
#: The application id footer (big endian).
FOOTER = struct.Struct(">I")
HEADER_SIZE = HEADER.size  # 48

#: f6 values (P.3.3).
FLAG_NONE = 0x0
FLAG_SLP_INFO = 0x01000000
FLAG_NAK = 0x1
FLAG_ACK = 0x2
FLAG_WAITING = 0x4
FLAG_ERROR = 0x8
FLAG_DATA = 0x20
FLAG_OBJECT_DATA = 0x01000020
FLAG_FILE_DATA = 0x01000030
FLAG_CLOSE = 0x40
FLAG_TLP_ERROR = 0x80
FLAG_DC_HANDSHAKE = 0x100

DATA_FLAGS = frozenset({FLAG_DATA, FLAG_OBJECT_DATA, FLAG_FILE_DATA})
SLP_FLAGS = frozenset({FLAG_NONE, FLAG_SLP_INFO})

#: Footer application ids (P.1, P.3.2).
APP_NONE = 0
APP_OBJECT_OLD = 1
APP_FILE = 2
APP_EMOTICON = 11
APP_DISPLAY_PICTURE = 12

#: The four-byte body of a data preparation message (P.7.2).
DATA_PREPARATION = b"\0\0\0\0"


class Kind(enum.Enum):
    """
    What a complete transport message is, from f1, f4, f6 and its payload
    (the classification of P.3.3).
    """

    ACK = "ack"
    SLP = "slp"
    DATA_PREPARATION = "data-preparation"
    DATA = "data"
    CLOSE = "close"
    ABORT = "abort"
    OTHER = "other"


@dataclass(frozen=True)
class Header:
    """
    The nine fields of the version 1 binary header (P.3.1).

    @ivar sessionId: f1, 0 for MSNSLP, else the SessionID of the data.
    @ivar identifier: f2, the same in every chunk of one message.
    @ivar offset: f3, where this chunk's payload starts in the message.
    @ivar totalSize: f4, the size of the whole message.
    @ivar length: f5, the payload bytes in this chunk.
    @ivar flags: f6.
    @ivar ackId: f7; random and nonzero in a normal message, the
        acknowledged f2 in an ACK.
    @ivar ackSubId: f8; 0, or the acknowledged f7 in an ACK.
    @ivar ackSize: f9; 0, or the acknowledged f4 in an ACK.
    """

    sessionId: int = 0
    identifier: int = 0
    offset: int = 0
    totalSize: int = 0
    length: int = 0
    flags: int = 0
    ackId: int = 0
    ackSubId: int = 0
    ackSize: int = 0

    def pack(self) -> bytes:
        """
        The 48 header bytes.

        @raise ValueError: a field does not fit its width.
        """
        try:
            return HEADER.pack(
                self.sessionId, self.identifier, self.offset, self.totalSize, self.length,
                self.flags, self.ackId, self.ackSubId, self.ackSize,
            )
        except struct.error as e:
            raise ValueError(f"P2P header field out of range: {e}") from None

    @classmethod
    def unpack(cls, data: bytes) -> "Header":
        """
        Read the first 48 bytes of C{data}.

        @raise MalformedP2P: fewer than 48 bytes.
        """
        if len(data) < HEADER_SIZE:
            raise MalformedP2P(f"P2P binary part of {len(data)} bytes is shorter than its header")
        return cls(*HEADER.unpack_from(data))

    @property
    def isAck(self) -> bool:
        return bool(self.flags & FLAG_ACK)


@dataclass(frozen=True)
class Chunk:
    """
    One chunk: a header, its payload and the footer's application id.
    """

    header: Header
    payload: bytes = b""
    appId: int = APP_NONE

    def encode(self) -> bytes:
        """
        The binary part of a switchboard P2P message.
        """
        return self.header.pack() + self.payload + FOOTER.pack(self.appId)

    @classmethod
    def decode(cls, data: bytes) -> "Chunk":
        """
        Read header, payload and footer, checking f5 against the bytes and
        the chunk against its message (P.3.5 step 2).

        @raise MalformedP2P: too short, f5 disagrees with the payload, or
            the chunk lies outside its message.
        """
        if len(data) < HEADER_SIZE + FOOTER.size:
            raise MalformedP2P(f"P2P binary part of {len(data)} bytes is too short")
        header = Header.unpack(data)
        payload = data[HEADER_SIZE : len(data) - FOOTER.size]
        (appId,) = FOOTER.unpack_from(data, len(data) - FOOTER.size)
        if header.length != len(payload):
            raise MalformedP2P(f"P2P chunk announces {header.length} bytes but carries {len(payload)}")
        if not header.isAck and header.offset + header.length > header.totalSize:
            raise MalformedP2P(
                f"P2P chunk at {header.offset}+{header.length} outside its {header.totalSize}-byte message"
            )
        return cls(header, payload, appId)


def classify(header: Header, payload: bytes) -> Kind:
    """
    What a complete message with this header and payload is (P.3.3).
    """
    if header.isAck:
        return Kind.ACK
    flags = header.flags
    if flags in DATA_FLAGS:
        return Kind.DATA
    if flags in (FLAG_TLP_ERROR, FLAG_ERROR):
        return Kind.ABORT
    if flags == FLAG_CLOSE:
        return Kind.CLOSE
    if header.sessionId == 0 and flags in SLP_FLAGS:
        return Kind.SLP
    if flags == FLAG_NONE and header.totalSize == 4 and payload == DATA_PREPARATION:
        return Kind.DATA_PREPARATION
    return Kind.OTHER


def splitMessage(
    payload: bytes,
    *,
    sessionId: int,
    identifier: int,
    flags: int,
    ackId: int,
    appId: int = APP_NONE,
    maxChunk: int = MAX_CHUNK,
) -> list[Chunk]:
    """
    The chunks of one transport message, in order: f3 advances, f5 =
    min(C{maxChunk}, f4 - f3), everything else repeats (P.3.5). An empty
    message is one chunk with f4 = f5 = 0.

    @raise ValueError: C{ackId} is 0 (MSNPSharp then misses our ACKs,
        P.3.4) or C{maxChunk} is not positive.
    """
    if ackId == 0:
        raise ValueError("f7 must be nonzero in a normal P2P message")
    if maxChunk <= 0:
        raise ValueError("maxChunk must be positive")
    total = len(payload)
    chunks = []
    offset = 0
    while True:
        piece = payload[offset : offset + maxChunk]
        header = Header(sessionId, identifier, offset, total, len(piece), flags, ackId, 0, 0)
        chunks.append(Chunk(header, piece, appId))
        offset += len(piece)
        if offset >= total:
            return chunks


def makeAck(acknowledged: Header, identifier: int) -> Chunk:
    """
    The ACK of a complete message whose (first or last) chunk had header
    C{acknowledged}, in pidgin's form (P.3.6): f1 and f4 copied, f6 =
    ACK, f7/f8/f9 = its f2/f7/f4, no payload, footer 0.
    """
    header = Header(
        sessionId=acknowledged.sessionId,
        identifier=identifier,
        offset=0,
        totalSize=acknowledged.totalSize,
        length=0,
        flags=FLAG_ACK,
        ackId=acknowledged.identifier,
        ackSubId=acknowledged.ackId,
        ackSize=acknowledged.totalSize,
    )
    return Chunk(header)


# -- the MIME frame ---------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """
    A C{P2P-Dest}/C{P2P-Src} value: an account and, in version 2 only, an
    endpoint id (C{account;{guid}}).
    """

    account: str
    endpoint: Optional[str] = None

    @classmethod
    def parse(cls, value: str) -> "Address":
        account, sep, endpoint = value.strip().partition(";")
        return cls(account.strip().lower(), endpoint.strip() or None if sep else None)

    def __str__(self) -> str:
        return self.account if self.endpoint is None else f"{self.account};{self.endpoint}"


@dataclass(frozen=True)
class Frame:
    """
    A decoded switchboard P2P message.

    @ivar destination: C{P2P-Dest}.
    @ivar source: C{P2P-Src}, when present (MSNPSharp sends a bare one).
    @ivar chunk: the binary part.
    """

    destination: Address
    chunk: Chunk
    source: Optional[Address] = field(default=None)


def _headerLines(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\r\n"):
        name, sep, value = raw.decode("utf-8", "replace").partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


def isVersion2(destination: Optional[str], source: Optional[str]) -> bool:
    """
    Whether these header values mark P2P version 2: an endpoint id after a
    C{;} in either (MSNPSharp's test on C{P2P-Dest}, widened to
    C{P2P-Src}; P.2.1, P.13).
    """
    return any(value is not None and ";" in value for value in (destination, source))


def parseFrame(payload: bytes) -> Frame:
    """
    Decode a whole switchboard C{MSG} payload of type L{CONTENT_TYPE}.

    @raise P2PVersion2: the headers mark version 2; the binary part was
        not read.
    @raise MalformedP2P: no header block, wrong type, no C{P2P-Dest}, or a
        bad binary part.
    """
    head, sep, body = payload.partition(b"\r\n\r\n")
    if not sep:
        raise MalformedP2P("P2P message without a blank line after its headers")
    headers = _headerLines(head)
    contentType = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if contentType != CONTENT_TYPE:
        raise MalformedP2P(f"not a P2P message: Content-Type {contentType!r}")
    destination, source = headers.get("p2p-dest"), headers.get("p2p-src")
    if isVersion2(destination, source):
        raise P2PVersion2(f"P2P version 2 message (P2P-Dest {destination!r}, P2P-Src {source!r})")
    if not destination:
        raise MalformedP2P("P2P message without P2P-Dest")
    return Frame(
        Address.parse(destination), Chunk.decode(body), Address.parse(source) if source else None
    )


def buildFrame(destination: str, chunk: Chunk, source: Optional[str] = None) -> bytes:
    """
    The switchboard payload carrying C{chunk} to C{destination}: the
    88-byte header block pidgin writes (plus C{P2P-Src} if given), then
    the binary part. Version 1 addresses are bare accounts.

    @raise ValueError: an address with C{;} (that would announce v2).
    """
    if isVersion2(destination, source):
        raise ValueError("P2P version 1 addresses must be bare accounts")
    lines = ["MIME-Version: 1.0", f"Content-Type: {CONTENT_TYPE}", f"P2P-Dest: {destination}"]
    if source is not None:
        lines.append(f"P2P-Src: {source}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + chunk.encode()


# -- reassembly ---------------------------------------------------------------------


@dataclass(frozen=True)
class Complete:
    """
    A whole transport message: the header of its first chunk (f5 set to
    the total) and its payload.
    """

    header: Header
    payload: bytes
    appId: int

    @property
    def kind(self) -> Kind:
        return classify(self.header, self.payload)


@dataclass
class _Partial:
    header: Header
    appId: int
    parts: list[bytes]
    received: int


class Reassembler:
    """
    Joins chunks into messages keyed by (sender, f1, f2), following P.3.5:
    a message starts at offset 0, grows only in order, and is complete
    when f3 + f5 = f4. Memory stays bounded: messages above C{maxSize} are
    refused, and at most C{maxPending} messages are held (the oldest is
    dropped to make room).

    L{add} returns the complete message, or L{None} while one is still
    growing; a chunk it cannot use raises L{MalformedP2P} with the reason,
    for the caller to log.
    """

    def __init__(self, maxSize: int = 1024 * 1024, maxPending: int = 32) -> None:
        self.maxSize = maxSize
        self.maxPending = maxPending
        self._partial: dict[tuple[str, int, int], _Partial] = {}

    def __len__(self) -> int:
        return len(self._partial)

    def pendingBytes(self) -> int:
        return sum(p.received for p in self._partial.values())

    def add(self, sender: str, chunk: Chunk) -> Optional[Complete]:
        """
        Take one chunk (never an ACK) from C{sender}.

        @raise MalformedP2P: too large, a gap, a chunk of no known message,
            or fields that disagree with the message's first chunk.
        """
        header = chunk.header
        if header.totalSize > self.maxSize:
            raise MalformedP2P(f"P2P message of {header.totalSize} bytes exceeds the cap of {self.maxSize}")
        key = (sender, header.sessionId, header.identifier)
        if header.offset == 0:
            if header.length == header.totalSize:
                self._partial.pop(key, None)
                return Complete(header, chunk.payload, chunk.appId)
            if key not in self._partial and len(self._partial) >= self.maxPending:
                self._partial.pop(next(iter(self._partial)))
            self._partial[key] = _Partial(header, chunk.appId, [chunk.payload], header.length)
            return None
        partial = self._partial.get(key)
        if partial is None:
            raise MalformedP2P(f"P2P chunk at offset {header.offset} of a message never started")
        if header.totalSize != partial.header.totalSize or header.flags != partial.header.flags:
            del self._partial[key]
            raise MalformedP2P("P2P chunk disagrees with its message's first chunk")
        if header.offset < partial.received:
            return None  # a repeated chunk (resent after NAK): drop it quietly
        if header.offset > partial.received:
            del self._partial[key]
            raise MalformedP2P(f"P2P message has a gap at {partial.received}; dropped")
        partial.parts.append(chunk.payload)
        partial.received += header.length
        if partial.received < header.totalSize:
            return None
        del self._partial[key]
        first = partial.header
        whole = Header(
            first.sessionId, first.identifier, 0, first.totalSize, first.totalSize,
            first.flags, first.ackId, first.ackSubId, first.ackSize,
        )
        return Complete(whole, b"".join(partial.parts), partial.appId)

    def discard(self, sender: str, sessionId: Optional[int] = None) -> None:
        """
        Forget partial messages from C{sender} (of one session only, if
        given), when the session or the path to the peer ends.
        """
        for key in [k for k in self._partial if k[0] == sender and (sessionId is None or k[1] == sessionId)]:
            del self._partial[key]
