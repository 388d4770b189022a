# -*- test-case-name: test.test_p2p_session -*-
"""
What can go wrong below and inside a P2P transfer, as one exception family.

Codec errors (L{MalformedP2P}, L{MalformedSLP}, L{P2PVersion2}) are raised by
the pure codecs and caught by the session layer, which logs and drops the
message; transfer errors fail the L{twisted.internet.defer.Deferred} a caller holds.
"""

from __future__ import annotations

from msnp.errors import MSNPError, ProtocolError


class MalformedP2P(ProtocolError):
    """
    A C{application/x-msnmsgrp2p} payload is not a valid version 1 message.
    """


class P2PVersion2(MalformedP2P):
    """
    The message is P2P version 2 (an endpoint id in C{P2P-Dest}/C{P2P-Src});
    its binary part must not be read with the version 1 layout.
    """


class MalformedSLP(ProtocolError):
    """
    A transport message with session id 0 is not a valid MSNSLP message.
    """


class TransferError(MSNPError):
    """
    A P2P transfer did not deliver its object.
    """


class TransferDeclined(TransferError):
    """
    The peer answered the INVITE with a status other than C{200 OK}.

    @ivar code: the status code (603 for a decline).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        TransferError.__init__(self, f"peer answered {code} {reason}".strip())
        self.code = code


class TransferCancelled(TransferError):
    """
    The transfer was stopped before the data was complete: the peer sent
    C{BYE} (or an abort message), or, for files, our side cancelled it.

    @ivar byPeer: whether the peer stopped it.
    """

    def __init__(self, message: str = "", byPeer: bool = True) -> None:
        TransferError.__init__(self, message)
        self.byPeer = byPeer


class TransferTimeout(TransferError):
    """
    The peer stayed silent longer than the session's timeout.
    """


class TransferInterrupted(TransferError):
    """
    The path to the peer went away (switchboard closed, session ended)
    before the transfer finished.
    """


class ChecksumMismatch(TransferError):
    """
    The received bytes do not hash to the object's C{SHA1D}.
    """
