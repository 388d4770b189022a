"""
Tests for L{msnp.notification}: the NS client protocol over
L{StringTransport} with a L{Clock}, and its pure parsers.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import Contact, ContactList, Endpoint, Lists, Status
from msnp.listpayload import ListEntry
from msnp.preamble import NSRedirect
from msnp.endpoints import ClientIdentity
from msnp.errors import AuthenticationError, ConnectionLost, ProtocolError, ServerError, SignedOut
from msnp.mime import parseMimeHeaders
from msnp.notification import (
    REASON_CONNECTION_LOST,
    REASON_LOGOUT,
    REASON_SIGNED_OUT_ELSEWHERE,
    NotificationProtocol,
)
from msnp.nsmessages import (
    AccountReference,
    LoginAccepted,
    parseAccount,
    parsePresence,
    personalDataPayload,
    privateEndpointPayload,
)
from msnp.wire import Command, Direction, parseCommand

ALICE = "alice@example.com"
GUID_A = "{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
GUID_B = "{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"
GUID_C = "{11111111-2222-3333-4444-555555555555}"
TICKET = "t=EwCoARAnAAAUclearTICKETexample0001&p=EwCoAPROFILEexample0001"
RESPONSE = "HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAAAECAwQFBgcIBUQ8AAL5VDBfLONtwsPx147ByTKty+fielcWrvtzopbRKqSZzZULFzX+Qo082gcyUgKJq8GIftWY1RkvnEHfx3PtZOsdgFdDueHlpupL9Odgatraf+QTiNF3xpY="


class Recorder:
    """
    An observer, roster and conversation manager that records every call.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> Optional[Deferred[None]]:
            self.calls.append((name, *args))
            return succeed(None) if name in ("serverListChanged", "addressBookChanged") else None

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c[1:] for c in self.calls if c[0] == name]


def command(line: bytes) -> Command:
    return parseCommand(line, Direction.FROM_SERVER)


class _EndListener:
    """
    A listener that only records how the connection ended.
    """

    def __init__(self, ended: list[Optional[str]]) -> None:
        self.ended = ended
        self.mailData: list[bytes] = []
        self.networkMessages: list[Any] = []

    def serverListChanged(self, entries: Any, added: bool) -> None:
        pass

    def addressBookChanged(self) -> None:
        pass

    def invited(self, invitation: Any) -> None:
        pass

    def notificationEnded(self, reason: Optional[str]) -> None:
        self.ended.append(reason)

    def mailDataReceived(self, payload: bytes) -> None:
        self.mailData.append(payload)

    def networkMessageReceived(self, message: Any) -> None:
        self.networkMessages.append(message)


