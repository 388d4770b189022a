# -*- test-case-name: test.test_sso -*-
"""
Passport (Windows Live ID) single sign-on: the token request, its response,
and the MBI response that proves to the notification server that we hold the
proof key of the C{messengerclear.live.com} ticket.

The pure parts (building the RST2 envelope, parsing the token collection or
fault, the MBI crypto) are separate from L{SSOClient}, the one piece that
talks HTTP, so each can be tested on its own and the local network's STS can
reuse the crypto to check what clients send.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, tostring

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from msnp.endpoints import isCleartextRemote, urlOrigin
from msnp.errors import AuthenticationError, ServiceError, UnsafeRedirect
from msnp.namespaces import (
    CONTACTS,
    MBI_KEY_OLD,
    MESSENGER_CLEAR,
    MESSENGER_SECURE,
    MESSENGER_WEB,
    PASSPORT_TB,
    STORAGE,
    SUP,
)
from msnp.http import DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_BODY_BYTES, postXML
from msnp.xmlsafe import child, children, escapeText, findPath, iterByName, localName, parseXML

log = Logger()

@dataclass(frozen=True)
class TokenRequest:
    """
    One token asked for in an RST request.

    @ivar address: the C{AppliesTo} address.
    @ivar policy: the C{PolicyReference} URI, or L{None} for none. For
        L{MESSENGER_CLEAR} the policy the NS sent replaces this one.
    """

    address: str
    policy: Optional[str]


#: The tokens WLM 2009 requests, in its order (RST0..RST6).
WLM2009_TOKENS: tuple[TokenRequest, ...] = (
    TokenRequest(PASSPORT_TB, None),
    TokenRequest(MESSENGER_CLEAR, MBI_KEY_OLD),
    TokenRequest(MESSENGER_WEB, "?id=507"),
    TokenRequest(MESSENGER_SECURE, "MBI_SSL"),
    TokenRequest(CONTACTS, "MBI"),
    TokenRequest(STORAGE, "MBI"),
    TokenRequest(SUP, "MBI"),
)

# -- results ----------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityToken:
    """
    One token of the STS response.

    @ivar address: the C{AppliesTo} address it was issued for.
    @ivar ticket: the compact ticket (C{t=...&p=...}, XML-unescaped), or
        for the C{Passport.NET/tb} token the serialised C{EncryptedData}.
    @ivar binarySecret: the base64 proof key of this token, if it had one.
    @ivar expires: the C{Expires} time as the server wrote it, if given.
    """

    address: str
    ticket: str = field(repr=False)
    binarySecret: Optional[str] = field(repr=False)
    expires: Optional[str]


@dataclass(frozen=True)
class SSOResult:
    """
    The tokens of one successful sign-in.

    @ivar tokens: the tokens keyed by C{AppliesTo} address.
    @ivar cid: the account's CID as the server wrote it (hex), if given.
    @ivar puid: the account's PUID (hex), if given.
    """

    tokens: dict[str, SecurityToken]
    cid: Optional[str] = None
    puid: Optional[str] = None

    def token(self, address: str) -> SecurityToken:
        """
        The token issued for C{address}.

        @raise AuthenticationError: the server did not issue it.
        """
        found = self.tokens.get(address)
        if found is None:
            raise AuthenticationError(f"the SSO service issued no token for {address}")
        return found

    @property
    def messengerTicket(self) -> str:
        """
        The ticket to present in C{USR SSO S}.
        """
        return self.token(MESSENGER_CLEAR).ticket

    @property
    def messengerSecret(self) -> str:
        """
        The proof key for L{mbiResponse}.

        @raise AuthenticationError: the token came without one.
        """
        secret = self.token(MESSENGER_CLEAR).binarySecret
        if secret is None:
            raise AuthenticationError(f"the {MESSENGER_CLEAR} token has no BinarySecret")
        return secret

    @property
    def contactsTicket(self) -> str:
        """
        The ticket for the address book and sharing services.
        """
        return self.token(CONTACTS).ticket


class SSORedirect(ServiceError):
    """
    The STS answered C{psf:Redirect}: repost the same request to L{url}.

    @ivar url: where to send the request.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"SSO service redirects to {url}", faultCode="psf:Redirect")


