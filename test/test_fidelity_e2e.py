"""
End-to-end tests, over real loopback sockets and real HTTP, of the places
where real clients and the local network disagreed and the real service
did what the clients expect (issue #19, "Fidelity to real clients";
docs/fidelity.md).
"""

from __future__ import annotations

import time



from msnp.namespaces import AB_NS
from msnp.server.accountmodel import BLOCK
from msnp.sso import buildRST2Request, parseSSOResponse
from msnp.server.nsurl import LOGIN_FORM_PATH

from test.support import GUID_A, GUID_B, LimitsTestCase, Raw, httpClient

GUID_C = "{22222222-3333-4444-5555-666666666666}"

TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello from a WLM 2009 tab"


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class FidelityTestCase(LimitsTestCase):
    """
    A started network with alice, bob and carol, and an HTTP client.
    """

    @property
    def httpBase(self) -> str:
        return self.endpoints.sso.rsplit("/", 1)[0]

    async def post(self, path: str, body: bytes, **headers: str) -> tuple[int, bytes]:
        client = httpClient()
        response = await client.post(
            self.httpBase + path, data=body,
            headers={k.replace("_", "-"): [v] for k, v in headers.items()},
        )
        return response.code, await response.content()

    def rst(self, email: str = "alice@example.com", password: str = "pw") -> bytes:
        now = time.time()
        return buildRST2Request(email, password, "MBI_KEY_OLD", "1", _iso(now), _iso(now + 300))

    async def abchCall(self, path: str, action: str, body: str, email: str = "alice@example.com") -> tuple[int, bytes]:
        account = self.network.store.get(email)
        assert account is not None
        ticket = self.network.store.issueTickets(account).contactsTicket
        envelope = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
            f'<ABApplicationHeader xmlns="{AB_NS}"><ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11'
            "</ApplicationId><IsMigration>false</IsMigration><PartnerScenario>Initial</PartnerScenario>"
            f'</ABApplicationHeader><ABAuthHeader xmlns="{AB_NS}"><ManagedGroupRequest>false'
            f"</ManagedGroupRequest><TicketToken>{ticket.replace('&', '&amp;')}</TicketToken></ABAuthHeader>"
            f"</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
        )
        return await self.post(
            path, envelope.encode("utf-8"), SOAPAction=f'"http://www.msn.com/webservices/AddressBook/{action}"',
            Content_Type="text/xml; charset=utf-8",
        )


class PathRoutingTests(FidelityTestCase):
    """
    Paths are routed as IIS did: repeated slashes collapsed, case ignored.
    """

    async def test_doubledSlashSignIn(self) -> None:
        """
        C{POST //RST.srf} and C{//rst2.SRF} issue tokens, as C{/RST2.srf}
        does (a widely used client posts to the doubled-slash form).
        """
        await self.start()
        for path in ("//RST.srf", "//rst2.SRF", "///RST2.srf", "/RST2.srf"):
            code, body = await self.post(path, self.rst(), Content_Type="application/soap+xml")
            self.assertEqual(code, 200, path)
            result = parseSSOResponse(body)
            self.assertTrue(result.tokens, path)

    async def test_doubledSlashAddressBook(self) -> None:
        """
        The ABCH services answer under C{//abservice//abservice.asmx} and
        in any case (C{/ABService/ABService.asmx}).
        """
        await self.start()
        for path in ("//abservice/abservice.asmx", "/abservice//abservice.asmx", "//ABService/ABService.asmx"):
            code, body = await self.abchCall(path, "ABFindContactsPaged", f'<ABFindContactsPaged xmlns="{AB_NS}"/>')
            self.assertEqual(code, 200, path)
            self.assertIn(b"<ABFindContactsPagedResponse", body, path)

    async def test_unknownStillNotFound(self) -> None:
        """
        Collapsing does not invent resources: an unknown path is still 404.
        """
        await self.start()
        for path in ("//nothing.srf", "/abservice/nothing.asmx", "//"):
            code, _ = await self.post(path, b"x")
            self.assertEqual(code, 404, path)