class Harness:
    """
    A connected L{NotificationProtocol} with bob, carol and dave as contacts.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.clock = Clock()
        self.observer = Recorder()
        self.protocol = NotificationProtocol(
            ALICE,
            ClientIdentity(machineGuid=GUID_A),
            clock=self.clock,
            requestTimeout=10,
            observer=self.observer,
        )
        self.protocol.session = "the session"
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.ended: list[Optional[str]] = []
        self.protocol.listener = _EndListener(self.ended)
        self.protocol.state.contacts = ContactList(
            [
                Contact("bob@example.com", "Bob", lists=Lists.FORWARD | Lists.ALLOW),
                Contact("carol@example.net", "Carol", lists=Lists.FORWARD | Lists.ALLOW),
                Contact("eve@yahoo.com", "Eve", network=32, lists=Lists.FORWARD | Lists.ALLOW),
            ]
        )
        testCase.addCleanup(self.protocol.stopKeepAlive)

    def receive(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        data = bytes(self.transport.value())
        self.transport.clear()
        return data

    def contact(self, email: str) -> Contact:
        found = self.protocol.state.contacts.get(email)
        assert found is not None
        return found


class AuthenticationTests(SynchronousTestCase):
    """
    C{USR SSO S}: presenting the ticket (reference 2.8).
    """

    def test_exactLine(self) -> None:
        """
        The ticket, the MBI response and the machine GUID (upper case, in
        braces) go out in one C{USR trid SSO S} line; C{USR OK} fires with
        L{LoginAccepted}.
        """
        h = Harness(self)
        d = h.protocol.authenticate(TICKET, RESPONSE)
        self.assertEqual(h.take(), f"USR 1 SSO S {TICKET} {RESPONSE} {GUID_A}\r\n".encode())
        h.receive(b"USR 1 OK alice@example.com 1 0\r\n")
        self.assertEqual(self.successResultOf(d), LoginAccepted(ALICE, True))

    def test_lowerCaseGuidNormalised(self) -> None:
        """
        A machine GUID configured in lower case without braces is sent in
        the canonical form.
        """
        clock = Clock()
        protocol = NotificationProtocol(ALICE, ClientIdentity(machineGuid=GUID_A[1:-1].lower()), clock=clock)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        protocol.authenticate("t", "r")
        self.assertTrue(transport.value().endswith(f" {GUID_A}\r\n".encode()))
        protocol.stopKeepAlive()

    def test_unverified(self) -> None:
        """
        C{USR trid OK acct 0 0}: the account is not verified.
        """
        h = Harness(self)
        d = h.protocol.authenticate(TICKET, RESPONSE)
        h.receive(b"USR 1 OK alice@example.com 0 0\r\n")
        self.assertEqual(self.successResultOf(d), LoginAccepted(ALICE, False))
        self.assertFalse(h.protocol.state.verified)

    def test_911(self) -> None:
        """
        C{911} (ticket or MBI response refused) is an L{AuthenticationError}.
        """
        h = Harness(self)
        d = h.protocol.authenticate(TICKET, RESPONSE)
        h.receive(b"911 1\r\n")
        self.failureResultOf(d, AuthenticationError)

    def test_otherErrorStaysServerError(self) -> None:
        """
        A busy server (C{601}) is not an authentication failure.
        """
        h = Harness(self)
        d = h.protocol.authenticate(TICKET, RESPONSE)
        h.receive(b"601 1\r\n")
        self.assertEqual(self.failureResultOf(d, ServerError).value.code, 601)

    def test_redirectAtTicket(self) -> None:
        """
        An C{XFR NS} in reply to C{USR SSO S} is a redirect.
        """
        h = Harness(self)
        d = h.protocol.authenticate(TICKET, RESPONSE)
        h.receive(b"XFR 1 NS 10.1.1.1:1863 U D\r\n")
        self.assertEqual(self.successResultOf(d), NSRedirect("10.1.1.1", 1863))

    def test_ticketNotInTrace(self) -> None:
        """
        With tracing on, the logged line hides the ticket and the response.
        """
        from twisted.logger import formatEvent, globalLogPublisher

        lines: list[str] = []

        def observe(event: Any) -> None:
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)  # type: ignore[arg-type]
        self.addCleanup(globalLogPublisher.removeObserver, observe)  # type: ignore[arg-type]
        h = Harness(self)
        h.protocol.trace = True
        h.protocol.authenticate(TICKET, RESPONSE)
        self.assertTrue(any("USR 1 SSO S" in line for line in lines))
        self.assertFalse(any(TICKET in line or RESPONSE in line for line in lines))


class ChallengeAndKeepAliveTests(SynchronousTestCase):
    """
    C{CHL}/C{QRY} (4.12) and C{PNG}/C{QNG} (4.11).
    """

    def test_challenge(self) -> None:
        """
        C{CHL 0 22210219642164014968} is answered with the reference
        vector, with the WLM 2009 product id and no line break after it.
        """
        h = Harness(self)
        h.receive(b"CHL 0 22210219642164014968\r\n")
        self.assertEqual(h.take(), b"QRY 1 PROD0120PW!CCV9@ 32\r\n6e92a312bf6b70ee58e75a1e3315695c")
        h.receive(b"QRY 1\r\n")
        self.assertEqual(h.protocol.pendingCount, 0)

    def test_badChallengeIgnored(self) -> None:
        """
        A challenge that is not digits is logged and not answered.
        """
        h = Harness(self)
        h.receive(b"CHL 0 abc\r\n")
        self.assertEqual(h.take(), b"")

    def test_pingRearmedByQNG(self) -> None:
        """
        The first C{PNG} goes out at once; after C{QNG 50} the next one
        goes out 50 seconds later, not earlier.
        """
        h = Harness(self)
        h.protocol.startKeepAlive()
        self.assertEqual(h.take(), b"PNG\r\n")
        h.receive(b"QNG 50\r\n")
        h.clock.advance(49)
        self.assertEqual(h.take(), b"")
        h.clock.advance(1)
        self.assertEqual(h.take(), b"PNG\r\n")
        h.receive(b"QNG 20\r\n")
        h.clock.advance(20)
        self.assertEqual(h.take(), b"PNG\r\n")
        self.assertEqual(h.ended, [])

    def test_deadConnection(self) -> None:
        """
        Without a C{QNG} within twice the interval the connection is
        dropped and the session ends as "connection lost".
        """
        h = Harness(self)
        h.protocol.startKeepAlive()
        h.take()
        h.receive(b"QNG 30\r\n")
        h.clock.advance(30)
        self.assertEqual(h.take(), b"PNG\r\n")
        h.clock.advance(59)
        self.assertEqual(h.ended, [])
        h.clock.advance(1)
        self.assertEqual(h.ended, [REASON_CONNECTION_LOST])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_hostileInterval(self) -> None:
        """
        C{QNG 0} cannot make the client ping in a tight loop.
        """
        h = Harness(self)
        h.protocol.startKeepAlive()
        h.take()
        h.receive(b"QNG 0\r\n")
        h.clock.advance(1)
        self.assertEqual(h.take(), b"")

    def test_timersCancelledOnLoss(self) -> None:
        """
        Losing the connection cancels every keep-alive timer.
        """
        h = Harness(self)
        h.protocol.startKeepAlive()
        h.receive(b"QNG 50\r\n")
        h.transport.loseConnection()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.ended, [REASON_CONNECTION_LOST])


class SignOutTests(SynchronousTestCase):
    """
    C{OUT} from the server, C{UBN} sign-out requests, and our own C{OUT}.
    """

    def test_outOTH(self) -> None:
        """
        C{OUT OTH} ends the session with reason C{OTH}, fails pending
        requests with L{SignedOut} and closes the connection.
        """
        h = Harness(self)
        pending = h.protocol.changeStatus(Status.BUSY)
        h.receive(b"OUT OTH\r\n")
        self.assertEqual(self.failureResultOf(pending, SignedOut).value.reason, "OTH")
        self.assertEqual(h.ended, ["OTH"])

    def test_outSSD(self) -> None:
        """
        C{OUT SSD} ends the session with reason C{SSD}.
        """
        h = Harness(self)
        h.receive(b"OUT SSD\r\n")
        self.assertEqual(h.ended, ["SSD"])

    def test_plainOut(self) -> None:
        """
        A bare C{OUT} ends the session with no reason.
        """
        h = Harness(self)
        h.receive(b"OUT\r\n")
        self.assertEqual(h.ended, [None])

    def test_hangUp(self) -> None:
        """
        A plain hang-up is "connection lost" and fails pending requests
        with L{ConnectionLost}.
        """
        h = Harness(self)
        d = h.protocol.setPrivacy("AL")
        h.transport.loseConnection()
        self.failureResultOf(d, ConnectionLost)
        self.assertEqual(h.ended, [REASON_CONNECTION_LOST])

    def test_goAway(self) -> None:
        """
        C{UBN alice;{other} 4 14} + C{goawyplzthxbye} signs this place out.
        """
        h = Harness(self)
        h.receive(f"UBN alice@example.com;{GUID_C} 4 14\r\ngoawyplzthxbye".encode())
        self.assertEqual(h.ended, [REASON_SIGNED_OUT_ELSEWHERE])

    def test_goAwayFromSomeoneElseIgnored(self) -> None:
        """
        The same notification from another account does nothing.
        """
        h = Harness(self)
        h.receive(b"UBN bob@example.com 4 14\r\ngoawyplzthxbye")
        self.assertEqual(h.ended, [])

    def test_logout(self) -> None:
        """
        L{NotificationProtocol.signOut} sends C{OUT} without a TrID and
        fires once the connection is closed; the reason is "logout".
        """
        h = Harness(self)
        d = h.protocol.signOut()
        self.assertEqual(h.take(), b"OUT\r\n")
        self.successResultOf(d)
        self.assertEqual(h.ended, [REASON_LOGOUT])


class PresenceTests(SynchronousTestCase):
    """
    C{ILN}/C{NLN}/C{FLN} (4.7) and what they do to the contact list.
    """

    def test_nlnMSNP18(self) -> None:
        """
        C{NLN NLN 1:bob@example.com Bob caps 0}: bob is online, the
        observer hears the status change.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 1:bob@example.com Bob 2789003324:48 0\r\n")
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.status, Status.ONLINE)
        self.assertEqual(bob.capabilities, "2789003324:48")
        self.assertIsNone(bob.msnObject)
        self.assertEqual(h.observer.named("contactStatusChanged"), [(bob, Status.ONLINE)])
        self.assertEqual(h.observer.named("contactNameChanged"), [])

    def test_nameChangeNonASCII(self) -> None:
        """
        A percent-encoded UTF-8 name (and one sent raw, with a literal
        C{+}) is decoded and reported as a name change.
        """
        h = Harness(self)
        h.receive(b"NLN AWY 1:bob@example.com Bob%20%C3%A7a%2Bva 2789003324:48 0\r\n")
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.displayName, "Bob \u00e7a+va")
        self.assertEqual(bob.status, Status.AWAY)
        h.receive("NLN AWY 1:bob@example.com Al\u00efce+%25 1:0 0\r\n".encode())
        self.assertEqual(bob.displayName, "Al\u00efce+%")
        self.assertEqual(
            h.observer.named("contactNameChanged"), [(bob, "Bob \u00e7a+va"), (bob, "Al\u00efce+%")]
        )

    def test_ilnWithTrid(self) -> None:
        """
        C{ILN trid ...} has the same fields after its TrID.
        """
        h = Harness(self)
        h.receive(b"ILN 11 BSY 1:carol@example.net Carol 1:0 %3Cmsnobj%2F%3E\r\n")
        carol = h.contact("carol@example.net")
        self.assertEqual(carol.status, Status.BUSY)
        self.assertEqual(carol.msnObject, "<msnobj/>")

    def test_olderFormats(self) -> None:
        """
        MSNP15-17 presence (C{NLN STATUS account netId ...}, C{FLN account
        netId}) is read the same way.
        """
        h = Harness(self)
        h.receive(b"NLN IDL bob@example.com 1 Bobby 2789003324 0\r\n")
        bob = h.contact("bob@example.com")
        self.assertEqual((bob.status, bob.displayName), (Status.IDLE, "Bobby"))
        h.receive(b"FLN bob@example.com 1 0\r\n")
        self.assertEqual(bob.status, Status.OFFLINE)

    def test_yahooContact(self) -> None:
        """
        A C{32:} contact with an icon URL token is understood.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 32:eve@yahoo.com Eve 0:0 0 http://icon.invalid/x.png\r\n")
        self.assertEqual(h.contact("eve@yahoo.com").status, Status.ONLINE)

    def test_viaStripped(self) -> None:
        """
        C{;via=9:{guid}@live.com} (circle membership) is split off.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 1:bob@example.com;via=9:{00000000-0000-0000-0000-000000000009}@live.com Bob 1:0 0\r\n")
        self.assertEqual(h.contact("bob@example.com").status, Status.ONLINE)

    def test_fln(self) -> None:
        """
        C{FLN 1:bob 0:0} makes bob offline and clears his endpoints.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 1:bob@example.com Bob 1:0 0\r\n")
        h.contact("bob@example.com").addEndpoint(Endpoint(GUID_B))
        h.receive(b"FLN 1:bob@example.com 0:0\r\n")
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.status, Status.OFFLINE)
        self.assertEqual(bob.endpoints, {})
        self.assertEqual(
            h.observer.named("contactStatusChanged"), [(bob, Status.ONLINE), (bob, Status.OFFLINE)]
        )

    def test_mpopStaysOnlineUntilLastEndpoint(self) -> None:
        """
        With two endpoints, C{FLN} for one of them (C{;{guid}}) keeps the
        contact online; the last one makes it offline.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 1:bob@example.com Bob 1:0 0\r\n")
        payload = (
            f'<Data><PSM></PSM><EndpointData id="{GUID_B}"><Capabilities>1:0</Capabilities></EndpointData>'
            f'<EndpointData id="{GUID_C.lower()}"><Capabilities>1:0</Capabilities></EndpointData></Data>'
        ).encode()
        h.receive(b"UBX 1:bob@example.com %d\r\n" % len(payload) + payload)
        bob = h.contact("bob@example.com")
        self.assertEqual(set(bob.endpoints), {GUID_B, GUID_C})
        h.receive(f"FLN 1:bob@example.com;{GUID_B.lower()} 0:0\r\n".encode())
        self.assertEqual(bob.status, Status.ONLINE)
        self.assertEqual(set(bob.endpoints), {GUID_C})
        h.receive(f"FLN 1:bob@example.com;{GUID_C} 0:0\r\n".encode())
        self.assertEqual(bob.status, Status.OFFLINE)

    def test_unknownContactIgnored(self) -> None:
        """
        Presence of someone not on the list changes nothing.
        """
        h = Harness(self)
        h.receive(b"NLN NLN 1:mallory@example.org M 1:0 0\r\n")
        self.assertNotIn("mallory@example.org", h.protocol.state.contacts)
        self.assertEqual(h.observer.calls, [])

    def test_malformedIgnored(self) -> None:
        """
        An unknown status code or a too-short line is logged and ignored;
        the connection stays usable.
        """
        h = Harness(self)
        h.receive(b"NLN XYZ 1:bob@example.com Bob 1:0 0\r\nNLN NLN\r\nFLN\r\n")
        h.receive(b"NLN BRB 1:bob@example.com Bob 1:0 0\r\n")
        self.assertEqual(h.contact("bob@example.com").status, Status.BE_RIGHT_BACK)

    def test_ownPresence(self) -> None:
        """
        C{NLN} for our own account (another place changed the status)
        updates the session's status and name.
        """
        h = Harness(self)
        h.receive(b"NLN AWY 1:alice@example.com Alice%20A 1:0 0\r\n")
        self.assertEqual(h.protocol.state.status, Status.AWAY)
        self.assertEqual(h.protocol.state.displayName, "Alice A")


