# -*- test-case-name: test.test_switchboard -*-
"""
Conversations: the switchboard (SB) connection and what a user sees of it.

Layers, bottom up:

  - pure MIME helpers (L{parseMime}, L{buildTextPayloads}, L{buildTypingPayload},
    L{buildNudgePayload}, L{ChunkAssembler}) that turn message payloads into
    values and back without touching a socket (reference sections 6.5, 6.6);
  - L{SwitchboardProtocol}, one SB connection: C{USR}/C{ANS}, C{CAL},
    C{JOI}/C{IRO}/C{BYE}, C{MSG} and its C{ACK}/C{NAK} (sections 6.1-6.5);
  - L{Conversation}, the long-lived object a user talks through. A
    switchboard comes and goes under it (the server closes idle ones, the
    other side leaves); the next message transparently opens a new one with
    C{XFR SB} + C{CAL} of the same people (section 6.8);
  - L{ConversationManager}, owned by the session: opens conversations,
    answers invitations (C{RNG}) and closes everything at logout.

Every L{Deferred} handed out fires or fails: messages fail with
L{MessageNotDelivered} on C{NAK}, on an acknowledgement timeout, or when the
switchboard goes away first; switchboard set-up has its own deadline.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError as DeferredTimeoutError,
    ensureDeferred,
    fail,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.contacts import normalizeEmail, normalizeGuid
from msnp.errors import (
    ConnectionLost,
    ContactOffline,
    MessageNotDelivered,
    MSNPError,
    ProtocolError,
    RequestTimeout,
    ServerError,
)
from msnp.interfaces import notifyObserver
from msnp.protocol import MSNPProtocol, reactorOrDefault
from msnp.wire import Command, Direction, decodeParameter, encodeParameter

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


# -- values -------------------------------------------------------------------


@dataclass(frozen=True)
class SwitchboardTicket:
    """
    The answer to C{XFR trid SB}: where to connect and what to present.

    @ivar address: C{host:port} of the switchboard.
    @ivar authToken: the single-use authorization string (kept out of reprs).
    """

    address: str
    authToken: str = field(repr=False)


@dataclass(frozen=True)
class Invitation:
    """
    An invitation to a switchboard session, from C{RNG} on the NS.

    @ivar sessionId: the opaque session id for C{ANS}.
    @ivar address: C{host:port} of the switchboard.
    @ivar authToken: the authorization string (kept out of reprs).
    @ivar inviter: the inviter's address.
    @ivar inviterName: the inviter's display name, decoded.
    """

    sessionId: str
    address: str
    authToken: str = field(repr=False)
    inviter: str
    inviterName: str


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
    """

    sender: str
    senderName: str
    text: str
    format: MessageFormat = field(default_factory=MessageFormat)


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
    Split a header block into C{(name, value)} pairs. Each line splits on its
    first C{": "} (a value may itself hold colons, as C{Message-ID} and URLs
    do); a line with a bare C{":"} splits there; a line without any colon is
    ignored. Bytes are decoded as UTF-8 with replacement, never raising.
    """
    headers = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            if not sep:
                continue
        headers.append((name.strip(), value.strip()))
    return tuple(headers)


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
    L{MAX_PAYLOAD} bytes, several parts with bodies of at most C{chunkBody}
    bytes cut at fixed byte offsets (a multi-byte character may straddle two
    parts; the receiver joins bytes before decoding). The first part has the
    full headers plus C{Message-ID} and C{Chunks: N}, the others only
    C{Message-ID} and C{Chunk: k} (reference 6.5).

    @param messageId: the C{{GUID}} to use (a fresh one by default).
    """
    format = format or MessageFormat()
    single = buildTextPayload(text, format)
    if len(single) <= MAX_PAYLOAD:
        return [single]
    body = text.encode("utf-8")
    pieces = [body[i : i + chunkBody] for i in range(0, len(body), chunkBody)]
    if len(pieces) >= MAX_CHUNKS:
        raise ValueError(f"text too long: {len(body)} bytes would need {len(pieces)} parts")
    ident = messageId or "{" + str(uuid.uuid4()).upper() + "}"
    first = _textHeaders(format) + [("Message-ID", ident), ("Chunks", str(len(pieces)))]
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


