"""
Helpers that several test modules share.

The end-to-end modules all need the same few things: a started
L{LocalNetwork} with some accounts, clients signed in to it that record
what their observer hears, a way to wait for an event without sleeping on
wall-clock time, and listeners that close every connection they accepted so
trial's clean-reactor check passes. Keeping one copy here means a fix to
(say) the cleanup order is made once, for every module.

This is not a test module (pytest and trial collect only C{test_*.py}).
C{test/} is a package (C{test/__init__.py}), so that C{python -m
twisted.trial test} run from the repository root finds this suite before
CPython's own C{test} package; modules import these helpers as
C{test.support}. No test module imports another: what two of them share
lives here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
import json
import os
import shutil
import socket
import tempfile
from typing import Any, Awaitable, Callable, Coroutine, Iterable, Mapping, Optional, Union

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase, TestCase

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from msnp.client import MSNClient, Session
from msnp.contacts import Contact, ContactList, Lists
from msnp.endpoints import ClientIdentity, Endpoints
from msnp.notification import NotificationProtocol
from msnp.server.abch import ABCHResource
from msnp.mbi import mbiResponse
from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.limits import DEFAULT_LIMITS
from msnp.server.switchboard import SwitchboardDirectory, SwitchboardServer, SwitchboardServerFactory
from msnp.soap.addressbook import AddressBookService
from msnp.soap.envelope import ABCHCache
from msnp.soap.sharing import SharingService
from msnp.server.network import LocalNetwork
from msnp.interfaces import EVENTS
from msnp.testing import RecordingObserver
from msnp.wire import Command, Direction, parseCommand, parseLine

#: Seconds one wait in an end-to-end test may take before the test fails
#: (loopback answers in milliseconds, so this only matters when it is broken).
WAIT = 10.0


def asyncTest(f: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., "Deferred[Any]"]:
    """
    Run an C{async def} test method as a Deferred, so trial waits for it on
    the real reactor (and its C{timeout} applies).
    """

    @functools.wraps(f)
    def wrapper(self: Any) -> "Deferred[Any]":
        return ensureDeferred(f(self))

    return wrapper


# -- waiting without sleeping ------------------------------------------------------


#: What an L{EventRecorder} keeps of an event: a function of the event's
#: arguments (session first) returning the tuple to record, or L{None} to
#: record the arguments as they are.
Summary = Optional[Callable[..., tuple[Any, ...]]]


class EventRecorder(RecordingObserver):
    """
    L{msnp.testing.RecordingObserver} (every L{IMessengerObserver} event,
    generated from the interface) on the real reactor with the suite's
    L{WAIT}: the one recording observer of this suite.

    With C{summaries}, it records only the events named there, each as
    its summary makes it (C{contact.email} rather than the contact, say),
    so that a test compares what it is about. Names that are not observer
    events (a test's own markers) are recorded as they are.
    """

    def __init__(self, name: str, summaries: Optional[Mapping[str, Summary]] = None, clock: Any = None) -> None:
        """
        @param clock: what waits time out on: the real reactor by default,
            a L{Clock} in unit tests.
        """
        RecordingObserver.__init__(self, name, reactor=reactor if clock is None else clock, timeout=WAIT)
        self.summaries = summaries

    def _record(self, event: str, *args: Any) -> None:
        if self.summaries is not None and event in EVENTS:
            if event not in self.summaries:
                return
            summary = self.summaries[event]
            if summary is not None:
                args = summary(*args)
        RecordingObserver._record(self, event, *args)

    def waitForArgs(self, event: str, predicate: Callable[..., bool] = lambda *args: True) -> "Deferred[tuple[Any, ...]]":
        """
        Fire with the arguments of the first C{event}, heard or still to
        come, for which C{predicate(*arguments)} holds.
        """

        def first() -> Optional[tuple[Any, ...]]:
            return next((args for args in self.named(event) if predicate(*args)), None)

        d = self.waitFor(lambda: first() is not None, f"a matching {event}")
        return d.addCallback(lambda _: first())  # type: ignore[arg-type, return-value]

    def count(self, event: str) -> int:
        """
        How many times C{event} was recorded.
        """
        return len(self.named(event))


#: The contact-list events as the list tests compare them: by address.
LIST_EVENTS: dict[str, Summary] = {
    "contactStatusChanged": lambda session, contact, status: (contact.email, status),
    "contactAddedYou": lambda session, email, displayName: (email, displayName),
    "contactRemovedYou": lambda session, email: (email,),
    "contactListChanged": lambda session: (),
}


#: The contact-list events whole (the roster tests compare which session
#: they name).
LIST_CHANGES: dict[str, Summary] = {event: None for event in ("contactAddedYou", "contactRemovedYou", "contactListChanged")}


def _withoutSession(session: Any, *rest: Any) -> tuple[Any, ...]:
    return rest


#: The conversation events as the conversation tests compare them: the
#: arguments after the session.
CONVERSATION_EVENTS: dict[str, Summary] = {
    event: _withoutSession
    for event in (
        "conversationStarted",
        "messageReceived",
        "typingReceived",
        "nudgeReceived",
        "participantJoined",
        "participantLeft",
        "conversationEnded",
    )
}


def messageTexts(recorder: EventRecorder) -> list[str]:
    """
    The text of every C{messageReceived} C{recorder} heard, oldest first.
    """
    return [args[-1].text for args in recorder.named("messageReceived")]


async def pollUntil(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """
    Re-check C{condition} every C{interval} seconds on the real reactor, for
    state no event announces (the server side of a loopback connection, a
    service in another object).

    @return: whether C{condition} held before C{timeout} seconds passed; the
        caller asserts, so its own assertion message stays the one it chose.
    """
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while not condition():
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            return False
        await deferLater(reactor, interval, lambda: None)  # type: ignore[arg-type]
    return True


async def waitUntil(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """
    Like L{pollUntil}, for callers with nothing better to assert.

    @raise AssertionError: C{condition} did not hold within C{timeout} seconds.
    """
    if not await pollUntil(condition, timeout):
        raise AssertionError(f"condition not met within {timeout}s")


# -- a local network with signed-in clients ------------------------------------------


async def startLocalNetwork(
    testCase: SynchronousTestCase,
    accounts: Iterable[tuple[str, str, Optional[str]]],
    mutualContacts: Iterable[tuple[str, str]] = (),
    oneWayContacts: Iterable[tuple[str, str]] = (),
    **networkArgs: Any,
) -> tuple[LocalNetwork, Endpoints]:
    """
    Start a L{LocalNetwork} on loopback and stop it when the test ends.

    @param accounts: C{(email, password, displayName)} of each account.
    @param mutualContacts: C{(a, b)} pairs that are each other's contacts.
    @param oneWayContacts: C{(owner, contact)} pairs where only C{owner}
        added C{contact}.
    @param networkArgs: passed to L{LocalNetwork} as they are.
    """
    network = LocalNetwork(**networkArgs)
    for email, password, displayName in accounts:
        network.addAccount(email, password, displayName)
    for a, b in mutualContacts:
        network.addContact(a, b, mutual=True)
    for owner, contact in oneWayContacts:
        network.addContact(owner, contact)
    endpoints = await network.start()
    testCase.addCleanup(network.stop)
    return network, endpoints


async def logoutQuietly(session: Session) -> None:
    """
    Sign C{session} out at cleanup, where a test may already have ended it
    (or stopped the network under it) and a second failure says nothing.
    """
    try:
        await session.logout()
    except Exception:
        pass


async def signIn(
    testCase: SynchronousTestCase,
    email: str,
    password: str,
    endpoints: Endpoints,
    observer: Any = None,
    signOut: Callable[[Session], Union[Awaitable[Any], Any]] = logoutQuietly,
    **clientArgs: Any,
) -> Session:
    """
    Sign a real L{MSNClient} in on the real reactor and sign it out again
    (with C{signOut}) when the test ends, so no connection outlives it.

    @param clientArgs: passed to L{MSNClient} (timeouts, C{trace}, ...).
    """
    client = MSNClient(email, password, endpoints, observer=observer, reactor=reactor, **clientArgs)
    session = await client.login()
    testCase.addCleanup(signOut, session)
    return session


# -- files, ports and child processes ------------------------------------------------------

#: The root of this checkout: child processes run from it and import
#: C{msnp} from it rather than from whatever copy is installed.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def childEnvironment() -> dict[str, str]:
    """
    This process's environment with L{ROOT} first on C{PYTHONPATH}, so a
    child process tests the code under test.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env



def tempDirectory(testCase: SynchronousTestCase) -> str:
    """
    A fresh directory outside the source tree (whichever runner is used),
    removed after the test.
    """
    directory = tempfile.mkdtemp(prefix="msnp-test-")
    testCase.addCleanup(shutil.rmtree, directory, True)
    return directory


def writeTempFile(
    testCase: SynchronousTestCase, content: Union[bytes, str, list[Any]], name: str = "file"
) -> str:
    """
    Write C{content} to C{name} in a fresh L{tempDirectory} and return its
    path: bytes as they are, text as UTF-8, anything else as JSON (an
    accounts file).
    """
    path = os.path.join(tempDirectory(testCase), name)
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif not isinstance(content, bytes):
        content = json.dumps(content).encode("utf-8")
    with open(path, "wb") as f:
        f.write(content)
    return path


def freePorts(count: int) -> list[int]:
    """
    Loopback ports nobody listens on right now (bound to port 0, all at
    once so they differ, then released), for servers that must be told
    their port in advance.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# -- listeners that clean up after themselves --------------------------------------------


class TrackedConnection(ProtocolWrapper):
    """
    A server-side connection whose L{lost} fires when it is gone, so a
    test can wait for the server to have seen the close.
    """

    def __init__(self, factory: Any, wrappedProtocol: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            ProtocolWrapper.connectionLost(self, reason)
        finally:
            self.lost.callback(None)


class TrackingFactory(WrappingFactory):
    """
    Wraps a server factory and keeps every connection it accepted (also
    closed ones, in order), so a test can inspect them and L{stopTracked}
    can close them all.
    """

    protocol = TrackedConnection  # type: ignore[assignment]

    def __init__(self, wrappedFactory: Any) -> None:
        super().__init__(wrappedFactory)
        self.everyConnection: list[TrackedConnection] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol: Any = super().buildProtocol(addr)
        self.everyConnection.append(protocol)
        return protocol


def stopTracked(port: IListeningPort, factory: TrackingFactory) -> "Deferred[Any]":
    """
    Stop listening on C{port} and abort every connection C{factory} still
    has open; fire when the port is closed and every connection is gone,
    so the reactor is clean when the test ends.
    """
    waiting: list[Deferred[Any]] = [succeed(port.stopListening())]
    for connection in factory.everyConnection:
        waiting.append(connection.lost)
        transport: Any = connection.transport
        if not connection.lost.called and transport is not None:
            transport.abortConnection()
    return DeferredList(waiting)


# -- reading what a protocol wrote ----------------------------------------------------------


def commandsIn(transport: StringTransport, direction: Direction) -> list[Command]:
    """
    Everything written to C{transport}, parsed as the peer reads it
    (C{direction} is the direction of the traffic), payloads included.
    """
    data = transport.value()
    commands = []
    while data:
        line, _, data = data.partition(b"\r\n")
        parsed = parseLine(line, direction)
        payload = None
        if parsed.payloadLength is not None:
            payload, data = data[: parsed.payloadLength], data[parsed.payloadLength :]
        commands.append(parsed.withPayload(payload))
    return commands


# -- the ABCH services in memory ------------------------------------------------


class Silent(Resource):
    """
    Never answers at all; C{received} fires when a request has arrived.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: Deferred[None] = Deferred()

    def render_POST(self, request: Request) -> Any:
        if not self.received.called:
            self.received.callback(None)
        return NOT_DONE_YET



def stubTreq(path: bytes, resource: IResource) -> Any:
    """
    A L{StubTreq} over a root with the real C{resource} at C{/path}: the
    real client against the real server resource, in memory (C{Any}:
    StubTreq grows its treq functions at run time).
    """
    root = Resource()
    root.putChild(path, resource)
    return StubTreq(root)


#: Where L{ServerHarness} mounts the ABCH resource.
BASE = "http://127.0.0.1/abservice/"


class ServerHarness:
    """
    A store with alice (bob mutual, carol one-way, dave pending), the ABCH
    resource mounted at C{/abservice}, and clients for a chosen account.
    """

    def __init__(self) -> None:
        self.store = AccountStore()
        for name in ("alice", "bob", "carol", "dave", "frank"):
            self.store.addAccount(f"{name}@example.com", "pw", name.capitalize())
        self.store.addContact("alice@example.com", "bob@example.com", mutual=True)
        self.store.addContact("alice@example.com", "carol@example.com")
        dave = self.store.get("dave@example.com")
        assert dave is not None
        self.store.addToAddressBook(dave, "alice@example.com")
        self.changes: list[tuple[str, str]] = []
        self.clock = Clock()
        self.clock.advance(1262304000)
        self.abch = ABCHResource(self.store, self.clock, onChange=self.changed)
        self.treq: Any = stubTreq(b"abservice", self.abch)

    def changed(self, account: Account, action: str) -> None:
        self.changes.append((account.email, action))

    def account(self, name: str) -> Account:
        account = self.store.get(f"{name}@example.com")
        assert account is not None
        return account

    def clients(
        self, name: str = "alice", ticket: Optional[str] = None, sharingPath: str = "SharingService.asmx"
    ) -> tuple[SharingService, AddressBookService]:
        if ticket is None:
            ticket = self.store.issueTickets(self.account(name)).contactsTicket
        value = ticket
        cache = ABCHCache()
        sharing = SharingService(self.treq, BASE + sharingPath, lambda: value, self.clock, cache=cache)
        book = AddressBookService(self.treq, BASE + "abservice.asmx", lambda: value, self.clock, cache=cache)
        return sharing, book


# -- the NS connection over a StringTransport -----------------------------------

#: Machine GUIDs of alice's places in the NS tests.
GUID_A = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
GUID_B = "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"
GUID_C = "{11111111-2222-3333-4444-555555555555}"


class EndListener:
    """
    A listener that only records how the connection ended.
    """

    def __init__(self, ended: list[Optional[str]]) -> None:
        self.ended = ended
        self.mailData: list[bytes] = []
        self.networkMessages: list[Any] = []

    def serverListChanged(self, entries: Any, added: bool) -> None:
        pass

    def addressBookChanged(self) -> None:
        pass

    def invited(self, invitation: Any) -> None:
        pass

    def notificationEnded(self, reason: Optional[str]) -> None:
        self.ended.append(reason)

    def mailDataReceived(self, payload: bytes) -> None:
        self.mailData.append(payload)

    def networkMessageReceived(self, message: Any) -> None:
        self.networkMessages.append(message)


class NotificationHarness:
    """
    A connected L{NotificationProtocol} with bob, carol and dave as contacts.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.clock = Clock()
        self.observer = EventRecorder("alice", clock=self.clock)
        self.protocol = NotificationProtocol(
            "alice@example.com",
            ClientIdentity(machineGuid=GUID_A),
            clock=self.clock,
            requestTimeout=10,
            observer=self.observer,
        )
        self.protocol.session = "the session"
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.ended: list[Optional[str]] = []
        self.protocol.listener = EndListener(self.ended)
        self.protocol.state.contacts = ContactList(
            [
                Contact("bob@example.com", "Bob", lists=Lists.FORWARD | Lists.ALLOW),
                Contact("carol@example.net", "Carol", lists=Lists.FORWARD | Lists.ALLOW),
                Contact("eve@yahoo.com", "Eve", network=32, lists=Lists.FORWARD | Lists.ALLOW),
            ]
        )
        testCase.addCleanup(self.protocol.stopKeepAlive)

    def receive(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        data = bytes(self.transport.value())
        self.transport.clear()
        return data

    def contact(self, email: str) -> Contact:
        found = self.protocol.state.contacts.get(email)
        assert found is not None
        return found


# -- raw clients of the local network's servers ---------------------------------

#: The C{CVR} line the raw clients send.
CVR = "CVR 2 0x0409 winnt 6.1.0 i386 MSNMSGR 14.0.8089.0726 msmsgs"


class Raw(Protocol):
    """
    A bare line client: queues what the server sends, parsed; can stop
    reading to play a peer that never reads.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.commands: list[Command] = []
        self.waiting: list[tuple[str, Deferred[Command]]] = []
        self.lost: Deferred[None] = Deferred()
        self.closed = False
        self.pendingPayload: Optional[tuple[bytes, int]] = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.pendingPayload is not None:
                line, size = self.pendingPayload
                if len(self.buffer) < size:
                    return
                payload, self.buffer = self.buffer[:size], self.buffer[size:]
                self.pendingPayload = None
                self._got(parseCommand(line + payload, Direction.FROM_SERVER))
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            words = line.split(b" ")
            name = words[0].decode()
            if name in ("MSG", "GCF", "UBX", "NOT", "UBN", "ADL", "RML"):
                size = int(words[-1])
                if size:
                    self.pendingPayload = (line + b"\r\n", size)
                    continue
            self._got(parseCommand(line + b"\r\n", Direction.FROM_SERVER))

    def _got(self, command: Command) -> None:
        for entry in list(self.waiting):
            if entry[0] == command.name:
                self.waiting.remove(entry)
                entry[1].callback(command)
                return
        self.commands.append(command)

    def expect(self, name: str) -> "Deferred[Command]":
        """
        The first queued or next arriving command called C{name} (commands
        of other names before it stay queued).
        """
        for command in self.commands:
            if command.name == name:
                self.commands.remove(command)
                return succeed(command)
        d: Deferred[Command] = Deferred()
        self.waiting.append((name, d))
        return d

    def named(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]

    def send(self, line: str | bytes) -> None:
        assert self.transport is not None
        self.transport.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        for _, d in self.waiting:
            if not d.called:
                d.errback(Failure(ConnectionError("closed")))
        self.waiting = []
        self.lost.callback(None)


def httpClient() -> Any:
    """
    A treq client without persistent connections (a clean reactor after
    each test).
    """
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))


