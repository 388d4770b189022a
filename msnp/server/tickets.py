# -*- test-case-name: test.test_ticket_renewal,test.test_server_storage -*-
"""
What the Passport SSO service issues and the other services check: the
L{TicketGrant} of one login, and the L{TicketState} and L{TicketCheck}
a presented ticket is classified into.

They are values only: the store that issues and looks up tickets is
L{msnp.server.accounts.AccountStore}. The NS, ABCH, RSI and storage
services import these names to read a check's answer, which is why they
stand apart from the store.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

from msnp.server.accountmodel import Account

#: How long an SSO grant stays valid, in seconds (one day, like the
#: C{Expires} the historical STS put into its tokens).
DEFAULT_TICKET_LIFETIME = 86400.0


@dataclass
class TicketGrant:
    """
    What one SSO login issued: the NS ticket and its proof key, and the
    ticket for the address-book services. Secrets stay out of the C{repr}.

    @ivar issued: when the grant was issued (seconds on the store's clock).
    @ivar expires: when its tickets stop being accepted.
    """

    email: str
    clearTicket: str = field(repr=False)
    binarySecret: str = field(repr=False)
    contactsTicket: str = field(repr=False)
    webTicket: str = field(repr=False)
    issued: float = 0.0
    expires: float = float("inf")

    def isExpired(self, now: float) -> bool:
        """
        Whether the grant's tickets are past their lifetime at C{now}.
        """
        return now >= self.expires


class TicketState(enum.Enum):
    """
    What the store knows about a presented ticket.
    """

    #: Issued here and within its lifetime.
    VALID = "valid"
    #: Issued here, but its lifetime is over (the ABCH answers
    #: C{BadContextToken}, reference section 3.2).
    EXPIRED = "expired"
    #: Never issued here (the ABCH answers a bare HTTP 403).
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TicketCheck:
    """
    The result of L{msnp.server.accounts.AccountStore.checkContactsTicket}: the state, and for
    a valid ticket its account and grant.
    """

    state: TicketState
    account: Optional[Account] = None
    grant: Optional[TicketGrant] = None