class UserDataTests(SynchronousTestCase):
    """
    C{UBX} (4.8, 5.3).
    """

    BOB_UBX = (
        b"UBX 1:bob@example.com 176\r\n"
        b'<Data><PSM>Bob here</PSM><CurrentMedia></CurrentMedia><EndpointData id="{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}">'
        b"<Capabilities>2789003324:48</Capabilities></EndpointData></Data>"
    )

    def test_contactData(self) -> None:
        """
        The reference example: PSM and one endpoint with its capabilities.
        """
        h = Harness(self)
        h.receive(self.BOB_UBX)
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.personalMessage, "Bob here")
        self.assertEqual(bob.endpoints, {GUID_B: Endpoint(GUID_B, "2789003324:48")})
        self.assertEqual(h.observer.named("contactPersonalMessageChanged"), [(bob, "Bob here")])

    def test_escapedNonASCII(self) -> None:
        """
        The PSM is XML-unescaped and UTF-8 decoded.
        """
        h = Harness(self)
        payload = "<Data><PSM>caf\u00e9 &amp; &lt;tea&gt;</PSM></Data>".encode()
        h.receive(b"UBX 1:carol@example.net %d\r\n" % len(payload) + payload)
        self.assertEqual(h.contact("carol@example.net").personalMessage, "caf\u00e9 & <tea>")

    def test_olderForm(self) -> None:
        """
        C{UBX account netId len} (MSNP17 and older).
        """
        h = Harness(self)
        payload = b"<Data><PSM>old</PSM></Data>"
        h.receive(b"UBX bob@example.com 1 %d\r\n" % len(payload) + payload)
        self.assertEqual(h.contact("bob@example.com").personalMessage, "old")

    def test_emptyClears(self) -> None:
        """
        A zero-length C{UBX} clears the PSM.
        """
        h = Harness(self)
        h.receive(self.BOB_UBX)
        h.receive(b"UBX 1:bob@example.com 0\r\n")
        self.assertEqual(h.contact("bob@example.com").personalMessage, "")

    def test_malformedIgnored(self) -> None:
        """
        Broken XML, a DTD, or a wrong root are logged and ignored; the next
        command is still read.
        """
        h = Harness(self)
        for payload in (
            b"<Data><PSM>oops</Data>",
            b'<!DOCTYPE x [<!ENTITY a "b">]><Data><PSM>&a;</PSM></Data>',
            b"<Other/>",
        ):
            h.receive(b"UBX 1:bob@example.com %d\r\n" % len(payload) + payload)
        h.receive(b"NLN NLN 1:bob@example.com Bob 1:0 0\r\n")
        bob = h.contact("bob@example.com")
        self.assertEqual(bob.personalMessage, "")
        self.assertEqual(bob.status, Status.ONLINE)

    def test_ownPlaces(self) -> None:
        """
        Our own UBX lists our places (MPOP) with their private data; the
        observer hears about a change of places, once.
        """
        h = Harness(self)
        payload = (
            f'<Data><PSM></PSM><CurrentMedia></CurrentMedia><EndpointData id="{GUID_A}"><Capabilities>2789003324:48</Capabilities></EndpointData>'
            f'<EndpointData id="{GUID_C}"><Capabilities>2789003324:48</Capabilities></EndpointData>'
            f'<PrivateEndpointData id="{GUID_A}"><EpName>ALICE-PC</EpName><Idle>false</Idle><ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>'
            f'<PrivateEndpointData id="{GUID_C}"><EpName>ALICE-LAPTOP</EpName><Idle>true</Idle><ClientType>1</ClientType><State>AWY</State></PrivateEndpointData></Data>'
        ).encode()
        self.assertEqual(len(payload), 634)
        h.receive(b"UBX 1:alice@example.com 634\r\n" + payload)
        places = h.protocol.state.places
        self.assertEqual(set(places), {GUID_A, GUID_C})
        self.assertEqual(places[GUID_C], Endpoint(GUID_C, "2789003324:48", "ALICE-LAPTOP", True, "1", "AWY"))
        h.receive(b"UBX 1:alice@example.com 634\r\n" + payload)
        self.assertEqual(h.observer.named("endpointsChanged"), [("the session", places)])


