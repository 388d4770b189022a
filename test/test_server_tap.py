"""
Tests for C{twistd msnp-server} (L{msnp.server.tap}).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.server.tap import NetworkService, Options, makeService

from test.support import freePorts, tempDirectory, writeTempFile

GOOD_ACCOUNTS = [
    {"email": "alice@example.com", "password": "a", "displayName": "Alice", "contacts": ["bob@example.com"]},
    {"email": "bob@example.com", "password": "b"},
]


def inTempDirectory(testCase: SynchronousTestCase) -> str:
    """
    Run the rest of C{testCase} in a fresh working directory, where the
    default C{--database} file is created.
    """
    directory = tempDirectory(testCase)
    testCase.addCleanup(os.chdir, os.getcwd())
    os.chdir(directory)
    return directory


class OptionsTests(SynchronousTestCase):
    """
    The options parse ports and an accounts file; a bad file is refused
    with a L{usage.UsageError} naming the problem.
    """

    def setUp(self) -> None:
        self.directory = inTempDirectory(self)

    def assertBadFile(self, content: Any, *fragments: str) -> None:
        path = writeTempFile(self, content)
        options = Options()
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--accounts", path])
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def test_defaults(self) -> None:
        """
        Without options: loopback, the classic ports, redirect on, no
        accounts.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["interface"], "127.0.0.1")
        self.assertEqual(options["port"], 1863)
        self.assertEqual(options["sb-port"], 1864)
        self.assertEqual(options["http-port"], 8080)
        self.assertEqual(options["ns-port"], 0)
        self.assertFalse(options["no-redirect"])
        self.assertEqual(len(options.store), 0)

    def test_ports(self) -> None:
        """
        Ports are parsed as integers; out-of-range ports are refused.
        """
        options = Options()
        options.parseOptions(["--port", "0", "--sb-port", "2000", "--http-port", "2001", "--ns-port", "2002"])
        self.assertEqual((options["port"], options["sb-port"], options["http-port"], options["ns-port"]),
                         (0, 2000, 2001, 2002))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--port", "70000"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--port", "x"])

    def test_accounts(self) -> None:
        """
        A good accounts file fills the store, contacts mutual.
        """
        options = Options()
        options.parseOptions(["--accounts", writeTempFile(self, GOOD_ACCOUNTS)])
        self.assertEqual(len(options.store), 2)
        alice = options.store.get("alice@example.com")
        bob = options.store.get("bob@example.com")
        assert alice is not None and bob is not None
        self.assertEqual(alice.displayName, "Alice")
        self.assertTrue(alice.onForwardList("bob@example.com"))
        self.assertTrue(bob.onForwardList("alice@example.com"))

    def test_notJSON(self) -> None:
        """
        A file that is not JSON is refused as such.
        """
        self.assertBadFile("[{email: nope", "not valid JSON")

    def test_notAList(self) -> None:
        """
        A JSON document that is not a list is refused.
        """
        self.assertBadFile({"email": "a@example.com"}, "list")

    def test_missingPassword(self) -> None:
        """
        An account without a password is refused, naming the account.
        """
        self.assertBadFile([{"email": "a@example.com"}], "a@example.com", "password")

    def test_unknownContact(self) -> None:
        """
        A contact that is not an account in the file is refused, naming it.
        """
        self.assertBadFile(
            [{"email": "a@example.com", "password": "x", "contacts": ["ghost@example.com"]}], "ghost@example.com"
        )

    def test_unreadableFile(self) -> None:
        """
        A missing accounts file is refused, naming the file.
        """
        path = os.path.join(os.path.join(tempDirectory(self), "file"), "accounts.json")
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--accounts", path])
        self.assertIn("cannot read the accounts file", str(error))
        self.assertIn(path, str(error))

    def test_passwordNotInError(self) -> None:
        """
        Errors about an account do not repeat its password.
        """
        self.assertBadFile(
            [{"email": "a@example.com", "password": "hunter2", "displayName": 5}], "a@example.com", "displayName"
        )
        path = writeTempFile(self, [{"email": "a@example.com", "password": "hunter2", "displayName": 5}])
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--accounts", path])
        self.assertNotIn("hunter2", str(error))


class FakeNetwork:
    """
    Records start and stop.
    """

    def __init__(self, starting: "Deferred[Any]") -> None:
        self.starting = starting
        self.calls: list[str] = []
        self.store: list[Any] = []
        self.switchboardAddress = "127.0.0.1:1864"
        self.reactor = None

    def start(self) -> "Deferred[Any]":
        self.calls.append("start")
        return self.starting

    def stop(self) -> "Deferred[None]":
        self.calls.append("stop")
        return succeed(None)


