"""
L{msnp.pictures} without sockets: the picture checks, the cache, the
glue between conversations and the P2P manager (two L{DisplayPictures}
wired to each other in memory), the presence event, and the small
additions to C{twistd msnp} and the console.
"""

from __future__ import annotations

import copy
import os
import pickle
import random
from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from msnp.console import Console
from msnp.contacts import Contact, ContactList
from msnp.conversation import Conversation, ConversationManager
from msnp.mime import parseMime
from msnp.p2p.errors import TransferInterrupted
from msnp.p2p.msnobject import MSNObject, parsePicture, pictureIdentity, sha1Base64
from msnp.pictures import MAX_PICTURE_SIZE, DisplayPictures, PictureCache, checkPicture
from msnp.tap import Options, makeClient

from test.support import EventRecorder, tempDirectory, writeTempFile

PNG = b"\x89PNG\r\n\x1a\n"


def png(size: int, seed: int = 1) -> bytes:
    return PNG + random.Random(seed).randbytes(size - len(PNG))


class CheckTests(SynchronousTestCase):
    def test_refused(self) -> None:
        """
        Empty data, data over the cap, anything but PNG/JPEG and non-bytes
        are refused with a L{ValueError} that says why.
        """
        for bad, why in ((b"", "empty"), (png(MAX_PICTURE_SIZE + 1), "cap"), (b"GIF89a....", "PNG or JPEG"),
                         ("text", "bytes")):
            error = self.assertRaises(ValueError, checkPicture, bad)
            self.assertIn(why, str(error))

    def test_accepted(self) -> None:
        """
        PNG and JPEG up to the cap pass.
        """
        checkPicture(png(MAX_PICTURE_SIZE))
        checkPicture(b"\xff\xd8\xff\xe0" + b"j" * 100)


class CacheTests(SynchronousTestCase):
    def test_memoryBounded(self) -> None:
        """
        The memory cache drops the least recently used pictures past its
        byte budget.
        """
        cache = PictureCache(memoryBytes=3000)
        pictures = [png(1000, seed) for seed in range(5)]
        for data in pictures:
            cache.put(sha1Base64(data), data)
        self.assertIsNone(cache.get(sha1Base64(pictures[0])))
        self.assertEqual(cache.get(sha1Base64(pictures[4])), pictures[4])

    def test_diskSurvivesAndIsVerified(self) -> None:
        """
        A second cache on the same directory finds the picture; a file
        whose content no longer matches its SHA1D is ignored.
        """
        directory = os.path.join(tempDirectory(self), "sub")
        data = png(500)
        sha1d = sha1Base64(data)
        PictureCache(directory).put(sha1d, data)
        self.assertEqual(PictureCache(directory).get(sha1d), data)
        (name,) = os.listdir(directory)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"tampered")
        self.assertIsNone(PictureCache(directory).get(sha1d))

    def test_putChecks(self) -> None:
        """
        Data is never stored under a SHA1D it does not have; a hostile
        SHA1D never names a file outside the directory.
        """
        cache = PictureCache(os.path.join(tempDirectory(self), "sub"))
        self.assertRaises(ValueError, cache.put, sha1Base64(b"a"), b"b")
        self.assertIsNone(cache.get("../../etc/passwd"))


