# -*- test-case-name: test.test_server_tap -*-
"""
C{twistd msnp-server}: the local MSNP18 network as a service.

It runs the dispatch, notification and switchboard servers and the HTTP
services (SSO, sharing, address book) of L{msnp.server.network.LocalNetwork}
for the accounts of a JSON file, and logs the endpoints a client should be
given.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Optional

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python import usage

from msnp.server.accounts import AccountFileError, AccountStore
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.logs import BoundedLogService

log = Logger()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a port is between 0 and 65535")
    return value


class Options(usage.Options):
    """
    Command-line options of C{twistd msnp-server}.

    After parsing, C{self.store} holds the accounts (empty without
    C{--accounts}).
    """

    optParameters = [
        ["interface", None, "127.0.0.1", "The address to listen on."],
        ["port", None, 1863, "Port of the dispatch server (the first server clients connect to).", _port],
        ["sb-port", None, 1864, "Port of the switchboard server.", _port],
        ["http-port", None, 8080, "Port of the HTTP services (SSO, sharing, address book).", _port],
        ["ns-port", None, 0, "Port of the notification server (0: any free port).", _port],
        ["accounts", None, None, "JSON file: a list of {email, password, displayName, contacts}."],
        ["log-file", None, None,
         "Also log to this file, rotated at the logRotateLength limit, keeping logMaxRotatedFiles old files."],
    ]

    optFlags = [
        ["no-redirect", None, "Serve the notification server on --port directly (no XFR NS redirect)."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self.store = AccountStore()
        self.limits = DEFAULT_LIMITS
        self._limitChanges: dict[str, Any] = {}

    def opt_limit(self, assignment: str) -> None:
        """
        Change one resource limit, NAME=VALUE (repeatable), e.g.
        --limit idleTimeout=120; the names and defaults are in
        docs/limits.md.
        """
        name, sep, value = assignment.partition("=")
        kinds = {f.name: f.type for f in fields(ServerLimits)}
        if not sep or name not in kinds:
            raise usage.UsageError(f"--limit wants NAME=VALUE with NAME one of: {', '.join(sorted(kinds))}")
        convert = float if kinds[name] in (float, "float") else int
        try:
            self._limitChanges[name] = convert(value)
        except ValueError:
            raise usage.UsageError(f"--limit {name}: {value!r} is not a number") from None

    def postOptions(self) -> None:
        try:
            self.limits = replace(DEFAULT_LIMITS, **self._limitChanges)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        path = self["accounts"]
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise usage.UsageError(f"cannot read the accounts file {path!r}: {getattr(e, 'strerror', None) or e}")
        store = AccountStore()
        try:
            store.loadJSON(text)
        except AccountFileError as e:
            raise usage.UsageError(f"bad accounts file {path!r}: {e}") from None
        self.store = store


class NetworkService(Service):
    """
    Starts and stops a L{LocalNetwork} with the service.

    @ivar network: the network.
    @ivar endpoints: what a client should be given, once started.
    """

    def __init__(self, network: Any, stopReactorOnFailure: bool = False) -> None:
        """
        @param network: a L{LocalNetwork} (or anything with C{start},
            C{stop}, C{store} and C{switchboardAddress}).
        @param stopReactorOnFailure: stop the network's reactor when the
            network cannot start (e.g. a port is taken), so a C{twistd}
            process exits instead of running with nothing to serve.
        """
        self.network = network
        self.stopReactorOnFailure = stopReactorOnFailure
        self.startError: Optional[BaseException] = None
        self.endpoints: Any = None
        self._starting: Optional[Deferred[Any]] = None

    def startService(self) -> None:
        Service.startService(self)
        self._starting = ensureDeferred(self._start())

    async def _start(self) -> None:
        try:
            self.endpoints = await self.network.start()
        except Exception as e:
            self.startError = e
            log.failure("The local MSNP18 network could not start")
            reactor = getattr(self.network, "reactor", None)
            if self.stopReactorOnFailure and reactor is not None and reactor.running:
                reactor.stop()
            return
        endpoints = self.endpoints
        log.info(
            "msnp-server ready ({count} accounts). Give clients: "
            "--server {dispatch} --sso-url {sso} --sharing-url {sharing} --ab-url {addressBook} "
            "--storage-url {storage}",
            count=len(self.network.store),
            dispatch=endpoints.dispatch,
            sso=endpoints.sso,
            sharing=endpoints.sharing,
            addressBook=endpoints.addressBook,
            storage=endpoints.storage,
        )
        log.info("Switchboard at {address}", address=self.network.switchboardAddress or "(not available)")

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._starting is not None:
            await self._starting
        if self.startError is None:
            await self.network.stop()
        log.info("msnp-server stopped")


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
    service = NetworkService(network, stopReactorOnFailure=True)
    service.setName("msnp-server")
    if options["log-file"]:
        top = MultiService()
        top.setName("msnp-server")
        BoundedLogService(options["log-file"], options.limits).setServiceParent(top)
        service.setServiceParent(top)
        return top
    return service
