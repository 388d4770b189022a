# -*- test-case-name: test.test_console -*-
"""
The console of C{python -m msnp chat}: its commands, the events it shows,
and its options.

L{Console} knows nothing of terminals: it runs one typed line at a time
and hands every line it wants shown to a C{display} callable. The front
ends in L{msnp.terminal} give it one: a line editor on
C{twisted.conch}'s terminal protocols when standard input is a terminal,
plain lines otherwise (scripts, pipes, tests).

The options are those of C{twistd msnp} (L{msnp.tap.Options}), with the
same names and checks; only what a console does differently is changed:
without C{--server} it runs on an embedded local network, and without a
password it asks for one.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, DeferredList
from twisted.python import usage

from msnp.demo import DEMO_ACCOUNTS, STEP_DESCRIPTIONS, describeContacts
from msnp.handlers import ObserverBase
from msnp.tap import PASSWORD_VARIABLE, Options, parseStatus

#: Exit codes of C{chat} and C{send}.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

HELP = """\
commands:
  /contacts                 your contacts and their status
  /msg <email> <text>       send a message (and make <email> the current conversation)
  /open <email>             make <email> the current conversation; plain lines go there
  /nudge [<email>]          send a nudge (to the current conversation by default)
  /add <email>              add a contact (they are asked to accept you)
  /accept <email>           accept someone who added you, and add them back
  /block <email>            block a contact (they see you offline and cannot write)
  /status [<status>]        show or change your status: online, busy, away, brb, phone, lunch, idle, hidden
  /name <text>              change your display name
  /psm <text>               change your personal message
  /picture <file>|none      publish a PNG/JPEG file as your display picture, or remove it
  /getpicture <email> <file>  save a contact's display picture to <file>
  /quit                     wait for messages still being sent, sign out and leave