# -- the request -------------------------------------------------------------------

_RST2_NAMESPACES = (
    'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
    'xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" '
    'xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy" '
    'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:wssc="http://schemas.xmlsoap.org/ws/2005/02/sc" '
    'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust"'
)

#: Passwords longer than this were never accepted; clients truncated them.
MAX_PASSWORD_LENGTH = 16


def buildRST2Request(
    account: str,
    password: str,
    policy: str,
    messageId: str,
    created: str,
    expires: str,
) -> bytes:
    """
    The RST2.srf (SOAP 1.2, WS-Trust 2005/02) envelope WLM 2009 sends,
    asking for L{WLM2009_TOKENS}.

    @param account: the Passport address.
    @param password: the password; only its first 16 characters are sent.
    @param policy: the policy from C{USR SSO S} (C{MBI_KEY_OLD}), used for
        the C{messengerclear.live.com} token.
    @param messageId: the C{wsa:MessageID} (a decimal number).
    @param created: C{wsu:Created}, C{yyyy-mm-ddThh:mm:ssZ}.
    @param expires: C{wsu:Expires}, same form.
    @return: the UTF-8 body.
    """
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<s:Envelope {_RST2_NAMESPACES}>",
        "<s:Header>",
        '<wsa:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue</wsa:Action>',
        '<wsa:To s:mustUnderstand="1">HTTPS://login.live.com:443//RST2.srf</wsa:To>',
        f"<wsa:MessageID>{escapeText(messageId)}</wsa:MessageID>",
        '<ps:AuthInfo xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="PPAuthInfo">',
        "<ps:HostingApp>{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}</ps:HostingApp>",
        "<ps:BinaryVersion>5</ps:BinaryVersion>",
        "<ps:UIVersion>1</ps:UIVersion>",
        "<ps:Cookies></ps:Cookies>",
        "<ps:RequestParams>AQAAAAIAAABsYwQAAAAyMDYw</ps:RequestParams></ps:AuthInfo>",
        "<wsse:Security>",
        '<wsse:UsernameToken wsu:Id="user">',
        f"<wsse:Username>{escapeText(account)}</wsse:Username>",
        f"<wsse:Password>{escapeText(password[:MAX_PASSWORD_LENGTH])}</wsse:Password></wsse:UsernameToken>",
        '<wsu:Timestamp Id="Timestamp">',
        f"<wsu:Created>{escapeText(created)}</wsu:Created>",
        f"<wsu:Expires>{escapeText(expires)}</wsu:Expires></wsu:Timestamp></wsse:Security></s:Header>",
        "<s:Body>",
        '<ps:RequestMultipleSecurityTokens xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">',
    ]
    for index, wanted in enumerate(WLM2009_TOKENS):
        tokenPolicy = policy if wanted.address == MESSENGER_CLEAR else wanted.policy
        parts.append(
            f'<wst:RequestSecurityToken Id="RST{index}">'
            "<wst:RequestType>http://schemas.xmlsoap.org/ws/2005/02/trust/Issue</wst:RequestType>"
            "<wsp:AppliesTo><wsa:EndpointReference>"
            f"<wsa:Address>{escapeText(wanted.address)}</wsa:Address>"
            "</wsa:EndpointReference></wsp:AppliesTo>"
        )
        if tokenPolicy is not None:
            parts.append(f'<wsp:PolicyReference URI="{escapeText(tokenPolicy)}"></wsp:PolicyReference>')
        parts.append("</wst:RequestSecurityToken>")
    parts.append("</ps:RequestMultipleSecurityTokens></s:Body></s:Envelope>")
    return "".join(parts).encode("utf-8")


# -- the response ------------------------------------------------------------------


def _text(element: Optional[Element]) -> str:
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def _firstText(root: Element, name: str) -> str:
    for found in iterByName(root, name):
        text = _text(found)
        if text:
            return text
    return ""


def _faultCodes(fault: Element) -> list[str]:
    """
    Every code of a fault: C{faultcode} (SOAP 1.1), or C{Code/Value} and
    each nested C{Subcode/Value} (SOAP 1.2), outermost first.
    """
    codes = [_text(c) for c in children(fault, "faultcode")]
    code = child(fault, "Code")
    while code is not None:
        codes.append(_text(child(code, "Value")))
        code = child(code, "Subcode")
    return [c for c in codes if c]


