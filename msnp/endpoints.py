# -*- test-case-name: test.test_client -*-
"""
Where the services are, and who the client says it is.

Both are plain values a caller can build once and share: today's users point
msnp at revival networks and self-hosted servers, so every address a server
would decide is configurable, and the defaults are documented as the
historical Microsoft ones that no longer answer.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Optional
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.capabilities import advertisedCapabilities

_log = Logger()

#: The historical Microsoft addresses (all switched off long ago).
HISTORICAL_DISPATCH = "tcp:messenger.hotmail.com:1863"
HISTORICAL_SSO = "https://login.live.com/RST2.srf"
HISTORICAL_SHARING = "https://contacts.msn.com/abservice/SharingService.asmx"
HISTORICAL_ADDRESS_BOOK = "https://contacts.msn.com/abservice/abservice.asmx"
#: The historical RSI service (offline messages; see L{msnp.soap.rsi}).
HISTORICAL_RSI = "https://rsi.hotmail.com/rsi/rsi.asmx"
HISTORICAL_STORAGE = "https://storage.msn.com/storageservice/SchematizedStore.asmx"


@dataclass(frozen=True)
class Endpoints:
    """
    The network a client signs in to.

    @ivar dispatch: a Twisted client endpoint string for the dispatch
        server (C{"tcp:host:port"}); a server that is already the
        notification server works too.
    @ivar sso: URL of the Passport RST2 service.
    @ivar sharing: URL of the ABCH sharing (membership) service.
    @ivar addressBook: URL of the ABCH address-book service.
    @ivar rsi: URL of the RSI service the offline messages are fetched
        and deleted with (docs/offline.md).
    @ivar storage: URL of the storage service (the roaming profile:
        display name, personal message, display picture).
    @ivar trustRoot: path of a PEM file with the CA certificates to trust
        for https URLs, for self-signed revival servers; L{None} uses the
        platform's trust store. Certificates are always verified.
    """

    dispatch: str = HISTORICAL_DISPATCH
    sso: str = HISTORICAL_SSO
    sharing: str = HISTORICAL_SHARING
    addressBook: str = HISTORICAL_ADDRESS_BOOK
    rsi: str = HISTORICAL_RSI
    storage: str = HISTORICAL_STORAGE
    trustRoot: Optional[str] = None

    def replace(self, **changes: object) -> "Endpoints":
        """
        A copy with some fields changed.
        """
        return replace(self, **changes)  # type: ignore[arg-type]

    def cleartextURLs(self) -> dict[str, str]:
        """
        The service URLs that would travel in clear over a network: plain
        C{http} to a host that is not loopback. The SSO URL carries the
        password, the others the tickets and the address book.

        @return: field name (C{"sso"}, C{"sharing"}, C{"addressBook"}) to URL.
        """
        urls = {"sso": self.sso, "sharing": self.sharing, "addressBook": self.addressBook}
        return {name: url for name, url in urls.items() if isCleartextRemote(url)}

    @property
    def sendsPasswordInClear(self) -> bool:
        """
        Whether signing in would send the password unencrypted over a
        network (the SSO URL is plain C{http} and not loopback). The client
        logs a warning at every sign-in when it is so.
        """
        return isCleartextRemote(self.sso)


def isLoopbackHost(host: str) -> bool:
    """
    Whether C{host} names this machine: C{localhost}, C{127.0.0.0/8} or
    C{::1}. Other names are not resolved (a name could point anywhere).
    """
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def isCleartextRemote(url: str) -> bool:
    """
    Whether C{url} is plain C{http} to a host that is not loopback.
    """
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and not isLoopbackHost(parts.hostname or "")


def urlOrigin(url: str) -> tuple[str, str, int]:
    """
    The origin of C{url}: scheme, host, port (the scheme's default when
    none is given), lower-cased, for "is this the same server" checks.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or "").lower(), port


def newMachineGuid() -> str:
    """
    A fresh endpoint id in the registry form WLM uses: upper case, braces.
    """
    return "{" + str(uuid.uuid4()).upper() + "}"


