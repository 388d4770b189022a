"""
The client's merge of ABCH delta answers (L{msnp.soap.sync}): whatever the
previous state and the new one, the previous answer with the delta between
them merged in equals a full answer of the new state (property tests).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import Group
from msnp.soap.addressbook import ABContact, AddressBookResult, MeContact
from msnp.soap.sharing import ROLES, Member, MembershipResult
from msnp.soap.sync import applyAddressBookDelta, applyMembershipDelta

_emails = st.sampled_from([f"u{i}@example.com" for i in range(6)])
_ids = st.sampled_from([f"id-{i}" for i in range(6)])
_roles = st.dictionaries(st.sampled_from(ROLES), st.dictionaries(_emails, st.integers(1, 9), max_size=4))
_book = st.dictionaries(_ids, st.tuples(_emails, st.text(max_size=3)), max_size=5)
_groups = st.dictionaries(_ids, st.text(max_size=3), max_size=3)


def membership(state: dict[str, dict[str, int]], stamp: str) -> MembershipResult:
    result = MembershipResult(lastChange=stamp)
    for role, members in state.items():
        result.roles[role] = {e: Member(e, membershipId=n) for e, n in members.items()}
    return result


def membershipDelta(old: dict[str, dict[str, int]], new: dict[str, dict[str, int]], stamp: str) -> MembershipResult:
    """
    What the server sends: changed and new members, deleted ones marked.
    """
    delta = MembershipResult(roles={}, lastChange=stamp)
    for role in ROLES:
        before, after = old.get(role, {}), new.get(role, {})
        changed = {e: Member(e, membershipId=n) for e, n in after.items() if before.get(e) != n}
        if changed:
            delta.roles[role] = changed
        gone = set(before) - set(after)
        if gone:
            delta.deleted[role] = gone
    return delta


def book(contacts: dict[str, tuple[str, str]], groups: dict[str, str], stamp: str) -> AddressBookResult:
    return AddressBookResult(
        me=MeContact(contactId="me", email="me@example.com"),
        contacts=[ABContact(contactId=i, email=e, displayName=n) for i, (e, n) in contacts.items()],
        groups=[Group(i, n) for i, n in groups.items()],
        lastChange=stamp,
    )


class MergeTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None, database=None)
    @given(_roles, _roles)
    def test_membershipDeltaMergesToFull(self, old: dict[str, dict[str, int]], new: dict[str, dict[str, int]]) -> None:
        """
        A full answer of C{old} with the delta to C{new} merged in has
        exactly the members of a full answer of C{new}.
        """
        merged = applyMembershipDelta(membership(old, "1"), membershipDelta(old, new, "2"))
        full = membership(new, "2")
        self.assertEqual({r: m for r, m in merged.roles.items() if m}, {r: m for r, m in full.roles.items() if m})
        self.assertEqual(merged.lastChange, "2")

    @settings(max_examples=300, deadline=None, database=None)
    @given(_book, _groups, _book, _groups)
    def test_addressBookDeltaMergesToFull(self, oldContacts: dict[str, tuple[str, str]], oldGroups: dict[str, str],
                                          newContacts: dict[str, tuple[str, str]], newGroups: dict[str, str]) -> None:
        """
        The same for the address book: contacts and groups by id, the
        deleted ones (C{fDeleted}) gone, the changed ones replaced.
        """
        delta = book({i: c for i, c in newContacts.items() if oldContacts.get(i) != c},
                     {i: g for i, g in newGroups.items() if oldGroups.get(i) != g}, "2")
        delta.me = None
        delta.deletedContactIds = sorted(set(oldContacts) - set(newContacts))
        delta.deletedGroupIds = sorted(set(oldGroups) - set(newGroups))
        merged = applyAddressBookDelta(book(oldContacts, oldGroups, "1"), delta)
        full = book(newContacts, newGroups, "2")
        key = lambda c: c.contactId  # noqa: E731
        self.assertEqual(sorted(merged.contacts, key=key), sorted(full.contacts, key=key))
        self.assertEqual(sorted(merged.groups, key=lambda g: g.groupId), sorted(full.groups, key=lambda g: g.groupId))
        self.assertEqual(merged.me, full.me)
        self.assertEqual(merged.lastChange, "2")