def _codeName(code: str) -> str:
    return code.rsplit(":", 1)[-1]


def _raiseFault(root: Element, fault: Element) -> None:
    codes = _faultCodes(fault)
    names = {_codeName(c) for c in codes}
    reason = _text(child(fault, "faultstring")) or _text(findPath(fault, "Reason", "Text"))
    detail = _firstText(fault, "text")
    message = reason
    if detail and detail != reason:
        message = f"{reason}: {detail}" if reason else detail
    # The most specific code names the fault: the SOAP 1.2 subcode rather
    # than the generic Sender/Receiver.
    faultCode = codes[-1] if codes else None

    if "Redirect" in names:
        url = _firstText(root, "redirectUrl")
        if not url:
            raise ServiceError("SSO redirect without a redirectUrl", faultCode=faultCode, faultString=message)
        raise SSORedirect(url)
    if "FailedAuthentication" in names or any(c.startswith("psf:") for c in codes):
        raise AuthenticationError(
            f"Passport refused the sign-in: {message or faultCode or 'no reason given'}"
        )
    raise ServiceError(
        f"SSO service fault {faultCode or '(no code)'}: {message or 'no reason given'}",
        faultCode=faultCode,
        faultString=message or None,
    )


def _parseToken(response: Element) -> Optional[SecurityToken]:
    address = _text(findPath(response, "AppliesTo", "EndpointReference", "Address"))
    if not address:
        return None
    requested = child(response, "RequestedSecurityToken")
    ticket = ""
    if requested is not None:
        compact = child(requested, "BinarySecurityToken")
        if compact is not None:
            ticket = _text(compact)
        else:
            encrypted = child(requested, "EncryptedData")
            if encrypted is not None:
                ticket = tostring(encrypted, encoding="unicode")
    secret = _text(findPath(response, "RequestedProofToken", "BinarySecret")) or None
    expires: Optional[str] = None
    for element in response:
        # RST spells it LifeTime, RST2 Lifetime.
        if localName(element.tag).lower() == "lifetime":
            expires = _text(child(element, "Expires")) or None
            break
    return SecurityToken(address=address, ticket=ticket, binarySecret=secret, expires=expires)


def _credProperty(root: Element, name: str) -> Optional[str]:
    for kind in ("credProperty", "extProperty"):
        for element in iterByName(root, kind):
            if element.get("Name") == name:
                text = _text(element)
                if text:
                    return text
    return None


def parseSSOResponse(body: bytes) -> SSOResult:
    """
    Read the STS's answer to an RST or RST2 request.

    Tokens are matched by their C{AppliesTo} address, never by position or
    C{Id}, and each keeps its own C{BinarySecret}.

    @raise SSORedirect: the service sent C{psf:Redirect}.
    @raise AuthenticationError: the credentials were refused, or the answer
        holds no usable C{messengerclear.live.com} token.
    @raise ServiceError: the body is not a SOAP envelope, or holds another
        fault (C{faultCode}/C{faultString} set).
    """
    root = parseXML(body)
    if localName(root.tag) != "Envelope":
        raise ServiceError(f"SSO response is not a SOAP envelope (root element {localName(root.tag)!r})")
    fault = next(iterByName(root, "Fault"), None)
    if fault is not None:
        _raiseFault(root, fault)

    tokens: dict[str, SecurityToken] = {}
    for response in iterByName(root, "RequestSecurityTokenResponse"):
        token = _parseToken(response)
        if token is not None and token.address not in tokens:
            tokens[token.address] = token

    clear = tokens.get(MESSENGER_CLEAR)
    if clear is None or not clear.ticket or clear.binarySecret is None:
        authstate = _firstText(root, "authstate") or "unknown"
        raise AuthenticationError(
            f"Passport issued no usable {MESSENGER_CLEAR} token (authstate {authstate})"
        )
    try:
        base64.b64decode(clear.binarySecret, validate=True)
    except (binascii.Error, ValueError):
        raise ServiceError(f"the {MESSENGER_CLEAR} BinarySecret is not base64") from None

    puid = _firstText(root, "PUID") or None
    return SSOResult(tokens=tokens, cid=_credProperty(root, "CID"), puid=puid)