class AccountMessageTests(SynchronousTestCase):
    """
    C{MSG Hotmail Hotmail}, C{NOT}, C{ADL 0}/C{RML 0}, C{RNG}, C{XFR SB}.
    """

    def test_profile(self) -> None:
        """
        The profile message's headers become L{SessionState.hotmailProfile}
        and are passed to the observer.
        """
        h = Harness(self)
        body = (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\n"
            b"LoginTime: 1262304000\r\nMemberIdLow: -5\r\nMPOPEnabled: 1\r\n\r\n"
        )
        h.receive(b"MSG Hotmail Hotmail %d\r\n" % len(body) + body)
        profile = h.protocol.state.hotmailProfile
        self.assertEqual(profile["LoginTime"], "1262304000")
        self.assertEqual(profile["MemberIdLow"], "-5")
        self.assertEqual(h.observer.named("profileReceived"), [("the session", profile)])

    def test_mailDataIgnored(self) -> None:
        """
        Other NS messages (mail data) leave the profile alone.
        """
        h = Harness(self)
        body = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nMail-Data: x"
        h.receive(b"MSG Hotmail Hotmail %d\r\n" % len(body) + body)
        self.assertEqual(h.protocol.state.hotmailProfile, {})

    def test_mailDataToListener(self) -> None:
        """
        Mail data and OIM notifications go to the listener as they came
        (the session's offline inbox parses them); other types do not.
        """
        h = Harness(self)
        listener = h.protocol.listener
        assert isinstance(listener, _EndListener)
        initial = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nMail-Data: x"
        live = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsoimnotification; charset=UTF-8\r\n\r\nMail-Data: y"
        other = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsactivemailnotification\r\n\r\nMessage-Delta: 1"
        for body in (initial, live, other):
            h.receive(b"MSG Hotmail Hotmail %d\r\n" % len(body) + body)
        self.assertEqual(listener.mailData, [initial, live])

    def test_ubmToListener(self) -> None:
        """
        A C{UBM} for us from a network-32 contact reaches the listener
        parsed; a malformed one, one for somebody else and a copy of our
        own are dropped.
        """
        h = Harness(self)
        listener = h.protocol.listener
        assert isinstance(listener, _EndListener)
        me = h.protocol.state.account
        text = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhi"
        for line in (
            f"UBM eve@yahoo.com 32 {me} 1 1".encode(),
            f"UBM eve@yahoo.com 32 someone@example.com 1 1".encode(),
            f"UBM {me} 1 {me} 1 1".encode(),
            f"UBM eve@yahoo.com 99 {me} 1 1".encode(),
        ):
            h.receive(line + b" %d\r\n" % len(text) + text)
        self.assertEqual([(m.sender, m.text) for m in listener.networkMessages], [("eve@yahoo.com", "hi")])
        self.assertFalse(h.transport.disconnecting)

    def test_mimeHeaders(self) -> None:
        """
        Header parsing tolerates bare LF, lines without a colon and values
        with colons.
        """
        self.assertEqual(
            parseMimeHeaders(b"A: 1\nnonsense\nB: http://x:1/\n\nBody: no"),
            {"A": "1", "B": "http://x:1/"},
        )

    def test_serverADL(self) -> None:
        """
        C{ADL 0 len} goes to the roster as added entries, C{RML 0 len} as
        removed ones.
        """
        h = Harness(self)
        roster = Recorder()
        h.protocol.listener = roster
        payload = b'<ml><d n="example.com"><c n="dave" t="1" l="8" f="Dave%20D." /></d></ml>'
        h.receive(b"ADL 0 %d\r\n" % len(payload) + payload)
        h.receive(b"RML 0 %d\r\n" % len(payload) + payload)
        entry = ListEntry("dave@example.com", Lists.REVERSE, 1, "Dave D.")
        self.assertEqual(roster.named("serverListChanged"), [([entry], True), ([entry], False)])

    def test_abchNotification(self) -> None:
        """
        An ABCH C{NOT} asks the roster to refresh the address book.
        """
        h = Harness(self)
        roster = Recorder()
        h.protocol.listener = roster
        payload = (
            b'<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><MSG id="0"><BODY>'
            b"&lt;NotificationData&gt;&lt;Service&gt;ABCHInternal&lt;/Service&gt;&lt;/NotificationData&gt;"
            b"</BODY></MSG></NOTIFICATION>"
        )
        h.receive(b"NOT %d\r\n" % len(payload) + payload)
        self.assertEqual(roster.named("addressBookChanged"), [()])

    def test_ring(self) -> None:
        """
        C{RNG} becomes an L{Invitation} for the conversation manager.
        """
        h = Harness(self)
        manager = Recorder()
        h.protocol.listener = manager
        h.receive(
            b"RNG 11752013 207.46.108.38:1863 CKI 849102291.520491113 bob@example.com "
            b"Bob%20B U messenger.msn.com 1\r\n"
        )
        (invitation,), = manager.named("invited")
        self.assertEqual(
            (invitation.sessionId, invitation.address, invitation.authToken, invitation.inviter, invitation.inviterName),
            ("11752013", "207.46.108.38:1863", "849102291.520491113", "bob@example.com", "Bob B"),
        )

    def test_requestSwitchboard(self) -> None:
        """
        C{XFR trid SB} fires with the switchboard address and token.
        """
        h = Harness(self)
        d = h.protocol.requestSwitchboard()
        self.assertEqual(h.take(), b"XFR 1 SB\r\n")
        h.receive(b"XFR 1 SB 207.46.108.38:1863 CKI 17262740.1050826919.32308 U messenger.msn.com 1\r\n")
        ticket = self.successResultOf(d)
        self.assertEqual((ticket.address, ticket.authToken), ("207.46.108.38:1863", "17262740.1050826919.32308"))

    def test_requestSwitchboardRefused(self) -> None:
        """
        C{913} (hidden, or before the first C{CHG}) is a L{ServerError}.
        """
        h = Harness(self)
        d = h.protocol.requestSwitchboard()
        h.receive(b"913 1\r\n")
        self.assertEqual(self.failureResultOf(d, ServerError).value.code, 913)


