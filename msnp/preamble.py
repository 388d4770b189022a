# -*- test-case-name: test.test_preamble -*-
"""
The first conversation of every login: C{VER}, C{CVR}, C{USR SSO I}
(reference sections 2.2-2.4 and 7.1).

It happens on the dispatch server and again on every notification server
the client is sent to. Its outcome is one of two things: an C{XFR NS}
redirect (close this connection, connect there, start over) or the SSO
challenge C{USR trid SSO S <policy> <nonce>}, which means this server is
the notification server and the login continues on the same connection.
Some servers play both roles, so the client never assumes which one it
reached. L{PreambleProtocol} holds that conversation; the notification
protocol inherits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Union

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from msnp.endpoints import ClientIdentity
from msnp.errors import ProtocolError, UnsupportedProtocol
from msnp.protocol import DEFAULT_REQUEST_TIMEOUT, ClientProtocol
from msnp.wire import Command, Direction

log = Logger()

#: The last C{GCF} policy document received, which later equal ones share.
_lastPolicy: Optional[bytes] = None

#: The port of an C{XFR NS} address written without one (papyon's rule).
DEFAULT_NS_PORT = 1863
#: How often one connection may be told to start over (C{XFR ... NS 0}).
MAX_RESTARTS = 3
#: The literal that ends the C{VER} offer (reference section 2.2).
CVR0 = "CVR0"

#: Told C{(step, done)} around each negotiation step.
Progress = Callable[[str, bool], None]

_VERSION = re.compile(r"^MSNP\d+$")


@dataclass(frozen=True)
class NSRedirect:
    """
    An C{XFR trid NS host:port ...}: sign in at another server.
    """

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SSOChallenge:
    """
    A C{USR trid SSO S <policy> <nonce>}: this server is the notification
    server; answer with a Passport ticket and the MBI response to C{nonce}.

    @ivar policy: the policy to request the C{messengerclear.live.com}
        token with (C{MBI_KEY_OLD}).
    @ivar nonce: the challenge text, used as ASCII, never decoded.
    """

    policy: str
    nonce: str


#: What L{PreambleProtocol.negotiate} finds out.
NegotiationResult = Union[NSRedirect, SSOChallenge]


def parseTransferAddress(token: str) -> Optional[NSRedirect]:
    """
    Read the address token of C{XFR trid NS <address> ...}.

    @return: the server to go to, or L{None} for the literal C{0}, which
        means "start over on this connection" (reference section 7.1).
    @raise ProtocolError: the token is not a usable address.
    """
    token = token.strip()
    if token == "0":
        return None
    host, sep, port = token.rpartition(":")
    if not sep or (host.startswith("[") is False and ":" in host):
        # No port (or a bare IPv6 address): the historical default.
        host, port = token, ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c in host for c in " /\\@"):
        raise ProtocolError(f"XFR NS with an unusable address {token!r}")
    if port == "":
        return NSRedirect(host, DEFAULT_NS_PORT)
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ProtocolError(f"XFR NS with an unusable port in {token!r}")
    return NSRedirect(host, int(port))


def parseTransfer(command: Command) -> Optional[NSRedirect]:
    """
    Read a whole C{XFR trid NS ...} reply (only the address token matters;
    the rest differs between protocol versions).

    @raise ProtocolError: not an C{NS} transfer, or no address.
    """
    if command.arg(0) != "NS" or len(command.arguments) < 2:
        raise ProtocolError(f"expected XFR NS, got {command.describe()}")
    return parseTransferAddress(command.arg(1))


def selectedVersion(command: Command, offered: tuple[str, ...]) -> str:
    """
    The version a server chose in its C{VER} reply: the first C{MSNPnn}
    token after the TrID (old servers echo C{CVR0} as well).

    @raise UnsupportedProtocol: the server answered C{0} or named no version.
    @raise ProtocolError: it chose a version that was never offered.
    """
    for token in command.arguments:
        if _VERSION.match(token):
            if token not in offered:
                raise ProtocolError(f"server chose {token}, which was not offered")
            return token
    raise UnsupportedProtocol(
        f"no common protocol version (offered {' '.join(offered)}; "
        f"server answered {' '.join(command.arguments) or 'nothing'})"
    )


class PreambleProtocol(ClientProtocol):
    """
    The client side of C{VER}/C{CVR}/C{USR SSO I}, on whichever server the
    login reached.

    @ivar account: the Passport address signing in.
    @ivar identity: what the client tells the server about itself.
    @ivar version: the negotiated protocol version, once known.
    @ivar policy: the C{GCF} policy document, if the server pushed one.
    """

    receiving = Direction.FROM_SERVER
    __slots__ = ("account", "identity", "version", "policy")

    def __init__(
        self,
        account: str,
        identity: ClientIdentity,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT,
        trace: bool = False,
    ) -> None:
        ClientProtocol.__init__(self, clock=clock, requestTimeout=requestTimeout, trace=trace)
        self.account = account
        self.identity = identity
        self.version: Optional[str] = None
        self.policy: Optional[bytes] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.account} {self.version or 'unnegotiated'}>"

    # -- the negotiation ----------------------------------------------------------

    def negotiate(self, progress: Optional[Progress] = None) -> "Deferred[NegotiationResult]":
        """
        Run C{VER}, C{CVR} and C{USR SSO I}, starting over (on the same
        connection) as often as the server says C{XFR ... NS 0}, up to
        L{MAX_RESTARTS} times.

        @param progress: told C{(step, False)} before and C{(step, True)}
            after each of C{"VER"} and C{"CVR"} (the login's step reports).

        @return: a L{Deferred} firing with an L{NSRedirect} or an
            L{SSOChallenge}, or failing with L{UnsupportedProtocol},
            L{msnp.errors.ServerError} (a numeric reply), L{ProtocolError},
            L{msnp.errors.RequestTimeout} or L{msnp.errors.ConnectionLost}.
        """
        return ensureDeferred(self._negotiate(progress))

    async def _negotiate(self, progress: Optional[Progress]) -> NegotiationResult:
        tell = progress if progress is not None else (lambda step, done: None)
        for _ in range(MAX_RESTARTS + 1):
            tell("VER", False)
            await self.negotiateVersion()
            tell("VER", True)
            tell("CVR", False)
            result = await self.identify()
            tell("CVR", True)
            if result is not None:
                return result
            log.debug("Server asked {account} to start over on the same connection", account=self.account)
        raise ProtocolError(f"server asked to start over more than {MAX_RESTARTS} times")

    async def negotiateVersion(self) -> str:
        """
        C{VER trid <versions> CVR0}; the chosen version is kept in L{version}.
        """
        offered = tuple(self.identity.protocolVersions)
        reply = await self.sendCommand("VER", *offered, CVR0)
        self.version = selectedVersion(reply, offered)
        return self.version

    async def identify(self) -> Optional[NegotiationResult]:
        """
        C{CVR} and C{USR SSO I}, sent back to back as WLM 2009 does.

        @return: the redirect or challenge, or L{None} for C{XFR ... NS 0}.
        """
        i = self.identity
        cvr = self.sendCommand(
            "CVR", i.localeId, i.osType, i.osVersion, i.architecture,
            i.clientName, i.clientVersion, i.brand, self.account,
        )
        usr = self.sendCommand("USR", "SSO", "I", self.account, expect=("USR", "XFR"))
        try:
            await cvr
        except BaseException:
            self.abandon(usr)
            raise
        reply = await usr
        if reply.name == "XFR":
            return parseTransfer(reply)
        return parseChallenge(reply)

    # -- unsolicited commands -------------------------------------------------------

    def handle_GCF(self, command: Command) -> None:
        """
        The server pushed its client policy (kept, never required). Every
        connection of a process gets the same document, so one copy is
        shared (issue 13: a session of many in one process).
        """
        global _lastPolicy
        payload = command.payload
        if payload is not None and payload == _lastPolicy:
            payload = _lastPolicy
        else:
            _lastPolicy = payload
        self.policy = payload

    def handle_SBS(self, command: Command) -> None:
        """
        C{SBS 0 null}: meaning unknown, ignored by every client.
        """

    def handle_CVR(self, command: Command) -> None:
        """
        A late or duplicate C{CVR} reply: nothing to do.
        """


def parseChallenge(command: Command) -> SSOChallenge:
    """
    Read C{USR trid SSO S <policy> <nonce>}.

    @raise ProtocolError: any other C{USR} reply.
    """
    if command.arg(0) != "SSO" or command.arg(1) != "S" or len(command.arguments) < 4:
        raise ProtocolError(f"expected USR SSO S <policy> <nonce>, got {command.describe()}")
    return SSOChallenge(policy=command.arg(2), nonce=command.arg(3))
