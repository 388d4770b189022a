# -*- test-case-name: test.test_server_tap -*-
"""
C{twistd msnp-server}: the local MSNP18 network as a service.

It runs the dispatch, notification and switchboard servers and the HTTP
services (SSO, sharing, address book) of L{msnp.server.network.LocalNetwork}
on a durable SQLite store (C{--database}; C{docs/store.md}), optionally
also over HTTPS, and logs the endpoints a client should be given. Accounts
are managed with C{python -m msnp.server accounts ...} or imported once
from a JSON file (C{--accounts}).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Optional

from OpenSSL import SSL

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IOpenSSLContextFactory
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from msnp.server.accounts import AccountFileError, AccountStore
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.logs import BoundedLogService
from msnp.server.sqlschema import StoreError
from msnp.server.sqlstore import DEFAULT_DATABASE, SQLiteAccountStore
from msnp.twistdsupport import EXIT_FAILED, TwistdOptionsMixin, exitAfterShutdown, parseLimitChange

log = Logger()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a port is between 0 and 65535")
    return value


class Options(TwistdOptionsMixin, usage.Options):
    """
    Command-line options of C{twistd msnp-server}.

    After parsing, C{self.store} is the open store (the server lock taken),
    and C{self.tlsOptions} the HTTPS context factory or L{None}.
    """

    commandName = "twistd msnp-server"

    optParameters = [
        ["interface", None, "127.0.0.1", "The address to listen on."],
        ["port", None, 1863, "Port of the dispatch server (the first server clients connect to).", _port],
        ["sb-port", None, 1864, "Port of the switchboard server.", _port],
        ["http-port", None, 8080, "Port of the HTTP services (SSO, sharing, address book).", _port],
        ["ns-port", None, 0, "Port of the notification server (0: any free port).", _port],
        ["https-port", None, None, "Also serve the HTTP services over HTTPS on this port (needs --tls-cert, --tls-key).", _port],
        ["tls-cert", None, None, "PEM certificate (chain) for --https-port."],
        ["tls-key", None, None, "PEM private key for --https-port."],
        ["database", None, DEFAULT_DATABASE,
         f"SQLite database of accounts and lists (created if missing; default: {DEFAULT_DATABASE} in the"
         " working directory; ':memory:' keeps nothing)."],
        ["accounts", None, None,
         "JSON file to import into an empty database: a list of {email, password, displayName, contacts}"
         " (ignored, with a log line, once the database has accounts)."],
        ["log-file", None, None,
         "Also log to this file, rotated at the logRotateLength limit, keeping logMaxRotatedFiles old files."],
    ]

    optFlags = [
        ["no-redirect", None, "Serve the notification server on --port directly (no XFR NS redirect)."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self.store: AccountStore = AccountStore()
        self.tlsOptions: Any = None
        self.importedAccounts: Optional[int] = None
        self.limits = DEFAULT_LIMITS
        self._limitChanges: dict[str, Any] = {}

    def opt_limit(self, assignment: str) -> None:
        """
        Change one resource limit, NAME=VALUE (repeatable), e.g.
        --limit idleTimeout=120; the names and defaults are in
        docs/limits.md.
        """
        name, value = parseLimitChange(assignment, ServerLimits)
        self._limitChanges[name] = value

    def postOptions(self) -> None:
        try:
            self.limits = replace(DEFAULT_LIMITS, **self._limitChanges)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self.tlsOptions = self._tlsOptions()
        text = self._accountsText()
        store = self._openStore()
        if text is not None:
            if len(store):
                log.info(
                    "The database already has {count} accounts: --accounts {path} not imported",
                    count=len(store), path=self["accounts"],
                )
            else:
                try:
                    store.loadJSON(text)
                except AccountFileError as e:
                    _close(store)
                    raise usage.UsageError(f"bad accounts file {self['accounts']!r}: {e}") from None
                self.importedAccounts = len(store)
        if isinstance(store, SQLiteAccountStore):
            # twistd may fork into the background after parsing: the
            # connection is opened again in the process that serves.
            store.suspend()
        self.store = store

    def _openStore(self) -> AccountStore:
        path = self["database"]
        if path == ":memory:":
            return AccountStore()
        try:
            return SQLiteAccountStore(path, exclusive=True)
        except (StoreError, OSError) as e:
            raise usage.UsageError(str(e)) from None

    def _accountsText(self) -> Optional[str]:
        path = self["accounts"]
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise usage.UsageError(f"cannot read the accounts file {path!r}: {getattr(e, 'strerror', None) or e}")

    def _tlsOptions(self) -> Any:
        cert, key = self["tls-cert"], self["tls-key"]
        if self["https-port"] is None:
            if cert is not None or key is not None:
                raise usage.UsageError("--tls-cert and --tls-key need --https-port")
            return None
        if cert is None or key is None:
            raise usage.UsageError("--https-port needs --tls-cert and --tls-key")
        for path in (cert, key):
            if not os.access(path, os.R_OK):
                raise usage.UsageError(f"cannot read {path!r}")
        try:
            return ServerTLSContext(cert, key)
        except SSL.Error as e:
            raise usage.UsageError(f"cannot use --tls-cert {cert!r} with --tls-key {key!r}: {e}") from None


@implementer(IOpenSSLContextFactory)
class ServerTLSContext:
    """
    The TLS context of C{--https-port}: a PEM certificate chain and its
    key, loaded (and checked against each other) once, at start-up.
    """

    def __init__(self, certificateChain: str, privateKey: str) -> None:
        """
        @raise OpenSSL.SSL.Error: the files are not PEM, or do not match.
        """
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(certificateChain)
        context.use_privatekey_file(privateKey)
        context.check_privatekey()
        self._context = context

    def getContext(self) -> SSL.Context:
        return self._context


def _close(store: AccountStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


class NetworkService(Service):
    """
    Starts and stops a L{LocalNetwork} with the service.

    @ivar network: the network.
    @ivar endpoints: what a client should be given, once started.
    """

    #: Seconds the C{OUT SSD} sign-outs get to reach clients on shutdown.
    SIGN_OUT_GRACE = 2.0

    def __init__(
        self,
        network: Any,
        stopReactorOnFailure: bool = False,
        httpsPort: Optional[int] = None,
        tlsOptions: Any = None,
    ) -> None:
        """
        @param network: a L{LocalNetwork} (or anything with C{start},
            C{stop}, C{store} and C{switchboardAddress}).
        @param stopReactorOnFailure: stop the network's reactor when the
            network cannot start (e.g. a port is taken), so a C{twistd}
            process exits (with code 1) instead of running with nothing
            to serve.
        @param httpsPort: also serve the network's HTTP site over HTTPS on
            this port, with the context factory C{tlsOptions}.
        """
        self.network = network
        self.stopReactorOnFailure = stopReactorOnFailure
        self.httpsPort = httpsPort
        self.tlsOptions = tlsOptions
        self.startError: Optional[BaseException] = None
        self.endpoints: Any = None
        self.httpsEndpoints: Any = None
        self._starting: Optional[Deferred[Any]] = None
        self._https: Optional[IListeningPort] = None
        self._httpsFactory: Any = None

    def startService(self) -> None:
        Service.startService(self)
        self._starting = ensureDeferred(self._start())

    async def _start(self) -> None:
        try:
            self.endpoints = await self.network.start()
            if self.httpsPort is not None:
                await self._listenHTTPS()
        except CannotListenError as e:
            # The usual cause (a port in use) needs one line, not a traceback.
            self.startError = e
            log.critical(
                "The local MSNP18 network could not start: cannot listen on {interface}:{port} ({reason}). "
                "Stop what uses that port or choose another (--port, --sb-port, --http-port, --ns-port).",
                interface=e.interface or "*",
                port=e.port,
                reason=getattr(e.socketError, "strerror", None) or e.socketError,
            )
            self._failed()
            return
        except Exception as e:
            self.startError = e
            log.failure("The local MSNP18 network could not start")
            self._failed()
            return
        endpoints = self.endpoints
        log.info(
            "msnp-server ready ({count} accounts). Give clients: "
            "--server {dispatch} --sso-url {sso} --sharing-url {sharing} --ab-url {addressBook} --rsi-url {rsi} "
            "--storage-url {storage}",
            count=len(self.network.store),
            rsi=endpoints.rsi,
            dispatch=endpoints.dispatch,
            sso=endpoints.sso,
            sharing=endpoints.sharing,
            addressBook=endpoints.addressBook,
            storage=endpoints.storage,
        )
        log.info("Switchboard at {address}", address=self.network.switchboardAddress or "(not available)")
        if self.httpsEndpoints is not None:
            log.info(
                "HTTPS services: --sso-url {sso} --sharing-url {sharing} --ab-url {addressBook}",
                sso=self.httpsEndpoints.sso,
                sharing=self.httpsEndpoints.sharing,
                addressBook=self.httpsEndpoints.addressBook,
            )
        if not len(self.network.store):
            log.warn(
                "There are no accounts yet. Add one with: python -m msnp.server accounts"
                " --database {database} add EMAIL (it asks for the password)",
                database=getattr(self.network.store, "path", ":memory:"),
            )

    async def _listenHTTPS(self) -> None:
        from msnp.server.network import _TrackingFactory

        network = self.network
        factory = _TrackingFactory(network.site, network.addresses)
        endpoint = SSL4ServerEndpoint(network.reactor, self.httpsPort, self.tlsOptions, interface=network.interface)
        self._https = await endpoint.listen(factory)
        self._httpsFactory = factory
        port = self._https.getHost().port  # type: ignore[union-attr]
        base = f"https://{network.interface}:{port}"
        self.httpsEndpoints = self.endpoints.replace(
            sso=f"{base}/RST2.srf",
            sharing=f"{base}/abservice/SharingService.asmx",
            addressBook=f"{base}/abservice/abservice.asmx",
        )

    def _failed(self) -> None:
        reactor = getattr(self.network, "reactor", None)
        if self.stopReactorOnFailure and reactor is not None:
            exitAfterShutdown(reactor, EXIT_FAILED)

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._starting is not None:
            await self._starting
        if self.startError is None:
            await self._signOutEveryone()
            await self._stopHTTPS()
            await self.network.stop()
        _close(self.network.store)
        log.info("msnp-server stopped")

    async def _signOutEveryone(self) -> None:
        """
        Send C{OUT SSD} to every signed-in place and give the connections
        a bounded moment to flush it before they are cut.
        """
        presence = getattr(self.network, "presence", None)
        if presence is None:
            return
        sessions = presence.allSessions()
        self.network.signOutEveryone("SSD")
        closing = [s.transport.whenClosed() for s in sessions if hasattr(s.transport, "whenClosed")]
        if closing:
            log.info("Signed {count} place(s) out (OUT SSD)", count=len(closing))
            done: Deferred[Any] = DeferredList(closing, consumeErrors=True)
            done.addTimeout(self.SIGN_OUT_GRACE, self.network.reactor)
            try:
                await done
            except Exception:
                log.info("Some clients did not close within {grace}s", grace=self.SIGN_OUT_GRACE)

    async def _stopHTTPS(self) -> None:
        if self._https is None:
            return
        port, self._https = self._https, None
        stopping = port.stopListening()
        if isinstance(stopping, Deferred):
            await stopping
        assert self._httpsFactory is not None
        closing = []
        for connection in self._httpsFactory.connections():
            closing.append(connection.whenClosed())
            connection.abort()
        await DeferredList(closing, consumeErrors=True)


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the network service from parsed options.
    """
    from msnp.server.network import LocalNetwork

    network = LocalNetwork(
        reactor=reactor,
        interface=options["interface"],
        dispatchPort=options["port"],
        notificationPort=options["ns-port"],
        switchboardPort=options["sb-port"],
        httpPort=options["http-port"],
        redirect=not options["no-redirect"],
        store=options.store,
        limits=options.limits,
    )
    service = NetworkService(
        network, stopReactorOnFailure=True, httpsPort=options["https-port"], tlsOptions=options.tlsOptions
    )
    service.setName("msnp-server")
    if options["log-file"]:
        top = MultiService()
        top.setName("msnp-server")
        BoundedLogService(options["log-file"], options.limits).setServiceParent(top)
        service.setServiceParent(top)
        return top
    return service
