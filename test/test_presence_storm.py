"""
A presence storm end to end: after a real sign-in to a
L{msnp.server.network.LocalNetwork} over loopback, the NS connection gets a
scripted tail of a few thousand presence commands (C{NLN}, C{UBX},
C{FLN}, address-book C{NOT}s, C{MSG}s), and every contact's state must
then be what a plain reference model of the same stream gives.

The reference model below is written from the protocol reference
(sections 4.7, 4.8, 3.11), not from msnp's code: one dict per contact,
updated line by line. It exists so that faster presence paths (caches,
pre-parsers, debounced address-book refreshes) can be checked against the
obvious semantics. The test is not timed.

The stream has two parts, each ended by a marker C{NLN} whose
C{contactNameChanged} makes the observer take a snapshot of the contact
list at exactly that point of the stream:
  - part A has no C{NOT}, and contacts may end it offline or with only
    some of their places left;
  - part B interleaves address-book C{NOT}s, each of which starts a
    refresh whose result races the presence lines, and ends with every
    contact online again (a last C{NLN} each, then perhaps a C{UBX}), so
    that the refreshes, which rightly give an offline contact back the
    address book's name, cannot make the expected names depend on timing.
"""

from __future__ import annotations

import random
from typing import Any, Optional
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from test.support import EventRecorder, LIST_EVENTS, Summary, pollUntil, signIn, startLocalNetwork

PASSWORD = "storm-pw"
OWNER = "alice@example.com"
CONTACTS = [f"c{i}@example.com" for i in range(24)]
MARKER_A = "__end of part A__"
MARKER_B = "__end of part B__"
STATUSES = ("NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN")
TEXTS = ("hi", "at work", "100% sure", "a & b <c>", "Café ☕", "tab\there", "quote \" and '", "+plus+", "%41 literal")


# -- the reference model ---------------------------------------------------------------


def normalGuid(text: str) -> str:
    return "{" + text.strip().strip("{}").upper() + "}"


class Model:
    """
    What a client must know after each line: per contact its status code,
    display name, personal message, current media, MSN object and places
    (normalised GUID -> capabilities).
    """

    def __init__(self, initial: dict[str, dict[str, Any]]) -> None:
        self.contacts = {email: dict(state, places=dict(state["places"])) for email, state in initial.items()}

    def nln(self, status: str, account: str, name: str, caps: str, obj: str) -> None:
        email, _, guid = account.partition(";")
        c = self.contacts[email]
        c["status"] = status
        c["name"] = unquote(name)
        c["object"] = None if obj == "0" else unquote(obj)
        if guid and normalGuid(guid) not in c["places"]:
            c["places"][normalGuid(guid)] = caps

    def ubx(self, email: str, psm: str, media: str, places: Optional[dict[str, str]]) -> None:
        c = self.contacts[email]
        c["psm"], c["media"] = psm, media
        if places is not None:
            c["places"] = {normalGuid(g): caps for g, caps in places.items()}

    def fln(self, account: str) -> None:
        email, _, guid = account.partition(";")
        c = self.contacts[email]
        if guid:
            c["places"].pop(normalGuid(guid), None)
            if c["places"]:
                return
        c["places"] = {}
        c["status"] = "FLN"


# -- the stream -------------------------------------------------------------------------