class DynamicItemTests(FidelityTestCase):
    """
    C{AddDynamicItem}/C{UpdateDynamicItem} answer success, as the service did.
    """

    async def test_dynamicItems(self) -> None:
        """
        Both calls answer HTTP 200 with their empty response element and
        change nothing in the address book.
        """
        await self.start()
        account = self.network.store.get("alice@example.com")
        assert account is not None
        before = (dict(account.addressBook), account.displayName)
        for action in ("AddDynamicItem", "UpdateDynamicItem"):
            body = (
                f'<{action} xmlns="{AB_NS}"><abId>00000000-0000-0000-0000-000000000000</abId>'
                "<dynamicItems><DynamicItem><Type>Passport</Type><PassportName>alice@example.com"
                "</PassportName><Notifications><NotificationData><StoreService><Info><Handle><Id>0</Id>"
                "<Type>Profile</Type><ForeignId>MyProfile</ForeignId></Handle><InverseRequired>false"
                "</InverseRequired><IsBot>false</IsBot></Info><Changes/><LastChange>0001-01-01T00:00:00"
                "</LastChange><Deleted>false</Deleted></StoreService><Status>Exist Access</Status>"
                "</NotificationData></Notifications><Changes>Notifications</Changes></DynamicItem>"
                f"</dynamicItems></{action}>"
            )
            code, answer = await self.abchCall("/abservice/abservice.asmx", action, body)
            self.assertEqual(code, 200, action)
            self.assertIn(f"<{action}Response".encode(), answer)
            self.assertNotIn(b"Fault", answer)
        self.assertEqual((dict(account.addressBook), account.displayName), before)


class CircleTicketTests(FidelityTestCase):
    """
    C{ABFindContactsPaged} always has a C{CircleTicket} in C{CircleResult}.
    """

    async def test_ticketWithoutCircles(self) -> None:
        """
        An account in no circle still gets a C{CircleTicket} (the schema
        requires it; it is what C{USR SHA A} presents).
        """
        await self.start()
        if not hasattr(self.network, "circles"):
            self.skipTest("circles are not wired into ABCH in this tree (the circles branch does that)")
        code, body = await self.abchCall(
            "/abservice/abservice.asmx", "ABFindContactsPaged", f'<ABFindContactsPaged xmlns="{AB_NS}"/>'
        )
        self.assertEqual(code, 200)
        result = body.split(b"<CircleResult>", 1)[1].split(b"</CircleResult>", 1)[0]
        self.assertIn(b"<CircleTicket>", result)
        self.assertIn(b"SignedTicket", result)


class URLTests(FidelityTestCase):
    """
    C{URL} is answered (reference 4.15).
    """

    async def test_inboxAndCompose(self) -> None:
        """
        C{URL 8 INBOX} gets C{URL 8 /cgi-bin/HoTMaiL <login form> 2}, the
        login form on the network's own HTTP site; C{COMPOSE} names the
        address.
        """
        await self.start()
        ns = await self.signIn("alice@example.com")
        ns.send("URL 8 INBOX")
        url = await ns.expect("URL")
        self.assertEqual(url.trid, 8)
        self.assertEqual(url.arguments, ("/cgi-bin/HoTMaiL", self.httpBase + LOGIN_FORM_PATH, "2"))
        ns.send("URL 9 COMPOSE bob@example.com")
        url = await ns.expect("URL")
        self.assertEqual((url.trid, url.arguments[0]), (9, "/cgi-bin/compose?mailto=1&to=bob@example.com"))
        ns.send("URL 10")
        url = await ns.expect("URL")
        self.assertEqual((url.trid, url.arguments[0], url.arguments[2]), (10, "/cgi-bin/HoTMaiL", "2"))


