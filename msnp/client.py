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
from typing import Any, Optional

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    TimeoutError,
    ensureDeferred,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.endpoints import clientFromString, quoteStringArgument
from twisted.logger import Logger

from msnp.contacts import ContactList, Endpoint, Profile, Status, buildListPayloads, formatCurrentMedia
from msnp.dispatch import MAX_RESTARTS, NSRedirect, SSOChallenge
from msnp.endpoints import ClientIdentity, Endpoints, connectQuietly
from msnp.errors import (
    LoginTimeout,
    MSNPError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    ServiceError,
)
from msnp.interfaces import notifyObserver
from msnp.notification import LoginAccepted, NotificationProtocol, SessionState
from msnp.protocol import reactorOrDefault
from msnp.roster import RosterManager
from msnp.soap.addressbook import AddressBookResult, AddressBookService
from msnp.soap.envelope import ABCHCache, ABCHFault
from msnp.soap.sharing import MembershipResult, SharingService
from msnp.soap.sync import buildContactList, initialListEntries
from msnp.sso import MBI_KEY_OLD, SSOClient, SSOResult, mbiResponse
from msnp.switchboard import ConversationManager
from msnp.tls import HTTPClientHandle, makeHTTPClient

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


# -- tickets ------------------------------------------------------------------------------


