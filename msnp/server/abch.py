# -*- test-case-name: test.test_server_abch -*-
"""
The local network's ABCH services: C{/abservice/SharingService.asmx} and
C{/abservice/abservice.asmx}.

They serve the memberships and address books of the L{AccountStore} in the
shapes of the reference's section 8.3 (steps H2 and H3), and apply the
changes a client makes (reference sections 3.8 and 3.9) to the same store,
so the notification server routes presence by exactly what the SOAP
services say.

Behaviour a client must already cope with on the real service or the
emulators (reference section 10.3) is reproduced on purpose: a request
with an unknown C{contacts.msn.com} ticket (or none) gets a bare HTTP 403
with no SOAP body, a ticket issued here but past its lifetime the SOAP
fault C{q0:BadContextToken} with HTTP 500 (the client renews its tokens
and retries, reference sections 3.2 and 7.4), and an unknown method gets a
SOAP fault with HTTP 200. Other faults come with HTTP 500, as SOAP 1.1
prescribes, and carry
C{detail/errorcode} (C{InvalidPassportUser}, C{ContactDoesNotExist},
C{GroupDoesNotExist}, C{MemberDoesNotExist}, C{GroupAlreadyExists},
C{InvalidArgument}).

Every text value that goes into a response is escaped here; nothing from
a request is ever echoed unescaped.
"""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Request

from msnp.server.accounts import (
    ALLOW,
    BLOCK,
    PENDING,
    REVERSE,
    ROLES,
    Account,
    AccountStore,
    AddressBookEntry,
    AddressBookState,
    Membership,
    TicketCheck,
    TicketGrant,
    TicketState,
    isValidAddress,
    normalizeEmail,
)
from msnp.xmlsafe import XMLError, child, children, escapeText, findPath, localName, parseXML, textOf

# The namespaces, action prefix and personal address-book id are the ones
# the client sends; sharing them keeps both sides of the wire in step.
from msnp.namespaces import (
    AB_NS as AB_NS,
    ACTION_PREFIX as ACTION_PREFIX,
    PERSONAL_AB_ID as PERSONAL_AB_ID,
    SOAP_NS as SOAP_NS,
    XSD_NS as XSD_NS,
    XSI_NS as XSI_NS,
)

log = Logger()

USER_GROUP_TYPE = "c8529ce2-6ead-434d-881f-341e17db3ff8"
SERVICE_VERSION = "15.01.1408.0000"
#: A real request is a few KB; anything far larger is refused unread.
MAX_REQUEST_BYTES = 1024 * 1024
#: The longest group name the clients of the time allowed.
MAX_GROUP_NAME = 61

#: The callback type of C{onChange}: the account whose lists changed and
#: the SOAP action that changed them.
ChangeCallback = Callable[[Account, str], None]

_MUTATING = frozenset(
    {
        "AddMember",
        "DeleteMember",
        "ABContactAdd",
        "ABContactDelete",
        "ABContactUpdate",
        "ABGroupAdd",
        "ABGroupDelete",
        "ABGroupUpdate",
        "ABGroupContactAdd",
        "ABGroupContactDelete",
    }
)


class _Fault(Exception):
    """
    A request the service refuses with a SOAP fault.
    """

    def __init__(
        self,
        errorCode: str,
        message: str,
        httpStatus: int = 500,
        faultCode: str = "soap:Client",
    ) -> None:
        super().__init__(message)
        self.errorCode = errorCode
        self.message = message
        self.httpStatus = httpStatus
        self.faultCode = faultCode


def _isoTime(seconds: float) -> str:
    whole = int(seconds)
    fraction = int(round((seconds - whole) * 10_000_000)) % 10_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:07d}Z"


def _text(element: Optional[Element], *names: str) -> str:
    return textOf(element, *names).strip()


def _isTrue(text: str) -> bool:
    return text.strip().lower() == "true"


