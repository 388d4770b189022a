# -*- test-case-name: test.test_server_abch -*-
"""
What the local network's two SOAP services (sharing and address book)
share: the fault they refuse a request with, the readers of request
fields and the bodies of the plain responses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Optional
from xml.etree.ElementTree import Element

from msnp.namespaces import AB_NS
from msnp.xmlsafe import children, escapeText, findPath, textOf

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.abch import ABCHResource
    from msnp.server.accounts import Account


class ResourceService:
    """
    The base of one C{.asmx} service's actions, over the resource's store.
    """

    def __init__(self, resource: "ABCHResource") -> None:
        self.resource = resource
        self.store = resource.store

    def actions(self) -> "dict[str, Callable[[Account, Element], str]]":
        """
        The SOAP actions this service answers, by name.
        """
        raise NotImplementedError()


class ServiceFault(Exception):
    """
    A request the service refuses with a SOAP fault.
    """

    def __init__(
        self,
        errorCode: str,
        message: str,
        httpStatus: int = 500,
        faultCode: str = "soap:Client",
    ) -> None:
        super().__init__(message)
        self.errorCode = errorCode
        self.message = message
        self.httpStatus = httpStatus
        self.faultCode = faultCode


def isoTime(seconds: float) -> str:
    whole = int(seconds)
    fraction = int(round((seconds - whole) * 10_000_000)) % 10_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:07d}Z"


def textAt(element: Optional[Element], *names: str) -> str:
    return textOf(element, *names).strip()


def isTrue(text: str) -> bool:
    return text.strip().lower() == "true"


def under(element: Optional[Element], *path: str) -> list[Element]:
    """
    The elements at C{path} below C{element}: every step but the last is
    a single child, the last step collects all children of that name.
    """
    holder = findPath(element, *path[:-1]) if len(path) > 1 else element
    if holder is None:
        return []
    return children(holder, path[-1])


def emptyResponse(action: str) -> str:
    """
    The body of a successful call that answers nothing but success.
    """
    return f'<{action}Response xmlns="{AB_NS}" />'


def guidResponse(action: str, guid: str) -> str:
    """
    The body of a successful call that answers the id of what it made.
    """
    return (
        f'<{action}Response xmlns="{AB_NS}"><{action}Result>'
        f"<guid>{escapeText(guid)}</guid></{action}Result></{action}Response>"
    )
