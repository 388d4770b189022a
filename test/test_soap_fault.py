"""
Where a SOAP reply's fault is looked for (issue 13): only the first child
of C{Body}, so a fault is still found, but an element named C{Fault} deep
inside a normal reply is data. And the membership list read in one pass.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from twisted.trial.unittest import SynchronousTestCase

from msnp.soap.envelope import faultFromDocument
from msnp.soap.rsi import faultIn
from msnp.soap.sharing import parseMembership
from msnp.soap.storage import faultFromDocument as storageFault
from msnp.xmlsafe import child, parseXML, soapFault

from test.soapsamples import FAULT_BODY, H2_RESPONSE

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"

#: A normal ABCH reply whose contact carries an element named Fault (and a
#: faultcode/faultstring below it) deep in its body.
NESTED_FAULT = (
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}">'
    "<soap:Body><ABFindContactsPagedResponse xmlns=\"http://www.msn.com/webservices/AddressBook\">"
    "<ABFindContactsPagedResult><Contacts><Contact><contactInfo><annotations><Annotation>"
    "<Name>X.Note</Name><Value><soap:Fault><faultcode>soap:Client</faultcode>"
    "<faultstring>not a fault</faultstring></soap:Fault></Value>"
    "</Annotation></annotations></contactInfo></Contact></Contacts>"
    "</ABFindContactsPagedResult></ABFindContactsPagedResponse></soap:Body></soap:Envelope>"
).encode("utf-8")


def envelope(body: str, ns: str = SOAP11) -> Element:
    return parseXML(f'<s:Envelope xmlns:s="{ns}"><s:Header/><s:Body>{body}</s:Body></s:Envelope>'.encode())


class SoapFaultTests(SynchronousTestCase):
    """
    L{soapFault} and the services' fault readers built on it.
    """

    def test_faultFound(self) -> None:
        """
        A C{Fault} as the first child of C{Body} is the fault, with its
        code, string and ABCH error code (SOAP 1.1 and 1.2 envelopes).
        """
        fault = faultFromDocument(parseXML(FAULT_BODY), 500)
        assert fault is not None
        self.assertEqual(fault.faultCode, "soap:Client")
        self.assertEqual(fault.errorCode, "InvalidPassportUser")
        self.assertEqual(fault.status, 500)
        for ns in (SOAP11, SOAP12):
            found = soapFault(envelope("<s:Fault><faultcode>x</faultcode></s:Fault>", ns))
            assert found is not None
            self.assertEqual(found.tag, f"{{{ns}}}Fault")

    def test_faultWithHTTP200(self) -> None:
        """
        A fault with HTTP 200 is a fault just the same.
        """
        fault = faultFromDocument(parseXML(FAULT_BODY), 200)
        assert fault is not None
        self.assertIn("HTTP 200", str(fault))

    def test_nestedFaultIsData(self) -> None:
        """
        An element named C{Fault} inside a normal response body is not
        mistaken for one, by any of the SOAP clients.
        """
        root = parseXML(NESTED_FAULT)
        self.assertIsNone(soapFault(root))
        self.assertIsNone(faultFromDocument(root, 200))
        self.assertIsNone(storageFault(root, 200))
        self.assertIsNone(faultIn(root, 200, "GetMetadata"))

    def test_faultNotFirst(self) -> None:
        """
        A C{Fault} after the response element is not the reply's fault:
        SOAP puts the fault first (and alone) in the body.
        """
        self.assertIsNone(soapFault(envelope("<Response/><s:Fault/>")))

    def test_noBody(self) -> None:
        """
        No C{Body}, or an empty one: no fault (the caller reports the
        missing body).
        """
        self.assertIsNone(soapFault(parseXML(f'<s:Envelope xmlns:s="{SOAP11}"/>'.encode())))
        self.assertIsNone(soapFault(envelope("")))

    def test_storageAndRSIFaults(self) -> None:
        """
        The storage and RSI readers find a fault in the same place.
        """
        root = envelope("<s:Fault><faultcode>s:Server</faultcode><faultstring>down</faultstring></s:Fault>")
        stored = storageFault(root, 500)
        assert stored is not None
        self.assertEqual(stored.faultCode, "s:Server")
        rsi = faultIn(root, 500, "GetMetadata")
        assert rsi is not None
        self.assertEqual(rsi.faultString, "down")


class OnePassMembershipTests(SynchronousTestCase):
    """
    L{parseMembership} takes each field as the first child of its name,
    found in one scan of each element's children.
    """

    def parse(self, document: bytes) -> Any:
        body = child(parseXML(document), "Body")
        assert body is not None
        return parseMembership(body[0])

    def test_firstFieldWins(self) -> None:
        """
        With a field repeated, the first one counts (as with a search for
        the first child of that name); unknown elements are skipped.
        """
        document = (
            f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>'
            '<FindMembershipResponse xmlns="http://www.msn.com/webservices/AddressBook" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><FindMembershipResult><Services>'
            "<Unknown/><Service><Info><Handle><Type>Messenger</Type></Handle></Info>"
            "<LastChange>first</LastChange><LastChange>second</LastChange>"
            "<Memberships><Junk/><Membership><MemberRole>Allow</MemberRole><MemberRole>Block</MemberRole>"
            "<Members><Other/>"
            '<Member xsi:type="PassportMember"><PassportName>Bob@Example.com</PassportName>'
            "<PassportName>ignored@example.com</PassportName><MembershipId>5</MembershipId>"
            "<DisplayName>Bob</DisplayName></Member>"
            "</Members></Membership></Memberships></Service></Services>"
            "</FindMembershipResult></FindMembershipResponse></soap:Body></soap:Envelope>"
        ).encode("utf-8")
        result = self.parse(document)
        self.assertEqual(result.lastChange, "first")
        self.assertEqual(result.emails("Allow"), {"bob@example.com"})
        self.assertEqual(result.emails("Block"), set())
        bob = result.members("Allow")["bob@example.com"]
        self.assertEqual((bob.membershipId, bob.displayName), (5, "Bob"))

    def test_referenceDocument(self) -> None:
        """
        The reference's H2 response reads as before.
        """
        result = self.parse(H2_RESPONSE)
        self.assertTrue(result.emails("Allow"))
        self.assertTrue(result.lastChange)
