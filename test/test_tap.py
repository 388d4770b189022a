"""
Tests for C{twistd msnp}: its options (L{msnp.tap}) and the service that
keeps an account signed in (L{msnp.service}).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp import service as serviceModule
from msnp.contacts import Status
from msnp.errors import AuthenticationError, ConnectionLost, SignedOut
from msnp.handlers import EchoHandler, LogHandler
from msnp.endpoints import Endpoints
from msnp.service import MessengerService, RetryPolicy
from msnp.tap import Options, makeService, parseStatus

from test.support import startLocalNetwork, tempDirectory, waitUntil, writeTempFile

ACCOUNT = "bot@example.com"


def parse(args: list[str], environ: Optional[dict[str, str]] = None) -> Options:
    options = Options(environ={"MSNP_PASSWORD": "secret"} if environ is None else environ)
    options.parseOptions(args)
    return options


class OptionsTests(SynchronousTestCase):
    """
    C{twistd msnp} options parse good input and reject bad input with a
    clear L{usage.UsageError}.
    """

    def assertUsageError(self, args: list[str], *fragments: str, environ: Optional[dict[str, str]] = None) -> str:
        error = self.assertRaises(usage.UsageError, parse, args, environ)
        message = str(error)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def passwordFile(self, content: bytes) -> str:
        return writeTempFile(self, content)

    def test_minimal(self) -> None:
        """
        An account and C{MSNP_PASSWORD} are enough; the defaults point at a
        C{twistd msnp-server} with default ports and sign in online with the
        log handler.
        """
        options = parse(["--account", ACCOUNT])
        self.assertEqual(options["account"], ACCOUNT)
        self.assertEqual(options.password, "secret")
        self.assertIs(options.status, Status.ONLINE)
        self.assertEqual(options.endpoints.dispatch, "tcp:127.0.0.1:1863")
        self.assertEqual(options.endpoints.sso, "http://127.0.0.1:8080/RST2.srf")
        self.assertIs(options.handlerFactory, LogHandler)

    def test_allOptions(self) -> None:
        """
        Every option ends up in the endpoints, identity and settings.
        """
        options = parse(
            [
                "--account", ACCOUNT,
                "--server", "tcp:10.0.0.1:1999",
                "--sso-url", "https://sso.example/RST2.srf",
                "--sharing-url", "https://ab.example/s.asmx",
                "--ab-url", "https://ab.example/a.asmx",
                "--rsi-url", "https://rsi.example/rsi/rsi.asmx",
                "--storage-url", "https://st.example/SchematizedStore.asmx",
                "--status", "busy",
                "--display-name", "The Bot",
                "--personal-message", "beep",
                "--handler", "echo",
                "--trace",
                "--machine-guid", "{11111111-2222-3333-4444-555555555555}",
                "--locale", "0x0407",
                "--client-version", "14.0.8117.0416",
                "--min-retry-delay", "0.5",
                "--max-retry-delay", "5",
            ]
        )
        self.assertEqual(options.endpoints.dispatch, "tcp:10.0.0.1:1999")
        self.assertEqual(options.endpoints.sso, "https://sso.example/RST2.srf")
        self.assertEqual(options.endpoints.sharing, "https://ab.example/s.asmx")
        self.assertEqual(options.endpoints.addressBook, "https://ab.example/a.asmx")
        self.assertEqual(options.endpoints.rsi, "https://rsi.example/rsi/rsi.asmx")
        self.assertEqual(options.endpoints.storage, "https://st.example/SchematizedStore.asmx")
        self.assertIs(options.status, Status.BUSY)
        self.assertIs(options.handlerFactory, EchoHandler)
        self.assertTrue(options["trace"])
        identity = options.identity()
        self.assertEqual(identity.machineGuid, "{11111111-2222-3333-4444-555555555555}")
        self.assertEqual(identity.localeId, "0x0407")
        self.assertEqual(identity.clientVersion, "14.0.8117.0416")
        self.assertEqual(options["max-retry-delay"], 5.0)

    def test_noAccount(self) -> None:
        """
        Without C{--account} the error says an account is needed.
        """
        self.assertUsageError([], "no account", "--account")

    def test_accountNotAnAddress(self) -> None:
        """
        An account that is not an e-mail address is refused.
        """
        self.assertUsageError(["--account", "bob"], "e-mail address")

    def test_noPasswordSource(self) -> None:
        """
        With neither C{--password-file} nor C{MSNP_PASSWORD}, the error
        names both sources.
        """
        self.assertUsageError(["--account", ACCOUNT], "MSNP_PASSWORD", "--password-file", environ={})

    def test_emptyPassword(self) -> None:
        """
        An empty C{MSNP_PASSWORD} is no password.
        """
        self.assertUsageError(["--account", ACCOUNT], "no password", environ={"MSNP_PASSWORD": ""})

    def test_noPasswordOption(self) -> None:
        """
        There is no C{--password} option: passwords do not belong on a
        command line.
        """
        self.assertRaises(usage.UsageError, parse, ["--account", ACCOUNT, "--password", "x"])

    def test_passwordFile(self) -> None:
        """
        C{--password-file} is read (its final newline dropped) and wins
        over the environment.
        """
        path = self.passwordFile(b"from file\n")
        options = parse(["--account", ACCOUNT, "--password-file", path])
        self.assertEqual(options.password, "from file")

    def test_unreadablePasswordFile(self) -> None:
        """
        A password file that cannot be read is named in the error.
        """
        path = os.path.join(os.path.join(tempDirectory(self), "file"), "missing")
        self.assertUsageError(["--account", ACCOUNT, "--password-file", path], "cannot read the password file", path)

    def test_emptyPasswordFile(self) -> None:
        """
        An empty password file is no password.
        """
        path = self.passwordFile(b"\n")
        self.assertUsageError(["--account", ACCOUNT, "--password-file", path], "no password", "empty")

    def test_passwordNotInOptionsOrRepr(self) -> None:
        """
        The password is kept out of the option dictionary and the repr.
        """
        options = parse(["--account", ACCOUNT])
        self.assertNotIn("secret", repr(options))
        self.assertNotIn("secret", repr(dict(options)))

    def test_unknownStatus(self) -> None:
        """
        An unknown status is refused with the list of accepted ones.
        """
        self.assertUsageError(["--account", ACCOUNT, "--status", "sleeping"], "unknown status", "busy")

    def test_offlineStatus(self) -> None:
        """
        Offline is not a status to sign in with.
        """
        self.assertUsageError(["--account", ACCOUNT, "--status", "FLN"], "unknown status")

    def test_statusNamesAndCodes(self) -> None:
        """
        Friendly names and wire codes both work, in any case.
        """
        self.assertIs(parseStatus("Away"), Status.AWAY)
        self.assertIs(parseStatus("brb"), Status.BE_RIGHT_BACK)
        self.assertIs(parseStatus("BSY"), Status.BUSY)
        self.assertIs(parseStatus("hdn"), Status.HIDDEN)
        self.assertIs(parseStatus("invisible"), Status.HIDDEN)

    def test_malformedEndpoint(self) -> None:
        """
        A server that is not a client endpoint string is refused.
        """
        self.assertUsageError(["--account", ACCOUNT, "--server", "nonsense:1863"], "malformed endpoint")
        self.assertUsageError(["--account", ACCOUNT, "--server", "tcp:"], "malformed endpoint")

    def test_nonHTTPURLs(self) -> None:
        """
        Each service URL must be http(s); the error names the option.
        """
        for option in ("--sso-url", "--sharing-url", "--ab-url", "--rsi-url", "--storage-url"):
            self.assertUsageError(["--account", ACCOUNT, option, "ftp://x.example/"], option, "http")
            self.assertUsageError(["--account", ACCOUNT, option, "not a url"], option)

    def test_handlerDoesNotImport(self) -> None:
        """
        A handler path that does not import is refused, naming it.
        """
        self.assertUsageError(
            ["--account", ACCOUNT, "--handler", "no.such.module.Factory"], "no.such.module.Factory", "does not import"
        )

    def test_unknownHandlerName(self) -> None:
        """
        A bare handler name that is not built in is refused with the
        choices.
        """
        self.assertUsageError(["--account", ACCOUNT, "--handler", "shout"], "echo", "log")

    def test_handlerNotCallable(self) -> None:
        """
        A handler path naming something that is not callable is refused.
        """
        self.assertUsageError(["--account", ACCOUNT, "--handler", "msnp.tap.DEFAULT_SSO"], "not callable")

    def test_customHandler(self) -> None:
        """
        A dotted path to a factory is loaded.
        """
        options = parse(["--account", ACCOUNT, "--handler", "msnp.handlers.EchoHandler"])
        self.assertIs(options.handlerFactory, EchoHandler)

    def test_trustRoot(self) -> None:
        """
        A trust root that cannot be read, or is not PEM, is refused.
        """
        self.assertUsageError(
            ["--account", ACCOUNT, "--trust-root", os.path.join(os.path.join(tempDirectory(self), "file"), "ca.pem")], "cannot read the trust root"
        )
        path = self.passwordFile(b"not a certificate")
        self.assertUsageError(["--account", ACCOUNT, "--trust-root", path], "not a PEM certificate")

    def test_retryDelays(self) -> None:
        """
        The maximum retry delay cannot be below the minimum, and neither
        can be negative.
        """
        self.assertUsageError(
            ["--account", ACCOUNT, "--min-retry-delay", "5", "--max-retry-delay", "1"], "--max-retry-delay"
        )
        self.assertRaises(usage.UsageError, parse, ["--account", ACCOUNT, "--min-retry-delay", "-1"])


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} builds a L{MessengerService} from the options.
    """

    def test_service(self) -> None:
        """
        The service's client has the account, password, endpoints, status
        and the handler as its observer; the retry policy follows the
        options.
        """
        options = parse(
            ["--account", ACCOUNT, "--handler", "echo", "--status", "away", "--max-retry-delay", "7"]
        )
        service = makeService(options, reactor=Clock())
        self.assertIsInstance(service, MessengerService)
        assert isinstance(service, MessengerService)
        client: Any = service.client
        self.assertEqual(client.account, ACCOUNT)
        self.assertEqual(client._password, "secret")
        self.assertNotIn("secret", repr(client))
        self.assertIs(client.initialStatus, Status.AWAY)
        self.assertEqual(client.endpoints, options.endpoints)
        self.assertIsInstance(client.observer, EchoHandler)
        self.assertEqual(service.policy.maxDelay, 7.0)


