"""
Tests for L{msnp.server.watchers}: the index from each account to the
sessions watching it, which lets a presence change reach only those.

The model test signs real L{NotificationServer} connections in over
L{StringTransport}s and walks through seeded random sequences of everything
that changes who may see whom (sign-in and sign-out at several places,
C{CHG} including hidden, C{BLP}, incremental C{ADL}/C{RML}, address-book,
allow and block changes made over the ABCH services, display names,
account removal). After every step, each session's view, both the one the
server remembers and the one rebuilt from the C{NLN}/C{FLN} lines it was
sent, must equal a brute-force recomputation from the store and the
sessions alone, and the index must hold exactly the pairs it promises.
"""

from __future__ import annotations

import random
from typing import Optional

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from msnp.mbi import mbiResponse
from msnp.protocol import MSNPProtocol
from msnp.server import LocalNetwork
from msnp.server.accounts import ALLOW, BLOCK, AccountStore
from msnp.server.notification import NotificationServer
from msnp.server.presence import HIDDEN, Presence, PresenceState
from msnp.server.watchers import WatcherIndex
from msnp.wire import Command, Direction, encodeParameter

ACCOUNTS = [f"u{i}@example.com" for i in range(6)]
GUIDS = ["{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}", "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"]
STATUSES = ["NLN", "BSY", "AWY", HIDDEN]
CAPS = ["2789003324:48", "1:0"]


class Collector(MSNPProtocol):
    """
    Parses what the server wrote, as a client would.
    """

    receiving = Direction.FROM_SERVER

    def __init__(self) -> None:
        super().__init__(requestTimeout=None)
        self.commands: list[Command] = []

    def commandReceived(self, command: Command) -> None:
        self.commands.append(command)


