# -*- test-case-name: test.test_server_notification -*-
"""
The local network's notification server (NS): one client connection.

L{NotificationServer} checks the login as strictly as the independent
MSNP18 server of reference section 10.3 (ticket and MBI response verified,
machine GUID required, C{911} and a disconnect on any mismatch, C{540} on a
wrong C{QRY}) and answers the session commands. Who sees whom is decided
by the shared L{msnp.server.presence.Presence}; the documents a login sends
are built in L{msnp.server.nspayloads}; the list, circle and relay
(C{UUN}, C{UUM}) commands are mixed in from L{msnp.server.nslists},
L{msnp.server.nscircles} and L{msnp.server.nsrelay}; the switchboard is
reached through the typed L{msnp.server.router.INetworkRouter}, never the
network object itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from msnp.challenge import WLM2009_PRODUCT_ID, WLM2009_PRODUCT_KEY, computeChallengeResponse
from msnp.server.accountmodel import Account, normalizeEmail
from msnp.server.tickets import TicketGrant
from msnp.server.dispatch import LoginPreamble
from msnp.mbi import verifyMBIResponse
from msnp.server.limits import DEFAULT_LIMITS, ServerLimits
from msnp.server.nscircles import CircleCommands
from msnp.server.nsurl import urlReply
from msnp.server.offline import OfflineMessageService
from msnp.server.nslists import ListCommands
from msnp.server.nsrelay import RelayCommands
from msnp.server.nspayloads import (
    ABCH_SITE_ID as ABCH_SITE_ID,
    MAIL_DATA as MAIL_DATA,
    POLICY as POLICY,
    addressBookChangedPayload as addressBookChangedPayload,
    newChallenge as newChallenge,
    newNonce as newNonce,
    notificationPid as notificationPid,
    profileMessage as profileMessage,
    splitMemberId as splitMemberId,
)
from msnp.server.presence import (
    HIDDEN as HIDDEN,
    PersonalData as PersonalData,
    Presence as Presence,
    PresenceState as PresenceState,
    PrivateEndpoint as PrivateEndpoint,
    guidKey as guidKey,
    isGuid as isGuid,
)
from msnp.wire import Command, decodeParameter, encodeParameter
from msnp.xmlsafe import XMLError, escapeText, localName, parseXML, textOf

if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.interfaces import IAddress

    from msnp.server.router import INetworkRouter


#: Product id/key pairs whose C{QRY} answers are accepted: WLM 2009
#: (MSNP18) and WLM 8.5, which pidgin uses even with MSNP18 (reference 4.12).
WLM85_PRODUCT_ID = "PROD0119GSJUC$18"
WLM85_PRODUCT_KEY = "ILTXC!4IXB5FB*PX"
PRODUCT_KEYS = {WLM2009_PRODUCT_ID: WLM2009_PRODUCT_KEY, WLM85_PRODUCT_ID: WLM85_PRODUCT_KEY}


#: Statuses a client may set with C{CHG} (reference 4.1); C{FLN} is not one.
SETTABLE_STATUSES = frozenset({"NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN", "HDN"})

#: Display names longer than this, URL-encoded, are refused (pidgin's limit).
MAX_ENCODED_NAME = 387

_CAPS = re.compile(r"^\d{1,10}(:\d{1,10})?$")


class NotificationServer(CircleCommands, RelayCommands):
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
    @ivar mailLoginURL: the login form C{URL} answers name (L{urlReply}).
    """

    mailLoginURL = ""

    def __init__(
        self,
        network: Optional["INetworkRouter"],
        presence: Presence,
        sendChallenge: bool = True,
        pingInterval: int = 50,
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        timerClock: Optional[IReactorTime] = None,
        offline: Optional[OfflineMessageService] = None,
    ) -> None:
        """
        @param network: the network's router (for C{XFR SB}); L{None} for a
            connection on its own, which then answers C{XFR SB} with C{500}.
        @param presence: the shared session registry.
        @param offline: the offline messages (C{UUM}, the mail data);
            L{None}: C{UUM} is dropped and the mail data is always empty.
        """
        super().__init__(clock=clock, limits=limits, timerClock=timerClock)
        self.network = network
        self.offline = offline
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
            self.circlesSignedOff()
            self.presence.signOff(self)
            if self.account is not None and self.network is not None:
                self.network.placeSignedOut(self.account, self.machineGuid)
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
                self.logIgnored("Ignoring a command before login", command)
            return
        super().commandReceived(command)

    def unknownCommand(self, command: Command) -> None:
        self.logIgnored("Ignoring an unknown NS command", command)

    def errorReceived(self, command: Command) -> None:
        self.logIgnored("Ignoring a numeric command from a client", command)

    # -- login ------------------------------------------------------------------

    def handle_USR(self, command: Command) -> None:
        args = command.arguments
        if self.signedIn:
            if args[:2] == ("SHA", "A"):
                # Circle authentication (supplement Q.4.3).
                self.circleAuthenticate(command)
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
        fresh = grant is not None and self.presence.consumeTicket(ticket, grant.expires, self.clock.seconds())
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
        self.signedInNow()
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
        # The mail data follows the first CHG (reference 2.9, Q.1.4).
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

    def handle_URL(self, command: Command) -> None:
        # Reference 4.15: every request gets its links (msnp.server.nsurl).
        self.sendRaw(Command("URL", command.trid, urlReply(command.arguments, self.mailLoginURL)))

    def handle_BLP(self, command: Command) -> None:
        value = command.arg(0)
        if value not in ("AL", "BL"):
            self.error(201, command.trid)
            return
        assert self.user is not None
        self.user.blp = value
        self.reply("BLP", command.trid, value)
        self.presence.refreshSubject(self.user.email)
        if self.network is not None:
            self.network.privacyChanged(self.user.email)

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
        if first:
            # The mail data (waiting offline messages) follows the first
            # CHG, as on Escargot (reference 2.9, Q.1.4).
            mailData = self.offline.initialMailData(self.account) if self.offline is not None else MAIL_DATA
            self.sendRaw(Command("MSG", None, ("Hotmail", "Hotmail"), mailData))

    def handle_XFR(self, command: Command) -> None:
        if command.arg(0) != "SB":
            self.error(201, command.trid)
            return
        if self.status is None:
            self.error(913, command.trid)
            return
        assert self.account is not None
        referral = self.network.referSwitchboard(self.account, self.machineGuid or "") if self.network else None
        if referral is None:
            self.error(500, command.trid)
            return
        self.reply("XFR", command.trid, "SB", referral.address, "CKI", referral.token, "U", "messenger.msn.com", "1")


class NotificationServerFactory(Factory):
    """
    Builds L{NotificationServer}s sharing one L{Presence}.
    """

    def __init__(
        self,
        network: Optional["INetworkRouter"],
        presence: Presence,
        sendChallenge: bool = True,
        pingInterval: int = 50,
        clock: Optional[IReactorTime] = None,
        limits: ServerLimits = DEFAULT_LIMITS,
        timerClock: Optional[IReactorTime] = None,
        offline: Optional[OfflineMessageService] = None,
    ) -> None:
        self.network = network
        self.offline = offline
        self.presence = presence
        self.sendChallenge = sendChallenge
        self.pingInterval = pingInterval
        self.clock = clock
        self.limits = limits
        self.timerClock = timerClock
        #: The login form C{URL} answers point at (set once HTTP listens).
        self.mailLoginURL = ""

    def buildProtocol(self, addr: Optional["IAddress"]) -> NotificationServer:
        protocol = NotificationServer(
            self.network, self.presence, self.sendChallenge, self.pingInterval, self.clock, self.limits,
            self.timerClock, self.offline,
        )
        protocol.factory = self
        protocol.mailLoginURL = self.mailLoginURL
        return protocol

