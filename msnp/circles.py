# -*- test-case-name: test.test_circles -*-
"""
Circles (MSNP18 group chats): identifiers, value types, circle
authentication and the circle C{ADL}/C{RML} payloads (reference
MSNP18.md section 3.10 and the supplement's Q.4.1-Q.4.4, Q.4.11).

Everything here is pure: no sockets, no Deferreds, nothing from
C{twisted.internet}. The routed payloads of C{PUT}/C{SDG}/C{NFY} are in
L{msnp.circlewire}; the ABCH calls in L{msnp.soap.circles}. The server
side imports this module for the same identifiers and role numbers, so
both ends of the wire agree on them.

Guarantees a caller can rely on:
  - every circle id that leaves this module is lower case and of the form
    C{00000000-0000-0000-0009-} + 12 hex digits (L{normalizeCircleId});
  - the circle ticket is sent byte for byte as received (UTF-8, then
    base64), never re-serialised, and is never part of a C{repr};
  - hostile input raises L{CircleProtocolError} (a L{ProtocolError}),
    never anything else.
"""

from __future__ import annotations

import base64
import enum
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, TypeVar

from msnp.errors import ProtocolError
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML

#: The network id of a circle (reference 3.1, Q.4.1).
NETWORK_CIRCLE = 9
#: The host domain of every circle.
CIRCLE_DOMAIN = "live.com"
#: The roster every circle conversation uses.
IM_ROSTER = "IM"
#: Every circle id starts so; the personal book is all zeros.
CIRCLE_ID_PREFIX = "00000000-0000-0000-0009-"

_CIRCLE_ID = re.compile(r"^00000000-0000-0000-0009-[0-9a-f]{12}$")
#: A payload larger than this is not a circle list (a real one is ~100 bytes
#: per circle).
MAX_CIRCLE_LIST_BYTES = 64 * 1024


class CircleProtocolError(ProtocolError):
    """
    A circle identifier, address or payload is malformed.
    """


class CircleRole(enum.IntEnum):
    """
    A member's role (C{RelationshipRole} numbers, role names of
    C{CirclePersonalMembership/Role}; Q.4.11).
    """

    NONE = 0
    ADMIN = 1
    ASSISTANT_ADMIN = 2
    MEMBER = 3
    PENDING = 4

    @property
    def wireName(self) -> str:
        return _ROLE_NAMES[self]

    @property
    def mayInvite(self) -> bool:
        """
        Whether this role may invite others (Escargot: admins and assistants).
        """
        return self in (CircleRole.ADMIN, CircleRole.ASSISTANT_ADMIN)

    @classmethod
    def fromWire(cls, text: str) -> "CircleRole":
        """
        The role for a name (C{Admin}) or a number (C{1}).

        @raise CircleProtocolError: neither.
        """
        return _fromWire(cls, _ROLE_BY_NAME, text, "role")


class CircleState(enum.IntEnum):
    """
    A membership's state (C{RelationshipState} numbers and names; Q.4.11).
    """

    NONE = 0
    WAITING_RESPONSE = 1
    LEFT = 2
    ACCEPTED = 3
    REJECTED = 4

    @property
    def wireName(self) -> str:
        return _STATE_NAMES[self]

    @classmethod
    def fromWire(cls, text: str) -> "CircleState":
        """
        The state for a name (C{Accepted}) or a number (C{3}).

        @raise CircleProtocolError: neither.
        """
        return _fromWire(cls, _STATE_BY_NAME, text, "state")


_ROLE_NAMES = {
    CircleRole.NONE: "None",
    CircleRole.ADMIN: "Admin",
    CircleRole.ASSISTANT_ADMIN: "AssistantAdmin",
    CircleRole.MEMBER: "Member",
    CircleRole.PENDING: "StatePendingOutbound",
}
_STATE_NAMES = {
    CircleState.NONE: "None",
    CircleState.WAITING_RESPONSE: "WaitingResponse",
    CircleState.LEFT: "Left",
    CircleState.ACCEPTED: "Accepted",
    CircleState.REJECTED: "Rejected",
}
_ROLE_BY_NAME = {name.lower(): role for role, name in _ROLE_NAMES.items()}
_STATE_BY_NAME = {name.lower(): state for state, name in _STATE_NAMES.items()}


