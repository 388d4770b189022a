"""
Tests for the console (L{msnp.console}, L{msnp.terminal}): the line editor
in memory, then the real C{python -m msnp chat} and C{send} under a real
pseudo-terminal and over pipes.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from typing import Any

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from msnp.console import EXIT_FAILED, Console, ConsoleOptions, SendOptions
from msnp.contacts import Status
from msnp.terminal import TerminalFront

from test.support import ROOT, childEnvironment

#: Seconds a child process may take for one expected output.
DEADLINE = 30.0


class FakeContact:
    def __init__(self, email: str) -> None:
        self.email = email


class FakeSession:
    account = "me@example.com"

    def __init__(self) -> None:
        self.status = Status.ONLINE
        self.contacts = [FakeContact("bob@example.com"), FakeContact("bea@example.com"),
                         FakeContact("carl@example.com")]
        self.sending: list[Deferred[Any]] = []
        self.calls: list[tuple[str, str]] = []

    def openConversation(self, email: str) -> Any:
        session = self

        class Conversation:
            def sendText(self, text: str) -> Any:
                d: Deferred[None] = Deferred()
                session.sending.append(d)
                return d

            def sendNudge(self) -> Any:
                session.calls.append(("nudge", email))
                return succeed(None)

        return succeed(Conversation())

    def addContact(self, email: str) -> Any:
        self.calls.append(("add", email))
        return succeed(None)

    def acceptContactRequest(self, email: str) -> Any:
        self.calls.append(("accept", email))
        return succeed(None)

    def blockContact(self, email: str) -> Any:
        self.calls.append(("block", email))
        return fail(RuntimeError("not on your list"))


class ConsoleCommandTests(SynchronousTestCase):
    """
    L{Console}'s commands and exit codes, on a fake session.
    """

    def setUp(self) -> None:
        self.lines: list[str] = []
        self.clock = Clock()
        self.console = Console(self.lines.append, clock=self.clock)
        self.session = FakeSession()

    def test_linesBeforeSignInWait(self) -> None:
        """
        Lines typed before the sign-in finished run once signed in, and an
        end of input meanwhile quits after them.
        """
        self.console.command("/msg bob@example.com early")
        self.console.quit()
        self.assertEqual(self.session.sending, [])
        self.console.attach(self.session)
        self.clock.advance(0)
        self.assertEqual(len(self.session.sending), 1)
        self.assertFalse(self.console.finished.called)
        self.session.sending[0].callback(None)
        self.assertTrue(self.console.finished.called)
        self.assertEqual(self.console.exitCode, 0)

    def test_quitWaitsForPendingSends(self) -> None:
        """
        C{/quit} waits for the messages being sent; one that fails makes
        the exit code 1.
        """
        self.console.attach(self.session)
        self.console.command("/msg bob@example.com one")
        self.console.command("/msg bob@example.com two")
        self.console.command("/quit")
        self.assertIn("Waiting for 2 message(s) still being sent ...", self.lines)
        self.session.sending[0].callback(None)
        self.assertFalse(self.console.finished.called)
        self.session.sending[1].errback(RuntimeError("the switchboard set-up was cancelled"))
        self.assertTrue(self.console.finished.called)
        self.assertEqual(self.console.exitCode, EXIT_FAILED)
        self.assertTrue(any("not delivered: the switchboard set-up was cancelled" in line for line in self.lines))

    def test_serverEndedSession(self) -> None:
        """
        A session ended by the server (not by C{/quit}) finishes the
        console with exit code 1; Ctrl-C gives 130.
        """
        self.console.attach(self.session)
        self.console.signedOut(self.session, "connection lost")
        self.assertTrue(self.console.finished.called)
        self.assertEqual(self.console.exitCode, EXIT_FAILED)
        other = Console(self.lines.append, clock=Clock())
        other.attach(self.session)
        other.interrupt()
        self.assertEqual(other.exitCode, 130)

    def test_statusWithoutArgument(self) -> None:
        """
        C{/status} alone shows the current status and how to change it.
        """
        self.console.attach(self.session)
        self.console.command("/status")
        self.assertIn("Your status is online (NLN)", self.lines[-1])

    def test_contactCommands(self) -> None:
        """
        C{/add}, C{/accept}, C{/nudge} reach the session; C{/block}'s
        failure is one line; a missing address shows the usage.
        """
        self.console.attach(self.session)
        self.console.command("/add carl@example.com")
        self.console.command("/accept bea@example.com")
        self.console.command("/nudge bob@example.com")
        self.console.command("/block bob@example.com")
        self.console.command("/add")
        self.assertEqual(
            self.session.calls,
            [("add", "carl@example.com"), ("accept", "bea@example.com"), ("nudge", "bob@example.com"),
             ("block", "bob@example.com")],
        )
        self.assertIn("error: not on your list", self.lines)
        self.assertEqual(self.lines[-1], "usage: /add <email>")

    def test_timestamps(self) -> None:
        """
        Events carry the time they happened.
        """
        from msnp.mime import TextMessage

        self.console.attach(self.session)
        self.console.messageReceived(object(), TextMessage("bob@example.com", "Bob", "yo"))
        self.assertRegex(self.lines[-1], r"^\[\d\d:\d\d\] <Bob> yo$")

    def test_richContentShown(self) -> None:
        """
        Received custom emoticons are named after the text; winks, voice
        clips and ink show as C{[wink]}, C{[voice clip]}, C{[ink]}.
        """
        from msnp.mime import TextMessage
        from msnp.p2p.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, TYPE_WINK, MSNObject
        from msnp.richcontent import Ink, VoiceClip, Wink

        self.console.attach(self.session)
        cat = MSNObject.fromData("bob@example.com", b"\x89PNG", TYPE_EMOTICON)
        self.console.messageReceived(object(), TextMessage("bob@example.com", "Bob", "a (cat)", emoticons={"(cat)": cat}))
        self.assertTrue(self.lines[-1].endswith("<Bob> a (cat)  [custom emoticons: (cat)]"), self.lines[-1])
        self.console.winkReceived(self.session, object(), "bob@example.com",
                                  Wink(MSNObject.fromData("bob@example.com", b"cab", TYPE_WINK)))
        self.assertTrue(self.lines[-1].endswith("<bob@example.com> [wink]"))
        self.console.voiceClipReceived(self.session, object(), "bob@example.com",
                                       VoiceClip(MSNObject.fromData("bob@example.com", b"wav", TYPE_VOICE_CLIP)))
        self.assertTrue(self.lines[-1].endswith("<bob@example.com> [voice clip]"))
        self.console.inkReceived(self.session, object(), "bob@example.com", Ink("gif", b"GIF89a"))
        self.assertTrue(self.lines[-1].endswith("<bob@example.com> [ink]"))

    def test_completions(self) -> None:
        """
        The first word completes to commands, later words to contacts.
        """
        self.console.attach(self.session)
        self.assertEqual(self.console.completions("/ac", True), ["/accept"])
        self.assertEqual(self.console.completions("b", False), ["bea@example.com", "bob@example.com"])


class ConsoleOptionsTests(SynchronousTestCase):
    """
    The console parses with C{twistd msnp}'s options and checks.
    """

    def test_embeddedByDefault(self) -> None:
        """
        Without C{--server}: the embedded network and its first account.
        """
        options = ConsoleOptions(environ={})
        options.parseOptions([])
        self.assertTrue(options.embedded)
        self.assertEqual(options["account"], "alice@example.com")

    def test_sameChecksAsTwistd(self) -> None:
        """
        A bad status, GUID or timeout is refused as by C{twistd msnp}; with
        C{--server} and no password the console will prompt.
        """
        from twisted.python.usage import UsageError

        for argv in (["--status", "dancing"], ["--machine-guid", "x"], ["--login-timeout", "0"],
                     ["--password", "secret"]):
            self.assertRaises(UsageError, ConsoleOptions(environ={}).parseOptions, argv)
        options = ConsoleOptions(environ={})
        options.parseOptions(["--server", "tcp:127.0.0.1:1", "--account", "me@example.com"])
        self.assertFalse(options.embedded)
        self.assertTrue(options.needsPassword)

    def test_sendNeedsRecipientAndText(self) -> None:
        """
        C{send} wants C{--to} and a text.
        """
        from twisted.python.usage import UsageError

        self.assertRaises(UsageError, SendOptions(environ={}).parseOptions, ["hello"])
        self.assertRaises(UsageError, SendOptions(environ={}).parseOptions, ["--to", "bob@example.com"])
        options = SendOptions(environ={})
        options.parseOptions(["--to", "bob@example.com", "hello", "there"])
        self.assertEqual(options.text, "hello there")


class TerminalFrontTests(SynchronousTestCase):
    """
    The line editor, driven by key bytes through conch's terminal parser.
    """

    def setUp(self) -> None:
        self.console = Console(lambda text: None, clock=Clock())
        self.console.attach(FakeSession())
        self.transport = StringTransport()
        self.terminal = ServerProtocol(TerminalFront, self.console)
        self.terminal.makeConnection(self.transport)
        self.front = self.terminal.terminalProtocol

    def test_eventKeepsHalfTypedLine(self) -> None:
        """
        An event shown while a line is half typed is printed above it, and
        the half-typed line is drawn again, editable.
        """
        self.terminal.dataReceived(b"/msg bob@exa")
        self.transport.clear()
        self.console.event("* carl is now online")
        written = self.transport.value()
        self.assertIn(b"* carl is now online\r\n", written)
        self.assertTrue(written.endswith(b"> /msg bob@exa"))
        self.terminal.dataReceived(b"mple.com hi\r")
        self.assertEqual(self.console.target, "bob@example.com")

    def test_tabCompletesContact(self) -> None:
        """
        Tab completes a unique contact; with several it completes the
        common part and lists them.
        """
        self.terminal.dataReceived(b"/open bo\t")
        self.assertEqual(b"".join(self.front.lineBuffer), b"/open bob@example.com ")
        self.terminal.dataReceived(b"\r/open b\t")
        self.assertEqual(b"".join(self.front.lineBuffer), b"/open b")
        self.assertIn(b"bea@example.com  bob@example.com", self.transport.value())

    def test_history(self) -> None:
        """
        Up recalls the previous line.
        """
        self.terminal.dataReceived(b"/open bob@example.com\r")
        self.terminal.dataReceived(b"\x1b[A")
        self.assertEqual(b"".join(self.front.lineBuffer), b"/open bob@example.com")

    def test_ctrlD(self) -> None:
        """
        Ctrl-D on an empty line quits.
        """
        self.terminal.dataReceived(b"\x04")
        self.assertTrue(self.console.finished.called)


def _readUntil(fd: int, needle: bytes, seen: bytearray) -> bytes:
    """
    Read from C{fd} until C{needle} has appeared (or fail after
    L{DEADLINE} seconds); C{select} waits for data, nothing sleeps.
    """
    deadline = time.monotonic() + DEADLINE
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen; got {bytes(seen)[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"{needle!r} not seen before the end; got {bytes(seen)[-2000:]!r}")
            seen.extend(chunk)
    return bytes(seen)


class PseudoTerminalTests(SynchronousTestCase):
    """
    C{python -m msnp chat} under a real pseudo-terminal, on the embedded
    network with the echo contact.
    """

    def test_chatOnATerminal(self) -> None:
        """
        Sign-in progress is shown; Tab completes the contact; a message
        comes back from the echo bot with a timestamp; the up arrow
        recalls the line; Ctrl-D signs out and the exit code is 0.
        """
        import pty

        controller, child = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "msnp", "chat"], cwd=ROOT, env=childEnvironment(),
            stdin=child, stdout=child, stderr=child, close_fds=True,
        )
        os.close(child)
        self.addCleanup(os.close, controller)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        seen = bytearray()
        _readUntil(controller, b"signing in: online", seen)
        _readUntil(controller, b"Signed in as alice@example.com", seen)
        _readUntil(controller, b"bob@example.com is now online", seen)
        os.write(controller, b"/msg bo\t")
        _readUntil(controller, b"/msg bob@example.com ", seen)
        os.write(controller, b"hello over a pty\r")
        output = _readUntil(controller, b"<Bob> hello over a pty", seen)
        self.assertRegex(output.decode("utf-8", "replace"), r"\[\d\d:\d\d\] <Bob> hello over a pty")
        del seen[:]
        os.write(controller, b"\x1b[A")
        _readUntil(controller, b"/msg bob@example.com hello over a pty", seen)
        os.write(controller, b"\x1b[B\x04")
        _readUntil(controller, b"Signing out", seen)
        self.assertEqual(process.wait(timeout=DEADLINE), 0)

    def test_sendExitCodes(self) -> None:
        """
        C{python -m msnp send} exits 0 when the message was delivered and 1
        when the contact cannot get it.
        """
        env = childEnvironment()
        ok = subprocess.run([sys.executable, "-m", "msnp", "send", "--to", "bob@example.com", "hi bob"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("delivered to bob@example.com", ok.stdout)
        bad = subprocess.run([sys.executable, "-m", "msnp", "send", "--to", "nobody@example.com", "hi"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn("not delivered to nobody@example.com", bad.stdout)
