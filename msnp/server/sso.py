# -*- test-case-name: test.test_server_sso -*-
"""
The local network's Passport STS: C{/RST.srf} and C{/RST2.srf}.

It answers a token request the way login.live.com did, in the SOAP version
the request used, so both the WLM 2009 (RST2) form and the older RST form
work. The tickets and the C{messengerclear.live.com} proof key come from the
L{AccountStore}, which is what lets the notification server check the
ticket and the MBI response presented in C{USR SSO S} later.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from msnp.reactors import reactorOrDefault
from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.httproute import refuseUnlessPOST
from msnp.server.tickets import TicketGrant
from msnp.namespaces import CONTACTS, MESSENGER_CLEAR, MESSENGER_WEB, PASSPORT_TB, SOAP11_NS, SOAP12_NS, STORAGE
from msnp.server.limits import summarise
from msnp.server.roaming import StorageTickets
from msnp.server.throttle import SignInThrottle
from msnp.xmlsafe import XMLError, escapeText, findPath, iterByName, localName, parseXML

log = Logger()

#: Requests larger than this are refused unparsed (a real one is ~4 KB).
MAX_REQUEST_BYTES = 256 * 1024
#: More tokens than this in one request is not a client, it is abuse.
MAX_TOKENS = 32
#: How long issued tokens claim to be valid.
TOKEN_LIFETIME = 24 * 60 * 60

#: The fixed proof key of the C{Passport.NET/tb} token: nothing uses it (it
#: would only serve to renew tokens without the password), so a constant will do.
DUMMY_TB_SECRET = "0JQeaNqPOBUf+Gph/Fn3xc+f"
#: The opaque C{CipherValue} of the C{Passport.NET/tb} token.
DUMMY_TB_CIPHER = "T1BBUVVFLURBLVRPS0VOLUZPUi1URVNUUw=="

_PSF_NS = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"
_CONTENT_TYPE = {
    SOAP11_NS: b"text/xml; charset=utf-8",
    SOAP12_NS: b"application/soap+xml; charset=utf-8",
}


@dataclass(frozen=True)
class _Fault:
    """
    The values of one STS fault (reference section 2.6.5).
    """

    code: str
    reason: str
    value: str
    internalCode: str
    detail: str
    httpStatus: int


_FAILED_AUTHENTICATION = _Fault(
    "FailedAuthentication", "Authentication Failure", "0x80048821", "0x80041012",
    "The entered and stored passwords do not match.", 500,
)
_INVALID_REQUEST = _Fault(
    "InvalidRequest", "Invalid Request", "0x80048820", "0x80045c01", "Invalid STS request.", 400,
)
_REQUEST_FAILED = _Fault(
    "RequestFailed", "Internal Failure", "0x80048800", "0x80004005", "The request failed.", 500,
)


class _InvalidRequest(Exception):
    """
    The request cannot be served; the message says why (for the log only).
    """


@dataclass(frozen=True)
class _TokenRequest:
    address: str
    policy: Optional[str]


@dataclass(frozen=True)
class _STSRequest:
    soapNS: str
    username: str
    password: str
    tokens: tuple[_TokenRequest, ...]

    def __repr__(self) -> str:
        return f"<_STSRequest {self.username} {len(self.tokens)} tokens>"


def _text(element: Optional[Element]) -> str:
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def _parseRequest(body: bytes, defaultNS: str) -> _STSRequest:
    """
    @raise XMLError: the body is not well-formed or is unsafe.
    @raise _InvalidRequest: a required part is missing.
    """
    root = parseXML(body, maxBytes=MAX_REQUEST_BYTES)
    if localName(root.tag) != "Envelope":
        raise _InvalidRequest("not a SOAP envelope")
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    soapNS = namespace if namespace in _CONTENT_TYPE else defaultNS
    username = _text(next(iterByName(root, "Username"), None))
    passwordElement = next(iterByName(root, "Password"), None)
    if not username or passwordElement is None:
        raise _InvalidRequest("no UsernameToken")
    tokens = []
    for rst in iterByName(root, "RequestSecurityToken"):
        address = _text(findPath(rst, "AppliesTo", "EndpointReference", "Address"))
        if not address:
            raise _InvalidRequest("a RequestSecurityToken has no address")
        reference = next(iterByName(rst, "PolicyReference"), None)
        tokens.append(_TokenRequest(address, None if reference is None else reference.get("URI")))
    if len(tokens) > MAX_TOKENS:
        raise _InvalidRequest(f"{len(tokens)} tokens requested")
    addresses = {t.address.lower() for t in tokens}
    if PASSPORT_TB.lower() not in addresses or MESSENGER_CLEAR not in addresses:
        raise _InvalidRequest("the tb and messengerclear.live.com tokens are required")
    # The password is taken verbatim: surrounding spaces may be part of it.
    return _STSRequest(soapNS, username, passwordElement.text or "", tuple(tokens))


def _isoTime(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _freshTicket() -> str:
    return "t=" + secrets.token_urlsafe(36) + "&p=" + secrets.token_urlsafe(18)


def _faultDocument(soapNS: str, fault: _Fault) -> bytes:
    pp = (
        f'<psf:pp xmlns:psf="{_PSF_NS}"><psf:serverVersion>1</psf:serverVersion>'
        f"<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>{fault.value}</psf:reqstatus>"
        "<psf:serverInfo>msnp local STS</psf:serverInfo><psf:cookies/><psf:response/></psf:pp>"
    )
    if soapNS == SOAP12_NS:
        body = (
            "<S:Fault><S:Code><S:Value>S:Sender</S:Value><S:Subcode>"
            f"<S:Value>wst:{fault.code}</S:Value></S:Subcode></S:Code>"
            f'<S:Reason><S:Text xml:lang="en-US">{fault.reason}</S:Text></S:Reason>'
            f'<S:Detail><psf:error xmlns:psf="{_PSF_NS}"><psf:value>{fault.value}</psf:value>'
            f"<psf:internalerror><psf:code>{fault.internalCode}</psf:code>"
            f"<psf:text>{fault.detail}</psf:text></psf:internalerror></psf:error></S:Detail></S:Fault>"
        )
        envelope = (
            f'<S:Envelope xmlns:S="{SOAP12_NS}" '
            'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust">'
        )
    else:
        prefix = "wst" if fault.code == "InvalidRequest" else "wsse"
        body = (
            f"<S:Fault><faultcode>{prefix}:{fault.code}</faultcode>"
            f"<faultstring>{fault.reason}</faultstring></S:Fault>"
        )
        envelope = (
            f'<S:Envelope xmlns:S="{SOAP11_NS}" '
            'xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" '
            'xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust">'
        )
    return (
        '<?xml version="1.0" encoding="utf-8" ?>'
        f"{envelope}<S:Header>{pp}</S:Header><S:Body>{body}</S:Body></S:Envelope>"
    ).encode("utf-8")


def _tokenFor(
    address: str, grant: TicketGrant, storageTickets: Optional[StorageTickets] = None
) -> tuple[str, Optional[str]]:
    """
    The (ticket, BinarySecret) for one requested compact token; the
    C{storage.msn.com} one is remembered by C{storageTickets}, so the
    storage service can tell whose it is.
    """
    key = address.lower()
    if key == STORAGE and storageTickets is not None:
        return storageTickets.issue(grant), None
    if key == MESSENGER_CLEAR:
        return grant.clearTicket, grant.binarySecret
    if key == CONTACTS:
        return grant.contactsTicket, None
    if key == MESSENGER_WEB:
        return grant.webTicket, None
    return _freshTicket(), None


def _successDocument(
    request: _STSRequest,
    account: Account,
    grant: TicketGrant,
    now: float,
    storageTickets: Optional[StorageTickets] = None,
) -> bytes:
    soap12 = request.soapNS == SOAP12_NS
    created = _isoTime(now)
    # The store decides how long the tickets live; say the same here.
    ticketLifetime = grant.expires - grant.issued
    if ticketLifetime == float("inf"):
        ticketLifetime = TOKEN_LIFETIME
    expires = _isoTime(now + ticketLifetime)
    cid = f"{account.cid & 0xFFFFFFFFFFFFFFFF:016x}"
    member = escapeText(account.email)
    pp = (
        f'<psf:pp xmlns:psf="{_PSF_NS}"><psf:serverVersion>1</psf:serverVersion>'
        f"<psf:PUID>{account.puid:016X}</psf:PUID>"
        "<psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>"
        "<psf:serverInfo>msnp local STS</psf:serverInfo><psf:cookies/>"
        '<psf:credProperties><psf:credProperty Name="MainBrandID">MSFT</psf:credProperty>'
        f'<psf:credProperty Name="CID">{cid}</psf:credProperty>'
        f'<psf:credProperty Name="AuthMembername">{member}</psf:credProperty></psf:credProperties>'
        f'<psf:extProperties><psf:extProperty Name="CID">{cid}</psf:extProperty></psf:extProperties>'
        "<psf:response/></psf:pp>"
    )
    if soap12:
        wsa = "http://www.w3.org/2005/08/addressing"
        namespaces = (
            'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust" '
            'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
            'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
            'xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" '
            'xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy" '
            f'xmlns:psf="{_PSF_NS}"'
        )
        header = (
            f'<wsa:Action xmlns:wsa="{wsa}" S:mustUnderstand="1">'
            "http://schemas.xmlsoap.org/ws/2005/02/trust/RSTR/Issue</wsa:Action>"
            f'<wsa:To xmlns:wsa="{wsa}" S:mustUnderstand="1">'
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
            '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
            'S:mustUnderstand="1"><wsu:Timestamp '
            'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
            f'wsu:Id="TS"><wsu:Created>{created}</wsu:Created>'
            f"<wsu:Expires>{_isoTime(now + 300)}</wsu:Expires></wsu:Timestamp></wsse:Security>"
        )
        lifetime = "Lifetime"
    else:
        wsa = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
        namespaces = (
            'xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust" '
            'xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" '
            'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
            'xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" '
            'xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy" '
            f'xmlns:psf="{_PSF_NS}"'
        )
        header = ""
        lifetime = "LifeTime"

    responses = []
    for index, wanted in enumerate(request.tokens):
        if wanted.address.lower() == PASSPORT_TB.lower():
            tokenType = "urn:passport:legacy"
            tokenId = f"BinaryDAToken{index}"
            valueType = "urn:passport"
            token = (
                f'<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" Id="{tokenId}" '
                'Type="http://www.w3.org/2001/04/xmlenc#Element">'
                '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"></EncryptionMethod>'
                '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>'
                f"<CipherData><CipherValue>{DUMMY_TB_CIPHER}</CipherValue></CipherData></EncryptedData>"
            )
            secret: Optional[str] = DUMMY_TB_SECRET
        else:
            tokenType = "urn:passport:compact"
            tokenId = f"Compact{index}"
            valueType = "urn:passport:compact"
            ticket, secret = _tokenFor(wanted.address, grant, storageTickets)
            token = f'<wsse:BinarySecurityToken Id="{tokenId}">{escapeText(ticket)}</wsse:BinarySecurityToken>'
        if soap12:
            reference = "".join(
                f"<wst:{kind}><wsse:SecurityTokenReference>"
                f'<wsse:Reference URI="#{tokenId}"></wsse:Reference>'
                f"</wsse:SecurityTokenReference></wst:{kind}>"
                for kind in ("RequestedAttachedReference", "RequestedUnattachedReference")
            )
        else:
            reference = (
                f'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="{valueType}"></wsse:KeyIdentifier>'
                f'<wsse:Reference URI="#{tokenId}"></wsse:Reference></wst:RequestedTokenReference>'
            )
        proof = (
            f"<wst:RequestedProofToken><wst:BinarySecret>{secret}</wst:BinarySecret></wst:RequestedProofToken>"
            if secret is not None
            else ""
        )
        responses.append(
            "<wst:RequestSecurityTokenResponse>"
            f"<wst:TokenType>{tokenType}</wst:TokenType>"
            f'<wsp:AppliesTo xmlns:wsa="{wsa}"><wsa:EndpointReference>'
            f"<wsa:Address>{escapeText(wanted.address)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
            f"<wst:{lifetime}><wsu:Created>{created}</wsu:Created>"
            f"<wsu:Expires>{expires}</wsu:Expires></wst:{lifetime}>"
            f"<wst:RequestedSecurityToken>{token}</wst:RequestedSecurityToken>"
            f"{reference}{proof}</wst:RequestSecurityTokenResponse>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8" ?>'
        f'<S:Envelope xmlns:S="{request.soapNS}"><S:Header>{header}{pp}</S:Header>'
        f"<S:Body><wst:RequestSecurityTokenResponseCollection {namespaces}>"
        f"{''.join(responses)}</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>"
    ).encode("utf-8")


class _STSEndpoint(Resource):
    """
    One of C{RST.srf} / C{RST2.srf}; they differ only in the SOAP version
    assumed when a request's envelope does not say.
    """

    isLeaf = True

    def __init__(self, sts: "SSOResource", defaultNS: str) -> None:
        super().__init__()
        self.sts = sts
        self.defaultNS = defaultNS

    def render(self, request: Request) -> Any:
        """
        Only POST is served; anything else gets a plain 405 (not Twisted's
        HTML error page).
        """
        refused = refuseUnlessPOST(request, b"Token")
        if refused is not None:
            return refused
        return self.render_POST(request)

    def render_POST(self, request: Request) -> Any:
        soapNS = self.defaultNS
        try:
            body = request.content.read(MAX_REQUEST_BYTES + 1) if request.content else b""
            if len(body) > MAX_REQUEST_BYTES:
                raise _InvalidRequest(f"request body over {MAX_REQUEST_BYTES} bytes")
            parsed = _parseRequest(body, self.defaultNS)
            soapNS = parsed.soapNS
            return self.sts.issue(request, parsed)
        except (XMLError, _InvalidRequest) as e:
            log.info("SSO: invalid token request: {reason}", reason=str(e))
            return _fault(request, soapNS, _INVALID_REQUEST)
        except Exception:
            log.failure("SSO: token request failed")
            return _fault(request, soapNS, _REQUEST_FAILED)


def _fault(request: Request, soapNS: str, fault: _Fault) -> bytes:
    request.setResponseCode(fault.httpStatus)
    request.setHeader(b"content-type", _CONTENT_TYPE[soapNS])
    return _faultDocument(soapNS, fault)


class SSOResource(Resource):
    """
    The local Passport STS, to be mounted at the root of the HTTP site: its
    children C{RST.srf} and C{RST2.srf} accept token requests (POST).

    Other resources may be put under it with C{putChild}.
    """

    def __init__(
        self,
        store: AccountStore,
        clock: Optional[IReactorTime] = None,
        throttle: Optional[SignInThrottle] = None,
        checkPassword: Optional[Callable[[str, str], "Deferred[Optional[Account]]"]] = None,
        storageTickets: Optional[StorageTickets] = None,
    ) -> None:
        """
        @param store: the accounts to check and the place tickets are recorded.
        @param checkPassword: how passwords are checked (see L{verify}):
            L{LocalNetwork <msnp.server.network.LocalNetwork>} passes the
            store's C{checkPasswordInThread}.
        @param storageTickets: remembers the C{storage.msn.com} ticket of
            each grant for the storage service (without it, that token is
            a fresh ticket nobody checks).
        @param clock: source of the C{Created}/C{Expires} times; the global
            reactor by default.
        @param throttle: the sign-in rate limiter whose delays hold answers
            back (on its own clock); none by default.
        """
        super().__init__()
        self.store = store
        self.clock: IReactorTime = reactorOrDefault(clock)
        self.throttle = throttle
        self._checkPassword = checkPassword
        self.storageTickets = storageTickets
        self._endpoints = {
            b"rst.srf": _STSEndpoint(self, SOAP11_NS),
            b"rst2.srf": _STSEndpoint(self, SOAP12_NS),
        }

    def getChild(self, path: bytes, request: Request) -> IResource:
        # The real service compared paths without regard to case.
        endpoint = self._endpoints.get(path.lower())
        if endpoint is not None:
            return endpoint
        return notFound()

    def issue(self, request: Request, parsed: _STSRequest) -> Any:
        """
        Check the credentials of C{parsed} and answer with tokens or a
        fault; with a throttle, after the delay the recent failures of the
        account and of the peer address earned (see L{SignInThrottle}).

        The answer is always written later (C{NOT_DONE_YET}): the password
        check runs through L{verify}, which with the network's reactor
        runs scrypt in the thread pool, so a sign-in (tens of milliseconds
        at production cost) never stalls the other connections. A client
        that leaves first is answered by nobody and its attempt still
        counts as failed.
        """
        throttle = self.throttle
        keys: Optional[tuple[str, str]] = None
        delay = 0.0
        if throttle is not None:
            peer = request.getClientAddress()
            keys = throttle.keys(parsed.username, str(getattr(peer, "host", "")))
            delay = throttle.begin(keys)
        state = {"gone": False, "ended": False}

        def end(succeeded: bool) -> None:
            if throttle is not None and keys is not None and not state["ended"]:
                state["ended"] = True
                throttle.end(keys, succeeded=succeeded)

        def respond(account: Optional[Account]) -> None:
            end(account is not None)
            if state["gone"]:
                return
            try:
                body = self._answer(request, parsed, account)
            except Exception:
                log.failure("SSO: token request failed")
                body = _fault(request, parsed.soapNS, _REQUEST_FAILED)
            request.write(body)
            request.finish()

        def failed(reason: Any) -> None:
            log.failure("SSO: password check failed", reason)
            end(False)
            if not state["gone"]:
                request.write(_fault(request, parsed.soapNS, _REQUEST_FAILED))
                request.finish()

        def check() -> None:
            self.verify(parsed.username, parsed.password).addCallbacks(respond, failed)

        call = None
        if delay > 0 and throttle is not None:
            log.info("SSO: holding an attempt for {account} back {delay}s after repeated failures",
                     account=summarise(parsed.username), delay=delay)
            call = throttle.clock.callLater(delay, check)

        def gone(_: object) -> None:
            # The client left: answer nobody; a held-back attempt counts as failed.
            state["gone"] = True
            if call is not None and call.active():
                call.cancel()
                end(False)

        request.notifyFinish().addErrback(gone)
        if call is None:
            check()
        return NOT_DONE_YET

    def verify(self, email: str, password: str) -> "Deferred[Optional[Account]]":
        """
        The account whose password C{password} is, or L{None}: through the
        C{checkPassword} given to the constructor (the store's
        C{checkPasswordInThread} on the network's reactor), else the
        store's C{checkPassword} in this thread.
        """
        if self._checkPassword is not None:
            return self._checkPassword(email, password)
        return succeed(self.store.checkPassword(email, password))

    def _answer(self, request: Request, parsed: _STSRequest, account: Optional[Account]) -> bytes:
        if account is None:
            log.info("SSO: authentication failed for {account}", account=summarise(parsed.username))
            return _fault(request, parsed.soapNS, _FAILED_AUTHENTICATION)
        grant = self.store.issueTickets(account)
        log.info(
            "SSO: issued {count} tokens to {account}", count=len(parsed.tokens), account=account.email
        )
        request.setHeader(b"content-type", _CONTENT_TYPE[parsed.soapNS])
        return _successDocument(parsed, account, grant, self.clock.seconds(), self.storageTickets)
