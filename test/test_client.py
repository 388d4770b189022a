"""
End-to-end tests for L{msnp.client}: real loopback sockets against
L{msnp.server.LocalNetwork} (and a few deliberately broken servers),
on the real reactor. Every test leaves the reactor clean: sessions are
logged out, networks stopped, HTTP pools closed.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msnp.client import MSNClient, Session
from msnp.contacts import Status
from msnp.endpoints import ClientIdentity, Endpoints, newMachineGuid
from msnp.errors import (
    AuthenticationError,
    ConnectionLost,
    LoginTimeout,
    UnsupportedProtocol,
)

from msnp.demo import STEP_DESCRIPTIONS
from test.support import WAIT, EventRecorder, asyncTest, pollUntil, signIn, startLocalNetwork

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.net"
PASSWORD = "s3cret!"


class NetworkTestCase(TestCase):
    """
    A started L{LocalNetwork} with alice, bob (mutual contacts) and carol.
    """

    redirect = True

    async def startNetwork(self, **kwargs: Any) -> Endpoints:
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(ALICE, PASSWORD, "Alice"), (BOB, "b0b-pass", "Bob"), (CAROL, "carol-pass", "Carol")],
            mutualContacts=[(ALICE, BOB)],
            oneWayContacts=[(ALICE, CAROL)],
            redirect=self.redirect,
            **kwargs,
        )
        return self.endpoints

    async def signIn(
        self,
        account: str = ALICE,
        password: str = PASSWORD,
        observer: Optional[EventRecorder] = None,
        **kwargs: Any,
    ) -> Session:
        kwargs.setdefault("loginTimeout", WAIT)
        kwargs.setdefault("requestTimeout", WAIT)
        return await signIn(self, account, password, self.endpoints, observer, signOut=Session.logout, **kwargs)


class LoginTests(NetworkTestCase):
    """
    Signing in through a dispatch server that redirects to the NS.
    """

    @asyncTest
    async def test_loginViaRedirect(self) -> None:
        """
        The login follows the XFR, reports every step in order, and fires
        with a session that already has its contacts, profile and status.
        """
        await self.startNetwork()
        observer = EventRecorder("observer")
        session = await self.signIn(observer=observer)
        steps = [step for _, step, _ in observer.named("loginStep")]
        self.assertEqual(
            steps,
            ["connect", "VER", "CVR", "XFR", "connect", "VER", "CVR", "SSO", "USR OK",
             "contacts", "ADL", "profile", "online"],
        )
        self.assertEqual(session.account, ALICE)
        self.assertEqual(session.status, Status.ONLINE)
        self.assertEqual(session.displayName, "Alice")
        self.assertEqual({c.email for c in session.contacts}, {BOB, CAROL})
        bob = session.contacts.get(BOB)
        assert bob is not None
        self.assertTrue(bob.onForwardList and bob.isAllowed and bob.onReverseList)
        self.assertIn("LoginTime", session.hotmailProfile)
        self.assertEqual(observer.named("signedIn"), [(session,)])
        self.assertEqual([s for s, _ in observer.named("profileReceived")], [session])
        self.assertIsNotNone(session.profile)
        self.assertTrue(session.policy and session.policy.startswith(b"<Policies>"))
        self.assertIn(session.machineGuid, session.places)
        self.assertEqual(len(self.network.onlineSessions(ALICE)), 1)

    @asyncTest
    async def test_logout(self) -> None:
        """
        L{Session.logout} closes the connection (the server forgets the
        session), and L{Session.whenEnded} fires with C{"logout"}.
        """
        await self.startNetwork()
        observer = EventRecorder("observer")
        session = await self.signIn(observer=observer)
        ended = session.whenEnded()
        await session.logout()
        self.assertEqual(await ended, "logout")
        self.assertEqual(observer.named("signedOut"), [(session, "logout")])
        self.assertEqual(await session.whenEnded(), "logout")
        # The server notices the close.
        await pollUntil(lambda: not self.network.onlineSessions(ALICE), timeout=1.0, interval=0.02)
        self.assertEqual(self.network.onlineSessions(ALICE), [])

    @asyncTest
    async def test_connectionLost(self) -> None:
        """
        When the server goes away, the session ends with "connection
        lost" and the observer hears C{signedOut}.
        """
        await self.startNetwork()
        observer = EventRecorder("observer")
        session = await self.signIn(observer=observer)
        await self.network.stop()
        self.assertEqual(await session.whenEnded(), "connection lost")
        self.assertEqual(observer.named("signedOut"), [(session, "connection lost")])
        self.assertFalse(session.isActive)
        await session.logout()

    @asyncTest
    async def test_wrongPassword(self) -> None:
        """
        A wrong password fails with L{AuthenticationError}, and nothing is
        left open (trial checks the reactor).
        """
        await self.startNetwork()
        client = MSNClient(ALICE, "wrong", self.endpoints, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), AuthenticationError)

    @asyncTest
    async def test_unknownAccount(self) -> None:
        """
        An unknown account fails with L{AuthenticationError}.
        """
        await self.startNetwork()
        client = MSNClient("nobody@example.com", "x", self.endpoints, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), AuthenticationError)

    @asyncTest
    async def test_serviceFailure(self) -> None:
        """
        An address-book service that does not answer SOAP (a 404 page)
        fails the login with L{ServiceError} after the NS login, and the
        NS connection is closed again.
        """
        from msnp.errors import ServiceError

        await self.startNetwork()
        broken = self.endpoints.replace(addressBook=self.endpoints.sso.replace("RST2.srf", "nothing-here"))
        observer = EventRecorder("observer")
        client = MSNClient(ALICE, PASSWORD, broken, observer=observer, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), ServiceError)
        self.assertIn("USR OK", [s for _, s, _ in observer.named("loginStep")])
        await pollUntil(lambda: not self.network.onlineSessions(ALICE), timeout=1.0, interval=0.02)
        self.assertEqual(self.network.onlineSessions(ALICE), [])

    @asyncTest
    async def test_cancelLogin(self) -> None:
        """
        Cancelling the login abandons it cleanly with L{CancelledError}.
        """
        from twisted.internet.defer import CancelledError

        await self.startNetwork()
        observer = EventRecorder("observer")
        client = MSNClient(ALICE, PASSWORD, self.endpoints, observer=observer, reactor=reactor, loginTimeout=WAIT)
        d = client.login()
        await observer.waitForArgs("loginStep", lambda client, step, _: step == "USR OK")
        # The contact download needs the network, so the login is waiting.
        self.assertNoResult(d)
        d.cancel()
        await self.assertFailure(d, CancelledError)
        self.assertNotIn("contacts", [s for _, s, _ in observer.named("loginStep")])

    @asyncTest
    async def test_passwordNotInRepr(self) -> None:
        """
        Neither the client nor the session shows the password.
        """
        await self.startNetwork()
        client = MSNClient(ALICE, PASSWORD, self.endpoints, reactor=reactor)
        self.assertNotIn(PASSWORD, repr(client))
        session = await self.signIn()
        self.assertNotIn(PASSWORD, repr(session))

    @asyncTest
    async def test_traceHidesSecrets(self) -> None:
        """
        With C{trace=True} every line is logged, but never the password,
        the ticket or the MBI response (whose base64 always starts with
        the same header bytes).
        """
        from twisted.logger import formatEvent, globalLogPublisher

        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, observe)  # type: ignore[arg-type]
        await self.startNetwork()
        await self.signIn(trace=True)
        text = "\n".join(lines)
        self.assertIn("CHG", text)
        self.assertRegex(text, r">>> USR \d+ SSO S <redacted> <redacted> \{")
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn("HAAAAAEAAAAD", text)

    @asyncTest
    async def test_signedInElsewhere(self) -> None:
        """
        Signing in again with the same machine GUID ends the first session
        with C{OUT OTH}: its L{Session.whenEnded} fires with C{"OTH"}.
        """
        await self.startNetwork()
        identity = ClientIdentity(machineGuid=newMachineGuid())
        observer = EventRecorder("observer")
        first = await self.signIn(observer=observer, identity=identity)
        second = await self.signIn(identity=identity)
        self.assertEqual(await first.whenEnded(), "OTH")
        self.assertEqual(observer.named("signedOut"), [(first, "OTH")])
        self.assertEqual(second.status, Status.ONLINE)

    @asyncTest
    async def test_mpopPlaces(self) -> None:
        """
        Two places with different GUIDs both stay signed in, and each sees
        the other in L{Session.places}.
        """
        await self.startNetwork()
        observer = EventRecorder("observer")
        first = await self.signIn(observer=observer)
        second = await self.signIn()
        await observer.waitForArgs("endpointsChanged", lambda s, places: second.machineGuid in places)
        self.assertIn(first.machineGuid, first.places)
        self.assertIn(second.machineGuid, first.places)
        self.assertTrue(first.isActive and second.isActive)

    @asyncTest
    async def test_initialSettings(self) -> None:
        """
        The configured initial status, display name and personal message
        are what the session starts with.
        """
        await self.startNetwork()
        session = await self.signIn(
            initialStatus=Status.BUSY, displayName="Al\u00efce", personalMessage="hi \u2615"
        )
        self.assertEqual(session.status, Status.BUSY)
        self.assertEqual(session.displayName, "Al\u00efce")
        self.assertEqual(session.personalMessage, "hi \u2615")


class DirectLoginTests(NetworkTestCase):
    """
    Signing in where the first server is already the NS (no redirect).
    """

    redirect = False

    @asyncTest
    async def test_loginWithoutRedirect(self) -> None:
        """
        The SSO challenge comes on the first connection and the login goes
        on there: no C{XFR} step, one connection.
        """
        await self.startNetwork()
        observer = EventRecorder("observer")
        session = await self.signIn(observer=observer)
        steps = [step for _, step, _ in observer.named("loginStep")]
        self.assertEqual(
            steps, ["connect", "VER", "CVR", "SSO", "USR OK", "contacts", "ADL", "profile", "online"]
        )
        # The progress display describes exactly these, and XFR (when redirected).
        self.assertEqual(set(STEP_DESCRIPTIONS), set(steps) | {"XFR"})
        self.assertEqual(session.status, Status.ONLINE)
        self.assertEqual({c.email for c in session.contacts}, {BOB, CAROL})


class PresenceTests(NetworkTestCase):
    """
    What one session does is seen by the other.
    """

    async def bothOnline(self) -> tuple[Session, EventRecorder, Session, EventRecorder]:
        await self.startNetwork()
        aliceObserver, bobObserver = EventRecorder("alice"), EventRecorder("bob")
        alice = await self.signIn(observer=aliceObserver)
        bob = await self.signIn(BOB, "b0b-pass", observer=bobObserver)
        await bobObserver.waitForArgs("contactStatusChanged", lambda session, c, s: c.email == ALICE and s is Status.ONLINE)
        await aliceObserver.waitForArgs("contactStatusChanged", lambda session, c, s: c.email == BOB and s is Status.ONLINE)
        return alice, aliceObserver, bob, bobObserver

    @asyncTest
    async def test_contactOnlineAtLogin(self) -> None:
        """
        Someone already online is known as online from the presence that
        follows C{CHG}.
        """
        alice, _, bob, _ = await self.bothOnline()
        contact = bob.contacts.get(ALICE)
        assert contact is not None
        self.assertEqual(contact.status, Status.ONLINE)
        self.assertEqual(contact.displayName, "Alice")

    @asyncTest
    async def test_statusChange(self) -> None:
        """
        L{Session.setStatus} fires on the echo and the contact sees it.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        self.assertEqual(await alice.setStatus(Status.BUSY), Status.BUSY)
        self.assertEqual(alice.status, Status.BUSY)
        await bobObserver.waitForArgs("contactStatusChanged", lambda session, c, s: c.email == ALICE and s is Status.BUSY)

    @asyncTest
    async def test_displayNameChange(self) -> None:
        """
        A non-ASCII display name with C{+} and C{%} arrives intact.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        name = "Al\u00efce \u2615 +100%"
        self.assertEqual(await alice.setDisplayName(name), name)
        self.assertEqual(alice.displayName, name)
        await bobObserver.waitForArgs("contactNameChanged", lambda session, c, n: c.email == ALICE and n == name)

    @asyncTest
    async def test_personalMessage(self) -> None:
        """
        A non-ASCII personal message with markup characters arrives intact.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        text = "caf\u00e9 <b>&</b> \u2615"
        await alice.setPersonalMessage(text)
        self.assertEqual(alice.personalMessage, text)
        await bobObserver.waitForArgs("contactPersonalMessageChanged", lambda session, c, t: c.email == ALICE and t == text)

    @asyncTest
    async def test_currentMedia(self) -> None:
        """
        "Now playing" reaches the contact in the C{CurrentMedia} format.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        await alice.setCurrentMedia("Song", "Artist")

        def playing(session: Any, contact: Any, _: str) -> bool:
            return contact.email == ALICE and "Song" in contact.currentMedia

        await bobObserver.waitForArgs("contactPersonalMessageChanged", playing)

    @asyncTest
    async def test_signOutSeenAsOffline(self) -> None:
        """
        When alice logs out, bob sees her go offline.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        await alice.logout()
        await bobObserver.waitForArgs("contactStatusChanged", lambda session, c, s: c.email == ALICE and s is Status.OFFLINE)
        contact = bob.contacts.get(ALICE)
        assert contact is not None
        self.assertFalse(contact.isOnline)

    @asyncTest
    async def test_conversation(self) -> None:
        """
        L{Session.openConversation} reaches the contact through the
        switchboard: bob is invited (C{RNG}) and receives the text.
        """
        alice, _, bob, bobObserver = await self.bothOnline()
        conversation = await alice.openConversation(BOB)
        self.assertIn(conversation, list(alice.conversations))
        await conversation.sendText("h\u00e9llo \u2615")
        (_, _, message) = await bobObserver.waitForArgs("messageReceived")
        self.assertEqual((message.sender, message.text), (ALICE, "h\u00e9llo \u2615"))

    @asyncTest
    async def test_serverShutdown(self) -> None:
        """
        C{OUT SSD} from the server ends the session with C{"SSD"}.
        """
        alice, aliceObserver, bob, _ = await self.bothOnline()
        self.network.signOutEveryone("SSD")
        self.assertEqual(await alice.whenEnded(), "SSD")
        self.assertEqual(await bob.whenEnded(), "SSD")
        self.assertEqual(aliceObserver.named("signedOut"), [(alice, "SSD")])


