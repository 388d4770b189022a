"""
Tests for L{msnp.sso}: the MBI response, the RST2 request, the STS response
and fault parser, and L{SSOClient} over an in-memory HTTP stack.
"""

from __future__ import annotations

import base64
from typing import Callable, Optional

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from msnp.errors import AuthenticationError, ServiceError
from msnp.mbi import mbiResponse, verifyMBIResponse
from msnp.namespaces import CONTACTS, MESSENGER_CLEAR, MESSENGER_WEB, PASSPORT_TB, SOAP12_NS
from msnp.sso import (
    WLM2009_TOKENS,
    SecurityToken,
    SSOClient,
    SSORedirect,
    SSOResult,
    buildRST2Request,
    parseSSOResponse,
)
from msnp.xmlsafe import findPath, iterByName, localName, parseXML

SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
NONCE = "BuQMZCPqK0R6/J68yErhdzd6pBQqpT6HtpiPksRo9jRPbY2is7ADeWLBK6P+BCuM"
IV = bytes(range(1, 9))
MBI_VECTOR = (
    "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAECAwQFBgcIBUQ8AAL5VDBfLONtwsPx147ByTKty+fielcWrvtzopbR"
    "KqSZzZULFzX+Qo082gcyUgKJq8GIftWY1RkvnEHfx3PtZOsdgFdDueHlpupL9Odgatraf+QTiNF3xpY="
)
CLEAR_TICKET = "t=EwCoARAnAAAUclearTICKETexample0001&p=EwCoAPROFILEexample0001"
CONTACTS_TICKET = "t=EwCoARAnAAAUcontactsTICKETexample0002&p=EwCoAPROFILEexample0002"
WEB_TICKET = "t=EwCoARAnAAAUwebTICKETexample0003&p=EwCoAPROFILEexample0003"
TB_SECRET = "0JQeaNqPOBUf+Gph/Fn3xc+f"

#: The exact response body of reference section 8.3 H1 (7927 bytes).
H1_RESPONSE = (
    b'<?xml version="1.0" encoding="utf-8" ?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<S:Header><psf:pp'
    b' xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><psf:serverVersion>1</psf:serverVersion><psf:PUID>0003BFFDB7D5F624</psf:PUID><psf:authstate>0x48803</psf:authstate><psf:reqstatus>0x0</psf:reqstatus>'
    b'<psf:credProperties>'
    b'<psf:credProperty Name="MainBrandID">MSFT</psf:credProperty>'
    b'<psf:credProperty Name="CID">a1b2c3d4e5f60718</psf:credProperty>'
    b'<psf:credProperty Name="AuthMembername">alice@example.com</psf:credProperty></psf:credProperties>'
    b'<psf:extProperties><psf:extProperty Name="CID">a1b2c3d4e5f60718</psf:extProperty></psf:extProperties><psf:response/></psf:pp></S:Header>'
    b'<S:Body><wst:RequestSecurityTokenResponseCollection'
    b' xmlns:wst="http://schemas.xmlsoap.org/ws/2004/04/trust"'
    b' xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext"'
    b' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"'
    b' xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion"'
    b' xmlns:wsp="http://schemas.xmlsoap.org/ws/2002/12/policy"'
    b' xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault">'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:legacy</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>http://Passport.NET/tb</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" Id="BinaryDAToken0" Type="http://www.w3.org/2001/04/xmlenc#Element">'
    b'<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"></EncryptionMethod>'
    b'<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:KeyName>http://Passport.NET/STS</ds:KeyName></ds:KeyInfo>'
    b'<CipherData><CipherValue>T1BBUVVFLURBLVRPS0VOLUZPUi1URVNUUw==</CipherValue></CipherData></EncryptedData></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport"></wsse:KeyIdentifier><wsse:Reference URI="#BinaryDAToken0"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>messengerclear.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact1">t=EwCoARAnAAAUclearTICKETexample0001&amp;p=EwCoAPROFILEexample0001</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact1"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>AAECAwQFBgcICQoLDA0ODxAREhMUFRYX</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>messenger.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact2">t=EwCoARAnAAAUwebTICKETexample0003&amp;p=EwCoAPROFILEexample0003</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact2"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>messengersecure.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact3">t=EwCoARAnAAAUsecureTICKETexample0004&amp;p=EwCoAPROFILEexample0004</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact3"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>contacts.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact4">t=EwCoARAnAAAUcontactsTICKETexample0002&amp;p=EwCoAPROFILEexample0002</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact4"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>storage.msn.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact5">t=EwCoARAnAAAUstorageTICKETexample0005&amp;p=EwCoAPROFILEexample0005</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact5"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>'
    b'<wsp:AppliesTo'
    b' xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing"><wsa:EndpointReference><wsa:Address>sup.live.com</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>'
    b'<wst:LifeTime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created><wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:LifeTime>'
    b'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact6">t=EwCoARAnAAAUsupTICKETexample0006&amp;p=EwCoAPROFILEexample0006</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
    b'<wst:RequestedTokenReference><wsse:KeyIdentifier ValueType="urn:passport:compact"></wsse:KeyIdentifier><wsse:Reference URI="#Compact6"></wsse:Reference></wst:RequestedTokenReference>'
    b'<wst:RequestedProofToken><wst:BinarySecret>0JQeaNqPOBUf+Gph/Fn3xc+f</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>'
    b'</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>'
)