# -- the client ----------------------------------------------------------------------

#: How many C{psf:Redirect} answers one request follows.
MAX_REDIRECTS = 3
#: Lifetime of the request's security timestamp.
_TIMESTAMP_LIFETIME = 300


def _isoTime(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _checkRedirect(current: str, target: str) -> None:
    """
    A C{psf:Redirect} re-posts the whole request, password included, so it
    is followed only within the origin the caller configured.

    @raise UnsafeRedirect: another origin, a downgrade, or not HTTP.
    """
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeRedirect(f"SSO redirect to an unusable URL: {target[:200]!r}", target)
    if urlsplit(current).scheme == "https" and parts.scheme != "https":
        raise UnsafeRedirect(f"SSO redirect from https to plain {parts.scheme} refused: {target[:200]!r}", target)
    if urlOrigin(current) != urlOrigin(target):
        raise UnsafeRedirect(
            f"SSO redirect to another origin refused (the password is only sent to"
            f" {urlOrigin(current)[1]}): {target[:200]!r}",
            target,
        )


class SSOClient:
    """
    Gets the sign-in tokens from a Passport RST2 service.

    @ivar url: the service's first URL; redirects are followed per request
        and not remembered.
    """

    def __init__(
        self,
        httpClient: Any,
        url: str,
        clock: IReactorTime,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        maxBodyBytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """
        @param httpClient: a L{treq.client.HTTPClient} or L{treq.testing.StubTreq}.
        @param url: the RST2.srf URL.
        @param clock: the clock for deadlines and the request timestamps.
        @param timeout: seconds allowed for each HTTP exchange.
        @param maxBodyBytes: cap on a response body.
        """
        self.httpClient = httpClient
        self.url = url
        self.clock = clock
        self.timeout = timeout
        self.maxBodyBytes = maxBodyBytes

    def requestTokens(self, account: str, password: str, policy: str) -> "Deferred[SSOResult]":
        """
        Sign in and collect the WLM 2009 token set.

        @param policy: the policy of C{USR SSO S} (normally C{MBI_KEY_OLD}).
        @return: a L{Deferred} firing with an L{SSOResult}, or failing with
            L{AuthenticationError} (credentials refused: do not retry) or
            L{ServiceError} (transport, timeout, HTTP error, other fault,
            too many redirects).
        """
        return ensureDeferred(self._requestTokens(account, password, policy))

    async def _requestTokens(self, account: str, password: str, policy: str) -> SSOResult:
        now = self.clock.seconds()
        body = buildRST2Request(
            account, password, policy,
            messageId=str(int(now)),
            created=_isoTime(now),
            expires=_isoTime(now + _TIMESTAMP_LIFETIME),
        )
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        url = self.url
        redirects = 0
        if isCleartextRemote(url):
            log.warn(
                "The SSO URL {url} is plain http to a host that is not loopback:"
                " the password of {account} travels unencrypted. Use an https URL.",
                url=url,
                account=account,
            )
        while True:
            log.info("Requesting SSO tokens for {account} from {url}", account=account, url=url)
            result = await postXML(
                self.httpClient, url, body, headers, self.clock, self.timeout, self.maxBodyBytes
            )
            try:
                tokens = parseSSOResponse(result.body)
            except SSORedirect as redirect:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise ServiceError(
                        f"SSO service redirected more than {MAX_REDIRECTS} times", status=result.status
                    ) from None
                _checkRedirect(url, redirect.url)
                log.info("SSO service for {account} redirects to {url}", account=account, url=redirect.url)
                url = redirect.url
                continue
            except AuthenticationError as e:
                log.info("SSO sign-in refused for {account}: {reason}", account=account, reason=str(e))
                raise
            except ServiceError as e:
                if e.status is not None:
                    raise
                raise ServiceError(
                    f"SSO service answered HTTP {result.status}: {e}",
                    status=result.status,
                    faultCode=e.faultCode,
                    faultString=e.faultString,
                ) from None
            log.info("SSO tokens received for {account} ({count} tokens)", account=account, count=len(tokens.tokens))
            return tokens
