# -*- test-case-name: test.test_server_abch -*-
"""
The local network's address-book service (C{abservice.asmx}): the
contacts, groups and own profile of an account (reference sections 3.9
and 8.3, step H3).

It is one half of L{msnp.server.abch.ABCHResource}, which checks the
ticket and wraps the body this returns in the SOAP envelope.
"""

from __future__ import annotations

from typing import Callable, Optional
from xml.etree.ElementTree import Element

import functools

from msnp.contacts import NETWORK_YAHOO
from msnp.server.accounts import ALLOW, BLOCK, PENDING, REVERSE, Account, AddressBookEntry, isValidAddress, normalizeEmail
from msnp.server.abchdelta import STAMP, answerItems, deltaRequest
from msnp.server.soapservice import ResourceService, ServiceFault, emptyResponse, guidResponse, isTrue, isoTime, textAt, under
from msnp.namespaces import AB_NS, PERSONAL_AB_ID
from msnp.xmlsafe import child, escapeText, findPath, textOf

USER_GROUP_TYPE = "c8529ce2-6ead-434d-881f-341e17db3ff8"
#: The longest group name the clients of the time allowed.
MAX_GROUP_NAME = 61
#: Characters kept of an annotation's name or value (a PSM-sized text).
MAX_ANNOTATION_VALUE = 1024


