"""
Tests for the ABCH SOAP clients (L{msnp.soap.sharing},
L{msnp.soap.addressbook}, L{msnp.soap.envelope}) and the list merge of
L{msnp.soap.sync}, against in-memory resources serving the exact bodies of
reference section 8.3.
"""

from __future__ import annotations

from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from msnp.contacts import Lists
from msnp.listpayload import ListEntry
from msnp.errors import ServiceError, UnsafeXML
from msnp.soap.addressbook import AddressBookResult, AddressBookService, parseAddressBook
from msnp.soap.envelope import ABCHCache, ABCHFault, buildEnvelope
from msnp.soap.sharing import Member, MembershipResult, SharingService, parseMembership
from msnp.soap.sync import buildContactList, initialListEntries
from msnp.xmlsafe import child, parseXML, textOf
from test.soapsamples import FAULT_BODY, H2_RESPONSE

TICKET = "t=EwCoARAnAAAUcontactsTICKETexample0002&p=EwCoAPROFILEexample0002"
SHARING_URL = "http://contacts.example/abservice/SharingService.asmx"
AB_URL = "http://contacts.example/abservice/abservice.asmx"

# Reference section 8.3, steps H2 and H3: each body byte for byte.
H2_REQUEST = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="htt'
    b'p://www.w3.org/2001/XMLSchema" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"'
    b'><soap:Header><ABApplicationHeader xmlns="http://www.msn.com/webservices/AddressBook"><A'
    b'pplicationId>AAD9B99B-58E6-4F23-B975-D9EC1F9EC24A</ApplicationId><IsMigration>false</IsM'
    b'igration><PartnerScenario>Initial</PartnerScenario></ABApplicationHeader><ABAuthHeader x'
    b'mlns="http://www.msn.com/webservices/AddressBook"><ManagedGroupRequest>false</ManagedGro'
    b'upRequest><TicketToken>t=EwCoARAnAAAUcontactsTICKETexample0002&amp;p=EwCoAPROFILEexample'
    b'0002</TicketToken></ABAuthHeader></soap:Header><soap:Body><FindMembership xmlns="http://'
    b'www.msn.com/webservices/AddressBook"><serviceFilter><Types><ServiceType>Messenger</Servi'
    b'ceType><ServiceType>Invitation</ServiceType><ServiceType>SocialNetwork</ServiceType><Ser'
    b'viceType>Space</ServiceType><ServiceType>Profile</ServiceType></Types></serviceFilter></'
    b'FindMembership></soap:Body></soap:Envelope>'
)


H3_REQUEST = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="htt'
    b'p://www.w3.org/2001/XMLSchema" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"'
    b'><soap:Header><ABApplicationHeader xmlns="http://www.msn.com/webservices/AddressBook"><A'
    b'pplicationId>AAD9B99B-58E6-4F23-B975-D9EC1F9EC24A</ApplicationId><IsMigration>false</IsM'
    b'igration><PartnerScenario>Initial</PartnerScenario><CacheKey>12r1:EXAMPLEcacheKEY0001</C'
    b'acheKey></ABApplicationHeader><ABAuthHeader xmlns="http://www.msn.com/webservices/Addres'
    b'sBook"><ManagedGroupRequest>false</ManagedGroupRequest><TicketToken>t=EwCoARAnAAAUcontac'
    b'tsTICKETexample0002&amp;p=EwCoAPROFILEexample0002</TicketToken></ABAuthHeader></soap:Hea'
    b'der><soap:Body><ABFindContactsPaged xmlns="http://www.msn.com/webservices/AddressBook"><'
    b'filterOptions><DeltasOnly>false</DeltasOnly><LastChanged>0001-01-01T00:00:00.0000000-08:'
    b'00</LastChanged><ContactFilter><IncludeHiddenContacts>true</IncludeHiddenContacts></Cont'
    b'actFilter></filterOptions><abView>MessengerClient8</abView><extendedContent>AB AllGroups'
    b' CircleResult</extendedContent></ABFindContactsPaged></soap:Body></soap:Envelope>'
)

