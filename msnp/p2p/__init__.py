"""
MSNP2P version 1 and MSNSLP: display pictures and other MSN objects over
the switchboard (MSNP18-p2p.md; the chapter for newcomers is docs/p2p.md).

One concern per module, bottom up:

  - L{msnp.p2p.transport}: the binary codec (48-byte header, footer,
    chunking, ACKs, reassembly, the MIME frame, version 2 detection);
  - L{msnp.p2p.slp}: the MSNSLP text codec (INVITE, responses, BYE);
  - L{msnp.p2p.msnobject}: the L{MSNObject} value type;
  - L{msnp.p2p.session}: L{P2PManager}, sans-IO sessions on top;
  - L{msnp.p2p.errors}: the exceptions.
"""

from msnp.p2p.errors import (
    ChecksumMismatch,
    TransferCancelled,
    TransferDeclined,
    TransferError,
    TransferInterrupted,
    TransferTimeout,
)
from msnp.p2p.msnobject import MSNObject
from msnp.p2p.session import IObjectSource, IP2PTransport, P2PManager

__all__ = [
    "ChecksumMismatch",
    "IObjectSource",
    "IP2PTransport",
    "MSNObject",
    "P2PManager",
    "TransferCancelled",
    "TransferDeclined",
    "TransferError",
    "TransferInterrupted",
    "TransferTimeout",
]
