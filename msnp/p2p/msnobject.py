# -*- test-case-name: test.test_pictures,test.test_p2p_slp -*-
"""
MSN objects: the C{<msnobj .../>} element that names a display picture,
emoticon, wink or voice clip (MSNP18.md 4.6, MSNP18-p2p.md P.6).

An L{MSNObject} is a value. L{MSNObject.fromData} computes SHA1D from the
bytes and SHA1C from the attributes; L{MSNObject.parse} reads what peers
send (any attribute order, unknown attributes kept, XML character
references decoded) and remembers the exact text, because a requester
must return the object as it was announced; L{contextValue} and
L{fromContext} are the base64 forms of the SLP C{Context} field.

Parsing uses a small attribute scanner, not an XML parser: the element is
one tag with no children, and a scanner cannot be led into entity
expansion or external fetches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote

from msnp.errors import ProtocolError

#: Object types (P.6.1).
TYPE_EMOTICON = 2
TYPE_DISPLAY_PICTURE = 3
TYPE_BACKGROUND = 5
TYPE_WINK = 8
TYPE_VOICE_CLIP = 11

#: The friendly name of an unnamed object: UTF-16LE of an empty string
#: plus its NUL, as MSNPSharp and pidgin write it.
EMPTY_FRIENDLY = "AAA="

#: Longest object text accepted from a peer (WLM's are about 300 bytes).
MAX_OBJECT_TEXT = 4096

_TAG = re.compile(r"^\s*<msnobj\b(?P<attrs>[^<>]*?)/?>\s*(</msnobj>\s*)?$", re.S)
_ATTR = re.compile(r"""\s*([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_REF = re.compile(r"&(#x[0-9A-Fa-f]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);")


#: The attributes L{MSNObject} has fields for (compared lower-case).
_KNOWN = frozenset({"creator", "size", "type", "location", "friendly", "sha1d", "sha1c"})
#: The shape every client writes: one space before each attribute, double
#: quotes, no references, a self-closing tag. Matched whole, then split in
#: one C-level pass; anything else goes through the general scanner.
_PLAIN_TAG = re.compile(r'<msnobj((?: [A-Za-z_][\w.-]*="[^"&<>]*")*) ?/>')
_PLAIN_ATTR = re.compile(r' ([A-Za-z_][\w.-]*)="([^"&<>]*)"')


def _attributes(text: str) -> list[tuple[str, str]]:
    """
    The attribute names and (unescaped) values of one C{<msnobj/>} tag, in
    order. The plain shape has a fast path (an NLN with a new picture is
    parsed for every presence change); both paths give the same pairs
    (property-tested in C{test/test_presencelines.py}).

    @raise MalformedMSNObject: not one element, or junk between attributes.
    """
    plain = _PLAIN_TAG.fullmatch(text)
    if plain is not None:
        return _PLAIN_ATTR.findall(plain.group(1))
    return _scannedAttributes(text)


def _scannedAttributes(text: str) -> list[tuple[str, str]]:
    """
    L{_attributes} for any shape: any whitespace, either quote, character
    references, an end tag.
    """
    match = _TAG.match(text)
    if match is None:
        raise MalformedMSNObject("not an <msnobj/> element")
    pairs: list[tuple[str, str]] = []
    rest = match.group("attrs")
    position = 0
    for m in _ATTR.finditer(rest):
        if rest[position : m.start()].strip():
            raise MalformedMSNObject("junk between <msnobj/> attributes")
        position = m.end()
        pairs.append((m.group(1), _unescape(m.group(2) if m.group(2) is not None else m.group(3))))
    if rest[position:].strip():
        raise MalformedMSNObject("junk after <msnobj/> attributes")
    return pairs


class MalformedMSNObject(ProtocolError):
    """
    Text that should be an C{<msnobj/>} element is not one.
    """


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith("#"):
            code = int(ref[2:], 16) if ref[1:2] in ("x", "X") else int(ref[1:])
            return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
        return _ENTITIES[ref]

    return _REF.sub(one, value)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def sha1Base64(data: bytes) -> str:
    """
    base64 of the SHA-1 of C{data}: the form of SHA1D and SHA1C.
    """
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def friendlyName(name: str) -> str:
    """
    The C{Friendly} attribute for C{name}: base64 of UTF-16LE plus NUL.
    """
    return base64.b64encode((name + "\0").encode("utf-16-le")).decode("ascii")


@dataclass(frozen=True)
class MSNObject:
    """
    One MSN object.

    @ivar creator: the owner's account.
    @ivar size: the data's size in bytes.
    @ivar type: L{TYPE_DISPLAY_PICTURE} and friends.
    @ivar location: opaque to peers (C{"0"} as WLM 2009 writes it).
    @ivar friendly: the base64 friendly name.
    @ivar sha1d: base64 SHA-1 of the data; the identity of the object.
    @ivar sha1c: base64 SHA-1 of the attributes; L{None} when absent
        (papyon leaves it out).
    @ivar extra: other attributes, in order (C{stamp}, C{AvatarID}, ...).
    @ivar text: the exact text it was parsed from, or L{None} when built
        here (then L{toXml} is the text).
    """

    creator: str
    size: int
    type: int
    location: str
    friendly: str
    sha1d: str
    sha1c: Optional[str] = None
    extra: tuple[tuple[str, str], ...] = ()
    text: Optional[str] = field(default=None, compare=False, repr=False)

    @classmethod
    def fromData(
        cls,
        creator: str,
        data: bytes,
        type: int = TYPE_DISPLAY_PICTURE,
        location: str = "0",
        friendly: str = EMPTY_FRIENDLY,
    ) -> "MSNObject":
        """
        The object describing C{data}, with SHA1D and SHA1C computed.
        """
        sha1d = sha1Base64(data)
        return cls(creator, len(data), type, location, friendly, sha1d, checksum(creator, len(data), type, location, friendly, sha1d))

    @classmethod
    def parse(cls, text: str) -> "MSNObject":
        """
        Read one C{<msnobj .../>} element (attribute names compared case-
        insensitively, as the open clients do).

        @raise MalformedMSNObject: not one element, or Creator, Size, Type or
            SHA1D missing or invalid.
        """
        if len(text) > MAX_OBJECT_TEXT:
            raise MalformedMSNObject(f"MSN object text of {len(text)} characters")
        attrs: dict[str, str] = {}
        extra: list[tuple[str, str]] = []
        for name, value in _attributes(text):
            key = name.lower()
            if key in _KNOWN:
                attrs.setdefault(key, value)
            else:
                extra.append((name, value))
        for required in ("creator", "size", "type", "sha1d"):
            if not attrs.get(required):
                raise MalformedMSNObject(f"MSN object without {required}")
        size, type_ = attrs["size"], attrs["type"]
        if not (size.isdigit() and len(size) <= 12 and type_.isdigit() and len(type_) <= 4):
            raise MalformedMSNObject("MSN object Size or Type is not a number")
        return cls(
            attrs["creator"], int(size), int(type_), attrs.get("location", ""),
            attrs.get("friendly", ""), attrs["sha1d"], attrs.get("sha1c"), tuple(extra), text,
        )

    @classmethod
    def fromContext(cls, context: str) -> "MSNObject":
        """
        The object in an SLP C{Context} field: base64 of the XML, trailing
        NULs stripped (P.6.3, P.15 point 3); a URL-encoded object is also
        accepted.

        @raise MalformedMSNObject: neither form decodes to an object.
        """
        context = context.strip()
        if context.startswith("%3C") or context.startswith("<"):
            return cls.parse(unquote(context))
        try:
            raw = base64.b64decode(context, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedMSNObject("Context is not base64") from None
        return cls.parse(raw.rstrip(b"\0").decode("utf-8", "replace"))

    def toXml(self) -> str:
        """
        The text to announce and to put in a C{Context}: the parsed text
        unchanged, or the attributes in WLM's order.
        """
        if self.text is not None:
            return self.text
        parts = [
            ("Creator", self.creator), ("Size", str(self.size)), ("Type", str(self.type)),
            ("Location", self.location), ("Friendly", self.friendly), ("SHA1D", self.sha1d),
        ]
        if self.sha1c is not None:
            parts.append(("SHA1C", self.sha1c))
        parts.extend(self.extra)
        return "<msnobj " + " ".join(f'{k}="{_escape(v)}"' for k, v in parts) + "/>"

    def contextValue(self) -> str:
        """
        base64 of L{toXml} in UTF-8, without a NUL (what pidgin, MSNPSharp
        and papyon send).
        """
        return base64.b64encode(self.toXml().encode("utf-8")).decode("ascii")

    def matches(self, data: bytes) -> bool:
        """
        Whether C{data} is this object's data (size and SHA1D).
        """
        return len(data) == self.size and sha1Base64(data) == self.sha1d

    def checksumValid(self) -> bool:
        """
        Whether SHA1C (if present) agrees with the attributes.
        """
        if self.sha1c is None:
            return True
        return self.sha1c == checksum(self.creator, self.size, self.type, self.location, self.friendly, self.sha1d)


def checksum(creator: str, size: int, type: int, location: str, friendly: str, sha1d: str) -> str:
    """
    SHA1C: base64 SHA-1 over C{"Creator" creator "Size" size ...} (4.6).
    """
    text = f"Creator{creator}Size{size}Type{type}Location{location}Friendly{friendly}SHA1D{sha1d}"
    return sha1Base64(text.encode("utf-8"))


@lru_cache(maxsize=1024)
def parsePicture(text: Optional[str]) -> Optional[MSNObject]:
    """
    The L{msnp.p2p.msnobject.MSNObject} of a decoded C{NLN}/C{ILN} object
    field, or L{None} for none or one that does not parse.

    Results are memoised (a bounded LRU; the objects are immutable): a
    contact repeats its object in every C{NLN}.
    """
    if not text:
        return None
    try:
        return MSNObject.parse(text)
    except MalformedMSNObject:
        return None


def pictureIdentity(obj: Optional[MSNObject]) -> Optional[tuple[str, str, int]]:
    """
    What makes two announced pictures the same one: creator, SHA1D and
    type (C{NLN}s repeat the object with every status change; only a new
    identity is a new picture).
    """
    return None if obj is None else (obj.creator.lower(), obj.sha1d, obj.type)
