# -*- test-case-name: test.test_switchboard -*-
"""
Message payloads: the MIME formats carried by C{MSG} (reference sections
6.5, 6.6), as values and back, without a socket.

Text with its font (L{MessageFormat}), typing notices, nudges, datacasts,
the one header parser both the switchboard and the NS profile message use
(L{parseHeaderLines}), and the reassembly of split messages
(L{ChunkAssembler}).
"""

from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from msnp.errors import ProtocolError
from msnp.wire import decodeParameter, encodeParameter

if TYPE_CHECKING:
    from msnp.p2p.msnobject import MSNObject

log = Logger()

#: The largest MSG payload a switchboard accepts (reference 6.5).
MAX_PAYLOAD = 1664
#: The body size of each part of a split text (reference 6.5, MSNPSharp).
CHUNK_BODY = 1400
#: A split message may announce fewer parts than this (pidgin's bound).
MAX_CHUNKS = 1024
#: Cap on the reassembled body of one split message.
MAX_REASSEMBLED = 512 * 1024
#: Seconds an incomplete split message is kept.
CHUNK_TIMEOUT = 60.0

_CRLF = b"\r\n"


class MalformedMime(ProtocolError):
    """
    A message payload is not a header block, a blank line and a body.
    """




_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _parseHex(text: str, default: int, limit: int) -> int:
    text = text.strip()
    if not text or len(text) > 8 or not _HEX.match(text):
        return default
    value = int(text, 16)
    return value if value <= limit else default


@dataclass(frozen=True)
class MessageFormat:
    """
    The font of a text message (C{X-MMS-IM-Format}, reference 6.6 a).

    @ivar font: the font name.
    @ivar effects: any of the letters C{B}, C{I}, C{U}, C{S}.
    @ivar color: a Windows COLORREF, C{0xBBGGRR} (use L{colorFromHTML} and
        L{htmlColor} to convert from and to C{#RRGGBB}).
    @ivar charset: the Windows charset id (informational; the text is UTF-8).
    @ivar pitchFamily: the pitch-and-family byte (C{0x22} is written C{22}).
    @ivar rightToLeft: whether the text runs right to left.
    """

    font: str = "Segoe UI"
    effects: str = ""
    color: int = 0
    charset: int = 1
    pitchFamily: int = 0
    rightToLeft: bool = False

    def toHeader(self) -> str:
        """
        The C{X-MMS-IM-Format} value, as WLM writes it (colour without
        leading zeros, C{RL} only when set).
        """
        effects = "".join(c for c in self.effects.upper() if c in "BIUS")
        value = (
            f"FN={encodeParameter(self.font)}; EF={effects}; CO={self.color & 0xFFFFFF:x}; "
            f"CS={self.charset & 0xFF:X}; PF={self.pitchFamily & 0xFF:x}"
        )
        if self.rightToLeft:
            value += "; RL=1"
        return value

    @classmethod
    def fromHeader(cls, value: str) -> "MessageFormat":
        """
        Read an C{X-MMS-IM-Format} value. Unknown fields are ignored and bad
        values fall back to the defaults, so a peer cannot make this raise.
        The colour is zero-padded on the left to six digits and read as
        BBGGRR (pidgin writes C{0000ff}, WLM C{ff}: both are red).
        """
        fields: dict[str, str] = {}
        for part in value.split(";"):
            name, sep, item = part.strip().partition("=")
            if sep:
                fields[name.strip().upper()] = item.strip()
        default = cls()
        font = decodeParameter(fields["FN"]) if fields.get("FN") else default.font
        effects = "".join(c for c in fields.get("EF", "").upper() if c in "BIUS")
        color = _parseHex(fields.get("CO", "").zfill(6), 0, 0xFFFFFF)
        return cls(
            font=font,
            effects=effects,
            color=color,
            charset=_parseHex(fields.get("CS", ""), default.charset, 0xFF),
            pitchFamily=_parseHex(fields.get("PF", ""), default.pitchFamily, 0xFF),
            rightToLeft=fields.get("RL", "0") == "1",
        )

    @property
    def htmlColor(self) -> str:
        """
        The colour as C{#RRGGBB}.
        """
        c = self.color & 0xFFFFFF
        return f"#{c & 0xFF:02x}{(c >> 8) & 0xFF:02x}{(c >> 16) & 0xFF:02x}"


def colorFromHTML(text: str) -> int:
    """
    Convert C{#RRGGBB} (or C{RRGGBB}) to the C{0xBBGGRR} value of
    L{MessageFormat.color}.

    @raise ValueError: C{text} is not six hex digits.
    """
    digits = text[1:] if text.startswith("#") else text
    if len(digits) != 6 or not _HEX.match(digits):
        raise ValueError(f"not an HTML colour: {text!r}")
    red, green, blue = int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    return (blue << 16) | (green << 8) | red


