# -*- test-case-name: test.test_p2p_session,test.test_p2p_files -*-
"""
The integration seam of L{msnp.p2p.session.P2PManager}: the two interfaces
it is given, L{IP2PTransport} (where its payloads go) and
L{IObjectSource} (the objects this side serves).

They are separate from the manager so the other side of the seam
(L{msnp.pictures}, L{msnp.emoticons}) reads what it must provide without
the session machinery; L{msnp.p2p.session} re-exports both.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import Interface

from msnp.p2p.msnobject import MSNObject


class IP2PTransport(Interface):
    """
    Where a L{P2PManager} sends: the switchboard side of the seam.
    """

    def sendP2P(peer: str, payload: bytes) -> "Deferred[Any]":
        """
        Send C{payload} (a complete C{application/x-msnmsgrp2p} MIME
        message) to C{peer} as C{MSG trid D len} on the one-to-one
        switchboard with C{peer}, opening one when needed.

        The result fires once the switchboard acknowledged it (C{ACK}) and
        fails (with any exception) on C{NAK}, time-out or a switchboard that
        closed first. The manager never has more than one payload per peer
        outstanding.
        """


class IObjectSource(Interface):
    """
    The MSN objects this side publishes, for serving.
    """

    def objectData(requested: MSNObject) -> Optional[bytes]:
        """
        The bytes of the published object with C{requested}'s SHA1D and
        Type, or L{None} when there is no such object.
        """
