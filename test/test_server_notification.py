"""
Tests for the local network's dispatch and notification servers and for
L{LocalNetwork}, driven over real loopback sockets by a tiny client built on
L{MSNPProtocol}, and over L{StringTransport} for unit checks.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from msnp.challenge import computeChallengeResponse
from msnp.protocol import MSNPProtocol
from msnp.server import LocalNetwork
from msnp.server.accountmodel import ALLOW, BLOCK
from msnp.server.accounts import AccountStore
from msnp.server.notification import (
    POLICY,
    WLM85_PRODUCT_ID,
    WLM85_PRODUCT_KEY,
    NotificationServer,
    Presence,
    isGuid,
    profileMessage,
    splitMemberId,
)
from msnp.mbi import mbiResponse
from msnp.sso import SSOClient
from msnp.wire import Command, Direction, parseCommand

from test.support import asyncTest

GUID_A = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
GUID_B = "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"
GUID_C = "{11111111-2222-3333-4444-555555555555}"
VER_LINE = ("MSNP18", "MSNP17", "MSNP16", "MSNP15", "CVR0")
CVR_LINE = ("0x0409", "winnt", "6.1.0", "i386", "MSNMSGR", "14.0.8089.0726", "msmsgs")


class Client(MSNPProtocol):
    """
    A bare MSNP client for tests: every received command is queued and
    taken in order with L{next}.
    """

    receiving = Direction.FROM_SERVER

    def __init__(self) -> None:
        super().__init__(requestTimeout=None)
        self.queue: list[Command] = []
        self.waiters: list[Deferred[Command]] = []
        self.lost: Deferred[None] = Deferred()
        self.isClosed = False
        self.trid = 0

    def commandReceived(self, command: Command) -> None:
        if self.waiters:
            self.waiters.pop(0).callback(command)
        else:
            self.queue.append(command)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        MSNPProtocol.connectionLost(self, reason)
        self.isClosed = True
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w.errback(Failure(ConnectionError("closed")))
        self.lost.callback(None)

    def next(self) -> "Deferred[Command]":
        if self.queue:
            return succeed(self.queue.pop(0))
        d: Deferred[Command] = Deferred()
        self.waiters.append(d)
        return d

    def send(self, name: str, *args: str, payload: Optional[bytes] = None) -> int:
        self.trid += 1
        self.sendRaw(Command(name, self.trid, tuple(args), payload))
        return self.trid

    def sendBare(self, name: str, *args: str) -> None:
        self.sendRaw(Command(name, None, tuple(args)))

    async def expect(self, name: str, trid: Optional[int] = None) -> Command:
        command = await self.next()
        assert command.name == name, f"expected {name}, got {command.describe()}"
        if trid is not None:
            assert command.trid == trid, f"expected TrID {trid}, got {command.describe()}"
        return command

    async def drain(self, name: str) -> Command:
        """
        Skip commands until one called C{name} arrives.
        """
        while True:
            command = await self.next()
            if command.name == name:
                return command

    def close(self) -> "Deferred[None]":
        if not self.isClosed and self.transport is not None:
            self.transport.loseConnection()
        return self.lost


class NetworkTestCase(TestCase):
    """
    Helpers: a started network, connected clients, logins.
    """

    timeout = 5

    async def startNetwork(self, **kwargs: Any) -> LocalNetwork:
        self.network = LocalNetwork(reactor=reactor, **kwargs)
        self.addCleanup(self._stopAll)
        self.clients: list[Client] = []
        self.endpoints = await self.network.start()
        return self.network

    async def _stopAll(self) -> None:
        await self.network.stop()
        for client in self.clients:
            await client.close()

    async def connect(self, address: Optional[str] = None) -> Client:
        if address is None:
            address = self.endpoints.dispatch.split(":", 1)[1]
        host, port = address.rsplit(":", 1)
        client = Client()
        await connectProtocol(TCP4ClientEndpoint(reactor, host, int(port)), client)
        self.clients.append(client)
        return client

    async def preamble(self, client: Client, email: str, version: str = "MSNP18") -> str:
        """
        VER, CVR, USR SSO I on the NS; returns the nonce.
        """
        trid = client.send("VER", version, "CVR0")
        self.assertEqual((await client.expect("VER", trid)).arguments, (version,))
        trid = client.send("CVR", *CVR_LINE, email)
        await client.expect("CVR", trid)
        trid = client.send("USR", "SSO", "I", email)
        usr = await client.expect("USR", trid)
        self.assertEqual(usr.arguments[:3], ("SSO", "S", "MBI_KEY_OLD"))
        gcf = await client.expect("GCF", 0)
        self.assertEqual(gcf.payload, POLICY)
        return usr.arguments[3]

    async def login(
        self,
        email: str,
        guid: Optional[str] = GUID_A,
        answerChallenge: bool = True,
        version: str = "MSNP18",
    ) -> Client:
        """
        Sign in on the NS with a ticket taken straight from the store, up to
        and including the challenge; returns the connected client.
        """
        client = await self.connect(self.network.notificationAddress)
        nonce = await self.preamble(client, email, version)
        account = self.network.store.get(email)
        assert account is not None
        grant = self.network.store.issueTickets(account)
        args = ["SSO", "S", grant.clearTicket, mbiResponse(grant.binarySecret, nonce)]
        if guid is not None:
            args.append(guid)
        trid = client.send("USR", *args)
        ok = await client.expect("USR", trid)
        self.assertEqual(ok.arguments, ("OK", account.email, "1", "0"))
        await client.expect("SBS", 0)
        await client.expect("MSG")
        if version != "MSNP15":
            await client.expect("UBX")
        if self.network.sendChallenge:
            chl = await client.expect("CHL", 0)
            if answerChallenge:
                answer = computeChallengeResponse(chl.arguments[0])
                trid = client.send("QRY", "PROD0120PW!CCV9@", payload=answer.encode("ascii"))
                await client.expect("QRY", trid)
        return client

    async def goOnline(self, client: Client, status: str = "NLN", caps: str = "2789003324:48") -> list[Command]:
        """
        Send CHG, check the echo, and return everything the server sent
        right after it (the presence burst).
        """
        trid = client.send("CHG", status, caps, "0")
        echo = await client.expect("CHG", trid)
        self.assertEqual(echo.arguments, (status, caps, "0"))
        burst = await self.sync(client)
        # The mail data after a first CHG (tested on its own in
        # test_mailDataAfterFirstCHG) is not part of the presence burst.
        return [c for c in burst if not (c.name == "MSG" and c.arguments == ("Hotmail", "Hotmail"))]

    async def sync(self, client: Client) -> list[Command]:
        """
        Send PNG and return what arrived before its QNG: the server handles
        commands in order, so this is everything it had to say until now.
        """
        client.sendBare("PNG")
        seen: list[Command] = []
        while True:
            command = await client.next()
            if command.name == "QNG":
                return seen
            seen.append(command)


class LoginTests(NetworkTestCase):
    """
    The login sequence of reference sections 2 and 8.2, and how strictly it
    is checked.
    """

    @asyncTest
    async def test_fullTranscript(self) -> None:
        """
        DS redirect, NS preamble, SSO over the network's own HTTP server, USR
        OK and the messages that follow it have the shape of the 8.2
        transcript, and a right QRY is acknowledged with C{QRY trid}.
        """
        network = await self.startNetwork()
        network.addAccount("alice@example.com", "s3cret!", "Alice")

        ds = await self.connect()
        trid = ds.send("VER", *VER_LINE)
        self.assertEqual((await ds.expect("VER", trid)).arguments, ("MSNP18",))
        trid = ds.send("CVR", *CVR_LINE, "alice@example.com")
        cvr = await ds.expect("CVR", trid)
        self.assertEqual(len(cvr.arguments), 5)
        trid = ds.send("USR", "SSO", "I", "alice@example.com")
        xfr = await ds.expect("XFR", trid)
        self.assertEqual(xfr.arguments, ("NS", network.notificationAddress, "U", "D"))
        self.assertNotEqual(network.notificationAddress, self.endpoints.dispatch.split(":", 1)[1])
        await ds.close()

        ns = await self.connect(xfr.arguments[1])
        nonce = await self.preamble(ns, "alice@example.com")
        self.assertEqual(len(nonce), 64)

        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        sso = SSOClient(HTTPClient(Agent(reactor, pool=pool)), self.endpoints.sso, reactor)
        tokens = await sso.requestTokens("alice@example.com", "s3cret!", "MBI_KEY_OLD")

        response = mbiResponse(tokens.messengerSecret, nonce)
        trid = ns.send("USR", "SSO", "S", tokens.messengerTicket, response, GUID_A)
        ok = await ns.expect("USR", trid)
        self.assertEqual(ok.arguments, ("OK", "alice@example.com", "1", "0"))
        sbs = await ns.expect("SBS", 0)
        self.assertEqual(sbs.arguments, ("null",))
        profile = await ns.expect("MSG")
        self.assertEqual(profile.arguments, ("Hotmail", "Hotmail"))
        assert profile.payload is not None
        headers = dict(
            line.split(": ", 1) for line in profile.payload.decode("utf-8").split("\r\n") if ": " in line
        )
        self.assertEqual(headers["Content-Type"], "text/x-msmsgsprofile; charset=UTF-8")
        self.assertEqual(headers["preferredEmail"], "alice@example.com")
        account = network.store.get("alice@example.com")
        assert account is not None
        high, low = splitMemberId(account.puid)
        self.assertEqual((headers["MemberIdHigh"], headers["MemberIdLow"]), (str(high), str(low)))
        self.assertEqual(headers["MPOPEnabled"], "1")
        self.assertNotIn(tokens.messengerTicket.split("&")[0][2:], profile.payload.decode())
        self.assertTrue(profile.payload.endswith(b"\r\n\r\n"))
        ubx = await ns.expect("UBX")
        self.assertEqual(ubx.arguments, ("1:alice@example.com",))
        assert ubx.payload is not None
        self.assertIn(f'<EndpointData id="{GUID_A}">'.encode(), ubx.payload)
        self.assertIn(f'<PrivateEndpointData id="{GUID_A}">'.encode(), ubx.payload)
        chl = await ns.expect("CHL", 0)
        self.assertTrue(re.fullmatch(r"[1-9]\d{19}", chl.arguments[0]))
        trid = ns.send("QRY", "PROD0120PW!CCV9@", payload=computeChallengeResponse(chl.arguments[0]).encode())
        await ns.expect("QRY", trid)
        self.assertEqual([s.machineGuid for s in network.onlineSessions("alice@example.com")], [GUID_A])

    @asyncTest
    async def test_noRedirect(self) -> None:
        """
        With C{redirect=False} the first server is the NS: it answers
        C{USR SSO I} with the SSO challenge, and a login completes on it.
        """
        network = await self.startNetwork(redirect=False, sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        self.assertEqual(self.endpoints.dispatch, f"tcp:{network.notificationAddress}")
        client = await self.login("alice@example.com")
        self.assertEqual(len(network.onlineSessions("alice@example.com")), 1)
        await client.close()

    async def _failedLogin(self, code: str, **options: Any) -> None:
        network = await self.startNetwork(sendChallenge=False)
        account = network.addAccount("alice@example.com", "pw")
        network.addAccount("bob@example.com", "pw")
        client = await self.connect(network.notificationAddress)
        nonce = await self.preamble(client, "alice@example.com")
        grant = network.store.issueTickets(account)
        ticket = options.get("ticket", grant.clearTicket)
        secret = options.get("secret", grant.binarySecret)
        args = ["SSO", "S", ticket, mbiResponse(secret, nonce)]
        if options.get("guid", GUID_A) is not None:
            args.append(options.get("guid", GUID_A))
        trid = client.send("USR", *args)
        error = await client.expect(code, trid)
        self.assertIsNone(error.payload)
        await client.lost
        self.assertEqual(network.onlineSessions("alice@example.com"), [])

    @asyncTest
    async def test_wrongMBI(self) -> None:
        """
        An MBI response computed with another secret gets C{911} and the
        connection is closed.
        """
        await self._failedLogin("911", secret="AAECAwQFBgcICQoLDA0ODxAREhMUFRYX")

    @asyncTest
    async def test_foreignTicket(self) -> None:
        """
        A ticket issued to another account than the one of C{USR SSO I} is
        refused with C{911}.
        """
        await self.startNetwork(sendChallenge=False)
        bob = self.network.addAccount("bob@example.com", "pw")
        self.network.addAccount("alice@example.com", "pw")
        grant = self.network.store.issueTickets(bob)
        client = await self.connect(self.network.notificationAddress)
        nonce = await self.preamble(client, "alice@example.com")
        trid = client.send("USR", "SSO", "S", grant.clearTicket, mbiResponse(grant.binarySecret, nonce), GUID_A)
        await client.expect("911", trid)
        await client.lost

    @asyncTest
    async def test_unknownTicket(self) -> None:
        """
        A ticket the STS never issued is refused with C{911}.
        """
        await self._failedLogin("911", ticket="t=forged&p=forged")

    @asyncTest
    async def test_noGuid(self) -> None:
        """
        An MSNP18 C{USR SSO S} without the machine GUID is refused with
        C{911} (the independent server stayed silent instead).
        """
        await self._failedLogin("911", guid=None)

    @asyncTest
    async def test_malformedGuid(self) -> None:
        """
        A last token that is not GUID-shaped is refused with C{911}.
        """
        await self._failedLogin("911", guid="{not-a-guid}")

    @asyncTest
    async def test_reusedTicket(self) -> None:
        """
        Tickets are single-use: presenting the same ticket on a second
        connection gets C{911} even with a right MBI response.
        """
        network = await self.startNetwork(sendChallenge=False)
        account = network.addAccount("alice@example.com", "pw")
        grant = network.store.issueTickets(account)
        first = await self.connect(network.notificationAddress)
        nonce = await self.preamble(first, "alice@example.com")
        trid = first.send("USR", "SSO", "S", grant.clearTicket, mbiResponse(grant.binarySecret, nonce), GUID_A)
        await first.expect("USR", trid)
        second = await self.connect(network.notificationAddress)
        nonce = await self.preamble(second, "alice@example.com")
        trid = second.send("USR", "SSO", "S", grant.clearTicket, mbiResponse(grant.binarySecret, nonce), GUID_B)
        await second.expect("911", trid)
        await second.lost

    @asyncTest
    async def test_wrongQRY(self) -> None:
        """
        A wrong challenge answer gets C{540} and the connection is closed.
        """
        network = await self.startNetwork()
        network.addAccount("alice@example.com", "pw")
        client = await self.login("alice@example.com", answerChallenge=False)
        trid = client.send("QRY", "PROD0120PW!CCV9@", payload=b"0" * 32)
        await client.expect("540", trid)
        await client.lost
        self.assertEqual(network.onlineSessions("alice@example.com"), [])

    @asyncTest
    async def test_wlm85ProductAccepted(self) -> None:
        """
        The WLM 8.5 product id/key pair (used by pidgin) is accepted too.
        """
        network = await self.startNetwork()
        network.addAccount("alice@example.com", "pw")
        client = await self.login("alice@example.com", answerChallenge=False)
        challenge = network.onlineSessions("alice@example.com")[0]._challenge
        assert challenge is not None
        answer = computeChallengeResponse(challenge, WLM85_PRODUCT_ID, WLM85_PRODUCT_KEY)
        trid = client.send("QRY", WLM85_PRODUCT_ID, payload=answer.encode())
        await client.expect("QRY", trid)

    @asyncTest
    async def test_noCommonVersion(self) -> None:
        """
        A C{VER} offering no supported version gets C{VER trid 0} and the
        connection is closed, on the DS and on the NS.
        """
        network = await self.startNetwork()
        for address in (self.endpoints.dispatch.split(":", 1)[1], network.notificationAddress):
            client = await self.connect(address)
            trid = client.send("VER", "MSNP21", "CVR0")
            self.assertEqual((await client.expect("VER", trid)).arguments, ("0",))
            await client.lost

    @asyncTest
    async def test_verWithoutCVR0(self) -> None:
        """
        A C{VER} without the C{CVR0} token is refused like an unsupported one.
        """
        await self.startNetwork()
        client = await self.connect()
        trid = client.send("VER", "MSNP18")
        self.assertEqual((await client.expect("VER", trid)).arguments, ("0",))
        await client.lost

    @asyncTest
    async def test_commandBeforeVER(self) -> None:
        """
        Anything before C{VER} closes the connection without a reply.
        """
        await self.startNetwork()
        client = await self.connect()
        client.send("USR", "SSO", "I", "alice@example.com")
        await client.lost
        self.assertEqual(client.queue, [])

    @asyncTest
    async def test_dispatchRefusesOtherCommands(self) -> None:
        """
        The DS closes the connection on anything but VER/CVR/USR SSO I.
        """
        await self.startNetwork()
        client = await self.connect()
        trid = client.send("VER", *VER_LINE)
        await client.expect("VER", trid)
        client.send("CHG", "NLN", "0:0", "0")
        await client.lost

    @asyncTest
    async def test_commandsBeforeLoginGet302(self) -> None:
        """
        Session commands before C{USR OK} are answered with C{302}.
        """
        network = await self.startNetwork()
        client = await self.connect(network.notificationAddress)
        trid = client.send("VER", *VER_LINE)
        await client.expect("VER", trid)
        trid = client.send("CHG", "NLN", "0:0", "0")
        await client.expect("302", trid)
        trid = client.send("ADL", payload=b'<ml l="1"></ml>')
        await client.expect("302", trid)

    @asyncTest
    async def test_sameGuidSignsOlderOut(self) -> None:
        """
        A second login with the same machine GUID (in another letter case)
        signs the first out with C{OUT OTH}.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        first = await self.login("alice@example.com", guid=GUID_A)
        await self.login("alice@example.com", guid=GUID_A.lower())
        out = await first.drain("OUT")
        self.assertEqual(out.arguments, ("OTH",))
        await first.lost
        self.assertEqual(len(network.onlineSessions("alice@example.com")), 1)

    @asyncTest
    async def test_differentGuidKeepsBoth(self) -> None:
        """
        A second login with another GUID keeps both (MPOP): the first place
        gets a self-UBX listing both endpoints with their private data.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        first = await self.login("alice@example.com", guid=GUID_A)
        trid = first.send(
            "UUX",
            payload=b"<PrivateEndpointData><EpName>ALICE-PC</EpName><Idle>false</Idle>"
            b"<ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>",
        )
        await first.expect("UUX", trid)
        await first.expect("UBX")
        second = await self.login("alice@example.com", guid=GUID_C)
        ubx = await first.expect("UBX")
        assert ubx.payload is not None
        for guid in (GUID_A, GUID_C):
            self.assertIn(f'<EndpointData id="{guid}">'.encode(), ubx.payload)
            self.assertIn(f'<PrivateEndpointData id="{guid}">'.encode(), ubx.payload)
        self.assertIn(b"<EpName>ALICE-PC</EpName>", ubx.payload)
        self.assertEqual(len(network.onlineSessions("alice@example.com")), 2)
        await second.close()
        ubx = await first.expect("UBX")
        assert ubx.payload is not None
        self.assertNotIn(GUID_C.encode(), ubx.payload)


class PresenceTests(NetworkTestCase):
    """
    CHG, NLN, FLN and UBX between accounts (reference 4.2, 4.7, 4.8).
    """

    async def twoFriends(self) -> tuple[Client, Client]:
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw", "Alice")
        network.addAccount("bob@example.com", "pw", "Bob Example")
        network.addContact("alice@example.com", "bob@example.com", mutual=True)
        alice = await self.login("alice@example.com", guid=GUID_A)
        burst = await self.goOnline(alice)
        self.assertEqual([(c.name, c.arguments) for c in burst], [("UBX", ("1:alice@example.com",))])
        bob = await self.login("bob@example.com", guid=GUID_B)
        return alice, bob

    @asyncTest
    async def test_fanOut(self) -> None:
        """
        Bob's first CHG brings him C{NLN} + C{UBX} for Alice, then his own
        UBX; Alice gets C{NLN} for Bob in the MSNP18 format; status changes
        reach her, and Bob signing out shows as C{FLN 1:bob 0:0}.
        """
        alice, bob = await self.twoFriends()
        trid = bob.send("CHG", "NLN", "2789003324:48", "0")
        await bob.expect("CHG", trid)
        nln = await bob.expect("NLN")
        self.assertEqual(nln.arguments, ("NLN", "1:alice@example.com", "Alice", "2789003324:48", "0"))
        ubx = await bob.expect("UBX")
        self.assertEqual(ubx.arguments, ("1:alice@example.com",))
        assert ubx.payload is not None
        self.assertIn(f'<EndpointData id="{GUID_A}">'.encode(), ubx.payload)
        self.assertNotIn(b"PrivateEndpointData", ubx.payload)
        self.assertEqual((await bob.expect("UBX")).arguments, ("1:bob@example.com",))
        mail = await bob.expect("MSG")
        self.assertEqual(mail.arguments, ("Hotmail", "Hotmail"))

        nln = await alice.expect("NLN")
        self.assertEqual(nln.arguments, ("NLN", "1:bob@example.com", "Bob%20Example", "2789003324:48", "0"))
        self.assertEqual((await alice.expect("UBX")).arguments, ("1:bob@example.com",))
        self.assertTrue(self.network.isReachable("bob@example.com"))

        trid = bob.send("CHG", "AWY", "2789003324:48", "0")
        await bob.expect("CHG", trid)
        self.assertEqual((await alice.expect("NLN")).arguments[0], "AWY")

        await bob.close()
        fln = await alice.expect("FLN")
        self.assertEqual(fln.arguments, ("1:bob@example.com", "0:0"))
        self.assertFalse(self.network.isReachable("bob@example.com"))

    @asyncTest
    async def test_fanOutOfNameAndPSM(self) -> None:
        """
        C{PRP MFN} is echoed and re-announced with C{NLN}; a C{UUX <Data>}
        is answered with C{UUX trid 0} and reaches watchers as C{UBX}.
        """
        alice, bob = await self.twoFriends()
        await self.goOnline(bob)
        await alice.expect("NLN")
        await alice.expect("UBX")
        trid = bob.send("PRP", "MFN", "Bobby%20%C3%A9")
        self.assertEqual((await bob.expect("PRP", trid)).arguments, ("MFN", "Bobby%20%C3%A9"))
        nln = await alice.expect("NLN")
        self.assertEqual(nln.arguments[2], "Bobby%20%C3%A9")
        trid = bob.send("UUX", payload=b"<Data><PSM>fish &amp; chips</PSM><CurrentMedia></CurrentMedia></Data>")
        reply = await bob.drain("UUX")
        self.assertEqual(reply.trid, trid)
        self.assertEqual(reply.payload, b"")
        ubx = await alice.expect("UBX")
        assert ubx.payload is not None
        self.assertIn(b"<PSM>fish &amp; chips</PSM>", ubx.payload)

    @asyncTest
    async def test_hiddenLooksOffline(self) -> None:
        """
        C{CHG HDN} makes watchers see C{FLN}; a user who signs in hidden is
        never announced, and is not reachable.
        """
        alice, bob = await self.twoFriends()
        burst = await self.goOnline(bob, "HDN")
        # Bob (hidden) still sees Alice.
        self.assertEqual(burst[0].arguments[1], "1:alice@example.com")
        self.assertFalse(self.network.isReachable("bob@example.com"))
        self.assertEqual(await self.sync(alice), [])
        await self.goOnline(bob, "NLN")
        seen = await self.sync(alice)
        self.assertEqual([c.name for c in seen], ["NLN", "UBX"])
        self.assertEqual(seen[0].arguments[:2], ("NLN", "1:bob@example.com"))
        await self.goOnline(bob, "HDN")
        seen = await self.sync(alice)
        self.assertEqual([(c.name, c.arguments) for c in seen], [("FLN", ("1:bob@example.com", "0:0"))])

    @asyncTest
    async def test_blockHidesPresence(self) -> None:
        """
        When Bob blocks Alice (store updated as the SOAP calls would, then
        C{RML l=2} / C{ADL l=4}), Alice gets C{FLN} for Bob at once.
        """
        alice, bob = await self.twoFriends()
        await self.goOnline(bob)
        await alice.expect("NLN")
        await alice.expect("UBX")
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, BLOCK, "alice@example.com")
        trid = bob.send("RML", payload=b'<ml><d n="example.com"><c n="alice" l="2" t="1" /></d></ml>')
        self.assertEqual((await bob.drain("RML")).trid, trid)
        fln = await alice.expect("FLN")
        self.assertEqual(fln.arguments, ("1:bob@example.com", "0:0"))
        trid = bob.send("ADL", payload=b'<ml><d n="example.com"><c n="alice" l="4" t="1" /></d></ml>')
        self.assertEqual((await bob.expect("ADL", trid)).arguments, ("OK",))
        # Unblocking shows him again.
        self.network.store.setRole(bobAccount, ALLOW, "alice@example.com")
        trid = bob.send("ADL", payload=b'<ml><d n="example.com"><c n="alice" l="2" t="1" /></d></ml>')
        await bob.expect("ADL", trid)
        self.assertEqual((await alice.expect("NLN")).arguments[1], "1:bob@example.com")

    @asyncTest
    async def test_statusIsSharedBetweenPlaces(self) -> None:
        """
        With two places, a CHG at one is announced to the other as an
        C{NLN} about its own address.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw", "Alice")
        first = await self.login("alice@example.com", guid=GUID_A)
        await self.goOnline(first)
        second = await self.login("alice@example.com", guid=GUID_C)
        self.assertEqual([c.name for c in await self.sync(first)], ["UBX"])
        await self.goOnline(second, "BSY")
        seen = await self.sync(first)
        self.assertEqual([c.name for c in seen], ["NLN", "UBX"])
        self.assertEqual(seen[0].arguments[:2], ("BSY", "1:alice@example.com"))
        self.assertEqual(network.onlineSessions("alice@example.com")[0].status, "BSY")

    @asyncTest
    async def test_chgErrors(self) -> None:
        """
        C{CHG FLN} and unknown statuses get C{201}; a CHG without
        capabilities gets no reply at all (as on the independent server).
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        client = await self.login("alice@example.com")
        trid = client.send("CHG", "FLN", "0:0", "0")
        await client.expect("201", trid)
        trid = client.send("CHG", "XYZ", "0:0", "0")
        await client.expect("201", trid)
        client.send("CHG", "NLN")
        client.sendBare("PNG")
        self.assertEqual((await client.next()).name, "QNG")


class SessionCommandTests(NetworkTestCase):
    """
    ADL/RML validation and notifications, PNG, BLP, XFR, OUT.
    """

    async def online(self, *emails: str) -> list[Client]:
        network = await self.startNetwork(sendChallenge=False)
        clients = []
        guids = [GUID_A, GUID_B, GUID_C]
        for email in emails:
            network.addAccount(email, "pw", email.split("@")[0].title())
        for i, email in enumerate(emails):
            client = await self.login(email, guid=guids[i])
            clients.append(client)
        return clients

    @asyncTest
    async def test_pngQng(self) -> None:
        """
        C{PNG} is answered with C{QNG <pingInterval>}.
        """
        (alice,) = await self.online("alice@example.com")
        alice.sendBare("PNG")
        self.assertEqual((await alice.expect("QNG")).arguments, ("50",))

    @asyncTest
    async def test_blpEcho(self) -> None:
        """
        C{BLP} is echoed and stored; another value gets C{201}.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("BLP", "BL")
        self.assertEqual((await alice.expect("BLP", trid)).arguments, ("BL",))
        account = self.network.store.get("alice@example.com")
        assert account is not None
        self.assertEqual(account.blp, "BL")
        trid = alice.send("BLP", "XX")
        await alice.expect("201", trid)

    @asyncTest
    async def test_initialADLAcknowledged(self) -> None:
        """
        The initial C{<ml l="1">}, even empty or naming unknown addresses,
        gets C{ADL trid OK}.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("ADL", payload=b'<ml l="1"></ml>')
        self.assertEqual((await alice.expect("ADL", trid)).arguments, ("OK",))
        trid = alice.send("ADL", payload=b'<ml l="1"><d n="nowhere.invalid"><c n="x" l="3" t="1" /></d></ml>')
        self.assertEqual((await alice.expect("ADL", trid)).arguments, ("OK",))

    @asyncTest
    async def test_emptyDomainIs240(self) -> None:
        """
        An empty C{<d>} gets C{240} without payload, then the connection closes.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("ADL", payload=b'<ml l="1"><d n="example.com"></d></ml>')
        error = await alice.expect("240", trid)
        self.assertIsNone(error.payload)
        await alice.lost

    @asyncTest
    async def test_reverseBitIs241(self) -> None:
        """
        List bits 8 (RL) in an ADL get C{241} without payload and a close.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("ADL", payload=b'<ml><d n="example.com"><c n="bob" l="8" t="1" /></d></ml>')
        await alice.expect("241", trid)
        await alice.lost

    @asyncTest
    async def test_pendingBitIs241(self) -> None:
        """
        List bit 16 (PL) gets C{241} as well.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("RML", payload=b'<ml><d n="example.com"><c n="bob" l="17" t="1" /></d></ml>')
        await alice.expect("241", trid)
        await alice.lost

    @asyncTest
    async def test_unknownAccountIs208(self) -> None:
        """
        An incremental ADL naming an address with no account gets C{208}
        without payload; the connection stays open.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("ADL", payload=b'<ml><d n="example.com"><c n="nobody" l="1" t="1" /></d></ml>')
        error = await alice.expect("208", trid)
        self.assertIsNone(error.payload)
        alice.sendBare("PNG")
        await alice.expect("QNG")

    @asyncTest
    async def test_adlNotifiesTarget(self) -> None:
        """
        After the address book recorded Alice on Bob's reverse list, Alice's
        incremental ADL with FL makes Bob's session receive C{ADL 0} with
        C{l="8"} and her encoded name; her RML sends C{RML 0}.
        """
        alice, bob = await self.online("alice@example.com", "bob@example.com")
        store = self.network.store
        aliceAccount = store.get("alice@example.com")
        assert aliceAccount is not None
        aliceAccount.displayName = "Alice A"
        store.addToAddressBook(aliceAccount, "bob@example.com")
        trid = alice.send("ADL", payload=b'<ml><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>')
        await alice.expect("ADL", trid)
        adl = await bob.expect("ADL", 0)
        self.assertEqual(
            adl.payload, b'<ml><d n="example.com"><c n="alice" t="1" l="8" f="Alice%20A" /></d></ml>'
        )
        trid = alice.send("RML", payload=b'<ml><d n="example.com"><c n="bob" l="1" t="1" /></d></ml>')
        self.assertEqual((await alice.expect("RML", trid)).arguments, ("OK",))
        rml = await bob.expect("RML", 0)
        self.assertEqual(rml.payload, b'<ml><d n="example.com"><c n="alice" t="1" l="8" /></d></ml>')

    @asyncTest
    async def test_acceptMakesBothSee(self) -> None:
        """
        Once both forward lists hold each other (contact request accepted),
        the ADL makes each see the other online.
        """
        alice, bob = await self.online("alice@example.com", "bob@example.com")
        await self.goOnline(alice)
        await self.goOnline(bob)
        store = self.network.store
        a = store.get("alice@example.com")
        b = store.get("bob@example.com")
        assert a is not None and b is not None
        store.addToAddressBook(a, b.email)
        trid = alice.send("ADL", payload=b'<ml><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>')
        await alice.expect("ADL", trid)
        self.assertEqual((await alice.expect("NLN")).arguments[1], "1:bob@example.com")
        await bob.expect("ADL", 0)
        store.addToAddressBook(b, a.email)
        store.setRole(b, ALLOW, a.email)
        trid = bob.send("ADL", payload=b'<ml><d n="example.com"><c n="alice" l="3" t="1" /></d></ml>')
        await bob.expect("ADL", trid)
        self.assertEqual((await bob.expect("NLN")).arguments[1], "1:alice@example.com")

    @asyncTest
    async def test_fqy(self) -> None:
        """
        C{FQY} answers with network 1 for known accounts and C{208} for an
        unknown one.
        """
        alice, bob = await self.online("alice@example.com", "bob@example.com")
        trid = alice.send("FQY", payload=b'<ml><d n="example.com"><c n="bob" /></d></ml>')
        reply = await alice.expect("FQY", trid)
        self.assertEqual(reply.payload, b'<ml><d n="example.com"><c n="bob" t="1" /></d></ml>')
        trid = alice.send("FQY", payload=b'<ml><d n="example.com"><c n="zed" /></d></ml>')
        await alice.expect("208", trid)

    @asyncTest
    async def test_fqyNetwork32(self) -> None:
        """
        An account standing for a Yahoo! user is answered C{t="32"}, and
        an incremental C{ADL} must name it with that network.
        """
        alice, = await self.online("alice@example.com")
        self.network.addAccount("eve@yahoo.com", "pw", network=32)
        trid = alice.send("FQY", payload=b'<ml><d n="yahoo.com"><c n="eve" /></d></ml>')
        reply = await alice.expect("FQY", trid)
        self.assertEqual(reply.payload, b'<ml><d n="yahoo.com"><c n="eve" t="32" /></d></ml>')
        trid = alice.send("ADL", payload=b'<ml><d n="yahoo.com"><c n="eve" l="1" t="1" /></d></ml>')
        await alice.expect("208", trid)
        trid = alice.send("ADL", payload=b'<ml><d n="yahoo.com"><c n="eve" l="1" t="32" /></d></ml>')
        await alice.expect("ADL", trid)

    @asyncTest
    async def test_mailDataAfterFirstCHG(self) -> None:
        """
        The initial mail data comes after a place's first C{CHG} only, and
        lists the messages waiting; a UUM is never answered, is stored and
        announced to the recipient's places that sent their first C{CHG}.
        """
        alice, bob = await self.online("alice@example.com", "bob@example.com")
        payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nDest-Agent: client\r\n\r\nhi"
        alice.send("UUM", "bob@example.com", "1", "1", payload=payload)
        self.assertEqual(await self.sync(alice), [])
        (waiting,) = self.network.offlineStore.listOfflineMessages("bob@example.com")
        self.assertEqual(await self.sync(bob), [])
        trid = bob.send("CHG", "NLN", "2789003324:48", "0")
        await bob.expect("CHG", trid)
        burst = await self.sync(bob)
        (mail,) = [c for c in burst if c.name == "MSG"]
        self.assertEqual(mail.arguments, ("Hotmail", "Hotmail"))
        assert mail.payload is not None
        self.assertIn(b"text/x-msmsgsinitialmdatanotification", mail.payload)
        self.assertIn(waiting.messageId.encode(), mail.payload)
        alice.send("UUM", "bob@example.com", "1", "1", payload=payload.replace(b"hi", b"again"))
        self.assertEqual(await self.sync(alice), [])
        (live,) = [c for c in await self.sync(bob) if c.name == "MSG"]
        assert live.payload is not None
        self.assertIn(b"text/x-msmsgsoimnotification", live.payload)
        self.assertEqual(len(self.network.offlineStore.listOfflineMessages("bob@example.com")), 2)

    @asyncTest
    async def test_abchChangeRefreshesPresence(self) -> None:
        """
        The ABCH resource is mounted with the network's change hook; a list
        change reported through it (Bob blocking Alice over SOAP) reaches
        Alice as C{FLN} with no NS command at all.
        """
        alice, bob = await self.online("alice@example.com", "bob@example.com")
        self.network.addContact("alice@example.com", "bob@example.com", mutual=True)
        await self.goOnline(alice)
        await self.goOnline(bob)
        self.assertEqual([c.name for c in await self.sync(alice)], ["NLN", "UBX"])
        bobAccount = self.network.store.get("bob@example.com")
        assert bobAccount is not None
        self.network.store.setRole(bobAccount, BLOCK, "alice@example.com")
        root = self.network._httpRoot()
        abservice = root.children.get(b"abservice")
        if abservice is not None:
            self.assertEqual(abservice.onChange, self.network._listsChanged)
        self.network._listsChanged(bobAccount, "AddMember")
        seen = await self.sync(alice)
        self.assertEqual([(c.name, c.arguments) for c in seen], [("FLN", ("1:bob@example.com", "0:0"))])

    @asyncTest
    async def test_xfrBeforeCHGIs913(self) -> None:
        """
        C{XFR trid SB} before the first CHG gets C{913}.
        """
        (alice,) = await self.online("alice@example.com")
        trid = alice.send("XFR", "SB")
        await alice.expect("913", trid)

    @asyncTest
    async def test_unknownCommandIgnored(self) -> None:
        """
        An unknown command gets no reply and leaves the session open.
        """
        (alice,) = await self.online("alice@example.com")
        alice.send("ZZZ", "1")
        alice.sendBare("PNG")
        self.assertEqual((await alice.next()).name, "QNG")

    @asyncTest
    async def test_outCloses(self) -> None:
        """
        C{OUT} closes the connection and the session disappears.
        """
        (alice,) = await self.online("alice@example.com")
        alice.sendBare("OUT")
        await alice.lost
        self.assertEqual(self.network.onlineSessions("alice@example.com"), [])

    @asyncTest
    async def test_signOutEveryone(self) -> None:
        """
        C{signOutEveryone} sends C{OUT SSD} and closes every session.
        """
        (alice,) = await self.online("alice@example.com")
        self.network.signOutEveryone()
        self.assertEqual((await alice.expect("OUT")).arguments, ("SSD",))
        await alice.lost


class FakeDirectory:
    """
    Stands in for the switchboard directory: hands out numbered tokens.
    """

    def __init__(self) -> None:
        self.issued: list[tuple[str, str]] = []

    def issueXfrToken(self, account: str, machineGuid: str) -> str:
        self.issued.append((account, machineGuid))
        return f"token{len(self.issued)}"


class SwitchboardHookTests(NetworkTestCase):
    """
    What the NS does for the switchboard server: XFR SB and RNG.
    """

    @asyncTest
    async def test_xfrSB(self) -> None:
        """
        After the first CHG, C{XFR trid SB} is answered with the directory's
        token and the switchboard address, in the 8.2 format.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        network.switchboards = FakeDirectory()
        network.switchboardAddress = "127.0.0.1:1864"
        alice = await self.login("alice@example.com")
        await self.goOnline(alice)
        trid = alice.send("XFR", "SB")
        xfr = await alice.expect("XFR", trid)
        self.assertEqual(xfr.arguments, ("SB", "127.0.0.1:1864", "CKI", "token1", "U", "messenger.msn.com", "1"))
        self.assertEqual(network.switchboards.issued, [("alice@example.com", GUID_A)])

    @asyncTest
    async def test_xfrSBWithRealSwitchboard(self) -> None:
        """
        With the switchboard server present, C{XFR SB} names its listening
        address and a token the directory accepts once.
        """
        network = await self.startNetwork(sendChallenge=False)
        if network.switchboards is None:
            raise self.skipTest("switchboard server not available")
        network.addAccount("alice@example.com", "pw")
        alice = await self.login("alice@example.com")
        await self.goOnline(alice)
        trid = alice.send("XFR", "SB")
        xfr = await alice.expect("XFR", trid)
        self.assertEqual(xfr.arguments[:3], ("SB", network.switchboardAddress, "CKI"))
        self.assertTrue(network.switchboardAddress.startswith("127.0.0.1:"))
        token = xfr.arguments[3]
        self.assertTrue(network.switchboards.redeemXfrToken(token, "alice@example.com", GUID_A))
        self.assertFalse(network.switchboards.redeemXfrToken(token, "alice@example.com", GUID_A))

    @asyncTest
    async def test_ring(self) -> None:
        """
        C{ring} sends C{RNG} to every online place of the callee and says
        whether anyone was reachable.
        """
        network = await self.startNetwork(sendChallenge=False)
        caller = network.addAccount("alice@example.com", "pw", "Alice A")
        network.addAccount("bob@example.com", "pw")
        network.switchboardAddress = "127.0.0.1:1864"
        self.assertFalse(network.ring("bob@example.com", "123", "tok", caller, "Alice A"))
        bob = await self.login("bob@example.com")
        self.assertFalse(network.ring("bob@example.com", "123", "tok", caller, "Alice A"))
        await self.goOnline(bob)
        self.assertTrue(network.ring("bob@example.com", "123", "tok", caller, "Alice A"))
        rng = await bob.expect("RNG")
        self.assertEqual(
            rng.arguments,
            ("123", "127.0.0.1:1864", "CKI", "tok", "alice@example.com", "Alice%20A", "U", "messenger.msn.com", "1"),
        )

    @asyncTest
    async def test_uunRelayedAsUBN(self) -> None:
        """
        C{UUN} to one's own other place is acknowledged with C{UUN trid OK}
        and arrives there as C{UBN} naming the sending endpoint.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        first = await self.login("alice@example.com", guid=GUID_A)
        second = await self.login("alice@example.com", guid=GUID_C)
        await self.sync(first)
        trid = second.send("UUN", f"alice@example.com;{GUID_A}", "4", payload=b"goawyplzthxbye")
        self.assertEqual((await second.expect("UUN", trid)).arguments, ("OK",))
        ubn = await first.expect("UBN")
        self.assertEqual(ubn.arguments, (f"alice@example.com;{GUID_C}", "4"))
        self.assertEqual(ubn.payload, b"goawyplzthxbye")


class VersionTests(NetworkTestCase):
    """
    Older protocol versions get their own grammar (reference 9.2).
    """

    @asyncTest
    async def test_msnp15(self) -> None:
        """
        An MSNP15 client logs in without a GUID, sees C{NLN} in the old
        format, and its login signs out an MSNP18 place of the account.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw", "Alice")
        network.addAccount("bob@example.com", "pw", "Bob")
        network.addContact("alice@example.com", "bob@example.com", mutual=True)
        bob = await self.login("bob@example.com", guid=GUID_B)
        await self.goOnline(bob)
        old = await self.login("bob@example.com", guid=None, version="MSNP15")
        self.assertEqual((await bob.drain("OUT")).arguments, ("OTH",))
        await self.goOnline(old, caps="1342177280")
        aliceOld = await self.login("alice@example.com", guid=None, version="MSNP15")
        burst = await self.goOnline(aliceOld, caps="1342177280")
        self.assertEqual(
            [(c.name, c.arguments) for c in burst],
            [("NLN", ("NLN", "bob@example.com", "1", "Bob", "1342177280", "0")), ("UBX", ("bob@example.com", "1"))],
        )


