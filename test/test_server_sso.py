"""
Tests for L{msnp.server.sso}: the local network's Passport STS, driven by
the real client (L{SSOClient}) and by raw requests over L{StubTreq}.
"""

from __future__ import annotations

from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import AuthenticationError, ServiceError
from msnp.server.accounts import AccountStore
from msnp.server.sso import DUMMY_TB_SECRET, SSOResource
from msnp.mbi import mbiResponse, verifyMBIResponse
from msnp.namespaces import (
    CONTACTS,
    MESSENGER_CLEAR,
    MESSENGER_WEB,
    PASSPORT_TB,
    SOAP11_NS,
    SOAP12_NS,
)
from msnp.sso import WLM2009_TOKENS, SSOClient, SSOResult, buildRST2Request, parseSSOResponse
from msnp.xmlsafe import findPath, iterByName, parseXML

NONCE = "BuQMZCPqK0R6/J68yErhdzd6pBQqpT6HtpiPksRo9jRPbY2is7ADeWLBK6P+BCuM"
#: 2010-01-01T00:00:00Z
EPOCH = 1262304000

#: The exact RST.srf request body of reference section 8.3 H1 (3522 bytes),
#: alice@example.com / s3cret!.
H1_REQUEST = (
    b'<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
    b' xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion"'
    b' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
    b' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"'
    b' xmlns:wssc="http://schemas.xmlsoap.org/ws/2004/04/sc"'
    b' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust">'
    b'<Header>'
    b'<ps:AuthInfo'
    b' xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="PPAuthInfo">'
    b'<ps:HostingApp>{7108E71A-9926-4FCB-BCC9-9A9D3F32E423}</ps:HostingApp>'
    b'<ps:BinaryVersion>4</ps:BinaryVersion>'
    b'<ps:UIVersion>1</ps:UIVersion>'
    b'<ps:Cookies></ps:Cookies>'
    b'<ps:RequestParams>AQAAAAIAAABsYwQAAAAxMDMz</ps:RequestParams></ps:AuthInfo>'
    b'<wsse:Security><wsse:UsernameToken Id="user"><wsse:Username>alice@example.com</wsse:Username><wsse:Password>s3cret!</wsse:Password></wsse:UsernameToken></wsse:Security></Header>'
    b'<Body>'
    b'<ps:RequestMultipleSecurityTokens'
    b' xmlns:ps="http://schemas.microsoft.com/Passport/SoapServices/PPCRL" Id="RSTS">'
    b'<wst:RequestSecurityToken Id="RST0"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address></wsa:EndpointReference></wsp:AppliesTo></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST1"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="MBI_KEY_OLD"></wsse:PolicyReference></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST2"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messenger.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="?id=507"></wsse:PolicyReference></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST3"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>messengersecure.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="MBI_SSL"></wsse:PolicyReference></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST4"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>contacts.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="MBI"></wsse:PolicyReference></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST5"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>storage.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="MBI"></wsse:PolicyReference></wst:RequestSecurityToken>'
    b'<wst:RequestSecurityToken Id="RST6"><wst:RequestType>http://schemas.xmlsoap.org/ws/2004/04/security/trust/Issue</wst:RequestType>'
    b'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>sup.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wsse:PolicyReference URI="MBI"></wsse:PolicyReference></wst:RequestSecurityToken></ps:RequestMultipleSecurityTokens></Body></Envelope>'
)


