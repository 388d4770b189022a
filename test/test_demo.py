"""
Tests for C{python -m msnp}: the demo (the main job) and the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from msnp.console import Console
from msnp.demo import Printer

from test.support import ROOT, childEnvironment


def runMsnp(*args: str, timeout: float = 90.0, stdin: str = "") -> "subprocess.CompletedProcess[str]":
    """
    Run C{python -m msnp ...} from the repository root, as a user would.
    """
    return subprocess.run(
        [sys.executable, "-m", "msnp", *args],
        cwd=ROOT,
        env=childEnvironment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class DemoTests(SynchronousTestCase):
    """
    C{python -m msnp demo} does the whole job on its own and exits 0.
    """

    def test_demo(self) -> None:
        """
        The demo exits 0 and its output shows, for both accounts, the login
        steps with timings, each contact list with presence, the
        conversation both ways, and the sign-out.
        """
        result = runMsnp("demo")
        output = result.stdout
        self.assertEqual(result.returncode, 0, output + result.stderr)
        for name in ("alice", "bob"):
            for step in ("connect", "VER", "CVR", "XFR", "SSO", "USR OK", "contacts", "ADL", "online"):
                self.assertRegex(output, rf"\[{name}\]\s+[\d.]+ ms\s+{step}\b")
        self.assertIn("Contact list of alice@example.com:", output)
        self.assertRegex(output, r"bob@example.com\s+'Bob'\s+online \(NLN\)")
        self.assertIn("Contact list of bob@example.com:", output)
        self.assertRegex(output, r"alice@example.com\s+'Alice'\s+online \(NLN\)")
        self.assertIn("bob received from alice@example.com", output)
        self.assertIn("alice received from bob@example.com", output)
        self.assertIn("alice@example.com signed out (logout)", output)
        self.assertIn("bob@example.com signed out (logout)", output)
        self.assertIn("Local network stopped.", output)
        # The steps come in protocol order.
        alice = [line for line in output.splitlines() if line.strip().startswith("[alice]")]
        steps = [line.split()[3] for line in alice if " ms " in line]
        self.assertLess(steps.index("VER"), steps.index("XFR"))
        self.assertLess(steps.index("XFR"), steps.index("SSO"))
        self.assertLess(steps.index("SSO"), steps.index("USR"))

    def test_help(self) -> None:
        """
        C{python -m msnp --help} lists the subcommands.
        """
        result = runMsnp("--help", timeout=30)
        self.assertEqual(result.returncode, 0)
        self.assertIn("demo", result.stdout)
        self.assertIn("chat", result.stdout)

    def test_unknownCommand(self) -> None:
        """
        An unknown subcommand exits 2 with the usage.
        """
        result = runMsnp("dance", timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("unknown command", result.stderr)

    def test_chatScripted(self) -> None:
        """
        The console, fed commands on standard input, signs in on the
        embedded network, lists the contacts, gets an echo from the demo
        bot, changes status and signs out.
        """
        script = "/contacts\n/msg bob@example.com ping from the console\n/status busy\n"
        # Give the echo time to arrive before /quit: the console only quits
        # on /quit or end of input, so end the input after a pause.
        result = subprocess.run(
            [sys.executable, "-c", _CHAT_DRIVER, script],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Signed in as alice@example.com", result.stdout)
        self.assertRegex(result.stdout, r"bob@example.com\s+'Bob'\s+online")
        self.assertIn("<Bob> ping from the console", result.stdout)
        self.assertIn("Status is now busy (BSY)", result.stdout)


#: Runs the console with a script, waiting for the echo before /quit.
_CHAT_DRIVER = r"""
import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-m", "msnp", "chat"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
p.stdin.write(sys.argv[1]); p.stdin.flush()
out = []
deadline = time.time() + 30
import selectors
sel = selectors.DefaultSelector(); sel.register(p.stdout, selectors.EVENT_READ)
while time.time() < deadline:
    if sel.select(0.1):
        line = p.stdout.readline()
        if not line:
            break
        out.append(line)
        if "Status is now" in "".join(out) and "<Bob>" in "".join(out):
            break
