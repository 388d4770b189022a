# -*- test-case-name: test.test_server_switchboard -*-
"""
The local network's switchboard server (reference sections 6.1-6.5, 10.3).

L{SwitchboardDirectory} hands out the single-use tokens the NS gives with
C{XFR SB}, and keeps the sessions and the per-invitee tokens sent with
C{RNG}. L{SwitchboardServer} is one client connection: it authenticates
with C{USR} (a new session) or C{ANS} (an existing one), relays C{MSG}s,
rings people on C{CAL} through C{network.ring}, and tells the others about
arrivals (C{IRO}/C{JOI}) and departures (C{BYE}), each twice as the observed
MPOP server does: once as C{email;{guid}} and once as the bare address.

Acknowledgements: C{MSG A} and C{MSG D} get C{ACK trid} when at least one
other person is in the session; when nobody else is there, C{A}, C{D} and
C{N} get C{NAK trid} (the message reached nobody). C{U} never gets a reply.
Any other ack mode, or a payload over 1664 bytes, closes the connection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Optional

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.protocol import MSNPProtocol
from msnp.reactors import reactorOrDefault
from msnp.server.accounts import BLOCK, normalizeEmail
from msnp.server.notification import guidKey as guidKey
from msnp.wire import Command, Direction, encodeParameter

log = Logger()

#: The largest MSG payload relayed (reference 6.5).
MAX_PAYLOAD = 1664
#: Seconds an C{XFR SB} token stays valid.
XFR_TOKEN_LIFETIME = 120.0
#: Seconds an invitation (C{RNG}) token stays valid.
INVITE_TOKEN_LIFETIME = 300.0
_ACK_MODES = frozenset({"U", "N", "A", "D"})
_DEFAULT_CAPS = "0:0"


def splitEndpoint(text: str) -> tuple[str, str]:
    """
    C{"Alice@Example.com;{GUID}"} to C{("alice@example.com", "{GUID}")}.
    """
    email, _, guid = text.partition(";")
    return normalizeEmail(email), guid


@dataclass
class _XfrGrant:
    account: str
    machineGuid: str
    expires: float


@dataclass
class _Invite:
    email: str
    expires: float
    used: set[str] = field(default_factory=set)


@dataclass
class SwitchboardSession:
    """
    One conversation on the switchboard server.

    @ivar sessionId: 31 lower-case hex characters, opaque to clients.
    @ivar members: the authenticated connections, in order of arrival.
    """

    sessionId: str
    members: list["SwitchboardServer"] = field(default_factory=list)
    invites: dict[str, _Invite] = field(default_factory=dict, repr=False)

    def accounts(self) -> list[str]:
        """
        The addresses in the session, once each in order of arrival (one
        account may be there from several places).
        """
        seen: list[str] = []
        for member in self.members:
            if member.account is not None and member.account not in seen:
                seen.append(member.account)
        return seen


class SwitchboardDirectory:
    """
    Tokens and sessions of the switchboard server.
    """

    def __init__(self, network: Any, clock: Optional[IReactorTime] = None) -> None:
        self.network = network
        self.clock: IReactorTime = clock or getattr(network, "clock", None) or reactorOrDefault(None)
        self.sessions: dict[str, SwitchboardSession] = {}
        self._xfr: dict[str, _XfrGrant] = {}

    def _now(self) -> float:
        return self.clock.seconds()

    def issueXfrToken(self, account: str, machineGuid: str) -> str:
        """
        A fresh single-use token for C{XFR SB}, valid a short while for
        C{account} at endpoint C{machineGuid}.
        """
        now = self._now()
        for key in [k for k, g in self._xfr.items() if g.expires <= now]:
            del self._xfr[key]
        token = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**10)}.{secrets.token_hex(8)}"
        self._xfr[token] = _XfrGrant(normalizeEmail(account), machineGuid, now + XFR_TOKEN_LIFETIME)
        return token

    def redeemXfrToken(self, token: str, account: str, machineGuid: str) -> bool:
        """
        Use up C{token}: whether it was valid for C{account} and
        C{machineGuid} (GUIDs compared without braces and case).
        """
        grant = self._xfr.pop(token, None)
        if grant is None or grant.expires <= self._now():
            return False
        if grant.account != normalizeEmail(account):
            return False
        return not grant.machineGuid or guidKey(grant.machineGuid) == guidKey(machineGuid)

    def newSession(self) -> SwitchboardSession:
        """
        A new, empty session with a fresh opaque id.
        """
        while True:
            sessionId = secrets.token_hex(16)[:31]
            if sessionId not in self.sessions:
                break
        session = SwitchboardSession(sessionId)
        self.sessions[sessionId] = session
        return session

    def issueInviteToken(self, session: SwitchboardSession, email: str) -> str:
        """
        A token for C{email} to answer C{session}; each of its endpoints
        may use it once.
        """
        token = f"{secrets.randbelow(10**9)}.{secrets.token_hex(10)}"
        session.invites[token] = _Invite(normalizeEmail(email), self._now() + INVITE_TOKEN_LIFETIME)
        return token

    def redeemInvite(self, token: str, sessionId: str, account: str, machineGuid: str) -> Optional[SwitchboardSession]:
        """
        The session C{account} may join with C{token}, or L{None}.
        """
        session = self.sessions.get(sessionId)
        if session is None:
            return None
        invite = session.invites.get(token)
        if invite is None or invite.expires <= self._now() or invite.email != normalizeEmail(account):
            return None
        key = guidKey(machineGuid)
        if key in invite.used:
            return None
        invite.used.add(key)
        return session

    def sessionEmpty(self, session: SwitchboardSession) -> None:
        """
        Forget C{session} once its last member left, so its id and
        invitations can no longer be used.
        """
        if not session.members:
            self.sessions.pop(session.sessionId, None)


class SwitchboardServer(MSNPProtocol):
    """
    One client connection to the switchboard server.

    @ivar account: the authenticated address, L{None} before C{USR}/C{ANS}.
    @ivar machineGuid: the endpoint id as the client sent it.
    @ivar session: the session joined, or L{None}.
    """

    receiving = Direction.FROM_CLIENT

    def __init__(self, network: Any, directory: SwitchboardDirectory, clock: Optional[IReactorTime] = None,
                 idleTimeout: Optional[float] = None) -> None:
        super().__init__(clock=clock or directory.clock, requestTimeout=None, maxPayloadLength=MAX_PAYLOAD)
        self.network = network
        self.directory = directory
        self.account: Optional[str] = None
        self.machineGuid = ""
        self.session: Optional[SwitchboardSession] = None
        self.idleTimeout = idleTimeout
        self._idleTimer: Optional[IDelayedCall] = None
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

    def _nsSession(self) -> Any:
        if self.account is None:
            return None
        sessions = list(self.network.onlineSessions(self.account))
        for ns in sessions:
            if self.machineGuid and guidKey(getattr(ns, "machineGuid", None)) == guidKey(self.machineGuid):
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

    def _accountRecord(self) -> Any:
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

    def close(self, why: str) -> None:
        """
        Close the connection after what was already written; C{why} is
        logged only.
        """
        log.info("Closing switchboard connection of {account}: {why}", account=self.account, why=why)
        if self.transport is not None:
            self.transport.loseConnection()

    def _others(self) -> list["SwitchboardServer"]:
        if self.session is None:
            return []
        return [m for m in self.session.members if m is not self]

    def _touch(self) -> None:
        if self.idleTimeout is None:
            return
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.reset(self.idleTimeout)
        else:
            self._idleTimer = self.clock.callLater(self.idleTimeout, self.close, "idle")

    def commandReceived(self, command: Command) -> None:
        if self.session is None and command.name not in ("USR", "ANS", "OUT"):
            self.close(f"{command.name} before authentication")
            return
        self._touch()
        super().commandReceived(command)

    def unknownCommand(self, command: Command) -> None:
        self.close(f"unknown command {command.name}")

    def errorReceived(self, command: Command) -> None:
        self.close("numeric command from a client")

    # -- authentication ---------------------------------------------------------

    def _authFailed(self, trid: Optional[int], why: str) -> None:
        self.reply("911", trid)
        self.close(why)

    def handle_USR(self, command: Command) -> None:
        if self.session is not None or len(command.arguments) < 2:
            self._authFailed(command.trid, "bad USR")
            return
        email, guid = splitEndpoint(command.arg(0))
        if not self.directory.redeemXfrToken(command.arg(1), email, guid):
            self._authFailed(command.trid, "bad or used XFR token")
            return
        self.account, self.machineGuid = email, guid
        self.session = self.directory.newSession()
        self.session.members.append(self)
        self.reply("USR", command.trid, "OK", command.arg(0), self.encodedName)

    def handle_ANS(self, command: Command) -> None:
        if self.session is not None or len(command.arguments) < 3:
            self._authFailed(command.trid, "bad ANS")
            return
        email, guid = splitEndpoint(command.arg(0))
        session = self.directory.redeemInvite(command.arg(1), command.arg(2), email, guid)
        if session is None:
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
        session.members.append(self)
        self.session = session
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
        if email in self.session.accounts():
            self.reply("215", command.trid)
            return
        caller = self._accountRecord()
        callee = self.network.store.get(email)
        if caller is None or callee is None or callee.hasRole(BLOCK, self.account):
            self.reply("217", command.trid)
            return
        token = self.directory.issueInviteToken(self.session, email)
        if not self.network.ring(email, self.session.sessionId, token, caller, self.displayName):
            self.session.invites.pop(token, None)
            self.reply("217", command.trid)
            return
        self.reply("CAL", command.trid, "RINGING", self.session.sessionId)

    # -- messages -------------------------------------------------------------------

    def handle_MSG(self, command: Command) -> None:
        mode = command.arg(0)
        if mode not in _ACK_MODES or len(command.arguments) != 1:
            self.close(f"bad MSG ack mode {mode[:5]!r}")
            return
        payload = command.payload or b""
        assert self.account is not None
        recipients = [m for m in self._others() if m.account != self.account]
        for member in recipients:
            member.reply("MSG", None, self.account, self.encodedName, payload=payload)
        if not recipients:
            if mode in ("A", "D", "N"):
                self.reply("NAK", command.trid)
            return
        if mode in ("A", "D"):
            self.reply("ACK", command.trid)

    # -- leaving --------------------------------------------------------------------

    def handle_OUT(self, command: Command) -> None:
        self._leaving = True
        self.close("OUT")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.cancel()
        session, self.session = self.session, None
        if session is not None and self in session.members:
            session.members.remove(self)
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
        MSNPProtocol.connectionLost(self, reason)


class SwitchboardServerFactory(Factory):
    """
    Builds L{SwitchboardServer}s for C{network}, whose C{switchboards}
    attribute is the L{SwitchboardDirectory} (one is made if it has none).
    """

    def __init__(self, network: Any, idleTimeout: Optional[float] = None) -> None:
        self.network = network
        self.idleTimeout = idleTimeout
        directory = getattr(network, "switchboards", None)
        if directory is None:
            directory = SwitchboardDirectory(network)
        self.directory: SwitchboardDirectory = directory

    def buildProtocol(self, addr: Optional[IAddress]) -> SwitchboardServer:
        protocol = SwitchboardServer(self.network, self.directory, idleTimeout=self.idleTimeout)
        protocol.factory = self
        return protocol