_RST2_NS = (
    'xmlns:S="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust" '
    'xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
    'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
    'xmlns:wsp="http://schemas.xmlsoap.org/ws/2004/09/policy" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"'
)


def _rst2Token(address: str, ticket: str, secret: Optional[str], tokenId: str) -> str:
    proof = (
        f"<wst:RequestedProofToken><wst:BinarySecret>{secret}</wst:BinarySecret></wst:RequestedProofToken>"
        if secret
        else ""
    )
    return (
        "<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:compact</wst:TokenType>"
        f"<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{address}</wsa:Address>"
        "</wsa:EndpointReference></wsp:AppliesTo>"
        "<wst:Lifetime><wsu:Created>2010-01-01T00:00:00Z</wsu:Created>"
        "<wsu:Expires>2010-01-02T00:00:00Z</wsu:Expires></wst:Lifetime>"
        f'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="{tokenId}">{ticket}'
        "</wsse:BinarySecurityToken></wst:RequestedSecurityToken>"
        "<wst:RequestedAttachedReference><wsse:SecurityTokenReference>"
        f'<wsse:Reference URI="#{tokenId}"/></wsse:SecurityTokenReference></wst:RequestedAttachedReference>'
        "<wst:RequestedUnattachedReference><wsse:SecurityTokenReference>"
        f'<wsse:Reference URI="#{tokenId}"/></wsse:SecurityTokenReference></wst:RequestedUnattachedReference>'
        f"{proof}</wst:RequestSecurityTokenResponse>"
    )


#: An RST2 (SOAP 1.2) answer with the tokens in an unusual order and Ids
#: that do not match the request's, and a BinarySecret only where the
#: independent server of section 10.3 put one.
RST2_RESPONSE = (
    f'<?xml version="1.0" encoding="utf-8"?><S:Envelope {_RST2_NS}><S:Header>'
    '<wsa:Action S:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/02/trust/RSTR/Issue</wsa:Action>'
    "<psf:pp><psf:PUID>00000000000000AB</psf:PUID><psf:authstate>0x48803</psf:authstate>"
    '<psf:credProperties><psf:credProperty Name="CID">00000000000000cd</psf:credProperty>'
    "</psf:credProperties></psf:pp></S:Header><S:Body>"
    "<wst:RequestSecurityTokenResponseCollection>"
    + _rst2Token(CONTACTS, "t=contacts&amp;p=", None, "Compact1")
    + _rst2Token(MESSENGER_CLEAR, "t=clear&amp;p=x&lt;y", "AQID", "Compact9")
    + "<wst:RequestSecurityTokenResponse><wst:TokenType>urn:passport:legacy</wst:TokenType>"
    f"<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{PASSPORT_TB}</wsa:Address>"
    "</wsa:EndpointReference></wsp:AppliesTo><wst:RequestedSecurityToken>"
    '<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" Id="BinaryDAToken0">'
    "<CipherData><CipherValue>AAAA</CipherValue></CipherData></EncryptedData>"
    "</wst:RequestedSecurityToken><wst:RequestedProofToken><wst:BinarySecret>"
    f"{TB_SECRET}</wst:BinarySecret></wst:RequestedProofToken></wst:RequestSecurityTokenResponse>"
    "</wst:RequestSecurityTokenResponseCollection></S:Body></S:Envelope>"
).encode("utf-8")

