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
the HTTP connection pool it created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    TimeoutError,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.endpoints import clientFromString, quoteStringArgument
from twisted.logger import Logger

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits
from msnp.contacts import ContactList, Status
from msnp.listpayload import buildListPayloads
from msnp.preamble import NSRedirect, SSOChallenge
from msnp.endpoints import ClientIdentity, Endpoints, connectQuietly
from msnp.errors import (
    AuthenticationError,
    LoginTimeout,
    ProtocolError,
    RequestTimeout,
    ServerError,
)
from msnp.interfaces import IMessengerObserver, Observers, notifyObserver
from msnp.notification import NotificationProtocol
from msnp.nsmessages import LoginAccepted
from msnp.pictures import PictureCache, checkPicture
from msnp.reactors import reactorOrDefault
from msnp.namespaces import STORAGE
from msnp.roaming import RoamingProfileSync, chooseSignInProfile, cidFromHex
from msnp.session import ContactsTicket, Session
from msnp.soap.storage import StorageService
from msnp.soap.addressbook import AddressBookResult, AddressBookService
from msnp.soap.envelope import ABCHCache, ABCHFault
from msnp.soap.sharing import MembershipResult, SharingService
from msnp.soap.sync import buildContactList, initialListEntries
from msnp.mbi import mbiResponse
from msnp.namespaces import CONTACTS, MBI_KEY_OLD, MESSENGER_WEB
from msnp.offline import UUM_GRACE_PERIOD
from msnp.soap.rsi import RSIService
from msnp.sso import SSOClient, SSOResult
from msnp.httpclient import HTTPClientHandle, makeHTTPClient

log = Logger()

#: How many C{XFR NS} redirects one login follows.
DEFAULT_MAX_REDIRECTS = 5


# -- HTTP ------------------------------------------------------------------------------


def httpClientFor(reactor: Any, endpoints: Endpoints) -> HTTPClientHandle:
    """
    The HTTP client a session uses when the caller gave none: on
    C{reactor}, certificates always verified, trusting only
    C{endpoints.trustRoot} when it is set (self-hosted servers), else the
    platform's store. The session closes it when it ends.
    """
    return makeHTTPClient(reactor, endpoints.trustRoot, persistent=True)


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


def _initialPayloads(contacts: ContactList) -> list[bytes]:
    """
    The initial C{ADL} payloads. An address the payload format cannot
    express (no domain, say, from a damaged address book) is left out and
    logged rather than failing the whole login.
    """
    entries = initialListEntries(contacts)
    try:
        return buildListPayloads(entries, initial=True)
    except ValueError:
        usable = []
        for entry in entries:
            try:
                buildListPayloads([entry], initial=True)
            except ValueError as e:
                log.warn("Leaving {email} out of the initial ADL: {error}", email=entry.email, error=str(e))
            else:
                usable.append(entry)
        return buildListPayloads(usable, initial=True)


def _unwrapFirstError(error: BaseException) -> BaseException:
    while isinstance(error, FirstError):
        inner = error.subFailure.value
        if inner is None:
            break
        error = inner
    return error