class ContactsTicket:
    """
    The session's current C{contacts.msn.com} ticket, which the ABCH
    clients read at every call; a renewal swaps it in place. Calling the
    object returns the ticket, so it is itself the ticket provider.
    The ticket never appears in the C{repr}.
    """

    def __init__(self, ticket: str) -> None:
        self._ticket = ticket

    def __call__(self) -> str:
        return self._ticket

    def replace(self, ticket: str) -> None:
        """
        Use C{ticket} from the next call on.
        """
        self._ticket = ticket

    def __repr__(self) -> str:
        return "<ContactsTicket (hidden)>"


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
    @ivar observer: receives the session's events.
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
        """
        if initialStatus is Status.OFFLINE:
            raise ValueError("cannot sign in as FLN; use Status.HIDDEN to appear offline")
        self.account = account.strip()
        self._password = password
        self.endpoints = endpoints
        self.observer = observer
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
            protocol.onEnded = None
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

    def _step(self, attempt: _LoginAttempt, step: str) -> None:
        elapsed = self.reactor.seconds() - attempt.started
        log.debug("Login of {account}: {step} done after {elapsed:.3f}s", account=self.account, step=step, elapsed=elapsed)
        notifyObserver(self.observer, "loginStep", step, elapsed)
        attempt.checkCancelled()

    async def _connect(self, attempt: _LoginAttempt, description: str) -> NotificationProtocol:
        attempt.step = "connect"
        protocol = NotificationProtocol(
            self.account,
            self.identity,
            clock=self.reactor,
            requestTimeout=self.requestTimeout,
            trace=self.trace,
            observer=self.observer,
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
            result = await self._negotiate(attempt, ns)
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

        session = Session(self, ns, http)
        session._contactsTicket = ContactsTicket(tokens.contactsTicket)
        session._ssoPolicy = policy
        ns.session = session
        ns.onEnded = session._ended
        state = ns.state

        # The contact list: memberships and address book side by side.
        attempt.step = "contacts"
        cache = ABCHCache()
        sharing = SharingService(
            httpClient, self.endpoints.sharing, session._contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=session.renewTicket,
        )
        addressBook = AddressBookService(
            httpClient, self.endpoints.addressBook, session._contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=session.renewTicket,
        )
        membership, book = await self._downloadLists(sharing, addressBook)
        synced = buildContactList(membership, book, self.account)
        state.contacts = synced.contacts
        state.profile = synced.profile
        session._attachServices(sharing, addressBook)
        self._step(attempt, "contacts")

        # Tell the NS who we are interested in, one ADL at a time.
        attempt.step = "ADL"
        await ns.setPrivacy(synced.profile.blp)
        for payload in _initialPayloads(state.contacts):
            await ns.sendListCommand("ADL", payload)
        self._step(attempt, "ADL")

        # Name, place, personal message.
        attempt.step = "profile"
        name = self.displayName or synced.profile.displayName or self.account
        if accepted.verified:
            try:
                await ns.setDisplayName(name)
            except ServerError as e:
                log.info("Display name of {account} refused: {error}", account=self.account, error=str(e))
        else:
            state.displayName = name
        await ns.publishEndpoint(self.initialStatus)
        await ns.publishPersonalData(self.personalMessage or "", "")
        self._step(attempt, "profile")

        # Online.
        attempt.step = "online"
        session._attachConversations()
        await ns.changeStatus(self.initialStatus)
        ns.startKeepAlive()
        session._signedIn = True
        self._step(attempt, "online")
        log.info("{account} signed in as {status}", account=self.account, status=state.status.code)
        notifyObserver(self.observer, "signedIn", session)
        return session

    def _requestTokens(self, httpClient: Any, policy: str) -> "Deferred[SSOResult]":
        """
        One SSO request for this account (at login, and again whenever the
        contacts ticket has expired).
        """
        sso = SSOClient(httpClient, self.endpoints.sso, self.reactor, timeout=self.requestTimeout)
        return sso.requestTokens(self.account, self._password, policy)

    async def _negotiate(
        self, attempt: _LoginAttempt, ns: NotificationProtocol
    ) -> "NSRedirect | SSOChallenge":
        for _ in range(MAX_RESTARTS + 1):
            attempt.step = "VER"
            await ns.negotiateVersion()
            self._step(attempt, "VER")
            attempt.step = "CVR"
            result = await ns.identify()
            self._step(attempt, "CVR")
            if result is not None:
                return result
        raise ProtocolError(f"server asked to start over more than {MAX_RESTARTS} times")

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


# -- the session --------------------------------------------------------------------------


class Session:
    """
    A signed-in account: its state, its contacts, its conversations.

    Every attribute reflects what the server confirmed; the setters change
    them only when the server echoes the change.
    """

    def __init__(self, client: MSNClient, protocol: NotificationProtocol, http: Optional[HTTPClientHandle]) -> None:
        self.client = client
        self.protocol = protocol
        self.observer = client.observer
        self.roster: Any = None
        self.conversationManager: Any = None
        self._http = http
        self._signedIn = False
        self._ended_ = False
        self._endReason: Optional[str] = None
        self._endWaiters: list[Deferred[Optional[str]]] = []
        self._cleanedUp: Optional[Deferred[None]] = None
        self._contactsTicket: Optional[ContactsTicket] = None
        self._ssoPolicy = MBI_KEY_OLD

    def __repr__(self) -> str:
        return f"<Session {self.account} {self.status.code}{' ended' if self._ended_ else ''}>"

    def renewTicket(self) -> "Deferred[None]":
        """
        Renew the C{contacts.msn.com} ticket the ABCH clients use: run the
        SSO request of the login again (same account, password and policy)
        and swap in the new ticket. The NS session is not touched (reference
        section 7.4). The ABCH clients call this by themselves when the
        service says the ticket has expired.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the new ticket is in use, or
            failing with L{msnp.errors.AuthenticationError} (the password is
            no longer accepted) or L{msnp.errors.ServiceError}.
        """
        return ensureDeferred(self._renewTicket())

    async def _renewTicket(self) -> None:
        if self._ended_:
            raise ServiceError("the session has ended; its tickets cannot be renewed")
        holder = self._contactsTicket
        if holder is None:
            raise ServiceError("this session has no contacts ticket to renew")
        httpClient = self.client.httpClient
        if httpClient is None:
            if self._http is None:
                raise ServiceError("this session has no HTTP client to renew its tickets with")
            httpClient = self._http.client
        log.info("Renewing the contacts ticket of {account}", account=self.account)
        tokens = await self.client._requestTokens(httpClient, self._ssoPolicy)
        holder.replace(tokens.contactsTicket)
        log.info("Contacts ticket of {account} renewed", account=self.account)

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """
        The NS connection's live state; the other properties read it, so
        they never disagree with what the server confirmed.
        """
        return self.protocol.state

    @property
    def account(self) -> str:
        return self.state.account

    @property
    def contacts(self) -> ContactList:
        return self.state.contacts

    @property
    def profile(self) -> Optional[Profile]:
        return self.state.profile

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def displayName(self) -> str:
        return self.state.displayName

    @property
    def personalMessage(self) -> str:
        return self.state.personalMessage

    @property
    def currentMedia(self) -> str:
        return self.state.currentMedia

    @property
    def machineGuid(self) -> str:
        return self.state.machineGuid

    @property
    def policy(self) -> Optional[bytes]:
        """
        The C{GCF} policy document the server pushed at login, if any.
        """
        return self.protocol.policy

    @property
    def places(self) -> dict[str, Endpoint]:
        """
        This account's signed-in places (MPOP), ours included.
        """
        return self.state.places

    @property
    def hotmailProfile(self) -> dict[str, str]:
        return self.state.hotmailProfile

    @property
    def isActive(self) -> bool:
        """
        Whether the login finished and the session has not ended: only
        then do requests on it make sense.
        """
        return self._signedIn and not self._ended_

    # -- wiring (used by MSNClient) -------------------------------------------------------------

    def _attachServices(self, sharing: SharingService, addressBook: AddressBookService) -> None:
        self.roster = RosterManager(
            self.contacts, sharing, addressBook, self.protocol.sendListCommand, self.observer,
            session=self, ownEmail=self.account,
        )
        self.protocol.roster = self.roster

    def _attachConversations(self) -> None:
        self.conversationManager = ConversationManager(
            account=self.account,
            machineGuid=self.machineGuid,
            displayName=lambda: self.displayName or self.account,
            requestSwitchboard=self.protocol.requestSwitchboard,
            observer=self.observer,
            reactor=self.client.reactor,
            requestTimeout=self.client.requestTimeout,
            trace=self.client.trace,
        )
        self.protocol.conversationManager = self.conversationManager

    def _ended(self, reason: Optional[str]) -> None:
        """
        The NS connection closed: end everything that hangs off it.
        """
        if self._ended_:
            return
        self._ended_ = True
        self._endReason = reason
        if self.conversationManager is not None:
            try:
                self.conversationManager.closeAll()
            except Exception:
                log.failure("Error while closing the conversations of {account}", account=self.account)
        cleanup: Deferred[None] = self._http.close() if self._http is not None else succeed(None)
        cleanup.addErrback(lambda f: log.failure("Error while closing the HTTP pool", f))
        self._cleanedUp = cleanup
        if not self._signedIn:
            return
        log.info("Session of {account} ended: {reason}", account=self.account, reason=reason)
        notifyObserver(self.observer, "signedOut", self, reason)

        def tellWaiters(_: object) -> None:
            waiters, self._endWaiters = self._endWaiters, []
            for waiter in waiters:
                waiter.callback(reason)

        cleanup.addCallback(tellWaiters)

    # -- lifetime ----------------------------------------------------------------------------------

    def logout(self) -> "Deferred[None]":
        """
        Send C{OUT}, close the conversations and the connection.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing when everything is closed.
        """
        return ensureDeferred(self._logout())

    async def _logout(self) -> None:
        if self.conversationManager is not None and not self._ended_:
            try:
                self.conversationManager.closeAll()
            except Exception:
                log.failure("Error while closing the conversations of {account}", account=self.account)
        await self.protocol.signOut()
        if self._cleanedUp is not None and not self._cleanedUp.called:
            done: Deferred[None] = Deferred()

            def passOn(result: object) -> object:
                done.callback(None)
                return result

            self._cleanedUp.addBoth(passOn)
            await done

    def whenEnded(self) -> "Deferred[Optional[str]]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing once the session is over, with the reason: the
        server's C{OUT} code (C{"OTH"}, C{"SSD"}, ...), C{"logout"},
        C{"connection lost"}, or C{"signed out from another place"}.
        """
        if self._ended_ and not self._endWaiters and self._cleanedUp is not None and self._cleanedUp.called:
            return succeed(self._endReason)
        d: Deferred[Optional[str]] = Deferred()
        self._endWaiters.append(d)
        return d

    # -- presence ----------------------------------------------------------------------------------

    def setStatus(self, status: Status) -> "Deferred[Status]":
        """
        Change the status (C{UUX} place state, then C{CHG}); fires with the
        status the server echoed.
        """
        if status is Status.OFFLINE:
            return fail(ValueError("cannot set FLN; use logout() or Status.HIDDEN"))
        if status is self.status:
            return succeed(status)

        async def change() -> Status:
            await self.protocol.publishEndpoint(status)
            return await self.protocol.changeStatus(status)

        return ensureDeferred(change())

    def setDisplayName(self, name: str) -> "Deferred[str]":
        """
        Change the display name (C{PRP MFN}); fires with the echoed name.
        """
        if not name.strip():
            return fail(ValueError("a display name cannot be empty"))
        return self.protocol.setDisplayName(name)

    def setPersonalMessage(self, text: str) -> "Deferred[None]":
        """
        Change the personal message (C{UUX}); fires on C{UUX trid 0}.
        """
        return self.protocol.publishPersonalData(text, self.currentMedia)

    def setCurrentMedia(
        self, title: str, artist: str = "", album: str = "", category: str = "Music"
    ) -> "Deferred[None]":
        """
        Show (or, with an empty C{title}, clear) "now playing".
        """
        media = formatCurrentMedia(title, artist, album, category)
        return self.protocol.publishPersonalData(self.personalMessage, media)

    # -- conversations ---------------------------------------------------------------------------------

    def _conversations(self) -> Any:
        if self.conversationManager is None:
            raise MSNPError("conversations are not available in this session")
        return self.conversationManager

    def openConversation(self, email: str) -> "Deferred[Any]":
        """
        Start (or reuse) a conversation with C{email}.
        """
        try:
            return self._conversations().openConversation(email)  # type: ignore[no-any-return]
        except MSNPError as e:
            return fail(e)

    @property
    def conversations(self) -> Any:
        """
        The open L{msnp.switchboard.Conversation}s (an empty list when the
        session has no conversation manager).
        """
        if self.conversationManager is None:
            return []
        return self.conversationManager.conversations

    # -- contact management (see msnp.roster.RosterManager) ---------------------------------------------

    def _delegate(self, method: str, *args: Any) -> "Deferred[Any]":
        if self.roster is None:
            return fail(MSNPError("contact management is not available in this session"))
        return getattr(self.roster, method)(*args)  # type: ignore[no-any-return]

    def addContact(self, email: str, group: Any = None) -> "Deferred[Any]":
        """
        Add C{email} to the contact list (optionally into C{group}).
        """
        return self._delegate("addContact", email, group)

    def removeContact(self, email: str) -> "Deferred[Any]":
        """
        Take C{email} off the contact list (address book and forward list).
        """
        return self._delegate("removeContact", email)

    def blockContact(self, email: str) -> "Deferred[Any]":
        """
        Block C{email}: they see you offline and cannot talk to you.
        """
        return self._delegate("blockContact", email)

    def unblockContact(self, email: str) -> "Deferred[Any]":
        """
        Allow C{email} again.
        """
        return self._delegate("unblockContact", email)

    def acceptContactRequest(self, email: str, addToList: bool = True) -> "Deferred[Any]":
        """
        Accept someone who added you; with C{addToList} (the default) add
        them to your list too, so you see each other.
        """
        return self._delegate("acceptContactRequest", email, addToList)

    def declineContactRequest(self, email: str) -> "Deferred[Any]":
        """
        Decline someone who added you: they are blocked.
        """
        return self._delegate("declineContactRequest", email)

    def addGroup(self, name: str) -> "Deferred[Any]":
        """
        Create a group; fires with the new L{msnp.contacts.Group}.
        """
        return self._delegate("addGroup", name)

    def renameGroup(self, group: Any, newName: str) -> "Deferred[Any]":
        """
        Rename a group, given as a L{msnp.contacts.Group}, its id or its name.
        """
        return self._delegate("renameGroup", group, newName)

    def removeGroup(self, group: Any) -> "Deferred[Any]":
        """
        Delete a group (its contacts stay on the list, without the group).
        """
        return self._delegate("removeGroup", group)

    def moveContactToGroup(self, email: str, group: Any) -> "Deferred[Any]":
        """
        Put a contact in C{group} only (L{None}: in no group).
        """
        return self._delegate("moveContactToGroup", email, group)
