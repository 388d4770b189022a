# -*- test-case-name: test.test_console -*-
"""
The front ends of the console, and the C{chat} and C{send} commands.

On a terminal the console is a line editor built on C{twisted.conch}'s
terminal protocols (L{twisted.conch.insults.insults.ServerProtocol} parsing
the keys, L{twisted.conch.recvline.HistoricRecvLine} editing the line):
arrows, Home/End, history, Tab completion of commands and contacts, and
events printed I{above} the line being typed, which is redrawn as it was.
These modules are pure Python parts of Twisted and need none of the
C{Twisted[conch]} extras (those are for SSH). C{prompt_toolkit} was not
chosen: it wants its own asyncio loop, which would put a second event loop
(or the asyncio reactor) under every console for what conch already does
on the reactor msnp runs on. See C{docs/console.md}.

When standard input is not a terminal (a pipe, a script), lines are read
plainly and the output has no escape sequences.
"""

from __future__ import annotations

import functools
import getpass
import os
import signal
import sys
from typing import Any, Callable, Optional

from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from msnp.console import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Console, ConsoleOptions, SendOptions

#: Keys that RecvLine does not know and the console gives a meaning.
CTRL_C = b"\x03"
CTRL_D = b"\x04"


class TerminalFront(HistoricRecvLine):
    """
    The console on a terminal.
    """

    ps = (b"> ", b"... ")

    def __init__(self, console: Console) -> None:
        self.console = console

    def connectionMade(self) -> None:
        HistoricRecvLine.connectionMade(self)
        self.console.display = self.showAbove

    def initializeScreen(self) -> None:
        # RecvLine resets the whole terminal (clearing the screen); the
        # console only takes the line it is on.
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def showAbove(self, text: str) -> None:
        """
        Print C{text} above the line being typed, then draw that line
        again with the cursor where it was.
        """
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        # The terminal protocol turns each "\n" into "\r\n" itself.
        self.terminal.write(text.encode("utf-8", "replace") + b"\n")
        self.drawInputLine()
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        if keyID == CTRL_C:
            self.console.interrupt()
        elif keyID == CTRL_D and not self.lineBuffer:
            self.console.quit()
        elif isinstance(keyID, bytes) and keyID >= b"\x80":
            # The bytes of a UTF-8 character: RecvLine only takes ASCII.
            self.characterReceived(keyID, False)
        else:
            HistoricRecvLine.keystrokeReceived(self, keyID, modifier)

    def lineReceived(self, line: bytes) -> None:
        self.console.command(line.decode("utf-8", "replace"))
        self.terminal.write(self.ps[self.pn])

    def handle_TAB(self) -> None:
        before, _ = self.currentLineBuffer()
        text = before.decode("utf-8", "replace")
        word = text.split(" ")[-1]
        first = " " not in text.lstrip()
        candidates = self.console.completions(word, first)
        if not candidates:
            return
        common = os.path.commonprefix(candidates)
        addition = common[len(word):]
        if len(candidates) == 1:
            addition += " "
        elif not addition:
            self.showAbove("  ".join(candidates))
            return
        for ch in addition.encode("utf-8"):
            self.characterReceived(bytes([ch]), True)


