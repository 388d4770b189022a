# -*- test-case-name: test.test_presencelines -*-
"""
The presence lines read straight from their bytes: C{NLN}, C{FLN} and the
C{UBX} header, the bulk of what a notification server pushes (a contact
list of a thousand people changing status produces little else).

The general path makes a L{msnp.wire.Command} of every line and routes it
through the C{handle_<NAME>} dispatch; for these three shapes that costs
more than what the line says. Each reader here takes only the shape every
server writes (MSNP18 C{1:} addresses, single spaces, ASCII) and gives
exactly what L{msnp.wire.parseIncoming} followed by
L{msnp.nsmessages.parsePresence}, L{msnp.nsmessages.parseOffline} or
L{msnp.nsmessages.parseUserData} give for the same line; anything else it
answers L{None}, and the line goes the general way, which also logs what
is wrong with it. C{test/test_presencelines.py} checks the agreement on
generated and hostile lines.
"""

from __future__ import annotations

from typing import Optional

from msnp.contacts import Status
from msnp.errors import ProtocolError
from msnp.nsmessages import AccountReference, PresenceUpdate, _hasNetworkPrefix, parseAccount
from msnp.wire import decodeParameter

__all__ = ["readOffline", "readPresence", "readUserDataHeader"]

_STATUSES: dict[str, Status] = {status.value: status for status in Status}
#: Longest payload length token taken here (longer ones go the general way,
#: which refuses them as huge without converting).
_MAX_LENGTH_DIGITS = 9


def _arguments(line: bytes, counts: tuple[int, ...]) -> Optional[list[str]]:
    """
    The tokens after the command name, when the line is ASCII, has one of
    C{counts} tokens in all and no doubled or trailing space.
    """
    if not line.isascii():
        return None
    args = line.decode("ascii").split(" ")
    if len(args) not in counts or "" in args:
        return None
    del args[0]
    return args


def _account(token: str) -> Optional[AccountReference]:
    """
    The account of an C{N:address} token: what
    L{msnp.nsmessages._accountAt} reads for it (with a network prefix it
    never looks at the next token), L{None} for the older two-token form
    or an address it refuses.
    """
    if not _hasNetworkPrefix(token):
        return None
    try:
        return parseAccount(token)
    except ProtocolError:
        return None


def readPresence(line: bytes) -> Optional[PresenceUpdate]:
    """
    C{NLN STATUS N:address name capabilities msnobject [icon]}, or
    L{None} for any other shape.
    """
    args = _arguments(line, (6, 7))
    if args is None or line[:4] != b"NLN ":
        return None
    status = _STATUSES.get(args[0])
    account = _account(args[1]) if status is not None else None
    if account is None:
        return None
    assert status is not None
    name, capabilities, raw = args[2], args[3], args[4]
    msnObject = decodeParameter(raw) if raw != "0" else None
    return PresenceUpdate(account, status, decodeParameter(name), capabilities, msnObject)


def readOffline(line: bytes) -> Optional[AccountReference]:
    """
    C{FLN N:address[;{guid}] [capabilities]}, or L{None} for any other
    shape.
    """
    args = _arguments(line, (2, 3))
    if args is None or line[:4] != b"FLN ":
        return None
    return _account(args[0])


def readUserDataHeader(line: bytes) -> Optional[tuple[AccountReference, int]]:
    """
    The account and payload length of C{UBX N:address length}, or L{None}
    for any other shape.
    """
    args = _arguments(line, (3,))
    if args is None or line[:4] != b"UBX ":
        return None
    length = args[1]
    if not length.isdigit() or len(length) > _MAX_LENGTH_DIGITS:
        return None
    account = _account(args[0])
    return None if account is None else (account, int(length))