@dataclass(frozen=True)
class TextMessage:
    """
    A text someone wrote in a conversation.

    @ivar sender: the sender's address.
    @ivar senderName: the sender's display name, decoded.
    @ivar text: the text.
    @ivar format: its font, or the default one when the sender gave none.
    @ivar emoticons: the custom emoticons the sender defined for this text
        (C{text/x-mms-emoticon}, docs/p2p.md section 8): shortcut to its
        type 2 L{msnp.p2p.msnobject.MSNObject}, only shortcuts that occur
        in C{text}; fetch one with L{msnp.session.Session.fetchEmoticon}.
    """

    sender: str
    senderName: str
    text: str
    format: MessageFormat = field(default_factory=MessageFormat)
    emoticons: Mapping[str, "MSNObject"] = field(default_factory=dict, hash=False)


# -- MIME ---------------------------------------------------------------------


@dataclass(frozen=True)
class MimeMessage:
    """
    One message payload: header lines and a body of raw bytes.

    @ivar headers: C{(name, value)} pairs in order, as received.
    @ivar body: the bytes after the blank line.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """
        The value of the first header called C{name} (case-insensitive).
        """
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def contentType(self) -> str:
        """
        The media type in lower case, parameters removed (C{""} if absent).
        """
        value = self.header("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()


def parseHeaderLines(block: bytes) -> tuple[tuple[str, str], ...]:
    """
    Split a header block into C{(name, value)} pairs: the one header parser
    of msnp, for switchboard messages and the NS's own C{MSG} alike.

    Each line splits on its first C{": "} (a value may itself hold colons,
    as C{Message-ID} and URLs do); a line with a bare C{":"} splits there; a
    line without any colon, or with an empty name, is ignored; a line that
    starts with a space or tab continues the previous value (folding). Bytes
    are decoded as UTF-8 with replacement, never raising.
    """
    headers: list[tuple[str, str]] = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if not line.strip():
            continue
        if line[0] in " \t" and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            if not sep:
                continue
        name = name.strip()
        if not name:
            continue
        # The same few names in every message of every session: one copy.
        headers.append((sys.intern(name) if len(name) <= 64 else name, value.strip()))
    return tuple(headers)


def parseMimeHeaders(payload: bytes) -> dict[str, str]:
    """
    The header fields of a MIME payload (for example C{MSG Hotmail
    Hotmail}) as a dict, the last of a repeated name winning; a payload
    without a blank line is all headers.
    """
    head = payload.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return dict(parseHeaderLines(head))


def parseMime(payload: bytes) -> MimeMessage:
    """
    Split a payload into headers and body at the first blank line.

    @raise MalformedMime: there is no blank line.
    """
    head, sep, body = payload.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = payload.partition(b"\n\n")
        if not sep:
            raise MalformedMime("message payload without a blank line after its headers")
    return MimeMessage(parseHeaderLines(head), body)


def _headerBlock(headers: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}".encode("utf-8") + _CRLF for k, v in headers) + _CRLF


def _textHeaders(format: MessageFormat) -> list[tuple[str, str]]:
    return [
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("X-MMS-IM-Format", format.toHeader()),
    ]


def buildTextPayload(text: str, format: Optional[MessageFormat] = None) -> bytes:
    """
    One C{text/plain} payload (reference 6.6 a), whatever its size.
    """
    return _headerBlock(_textHeaders(format or MessageFormat())) + text.encode("utf-8")


def buildTextPayloads(
    text: str,
    format: Optional[MessageFormat] = None,
    messageId: Optional[str] = None,
    chunkBody: int = CHUNK_BODY,
) -> list[bytes]:
    """
    The payloads that carry C{text}: one, or when that one would exceed
    L{MAX_PAYLOAD} bytes, several parts (L{buildSplitPayloads}); a
    multi-byte character may straddle two parts, since the receiver joins
    bytes before decoding.

    @param messageId: the C{{GUID}} to use (a fresh one by default).
    """
    return buildSplitPayloads(_textHeaders(format or MessageFormat()), text.encode("utf-8"), messageId, chunkBody)


def buildSplitPayloads(
    headers: Sequence[tuple[str, str]],
    body: bytes,
    messageId: Optional[str] = None,
    chunkBody: int = CHUNK_BODY,
) -> list[bytes]:
    """
    The payloads that carry one message of C{headers} and C{body} (texts,
    ink): one when it fits in L{MAX_PAYLOAD} bytes, else parts with bodies
    of at most C{chunkBody} bytes cut at fixed byte offsets. The first part
    has the full headers plus C{Message-ID} and C{Chunks: N}, the others
    only C{Message-ID} and C{Chunk: k} (reference 6.5).

    @param messageId: the C{{GUID}} to use (a fresh one by default).
    @raise ValueError: more than L{MAX_CHUNKS} parts would be needed.
    """
    single = _headerBlock(headers) + body
    if len(single) <= MAX_PAYLOAD:
        return [single]
    pieces = [body[i : i + chunkBody] for i in range(0, len(body), chunkBody)]
    if len(pieces) >= MAX_CHUNKS:
        raise ValueError(f"message too long: {len(body)} bytes would need {len(pieces)} parts")
    ident = messageId or "{" + str(uuid.uuid4()).upper() + "}"
    first = list(headers) + [("Message-ID", ident), ("Chunks", str(len(pieces)))]
    payloads = [_headerBlock(first) + pieces[0]]
    for k, piece in enumerate(pieces[1:], start=1):
        payloads.append(_headerBlock([("Message-ID", ident), ("Chunk", str(k))]) + piece)
    return payloads


def buildTypingPayload(account: str) -> bytes:
    """
    The typing notification of C{account} (reference 6.6 b): the body is a
    single CR LF.
    """
    return _headerBlock(
        [("MIME-Version", "1.0"), ("Content-Type", "text/x-msmsgscontrol"), ("TypingUser", account)]
    ) + _CRLF


def buildNudgePayload() -> bytes:
    """
    A nudge (datacast C{ID: 1}, reference 6.6 c), in the WLM form.
    """
    return _headerBlock([("MIME-Version", "1.0"), ("Content-Type", "text/x-msnmsgr-datacast")]) + (
        b"ID: 1\r\n\r\n"
    )


def datacastId(message: MimeMessage) -> Optional[int]:
    """
    The C{ID} of a datacast body, or L{None}.
    """
    for name, value in parseHeaderLines(message.body):
        if name.lower() == "id":
            value = value.strip()
            return int(value) if value.isdigit() and len(value) < 6 else None
    return None


@dataclass
class _PartialMessage:
    first: MimeMessage
    total: int
    bodies: list[bytes]
    size: int
    timer: Optional[IDelayedCall] = None


class ChunkAssembler:
    """
    Joins the parts of split messages (reference 6.5), within bounds: fewer
    than L{MAX_CHUNKS} parts, at most C{maxBytes} in all, parts in order
    (an out-of-order part drops the whole message, as pidgin does), and
    incomplete messages dropped after C{timeout} seconds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float = CHUNK_TIMEOUT,
        maxBytes: int = MAX_REASSEMBLED,
        maxChunks: int = MAX_CHUNKS,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self.maxBytes = maxBytes
        self.maxChunks = maxChunks
        self._partial: dict[tuple[str, str], _PartialMessage] = {}

    @property
    def pendingCount(self) -> int:
        """
        How many split messages are waiting for more parts.
        """
        return len(self._partial)

    def feed(self, sender: str, message: MimeMessage) -> Optional[MimeMessage]:
        """
        Take one received payload.

        @return: the message to handle now: C{message} itself when it is not
            part of a split message, the whole message (the first part's
            headers, all bodies joined) when this was its last part, or
            L{None} while parts are missing or when the part was dropped.
        """
        ident = message.header("Message-ID")
        chunks = message.header("Chunks")
        chunk = message.header("Chunk")
        if ident is None or (chunks is None and chunk is None):
            return message
        key = (sender, ident)
        if chunks is not None:
            total = int(chunks) if chunks.isdigit() and len(chunks) < 8 else -1
            if total < 1 or total >= self.maxChunks:
                log.warn("Dropping a split message announcing {chunks!r} parts", chunks=chunks[:20])
                return None
            self._drop(key)
            if total == 1:
                return message
            if len(message.body) > self.maxBytes:
                log.warn("Dropping a split message over {cap} bytes", cap=self.maxBytes)
                return None
            started = _PartialMessage(message, total, [message.body], len(message.body))
            started.timer = self.clock.callLater(self.timeout, self._expire, key)
            self._partial[key] = started
            return None
        assert chunk is not None
        partial = self._partial.get(key)
        if partial is None:
            log.info("Dropping a message part with no first part")
            return None
        index = int(chunk) if chunk.isdigit() and len(chunk) < 8 else -1
        if index != len(partial.bodies):
            log.warn(
                "Dropping a split message: part {got!r} arrived, {want} expected",
                got=chunk[:20],
                want=len(partial.bodies),
            )
            self._drop(key)
            return None
        partial.size += len(message.body)
        if partial.size > self.maxBytes:
            log.warn("Dropping a split message over {cap} bytes", cap=self.maxBytes)
            self._drop(key)
            return None
        partial.bodies.append(message.body)
        if len(partial.bodies) < partial.total:
            return None
        self._drop(key)
        headers = tuple(
            (k, v) for k, v in partial.first.headers if k.lower() not in ("message-id", "chunks")
        )
        return MimeMessage(headers, b"".join(partial.bodies))

    def _drop(self, key: tuple[str, str]) -> None:
        partial = self._partial.pop(key, None)
        if partial is not None and partial.timer is not None and partial.timer.active():
            partial.timer.cancel()

    def _expire(self, key: tuple[str, str]) -> None:
        partial = self._partial.pop(key, None)
        if partial is not None:
            log.info(
                "Dropping an incomplete split message ({have} of {total} parts)",
                have=len(partial.bodies),
                total=partial.total,
            )

    def clear(self) -> None:
        """
        Forget every incomplete message (the connection is gone).
        """
        for key in list(self._partial):
            self._drop(key)