class Storm:
    """
    Builds the stream and applies each line to the model as it goes.
    """

    def __init__(self, model: Model, seed: int) -> None:
        self.model = model
        self.rng = random.Random(seed)
        self.out: list[bytes] = []
        self.places: dict[str, list[str]] = {email: [self.guid()] for email in CONTACTS}
        self.notSerial = 0

    def guid(self) -> str:
        h = "%032x" % self.rng.getrandbits(128)
        g = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return "{" + (g.upper() if self.rng.random() < 0.5 else g) + "}"

    def text(self) -> str:
        return f"{self.rng.choice(TEXTS)} {self.rng.randint(0, 10**6)}"

    def nln(self, email: str, name: Optional[str] = None) -> None:
        rng = self.rng
        status = rng.choice(STATUSES)
        caps = f"{rng.choice((2789003324, 1985229100))}:{rng.choice((48, 0))}"
        obj = "0"
        if rng.random() < 0.6:
            obj = quote(f'<msnobj Creator="{email}" Size="{rng.randint(1, 9999)}" Type="3" SHA1D="{rng.getrandbits(64):x}"/>', safe="")
        account = email
        if rng.random() < 0.15:
            known = self.places[email]
            account = f"{email};{rng.choice(known) if known and rng.random() < 0.5 else self.guid()}"
        encoded = quote(name if name is not None else self.text(), safe="")
        self.out.append(f"NLN {status} 1:{account} {encoded} {caps} {obj}\r\n".encode("utf-8"))
        self.model.nln(status, account, encoded, caps, obj)

    def ubx(self, email: str) -> None:
        rng = self.rng
        if rng.random() < 0.05:
            self.out.append(f"UBX 1:{email} 0\r\n".encode("ascii"))
            self.model.ubx(email, "", "", None)
            return
        if rng.random() < 0.3:
            self.places[email] = [self.guid() for _ in range(rng.randint(0, 3))]
        places = {g: f"{rng.randint(1, 2**31)}:{rng.choice((48, 0))}" for g in self.places[email]}
        psm = self.text() if rng.random() < 0.9 else ""
        media = "" if rng.random() < 0.6 else f"\\0Music\\01\\0{{0}} - {{1}}\\0{self.text()}\\0Artist\\0\\0"
        endpoints = "".join(
            f'<EndpointData id="{g}"><Capabilities>{caps}</Capabilities></EndpointData>' for g, caps in places.items()
        )
        payload = (
            f"<Data><PSM>{escape(psm)}</PSM><CurrentMedia>{escape(media)}</CurrentMedia>{endpoints}"
            "<DDP></DDP><ColorScheme>-3</ColorScheme></Data>"
        ).encode("utf-8")
        self.out.append(f"UBX 1:{email} {len(payload)}\r\n".encode("ascii") + payload)
        self.model.ubx(email, psm, media, places)

    def fln(self, email: str) -> None:
        account = email
        if self.places[email] and self.rng.random() < 0.4:
            account = f"{email};{self.rng.choice(self.places[email])}"
        self.out.append(f"FLN 1:{account} 0:0\r\n".encode("ascii"))
        self.model.fln(account)

    def notification(self) -> None:
        self.notSerial += 1
        body = escape(
            "<NotificationData><Service>ABCHInternal</Service><CID>-5100000000000000001</CID>"
            f"<LastModifiedDate>2010-01-01T00:00:{self.notSerial % 60:02d}.0000000-08:00</LastModifiedDate>"
            "<HasNewItem>false</HasNewItem></NotificationData>"
        )
        payload = (
            f'<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><TO pid="0x1:0x2" name="{OWNER}">'
            f'<VIA agent="messenger" /></TO><MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" /><BODY>{body}</BODY>'
            "</MSG></NOTIFICATION>"
        ).encode("utf-8")
        self.out.append(f"NOT {len(payload)}\r\n".encode("ascii") + payload)

    def message(self) -> None:
        payload = (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n"
            b"Mail-Data: <MD><E><I>1</I><IU>0</IU><O>0</O><OU>0</OU></E></MD>\r\n"
        )
        self.out.append(f"MSG Hotmail Hotmail {len(payload)}\r\n".encode("ascii") + payload)

    def mix(self, count: int, notifications: bool) -> None:
        for _ in range(count):
            email = self.rng.choice(CONTACTS)
            roll = self.rng.random()
            if roll < 0.36:
                self.nln(email)
            elif roll < 0.82:
                self.ubx(email)
            elif roll < 0.98:
                self.fln(email)
            elif roll < 0.99:
                if notifications:
                    self.notification()
                else:
                    self.message()
            else:
                self.message()


# -- the test ---------------------------------------------------------------------------


def snapshot(session: Any) -> dict[str, dict[str, Any]]:
    """
    The fields the model predicts, read from the session's contact list
    through its public attributes.
    """
    state = {}
    for contact in session.contacts:
        places = getattr(contact, "places", None)
        if places is None:
            places = contact.endpoints
        state[contact.email] = {
            "status": contact.status.code,
            "name": contact.displayName,
            "psm": contact.personalMessage,
            "media": contact.currentMedia,
            "object": contact.msnObject,
            "places": {guid: place.capabilities for guid, place in places.items()},
        }
    return state


