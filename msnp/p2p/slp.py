# -*- test-case-name: test.test_p2p_slp -*-
"""
The MSNSLP codec: the SIP-like text inside transport messages with session
id 0 (MSNP18-p2p.md P.4).

A message is a start line, headers, a blank line, a body of C{Name: value}
lines closed by a blank line, and one NUL byte; every line ends in CR LF
and C{Content-Length} counts the body including the NUL. Readers treat
both header sections as unordered, trim values, read the body up to the
first NUL and distrust C{Content-Length} (P.4.2); writers use the order
pidgin, papyon and WLM use, upper-case braced GUIDs, C{CSeq} 0 in requests
and 1 in responses. Pure: bytes in, values out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Optional

from msnp.p2p.errors import MalformedSLP

VERSION = "MSNSLP/1.0"

#: EUF-GUIDs of the applications (P.1), upper case as pidgin compares them.
EUF_MSN_OBJECT = "{A4268EEC-FEC5-49E5-95C3-F126696BDBF6}"
EUF_FILE = "{5D3E02AB-6190-11D3-BBBB-00C04F795683}"
EUF_WEBCAM_PUSH = "{4BD96FC0-AB17-4425-A14A-439185962DC8}"
EUF_WEBCAM_PULL = "{1C9AA97E-9C05-4583-A3BD-908A196F1E92}"
EUF_SHARED_PHOTOS = "{41D3E74E-04A2-4B37-96F8-08ACDB610874}"
EUF_ACTIVITY = "{6A13AF9C-5308-4F35-923A-67E8DDA40C2F}"

#: Content types (P.4.3).
SESSION_REQUEST = "application/x-msnmsgr-sessionreqbody"
SESSION_CLOSE = "application/x-msnmsgr-sessionclosebody"
TRANSPORT_REQUEST = "application/x-msnmsgr-transreqbody"
TRANSPORT_RESPONSE = "application/x-msnmsgr-transrespbody"

#: Largest SLP text accepted (a file INVITE with a preview is a few KB).
MAX_SLP = 64 * 1024

_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Error", 603: "Decline", 606: "Unacceptable"}


def newGuid() -> str:
    """
    A fresh Call-ID or branch: upper case, in braces.
    """
    return "{" + str(uuid.uuid4()).upper() + "}"


@dataclass(frozen=True)
class SLPMessage:
    """
    One MSNSLP message.

    @ivar method: C{"INVITE"}, C{"BYE"}, ... for a request, L{None} for a
        response.
    @ivar target: the request URI after C{MSNMSGR:} (not validated: pidgin
        writes its own address there in BYE).
    @ivar status: the response code, L{None} for a request.
    @ivar reason: the response phrase.
    @ivar headers: C{(name, value)} pairs, in order.
    @ivar body: the body's C{(name, value)} pairs, in order.
    """

    method: Optional[str]
    target: str
    status: Optional[int]
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: tuple[tuple[str, str], ...]

    @property
    def isRequest(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> Optional[str]:
        """
        The first header called C{name} (case-insensitive), or L{None}.
        """
        return _lookup(self.headers, name)

    def field(self, name: str) -> Optional[str]:
        """
        The first body field called C{name} (case-insensitive), or L{None}.
        """
        return _lookup(self.body, name)

    @property
    def callId(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def branch(self) -> str:
        """
        The C{;branch={...}} of C{Via} (with or without the space before
        the C{;}), or C{""}.
        """
        via = self.header("Via") or ""
        _, sep, rest = via.partition("branch=")
        return rest.split(";", 1)[0].strip() if sep else ""

    @property
    def contentType(self) -> str:
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    @property
    def sender(self) -> str:
        """
        The account in C{From: <msnmsgr:account>}, lower case, without any
        C{;{epid}}.
        """
        return _account(self.header("From") or "")

    @property
    def recipient(self) -> str:
        return _account(self.header("To") or "")

    @property
    def sessionId(self) -> Optional[int]:
        """
        The body's C{SessionID} if it is a decimal below 2**32.
        """
        value = (self.field("SessionID") or "").strip()
        if value.isdigit() and len(value) <= 10 and int(value) < 2**32:
            return int(value)
        return None

    def encode(self) -> bytes:
        """
        The UTF-8 text with its NUL; C{Content-Length} is computed (any
        given one is replaced).
        """
        body = "".join(f"{k}: {v}\r\n" for k, v in self.body).encode("utf-8") + b"\r\n\0"
        if self.method is not None:
            start = f"{self.method} MSNMSGR:{self.target} {VERSION}"
        else:
            start = f"{VERSION} {self.status} {self.reason}"
        lines = [start]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _lookup(pairs: tuple[tuple[str, str], ...], name: str) -> Optional[str]:
    wanted = name.lower()
    for key, value in pairs:
        if key.lower() == wanted:
            return value
    return None


def _account(value: str) -> str:
    value = value.strip().strip("<>").strip()
    if value.lower().startswith("msnmsgr:"):
        value = value[len("msnmsgr:") :]
    return value.split(";", 1)[0].strip().lower()


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in text.split("\n"):
        name, sep, value = line.rstrip("\r").partition(":")
        if sep and name.strip():
            pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def parseSLP(data: bytes) -> SLPMessage:
    """
    Read one MSNSLP message (the reassembled transport payload).

    @raise MalformedSLP: too long, not UTF-8, no start line of a request
        or a response, or no blank line after the headers.
    """
    if len(data) > MAX_SLP:
        raise MalformedSLP(f"SLP message of {len(data)} bytes")
    text_bytes = data.split(b"\0", 1)[0]
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSLP("SLP message is not UTF-8") from None
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        raise MalformedSLP("SLP message without a blank line after its headers")
    start, _, headerText = head.partition("\r\n")
    words = start.split(" ")
    if len(words) >= 3 and words[0] == VERSION and words[1].isdigit() and len(words[1]) == 3:
        method, target, status, reason = None, "", int(words[1]), " ".join(words[2:]).strip()
    elif len(words) == 3 and words[2] == VERSION and words[0].isalpha() and words[0].isupper():
        uri = words[1]
        if uri[:8].upper() != "MSNMSGR:":
            raise MalformedSLP(f"SLP request URI {uri[:40]!r}")
        method, target, status, reason = words[0], uri[8:], None, ""
    else:
        raise MalformedSLP(f"not an SLP start line: {start[:60]!r}")
    return SLPMessage(method, target, status, reason, _pairs(headerText), _pairs(body))


# -- building ---------------------------------------------------------------------


def _headers(
    to: str, sender: str, branch: str, cseq: int, callId: str, contentType: str
) -> tuple[tuple[str, str], ...]:
    return (
        ("To", f"<msnmsgr:{to}>"),
        ("From", f"<msnmsgr:{sender}>"),
        ("Via", f"{VERSION}/TLP ;branch={branch}"),
        ("CSeq", str(cseq)),
        ("Call-ID", callId),
        ("Max-Forwards", "0"),
        ("Content-Type", contentType),
    )


def buildInvite(
    to: str,
    sender: str,
    *,
    eufGuid: str,
    sessionId: int,
    appId: int,
    context: str,
    callId: Optional[str] = None,
    branch: Optional[str] = None,
) -> SLPMessage:
    """
    A session INVITE (P.4.1, P.4.4) with a fresh Call-ID and branch unless
    given.
    """
    body = (("EUF-GUID", eufGuid), ("SessionID", str(sessionId)), ("AppID", str(appId)), ("Context", context))
    headers = _headers(to, sender, branch or newGuid(), 0, callId or newGuid(), SESSION_REQUEST)
    return SLPMessage("INVITE", to, None, "", headers, body)


def buildResponse(
    request: SLPMessage,
    sender: str,
    status: int,
    body: Optional[tuple[tuple[str, str], ...]] = None,
    contentType: Optional[str] = None,
) -> SLPMessage:
    """
    The response to C{request} from C{sender} (P.4.5): To/From swapped,
    the request's branch and Call-ID echoed byte for byte, C{CSeq: 1}, the
    request's content type; the body is C{SessionID} unless given.
    """
    if body is None:
        session = request.field("SessionID")
        body = (("SessionID", session),) if session is not None else ()
    headers = _headers(
        request.sender, sender, request.branch, 1, request.callId, contentType or request.contentType
    )
    return SLPMessage(None, "", status, _REASONS.get(status, "Error"), headers, body)


def buildBye(to: str, sender: str, callId: str, sessionId: int, branch: Optional[str] = None) -> SLPMessage:
    """
    The BYE closing session C{sessionId} of C{callId} (P.4.6), with
    C{SessionID} in the body (papyon looks sessions up by it first).
    """
    headers = _headers(to, sender, branch or newGuid(), 0, callId, SESSION_CLOSE)
    return SLPMessage("BYE", to, None, "", headers, (("SessionID", str(sessionId)),))


def buildTransportDecline(request: SLPMessage, sender: str) -> SLPMessage:
    """
    The answer of a switchboard-only client to a direct-connection
    proposal (P.5): C{200 OK}, C{transrespbody}, C{Listening: false}.
    """
    nonceName = "Hashed-Nonce" if request.field("Hashed-Nonce") is not None else "Nonce"
    body = (("Bridge", "TCPv1"), ("Listening", "false"), (nonceName, "{00000000-0000-0000-0000-000000000000}"))
    return buildResponse(request, sender, 200, body, TRANSPORT_RESPONSE)
