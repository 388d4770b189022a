# -*- test-case-name: test.test_uun -*-
"""
The C{UUN}/C{UBN} user-to-user notifications as typed values (reference
section 4.9 and supplement Q.5), with no sockets.

A place sends C{UUN trid recipient[;{epid}] type len} + payload; the
recipient's places receive C{UBN sender[;{epid}] type len} + the same
payload. This module turns a notification body into the C{(type,
payload)} pair of the wire and back, and reads the sender of a C{UBN}:

    >>> body = parseBody("4", b"goawyplzthxbye")
    >>> isinstance(body, PlaceSignOut)
    True
    >>> encodeBody(body)
    (4, b'goawyplzthxbye')

Every type the reference lists has its own value class; a type it does
not list (or a non-numeric one) becomes an L{UnknownNotification}, which
the caller logs and otherwise ignores, so a new server type never breaks
a session. Payloads are kept as bytes: only the place sign-out, the
switchboard-closed note and the RTC activity have a documented structure.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Optional, Union

from msnp.contacts import normalizeEmail, normalizeGuid
from msnp.errors import ProtocolError
from msnp.wire import Command

#: The payload asking one place of our own account to sign out (type 4).
SIGN_OUT_PAYLOAD = b"goawyplzthxbye"
#: Appended by MSNPSharp when the place should also stop using MPOP.
NO_MORE_MPOP_SUFFIX = b"-nomorempop"
#: The payload of "sign out everywhere" (type 8).
EVERYWHERE_PAYLOAD = b"gtfo"
#: Largest payload this codec accepts when building; far above any real
#: notification and below the NS payload limits.
MAX_PAYLOAD_BYTES = 7500


class NotificationType(enum.IntEnum):
    """
    The C{UUN}/C{UBN} types of the reference (Q.5.1).
    """

    XML_DATA = 1
    SIP_INVITE = 2
    P2P_DATA = 3
    SIGN_OUT_PLACE = 4
    SWITCHBOARD_CLOSED = 5
    RESYNCHRONIZE = 6
    SIGN_OUT_EVERYWHERE = 8
    TURN = 10
    RTC_ACTIVITY = 11
    TUNNELLED_SIP = 12


class NotificationError(ProtocolError):
    """
    A C{UBN} line or a notification body cannot be read or built.
    """


@dataclass(frozen=True)
class PlaceSignOut:
    """
    Type 4: "sign this place of your account out".

    @ivar noMoreMpop: the C{-nomorempop} variant: the sender also asks the
        place not to come back in MPOP mode (AutoLogoff).
    """

    noMoreMpop: bool = False


@dataclass(frozen=True)
class EverywhereSignOut:
    """
    Type 8 C{gtfo}: every place of the account signs out.
    """


@dataclass(frozen=True)
class SwitchboardClosed:
    """
    Type 5: a conversation one of our places had was closed (MPOP).

    @ivar sessionId: the switchboard session id.
    @ivar detail: the second field, opaque: MSNPSharp puts the switchboard
        cookie there, the reference's example an address (Q.5.1).
    """

    sessionId: str
    detail: str = ""


@dataclass(frozen=True)
class RTCActivity:
    """
    Type 11: an RTC (audio/video) activity number and its parameters.
    """

    activity: int
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpaqueNotification:
    """
    A listed type whose payload this library passes on unread: XML data
    (1), SIP invite (2), P2P/MSNSLP data (3), resynchronise (6), TURN
    (10), tunnelled SIP (12).
    """

    kind: NotificationType
    payload: bytes = b""


@dataclass(frozen=True)
class UnknownNotification:
    """
    A type the reference does not list (C{kind} is the raw token, which may
    not even be numeric); to be logged and ignored.
    """

    kind: str
    payload: bytes = b""


NotificationBody = Union[
    PlaceSignOut, EverywhereSignOut, SwitchboardClosed, RTCActivity, OpaqueNotification, UnknownNotification
]

_OPAQUE = frozenset(
    {
        NotificationType.XML_DATA,
        NotificationType.SIP_INVITE,
        NotificationType.P2P_DATA,
        NotificationType.RESYNCHRONIZE,
        NotificationType.TURN,
        NotificationType.TUNNELLED_SIP,
    }
)


@dataclass(frozen=True)
class ReceivedNotification:
    """
    One C{UBN}.

    @ivar sender: the sender's normalised address (no network prefix).
    @ivar senderEndpoint: the sending place's GUID (normalised) when the
        line named one; per the reference it is the I{sender's} place,
        never a check on ours.
    """

    sender: str
    senderEndpoint: Optional[str]
    body: NotificationBody


def _knownType(token: str) -> Optional[NotificationType]:
    if not (token.isascii() and token.isdigit()) or len(token) > 4:
        return None
    try:
        return NotificationType(int(token))
    except ValueError:
        return None


def parseBody(kind: str, payload: bytes) -> NotificationBody:
    """
    The value of one notification body.

    Type 4 and 8 are recognised by their payload's start, as every client
    did (MSNPSharp acts on the payload alone); a type 4 or 8 whose payload
    does not match is an L{UnknownNotification}, never a sign-out.
    Type 5 and 11 with an unreadable payload are also unknown (logged,
    not fatal).
    """
    known = _knownType(kind)
    if known is None:
        return UnknownNotification(kind, payload)
    if known is NotificationType.SIGN_OUT_PLACE:
        if payload.startswith(SIGN_OUT_PAYLOAD):
            rest = payload[len(SIGN_OUT_PAYLOAD):].strip()
            return PlaceSignOut(noMoreMpop=rest == NO_MORE_MPOP_SUFFIX)
        return UnknownNotification(kind, payload)
    if known is NotificationType.SIGN_OUT_EVERYWHERE:
        if payload.startswith(EVERYWHERE_PAYLOAD):
            return EverywhereSignOut()
        return UnknownNotification(kind, payload)
    if known is NotificationType.SWITCHBOARD_CLOSED:
        try:
            text = payload.decode("ascii").strip()
        except UnicodeDecodeError:
            return UnknownNotification(kind, payload)
        sessionId, _, detail = text.partition(";")
        if not sessionId:
            return UnknownNotification(kind, payload)
        return SwitchboardClosed(sessionId, detail)
    if known is NotificationType.RTC_ACTIVITY:
        try:
            fields = payload.decode("utf-8").split()
            return RTCActivity(int(fields[0]), tuple(fields[1:]))
        except (UnicodeDecodeError, ValueError, IndexError):
            return UnknownNotification(kind, payload)
    return OpaqueNotification(known, payload)


def encodeBody(body: NotificationBody) -> tuple[int, bytes]:
    """
    The wire C{(type, payload)} of a body, for C{UUN}.

    @raise NotificationError: an L{UnknownNotification} whose kind is not a
        number, a payload over L{MAX_PAYLOAD_BYTES}, or a switchboard note
        whose fields would break the C{id;detail} form.
    """
    kind: int
    payload: bytes
    if isinstance(body, PlaceSignOut):
        kind = NotificationType.SIGN_OUT_PLACE
        payload = SIGN_OUT_PAYLOAD + (NO_MORE_MPOP_SUFFIX if body.noMoreMpop else b"")
    elif isinstance(body, EverywhereSignOut):
        kind, payload = NotificationType.SIGN_OUT_EVERYWHERE, EVERYWHERE_PAYLOAD
    elif isinstance(body, SwitchboardClosed):
        if not body.sessionId or ";" in body.sessionId or any(c.isspace() for c in body.sessionId + body.detail):
            raise NotificationError(f"unusable switchboard-closed fields {body!r}")
        kind = NotificationType.SWITCHBOARD_CLOSED
        payload = f"{body.sessionId};{body.detail}".encode("ascii", "strict")
    elif isinstance(body, RTCActivity):
        if any(not p or any(c.isspace() for c in p) for p in body.parameters):
            raise NotificationError("RTC activity parameters must be non-empty words")
        kind = NotificationType.RTC_ACTIVITY
        payload = " ".join([str(body.activity), *body.parameters]).encode("utf-8")
    elif isinstance(body, OpaqueNotification):
        kind, payload = body.kind, body.payload
    else:
        if not (body.kind.isascii() and body.kind.isdigit()):
            raise NotificationError(f"notification type {body.kind!r} is not a number")
        kind, payload = int(body.kind), body.payload
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise NotificationError(f"notification payload of {len(payload)} bytes is too large")
    return int(kind), payload


def uunRecipient(address: str, endpoint: Optional[str] = None) -> str:
    """
    The recipient token of C{UUN}: the bare address (no network prefix,
    Q.5.2), with C{;{epid}} to aim at one place.

    @raise NotificationError: the address or GUID is unusable.
    """
    email = normalizeEmail(address)
    if not email or "@" not in email or any(c.isspace() or c == ";" for c in email):
        raise NotificationError(f"not an address for UUN: {address!r}")
    if endpoint is None:
        return email
    try:
        guid = normalizeGuid(endpoint)
        uuid.UUID(guid[1:-1])
        return f"{email};{guid}"
    except ValueError:
        raise NotificationError(f"not an endpoint id: {endpoint!r}") from None


def buildUUN(
    trid: int, recipient: str, body: NotificationBody, endpoint: Optional[str] = None
) -> Command:
    """
    The C{UUN} command carrying C{body} to C{recipient} (one place of it
    when C{endpoint} is given, else every place).
    """
    kind, payload = encodeBody(body)
    return Command("UUN", trid, (uunRecipient(recipient, endpoint), str(kind)), payload)


def parseUBN(command: Command) -> ReceivedNotification:
    """
    Read C{UBN sender[;{epid}] type len}. A sender written with a network
    prefix (C{1:alice@...}) is accepted too.

    @raise NotificationError: no sender or no type.
    """
    if command.name != "UBN" or len(command.arguments) < 2:
        raise NotificationError(f"not a UBN with sender and type: {command.describe()}")
    token, kind = command.arguments[0], command.arguments[1]
    address, _, suffix = token.partition(";")
    head, sep, tail = address.partition(":")
    if sep and head.isdecimal():
        address = tail
    email = normalizeEmail(address)
    if "@" not in email:
        raise NotificationError(f"UBN sender {token!r} is not an address")
    endpoint: Optional[str] = None
    if suffix:
        try:
            endpoint = normalizeGuid(suffix)
        except ValueError:
            endpoint = None
    return ReceivedNotification(email, endpoint, parseBody(kind, command.payload or b""))


def isSignOutRequest(notification: ReceivedNotification, ownAccount: str) -> bool:
    """
    Whether C{notification} tells this place to sign out: a place sign-out
    or C{gtfo} sent by our own account (from any of its places; Q.5.2).
    A stranger's sign-out request is ignored.
    """
    if notification.sender != normalizeEmail(ownAccount):
        return False
    return isinstance(notification.body, (PlaceSignOut, EverywhereSignOut))
