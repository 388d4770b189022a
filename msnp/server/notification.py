# -*- test-case-name: test.test_server_notification -*-
"""
The local network's notification server (NS): login, presence, lists.

Two parts live here. L{NotificationServer} is one client connection: it
checks the login as strictly as the independent MSNP18 server of reference
section 10.3 (ticket and MBI response verified, machine GUID required, C{911}
and a disconnect on any mismatch, C{540} on a wrong C{QRY}) and answers the
session commands. L{Presence} is shared by all connections: it knows who is
signed in where, and decides, from the L{AccountStore} alone, who may see
whom. Each connection remembers what it last told its user about every other
account, so any change — a C{CHG}, a block, a sign-out — is turned into
exactly the C{NLN}/C{FLN} lines that make every view right again, never a
duplicate.

The places of one account (MPOP) are kept in step: an incremental C{ADL} or
C{RML} of one place is repeated to the others as C{ADL 0}/C{RML 0}
(reference 3.5), and a change made through the ABCH services reaches them
as the address-book C{NOT} of reference 3.11 (see
L{Presence.notifyAddressBookChanged}).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.challenge import WLM2009_PRODUCT_ID, WLM2009_PRODUCT_KEY, computeChallengeResponse
from msnp.contacts import Lists
from msnp.listpayload import ListEntry, buildListPayloads, parseListPayload
from msnp.errors import ProtocolError
from msnp.server.accounts import REVERSE, Account, AccountStore, TicketGrant, normalizeEmail
from msnp.server.dispatch import LoginPreamble
from msnp.mbi import verifyMBIResponse
from msnp.wire import Command, decodeParameter, encodeParameter
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML, textOf

if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.interfaces import IAddress

log = Logger()

#: Product id/key pairs whose C{QRY} answers are accepted: WLM 2009
#: (MSNP18) and WLM 8.5, which pidgin uses even with MSNP18 (reference 4.12).
WLM85_PRODUCT_ID = "PROD0119GSJUC$18"
WLM85_PRODUCT_KEY = "ILTXC!4IXB5FB*PX"
PRODUCT_KEYS = {WLM2009_PRODUCT_ID: WLM2009_PRODUCT_KEY, WLM85_PRODUCT_ID: WLM85_PRODUCT_KEY}

#: The policy pushed with C{GCF 0} (reference section 2.5), 497 bytes.
POLICY = (
    b'<Policies><Policy type="SHIELDS"><config><shield><cli maj="7" min="0" minbld="0" '
    b'maxbld="9999" deny=" " /></shield><block></block></config></Policy><Policy type="ABCH">'
    b'<policy><set id="push" service="ABCH" priority="200"><r id="pushstorage" threshold="180000" />'
    b'</set><set id="using_notifications" service="ABCH" priority="100"><r id="pullab" threshold="0" '
    b'timer="1800000" trigger="Timer" /><r id="pullmembership" threshold="0" timer="1800000" '
    b'trigger="Timer" /></set></policy></Policy></Policies>'
)

#: The initial mail-data message: an empty inbox, no offline messages.
MAIL_DATA = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n"
    b"\r\n"
    b"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>"
    b"<Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
    b"Inbox-URL: /cgi-bin/HoTMaiL\r\n"
    b"Folders-URL: /cgi-bin/folders\r\n"
    b"Post-URL: http://www.hotmail.com\r\n"
)

#: Statuses a client may set with C{CHG} (reference 4.1); C{FLN} is not one.
SETTABLE_STATUSES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})
HIDDEN = "HDN"

#: Display names longer than this, URL-encoded, are refused (pidgin's limit).
MAX_ENCODED_NAME = 387

_GUID = re.compile(
    r"^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$"
)
_CAPS = re.compile(r"^\d{1,10}(:\d{1,10})?$")


def isGuid(text: str) -> bool:
    """
    Whether C{text} is a registry-form GUID, with or without braces.
    """
    return bool(_GUID.match(text)) and (text.startswith("{") == text.endswith("}"))


def guidKey(text: Optional[str]) -> str:
    """
    The form endpoint ids are compared in: lower case, no braces, since
    clients and servers echo a GUID with or without braces and in either
    case (reference 10.3). L{None} (an MSNP15 place) gives C{""}.
    """
    return (text or "").strip().strip("{}").lower()


def newNonce() -> str:
    """
    A fresh C{MBI_KEY_OLD} nonce: 48 random bytes, base64 (64 characters).
    """
    return base64.b64encode(os.urandom(48)).decode("ascii")


def newChallenge() -> str:
    """
    Twenty random decimal digits for C{CHL 0}.
    """
    return str(10**19 + secrets.randbelow(9 * 10**19))


def splitMemberId(puid: int) -> tuple[int, int]:
    """
    A PUID as the profile's C{MemberIdHigh}/C{MemberIdLow}: the high 32
    bits unsigned, the low 32 bits as a signed integer.
    """
    high = (puid >> 32) & 0xFFFFFFFF
    low = puid & 0xFFFFFFFF
    if low >= 2**31:
        low -= 2**32
    return high, low


def profileMessage(account: Account, loginTime: int, clientIP: str, clientPort: int, mpop: bool) -> bytes:
    """
    The C{text/x-msmsgsprofile} message of reference section 8.4, with the
    values of C{account}. Its C{MSPAuth} is random: it is derived from no
    ticket or secret, since nothing on the local network uses it.
    """
    high, low = splitMemberId(account.puid)
    headers = [
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/x-msmsgsprofile; charset=UTF-8"),
        ("LoginTime", str(loginTime)),
        ("EmailEnabled", "1"),
        ("MemberIdHigh", str(high)),
        ("MemberIdLow", str(low)),
        ("lang_preference", "1033"),
        ("preferredEmail", account.email),
        ("country", "US"),
        ("PostalCode", ""),
        ("Gender", ""),
        ("Kid", "0"),
        ("Age", ""),
        ("BDayPre", ""),
        ("Birthday", ""),
        ("Wallet", ""),
        ("Flags", "536872513"),
        ("sid", "507"),
        ("MSPAuth", secrets.token_hex(24) + "$$"),
        ("ClientIP", clientIP),
        ("ClientPort", str(clientPort)),
        ("ABCHMigrated", "1"),
        ("MPOPEnabled", "1" if mpop else "0"),
    ]
    text = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return text.encode("utf-8")


#: The C{siteid} of address-book change notifications (reference 3.11).
ABCH_SITE_ID = "45705"


def notificationPid(puid: int) -> str:
    """
    The C{pid} of a C{NOT}'s C{<TO>}: the PUID's low and high 32-bit
    halves in hex, C{0x<low>:0x<high>} (reference 3.11 leaves the order
    unconfirmed; this is the order of its example).
    """
    low = puid & 0xFFFFFFFF
    high = (puid >> 32) & 0xFFFFFFFF
    return f"0x{low:08x}:0x{high:08x}"


def _escapeMarkup(text: str) -> str:
    """
    Escape XML text as element content: C{&}, C{<} and C{>} only (quotes
    need no escaping there, and the reference's example leaves them as
    they are).
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def addressBookChangedPayload(account: Account, lastModified: str, hasNewItem: bool = False) -> bytes:
    """
    The C{NOT} payload telling every place of C{account} that its address
    book or memberships changed elsewhere (reference section 3.11): site
    C{45705}, and in C{<BODY>} an escaped C{<NotificationData>} naming the
    C{ABCHInternal} service, the account's CID and the change time.

    @param lastModified: the change time as an C{xsd:dateTime} text.
    """
    data = (
        '<NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<Service>ABCHInternal</Service>"
        f"<CID>{account.cid}</CID>"
        f"<LastModifiedDate>{escapeText(lastModified)}</LastModifiedDate>"
        f"<HasNewItem>{'true' if hasNewItem else 'false'}</HasNewItem>"
        "</NotificationData>"
    )
    text = (
        f'<NOTIFICATION id="0" siteid="{ABCH_SITE_ID}" siteurl="http://contacts.msn.com">'
        f'<TO pid="{notificationPid(account.puid)}" name="{escapeText(account.email)}">'
        '<VIA agent="messenger" /></TO>'
        '<MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" />'
        f"<BODY>{_escapeMarkup(data)}</BODY></MSG></NOTIFICATION>"
    )
    return text.encode("utf-8")


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

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self._sessions: dict[str, list["NotificationServer"]] = {}
        self._personal: dict[str, PersonalData] = {}
        self._usedTickets: set[str] = set()
        self._statusSerial = 0

    # -- registry -----------------------------------------------------------

    def consumeTicket(self, ticket: str) -> bool:
        """
        Mark an NS ticket as presented; L{False} if it already was (grants
        are single use).
        """
        if ticket in self._usedTickets:
            return False
        self._usedTickets.add(ticket)
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

    def refreshView(self, watcher: "NotificationServer", subject: str, sendUBX: bool = True) -> None:
        """
        Bring what C{watcher} believes about C{subject} in line with the
        store and the presence: C{NLN} (+ C{UBX} when newly visible),
        C{FLN}, or nothing at all if nothing changed. Sessions before their
        first C{CHG} are told nothing.
        """
        subject = normalizeEmail(subject)
        if watcher.status is None or watcher.user is None or subject == watcher.account:
            return
        subjectAccount = self.store.get(subject)
        state: Optional[PresenceState] = None
        if (
            subject in watcher.forward
            and subjectAccount is not None
            and self.store.canSee(watcher.user, subjectAccount)
        ):
            state = self.stateOf(subject)
        before = watcher.announced.get(subject)
        if state == before:
            return
        if state is None:
            del watcher.announced[subject]
            watcher.sendFLN(subject)
            return
        watcher.announced[subject] = state
        watcher.sendNLN(subject, state)
        if before is None and sendUBX:
            watcher.sendUBX(subject, self.publicData(subject))

    def refreshSubject(self, subject: str) -> None:
        """
        Refresh every session's view of C{subject}.
        """
        for watcher in self.allSessions():
            self.refreshView(watcher, subject)

    def refreshWatcher(self, watcher: "NotificationServer") -> None:
        """
        Refresh one session's view of everybody it knows or could know.
        """
        subjects = set(self._sessions) | set(watcher.announced) | watcher.forward
        for subject in sorted(subjects):
            self.refreshView(watcher, subject)

    def follow(self, owner: str, subject: str, following: bool = True) -> None:
        """
        Record on every place of C{owner} that its user now has (or no
        longer has) C{subject} on the forward list it told the NS about.
        """
        key = normalizeEmail(subject)
        for session in self.sessionsOf(owner):
            if following:
                session.forward.add(key)
            else:
                session.forward.discard(key)

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

    def refreshEverything(self) -> None:
        """
        Recompute every view (after a change whose reach is not known).
        """
        for watcher in self.allSessions():
            self.refreshWatcher(watcher)

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
        payload = self.publicData(key)
        for watcher in self.allSessions():
            if watcher.announced.get(key) is not None:
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


