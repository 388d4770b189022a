"""
The local network's circles: L{msnp.server.circles.CircleRegistry}
(memberships, invitations, tickets, conversations), the routing of
L{msnp.server.circlerouting} and the ABCH handlers of
L{msnp.server.circleabch}, all without sockets.
"""

from __future__ import annotations

import base64
import itertools
from typing import Iterable, Optional
from xml.etree.ElementTree import Element

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from msnp.circles import CircleRole, CircleState, buildCircleListPayload, circleIdOfNotification
from msnp.circlewire import (
    CircleMessageType,
    buildJoinPayload,
    buildMessagePayload,
    buildPartPayload,
    parseRosterChange,
    parseRoutedPayload,
)
from msnp.server import circleabch
from msnp.server.circleabch import CircleFault, MemberInfo
from msnp.server.circlerouting import (
    Delivery,
    MayDeliver,
    Routed,
    leaveDeliveries,
    partDeliveries,
    routeCircleCommand,
    subscribeCircles,
)
from msnp.server.circles import (
    CircleRefused,
    CircleRegistry,
    ICircleStore,
    MemoryCircleStore,
    Place,
)
from msnp.soap import circles as soap
from msnp.wire import Command
from msnp.xmlsafe import parseXML

ALICE = Place.of("alice@example.com", "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}")
ALICE2 = Place.of("alice@example.com", "{11111111-2222-3333-4444-555555555555}")
BOB = Place.of("bob@example.com", "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}")
CAROL = Place.of("carol@example.com", "{CCCCCCCC-0000-0000-0000-000000000000}")
EVE = Place.of("eve@example.com", "{EEEEEEEE-0000-0000-0000-000000000000}")


class RegistryTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_262_304_000)
        self.store = MemoryCircleStore()
        counter = itertools.count(0xAB)
        self.registry = CircleRegistry(
            self.store, self.clock, ticketKey=b"k" * 32, newId=lambda: f"00000000-0000-0000-0009-{next(counter):012x}"
        )

    def family(self, *accepted: str) -> str:
        """
        A circle of alice's with C{accepted} members.
        """
        record = self.registry.create("alice@example.com", "Family")
        for email in accepted:
            self.registry.invite("alice@example.com", record.circleId, email)
            self.registry.respond(email, record.circleId, accept=True)
        return record.circleId

    def converse(self, circleId: str, *places: Place) -> None:
        for place in places:
            self.registry.subscribe(place, circleId)
            self.registry.join(place, circleId)