H3_RESPONSE = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="htt'
    b'p://www.w3.org/2001/XMLSchema"><soap:Header><ServiceHeader xmlns="http://www.msn.com/web'
    b'services/AddressBook"><Version>15.01.1408.0000</Version><CacheKey>12r1:EXAMPLEcacheKEY00'
    b'02</CacheKey><CacheKeyChanged>true</CacheKeyChanged><PreferredHostName>local-bay.contact'
    b's.msn.com</PreferredHostName><SessionId>5d2f8a70-3c1e-4b8a-9f00-1a2b3c4d5e6f</SessionId>'
    b'</ServiceHeader></soap:Header><soap:Body><ABFindContactsPagedResponse xmlns="http://www.'
    b'msn.com/webservices/AddressBook"><ABFindContactsPagedResult><Groups><Group><groupId>4a7e'
    b'0b9e-2f2c-4b7f-9a3e-6c8d1e2f3a4b</groupId><groupInfo><annotations><Annotation><Name>MSN.'
    b'IM.Display</Name><Value>1</Value></Annotation></annotations><groupType>c8529ce2-6ead-434'
    b'd-881f-341e17db3ff8</groupType><name>Friends</name><IsNotMobileVisible>false</IsNotMobil'
    b'eVisible><IsPrivate>false</IsPrivate><IsFavorite>false</IsFavorite></groupInfo><properti'
    b'esChanged /><fDeleted>false</fDeleted><lastChange>2009-12-30T10:00:00.0000000-08:00</las'
    b'tChange></Group></Groups><Contacts><Contact><contactId>00000000-0000-0000-0000-000000000'
    b'001</contactId><contactInfo><annotations><Annotation><Name>MSN.IM.MBEA</Name><Value>0</V'
    b'alue></Annotation><Annotation><Name>MSN.IM.GTC</Name><Value>1</Value></Annotation><Annot'
    b'ation><Name>MSN.IM.BLP</Name><Value>1</Value></Annotation><Annotation><Name>MSN.IM.MPOP<'
    b'/Name><Value>1</Value></Annotation><Annotation><Name>MSN.IM.RoamLiveProperties</Name><Va'
    b'lue>1</Value></Annotation></annotations><contactType>Me</contactType><quickName>Alice</q'
    b'uickName><passportName>alice@example.com</passportName><IsPassportNameHidden>false</IsPa'
    b'ssportNameHidden><displayName>Alice</displayName><puid>0</puid><CID>-5100000000000000001'
    b'</CID><IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIM'
    b'Enabled><isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>fal'
    b'se</isSmtp><hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState><birthdate'
    b'>0001-01-01T00:00:00</birthdate><primaryEmailType>ContactEmailPersonal</primaryEmailType'
    b'><PrimaryLocation>ContactLocationPersonal</PrimaryLocation><PrimaryPhone>ContactPhonePer'
    b'sonal</PrimaryPhone><IsPrivate>false</IsPrivate><Gender>Unspecified</Gender><TimeZone>No'
    b'ne</TimeZone></contactInfo><propertiesChanged /><fDeleted>false</fDeleted><lastChange>20'
    b'09-12-30T10:00:00.0000000-08:00</lastChange></Contact><Contact><contactId>8d9c3f2a-1b2c-'
    b'4d5e-8f90-a1b2c3d4e5f6</contactId><contactInfo><contactType>Regular</contactType><quickN'
    b'ame>Bob</quickName><passportName>bob@example.com</passportName><IsPassportNameHidden>fal'
    b'se</IsPassportNameHidden><displayName>Bob</displayName><puid>0</puid><groupIds><guid>4a7'
    b'e0b9e-2f2c-4b7f-9a3e-6c8d1e2f3a4b</guid></groupIds><CID>-2088434356712373620</CID><IsNot'
    b'MobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled><isM'
    b'essengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>false</isSmtp><'
    b'hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState><birthdate>0001-01-01T'
    b'00:00:00</birthdate><primaryEmailType>ContactEmailPersonal</primaryEmailType><PrimaryLoc'
    b'ation>ContactLocationPersonal</PrimaryLocation><PrimaryPhone>ContactPhonePersonal</Prima'
    b'ryPhone><IsPrivate>false</IsPrivate><Gender>Unspecified</Gender><TimeZone>None</TimeZone'
    b'></contactInfo><propertiesChanged /><fDeleted>false</fDeleted><lastChange>2009-12-30T10:'
    b'00:00.0000000-08:00</lastChange></Contact><Contact><contactId>1e2d3c4b-5a69-4788-97a6-b5'
    b'c4d3e2f1a0</contactId><contactInfo><contactType>Regular</contactType><quickName>Carol</q'
    b'uickName><passportName>carol@example.net</passportName><IsPassportNameHidden>false</IsPa'
    b'ssportNameHidden><displayName>Carol</displayName><puid>0</puid><CID>3761009286463428211<'
    b'/CID><IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIME'
    b'nabled><isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>fals'
    b'e</isSmtp><hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState><birthdate>'
    b'0001-01-01T00:00:00</birthdate><primaryEmailType>ContactEmailPersonal</primaryEmailType>'
    b'<PrimaryLocation>ContactLocationPersonal</PrimaryLocation><PrimaryPhone>ContactPhonePers'
    b'onal</PrimaryPhone><IsPrivate>false</IsPrivate><Gender>Unspecified</Gender><TimeZone>Non'
    b'e</TimeZone></contactInfo><propertiesChanged /><fDeleted>false</fDeleted><lastChange>200'
    b'9-12-30T10:00:00.0000000-08:00</lastChange></Contact></Contacts><CircleResult><CircleTic'
    b'ket>&lt;?xml version="1.0" encoding="utf-16"?&gt;&lt;SignedTicket ver="1" keyVer="1"&gt;'
    b'&lt;Data&gt;RVhBTVBMRQ==&lt;/Data&gt;&lt;Sig&gt;U0lH&lt;/Sig&gt;&lt;/SignedTicket&gt;</C'
    b'ircleTicket></CircleResult><Ab><abId>00000000-0000-0000-0000-000000000000</abId><abInfo>'
    b'<ownerPuid>0</ownerPuid><OwnerCID>-5100000000000000001</OwnerCID><ownerEmail>alice@examp'
    b'le.com</ownerEmail><fDefault>true</fDefault><joinedNamespace>false</joinedNamespace><IsB'
    b'ot>false</IsBot><IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false<'
    b'/SubscribeExternalPartner><NotifyExternalPartner>false</NotifyExternalPartner><AddressBo'
    b'okType>Individual</AddressBookType></abInfo><lastChange>2009-12-30T10:00:00.0000000-08:0'
    b'0</lastChange><DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged><creat'
    b'eDate>2009-06-01T10:00:00.0000000-07:00</createDate><propertiesChanged /></Ab></ABFindCo'
    b'ntactsPagedResult></ABFindContactsPagedResponse></soap:Body></soap:Envelope>'
)


