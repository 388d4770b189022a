"""
Unit tests (StringTransport, no sockets) of what issue #17 phase 2 adds to
the NS connection: typed C{UBN} handling, C{UUN} sending, the
C{placeSignedIn}/C{placeSignedOut} and C{contactCurrentMediaChanged}
events; and L{msnp.roaming.cidFromHex}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import formatCurrentMedia
from msnp.errors import ServerError
from msnp.notification import REASON_SIGNED_OUT_ELSEWHERE
from msnp.roaming import cidFromHex
from msnp.uun import EverywhereSignOut, NotificationError, PlaceSignOut, SwitchboardClosed, UnknownNotification

from test.support import GUID_A, GUID_B, GUID_C, NotificationHarness


def ownUBX(*places: tuple[str, str]) -> bytes:
    """
    alice's own C{UBX} listing C{places} (GUID, name).
    """
    endpoints = "".join(
        f'<EndpointData id="{guid}"><Capabilities>0:0</Capabilities></EndpointData>'
        f'<PrivateEndpointData id="{guid}"><EpName>{name}</EpName></PrivateEndpointData>'
        for guid, name in places
    )
    payload = f"<Data><PSM></PSM><CurrentMedia></CurrentMedia>{endpoints}</Data>".encode()
    return b"UBX 1:alice@example.com %d\r\n" % len(payload) + payload


class UserNotificationTests(SynchronousTestCase):
    """
    C{UBN} read with L{msnp.uun.parseUBN}; C{UUN} built with its codec.
    """

    def test_everywhereFromOwnAccount(self) -> None:
        """
        C{gtfo} (type 8) from our own account ends this place too.
        """
        h = NotificationHarness(self)
        h.receive(f"UBN alice@example.com;{GUID_C} 8 4\r\ngtfo".encode())
        self.assertEqual(h.ended, [REASON_SIGNED_OUT_ELSEWHERE])

    def test_wrongPayloadIsNotASignOut(self) -> None:
        """
        Type 4 from our own account with another payload is an unknown
        notification: logged, the place stays, the observer hears nothing.
        """
        h = NotificationHarness(self)
        h.receive(b"UBN alice@example.com 4 5\r\nhello")
        self.assertEqual(h.ended, [])
        self.assertEqual(h.observer.named("notificationReceived"), [])

    def test_listedTypeToObserver(self) -> None:
        """
        A listed type the library does not act on reaches the observer as
        a typed value with the sender.
        """
        h = NotificationHarness(self)
        h.receive(b"UBN bob@example.com 5 10\r\n1234;abcde")
        [(session, notification)] = h.observer.named("notificationReceived")
        self.assertEqual(session, "the session")
        self.assertEqual(notification.sender, "bob@example.com")
        self.assertEqual(notification.body, SwitchboardClosed("1234", "abcde"))

    def test_strangersSignOutReportedNotObeyed(self) -> None:
        """
        bob's "sign out" is told to the observer but does not end the place.
        """
        h = NotificationHarness(self)
        h.receive(b"UBN bob@example.com 8 4\r\ngtfo")
        self.assertEqual(h.ended, [])
        self.assertEqual([n.body for _, n in h.observer.named("notificationReceived")], [EverywhereSignOut()])

    def test_malformedIgnored(self) -> None:
        """
        A C{UBN} with no usable sender is logged and ignored; the stream goes on.
        """
        h = NotificationHarness(self)
        h.receive(b"UBN nobody 1 2\r\nhiUBN bob@example.com 99 1\r\nx")
        self.assertEqual(h.ended, [])
        self.assertEqual(h.observer.named("notificationReceived"), [])
        self.assertTrue(h.protocol.transport.connected)  # type: ignore[union-attr]

    def test_sendPlaceSignOut(self) -> None:
        """
        L{sendUserNotification} writes C{UUN trid address;{epid} 4 14} and
        fires on C{UUN trid OK}; C{217} fails it.
        """
        h = NotificationHarness(self)
        d = h.protocol.sendUserNotification("Alice@Example.com", PlaceSignOut(), GUID_B.lower())
        sent = h.take()
        trid = int(sent.split(b" ")[1])
        self.assertEqual(sent, f"UUN {trid} alice@example.com;{GUID_B} 4 14\r\ngoawyplzthxbye".encode())
        h.receive(f"UUN {trid} OK\r\n".encode())
        self.assertEqual(self.successResultOf(d).arguments, ("OK",))
        d = h.protocol.sendUserNotification("bob@example.com", PlaceSignOut())
        trid = int(h.take().split(b" ")[1])
        h.receive(f"217 {trid}\r\n".encode())
        self.assertEqual(self.failureResultOf(d, ServerError).value.code, 217)

    def test_unusableNotSent(self) -> None:
        """
        A bad recipient or a non-numeric type raises before anything is sent.
        """
        h = NotificationHarness(self)
        self.assertRaises(NotificationError, h.protocol.sendUserNotification, "not an address", PlaceSignOut())
        self.assertRaises(NotificationError, h.protocol.sendUserNotification, "bob@example.com", UnknownNotification("x"))
        self.assertEqual(h.take(), b"")


class PlaceEventTests(SynchronousTestCase):
    """
    Our own C{UBX}/C{FLN} announce the other places that come and go.
    """

    def test_appearAndGo(self) -> None:
        """
        A new GUID in our own C{UBX} is C{placeSignedIn}, one that left is
        C{placeSignedOut}; this place is never announced, a repeated list
        announces nothing.
        """
        h = NotificationHarness(self)
        h.receive(ownUBX((GUID_A, "here")))
        self.assertEqual(h.observer.named("placeSignedIn"), [])
        h.receive(ownUBX((GUID_A, "here"), (GUID_B, "Phone")))
        [(session, place)] = h.observer.named("placeSignedIn")
        self.assertEqual((session, place.guid, place.name), ("the session", GUID_B, "Phone"))
        h.receive(ownUBX((GUID_A, "here"), (GUID_B, "Phone")))
        self.assertEqual(len(h.observer.named("placeSignedIn")), 1)
        h.receive(ownUBX((GUID_A, "here")))
        [(_, gone)] = h.observer.named("placeSignedOut")
        self.assertEqual((gone.guid, gone.name), (GUID_B, "Phone"))

    def test_flnOfOwnPlace(self) -> None:
        """
        C{FLN 1:alice;{epid}} of another place announces it gone.
        """
        h = NotificationHarness(self)
        h.receive(ownUBX((GUID_A, "here"), (GUID_C, "Desk")))
        h.receive(f"FLN 1:alice@example.com;{GUID_C}\r\n".encode())
        self.assertEqual([p.name for _, p in h.observer.named("placeSignedOut")], ["Desk"])


class CurrentMediaTests(SynchronousTestCase):
    """
    A contact's C{CurrentMedia} as an event and C{Contact.nowPlaying}.
    """

    def test_changes(self) -> None:
        """
        Starting and stopping "now playing" are told once each; a PSM
        change alone is not a media change.
        """
        h = NotificationHarness(self)
        payload = f"<Data><PSM>hi</PSM><CurrentMedia>{formatCurrentMedia('Song', 'Artist')}</CurrentMedia></Data>"
        data = payload.encode()
        h.receive(b"UBX 1:bob@example.com %d\r\n" % len(data) + data)
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.nowPlaying, "Song - Artist")
        self.assertEqual(h.observer.named("contactCurrentMediaChanged"), [("the session", bob, "Song - Artist")])
        data = payload.replace("hi", "hello").encode()
        h.receive(b"UBX 1:bob@example.com %d\r\n" % len(data) + data)
        self.assertEqual(len(h.observer.named("contactCurrentMediaChanged")), 1)
        data = b"<Data><PSM>hello</PSM><CurrentMedia></CurrentMedia></Data>"
        h.receive(b"UBX 1:bob@example.com %d\r\n" % len(data) + data)
        self.assertEqual(h.observer.named("contactCurrentMediaChanged")[-1], ("the session", bob, ""))
        self.assertEqual(bob.nowPlaying, "")

    def test_onlyToListeners(self) -> None:
        """
        The event reaches an L{ObserverBase} subclass that overrides it,
        and an observer leaving it alone still sees the personal message
        event and the raw value.
        """
        from msnp.handlers import ObserverBase

        class Listening(ObserverBase):
            def __init__(self) -> None:
                self.playing: list[str] = []
                self.messages: list[str] = []

            def contactCurrentMediaChanged(self, session: object, contact: object, currentMedia: str) -> None:
                self.playing.append(currentMedia)

            def contactPersonalMessageChanged(self, session: object, contact: object, message: str) -> None:
                self.messages.append(message)

        class Deaf(Listening):
            contactCurrentMediaChanged = ObserverBase.contactCurrentMediaChanged  # type: ignore[assignment]

        for observer, heard in ((Listening(), ["Song - Artist"]), (Deaf(), [])):
            h = NotificationHarness(self)
            h.protocol.observer = observer
            media = formatCurrentMedia("Song", "Artist")
            data = f"<Data><PSM>hi</PSM><CurrentMedia>{media}</CurrentMedia></Data>".encode()
            h.receive(b"UBX 1:bob@example.com %d\r\n" % len(data) + data)
            self.assertEqual(observer.playing, heard)
            self.assertEqual(observer.messages, ["hi"])
            self.assertEqual(h.contact("bob@example.com").currentMedia, media)
            self.assertEqual(h.contact("bob@example.com").nowPlaying, "Song - Artist")


class CidTests(SynchronousTestCase):
    """
    L{cidFromHex}: the SSO's hex CID as the signed decimal the services use.
    """

    def test_values(self) -> None:
        self.assertEqual(cidFromHex("0000000000000010"), 16)
        self.assertEqual(cidFromHex("ffffffffffffffff"), -1)
        self.assertEqual(cidFromHex("8000000000000000"), -(1 << 63))
        for bad in (None, "", "xyz", "1" * 17):
            self.assertIsNone(cidFromHex(bad))


class ScannedPlacesTests(SynchronousTestCase):
    """
    L{msnp.nspresence._placesFor}: the places of a scanned C{UBX} keep the
    contact's equal L{Place}s instead of building new ones.
    """

    def test_unchangedKeepsTheDict(self) -> None:
        """
        The same GUIDs with the same capabilities, in the same order: the
        contact's own dict comes back.
        """
        from msnp.contacts import Place
        from msnp.nspresence import _placesFor

        known = {GUID_A: Place(GUID_A, "1:0"), GUID_B: Place(GUID_B, "2:0")}
        self.assertIs(_placesFor({GUID_A: "1:0", GUID_B: "2:0"}, known), known)

    def test_changes(self) -> None:
        """
        A new order, new capabilities, a place gone or one with more than
        a new L{Place} would hold (a name, idle) give a new dict equal to
        freshly built places; the equal places in it are the known ones.
        """
        from msnp.contacts import Place
        from msnp.nspresence import _placesFor

        a, b = Place(GUID_A, "1:0"), Place(GUID_B, "2:0")
        cases = [
            ({GUID_B: "2:0", GUID_A: "1:0"}, {GUID_A: a, GUID_B: b}),
            ({GUID_A: "1:9", GUID_B: "2:0"}, {GUID_A: a, GUID_B: b}),
            ({GUID_A: "1:0"}, {GUID_A: a, GUID_B: b}),
            ({GUID_A: "1:0", GUID_C: "3:0"}, {GUID_A: a, GUID_B: b}),
            ({GUID_A: "1:0"}, {GUID_A: Place(GUID_A, "1:0", name="home")}),
            ({GUID_A: "1:0"}, {GUID_A: Place(GUID_A, "1:0", idle=True)}),
            ({}, {}),
        ]
        for capabilities, known in cases:
            places = _placesFor(capabilities, known)
            fresh = {guid: Place(guid, caps) for guid, caps in capabilities.items()}
            self.assertEqual(places, fresh)
            self.assertEqual(list(places), list(fresh))
            for guid, place in places.items():
                old = known.get(guid)
                if old == fresh[guid]:
                    self.assertIs(place, old)
                else:
                    self.assertIsNot(place, old)
