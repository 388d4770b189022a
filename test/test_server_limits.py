"""
Tests for the local network's resource limits and privacy rules (issue 11,
server points 1-16): L{msnp.server.limits}, L{msnp.server.connection},
L{msnp.server.throttle}, L{msnp.server.httplimits}, L{msnp.server.logs}
and their use by the DS, NS, SB and HTTP servers.

Socket-level points run end to end over loopback against a real
L{LocalNetwork}; its connection timeouts run on a L{Clock}
(C{timeoutClock}), so no test waits for wall-clock time.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.server.accountmodel import ALLOW, BLOCK
from msnp.server.accounts import AccountStore
from msnp.server.connection import ServerConnection, describe
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits, summarise
from msnp.server.logs import BoundedLogService
from msnp.server.network import LocalNetwork
from msnp.server.notification import NotificationServer, Presence
from msnp.server.switchboard import SwitchboardDirectory
from msnp.server.throttle import SignInThrottle
from msnp.wire import Command

from test.support import CVR, GUID_A, GUID_B, LimitsTestCase, httpClient, tempDirectory




class PreLoginPayloadTests(LimitsTestCase):
    """
    Point 1: before sign-in a payload may not exceed C{preLoginPayload}.
    """

    async def test_largePayloadBeforeLoginCloses(self) -> None:
        """
        A payload announced over 4 KiB before login closes the NS and DS
        connections before a byte of it is buffered.
        """
        await self.start()
        for address in (self.network.notificationAddress, self.ds):
            raw = await self.connect(address)
            raw.send("VER 1 MSNP18 CVR0")
            await raw.expect("VER")
            raw.send(b"UUX 2 100000\r\n" + b"x" * 1000)
            await raw.lost
            self.assertTrue(raw.closed)

    async def test_smallPayloadBeforeLoginAndLargeAfter(self) -> None:
        """
        A payload under the cap before login is read (answered 302); after
        login a 20 KB UUX is accepted: the cap applies to login only.
        """
        await self.start()
        raw = await self.connect(self.network.notificationAddress)
        raw.send("VER 1 MSNP18 CVR0")
        await raw.expect("VER")
        raw.send(b"UUX 2 100\r\n" + b"x" * 100)
        self.assertEqual((await raw.expect("302")).trid, 2)
        ns = await self.signIn("alice@example.com")
        data = b"<Data><PSM>" + b"p" * 20000 + b"</PSM></Data>"
        ns.send(b"UUX 7 %d\r\n" % len(data) + data)
        self.assertEqual((await ns.expect("UUX")).trid, 7)


class UsedTicketTests(SynchronousTestCase):
    """
    Point 2: refused tickets are not remembered; used ones are, bounded.
    """

    def test_forgedTicketsCostNothing(self) -> None:
        """
        2,000 forged C{USR SSO S} leave the used-ticket memory empty.
        """
        presence = Presence(AccountStore())
        clock = Clock()
        for i in range(2_000):
            server = NotificationServer(None, presence, sendChallenge=False, clock=clock)
            server.makeConnection(StringTransport())
            server.dataReceived(
                f"VER 1 MSNP18 CVR0\r\nUSR 2 SSO I a{i}@example.com\r\nUSR 3 SSO S t=forged{i} x {GUID_A}\r\n".encode()
            )
            server.connectionLost(Failure(ConnectionError("closed")))
        self.assertEqual(len(presence._usedTickets), 0)

    def test_usedTicketsBoundedAndExpire(self) -> None:
        """
        Real tickets are remembered (a reuse is refused), at most
        C{usedTicketMemory} of them, and dropped once their grant expired.
        """
        presence = Presence(AccountStore(), replace(DEFAULT_LIMITS, usedTicketMemory=100))
        for i in range(1000):
            self.assertTrue(presence.consumeTicket(f"t{i}", expires=50.0, now=0.0))
        self.assertEqual(len(presence._usedTickets), 100)
        self.assertFalse(presence.consumeTicket("t999", expires=50.0, now=0.0))
        presence.consumeTicket("late", expires=200.0, now=100.0)
        self.assertEqual(list(presence._usedTickets), ["late"])


class WriteBufferTests(LimitsTestCase):
    """
    Point 3: a peer that never reads costs a bounded amount.
    """

    async def test_nonReadingClientIsPausedNotBuffered(self) -> None:
        """
        A client repeating C{USR SSO I} (each answered with 24x its size)
        without reading: the server stops reading it once the transport's
        buffer is full, so what it buffers stays under the transport
        buffer plus C{writeHighWater}; it is not closed for it.
        """
        await self.start()
        raw = await self.connect(self.network.notificationAddress)
        raw.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # type: ignore[attr-defined]
        raw.transport.pauseProducing()  # type: ignore[attr-defined]
        (server,) = self.serverConnections(0)
        paused: Deferred[None] = Deferred()
        original = server.pauseProducing

        def pauseProducing() -> None:
            original()
            if not paused.called:
                paused.callback(None)

        server.pauseProducing = pauseProducing
        raw.send("VER 1 MSNP18 CVR0")
        raw.send(f"{CVR} alice@example.com")
        raw.send(b"USR 3 SSO I alice@example.com\r\n" * 20000)
        await paused
        real = server.transport.transport
        buffered = len(real.dataBuffer) + real._tempDataLen + sum(len(d) for d in real._tempDataBuffer)
        self.assertLessEqual(buffered, real.bufferSize + self.network.limits.writeHighWater)
        self.assertTrue(server.paused)
        self.assertFalse(raw.closed)

    def test_pushesPastHighWaterClose(self) -> None:
        """
        Pushed lines (other users' presence) to a paused connection are
        counted; past C{writeHighWater} the connection is aborted and
        nothing more is written.
        """
        transport = StringTransport()
        connection = ServerConnection(clock=Clock(), limits=replace(DEFAULT_LIMITS, writeHighWater=10_000))
        connection.makeConnection(transport)
        connection.pauseProducing()
        line = Command("NLN", None, ("NLN", "1:x@example.com", "X", "0:0", "0"))
        for _ in range(2000):
            connection.sendRaw(line)
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(len(transport.value()), 10_000)


class TimeoutTests(LimitsTestCase):
    """
    Point 4: login and idle timeouts on DS, NS and SB; connections per
    address.
    """

    async def test_loginTimeoutEveryServer(self) -> None:
        """
        Idle connections to DS, NS and SB, and one trickling a byte per
        second, are closed at C{loginTimeout}, not before.
        """
        await self.start(loginTimeout=60.0)
        raws = [await self.connect(a) for a in (self.ds, self.network.notificationAddress,
                                                  self.network.switchboardAddress)]
        slow = await self.connect(self.network.notificationAddress)
        for _ in range(59):
            slow.send(b"V")
            self.timers.advance(1)
        self.assertFalse(any(r.closed for r in raws + [slow]))
        self.timers.advance(1)
        for raw in raws + [slow]:
            await raw.lost

    async def test_idleTimeoutCountsKeepAlive(self) -> None:
        """
        After sign-in, C{PNG} keeps the NS connection open; silence for
        C{idleTimeout} closes it. A joined switchboard connection closes
        after C{switchboardIdleTimeout}.
        """
        await self.start(idleTimeout=100.0, switchboardIdleTimeout=200.0, loginTimeout=1000.0)
        ns = await self.signIn("alice@example.com")
        sb = await self.switchboard(ns, "alice@example.com")
        for _ in range(3):
            self.timers.advance(99)
            await self.ping(ns)
        self.assertFalse(ns.closed)
        self.timers.advance(100)
        await ns.lost
        # The SB connection went with the NS place (point 13)...
        await sb.lost

    async def test_switchboardIdle(self) -> None:
        """
        A joined switchboard connection alone is closed after
        C{switchboardIdleTimeout} of silence.
        """
        await self.start(idleTimeout=10_000.0, switchboardIdleTimeout=200.0, loginTimeout=10_000.0)
        ns = await self.signIn("alice@example.com")
        sb = await self.switchboard(ns, "alice@example.com")
        self.timers.advance(199)
        self.assertFalse(sb.closed)
        self.timers.advance(1)
        await sb.lost
        self.assertFalse(ns.closed)

    async def test_connectionsPerAddress(self) -> None:
        """
        Past C{connectionsPerAddress} open connections from one address,
        over all servers together, a new one (to any server) is closed at
        once; closing one makes room again.
        """
        await self.start(connectionsPerAddress=5)
        raws = [await self.connect(self.ds) for _ in range(3)]
        raws += [await self.connect(self.network.notificationAddress) for _ in range(2)]
        for raw in raws:
            raw.send("VER 1 MSNP18 CVR0")
            await raw.expect("VER")
        for address in (self.network.switchboardAddress, self.ds):
            extra = await self.connect(address)
            await extra.lost
        self.assertEqual(self.network.addresses.openFrom("127.0.0.1"), 5)
        raws[0].transport.loseConnection()
        await raws[0].lost
        again = await self.connect(self.ds)
        again.send("VER 1 MSNP18 CVR0")
        await again.expect("VER")


class LogTests(LimitsTestCase):
    """
    Point 5: logs summarise peer bytes; the log file's retention is bounded.
    """

    async def test_ignoredLinesSummarisedAndCounted(self) -> None:
        """
        200 ignored 10,000-byte lines before login produce at most
        C{ignoredLinesLogged} + 1 log events, none longer than a few
        hundred characters.
        """
        await self.start()
        events: list[str] = []

        def observer(event: dict[str, Any]) -> None:
            from twisted.logger import formatEvent

            events.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        raw = await self.connect(self.network.notificationAddress)
        raw.send("VER 1 MSNP18 CVR0")
        await raw.expect("VER")
        for _ in range(200):
            raw.send("XYZ " + "a" * 10_000)
        raw.send("SYN 99 sync")
        await raw.expect("302")
        mine = [e for e in events if "XYZ" in e or "ignored" in e.lower()]
        self.assertLessEqual(len(mine), self.network.limits.ignoredLinesLogged + 1)
        self.assertLess(max(len(e) for e in mine), 400)
        self.assertLess(sum(len(e) for e in events), 20_000)

    def test_summarise(self) -> None:
        """
        Long values are cut and their length given; control characters
        are escaped.
        """
        self.assertEqual(summarise("a" * 100, 5), "aaaaa...(+95 chars)")
        self.assertEqual(summarise("a\r\nb", 10), "a\\r\\nb")
        line = describe(Command("USR", 1, ("SSO", "I", "x" * 300_000)))
        self.assertLess(len(line), 200)

    def test_logFileRetentionBounded(self) -> None:
        """
        Logging 500 KB through L{BoundedLogService} with a 20 KB rotation
        and 3 kept files leaves at most 4 files of about 20 KB.
        """
        directory = tempDirectory(self)
        path = os.path.join(directory, "server.log")
        service = BoundedLogService(path, replace(DEFAULT_LIMITS, logRotateLength=20_000, logMaxRotatedFiles=3))
        service.startService()
        try:
            from twisted.logger import Logger

            logger = Logger()
            for i in range(5_000):
                logger.info("line {i} {filler}", i=i, filler="f" * 60)
        finally:
            service.stopService()
        files = os.listdir(directory)
        self.assertLessEqual(len(files), 4)
        total = sum(os.path.getsize(os.path.join(directory, f)) for f in files)
        self.assertLess(total, 4 * 21_000)


class HTTPTests(LimitsTestCase):
    """
    Points 6 and 7: request bodies capped while arriving; HEAD on ABCH.
    """

    async def _raw(self, request: bytes) -> bytes:
        host, port = self.endpoints.sso.split("/")[2].split(":")
        received: list[bytes] = []
        done: Deferred[None] = Deferred()

        class Collect(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                done.callback(None)

        proto = Collect()
        await connectProtocol(TCP4ClientEndpoint(reactor, host, int(port)), proto)
        assert proto.transport is not None
        proto.transport.write(request)
        await done
        return b"".join(received)

    async def test_announcedBodyRefusedBeforeArriving(self) -> None:
        """
        A C{Content-Length} of 600 MiB is answered C{413} and the
        connection closed without a byte of the body being sent.
        """
        await self.start()
        answer = await self._raw(
            b"POST /abservice/abservice.asmx HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 629145600\r\n\r\n"
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"))

    async def test_chunkedBodyRefusedPastLimit(self) -> None:
        """
        A chunked body is refused as soon as it passes C{requestBody}.
        """
        await self.start(requestBody=10_000)
        chunk = b"1000\r\n" + b"x" * 0x1000 + b"\r\n"
        answer = await self._raw(
            b"POST /RST2.srf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 4
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"))

    async def test_headOnABCH(self) -> None:
        """
        C{HEAD} on both ABCH paths answers 405 like C{GET}, with no error
        logged.
        """
        await self.start()
        errors: list[Any] = []

        def observer(event: dict[str, Any]) -> None:
            if event.get("log_failure") is not None:
                errors.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for url in (self.endpoints.addressBook, self.endpoints.sharing):
            response = await httpClient().request("HEAD", url)
            self.assertEqual(response.code, 405)
        self.assertEqual(errors, [])


class TokenTests(LimitsTestCase):
    """
    Point 8: O(1) XFR tokens, capped per account.
    """

    def test_capPerAccountRetiresOldest(self) -> None:
        """
        Past C{xfrTokensPerAccount}, a new token retires the oldest of the
        same account only; expired tokens leave the table.
        """
        clock = Clock()

        class Net:
            store = AccountStore()
            switchboards = None

            def __init__(self) -> None:
                self.clock = clock

        directory = SwitchboardDirectory(Net(), limits=replace(DEFAULT_LIMITS, xfrTokensPerAccount=4))  # type: ignore[arg-type]
        other = directory.issueXfrToken("bob@example.com", "")
        tokens = [directory.issueXfrToken("alice@example.com", "") for _ in range(10_000)]
        self.assertEqual(directory.outstandingXfrTokens("alice@example.com"), 4)
        self.assertEqual(len(directory._xfr), 5)
        self.assertFalse(directory.redeemXfrToken(tokens[0], "alice@example.com", ""))
        self.assertTrue(directory.redeemXfrToken(tokens[-1], "alice@example.com", ""))
        self.assertTrue(directory.redeemXfrToken(other, "bob@example.com", ""))
        clock.advance(121)
        directory.issueXfrToken("carol@example.com", "")
        self.assertEqual(len(directory._xfr), 1)

    async def test_xfrFloodDoesNotHurtOthers(self) -> None:
        """
        Over sockets: 500 C{XFR SB} from alice leave her 32 tokens; bob's
        switchboard login still works.
        """
        await self.start()
        alice = await self.signIn("alice@example.com")
        alice.send(b"".join(b"XFR %d SB\r\n" % i for i in range(100, 600)))
        await self.ping(alice)
        assert self.network.switchboards is not None
        self.assertEqual(self.network.switchboards.outstandingXfrTokens("alice@example.com"), 32)
        bob = await self.signIn("bob@example.com", GUID_B)
        await self.switchboard(bob, "bob@example.com", GUID_B)


class ABCHTests(LimitsTestCase):
    """
    Point 9: caps on memberships, contacts, groups, annotations; no scan
    per id.
    """

    def envelope(self, ticket: str, body: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            '<soap:Header><ABAuthHeader xmlns="http://www.msn.com/webservices/AddressBook">'
            f"<TicketToken>{ticket}</TicketToken></ABAuthHeader></soap:Header>"
            f'<soap:Body>{body}</soap:Body></soap:Envelope>'
        ).encode()

    async def call(self, url: str, action: str, body: str) -> tuple[int, bytes]:
        account = self.network.store.get("alice@example.com")
        assert account is not None
        grant = self.network.store.issueTickets(account)
        from xml.sax.saxutils import escape

        response = await httpClient().post(
            url, self.envelope(escape(grant.contactsTicket), body),
            headers={"SOAPAction": f"http://www.msn.com/webservices/AddressBook/{action}"},
        )
        return response.code, await response.content()

    def members(self, role: str, addresses: list[str], ids: bool = False) -> str:
        inner = "".join(
            f"<Member><MembershipId>{a}</MembershipId></Member>" if ids else
            f"<Member><Type>Passport</Type><PassportName>{a}</PassportName></Member>"
            for a in addresses
        )
        return f"<memberships><Membership><MemberRole>{role}</MemberRole><Members>{inner}</Members></Membership></memberships>"

    async def test_membershipCapAndDeleteById(self) -> None:
        """
        AddMember past C{membershipsPerAccount} is refused whole with
        C{QuotaLimitReached}; DeleteMember of many ids at once works.
        """
        await self.start(membershipsPerAccount=50)
        url = self.endpoints.sharing
        code, body = await self.call(url, "AddMember", "<AddMember>" + self.members(
            BLOCK, [f"u{i}@example.com" for i in range(51)]) + "</AddMember>")
        self.assertEqual(code, 500)
        self.assertIn(b"QuotaLimitReached", body)
        alice = self.network.store.get("alice@example.com")
        assert alice is not None
        self.assertEqual(len(alice.memberships[BLOCK]), 0)
        code, _ = await self.call(url, "AddMember", "<AddMember>" + self.members(
            BLOCK, [f"u{i}@example.com" for i in range(50)]) + "</AddMember>")
        self.assertEqual(code, 200)
        ids = [str(m.membershipId) for m in alice.memberships[BLOCK].values()]
        code, _ = await self.call(url, "DeleteMember", "<DeleteMember>" + self.members(BLOCK, ids, ids=True)
                                  + "</DeleteMember>")
        self.assertEqual(code, 200)
        self.assertEqual(len(alice.memberships[BLOCK]), 0)

    async def test_groupAndAnnotationCaps(self) -> None:
        """
        ABGroupAdd past C{groupsPerAccount} and annotations past
        C{annotationsPerContact} are refused with C{QuotaLimitReached}.
        """
        await self.start(groupsPerAccount=3, annotationsPerContact=2)
        url = self.endpoints.addressBook
        codes = []
        for i in range(4):
            code, body = await self.call(url, "ABGroupAdd", "<ABGroupAdd><groupInfo><GroupInfo>"
                                         f"<name>g{i}</name></GroupInfo></groupInfo></ABGroupAdd>")
            codes.append(code)
        self.assertEqual(codes, [200, 200, 200, 500])
        self.assertIn(b"QuotaLimitReached", body)
        annotations = "".join(f"<Annotation><Name>A.{i}</Name><Value>v</Value></Annotation>" for i in range(3))
        code, body = await self.call(url, "ABContactUpdate", "<ABContactUpdate><contacts><Contact><contactInfo>"
                                     f"<contactType>Me</contactType><annotations>{annotations}</annotations>"
                                     "</contactInfo></Contact></contacts></ABContactUpdate>")
        self.assertEqual(code, 500)
        self.assertIn(b"QuotaLimitReached", body)


class PrivacyTests(LimitsTestCase):
    """
    Points 10 and 12-16: invitations, privacy at the moment of use,
    sign-out, and what ACK means.
    """

    async def test_secondCalDoesNotRingAgain(self) -> None:
        """
        Point 10: two C{CAL}s to bob before he joins are both answered
        C{RINGING} with the same session, and bob gets exactly one C{RNG}.
        """
        await self.start()
        alice = await self.signIn("alice@example.com")
        bob = await self.signIn("bob@example.com", GUID_B)
        sb = await self.switchboard(alice, "alice@example.com")
        sb.send("CAL 2 bob@example.com")
        sb.send("CAL 3 bob@example.com")
        first, second = await sb.expect("CAL"), await sb.expect("CAL")
        self.assertEqual(first.arguments, second.arguments)
        await self.ping(bob)
        self.assertEqual(len(bob.named("RNG")), 1)

    async def test_invitationCap(self) -> None:
        """
        Point 8: past C{invitationsPerAccount} pending invitations a CAL
        gets C{800}.
        """
        await self.start(invitationsPerAccount=1)
        alice = await self.signIn("alice@example.com")
        await self.signIn("bob@example.com", GUID_B)
        await self.signIn("carol@example.com", "{11111111-2222-3333-4444-555555555555}")
        sb = await self.switchboard(alice, "alice@example.com")
        sb.send("CAL 2 bob@example.com")
        self.assertEqual((await sb.expect("CAL")).arguments[0], "RINGING")
        sb.send("CAL 3 carol@example.com")
        self.assertEqual((await sb.expect("800")).trid, 3)

    async def test_blockEvictsAndStopsMessages(self) -> None:
        """
        Point 12: once bob blocks alice, her messages reach him no more
        (checked per message), and applying the change closes her
        switchboard connection shared with him.
        """
        await self.start()
        alice = await self.signIn("alice@example.com")
        bob = await self.signIn("bob@example.com", GUID_B)
        sbA = await self.switchboard(alice, "alice@example.com")
        sbA.send("CAL 2 bob@example.com")
        await sbA.expect("CAL")
        sbB = await self.answer(bob, "bob@example.com")
        await sbA.expect("JOI")
        payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi"
        sbA.send(b"MSG 3 A %d\r\n" % len(payload) + payload)
        await sbA.expect("ACK")
        await sbB.expect("MSG")
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, BLOCK, "alice@example.com")
        sbA.send(b"MSG 4 A %d\r\n" % len(payload) + payload)
        self.assertEqual((await sbA.expect("NAK")).trid, 4)
        self.network.privacyChanged("bob@example.com")
        await sbA.lost
        self.assertEqual(len(sbB.named("MSG")), 0)

    async def test_signOutKillsSwitchboardsAndTokens(self) -> None:
        """
        Point 13: when alice's NS place signs out, her switchboard
        connection closes and a token she had not used is refused.
        """
        await self.start()
        alice = await self.signIn("alice@example.com")
        sb = await self.switchboard(alice, "alice@example.com")
        alice.send("XFR 20 SB")
        xfr = await alice.expect("XFR")
        alice.send("OUT")
        await alice.lost
        await sb.lost
        late = await self.connect(xfr.arguments[1])
        late.send(f"USR 1 alice@example.com;{GUID_A} {xfr.arguments[3]}")
        await late.expect("911")

    async def test_allowListOnlyAndHiddenLookOffline(self) -> None:
        """
        Points 14 and 15: a CAL to bob with C{BLP BL} (alice not allowed),
        to a blocked, a hidden and an offline account are all answered
        with the same bare C{217}, and nobody gets an C{RNG}.
        """
        await self.start()
        self.network.addAccount("dave@example.com", "pw", "Dave")
        self.network.addAccount("erin@example.com", "pw", "Erin")
        alice = await self.signIn("alice@example.com")
        bob = await self.signIn("bob@example.com", GUID_B)
        bob.send("BLP 7 BL")
        await bob.expect("BLP")
        carol = await self.signIn("carol@example.com", "{11111111-2222-3333-4444-555555555555}")
        carolAccount = self.network.store.get("carol@example.com")
        assert carolAccount is not None
        self.network.store.setRole(carolAccount, BLOCK, "alice@example.com")
        dave = await self.signIn("dave@example.com", "{22222222-2222-3333-4444-555555555555}", online=False)
        dave.send("CHG 5 HDN 2789003324:48 0")
        await dave.expect("CHG")
        sb = await self.switchboard(alice, "alice@example.com")
        answers = []
        for trid, target in enumerate(("bob", "carol", "dave", "erin"), start=10):
            sb.send(f"CAL {trid} {target}@example.com")
            answer = await sb.expect("217")
            answers.append((answer.arguments, answer.payload))
        self.assertEqual(set(answers), {((), None)})
        for ns in (bob, carol, dave):
            await self.ping(ns)
            self.assertEqual(ns.named("RNG"), [])
        # Allowed explicitly, bob can be reached.
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, ALLOW, "alice@example.com")
        sb.send("CAL 20 bob@example.com")
        self.assertEqual((await sb.expect("CAL")).arguments[0], "RINGING")

    async def test_uunNotDeliveredToBlocker(self) -> None:
        """
        Point 15: a C{UUN} to an account that blocked the sender is
        answered C{OK} and delivered to nobody.
        """
        await self.start()
        alice = await self.signIn("alice@example.com")
        bob = await self.signIn("bob@example.com", GUID_B)
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, BLOCK, "alice@example.com")
        alice.send(b"UUN 8 bob@example.com 1 2\r\nhi")
        self.assertEqual((await alice.expect("UUN")).arguments, ("OK",))
        await self.ping(bob)
        self.assertEqual(bob.named("UBN"), [])

    async def test_ackOnlyWhenWritten(self) -> None:
        """
        Point 16: against a member whose transport is paused with a full
        queue, C{MSG A} gets C{NAK}, never C{ACK}; while it reads, C{ACK}.
        """
        await self.start(switchboardQueue=2_000)
        alice = await self.signIn("alice@example.com")
        bob = await self.signIn("bob@example.com", GUID_B)
        sbA = await self.switchboard(alice, "alice@example.com")
        sbA.send("CAL 2 bob@example.com")
        await sbA.expect("CAL")
        await self.answer(bob, "bob@example.com")
        await sbA.expect("JOI")
        bobServer = [c for c in self.serverConnections(2) if c.account == "bob@example.com"][0]
        payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + b"x" * 1000
        sbA.send(b"MSG 3 A %d\r\n" % len(payload) + payload)
        await sbA.expect("ACK")
        # Bob's transport full: the server is told to pause.
        bobServer.pauseProducing()
        for trid in range(4, 8):
            sbA.send(b"MSG %d A %d\r\n" % (trid, len(payload)) + payload)
        sbA.send("CAL 50 bob@example.com")
        await sbA.expect("215")
        self.assertEqual((len(sbA.named("ACK")), len(sbA.named("NAK"))), (1, 3))
        self.assertLessEqual(bobServer.queuedBytes, 2_000)


class ThrottleTests(SynchronousTestCase):
    """
    Point 11: failed sign-ins slow the next attempts, never lock out.
    """

    def test_delayGrowsAndSuccessClears(self) -> None:
        """
        Five failures are free; then the delay doubles from 1 s to the
        30 s cap; a success clears the account (not the address).
        """
        clock = Clock()
        throttle = SignInThrottle(clock)
        keys = throttle.keys("alice@example.com", "10.0.0.1")
        delays = []
        for _ in range(12):
            delays.append(throttle.begin(keys))
            throttle.end(keys, succeeded=False)
        self.assertEqual(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30])
        throttle.begin(keys)
        throttle.end(keys, succeeded=True)
        self.assertEqual(throttle.failuresOf(keys[0]), 0)
        self.assertEqual(throttle.failuresOf(keys[1]), 12)
        clock.advance(DEFAULT_LIMITS.signInWindow + 1)
        self.assertEqual(throttle.begin(keys), 0)

    def test_parallelAttemptsCount(self) -> None:
        """
        Attempts still held back count for those arriving meanwhile.
        """
        throttle = SignInThrottle(Clock())
        keys = throttle.keys("a@example.com", "10.0.0.2")
        delays = [throttle.begin(keys) for _ in range(8)]
        self.assertEqual(delays, [0, 0, 0, 0, 0, 1, 2, 4])


class ThrottleEndToEndTests(LimitsTestCase):
    """
    Point 11 over the network's own HTTP: the sixth wrong password is
    answered only after the delay; the right one then still works.
    """

    async def test_sixthAttemptHeldBack(self) -> None:
        """
        Five wrong passwords are refused at once; the sixth answer waits
        for the throttle's clock (1 s); the right password afterwards
        (after the 2 s delay it earned) signs in.
        """
        await self.start()
        from msnp.sso import buildRST2Request

        def attempt(password: str) -> "Deferred[Any]":
            body = buildRST2Request("alice@example.com", password, "MBI_KEY_OLD", messageId="1",
                                    created="2026-01-01T00:00:00Z", expires="2026-01-01T00:05:00Z")
            d = httpClient().post(self.endpoints.sso, body if isinstance(body, bytes) else body.encode(),
                          headers={"Content-Type": "application/soap+xml; charset=utf-8"})
            return d.addCallback(treq.content)

        for _ in range(5):
            self.assertIn(b"FailedAuthentication", await attempt("wrong"))
        throttle = self.network.signInThrottle
        arrived: Deferred[float] = Deferred()
        original = throttle.begin

        def begin(keys: Any) -> float:
            delay = original(keys)
            # Fired on the next reactor turn: once the SSO resource has
            # scheduled the held answer.
            reactor.callLater(0, arrived.callback, delay)
            return delay

        throttle.begin = begin  # type: ignore[method-assign]
        held = attempt("wrong")
        self.assertEqual(await arrived, 1.0)
        throttle.begin = original  # type: ignore[method-assign]
        results: list[Any] = []

        def record(result: Any) -> Any:
            results.append(result)
            return result

        held.addBoth(record)
        await self.ping(await self.signIn("bob@example.com"))
        self.assertEqual(results, [])
        self.timers.advance(1)
        self.assertIn(b"FailedAuthentication", await held)
        arrived = Deferred()  # noqa: F841 (read by begin)
        throttle.begin = begin  # type: ignore[method-assign]
        good = attempt("pw")
        self.assertEqual(await arrived, 2.0)
        self.timers.advance(2)
        self.assertIn(b"BinarySecurityToken", await good)


class TapOptionTests(SynchronousTestCase):
    """
    The limits are configurable from C{twistd msnp-server}.
    """

    def test_limitOption(self) -> None:
        """
        C{--limit NAME=VALUE} (repeatable) changes those limits on the
        network made; the others keep their defaults.
        """
        from msnp.server.tap import Options, makeService

        options = Options()
        options.parseOptions(["--database", ":memory:", "--port", "0", "--limit", "idleTimeout=120", "--limit", "xfrTokensPerAccount=8"])
        service: Any = makeService(options)
        limits = service.network.limits
        self.assertEqual((limits.idleTimeout, limits.xfrTokensPerAccount), (120.0, 8))
        self.assertEqual(limits.loginTimeout, DEFAULT_LIMITS.loginTimeout)

    def test_badLimits(self) -> None:
        """
        An unknown name, a non-number or a non-positive value is a usage
        error naming the problem.
        """
        from twisted.python import usage

        from msnp.server.tap import Options

        for argument, fragment in (("nosuch=1", "NAME=VALUE"), ("idleTimeout=soon", "not a number"),
                                   ("idleTimeout=0", "must be positive")):
            error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--limit", argument])
            self.assertIn(fragment, str(error))

    def test_logFileOption(self) -> None:
        """
        C{--log-file} adds a L{BoundedLogService} next to the network.
        """
        from msnp.server.tap import Options, makeService

        options = Options()
        path = os.path.join(tempDirectory(self), "server.log")
        options.parseOptions(["--database", ":memory:", "--port", "0", "--log-file", path])
        top: Any = makeService(options)
        kinds = sorted(type(s).__name__ for s in top)
        self.assertEqual(kinds, ["BoundedLogService", "NetworkService"])

    def test_limitsValidated(self) -> None:
        """
        L{ServerLimits} refuses a non-positive value.
        """
        self.assertRaises(ValueError, ServerLimits, loginTimeout=0)


class RouterTests(SynchronousTestCase):
    """
    The NS and SB servers reach the network only through
    L{INetworkRouter}, which L{LocalNetwork} provides.
    """

    def test_localNetworkProvidesRouter(self) -> None:
        """
        L{LocalNetwork} declares and implements every method and attribute
        of L{INetworkRouter}.
        """
        from zope.interface.verify import verifyObject

        from msnp.server.router import INetworkRouter

        network = LocalNetwork(reactor=Clock(), clock=Clock())
        self.assertTrue(verifyObject(INetworkRouter, network))

    def test_referralBeforeStart(self) -> None:
        """
        Before the switchboard listens, C{referSwitchboard} gives L{None}
        (the NS answers C{XFR SB} with C{500}).
        """
        network = LocalNetwork(reactor=Clock(), clock=Clock())
        self.assertIsNone(network.referSwitchboard("alice@example.com", GUID_A))
