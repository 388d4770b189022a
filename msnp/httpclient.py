# -*- test-case-name: test.test_tls -*-
"""
The HTTP client msnp uses for the SSO and address-book services.

Passport tickets and the address book travel over these connections, so
https is always verified: the certificate must chain to a trusted root and
name the host that was asked for (L{BrowserLikePolicyForHTTPS}, which checks
names with C{service_identity}). There is no switch to turn that off. A
self-hosted network with its own certificate authority is supported by
naming a PEM file of CA certificates (C{trustRoot}); then only those CAs are
trusted, not the platform's store as well.

A certificate that does not verify would otherwise surface as an opaque
C{ResponseNeverReceived([Failure(...)])}; it is turned into a
L{ServiceError} that says so and names the host, which
L{msnp.http.postXML} passes through unchanged. Likewise a request cancelled
by a deadline fails with a plain L{CancelledError}, so that the deadline is
reported as a timeout.

The handle also knows every connection its pool ever opened, so
L{HTTPClientHandle.close} can wait until all of them are really gone: a
session (or a test) that closes its client leaves no socket behind.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol

from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.abstract import isIPAddress
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from msnp.errors import ServiceError

try:
    from service_identity import CertificateError, VerificationError

    _IDENTITY_ERRORS: tuple[type[BaseException], ...] = (VerificationError, CertificateError)
except ImportError:  # pragma: no cover - Twisted[tls] always brings it
    _IDENTITY_ERRORS = ()

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


class TLSVerificationError(ServiceError):
    """
    The server's certificate did not verify: unknown authority, expired, or
    issued for another host name. Retrying will not help until the server's
    certificate or the configured trust root changes.
    """


# -- trust roots -----------------------------------------------------------------


def loadTrustRoot(path: str) -> Any:
    """
    Read a PEM file of one or more CA certificates into a trust root.

    @param path: the PEM file.
    @return: an C{IOpenSSLTrustRoot} trusting exactly those certificates.
    @raise ValueError: the file cannot be read, holds no certificate, or a
        certificate in it cannot be parsed.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read the TLS trust root {path!r}: {e.strerror or e}") from None
    certificates = _parsePEMCertificates(data, path)
    return trustRootFromCertificates(certificates)


def _parsePEMCertificates(data: bytes, path: str) -> list[Certificate]:
    blocks: list[bytes] = []
    position = 0
    while True:
        start = data.find(_PEM_BEGIN, position)
        if start < 0:
            break
        end = data.find(_PEM_END, start)
        if end < 0:
            raise ValueError(f"the TLS trust root {path!r} has an unterminated certificate")
        position = end + len(_PEM_END)
        blocks.append(data[start:position] + b"\n")
    if not blocks:
        raise ValueError(f"the TLS trust root {path!r} contains no PEM certificate")
    certificates = []
    for index, block in enumerate(blocks, 1):
        try:
            certificates.append(Certificate.loadPEM(block))
        except Exception as e:
            raise ValueError(
                f"certificate {index} of the TLS trust root {path!r} is invalid: {e}"
            ) from None
    return certificates


# -- explaining verification failures -----------------------------------------------


def _reasons(error: BaseException) -> Iterable[BaseException]:
    """
    C{error} and every exception nested in it (the web client wraps the
    real cause in C{ResponseNeverReceived([Failure, ...])} and friends).
    """
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, Failure):
            current = current.value
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nested in getattr(current, "reasons", None) or ():
            pending.append(nested)
        if isinstance(getattr(current, "subFailure", None), Failure):
            pending.append(current.subFailure)  # type: ignore[attr-defined]


def _describeSSLError(error: SSL.Error) -> str:
    details = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        if isinstance(entry, tuple) and entry:
            details.append(str(entry[-1]))
    return ", ".join(d for d in details if d) or str(error) or "TLS handshake failed"


def verificationFailure(error: BaseException, host: str) -> Optional[TLSVerificationError]:
    """
    If C{error} (as raised by the web client) was caused by a certificate
    that did not verify or a failed TLS handshake, a L{TLSVerificationError}
    saying so; else L{None}.

    @param host: the host the request went to, for the message.
    """
    reasons = list(_reasons(error))
    for reason in reasons:
        if _IDENTITY_ERRORS and isinstance(reason, _IDENTITY_ERRORS):
            return TLSVerificationError(
                f"TLS certificate verification failed for {host}: "
                f"the certificate was not issued for this host name ({reason!r})"
            )
    for reason in reasons:
        if isinstance(reason, SSL.Error):
            detail = _describeSSLError(reason)
            if "certificate" in detail.lower():
                return TLSVerificationError(
                    f"TLS certificate verification failed for {host}: {detail} (not issued "
                    "by a trusted authority, or expired; a self-hosted server needs its CA "
                    "as the trust root)"
                )
            return TLSVerificationError(
                f"TLS handshake with {host} failed (certificate verification not completed): {detail}"
            )
    return None