FAULT_SOAP11 = (
    b'<?xml version="1.0" encoding="utf-8" ?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:wsse="http://schemas.xmlsoap.org/ws/2003/06/secext" '
    b'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><S:Header><psf:pp>'
    b"<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>0x80048821</psf:reqstatus></psf:pp></S:Header>"
    b"<S:Body><S:Fault><faultcode>wsse:FailedAuthentication</faultcode>"
    b"<faultstring>Authentication Failure</faultstring></S:Fault></S:Body></S:Envelope>"
)

FAULT_SOAP12 = (
    b'<?xml version="1.0" encoding="utf-8" ?><S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:wst="http://schemas.xmlsoap.org/ws/2005/02/trust" '
    b'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><S:Body><S:Fault>'
    b"<S:Code><S:Value>S:Sender</S:Value><S:Subcode><S:Value>wst:FailedAuthentication</S:Value>"
    b'</S:Subcode></S:Code><S:Reason><S:Text xml:lang="en-US">Authentication Failure</S:Text></S:Reason>'
    b"<S:Detail><psf:error><psf:value>0x80048821</psf:value><psf:internalerror><psf:code>0x80041012"
    b"</psf:code><psf:text>The entered and stored passwords do not match.</psf:text></psf:internalerror>"
    b"</psf:error></S:Detail></S:Fault></S:Body></S:Envelope>"
)

#: One server's RST.srf failure: the fault sits directly under the envelope.
FAULT_NO_BODY = (
    b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Fault>'
    b"<faultcode>wsse:FailedAuthentication</faultcode><faultstring>Bad password here</faultstring>"
    b"</S:Fault></S:Envelope>"
)

INVALID_REQUEST_SOAP12 = FAULT_SOAP12.replace(b"FailedAuthentication", b"InvalidRequest").replace(
    b"Authentication Failure", b"Invalid Request"
)


def redirectFault(url: str) -> bytes:
    return (
        '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><S:Body><S:Fault>'
        "<faultcode>psf:Redirect</faultcode><psf:redirectUrl>"
        f"{url}</psf:redirectUrl><faultstring>Authentication Failure</faultstring>"
        "</S:Fault></S:Body></S:Envelope>"
    ).encode("utf-8")


def _secretsIn(text: str) -> list[str]:
    return [s for s in (CLEAR_TICKET, CONTACTS_TICKET, SECRET, TB_SECRET, "EwCoAR", "AAECAwQF")
            if s in text]


