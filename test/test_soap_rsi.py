"""
Tests for the RSI client (L{msnp.soap.rsi}) against the local network's
RSI resource (L{msnp.server.rsi}), in memory through L{StubTreq} on a
L{Clock}: the envelope, the three methods, who may read what, and the
typed failures.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from msnp.errors import ServiceError
from msnp.oim import decodeOfflineMessage
from msnp.server.accountmodel import Account
from msnp.server.accounts import AccountStore
from msnp.server.offline import MemoryOfflineStore, StoredOfflineMessage, newMessageId
from msnp.server.rsi import IssuedMessengerTickets, RSIResource
from msnp.soap.rsi import RSIFault, RSIService, buildRSIEnvelope, splitTicket
from msnp.xmlsafe import findPath, parseXML, textOf

URL = "http://127.0.0.1/rsi/rsi.asmx"


def offlineMessage(recipient: str, text: str, received: float) -> StoredOfflineMessage:
    return StoredOfflineMessage(
        messageId=newMessageId(), recipient=recipient, sender="alice@example.com",
        senderName="Alice", text=text, received=received, runId="{RUN}",
    )


def mount(resource: Resource) -> Resource:
    """
    A root with C{resource} at C{/rsi/rsi.asmx}.
    """
    root = Resource()
    folder = Resource()
    root.putChild(b"rsi", folder)
    folder.putChild(b"rsi.asmx", resource)
    return root


class EnvelopeTests(SynchronousTestCase):
    """
    The request shape of reference 6.12 and Q.1.1.
    """

    def test_splitTicket(self) -> None:
        """
        The t/p split cuts at the first C{&} then the first C{=}; C{t} keeps
        its own C{=} signs; a bare ticket is all C{t}.
        """
        self.assertEqual(splitTicket("t=AA=B+/!&p=CC"), ("AA=B+/!", "CC"))
        self.assertEqual(splitTicket("t=AAAA&p="), ("AAAA", ""))
        self.assertEqual(splitTicket("RAW"), ("RAW", ""))

    def test_envelope(self) -> None:
        """
        The PassportCookie header carries the escaped halves, and the
        body the method element.
        """
        root = parseXML(buildRSIEnvelope("<GetMetadata/>", "t=a<b&p=c"))
        cookie = findPath(root, "Header", "PassportCookie")
        self.assertEqual((textOf(cookie, "t"), textOf(cookie, "p")), ("a<b", "c"))
        self.assertIsNotNone(findPath(root, "Body", "GetMetadata"))


class ClientServerTests(SynchronousTestCase):
    """
    L{RSIService} against L{RSIResource}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.accounts = AccountStore(ticketLifetime=3600, clock=self.clock)
        self.bob = self.accounts.addAccount("bob@example.com", "pw")
        self.carol = self.accounts.addAccount("carol@example.com", "pw")
        self.tickets = IssuedMessengerTickets(self.accounts)
        self.messages = MemoryOfflineStore()
        self.deleted: list[tuple[str, list[str]]] = []
        resource = RSIResource(self.messages, self.tickets.check, self.recordDeleted)
        self.treq = StubTreq(mount(resource))
        self.first = offlineMessage("bob@example.com", "one ünïcode\nline", 1000.5)
        self.second = offlineMessage("bob@example.com", "two", 1001.0)
        self.carols = offlineMessage("carol@example.com", "for carol", 1000.0)
        for message in (self.first, self.second, self.carols):
            self.messages.storeOfflineMessage(message)

    def recordDeleted(self, account: Account, ids: list[str]) -> None:
        self.deleted.append((account.email, ids))

    def client(self, account: Account) -> RSIService:
        ticket = self.tickets.issue(account)
        return RSIService(self.treq, URL, lambda: ticket, self.clock, timeout=5)

    def result(self, d: "Deferred[Any]") -> Any:
        self.treq.flush()
        return self.successResultOf(d)

    def failure(self, d: "Deferred[Any]", *kinds: type) -> Any:
        self.treq.flush()
        return self.failureResultOf(d, *kinds).value

    def test_getMetadata(self) -> None:
        """
        GetMetadata lists the recipient's own messages, oldest first.
        """
        data = self.result(self.client(self.bob).getMetadata())
        self.assertEqual([m.messageId for m in data.messages], [self.first.messageId, self.second.messageId])

    def test_getAndDelete(self) -> None:
        """
        GetMessage returns the text that decodes to the message;
        DeleteMessages removes it and tells the NS side.
        """
        client = self.client(self.bob)
        text = self.result(client.getMessage(self.first.messageId))
        decoded = decodeOfflineMessage(text, self.first.messageId)
        self.assertEqual((decoded.text, decoded.sender), ("one ünïcode\nline", "alice@example.com"))
        self.assertIsNone(self.result(client.deleteMessages([self.first.messageId])))
        self.assertEqual([m.messageId for m in self.messages.listOfflineMessages("bob@example.com")],
                         [self.second.messageId])
        self.assertEqual(self.deleted, [("bob@example.com", [self.first.messageId])])
        gone = self.failure(client.getMessage(self.first.messageId), RSIFault)
        self.assertTrue(gone.isClientFault)

    def test_othersMessagesRefused(self) -> None:
        """
        With carol's ticket, bob's message cannot be read or deleted: the
        same client fault as an unknown id, and nothing deleted. A
        deletion naming one foreign id deletes none.
        """
        client = self.client(self.carol)
        fault = self.failure(client.getMessage(self.first.messageId), RSIFault)
        unknown = self.failure(client.getMessage(newMessageId()), RSIFault)
        self.assertEqual((fault.faultCode, fault.faultString), (unknown.faultCode, unknown.faultString))
        self.assertEqual(fault.status, 500)
        self.failure(client.deleteMessages([self.carols.messageId, self.first.messageId]), RSIFault)
        self.assertEqual(len(self.messages.listOfflineMessages("bob@example.com")), 2)
        self.assertEqual(len(self.messages.listOfflineMessages("carol@example.com")), 1)
        self.assertEqual(self.deleted, [])

    def test_unknownTicket(self) -> None:
        """
        A ticket never issued here gets HTTP 403 with a client fault.
        """
        client = RSIService(self.treq, URL, lambda: "t=forged&p=", self.clock)
        fault = self.failure(client.getMetadata(), RSIFault)
        self.assertEqual(fault.status, 403)
        self.assertTrue(fault.isClientFault)
        self.assertNotIn("forged", str(fault))

    def test_ssoStyleTicket(self) -> None:
        """
        A ticket with a C{p} half (the SSO's form) is accepted when both
        halves match, and refused when C{p} differs.
        """
        self.tickets.remember(self.bob, "t=Ab+c/d=e!&p=xyz")
        good = RSIService(self.treq, URL, lambda: "t=Ab+c/d=e!&p=xyz", self.clock)
        self.assertEqual(len(self.result(good.getMetadata()).messages), 2)
        bad = RSIService(self.treq, URL, lambda: "t=Ab+c/d=e!&p=other", self.clock)
        self.assertEqual(self.failure(bad.getMetadata(), RSIFault).status, 403)

    def test_expiredTicket(self) -> None:
        """
        An expired ticket gets C{AuthenticationFailed}, not a client fault
        (a renewed ticket would work, so the caller may retry).
        """
        client = self.client(self.bob)
        self.clock.advance(3601)
        fault = self.failure(client.getMetadata(), RSIFault)
        self.assertEqual(fault.faultCode, "q0:AuthenticationFailed")
        self.assertFalse(fault.isClientFault)

    def test_expiredTicketRenewed(self) -> None:
        """
        With a renewal, calls that meet the expired ticket share one
        renewal and are repeated once with the new ticket.
        """
        current = [self.tickets.issue(self.bob)]
        renewals: list[Deferred[None]] = []

        def renew() -> "Deferred[None]":
            renewals.append(Deferred())
            return renewals[-1]

        client = RSIService(self.treq, URL, lambda: current[0], self.clock, renewTicket=renew)
        self.clock.advance(3601)
        first, second = client.getMetadata(), client.getMessage(self.first.messageId)
        self.treq.flush()
        self.assertEqual(len(renewals), 1)
        current[0] = self.tickets.issue(self.bob)
        renewals[0].callback(None)
        self.assertEqual(len(self.result(first).messages), 2)
        self.assertIn("Content-Transfer-Encoding: base64", self.result(second))

    def test_failedRenewalFails(self) -> None:
        """
        A renewal that fails fails the call with the renewal's error.
        """
        ticket = self.tickets.issue(self.bob)
        client = RSIService(
            self.treq, URL, lambda: ticket, self.clock,
            renewTicket=lambda: fail(ServiceError("SSO down")),
        )
        self.clock.advance(3601)
        self.assertEqual(str(self.failure(client.getMetadata(), ServiceError)), "SSO down")

    def test_badIdsRefusedLocally(self) -> None:
        """
        Ids that are not server ids, and empty deletions, fail before any
        request is made.
        """
        client = self.client(self.bob)
        self.failure(client.getMessage("<x/>"), ValueError)
        self.failure(client.deleteMessages([]), ValueError)

    def test_unknownMethodAndGet(self) -> None:
        """
        An unknown method is a client fault; a GET is 405.
        """
        ticket = self.tickets.issue(self.bob)
        body = buildRSIEnvelope("<Other/>", ticket)
        response = self.result(self.treq.post(URL, data=body))
        self.assertEqual(response.code, 500)
        self.assertIn(b"soap:Client", self.result(response.content()))
        self.assertEqual(self.result(self.treq.get(URL)).code, 405)

    def test_malformedRequest(self) -> None:
        """
        A request that is not XML, or declares a DTD, is a client fault.
        """
        for body in (b"<<<", b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'):
            response = self.result(self.treq.post(URL, data=body))
            self.assertEqual(response.code, 500)
            self.assertIn(b"Schema validation error", self.result(response.content()))


class HostileReplyTests(SynchronousTestCase):
    """
    The client against canned replies.
    """

    def reply(self, status: int, body: bytes) -> "Deferred[Any]":
        class Canned(Resource):
            isLeaf = True

            def render_POST(self, request: Any) -> bytes:
                request.setResponseCode(status)
                return body

        treq = StubTreq(mount(Canned()))
        d = RSIService(treq, URL, lambda: "t=x&p=", Clock()).getMessage("ABC")
        treq.flush()
        return d

    def test_missingResult(self) -> None:
        """
        A response without C{GetMessageResult}, an empty body, a body of
        the wrong method, a bare HTTP 500 and bogus XML are each
        L{ServiceError}.
        """
        envelope = b'<Envelope><Body><GetMessageResponse/></Body></Envelope>'
        for status, body in [
            (200, envelope),
            (200, b""),
            (200, b"<Envelope><Body><Other/></Body></Envelope>"),
            (200, b"<Envelope><Body/></Envelope>"),
            (500, b""),
            (200, b"<Envelope><Body>"),
        ]:
            error = self.failureResultOf(self.reply(status, body), ServiceError).value
            self.assertNotIsInstance(error, RSIFault)

    def test_faultWith200(self) -> None:
        """
        A fault is a fault whatever the status.
        """
        body = b"<Envelope><Body><Fault><faultcode>soap:Server</faultcode><faultstring>busy</faultstring></Fault></Body></Envelope>"
        fault = self.failureResultOf(self.reply(200, body), RSIFault).value
        self.assertEqual((fault.faultCode, fault.faultString, fault.isClientFault), ("soap:Server", "busy", False))
