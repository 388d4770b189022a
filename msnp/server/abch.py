# -*- test-case-name: test.test_server_abch -*-
"""
The local network's ABCH services: C{/abservice/SharingService.asmx} and
C{/abservice/abservice.asmx}. This module is their common front (ticket
check, dispatch, envelope, faults); the actions themselves are in
L{msnp.server.sharing} and L{msnp.server.addressbook}.

They serve the memberships and address books of the L{AccountStore} in the
shapes of the reference's section 8.3 (steps H2 and H3), and apply the
changes a client makes (reference sections 3.8 and 3.9) to the same store,
so the notification server routes presence by exactly what the SOAP
services say.

Behaviour a client must already cope with on the real service or the
emulators (reference section 10.3) is reproduced on purpose: a request
with an unknown C{contacts.msn.com} ticket (or none) gets a bare HTTP 403
with no SOAP body, a ticket issued here but past its lifetime the SOAP
fault C{q0:BadContextToken} with HTTP 500 (the client renews its tokens
and retries, reference sections 3.2 and 7.4), and an unknown method gets a
SOAP fault with HTTP 200. Other faults come with HTTP 500, as SOAP 1.1
prescribes, and carry
C{detail/errorcode} (C{InvalidPassportUser}, C{ContactDoesNotExist},
C{GroupDoesNotExist}, C{MemberDoesNotExist}, C{GroupAlreadyExists},
C{InvalidArgument}).

Every text value that goes into a response is escaped here; nothing from
a request is ever echoed unescaped.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.error import UnsupportedMethod
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from msnp.server.accounts import Account, AccountStore, AddressBookState, TicketCheck, TicketGrant, TicketState
from msnp.server.abchdelta import DeltaJournal
from msnp.server.addressbook import AddressBookService
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits, summarise
from msnp.server.sharing import SharingService
from msnp.server.soapservice import ServiceFault, isoTime, textAt

# The namespaces, action prefix and personal address-book id are the ones
# the client sends; sharing them keeps both sides of the wire in step.
from msnp.namespaces import (
    AB_NS as AB_NS,
    ACTION_PREFIX as ACTION_PREFIX,
    PERSONAL_AB_ID as PERSONAL_AB_ID,
    SOAP_NS as SOAP_NS,
    XSD_NS as XSD_NS,
    XSI_NS as XSI_NS,
)
from msnp.xmlsafe import XMLError, child, escapeText, findPath, localName, parseXML

from msnp.server.nscircles import CircleActions, CircleHub

log = Logger()

SERVICE_VERSION = "15.01.1408.0000"
#: A real request is a few KB; anything far larger is refused unread.
MAX_REQUEST_BYTES = 1024 * 1024

#: The callback type of C{onChange}: the account whose lists changed and
#: the SOAP action that changed them.
ChangeCallback = Callable[[Account, str], None]

_MUTATING = frozenset(
    {
        "AddMember",
        "DeleteMember",
        "ABContactAdd",
        "ABContactDelete",
        "ABContactUpdate",
        "ABGroupAdd",
        "ABGroupDelete",
        "ABGroupUpdate",
        "ABGroupContactAdd",
        "ABGroupContactDelete",
    }
)


class _ServiceEndpoint(Resource):
    """
    One C{.asmx} endpoint: POSTs go to the L{ABCHResource} with the
    actions this endpoint serves.
    """

    isLeaf = True

    def __init__(self, abch: "ABCHResource", name: str, actions: dict[str, Callable[[Account, Element], str]]) -> None:
        super().__init__()
        self.abch = abch
        self.name = name
        self.actions = actions

    def render_POST(self, request: Request) -> bytes:
        return self.abch.handle(request, self.name, self.actions)

    def render_HEAD(self, request: Request) -> bytes:
        """
        C{HEAD} is answered like C{GET}: 405, only C{POST} is served
        (twisted.web would otherwise look for a C{render_GET} and fail
        with a 500).
        """
        raise UnsupportedMethod((b"POST",))


class ABCHResource(Resource):
    """
    The C{/abservice} resource: children C{SharingService.asmx} and
    C{abservice.asmx} (names matched case-insensitively).

    @ivar store: the L{AccountStore} served.
    @ivar onChange: called as C{onChange(account, action)} after every
        successful call that changed C{account}'s lists, groups or
        settings; errors it raises are logged and ignored.
    @ivar changeOrigin: while C{onChange} runs, the L{TicketGrant} whose
        contacts ticket made the request (so the callback can tell which
        signed-in place caused the change); L{None} at any other time.
    """

    def __init__(
        self,
        store: AccountStore,
        clock: Optional[IReactorTime] = None,
        onChange: Optional[ChangeCallback] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        circles: Optional[CircleHub] = None,
    ) -> None:
        """
        @param clock: the source of the timestamps in responses; the
            system time when L{None}.
        @param circles: the network's circles; with them the circle calls
            are served and the personal book lists the circles
            (L{msnp.server.nscircles.CircleActions}).
        """
        super().__init__()
        self.store = store
        self.limits = limits
        self.clock = clock
        self.onChange = onChange
        self.changeOrigin: Optional[TicketGrant] = None
        #: While a handler runs, the grant whose ticket made the request.
        self.callOrigin: Optional[TicketGrant] = None
        #: The snapshots behind delta answers (L{msnp.server.abchdelta}).
        self.membershipDeltas = DeltaJournal()
        self.addressBookDeltas = DeltaJournal()
        self.sharingService = SharingService(self)
        self.addressBookService = AddressBookService(self)
        sharingActions = self.sharingService.actions()
        addressBookActions = self.addressBookService.actions()
        if circles is not None:
            CircleActions(self, circles).install(sharingActions, addressBookActions)
        self._sharing = _ServiceEndpoint(self, "SharingService.asmx", sharingActions)
        self._addressBook = _ServiceEndpoint(self, "abservice.asmx", addressBookActions)

    def getChild(self, path: bytes, request: Request) -> IResource:
        name = path.lower()
        if name == b"sharingservice.asmx":
            return self._sharing
        if name == b"abservice.asmx":
            return self._addressBook
        return notFound()

    # -- plumbing ---------------------------------------------------------------

    def now(self) -> float:
        """
        The current time on the injected clock (the system time without
        one), so tests control the timestamps of responses.
        """
        return self.clock.seconds() if self.clock is not None else time.time()

    def lastChangeOf(self, account: Account) -> str:
        """
        When C{account}'s lists last changed through these services, as the
        C{xsd:dateTime} text the responses carry (the creation time of its
        ABCH state if they never changed).
        """
        return isoTime(self.extrasFor(account).lastChange)

    def moveLastChange(self, account: Account) -> str:
        """
        Move C{account}'s C{lastChange} forward (to now, and at least a
        millisecond past the old one) and return its new text: the lists
        changed without a call of these services (L{msnp.server.abchdelta}).
        """
        extras = self.extrasFor(account)
        extras.lastChange = max(self.now(), extras.lastChange + 0.001)
        return isoTime(extras.lastChange)

    def extrasFor(self, account: Account) -> AddressBookState:
        """
        The ABCH-only state of C{account}, created on first use and kept
        on the account, so a resource built anew over the same store
        answers with the same ids and cache key.
        """
        extras = account.addressBookState
        if extras is None:
            now = self.now()
            extras = AddressBookState(
                meContactId=str(uuid.uuid4()),
                created=now,
                lastChange=now,
                cacheKey="12r1:" + secrets.token_urlsafe(24),
                sessionId=str(uuid.uuid4()),
            )
            account.addressBookState = extras
        return extras

    def handle(
        self,
        request: Request,
        service: str,
        actions: dict[str, Callable[[Account, Element], str]],
    ) -> bytes:
        """
        Serve one POST: read, check the ticket, dispatch, answer.
        """
        assert request.content is not None
        data = request.content.read(MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            request.setResponseCode(413)
            return b""
        try:
            root = parseXML(data, MAX_REQUEST_BYTES)
        except XMLError as e:
            log.info("ABCH {service}: malformed request ({error})", service=service, error=str(e))
            return self._fault(request, None, "", ServiceFault("InvalidArgument", "The request is not well-formed XML.", 400))
        body = child(root, "Body")
        method = body[0] if body is not None and len(body) else None
        action = (request.getHeader("SOAPAction") or "").strip().strip('"').strip()
        action = action.rsplit("/", 1)[-1]
        if not action and method is not None:
            action = localName(method.tag)
        ticket = textAt(findPath(root, "Header", "ABAuthHeader", "TicketToken"))
        check = self.store.checkContactsTicket(ticket) if ticket else TicketCheck(TicketState.UNKNOWN)
        if check.state is TicketState.EXPIRED:
            # A ticket we issued whose lifetime is over: the client is
            # expected to renew its tokens and retry (reference 3.2, 7.4).
            log.info("ABCH {service}: expired ticket refused", service=service)
            return self._fault(
                request, None, action,
                ServiceFault("BadContextToken", "Ticket has expired.", 500, "q0:BadContextToken"),
            )
        account = check.account
        if account is None:
            log.info("ABCH {service}: request without a valid ticket refused", service=service)
            request.setResponseCode(403)
            return b""
        handler = actions.get(action)
        if handler is None or method is None:
            log.info("ABCH {service}: unknown action {action} from {account}",
                     service=service, action=summarise(action, self.limits.logArgument), account=account.email)
            return self._fault(
                request, account, action,
                ServiceFault("InvalidArgument", f"Unknown SOAP action {action!r} on {service}.",
                       200, "soap:Server"),
            )
        extras = self.extrasFor(account)
        clientKey = textAt(findPath(root, "Header", "ABApplicationHeader", "CacheKey"))
        self.callOrigin = check.grant
        try:
            responseBody = handler(account, method)
        except ServiceFault as fault:
            log.info("ABCH {action} for {account} refused: {code}",
                     action=action, account=account.email, code=fault.errorCode)
            return self._fault(request, account, action, fault)
        finally:
            self.callOrigin = None
        log.info("ABCH {action} for {account}", action=action, account=account.email)
        if action in _MUTATING:
            extras.lastChange = self.now()
            if self.onChange is not None:
                self.changeOrigin = check.grant
                try:
                    self.onChange(account, action)
                except Exception:
                    log.failure("ABCH onChange callback failed for {action}", action=action)
                finally:
                    self.changeOrigin = None
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        return self._envelope(request, extras, clientKey, responseBody)

    def _serviceHeader(self, request: Request, extras: AddressBookState, clientKey: str) -> str:
        host = (request.getHeader("host") or "127.0.0.1").strip()
        changed = "false" if clientKey == extras.cacheKey else "true"
        return (
            f'<ServiceHeader xmlns="{AB_NS}"><Version>{SERVICE_VERSION}</Version>'
            f"<CacheKey>{escapeText(extras.cacheKey)}</CacheKey>"
            f"<CacheKeyChanged>{changed}</CacheKeyChanged>"
            f"<PreferredHostName>{escapeText(host)}</PreferredHostName>"
            f"<SessionId>{escapeText(extras.sessionId)}</SessionId></ServiceHeader>"
        )

    def _envelope(self, request: Request, extras: Optional[AddressBookState], clientKey: str, body: str) -> bytes:
        header = ""
        if extras is not None:
            header = f"<soap:Header>{self._serviceHeader(request, extras, clientKey)}</soap:Header>"
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
            f"{header}<soap:Body>{body}</soap:Body></soap:Envelope>"
        ).encode("utf-8")

    def _fault(self, request: Request, account: Optional[Account], action: str, fault: ServiceFault) -> bytes:
        request.setResponseCode(fault.httpStatus)
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        # The real service qualified its own fault codes with a prefix bound
        # to the address-book namespace (C{q0:BadContextToken}).
        namespace = f' xmlns:q0="{AB_NS}"' if fault.faultCode.startswith("q0:") else ""
        body = (
            "<soap:Fault>"
            f"<faultcode{namespace}>{escapeText(fault.faultCode)}</faultcode>"
            f"<faultstring>{escapeText(fault.message)}</faultstring>"
            f"<faultactor>{escapeText(ACTION_PREFIX + action)}</faultactor>"
            "<detail>"
            f'<errorcode xmlns="{AB_NS}">{escapeText(fault.errorCode)}</errorcode>'
            f'<errorstring xmlns="{AB_NS}">{escapeText(fault.message)}</errorstring>'
            f'<machineName xmlns="{AB_NS}">msnp-local</machineName>'
            "</detail></soap:Fault>"
        )
        extras = self.extrasFor(account) if account is not None else None
        return self._envelope(request, extras, "", body)