class NetworkServiceUnitTests(SynchronousTestCase):
    """
    L{NetworkService} ties the network's start and stop to its own.
    """

    def test_startStop(self) -> None:
        """
        Starting starts the network, stopping stops it.
        """
        from msnp.endpoints import Endpoints

        network = FakeNetwork(succeed(Endpoints(dispatch="tcp:127.0.0.1:1")))
        service = NetworkService(network)
        service.startService()
        self.assertEqual(network.calls, ["start"])
        self.assertEqual(service.endpoints.dispatch, "tcp:127.0.0.1:1")
        self.successResultOf(service.stopService())
        self.assertEqual(network.calls, ["start", "stop"])

    def test_startFails(self) -> None:
        """
        A network that cannot start is logged and remembered; stopping
        afterwards does not fail.
        """
        network = FakeNetwork(fail(OSError("port taken")))
        service = NetworkService(network)
        service.startService()
        self.assertIsInstance(service.startError, OSError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.successResultOf(service.stopService())


class ServiceTests(TestCase):
    """
    The service from L{makeService} runs a real network on the given
    loopback ports.
    """

    timeout = 20

    def setUp(self) -> None:
        self.directory = inTempDirectory(self)

    def test_startServeStop(self) -> "Deferred[None]":
        """
        Started, the network listens on the configured ports and an account
        from the file can sign in; stopped, the ports are closed.
        """
        return ensureDeferred(self._startServeStop())

    async def _startServeStop(self) -> None:
        from twisted.internet import reactor

        from msnp.client import MSNClient

        path = writeTempFile(self, GOOD_ACCOUNTS)
        dsPort, sbPort, httpPort = freePorts(3)
        options = Options()
        options.parseOptions(
            ["--port", str(dsPort), "--sb-port", str(sbPort), "--http-port", str(httpPort), "--accounts", path]
        )
        service: Any = makeService(options, reactor=reactor)
        service.startService()
        stopped = False

        async def stop() -> None:
            if not stopped:
                await service.stopService()

        self.addCleanup(lambda: ensureDeferred(stop()))
        await service._starting
        endpoints = service.endpoints
        self.assertEqual(endpoints.dispatch, f"tcp:127.0.0.1:{dsPort}")
        self.assertEqual(endpoints.sso, f"http://127.0.0.1:{httpPort}/RST2.srf")
        self.assertEqual(service.network.switchboardAddress, f"127.0.0.1:{sbPort}")
        session = await MSNClient("alice@example.com", "a", endpoints, reactor=reactor).login()
        self.assertIn("bob@example.com", session.contacts)
        await session.logout()
        await service.stopService()
        stopped = True
        probe = socket.socket()
        try:
            self.assertNotEqual(probe.connect_ex(("127.0.0.1", dsPort)), 0)
        finally:
            probe.close()

    def test_noRedirect(self) -> None:
        """
        With C{--no-redirect} the first server is the notification server.
        """
        options = Options()
        options.parseOptions(["--no-redirect", "--port", "0"])
        service: Any = makeService(options)
        self.assertFalse(service.network.redirect)


class HTTPSTests(TestCase):
    """
    With C{--https-port}, C{--tls-cert} and C{--tls-key}, the SSO and ABCH
    services are also served over HTTPS, and the log says where.
    """

    timeout = 20

    def setUp(self) -> None:
        self.directory = inTempDirectory(self)

    def test_optionsNeedEachOther(self) -> None:
        """
        C{--https-port} without a certificate and key, or a certificate
        without C{--https-port}, is refused; an unreadable key is named.
        """
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--https-port", "0"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--tls-cert", "cert.pem"])
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions,
            ["--https-port", "0", "--tls-cert", "missing.pem", "--tls-key", "missing.key"],
        )
        self.assertIn("missing.pem", str(error))

    def test_signInOverHTTPS(self) -> "Deferred[None]":
        """
        A client trusting the test CA signs in with the https SSO and ABCH
        URLs the service logged.
        """
        return ensureDeferred(self._signInOverHTTPS())

    async def _signInOverHTTPS(self) -> None:
        from twisted.internet import reactor
        from twisted.logger import globalLogPublisher

        from msnp.client import MSNClient
        from test.test_tls import pki

        issued = pki()
        cert = writeTempFile(self, issued.good.certPEM, "cert.pem")
        key = writeTempFile(self, issued.good.keyPEM, "key.pem")
        ca = writeTempFile(self, issued.ca.certPEM, "ca.pem")
        messages: list[str] = []

        def observe(event: Any) -> None:
            from twisted.logger import formatEvent

            messages.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        options = Options()
        options.parseOptions(
            ["--port", "0", "--sb-port", "0", "--http-port", "0", "--https-port", "0",
             "--tls-cert", cert, "--tls-key", key, "--accounts", writeTempFile(self, GOOD_ACCOUNTS)]
        )
        service: Any = makeService(options, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service._starting
        endpoints = service.httpsEndpoints.replace(trustRoot=ca)
        self.assertTrue(endpoints.sso.startswith("https://127.0.0.1:"))
        self.assertTrue(any(endpoints.sso in m and endpoints.addressBook in m for m in messages), messages)
        session = await MSNClient("alice@example.com", "a", endpoints, reactor=reactor).login()
        self.assertIn("bob@example.com", session.contacts)
        await session.logout()


class EmptyDatabaseTests(TestCase):
    """
    A server started on a database without accounts says so, and how to
    add one.
    """

    timeout = 20

    def setUp(self) -> None:
        self.directory = inTempDirectory(self)

    def test_noAccountsHint(self) -> "Deferred[None]":
        """
        The log names the admin command and the database to give it.
        """
        return ensureDeferred(self._noAccounts())

    async def _noAccounts(self) -> None:
        from twisted.internet import reactor
        from twisted.logger import formatEvent, globalLogPublisher

        messages: list[str] = []
        observer = lambda event: messages.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        options = Options()
        options.parseOptions(["--port", "0", "--sb-port", "0", "--http-port", "0", "--database", "empty.db"])
        service: Any = makeService(options, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service._starting
        hint = [m for m in messages if "no accounts" in m]
        self.assertEqual(len(hint), 1, messages)
        self.assertIn("python -m msnp.server accounts --database empty.db add", hint[0])
        self.assertTrue(os.path.exists(os.path.join(self.directory, "empty.db")))
