# -*- test-case-name: test.test_client -*-
"""
The public entry point: L{MSNClient} signs in and hands out a L{Session}.

L{MSNClient.login} is one chain that reads like the protocol (reference
section 2): connect to the dispatch server, C{VER}/C{CVR}/C{USR SSO I},
follow C{XFR NS} redirects (or continue when the first server is already
the notification server), get the Passport tokens, answer the MBI
challenge, then download the contact list (memberships and address book
side by side), tell the server about it (C{BLP}, initial C{ADL}s),
publish the display name, place and personal message, and go online with
C{CHG}. The L{Session} it fires with already has its complete contact
list.

A login either succeeds or fails with one typed error
(L{AuthenticationError}, L{LoginTimeout}, L{ConnectionLost},
L{ProtocolError}, L{ServiceError}, L{ServerError}, ...), and in every
failure case it first closes whatever it opened: connections, timers and
its claim on the shared HTTP connection pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.endpoints import clientFromString, quoteStringArgument
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits
from msnp.contacts import Status
from msnp.preamble import NSRedirect, SSOChallenge
from msnp.endpoints import ClientIdentity, Endpoints, connectQuietly
from msnp.errors import LoginTimeout, ProtocolError, RequestTimeout, ServerError
from msnp.interfaces import IMessengerObserver, Observers, notifyObserver
from msnp.notification import NotificationProtocol
from msnp.nsmessages import LoginAccepted
from msnp.pictures import PictureCache, checkPicture
from msnp.reactors import reactorOrDefault
from msnp.roaming import RoamingProfileSync, chooseSignInProfile
from msnp.session import ContactsTicket, Session
from msnp.soap.sync import buildContactList
from msnp.mbi import mbiResponse
from msnp.namespaces import MBI_KEY_OLD, MESSENGER_WEB
from msnp.offline import UUM_GRACE_PERIOD
from msnp.soap.rsi import RSIService
from msnp.sso import SSOResult
from msnp.loginservices import EarlyDownloads, LoginServices, _drop, _initialPayloads, _unwrapFirstError, httpClientFor
from msnp.httpclient import HTTPClientOwner

log = Logger()

#: How many C{XFR NS} redirects one login follows.
DEFAULT_MAX_REDIRECTS = 5


# -- the login ----------------------------------------------------------------------------


@dataclass
class _LoginAttempt:
    """
    What one login opened, so a failure can close all of it.
    """

    started: float
    protocols: list[NotificationProtocol] = field(default_factory=list)
    step: str = "connect"
    timedOut: bool = False
    timer: Any = None
    deferred: "Optional[Deferred[Any]]" = None
    #: "<step> <seconds>s" of every step done, for the debug log.
    timings: list[str] = field(default_factory=list)

    def checkCancelled(self) -> None:
        """
        Stop at a step boundary if the login was cancelled while it was
        running (e.g. from an observer's C{loginStep}): the coroutine's
        L{Deferred} only counts as called before the chain returns when a
        cancellation was requested, and such a request cannot interrupt
        code that is not waiting on anything.

        @raise CancelledError: it was.
        """
        if self.deferred is not None and self.deferred.called:
            raise CancelledError()

    def stopTimer(self) -> None:
        """
        Cancel the login deadline (once the login is over, or while a
        failed one is cleaning up, which must not be interrupted).
        """
        if self.timer is not None and self.timer.active():
            self.timer.cancel()


def _tcpEndpoint(redirect: NSRedirect) -> str:
    return f"tcp:host={quoteStringArgument(redirect.host)}:port={redirect.port}"



class MSNClient(LoginServices):
    """
    Signs one account in to an MSNP18 network.

    @ivar account: the Passport address.
    @ivar endpoints: where the services are.
    @ivar identity: what the client says it is (its C{machineGuid} is this
        place's MPOP endpoint id).
    @ivar observers: everything told about the session's events (L{addObserver}).
    @ivar observer: the first of them (see the property).
    """

    def __init__(
        self,
        account: str,
        password: str,
        endpoints: Endpoints = Endpoints(),
        observer: Optional[object] = None,
        reactor: Any = None,
        identity: Optional[ClientIdentity] = None,
        loginTimeout: float = 60.0,
        requestTimeout: float = 30.0,
        httpClient: Any = None,
        trace: bool = False,
        initialStatus: Status = Status.ONLINE,
        displayName: Optional[str] = None,
        personalMessage: Optional[str] = None,
        maxRedirects: int = DEFAULT_MAX_REDIRECTS,
        displayPicture: Optional[bytes] = None,
        pictureCacheDirectory: Optional[str] = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
        uumGracePeriod: float = UUM_GRACE_PERIOD,
    ) -> None:
        """
        @param password: never logged, never shown in a repr.
        @param reactor: the reactor for connections and every timeout (the
            global one by default).
        @param loginTimeout: seconds the whole login may take.
        @param requestTimeout: seconds one step (a command, an HTTP call)
            may take.
        @param httpClient: a treq C{HTTPClient} (or C{StubTreq}) for the
            SSO and address-book services, left open (the caller's); by
            default the sessions on C{reactor} share one connection pool,
            closed when the last of them ends.
        @param trace: log every command both ways (secrets redacted).
        @param initialStatus: the status to sign in with (not
            L{Status.OFFLINE}).
        @param displayName: the name to publish; by default the one the
            address book has.
        @param personalMessage: the personal message to publish.
        @param maxRedirects: how many C{XFR NS} redirects to follow.
        @param displayPicture: PNG or JPEG bytes to publish at every login
            (L{msnp.session.Session.setDisplayPicture} replaces it).
        @param pictureCacheDirectory: a directory keeping fetched display
            pictures across restarts (by default they are kept in memory,
            across reconnects only).
        @raise ValueError: C{displayPicture} is not a usable picture.
        @param limits: the caps against a hostile server (places per
            contact, invitations, conversations; C{docs/limits.md}).
        @param uumGracePeriod: seconds an offline message (C{UUM}) may
            still be refused before it counts as stored (docs/offline.md).
        """
        if initialStatus is Status.OFFLINE:
            raise ValueError("cannot sign in as FLN; use Status.HIDDEN to appear offline")
        self.account = account.strip()
        self._password = password
        self.endpoints = endpoints
        self.observers = Observers([observer] if observer is not None else [])
        self.reactor = reactorOrDefault(reactor)
        self.identity = identity if identity is not None else ClientIdentity()
        self.loginTimeout = loginTimeout
        self.requestTimeout = requestTimeout
        self.httpClient = httpClient
        self.trace = trace
        self.initialStatus = initialStatus
        self.displayName = displayName
        self.personalMessage = personalMessage
        self.maxRedirects = maxRedirects
        if displayPicture is not None:
            checkPicture(displayPicture)
        #: The picture every login publishes (kept across reconnects).
        self.displayPicture: Optional[bytes] = displayPicture
        #: The custom emoticons (shortcut to image) every session starts
        #: with; L{msnp.session.Session.setCustomEmoticon} updates it.
        self.customEmoticons: dict[str, bytes] = {}
        #: Fetched pictures, shared by the sessions of this client.
        self.pictureCache = PictureCache(pictureCacheDirectory)
        self.limits = limits
        self.uumGracePeriod = uumGracePeriod

    @property
    def observer(self) -> Optional[IMessengerObserver]:
        """
        The first observer (L{None} if there is none); setting it replaces
        all observers with this one. L{addObserver} adds more.
        """
        for each in self.observers:
            return each  # type: ignore[return-value]
        return None

    @observer.setter
    def observer(self, observer: Optional[object]) -> None:
        self.observers.replace(observer)

    def addObserver(self, observer: object) -> None:
        """
        Tell C{observer} (any object with some L{IMessengerObserver}
        methods) about every event from now on, besides the others; one
        observer raising never stops the rest.
        """
        self.observers.add(observer)

    def removeObserver(self, observer: object) -> None:
        """
        Stop telling C{observer} about events.
        """
        self.observers.remove(observer)

    def __repr__(self) -> str:
        return f"<MSNClient {self.account} via {self.endpoints.dispatch}>"

    def login(self) -> "Deferred[Session]":
        """
        Sign in.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the L{Session} once the contact
            list is known and the status is announced; or failing with
            L{AuthenticationError} (wrong password, unknown account, ticket
            refused), L{LoginTimeout} (the whole login or one step took too
            long), L{msnp.errors.ConnectionLost} (a server hung up),
            L{ProtocolError} (incl. L{msnp.errors.UnsupportedProtocol}),
            L{msnp.errors.ServiceError} (SSO/ABCH failures),
            L{ServerError} (a numeric error), or L{msnp.errors.SignedOut}.
            Cancelling it abandons the login and closes what it opened.
        """
        attempt = _LoginAttempt(started=self.reactor.seconds())
        d = ensureDeferred(self._attemptLogin(attempt))
        attempt.deferred = d

        def timedOut() -> None:
            attempt.timedOut = True
            d.cancel()

        attempt.timer = self.reactor.callLater(self.loginTimeout, timedOut)

        def finished(result: Any) -> Any:
            attempt.stopTimer()
            return result

        return d.addBoth(finished)

    # -- the chain --------------------------------------------------------------------------

    async def _attemptLogin(self, attempt: _LoginAttempt) -> "Session":
        http: Optional[HTTPClientOwner] = None
        if self.httpClient is None:
            http = httpClientFor(self.reactor, self.endpoints)
        try:
            return await self._login(attempt, http)
        except BaseException as e:
            attempt.stopTimer()
            error = self._loginError(e, attempt)
            log.info(
                "Login of {account} failed at {step}: {error} (steps done after {timings})",
                account=self.account,
                step=attempt.step,
                error=str(error) or type(error).__name__,
                timings=", ".join(attempt.timings) or "none",
            )
            await self._cleanUp(attempt, http)
            raise error from None

    def _loginError(self, error: BaseException, attempt: _LoginAttempt) -> BaseException:
        error = _unwrapFirstError(error)
        if attempt.timedOut:
            return LoginTimeout(f"login did not finish within {self.loginTimeout:g}s (at {attempt.step})")
        if isinstance(error, ConnectingCancelledError):
            return CancelledError()
        if isinstance(error, (RequestTimeout, TimeoutError)):
            return LoginTimeout(f"login step {attempt.step} timed out: {error}")
        return error

    async def _cleanUp(self, attempt: _LoginAttempt, http: Optional[HTTPClientOwner]) -> None:
        for protocol in attempt.protocols:
            protocol.listener = None
            protocol.stopKeepAlive()
            try:
                await protocol.close(abort=True)
            except Exception:
                log.failure("Error while closing a connection of a failed login")
        if http is not None:
            try:
                await http.close()
            except Exception:
                log.failure("Error while closing the HTTP pool of a failed login")

    def _progress(self, attempt: _LoginAttempt) -> Callable[[str, bool], None]:
        def progress(step: str, done: bool) -> None:
            if done:
                self._step(attempt, step)
            else:
                attempt.step = step

        return progress

    def _step(self, attempt: _LoginAttempt, step: str) -> None:
        elapsed = self.reactor.seconds() - attempt.started
        # Logged all together once signed in (one event instead of about
        # fifteen: each costs more than the step's own bookkeeping).
        attempt.timings.append(f"{step} {elapsed:.3f}s")
        notifyObserver(self.observers, "loginStep", self, step, elapsed)
        attempt.checkCancelled()

    async def _connect(self, attempt: _LoginAttempt, description: str) -> NotificationProtocol:
        attempt.step = "connect"
        protocol = NotificationProtocol(
            self.account,
            self.identity,
            clock=self.reactor,
            requestTimeout=self.requestTimeout,
            trace=self.trace,
            observer=self.observers,
            limits=self.limits,
        )
        attempt.protocols.append(protocol)
        endpoint = clientFromString(self.reactor, description)
        connecting = connectQuietly(endpoint, protocol)
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            connecting.cancel()  # never raises (connectQuietly)

        timer = self.reactor.callLater(self.requestTimeout, expire)
        try:
            await connecting
        except ConnectError as e:
            if expired:
                raise LoginTimeout(f"could not connect to {description} within {self.requestTimeout:g}s") from None
            # Twisted's message ("Connection was refused by other side")
            # names no address; a user needs to know which one.
            raise type(e)(e.osError, f"connecting to {description}") from None
        except BaseException:
            if expired:
                # Cancelling a connection attempt fails it with
                # ConnectingCancelledError, not CancelledError.
                raise LoginTimeout(f"could not connect within {self.requestTimeout:g}s") from None
            raise
        finally:
            if timer.active():
                timer.cancel()
        self._step(attempt, "connect")
        return protocol

    async def _login(self, attempt: _LoginAttempt, http: Optional[HTTPClientOwner]) -> "Session":
        httpClient = self.httpClient if self.httpClient is not None else http.client  # type: ignore[union-attr]
        target = self.endpoints.dispatch
        tokens: Optional[SSOResult] = None
        policy = MBI_KEY_OLD
        accepted: Optional[LoginAccepted] = None
        ns: Optional[NotificationProtocol] = None
        downloads: Optional[EarlyDownloads] = None

        try:
            for _ in range(self.maxRedirects + 1):
                ns = await self._connect(attempt, target)
                result = await ns.negotiate(self._progress(attempt))
                if isinstance(result, SSOChallenge):
                    if tokens is None:
                        attempt.step = "SSO"
                        policy = result.policy or MBI_KEY_OLD
                        tokens = await self._requestTokens(httpClient, policy)
                        self._step(attempt, "SSO")
                    try:
                        response = mbiResponse(tokens.messengerSecret, result.nonce)
                    except ValueError as e:
                        raise ProtocolError(f"unusable SSO challenge: {e}") from None
                    attempt.step = "USR OK"
                    authenticating = ns.authenticate(tokens.messengerTicket, response)
                    if downloads is None:
                        # The contact list and the roamed profile need the
                        # tickets, not the NS: download them while it checks
                        # ours (the NS wire is unchanged; its refusal still
                        # comes first, below).
                        downloads = self._startDownloads(httpClient, tokens, policy)
                    outcome = await authenticating
                    if isinstance(outcome, LoginAccepted):
                        accepted = outcome
                        self._step(attempt, "USR OK")
                        break
                    result = outcome
                attempt.step = "XFR"
                log.debug("{account} redirected to {address}", account=self.account, address=result.address)
                self._step(attempt, "XFR")
                # The dispatch server is done with: its close runs while the
                # notification server is dialled (a login waits for two
                # connections, not three events).
                ns.close()
                target = _tcpEndpoint(result)
            else:
                raise ProtocolError(f"more than {self.maxRedirects} XFR NS redirects")
            assert ns is not None and accepted is not None and tokens is not None and downloads is not None
            session, synced, book, roaming, roamed, roamedPicture = await self._contactList(
                attempt, http, httpClient, ns, tokens, policy, downloads
            )
        except BaseException:
            if downloads is not None:
                downloads.drop()
            raise
        state = ns.state
        picture = self.displayPicture if self.displayPicture is not None else roamedPicture
        if roaming is not None:
            session.useRoamingProfile(roaming)
        chosen = chooseSignInProfile(
            roamed, self.displayName, self.personalMessage, synced.profile.displayName or self.account
        )
        if picture is not None:
            try:
                await session.setDisplayPicture(picture)  # carried by the first CHG
            except ValueError as e:
                log.info("Display picture of {account} not used: {error}", account=self.account, error=str(e))

        # BLP, the initial ADLs, name, place, personal message and CHG
        # written back to back (reference 2.10 order), then all their
        # replies awaited: the first failure fails the login.
        attempt.step = "ADL"
        batch: list[tuple[str, Deferred[Any]]] = []
        try:
            batch.append(("ADL", ns.setPrivacy(synced.profile.blp)))
            for payload in _initialPayloads(state.contacts):
                batch.append(("ADL", ns.sendListCommand("ADL", payload)))
            name = chosen.displayName
            if accepted.verified:
                batch.append(("profile", ns.setDisplayName(name).addErrback(self._nameRefused)))
            else:
                state.displayName = name
            batch.append(("profile", ns.publishEndpoint(self.initialStatus)))
            batch.append(("profile", ns.publishPersonalData(chosen.personalMessage, "")))
            batch.append(("online", ns.changeStatus(self.initialStatus)))
        except BaseException:
            for _, written in batch:
                _drop(written)
            raise
        await self._awaitBatch(attempt, batch)
        self._step(attempt, "ADL")
        self._step(attempt, "profile")

        # Online.
        attempt.step = "online"
        ns.startKeepAlive()
        # Circles after the first CHG (supplement Q.4.3); a failure there
        # leaves the session usable without them.
        try:
            await session.signInCircles(book.circles)
        except Exception as e:
            log.info("Circles of {account} unavailable: {error}", account=self.account, error=str(e))
        session.markSignedIn()
        self._step(attempt, "online")
        log.debug("Login of {account}: steps done after {timings}", account=self.account,
                  timings=", ".join(attempt.timings))
        log.info("{account} signed in as {status}", account=self.account, status=state.status.code)
        notifyObserver(self.observers, "signedIn", session)
        return session

    async def _contactList(
        self, attempt: _LoginAttempt, http: Optional[HTTPClientOwner], httpClient: Any,
        ns: NotificationProtocol, tokens: SSOResult, policy: str, downloads: EarlyDownloads,
    ) -> tuple[Session, Any, Any, Optional[RoamingProfileSync], Any, Optional[bytes]]:
        """
        After C{USR OK}: the L{Session}, the contact list it starts with
        (its download began with C{USR SSO S}) and the roamed profile (the
        "contacts" and "profile" steps).
        """
        # Offline messages: RSI with the messenger.msn.com ticket, when
        # the SSO service issued one.
        webTicket: Optional[ContactsTicket] = None
        rsi: Optional[RSIService] = None
        web = tokens.tokens.get(MESSENGER_WEB)
        if web is not None and web.ticket:
            webTicket = ContactsTicket(web.ticket, self._renewer(httpClient, policy, MESSENGER_WEB))
            rsi = RSIService(
                httpClient, self.endpoints.rsi, webTicket, self.reactor,
                timeout=self.requestTimeout, renewTicket=webTicket.renew,
            )
        else:
            log.info("No {address} ticket for {account}: offline messages will not be fetched",
                     address=MESSENGER_WEB, account=self.account)
        session = Session(
            ns, downloads.sharing, downloads.addressBook, downloads.contactsTicket, self.observers, self.reactor,
            requestTimeout=self.requestTimeout, trace=self.trace, http=http, client=self,
            pictureCache=self.pictureCache,
            limits=self.limits,
            rsi=rsi, webTicket=webTicket, uumGracePeriod=self.uumGracePeriod,
        )

        # The contact list (memberships and address book side by side)
        # and, when the tickets name the CID already, the roamed profile
        # at the same time: the storage service needs no address book.
        attempt.step = "contacts"
        membership, book = await downloads.lists
        synced = buildContactList(membership, book, self.account)
        session.useContactList(synced.contacts, synced.profile)
        session.roster.rememberSync(membership, book)
        self._step(attempt, "contacts")

        # The roamed profile (part of the "profile" step); a storage
        # failure never fails the login. The address book's CID wins.
        attempt.step = "profile"
        early = roaming = downloads.roaming
        cid = synced.profile.cid
        if early is None or (cid is not None and cid != early.cid):
            _drop(downloads.roamed)
            roaming = self._roamingSync(httpClient, tokens, cid)
            downloads.roamed = self._loadRoamed(roaming)
        roamed, roamedPicture = await downloads.roamed
        return session, synced, book, roaming, roamed, roamedPicture

    def _nameRefused(self, failure: Failure) -> None:
        """
        A refused C{PRP MFN} does not fail the login (logged); anything
        else does.
        """
        error = failure.trap(ServerError) and failure.value
        log.info("Display name of {account} refused: {error}", account=self.account, error=str(error))

    async def _awaitBatch(self, attempt: _LoginAttempt, batch: "list[tuple[str, Deferred[Any]]]") -> None:
        """
        Wait for the replies of commands written back to back. The first
        failure wins (its step becomes the login's step) and is raised; the
        others are consumed, so none is left unhandled.
        """

        def failed(failure: Failure, step: str) -> Failure:
            if not failures:
                failures.append(step)
                attempt.step = step
            return failure

        failures: list[str] = []
        waiting = [d.addErrback(failed, step) for step, d in batch]
        await gatherResults(waiting, consumeErrors=True)
