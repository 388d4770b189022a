"""
Issue #17 end to end: the roaming profile, the account's places and the
privacy setting, with real L{msnp.client.MSNClient}s against a
L{msnp.server.network.LocalNetwork} over loopback sockets (NS over TCP,
SSO, ABCH and storage over real HTTP).

Every wait is on an observer event or a bounded poll of the server's
state; a missing event fails the test through the per-wait timeout.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from msnp.client import MSNClient
from msnp.contacts import Lists, Status, formatCurrentMedia
from msnp.endpoints import ClientIdentity, newMachineGuid
from msnp.errors import ContactOffline, ServerError
from msnp.notification import REASON_SIGNED_OUT_ELSEWHERE
from msnp.server.network import LocalNetwork
from msnp.settings import MpopMode, Privacy
from msnp.uun import OpaqueNotification, NotificationType, PlaceSignOut, RTCActivity, UnknownNotification

from test.support import EventRecorder, Summary, freePorts, pollUntil

PASSWORD = "secret-pw"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"alice's tile"


#: What these tests compare of the events issue #17 adds and the presence
#: ones around them (the only ones recorded).
ROAMING_EVENTS: dict[str, Summary] = {
    "contactStatusChanged": lambda session, contact, status: (contact.email, status),
    "contactNameChanged": lambda session, contact, displayName: (contact.email, displayName),
    "contactPersonalMessageChanged": lambda session, contact, text: (contact.email, text),
    "contactCurrentMediaChanged": lambda session, contact, currentMedia: (contact.email, currentMedia),
    "contactAddedYou": lambda session, email, displayName: (email,),
    "placeSignedIn": lambda session, place: (place.guid, place.name),
    # A place's name may come in a later UBX than the place itself (the
    # login that made it can finish first, on its own connection).
    "endpointsChanged": lambda session, endpoints: (),
    "placeSignedOut": lambda session, place: (place.guid, place.name),
    "notificationReceived": lambda session, notification: (notification,),
    "signedOut": lambda session, reason: (reason,),
}


class Broken(Resource):
    """
    A storage service that is down: HTTP 500 to everything.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def render_POST(self, request: Request) -> bytes:
        self.requests += 1
        request.setResponseCode(500)
        return b"<html>down</html>"