class _Fixture(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = AccountStore()
        self.alice = self.store.addAccount("alice@example.com", "s3cret!", "Alice")
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.resource = SSOResource(self.store, clock=self.clock)
        self.stub = StubTreq(self.resource)

    def signIn(
        self, account: str = "alice@example.com", password: str = "s3cret!", path: str = "RST2.srf"
    ) -> tuple[list[SSOResult], list[Failure]]:
        client = SSOClient(self.stub, f"http://127.0.0.1/{path}", self.clock)
        results: list[SSOResult] = []
        failures: list[Failure] = []
        client.requestTokens(account, password, "MBI_KEY_OLD").addCallbacks(results.append, failures.append)
        self.stub.flush()
        return results, failures

    def post(
        self, path: str, body: bytes, method: str = "POST", contentType: str = "text/xml; charset=utf-8"
    ) -> tuple[int, bytes, Optional[bytes]]:
        # StubTreq grows its treq functions at run time; mypy cannot see them.
        stub: Any = self.stub
        responses: list[Any] = []
        failures: list[Failure] = []
        stub.request(
            method, f"http://127.0.0.1/{path}", data=body, headers={"Content-Type": [contentType]}
        ).addCallbacks(responses.append, failures.append)
        self.stub.flush()
        self.assertEqual(failures, [])
        [response] = responses
        contents: list[bytes] = []
        stub.content(response).addCallback(contents.append)
        self.stub.flush()
        return response.code, contents[0], response.headers.getRawHeaders(b"content-type", [None])[0]


class SignInTests(_Fixture):
    """
    The real client signs in against the local STS.
    """

    def test_rst2Success(self) -> None:
        """
        The tickets issued are the ones the store knows, and the secret is
        the grant's proof key, which verifies an MBI response.
        """
        results, failures = self.signIn()
        self.assertEqual(failures, [])
        [result] = results
        grant = self.store.grantForTicket(result.messengerTicket)
        assert grant is not None
        self.assertEqual(grant.email, "alice@example.com")
        self.assertEqual(result.messengerSecret, grant.binarySecret)
        self.assertEqual(result.contactsTicket, grant.contactsTicket)
        self.assertIs(self.store.accountForContactsTicket(result.contactsTicket), self.alice)
        self.assertEqual(result.token(MESSENGER_WEB).ticket, grant.webTicket)
        response = mbiResponse(result.messengerSecret, NONCE)
        self.assertTrue(verifyMBIResponse(grant.binarySecret, NONCE, response))

    def test_allTokensOnce(self) -> None:
        """
        Every requested token comes back; only the tb and messengerclear
        tokens carry a BinarySecret (the tb one a fixed dummy).
        """
        [result], _ = self.signIn()
        self.assertEqual(set(result.tokens), {t.address for t in WLM2009_TOKENS})
        for address, token in result.tokens.items():
            self.assertTrue(token.ticket, address)
            if address == PASSPORT_TB:
                self.assertEqual(token.binarySecret, DUMMY_TB_SECRET)
            elif address != MESSENGER_CLEAR:
                self.assertIsNone(token.binarySecret, address)
            self.assertEqual(token.expires, "2010-01-02T00:00:00Z")
        self.assertNotEqual(result.token("storage.msn.com").ticket, result.token("sup.live.com").ticket)

    def test_identity(self) -> None:
        """
        The psf:pp header carries the PUID and the CID (as unsigned 64-bit
        hex, 16 digits).
        """
        [result], _ = self.signIn()
        self.assertEqual(result.puid, f"{self.alice.puid:016X}")
        assert result.cid is not None
        self.assertEqual(len(result.cid), 16)
        self.assertEqual(int(result.cid, 16), self.alice.cid & 0xFFFFFFFFFFFFFFFF)

    def test_freshGrantEachLogin(self) -> None:
        """
        Each sign-in gets new tickets and a new proof key.
        """
        [first], _ = self.signIn()
        [second], _ = self.signIn()
        self.assertNotEqual(first.messengerTicket, second.messengerTicket)
        self.assertNotEqual(first.messengerSecret, second.messengerSecret)
        self.assertIsNotNone(self.store.grantForTicket(first.messengerTicket))

    def test_rstPath(self) -> None:
        """
        The client's RST2 envelope is also accepted on C{RST.srf}.
        """
        [result], failures = self.signIn(path="RST.srf")
        self.assertIsNotNone(self.store.grantForTicket(result.messengerTicket))

    def test_caseAndTruncation(self) -> None:
        """
        The account is matched case-insensitively and the password as the
        16-character prefix clients send.
        """
        self.store.addAccount("bob@example.com", "0123456789abcdefXYZ")
        [result], failures = self.signIn("Bob@Example.com", "0123456789abcdefXYZ")
        grant = self.store.grantForTicket(result.messengerTicket)
        assert grant is not None
        self.assertEqual(grant.email, "bob@example.com")

    def test_passwordVerbatim(self) -> None:
        """
        Spaces around a password are part of it, and markup characters
        survive the XML round trip.
        """
        self.store.addAccount("carol@example.com", " <&x> ")
        [result], _ = self.signIn("carol@example.com", " <&x> ")
        self.assertIsNotNone(self.store.grantForTicket(result.messengerTicket))
        _, [failure] = self.signIn("carol@example.com", "<&x>")
        failure.trap(AuthenticationError)

    def test_wrongPassword(self) -> None:
        """
        A wrong password is an L{AuthenticationError} and issues nothing.
        """
        results, [failure] = self.signIn(password="wrong")
        failure.trap(AuthenticationError)
        self.assertIn("Authentication Failure", str(failure.value))
        self.assertEqual(results, [])

    def test_unknownAccount(self) -> None:
        """
        An unknown account is the same L{AuthenticationError}.
        """
        results, [failure] = self.signIn(account="nobody@example.com")
        failure.trap(AuthenticationError)

    def test_logs(self) -> None:
        """
        The server logs name the account but never the password or tickets.
        """
        with capturedLogs() as events:
            [result], _ = self.signIn()
            self.signIn(password="wrongpass")
        text = "\n".join(formatEvent(e) for e in events)
        self.assertIn("alice@example.com", text)
        for secret in ("s3cret!", "wrongpass", result.messengerTicket, result.messengerSecret,
                       result.contactsTicket):
            self.assertNotIn(secret, text)


class RawRequestTests(_Fixture):
    """
    The STS's exact answers to hand-made requests.
    """

    def test_h1Request(self) -> None:
        """
        The reference RST.srf request gets a SOAP 1.1 token collection with
        C{LifeTime}, the tokens in request order, and the stored tickets.
        """
        self.assertEqual(len(H1_REQUEST), 3522)
        status, body, contentType = self.post("RST.srf", H1_REQUEST)
        self.assertEqual(status, 200)
        self.assertEqual(contentType, b"text/xml; charset=utf-8")
        root = parseXML(body)
        self.assertEqual(root.tag, f"{{{SOAP11_NS}}}Envelope")
        addresses = [
            (findPath(r, "AppliesTo", "EndpointReference", "Address").text)  # type: ignore[union-attr]
            for r in iterByName(root, "RequestSecurityTokenResponse")
        ]
        self.assertEqual(addresses, [t.address for t in WLM2009_TOKENS])
        self.assertEqual(len(list(iterByName(root, "LifeTime"))), 7)
        self.assertEqual(list(iterByName(root, "Lifetime")), [])
        self.assertEqual(next(iterByName(root, "authstate")).text, "0x48803")
        self.assertEqual(next(iterByName(root, "reqstatus")).text, "0x0")
        self.assertEqual(next(iterByName(root, "Created")).text, "2010-01-01T00:00:00Z")
        result = parseSSOResponse(body)
        grant = self.store.grantForTicket(result.messengerTicket)
        assert grant is not None
        self.assertEqual(result.messengerSecret, grant.binarySecret)
        self.assertIn(b"&amp;p=", body)

    def test_rst2Response(self) -> None:
        """
        An RST2 request gets a SOAP 1.2 answer in the 2005/02 trust namespace
        with C{Lifetime} and attached/unattached references.
        """
        request = buildRST2Request("alice@example.com", "s3cret!", "MBI_KEY_OLD", "1", "c", "e")
        status, body, contentType = self.post("RST2.srf", request, contentType="application/soap+xml")
        self.assertEqual(status, 200)
        self.assertEqual(contentType, b"application/soap+xml; charset=utf-8")
        root = parseXML(body)
        self.assertEqual(root.tag, f"{{{SOAP12_NS}}}Envelope")
        collection = next(iterByName(root, "RequestSecurityTokenResponseCollection"))
        self.assertEqual(collection.tag, "{http://schemas.xmlsoap.org/ws/2005/02/trust}"
                         "RequestSecurityTokenResponseCollection")
        self.assertEqual(len(list(iterByName(root, "Lifetime"))), 7)
        self.assertEqual(len(list(iterByName(root, "RequestedAttachedReference"))), 7)
        self.assertEqual(len(list(iterByName(root, "BinarySecret"))), 2)

    def test_soap12FailedAuthentication(self) -> None:
        """
        A refused RST2 request gets HTTP 500 and the SOAP 1.2 fault values of
        section 2.6.5.
        """
        request = buildRST2Request("alice@example.com", "nope", "MBI_KEY_OLD", "1", "c", "e")
        status, body, _ = self.post("RST2.srf", request)
        self.assertEqual(status, 500)
        root = parseXML(body)
        fault = next(iterByName(root, "Fault"))
        self.assertEqual(root.tag, f"{{{SOAP12_NS}}}Envelope")
        self.assertEqual(findPath(fault, "Code", "Value").text, "S:Sender")  # type: ignore[union-attr]
        self.assertEqual(
            findPath(fault, "Code", "Subcode", "Value").text,  # type: ignore[union-attr]
            "wst:FailedAuthentication",
        )
        self.assertEqual(findPath(fault, "Reason", "Text").text, "Authentication Failure")  # type: ignore[union-attr]
        self.assertEqual(next(iterByName(fault, "value")).text, "0x80048821")
        self.assertEqual(next(iterByName(fault, "code")).text, "0x80041012")
        self.assertRaises(AuthenticationError, parseSSOResponse, body)

    def test_soap11FailedAuthentication(self) -> None:
        """
        A refused RST request gets HTTP 500 and a SOAP 1.1
        C{wsse:FailedAuthentication} fault.
        """
        status, body, contentType = self.post("RST.srf", H1_REQUEST.replace(b"s3cret!", b"nope"))
        self.assertEqual(status, 500)
        root = parseXML(body)
        self.assertEqual(root.tag, f"{{{SOAP11_NS}}}Envelope")
        fault = next(iterByName(root, "Fault"))
        self.assertEqual(findPath(fault, "faultcode").text, "wsse:FailedAuthentication")  # type: ignore[union-attr]
        self.assertEqual(findPath(fault, "faultstring").text, "Authentication Failure")  # type: ignore[union-attr]
        self.assertRaises(AuthenticationError, parseSSOResponse, body)

    def assertInvalidRequest(self, path: str, body: bytes, soapNS: str) -> None:
        status, answer, _ = self.post(path, body)
        self.assertEqual(status, 400)
        root = parseXML(answer)
        self.assertEqual(root.tag, f"{{{soapNS}}}Envelope")
        e = self.assertRaises(ServiceError, parseSSOResponse, answer)
        self.assertNotIsInstance(e, AuthenticationError)
        self.assertEqual(e.faultCode, "wst:InvalidRequest")

    def test_garbage(self) -> None:
        """
        Malformed, unsafe or empty bodies get 400 with an InvalidRequest
        fault in the SOAP version of the path.
        """
        for body in (b"", b"garbage", b"<S:Envelope", b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'):
            self.assertInvalidRequest("RST2.srf", body, SOAP12_NS)
            self.assertInvalidRequest("RST.srf", body, SOAP11_NS)

    def test_soap12InvalidRequestValues(self) -> None:
        """
        The SOAP 1.2 InvalidRequest fault carries the values of section 2.6.5.
        """
        status, answer, _ = self.post("RST2.srf", b"garbage")
        fault = next(iterByName(parseXML(answer), "Fault"))
        self.assertEqual(next(iterByName(fault, "value")).text, "0x80048820")
        self.assertEqual(next(iterByName(fault, "code")).text, "0x80045c01")

    def test_missingParts(self) -> None:
        """
        Well-formed requests without the credentials, the tb token, or the
        messengerclear token are invalid.
        """
        request = buildRST2Request("alice@example.com", "s3cret!", "MBI_KEY_OLD", "1", "c", "e")
        for broken in (
            request.replace(b"wsse:Username>", b"wsse:Nobody>"),
            request.replace(b"wsse:Password>", b"wsse:Nothing>"),
            request.replace(b"http://Passport.NET/tb", b"http://example.com/x"),
            request.replace(b">messengerclear.live.com<", b">example.com<"),
            b"<x/>",
        ):
            self.assertInvalidRequest("RST2.srf", broken, SOAP12_NS)

    def test_oversized(self) -> None:
        """
        A huge body is refused as invalid without parsing it.
        """
        request = buildRST2Request("alice@example.com", "s3cret!", "MBI_KEY_OLD", "1", "c", "e")
        self.assertInvalidRequest("RST2.srf", request + b" " * (300 * 1024), SOAP12_NS)

    def test_notPost(self) -> None:
        """
        A GET gets 405, not a traceback page.
        """
        status, body, _ = self.post("RST2.srf", b"", method="GET")
        self.assertEqual(status, 405)
        self.assertNotIn(b"Traceback", body)
        status, body, _ = self.post("RST.srf", b"", method="PUT")
        self.assertEqual(status, 405)

    def test_unknownPath(self) -> None:
        """
        Other paths are 404.
        """
        status, _, _ = self.post("nothing.srf", H1_REQUEST)
        self.assertEqual(status, 404)

    def test_unknownTokenAndOrder(self) -> None:
        """
        Tokens are answered in request order, unknown addresses included,
        with fresh tickets and no proof key.
        """
        request = H1_REQUEST.replace(b">sup.live.com<", b">spaces.live.com<")
        status, body, _ = self.post("RST.srf", request)
        result = parseSSOResponse(body)
        self.assertIsNone(result.token("spaces.live.com").binarySecret)
        self.assertTrue(result.token("spaces.live.com").ticket.startswith("t="))
        self.assertIsNone(result.token(CONTACTS).binarySecret)
