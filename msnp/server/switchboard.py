# -*- test-case-name: test.test_server_switchboard -*-
"""
The local network's switchboard server (reference sections 6.1-6.5, 10.3).

L{SwitchboardDirectory} (in L{msnp.server.sbdirectory}) hands out the
single-use tokens the NS gives with C{XFR SB}, and keeps the sessions and
the per-invitee tokens sent with C{RNG}. L{SwitchboardServer} is one
client connection: it authenticates
with C{USR} (a new session) or C{ANS} (an existing one), relays C{MSG}s,
rings people on C{CAL} through C{network.ring}, and tells the others about
arrivals (C{IRO}/C{JOI}) and departures (C{BYE}), each twice as the observed
MPOP server does: once as C{email;{guid}} and once as the bare address.

Acknowledgements: C{MSG A} and C{MSG D} get C{ACK trid} only when the
message was written to the connection of every other member allowed to
receive it; when nobody received it, or a member that does not read has
C{switchboardQueue} bytes queued already, C{A}, C{D} and C{N} get
C{NAK trid}. C{U} never gets a reply. Any other ack mode, or a payload over
1664 bytes, closes the connection.

Privacy is checked at the moment of use: a C{CAL} to someone who blocked
the caller, or does not allow it with C{BLP BL}, is answered C{217} exactly
like one to an offline or hidden account; each relayed C{MSG} skips
members who block the sender.

P2P messages (C{application/x-msnmsgrp2p}) travel with ack mode C{D} only
(another mode closes the connection, as Escargot does), within the same
1664-byte limit, and reach only the places of the account their
C{P2P-Dest} names: every place for a bare address (version 1), the one
place for C{account;{guid}} (version 2 under MPOP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.server.accountmodel import Account, normalizeEmail
from msnp.server.connection import ServerConnection
from msnp.server.limits import summarise
from msnp.server.presence import guidKey as guidKey
from msnp.server.presence import permits
from msnp.server.router import INetworkRouter
from msnp.server.sbdirectory import (
    SwitchboardDirectory as SwitchboardDirectory,
    SwitchboardSession as SwitchboardSession,
)
from msnp.wire import Command, Direction, encodeParameter

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.notification import NotificationServer

log = Logger()

#: The largest MSG payload relayed (reference 6.5).
MAX_PAYLOAD = 1664
_ACK_MODES = frozenset({"U", "N", "A", "D"})
_DEFAULT_CAPS = "0:0"


#: The content type of P2P messages (MSNP18.md 6.6 h).
P2P_CONTENT_TYPE = b"application/x-msnmsgrp2p"


def p2pDestination(payload: bytes) -> Optional[tuple[str, str]]:
    """
    For a P2P message, the C{(account, endpoint)} its C{P2P-Dest} names
    (C{("", "")} when it names none); L{None} for any other message. Only
    the header block is read, never the binary part.
    """
    head = payload.split(b"\r\n\r\n", 1)[0]
    contentType = b""
    destination = b""
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower()
        if key == b"content-type" and not contentType:
            contentType = value.split(b";", 1)[0].strip().lower()
        elif key == b"p2p-dest" and not destination:
            destination = value.strip()
    if contentType != P2P_CONTENT_TYPE:
        return None
    email, _, guid = destination.decode("utf-8", "replace").partition(";")
    return normalizeEmail(email) if email else "", guidKey(guid)


def splitEndpoint(text: str) -> tuple[str, str]:
    """
    C{"Alice@Example.com;{GUID}"} to C{("alice@example.com", "{GUID}")}.
    """
    email, _, guid = text.partition(";")
    return normalizeEmail(email), guid


def _addressed(member: "SwitchboardServer", account: str, guid: str) -> bool:
    """
    Whether a P2P message for C{account} (at endpoint C{guid}, or any
    endpoint when C{guid} is empty) goes to C{member}.
    """
    return member.account == account and (not guid or guidKey(member.machineGuid) == guid)


class SwitchboardServer(ServerConnection):
    """
    One client connection to the switchboard server.

    @ivar account: the authenticated address, L{None} before C{USR}/C{ANS}.
    @ivar machineGuid: the endpoint id as the client sent it.
    @ivar session: the session joined, or L{None}.
    """

    receiving = Direction.FROM_CLIENT

    def __init__(
        self,
        network: INetworkRouter,
        directory: SwitchboardDirectory,
        clock: Optional[IReactorTime] = None,
        idleTimeout: Optional[float] = None,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        """
        @param idleTimeout: seconds of silence that close a joined
            connection (C{switchboardIdleTimeout} by default).
        """
        limits = directory.limits
        super().__init__(
            clock=clock or directory.clock,
            limits=limits,
            maxPayloadLength=MAX_PAYLOAD,
            idleTimeout=limits.switchboardIdleTimeout if idleTimeout is None else idleTimeout,
            timerClock=timerClock,
        )
        self.network = network
        self.directory = directory
        self.account: Optional[str] = None
        self.machineGuid = ""
        self.session: Optional[SwitchboardSession] = None
        self._leaving = False

    def __repr__(self) -> str:
        sid = self.session.sessionId if self.session else None
        return f"<SwitchboardServer account={self.account!r} session={sid!r}>"

    # -- identity -------------------------------------------------------------

    @property
    def endpointAddress(self) -> str:
        """
        C{email;{guid}} of this place, or the bare address without a GUID.
        """
        assert self.account is not None
        return f"{self.account};{self.machineGuid}" if self.machineGuid else self.account

    def _nsSession(self) -> Optional["NotificationServer"]:
        if self.account is None:
            return None
        sessions = list(self.network.onlineSessions(self.account))
        for ns in sessions:
            if self.machineGuid and guidKey(ns.machineGuid) == guidKey(self.machineGuid):
                return ns
        return sessions[0] if sessions else None

    @property
    def displayName(self) -> str:
        """
        The name to show for this member: its NS place's current one,
        else the stored one, else the address.
        """
        ns = self._nsSession()
        name = getattr(ns, "displayName", None) if ns is not None else None
        if not name:
            record = self._accountRecord()
            name = getattr(record, "displayName", None) if record is not None else None
        return name or (self.account or "")

    @property
    def capabilities(self) -> str:
        """
        The capabilities of this member's NS place (C{0:0} if unknown).
        """
        ns = self._nsSession()
        return (getattr(ns, "capabilities", None) if ns is not None else None) or _DEFAULT_CAPS

    def _accountRecord(self) -> Optional[Account]:
        if self.account is None:
            return None
        return self.network.store.get(self.account)

    @property
    def encodedName(self) -> str:
        """
        L{displayName} URL-encoded for a command line.
        """
        return encodeParameter(self.displayName) or (self.account or "-")

    # -- helpers --------------------------------------------------------------

    def reply(self, name: str, trid: Optional[int], *arguments: str, payload: Optional[bytes] = None) -> None:
        """
        Send one line with an explicit TrID (the client's, or none).
        """
        self.sendRaw(Command(name, trid, tuple(arguments), payload))

    def disconnect(self, why: str) -> None:
        """
        Hang up on this client: close the connection after what was already
        written, logging C{why}. (Not the client connections' C{close()}
        lifecycle, which returns a L{Deferred <twisted.internet.defer.Deferred>}: a server hangs up and moves
        on, and L{abort <msnp.server.connection.ServerConnection.abort>}
        drops a connection at once.)
        """
        log.info("Closing switchboard connection of {account}: {why}",
                 account=summarise(self.account or "", self.limits.logArgument), why=why)
        if self.transport is not None:
            self.transport.loseConnection()

    def _others(self) -> list["SwitchboardServer"]:
        if self.session is None:
            return []
        return [m for m in self.session.members if m is not self]

    def commandReceived(self, command: Command) -> None:
        if self.session is None and command.name not in ("USR", "ANS", "OUT"):
            self.disconnect(f"{summarise(command.name, 16)} before authentication")
            return
        super().commandReceived(command)

    def unknownCommand(self, command: Command) -> None:
        self.disconnect(f"unknown command {summarise(command.name, 16)}")

    def errorReceived(self, command: Command) -> None:
        self.disconnect("numeric command from a client")

    # -- authentication ---------------------------------------------------------

    def _signedInOnNS(self, email: str) -> bool:
        """
        Whether C{email} still has a signed-in NS place: a token outliving
        its user's sign-out is worth nothing.
        """
        return bool(self.network.onlineSessions(email))

    def _authFailed(self, trid: Optional[int], why: str) -> None:
        self.reply("911", trid)
        self.disconnect(why)

    def handle_USR(self, command: Command) -> None:
        if self.session is not None or len(command.arguments) < 2:
            self._authFailed(command.trid, "bad USR")
            return
        email, guid = splitEndpoint(command.arg(0))
        if not self.directory.redeemXfrToken(command.arg(1), email, guid) or not self._signedInOnNS(email):
            self._authFailed(command.trid, "bad or used XFR token")
            return
        self.account, self.machineGuid = email, guid
        self.session = self.directory.newSession()
        self.directory.join(self.session, self)
        self.signedInNow()
        self.reply("USR", command.trid, "OK", command.arg(0), self.encodedName)

    def handle_ANS(self, command: Command) -> None:
        if self.session is not None or len(command.arguments) < 3:
            self._authFailed(command.trid, "bad ANS")
            return
        email, guid = splitEndpoint(command.arg(0))
        session = self.directory.redeemInvite(command.arg(1), command.arg(2), email, guid)
        if session is None or not self._signedInOnNS(email):
            self._authFailed(command.trid, "bad invitation token")
            return
        self.account, self.machineGuid = email, guid
        lines: list[tuple[str, str, str]] = []
        for account in session.accounts():
            members = [m for m in session.members if m.account == account]
            for member in members:
                if member.machineGuid:
                    lines.append((member.endpointAddress, member.encodedName, member.capabilities))
            lines.append((account, members[0].encodedName, members[0].capabilities))
        for index, (address, name, caps) in enumerate(lines, start=1):
            self.reply("IRO", command.trid, str(index), str(len(lines)), address, name, caps)
        alreadyThere = email in session.accounts()
        self.directory.join(session, self)
        self.session = session
        self.signedInNow()
        self.reply("ANS", command.trid, "OK")
        self._announceJoin(alreadyThere)

    def _announceJoin(self, alreadyThere: bool) -> None:
        name, caps = self.encodedName, self.capabilities
        assert self.account is not None
        forms = [self.endpointAddress] if self.machineGuid else []
        if not alreadyThere:
            forms.append(self.account)
        for other in self._others():
            for address in forms:
                other.reply("JOI", None, address, name, caps)
        # The observed server also tells the newcomer about itself.
        if self.machineGuid:
            self.reply("JOI", None, self.endpointAddress, name, caps)

    # -- inviting -------------------------------------------------------------------

    def handle_CAL(self, command: Command) -> None:
        assert self.session is not None and self.account is not None
        target = command.arg(0)
        email = normalizeEmail(target.partition(";")[0])
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            self.reply("208", command.trid)
            return
        if email == self.account:
            self._callOwnPlaces(command.trid)
            return
        if email in self.session.accounts():
            self.reply("215", command.trid)
            return
        caller = self._accountRecord()
        callee = self.network.store.get(email)
        # Blocked, not allowed (BLP BL), hidden and offline all answer the
        # same 217, from the same place, so a CAL cannot tell them apart.
        if caller is None or callee is None or not permits(callee, caller):
            self.reply("217", command.trid)
            return
        if self.directory.pendingInvite(self.session, email) is not None:
            # Already ringing: a second CAL must not make another RNG (and
            # another connection on the callee's side).
            self.reply("CAL", command.trid, "RINGING", self.session.sessionId)
            return
        if self.directory.pendingInvitesBy(self.account) >= self.limits.invitationsPerAccount:
            self.reply("800", command.trid)
            return
        token = self.directory.issueInviteToken(self.session, email, self.account)
        if not self.network.ring(email, self.session.sessionId, token, caller, self.displayName):
            self.session.invites.pop(token, None)
            self.reply("217", command.trid)
            return
        self.reply("CAL", command.trid, "RINGING", self.session.sessionId)

    def _callOwnPlaces(self, trid: Optional[int]) -> None:
        """
        C{CAL} of the caller's own account, which WLM 2009, MSNPSharp and
        papyon send first on a switchboard they open, and then wait for
        C{RINGING} before inviting anyone (reference 5.5): the account's
        other MPOP places (MSNP16+) are rung and join as
        C{JOI account;{epid}} when they answer. The answer is always
        C{CAL trid RINGING sessid}, also when no other place is signed in
        or the caller's place is MSNP15 (no MPOP): those clients read any
        error here as "the conversation failed". Places already in the
        conversation, or already ringing (a repeated self-CAL), are not
        rung again, like any other CAL.
        """
        assert self.session is not None and self.account is not None
        sessionId = self.session.sessionId
        ns = self._nsSession()
        mpop = ns is not None and getattr(ns, "protocolVersion", 0) >= 16
        present = [m.machineGuid for m in self.session.members if m.account == self.account]
        others = [
            place for place in self.network.onlineSessions(self.account)
            if guidKey(place.machineGuid) not in {guidKey(g) for g in present} and place.status is not None
        ]
        caller = self._accountRecord()
        if (
            mpop and others and caller is not None
            and self.directory.pendingInvite(self.session, self.account) is None
            and self.directory.pendingInvitesBy(self.account) < self.limits.invitationsPerAccount
        ):
            token = self.directory.issueInviteToken(self.session, self.account, self.account)
            if not self.network.ring(self.account, sessionId, token, caller, self.displayName,
                                     exceptGuids=present):
                self.session.invites.pop(token, None)
        self.reply("CAL", trid, "RINGING", sessionId)

    # -- messages -------------------------------------------------------------------

    def handle_MSG(self, command: Command) -> None:
        mode = command.arg(0)
        if mode not in _ACK_MODES or len(command.arguments) != 1:
            self.disconnect(f"bad MSG ack mode {mode[:5]!r}")
            return
        payload = command.payload or b""
        assert self.account is not None
        destination = p2pDestination(payload)
        if destination is not None and mode != "D":
            # P2P goes with ack mode D only (MSNP18-p2p.md P.2.1, as Escargot).
            self.disconnect(f"P2P message with ack mode {mode}")
            return
        sender = self._accountRecord()
        store = self.network.store
        recipients = []
        for member in self._others():
            # The sender's own other places get the message too: that is
            # what they joined for (the self-CAL, reference 5.5).
            if destination is not None and destination[0] and not _addressed(member, *destination):
                # P2P reaches the account its P2P-Dest names, and only the
                # place named by a ";{guid}" (version 2, MPOP).
                continue
            account = store.get(member.account) if member.account else None
            # Privacy at the moment of use: a member whose owner blocked
            # the sender since joining gets nothing.
            if account is not None and sender is not None and permits(account, sender):
                recipients.append(member)
        line = Command("MSG", None, (self.account, self.encodedName), payload)
        size = len(payload) + len(self.account) + len(line.arguments[1]) + 16
        written = 0
        for member in recipients:
            # A member that does not read has a bounded queue: past it the
            # message is refused (NAK) instead of acknowledged and lost.
            if member.hasRoomFor(size, self.limits.switchboardQueue):
                member.sendRaw(line)
                written += 1
        if written == 0 or written < len(recipients):
            if mode in ("A", "D", "N"):
                self.reply("NAK", command.trid)
            return
        if mode in ("A", "D"):
            self.reply("ACK", command.trid)

    # -- leaving --------------------------------------------------------------------

    def handle_OUT(self, command: Command) -> None:
        self._leaving = True
        self.disconnect("OUT")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        session, self.session = self.session, None
        if session is not None and self in session.members:
            self.directory.leave(session, self)
            assert self.account is not None
            stillThere = self.account in session.accounts()
            extra = () if self._leaving else ("1",)
            forms = [self.endpointAddress] if self.machineGuid else []
            if not stillThere:
                forms.append(self.account)
            for other in list(session.members):
                for address in forms:
                    other.reply("BYE", None, address, *extra)
            self.directory.sessionEmpty(session)
        ServerConnection.connectionLost(self, reason)


class SwitchboardServerFactory(Factory):
    """
    Builds L{SwitchboardServer}s for C{network}, sharing one
    L{SwitchboardDirectory}: the one given, else the network's
    C{switchboards}, else a new one.
    """

    def __init__(
        self,
        network: INetworkRouter,
        idleTimeout: Optional[float] = None,
        directory: Optional[SwitchboardDirectory] = None,
        timerClock: Optional[IReactorTime] = None,
    ) -> None:
        self.network = network
        self.idleTimeout = idleTimeout
        self.timerClock = timerClock
        if directory is None:
            directory = network.switchboards
        self.directory: SwitchboardDirectory = directory if directory is not None else SwitchboardDirectory(network)

    def buildProtocol(self, addr: Optional[IAddress]) -> SwitchboardServer:
        protocol = SwitchboardServer(
            self.network, self.directory, idleTimeout=self.idleTimeout, timerClock=self.timerClock
        )
        protocol.factory = self
        return protocol