class MBIResponseTests(SynchronousTestCase):
    """
    L{mbiResponse} and L{verifyMBIResponse} against the vector of section 2.7.
    """

    def test_vector(self) -> None:
        """
        With the fixed IV the response reproduces the reference byte for byte.
        """
        self.assertEqual(mbiResponse(SECRET, NONCE, IV), MBI_VECTOR)

    def test_blobLayout(self) -> None:
        """
        The blob is 128 bytes starting with the fixed 28-byte header.
        """
        blob = base64.b64decode(mbiResponse(SECRET, NONCE))
        self.assertEqual(len(blob), 128)
        self.assertEqual(
            blob[:28].hex(), "1c0000000100000003660000048000000800000014000000" "48000000"
        )

    def test_randomIV(self) -> None:
        """
        Without an IV each response is different, and each verifies.
        """
        first = mbiResponse(SECRET, NONCE)
        second = mbiResponse(SECRET, NONCE)
        self.assertNotEqual(first, second)
        self.assertTrue(verifyMBIResponse(SECRET, NONCE, first))
        self.assertTrue(verifyMBIResponse(SECRET, NONCE, second))

    def test_verifyAcceptsVector(self) -> None:
        """
        The reference response verifies against its secret and nonce.
        """
        self.assertTrue(verifyMBIResponse(SECRET, NONCE, MBI_VECTOR))

    def test_verifyRejectsTampering(self) -> None:
        """
        Flipping any single byte of header, IV, hash or ciphertext is detected.
        """
        blob = bytearray(base64.b64decode(MBI_VECTOR))
        for offset in (0, 4, 8, 12, 16, 20, 24, 28, 35, 36, 55, 56, 100, 127):
            tampered = bytearray(blob)
            tampered[offset] ^= 0x01
            self.assertFalse(
                verifyMBIResponse(SECRET, NONCE, base64.b64encode(bytes(tampered)).decode()),
                f"offset {offset}",
            )

    def test_verifyRejectsWrongInputs(self) -> None:
        """
        Another nonce or another secret does not verify.
        """
        self.assertFalse(verifyMBIResponse(SECRET, NONCE[::-1], MBI_VECTOR))
        self.assertFalse(verifyMBIResponse(TB_SECRET, NONCE, MBI_VECTOR))

    def test_verifyRejectsGarbage(self) -> None:
        """
        Malformed responses, secrets and nonces give C{False}, never an exception.
        """
        for response in ("", "!!!!", "AAAA", MBI_VECTOR[:-4], MBI_VECTOR + "AAAA", "\u00e9" * 8):
            self.assertFalse(verifyMBIResponse(SECRET, NONCE, response), response)
        self.assertFalse(verifyMBIResponse("not base64!", NONCE, MBI_VECTOR))
        self.assertFalse(verifyMBIResponse(SECRET, "n\u00f6nce", MBI_VECTOR))
        self.assertFalse(verifyMBIResponse(SECRET, "", MBI_VECTOR))
        self.assertFalse(verifyMBIResponse(None, NONCE, MBI_VECTOR))  # type: ignore[arg-type]

    def test_badInputsRaise(self) -> None:
        """
        L{mbiResponse} refuses a non-base64 secret, a bad IV and an unusable nonce.
        """
        self.assertRaises(ValueError, mbiResponse, "***", NONCE)
        self.assertRaises(ValueError, mbiResponse, SECRET, NONCE, b"short")
        self.assertRaises(ValueError, mbiResponse, SECRET, "n\u00f6nce-12")
        self.assertRaises(ValueError, mbiResponse, SECRET, "odd")


