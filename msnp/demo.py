# -*- test-case-name: test.test_demo -*-
"""
C{python -m msnp demo}: the main job.

It starts an embedded local MSNP18 network, signs two accounts in with the
full MSNP18 login (showing each step as it happens), shows their contact
lists, has them talk both ways, signs them out and exits: 0 when everything
worked, 1 with a clear message otherwise.

The demo (and the console's embedded mode) is one of the two places outside
C{msnp.server} allowed to import the local network.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, TextIO

from twisted.internet.defer import Deferred, ensureDeferred

from msnp.handlers import ObserverBase

if TYPE_CHECKING:
    from msnp.client import MSNClient
    from msnp.session import Session

DEMO_ACCOUNTS = (
    ("alice@example.com", "alice-demo-password", "Alice"),
    ("bob@example.com", "bob-demo-password", "Bob"),
)

#: What each login step means, for the progress display: every step
#: L{msnp.client.MSNClient.login} reports, no other.
STEP_DESCRIPTIONS = {
    "connect": "TCP connection open",
    "VER": "protocol version agreed (MSNP18)",
    "CVR": "client version accepted",
    "XFR": "redirected to the notification server",
    "SSO": "Passport tokens received (RST2)",
    "USR OK": "MBI response accepted: authenticated",
    "contacts": "memberships and address book downloaded (SOAP)",
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

    def loginStep(self, client: MSNClient, step: str, elapsed: float) -> None:
        description = STEP_DESCRIPTIONS.get(step, "")
        self.say(f"  [{self.name}] {elapsed * 1000:8.1f} ms  {step:<9} {description}".rstrip())
        self._check()

    def contactStatusChanged(self, session: Session, contact: Any, status: Any) -> None:
        self._check()

    def messageReceived(self, session: Session, conversation: Any, message: Any) -> None:
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
    from msnp import MSNClient

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
