"""
Ticket expiry and renewal (reference sections 3.2 and 7.4): the local
network's grants expire after their lifetime and the ABCH answers an
expired contacts ticket with the fault C{q0:BadContextToken}; the ABCH
clients renew the ticket once (one renewal shared by concurrent calls) and
repeat the call once; a signed-in session does so transparently.
"""

from __future__ import annotations

from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from msnp.errors import AuthenticationError, ServiceError
from msnp.server.abch import ABCHResource
from msnp.server.accounts import AccountStore
from msnp.server.tickets import DEFAULT_TICKET_LIFETIME, TicketState
from msnp.server.network import LocalNetwork
from msnp.server.notification import NotificationServer, Presence
from msnp.soap.addressbook import AddressBookService
from msnp.soap.envelope import ABCHCache, ABCHFault, ABCHService, buildEnvelope, faultFromDocument, isExpiredTicketFault
from msnp.soap.sharing import SharingService
from msnp.mbi import mbiResponse
from msnp.wire import Direction, parseCommand
from msnp.xmlsafe import findPath, parseXML, textOf

from test.support import stubTreq

URL = "http://contacts.example/abservice/abservice.asmx"
OLD = "t=OLDticket&p=old"
NEW = "t=NEWticket&p=new"
GUID = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"

OK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b'<ABGroupAddResponse xmlns="http://www.msn.com/webservices/AddressBook"><ABGroupAddResult>'
    b"<guid>0f4f1f37-3bd1-4d1c-8f6e-6f5c1e2b3a4d</guid></ABGroupAddResult></ABGroupAddResponse>"
    b"</soap:Body></soap:Envelope>"
)


def faultBody(code: str, text: str = "Ticket has expired.") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
        'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        f'<faultcode xmlns:q0="http://www.msn.com/webservices/AddressBook">{code}</faultcode>'
        f"<faultstring>{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    ).encode("utf-8")


class TicketService(Resource):
    """
    Accepts only the tickets in C{valid}; answers every other ticket with
    the expired-ticket fault C{faultCode} (HTTP 500). Records the ticket of
    every request.
    """

    isLeaf = True

    def __init__(self, valid: set[str], faultCode: str = "q0:BadContextToken", hold: bool = False) -> None:
        super().__init__()
        self.valid = valid
        self.faultCode = faultCode
        self.hold = hold
        self.held: list[tuple[Request, bytes]] = []
        self.tickets: list[str] = []

    def render_POST(self, request: Request) -> Any:
        assert request.content is not None
        root = parseXML(request.content.read())
        ticket = textOf(findPath(root, "Header", "ABAuthHeader", "TicketToken"))
        self.tickets.append(ticket)
        if ticket in self.valid:
            answer = OK_BODY
        else:
            request.setResponseCode(500)
            answer = faultBody(self.faultCode)
        if not self.hold:
            return answer
        self.held.append((request, answer))
        return NOT_DONE_YET

    def release(self) -> None:
        """
        Answer every held request, in the order they came.
        """
        held, self.held = self.held, []
        for request, answer in held:
            request.write(answer)
            request.finish()


class Renewer:
    """
    A C{renewTicket} that counts its calls and swaps the ticket only when
    the test fires the pending renewal (or at once with C{immediate}).
    """

    def __init__(self, immediate: bool = False, error: Optional[BaseException] = None) -> None:
        self.ticket = OLD
        self.calls = 0
        self.immediate = immediate
        self.error = error
        self.pending: list[Deferred[None]] = []

    def provider(self) -> str:
        return self.ticket

    def __call__(self) -> "Deferred[None]":
        self.calls += 1
        if self.error is not None:
            return fail(self.error)
        if self.immediate:
            self.ticket = NEW
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        return d

    def complete(self) -> None:
        self.ticket = NEW
        pending, self.pending = self.pending, []
        for d in pending:
            d.callback(None)


