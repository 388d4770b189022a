"""
Tests for L{msnp.xmlsafe}: peer XML is parsed without ever expanding a DTD,
resolving an entity or reading an unbounded document, and the lookup
helpers go by local name whatever the prefixes.
"""

from __future__ import annotations


import time


from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ServiceError, UnsafeXML
from msnp.xmlsafe import (
    XMLError,
    child,
    children,
    escapeText,
    findPath,
    iterByName,
    localName,
    parseXML,
    textOf,
)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<data>&secret;</data>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE data SYSTEM "http://127.0.0.1:9/evil.dtd">
<data>x</data>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x"> %remote;]>
<data/>"""

SOAP = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <FindMembershipResponse xmlns="http://www.msn.com/webservices/AddressBook">
      <FindMembershipResult><Services><Service><Info><Handle><Type>Messenger</Type>
      </Handle></Info></Service></Services></FindMembershipResult>
    </FindMembershipResponse>
  </soap:Body>
</soap:Envelope>"""


class RefusedDocumentTests(SynchronousTestCase):
    """
    Dangerous documents are refused with a typed error before expansion.
    """

    def assertRefused(self, data: bytes | str, *words: str) -> XMLError:
        error = self.assertRaises(XMLError, parseXML, data)
        for word in words:
            self.assertIn(word, str(error))
        return error

    def test_errorTypes(self) -> None:
        """
        L{XMLError} is an L{UnsafeXML} and so a L{ServiceError}: callers of
        the SOAP clients catch one family.
        """
        error = self.assertRefused(BILLION_LAUGHS)
        self.assertIsInstance(error, UnsafeXML)
        self.assertIsInstance(error, ServiceError)

    def test_billionLaughs(self) -> None:
        """
        The entity-expansion bomb is refused at once (no expansion: it takes
        far less than a second).
        """
        started = time.perf_counter()
        self.assertRefused(BILLION_LAUGHS, "DTD")
        self.assertLess(time.perf_counter() - started, 0.5)

    def test_externalEntity(self) -> None:
        """
        An external entity pointing at a local file is refused; its contents
        never appear.
        """
        self.assertRefused(EXTERNAL_ENTITY, "DTD")

    def test_externalDTD(self) -> None:
        """
        A document naming an external DTD is refused (no fetch is tried).
        """
        self.assertRefused(EXTERNAL_DTD, "DTD")

    def test_parameterEntity(self) -> None:
        """
        Parameter entities are refused too.
        """
        self.assertRefused(PARAMETER_ENTITY)

    def test_caseAndSpacing(self) -> None:
        """
        Lower-case and spaced spellings of the declaration are refused too.
        """
        self.assertRefused(b'<!doctype x [<!entity a "b">]><x>&a;</x>')
        self.assertRefused(b'<!  DocType x><x/>')

    def test_strInput(self) -> None:
        """
        A C{str} document goes through the same checks.
        """
        self.assertRefused(BILLION_LAUGHS.decode("ascii"), "DTD")

    def test_latin1Declared(self) -> None:
        """
        An ASCII-compatible encoding declaration does not hide the DTD.
        """
        data = '<?xml version="1.0" encoding="ISO-8859-1"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
        self.assertRefused(data.encode("latin-1"))

    def test_utf16HidesNoDTD(self) -> None:
        """
        A UTF-16 document cannot smuggle a DTD past the check.
        """
        data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "boom">]><x>&a;</x>'
        self.assertRaises(XMLError, parseXML, data.encode("utf-16"))

    def test_undefinedEntity(self) -> None:
        """
        A reference to an entity that was never declared is malformed, not
        silently dropped.
        """
        self.assertRefused(b"<x>&secret;</x>", "malformed")


class SizeTests(SynchronousTestCase):
    """
    The size cap.
    """

    def test_overCap(self) -> None:
        """
        A document one byte over the cap is refused unparsed, naming sizes.
        """
        data = b"<x>" + b"a" * 94 + b"</x>"
        self.assertEqual(len(data), 101)
        error = self.assertRaises(XMLError, parseXML, data, maxBytes=100)
        self.assertIn("101", str(error))
        self.assertIn("100", str(error))

    def test_atCap(self) -> None:
        """
        A document exactly at the cap is parsed.
        """
        data = b"<x>" + b"a" * 93 + b"</x>"
        self.assertEqual(parseXML(data, maxBytes=100).text, "a" * 93)

    def test_strMeasuredInBytes(self) -> None:
        """
        A C{str} is measured after UTF-8 encoding: 40 characters of 3 bytes
        each exceed a 100-byte cap.
        """
        self.assertRaises(XMLError, parseXML, "<x>" + "\u20ac" * 40 + "</x>", maxBytes=100)

    def test_defaultCapIsGenerous(self) -> None:
        """
        The default cap accepts a multi-megabyte address book.
        """
        data = b"<x>" + b"<c>contact</c>" * 200_000 + b"</x>"
        self.assertEqual(len(parseXML(data)), 200_000)


