"""
Unit tests of L{msnp.clientlimits} and of the conversation rules it feeds
(issue 11, points 12, 14, 17-20, client side): StringTransports and a
C{Clock}; the same rules over real sockets are in
L{test.test_clientlimits_e2e}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from msnp.clientlimits import (
    DEFAULT_CLIENT_LIMITS,
    ClientLimits,
    InvitationRate,
    RefusalSummary,
    addPlace,
    boundPlaces,
    permitsInvitation,
)
from msnp.contacts import Contact, Lists, Place
from msnp.conversation import ConversationState
from msnp.endpoints import Endpoints, isCleartextRemote, isLoopbackHost, urlOrigin
from msnp.nsmessages import Invitation
from msnp.switchboard import SwitchboardProtocol

from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from msnp.conversation import Conversation, ConversationManager
from msnp.nsmessages import SwitchboardTicket
from msnp.wire import Command, Direction

from test.support import EventRecorder, commandsIn

GUIDS = [f"{{{i:08X}-0000-4000-8000-000000000000}}" for i in range(40)]
ALICE = "alice@example.com"
ALICE_GUID = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
BOB_GUID = "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"
REPLY = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nFine, thanks!"


def serverMSG(sender: str, name: str, payload: bytes) -> bytes:
    return f"MSG {sender} {name} {len(payload)}\r\n".encode() + payload


class Harness:
    """
    A L{ConversationManager} with caps and a privacy rule whose
    connections are StringTransports (or refused at once).
    """

    def __init__(self, limits: ClientLimits = DEFAULT_CLIENT_LIMITS, refuseConnections: bool = False) -> None:
        self.clock = Clock()
        self.observer = EventRecorder("alice", clock=self.clock)
        self.blocked: set[str] = set()
        self.refuseConnections = refuseConnections
        self.connections: list[tuple[str, SwitchboardProtocol, StringTransport]] = []
        self.manager = ConversationManager(
            ALICE, ALICE_GUID, lambda: "Alice", self.requestSwitchboard,
            observer=self.observer, reactor=self.clock, connector=self.connect,
            limits=limits, permits=lambda email: email not in self.blocked,
        )

    def requestSwitchboard(self) -> "Deferred[SwitchboardTicket]":
        return succeed(SwitchboardTicket("127.0.0.1:1864", f"token{len(self.connections)}"))

    def connect(self, address: str, protocol: SwitchboardProtocol) -> "Deferred[Any]":
        transport = StringTransport()
        self.connections.append((address, protocol, transport))
        if self.refuseConnections:
            return fail(ConnectionRefusedError())
        protocol.makeConnection(transport)
        return succeed(protocol)

    @property
    def protocol(self) -> SwitchboardProtocol:
        return self.connections[-1][1]

    @property
    def transport(self) -> StringTransport:
        return self.connections[-1][2]

    def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def sent(self) -> list[Command]:
        return commandsIn(self.transport, Direction.FROM_CLIENT)

    def drop(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def openWithBob(self) -> Conversation:
        results: list[Conversation] = []
        self.manager.openConversation("bob@example.com").addCallback(results.append)
        self.feed(f"USR 1 OK {ALICE};{ALICE_GUID} Alice\r\n".encode())
        self.feed(b"CAL 2 RINGING 11752013\r\n")
        self.feed(f"JOI bob@example.com;{BOB_GUID} Bob 2789003324:48\r\n".encode())
        assert results, "conversation did not open"
        return results[0]


def redirectFault(url: str) -> bytes:
    return (
        '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:psf="http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"><S:Body><S:Fault>'
        "<faultcode>psf:Redirect</faultcode><psf:redirectUrl>"
        f"{url}</psf:redirectUrl><faultstring>Authentication Failure</faultstring>"
        "</S:Fault></S:Body></S:Envelope>"
    ).encode("utf-8")


class STS(Resource):
    """
    A fake STS: each POST is recorded (path, body) and answered by
    C{answer(request)}.
    """

    isLeaf = True

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[tuple[bytes, bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.requests.append((request.path, request.content.read()))
        result: bytes = self.answer(request)
        return result


def answerWith(body: bytes) -> Any:
    return lambda request: body


def rng(inviter: str, session: str = "s1") -> Invitation:
    return Invitation(session, "127.0.0.1:1865", "tok", inviter, inviter.split("@")[0])


class LimitsValueTests(SynchronousTestCase):
    def test_defaultsPositive(self) -> None:
        """
        The documented defaults; a zero, negative or non-number value is a
        L{ValueError} at construction, also through C{replace}.
        """
        self.assertEqual(DEFAULT_CLIENT_LIMITS.placesPerContact, 16)
        self.assertEqual(DEFAULT_CLIENT_LIMITS.invitationsPerContact, 5)
        self.assertEqual(DEFAULT_CLIENT_LIMITS.openConversations, 64)
        self.assertRaises(ValueError, ClientLimits, placesPerContact=0)
        self.assertRaises(ValueError, ClientLimits, invitationWindow=-1)
        self.assertRaises(ValueError, DEFAULT_CLIENT_LIMITS.replace, openConversations=True)
        self.assertEqual(DEFAULT_CLIENT_LIMITS.replace(openConversations=3).openConversations, 3)


class PlaceTests(SynchronousTestCase):
    def test_addPlaceDropsOldest(self) -> None:
        """
        Adding 10,000 new places under a cap of 8 keeps 8: the newest ones;
        re-adding a known one drops nothing.
        """
        places: dict[str, Place] = {}
        dropped = 0
        guids = [f"{{{i:08X}-0000-4000-8000-000000000000}}" for i in range(10_000)]
        for guid in guids:
            dropped += addPlace(places, guid, Place(guid), 8)
        self.assertEqual(len(places), 8)
        self.assertEqual(dropped, 10_000 - 8)
        self.assertEqual(list(places), guids[-8:])
        self.assertEqual(addPlace(places, guids[-1], Place(guids[-1]), 8), 0)

    def test_boundPlacesKeepsKnown(self) -> None:
        """
        A UBX listing 40 places under a cap of 4 keeps the 2 already known
        and the first 2 unknown ones.
        """
        new = {g: Place(g) for g in GUIDS}
        known = {GUIDS[30]: Place(GUIDS[30]), GUIDS[39]: Place(GUIDS[39])}
        kept, dropped = boundPlaces(new, known, 4)
        self.assertEqual(list(kept), [GUIDS[30], GUIDS[39], GUIDS[0], GUIDS[1]])
        self.assertEqual(dropped, 36)
        self.assertEqual(boundPlaces({GUIDS[0]: Place(GUIDS[0])}, {}, 4)[1], 0)

    def test_summaryLogsRarely(self) -> None:
        """
        10,000 drops make 11 log lines (the first and every 1000th), not
        10,000.
        """
        from twisted.logger import globalLogPublisher

        lines: list[Any] = []
        globalLogPublisher.addObserver(lines.append)
        self.addCleanup(globalLogPublisher.removeObserver, lines.append)
        summary = RefusalSummary("things")
        for _ in range(10_000):
            summary.add("one")
        mine = [e for e in lines if e.get("what") == "things"]
        self.assertEqual(len(mine), 11)
        self.assertEqual(summary.count, 10_000)


class RateTests(SynchronousTestCase):
    def test_windowOnClock(self) -> None:
        """
        Three invitations per inviter per 60 s on the injected clock; the
        window slides; inviters tracked stay under C{trackedInviters}.
        """
        clock = Clock()
        rate = InvitationRate(ClientLimits(invitationsPerContact=3, trackedInviters=10), clock)
        self.assertEqual([rate.admit("x@example.com") for _ in range(5)], [True, True, True, False, False])
        clock.advance(59)
        self.assertFalse(rate.admit("x@example.com"))
        clock.advance(1.5)
        self.assertTrue(rate.admit("x@example.com"))
        for i in range(1000):
            rate.admit(f"u{i}@example.com")
        self.assertEqual(rate.tracked(), 10)


class PrivacyRuleTests(SynchronousTestCase):
    def test_permits(self) -> None:
        """
        Blocked: never. BLP BL: only the Allow list. BLP AL: anyone else.
        """
        allowed = Contact("a@example.com", lists=Lists.ALLOW | Lists.FORWARD)
        blocked = Contact("b@example.com", lists=Lists.BLOCK | Lists.FORWARD)
        plain = Contact("c@example.com", lists=Lists.FORWARD)
        self.assertEqual([permitsInvitation(c, "AL") for c in (allowed, blocked, plain, None)],
                         [True, False, True, True])
        self.assertEqual([permitsInvitation(c, "BL") for c in (allowed, blocked, plain, None)],
                         [True, False, False, False])


class InvitationFloodTests(SynchronousTestCase):
    def test_sameInviterReused(self) -> None:
        """
        200 RNG from one inviter while the first is being answered: one
        connection, one conversation.
        """
        h = Harness(DEFAULT_CLIENT_LIMITS)
        for i in range(200):
            h.manager.invited(rng("mallory@example.com", f"s{i}"))
        self.assertEqual(len(h.connections), 1)
        self.assertEqual(len(h.manager.conversations), 1)
        self.assertEqual(h.manager.refusedInvitations.count, 199)

    def test_openCap(self) -> None:
        """
        200 RNG from 200 inviters: at most C{openConversations} connections
        and conversations.
        """
        h = Harness(ClientLimits(openConversations=10))
        for i in range(200):
            h.manager.invited(rng(f"u{i}@example.com", f"s{i}"))
        self.assertEqual(len(h.connections), 10)
        self.assertEqual(h.manager.openCount(), 10)
        self.assertEqual(len(h.manager.conversations), 10)

    def test_ratePerInviter(self) -> None:
        """
        An inviter whose switchboards fail at once is answered 3 times per
        minute, however many RNG it sends; again after the window.
        """
        h = Harness(ClientLimits(invitationsPerContact=3), refuseConnections=True)
        for i in range(100):
            h.manager.invited(rng("mallory@example.com", f"s{i}"))
        self.assertEqual(len(h.connections), 3)
        self.assertEqual(h.manager.conversations, [])
        h.clock.advance(61)
        for i in range(100):
            h.manager.invited(rng("mallory@example.com", f"t{i}"))
        self.assertEqual(len(h.connections), 6)

    def test_keptConversationsBounded(self) -> None:
        """
        Dormant conversations beyond C{keptConversations} are forgotten,
        oldest first.
        """
        h = Harness(ClientLimits(keptConversations=5, openConversations=1000))
        for i in range(50):
            h.manager.invited(rng(f"u{i}@example.com", f"s{i}"))
            h.drop()
        self.assertLessEqual(len(h.manager.conversations), 5)

    def test_blockedInviterIgnored(self) -> None:
        """
        An RNG from an address our privacy does not permit is not answered.
        """
        h = Harness(DEFAULT_CLIENT_LIMITS)
        h.blocked.add("mallory@example.com")
        h.manager.invited(rng("mallory@example.com"))
        self.assertEqual(h.connections, [])
        self.assertEqual(h.manager.conversations, [])


class BlockTests(SynchronousTestCase):
    def test_messagesOfBlockedDropped(self) -> None:
        """
        On a switchboard open before the block, a blocked contact's
        messages are not handed to the application; others' still are.
        """
        h = Harness(DEFAULT_CLIENT_LIMITS)
        h.openWithBob()
        h.feed(serverMSG("bob@example.com", "Bob", REPLY))
        h.blocked.add("bob@example.com")
        h.feed(serverMSG("bob@example.com", "Bob", REPLY))
        h.feed(f"JOI carol@example.com;{GUIDS[1]} Carol 0:0\r\n".encode())
        h.feed(serverMSG("carol@example.com", "Carol", REPLY))
        senders = [e[2].sender for e in h.observer.named("messageReceived")]
        self.assertEqual(senders, ["bob@example.com", "carol@example.com"])

    def test_leavesOneToOne(self) -> None:
        """
        L{ConversationManager.contactBlocked} leaves the one-to-one
        conversation with them (C{OUT} written, connection closing).
        """
        h = Harness(DEFAULT_CLIENT_LIMITS)
        conversation = h.openWithBob()
        h.manager.contactBlocked("Bob@Example.com")
        self.assertTrue(h.transport.disconnecting)
        self.assertIn("OUT", [c.name for c in h.sent()])
        h.drop()
        self.assertIs(conversation.state, ConversationState.IDLE)


class TimeoutTests(SynchronousTestCase):
    def test_ackWaitFromManager(self) -> None:
        """
        A text waits for its ACK exactly the manager's C{ackTimeout} (7 s
        here, not a fixed 30 s).
        """
        h = Harness()
        h.manager.ackTimeout = 7.0  # what Session passes from requestTimeout
        conversation = h.openWithBob()
        failures: list[Any] = []
        conversation.sendText("hi").addErrback(failures.append)
        h.clock.advance(6.9)
        self.assertEqual(failures, [])
        h.clock.advance(0.2)
        self.assertEqual(len(failures), 1)


class EndpointsCheckTests(SynchronousTestCase):
    def test_cleartext(self) -> None:
        """
        Plain http is flagged unless the host is loopback; https never.
        """
        self.assertTrue(isCleartextRemote("http://login.example.com/RST2.srf"))
        self.assertTrue(isCleartextRemote("HTTP://10.0.0.1:8080/RST2.srf"))
        self.assertFalse(isCleartextRemote("http://127.0.0.1:8080/RST2.srf"))
        self.assertFalse(isCleartextRemote("http://[::1]:8080/RST2.srf"))
        self.assertFalse(isCleartextRemote("http://localhost/RST2.srf"))
        self.assertFalse(isCleartextRemote("https://login.example.com/RST2.srf"))
        self.assertTrue(isLoopbackHost("127.8.9.10"))
        self.assertFalse(isLoopbackHost("localhost.example.com"))

    def test_endpointsMethods(self) -> None:
        """
        L{Endpoints.cleartextURLs} names the offending fields;
        L{Endpoints.sendsPasswordInClear} is about the SSO URL.
        """
        e = Endpoints(sso="http://sso.example.com/RST2.srf", sharing="http://127.0.0.1/s",
                      addressBook="http://ab.example.com/ab")
        self.assertEqual(set(e.cleartextURLs()), {"sso", "addressBook"})
        self.assertTrue(e.sendsPasswordInClear)
        self.assertFalse(Endpoints().sendsPasswordInClear)
        self.assertEqual(Endpoints().cleartextURLs(), {})

    def test_origin(self) -> None:
        """
        Default ports are filled in, case ignored.
        """
        self.assertEqual(urlOrigin("HTTPS://Login.Example.com/x"), ("https", "login.example.com", 443))
        self.assertEqual(urlOrigin("http://a:8080/"), ("http", "a", 8080))


class SSORedirectTests(SynchronousTestCase):
    """
    Point 20 over L{StubTreq} (in memory: the example hosts are never
    contacted).
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1262304000)

    def request(self, resource: Any, url: str) -> tuple[list[object], list[Any]]:
        from treq.testing import StubTreq

        from msnp.sso import SSOClient

        stub = StubTreq(resource)
        results: list[object] = []
        failures: list[Any] = []
        d = SSOClient(stub, url, self.clock, timeout=30).requestTokens("alice@example.com", "s3cret!", "MBI_KEY_OLD")
        d.addCallbacks(results.append, failures.append)
        stub.flush()
        return results, failures

    def test_crossOriginRefused(self) -> None:
        """
        A C{psf:Redirect} to another host, port or scheme fails with
        L{UnsafeRedirect} and the password is posted exactly once, to the
        configured origin.
        """
        from msnp.errors import ServiceError, UnsafeRedirect

        for target in (
            "http://evil.example.com/RST2.srf",
            "http://127.0.0.1:8081/RST2.srf",
            "https://127.0.0.1/RST2.srf",
        ):
            resource = STS(answerWith(redirectFault(target)))
            results, failures = self.request(resource, "http://127.0.0.1/RST2.srf")
            [failure] = failures
            error = failure.trap(UnsafeRedirect) and failure.value
            self.assertIsInstance(error, ServiceError)
            self.assertEqual(error.target, target)
            self.assertEqual(len(resource.requests), 1)
            self.assertNotIn("s3cret", str(error))

    def test_sameOriginFollowed(self) -> None:
        """
        A redirect to another path of the same origin is still followed.
        """
        def answer(request: Any) -> bytes:
            return redirectFault("https://Login.Example.com:443/b") if request.path == b"/a" else b"<x/>"

        resource = STS(answer)
        self.request(resource, "https://login.example.com/a")
        self.assertEqual([r[0] for r in resource.requests], [b"/a", b"/b"])
        self.assertEqual(resource.requests[0][1], resource.requests[1][1])

    def test_httpRedirectNotReposted(self) -> None:
        """
        An HTTP 307 to another origin is not followed with the body: one
        POST, then a L{ServiceError}.
        """
        from msnp.errors import ServiceError

        def answer(request: Any) -> bytes:
            request.setResponseCode(307)
            request.setHeader(b"location", b"http://evil.example.com/RST2.srf")
            return b""

        resource = STS(answer)
        results, failures = self.request(resource, "http://127.0.0.1/RST2.srf")
        [failure] = failures
        failure.trap(ServiceError)
        self.assertEqual(len(resource.requests), 1)

    def test_cleartextWarning(self) -> None:
        """
        A plain-http SSO URL to a non-loopback host logs a warning naming
        the URL (never the password); a loopback one does not.
        """
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        events: list[Any] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.request(STS(answerWith(b"<x/>")), "http://127.0.0.1/RST2.srf")
        self.request(STS(answerWith(b"<x/>")), "http://sso.example.com/RST2.srf")
        warnings = [formatEvent(e) for e in events
                    if e.get("log_level") is LogLevel.warn and "unencrypted" in formatEvent(e)]
        self.assertEqual(len(warnings), 1)
        self.assertIn("http://sso.example.com/RST2.srf", warnings[0])
        self.assertIn("unencrypted", warnings[0])
        self.assertNotIn("s3cret", "".join(formatEvent(e) for e in events))


class TapLimitTests(SynchronousTestCase):
    def test_limitOption(self) -> None:
        """
        C{twistd msnp --limit NAME=VALUE} changes one client limit and the
        client gets it; an unknown name, a non-number or a zero is a usage
        error.
        """
        from twisted.python import usage

        from msnp.tap import Options, makeClient

        def parse(*args: str) -> Options:
            options = Options(environ={"MSNP_PASSWORD": "secret"})
            options.parseOptions(["--account", "a@example.com", *args])
            return options

        options = parse("--limit", "openConversations=7", "--limit", "invitationWindow=30.5")
        self.assertEqual((options.limits.openConversations, options.limits.invitationWindow), (7, 30.5))
        self.assertEqual(makeClient(options, Clock()).limits, options.limits)
        self.assertEqual(parse().limits, DEFAULT_CLIENT_LIMITS)
        for bad in ("nope=1", "openConversations=x", "openConversations=0", "openConversations"):
            self.assertRaises(usage.UsageError, parse, "--limit", bad)