def _under(element: Optional[Element], *path: str) -> list[Element]:
    """
    The elements at C{path} below C{element}: every step but the last is
    a single child, the last step collects all children of that name.
    """
    holder = findPath(element, *path[:-1]) if len(path) > 1 else element
    if holder is None:
        return []
    return children(holder, path[-1])


def _emptyResponse(action: str) -> str:
    """
    The body of a successful call that answers nothing but success.
    """
    return f'<{action}Response xmlns="{AB_NS}" />'


def _guidResponse(action: str, guid: str) -> str:
    """
    The body of a successful call that answers the id of what it made.
    """
    return (
        f'<{action}Response xmlns="{AB_NS}"><{action}Result>'
        f"<guid>{escapeText(guid)}</guid></{action}Result></{action}Response>"
    )


class _ServiceEndpoint(Resource):
    """
    One C{.asmx} endpoint: POSTs go to the L{ABCHResource} with the
    actions this endpoint serves.
    """

    isLeaf = True

    def __init__(self, abch: "ABCHResource", name: str, actions: dict[str, Callable[[Account, Element], str]]) -> None:
        super().__init__()
        self.abch = abch
        self.name = name
        self.actions = actions

    def render_POST(self, request: Request) -> bytes:
        return self.abch.handle(request, self.name, self.actions)


