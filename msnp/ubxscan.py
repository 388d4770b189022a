# -*- test-case-name: test.test_ubx_scanner -*-
"""
The C{UBX} payload read without an XML parser: the shape every client
writes (C{<Data>}: C{PSM}, C{CurrentMedia}, the C{EndpointData} places,
then flat text elements), matched by one regular expression, and the
memo (L{UserDataTails}) that lets a contact's repeated places and flat
elements go unread.

A presence storm is half C{UBX}es, and reading them was most of what the
client spent on one. Whatever the scanner answers is exactly what the
strict parser (L{msnp.xmlsafe.parseXML}, through
L{msnp.nsmessages.userDataOf}) reads from the same bytes; anything else it
answers L{None} and leaves to that parser. C{test/test_ubx_scanner.py}
checks both on generated, unusual and hostile payloads.
"""

from __future__ import annotations

import re
from typing import Optional

from msnp.contacts import Place, normalizeGuid

__all__ = ["UserDataTails", "scanUserData", "scanUserDataFields"]

#: Longest payload the scanner reads (longer ones go to the strict parser,
#: which has its own caps).
_MAX_PAYLOAD = 65536
#: Longest tail L{UserDataTails} remembers. A client's tail is a few
#: hundred bytes (about 1 KB with eight places); a server or peer that
#: pads it must not make a session keep up to 64 KiB per contact.
_MAX_TAIL = 4096

# The structure is matched with character data as a run of anything but
# "<" and the characters expat refuses or changes (a CR, which it folds,
# the controls XML forbids, U+FFFE and U+FFFF): a run that must end at
# the next "<" can split only one way, so a payload that almost matches
# fails in linear time (a run repeated inside a repetition would backtrack
# exponentially: a hostile UBX could hold the reactor for hours). What is
# left to check, "]]>" and the references, is checked once over the whole
# text. Anything but this shape (CDATA, comments, processing instructions,
# attributes but EndpointData's id, namespaces, whitespace between
# elements, PrivateEndpointData, an XML declaration) is left to the strict
# parser.
_TEXT = r"[^<\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*"
_NAME = r"[A-Za-z][A-Za-z0-9]{0,31}"
_PLACE = rf'<EndpointData id="[0-9A-Za-z{{}}\-]{{1,40}}"><Capabilities>{_TEXT}</Capabilities></EndpointData>'
# The shape every client writes: PSM, CurrentMedia, the places, then flat
# elements (MachineGuid, DDP, Scene, ...) that nobody here reads.
_USER_DATA = re.compile(
    rf"<Data>(?:<PSM>(?P<psm>{_TEXT})</PSM>|<PSM ?/>)?"
    rf"(?:<CurrentMedia>(?P<media>{_TEXT})</CurrentMedia>|<CurrentMedia ?/>)?"
    rf"(?P<places>(?:{_PLACE})*)"
    rf"(?P<rest>(?:<(?P<name>{_NAME})>{_TEXT}</(?P=name)>|<{_NAME} ?/>)*)</Data>\Z"
)
#: How each place matched by _PLACE is cut apart (it is a fixed frame).
_PLACE_END = "</EndpointData>"
_PLACE_ID = len('<EndpointData id="')
_CAPABILITIES = '"><Capabilities>'
_CAPABILITIES_END = len("</Capabilities>")
# An "&" that does not start one of the five named entities or a
# character reference (those are decoded, and checked, by _unescape).
_STRAY_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")


def _unusualText(text: str) -> bool:
    """
    Whether the character data of a payload of the scanner's shape holds
    what expat refuses but the shape lets through: "]]>", a stray "&".
    """
    return "]]>" in text or ("&" in text and _STRAY_AMPERSAND.search(text) is not None)


