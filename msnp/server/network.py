# -*- test-case-name: test.test_server_notification -*-
"""
L{LocalNetwork}: a whole MSNP18 network on loopback, in one object.

It starts the dispatch server, the notification server, the switchboard
server and the HTTP site (Passport STS and ABCH) on ephemeral ports, hands
back the L{Endpoints} a client needs, and stops everything — listeners and
every open connection — so tests end with a clean reactor. All the servers
share one L{AccountStore}; presence routing is in
L{msnp.server.presence.Presence}.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorThreads, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from msnp.endpoints import Endpoints
from msnp.reactors import reactorOrDefault
from msnp.server.abch import ABCHResource
from msnp.server.accounts import DEFAULT_TICKET_LIFETIME, Account, AccountStore, TicketGrant
from msnp.server.dispatch import DispatchServerFactory
from msnp.server.httplimits import boundedSite
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.notification import NotificationServer, NotificationServerFactory
from msnp.server.nsurl import LOGIN_FORM_PATH
from msnp.server.circles import CircleRegistry
from msnp.server.sqlcircles import SQLiteCircleStore
from msnp.server.sqlstore import SQLiteAccountStore
from msnp.server.nscircles import CircleHub
from msnp.server.presence import Presence, guidKey
from msnp.server.offline import AccountStoreMailbox, IOfflineMessageStore, OfflineMessageService
from msnp.server.roaming import IRoamingProfileStore, MemoryRoamingProfiles, StorageTickets
from msnp.server.router import INetworkRouter, SwitchboardReferral
from msnp.server.rsi import RSIResource
from msnp.server.sso import SSOResource
from msnp.server.storage import StorageResource
from msnp.server.throttle import SignInThrottle
from msnp.server.switchboard import SwitchboardDirectory, SwitchboardServerFactory
from msnp.wire import Command, encodeParameter

log = Logger()


class _TrackedConnection(ProtocolWrapper):
    """
    A connection L{LocalNetwork.stop} can close and wait for.
    """

    def __init__(self, factory: Any, wrappedProtocol: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self._waiters: list[Deferred[None]] = []
        self.closed = False
        self.peerHost: Optional[str] = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            ProtocolWrapper.connectionLost(self, reason)
        finally:
            self.closed = True
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def whenClosed(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once this connection is closed.
        """
        if self.closed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def abort(self) -> None:
        """
        Close at once, without waiting for buffered data: used on stop.
        """
        if self.transport is not None and not self.closed:
            self.transport.abortConnection()  # type: ignore[attr-defined]


class AddressCounter:
    """
    Open connections per peer address, over every listener of one
    network: a peer holding C{perAddress} of them in total (DS, NS, SB and
    HTTP together) gets no more, so one address cannot take the process's
    file descriptors from everybody else.
    """

    def __init__(self, perAddress: int = DEFAULT_LIMITS.connectionsPerAddress) -> None:
        self.perAddress = perAddress
        self._open: dict[str, int] = {}
        self.refused = 0

    def acquire(self, host: str) -> bool:
        """
        Count a new connection from C{host}; L{False} (and nothing counted)
        when it already holds C{perAddress}.
        """
        if self._open.get(host, 0) >= self.perAddress:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.info("Refusing connections from {host}: {cap} already open ({refused} refused so far)",
                         host=host, cap=self.perAddress, refused=self.refused)
            return False
        self._open[host] = self._open.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        """
        A connection from C{host} closed.
        """
        left = self._open.get(host, 0) - 1
        if left > 0:
            self._open[host] = left
        else:
            self._open.pop(host, None)

    def openFrom(self, host: str) -> int:
        """
        How many connections C{host} holds open now.
        """
        return self._open.get(host, 0)