def parseMachineGuid(text: str) -> str:
    """
    A machine GUID given by a user, in the form WLM sends (upper case, in
    braces). The braces may be left out and the case does not matter; the
    server answers anything else with C{911}, which looks like refused
    credentials, so the check is made before connecting.

    @raise ValueError: C{text} is not a GUID.
    """
    try:
        value = uuid.UUID(text.strip().strip("{}"))
    except ValueError:
        raise ValueError(
            f"--machine-guid must be a GUID such as {newMachineGuid()}, not {text!r}"
        ) from None
    return "{" + str(value).upper() + "}"


@dataclass(frozen=True)
class ClientIdentity:
    """
    What the client tells the server about itself (C{CVR}, C{CHG}, C{QRY}).

    The defaults are Windows Live Messenger 2009 (14.0.8089) on Windows 7,
    which is what MSNP18 servers expect to see.

    @ivar capabilities: C{caps:extcaps} for C{CHG} and C{UUX}; by default
        exactly the features msnp implements (L{msnp.capabilities}), not
        WLM 2009's own C{2789003324:48}, which claims webcam, P2P v2 and
        more that peers would then try with us.
    @ivar machineGuid: this endpoint's id (MPOP). Generated once per
        L{ClientIdentity} unless given, so it stays the same for the life of
        the client; persist it to appear as the same place across runs.
    """

    localeId: str = "0x0409"
    osType: str = "winnt"
    osVersion: str = "6.1.0"
    architecture: str = "i386"
    clientName: str = "MSNMSGR"
    clientVersion: str = "14.0.8089.0726"
    brand: str = "msmsgs"
    machineGuid: str = field(default_factory=newMachineGuid)
    protocolVersions: tuple[str, ...] = ("MSNP18", "MSNP17")
    capabilities: str = str(advertisedCapabilities())
    productId: str = "PROD0120PW!CCV9@"
    productKey: str = field(default="C1BX{V4W}Q3*10SM", repr=False)
    placeName: str = "MSNP"

    def replace(self, **changes: object) -> "ClientIdentity":
        """
        A copy with some fields changed.
        """
        return replace(self, **changes)  # type: ignore[arg-type]


def connectQuietly(endpoint: Any, protocol: Any) -> Any:
    """
    Connect C{protocol} through C{endpoint}, like
    L{twisted.internet.endpoints.connectProtocol}, but with a factory that
    does not log "Starting factory" / "Stopping factory" for every
    connection (a long-running client otherwise fills its log with them).

    Cancelling it never raises. Twisted refuses to stop a connector that
    is no longer connecting (C{NotConnectingError}): that is where a
    connection stays whose protocol raised in C{connectionMade}, and where
    the endpoint's L{Deferred} will never fire. Cancelled then, this one
    fails with C{CancelledError} all the same, so a timeout on it (a login
    step, a switchboard being opened) ends instead of raising inside a
    timed call and leaving its waiters waiting.

    @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with C{protocol} once connected.
    """
    connecting = endpoint.connect(_OneProtocolFactory(protocol))

    def cancel(outer: "Deferred[Any]") -> None:
        try:
            connecting.cancel()
        except Exception as e:
            _log.info("Connection attempt could not be stopped ({error}); giving it up", error=repr(e))
        # Deferred.cancel fails the outer one if this left it waiting.

    outer: "Deferred[Any]" = Deferred(cancel)

    def passOn(result: Any) -> None:
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        elif not isinstance(result, Failure):
            # Connected after the attempt was given up: nobody owns it.
            transport = getattr(result, "transport", None)
            if transport is not None:
                transport.abortConnection()

    connecting.addBoth(passOn)
    return outer


class _OneProtocolFactory(Factory):
    """
    The factory of L{connectQuietly}: it builds C{protocol} itself, once,
    and is quiet. One class rather than C{Factory.forProtocol} and a lambda:
    the protocol keeps its factory for the connection's lifetime, and a
    session of many in one process should not pay for a closure (issue 13).
    """

    noisy = False

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self._protocol
        protocol.factory = self
        return protocol