class NotificationServer(LoginPreamble):
    """
    One client connection to the notification server.

    @ivar account: the signed-in address (lower case), L{None} before
        C{USR OK}.
    @ivar user: the L{Account} record, L{None} before C{USR OK}.
    @ivar machineGuid: the endpoint id as the client sent it (L{None} for
        MSNP15).
    @ivar status: the status code, L{None} before the first C{CHG}.
    @ivar capabilities: C{caps:extcaps} of the last C{CHG}.
    @ivar msnObject: the URL-encoded MSN object of the last C{CHG} or C{"0"}.
    @ivar announced: what this connection last told its user about each
        other account (absent: offline).
    @ivar ticketGrant: the SSO grant this place signed in with (to
        recognise the place behind an ABCH change), L{None} before login.
    @ivar forward: the addresses whose presence this connection wants: the
        stored forward list at login (the initial C{ADL} is only
        acknowledged, the store being the truth), plus incremental C{ADL}s
        and minus C{RML}s with the FL bit. Presence needs both this and the
        store, so a contact added over SOAP shows up once the client has
        sent its C{ADL}, whichever of the two came first.
    """

    def __init__(
        self,
        network: Any,
        presence: Presence,
        sendChallenge: bool = True,
        pingInterval: int = 50,
        clock: Optional[IReactorTime] = None,
    ) -> None:
        """
        @param network: the L{LocalNetwork} (for switchboards and C{ring}).
        @param presence: the shared session registry.
        """
        super().__init__(clock=clock)
        self.network = network
        self.presence = presence
        self.store = presence.store
        self.sendChallenge = sendChallenge
        self.pingInterval = pingInterval
        self.account: Optional[str] = None
        self.user: Optional[Account] = None
        self.machineGuid: Optional[str] = None
        self.status: Optional[str] = None
        self.statusSerial = 0
        self.capabilities = "0:0"
        self.msnObject = "0"
        self.private = PrivateEndpoint()
        self.announced: dict[str, PresenceState] = {}
        self.forward: set[str] = set()
        self.ticketGrant: Optional[TicketGrant] = None
        self._loginAccount: Optional[str] = None
        self._nonce: Optional[str] = None
        self._challenge: Optional[str] = None
        self._closing = False

    def __repr__(self) -> str:
        return f"<NotificationServer account={self.account!r} guid={self.machineGuid!r} status={self.status!r}>"

    @property
    def displayName(self) -> str:
        """
        The account's display name (empty before login).
        """
        return self.user.displayName if self.user is not None else ""

    @property
    def signedIn(self) -> bool:
        """
        Whether this connection got C{USR OK} (session commands are
        refused before).
        """
        return self.account is not None

    # -- connection -----------------------------------------------------------

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        try:
            self.presence.signOff(self)
        finally:
            LoginPreamble.connectionLost(self, reason)

    def signOut(self, reason: str) -> None:
        """
        Send C{OUT reason} and close; the session is no longer routed to.
        """
        if self._closing:
            return
        self._closing = True
        self.sendRaw(Command("OUT", None, (reason,)))
        if self.transport is not None:
            self.transport.loseConnection()

    def fail(self, code: int, trid: Optional[int], why: str) -> None:
        """
        A fatal error: send the code and close the connection.
        """
        self.error(code, trid)
        self._closing = True
        self.drop(why)

    # -- sending helpers ----------------------------------------------------------

    def _accountToken(self, email: str) -> list[str]:
        if self.protocolVersion >= 18:
            return [f"1:{email}"]
        return [email, "1"]

    def _caps(self, capabilities: str) -> str:
        if self.protocolVersion >= 16:
            return capabilities if ":" in capabilities else capabilities + ":0"
        return capabilities.split(":")[0]

    def sendNLN(self, email: str, state: PresenceState) -> None:
        """
        Tell this user that C{email} is online in C{state}, in the form of
        the negotiated protocol version.
        """
        args = [state.status, *self._accountToken(email), encodeParameter(state.displayName) or "%20",
                self._caps(state.capabilities), state.msnObject]
        self.sendRaw(Command("NLN", None, tuple(args)))

    def sendFLN(self, email: str) -> None:
        """
        Tell this user that C{email} looks offline now.
        """
        caps = "0:0" if self.protocolVersion >= 16 else "0"
        self.sendRaw(Command("FLN", None, (*self._accountToken(email), caps)))

    def sendUBX(self, email: str, payload: bytes) -> None:
        """
        Send the personal-data document C{payload} of C{email}.
        """
        self.sendRaw(Command("UBX", None, tuple(self._accountToken(email)), payload))

    def endpointDataXML(self) -> str:
        """
        This place's public C{<EndpointData>} (its id and capabilities),
        which contacts see in C{UBX}.
        """
        assert self.machineGuid is not None
        return (
            f'<EndpointData id="{escapeText(self._braced())}">'
            f"<Capabilities>{escapeText(self.capabilities)}</Capabilities></EndpointData>"
        )

    def privateEndpointDataXML(self) -> str:
        """
        This place's C{<PrivateEndpointData>}, shown only to the account's
        own places so each can list (and sign out) the others.
        """
        p = self.private
        state = p.state or self.status or "NLN"
        return (
            f'<PrivateEndpointData id="{escapeText(self._braced())}">'
            f"<EpName>{escapeText(p.epName)}</EpName><Idle>{escapeText(p.idle)}</Idle>"
            f"<ClientType>{escapeText(p.clientType)}</ClientType><State>{escapeText(state)}</State>"
            "</PrivateEndpointData>"
        )

    def _braced(self) -> str:
        guid = self.machineGuid or ""
        return guid if guid.startswith("{") else "{" + guid + "}"

    # -- dispatch -------------------------------------------------------------

    _LOGIN_COMMANDS = frozenset({"VER", "CVR", "USR", "OUT"})

    def commandReceived(self, command: Command) -> None:
        if self._closing:
            return
        if self.version is not None and not self.signedIn and command.name not in self._LOGIN_COMMANDS:
            if command.trid is not None and not command.isError:
                self.error(302, command.trid)
            else:
                self.log.info("Ignoring {command} before login", command=command.describe())
            return
        super().commandReceived(command)

    def unknownCommand(self, command: Command) -> None:
        self.log.info("Ignoring unknown NS command {command}", command=command.describe())

    def errorReceived(self, command: Command) -> None:
        self.log.info("Ignoring a numeric command from a client: {command}", command=command.name)

    # -- login ------------------------------------------------------------------

    def handle_USR(self, command: Command) -> None:
        args = command.arguments
        if self.signedIn:
            if args[:2] == ("SHA", "A"):
                # Circle authentication: accepted and ignored (reference 3.10).
                assert self.account is not None
                self.reply("USR", command.trid, "OK", self.account, "0", "0")
            else:
                self.error(207, command.trid)
            return
        if args[:2] == ("SSO", "I") and len(args) >= 3:
            self._loginAccount = normalizeEmail(args[2])
            self._nonce = newNonce()
            self.reply("USR", command.trid, "SSO", "S", "MBI_KEY_OLD", self._nonce)
            self.reply("GCF", 0, payload=POLICY)
            return
        if args[:2] == ("SSO", "S"):
            self._checkTicket(command)
            return
        self.fail(911, command.trid, "unexpected USR during login")

    def _checkTicket(self, command: Command) -> None:
        """
        Verify C{USR trid SSO S ticket response [guid]}.

        The independent server of reference 10.3 stayed silent when the GUID
        was missing (the client hung until its own timeout); this server
        answers C{911} and disconnects instead, which a client handles the
        same way and finds out about sooner. MSNP15 logins carry no GUID.
        """
        args = command.arguments
        trid = command.trid
        if self._nonce is None or self._loginAccount is None:
            self.fail(911, trid, "USR SSO S before USR SSO I")
            return
        if len(args) < 4:
            self.fail(911, trid, "USR SSO S without ticket or response")
            return
        ticket, response = args[2], args[3]
        guid = args[4] if len(args) >= 5 else None
        grant = self.store.grantForTicket(ticket)
        fresh = self.presence.consumeTicket(ticket)
        if grant is None or not fresh or normalizeEmail(grant.email) != self._loginAccount:
            self.fail(911, trid, "unknown, reused or foreign ticket")
            return
        if self.store.isExpired(grant):
            self.fail(911, trid, "expired ticket")
            return
        if not verifyMBIResponse(grant.binarySecret, self._nonce, response):
            self.fail(911, trid, "wrong MBI response")
            return
        if self.protocolVersion >= 16:
            if guid is None or not isGuid(guid):
                self.fail(911, trid, "missing or malformed machine GUID")
                return
        elif guid is not None and not isGuid(guid):
            guid = None
        account = self.store.get(grant.email)
        if account is None:
            self.fail(911, trid, "account vanished")
            return
        self._nonce = None
        self.user = account
        self.account = account.email
        self.forward = {email for email, entry in account.addressBook.items() if entry.isMessengerUser}
        self.machineGuid = guid
        self.ticketGrant = grant
        self.log.info("{account} signed in (endpoint {guid})", account=account.email, guid=guid)
        self.reply("USR", trid, "OK", account.email, "1", "0")
        self.reply("SBS", 0, "null")
        peer = self.transport.getPeer() if self.transport is not None else None
        host = getattr(peer, "host", "127.0.0.1")
        port = getattr(peer, "port", 0)
        profile = profileMessage(
            account, int(self.clock.seconds()), host, port, mpop=self.protocolVersion >= 16
        )
        self.sendRaw(Command("MSG", None, ("Hotmail", "Hotmail"), profile))
        self.presence.signIn(self)
        if self.protocolVersion >= 16:
            self.sendUBX(account.email, self.presence.privateData(account.email))
        self.sendRaw(Command("MSG", None, ("Hotmail", "Hotmail"), MAIL_DATA))
        if self.sendChallenge:
            self._challenge = newChallenge()
            self.reply("CHL", 0, self._challenge)

    def handle_QRY(self, command: Command) -> None:
        if self._challenge is None:
            self.log.info("Ignoring an unsolicited QRY")
            return
        challenge, self._challenge = self._challenge, None
        productId = command.arg(0)
        key = PRODUCT_KEYS.get(productId)
        answer = (command.payload or b"").decode("ascii", "replace").strip()
        if key is None or computeChallengeResponse(challenge, productId, key) != answer:
            self.fail(540, command.trid, "wrong challenge response")
            return
        self.reply("QRY", command.trid)

    def handle_OUT(self, command: Command) -> None:
        self._closing = True
        self.drop("client signed out")

    # -- session ------------------------------------------------------------------

    def handle_PNG(self, command: Command) -> None:
        self.sendRaw(Command("QNG", None, (str(self.pingInterval),)))

    def handle_BLP(self, command: Command) -> None:
        value = command.arg(0)
        if value not in ("AL", "BL"):
            self.error(201, command.trid)
            return
        assert self.user is not None
        self.user.blp = value
        self.reply("BLP", command.trid, value)
        self.presence.refreshSubject(self.user.email)

    def handle_PRP(self, command: Command) -> None:
        kind = command.arg(0)
        if not kind:
            return
        value = command.arg(1)
        if kind != "MFN":
            self.reply("PRP", command.trid, *command.arguments)
            return
        if not value or len(value) > MAX_ENCODED_NAME:
            self.error(201, command.trid)
            return
        name = decodeParameter(value)
        if not name.strip() or any(c in name for c in "\r\n"):
            self.error(209, command.trid)
            return
        assert self.user is not None
        self.user.displayName = name
        self.reply("PRP", command.trid, "MFN", value)
        self.presence.refreshSubject(self.user.email)

    def handle_UUX(self, command: Command) -> None:
        payload = command.payload or b""
        assert self.user is not None
        if payload.strip():
            try:
                root = parseXML(payload)
            except XMLError as e:
                self.log.info("Ignoring UUX with unusable XML: {error}", error=str(e))
                return
            kind = localName(root.tag)
            if kind == "Data":
                data = self.presence.personal(self.user.email)
                data.psm = textOf(root, "PSM")[:1024]
                data.currentMedia = textOf(root, "CurrentMedia")[:1024]
                self.user.personalMessage = data.psm
                self.reply("UUX", command.trid, payload=b"")
                self.presence.sendUBXToWatchers(self.user.email)
                self.presence.sendSelfUBX(self.user.email)
                return
            if kind == "PrivateEndpointData":
                self.private = PrivateEndpoint(
                    epName=textOf(root, "EpName")[:256],
                    idle=textOf(root, "Idle", default="false")[:16],
                    clientType=textOf(root, "ClientType", default="1")[:8],
                    state=textOf(root, "State")[:8],
                )
                self.reply("UUX", command.trid, payload=b"")
                self.presence.sendSelfUBX(self.user.email)
                return
            if kind == "EndpointData":
                caps = textOf(root, "Capabilities")
                if _CAPS.match(caps):
                    self.capabilities = caps
        self.reply("UUX", command.trid, payload=b"")

    def handle_CHG(self, command: Command) -> None:
        status = command.arg(0)
        caps = command.arg(1)
        msnObject = command.arg(2, "0")
        if not caps:
            # The independent server answered nothing at all (10.3).
            self.log.info("Ignoring CHG without capabilities")
            return
        if status not in SETTABLE_STATUSES or not _CAPS.match(caps):
            self.error(201, command.trid)
            return
        assert self.user is not None and self.account is not None
        first = self.status is None
        capsChanged = caps != self.capabilities
        self.capabilities = caps
        self.msnObject = msnObject
        self.status = status
        self.statusSerial = self.presence.nextStatusSerial()
        self.reply("CHG", command.trid, *command.arguments)
        # The status is the account's: the other places take it too, and
        # hear about it as an NLN about their own address (reference 5.3).
        for other in self.presence.sessionsOf(self.account):
            if other is self or other.status is None:
                continue
            other.status = status
            state = PresenceState(status, self.user.displayName, caps, msnObject)
            other.sendNLN(self.account, state)
        if first:
            self.presence.refreshWatcher(self)
        self.presence.refreshSubject(self.account)
        if first or capsChanged:
            self.presence.sendSelfUBX(self.account)
            if not first:
                self.presence.sendUBXToWatchers(self.account)

    def _listEntries(self, command: Command) -> Optional[tuple[bool, list[ListEntry]]]:
        """
        Validate an C{ADL}/C{RML} payload. Sends the error and returns
        L{None} when it is refused: an empty C{<d>} is C{240} and a list bit
        other than FL/AL/BL (or AL with BL) C{241}, both without payload and
        followed by a disconnect, as the independent server did (10.3); an
        address with no account is C{208}, the connection staying open.
        """
        payload = command.payload or b""
        try:
            root = parseXML(payload)
        except XMLError:
            self.log.info("Ignoring {name} with unusable XML", name=command.name)
            return None
        if localName(root.tag) != "ml":
            self.log.info("Ignoring {name} whose root is not <ml>", name=command.name)
            return None
        initial = root.get("l") == "1"
        for section in root:
            if localName(section.tag) == "d" and not any(localName(c.tag) == "c" for c in section):
                self.fail(240, command.trid, "empty <d> in a list payload")
                return None
        try:
            entries = parseListPayload(payload)
        except ProtocolError as e:
            self.log.info("Ignoring malformed {name}: {error}", name=command.name, error=str(e))
            return None
        for element in root.iter():
            if localName(element.tag) == "c":
                try:
                    bits = int(element.get("l") or "0")
                except ValueError:
                    bits = -1
                if bits <= 0 or bits & ~7 or bits & 6 == 6:
                    self.fail(241, command.trid, f"impossible list bits {bits}")
                    return None
        if not initial:
            for entry in entries:
                if entry.network != 1 or self.store.get(entry.email) is None:
                    self.error(208, command.trid)
                    return None
        return initial, entries

    def handle_ADL(self, command: Command) -> None:
        parsed = self._listEntries(command)
        if parsed is None:
            return
        initial, entries = parsed
        assert self.user is not None
        self.reply("ADL", command.trid, "OK")
        if initial:
            # The store is the truth; the initial list is only acknowledged.
            return
        # The other places hear of it before any presence it causes, so that
        # they know the contact by the time its NLN arrives.
        self.presence.echoListChange(self, "ADL", entries)
        for entry in entries:
            target = self.store.get(entry.email)
            if target is None:
                continue
            if entry.lists & Lists.FORWARD:
                self.presence.follow(self.user.email, target.email)
                if target.hasRole(REVERSE, self.user.email):
                    self._notifyListChange(target, "ADL", self.user, withName=True)
            self.presence.refreshBetween(self.user.email, target.email)

    def handle_RML(self, command: Command) -> None:
        parsed = self._listEntries(command)
        if parsed is None:
            return
        initial, entries = parsed
        assert self.user is not None
        self.reply("RML", command.trid, "OK")
        if not initial:
            self.presence.echoListChange(self, "RML", entries)
        for entry in entries:
            target = self.store.get(entry.email)
            if target is None:
                continue
            if entry.lists & Lists.FORWARD:
                self.presence.follow(self.user.email, target.email, following=False)
                self._notifyListChange(target, "RML", self.user, withName=False)
            self.presence.refreshBetween(self.user.email, target.email)

    def _notifyListChange(self, target: Account, name: str, who: Account, withName: bool) -> None:
        """
        Tell every place of C{target} that C{who} put it on (C{ADL}) or took
        it off (C{RML}) their forward list: C{l="8"}, TrID 0.
        """
        local, _, domain = who.email.rpartition("@")
        extra = f' f="{escapeText(encodeParameter(who.displayName))}"' if withName else ""
        payload = (
            f'<ml><d n="{escapeText(domain)}"><c n="{escapeText(local)}" t="1" l="8"{extra} /></d></ml>'
        ).encode("utf-8")
        for session in self.presence.sessionsOf(target.email):
            session.reply(name, 0, payload=payload)

    def handle_FQY(self, command: Command) -> None:
        """
        Federated query: which network is each address on. Only Live
        accounts exist here; an unknown address gets C{208} without payload
        (reference 10.3).
        """
        try:
            entries = parseListPayload(command.payload or b"")
        except ProtocolError as e:
            self.log.info("Ignoring malformed FQY: {error}", error=str(e))
            return
        if not entries or any(self.store.get(e.email) is None for e in entries):
            self.error(208, command.trid)
            return
        sections: dict[str, list[str]] = {}
        for entry in entries:
            local, _, domain = entry.email.rpartition("@")
            sections.setdefault(domain, []).append(f'<c n="{escapeText(local)}" t="1" />')
        body = "".join(f'<d n="{escapeText(d)}">{"".join(cs)}</d>' for d, cs in sections.items())
        self.reply("FQY", command.trid, payload=f"<ml>{body}</ml>".encode("utf-8"))

    def handle_XFR(self, command: Command) -> None:
        if command.arg(0) != "SB":
            self.error(201, command.trid)
            return
        if self.status is None:
            self.error(913, command.trid)
            return
        directory = getattr(self.network, "switchboards", None)
        address = getattr(self.network, "switchboardAddress", None)
        if directory is None or not address:
            self.error(500, command.trid)
            return
        assert self.account is not None
        token = directory.issueXfrToken(self.account, self.machineGuid or "")
        self.reply("XFR", command.trid, "SB", address, "CKI", token, "U", "messenger.msn.com", "1")

    def handle_UUN(self, command: Command) -> None:
        target = command.arg(0)
        kind = command.arg(1)
        self.reply("UUN", command.trid, "OK")
        email, _, guid = target.partition(";")
        if ":" in email.split("@")[0]:
            email = email.split(":", 1)[1]
        assert self.account is not None
        sender = self.account + (f";{self._braced()}" if self.machineGuid else "")
        for session in self.presence.sessionsOf(email):
            if session is self:
                continue
            if guid and (session.machineGuid is None or guidKey(session.machineGuid) != guidKey(guid)):
                continue
            session.sendRaw(Command("UBN", None, (sender, kind), command.payload or b""))

    def handle_UUM(self, command: Command) -> None:
        # Offline messages are not stored by the local network.
        self.log.info("Dropping UUM from {account} (offline messages are not kept)", account=self.account)


class NotificationServerFactory(Factory):
    """
    Builds L{NotificationServer}s sharing one L{Presence}.
    """

    def __init__(
        self,
        network: Any,
        presence: Presence,
        sendChallenge: bool = True,
        pingInterval: int = 50,
        clock: Optional[IReactorTime] = None,
    ) -> None:
        self.network = network
        self.presence = presence
        self.sendChallenge = sendChallenge
        self.pingInterval = pingInterval
        self.clock = clock

    def buildProtocol(self, addr: Optional["IAddress"]) -> NotificationServer:
        protocol = NotificationServer(
            self.network, self.presence, self.sendChallenge, self.pingInterval, self.clock
        )
        protocol.factory = self
        return protocol

