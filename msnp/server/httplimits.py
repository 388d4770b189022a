# -*- test-case-name: test.test_server_limits -*-
"""
The local network's HTTP site with its request bodies capped as they
arrive.

twisted.web reads a whole request body, spooling anything over 100 KB to
a temporary file, before a resource sees it; a cap applied by the resource
comes too late (two connections announcing 300 MiB each filled the disk).
L{BoundedRequest} refuses a body larger than C{requestBody} bytes the
moment that is known: at once from C{Content-Length}, or as soon as a
chunked body passes the limit. It answers C{413} and closes the
connection; nothing of the body is stored.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Optional

from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from msnp.server.httproute import ServiceSite
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits

log = Logger()

_REFUSAL = (
    b"HTTP/1.1 413 Request Entity Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class BoundedRequest(Request):
    """
    A request whose body may not exceed L{maxBody} bytes.

    @cvar maxBody: the cap; a subclass per site sets it (see L{boundedSite}).
    """

    maxBody = DEFAULT_LIMITS.requestBody

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bodyReceived = 0
        self.refused = False

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > self.maxBody:
            # Keep nothing: a throw-away buffer instead of a spool file.
            self.content = io.BytesIO()
            self._refuse(f"announced {length}-byte body")
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self._bodyReceived += len(data)
        if self._bodyReceived > self.maxBody:
            self._refuse("chunked body past the limit")
            return
        super().handleContentChunk(data)

    def _refuse(self, why: str) -> None:
        self.refused = True
        log.info("Refusing an HTTP request: {why} (limit {limit} bytes)", why=why, limit=self.maxBody)
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(_REFUSAL)
            transport.loseConnection()


def boundedSite(root: IResource, limits: ServerLimits = DEFAULT_LIMITS) -> Site:
    """
    A L{Site} serving C{root} whose request bodies are capped at
    C{limits.requestBody} bytes while they arrive, its paths routed as
    the real service routed them (L{ServiceSite}).
    """
    requestClass: Callable[..., Request] = type(
        "BoundedRequest", (BoundedRequest,), {"maxBody": limits.requestBody}
    )
    site = ServiceSite(root, requestFactory=requestClass)
    site.noisy = False
    return site