class Place:
    """
    One signed-in NS connection and what its client has been told.
    """

    def __init__(self, server: NotificationServer, transport: StringTransport) -> None:
        self.server = server
        self.transport = transport
        self.collector = Collector()
        self.collector.makeConnection(StringTransport())
        self.lost = False
        #: The presence the client believes, rebuilt from NLN/FLN.
        self.seen: dict[str, tuple[str, ...]] = {}

    def received(self) -> list[Command]:
        """
        The commands written since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        self.collector.commands = []
        self.collector.dataReceived(data)
        return self.collector.commands


def bruteState(presence: Presence, store: AccountStore, subject: str) -> Optional[PresenceState]:
    """
    What anyone allowed should see of C{subject}, from the sessions alone:
    the newest C{CHG} of its visible places, or L{None}.
    """
    if store.get(subject) is None:
        return None
    visible = [
        s for sessions in presence._sessions.values() for s in sessions
        if s.account == subject and s.status is not None and s.status != HIDDEN
    ]
    if not visible:
        return None
    latest = max(visible, key=lambda s: s.statusSerial)
    assert latest.user is not None and latest.status is not None
    return PresenceState(latest.status, latest.user.displayName, latest.capabilities, latest.msnObject)


def bruteView(presence: Presence, store: AccountStore, watcher: NotificationServer) -> dict[str, PresenceState]:
    """
    Everything C{watcher} should have been shown, recomputed over every
    account without any index: on its session forward list, allowed by the
    store (forward list, block, allow, C{BLP}), and visible.
    """
    view: dict[str, PresenceState] = {}
    if watcher.status is None or watcher.user is None:
        return view
    for subject in ACCOUNTS:
        account = store.get(subject)
        if subject == watcher.account or account is None or subject not in watcher.forward:
            continue
        if not store.canSee(watcher.user, account):
            continue
        state = bruteState(presence, store, subject)
        if state is not None:
            view[subject] = state
    return view


class RandomWalk:
    """
    A seeded random sequence of presence-changing operations over a few
    accounts, checked after every step.
    """

    def __init__(self, case: SynchronousTestCase, seed: int) -> None:
        self.case = case
        self.random = random.Random(seed)
        self.clock = Clock()
        self.store = AccountStore(clock=self.clock)
        for email in ACCOUNTS:
            self.store.addAccount(email, "pw", email.split("@")[0].upper())
        for _ in range(8):
            owner, contact = self.random.sample(ACCOUNTS, 2)
            self.store.addContact(owner, contact, mutual=self.random.random() < 0.5)
        self.presence = Presence(self.store)
        self.places: list[Place] = []
        self.trid = 10

    # -- operations -------------------------------------------------------------

    def signIn(self, email: Optional[str] = None) -> Place:
        if email is None:
            email = self.random.choice([a for a in ACCOUNTS if self.store.get(a) is not None])
        account = self.store.get(email)
        assert account is not None
        grant = self.store.issueTickets(account)
        server = NotificationServer(None, self.presence, sendChallenge=False, clock=self.clock)
        transport = StringTransport()
        server.makeConnection(transport)
        place = Place(server, transport)
        server.dataReceived(f"VER 1 MSNP18 CVR0\r\nUSR 2 SSO I {email}\r\n".encode())
        nonce = [c for c in place.received() if c.name == "USR"][0].arguments[3]
        response = mbiResponse(grant.binarySecret, nonce)
        guid = self.random.choice(GUIDS)
        server.dataReceived(f"USR 3 SSO S {grant.clearTicket} {response} {guid}\r\n".encode())
        self.case.assertEqual(server.account, email)
        self.places.append(place)
        return place

    def live(self) -> list[Place]:
        return [p for p in self.places if not p.lost]

    def send(self, place: Place, name: str, *args: str, payload: Optional[bytes] = None) -> None:
        self.trid += 1
        line = " ".join([name, str(self.trid), *args])
        if payload is not None:
            line += f" {len(payload)}"
        place.server.dataReceived(line.encode() + b"\r\n" + (payload or b""))

    def signOut(self, place: Place) -> None:
        place.server.connectionLost()
        place.lost = True

    def changeStatus(self, place: Place) -> None:
        self.send(place, "CHG", self.random.choice(STATUSES), self.random.choice(CAPS), "0")

    def changePrivacy(self, place: Place) -> None:
        self.send(place, "BLP", self.random.choice(["AL", "BL"]))

    def changeName(self, place: Place) -> None:
        self.send(place, "PRP", "MFN", encodeParameter(f"Name {self.random.randrange(3)}"))

    def listCommand(self, place: Place) -> None:
        target = self.random.choice([a for a in ACCOUNTS if self.store.get(a) is not None])
        local = target.split("@")[0]
        payload = f'<ml><d n="example.com"><c n="{local}" l="1" t="1" /></d></ml>'.encode()
        self.send(place, self.random.choice(["ADL", "RML"]), payload=payload)

    def soapChange(self) -> None:
        """
        What the ABCH services do: change the store, then
        L{Presence.refreshAccount} (as C{LocalNetwork._listsChanged}).
        """
        owner = self.store.get(self.random.choice(ACCOUNTS))
        if owner is None:
            return
        other = self.random.choice([a for a in ACCOUNTS if a != owner.email])
        kind = self.random.choice(["add", "remove", "block", "unblock", "allow", "disallow"])
        if kind == "add":
            if self.store.get(other) is not None:
                self.store.addToAddressBook(owner, other)
        elif kind == "remove":
            self.store.removeFromAddressBook(owner, other)
        elif kind in ("block", "allow"):
            self.store.setRole(owner, BLOCK if kind == "block" else ALLOW, other)
        else:
            self.store.clearRole(owner, BLOCK if kind == "unblock" else ALLOW, other)
        self.presence.refreshAccount(owner.email)

    def removeAccount(self) -> None:
        remaining = [a for a in ACCOUNTS if self.store.get(a) is not None]
        if len(remaining) <= 3:
            return
        email = self.random.choice(remaining)
        self.store.removeAccount(email)
        self.presence.accountRemoved(email)

    def step(self) -> None:
        live = self.live()
        roll = self.random.random()
        if not live or roll < 0.15:
            self.signIn()
        elif roll < 0.22:
            self.signOut(self.random.choice(live))
        elif roll < 0.50:
            self.changeStatus(self.random.choice(live))
        elif roll < 0.58:
            self.changePrivacy(self.random.choice(live))
        elif roll < 0.63:
            self.changeName(self.random.choice(live))
        elif roll < 0.80:
            self.listCommand(self.random.choice(live))
        elif roll < 0.98:
            self.soapChange()
        else:
            self.removeAccount()
        # A connection the server closed (OUT OTH) is lost as a reactor
        # would lose it.
        for place in self.live():
            if place.transport.disconnecting:
                self.signOut(place)

    # -- checks -------------------------------------------------------------

    def check(self, where: str) -> None:
        registered = [s for sessions in self.presence._sessions.values() for s in sessions]
        for place in self.places:
            told: dict[str, int] = {}
            for command in place.received():
                if command.name not in ("NLN", "FLN"):
                    continue
                token = command.arguments[1] if command.name == "NLN" else command.arguments[0]
                subject = token.split(":", 1)[1]
                if subject == place.server.account:
                    continue  # another place's status (MPOP), not a view
                told[subject] = told.get(subject, 0) + 1
                if command.name == "NLN":
                    now = (command.arguments[0], *command.arguments[2:5])
                    self.case.assertNotEqual(place.seen.get(subject), now, f"{where}: repeated NLN")
                    place.seen[subject] = now
                else:
                    self.case.assertIn(subject, place.seen, f"{where}: FLN of an unseen account")
                    del place.seen[subject]
            # One change is one line at most: no NLN then FLN in a step.
            self.case.assertTrue(all(n == 1 for n in told.values()), f"{where}: {told}")
            server = place.server
            if place.lost:
                self.case.assertNotIn(server, registered, where)
                continue
            expected = bruteView(self.presence, self.store, server)
            self.case.assertEqual(server.announced, expected, where)
            self.case.assertEqual(
                place.seen,
                {
                    s: (st.status, encodeParameter(st.displayName) or "%20", st.capabilities, st.msnObject)
                    for s, st in expected.items()
                },
                where,
            )
        # The index holds exactly forward + announced of registered sessions.
        pairs = {
            (id(s), subject)
            for s in registered
            for subject in s.forward.union(s.announced)
        }
        indexed = {
            (id(s), subject)
            for subject, sessions in self.presence.watchers._watching.items()
            for s in sessions
        }
        self.case.assertEqual(indexed, pairs, where)


class WatcherIndexModelTests(SynchronousTestCase):
    """
    The views the index produces equal a brute-force recomputation.
    """

    def test_randomWalks(self) -> None:
        """
        Over 40 seeded walks of 150 steps each (sign-ins and sign-outs at
        two places per account, status changes including hidden, C{BLP},
        C{ADL}/C{RML}, ABCH list changes, names, account removal), every
        session's remembered and transmitted view equals the brute-force
        one after every step, no step tells a watcher more than one line
        about an account (so a blocked or not-allowed watcher is never shown
        presence even for a moment), and the index holds exactly the pairs
        it promises.
        """
        for seed in range(40):
            walk = RandomWalk(self, seed)
            for number in range(150):
                walk.step()
                walk.check(f"seed {seed}, step {number}")

    def test_blockedWatcherNeverLearnsPresence(self) -> None:
        """
        A watcher blocked before the subject comes online is told nothing
        of it, however often the subject changes status; unblocking shows
        it at once.
        """
        walk = RandomWalk(self, 0)
        store = walk.store
        for email in ACCOUNTS:
            record = store.get(email)
            assert record is not None
            record.addressBook.clear()
        store.addContact(ACCOUNTS[0], ACCOUNTS[1], mutual=True)
        owner = store.get(ACCOUNTS[1])
        assert owner is not None
        store.setRole(owner, BLOCK, ACCOUNTS[0])
        watcher = walk.signIn(ACCOUNTS[0])
        walk.send(watcher, "CHG", "NLN", CAPS[0], "0")
        subject = walk.signIn(ACCOUNTS[1])
        for status in ("NLN", "AWY", "BSY", "NLN"):
            walk.send(subject, "CHG", status, CAPS[0], "0")
        about = [c.name for c in watcher.received() if ACCOUNTS[1] in " ".join(c.arguments)]
        self.assertEqual(about, [])
        self.assertEqual(watcher.server.announced, {})
        store.clearRole(owner, BLOCK, ACCOUNTS[0])
        walk.presence.refreshAccount(owner.email)
        self.assertEqual([c.name for c in watcher.received() if c.name in ("NLN", "FLN")], ["NLN"])

    def test_changeReachesOnlyWatchers(self) -> None:
        """
        A C{CHG} is looked at by the watchers of the changing account only:
        sessions that neither follow nor were shown it are not visited
        (the cost of a change does not grow with the number online).
        """
        walk = RandomWalk(self, 3)
        for _ in range(12):
            walk.signIn()
        for place in walk.live():
            walk.send(place, "CHG", "NLN", CAPS[0], "0")
        place = walk.live()[0]
        assert place.server.account is not None
        visited: list[NotificationServer] = []
        settle = walk.presence._settle

        def spy(watcher: NotificationServer, *args: object) -> None:
            visited.append(watcher)
            settle(watcher, *args)  # type: ignore[arg-type]

        walk.presence._settle = spy  # type: ignore[method-assign]
        walk.send(place, "CHG", "AWY", CAPS[0], "0")
        watching = set(walk.presence.watchers.watchersOf(place.server.account))
        self.assertTrue(visited)
        self.assertTrue(set(visited) <= watching)
        self.assertTrue(all(place.server.account in w.forward.union(w.announced) for w in visited))


class FakeSession:
    """
    The two sets L{WatcherIndex} reads.
    """

    def __init__(self, *forward: str) -> None:
        self.forward = set(forward)
        self.announced: dict[str, object] = {}


class WatcherIndexTests(SynchronousTestCase):
    """
    L{WatcherIndex} on its own.
    """

    def test_registerAndUnregister(self) -> None:
        """
        A registered session is indexed under every account it follows, in
        registration order, and under none once unregistered.
        """
        index = WatcherIndex()
        first, second = FakeSession("a", "b"), FakeSession("a")
        index.register(first)  # type: ignore[arg-type]
        index.register(second)  # type: ignore[arg-type]
        self.assertEqual(index.watchersOf("a"), [first, second])
        self.assertEqual(index.watchersOf("b"), [first])
        index.unregister(first)  # type: ignore[arg-type]
        self.assertEqual(index.watchersOf("a"), [second])
        self.assertEqual((index.watchersOf("b"), len(index)), ([], 1))

    def test_unfollowKeepsAShownAccount(self) -> None:
        """
        Taking an account off the forward list while the session was still
        shown it online keeps the session indexed, so the refresh that
        sends the C{FLN} finds it; L{WatcherIndex.forgetView} then drops it.
        """
        index = WatcherIndex()
        session = FakeSession("a")
        index.register(session)  # type: ignore[arg-type]
        session.announced["a"] = object()
        index.unfollow(session, "a")  # type: ignore[arg-type]
        self.assertEqual(session.forward, set())
        self.assertTrue(index.isWatching(session, "a"))  # type: ignore[arg-type]
        del session.announced["a"]
        index.forgetView(session, "a")  # type: ignore[arg-type]
        self.assertFalse(index.isWatching(session, "a"))  # type: ignore[arg-type]

    def test_forgetViewOfAFollowedAccount(self) -> None:
        """
        An account that went offline for a session that still follows it
        stays indexed (it may come back online).
        """
        index = WatcherIndex()
        session = FakeSession()
        index.follow(session, "a")  # type: ignore[arg-type]
        self.assertEqual(session.forward, {"a"})
        index.forgetView(session, "a")  # type: ignore[arg-type]
        self.assertEqual(index.watchersOf("a"), [session])


class RemovalTests(SynchronousTestCase):
    """
    L{LocalNetwork.removeAccount} while its places are signed in.
    """

    def test_removedAccountGoesOffline(self) -> None:
        """
        Removing a signed-in account signs its places out with C{OUT OTH}
        and sends C{FLN} to the watchers that saw it; the index forgets the
        removed places.
        """
        network = LocalNetwork(reactor=MemoryReactorClock())
        walk = RandomWalk(self, 0)
        walk.store = network.store
        walk.presence = network.presence
        for email in ACCOUNTS[:2]:
            network.addAccount(email, "pw")
        network.addContact(ACCOUNTS[0], ACCOUNTS[1], mutual=True)
        watcher, removed = walk.signIn(ACCOUNTS[0]), walk.signIn(ACCOUNTS[1])
        for place in (watcher, removed):
            walk.send(place, "CHG", "NLN", CAPS[0], "0")
        self.assertIn(ACCOUNTS[1], watcher.server.announced)
        watcher.received()
        removed.received()
        self.assertTrue(network.removeAccount(ACCOUNTS[1]))
        self.assertFalse(network.removeAccount(ACCOUNTS[1]))
        self.assertEqual([(c.name, c.arguments[0]) for c in removed.received()], [("OUT", "OTH")])
        self.assertEqual([c.name for c in watcher.received()], ["FLN"])
        self.assertEqual(watcher.server.announced, {})
        self.assertEqual(network.presence.sessionsOf(ACCOUNTS[1]), [])
        self.assertNotIn(removed.server, network.presence.watchers.watchersOf(ACCOUNTS[0]))
