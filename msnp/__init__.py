"""
msnp: an MSNP18 (Windows Live Messenger 2009) client library for Twisted.

The public names live here. The light ones (errors, endpoints, the
observer interface, the contact model) are imported at once; the client
and the conversation classes, which pull in the HTTP and crypto stacks,
are loaded on first use, so C{import msnp} stays cheap. Nothing here
imports the local network (C{msnp.server}).
"""

from __future__ import annotations

#: The version of msnp: the one place it is written (C{setup.cfg} reads it
#: from here, C{python -m msnp --version} prints it).
__version__ = "0.2.0"

import importlib
from typing import TYPE_CHECKING, Any

from msnp.contacts import Contact, ContactList, Status
from msnp.endpoints import ClientIdentity, Endpoints
from msnp.errors import (
    AuthenticationError,
    ConnectionLost,
    ContactListError,
    ContactOffline,
    LoginTimeout,
    MessageNotDelivered,
    MSNPError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    ServiceError,
    SignedOut,
    UnsupportedProtocol,
)
from msnp.interfaces import IMessengerObserver

if TYPE_CHECKING:
    from msnp.client import MSNClient, Session
    from msnp.switchboard import Conversation, MessageFormat, TextMessage

#: Public names loaded on first access, and the module holding each.
_LAZY = {
    "MSNClient": "msnp.client",
    "Session": "msnp.client",
    "Conversation": "msnp.switchboard",
    "TextMessage": "msnp.switchboard",
    "MessageFormat": "msnp.switchboard",
}

__all__ = [
    "__version__",
    "MSNClient",
    "Session",
    "Endpoints",
    "ClientIdentity",
    "IMessengerObserver",
    "Status",
    "Contact",
    "ContactList",
    "Conversation",
    "TextMessage",
    "MessageFormat",
    "MSNPError",
    "AuthenticationError",
    "ProtocolError",
    "ServiceError",
    "LoginTimeout",
    "ServerError",
    "UnsupportedProtocol",
    "SignedOut",
    "ContactOffline",
    "ContactListError",
    "MessageNotDelivered",
    "ConnectionLost",
    "RequestTimeout",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'msnp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
