# -*- test-case-name: test.test_server_switchboard -*-
"""
The contract between the local network's servers: what a notification or
switchboard connection may ask of the network it belongs to.

The notification server hands out switchboard tokens and the switchboard
server rings people and looks up who is signed in where. Both used to hold
the whole L{msnp.server.network.LocalNetwork} as C{Any} and reach its
parts with C{getattr}; they now see only L{INetworkRouter}, which
C{LocalNetwork} implements and a test can implement with a small fake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, NamedTuple

from zope.interface import Attribute, Interface

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.accountmodel import Account


class SwitchboardReferral(NamedTuple):
    """
    Where an C{XFR SB} sends a client: the switchboard's C{host:port} and
    the single-use token to present there.
    """

    address: str
    token: str


class INetworkRouter(Interface):
    """
    What the NS and SB connections need of the network.
    """

    store = Attribute("The L{msnp.server.accounts.AccountStore} every server shares.")
    clock = Attribute("The L{twisted.internet.interfaces.IReactorTime} for token lifetimes and timeouts.")
    switchboards = Attribute(
        "The L{msnp.server.switchboard.SwitchboardDirectory} of the running "
        "switchboard server, or L{None} before it starts."
    )

    def onlineSessions(email: str) -> list:  # type: ignore[type-arg]
        """
        The signed-in NS connections of C{email}, oldest first (each with
        C{account}, C{machineGuid}, C{status}, C{capabilities},
        C{displayName}).
        """

    def ring(
        callee: str, sessionId: str, authToken: str, caller: "Account", callerName: str, exceptGuids: "Iterable[str]" = ()
    ) -> bool:
        """
        Send C{RNG} to every NS place of C{callee} inviting it to switchboard
        session C{sessionId} with C{authToken}; L{False} when C{callee}
        cannot be reached. The places C{exceptGuids} (compared as
        L{msnp.server.presence.guidKey} does) are left out: the places
        already in the conversation when an account calls its own others.
        """

    def referSwitchboard(account: str, machineGuid: str) -> "SwitchboardReferral | None":
        """
        A fresh switchboard token for C{account} at C{machineGuid}, with the
        address to present it at; L{None} when no switchboard is running.
        """

    def placeSignedOut(account: str, machineGuid: "str | None") -> None:
        """
        An NS place of C{account} went away (after the presence registry
        forgot it): its switchboard tokens and connections must die.
        """

    def privacyChanged(account: str) -> None:
        """
        C{account}'s block/allow lists or privacy mode changed: whoever it
        no longer lets reach it leaves the switchboards they share.
        """