class LimitsTestCase(TestCase):
    """
    A started network with a L{Clock} for connection timeouts.
    """

    timeout = 20

    async def start(self, **limits: Any) -> LocalNetwork:
        self.timers = Clock()
        self.network = LocalNetwork(
            reactor=reactor, timeoutClock=self.timers, sendChallenge=False,
            limits=replace(DEFAULT_LIMITS, **limits),
        )
        self.raws: list[Raw] = []
        self.addCleanup(self._stop)
        self.endpoints = await self.network.start()
        for name in ("alice", "bob", "carol"):
            self.network.addAccount(f"{name}@example.com", "pw", name.capitalize())
        return self.network

    async def _stop(self) -> None:
        await self.network.stop()
        for raw in self.raws:
            if not raw.closed and raw.transport is not None:
                raw.transport.abortConnection()  # type: ignore[attr-defined]
            await raw.lost

    async def connect(self, address: str) -> Raw:
        host, port = address.rsplit(":", 1)
        raw = Raw()
        await connectProtocol(TCP4ClientEndpoint(reactor, host, int(port)), raw)
        self.raws.append(raw)
        return raw

    @property
    def ds(self) -> str:
        return self.endpoints.dispatch.split(":", 1)[1]

    async def ping(self, raw: Raw) -> None:
        """
        A C{PNG} round trip: the server has handled everything sent before.
        """
        raw.send("PNG")
        await raw.expect("QNG")

    async def signIn(self, email: str, guid: str = GUID_A, online: bool = True) -> Raw:
        raw = await self.connect(self.network.notificationAddress)
        raw.send("VER 1 MSNP18 CVR0")
        await raw.expect("VER")
        raw.send(f"{CVR} {email}")
        await raw.expect("CVR")
        raw.send(f"USR 3 SSO I {email}")
        usr = await raw.expect("USR")
        account = self.network.store.get(email)
        assert account is not None
        grant = self.network.store.issueTickets(account)
        raw.send(f"USR 4 SSO S {grant.clearTicket} {mbiResponse(grant.binarySecret, usr.arguments[3])} {guid}")
        ok = await raw.expect("USR")
        self.assertEqual(ok.arguments[0], "OK")
        if online:
            raw.send("CHG 5 NLN 2789003324:48 0")
            await raw.expect("CHG")
        await self.ping(raw)
        return raw

    async def switchboard(self, ns: Raw, email: str, guid: str = GUID_A) -> Raw:
        ns.send("XFR 9 SB")
        xfr = await ns.expect("XFR")
        sb = await self.connect(xfr.arguments[1])
        sb.send(f"USR 1 {email};{guid} {xfr.arguments[3]}")
        await sb.expect("USR")
        return sb

    async def answer(self, ns: Raw, email: str, guid: str = GUID_B) -> Raw:
        rng = await ns.expect("RNG")
        sb = await self.connect(rng.arguments[1])
        sb.send(f"ANS 1 {email};{guid} {rng.arguments[3]} {rng.arguments[0]}")
        await sb.expect("ANS")
        return sb

    def serverConnections(self, index: int) -> list[Any]:
        """
        The server protocols open on listener C{index} (0 NS, 1 DS, 2 SB).
        """
        return [c.wrappedProtocol for c in self.network._factories[index].connections()]