class RegistryTests(RegistryTestCase):
    def test_storeInterface(self) -> None:
        """
        The memory store provides L{ICircleStore}.
        """
        self.assertTrue(verifyObject(ICircleStore, self.store))

    def test_createInviteAccept(self) -> None:
        """
        The creator is Admin/Accepted; an invitee is pending until it
        accepts, then Member/Accepted; every change is saved.
        """
        circleId = self.registry.create("Alice@example.com", " Family ").circleId
        self.assertEqual(circleId, "00000000-0000-0000-0009-0000000000ab")
        record = self.registry.require(circleId)
        self.assertEqual(record.name, "Family")
        alice = record.membership("alice@example.com")
        self.assertEqual(alice.role if alice else None, CircleRole.ADMIN)
        self.registry.invite("alice@example.com", circleId, "bob@example.com", "Join us")
        self.assertFalse(self.registry.isMember("bob@example.com", circleId))
        self.assertEqual([r.circleId for r in self.registry.invitationsOf("bob@example.com")], [circleId])
        self.registry.respond("bob@example.com", circleId, accept=True)
        bob = record.membership("bob@example.com")
        assert bob is not None
        self.assertEqual((bob.role, bob.state), (CircleRole.MEMBER, CircleState.ACCEPTED))
        self.assertEqual(self.store.saves, 3)
        self.assertIs(self.store.records[circleId], record)

    def test_declineLeavesNoTrace(self) -> None:
        """
        A declined invitation is removed entirely.
        """
        circleId = self.family()
        self.registry.invite("alice@example.com", circleId, "carol@example.com")
        self.registry.respond("carol@example.com", circleId, accept=False)
        self.assertNotIn("carol@example.com", self.registry.require(circleId).members)
        self.assertEqual(self.registry.circlesOf("carol@example.com", CircleState), [])

    def test_refusals(self) -> None:
        """
        Bad names, non-admin inviters, double invitations, answers without
        an invitation and unknown circles are refused with their codes.
        """
        circleId = self.family("bob@example.com")
        cases = [
            (lambda: self.registry.create("alice@example.com", ""), "InvalidArgument"),
            (lambda: self.registry.create("alice@example.com", "x" * 65), "InvalidArgument"),
            (lambda: self.registry.invite("bob@example.com", circleId, "carol@example.com"), "AccessDenied"),
            (lambda: self.registry.invite("alice@example.com", circleId, "bob@example.com"), "ContactAlreadyExists"),
            (lambda: self.registry.respond("carol@example.com", circleId, True), "InvitationNotFound"),
            (lambda: self.registry.leave("carol@example.com", circleId), "MemberDoesNotExist"),
            (lambda: self.registry.leave("alice@example.com", circleId), "LastAdmin"),
            (lambda: self.registry.require("00000000-0000-0000-0009-00000000ffff"), "CircleDoesNotExist"),
        ]
        for call, code in cases:
            refusal = self.assertRaises(CircleRefused, call)
            self.assertEqual(refusal.errorCode, code)

    def test_unconnectedInvitationInvisible(self) -> None:
        """
        An invitation prepared by C{CreateContact} but never connected is
        not shown to the invitee and cannot be answered; preparing it again
        (a retry after a failed second step) gives the same entry, once
        sent it is refused as existing.
        """
        circleId = self.family()
        membership = self.registry.invite("alice@example.com", circleId, "bob@example.com", connected=False)
        self.assertEqual(self.registry.invitationsOf("bob@example.com"), [])
        self.assertRaises(CircleRefused, self.registry.respond, "bob@example.com", circleId, True)
        again = self.registry.invite("alice@example.com", circleId, "bob@example.com", connected=False)
        self.assertIs(again, membership)
        self.registry.connect("alice@example.com", circleId, membership.contactId)
        self.assertEqual(len(self.registry.invitationsOf("bob@example.com")), 1)
        self.assertRaises(
            CircleRefused, self.registry.invite, "alice@example.com", circleId, "bob@example.com", connected=False
        )

    def test_lastMemberDeletes(self) -> None:
        """
        The last member leaving deletes the circle from the store.
        """
        circleId = self.family()
        self.registry.leave("alice@example.com", circleId)
        self.assertIsNone(self.registry.get(circleId))
        self.assertNotIn(circleId, self.store.records)

    def test_reload(self) -> None:
        """
        A registry over the same store sees the stored circles.
        """
        circleId = self.family("bob@example.com")
        again = CircleRegistry(self.store)
        self.assertTrue(again.isMember("bob@example.com", circleId))


class TicketTests(RegistryTestCase):
    def test_verify(self) -> None:
        """
        A ticket verifies for its account byte for byte, lists the
        account's circles, and fails for another CID or once altered.
        """
        circleId = self.family()
        ticket = self.registry.issueTicket("alice@example.com", 42)
        self.assertTrue(ticket.startswith('<?xml version="1.0" encoding="utf-16"?><SignedTicket'))
        self.assertTrue(self.registry.verifyTicket(42, ticket))
        self.assertFalse(self.registry.verifyTicket(43, ticket))
        self.assertFalse(self.registry.verifyTicket(42, ticket.replace("><Data>", "> <Data>")))
        self.assertFalse(self.registry.verifyTicket(42, ticket.replace("<Sig>", "<Sig>A")))
        self.assertFalse(self.registry.verifyTicket(42, "garbage"))
        self.assertFalse(CircleRegistry(ticketKey=b"x" * 32).verifyTicket(42, ticket))
        data = ticket.split("<Data>")[1].split("</Data>")[0]
        self.assertIn(f'<Circle Id="{circleId}" HostedDomain="live.com" />', base64.b64decode(data).decode())