class RequestTests(SynchronousTestCase):
    """
    What the session sends: C{CHG}, C{PRP MFN}, C{UUX}, C{BLP}, C{ADL}.
    """

    def test_changeStatus(self) -> None:
        """
        C{CHG 1 NLN 2416214052:134218752 0} (the computed capabilities of
        L{msnp.capabilities}, no longer WLM 2009's C{2789003324:48}); the
        state changes on the echo only.
        """
        h = Harness(self)
        d = h.protocol.changeStatus(Status.ONLINE)
        self.assertEqual(h.take(), b"CHG 1 NLN 2416214052:134218752 0\r\n")
        self.assertEqual(h.protocol.state.status, Status.OFFLINE)
        h.receive(b"CHG 1 NLN 2416214052:134218752 0\r\n")
        self.assertEqual(self.successResultOf(d), Status.ONLINE)
        self.assertEqual(h.protocol.state.status, Status.ONLINE)

    def test_changeStatusOffline(self) -> None:
        """
        FLN cannot be set with C{CHG}.
        """
        h = Harness(self)
        self.assertRaises(ValueError, h.protocol.changeStatus, Status.OFFLINE)

    def test_displayName(self) -> None:
        """
        C{PRP MFN} percent-encodes the name (non-ASCII and C{+} included)
        and the state takes the decoded echo.
        """
        h = Harness(self)
        d = h.protocol.setDisplayName("Al\u00efce +%")
        self.assertEqual(h.take(), b"PRP 1 MFN Al%C3%AFce%20%2B%25\r\n")
        self.assertEqual(h.protocol.state.displayName, "")
        h.receive("PRP 1 MFN Al\u00efce%20+%25\r\n".encode())
        self.assertEqual(self.successResultOf(d), "Al\u00efce +%")
        self.assertEqual(h.protocol.state.displayName, "Al\u00efce +%")

    def test_personalDataPayload(self) -> None:
        """
        The C{<Data>} document is byte for byte the 241-byte WLM 2009
        example of reference 4.5.
        """
        payload = personalDataPayload("Hello from the test suite", "", GUID_A)
        self.assertEqual(
            payload,
            b"<Data><PSM>Hello from the test suite</PSM><CurrentMedia></CurrentMedia><MachineGuid>"
            b"&#x7B;6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B&#x7D;</MachineGuid><DDP></DDP><SignatureSound>"
            b"</SignatureSound><Scene></Scene><ColorScheme>-3</ColorScheme></Data>",
        )
        self.assertEqual(len(payload), 241)

    def test_privateEndpointPayload(self) -> None:
        """
        The C{<PrivateEndpointData>} document is the 130-byte example.
        """
        payload = privateEndpointPayload("ALICE-PC", Status.ONLINE)
        self.assertEqual(
            payload,
            b"<PrivateEndpointData><EpName>ALICE-PC</EpName><Idle>false</Idle><ClientType>1</ClientType>"
            b"<State>NLN</State></PrivateEndpointData>",
        )
        self.assertEqual(len(payload), 130)

    def test_publishPersonalData(self) -> None:
        """
        C{UUX trid len}; the PSM is XML-escaped; the state changes on
        C{UUX trid 0}.
        """
        h = Harness(self)
        d = h.protocol.publishPersonalData("a<b & \u00e7", "")
        sent = parseCommand(h.take(), Direction.FROM_CLIENT)
        self.assertEqual((sent.name, sent.trid), ("UUX", 1))
        assert sent.payload is not None
        self.assertIn("<PSM>a&lt;b &amp; \u00e7</PSM>".encode(), sent.payload)
        self.assertEqual(h.protocol.state.personalMessage, "")
        h.receive(b"UUX 1 0\r\n")
        self.successResultOf(d)
        self.assertEqual(h.protocol.state.personalMessage, "a<b & \u00e7")

    def test_listCommand(self) -> None:
        """
        C{ADL trid len} + payload, answered by C{ADL trid OK}; a list error
        with an echoed payload is a L{ServerError} carrying it.
        """
        h = Harness(self)
        payload = b'<ml l="1"></ml>'
        d = h.protocol.sendListCommand("ADL", payload)
        self.assertEqual(h.take(), b"ADL 1 15\r\n" + payload)
        h.receive(b"ADL 1 OK\r\n")
        self.assertEqual(self.successResultOf(d).arguments, ("OK",))
        d = h.protocol.sendListCommand("ADL", payload)
        h.receive(b"241 2 15\r\n" + payload)
        error = self.failureResultOf(d, ServerError).value
        self.assertEqual((error.code, error.payload), (241, payload))

    def test_blp(self) -> None:
        """
        C{BLP trid AL}.
        """
        h = Harness(self)
        h.protocol.setPrivacy("AL")
        self.assertEqual(h.take(), b"BLP 1 AL\r\n")
        self.assertRaises(ValueError, h.protocol.setPrivacy, "XX")