_ENTITY = re.compile(r"&(#?)(x?)([0-9A-Za-z]+);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class _Unusual(Exception):
    """
    The scanner met something it leaves to the strict parser.
    """


def _entity(match: "re.Match[str]") -> str:
    if not match.group(1):
        return _NAMED[match.group(3)]
    code = int(match.group(3), 16 if match.group(2) else 10)
    if not (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF):
        raise _Unusual()
    return chr(code)


def _unescape(text: Optional[str]) -> str:
    """
    Character data with its references decoded; only called on text
    L{_unusualText} passed, so every C{&} starts a well-formed reference.
    """
    if not text:
        return ""
    if "&" not in text:
        return text
    if "&#" in text:
        return _ENTITY.sub(_entity, text)
    # Named entities only: replaced in C, "&amp;" last so that "&amp;lt;"
    # stays "&lt;".
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


def scanUserData(payload: bytes) -> Optional[tuple[str, str, dict[str, Place]]]:
    """
    The personal message, current media and places of a C{UBX} payload of
    the shape every client writes (C{<Data>}: C{PSM}, C{CurrentMedia}, the
    C{EndpointData} places, then flat text elements), read with one
    regular expression instead of an XML parser; L{None} for anything
    else, which the caller then gives to the strict parser (L{parseXML}).
    Whatever it returns is exactly what the strict path returns for the
    same bytes (property-tested in C{test/test_ubx_scanner.py}).
    """
    fields = scanUserDataFields(payload)
    if fields is None:
        return None
    personalMessage, currentMedia, capabilities = fields
    return personalMessage, currentMedia, {guid: Place(guid, caps) for guid, caps in capabilities.items()}


def scanUserDataFields(payload: bytes) -> Optional[tuple[str, str, dict[str, str]]]:
    """
    L{scanUserData} with each place as its capabilities under its
    normalised GUID, in the payload's order: the caller that already
    holds equal L{Place}s keeps them instead of building new ones.
    """
    scanned = _scan(payload)
    return None if scanned is None else scanned[:3]


#: What L{_scan} reads: the personal message, the current media, the
#: capabilities by GUID, and the tail (the places, the flat elements and
#: C{</Data>}) as the payload's bytes.
_Scanned = tuple[str, str, dict[str, str], bytes]


def _matched(data: bytes, pattern: "re.Pattern[str]") -> Optional[tuple[str, "re.Match[str]"]]:
    """
    C{data} as text and C{pattern}'s match of it, or L{None} when it is not
    UTF-8, does not match, or holds what the structure lets through but
    expat refuses (L{_unusualText}).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shape = pattern.match(text)
    if shape is None or _unusualText(text):
        return None
    return text, shape


def _scan(payload: bytes) -> Optional[_Scanned]:
    matched = None if len(payload) > _MAX_PAYLOAD else _matched(payload, _USER_DATA)
    if matched is None:
        return None
    text, shape = matched
    psm, media, places, rest = shape.group("psm", "media", "places", "rest")
    if "<PSM" in rest or "<CurrentMedia" in rest or "EndpointData" in rest:
        # The strict parser reads the first of these wherever it is.
        return None
    try:
        if "&#" in rest and rest.count("&#") != rest.count("&#x7B;") + rest.count("&#x7D;"):
            # Unread, but a reference to a character XML forbids is an
            # error for the strict parser (the braces of MachineGuid are
            # the common, harmless case).
            _unescape(rest)
        endpoints: dict[str, str] = {}
        if places:
            # Each place is the fixed frame of _PLACE, so it is cut apart
            # with string methods rather than matched again. A GUID given
            # twice keeps its first position and its last capabilities,
            # as the strict path's setdefault does.
            for place in places.split(_PLACE_END)[:-1]:
                split = place.index(_CAPABILITIES, _PLACE_ID)
                capabilities = place[split + len(_CAPABILITIES) : -_CAPABILITIES_END]
                if "&" in capabilities:
                    capabilities = _unescape(capabilities)
                try:
                    guid = normalizeGuid(place[_PLACE_ID:split])
                except ValueError:
                    continue
                endpoints[guid] = capabilities.strip()
        head, playing = _unescape(psm), _unescape(media)
    except _Unusual:
        return None
    start = shape.start("places")
    # The tail starts at a "<", so it is whole characters in either form.
    tail = payload[start:] if len(text) == len(payload) else text[start:].encode("utf-8")
    return head, playing, endpoints, tail


# -- the tail memo ---------------------------------------------------------------------

#: The part of a payload before its tail: C{<Data>}, then the personal
#: message and the current media as _USER_DATA reads them.
_HEAD = re.compile(
    rf"<Data>(?:<PSM>(?P<psm>{_TEXT})</PSM>|<PSM ?/>)?"
    rf"(?:<CurrentMedia>(?P<media>{_TEXT})</CurrentMedia>|<CurrentMedia ?/>)?\Z"
)


def _scanHead(head: bytes) -> Optional[tuple[str, str]]:
    """
    The personal message and current media of a payload's head, the part
    L{_HEAD} matches, or L{None}.
    """
    matched = _matched(head, _HEAD)
    if matched is None:
        return None
    psm, media = matched[1].group("psm", "media")
    try:
        return _unescape(psm), _unescape(media)
    except _Unusual:
        return None


class UserDataTails:
    """
    L{scanUserDataFields} for a session, remembering each contact's last
    tail: the places and the flat elements after C{CurrentMedia}, which a
    contact repeats in every C{UBX} until a place comes or goes, while the
    personal message changes. A payload that ends with the remembered
    tail has only its head read; its places are the remembered ones.

    That is the same answer as reading it whole. The tail begins with
    C{<} and the head ends with C{>}, so nothing the scanner checks (the
    characters of a run, C{]]>}, a reference) can straddle the two, and
    the expression matches the whole exactly when it matches the head and,
    as it did when the tail was remembered, the tail. Equal bytes are the
    test: no digest stands in for them.

    Each remembered tail costs its bytes and its capabilities (about 0.6
    KB for a contact with one place), so a session starts remembering only
    once it has read L{storm} payloads (a small contact list signing in
    does not pay for it), and it forgets them all when it holds more than
    twice as many tails as it has contacts (addresses no longer listed).
    A tail longer than 4 KiB is read every time, never remembered.
    """

    __slots__ = ("_tails", "_seen", "storm")

    def __init__(self, storm: int = 256) -> None:
        self._tails: Optional[dict[str, tuple[bytes, dict[str, str]]]] = None
        self._seen = 0
        #: Payloads read before tails are remembered.
        self.storm = storm

    def scan(self, email: str, payload: bytes, contacts: int) -> Optional[tuple[str, str, dict[str, str]]]:
        """
        L{scanUserDataFields} of C{payload} from C{email}, a contact of a
        list of C{contacts}. The capabilities returned may be the
        remembered dict: the caller reads it and does not keep it.
        """
        tails = self._tails
        if tails is not None:
            known = tails.get(email)
            if known is not None:
                tail, capabilities = known
                size = len(payload)
                if size <= _MAX_PAYLOAD and payload.endswith(tail):
                    head = _scanHead(payload[: size - len(tail)])
                    if head is not None:
                        return head[0], head[1], capabilities
        scanned = _scan(payload)
        if scanned is None:
            return None
        personalMessage, currentMedia, capabilities, tail = scanned
        if tails is None:
            self._seen += 1
            if self._seen < self.storm:
                return personalMessage, currentMedia, capabilities
            tails = self._tails = {}
        elif len(tails) > 2 * contacts + 16 and email not in tails:
            tails.clear()
        if len(tail) <= _MAX_TAIL:
            tails[email] = (tail, capabilities)
        else:
            tails.pop(email, None)
        return personalMessage, currentMedia, capabilities
