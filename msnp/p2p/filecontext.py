# -*- test-case-name: test.test_p2p_filecontext -*-
"""
The file context of a file-transfer INVITE, and safe names for received
files (MSNP18-p2p.md P.9.1).

The C{Context} field of a file INVITE is base64 (no NUL) of a 574-byte
little-endian block, optionally followed by a PNG preview:

  - 0: length (574 in version 2), 4: version (2; 3 in WLM's capture),
  - 8: file size (64 bits), 16: type (0 = a preview follows, 1 = none),
  - 20: the file name, 520 bytes of UTF-16LE padded with NULs,
  - 540: 30 zero bytes, 570: C{FF FF FF FF}, 574: the preview.

We write what pidgin writes (version 2, type 0 only with a preview). We
read leniently where the clients disagree: version 2 or 3, a preview
wherever bytes follow the block (papyon writes type 1 with a preview).

A name from the wire is only a suggestion: L{safeFileName} makes it a
single harmless path component before anything touches a disk. Pure: bytes
in, values out.
"""

from __future__ import annotations

import base64
import binascii
import struct
import unicodedata
from dataclasses import dataclass
from typing import Optional

from msnp.errors import ProtocolError

#: Bytes of the block before the preview (version 2).
CONTEXT_SIZE = 574
#: Where the UTF-16LE name starts, and its room in bytes (260 units).
NAME_OFFSET = 20
NAME_BYTES = 520
#: The type field: a preview follows, or none does.
TYPE_PREVIEW = 0
TYPE_NO_PREVIEW = 1
#: Versions a reader accepts.
VERSIONS = frozenset({2, 3})
#: The longest name L{safeFileName} returns (characters), well under the
#: 255 bytes most file systems allow even once encoded in UTF-8.
MAX_NAME = 120
#: The largest preview kept (bytes); pidgin's is a 96x96 PNG.
MAX_PREVIEW = 32 * 1024

_HEAD = struct.Struct("<IIQI")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_UNSAFE = set('<>:"/\\|?*')


class MalformedFileContext(ProtocolError):
    """
    A file INVITE's C{Context} cannot be read: not base64, too short, an
    unknown version.
    """


@dataclass(frozen=True)
class FileContext:
    """
    What a file INVITE says about the file.

    @ivar name: the name as sent (unsanitised: see L{safeFileName}).
    @ivar size: the file's size in bytes.
    @ivar preview: the preview image, or L{None}.
    """

    name: str
    size: int
    preview: Optional[bytes] = None

    def encode(self) -> bytes:
        """
        The context block (pidgin's layout); a name longer than 259 UTF-16
        units is cut so one NUL unit always ends it.

        @raise ValueError: a negative size or one that does not fit 64 bits.
        """
        if not 0 <= self.size < 2**64:
            raise ValueError(f"file size out of range: {self.size}")
        name = self.name.encode("utf-16-le")[: NAME_BYTES - 2]
        kind = TYPE_PREVIEW if self.preview else TYPE_NO_PREVIEW
        block = bytearray(CONTEXT_SIZE)
        _HEAD.pack_into(block, 0, CONTEXT_SIZE, 2, self.size, kind)
        block[NAME_OFFSET : NAME_OFFSET + len(name)] = name
        block[570:574] = b"\xff\xff\xff\xff"
        return bytes(block) + (self.preview or b"")

    def toBase64(self) -> str:
        """
        The C{Context} field's value.
        """
        return base64.b64encode(self.encode()).decode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> "FileContext":
        """
        Read a context block (P.9.1 "Readers").

        @raise MalformedFileContext: fewer than 574 bytes or a version
            other than 2 and 3.
        """
        if len(data) < CONTEXT_SIZE:
            raise MalformedFileContext(f"file context of {len(data)} bytes is shorter than {CONTEXT_SIZE}")
        length, version, size, _kind = _HEAD.unpack_from(data, 0)
        if version not in VERSIONS:
            raise MalformedFileContext(f"file context version {version} is not 2 or 3")
        raw = data[NAME_OFFSET : NAME_OFFSET + NAME_BYTES]
        units = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        end = units.index(b"\0\0") if b"\0\0" in units else len(units)
        name = b"".join(units[:end]).decode("utf-16-le", "replace")
        start = CONTEXT_SIZE if version == 2 else max(CONTEXT_SIZE, min(length, len(data)))
        preview = data[start : start + MAX_PREVIEW] or None
        return cls(name, size, preview)

    @classmethod
    def fromBase64(cls, text: str) -> "FileContext":
        """
        Read a C{Context} field's value.

        @raise MalformedFileContext: see L{decode}, or not base64.
        """
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise MalformedFileContext(f"file context is not base64: {e}") from None
        return cls.decode(data)


def safeFileName(name: str, fallback: str = "file") -> str:
    """
    C{name} made into one harmless file name: only its last path component
    (after C{/} or C{\\}), without control or format characters, without
    characters Windows refuses, without leading dots or spaces (no C{..},
    no hidden files), not a Windows device name, at most L{MAX_NAME}
    characters (the extension kept); C{fallback} when nothing is left.
    """
    last = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    kept = "".join(
        "_" if c in _UNSAFE else c
        for c in unicodedata.normalize("NFC", last)
        if unicodedata.category(c)[0] != "C"
    )
    kept = kept.strip().lstrip(".").strip().rstrip(". ")
    if kept and kept.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        kept = "_" + kept
    if len(kept) > MAX_NAME:
        stem, dot, extension = kept.rpartition(".")
        if dot and 0 < len(extension) <= 16 and stem:
            kept = stem[: MAX_NAME - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            kept = kept[:MAX_NAME].rstrip(". ")
    return kept or fallback
