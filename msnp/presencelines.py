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

from functools import lru_cache
from typing import Optional

from msnp.contacts import Status
from msnp.errors import ProtocolError
from msnp.nsmessages import AccountReference, PresenceUpdate, _hasNetworkPrefix, parseAccount
from msnp.wire import decodeParameter

__all__ = ["presenceFields", "readOffline", "readPresence", "readUserDataHeader"]

#: What L{presenceFields} reads: the account, status, decoded display
#: name, capabilities and decoded MSN object text (L{None} for C{0}).
PresenceFields = tuple[AccountReference, Status, str, str, Optional[str]]

_STATUSES: dict[str, Status] = {status.value: status for status in Status}
#: Longest payload length token taken here (longer ones go the general way,
#: which refuses them as huge without converting).
_MAX_LENGTH_DIGITS = 9


@lru_cache(maxsize=4096)
def _account(token: str) -> Optional[AccountReference]:
    """
    The account of an C{N:address} token: what
    L{msnp.nsmessages._accountAt} reads for it (with a network prefix it
    never looks at the next token), L{None} for the older two-token form
    or an address it refuses.

    Memoised as L{parseAccount} is (a bounded LRU of immutable values):
    with the prefix test in front of it, a cached answer is one lookup.
    """
    if not _hasNetworkPrefix(token):
        return None
    try:
        return parseAccount(token)
    except ProtocolError:
        return None


def presenceFields(line: bytes) -> Optional[PresenceFields]:
    """
    The fields of C{NLN STATUS N:address name capabilities msnobject
    [icon]}, or L{None} for any other shape: what L{readPresence} puts in
    a L{PresenceUpdate}, for the caller that applies them at once.
    """
    if not line.isascii() or line[:4] != b"NLN ":
        return None
    args = line.decode("ascii").split(" ")
    if not 6 <= len(args) <= 7 or "" in args:
        return None
    status = _STATUSES.get(args[1])
    account = _account(args[2]) if status is not None else None
    if account is None:
        return None
    assert status is not None
    name, raw = args[3], args[5]
    return (
        account, status, decodeParameter(name) if "%" in name else name, args[4],
        (decodeParameter(raw) if "%" in raw else raw) if raw != "0" else None,
    )


def readPresence(line: bytes) -> Optional[PresenceUpdate]:
    """
    C{NLN STATUS N:address name capabilities msnobject [icon]}, or
    L{None} for any other shape.
    """
    fields = presenceFields(line)
    return None if fields is None else PresenceUpdate(*fields)


def readOffline(line: bytes) -> Optional[AccountReference]:
    """
    C{FLN N:address[;{guid}] [capabilities]}, or L{None} for any other
    shape.
    """
    if not line.isascii() or line[:4] != b"FLN ":
        return None
    args = line.decode("ascii").split(" ")
    if not 2 <= len(args) <= 3 or "" in args:
        return None
    return _account(args[1])


def readUserDataHeader(line: bytes) -> Optional[tuple[AccountReference, int]]:
    """
    The account and payload length of C{UBX N:address length}, or L{None}
    for any other shape.
    """
    if not line.isascii() or line[:4] != b"UBX ":
        return None
    args = line.decode("ascii").split(" ")
    if len(args) != 3 or "" in args:
        return None
    length = args[2]
    if not length.isdigit() or len(length) > _MAX_LENGTH_DIGITS:
        return None
    account = _account(args[1])
    return None if account is None else (account, int(length))
