# -*- test-case-name: test.test_demo -*-
"""
C{python -m msnp}: the demo and the console.

C{python -m msnp demo} starts an embedded local MSNP18 network, signs two
accounts in with the full MSNP18 login (showing each step as it happens),
shows their contact lists, has them talk both ways, signs them out and
exits: 0 when everything worked, 1 with a clear message otherwise.

C{python -m msnp chat} is a line-based console on the library; by default
it runs against the embedded network with a demo contact that echoes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Optional, TextIO

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react
from twisted.protocols.basic import LineReceiver

from msnp.handlers import EchoHandler, ObserverBase

DEMO_ACCOUNTS = (
    ("alice@example.com", "alice-demo-password", "Alice"),
    ("bob@example.com", "bob-demo-password", "Bob"),
)

#: What each login step means, for the progress display.
STEP_DESCRIPTIONS = {
    "connect": "TCP connection open",
    "VER": "protocol version agreed (MSNP18)",
    "CVR": "client version accepted",
    "XFR": "redirected to the notification server",
    "USR": "Passport policy and nonce received",
    "SSO": "Passport tokens received (RST2)",
    "USR OK": "MBI response accepted: authenticated",
    "contacts": "memberships and address book downloaded (SOAP)",
    "BLP": "privacy setting sent",
    "ADL": "contact list sent to the server",
    "profile": "display name and place published",
    "online": "status announced (CHG)",
}

#: The demo's overall deadline, in seconds.
DEMO_DEADLINE = 45.0


class Printer:
    """
    Writes whole lines and flushes each one, so a person (or a pipe) sees
    progress as it happens.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()


class Watcher(ObserverBase):
    """
    The demo's observer: prints login steps and records what arrives,
    and lets the demo wait until a condition holds.
    """

    def __init__(self, name: str, say: Printer) -> None:
        self.name = name
        self.say = say
        self.messages: list[Any] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def loginStep(self, step: str, elapsed: float) -> None:
        description = STEP_DESCRIPTIONS.get(step, "")
        self.say(f"  [{self.name}] {elapsed * 1000:8.1f} ms  {step:<9} {description}".rstrip())
        self._check()

    def contactStatusChanged(self, contact: Any, status: Any) -> None:
        self._check()

    def messageReceived(self, conversation: Any, message: Any) -> None:
        self.messages.append(message)
        self._check()

    def signedOut(self, session: Any, reason: Optional[str]) -> None:
        self._check()

    def waitFor(self, condition: Callable[[], bool]) -> "Deferred[None]":
        """
        A L{Deferred} firing once C{condition()} is true (checked now and
        after every event).
        """
        d: Deferred[None] = Deferred()
        if condition():
            d.callback(None)
        else:
            self._waiters.append((condition, d))
        return d

    def _check(self) -> None:
        pending = []
        for condition, d in self._waiters:
            if d.called:
                continue
            if condition():
                d.callback(None)
            else:
                pending.append((condition, d))
        self._waiters = pending


def _statusText(contact: Any) -> str:
    status = contact.status
    label = status.name.replace("_", " ").lower()
    return f"{label} ({status.code})"


def describeContacts(session: Any) -> list[str]:
    """
    One line per contact: address, name, presence.
    """
    lines = []
    for contact in sorted(session.contacts, key=lambda c: c.email):
        name = contact.displayName or contact.email
        lines.append(f"    {contact.email:<24} {name!r:<12} {_statusText(contact)}")
    if not lines:
        lines.append("    (no contacts)")
    return lines


async def startDemoNetwork(reactor: Any, accounts: Any = DEMO_ACCOUNTS) -> Any:
    """
    Start a L{LocalNetwork} on ephemeral loopback ports with C{accounts}
    (all mutual contacts).

    @return: the started network (its C{endpoints} set).
    """
    from msnp.server.network import LocalNetwork

    network = LocalNetwork(reactor=reactor, interface="127.0.0.1")
    for email, password, name in accounts:
        network.addAccount(email, password, name)
    emails = [a[0] for a in accounts]
    for i, owner in enumerate(emails):
        for contact in emails[i + 1 :]:
            network.addContact(owner, contact, mutual=True)
    await network.start()
    return network


def _seconds(reactor: Any, started: float) -> str:
    return f"{(reactor.seconds() - started) * 1000:.1f} ms"


