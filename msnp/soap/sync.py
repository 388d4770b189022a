# -*- test-case-name: test.test_soap_client -*-
"""
Merge the two ABCH downloads into the session's L{ContactList} and
L{Profile}, and decide what the initial C{ADL} says (reference sections
3.3–3.5).

The address book gives the forward list (contact ids, names, groups) and
the Me contact; the sharing service gives the Allow, Block, Reverse and
Pending bits. A contact may be known from either side only: someone who
added us but whom we never added is on Reverse/Pending and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from msnp.contacts import (
    MESSENGER_BOT,
    ROLE_LISTS,
    Contact,
    ContactList,
    Group,
    Lists,
    Profile,
    blpFromAnnotation,
    normalizeEmail,
)
from msnp.listpayload import ListEntry
from msnp.soap.addressbook import AddressBookResult
from msnp.soap.sharing import Member, MembershipResult


@dataclass
class SyncedList:
    """
    The result of a full ABCH sync: the contacts and the user's own profile.
    """

    contacts: ContactList
    profile: Profile


def mergeMember(contact: Contact, role: str, member: Member) -> None:
    """
    Put C{contact} on C{role}'s list with what the sharing service says of
    it: the membership id (a Pending one is needed to answer the request),
    the CID and the name when nothing better is known, and the invitation
    text of a Pending member. A full sync and the roster's refresh after a
    server-sent C{ADL} merge members the same way through this.
    """
    contact.lists |= ROLE_LISTS[role]
    if member.membershipId is not None:
        contact.membershipIds[role] = member.membershipId
    if contact.cid is None:
        contact.cid = member.cid
    if role == "Pending" and member.inviteMessage:
        contact.inviteMessage = member.inviteMessage
    if member.displayName and contact.displayName == normalizeEmail(contact.email):
        contact.displayName = member.displayName


def buildContactList(
    membership: MembershipResult, addressBook: AddressBookResult, ownEmail: str
) -> SyncedList:
    """
    Build the contact list and profile from a C{FindMembership} and an
    C{ABFindContactsPaged} result.

    Rules: the forward list is every address-book contact other than Me
    with C{isMessengerUser}; the role bits come from the memberships;
    membership ids are kept per role (Pending ones are needed to accept or
    decline); an address on both Allow and Block keeps Block only (the
    server refuses the combination); the user's own address is never a
    contact. Contacts appear address-book first, then membership-only ones.

    @param ownEmail: the signed-in account.
    """
    own = normalizeEmail(ownEmail)
    contacts = ContactList(groups=[Group(g.groupId, g.name) for g in addressBook.groups])

    for entry in addressBook.contacts:
        email = normalizeEmail(entry.email)
        if email == own or not entry.isMessengerUser or entry.contactType == "Circle":
            # (A circle's hidden representative is a circle, not a contact.)
            continue
        existing = contacts.get(email)
        if existing is not None:
            existing.groupIds |= set(entry.groupIds)
            continue
        listed = Contact(
            email=email,
            displayName=entry.displayName or email,
            network=entry.network,
            cid=entry.cid,
            contactId=entry.contactId,
            lists=Lists.FORWARD,
            isMessengerUser=True,
        )
        if entry.groupIds:
            # (Otherwise the contact's empty set is built when first read.)
            listed.groupIds = set(entry.groupIds)
        contacts.add(listed)

    for role in ROLE_LISTS:
        for email, member in membership.members(role).items():
            if email == own:
                continue
            contact = contacts.get(email)
            if contact is None:
                contact = contacts.add(
                    Contact(
                        email=email,
                        displayName=member.displayName or email,
                        network=member.network,
                        cid=member.cid,
                    )
                )
            mergeMember(contact, role, member)

    for contact in contacts:
        if contact.isBlocked and contact.isAllowed:
            contact.lists &= ~Lists.ALLOW

    me = addressBook.me
    annotations = dict(me.annotations) if me is not None else {}
    fresh = not addressBook.contacts and not any(
        membership.members(role) for role in ("Allow", "Block")
    )
    profile = Profile(
        email=own,
        displayName=(me.displayName if me is not None and me.displayName else own),
        cid=me.cid if me is not None else None,
        blp=blpFromAnnotation(annotations.get("MSN.IM.BLP"), freshAccount=fresh),
        mpop=annotations.get("MSN.IM.MPOP", "1").strip() != "0",
        gtc=annotations.get("MSN.IM.GTC", "1").strip() != "0",
        annotations=annotations,
    )
    return SyncedList(contacts=contacts, profile=profile)


def initialListEntries(contactList: ContactList) -> list[ListEntry]:
    """
    What the initial C{ADL} must say: every contact with a forward, allow
    or block bit, with those bits only. A forward-list contact that is
    neither allowed, blocked nor pending is put on the allow list as well,
    because the server wants an explicit decision (reference section 3.5);
    a pending one is left for the user to accept or decline.
    C{messenger@microsoft.com} is never listed.
    """
    entries: list[ListEntry] = []
    for contact in contactList:
        if normalizeEmail(contact.email) == MESSENGER_BOT:
            continue
        bits = contact.lists & (Lists.FORWARD | Lists.ALLOW | Lists.BLOCK)
        if bits == Lists.FORWARD and not contact.isPending:
            bits |= Lists.ALLOW
        if not bits:
            continue
        entries.append(ListEntry(normalizeEmail(contact.email), Lists(bits), contact.network))
    return entries


def applyMembershipDelta(base: MembershipResult, delta: MembershipResult) -> MembershipResult:
    """
    What a full C{FindMembership} would have returned, from the previous
    full (or merged) result C{base} and a C{deltasOnly} answer C{delta}
    sent since C{base.lastChange}: members the delta lists replace the old
    ones, members it marks deleted leave their role. C{base} is not
    changed.
    """
    roles = {role: dict(members) for role, members in base.roles.items()}
    for role, emails in delta.deleted.items():
        members = roles.setdefault(role, {})
        for email in emails:
            members.pop(email, None)
    for role, members in delta.roles.items():
        roles.setdefault(role, {}).update(members)
    return MembershipResult(roles=roles, lastChange=delta.lastChange or base.lastChange)


def applyAddressBookDelta(base: AddressBookResult, delta: AddressBookResult) -> AddressBookResult:
    """
    What a full C{ABFindContactsPaged} would have returned, from the
    previous full (or merged) result C{base} and a C{DeltasOnly} answer
    C{delta} sent since C{base.lastChange}: contacts and groups are matched
    by id, the delta's versions replace the old ones, deleted ids
    (C{fDeleted}) leave, new ones are appended; the Me contact is the
    delta's when it sent one. C{base} is not changed.
    """
    contacts = {c.contactId: c for c in base.contacts}
    for contactId in delta.deletedContactIds:
        contacts.pop(contactId, None)
    for contact in delta.contacts:
        contacts[contact.contactId] = contact
    groups = {g.groupId: g for g in base.groups}
    for groupId in delta.deletedGroupIds:
        groups.pop(groupId, None)
    for group in delta.groups:
        groups[group.groupId] = group
    me = delta.me if delta.me is not None else base.me
    if me is not None and me.contactId in delta.deletedContactIds:
        me = None
    return AddressBookResult(
        me=me,
        contacts=list(contacts.values()),
        groups=list(groups.values()),
        lastChange=delta.lastChange or base.lastChange,
        circleTicket=delta.circleTicket if delta.circleTicket is not None else base.circleTicket,
        circles=delta.circles if delta.circles is not None else base.circles,
    )
