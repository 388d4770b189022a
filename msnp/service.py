# -*- test-case-name: test.test_tap -*-
"""
A Twisted service that keeps one account signed in.

L{MessengerService} is what C{twistd msnp} runs, and it works the same in
any Twisted application: add it to a service collection (or call
C{startService}/C{stopService} yourself). It signs in with an
L{msnp.client.MSNClient}, learns from L{msnp.session.Session.whenEnded}
that the session is over, and signs in again after a growing, jittered
delay when the cause is one a retry can cure (a dropped connection, a
server restart, C{OUT SSD}, a failed login step). Two causes stop it for
good, each with a clear log message: C{OUT OTH} (the account signed in at
another place; signing in again would only throw that one out in turn)
and L{AuthenticationError} (the credentials are wrong; retrying does not
help and may lock the account).
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.errors import AuthenticationError, SignedOut
from msnp.reactors import reactorOrDefault

if TYPE_CHECKING:
    from msnp.session import Session

log = Logger()

#: Session end reasons after which the service must not sign in again.
FINAL_REASONS = frozenset({"OTH", "signed out from another place"})


class LoginClient(Protocol):
    """
    What L{MessengerService} needs of a client: an account and a login.
    L{msnp.client.MSNClient} is one; tests use fakes.
    """

    account: str

    def login(self) -> "Deferred[Any]":
        """
        Sign in; fire with a session that has C{whenEnded()} and
        C{logout()}.
        """


@dataclass(frozen=True)
class RetryPolicy:
    """
    How long to wait before the next login attempt: exponential growth,
    capped, with random jitter so that many clients dropped by one server
    restart do not all come back in the same instant.

    The delay for attempt C{n} (0 for the first retry) is
    C{base = min(maxDelay, initialDelay * factor ** n)} reduced by a random
    share of at most C{jitter} of it: it lies in
    C{[base * (1 - jitter), base]}, so it never exceeds C{maxDelay}.

    @ivar initialDelay: seconds before the first retry.
    @ivar maxDelay: the longest wait between two attempts.
    @ivar factor: growth per failed attempt.
    @ivar jitter: the share of the delay (0..1) that is random.
    """

    initialDelay: float = 1.0
    maxDelay: float = 300.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initialDelay < 0 or self.maxDelay < 0:
            raise ValueError("retry delays cannot be negative")
        if self.factor < 1:
            raise ValueError("the backoff factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """
        The wait before retry number C{attempt} (counting from 0).

        @param random: a source of floats in [0, 1).
        """
        try:
            base = self.initialDelay * (self.factor**attempt)
        except OverflowError:
            base = self.maxDelay
        base = min(self.maxDelay, base)
        return base * (1.0 - self.jitter * random())


class MessengerService(Service):
    """
    Keeps C{client}'s account signed in until stopped.

    @ivar state: C{"stopped"}, C{"connecting"}, C{"signed in"},
        C{"waiting"} (for the next attempt) or C{"gave up"}.
    @ivar session: the current session, or L{None}.
    @ivar lastError: why the service gave up, or what the last failed
        login raised.
    @ivar attempts: failed attempts since the last successful login.
    @ivar totalLogins: successful logins since the service was created.
    """

    def __init__(
        self,
        client: LoginClient,
        reactor: Any = None,
        policy: RetryPolicy = RetryPolicy(),
        random: Callable[[], float] = _random.random,
        logoutTimeout: float = 10.0,
    ) -> None:
        """
        @param client: signs in (called once per attempt).
        @param reactor: schedules the retries (the global one by default).
        @param policy: the retry delays.
        @param random: the jitter source.
        @param logoutTimeout: how long C{stopService} waits for the server
            to close the session before giving up on a clean sign-out.
        """
        self.client = client
        self.reactor = reactorOrDefault(reactor)
        self.policy = policy
        self.random = random
        self.logoutTimeout = logoutTimeout
        self.state = "stopped"
        self.session: Optional["Session"] = None
        self.lastError: Optional[BaseException] = None
        self.attempts = 0
        self.totalLogins = 0
        self._loggingIn: Optional[Deferred[Any]] = None
        self._retry: Optional[IDelayedCall] = None
        self._signedInWaiters: list[Deferred[Any]] = []
        self._gaveUpWaiters: list[Deferred[Optional[BaseException]]] = []

    def __repr__(self) -> str:
        return f"<MessengerService {self.client.account} {self.state}>"

    # -- IService ----------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self.attempts = 0
        self.lastError = None
        self._signIn()

    def stopService(self) -> "Deferred[None]":
        """
        Stop retrying, abandon a login in progress, and sign out cleanly.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the session is closed.
        """
        Service.stopService(self)
        self.state = "stopped"
        finished, self._gaveUpWaiters = self._gaveUpWaiters, []
        for waiter in finished:
            waiter.callback(None)
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._loggingIn is not None:
            loggingIn, self._loggingIn = self._loggingIn, None
            loggingIn.cancel()
        session, self.session = self.session, None
        if session is None:
            return succeed(None)
        log.info("Signing {account} out", account=self.client.account)
        d: Deferred[None] = Deferred()

        def finish() -> None:
            if not d.called:
                d.callback(None)

        def loggedOut(result: Any) -> None:
            if isinstance(result, Failure):
                log.failure("Signing {account} out failed", result, account=self.client.account)
            else:
                log.info("Signed {account} out", account=self.client.account)
            if timer.active():
                timer.cancel()
            finish()

        def tooSlow() -> None:
            log.warn("{account}: the server did not confirm the sign-out in time", account=self.client.account)
            finish()

        timer = self.reactor.callLater(self.logoutTimeout, tooSlow)
        session.logout().addBoth(loggedOut)
        return d

    # -- for callers -------------------------------------------------------------

    def whenSignedIn(self) -> "Deferred[Session]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing with the session at the next successful login
        (at once when signed in now).
        """
        if self.session is not None and self.state == "signed in":
            return succeed(self.session)
        d: Deferred[Any] = Deferred()
        self._signedInWaiters.append(d)
        return d

    def whenFinished(self) -> "Deferred[Optional[BaseException]]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing when the service stops signing in: with the
        reason (an L{AuthenticationError}, a L{SignedOut}) when it gave up
        for good, with L{None} when it was stopped by C{stopService}. A
        process uses it to exit with an error instead of idling; C{twistd
        msnp} exits non-zero on a reason.
        """
        if self.state == "gave up":
            return succeed(self.lastError)
        d: Deferred[Optional[BaseException]] = Deferred()
        self._gaveUpWaiters.append(d)
        return d

    # -- the loop ------------------------------------------------------------------

    def _signIn(self) -> None:
        self._retry = None
        if not self.running:
            return
        self.state = "connecting"
        log.info(
            "Signing in {account} (attempt {attempt})",
            account=self.client.account,
            attempt=self.attempts + 1,
        )
        started = self.reactor.seconds()
        d = maybeDeferred(self.client.login)
        self._loggingIn = d
        d.addCallbacks(self._signedIn, self._loginFailed, callbackArgs=(started,))
        d.addErrback(lambda f: log.failure("Unexpected error in the sign-in loop", f))

    def _signedIn(self, session: Any, started: float) -> None:
        self._loggingIn = None
        if not self.running:
            session.logout()
            return
        self.state = "signed in"
        self.session = session
        self.attempts = 0
        self.lastError = None
        self.totalLogins += 1
        log.info(
            "Signed in as {account} after {elapsed:.3f}s",
            account=self.client.account,
            elapsed=self.reactor.seconds() - started,
        )
        session.whenEnded().addCallback(self._sessionEnded, session)
        waiters, self._signedInWaiters = self._signedInWaiters, []
        for waiter in waiters:
            waiter.callback(session)

    def _loginFailed(self, failure: Failure) -> None:
        self._loggingIn = None
        if failure.check(CancelledError) and not self.running:
            return
        error = failure.value
        self.lastError = error
        if isinstance(error, AuthenticationError):
            self._giveUp(
                "The server refused the credentials of {account} ({error}); not signing in again. "
                "Fix the account or password and restart.",
                error=str(error) or type(error).__name__,
            )
            return
        self._scheduleRetry(f"login failed: {str(error) or type(error).__name__}")

    def _sessionEnded(self, reason: Optional[str], session: Any) -> None:
        if session is not self.session:
            return
        self.session = None
        if not self.running:
            return
        if reason in FINAL_REASONS:
            self.lastError = SignedOut(reason)
            self._giveUp(
                "{account} signed in at another place (OUT {reason}); not signing in again "
                "so as not to fight the other login.",
                reason=reason,
            )
            return
        self._scheduleRetry(f"session ended: {reason}")

    def _scheduleRetry(self, why: str) -> None:
        if not self.running:
            return
        delay = self.policy.delay(self.attempts, self.random)
        self.attempts += 1
        self.state = "waiting"
        log.warn(
            "{account}: {why}; signing in again in {delay:.2f}s",
            account=self.client.account,
            why=why,
            delay=delay,
        )
        self._retry = self.reactor.callLater(delay, self._signIn)

    def _giveUp(self, message: str, **fields: Any) -> None:
        self.state = "gave up"
        log.critical(message, account=self.client.account, **fields)
        reason: BaseException = self.lastError if self.lastError is not None else CancelledError("gave up")
        waiters, self._signedInWaiters = self._signedInWaiters, []
        for waiter in waiters:
            waiter.errback(reason)
        gaveUp, self._gaveUpWaiters = self._gaveUpWaiters, []
        for d in gaveUp:
            d.callback(reason)