async def runDemo(reactor: Any, say: Printer) -> None:
    """
    The main job, step by step.
    """
    from msnp.client import MSNClient

    begun = reactor.seconds()
    say("msnp demo: an MSNP18 conversation on a local network")
    say("")
    say("Starting the embedded local MSNP18 network on 127.0.0.1 ...")
    network = await startDemoNetwork(reactor)
    sessions: list[Any] = []
    try:
        endpoints = network.endpoints
        say(f"  dispatch server   {endpoints.dispatch}")
        say(f"  notification      tcp:{network.notificationAddress}")
        say(f"  switchboard       tcp:{network.switchboardAddress}")
        say(f"  Passport (SSO)    {endpoints.sso}")
        say(f"  sharing service   {endpoints.sharing}")
        say(f"  address book      {endpoints.addressBook}")
        (aliceEmail, alicePassword, _), (bobEmail, bobPassword, _) = DEMO_ACCOUNTS
        alice = Watcher("alice", say)
        bob = Watcher("bob", say)

        for email, password, watcher in ((aliceEmail, alicePassword, alice), (bobEmail, bobPassword, bob)):
            say("")
            say(f"Signing in {email} (MSNP18: dispatch, SSO, notification server) ...")
            client = MSNClient(email, password, endpoints, observer=watcher, reactor=reactor, loginTimeout=20.0)
            started = reactor.seconds()
            session = await client.login()
            sessions.append(session)
            say(
                f"  [{watcher.name}] signed in as {session.displayName!r}, status {session.status.code}, "
                f"in {_seconds(reactor, started)}"
            )
        aliceSession, bobSession = sessions

        say("")
        say("Waiting for each to see the other online ...")
        await alice.waitFor(lambda: _isOnline(aliceSession, bobEmail))
        await bob.waitFor(lambda: _isOnline(bobSession, aliceEmail))
        for watcher, session in ((alice, aliceSession), (bob, bobSession)):
            say(f"  Contact list of {session.account}:")
            for line in describeContacts(session):
                say(line)

        say("")
        say("Conversation:")
        await _exchange(reactor, say, aliceSession, bob, bobEmail, "alice", "bob", "Hi Bob! This is MSNP18 talking.")
        await _exchange(reactor, say, bobSession, alice, aliceEmail, "bob", "alice", "Hello Alice, loud and clear.")

        say("")
        say("Signing out ...")
        for session in sessions:
            await session.logout()
            reason = await session.whenEnded()
            say(f"  {session.account} signed out ({reason})")
        sessions = []
    finally:
        for session in sessions:
            try:
                await session.logout()
            except Exception:
                pass
        await network.stop()
    say("Local network stopped.")
    say("")
    say(f"Demo finished in {_seconds(reactor, begun)}: two sign-ins, presence, a conversation both ways.")


def _isOnline(session: Any, email: str) -> bool:
    contact = session.contacts.get(email)
    return contact is not None and contact.isOnline


async def _exchange(
    reactor: Any, say: Printer, sender: Any, receiver: Watcher, to: str, fromName: str, toName: str, text: str
) -> None:
    """
    C{sender} sends C{text} to C{to}; wait until the receiver's observer
    has it.
    """
    started = reactor.seconds()
    seen = len(receiver.messages)
    conversation = await sender.openConversation(to)
    await conversation.sendText(text)
    say(f"  {fromName} -> {toName}: {text!r} (acknowledged by the switchboard after {_seconds(reactor, started)})")
    await receiver.waitFor(lambda: any(m.text == text for m in receiver.messages[seen:]))
    message = next(m for m in receiver.messages[seen:] if m.text == text)
    say(
        f"  {toName} received from {message.sender} ({message.senderName!r}): {message.text!r} "
        f"after {_seconds(reactor, started)}"
    )


