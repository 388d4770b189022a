# -*- test-case-name: test.test_server_notification -*-
"""
The notification server's list commands: C{ADL}, C{RML} and C{FQY}.

They are validated as strictly as the independent server of reference
10.3 did, applied to the session's forward list (the store stays the
truth; the initial C{ADL} is only acknowledged), echoed to the account's
other places (MPOP), and announced to the contact with C{l="8"}.
L{ListCommands} is mixed into L{msnp.server.notification.NotificationServer},
whose connection state (C{user}, C{presence}, C{store}) and replies
(C{reply}, C{error}, C{fail}) it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, cast

from msnp.contacts import Lists
from msnp.listpayload import ListEntry, parseListPayload
from msnp.errors import ProtocolError
from msnp.server.accountmodel import REVERSE, Account
from msnp.wire import Command, encodeParameter
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML

from msnp.server.dispatch import LoginPreamble

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.accounts import AccountStore
    from msnp.server.notification import NotificationServer
    from msnp.server.presence import Presence


class ListCommands(LoginPreamble):
    """
    C{handle_ADL}, C{handle_RML} and C{handle_FQY} of the NS, over the
    state the NS connection keeps (declared here, set by it).
    """

    user: Optional[Account]
    presence: "Presence"
    store: "AccountStore"

    def fail(self, code: int, trid: Optional[int], why: str) -> None:
        """
        A fatal error: send the code and close (the NS defines it).
        """
        raise NotImplementedError

    def isCircleList(self, command: Command) -> bool:
        """
        Whether an C{ADL}/C{RML} is about circles (the NS's circle part
        answers those; see L{msnp.server.nscircles}).
        """
        return False

    def circleList(self, command: Command) -> None:
        raise NotImplementedError

    def _listEntries(self, command: Command) -> Optional[tuple[bool, list[ListEntry]]]:
        """
        Validate an C{ADL}/C{RML} payload. Sends the error and returns
        L{None} when it is refused: an empty C{<d>} is C{240} and a list bit
        other than FL/AL/BL (or AL with BL) C{241}, both without payload and
        followed by a disconnect, as the independent server did (10.3); an
        address with no account is C{208}, the connection staying open.
        """
        payload = command.payload or b""
        try:
            root = parseXML(payload)
        except XMLError:
            self.log.info("Ignoring {name} with unusable XML", name=command.name)
            return None
        if localName(root.tag) != "ml":
            self.log.info("Ignoring {name} whose root is not <ml>", name=command.name)
            return None
        initial = root.get("l") == "1"
        for section in root:
            if localName(section.tag) == "d" and not any(localName(c.tag) == "c" for c in section):
                self.fail(240, command.trid, "empty <d> in a list payload")
                return None
        try:
            entries = parseListPayload(payload)
        except ProtocolError as e:
            self.log.info("Ignoring malformed {name}: {error}", name=command.name, error=str(e))
            return None
        for element in root.iter():
            if localName(element.tag) == "c":
                try:
                    bits = int(element.get("l") or "0")
                except ValueError:
                    bits = -1
                if bits <= 0 or bits & ~7 or bits & 6 == 6:
                    self.fail(241, command.trid, f"impossible list bits {bits}")
                    return None
        if not initial:
            for entry in entries:
                found = self.store.get(entry.email)
                if found is None or entry.network != found.network:
                    self.error(208, command.trid)
                    return None
        return initial, entries

    def _acceptedListCommand(self, command: Command) -> Optional[tuple[bool, list[ListEntry]]]:
        """
        The common start of C{ADL} and C{RML}: a circle list goes to the
        circle commands; a valid list is acknowledged with C{OK} and
        returned as C{(initial, entries)}; L{None} when there is nothing
        more to do (a circle list, or an error already sent).
        """
        if self.isCircleList(command):
            self.circleList(command)
            return None
        parsed = self._listEntries(command)
        if parsed is None:
            return None
        assert self.user is not None
        self.reply(command.name, command.trid, "OK")
        return parsed

    def handle_ADL(self, command: Command) -> None:
        parsed = self._acceptedListCommand(command)
        if parsed is None:
            return
        initial, entries = parsed
        assert self.user is not None
        if initial:
            # The store is the truth; the initial list is only acknowledged.
            return
        # The other places hear of it before any presence it causes, so that
        # they know the contact by the time its NLN arrives.
        self.presence.echoListChange(cast("NotificationServer", self), "ADL", entries)
        for entry in entries:
            target = self.store.get(entry.email)
            if target is None:
                continue
            if entry.lists & Lists.FORWARD:
                self.presence.follow(self.user.email, target.email)
                if target.hasRole(REVERSE, self.user.email):
                    self._notifyListChange(target, "ADL", self.user, withName=True)
            self.presence.refreshBetween(self.user.email, target.email)

    def handle_RML(self, command: Command) -> None:
        parsed = self._acceptedListCommand(command)
        if parsed is None:
            return
        initial, entries = parsed
        assert self.user is not None
        if not initial:
            self.presence.echoListChange(cast("NotificationServer", self), "RML", entries)
        for entry in entries:
            target = self.store.get(entry.email)
            if target is None:
                continue
            if entry.lists & Lists.FORWARD:
                self.presence.follow(self.user.email, target.email, following=False)
                self._notifyListChange(target, "RML", self.user, withName=False)
            self.presence.refreshBetween(self.user.email, target.email)

    def _notifyListChange(self, target: Account, name: str, who: Account, withName: bool) -> None:
        """
        Tell every place of C{target} that C{who} put it on (C{ADL}) or took
        it off (C{RML}) their forward list: C{l="8"}, TrID 0.
        """
        local, _, domain = who.email.rpartition("@")
        extra = f' f="{escapeText(encodeParameter(who.displayName))}"' if withName else ""
        payload = (
            f'<ml><d n="{escapeText(domain)}"><c n="{escapeText(local)}" t="1" l="8"{extra} /></d></ml>'
        ).encode("utf-8")
        for session in self.presence.sessionsOf(target.email):
            session.reply(name, 0, payload=payload)

    def handle_FQY(self, command: Command) -> None:
        """
        Federated query: which network is each address on (C{t="1"}, or
        C{t="32"} for an account standing for a Yahoo! user); an unknown
        address gets C{208} without payload (reference 10.3).
        """
        try:
            entries = parseListPayload(command.payload or b"")
        except ProtocolError as e:
            self.log.info("Ignoring malformed FQY: {error}", error=str(e))
            return
        if not entries or any(self.store.get(e.email) is None for e in entries):
            self.error(208, command.trid)
            return
        sections: dict[str, list[str]] = {}
        for entry in entries:
            local, _, domain = entry.email.rpartition("@")
            found = self.store.get(entry.email)
            network = found.network if found is not None else 1
            sections.setdefault(domain, []).append(f'<c n="{escapeText(local)}" t="{network}" />')
        body = "".join(f'<d n="{escapeText(d)}">{"".join(cs)}</d>' for d, cs in sections.items())
        self.reply("FQY", command.trid, payload=f"<ml>{body}</ml>".encode("utf-8"))
