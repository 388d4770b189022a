"""
Tests for L{msnp.p2p.filecontext}: the file context against the bytes of
MSNP18-p2p.md P.9.1, lenient reading, and safe names (with hypothesis).
"""

from __future__ import annotations

import base64
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.p2p.filecontext import CONTEXT_SIZE, MAX_NAME, FileContext, MalformedFileContext, safeFileName


class ContextTests(SynchronousTestCase):
    def test_referenceExample(self) -> None:
        """
        C{notes.txt}, 3000 bytes, no preview: the bytes P.9.1 shows, 768
        base64 characters with its beginning and end.
        """
        data = FileContext("notes.txt", 3000).encode()
        self.assertEqual(len(data), CONTEXT_SIZE)
        self.assertEqual(data[:16], bytes.fromhex("3E020000020000 00B80B000000000000".replace(" ", "")))
        self.assertEqual(data[16:20], b"\x01\0\0\0")
        self.assertEqual(data[20:38], "notes.txt".encode("utf-16-le"))
        self.assertEqual(data[568:], b"\0\0\xff\xff\xff\xff")
        text = FileContext("notes.txt", 3000).toBase64()
        self.assertEqual(len(text), 768)
        self.assertTrue(text.startswith("PgIAAAIAAAC4CwAAAAAAAAEAAABuAG8AdABlAHMALgB0AHgAdAAAAAAAAAAA"))
        self.assertTrue(text.endswith("/////w=="))

    def test_roundTripWithPreview(self) -> None:
        """
        Name, size (beyond 32 bits) and preview survive; the type says
        that a preview follows.
        """
        context = FileContext("Ünïcødé photo.png", 5 * 2**32 + 7, b"\x89PNG preview")
        data = context.encode()
        self.assertEqual(struct.unpack_from("<I", data, 16)[0], 0)
        self.assertEqual(FileContext.decode(data), context)

    def test_longNameCutWithTerminator(self) -> None:
        """
        A name longer than 259 UTF-16 units is cut so a NUL unit still ends
        it.
        """
        data = FileContext("a" * 400, 1).encode()
        self.assertEqual(data[538:540], b"\0\0")
        self.assertEqual(FileContext.decode(data).name, "a" * 259)

    def test_version3AndPapyonPreview(self) -> None:
        """
        Version 3 takes its preview from the length field; a type-1
        context with bytes after the block (papyon) keeps them too.
        """
        block = bytearray(FileContext("x", 10).encode())
        struct.pack_into("<II", block, 0, 638, 3)
        data = bytes(block) + b"\0" * 64 + b"PREVIEW"
        self.assertEqual(FileContext.decode(data).preview, b"PREVIEW")
        papyon = FileContext("x", 10).encode() + b"PNG"
        self.assertEqual(FileContext.decode(papyon).preview, b"PNG")

    def test_refused(self) -> None:
        """
        Too short, an unknown version, not base64: L{MalformedFileContext}.
        """
        good = FileContext("x", 10).encode()
        self.assertRaises(MalformedFileContext, FileContext.decode, good[:573])
        self.assertRaises(MalformedFileContext, FileContext.decode, good[:4] + b"\x09\0\0\0" + good[8:])
        self.assertRaises(MalformedFileContext, FileContext.fromBase64, "!!!")
        self.assertRaises(MalformedFileContext, FileContext.fromBase64, base64.b64encode(good[:100]).decode())
        self.assertRaises(ValueError, FileContext("x", -1).encode)


class SafeNameTests(SynchronousTestCase):
    def test_examples(self) -> None:
        """
        Paths lose everything but their last component; dots, controls,
        reserved characters and device names are neutralised.
        """
        cases = {
            "../../etc/passwd": "passwd",
            "/etc/passwd": "passwd",
            "C:\\Windows\\system.ini": "system.ini",
            "..": "file",
            "...": "file",
            ".bashrc": "bashrc",
            "": "file",
            "a\x00b\x1b[31mc.txt": "ab[31mc.txt",
            "what?.txt": "what_.txt",
            "CON": "_CON",
            "nul.txt": "_nul.txt",
            "report.pdf": "report.pdf",
            "dir/": "dir",
            "name. ": "name",
            "\u202etxt.exe": "txt.exe",
        }
        for given_, expected in cases.items():
            self.assertEqual(safeFileName(given_), expected, repr(given_))

    def test_longNamesKeepExtension(self) -> None:
        """
        At most L{MAX_NAME} characters, the extension kept.
        """
        name = safeFileName("x" * 500 + ".tar")
        self.assertEqual(len(name), MAX_NAME)
        self.assertTrue(name.endswith(".tar"))

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=600))
    def test_alwaysOneHarmlessComponent(self, name: str) -> None:
        """
        Whatever arrives, the result is one non-empty component, no
        separators, no control characters, not starting with a dot, at
        most L{MAX_NAME} characters.
        """
        safe = safeFileName(name)
        self.assertTrue(safe)
        self.assertLessEqual(len(safe), MAX_NAME)
        self.assertNotIn("/", safe)
        self.assertNotIn("\\", safe)
        self.assertFalse(safe.startswith("."))
        self.assertNotIn(safe, (".", ".."))
        self.assertFalse(any(ord(c) < 32 or ord(c) == 127 for c in safe))
