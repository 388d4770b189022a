# -*- test-case-name: test.test_protocol -*-
"""
The exception family of msnp.

Every failure a caller can see through a L{Deferred <twisted.internet.defer.Deferred>} is one of these, so an
application can tell "wrong password" (do not retry) from "server busy"
(retry later) from "the peer sent garbage" (report a bug) without parsing
messages.
"""

from __future__ import annotations

from typing import Optional

#: Meanings of the numeric error codes of MSNP18 (reference section 1.7).
ERROR_MEANINGS: dict[int, str] = {
    200: "syntax error",
    201: "invalid parameter",
    203: "invalid federated user",
    204: "invalid or unroutable network for a contact",
    205: "invalid user",
    206: "domain name missing",
    207: "already logged in",
    208: "invalid user name",
    209: "invalid friendly name",
    210: "list full",
    212: "unexpected",
    213: "invalid rename request",
    215: "already on the list or already in the session",
    216: "not on list",
    217: "user offline or not accepting instant messages",
    218: "already in that mode",
    219: "user is in the opposite list",
    220: "not accepting pages",
    223: "too many groups",
    224: "invalid group",
    225: "user not in group",
    227: "group not empty",
    228: "group name already exists",
    229: "group name too long",
    230: "cannot remove group 0",
    231: "invalid group",
    232: "invalid mobile number",
    233: "unknown mobile number",
    234: "unknown keitai domain",
    240: "empty domain element in list payload",
    241: "invalid membership for ADL/RML",
    280: "switchboard failed",
    281: "transfer to switchboard failed",
    282: "P2P error",
    300: "required field missing",
    301: "too many hits",
    302: "not logged in",
    402: "error accessing contact list",
    403: "error accessing contact list",
    420: "invalid account permissions",
    500: "internal server error",
    501: "database server error",
    502: "command disabled",
    508: "unknown error",
    509: "UPS failure",
    510: "file operation failed",
    511: "banned",
    520: "memory allocation failed",
    540: "challenge response failed",
    600: "server busy",
    601: "server unavailable",
    602: "peer notification server down",
    603: "database connection failed",
    604: "server going down",
    605: "server unavailable",
    700: "could not create connection",
    707: "could not create connection",
    710: "bad CVR parameters",
    711: "write is blocking",
    712: "session is overloaded",
    713: "calling too rapidly",
    714: "too many sessions",
    715: "not expected",
    717: "bad friend file",
    731: "not expected (CVR)",
    800: "changing too rapidly",
    910: "server too busy",
    911: "authentication failed",
    912: "server too busy",
    913: "not allowed when offline or hidden",
    914: "server unavailable",
    915: "server unavailable",
    916: "server unavailable",
    917: "authentication failed",
    918: "server too busy",
    919: "server too busy",
    920: "not accepting new users",
    921: "server too busy",
    922: "server too busy",
    923: "kids' passport without parental consent",
    924: "passport account not yet verified",
    927: "passport account suspended",
    928: "bad ticket",
    931: "account not on this server",
    933: "invalid circle membership",
}

#: Codes after which retrying later is sensible (server busy or down).
RETRYABLE_CODES = frozenset(
    {500, 501, 600, 601, 602, 603, 604, 605, 800, 910, 912, 914, 915, 916,
     918, 919, 921, 922}
)


def describeErrorCode(code: int) -> str:
    """
    Name a numeric MSNP error code in words, even one the tables never saw.
    """
    return ERROR_MEANINGS.get(code, "unknown error")


class MSNPError(Exception):
    """
    Base class of every msnp failure.
    """


class ProtocolError(MSNPError):
    """
    The peer broke the protocol: a malformed line, an impossible length, an
    unexpected reply, a limit exceeded.
    """


class ConnectionLost(MSNPError):
    """
    The connection closed while a request was still waiting for its reply.
    """


class RequestTimeout(MSNPError):
    """
    A command's reply did not arrive within its timeout.
    """


class ServerError(MSNPError):
    """
    The server answered a command with a numeric error line.

    @ivar code: the three-digit error code.
    @ivar meaning: its meaning from the reference table.
    @ivar command: the name of the command that failed, if known.
    @ivar payload: the payload the error carried (ADL/RML echo), or L{None}.
    """

    def __init__(
        self,
        code: int,
        command: Optional[str] = None,
        payload: Optional[bytes] = None,
    ) -> None:
        self.code = code
        self.meaning = describeErrorCode(code)
        self.command = command
        self.payload = payload
        where = f" in reply to {command}" if command else ""
        super().__init__(f"server error {code} ({self.meaning}){where}")

    @property
    def retryable(self) -> bool:
        """
        Whether the code says the server is busy or down, not that the
        request itself was wrong.
        """
        return self.code in RETRYABLE_CODES


class AuthenticationError(MSNPError):
    """
    The credentials were refused: wrong password, unknown account, a ticket
    or MBI response the server did not accept (C{911}). Do not retry
    automatically.
    """


class ServiceError(MSNPError):
    """
    An HTTP/SOAP service failed: a transport error, an HTTP error status, a
    SOAP fault or a body that could not be parsed.

    @ivar status: the HTTP status code, if a response arrived.
    @ivar faultCode: the SOAP fault code, if the body held a fault.
    @ivar faultString: the SOAP fault text, if any.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        faultCode: Optional[str] = None,
        faultString: Optional[str] = None,
    ) -> None:
        self.status = status
        self.faultCode = faultCode
        self.faultString = faultString
        super().__init__(message)


class UnsafeXML(ServiceError):
    """
    A document was refused before parsing: it declared a DTD or entities, or
    it was larger than the configured cap.
    """


class LoginTimeout(MSNPError):
    """
    The whole login, or one of its steps, took longer than allowed.
    """


class UnsupportedProtocol(ProtocolError):
    """
    The server shares no protocol version with the client (C{VER trid 0}).
    """


class SignedOut(MSNPError):
    """
    The session ended: the server sent C{OUT}, or the user logged out.

    @ivar reason: the C{OUT} reason code (C{OTH}, C{SSD}, ...) or L{None}.
    """

    def __init__(self, reason: Optional[str] = None) -> None:
        self.reason = reason
        super().__init__(f"signed out ({reason or 'no reason given'})")


class ContactOffline(MSNPError):
    """
    The contact cannot be reached: offline, hidden or unknown (C{217}).
    """


class MessageNotDelivered(MSNPError):
    """
    A message was not confirmed: C{NAK}, a timeout, or the switchboard closed
    before the acknowledgement arrived.
    """


class ContactListError(MSNPError):
    """
    A contact-list operation was refused (unknown contact, already on the
    list, ...). The local list was left as it was.
    """
