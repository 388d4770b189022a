# -*- test-case-name: test.test_notification -*-
"""
The client side of the notification server (NS) connection.

L{NotificationProtocol} continues the L{DispatchProtocol} conversation on
the server that answered with the SSO challenge: it presents the ticket
(C{USR SSO S}), and afterwards lives as long as the session, keeping the
session's L{SessionState} current from what the server pushes: presence
(C{ILN}/C{NLN}/C{FLN}), personal data and endpoints (C{UBX}), the account
profile (C{MSG Hotmail Hotmail}), list changes (C{ADL 0}/C{RML 0}),
invitations (C{RNG}), challenges (C{CHL}) and the end of the session
(C{OUT}, C{UBN ... goawyplzthxbye}). It also answers the keep-alive.

The parsing of each command is a pure function returning a value object,
tested on its own; the protocol methods only apply those values and tell
the observer. Presence arrives in the MSNP18 form (C{1:bob@example.com})
or the older ones (C{bob@example.com 1}); both are read (reference 9.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.challenge import computeChallengeResponse
from msnp.contacts import (
    NETWORK_PASSPORT,
    ContactList,
    Endpoint,
    Profile,
    Status,
    normalizeEmail,
    normalizeGuid,
    parseListPayload,
)
from msnp.dispatch import DispatchProtocol, NSRedirect, abortTransport, parseTransfer
from msnp.endpoints import ClientIdentity
from msnp.errors import (
    AuthenticationError,
    ProtocolError,
    ServerError,
    ServiceError,
    SignedOut,
)
from msnp.interfaces import notifyObserver
from msnp.protocol import DEFAULT_REQUEST_TIMEOUT
from msnp.wire import Command, decodeParameter, encodeParameter
from msnp.xmlsafe import childrenByName, escapeText, localName, parseXML, textOf

from msnp.switchboard import Invitation, SwitchboardTicket

log = Logger()

#: Seconds between keep-alives until the server names its interval in C{QNG}.
DEFAULT_PING_INTERVAL = 45
#: The C{QNG} interval is clamped to this range, so a hostile value can
#: neither flood the server nor switch the dead-connection check off.
MIN_PING_INTERVAL = 5
MAX_PING_INTERVAL = 600

#: Why a session ended, besides the server's C{OUT} codes.
REASON_LOGOUT = "logout"
REASON_CONNECTION_LOST = "connection lost"
REASON_SIGNED_OUT_ELSEWHERE = "signed out from another place"

#: The C{UBN} type and payloads that ask this endpoint to sign out (5.4).
_UBN_SIGN_OUT = {"4": b"goawyplzthxbye", "8": b"gtfo"}

#: The C{NOT} site id of address-book change notifications (3.11).
_ABCH_SITE_ID = "45705"

_NETWORK_PREFIX = re.compile(r"^(\d+):(.+)$")


# -- the session's state ------------------------------------------------------------


@dataclass
class SessionState:
    """
    What the NS connection knows about the signed-in account and its
    contacts. L{msnp.client.Session} exposes it; the protocol keeps it
    current. Nothing here changes on a request alone, only on the server's
    confirmation or notification.

    @ivar places: this account's signed-in endpoints (MPOP), ours included,
        keyed by normalised GUID.
    @ivar hotmailProfile: the headers of the C{text/x-msmsgsprofile} message.
    @ivar verified: the C{verified} flag of C{USR OK} (C{False}: the
        server refuses display-name changes).
    """

    account: str
    machineGuid: str
    contacts: ContactList = field(default_factory=ContactList)
    profile: Optional[Profile] = None
    status: Status = Status.OFFLINE
    displayName: str = ""
    personalMessage: str = ""
    currentMedia: str = ""
    places: dict[str, Endpoint] = field(default_factory=dict)
    hotmailProfile: dict[str, str] = field(default_factory=dict)
    verified: bool = True


@dataclass(frozen=True)
class LoginAccepted:
    """
    C{USR trid OK <account> <verified> 0}.
    """

    account: str
    verified: bool


# -- parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountReference:
    """
    An address as the NS writes it in presence commands.

    @ivar endpoint: the C{;{guid}} suffix, normalised, if there was one.
    @ivar via: the C{;via=} suffix (circle membership), if any.
    """

    email: str
    network: int = NETWORK_PASSPORT
    endpoint: Optional[str] = None
    via: Optional[str] = None


_GUID_SUFFIX = re.compile(r"^[0-9A-Fa-f-]{36}$")


def _splitNetwork(address: str) -> Optional[tuple[int, str]]:
    """
    The network id and address of C{7:bob@example.com}, or L{None} when
    there is no numeric prefix: what C{_NETWORK_PREFIX} matches, with
    string methods (presence lines are the bulk of NS traffic).
    """
    head, sep, tail = address.partition(":")
    if not (sep and tail and head.isdecimal()):
        return None
    if "\n" in tail:
        # Not in a real token; let the pattern decide the odd case.
        match = _NETWORK_PREFIX.match(address)
        return (int(match.group(1)), match.group(2)) if match else None
    return int(head), tail


def parseAccount(token: str, network: Optional[str] = None) -> AccountReference:
    """
    Read C{1:bob@example.com}, C{bob@example.com} (with the network id in a
    separate token, MSNP17 and older), with optional C{;via=...} and
    C{;{guid}} suffixes, which are split off.

    @raise ProtocolError: no address at all, or a non-numeric network.
    """
    endpoint: Optional[str] = None
    via: Optional[str] = None
    if ";" in token:
        address, *suffixes = token.split(";")
        for suffix in suffixes:
            if suffix.startswith("via="):
                via = suffix[4:]
            elif suffix.startswith("{") or _GUID_SUFFIX.match(suffix):
                try:
                    endpoint = normalizeGuid(suffix)
                except ValueError:
                    pass
    else:
        address = token
    networkId = NETWORK_PASSPORT
    prefixed = _splitNetwork(address)
    if prefixed is not None:
        networkId, address = prefixed
    elif network is not None:
        if not (network.isascii() and network.isdigit()):
            raise ProtocolError(f"network id {network!r} is not a number")
        networkId = int(network)
    address = address.strip()
    digits = address[:-1] if address.endswith(":") else address
    if not digits or digits.isdecimal():
        # Nothing but a network prefix ("1:", "", "12").
        raise ProtocolError(f"no address in {token!r}")
    return AccountReference(normalizeEmail(address), networkId, endpoint, via)


def _hasNetworkPrefix(token: str) -> bool:
    return _splitNetwork(token.partition(";")[0]) is not None


def _accountAt(args: tuple[str, ...], index: int) -> tuple[AccountReference, int]:
    """
    The account written at C{args[index]}, and the index of the argument
    after it. MSNP18 writes C{1:bob@example.com} in one token; MSNP15-17
    write C{bob@example.com 1}, so a bare numeric next token is the
    network id. C{NLN}, C{FLN} and C{UBX} all need this one rule.

    @raise ProtocolError: see L{parseAccount}.
    """
    token = args[index]
    after = index + 1
    if after < len(args) and args[after].isdigit() and not _hasNetworkPrefix(token):
        return parseAccount(token, args[after]), after + 1
    return parseAccount(token), after


@dataclass(frozen=True)
class PresenceUpdate:
    """
    An C{NLN} or C{ILN}: a contact is (still) signed in with this status.

    @ivar displayName: already percent-decoded.
    @ivar msnObject: the decoded MSN object, or L{None} for C{0}.
    """

    account: AccountReference
    status: Status
    displayName: str
    capabilities: str = "0:0"
    msnObject: Optional[str] = None


def parsePresence(command: Command) -> PresenceUpdate:
    """
    Read C{NLN STATUS 1:acct name caps msnobj [icon]} (MSNP18), or
    C{NLN STATUS acct netId name caps msnobj} (MSNP15-17); C{ILN} is the
    same after its TrID.

    @raise ProtocolError: too short, or an unknown status code.
    """
    args = command.arguments
    if len(args) < 2:
        raise ProtocolError(f"{command.name} too short: {command.describe()}")
    try:
        status = Status.fromCode(args[0])
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    account, after = _accountAt(args, 1)
    rest = args[after:]
    name = decodeParameter(rest[0]) if len(rest) > 0 else account.email
    caps = rest[1] if len(rest) > 1 else "0:0"
    rawObject = rest[2] if len(rest) > 2 else "0"
    msnObject = decodeParameter(rawObject) if rawObject not in ("", "0") else None
    return PresenceUpdate(account, status, name, caps, msnObject)


def parseOffline(command: Command) -> AccountReference:
    """
    Read C{FLN 1:acct [caps]} (MSNP18) or C{FLN acct netId [caps]}.

    @raise ProtocolError: no address.
    """
    args = command.arguments
    if not args:
        raise ProtocolError("FLN without an address")
    return _accountAt(args, 0)[0]


@dataclass(frozen=True)
class UserData:
    """
    A C{UBX}: what a contact (or we, from another place) published.

    @ivar endpoints: the C{EndpointData} and C{PrivateEndpointData} merged
        per GUID, or L{None} when the payload was empty (nothing known).
    @ivar private: whether any C{PrivateEndpointData} was present (only
        our own account's UBX has them).
    """

    account: AccountReference
    personalMessage: str = ""
    currentMedia: str = ""
    endpoints: Optional[dict[str, Endpoint]] = None
    private: bool = False


def parseUserData(command: Command) -> UserData:
    """
    Read C{UBX 1:acct len} (MSNP18) or C{UBX acct netId len} plus its XML.

    Unknown elements are ignored; an empty payload means "nothing
    published" (the PSM is cleared).

    @raise ProtocolError: no address.
    @raise ServiceError: the payload is not usable XML (L{parseXML}).
    """
    args = command.arguments
    if not args:
        raise ProtocolError("UBX without an address")
    account = _accountAt(args, 0)[0]
    payload = command.payload or b""
    if not payload.strip():
        return UserData(account)
    root = parseXML(payload)
    if localName(root.tag) != "Data":
        raise ProtocolError(f"UBX payload root is <{localName(root.tag)}>, not <Data>")
    # One pass over the children instead of one scan per field: a UBX
    # arrives for every contact at sign-in and on every PSM change.
    byName = childrenByName(root)
    endpoints: dict[str, Endpoint] = {}
    for element in byName.get("EndpointData", ()):
        guid = _guidOf(element.get("id"))
        if guid is None:
            continue
        endpoint = endpoints.setdefault(guid, Endpoint(guid))
        endpoint.capabilities = textOf(element, "Capabilities").strip()
    privates = byName.get("PrivateEndpointData", ())
    for element in privates:
        guid = _guidOf(element.get("id"))
        if guid is None:
            continue
        endpoint = endpoints.setdefault(guid, Endpoint(guid))
        endpoint.name = textOf(element, "EpName")
        endpoint.idle = textOf(element, "Idle").strip().lower() == "true"
        endpoint.clientType = textOf(element, "ClientType").strip()
        endpoint.state = textOf(element, "State").strip()
    psm, media = byName.get("PSM"), byName.get("CurrentMedia")
    return UserData(
        account,
        personalMessage=textOf(psm[0] if psm else None),
        currentMedia=textOf(media[0] if media else None),
        endpoints=endpoints,
        private=bool(privates),
    )


def _guidOf(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    try:
        return normalizeGuid(value)
    except ValueError:
        return None


def parseMimeHeaders(payload: bytes) -> dict[str, str]:
    """
    The header fields of a MIME payload (C{MSG Hotmail Hotmail}), in a
    dict; lines without a colon are skipped, folded lines are joined.
    """
    text = payload.decode("utf-8", errors="replace").replace("\r\n", "\n")
    head = text.split("\n\n", 1)[0]
    headers: dict[str, str] = {}
    last: Optional[str] = None
    for line in head.split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            continue
        last = name.strip()
        headers[last] = value.strip()
    return headers


def parseInvitation(command: Command) -> Invitation:
    """
    Read C{RNG sessionId host:port CKI authToken inviter inviterName ...}.

    @raise ProtocolError: fields are missing.
    """
    args = command.arguments
    if len(args) < 5:
        raise ProtocolError(f"RNG too short: {command.describe()}")
    inviter = parseAccount(args[4]).email
    name = decodeParameter(args[5]) if len(args) > 5 else inviter
    return Invitation(
        sessionId=args[0], address=args[1], authToken=args[3], inviter=inviter, inviterName=name
    )


def parseSwitchboardTicket(command: Command) -> SwitchboardTicket:
    """
    Read C{XFR trid SB host:port CKI authToken [U messenger.msn.com 1]}.

    @raise ProtocolError: not a switchboard transfer, or fields missing.
    """
    args = command.arguments
    if len(args) < 4 or args[0] != "SB":
        raise ProtocolError(f"expected XFR SB, got {command.describe()}")
    return SwitchboardTicket(address=args[1], authToken=args[3])


def personalDataPayload(
    personalMessage: str, currentMedia: str, machineGuid: str
) -> bytes:
    """
    The C{UUX} C{<Data>} document exactly as WLM 2009 writes it (reference
    section 4.5), braces of the GUID as character references.
    """
    inner = normalizeGuid(machineGuid)[1:-1]
    return (
        f"<Data><PSM>{escapeText(personalMessage)}</PSM>"
        f"<CurrentMedia>{escapeText(currentMedia)}</CurrentMedia>"
        f"<MachineGuid>&#x7B;{escapeText(inner)}&#x7D;</MachineGuid>"
        "<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene>"
        "<ColorScheme>-3</ColorScheme></Data>"
    ).encode("utf-8")


def privateEndpointPayload(placeName: str, status: Status, idle: bool = False) -> bytes:
    """
    The C{UUX} C{<PrivateEndpointData>} document (MPOP place name and state).
    """
    return (
        f"<PrivateEndpointData><EpName>{escapeText(placeName)}</EpName>"
        f"<Idle>{'true' if idle else 'false'}</Idle><ClientType>1</ClientType>"
        f"<State>{status.code}</State></PrivateEndpointData>"
    ).encode("utf-8")


# -- the protocol --------------------------------------------------------------------


class NotificationProtocol(DispatchProtocol):
    """
    The NS connection of one session.

    @ivar state: the session's state, kept current from the server.
    @ivar observer: the user's L{msnp.interfaces.IMessengerObserver}.
    @ivar session: the object handed to session-level observer events
        (the L{msnp.client.Session}); set by the client.
    @ivar roster: receives server-initiated list changes
        (C{serverListChanged}); set by the client.
    @ivar conversationManager: receives invitations (C{invited}); set by
        the client.
    @ivar onEnded: called once with the reason when the connection closes.
    @ivar endReason: why the connection is closing, once known.
    """

    def __init__(
        self,
        account: str,
        identity: ClientIdentity,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT,
        trace: bool = False,
        observer: Optional[object] = None,
    ) -> None:
        DispatchProtocol.__init__(self, account, identity, clock, requestTimeout, trace)
        self.state = SessionState(normalizeEmail(account), normalizeGuid(identity.machineGuid))
        self.observer = observer
        self.session: Any = None
        self.roster: Any = None
        self.conversationManager: Any = None
        self.onEnded: Optional[Callable[[Optional[str]], None]] = None
        self.endReason: Optional[str] = None
        self._endReasonKnown = False
        self.pingInterval = DEFAULT_PING_INTERVAL
        self._pingTimer: Optional[IDelayedCall] = None
        self._deadTimer: Optional[IDelayedCall] = None
        self._keepingAlive = False

    # -- ending ------------------------------------------------------------------------

    def markEnding(self, reason: Optional[str]) -> None:
        """
        Record why the session is ending (the first reason wins).
        """
        if not self._endReasonKnown:
            self._endReasonKnown = True
            self.endReason = reason

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stopKeepAlive()
        self.markEnding(REASON_CONNECTION_LOST)
        DispatchProtocol.connectionLost(self, reason)
        onEnded, self.onEnded = self.onEnded, None
        if onEnded is not None:
            try:
                onEnded(self.endReason)
            except Exception:
                log.failure("Error while ending the session of {account}", account=self.account)

    # -- login ---------------------------------------------------------------------------

    def authenticate(self, ticket: str, response: str) -> "Deferred[LoginAccepted | NSRedirect]":
        """
        C{USR trid SSO S <ticket> <response> <machineGuid>}.

        @return: a L{Deferred} firing with L{LoginAccepted}, or with an
            L{NSRedirect} when this server sends us elsewhere; failing with
            L{AuthenticationError} on C{911} (and the other refusal codes).
        """
        d = self.sendCommand(
            "USR", "SSO", "S", ticket, response, self.state.machineGuid, expect=("USR", "XFR")
        )
        return d.addCallbacks(self._authenticated, self._authenticationFailed)

    def _authenticated(self, reply: Command) -> "LoginAccepted | NSRedirect":
        if reply.name == "XFR":
            redirect = parseTransfer(reply)
            if redirect is None:
                raise ProtocolError("XFR NS 0 in reply to USR SSO S")
            return redirect
        if reply.arg(0) != "OK":
            raise ProtocolError(f"expected USR OK, got {reply.describe()}")
        verified = reply.arg(2, "1") != "0"
        self.state.verified = verified
        return LoginAccepted(account=reply.arg(1, self.account), verified=verified)

    def _authenticationFailed(self, failure: Failure) -> Failure:
        error = failure.check(ServerError) and failure.value
        if isinstance(error, ServerError) and error.code in (911, 917, 923, 924, 927, 928):
            return Failure(AuthenticationError(f"the server refused the sign-in: {error}"))
        return failure

    # -- requests -------------------------------------------------------------------------

    def sendListCommand(self, name: str, payload: bytes) -> "Deferred[Command]":
        """
        Send C{ADL} or C{RML} with an C{<ml>} payload; fire with the
        C{OK} reply, fail with L{ServerError} (the error may echo the payload).
        """
        if name not in ("ADL", "RML"):
            raise ValueError(f"not a list command: {name!r}")
        return self.sendCommand(name, payload=payload)

    def setPrivacy(self, blp: str) -> "Deferred[Command]":
        """
        C{BLP trid AL|BL}.
        """
        if blp not in ("AL", "BL"):
            raise ValueError(f"BLP is AL or BL, not {blp!r}")
        return self.sendCommand("BLP", blp)

    def changeStatus(self, status: Status, msnObject: Optional[str] = None) -> "Deferred[Status]":
        """
        C{CHG trid STATUS caps msnobj}; C{SessionState.status} changes on
        the server's echo.

        @raise ValueError: C{status} is C{Status.OFFLINE} (use C{OUT}).
        """
        if status is Status.OFFLINE:
            raise ValueError("the client cannot set FLN; log out instead")
        encoded = encodeParameter(msnObject) if msnObject else "0"
        d = self.sendCommand("CHG", status.code, self.identity.capabilities, encoded)

        def confirmed(reply: Command) -> Status:
            try:
                echoed = Status.fromCode(reply.arg(0, status.code))
            except ValueError:
                echoed = status
            self.state.status = echoed
            return echoed

        return d.addCallback(confirmed)

    def setDisplayName(self, name: str) -> "Deferred[str]":
        """
        C{PRP trid MFN <encoded name>}; L{SessionState.displayName} changes
        on the echo.
        """
        d = self.sendCommand("PRP", "MFN", encodeParameter(name))

        def confirmed(reply: Command) -> str:
            echoed = decodeParameter(reply.arg(1)) if reply.arg(0) == "MFN" and len(reply.arguments) > 1 else name
            self.state.displayName = echoed
            return echoed

        return d.addCallback(confirmed)

    def publishPersonalData(self, personalMessage: str, currentMedia: str) -> "Deferred[None]":
        """
        C{UUX} C{<Data>}; the PSM and current media change on C{UUX trid 0}.
        """
        payload = personalDataPayload(personalMessage, currentMedia, self.state.machineGuid)
        d = self.sendCommand("UUX", payload=payload)

        def confirmed(reply: Command) -> None:
            self.state.personalMessage = personalMessage
            self.state.currentMedia = currentMedia

        return d.addCallback(confirmed)

    def publishEndpoint(self, status: Status, idle: bool = False) -> "Deferred[Command]":
        """
        C{UUX} C{<PrivateEndpointData>}: this place's name and state (MPOP).
        """
        return self.sendCommand(
            "UUX", payload=privateEndpointPayload(self.identity.placeName, status, idle)
        )

    def requestSwitchboard(self) -> "Deferred[SwitchboardTicket]":
        """
        C{XFR trid SB}: a switchboard to start a conversation on.

        @return: a L{Deferred} firing with a L{SwitchboardTicket}, failing
            with L{ServerError} (C{913} while hidden or before the first
            C{CHG}), L{ProtocolError}, L{msnp.errors.RequestTimeout} or
            L{msnp.errors.ConnectionLost}.
        """
        d = self.sendCommand("XFR", "SB", expect=("XFR",))
        return d.addCallback(parseSwitchboardTicket)

    def signOut(self) -> "Deferred[None]":
        """
        C{OUT}, then close; fire when the connection is gone.
        """
        self.markEnding(REASON_LOGOUT)
        if self.transport is not None and self.lostReason is None:
            self.sendNoReply("OUT", withTrid=False)
        return self.close()

    # -- keep-alive ------------------------------------------------------------------------

    def startKeepAlive(self) -> None:
        """
        Send the first C{PNG} now and keep pinging at the C{QNG} interval.
        """
        if self._keepingAlive:
            return
        self._keepingAlive = True
        self._ping()

    def stopKeepAlive(self) -> None:
        """
        Stop pinging and the dead-connection check, so that no timer is
        left behind on the clock once the connection is closing.
        """
        self._keepingAlive = False
        for timer in (self._pingTimer, self._deadTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._pingTimer = self._deadTimer = None

    def _ping(self) -> None:
        self._pingTimer = None
        if not self._keepingAlive or self.lostReason is not None:
            return
        self.sendNoReply("PNG", withTrid=False)
        if self._deadTimer is None or not self._deadTimer.active():
            self._deadTimer = self.clock.callLater(2 * self.pingInterval, self._noPong)

    def _noPong(self) -> None:
        self._deadTimer = None
        log.warn(
            "No QNG from the server within {seconds}s; dropping the connection of {account}",
            seconds=2 * self.pingInterval,
            account=self.account,
        )
        self.markEnding(REASON_CONNECTION_LOST)
        self.stopKeepAlive()
        if self.transport is not None:
            abortTransport(self.transport)

    def handle_QNG(self, command: Command) -> None:
        """
        C{QNG n}: the server is alive and wants the next C{PNG} in C{n} seconds.
        """
        text = command.arg(0)
        if text.isascii() and text.isdigit():
            self.pingInterval = min(max(int(text), MIN_PING_INTERVAL), MAX_PING_INTERVAL)
        if self._deadTimer is not None and self._deadTimer.active():
            self._deadTimer.cancel()
        self._deadTimer = None
        if self._keepingAlive:
            if self._pingTimer is not None and self._pingTimer.active():
                self._pingTimer.cancel()
            self._pingTimer = self.clock.callLater(self.pingInterval, self._ping)

    # -- challenge --------------------------------------------------------------------------

    def handle_CHL(self, command: Command) -> None:
        """
        C{CHL 0 <digits>}: answer with C{QRY trid <productId> 32} at once.
        """
        challenge = command.arg(0)
        try:
            answer = computeChallengeResponse(
                challenge, self.identity.productId, self.identity.productKey
            )
        except ValueError as e:
            log.warn("Ignoring unusable challenge: {error}", error=str(e))
            return
        d = self.sendCommand("QRY", self.identity.productId, payload=answer.encode("ascii"))
        d.addErrback(
            lambda f: log.warn("Challenge answer failed: {error}", error=f.getErrorMessage())
        )

    # -- the end of the session ---------------------------------------------------------------

    def handle_OUT(self, command: Command) -> None:
        """
        C{OUT [reason]}: the server ends the session (C{OTH}: signed in
        elsewhere; C{SSD}: shutting down).
        """
        reason = command.arg(0) or None
        log.info("Server signed {account} out ({reason})", account=self.account, reason=reason or "no reason")
        self.markEnding(reason)
        self.failAllPending(SignedOut(reason))
        self.close()

    def handle_UBN(self, command: Command) -> None:
        """
        C{UBN sender[;{epid}] type len}: a notification from another user or
        place; type 4 C{goawyplzthxbye} / 8 C{gtfo} from our own account
        signs this place out (without reconnecting).
        """
        try:
            sender = parseAccount(command.arg(0))
        except ProtocolError as e:
            log.info("Ignoring UBN: {error}", error=str(e))
            return
        kind = command.arg(1)
        expected = _UBN_SIGN_OUT.get(kind)
        if (
            expected is not None
            and self._isSelf(sender)
            and (command.payload or b"").startswith(expected)
        ):
            log.info("Another place signed {account} out", account=self.account)
            self.markEnding(REASON_SIGNED_OUT_ELSEWHERE)
            self.close()
            return
        log.debug("Ignoring UBN type {kind} from {sender}", kind=kind, sender=sender.email)

    # -- presence -------------------------------------------------------------------------------

    def _isSelf(self, account: AccountReference) -> bool:
        return account.email == self.state.account

    def handle_NLN(self, command: Command) -> None:
        """
        A contact (or another place of ours) is online with a status.
        """
        try:
            update = parsePresence(command)
        except ProtocolError as e:
            log.info("Ignoring malformed {name}: {error}", name=command.name, error=str(e))
            return
        self.applyPresence(update)

    handle_ILN = handle_NLN

    def applyPresence(self, update: PresenceUpdate) -> None:
        """
        Record a parsed C{NLN}/C{ILN} and tell the observer what changed.
        Presence of an address that is not on the list is dropped (the
        session has nowhere to keep it), which is why
        L{msnp.roster.RosterManager} holds an address being added.
        """
        if self._isSelf(update.account):
            # Another place changed the account's status (MPOP).
            self.state.status = update.status
            self.state.displayName = update.displayName
            return
        contact = self.state.contacts.get(update.account.email)
        if contact is None:
            log.debug("Presence of {email}, who is not a contact", email=update.account.email)
            return
        oldStatus, oldName = contact.status, contact.displayName
        contact.status = update.status
        contact.displayName = update.displayName
        contact.capabilities = update.capabilities
        contact.msnObject = update.msnObject
        if update.account.endpoint is not None and update.account.endpoint not in contact.endpoints:
            contact.addEndpoint(Endpoint(update.account.endpoint, update.capabilities))
        if oldStatus is not contact.status:
            notifyObserver(self.observer, "contactStatusChanged", contact, contact.status)
        if oldName != contact.displayName:
            notifyObserver(self.observer, "contactNameChanged", contact, contact.displayName)

    def handle_FLN(self, command: Command) -> None:
        """
        A contact signed out (or went hidden). With C{;{epid}} only that
        place left; the contact stays online while another remains.
        """
        try:
            account = parseOffline(command)
        except ProtocolError as e:
            log.info("Ignoring malformed FLN: {error}", error=str(e))
            return
        if self._isSelf(account):
            if account.endpoint is not None and account.endpoint in self.state.places:
                del self.state.places[account.endpoint]
                notifyObserver(self.observer, "endpointsChanged", self.session, dict(self.state.places))
            return
        contact = self.state.contacts.get(account.email)
        if contact is None:
            return
        if account.endpoint is not None:
            contact.removeEndpoint(account.endpoint)
            if contact.endpoints:
                return
        contact.endpoints.clear()
        if contact.status is not Status.OFFLINE:
            contact.status = Status.OFFLINE
            notifyObserver(self.observer, "contactStatusChanged", contact, Status.OFFLINE)

    def handle_UBX(self, command: Command) -> None:
        """
        A contact's (or our own account's) personal data and endpoints.
        A malformed payload is logged and ignored.
        """
        try:
            data = parseUserData(command)
        except (ProtocolError, ServiceError) as e:
            log.info("Ignoring malformed UBX: {error}", error=str(e))
            return
        self.applyUserData(data)

    def applyUserData(self, data: UserData) -> None:
        """
        Record a parsed C{UBX}: our own (another place changed the PSM or
        the places) or a contact's; like presence, dropped for an address
        that is not on the list.
        """
        if self._isSelf(data.account):
            self.state.personalMessage = data.personalMessage
            self.state.currentMedia = data.currentMedia
            if data.endpoints is not None and data.endpoints != self.state.places:
                self.state.places = dict(data.endpoints)
                notifyObserver(self.observer, "endpointsChanged", self.session, dict(self.state.places))
            return
        contact = self.state.contacts.get(data.account.email)
        if contact is None:
            return
        changed = (contact.personalMessage, contact.currentMedia) != (
            data.personalMessage,
            data.currentMedia,
        )
        contact.personalMessage = data.personalMessage
        contact.currentMedia = data.currentMedia
        if data.endpoints is not None:
            contact.endpoints = dict(data.endpoints)
        if changed:
            notifyObserver(self.observer, "contactPersonalMessageChanged", contact, contact.personalMessage)

    # -- account messages and notifications ------------------------------------------------------

    def handle_MSG(self, command: Command) -> None:
        """
        C{MSG Hotmail Hotmail len}: the account profile, mail data, or a
        system message, told apart by C{Content-Type}.
        """
        headers = parseMimeHeaders(command.payload or b"")
        contentType = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if contentType == "text/x-msmsgsprofile":
            self.state.hotmailProfile = headers
            notifyObserver(self.observer, "profileReceived", self.session, dict(headers))
        elif contentType == "application/x-msmsgssystemmessage":
            log.info("System message for {account}: {headers}", account=self.account, headers=headers)
        else:
            log.debug("Ignoring NS message of type {type}", type=contentType or "(none)")

    def handle_NOT(self, command: Command) -> None:
        """
        C{NOT len}: an address-book change elsewhere (refresh through the
        roster) or an alert (logged).
        """
        try:
            root = parseXML(command.payload or b"")
        except ServiceError as e:
            log.info("Ignoring malformed NOT: {error}", error=str(e))
            return
        if root.get("siteid") == _ABCH_SITE_ID and "ABCHInternal" in "".join(root.itertext()):
            refresh = getattr(self.roster, "addressBookChanged", None)
            if refresh is not None:
                d = refresh()
                if isinstance(d, Deferred):
                    d.addErrback(lambda f: log.info("Address book refresh failed: {e}", e=f.getErrorMessage()))
            return
        log.debug("Ignoring NOT notification (site {site})", site=root.get("siteid"))

    def handle_ADL(self, command: Command) -> None:
        """
        C{ADL 0 len}: someone added us, or another place changed the list.
        """
        self._serverListChanged(command, added=True)

    def handle_RML(self, command: Command) -> None:
        """
        C{RML 0 len}: someone removed us, or another place changed the list.
        """
        self._serverListChanged(command, added=False)

    def _serverListChanged(self, command: Command, added: bool) -> None:
        if command.payload is None:
            log.debug("Ignoring stray {reply}", reply=command.describe())
            return
        try:
            entries = parseListPayload(command.payload)
        except (ProtocolError, ServiceError) as e:
            log.info("Ignoring malformed {name}: {error}", name=command.name, error=str(e))
            return
        if self.roster is None:
            log.info("{name} from the server with no roster to apply it", name=command.name)
            return
        d = self.roster.serverListChanged(entries, added)
        if isinstance(d, Deferred):
            d.addErrback(lambda f: log.info("Applying a server list change failed: {e}", e=f.getErrorMessage()))

    def handle_RNG(self, command: Command) -> None:
        """
        C{RNG ...}: someone invites us to a switchboard conversation.
        """
        try:
            invitation = parseInvitation(command)
        except ProtocolError as e:
            log.info("Ignoring malformed RNG: {error}", error=str(e))
            return
        if self.conversationManager is None:
            log.info("Invitation from {inviter} ignored: no conversation manager", inviter=invitation.inviter)
            return
        self.conversationManager.invited(invitation)

    def handle_XFR(self, command: Command) -> None:
        """
        An unsolicited C{XFR 0 NS ...} (move to another NS): not followed;
        the session continues until this server closes it.
        """
        log.info("Ignoring unsolicited {line}", line=command.describe())

    def handle_PRP(self, command: Command) -> None:
        """
        A C{PRP} about our own data from another place.
        """
        if command.arg(0) == "MFN" and len(command.arguments) > 1:
            self.state.displayName = decodeParameter(command.arg(1))

    def handle_BLP(self, command: Command) -> None:
        """
        Our privacy setting, changed from another place.
        """
        if self.state.profile is not None and command.arg(0) in ("AL", "BL"):
            self.state.profile.blp = command.arg(0)

    def handle_CHG(self, command: Command) -> None:
        """
        A late C{CHG} echo (its request timed out): adopt the status.
        """
        try:
            self.state.status = Status.fromCode(command.arg(0))
        except ValueError:
            pass

    def handle_UUX(self, command: Command) -> None:
        """
        A late C{UUX} reply: nothing to do.
        """

    def handle_QRY(self, command: Command) -> None:
        """
        A late C{QRY} reply: nothing to do.
        """

