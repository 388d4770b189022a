"""
Tests for L{msnp.contacts}: the contact-list model and the ADL/RML codec.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import (
    Contact,
    ContactList,
    Endpoint,
    Group,
    Lists,
    Status,
    blpFromAnnotation,
    formatCurrentMedia,
    normalizeGuid,
    parseCurrentMedia,
)
from msnp.listpayload import ListEntry, buildListPayloads, parseListPayload
from msnp.errors import ProtocolError
from msnp.xmlsafe import localName, parseXML

#: Reference section 8.2, the initial ADL of the fixture session.
ADL_6 = (
    b'<ml l="1"><d n="example.com"><c n="bob" l="3" t="1" /></d>'
    b'<d n="example.net"><c n="carol" l="3" t="1" /></d></ml>'
)
#: Reference section 3.5, a server-initiated ADL.
SERVER_ADL = b'<ml><d n="example.com"><c n="dave" t="1" l="8" f="Dave%20D." /></d></ml>'


class ListPayloadTests(SynchronousTestCase):
    """
    L{buildListPayloads} and L{parseListPayload}.
    """

    def test_fixtureInitialADL(self) -> None:
        """
        bob and carol with FL|AL give exactly the 113 bytes of ADL 6.
        """
        payloads = buildListPayloads(
            [
                ListEntry("bob@example.com", Lists.FORWARD | Lists.ALLOW),
                ListEntry("carol@example.net", Lists.FORWARD | Lists.ALLOW),
            ],
            initial=True,
        )
        self.assertEqual(payloads, [ADL_6])
        self.assertEqual(len(payloads[0]), 113)

    def test_emptyInitial(self) -> None:
        """
        An empty initial list is the 15-byte C{<ml l="1"></ml>}.
        """
        self.assertEqual(buildListPayloads([], initial=True), [b'<ml l="1"></ml>'])

    def test_emptyIncremental(self) -> None:
        """
        An empty incremental list sends nothing at all.
        """
        self.assertEqual(buildListPayloads([], initial=False), [])

    def test_incrementalHasNoListAttribute(self) -> None:
        """
        Later ADL/RML payloads use a bare C{<ml>}.
        """
        self.assertEqual(
            buildListPayloads([ListEntry("carol@example.net", Lists.FORWARD)], initial=False),
            [b'<ml><d n="example.net"><c n="carol" l="1" t="1" /></d></ml>'],
        )

    def test_reverseAndPendingMasked(self) -> None:
        """
        RL and PL bits are never sent; an entry with only those is skipped,
        so no empty C{<d>} appears.
        """
        payloads = buildListPayloads(
            [
                ListEntry("dave@example.com", Lists.REVERSE | Lists.PENDING),
                ListEntry("bob@example.org", Lists.FORWARD | Lists.REVERSE),
            ],
            initial=False,
        )
        self.assertEqual(payloads, [b'<ml><d n="example.org"><c n="bob" l="1" t="1" /></d></ml>'])
        self.assertEqual(
            buildListPayloads([ListEntry("dave@example.com", Lists.PENDING)], initial=False), []
        )

    def test_sameDomainGrouped(self) -> None:
        """
        Addresses of one domain share one C{<d>}; duplicates merge their bits.
        """
        payloads = buildListPayloads(
            [
                ListEntry("a@x.com", Lists.FORWARD),
                ListEntry("b@y.com", Lists.BLOCK),
                ListEntry("c@x.com", Lists.ALLOW),
                ListEntry("A@X.com", Lists.ALLOW),
            ],
            initial=False,
        )
        self.assertEqual(
            payloads,
            [
                b'<ml><d n="x.com"><c n="a" l="3" t="1" /><c n="c" l="2" t="1" /></d>'
                b'<d n="y.com"><c n="b" l="4" t="1" /></d></ml>'
            ],
        )

    def test_escaping(self) -> None:
        """
        Attribute values are XML-escaped and the payload parses back.
        """
        payloads = buildListPayloads([ListEntry('o"neil&co@ex<ample.com', Lists.FORWARD)], False)
        self.assertIn(b"o&quot;neil&amp;co", payloads[0])
        self.assertEqual(parseListPayload(payloads[0])[0].email, 'o"neil&co@ex<ample.com')

    def test_yahooNetwork(self) -> None:
        """
        The network id goes into C{t}.
        """
        payloads = buildListPayloads([ListEntry("eve@yahoo.com", Lists.FORWARD, 32)], False)
        self.assertEqual(payloads, [b'<ml><d n="yahoo.com"><c n="eve" l="1" t="32" /></d></ml>'])

    def test_chunkingThousandContacts(self) -> None:
        """
        1,000 contacts over many domains split into complete documents of at
        most 7,500 bytes, each with C{l="1"}, no empty C{<d>}, and every
        contact exactly once with its bits.
        """
        entries = [
            ListEntry(f"user{i:04d}@domain{i % 37}.example.com", Lists.FORWARD | Lists.ALLOW)
            for i in range(1000)
        ]
        payloads = buildListPayloads(entries, initial=True)
        self.assertGreater(len(payloads), 1)
        seen: list[str] = []
        for payload in payloads:
            self.assertLessEqual(len(payload), 7500)
            root = parseXML(payload)
            self.assertEqual(localName(root.tag), "ml")
            self.assertEqual(root.get("l"), "1")
            domains = [d.get("n") for d in root]
            self.assertEqual(len(domains), len(set(domains)))
            for d in root:
                self.assertGreater(len(d), 0)
            for entry in parseListPayload(payload):
                self.assertEqual(entry.lists, Lists.FORWARD | Lists.ALLOW)
                seen.append(entry.email)
        self.assertEqual(sorted(seen), sorted(e.email for e in entries))
        self.assertEqual(len(seen), len(set(seen)))

    def test_chunkingSmallLimit(self) -> None:
        """
        A tight limit still yields valid documents, each within the limit.
        """
        entries = [ListEntry(f"u{i}@example.com", Lists.FORWARD) for i in range(10)]
        payloads = buildListPayloads(entries, initial=False, maxBytes=100)
        self.assertGreater(len(payloads), 2)
        for payload in payloads:
            self.assertLessEqual(len(payload), 100)
            self.assertTrue(parseListPayload(payload))
        self.assertEqual(sum(len(parseListPayload(p)) for p in payloads), 10)

    def test_entryTooLarge(self) -> None:
        """
        An entry that cannot fit even alone is a L{ValueError}, not a loop.
        """
        with self.assertRaises(ValueError):
            buildListPayloads([ListEntry("x" * 200 + "@example.com", Lists.FORWARD)], False, maxBytes=100)

    def test_notAnAddress(self) -> None:
        """
        An address without a domain cannot be put into a C{<d>}.
        """
        with self.assertRaises(ValueError):
            buildListPayloads([ListEntry("nodomain", Lists.FORWARD)], False)

    def test_nonASCII(self) -> None:
        """
        Sizes are counted in UTF-8 bytes and names survive the round trip.
        """
        entries = [ListEntry(f"j\u00fcrgen{i}@b\u00fccher.example", Lists.FORWARD) for i in range(300)]
        payloads = buildListPayloads(entries, initial=True, maxBytes=1000)
        for payload in payloads:
            self.assertLessEqual(len(payload), 1000)
        parsed = [e.email for p in payloads for e in parseListPayload(p)]
        self.assertEqual(parsed, [e.email for e in entries])

    def test_parseServerADL(self) -> None:
        """
        The server-initiated ADL gives dave on RL with his decoded name.
        """
        self.assertEqual(
            parseListPayload(SERVER_ADL),
            [ListEntry("dave@example.com", Lists.REVERSE, 1, "Dave D.")],
        )

    def test_parseNameNotPlusDecoded(self) -> None:
        """
        C{+} in C{f} stays a plus; non-ASCII percent-encoded UTF-8 decodes.
        """
        entries = parseListPayload(
            b'<ml><d n="example.com"><c n="x" l="8" t="1" f="Al%C3%AFce+%25" unknown="1" /></d></ml>'
        )
        self.assertEqual(entries[0].displayName, "Al\u00efce+%")

    def test_parseFQYReply(self) -> None:
        """
        An C{FQY} reply has no C{l}: it reads as no bits, with the network.
        """
        self.assertEqual(
            parseListPayload(b'<ml><d n="yahoo.com"><c n="eve" t="32" /></d></ml>'),
            [ListEntry("eve@yahoo.com", Lists(0), 32)],
        )

    def test_parseSkipsTelephone(self) -> None:
        """
        C{<t>} telephone entries are skipped, not fatal.
        """
        self.assertEqual(
            parseListPayload(b'<ml><t><c n="tel:+15551234567" l="1" /></t></ml>'), []
        )

    def test_parseMalformed(self) -> None:
        """
        Broken XML, a wrong root, missing names and bad numbers are
        L{ProtocolError}s.
        """
        for bad in (
            b"<ml><d n='x'>",
            b"<foo/>",
            b'<ml><d><c n="a" l="1" /></d></ml>',
            b'<ml><d n="x.com"><c l="1" /></d></ml>',
            b'<ml><d n="x.com"><c n="a" l="one" /></d></ml>',
            b'<!DOCTYPE ml [<!ENTITY a "b">]><ml/>',
        ):
            with self.assertRaises(ProtocolError, msg=repr(bad)):
                parseListPayload(bad)


class StatusTests(SynchronousTestCase):
    """
    L{Status}.
    """

    def test_roundTrip(self) -> None:
        """
        Every status maps to its code and back.
        """
        for status in Status:
            self.assertIs(Status.fromCode(status.code), status)
        self.assertEqual(Status.BE_RIGHT_BACK.code, "BRB")
        self.assertEqual(len(Status), 9)

    def test_unknown(self) -> None:
        """
        An unknown code is a L{ValueError}.
        """
        self.assertRaises(ValueError, Status.fromCode, "XYZ")


class GuidTests(SynchronousTestCase):
    """
    L{normalizeGuid} and L{Endpoint}.
    """

    def test_forms(self) -> None:
        """
        Case and braces do not matter.
        """
        forms = [
            "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}",
            "{6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}",
            "6f0d1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        ]
        self.assertEqual({normalizeGuid(f) for f in forms}, {forms[0]})
        self.assertRaises(ValueError, normalizeGuid, "{}")

    def test_endpointNormalised(self) -> None:
        """
        Endpoints store the normalised GUID, so contacts key them consistently.
        """
        contact = Contact("bob@example.com")
        contact.addEndpoint(Endpoint("{0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9}", "2789003324:48"))
        self.assertIn("{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}", contact.endpoints)
        self.assertIsNotNone(contact.removeEndpoint("0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9"))
        self.assertEqual(contact.endpoints, {})


class ContactListTests(SynchronousTestCase):
    """
    L{ContactList} and L{Contact}.
    """

    def test_mapping(self) -> None:
        """
        Lookups ignore case; iteration keeps insertion order.
        """
        contacts = ContactList()
        contacts.add(Contact("Bob@Example.com", lists=Lists.FORWARD | Lists.ALLOW))
        contacts.add(Contact("dave@example.com", lists=Lists.REVERSE | Lists.PENDING))
        self.assertIn("bob@example.COM", contacts)
        self.assertNotIn(42, contacts)
        self.assertEqual(len(contacts), 2)
        self.assertEqual([c.email for c in contacts], ["Bob@Example.com", "dave@example.com"])
        self.assertEqual([c.email for c in contacts.withList(Lists.FORWARD)], ["Bob@Example.com"])
        self.assertEqual([c.email for c in contacts.pending()], ["dave@example.com"])
        removed = contacts.remove("BOB@example.com")
        assert removed is not None
        self.assertEqual(removed.email, "Bob@Example.com")
        self.assertIsNone(contacts.remove("nobody@example.com"))

    def test_properties(self) -> None:
        """
        The convenience properties read the bits and the status.
        """
        contact = Contact("a@b.c", lists=Lists.FORWARD | Lists.BLOCK)
        self.assertTrue(contact.onForwardList)
        self.assertTrue(contact.isBlocked)
        self.assertFalse(contact.isAllowed)
        self.assertFalse(contact.isPending)
        self.assertFalse(contact.isOnline)
        contact.status = Status.HIDDEN
        self.assertFalse(contact.isOnline)
        contact.status = Status.AWAY
        self.assertTrue(contact.isOnline)

    def test_lookups(self) -> None:
        """
        Contacts by address-book id and groups by name.
        """
        contacts = ContactList(
            [Contact("bob@example.com", contactId="ABC-1")], [Group("g1", "Friends")]
        )
        found = contacts.byContactId("abc-1")
        assert found is not None
        self.assertEqual(found.email, "bob@example.com")
        self.assertIsNone(contacts.byContactId("nope"))
        group = contacts.groupNamed("Friends")
        assert group is not None
        self.assertEqual(group.groupId, "g1")
        self.assertIsNone(contacts.groupNamed("Work"))


class BLPTests(SynchronousTestCase):
    """
    L{blpFromAnnotation} (reference sections 4.13 and 10.3).
    """

    def test_values(self) -> None:
        """
        1 is AL; 0 is BL except on a fresh account; 2 is BL; missing is AL.
        """
        self.assertEqual(blpFromAnnotation("1"), "AL")
        self.assertEqual(blpFromAnnotation("0"), "BL")
        self.assertEqual(blpFromAnnotation("0", freshAccount=True), "AL")
        self.assertEqual(blpFromAnnotation("2"), "BL")
        self.assertEqual(blpFromAnnotation("2", freshAccount=True), "BL")
        self.assertEqual(blpFromAnnotation(None), "AL")


class CurrentMediaTests(SynchronousTestCase):
    """
    L{parseCurrentMedia} and L{formatCurrentMedia}.
    """

    def test_referenceExample(self) -> None:
        """
        The reference's example shows as "Song Title - Artist".
        """
        text = "\\0Music\\01\\0{0} - {1}\\0Song Title\\0Artist\\0Album\\0WMContentID\\0"
        self.assertEqual(parseCurrentMedia(text), "Song Title - Artist")

    def test_hiddenAndEmpty(self) -> None:
        """
        A hidden or empty value shows nothing.
        """
        self.assertEqual(parseCurrentMedia("\\0Music\\00\\0{0} - {1}\\0T\\0A\\0\\0"), "")
        self.assertEqual(parseCurrentMedia(""), "")
        self.assertEqual(parseCurrentMedia("garbage"), "")

    def test_format(self) -> None:
        """
        The built value has the reference's field layout (title, artist, album, content id) and parses back.
        """
        value = formatCurrentMedia("Song", "Band")
        self.assertEqual(value, "\\0Music\\01\\0{0} - {1}\\0Song\\0Band\\0\\0\\0")
        self.assertEqual(parseCurrentMedia(value), "Song - Band")
        self.assertEqual(parseCurrentMedia(formatCurrentMedia("Solo")), "Solo")
        self.assertEqual(formatCurrentMedia(""), "")

    def test_separatorInValues(self) -> None:
        """
        A backslash-zero inside a value cannot break the field layout.
        """
        self.assertEqual(parseCurrentMedia(formatCurrentMedia("A\\0B", "C")), "AB - C")


class GroupIdsTests(SynchronousTestCase):
    """
    L{Contact.groupIds} is built when first read (issue 13) but behaves as
    the per-contact set it always was.
    """

    def test_defaultIsOwnMutableSet(self) -> None:
        one, two = Contact("a@example.com"), Contact("b@example.com")
        self.assertEqual(one.groupIds, set())
        one.groupIds.add("g1")
        self.assertEqual(one.groupIds, {"g1"})
        self.assertEqual(two.groupIds, set())
        self.assertIs(one.groupIds, one.groupIds)

    def test_givenAndAssigned(self) -> None:
        given = {"g1"}
        contact = Contact("a@example.com", groupIds=given)
        self.assertIs(contact.groupIds, given)
        contact.groupIds = {"g2"}
        self.assertEqual(contact.groupIds, {"g2"})

    def test_equalityReprAndCopy(self) -> None:
        import copy

        lazy = Contact("a@example.com")
        self.assertEqual(lazy, Contact("a@example.com", groupIds=set()))
        self.assertNotEqual(lazy, Contact("a@example.com", groupIds={"g"}))
        self.assertIn("groupIds=set()", repr(Contact("a@example.com")))
        original = Contact("a@example.com")
        copied = copy.deepcopy(original)
        copied.groupIds.add("g")
        self.assertEqual(original.groupIds, set())
        grouped = Contact("a@example.com", groupIds={"g"})
        self.assertEqual(copy.deepcopy(grouped).groupIds, {"g"})
