"""
The RSI client (L{msnp.soap.rsi.RSIService}) and the offline inbox
(L{msnp.offline.OfflineInbox}) against the local network's RSI resource
over a real loopback HTTP port.

A resource in front of the real one answers the first requests in a
scripted hostile way (a server fault, a bare HTTP 500, no reply until the
deadline, a missing result, bogus XML, a 10 MB body). Deadlines and retry
delays run on a L{Clock} the test advances, so nothing waits on wall-clock
time; the sockets are real.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from msnp.http import BodyTooLarge
from msnp.offline import FETCH, OfflineFailure, OfflineInbox
from msnp.oim import MailData, OfflineMessage, decodeOfflineMessage
from msnp.server.accounts import AccountStore
from msnp.server.offline import MemoryOfflineStore, StoredOfflineMessage, buildInitialMailData, newMessageId
from msnp.server.rsi import IssuedMessengerTickets, RSIResource
from msnp.soap.rsi import MAX_RSI_BODY_BYTES, RSIFault, RSIService
from msnp.httpclient import makeHTTPClient

from test.support import EventRecorder, TrackingFactory, asyncTest, stopTracked

#: The client's deadline, on the test's clock.
TIMEOUT = 30.0

_FAULT = (
    b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Busy.</faultstring>"
    b"</soap:Fault></soap:Body></soap:Envelope>"
)
_NO_RESULT = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    b'<GetMessageResponse xmlns="http://www.hotmail.msn.com/ws/2004/09/oim/rsi"/></soap:Body></soap:Envelope>'
)


class Injector(Resource):
    """
    Answers the next requests as scripted, then passes them to the real
    resource.

    @ivar script: behaviours for the next requests, one each: C{"fault"},
        C{"500"}, C{"stall"}, C{"noresult"}, C{"bogus"}, C{"huge"}.
    @ivar stalled: requests held open by C{"stall"}.
    """

    isLeaf = True

    def __init__(self, real: Resource, recorder: "Recorder") -> None:
        super().__init__()
        self.real = real
        self.recorder = recorder
        self.script: list[str] = []
        self.stalled: list[Request] = []
        self.actions: list[str] = []

    def render_POST(self, request: Request) -> Any:
        action = (request.getHeader(b"soapaction") or b"").decode().strip('"').rpartition("/")[2]
        self.actions.append(action)
        behaviour = self.script.pop(0) if self.script else None
        if behaviour == "stall":
            self.stalled.append(request)
        self.recorder._record("request", action)
        if behaviour is None:
            return self.real.render(request)
        if behaviour == "stall":
            return NOT_DONE_YET
        if behaviour == "huge":
            return b"<x>" + b"A" * (10 * 1024 * 1024) + b"</x>"
        request.setResponseCode(200 if behaviour in ("noresult", "bogus") else 500)
        return {"fault": _FAULT, "500": b"", "noresult": _NO_RESULT, "bogus": b"<soap:Envelope><oops"}[behaviour]


class Recorder(EventRecorder):
    """
    Records the inbox's deliveries and reported failures, and the requests
    the server saw.
    """

    def deliver(self, message: OfflineMessage) -> None:
        self._record("delivered", message)

    def report(self, failure: OfflineFailure) -> None:
        self._record("failure", failure)


class LoopbackRSITests(TestCase):
    """
    Client and inbox against the RSI resource on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.accounts = AccountStore()
        self.bob = self.accounts.addAccount("bob@example.com", "pw")
        self.tickets = IssuedMessengerTickets(self.accounts)
        self.messages = MemoryOfflineStore()
        self.recorder = Recorder("bob")
        self.injector = Injector(RSIResource(self.messages, self.tickets.check), self.recorder)
        root = Resource()
        folder = Resource()
        root.putChild(b"rsi", folder)
        folder.putChild(b"rsi.asmx", self.injector)
        factory = TrackingFactory(Site(root))
        listener: Any = reactor
        port = listener.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(stopTracked, port, factory)
        handle = makeHTTPClient(reactor, persistent=False)
        self.addCleanup(handle.close)
        ticket = self.tickets.issue(self.bob)
        self.rsi = RSIService(
            handle.client, f"http://127.0.0.1:{port.getHost().port}/rsi/rsi.asmx",
            lambda: ticket, self.clock, timeout=TIMEOUT,
        )
        self.inbox = OfflineInbox.overRSI(self.rsi, self.recorder.deliver, self.clock, self.recorder.report)
        self.addCleanup(self.inbox.stop)

    def leave(self, text: str, received: float) -> StoredOfflineMessage:
        message = StoredOfflineMessage(
            messageId=newMessageId(), recipient="bob@example.com", sender="alice@example.com",
            senderName="Alice", text=text, received=received, runId="{RUN}",
        )
        self.messages.storeOfflineMessage(message)
        return message

    def waiting(self) -> list[str]:
        return [m.messageId for m in self.messages.listOfflineMessages("bob@example.com")]

    def announceAll(self) -> None:
        """
        What the NS would do at sign-in: the initial mail data.
        """
        payload = buildInitialMailData(self.messages.listOfflineMessages("bob@example.com"))
        self.inbox.announcePayload(payload)

    @asyncTest
    async def test_roundTrip(self) -> None:
        """
        GetMetadata, GetMessage and DeleteMessages over a real port; the
        deleted message is gone for a second GetMessage.
        """
        message = self.leave("Grüße 🦊\nzweite Zeile", 1000.0)
        data = await self.rsi.getMetadata()
        self.assertEqual([m.messageId for m in data.messages], [message.messageId])
        text = await self.rsi.getMessage(message.messageId)
        self.assertEqual(decodeOfflineMessage(text, message.messageId).text, "Grüße 🦊\nzweite Zeile")
        await self.rsi.deleteMessages([message.messageId])
        self.assertEqual(self.waiting(), [])
        with self.assertRaises(RSIFault):
            await self.rsi.getMessage(message.messageId)

    @asyncTest
    async def test_inboxDeliversInOrderAndDeletes(self) -> None:
        """
        Three messages (announced newest first) arrive once each, in the
        order sent, and are gone from the server afterwards.
        """
        texts = ["one", "two " + "é" * 1200, "three\nlines"]
        for index, text in reversed(list(enumerate(texts))):
            self.leave(text, 1000.0 + index * 0.001)
        self.announceAll()
        self.announceAll()
        await self.recorder.waitFor(lambda: len(self.recorder.named("delivered")) == 3, "three deliveries")
        await self.inbox.whenIdle()
        self.assertEqual([m.text for (m,) in self.recorder.named("delivered")], texts)
        self.assertEqual(self.waiting(), [])
        self.assertEqual(self.recorder.named("failure"), [])

    async def _firstReplyHostile(self, behaviour: str) -> None:
        message = self.leave("hello", 1000.0)
        self.injector.script.append(behaviour)
        self.announceAll()
        if behaviour == "stall":
            await self.recorder.waitFor(lambda: len(self.injector.stalled) == 1, "the stalled request")
            self.clock.advance(TIMEOUT)
        await self.recorder.waitFor(lambda: bool(self.recorder.named("failure")), "the failure report")
        ((failure,),) = self.recorder.named("failure")
        self.assertEqual((failure.stage, failure.willRetry, failure.messageId), (FETCH, True, message.messageId))
        self.assertEqual(self.waiting(), [message.messageId])
        self.assertEqual(self.recorder.named("delivered"), [])
        self.clock.advance(self.inbox.initialDelay)
        await self.recorder.waitFor(lambda: bool(self.recorder.named("delivered")), "the retried delivery")
        await self.inbox.whenIdle()
        self.assertEqual([m.text for (m,) in self.recorder.named("delivered")], ["hello"])
        self.assertEqual(self.waiting(), [])
        self.assertEqual(self.injector.actions, ["GetMessage", "GetMessage", "DeleteMessages"])

    @asyncTest
    async def test_faultThenRetry(self) -> None:
        """
        A server fault on the first GetMessage: not deleted, delivered
        after the retry, then deleted.
        """
        await self._firstReplyHostile("fault")

    @asyncTest
    async def test_bare500ThenRetry(self) -> None:
        """
        A bare HTTP 500 (Escargot's form) on the first try, then success.
        """
        await self._firstReplyHostile("500")

    @asyncTest
    async def test_timeoutThenRetry(self) -> None:
        """
        No reply within the deadline on the first try, then success.
        """
        await self._firstReplyHostile("stall")

    @asyncTest
    async def test_missingResultThenRetry(self) -> None:
        """
        A reply without C{GetMessageResult} on the first try, then success.
        """
        await self._firstReplyHostile("noresult")

    @asyncTest
    async def test_bogusXMLThenRetry(self) -> None:
        """
        A reply that is not XML on the first try, then success.
        """
        await self._firstReplyHostile("bogus")

    @asyncTest
    async def test_hugeReplyCapped(self) -> None:
        """
        A 10 MB reply is cut off at the cap with L{BodyTooLarge}, reported
        as final, and the message is neither delivered nor deleted.
        """
        message = self.leave("hello", 1000.0)
        self.injector.script.append("huge")
        self.announceAll()
        await self.recorder.waitFor(lambda: bool(self.recorder.named("failure")), "the failure report")
        ((failure,),) = self.recorder.named("failure")
        self.assertIsInstance(failure.error, BodyTooLarge)
        self.assertIn(str(MAX_RSI_BODY_BYTES), str(failure.error))
        self.assertFalse(failure.willRetry)
        await self.inbox.whenIdle()
        self.assertEqual(self.waiting(), [message.messageId])
        self.assertEqual(self.recorder.named("delivered"), [])
        self.assertEqual(self.injector.actions, ["GetMessage"])

    @asyncTest
    async def test_tooLargeListsThroughGetMetadata(self) -> None:
        """
        C{Mail-Data: too-large} makes the inbox list through GetMetadata
        and deliver what it lists.
        """
        self.leave("listed", 1000.0)
        self.inbox.announce(MailData(tooLarge=True))
        await self.recorder.waitFor(lambda: bool(self.recorder.named("delivered")), "the delivery")
        await self.inbox.whenIdle()
        self.assertEqual(self.injector.actions, ["GetMetadata", "GetMessage", "DeleteMessages"])
        self.assertEqual(self.waiting(), [])