class Harness:
    """
    A sharing and an address-book client on one L{TicketService}, sharing
    one cache as a session's clients do.
    """

    def __init__(self, service: TicketService, renewer: Optional[Renewer]) -> None:
        self.service = service
        self.clock = Clock()
        self.treq = StubTreq(service)
        self.cache = ABCHCache()
        provider = renewer.provider if renewer is not None else (lambda: OLD)
        self.first = ABCHService(self.treq, URL, provider, self.clock, cache=self.cache, renewTicket=renewer)
        self.second = ABCHService(self.treq, URL, provider, self.clock, cache=self.cache, renewTicket=renewer)

    def call(self, service: Optional[ABCHService] = None) -> "Deferred[Any]":
        return (service or self.first).call("ABGroupAdd", "<ABGroupAdd />", "GroupSave")

    def settle(self) -> None:
        for _ in range(5):
            self.treq.flush()


class RenewalClientTests(SynchronousTestCase):
    """
    L{ABCHService.call} with a C{renewTicket}.
    """

    def test_faultThenSuccess(self) -> None:
        """
        A call refused with C{q0:BadContextToken} renews the ticket once and
        succeeds on the retry, which carries the new ticket.
        """
        renewer = Renewer(immediate=True)
        harness = Harness(TicketService({NEW}), renewer)
        d = harness.call()
        harness.settle()
        result = self.successResultOf(d)
        self.assertEqual(textOf(result, "ABGroupAddResult", "guid"), "0f4f1f37-3bd1-4d1c-8f6e-6f5c1e2b3a4d")
        self.assertEqual(harness.service.tickets, [OLD, NEW])
        self.assertEqual(renewer.calls, 1)

    def test_concurrentCallsShareOneRenewal(self) -> None:
        """
        Two calls (through two clients sharing a cache) that both meet the
        fault while the renewal is under way wait for the same renewal:
        one SSO request, and both succeed with the new ticket.
        """
        renewer = Renewer()
        harness = Harness(TicketService({NEW}), renewer)
        d1 = harness.call(harness.first)
        d2 = harness.call(harness.second)
        harness.settle()
        self.assertEqual(harness.service.tickets, [OLD, OLD])
        self.assertEqual(renewer.calls, 1)
        self.assertNoResult(d1)
        self.assertNoResult(d2)
        renewer.complete()
        harness.settle()
        self.successResultOf(d1)
        self.successResultOf(d2)
        self.assertEqual(harness.service.tickets, [OLD, OLD, NEW, NEW])
        self.assertEqual(renewer.calls, 1)
        self.assertIsNone(harness.cache.renewal)

    def test_alreadyRenewedRetriesWithoutRenewing(self) -> None:
        """
        A call whose fault arrives after another call already renewed the
        ticket it used retries with the new ticket without a second renewal.
        """
        renewer = Renewer(immediate=True)
        harness = Harness(TicketService({NEW}, hold=True), renewer)
        d1 = harness.call()
        d2 = harness.call()
        harness.settle()
        self.assertEqual(harness.service.tickets, [OLD, OLD])
        harness.service.release()
        harness.settle()
        self.assertEqual(renewer.calls, 1)
        self.assertEqual(harness.service.tickets, [OLD, OLD, NEW, NEW])
        self.assertNoResult(d1)
        harness.service.release()
        harness.settle()
        self.successResultOf(d1)
        self.successResultOf(d2)
        self.assertEqual(renewer.calls, 1)

    def test_renewalFailureFailsWithItsError(self) -> None:
        """
        When the renewal fails (the password is refused), the call fails
        with that typed error and is not repeated.
        """
        renewer = Renewer(error=AuthenticationError("password refused"))
        harness = Harness(TicketService({NEW}), renewer)
        d = harness.call()
        harness.settle()
        self.failureResultOf(d, AuthenticationError)
        self.assertEqual(harness.service.tickets, [OLD])
        self.assertEqual(renewer.calls, 1)
        self.assertIsNone(harness.cache.renewal)

    def test_renewalFailureSharedByWaiters(self) -> None:
        """
        Every call waiting on a renewal that fails fails with its error.
        """
        renewer = Renewer()
        harness = Harness(TicketService({NEW}), renewer)
        d1 = harness.call(harness.first)
        d2 = harness.call(harness.second)
        harness.settle()
        renewer.pending[0].errback(ServiceError("SSO down", status=503))
        self.failureResultOf(d1, ServiceError)
        self.failureResultOf(d2, ServiceError)
        self.assertEqual(renewer.calls, 1)

    def test_untypedRenewalFailureBecomesServiceError(self) -> None:
        """
        A renewal failing with something that is not an msnp error (a bug,
        say) still fails the call with a L{ServiceError}.
        """
        renewer = Renewer(error=RuntimeError("boom"))
        harness = Harness(TicketService({NEW}), renewer)
        d = harness.call()
        harness.settle()
        failure = self.failureResultOf(d, ServiceError)
        self.assertIn("renew", str(failure.value))

    def test_secondExpiryIsRaisedNoLoop(self) -> None:
        """
        When the renewed ticket is refused too, the call fails with the
        L{ABCHFault} after exactly one renewal and two requests.
        """
        renewer = Renewer(immediate=True)
        harness = Harness(TicketService(set()), renewer)
        d = harness.call()
        harness.settle()
        failure = self.failureResultOf(d, ABCHFault)
        self.assertTrue(isExpiredTicketFault(failure.value))
        self.assertEqual(failure.value.status, 500)
        self.assertEqual(harness.service.tickets, [OLD, NEW])
        self.assertEqual(renewer.calls, 1)

    def test_noRenewalRaisesFault(self) -> None:
        """
        Without a C{renewTicket} the expired-ticket fault is the result.
        """
        harness = Harness(TicketService({NEW}), None)
        d = harness.call()
        harness.settle()
        self.assertTrue(isExpiredTicketFault(self.failureResultOf(d, ABCHFault).value))
        self.assertEqual(harness.service.tickets, [OLD])

    def test_perCallRenewal(self) -> None:
        """
        A C{renewTicket} given to L{ABCHService.call} is used for that call.
        """
        renewer = Renewer(immediate=True)
        service = TicketService({NEW})
        treq = StubTreq(service)
        client = ABCHService(treq, URL, renewer.provider, Clock())
        d = client.call("ABGroupAdd", "<ABGroupAdd />", "GroupSave", renewTicket=renewer)
        for _ in range(5):
            treq.flush()
        self.successResultOf(d)
        self.assertEqual(renewer.calls, 1)

    def test_anyPrefix(self) -> None:
        """
        The fault code is recognised by its ending, whatever the prefix.
        """
        for code in ("BadContextToken", "soap:BadContextToken", "psf:BadContextToken"):
            renewer = Renewer(immediate=True)
            harness = Harness(TicketService({NEW}, faultCode=code), renewer)
            d = harness.call()
            harness.settle()
            self.successResultOf(d)
            self.assertEqual(renewer.calls, 1, code)

    def test_otherFaultsNotRenewed(self) -> None:
        """
        Any other fault is raised at once, without a renewal.
        """
        renewer = Renewer(immediate=True)
        harness = Harness(TicketService(set(), faultCode="soap:Client"), renewer)
        d = harness.call()
        harness.settle()
        failure = self.failureResultOf(d, ABCHFault)
        self.assertFalse(isExpiredTicketFault(failure.value))
        self.assertEqual(renewer.calls, 0)
        self.assertEqual(harness.service.tickets, [OLD])

    def test_isExpiredTicketFault(self) -> None:
        """
        Only an L{ABCHFault} with a C{...BadContextToken} code counts.
        """
        self.assertTrue(isExpiredTicketFault(ABCHFault("x", faultCode="q0:BadContextToken")))
        self.assertFalse(isExpiredTicketFault(ABCHFault("x", faultCode="q0:BadContextTokens")))
        self.assertFalse(isExpiredTicketFault(ABCHFault("x", faultCode=None)))
        self.assertFalse(isExpiredTicketFault(ServiceError("x", faultCode="q0:BadContextToken")))

    def test_sharingAndAddressBookAcceptRenewal(self) -> None:
        """
        The concrete clients take C{renewTicket} like their base.
        """
        renewer = Renewer()
        sharing = SharingService(StubTreq(Resource()), URL, renewer.provider, Clock(), renewTicket=renewer)
        book = AddressBookService(StubTreq(Resource()), URL, renewer.provider, Clock(), renewTicket=renewer)
        self.assertIs(sharing.renewTicket, renewer)
        self.assertIs(book.renewTicket, renewer)


