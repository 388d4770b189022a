# -*- test-case-name: test.test_soap_client -*-
"""
What every ABCH (address book and sharing service) call has in common.

Each call is one SOAP 1.1 POST carrying two headers: C{ABApplicationHeader}
(application id, partner scenario, the service's last C{CacheKey}) and
C{ABAuthHeader} (the C{contacts.msn.com} ticket). The answer is either the
method's response element or a C{soap:Fault}, and a fault may come with
HTTP 500 as well as with HTTP 200 (reference section 10.3), so every body is
checked for one whatever the status (the first child of C{Body} only). A service that refuses the ticket
answers a bare HTTP 403.

The ticket is a credential: it is read from a provider at each call (so a
renewed ticket is used at once) and never logged. Tickets expire; the
service then answers the fault C{BadContextToken} (reference sections 3.2
and 7.4). A service given a C{renewTicket} callable renews the ticket once
and repeats the call once; the calls of one session that hit the fault at
the same time share a single renewal (one SSO request).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.errors import MSNPError, ServiceError
from msnp.namespaces import AB_NS, ACTION_PREFIX, SOAP_NS, SOAPENC_NS, XSD_NS, XSI_NS
from msnp.http import DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_BODY_BYTES
from msnp.soap.post import DetailedFault, postSOAP, readDetailedFault, soapBody
from msnp.xmlsafe import (
    child,
    escapeText,
    findPath,
    localName,
    textOf,
)

log = Logger()

#: The application id WLM 2009 sends (reference section 3.2).
APPLICATION_ID = "AAD9B99B-58E6-4F23-B975-D9EC1F9EC24A"
#: The fault code (after any namespace prefix) of an expired ticket.
EXPIRED_TICKET_FAULT = "BadContextToken"

#: Renews the session's C{contacts.msn.com} ticket (a new SSO request) so
#: that the ticket provider returns the new one; fires with L{None} or
#: fails with the renewal's error.
RenewTicket = Callable[[], "Deferred[None]"]


# -- reading ABCH fields (shared by the sharing and address-book parsers) ------


def optionalInt(text: str) -> Optional[int]:
    """
    The integer in C{text}, or L{None}: ids and CIDs may be missing or
    garbled in a hostile or damaged answer, and one bad field must not
    fail a whole download.
    """
    try:
        return int(text.strip())
    except ValueError:
        return None


def isTrue(text: str) -> bool:
    """
    Whether an C{xsd:boolean} field says C{true}; the ABCH writes it in
    lower case, but nothing is lost by not relying on that.
    """
    return text.strip().lower() == "true"


def annotationsOf(holder: Optional[Element]) -> dict[str, str]:
    """
    The C{Annotation} name/value pairs of an C{Annotations} element (an
    empty dict when there is none). Both services carry per-contact
    settings this way (C{MSN.IM.BLP}, C{MSN.IM.InviteMessage}, ...).
    """
    found: dict[str, str] = {}
    if holder is None:
        return found
    for annotation in holder:
        if localName(annotation.tag) != "Annotation":
            continue
        # Name and Value in one scan of the annotation's children.
        name: Optional[str] = None
        value: Optional[str] = None
        for part in annotation:
            tag = localName(part.tag)
            if tag == "Name" and name is None:
                name = part.text or ""
            elif tag == "Value" and value is None:
                value = part.text or ""
        name = (name or "").strip()
        if name:
            # The names repeat in every contact and every session
            # (MSN.IM.BLP, ...): one copy each (issue 13).
            found[sys.intern(name)] = value or ""
    return found


class ABCHFault(DetailedFault):
    """
    An ABCH service answered with a SOAP fault.

    @ivar errorCode: the text of C{detail/errorcode} (C{InvalidPassportUser},
        C{ABDoesNotExist}, C{FullSyncRequired}, ...), or L{None}; this is
        what a caller should branch on.
    """


class _SharedRenewal:
    """
    One ticket renewal in progress, awaited by every call that found the
    ticket expired meanwhile.
    """

    __slots__ = ("_waiters", "_outcome", "finished")

    def __init__(self) -> None:
        self._waiters: list[Deferred[None]] = []
        self._outcome: Optional[Failure] = None
        self.finished = False

    def start(self, renew: RenewTicket, whenDone: Callable[[], None]) -> None:
        def finish(result: object) -> None:
            self.finished = True
            self._outcome = result if isinstance(result, Failure) else None
            whenDone()
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                self._tell(waiter)

        maybeDeferred(renew).addBoth(finish)

    def _tell(self, waiter: "Deferred[None]") -> None:
        if waiter.called:  # the waiting call was cancelled
            return
        if self._outcome is None:
            waiter.callback(None)
        else:
            waiter.errback(self._outcome)

    def wait(self) -> "Deferred[None]":
        """
        A L{Deferred} firing (or failing) with the renewal's outcome.
        """
        waiter: Deferred[None] = Deferred()
        if self.finished:
            self._tell(waiter)
        else:
            self._waiters.append(waiter)
        return waiter


@dataclass(slots=True)
class ABCHCache:
    """
    What the ABCH clients of one session share between calls: the latest
    C{CacheKey} and C{PreferredHostName}, and the ticket renewal under way.

    One instance is shared by the sharing and address-book clients of a
    session, because the service hands out one key for both (the key of the
    C{FindMembership} answer goes into the next C{ABFindContactsPaged}),
    and because both use the same ticket, so one renewal serves both.
    The preferred host is only recorded: the configured URLs stay in use,
    since a local or revival server may name a host the client cannot reach.
    """

    cacheKey: Optional[str] = None
    preferredHostName: Optional[str] = None
    renewal: Optional[_SharedRenewal] = field(default=None, repr=False, compare=False)


def isExpiredTicketFault(error: BaseException) -> bool:
    """
    Whether C{error} is the ABCH's "ticket expired" fault: an L{ABCHFault}
    whose fault code ends with C{BadContextToken}, whatever its prefix
    (C{q0:}, C{soap:}, none).
    """
    if not isinstance(error, ABCHFault):
        return False
    return (error.faultCode or "").strip().endswith(EXPIRED_TICKET_FAULT)


def buildEnvelope(
    body: str, ticket: str, scenario: str, cacheKey: Optional[str] = None
) -> bytes:
    """
    Wrap the method element C{body} (already XML text) into a SOAP 1.1
    envelope with the two ABCH headers (reference section 3.2).

    The result reproduces the requests of reference section 8.3 byte for byte.
    """
    key = f"<CacheKey>{escapeText(cacheKey)}</CacheKey>" if cacheKey else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" '
        f'xmlns:xsd="{XSD_NS}" xmlns:soapenc="{SOAPENC_NS}">'
        "<soap:Header>"
        f'<ABApplicationHeader xmlns="{AB_NS}">'
        f"<ApplicationId>{APPLICATION_ID}</ApplicationId>"
        "<IsMigration>false</IsMigration>"
        f"<PartnerScenario>{escapeText(scenario)}</PartnerScenario>"
        f"{key}"
        "</ABApplicationHeader>"
        f'<ABAuthHeader xmlns="{AB_NS}">'
        "<ManagedGroupRequest>false</ManagedGroupRequest>"
        f"<TicketToken>{escapeText(ticket)}</TicketToken>"
        "</ABAuthHeader>"
        "</soap:Header>"
        f"<soap:Body>{body}</soap:Body>"
        "</soap:Envelope>"
    ).encode("utf-8")


def faultFromDocument(root: Element, status: Optional[int]) -> Optional[ABCHFault]:
    """
    The L{ABCHFault} a response document carries, or L{None}.
    """
    return readDetailedFault(root, status, ABCHFault, "ABCH fault", useErrorString=True)


class ABCHService:
    """
    The base of the ABCH SOAP clients: one method, L{call}.

    @ivar url: the service URL (C{.../SharingService.asmx} or
        C{.../abservice.asmx}).
    @ivar cache: the L{ABCHCache} shared with the session's other ABCH client.
    """

    #: Largest accepted response body: a big address book is a few MB.
    maxBodyBytes = DEFAULT_MAX_BODY_BYTES

    # Two of these per signed-in session.
    __slots__ = ("httpClient", "url", "ticketProvider", "clock", "timeout", "cache", "renewTicket")

    def __init__(
        self,
        httpClient: Any,
        url: str,
        ticketProvider: Callable[[], str],
        clock: IReactorTime,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        cache: Optional[ABCHCache] = None,
        renewTicket: Optional[RenewTicket] = None,
    ) -> None:
        """
        @param httpClient: a L{treq.client.HTTPClient} or L{treq.testing.StubTreq}.
        @param ticketProvider: returns the current C{contacts.msn.com} ticket.
        @param clock: the clock the request deadlines run on.
        @param timeout: seconds allowed for each call.
        @param cache: share one L{ABCHCache} between the sharing and
            address-book clients; a fresh one by default.
        @param renewTicket: renews the ticket when the service says it has
            expired (see L{call}); without it that fault is simply raised.
        """
        self.httpClient = httpClient
        self.url = url
        self.ticketProvider = ticketProvider
        self.clock = clock
        self.timeout = timeout
        self.cache = cache if cache is not None else ABCHCache()
        self.renewTicket = renewTicket

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    @property
    def cacheKey(self) -> Optional[str]:
        """
        The last C{CacheKey} the service returned (sent with the next call).
        """
        return self.cache.cacheKey

    def call(
        self, action: str, body: str, scenario: str, renewTicket: Optional[RenewTicket] = None
    ) -> "Deferred[Element]":
        """
        POST one ABCH method call.

        When the service answers that the ticket has expired (a fault code
        ending with C{BadContextToken}) and a renewal is available, the
        ticket is renewed once and the same call made once more with the
        ticket the provider then returns. Calls of the same session (same
        L{ABCHCache}) that meet the fault while a renewal is under way wait
        for it instead of starting another; a call whose ticket was already
        replaced by the time its fault arrived simply retries.

        @param action: the method name (C{FindMembership}, C{ABContactAdd}, ...).
        @param body: the method element as XML text (values already escaped).
        @param scenario: the C{PartnerScenario}.
        @param renewTicket: the renewal for this call; the service's own
            (L{renewTicket}) when L{None}.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the first child of C{soap:Body}
            (the C{...Response} element), or failing with L{ABCHFault} for a
            SOAP fault (any HTTP status; also C{BadContextToken} when there is
            no renewal or the renewed ticket is refused as well) and
            L{ServiceError} for a transport error, a timeout, an HTTP error
            status without a fault (403: the ticket was refused), or a body
            that is not a SOAP response (L{msnp.errors.UnsafeXML} for a
            document with a DTD). A failed renewal fails the call with the
            renewal's error (L{msnp.errors.AuthenticationError} when the
            password is refused, L{ServiceError} otherwise).
        """
        renew = renewTicket if renewTicket is not None else self.renewTicket
        return ensureDeferred(self._call(action, body, scenario, renew))

    async def _call(self, action: str, body: str, scenario: str, renew: Optional[RenewTicket]) -> Element:
        ticket = self.ticketProvider()
        try:
            return await self._post(action, body, scenario, ticket)
        except ABCHFault as fault:
            if renew is None or not isExpiredTicketFault(fault):
                raise
            log.info("ABCH {action}: the contacts ticket has expired; renewing it", action=action)
        await self._renewed(ticket, renew)
        # Once only: a second BadContextToken is raised like any fault.
        return await self._post(action, body, scenario, self.ticketProvider())

    async def _renewed(self, usedTicket: str, renew: RenewTicket) -> None:
        """
        Make sure the ticket is newer than C{usedTicket}: join the renewal
        under way, start one, or (the ticket already changed) do nothing.
        """
        shared = self.cache.renewal
        if shared is None:
            if self.ticketProvider() != usedTicket:
                return
            shared = _SharedRenewal()
            self.cache.renewal = shared

            def done(shared: _SharedRenewal = shared) -> None:
                if self.cache.renewal is shared:
                    self.cache.renewal = None

            shared.start(renew, done)
        try:
            await shared.wait()
        except (MSNPError, CancelledError):
            raise
        except Exception as e:
            raise ServiceError(f"could not renew the contacts ticket: {e}") from e

    async def _post(self, action: str, body: str, scenario: str, ticket: str) -> Element:
        envelope = buildEnvelope(body, ticket, scenario, self.cache.cacheKey)
        log.debug("ABCH {action} ({scenario}) to {url}", action=action, scenario=scenario, url=self.url)
        what = f"ABCH {action}"

        def emptyBody(status: int) -> str:
            return f"{what}: empty response (HTTP {status})" if 200 <= status < 300 else f"{what}: HTTP {status}"

        root, status = await postSOAP(
            self.httpClient, self.url, envelope, f"{ACTION_PREFIX}{action}", self.clock, self.timeout,
            self.maxBodyBytes, what, faultFromDocument, emptyBody,
        )
        header = findPath(root, "Header", "ServiceHeader")
        if header is not None:
            key = textOf(header, "CacheKey").strip()
            if key:
                self.cache.cacheKey = key
            host = textOf(header, "PreferredHostName").strip()
            if host:
                self.cache.preferredHostName = host
        return soapBody(root, what, status)
