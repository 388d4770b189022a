"""
Tests for L{msnp.p2p.slp} and L{msnp.p2p.msnobject}: the MSNSLP text and
the MSN object value, against the examples of MSNP18-p2p.md (P.4, P.6,
P.7.3) and MSNP18.md 4.6.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.p2p import slp
from msnp.p2p.errors import MalformedSLP
from msnp.p2p.msnobject import MalformedMSNObject, MSNObject, friendlyName

BOB_PICTURE = (
    '<msnobj Creator="bob@example.com" Size="2500" Type="3" Location="0" Friendly="AAA=" '
    'SHA1D="jz4WI70y7KFAlnRbFX/3UciOKqc=" SHA1C="5xct/RNObrBXtSWHz2mQeLbqjec="/>'
)
CALL_ID = "{7B1C3D5E-9A2B-4C6D-8E0F-1A2B3C4D5E6F}"
BRANCH = "{2F4E6D8C-1B3A-4958-A7B6-C5D4E3F2A1B0}"
CONTEXT = (
    "PG1zbm9iaiBDcmVhdG9yPSJib2JAZXhhbXBsZS5jb20iIFNpemU9IjI1MDAiIFR5cGU9IjMiIExvY2F0aW9uPSIwIiBGcmllbmRseT0iQUFB"
    "PSIgU0hBMUQ9Imp6NFdJNzB5N0tGQWxuUmJGWC8zVWNpT0txYz0iIFNIQTFDPSI1eGN0L1JOT2JyQlh0U1dIejJtUWVMYnFqZWM9Ii8+"
)


def invite() -> slp.SLPMessage:
    return slp.buildInvite(
        "bob@example.com", "alice@example.com", eufGuid=slp.EUF_MSN_OBJECT, sessionId=1234567,
        appId=12, context=MSNObject.parse(BOB_PICTURE).contextValue(), callId=CALL_ID, branch=BRANCH,
    )


class SLPBuildTests(SynchronousTestCase):
    def test_invite(self) -> None:
        """
        The INVITE of P.4.1: 634 bytes, Content-Length 307 (NUL counted),
        CRLF line ends, one NUL at the end, the reference's Context.
        """
        data = invite().encode()
        self.assertEqual(len(data), 634)
        self.assertTrue(data.startswith(b"INVITE MSNMSGR:bob@example.com MSNSLP/1.0\r\nTo: <msnmsgr:bob@example.com>\r\n"))
        self.assertIn(b"Content-Length: 307\r\n\r\nEUF-GUID: {A4268EEC-FEC5-49E5-95C3-F126696BDBF6}\r\n", data)
        self.assertIn(f"Context: {CONTEXT}\r\n\r\n\0".encode(), data)
        self.assertEqual(data.count(b"\0"), 1)
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))

    def test_okAndDecline(self) -> None:
        """
        200 OK is 325 bytes with To/From swapped, the INVITE's branch and
        Call-ID, CSeq 1 and body SessionID (Content-Length 23); 603 the same.
        """
        request = slp.parseSLP(invite().encode())
        ok = slp.buildResponse(request, "bob@example.com", 200).encode()
        self.assertEqual(len(ok), 325)
        parsed = slp.parseSLP(ok)
        self.assertEqual((parsed.status, parsed.reason, parsed.header("CSeq")), (200, "OK", "1"))
        self.assertEqual((parsed.sender, parsed.recipient), ("bob@example.com", "alice@example.com"))
        self.assertEqual((parsed.branch, parsed.callId, parsed.sessionId), (BRANCH, CALL_ID, 1234567))
        self.assertIn(b"Content-Length: 23\r\n", ok)
        decline = slp.buildResponse(request, "bob@example.com", 603).encode()
        self.assertTrue(decline.startswith(b"MSNSLP/1.0 603 Decline\r\n"))

    def test_bye(self) -> None:
        """
        BYE with a fresh branch: 348 bytes, sessionclosebody, SessionID.
        """
        data = slp.buildBye("bob@example.com", "alice@example.com", CALL_ID, 1234567).encode()
        self.assertEqual(len(data), 348)
        bye = slp.parseSLP(data)
        self.assertEqual((bye.method, bye.contentType, bye.sessionId), ("BYE", slp.SESSION_CLOSE, 1234567))

    def test_transportDecline(self) -> None:
        """
        The answer to a direct-connection proposal is 83 body bytes, and
        names C{Hashed-Nonce} when the request did.
        """
        request = slp.parseSLP(invite().encode())
        data = slp.buildTransportDecline(request, "bob@example.com").encode()
        self.assertIn(b"Content-Length: 83\r\n", data)
        self.assertIn(b"Listening: false\r\n", data)


class SLPParseTests(SynchronousTestCase):
    def test_lenient(self) -> None:
        """
        MSNPSharp's sorted headers without the space before C{;branch}, a
        trailing space in C{CSeq: 0 }, a wrong Content-Length, a v2 address
        and lower-case header names are all read.
        """
        text = (
            "MSNSLP/1.0 200 OK\r\ncall-id: {AAAA}\r\nContent-Length: 999\r\nContent-Type: application/x-msnmsgr-sessionreqbody\r\n"
            "CSeq: 0 \r\nFrom: <msnmsgr:Bob@Example.com;{0A1B}>\r\nTo: <msnmsgr:alice@example.com>\r\n"
            "Via: MSNSLP/1.0/TLP;branch={BBBB}\r\n\r\nSessionID: 42\r\n\r\n\0trailing"
        ).encode()
        m = slp.parseSLP(text)
        self.assertEqual((m.callId, m.branch, m.sender, m.sessionId, m.header("cseq")), ("{AAAA}", "{BBBB}", "bob@example.com", 42, "0"))

    def test_malformed(self) -> None:
        """
        No start line, no blank line, bad URI, not UTF-8, too long.
        """
        for data in [b"", b"hello\r\n\r\n", b"INVITE MSNMSGR:a MSNSLP/1.0\r\nTo: x", b"INVITE http://a MSNSLP/1.0\r\n\r\n",
                     b"MSNSLP/1.0 2000 OK\r\n\r\n", b"\xff\xfe\r\n\r\n", b"INVITE MSNMSGR:a MSNSLP/1.0\r\n\r\n" + b"a" * slp.MAX_SLP]:
            self.assertRaises(MalformedSLP, slp.parseSLP, data)

    def test_badSessionId(self) -> None:
        """
        A SessionID that is not a 32-bit decimal reads as L{None}.
        """
        for value in ("-1", "abc", "99999999999", ""):
            m = slp.parseSLP(f"BYE MSNMSGR:a MSNSLP/1.0\r\n\r\nSessionID: {value}\r\n\r\n\0".encode())
            self.assertIsNone(m.sessionId)


class MSNObjectTests(SynchronousTestCase):
    def test_vector(self) -> None:
        """
        The test vector of MSNP18.md 4.6: SHA1D, SHA1C and the XML.
        """
        obj = MSNObject.fromData("alice@example.com", b"This is not really a PNG, just 42 bytes...")
        self.assertEqual((obj.sha1d, obj.sha1c), ("PQ1sTQRAp9miTyUOAG5ooofCo7c=", "QT+2InKnxcp9nFinkbi4zWVn+NU="))
        self.assertEqual(
            obj.toXml(),
            '<msnobj Creator="alice@example.com" Size="42" Type="3" Location="0" Friendly="AAA=" '
            'SHA1D="PQ1sTQRAp9miTyUOAG5ooofCo7c=" SHA1C="QT+2InKnxcp9nFinkbi4zWVn+NU="/>',
        )
        self.assertEqual(MSNObject.parse(obj.toXml()), obj)

    def test_parseKeepsText(self) -> None:
        """
        A parsed object keeps its exact text (requesters return it in
        Context) and its unknown attributes; the Context is P.4.1's.
        """
        text = BOB_PICTURE.replace("/>", ' stamp="x &amp; y"/>')
        obj = MSNObject.parse(text)
        self.assertEqual(obj.toXml(), text)
        self.assertEqual(obj.extra, (("stamp", "x & y"),))
        self.assertEqual(MSNObject.parse(BOB_PICTURE).contextValue(), CONTEXT)
        self.assertTrue(obj.checksumValid())
        self.assertTrue(obj.matches(bytes((7 * i) % 256 for i in range(2500))))

    def test_contextForms(self) -> None:
        """
        Context with a trailing NUL (the v2 capture) and a URL-encoded one
        (MSNPSharp) both decode.
        """
        import base64
        from urllib.parse import quote

        withNul = base64.b64encode(BOB_PICTURE.encode() + b"\0").decode()
        self.assertEqual(MSNObject.fromContext(withNul), MSNObject.parse(BOB_PICTURE))
        self.assertEqual(MSNObject.fromContext(quote(BOB_PICTURE, safe="")), MSNObject.parse(BOB_PICTURE))
        self.assertRaises(MalformedMSNObject, MSNObject.fromContext, "!!!")

    def test_anyOrderAndQuotes(self) -> None:
        """
        Attributes in papyon's order, single quotes, no SHA1C.
        """
        obj = MSNObject.parse("<msnobj Creator='a@b' Type='3' SHA1D='x' Size='5' Location='0' Friendly='AAA='/>")
        self.assertEqual((obj.creator, obj.size, obj.type, obj.sha1c), ("a@b", 5, 3, None))

    def test_malformed(self) -> None:
        """
        Not an element, missing fields, junk, non-numeric Size, too long.
        """
        for text in ["", "<msnobj/>", "<foo Creator='a'/>", '<msnobj Creator="a" Size="x" Type="3" SHA1D="y"/>',
                     '<msnobj Creator="a" Size="1" Type="3" SHA1D="y" junk/>', "<msnobj " + "a" * 5000 + "/>",
                     '<msnobj Creator="a" Size="1" Type="3" SHA1D="y"/><x/>']:
            self.assertRaises(MalformedMSNObject, MSNObject.parse, text)

    def test_friendly(self) -> None:
        """
        C{me.png} is C{bQBlAC4AcABuAGcAAAA=}; an empty name is C{AAA=}.
        """
        self.assertEqual(friendlyName("me.png"), "bQBlAC4AcABuAGcAAAA=")
        self.assertEqual(friendlyName(""), "AAA=")
