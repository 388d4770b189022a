# -*- test-case-name: test.test_soap_client -*-
"""
The ABCH address-book service: the forward list, groups and the Me contact
(reference sections 3.4, 3.8 and 3.9).

Every contact of the forward list has an address-book C{contactId} (a
GUID); deleting a contact and every group operation address contacts by
that id, so the session must keep it (L{msnp.contacts.Contact.contactId}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Any, Mapping, Optional
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO, Group, normalizeEmail
from msnp.errors import ServiceError
from msnp.namespaces import AB_NS, PERSONAL_AB_ID
from msnp.soap.circles import CircleListing, parseCircleListing
from msnp.soap.envelope import ABCHService, annotationsOf, isTrue, optionalInt
from msnp.xmlsafe import child, children, escapeText, firstChildren, iterByName, localName, textOf

log = Logger()

#: The C{groupType} of an ordinary user group.
USER_GROUP_TYPE = "C8529CE2-6EAD-434d-881F-341E17DB3FF8"
#: The C{LastChanged} value that asks for everything.
EPOCH = "0001-01-01T00:00:00.0000000-08:00"


_NO_GROUPS: frozenset[str] = frozenset()


@dataclass(slots=True)
class MeContact:
    """
    The account owner's own address-book entry and its settings.
    """

    contactId: Optional[str] = None
    email: str = ""
    displayName: str = ""
    cid: Optional[int] = None
    annotations: dict[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt from its fields in order: the roster pickles its
        # delta-sync base (msnp.rostersync), and this loads several times
        # faster than the slots' state would.
        return (type(self), tuple(getattr(self, name) for name in self.__slots__))


@dataclass(slots=True)
class ABContact:
    """
    One (non-Me) contact of the address book. Slotted: the delta sync
    keeps the last answer for the session's lifetime (issue 13).

    @ivar contactType: C{Regular}, C{LivePending}, C{Live}, C{Circle}, ...
    @ivar network: 1 for a Passport contact, 32 for a Yahoo! one (found in
        a messenger-enabled C{ContactEmail}).
    """

    contactId: str
    email: str
    displayName: str = ""
    cid: Optional[int] = None
    #: Read-only: an empty one is the shared C{frozenset()} (most contacts
    #: are in no group, and an empty C{set} costs 216 bytes).
    groupIds: AbstractSet[str] = frozenset()
    isMessengerUser: bool = False
    contactType: str = "Regular"
    network: int = NETWORK_PASSPORT
    annotations: dict[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Rebuilt from its fields in order: the roster pickles its
        # delta-sync base (msnp.rostersync), and this loads several times
        # faster than the slots' state would.
        return (type(self), tuple(getattr(self, name) for name in self.__slots__))


@dataclass
class AddressBookResult:
    """
    What C{ABFindContactsPaged} (or C{ABFindAll}) returned.

    @ivar lastChange: C{Ab/lastChange}, for a later delta sync.
    @ivar circleTicket: the unescaped C{CircleTicket} document, if any
        (needed only for C{USR SHA A}). It is a credential, so it is kept
        out of the C{repr}.
    @ivar deletedContactIds: contacts a delta sync reported as deleted.
    @ivar deletedGroupIds: groups a delta sync reported as deleted.
    """

    me: Optional[MeContact] = None
    contacts: list[ABContact] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    lastChange: Optional[str] = None
    circleTicket: Optional[str] = field(default=None, repr=False)
    deletedContactIds: list[str] = field(default_factory=list)
    deletedGroupIds: list[str] = field(default_factory=list)
    #: The circles of the answer (L{msnp.soap.circles.parseCircleListing}),
    #: L{None} when it lists none it could read; its ticket stays hidden.
    circles: Optional["CircleListing"] = field(default=None, repr=False)


def _childCI(element: Optional[Element], name: str) -> Optional[Element]:
    """
    A direct child by local name, ignoring case: C{ABFindAll} spells the
    containers C{groups}/C{contacts}/C{ab} where C{ABFindContactsPaged}
    writes C{Groups}/C{Contacts}/C{Ab}.
    """
    if element is None:
        return None
    wanted = name.lower()
    for c in element:
        if localName(c.tag).lower() == wanted:
            return c
    return None


def _firstCI(fields: dict[str, Element], name: str) -> Optional[Element]:
    """
    L{_childCI} over the L{firstChildren} of an element (whose keys are in
    document order, so the first match is the first such child).
    """
    wanted = name.lower()
    for key, element in fields.items():
        if key.lower() == wanted:
            return element
    return None


def _messengerEmail(info: Element) -> Optional[tuple[str, int]]:
    """
    The messenger-enabled e-mail of a Yahoo!/federated contact, if any.
    """
    emails = child(info, "emails")
    if emails is None:
        return None
    for entry in children(emails, "ContactEmail"):
        if not isTrue(textOf(entry, "isMessengerEnabled")):
            continue
        address = textOf(entry, "email").strip()
        if "@" in address:
            return normalizeEmail(address), NETWORK_YAHOO
    return None


def parseAddressBook(body: Element) -> AddressBookResult:
    """
    Read an C{ABFindContactsPagedResponse} or C{ABFindAllResponse}.

    Contacts without a usable address are skipped; deleted entries (delta
    syncs) are reported in the C{deleted...Ids} lists.

    @raise ServiceError: the element is not such a response.
    """
    name = localName(body.tag)
    if name in ("ABFindContactsPagedResult", "ABFindAllResult"):
        result_: Optional[Element] = body
    else:
        result_ = child(body, "ABFindContactsPagedResult")
        if result_ is None:
            result_ = child(body, "ABFindAllResult")
    if result_ is None:
        raise ServiceError(f"address book: unexpected response <{name}>")
    result = AddressBookResult()

    groups = _childCI(result_, "Groups")
    for element in children(groups, "Group") if groups is not None else []:
        groupId = textOf(element, "groupId").strip()
        if not groupId:
            continue
        if isTrue(textOf(element, "fDeleted")):
            result.deletedGroupIds.append(groupId)
            continue
        result.groups.append(Group(groupId, textOf(element, "groupInfo", "name")))

    contacts = _childCI(result_, "Contacts")
    for element in children(contacts, "Contact") if contacts is not None else []:
        # Each field is the first child of that name: one pass per element
        # finds them all (an address book holds every contact).
        fields = firstChildren(element)
        contactId = textOf(fields.get("contactId")).strip()
        info = fields.get("contactInfo")
        if isTrue(textOf(fields.get("fDeleted"))):
            if contactId:
                result.deletedContactIds.append(contactId)
            continue
        if info is None:
            continue
        infoFields = firstChildren(info)
        contactType = textOf(infoFields.get("contactType")).strip() or "Regular"
        displayName = textOf(infoFields.get("displayName"))
        cid = optionalInt(textOf(infoFields.get("CID")))
        annotations = annotationsOf(_firstCI(infoFields, "annotations"))
        passport = textOf(infoFields.get("passportName")).strip()
        if contactType == "Me":
            result.me = MeContact(
                contactId=contactId or None,
                email=normalizeEmail(passport),
                displayName=displayName or textOf(infoFields.get("quickName")),
                cid=cid,
                annotations=annotations,
            )
            continue
        isMessengerUser = isTrue(textOf(infoFields.get("isMessengerUser")))
        network = NETWORK_PASSPORT
        email = normalizeEmail(passport)
        if "@" not in email:
            found = _messengerEmail(info)
            if found is None:
                continue
            email, network = found
            isMessengerUser = True
        groupHolder = infoFields.get("groupIds")
        groupIds = frozenset(
            (g.text or "").strip()
            for g in (children(groupHolder, "guid") if groupHolder is not None else [])
            if (g.text or "").strip()
        ) or _NO_GROUPS
        result.contacts.append(
            ABContact(
                contactId=contactId,
                email=email,
                displayName=displayName or textOf(infoFields.get("quickName")) or email,
                cid=cid,
                groupIds=groupIds,
                isMessengerUser=isMessengerUser,
                contactType=contactType,
                network=network,
                annotations=annotations,
            )
        )

    circle = _childCI(result_, "CircleResult")
    if circle is not None:
        ticket = textOf(circle, "CircleTicket").strip()
        result.circleTicket = ticket or None

    ab = _childCI(result_, "Ab")
    if ab is not None:
        lastChange = textOf(ab, "lastChange").strip()
        result.lastChange = lastChange or None
    if circle is not None:
        try:
            result.circles = parseCircleListing(result_)
        except ServiceError as e:
            log.info("Ignoring the unreadable circles of the address book: {error}", error=str(e))
    return result


def _guidResult(body: Element, action: str) -> str:
    for element in iterByName(body, "guid"):
        if element.text and element.text.strip():
            return element.text.strip()
    raise ServiceError(f"{action}: the response carries no guid")


def _annotationElements(annotations: Mapping[str, str]) -> str:
    return "".join(
        f"<Annotation><Name>{escapeText(k)}</Name><Value>{escapeText(v)}</Value></Annotation>"
        for k, v in annotations.items()
    )


def _contactRef(contactId: str) -> str:
    return f"<contacts><Contact><contactId>{escapeText(contactId)}</contactId></Contact></contacts>"


def _groupFilter(groupId: str) -> str:
    return f"<groupFilter><groupIds><guid>{escapeText(groupId)}</guid></groupIds></groupFilter>"


class AddressBookService(ABCHService):
    """
    Client of C{abservice.asmx}: the forward list, groups and the Me contact.
    """

    def _none(self, action: str, body: str, scenario: str) -> "Deferred[None]":
        return self.call(action, body, scenario).addCallback(lambda _: None)

    def _guid(self, action: str, body: str, scenario: str) -> "Deferred[str]":
        return self.call(action, body, scenario).addCallback(_guidResult, action)

    def findContactsPaged(
        self, scenario: str = "Initial", lastChange: Optional[str] = None
    ) -> "Deferred[AddressBookResult]":
        """
        Download the address book (the exact WLM 2009 request of reference
        section 3.4).

        @param lastChange: for a delta sync, the previous
            L{AddressBookResult.lastChange}; everything by default.
        """
        deltas = "true" if lastChange else "false"
        body = (
            f'<ABFindContactsPaged xmlns="{AB_NS}"><filterOptions>'
            f"<DeltasOnly>{deltas}</DeltasOnly>"
            f"<LastChanged>{escapeText(lastChange or EPOCH)}</LastChanged>"
            "<ContactFilter><IncludeHiddenContacts>true</IncludeHiddenContacts></ContactFilter>"
            "</filterOptions><abView>MessengerClient8</abView>"
            "<extendedContent>AB AllGroups CircleResult</extendedContent></ABFindContactsPaged>"
        )
        return self.call("ABFindContactsPaged", body, scenario).addCallback(parseAddressBook)

    def findAll(self, scenario: str = "Initial") -> "Deferred[AddressBookResult]":
        """
        Download the address book with the legacy C{ABFindAll} method.
        """
        body = (
            f'<ABFindAll xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId><abView>Full</abView>'
            f"<deltasOnly>false</deltasOnly><lastChange>{EPOCH}</lastChange></ABFindAll>"
        )
        return self.call("ABFindAll", body, scenario).addCallback(parseAddressBook)

    def abAdd(self, ownerEmail: str, scenario: str = "Initial") -> "Deferred[None]":
        """
        Create the account's address book (after an C{ABDoesNotExist} fault).
        """
        body = (
            f'<ABAdd xmlns="{AB_NS}"><abInfo><name/><ownerPuid>0</ownerPuid>'
            f"<ownerEmail>{escapeText(ownerEmail)}</ownerEmail><fDefault>true</fDefault>"
            "</abInfo></ABAdd>"
        )
        return self._none("ABAdd", body, scenario)

    def contactAdd(
        self,
        email: str,
        displayName: Optional[str] = None,
        inviteMessage: Optional[str] = None,
        scenario: str = "ContactSave",
        network: int = NETWORK_PASSPORT,
    ) -> "Deferred[str]":
        """
        Add C{email} to the forward list (and, through
        C{EnableAllowListManagement}, to the Allow list).

        @param displayName: our own name, shown to the other person with
            C{inviteMessage}.
        @param inviteMessage: the invitation text.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the new C{contactId}; an
            L{msnp.soap.envelope.ABCHFault} with C{errorCode}
            C{InvalidPassportUser} means the address is not a Live ID.
        """
        memberInfo = ""
        if inviteMessage is not None or displayName is not None:
            pending = ""
            if inviteMessage is not None:
                pending = (
                    "<PendingAnnotations>"
                    + _annotationElements({"MSN.IM.InviteMessage": inviteMessage})
                    + "</PendingAnnotations>"
                )
            name = f"<DisplayName>{escapeText(displayName)}</DisplayName>" if displayName else ""
            memberInfo = f"<MessengerMemberInfo>{pending}{name}</MessengerMemberInfo>"
        if network == NETWORK_PASSPORT:
            address = (
                f"<passportName>{escapeText(email)}</passportName>"
                "<isMessengerUser>true</isMessengerUser>"
            )
        else:
            address = (
                "<emails><ContactEmail><contactEmailType>Messenger2</contactEmailType>"
                f"<email>{escapeText(email)}</email><isMessengerEnabled>true</isMessengerEnabled>"
                "<Capability>0</Capability><MessengerEnabledExternally>false</MessengerEnabledExternally>"
                "<propertiesChanged/></ContactEmail></emails>"
                "<isMessengerUser>true</isMessengerUser>"
            )
        body = (
            f'<ABContactAdd xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId><contacts>'
            f'<Contact xmlns="{AB_NS}"><contactInfo><contactType>LivePending</contactType>'
            f"{address}{memberInfo}</contactInfo></Contact></contacts>"
            "<options><EnableAllowListManagement>true</EnableAllowListManagement></options>"
            "</ABContactAdd>"
        )
        return self._guid("ABContactAdd", body, scenario)

    def contactDelete(self, contactId: str, scenario: str = "Timer") -> "Deferred[None]":
        """
        Remove a contact from the address book by its C{contactId}.
        """
        body = (
            f'<ABContactDelete xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId>'
            f"{_contactRef(contactId)}</ABContactDelete>"
        )
        return self._none("ABContactDelete", body, scenario)

    def contactUpdateDisplayName(
        self, contactId: str, displayName: str, scenario: str = "Timer"
    ) -> "Deferred[None]":
        """
        Change the name stored for a contact.
        """
        body = (
            f'<ABContactUpdate xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId><contacts><Contact>'
            f"<contactId>{escapeText(contactId)}</contactId>"
            f"<contactInfo><displayName>{escapeText(displayName)}</displayName></contactInfo>"
            "<propertiesChanged>DisplayName</propertiesChanged></Contact></contacts></ABContactUpdate>"
        )
        return self._none("ABContactUpdate", body, scenario)

    def contactUpdateMe(
        self,
        annotations: Mapping[str, str],
        displayName: Optional[str] = None,
        scenario: str = "PrivacyApply",
    ) -> "Deferred[None]":
        """
        Change the Me contact: annotations (C{MSN.IM.BLP} C{1}/C{0} for
        C{AL}/C{BL}, C{MSN.IM.MPOP}, ...) and optionally the stored display
        name.
        """
        changed = []
        fields = ""
        if annotations:
            fields += f"<annotations>{_annotationElements(annotations)}</annotations>"
            changed.append("Annotation")
        fields += "<contactType>Me</contactType>"
        if displayName is not None:
            fields += f"<displayName>{escapeText(displayName)}</displayName>"
            changed.append("DisplayName")
        body = (
            f'<ABContactUpdate xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId><contacts><Contact>'
            f"<contactInfo>{fields}</contactInfo>"
            f"<propertiesChanged>{' '.join(changed)}</propertiesChanged>"
            "</Contact></contacts></ABContactUpdate>"
        )
        return self._none("ABContactUpdate", body, scenario)

    def groupAdd(self, name: str, scenario: str = "GroupSave") -> "Deferred[str]":
        """
        Create a group; fires with its id.
        """
        body = (
            f'<ABGroupAdd xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId>'
            "<groupAddOptions><fRenameOnMsgrConflict>false</fRenameOnMsgrConflict></groupAddOptions>"
            f"<groupInfo><GroupInfo><name>{escapeText(name)}</name>"
            f"<groupType>{USER_GROUP_TYPE}</groupType><fMessenger>false</fMessenger>"
            "<annotations><Annotation><Name>MSN.IM.Display</Name><Value>1</Value></Annotation>"
            "</annotations></GroupInfo></groupInfo></ABGroupAdd>"
        )
        return self._guid("ABGroupAdd", body, scenario)

    def groupDelete(self, groupId: str, scenario: str = "Timer") -> "Deferred[None]":
        """
        Delete a group. Its contacts stay in the address book, so the
        caller need not move them out first.
        """
        body = (
            f'<ABGroupDelete xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId>'
            f"{_groupFilter(groupId)}</ABGroupDelete>"
        )
        return self._none("ABGroupDelete", body, scenario)

    def groupUpdate(self, groupId: str, name: str, scenario: str = "GroupSave") -> "Deferred[None]":
        """
        Rename a group.
        """
        body = (
            f'<ABGroupUpdate xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId><groups><Group>'
            f"<groupId>{escapeText(groupId)}</groupId><groupInfo><name>{escapeText(name)}</name>"
            "</groupInfo><propertiesChanged>GroupName</propertiesChanged></Group></groups>"
            "</ABGroupUpdate>"
        )
        return self._none("ABGroupUpdate", body, scenario)

    def groupContactAdd(
        self, groupId: str, contactId: str, scenario: str = "GroupSave"
    ) -> "Deferred[None]":
        """
        Put a contact into a group. Contacts are named by their address-book
        id, not their address, so the contact must already be in the book.
        """
        body = (
            f'<ABGroupContactAdd xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId>'
            f"{_groupFilter(groupId)}{_contactRef(contactId)}</ABGroupContactAdd>"
        )
        return self._none("ABGroupContactAdd", body, scenario)

    def groupContactDelete(
        self, groupId: str, contactId: str, scenario: str = "GroupSave"
    ) -> "Deferred[None]":
        """
        Take a contact out of a group; it stays in the address book (and
        in any other group).
        """
        body = (
            f'<ABGroupContactDelete xmlns="{AB_NS}"><abId>{PERSONAL_AB_ID}</abId>'
            f"{_contactRef(contactId)}{_groupFilter(groupId)}</ABGroupContactDelete>"
        )
        return self._none("ABGroupContactDelete", body, scenario)