class StoreExpiryTests(SynchronousTestCase):
    """
    Grant lifetimes in L{AccountStore}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = AccountStore(ticketLifetime=60.0, clock=self.clock)
        self.alice = self.store.addAccount("alice@example.com", "pw")

    def test_issueAndExpire(self) -> None:
        """
        A grant carries its issue time and expiry; its contacts ticket is
        valid until the lifetime is over, then expired (still known).
        """
        grant = self.store.issueTickets(self.alice)
        self.assertEqual((grant.issued, grant.expires), (1000.0, 1060.0))
        check = self.store.checkContactsTicket(grant.contactsTicket)
        self.assertEqual(check.state, TicketState.VALID)
        self.assertIs(check.account, self.alice)
        self.assertIs(check.grant, grant)
        self.clock.advance(59.9)
        self.assertEqual(self.store.checkContactsTicket(grant.contactsTicket).state, TicketState.VALID)
        self.clock.advance(0.1)
        check = self.store.checkContactsTicket(grant.contactsTicket)
        self.assertEqual(check.state, TicketState.EXPIRED)
        self.assertIsNone(check.account)
        self.assertIsNone(self.store.accountForContactsTicket(grant.contactsTicket))
        self.assertTrue(self.store.isExpired(grant))

    def test_unknownTicket(self) -> None:
        """
        A ticket never issued is unknown, not expired.
        """
        self.assertEqual(self.store.checkContactsTicket("t=nope&p=x").state, TicketState.UNKNOWN)

    def test_newGrantAfterExpiry(self) -> None:
        """
        A grant issued after an older one expired is valid for a full
        lifetime from its own issue time.
        """
        old = self.store.issueTickets(self.alice)
        self.clock.advance(100)
        new = self.store.issueTickets(self.alice)
        self.assertEqual(self.store.checkContactsTicket(old.contactsTicket).state, TicketState.EXPIRED)
        self.assertIs(self.store.accountForContactsTicket(new.contactsTicket), self.alice)

    def test_defaults(self) -> None:
        """
        By default grants last a day on the system clock.
        """
        store = AccountStore()
        self.assertEqual(store.ticketLifetime, DEFAULT_TICKET_LIFETIME)
        self.assertEqual(DEFAULT_TICKET_LIFETIME, 86400.0)
        grant = store.issueTickets(store.addAccount("bob@example.com", "pw"))
        self.assertAlmostEqual(grant.expires - grant.issued, 86400.0)
        self.assertIs(store.accountForContactsTicket(grant.contactsTicket), store.get("bob@example.com"))

    def test_badLifetime(self) -> None:
        """
        A lifetime that is not positive is refused.
        """
        self.assertRaises(ValueError, AccountStore, ticketLifetime=0)
        self.assertRaises(ValueError, AccountStore, ticketLifetime=-5.0)

    def test_grantReprHidesSecrets(self) -> None:
        """
        The grant's repr shows its times but no ticket or secret.
        """
        grant = self.store.issueTickets(self.alice)
        text = repr(grant)
        for secret in (grant.clearTicket, grant.contactsTicket, grant.binarySecret, grant.webTicket):
            self.assertNotIn(secret, text)
        self.assertIn("expires=1060.0", text)

    def test_networkPassesClockAndLifetime(self) -> None:
        """
        L{LocalNetwork} builds its store on its clock with its lifetime.
        """
        network = LocalNetwork(reactor=self.clock, clock=self.clock, ticketLifetime=5.0)
        self.assertIs(network.store.clock, self.clock)
        self.assertEqual(network.store.ticketLifetime, 5.0)
        self.assertEqual(LocalNetwork(reactor=self.clock).store.ticketLifetime, DEFAULT_TICKET_LIFETIME)


class ABCHExpiryTests(SynchronousTestCase):
    """
    L{ABCHResource} with expired and unknown tickets.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = AccountStore(ticketLifetime=60.0, clock=self.clock)
        self.alice = self.store.addAccount("alice@example.com", "pw")
        self.treq: Any = stubTreq(b"abservice", ABCHResource(self.store, clock=self.clock))

    def post(self, ticket: str) -> tuple[int, bytes]:
        envelope = buildEnvelope("<ABGroupAdd xmlns=\"http://www.msn.com/webservices/AddressBook\">"
                                 "<abId>00000000-0000-0000-0000-000000000000</abId><groupAddOptions>"
                                 "<fRenameOnMsgrConflict>false</fRenameOnMsgrConflict></groupAddOptions>"
                                 "<groupInfo><GroupInfo><name>Friends</name></GroupInfo></groupInfo>"
                                 "</ABGroupAdd>", ticket, "GroupSave")
        d = self.treq.post(
            "http://127.0.0.1/abservice/abservice.asmx", data=envelope,
            headers={"SOAPAction": '"http://www.msn.com/webservices/AddressBook/ABGroupAdd"'},
        )
        self.treq.flush()
        response = self.successResultOf(d)
        body = self.treq.content(response)
        self.treq.flush()
        return response.code, self.successResultOf(body)

    def test_validThenExpired(self) -> None:
        """
        The same ticket works within its lifetime; afterwards the answer is
        HTTP 500 with the SOAP fault C{q0:BadContextToken} ("Ticket has
        expired"), and nothing is changed.
        """
        grant = self.store.issueTickets(self.alice)
        status, _ = self.post(grant.contactsTicket)
        self.assertEqual(status, 200)
        self.assertEqual(len(self.alice.groups), 1)
        self.clock.advance(60)
        status, body = self.post(grant.contactsTicket)
        self.assertEqual(status, 500)
        fault = faultFromDocument(parseXML(body), status)
        assert fault is not None
        self.assertEqual(fault.faultCode, "q0:BadContextToken")
        self.assertIn("expired", (fault.faultString or "").lower())
        self.assertTrue(isExpiredTicketFault(fault))
        self.assertIn(b'xmlns:q0="http://www.msn.com/webservices/AddressBook"', body)
        self.assertNotIn(grant.contactsTicket.encode(), body)
        self.assertEqual(len(self.alice.groups), 1)

    def test_unknownTicketIs403(self) -> None:
        """
        A ticket never issued still gets a bare HTTP 403, no SOAP body.
        """
        status, body = self.post("t=forged&p=x")
        self.assertEqual((status, body), (403, b""))


