"""
msnp: an MSNP18 (Windows Live Messenger 2009) client library for Twisted.

The public names live here: L{MSNClient} signs in and fires with a
L{Session} (contacts, presence, contact management); a L{Conversation} is
a chat with one or more contacts; an L{IMessengerObserver} (for instance a
subclass of L{ObserverBase}) hears the events; L{MessengerService} keeps a
client signed in (L{RetryPolicy}). The light names (errors, endpoints,
the observer interface, the contact model) are imported at once; the
client, session, service and conversation classes, which pull in the HTTP
and crypto stacks, are loaded on first use, so C{import msnp} stays cheap
(C{dir(msnp)} and C{help(msnp)} still list them). Nothing here imports the
local network (C{msnp.server}); tests of your own bots use
L{msnp.testing}.
"""

from __future__ import annotations

#: The version of msnp: the one place it is written (C{setup.cfg} reads it
#: from here, C{python -m msnp --version} prints it).
__version__ = "0.2.0"

import importlib
from typing import TYPE_CHECKING, Any

from msnp.contacts import Contact, ContactList, Group, Place, Status
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
    UnsafeRedirect,
)
from msnp.interfaces import IMessengerObserver

if TYPE_CHECKING:
    from msnp.client import MSNClient
    from msnp.clientlimits import ClientLimits
    from msnp.handlers import EchoHandler, LogHandler, ObserverBase
    from msnp.service import MessengerService, RetryPolicy
    from msnp.session import Session
    from msnp.conversation import Conversation
    from msnp.mime import MessageFormat, TextMessage
    from msnp.oim import OfflineMessage
    from msnp.uum import DeliveryResult
    from msnp.settings import Privacy

#: Public names loaded on first access, and the module holding each.
_LAZY = {
    "MSNClient": "msnp.client",
    "ClientLimits": "msnp.clientlimits",
    "Session": "msnp.session",
    "ObserverBase": "msnp.handlers",
    "EchoHandler": "msnp.handlers",
    "LogHandler": "msnp.handlers",
    "MessengerService": "msnp.service",
    "RetryPolicy": "msnp.service",
    "Conversation": "msnp.conversation",
    "TextMessage": "msnp.mime",
    "MessageFormat": "msnp.mime",
    "DeliveryResult": "msnp.uum",
    "OfflineMessage": "msnp.oim",
    "Privacy": "msnp.settings",
}

__all__ = [
    "__version__",
    "MSNClient",
    "ClientLimits",
    "Session",
    "ObserverBase",
    "EchoHandler",
    "LogHandler",
    "MessengerService",
    "RetryPolicy",
    "Group",
    "Place",
    "Endpoints",
    "ClientIdentity",
    "IMessengerObserver",
    "Status",
    "Contact",
    "ContactList",
    "Conversation",
    "TextMessage",
    "MessageFormat",
    "DeliveryResult",
    "OfflineMessage",
    "Privacy",
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
    "UnsafeRedirect",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'msnp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazy names too, so that help(msnp) and completion show them.
    return sorted(set(globals()) | set(_LAZY))
