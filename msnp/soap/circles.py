# -*- test-case-name: test.test_soap_circles -*-
"""
The ABCH calls of circles (supplement Q.4.2, Q.4.10): request bodies,
response parsers, and L{CircleService}, a thin client over the session's
two existing ABCH clients.

C{CreateCircle} is a Sharing method; C{CreateContact},
C{ManageWLConnection}, C{BreakConnection} and the circle's member book
(C{ABFindContactsPaged} with the circle's C{abHandle}) go to
C{abservice.asmx}, as the WSDL binds them and Escargot serves them.

The body builders and parsers are pure functions (tested without HTTP);
every value put into a body is escaped; a parser given a hostile or
damaged answer raises L{msnp.errors.ServiceError}, or skips the one bad
entry of a list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred

from msnp.circles import (
    CIRCLE_DOMAIN,
    Circle,
    CircleInvitation,
    CircleMember,
    CircleProtocolError,
    CircleRole,
    CircleState,
    CircleTicket,
    isCircleId,
    normalizeCircleId,
)
from msnp.errors import ServiceError
from msnp.soap.envelope import AB_NS, ABCHService, isTrue
from msnp.xmlsafe import child, children, escapeText, findPath, iterByName, localName, textOf

#: C{ManageWLConnection} actions (Q.4.11).
ACTION_CONNECT = 1
ACTION_DECLINE = 2
#: C{relationshipType} of a circle.
RELATIONSHIP_CIRCLE = 5
#: The C{CircleId} of a contact handle that is not itself a circle.
NO_CIRCLE = "00000000-0000-0000-0000-000000000000"

SCENARIO_SAVE = "CircleSave"
SCENARIO_INVITE = "CircleInvite"
SCENARIO_STATUS = "CircleStatus"
SCENARIO_LEAVE = "CircleLeave"
SCENARIO_NEW_DURING_PULL = "NewCircleDuringPull"
SCENARIO_JOINED_DURING_PUSH = "JoinedCircleDuringPush"


def _under(element: Element, holder: str, name: str) -> list[Element]:
    """
    The C{name} children of C{element}'s C{holder} child (none without one).
    """
    found = child(element, holder)
    return children(found, name) if found is not None else []


def _abHandle(circleId: str) -> str:
    return (
        f"<abHandle><ABId>{escapeText(normalizeCircleId(circleId))}</ABId>"
        "<Puid>0</Puid><Cid>0</Cid></abHandle>"
    )


# -- request bodies --------------------------------------------------------------


def createCircleBody(name: str, publicDisplayName: str = "") -> str:
    """
    The C{CreateCircle} element with MSNPSharp's property values (Escargot
    refuses other C{Domain}/C{HostedDomain}/C{Type} values).
    """
    return (
        f'<CreateCircle xmlns="{AB_NS}"><properties><Domain>1</Domain>'
        f"<HostedDomain>{CIRCLE_DOMAIN}</HostedDomain><Type>2</Type>"
        "<MembershipAccess>0</MembershipAccess><IsPresenceEnabled>true</IsPresenceEnabled>"
        "<RequestMembershipOption>2</RequestMembershipOption>"
        f"<DisplayName>{escapeText(name)}</DisplayName></properties>"
        f"<callerInfo><PublicDisplayName>{escapeText(publicDisplayName)}</PublicDisplayName>"
        "</callerInfo></CreateCircle>"
    )


def createContactBody(circleId: str, email: str) -> str:
    """
    C{CreateContact}: the invitee's entry in the circle's member book.
    """
    return (
        f'<CreateContact xmlns="{AB_NS}">{_abHandle(circleId)}<contactHandle>'
        f"<Email>{escapeText(email.strip().lower())}</Email><Puid>0</Puid><Cid>0</Cid>"
        f"<CircleId>{NO_CIRCLE}</CircleId></contactHandle></CreateContact>"
    )


def manageConnectionBody(
    contactId: str,
    action: int,
    role: CircleRole,
    circleId: Optional[str] = None,
    inviteMessage: Optional[str] = None,
) -> str:
    """
    C{ManageWLConnection}: with C{circleId}, connect a member of that
    circle's book (an invitation); without, answer an invitation from the
    personal book (C{action} 1 accept, 2 decline; C{role} L{CircleRole.NONE}).
    """
    handle = _abHandle(circleId) if circleId is not None else ""
    annotations = ""
    if inviteMessage:
        annotations = (
            "<annotations><Annotation><Name>MSN.IM.InviteMessage</Name>"
            f"<Value>{escapeText(inviteMessage)}</Value></Annotation></annotations>"
        )
    return (
        f'<ManageWLConnection xmlns="{AB_NS}">{handle}'
        f"<contactId>{escapeText(contactId)}</contactId><connection>true</connection>"
        f"<presence>false</presence><action>{int(action)}</action>"
        f"<relationshipType>{RELATIONSHIP_CIRCLE}</relationshipType>"
        f"<relationshipRole>{int(role)}</relationshipRole>{annotations}</ManageWLConnection>"
    )


def breakConnectionBody(circleId: str, ownContactId: str) -> str:
    """
    C{BreakConnection}: leave a circle (one's own contact id in its book).
    """
    return (
        f'<BreakConnection xmlns="{AB_NS}">{_abHandle(circleId)}'
        f"<contactId>{escapeText(ownContactId)}</contactId>"
        "<deleteContact>true</deleteContact><blockContact>false</blockContact></BreakConnection>"
    )


def circleBookBody(circleId: str) -> str:
    """
    C{ABFindContactsPaged} for a circle's member book (no C{filterOptions},
    as MSNPSharp sends it).
    """
    return (
        f'<ABFindContactsPaged xmlns="{AB_NS}"><abView>MessengerClient8</abView>'
        f"<extendedContent>AB</extendedContent>{_abHandle(circleId)}</ABFindContactsPaged>"
    )


# -- response parsers --------------------------------------------------------------


def _resultOf(body: Element, action: str) -> Element:
    if localName(body.tag) == f"{action}Result":
        return body
    found = child(body, f"{action}Result")
    if localName(body.tag) != f"{action}Response":
        raise ServiceError(f"{action}: unexpected response <{localName(body.tag)}>")
    if found is None:
        raise ServiceError(f"{action}: the response carries no {action}Result")
    return found


def parseCreateCircleResponse(body: Element) -> str:
    """
    The new circle's id from C{CreateCircleResponse/CreateCircleResult/Id}.

    @raise ServiceError: no id, or not a circle id.
    """
    circleId = textOf(_resultOf(body, "CreateCircle"), "Id").strip()
    if not isCircleId(circleId):
        raise ServiceError(f"CreateCircle: the response carries no circle id ({circleId[:60]!r})")
    return normalizeCircleId(circleId)


def parseCreateContactResponse(body: Element) -> str:
    """
    The contact id C{CreateContactResult} gives the invitee.

    @raise ServiceError: none.
    """
    contactId = textOf(_resultOf(body, "CreateContact"), "contactId").strip()
    if not contactId:
        raise ServiceError("CreateContact: the response carries no contactId")
    return contactId


def checkManageConnectionResponse(body: Element) -> None:
    """
    Accept a C{ManageWLConnectionResponse}; a non-empty C{clientErrorData}
    is a refusal even with HTTP 200 (Escargot reports errors that way).

    @raise ServiceError: a refusal or another element.
    """
    if localName(body.tag) != "ManageWLConnectionResponse":
        raise ServiceError(f"ManageWLConnection: unexpected response <{localName(body.tag)}>")
    for element in iterByName(body, "clientErrorData"):
        if (element.text or "").strip() or len(element):
            raise ServiceError("ManageWLConnection refused: clientErrorData is not empty")


def checkBreakConnectionResponse(body: Element) -> None:
    """
    @raise ServiceError: not a C{BreakConnectionResponse}.
    """
    if localName(body.tag) != "BreakConnectionResponse":
        raise ServiceError(f"BreakConnection: unexpected response <{localName(body.tag)}>")


@dataclass
class CircleListing:
    """
    The circles of the personal book's C{ABFindContactsPaged} answer.

    @ivar circles: the circles one is in (state C{Accepted}), by id.
    @ivar invitations: the circles one is invited to.
    @ivar ticket: the C{CircleTicket}, if any (kept out of the C{repr}
        by L{CircleTicket} itself).
    @ivar representativeIds: circle id → the hidden representative's
        C{contactId}; the session must keep these contacts out of its
        contact list.
    """

    circles: dict[str, Circle] = field(default_factory=dict)
    invitations: dict[str, CircleInvitation] = field(default_factory=dict)
    ticket: Optional[CircleTicket] = None
    representativeIds: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Representative:
    contactId: str
    state: Optional[CircleState]
    inviterEmail: str
    inviterName: str
    message: str


def _findResult(body: Element) -> Element:
    name = localName(body.tag)
    if name == "ABFindContactsPagedResult":
        return body
    found = child(body, "ABFindContactsPagedResult")
    if found is None:
        raise ServiceError(f"address book: unexpected response <{name}>")
    return found


def _representatives(result: Element) -> dict[str, _Representative]:
    found: dict[str, _Representative] = {}
    for contact in _under(result, "Contacts", "Contact"):
        info = child(contact, "contactInfo")
        if info is None or textOf(info, "contactType").strip() != "Circle":
            continue
        for network in iterByName(info, "NetworkInfo"):
            tag = textOf(network, "DomainTag").strip()
            if not isCircleId(tag):
                continue
            stateText = textOf(network, "RelationshipState").strip()
            try:
                state: Optional[CircleState] = CircleState.fromWire(stateText) if stateText else None
            except CircleProtocolError:
                state = None
            found[normalizeCircleId(tag)] = _Representative(
                contactId=textOf(contact, "contactId").strip(),
                state=state,
                inviterEmail=textOf(network, "InviterEmail").strip().lower(),
                inviterName=textOf(network, "InviterName").strip(),
                message=textOf(network, "InviterMessage"),
            )
            break
    return found


def parseCircleListing(body: Element) -> CircleListing:
    """
    Read the circles out of the personal book's C{ABFindContactsPaged}
    answer: C{CircleResult/Circles/CircleInverseInfo} for name, role and
    state, the hidden representatives for the contact id accept/decline
    address and for the inviter, and C{CircleResult/CircleTicket}.

    A circle entry without a usable id, deleted, or in state C{Left} or
    C{Rejected} is skipped.

    @raise ServiceError: not an C{ABFindContactsPaged} answer.
    """
    result = _findResult(body)
    listing = CircleListing()
    representatives = _representatives(result)
    circleResult = child(result, "CircleResult")
    if circleResult is None:
        return listing
    ticket = textOf(circleResult, "CircleTicket")
    if ticket.strip():
        listing.ticket = CircleTicket(ticket)
    for info in _under(circleResult, "Circles", "CircleInverseInfo"):
        circleId = textOf(info, "Content", "Handle", "Id").strip()
        if not isCircleId(circleId) or isTrue(textOf(info, "Deleted")):
            continue
        circleId = normalizeCircleId(circleId)
        name = textOf(info, "Content", "Info", "DisplayName")
        membership = findPath(info, "PersonalInfo", "MembershipInfo", "CirclePersonalMembership")
        try:
            role = CircleRole.fromWire(textOf(membership, "Role") or "Member")
            state = CircleState.fromWire(textOf(membership, "State") or "Accepted")
        except CircleProtocolError:
            continue
        representative = representatives.get(circleId)
        representativeId = representative.contactId if representative else None
        if representativeId:
            listing.representativeIds[circleId] = representativeId
        if state is CircleState.ACCEPTED:
            listing.circles[circleId] = Circle(
                circleId, name, role=role, state=state, representativeId=representativeId
            )
        elif state is CircleState.WAITING_RESPONSE and representative is not None:
            listing.invitations[circleId] = CircleInvitation(
                circleId=circleId,
                name=name,
                representativeId=representative.contactId or circleId,
                inviterEmail=representative.inviterEmail,
                inviterName=representative.inviterName,
                message=representative.message,
            )
    return listing


@dataclass
class CircleBook:
    """
    A circle's member book.

    @ivar members: by lower-case e-mail.
    @ivar name: the circle's name from its C{Me} contact, if present.
    """

    circleId: str
    members: dict[str, CircleMember] = field(default_factory=dict)
    name: str = ""

    def contactIdOf(self, email: str) -> Optional[str]:
        member = self.members.get(email.strip().lower())
        return member.contactId if member is not None else None


def parseCircleBook(body: Element, circleId: str) -> CircleBook:
    """
    Read a circle's member book: C{Live}/C{LivePending} contacts with a
    C{NetworkInfo} of relationship type 5 giving role and state.

    @raise ServiceError: not an C{ABFindContactsPaged} answer, it has no
        C{Me} contact for the circle (MSNPSharp refuses such a circle too),
        or its C{Ab/abId} names another book.
    """
    circleId = normalizeCircleId(circleId)
    result = _findResult(body)
    abId = textOf(result, "Ab", "abId").strip().lower()
    if abId and abId != circleId:
        raise ServiceError(f"circle book: the answer is for book {abId[:60]!r}")
    book = CircleBook(circleId)
    sawMe = False
    for contact in _under(result, "Contacts", "Contact"):
        info = child(contact, "contactInfo")
        if info is None:
            continue
        contactType = textOf(info, "contactType").strip()
        if contactType == "Me":
            sawMe = True
            book.name = textOf(info, "displayName")
            continue
        email = textOf(info, "passportName").strip().lower()
        if "@" not in email or contactType not in ("Live", "LivePending"):
            continue
        role, state = CircleRole.MEMBER, (
            CircleState.WAITING_RESPONSE if contactType == "LivePending" else CircleState.ACCEPTED
        )
        for network in iterByName(info, "NetworkInfo"):
            try:
                roleText = textOf(network, "RelationshipRole").strip()
                stateText = textOf(network, "RelationshipState").strip()
                role = CircleRole.fromWire(roleText) if roleText else role
                state = CircleState.fromWire(stateText) if stateText else state
            except CircleProtocolError:
                pass
            break
        if state in (CircleState.LEFT, CircleState.REJECTED):
            continue
        book.members[email] = CircleMember(
            email=email,
            role=role,
            state=state,
            displayName=textOf(info, "displayName"),
            contactId=textOf(contact, "contactId").strip() or None,
        )
    if not sawMe:
        raise ServiceError("circle book has no Me contact for the circle")
    return book


# -- the client ----------------------------------------------------------------------


class CircleService:
    """
    The circle calls, made through the session's existing ABCH clients (so
    they share its cache key, ticket and ticket renewal).
    """

    def __init__(self, sharing: ABCHService, addressBook: ABCHService) -> None:
        """
        @param sharing: the session's C{SharingService.asmx} client.
        @param addressBook: the session's C{abservice.asmx} client.
        """
        self.sharing = sharing
        self.addressBook = addressBook

    def __repr__(self) -> str:
        return f"<CircleService {self.sharing.url} {self.addressBook.url}>"

    def createCircle(self, name: str, publicDisplayName: str = "") -> "Deferred[str]":
        """
        @return: a L{Deferred} firing with the new circle's id.
        """
        return self.sharing.call("CreateCircle", createCircleBody(name, publicDisplayName), SCENARIO_SAVE).addCallback(
            parseCreateCircleResponse
        )

    def invite(self, circleId: str, email: str, message: Optional[str] = None) -> "Deferred[str]":
        """
        Invite C{email}: C{CreateContact} in the circle's book, then
        C{ManageWLConnection} for the new contact.

        @return: a L{Deferred} firing with the invitee's contact id in the
            circle's book; an L{msnp.soap.envelope.ABCHFault} with
            C{errorCode} C{InvalidPassportUser} or C{ContactAlreadyExists}
            says why it was refused.
        """

        def connect(contactId: str) -> "Deferred[str]":
            body = manageConnectionBody(contactId, ACTION_CONNECT, CircleRole.MEMBER, circleId, message)
            return (
                self.addressBook.call("ManageWLConnection", body, SCENARIO_INVITE)
                .addCallback(checkManageConnectionResponse)
                .addCallback(lambda _: contactId)
            )

        return (
            self.addressBook.call("CreateContact", createContactBody(circleId, email), SCENARIO_INVITE)
            .addCallback(parseCreateContactResponse)
            .addCallback(connect)
        )

    def respond(self, invitation: CircleInvitation, accept: bool) -> "Deferred[None]":
        """
        Accept or decline an invitation (C{ManageWLConnection} on the
        personal book, addressed to the hidden representative).
        """
        body = manageConnectionBody(
            invitation.representativeId, ACTION_CONNECT if accept else ACTION_DECLINE, CircleRole.NONE
        )
        return self.addressBook.call("ManageWLConnection", body, SCENARIO_STATUS).addCallback(
            checkManageConnectionResponse
        )

    def leave(self, circleId: str, ownContactId: str) -> "Deferred[None]":
        """
        Leave a circle; the caller sends the circle C{RML} afterwards.
        """
        return self.addressBook.call(
            "BreakConnection", breakConnectionBody(circleId, ownContactId), SCENARIO_LEAVE
        ).addCallback(checkBreakConnectionResponse)

    def findCircleBook(self, circleId: str, scenario: str = "Initial") -> "Deferred[CircleBook]":
        """
        Download a circle's member book.
        """
        return self.addressBook.call("ABFindContactsPaged", circleBookBody(circleId), scenario).addCallback(
            parseCircleBook, circleId
        )