# -- the service with a fake client --------------------------------------------------------


class FakeSession:
    """
    A session whose end the test decides.
    """

    def __init__(self) -> None:
        self.ended: Deferred[Optional[str]] = Deferred()
        self.logouts = 0
        self.logoutResult: Optional[Deferred[None]] = None

    def whenEnded(self) -> "Deferred[Optional[str]]":
        return self.ended

    def logout(self) -> "Deferred[None]":
        self.logouts += 1
        if self.logoutResult is not None:
            return self.logoutResult
        if not self.ended.called:
            self.ended.callback("logout")
        return succeed(None)


class FakeClient:
    """
    A client whose logins the test answers.
    """

    account = ACCOUNT

    def __init__(self) -> None:
        self.logins: list[Deferred[Any]] = []
        self.cancelled = 0

    def login(self) -> "Deferred[Any]":
        def cancel(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancel)
        self.logins.append(d)
        return d


class MessengerServiceTests(SynchronousTestCase):
    """
    L{MessengerService} stays signed in: it retries with growing, jittered
    delays, stops on C{OUT OTH} and refused credentials, and signs out when
    stopped.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.randomValue = 0.0
        self.events: list[dict[str, Any]] = []
        self.patch(serviceModule, "log", Logger(observer=self.events.append))  # type: ignore[arg-type]
        self.service = MessengerService(
            self.client,
            reactor=self.clock,
            policy=RetryPolicy(initialDelay=1.0, maxDelay=10.0, factor=2.0, jitter=0.5),
            random=lambda: self.randomValue,
        )

    def messages(self, level: Optional[str] = None) -> list[str]:
        return [
            formatEvent(e) for e in self.events if level is None or e["log_level"].name == level
        ]

    def nextDelay(self) -> float:
        calls = self.clock.getDelayedCalls()
        self.assertEqual(len(calls), 1)
        return calls[0].getTime() - self.clock.seconds()

    def signIn(self) -> FakeSession:
        session = FakeSession()
        self.client.logins[-1].callback(session)
        return session

    def test_signsInOnStart(self) -> None:
        """
        Starting the service starts a login; its success makes the session
        current and is logged.
        """
        self.service.startService()
        self.assertEqual(len(self.client.logins), 1)
        self.assertEqual(self.service.state, "connecting")
        signedIn = self.service.whenSignedIn()
        session = self.signIn()
        self.assertIs(self.service.session, session)
        self.assertEqual(self.service.state, "signed in")
        self.assertIs(self.successResultOf(signedIn), session)
        self.assertTrue(any("Signed in as" in m for m in self.messages()))

    def test_connectionLostRetries(self) -> None:
        """
        A session that ends with a lost connection is followed by a new
        login after the initial delay.
        """
        self.service.startService()
        session = self.signIn()
        session.ended.callback("connection lost")
        self.assertEqual(self.service.state, "waiting")
        self.assertEqual(self.nextDelay(), 1.0)
        self.clock.advance(1.0)
        self.assertEqual(len(self.client.logins), 2)
        self.assertTrue(any("connection lost" in m and "again in" in m for m in self.messages("warn")))

    def test_serverShutdownRetries(self) -> None:
        """
        C{OUT SSD} (the server going down) is retried.
        """
        self.service.startService()
        self.signIn().ended.callback("SSD")
        self.clock.advance(self.nextDelay())
        self.assertEqual(len(self.client.logins), 2)

    def test_backoffGrows(self) -> None:
        """
        Each failed login doubles the delay, up to the maximum; each
        attempt is logged.
        """
        self.service.startService()
        delays = []
        for _ in range(6):
            self.client.logins[-1].errback(ConnectionRefusedError())
            delay = self.nextDelay()
            delays.append(delay)
            self.clock.advance(delay)
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
        self.assertEqual(len(self.client.logins), 7)
        self.assertEqual(sum("Signing in" in m for m in self.messages("info")), 7)

    def test_jitter(self) -> None:
        """
        The random source shortens the delay by up to the jitter share.
        """
        self.randomValue = 0.5
        self.service.startService()
        self.client.logins[-1].errback(ConnectionLost("gone"))
        self.assertEqual(self.nextDelay(), 0.75)
        self.clock.advance(0.75)
        self.randomValue = 0.999
        self.client.logins[-1].errback(ConnectionLost("gone"))
        self.assertAlmostEqual(self.nextDelay(), 2.0 * (1 - 0.5 * 0.999))

    def test_successResetsBackoff(self) -> None:
        """
        After a successful login the next retry starts from the initial
        delay again.
        """
        self.service.startService()
        for _ in range(3):
            self.client.logins[-1].errback(ConnectionLost("gone"))
            self.clock.advance(self.nextDelay())
        self.signIn().ended.callback("connection lost")
        self.assertEqual(self.nextDelay(), 1.0)

    def test_otherPlaceStops(self) -> None:
        """
        C{OUT OTH} stops the service from signing in again, with a
        critical log message saying why.
        """
        self.service.startService()
        waiting = self.service.whenSignedIn()
        self.signIn()
        self.signIn = None  # type: ignore[assignment]
        self.successResultOf(waiting)
        later = self.service.whenSignedIn()
        self.assertTrue(later.called)
        self.service.session.ended.callback("OTH")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.service.state, "gave up")
        self.assertIsInstance(self.service.lastError, SignedOut)
        critical = self.messages("critical")
        self.assertEqual(len(critical), 1)
        self.assertIn("another place", critical[0])
        self.assertIn("OTH", critical[0])
        self.clock.advance(1000)
        self.assertEqual(len(self.client.logins), 1)

    def test_authenticationFailureStops(self) -> None:
        """
        Refused credentials stop the service without retrying; waiters for
        a sign-in get the error.
        """
        self.service.startService()
        waiting = self.service.whenSignedIn()
        self.client.logins[-1].errback(AuthenticationError("wrong password"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.service.state, "gave up")
        self.failureResultOf(waiting, AuthenticationError)
        critical = self.messages("critical")
        self.assertEqual(len(critical), 1)
        self.assertIn("refused the credentials", critical[0])
        self.assertNotIn("secret", critical[0])

    def test_stopLogsOut(self) -> None:
        """
        Stopping a signed-in service logs out and does not sign in again.
        """
        self.service.startService()
        session = self.signIn()
        d = self.service.stopService()
        self.successResultOf(d)
        self.assertEqual(session.logouts, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.client.logins), 1)
        self.assertEqual(self.service.state, "stopped")

    def test_stopWhileWaiting(self) -> None:
        """
        Stopping during a backoff wait cancels the pending retry.
        """
        self.service.startService()
        self.client.logins[-1].errback(ConnectionLost("gone"))
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(self.client.logins), 1)

    def test_stopWhileLoggingIn(self) -> None:
        """
        Stopping during a login cancels it, and no retry follows.
        """
        self.service.startService()
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.client.cancelled, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopLogoutTimeout(self) -> None:
        """
        A sign-out the server never confirms does not hold the stop
        forever.
        """
        self.service.startService()
        session = self.signIn()
        session.logoutResult = Deferred()
        d = self.service.stopService()
        self.assertNoResult(d)
        self.clock.advance(self.service.logoutTimeout)
        self.successResultOf(d)

    def test_loginSucceedsAfterStop(self) -> None:
        """
        A login that completes after the service stopped is logged out at
        once.
        """
        self.service.startService()
        pending = self.client.logins[-1]
        self.service.running = False
        session = FakeSession()
        pending.callback(session)
        self.assertEqual(session.logouts, 1)


class RetryPolicyTests(SynchronousTestCase):
    """
    L{RetryPolicy} computes capped, jittered exponential delays.
    """

    def test_delays(self) -> None:
        """
        Without jitter the delays are exactly exponential and capped.
        """
        policy = RetryPolicy(initialDelay=0.5, maxDelay=3.0, factor=3.0, jitter=0.0)
        self.assertEqual([policy.delay(n, lambda: 0.9) for n in range(4)], [0.5, 1.5, 3.0, 3.0])

    def test_hugeAttempt(self) -> None:
        """
        A very large attempt count does not overflow; it gives the maximum.
        """
        policy = RetryPolicy(initialDelay=1.0, maxDelay=60.0, jitter=0.0)
        self.assertEqual(policy.delay(100000, lambda: 0.0), 60.0)

    def test_invalid(self) -> None:
        """
        Nonsensical settings are refused.
        """
        self.assertRaises(ValueError, RetryPolicy, initialDelay=-1.0)
        self.assertRaises(ValueError, RetryPolicy, factor=0.5)
        self.assertRaises(ValueError, RetryPolicy, jitter=2.0)


# -- against a real local network ---------------------------------------------------------------


def endpointArgs(endpoints: Endpoints) -> list[str]:
    """
    The C{twistd msnp} options that point the service at C{endpoints}.
    """
    return [
        "--server", endpoints.dispatch,
        "--sso-url", endpoints.sso,
        "--sharing-url", endpoints.sharing,
        "--ab-url", endpoints.addressBook,
        "--rsi-url", endpoints.rsi,
    ]


class ServiceOnLocalNetworkTests(TestCase):
    """
    The service built by L{makeService} signs in to a real L{LocalNetwork}
    on loopback, and signs out when stopped.
    """

    timeout = 20

    def test_startAndStop(self) -> "Deferred[None]":
        """
        Started, the service signs in (the network sees the session);
        stopped, it signs out (the network no longer does).
        """
        return ensureDeferred(self._startAndStop())

    async def _startAndStop(self) -> None:
        from twisted.internet import reactor

        network, endpoints = await startLocalNetwork(self, [(ACCOUNT, "secret", "Bot")], reactor=reactor)
        options = parse(["--account", ACCOUNT, *endpointArgs(endpoints), "--handler", "echo"])
        service: Any = makeService(options, reactor=reactor)
        service.startService()
        session = await service.whenSignedIn()
        self.assertEqual(len(network.onlineSessions(ACCOUNT)), 1)
        self.assertEqual(session.account, ACCOUNT)
        await service.stopService()
        reason = await session.whenEnded()
        self.assertEqual(reason, "logout")
        await waitUntil(lambda: network.onlineSessions(ACCOUNT) == [])
        self.assertEqual(service.state, "stopped")

    def test_wrongPasswordGivesUp(self) -> "Deferred[None]":
        """
        Against a real server, a wrong password stops the service.
        """
        return ensureDeferred(self._wrongPassword())

    async def _wrongPassword(self) -> None:
        from twisted.internet import reactor

        network, endpoints = await startLocalNetwork(self, [(ACCOUNT, "right", "Bot")], reactor=reactor)
        options = parse(["--account", ACCOUNT, *endpointArgs(endpoints)], environ={"MSNP_PASSWORD": "wrong"})
        service: Any = makeService(options, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        try:
            await service.whenSignedIn()
        except AuthenticationError:
            pass
        else:
            self.fail("signed in with a wrong password")
        self.assertEqual(service.state, "gave up")