@implementer(IAgent)
class _ExplainingAgent:
    """
    An L{IAgent} that turns TLS verification failures of the agent it wraps
    into L{TLSVerificationError}, and a cancelled request back into a plain
    L{CancelledError}; everything else passes through untouched.
    """

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Any = None,
        bodyProducer: Optional[IBodyProducer] = None,
    ) -> "Deferred[Any]":
        d = self._agent.request(method, uri, headers, bodyProducer)

        def explain(failure: Failure) -> Failure:
            assert failure.value is not None
            better = verificationFailure(failure.value, _hostOf(uri))
            if better is not None:
                raise better
            if _onlyCancelled(failure.value):
                # Cancelling a request (a deadline did) comes back wrapped in
                # ResponseNeverReceived; unwrap it so that Deferred.addTimeout
                # recognises its own cancellation and reports a timeout.
                raise CancelledError() from None
            return failure

        return d.addErrback(explain)


def _onlyCancelled(error: BaseException) -> bool:
    """
    Whether C{error} is a web-client wrapper around nothing but
    L{CancelledError}s.
    """
    nested = getattr(error, "reasons", None)
    if not nested:
        return False
    leaves = [r for r in _reasons(error) if not getattr(r, "reasons", None)]
    return bool(leaves) and all(isinstance(r, CancelledError) for r in leaves)


def _hostOf(uri: bytes) -> str:
    from twisted.web.client import URI

    try:
        parsed = URI.fromBytes(uri)
        return f"{parsed.host.decode('ascii', 'replace')}:{parsed.port}"
    except Exception:
        return uri.decode("ascii", "replace")


# -- connection tracking ------------------------------------------------------------