class ParserTests(SynchronousTestCase):
    """
    The pure parsers.
    """

    def test_parseAccount(self) -> None:
        """
        Network prefixes, separate network tokens, endpoint and via
        suffixes are all split off; the address is lower-cased.
        """
        self.assertEqual(parseAccount("1:Bob@Example.com"), AccountReference("bob@example.com", 1))
        self.assertEqual(parseAccount("eve@yahoo.com", "32"), AccountReference("eve@yahoo.com", 32))
        self.assertEqual(
            parseAccount(f"1:bob@example.com;{GUID_B.lower()}"),
            AccountReference("bob@example.com", 1, GUID_B),
        )
        self.assertEqual(
            parseAccount("1:bob@example.com;via=9:{x}@live.com").via, "9:{x}@live.com"
        )
        self.assertRaises(ProtocolError, parseAccount, "1:")
        self.assertRaises(ProtocolError, parseAccount, "bob@example.com", "x")

    def test_numericName(self) -> None:
        """
        In the MSNP18 form a display name made of digits is not mistaken
        for a network id.
        """
        update = parsePresence(command(b"NLN NLN 1:bob@example.com 12345 1:0 0\r\n"))
        self.assertEqual(update.displayName, "12345")
        self.assertEqual(update.account, AccountReference("bob@example.com", 1))


