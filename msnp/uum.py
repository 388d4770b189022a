# -*- test-case-name: test.test_uum -*-
"""
Messages without a switchboard: C{UUM} (client to server) and C{UBM}
(server to client), reference sections 4.14, 6.7 and Q.2.

One command family carries two things:

  - offline messages to Live contacts (network 1): C{UUM addr 1 1} with a
    C{text/plain} body and the header C{Dest-Agent: client}, which the
    server stores as an OIM (Q.1.2);
  - the whole conversation with contacts on another network (network 32,
    Yahoo!): text, typing and nudges out with C{UUM}, in with C{UBM} (Q.2).

A pure codec: L{Command} values and payload bytes in and out, no sockets.
The server side of the local network uses the same parser for the
C{UUM} it receives, so both ends agree on what is valid.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO, normalizeEmail
from msnp.errors import ProtocolError
from msnp.mime import (
    MalformedMime,
    MessageFormat,
    MimeMessage,
    buildNudgePayload,
    buildTypingPayload,
    datacastId,
    parseMime,
)
from msnp.wire import Command

#: The networks these commands may address.
NETWORKS = frozenset({NETWORK_PASSPORT, NETWORK_YAHOO})
#: The header that marks a network-1 C{UUM} as an offline message.
DEST_AGENT = "Dest-Agent"
DEST_AGENT_CLIENT = "client"
#: Largest C{UUM} payload this library sends and the local network
#: accepts. No source documents a limit for C{UUM} (Q.1.2); this one
#: holds a 1,200-character text of four-byte characters with its headers,
#: and is still small enough that a stored message stays cheap. See
#: docs/offline.md.
MAX_UUM_PAYLOAD = 8192


class DeliveryResult(enum.Enum):
    """
    How a text went out: what C{Conversation.sendText} and
    C{Session.sendOfflineMessage} fire with.
    """

    #: Acknowledged on a switchboard by a contact who is online.
    DELIVERED_ONLINE = "delivered online"
    #: Handed to the NS as an offline message (C{UUM ... 1 1}) and not
    #: refused within the grace period (docs/offline.md).
    STORED_OFFLINE = "stored offline"
    #: Handed to the NS for a contact on another network (C{UUM ... 32}).
    SENT_TO_NETWORK = "sent to network"


class MessageKind(enum.IntEnum):
    """
    The C{msgType} field (reference 4.14).
    """

    TEXT = 1
    TYPING = 2
    NUDGE = 3


class MalformedNetworkMessage(ProtocolError):
    """
    A C{UUM} or C{UBM} whose line or payload cannot be used: wrong number
    of fields, an unknown network or message type, a body that does not
    match its type.
    """


@dataclass(frozen=True)
class NetworkMessage:
    """
    One C{UUM} or C{UBM}, decoded.

    @ivar sender: the sender's address (L{None} for a C{UUM}: the server
        knows who sent it).
    @ivar senderNetwork: the sender's network id (1 for a C{UUM}).
    @ivar recipient: the recipient's address.
    @ivar recipientNetwork: the recipient's network id.
    @ivar kind: text, typing or nudge.
    @ivar text: the text of a C{TEXT} message, else C{""}.
    @ivar format: the font of a C{TEXT} message.
    @ivar offline: whether the payload carries C{Dest-Agent: client}.
    @ivar mime: the whole payload, parsed.
    @ivar payload: the payload bytes as received (relayed unchanged).
    """

    sender: Optional[str]
    senderNetwork: int
    recipient: str
    recipientNetwork: int
    kind: MessageKind
    text: str
    format: MessageFormat
    offline: bool
    mime: MimeMessage
    payload: bytes


_CRLF = b"\r\n"


def _headerBlock(headers: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}".encode("utf-8") + _CRLF for k, v in headers) + _CRLF


def buildTextPayload(
    text: str,
    format: Optional[MessageFormat] = None,
    offline: bool = False,
    maxBytes: int = MAX_UUM_PAYLOAD,
) -> bytes:
    """
    The C{text/plain} payload of a C{UUM}: the switchboard text message
    (reference 6.6 a), plus C{Dest-Agent: client} for an offline message
    (MSNPSharp's header order, Q.1.2).

    @raise ValueError: the payload would exceed C{maxBytes} bytes (the
        message names both sizes), or C{text} contains a NUL.
    """
    if "\x00" in text:
        raise ValueError("a message text cannot contain NUL characters")
    headers = [
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("X-MMS-IM-Format", (format or MessageFormat()).toHeader()),
    ]
    if offline:
        headers.append((DEST_AGENT, DEST_AGENT_CLIENT))
    payload = _headerBlock(headers) + text.encode("utf-8")
    if len(payload) > maxBytes:
        raise ValueError(
            f"text too long for one message: {len(text.encode('utf-8'))} bytes of UTF-8 "
            f"make a {len(payload)}-byte payload, the limit is {maxBytes} bytes"
        )
    return payload


def buildOfflineText(
    trid: int, recipient: str, text: str, format: Optional[MessageFormat] = None,
    maxBytes: int = MAX_UUM_PAYLOAD,
) -> Command:
    """
    The C{UUM trid recipient 1 1 len} that leaves an offline message for a
    Live contact (reference Q.1.2).

    @raise ValueError: see L{buildTextPayload}; also a recipient that is
        not a bare address.
    """
    return Command(
        "UUM", trid, (_address(recipient), str(NETWORK_PASSPORT), str(int(MessageKind.TEXT))),
        buildTextPayload(text, format, offline=True, maxBytes=maxBytes),
    )


def buildNetworkText(
    trid: int, recipient: str, text: str, network: int = NETWORK_YAHOO,
    format: Optional[MessageFormat] = None, maxBytes: int = MAX_UUM_PAYLOAD,
) -> Command:
    """
    C{UUM trid recipient 32 1 len}: a text to a contact on another network.
    """
    return Command(
        "UUM", trid, (_address(recipient), str(_network(network)), str(int(MessageKind.TEXT))),
        buildTextPayload(text, format, offline=False, maxBytes=maxBytes),
    )


def buildNetworkTyping(trid: int, recipient: str, account: str, network: int = NETWORK_YAHOO) -> Command:
    """
    C{UUM trid recipient 32 2 len}: "C{account} is typing" (the
    switchboard form of reference 6.6 b).
    """
    return Command(
        "UUM", trid, (_address(recipient), str(_network(network)), str(int(MessageKind.TYPING))),
        buildTypingPayload(normalizeEmail(account)),
    )


def buildNetworkNudge(trid: int, recipient: str, network: int = NETWORK_YAHOO) -> Command:
    """
    C{UUM trid recipient 32 3 len}: a nudge.
    """
    return Command(
        "UUM", trid, (_address(recipient), str(_network(network)), str(int(MessageKind.NUDGE))),
        buildNudgePayload(),
    )


def _address(text: str) -> str:
    address = normalizeEmail(text)
    if "@" not in address or any(c in address for c in " \r\n\t:;") or len(address) > 320:
        raise ValueError(f"not a bare contact address: {text!r}")
    return address


def _network(network: int) -> int:
    if network not in NETWORKS:
        raise ValueError(f"UUM/UBM address networks 1 and 32, not {network!r}")
    return network


def _parseNetwork(text: str) -> int:
    if not text.isdigit() or len(text) > 4 or int(text) not in NETWORKS:
        raise MalformedNetworkMessage(f"unknown network id {text!r}")
    return int(text)


def _parseAddress(text: str) -> tuple[str, Optional[int]]:
    """
    An address field, which papyon also accepts as C{32:eve@yahoo.com}.
    """
    prefix, sep, rest = text.partition(":")
    network: Optional[int] = None
    if sep and prefix.isdigit():
        network, text = _parseNetwork(prefix), rest
    address = normalizeEmail(text)
    if "@" not in address or len(address) > 320:
        raise MalformedNetworkMessage(f"not an address: {text!r}")
    return address, network


def _decode(
    sender: Optional[str], senderNetwork: int, recipient: str, recipientNetwork: int,
    kindText: str, payload: Optional[bytes],
) -> NetworkMessage:
    if not kindText.isdigit() or len(kindText) > 2:
        raise MalformedNetworkMessage(f"message type {kindText!r} is not a number")
    try:
        kind = MessageKind(int(kindText))
    except ValueError:
        raise MalformedNetworkMessage(f"unknown message type {kindText}") from None
    try:
        mime = parseMime(payload or b"")
    except MalformedMime as e:
        raise MalformedNetworkMessage(str(e)) from None
    contentType = mime.contentType
    text = ""
    format = MessageFormat()
    if kind is MessageKind.TEXT:
        if contentType != "text/plain":
            raise MalformedNetworkMessage(f"a text message of type {contentType or '(none)'}")
        text = mime.body.decode("utf-8", "replace")
        formatHeader = mime.header("X-MMS-IM-Format")
        if formatHeader:
            format = MessageFormat.fromHeader(formatHeader)
    elif kind is MessageKind.TYPING:
        if contentType != "text/x-msmsgscontrol":
            raise MalformedNetworkMessage(f"a typing message of type {contentType or '(none)'}")
    elif contentType != "text/x-msnmsgr-datacast" or datacastId(mime) != 1:
        raise MalformedNetworkMessage("a nudge that is not datacast ID 1")
    offline = (mime.header(DEST_AGENT) or "").strip() == DEST_AGENT_CLIENT
    return NetworkMessage(
        sender, senderNetwork, recipient, recipientNetwork, kind, text, format, offline, mime,
        payload or b"",
    )


def parseUBM(command: Command) -> NetworkMessage:
    """
    Read C{UBM sender senderNet recipient recipientNet type len}.

    @raise MalformedNetworkMessage: see the class.
    """
    if command.name != "UBM" or len(command.arguments) != 5:
        raise MalformedNetworkMessage(f"malformed UBM: {command.describe()}")
    sender, senderPrefix = _parseAddress(command.arguments[0])
    senderNetwork = _parseNetwork(command.arguments[1])
    if senderPrefix is not None and senderPrefix != senderNetwork:
        raise MalformedNetworkMessage(f"UBM sender network {senderPrefix} vs {senderNetwork}")
    recipient, _ = _parseAddress(command.arguments[2])
    recipientNetwork = _parseNetwork(command.arguments[3])
    return _decode(sender, senderNetwork, recipient, recipientNetwork, command.arguments[4], command.payload)


def parseUUM(command: Command) -> NetworkMessage:
    """
    Read C{UUM trid recipient network type len} (what the server receives).

    @raise MalformedNetworkMessage: see the class.
    """
    if command.name != "UUM" or len(command.arguments) != 3:
        raise MalformedNetworkMessage(f"malformed UUM: {command.describe()}")
    recipient, _ = _parseAddress(command.arguments[0])
    network = _parseNetwork(command.arguments[1])
    return _decode(None, NETWORK_PASSPORT, recipient, network, command.arguments[2], command.payload)


def relayAsUBM(message: NetworkMessage, sender: str, senderNetwork: int = NETWORK_PASSPORT) -> Command:
    """
    The C{UBM} a server relays for a C{UUM} from C{sender} (on
    C{senderNetwork}): the payload unchanged (reference Q.2, the
    test-server form C{UBM A 1 B 32 type len}, and back).
    """
    return Command(
        "UBM", None,
        (normalizeEmail(sender), str(_network(senderNetwork)), message.recipient,
         str(message.recipientNetwork), str(int(message.kind))),
        message.payload,
    )
