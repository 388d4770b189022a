# -*- test-case-name: test.test_circles_e2e -*-
"""
Circles (MSNP18 group chats) in a signed-in session: L{CircleManager}
keeps C{session.circles} and the pending invitations, talks to the NS
(C{USR SHA A}, circle C{ADL}/C{RML}, C{PUT}, C{SDG}, C{DEL}) and to the
ABCH services (through L{msnp.soap.circles.CircleService}), and turns what
the server pushes (C{NFY}, C{SDG}, circle C{NOT}s) into observer events.

Guarantees (see C{docs/circles.md}):
  - every management call (create, invite, accept, decline, leave) changes
    C{session.circles} and the invitations only once all its steps
    succeeded; a failed step leaves the local view as it was, and remote
    steps already done are undone where the protocol allows it (a circle
    created but not joined is left again);
  - management calls and refreshes run one at a time, in order;
  - a circle send (C{SDG}) has no acknowledgement in MSNP18: it resolves
    after a quiet window (L{SEND_QUIET_WINDOW}, at most the request
    timeout) on the session clock unless the server answers its TrID with
    an error (L{msnp.errors.MessageNotDelivered}); a lost connection fails
    it at once;
  - hostile input (an C{SDG}/C{NFY} for a circle one is not in, a malformed
    roster or payload, an unknown circle id) is logged and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, TypeVar

from twisted.internet.defer import CancelledError, Deferred, DeferredLock, ensureDeferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from msnp.circles import (
    Circle,
    CircleInvitation,
    CircleProtocolError,
    CircleTicket,
    buildCircleListPayload,
    circleAuthArguments,
    normalizeCircleId,
)
from msnp.circlewire import (
    CircleMessage,
    CircleMessageType,
    applyRosterChange,
    buildJoinPayload,
    buildMessagePayload,
    parseCircleMessage,
    parseRosterChange,
    parseRoutedPayload,
)
from msnp.errors import MessageNotDelivered, MSNPError, ServerError
from msnp.interfaces import notifyObserver
from msnp.soap.circles import CircleBook, CircleListing, CircleService
from msnp.wire import Command

if TYPE_CHECKING:  # pragma: no cover
    from msnp.notification import NotificationProtocol
    from msnp.soap.addressbook import AddressBookService

log = Logger()

_T = TypeVar("_T")

#: Seconds after which an C{SDG} nobody refused counts as sent.
SEND_QUIET_WINDOW = 2.0


class CircleError(MSNPError):
    """
    A circle operation cannot be done (not a member, unknown circle, no
    circle ticket). The local view was left as it was.
    """


@dataclass(eq=False)
class ChatCircle(Circle):
    """
    A circle of the session, with its conversation: C{sendText},
    C{sendNudge}, C{sendTyping}, C{invite} and C{leave} go through the
    session's L{CircleManager}.
    """

    manager: Optional["CircleManager"] = field(default=None, repr=False, compare=False)

    def _manager(self) -> "CircleManager":
        if self.manager is None:
            raise CircleError("this circle belongs to no session")
        return self.manager

    def sendText(self, text: str) -> "Deferred[None]":
        """
        Send C{text} to every member in the circle's conversation.

        @return: fires once the quiet window passed without a refusal;
            fails with L{MessageNotDelivered} (refused, or the connection
            was lost) or L{CircleError}.
        """
        return self._manager().send(self, CircleMessageType.TEXT, text)

    def sendNudge(self) -> "Deferred[None]":
        """
        Nudge the circle; fires or fails as L{sendText}.
        """
        return self._manager().send(self, CircleMessageType.NUDGE)

    def sendTyping(self) -> None:
        """
        Tell the circle we are typing (nobody waits for it; errors are logged).
        """
        d = self._manager().send(self, CircleMessageType.TYPING)
        d.addErrback(lambda f: log.info("Typing notice to {circle} failed: {e}", circle=self.circleId, e=f.getErrorMessage()))

    def invite(self, email: str, message: Optional[str] = None) -> "Deferred[None]":
        """
        Invite C{email} into the circle (C{CreateContact} then
        C{ManageWLConnection}); they are listed as a pending member once
        the service agreed.
        """
        return self._manager().invite(self, email, message)

    def leave(self) -> "Deferred[None]":
        """
        Leave the circle (C{BreakConnection}, then C{RML}); it disappears
        from C{session.circles} once the service agreed.
        """
        return self._manager().leave(self)


class PendingCircleInvitation:
    """
    An invitation the observer is told about (C{circleInvitationReceived}):
    L{accept} or L{decline} it.
    """

    def __init__(self, manager: "CircleManager", invitation: CircleInvitation) -> None:
        self._manager = manager
        self.invitation = invitation

    def __repr__(self) -> str:
        return f"<PendingCircleInvitation {self.circleId} {self.name!r} from {self.inviterEmail}>"

    @property
    def circleId(self) -> str:
        return self.invitation.circleId

    @property
    def name(self) -> str:
        return self.invitation.name

    @property
    def inviterEmail(self) -> str:
        return self.invitation.inviterEmail

    @property
    def message(self) -> str:
        return self.invitation.message

    def accept(self) -> "Deferred[ChatCircle]":
        """
        Join the circle; fires with it once it is in C{session.circles}
        and its conversation was joined.
        """
        def joined(circle: Optional[ChatCircle]) -> ChatCircle:
            assert circle is not None
            return circle

        return self._manager.respond(self.invitation, accept=True).addCallback(joined)

    def decline(self) -> "Deferred[None]":
        """
        Refuse the invitation; it leaves no trace.
        """
        return self._manager.respond(self.invitation, accept=False).addCallback(lambda _: None)


class CircleManager:
    """
    The circles of one session.

    @ivar circles: by circle id, the circles the account is in.
    @ivar invitations: by circle id, the invitations not yet answered.
    """

    def __init__(
        self,
        session: Any,
        protocol: "NotificationProtocol",
        service: CircleService,
        addressBook: "AddressBookService",
        observer: Optional[object],
        clock: IReactorTime,
        requestTimeout: float = 30.0,
    ) -> None:
        self.session = session
        self.protocol = protocol
        self.service = service
        self.addressBook = addressBook
        self.observer = observer
        self.clock = clock
        self.quietWindow = min(SEND_QUIET_WINDOW, requestTimeout)
        self.circles: dict[str, ChatCircle] = {}
        self.invitations: dict[str, PendingCircleInvitation] = {}
        self._lock = DeferredLock()
        self._authenticatedWith: Optional[CircleTicket] = None
        self._joining: dict[str, set[str]] = {}
        self._ownContactIds: dict[str, str] = {}
        self._segment = 0

    def __repr__(self) -> str:
        return f"<CircleManager {len(self.circles)} circles, {len(self.invitations)} invitations>"

    @property
    def _email(self) -> str:
        return str(self.session.account).lower()

    def _serialised(self, work: Callable[[], Awaitable[_T]]) -> "Deferred[_T]":
        """
        Run C{work} once every earlier operation and refresh has finished.
        """

        def start() -> "Deferred[_T]":
            return ensureDeferred(work())  # type: ignore[arg-type]

        return self._lock.run(start)

    # -- sign-in and refresh ------------------------------------------------------------

    def signIn(self, listing: Optional[CircleListing]) -> "Deferred[None]":
        """
        After the first C{CHG}: authenticate to circles with the ticket of
        the login's address book, subscribe to and join each circle, and
        tell the observer about pending invitations.
        """
        return self._serialised(lambda: self._apply(listing or CircleListing()))

    def refresh(self) -> "Deferred[None]":
        """
        Download the personal book again and bring circles and invitations
        in line (after an address-book C{NOT}).
        """

        async def work() -> None:
            await self._apply(await self._listing())

        return self._serialised(work)

    async def _listing(self) -> CircleListing:
        book = await self.addressBook.findContactsPaged("CircleSave")
        return book.circles or CircleListing()

    async def _authenticate(self, ticket: Optional[CircleTicket]) -> None:
        if ticket is None or ticket == self._authenticatedWith:
            return
        await self.protocol.sendCommand("USR", *circleAuthArguments(ticket))
        self._authenticatedWith = ticket

    async def _apply(self, listing: CircleListing) -> None:
        if listing.circles:
            # Only members need circle authentication: an account in no
            # circle signs in exactly as before (no USR SHA A at all).
            await self._authenticate(listing.ticket)
        for circleId in [c for c in self.circles if c not in listing.circles]:
            gone = self.circles.pop(circleId)
            self._ownContactIds.pop(circleId, None)
            notifyObserver(self.observer, "circleLeft", self.session, gone)
        for circleId, listed in listing.circles.items():
            if circleId in self.circles:
                known = self.circles[circleId]
                known.name, known.role, known.state = listed.name, listed.role, listed.state
                continue
            try:
                circle = await self._join(listed)
            except Exception as e:
                log.info("Could not join circle {circle}: {error}", circle=circleId, error=str(e))
                continue
            notifyObserver(self.observer, "circleJoined", self.session, circle)
        for circleId in [c for c in self.invitations if c not in listing.invitations]:
            del self.invitations[circleId]
        for circleId, invitation in listing.invitations.items():
            if circleId not in self.invitations:
                pending = PendingCircleInvitation(self, invitation)
                self.invitations[circleId] = pending
                notifyObserver(self.observer, "circleInvitationReceived", self.session, pending)

    async def _join(self, listed: Circle) -> ChatCircle:
        """
        Subscribe (circle C{ADL}), read the member book, join the
        conversation (C{PUT}); the circle is in C{self.circles} only if all
        three succeeded.
        """
        circleId = listed.circleId
        self._joining[circleId] = set()
        try:
            await self.protocol.sendListCommand("ADL", buildCircleListPayload([circleId]))
            book = await self.service.findCircleBook(circleId)
            circle = self._circleFrom(listed, book)
            payload = buildJoinPayload(circleId, self._email, self.session.machineGuid)
            await self.protocol.sendCommand("PUT", payload=payload)
            circle.online |= self._joining.get(circleId, set()) - {self._email}
        finally:
            self._joining.pop(circleId, None)
        self.circles[circleId] = circle
        return circle

    def _circleFrom(self, listed: Circle, book: CircleBook) -> ChatCircle:
        own = book.members.get(self._email)
        if own is not None and own.contactId:
            self._ownContactIds[listed.circleId] = own.contactId
        return ChatCircle(
            listed.circleId,
            listed.name or book.name,
            role=listed.role,
            state=listed.state,
            members=dict(book.members),
            representativeId=listed.representativeId,
            manager=self,
        )

    # -- management ---------------------------------------------------------------------------

    def createCircle(self, name: str) -> "Deferred[ChatCircle]":
        """
        C{CreateCircle}, then re-read the book, authenticate with the new
        ticket, subscribe and join. If a step after the creation fails,
        the new circle is left again (when its book was read) and nothing
        local changes.
        """
        if not name.strip():
            return fail(ValueError("a circle needs a name"))

        async def work() -> ChatCircle:
            circleId = normalizeCircleId(await self.service.createCircle(name))
            try:
                listing = await self._listing()
                listed = listing.circles.get(circleId)
                if listed is None:
                    raise CircleError(f"the new circle {circleId} is not in the address book")
                await self._authenticate(listing.ticket)
                circle = await self._join(listed)
            except Exception:
                await self._undoCreate(circleId)
                raise
            notifyObserver(self.observer, "circleJoined", self.session, circle)
            return circle

        return self._serialised(work)

    async def _undoCreate(self, circleId: str) -> None:
        try:
            book = await self.service.findCircleBook(circleId)
            own = book.contactIdOf(self._email)
            if own is not None:
                await self.service.leave(circleId, own)
        except Exception as e:
            log.info("Could not undo the creation of circle {circle}: {error}", circle=circleId, error=str(e))

    def invite(self, circle: ChatCircle, email: str, message: Optional[str] = None) -> "Deferred[None]":
        """
        Invite C{email}; the member book is re-read afterwards so the
        invitee shows as a pending member.
        """
        email = email.strip().lower()
        if "@" not in email:
            return fail(ValueError(f"not an address: {email[:60]!r}"))

        async def work() -> None:
            self._require(circle)
            await self.service.invite(circle.circleId, email, message)
            try:
                book = await self.service.findCircleBook(circle.circleId, "CircleInvite")
            except Exception as e:
                log.info("Member book of {circle} not re-read after an invitation: {error}", circle=circle.circleId, error=str(e))
                return
            self._updateMembers(circle, book)

        return self._serialised(work)

    def respond(self, invitation: CircleInvitation, accept: bool) -> "Deferred[Optional[ChatCircle]]":
        """
        Accept (and join) or decline an invitation. The invitation stays
        listed if any step fails.
        """

        async def work() -> Optional[ChatCircle]:
            if invitation.circleId not in self.invitations:
                raise CircleError(f"no pending invitation into {invitation.circleId}")
            await self.service.respond(invitation, accept)
            if not accept:
                del self.invitations[invitation.circleId]
                return None
            # The service accepted: if joining fails now, the invitation
            # stays listed and the next refresh (the next NOT) joins.
            listing = await self._listing()
            listed = listing.circles.get(invitation.circleId)
            if listed is None:
                raise CircleError(f"circle {invitation.circleId} is not in the address book after accepting")
            await self._authenticate(listing.ticket)
            circle = await self._join(listed)
            self.invitations.pop(invitation.circleId, None)
            notifyObserver(self.observer, "circleJoined", self.session, circle)
            return circle

        return self._serialised(work)

    def leave(self, circle: ChatCircle) -> "Deferred[None]":
        """
        C{BreakConnection} with one's own contact id in the circle's book,
        then the circle C{RML} (its failure is logged: the membership is
        already gone).
        """

        async def work() -> None:
            self._require(circle)
            own = self._ownContactIds.get(circle.circleId)
            if own is None:
                book = await self.service.findCircleBook(circle.circleId)
                own = book.contactIdOf(self._email)
                if own is None:
                    raise CircleError(f"not listed in the member book of {circle.circleId}")
            await self.service.leave(circle.circleId, own)
            self.circles.pop(circle.circleId, None)
            self._ownContactIds.pop(circle.circleId, None)
            try:
                await self.protocol.sendListCommand("RML", buildCircleListPayload([circle.circleId]))
            except Exception as e:
                log.info("Circle RML of {circle} failed: {error}", circle=circle.circleId, error=str(e))
            notifyObserver(self.observer, "circleLeft", self.session, circle)

        return self._serialised(work)

    def _require(self, circle: ChatCircle) -> None:
        if self.circles.get(circle.circleId) is not circle:
            raise CircleError(f"not a member of circle {circle.circleId}")

    def _updateMembers(self, circle: ChatCircle, book: CircleBook) -> None:
        circle.members = dict(book.members)
        own = book.contactIdOf(self._email)
        if own is not None:
            self._ownContactIds[circle.circleId] = own

    # -- the conversation ---------------------------------------------------------------------

    def send(self, circle: ChatCircle, kind: CircleMessageType, text: str = "") -> "Deferred[None]":
        """
        One C{SDG} to the circle's conversation (see the module docstring
        for when it fires).
        """
        if self.circles.get(circle.circleId) is not circle:
            return fail(CircleError(f"not a member of circle {circle.circleId}"))
        self._segment += 1
        payload = buildMessagePayload(
            circle.circleId, self._email, self.session.machineGuid, self._segment, kind, text
        )
        try:
            request = self.protocol.sendCommand("SDG", payload=payload, timeout=None)
        except ValueError as e:
            return fail(e)
        sent: Deferred[None] = Deferred()

        def quiet() -> None:
            # Nobody refused within the window: sent. Forget the request
            # (a late error for this TrID then goes to the log).
            if not sent.called:
                sent.callback(None)
            request.cancel()

        timer = self.clock.callLater(self.quietWindow, quiet)

        def refused(failure: Any) -> None:
            if timer.active():
                timer.cancel()
            if failure.check(CancelledError) or sent.called:
                return None
            if failure.check(ServerError):
                sent.errback(MessageNotDelivered(f"circle message refused: {failure.getErrorMessage()}"))
            else:
                sent.errback(MessageNotDelivered(f"circle message not sent: {failure.getErrorMessage()}"))
            return None

        request.addCallbacks(lambda _: None, refused)
        return sent

    # -- what the server pushes -------------------------------------------------------------

    def commandReceived(self, command: Command) -> None:
        """
        An C{NFY} (roster change) or C{SDG} (message): applied to the
        circle it names, or logged and ignored.
        """
        try:
            routed = parseRoutedPayload(command.payload or b"")
            if command.name == "NFY":
                self._rosterChanged(command.arg(0), routed)
            elif command.name == "SDG":
                self._messageReceived(parseCircleMessage(routed))
        except CircleProtocolError as e:
            log.info("Ignoring a malformed circle {name}: {error}", name=command.name, error=str(e))

    def _rosterChanged(self, verb: str, routed: Any) -> None:
        change = parseRosterChange(verb, routed)
        if change is None:
            return
        joining = self._joining.get(change.circleId)
        if joining is not None:
            joining |= set(change.present)
            joining -= set(change.left)
            return
        circle = self.circles.get(change.circleId)
        if circle is None:
            log.info("Ignoring a roster change of circle {circle}, which we are not in", circle=change.circleId)
            return
        joined, left = applyRosterChange(circle.online, change, self._email)
        if joined or left:
            notifyObserver(self.observer, "circleRosterChanged", self.session, circle, frozenset(joined), frozenset(left))

    def _messageReceived(self, message: Optional[CircleMessage]) -> None:
        if message is None:
            log.info("Ignoring a circle message of an unknown type")
            return
        circle = self.circles.get(message.circleId)
        if circle is None:
            log.info("Ignoring a message to circle {circle}, which we are not in", circle=message.circleId)
            return
        if message.type is CircleMessageType.TEXT:
            notifyObserver(self.observer, "circleMessageReceived", self.session, circle, message.senderEmail, message)
        elif message.type is CircleMessageType.NUDGE:
            notifyObserver(self.observer, "circleNudgeReceived", self.session, circle, message.senderEmail)
        else:
            notifyObserver(self.observer, "circleTypingReceived", self.session, circle, message.senderEmail)

    def circleNotified(self, circleId: str) -> "Deferred[None]":
        """
        A circle C{NOT}: re-read that circle's member book and tell the
        observer (C{circleChanged}); a circle we do not know yet means our
        own memberships changed, so the whole listing is re-read.
        """

        async def work() -> None:
            circle = self.circles.get(circleId)
            if circle is None:
                await self._apply(await self._listing())
                return
            book = await self.service.findCircleBook(circleId, "CircleSave")
            if self.circles.get(circleId) is circle:
                self._updateMembers(circle, book)
                notifyObserver(self.observer, "circleChanged", self.session, circle)

        return self._serialised(work)