# -- broken servers ---------------------------------------------------------------------------


class ScriptedServer(Protocol):
    """
    A server that answers each received line through C{factory.script}
    (a function from the line to the bytes to send, or L{None} to hang up).
    """

    factory: "ScriptedFactory"

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.buffer = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            answer = self.factory.script(line)
            if answer is None:
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
            self.transport.write(answer)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class ScriptedFactory(Factory):
    protocol = ScriptedServer  # type: ignore[assignment]

    def __init__(self, script: Callable[[bytes], Optional[bytes]]) -> None:
        self.script = script
        self.connections: list[ScriptedServer] = []


class BrokenServerTests(TestCase):
    """
    Servers that hang up, go silent or answer nonsense: every failure is
    typed, prompt, and leaves nothing open.
    """

    async def listen(self, factory: Any) -> Endpoints:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)

        async def stop() -> None:
            await port.stopListening()
            connections = getattr(factory, "connections", [])
            for connection in connections:
                connection.transport.abortConnection()
            await DeferredList([c.lost for c in connections])

        self.addCleanup(lambda: ensureDeferred(stop()))
        # HTTP services that do not exist: the login must fail before them.
        return Endpoints(
            dispatch=f"tcp:127.0.0.1:{port.getHost().port}",
            sso="http://127.0.0.1:9/RST2.srf",
            sharing="http://127.0.0.1:9/s",
            addressBook="http://127.0.0.1:9/a",
        )

    @asyncTest
    async def test_silentServer(self) -> None:
        """
        A server that accepts the connection and never answers makes the
        login fail with L{LoginTimeout} when the login timeout expires,
        even though the per-request timeout is longer.
        """
        factory = ScriptedFactory(lambda line: b"")
        endpoints = await self.listen(factory)
        client = MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, loginTimeout=0.3, requestTimeout=30)
        started = reactor.seconds()
        await self.assertFailure(client.login(), LoginTimeout)
        self.assertLess(reactor.seconds() - started, 2.0)
        self.assertEqual(len(factory.connections), 1)

    @asyncTest
    async def test_bareFactoryTimeout(self) -> None:
        """
        A bare L{Factory} that never answers: a short request timeout
        ends the login with L{LoginTimeout} as well.
        """

        class Mute(Protocol):
            def connectionMade(self) -> None:
                mutes.append(self)
                self.lost: Deferred[None] = Deferred()

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                self.lost.callback(None)

        mutes: list[Mute] = []
        factory = Factory.forProtocol(Mute)
        factory.connections = mutes  # type: ignore[attr-defined]
        endpoints = await self.listen(factory)
        client = MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, loginTimeout=30, requestTimeout=0.3)
        started = reactor.seconds()
        failure = await self.assertFailure(client.login(), LoginTimeout)
        self.assertIn("VER", str(failure))
        self.assertLess(reactor.seconds() - started, 2.0)

    @asyncTest
    async def test_hangUpMidLogin(self) -> None:
        """
        A server that answers C{VER} and hangs up on C{CVR} makes the login
        fail with L{ConnectionLost}.
        """

        def script(line: bytes) -> Optional[bytes]:
            if line.startswith(b"VER"):
                return b"VER 1 MSNP18\r\n"
            return None

        endpoints = await self.listen(ScriptedFactory(script))
        client = MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), ConnectionLost)

    @asyncTest
    async def test_noCommonVersion(self) -> None:
        """
        C{VER 1 0} fails with L{UnsupportedProtocol}.
        """
        endpoints = await self.listen(ScriptedFactory(lambda line: b"VER 1 0\r\n"))
        client = MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), UnsupportedProtocol)

    @asyncTest
    async def test_redirectLoop(self) -> None:
        """
        A dispatch server that keeps redirecting to itself is given up on
        after the configured number of redirects.
        """
        from msnp.errors import ProtocolError

        holder: list[int] = []

        def script(line: bytes) -> Optional[bytes]:
            trid = line.split(b" ")[1]
            if line.startswith(b"USR"):
                return b"XFR " + trid + b" NS 127.0.0.1:%d U D\r\n" % holder[0]
            if line.startswith(b"VER"):
                return b"VER " + trid + b" MSNP18\r\n"
            return b"CVR " + trid + b" 1 1 1 a b\r\n"

        factory = ScriptedFactory(script)
        endpoints = await self.listen(factory)
        holder.append(int(endpoints.dispatch.rsplit(":", 1)[1]))
        observer = EventRecorder("observer")
        client = MSNClient(
            ALICE, PASSWORD, endpoints, observer=observer, reactor=reactor, loginTimeout=WAIT, maxRedirects=2
        )
        await self.assertFailure(client.login(), ProtocolError)
        self.assertEqual([s for _, s, _ in observer.named("loginStep")].count("XFR"), 3)

    @asyncTest
    async def test_refusedConnection(self) -> None:
        """
        Nothing listening: the connection error comes back as a failure
        (not a hang), with nothing left open.
        """
        from twisted.internet.error import ConnectError

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory())
        number = port.getHost().port
        await port.stopListening()
        endpoints = Endpoints(dispatch=f"tcp:127.0.0.1:{number}")
        client = MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, loginTimeout=WAIT)
        await self.assertFailure(client.login(), ConnectError)