class _TrackingFactory(WrappingFactory):
    """
    Wraps a server factory so that its open connections are known, and
    refuses (closes at once, before the wrapped protocol exists) a
    connection its L{AddressCounter} does not admit.
    """

    protocol = _TrackedConnection  # type: ignore[assignment]
    # Not noisy: a listening port's start and stop are logged by the
    # network in one line of its own ("Local MSNP18 network started").
    noisy = False

    def __init__(self, wrappedFactory: Any, counter: AddressCounter) -> None:
        super().__init__(wrappedFactory)
        self.counter = counter
        wrappedFactory.noisy = False

    def buildProtocol(self, addr: Any) -> Any:
        host = str(getattr(addr, "host", ""))
        if not self.counter.acquire(host):
            return None
        protocol = super().buildProtocol(addr)
        if isinstance(protocol, _TrackedConnection):
            protocol.peerHost = host
        else:
            self.counter.release(host)
        return protocol

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        host = getattr(p, "peerHost", None)
        if host is not None:
            self.counter.release(host)

    def connections(self) -> list[_TrackedConnection]:
        """
        The connections open now.
        """
        return list(self.protocols)  # type: ignore[arg-type]


@implementer(INetworkRouter)
class LocalNetwork:
    """
    A complete local MSNP18 network: DS, NS, SB and the HTTP services.

    @ivar store: the accounts and lists all servers share.
    @ivar presence: who is signed in where (the NS sessions).
    @ivar circles: the circles (group chats) of the network: in memory,
        or, from L{start} on, in the database of a L{SQLiteAccountStore}.
    @ivar switchboards: the switchboard directory, L{None} until started.
    @ivar abch: the ABCH services, L{None} until started.
    @ivar roamingProfiles: the roamed profiles the storage service keeps.
    @ivar storageTickets: the C{storage.msn.com} tickets the SSO service issued.
    @ivar signInThrottle: the sign-in rate limiter of the SSO service.
    @ivar limits: the L{ServerLimits} every server enforces.
    @ivar switchboardAddress: C{"127.0.0.1:port"} of the switchboard server
        once started.
    @ivar endpoints: the L{Endpoints} of the running network, or L{None}.
    """

    def __init__(
        self,
        reactor: Any = None,
        interface: str = "127.0.0.1",
        dispatchPort: int = 0,
        notificationPort: int = 0,
        switchboardPort: int = 0,
        httpPort: int = 0,
        redirect: bool = True,
        sendChallenge: bool = True,
        pingInterval: int = 50,
        store: Optional[AccountStore] = None,
        clock: Optional[IReactorTime] = None,
        ticketLifetime: float = DEFAULT_TICKET_LIFETIME,
        limits: ServerLimits = DEFAULT_LIMITS,
        timeoutClock: Optional[IReactorTime] = None,
        offlineStore: Optional[IOfflineMessageStore] = None,
    ) -> None:
        """
        @param reactor: the reactor to listen with (the global one by default).
        @param interface: the address to listen on.
        @param dispatchPort: port of the first server a client connects to
            (0: ephemeral).
        @param redirect: whether the first server is a dispatch server
            redirecting to the NS (C{XFR NS}), or the NS itself.
        @param sendChallenge: whether the NS sends C{CHL} after login.
        @param pingInterval: the value of C{QNG}.
        @param store: an existing account store to serve (it keeps its own
            clock and ticket lifetime).
        @param clock: the clock for login times, timeouts and ticket
            lifetimes (the reactor by default).
        @param ticketLifetime: seconds an SSO grant stays valid in the store
            created here (ignored with C{store}); the ABCH services answer
            an older contacts ticket with C{BadContextToken}.
        @param limits: every resource limit the servers enforce (see
            L{ServerLimits} and C{docs/limits.md}).
        @param timeoutClock: the clock of the connections' login and idle
            timeouts (the reactor by default; a test passes a C{Clock}).
        @param offlineStore: where offline messages wait (by default the
            account store's mailbox, L{AccountStoreMailbox}: durable with
            the SQLite store); a test may pass a L{MemoryOfflineStore}.
        """
        reactor = reactorOrDefault(reactor)
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.limits = limits
        self.timeoutClock: IReactorTime = timeoutClock if timeoutClock is not None else reactor
        self.interface = interface
        self.dispatchPort = dispatchPort
        self.notificationPort = notificationPort
        self.switchboardPort = switchboardPort
        self.httpPort = httpPort
        self.redirect = redirect
        self.sendChallenge = sendChallenge
        self.pingInterval = pingInterval
        self.store = (
            store if store is not None else AccountStore(ticketLifetime=ticketLifetime, clock=self.clock)
        )
        if offlineStore is None:
            # The account store's own mailbox: on the SQLite store, the
            # messages survive a restart.
            offlineStore = AccountStoreMailbox(self.store)
        self.offlineStore: IOfflineMessageStore = offlineStore
        self.offline = OfflineMessageService(offlineStore, self.clock, self._announceMail)
        self.rsi: Optional[RSIResource] = None
        self.abch: Optional[ABCHResource] = None
        # The roamed profiles live in the account store once it keeps them
        # (the durable store's seam); in memory until then.
        self.roamingProfiles: IRoamingProfileStore = (
            self.store if IRoamingProfileStore.providedBy(self.store) else MemoryRoamingProfiles()
        )
        self.storageTickets = StorageTickets(self.store)
        self.signInThrottle = SignInThrottle(self.timeoutClock, limits)
        self.addresses = AddressCounter(limits.connectionsPerAddress)
        self.presence = Presence(self.store, limits)
        self.circles = CircleRegistry(clock=self.clock)
        self.presence.circles = CircleHub(self.circles, self.presence)
        self.switchboards: Optional[SwitchboardDirectory] = None
        self.switchboardAddress: str = ""
        self.notificationAddress: str = ""
        self.endpoints: Optional[Endpoints] = None
        self.site: Optional[Site] = None  # the HTTP services' site once started (tap serves it over https too)
        self._ports: list[IListeningPort] = []
        self._factories: list[_TrackingFactory] = []

    def __repr__(self) -> str:
        return f"<LocalNetwork {self.endpoints!r} accounts={len(self.store)}>"

    # -- accounts ---------------------------------------------------------------

    def addAccount(
        self, email: str, password: str, displayName: Optional[str] = None, network: int = 1
    ) -> Account:
        """
        Create an account (see L{AccountStore.addAccount}); C{network=32}
        makes it stand for a Yahoo! user, reached with UUM/UBM only.
        """
        return self.store.addAccount(email, password, displayName, network=network)

    def removeAccount(self, email: str) -> bool:
        """
        Delete an account (see L{AccountStore.removeAccount}) while the
        network runs: its places are signed out and everyone who saw it
        online is told it went offline (L{Presence.accountRemoved}).

        @return: whether the account existed.
        """
        if not self.store.removeAccount(email):
            return False
        self.presence.accountRemoved(email)
        return True

    def addContact(self, owner: str, contact: str, mutual: bool = False) -> None:
        """
        Give C{owner} the contact C{contact} (see L{AccountStore.addContact}).
        This is an administrative change: signed-in places follow the new
        contact at once, as if they had sent the C{ADL} themselves.
        """
        self.store.addContact(owner, contact, mutual)
        self.presence.follow(owner, contact)
        if mutual:
            self.presence.follow(contact, owner)
        self.presence.refreshBetween(owner, contact)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> "Deferred[Endpoints]":
        """
        Listen on every port.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the L{Endpoints} to give a client.
        """
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._start())

    async def _listen(self, port: int, factory: Any) -> IListeningPort:
        tracking = _TrackingFactory(factory, self.addresses)
        endpoint = TCP4ServerEndpoint(self.reactor, port, interface=self.interface)
        listening: IListeningPort = await endpoint.listen(tracking)
        self._ports.append(listening)
        self._factories.append(tracking)
        return listening

    def _address(self, port: IListeningPort) -> str:
        return f"{self.interface}:{port.getHost().port}"  # type: ignore[attr-defined]

    async def _start(self) -> Endpoints:
        try:
            return await self._startListening()
        except BaseException:
            await self.stop()
            raise

    async def _startListening(self) -> Endpoints:
        if self._ports:
            raise RuntimeError("LocalNetwork is already started")
        if isinstance(self.store, SQLiteAccountStore) and not isinstance(self.circles.store, SQLiteCircleStore):
            # The circles of a database are read only now: twistd builds
            # the network before it forks, and a SQLite connection must
            # not cross a fork (the store reopens itself after it).
            self.circles = CircleRegistry(store=SQLiteCircleStore(self.store), clock=self.clock)
            self.presence.circles = CircleHub(self.circles, self.presence)
        nsFactory = NotificationServerFactory(
            self, self.presence, self.sendChallenge, self.pingInterval, self.clock, self.limits, self.timeoutClock,
            self.offline,
        )
        if self.redirect:
            nsPort = await self._listen(self.notificationPort, nsFactory)
            self.notificationAddress = self._address(nsPort)
            dsPort = await self._listen(
                self.dispatchPort, DispatchServerFactory(
                    lambda: self.notificationAddress, self.clock, self.limits, self.timeoutClock
                )
            )
        else:
            dsPort = await self._listen(self.dispatchPort, nsFactory)
            self.notificationAddress = self._address(dsPort)

        sbPort = await self._listen(self.switchboardPort, self._switchboardFactory())
        self.switchboardAddress = self._address(sbPort)

        self.site = boundedSite(self._httpRoot(), self.limits)
        httpPort = await self._listen(self.httpPort, self.site)
        base = f"http://{self._address(httpPort)}"
        nsFactory.mailLoginURL = base + LOGIN_FORM_PATH
        self.endpoints = Endpoints(
            dispatch=f"tcp:{self._address(dsPort)}",
            sso=f"{base}/RST2.srf",
            sharing=f"{base}/abservice/SharingService.asmx",
            addressBook=f"{base}/abservice/abservice.asmx",
            rsi=f"{base}/rsi/rsi.asmx",
            storage=f"{base}/storageservice/SchematizedStore.asmx",
        )
        log.info("Local MSNP18 network started: {endpoints}", endpoints=self.endpoints)
        return self.endpoints

    def _switchboardFactory(self) -> Factory:
        self.switchboards = SwitchboardDirectory(self, limits=self.limits)
        return SwitchboardServerFactory(self, directory=self.switchboards, timerClock=self.timeoutClock)

    def _httpRoot(self) -> Resource:
        # scrypt in the thread pool when the reactor has one (docs/store.md).
        check = None
        if IReactorThreads.providedBy(self.reactor):
            store, reactor = self.store, self.reactor

            def check(email: str, password: str) -> "Deferred[Optional[Account]]":
                return store.checkPasswordInThread(email, password, reactor)

        root = SSOResource(
            self.store, clock=self.clock, throttle=self.signInThrottle, checkPassword=check,
            storageTickets=self.storageTickets,
        )
        self.abch = ABCHResource(
            self.store, clock=self.clock, onChange=self._listsChanged, limits=self.limits,
            circles=self.presence.circles,
        )
        root.putChild(b"abservice", self.abch)
        self.rsi = RSIResource(self.offlineStore, self.store.checkWebTicket, onDeleted=self.offline.messagesDeleted)
        rsiFolder = Resource()
        rsiFolder.putChild(b"rsi.asmx", self.rsi)
        root.putChild(b"rsi", rsiFolder)
        root.putChild(
            b"storageservice",
            StorageResource(self.storageTickets, self.roamingProfiles, clock=self.clock, mountPath="/storageservice"),
        )
        return root

    def _announceMail(self, email: str, payload: bytes) -> None:
        """
        Send C{MSG Hotmail Hotmail} with C{payload} to every place of
        C{email} that has sent its first C{CHG} (the offline messages'
        announcements; the others get the initial mail data then).
        """
        for session in self.presence.sessionsOf(email):
            if session.status is not None:
                session.sendRaw(Command("MSG", None, ("Hotmail", "Hotmail"), payload))

    def _listsChanged(self, account: Account, action: str) -> None:
        """
        The ABCH services changed C{account}'s lists with C{action}: make
        every view those lists decide match the store (only real
        differences are sent; see L{Presence.refreshAccount}), and tell the
        account's other places to re-read their lists with C{NOT}
        (reference 3.11). The place that made the change, recognised by
        the grant it signed in with (L{ABCHResource.changeOrigin}), is not
        told.
        """
        self.presence.refreshAccount(account.email)
        self.privacyChanged(account.email)
        origin: Optional[TicketGrant] = None
        lastModified = ""
        if self.abch is not None:
            origin = self.abch.changeOrigin
            lastModified = self.abch.lastChangeOf(account)
        told = self.presence.notifyAddressBookChanged(account, lastModified, origin)
        if told:
            log.debug("{action} of {account}: {count} other place(s) notified",
                      action=action, account=account.email, count=told)

    def stop(self) -> "Deferred[None]":
        """
        Stop listening and close every open connection.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once every port and connection is closed.
        """
        ports, self._ports = self._ports, []
        factories, self._factories = self._factories, []
        waiting: list[Deferred[Any]] = []
        for port in ports:
            result = port.stopListening()
            if isinstance(result, Deferred):
                waiting.append(result)
        for factory in factories:
            for connection in factory.connections():
                waiting.append(connection.whenClosed())
                connection.abort()
        done: Deferred[None] = DeferredList(waiting, consumeErrors=True).addCallback(lambda _: None)
        return done

    # -- for the switchboard and other servers ------------------------------------

    def onlineSessions(self, email: str) -> list[NotificationServer]:
        """
        The signed-in NS connections of C{email} (each with C{.account},
        C{.machineGuid}, C{.status}, C{.capabilities}, C{.displayName}).
        """
        return self.presence.sessionsOf(email)

    def isReachable(self, email: str) -> bool:
        """
        Whether C{email} is signed in, after its first C{CHG}, and not hidden.
        """
        return self.presence.isReachable(email)

    def ring(
        self, callee: str, sessionId: str, authToken: str, caller: Account, callerName: str, exceptGuids: Iterable[str] = ()
    ) -> bool:
        """
        Invite every NS session of C{callee} (but the places
        C{exceptGuids}) to a switchboard session.

        @return: L{False} when C{callee} is not reachable.
        """
        if not self.isReachable(callee):
            return False
        sent = False
        skip = {guidKey(guid) for guid in exceptGuids}
        for session in self.onlineSessions(callee):
            if session.status is None:
                continue
            if skip and guidKey(session.machineGuid) in skip:
                continue
            session.sendRaw(
                Command(
                    "RNG",
                    None,
                    (
                        str(sessionId),
                        self.switchboardAddress,
                        "CKI",
                        authToken,
                        caller.email,
                        encodeParameter(callerName) or caller.email,
                        "U",
                        "messenger.msn.com",
                        "1",
                    ),
                )
            )
            sent = True
        return sent

    def referSwitchboard(self, account: str, machineGuid: str) -> Optional[SwitchboardReferral]:
        """
        A switchboard token for C{account} at C{machineGuid} and the address
        to use it at, or L{None} before the switchboard server listens.
        """
        if self.switchboards is None or not self.switchboardAddress:
            return None
        token = self.switchboards.issueXfrToken(account, machineGuid)
        return SwitchboardReferral(self.switchboardAddress, token)

    def placeSignedOut(self, account: str, machineGuid: Optional[str]) -> None:
        """
        An NS place went away: its switchboard tokens and connections go
        with it (all of the account's once its last place is gone).
        """
        # (A test may stand a fake directory in for the real one.)
        if isinstance(self.switchboards, SwitchboardDirectory):
            lastPlace = not self.presence.sessionsOf(account)
            self.switchboards.signedOut(account, machineGuid, lastPlace)

    def privacyChanged(self, account: str) -> None:
        """
        C{account}'s privacy changed: apply it to the open switchboards.
        """
        record = self.store.get(account)
        if isinstance(self.switchboards, SwitchboardDirectory) and record is not None:
            self.switchboards.enforcePrivacy(record)

    def signOutEveryone(self, reason: str = "SSD") -> None:
        """
        Send C{OUT reason} to every NS session and close it.
        """
        for session in self.presence.allSessions():
            session.signOut(reason)

    def account(self, email: str) -> Optional[Account]:
        """
        The account record of C{email}, or L{None}.
        """
        return self.store.get(email)
