# -*- test-case-name: test.test_server_notification,test.test_server_offline -*-
"""
The notification server's relay commands: C{UUN} (a notification for the
account's own or a contact's places, delivered as C{UBN}) and C{UUM} (an
offline message, kept by L{msnp.server.offline}, or a message to or from
a network-32 account, delivered as C{UBM}).

They are the NS commands that carry something from one place to others
rather than change the session itself, and both decide who may receive
it by the same privacy rule (L{msnp.server.presence.permits}), so they
stand apart from the login and status commands of
L{msnp.server.notification.NotificationServer}, into which
L{RelayCommands} is mixed; it uses that connection's state (C{account},
C{user}, C{machineGuid}, C{presence}, C{store}, C{offline}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from msnp.server.accountmodel import Account, normalizeEmail
from msnp.server.dispatch import LoginPreamble
from msnp.server.presence import guidKey, permits
from msnp.wire import Command

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.accounts import AccountStore
    from msnp.server.offline import OfflineMessageService
    from msnp.server.presence import Presence


class RelayCommands(LoginPreamble):
    """
    C{handle_UUN} and C{handle_UUM} of the NS, over the state the NS
    connection keeps (declared here, set by it).
    """

    account: Optional[str]
    user: Optional[Account]
    machineGuid: Optional[str]
    presence: "Presence"
    store: "AccountStore"
    offline: Optional["OfflineMessageService"]

    def _braced(self) -> str:
        """
        This place's endpoint id in braces (the NS defines it).
        """
        raise NotImplementedError

    def handle_UUN(self, command: Command) -> None:
        """
        C{UUN trid recipient[;{epid}] type len}: relay the payload as C{UBN}
        to the recipient's places (the one named by C{epid}, else all but
        the sending place; one's own places even while hidden), then answer
        C{UUN trid OK}, so a client whose request is acknowledged knows the
        UBN is already on its way. A type
        that is not a number is refused (C{201}). An offline, hidden or
        unknown recipient, or one whose privacy does not admit the sender,
        gets nothing and the sender the same C{OK}: the answer must not
        tell a blocked sender that it is blocked (see docs/roaming.md).
        """
        target = command.arg(0)
        kind = command.arg(1)
        if not (kind.isascii() and kind.isdigit()) or len(kind) > 4:
            self.error(201, command.trid)
            return
        email, _, guid = target.partition(";")
        if ":" in email.split("@")[0]:
            email = email.split(":", 1)[1]
        assert self.account is not None
        sender = self.account + (f";{self._braced()}" if self.machineGuid else "")
        recipient = self.store.get(email)
        ownAccount = recipient is not None and self.user is not None and recipient.email == self.user.email
        if recipient is not None and self.user is not None and (
            ownAccount or (permits(recipient, self.user) and self.presence.isReachable(recipient.email))
        ):
            for session in self.presence.sessionsOf(recipient.email):
                if session is self:
                    continue
                if guid and (session.machineGuid is None or guidKey(session.machineGuid) != guidKey(guid)):
                    continue
                session.sendRaw(Command("UBN", None, (sender, kind), command.payload or b""))
        self.reply("UUN", command.trid, "OK")

    def handle_UUM(self, command: Command) -> None:
        """
        C{UUM trid recipient network type len}: an offline message (kept),
        or a message to or from a network-32 account (relayed as C{UBM}).
        Never answered, as on Escargot (docs/offline.md).
        """
        assert self.user is not None
        if self.offline is None:
            self.log.info("Dropping UUM from {account} (offline messages are not kept)", account=self.account)
            return
        target = command.arg(0)
        prefix, sep, rest = target.partition(":")
        email = normalizeEmail(rest if sep and prefix.isdigit() else target)
        recipient = self.store.get(email) if email else None
        online = recipient is not None and self.presence.isReachable(recipient.email)
        network = recipient.network if recipient is not None else 1
        outcome = self.offline.receiveUUM(command, self.user, recipient, online, network)
        if outcome.relay is None or recipient is None:
            return
        for session in self.presence.sessionsOf(recipient.email):
            if session.status is not None and session is not self:
                session.sendRaw(outcome.relay)
