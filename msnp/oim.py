# -*- test-case-name: test.test_oim -*-
"""
Offline messages (OIM) as values: the NS announcements and the stored mail.

A pure codec, no sockets and no Twisted. Two inputs come from the network:

  - the C{Mail-Data} header of an NS C{MSG Hotmail Hotmail} whose type is
    C{text/x-msmsgsinitialmdatanotification} (at sign-in) or
    C{text/x-msmsgsoimnotification} (one arrived while online), or the
    C{MD} document of RSI C{GetMetadata}: an C{<MD>} XML document with one
    C{<M>} per waiting message (reference 2.9, 6.12, Q.1.4, Q.1.5);
  - the text of RSI C{GetMessage}: an RFC 822 mail whose body is base64
    of the UTF-8 text and whose C{From} carries an RFC 2047 name
    (reference 6.12, Q.1.6).

Both are read defensively: anything a hostile server can do raises a
specific exception (L{MalformedMailData}, L{MalformedOfflineMessage}) or
drops the one bad entry, never anything else, and every size is capped.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional, Sequence
from xml.etree.ElementTree import Element

from twisted.logger import Logger

from msnp.contacts import normalizeEmail
from msnp.errors import ProtocolError
from msnp.xmlsafe import XMLError, childrenByName, localName, parseXML, textOf

log = Logger()

#: The NS message types that carry a C{Mail-Data} header.
INITIAL_MAIL_DATA_TYPE = "text/x-msmsgsinitialmdatanotification"
OIM_NOTIFICATION_TYPE = "text/x-msmsgsoimnotification"
MAIL_DATA_TYPES = frozenset({INITIAL_MAIL_DATA_TYPE, OIM_NOTIFICATION_TYPE})
#: The value that means "too many to list: call GetMetadata".
TOO_LARGE = "too-large"
#: The folder id of the OIM folder (Escargot's live form is C{.!!OIM}).
OIM_FOLDER = "00000000-0000-0000-0000-000000000009"

#: Cap on a C{Mail-Data} document (a GetMetadata answer with hundreds of
#: entries is well below it).
MAX_MAIL_DATA_BYTES = 1024 * 1024
#: At most this many C{<M>} entries are read from one document.
MAX_ENTRIES = 1000
#: Cap on the text of one stored message (a real one is a few KB).
MAX_MESSAGE_CHARS = 256 * 1024
#: Cap on an encoded sender name.
MAX_NAME_CHARS = 2048

#: A message id is echoed into SOAP requests: only GUID-like ids are kept.
_ID = re.compile(r"^[A-Za-z0-9{}._@-]{1,128}$")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?(.*?)\?=", re.DOTALL)
_ANGLE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


class MalformedMailData(ProtocolError):
    """
    A C{Mail-Data} payload or C{MD} document could not be read at all
    (bogus XML, wrong root, no C{Mail-Data} header).
    """


class MalformedOfflineMessage(ProtocolError):
    """
    A C{GetMessage} text is not a usable offline message: no header block,
    no sender, a body that is not base64 or not text, or too large.
    """


@dataclass(frozen=True)
class OfflineMessageAnnouncement:
    """
    One C{<M>} of a C{Mail-Data} document: a message waiting on the server.

    @ivar messageId: the C{I} field, verbatim (GetMessage/DeleteMessages
        must echo it exactly).
    @ivar sender: the C{E} field, normalised.
    @ivar senderName: the C{N} field, RFC 2047 decoded (may be empty).
    @ivar received: the C{RT} field (UTC), or L{None} when absent or garbled.
    @ivar size: the C{SZ} field, or L{None}.
    @ivar senderKind: the C{T} field (11 Live ID, 13 federated), 0 if absent.
    @ivar folder: the C{F} field.
    @ivar read: the C{RS} field.
    """

    messageId: str
    sender: str
    senderName: str = ""
    received: Optional[datetime] = None
    size: Optional[int] = None
    senderKind: int = 0
    folder: str = OIM_FOLDER
    read: bool = False


@dataclass(frozen=True)
class MailData:
    """
    A whole C{Mail-Data} value.

    @ivar messages: the announced messages, in document order.
    @ivar tooLarge: the value was C{too-large}: the list must be fetched
        with RSI C{GetMetadata}.
    @ivar skipped: entries dropped because they lacked an id or a sender
        (or exceeded L{MAX_ENTRIES}).
    """

    messages: tuple[OfflineMessageAnnouncement, ...] = ()
    tooLarge: bool = False
    skipped: int = 0


@dataclass(frozen=True)
class OfflineMessage:
    """
    One offline message, fetched and decoded: what an observer is given.

    @ivar messageId: the server's id.
    @ivar sender: the sender's address, normalised.
    @ivar senderName: the sender's display name (may be empty).
    @ivar text: the text.
    @ivar sent: when it was sent (UTC): the announcement's C{RT} if known,
        else the mail's C{Date}; L{None} if neither could be read.
    @ivar runId: C{X-OIM-Run-Id}, if present.
    @ivar sequence: C{X-OIM-Sequence-Num}, if present and numeric.
    """

    messageId: str
    sender: str
    senderName: str
    text: str
    sent: Optional[datetime] = None
    runId: Optional[str] = None
    sequence: Optional[int] = None


# -- small readers ----------------------------------------------------------------------


def isValidMessageId(messageId: str) -> bool:
    """
    Whether C{messageId} looks like an id a server hands out (GUID-like,
    bounded): anything else is dropped before it reaches a request.
    """
    return bool(_ID.match(messageId))


def decodeEncodedWords(text: str) -> str:
    """
    Decode the RFC 2047 encoded words (C{=?charset?B|Q?...?=}) in C{text}.

    White space inside an encoded word is dropped (Escargot writes
    C{=?utf-8?B?Qm9i ?=}), white space between two encoded words vanishes
    as RFC 2047 says, an unknown charset is read as UTF-8 and undecodable
    bytes become U+FFFD: a sender's name can never make this raise.
    """
    text = text[:MAX_NAME_CHARS]
    pieces: list[str] = []
    position = 0
    lastWasWord = False
    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        if not (lastWasWord and not between.strip()):
            pieces.append(between)
        pieces.append(_decodeWord(match.group(1), match.group(2), match.group(3)))
        position = match.end()
        lastWasWord = True
    pieces.append(text[position:])
    return "".join(pieces)


def _decodeWord(charset: str, encoding: str, encoded: str) -> str:
    charset = charset.split("*", 1)[0]  # RFC 2231 language suffix
    if encoding in "Bb":
        compact = "".join(encoded.split())
        compact += "=" * (-len(compact) % 4)
        try:
            raw = base64.b64decode(compact)
        except (binascii.Error, ValueError):
            return encoded
    else:
        raw = _decodeQ(encoded)
    try:
        return raw.decode(charset, "replace")
    except (LookupError, ValueError):
        # An unknown charset, or a codec that is not a text encoding or
        # raises whatever the error handler (C{idna}).
        return raw.decode("utf-8", "replace")


def _decodeQ(encoded: str) -> bytes:
    out = bytearray()
    data = encoded.replace("_", " ").encode("utf-8", "replace")
    i = 0
    while i < len(data):
        if data[i] == 0x3D and i + 2 < len(data) and _isHex(data[i + 1 : i + 3]):
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _isHex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def encodeName(name: str) -> str:
    """
    The RFC 2047 form of a display name the way MSN writes it,
    C{=?utf-8?B?...?=} (empty for an empty name).
    """
    if not name:
        return ""
    return "=?utf-8?B?" + base64.b64encode(name.encode("utf-8")).decode("ascii") + "?="


def parseTimestamp(text: str) -> Optional[datetime]:
    """
    An C{xsd:dateTime} (C{2010-01-01T08:00:00Z}, with or without a
    fraction or an offset) as an aware UTC datetime, or L{None}.
    """
    text = text.strip()
    if not text or len(text) > 40:
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def formatTimestamp(when: datetime) -> str:
    """
    The C{RT} form of C{when}: UTC with milliseconds, as in reference 6.12.
    """
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _optionalInt(text: str) -> Optional[int]:
    text = text.strip()
    if not text or len(text) > 18:
        return None
    try:
        return int(text)
    except ValueError:
        return None


# -- Mail-Data --------------------------------------------------------------------------


def mailDataHeader(payload: bytes) -> str:
    """
    The C{Mail-Data} value of an NS message payload. The field is written
    after the blank line that ends the MIME headers (reference Q.1.4),
    like the lines of a second header block; a server putting it among
    the MIME headers is read as well.

    @raise MalformedMailData: the payload has no C{Mail-Data} line.
    """
    text = payload[:MAX_MAIL_DATA_BYTES + 4096].decode("utf-8", "replace").replace("\r\n", "\n")
    for line in text.split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "mail-data":
            return value.strip()
    raise MalformedMailData("mail-data message without a Mail-Data line")


def parseMailDataPayload(payload: bytes) -> MailData:
    """
    Read the payload of an initial mail-data or OIM notification message.

    @raise MalformedMailData: no C{Mail-Data} header, or its value is
        neither C{too-large} nor a readable C{MD} document.
    """
    return parseMailData(mailDataHeader(payload))


def parseMailData(value: "str | bytes | Element") -> MailData:
    """
    Read a C{Mail-Data} value: C{too-large}, an C{<MD>} document as text,
    or an already parsed C{MD} element (the child form of GetMetadata).

    @raise MalformedMailData: bogus or unsafe XML, or a root other than C{MD}.
    """
    if isinstance(value, Element):
        root = value
    else:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        if text.lower() == TOO_LARGE:
            return MailData(tooLarge=True)
        try:
            root = parseXML(text, MAX_MAIL_DATA_BYTES)
        except XMLError as e:
            raise MalformedMailData(f"unreadable Mail-Data: {e}") from None
    if localName(root.tag) != "MD":
        raise MalformedMailData(f"Mail-Data root is <{localName(root.tag)}>, not <MD>")
    messages: list[OfflineMessageAnnouncement] = []
    skipped = 0
    for element in root:
        if localName(element.tag) != "M":
            continue
        if len(messages) >= MAX_ENTRIES:
            skipped += 1
            continue
        announcement = _announcement(element)
        if announcement is None:
            skipped += 1
        else:
            messages.append(announcement)
    if skipped:
        log.info("Mail-Data: skipped {count} unusable entries", count=skipped)
    return MailData(tuple(messages), False, skipped)


def _announcement(element: Element) -> Optional[OfflineMessageAnnouncement]:
    fields = {name: group[0] for name, group in childrenByName(element).items()}

    def text(name: str) -> str:
        return textOf(fields.get(name)).strip()

    messageId = text("I")
    sender = normalizeEmail(text("E"))
    if not isValidMessageId(messageId) or "@" not in sender or len(sender) > 320:
        return None
    return OfflineMessageAnnouncement(
        messageId=messageId,
        sender=sender,
        senderName=decodeEncodedWords(text("N")),
        received=parseTimestamp(text("RT")),
        size=_optionalInt(text("SZ")),
        senderKind=_optionalInt(text("T")) or 0,
        folder=text("F") or OIM_FOLDER,
        read=text("RS") == "1",
    )


# -- GetMessage -------------------------------------------------------------------------


def _headers(block: str) -> list[tuple[str, str]]:
    """
    RFC 822 header lines, folded lines joined with one space.
    """
    headers: list[tuple[str, str]] = []
    for line in block.split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and headers:
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + line.strip()).strip())
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.append((name.strip().lower(), value.strip()))
    return headers


def _first(headers: list[tuple[str, str]], name: str) -> Optional[str]:
    for key, value in headers:
        if key == name:
            return value
    return None


def _contentParameter(contentType: str, parameter: str) -> Optional[str]:
    for part in contentType.split(";")[1:]:
        key, sep, value = part.strip().partition("=")
        if sep and key.strip().lower() == parameter:
            return value.strip().strip('"')
    return None


def _splitHead(text: str) -> tuple[str, str]:
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise MalformedOfflineMessage("offline message without a blank line after its headers")
    return head, body


def _textPart(headers: list[tuple[str, str]], body: str, depth: int = 0) -> tuple[list[tuple[str, str]], str]:
    """
    The headers and body of the C{text/plain} part (the message itself
    unless it is C{multipart}).
    """
    contentType = _first(headers, "content-type") or "text/plain"
    if not contentType.lower().startswith("multipart/"):
        return headers, body
    boundary = _contentParameter(contentType, "boundary")
    if not boundary or depth > 2:
        raise MalformedOfflineMessage("multipart offline message without a usable boundary")
    for chunk in body.split("--" + boundary)[1:]:
        if chunk.startswith("--"):
            break
        chunk = chunk.lstrip("\n")
        head, sep, partBody = chunk.partition("\n\n")
        if not sep:
            continue
        partHeaders = _headers(head)
        partType = (_first(partHeaders, "content-type") or "text/plain").lower()
        if partType.startswith("text/plain") or partType.startswith("multipart/"):
            return _textPart(partHeaders, partBody.rstrip("\n"), depth + 1)
    raise MalformedOfflineMessage("multipart offline message without a text/plain part")


def _decodeBody(headers: list[tuple[str, str]], body: str) -> str:
    encoding = (_first(headers, "content-transfer-encoding") or "").strip().lower()
    charset = _contentParameter(_first(headers, "content-type") or "", "charset") or "utf-8"
    if encoding == "base64":
        compact = "".join(body.split())
        try:
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedOfflineMessage("offline message body is not base64") from None
    elif encoding == "quoted-printable":
        raw = binascii.a2b_qp(body.encode("utf-8", "replace"))
    else:
        raw = body.encode("utf-8", "replace")
    try:
        return raw.decode(charset)
    except LookupError:
        charset = "utf-8"
    except ValueError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedOfflineMessage(f"offline message body is not {charset} text") from None


def decodeOfflineMessage(
    text: str, messageId: str, announcement: Optional[OfflineMessageAnnouncement] = None
) -> OfflineMessage:
    """
    Decode the text of RSI C{GetMessage} into an L{OfflineMessage}.

    CR LF and LF line ends are both accepted. The sender is the address in
    C{<...>} of C{From} (the announcement's when C{From} has none); the
    name is C{From}'s RFC 2047 name, else the announcement's; the time is
    the announcement's C{RT}, else C{Date}.

    @param messageId: the id the text was fetched with.
    @param announcement: the C{<M>} entry that announced it, if any.
    @raise MalformedOfflineMessage: see the class.
    """
    if len(text) > MAX_MESSAGE_CHARS:
        raise MalformedOfflineMessage(
            f"offline message of {len(text)} characters exceeds the {MAX_MESSAGE_CHARS} cap"
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    head, body = _splitHead(text)
    headers = _headers(head)
    fromValue = _first(headers, "from") or ""
    match = _ANGLE.search(fromValue)
    if match is not None:
        sender = normalizeEmail(match.group(1))
        name = decodeEncodedWords(fromValue[: match.start()].strip().strip('"'))
    elif "@" in fromValue and " " not in fromValue.strip():
        sender, name = normalizeEmail(fromValue), ""
    elif announcement is not None:
        sender, name = announcement.sender, ""
    else:
        raise MalformedOfflineMessage("offline message without a sender address")
    if not name and announcement is not None:
        name = announcement.senderName
    partHeaders, partBody = _textPart(headers, body)
    messageText = _decodeBody(partHeaders, partBody)
    sent = announcement.received if announcement is not None else None
    if sent is None:
        sent = _parseDate(_first(headers, "date") or "")
    runId = _first(headers, "x-oim-run-id") or None
    return OfflineMessage(
        messageId=messageId,
        sender=sender,
        senderName=name,
        text=messageText,
        sent=sent,
        runId=runId.upper() if runId else None,
        sequence=_optionalInt(_first(headers, "x-oim-sequence-num") or ""),
    )


def _parseDate(value: str) -> Optional[datetime]:
    if not value or len(value) > 80:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def inSendOrder(messages: Sequence[OfflineMessage]) -> list[OfflineMessage]:
    """
    C{messages} (given in the order they were announced) in the order
    they were sent (reference Q.1.8): by time; messages of the same
    instant stay together by run and follow their sequence numbers within
    a run; otherwise ties keep the announcement order (a run id is a
    random GUID, so comparing two of them says nothing). Messages without
    a time go last.
    """
    firstOfRun: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.runId is not None:
            firstOfRun.setdefault(message.runId, index)

    def key(item: tuple[int, OfflineMessage]) -> tuple[datetime, int, int, int]:
        index, message = item
        run = firstOfRun[message.runId] if message.runId is not None else index
        return (message.sent or _NEVER, run, message.sequence or 0, index)

    return [message for _, message in sorted(enumerate(messages), key=key)]


def announcementOrder(announcement: OfflineMessageAnnouncement) -> datetime:
    """
    The sort key of an announcement before it is fetched: its C{RT}
    (entries without one last, in document order since sorting is stable).
    """
    return announcement.received or _NEVER