Tab completes commands and contacts; up and down recall earlier lines."""

#: The commands, for completion.
COMMANDS = ("/accept", "/add", "/block", "/contacts", "/getpicture", "/help", "/msg", "/name", "/nudge", "/open",
            "/picture", "/psm", "/quit", "/status")


class ConsoleOptions(Options):
    """
    C{python -m msnp chat} options: those of C{twistd msnp}.

    Without C{--server} the console starts the embedded local network and
    signs in as its first demo account (C{--account} may name either demo
    account). With C{--server}, C{--account} is required and the password
    comes from C{$MSNP_PASSWORD}, C{--password-file} or, failing both, a
    prompt (L{needsPassword}).

    @ivar embedded: whether to run on the embedded network.
    @ivar needsPassword: whether the caller must ask for the password.
    """

    synopsis = "Usage: python -m msnp chat [options]  (no --server: an embedded local network with an echo contact)"
    commandName = "python -m msnp chat"

    def __init__(self, environ: Any = None) -> None:
        Options.__init__(self, environ)
        self.embedded = True
        self.needsPassword = False

    def opt_server(self, value: str) -> None:
        """
        Client endpoint string of the dispatch (or notification) server;
        without it, an embedded local network is started.
        """
        self["server"] = value
        self.embedded = False

    opt_s = opt_server

    def postOptions(self) -> None:
        if self.embedded:
            names = [account for account, _, _ in DEMO_ACCOUNTS]
            account = (self["account"] or names[0]).strip()
            if account not in names:
                raise usage.UsageError(
                    f"the embedded network only has {' and '.join(names)}; give --server for another network"
                )
            self["account"] = account
        elif not (self["account"] or "").strip():
            raise usage.UsageError("--account is required with --server")
        Options.postOptions(self)

    def _readPassword(self) -> str:
        if self.embedded:
            return next(password for account, password, _ in DEMO_ACCOUNTS if account == self["account"])
        if self["password-file"] is None and PASSWORD_VARIABLE not in self.environ:
            self.needsPassword = True
            return ""
        return Options._readPassword(self)


class SendOptions(ConsoleOptions):
    """
    C{python -m msnp send --to EMAIL TEXT...}: sign in, send one message,
    sign out; the exit code says whether the switchboard acknowledged it.
    """

    synopsis = "Usage: python -m msnp send --to EMAIL [options] TEXT..."
    commandName = "python -m msnp send"

    optParameters = [["to", None, None, "The contact to send the message to."]]

    def __init__(self, environ: Any = None) -> None:
        ConsoleOptions.__init__(self, environ)
        self.text = ""

    def parseArgs(self, *words: str) -> None:
        self.text = " ".join(words)

    def postOptions(self) -> None:
        if not self["to"] or "@" not in self["to"]:
            raise usage.UsageError("--to must name the contact's e-mail address")
        if not self.text.strip():
            raise usage.UsageError("no text to send: give it after the options")
        ConsoleOptions.postOptions(self)


class Console(ObserverBase):
    """
    The console's commands and events, as lines of text.

    @ivar session: the session, once signed in.
    @ivar target: where plain lines go (the current conversation).
    @ivar finished: fires once the console is done (after C{/quit} has
        waited for the messages still being sent, or when the session
        ended).
    @ivar exitCode: what the process should exit with: 0 after a normal
        C{/quit}; 1 when the session was ended by the server or a message
        was not delivered; 130 after an interrupt.
    """

    def __init__(
        self, display: Callable[[str], None], clock: Any = None, timestamps: bool = True
    ) -> None:
        """
        @param display: shows one block of text (one or more lines).
        @param clock: gives the time for the timestamps (C{seconds()}).
        @param timestamps: prefix events and messages with the time.
        """
        self.display = display
        self.clock = clock
        self.timestamps = timestamps
        self.session: Any = None
        self.target: Optional[str] = None
        self.finished: Deferred[None] = Deferred()
        self.exitCode = EXIT_OK
        self.undelivered = 0
        self._pending: set[Deferred[Any]] = set()
        self._quitting = False
        self._early: list[str] = []
        self._quitWhenSignedIn = False

    # -- output ------------------------------------------------------------------

    def show(self, text: str) -> None:
        """
        Show the answer to a command.
        """
        self.display(text)

    def event(self, text: str) -> None:
        """
        Show something that happened, with the time it happened.
        """
        if self.timestamps:
            now = self.clock.seconds() if self.clock is not None else time.time()
            text = time.strftime("[%H:%M] ", time.localtime(now)) + text
        self.display(text)

    # -- lifetime ----------------------------------------------------------------

    def attach(self, session: Any) -> None:
        """
        Signed in: commands now work.
        """
        self.session = session
        self.show(f"Signed in as {session.account} ({session.status.code}). /help lists the commands.")
        if self.clock is not None:
            # On the next turn of the reactor, as if typed just now: the
            # presence the server sends right after sign-in is in by then.
            self.clock.callLater(0, self._replayEarly)
        else:
            self._replayEarly()

    def _replayEarly(self) -> None:
        early, self._early = self._early, []
        for text in early:
            self.command(text)
        if self._quitWhenSignedIn:
            self.quit()

    def abandon(self) -> None:
        """
        The sign-in failed: finish without waiting for anything.
        """
        self.exitCode = EXIT_FAILED
        self._finish()

    def quit(self) -> "Deferred[None]":
        """
        Leave: wait for the messages still being sent (each one either
        arrives or fails on its own timeout), then finish.
        """
        if self._quitting:
            return self.finished
        if self.session is None:
            # Input ended (or Ctrl-D) before the sign-in finished: run
            # what was typed once signed in, then leave.
            self._quitWhenSignedIn = True
            return self.finished
        self._quitting = True
        pending = list(self._pending)
        if pending:
            self.show(f"Waiting for {len(pending)} message(s) still being sent ...")
        self.show("Signing out ...")
        DeferredList(pending, consumeErrors=True).addCallback(lambda _: self._finish())
        return self.finished

    def interrupt(self) -> None:
        """
        Ctrl-C: sign out at once (without waiting for pending messages).
        """
        self.exitCode = EXIT_INTERRUPTED
        self.show("Interrupted: signing out ...")
        self._finish()

    def _finish(self) -> None:
        if self.undelivered and self.exitCode == EXIT_OK:
            self.exitCode = EXIT_FAILED
        if not self.finished.called:
            self.finished.callback(None)

    # -- input -------------------------------------------------------------------

    def command(self, text: str) -> None:
        """
        Run one typed line; a failing command shows one line of error.
        """
        try:
            self._command(text)
        except Exception as e:
            self.show(f"error: {e}")

    def _command(self, text: str) -> None:
        if not text.strip():
            return
        if self.session is None and text.strip().lower() != "/help":
            # Typed (or piped) before the sign-in finished: kept for then.
            self._early.append(text)
            return
        if self._quitting:
            self.show("Signing out; no more commands.")
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
            self.show(f"Unknown command /{name}. /help lists the commands.")
            return
        handler(rest)

    def completions(self, word: str, first: bool) -> list[str]:
        """
        What C{word} (the word before the cursor) can be completed to: a
        command when it is the first word and starts with C{/}, else a
        contact's address.
        """
        if first and word.startswith("/"):
            return [c for c in COMMANDS if c.startswith(word.lower())]
        if self.session is None:
            return []
        emails = sorted(contact.email for contact in self.session.contacts)
        return [email for email in emails if email.startswith(word.lower())]

    # -- commands ------------------------------------------------------------------

    def cmd_help(self, rest: str) -> None:
        self.show(HELP)

    def cmd_contacts(self, rest: str) -> None:
        self.show("\n".join(describeContacts(self.session)))

    def cmd_open(self, rest: str) -> None:
        email = self._email(rest, "/open <email>")
        if email:
            self.target = email
            self.show(f"Plain lines now go to {self.target}.")

    def cmd_msg(self, rest: str) -> None:
        email, _, message = rest.partition(" ")
        if "@" not in email or not message.strip():
            self.show("usage: /msg <email> <text>")
            return
        self.target = email
        self.send(email, message)

    def cmd_nudge(self, rest: str) -> None:
        email = rest.split()[0] if rest else self.target
        if not email or "@" not in email:
            self.show("usage: /nudge <email> (or open a conversation first)")
            return
        d = self._track(self.session.openConversation(email).addCallback(lambda c: c.sendNudge()))
        self._report(d, lambda _: f"Nudged {email}.", undelivered=True)

    def cmd_add(self, rest: str) -> None:
        email = self._email(rest, "/add <email>")
        if email:
            self._report(self.session.addContact(email), lambda _: f"Added {email}; they are asked to accept you.")

    def cmd_accept(self, rest: str) -> None:
        email = self._email(rest, "/accept <email>")
        if email:
            self._report(self.session.acceptContactRequest(email), lambda _: f"Accepted {email}.")

    def cmd_block(self, rest: str) -> None:
        email = self._email(rest, "/block <email>")
        if email:
            self._report(self.session.blockContact(email), lambda _: f"Blocked {email}.")

    def cmd_status(self, rest: str) -> None:
        if not rest:
            status = self.session.status
            self.show(f"Your status is {status.name.replace('_', ' ').lower()} ({status.code}). "
                      "Change it with /status <online|busy|away|brb|phone|lunch|idle|hidden>.")
            return
        status = parseStatus(rest)
        self._report(self.session.setStatus(status), lambda s: f"Status is now {s.name.lower()} ({s.code}).")

    def cmd_name(self, rest: str) -> None:
        if not rest:
            self.show("usage: /name <text>")
            return
        self._report(self.session.setDisplayName(rest), lambda name: f"Display name is now {name!r}.")

    def cmd_psm(self, rest: str) -> None:
        self._report(self.session.setPersonalMessage(rest), lambda _: f"Personal message is now {rest!r}.")

    def cmd_picture(self, rest: str) -> None:
        path = rest.strip()
        if not path:
            self.show("usage: /picture <file> (PNG or JPEG), or /picture none")
            return
        if path.lower() == "none":
            self._report(self.session.setDisplayPicture(None), lambda _: "Display picture removed.")
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            self.show(f"error: cannot read {path}: {e.strerror or e}")
            return
        self._report(self.session.setDisplayPicture(data), lambda obj: f"Display picture is now {path} ({obj.size} bytes).")

    def cmd_getpicture(self, rest: str) -> None:
        email, _, path = rest.partition(" ")
        path = path.strip()
        if "@" not in email or not path:
            self.show("usage: /getpicture <email> <file>")
            return

        def save(data: bytes) -> str:
            with open(path, "wb") as f:
                f.write(data)
            return f"Saved the display picture of {email} to {path} ({len(data)} bytes)."

        d = self._track(self.session.fetchDisplayPicture(email).addCallback(save))
        self._report(d, lambda text: text)

    def cmd_quit(self, rest: str) -> None:
        self.quit()

    # -- helpers -------------------------------------------------------------------

    def send(self, email: str, text: str) -> None:
        """
        Send C{text} to C{email}; a failure is shown and counted, and
        C{/quit} waits for it to be settled.
        """
        from msnp.contacts import NETWORK_YAHOO
        from msnp.errors import ContactOffline
        from msnp.uum import DeliveryResult

        network = next((getattr(c, "network", 1) for c in self.session.contacts if c.email == email), 1)
        if network == NETWORK_YAHOO:
            sending = self.session.sendNetworkText(email, text)
        else:
            sending = self.session.openConversation(email).addCallback(lambda c: c.sendText(text))

            def offline(failure: Any) -> Any:
                # An offline contact gets an offline message (docs/offline.md).
                failure.trap(ContactOffline)
                return self.session.sendOfflineMessage(email, text)

            sending.addErrback(offline)

        def sent(result: Any) -> None:
            if result is DeliveryResult.STORED_OFFLINE:
                self.event(f"* {email} is offline: left as an offline message")

        d = self._track(sending)
        d.addCallbacks(sent, self._undelivered, errbackArgs=(email,))

    def _undelivered(self, failure: Any, email: str) -> None:
        self.undelivered += 1
        self.event(f"Message to {email} not delivered: {failure.getErrorMessage()}")

    def _track(self, d: "Deferred[Any]") -> "Deferred[Any]":
        self._pending.add(d)

        def settled(result: Any) -> Any:
            self._pending.discard(d)
            return result

        return d.addBoth(settled)

    def _email(self, rest: str, usageText: str) -> Optional[str]:
        email = rest.split()[0] if rest else ""
        if "@" not in email:
            self.show(f"usage: {usageText}")
            return None
        return email

    def _report(self, d: "Deferred[Any]", describe: Callable[[Any], str], undelivered: bool = False) -> None:
        def failed(failure: Any) -> None:
            if undelivered:
                self.undelivered += 1
            self.show(f"error: {failure.getErrorMessage()}")

        d.addCallbacks(lambda result: self.show(describe(result)), failed)

    # -- events --------------------------------------------------------------------

    def loginStep(self, step: str, elapsed: float) -> None:
        description = STEP_DESCRIPTIONS.get(step, "")
        self.show(f"  signing in: {step:<9} {description}".rstrip())

    def messageReceived(self, conversation: Any, message: Any) -> None:
        name = message.senderName or message.sender
        emoticons = getattr(message, "emoticons", None)
        suffix = f"  [custom emoticons: {' '.join(sorted(emoticons))}]" if emoticons else ""
        self.event(f"<{name}> {message.text}{suffix}")
        if self.target is None:
            self.target = message.sender

    def winkReceived(self, session: Any, conversation: Any, sender: str, wink: Any) -> None:
        self.event(f"<{sender}> [wink]")

    def voiceClipReceived(self, session: Any, conversation: Any, sender: str, clip: Any) -> None:
        self.event(f"<{sender}> [voice clip]")

    def inkReceived(self, session: Any, conversation: Any, sender: str, ink: Any) -> None:
        self.event(f"<{sender}> [ink]")

    def nudgeReceived(self, conversation: Any, email: str) -> None:
        self.event(f"* {email} sent you a nudge")

    def offlineMessageReceived(self, session: Any, message: Any) -> None:
        name = message.senderName or message.sender
        when = message.sent.strftime("%Y-%m-%d %H:%M UTC") if message.sent is not None else "earlier"
        self.event(f"<{name}> (offline, {when}) {message.text}")

    def offlineMessageFailed(self, session: Any, failure: Any) -> None:
        if not failure.willRetry:
            self.event(f"* an offline message could not be fetched ({failure.stage}): {failure.error}")

    def networkMessageReceived(self, session: Any, message: Any) -> None:
        self.event(f"<{message.senderName or message.sender}> {message.text}")
        if self.target is None:
            self.target = message.sender

    def networkNudgeReceived(self, session: Any, email: str) -> None:
        self.event(f"* {email} sent you a nudge")

    def contactStatusChanged(self, contact: Any, status: Any) -> None:
        self.event(f"* {contact.email} is now {status.name.replace('_', ' ').lower()}")

    def contactNameChanged(self, contact: Any, displayName: str) -> None:
        self.event(f"* {contact.email} is now called {displayName!r}")

    def contactPersonalMessageChanged(self, contact: Any, personalMessage: str) -> None:
        self.event(f"* {contact.email}: {personalMessage!r}")

    def contactPictureChanged(self, contact: Any, msnObject: Any) -> None:
        if msnObject is None:
            self.event(f"{contact.email} removed their display picture.")
        else:
            self.event(f"{contact.email} has a new display picture ({msnObject.size} bytes; /getpicture to save it).")

    def contactAddedYou(self, email: str, displayName: Optional[str]) -> None:
        self.event(f"* {email} added you to their contact list (/accept {email} to add them back)")

    def signedOut(self, session: Any, reason: Optional[str]) -> None:
        if reason != "logout":
            self.event(f"* signed out: {reason}")
            if self.exitCode == EXIT_OK:
                self.exitCode = EXIT_FAILED
        self._finish()
