# -*- test-case-name: test.test_soap_rsi,test.test_rsi_loopback -*-
"""
The local network's RSI service: C{/rsi/rsi.asmx} (reference 6.12,
Q.1.5-Q.1.7, Q.1.9).

C{GetMetadata}, C{GetMessage} and C{DeleteMessages} over the
L{IOfflineMessageStore}, for the owner of the C{messenger.msn.com} ticket
in the C{PassportCookie} header only:

  - no ticket, or one never issued here: HTTP 403 with a C{soap:Client}
    fault (the client does not retry a refused request);
  - a ticket issued here but past its lifetime: HTTP 500 with the fault
    C{q0:AuthenticationFailed} and C{detail/RequiredAuthPolicy}, which
    tells a client to renew its tickets (as the OIM services did);
  - a message id that does not exist or waits for someone else: the same
    HTTP 500 C{soap:Client} fault for both, so ids cannot be probed; a
    C{DeleteMessages} naming any such id deletes nothing (Escargot);
  - an unknown method, a malformed or oversized request: C{soap:Client}
    faults; anything but POST: 405.

Which tickets are valid is asked of a L{MessengerTicketChecker}. The SSO
service already issues each login one remembered C{messenger.msn.com}
ticket (C{TicketGrant.webTicket}); the account store only lacks the lookup
by it (a C{checkWebTicket} twin of C{checkContactsTicket}).
L{IssuedMessengerTickets} is a stand-in with the same shape until then.
"""

from __future__ import annotations

import secrets
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.httproute import refuseUnlessPOST
from msnp.server.tickets import TicketCheck, TicketState
from msnp.server.offline import IOfflineMessageStore, getMessageText, mailDataDocument
from msnp.namespaces import SOAP_NS, XSD_NS, XSI_NS
from msnp.namespaces import MAX_DELETE_IDS, RSI_NS
from msnp.xmlsafe import XMLError, child, children, escapeText, findPath, localName, parseXML, textOf

log = Logger()

#: A real request is well under a kilobyte; larger ones are refused unread.
MAX_REQUEST_BYTES = 64 * 1024
#: The fault namespace of the OIM services.
_OIM_NS = "http://messenger.msn.com/ws/2004/09/oim/"

#: Classifies a presented C{messenger.msn.com} ticket, rebuilt from the
#: C{PassportCookie} halves as C{t=...&p=...} (the form the SSO issued),
#: like C{AccountStore.checkContactsTicket} does for the ABCH.
MessengerTicketChecker = Callable[[str], TicketCheck]
#: Told after a successful C{DeleteMessages}: the recipient and the ids
#: deleted (the NS sends the active-mail message, Q.1.4).
DeletedCallback = Callable[[Account, list[str]], None]


class IssuedMessengerTickets:
    """
    C{messenger.msn.com} tickets and whose they are, for a network whose
    account store cannot yet look them up (see the module docstring).
    Each expires with the store's ticket lifetime.
    """

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self._issued: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"<IssuedMessengerTickets {len(self._issued)} issued>"

    def issue(self, account: Account) -> str:
        """
        A fresh ticket C{t=...&p=} for C{account}, recorded.
        """
        ticket = f"t={secrets.token_urlsafe(48)}&p="
        self.remember(account, ticket)
        return ticket

    def remember(self, account: Account, ticket: str) -> None:
        """
        Record a ticket issued elsewhere (the SSO's) as C{account}'s.
        """
        self._issued[ticket] = (account.email, self.store.now() + self.store.ticketLifetime)

    def check(self, ticket: str) -> TicketCheck:
        """
        Classify a presented ticket (a L{MessengerTicketChecker}).
        """
        issued = self._issued.get(ticket)
        if issued is None:
            return TicketCheck(TicketState.UNKNOWN)
        email, expires = issued
        account = self.store.get(email)
        if account is None:
            return TicketCheck(TicketState.UNKNOWN)
        if self.store.now() >= expires:
            return TicketCheck(TicketState.EXPIRED)
        return TicketCheck(TicketState.VALID, account)


