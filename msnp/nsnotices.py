# -*- test-case-name: test.test_notification,test.test_uum,test.test_offline -*-
"""
The account messages the NS client receives: C{MSG Hotmail Hotmail} (the
account profile, mail data and OIM notifications, system messages),
C{UBM} (a message from a contact on another network) and C{NOT} (an
address-book or circle change elsewhere, or an alert).

L{AccountNotices} is mixed into L{msnp.notification.NotificationProtocol},
whose state (C{account}, C{state}, C{observer}, C{session}, C{listener})
it uses; it is separate because these messages are not presence and are
only decoded here and handed on (to the observer or the
L{msnp.notification.INotificationListener}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.logger import Logger

from msnp.circles import CircleProtocolError, circleIdOfNotification
from msnp.errors import ServiceError
from msnp.interfaces import notifyObserver
from msnp.mime import parseMimeHeaders
from msnp.nsmessages import SessionState
from msnp.oim import MAIL_DATA_TYPES
from msnp.uum import MalformedNetworkMessage, parseUBM
from msnp.wire import Command
from msnp.xmlsafe import parseXML

if TYPE_CHECKING:  # pragma: no cover
    from msnp.notification import INotificationListener

__all__ = ["AccountNotices"]

log = Logger()

#: The C{NOT} site id of address-book change notifications (3.11).
_ABCH_SITE_ID = "45705"

class AccountNotices:
    """
    C{handle_MSG}, C{handle_UBM} and C{handle_NOT} of the NS connection,
    over the state it keeps (declared here, set by it).
    """

    account: str
    state: SessionState
    observer: Optional[object]
    session: Optional[object]
    listener: Optional["INotificationListener"]

    def handle_MSG(self, command: Command) -> None:
        """
        C{MSG Hotmail Hotmail len}: the account profile, mail data, or a
        system message, told apart by C{Content-Type}.
        """
        headers = parseMimeHeaders(command.payload or b"")
        contentType = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if contentType == "text/x-msmsgsprofile":
            # Kept as bytes, parsed on read (SessionState.hotmailProfile).
            self.state.profileHead = (command.payload or b"").replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
            notifyObserver(self.observer, "profileReceived", self.session, dict(headers))
        elif contentType == "application/x-msmsgssystemmessage":
            log.info("System message for {account}: {headers}", account=self.account, headers=headers)
        elif contentType in MAIL_DATA_TYPES:
            if self.listener is not None:
                self.listener.mailDataReceived(command.payload or b"")
        else:
            log.debug("Ignoring NS message of type {type}", type=contentType or "(none)")

    def handle_UBM(self, command: Command) -> None:
        """
        C{UBM sender net recipient net type len}: a message from a contact
        on another network (reference 4.14, Q.2). A malformed one, one for
        somebody else, or a copy of our own (MPOP) is logged and dropped.
        """
        try:
            message = parseUBM(command)
        except MalformedNetworkMessage as e:
            log.info("Ignoring malformed UBM: {error}", error=str(e))
            return
        if message.recipient != self.state.account:
            log.info("Ignoring a UBM for {recipient}", recipient=message.recipient)
            return
        if message.sender == self.state.account:
            log.debug("Ignoring a copy of our own UBM")
            return
        if self.listener is not None:
            self.listener.networkMessageReceived(message)

    def handle_NOT(self, command: Command) -> None:
        """
        C{NOT len}: an address-book change elsewhere (refresh through the
        roster) or an alert (logged).
        """
        try:
            circleId = circleIdOfNotification(command.payload or b"")
        except CircleProtocolError as e:
            log.info("Ignoring a malformed circle NOT: {error}", error=str(e))
            return
        if circleId is not None:
            if self.listener is not None:
                self.listener.circleNotified(circleId)
            return
        try:
            root = parseXML(command.payload or b"")
        except ServiceError as e:
            log.info("Ignoring malformed NOT: {error}", error=str(e))
            return
        if root.get("siteid") == _ABCH_SITE_ID and "ABCHInternal" in "".join(root.itertext()):
            if self.listener is not None:
                self.listener.addressBookChanged()
            return
        log.debug("Ignoring NOT notification (site {site})", site=root.get("siteid"))
