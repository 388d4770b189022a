"""
Custom emoticons, winks, voice clips and ink end to end: real
L{msnp.client.MSNClient}s on a L{msnp.server.network.LocalNetwork} over
loopback sockets. The announcements travel as switchboard messages, the
objects over P2P v1, all relayed (never stored) by the local switchboard.

Tests wait for observer events and socket outcomes, never for wall-clock
time; each wait is bounded.
"""

from __future__ import annotations

import base64
import random
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from msnp.capabilities import Capabilities, claimedWithoutFeature
from msnp.emoticons import MAX_EMOTICON_SIZE, UnfetchableObject
from msnp.mime import buildSplitPayloads
from msnp.p2p.errors import ChecksumMismatch
from msnp.p2p.msnobject import TYPE_EMOTICON, MSNObject
from msnp.richcontent import MAX_INK_SIZE, Ink, buildEmoticonPayloads

from test.support import EventRecorder, logoutQuietly, signIn, startLocalNetwork

PASSWORD = "secret-pw"
ALICE, BOB = "alice@example.com", "bob@example.com"


def image(size: int, seed: int, head: bytes = b"\x89PNG\r\n\x1a\n") -> bytes:
    """
    C{size} bytes that start like an image and are otherwise random.
    """
    return head + random.Random(seed).randbytes(size - len(head))


class RichEvents(EventRecorder):
    def messageReceived(self, conversation: Any, message: Any) -> None:
        self._record("messageReceived", conversation, message)

    def winkReceived(self, session: Any, conversation: Any, sender: str, wink: Any) -> None:
        self._record("winkReceived", session, conversation, sender, wink)

    def voiceClipReceived(self, session: Any, conversation: Any, sender: str, clip: Any) -> None:
        self._record("voiceClipReceived", session, conversation, sender, clip)

    def inkReceived(self, session: Any, conversation: Any, sender: str, ink: Any) -> None:
        self._record("inkReceived", session, conversation, sender, ink)

    def texts(self) -> list[Any]:
        return [message for _, message in self.named("messageReceived")]


class RichContentTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(e, PASSWORD, e.split("@")[0].capitalize()) for e in (ALICE, BOB)],
            mutualContacts=[(ALICE, BOB)],
            reactor=reactor,
        )

    async def pair(self) -> tuple[Any, Any, RichEvents, Any]:
        """
        bob and alice signed in; alice's conversation with bob open.
        """
        bobEvents = RichEvents(BOB)
        bob = await signIn(self, BOB, PASSWORD, self.endpoints, bobEvents)
        alice = await signIn(self, ALICE, PASSWORD, self.endpoints, RichEvents(ALICE))
        conversation = await alice.openConversation(BOB)
        return alice, bob, bobEvents, conversation

    async def test_twoEmoticonsListedFetchedCached(self) -> None:
        """
        A text with two custom emoticons (one given to C{sendText}, one
        registered on the session) arrives at bob with both objects listed
        (only those the text uses); both fetch to alice's bytes; a second
        fetch comes from the cache (alice served each once). A plain text
        after it lists none. bob sees alice claim emoticons, winks, voice
        clips and GIF ink, and nothing without its feature.
        """
        alice, bob, bobEvents, conversation = await self.pair()
        cat, dog, owl = image(3000, 1), image(900, 2, b"GIF89a"), image(500, 3)
        alice.setCustomEmoticon("(dog)", dog)
        alice.setCustomEmoticon("(owl)", owl)
        await conversation.sendText("a (cat) and a (dog)", emoticons={"(cat)": cat})
        await bobEvents.waitFor(lambda: len(bobEvents.texts()) == 1, "the text")
        message = bobEvents.texts()[0]
        self.assertEqual(message.text, "a (cat) and a (dog)")
        self.assertEqual(sorted(message.emoticons), ["(cat)", "(dog)"])
        for shortcut, obj in message.emoticons.items():
            self.assertEqual((obj.type, obj.creator), (TYPE_EMOTICON, ALICE))
        self.assertEqual(await bob.fetchEmoticon(message.emoticons["(cat)"]), cat)
        self.assertEqual(await bob.fetchEmoticon(message.emoticons["(dog)"]), dog)
        self.assertEqual(await bob.fetchEmoticon(message.emoticons["(cat)"]), cat)
        self.assertEqual((bob.pictures.fetchCount, alice.rich.servedCount), (2, 2))

        await conversation.sendText("plain")
        await bobEvents.waitFor(lambda: len(bobEvents.texts()) == 2, "the plain text")
        self.assertEqual(dict(bobEvents.texts()[1].emoticons), {})

        caps = Capabilities.fromString(bob.contacts.get(ALICE).capabilities)
        self.assertEqual(claimedWithoutFeature(caps), [])
        self.assertTrue({"CUSTOM_SMILEY", "WINKS", "VOICEIM", "INK_GIF"} <= set(caps.names()))

    async def test_winkVoiceClipInk(self) -> None:
        """
        A wink, a voice clip and a GIF ink of several switchboard messages
        from alice reach bob as their events, in order; the wink's and
        clip's bytes fetch over P2P; the ink carries the decoded GIF.
        """
        alice, bob, bobEvents, conversation = await self.pair()
        winkData, clipData = image(5000, 4, b"MSCF"), image(7000, 5, b"RIFF")
        gif = image(4000, 6, b"GIF89a")
        wink = await conversation.sendWink(winkData, name="Hello")
        clip = await conversation.sendVoiceClip(clipData)
        await conversation.sendInk(Ink("gif", gif))
        await bobEvents.waitForEvent("inkReceived")
        self.assertEqual(
            [name for name, *_ in bobEvents.events if name != "messageReceived"],
            ["winkReceived", "voiceClipReceived", "inkReceived"],
        )
        (session, _, sender, received), = bobEvents.named("winkReceived")
        self.assertEqual((session, sender, received), (bob, ALICE, wink))
        self.assertEqual(await bob.fetchWink(received), winkData)
        (_, _, sender, receivedClip), = bobEvents.named("voiceClipReceived")
        self.assertEqual((sender, receivedClip), (ALICE, clip))
        self.assertEqual(await bob.fetchVoiceClip(receivedClip), clipData)
        (_, _, sender, ink), = bobEvents.named("inkReceived")
        self.assertEqual((sender, ink.format, ink.data, ink.mimeType), (ALICE, "gif", gif, "image/gif"))

    async def test_isfInk(self) -> None:
        """
        ISF ink (not advertised, but read) arrives with its bytes and format.
        """
        alice, bob, bobEvents, conversation = await self.pair()
        await conversation.sendInk(Ink("isf", b"\x00\x01ISF-bytes"))
        await bobEvents.waitForEvent("inkReceived")
        ink = bobEvents.named("inkReceived")[0][3]
        self.assertEqual((ink.format, ink.data), ("isf", b"\x00\x01ISF-bytes"))

    async def test_hostileAnnouncementsDropped(self) -> None:
        """
        Sent raw by a misbehaving alice: an emoticon message of junk, one
        naming an object created by someone else, ink with bad base64,
        GIF ink that is no GIF, a wink datacast without an object, ink
        over the cap in a few hundred parts. None of
        them crashes bob or yields an event; the text and the good ink
        sent after them still arrive, the text listing no emoticons.
        """
        alice, bob, bobEvents, conversation = await self.pair()
        head = b"MIME-Version: 1.0\r\nContent-Type: "
        foreign = MSNObject.fromData("carol@example.com", image(100, 7), TYPE_EMOTICON)
        payloads = [
            head + b"text/x-mms-emoticon\r\n\r\n(x)\t<msnobj junk\t(y)\t\t\t",
            buildEmoticonPayloads([("(x)", foreign)])[0],
            head + b"image/gif\r\n\r\nbase64:!!!not base64!!!",
            head + b"image/gif\r\n\r\nbase64:" + b"QUJD",
            head + b"text/x-msnmsgr-datacast\r\n\r\nID: 2\r\nData: nothing\r\n\r\n",
        ] + buildSplitPayloads(
            [("MIME-Version", "1.0"), ("Content-Type", "image/gif")],
            b"base64:" + base64.b64encode(b"GIF89a" + bytes(MAX_INK_SIZE)),
        )
        await conversation._sendRich(payloads)
        await conversation.sendText("(x) (y)")
        await conversation.sendInk(Ink("gif", b"GIF89a-good"))
        await bobEvents.waitForEvent("inkReceived")
        await bobEvents.waitFor(lambda: len(bobEvents.texts()) == 1, "the text")
        self.assertEqual(dict(bobEvents.texts()[0].emoticons), {})
        self.assertEqual([e[3].data for e in bobEvents.named("inkReceived")], [b"GIF89a-good"])
        self.assertEqual(bobEvents.named("winkReceived"), [])

    async def test_checksumMismatchAndRefusedFetches(self) -> None:
        """
        alice serves bytes that do not match the emoticon's SHA1D: bob's
        fetch fails with L{ChecksumMismatch} and nothing is cached. Objects
        of the wrong type or over the size cap are refused with
        L{UnfetchableObject} before anything is sent; oversized ink and
        emoticon images are refused when sending.
        """
        alice, bob, bobEvents, conversation = await self.pair()
        real = image(1000, 8)
        obj = alice.setCustomEmoticon("(bad)", real)
        alice.rich._emoticons["(bad)"] = (obj, image(1000, 9))
        await conversation.sendText("(bad)")
        await bobEvents.waitFor(lambda: len(bobEvents.texts()) == 1, "the text")
        announced = bobEvents.texts()[0].emoticons["(bad)"]
        await self.assertFailure(bob.fetchEmoticon(announced), ChecksumMismatch)
        self.assertIsNone(bob.pictures.cache.get(announced.sha1d))

        picture = MSNObject.fromData(ALICE, real)
        await self.assertFailure(bob.fetchEmoticon(picture), UnfetchableObject)
        huge = MSNObject(ALICE, MAX_EMOTICON_SIZE + 1, TYPE_EMOTICON, "0", "AAA=", announced.sha1d)
        await self.assertFailure(bob.fetchEmoticon(huge), UnfetchableObject)
        self.assertEqual(bob.pictures.fetchCount, 1)

        self.assertRaises(ValueError, conversation.sendInk, Ink("gif", b"GIF89a" + bytes(MAX_INK_SIZE)))
        await self.assertFailure(
            conversation.sendText("(big)", emoticons={"(big)": image(MAX_EMOTICON_SIZE + 1, 10)}), ValueError
        )

    async def test_emoticonsKeptAcrossReconnect(self) -> None:
        """
        A custom emoticon set on a session is there again on the client's
        next session (as after a reconnect) and announced in its texts;
        one unbound is not.
        """
        alice = await signIn(self, ALICE, PASSWORD, self.endpoints, RichEvents(ALICE))
        obj = alice.setCustomEmoticon("(cat)", image(700, 11))
        alice.setCustomEmoticon("(gone)", image(700, 12))
        alice.setCustomEmoticon("(gone)", None)
        client = alice.client
        await alice.logout()
        again = await client.login()
        self.addCleanup(logoutQuietly, again)
        self.assertEqual(again.rich.emoticons, {"(cat)": obj})
