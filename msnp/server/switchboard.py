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
from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.protocol import reactorOrDefault
from msnp.server.accounts import Account, normalizeEmail
from msnp.server.connection import ServerConnection
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits, summarise
from msnp.server.presence import guidKey as guidKey
from msnp.server.presence import permits
from msnp.server.router import INetworkRouter
from msnp.wire import Command, Direction, encodeParameter

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.notification import NotificationServer

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
    caller: str = ""
    used: set[str] = field(default_factory=set)

    def pending(self, now: float) -> bool:
        """
        Sent, not yet answered by any place, and not expired.
        """
        return not self.used and self.expires > now


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

    Every operation costs in proportion to what one account holds, never
    to what all accounts hold: tokens are kept in issue order (they share
    one lifetime, so the expired ones are at the front) and indexed by
    account, with at most C{xfrTokensPerAccount} per account (a new one
    retires the oldest); sessions are indexed by the accounts in them.
    """

    def __init__(
        self,
        network: INetworkRouter,
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
    ) -> None:
        self.network = network
        self.clock: IReactorTime = clock or network.clock or reactorOrDefault(None)
        self.limits = limits
        self.sessions: dict[str, SwitchboardSession] = {}
        self._xfr: dict[str, _XfrGrant] = {}
        self._xfrByAccount: dict[str, dict[str, None]] = {}
        self._sessionsOf: dict[str, set[str]] = {}

    def _now(self) -> float:
        return self.clock.seconds()

    # -- XFR tokens -----------------------------------------------------------

    def _forgetXfr(self, token: str) -> Optional[_XfrGrant]:
        grant = self._xfr.pop(token, None)
        if grant is not None:
            mine = self._xfrByAccount.get(grant.account)
            if mine is not None:
                mine.pop(token, None)
                if not mine:
                    del self._xfrByAccount[grant.account]
        return grant

    def _pruneXfr(self, now: float) -> None:
        while self._xfr:
            token = next(iter(self._xfr))
            if self._xfr[token].expires > now:
                return
            self._forgetXfr(token)

    def issueXfrToken(self, account: str, machineGuid: str) -> str:
        """
        A fresh single-use token for C{XFR SB}, valid a short while for
        C{account} at endpoint C{machineGuid}. Past C{xfrTokensPerAccount}
        outstanding tokens of the account, the oldest stops working.
        """
        now = self._now()
        self._pruneXfr(now)
        account = normalizeEmail(account)
        mine = self._xfrByAccount.setdefault(account, {})
        while len(mine) >= self.limits.xfrTokensPerAccount:
            self._forgetXfr(next(iter(mine)))
            mine = self._xfrByAccount.setdefault(account, {})
        token = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**10)}.{secrets.token_hex(8)}"
        self._xfr[token] = _XfrGrant(account, machineGuid, now + XFR_TOKEN_LIFETIME)
        mine[token] = None
        return token

    def outstandingXfrTokens(self, account: str) -> int:
        """
        How many unexpired C{XFR SB} tokens C{account} holds.
        """
        self._pruneXfr(self._now())
        return len(self._xfrByAccount.get(normalizeEmail(account), ()))

    def redeemXfrToken(self, token: str, account: str, machineGuid: str) -> bool:
        """
        Use up C{token}: whether it was valid for C{account} and
        C{machineGuid} (GUIDs compared without braces and case).
        """
        grant = self._forgetXfr(token)
        if grant is None or grant.expires <= self._now():
            return False
        if grant.account != normalizeEmail(account):
            return False
        return not grant.machineGuid or guidKey(grant.machineGuid) == guidKey(machineGuid)

    # -- sessions ---------------------------------------------------------------

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

    def join(self, session: SwitchboardSession, member: "SwitchboardServer") -> None:
        """
        Add an authenticated connection to C{session}.
        """
        session.members.append(member)
        if member.account is not None:
            self._sessionsOf.setdefault(member.account, set()).add(session.sessionId)

    def leave(self, session: SwitchboardSession, member: "SwitchboardServer") -> None:
        """
        Take C{member} out of C{session} (its BYEs are the caller's).
        """
        if member in session.members:
            session.members.remove(member)
        account = member.account
        if account is not None and account not in session.accounts():
            ids = self._sessionsOf.get(account)
            if ids is not None:
                ids.discard(session.sessionId)
                if not ids:
                    del self._sessionsOf[account]

    def sessionsOf(self, account: str) -> list[SwitchboardSession]:
        """
        The sessions C{account} is in, from any of its places.
        """
        ids = self._sessionsOf.get(normalizeEmail(account), ())
        return [self.sessions[i] for i in ids if i in self.sessions]

    # -- invitations ------------------------------------------------------------

    def pendingInvite(self, session: SwitchboardSession, email: str) -> Optional[str]:
        """
        The token of an unanswered, unexpired invitation of C{email} to
        C{session}, if there is one.
        """
        now, key = self._now(), normalizeEmail(email)
        for token, invite in session.invites.items():
            if invite.email == key and invite.pending(now):
                return token
        return None

    def pendingInvitesBy(self, caller: str) -> int:
        """
        How many unanswered invitations C{caller} has out, over all its
        sessions (expired ones are dropped on the way).
        """
        now, key, count = self._now(), normalizeEmail(caller), 0
        for session in self.sessionsOf(key):
            for token in [t for t, i in session.invites.items() if i.expires <= now]:
                del session.invites[token]
            count += sum(1 for i in session.invites.values() if i.caller == key and i.pending(now))
        return count

    def issueInviteToken(self, session: SwitchboardSession, email: str, caller: str = "") -> str:
        """
        A token for C{email} to answer C{session}; each of its endpoints
        may use it once.
        """
        token = f"{secrets.randbelow(10**9)}.{secrets.token_hex(10)}"
        session.invites[token] = _Invite(normalizeEmail(email), self._now() + INVITE_TOKEN_LIFETIME,
                                         normalizeEmail(caller) if caller else "")
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

    # -- privacy and sign-out ---------------------------------------------------

    def signedOut(self, account: str, machineGuid: Optional[str], lastPlace: bool) -> None:
        """
        An NS place of C{account} signed out: its C{XFR SB} tokens die and
        its switchboard connections close (every place's, when it was the
        account's last one), so nothing keeps relaying for a user who left.
        """
        key = normalizeEmail(account)
        place = guidKey(machineGuid)
        for token in list(self._xfrByAccount.get(key, ())):
            grant = self._xfr.get(token)
            if grant is not None and (lastPlace or not grant.machineGuid or guidKey(grant.machineGuid) == place):
                self._forgetXfr(token)
        for session in self.sessionsOf(key):
            for member in list(session.members):
                if member.account == key and (lastPlace or guidKey(member.machineGuid) == place):
                    member.close("its user signed out")

    def enforcePrivacy(self, owner: Account) -> None:
        """
        C{owner}'s lists or privacy mode changed: everyone C{owner} no
        longer lets reach it leaves every session they share.
        """
        store = self.network.store
        for session in self.sessionsOf(owner.email):
            for member in list(session.members):
                if member.account is None or member.account == owner.email:
                    continue
                other = store.get(member.account)
                if other is None or not permits(owner, other):
                    member.close("no longer allowed by " + owner.email)


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

    def close(self, why: str) -> None:
        """
        Close the connection after what was already written; C{why} is
        logged only.
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
            self.close(f"{summarise(command.name, 16)} before authentication")
            return
        super().commandReceived(command)

    def unknownCommand(self, command: Command) -> None:
        self.close(f"unknown command {summarise(command.name, 16)}")

    def errorReceived(self, command: Command) -> None:
        self.close("numeric command from a client")

    # -- authentication ---------------------------------------------------------

    def _signedInOnNS(self, email: str) -> bool:
        """
        Whether C{email} still has a signed-in NS place: a token outliving
        its user's sign-out is worth nothing.
        """
        return bool(self.network.onlineSessions(email))

    def _authFailed(self, trid: Optional[int], why: str) -> None:
        self.reply("911", trid)
        self.close(why)

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

    # -- messages -------------------------------------------------------------------

    def handle_MSG(self, command: Command) -> None:
        mode = command.arg(0)
        if mode not in _ACK_MODES or len(command.arguments) != 1:
            self.close(f"bad MSG ack mode {mode[:5]!r}")
            return
        payload = command.payload or b""
        assert self.account is not None
        sender = self._accountRecord()
        store = self.network.store
        recipients = []
        for member in self._others():
            if member.account == self.account:
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
        self.close("OUT")

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