def markerEvents(snapshots: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Summary]:
    """
    What the storm test records: a snapshot of the list into C{snapshots}
    the moment a marker name arrives (other names are not recorded), and
    each list refresh.
    """

    def marker(session: Any, contact: Any, displayName: str) -> tuple[Any, ...]:
        if displayName in (MARKER_A, MARKER_B):
            snapshots[displayName] = snapshot(session)
        return (displayName,)

    return {"contactNameChanged": marker, "contactListChanged": LIST_EVENTS["contactListChanged"]}


class _CountedResponse:
    """
    A treq response whose body delivery is counted by L{CountingHTTP}.
    """

    def __init__(self, response: Any, owner: "CountingHTTP") -> None:
        self._response = response
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def deliverBody(self, protocol: Any) -> None:
        lost = protocol.connectionLost

        def connectionLost(reason: Any) -> None:
            self._owner.outstanding -= 1
            lost(reason)

        protocol.connectionLost = connectionLost
        self._response.deliverBody(protocol)


class CountingHTTP:
    """
    The client's HTTP client (the public C{httpClient} argument): a treq
    client that knows how many POSTs are still being answered, so the test
    can wait for the address-book refreshes to settle whatever their
    number or schedule.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outstanding = 0
        self.posts = 0

    def post(self, *args: Any, **kwargs: Any) -> Any:
        self.outstanding += 1
        self.posts += 1

        def failed(failure: Any) -> Any:
            self.outstanding -= 1
            return failure

        return self.client.post(*args, **kwargs).addCallbacks(lambda r: _CountedResponse(r, self), failed)


class PresenceStormTests(TestCase):
    """
    alice with 24 contacts, none of them signed in, so every presence line
    alice gets is the scripted one.
    """

    timeout = 60

    async def test_stateAfterStormMatchesReferenceModel(self) -> None:
        """
        After each part of a seeded storm of about 4,000 commands, every
        contact's status, name, personal message, media, MSN object and
        places equal the reference model's; the address-book refreshes
        the C{NOT}s start do not disturb presence.
        """
        accounts = [(OWNER, PASSWORD, "Alice")] + [(e, PASSWORD, f"Contact {i}") for i, e in enumerate(CONTACTS)]
        network, endpoints = await startLocalNetwork(
            self, accounts, mutualContacts=[(OWNER, e) for e in CONTACTS], reactor=reactor
        )
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        http = CountingHTTP(HTTPClient(Agent(reactor, pool=pool)))
        snapshots: dict[str, dict[str, dict[str, Any]]] = {}
        recorder = EventRecorder("alice", markerEvents(snapshots))
        session = await signIn(self, OWNER, PASSWORD, endpoints, recorder, httpClient=http)
        initial = snapshot(session)
        self.assertEqual(sorted(initial), sorted(CONTACTS))

        model = Model(initial)
        storm = Storm(model, seed=18)
        storm.mix(2000, notifications=False)
        storm.nln(CONTACTS[0], MARKER_A)
        expectedA = Model(model.contacts).contacts
        storm.mix(2000, notifications=True)
        for email in CONTACTS:
            storm.nln(email)
            if storm.rng.random() < 0.5:
                storm.ubx(email)
        storm.notification()
        storm.nln(CONTACTS[1], MARKER_B)
        expectedB = model.contacts
        # Both parts really exercise the model: offline contacts and lost
        # places at A, a NOT burst's worth of refreshes in B.
        self.assertTrue(any(c["status"] == "FLN" for c in expectedA.values()))
        self.assertGreater(sum(line.startswith(b"NOT ") for line in storm.out), 10)

        server = network.onlineSessions(OWNER)
        self.assertEqual(len(server), 1)
        server[0].transport.write(b"".join(storm.out))
        await recorder.waitFor(lambda: MARKER_B in snapshots, "the marker of part B")

        markerAt = len(recorder.events)

        def settled() -> bool:
            refreshed = any(e == ("contactListChanged",) for e in recorder.events[markerAt:])
            return refreshed and http.outstanding == 0

        self.assertTrue(await pollUntil(settled, timeout=30.0), "the address-book refreshes did not settle")
        snapshots["settled"] = snapshot(session)

        for label, expected in ((MARKER_A, expectedA), (MARKER_B, expectedB), ("settled", expectedB)):
            got = snapshots[label]
            for email in CONTACTS:
                self.assertEqual(got[email], expected[email], f"at {label}, {email}")
