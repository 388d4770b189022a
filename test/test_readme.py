"""
Every code block of C{README.rst}, run as a user would run it, so the
README cannot drift from the code.

The blocks are extracted from the README itself (each literal block after
a C{::}), and L{ReadmeBlockTests.test_everyBlockIsRun} fails when a block
appears that no test here runs. The one change made to the text: the
README uses the default ports (1863, 1864, 8080), which a test must not
take on a shared machine, so they are replaced by free ephemeral ports,
and commands that rely on those defaults get the matching C{--server}/
C{--port} options appended; and the source tree is kept on C{PYTHONPATH}
(the suite runs against an editable install). Shell commands run with C{bash} in a scratch
directory, with this interpreter's C{bin} directory first on C{PATH}.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from typing import Optional

from twisted.trial.unittest import SynchronousTestCase

from test.support import ROOT, freePorts, tempDirectory

#: Seconds one expected output may take.
DEADLINE = 30.0


def readmeBlocks() -> list[str]:
    """
    The literal blocks of the README, dedented, in order.
    """
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::") and not lines[i].lstrip().startswith(".."):
            base = len(lines[i]) - len(lines[i].lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            body = []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base):
                body.append(lines[j])
                j += 1
            blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
            i = j
        else:
            i += 1
    return blocks


def block(containing: str) -> str:
    """
    The one README block containing C{containing}.
    """
    found = [b for b in readmeBlocks() if containing in b + "\n"]
    assert len(found) == 1, f"{len(found)} README blocks contain {containing!r}"
    return found[0]


#: One marker per README block, naming the test that runs it.
BLOCK_MARKERS = {
    "python3 -m venv .venv": "run by .ci/run itself (the set-up commands)",
    "class Bot(ObserverBase)": "test_quickStartBot",
    "application = Application(": "test_tacFile",
    "export MSNP_PASSWORD='bot-pw'": "test_twistdEchoAndShoutBot",
    "--logger msnp.logs.jsonLogObserver": "test_twistdEchoAndShoutBot",
    "class ShoutBot(ObserverBase)": "test_twistdEchoAndShoutBot",
    "--handler shoutbot.ShoutBot": "test_twistdEchoAndShoutBot",
    "cat > accounts.json": "every network test (the server)",
    "MSNP_PASSWORD=bot-pw twistd -n": "test_twistdEchoAndShoutBot",
    "python -m msnp chat\n": "test_chatCommands",
    "python -m msnp chat --account me@example.com": "test_chatCommands",
    "python -m msnp send": "test_chatCommands",
    "class MyBotTests(TestCase)": "test_localNetworkExample",
    "class EchoBotTests(TestCase)": "test_testingExample",
}


class Child:
    """
    A child process whose output is read as it comes (C{select} with a
    deadline; nothing sleeps).
    """

    def __init__(self, test: SynchronousTestCase, args: list[str], cwd: str, env: dict[str, str],
                 stdin: Optional[int] = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(args, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.output = bytearray()
        test.addCleanup(self.stop)

    def waitFor(self, text: str) -> str:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + DEADLINE
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not seen in: {self.output.decode(errors='replace')[-3000:]}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(
                        f"{text!r} not seen before exit: {self.output.decode(errors='replace')[-3000:]}")
                self.output.extend(chunk)
        return self.output.decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


class ReadmeBlockTests(SynchronousTestCase):
    """
    The README's blocks, run.
    """

    def setUp(self) -> None:
        self.directory = tempDirectory(self)
        self.ds, self.sb, self.http = freePorts(3)
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + self.env.get("PATH", "")
        # Exactly the source tree (twistd finds the plugins there); no empty
        # entry, which would put the current directory on sys.path.
        self.env["PYTHONPATH"] = ROOT
        self.env.pop("MSNP_PASSWORD", None)
        self.serverOptions = (
            f" --server tcp:127.0.0.1:{self.ds} --sso-url http://127.0.0.1:{self.http}/RST2.srf"
            f" --sharing-url http://127.0.0.1:{self.http}/abservice/SharingService.asmx"
            f" --ab-url http://127.0.0.1:{self.http}/abservice/abservice.asmx"
        )

    def ports(self, text: str) -> str:
        return text.replace("1863", str(self.ds)).replace("1864", str(self.sb)).replace("8080", str(self.http))

    def shell(self, script: str, stdin: Optional[int] = subprocess.DEVNULL) -> Child:
        return Child(self, ["bash", "-c", script], self.directory, self.env, stdin)

    def startServer(self) -> Child:
        script = block("cat > accounts.json") + f" --port {self.ds} --sb-port {self.sb} --http-port {self.http}"
        server = self.shell(script)
        server.waitFor("msnp-server ready")
        return server

    def chatAs(self, script: str, lines: list[str], expect: str) -> str:
        """
        Run a console command line, type C{lines}, wait for C{expect},
        then end the input; return the whole output.
        """
        child = self.shell(script, stdin=subprocess.PIPE)
        assert child.process.stdin is not None
        child.waitFor("Signed in as")
        for line in lines:
            child.process.stdin.write(line.encode() + b"\n")
        child.process.stdin.flush()
        child.waitFor(expect)
        child.process.stdin.close()
        self.assertEqual(child.process.wait(timeout=DEADLINE), 0, child.output.decode(errors="replace"))
        return child.output.decode(errors="replace")

    def meChat(self) -> str:
        return "MSNP_PASSWORD=my-pw python -m msnp chat --account me@example.com" + self.serverOptions

    def test_everyBlockIsRun(self) -> None:
        """
        Each README block is one this module knows how to run.
        """
        blocks = readmeBlocks()
        unknown = [b for b in blocks if not any(marker in b + "\n" for marker in BLOCK_MARKERS)]
        self.assertEqual(unknown, [], "README blocks no test runs")
        self.assertGreaterEqual(len(blocks), len(BLOCK_MARKERS))

    def test_quickStartBot(self) -> None:
        """
        The quick-start bot signs in with the README's accounts file and
        answers a message.
        """
        self.startServer()
        with open(os.path.join(self.directory, "bot.py"), "w") as f:
            f.write(self.ports(block("class Bot(ObserverBase)")))
        bot = Child(self, [sys.executable, "bot.py"], self.directory, self.env)
        bot.waitFor("online as bot@example.com with 1 contacts")
        output = self.chatAs(self.meChat(), ["/msg bot@example.com hello bot"], "you said: hello bot")
        self.assertIn("<Bot> you said: hello bot", output)

    def test_tacFile(self) -> None:
        """
        The C{bot.tac} example runs under C{twistd -ny} and echoes.
        """
        self.startServer()
        with open(os.path.join(self.directory, "bot.tac"), "w") as f:
            f.write(self.ports(block("application = Application(")))
        bot = self.shell("twistd -ny bot.tac")
        bot.waitFor("Signed in as bot@example.com")
        self.chatAs(self.meChat(), ["/msg bot@example.com echo me"], "<Bot> echo me")

    def test_twistdEchoAndShoutBot(self) -> None:
        """
        The C{twistd msnp} blocks run in the directory where the server
        runs (each with its own pid file): the echo bot, the JSON logs,
        and the C{shoutbot.py} handler from the current directory.
        """
        self.startServer()
        echo = self.shell(block("export MSNP_PASSWORD='bot-pw'") + self.serverOptions)
        echo.waitFor("Signed in as bot@example.com")
        self.chatAs(self.meChat(), ["/msg bot@example.com ping"], "<Bot> ping")
        echo.stop()

        echo = self.shell(block("MSNP_PASSWORD=bot-pw twistd -n") + self.serverOptions)
        echo.waitFor("Signed in as bot@example.com")
        echo.stop()

        json = self.shell("MSNP_PASSWORD=wrong " + block("--logger msnp.logs.jsonLogObserver") + self.serverOptions)
        json.waitFor('"log_level"')
        self.assertEqual(json.process.wait(timeout=DEADLINE), 1, json.output.decode(errors="replace"))
        output = json.waitFor("refused the credentials")
        self.assertTrue(all(line.startswith("{") for line in output.splitlines() if line.strip()), output)

        with open(os.path.join(self.directory, "shoutbot.py"), "w") as f:
            f.write(block("class ShoutBot(ObserverBase)"))
        # The suite's environment has msnp installed in editable mode, which
        # hides the plugin from twistd unless the source tree is on the path.
        command = block("--handler shoutbot.ShoutBot").replace("PYTHONPATH=.", f"PYTHONPATH=.{os.pathsep}{ROOT}")
        shout = self.shell("export MSNP_PASSWORD=bot-pw; " + command + self.serverOptions)
        shout.waitFor("Signed in as bot@example.com")
        self.chatAs(self.meChat(), ["/msg bot@example.com quiet please"], "<Bot> QUIET PLEASE")

    def test_chatCommands(self) -> None:
        """
        C{python -m msnp chat} on the embedded network, against the
        README's server, and C{python -m msnp send}.
        """
        self.assertEqual(block("python -m msnp chat\n"), "python -m msnp chat")
        self.chatAs("python -m msnp chat", ["/msg bob@example.com hi bob"], "<Bob> hi bob")
        self.startServer()
        other = self.ports(block("python -m msnp chat --account me@example.com"))
        self.chatAs(other, ["/contacts"], "bot@example.com")
        send = subprocess.run(["bash", "-c", block("python -m msnp send")], cwd=self.directory, env=self.env,
                              capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(send.returncode, 0, send.stdout + send.stderr)

    def test_testingExample(self) -> None:
        """
        The C{msnp.testing} example passes under trial.
        """
        with open(os.path.join(self.directory, "test_echobot.py"), "w") as f:
            f.write(block("class EchoBotTests(TestCase)"))
        result = subprocess.run([sys.executable, "-m", "twisted.trial", "test_echobot"], cwd=self.directory,
                                env=dict(self.env, PYTHONPATH=ROOT + os.pathsep + self.directory),
                                capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"PASSED \(successes=1\)")

    def test_localNetworkExample(self) -> None:
        """
        The C{LocalNetwork} test example passes under trial.
        """
        with open(os.path.join(self.directory, "test_mybot.py"), "w") as f:
            f.write(block("class MyBotTests(TestCase)"))
        result = subprocess.run([sys.executable, "-m", "twisted.trial", "test_mybot"], cwd=self.directory,
                                env=dict(self.env, PYTHONPATH=ROOT + os.pathsep + self.directory),
                                capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"PASSED \(successes=1\)")


class PublicNamesTests(SynchronousTestCase):
    """
    What README imports, C{msnp} itself exports.
    """

    def test_readmeImportsFromMsnp(self) -> None:
        """
        README imports from C{msnp} itself, not from its submodules, but
        for C{msnp.testing} and C{msnp.server} (which load the local
        network), and every name it imports from C{msnp} is there and in
        C{msnp.__all__}.
        """
        import re

        import msnp

        with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
            readme = f.read()
        submodules = set(re.findall(r"from (msnp\.[\w.]+) import", readme))
        self.assertEqual({m for m in submodules if not m.startswith(("msnp.testing", "msnp.server"))}, set())
        names = {n.strip() for line in re.findall(r"from msnp import ([^\n`]+)", readme) for n in line.split(",")}
        self.assertTrue(names)
        self.assertEqual({n for n in names if n not in msnp.__all__ or not hasattr(msnp, n)}, set())

    def test_helpShowsTheMainClasses(self) -> None:
        """
        C{help(msnp)} lists the classes loaded on first use.
        """
        import pydoc

        import msnp

        text = pydoc.render_doc(msnp, renderer=pydoc.plaintext)
        for name in ("MSNClient", "Session", "Conversation", "ObserverBase"):
            self.assertIn(name, text)