def _payloads(deliveries: Iterable[Delivery]) -> list[tuple[Place, Command]]:
    return [(d.place, d.command) for d in deliveries]


class SubscribeTests(RegistryTestCase):
    def test_adl(self) -> None:
        """
        A circle ADL of a member after SHA A is accepted and sends the
        current roster to that place.
        """
        circleId = self.family("bob@example.com")
        self.converse(circleId, BOB)
        routed = subscribeCircles(self.registry, ALICE, 13, buildCircleListPayload([circleId]), authenticated=True)
        self.assertEqual(routed.reply, Command("ADL", 13, ("OK",)))
        [(place, command)] = _payloads(routed.deliveries)
        self.assertEqual((place, command.name, command.arguments), (ALICE, "NFY", ("PUT",)))
        self.assertTrue(self.registry.isSubscribed(ALICE, circleId))

    def test_refusals(self) -> None:
        """
        Without SHA A: 933; not a member: 933 and nothing subscribed;
        a contact payload: 241.
        """
        circleId = self.family()
        payload = buildCircleListPayload([circleId])
        self.assertEqual(subscribeCircles(self.registry, ALICE, 1, payload, False).reply, Command("933", 1))
        self.assertEqual(subscribeCircles(self.registry, EVE, 2, payload, True).reply, Command("933", 2))
        self.assertFalse(self.registry.isSubscribed(EVE, circleId))
        contacts = b'<ml><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>'
        self.assertEqual(subscribeCircles(self.registry, ALICE, 3, contacts, True).reply, Command("241", 3))