class MalformedTests(SynchronousTestCase):
    """
    Documents that are merely broken become L{XMLError}, never a crash.
    """

    def test_malformed(self) -> None:
        """
        Truncated, mismatched, empty and binary documents all raise
        L{XMLError} mentioning that the XML is malformed.
        """
        for data in (b"<a><b></a>", b"<a>", b"", b"   ", b"\xff\xfe\x00garbage", b"<a/><b/>", b"plain text"):
            error = self.assertRaises(XMLError, parseXML, data)
            self.assertIn("malformed", str(error), data)

    def test_invalidUTF8(self) -> None:
        """
        Invalid UTF-8 in a document that declares UTF-8 is malformed.
        """
        self.assertRaises(XMLError, parseXML, b'<?xml version="1.0" encoding="utf-8"?><a>\xc3\x28</a>')

    def test_characterReferenceIsText(self) -> None:
        """
        A character reference spelling C{<!DOCTYPE} is only text.
        """
        self.assertEqual(parseXML(b"<x>&#60;!DOCTYPE</x>").text, "<!DOCTYPE")

    def test_predefinedEntities(self) -> None:
        """
        The five predefined entities still work: they need no DTD.
        """
        self.assertEqual(parseXML(b"<x>&lt;&gt;&amp;&quot;&apos;</x>").text, "<>&\"'")


class LookupTests(SynchronousTestCase):
    """
    Lookups by local name, whatever the namespace prefixes.
    """

    def setUp(self) -> None:
        self.root = parseXML(SOAP)

    def test_localName(self) -> None:
        """
        The namespace part of a tag is dropped.
        """
        self.assertEqual(localName(self.root.tag), "Envelope")
        self.assertEqual(localName("plain"), "plain")

    def test_findPathAndText(self) -> None:
        """
        Paths go by local names across namespaces; a missing step is
        L{None} and L{textOf} falls back to its default.
        """
        result = findPath(self.root, "Body", "FindMembershipResponse", "FindMembershipResult")
        self.assertIsNotNone(result)
        self.assertEqual(textOf(result, "Services", "Service", "Info", "Handle", "Type"), "Messenger")
        self.assertIsNone(findPath(self.root, "Body", "Nope"))
        self.assertEqual(textOf(self.root, "Body", "Nope", default="d"), "d")
        self.assertIsNone(child(None, "x"))

    def test_iterAndChildren(self) -> None:
        """
        L{iterByName} finds descendants in document order; L{children} only
        direct children.
        """
        self.assertEqual(len(list(iterByName(self.root, "Type"))), 1)
        self.assertEqual(len(children(self.root, "Body")), 1)
        self.assertEqual(children(self.root, "Type"), [])

    def test_escapeRoundTrip(self) -> None:
        """
        Escaped text parses back to itself, as text and as an attribute.
        """
        text = "a<b>&c\"d'e"
        escaped = escapeText(text)
        self.assertEqual(parseXML(f"<x a=\"{escaped}\">{escaped}</x>").text, text)
        self.assertEqual(parseXML(f"<x a=\"{escaped}\"/>").get("a"), text)


class OnePassLookupTests(SynchronousTestCase):
    """
    L{msnp.xmlsafe.firstChildren} and L{msnp.xmlsafe.childrenByName}, the
    one-pass forms of L{child} and L{children}.
    """

    DOC = (
        b'<r xmlns:a="urn:a"><a:x>1</a:x><y>2</y><x>3</x><z><x>deep</x></z>'
        b'<y xmlns="urn:b">4</y></r>'
    )

    def test_firstChildren(self) -> None:
        """
        Each local name maps to its first direct child, as L{child} finds
        it, whatever the namespace; grandchildren are not included.
        """
        from msnp.xmlsafe import firstChildren

        root = parseXML(self.DOC)
        found = firstChildren(root)
        self.assertEqual(list(found), ["x", "y", "z"])
        for name in ("x", "y", "z"):
            self.assertIs(found[name], child(root, name))
        self.assertEqual(found["x"].text, "1")

    def test_childrenByName(self) -> None:
        """
        Each local name maps to its direct children in document order, as
        L{children} lists them.
        """
        from msnp.xmlsafe import childrenByName

        root = parseXML(self.DOC)
        found = childrenByName(root)
        for name in ("x", "y", "z"):
            self.assertEqual(found[name], children(root, name))
        self.assertEqual([e.text for e in found["y"]], ["2", "4"])
        self.assertEqual(childrenByName(parseXML(b"<r/>")), {})