class AddressBookService(ResourceService):
    """
    The actions of C{abservice.asmx}, over the resource's store.
    """

    def actions(self) -> dict[str, Callable[[Account, Element], str]]:
        return {
            "ABFindContactsPaged": self.findContactsPaged,
            "ABFindAll": self.findAll,
            "ABAdd": self.abAdd,
            "ABContactAdd": self.contactAdd,
            "ABContactDelete": self.contactDelete,
            "ABContactUpdate": self.contactUpdate,
            "ABGroupAdd": self.groupAdd,
            "ABGroupDelete": self.groupDelete,
            "ABGroupUpdate": self.groupUpdate,
            "ABGroupContactAdd": self.groupContactAdd,
            "ABGroupContactDelete": self.groupContactDelete,
            "AddDynamicItem": self.dynamicItem("AddDynamicItem"),
            "UpdateDynamicItem": self.dynamicItem("UpdateDynamicItem"),
        }

    @staticmethod
    def dynamicItem(action: str) -> Callable[[Account, Element], str]:
        """
        C{AddDynamicItem}/C{UpdateDynamicItem}: clients send them at sign-in
        and after a profile change to publish "what's new" items to their
        contacts (MSNPSharp, WLM 2009). The service answered an empty
        success; the local network has no activity feed, so nothing is
        stored and the answer is the same empty success, whatever the
        items (a fault here stops MSNPSharp's roaming sequence).
        """

        def answer(account: Account, method: Element) -> str:
            return emptyResponse(action)

        return answer


    def _meXML(self, account: Account, stamp: str) -> str:
        extras = self.resource.extrasFor(account)
        annotations = dict(extras.annotations)
        annotations["MSN.IM.BLP"] = "1" if account.blp == "AL" else "2"
        annotationXML = "".join(
            f"<Annotation><Name>{escapeText(k)}</Name><Value>{escapeText(v)}</Value></Annotation>"
            for k, v in sorted(annotations.items())
        )
        name = escapeText(account.displayName)
        return (
            f"<Contact><contactId>{extras.meContactId}</contactId><contactInfo>"
            f"<annotations>{annotationXML}</annotations><contactType>Me</contactType>"
            f"<quickName>{name}</quickName><passportName>{escapeText(account.email)}</passportName>"
            f"<IsPassportNameHidden>false</IsPassportNameHidden><displayName>{name}</displayName>"
            f"<puid>{account.puid}</puid><CID>{account.cid}</CID>"
            "<IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled>"
            "<isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>false</isSmtp>"
            "<hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState>"
            "<birthdate>0001-01-01T00:00:00</birthdate></contactInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Contact>"
        )

    def _contactXML(self, entry: AddressBookEntry, stamp: str) -> str:
        other = self.store.get(entry.email)
        groupIds = ""
        if entry.groupIds:
            groupIds = "<groupIds>" + "".join(
                f"<guid>{escapeText(g)}</guid>" for g in sorted(entry.groupIds)
            ) + "</groupIds>"
        name = escapeText(entry.displayName or entry.email)
        messenger = "true" if entry.isMessengerUser else "false"
        passport = f"<passportName>{escapeText(entry.email)}</passportName>"
        if other is not None and other.network == NETWORK_YAHOO:
            # A Yahoo! contact: no Passport name, a messenger-enabled
            # e-mail instead (how the ABCH lists federated contacts).
            passport = (
                "<emails><ContactEmail><contactEmailType>Messenger2</contactEmailType>"
                f"<email>{escapeText(entry.email)}</email><isMessengerEnabled>{messenger}</isMessengerEnabled>"
                "<Capability>0</Capability><MessengerEnabledExternally>false</MessengerEnabledExternally>"
                "<propertiesChanged /></ContactEmail></emails>"
            )
            messenger = "false"
        return (
            f"<Contact><contactId>{escapeText(entry.contactId)}</contactId><contactInfo>"
            f"<contactType>Regular</contactType><quickName>{name}</quickName>"
            f"{passport}"
            f"<IsPassportNameHidden>false</IsPassportNameHidden><displayName>{name}</displayName>"
            f"<puid>{other.puid if other is not None else 0}</puid>{groupIds}"
            f"<CID>{other.cid if other is not None else 0}</CID>"
            "<IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled>"
            f"<isMessengerUser>{messenger}</isMessengerUser><isFavorite>false</isFavorite>"
            "<isSmtp>false</isSmtp><hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState>"
            "<birthdate>0001-01-01T00:00:00</birthdate></contactInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Contact>"
        )

    def _items(self, account: Account) -> dict[str, str]:
        """
        The groups and contacts (the Me contact first) as snapshot items of
        L{msnp.server.abchdelta}: C{"group <id>"}/C{"contact <id>"} to the
        fragment, with L{STAMP} for the time.
        """
        extras = self.resource.extrasFor(account)
        items: dict[str, str] = {}
        for g in account.groups.values():
            items["group " + g.groupId] = (
                f"<Group><groupId>{escapeText(g.groupId)}</groupId><groupInfo><annotations><Annotation>"
                "<Name>MSN.IM.Display</Name><Value>1</Value></Annotation></annotations>"
                f"<groupType>{USER_GROUP_TYPE}</groupType><name>{escapeText(g.name)}</name>"
                "<IsNotMobileVisible>false</IsNotMobileVisible><IsPrivate>false</IsPrivate>"
                "<IsFavorite>false</IsFavorite></groupInfo><propertiesChanged />"
                f"<fDeleted>false</fDeleted><lastChange>{STAMP}</lastChange></Group>"
            )
        items["contact " + extras.meContactId] = self._meXML(account, STAMP)
        for entry in account.addressBook.values():
            items["contact " + entry.contactId] = self._contactXML(entry, STAMP)
        return items

    def _addressBookParts(self, account: Account, method: Optional[Element] = None) -> tuple[str, str, str]:
        """
        Groups, contacts and the C{Ab} element of an answer; for a
        C{DeltasOnly} request (C{method}) only what changed since its
        C{LastChanged} (refused with C{FullSyncRequired} when the journal
        no longer holds it).
        """
        extras = self.resource.extrasFor(account)
        items = self._items(account)
        journal = self.resource.addressBookDeltas
        since = deltaRequest(method, "DeltasOnly", "LastChanged") if method is not None else None
        items, stamp, _ = answerItems(
            journal, account.email, since, isoTime(extras.lastChange), items,
            lambda: self.resource.moveLastChange(account), "fDeleted",
        )
        groups = "".join(xml for key, xml in items.items() if key.startswith("group ")).replace(STAMP, stamp)
        contacts = "".join(xml for key, xml in items.items() if key.startswith("contact ")).replace(STAMP, stamp)
        ab = (
            f"<abId>{PERSONAL_AB_ID}</abId><abInfo><ownerPuid>{account.puid}</ownerPuid>"
            f"<OwnerCID>{account.cid}</OwnerCID><ownerEmail>{escapeText(account.email)}</ownerEmail>"
            "<fDefault>true</fDefault><joinedNamespace>false</joinedNamespace><IsBot>false</IsBot>"
            "<IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false</SubscribeExternalPartner>"
            "<NotifyExternalPartner>false</NotifyExternalPartner><AddressBookType>Individual</AddressBookType>"
            f"</abInfo><lastChange>{stamp}</lastChange>"
            "<DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged>"
            f"<createDate>{isoTime(extras.created)}</createDate><propertiesChanged />"
        )
        return groups, contacts, ab

    def findContactsPaged(self, account: Account, method: Element) -> str:
        """
        C{ABFindContactsPaged}: groups, the Me contact and every contact;
        with C{DeltasOnly} and a C{LastChanged} from an earlier answer, only
        what changed since, deleted items with C{fDeleted} true
        (L{msnp.server.abchdelta}).
        """
        groups, contacts, ab = self._addressBookParts(account, method)
        return (
            f'<ABFindContactsPagedResponse xmlns="{AB_NS}"><ABFindContactsPagedResult>'
            f"<Groups>{groups}</Groups><Contacts>{contacts}</Contacts>"
            "<CircleResult><Circles /></CircleResult>"
            f"<Ab>{ab}</Ab></ABFindContactsPagedResult></ABFindContactsPagedResponse>"
        )

    def findAll(self, account: Account, method: Element) -> str:
        """
        C{ABFindAll}, the MSNP15-era form of the same answer.
        """
        groups, contacts, ab = self._addressBookParts(account)
        return (
            f'<ABFindAllResponse xmlns="{AB_NS}"><ABFindAllResult>'
            f"<groups>{groups}</groups><contacts>{contacts}</contacts><ab>{ab}</ab>"
            "</ABFindAllResult></ABFindAllResponse>"
        )

    def abAdd(self, account: Account, method: Element) -> str:
        """
        C{ABAdd}: every local account already has its address book.
        """
        return f'<ABAddResponse xmlns="{AB_NS}"><ABAddResult>{PERSONAL_AB_ID}</ABAddResult></ABAddResponse>'

    def _entryById(self, account: Account, contactId: str, index: Optional[dict[str, AddressBookEntry]] = None) -> AddressBookEntry:
        """
        The entry with C{contactId}. A request naming several ids builds
        C{index} once (L{_contactIndex}) and looks each up in it, instead
        of scanning the address book per id.
        """
        if index is None:
            index = self._contactIndex(account)
        entry = index.get(contactId.strip().lower())
        if entry is None:
            raise ServiceFault("ContactDoesNotExist", "No contact with that id in the address book.")
        return entry

    def _contactIndex(self, account: Account) -> dict[str, AddressBookEntry]:
        return {entry.contactId.lower(): entry for entry in account.addressBook.values()}

    def _addContact(self, account: Account, info: Element, allowList: bool) -> AddressBookEntry:
        address = textAt(info, "passportName")
        if not address:
            for email in under(info, "emails", "ContactEmail"):
                address = textAt(email, "email")
                if address:
                    break
        address = normalizeEmail(address)
        if not isValidAddress(address):
            raise ServiceFault("InvalidPassportUser", "The address is not a valid Passport name.")
        other = self.store.get(address)
        if other is None or other is account:
            raise ServiceFault("InvalidPassportUser", f"{address} is not a user of this network.")
        cap = self.resource.limits.contactsPerAccount
        if address not in account.addressBook and len(account.addressBook) >= cap:
            raise ServiceFault("QuotaLimitReached", f"The address book holds at most {cap} contacts.")
        entry = self.store.addToAddressBook(account, address)
        if allowList and not account.hasRole(BLOCK, address):
            self.store.setRole(account, ALLOW, address, other.displayName)
        memberInfo = child(info, "MessengerMemberInfo")
        if memberInfo is not None:
            for annotation in under(memberInfo, "PendingAnnotations", "Annotation"):
                if textAt(annotation, "Name") == "MSN.IM.InviteMessage":
                    value = textOf(annotation, "Value")[:MAX_ANNOTATION_VALUE]
                    self.resource.extrasFor(other).inviteMessages[account.email] = value
            shownName = textAt(memberInfo, "DisplayName")
            if shownName:
                for role in (REVERSE, PENDING):
                    membership = other.memberships[role].get(account.email)
                    if membership is not None:
                        membership.displayName = shownName
        return entry

    def contactAdd(self, account: Account, method: Element) -> str:
        """
        C{ABContactAdd}: add to the forward list (idempotent: an address
        already there keeps its contact id), and to Allow when
        C{EnableAllowListManagement} is set and the address is not blocked.
        An address with no account here is refused with C{InvalidPassportUser}.
        """
        contacts = under(method, "contacts", "Contact")
        if not contacts:
            raise ServiceFault("InvalidArgument", "No contact in the request.")
        info = child(contacts[0], "contactInfo")
        if info is None:
            raise ServiceFault("InvalidArgument", "The contact has no contactInfo.")
        allowList = isTrue(textAt(method, "options", "EnableAllowListManagement"))
        entry = self._addContact(account, info, allowList)
        return guidResponse("ABContactAdd", entry.contactId)

    def contactDelete(self, account: Account, method: Element) -> str:
        """
        C{ABContactDelete}: by contact id; memberships are left as they are.
        """
        ids = [textAt(c, "contactId") for c in under(method, "contacts", "Contact")]
        if not ids:
            raise ServiceFault("InvalidArgument", "No contact in the request.")
        index = self._contactIndex(account)
        entries = [self._entryById(account, contactId, index) for contactId in ids]
        for entry in entries:
            self.store.removeFromAddressBook(account, entry.email)
        return emptyResponse("ABContactDelete")

    def contactUpdate(self, account: Account, method: Element) -> str:
        """
        C{ABContactUpdate}: the Me contact's display name and annotations
        (C{MSN.IM.BLP} C{1} → C{AL}, anything else → C{BL}), or a contact's
        stored display name and messenger flag.
        """
        updates: list[Callable[[], None]] = []
        extras = self.resource.extrasFor(account)
        index: Optional[dict[str, AddressBookEntry]] = None
        for contact in under(method, "contacts", "Contact"):
            info = child(contact, "contactInfo")
            contactId = textAt(contact, "contactId")
            isMe = (info is not None and textAt(info, "contactType") == "Me") or (
                contactId.lower() == extras.meContactId
            )
            if info is None:
                raise ServiceFault("InvalidArgument", "The contact has no contactInfo.")
            annotations = {
                textAt(a, "Name"): textOf(a, "Value")
                for a in under(info, "annotations", "Annotation")
                if textAt(a, "Name")
            }
            displayNameElement = child(info, "displayName")
            displayName = textOf(displayNameElement) if displayNameElement is not None else None
            if isMe:
                updates.append(functools.partial(self._updateMe, account, annotations, displayName))
                continue
            if not contactId:
                raise ServiceFault("InvalidArgument", "The contact has no contactId.")
            if index is None:
                index = self._contactIndex(account)
            entry = self._entryById(account, contactId, index)
            messenger = textAt(info, "isMessengerUser")

            def update(e: AddressBookEntry = entry, n: Optional[str] = displayName, m: str = messenger) -> None:
                if n is not None and n.strip():
                    e.displayName = n.strip()
                if m:
                    e.isMessengerUser = isTrue(m)

            updates.append(update)
        if not updates:
            raise ServiceFault("InvalidArgument", "No contact in the request.")
        for apply in updates:
            apply()
        return emptyResponse("ABContactUpdate")

    def _updateMe(self, account: Account, annotations: dict[str, str], displayName: Optional[str]) -> None:
        extras = self.resource.extrasFor(account)
        cap = self.resource.limits.annotationsPerContact
        new = {n for n in annotations if n != "MSN.IM.BLP" and n not in extras.annotations}
        if len(extras.annotations) + len(new) > cap:
            raise ServiceFault("QuotaLimitReached", f"A profile holds at most {cap} annotations.")
        for name, value in annotations.items():
            if name == "MSN.IM.BLP":
                account.blp = "AL" if value.strip() == "1" else "BL"
            else:
                extras.annotations[name[:MAX_ANNOTATION_VALUE]] = value[:MAX_ANNOTATION_VALUE]
        if displayName is not None and displayName.strip():
            account.displayName = displayName.strip()

    def _groupName(self, account: Account, name: str, exceptId: Optional[str] = None) -> str:
        name = name.strip()
        if not name or len(name) > MAX_GROUP_NAME:
            raise ServiceFault("InvalidArgument", "The group name is empty or too long.")
        for group in account.groups.values():
            if group.groupId != exceptId and group.name.lower() == name.lower():
                raise ServiceFault("GroupAlreadyExists", "A group with that name already exists.")
        return name

    def _groupIds(self, account: Account, method: Element) -> list[str]:
        ids = [(g.text or "").strip() for g in under(method, "groupFilter", "groupIds", "guid")]
        if not ids:
            raise ServiceFault("InvalidArgument", "No group in the request.")
        known = {g.lower(): g for g in account.groups}
        resolved = []
        for groupId in ids:
            if groupId.lower() not in known:
                raise ServiceFault("GroupDoesNotExist", "No group with that id.")
            resolved.append(known[groupId.lower()])
        return resolved

    def groupAdd(self, account: Account, method: Element) -> str:
        """
        C{ABGroupAdd}: a new group; names are unique (case-insensitively).
        """
        cap = self.resource.limits.groupsPerAccount
        if len(account.groups) >= cap:
            raise ServiceFault("QuotaLimitReached", f"An address book holds at most {cap} groups.")
        name = self._groupName(account, textOf(method, "groupInfo", "GroupInfo", "name"))
        group = self.store.addGroup(account, name)
        return guidResponse("ABGroupAdd", group.groupId)

    def groupDelete(self, account: Account, method: Element) -> str:
        """
        C{ABGroupDelete}: the group goes, its contacts stay (ungrouped).
        """
        for groupId in self._groupIds(account, method):
            del account.groups[groupId]
            for entry in account.addressBook.values():
                entry.groupIds.discard(groupId)
        return emptyResponse("ABGroupDelete")

    def groupUpdate(self, account: Account, method: Element) -> str:
        """
        C{ABGroupUpdate}: rename.
        """
        renames = []
        known = {g.lower(): g for g in account.groups}
        for group in under(method, "groups", "Group"):
            groupId = known.get(textAt(group, "groupId").lower())
            if groupId is None:
                raise ServiceFault("GroupDoesNotExist", "No group with that id.")
            renames.append((groupId, self._groupName(account, textOf(group, "groupInfo", "name"), groupId)))
        if not renames:
            raise ServiceFault("InvalidArgument", "No group in the request.")
        for groupId, name in renames:
            account.groups[groupId].name = name
        return emptyResponse("ABGroupUpdate")

    def _groupContacts(self, account: Account, method: Element, allowNew: bool) -> list[AddressBookEntry]:
        entries = []
        index: Optional[dict[str, AddressBookEntry]] = None
        for contact in under(method, "contacts", "Contact"):
            contactId = textAt(contact, "contactId")
            if contactId:
                if index is None:
                    index = self._contactIndex(account)
                entries.append(self._entryById(account, contactId, index))
                continue
            info = child(contact, "contactInfo")
            if allowNew and info is not None and textAt(info, "passportName"):
                address = normalizeEmail(textAt(info, "passportName"))
                existing = account.addressBook.get(address)
                if existing is not None:
                    entries.append(existing)
                else:
                    options = findPath(method, "groupContactAddOptions", "EnableAllowListManagement")
                    entries.append(self._addContact(account, info, isTrue(textOf(options))))
                continue
            raise ServiceFault("InvalidArgument", "The contact has no contactId.")
        if not entries:
            raise ServiceFault("InvalidArgument", "No contact in the request.")
        return entries

    def groupContactAdd(self, account: Account, method: Element) -> str:
        """
        C{ABGroupContactAdd}: put contacts (by id, or a new one by
        C{passportName}) into a group.
        """
        groupIds = self._groupIds(account, method)
        entries = self._groupContacts(account, method, allowNew=True)
        for entry in entries:
            entry.groupIds.update(groupIds)
        return guidResponse("ABGroupContactAdd", entries[0].contactId)

    def groupContactDelete(self, account: Account, method: Element) -> str:
        """
        C{ABGroupContactDelete}: take contacts out of a group.
        """
        groupIds = self._groupIds(account, method)
        entries = self._groupContacts(account, method, allowNew=False)
        for entry in entries:
            entry.groupIds.difference_update(groupIds)
        return emptyResponse("ABGroupContactDelete")
