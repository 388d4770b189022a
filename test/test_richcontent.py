"""
Tests for L{msnp.richcontent} (the emoticon, datacast and ink formats) and
L{msnp.emoticons.RichContent} (registry, serving, waiting definitions),
without sockets.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.emoticons import (
    MAX_EMOTICON_SIZE,
    MAX_PENDING_SENDERS,
    MAX_REGISTERED_EMOTICONS,
    RichContent,
    UnfetchableObject,
    checkFetchable,
)
from msnp.mime import MAX_PAYLOAD, TextMessage, parseMime
from msnp.p2p.msnobject import TYPE_DISPLAY_PICTURE, TYPE_EMOTICON, TYPE_VOICE_CLIP, TYPE_WINK, MSNObject
from msnp.richcontent import (
    MAX_EMOTICONS_PER_MESSAGE,
    MAX_INK_SIZE,
    Ink,
    MalformedRichContent,
    VoiceClip,
    Wink,
    buildEmoticonPayloads,
    buildInkPayloads,
    buildObjectDatacast,
    parseEmoticons,
    parseInk,
    parseObjectDatacast,
)

ALICE = "alice@example.com"
PNG = b"\x89PNG\r\n\x1a\n"


def emoticon(n: int, creator: str = ALICE) -> MSNObject:
    return MSNObject.fromData(creator, PNG + bytes([n]) * 10, TYPE_EMOTICON)


class EmoticonFormatTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        Built definitions are C{shortcut TAB object TAB} pairs under one
        C{text/x-mms-emoticon} header and read back to the same objects.
        """
        pairs = [("(cat)", emoticon(1)), (":dog:", emoticon(2))]
        (payload,) = buildEmoticonPayloads(pairs)
        message = parseMime(payload)
        self.assertEqual(message.contentType, "text/x-mms-emoticon")
        self.assertTrue(message.body.startswith(b"(cat)\t<msnobj "))
        self.assertTrue(message.body.endswith(b"/>\t"))
        read = parseEmoticons(message.body, ALICE)
        self.assertEqual(read.emoticons, dict(pairs))
        self.assertEqual(read.dropped, ())

    def test_otherClientsForms(self) -> None:
        """
        pidgin's form (no trailing TAB) and URL-encoded objects read too.
        """
        a, b = emoticon(1), emoticon(2)
        body = f"(a)\t{a.toXml()}\t(b)\t{quote(b.toXml())}".encode()
        self.assertEqual(parseEmoticons(body, ALICE).emoticons, {"(a)": a, "(b)": b})

    def test_splitOverMessages(self) -> None:
        """
        Many definitions become several whole messages, each within the
        switchboard limit, and together they carry every pair.
        """
        pairs = [(f"(e{i})", emoticon(i)) for i in range(12)]
        payloads = buildEmoticonPayloads(pairs)
        self.assertGreater(len(payloads), 1)
        found: dict[str, MSNObject] = {}
        for payload in payloads:
            self.assertLessEqual(len(payload), MAX_PAYLOAD)
            found.update(parseEmoticons(parseMime(payload).body, ALICE).emoticons)
        self.assertEqual(found, dict(pairs))

    def test_refusedWhenBuilding(self) -> None:
        """
        Bad shortcuts and non-emoticon objects are refused.
        """
        for shortcut in ["", "a\tb", "x" * 17, "a\r\n"]:
            self.assertRaises(ValueError, buildEmoticonPayloads, [(shortcut, emoticon(1))])
        picture = MSNObject.fromData(ALICE, PNG, TYPE_DISPLAY_PICTURE)
        self.assertRaises(ValueError, buildEmoticonPayloads, [("(p)", picture)])

    def test_hostileLists(self) -> None:
        """
        Junk objects, odd field counts, wrong types, zero sizes, foreign
        creators and too many pairs are dropped with reasons; good pairs
        around them are kept.
        """
        good = emoticon(1)
        picture = MSNObject.fromData(ALICE, PNG, TYPE_DISPLAY_PICTURE)
        zero = MSNObject(ALICE, 0, TYPE_EMOTICON, "0", "AAA=", good.sha1d)
        body = "\t".join([
            "(ok)", good.toXml(), "(junk)", "<msnobj", "(pic)", picture.toXml(), "(zero)", zero.toXml(),
            "(carol)", emoticon(3, "carol@example.com").toXml(), "(alone)",
        ]).encode()
        read = parseEmoticons(body, ALICE)
        self.assertEqual(read.emoticons, {"(ok)": good})
        self.assertEqual(len(read.dropped), 5)
        many = "".join(f"(e{i})\t{emoticon(i).toXml()}\t" for i in range(MAX_EMOTICONS_PER_MESSAGE + 5)).encode()
        read = parseEmoticons(many, ALICE)
        self.assertEqual(len(read.emoticons), MAX_EMOTICONS_PER_MESSAGE)
        self.assertTrue(read.dropped)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=3000))
    def test_anyBytes(self, body: bytes) -> None:
        """
        Whatever the body, parsing returns (never raises) at most the cap.
        """
        read = parseEmoticons(body, ALICE)
        self.assertLessEqual(len(read.emoticons), MAX_EMOTICONS_PER_MESSAGE)


