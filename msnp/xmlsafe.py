# -*- test-case-name: test.test_xmlsafe -*-
"""
Parsing XML that came from a peer we do not trust.

Every XML document msnp reads (SOAP responses, C{ADL}/C{UBX}/C{NOT}/C{GCF}
payloads) arrives from the network. A document type declaration is the door
to external entities and entity-expansion bombs, and MSN never uses one, so
any document declaring a DTD or an entity is refused before the parser sees
it. Sizes are capped as well.

Namespaces differ between servers (and between RST and RST2), so lookups go
by local name and never by prefix.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional
from xml.etree.ElementTree import Element, ParseError, XMLParser

from msnp.errors import UnsafeXML

#: Default cap on a document's size: far above any real address book page.
DEFAULT_MAX_XML_BYTES = 16 * 1024 * 1024


_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class XMLError(UnsafeXML):
    """
    A document could not be parsed, or was refused as unsafe.
    """


def parseXML(data: bytes | str, maxBytes: int = DEFAULT_MAX_XML_BYTES) -> Element:
    """
    Parse C{data} into an element tree, refusing anything dangerous.

    @param data: the document; C{str} is encoded as UTF-8 first.
    @param maxBytes: documents larger than this are refused unread.
    @raise XMLError: the document is too large, declares a DTD or entity,
        or is not well-formed.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > maxBytes:
        raise XMLError(f"XML document of {len(data)} bytes exceeds the {maxBytes}-byte cap")
    if b"\x00" in data:
        # UTF-8 XML never contains a NUL; UTF-16 and UTF-32 do, and would
        # hide a DTD from the byte search below.
        raise XMLError("malformed XML: NUL bytes (not a UTF-8 document); refused")
    if _FORBIDDEN.search(data):
        raise XMLError("XML document declares a DTD or entity; refused")
    parser = XMLParser()
    try:
        parser.feed(data)
        root: Element = parser.close()
    except ParseError as e:
        raise XMLError(f"malformed XML: {e}") from None
    return root


def localName(tag: str) -> str:
    """
    Strip the C{{namespace}} part from an ElementTree tag.
    """
    return tag.rpartition("}")[2]


def iterByName(element: Element, name: str) -> Iterator[Element]:
    """
    Every descendant of C{element} (itself included) whose local name is
    C{name}, in document order.
    """
    for child in element.iter():
        if localName(child.tag) == name:
            yield child


def children(element: Element, name: str) -> list[Element]:
    """
    The direct children of C{element} whose local name is C{name}.
    """
    return [child for child in element if localName(child.tag) == name]


def child(element: Optional[Element], name: str) -> Optional[Element]:
    """
    The first direct child of C{element} named C{name}, or L{None}.
    """
    if element is None:
        return None
    for c in element:
        if localName(c.tag) == name:
            return c
    return None


def soapFault(root: Element) -> Optional[Element]:
    """
    The C{Fault} of a SOAP response (1.1 or 1.2), or L{None}: by the SOAP
    rules it is the first child of C{Body}, so only that one element is
    looked at, never the whole document; an element named C{Fault} deep
    inside a normal reply (a contact's field, say) is data, not a fault.
    """
    body = child(root, "Body")
    if body is None or len(body) == 0:
        return None
    first = body[0]
    return first if localName(first.tag) == "Fault" else None


def firstChildren(element: Element) -> dict[str, Element]:
    """
    The first direct child of C{element} for each local name, in one pass:
    for reading several fields of one element, where each L{child} call
    would scan the children again.
    """
    found: dict[str, Element] = {}
    for c in element:
        name = c.tag.rpartition("}")[2]
        if name not in found:
            found[name] = c
    return found


def childrenByName(element: Element) -> dict[str, list[Element]]:
    """
    The direct children of C{element} grouped by local name, each group in
    document order, in one pass.
    """
    found: dict[str, list[Element]] = {}
    for c in element:
        name = c.tag.rpartition("}")[2]
        group = found.get(name)
        if group is None:
            found[name] = [c]
        else:
            group.append(c)
    return found


def findPath(element: Optional[Element], *names: str) -> Optional[Element]:
    """
    Walk down direct children by local names; L{None} when a step is missing.
    """
    current = element
    for name in names:
        current = child(current, name)
        if current is None:
            return None
    return current


def textOf(element: Optional[Element], *names: str, default: str = "") -> str:
    """
    The text of the element at C{names} below C{element}, or C{default}.
    """
    found = findPath(element, *names) if names else element
    if found is None or found.text is None:
        return default
    return found.text


def escapeText(text: str) -> str:
    """
    Escape C{text} for use as XML character data or an attribute value.
    """
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )
