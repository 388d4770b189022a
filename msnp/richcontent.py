# -*- test-case-name: test.test_richcontent -*-
"""
The switchboard formats of rich content, as values and back, without a
socket: custom emoticon definitions (C{text/x-mms-emoticon}), the wink and
voice-clip datacasts (C{text/x-msnmsgr-datacast} C{ID: 2} and C{ID: 3})
and ink (C{image/gif} and C{application/x-ms-ink}); MSNP18-p2p.md P.8,
P.10, P.11 and docs/p2p.md section 8.

The objects these messages name travel over P2P like display pictures;
this module only reads and writes the messages that announce them. Every
parser here takes bytes a peer chose, so each one bounds what it keeps
(pairs per message, text lengths, decoded ink size) and reports what it
dropped as a reason string instead of raising, for the caller to log.

Nothing here imports Twisted.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.parse import unquote

from msnp.errors import ProtocolError
from msnp.mime import MAX_PAYLOAD, buildSplitPayloads, parseHeaderLines
from msnp.p2p.msnobject import (
    MAX_OBJECT_TEXT,
    TYPE_EMOTICON,
    TYPE_VOICE_CLIP,
    TYPE_WINK,
    MalformedMSNObject,
    MSNObject,
)

#: Content type of static custom emoticon definitions.
EMOTICON_TYPE = "text/x-mms-emoticon"
#: Content type of animated ones (papyon sends every emoticon so).
ANIMATED_EMOTICON_TYPE = "text/x-mms-animemoticon"
#: Every content type read as emoticon definitions; the last one is
#: MSNPSharp 3.2.1's misspelling (P.8).
EMOTICON_TYPES = frozenset({EMOTICON_TYPE, ANIMATED_EMOTICON_TYPE, "text-/x-mms-animemoticon"})
#: Content type of GIF ink.
INK_GIF_TYPE = "image/gif"
#: Content type of ISF ink.
INK_ISF_TYPE = "application/x-ms-ink"
#: The datacast C{ID}s of winks and voice clips (C{ID: 1} is the nudge).
DATACAST_WINK = 2
DATACAST_VOICE_CLIP = 3

#: The most definitions kept from one message; the rest are dropped.
#: WLM 2009 lets a user put many emoticons in one text, pidgin reads 5:
#: 16 is generous for people and still small for memory.
MAX_EMOTICONS_PER_MESSAGE = 16
#: The longest shortcut accepted or sent. WLM 2009's editor allows 7
#: characters; a little room is left for other clients.
MAX_SHORTCUT = 16
#: The largest decoded ink accepted or sent (bytes). A GIF of a
#: handwritten note is a few KB; the reassembly cap of split messages
#: (L{msnp.mime.MAX_REASSEMBLED}) bounds the base64 text before this.
MAX_INK_SIZE = 256 * 1024

_INK_PREFIX = b"base64:"
_GIF = (b"GIF87a", b"GIF89a")


class MalformedRichContent(ProtocolError):
    """
    A rich-content message that cannot be read (or, when building, a value
    that cannot be written).
    """


@dataclass(frozen=True)
class EmoticonDefinitions:
    """
    What one emoticon message defined.

    @ivar emoticons: shortcut to object, in the order they came.
    @ivar dropped: why each dropped pair was dropped (for the log).
    """

    emoticons: dict[str, MSNObject]
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Wink:
    """
    A wink someone sent: its object (type 8), whose bytes (a CAB archive
    WLM plays; no source documents the inside) are fetched over P2P from
    the object's Creator.

    @ivar msnObject: the wink's MSN object.
    """

    msnObject: MSNObject


@dataclass(frozen=True)
class VoiceClip:
    """
    A voice clip someone sent: its object (type 11), fetched like a wink;
    WLM 2009 records them as WAV/WMA data (not documented by the sources).

    @ivar msnObject: the clip's MSN object.
    """

    msnObject: MSNObject


@dataclass(frozen=True)
class Ink:
    """
    A handwritten message.

    @ivar format: C{"gif"} (C{image/gif}) or C{"isf"} (Ink Serialized
        Format, C{application/x-ms-ink}).
    @ivar data: the decoded bytes (a GIF image, or ISF).
    """

    format: str
    data: bytes

    @property
    def mimeType(self) -> str:
        """
        The content type it travels as (and a bridge can store it as).
        """
        return INK_GIF_TYPE if self.format == "gif" else INK_ISF_TYPE


# -- emoticons --------------------------------------------------------------------


def checkShortcut(shortcut: str) -> None:
    """
    Refuse a shortcut that cannot be written into an emoticon message.

    @raise ValueError: empty, longer than L{MAX_SHORTCUT}, or holding a
        TAB, CR, LF or NUL (the separators of the format).
    """
    if not isinstance(shortcut, str) or not shortcut.strip():
        raise ValueError("an emoticon shortcut is a non-empty string")
    if len(shortcut) > MAX_SHORTCUT:
        raise ValueError(f"emoticon shortcut {shortcut[:20]!r} is longer than {MAX_SHORTCUT} characters")
    if any(c in shortcut for c in "\t\r\n\0"):
        raise ValueError("an emoticon shortcut cannot hold TAB, CR, LF or NUL")


def _emoticonHeaders(animated: bool) -> list[tuple[str, str]]:
    kind = ANIMATED_EMOTICON_TYPE if animated else EMOTICON_TYPE
    return [("MIME-Version", "1.0"), ("Content-Type", kind)]


def buildEmoticonPayloads(pairs: Sequence[tuple[str, MSNObject]], animated: bool = False) -> list[bytes]:
    """
    The messages announcing C{pairs}, each under the 1664-byte limit:
    pairs go into one message while they fit and the next one starts a
    new message (P.8: pidgin truncates one long message, so long
    definitions are several whole messages, never a split one). Each pair
    is C{shortcut TAB object TAB}, the form MSNPSharp writes and WLM's
    captures show; readers that join with TABs read it too.

    @raise ValueError: a shortcut fails L{checkShortcut}, or an object is
        not a type 2 object, or one pair alone exceeds the limit.
    """
    head = b"".join(f"{k}: {v}\r\n".encode("utf-8") for k, v in _emoticonHeaders(animated)) + b"\r\n"
    payloads: list[bytes] = []
    body = b""
    for shortcut, obj in pairs:
        checkShortcut(shortcut)
        if obj.type != TYPE_EMOTICON:
            raise ValueError(f"emoticon {shortcut!r} names a type {obj.type} object, not type 2")
        pair = f"{shortcut}\t{obj.toXml()}\t".encode("utf-8")
        if len(head) + len(pair) > MAX_PAYLOAD:
            raise ValueError(f"emoticon {shortcut!r}: its definition alone exceeds {MAX_PAYLOAD} bytes")
        if body and len(head) + len(body) + len(pair) > MAX_PAYLOAD:
            payloads.append(head + body)
            body = b""
        body += pair
    if body:
        payloads.append(head + body)
    return payloads


def _object(text: str) -> MSNObject:
    text = text.strip()
    if text.startswith("%3C") or text.startswith("%3c"):
        text = unquote(text)
    return MSNObject.parse(text)


def parseEmoticons(body: bytes, sender: Optional[str] = None) -> EmoticonDefinitions:
    """
    Read an emoticon message's body: split on TAB, drop empty fields, pair
    them up (P.8). Objects may be raw XML or URL-encoded.

    A pair is dropped (with its reason) when the shortcut is unusable, the
    object does not parse, is not type 2, has no usable size, or (with
    C{sender}) names a Creator other than the sender, since the object is
    fetched from its Creator and a peer must not make us ask a third party.
    Past L{MAX_EMOTICONS_PER_MESSAGE} pairs the rest are dropped.
    """
    text = body[: MAX_EMOTICONS_PER_MESSAGE * (MAX_OBJECT_TEXT + MAX_SHORTCUT + 2) * 2].decode("utf-8", "replace")
    fields = [f for f in text.split("\t") if f.strip("\r\n\0 ")]
    found: dict[str, MSNObject] = {}
    dropped: list[str] = []
    if len(fields) % 2:
        dropped.append("an emoticon shortcut without an object")
        fields = fields[:-1]
    for i in range(0, len(fields), 2):
        shortcut, objectText = fields[i].strip("\r\n\0"), fields[i + 1]
        if len(found) >= MAX_EMOTICONS_PER_MESSAGE:
            dropped.append(f"more than {MAX_EMOTICONS_PER_MESSAGE} emoticons in one message")
            break
        try:
            checkShortcut(shortcut)
            obj = _object(objectText)
        except (ValueError, MalformedMSNObject) as e:
            dropped.append(f"emoticon {shortcut[:MAX_SHORTCUT]!r}: {e}")
            continue
        if obj.type != TYPE_EMOTICON:
            dropped.append(f"emoticon {shortcut!r} names a type {obj.type} object")
        elif obj.size <= 0:
            dropped.append(f"emoticon {shortcut!r} has size {obj.size}")
        elif sender is not None and obj.creator.lower() != sender.lower():
            dropped.append(f"emoticon {shortcut!r} is created by {obj.creator[:80]!r}, not by its sender")
        else:
            found[shortcut] = obj
    return EmoticonDefinitions(found, tuple(dropped))


# -- winks and voice clips ----------------------------------------------------------------


def buildObjectDatacast(obj: MSNObject) -> bytes:
    """
    The datacast announcing a wink (type 8, C{ID: 2}) or a voice clip
    (type 11, C{ID: 3}) whose object we serve (P.10).

    @raise ValueError: another type of object.
    """
    ident = {TYPE_WINK: DATACAST_WINK, TYPE_VOICE_CLIP: DATACAST_VOICE_CLIP}.get(obj.type)
    if ident is None:
        raise ValueError(f"a type {obj.type} object is neither a wink nor a voice clip")
    return (
        b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\n"
        + f"ID: {ident}\r\nData: {obj.toXml()}\r\n\r\n".encode("utf-8")
    )


def parseObjectDatacast(ident: int, body: bytes, sender: Optional[str] = None) -> "Wink | VoiceClip":
    """
    The wink or voice clip of a datacast with C{ID} C{ident} (2 or 3):
    the object from its C{Data} line, of the type the ID implies, created
    by C{sender} when given.

    @raise MalformedRichContent: no C{Data}, an object that does not parse,
        the wrong type, a size of 0, or another Creator.
    """
    wanted = {DATACAST_WINK: TYPE_WINK, DATACAST_VOICE_CLIP: TYPE_VOICE_CLIP}.get(ident)
    if wanted is None:
        raise MalformedRichContent(f"datacast {ident} carries no object")
    data = None
    for name, value in parseHeaderLines(body[: 2 * MAX_OBJECT_TEXT]):
        if name.lower() == "data":
            data = value
            break
    if not data:
        raise MalformedRichContent(f"datacast {ident} without a Data line")
    try:
        obj = _object(data)
    except MalformedMSNObject as e:
        raise MalformedRichContent(f"datacast {ident}: {e}") from None
    if obj.type != wanted:
        raise MalformedRichContent(f"datacast {ident} names a type {obj.type} object, not type {wanted}")
    if obj.size <= 0:
        raise MalformedRichContent(f"datacast {ident} names an object of size {obj.size}")
    if sender is not None and obj.creator.lower() != sender.lower():
        raise MalformedRichContent(f"datacast {ident} names an object created by {obj.creator[:80]!r}, not its sender")
    return Wink(obj) if ident == DATACAST_WINK else VoiceClip(obj)


# -- ink ----------------------------------------------------------------------------


def parseInk(contentType: str, body: bytes, maxSize: int = MAX_INK_SIZE) -> Ink:
    """
    The ink of an C{image/gif} or C{application/x-ms-ink} message: the body
    is C{base64:} and the base64 of the data (P.11); whitespace and a
    trailing NUL are tolerated.

    @raise MalformedRichContent: another content type, no C{base64:}
        prefix, bad base64, decoded data over C{maxSize}, or a GIF body
        that is not a GIF.
    """
    kind = {INK_GIF_TYPE: "gif", INK_ISF_TYPE: "isf"}.get(contentType)
    if kind is None:
        raise MalformedRichContent(f"{contentType[:80]!r} is not ink")
    text = body.strip(b"\0 \r\n\t")
    if not text[: len(_INK_PREFIX)].lower() == _INK_PREFIX:
        raise MalformedRichContent("ink without its base64: prefix")
    encoded = b"".join(text[len(_INK_PREFIX) :].split())
    if len(encoded) > (maxSize + 2) // 3 * 4:
        raise MalformedRichContent(f"ink over {maxSize} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRichContent("ink that is not valid base64") from None
    if not data:
        raise MalformedRichContent("empty ink")
    if kind == "gif" and not data.startswith(_GIF):
        raise MalformedRichContent("image/gif ink that is not a GIF")
    return Ink(kind, data)


def buildInkPayloads(ink: Ink, messageId: Optional[str] = None) -> list[bytes]:
    """
    The messages carrying C{ink}: one, or parts with C{Message-ID} and
    C{Chunks} when longer than a switchboard message (P.11, reference 6.5).

    @raise ValueError: an unknown format, no data, data over
        L{MAX_INK_SIZE}, or a C{"gif"} that is not a GIF.
    """
    if ink.format not in ("gif", "isf"):
        raise ValueError(f"unknown ink format {ink.format!r}")
    if not ink.data or len(ink.data) > MAX_INK_SIZE:
        raise ValueError(f"ink of {len(ink.data)} bytes (1 to {MAX_INK_SIZE} allowed)")
    if ink.format == "gif" and not bytes(ink.data).startswith(_GIF):
        raise ValueError("GIF ink must be a GIF image")
    body = _INK_PREFIX + base64.b64encode(bytes(ink.data))
    headers = [("MIME-Version", "1.0"), ("Content-Type", ink.mimeType)]
    return buildSplitPayloads(headers, body, messageId)
