"""
The ABCH SOAP clients: L{sharing.SharingService} (memberships),
L{addressbook.AddressBookService} (forward list, groups, Me contact), their
shared plumbing in L{envelope}, and the merge into a contact list in L{sync}.
"""

from msnp.soap.addressbook import ABContact, AddressBookResult, AddressBookService, MeContact, parseAddressBook
from msnp.soap.envelope import ABCHCache, ABCHFault, ABCHService
from msnp.soap.sharing import Member, MembershipResult, SharingService, parseMembership
from msnp.soap.sync import SyncedList, buildContactList, initialListEntries

__all__ = [
    "ABCHCache",
    "ABCHFault",
    "ABCHService",
    "ABContact",
    "AddressBookResult",
    "AddressBookService",
    "MeContact",
    "Member",
    "MembershipResult",
    "SharingService",
    "SyncedList",
    "buildContactList",
    "initialListEntries",
    "parseAddressBook",
    "parseMembership",
]
