# -*- test-case-name: test.test_server_notification -*-
"""
The local network's dispatch server (DS): the first connection of a login.

It only negotiates the version and sends the client on to the notification
server with C{XFR trid NS host:port U D} (reference sections 2.2–2.4). Like
the real service it is strict about order: anything before C{VER}, or any
command other than C{VER}/C{CVR}/C{USR SSO I} afterwards, ends the
connection. The version and C{CVR} helpers here are shared with the
notification server, which starts its conversation the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from msnp.server.connection import ServerConnection
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits, summarise
from msnp.wire import Command, Direction

if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.interfaces import IAddress

log = Logger()

#: The versions the local network speaks, best first (reference section 9).
SUPPORTED_VERSIONS = ("MSNP18", "MSNP17", "MSNP16", "MSNP15")

#: The recommended/minimum versions and URLs of the C{CVR} reply. Nothing
#: acts on them; they only have to look plausible (reference section 2.3).
CVR_REPLY = (
    "14.0.8089",
    "14.0.8089",
    "14.0.8089",
    "http://download.example.invalid/wlsetup.exe",
    "http://messenger.example.invalid",
)

#: How many fields a well-formed C{CVR} carries after its TrID.
CVR_FIELDS = 8


def selectVersion(offered: tuple[str, ...]) -> Optional[str]:
    """
    The best version both sides speak, or L{None}.

    The offer must end its list with the literal C{CVR0}, as every MSNP
    client since MSNP8 does; a server treats a C{VER} without it as a
    protocol error (reference section 7.2), so this does too.

    @param offered: the arguments of the client's C{VER} (TrID excluded).
    """
    if "CVR0" not in offered:
        return None
    for version in SUPPORTED_VERSIONS:
        if version in offered:
            return version
    return None


def versionNumber(version: str) -> int:
    """
    C{"MSNP18"} -> C{18}.
    """
    return int(version[4:])


def cvrIsPlausible(command: Command) -> bool:
    """
    Whether a C{CVR} carries its eight fields (locale .. account).
    """
    return len(command.arguments) >= CVR_FIELDS


class LoginPreamble(ServerConnection):
    """
    The part of a login both servers share: C{VER} first, then C{CVR}.

    @ivar version: the negotiated version (C{"MSNP18"}), L{None} before C{VER}.
    """

    receiving = Direction.FROM_CLIENT
    log = Logger()

    def __init__(
        self,
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        super().__init__(clock=clock, limits=limits, timerClock=timerClock)
        self.version: Optional[str] = None

    @property
    def protocolVersion(self) -> int:
        """
        The negotiated version as a number (18 before negotiation).
        """
        return versionNumber(self.version) if self.version else 18

    def reply(self, name: str, trid: Optional[int], *arguments: str, payload: Optional[bytes] = None) -> None:
        """
        Send one line with an explicit TrID (the client's, or 0).
        """
        self.sendRaw(Command(name, trid, tuple(arguments), payload))

    def error(self, code: int, trid: Optional[int]) -> None:
        """
        Send a numeric error without payload.
        """
        self.sendRaw(Command(str(code), trid, ()))

    def drop(self, why: str) -> None:
        """
        Close the connection after whatever was already written.
        """
        self.log.info("Closing {kind} connection: {why}", kind=type(self).__name__, why=why)
        if self.transport is not None:
            self.transport.loseConnection()

    def commandReceived(self, command: Command) -> None:
        if self.version is None and command.name != "VER":
            self.drop(f"{summarise(command.name, 16)} before VER")
            return
        super().commandReceived(command)

    def handle_VER(self, command: Command) -> None:
        if self.version is not None:
            self.log.info("Ignoring a second VER")
            return
        chosen = selectVersion(command.arguments)
        if chosen is None:
            self.reply("VER", command.trid, "0")
            self.drop("no common protocol version")
            return
        self.version = chosen
        self.reply("VER", command.trid, chosen)

    def handle_CVR(self, command: Command) -> None:
        if not cvrIsPlausible(command):
            self.error(710, command.trid)
            self.drop("bad CVR parameters")
            return
        self.reply("CVR", command.trid, *CVR_REPLY)


class DispatchServer(LoginPreamble):
    """
    The DS conversation: C{VER}, C{CVR}, C{USR trid SSO I account} and the
    redirect to the notification server. Anything else closes the
    connection, as the real dispatch servers did.
    """

    def __init__(
        self,
        notificationAddress: Callable[[], str],
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        """
        @param notificationAddress: returns the C{host:port} of the
            notification server to redirect to (known once it listens).
        """
        super().__init__(clock=clock, limits=limits, timerClock=timerClock)
        self.notificationAddress = notificationAddress

    def handle_USR(self, command: Command) -> None:
        if command.arguments[:2] != ("SSO", "I") or len(command.arguments) < 3:
            self.drop("unexpected USR on the dispatch server")
            return
        self.log.info("Redirecting {account} to the notification server",
                      account=summarise(command.arguments[2], self.limits.logArgument))
        self.reply("XFR", command.trid, "NS", self.notificationAddress(), "U", "D")

    def unknownCommand(self, command: Command) -> None:
        self.drop(f"unexpected {summarise(command.name, 16)} on the dispatch server")

    def errorReceived(self, command: Command) -> None:
        self.drop("numeric command from a client")


class DispatchServerFactory(Factory):
    """
    Builds L{DispatchServer}s that redirect to C{notificationAddress()}.
    """

    def __init__(
        self,
        notificationAddress: Callable[[], str],
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        self.notificationAddress = notificationAddress
        self.clock = clock
        self.limits = limits
        self.timerClock = timerClock

    def buildProtocol(self, addr: Optional["IAddress"]) -> DispatchServer:
        protocol = DispatchServer(self.notificationAddress, clock=self.clock, limits=self.limits, timerClock=self.timerClock)
        protocol.factory = self
        return protocol