class NotificationExpiryTests(SynchronousTestCase):
    """
    The NS accepts a fresh grant for login, not an expired one.
    """

    def login(self, advance: float) -> bytes:
        clock = Clock()
        store = AccountStore(ticketLifetime=60.0, clock=clock)
        account = store.addAccount("alice@example.com", "pw")
        grant = store.issueTickets(account)
        server = NotificationServer(None, Presence(store), sendChallenge=False, clock=clock)
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(b"VER 1 MSNP18 CVR0\r\nUSR 2 SSO I alice@example.com\r\n")
        lines = transport.value().split(b"\r\n")
        usr = parseCommand(lines[1] + b"\r\n", Direction.FROM_SERVER)
        nonce = usr.arguments[3]
        transport.clear()
        clock.advance(advance)
        response = mbiResponse(grant.binarySecret, nonce)
        server.dataReceived(f"USR 3 SSO S {grant.clearTicket} {response} {GUID}\r\n".encode())
        return transport.value()

    def test_freshGrantAccepted(self) -> None:
        """
        Within its lifetime the grant signs in as before.
        """
        self.assertTrue(self.login(59.0).startswith(b"USR 3 OK alice@example.com"))

    def test_expiredGrantRefused(self) -> None:
        """
        Past its lifetime the grant is refused with C{911}.
        """
        self.assertEqual(self.login(61.0), b"911 3\r\n")