class RoutingTests(RegistryTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.circleId = self.family("bob@example.com", "carol@example.com")
        for place in (ALICE, ALICE2, BOB, CAROL):
            self.registry.subscribe(place, self.circleId)

    def put(self, place: Place, trid: int = 14) -> Routed:
        command = Command("PUT", trid, (), buildJoinPayload(self.circleId, place.email, place.epid))
        return routeCircleCommand(self.registry, place, command)

    def sdg(self, place: Place, text: str = "hi", mayDeliver: MayDeliver = lambda s, r: True) -> Routed:
        payload = buildMessagePayload(self.circleId, place.email, place.epid, 0, text=text)
        return routeCircleCommand(self.registry, place, Command("SDG", 15, (), payload), mayDeliver)

    def test_putJoinsAndNotifies(self) -> None:
        """
        C{PUT} answers C{OK 0} and sends every roster place the new roster.
        """
        self.put(BOB)
        routed = self.put(ALICE)
        self.assertEqual(routed.reply, Command("PUT", 14, ("OK", "0")))
        deliveries = _payloads(routed.deliveries)
        self.assertEqual(sorted(p.email for p, _ in deliveries), ["alice@example.com", "bob@example.com"])
        for place, command in deliveries:
            change = parseRosterChange("PUT", parseRoutedPayload(command.payload or b""))
            assert change is not None
            self.assertEqual(change.present, ("alice@example.com", "bob@example.com"))
            self.assertIn(f"To: 1:{place.email}".encode(), command.payload or b"")

    def test_secondPlaceGetsRosterOnly(self) -> None:
        """
        A second place of an account already in the roster gets the
        roster; nobody else is told again.
        """
        self.put(ALICE)
        self.put(BOB)
        routed = self.put(ALICE2)
        self.assertEqual([p for p, _ in _payloads(routed.deliveries)], [ALICE2])

    def test_sdgToEveryOtherPlace(self) -> None:
        """
        An C{SDG} reaches every other roster place once, the sender's other
        place included, unchanged as C{SDG 0}; the sender gets nothing.
        """
        for place in (ALICE, ALICE2, BOB, CAROL):
            self.put(place)
        payload = buildMessagePayload(self.circleId, BOB.email, BOB.epid, 0, text="hello")
        routed = routeCircleCommand(self.registry, BOB, Command("SDG", 15, (), payload))
        self.assertIsNone(routed.reply)
        deliveries = _payloads(routed.deliveries)
        self.assertEqual(sorted(p.epid for p, _ in deliveries), sorted(p.epid for p in (ALICE, ALICE2, CAROL)))
        for _, command in deliveries:
            self.assertEqual(command, Command("SDG", 0, (), payload))
        own = _payloads(self.sdg(ALICE).deliveries)
        self.assertIn(ALICE2, [p for p, _ in own])
        self.assertNotIn(ALICE, [p for p, _ in own])

    def test_privacy(self) -> None:
        """
        A recipient that blocks the sender gets neither its messages nor
        its name in the roster.
        """
        self.put(ALICE)
        self.put(CAROL)
        blocked = {("bob@example.com", "carol@example.com")}

        def mayDeliver(sender: str, recipient: str) -> bool:
            return (sender, recipient) not in blocked

        self.registry.subscribe(BOB, self.circleId)
        command = Command("PUT", 1, (), buildJoinPayload(self.circleId, BOB.email, BOB.epid))
        routed = routeCircleCommand(self.registry, BOB, command, mayDeliver)
        for place, notification in _payloads(routed.deliveries):
            change = parseRosterChange("PUT", parseRoutedPayload(notification.payload or b""))
            assert change is not None
            self.assertEqual("bob@example.com" in change.present, place != CAROL)
        recipients = [p for p, _ in _payloads(self.sdg(BOB, mayDeliver=mayDeliver).deliveries)]
        self.assertEqual(recipients, [ALICE])

    def test_refusals(self) -> None:
        """
        Outsiders, places outside the roster, forged senders, upper-case
        epids and malformed payloads get 201; a non-circle C{To} gets no
        reply at all.
        """
        self.put(ALICE)
        self.assertEqual(self.sdg(BOB).reply, Command("201", 15))
        eve = buildJoinPayload(self.circleId, EVE.email, EVE.epid)
        self.assertEqual(routeCircleCommand(self.registry, EVE, Command("PUT", 2, (), eve)).reply, Command("201", 2))
        forged = buildMessagePayload(self.circleId, "carol@example.com", CAROL.epid, 0, text="x")
        self.assertEqual(routeCircleCommand(self.registry, ALICE, Command("SDG", 3, (), forged)).reply, Command("201", 3))
        upper = buildMessagePayload(self.circleId, ALICE.email, ALICE.epid, 0, text="x").replace(
            ALICE.epid.encode(), ALICE.epid.upper().encode()
        )
        self.assertEqual(routeCircleCommand(self.registry, ALICE, Command("SDG", 4, (), upper)).reply, Command("201", 4))
        self.assertEqual(routeCircleCommand(self.registry, ALICE, Command("SDG", 5, (), b"junk")).reply, Command("201", 5))
        person = buildMessagePayload(self.circleId, ALICE.email, ALICE.epid, 0, text="x").replace(
            f"9:{self.circleId}@live.com;path=IM".encode(), b"1:bob@example.com"
        )
        self.assertIsNone(routeCircleCommand(self.registry, ALICE, Command("SDG", 6, (), person)).reply)
        self.assertEqual(routeCircleCommand(self.registry, ALICE, Command("DEL", 7, (), b"")).reply, Command("201", 7))
        unknown = buildJoinPayload("00000000-0000-0000-0009-00000000ffff", ALICE.email, ALICE.epid)
        self.assertEqual(routeCircleCommand(self.registry, ALICE, Command("PUT", 8, (), unknown)).reply, Command("201", 8))

    def test_delLeavesRoster(self) -> None:
        """
        A roster C{DEL} takes only that place out: C{DEL trid OK 0}; the
        others hear C{NFY DEL} once the account's last place left; a
        C{DEL} of someone else's roster user, or from outside, is 201.
        """
        for place in (ALICE, ALICE2, BOB):
            self.put(place)

        def delete(place: Place, email: Optional[str] = None, trid: int = 20) -> Routed:
            payload = buildPartPayload(self.circleId, email or place.email, place.epid)
            return routeCircleCommand(self.registry, place, Command("DEL", trid, (), payload))

        self.assertEqual(delete(BOB, "alice@example.com").reply, Command("201", 20))
        first = delete(ALICE2)
        self.assertEqual((first.reply, first.deliveries), (Command("DEL", 20, ("OK", "0")), ()))
        second = delete(ALICE)
        self.assertEqual([d.place for d in second.deliveries], [BOB])
        self.assertEqual(delete(ALICE).reply, Command("201", 20))
        self.assertTrue(self.registry.isSubscribed(ALICE, self.circleId))
        self.assertEqual(self.registry.rosterAccounts(self.circleId), ["bob@example.com"])

    def test_putWithoutAdl(self) -> None:
        """
        A member place that sent no circle C{ADL} cannot join (201).
        """
        other = Place.of("bob@example.com", "{99999999-0000-0000-0000-000000000000}")
        command = Command("PUT", 9, (), buildJoinPayload(self.circleId, other.email, other.epid))
        self.assertEqual(routeCircleCommand(self.registry, other, command).reply, Command("201", 9))

    def test_leaveAndPart(self) -> None:
        """
        A member who leaves stops receiving and the others get C{NFY DEL};
        an account's last place signing out does the same, its other
        places do not.
        """
        for place in (ALICE, BOB, CAROL):
            self.put(place)
        self.registry.leave("carol@example.com", self.circleId)
        deliveries = _payloads(leaveDeliveries(self.registry, self.circleId, "carol@example.com"))
        self.assertEqual(sorted(p.email for p, _ in deliveries), ["alice@example.com", "bob@example.com"])
        change = parseRosterChange("DEL", parseRoutedPayload(deliveries[0][1].payload or b""))
        assert change is not None
        self.assertEqual(change.left, ("carol@example.com",))
        self.assertNotIn(CAROL, [p for p, _ in _payloads(self.sdg(ALICE).deliveries)])
        self.put(ALICE2)
        self.assertEqual(partDeliveries(self.registry, ALICE2), [])
        self.assertEqual([p for p, _ in _payloads(partDeliveries(self.registry, BOB))], [ALICE])


def method(xml: str) -> Element:
    return parseXML(xml)


class ABCHHandlerTests(RegistryTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.accounts = {
            e: MemberInfo(e, cid, name)
            for e, cid, name in (
                ("alice@example.com", 1, "Alice"),
                ("bob@example.com", 2, "Bob"),
                ("carol@example.com", 3, "Carol"),
            )
        }
        self.alice = self.accounts["alice@example.com"]
        self.bob = self.accounts["bob@example.com"]

    def directory(self, email: str) -> Optional[MemberInfo]:
        return self.accounts.get(email.lower())

    def test_createCircle(self) -> None:
        """
        The client's C{CreateCircle} makes a circle with alice as admin;
        the answer parses on the client side.
        """
        result = circleabch.createCircle(self.registry, self.alice, method(soap.createCircleBody("Family", "Alice")))
        circleId = soap.parseCreateCircleResponse(parseXML(result.body))
        self.assertTrue(self.registry.isMember("alice@example.com", circleId))
        self.assertEqual(result.ownChanged, ("alice@example.com",))

    def test_createCircleRefusesOtherProperties(self) -> None:
        """
        Properties other than Escargot's required values are refused.
        """
        body = soap.createCircleBody("Family").replace("<Type>2</Type>", "<Type>3</Type>")
        fault = self.assertRaises(CircleFault, circleabch.createCircle, self.registry, self.alice, method(body))
        self.assertEqual(fault.errorCode, "InvalidArgument")

    def test_inviteFaults(self) -> None:
        """
        Unknown accounts and existing members are refused with the codes
        Escargot uses.
        """
        circleId = self.family("bob@example.com")
        fault = self.assertRaises(
            CircleFault, circleabch.createContact, self.registry, self.alice,
            method(soap.createContactBody(circleId, "nobody@example.com")), self.directory,
        )
        self.assertEqual(fault.errorCode, "InvalidPassportUser")
        fault = self.assertRaises(
            CircleFault, circleabch.createContact, self.registry, self.alice,
            method(soap.createContactBody(circleId, "bob@example.com")), self.directory,
        )
        self.assertEqual(fault.errorCode, "ContactAlreadyExists")

    def test_circleBookAccess(self) -> None:
        """
        Only members and invitees may read a circle's book; a non-circle
        handle is not a circle-book request.
        """
        circleId = self.family()
        request = method(soap.circleBookBody(circleId))
        self.assertTrue(circleabch.isCircleBookRequest(request))
        self.assertFalse(circleabch.isCircleBookRequest(method("<ABFindContactsPaged><abView/></ABFindContactsPaged>")))
        self.assertRaises(CircleFault, circleabch.circleBook, self.registry, self.bob, request, self.directory, "t")

    def test_breakConnectionOwnOnly(self) -> None:
        """
        Leaving needs one's own contact id in the circle's book.
        """
        circleId = self.family("bob@example.com")
        alice = self.registry.require(circleId).membership("alice@example.com")
        assert alice is not None
        body = method(soap.breakConnectionBody(circleId, alice.contactId))
        self.assertRaises(CircleFault, circleabch.breakConnection, self.registry, self.bob, body)
        self.assertTrue(self.registry.isMember("bob@example.com", circleId))

    def test_circleNotification(self) -> None:
        """
        The circle C{NOT} the server builds is read by the client parser.
        """
        circleId = self.family()
        self.assertEqual(circleIdOfNotification(circleabch.circleNotificationPayload("a@x.com", circleId)), circleId)


class RoutingPropertyTests(RegistryTestCase):
    """
    Hostile commands never escape the routing functions: any payload gets
    a reply (or deliberately none) and never an exception.
    """

    def setUp(self) -> None:
        super().setUp()
        self.circleId = self.family("bob@example.com")
        self.converse(self.circleId, ALICE, BOB)

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from(["PUT", "SDG", "DEL", "NFY"]),
        st.lists(st.sampled_from([
            b"Routing: 1.0", b"To: 9:00000000-0000-0000-0009-0000000000ab@live.com;path=IM",
            b"To: 9:00000000-0000-0000-0009-0000000000ab@live.com", b"To: 1:bob@example.com",
            b"From: 1:alice@example.com;epid={6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}", b"From: 1:eve@example.com",
            b"Reliability: 1.0", b"Publication: 1.0", b"Messaging: 1.0", b"Notification: 1.0",
            b"Content-Type: application/circles+xml", b"Uri: /circle/roster(IM)/user(1:alice@example.com)",
            b"<circle><roster><id>IM</id><user><id>1:alice@example.com</id></user></roster></circle>",
            b"<circle><props/></circle>", b"<circle><roster>", b"", b"\xff", b":",
        ]), max_size=16),
    )
    def test_anyCommand(self, name: str, lines: list[bytes]) -> None:
        """
        Near-valid routed payloads from alice's place are answered with
        C{OK}, C{201} or nothing, and only ever delivered to roster places.
        """
        routed = routeCircleCommand(self.registry, ALICE, Command(name, 7, (), b"\r\n".join(lines)))
        if routed.reply is not None:
            self.assertIn(routed.reply.name, (name, "201"))
        roster = set(self.registry.rosterPlaces(self.circleId)) | {ALICE}
        for delivery in routed.deliveries:
            self.assertIn(delivery.place, roster)

    @settings(max_examples=100, deadline=None, database=None)
    @given(st.binary(max_size=300))
    def test_anyListPayload(self, payload: bytes) -> None:
        """
        Any circle ADL payload is answered C{OK}, C{241} or C{933}.
        """
        reply = subscribeCircles(self.registry, ALICE, 3, payload, True).reply
        assert reply is not None
        self.assertIn(reply.name, ("ADL", "241", "933"))