class HTTPSiteTests(NetworkTestCase):
    """
    The HTTP site of the network.
    """

    @asyncTest
    async def test_abserviceMounted(self) -> None:
        """
        The address-book services answer under C{/abservice} (403 without
        a ticket), the STS under C{/RST.srf}.
        """
        import treq

        await self.startNetwork()
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        http = HTTPClient(Agent(reactor, pool=pool))
        response = await http.post(self.endpoints.addressBook, data=b"<x/>")
        await treq.content(response)
        self.assertEqual(response.code, 403)
        response = await http.get(self.endpoints.sso.replace("RST2", "RST"))
        await treq.content(response)
        self.assertNotEqual(response.code, 404)


class StopTests(NetworkTestCase):
    """
    L{LocalNetwork.stop}.
    """

    @asyncTest
    async def test_stopClosesConnections(self) -> None:
        """
        C{stop()} closes every listener and every open connection (DS and
        NS, signed in or not) before it fires.
        """
        network = await self.startNetwork(sendChallenge=False)
        network.addAccount("alice@example.com", "pw")
        ds = await self.connect()
        idle = await self.connect(network.notificationAddress)
        alice = await self.login("alice@example.com")
        await network.stop()
        for factory in network._factories:
            self.assertEqual(factory.connections(), [])
        for client in (ds, idle, alice):
            await client.lost
        self.assertEqual(network.onlineSessions("alice@example.com"), [])
        failure: Optional[BaseException] = None
        try:
            await self.connect()
        except Exception as e:
            failure = e
        self.assertIsNotNone(failure)