def splitAddress(text: str) -> tuple[str, Optional[str]]:
    """
    C{"bob@example.com;{guid}"} to C{("bob@example.com", "{guid}")}; the
    address is lower-cased so that it can be compared.
    """
    address, sep, guid = text.partition(";")
    return normalizeEmail(address), (guid or None) if sep else None


def _endpointKey(guid: str) -> str:
    """
    The key one place of a participant is tracked under: servers echo a
    GUID in any case, with or without braces, and the C{JOI} and C{BYE} of
    one place must still meet. An empty C{{}} keeps a key of its own rather
    than failing, so a peer cannot break the bookkeeping with it.
    """
    try:
        return normalizeGuid(guid)
    except ValueError:
        return ""


# -- the connection -----------------------------------------------------------


class SwitchboardProtocol(MSNPProtocol):
    """
    One switchboard connection (client side).

    It authenticates (L{authenticate} or L{answer}), invites (L{call}),
    sends messages and reports what arrives to its C{listener} (a
    L{Conversation}): C{switchboardJoined(protocol, email, guid, name)},
    C{switchboardLeft(protocol, email, guid)}, C{switchboardMessage(protocol,
    email, name, MimeMessage)} and C{switchboardClosed(protocol)}. Lines
    about the user's own address (other endpoints, the self-C{JOI} after
    C{ANS OK}) are dropped here.
    """

    receiving = Direction.FROM_SERVER

    def __init__(
        self,
        account: str,
        machineGuid: str,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = 30.0,
        trace: bool = False,
        chunkTimeout: float = CHUNK_TIMEOUT,
    ) -> None:
        super().__init__(
            clock=clock, requestTimeout=requestTimeout, maxPayloadLength=64 * 1024, trace=trace
        )
        self.account = normalizeEmail(account)
        self.machineGuid = machineGuid
        self.listener: Any = None
        self.sessionId: Optional[str] = None
        self.assembler = ChunkAssembler(self.clock, timeout=chunkTimeout)
        self.closed = False
        self._whenClosed: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<SwitchboardProtocol account={self.account!r} session={self.sessionId!r}>"

    @property
    def endpointAddress(self) -> str:
        """
        C{account;{guid}}: how this place names itself on a switchboard, so
        that with MPOP the other places of the account are told apart.
        """
        return f"{self.account};{self.machineGuid}"

    # -- requests -------------------------------------------------------------

    def authenticate(self, authToken: str) -> "Deferred[Command]":
        """
        C{USR trid account;{guid} token}; fires with the C{USR OK} reply.
        """
        return self.sendCommand("USR", self.endpointAddress, authToken)

    def answer(self, authToken: str, sessionId: str) -> "Deferred[Command]":
        """
        C{ANS trid account;{guid} token sessionId}; the C{IRO} lines that
        come first go to the listener; fires with C{ANS trid OK}.
        """
        self.sessionId = sessionId
        return self.sendCommand("ANS", self.endpointAddress, authToken, sessionId, expect=("ANS",))

    def call(self, email: str) -> "Deferred[Optional[str]]":
        """
        Invite C{email}: fires with the session id of C{CAL trid RINGING sid},
        or L{None} on C{215} (already there, harmless).

        @raise ContactOffline: C{217} (offline, hidden or unknown).
        """

        def ringing(reply: Command) -> Optional[str]:
            if reply.arg(0) == "RINGING" and reply.arg(1):
                self.sessionId = reply.arg(1)
            return self.sessionId

        def failed(failure: Failure) -> Optional[str]:
            error = failure.check(ServerError) and failure.value
            if isinstance(error, ServerError):
                if error.code == 217:
                    raise ContactOffline(f"{email} is offline or does not exist")
                if error.code == 215:
                    return None
            failure.raiseException()
            return None  # pragma: no cover

        return self.sendCommand("CAL", email).addCallbacks(ringing, failed)

    def sendMessage(self, mode: str, payload: bytes, timeout: Optional[float] = -1.0) -> "Deferred[Command]":
        """
        C{MSG trid A|D len} waiting for C{ACK} or C{NAK} (the reply is the
        Command; the caller tells them apart).
        """
        return self.sendCommand("MSG", mode, payload=payload, expect=("ACK", "NAK"), timeout=timeout)

    def sendUnacknowledged(self, mode: str, payload: bytes) -> None:
        """
        C{MSG trid U|N len}: nobody waits for a reply.
        """
        self.sendNoReply("MSG", mode, payload=payload)

    def leave(self) -> None:
        """
        C{OUT}, then close our side.
        """
        if self.connected and self.transport is not None:
            self.sendNoReply("OUT", withTrid=False)
            self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the connection now.
        """
        if self.transport is not None and self.connected:
            abort = getattr(self.transport, "abortConnection", None)
            (abort or self.transport.loseConnection)()

    def whenClosed(self) -> "Deferred[None]":
        """
        Fires once the connection is gone.
        """
        if self.closed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._whenClosed.append(d)
        return d

    # -- events -----------------------------------------------------------------

    def _tell(self, event: str, *args: Any) -> None:
        method = getattr(self.listener, event, None)
        if method is not None:
            method(self, *args)

    def _participant(self, command: Command, first: int) -> None:
        address = command.arg(first)
        if not address:
            return
        email, guid = splitAddress(address)
        if email == self.account:
            return
        name = decodeParameter(command.arg(first + 1, email))
        self._tell("switchboardJoined", email, guid, name)

    def handle_JOI(self, command: Command) -> None:
        self._participant(command, 0)

    def handle_IRO(self, command: Command) -> None:
        # IRO trid index total address name caps
        self._participant(command, 2)

    def handle_BYE(self, command: Command) -> None:
        address = command.arg(0)
        if not address:
            return
        email, guid = splitAddress(address)
        if email == self.account:
            return
        self._tell("switchboardLeft", email, guid)

    def handle_MSG(self, command: Command) -> None:
        sender, _ = splitAddress(command.arg(0))
        if not sender or command.payload is None:
            return
        if sender == self.account:
            log.debug("Ignoring a message from another place of ours")
            return
        name = decodeParameter(command.arg(1, sender))
        try:
            mime = parseMime(command.payload)
        except MalformedMime as e:
            log.info("Ignoring a message from {sender}: {error}", sender=sender, error=str(e))
            return
        whole = self.assembler.feed(sender, mime)
        if whole is not None:
            self._tell("switchboardMessage", sender, name, whole)

    def handle_OUT(self, command: Command) -> None:
        # The server is closing this switchboard (shutdown, idle).
        log.info("Switchboard closed by the server: {reason}", reason=command.arg(0, "-"))
        if self.transport is not None:
            self.transport.loseConnection()

    def handle_ACK(self, command: Command) -> None:
        log.debug("Late or unexpected ACK {trid}", trid=command.trid)

    def handle_NAK(self, command: Command) -> None:
        log.debug("Late or unexpected NAK {trid}", trid=command.trid)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self.connected = False
        self.assembler.clear()
        # The listener hears of the close before the pending acknowledgements
        # fail, so that a message sent from their errbacks goes to a new
        # switchboard instead of this dead one.
        self._tell("switchboardClosed")
        MSNPProtocol.connectionLost(self, reason)
        waiters, self._whenClosed = self._whenClosed, []
        for d in waiters:
            d.callback(None)


# -- conversations ------------------------------------------------------------

Connector = Callable[[str, SwitchboardProtocol], "Deferred[Any]"]


def _splitHostPort(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProtocolError(f"bad switchboard address {address!r}")
    return host.strip("[]"), int(port)


def tcpConnector(reactor: Any, timeout: float) -> Connector:
    """
    A connector that opens a TCP connection to C{host:port} on C{reactor}
    with a connect timeout.
    """
    from twisted.internet.abstract import isIPAddress
    from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint

    from msnp.endpoints import connectQuietly

    def connect(address: str, protocol: SwitchboardProtocol) -> "Deferred[Any]":
        host, port = _splitHostPort(address)
        if isIPAddress(host):
            endpoint: Any = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        else:
            endpoint = HostnameEndpoint(reactor, host.encode("idna"), port, timeout=timeout)
        return connectQuietly(endpoint, protocol)

    return connect


@dataclass
class _Outgoing:
    payloads: list[bytes]
    mode: str
    deferred: "Deferred[None]" = field(repr=False)


class Conversation:
    """
    A conversation with one or more contacts.

    It outlives its switchboards: when one closes (idle, everyone left),
    the observer hears C{conversationEnded}, and the next L{sendText},
    L{sendNudge} or L{invite} opens a new switchboard and calls the same
    people again. What is sent while a switchboard is being set up is
    queued and written in order once someone has joined.

    @ivar participants: the addresses present on the current switchboard
        (never the user's own).
    """

    def __init__(self, manager: "ConversationManager", people: Sequence[str] = ()) -> None:
        self.manager = manager
        self.participants: set[str] = set()
        self.names: dict[str, str] = {}
        self._callList: set[str] = {normalizeEmail(p) for p in people}
        self._switchboard: Optional[SwitchboardProtocol] = None
        self._state = "idle"  # idle, connecting, ready
        self._queue: list[_Outgoing] = []
        self._opening: Optional[Deferred[None]] = None
        self._readyWaiters: list[Deferred[None]] = []
        self._joinWaiters: dict[str, list[Deferred[None]]] = {}
        self._firstJoin: Optional[Deferred[None]] = None
        self._invitation: Optional[Invitation] = None
        self._endpoints: dict[str, set[str]] = {}
        self._called: set[str] = set()

    def __repr__(self) -> str:
        return f"<Conversation with {sorted(self.participants or self._callList)} ({self._state})>"

    @property
    def isActive(self) -> bool:
        """
        Whether a switchboard is open and usable now.
        """
        return self._state == "ready"

    @property
    def contacts(self) -> frozenset[str]:
        """
        The people this conversation calls when it (re)opens a switchboard.
        """
        return frozenset(self._callList)

    # -- user API ----------------------------------------------------------------

    def sendText(self, text: str, format: Optional[MessageFormat] = None) -> "Deferred[None]":
        """
        Send a text (ack mode C{A}); split into parts when too long.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the switchboard acknowledged every
            part, failing with L{MessageNotDelivered} on C{NAK}, on the
            acknowledgement timeout, when the switchboard closes first, or
            when no switchboard could be opened.
        """
        d: Deferred[None] = Deferred()
        try:
            payloads = buildTextPayloads(text, format)
        except ValueError as e:
            d.errback(MessageNotDelivered(str(e)))
            return d
        self._submit(_Outgoing(payloads, "A", d))
        return d

    def sendNudge(self) -> "Deferred[None]":
        """
        Send a nudge (ack mode C{N}); fires once it is written, fails with
        L{MessageNotDelivered} if no switchboard could be opened.
        """
        d: Deferred[None] = Deferred()
        self._submit(_Outgoing([buildNudgePayload()], "N", d))
        return d

    def sendTyping(self) -> None:
        """
        Tell the others the user is typing (ack mode C{U}). Only sent on an
        open switchboard: a typing notification is not worth opening one.
        """
        if self._isUsable() and self._switchboard is not None:
            self._switchboard.sendUnacknowledged("U", buildTypingPayload(self.manager.account))

    def invite(self, email: str) -> "Deferred[None]":
        """
        Bring C{email} into this conversation.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing when C{email} has joined; failing with
            L{ContactOffline} (C{217}), L{RequestTimeout} if they do not
            join within the set-up timeout, or L{ConnectionLost}.
        """
        email = normalizeEmail(email)
        if email in self.participants:
            return succeed(None)
        self._callList.add(email)
        waiter: Deferred[None] = Deferred()
        self._joinWaiters.setdefault(email, []).append(waiter)
        timer = self.manager.reactor.callLater(self.manager.setupTimeout, self._inviteTimedOut, email, waiter)

        def stopTimer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        waiter.addBoth(stopTimer)
        if self._isUsable() and self._switchboard is not None:
            self._called.add(email)
            self._switchboard.call(email).addErrback(self._inviteFailed, email)
        else:
            self._ensureOpen()
        return waiter

    def leave(self) -> "Deferred[None]":
        """
        Leave the switchboard (C{OUT}); what is still queued fails with
        L{MessageNotDelivered}. The conversation can be used again later (a
        new switchboard is opened).

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the connection is closed.
        """
        self._failQueue(MessageNotDelivered("the conversation was closed"))
        switchboard = self._switchboard
        if self._opening is not None:
            self._opening.cancel()
        if switchboard is None or switchboard.closed or switchboard.transport is None:
            return succeed(None)
        d = switchboard.whenClosed()
        switchboard.leave()
        return d

    # -- sending ------------------------------------------------------------------

    def _submit(self, item: _Outgoing) -> None:
        if self._isUsable() and not self._queue:
            self._transmit(item)
        else:
            self._queue.append(item)
            self._ensureOpen()

    def _isUsable(self) -> bool:
        return self._state == "ready" and self._switchboard is not None and not self._switchboard.closed

    def _transmit(self, item: _Outgoing) -> None:
        switchboard = self._switchboard
        assert switchboard is not None
        if item.mode in ("U", "N"):
            for payload in item.payloads:
                switchboard.sendUnacknowledged(item.mode, payload)
            item.deferred.callback(None)
            return
        acks = [
            switchboard.sendMessage(item.mode, payload, timeout=self.manager.ackTimeout)
            for payload in item.payloads
        ]

        def outcome(results: list[tuple[bool, Any]]) -> None:
            for ok, value in results:
                if not ok:
                    error = value.value
                    if isinstance(error, RequestTimeout):
                        raise MessageNotDelivered("no acknowledgement from the switchboard") from error
                    if isinstance(error, ConnectionLost):
                        raise MessageNotDelivered("the switchboard closed before acknowledging") from error
                    raise MessageNotDelivered(f"not delivered: {error}") from error
                if value.name == "NAK":
                    raise MessageNotDelivered("the switchboard could not deliver the message (NAK)")

        DeferredList(acks, consumeErrors=True).addCallback(outcome).chainDeferred(item.deferred)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for item in queue:
            if self._state != "ready":
                self._queue.append(item)
                continue
            self._transmit(item)

    def _failQueue(self, error: Exception) -> None:
        queue, self._queue = self._queue, []
        for item in queue:
            item.deferred.errback(Failure(error))

    # -- opening ------------------------------------------------------------------

    def _whenReady(self) -> "Deferred[None]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing when a switchboard is ready (opening one if
        needed), or failing with the reason it could not be opened.
        """
        if self._isUsable():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._readyWaiters.append(waiter)
        self._ensureOpen()
        return waiter

    def _ensureOpen(self) -> None:
        """
        Start setting up a switchboard unless one is open or opening.
        """
        if self._state == "idle":
            self._state = "connecting"
            invitation, self._invitation = self._invitation, None
            opening = ensureDeferred(self._open(invitation))
            opening.addTimeout(self.manager.setupTimeout, self.manager.reactor)
            self._opening = opening
            opening.addCallbacks(self._opened, self._openFailed)

    async def _open(self, invitation: Optional[Invitation]) -> None:
        manager = self.manager
        switchboard = SwitchboardProtocol(
            manager.account,
            manager.machineGuid,
            clock=manager.reactor,
            requestTimeout=manager.requestTimeout,
            trace=manager.trace,
        )
        switchboard.listener = self
        self._switchboard = switchboard
        self._called = set()
        firstJoin: Deferred[None] = Deferred()
        self._firstJoin = firstJoin
        try:
            if invitation is not None:
                await manager.connector(invitation.address, switchboard)
                await switchboard.answer(invitation.authToken, invitation.sessionId)
                return
            ticket = await manager.requestSwitchboard()
            await manager.connector(ticket.address, switchboard)
            await switchboard.authenticate(ticket.authToken)
            if not self._callList:
                raise ProtocolError("nobody to call")
            people = sorted(self._callList)
            self._called.update(people)
            results: list[tuple[bool, Any]] = await DeferredList(  # type: ignore[assignment]
                [switchboard.call(email) for email in people], consumeErrors=True
            )
            failures = [value for ok, value in results if not ok]
            for email, (ok, value) in zip(people, results):
                if not ok:
                    self._inviteFailed(value, email)
            if len(failures) == len(people):
                failures[0].raiseException()
            await firstJoin
        except BaseException:
            switchboard.listener = None
            switchboard.abort()
            raise
        finally:
            # Nobody else waits on it: never leave a failure unhandled.
            firstJoin.addErrback(lambda _: None)

    def _opened(self, _: None) -> None:
        self._opening = None
        self._firstJoin = None
        self._state = "ready"
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.callback(None)
        switchboard = self._switchboard
        if not self.participants and switchboard is not None:
            # Answered an invitation, but the inviter had already gone: this
            # switchboard is of no use; queued messages go to a new one.
            log.info("Nobody left on the switchboard just joined; leaving it")
            self._detach()
            switchboard.leave()
            return
        if switchboard is not None:
            # invite() calls made while this switchboard was being set up.
            for email in sorted(set(self._joinWaiters) - self._called - self.participants):
                self._called.add(email)
                switchboard.call(email).addErrback(self._inviteFailed, email)
        self._flush()

    def _openFailed(self, failure: Failure) -> None:
        self._opening = None
        self._firstJoin = None
        self._switchboard = None
        self._state = "idle"
        self.participants.clear()
        self._endpoints.clear()
        error = failure.value
        if isinstance(error, DeferredTimeoutError):
            error = RequestTimeout("the switchboard was not set up in time")
        elif isinstance(error, CancelledError):
            error = ConnectionLost("the switchboard set-up was cancelled")
        if not isinstance(error, MSNPError):
            error = ConnectionLost(f"could not open a switchboard: {error}")
        log.info("Could not open a switchboard for {conv}: {error}", conv=self, error=str(error))
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.errback(Failure(error))
        queued = MessageNotDelivered(f"no switchboard: {error}")
        queued.__cause__ = error
        self._failQueue(queued)
        self._failJoinWaiters(error)

    def _inviteFailed(self, failure: Failure, email: str) -> None:
        waiters = self._joinWaiters.pop(email, [])
        if isinstance(failure.value, ContactOffline) and email not in self.participants:
            if len(self._callList) > 1:
                self._callList.discard(email)
        for d in waiters:
            d.errback(failure.value)

    def _inviteTimedOut(self, email: str, waiter: Deferred[None]) -> None:
        waiters = self._joinWaiters.get(email, [])
        if waiter in waiters:
            waiters.remove(waiter)
            waiter.errback(RequestTimeout(f"{email} did not join"))

    def _failJoinWaiters(self, error: Exception) -> None:
        pending, self._joinWaiters = self._joinWaiters, {}
        for waiters in pending.values():
            for d in waiters:
                d.errback(Failure(error))

    def _answer(self, invitation: Invitation) -> "Deferred[None]":
        """
        Join the switchboard of C{invitation}.
        """
        self._callList.add(normalizeEmail(invitation.inviter))
        if invitation.inviterName:
            self.names[normalizeEmail(invitation.inviter)] = invitation.inviterName
        self._invitation = invitation
        return self._whenReady()

    # -- switchboard events ------------------------------------------------------

    def switchboardJoined(
        self, switchboard: SwitchboardProtocol, email: str, guid: Optional[str], name: str
    ) -> None:
        if switchboard is not self._switchboard:
            return
        self.names[email] = name
        if guid is not None:
            self._endpoints.setdefault(email, set()).add(_endpointKey(guid))
        isNew = email not in self.participants
        self.participants.add(email)
        self._callList.add(email)
        if self._firstJoin is not None and not self._firstJoin.called:
            self._firstJoin.callback(None)
        for d in self._joinWaiters.pop(email, []):
            d.callback(None)
        if isNew:
            notifyObserver(self.manager.observer, "participantJoined", self, email)

    def switchboardLeft(self, switchboard: SwitchboardProtocol, email: str, guid: Optional[str]) -> None:
        """
        A C{BYE}. With MPOP a person leaves with one line per endpoint and
        one bare line: the bare line, or the line of the last endpoint we
        knew of, removes them; the other lines change nothing.
        """
        if switchboard is not self._switchboard or email not in self.participants:
            return
        if guid is not None:
            endpoints = self._endpoints.get(email, set())
            endpoints.discard(_endpointKey(guid))
            if endpoints:
                return
        self._endpoints.pop(email, None)
        self.participants.discard(email)
        if self.participants:
            self._callList.discard(email)
        notifyObserver(self.manager.observer, "participantLeft", self, email)
        if not self.participants and self._state == "ready":
            # The last one left: this switchboard is finished (reference 6.3).
            self._detach()
            switchboard.leave()

    def switchboardMessage(
        self, switchboard: SwitchboardProtocol, email: str, name: str, message: MimeMessage
    ) -> None:
        if switchboard is not self._switchboard:
            return
        observer = self.manager.observer
        kind = message.contentType
        if kind == "text/plain":
            formatHeader = message.header("X-MMS-IM-Format")
            format = MessageFormat.fromHeader(formatHeader) if formatHeader else MessageFormat()
            text = message.body.decode("utf-8", "replace")
            notifyObserver(observer, "messageReceived", self, TextMessage(email, name, text, format))
        elif kind == "text/x-msmsgscontrol":
            # The sender, not the TypingUser header: a peer cannot make
            # someone else appear to type.
            notifyObserver(observer, "typingReceived", self, email)
        elif kind == "text/x-msnmsgr-datacast":
            ident = datacastId(message)
            if ident == 1:
                notifyObserver(observer, "nudgeReceived", self, email)
            else:
                log.info("Ignoring datacast {id} from {sender}", id=ident, sender=email)
        elif kind in ("text/x-clientcaps", "text/x-clientinfo", "text/x-keepalive"):
            pass
        else:
            log.info("Ignoring a {kind!r} message from {sender}", kind=kind[:80], sender=email)

    def switchboardClosed(self, switchboard: SwitchboardProtocol) -> None:
        if switchboard is not self._switchboard:
            return
        if self._state == "connecting":
            if self._firstJoin is not None and not self._firstJoin.called:
                self._firstJoin.errback(ConnectionLost("the switchboard closed during set-up"))
            return
        self._detach()

    def _detach(self) -> None:
        """
        The current switchboard is finished: go dormant and say so.
        """
        wasReady = self._state == "ready"
        self._switchboard = None
        self._state = "idle"
        self.participants.clear()
        self._endpoints.clear()
        self._failJoinWaiters(ConnectionLost("the switchboard closed"))
        if wasReady:
            notifyObserver(self.manager.observer, "conversationEnded", self)
        if self._queue:
            # Something was submitted after the close was noticed: reopen.
            self._ensureOpen()


class ConversationManager:
    """
    Every conversation of one session.

    Observer events (through L{notifyObserver}): C{conversationStarted} when
    an invitation was answered (a conversation opened with
    L{openConversation} is handed back by its L{Deferred} instead);
    C{participantJoined} / C{participantLeft} for each person (once, however
    many places they are signed in at), C{messageReceived} with a
    L{TextMessage}, C{typingReceived}, C{nudgeReceived}, and
    C{conversationEnded} when a conversation's switchboard closes (the
    conversation stays usable: the next text opens a new one).

    @ivar conversations: the conversations in use (active or dormant),
        newest last.
    """

    def __init__(
        self,
        account: str,
        machineGuid: str,
        displayName: Callable[[], str],
        requestSwitchboard: Callable[[], "Deferred[SwitchboardTicket]"],
        observer: Any = None,
        reactor: Any = None,
        connectTimeout: float = 30.0,
        setupTimeout: float = 60.0,
        ackTimeout: float = 30.0,
        requestTimeout: float = 30.0,
        trace: bool = False,
        connector: Optional[Connector] = None,
    ) -> None:
        """
        @param displayName: returns the user's current display name.
        @param requestSwitchboard: sends C{XFR SB} on the NS.
        @param reactor: for connections and timeouts.
        @param connectTimeout: seconds for the TCP connection.
        @param setupTimeout: seconds for a whole set-up (connect, C{USR},
            C{CAL}, first C{JOI}; or connect, C{ANS}).
        @param ackTimeout: seconds a text waits for its C{ACK}.
        @param connector: opens a connection for a protocol (tests pass a
            fake one); by default a TCP connector on C{reactor}.
        """
        self.account = normalizeEmail(account)
        self.machineGuid = machineGuid
        self.displayName = displayName
        self.requestSwitchboard = requestSwitchboard
        self.observer = observer
        self.reactor = reactorOrDefault(reactor)
        self.connectTimeout = connectTimeout
        self.setupTimeout = setupTimeout
        self.ackTimeout = ackTimeout
        self.requestTimeout = requestTimeout
        self.trace = trace
        self.connector: Connector = connector or tcpConnector(self.reactor, connectTimeout)
        self.conversations: list[Conversation] = []
        self._closed = False

    def _find(self, email: str) -> Optional[Conversation]:
        for conversation in self.conversations:
            if conversation.contacts == {email}:
                return conversation
        return None

    def _forgetIfUnused(self, conversation: Conversation) -> None:
        """
        Drop a conversation whose set-up failed, unless it is in use after
        all (another set-up succeeded, or messages wait in its queue for
        the next attempt), so that failed attempts do not pile up.
        """
        if not conversation.isActive and conversation in self.conversations and not conversation._queue:
            self.conversations.remove(conversation)

    def openConversation(self, email: str) -> "Deferred[Conversation]":
        """
        A conversation with C{email}: the open (or dormant) one-to-one
        conversation with them if there is one, else a new one.

        @return: a L{Deferred} firing with the L{Conversation} once C{email}
            has joined; failing with L{ContactOffline} (C{217}),
            L{RequestTimeout}, L{ConnectionLost} or L{ServerError}; with
            L{ValueError} for your own address (as a failed L{Deferred}, like
            every other outcome, never raised).
        """
        email = normalizeEmail(email)
        if email == self.account:
            return fail(ValueError("cannot open a conversation with yourself"))
        conversation = self._find(email)
        if conversation is None:
            conversation = Conversation(self, [email])
            self.conversations.append(conversation)
        created = conversation

        def failed(failure: Failure) -> Failure:
            self._forgetIfUnused(created)
            return failure

        return conversation._whenReady().addCallbacks(lambda _: created, failed)

    def invited(self, invitation: Invitation) -> None:
        """
        Answer an invitation (C{RNG}) and tell the observer
        C{conversationStarted} once the switchboard is joined. A dormant
        one-to-one conversation with the inviter is reused.
        """
        if self._closed:
            return
        inviter = normalizeEmail(invitation.inviter)
        conversation = self._find(inviter)
        if conversation is None or conversation._state != "idle":
            conversation = Conversation(self, [])
            self.conversations.append(conversation)
        answered = conversation

        def started(_: None) -> None:
            notifyObserver(self.observer, "conversationStarted", answered)

        def failed(failure: Failure) -> None:
            log.info("Could not answer an invitation from {inviter}: {error}", inviter=inviter,
                     error=failure.getErrorMessage())
            self._forgetIfUnused(answered)

        conversation._answer(invitation).addCallbacks(started, failed)

    def closeAll(self) -> None:
        """
        Leave every conversation (logout).
        """
        self._closed = True
        conversations, self.conversations = self.conversations, []
        for conversation in conversations:
            conversation.leave()