class FastParsingTests(SynchronousTestCase):
    """
    The string-method forms of the presence parsers read exactly what the
    patterns they replace did, odd tokens included.
    """

    def test_networkPrefixForms(self) -> None:
        """
        The prefix is any run of decimal digits before the first colon
        (Unicode decimals too, as C{\\d} matched); anything else is part of
        the address.
        """
        self.assertEqual(parseAccount("32:eve@yahoo.com"), AccountReference("eve@yahoo.com", 32))
        self.assertEqual(parseAccount("\u0663:bob@example.com"), AccountReference("bob@example.com", 3))
        self.assertEqual(parseAccount("\u00b2:bob@example.com").email, "\u00b2:bob@example.com")
        self.assertEqual(parseAccount("1:2:bob@example.com"), AccountReference("2:bob@example.com", 1))
        self.assertEqual(parseAccount("x1:bob@example.com", "32"), AccountReference("x1:bob@example.com", 32))
        self.assertEqual(
            parseAccount("1:bob@example.com;via=9:circle@hotmail.com;{" + GUID_B[1:]),
            AccountReference("bob@example.com", 1, GUID_B, "9:circle@hotmail.com"),
        )

    def test_noAddress(self) -> None:
        """
        A token that is only a network prefix, digits or a colon holds no
        address.
        """
        for token in ("1:", "12", ":", "1: ", "1:7:", "\u0663\u0663", ";via=x", "1:;{" + GUID_B[1:]):
            self.assertRaises(ProtocolError, parseAccount, token)
        self.assertEqual(parseAccount("1:a").email, "a")

    def test_statusCodeForms(self) -> None:
        """
        Exact codes and the lenient forms (lower case, padding) give the
        same status; unknown ones are still refused.
        """
        self.assertIs(Status.fromCode("AWY"), Status.AWAY)
        self.assertIs(Status.fromCode(" awy "), Status.AWAY)
        self.assertRaises(ValueError, Status.fromCode, "XYZ")
        self.assertRaises(ValueError, Status.fromCode, None)  # type: ignore[arg-type]
        update = parsePresence(command(b"NLN bsy 1:bob@example.com Bob 0:0 0\r\n"))
        self.assertIs(update.status, Status.BUSY)

    def test_userDataFirstFieldsWin(self) -> None:
        """
        In a C{UBX}, the first C{PSM} and C{CurrentMedia} count, every
        C{EndpointData} is read before the C{PrivateEndpointData}, and
        namespaced elements are found by local name.
        """
        from msnp.nsmessages import parseUserData

        payload = (
            b'<Data xmlns:x="urn:x"><PrivateEndpointData id="' + GUID_C.encode() + b'"><EpName>work</EpName>'
            b"<State>AWY</State></PrivateEndpointData><x:PSM>first</x:PSM><PSM>second</PSM>"
            b'<EndpointData id="' + GUID_B.lower().encode() + b'"><Capabilities> 1:2 </Capabilities></EndpointData>'
            b'<EndpointData id="' + GUID_C.encode() + b'"><Capabilities>3:4</Capabilities></EndpointData>'
            b"<CurrentMedia>m</CurrentMedia><CurrentMedia>n</CurrentMedia></Data>"
        )
        data = parseUserData(Command("UBX", None, ("1:bob@example.com",), payload))
        self.assertEqual((data.personalMessage, data.currentMedia, data.private), ("first", "m", True))
        assert data.endpoints is not None
        self.assertEqual(list(data.endpoints), [GUID_B, GUID_C])
        self.assertEqual(data.endpoints[GUID_B], Endpoint(GUID_B, "1:2"))
        self.assertEqual(data.endpoints[GUID_C], Endpoint(GUID_C, "3:4", "work", state="AWY"))