def demo(reactor: Any, out: TextIO = sys.stdout, deadline: float = DEMO_DEADLINE) -> "Deferred[None]":
    """
    Run the demo under a hard deadline.

    @return: a L{Deferred} firing when done, or failing with
        C{SystemExit(1)} after printing what went wrong.
    """
    say = Printer(out)
    d = ensureDeferred(runDemo(reactor, say))
    timedOut = []

    def onTimeout(result: Any, timeout: float) -> Any:
        timedOut.append(True)
        return result

    d.addTimeout(deadline, reactor, onTimeoutCancel=onTimeout)

    def failed(failure: Any) -> None:
        if failure.check(SystemExit):
            failure.raiseException()
        if timedOut:
            message = f"the demo did not finish within {deadline:g} seconds"
        else:
            message = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        say(f"ERROR: {message}")
        if os.environ.get("MSNP_DEBUG"):
            say(failure.getTraceback())
        raise SystemExit(1)

    return d.addErrback(failed)


# -- the console ------------------------------------------------------------------------


# -- the console ------------------------------------------------------------------------


HELP = """\
commands:
  /contacts                 your contacts and their status
  /msg <email> <text>       send a message (and make <email> the current conversation)
  /open <email>             make <email> the current conversation; plain lines go there
  /status <status>          online, busy, away, brb, phone, lunch, idle, hidden
  /name <text>              change your display name
  /psm <text>               change your personal message
  /quit                     sign out and leave"""


