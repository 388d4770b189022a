"""
L{msnp.soap.circles}: the request bodies and response parsers of the
circle ABCH calls, and L{msnp.soap.circles.CircleService} against the
local network's circle handlers in memory (C{StubTreq} over a small
resource that dispatches to L{msnp.server.circleabch}, as the ABCH
resource will), followed through the NS routing with the client's own
payload builders and readers.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from msnp.circles import (
    CircleInvitation,
    CircleRole,
    CircleState,
    buildCircleListPayload,
    circleAuthArguments,
    decodeCircleAuth,
)
from msnp.circlewire import (
    CircleMessageType,
    buildJoinPayload,
    buildMessagePayload,
    parseCircleMessage,
    parseRosterChange,
    parseRoutedPayload,
)
from msnp.errors import ServiceError
from msnp.server import circleabch
from msnp.server.circleabch import CircleFault, MemberInfo
from msnp.server.circlerouting import leaveDeliveries, routeCircleCommand, subscribeCircles
from msnp.server.circles import CircleRegistry, Place
from msnp.soap import circles as soap
from msnp.soap.addressbook import parseAddressBook
from msnp.soap.envelope import AB_NS, SOAP_NS, ABCHFault, ABCHService
from msnp.wire import Command
from msnp.xmlsafe import escapeText, findPath, parseXML, textOf

FAMILY = "00000000-0000-0000-0009-0123456789ab"
BASE = "http://127.0.0.1:8080/abservice/"
T = TypeVar("T")


class BodyTests(SynchronousTestCase):
    def test_createCircle(self) -> None:
        """
        C{CreateCircle} carries MSNPSharp's values and the escaped name.
        """
        self.assertEqual(
            soap.createCircleBody("Fish & Chips", "Alice"),
            f'<CreateCircle xmlns="{AB_NS}"><properties><Domain>1</Domain><HostedDomain>live.com</HostedDomain>'
            "<Type>2</Type><MembershipAccess>0</MembershipAccess><IsPresenceEnabled>true</IsPresenceEnabled>"
            "<RequestMembershipOption>2</RequestMembershipOption><DisplayName>Fish &amp; Chips</DisplayName>"
            "</properties><callerInfo><PublicDisplayName>Alice</PublicDisplayName></callerInfo></CreateCircle>",
        )

    def test_inviteBodies(self) -> None:
        """
        C{CreateContact} and C{ManageWLConnection} are those of Q.4.10.
        """
        self.assertEqual(
            soap.createContactBody(FAMILY, "Bob@example.com"),
            f'<CreateContact xmlns="{AB_NS}"><abHandle><ABId>{FAMILY}</ABId><Puid>0</Puid><Cid>0</Cid></abHandle>'
            "<contactHandle><Email>bob@example.com</Email><Puid>0</Puid><Cid>0</Cid>"
            "<CircleId>00000000-0000-0000-0000-000000000000</CircleId></contactHandle></CreateContact>",
        )
        self.assertEqual(
            soap.manageConnectionBody("CONTACT-ID", 1, CircleRole.MEMBER, FAMILY, "Join us"),
            f'<ManageWLConnection xmlns="{AB_NS}"><abHandle><ABId>{FAMILY}</ABId><Puid>0</Puid><Cid>0</Cid>'
            "</abHandle><contactId>CONTACT-ID</contactId><connection>true</connection><presence>false</presence>"
            "<action>1</action><relationshipType>5</relationshipType><relationshipRole>3</relationshipRole>"
            "<annotations><Annotation><Name>MSN.IM.InviteMessage</Name><Value>Join us</Value></Annotation>"
            "</annotations></ManageWLConnection>",
        )

    def test_answerAndLeaveBodies(self) -> None:
        """
        Accept/decline go to the personal book (no C{abHandle}) with role
        0; C{BreakConnection} deletes without blocking.
        """
        decline = soap.manageConnectionBody(FAMILY, 2, CircleRole.NONE)
        self.assertNotIn("abHandle", decline)
        self.assertIn("<action>2</action><relationshipType>5</relationshipType><relationshipRole>0</relationshipRole>", decline)
        self.assertEqual(
            soap.breakConnectionBody(FAMILY, "MINE"),
            f'<BreakConnection xmlns="{AB_NS}"><abHandle><ABId>{FAMILY}</ABId><Puid>0</Puid><Cid>0</Cid></abHandle>'
            "<contactId>MINE</contactId><deleteContact>true</deleteContact><blockContact>false</blockContact>"
            "</BreakConnection>",
        )
        self.assertEqual(
            soap.circleBookBody(FAMILY),
            f'<ABFindContactsPaged xmlns="{AB_NS}"><abView>MessengerClient8</abView><extendedContent>AB</extendedContent>'
            f"<abHandle><ABId>{FAMILY}</ABId><Puid>0</Puid><Cid>0</Cid></abHandle></ABFindContactsPaged>",
        )


def xml(text: str) -> Any:
    return parseXML(text)


class ParserTests(SynchronousTestCase):
    def test_responsesRefused(self) -> None:
        """
        Answers without the expected result, with a non-circle id or with
        client error data raise L{ServiceError}.
        """
        cases: list[tuple[Callable[[Any], object], str]] = [
            (soap.parseCreateCircleResponse, "<CreateCircleResponse><CreateCircleResult><Id>x</Id></CreateCircleResult></CreateCircleResponse>"),
            (soap.parseCreateCircleResponse, "<Other/>"),
            (soap.parseCreateContactResponse, "<CreateContactResponse><CreateContactResult/></CreateContactResponse>"),
            (soap.checkManageConnectionResponse, "<ManageWLConnectionResponse><ManageWLConnectionResult><clientErrorData>nope</clientErrorData></ManageWLConnectionResult></ManageWLConnectionResponse>"),
            (soap.checkManageConnectionResponse, "<Other/>"),
            (soap.checkBreakConnectionResponse, "<Other/>"),
            (soap.parseCircleListing, "<Other/>"),
        ]
        for parse, text in cases:
            self.assertRaises(ServiceError, parse, xml(text))

    def test_listingSkipsBadEntries(self) -> None:
        """
        Circle entries with a bad id, deleted, left or with an unknown role
        are skipped; the rest is read.
        """
        def info(circleId: str, role: str = "Member", state: str = "Accepted", deleted: str = "false") -> str:
            return (
                f"<CircleInverseInfo><Content><Handle><Id>{circleId}</Id></Handle><Info><DisplayName>N</DisplayName>"
                "</Info></Content><PersonalInfo><MembershipInfo><CirclePersonalMembership>"
                f"<Role>{role}</Role><State>{state}</State></CirclePersonalMembership></MembershipInfo>"
                f"</PersonalInfo><Deleted>{deleted}</Deleted></CircleInverseInfo>"
            )

        good = FAMILY
        document = (
            "<ABFindContactsPagedResponse><ABFindContactsPagedResult><CircleResult><Circles>"
            + info(good, "Admin")
            + info("00000000-0000-0000-0000-000000000000")
            + info("00000000-0000-0000-0009-000000000001", deleted="true")
            + info("00000000-0000-0000-0009-000000000002", state="Left")
            + info("00000000-0000-0000-0009-000000000003", role="Overlord")
            + info("00000000-0000-0000-0009-000000000004", state="WaitingResponse")
            + "</Circles></CircleResult></ABFindContactsPagedResult></ABFindContactsPagedResponse>"
        )
        listing = soap.parseCircleListing(xml(document))
        self.assertEqual(list(listing.circles), [good])
        self.assertEqual(listing.circles[good].role, CircleRole.ADMIN)
        # An invitation without its hidden representative cannot be answered.
        self.assertEqual(listing.invitations, {})
        self.assertIsNone(listing.ticket)

    def test_bookNeedsMe(self) -> None:
        """
        A member book without the circle's C{Me} contact, or of another
        book, is refused.
        """
        self.assertRaises(
            ServiceError, soap.parseCircleBook,
            xml("<ABFindContactsPagedResponse><ABFindContactsPagedResult><Contacts/></ABFindContactsPagedResult></ABFindContactsPagedResponse>"),
            FAMILY,
        )
        self.assertRaises(
            ServiceError, soap.parseCircleBook,
            xml("<ABFindContactsPagedResponse><ABFindContactsPagedResult><Ab><abId>00000000-0000-0000-0009-000000000001</abId></Ab></ABFindContactsPagedResult></ABFindContactsPagedResponse>"),
            FAMILY,
        )


class CircleABCHStub(Resource):
    """
    What the ABCH resource will do with circle calls (phase 2), and no
    more: check the ticket, dispatch to L{msnp.server.circleabch}, answer
    an envelope or a fault.
    """

    isLeaf = True

    def __init__(self, registry: CircleRegistry, accounts: dict[str, MemberInfo], tickets: dict[str, str]) -> None:
        super().__init__()
        self.registry = registry
        self.accounts = accounts
        self.tickets = tickets

    def directory(self, email: str) -> Optional[MemberInfo]:
        return self.accounts.get(email.strip().lower())

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        root = parseXML(request.content.read())
        caller = self.accounts[self.tickets[textOf(findPath(root, "Header", "ABAuthHeader", "TicketToken"))]]
        method = findPath(root, "Body")[0]  # type: ignore[index]
        action = (request.getHeader("SOAPAction") or "").strip('"').rsplit("/", 1)[-1]
        stamp = "2010-01-01T00:00:00.0000000Z"
        try:
            if action == "CreateCircle":
                assert request.path.endswith(b"SharingService.asmx")
                result = circleabch.createCircle(self.registry, caller, method)
            elif action == "CreateContact":
                result = circleabch.createContact(self.registry, caller, method, self.directory)
            elif action == "ManageWLConnection":
                result = circleabch.manageConnection(self.registry, caller, method)
            elif action == "BreakConnection":
                result = circleabch.breakConnection(self.registry, caller, method)
            elif action == "ABFindContactsPaged" and circleabch.isCircleBookRequest(method):
                result = circleabch.circleBook(self.registry, caller, method, self.directory, stamp)
            else:
                contacts = circleabch.representativesXML(self.registry, caller, self.directory, stamp)
                body = (
                    f'<ABFindContactsPagedResponse xmlns="{AB_NS}"><ABFindContactsPagedResult>'
                    f"<Contacts>{contacts}</Contacts>{circleabch.circleResultXML(self.registry, caller, stamp)}"
                    "<Ab><abId>00000000-0000-0000-0000-000000000000</abId></Ab>"
                    "</ABFindContactsPagedResult></ABFindContactsPagedResponse>"
                )
                result = circleabch.CircleCallResult(body)
        except CircleFault as fault:
            request.setResponseCode(fault.httpStatus)
            return (
                f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
                f"<faultstring>{escapeText(fault.message)}</faultstring><detail>"
                f'<errorcode xmlns="{AB_NS}">{escapeText(fault.errorCode)}</errorcode></detail>'
                "</soap:Fault></soap:Body></soap:Envelope>"
            ).encode()
        return f'<soap:Envelope xmlns:soap="{SOAP_NS}"><soap:Body>{result.body}</soap:Body></soap:Envelope>'.encode()


class CircleServiceTests(SynchronousTestCase):
    """
    alice, bob and carol are accounts of the local network; nobody@ is not.
    """

    def setUp(self) -> None:
        counter = itertools.count(0xAB)
        self.clock = Clock()
        self.registry = CircleRegistry(
            clock=self.clock, newId=lambda: f"00000000-0000-0000-0009-{next(counter):012x}"
        )
        self.accounts = {
            e: MemberInfo(e, cid, name)
            for e, cid, name in (
                ("alice@example.com", 11, "Alice"),
                ("bob@example.com", 22, "Bob"),
                ("carol@example.com", 33, "Carol"),
            )
        }
        tickets = {f"t={e}": e for e in self.accounts}
        self.treq = StubTreq(CircleABCHStub(self.registry, self.accounts, tickets))

    def serviceFor(self, email: str) -> soap.CircleService:
        def client(name: str) -> ABCHService:
            return ABCHService(self.treq, BASE + name, lambda: f"t={email}", self.clock)

        return soap.CircleService(client("SharingService.asmx"), client("abservice.asmx"))

    def listingFor(self, email: str) -> soap.CircleListing:
        service = self.serviceFor(email)
        return self.resolve(service.addressBook.call("ABFindContactsPaged", "<ABFindContactsPaged/>", "Initial").addCallback(soap.parseCircleListing))

    def resolve(self, d: "Deferred[T]") -> T:
        self.treq.flush()
        results: list[Any] = []
        d.addBoth(results.append)
        self.treq.flush()
        self.assertEqual(len(results), 1, "the call did not finish")
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]  # type: ignore[no-any-return]

    def test_flow(self) -> None:
        """
        alice creates a circle and invites bob and carol; bob accepts and
        sees the circle, its ticket and its book; carol declines and no
        trace is left; in the conversation a message from alice reaches
        bob once, read by the client's parser; bob leaves and alice is told.
        """
        alice, bob, carol = (self.serviceFor(e) for e in ("alice@example.com", "bob@example.com", "carol@example.com"))
        circleId = self.resolve(alice.createCircle("Family", "Alice"))
        self.assertEqual(list(self.listingFor("alice@example.com").circles), [circleId])
        self.resolve(alice.invite(circleId, "bob@example.com", "Join us"))
        self.resolve(alice.invite(circleId, "carol@example.com"))

        invitation = self.listingFor("bob@example.com").invitations[circleId]
        self.assertEqual(
            (invitation.name, invitation.inviterEmail, invitation.inviterName, invitation.message),
            ("Family", "alice@example.com", "Alice", "Join us"),
        )
        self.resolve(bob.respond(invitation, accept=True))
        self.resolve(carol.respond(self.listingFor("carol@example.com").invitations[circleId], accept=False))
        self.assertEqual(self.listingFor("carol@example.com").circles, {})
        self.assertEqual(self.listingFor("carol@example.com").invitations, {})
        self.assertNotIn("carol@example.com", self.registry.require(circleId).members)

        listing = self.listingFor("bob@example.com")
        circle = listing.circles[circleId]
        self.assertEqual((circle.name, circle.role, circle.state), ("Family", CircleRole.MEMBER, CircleState.ACCEPTED))
        self.assertEqual(listing.representativeIds[circleId], circleId)
        assert listing.ticket is not None
        # The ticket the client sends in USR SHA A verifies on the server.
        argument = circleAuthArguments(listing.ticket)[2]
        self.assertTrue(self.registry.verifyTicket(22, decodeCircleAuth(argument)))

        book = self.resolve(bob.findCircleBook(circleId))
        self.assertEqual(book.name, "Family")
        self.assertEqual(
            {e: (m.role, m.state) for e, m in book.members.items()},
            {"alice@example.com": (CircleRole.ADMIN, CircleState.ACCEPTED), "bob@example.com": (CircleRole.MEMBER, CircleState.ACCEPTED)},
        )

        places = {
            "alice@example.com": Place.of("alice@example.com", "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"),
            "bob@example.com": Place.of("bob@example.com", "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"),
        }
        for email, place in places.items():
            self.assertEqual(subscribeCircles(self.registry, place, 1, buildCircleListPayload([circleId]), True).reply, Command("ADL", 1, ("OK",)))
            join = Command("PUT", 2, (), buildJoinPayload(circleId, email, place.epid.upper()))
            self.assertEqual(routeCircleCommand(self.registry, place, join).reply, Command("PUT", 2, ("OK", "0")))
        sent = Command("SDG", 3, (), buildMessagePayload(circleId, "alice@example.com", places["alice@example.com"].epid, 0, text="Picnic?"))
        [delivery] = routeCircleCommand(self.registry, places["alice@example.com"], sent).deliveries
        self.assertEqual(delivery.place, places["bob@example.com"])
        message = parseCircleMessage(parseRoutedPayload(delivery.command.payload or b""))
        assert message is not None
        self.assertEqual((message.senderEmail, message.type, message.text), ("alice@example.com", CircleMessageType.TEXT, "Picnic?"))

        ownId = book.contactIdOf("bob@example.com")
        assert ownId is not None
        self.resolve(bob.leave(circleId, ownId))
        self.assertFalse(self.registry.isMember("bob@example.com", circleId))
        [notice] = leaveDeliveries(self.registry, circleId, "bob@example.com")
        change = parseRosterChange("DEL", parseRoutedPayload(notice.command.payload or b""))
        assert change is not None
        self.assertEqual((notice.place.email, change.left), ("alice@example.com", ("bob@example.com",)))
        self.assertEqual(self.listingFor("bob@example.com").circles, {})

    def test_personalBookStillParses(self) -> None:
        """
        The existing address-book parser reads the same answer: the circle
        ticket, and the hidden representative as a C{Circle} contact (which
        the session must keep out of its contact list).
        """
        circleId = self.resolve(self.serviceFor("alice@example.com").createCircle("Family"))
        service = self.serviceFor("alice@example.com")
        result = self.resolve(service.addressBook.call("ABFindContactsPaged", "<ABFindContactsPaged/>", "Initial").addCallback(parseAddressBook))
        listing = self.listingFor("alice@example.com")
        assert listing.ticket is not None
        self.assertEqual(result.circleTicket, listing.ticket.text)
        self.assertEqual([(c.contactType, c.email) for c in result.contacts], [("Circle", f"{circleId}@live.com")])

    def test_faults(self) -> None:
        """
        Inviting an unknown address or inviting as a mere member fails
        with the ABCH fault code and changes nothing.
        """
        alice, bob = self.serviceFor("alice@example.com"), self.serviceFor("bob@example.com")
        circleId = self.resolve(alice.createCircle("Family"))
        fault = self.assertRaises(ABCHFault, self.resolve, alice.invite(circleId, "nobody@example.com"))
        self.assertEqual(fault.errorCode, "InvalidPassportUser")
        fault = self.assertRaises(ABCHFault, self.resolve, bob.invite(circleId, "carol@example.com"))
        self.assertEqual(fault.errorCode, "AccessDenied")
        self.assertEqual(list(self.registry.require(circleId).members), ["alice@example.com"])
        fault = self.assertRaises(
            ABCHFault, self.resolve, bob.respond(CircleInvitation(circleId, "Family", circleId), accept=True)
        )
        self.assertEqual(fault.errorCode, "InvitationNotFound")


class HostileListingTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None, database=None)
    @given(st.lists(st.sampled_from([
        "<CircleResult>", "</CircleResult>", "<Circles>", "</Circles>", "<CircleInverseInfo>", "</CircleInverseInfo>",
        "<Content><Handle><Id>00000000-0000-0000-0009-0123456789ab</Id></Handle></Content>",
        "<PersonalInfo><MembershipInfo><CirclePersonalMembership><Role>Admin</Role><State>9</State>"
        "</CirclePersonalMembership></MembershipInfo></PersonalInfo>",
        "<CircleTicket>t=SECRET-ticket&amp;p=</CircleTicket>", "<Contacts>", "</Contacts>", "<Contact><contactInfo><contactType>Circle"
        "</contactType><NetworkInfo><DomainTag>00000000-0000-0000-0009-0123456789ab</DomainTag>"
        "<RelationshipState>1</RelationshipState></NetworkInfo></contactInfo></Contact>",
        "<Deleted>true</Deleted>", "<Contact><contactInfo><contactType>Me</contactType></contactInfo></Contact>",
        "<Contact><contactInfo><contactType>Live</contactType><passportName>a@x.com</passportName>"
        "<NetworkInfo><RelationshipRole>77</RelationshipRole></NetworkInfo></contactInfo></Contact>",
    ]), max_size=14))
    def test_fragments(self, parts: list[str]) -> None:
        """
        Any arrangement of real fragments that is well-formed parses or
        raises L{ServiceError}; nothing else escapes, and the ticket stays
        out of the listing's repr.
        """
        text = "<ABFindContactsPagedResponse><ABFindContactsPagedResult>" + "".join(parts) + "</ABFindContactsPagedResult></ABFindContactsPagedResponse>"
        try:
            document = parseXML(text)
        except ServiceError:
            return
        try:
            listing = soap.parseCircleListing(document)
            self.assertNotIn("SECRET-ticket", repr(listing))
        except ServiceError:
            pass
        try:
            soap.parseCircleBook(document, FAMILY)
        except ServiceError:
            pass