class RoamingEndToEndTests(TestCase):
    """
    alice (up to three places), bob (her mutual contact) and carol (a
    stranger) on one local network.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network = LocalNetwork(reactor=reactor)
        self.network.addAccount(ALICE, PASSWORD, "Alice")
        self.network.addAccount(BOB, PASSWORD, "Bob")
        self.network.addAccount(CAROL, PASSWORD, "Carol")
        self.network.addContact(ALICE, BOB, mutual=True)
        self.endpoints = await self.network.start()
        self.addCleanup(self.network.stop)

    async def signIn(self, email: str, place: str, endpoints: Any = None, **clientArgs: Any) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(f"{email}@{place}", ROAMING_EVENTS)
        client = MSNClient(
            email,
            PASSWORD,
            endpoints=endpoints if endpoints is not None else self.endpoints,
            observer=recorder,
            reactor=reactor,
            identity=ClientIdentity(machineGuid=newMachineGuid(), placeName=place),
            **clientArgs,
        )
        session = await client.login()
        self.addCleanup(self._logout, session)
        return session, recorder

    async def _logout(self, session: Any) -> None:
        try:
            await session.logout()
        except Exception:
            pass

    def sees(self, session: Any, email: str, check: Callable[[Any], bool]) -> Callable[[], bool]:
        def holds() -> bool:
            contact = session.contacts.get(email)
            return contact is not None and check(contact)

        return holds

    async def roamed(self, check: Callable[[Any], bool], what: str) -> None:
        """
        Wait until the server's roamed profile of alice satisfies C{check}
        (the client writes it in the background).
        """

        def holds() -> bool:
            profile = self.network.roamingProfiles.getRoamingProfile(ALICE)
            return profile is not None and check(profile)

        self.assertTrue(await pollUntil(holds, 10.0), f"roamed profile never had {what}")

    # -- the roaming profile ----------------------------------------------------------

    async def test_profileFollowsToTheNextPlace(self) -> None:
        """
        alice changes her name, message and picture at place 1; place 2,
        signed in afterwards without giving a name or message, starts with
        them (the message exists nowhere but in the roamed profile) and can
        fetch the picture; bob sees the name and message.
        """
        bob, bobEvents = await self.signIn(BOB, "bob")
        one, _ = await self.signIn(ALICE, "one")
        self.assertIsNotNone(one.roaming)
        await one.setDisplayName("Alice in Wonderland")
        await one.setPersonalMessage("down the rabbit hole")
        self.assertTrue(await one.roamDisplayPicture(PNG, "image/png"))
        await self.roamed(
            lambda p: p.displayName == "Alice in Wonderland" and p.personalMessage == "down the rabbit hole",
            "the new name and message",
        )
        await self.roamed(lambda p: p.picture is not None and p.picture.data == PNG, "the picture")

        two, _ = await self.signIn(ALICE, "two")
        self.assertEqual(two.displayName, "Alice in Wonderland")
        self.assertEqual(two.personalMessage, "down the rabbit hole")
        self.assertEqual(await two.fetchRoamedPicture(), PNG)

        await bobEvents.waitFor(
            self.sees(bob, ALICE, lambda c: c.displayName == "Alice in Wonderland"), "alice's new name at bob"
        )
        await bobEvents.waitFor(
            self.sees(bob, ALICE, lambda c: c.personalMessage == "down the rabbit hole"), "alice's message at bob"
        )

    async def test_pictureFollowsToTheNextPlace(self) -> None:
        """
        The picture alice sets with L{Session.setDisplayPicture} at place 1
        is roamed; place 2, signed in afterwards with no picture of its
        own, publishes it from the start, and bob fetches the same bytes
        from place 2 once place 1 is gone.
        """
        bob, bobEvents = await self.signIn(BOB, "bob")
        one, _ = await self.signIn(ALICE, "one")
        await one.setDisplayPicture(PNG)
        await self.roamed(lambda p: p.picture is not None and p.picture.data == PNG, "the picture")
        await one.logout()

        two, _ = await self.signIn(ALICE, "two")
        self.assertIsNotNone(two.displayPicture)
        self.assertEqual(two.displayPicture.sha1d, one.displayPicture.sha1d)
        await bobEvents.waitFor(
            self.sees(bob, ALICE, lambda c: c.picture is not None and c.picture.sha1d == two.displayPicture.sha1d),
            "alice's roamed picture at bob",
        )
        self.assertEqual(await bob.fetchDisplayPicture(ALICE), PNG)

    async def test_callerValuesWinOverRoamed(self) -> None:
        """
        A name and message given to the client win over the roamed ones,
        and an empty message clears the roamed copy for the next place.
        """
        one, _ = await self.signIn(ALICE, "one")
        await one.setPersonalMessage("roamed message")
        await self.roamed(lambda p: p.personalMessage == "roamed message", "the message")
        two, _ = await self.signIn(ALICE, "two", displayName="Own Name", personalMessage="own message")
        self.assertEqual(two.displayName, "Own Name")
        self.assertEqual(two.personalMessage, "own message")
        await two.setPersonalMessage("")
        await self.roamed(lambda p: p.personalMessage in ("", None), "the cleared message")
        three, _ = await self.signIn(ALICE, "three")
        self.assertEqual(three.personalMessage, "")

    async def test_storageOutageDoesNotFailLogin(self) -> None:
        """
        With the storage service answering 500 (and, separately, not
        listening at all), the login succeeds with the address-book name,
        and a later change still reaches the NS while the roaming write is
        only logged and retried.
        """
        broken = Broken()
        listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(broken))
        self.addCleanup(listening.stopListening)
        down = self.endpoints.replace(
            storage=f"http://127.0.0.1:{listening.getHost().port}/storageservice/SchematizedStore.asmx"
        )
        session, _ = await self.signIn(ALICE, "one", endpoints=down)
        self.assertTrue(session.isActive)
        self.assertEqual(session.displayName, "Alice")
        self.assertGreaterEqual(broken.requests, 1)
        self.assertEqual(await session.roamDisplayPicture(PNG), False)
        await session.setPersonalMessage("still works")
        self.assertEqual(session.personalMessage, "still works")
        self.assertIsNone(self.network.roamingProfiles.getRoamingProfile(ALICE))

        [port] = freePorts(1)
        nowhere = self.endpoints.replace(storage=f"http://127.0.0.1:{port}/storageservice/SchematizedStore.asmx")
        other, _ = await self.signIn(ALICE, "two", endpoints=nowhere)
        self.assertTrue(other.isActive)
        self.assertEqual(other.personalMessage, "")

    # -- places -------------------------------------------------------------------------

    async def test_signOutOtherPlace(self) -> None:
        """
        alice at two places: place 1 lists place 2 by name (and heard it
        appear), signs it out; place 2's session ends with "signed out from
        another place" and place 1 hears it go and stays signed in.
        """
        one, oneEvents = await self.signIn(ALICE, "Laptop")
        two, twoEvents = await self.signIn(ALICE, "Phone")
        await oneEvents.waitFor(
            lambda: [p.name for p in one.otherPlaces.values()] == ["Phone"], "place 2 by name at place 1"
        )
        [(guid, place)] = one.otherPlaces.items()
        self.assertEqual(guid, two.machineGuid)
        # Announced once, when it appeared (its name may follow in a later UBX).
        self.assertEqual([g for g, _ in oneEvents.named("placeSignedIn")], [two.machineGuid])
        self.assertNotIn(one.machineGuid, one.otherPlaces)

        await one.signOutPlace(place.guid)
        self.assertEqual(await two.whenEnded(), REASON_SIGNED_OUT_ELSEWHERE)
        self.assertEqual(twoEvents.named("signedOut"), [(REASON_SIGNED_OUT_ELSEWHERE,)])
        await oneEvents.waitFor(lambda: bool(oneEvents.named("placeSignedOut")), "place 2 gone at place 1")
        self.assertEqual(oneEvents.named("placeSignedOut"), [(two.machineGuid, "Phone")])
        self.assertEqual(len(oneEvents.named("placeSignedIn")), 1)
        self.assertEqual(one.otherPlaces, {})
        self.assertTrue(one.isActive)
        with self.assertRaises(ValueError):
            await one.signOutPlace(one.machineGuid)

    async def test_signOutEverywhereElse(self) -> None:
        """
        With three places, one C{UUN} per other place signs both others
        out; the asking place stays.
        """
        one, oneEvents = await self.signIn(ALICE, "one")
        two, _ = await self.signIn(ALICE, "two")
        three, _ = await self.signIn(ALICE, "three")
        await oneEvents.waitFor(
            lambda: sorted(p.name for p in one.otherPlaces.values()) == ["three", "two"], "two other places at place 1"
        )
        gone = await one.signOutEverywhereElse()
        self.assertEqual(sorted(p.name for p in gone), ["three", "two"])
        self.assertEqual(await two.whenEnded(), REASON_SIGNED_OUT_ELSEWHERE)
        self.assertEqual(await three.whenEnded(), REASON_SIGNED_OUT_ELSEWHERE)
        await oneEvents.waitFor(lambda: one.otherPlaces == {}, "no other place left")
        self.assertTrue(one.isActive)
        self.assertEqual(len(self.network.onlineSessions(ALICE)), 1)

    async def test_mpopSettingKept(self) -> None:
        """
        The MPOP choice is kept in the address book: the next place reads it.
        """
        one, _ = await self.signIn(ALICE, "one")
        self.assertIs(one.mpopMode, MpopMode.KEEP_OTHER_PLACES)
        self.assertIs(await one.setMpopMode(MpopMode.SIGN_OUT_OTHER_PLACES), MpopMode.SIGN_OUT_OTHER_PLACES)
        self.assertIs(one.mpopMode, MpopMode.SIGN_OUT_OTHER_PLACES)
        two, _ = await self.signIn(ALICE, "two")
        self.assertIs(two.mpopMode, MpopMode.SIGN_OUT_OTHER_PLACES)

    # -- privacy ------------------------------------------------------------------------

    async def test_onlyMyAllowList(self) -> None:
        """
        "Only my allow list": carol, a stranger who adds alice, sees her
        offline and cannot start a conversation with her, while alice sees
        carol as pending; the choice is stored (the next place reads it).
        Switching back restores the default: carol sees alice online and
        reaches her.
        """
        alice, aliceEvents = await self.signIn(ALICE, "one")
        self.assertIs(alice.privacy, Privacy.EVERYONE_NOT_BLOCKED)
        self.assertIs(await alice.setPrivacy(Privacy.ALLOW_LIST_ONLY), Privacy.ALLOW_LIST_ONLY)
        self.assertIs(alice.privacy, Privacy.ALLOW_LIST_ONLY)
        account = self.network.store.get(ALICE)
        assert account is not None
        self.assertEqual(account.blp, "BL")

        carol, carolEvents = await self.signIn(CAROL, "carol")
        await carol.addContact(ALICE)
        await aliceEvents.waitFor(lambda: bool(aliceEvents.named("contactAddedYou")), "carol's request at alice")
        pending = alice.contacts.get(CAROL)
        assert pending is not None
        self.assertTrue(pending.lists & Lists.PENDING)
        self.assertIs(carol.contacts.get(ALICE).status, Status.OFFLINE)
        with self.assertRaises((ContactOffline, ServerError)):
            await carol.openConversation(ALICE)

        later, _ = await self.signIn(ALICE, "two")
        self.assertIs(later.privacy, Privacy.ALLOW_LIST_ONLY)
        await later.logout()

        self.assertIs(await alice.setPrivacy(Privacy.EVERYONE_NOT_BLOCKED), Privacy.EVERYONE_NOT_BLOCKED)
        self.assertEqual(account.blp, "AL")
        await carolEvents.waitFor(self.sees(carol, ALICE, lambda c: c.isOnline), "alice online at carol")
        conversation = await carol.openConversation(ALICE)
        self.assertIn(ALICE, conversation.participants)
        self.assertTrue(alice.contacts.get(CAROL).lists & Lists.PENDING)

    # -- current media and UBN ------------------------------------------------------------

    async def test_currentMedia(self) -> None:
        """
        bob's "now playing" reaches alice as an event and as
        C{contact.nowPlaying}; stopping it clears both.
        """
        alice, aliceEvents = await self.signIn(ALICE, "one")
        bob, _ = await self.signIn(BOB, "bob")
        await bob.setCurrentMedia("Song", "Artist")
        await aliceEvents.waitFor(
            lambda: (BOB, "Song - Artist") in aliceEvents.named("contactCurrentMediaChanged"), "bob's song"
        )
        self.assertEqual(alice.contacts.get(BOB).nowPlaying, "Song - Artist")
        self.assertEqual(alice.contacts.get(BOB).currentMedia, formatCurrentMedia("Song", "Artist"))
        await bob.setCurrentMedia("")
        await aliceEvents.waitFor(lambda: (BOB, "") in aliceEvents.named("contactCurrentMediaChanged"), "no song")
        self.assertEqual(alice.contacts.get(BOB).nowPlaying, "")

    async def test_userNotifications(self) -> None:
        """
        UBNs from bob are parsed: a listed type reaches the observer as a
        typed value, an unknown one is only logged, and bob's "sign out"
        request is reported but not obeyed (only alice's own account may
        ask); the session stays up throughout, and a non-numeric type is
        refused by the server.
        """
        alice, aliceEvents = await self.signIn(ALICE, "one")
        bob, _ = await self.signIn(BOB, "bob")
        await bob.protocol.sendUserNotification(ALICE, UnknownNotification("99", b"mystery"))
        await bob.protocol.sendUserNotification(ALICE, PlaceSignOut())
        await bob.protocol.sendUserNotification(ALICE, RTCActivity(3, ("a", "b")))
        await bob.protocol.sendUserNotification(ALICE, OpaqueNotification(NotificationType.XML_DATA, b"<x/>"))
        await aliceEvents.waitFor(lambda: len(aliceEvents.named("notificationReceived")) == 3, "three notifications")
        bodies = [n.body for (n,) in aliceEvents.named("notificationReceived")]
        # The unknown type is left out; bob's sign-out request is told, not obeyed.
        self.assertEqual(
            bodies,
            [PlaceSignOut(), RTCActivity(3, ("a", "b")), OpaqueNotification(NotificationType.XML_DATA, b"<x/>")],
        )
        self.assertEqual({n.sender for (n,) in aliceEvents.named("notificationReceived")}, {BOB})
        self.assertTrue(alice.isActive)
        with self.assertRaises(ServerError):
            await bob.protocol.sendCommand("UUN", ALICE, "x", payload=b"hi")

    async def test_uunNotRelayedToStrangerOfAllowListOnly(self) -> None:
        """
        With "only my allow list", a UUN from carol is acknowledged like any
        other but never reaches alice.
        """
        alice, aliceEvents = await self.signIn(ALICE, "one")
        await alice.setPrivacy(Privacy.ALLOW_LIST_ONLY)
        carol, _ = await self.signIn(CAROL, "carol")
        bob, _ = await self.signIn(BOB, "bob")
        await carol.protocol.sendUserNotification(ALICE, RTCActivity(1))
        await bob.protocol.sendUserNotification(ALICE, RTCActivity(2))
        await aliceEvents.waitFor(lambda: bool(aliceEvents.named("notificationReceived")), "bob's notification")
        self.assertEqual([n.sender for (n,) in aliceEvents.named("notificationReceived")], [BOB])

    async def test_uunNotRelayedToHiddenButToOwnPlaces(self) -> None:
        """
        A hidden account gets no UUN from bob (he is answered like any
        other), while its own places still reach each other.
        """
        one, oneEvents = await self.signIn(ALICE, "one", initialStatus=Status.HIDDEN)
        two, _ = await self.signIn(ALICE, "two", initialStatus=Status.HIDDEN)
        bob, _ = await self.signIn(BOB, "bob")
        await bob.protocol.sendUserNotification(ALICE, RTCActivity(1))
        await two.protocol.sendUserNotification(ALICE, RTCActivity(2), one.machineGuid)
        await oneEvents.waitFor(lambda: bool(oneEvents.named("notificationReceived")), "the own place's notification")
        [(notification,)] = oneEvents.named("notificationReceived")
        self.assertEqual((notification.sender, notification.body), (ALICE, RTCActivity(2)))
        self.assertEqual(notification.senderEndpoint, two.machineGuid)