@implementer(IStreamClientEndpoint)
class _TrackingEndpoint:
    """
    Connects through another endpoint and remembers the protocol, so that
    L{HTTPClientHandle.close} can abort it.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, seen: "weakref.WeakSet[Any]") -> None:
        self._endpoint = endpoint
        self._seen = seen

    def connect(self, protocolFactory: Any) -> "Deferred[Any]":
        def remember(protocol: Any) -> Any:
            self._seen.add(protocol)
            return protocol

        # The pool makes one factory per connection; left noisy, each one
        # logs "Starting factory" and "Stopping factory".
        protocolFactory.noisy = False
        return self._endpoint.connect(protocolFactory).addCallback(remember)


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    """
    Plain TCP for http, verified TLS for https, every connection tracked.
    """

    def __init__(self, reactor: Any, policy: IPolicyForHTTPS, seen: "weakref.WeakSet[Any]") -> None:
        self._reactor = reactor
        self._policy = policy
        self._seen = seen

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        endpoint: IStreamClientEndpoint
        # An address needs no resolving: HostnameEndpoint would still send it
        # through getaddrinfo on the thread pool and define a resolution
        # receiver class per connection (cyclic garbage: about 1 KiB per
        # connection until the collector runs, which 50 sign-ins in flight
        # pay for in heap; issue 13). Same default connect timeout (30 s).
        # (IPv6 addresses and names keep HostnameEndpoint.)
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self._reactor, host, uri.port)
        else:
            endpoint = HostnameEndpoint(self._reactor, host, uri.port)
        if uri.scheme == b"https":
            creator = self._policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        elif uri.scheme != b"http":
            from twisted.web.error import SchemeNotSupported

            raise SchemeNotSupported(f"unsupported URL scheme {uri.scheme!r}")
        return _TrackingEndpoint(endpoint, self._seen)


# -- the client -------------------------------------------------------------------------


@dataclass
class HTTPClientHandle:
    """
    A treq client for the msnp services and what is needed to shut it down.

    @ivar client: the L{treq.client.HTTPClient} to hand to
        L{msnp.http.postXML} (and so to the SSO and ABCH clients).
    @ivar pool: its connection pool.
    @ivar trustRoot: the PEM file trusted instead of the platform store, or
        L{None}.
    """

    client: HTTPClient
    pool: HTTPConnectionPool
    trustRoot: Optional[str] = None
    reactor: Any = field(default=None, repr=False)
    _connections: "weakref.WeakSet[Any]" = field(default_factory=weakref.WeakSet, repr=False)

    def close(self) -> "Deferred[None]":
        """
        Close every connection this client opened, cached or not, and cancel
        the pool's timers.

        The connections are aborted on the next reactor turn: C{close()} is
        often called from a callback of a failed request, that is from
        inside a connection's C{connectionLost}, and that connection must
        be allowed to finish dying first.

        @return: a L{Deferred} firing once every connection is closed.
        """
        if self.reactor is None:
            return self._closeNow()
        later: Deferred[None] = deferLater(self.reactor, 0, lambda: None)
        return later.addCallback(lambda _: self._closeNow())

    def _closeNow(self) -> "Deferred[None]":
        waiting: list[Deferred[Any]] = [self.pool.closeCachedConnections()]
        for protocol in list(self._connections):
            if getattr(protocol, "state", "CONNECTION_LOST") == "CONNECTION_LOST":
                continue
            if getattr(protocol.transport, "disconnected", False):
                continue
            waiting.append(protocol.abort())
        return gatherResults(waiting, consumeErrors=True).addCallback(lambda _: None)


def makeHTTPClient(
    reactor: Any,
    trustRoot: Optional[str] = None,
    persistent: bool = False,
) -> HTTPClientHandle:
    """
    Build the HTTP client for the SSO and ABCH services.

    https is always verified: the chain must lead to a trusted root and the
    certificate must name the host (DNS name or IP address) of the URL.

    @param reactor: the reactor to connect with.
    @param trustRoot: path of a PEM file with one or more CA certificates;
        when given only those CAs are trusted. By default the platform's
        trust store is used.
    @param persistent: keep connections open between requests (a session
        makes several ABCH calls to the same host).
    @return: an L{HTTPClientHandle}; call its C{close()} when done.
    @raise ValueError: C{trustRoot} cannot be read or holds no valid
        certificate.
    """
    root = loadTrustRoot(trustRoot) if trustRoot is not None else None
    policy = BrowserLikePolicyForHTTPS(trustRoot=root)
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    connections: "weakref.WeakSet[Any]" = weakref.WeakSet()
    agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(reactor, policy, connections), pool=pool)
    client = HTTPClient(_ExplainingAgent(agent))
    return HTTPClientHandle(
        client=client, pool=pool, trustRoot=trustRoot, reactor=reactor, _connections=connections
    )


# -- one pool per reactor ---------------------------------------------------------------


class HTTPClientOwner(Protocol):
    """
    What a session keeps of the HTTP client it must give back when it
    ends: an L{HTTPClientHandle} of its own or a L{SharedHTTPClient} claim.
    """

    @property
    def client(self) -> HTTPClient:
        """
        The treq client to make requests with.
        """

    def close(self) -> "Deferred[None]":
        """
        Close (or give back) the client.
        """

#: How many idle connections per host the shared pool keeps (every session
#: of the process talks to the same few hosts).
SHARED_PERSISTENT_PER_HOST = 8


class SharedHTTPClient:
    """
    One user's claim on the HTTP client shared by every session on a
    reactor (and trust root): L{client} is the shared treq client, and
    L{close} gives the claim up. The shared client's connections are closed
    once the last claim is given up, so a session's logout never breaks
    another session's requests, and the last one still leaves no socket
    behind.

    @ivar client: the shared L{treq.client.HTTPClient}.
    @ivar handle: the shared L{HTTPClientHandle}.
    """

    __slots__ = ("client", "handle", "_key", "_closed")

    def __init__(self, handle: HTTPClientHandle, key: tuple[int, Optional[str]]) -> None:
        self.handle = handle
        self.client = handle.client
        self._key = key
        self._closed = False

    def __repr__(self) -> str:
        return f"<SharedHTTPClient {'released' if self._closed else 'held'} of {self.handle!r}>"

    def close(self) -> "Deferred[None]":
        """
        Give this claim up (once; later calls do nothing): the shared
        client closes its connections when no claim is left.

        @return: a L{Deferred} firing when that is done (at once while other
            claims remain).
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        entry = _shared.get(self._key)
        if entry is None or entry[1] is not self.handle:
            return succeed(None)
        entry[2] -= 1
        if entry[2] > 0:
            return succeed(None)
        del _shared[self._key]
        return self.handle.close()


#: (id of the reactor, trust root) -> [reactor, handle, claims]. The reactor
#: is kept in the entry so its id cannot be reused while the entry lives;
#: the entry goes with the last claim.
_shared: "dict[tuple[int, Optional[str]], list[Any]]" = {}


def sharedHTTPClient(reactor: Any, trustRoot: Optional[str] = None) -> SharedHTTPClient:
    """
    A claim on the persistent HTTP client every session on C{reactor} with
    the same C{trustRoot} shares (one connection pool per reactor): made on
    the first claim, closed after the last one is given up.

    @raise ValueError: C{trustRoot} cannot be read or holds no valid
        certificate.
    """
    key = (id(reactor), trustRoot)
    entry = _shared.get(key)
    if entry is None or entry[0] is not reactor:
        handle = makeHTTPClient(reactor, trustRoot, persistent=True)
        handle.pool.maxPersistentPerHost = SHARED_PERSISTENT_PER_HOST
        entry = [reactor, handle, 0]
        _shared[key] = entry
    entry[2] += 1
    return SharedHTTPClient(entry[1], key)
