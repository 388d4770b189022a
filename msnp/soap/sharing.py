# -*- test-case-name: test.test_soap_client -*-
"""
The ABCH sharing service: who is on which role list (reference section 3.3).

Memberships say which addresses are on the Allow, Block, Reverse and
Pending lists of the Messenger service; the forward list lives in the
address book instead (L{msnp.soap.addressbook}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred, fail

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO, normalizeEmail
from msnp.errors import ServiceError
from msnp.namespaces import AB_NS, XSI_NS
from msnp.soap.envelope import ABCHService, annotationsOf, isTrue, optionalInt
from msnp.xmlsafe import child, escapeText, firstChildren, localName, textOf

#: The role names of the Messenger service this library understands.
ROLES = ("Allow", "Block", "Reverse", "Pending")

_SERVICE_TYPES = ("Messenger", "Invitation", "SocialNetwork", "Space", "Profile")


@dataclass(slots=True)
class Member:
    """
    One member of a role list. Slotted: the delta sync keeps every member
    of the last answer for the session's lifetime (issue 13).

    @ivar membershipId: the service's id of this membership (needed to
        delete a Pending one); L{None} when the server sent no integer id.
    @ivar inviteMessage: the C{MSN.IM.InviteMessage} annotation: what the
        person typed when adding us (Pending members).
    """

    email: str
    membershipId: Optional[int] = None
    displayName: str = ""
    network: int = NETWORK_PASSPORT
    cid: Optional[int] = None
    inviteMessage: Optional[str] = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt from its fields in order: the roster pickles its
        # delta-sync base (msnp.rostersync), and this loads several times
        # faster than the slots' state would.
        return (type(self), tuple(getattr(self, name) for name in self.__slots__))


@dataclass
class MembershipResult:
    """
    The Messenger memberships of C{FindMembership}.

    @ivar roles: role name (C{Allow}, C{Block}, C{Reverse}, C{Pending}, and
        any other role the service returned) to a mapping of lower-cased
        address to L{Member}. The four known roles are always present.
    @ivar lastChange: the service's C{LastChange}, for a later delta sync.
    @ivar deleted: role name to the lower-cased addresses a delta sync
        reported as removed from it (C{Deleted} true); empty in a full sync.
    """

    roles: dict[str, dict[str, Member]] = field(
        default_factory=lambda: {role: {} for role in ROLES}
    )
    lastChange: Optional[str] = None
    deleted: dict[str, set[str]] = field(default_factory=dict)

    def members(self, role: str) -> dict[str, Member]:
        """
        The members of C{role} (empty for a role the service did not send).
        """
        return self.roles.get(role, {})

    def emails(self, role: str) -> set[str]:
        """
        The lower-cased addresses of C{role}, for membership tests that
        need no member details.
        """
        return set(self.members(role))


def _each(holder: Optional[Element], name: str) -> list[Element]:
    """
    The C{name} children of C{holder} (none if it is absent), in one scan.
    """
    if holder is None:
        return []
    return [c for c in holder if c.tag.rpartition("}")[2] == name]


def _member(element: Element) -> tuple[Optional[Member], bool]:
    """
    One C{Member}, or L{None} for a kind this library does not handle
    (phone, circle), and whether it is marked C{Deleted} (delta syncs).
    """
    # Each field is the first child of that name; one pass finds them all
    # (a membership list holds every contact, several times over).
    fields = firstChildren(element)
    deleted = isTrue(textOf(fields.get("Deleted")))
    kind = ""
    for name, value in element.attrib.items():
        if localName(name) == "type":
            kind = value.rsplit(":", 1)[-1]
    holder = fields.get("Annotations")
    annotations = annotationsOf(holder if holder is not None else fields.get("annotations"))
    passport = textOf(fields.get("PassportName")).strip()
    email = textOf(fields.get("Email")).strip()
    if kind == "PassportMember" or (not kind and passport):
        address, network = passport, NETWORK_PASSPORT
    elif kind == "EmailMember" or (not kind and email):
        address = email
        buddyType = annotations.get("MSN.IM.BuddyType", "").strip().rstrip(":")
        network = optionalInt(buddyType) or NETWORK_YAHOO
    else:
        return None, deleted
    if "@" not in address:
        return None, deleted
    return Member(
        email=normalizeEmail(address),
        membershipId=optionalInt(textOf(fields.get("MembershipId"))),
        displayName=textOf(fields.get("DisplayName")).strip(),
        network=network,
        cid=optionalInt(textOf(fields.get("CID"))),
        inviteMessage=annotations.get("MSN.IM.InviteMessage"),
    ), deleted


def parseMembership(body: Element) -> MembershipResult:
    """
    Read a C{FindMembershipResponse} (or any element containing its
    C{Services}); only services of type C{Messenger} count.

    @raise ServiceError: the document has no C{FindMembershipResult}.
    """
    result_ = body if localName(body.tag) == "FindMembershipResult" else None
    if result_ is None:
        result_ = child(body, "FindMembershipResult")
    if result_ is None:
        raise ServiceError(f"FindMembership: unexpected response <{localName(body.tag)}>")
    result = MembershipResult()
    # One pass over the document: each element's fields are found in one
    # scan of its children (firstChildren), never by repeated searches.
    for service in _each(child(result_, "Services"), "Service"):
        fields = firstChildren(service)
        if textOf(fields.get("Info"), "Handle", "Type").strip() != "Messenger":
            continue
        lastChange = textOf(fields.get("LastChange")).strip()
        if lastChange:
            result.lastChange = lastChange
        for membership in _each(fields.get("Memberships"), "Membership"):
            parts = firstChildren(membership)
            role = textOf(parts.get("MemberRole")).strip()
            if not role:
                continue
            members = result.roles.setdefault(role, {})
            for element in _each(parts.get("Members"), "Member"):
                member, deleted = _member(element)
                if member is None:
                    continue
                if deleted:
                    result.deleted.setdefault(role, set()).add(member.email)
                    members.pop(member.email, None)
                else:
                    members[member.email] = member
    return result


def _memberElement(email: Optional[str], membershipId: Optional[int], network: int) -> str:
    state = "<State>Accepted</State>"
    if membershipId is not None:
        return (
            f'<Member xsi:type="PassportMember" xmlns:xsi="{XSI_NS}">'
            f"<Type>Passport</Type><MembershipId>{int(membershipId)}</MembershipId>{state}</Member>"
        )
    assert email is not None
    if network == NETWORK_PASSPORT:
        return (
            f'<Member xsi:type="PassportMember" xmlns:xsi="{XSI_NS}">'
            f"<Type>Passport</Type>{state}<PassportName>{escapeText(email)}</PassportName></Member>"
        )
    return (
        f'<Member xsi:type="EmailMember" xmlns:xsi="{XSI_NS}">'
        f"<Type>Email</Type>{state}<Email>{escapeText(email)}</Email>"
        "<Annotations><Annotation><Name>MSN.IM.BuddyType</Name>"
        f"<Value>{int(network):02d}:</Value></Annotation></Annotations></Member>"
    )


def _membershipBody(action: str, role: str, member: str) -> str:
    return (
        f'<{action} xmlns="{AB_NS}">'
        "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle>"
        "<memberships><Membership>"
        f"<MemberRole>{escapeText(role)}</MemberRole>"
        f"<Members>{member}</Members>"
        f"</Membership></memberships></{action}>"
    )


class SharingService(ABCHService):
    """
    Client of C{SharingService.asmx}: read memberships, add and delete members.
    """

    __slots__ = ()

    def findMembership(
        self, scenario: str = "Initial", lastChange: Optional[str] = None
    ) -> "Deferred[MembershipResult]":
        """
        Download the memberships.

        @param scenario: C{Initial} at login, C{MessengerPendingList} after
            a server-initiated C{ADL}.
        @param lastChange: for a delta sync, the previous
            L{MembershipResult.lastChange}; a full download by default.
        """
        delta = ""
        if lastChange:
            delta = (
                "<View>Full</View><deltasOnly>true</deltasOnly>"
                f"<lastChange>{escapeText(lastChange)}</lastChange>"
            )
        types = "".join(f"<ServiceType>{t}</ServiceType>" for t in _SERVICE_TYPES)
        body = (
            f'<FindMembership xmlns="{AB_NS}"><serviceFilter><Types>{types}</Types>'
            f"</serviceFilter>{delta}</FindMembership>"
        )
        return self.call("FindMembership", body, scenario).addCallback(parseMembership)

    def addMember(
        self, role: str, email: str, scenario: str, network: int = NETWORK_PASSPORT
    ) -> "Deferred[None]":
        """
        Put C{email} on the role list C{role} (C{Allow}, C{Block}, ...).

        @param network: 1 for a Passport member; another network id sends an
            C{EmailMember} tagged with that network (32 for Yahoo!).
        """
        body = _membershipBody("AddMember", role, _memberElement(email, None, network))
        return self.call("AddMember", body, scenario).addCallback(lambda _: None)

    def deleteMember(
        self,
        role: str,
        email: Optional[str] = None,
        membershipId: Optional[int] = None,
        scenario: str = "BlockUnblock",
        network: int = NETWORK_PASSPORT,
    ) -> "Deferred[None]":
        """
        Take a member off the role list C{role}, by address or, as a Pending
        membership must be, by membership id (the id wins when both are given).

        @return: a L{Deferred <twisted.internet.defer.Deferred>} failing with L{ValueError} when neither
            C{email} nor C{membershipId} is given.
        """
        if email is None and membershipId is None:
            return fail(ValueError("deleteMember needs an address or a membership id"))
        body = _membershipBody("DeleteMember", role, _memberElement(email, membershipId, network))
        return self.call("DeleteMember", body, scenario).addCallback(lambda _: None)