_E = TypeVar("_E", bound=enum.IntEnum)


def _fromWire(cls: type[_E], names: dict[str, _E], text: str, what: str) -> _E:
    value = text.strip()
    found = names.get(value.lower())
    if found is not None:
        return found
    if value.isdecimal() and len(value) < 4:
        try:
            return cls(int(value))
        except ValueError:
            pass
    raise CircleProtocolError(f"unknown circle {what} {text[:40]!r}")


# -- identifiers -----------------------------------------------------------------


def normalizeCircleId(text: str) -> str:
    """
    The canonical (lower-case) form of a circle id.

    @raise CircleProtocolError: C{text} is not a circle id (the personal
        book's all-zero id is not one).
    """
    value = text.strip().lower()
    if not _CIRCLE_ID.match(value):
        raise CircleProtocolError(f"not a circle id: {text[:60]!r}")
    return value


def isCircleId(text: str) -> bool:
    """
    Whether C{text} is a circle id (in any case).
    """
    return bool(_CIRCLE_ID.match(text.strip().lower()))


def circleAddress(circleId: str) -> str:
    """
    The circle on the NS: C{9:<id>@live.com}.
    """
    return f"{NETWORK_CIRCLE}:{normalizeCircleId(circleId)}@{CIRCLE_DOMAIN}"


def circleTarget(circleId: str) -> str:
    """
    The circle as the target of an C{SDG}: C{9:<id>@live.com;path=IM}.
    """
    return circleAddress(circleId) + f";path={IM_ROSTER}"


def memberAddress(email: str) -> str:
    """
    A member in a roster document: C{1:<email>}.
    """
    return f"1:{email.strip().lower()}"


def memberVia(email: str, circleId: str) -> str:
    """
    A member seen through a circle (C{NLN}/C{FLN}/C{UBX}):
    C{1:bob@example.com;via=9:<id>@live.com}.
    """
    return f"{memberAddress(email)};via={circleAddress(circleId)}"


@dataclass(frozen=True)
class CircleAddress:
    """
    A parsed routing address: C{<network>:<account>} plus its C{;key=value}
    parameters (C{epid}, C{path}, C{via}).

    @ivar network: the numeric network (1 for a person, 9 for a circle).
    @ivar account: the account, lower case (a circle's is C{<id>@live.com}).
    """

    network: int
    account: str
    epid: Optional[str] = None
    path: Optional[str] = None
    via: Optional[str] = None

    @property
    def circleId(self) -> Optional[str]:
        """
        The circle id of a network-9 address, else L{None}.
        """
        if self.network != NETWORK_CIRCLE:
            return None
        local, _, domain = self.account.rpartition("@")
        if domain != CIRCLE_DOMAIN or not isCircleId(local):
            return None
        return local

    @property
    def email(self) -> str:
        return self.account

    def __str__(self) -> str:
        text = f"{self.network}:{self.account}"
        if self.epid is not None:
            text += f";epid={self.epid}"
        if self.path is not None:
            text += f";path={self.path}"
        if self.via is not None:
            text += f";via={self.via}"
        return text


_MAX_ADDRESS = 512


def parseCircleAddress(text: str) -> CircleAddress:
    """
    Read a C{To:}/C{From:} value: C{9:<id>@live.com;path=IM},
    C{1:alice@example.com;epid={guid}}, C{1:bob@...;via=9:...}.

    Unknown parameters are ignored; the epid is kept as written (Escargot
    compares it case-sensitively, so the caller decides).

    @raise CircleProtocolError: no numeric network, no account, or an
        absurd length.
    """
    if len(text) > _MAX_ADDRESS:
        raise CircleProtocolError("routing address too long")
    head, *params = text.strip().split(";")
    network, sep, account = head.partition(":")
    if not sep or not network.isdecimal() or len(network) > 3:
        raise CircleProtocolError(f"routing address without a network: {text[:60]!r}")
    account = account.strip().lower()
    if not account or any(c.isspace() for c in account):
        raise CircleProtocolError(f"routing address without an account: {text[:60]!r}")
    values: dict[str, str] = {}
    for param in params:
        key, _, value = param.partition("=")
        key = key.strip().lower()
        if key in ("epid", "path", "via") and key not in values:
            values[key] = value.strip()
    return CircleAddress(int(network), account, values.get("epid"), values.get("path"), values.get("via"))


