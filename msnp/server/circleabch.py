# -*- test-case-name: test.test_server_circles -*-
"""
The ABCH side of circles on the local network: the handlers of
C{CreateCircle} (Sharing), C{CreateContact}, C{ManageWLConnection},
C{BreakConnection} and the circle member book (C{abservice.asmx}), and the
circle parts of the personal book's C{ABFindContactsPaged} answer
(supplement Q.4.2, Q.4.10).

Each handler is a function of (registry, caller, method element) returning
a L{CircleCallResult}: the response body and what changed, so the ABCH
resource only dispatches and the notification server only notifies.
Refusals raise L{CircleFault}, which the resource answers as a SOAP fault.
Every value written into a response is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from msnp.circles import CIRCLE_DOMAIN, CircleRole, CircleState, isCircleId, normalizeCircleId
from msnp.server.circles import CircleRecord, CircleRefused, CircleRegistry
from msnp.namespaces import AB_NS
from msnp.xmlsafe import escapeText, findPath, textOf


class CircleFault(Exception):
    """
    A circle call refused with a SOAP fault.

    @ivar errorCode: the C{detail/errorcode}.
    @ivar httpStatus: 500 as SOAP 1.1 prescribes.
    """

    def __init__(self, errorCode: str, message: str, httpStatus: int = 500) -> None:
        super().__init__(message)
        self.errorCode = errorCode
        self.message = message
        self.httpStatus = httpStatus


@dataclass(frozen=True)
class MemberInfo:
    """
    What the circle handlers need to know of an account.
    """

    email: str
    cid: int = 0
    displayName: str = ""


#: Finds an account of the local network by address (L{None}: no such account).
Directory = Callable[[str], Optional[MemberInfo]]


@dataclass(frozen=True)
class CircleCallResult:
    """
    A handled circle call.

    @ivar body: the C{...Response} element as XML text.
    @ivar ownChanged: accounts whose own circle memberships changed; their
        places get the C{ABCHInternal} C{NOT} (Q.4.9).
    @ivar circleChanged: C{(account, circleId)} pairs that get the circle
        C{NOT}: the members of a circle that changed.
    @ivar left: C{(circleId, account)} when a member left; the NS sends the
        remaining places L{msnp.server.circlerouting.leaveDeliveries}.
    """

    body: str
    ownChanged: tuple[str, ...] = ()
    circleChanged: tuple[tuple[str, str], ...] = ()
    left: Optional[tuple[str, str]] = None


def _refused(refusal: CircleRefused) -> CircleFault:
    return CircleFault(refusal.errorCode, refusal.message)


def _text(element: Optional[Element], *names: str) -> str:
    return textOf(element, *names).strip()


def _circleOf(method: Element) -> str:
    circleId = _text(method, "abHandle", "ABId")
    if not isCircleId(circleId):
        raise CircleFault("InvalidArgument", "abHandle/ABId is not a circle id.")
    return normalizeCircleId(circleId)


def _members(record: CircleRecord, exclude: str) -> tuple[tuple[str, str], ...]:
    return tuple((email, record.circleId) for email in record.accepted() if email != exclude)


def createCircle(registry: CircleRegistry, caller: MemberInfo, method: Element) -> CircleCallResult:
    """
    C{CreateCircle}: the values Escargot requires, else C{InvalidArgument}.
    """
    properties = findPath(method, "properties")
    if (
        _text(properties, "Domain") != "1"
        or _text(properties, "HostedDomain").lower() != CIRCLE_DOMAIN
        or _text(properties, "Type") != "2"
        or _text(properties, "IsPresenceEnabled").lower() not in ("true", "false")
    ):
        raise CircleFault("InvalidArgument", "Unsupported circle properties.")
    try:
        record = registry.create(caller.email, _text(properties, "DisplayName"))
    except CircleRefused as refusal:
        raise _refused(refusal) from None
    body = (
        f'<CreateCircleResponse xmlns="{AB_NS}"><CreateCircleResult>'
        f"<Id>{record.circleId}</Id></CreateCircleResult></CreateCircleResponse>"
    )
    return CircleCallResult(body, ownChanged=(caller.email,))


def createContact(
    registry: CircleRegistry, caller: MemberInfo, method: Element, directory: Directory
) -> CircleCallResult:
    """
    C{CreateContact} in a circle's book: the invitee's (not yet sent)
    entry. Unknown address → C{InvalidPassportUser}; already there →
    C{ContactAlreadyExists}.
    """
    circleId = _circleOf(method)
    email = _text(method, "contactHandle", "Email").lower()
    invitee = directory(email) if email else None
    if invitee is None:
        raise CircleFault("InvalidPassportUser", "No such account.")
    try:
        membership = registry.invite(caller.email, circleId, invitee.email, connected=False)
    except CircleRefused as refusal:
        raise _refused(refusal) from None
    body = (
        f'<CreateContactResponse xmlns="{AB_NS}"><CreateContactResult>'
        f"<contactId>{escapeText(membership.contactId)}</contactId><contactInfo>"
        f"<contactType>LivePending</contactType><passportName>{escapeText(invitee.email)}</passportName>"
        f"<displayName>{escapeText(invitee.displayName or invitee.email)}</displayName>"
        f"<CID>{invitee.cid}</CID></contactInfo><propertiesChanged />"
        "<fDeleted>false</fDeleted></CreateContactResult></CreateContactResponse>"
    )
    return CircleCallResult(body)


def _manageResult(contactId: str) -> str:
    return (
        f'<ManageWLConnectionResponse xmlns="{AB_NS}"><ManageWLConnectionResult>'
        f"<contactId>{escapeText(contactId)}</contactId><propertiesChanged />"
        "<fDeleted>false</fDeleted></ManageWLConnectionResult></ManageWLConnectionResponse>"
    )


def manageConnection(registry: CircleRegistry, caller: MemberInfo, method: Element) -> CircleCallResult:
    """
    C{ManageWLConnection}: with a circle C{abHandle}, send an invitation;
    without, accept (action 1) or decline (action 2) one, addressed to the
    hidden representative (whose contact id is the circle id here, as
    Escargot writes it).
    """
    contactId = _text(method, "contactId")
    action = _text(method, "action")
    if _text(method, "relationshipType") != "5" or action not in ("1", "2"):
        raise CircleFault("InvalidArgument", "Not a circle connection.")
    try:
        if findPath(method, "abHandle") is not None and _text(method, "abHandle", "ABId") != "00000000-0000-0000-0000-000000000000":
            circleId = _circleOf(method)
            if action != "1":
                raise CircleFault("InvalidArgument", "An invitation is action 1.")
            message = ""
            for annotation in method.iter():
                if annotation.tag.rpartition("}")[2] == "Annotation" and _text(annotation, "Name") == "MSN.IM.InviteMessage":
                    message = textOf(annotation, "Value")
            membership = registry.connect(caller.email, circleId, contactId, message)
            record = registry.require(circleId)
            return CircleCallResult(
                _manageResult(contactId),
                ownChanged=(membership.email,),
                circleChanged=_members(record, ""),
            )
        if not isCircleId(contactId):
            raise CircleFault("ContactDoesNotExist", "No such circle invitation.")
        circleId = normalizeCircleId(contactId)
        record = registry.respond(caller.email, circleId, accept=action == "1")
    except CircleRefused as refusal:
        raise _refused(refusal) from None
    return CircleCallResult(
        _manageResult(contactId), ownChanged=(caller.email,), circleChanged=_members(record, caller.email)
    )


def breakConnection(registry: CircleRegistry, caller: MemberInfo, method: Element) -> CircleCallResult:
    """
    C{BreakConnection}: leave a circle; only one's own contact id in the
    circle's book is accepted, and the only admin of a circle with other
    members cannot leave.
    """
    circleId = _circleOf(method)
    record = registry.get(circleId)
    own = record.membership(caller.email) if record is not None else None
    if own is None or own.contactId != _text(method, "contactId"):
        raise CircleFault("AccessDenied", "Only your own membership can be broken.")
    try:
        record = registry.leave(caller.email, circleId)
    except CircleRefused as refusal:
        raise _refused(refusal) from None
    return CircleCallResult(
        f'<BreakConnectionResponse xmlns="{AB_NS}" />',
        ownChanged=(caller.email,),
        circleChanged=_members(record, caller.email),
        left=(record.circleId, caller.email),
    )


# -- address-book parts ------------------------------------------------------------------


def circleResultXML(registry: CircleRegistry, caller: MemberInfo, stamp: str) -> str:
    """
    The C{<CircleResult>} of the personal book: one C{CircleInverseInfo}
    per circle the caller is in or (sent an invitation) invited to, and
    its C{CircleTicket} (escaped once, as the element's text).
    """
    infos = []
    records = registry.circlesOf(caller.email) + registry.invitationsOf(caller.email)
    for record in records:
        membership = record.membership(caller.email)
        assert membership is not None
        infos.append(
            "<CircleInverseInfo><Content><Handle>"
            f"<Id>{record.circleId}</Id></Handle><Info><Domain>1</Domain>"
            f"<HostedDomain>{CIRCLE_DOMAIN}</HostedDomain><Type>2</Type>"
            "<MembershipAccess>0</MembershipAccess><IsPresenceEnabled>true</IsPresenceEnabled>"
            "<RequestMembershipOption>2</RequestMembershipOption>"
            f"<DisplayName>{escapeText(record.name)}</DisplayName>"
            f"<ProfileLastUpdated>{stamp}</ProfileLastUpdated><Changes />"
            f"<CreateDate>{stamp}</CreateDate><LastUpdated>{stamp}</LastUpdated>"
            "</Info></Content><PersonalInfo><MembershipInfo><CirclePersonalMembership>"
            f"<Role>{membership.role.wireName}</Role><State>{membership.state.wireName}</State>"
            "</CirclePersonalMembership></MembershipInfo>"
            f"<Name>{escapeText(record.name)}</Name><IsNotMobileVisible>false</IsNotMobileVisible>"
            "<IsFavorite>false</IsFavorite><IsFamily>false</IsFamily><Changes />"
            "</PersonalInfo><Deleted>false</Deleted></CircleInverseInfo>"
        )
    ticket = registry.issueTicket(caller.email, caller.cid)
    return (
        f"<CircleResult><Circles>{''.join(infos)}</Circles>"
        f"<CircleTicket>{escapeText(ticket)}</CircleTicket></CircleResult>"
    )


def representativesXML(
    registry: CircleRegistry, caller: MemberInfo, directory: Directory, stamp: str
) -> str:
    """
    The hidden C{Circle} contacts of the personal book (one per circle in
    L{circleResultXML}), carrying the relationship state and the inviter.
    """
    parts = []
    for record in registry.circlesOf(caller.email) + registry.invitationsOf(caller.email):
        membership = record.membership(caller.email)
        assert membership is not None
        pending = membership.state is CircleState.WAITING_RESPONSE
        inviter = directory(membership.inviter) if membership.inviter else None
        inviterXML = ""
        if inviter is not None:
            inviterXML = (
                f"<InviterName>{escapeText(inviter.displayName or inviter.email)}</InviterName>"
                f"<InviterCID>{inviter.cid}</InviterCID><InviterEmail>{escapeText(inviter.email)}</InviterEmail>"
                f"<InviterMessage>{escapeText(membership.message)}</InviterMessage>"
            )
        role = CircleRole.PENDING if pending else CircleRole.NONE
        parts.append(
            f"<Contact><contactId>{record.circleId}</contactId><contactInfo>"
            f"<contactType>Circle</contactType><quickName>{escapeText(record.name)}</quickName>"
            f"<passportName>{record.circleId}@{CIRCLE_DOMAIN}</passportName>"
            f"<displayName>{escapeText(record.name)}</displayName><CID>{record.cid}</CID>"
            "<IsHidden>true</IsHidden><isMessengerUser>false</isMessengerUser>"
            "<NetworkInfoList><NetworkInfo><DomainId>1</DomainId><SourceId>WL</SourceId>"
            f"<DomainTag>{record.circleId}</DomainTag><RelationshipType>5</RelationshipType>"
            f"<RelationshipState>{int(membership.state)}</RelationshipState>"
            f"<RelationshipRole>{int(role)}</RelationshipRole>{inviterXML}"
            "</NetworkInfo></NetworkInfoList></contactInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Contact>"
        )
    return "".join(parts)


def isCircleBookRequest(method: Element) -> bool:
    """
    Whether an C{ABFindContactsPaged} asks for a circle's book (an
    C{abHandle} naming a circle) rather than the personal one.
    """
    return isCircleId(_text(method, "abHandle", "ABId"))


def circleBook(
    registry: CircleRegistry, caller: MemberInfo, method: Element, directory: Directory, stamp: str
) -> CircleCallResult:
    """
    C{ABFindContactsPaged} for a circle's member book: its C{Me} contact
    (the circle) and every accepted or invited member. Only members and
    invitees may read it (C{AccessDenied}).
    """
    circleId = _circleOf(method)
    record = registry.get(circleId)
    own = record.membership(caller.email) if record is not None else None
    if record is None or own is None or (own.state is not CircleState.ACCEPTED and not own.connected):
        raise CircleFault("AccessDenied", "Not a member of that circle.")
    contacts = [
        f"<Contact><contactId>{record.circleId}</contactId><contactInfo><contactType>Me</contactType>"
        f"<quickName>{escapeText(record.name)}</quickName>"
        f"<passportName>{record.circleId}@{CIRCLE_DOMAIN}</passportName>"
        f"<displayName>{escapeText(record.name)}</displayName><CID>{record.cid}</CID>"
        "</contactInfo><propertiesChanged /><fDeleted>false</fDeleted>"
        f"<lastChange>{stamp}</lastChange></Contact>"
    ]
    for membership in record.members.values():
        if membership.state is CircleState.WAITING_RESPONSE and not membership.connected:
            continue
        info = directory(membership.email) or MemberInfo(membership.email)
        contactType = "LivePending" if membership.state is CircleState.WAITING_RESPONSE else "Live"
        contacts.append(
            f"<Contact><contactId>{escapeText(membership.contactId)}</contactId><contactInfo>"
            f"<contactType>{contactType}</contactType><passportName>{escapeText(membership.email)}</passportName>"
            f"<displayName>{escapeText(info.displayName or membership.email)}</displayName>"
            f"<CID>{info.cid}</CID><NetworkInfoList><NetworkInfo><DomainId>1</DomainId>"
            "<SourceId>WL</SourceId><RelationshipType>5</RelationshipType>"
            f"<RelationshipState>{int(membership.state)}</RelationshipState>"
            f"<RelationshipRole>{int(membership.role)}</RelationshipRole>"
            "</NetworkInfo></NetworkInfoList></contactInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Contact>"
        )
    body = (
        f'<ABFindContactsPagedResponse xmlns="{AB_NS}"><ABFindContactsPagedResult>'
        f"<Contacts>{''.join(contacts)}</Contacts><Ab><abId>{record.circleId}</abId><abInfo>"
        "<AddressBookType>Group</AddressBookType></abInfo>"
        f"<lastChange>{stamp}</lastChange></Ab></ABFindContactsPagedResult></ABFindContactsPagedResponse>"
    )
    return CircleCallResult(body)


def circleNotificationPayload(email: str, circleId: str) -> bytes:
    """
    The circle C{NOT} of Q.4.9 for C{email}: re-read the circle.
    """
    inner = (
        '<NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><HasNewItem>true</HasNewItem>'
        f"<CircleId>{normalizeCircleId(circleId)}</CircleId></NotificationData>"
    )
    return (
        '<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com">'
        f'<TO pid="0x00000000:0x00000000" name="{escapeText(email)}"><VIA agent="messenger" /></TO>'
        '<MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" />'
        f"<BODY>{escapeText(inner)}</BODY></MSG></NOTIFICATION>"
    ).encode("utf-8")
