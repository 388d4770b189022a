"""
End-to-end tests of the two plugins as real processes:
C{python -m twisted msnp-server} with an accounts file, and
C{twistd -n msnp --handler echo} with C{MSNP_PASSWORD} in its environment.
An in-process L{MSNClient} talks to the echo bot, the server process is
killed and restarted on the same ports, and the bot signs in again by
itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from msnp.client import MSNClient
from msnp.endpoints import Endpoints

from test.support import CONVERSATION_EVENTS, EventRecorder, childEnvironment, freePorts, tempDirectory

ACCOUNTS = [
    {"email": "echo@example.com", "password": "echo-pw", "displayName": "Echo", "contacts": ["tester@example.com"]},
    {"email": "tester@example.com", "password": "tester-pw", "displayName": "Tester"},
]


def readFile(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class TwistdEndToEndTests(TestCase):
    """
    The plugins work as deployed: separate processes on loopback.
    """

    timeout = 60

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.directory = tempDirectory(self)
        self.accountsPath = os.path.join(self.directory, "accounts.json")
        with open(self.accountsPath, "w") as f:
            json.dump(ACCOUNTS, f)
        self.dsPort, self.nsPort, self.sbPort, self.httpPort = freePorts(4)
        base = f"http://127.0.0.1:{self.httpPort}"
        self.endpoints = Endpoints(
            dispatch=f"tcp:127.0.0.1:{self.dsPort}",
            sso=f"{base}/RST2.srf",
            sharing=f"{base}/abservice/SharingService.asmx",
            addressBook=f"{base}/abservice/abservice.asmx",
        )
        self.env = childEnvironment()
        self.env.pop("MSNP_PASSWORD", None)
        self.logs: list[str] = []

    # -- processes ------------------------------------------------------------------------

    def spawn(self, args: list[str], env: dict[str, str]) -> "subprocess.Popen[bytes]":
        process = subprocess.Popen(
            args, cwd=self.directory, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(self.kill, process)
        return process

    def kill(self, process: "subprocess.Popen[bytes]") -> None:
        """
        Make sure C{process} is gone (always called in cleanup).
        """
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    async def startServer(self) -> "subprocess.Popen[bytes]":
        log = os.path.join(self.directory, f"server-{len(self.logs)}.log")
        self.logs.append(log)
        process = self.spawn(
            [
                sys.executable, "-m", "twisted", "--log-format=text", f"--log-file={log}",
                "msnp-server",
                "--port", str(self.dsPort), "--ns-port", str(self.nsPort), "--sb-port", str(self.sbPort),
                "--http-port", str(self.httpPort), "--accounts", self.accountsPath,
            ],
            self.env,
        )
        await self.waitUntil(lambda: "msnp-server ready" in readFile(log), 20, "the server to start", process)
        return process

    def startEchoBot(self) -> "subprocess.Popen[bytes]":
        self.botLog = os.path.join(self.directory, "echo.log")
        self.logs.append(self.botLog)
        env = dict(self.env, MSNP_PASSWORD="echo-pw")
        return self.spawn(
            [
                sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", f"--logfile={self.botLog}",
                "msnp", "--account", "echo@example.com", "--handler", "echo",
                "--server", self.endpoints.dispatch, "--sso-url", self.endpoints.sso,
                "--sharing-url", self.endpoints.sharing, "--ab-url", self.endpoints.addressBook,
                "--min-retry-delay", "0.2", "--max-retry-delay", "1",
            ],
            env,
        )

    # -- waiting ----------------------------------------------------------------------------

    async def waitUntil(
        self, condition: Callable[[], bool], timeout: float, what: str,
        process: "Optional[subprocess.Popen[bytes]]" = None,
    ) -> None:
        deadline = self.reactor.seconds() + timeout
        while not condition():
            if process is not None and process.poll() is not None:
                self.fail(f"process exited with {process.returncode} while waiting for {what}\n{self.allLogs()}")
            if self.reactor.seconds() > deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}\n{self.allLogs()}")
            await deferLater(self.reactor, 0.05, lambda: None)

    def allLogs(self) -> str:
        return "\n".join(f"--- {path}\n{readFile(path)[-4000:]}" for path in self.logs)

    async def echoRoundTrip(self, session: Any, recorder: EventRecorder, text: str) -> None:
        await self.waitUntil(
            lambda: (c := session.contacts.get("echo@example.com")) is not None and c.isOnline,
            15, "the echo bot to be online",
        )
        conversation = await session.openConversation("echo@example.com")
        await conversation.sendText(text)
        await self.waitUntil(
            lambda: any(m.text == text and m.sender == "echo@example.com" for _, m in recorder.named("messageReceived")),
            10, f"the echo of {text!r}",
        )

    # -- the test -----------------------------------------------------------------------------

    def test_echoSurvivesServerRestart(self) -> "Deferred[None]":
        """
        The echo service answers; after the server process is killed and
        started again on the same ports, it signs in again on its own
        (within its short backoff) and answers again; SIGTERM then signs it
        out cleanly.
        """
        return ensureDeferred(self._echoSurvivesServerRestart())

    async def _echoSurvivesServerRestart(self) -> None:
        server = await self.startServer()
        bot = self.startEchoBot()
        recorder = EventRecorder("tester", CONVERSATION_EVENTS)
        client = MSNClient("tester@example.com", "tester-pw", self.endpoints, observer=recorder, reactor=self.reactor)
        session = await client.login()
        self.addCleanup(lambda: session.logout() if session.isActive else None)
        await self.echoRoundTrip(session, recorder, "ping before the restart")

        server.kill()
        server.wait(timeout=10)
        reason = await session.whenEnded()
        self.assertEqual(reason, "connection lost")
        await self.waitUntil(lambda: "signing in again" in readFile(self.botLog), 10, "the bot to retry", bot)

        await self.startServer()
        session = await client.login()
        await self.echoRoundTrip(session, recorder, "ping after the restart")
        botLog = readFile(self.botLog)
        self.assertEqual(botLog.count("Signed in as echo@example.com"), 2, botLog)
        self.assertIsNone(bot.poll())

        # A clean stop (SIGTERM) signs the bot out: its contacts see it go
        # offline, and twistd exits normally.
        bot.send_signal(signal.SIGTERM)
        await self.waitUntil(lambda: bot.poll() is not None, 15, "the bot to exit")
        # twistd re-raises the signal after a clean shutdown, so the exit
        # status is "terminated by SIGTERM" once the main loop has ended.
        self.assertIn(bot.returncode, (0, -signal.SIGTERM), f"exit status {bot.returncode}")
        botLog = readFile(self.botLog)
        self.assertIn("Signed echo@example.com out", botLog)
        self.assertIn("Main loop terminated", botLog)
        await self.waitUntil(
            lambda: not session.contacts.get("echo@example.com").isOnline, 10, "the bot to appear offline"
        )
        await session.logout()

    def test_missingPasswordExits(self) -> "Deferred[None]":
        """
        C{twistd msnp} without a password exits with an error naming
        C{MSNP_PASSWORD}, before starting anything.
        """
        return ensureDeferred(self._missingPassword())

    async def _missingPassword(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "msnp", "--account", "echo@example.com"],
            cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=30,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("MSNP_PASSWORD", result.stdout + result.stderr)
