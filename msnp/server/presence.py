# -*- test-case-name: test.test_server_notification -*-
"""
Presence routing on the local network: who is signed in where, and who
sees what.

L{Presence} is shared by every notification-server connection. It decides,
from the L{AccountStore} alone, who may see whom; each connection remembers
what it last told its user about every other account, so any change (a
C{CHG}, a block, a sign-out) becomes exactly the C{NLN}/C{FLN} lines that
make every view right again, never a duplicate. It knows the connections
only through the few methods it calls on them (C{sendNLN}, C{sendFLN},
C{sendUBX}, C{reply}, C{sendRaw}), not their protocol.

A change of one account is refreshed only in the sessions that watch it,
found through a L{WatcherIndex} (L{msnp.server.watchers}): its cost depends
on the account's contacts, not on how many are online.

The places of one account (MPOP) are kept in step: an incremental C{ADL} or
C{RML} of one place is repeated to the others as C{ADL 0}/C{RML 0}
(reference 3.5), and a change made through the ABCH services reaches them
as the address-book C{NOT} of reference 3.11 (see
L{Presence.notifyAddressBookChanged}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from twisted.logger import Logger

from msnp.listpayload import ListEntry, buildListPayloads
from msnp.server.accountmodel import ALLOW, BLOCK, Account, normalizeEmail
from msnp.server.accounts import AccountStore
from msnp.server.tickets import TicketGrant
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.nspayloads import addressBookChangedPayload
from msnp.server.watchers import WatcherIndex
from msnp.wire import Command
from msnp.xmlsafe import escapeText

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.nscircles import CircleHub
    from msnp.server.notification import NotificationServer

log = Logger()

HIDDEN = "HDN"

_GUID = re.compile(
    r"^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$"
)


def isGuid(text: str) -> bool:
    """
    Whether C{text} is a registry-form GUID, with or without braces.
    """
    return bool(_GUID.match(text)) and (text.startswith("{") == text.endswith("}"))


def permits(recipient: Account, sender: Account) -> bool:
    """
    Whether C{recipient}'s privacy lets C{sender} reach it (ring it, message
    it, send it C{UBN}): not blocked, and with C{BLP BL} ("only people on my
    allow list") explicitly allowed. Unlike seeing presence, reaching needs
    no forward-list entry. Checked at the moment of use, so a change of the
    lists takes effect on the very next message.
    """
    if recipient.hasRole(BLOCK, sender.email):
        return False
    if recipient.blp == "BL" and not recipient.hasRole(ALLOW, sender.email):
        return False
    return True


def guidKey(text: Optional[str]) -> str:
    """
    The form endpoint ids are compared in: lower case, no braces, since
    clients and servers echo a GUID with or without braces and in either
    case (reference 10.3). L{None} (an MSNP15 place) gives C{""}.
    """
    return (text or "").strip().strip("{}").lower()



@dataclass(frozen=True)
class PresenceState:
    """
    What a watcher is told about an account in C{NLN}.
    """

    status: str
    displayName: str
    capabilities: str
    msnObject: str


@dataclass
class PrivateEndpoint:
    """
    The C{PrivateEndpointData} one endpoint published (its own places only).
    """

    epName: str = ""
    idle: str = "false"
    clientType: str = "1"
    state: str = ""


@dataclass
class PersonalData:
    """
    The account-wide part of C{UUX <Data>}: shared by all its endpoints.
    """

    psm: str = ""
    currentMedia: str = ""


class Presence:
    """
    Who is signed in where, and who sees what.

    @ivar store: the lists every decision is taken from.
    """

    def __init__(self, store: AccountStore, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        """
        @param limits: the limits in force (C{usedTicketMemory} here).
        """
        self.store = store
        self.limits = limits
        self._sessions: dict[str, list["NotificationServer"]] = {}
        #: Account -> the sessions that may hold a view of it.
        self.watchers = WatcherIndex()
        self._personal: dict[str, PersonalData] = {}
        # ticket -> expiry of its grant, oldest first (grants share one
        # lifetime, so insertion order is expiry order).
        self._usedTickets: dict[str, float] = {}
        self._statusSerial = 0
        #: The circles shared by every NS connection (set by the network;
        #: L{None}: circle commands are refused).
        self.circles: Optional["CircleHub"] = None

    # -- registry -----------------------------------------------------------

    def consumeTicket(self, ticket: str, expires: float = float("inf"), now: float = 0.0) -> bool:
        """
        Mark the NS ticket of a real grant as presented; L{False} if it
        already was (grants are single use).

        Only tickets the store issued are remembered (a forged one is
        refused by the store and costs nothing here), each only until its
        grant's C{expires}, after which the store refuses it as expired
        anyway; and never more than C{usedTicketMemory} of them, the
        oldest forgotten first.
        """
        used = self._usedTickets
        if ticket in used:
            return False
        while used:
            oldest = next(iter(used))
            if used[oldest] > now and len(used) < self.limits.usedTicketMemory:
                break
            del used[oldest]
        used[ticket] = expires
        return True

    def nextStatusSerial(self) -> int:
        """
        A number larger than any handed out before: each C{CHG} takes one,
        so that L{stateOf} can tell which place changed the status last.
        """
        self._statusSerial += 1
        return self._statusSerial

    def sessionsOf(self, email: str) -> list["NotificationServer"]:
        """
        The signed-in connections of an account (after C{USR OK}).
        """
        return list(self._sessions.get(normalizeEmail(email), ()))

    def allSessions(self) -> list["NotificationServer"]:
        """
        Every signed-in connection of every account (a copy: callers may
        sign sessions out while iterating).
        """
        return [s for sessions in self._sessions.values() for s in sessions]

    def personal(self, email: str) -> PersonalData:
        """
        The account-wide PSM and media of C{email}, created on first use
        from the stored personal message so a fresh login shows the last one.
        """
        key = normalizeEmail(email)
        data = self._personal.get(key)
        if data is None:
            account = self.store.get(key)
            data = PersonalData(psm=account.personalMessage if account else "")
            self._personal[key] = data
        return data

    def signIn(self, session: "NotificationServer") -> None:
        """
        Register a session that just got C{USR OK}. A second login with the
        same machine GUID, or any login where either side has no GUID
        (MSNP15), signs the older session out with C{OUT OTH}.
        """
        assert session.account is not None
        key = session.account
        for other in self.sessionsOf(key):
            sameGuid = (
                other.machineGuid is None
                or session.machineGuid is None
                or guidKey(other.machineGuid) == guidKey(session.machineGuid)
            )
            if sameGuid:
                self._remove(other)
                other.signOut("OTH")
        self._sessions.setdefault(key, []).append(session)
        self.watchers.register(session)
        self.refreshSubject(key)
        self.sendSelfUBX(key, exclude=session)

    def _remove(self, session: "NotificationServer") -> bool:
        if session.account is None:
            return False
        sessions = self._sessions.get(session.account, [])
        if session not in sessions:
            return False
        sessions.remove(session)
        if not sessions:
            del self._sessions[session.account]
        self.watchers.unregister(session)
        return True

    def signOff(self, session: "NotificationServer") -> None:
        """
        Forget a session that went away; watchers get C{FLN} if it was the
        account's last visible place, the remaining places a fresh self-UBX.
        """
        if not self._remove(session):
            return
        assert session.account is not None
        self.refreshSubject(session.account)
        self.sendSelfUBX(session.account)
        self.sendUBXToWatchers(session.account)

    # -- views --------------------------------------------------------------

    def isReachable(self, email: str) -> bool:
        """
        Signed in, after a first C{CHG}, and not hidden.
        """
        return self.stateOf(email) is not None

    def visibleEndpoints(self, email: str) -> list["NotificationServer"]:
        """
        The places of C{email} a watcher may know about: after their first
        C{CHG} and not hidden.
        """
        return [s for s in self.sessionsOf(email) if s.status is not None and s.status != HIDDEN]

    def stateOf(self, email: str) -> Optional[PresenceState]:
        """
        What a watcher allowed to see C{email} should be shown, or L{None}
        when the account looks offline (signed out, not yet online, hidden).
        The newest C{CHG} of any place decides (the status is account-wide).
        """
        visible = self.visibleEndpoints(email)
        if not visible:
            return None
        latest = max(visible, key=lambda s: s.statusSerial)
        account = latest.user
        assert account is not None and latest.status is not None
        return PresenceState(latest.status, account.displayName, latest.capabilities, latest.msnObject)

    def refreshView(self, watcher: "NotificationServer", subject: str) -> None:
        """
        Bring what C{watcher} believes about C{subject} in line with the
        store and the presence: C{NLN} (+ C{UBX} when newly visible),
        C{FLN}, or nothing at all if nothing changed. Sessions before their
        first C{CHG} are told nothing.
        """
        subject = normalizeEmail(subject)
        self._settle(watcher, subject, self.store.get(subject), self.stateOf(subject))

    def _settle(
        self,
        watcher: "NotificationServer",
        subject: str,
        subjectAccount: Optional[Account],
        state: Optional[PresenceState],
    ) -> None:
        """
        L{refreshView} with the subject's record and its L{stateOf} already
        looked up, so that a change seen by many watchers is worked out
        once (L{refreshSubject}).
        """
        if watcher.status is None or watcher.user is None or subject == watcher.account:
            return
        if state is not None and not (
            subject in watcher.forward
            and subjectAccount is not None
            and self.store.canSee(watcher.user, subjectAccount)
        ):
            state = None
        before = watcher.announced.get(subject)
        if state == before:
            return
        if state is None:
            del watcher.announced[subject]
            self.watchers.forgetView(watcher, subject)
            watcher.sendFLN(subject)
            return
        watcher.announced[subject] = state
        watcher.sendNLN(subject, state)
        if before is None:
            watcher.sendUBX(subject, self.publicData(subject))

    def refreshSubject(self, subject: str) -> None:
        """
        Refresh every view of C{subject}: only the sessions that follow it
        or were shown it (L{WatcherIndex}) can be told anything, whatever
        the reason for the refresh (its status, privacy, name, places).
        """
        subject = normalizeEmail(subject)
        watchers = self.watchers.watchersOf(subject)
        if not watchers:
            return
        subjectAccount = self.store.get(subject)
        state = self.stateOf(subject)
        for watcher in watchers:
            self._settle(watcher, subject, subjectAccount, state)

    def refreshWatcher(self, watcher: "NotificationServer") -> None:
        """
        Refresh one session's view of everybody it knows or could know:
        the accounts it follows or was shown (nobody else can be shown to
        it), in address order.
        """
        for subject in sorted(watcher.forward.union(watcher.announced)):
            self.refreshView(watcher, subject)

    def follow(self, owner: str, subject: str, following: bool = True) -> None:
        """
        Record on every place of C{owner} that its user now has (or no
        longer has) C{subject} on the forward list it told the NS about.
        The caller refreshes the views afterwards (L{refreshBetween}).
        """
        key = normalizeEmail(subject)
        for session in self.sessionsOf(owner):
            if following:
                self.watchers.follow(session, key)
            else:
                self.watchers.unfollow(session, key)

    def refreshBetween(self, first: str, second: str) -> None:
        """
        Recompute what each of two accounts sees of the other.
        """
        for watcher in self.sessionsOf(first):
            self.refreshView(watcher, second)
        for watcher in self.sessionsOf(second):
            self.refreshView(watcher, first)

    def refreshAccount(self, email: str) -> None:
        """
        Recompute every view that lists of C{email} can decide: what its
        places see of anybody, and what anybody sees of it. An
        address-book change made over SOAP changes only the owner's forward
        list, its Allow/Block lists, privacy mode and name (and others'
        Reverse/Pending lists, which no view depends on), so this is all
        it can have changed, without going through every pair of sessions.
        """
        for watcher in self.sessionsOf(email):
            self.refreshWatcher(watcher)
        self.refreshSubject(email)

    def accountRemoved(self, email: str) -> None:
        """
        C{email}'s account was just removed from the store
        (L{AccountStore.removeAccount}): its places are signed out with
        C{OUT OTH} (reconnecting could not succeed, and C{OTH} tells a
        client not to try), and every watcher that was shown it gets
        C{FLN}, since a missing account looks offline to everyone.
        """
        key = normalizeEmail(email)
        for session in self.sessionsOf(key):
            self._remove(session)
            session.signOut("OTH")
        self._personal.pop(key, None)
        self.refreshSubject(key)

    # -- personal data --------------------------------------------------------

    def publicData(self, email: str) -> bytes:
        """
        The C{UBX} payload contacts see: PSM, media and one C{EndpointData}
        per visible place.
        """
        endpoints = [s.endpointDataXML() for s in self.visibleEndpoints(email) if s.machineGuid]
        return self._dataDocument(email, endpoints)

    def privateData(self, email: str) -> bytes:
        """
        The self-C{UBX} payload: as L{publicData}, but every signed-in place
        with its C{EndpointData} and its C{PrivateEndpointData}.
        """
        places = [s for s in self.sessionsOf(email) if s.machineGuid]
        endpoints = [s.endpointDataXML() for s in places] + [s.privateEndpointDataXML() for s in places]
        return self._dataDocument(email, endpoints)

    def _dataDocument(self, email: str, endpoints: list[str]) -> bytes:
        """
        A C{UBX <Data>} document: the account-wide PSM and media, then the
        given endpoint elements. Public and self views differ only in the
        endpoints, so the shared part is written once, here.
        """
        data = self.personal(email)
        return (
            f"<Data><PSM>{escapeText(data.psm)}</PSM>"
            f"<CurrentMedia>{escapeText(data.currentMedia)}</CurrentMedia>"
            f"{''.join(endpoints)}</Data>"
        ).encode("utf-8")

    def sendSelfUBX(self, email: str, exclude: Optional["NotificationServer"] = None) -> None:
        """
        Tell every place of an account where it is signed in.
        """
        payload = self.privateData(email)
        for session in self.sessionsOf(email):
            # MSNP15 has no places (MPOP came with MSNP16): nothing to tell.
            if session is not exclude and session.protocolVersion >= 16:
                session.sendUBX(normalizeEmail(email), payload)

    def sendUBXToWatchers(self, email: str) -> None:
        """
        Send the current public data to every session that sees C{email}
        online.
        """
        key = normalizeEmail(email)
        watchers = [w for w in self.watchers.watchersOf(key) if w.announced.get(key) is not None]
        if not watchers:
            return
        payload = self.publicData(key)
        for watcher in watchers:
            watcher.sendUBX(key, payload)

    # -- list synchronisation between places (MPOP) -----------------------------

    def notifyAddressBookChanged(
        self, account: Account, lastModified: str, origin: Optional[TicketGrant] = None
    ) -> int:
        """
        Send C{NOT} (site 45705, C{ABCHInternal}) to the signed-in places of
        C{account}, so that each re-reads its lists (reference 3.11).

        @param origin: the SSO grant whose contacts ticket made the change;
            the place that signed in with that grant made the change itself
            and is left out. A grant no place signed in with (the client
            renewed its tickets since) leaves nobody out, which is harmless:
            a refresh is idempotent.
        @return: how many places were told.
        """
        payload = addressBookChangedPayload(account, lastModified)
        told = 0
        for session in self.sessionsOf(account.email):
            if origin is not None and session.ticketGrant is origin:
                continue
            session.sendRaw(Command("NOT", None, (), payload))
            told += 1
        return told

    def echoListChange(self, source: "NotificationServer", name: str, entries: list[ListEntry]) -> None:
        """
        Repeat an incremental C{ADL}/C{RML} of one place to the account's
        other places as C{ADL 0}/C{RML 0} (reference 3.5: with MPOP, other
        bits than C{l="8"} mean another place changed the list).
        """
        if source.account is None:
            return
        others = [s for s in self.sessionsOf(source.account) if s is not source]
        if not others:
            return
        try:
            payloads = buildListPayloads(entries, initial=False)
        except ValueError as e:
            log.info("Not echoing {name} to the other places: {error}", name=name, error=str(e))
            return
        for session in others:
            for payload in payloads:
                session.reply(name, 0, payload=payload)
