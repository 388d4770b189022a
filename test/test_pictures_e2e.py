"""
Display pictures end to end: real L{msnp.client.MSNClient}s on a
L{msnp.server.network.LocalNetwork} over loopback sockets. The picture
object travels in C{CHG} and C{NLN}/C{ILN}, the bytes over P2P v1 inside
switchboard messages relayed by the local switchboard server.

Tests wait for observer events and socket outcomes, never for wall-clock
time; each wait is bounded.
"""

from __future__ import annotations

import os
import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from msnp.capabilities import Capabilities, claimedWithoutFeature
from msnp.endpoints import ClientIdentity, newMachineGuid
from msnp.p2p.errors import TransferInterrupted
from msnp.p2p.msnobject import sha1Base64
from msnp.pictures import MAX_PICTURE_SIZE, NoDisplayPicture

from test.support import (
    CONVERSATION_EVENTS,
    EventRecorder,
    Summary,
    logoutQuietly,
    signIn,
    startLocalNetwork,
    tempDirectory,
)

PASSWORD = "secret-pw"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def png(size: int, seed: int = 1) -> bytes:
    """
    C{size} bytes that start like a PNG and are otherwise random (so no
    two chunks look alike).
    """
    head = b"\x89PNG\r\n\x1a\n"
    return head + random.Random(seed).randbytes(size - len(head))


#: What these tests compare (the only events recorded): pictures and
#: messages without the session.
PICTURE_EVENTS: dict[str, Summary] = {
    "contactPictureChanged": lambda session, contact, msnObject: (contact, msnObject),
    "messageReceived": CONVERSATION_EVENTS["messageReceived"],
}


def pictureOf(recorder: EventRecorder, email: str, sha1d: str) -> "Deferred[None]":
    """
    Fire once C{recorder} heard that C{email} has the picture C{sha1d}.
    """
    return recorder.waitFor(
        lambda: any(
            c.email == email and o is not None and o.sha1d == sha1d for c, o in recorder.named("contactPictureChanged")
        ),
        f"picture {sha1d} of {email}",
    )


class DisplayPictureTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(e, PASSWORD, e.split("@")[0].capitalize()) for e in (ALICE, BOB, CAROL)],
            mutualContacts=[(ALICE, BOB), (ALICE, CAROL)],
            reactor=reactor,
        )

    async def signIn(self, email: str, **clientArgs: Any) -> tuple[Any, EventRecorder]:
        events = EventRecorder(email, PICTURE_EVENTS)
        session = await signIn(self, email, PASSWORD, self.endpoints, events, **clientArgs)
        return session, events

    async def published(self, size: int, seed: int = 1) -> tuple[Any, Any, EventRecorder, bytes]:
        """
        bob signs in, then alice, who sets a picture of C{size} bytes; bob
        has seen it announced.
        """
        bob, bobEvents = await self.signIn(BOB)
        alice, _ = await self.signIn(ALICE)
        data = png(size, seed)
        obj = await alice.setDisplayPicture(data)
        await pictureOf(bobEvents, ALICE, obj.sha1d)
        return alice, bob, bobEvents, data

    async def test_setSeeFetchAndCache(self) -> None:
        """
        alice sets a 1 KB picture: bob hears C{contactPictureChanged} with
        her object (also on the contact), fetches bytes equal to hers; a
        second fetch comes from the cache (no second P2P session, alice
        served once). The capabilities bob sees for alice claim only
        implemented features, P2P v1 (MSNC9) among them.
        """
        alice, bob, bobEvents, data = await self.published(1024)
        contact = bob.contacts.get(ALICE)
        self.assertEqual(contact.picture, alice.displayPicture)
        self.assertEqual(contact.picture.size, 1024)
        self.assertEqual(contact.picture.sha1d, sha1Base64(data))
        caps = Capabilities.fromString(contact.capabilities)
        self.assertEqual(claimedWithoutFeature(caps), [])
        self.assertEqual(caps.msncVersion, 9)

        fetched = await bob.fetchDisplayPicture(ALICE)
        self.assertEqual(fetched, data)
        again = await bob.fetchDisplayPicture(ALICE)
        self.assertEqual(again, data)
        self.assertEqual((bob.pictures.fetchCount, alice.pictures.servedCount), (1, 1))

    async def test_iln_and_cleared(self) -> None:
        """
        bob signing in after alice set her picture gets it from C{ILN};
        clearing it (C{None}) announces C{0}: the event carries L{None} and
        a fetch fails with L{NoDisplayPicture}.
        """
        alice, _ = await self.signIn(ALICE)
        data = png(2000, seed=7)
        obj = await alice.setDisplayPicture(data)
        bob, bobEvents = await self.signIn(BOB)
        await pictureOf(bobEvents, ALICE, obj.sha1d)
        self.assertEqual(bob.contacts.get(ALICE).picture, obj)
        self.assertEqual(await bob.fetchDisplayPicture(ALICE), data)
        self.assertIsNone(await alice.setDisplayPicture(None))
        await bobEvents.waitFor(lambda: bobEvents.named("contactPictureChanged")[-1][1] is None, "cleared")
        self.assertIsNone(bob.contacts.get(ALICE).picture)
        await self.assertFailure(bob.fetchDisplayPicture(ALICE), NoDisplayPicture)

    async def test_keptAcrossReconnect(self) -> None:
        """
        The picture set on a session is published again by the client's
        next login (as L{msnp.service.MessengerService} does after a drop),
        and a status change in between does not drop it.
        """
        alice, _ = await self.signIn(ALICE)
        obj = await alice.setDisplayPicture(png(3000, seed=3))
        from msnp.contacts import Status

        await alice.setStatus(Status.BUSY)
        self.assertEqual(alice.state.msnObject, obj.toXml())
        client = alice.client
        await alice.logout()
        again = await client.login()
        self.addCleanup(logoutQuietly, again)
        self.assertEqual(again.displayPicture, obj)
        bob, bobEvents = await self.signIn(BOB)
        await pictureOf(bobEvents, ALICE, obj.sha1d)
        self.assertEqual(bob.contacts.get(ALICE).picture, obj)

    async def test_200KB(self) -> None:
        """
        A 200 KB picture (171 chunks) arrives whole.
        """
        alice, bob, _, data = await self.published(200 * 1024, seed=2)
        self.assertEqual(await bob.fetchDisplayPicture(ALICE), data)

    async def test_atTheCap(self) -> None:
        """
        A picture of exactly L{MAX_PICTURE_SIZE} bytes is accepted and
        arrives whole; one byte more is refused with L{ValueError} and the
        published picture does not change.
        """
        alice, bob, _, data = await self.published(MAX_PICTURE_SIZE, seed=4)
        self.assertEqual(await bob.fetchDisplayPicture(ALICE), data)
        before = alice.displayPicture
        error = await self.assertFailure(alice.setDisplayPicture(png(MAX_PICTURE_SIZE + 1)), ValueError)
        self.assertIn("cap", str(error))
        self.assertEqual(alice.displayPicture, before)

    async def test_diskCacheAcrossRestarts(self) -> None:
        """
        A bot with a cache directory fetches a picture once; restarted (a
        new client, same directory) it gets the same bytes without any P2P.
        """
        directory = os.path.join(tempDirectory(self), "sub")
        alice, _ = await self.signIn(ALICE)
        obj = await alice.setDisplayPicture(png(5000, seed=5))
        bob, bobEvents = await self.signIn(BOB, pictureCacheDirectory=directory)
        await pictureOf(bobEvents, ALICE, obj.sha1d)
        first = await bob.fetchDisplayPicture(ALICE)
        await bob.logout()
        restarted, restartedEvents = await self.signIn(BOB, pictureCacheDirectory=directory)
        await pictureOf(restartedEvents, ALICE, obj.sha1d)
        self.assertEqual(await restarted.fetchDisplayPicture(ALICE), first)
        self.assertEqual(sha1Base64(first), obj.sha1d)
        self.assertEqual((restarted.pictures.fetchCount, alice.pictures.servedCount), (0, 1))

    async def test_twoPlacesOnlyTheAskingOneGetsIt(self) -> None:
        """
        bob is signed in at two places; the place that asks gets the
        picture; the other one opened no session and fetched nothing.
        """
        first, firstEvents = await self.signIn(BOB, identity=ClientIdentity(machineGuid=newMachineGuid(), placeName="one"))
        second, secondEvents = await self.signIn(BOB, identity=ClientIdentity(machineGuid=newMachineGuid(), placeName="two"))
        alice, _ = await self.signIn(ALICE)
        data = png(20000, seed=6)
        obj = await alice.setDisplayPicture(data)
        await pictureOf(firstEvents, ALICE, obj.sha1d)
        await pictureOf(secondEvents, ALICE, obj.sha1d)
        self.assertEqual(len(second.places), 2)
        self.assertEqual(await second.fetchDisplayPicture(ALICE), data)
        self.assertEqual((second.pictures.fetchCount, first.pictures.fetchCount), (1, 0))
        self.assertEqual(first.pictures.manager.activeSessions(), 0)
        self.assertEqual(alice.pictures.servedCount, 1)

    async def test_switchboardKilledMidTransfer(self) -> None:
        """
        bob's switchboard is cut after 20 P2P messages of a 200 KB
        transfer: that fetch fails with L{TransferInterrupted}; the next
        fetch opens a new switchboard and gets the whole picture.
        """
        alice, bob, _, data = await self.published(200 * 1024, seed=8)
        received = []
        original = bob.pictures.manager.payloadReceived

        def counting(sender: str, payload: bytes) -> None:
            received.append(payload)
            original(sender, payload)
            if len(received) == 20:
                (conversation,) = [c for c in bob.conversations if c.contacts == {ALICE}]
                conversation._switchboard.transport.abortConnection()

        bob.pictures.manager.payloadReceived = counting
        await self.assertFailure(bob.fetchDisplayPicture(ALICE), TransferInterrupted)
        bob.pictures.manager.payloadReceived = original
        self.assertEqual(await bob.fetchDisplayPicture(ALICE), data)

    async def test_textInterleavesWithTransfer(self) -> None:
        """
        A text alice sends while her 200 KB picture is on its way to bob
        reaches bob before the transfer ends, overtaking all but at most
        two of the chunks still to come: text is not queued behind the
        picture.
        """
        alice, bob, bobEvents, data = await self.published(200 * 1024, seed=9)
        p2pAtBob = []
        original = bob.pictures.manager.payloadReceived

        def counting(sender: str, payload: bytes) -> None:
            p2pAtBob.append(payload)
            original(sender, payload)

        bob.pictures.manager.payloadReceived = counting
        sentAt: list[int] = []
        arrivedAt: list[int] = []
        sent = [0]
        aliceSend = alice.pictures.sendP2P

        def sendP2P(peer: str, payload: bytes) -> "Deferred[Any]":
            sent[0] += 1
            if sent[0] == 30:
                sentAt.append(len(p2pAtBob))
                alice.openConversation(BOB).addCallback(lambda c: c.sendText("still there?"))
            return aliceSend(peer, payload)

        counted = sendP2P

        class Transport:
            sendP2P = staticmethod(counted)

        alice.pictures.manager.transport = Transport()
        def messageArrived(session: Any, conversation: Any, message: Any) -> tuple[Any, ...]:
            arrivedAt.append(len(p2pAtBob))
            return (conversation, message)

        bobEvents.summaries = {**PICTURE_EVENTS, "messageReceived": messageArrived}
        fetched = await bob.fetchDisplayPicture(ALICE)
        self.assertEqual(fetched, data)
        await bobEvents.waitFor(lambda: bool(bobEvents.named("messageReceived")), "the text")
        self.assertEqual(len(sentAt), 1)
        self.assertEqual(len(arrivedAt), 1)
        total = len(p2pAtBob)
        self.assertGreater(total, 170)
        self.assertLessEqual(arrivedAt[0] - sentAt[0], 2)
        self.assertLess(arrivedAt[0], total - 100)