class ABCHResource(Resource):
    """
    The C{/abservice} resource: children C{SharingService.asmx} and
    C{abservice.asmx} (names matched case-insensitively).

    @ivar store: the L{AccountStore} served.
    @ivar onChange: called as C{onChange(account, action)} after every
        successful call that changed C{account}'s lists, groups or
        settings; errors it raises are logged and ignored.
    @ivar changeOrigin: while C{onChange} runs, the L{TicketGrant} whose
        contacts ticket made the request (so the callback can tell which
        signed-in place caused the change); L{None} at any other time.
    """

    def __init__(
        self,
        store: AccountStore,
        clock: Optional[IReactorTime] = None,
        onChange: Optional[ChangeCallback] = None,
    ) -> None:
        """
        @param clock: the source of the timestamps in responses; the
            system time when L{None}.
        """
        super().__init__()
        self.store = store
        self.clock = clock
        self.onChange = onChange
        self.changeOrigin: Optional[TicketGrant] = None
        self._sharing = _ServiceEndpoint(
            self,
            "SharingService.asmx",
            {
                "FindMembership": self.findMembership,
                "AddMember": self.addMember,
                "DeleteMember": self.deleteMember,
            },
        )
        self._addressBook = _ServiceEndpoint(
            self,
            "abservice.asmx",
            {
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
            },
        )

    def getChild(self, path: bytes, request: Request) -> Resource:
        name = path.lower()
        if name == b"sharingservice.asmx":
            return self._sharing
        if name == b"abservice.asmx":
            return self._addressBook
        return NoResource()

    # -- plumbing ---------------------------------------------------------------

    def now(self) -> float:
        """
        The current time on the injected clock (the system time without
        one), so tests control the timestamps of responses.
        """
        return self.clock.seconds() if self.clock is not None else time.time()

    def lastChangeOf(self, account: Account) -> str:
        """
        When C{account}'s lists last changed through these services, as the
        C{xsd:dateTime} text the responses carry (the creation time of its
        ABCH state if they never changed).
        """
        return _isoTime(self.extrasFor(account).lastChange)

    def extrasFor(self, account: Account) -> AddressBookState:
        """
        The ABCH-only state of C{account}, created on first use and kept
        on the account, so a resource built anew over the same store
        answers with the same ids and cache key.
        """
        extras = account.addressBookState
        if extras is None:
            now = self.now()
            extras = AddressBookState(
                meContactId=str(uuid.uuid4()),
                created=now,
                lastChange=now,
                cacheKey="12r1:" + secrets.token_urlsafe(24),
                sessionId=str(uuid.uuid4()),
            )
            account.addressBookState = extras
        return extras

    def handle(
        self,
        request: Request,
        service: str,
        actions: dict[str, Callable[[Account, Element], str]],
    ) -> bytes:
        """
        Serve one POST: read, check the ticket, dispatch, answer.
        """
        assert request.content is not None
        data = request.content.read(MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            request.setResponseCode(413)
            return b""
        try:
            root = parseXML(data, MAX_REQUEST_BYTES)
        except XMLError as e:
            log.info("ABCH {service}: malformed request ({error})", service=service, error=str(e))
            return self._fault(request, None, "", _Fault("InvalidArgument", "The request is not well-formed XML.", 400))
        body = child(root, "Body")
        method = body[0] if body is not None and len(body) else None
        action = (request.getHeader("SOAPAction") or "").strip().strip('"').strip()
        action = action.rsplit("/", 1)[-1]
        if not action and method is not None:
            action = localName(method.tag)
        ticket = _text(findPath(root, "Header", "ABAuthHeader", "TicketToken"))
        check = self.store.checkContactsTicket(ticket) if ticket else TicketCheck(TicketState.UNKNOWN)
        if check.state is TicketState.EXPIRED:
            # A ticket we issued whose lifetime is over: the client is
            # expected to renew its tokens and retry (reference 3.2, 7.4).
            log.info("ABCH {service}: expired ticket refused", service=service)
            return self._fault(
                request, None, action,
                _Fault("BadContextToken", "Ticket has expired.", 500, "q0:BadContextToken"),
            )
        account = check.account
        if account is None:
            log.info("ABCH {service}: request without a valid ticket refused", service=service)
            request.setResponseCode(403)
            return b""
        handler = actions.get(action)
        if handler is None or method is None:
            log.info("ABCH {service}: unknown action {action!r} from {account}",
                     service=service, action=action, account=account.email)
            return self._fault(
                request, account, action,
                _Fault("InvalidArgument", f"Unknown SOAP action {action!r} on {service}.",
                       200, "soap:Server"),
            )
        extras = self.extrasFor(account)
        clientKey = _text(findPath(root, "Header", "ABApplicationHeader", "CacheKey"))
        try:
            responseBody = handler(account, method)
        except _Fault as fault:
            log.info("ABCH {action} for {account} refused: {code}",
                     action=action, account=account.email, code=fault.errorCode)
            return self._fault(request, account, action, fault)
        log.info("ABCH {action} for {account}", action=action, account=account.email)
        if action in _MUTATING:
            extras.lastChange = self.now()
            if self.onChange is not None:
                self.changeOrigin = check.grant
                try:
                    self.onChange(account, action)
                except Exception:
                    log.failure("ABCH onChange callback failed for {action}", action=action)
                finally:
                    self.changeOrigin = None
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        return self._envelope(request, extras, clientKey, responseBody)

    def _serviceHeader(self, request: Request, extras: AddressBookState, clientKey: str) -> str:
        host = (request.getHeader("host") or "127.0.0.1").strip()
        changed = "false" if clientKey == extras.cacheKey else "true"
        return (
            f'<ServiceHeader xmlns="{AB_NS}"><Version>{SERVICE_VERSION}</Version>'
            f"<CacheKey>{escapeText(extras.cacheKey)}</CacheKey>"
            f"<CacheKeyChanged>{changed}</CacheKeyChanged>"
            f"<PreferredHostName>{escapeText(host)}</PreferredHostName>"
            f"<SessionId>{escapeText(extras.sessionId)}</SessionId></ServiceHeader>"
        )

    def _envelope(self, request: Request, extras: Optional[AddressBookState], clientKey: str, body: str) -> bytes:
        header = ""
        if extras is not None:
            header = f"<soap:Header>{self._serviceHeader(request, extras, clientKey)}</soap:Header>"
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
            f"{header}<soap:Body>{body}</soap:Body></soap:Envelope>"
        ).encode("utf-8")

    def _fault(self, request: Request, account: Optional[Account], action: str, fault: _Fault) -> bytes:
        request.setResponseCode(fault.httpStatus)
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        # The real service qualified its own fault codes with a prefix bound
        # to the address-book namespace (C{q0:BadContextToken}).
        namespace = f' xmlns:q0="{AB_NS}"' if fault.faultCode.startswith("q0:") else ""
        body = (
            "<soap:Fault>"
            f"<faultcode{namespace}>{escapeText(fault.faultCode)}</faultcode>"
            f"<faultstring>{escapeText(fault.message)}</faultstring>"
            f"<faultactor>{escapeText(ACTION_PREFIX + action)}</faultactor>"
            "<detail>"
            f'<errorcode xmlns="{AB_NS}">{escapeText(fault.errorCode)}</errorcode>'
            f'<errorstring xmlns="{AB_NS}">{escapeText(fault.message)}</errorstring>'
            f'<machineName xmlns="{AB_NS}">msnp-local</machineName>'
            "</detail></soap:Fault>"
        )
        extras = self.extrasFor(account) if account is not None else None
        return self._envelope(request, extras, "", body)

    # -- sharing service ----------------------------------------------------------

    def _memberXML(self, account: Account, role: str, membership: Membership, stamp: str) -> str:
        other = self.store.get(membership.email)
        name = membership.displayName or (other.displayName if other is not None else "")
        displayName = f"<DisplayName>{escapeText(name)}</DisplayName>" if name else ""
        annotations = ""
        invite = self.extrasFor(account).inviteMessages.get(membership.email)
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
        C{FindMembership}: one Messenger service with the four role lists.
        """
        extras = self.extrasFor(account)
        stamp = _isoTime(extras.lastChange)
        memberships = []
        for role in ROLES:
            members = "".join(
                self._memberXML(account, role, m, stamp) for m in account.memberships[role].values()
            )
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
            f"<CreateDate>{_isoTime(extras.created)}</CreateDate><LastChange>{stamp}</LastChange>"
            "</OwnerNamespace></FindMembershipResult></FindMembershipResponse>"
        )

    def _memberships(self, method: Element) -> list[tuple[str, list[Element]]]:
        found = []
        for membership in _under(method, "memberships", "Membership"):
            role = _text(membership, "MemberRole")
            if role not in ROLES:
                raise _Fault("InvalidArgument", f"Unknown member role {role!r}.")
            found.append((role, _under(membership, "Members", "Member")))
        if not found:
            raise _Fault("InvalidArgument", "No membership in the request.")
        return found

    def _memberAddress(self, member: Element) -> str:
        address = normalizeEmail(_text(member, "PassportName") or _text(member, "Email"))
        if not isValidAddress(address):
            raise _Fault("InvalidArgument", "The member has no valid address.")
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
                raise _Fault("InvalidArgument", "No member in the membership.")
            for member in members:
                changes.append((role, self._memberAddress(member)))
        for role, address in changes:
            other = self.store.get(address)
            name = other.displayName if other is not None else ""
            if role in (ALLOW, BLOCK):
                self.store.setRole(account, role, address, name)
            elif other is not None and other.onForwardList(account.email):
                # Reverse and Pending can only be restored to the truth:
                # the other account really has this one on its list.
                self.store.setRole(account, role, address, name)
        return _emptyResponse("AddMember")

    def deleteMember(self, account: Account, method: Element) -> str:
        """
        C{DeleteMember}: by C{MembershipId} or by address. Deleting a
        Reverse membership is acknowledged without effect (the server keeps
        that list).
        """
        changes: list[tuple[str, str]] = []
        for role, members in self._memberships(method):
            if not members:
                raise _Fault("InvalidArgument", "No member in the membership.")
            for member in members:
                idText = _text(member, "MembershipId")
                found: Optional[str] = None
                if idText:
                    for key, m in account.memberships[role].items():
                        if str(m.membershipId) == idText:
                            found = key
                else:
                    address = self._memberAddress(member)
                    if address in account.memberships[role]:
                        found = address
                if found is None:
                    raise _Fault("MemberDoesNotExist", f"The member is not on the {role} list.")
                changes.append((role, found))
        for role, address in changes:
            if role != REVERSE:
                self.store.clearRole(account, role, address)
                if role == PENDING:
                    self.extrasFor(account).inviteMessages.pop(address, None)
        return _emptyResponse("DeleteMember")

    # -- address book ---------------------------------------------------------------

    def _meXML(self, account: Account, stamp: str) -> str:
        extras = self.extrasFor(account)
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
        return (
            f"<Contact><contactId>{escapeText(entry.contactId)}</contactId><contactInfo>"
            f"<contactType>Regular</contactType><quickName>{name}</quickName>"
            f"<passportName>{escapeText(entry.email)}</passportName>"
            f"<IsPassportNameHidden>false</IsPassportNameHidden><displayName>{name}</displayName>"
            f"<puid>{other.puid if other is not None else 0}</puid>{groupIds}"
            f"<CID>{other.cid if other is not None else 0}</CID>"
            "<IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled>"
            f"<isMessengerUser>{messenger}</isMessengerUser><isFavorite>false</isFavorite>"
            "<isSmtp>false</isSmtp><hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState>"
            "<birthdate>0001-01-01T00:00:00</birthdate></contactInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Contact>"
        )

    def _addressBookParts(self, account: Account) -> tuple[str, str, str]:
        extras = self.extrasFor(account)
        stamp = _isoTime(extras.lastChange)
        groups = "".join(
            f"<Group><groupId>{escapeText(g.groupId)}</groupId><groupInfo><annotations><Annotation>"
            "<Name>MSN.IM.Display</Name><Value>1</Value></Annotation></annotations>"
            f"<groupType>{USER_GROUP_TYPE}</groupType><name>{escapeText(g.name)}</name>"
            "<IsNotMobileVisible>false</IsNotMobileVisible><IsPrivate>false</IsPrivate>"
            "<IsFavorite>false</IsFavorite></groupInfo><propertiesChanged />"
            f"<fDeleted>false</fDeleted><lastChange>{stamp}</lastChange></Group>"
            for g in account.groups.values()
        )
        contacts = self._meXML(account, stamp) + "".join(
            self._contactXML(entry, stamp) for entry in account.addressBook.values()
        )
        ab = (
            f"<abId>{PERSONAL_AB_ID}</abId><abInfo><ownerPuid>{account.puid}</ownerPuid>"
            f"<OwnerCID>{account.cid}</OwnerCID><ownerEmail>{escapeText(account.email)}</ownerEmail>"
            "<fDefault>true</fDefault><joinedNamespace>false</joinedNamespace><IsBot>false</IsBot>"
            "<IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false</SubscribeExternalPartner>"
            "<NotifyExternalPartner>false</NotifyExternalPartner><AddressBookType>Individual</AddressBookType>"
            f"</abInfo><lastChange>{stamp}</lastChange>"
            "<DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged>"
            f"<createDate>{_isoTime(extras.created)}</createDate><propertiesChanged />"
        )
        return groups, contacts, ab

    def findContactsPaged(self, account: Account, method: Element) -> str:
        """
        C{ABFindContactsPaged}: groups, the Me contact and every contact.
        Deltas are not tracked: the whole book is always returned, which a
        delta-syncing client reads as "everything is current".
        """
        groups, contacts, ab = self._addressBookParts(account)
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

    def _entryById(self, account: Account, contactId: str) -> AddressBookEntry:
        wanted = contactId.strip().lower()
        for entry in account.addressBook.values():
            if entry.contactId.lower() == wanted:
                return entry
        raise _Fault("ContactDoesNotExist", "No contact with that id in the address book.")

    def _addContact(self, account: Account, info: Element, allowList: bool) -> AddressBookEntry:
        address = _text(info, "passportName")
        if not address:
            for email in _under(info, "emails", "ContactEmail"):
                address = _text(email, "email")
                if address:
                    break
        address = normalizeEmail(address)
        if not isValidAddress(address):
            raise _Fault("InvalidPassportUser", "The address is not a valid Passport name.")
        other = self.store.get(address)
        if other is None or other is account:
            raise _Fault("InvalidPassportUser", f"{address} is not a user of this network.")
        entry = self.store.addToAddressBook(account, address)
        if allowList and not account.hasRole(BLOCK, address):
            self.store.setRole(account, ALLOW, address, other.displayName)
        memberInfo = child(info, "MessengerMemberInfo")
        if memberInfo is not None:
            for annotation in _under(memberInfo, "PendingAnnotations", "Annotation"):
                if _text(annotation, "Name") == "MSN.IM.InviteMessage":
                    self.extrasFor(other).inviteMessages[account.email] = textOf(annotation, "Value")
            shownName = _text(memberInfo, "DisplayName")
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
        contacts = _under(method, "contacts", "Contact")
        if not contacts:
            raise _Fault("InvalidArgument", "No contact in the request.")
        info = child(contacts[0], "contactInfo")
        if info is None:
            raise _Fault("InvalidArgument", "The contact has no contactInfo.")
        allowList = _isTrue(_text(method, "options", "EnableAllowListManagement"))
        entry = self._addContact(account, info, allowList)
        return _guidResponse("ABContactAdd", entry.contactId)

    def contactDelete(self, account: Account, method: Element) -> str:
        """
        C{ABContactDelete}: by contact id; memberships are left as they are.
        """
        ids = [_text(c, "contactId") for c in _under(method, "contacts", "Contact")]
        if not ids:
            raise _Fault("InvalidArgument", "No contact in the request.")
        entries = [self._entryById(account, contactId) for contactId in ids]
        for entry in entries:
            self.store.removeFromAddressBook(account, entry.email)
        return _emptyResponse("ABContactDelete")

    def contactUpdate(self, account: Account, method: Element) -> str:
        """
        C{ABContactUpdate}: the Me contact's display name and annotations
        (C{MSN.IM.BLP} C{1} → C{AL}, anything else → C{BL}), or a contact's
        stored display name and messenger flag.
        """
        updates: list[Callable[[], None]] = []
        extras = self.extrasFor(account)
        for contact in _under(method, "contacts", "Contact"):
            info = child(contact, "contactInfo")
            contactId = _text(contact, "contactId")
            isMe = (info is not None and _text(info, "contactType") == "Me") or (
                contactId.lower() == extras.meContactId
            )
            if info is None:
                raise _Fault("InvalidArgument", "The contact has no contactInfo.")
            annotations = {
                _text(a, "Name"): textOf(a, "Value")
                for a in _under(info, "annotations", "Annotation")
                if _text(a, "Name")
            }
            displayNameElement = child(info, "displayName")
            displayName = textOf(displayNameElement) if displayNameElement is not None else None
            if isMe:
                updates.append(functools.partial(self._updateMe, account, annotations, displayName))
                continue
            if not contactId:
                raise _Fault("InvalidArgument", "The contact has no contactId.")
            entry = self._entryById(account, contactId)
            messenger = _text(info, "isMessengerUser")

            def update(e: AddressBookEntry = entry, n: Optional[str] = displayName, m: str = messenger) -> None:
                if n is not None and n.strip():
                    e.displayName = n.strip()
                if m:
                    e.isMessengerUser = _isTrue(m)

            updates.append(update)
        if not updates:
            raise _Fault("InvalidArgument", "No contact in the request.")
        for apply in updates:
            apply()
        return _emptyResponse("ABContactUpdate")

    def _updateMe(self, account: Account, annotations: dict[str, str], displayName: Optional[str]) -> None:
        extras = self.extrasFor(account)
        for name, value in annotations.items():
            if name == "MSN.IM.BLP":
                account.blp = "AL" if value.strip() == "1" else "BL"
            else:
                extras.annotations[name] = value
        if displayName is not None and displayName.strip():
            account.displayName = displayName.strip()

    def _groupName(self, account: Account, name: str, exceptId: Optional[str] = None) -> str:
        name = name.strip()
        if not name or len(name) > MAX_GROUP_NAME:
            raise _Fault("InvalidArgument", "The group name is empty or too long.")
        for group in account.groups.values():
            if group.groupId != exceptId and group.name.lower() == name.lower():
                raise _Fault("GroupAlreadyExists", "A group with that name already exists.")
        return name

    def _groupIds(self, account: Account, method: Element) -> list[str]:
        ids = [(g.text or "").strip() for g in _under(method, "groupFilter", "groupIds", "guid")]
        if not ids:
            raise _Fault("InvalidArgument", "No group in the request.")
        known = {g.lower(): g for g in account.groups}
        resolved = []
        for groupId in ids:
            if groupId.lower() not in known:
                raise _Fault("GroupDoesNotExist", "No group with that id.")
            resolved.append(known[groupId.lower()])
        return resolved

    def groupAdd(self, account: Account, method: Element) -> str:
        """
        C{ABGroupAdd}: a new group; names are unique (case-insensitively).
        """
        name = self._groupName(account, textOf(method, "groupInfo", "GroupInfo", "name"))
        group = self.store.addGroup(account, name)
        return _guidResponse("ABGroupAdd", group.groupId)

    def groupDelete(self, account: Account, method: Element) -> str:
        """
        C{ABGroupDelete}: the group goes, its contacts stay (ungrouped).
        """
        for groupId in self._groupIds(account, method):
            del account.groups[groupId]
            for entry in account.addressBook.values():
                entry.groupIds.discard(groupId)
        return _emptyResponse("ABGroupDelete")

    def groupUpdate(self, account: Account, method: Element) -> str:
        """
        C{ABGroupUpdate}: rename.
        """
        renames = []
        known = {g.lower(): g for g in account.groups}
        for group in _under(method, "groups", "Group"):
            groupId = known.get(_text(group, "groupId").lower())
            if groupId is None:
                raise _Fault("GroupDoesNotExist", "No group with that id.")
            renames.append((groupId, self._groupName(account, textOf(group, "groupInfo", "name"), groupId)))
        if not renames:
            raise _Fault("InvalidArgument", "No group in the request.")
        for groupId, name in renames:
            account.groups[groupId].name = name
        return _emptyResponse("ABGroupUpdate")

    def _groupContacts(self, account: Account, method: Element, allowNew: bool) -> list[AddressBookEntry]:
        entries = []
        for contact in _under(method, "contacts", "Contact"):
            contactId = _text(contact, "contactId")
            if contactId:
                entries.append(self._entryById(account, contactId))
                continue
            info = child(contact, "contactInfo")
            if allowNew and info is not None and _text(info, "passportName"):
                address = normalizeEmail(_text(info, "passportName"))
                existing = account.addressBook.get(address)
                if existing is not None:
                    entries.append(existing)
                else:
                    options = findPath(method, "groupContactAddOptions", "EnableAllowListManagement")
                    entries.append(self._addContact(account, info, _isTrue(textOf(options))))
                continue
            raise _Fault("InvalidArgument", "The contact has no contactId.")
        if not entries:
            raise _Fault("InvalidArgument", "No contact in the request.")
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
        return _guidResponse("ABGroupContactAdd", entries[0].contactId)

    def groupContactDelete(self, account: Account, method: Element) -> str:
        """
        C{ABGroupContactDelete}: take contacts out of a group.
        """
        groupIds = self._groupIds(account, method)
        entries = self._groupContacts(account, method, allowNew=False)
        for entry in entries:
            entry.groupIds.difference_update(groupIds)
        return _emptyResponse("ABGroupContactDelete")