p.stdin.write("/quit\n"); p.stdin.flush(); p.stdin.close()
rest = p.stdout.read()
code = p.wait(timeout=30)
sys.stdout.write("".join(out) + rest)
sys.exit(code)
"""


class DeadlineTests(SynchronousTestCase):
    """
    The demo has a hard deadline and reports failures in one clear line.
    """

    def runWith(self, body: Any, advance: float = 0.0) -> tuple[Any, str]:
        import io

        from twisted.internet.task import Clock

        from msnp import demo as main

        async def fake(reactor: Any, say: Any) -> None:
            await body()

        self.patch(main, "runDemo", fake)
        clock = Clock()
        out = io.StringIO()
        d = main.demo(clock, out, deadline=45.0)
        clock.advance(advance)
        return d, out.getvalue()

    def test_deadline(self) -> None:
        """
        A demo still running after the deadline is abandoned: exit code 1
        and a message saying it timed out.
        """
        from twisted.internet.defer import Deferred

        d, output = self.runWith(lambda: Deferred(), advance=45.0)
        failure = self.failureResultOf(d, SystemExit)
        self.assertEqual(failure.value.code, 1)
        self.assertIn("ERROR: the demo did not finish within 45 seconds", output)

    def test_error(self) -> None:
        """
        A failing step ends the demo with exit code 1 and the error.
        """
        from twisted.internet.defer import fail

        from msnp.errors import AuthenticationError

        d, output = self.runWith(lambda: fail(AuthenticationError("password refused")))
        self.assertEqual(self.failureResultOf(d, SystemExit).value.code, 1)
        self.assertIn("ERROR: AuthenticationError: password refused", output)


class ConsoleTests(SynchronousTestCase):
    """
    L{Console} runs commands against a session and prints events.
    """

    def setUp(self) -> None:
        self.lines: list[str] = []
        say = Printer(type("Out", (), {"write": lambda _, t: self.lines.append(t), "flush": lambda _: None})())
        self.console = Console(say)
        self.session = FakeSession()
        self.console.attach(self.session)

    def test_plainLineWithoutTarget(self) -> None:
        """
        A plain line with no conversation open explains what to do.
        """
        self.console.command("hello")
        self.assertIn("No conversation open", "".join(self.lines))

    def test_openThenPlain(self) -> None:
        """
        After C{/open}, plain lines go to that contact.
        """
        self.console.command("/open bob@example.com")
        self.console.command("hello bob")
        self.assertEqual(self.session.sent, [("bob@example.com", "hello bob")])

    def test_msg(self) -> None:
        """
        C{/msg} sends and makes the contact current; bad use shows usage.
        """
        self.console.command("/msg bob@example.com hi")
        self.assertEqual(self.session.sent, [("bob@example.com", "hi")])
        self.assertEqual(self.console.target, "bob@example.com")
        self.console.command("/msg nobody")
        self.assertIn("usage: /msg", "".join(self.lines))

    def test_msgToOfflineContact(self) -> None:
        """
        A contact who cannot be reached gets an offline message, and the
        console says so; offline messages received are printed with their
        time.
        """
        from datetime import datetime, timezone

        from msnp.oim import OfflineMessage

        self.session.unreachable.add("bob@example.com")
        self.console.command("/msg bob@example.com see you")
        self.assertEqual(self.session.offline, [("bob@example.com", "see you")])
        self.assertIn("left as an offline message", "".join(self.lines))
        sent = datetime(2009, 6, 1, 12, 30, tzinfo=timezone.utc)
        self.console.offlineMessageReceived(self.session, OfflineMessage("I", "bob@example.com", "Bob", "hey", sent))
        self.assertIn("<Bob> (offline, 2009-06-01 12:30 UTC) hey", "".join(self.lines))

    def test_unknownCommand(self) -> None:
        """
        An unknown command says so.
        """
        self.console.command("/dance")
        self.assertIn("Unknown command /dance", "".join(self.lines))

    def test_quit(self) -> None:
        """
        C{/quit} finishes the console.
        """
        self.console.command("/quit")
        self.assertTrue(self.console.finished.called)

    def test_incomingMessage(self) -> None:
        """
        An incoming message is shown with the sender's name and makes the
        sender the current conversation when none is.
        """
        from msnp.mime import TextMessage

        self.console.messageReceived(self.session, object(), TextMessage("bob@example.com", "Bob", "yo"))
        self.assertIn("<Bob> yo", "".join(self.lines))
        self.assertEqual(self.console.target, "bob@example.com")


class FakeConversation:
    def __init__(self, session: "FakeSession", email: str) -> None:
        self.session = session
        self.email = email

    def sendText(self, text: str) -> Any:
        from twisted.internet.defer import succeed

        self.session.sent.append((self.email, text))
        return succeed(None)


class FakeSession:
    account = "me@example.com"

    def __init__(self) -> None:
        from msnp.contacts import Status

        self.status = Status.ONLINE
        self.sent: list[tuple[str, str]] = []
        self.offline: list[tuple[str, str]] = []
        self.unreachable: set[str] = set()
        from msnp.contacts import ContactList

        self.contacts = ContactList()

    def openConversation(self, email: str) -> Any:
        from twisted.internet.defer import fail, succeed

        from msnp.errors import ContactOffline

        if email in self.unreachable:
            return fail(ContactOffline(f"{email} is offline"))
        return succeed(FakeConversation(self, email))

    def sendOfflineMessage(self, email: str, text: str) -> Any:
        from twisted.internet.defer import succeed

        from msnp.uum import DeliveryResult

        self.offline.append((email, text))
        return succeed(DeliveryResult.STORED_OFFLINE)
