# -*- test-case-name: test.test_server_limits -*-
"""
What every MSNP connection of the local network does to stay bounded.

L{ServerConnection} sits between L{msnp.protocol.MSNPProtocol} and the DS,
NS and SB protocols. It owns four guarantees, each with its limit in
L{msnp.server.limits.ServerLimits}:

 - B{login timeout}: a connection that has not signed in within
   C{loginTimeout} seconds is closed, however slowly it trickles bytes;
 - B{idle timeout}: once signed in, every command (C{PNG} included)
   restarts the idle timer; silence for C{idleTimeout} closes it;
 - B{small payloads before login}: no login command carries a payload, so
   until L{signedInNow} the payload cap is C{preLoginPayload};
 - B{flow control}: the connection registers itself as the streaming
   producer of its transport. When the peer stops reading and the
   transport's buffer fills, Twisted pauses it; this stops reading the
   peer's requests (no more replies are made for it), and counts what is
   still written to it (pushes from other users). Past
   C{writeHighWater} queued bytes the connection is aborted, so a peer
   that never reads costs at most a bounded amount of memory.

Ignored lines are logged through L{logIgnored}: summarised, and only the
first C{ignoredLinesLogged} of a connection.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.protocol import DEFAULT_MAX_PAYLOAD_LENGTH, MSNPProtocol
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits, summarise
from msnp.wire import Command, Direction, serializeCommand


def describe(command: Command, limits: ServerLimits = DEFAULT_LIMITS) -> str:
    """
    A log-safe summary of a command a peer sent: its name, TrID, the first
    arguments shortened, and the payload only as a length.
    """
    parts = [summarise(command.name, 16)]
    if command.trid is not None:
        parts.append(str(command.trid))
    for argument in command.arguments[:4]:
        parts.append(summarise(argument, limits.logArgument))
    if len(command.arguments) > 4:
        parts.append(f"(+{len(command.arguments) - 4} arguments)")
    if command.payload:
        parts.append(f"[{len(command.payload)}-byte payload]")
    return " ".join(parts)


@implementer(IPushProducer)
class ServerConnection(MSNPProtocol):
    """
    An MSNP connection accepted by one of the local network's servers.

    @ivar limits: the limits in force.
    @ivar queuedBytes: bytes written while the transport was paused (the
        peer not reading); 0 while it reads.
    @ivar paused: whether the transport asked this connection to stop
        producing.
    """

    receiving = Direction.FROM_CLIENT

    def __init__(
        self,
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        maxPayloadLength: int = DEFAULT_MAX_PAYLOAD_LENGTH,
        idleTimeout: Optional[float] = None,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        """
        @param clock: the protocol's clock (login times, token lifetimes).
        @param timerClock: the clock of the login and idle timeouts; the
            protocol's clock by default. The local network passes its
            reactor, so that a test moving the ticket clock by hours does
            not time every connection out.
        """
        super().__init__(clock=clock, requestTimeout=None, maxPayloadLength=min(maxPayloadLength, limits.preLoginPayload))
        self.limits = limits
        self.timerClock: IReactorTime = timerClock if timerClock is not None else self.clock
        self.signedInPayloadLength = maxPayloadLength
        self.idleTimeout = limits.idleTimeout if idleTimeout is None else idleTimeout
        self.queuedBytes = 0
        self.paused = False
        self._loginTimer: Optional[IDelayedCall] = None
        self._idleTimer: Optional[IDelayedCall] = None
        self._ignoredLines = 0
        self._aborted = False

    # -- connection -----------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        register = getattr(self.transport, "registerProducer", None)
        if register is not None:
            try:
                register(self, True)
            except RuntimeError:
                # Something else already produces for this transport.
                pass
        self._loginTimer = self.timerClock.callLater(self.limits.loginTimeout, self._connectionTimedOut, "login timeout")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimers()
        MSNPProtocol.connectionLost(self, reason)

    def _cancelTimers(self) -> None:
        for timer in (self._loginTimer, self._idleTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._loginTimer = self._idleTimer = None

    def _connectionTimedOut(self, why: str) -> None:
        self._loginTimer = self._idleTimer = None
        self.log.info("Closing {kind} connection: {why}", kind=type(self).__name__, why=why)
        self.abort()

    def abort(self) -> None:
        """
        Close at once, dropping whatever is still queued for the peer.
        """
        self._aborted = True
        if self.transport is None:
            return
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def signedInNow(self) -> None:
        """
        The peer authenticated: the login timer stops, the idle timer
        starts, full-size payloads are accepted.
        """
        if self._loginTimer is not None and self._loginTimer.active():
            self._loginTimer.cancel()
        self._loginTimer = None
        self.maxPayloadLength = self.signedInPayloadLength
        self.touch()

    def touch(self) -> None:
        """
        Activity after sign-in: restart the idle timer.
        """
        if self._loginTimer is not None:
            return
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.reset(self.idleTimeout)
        elif not self._aborted:
            self._idleTimer = self.timerClock.callLater(self.idleTimeout, self._connectionTimedOut, "idle timeout")

    def commandReceived(self, command: Command) -> None:
        self.touch()
        super().commandReceived(command)

    # -- flow control -----------------------------------------------------------

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: stop reading requests until the
        peer catches up.
        """
        self.paused = True
        self.queuedBytes = 0
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resumeProducing(self) -> None:
        self.paused = False
        self.queuedBytes = 0
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None and not self._aborted:
            resume()

    def stopProducing(self) -> None:
        self.paused = True

    def hasRoomFor(self, size: int, limit: Optional[int] = None) -> bool:
        """
        Whether C{size} more bytes can be queued for the peer without
        passing C{limit} (the high-water mark by default).
        """
        if not self.paused:
            return True
        return self.queuedBytes + size <= (self.limits.writeHighWater if limit is None else limit)

    def sendRaw(self, command: Command) -> None:
        if self._aborted:
            return
        data = serializeCommand(command.name, command.trid, command.arguments, command.payload)
        if self.paused:
            if not self.hasRoomFor(len(data)):
                self.log.info(
                    "Closing {kind} connection: peer does not read ({queued} bytes queued)",
                    kind=type(self).__name__, queued=self.queuedBytes,
                )
                self.abort()
                return
            self.queuedBytes += len(data)
        if self.trace:
            self.log.debug(">>> {line}", line=command.describe())
        if self.transport is not None:
            self.transport.write(data)

    # -- logging ----------------------------------------------------------------

    def logIgnored(self, why: str, command: Command) -> None:
        """
        Log an ignored command, summarised; after C{ignoredLinesLogged} of
        them on this connection, only count.
        """
        self._ignoredLines += 1
        if self._ignoredLines <= self.limits.ignoredLinesLogged:
            self.log.info("{why}: {command}", why=why, command=describe(command, self.limits))
        elif self._ignoredLines == self.limits.ignoredLinesLogged + 1:
            self.log.info("Further ignored lines on this connection are not logged")
