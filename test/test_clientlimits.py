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

from test_switchboard import REPLY, Harness, serverMSG

GUIDS = [f"{{{i:08X}-0000-4000-8000-000000000000}}" for i in range(40)]


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


class LimitedHarness(Harness):
    """
    The switchboard tests' harness with caps and a privacy rule.
    """

    def __init__(self, limits: ClientLimits, refuseConnections: bool = False) -> None:
        super().__init__()
        self.blocked: set[str] = set()
        self.refuseConnections = refuseConnections
        manager = self.manager
        manager.limits = limits
        manager.invitationRate = InvitationRate(limits, self.clock)
        manager.permits = lambda email: email not in self.blocked

    def connect(self, address: str, protocol: SwitchboardProtocol) -> "Deferred[Any]":
        if self.refuseConnections:
            self.connections.append((address, protocol, StringTransport()))
            return fail(ConnectionRefusedError())
        return super().connect(address, protocol)


class InvitationFloodTests(SynchronousTestCase):
    def test_sameInviterReused(self) -> None:
        """
        200 RNG from one inviter while the first is being answered: one
        connection, one conversation.
        """
        h = LimitedHarness(DEFAULT_CLIENT_LIMITS)
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
        h = LimitedHarness(ClientLimits(openConversations=10))
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
        h = LimitedHarness(ClientLimits(invitationsPerContact=3), refuseConnections=True)
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
        h = LimitedHarness(ClientLimits(keptConversations=5, openConversations=1000))
        for i in range(50):
            h.manager.invited(rng(f"u{i}@example.com", f"s{i}"))
            h.drop()
        self.assertLessEqual(len(h.manager.conversations), 5)

    def test_blockedInviterIgnored(self) -> None:
        """
        An RNG from an address our privacy does not permit is not answered.
        """
        h = LimitedHarness(DEFAULT_CLIENT_LIMITS)
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
        h = LimitedHarness(DEFAULT_CLIENT_LIMITS)
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
        h = LimitedHarness(DEFAULT_CLIENT_LIMITS)
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
        h.manager.ackTimeout = 7.0
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
        from test_sso import _answer, _Recorder, redirectFault

        for target in (
            "http://evil.example.com/RST2.srf",
            "http://127.0.0.1:8081/RST2.srf",
            "https://127.0.0.1/RST2.srf",
        ):
            resource = _Recorder(_answer(redirectFault(target)))
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
        from test_sso import H1_RESPONSE, _Recorder, redirectFault

        def answer(request: Any) -> bytes:
            return redirectFault("https://Login.Example.com:443/b") if request.path == b"/a" else H1_RESPONSE

        resource = _Recorder(answer)
        results, failures = self.request(resource, "https://login.example.com/a")
        self.assertEqual((len(results), failures), (1, []))
        self.assertEqual([r[0] for r in resource.requests], [b"/a", b"/b"])

    def test_httpRedirectNotReposted(self) -> None:
        """
        An HTTP 307 to another origin is not followed with the body: one
        POST, then a L{ServiceError}.
        """
        from msnp.errors import ServiceError
        from test_sso import _Recorder

        def answer(request: Any) -> bytes:
            request.setResponseCode(307)
            request.setHeader(b"location", b"http://evil.example.com/RST2.srf")
            return b""

        resource = _Recorder(answer)
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
        from test_sso import H1_RESPONSE, _answer, _Recorder

        events: list[Any] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.request(_Recorder(_answer(H1_RESPONSE)), "http://127.0.0.1/RST2.srf")
        self.request(_Recorder(_answer(H1_RESPONSE)), "http://sso.example.com/RST2.srf")
        warnings = [formatEvent(e) for e in events if e.get("log_level") is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("http://sso.example.com/RST2.srf", warnings[0])
        self.assertIn("unencrypted", warnings[0])
        self.assertNotIn("s3cret", "".join(formatEvent(e) for e in events))