# -- value types -----------------------------------------------------------------


@dataclass
class CircleMember:
    """
    One member of a circle as its member book lists it.

    @ivar contactId: the member's contact id in the circle's book
        (C{BreakConnection} needs one's own).
    """

    email: str
    role: CircleRole = CircleRole.MEMBER
    state: CircleState = CircleState.ACCEPTED
    displayName: str = ""
    contactId: Optional[str] = None

    @property
    def isPending(self) -> bool:
        return self.state is CircleState.WAITING_RESPONSE


@dataclass
class Circle:
    """
    A circle the account is in or invited to.

    @ivar circleId: the lower-case circle id.
    @ivar role: the account's own role in it.
    @ivar state: the account's own membership state.
    @ivar members: by lower-case e-mail; empty until the member book was read.
    @ivar online: the members currently in the circle's conversation roster
        (C{NFY PUT}/C{NFY DEL}).
    @ivar representativeId: the C{contactId} of the hidden representative
        in the personal book (what accept/decline address).
    """

    circleId: str
    name: str
    role: CircleRole = CircleRole.MEMBER
    state: CircleState = CircleState.ACCEPTED
    members: dict[str, CircleMember] = field(default_factory=dict)
    online: set[str] = field(default_factory=set)
    representativeId: Optional[str] = None

    @property
    def address(self) -> str:
        return circleAddress(self.circleId)

    @property
    def isMember(self) -> bool:
        return self.state is CircleState.ACCEPTED

    def member(self, email: str) -> Optional[CircleMember]:
        return self.members.get(email.strip().lower())


@dataclass(frozen=True)
class CircleInvitation:
    """
    An invitation into a circle, as the address book shows it (a hidden
    representative in state C{WaitingResponse}).

    It is a value: the session (phase 2) hands the observer an object with
    C{accept()}/C{decline()} built on L{msnp.soap.circles.CircleService}
    around one of these.
    """

    circleId: str
    name: str
    representativeId: str
    inviterEmail: str = ""
    inviterName: str = ""
    message: str = ""


# -- USR SHA A -------------------------------------------------------------------