# -- the switchboard server over a StringTransport --------------------------------

ALICE_GUID = GUID_A
BOB_GUID = GUID_B
BOB_GUID2 = "{22222222-3333-4444-5555-666666666666}"


@dataclass
class FakeNS:
    account: str
    machineGuid: str
    displayName: str
    capabilities: str = "2789003324:48"
    status: Optional[str] = "NLN"


@dataclass
class Ring:
    callee: str
    sessionId: str
    authToken: str
    caller: Account
    callerName: str


class FakeNetwork:
    """
    What the switchboard server needs of L{LocalNetwork}.
    """

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock or Clock()
        self.store = AccountStore()
        for email, name in (("alice@example.com", "Alice"), ("bob@example.com", "Bob B"), ("carol@example.net", "Carol")):
            self.store.addAccount(email, "pw", name)
        self.online: dict[str, list[FakeNS]] = {
            "alice@example.com": [FakeNS("alice@example.com", ALICE_GUID, "Alice")],
            "bob@example.com": [FakeNS("bob@example.com", BOB_GUID, "Bob B")],
        }
        self.rings: list[Ring] = []
        self.onRing: Any = None
        self.switchboardAddress = "127.0.0.1:1864"
        self.switchboards = SwitchboardDirectory(self)

    def onlineSessions(self, email: str) -> list[FakeNS]:
        return list(self.online.get(email, []))

    def ring(self, callee: str, sessionId: str, authToken: str, caller: Account, callerName: str) -> bool:
        if not self.online.get(callee):
            return False
        ring = Ring(callee, sessionId, authToken, caller, callerName)
        self.rings.append(ring)
        if self.onRing is not None:
            self.onRing(ring)
        return True


