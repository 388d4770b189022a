"""
Circles (MSNP18 group chats) end to end: real L{msnp.client.MSNClient}s
signed in to a L{msnp.server.network.LocalNetwork} over loopback sockets
and real HTTP (issue 16).

Each test waits for observer events (never for wall-clock time); a missing
event fails the test through a per-wait timeout. The quiet window after
which a circle send counts as sent runs on a L{Clock} per session.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from msnp.circlechat import ChatCircle, CircleError, PendingCircleInvitation
from msnp.circles import buildCircleListPayload
from msnp.circlewire import CircleMessageType, buildJoinPayload, buildMessagePayload, buildPartPayload
from msnp.errors import MessageNotDelivered, ServerError
from msnp.server.circleabch import circleNotificationPayload
from msnp.soap.envelope import ABCHFault
from msnp.wire import Command

from test.support import EventRecorder, Summary, signIn, startLocalNetwork

PASSWORD = "secret-pw"
UNKNOWN_CIRCLE = "00000000-0000-0000-0009-00000000ffff"


#: What these tests compare of the circle events (the only ones recorded).
CIRCLE_EVENTS: dict[str, Summary] = {
    "circleJoined": lambda session, circle: (circle.circleId,),
    "circleLeft": lambda session, circle: (circle.circleId,),
    "circleChanged": lambda session, circle: (circle.circleId,),
    "circleInvitationReceived": lambda session, invitation: (invitation,),
    "circleRosterChanged": lambda session, circle, joined, left: (circle.circleId, joined, left),
    "circleMessageReceived": lambda session, circle, sender, message: (circle.circleId, sender, message.text),
    "circleNudgeReceived": lambda session, circle, sender: (circle.circleId, sender),
    "circleTypingReceived": lambda session, circle, sender: (circle.circleId, sender),
}


def circleTexts(recorder: EventRecorder) -> list[tuple[str, str]]:
    """
    C{(sender, text)} of every circle message C{recorder} heard.
    """
    return [(sender, text) for _, sender, text in recorder.named("circleMessageReceived")]


class CirclesEndToEndTests(TestCase):
    """
    alice, bob, carol and dave on one local network.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(f"{n}@example.com", PASSWORD, n.capitalize()) for n in ("alice", "bob", "carol", "dave")],
            reactor=reactor,
        )
        self.clocks: dict[str, Clock] = {}

    async def signIn(self, name: str, place: str = "") -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(name + place, CIRCLE_EVENTS)
        session = await signIn(self, f"{name}@example.com", PASSWORD, self.endpoints, recorder)
        clock = Clock()
        session.circleManager.clock = clock
        self.clocks[name + place] = clock
        return session, recorder

    async def send(self, who: str, circle: ChatCircle, text: str) -> None:
        """
        Send C{text} and let the quiet window pass on that place's clock.
        """
        d = circle.sendText(text)
        self.clocks[who].advance(circle._manager().quietWindow)
        await d

    async def circleWithMembers(self) -> tuple[str, dict[str, tuple[Any, EventRecorder]]]:
        """
        alice creates "Family" and invites bob (signed in at two places)
        and carol; all accept; every place is in the conversation.
        """
        places = {
            "alice": await self.signIn("alice"),
            "bob1": await self.signIn("bob", "1"),
            "bob2": await self.signIn("bob", "2"),
            "carol": await self.signIn("carol"),
        }
        alice, aliceEvents = places["alice"]
        circle = await alice.createCircle("Family")
        circleId = circle.circleId
        self.assertIs(alice.circles[circleId], circle)
        self.assertEqual(circle.name, "Family")
        self.assertEqual(list(circle.members), ["alice@example.com"])
        await circle.invite("bob@example.com")
        await circle.invite("carol@example.com")
        self.assertTrue(circle.members["bob@example.com"].isPending)
        for name in ("bob1", "bob2", "carol"):
            session, events = places[name]
            await events.waitFor(lambda s=session: circleId in s.circleInvitations, f"{name}'s invitation")
            [invitation] = events.named("circleInvitationReceived")
            self.assertEqual((invitation[0].name, invitation[0].inviterEmail), ("Family", "alice@example.com"))
        bob1, _ = places["bob1"]
        joined = await bob1.circleInvitations[circleId].accept()
        self.assertIs(bob1.circles[circleId], joined)
        carol, _ = places["carol"]
        await carol.circleInvitations[circleId].accept()
        # bob's other place joins on its own once told (ABCHInternal NOT).
        bob2, bob2Events = places["bob2"]
        await bob2Events.waitFor(lambda: circleId in bob2.circles, "bob2 joining")
        await aliceEvents.waitFor(
            lambda: circle.online == {"bob@example.com", "carol@example.com"}, "everyone in alice's roster"
        )
        await aliceEvents.waitFor(
            lambda: not circle.members["carol@example.com"].isPending and not circle.members["bob@example.com"].isPending,
            "alice's member book updated",
        )
        # The accepted members were learnt from the circle NOTs.
        self.assertTrue(aliceEvents.named("circleChanged"))
        for name in ("bob1", "bob2"):
            session, events = places[name]
            await events.waitFor(
                lambda s=session: s.circles[circleId].online >= {"alice@example.com", "carol@example.com"},
                f"{name}'s roster",
            )
        return circleId, places

    async def test_messagesReachEveryOtherPlaceOnce(self) -> None:
        """
        A message from each member reaches the others exactly once per
        place (bob's two places each once, the sender's own other place
        too), never the sending place.
        """
        circleId, places = await self.circleWithMembers()
        senders = {"alice": "alice@example.com", "bob1": "bob@example.com", "carol": "carol@example.com"}
        expected: dict[str, list[tuple[str, str]]] = {name: [] for name in places}
        for name, email in senders.items():
            session, _ = places[name]
            text = f"hello from {name}"
            await self.send(name, session.circles[circleId], text)
            for other in places:
                if other != name:
                    expected[other].append((email, text))
            # Each message reaches every other place before the next one
            # is sent, so the order each place sees is the sending order.
            for other, (_, events) in places.items():
                if other != name:
                    await events.waitFor(lambda e=events, t=text: (email, t) in circleTexts(e), f"{other}: {text}")
        # A round trip of each place after the last delivery: a duplicate
        # would have been written to its stream before this reply.
        for session, _ in places.values():
            await session.setPersonalMessage("sync")
        for name, (_, events) in places.items():
            self.assertEqual(circleTexts(events), expected[name], name)
        self.assertEqual(expected["bob2"], [(e, f"hello from {n}") for n, e in senders.items()])

    async def test_typingAndNudge(self) -> None:
        """
        Typing notices and nudges reach the other members as their own
        events.
        """
        circleId, places = await self.circleWithMembers()
        alice, _ = places["alice"]
        alice.circles[circleId].sendTyping()
        d = alice.circles[circleId].sendNudge()
        self.clocks["alice"].advance(2.0)
        await d
        _, carolEvents = places["carol"]
        await carolEvents.waitFor(lambda: carolEvents.named("circleNudgeReceived"), "nudge")
        self.assertEqual(carolEvents.named("circleTypingReceived"), [(circleId, "alice@example.com")])
        self.assertEqual(carolEvents.named("circleNudgeReceived"), [(circleId, "alice@example.com")])

    async def test_leaverStopsReceiving(self) -> None:
        """
        carol leaves: she is out of C{session.circles} and of the server's
        circle, the others see her leave the roster, and a message sent
        after reaches bob but not carol.
        """
        circleId, places = await self.circleWithMembers()
        carol, carolEvents = places["carol"]
        alice, aliceEvents = places["alice"]
        await carol.circles[circleId].leave()
        self.assertNotIn(circleId, carol.circles)
        self.assertEqual(carolEvents.named("circleLeft"), [(circleId,)])
        self.assertFalse(self.network.circles.isMember("carol@example.com", circleId))
        await aliceEvents.waitFor(lambda: "carol@example.com" not in alice.circles[circleId].online, "carol leaving")
        self.assertIn((circleId, frozenset(), frozenset({"carol@example.com"})), aliceEvents.named("circleRosterChanged"))
        before = len(circleTexts(carolEvents))
        await self.send("alice", alice.circles[circleId], "after carol")
        _, bobEvents = places["bob1"]
        await bobEvents.waitFor(lambda: ("alice@example.com", "after carol") in circleTexts(bobEvents), "bob's message")
        # A round trip of carol's after the server routed the message: had
        # it been sent to her, it would have arrived before this reply.
        await carol.setPersonalMessage("still here")
        self.assertEqual(len(circleTexts(carolEvents)), before)
        self.assertTrue(carol.isActive)

    async def test_nonMemberCannotSendOrRead(self) -> None:
        """
        dave, not in the circle, can neither subscribe, join, send, nor
        read its member book; the members receive nothing from him.
        """
        circleId, places = await self.circleWithMembers()
        dave, daveEvents = await self.signIn("dave")
        error = await self.failUnlessFailure(
            dave.protocol.sendListCommand("ADL", buildCircleListPayload([circleId])), ServerError
        )
        self.assertEqual(error.code, 933)
        guid = dave.machineGuid
        error = await self.failUnlessFailure(
            dave.protocol.sendCommand("PUT", payload=buildJoinPayload(circleId, "dave@example.com", guid)), ServerError
        )
        self.assertEqual(error.code, 201)
        payload = buildMessagePayload(circleId, "dave@example.com", guid, 1, CircleMessageType.TEXT, "let me in")
        error = await self.failUnlessFailure(dave.protocol.sendCommand("SDG", payload=payload), ServerError)
        self.assertEqual(error.code, 201)
        fault = await self.failUnlessFailure(dave.circleManager.service.findCircleBook(circleId), ABCHFault)
        self.assertEqual(fault.errorCode, "AccessDenied")
        # Nor through the session's API: the circle is not his.
        foreign = ChatCircle(circleId, "Family", manager=dave.circleManager)
        await self.failUnlessFailure(foreign.sendText("hi"), CircleError)
        # alice's next message reaches bob first; dave's never arrived.
        alice, _ = places["alice"]
        await self.send("alice", alice.circles[circleId], "members only")
        for name in ("bob1", "carol"):
            _, events = places[name]
            await events.waitFor(lambda e=events: ("alice@example.com", "members only") in circleTexts(e), name)
            self.assertNotIn(("dave@example.com", "let me in"), circleTexts(events))
        self.assertEqual(dave.circles, {})
        self.assertEqual(daveEvents.named("circleMessageReceived"), [])

    async def test_declinedInvitationLeavesNoTrace(self) -> None:
        """
        carol declines: the invitation is gone from her session, from the
        server, from alice's member book, and from carol's next sign-in.
        """
        alice, aliceEvents = await self.signIn("alice")
        carol, carolEvents = await self.signIn("carol")
        circle = await alice.createCircle("Book club")
        await circle.invite("carol@example.com")
        await carolEvents.waitFor(lambda: circle.circleId in carol.circleInvitations, "carol's invitation")
        invitation: PendingCircleInvitation = carol.circleInvitations[circle.circleId]
        await invitation.decline()
        self.assertEqual(carol.circleInvitations, {})
        self.assertEqual(carol.circles, {})
        record = self.network.circles.require(circle.circleId)
        self.assertEqual(list(record.members), ["alice@example.com"])
        self.assertEqual(self.network.circles.invitationsOf("carol@example.com"), [])
        await aliceEvents.waitFor(lambda: "carol@example.com" not in circle.members, "alice's book without carol")
        again, againEvents = await self.signIn("carol", "again")
        self.assertEqual((again.circles, again.circleInvitations), ({}, {}))
        self.assertEqual(againEvents.named("circleInvitationReceived"), [])
        await self.failUnlessFailure(invitation.accept(), CircleError)

    async def test_refusedSendFailsWithTypedError(self) -> None:
        """
        A send the server refuses (the place left the conversation with
        C{DEL}) fails with L{MessageNotDelivered} at once, without waiting
        for the quiet window; the session stays usable.
        """
        alice, _ = await self.signIn("alice")
        circle = await alice.createCircle("Solo")
        await alice.protocol.sendCommand(
            "DEL", payload=buildPartPayload(circle.circleId, "alice@example.com", alice.machineGuid)
        )
        await self.failUnlessFailure(circle.sendText("anyone?"), MessageNotDelivered)
        self.assertTrue(alice.isActive)
        self.assertIn(circle.circleId, alice.circles)

    async def test_circlesAtSignIn(self) -> None:
        """
        A circle made earlier is listed, subscribed and joined at the next
        sign-in, with its members and roles; the hidden representative is
        not a contact.
        """
        alice, _ = await self.signIn("alice")
        circle = await alice.createCircle("Team")
        await alice.logout()
        again, events = await self.signIn("alice", "again")
        self.assertEqual(list(again.circles), [circle.circleId])
        found = again.circles[circle.circleId]
        self.assertEqual((found.name, found.role.wireName, list(found.members)), ("Team", "Admin", ["alice@example.com"]))
        self.assertEqual(events.named("circleJoined"), [(circle.circleId,)])
        self.assertEqual([c.email for c in again.contacts], [])
        place = next(iter(self.network.circles.rosterPlaces(circle.circleId)))
        self.assertEqual(place.email, "alice@example.com")

    async def test_hostileInputIgnored(self) -> None:
        """
        An C{SDG}/C{NFY} for a circle one is not in, a malformed roster,
        malformed payloads and a circle C{NOT} with a bad or unknown
        circle id are logged and ignored: no event, the circles as they
        were, and the session still works (a message still arrives).
        """
        alice, aliceEvents = await self.signIn("alice")
        bob, bobEvents = await self.signIn("bob")
        circle = await alice.createCircle("Pair")
        await circle.invite("bob@example.com")
        await bobEvents.waitFor(lambda: circle.circleId in bob.circleInvitations, "bob's invitation")
        await bob.circleInvitations[circle.circleId].accept()
        await bobEvents.waitFor(lambda: "alice@example.com" in bob.circles[circle.circleId].online, "bob's roster")
        before = list(bobEvents.events)
        [server] = self.network.presence.sessionsOf("bob@example.com")
        foreign = buildMessagePayload(UNKNOWN_CIRCLE, "alice@example.com", alice.machineGuid, 1, CircleMessageType.TEXT, "psst")
        badRoster = (
            b"Routing: 1.0\r\nTo: 1:bob@example.com\r\nFrom: 9:" + circle.circleId.encode() + b"@live.com\r\n\r\n"
            b"Reliability: 1.0\r\n\r\nPublication: 1.0\r\nUri: /circle\r\nNotifType: Partial\r\n"
            b"Content-Type: application/circles+xml\r\nContent-Length: 40\r\n\r\n<circle><roster><id>IM</id><user><id>1:x"
        )
        foreignRoster = badRoster.replace(circle.circleId.encode(), UNKNOWN_CIRCLE.encode()).replace(
            b"<user><id>1:x", b"<user><id>1:mallory@example.com</id></user></roster></circle>"
        )
        for command in (
            Command("SDG", 0, (), foreign),
            Command("SDG", 0, (), b"not a routed payload at all"),
            Command("NFY", None, ("PUT",), badRoster),
            Command("NFY", None, ("PUT",), foreignRoster),
            Command("NFY", None, ("DEL",), b"\r\n\r\n"),
            Command("NOT", None, (), circleNotificationPayload("bob@example.com", UNKNOWN_CIRCLE)),
            Command("NOT", None, (), circleNotificationPayload("bob@example.com", UNKNOWN_CIRCLE).replace(
                UNKNOWN_CIRCLE.encode(), b"not-a-circle")),
        ):
            server.sendRaw(command)
        await self.send("alice", circle, "still fine")
        await bobEvents.waitFor(lambda: ("alice@example.com", "still fine") in circleTexts(bobEvents), "the next message")
        await bob.setPersonalMessage("sync")
        await bob.circleManager.refresh()
        new = [e for e in bobEvents.events if e not in before]
        self.assertEqual(new, [("circleMessageReceived", circle.circleId, "alice@example.com", "still fine")])
        self.assertEqual(list(bob.circles), [circle.circleId])
        self.assertEqual(bob.circles[circle.circleId].online, {"alice@example.com"})
        self.assertTrue(bob.isActive)

    async def test_blockedSenderNotDelivered(self) -> None:
        """
        The one-to-one privacy rule holds in circles: once carol blocks
        bob, bob's circle messages no longer reach her (alice still gets
        them), and a message from alice still does.
        """
        circleId, places = await self.circleWithMembers()
        carol, carolEvents = places["carol"]
        await carol.blockContact("bob@example.com")
        bob1, _ = places["bob1"]
        await self.send("bob1", bob1.circles[circleId], "can carol hear me?")
        _, aliceEvents = places["alice"]
        await aliceEvents.waitFor(
            lambda: ("bob@example.com", "can carol hear me?") in circleTexts(aliceEvents), "alice gets bob's message"
        )
        alice, _ = places["alice"]
        await self.send("alice", alice.circles[circleId], "and me?")
        await carolEvents.waitFor(lambda: ("alice@example.com", "and me?") in circleTexts(carolEvents), "carol gets alice's")
        self.assertNotIn(("bob@example.com", "can carol hear me?"), circleTexts(carolEvents))

    async def test_circleTicketNeverLogged(self) -> None:
        """
        With command tracing on, the C{USR SHA A} line is logged with its
        ticket redacted: neither the ticket nor its base64 form appears in
        any log event, nor in the reprs of the session's circle state.
        """
        texts: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            texts.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        recorder = EventRecorder("alice", CIRCLE_EVENTS)
        alice = await signIn(self, "alice@example.com", PASSWORD, self.endpoints, recorder, trace=True)
        circle = await alice.createCircle("Secret")
        globalLogPublisher.removeObserver(observe)
        ticket = alice.circleManager._authenticatedWith
        assert ticket is not None
        self.assertTrue(any("SHA A" in t for t in texts))
        for secret in (ticket.text, ticket.encoded()):
            self.assertFalse([t for t in texts if secret in t])
            self.assertNotIn(secret, repr(alice.circleManager) + repr(circle) + repr(ticket))

    async def test_forgedCircleTicketRefused(self) -> None:
        """
        C{USR SHA A} with a ticket the network did not sign (or not
        base64) is answered C{911}; the connection stays, and without a
        successful C{SHA A} a circle C{ADL} is refused with C{933}.
        """
        import base64

        alice, _ = await self.signIn("alice")
        circle = await alice.createCircle("Mine")
        await alice.logout()
        again, _ = await self.signIn("alice", "again")
        forged = base64.b64encode(b"<SignedTicket><Data>x</Data><Sig>y</Sig></SignedTicket>").decode()
        for argument in (forged, "***not-base64***"):
            error = await self.failUnlessFailure(again.protocol.sendCommand("USR", "SHA", "A", argument), ServerError)
            self.assertEqual(error.code, 911)
        self.assertTrue(again.isActive)
        dave, _ = await self.signIn("dave")
        self.network.circles.invite("alice@example.com", circle.circleId, "dave@example.com", connected=True)
        self.network.circles.respond("dave@example.com", circle.circleId, accept=True)
        error = await self.failUnlessFailure(
            dave.protocol.sendListCommand("ADL", buildCircleListPayload([circle.circleId])), ServerError
        )
        self.assertEqual(error.code, 933)
