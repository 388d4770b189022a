"""
Contact-list processing cost: a 1,000-contact C{ABFindContactsPaged}
response (the shape of reference section 8.3, step H3) and the matching
C{FindMembership} (step H2), taken from bytes to the initial C{ADL}
payloads by msnp, against a same-run baseline of merely parsing the same
two documents with C{xml.etree.ElementTree.fromstring}.

The stages are timed one by one, as the login runs them:
L{msnp.xmlsafe.parseXML} (the refusal checks plus the parse),
L{msnp.soap.sharing.parseMembership} and
L{msnp.soap.addressbook.parseAddressBook} (on the SOAP body's first child,
as the SOAP clients hand it over), L{msnp.soap.sync.buildContactList},
L{msnp.soap.sync.initialListEntries} and
L{msnp.contacts.buildListPayloads} with C{initial=True}.

The generated book: N contacts over 10 domains and 10 groups, all on Allow
and Reverse except every 50th, which is on Block; 20 more people are only
Pending. Each value is the median of C{--repeat} runs.

Usage: C{python bench/bench_addressbook.py [--contacts 1000] [--repeat 30]}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from msnp.listpayload import buildListPayloads  # noqa: E402
from msnp.soap.addressbook import parseAddressBook  # noqa: E402
from msnp.soap.sharing import parseMembership  # noqa: E402
from msnp.soap.sync import buildContactList, initialListEntries  # noqa: E402
from msnp.xmlsafe import child, parseXML  # noqa: E402

OWNER = "alice@example.com"
STAMP = "2009-12-30T10:00:00.0000000-08:00"
GROUPS = 10
DOMAINS = 10
PENDING = 20

_ENVELOPE_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
    '<soap:Header><ServiceHeader xmlns="http://www.msn.com/webservices/AddressBook"><Version>15.01.1408.0000</Version>'
    "<CacheKey>12r1:EXAMPLEcacheKEY0002</CacheKey><CacheKeyChanged>true</CacheKeyChanged>"
    "<PreferredHostName>local-bay.contacts.msn.com</PreferredHostName>"
    "<SessionId>5d2f8a70-3c1e-4b8a-9f00-1a2b3c4d5e6f</SessionId></ServiceHeader></soap:Header><soap:Body>"
)
_ENVELOPE_TAIL = "</soap:Body></soap:Envelope>"

_CONTACT_TAIL = (
    "<IsNotMobileVisible>false</IsNotMobileVisible><isMobileIMEnabled>false</isMobileIMEnabled>"
    "<isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>false</isSmtp>"
    "<hasSpace>false</hasSpace><spotWatchState>NoDevice</spotWatchState><birthdate>0001-01-01T00:00:00</birthdate>"
    "<primaryEmailType>ContactEmailPersonal</primaryEmailType><PrimaryLocation>ContactLocationPersonal</PrimaryLocation>"
    "<PrimaryPhone>ContactPhonePersonal</PrimaryPhone><IsPrivate>false</IsPrivate><Gender>Unspecified</Gender>"
    "<TimeZone>None</TimeZone></contactInfo><propertiesChanged /><fDeleted>false</fDeleted>"
    f"<lastChange>{STAMP}</lastChange></Contact>"
)


def contactEmail(index: int) -> str:
    return f"contact{index}@domain{index % DOMAINS}.example.com"


def _groupIds() -> list[str]:
    return [str(uuid.UUID(int=0x4A7E0B9E2F2C4B7F9A3E6C8D1E2F0000 + g)) for g in range(GROUPS)]


def addressBookDocument(count: int) -> bytes:
    """
    An C{ABFindContactsPaged} response with the Me contact and C{count}
    regular contacts.
    """
    groups = _groupIds()
    parts = [_ENVELOPE_HEAD, '<ABFindContactsPagedResponse xmlns="http://www.msn.com/webservices/AddressBook">'
             "<ABFindContactsPagedResult><Groups>"]
    for index, groupId in enumerate(groups):
        parts.append(
            f"<Group><groupId>{groupId}</groupId><groupInfo><annotations><Annotation><Name>MSN.IM.Display</Name>"
            "<Value>1</Value></Annotation></annotations><groupType>c8529ce2-6ead-434d-881f-341e17db3ff8</groupType>"
            f"<name>Group {index}</name><IsNotMobileVisible>false</IsNotMobileVisible><IsPrivate>false</IsPrivate>"
            f"<IsFavorite>false</IsFavorite></groupInfo><propertiesChanged /><fDeleted>false</fDeleted>"
            f"<lastChange>{STAMP}</lastChange></Group>"
        )
    parts.append("</Groups><Contacts>")
    parts.append(
        "<Contact><contactId>00000000-0000-0000-0000-000000000001</contactId><contactInfo><annotations>"
        "<Annotation><Name>MSN.IM.MBEA</Name><Value>0</Value></Annotation><Annotation><Name>MSN.IM.GTC</Name>"
        "<Value>1</Value></Annotation><Annotation><Name>MSN.IM.BLP</Name><Value>1</Value></Annotation>"
        "<Annotation><Name>MSN.IM.MPOP</Name><Value>1</Value></Annotation><Annotation>"
        "<Name>MSN.IM.RoamLiveProperties</Name><Value>1</Value></Annotation></annotations>"
        f"<contactType>Me</contactType><quickName>Alice</quickName><passportName>{OWNER}</passportName>"
        "<IsPassportNameHidden>false</IsPassportNameHidden><displayName>Alice</displayName><puid>0</puid>"
        "<CID>-5100000000000000001</CID>" + _CONTACT_TAIL
    )
    for index in range(count):
        name = f"Contact {index}"
        parts.append(
            f"<Contact><contactId>{uuid.UUID(int=index + 1)}</contactId><contactInfo>"
            f"<contactType>Regular</contactType><quickName>{name}</quickName>"
            f"<passportName>{contactEmail(index)}</passportName><IsPassportNameHidden>false</IsPassportNameHidden>"
            f"<displayName>{name}</displayName><puid>0</puid>"
            f"<groupIds><guid>{groups[index % GROUPS]}</guid></groupIds>"
            f"<CID>{1000000000000 + index}</CID>" + _CONTACT_TAIL
        )
    parts.append(
        "</Contacts><CircleResult><CircleTicket>&lt;?xml version=\"1.0\" encoding=\"utf-16\"?&gt;"
        "&lt;SignedTicket ver=\"1\" keyVer=\"1\"&gt;&lt;Data&gt;RVhBTVBMRQ==&lt;/Data&gt;&lt;Sig&gt;U0lH&lt;/Sig&gt;"
        "&lt;/SignedTicket&gt;</CircleTicket></CircleResult><Ab><abId>00000000-0000-0000-0000-000000000000</abId>"
        f"<abInfo><ownerPuid>0</ownerPuid><OwnerCID>-5100000000000000001</OwnerCID><ownerEmail>{OWNER}</ownerEmail>"
        "<fDefault>true</fDefault><joinedNamespace>false</joinedNamespace><IsBot>false</IsBot>"
        "<IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false</SubscribeExternalPartner>"
        "<NotifyExternalPartner>false</NotifyExternalPartner><AddressBookType>Individual</AddressBookType></abInfo>"
        f"<lastChange>{STAMP}</lastChange><DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged>"
        "<createDate>2009-06-01T10:00:00.0000000-07:00</createDate><propertiesChanged /></Ab>"
        "</ABFindContactsPagedResult></ABFindContactsPagedResponse>"
    )
    parts.append(_ENVELOPE_TAIL)
    return "".join(parts).encode("utf-8")


def _member(membershipId: int, email: str, displayName: str = "") -> str:
    name = f"<DisplayName>{displayName}</DisplayName>" if displayName else ""
    return (
        f'<Member xsi:type="PassportMember"><MembershipId>{membershipId}</MembershipId><Type>Passport</Type>{name}'
        f"<State>Accepted</State><Deleted>false</Deleted><LastChanged>{STAMP}</LastChanged>"
        "<JoinedDate>2009-06-01T10:00:00.0000000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate>"
        f"<Changes /><PassportName>{email}</PassportName><IsPassportNameHidden>false</IsPassportNameHidden>"
        f"<PassportId>0</PassportId><CID>{membershipId}</CID><PassportChanges /><LookedupByCID>false</LookedupByCID>"
        "</Member>"
    )


def membershipDocument(count: int) -> bytes:
    """
    The matching C{FindMembership} response: Allow/Block/Reverse for the
    C{count} contacts, and L{PENDING} extra people on Pending and Reverse.
    """
    roles: dict[str, list[str]] = {"Allow": [], "Block": [], "Reverse": [], "Pending": []}
    nextId = 1000
    for index in range(count):
        role = "Block" if index % 50 == 0 else "Allow"
        roles[role].append(_member(nextId, contactEmail(index)))
        roles["Reverse"].append(_member(nextId + 1, contactEmail(index)))
        nextId += 2
    for index in range(PENDING):
        email = f"stranger{index}@example.org"
        roles["Pending"].append(_member(nextId, email, f"Stranger {index}"))
        roles["Reverse"].append(_member(nextId + 1, email, f"Stranger {index}"))
        nextId += 2
    parts = [_ENVELOPE_HEAD.replace("EXAMPLEcacheKEY0002", "EXAMPLEcacheKEY0001"),
             '<FindMembershipResponse xmlns="http://www.msn.com/webservices/AddressBook"><FindMembershipResult>'
             "<Services><Service><Memberships>"]
    for role, members in roles.items():
        parts.append(f"<Membership><MemberRole>{role}</MemberRole><Members>{''.join(members)}</Members>"
                     "<MembershipIsComplete>true</MembershipIsComplete></Membership>")
    parts.append(
        "</Memberships><Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId /></Handle>"
        "<InverseRequired>false</InverseRequired><AuthorizationCriteria>Everyone</AuthorizationCriteria>"
        f"<IsBot>false</IsBot></Info><Changes /><LastChange>{STAMP}</LastChange><Deleted>false</Deleted>"
        "</Service></Services></FindMembershipResult></FindMembershipResponse>"
    )
    parts.append(_ENVELOPE_TAIL)
    return "".join(parts).encode("utf-8")


def _firstOfBody(root: Any) -> Any:
    body = child(root, "Body")
    assert body is not None and len(body)
    return body[0]


def _median(repeat: int, function: Callable[[], Any]) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    book = addressBookDocument(args.contacts)
    membership = membershipDocument(args.contacts)
    # Sanity: the documents are what the login would see.
    bookRoot, memberRoot = parseXML(book), parseXML(membership)
    synced = buildContactList(parseMembership(_firstOfBody(memberRoot)), parseAddressBook(_firstOfBody(bookRoot)), OWNER)
    assert len(synced.contacts) == args.contacts + PENDING, len(synced.contacts)

    r = args.repeat
    stages: list[tuple[str, float]] = []
    baseline, _ = _median(r, lambda: (ET.fromstring(book), ET.fromstring(membership)))
    t, (bookRoot, memberRoot) = _median(r, lambda: (parseXML(book), parseXML(membership)))
    stages.append(("parseXML (both documents)", t))
    t, parsedMembership = _median(r, lambda: parseMembership(_firstOfBody(memberRoot)))
    stages.append(("parseMembership", t))
    t, parsedBook = _median(r, lambda: parseAddressBook(_firstOfBody(bookRoot)))
    stages.append(("parseAddressBook", t))
    t, synced = _median(r, lambda: buildContactList(parsedMembership, parsedBook, OWNER))
    stages.append(("buildContactList", t))
    t, entries = _median(r, lambda: initialListEntries(synced.contacts))
    stages.append(("initialListEntries", t))
    t, payloads = _median(r, lambda: buildListPayloads(entries, initial=True))
    stages.append(("buildListPayloads(initial=True)", t))
    total = sum(t for _, t in stages)

    print(f"Address book of {args.contacts} contacts (+{PENDING} pending): ABFindContactsPaged {len(book):,} bytes, "
          f"FindMembership {len(membership):,} bytes; {len(entries)} ADL entries in {len(payloads)} payloads; "
          f"median of {r} runs, Python {sys.version.split()[0]}")
    print()
    print(f"{'stage':<36}{'median':>10}{'x baseline':>12}")
    print(f"{'baseline: ET.fromstring (both)':<36}{baseline * 1000:>8.2f}ms{1:>11.2f}x")
    for name, t in stages:
        print(f"{name:<36}{t * 1000:>8.2f}ms{t / baseline:>11.2f}x")
    print(f"{'msnp total (bytes to ADL payloads)':<36}{total * 1000:>8.2f}ms{total / baseline:>11.2f}x")


if __name__ == "__main__":
    main()