class InjectedClockTests(SynchronousTestCase):
    """
    The login's deadlines run on the injected reactor's clock.
    """

    def test_loginTimeoutOnInjectedClock(self) -> None:
        """
        With a memory reactor whose connection attempt never completes, the
        login fails with L{LoginTimeout} exactly when the injected clock
        passes C{loginTimeout}, and no timer is left behind.
        """
        from twisted.internet.testing import MemoryReactorClock

        memory = MemoryReactorClock()
        client = MSNClient(
            ALICE, PASSWORD, Endpoints(dispatch="tcp:127.0.0.1:1863"), reactor=memory,
            loginTimeout=5, requestTimeout=60,
        )
        d = client.login()
        self.assertEqual(memory.tcpClients[0][:2], ("127.0.0.1", 1863))
        memory.advance(4.9)
        self.assertNoResult(d)
        memory.advance(0.2)
        failure = self.failureResultOf(d, LoginTimeout)
        self.assertIn("connect", str(failure.value))
        self.assertEqual(memory.getDelayedCalls(), [])

    def test_connectStepTimeout(self) -> None:
        """
        The connection step has its own deadline (the request timeout).
        """
        from twisted.internet.testing import MemoryReactorClock

        memory = MemoryReactorClock()
        client = MSNClient(
            ALICE, PASSWORD, Endpoints(dispatch="tcp:127.0.0.1:1863"), reactor=memory,
            loginTimeout=60, requestTimeout=3,
        )
        d = client.login()
        memory.advance(3)
        self.failureResultOf(d, LoginTimeout)
        self.assertEqual(memory.getDelayedCalls(), [])

    def test_connectionThatNeverStarts(self) -> None:
        """
        A connection made whose protocol fails to start (its
        C{connectionMade} raises) leaves the endpoint's L{Deferred}
        unfired, and Twisted then refuses to stop the connector: the
        connection step still fails with L{LoginTimeout} at its deadline
        (L{msnp.endpoints.connectQuietly} gives the attempt up), instead of
        raising inside a timed call and leaving the login to the overall
        timeout.
        """
        from twisted.internet.error import ConnectionDone, NotConnectingError
        from twisted.internet.testing import MemoryReactorClock, StringTransport

        from msnp.notification import NotificationProtocol

        memory = MemoryReactorClock()
        client = MSNClient(
            ALICE, PASSWORD, Endpoints(dispatch="tcp:127.0.0.1:1863"), reactor=memory,
            loginTimeout=60, requestTimeout=3,
        )
        d = client.login()

        def refuse() -> None:
            raise NotConnectingError()

        memory.connectors[0].stopConnecting = refuse  # type: ignore[method-assign]
        self.patch(NotificationProtocol, "connectionMade", lambda self: 1 / 0)
        wrapper = memory.tcpClients[0][2].buildProtocol(None)
        self.assertRaises(ZeroDivisionError, wrapper.makeConnection, StringTransport())
        # What the reactor does with a connection whose start raised.
        wrapper.connectionLost(Failure(ConnectionDone()))
        memory.advance(2.9)
        self.assertNoResult(d)
        memory.advance(0.1)
        failure = self.failureResultOf(d, LoginTimeout)
        self.assertIn("connect", str(failure.value))
        self.assertEqual(self.flushLoggedErrors(NotConnectingError), [])
        self.assertEqual(memory.getDelayedCalls(), [])

    def test_offlineInitialStatusRefused(self) -> None:
        """
        Signing in as FLN is refused up front.
        """
        self.assertRaises(ValueError, MSNClient, ALICE, PASSWORD, initialStatus=Status.OFFLINE)