class CircleTicket:
    """
    The unescaped C{CircleTicket} document, kept exactly as received.

    It is a credential: the C{repr} hides it.
    """

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        if not text or not text.strip():
            raise CircleProtocolError("empty circle ticket")
        self._text = text

    @property
    def text(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"<CircleTicket {len(self._text)} characters>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CircleTicket) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def encoded(self) -> str:
        """
        The C{USR SHA A} argument: base64 of the ticket's UTF-8 bytes, with
        no re-serialisation (Escargot compares the base64 strings).
        """
        return base64.b64encode(self._text.encode("utf-8")).decode("ascii")


def circleAuthArguments(ticket: CircleTicket) -> tuple[str, ...]:
    """
    The arguments of C{USR trid SHA A <base64>} (Q.4.3).
    """
    return ("SHA", "A", ticket.encoded())


def decodeCircleAuth(argument: str, maxBytes: int = 64 * 1024) -> str:
    """
    The ticket text inside a C{USR SHA A} argument (the server's side).

    @raise CircleProtocolError: not base64, too long or not UTF-8.
    """
    if len(argument) > maxBytes * 4 // 3 + 4:
        raise CircleProtocolError("circle ticket too long")
    try:
        raw = base64.b64decode(argument.encode("ascii"), validate=True)
        return raw.decode("utf-8")
    except (ValueError, UnicodeError):
        raise CircleProtocolError("circle ticket is not base64 of UTF-8 text") from None


def isCircleAuthReply(arguments: Iterable[str]) -> bool:
    """
    Whether a C{USR} reply's arguments are the success form
    C{OK <address> 0 0} (the only one known, Escargot's).
    """
    args = tuple(arguments)
    return len(args) >= 2 and args[0] == "OK"


# -- ADL / RML for circles -------------------------------------------------------


def buildCircleListPayload(circleIds: Iterable[str], lists: int = 3) -> bytes:
    """
    The C{ADL}/C{RML} payload for circles: one C{<d n="live.com">} holding
    only C{t="9"} entries (Escargot closes the connection with C{241}
    otherwise), sent in a command of its own after the contact C{ADL}s.

    @param lists: the list bits; C{3} (FL+AL) as MSNPSharp sends.
    @return: the payload; C{b""} when there is no circle (send nothing).
    @raise CircleProtocolError: an id is not a circle id.
    """
    seen: list[str] = []
    for circleId in circleIds:
        normal = normalizeCircleId(circleId)
        if normal not in seen:
            seen.append(normal)
    if not seen:
        return b""
    entries = "".join(f'<c n="{escapeText(i)}" l="{int(lists)}" t="{NETWORK_CIRCLE}" />' for i in seen)
    return f'<ml l="1"><d n="{CIRCLE_DOMAIN}">{entries}</d></ml>'.encode("utf-8")


@dataclass(frozen=True)
class CircleListEntry:
    circleId: str
    lists: int


def parseCircleListPayload(data: bytes) -> list[CircleListEntry]:
    """
    Read a circle C{ADL}/C{RML} payload with Escargot's rules: the circle
    domain as the only C{<d>}, only C{t="9"} entries, valid circle ids.

    @raise CircleProtocolError: anything else (a server answers C{241}).
    """
    if len(data) > MAX_CIRCLE_LIST_BYTES:
        raise CircleProtocolError("circle list payload too large")
    try:
        root = parseXML(data)
    except XMLError as e:
        raise CircleProtocolError(f"circle list payload is not usable XML: {e}") from None
    if localName(root.tag) != "ml":
        raise CircleProtocolError("circle list payload root is not <ml>")
    sections = list(root)
    if len(sections) != 1 or localName(sections[0].tag) != "d":
        raise CircleProtocolError("circle list payload must hold exactly one <d>")
    if (sections[0].get("n") or "").strip().lower() != CIRCLE_DOMAIN:
        raise CircleProtocolError("circle list payload domain is not live.com")
    entries: list[CircleListEntry] = []
    for element in sections[0]:
        if localName(element.tag) != "c" or (element.get("t") or "").strip() != str(NETWORK_CIRCLE):
            raise CircleProtocolError("circle list payload holds a non-circle entry")
        bits = (element.get("l") or "").strip()
        if not bits.isdecimal() or len(bits) > 3 or not 0 < int(bits) < 0x20:
            raise CircleProtocolError(f"circle list payload: bad list bits {bits[:8]!r}")
        entries.append(CircleListEntry(normalizeCircleId(element.get("n") or ""), int(bits)))
    if not entries:
        raise CircleProtocolError("circle list payload names no circle")
    return entries


def isCircleListPayload(data: bytes) -> bool:
    """
    Whether an C{ADL}/C{RML} payload is about circles (its first C{<d>} is
    C{live.com} with a C{t="9"} entry): the NS sends such payloads to the
    circle code instead of the contact code. Cheap: no XML parse.
    """
    return b't="9"' in data and f'n="{CIRCLE_DOMAIN}"'.encode() in data


# -- NOT for circles (Q.4.9) -----------------------------------------------------

#: The C{siteid} of address-book notifications.
ADDRESS_BOOK_SITE = "45705"


def circleIdOfNotification(payload: bytes) -> Optional[str]:
    """
    The circle a C{NOT} payload concerns (C{NotificationData/CircleId}
    inside C{BODY}, site 45705), or L{None} for any other notification
    (the C{ABCHInternal} form, an alert).

    @raise CircleProtocolError: site 45705 with a C{CircleId} that is not a
        circle id, or a body that is not XML.
    """
    if b"CircleId" not in payload:
        return None
    try:
        root = parseXML(payload)
    except XMLError as e:
        raise CircleProtocolError(f"circle NOT is not usable XML: {e}") from None
    if localName(root.tag) != "NOTIFICATION" or root.get("siteid") != ADDRESS_BOOK_SITE:
        return None
    body = root.find("MSG/BODY")
    text = (body.text or "").strip() if body is not None else ""
    if not text:
        return None
    try:
        data = parseXML(text)
    except XMLError as e:
        raise CircleProtocolError(f"circle NOT body is not usable XML: {e}") from None
    for element in data:
        if localName(element.tag) == "CircleId":
            return normalizeCircleId(element.text or "")
    return None
