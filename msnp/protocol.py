# -*- test-case-name: test.test_protocol -*-
"""
The framing and request layer shared by every MSNP connection (DS, NS, SB),
client or server side.

L{MSNPProtocol} turns the byte stream into L{Command}s with the codec of
L{msnp.wire}, using C{LineReceiver}'s raw mode for payloads; correlates
replies with requests by TrID; runs a timeout per request on an injectable
clock; and fails every pending request when the connection goes away. It
knows nothing of what the commands mean: subclasses add C{handle_XXX}
methods for the commands that arrive on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, ClassVar, Collection, Mapping, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from msnp.errors import ConnectionLost, ProtocolError, RequestTimeout, ServerError
from msnp.wire import (
    Command,
    Direction,
    MalformedLine,
    ParsedLine,
    isErrorCode,
    parseIncoming,
    serializeCommand,
)

#: Default cap on one command line, terminator excluded.
DEFAULT_MAX_LINE_LENGTH = 16 * 1024
#: Default cap on one payload. The largest legitimate payloads (address-book
#: ADL chunks, UBX of an account with many endpoints) are a few kilobytes.
DEFAULT_MAX_PAYLOAD_LENGTH = 1024 * 1024
#: Default seconds a request waits for its reply.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Seconds a clean close may take before the connection is aborted.
CLOSE_TIMEOUT = 10.0


@dataclass
class _PendingRequest:
    name: str
    expect: frozenset[str]
    deferred: "Deferred[Command]"
    timer: Optional[IDelayedCall] = field(default=None)


#: The largest slice of a read handed to L{LineReceiver} at once (see
#: L{MSNPProtocol.dataReceived}).
_FEED = 4096


class MSNPProtocol(LineReceiver):
    """
    One MSNP connection: framing, TrIDs, replies, timeouts.

    @cvar receiving: the direction of the commands this side reads;
        client protocols read L{Direction.FROM_SERVER}.
    @ivar clock: the clock for request timeouts.
    @ivar requestTimeout: default seconds before a request fails with
        L{RequestTimeout}; L{None} disables it.
    @ivar maxLineLength: longer lines drop the connection.
    @ivar maxPayloadLength: a larger announced payload drops the connection
        before a single byte of it is buffered.
    @ivar trace: log every command both ways (secrets redacted).
    """

    delimiter = b"\n"
    receiving: Direction = Direction.FROM_SERVER
    #: Lines a subclass reads without the general parser, by their first
    #: four bytes (C{b"NLN "}): a function of the protocol and the line
    #: (without its CR) that answers whether it dealt with the line. One
    #: that answers L{False} leaves the line to L{parseIncoming} and the
    #: C{handle_<NAME>} dispatch as if it did not exist, so a reader only
    #: takes the shapes it reads exactly as the general path would. Not
    #: used while tracing (the trace logs what the general path parsed).
    lineReaders: ClassVar[Mapping[bytes, Callable[[Any, bytes], bool]]] = {}
    log = Logger()
    # Per-connection state in slots (a thousand sessions each keep their
    # NS connection): the instance dict keeps only what Twisted's bases set.
    __slots__ = (
        "clock", "requestTimeout", "maxLineLength", "MAX_LENGTH", "maxPayloadLength", "trace",
        "_nextTrid", "_pending", "_payloadDeliver", "_payloadChunks", "_payloadReceived", "_broken",
        "_payloadLength",
    )

    def __init__(
        self,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT,
        maxLineLength: int = DEFAULT_MAX_LINE_LENGTH,
        maxPayloadLength: int = DEFAULT_MAX_PAYLOAD_LENGTH,
        trace: bool = False,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.clock: IReactorTime = clock
        self.requestTimeout = requestTimeout
        self.maxLineLength = maxLineLength
        # LineReceiver counts the CR of CRLF as part of the line; allow it,
        # and check the line without its terminator in lineReceived.
        self.MAX_LENGTH = maxLineLength + 1
        self.maxPayloadLength = maxPayloadLength
        self.trace = trace
        self._nextTrid = 1
        self._pending: dict[int, _PendingRequest] = {}
        self._payloadDeliver: Optional[Callable[[bytes], None]] = None
        self._payloadChunks: list[bytes] = []
        self._payloadReceived = 0
        self._broken = False
        self._payloadLength = 0

    # -- connection ---------------------------------------------------------

    def connectionMade(self) -> None:
        # MSNP is interactive: small commands waiting for their replies.
        # With Nagle's algorithm on, each one sits behind the peer's delayed
        # ACK (about 40 ms per message on loopback).
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            try:
                setNoDelay(True)
            except Exception:
                self.log.debug("Could not disable Nagle's algorithm on {transport!r}", transport=self.transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self._broken = True
        self._forgetBufferedData()
        message = reason.getErrorMessage()
        self.failAllPending(ConnectionLost(f"connection lost: {message}"))

    def _forgetBufferedData(self) -> None:
        # Nothing more will be read: release what was buffered at once.
        self.clearLineBuffer()
        self._payloadDeliver, self._payloadChunks = None, []
        self._payloadReceived = self._payloadLength = 0

    def failAllPending(self, error: Exception) -> None:
        """
        Fail every request still waiting for a reply with C{error}.
        """
        pending, self._pending = self._pending, {}
        for request in pending.values():
            if request.timer is not None and request.timer.active():
                request.timer.cancel()
            # An errback of an earlier request may have cancelled this one.
            if not request.deferred.called:
                request.deferred.errback(Failure(error))

    def protocolViolation(self, error: ProtocolError) -> None:
        """
        The peer broke the framing: log it, fail what is pending, and drop
        the connection. Nothing more is read from it.
        """
        if self._broken:
            return
        self._broken = True
        self._forgetBufferedData()
        self.log.warn("Dropping MSNP connection: {error}", error=str(error))
        self.failAllPending(error)
        if self.transport is not None:
            self.transport.loseConnection()

    # -- reading ------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._broken or self._isClosing():
            return
        try:
            if len(data) <= _FEED:
                LineReceiver.dataReceived(self, data)
            else:
                # LineReceiver copies the rest of its buffer for every line
                # it splits off: fed a 64 KiB read whole, it moves 32 KiB per
                # line on average, which costs more than reading a presence
                # line. Fed in slices, each copy stays small.
                for start in range(0, len(data), _FEED):
                    if self._broken or self._isClosing():
                        break
                    LineReceiver.dataReceived(self, data[start : start + _FEED])
        except Exception:
            self.log.failure("Unexpected error while reading MSNP data")
            self.protocolViolation(ProtocolError("internal error while reading"))
        if self._isClosing():
            # Once this side has asked to close (a handler dropped the
            # peer), LineReceiver stops reading lines; what it buffered,
            # and anything still in flight, will never be read.
            self._forgetBufferedData()

    def _isClosing(self) -> bool:
        return bool(getattr(self.transport, "disconnecting", False))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.protocolViolation(
            ProtocolError(f"line longer than {self.maxLineLength} bytes")
        )

    def lineReceived(self, line: bytes) -> None:
        if self._broken:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        if len(line) > self.maxLineLength:
            self.lineLengthExceeded(line)
            return
        reader = self.lineReaders.get(line[:4])
        if reader is not None and not self.trace:
            try:
                if reader(self, line):
                    return
            except Exception:
                self.log.failure("Error while reading {line!r}", line=line[:3])
                return
        try:
            parsed = parseIncoming(line, self.receiving)
        except MalformedLine as e:
            self.log.warn("Ignoring malformed MSNP line: {error}", error=str(e))
            if e.payloadLength:
                self.receivePayload(e.payloadLength, None)
            return
        if isinstance(parsed, Command):
            # No payload: the line is the whole command.
            self._dispatch(parsed)
            return
        length = parsed.payloadLength or 0
        if length == 0:
            self._dispatch(parsed.withPayload(b""))
        else:
            self.receivePayload(length, partial(self._dispatchWithPayload, parsed))

    def _dispatchWithPayload(self, parsed: ParsedLine, payload: bytes) -> None:
        self._dispatch(parsed.withPayload(payload))

    def receivePayload(self, length: int, deliver: Optional[Callable[[bytes], None]]) -> None:
        """
        Read the next C{length} bytes as a payload and hand them to
        C{deliver} (L{None}: count them and drop them, the payload of a
        malformed line). A line reader calls this for a payload command it
        read itself; an announced length above L{maxPayloadLength} drops
        the connection before a byte of it is kept.
        """
        if length > self.maxPayloadLength:
            self.protocolViolation(
                ProtocolError(
                    f"announced payload of {length} bytes exceeds the "
                    f"{self.maxPayloadLength}-byte limit"
                )
            )
            return
        self._payloadDeliver = deliver
        self._payloadChunks = []
        self._payloadReceived = 0
        self._payloadLength = length
        self.setRawMode()

    def rawDataReceived(self, data: bytes) -> None:
        if self._broken:
            return
        needed = self._payloadLength - self._payloadReceived
        deliver = self._payloadDeliver
        if not self._payloadReceived and len(data) >= needed:
            # The usual case, the whole payload in this read: no chunks.
            payload = data[:needed] if len(data) > needed else data
        else:
            chunk = data[:needed]
            if deliver is not None:
                self._payloadChunks.append(chunk)
            self._payloadReceived += len(chunk)
            if self._payloadReceived < self._payloadLength:
                return
            chunks, self._payloadChunks = self._payloadChunks, []
            payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._payloadDeliver = None
        self._payloadReceived = self._payloadLength = 0
        if deliver is not None:
            try:
                deliver(payload)
            except Exception:
                self.log.failure("Error while handling a payload")
        # What setLineMode does, without going through this class's
        # dataReceived (its checks were made by the call this one runs
        # in): LineReceiver, busy receiving, buffers the leftover bytes,
        # so this does not recurse once per payload command.
        self.line_mode = 1
        if len(data) > needed and not self._broken and not self._isClosing():
            LineReceiver.dataReceived(self, data[needed:])

    # -- dispatching ----------------------------------------------------------

    def _dispatch(self, command: Command) -> None:
        if self.trace:
            self.log.debug("<<< {line}", line=command.describe())
        try:
            # Look for a request only while one is waiting: most traffic
            # (presence, notifications) is pushed when none is.
            if self._pending and command.trid in self._pending:
                request = self._pending[command.trid]
                isError = command.isError
                if isError or command.name in request.expect:
                    del self._pending[command.trid]
                    if not self._pending:
                        # An emptied dict keeps its grown table (the
                        # sign-in's pipelined batch): an idle one is new.
                        self._pending = {}
                    if request.timer is not None and request.timer.active():
                        request.timer.cancel()
                    if isError:
                        assert command.errorCode is not None
                        request.deferred.errback(
                            ServerError(command.errorCode, request.name, command.payload)
                        )
                    else:
                        request.deferred.callback(command)
                    return
            self.commandReceived(command)
        except Exception:
            self.log.failure("Error while handling {command}", command=command.describe())

    def commandReceived(self, command: Command) -> None:
        """
        A command that is not the reply to a pending request: route it to
        C{handle_<NAME>}, numeric errors to L{errorReceived}, anything else
        to L{unknownCommand}.
        """
        name = command.name
        if isErrorCode(name):
            self.errorReceived(command)
            return
        handler = getattr(self, "handle_" + name, None)
        if handler is None:
            self.unknownCommand(command)
        else:
            handler(command)

    def errorReceived(self, command: Command) -> None:
        """
        A numeric error no request was waiting for.
        """
        self.log.info(
            "Unsolicited error {code} ({meaning})",
            code=command.name,
            meaning=ServerError(int(command.name)).meaning,
        )

    def unknownCommand(self, command: Command) -> None:
        """
        A command this protocol has no handler for: logged and ignored.
        """
        self.log.info("Ignoring unhandled command {command}", command=command.describe())

    # -- writing --------------------------------------------------------------

    def allocateTrid(self) -> int:
        trid = self._nextTrid
        self._nextTrid += 1
        return trid

    def sendRaw(self, command: Command) -> None:
        """
        Write C{command} exactly as given (TrID included).
        """
        self._writeCommand(command, serializeCommand(command.name, command.trid, command.arguments, command.payload))

    def _writeCommand(self, command: Command, data: bytes) -> None:
        if self.trace:
            self.log.debug(">>> {line}", line=command.describe())
        if self.transport is not None:
            self.transport.write(data)

    def sendNoReply(
        self, name: str, *arguments: str, payload: Optional[bytes] = None, withTrid: bool = True
    ) -> Optional[int]:
        """
        Send a command whose reply nobody waits for (C{PNG}, C{OUT}, C{MSG U}).

        @return: the TrID used, or L{None}.
        """
        trid = self.allocateTrid() if withTrid else None
        self.sendRaw(Command(name, trid, tuple(arguments), payload))
        return trid

    def sendCommand(
        self,
        name: str,
        *arguments: str,
        payload: Optional[bytes] = None,
        expect: Optional[Collection[str]] = None,
        timeout: Optional[float] = -1.0,
    ) -> "Deferred[Command]":
        """
        Send a command and wait for its reply.

        @param expect: names of commands that count as the reply (default:
            the command's own name). Other commands with the same TrID
            (C{IRO} before C{ANS OK}) go to the handlers.
        @param timeout: seconds to wait; the default uses
            C{self.requestTimeout}; L{None} waits without limit.
        @raise ValueError: an argument is empty or holds a space or line
            break (nothing is sent or registered then).
        @return: a L{Deferred} firing with the reply L{Command}, or failing
            with L{ServerError} (numeric error), L{RequestTimeout} or
            L{ConnectionLost}. Cancelling it forgets the request.
        """
        if timeout is not None and timeout < 0:
            timeout = self.requestTimeout
        trid = self.allocateTrid()
        command = Command(name, trid, tuple(arguments), payload)
        # Refuse bad arguments (ValueError) before anything is registered.
        data = serializeCommand(name, trid, command.arguments, payload)

        def cancel(d: "Deferred[Command]") -> None:
            request = self._pending.pop(trid, None)
            if request is not None and request.timer is not None and request.timer.active():
                request.timer.cancel()

        d: "Deferred[Command]" = Deferred(cancel)
        if self._broken or not self.connected:
            d.errback(ConnectionLost(f"cannot send {name}: not connected"))
            return d
        request = _PendingRequest(name, frozenset(expect or (name,)), d)
        if timeout is not None:
            request.timer = self.clock.callLater(timeout, self._timedOut, trid, timeout)
        self._pending[trid] = request
        self._writeCommand(command, data)
        return d

    def _timedOut(self, trid: int, timeout: float) -> None:
        request = self._pending.pop(trid, None)
        if request is not None:
            request.deferred.errback(
                RequestTimeout(f"no reply to {request.name} within {timeout:g}s")
            )

    @property
    def pendingCount(self) -> int:
        """
        How many requests are waiting for their replies.
        """
        return len(self._pending)


def abortTransport(transport: Any) -> None:
    """
    Drop a connection at once (C{abortConnection}), or close it when the
    transport cannot abort.
    """
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


class ClientProtocol(MSNPProtocol):
    """
    The lifecycle every client connection shares (the login preamble and
    notification connection, each switchboard): wait until it is gone
    (L{whenLost}), close it cleanly with a deadline or at once (L{close},
    L{abort}), and give up on a request nobody waits for (L{abandon}).

    @ivar lostReason: why the connection closed, once it has.
    """

    __slots__ = ("lostReason", "_lostWaiters")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        MSNPProtocol.__init__(self, *args, **kwargs)
        self.lostReason: Optional[Failure] = None
        self._lostWaiters: list[Deferred[None]] = []

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lostReason = reason
        MSNPProtocol.connectionLost(self, reason)
        waiters, self._lostWaiters = self._lostWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def whenLost(self) -> "Deferred[None]":
        """
        A L{Deferred} that fires once the connection is closed (at once if
        it already is or never was open).
        """
        d: Deferred[None] = Deferred()
        if self.lostReason is not None or self.transport is None:
            d.callback(None)
        else:
            self._lostWaiters.append(d)
        return d

    def close(self, abort: bool = False) -> "Deferred[None]":
        """
        Close the connection and fire when it is gone.

        @param abort: drop it at once, unsent data included (for failures).
        """
        if self.transport is not None and self.lostReason is None:
            if abort:
                abortTransport(self.transport)
            else:
                # A peer that stops reading keeps unsent data (and so the
                # connection) around forever; do not wait on it for long.
                timer = self.clock.callLater(CLOSE_TIMEOUT, abortTransport, self.transport)
                self._lostWaiters.append(
                    Deferred().addBoth(lambda _: timer.cancel() if timer.active() else None)
                )
                self.transport.loseConnection()
        return self.whenLost()

    def abandon(self, request: "Deferred[Any]") -> None:
        """
        Give up on a request nobody will wait for any more, leaving no
        unhandled failure behind. It is only cancelled while still pending:
        one being failed by L{failAllPending} right now must be left to it.
        """
        request.addErrback(lambda _: None)
        if any(p.deferred is request for p in self._pending.values()):
            request.cancel()

    def abort(self) -> None:
        """
        Drop the connection now, unsent data included.
        """
        if self.transport is not None and self.lostReason is None:
            abortTransport(self.transport)
