"""
The client against a hostile server, over real loopback sockets (issue
11, points 14, 17-19, client side).

A real L{msnp.client.MSNClient} signs in to a L{LocalNetwork}; the test
then writes hostile lines itself on the server's end of the client's NS
connection (endless new endpoint ids, floods of C{RNG}), and the
invitations point at a small hostile switchboard in the test that accepts
connections and never answers. Each test waits for a sentinel event that
the client handles after the flood (never for wall-clock time).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits
from msnp.conversation import ConversationState
from msnp.session import Session

from test.support import EventRecorder, Summary, asyncTest, signIn, startLocalNetwork, waitUntil

PASSWORD = "secret-pw"
ALICE = "alice@example.com"
BOB = "bob@example.com"


def guid(i: int) -> str:
    return f"{{{i:08X}-1111-4222-8333-444455556666}}"


#: What the hostile-stream tests compare (the only events recorded).
PROFILE_EVENTS: dict[str, Summary] = {
    "contactNameChanged": lambda session, contact, name: (contact.email, name),
    "contactPersonalMessageChanged": lambda session, contact, text: (contact.email, text),
    "endpointsChanged": lambda session, places: (len(places),),
}


class SilentSwitchboard(Protocol):
    """
    A switchboard that accepts a connection and never answers its C{ANS}.
    """

    def connectionMade(self) -> None:
        self.factory.open.append(self)  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open.remove(self)  # type: ignore[attr-defined]


class HostileTestCase(TestCase):
    timeout = 60

    async def start(self, limits: ClientLimits = DEFAULT_CLIENT_LIMITS) -> tuple[Session, EventRecorder]:
        self.network, endpoints = await startLocalNetwork(
            self, [(ALICE, PASSWORD, "Alice"), (BOB, PASSWORD, "Bob")], mutualContacts=[(ALICE, BOB)]
        )
        observer = EventRecorder("alice", PROFILE_EVENTS)
        session = await signIn(self, ALICE, PASSWORD, endpoints, observer=observer, limits=limits)
        return session, observer

    def hostile(self, lines: list[bytes]) -> None:
        """
        Write C{lines} from the server's end of alice's NS connection.
        """
        [server] = self.network.presence.sessionsOf(ALICE)
        server.transport.write(b"".join(lines))

    async def sentinel(self, observer: EventRecorder, name: str) -> None:
        """
        A last NLN renaming bob: once alice's client has it, it has handled
        everything written before it.
        """
        self.hostile([f"NLN NLN 1:{BOB} {name} 0:0 0\r\n".encode()])
        await observer.waitFor(lambda: (BOB, name) in observer.named("contactNameChanged"), name)

    def silentSwitchboard(self) -> tuple[Factory, str]:
        factory = Factory.forProtocol(SilentSwitchboard)
        factory.noisy = False
        factory.open = []  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]

        def close() -> Any:
            for protocol in list(factory.open):  # type: ignore[attr-defined]
                protocol.transport.abortConnection()
            return port.stopListening()

        self.addCleanup(close)
        return factory, f"127.0.0.1:{port.getHost().port}"


class PlacesFloodTests(HostileTestCase):
    """
    Point 17: endless new endpoint ids.
    """

    @asyncTest
    async def test_nlnFlood(self) -> None:
        """
        10,000 NLN for bob, each with a new endpoint id: alice's client
        keeps 8 places for him (the cap), the 8 newest.
        """
        session, observer = await self.start(ClientLimits(placesPerContact=8))
        lines = [f"NLN NLN 1:{BOB};{guid(i)} Bob 0:0 0\r\n".encode() for i in range(10_000)]
        self.hostile(lines)
        await self.sentinel(observer, "Done")
        contact = session.contacts.get(BOB)
        assert contact is not None
        self.assertEqual(sorted(contact.endpoints), sorted(guid(i) for i in range(9_992, 10_000)))

    @asyncTest
    async def test_nlnFloodDefault(self) -> None:
        """
        With the default limits the same flood leaves 16 places.
        """
        session, observer = await self.start()
        self.hostile([f"NLN NLN 1:{BOB};{guid(i)} Bob 0:0 0\r\n".encode() for i in range(10_000)])
        await self.sentinel(observer, "Done")
        contact = session.contacts.get(BOB)
        assert contact is not None
        self.assertEqual(len(contact.endpoints), DEFAULT_CLIENT_LIMITS.placesPerContact)

    @asyncTest
    async def test_ubxFlood(self) -> None:
        """
        A UBX listing 500 endpoints, for bob and for alice herself, keeps 8.
        """
        session, observer = await self.start(ClientLimits(placesPerContact=8))
        data = "".join(f'<EndpointData id="{guid(i)}"><Capabilities>0:0</Capabilities></EndpointData>' for i in range(500))
        for account, psm in ((BOB, "flood"), (ALICE, "mine")):
            payload = f"<Data><PSM>{psm}</PSM><CurrentMedia></CurrentMedia>{data}</Data>".encode()
            self.hostile([f"UBX 1:{account} {len(payload)}\r\n".encode() + payload])
        await observer.waitFor(lambda: observer.named("contactPersonalMessageChanged"), "bob's UBX")
        await observer.waitFor(lambda: session.personalMessage == "mine", "alice's UBX")
        contact = session.contacts.get(BOB)
        assert contact is not None
        self.assertEqual(len(contact.endpoints), 8)
        self.assertLessEqual(len(session.places), 8)


class InvitationFloodTests(HostileTestCase):
    """
    Point 18 (and 14): RNG floods against the client.
    """

    def rngs(self, address: str, inviters: list[str]) -> list[bytes]:
        return [
            f"RNG {1000 + i} {address} CKI token{i} {inviter} Someone U messenger.msn.com 1\r\n".encode()
            for i, inviter in enumerate(inviters)
        ]

    @asyncTest
    async def test_rngFlood(self) -> None:
        """
        200 RNG (100 from one stranger, 2 each from 50 others) pointing at
        a switchboard that never answers: alice's client opens at most
        C{openConversations} (10) connections, one conversation per
        inviter, and still works (the sentinel is handled).
        """
        session, observer = await self.start(ClientLimits(openConversations=10, invitationsPerContact=3))
        factory, address = self.silentSwitchboard()
        inviters = ["mallory@example.com"] * 100 + [f"u{i % 50}@example.com" for i in range(100)]
        self.hostile(self.rngs(address, inviters))
        await self.sentinel(observer, "Done")
        manager = session.conversationManager
        await waitUntil(lambda: len(factory.open) == manager.openCount(), 10)  # type: ignore[attr-defined]
        self.assertEqual(manager.openCount(), 10)
        self.assertEqual(len(factory.open), 10)  # type: ignore[attr-defined]
        sets = [c.contacts for c in manager.conversations]
        self.assertEqual(len(sets), len(set(sets)))
        self.assertIn(frozenset({"mallory@example.com"}), sets)
        self.assertEqual(manager.refusedInvitations.count, 190)

    @asyncTest
    async def test_allowListOnly(self) -> None:
        """
        With BLP BL, an RNG from a stranger is not answered while one from
        bob (on the Allow list) is.
        """
        session, observer = await self.start()
        assert session.profile is not None
        session.profile.blp = "BL"
        factory, address = self.silentSwitchboard()
        self.hostile(self.rngs(address, ["mallory@example.com", BOB]))
        await self.sentinel(observer, "Done")
        manager = session.conversationManager
        await waitUntil(lambda: len(factory.open) == 1, 10)  # type: ignore[attr-defined]
        self.assertEqual([c.contacts for c in manager.conversations], [frozenset({BOB})])
        self.assertIs(manager.conversations[0].state, ConversationState.CONNECTING)


class TimeoutConfigTests(HostileTestCase):
    """
    Point 19: every switchboard wait derives from the configured timeout.
    """

    @asyncTest
    async def test_waitsFromRequestTimeout(self) -> None:
        """
        A client with C{requestTimeout=7.5} waits 7.5 s for a TCP connect
        and an ACK and 15 s for a whole set-up (not 30/30/60).
        """
        self.network, endpoints = await startLocalNetwork(self, [(ALICE, PASSWORD, "Alice")])
        session = await signIn(self, ALICE, PASSWORD, endpoints, requestTimeout=7.5)
        manager = session.conversationManager
        self.assertEqual(
            (manager.connectTimeout, manager.ackTimeout, manager.setupTimeout, manager.requestTimeout),
            (7.5, 7.5, 15.0, 7.5),
        )


#: What the blocked-sender tests compare (the only events recorded).
CHAT_EVENTS: dict[str, Summary] = {
    "conversationStarted": lambda session, conversation: (conversation,),
    "messageReceived": lambda session, conversation, message: (message.sender, message.text),
    "participantJoined": lambda session, conversation, email: (email,),
}


class BlockedOnOpenSwitchboardTests(TestCase):
    """
    Point 12, client side: what a blocked contact sends on a switchboard
    that was open before the block is not handed to the application.
    """

    timeout = 60

    async def start(self) -> dict[str, tuple[Session, EventRecorder]]:
        names = ("alice", "bob", "carol")
        self.network, endpoints = await startLocalNetwork(
            self,
            [(f"{n}@example.com", PASSWORD, n.capitalize()) for n in names],
            mutualContacts=[(f"{a}@example.com", f"{b}@example.com")
                            for a, b in (("alice", "bob"), ("alice", "carol"), ("bob", "carol"))],
        )
        people = {}
        for n in names:
            observer = EventRecorder(n, CHAT_EVENTS)
            people[n] = (await signIn(self, f"{n}@example.com", PASSWORD, endpoints, observer=observer), observer)
        return people

    @asyncTest
    async def test_relayedAfterBlockNotShown(self) -> None:
        """
        alice, bob and carol share a switchboard; alice's client learns
        that bob is blocked (as from another place) while the server still
        relays him: bob's text (acknowledged, so written to alice's
        connection) is dropped, carol's, written after it, arrives.
        """
        from msnp.contacts import Lists

        people = await self.start()
        alice, aliceEvents = people["alice"]
        bobSession, bobEvents = people["bob"]
        carolSession, carolEvents = people["carol"]
        conversation = await alice.openConversation(BOB)
        await conversation.invite("carol@example.com")
        await bobEvents.waitFor(lambda: bobEvents.named("participantJoined"), "carol joins for bob")
        await carolEvents.waitFor(lambda: carolEvents.named("conversationStarted"), "carol joined")
        [(bobSide,)] = bobEvents.named("conversationStarted")
        [(carolSide,)] = carolEvents.named("conversationStarted")
        contact = alice.contacts.get(BOB)
        assert contact is not None
        contact.lists |= Lists.BLOCK
        await bobSide.sendText("from bob")
        await carolSide.sendText("from carol")
        await aliceEvents.waitFor(lambda: aliceEvents.named("messageReceived"), "carol's text")
        self.assertEqual(aliceEvents.named("messageReceived"), [("carol@example.com", "from carol")])

    @asyncTest
    async def test_blockContactLeaves(self) -> None:
        """
        After C{blockContact(bob)} alice's one-to-one conversation with bob
        is no longer active and nothing more from him reaches alice.
        """
        people = await self.start()
        alice, aliceEvents = people["alice"]
        conversation = await alice.openConversation(BOB)
        await alice.blockContact(BOB)
        await waitUntil(lambda: not conversation.isActive, 10)
        self.assertEqual(aliceEvents.named("messageReceived"), [])
