"""
The ABCH delta sync end to end: real L{msnp.client.MSNClient}s signed in to
a L{msnp.server.network.LocalNetwork} over loopback sockets, the requests
counted on the server side.

alice is signed in at two places; the first changes the list (a contact
added, one removed, one renamed, a group added), the local network tells
the second with address-book C{NOT}s, and the second answers the burst
with one delta request to each service, ending with exactly the list a
fresh full sync gives. When the server cannot answer deltas it refuses
with C{FullSyncRequired} and the client downloads everything instead.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from xml.etree.ElementTree import Element

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from msnp.server.abchdelta import deltaRequest
from msnp.server.soapservice import ServiceFault
from msnp.soap.sync import buildContactList

from test.support import EventRecorder, signIn, startLocalNetwork

PASSWORD = "secret-pw"
ALICE = "alice@example.com"


class Recorder(EventRecorder):
    """
    Counts C{contactListChanged}.
    """

    def contactListChanged(self, session: Any) -> None:
        self._record("contactListChanged")


def listState(contacts: Any) -> tuple[dict[str, tuple[Any, ...]], dict[str, str]]:
    """
    What a sync decides about a contact list: per contact its lists, ids,
    groups, name, network and membership ids; the groups by id.
    """
    people = {
        c.email: (int(c.lists), c.contactId, frozenset(c.groupIds), c.displayName, c.network, c.cid,
                  c.isMessengerUser, tuple(sorted(c.membershipIds.items())))
        for c in contacts
    }
    return people, {groupId: g.name for groupId, g in contacts.groups.items()}


class DeltaSyncEndToEndTests(TestCase):
    """
    alice with bob and carol as mutual contacts, dave a stranger.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        names = ("alice", "bob", "carol", "dave")
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(f"{name}@example.com", PASSWORD, name.capitalize()) for name in names],
            mutualContacts=[(ALICE, "bob@example.com"), (ALICE, "carol@example.com")],
            reactor=reactor,
        )
        self.requests: list[tuple[str, Optional[str], str]] = []
        self.circleReads: list[tuple[str, Optional[str]]] = []
        abch = self.network.abch
        assert abch is not None
        # The circles' own reads of the personal book (scenario
        # CircleSave) are kept apart, in circleReads: self.requests holds
        # the contact list's.
        self.scenario = ""
        handle = abch.handle

        def handleNoting(request: Any, service: str, actions: Any) -> bytes:
            body = request.content.read()
            request.content.seek(0)
            found = re.search(rb"<PartnerScenario>([^<]*)</PartnerScenario>", body)
            self.scenario = found.group(1).decode("ascii", "replace") if found else ""
            return handle(request, service, actions)

        abch.handle = handleNoting  # type: ignore[method-assign]
        for endpoint, action, flag, since in (
            (abch._sharing, "FindMembership", "deltasOnly", "lastChange"),
            (abch._addressBook, "ABFindContactsPaged", "DeltasOnly", "LastChanged"),
        ):
            endpoint.actions[action] = self._counting(endpoint.actions[action], action, flag, since)

    def _counting(self, handler: Any, action: str, flag: str, since: str) -> Any:
        def counted(account: Any, method: Element) -> str:
            if self.scenario == "CircleSave":
                self.circleReads.append((account.email, deltaRequest(method, flag, since)))
                answer: str = handler(account, method)
                return answer
            stamp = deltaRequest(method, flag, since)
            try:
                answer = handler(account, method)
            except ServiceFault as fault:
                self.requests.append((action, stamp, fault.errorCode))
                raise
            self.requests.append((action, stamp, "ok"))
            return answer

        return counted

    def counts(self) -> dict[tuple[str, str, str], int]:
        """
        The requests since the last L{reset}: (action, C{delta}/C{full},
        outcome) to how many.
        """
        found: dict[tuple[str, str, str], int] = {}
        for action, stamp, outcome in self.requests:
            key = (action, "delta" if stamp else "full", outcome)
            found[key] = found.get(key, 0) + 1
        return found

    async def changeAtFirstPlace(self, first: Any) -> None:
        """
        At the first place: dave added, bob removed, carol renamed, a group.
        """
        await first.addContact("dave@example.com")
        await first.removeContact("bob@example.com")
        carol = first.contacts.get("carol@example.com")
        await first.roster.addressBook.contactUpdateDisplayName(carol.contactId, "Carol the Renamed")
        await first.addGroup("Climbing")

    async def fullSync(self, session: Any) -> Any:
        """
        The list a fresh full download of both services gives.
        """
        membership = await session.roster.sharing.findMembership()
        book = await session.roster.addressBook.findContactsPaged()
        return buildContactList(membership, book, ALICE).contacts

    async def settled(self, session: Any, events: Recorder, expected: Any) -> None:
        await events.waitFor(lambda: listState(session.contacts) == listState(expected), "the list settles")

    async def test_burstCostsOneDeltaRequestPerService(self) -> None:
        """
        Changes at another place reach the second place as a burst of
        address-book C{NOT}s; it sends one C{deltasOnly} request to each
        service (no full download) and its list then equals a fresh full
        sync, renamed, removed and added contacts and the new group
        included.
        """
        first = await signIn(self, ALICE, PASSWORD, self.endpoints)
        events = Recorder("second")
        second = await signIn(self, ALICE, PASSWORD, self.endpoints, events)
        del self.requests[:]
        await self.changeAtFirstPlace(first)
        await events.waitFor(lambda: bool(events.named("contactListChanged")), "contactListChanged")
        await events.waitFor(lambda: len(self.requests) >= 2, "both delta requests")
        self.assertEqual(
            self.counts(),
            {("FindMembership", "delta", "ok"): 1, ("ABFindContactsPaged", "delta", "ok"): 1},
        )
        expected = await self.fullSync(second)
        await self.settled(second, events, expected)
        self.assertFalse(second.contacts.get("bob@example.com").onForwardList)
        self.assertEqual(second.contacts.get("carol@example.com").displayName, "Carol the Renamed")
        self.assertTrue(second.contacts.get("dave@example.com").onForwardList)
        self.assertIsNotNone(second.contacts.groupNamed("Climbing"))

    async def test_noCircleReadWithoutCircles(self) -> None:
        """
        An account in no circle, whose address-book delta lists none,
        does not download its personal book again for the circles after
        the C{NOT}s (at a thousand contacts that is a megabyte per
        burst); once the delta lists a circle invitation, it does, and
        the invitation arrives.
        """
        first = await signIn(self, ALICE, PASSWORD, self.endpoints)
        events = Recorder("second")
        second = await signIn(self, ALICE, PASSWORD, self.endpoints, events)
        del self.circleReads[:]
        await self.changeAtFirstPlace(first)
        await events.waitFor(lambda: bool(events.named("contactListChanged")), "contactListChanged")
        # Joins the circle refresh the NOTs queued after the contact list's.
        await second._circleRefreshes.request()
        self.assertIs(second.roster.bookDeltaListsCircles, False)
        self.assertEqual(self.circleReads, [])
        self.assertEqual(second.circleInvitations, {})

        bob = await signIn(self, "bob@example.com", PASSWORD, self.endpoints)
        circle = await bob.createCircle("Climbers")
        await circle.invite(ALICE)
        await events.waitFor(lambda: circle.circleId in second.circleInvitations, "the invitation")
        self.assertTrue(second.roster.bookDeltaListsCircles)
        # Read in full, by each of alice's two places.
        reads = [stamp for email, stamp in self.circleReads if email == ALICE]
        self.assertTrue(reads)
        self.assertEqual(set(reads), {None})

    async def test_refusedDeltasFallBackToFullSync(self) -> None:
        """
        A server that no longer holds the stamp (here: its journal
        forgotten, as after a restart) refuses each delta request with
        C{FullSyncRequired}; the client downloads both services in full
        once, and its list equals a fresh full sync.
        """
        first = await signIn(self, ALICE, PASSWORD, self.endpoints)
        events = Recorder("second")
        second = await signIn(self, ALICE, PASSWORD, self.endpoints, events)
        abch = self.network.abch
        assert abch is not None
        abch.membershipDeltas.forget(ALICE)
        abch.addressBookDeltas.forget(ALICE)
        del self.requests[:]
        await self.changeAtFirstPlace(first)
        await events.waitFor(lambda: bool(events.named("contactListChanged")), "contactListChanged")
        await events.waitFor(lambda: len(self.requests) >= 4, "the refusals and the full downloads")
        self.assertEqual(
            self.counts(),
            {
                ("FindMembership", "delta", "FullSyncRequired"): 1,
                ("ABFindContactsPaged", "delta", "FullSyncRequired"): 1,
                ("FindMembership", "full", "ok"): 1,
                ("ABFindContactsPaged", "full", "ok"): 1,
            },
        )
        expected = await self.fullSync(second)
        await self.settled(second, events, expected)
        self.assertFalse(second.contacts.get("bob@example.com").onForwardList)