class DatacastTests(SynchronousTestCase):
    def test_winkAndVoiceClip(self) -> None:
        """
        C{ID: 2} carries a type 8 object, C{ID: 3} a type 11 one, each read
        back from its C{Data} line.
        """
        wink = MSNObject.fromData(ALICE, b"MSCF....", TYPE_WINK)
        clip = MSNObject.fromData(ALICE, b"RIFF....", TYPE_VOICE_CLIP)
        payload = buildObjectDatacast(wink)
        message = parseMime(payload)
        self.assertEqual(message.contentType, "text/x-msnmsgr-datacast")
        self.assertTrue(message.body.startswith(b"ID: 2\r\nData: <msnobj "))
        self.assertEqual(parseObjectDatacast(2, message.body, ALICE), Wink(wink))
        body = parseMime(buildObjectDatacast(clip)).body
        self.assertEqual(parseObjectDatacast(3, body, ALICE), VoiceClip(clip))
        self.assertRaises(ValueError, buildObjectDatacast, emoticon(1))

    def test_hostile(self) -> None:
        """
        No C{Data}, junk, the wrong type for the ID, another creator:
        L{MalformedRichContent}.
        """
        wink = MSNObject.fromData(ALICE, b"MSCF", TYPE_WINK)
        for ident, body in [
            (2, b"ID: 2\r\n\r\n"),
            (2, b"ID: 2\r\nData: <msnobj\r\n"),
            (3, b"ID: 3\r\nData: " + wink.toXml().encode() + b"\r\n"),
            (1, b"ID: 1\r\n"),
        ]:
            self.assertRaises(MalformedRichContent, parseObjectDatacast, ident, body, ALICE)
        self.assertRaises(
            MalformedRichContent, parseObjectDatacast, 2,
            b"Data: " + wink.toXml().encode(), "bob@example.com",
        )


class InkTests(SynchronousTestCase):
    def test_roundTripSplit(self) -> None:
        """
        A GIF ink longer than one message is split with C{Message-ID} and
        C{Chunks}; the joined body reads back to the same bytes.
        """
        gif = b"GIF89a" + bytes(range(256)) * 20
        payloads = buildInkPayloads(Ink("gif", gif))
        self.assertGreater(len(payloads), 1)
        bodies = [parseMime(p) for p in payloads]
        self.assertEqual(bodies[0].header("Chunks"), str(len(payloads)))
        body = b"".join(m.body for m in bodies)
        self.assertEqual(parseInk("image/gif", body), Ink("gif", gif))

    def test_isfAndTolerance(self) -> None:
        """
        ISF ink reads from C{application/x-ms-ink}; line breaks in the
        base64 and a trailing NUL are tolerated.
        """
        encoded = base64.b64encode(b"\x00ISF data")
        body = b"base64:" + encoded[:4] + b"\r\n" + encoded[4:] + b"\0"
        self.assertEqual(parseInk("application/x-ms-ink", body), Ink("isf", b"\x00ISF data"))
        self.assertEqual(Ink("isf", b"x").mimeType, "application/x-ms-ink")

    def test_hostile(self) -> None:
        """
        No prefix, bad base64, empty, not a GIF, over the cap: refused.
        """
        for kind, body in [
            ("image/gif", b"R0lGODlh"),
            ("image/gif", b"base64:!!!"),
            ("image/gif", b"base64:"),
            ("image/gif", b"base64:" + base64.b64encode(b"PNG...")),
            ("image/gif", b"base64:" + base64.b64encode(b"GIF89a" + bytes(MAX_INK_SIZE))),
            ("text/plain", b"base64:AAAA"),
        ]:
            self.assertRaises(MalformedRichContent, parseInk, kind, body)
        self.assertRaises(ValueError, buildInkPayloads, Ink("gif", b"not a gif"))
        self.assertRaises(ValueError, buildInkPayloads, Ink("svg", b"GIF89a"))
        self.assertRaises(ValueError, buildInkPayloads, Ink("isf", b""))