class UnitTests(SynchronousTestCase):
    """
    Pieces checked without sockets.
    """

    def test_memberIdSplit(self) -> None:
        """
        The PUID splits into an unsigned high half and a signed low half,
        as in the 8.2 profile (MemberIdHigh 3, MemberIdLow -1105625088).
        """
        puid = (3 << 32) | (-1105625088 & 0xFFFFFFFF)
        self.assertEqual(splitMemberId(puid), (3, -1105625088))

    def test_guidShape(self) -> None:
        """
        GUIDs are accepted with or without braces, never half-braced.
        """
        self.assertTrue(isGuid(GUID_A))
        self.assertTrue(isGuid(GUID_A.strip("{}").lower()))
        self.assertFalse(isGuid(GUID_A[1:]))
        self.assertFalse(isGuid("{1234}"))

    def test_profileLayout(self) -> None:
        """
        The profile message has the header order of reference 8.4 and ends
        with an empty line.
        """
        store = AccountStore()
        account = store.addAccount("alice@example.com", "pw")
        payload = profileMessage(account, 1262304000, "203.0.113.7", 41478, True)
        lines = payload.decode().split("\r\n")
        self.assertEqual(lines[:3], ["MIME-Version: 1.0", "Content-Type: text/x-msmsgsprofile; charset=UTF-8", "LoginTime: 1262304000"])
        self.assertEqual(lines[-3:], ["MPOPEnabled: 1", "", ""])

    def test_stringTransportLogin(self) -> None:
        """
        Over a StringTransport: the NS answers VER and, for C{USR SSO I},
        a 64-character nonce followed by C{GCF 0 497}.
        """
        server = NotificationServer(None, Presence(AccountStore()), clock=Clock())
        transport = StringTransport()
        server.makeConnection(transport)
        server.dataReceived(b"VER 1 MSNP18 MSNP17 CVR0\r\nUSR 2 SSO I alice@example.com\r\n")
        data = transport.value()
        first, rest = data.split(b"\r\n", 1)
        self.assertEqual(first, b"VER 1 MSNP18")
        usrLine, rest = rest.split(b"\r\n", 1)
        usr = parseCommand(usrLine + b"\r\n", Direction.FROM_SERVER)
        self.assertEqual(usr.arguments[:3], ("SSO", "S", "MBI_KEY_OLD"))
        self.assertEqual(len(usr.arguments[3]), 64)
        gcf = parseCommand(rest, Direction.FROM_SERVER)
        self.assertEqual((gcf.name, gcf.trid, len(gcf.payload or b"")), ("GCF", 0, 497))
