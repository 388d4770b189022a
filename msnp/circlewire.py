# -*- test-case-name: test.test_circlewire -*-
"""
The routed payloads of C{PUT}, C{SDG} and C{NFY} (supplement Q.4.5-Q.4.8):
parse and build, with no sockets.

A routed payload is a sequence of MIME-like header blocks separated by a
blank line::

    Routing: 1.0          To:, From:
    Reliability: 1.0      Stream:, Segment:   (optional when parsing)
    Publication: 1.0 | Notification: 1.0 | Messaging: 1.0
                          the content headers; after its blank line, the body

Decisions where the reference leaves a choice (see C{docs/circles.md}):
  - the body is everything after the content block, whatever its
    C{Content-Length} says (MSNPSharp and Escargot count characters, not
    bytes); built payloads write the body's length in bytes;
  - line ends inside the header blocks may be CR LF or bare LF;
  - the sender's epid is written lower case in braces (Escargot compares it
    case-sensitively against the lower-cased GUID);
  - hostile input raises L{MalformedRoutedPayload}, never anything else.

The server side imports this module: both ends build and read the same
bytes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from msnp.circles import (
    IM_ROSTER,
    NETWORK_CIRCLE,
    CircleAddress,
    CircleProtocolError,
    circleAddress,
    circleTarget,
    memberAddress,
    parseCircleAddress,
)
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML

#: The content type of roster and property documents.
CIRCLES_XML = "application/circles+xml"
#: The C{X-MMS-IM-Format} WLM 2009 writes by default.
DEFAULT_FORMAT = "FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0"
#: More header lines than this in one block is not a routed payload.
MAX_HEADERS_PER_BLOCK = 32
#: Roster documents larger than this are refused (a real one is < 1 KB per
#: ten members).
MAX_ROSTER_BYTES = 64 * 1024
MAX_ROSTER_USERS = 1000

_BLANK = re.compile(rb"\r?\n\r?\n")
_ROSTER_USER_URI = re.compile(r"^/circle/roster\(([^)]{1,64})\)/user\(([^)]{1,320})\)$")


class MalformedRoutedPayload(CircleProtocolError):
    """
    A C{PUT}/C{SDG}/C{NFY} payload is not a routed payload, or its
    document is not a usable circle document.
    """


class ContentBlock(enum.Enum):
    """
    The kind of the third header block.
    """

    PUBLICATION = "Publication"
    NOTIFICATION = "Notification"
    MESSAGING = "Messaging"


_BLOCK_BY_NAME = {kind.value.lower(): kind for kind in ContentBlock}

Headers = tuple[tuple[str, str], ...]


def _get(headers: Headers, name: str) -> Optional[str]:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class RoutedPayload:
    """
    One routed payload.

    @ivar to: the C{To:} address.
    @ivar sender: the C{From:} address.
    @ivar routing: every header of the routing block after C{Routing: 1.0}.
    @ivar reliability: the headers of the reliability block (empty if none).
    @ivar kind: which content block follows.
    @ivar version: its version (C{1.0}).
    @ivar headers: the content block's headers, in order.
    @ivar body: the bytes after the content block.
    """

    to: CircleAddress
    sender: CircleAddress
    kind: ContentBlock
    headers: Headers = ()
    body: bytes = b""
    routing: Headers = ()
    reliability: Headers = ()
    version: str = "1.0"

    def header(self, name: str) -> Optional[str]:
        """
        A content header by name (case-insensitive), or L{None}.
        """
        return _get(self.headers, name)

    def reliabilityHeader(self, name: str) -> Optional[str]:
        return _get(self.reliability, name)

    @property
    def circleId(self) -> Optional[str]:
        """
        The circle this payload concerns: the C{To} circle for a client's
        payload, the C{From} circle for a server notification.
        """
        return self.to.circleId or self.sender.circleId

    def toBytes(self) -> bytes:
        """
        Serialise (C{To}/C{From} first in the routing block, then any other
        routing header). The body is written unchanged.
        """
        routing = [("Routing", "1.0"), ("To", str(self.to)), ("From", str(self.sender))]
        routing += [h for h in self.routing if h[0].lower() not in ("to", "from")]
        blocks = [_block(routing)]
        blocks.append(_block([("Reliability", "1.0"), *self.reliability]))
        blocks.append(_block([(self.kind.value, self.version), *self.headers]))
        return b"\r\n".join(blocks) + b"\r\n" + self.body


def _block(headers: Sequence[tuple[str, str]]) -> bytes:
    for name, value in headers:
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value or ":" in name:
            raise ValueError(f"header {name[:40]!r} cannot be written on one line")
    return b"".join(f"{name}: {value}\r\n".encode("utf-8") for name, value in headers)


def _parseBlock(block: bytes) -> Headers:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRoutedPayload("routed payload headers are not UTF-8") from None
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if len(lines) > MAX_HEADERS_PER_BLOCK:
        raise MalformedRoutedPayload("routed payload block has too many headers")
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise MalformedRoutedPayload(f"routed payload: not a header line {line[:60]!r}")
        headers.append((name, value.strip()))
    return tuple(headers)


def _nextBlock(data: bytes, start: int) -> tuple[bytes, int]:
    match = _BLANK.search(data, start)
    if match is None:
        raise MalformedRoutedPayload("routed payload ends inside a header block")
    return data[start : match.start()], match.end()


def parseRoutedPayload(data: bytes) -> RoutedPayload:
    """
    Read a C{PUT}/C{SDG}/C{NFY} payload.

    @raise MalformedRoutedPayload: the blocks are missing or out of order,
        C{To}/C{From} are missing or unreadable, or a header line is bad.
    """
    routingBlock, position = _nextBlock(data, 0)
    routing = _parseBlock(routingBlock)
    if not routing or routing[0][0].lower() != "routing":
        raise MalformedRoutedPayload("routed payload does not start with Routing:")
    block, position = _nextBlock(data, position)
    headers = _parseBlock(block)
    reliability: Headers = ()
    if headers and headers[0][0].lower() == "reliability":
        reliability = headers[1:]
        block, position = _nextBlock(data, position)
        headers = _parseBlock(block)
    if not headers or headers[0][0].lower() not in _BLOCK_BY_NAME:
        raise MalformedRoutedPayload("routed payload has no Publication/Notification/Messaging block")
    kind = _BLOCK_BY_NAME[headers[0][0].lower()]
    toText = _get(routing, "To")
    fromText = _get(routing, "From")
    if toText is None or fromText is None:
        raise MalformedRoutedPayload("routed payload lacks To: or From:")
    try:
        to = parseCircleAddress(toText)
        sender = parseCircleAddress(fromText)
    except CircleProtocolError as e:
        raise MalformedRoutedPayload(str(e)) from None
    extra = tuple(h for h in routing[1:] if h[0].lower() not in ("to", "from"))
    return RoutedPayload(
        to=to,
        sender=sender,
        kind=kind,
        headers=headers[1:],
        body=data[position:],
        routing=extra,
        reliability=reliability,
        version=headers[0][1],
    )


# -- rosters -----------------------------------------------------------------------


@dataclass(frozen=True)
class RosterDocument:
    """
    A C{<circle><roster>} document: the roster's id and its users' addresses
    (C{1:alice@example.com}), in order.
    """

    rosterId: str
    users: tuple[str, ...]

    @property
    def emails(self) -> tuple[str, ...]:
        """
        The users' accounts without the network prefix, lower case.
        """
        return tuple(u.partition(":")[2].lower() if ":" in u else u.lower() for u in self.users)


def buildRosterDocument(emails: Iterable[str], rosterId: str = IM_ROSTER) -> bytes:
    users = "".join(f"<user><id>{escapeText(memberAddress(e))}</id></user>" for e in emails)
    return f"<circle><roster><id>{escapeText(rosterId)}</id>{users}</roster></circle>".encode("utf-8")


def parseRosterDocument(body: bytes) -> RosterDocument:
    """
    @raise MalformedRoutedPayload: not a C{<circle><roster>} document, no
        roster id, a user without id, or too large.
    """
    if len(body) > MAX_ROSTER_BYTES:
        raise MalformedRoutedPayload("circle roster document too large")
    try:
        root = parseXML(body)
    except XMLError as e:
        raise MalformedRoutedPayload(f"circle roster is not usable XML: {e}") from None
    roster = root.find("roster") if localName(root.tag) == "circle" else None
    if roster is None:
        raise MalformedRoutedPayload("circle document holds no roster")
    rosterId = (roster.findtext("id") or "").strip()
    if not rosterId:
        raise MalformedRoutedPayload("circle roster without id")
    users: list[str] = []
    for user in roster.findall("user"):
        address = (user.findtext("id") or "").strip()
        if not address or len(address) > 330:
            raise MalformedRoutedPayload("circle roster user without a usable id")
        users.append(address)
        if len(users) > MAX_ROSTER_USERS:
            raise MalformedRoutedPayload("circle roster has too many users")
    return RosterDocument(rosterId, tuple(users))


def _sender(email: str, epid: Optional[str]) -> CircleAddress:
    return CircleAddress(1, email.strip().lower(), epid=formatEpid(epid) if epid else None)


def formatEpid(guid: str) -> str:
    """
    An endpoint id as the routing headers carry it: lower case, in braces.
    """
    inner = guid.strip().strip("{}").strip().lower()
    if not inner:
        raise ValueError("empty endpoint id")
    return "{" + inner + "}"


def _circle(circleId: str, path: Optional[str] = None) -> CircleAddress:
    return parseCircleAddress(circleTarget(circleId) if path else circleAddress(circleId))


def buildJoinPayload(circleId: str, email: str, epid: str) -> bytes:
    """
    The C{PUT} that puts C{email} into the circle's C{IM} roster (Q.4.6).
    """
    body = buildRosterDocument([email])
    return RoutedPayload(
        to=_circle(circleId),
        sender=_sender(email, epid),
        kind=ContentBlock.PUBLICATION,
        reliability=(("Stream", "0"), ("Segment", "0")),
        headers=(
            ("Uri", "/circle"),
            ("Content-Type", CIRCLES_XML),
            ("Content-Length", str(len(body))),
        ),
        body=body,
    ).toBytes()


def buildPartPayload(circleId: str, email: str, epid: str) -> bytes:
    """
    The C{DEL} that takes C{email}'s place out of the circle's roster (the
    C{Publication} block MSNPSharp writes: the user's roster C{Uri}, empty
    body).
    """
    return RoutedPayload(
        to=_circle(circleId),
        sender=_sender(email, epid),
        kind=ContentBlock.PUBLICATION,
        reliability=(("Stream", "0"), ("Segment", "0")),
        headers=(
            ("Uri", f"/circle/roster({IM_ROSTER})/user({memberAddress(email)})"),
            ("Content-Type", CIRCLES_XML),
            ("Content-Length", "0"),
        ),
        body=b"",
    ).toBytes()


def rosterUserOf(payload: RoutedPayload) -> Optional[str]:
    """
    The account of a C{/circle/roster(IM)/user(1:...)} C{Uri}, or L{None}
    for another C{Uri}.

    @raise MalformedRoutedPayload: the C{Uri} names a roster user that is
        not an address.
    """
    match = _ROSTER_USER_URI.match(payload.header("Uri") or "")
    if match is None or match.group(1) != IM_ROSTER:
        return None
    return _accountOf(match.group(2))


def buildRosterNotification(circleId: str, toEmail: str, members: Iterable[str]) -> bytes:
    """
    The server's roster C{NFY PUT} (Q.4.7 a): the members now in the
    conversation, sent to C{toEmail}.
    """
    body = buildRosterDocument(members)
    return RoutedPayload(
        to=_sender(toEmail, None),
        sender=_circle(circleId),
        kind=ContentBlock.PUBLICATION,
        reliability=(("Stream", "0"),),
        headers=(
            ("Uri", "/circle"),
            ("NotifType", "Partial"),
            ("Content-Type", CIRCLES_XML),
            ("Content-Length", str(len(body))),
        ),
        body=body,
    ).toBytes()


def buildLeaveNotification(circleId: str, toEmail: str, leaver: str, notifNum: int = 0) -> bytes:
    """
    The server's C{NFY DEL} (Q.4.7 d): C{leaver} left the conversation.
    """
    return RoutedPayload(
        to=_sender(toEmail, None),
        sender=_circle(circleId),
        kind=ContentBlock.NOTIFICATION,
        reliability=(("Stream", "0"),),
        headers=(
            ("NotifNum", str(int(notifNum))),
            ("Uri", f"/circle/roster({IM_ROSTER})/user({memberAddress(leaver)})"),
            ("NotifType", "Partial"),
            ("Content-Type", CIRCLES_XML),
            ("Content-Length", "0"),
        ),
        body=b"",
    ).toBytes()


@dataclass(frozen=True)
class RosterChange:
    """
    What a server C{NFY} says about a circle's conversation roster.

    @ivar present: accounts listed in a roster C{NFY PUT} (the reader drops
        itself if it wants to).
    @ivar left: accounts an C{NFY DEL} reports as gone.
    """

    circleId: str
    present: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


def parseRosterChange(verb: str, payload: RoutedPayload) -> Optional[RosterChange]:
    """
    Interpret a server C{NFY PUT}/C{NFY DEL}. Other notifications (circle
    properties, "new circle") give L{None}: they are valid but carry no
    roster.

    @param verb: C{PUT} or C{DEL}, the C{NFY} line's argument.
    @raise MalformedRoutedPayload: not from a circle, a wrong content type,
        or a bad roster document or user URI.
    """
    circleId = payload.sender.circleId
    if circleId is None:
        raise MalformedRoutedPayload("NFY not sent from a circle")
    contentType = (payload.header("Content-Type") or "").split(";")[0].strip().lower()
    if contentType != CIRCLES_XML:
        raise MalformedRoutedPayload(f"NFY with content type {contentType[:40]!r}")
    if verb == "DEL":
        leaver = rosterUserOf(payload)
        return RosterChange(circleId, left=(leaver,)) if leaver is not None else None
    if verb != "PUT":
        raise MalformedRoutedPayload(f"NFY {verb[:8]!r} is not PUT or DEL")
    body = payload.body.strip()
    if payload.kind is ContentBlock.NOTIFICATION or not body or b"<roster" not in body:
        return None
    document = parseRosterDocument(body)
    if document.rosterId != IM_ROSTER:
        return None
    return RosterChange(circleId, present=document.emails)


def applyRosterChange(
    online: set[str], change: RosterChange, ownEmail: str
) -> tuple[set[str], set[str]]:
    """
    Apply a roster change to the set of members in a circle's conversation
    (L{msnp.circles.Circle.online}), in place.

    An C{NFY PUT} is C{Partial}: the accounts it lists are present, and it
    says nothing of the others, so nobody is removed by it; only C{NFY DEL}
    removes. The account itself is never in the set.

    @return: C{(joined, left)}: who is new and who is gone, for the
        observer's events.
    """
    own = ownEmail.strip().lower()
    joined = {e for e in change.present if e != own} - online
    left = {e for e in change.left if e != own} & online
    online |= joined
    online -= left
    return joined, left


def _accountOf(address: str) -> str:
    network, sep, account = address.partition(":")
    if not sep or not network.isdecimal() or "@" not in account:
        raise MalformedRoutedPayload(f"roster user {address[:60]!r} is not an address")
    return account.strip().lower()


# -- messages (SDG) ------------------------------------------------------------------


class CircleMessageType(enum.Enum):
    TEXT = "Text"
    NUDGE = "Nudge"
    TYPING = "Typing"


@dataclass(frozen=True)
class CircleMessage:
    """
    One C{SDG} to or from a circle.

    @ivar senderEmail: the member who sent it.
    @ivar senderEpid: the sending place, as written (or L{None}).
    @ivar segment: the C{Segment} number, if readable.
    @ivar format: the C{X-MMS-IM-Format} of a text message, if any.
    """

    circleId: str
    senderEmail: str
    type: CircleMessageType
    text: str = ""
    senderEpid: Optional[str] = None
    segment: Optional[int] = None
    format: Optional[str] = None


def buildMessagePayload(
    circleId: str,
    email: str,
    epid: str,
    segment: int,
    type: CircleMessageType = CircleMessageType.TEXT,
    text: str = "",
    format: str = DEFAULT_FORMAT,
) -> bytes:
    """
    The payload of an C{SDG} to a circle (Q.4.8), headers in MSNPSharp's order.
    """
    if type is CircleMessageType.TEXT:
        body = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
        headers: Headers = (
            ("Content-Length", str(len(body))),
            ("Content-Type", "Text/plain; charset=UTF-8"),
            ("Content-Transfer-Encoding", "7bit"),
            ("Message-Type", "Text"),
            ("MIME-Version", "1.0"),
            ("X-MMS-IM-Format", format),
        )
    elif type is CircleMessageType.NUDGE:
        body = b"ID: 1\r\n\r\n"
        headers = (
            ("Content-Length", str(len(body))),
            ("Content-Type", "Text/plain; charset=UTF-8"),
            ("Content-Transfer-Encoding", "7bit"),
            ("Message-Type", "Nudge"),
            ("MIME-Version", "1.0"),
        )
    else:
        body = b"\r\n"
        headers = (
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/x-msmsgscontrol"),
            ("Content-Transfer-Encoding", "7bit"),
            ("Message-Type", "Control"),
            ("Message-Subtype", "Typing"),
            ("MIME-Version", "1.0"),
            ("TypingUser", email.strip().lower()),
        )
    return RoutedPayload(
        to=_circle(circleId, path=IM_ROSTER),
        sender=_sender(email, epid),
        kind=ContentBlock.MESSAGING,
        reliability=(("Stream", "0"), ("Segment", str(int(segment)))),
        headers=headers,
        body=body,
    ).toBytes()


def parseCircleMessage(payload: RoutedPayload) -> Optional[CircleMessage]:
    """
    Interpret an C{SDG} to a circle. A message type this library does not
    know gives L{None} (to be logged and ignored).

    @raise MalformedRoutedPayload: not addressed to a circle, not a
        C{Messaging} block, no sender account, or a text body that is not
        UTF-8.
    """
    circleId = payload.to.circleId
    if circleId is None:
        raise MalformedRoutedPayload("SDG not addressed to a circle")
    if payload.kind is not ContentBlock.MESSAGING:
        raise MalformedRoutedPayload("SDG without a Messaging block")
    if payload.sender.network != 1 or "@" not in payload.sender.account:
        raise MalformedRoutedPayload("SDG sender is not a person")
    segmentText = payload.reliabilityHeader("Segment")
    segment = int(segmentText) if segmentText and segmentText.isdecimal() and len(segmentText) <= 10 else None
    messageType = (payload.header("Message-Type") or "").strip().lower()

    def message(kind: CircleMessageType, text: str = "", format: Optional[str] = None) -> CircleMessage:
        return CircleMessage(
            circleId=circleId,
            senderEmail=payload.sender.account,
            type=kind,
            text=text,
            senderEpid=payload.sender.epid,
            segment=segment,
            format=format,
        )

    if messageType == "text":
        try:
            text = payload.body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedRoutedPayload("circle text message is not UTF-8") from None
        return message(CircleMessageType.TEXT, text.replace("\r\n", "\n"), payload.header("X-MMS-IM-Format"))
    if messageType == "nudge":
        return message(CircleMessageType.NUDGE)
    if messageType == "control" and (payload.header("Message-Subtype") or "").strip().lower() == "typing":
        return message(CircleMessageType.TYPING)
    return None


def isCircleRouted(payload: RoutedPayload) -> bool:
    """
    Whether either end of a routed payload is a network-9 address.
    """
    return payload.to.network == NETWORK_CIRCLE or payload.sender.network == NETWORK_CIRCLE

