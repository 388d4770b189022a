"""
The plugins and the command line as a process supervisor or a script sees
them: exit codes, one-line diagnostics, log levels and JSON logs. Each test
runs the real process; the network, where one is needed, is a
L{LocalNetwork} in this process on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.server.network import LocalNetwork

from test.support import ROOT, asyncTest, childEnvironment, freePorts, tempDirectory

#: Seconds a child process may take.
DEADLINE = 30.0

#: twistd as installed (its own script, so the current directory is not on
#: sys.path, as for a user), or run from this interpreter.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "twistd")
TWISTD = ([_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "twisted.scripts.twistd"]) + [
    "-n", "--pidfile="]


def _run(args: list[str], cwd: str, env: dict[str, str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLINE,
                          stdin=subprocess.DEVNULL)


class OptionErrorTests(SynchronousTestCase):
    """
    A bad option stops C{twistd msnp} with one line and exit code 2.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.env = childEnvironment()
        # Exactly the source tree: an empty entry would put the current
        # directory on sys.path, which twistd does not do for a user.
        self.env["PYTHONPATH"] = ROOT
        self.env["MSNP_PASSWORD"] = "pw"

    def twistdMsnp(self, *args: str) -> "subprocess.CompletedProcess[str]":
        return _run([*TWISTD, "msnp", "--account", "bot@example.com", *args], self.directory, self.env)

    def assertOneLine(self, result: "subprocess.CompletedProcess[str]", expected: str) -> None:
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertNotIn("Usage:", result.stdout + result.stderr)
        self.assertIn(expected, result.stderr)
        self.assertLessEqual(len(result.stderr.strip().splitlines()), 2, result.stderr)

    def test_diagnostics(self) -> None:
        """
        Each mistake of the issue gets its own sentence: a bad machine
        GUID, C{--password}, a zero login timeout, a handler that cannot
        take the client, an unknown log level.
        """
        self.assertOneLine(self.twistdMsnp("--machine-guid", "notaguid"), "--machine-guid must be a GUID")
        self.assertOneLine(self.twistdMsnp("--password", "secret"), "there is no --password option")
        self.assertOneLine(self.twistdMsnp("--login-timeout", "0"), "must be more than 0 seconds")
        self.assertOneLine(self.twistdMsnp("--handler", "os.getcwd"), "cannot be called with the client")
        self.assertOneLine(self.twistdMsnp("--log-level", "loud"), "unknown log level 'loud'")

    def test_handlerInCurrentDirectory(self) -> None:
        """
        A handler module in the current directory, which twistd does not
        import from, is named with the fix (C{PYTHONPATH=.}).
        """
        with open(os.path.join(self.directory, "shoutbot.py"), "w") as f:
            f.write("class ShoutBot:\n    def __init__(self, client):\n        pass\n")
        self.assertOneLine(self.twistdMsnp("--handler", "shoutbot.ShoutBot"), "run with PYTHONPATH=.")

    def test_demoRefusesArguments(self) -> None:
        """
        C{python -m msnp demo --bogus} is refused, exit code 2.
        """
        result = _run([sys.executable, "-m", "msnp", "demo", "--bogus"], ROOT, childEnvironment())
        self.assertEqual(result.returncode, 2)
        self.assertIn("takes no arguments", result.stderr)

    def test_version(self) -> None:
        """
        C{python -m msnp --version} prints the package's version.
        """
        import msnp

        result = _run([sys.executable, "-m", "msnp", "--version"], ROOT, childEnvironment())
        self.assertEqual((result.returncode, result.stdout), (0, f"msnp {msnp.__version__}\n"))

    def test_connectionRefusedNamesAddress(self) -> None:
        """
        A refused connection says which address refused it.
        """
        (port,) = freePorts(1)
        result = _run(
            [sys.executable, "-m", "msnp", "send", "--to", "b@example.com", "--account", "a@example.com",
             "--server", f"tcp:127.0.0.1:{port}", "hi"],
            self.directory, self.env,
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(f"connecting to tcp:127.0.0.1:{port}", result.stdout)


class ServerExitTests(SynchronousTestCase):
    """
    C{twistd msnp-server} on a port in use.
    """

    def test_portInUse(self) -> None:
        """
        One line naming the port, no traceback, exit code 1.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        sbPort, httpPort = freePorts(2)
        result = _run(
            [*TWISTD, "msnp-server", "--port", str(port), "--sb-port", str(sbPort), "--http-port", str(httpPort)],
            tempDirectory(self), childEnvironment(),
        )
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", output)
        self.assertNotIn("Traceback", output)


class GiveUpTests(TestCase):
    """
    C{twistd msnp} that gives up for good exits non-zero.
    """

    timeout = 60

    @asyncTest
    async def test_refusedCredentialsExit1WithJSONLogs(self) -> None:
        """
        Refused credentials: exit code 1. With C{--logger
        msnp.logs.jsonLogObserver --log-level warn} every line is a JSON
        event at warn or above, and the critical one says why.
        """
        network = LocalNetwork(reactor=reactor, interface="127.0.0.1")
        network.addAccount("bot@example.com", "right-pw", "Bot")
        endpoints = await network.start()
        self.addCleanup(network.stop)
        env = childEnvironment()
        env["MSNP_PASSWORD"] = "wrong-pw"
        args = [
            "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
            "--logger", "msnp.logs.jsonLogObserver",
            "msnp", "--account", "bot@example.com", "--log-level", "warn",
            "--server", endpoints.dispatch, "--sso-url", endpoints.sso, "--sharing-url", endpoints.sharing,
            "--ab-url", endpoints.addressBook,
        ]
        d = getProcessOutputAndValue(sys.executable, args, env=env, path=tempDirectory(self), reactor=reactor)
        d.addTimeout(DEADLINE, reactor)
        out, err, code = await d
        self.assertEqual(code, 1, (out + err).decode())
        events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        self.assertTrue(events, err.decode())
        levels = {event["log_level"]["name"] for event in events}
        self.assertLessEqual(levels, {"warn", "error", "critical"})
        self.assertTrue(any("refused the credentials" in event.get("log_format", "") for event in events))
        self.assertNotIn(b"wrong-pw", out + err)