class Pair:
    """
    Two L{DisplayPictures} whose P2P payloads go straight to each other
    (what the conversations do over a switchboard).
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.sent: list[tuple[str, bytes]] = []
        self.queue: list[Any] = []
        self.alice = DisplayPictures("alice@example.com", self.opener("alice@example.com"), self.clock)
        self.bob = DisplayPictures("bob@example.com", self.opener("bob@example.com"), self.clock)

    def opener(self, me: str) -> Any:
        pair = self

        class FakeConversation:
            def __init__(self, peer: str) -> None:
                self.contacts = frozenset({peer})

            def sendP2P(self, payload: bytes) -> "Deferred[None]":
                pair.sent.append((me, payload))
                other = pair.bob if me == "alice@example.com" else pair.alice
                d: Deferred[None] = Deferred()

                def deliver() -> None:
                    other.p2pReceived(self, me, payload)  # type: ignore[arg-type]
                    d.callback(None)

                pair.queue.append(deliver)
                return d

        return lambda peer: succeed(FakeConversation(peer))

    def pump(self) -> None:
        """
        Deliver everything sent, and what that makes the other side send.
        """
        while self.queue:
            self.queue.pop(0)()


class GlueTests(SynchronousTestCase):
    def test_fetchServeAndCache(self) -> None:
        """
        bob fetches alice's published picture; the second fetch comes from
        the cache; two simultaneous fetches share one transfer.
        """
        pair = Pair()
        obj = pair.alice.publish(png(5000))
        assert obj is not None
        first, second = pair.bob.fetch(obj), pair.bob.fetch(obj)
        pair.pump()
        self.assertEqual(self.successResultOf(first), png(5000))
        self.assertEqual(self.successResultOf(second), png(5000))
        self.assertEqual(self.successResultOf(pair.bob.fetch(obj)), png(5000))
        self.assertEqual((pair.bob.fetchCount, pair.alice.servedCount), (1, 1))

    def test_unpublishedDeclined(self) -> None:
        """
        A request for a picture alice no longer serves fails (declined),
        unless she is signed in elsewhere: then she stays silent and the
        fetch waits for another place (here: times out).
        """
        pair = Pair()
        obj = pair.alice.publish(png(300))
        assert obj is not None
        pair.alice.publish(None)
        declined = pair.bob.fetch(obj)
        pair.pump()
        self.failureResultOf(declined)
        pair.alice._otherPlaces = lambda: True
        d = pair.bob.fetch(obj)
        pair.pump()
        self.assertNoResult(d)
        pair.clock.advance(61)
        self.failureResultOf(d)

    def test_switchboardClosedInterrupts(self) -> None:
        """
        The one-to-one switchboard's end fails that peer's fetches with
        L{TransferInterrupted}; a group switchboard's end does not.
        """
        pictures = DisplayPictures("bob@example.com", lambda peer: Deferred(), Clock())
        obj = MSNObject.fromData("alice@example.com", png(100))
        d = pictures.fetch(obj)
        group: Any = type("C", (), {"contacts": frozenset({"alice@example.com", "carol@example.com"})})()
        pictures.p2pSwitchboardClosed(group, frozenset({"alice@example.com"}))
        self.assertNoResult(d)
        single: Any = type("C", (), {"contacts": frozenset({"alice@example.com"})})()
        pictures.p2pSwitchboardClosed(single, frozenset({"alice@example.com"}))
        self.failureResultOf(d, TransferInterrupted)


class ConversationHookTests(SynchronousTestCase):
    def test_p2pPayloadReachesReceiver(self) -> None:
        """
        A switchboard message of type C{application/x-msnmsgrp2p} goes to
        the manager's P2P receiver with its payload intact (binary part
        included); other types do not.
        """
        got: list[tuple[str, bytes]] = []

        class Receiver:
            def p2pReceived(self, conversation: Any, sender: str, payload: bytes) -> None:
                got.append((sender, payload))

            def p2pSwitchboardClosed(self, conversation: Any, peers: frozenset[str]) -> None:
                pass

        manager = ConversationManager("bob@example.com", "{g}", lambda: "Bob", lambda: Deferred(),
                                      reactor=Clock(), p2p=Receiver())
        conversation = Conversation(manager, ["alice@example.com"])
        switchboard: Any = object()
        conversation._switchboard = switchboard
        payload = (b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: bob@example.com\r\n\r\n"
                   + bytes(range(256)) + b"\r\n\r\n\0\0\0\x0c")
        conversation.switchboardMessage(switchboard, "alice@example.com", "Alice", parseMime(payload))
        conversation.switchboardMessage(
            switchboard, "alice@example.com", "Alice",
            parseMime(b"MIME-Version: 1.0\r\nContent-Type: text/x-keepalive\r\n\r\n"),
        )
        self.assertEqual(got, [("alice@example.com", payload)])


class PresenceTests(SynchronousTestCase):
    def test_contactPicture(self) -> None:
        """
        L{parsePicture} (what sets C{Contact.picture}) parses the announced object; junk is no picture;
        the identity ignores everything but creator, SHA1D and type.
        """
        obj = MSNObject.fromData("alice@example.com", png(100))
        self.assertEqual(parsePicture(obj.toXml()), obj)
        self.assertIsNone(parsePicture("<junk"))
        self.assertIsNone(parsePicture(None))
        self.assertEqual(pictureIdentity(obj), ("alice@example.com", obj.sha1d, 3))
        self.assertIsNone(pictureIdentity(None))

    def test_eventOnNewSha1dOnly(self) -> None:
        """
        C{contactPictureChanged} fires when NLN brings a new SHA1D (or
        none), not when an NLN repeats the same object.
        """
        from msnp.nsmessages import PresenceUpdate, parsePresence
        from msnp.notification import NotificationProtocol
        from msnp.wire import Command, encodeParameter

        observer = EventRecorder("bob", clock=Clock())
        from msnp.endpoints import ClientIdentity

        protocol = NotificationProtocol("bob@example.com", ClientIdentity(), clock=Clock(), observer=observer)
        protocol.state.contacts = ContactList()
        protocol.state.contacts.add(Contact("alice@example.com"))
        obj = MSNObject.fromData("alice@example.com", png(100))

        def nln(status: str, objectField: str) -> None:
            update: PresenceUpdate = parsePresence(
                Command("NLN", None, (status, "1:alice@example.com", "Alice", "2416214052:134349824", objectField))
            )
            protocol.applyPresence(update)

        nln("NLN", encodeParameter(obj.toXml()))
        nln("BSY", encodeParameter(obj.toXml()))
        nln("BSY", "0")
        self.assertEqual([o for _, _, o in observer.named("contactPictureChanged")], [obj, None])

    def _protocolWith(self, observer: object) -> Any:
        from msnp.endpoints import ClientIdentity
        from msnp.notification import NotificationProtocol

        protocol = NotificationProtocol("bob@example.com", ClientIdentity(), clock=Clock(), observer=observer)
        protocol.makeConnection(StringTransport())
        protocol.state.contacts = ContactList()
        protocol.state.contacts.add(Contact("alice@example.com"))
        return protocol

    def _announce(self, protocol: Any, obj: Optional[MSNObject], status: str = "NLN") -> None:
        from msnp.wire import encodeParameter

        field = "0" if obj is None else encodeParameter(obj.toXml())
        protocol.dataReceived(f"NLN {status} 1:alice@example.com Alice 2416214052:134349824 {field}\r\n".encode("ascii"))

    def test_pictureParsedWhenRead(self) -> None:
        """
        Nobody listening for C{contactPictureChanged} (an
        L{ObserverBase} subclass that leaves it alone), the announced
        object is parsed when C{Contact.picture} is read: the same
        L{MSNObject} as when parsed at once, junk still no picture, and
        copies of the contact read the same.
        """
        from msnp.handlers import ObserverBase

        class StatusOnly(ObserverBase):
            def __init__(self) -> None:
                self.statuses: list[Any] = []

            def contactStatusChanged(self, session: Any, contact: Any, status: Any) -> None:
                self.statuses.append(status)

        observer = StatusOnly()
        protocol = self._protocolWith(observer)
        alice = protocol.state.contacts.get("alice@example.com")
        obj = MSNObject.fromData("alice@example.com", png(100))
        self._announce(protocol, obj)
        self.assertEqual(len(observer.statuses), 1)
        twin = copy.deepcopy(alice)
        self.assertEqual(alice.picture, obj)
        self.assertEqual(twin.picture, obj)
        self.assertEqual(pickle.loads(pickle.dumps(twin)).picture, obj)
        self.assertEqual(alice.msnObject, obj.toXml())

        protocol.dataReceived(b"NLN NLN 1:alice@example.com Alice 0:0 %3Cjunk\r\n")
        self.assertEqual(alice.msnObject, "<junk")
        self.assertIsNone(alice.picture)
        self._announce(protocol, None)
        self.assertIsNone(alice.msnObject)
        self.assertIsNone(alice.picture)
        # Assigned, the picture is what was assigned.
        alice.picture = obj
        self.assertIs(alice.picture, obj)

    def test_listenerAddedLater(self) -> None:
        """
        An observer that starts listening for pictures after objects were
        announced without one hears the next new picture, compared with
        the last one announced (not with nothing).
        """
        from msnp.interfaces import Observers

        observers = Observers()
        protocol = self._protocolWith(observers)
        first = MSNObject.fromData("alice@example.com", png(100))
        second = MSNObject.fromData("alice@example.com", png(200))
        self._announce(protocol, first)
        recorder = EventRecorder("bob", clock=Clock())
        observers.add(recorder)
        self._announce(protocol, first, "BSY")
        self.assertEqual(recorder.named("contactPictureChanged"), [])
        self._announce(protocol, second, "AWY")
        self.assertEqual([o for _, _, o in recorder.named("contactPictureChanged")], [second])

    def test_observes(self) -> None:
        """
        L{observes}: an observer listens for an event when it has a method
        for it that is not L{ObserverBase}'s no-op; for L{Observers}, when
        any of them does.
        """
        from msnp.handlers import ObserverBase
        from msnp.interfaces import Observers, observes

        class Pictures(ObserverBase):
            def contactPictureChanged(self, session: Any, contact: Any, msnObject: Any) -> None:
                pass

        class Plain:
            def contactPictureChanged(self, session: Any, contact: Any, msnObject: Any) -> None:
                pass

        self.assertFalse(observes(None, "contactPictureChanged"))
        self.assertFalse(observes(ObserverBase(), "contactPictureChanged"))
        self.assertFalse(observes(object(), "contactPictureChanged"))
        self.assertTrue(observes(Pictures(), "contactPictureChanged"))
        self.assertTrue(observes(Plain(), "contactPictureChanged"))
        self.assertFalse(observes(Observers([ObserverBase(), object()]), "contactPictureChanged"))
        self.assertTrue(observes(Observers([ObserverBase(), Plain()]), "contactPictureChanged"))
        self.assertFalse(observes(Observers(), "contactPictureChanged"))


class OptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options(environ={"MSNP_PASSWORD": "secret"})
        options.parseOptions(["--account", "bot@example.com", *args])
        return options

    def test_displayPicture(self) -> None:
        """
        C{--display-picture FILE} reads and checks the picture; the client
        publishes it at every login and keeps pictures in
        C{--picture-cache}.
        """
        path = writeTempFile(self, png(2000))
        cache = os.path.join(tempDirectory(self), "sub")
        options = self.parse("--display-picture", path, "--picture-cache", cache)
        client = makeClient(options, reactor=Clock())
        self.assertEqual(client.displayPicture, png(2000))
        self.assertEqual(client.pictureCache.directory, cache)

    def test_badDisplayPicture(self) -> None:
        """
        A missing file, or one that is not PNG/JPEG, is a usage error.
        """
        self.assertRaises(usage.UsageError, self.parse, "--display-picture", os.path.join(tempDirectory(self), "sub"))
        error = self.assertRaises(usage.UsageError, self.parse, "--display-picture", writeTempFile(self, b"GIF89a"))
        self.assertIn("PNG or JPEG", str(error))


class ConsoleTests(SynchronousTestCase):
    def test_setAndSave(self) -> None:
        """
        C{/picture FILE} publishes the file; C{/picture none} clears;
        C{/getpicture EMAIL FILE} saves the fetched bytes.
        """
        calls: list[Any] = []
        obj = MSNObject.fromData("me@example.com", png(100))

        class Session:
            account = "me@example.com"
            status = None
            contacts: list[Any] = []

            def setDisplayPicture(self, data: Optional[bytes]) -> Any:
                calls.append(data)
                return succeed(obj if data else None)

            def fetchDisplayPicture(self, email: str) -> Any:
                calls.append(email)
                return succeed(b"picture bytes")

        lines: list[str] = []
        console = Console(lines.append, clock=Clock())
        console.session = Session()
        path = writeTempFile(self, png(100))
        target = os.path.join(tempDirectory(self), "sub")
        console.command(f"/picture {path}")
        console.command("/picture none")
        console.command(f"/getpicture bob@example.com {target}")
        self.assertEqual(calls, [png(100), None, "bob@example.com"])
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"picture bytes")
        self.assertTrue(any("removed" in line for line in lines), lines)