class MSNClient:
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
            SSO and address-book services; by default one is created on
            C{reactor} and closed when the session ends.
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
        http: Optional[HTTPClientHandle] = None
        if self.httpClient is None:
            http = httpClientFor(self.reactor, self.endpoints)
        try:
            return await self._login(attempt, http)
        except BaseException as e:
            attempt.stopTimer()
            error = self._loginError(e, attempt)
            log.info(
                "Login of {account} failed at {step}: {error}",
                account=self.account,
                step=attempt.step,
                error=str(error) or type(error).__name__,
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

    async def _cleanUp(self, attempt: _LoginAttempt, http: Optional[HTTPClientHandle]) -> None:
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
        log.debug("Login of {account}: {step} done after {elapsed:.3f}s", account=self.account, step=step, elapsed=elapsed)
        notifyObserver(self.observers, "loginStep", step, elapsed)
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
            connecting.cancel()

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

    async def _login(self, attempt: _LoginAttempt, http: Optional[HTTPClientHandle]) -> "Session":
        httpClient = self.httpClient if self.httpClient is not None else http.client  # type: ignore[union-attr]
        target = self.endpoints.dispatch
        tokens: Optional[SSOResult] = None
        policy = MBI_KEY_OLD
        accepted: Optional[LoginAccepted] = None
        ns: Optional[NotificationProtocol] = None

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
                outcome = await ns.authenticate(tokens.messengerTicket, response)
                if isinstance(outcome, LoginAccepted):
                    accepted = outcome
                    self._step(attempt, "USR OK")
                    break
                result = outcome
            attempt.step = "XFR"
            log.debug("{account} redirected to {address}", account=self.account, address=result.address)
            self._step(attempt, "XFR")
            await ns.close()
            target = _tcpEndpoint(result)
        else:
            raise ProtocolError(f"more than {self.maxRedirects} XFR NS redirects")
        assert ns is not None and accepted is not None and tokens is not None

        contactsTicket = ContactsTicket(tokens.contactsTicket, self._renewer(httpClient, policy))
        cache = ABCHCache()
        sharing = SharingService(
            httpClient, self.endpoints.sharing, contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=contactsTicket.renew,
        )
        addressBook = AddressBookService(
            httpClient, self.endpoints.addressBook, contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=contactsTicket.renew,
        )
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
            ns, sharing, addressBook, contactsTicket, self.observers, self.reactor,
            requestTimeout=self.requestTimeout, trace=self.trace, http=http, client=self,
            pictureCache=self.pictureCache,
            limits=self.limits,
            rsi=rsi, webTicket=webTicket, uumGracePeriod=self.uumGracePeriod,
        )
        state = ns.state

        # The contact list: memberships and address book side by side.
        attempt.step = "contacts"
        membership, book = await self._downloadLists(sharing, addressBook)
        synced = buildContactList(membership, book, self.account)
        session.useContactList(synced.contacts, synced.profile)
        session.roster.rememberSync(membership, book)
        self._step(attempt, "contacts")

        # Tell the NS who we are interested in, one ADL at a time.
        attempt.step = "ADL"
        await ns.setPrivacy(synced.profile.blp)
        for payload in _initialPayloads(state.contacts):
            await ns.sendListCommand("ADL", payload)
        self._step(attempt, "ADL")

        # The roamed profile (part of the "profile" step); a storage
        # failure never fails the login.
        attempt.step = "profile"
        roaming = self._roamingSync(httpClient, tokens, synced.profile.cid)
        roamed = await roaming.load() if roaming is not None else None
        if roaming is not None:
            session.useRoamingProfile(roaming)
        chosen = chooseSignInProfile(
            roamed, self.displayName, self.personalMessage, synced.profile.displayName or self.account
        )

        # Name, place, personal message.
        name = chosen.displayName
        if accepted.verified:
            try:
                await ns.setDisplayName(name)
            except ServerError as e:
                log.info("Display name of {account} refused: {error}", account=self.account, error=str(e))
        else:
            state.displayName = name
        await ns.publishEndpoint(self.initialStatus)
        await ns.publishPersonalData(chosen.personalMessage, "")
        self._step(attempt, "profile")

        # Online.
        attempt.step = "online"
        picture = self.displayPicture
        if picture is None and roamed is not None and roamed.picture is not None and roaming is not None:
            # No picture of the caller's own: start with the roamed one,
            # like name and message (a failed download leaves none).
            picture = await roaming.fetchPicture()
        if picture is not None:
            try:
                await session.setDisplayPicture(picture)  # carried by the first CHG
            except ValueError as e:
                log.info("Display picture of {account} not used: {error}", account=self.account, error=str(e))
        await ns.changeStatus(self.initialStatus)
        ns.startKeepAlive()
        # Circles after the first CHG (supplement Q.4.3); a failure there
        # leaves the session usable without them.
        try:
            await session.circleManager.signIn(book.circles)
        except Exception as e:
            log.info("Circles of {account} unavailable: {error}", account=self.account, error=str(e))
        session.markSignedIn()
        self._step(attempt, "online")
        log.info("{account} signed in as {status}", account=self.account, status=state.status.code)
        notifyObserver(self.observers, "signedIn", session)
        return session

    def _roamingSync(
        self, httpClient: Any, tokens: SSOResult, cid: Optional[int]
    ) -> Optional[RoamingProfileSync]:
        """
        The roamed-profile sync of this session, or L{None} (logged) when
        the SSO service issued no storage ticket or no CID is known.
        """
        try:
            ticket = tokens.token(STORAGE).ticket
        except AuthenticationError:
            log.info("No {address} ticket for {account}: no roaming profile", address=STORAGE, account=self.account)
            return None
        if cid is None:
            cid = cidFromHex(tokens.cid)
        if cid is None:
            log.info("No CID known for {account}: no roaming profile", account=self.account)
            return None
        service = StorageService(
            httpClient, self.endpoints.storage, lambda: ticket, self.reactor, timeout=self.requestTimeout
        )
        return RoamingProfileSync(service, cid, self.reactor)

    def _renewer(self, httpClient: Any, policy: str, address: str = CONTACTS) -> Callable[[], "Deferred[str]"]:
        """
        How one of the session's tickets (by default the contacts ticket)
        is renewed: the login's SSO request again, same account, password
        and policy.
        """

        def renew() -> "Deferred[str]":
            log.info("Renewing the {address} ticket of {account}", address=address, account=self.account)

            def renewed(tokens: SSOResult) -> str:
                log.info("{address} ticket of {account} renewed", address=address, account=self.account)
                return tokens.token(address).ticket

            return self._requestTokens(httpClient, policy).addCallback(renewed)

        return renew

    def _requestTokens(self, httpClient: Any, policy: str) -> "Deferred[SSOResult]":
        """
        One SSO request for this account (at login, and again whenever the
        contacts ticket has expired).
        """
        sso = SSOClient(httpClient, self.endpoints.sso, self.reactor, timeout=self.requestTimeout)
        return sso.requestTokens(self.account, self._password, policy)

    async def _downloadLists(
        self, sharing: SharingService, addressBook: AddressBookService
    ) -> tuple[MembershipResult, AddressBookResult]:
        membership: MembershipResult
        book: AddressBookResult
        try:
            both: list[Any] = await gatherResults(
                [sharing.findMembership(), addressBook.findContactsPaged()],  # type: ignore[list-item]
                consumeErrors=True,
            )
            membership, book = both
        except FirstError as e:
            error = _unwrapFirstError(e)
            if not (isinstance(error, ABCHFault) and error.errorCode == "ABDoesNotExist"):
                raise error from None
            log.info("{account} has no address book yet; creating it", account=self.account)
            await addressBook.abAdd(self.account)
            membership = await sharing.findMembership()
            book = await addressBook.findContactsPaged()
        return membership, book