class Canned(Resource):
    """
    Answers each POST with the next canned (status, body) and records the
    requests.
    """

    isLeaf = True

    def __init__(self, *responses: tuple[int, bytes]) -> None:
        super().__init__()
        self.responses = list(responses)
        self.requests: list[tuple[dict[bytes, bytes], bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        headers = {k.lower(): values[0] for k, values in request.requestHeaders.getAllRawHeaders()}
        self.requests.append((headers, request.content.read()))
        status, body = self.responses.pop(0)
        request.setResponseCode(status)
        return body


def body(document: bytes) -> Any:
    """
    The first child of the document's SOAP body, as the clients see it.
    """
    return child(parseXML(document), "Body")[0]  # type: ignore[index]


def h2Membership() -> MembershipResult:
    return parseMembership(body(H2_RESPONSE))


def h3AddressBook() -> AddressBookResult:
    return parseAddressBook(body(H3_RESPONSE))


class ClientHarness:
    """
    A sharing and an address-book client on one canned resource each,
    sharing one cache as a session would.
    """

    def __init__(self, sharing: Canned, addressBook: Optional[Canned] = None, ticket: str = TICKET) -> None:
        self.clock = Clock()
        self.cache = ABCHCache()
        self.sharingTreq = StubTreq(sharing)
        self.sharing = SharingService(self.sharingTreq, SHARING_URL, lambda: ticket, self.clock, cache=self.cache)
        self.abTreq = StubTreq(addressBook if addressBook is not None else Canned())
        self.addressBook = AddressBookService(self.abTreq, AB_URL, lambda: ticket, self.clock, cache=self.cache)

    def flush(self) -> None:
        self.sharingTreq.flush()
        self.abTreq.flush()


class EnvelopeTests(SynchronousTestCase):
    """
    L{buildEnvelope}.
    """

    def test_h2RequestExact(self) -> None:
        """
        The FindMembership request of H2 is reproduced byte for byte.
        """
        sharing = Canned((200, H2_RESPONSE))
        harness = ClientHarness(sharing)
        harness.sharing.findMembership()
        harness.flush()
        headers, sent = sharing.requests[0]
        self.assertEqual(sent, H2_REQUEST)
        self.assertEqual(len(sent), 1099)
        self.assertEqual(
            headers[b"soapaction"], b'"http://www.msn.com/webservices/AddressBook/FindMembership"'
        )
        self.assertEqual(headers[b"content-type"], b"text/xml; charset=utf-8")

    def test_ticketEscaped(self) -> None:
        """
        The ticket is XML-escaped in C{TicketToken}, never raw.
        """
        envelope = buildEnvelope("<X/>", "t=a<b&p=c", "Initial")
        self.assertIn(b"<TicketToken>t=a&lt;b&amp;p=c</TicketToken>", envelope)
        self.assertEqual(textOf(parseXML(envelope), "Header", "ABAuthHeader", "TicketToken"), "t=a<b&p=c")


class SharingTests(SynchronousTestCase):
    """
    L{SharingService} and L{parseMembership}.
    """

    def test_h2Derived(self) -> None:
        """
        H2 gives Allow {bob, carol}, Block {}, Reverse {bob, dave},
        Pending {dave "Dave D." id 301}, and the CacheKey is remembered.
        """
        sharing = Canned((200, H2_RESPONSE))
        harness = ClientHarness(sharing)
        d = harness.sharing.findMembership()
        harness.flush()
        result = self.successResultOf(d)
        self.assertEqual(result.emails("Allow"), {"bob@example.com", "carol@example.net"})
        self.assertEqual(result.emails("Block"), set())
        self.assertEqual(result.emails("Reverse"), {"bob@example.com", "dave@example.com"})
        self.assertEqual(
            result.members("Pending"),
            {
                "dave@example.com": Member(
                    "dave@example.com", 301, "Dave D.", 1, 5100223344556677889, None
                )
            },
        )
        self.assertEqual(result.members("Allow")["bob@example.com"].cid, -2088434356712373620)
        self.assertEqual(result.lastChange, "2009-12-30T10:00:00.0000000-08:00")
        self.assertEqual(harness.sharing.cacheKey, "12r1:EXAMPLEcacheKEY0001")

    def test_emailMemberAndInvite(self) -> None:
        """
        An EmailMember takes its network from C{MSN.IM.BuddyType}, invite
        messages are kept, deleted members and other services are ignored.
        """
        document = (
            b'<FindMembershipResponse xmlns="http://www.msn.com/webservices/AddressBook" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><FindMembershipResult><Services>'
            b"<Service><Memberships><Membership><MemberRole>Allow</MemberRole><Members>"
            b'<Member xsi:type="PassportMember"><PassportName>x@y.z</PassportName></Member>'
            b"</Members></Membership></Memberships><Info><Handle><Type>Space</Type></Handle></Info></Service>"
            b"<Service><Memberships><Membership><MemberRole>Pending</MemberRole><Members>"
            b'<Member xsi:type="EmailMember"><MembershipId>7</MembershipId><Email>Eve@Yahoo.com</Email>'
            b"<Annotations><Annotation><Name>MSN.IM.BuddyType</Name><Value>32:</Value></Annotation>"
            b"<Annotation><Name>MSN.IM.InviteMessage</Name><Value>hi &amp; bye</Value></Annotation>"
            b"</Annotations></Member>"
            b'<Member xsi:type="PassportMember"><MembershipId>8</MembershipId><Deleted>true</Deleted>'
            b"<PassportName>gone@example.com</PassportName></Member>"
            b'<Member xsi:type="PhoneMember"><PhoneNumber>123</PhoneNumber></Member>'
            b"</Members></Membership></Memberships><Info><Handle><Type>Messenger</Type></Handle></Info>"
            b"</Service></Services></FindMembershipResult></FindMembershipResponse>"
        )
        result = parseMembership(parseXML(document))
        self.assertEqual(result.emails("Allow"), set())
        eve = result.members("Pending")["eve@yahoo.com"]
        self.assertEqual((eve.network, eve.membershipId, eve.inviteMessage), (32, 7, "hi & bye"))
        self.assertEqual(len(result.members("Pending")), 1)

    def test_unexpectedResponse(self) -> None:
        """
        A response that is not a FindMembershipResponse is a L{ServiceError}.
        """
        self.assertRaises(ServiceError, parseMembership, parseXML(b"<Other/>"))

    def test_addMemberBody(self) -> None:
        """
        AddMember sends the role, a PassportMember and the scenario.
        """
        sharing = Canned((200, b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                               b'<soap:Body><AddMemberResponse xmlns="http://www.msn.com/webservices/AddressBook"/>'
                               b"</soap:Body></soap:Envelope>"))
        harness = ClientHarness(sharing)
        d = harness.sharing.addMember("Block", "bob@example.com", "BlockUnblock")
        harness.flush()
        self.assertIsNone(self.successResultOf(d))
        headers, sent = sharing.requests[0]
        root = parseXML(sent)
        method = child(root, "Body")[0]  # type: ignore[index]
        self.assertEqual(textOf(method, "memberships", "Membership", "MemberRole"), "Block")
        self.assertEqual(
            textOf(method, "memberships", "Membership", "Members", "Member", "PassportName"),
            "bob@example.com",
        )
        self.assertEqual(textOf(root, "Header", "ABApplicationHeader", "PartnerScenario"), "BlockUnblock")
        self.assertTrue(headers[b"soapaction"].endswith(b'AddMember"'))

    def test_deleteMemberById(self) -> None:
        """
        DeleteMember by membership id names the id, not the address.
        """
        sharing = Canned((200, b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                               b"<soap:Body><DeleteMemberResponse/></soap:Body></soap:Envelope>"))
        harness = ClientHarness(sharing)
        d = harness.sharing.deleteMember("Pending", membershipId=301, scenario="ContactMsgrAPI")
        harness.flush()
        self.successResultOf(d)
        member = child(parseXML(sharing.requests[0][1]), "Body")[0]  # type: ignore[index]
        path = ("memberships", "Membership", "Members", "Member")
        self.assertEqual(textOf(member, *path, "MembershipId"), "301")
        self.assertEqual(textOf(member, *path, "PassportName"), "")

    def test_deleteMemberNeedsTarget(self) -> None:
        """
        Without address or id, deleteMember fails at once and sends nothing.
        """
        sharing = Canned()
        harness = ClientHarness(sharing)
        self.failureResultOf(harness.sharing.deleteMember("Allow"), ValueError)
        self.assertEqual(sharing.requests, [])


class AddressBookTests(SynchronousTestCase):
    """
    L{AddressBookService} and L{parseAddressBook}.
    """

    def test_h3RequestCarriesCacheKey(self) -> None:
        """
        After H2, the H3 request is reproduced byte for byte, carrying the
        CacheKey from the H2 response; the H3 key replaces it.
        """
        sharing = Canned((200, H2_RESPONSE))
        addressBook = Canned((200, H3_RESPONSE))
        harness = ClientHarness(sharing, addressBook)
        harness.sharing.findMembership()
        harness.flush()
        d = harness.addressBook.findContactsPaged()
        harness.flush()
        self.successResultOf(d)
        headers, sent = addressBook.requests[0]
        self.assertEqual(sent, H3_REQUEST)
        self.assertEqual(len(sent), 1225)
        self.assertEqual(harness.cache.cacheKey, "12r1:EXAMPLEcacheKEY0002")
        self.assertEqual(harness.cache.preferredHostName, "local-bay.contacts.msn.com")

    def test_h3Derived(self) -> None:
        """
        H3 gives the Me contact (Alice, BLP 1, MPOP 1, GTC 1), bob in
        Friends, carol, one group and the circle ticket.
        """
        result = h3AddressBook()
        assert result.me is not None
        self.assertEqual(result.me.displayName, "Alice")
        self.assertEqual(result.me.cid, -5100000000000000001)
        self.assertEqual(result.me.annotations["MSN.IM.BLP"], "1")
        self.assertEqual(result.me.annotations["MSN.IM.MPOP"], "1")
        self.assertEqual(result.me.annotations["MSN.IM.GTC"], "1")
        self.assertEqual(
            [(c.email, c.displayName, c.groupIds, c.isMessengerUser) for c in result.contacts],
            [
                ("bob@example.com", "Bob", {"4a7e0b9e-2f2c-4b7f-9a3e-6c8d1e2f3a4b"}, True),
                ("carol@example.net", "Carol", set(), True),
            ],
        )
        self.assertEqual(result.contacts[0].contactId, "8d9c3f2a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
        self.assertEqual([(g.groupId, g.name) for g in result.groups],
                         [("4a7e0b9e-2f2c-4b7f-9a3e-6c8d1e2f3a4b", "Friends")])
        self.assertEqual(result.lastChange, "2009-12-30T10:00:00.0000000-08:00")
        assert result.circleTicket is not None
        self.assertTrue(result.circleTicket.startswith('<?xml version="1.0" encoding="utf-16"?><SignedTicket'))

    def test_circleTicketNotInRepr(self) -> None:
        """
        The circle ticket is a credential (it signs C{USR SHA A}), so the
        C{repr} of a result, which ends up in logs and bug reports, leaves
        it out.
        """
        result = h3AddressBook()
        assert result.circleTicket is not None
        self.assertNotIn("SignedTicket", repr(result))
        self.assertNotIn(result.circleTicket, repr(result))

    def test_findAllLowerCase(self) -> None:
        """
        The ABFindAll spelling (C{groups}, C{contacts}, C{ab}) reads the same.
        """
        document = (
            b'<ABFindAllResponse xmlns="http://www.msn.com/webservices/AddressBook"><ABFindAllResult>'
            b"<groups><Group><groupId>g</groupId><groupInfo><name>A &amp; B</name></groupInfo></Group></groups>"
            b"<contacts><Contact><contactId>c1</contactId><contactInfo><contactType>Regular</contactType>"
            b"<passportName>x@y.z</passportName><isMessengerUser>true</isMessengerUser>"
            b"<groupIds><guid>g</guid></groupIds></contactInfo></Contact>"
            b"<Contact><contactId>c2</contactId><fDeleted>true</fDeleted></Contact></contacts>"
            b"<ab><lastChange>L</lastChange></ab></ABFindAllResult></ABFindAllResponse>"
        )
        result = parseAddressBook(parseXML(document))
        self.assertEqual(result.groups[0].name, "A & B")
        self.assertEqual(result.contacts[0].email, "x@y.z")
        self.assertEqual(result.contacts[0].groupIds, {"g"})
        self.assertEqual(result.deletedContactIds, ["c2"])
        self.assertEqual(result.lastChange, "L")

    def test_contactAdd(self) -> None:
        """
        ABContactAdd sends LivePending, the escaped invitation and
        EnableAllowListManagement, and fires with the returned guid.
        """
        addressBook = Canned((200, b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                                   b"<soap:Body><ABContactAddResponse><ABContactAddResult><guid>NEW-ID</guid>"
                                   b"</ABContactAddResult></ABContactAddResponse></soap:Body></soap:Envelope>"))
        harness = ClientHarness(Canned(), addressBook)
        d = harness.addressBook.contactAdd("frank@example.org", "Alice", "Hi <Frank> & co")
        harness.flush()
        self.assertEqual(self.successResultOf(d), "NEW-ID")
        method = child(parseXML(addressBook.requests[0][1]), "Body")[0]  # type: ignore[index]
        info = ("contacts", "Contact", "contactInfo")
        self.assertEqual(textOf(method, *info, "contactType"), "LivePending")
        self.assertEqual(textOf(method, *info, "passportName"), "frank@example.org")
        self.assertEqual(
            textOf(method, *info, "MessengerMemberInfo", "PendingAnnotations", "Annotation", "Value"),
            "Hi <Frank> & co",
        )
        self.assertEqual(textOf(method, "options", "EnableAllowListManagement"), "true")

    def test_guidMissing(self) -> None:
        """
        A group-add answer without a guid is a L{ServiceError}.
        """
        addressBook = Canned((200, b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                                   b"<soap:Body><ABGroupAddResponse/></soap:Body></soap:Envelope>"))
        harness = ClientHarness(Canned(), addressBook)
        d = harness.addressBook.groupAdd("Work")
        harness.flush()
        self.failureResultOf(d, ServiceError)


class FailureTests(SynchronousTestCase):
    """
    How L{msnp.soap.envelope.ABCHService.call} turns bad answers into errors.
    """

    def fetch(self, status: int, document: bytes) -> ServiceError:
        harness = ClientHarness(Canned((status, document)))
        d = harness.sharing.findMembership()
        harness.flush()
        failure = self.failureResultOf(d, ServiceError)
        assert isinstance(failure.value, ServiceError)
        return failure.value

    def test_faultWith500(self) -> None:
        """
        A fault with HTTP 500 carries code, string, detail errorcode and status.
        """
        error = self.fetch(500, FAULT_BODY)
        assert isinstance(error, ABCHFault)
        self.assertEqual(error.faultCode, "soap:Client")
        self.assertEqual(error.faultString, "Passport name is not valid")
        self.assertEqual(error.errorCode, "InvalidPassportUser")
        self.assertEqual(error.status, 500)
        self.assertIn("InvalidPassportUser", str(error))

    def test_faultWith200(self) -> None:
        """
        A fault with HTTP 200 is still a fault (reference section 10.3).
        """
        error = self.fetch(200, FAULT_BODY)
        assert isinstance(error, ABCHFault)
        self.assertEqual(error.faultString, "Passport name is not valid")
        self.assertEqual(error.status, 200)

    def test_403WithoutBody(self) -> None:
        """
        A refused ticket (bare 403) is a L{ServiceError} with status 403.
        """
        error = self.fetch(403, b"")
        self.assertEqual(error.status, 403)
        self.assertNotIsInstance(error, ABCHFault)

    def test_otherStatusWithoutFault(self) -> None:
        """
        An HTTP error with a non-fault document is a L{ServiceError}.
        """
        self.assertEqual(self.fetch(502, b"<html>bad gateway</html>").status, 502)

    def test_garbage(self) -> None:
        """
        A body that is not XML is a L{ServiceError}.
        """
        self.assertEqual(self.fetch(200, b"this is not xml <").status, 200)

    def test_notSOAP(self) -> None:
        """
        Well-formed XML that is not a SOAP envelope is a L{ServiceError}.
        """
        self.fetch(200, b"<FindMembershipResponse/>")

    def test_dtdRefused(self) -> None:
        """
        A body declaring a DTD is refused unparsed (L{UnsafeXML}).
        """
        error = self.fetch(
            200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + H2_RESPONSE[38:]
        )
        self.assertIsInstance(error, UnsafeXML)

    def test_timeout(self) -> None:
        """
        A service that never answers fails the call on the injected clock.
        """

        class Silent(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> Any:
                from twisted.web.server import NOT_DONE_YET
                return NOT_DONE_YET

        clock = Clock()
        stub = StubTreq(Silent())
        service = SharingService(stub, SHARING_URL, lambda: TICKET, clock, timeout=5)
        d = service.findMembership()
        stub.flush()
        self.assertNoResult(d)
        clock.advance(6)
        self.failureResultOf(d, ServiceError)


class SyncTests(SynchronousTestCase):
    """
    L{buildContactList} and L{initialListEntries} over H2 and H3.
    """

    def test_fixtureList(self) -> None:
        """
        bob is FL|AL|RL in Friends, carol FL|AL, dave RL|PL pending with
        membership id 301; the profile is Alice with BLP AL.
        """
        synced = buildContactList(h2Membership(), h3AddressBook(), "Alice@Example.com")
        contacts = synced.contacts
        self.assertEqual(len(contacts), 3)
        bob = contacts.get("bob@example.com")
        carol = contacts.get("carol@example.net")
        dave = contacts.get("dave@example.com")
        assert bob is not None and carol is not None and dave is not None
        self.assertEqual(bob.lists, Lists.FORWARD | Lists.ALLOW | Lists.REVERSE)
        self.assertEqual({contacts.groups[g].name for g in bob.groupIds}, {"Friends"})
        self.assertEqual(bob.contactId, "8d9c3f2a-1b2c-4d5e-8f90-a1b2c3d4e5f6")
        self.assertEqual(carol.lists, Lists.FORWARD | Lists.ALLOW)
        self.assertEqual(dave.lists, Lists.REVERSE | Lists.PENDING)
        self.assertTrue(dave.isPending)
        self.assertEqual(dave.membershipIds["Pending"], 301)
        self.assertEqual(dave.displayName, "Dave D.")
        self.assertIsNone(dave.contactId)
        self.assertEqual([c.email for c in contacts.pending()], ["dave@example.com"])
        profile = synced.profile
        self.assertEqual((profile.email, profile.displayName, profile.blp), ("alice@example.com", "Alice", "AL"))
        self.assertTrue(profile.mpop)
        self.assertTrue(profile.gtc)
        self.assertEqual(profile.cid, -5100000000000000001)

    def test_initialEntries(self) -> None:
        """
        The initial ADL holds bob and carol with l=3 and not dave, giving
        the fixture's ADL 6 payload.
        """
        synced = buildContactList(h2Membership(), h3AddressBook(), "alice@example.com")
        entries = initialListEntries(synced.contacts)
        self.assertEqual(
            entries,
            [
                ListEntry("bob@example.com", Lists.FORWARD | Lists.ALLOW),
                ListEntry("carol@example.net", Lists.FORWARD | Lists.ALLOW),
            ],
        )

    def test_forwardOnlyGetsAllow(self) -> None:
        """
        A forward-only contact is sent with AL too; a blocked one keeps BL
        only; a pending forward contact is left undecided; the Messenger
        bot and our own address never appear.
        """
        membership = MembershipResult()
        membership.roles["Block"]["blocked@x.com"] = Member("blocked@x.com", 5)
        membership.roles["Allow"]["blocked@x.com"] = Member("blocked@x.com", 6)
        membership.roles["Pending"]["asker@x.com"] = Member("asker@x.com", 7)
        book = AddressBookResult(
            contacts=[
                _ab("plain@x.com"), _ab("blocked@x.com"), _ab("asker@x.com"),
                _ab("messenger@microsoft.com"), _ab("me@x.com"), _ab("notim@x.com", messenger=False),
            ]
        )
        synced = buildContactList(membership, book, "me@x.com")
        self.assertNotIn("me@x.com", synced.contacts)
        self.assertNotIn("notim@x.com", synced.contacts)
        blocked = synced.contacts.get("blocked@x.com")
        assert blocked is not None
        self.assertEqual(blocked.lists, Lists.FORWARD | Lists.BLOCK)
        self.assertEqual(
            initialListEntries(synced.contacts),
            [
                ListEntry("plain@x.com", Lists.FORWARD | Lists.ALLOW),
                ListEntry("blocked@x.com", Lists.FORWARD | Lists.BLOCK),
                ListEntry("asker@x.com", Lists.FORWARD),
            ],
        )

    def test_blpVariants(self) -> None:
        """
        BLP 2 reads BL; BLP 0 reads BL on a used account, AL on a fresh one.
        """
        from msnp.soap.addressbook import MeContact

        def blp(value: str, contacts: list[Any]) -> str:
            book = AddressBookResult(me=MeContact(annotations={"MSN.IM.BLP": value}), contacts=contacts)
            return buildContactList(MembershipResult(), book, "me@x.com").profile.blp

        self.assertEqual(blp("2", []), "BL")
        self.assertEqual(blp("0", []), "AL")
        self.assertEqual(blp("0", [_ab("a@x.com")]), "BL")
        self.assertEqual(blp("1", [_ab("a@x.com")]), "AL")


def _ab(email: str, messenger: bool = True) -> Any:
    from msnp.soap.addressbook import ABContact

    return ABContact(contactId="id-" + email, email=email, displayName=email, isMessengerUser=messenger)


class OnePassParsingTests(SynchronousTestCase):
    """
    L{parseMembership} and L{parseAddressBook} read each member or contact
    in one pass over its children: the first element of each name counts,
    as the per-field lookups did, and the annotation holder is matched
    without regard to case in the address book.
    """

    def test_memberFirstFieldsWin(self) -> None:
        """
        Duplicated member fields: the first one is used; namespaced fields
        are found by local name; a lower-case C{annotations} holder is read.
        """
        document = (
            b'<FindMembershipResponse xmlns="http://www.msn.com/webservices/AddressBook" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:o="urn:other"><FindMembershipResult>'
            b"<Services><Service><Memberships><Membership><MemberRole>Pending</MemberRole><Members>"
            b'<Member xsi:type="EmailMember"><o:MembershipId>7</o:MembershipId><MembershipId>8</MembershipId>'
            b"<Email>Eve@Yahoo.com</Email><Email>other@yahoo.com</Email>"
            b"<DisplayName> Eve </DisplayName><DisplayName>Not Eve</DisplayName>"
            b"<annotations><Annotation><Name>MSN.IM.BuddyType</Name><Value>32:</Value></Annotation>"
            b"<Annotation><Name>MSN.IM.InviteMessage</Name><Value>hello</Value></Annotation></annotations>"
            b"<Annotations><Annotation><Name>MSN.IM.InviteMessage</Name><Value>later</Value></Annotation>"
            b"</Annotations><Deleted>false</Deleted><Deleted>true</Deleted></Member>"
            b"</Members></Membership></Memberships><Info><Handle><Type>Messenger</Type></Handle></Info>"
            b"</Service></Services></FindMembershipResult></FindMembershipResponse>"
        )
        result = parseMembership(parseXML(document))
        self.assertEqual(
            result.members("Pending"),
            {"eve@yahoo.com": Member("eve@yahoo.com", 7, "Eve", 32, None, "later")},
        )

    def test_contactFirstFieldsWin(self) -> None:
        """
        Duplicated contact fields: the first one is used; the first holder
        named C{annotations} in any case is read.
        """
        document = (
            b'<ABFindAllResponse xmlns="http://www.msn.com/webservices/AddressBook"><ABFindAllResult>'
            b"<contacts><Contact><contactId>c1</contactId><contactId>c9</contactId><contactInfo>"
            b"<passportName>X@y.z</passportName><passportName>w@y.z</passportName>"
            b"<ANNOTATIONS><Annotation><Name>A</Name><Value>1</Value></Annotation></ANNOTATIONS>"
            b"<annotations><Annotation><Name>B</Name><Value>2</Value></Annotation></annotations>"
            b"<quickName>Quick</quickName><quickName>Slow</quickName><CID>5</CID><CID>6</CID>"
            b"<isMessengerUser>true</isMessengerUser><isMessengerUser>false</isMessengerUser>"
            b"</contactInfo><contactInfo><passportName>z@y.z</passportName></contactInfo>"
            b"<fDeleted>false</fDeleted><fDeleted>true</fDeleted></Contact></contacts>"
            b"</ABFindAllResult></ABFindAllResponse>"
        )
        result = parseAddressBook(parseXML(document))
        self.assertEqual(result.deletedContactIds, [])
        [contact] = result.contacts
        self.assertEqual(
            (contact.contactId, contact.email, contact.displayName, contact.cid, contact.isMessengerUser),
            ("c1", "x@y.z", "Quick", 5, True),
        )
        self.assertEqual(contact.annotations, {"A": "1"})
