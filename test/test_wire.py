"""
Tests for L{msnp.wire}: the pure codec, checked against the seed's client
lines and the exact lines and payload bytes of the reference (sections 1.4,
1.6, 8.2 and 8.4), with no transport at all.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ProtocolError
from msnp.wire import (
    REDACTED,
    Command,
    Direction,
    MalformedLine,
    decodeParameter,
    encodeParameter,
    parseCommand,
    parseLine,
    redactArguments,
    serialize,
    serializeCommand,
)

S = Direction.FROM_SERVER
C = Direction.FROM_CLIENT

# -- the exact payloads of reference 8.2 / 8.4 ---------------------------------------

PROFILE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
    b"LoginTime: 1262304000\r\nEmailEnabled: 1\r\nMemberIdHigh: 3\r\n"
    b"MemberIdLow: -1105625088\r\nlang_preference: 1033\r\n"
    b"preferredEmail: alice@example.com\r\ncountry: US\r\nPostalCode: \r\n"
    b"Gender: \r\nKid: 0\r\nAge: \r\nBDayPre: \r\nBirthday: \r\nWallet: \r\n"
    b"Flags: 536872513\r\nsid: 507\r\nMSPAuth: EwCoARAnAAAUclearTICKETexample0001$$\r\n"
    b"ClientIP: 203.0.113.7\r\nClientPort: 41478\r\nABCHMigrated: 1\r\nMPOPEnabled: 1\r\n\r\n"
)
MDATA = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n"
    b"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM>"
    b"<QNM>204800</QNM></Q></MD>\r\nInbox-URL: /cgi-bin/HoTMaiL\r\n"
    b"Folders-URL: /cgi-bin/folders\r\nPost-URL: http://www.hotmail.com\r\n"
)
TXT = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nHi Bob! \xc3\xa7a va?"
)
TYPING_BOB = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\n"
    b"TypingUser: bob@example.com\r\n\r\n\r\n"
)
REPLY = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nFine, thanks!"
)
QRY_ANSWER = b"6e92a312bf6b70ee58e75a1e3315695c"
ADL_INITIAL = (
    b'<ml l="1"><d n="example.com"><c n="bob" l="3" t="1" /></d>'
    b'<d n="example.net"><c n="carol" l="3" t="1" /></d></ml>'
)
UBX_BOB = (
    b"<Data><PSM>Bob here</PSM><CurrentMedia></CurrentMedia>"
    b'<EndpointData id="{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}">'
    b"<Capabilities>2789003324:48</Capabilities></EndpointData></Data>"
)
GCF_POLICY = (
    b'<Policies><Policy type="SHIELDS"><config><shield><cli maj="7" min="0" minbld="0" '
    b'maxbld="9999" deny=" " /></shield><block></block></config></Policy>'
    b'<Policy type="ABCH"><policy><set id="push" service="ABCH" priority="200">'
    b'<r id="pushstorage" threshold="180000" /></set><set id="using_notifications" '
    b'service="ABCH" priority="100"><r id="pullab" threshold="0" timer="1800000" '
    b'trigger="Timer" /><r id="pullmembership" threshold="0" timer="1800000" '
    b'trigger="Timer" /></set></policy></Policy></Policies>'
)
UUX_DATA = (
    b"<Data><PSM>Hello from the test suite</PSM><CurrentMedia></CurrentMedia>"
    b"<MachineGuid>&#x7B;6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B&#x7D;</MachineGuid>"
    b"<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene>"
    b"<ColorScheme>-3</ColorScheme></Data>"
)
ML_241 = b'<ml><d n="example.com"><c n="bob" l="8" t="1" /></d></ml>'

TICKET = "t=EwCoARAnAAAUclearTICKETexample0001&p=EwCoAPROFILEexample0001"
MBI = (
    "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAECAwQFBgcIBUQ8AAL5VDBfLONtwsPx147ByTKty+fielcWrvtz"
    "opbRKqSZzZULFzX+Qo082gcyUgKJq8GIftWY1RkvnEHfx3PtZOsdgFdDueHlpupL9Odgatraf+QTiNF3xpY="
)
GUID = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
SB_AUTH = "17262740.1050826919.32308"


class PayloadSizeTests(SynchronousTestCase):
    """
    The fixture payloads themselves have the byte counts the reference
    announces, so the tests below really exercise those exact lengths.
    """

    def test_sizes(self) -> None:
        """
        Each payload has exactly the length printed next to it in 8.2/8.4.
        """
        sizes = {
            "PROFILE": (PROFILE, 448), "MDATA": (MDATA, 289), "TXT": (TXT, 132),
            "TYPING_BOB": (TYPING_BOB, 88), "REPLY": (REPLY, 130), "QRY": (QRY_ANSWER, 32),
            "ADL": (ADL_INITIAL, 113), "UBX": (UBX_BOB, 176), "GCF": (GCF_POLICY, 497),
            "UUX": (UUX_DATA, 241), "241": (ML_241, 57),
        }
        for label, (payload, size) in sizes.items():
            self.assertEqual(len(payload), size, label)


class SeedLineTests(SynchronousTestCase):
    """
    The seed's first three client lines (C{/r/n} standing for CRLF).
    """

    def test_ver(self) -> None:
        """
        C{VER 1 MSNP18 MSNP17 CVR0} parses with TrID 1 and serializes back
        to the same bytes.
        """
        line = b"VER 1 MSNP18 MSNP17 CVR0\r\n"
        command = parseCommand(line, C)
        self.assertEqual(command, Command("VER", 1, ("MSNP18", "MSNP17", "CVR0")))
        self.assertEqual(serialize(command), line)

    def test_cvr(self) -> None:
        """
        The seed's C{CVR 2 ...} keeps all eight arguments in order.
        """
        line = b"CVR 2 0x0804 winnt 5.1 i386 MSNMSGR 14.0.8089.0726 msmsgs test@live.cn\r\n"
        command = parseCommand(line, C)
        self.assertEqual(command.trid, 2)
        self.assertEqual(
            command.arguments,
            ("0x0804", "winnt", "5.1", "i386", "MSNMSGR", "14.0.8089.0726", "msmsgs", "test@live.cn"),
        )
        self.assertIsNone(command.payload)
        self.assertEqual(serialize(command), line)

    def test_usr(self) -> None:
        """
        C{USR 3 SSO I test@live.cn} round-trips and is not redacted (it
        holds no secret).
        """
        line = b"USR 3 SSO I test@live.cn\r\n"
        command = parseCommand(line, C)
        self.assertEqual(command, Command("USR", 3, ("SSO", "I", "test@live.cn")))
        self.assertEqual(command.describe(), "USR 3 SSO I test@live.cn")
        self.assertEqual(serialize(command), line)

    def test_seedServerLines(self) -> None:
        """
        The seed's server replies: C{VER 1 MSNP18} and C{XFR 3 NS host U D}.
        """
        self.assertEqual(parseCommand(b"VER 1 MSNP18\r\n", S), Command("VER", 1, ("MSNP18",)))
        self.assertEqual(
            parseCommand(b"XFR 3 NS 207.46.124.241:1863 U D\r\n", S),
            Command("XFR", 3, ("NS", "207.46.124.241:1863", "U", "D")),
        )


class ServerPayloadTests(SynchronousTestCase):
    """
    Every server-to-client payload command of reference 1.4, with the exact
    lines and bytes of 8.2 where the transcript has them.
    """

    def check(self, line: bytes, payload: bytes, expected: Command) -> None:
        command = parseCommand(line + payload, S)
        self.assertEqual(command, expected)
        self.assertEqual(serialize(command), line + payload)

    def test_msgProfile(self) -> None:
        """
        C{MSG Hotmail Hotmail 448} has no TrID and carries PROFILE.
        """
        self.check(b"MSG Hotmail Hotmail 448\r\n", PROFILE, Command("MSG", None, ("Hotmail", "Hotmail"), PROFILE))

    def test_msgMailData(self) -> None:
        """
        C{MSG Hotmail Hotmail 289} carries MDATA.
        """
        self.check(b"MSG Hotmail Hotmail 289\r\n", MDATA, Command("MSG", None, ("Hotmail", "Hotmail"), MDATA))

    def test_msgSwitchboard(self) -> None:
        """
        C{MSG bob@example.com Bob 88} (typing) and C{... 130} (text).
        """
        self.check(b"MSG bob@example.com Bob 88\r\n", TYPING_BOB, Command("MSG", None, ("bob@example.com", "Bob"), TYPING_BOB))
        self.check(b"MSG bob@example.com Bob 130\r\n", REPLY, Command("MSG", None, ("bob@example.com", "Bob"), REPLY))

    def test_gcf(self) -> None:
        """
        C{GCF 0 497}: TrID 0 and the 497-byte policy.
        """
        self.check(b"GCF 0 497\r\n", GCF_POLICY, Command("GCF", 0, (), GCF_POLICY))

    def test_ubx(self) -> None:
        """
        C{UBX 1:bob@example.com 176} has no TrID; C{UBX ... 0} has an empty
        payload (not L{None}).
        """
        self.check(b"UBX 1:bob@example.com 176\r\n", UBX_BOB, Command("UBX", None, ("1:bob@example.com",), UBX_BOB))
        self.check(b"UBX 1:alice@example.com 0\r\n", b"", Command("UBX", None, ("1:alice@example.com",), b""))

    def test_ubxOldForm(self) -> None:
        """
        The MSNP15-17 form C{UBX account netId len} keeps both tokens.
        """
        self.check(b"UBX bob@example.com 1 3\r\n", b"<a/", Command("UBX", None, ("bob@example.com", "1"), b"<a/"))

    def test_not(self) -> None:
        """
        C{NOT len} has no TrID.
        """
        self.check(b"NOT 5\r\n", b"<NOTI", Command("NOT", None, (), b"<NOTI"))

    def test_ubnUbmIpg(self) -> None:
        """
        C{UBN}, C{UBM} and C{IPG} carry payloads and no TrID.
        """
        self.check(b"UBN bob@example.com;{A} 5 3\r\n", b"abc", Command("UBN", None, ("bob@example.com;{A}", "5"), b"abc"))
        self.check(b"UBM bob@example.com 32 alice@example.com 1 2 3\r\n", b"xyz",
                   Command("UBM", None, ("bob@example.com", "32", "alice@example.com", "1", "2"), b"xyz"))
        self.check(b"IPG 2\r\n", b"hi", Command("IPG", None, (), b"hi"))

    def test_serverListChange(self) -> None:
        """
        Server-initiated C{ADL 0 len} / C{RML 0 len} carry an C{<ml>}.
        """
        self.check(b"ADL 0 57\r\n", ML_241, Command("ADL", 0, (), ML_241))
        self.check(b"RML 0 57\r\n", ML_241, Command("RML", 0, (), ML_241))

    def test_fqyNfySdgPutDelGet(self) -> None:
        """
        The remaining server payload commands: C{FQY}, C{NFY PUT}, C{SDG 0},
        C{PUT trid OK 0}, C{GET}.
        """
        self.check(b"FQY 7 4\r\n", b"<ml>", Command("FQY", 7, (), b"<ml>"))
        self.check(b"NFY PUT 2\r\n", b"ab", Command("NFY", None, ("PUT",), b"ab"))
        self.check(b"SDG 0 2\r\n", b"ab", Command("SDG", 0, (), b"ab"))
        self.check(b"PUT 9 OK 0\r\n", b"", Command("PUT", 9, ("OK",), b""))
        self.check(b"DEL 9 OK 0\r\n", b"", Command("DEL", 9, ("OK",), b""))
        self.check(b"GET 9 2\r\n", b"ab", Command("GET", 9, (), b"ab"))

    def test_uuxReply(self) -> None:
        """
        C{UUX 10 0}: the reply to UUX, TrID 10 and an empty payload.
        """
        self.check(b"UUX 10 0\r\n", b"", Command("UUX", 10, (), b""))

    def test_errorWithPayload(self) -> None:
        """
        C{241 12 57} carries the echoed C{<ml>}: TrID 12, no arguments, the
        57 bytes as payload, and serializes back identically.
        """
        command = parseCommand(b"241 12 57\r\n" + ML_241, S)
        self.assertEqual(command, Command("241", 12, (), ML_241))
        self.assertTrue(command.isError)
        self.assertEqual(command.errorCode, 241)
        self.assertEqual(serialize(command), b"241 12 57\r\n" + ML_241)

    def test_errorWithoutPayload(self) -> None:
        """
        C{911 4} has TrID 4 and no payload.
        """
        command = parseCommand(b"911 4\r\n", S)
        self.assertEqual(command, Command("911", 4))
        self.assertEqual(command.errorCode, 911)

    def test_errorNonNumericSecond(self) -> None:
        """
        An odd C{500 4 busy} is still an error for TrID 4, without a payload
        (dropping it would leave the request waiting until its timeout).
        """
        command = parseCommand(b"500 4 busy\r\n", S)
        self.assertEqual(command, Command("500", 4, ("busy",)))

    def test_notAnError(self) -> None:
        """
        Ordinary commands are not errors and have no error code.
        """
        command = Command("NLN", None, ("NLN",))
        self.assertFalse(command.isError)
        self.assertIsNone(command.errorCode)


class ClientPayloadTests(SynchronousTestCase):
    """
    Every client-to-server payload command of reference 1.4, read the way
    the local network's servers read them.
    """

    def check(self, line: bytes, payload: bytes, expected: Command) -> None:
        command = parseCommand(line + payload, C)
        self.assertEqual(command, expected)
        self.assertEqual(serialize(command), line + payload)
        self.assertEqual(
            serializeCommand(expected.name, expected.trid, expected.arguments, expected.payload),
            line + payload,
        )

    def test_qry(self) -> None:
        """
        C{QRY 5 PROD0120PW!CCV9@ 32} and the 32 hex characters, no CRLF.
        """
        self.check(b"QRY 5 PROD0120PW!CCV9@ 32\r\n", QRY_ANSWER, Command("QRY", 5, ("PROD0120PW!CCV9@",), QRY_ANSWER))

    def test_adl(self) -> None:
        """
        C{ADL 6 113} and the initial list.
        """
        self.check(b"ADL 6 113\r\n", ADL_INITIAL, Command("ADL", 6, (), ADL_INITIAL))

    def test_adlBadMembership(self) -> None:
        """
        C{ADL 12 57}, the request that 1.6's C{241 12 57} answers.
        """
        self.check(b"ADL 12 57\r\n", ML_241, Command("ADL", 12, (), ML_241))

    def test_msgText(self) -> None:
        """
        C{MSG 3 N 132} with TXT, whose UTF-8 C{ç} makes bytes differ from
        characters.
        """
        self.check(b"MSG 3 N 132\r\n", TXT, Command("MSG", 3, ("N",), TXT))
        self.assertEqual(len(TXT.decode("utf-8")), 131)

    def test_uux(self) -> None:
        """
        C{UUX 10 241} with the Data document.
        """
        self.check(b"UUX 10 241\r\n", UUX_DATA, Command("UUX", 10, (), UUX_DATA))

    def test_others(self) -> None:
        """
        C{RML}, C{FQY}, C{UUN}, C{UUM}, C{UBM}, C{NOT}, C{PUT}, C{DEL},
        C{SDG}, C{SDC}, C{PGD}, C{VAS} all frame by their last token.
        """
        for name, args in [
            ("RML", ()), ("FQY", ()), ("UUN", ("bob@example.com;{A}", "5")),
            ("UUM", ("bob@example.com", "32", "1")), ("UBM", ("a", "1", "b", "1", "1")),
            ("NOT", ()), ("PUT", ()), ("DEL", ()), ("SDG", ()), ("SDC", ("x",)),
            ("PGD", ("x",)), ("VAS", ("x",)),
        ]:
            command = Command(name, 4, args, b"<x>\xc3\xa7")
            self.check(serialize(command)[:-5], b"<x>\xc3\xa7", command)

    def test_clientNoTrid(self) -> None:
        """
        C{PNG} and C{OUT} from a client never carry a TrID.
        """
        self.assertEqual(parseCommand(b"PNG\r\n", C), Command("PNG"))
        self.assertEqual(parseCommand(b"OUT\r\n", C), Command("OUT"))

    def test_gcfFromClientIsNoPayload(self) -> None:
        """
        The old client C{GCF trid Shields.xml} is not a payload command.
        """
        self.assertEqual(parseCommand(b"GCF 3 Shields.xml\r\n", C), Command("GCF", 3, ("Shields.xml",)))


class TrapTests(SynchronousTestCase):
    """
    The three lines of reference 1.4 that look like payload commands but
    are not, and a few neighbours.
    """

    def test_qryReply(self) -> None:
        """
        A server C{QRY 5}: 5 is the TrID, never a length.
        """
        parsed = parseLine(b"QRY 5", S)
        self.assertIsNone(parsed.payloadLength)
        self.assertEqual(parsed.withPayload(None), Command("QRY", 5))

    def test_adlOk(self) -> None:
        """
        C{ADL 6 OK}, C{RML 6 OK}, C{UUN 6 OK} are replies without payload.
        """
        for name in ("ADL", "RML", "UUN"):
            parsed = parseLine(f"{name} 6 OK".encode(), S)
            self.assertIsNone(parsed.payloadLength, name)
            self.assertEqual(parsed.withPayload(None), Command(name, 6, ("OK",)))

    def test_chl(self) -> None:
        """
        C{CHL 0 22210219642164014968}: a 20-digit challenge, not a length.
        """
        command = parseCommand(b"CHL 0 22210219642164014968\r\n", S)
        self.assertEqual(command, Command("CHL", 0, ("22210219642164014968",)))

    def test_qngIsNotATrid(self) -> None:
        """
        C{QNG 50}: 50 seconds, not a TrID.
        """
        self.assertEqual(parseCommand(b"QNG 50\r\n", S), Command("QNG", None, ("50",)))

    def test_rngSessionIdIsNotATrid(self) -> None:
        """
        C{RNG 11752013 ...}: the session id stays an argument.
        """
        command = parseCommand(
            b"RNG 11752013 207.46.108.38:1863 CKI 849102291.520491113 bob@example.com Bob U messenger.msn.com 1\r\n", S
        )
        self.assertIsNone(command.trid)
        self.assertEqual(command.arg(0), "11752013")

    def test_serverNoTrid(self) -> None:
        """
        Server commands that never carry a TrID keep a leading number as an
        argument; C{ILN}, C{SBS}, C{CAL}, C{IRO}, C{ACK} have one.
        """
        self.assertEqual(parseCommand(b"NLN NLN 1:bob@example.com Bob 2789003324:48 0\r\n", S).trid, None)
        self.assertEqual(parseCommand(b"FLN 1:bob@example.com 0:0\r\n", S).arguments, ("1:bob@example.com", "0:0"))
        self.assertEqual(parseCommand(b"JOI bob@example.com Bob 2789003324:48\r\n", S).trid, None)
        self.assertEqual(parseCommand(b"BYE bob@example.com\r\n", S).trid, None)
        self.assertEqual(parseCommand(b"OUT OTH\r\n", S), Command("OUT", None, ("OTH",)))
        self.assertEqual(parseCommand(b"SBS 0 null\r\n", S), Command("SBS", 0, ("null",)))
        self.assertEqual(parseCommand(b"CAL 2 RINGING 11752013\r\n", S), Command("CAL", 2, ("RINGING", "11752013")))
        self.assertEqual(parseCommand(b"ACK 3\r\n", S), Command("ACK", 3))
        self.assertEqual(parseCommand(b"IRO 1 1 1 bob@example.com Bob 1:0\r\n", S).trid, 1)

    def test_nonNumericLength(self) -> None:
        """
        A payload command whose last token is neither a length nor a reply
        form is malformed, with no payload to skip.
        """
        for line in (b"MSG Hotmail Hotmail x12", b"ADL 6 KO", b"GCF 0 -5", b"NOT 1e3"):
            e = self.assertRaises(MalformedLine, parseLine, line, S)
            self.assertIsNone(e.payloadLength)
            self.assertIsInstance(e, ProtocolError)

    def test_missingLength(self) -> None:
        """
        A client payload command with no arguments at all is malformed.
        """
        self.assertRaises(MalformedLine, parseLine, b"ADL", C)
        self.assertRaises(MalformedLine, parseLine, b"NOT", S)


class LineShapeTests(SynchronousTestCase):
    """
    What the parser accepts and refuses in a line.
    """

    def test_bareLF(self) -> None:
        """
        A line ended by a bare LF parses like its CRLF twin.
        """
        self.assertEqual(parseCommand(b"VER 1 MSNP18\n", S), parseCommand(b"VER 1 MSNP18\r\n", S))

    def test_extraSpaces(self) -> None:
        """
        Doubled and trailing spaces are tolerated, even on a payload line
        (the length is still found).
        """
        self.assertEqual(parseCommand(b"CHG 11  NLN 0 \r\n", S), Command("CHG", 11, ("NLN", "0")))
        self.assertEqual(parseLine(b"MSG Hotmail Hotmail 448 ", S).payloadLength, 448)

    def test_badNames(self) -> None:
        """
        Names that are not three upper-case letters or three digits are
        refused.
        """
        for line in (b"", b"ver 1", b"VE 1", b"VERS 1", b"V3R 1", b"\xc3\xa7AB 1", b" VER 1", b"12 3"):
            self.assertRaises(MalformedLine, parseLine, line, S)

    def test_invalidUTF8KeepsLength(self) -> None:
        """
        A payload line with invalid UTF-8 is malformed but still says how
        many payload bytes follow, so a reader can skip them.
        """
        e = self.assertRaises(MalformedLine, parseLine, b"MSG \xff\xfe Bob 12", S)
        self.assertEqual(e.payloadLength, 12)
        e = self.assertRaises(MalformedLine, parseLine, b"CHG 1 \xff", S)
        self.assertIsNone(e.payloadLength)

    def test_hugeLength(self) -> None:
        """
        A length of 2**63 or with hundreds of digits is reported as huge
        without converting the digits.
        """
        self.assertEqual(parseLine(b"MSG a b " + str(10**17 + 3).encode(), S).payloadLength, 10**17 + 3)
        self.assertGreaterEqual(parseLine(b"MSG a b " + str(2**63).encode(), S).payloadLength or 0, 10**18)
        self.assertGreaterEqual(parseLine(b"MSG a b " + b"9" * 500, S).payloadLength or 0, 10**18)

    def test_nonAsciiDigits(self) -> None:
        """
        Unicode digits are neither lengths nor TrIDs.
        """
        self.assertRaises(MalformedLine, parseLine, "GCF 0 \u0663".encode(), S)
        self.assertEqual(parseLine("VER \u0663 MSNP18".encode(), S).trid, None)

    def test_unicodeArguments(self) -> None:
        """
        Non-ASCII arguments decode as UTF-8.
        """
        self.assertEqual(parseCommand("PRP 7 MFN Ça\r\n".encode(), S).arguments, ("MFN", "Ça"))

    def test_parseCommandLengthMismatch(self) -> None:
        """
        L{parseCommand} refuses a payload of the wrong size, bytes after a
        payload-less line, and a missing terminator.
        """
        self.assertRaises(MalformedLine, parseCommand, b"GCF 0 5\r\nabc", S)
        self.assertRaises(MalformedLine, parseCommand, b"VER 1 MSNP18\r\nxx", S)
        self.assertRaises(MalformedLine, parseCommand, b"VER 1 MSNP18", S)

    def test_arg(self) -> None:
        """
        L{Command.arg} returns the default for a short line.
        """
        command = Command("XFR", 3, ("NS", "h:1"))
        self.assertEqual(command.arg(1), "h:1")
        self.assertEqual(command.arg(-1), "h:1")
        self.assertEqual(command.arg(5), "")
        self.assertEqual(command.arg(5, "x"), "x")


class SerializeTests(SynchronousTestCase):
    """
    L{serializeCommand} measures payloads in bytes and refuses arguments
    that would break the framing.
    """

    def test_lengthInBytes(self) -> None:
        """
        The length token counts UTF-8 bytes, not characters.
        """
        payload = "ça va? 日本".encode("utf-8")
        data = serializeCommand("MSG", 3, ["N"], payload)
        self.assertEqual(data, b"MSG 3 N " + str(len(payload)).encode() + b"\r\n" + payload)
        self.assertNotEqual(len(payload), len("ça va? 日本"))

    def test_emptyPayload(self) -> None:
        """
        An empty payload is written as length 0; L{None} as no length.
        """
        self.assertEqual(serializeCommand("UUX", 10, (), b""), b"UUX 10 0\r\n")
        self.assertEqual(serializeCommand("PNG"), b"PNG\r\n")

    def test_refusesSpacesAndBreaks(self) -> None:
        """
        An argument with a space, CR or LF, or an empty one, is refused.
        """
        for bad in ("a b", "a\r", "a\nVER 2", "", "\r\n"):
            self.assertRaises(ValueError, serializeCommand, "PRP", 1, ["MFN", bad])
        self.assertRaises(ValueError, serializeCommand, "P G", 1, [])

    def test_refusesStrPayload(self) -> None:
        """
        A str payload is refused (its length would be in characters).
        """
        self.assertRaises(TypeError, serializeCommand, "MSG", 1, ["N"], "ça")  # type: ignore[arg-type]

    def test_refusesNegativeTrid(self) -> None:
        """
        A negative TrID is refused.
        """
        self.assertRaises(ValueError, serializeCommand, "VER", -1, ["MSNP18"])

    def test_encodedParameterSerializes(self) -> None:
        """
        A display name with spaces goes on the wire once encoded.
        """
        self.assertEqual(
            serializeCommand("PRP", 7, ["MFN", encodeParameter("Alice Liddell")]),
            b"PRP 7 MFN Alice%20Liddell\r\n",
        )


class PercentEncodingTests(SynchronousTestCase):
    """
    L{encodeParameter} and L{decodeParameter}.
    """

    def test_space(self) -> None:
        """
        A space is C{%20}, never C{+}.
        """
        self.assertEqual(encodeParameter("a b"), "a%20b")
        self.assertEqual(decodeParameter("Segoe%20UI"), "Segoe UI")

    def test_slash(self) -> None:
        """
        C{/} is percent-encoded (C{%2F}) in a parameter, as WLM does: a
        display name with a slash never reaches the wire bare.
        """
        self.assertEqual(encodeParameter("AC/DC"), "AC%2FDC")
        self.assertEqual(decodeParameter("AC%2FDC"), "AC/DC")

    def test_plusLiteral(self) -> None:
        """
        C{+} is encoded as C{%2B} and a literal C{+} decodes as itself.
        """
        self.assertEqual(encodeParameter("C++"), "C%2B%2B")
        self.assertEqual(decodeParameter("a+b"), "a+b")

    def test_utf8(self) -> None:
        """
        Non-ASCII text is encoded as percent-escaped UTF-8 bytes.
        """
        self.assertEqual(encodeParameter("ç"), "%C3%A7")
        self.assertEqual(decodeParameter("%C3%A7a"), "ça")
        self.assertEqual(decodeParameter("%c3%a7"), "ç")

    def test_noUnsafeCharacters(self) -> None:
        """
        The encoding never contains a space, CR, LF or C{%} not followed by
        two hex digits, and round-trips.
        """
        text = "a b\r\n%25 +;&=/?#日本\x00~-._"
        encoded = encodeParameter(text)
        for c in " \r\n+":
            self.assertNotIn(c, encoded)
        self.assertEqual(decodeParameter(encoded), text)

    def test_malformedEscapes(self) -> None:
        """
        Malformed escapes stay as they are.
        """
        for text in ("%", "%2", "%zz", "100%", "%%41"):
            self.assertEqual(decodeParameter(text), text.replace("%41", "A"))

    def test_invalidUTF8(self) -> None:
        """
        Escapes that decode to invalid UTF-8 become U+FFFD, never an error.
        """
        self.assertEqual(decodeParameter("%FF"), "\ufffd")
        self.assertEqual(decodeParameter("a%C3"), "a\ufffd")


class RedactionTests(SynchronousTestCase):
    """
    L{Command.describe} and C{repr} never show tickets, MBI responses or
    switchboard auth strings.
    """

    def assertHidden(self, command: Command, *secrets: str) -> None:
        for text in (command.describe(), repr(command), str(command)):
            for secret in secrets:
                self.assertNotIn(secret, text)
            self.assertIn(REDACTED, text)

    def test_usrSsoS(self) -> None:
        """
        C{USR 4 SSO S ticket response guid}: ticket and response hidden,
        the GUID kept.
        """
        command = parseCommand(f"USR 4 SSO S {TICKET} {MBI} {GUID}\r\n".encode(), C)
        self.assertHidden(command, TICKET, MBI, "EwCoARAnAAAU", "HAAAAAEAAAAD")
        self.assertEqual(command.describe(), f"USR 4 SSO S {REDACTED} {REDACTED} {GUID}")

    def test_usrShaA(self) -> None:
        """
        C{USR trid SHA A ticket}: the circle ticket is hidden.
        """
        self.assertHidden(Command("USR", 9, ("SHA", "A", "circleTICKET")), "circleTICKET")

    def test_switchboardUsr(self) -> None:
        """
        SB C{USR 1 account;{guid} auth}: the auth string is hidden, even
        on a line without TrID; the reply C{USR 1 OK ...} is shown whole.
        """
        self.assertHidden(Command("USR", 1, (f"alice@example.com;{GUID}", SB_AUTH)), SB_AUTH)
        self.assertHidden(Command("USR", None, (f"alice@example.com;{GUID}", SB_AUTH)), SB_AUTH)
        reply = Command("USR", 1, ("OK", f"alice@example.com;{GUID}", "Alice"))
        self.assertNotIn(REDACTED, reply.describe())

    def test_ans(self) -> None:
        """
        C{ANS trid account;{guid} auth sessid}: auth hidden, session id kept.
        """
        command = Command("ANS", 1, (f"bob@example.com;{GUID}", SB_AUTH, "11752013"))
        self.assertHidden(command, SB_AUTH)
        self.assertIn("11752013", command.describe())
        self.assertHidden(Command("ANS", None, ("bob@example.com", SB_AUTH, "1")), SB_AUTH)

    def test_xfrSb(self) -> None:
        """
        C{XFR 12 SB host CKI auth ...}: the auth string is hidden.
        """
        command = parseCommand(
            f"XFR 12 SB 207.46.108.38:1863 CKI {SB_AUTH} U messenger.msn.com 1\r\n".encode(), S
        )
        self.assertHidden(command, SB_AUTH)
        self.assertIn("207.46.108.38:1863", command.describe())

    def test_rng(self) -> None:
        """
        C{RNG sessid host CKI auth inviter name ...}: the auth string is hidden.
        """
        command = parseCommand(
            f"RNG 11752013 207.46.108.38:1863 CKI {SB_AUTH} bob@example.com Bob U messenger.msn.com 1\r\n".encode(), S
        )
        self.assertHidden(command, SB_AUTH)
        self.assertIn("bob@example.com", command.describe())

    def test_payloadSummarised(self) -> None:
        """
        A payload (PROFILE holds the MSPAuth ticket) is shown as its size only.
        """
        command = Command("MSG", None, ("Hotmail", "Hotmail"), PROFILE)
        self.assertEqual(command.describe(), "MSG Hotmail Hotmail <448 bytes>")
        self.assertNotIn("EwCoAR", repr(command))

    def test_redactArguments(self) -> None:
        """
        L{redactArguments} works on argument lists that include the TrID.
        """
        self.assertEqual(
            redactArguments("USR", ["4", "SSO", "S", "t", "r", GUID]),
            ["4", "SSO", "S", REDACTED, REDACTED, GUID],
        )
        self.assertEqual(redactArguments("VER", ["1", "MSNP18"]), ["1", "MSNP18"])
        self.assertEqual(redactArguments("XFR", ["3", "NS", "h:1", "U", "D"]), ["3", "NS", "h:1", "U", "D"])


class ParseIncomingTests(SynchronousTestCase):
    """
    L{msnp.wire.parseIncoming}, the reader's one-step form of L{parseLine}.
    """

    def test_payloadlessLineIsACommand(self) -> None:
        """
        A line without a payload becomes the L{Command} that
        C{parseLine(...).withPayload(None)} gives: equal, same hash and repr,
        and still frozen.
        """
        from dataclasses import FrozenInstanceError

        from msnp.wire import parseIncoming

        for line, direction in [
            (b"NLN AWY 1:bob@example.com Bob%20B 2789003324:48 0", Direction.FROM_SERVER),
            (b"CHG 12 NLN 0:0 0\r", Direction.FROM_SERVER),
            (b"911 3", Direction.FROM_SERVER),
            (b"PNG", Direction.FROM_CLIENT),
            (b"ADL 6 OK", Direction.FROM_SERVER),
        ]:
            got = parseIncoming(line, direction)
            expected = parseLine(line, direction).withPayload(None)
            self.assertIsInstance(got, Command)
            self.assertEqual(got, expected)
            self.assertEqual(hash(got), hash(expected))
            self.assertEqual(repr(got), repr(expected))
            self.assertRaises(FrozenInstanceError, setattr, got, "name", "XXX")

    def test_payloadLineIsAParsedLine(self) -> None:
        """
        A line that announces a payload (zero bytes included) stays a
        L{ParsedLine} waiting for it.
        """
        from msnp.wire import ParsedLine, parseIncoming

        from dataclasses import FrozenInstanceError

        got = parseIncoming(b"UBX 1:bob@example.com 12", Direction.FROM_SERVER)
        expected = ParsedLine("UBX", None, ("1:bob@example.com",), 12)
        self.assertEqual(got, expected)
        self.assertEqual((hash(got), repr(got)), (hash(expected), repr(expected)))
        self.assertRaises(FrozenInstanceError, setattr, got, "payloadLength", 1)
        self.assertEqual(
            parseIncoming(b"241 4 0", Direction.FROM_SERVER), ParsedLine("241", 4, (), 0)
        )

    def test_badNamesStillRefusedAfterGoodOnes(self) -> None:
        """
        Remembering well-formed names never lets a malformed one through.
        """
        from msnp.wire import parseIncoming

        parseIncoming(b"NLN NLN 1:a@b.c", Direction.FROM_SERVER)
        for line in (b"nln NLN 1:a@b.c", b"NL NLN", b"NLNX NLN", b"N1N x", b"\xd9\xa3\xd9\xa3\xd9\xa3 x"):
            self.assertRaises(MalformedLine, parseIncoming, line, Direction.FROM_SERVER)
            self.assertRaises(MalformedLine, parseLine, line, Direction.FROM_SERVER)

    def test_decodeParameterRepeats(self) -> None:
        """
        L{decodeParameter} gives the same answer on a repeated value (it is
        memoised, in a bounded cache).
        """
        from msnp.wire import decodeParameter

        for _ in range(3):
            self.assertEqual(decodeParameter("Bob%20%E2%98%83%zz+"), "Bob \u2603%zz+")
            self.assertEqual(decodeParameter("%C3("), "\ufffd(")
        self.assertIsNotNone(decodeParameter.cache_info().maxsize)