class Console(LineReceiver, ObserverBase):
    """
    The line-based console: reads commands from standard input, and is
    the session's observer, printing what happens.

    Incoming lines are printed on a line of their own, after clearing what
    the terminal shows of the line being typed, and the prompt is shown
    again, so typing is not garbled (as far as a cooked terminal allows).
    """

    delimiter = b"\n"
    prompt = "> "

    def __init__(self, say: Printer, interactive: Optional[bool] = None) -> None:
        self.say = say
        self.session: Any = None
        self.target: Optional[str] = None
        self.finished: Deferred[None] = Deferred()
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self._promptShown = False

    # -- output ----------------------------------------------------------------------

    def show(self, text: str) -> None:
        """
        Print C{text} on its own line(s) and re-show the prompt.
        """
        if self.transport is None:
            self.say(text)
            return
        prefix = "\r\x1b[K" if self.interactive else ""
        suffix = self.prompt if self.interactive else ""
        self.transport.write((prefix + text + "\n" + suffix).encode("utf-8", "replace"))
        self._promptShown = self.interactive

    def showPrompt(self) -> None:
        if self.transport is not None and self.interactive and not self._promptShown:
            self.transport.write(self.prompt.encode())
            self._promptShown = True

    # -- lifetime ----------------------------------------------------------------------

    def attach(self, session: Any) -> None:
        self.session = session
        self.say(f"Signed in as {session.account} ({session.status.code}). /help lists the commands.")

    def connectionMade(self) -> None:
        self.showPrompt()

    def connectionLost(self, reason: Any = None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.finished.called:
            self.finished.callback(None)

    # -- input --------------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        # The user pressed Enter: the prompt on screen has been used up.
        self._promptShown = False
        text = line.decode("utf-8", "replace").rstrip("\r")
        try:
            self.command(text)
        except Exception as e:
            self.show(f"error: {e}")
        else:
            self.showPrompt()

    def command(self, text: str) -> None:
        """
        Run one typed line.
        """
        if not text.strip():
            return
        if not text.startswith("/"):
            if self.target is None:
                self.show("No conversation open: /open <email> or /msg <email> <text> (/help for more).")
                return
            self.send(self.target, text)
            return
        name, _, rest = text[1:].partition(" ")
        rest = rest.strip()
        handler = getattr(self, "cmd_" + name.lower(), None)
        if handler is None:
            self.show(f"Unknown command /{name}. " + "/help lists the commands.")
            return
        handler(rest)

    def cmd_help(self, rest: str) -> None:
        self.show(HELP)

    def cmd_contacts(self, rest: str) -> None:
        self.show("\n".join(describeContacts(self.session)))

    def cmd_open(self, rest: str) -> None:
        if "@" not in rest:
            self.show("usage: /open <email>")
            return
        self.target = rest.split()[0]
        self.show(f"Plain lines now go to {self.target}.")

    def cmd_msg(self, rest: str) -> None:
        email, _, message = rest.partition(" ")
        if "@" not in email or not message.strip():
            self.show("usage: /msg <email> <text>")
            return
        self.target = email
        self.send(email, message)

    def cmd_status(self, rest: str) -> None:
        from msnp.tap import parseStatus

        status = parseStatus(rest)
        self._report(self.session.setStatus(status), lambda s: f"Status is now {s.name.lower()} ({s.code}).")

    def cmd_name(self, rest: str) -> None:
        self._report(self.session.setDisplayName(rest), lambda name: f"Display name is now {name!r}.")

    def cmd_psm(self, rest: str) -> None:
        self._report(self.session.setPersonalMessage(rest), lambda _: f"Personal message is now {rest!r}.")

    def cmd_quit(self, rest: str) -> None:
        self.show("Signing out ...")
        self._finish()

    def send(self, email: str, text: str) -> None:
        from msnp.contacts import NETWORK_YAHOO
        from msnp.errors import ContactOffline
        from msnp.uum import DeliveryResult

        contact = self.session.contacts.get(email)
        if contact is not None and contact.network == NETWORK_YAHOO:
            d = self.session.sendNetworkText(email, text)
        else:
            d = self.session.openConversation(email)
            d.addCallback(lambda conversation: conversation.sendText(text))

            def offline(failure: Any) -> Any:
                failure.trap(ContactOffline)
                return self.session.sendOfflineMessage(email, text)

            d.addErrback(offline)

        def sent(result: Any) -> None:
            if result is DeliveryResult.STORED_OFFLINE:
                self.show(f"* {email} is offline: left as an offline message")

        d.addCallbacks(sent, lambda f: self.show(f"Message to {email} not delivered: {f.getErrorMessage()}"))

    def _report(self, d: "Deferred[Any]", describe: Callable[[Any], str]) -> None:
        d.addCallbacks(
            lambda result: self.show(describe(result)),
            lambda f: self.show(f"error: {f.getErrorMessage()}"),
        )

    # -- events ---------------------------------------------------------------------------

    def messageReceived(self, conversation: Any, message: Any) -> None:
        name = message.senderName or message.sender
        self.show(f"<{name}> {message.text}")
        if self.target is None:
            self.target = message.sender

    def nudgeReceived(self, conversation: Any, email: str) -> None:
        self.show(f"* {email} sent you a nudge")

    def offlineMessageReceived(self, session: Any, message: Any) -> None:
        name = message.senderName or message.sender
        when = message.sent.strftime("%Y-%m-%d %H:%M UTC") if message.sent is not None else "earlier"
        self.show(f"<{name}> (offline, {when}) {message.text}")

    def offlineMessageFailed(self, session: Any, failure: Any) -> None:
        if not failure.willRetry:
            self.show(f"* an offline message could not be fetched ({failure.stage}): {failure.error}")

    def networkMessageReceived(self, session: Any, message: Any) -> None:
        self.show(f"<{message.senderName or message.sender}> {message.text}")
        if self.target is None:
            self.target = message.sender

    def networkNudgeReceived(self, session: Any, email: str) -> None:
        self.show(f"* {email} sent you a nudge")

    def contactStatusChanged(self, contact: Any, status: Any) -> None:
        self.show(f"* {contact.email} is now {status.name.replace('_', ' ').lower()}")

    def contactNameChanged(self, contact: Any, displayName: str) -> None:
        self.show(f"* {contact.email} is now called {displayName!r}")

    def contactPersonalMessageChanged(self, contact: Any, personalMessage: str) -> None:
        self.show(f"* {contact.email}: {personalMessage!r}")

    def contactAddedYou(self, email: str, displayName: Optional[str]) -> None:
        self.show(f"* {email} added you to their contact list")

    def signedOut(self, session: Any, reason: Optional[str]) -> None:
        if reason != "logout":
            self.show(f"* signed out: {reason}")
        self._finish()


def chatArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m msnp chat",
        description="An interactive MSNP18 console. Without --server it starts the embedded local "
        "network, signs you in as alice@example.com and puts bob@example.com online as an echo bot.",
    )
    parser.add_argument("--server", help="client endpoint string of the dispatch server (e.g. tcp:host:1863)")
    parser.add_argument("--sso-url", help="URL of the Passport RST2 service")
    parser.add_argument("--sharing-url", help="URL of the ABCH sharing service")
    parser.add_argument("--ab-url", help="URL of the ABCH address-book service")
    parser.add_argument("--rsi-url", help="URL of the RSI service (offline messages)")
    parser.add_argument("--trust-root", help="PEM file of the CA certificates to trust for https")
    parser.add_argument("--account", help="the account to sign in with (password from $MSNP_PASSWORD or a prompt)")
    parser.add_argument("--status", default="online", help="status to sign in with")
    parser.add_argument("--trace", action="store_true", help="log protocol traffic to stderr")
    return parser.parse_args(argv)


