# -*- test-case-name: test.test_server_abch -*-
"""
The local network's sharing service (C{SharingService.asmx}): the four
role lists (Allow, Block, Reverse, Pending) of an account, read with
C{FindMembership} and changed with C{AddMember}/C{DeleteMember}
(reference sections 3.8 and 8.3, step H2).

It is one half of L{msnp.server.abch.ABCHResource}, which checks the
ticket and wraps the body this returns in the SOAP envelope.
"""

from __future__ import annotations

from typing import Callable, Optional
from xml.etree.ElementTree import Element

from msnp.server.accounts import ALLOW, BLOCK, PENDING, REVERSE, ROLES, Account, Membership, isValidAddress, normalizeEmail
from msnp.server.abchdelta import STAMP, answerItems, deltaRequest
from msnp.server.soapservice import ResourceService, ServiceFault, emptyResponse, isoTime, textAt, under
from msnp.namespaces import AB_NS
from msnp.xmlsafe import escapeText


class SharingService(ResourceService):
    """
    The actions of C{SharingService.asmx}, over the resource's store.
    """

    def actions(self) -> dict[str, Callable[[Account, Element], str]]:
        return {
            "FindMembership": self.findMembership,
            "AddMember": self.addMember,
            "DeleteMember": self.deleteMember,
        }


    def _memberXML(self, account: Account, role: str, membership: Membership, stamp: str) -> str:
        other = self.store.get(membership.email)
        name = membership.displayName or (other.displayName if other is not None else "")
        displayName = f"<DisplayName>{escapeText(name)}</DisplayName>" if name else ""
        annotations = ""
        invite = self.resource.extrasFor(account).inviteMessages.get(membership.email)
        if role == PENDING and invite:
            annotations = (
                "<Annotations><Annotation><Name>MSN.IM.InviteMessage</Name>"
                f"<Value>{escapeText(invite)}</Value></Annotation></Annotations>"
            )
        return (
            '<Member xsi:type="PassportMember">'
            f"<MembershipId>{membership.membershipId}</MembershipId><Type>Passport</Type>"
            f"{displayName}<State>Accepted</State>{annotations}<Deleted>false</Deleted>"
            f"<LastChanged>{stamp}</LastChanged><JoinedDate>{stamp}</JoinedDate>"
            "<ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Changes />"
            f"<PassportName>{escapeText(membership.email)}</PassportName>"
            "<IsPassportNameHidden>false</IsPassportNameHidden><PassportId>0</PassportId>"
            f"<CID>{other.cid if other is not None else 0}</CID><PassportChanges />"
            "<LookedupByCID>false</LookedupByCID></Member>"
        )

    def findMembership(self, account: Account, method: Element) -> str:
        """
        C{FindMembership}: one Messenger service with the four role lists;
        with C{deltasOnly} and a C{lastChange}, only the members added,
        changed or (marked C{Deleted}) removed since that answer
        (L{msnp.server.abchdelta}).
        """
        extras = self.resource.extrasFor(account)
        items: dict[str, str] = {}
        for role in ROLES:
            for m in account.memberships[role].values():
                items[f"{role} {m.email}"] = self._memberXML(account, role, m, STAMP)
        journal = self.resource.membershipDeltas
        since = deltaRequest(method, "deltasOnly", "lastChange")
        items, stamp, isDelta = answerItems(
            journal, account.email, since, isoTime(extras.lastChange), items,
            lambda: self.resource.moveLastChange(account), "Deleted",
        )
        byRole: dict[str, list[str]] = {}
        for key, xml in items.items():
            byRole.setdefault(key.split(" ", 1)[0], []).append(xml)
        memberships = []
        for role in ROLES:
            if isDelta and role not in byRole:
                continue
            members = "".join(byRole.get(role, ())).replace(STAMP, stamp)
            memberships.append(
                f"<Membership><MemberRole>{role}</MemberRole><Members>{members}</Members>"
                "<MembershipIsComplete>true</MembershipIsComplete></Membership>"
            )
        return (
            f'<FindMembershipResponse xmlns="{AB_NS}"><FindMembershipResult><Services><Service>'
            f"<Memberships>{''.join(memberships)}</Memberships>"
            "<Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId /></Handle>"
            "<InverseRequired>false</InverseRequired><AuthorizationCriteria>Everyone</AuthorizationCriteria>"
            "<IsBot>false</IsBot></Info><Changes />"
            f"<LastChange>{stamp}</LastChange><Deleted>false</Deleted></Service></Services>"
            "<OwnerNamespace><Info><Handle><Id>00000000-0000-0000-0000-000000000000</Id>"
            "<IsPassportNameHidden>false</IsPassportNameHidden><CID>0</CID></Handle>"
            f"<CreatorPuid>0</CreatorPuid><CreatorCID>{account.cid}</CreatorCID>"
            f"<CreatorPassportName>{escapeText(account.email)}</CreatorPassportName>"
            "<CircleAttributes><IsPresenceEnabled>false</IsPresenceEnabled><IsEvent>false</IsEvent>"
            "<Domain>WindowsLive</Domain></CircleAttributes><MessengerApplicationServiceCreated>false"
            "</MessengerApplicationServiceCreated></Info><Changes />"
            f"<CreateDate>{isoTime(extras.created)}</CreateDate><LastChange>{stamp}</LastChange>"
            "</OwnerNamespace></FindMembershipResult></FindMembershipResponse>"
        )

    def _memberships(self, method: Element) -> list[tuple[str, list[Element]]]:
        found = []
        for membership in under(method, "memberships", "Membership"):
            role = textAt(membership, "MemberRole")
            if role not in ROLES:
                raise ServiceFault("InvalidArgument", f"Unknown member role {role!r}.")
            found.append((role, under(membership, "Members", "Member")))
        if not found:
            raise ServiceFault("InvalidArgument", "No membership in the request.")
        return found

    def _memberAddress(self, member: Element) -> str:
        address = normalizeEmail(textAt(member, "PassportName") or textAt(member, "Email"))
        if not isValidAddress(address):
            raise ServiceFault("InvalidArgument", "The member has no valid address.")
        return address

    def addMember(self, account: Account, method: Element) -> str:
        """
        C{AddMember}: Allow and Block change the store (they exclude each
        other). Reverse and Pending are the server's to maintain: adding one
        takes effect only when it is true (the member has this account on
        its forward list; this is how a client rolls back a deleted Pending
        membership) and is acknowledged without effect otherwise.
        """
        changes: list[tuple[str, str]] = []
        for role, members in self._memberships(method):
            if not members:
                raise ServiceFault("InvalidArgument", "No member in the membership.")
            for member in members:
                changes.append((role, self._memberAddress(member)))
        cap = self.resource.limits.membershipsPerAccount
        for role in {role for role, _ in changes}:
            new = {address for r, address in changes if r == role and address not in account.memberships[role]}
            if len(account.memberships[role]) + len(new) > cap:
                raise ServiceFault("QuotaLimitReached", f"The {role} list holds at most {cap} members.")
        for role, address in changes:
            other = self.store.get(address)
            name = other.displayName if other is not None else ""
            if role in (ALLOW, BLOCK):
                self.store.setRole(account, role, address, name)
            elif other is not None and other.onForwardList(account.email):
                # Reverse and Pending can only be restored to the truth:
                # the other account really has this one on its list.
                self.store.setRole(account, role, address, name)
        return emptyResponse("AddMember")

    def deleteMember(self, account: Account, method: Element) -> str:
        """
        C{DeleteMember}: by C{MembershipId} or by address. Deleting a
        Reverse membership is acknowledged without effect (the server keeps
        that list).
        """
        changes: list[tuple[str, str]] = []
        # One pass per role over the list, then a look-up per id: a request
        # naming many ids costs the list's length once, not once per id.
        byId: dict[str, dict[str, str]] = {}
        for role, members in self._memberships(method):
            if not members:
                raise ServiceFault("InvalidArgument", "No member in the membership.")
            for member in members:
                idText = textAt(member, "MembershipId")
                found: Optional[str] = None
                if idText:
                    index = byId.get(role)
                    if index is None:
                        index = byId[role] = {
                            str(m.membershipId): key for key, m in account.memberships[role].items()
                        }
                    found = index.get(idText)
                else:
                    address = self._memberAddress(member)
                    if address in account.memberships[role]:
                        found = address
                if found is None:
                    raise ServiceFault("MemberDoesNotExist", f"The member is not on the {role} list.")
                changes.append((role, found))
        for role, address in changes:
            if role != REVERSE:
                self.store.clearRole(account, role, address)
                if role == PENDING:
                    self.resource.extrasFor(account).inviteMessages.pop(address, None)
        return emptyResponse("DeleteMember")
