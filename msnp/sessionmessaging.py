# -*- test-case-name: test.test_offline,test.test_offline_e2e -*-
"""
L{SessionMessaging}: the messages of a signed-in account that need no
switchboard, a base class of L{msnp.session.Session}.

Offline messages (announced by the NS, fetched over RSI; left with
C{UUM}) and the messages of contacts on another network (C{UUM} out,
C{UBM} in), docs/offline.md. They are apart from L{msnp.session} so that
module keeps the session's lifetime and state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO
from msnp.errors import ConnectionLost
from msnp.interfaces import notifyObserver
from msnp.mime import MessageFormat, TextMessage
from msnp.offline import OfflineFailure, acceptedUnlessRefused
from msnp.oim import OfflineMessage
from msnp.uum import (
    DeliveryResult,
    MessageKind,
    NetworkMessage,
    buildNetworkNudge,
    buildNetworkText,
    buildNetworkTyping,
    buildOfflineText,
)
from msnp.wire import Command

if TYPE_CHECKING:
    from msnp.contacts import ContactList
    from msnp.notification import NotificationProtocol
    from msnp.offline import OfflineInbox
    from msnp.soap.rsi import RSIService

log = Logger()


class SessionMessaging:
    """
    The offline and other-network messages of L{msnp.session.Session}.
    """

    if TYPE_CHECKING:
        # Set up by msnp.session.Session, which this class is a base of.
        _announcements: list[bytes]
        _ended_: bool
        _signedIn: bool
        observer: Optional[object]
        protocol: NotificationProtocol
        rsi: Optional[RSIService]
        uumGracePeriod: float

        @property
        def account(self) -> str: ...

        @property
        def offlineInbox(self) -> Optional[OfflineInbox]: ...

        @property
        def contacts(self) -> ContactList: ...

        def _contactNetwork(self, email: str) -> Optional[int]: ...

        def _announceOffline(self, payload: bytes) -> None: ...

    # -- what the NS connection tells us (INotificationListener) ----------------------------------

    def mailDataReceived(self, payload: bytes) -> None:
        """
        The NS sent mail data or an OIM notification: fetch the messages
        it announces (after sign-in; earlier ones wait until then).
        """
        if self._ended_:
            return
        if not self._signedIn:
            if len(self._announcements) < 100:
                self._announcements.append(payload)
            return
        if self.rsi is None:
            log.info("Offline messages announced for {account}, but no RSI service to fetch them",
                     account=self.account)
            return
        self._announceOffline(payload)

    def networkMessageReceived(self, message: NetworkMessage) -> None:
        """
        A C{UBM} for us from a contact on another network: tell the
        observer.
        """
        sender = message.sender or ""
        if message.kind is MessageKind.TEXT:
            contact = self.contacts.get(sender)
            name = contact.displayName if contact is not None else sender
            notifyObserver(
                self.observer, "networkMessageReceived", self,
                TextMessage(sender, name, message.text, message.format),
            )
        elif message.kind is MessageKind.TYPING:
            notifyObserver(self.observer, "networkTypingReceived", self, sender)
        else:
            notifyObserver(self.observer, "networkNudgeReceived", self, sender)

    def _deliverOffline(self, message: OfflineMessage) -> None:
        notifyObserver(self.observer, "offlineMessageReceived", self, message)

    def _offlineFailed(self, failure: OfflineFailure) -> None:
        notifyObserver(self.observer, "offlineMessageFailed", self, failure)
    # -- messages without a switchboard (docs/offline.md) -----------------------------------------------

    def sendOfflineMessage(
        self, email: str, text: str, format: Optional[MessageFormat] = None
    ) -> "Deferred[DeliveryResult]":
        """
        Leave C{text} for C{email} as an offline message (C{UUM ... 1 1}
        with C{Dest-Agent: client}); to a contact on another network
        (network 32), send it with L{sendNetworkText} instead.

        Servers never answer C{UUM}: the message counts as stored when no
        numeric error came back within L{uumGracePeriod} seconds.

        @return: a L{twisted.internet.defer.Deferred} firing with L{DeliveryResult.STORED_OFFLINE}
            (or L{DeliveryResult.SENT_TO_NETWORK}); failing with
            L{ValueError} (the text is longer than one offline message may
            be, or the address is not one), L{msnp.errors.ServerError}
            (refused), or L{msnp.errors.ConnectionLost}.
        """
        if self._contactNetwork(email) == NETWORK_YAHOO:
            return self.sendNetworkText(email, text, format)
        try:
            command = buildOfflineText(0, email, text, format)
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.STORED_OFFLINE)

    def sendNetworkText(
        self, email: str, text: str, format: Optional[MessageFormat] = None,
        network: Optional[int] = None,
    ) -> "Deferred[DeliveryResult]":
        """
        Send C{text} to a contact on another network (C{UUM email 32 1}):
        such contacts have no switchboard. The server passes it on if they
        are signed in; there is no offline store on their network.

        @param network: the recipient's network id (by default the
            contact's, else 32).
        @return: a L{twisted.internet.defer.Deferred} firing with L{DeliveryResult.SENT_TO_NETWORK},
            failing like L{sendOfflineMessage}.
        """
        try:
            command = buildNetworkText(0, email, text, self._networkOf(email, network), format)
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def sendNetworkTyping(self, email: str, network: Optional[int] = None) -> "Deferred[DeliveryResult]":
        """
        Tell a contact on another network that you are typing
        (C{UUM email 32 2}); never sent to a Live contact.
        """
        try:
            command = buildNetworkTyping(0, email, self.account, self._networkOf(email, network))
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def sendNetworkNudge(self, email: str, network: Optional[int] = None) -> "Deferred[DeliveryResult]":
        """
        Nudge a contact on another network (C{UUM email 32 3}).
        """
        try:
            command = buildNetworkNudge(0, email, self._networkOf(email, network))
        except ValueError as e:
            return fail(e)
        return self._sendUUM(command, DeliveryResult.SENT_TO_NETWORK)

    def _networkOf(self, email: str, network: Optional[int]) -> int:
        if network is not None:
            return network
        known = self._contactNetwork(email)
        return known if known is not None and known != NETWORK_PASSPORT else NETWORK_YAHOO

    def _sendUUM(self, command: Command, result: DeliveryResult) -> "Deferred[DeliveryResult]":
        if self._ended_:
            return fail(ConnectionLost("the session has ended"))
        try:
            sent = self.protocol.sendCommand(
                "UUM", *command.arguments, payload=command.payload, timeout=self.uumGracePeriod
            )
        except ValueError as e:
            return fail(e)
        return acceptedUnlessRefused(sent, result)
