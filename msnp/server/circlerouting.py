# -*- test-case-name: test.test_server_circles -*-
"""
Routing of the circle commands (C{ADL} of circles, C{PUT}, C{SDG}) and the
roster notifications they cause, as pure functions of (registry, sender,
command) to a reply and a list of deliveries.

The notification server (phase 2) calls these and only sends: it maps each
L{Delivery}'s L{Place} to its session. Nothing here touches a transport.

Rules (supplement Q.4.4-Q.4.8, Escargot's behaviour where it is the only
source; see C{docs/circles.md}):
  - a C{PUT}/C{SDG} whose C{To} is not a circle gets no reply at all;
  - a malformed payload, an unknown circle, a non-member, a place without a
    prior circle C{ADL} (C{PUT}) or outside the roster (C{SDG}), a C{From}
    that is not exactly the sending place: error C{201};
  - a C{DEL} of one's own roster user takes the place out of the roster
    (C{DEL trid OK 0}, chosen to mirror C{PUT}); the others hear C{NFY DEL}
    once the account's last place left;
  - an C{SDG} is relayed unchanged as C{SDG 0} to every other place in the
    roster (the sender's own other places included), never back to the
    sending place; a recipient that blocks the sender does not get it;
  - roster C{NFY PUT}s list, to each recipient, the members that
    recipient does not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from twisted.logger import Logger

from msnp.circles import IM_ROSTER, NETWORK_CIRCLE, CircleProtocolError, parseCircleListPayload
from msnp.circlewire import (
    CIRCLES_XML,
    ContentBlock,
    MalformedRoutedPayload,
    RoutedPayload,
    buildLeaveNotification,
    buildRosterNotification,
    parseRosterDocument,
    parseRoutedPayload,
    rosterUserOf,
)
from msnp.server.circles import CircleRefused, CircleRegistry, Place
from msnp.wire import Command

log = Logger()

#: C{mayDeliver(senderEmail, recipientEmail)}: whether the recipient accepts
#: messages and presence from the sender (the one-to-one privacy rules).
MayDeliver = Callable[[str, str], bool]


def _always(sender: str, recipient: str) -> bool:
    return True


@dataclass(frozen=True)
class Delivery:
    """
    One command for one signed-in place.
    """

    place: Place
    command: Command


@dataclass(frozen=True)
class Routed:
    """
    The outcome of one client command.

    @ivar reply: the answer to the sender, or L{None} for none at all.
    @ivar deliveries: commands for other places (and the sender's own).
    @ivar circleIds: the circles concerned (subscribed by an C{ADL}).
    """

    reply: Optional[Command]
    deliveries: tuple[Delivery, ...] = ()
    circleIds: tuple[str, ...] = ()


def _error(code: int, trid: Optional[int]) -> Routed:
    return Routed(Command(str(code), trid))


def rosterDeliveries(
    registry: CircleRegistry, circleId: str, recipients: list[Place], mayDeliver: MayDeliver = _always
) -> list[Delivery]:
    """
    The roster C{NFY PUT} for each of C{recipients}: the accounts in the
    conversation, without those the recipient blocks (it is always in its
    own roster, so MSNPSharp sees itself and drops it).
    """
    accounts = registry.rosterAccounts(circleId)
    deliveries: list[Delivery] = []
    for place in recipients:
        visible = [a for a in accounts if a == place.email or mayDeliver(a, place.email)]
        payload = buildRosterNotification(circleId, place.email, visible)
        deliveries.append(Delivery(place, Command("NFY", None, ("PUT",), payload)))
    return deliveries


def subscribeCircles(
    registry: CircleRegistry, place: Place, trid: Optional[int], payload: bytes, authenticated: bool
) -> Routed:
    """
    A circle C{ADL} from C{place}: subscribe it to each circle, then send
    it the current roster of each.

    @param authenticated: whether this place's C{USR SHA A} succeeded.
    @return: C{ADL trid OK}; C{241} for a payload that is not a pure circle
        list; C{933} without circle authentication or for a circle the
        account is not in (nothing is subscribed then).
    """
    try:
        entries = parseCircleListPayload(payload)
    except CircleProtocolError as e:
        log.info("Circle ADL from {place} refused: {error}", place=place.email, error=str(e))
        return _error(241, trid)
    if not authenticated:
        return _error(933, trid)
    circleIds = [e.circleId for e in entries]
    if not all(registry.isMember(place.email, c) for c in circleIds):
        return _error(933, trid)
    deliveries: list[Delivery] = []
    for circleId in circleIds:
        registry.subscribe(place, circleId)
        if registry.rosterAccounts(circleId):
            deliveries += rosterDeliveries(registry, circleId, [place])
    return Routed(Command("ADL", trid, ("OK",)), tuple(deliveries), tuple(circleIds))


def routeCircleCommand(
    registry: CircleRegistry, sender: Place, command: Command, mayDeliver: MayDeliver = _always
) -> Routed:
    """
    Route a C{PUT}, C{SDG} or C{DEL} (leaving the roster) from C{sender}.

    @return: the reply and deliveries (see the module docstring for the
        rules); any other command gets C{201}.
    """
    if command.name not in ("PUT", "SDG", "DEL"):
        return _error(201, command.trid)
    try:
        routed = parseRoutedPayload(command.payload or b"")
    except MalformedRoutedPayload as e:
        log.info("{name} from {place}: malformed payload ({error})", name=command.name, place=sender.email, error=str(e))
        return _error(201, command.trid)
    if routed.to.network != NETWORK_CIRCLE:
        return Routed(None)
    circleId = routed.to.circleId
    if circleId is None:
        return _error(201, command.trid)
    if routed.sender.network != 1 or routed.sender.account != sender.email:
        return _error(201, command.trid)
    if command.name == "DEL":
        return _del(registry, sender, command, circleId, routed)
    if command.name == "PUT":
        return _put(registry, sender, command, circleId, routed.kind, routed.header("Content-Type"), routed.body, mayDeliver)
    if routed.sender.epid != sender.epid or routed.to.path != IM_ROSTER:
        return _error(201, command.trid)
    if routed.kind is not ContentBlock.MESSAGING:
        return _error(201, command.trid)
    if not registry.inRoster(sender, circleId):
        return _error(201, command.trid)
    relay = Command("SDG", 0, (), command.payload)
    deliveries = tuple(
        Delivery(place, relay)
        for place in registry.rosterPlaces(circleId)
        if place != sender and (place.email == sender.email or mayDeliver(sender.email, place.email))
    )
    return Routed(None, deliveries, (circleId,))


def _put(
    registry: CircleRegistry,
    sender: Place,
    command: Command,
    circleId: str,
    kind: ContentBlock,
    contentType: Optional[str],
    body: bytes,
    mayDeliver: MayDeliver,
) -> Routed:
    if (contentType or "").split(";")[0].strip().lower() != CIRCLES_XML:
        return Routed(None)
    if kind is not ContentBlock.PUBLICATION:
        return _error(201, command.trid)
    if b"<roster" not in body:
        # Circle properties (the shared personal message): accepted, not
        # kept by the local network.
        if not registry.inRoster(sender, circleId):
            return _error(201, command.trid)
        return Routed(Command("PUT", command.trid, ("OK", "0")), (), (circleId,))
    try:
        document = parseRosterDocument(body.strip())
    except MalformedRoutedPayload:
        return _error(201, command.trid)
    if document.rosterId != IM_ROSTER or document.emails != (sender.email,):
        return _error(201, command.trid)
    wasThere = sender.email in registry.rosterAccounts(circleId)
    try:
        registry.join(sender, circleId)
    except CircleRefused as refusal:
        return _error(refusal.nsCode, command.trid)
    reply = Command("PUT", command.trid, ("OK", "0"))
    if wasThere:
        # Another place of an account already in the roster: only it
        # needs the roster.
        return Routed(reply, tuple(rosterDeliveries(registry, circleId, [sender], mayDeliver)), (circleId,))
    places = registry.rosterPlaces(circleId)
    return Routed(reply, tuple(rosterDeliveries(registry, circleId, places, mayDeliver)), (circleId,))


def _del(registry: CircleRegistry, sender: Place, command: Command, circleId: str, routed: RoutedPayload) -> Routed:
    try:
        user = rosterUserOf(routed)
    except MalformedRoutedPayload:
        return _error(201, command.trid)
    if user != sender.email or not registry.inRoster(sender, circleId):
        return _error(201, command.trid)
    emptied = registry.partRoster(sender, circleId)
    reply = Command("DEL", command.trid, ("OK", "0"))
    deliveries = leaveDeliveries(registry, circleId, sender.email) if emptied else []
    return Routed(reply, tuple(deliveries), (circleId,))


def leaveDeliveries(registry: CircleRegistry, circleId: str, leaver: str) -> list[Delivery]:
    """
    The C{NFY DEL} telling every place still in the conversation that
    C{leaver} is gone (after L{CircleRegistry.leave} or when its last place
    signed out).
    """
    places = registry.rosterPlaces(circleId)
    if not places:
        return []
    number = registry.nextNotifNum(circleId)
    return [
        Delivery(p, Command("NFY", None, ("DEL",), buildLeaveNotification(circleId, p.email, leaver, number)))
        for p in places
    ]


def partDeliveries(registry: CircleRegistry, place: Place) -> list[Delivery]:
    """
    C{place} signed out: forget it, and tell the remaining places of each
    circle whose roster lost the account.
    """
    deliveries: list[Delivery] = []
    for circleId in registry.part(place):
        deliveries += leaveDeliveries(registry, circleId, place.email)
    return deliveries