def received(transport: StringTransport) -> list[Command]:
    """
    Everything the server wrote, parsed as a client reads it.
    """
    return commandsIn(transport, Direction.FROM_SERVER)


class Client:
    """
    One raw connection to a server protocol.
    """

    def __init__(self, factory: SwitchboardServerFactory) -> None:
        self.protocol: SwitchboardServer = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def lines(self) -> list[str]:
        return [c.describe() if c.payload is not None else " ".join([c.name] + ([str(c.trid)] if c.trid is not None else []) + list(c.arguments)) for c in received(self.transport)]

    def commands(self) -> list[Command]:
        return received(self.transport)

    def clear(self) -> None:
        self.transport.clear()

    def drop(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionLost()))


class PendingServices:
    """
    Stand-ins for the sharing and address-book clients whose downloads
    stay pending until the test answers them.
    """

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []

    def _call(self, *args: Any, **kwargs: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    findMembership = _call
    findContactsPaged = _call

    def answerAll(self, membership: Any, addressBook: Any) -> None:
        """
        Answer the downloads pending now, in the order they were asked for
        (the membership, then the address book).
        """
        pending, self.pending = self.pending, []
        for d, result in zip(pending, [membership, addressBook]):
            d.callback(result)

    def failAll(self) -> None:
        """
        Fail the downloads pending now (not those they cause) as an
        unavailable service would.
        """
        from msnp.errors import ServiceError

        pending, self.pending = self.pending, []
        for d in pending:
            d.errback(ServiceError("unavailable", status=503))