class BuildRequestTests(SynchronousTestCase):
    """
    L{buildRST2Request} builds the WLM 2009 envelope of section 2.6.4.
    """

    def build(self, account: str = "alice@example.com", password: str = "s3cret!") -> bytes:
        return buildRST2Request(
            account, password, "MBI_KEY_OLD", "1262304000", "2010-01-01T00:00:00Z", "2010-01-01T00:05:00Z"
        )

    def test_envelope(self) -> None:
        """
        The body is well-formed SOAP 1.2 with the header fields in place.
        """
        body = self.build()
        self.assertTrue(body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'))
        root = parseXML(body)
        self.assertEqual(root.tag, f"{{{SOAP12_NS}}}Envelope")
        header = findPath(root, "Header")
        assert header is not None
        self.assertEqual(
            [localName(c.tag) for c in header], ["Action", "To", "MessageID", "AuthInfo", "Security"]
        )
        texts = {localName(e.tag): (e.text or "") for e in root.iter()}
        self.assertEqual(texts["Action"], "http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue")
        self.assertEqual(texts["To"], "HTTPS://login.live.com:443//RST2.srf")
        self.assertEqual(texts["MessageID"], "1262304000")
        self.assertEqual(texts["BinaryVersion"], "5")
        self.assertEqual(texts["Username"], "alice@example.com")
        self.assertEqual(texts["Password"], "s3cret!")
        self.assertEqual(texts["Created"], "2010-01-01T00:00:00Z")
        self.assertEqual(texts["Expires"], "2010-01-01T00:05:00Z")

    def test_tokens(self) -> None:
        """
        The seven WLM 2009 tokens come in order RST0..RST6 with their policies,
        the NS's policy on C{messengerclear.live.com} and none on the tb token.
        """
        root = parseXML(buildRST2Request("a@b.c", "p", "POLICY&X", "1", "c", "e"))
        found = []
        for rst in iterByName(root, "RequestSecurityToken"):
            address = findPath(rst, "AppliesTo", "EndpointReference", "Address")
            policy = next(iterByName(rst, "PolicyReference"), None)
            self.assertEqual(
                (findPath(rst, "RequestType").text),  # type: ignore[union-attr]
                "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue",
            )
            found.append(
                (rst.get("Id"), address.text if address is not None else None,
                 None if policy is None else policy.get("URI"))
            )
        self.assertEqual(
            found,
            [
                ("RST0", PASSPORT_TB, None),
                ("RST1", MESSENGER_CLEAR, "POLICY&X"),
                ("RST2", MESSENGER_WEB, "?id=507"),
                ("RST3", "messengersecure.live.com", "MBI_SSL"),
                ("RST4", CONTACTS, "MBI"),
                ("RST5", "storage.msn.com", "MBI"),
                ("RST6", "sup.live.com", "MBI"),
            ],
        )
        self.assertEqual([t.address for t in WLM2009_TOKENS], [f[1] for f in found])

    def test_escapingAndTruncation(self) -> None:
        """
        Markup characters in account and password are escaped, and only the
        first 16 characters of the password are sent.
        """
        password = "<&pa'ss\"word>0123456789-TAIL"
        body = self.build(account="a&b<c@example.com", password=password)
        self.assertIn(b"&lt;&amp;pa", body)
        self.assertNotIn(b"TAIL", body)
        root = parseXML(body)
        texts = {localName(e.tag): (e.text or "") for e in root.iter()}
        self.assertEqual(texts["Password"], password[:16])
        self.assertEqual(texts["Username"], "a&b<c@example.com")


class ParseResponseTests(SynchronousTestCase):
    """
    L{parseSSOResponse} on successful answers.
    """

    def test_h1Length(self) -> None:
        """
        The fixture is the exact 7927-byte body of section 8.3.
        """
        self.assertEqual(len(H1_RESPONSE), 7927)

    def test_h1(self) -> None:
        """
        The H1 response gives the messengerclear ticket (unescaped) and its
        own secret, the contacts ticket, the CID and the PUID.
        """
        result = parseSSOResponse(H1_RESPONSE)
        self.assertEqual(result.messengerTicket, CLEAR_TICKET)
        self.assertEqual(result.messengerSecret, SECRET)
        self.assertEqual(result.contactsTicket, CONTACTS_TICKET)
        self.assertEqual(result.token(MESSENGER_WEB).ticket, WEB_TICKET)
        self.assertEqual(result.token(MESSENGER_WEB).binarySecret, TB_SECRET)
        self.assertEqual(result.token(MESSENGER_CLEAR).expires, "2010-01-02T00:00:00Z")
        self.assertEqual(result.cid, "a1b2c3d4e5f60718")
        self.assertEqual(result.puid, "0003BFFDB7D5F624")
        self.assertEqual(
            set(result.tokens),
            {t.address for t in WLM2009_TOKENS},
        )
        tb = result.token(PASSPORT_TB)
        self.assertEqual(tb.binarySecret, TB_SECRET)
        self.assertIn("T1BBUVVFLURBLVRPS0VOLUZPUi1URVNUUw==", tb.ticket)

    def test_h1MBI(self) -> None:
        """
        The secret read from H1 computes the fixture's MBI response.
        """
        result = parseSSOResponse(H1_RESPONSE)
        self.assertEqual(mbiResponse(result.messengerSecret, NONCE, IV), MBI_VECTOR)

    def test_rst2Form(self) -> None:
        """
        An RST2 answer with reordered tokens and mismatched Ids is matched by
        address; a token without a proof key has none.
        """
        result = parseSSOResponse(RST2_RESPONSE)
        self.assertEqual(result.messengerTicket, "t=clear&p=x<y")
        self.assertEqual(result.messengerSecret, "AQID")
        self.assertEqual(result.contactsTicket, "t=contacts&p=")
        self.assertIsNone(result.token(CONTACTS).binarySecret)
        self.assertEqual(result.token(CONTACTS).expires, "2010-01-02T00:00:00Z")
        self.assertEqual(result.token(PASSPORT_TB).binarySecret, TB_SECRET)
        self.assertEqual(result.cid, "00000000000000cd")
        self.assertEqual(result.puid, "00000000000000AB")

    def test_missingToken(self) -> None:
        """
        Asking for a token the server did not issue raises L{AuthenticationError}.
        """
        result = parseSSOResponse(RST2_RESPONSE)
        self.assertRaises(AuthenticationError, result.token, "storage.msn.com")
        self.assertRaises(AuthenticationError, lambda: SSOResult(tokens={}).contactsTicket)

    def test_noMessengerClear(self) -> None:
        """
        A successful-looking answer without the messengerclear token is a
        refused login.
        """
        body = H1_RESPONSE.replace(b"messengerclear.live.com", b"elsewhere.live.com")
        e = self.assertRaises(AuthenticationError, parseSSOResponse, body)
        self.assertIn("0x48803", str(e))

    def test_messengerClearWithoutSecret(self) -> None:
        """
        A messengerclear token without a BinarySecret cannot sign in.
        """
        body = RST2_RESPONSE.replace(b"<wst:BinarySecret>AQID</wst:BinarySecret>", b"")
        self.assertRaises(AuthenticationError, parseSSOResponse, body)

    def test_secretNotBase64(self) -> None:
        """
        A messengerclear BinarySecret that is not base64 is a service error.
        """
        body = RST2_RESPONSE.replace(b">AQID<", b">A*ID<")
        e = self.assertRaises(ServiceError, parseSSOResponse, body)
        self.assertNotIsInstance(e, AuthenticationError)

    def test_reprs(self) -> None:
        """
        No repr of a result or a token shows a ticket or a secret.
        """
        result = parseSSOResponse(H1_RESPONSE)
        self.assertEqual(_secretsIn(repr(result)), [])
        self.assertEqual(_secretsIn(str(result)), [])
        for token in result.tokens.values():
            self.assertEqual(_secretsIn(repr(token)), [])
        self.assertIn(MESSENGER_CLEAR, repr(result))
        token = SecurityToken("x", ticket=CLEAR_TICKET, binarySecret=SECRET, expires=None)
        self.assertEqual(_secretsIn(repr(token)), [])


class ParseFaultTests(SynchronousTestCase):
    """
    L{parseSSOResponse} turns every kind of fault into the right exception.
    """

    def test_soap11FailedAuthentication(self) -> None:
        """
        C{wsse:FailedAuthentication} gives L{AuthenticationError} with the reason.
        """
        e = self.assertRaises(AuthenticationError, parseSSOResponse, FAULT_SOAP11)
        self.assertIn("Authentication Failure", str(e))

    def test_soap12FailedAuthentication(self) -> None:
        """
        The SOAP 1.2 C{wst:FailedAuthentication} subcode gives
        L{AuthenticationError} with the reason and the detail text.
        """
        e = self.assertRaises(AuthenticationError, parseSSOResponse, FAULT_SOAP12)
        self.assertIn("Authentication Failure", str(e))
        self.assertIn("The entered and stored passwords do not match.", str(e))

    def test_faultUnderEnvelope(self) -> None:
        """
        A fault directly under the envelope, with no body, is still found.
        """
        e = self.assertRaises(AuthenticationError, parseSSOResponse, FAULT_NO_BODY)
        self.assertIn("Bad password here", str(e))

    def test_psfError(self) -> None:
        """
        Any other C{psf:} fault code is an authentication failure.
        """
        body = FAULT_NO_BODY.replace(b"wsse:FailedAuthentication", b"psf:AccountLocked")
        body = body.replace(b"<S:Envelope ", b'<S:Envelope xmlns:psf="urn:x" ')
        self.assertRaises(AuthenticationError, parseSSOResponse, body)

    def test_redirect(self) -> None:
        """
        C{psf:Redirect} raises L{SSORedirect} carrying the URL.
        """
        e = self.assertRaises(SSORedirect, parseSSOResponse, redirectFault("https://msnia.login.live.com/RST2.srf"))
        self.assertEqual(e.url, "https://msnia.login.live.com/RST2.srf")
        self.assertIsInstance(e, ServiceError)

    def test_redirectWithoutURL(self) -> None:
        """
        A redirect without a URL is a service error, not a redirect.
        """
        e = self.assertRaises(ServiceError, parseSSOResponse, redirectFault(""))
        self.assertNotIsInstance(e, SSORedirect)

    def test_invalidRequest(self) -> None:
        """
        C{wst:InvalidRequest} is a L{ServiceError} (not an authentication
        failure) carrying the fault code and text.
        """
        e = self.assertRaises(ServiceError, parseSSOResponse, INVALID_REQUEST_SOAP12)
        self.assertNotIsInstance(e, AuthenticationError)
        self.assertEqual(e.faultCode, "wst:InvalidRequest")
        self.assertIn("Invalid Request", e.faultString or "")

    def test_otherFault(self) -> None:
        """
        A generic server fault is a L{ServiceError} with code and string.
        """
        body = FAULT_SOAP11.replace(b"wsse:FailedAuthentication", b"S:Server").replace(
            b"Authentication Failure", b"Busy"
        )
        e = self.assertRaises(ServiceError, parseSSOResponse, body)
        self.assertNotIsInstance(e, AuthenticationError)
        self.assertEqual((e.faultCode, e.faultString), ("S:Server", "Busy"))

    def test_garbage(self) -> None:
        """
        Malformed XML, a DTD and a non-SOAP document are service errors.
        """
        for body in (b"", b"<S:Envelope", b"<html><body>oops</body></html>",
                     b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', b"\xff\xfe"):
            e = self.assertRaises(ServiceError, parseSSOResponse, body)
            self.assertNotIsInstance(e, AuthenticationError)


class _Recorder(Resource):
    """
    A fake STS: each POST is recorded and answered by C{answer(request)}.
    """

    isLeaf = True

    def __init__(self, answer: Callable[[Request], object]) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[tuple[bytes, bytes, Optional[bytes]]] = []

    def render_POST(self, request: Request) -> object:
        assert request.content is not None
        body = request.content.read()
        contentType = request.getHeader(b"content-type")
        self.requests.append((request.path, body, contentType))
        return self.answer(request)


def _answer(body: bytes, status: int = 200) -> Callable[[Request], bytes]:
    def answer(request: Request) -> bytes:
        request.setResponseCode(status)
        return body

    return answer


class SSOClientTests(SynchronousTestCase):
    """
    L{SSOClient} over L{StubTreq}.
    """

    URL = "http://127.0.0.1/RST2.srf"

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1262304000)

    def request(self, resource: Resource, url: str = URL) -> tuple[list[object], list[Failure], StubTreq]:
        stub = StubTreq(resource)
        client = SSOClient(stub, url, self.clock, timeout=30)
        results: list[object] = []
        failures: list[Failure] = []
        d = client.requestTokens("alice@example.com", "s3cret!", "MBI_KEY_OLD")
        d.addCallbacks(results.append, failures.append)
        stub.flush()
        return results, failures, stub

    def test_success(self) -> None:
        """
        One POST of the RST2 envelope, timestamped from the injected clock,
        with the SOAP 1.2 content type, gives the parsed tokens.
        """
        resource = _Recorder(_answer(H1_RESPONSE))
        results, failures, _ = self.request(resource)
        self.assertEqual(failures, [])
        [result] = results
        assert isinstance(result, SSOResult)
        self.assertEqual(result.messengerTicket, CLEAR_TICKET)
        [(path, body, contentType)] = resource.requests
        self.assertEqual(path, b"/RST2.srf")
        self.assertEqual(contentType, b"application/soap+xml; charset=utf-8")
        self.assertEqual(
            body,
            buildRST2Request("alice@example.com", "s3cret!", "MBI_KEY_OLD", "1262304000",
                             "2010-01-01T00:00:00Z", "2010-01-01T00:05:00Z"),
        )

    def test_faultWithStatus500(self) -> None:
        """
        A SOAP fault is parsed even with HTTP 500.
        """
        results, failures, _ = self.request(_Recorder(_answer(FAULT_SOAP12, 500)))
        [failure] = failures
        failure.trap(AuthenticationError)

    def test_successWithOddStatus(self) -> None:
        """
        The body decides: a token collection is accepted whatever the status.
        """
        results, failures, _ = self.request(_Recorder(_answer(H1_RESPONSE, 500)))
        self.assertEqual(len(results), 1)

    def test_htmlError(self) -> None:
        """
        HTTP 500 with an HTML page (well-formed or not) is a L{ServiceError}
        carrying the status.
        """
        for page in (b"<html><body>Internal error</body></html>", b"<html><p>broken<br></html>"):
            results, failures, _ = self.request(_Recorder(_answer(page, 500)))
            [failure] = failures
            error = failure.value
            assert isinstance(error, ServiceError)
            self.assertNotIsInstance(error, AuthenticationError)
            self.assertEqual(error.status, 500)
            self.assertIn("500", str(error))

    def test_redirectFollowed(self) -> None:
        """
        C{psf:Redirect} makes the client repost the identical request to the
        given URL.
        """
        def answer(request: Request) -> bytes:
            if request.path == b"/first/RST2.srf":
                return redirectFault("http://127.0.0.1/second/RST2.srf")
            return H1_RESPONSE

        resource = _Recorder(answer)
        results, failures, _ = self.request(resource, "http://127.0.0.1/first/RST2.srf")
        self.assertEqual(failures, [])
        self.assertEqual(len(results), 1)
        self.assertEqual([r[0] for r in resource.requests], [b"/first/RST2.srf", b"/second/RST2.srf"])
        self.assertEqual(resource.requests[0][1], resource.requests[1][1])

    def test_redirectLoop(self) -> None:
        """
        At most three redirects are followed; the fourth is a L{ServiceError}.
        """
        resource = _Recorder(_answer(redirectFault("http://127.0.0.1/again/RST2.srf")))
        results, failures, _ = self.request(resource)
        [failure] = failures
        failure.trap(ServiceError)
        self.assertNotIsInstance(failure.value, SSORedirect)
        self.assertEqual(len(resource.requests), 4)

    def test_redirectDowngradeRefused(self) -> None:
        """
        A redirect from https to plain http (which would send the password in
        clear) or to a non-HTTP URL is refused without being followed.
        """
        for target in ("http://127.0.0.1/RST2.srf", "file:///etc/passwd"):
            resource = _Recorder(_answer(redirectFault(target)))
            results, failures, _ = self.request(resource, "https://127.0.0.1/RST2.srf")
            [failure] = failures
            failure.trap(ServiceError)
            self.assertEqual(len(resource.requests), 1)

    def test_timeout(self) -> None:
        """
        A service that never answers fails the request with L{ServiceError}
        once the timeout passes on the injected clock, and not before.
        """
        pending: list[Request] = []

        def never(request: Request) -> object:
            pending.append(request)
            return NOT_DONE_YET

        results, failures, stub = self.request(_Recorder(never))
        self.assertEqual((results, failures), ([], []))
        self.clock.advance(29)
        stub.flush()
        self.assertEqual((results, failures), ([], []))
        self.clock.advance(2)
        stub.flush()
        [failure] = failures
        failure.trap(ServiceError)
        self.assertEqual(len(pending), 1)

    def test_logsHideSecrets(self) -> None:
        """
        The log names the account but never the password, ticket or secret.
        """
        with capturedLogs() as events:
            results, failures, _ = self.request(_Recorder(_answer(H1_RESPONSE)))
            self.request(_Recorder(_answer(FAULT_SOAP12, 500)))
        text = "\n".join(formatEvent(e) for e in events)
        self.assertIn("alice@example.com", text)
        self.assertNotIn("s3cret!", text)
        self.assertEqual(_secretsIn(text), [])
        self.assertEqual(_secretsIn(repr(results)), [])