class RenewalEndToEndTests(TestCase):
    """
    A real session over loopback sockets whose contacts ticket expires.
    """

    timeout = 30

    async def setUp(self) -> None:  # type: ignore[override]
        self.clock = Clock()
        self.network = LocalNetwork(reactor=reactor, clock=self.clock, ticketLifetime=3600.0)
        for name in ("alice", "bob"):
            self.network.addAccount(f"{name}@example.com", "secret-pw", name.capitalize())
        self.endpoints = await self.network.start()
        self.addCleanup(self.network.stop)

    async def signIn(self, name: str) -> Any:
        from msnp.client import MSNClient

        client = MSNClient(f"{name}@example.com", "secret-pw", endpoints=self.endpoints, reactor=reactor)
        session = await client.login()

        async def logout() -> None:
            try:
                await session.logout()
            except Exception:
                pass

        self.addCleanup(logout)
        return session

    async def test_transparentRenewal(self) -> None:
        """
        After the ticket's lifetime, C{addContact} still succeeds: the
        address book refuses the old ticket, the session runs the SSO again
        and retries with the new one; the store has the change, and the
        NS session stayed up.
        """
        session = await self.signIn("alice")
        oldTicket = session._contactsTicket()
        self.clock.advance(3601)
        alice = self.network.store.get("alice@example.com")
        assert alice is not None
        self.assertIsNone(self.network.store.accountForContactsTicket(oldTicket))
        contact = await session.addContact("bob@example.com")
        self.assertTrue(contact.onForwardList)
        self.assertTrue(alice.onForwardList("bob@example.com"))
        self.assertTrue(alice.hasRole("Allow", "bob@example.com"))
        newTicket = session._contactsTicket()
        self.assertNotEqual(newTicket, oldTicket)
        self.assertIs(self.network.store.accountForContactsTicket(newTicket), alice)
        self.assertTrue(session.isActive)
        self.assertNotIn(newTicket, repr(session._contactsTicket))
        # The renewed ticket keeps working for later calls.
        group = await session.addGroup("Friends")
        self.assertIn(group.groupId, alice.groups)

    async def test_renewalRefusedFailsTyped(self) -> None:
        """
        When the password no longer works, the call that met the expired
        ticket fails with L{AuthenticationError} and the list is unchanged.
        """
        session = await self.signIn("alice")
        alice = self.network.store.get("alice@example.com")
        assert alice is not None
        self.network.store.setPassword(alice.email, "changed-elsewhere")
        self.clock.advance(3601)
        before = session.contacts.snapshot()
        with self.assertRaises(AuthenticationError):
            await session.addContact("bob@example.com")
        self.assertEqual(session.contacts.snapshot(), before)
        self.assertFalse(alice.onForwardList("bob@example.com"))


class SessionRenewerTests(SynchronousTestCase):
    """
    The renewer a signed-in session keeps for each ticket asks the login's
    SSO request again with the same HTTP client, policy and address.
    """

    def test_renewerCallsRenewTicket(self) -> None:
        from msnp.client import MSNClient
        from msnp.endpoints import Endpoints
        from msnp.namespaces import CONTACTS

        client = MSNClient("someone@example.com", "secret", Endpoints(), reactor=Clock())
        calls: list[tuple[Any, ...]] = []
        answer: Deferred[str] = Deferred()

        def renewTicket(httpClient: Any, policy: str, address: str) -> "Deferred[str]":
            calls.append((httpClient, policy, address))
            return answer

        client._renewTicket = renewTicket  # type: ignore[method-assign]
        http = object()
        renew = client._renewer(http, "MBI_KEY")
        self.assertEqual(calls, [])
        self.assertIs(renew(), answer)
        self.assertIs(client._renewer(http, "MBI_KEY", "messengersecure.live.com")(), answer)
        self.assertEqual(calls, [(http, "MBI_KEY", CONTACTS), (http, "MBI_KEY", "messengersecure.live.com")])
        self.assertNotIn("secret", repr(renew))
