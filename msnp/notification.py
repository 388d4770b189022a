# -*- test-case-name: test.test_notification -*-
"""
The client side of the notification server (NS) connection.

L{NotificationProtocol} continues the L{PreambleProtocol} conversation on
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
The presence handlers live in L{msnp.nspresence} and those of the account
messages (C{MSG}, C{UBM}, C{NOT}) in L{msnp.nsnotices}, mixed into
L{NotificationProtocol}.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from zope.interface import Interface
from twisted.python.failure import Failure

from msnp.challenge import computeChallengeResponse
from msnp.contacts import Status, normalizeEmail, normalizeGuid
from msnp.preamble import NSRedirect, PreambleProtocol, parseTransfer
from msnp.endpoints import ClientIdentity
from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits, RefusalSummary
from msnp.errors import (
    AuthenticationError,
    ProtocolError,
    ServerError,
    ServiceError,
    SignedOut,
)
from msnp.interfaces import notifyObserver
from msnp.listpayload import ListEntry, parseListPayload
from msnp.nsmessages import (
    Invitation,
    LoginAccepted,
    SessionState,
    SwitchboardTicket,
    parseInvitation,
    parseSwitchboardTicket,
    personalDataPayload,
    privateEndpointPayload,
)
from msnp.nsnotices import AccountNotices
from msnp.nspresence import PresenceHandlers
from msnp.protocol import DEFAULT_REQUEST_TIMEOUT, abortTransport
from msnp.ubxscan import UserDataTails
from msnp.uum import NetworkMessage
from msnp.uun import (
    NotificationBody,
    NotificationError,
    UnknownNotification,
    encodeBody,
    isSignOutRequest,
    parseUBN,
    uunRecipient,
)
from msnp.wire import Command, decodeParameter, encodeParameter

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


class INotificationListener(Interface):
    """
    What the NS connection tells the object it serves (the session), beyond
    the state it keeps itself. Each method handles its own failures: the
    connection calls and forgets.

    The listener is also the session that observer events carry.
    """

    def serverListChanged(entries: list[ListEntry], added: bool) -> None:
        """
        The server pushed C{ADL 0} (C{added}) or C{RML 0}: someone added or
        removed us, or another place of this account changed the list.
        """

    def addressBookChanged() -> None:
        """
        An ABCH C{NOT}: the address book changed elsewhere; refresh it.
        """

    def invited(invitation: Invitation) -> None:
        """
        C{RNG}: someone invites us to a switchboard.
        """

    def notificationEnded(reason: Optional[str]) -> None:
        """
        The connection closed (called once), with why (L{endReason}).
        """

    def circleCommandReceived(command: Command) -> None:
        """
        C{NFY} or C{SDG}: a circle's roster changed or a member sent a
        message (L{msnp.circlechat.CircleManager.commandReceived}).
        """

    def circleNotified(circleId: str) -> None:
        """
        A circle C{NOT}: re-read that circle.
        """

    def mailDataReceived(payload: bytes) -> None:
        """
        C{MSG Hotmail Hotmail} with mail data or an OIM notification
        (L{msnp.oim.MAIL_DATA_TYPES}): offline messages are waiting.
        """

    def networkMessageReceived(message: NetworkMessage) -> None:
        """
        C{UBM}: a text, typing or nudge for us from a contact on another
        network (already checked: addressed to us, not from ourselves).
        """


# -- the protocol --------------------------------------------------------------------


class NotificationProtocol(PresenceHandlers, AccountNotices, PreambleProtocol):
    """
    The NS connection of one session.

    @ivar state: the session's state, kept current from the server.
    @ivar observer: the user's L{msnp.interfaces.IMessengerObserver}.
    @ivar listener: the L{INotificationListener} (the L{msnp.session.Session})
        told about list changes, invitations and the end of the
        connection; L{None} until the session exists.
    @ivar session: what session-level observer events carry (the
        L{msnp.session.Session}, which is also the listener).
    @ivar endReason: why the connection is closing, once known.
    """

    lineReaders = PresenceHandlers.presenceLineReaders

    def __init__(
        self,
        account: str,
        identity: ClientIdentity,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT,
        trace: bool = False,
        observer: Optional[object] = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
    ) -> None:
        """
        @param limits: the caps against a hostile server (places per contact).
        """
        PreambleProtocol.__init__(self, account, identity, clock, requestTimeout, trace)
        self.limits = limits
        self._droppedPlaces = RefusalSummary("places beyond ClientLimits.placesPerContact")
        self._userDataTails = UserDataTails()
        self.state = SessionState(normalizeEmail(account), normalizeGuid(identity.machineGuid))
        self.observer = observer
        self.listener: Optional[INotificationListener] = None
        self.session: Optional[object] = None
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
        PreambleProtocol.connectionLost(self, reason)
        listener, self.listener = self.listener, None
        if listener is not None:
            try:
                listener.notificationEnded(self.endReason)
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
        C{CHG trid STATUS caps msnobj}; C{SessionState.status} (and
        C{SessionState.msnObject}) change on the server's echo.

        @param msnObject: the decoded C{<msnobj/>} XML to publish; L{None}
            keeps the one published last, C{""} publishes none (C{0}).
        @raise ValueError: C{status} is C{Status.OFFLINE} (use C{OUT}).
        """
        if status is Status.OFFLINE:
            raise ValueError("the client cannot set FLN; log out instead")
        published = self.state.msnObject if msnObject is None else (msnObject or None)
        encoded = encodeParameter(published) if published else "0"
        d = self.sendCommand("CHG", status.code, self.identity.capabilities, encoded)

        def confirmed(reply: Command) -> Status:
            try:
                echoed = Status.fromCode(reply.arg(0, status.code))
            except ValueError:
                echoed = status
            self.state.status = echoed
            self.state.msnObject = published
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
        place, read with L{msnp.uun.parseUBN}. A place sign-out (4
        C{goawyplzthxbye}) or C{gtfo} (8) from our own account signs this
        place out (without reconnecting); an unknown type is logged; any
        other is told to the observer (C{notificationReceived}).
        """
        try:
            notification = parseUBN(command)
        except NotificationError as e:
            log.info("Ignoring UBN: {error}", error=str(e))
            return
        if isSignOutRequest(notification, self.state.account):
            log.info("Another place signed {account} out", account=self.account)
            self.markEnding(REASON_SIGNED_OUT_ELSEWHERE)
            self.close()
            return
        if isinstance(notification.body, UnknownNotification):
            log.info(
                "Ignoring UBN of unknown type {kind} from {sender} ({size} bytes)",
                kind=notification.body.kind, sender=notification.sender, size=len(notification.body.payload),
            )
            return
        notifyObserver(self.observer, "notificationReceived", self.session, notification)

    def sendUserNotification(
        self, recipient: str, body: NotificationBody, endpoint: Optional[str] = None
    ) -> "Deferred[Command]":
        """
        C{UUN trid recipient[;{epid}] type len}: send C{body} to C{recipient}
        (one place of it with C{endpoint}); fires with C{UUN trid OK}, fails
        with L{ServerError} (C{217}: not reachable).

        @raise msnp.uun.NotificationError: an unusable recipient or body.
        """
        kind, payload = encodeBody(body)
        return self.sendCommand("UUN", uunRecipient(recipient, endpoint), str(kind), payload=payload)

    # -- list changes, circles, invitations and late replies -----------------------------------------

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
        if self.listener is None:
            log.info("{name} from the server with no session to apply it", name=command.name)
            return
        self.listener.serverListChanged(entries, added)

    def handle_NFY(self, command: Command) -> None:
        """
        C{NFY PUT}/C{NFY DEL}: a circle's conversation roster changed.
        """
        self._circleCommand(command)

    def handle_SDG(self, command: Command) -> None:
        """
        C{SDG 0 len}: a message to a circle we are in.
        """
        self._circleCommand(command)

    def _circleCommand(self, command: Command) -> None:
        if self.listener is None:
            log.info("{name} with no session to apply it", name=command.name)
            return
        self.listener.circleCommandReceived(command)

    def handle_RNG(self, command: Command) -> None:
        """
        C{RNG ...}: someone invites us to a switchboard conversation.
        """
        try:
            invitation = parseInvitation(command)
        except ProtocolError as e:
            log.info("Ignoring malformed RNG: {error}", error=str(e))
            return
        if self.listener is None:
            log.info("Invitation from {inviter} ignored: no session", inviter=invitation.inviter)
            return
        self.listener.invited(invitation)

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


