# -*- test-case-name: test.test_server_switchboard -*-
"""
The switchboard server's directory: the single-use tokens the NS hands
out with C{XFR SB}, the sessions, who is in which, and the invitations
sent with C{RNG}.

Every operation costs in proportion to what one account holds, never to
what all accounts hold (see L{SwitchboardDirectory}). The directory also
applies the two rules that outlive a single message: a user who signed
out keeps no switchboard (L{SwitchboardDirectory.signedOut}), and whoever
an account stops allowing leaves the sessions they share
(L{SwitchboardDirectory.enforcePrivacy}).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IReactorTime

from msnp.reactors import reactorOrDefault
from msnp.server.accountmodel import Account, normalizeEmail
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.presence import guidKey, permits
from msnp.server.router import INetworkRouter

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.switchboard import SwitchboardServer

#: Seconds an C{XFR SB} token stays valid.
XFR_TOKEN_LIFETIME = 120.0
#: Seconds an invitation (C{RNG}) token stays valid.
INVITE_TOKEN_LIFETIME = 300.0


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
                    member.disconnect("its user signed out")

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
                    member.disconnect("no longer allowed by " + owner.email)