class SelfCallTests(FidelityTestCase):
    """
    A switchboard opened the WLM 2009 way: C{CAL} of one's own account
    first, wait for C{RINGING}, then C{CAL} the contact, then chat.
    """

    async def _chat(self, sb: Raw, bobNS: Raw) -> Raw:
        sb.send("CAL 3 bob@example.com")
        cal = await sb.expect("CAL")
        self.assertEqual(cal.arguments[0], "RINGING")
        bobSB = await self.answer(bobNS, "bob@example.com")
        await sb.expect("JOI")
        sb.send(b"MSG 4 A %d\r\n" % len(TEXT) + TEXT)
        await sb.expect("ACK")
        message = await bobSB.expect("MSG")
        self.assertEqual(message.arguments[0], "alice@example.com")
        self.assertTrue((message.payload or b"").endswith(b"hello from a WLM 2009 tab"))
        return bobSB

    async def test_selfCallAloneThenChat(self) -> None:
        """
        With no other place signed in, C{CAL 2 <own address>} answers
        C{CAL 2 RINGING <session>} (not 215), rings nobody, and the
        conversation with bob then works.
        """
        await self.start()
        alice = await self.signIn("alice@example.com", GUID_A)
        bob = await self.signIn("bob@example.com", GUID_B)
        sb = await self.switchboard(alice, "alice@example.com", GUID_A)
        sb.send("CAL 2 alice@example.com")
        cal = await sb.expect("CAL")
        self.assertEqual((cal.trid, cal.arguments[0]), (2, "RINGING"))
        sessionId = cal.arguments[1]
        await self._chat(sb, bob)
        await self.ping(alice)
        self.assertEqual(alice.named("RNG"), [])
        self.assertEqual(sb.named("215"), [])
        self.assertTrue(sessionId)

    async def test_selfCallRingsOtherPlaces(self) -> None:
        """
        Signed in at two places (MSNP18), the self-CAL rings the other
        place only; it answers and the caller sees C{JOI alice;{epid}}; the
        message to bob reaches bob and alice's other place.
        """
        await self.start()
        aliceA = await self.signIn("alice@example.com", GUID_A)
        aliceC = await self.signIn("alice@example.com", GUID_C)
        bob = await self.signIn("bob@example.com", GUID_B)
        sb = await self.switchboard(aliceA, "alice@example.com", GUID_A)
        sb.send("CAL 2 alice@example.com")
        cal = await sb.expect("CAL")
        self.assertEqual(cal.arguments[0], "RINGING")
        otherSB = await self.answer(aliceC, "alice@example.com", GUID_C)
        joi = await sb.expect("JOI")
        self.assertEqual(joi.arguments[0].lower(), f"alice@example.com;{GUID_C}".lower())
        await self._chat(sb, bob)
        echoed = await otherSB.expect("MSG")
        self.assertEqual(echoed.arguments[0], "alice@example.com")
        await self.ping(aliceA)
        self.assertEqual(aliceA.named("RNG"), [], "the calling place is not rung")
        # A second self-CAL while the first is answered rings nobody again.
        sb.send("CAL 5 alice@example.com")
        again = await sb.expect("CAL")
        self.assertEqual((again.trid, again.arguments[0]), (5, "RINGING"))
        await self.ping(aliceC)
        self.assertEqual(aliceC.named("RNG"), [])

    async def test_blockedContactStillRefused(self) -> None:
        """
        The self-CAL changes nothing of the privacy rules: a contact who
        blocks the caller still answers 217 after it.
        """
        await self.start()
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, BLOCK, "alice@example.com")
        alice = await self.signIn("alice@example.com", GUID_A)
        await self.signIn("bob@example.com", GUID_B)
        sb = await self.switchboard(alice, "alice@example.com", GUID_A)
        sb.send("CAL 2 alice@example.com")
        await sb.expect("CAL")
        sb.send("CAL 3 bob@example.com")
        await sb.expect("217")




class PasswordThreadTests(FidelityTestCase):
    """
    The SSO service checks passwords off the reactor thread.
    """

    async def test_scryptInThreadPool(self) -> None:
        """
        A sign-in over real HTTP runs the password hash's C{verify} in a
        thread other than the reactor's, and still issues tokens; a wrong
        password is still refused.
        """
        import threading

        await self.start()
        hasher = self.network.store.passwordHasher
        original = hasher.verify
        threads: list[threading.Thread] = []

        def verify(password: str, encoded: str) -> bool:
            threads.append(threading.current_thread())
            return original(password, encoded)

        self.patch(hasher, "verify", verify)
        code, body = await self.post("/RST2.srf", self.rst(), Content_Type="application/soap+xml")
        self.assertEqual(code, 200)
        self.assertTrue(parseSSOResponse(body).tokens)
        code, body = await self.post("/RST2.srf", self.rst(password="wrong"), Content_Type="application/soap+xml")
        self.assertIn(b"FailedAuthentication", body)
        self.assertEqual(len(threads), 2)
        self.assertFalse([t for t in threads if t is threading.main_thread()])