class _Fault(Exception):
    def __init__(self, code: str, reason: str, status: int = 500, detail: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.status = status
        self.detail = detail


_NO_SUCH_MESSAGE = "No such message."


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode("utf-8")


def _faultBody(fault: _Fault) -> bytes:
    detail = f"<detail>{fault.detail}</detail>" if fault.detail else ""
    return _envelope(
        f'<soap:Fault xmlns:q0="{_OIM_NS}"><faultcode>{escapeText(fault.code)}</faultcode>'
        f"<faultstring>{escapeText(fault.reason)}</faultstring>{detail}</soap:Fault>"
    )


class RSIResource(Resource):
    """
    C{rsi.asmx}: mount it as C{root.putChild(b"rsi", ...)} under a parent
    C{rsi} resource, or anywhere, since it is a leaf.
    """

    isLeaf = True

    def __init__(
        self,
        messages: IOfflineMessageStore,
        checkTicket: MessengerTicketChecker,
        onDeleted: Optional[DeletedCallback] = None,
    ) -> None:
        """
        @param messages: where the messages wait.
        @param checkTicket: says whose a C{t} value is (L{IssuedMessengerTickets.check}).
        @param onDeleted: told of each successful deletion.
        """
        super().__init__()
        self.messages = messages
        self.checkTicket = checkTicket
        self.onDeleted = onDeleted

    def render(self, request: Request) -> bytes:
        refused = refuseUnlessPOST(request, b"RSI")
        if refused is not None:
            return refused
        return self.render_POST(request)

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        try:
            body = request.content.read(MAX_REQUEST_BYTES + 1) if request.content else b""
            if len(body) > MAX_REQUEST_BYTES:
                raise _Fault("soap:Client", "Request too large.", 413)
            return self._serve(body)
        except _Fault as fault:
            request.setResponseCode(fault.status)
            return _faultBody(fault)
        except Exception:
            log.failure("RSI: request failed")
            request.setResponseCode(500)
            return _faultBody(_Fault("soap:Server", "Internal error."))

    def _serve(self, body: bytes) -> bytes:
        try:
            root = parseXML(body, MAX_REQUEST_BYTES)
        except XMLError as e:
            log.info("RSI: unreadable request: {error}", error=str(e))
            raise _Fault("soap:Client", "Schema validation error.") from None
        if localName(root.tag) != "Envelope":
            raise _Fault("soap:Client", "Schema validation error.")
        account = self._owner(findPath(root, "Header", "PassportCookie"))
        soapBody = child(root, "Body")
        if soapBody is None or len(soapBody) == 0:
            raise _Fault("soap:Client", "Schema validation error.")
        method = soapBody[0]
        action = localName(method.tag)
        if action == "GetMetadata":
            return self._getMetadata(account)
        if action == "GetMessage":
            return self._getMessage(account, method)
        if action == "DeleteMessages":
            return self._deleteMessages(account, method)
        log.info("RSI: unknown method {action}", action=action[:64])
        raise _Fault("soap:Client", "Unknown method.")

    def _owner(self, cookie: Optional[Element]) -> Account:
        t = textOf(cookie, "t").strip()
        p = textOf(cookie, "p").strip()
        check = self.checkTicket(f"t={t}&p={p}") if t else TicketCheck(TicketState.UNKNOWN)
        if check.state is TicketState.EXPIRED:
            log.info("RSI: expired ticket refused")
            raise _Fault(
                "q0:AuthenticationFailed", "Ticket has expired.", 500,
                f'<RequiredAuthPolicy xmlns="{_OIM_NS}">MBI_SSL</RequiredAuthPolicy>',
            )
        if check.state is not TicketState.VALID or check.account is None:
            log.info("RSI: request without a valid ticket refused")
            raise _Fault("soap:Client", "Authentication failed.", 403)
        return check.account

    def _getMetadata(self, account: Account) -> bytes:
        document = mailDataDocument(self.messages.listOfflineMessages(account.email))
        return _envelope(f'<GetMetadataResponse xmlns="{RSI_NS}">{document}</GetMetadataResponse>')

    def _getMessage(self, account: Account, method: Element) -> bytes:
        messageId = textOf(method, "messageId").strip()
        waiting = {m.messageId: m for m in self.messages.listOfflineMessages(account.email)}
        message = waiting.get(messageId)
        if message is None:
            raise _Fault("soap:Client", _NO_SUCH_MESSAGE)
        # CR LF as Escargot writes it; the XML parser hands the client LF.
        text = escapeText(getMessageText(message))
        return _envelope(
            f'<GetMessageResponse xmlns="{RSI_NS}"><GetMessageResult>{text}</GetMessageResult>'
            "</GetMessageResponse>"
        )

    def _deleteMessages(self, account: Account, method: Element) -> bytes:
        ids = _childIds(method)
        if not ids or len(ids) > MAX_DELETE_IDS:
            raise _Fault("soap:Client", "Schema validation error.")
        waiting = {m.messageId for m in self.messages.listOfflineMessages(account.email)}
        if any(i not in waiting for i in ids):
            raise _Fault("soap:Client", _NO_SUCH_MESSAGE)
        deleted = self.messages.deleteOfflineMessages(account.email, ids)
        log.info("RSI: {account} deleted {count} offline messages", account=account.email, count=len(deleted))
        if self.onDeleted is not None and deleted:
            try:
                self.onDeleted(account, deleted)
            except Exception:
                log.failure("RSI: deletion callback failed")
        return _envelope(f'<DeleteMessagesResponse xmlns="{RSI_NS}"/>')


def _childIds(method: Element) -> list[str]:
    """
    The C{messageId} texts under C{method}'s C{messageIds}.
    """
    holder = child(method, "messageIds")
    return [textOf(e).strip() for e in children(holder, "messageId")] if holder is not None else []
