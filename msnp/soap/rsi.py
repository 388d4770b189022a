# -*- test-case-name: test.test_soap_rsi -*-
"""
The RSI service: list, fetch and delete offline messages (reference 6.12,
Q.1.1, Q.1.5-Q.1.7).

Three SOAP 1.1 methods on one URL, C{GetMetadata}, C{GetMessage} and
C{DeleteMessages}, each authenticated by a C{PassportCookie} header made
from the C{messenger.msn.com} ticket cut into its C{t} and C{p} halves.
Unlike the ABCH there is no application header and no cache key.

Every call runs under L{msnp.http.postXML}: one deadline on an injected
clock for the whole exchange and a cap on the body, so a stalled or
endless answer fails the call instead of hanging or filling memory. A
fault arrives as L{RSIFault} (with HTTP 200 or 500 alike), anything else
that is not a usable answer as L{ServiceError}. The ticket is read from a
provider at each call and never logged.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.endpoints import HISTORICAL_RSI as _HISTORICAL_RSI
from msnp.errors import ServiceError
from msnp.http import DEFAULT_HTTP_TIMEOUT
from msnp.oim import MailData, isValidMessageId, parseMailData
from msnp.namespaces import MAX_DELETE_IDS, RSI_NS, SOAP_NS, XSD_NS, XSI_NS
from msnp.soap.post import postSOAP, soapBody
from msnp.xmlsafe import child, escapeText, localName, soapFault, textOf

log = Logger()

#: The prefix of every RSI C{SOAPAction}.
RSI_ACTION_PREFIX = RSI_NS + "/"
#: The historical service (switched off); the default of L{Endpoints.rsi}.
HISTORICAL_RSI = _HISTORICAL_RSI
#: Cap on an RSI answer: a message is a few KB, a long list some hundreds.
MAX_RSI_BODY_BYTES = 2 * 1024 * 1024


class RSIFault(ServiceError):
    """
    The RSI service answered with a SOAP fault.

    L{isClientFault} tells a refused request (C{soap:Client}: an unknown
    or already deleted message id, a ticket that matches no session) from
    a service in trouble (C{soap:Server} and everything else), which is
    what decides whether repeating the call can help.
    """

    @property
    def isClientFault(self) -> bool:
        """
        Whether the fault code's local part is C{Client} (any prefix).
        """
        return (self.faultCode or "").rpartition(":")[2].strip() == "Client"

    @property
    def isExpiredTicket(self) -> bool:
        """
        Whether the fault says the ticket has expired
        (C{AuthenticationFailed}, any prefix, as the OIM services answer).
        """
        return (self.faultCode or "").rpartition(":")[2].strip() == "AuthenticationFailed"


def splitTicket(ticket: str) -> tuple[str, str]:
    """
    Cut a C{t=...&p=...} ticket into its C{t} and C{p} values (reference
    Q.1.1): at the first C{&}, then each half at its first C{=}. A ticket
    without the C{t=} prefix is taken whole as C{t}.
    """
    first, _, second = ticket.partition("&")
    name, sep, value = first.partition("=")
    t = value if sep and name.strip() == "t" else first
    pName, pSep, pValue = second.partition("=")
    p = pValue if pSep and pName.strip() == "p" else ""
    return t, p


def buildRSIEnvelope(body: str, ticket: str) -> bytes:
    """
    Wrap the method element C{body} (XML text, values escaped) into the
    RSI envelope of reference 6.12, with the C{PassportCookie} header.
    """
    t, p = splitTicket(ticket)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}" xmlns:soap="{SOAP_NS}">'
        "<soap:Header>"
        f'<PassportCookie xmlns="{RSI_NS}"><t>{escapeText(t)}</t><p>{escapeText(p)}</p></PassportCookie>'
        "</soap:Header>"
        f"<soap:Body>{body}</soap:Body>"
        "</soap:Envelope>"
    ).encode("utf-8")


def getMessageBody(messageId: str, markAsRead: bool = False) -> str:
    """
    The C{GetMessage} element.
    """
    return (
        f'<GetMessage xmlns="{RSI_NS}"><messageId>{escapeText(messageId)}</messageId>'
        f"<alsoMarkAsRead>{'true' if markAsRead else 'false'}</alsoMarkAsRead></GetMessage>"
    )


def deleteMessagesBody(messageIds: Iterable[str]) -> str:
    """
    The C{DeleteMessages} element.
    """
    ids = "".join(f"<messageId>{escapeText(i)}</messageId>" for i in messageIds)
    return f'<DeleteMessages xmlns="{RSI_NS}"><messageIds>{ids}</messageIds></DeleteMessages>'


def getMetadataBody() -> str:
    """
    The C{GetMetadata} element.
    """
    return f'<GetMetadata xmlns="{RSI_NS}"/>'


def faultIn(root: Element, status: Optional[int], action: str) -> Optional[RSIFault]:
    """
    The L{RSIFault} a response document carries, or L{None}.
    """
    fault = soapFault(root)
    if fault is None:
        return None
    code = textOf(fault, "faultcode").strip()[:200] or None
    reason = textOf(fault, "faultstring").strip()[:500] or None
    message = f"RSI {action} fault {code or '(no code)'}: {reason or 'no reason given'}"
    if status is not None:
        message += f" (HTTP {status})"
    return RSIFault(message, status=status, faultCode=code, faultString=reason)


def parseMetadataResponse(response: Element) -> MailData:
    """
    Read a C{GetMetadataResponse}: the C{MD} as a child element (pidgin,
    MSNPSharp, the schema) or as escaped text (papyon, Escargot).

    @raise MalformedMailData: neither form holds a readable C{MD}.
    """
    md = next((e for e in response.iter() if localName(e.tag) == "MD"), None)
    if md is not None:
        return parseMailData(md)
    return parseMailData("".join(response.itertext()))


class RSIService:
    """
    Client of C{rsi.asmx}.

    @ivar url: the service URL.
    """

    maxBodyBytes = MAX_RSI_BODY_BYTES

    def __init__(
        self,
        httpClient: Any,
        url: str,
        ticketProvider: Callable[[], str],
        clock: IReactorTime,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        renewTicket: Optional[Callable[[], "Deferred[None]"]] = None,
    ) -> None:
        """
        @param httpClient: a L{treq.client.HTTPClient} or L{treq.testing.StubTreq}.
        @param ticketProvider: returns the current C{messenger.msn.com} ticket.
        @param clock: the clock the deadlines run on.
        @param timeout: seconds allowed for each call, body included.
        @param renewTicket: renews the session's tickets (a new SSO
            request) so that C{ticketProvider} returns a fresh one; when
            given, a call answered "ticket expired" renews once and is
            repeated once. Calls meeting the fault during a renewal wait
            for it instead of starting another.
        """
        self.httpClient = httpClient
        self.url = url
        self.ticketProvider = ticketProvider
        self.clock = clock
        self.timeout = timeout
        self.renewTicket = renewTicket
        self._renewalWaiters: Optional[list[Deferred[None]]] = None

    def __repr__(self) -> str:
        return f"<RSIService {self.url}>"

    def getMetadata(self) -> "Deferred[MailData]":
        """
        The list of waiting messages (after a C{Mail-Data: too-large}).

        @return: a L{Deferred} firing with L{MailData}, or failing with
            L{RSIFault}, L{ServiceError}, or L{msnp.oim.MalformedMailData}.
        """
        return ensureDeferred(self._getMetadata())

    async def _getMetadata(self) -> MailData:
        response = await self._call("GetMetadata", getMetadataBody())
        return parseMetadataResponse(response)

    def getMessage(self, messageId: str, markAsRead: bool = False) -> "Deferred[str]":
        """
        The RFC 822 text of one message (decode it with
        L{msnp.oim.decodeOfflineMessage}).

        @return: a L{Deferred} firing with the text, or failing with
            L{RSIFault}, L{ServiceError} (no C{GetMessageResult}, HTTP
            error without a fault, timeout, transport),
            L{msnp.http.BodyTooLarge}, or
            L{ValueError} for an id that is not a server's id.
        """
        return ensureDeferred(self._getMessage(messageId, markAsRead))

    async def _getMessage(self, messageId: str, markAsRead: bool) -> str:
        if not isValidMessageId(messageId):
            raise ValueError(f"not an offline message id: {messageId[:80]!r}")
        response = await self._call("GetMessage", getMessageBody(messageId, markAsRead))
        result = child(response, "GetMessageResult")
        if result is None:
            raise ServiceError("RSI GetMessage: the answer has no GetMessageResult")
        return result.text or ""

    def deleteMessages(self, messageIds: Iterable[str]) -> "Deferred[None]":
        """
        Delete messages (after they were shown): on the real service and
        on Escargot, all of them or none.

        @return: a L{Deferred} firing with L{None}, or failing like
            L{getMessage} (L{ValueError} for no ids, too many, or a bad id).
        """
        return ensureDeferred(self._deleteMessages(list(messageIds)))

    async def _deleteMessages(self, messageIds: list[str]) -> None:
        if not messageIds or len(messageIds) > MAX_DELETE_IDS:
            raise ValueError(f"DeleteMessages takes 1 to {MAX_DELETE_IDS} ids, not {len(messageIds)}")
        for messageId in messageIds:
            if not isValidMessageId(messageId):
                raise ValueError(f"not an offline message id: {messageId[:80]!r}")
        await self._call("DeleteMessages", deleteMessagesBody(messageIds))

    async def _call(self, action: str, body: str) -> Element:
        """
        POST one call (renewing an expired ticket once, see L{__init__});
        the C{...Response} element, or the typed failure.
        """
        ticket = self.ticketProvider()
        try:
            return await self._post(action, body, ticket)
        except RSIFault as fault:
            if self.renewTicket is None or not fault.isExpiredTicket:
                raise
            log.info("RSI {action}: the ticket has expired; renewing it", action=action)
        if self.ticketProvider() == ticket:
            await self._renew()
        return await self._post(action, body, self.ticketProvider())

    def _renew(self) -> "Deferred[None]":
        """
        Join the renewal under way, or start one.
        """
        waiter: Deferred[None] = Deferred()
        if self._renewalWaiters is not None:
            self._renewalWaiters.append(waiter)
            return waiter
        self._renewalWaiters = [waiter]
        assert self.renewTicket is not None

        def finished(result: object) -> None:
            waiters, self._renewalWaiters = self._renewalWaiters or [], None
            for each in waiters:
                if each.called:
                    continue
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(None)

        maybeDeferred(self.renewTicket).addBoth(finished)
        return waiter

    async def _post(self, action: str, body: str, ticket: str) -> Element:
        envelope = buildRSIEnvelope(body, ticket)
        log.debug("RSI {action} to {url}", action=action, url=self.url)
        what = f"RSI {action}"
        root, status = await postSOAP(
            self.httpClient, self.url, envelope, f"{RSI_ACTION_PREFIX}{action}", self.clock, self.timeout,
            self.maxBodyBytes, what, lambda root, status: faultIn(root, status, action),
            lambda status: f"{what}: empty response (HTTP {status})",
        )
        response = soapBody(root, what, status)
        if localName(response.tag) != f"{action}Response":
            raise ServiceError(
                f"RSI {action}: unexpected answer <{localName(response.tag)}>", status=status
            )
        return response
