# -*- test-case-name: test.test_server_limits -*-
"""
Request paths routed as the real service routed them.

The Passport and address-book hosts ran on IIS, which collapses repeated
slashes and compares paths without regard to case. Clients relied on
both: a widely used client library posts its SOAP requests to
C{//RST.srf} and C{//abservice/abservice.asmx} (a base URL ending in C{/}
joined with a path starting with one), others spell C{abservice} or
C{SharingService.asmx} in their own case. twisted.web instead treats an
empty segment as a child named C{b""} and child names as exact bytes, so
those requests got C{404} and the client waited for ever.

L{ServiceSite} fixes this once, for every resource of the site (SSO,
ABCH and whatever other services are mounted there, over HTTP and
HTTPS): before traversal, empty segments are dropped from the path
(a trailing slash is kept); while traversing, a child that is not found
under its spelling is looked up again among the parent's static
children (C{putChild}) ignoring case. Resources with a dynamic
C{getChild} compare case-insensitively themselves where they need to
(as L{msnp.server.abch.ABCHResource} does).
"""

from __future__ import annotations

from typing import Optional

from twisted.web.resource import IResource
from twisted.web.server import Request, Site


def refuseUnlessPOST(request: Request, what: bytes) -> Optional[bytes]:
    """
    Answer a request that is not a C{POST} with C{405} and the plain text
    body to return (C{"<what> requests must be POSTed."}); L{None} for a
    C{POST}, which the caller goes on to serve.
    """
    if request.method == b"POST":
        return None
    request.setResponseCode(405)
    request.setHeader(b"allow", b"POST")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return what + b" requests must be POSTed.\n"


def collapseSegments(segments: list[bytes]) -> list[bytes]:
    """
    The path segments of C{/a//b///c/} as C{/a/b/c/} would have them:
    every empty segment removed except a trailing one (which means "the
    index of the last resource").

    >>> collapseSegments([b"", b"RST.srf"])
    [b'RST.srf']
    >>> collapseSegments([b"abservice", b"", b""])
    [b'abservice', b'']
    """
    kept = [segment for segment in segments if segment]
    if segments and not segments[-1]:
        kept.append(b"")
    return kept


def _staticName(parent: IResource, name: bytes) -> bytes:
    """
    C{name} as spelt by a static child of C{parent} that equals it
    ignoring case, else C{name} itself.
    """
    children = getattr(parent, "children", None)
    if not isinstance(children, dict) or not name or name in children:
        return name
    folded = name.lower()
    for key in children:
        if isinstance(key, bytes) and key.lower() == folded:
            return key
    return name


def childForRequest(root: IResource, request: Request) -> IResource:
    """
    Traverse C{request.postpath} from C{root} as
    L{twisted.web.resource.getChildForRequest} does, with the two rules of
    the module docstring.
    """
    postpath = request.postpath = collapseSegments(list(request.postpath or ()))
    prepath = request.prepath if request.prepath is not None else []
    request.prepath = prepath
    resource = root
    while postpath and not resource.isLeaf:
        segment = postpath.pop(0)
        prepath.append(segment)
        resource = resource.getChildWithDefault(_staticName(resource, segment), request)
    return resource


class ServiceSite(Site):
    """
    A L{Site} whose paths are routed by L{childForRequest}.
    """

    def getResourceFor(self, request: Request) -> IResource:
        request.site = self
        request.sitepath = list(request.prepath or ())  # type: ignore[attr-defined]
        return childForRequest(self.resource, request)


__all__ = ["ServiceSite", "childForRequest", "collapseSegments"]
