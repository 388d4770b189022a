# -*- test-case-name: test.test_contacts -*-
"""
The C{ADL}/C{RML}/C{FQY} list payload (reference section 3.6): the XML
document that names addresses, grouped by domain, with their list bits.

Client and local network both speak it, so it lives here, apart from the
contact model, as one of the modules L{msnp.server} may import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional
from xml.etree.ElementTree import Element

from msnp.contacts import NETWORK_PASSPORT, NETWORK_PHONE, SENDABLE_LISTS, Lists, normalizeEmail
from msnp.errors import ProtocolError
from msnp.wire import decodeParameter
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML


@dataclass(frozen=True)
class ListEntry:
    """
    One address of an C{ADL}/C{RML}/C{FQY} payload.

    @ivar displayName: the C{f} attribute (server-initiated C{ADL} only),
        already percent-decoded.
    """

    email: str
    lists: Lists
    network: int = NETWORK_PASSPORT
    displayName: Optional[str] = None


def _split(email: str) -> tuple[str, str]:
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"not an e-mail address: {email!r}")
    return local, domain


def buildListPayloads(
    entries: Iterable[ListEntry], initial: bool, maxBytes: int = 7500
) -> list[bytes]:
    """
    Build the C{ADL}/C{RML} payload(s) for C{entries} (reference section 3.5).

    Addresses are grouped by domain in first-appearance order, one
    C{<d n="domain">} per domain and chunk; only the FL/AL/BL bits are sent
    and entries left with no bit are skipped; duplicates are merged. When the
    list does not fit into C{maxBytes}, it is split into several complete
    documents, each with C{l="1"} on the root when C{initial}.
    Telephone entries (network 4, C{tel:} addresses) go into a C{<t>} element.

    @param initial: whether this is the login-time list (C{<ml l="1">}).
    @return: the payloads to send one after the other; C{[b'<ml l="1"></ml>']}
        for an empty initial list, C{[]} for an empty incremental one.
    @raise ValueError: an address is not an e-mail address, or a single
        entry cannot fit into C{maxBytes}.
    """
    merged: dict[tuple[str, int], int] = {}
    for entry in entries:
        bits = int(entry.lists & SENDABLE_LISTS)
        if not bits:
            continue
        email = normalizeEmail(entry.email)
        key = (email, int(entry.network))
        merged[key] = merged.get(key, 0) | bits

    # domain key -> list of <c> elements; the key "" with phone=True is <t>.
    sections: dict[tuple[bool, str], list[str]] = {}
    for (email, network), bits in merged.items():
        if network == NETWORK_PHONE or email.startswith("tel:"):
            element = f'<c n="{escapeText(email)}" l="{bits}" />'
            sections.setdefault((True, ""), []).append(element)
            continue
        local, domain = _split(email)
        element = f'<c n="{escapeText(local)}" l="{bits}" t="{network}" />'
        sections.setdefault((False, domain), []).append(element)

    head = '<ml l="1">' if initial else "<ml>"
    tail = "</ml>"
    if not sections:
        return [(head + tail).encode("utf-8")] if initial else []

    def opening(phone: bool, domain: str) -> str:
        return "<t>" if phone else f'<d n="{escapeText(domain)}">'

    def closing(phone: bool) -> str:
        return "</t>" if phone else "</d>"

    fixed = len(head.encode("utf-8")) + len(tail.encode("utf-8"))
    payloads: list[bytes] = []
    parts: list[str] = []
    size = fixed
    for (phone, domain), elements in sections.items():
        openTag = opening(phone, domain)
        closeTag = closing(phone)
        wrapper = len(openTag.encode("utf-8")) + len(closeTag.encode("utf-8"))
        open_ = False
        for element in elements:
            cost = len(element.encode("utf-8")) + (0 if open_ else wrapper)
            if size + cost > maxBytes and parts:
                if open_:
                    parts.append(closeTag)
                payloads.append((head + "".join(parts) + tail).encode("utf-8"))
                parts, size, open_ = [], fixed, False
                cost = len(element.encode("utf-8")) + wrapper
            if size + cost > maxBytes:
                raise ValueError(f"a single list entry does not fit into {maxBytes} bytes")
            if not open_:
                parts.append(openTag)
                open_ = True
            parts.append(element)
            size += cost
        if open_:
            parts.append(closeTag)
    if parts:
        payloads.append((head + "".join(parts) + tail).encode("utf-8"))
    return payloads


def _intAttribute(element: Element, name: str, default: int) -> int:
    value = element.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ProtocolError(f"list payload: {name}={value!r} is not a number") from None


def parseListPayload(data: bytes) -> list[ListEntry]:
    """
    Read an C{ADL}/C{RML}/C{FQY} payload (reference sections 3.5–3.7).

    A missing C{l} reads as no bits (FQY replies), a missing C{t} as
    network 1; C{f} is percent-decoded (never with C{+} as space); unknown
    attributes are ignored; telephone (C{<t>}) entries are skipped.

    @raise ProtocolError: the payload is not well-formed XML, not an
        C{<ml>} document, or an element lacks its name.
    """
    try:
        root = parseXML(data)
    except XMLError as e:
        raise ProtocolError(f"list payload is not usable XML: {e}") from None
    if localName(root.tag) != "ml":
        raise ProtocolError(f"list payload root is <{localName(root.tag)}>, not <ml>")
    entries: list[ListEntry] = []
    for section in root:
        kind = localName(section.tag)
        if kind == "t":
            continue
        if kind != "d":
            continue
        domain = (section.get("n") or "").strip()
        if not domain:
            raise ProtocolError("list payload has a <d> without a domain")
        for element in section:
            if localName(element.tag) != "c":
                continue
            local = (element.get("n") or "").strip()
            if not local:
                raise ProtocolError(f"list payload has a <c> without a name in {domain!r}")
            bits = _intAttribute(element, "l", 0)
            network = _intAttribute(element, "t", NETWORK_PASSPORT)
            if bits < 0 or bits > 0xFF:
                raise ProtocolError(f"list payload: impossible list bits {bits}")
            encodedName = element.get("f")
            name = decodeParameter(encodedName) if encodedName is not None else None
            entries.append(
                ListEntry(f"{local}@{domain}".lower(), Lists(bits & 0x1F), network, name)
            )
    return entries