@implementer(IHalfCloseableProtocol)
class PipeFront(LineReceiver):
    """
    The console on a pipe: one command per line, plain output; the end of
    the input is C{/quit}.
    """

    delimiter = b"\n"

    def __init__(self, console: Console) -> None:
        self.console = console

    def connectionMade(self) -> None:
        self.console.display = self.showLine

    def showLine(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8", "replace") + b"\n")

    def lineReceived(self, line: bytes) -> None:
        self.console.command(line.decode("utf-8", "replace").rstrip("\r"))

    def readConnectionLost(self) -> None:
        self.console.quit()

    def writeConnectionLost(self) -> None:
        self.console.quit()


def _printer(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse(optionsClass: type, argv: list[str]) -> Any:
    """
    Parse C{argv} with the console's options (those of C{twistd msnp});
    a bad option is one line and exit code 2, C{--help} exits 0.
    """
    options = optionsClass()
    try:
        options.parseOptions(argv)
    except Exception as e:
        from twisted.python import usage

        if not isinstance(e, usage.UsageError):
            raise
        sys.stderr.write(f"{options.commandName}: {e}\n({options.commandName} --help lists the options)\n")
        raise SystemExit(EXIT_USAGE)
    if options.needsPassword:
        options.password = getpass.getpass(f"Password for {options['account']}: ")
    return options


async def _signIn(reactor: Any, options: Any, console: Console) -> tuple[Any, list[Any]]:
    """
    Sign in as the options say, on the embedded network when no server
    was given (with the other demo account online as an echo bot).

    @return: the session and what to stop afterwards (sessions, network).
    """
    from msnp import MSNClient
    from msnp.demo import DEMO_ACCOUNTS, startDemoNetwork
    from msnp.handlers import EchoHandler
    from msnp.tap import makeClient

    cleanups: list[Any] = []
    if options.embedded:
        console.show("Starting the embedded local network (bob@example.com echoes what you say) ...")
        network = await startDemoNetwork(reactor)
        cleanups.append(network)
        options.endpoints = network.endpoints
        for email, password, _ in DEMO_ACCOUNTS:
            if email != options["account"]:
                bot = MSNClient(email, password, network.endpoints, reactor=reactor)
                bot.observer = EchoHandler(bot)
                cleanups.insert(0, await bot.login())
    client = makeClient(options, reactor)
    client.observer = console
    console.show(f"Signing in {options['account']} ...")
    session = await client.login()
    return session, cleanups


async def _stop(cleanups: list[Any]) -> None:
    for thing in cleanups:
        try:
            if hasattr(thing, "logout"):
                if thing.isActive:
                    await thing.logout()
            else:
                await thing.stop()
        except Exception as e:
            _printer(f"error while stopping: {e}")


def _failed(failure: Any, say: Any = _printer) -> None:
    if failure.check(SystemExit):
        failure.raiseException()
    say(f"error: {type(failure.value).__name__}: {failure.getErrorMessage()}")
    if os.environ.get("MSNP_DEBUG"):
        say(failure.getTraceback())
    raise SystemExit(EXIT_FAILED)


def chat(reactor: Any, argv: list[str], options: Any = None) -> "Deferred[None]":
    """
    Run the console until C{/quit}, Ctrl-D, Ctrl-C or the end of input.
    Exit code: 0 after a normal quit with every message delivered, 1 when
    the login failed, the server ended the session or a message was not
    delivered, 130 after Ctrl-C, 2 for bad options.
    """
    if options is None:
        options = parse(ConsoleOptions, argv)
    return ensureDeferred(_chat(reactor, options)).addErrback(_failed)


async def _chat(reactor: Any, options: Any) -> None:
    from twisted.internet.stdio import StandardIO

    console = Console(_printer, clock=reactor)
    interactive = os.isatty(0)
    front: Protocol
    restore: Optional[Callable[[], object]] = None
    if interactive:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        restore = functools.partial(termios.tcsetattr, fd, termios.TCSANOW, saved)

        front = ServerProtocol(TerminalFront, console)
    else:
        front = PipeFront(console)
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(console.interrupt))
    stdio = StandardIO(front, reactor=reactor)
    cleanups: list[Any] = []
    try:
        try:
            session, cleanups = await _signIn(reactor, options, console)
        except BaseException:
            console.abandon()
            raise
        console.attach(session)
        cleanups.insert(0, session)
        await console.finished
    finally:
        await _stop(cleanups)
        if interactive:
            console.display("Signed out.")
        stdio.loseConnection()
        if restore is not None:
            restore()
            sys.stdout.write("\n")
    if console.exitCode != EXIT_OK:
        raise SystemExit(console.exitCode)


def send(reactor: Any, argv: list[str], options: Any = None) -> "Deferred[None]":
    """
    Sign in, send one message, sign out. Exit code 0 when the switchboard
    acknowledged the message, 1 when it was not delivered (or the login
    failed), 2 for bad options.
    """
    if options is None:
        options = parse(SendOptions, argv)
    return ensureDeferred(_send(reactor, options)).addErrback(_failed)


async def _send(reactor: Any, options: Any) -> None:
    quiet = Console(lambda text: None, clock=reactor)
    session, cleanups = await _signIn(reactor, options, quiet)
    cleanups.insert(0, session)
    to = options["to"]
    try:
        conversation = await session.openConversation(to)
        await conversation.sendText(options.text)
    except Exception as e:
        _printer(f"not delivered to {to}: {e}")
        raise SystemExit(EXIT_FAILED)
    finally:
        await _stop(cleanups)
    _printer(f"delivered to {to}")