class _Conversation:
    manager = None
    session = None


class RichContentTests(SynchronousTestCase):
    def test_definitionsOnlyForUsedShortcuts(self) -> None:
        """
        Only shortcuts occurring in the text are announced, in order of
        occurrence; a text without any gets no definitions.
        """
        rich = RichContent(ALICE)
        rich.setEmoticon("(b)", PNG + b"b")
        rich.setEmoticon("(a)", PNG + b"a")
        rich.setEmoticon("(unused)", PNG + b"u")
        self.assertEqual(rich.definitionsFor("nothing here"), [])
        (payload,) = rich.definitionsFor("(a) then (b)")
        read = parseEmoticons(parseMime(payload).body, ALICE)
        self.assertEqual(list(read.emoticons), ["(a)", "(b)"])

    def test_registryAndServing(self) -> None:
        """
        Registered images are served by SHA1D and type; unbinding stops
        serving; bad images and too many shortcuts are refused.
        """
        rich = RichContent(ALICE)
        obj = rich.setEmoticon("(a)", PNG + b"a")
        assert obj is not None
        self.assertEqual(rich.objectData(obj), PNG + b"a")
        wrongType = MSNObject(obj.creator, obj.size, TYPE_WINK, obj.location, obj.friendly, obj.sha1d)
        self.assertIsNone(rich.objectData(wrongType))
        rich.setEmoticon("(a)", None)
        self.assertIsNone(rich.objectData(obj))
        self.assertRaises(ValueError, rich.setEmoticon, "(t)", b"text, not an image")
        self.assertRaises(ValueError, rich.setEmoticon, "(t)", PNG + bytes(MAX_EMOTICON_SIZE))
        for i in range(MAX_REGISTERED_EMOTICONS):
            rich.setEmoticon(f"({i})", PNG + bytes([i % 256, i // 256]))
        self.assertRaises(ValueError, rich.setEmoticon, "(one more)", PNG)

    def test_sentMediaServed(self) -> None:
        """
        A sent wink is served until enough newer ones push it out.
        """
        rich = RichContent(ALICE)
        wink, payload = rich.winkPayload(b"MSCF-1")
        self.assertEqual(rich.objectData(wink.msnObject), b"MSCF-1")
        self.assertIn(b"ID: 2", payload)
        for i in range(20):
            rich.voiceClipPayload(b"RIFF-%d" % i)
        self.assertIsNone(rich.objectData(wink.msnObject))
        self.assertRaises(ValueError, rich.winkPayload, b"")

    def test_waitingDefinitionsBounded(self) -> None:
        """
        Definitions wait per conversation and sender for the next text,
        which keeps only the shortcuts it uses; the waiting senders are
        bounded.
        """
        rich = RichContent("bob@example.com")
        conversation = _Conversation()
        rich._remember(conversation, ALICE, {"(a)": emoticon(1), "(b)": emoticon(2)})  # type: ignore[arg-type]
        self.assertEqual(rich.takeEmoticons(conversation, ALICE, "just (a)"), {"(a)": emoticon(1)})  # type: ignore[arg-type]
        self.assertEqual(rich.takeEmoticons(conversation, ALICE, "(b)"), {})  # type: ignore[arg-type]
        for i in range(MAX_PENDING_SENDERS + 10):
            rich._remember(conversation, f"u{i}@example.com", {"(a)": emoticon(1)})  # type: ignore[arg-type]
        self.assertEqual(len(rich._pending), MAX_PENDING_SENDERS)

    def test_fetchableChecks(self) -> None:
        """
        Only objects of the asked type within the size cap are fetched.
        """
        checkFetchable(emoticon(1), TYPE_EMOTICON)
        self.assertRaises(UnfetchableObject, checkFetchable, emoticon(1), TYPE_WINK)
        self.assertRaises(UnfetchableObject, checkFetchable, "<msnobj/>", TYPE_EMOTICON)  # type: ignore[arg-type]

    def test_textMessageStillHashable(self) -> None:
        """
        A L{TextMessage} with emoticons stays hashable and compares by value.
        """
        message = TextMessage(ALICE, "Alice", "(a)", emoticons={"(a)": emoticon(1)})
        hash(message)
        self.assertEqual(message, TextMessage(ALICE, "Alice", "(a)", emoticons={"(a)": emoticon(1)}))