def chat(reactor: Any, argv: list[str]) -> "Deferred[None]":
    """
    Run the console until C{/quit} or end of input; a failure (a refused
    login, an unreachable server) is printed as one line and exits 1.
    """
    say = Printer(sys.stdout)

    def failed(failure: Any) -> None:
        if failure.check(SystemExit):
            failure.raiseException()
        say(f"error: {type(failure.value).__name__}: {failure.getErrorMessage()}")
        if os.environ.get("MSNP_DEBUG"):
            say(failure.getTraceback())
        raise SystemExit(1)

    return ensureDeferred(_chat(reactor, chatArguments(argv))).addErrback(failed)


async def _chat(reactor: Any, args: argparse.Namespace) -> None:
    from twisted.internet.stdio import StandardIO

    from msnp.client import MSNClient
    from msnp.endpoints import Endpoints
    from msnp.tap import DEFAULT_ADDRESS_BOOK, DEFAULT_RSI, DEFAULT_SHARING, DEFAULT_SSO, parseStatus

    if args.trace:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    say = Printer(sys.stdout)
    try:
        status = parseStatus(args.status)
    except ValueError as e:
        say(f"error: {e}")
        raise SystemExit(2)
    network = None
    bot = None
    if args.server is None:
        say("Starting the embedded local network (you are alice@example.com; bob@example.com echoes) ...")
        network = await startDemoNetwork(reactor)
        endpoints = network.endpoints
        (account, password, _), (botEmail, botPassword, _) = DEMO_ACCOUNTS
        if args.account and args.account != account:
            say(f"error: the embedded network only has {account} and {botEmail}")
            await network.stop()
            raise SystemExit(2)
        botClient = MSNClient(botEmail, botPassword, endpoints, reactor=reactor)
        botClient.observer = EchoHandler(botClient)
        bot = await botClient.login()
    else:
        if not args.account:
            say("error: --account is required with --server")
            raise SystemExit(2)
        account = args.account
        password = os.environ.get("MSNP_PASSWORD") or ""
        if not password:
            import getpass

            password = getpass.getpass(f"Password for {account}: ")
        endpoints = Endpoints(
            dispatch=args.server,
            sso=args.sso_url or DEFAULT_SSO,
            sharing=args.sharing_url or DEFAULT_SHARING,
            addressBook=args.ab_url or DEFAULT_ADDRESS_BOOK,
            rsi=args.rsi_url or DEFAULT_RSI,
            trustRoot=args.trust_root,
        )
    console = Console(say)
    client = MSNClient(account, password, endpoints, observer=console, reactor=reactor, initialStatus=status)
    try:
        say(f"Signing in {account} ...")
        session = await client.login()
        console.attach(session)
        stdio = StandardIO(console, reactor=reactor)
        await console.finished
        stdio.loseConnection()
    finally:
        if console.session is not None and console.session.isActive:
            await console.session.logout()
        if bot is not None:
            await bot.logout()
        if network is not None:
            await network.stop()


# -- the command line ------------------------------------------------------------------


USAGE = """\
usage: python -m msnp <command> [options]

commands:
  demo    start an embedded local MSNP18 network, sign two accounts in,
          show presence and a conversation both ways, sign out (exit 0 on success)
  chat    an interactive console (embedded network and an echo contact by default;
          --server/--sso-url/--sharing-url/--ab-url/--rsi-url/--account for another network)

  python -m msnp chat --help      options of the console
  twistd msnp --help              the long-running client service
  twistd msnp-server --help       the local network as a service
"""


def main(argv: list[str]) -> int:
    """
    Dispatch to a subcommand; return the exit code.
    """
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        if rest and rest[0] in ("-h", "--help"):
            sys.stdout.write("usage: python -m msnp demo\n\nRun the MSNP18 demo on an embedded local network.\n")
            return 0
        react(demo)
    elif command == "chat":
        chatArguments(rest)  # --help and argument errors before any reactor work
        react(chat, (rest,))
    else:
        sys.stderr.write(f"unknown command {command!r}\n\n{USAGE}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
