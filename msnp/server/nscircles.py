# -*- test-case-name: test.test_circles_e2e -*-
"""
Circles on the local network's servers: the glue between the pure circle
modules (L{msnp.server.circles}, L{msnp.server.circlerouting},
L{msnp.server.circleabch}) and the notification server and ABCH resource.

  - L{CircleCommands} is mixed into the NS connection: C{USR SHA A}
    (verified against the registry, C{911} when it fails), the circle
    C{ADL}/C{RML}, C{PUT}/C{SDG}/C{DEL}, and the C{NFY DEL}s of a place
    signing out.
  - L{CircleHub} maps routed L{Delivery}s to signed-in NS places, decides
    C{mayDeliver} with the one-to-one privacy rule
    (L{msnp.server.presence.permits}), and sends the C{NOT}s an ABCH circle
    call causes.
  - L{CircleActions} adds the circle calls to the ABCH resource and
    splices the circles into the personal book.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, cast
from xml.etree.ElementTree import Element

from twisted.logger import Logger

from msnp.circles import CircleProtocolError, decodeCircleAuth, isCircleListPayload
from msnp.server.accountmodel import Account
from msnp.server.tickets import TicketGrant
from msnp.server.circleabch import (
    CircleCallResult,
    CircleFault,
    MemberInfo,
    breakConnection,
    circleBook,
    circleNotificationPayload,
    circleResultXML,
    createCircle,
    createContact,
    isCircleBookRequest,
    manageConnection,
    representativesXML,
)
from msnp.server.circlerouting import Delivery, leaveDeliveries, partDeliveries, routeCircleCommand, subscribeCircles
from msnp.server.circles import CircleRegistry, Place
from msnp.server.nslists import ListCommands
from msnp.server.presence import guidKey, permits
from msnp.server.soapservice import ServiceFault, isoTime
from msnp.wire import Command

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.abch import ABCHResource
    from msnp.server.accounts import AccountStore
    from msnp.server.notification import NotificationServer
    from msnp.server.presence import Presence

log = Logger()

#: An ABCH action handler: (caller's account, method element) → response body.
Action = Callable[[Account, Element], str]


class CircleHub:
    """
    What the NS connections and the ABCH resource share about circles: the
    registry, and how to reach signed-in places.
    """

    def __init__(self, registry: CircleRegistry, presence: "Presence") -> None:
        self.registry = registry
        self.presence = presence
        self.store: "AccountStore" = presence.store

    def __repr__(self) -> str:
        return f"<CircleHub {self.registry!r}>"

    def placeOf(self, session: "NotificationServer") -> Optional[Place]:
        """
        The circle L{Place} of an NS connection (L{None} before login or
        for an MSNP15 place without endpoint id).
        """
        if session.account is None or not session.machineGuid:
            return None
        return Place.of(session.account, session.machineGuid)

    def mayDeliver(self, sender: str, recipient: str) -> bool:
        """
        The one-to-one rule: the recipient's privacy lets the sender reach
        it (not blocked; allowed under C{BLP BL}).
        """
        senderAccount = self.store.get(sender)
        recipientAccount = self.store.get(recipient)
        if senderAccount is None or recipientAccount is None:
            return False
        return permits(recipientAccount, senderAccount)

    def deliver(self, deliveries: "tuple[Delivery, ...] | list[Delivery]") -> None:
        """
        Send each delivery to the one NS connection that is its place.
        """
        for delivery in deliveries:
            for session in self.presence.sessionsOf(delivery.place.email):
                if session.machineGuid and guidKey(session.machineGuid) == guidKey(delivery.place.epid):
                    session.sendRaw(delivery.command)

    def member(self, email: str) -> Optional[MemberInfo]:
        """
        The L{MemberInfo} the ABCH handlers need, from the account store.
        """
        account = self.store.get(email)
        if account is None:
            return None
        return MemberInfo(account.email, account.cid, account.displayName)

    def callDone(self, result: CircleCallResult, origin: Optional[TicketGrant], lastModified: str) -> None:
        """
        A circle ABCH call succeeded: the accounts whose own memberships
        changed get the C{ABCHInternal} C{NOT} (all their places but the
        one that made the call), the members of a changed circle the circle
        C{NOT}, and the places still in the conversation of a circle
        someone left the C{NFY DEL}.
        """
        for email in result.ownChanged:
            account = self.store.get(email)
            if account is not None:
                self.presence.notifyAddressBookChanged(account, lastModified, origin)
        for email, circleId in result.circleChanged:
            payload = circleNotificationPayload(email, circleId)
            for session in self.presence.sessionsOf(email):
                session.sendRaw(Command("NOT", None, (), payload))
        if result.left is not None:
            circleId, leaver = result.left
            self.deliver(leaveDeliveries(self.registry, circleId, leaver))


class CircleCommands(ListCommands):
    """
    The circle commands of the NS connection (a base of
    L{msnp.server.notification.NotificationServer}, whose state it reads).
    """

    account: Optional[str]
    machineGuid: Optional[str]
    circleAuthenticated: bool = False

    @property
    def circleHub(self) -> Optional[CircleHub]:
        return self.presence.circles

    def _circlePlace(self) -> Optional[Place]:
        hub = self.circleHub
        return hub.placeOf(cast("NotificationServer", self)) if hub is not None else None

    def circleAuthenticate(self, command: Command) -> None:
        """
        C{USR trid SHA A <base64 ticket>}: C{USR trid OK <address> 0 0}
        when the registry signed that ticket for this account, else C{911}
        (the connection stays open: circles are simply unavailable).
        """
        hub = self.circleHub
        assert self.account is not None and self.user is not None
        try:
            text = decodeCircleAuth(command.arg(2))
        except CircleProtocolError as e:
            log.info("Circle authentication of {account} refused: {error}", account=self.account, error=str(e))
            self.error(911, command.trid)
            return
        if hub is None or not hub.registry.verifyTicket(self.user.cid, text):
            log.info("Circle authentication of {account} refused: bad ticket", account=self.account)
            self.error(911, command.trid)
            return
        self.circleAuthenticated = True
        self.reply("USR", command.trid, "OK", self.account, "0", "0")

    def isCircleList(self, command: Command) -> bool:
        """
        Whether an C{ADL}/C{RML} is about circles (handled here, not as contacts).
        """
        return isCircleListPayload(command.payload or b"")

    def circleList(self, command: Command) -> None:
        """
        A circle C{ADL}: subscribe (C{933} without C{SHA A} or for a circle
        one is not in, C{241} for a mixed payload). A circle C{RML} is
        acknowledged: leaving happened over ABCH already.
        """
        hub, place = self.circleHub, self._circlePlace()
        if hub is None or place is None:
            self.error(933, command.trid)
            return
        if command.name == "RML":
            self.reply("RML", command.trid, "OK")
            return
        routed = subscribeCircles(hub.registry, place, command.trid, command.payload or b"", self.circleAuthenticated)
        if routed.reply is not None:
            self.sendRaw(routed.reply)
        hub.deliver(routed.deliveries)

    def _route(self, command: Command) -> None:
        hub, place = self.circleHub, self._circlePlace()
        if hub is None or place is None:
            if command.trid is not None:
                self.error(201, command.trid)
            return
        routed = routeCircleCommand(hub.registry, place, command, hub.mayDeliver)
        if routed.reply is not None:
            self.sendRaw(routed.reply)
        hub.deliver(routed.deliveries)

    def handle_PUT(self, command: Command) -> None:
        self._route(command)

    def handle_SDG(self, command: Command) -> None:
        self._route(command)

    def handle_DEL(self, command: Command) -> None:
        self._route(command)

    def circlesSignedOff(self) -> None:
        """
        This place went away: it leaves every circle conversation, and the
        others hear C{NFY DEL} for an account whose last place it was.
        """
        hub, place = self.circleHub, self._circlePlace()
        if hub is None or place is None:
            return
        try:
            hub.deliver(partDeliveries(hub.registry, place))
        except Exception:
            log.failure("Circle sign-off of {account} failed", account=self.account)


class CircleActions:
    """
    The circle calls of the ABCH resource: C{CreateCircle} on the Sharing
    service, C{CreateContact}/C{ManageWLConnection}/C{BreakConnection} and
    the circle member book on C{abservice.asmx}, and the circle parts of
    the personal book.
    """

    def __init__(self, resource: "ABCHResource", hub: CircleHub) -> None:
        self.resource = resource
        self.hub = hub

    def _member(self, account: Account) -> MemberInfo:
        return MemberInfo(account.email, account.cid, account.displayName)

    def _stamp(self, account: Account) -> str:
        return isoTime(self.resource.extrasFor(account).lastChange)

    def _run(self, account: Account, call: Callable[[], CircleCallResult]) -> str:
        try:
            result = call()
        except CircleFault as fault:
            raise ServiceFault(fault.errorCode, fault.message, fault.httpStatus) from None
        self.resource.extrasFor(account).lastChange = self.resource.now()
        try:
            self.hub.callDone(result, self.resource.callOrigin, self._stamp(account))
        except Exception:
            log.failure("Circle notifications after a call of {account} failed", account=account.email)
        return result.body

    def createCircle(self, account: Account, method: Element) -> str:
        return self._run(account, lambda: createCircle(self.hub.registry, self._member(account), method))

    def createContact(self, account: Account, method: Element) -> str:
        return self._run(
            account, lambda: createContact(self.hub.registry, self._member(account), method, self.hub.member)
        )

    def manageConnection(self, account: Account, method: Element) -> str:
        return self._run(account, lambda: manageConnection(self.hub.registry, self._member(account), method))

    def breakConnection(self, account: Account, method: Element) -> str:
        return self._run(account, lambda: breakConnection(self.hub.registry, self._member(account), method))

    def findContactsPaged(self, personal: Action) -> Action:
        """
        Wrap the personal book's C{ABFindContactsPaged}: a circle
        C{abHandle} reads that circle's member book; otherwise the personal
        book gets the hidden circle representatives and the
        C{CircleResult} (always with a C{CircleTicket}).
        """

        def find(account: Account, method: Element) -> str:
            stamp = self._stamp(account)
            caller = self._member(account)
            if isCircleBookRequest(method):
                try:
                    return circleBook(self.hub.registry, caller, method, self.hub.member, stamp).body
                except CircleFault as fault:
                    raise ServiceFault(fault.errorCode, fault.message, fault.httpStatus) from None
            body = personal(account, method)
            representatives = representativesXML(self.hub.registry, caller, self.hub.member, stamp)
            if representatives:
                at = body.rfind("</Contacts>")
                if at >= 0:
                    body = body[:at] + representatives + body[at:]
            return body.replace(
                "<CircleResult><Circles /></CircleResult>", circleResultXML(self.hub.registry, caller, stamp), 1
            )

        return find

    def install(self, sharing: dict[str, Action], addressBook: dict[str, Action]) -> None:
        """
        Add the circle calls to the two endpoints' action tables.
        """
        sharing["CreateCircle"] = self.createCircle
        addressBook["CreateContact"] = self.createContact
        addressBook["ManageWLConnection"] = self.manageConnection
        addressBook["BreakConnection"] = self.breakConnection
        addressBook["ABFindContactsPaged"] = self.findContactsPaged(addressBook["ABFindContactsPaged"])
