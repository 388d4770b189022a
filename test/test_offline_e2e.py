"""
Offline messages and messages without a switchboard, end to end: real
L{msnp.client.MSNClient}s on a L{msnp.server.network.LocalNetwork} over
loopback sockets (NS, SSO, ABCH and the RSI service), issue #12.

The server side is driven only through its public pieces: the offline
store (C{network.offlineStore}) to check what is left, and the RSI
resource's C{render_POST} wrapped to make the service fail on purpose.
The client side is watched through observer events; a missing event
fails the test through a per-wait timeout.

The "server restarted" test runs the network on the SQLite account
store, closes it and opens the same database file again.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.server import NOT_DONE_YET

from msnp.contacts import NETWORK_YAHOO, Status
from msnp.conversation import Conversation
from msnp.endpoints import ClientIdentity
from msnp.errors import ContactOffline, MessageNotDelivered
from msnp.offline import DECODE, FETCH, ANNOUNCE
from msnp.server.network import LocalNetwork
from msnp.server.sqlstore import SQLiteAccountStore
from msnp.uum import DeliveryResult
from msnp.wire import Command

from test.support import (
    CONVERSATION_EVENTS,
    LIST_EVENTS,
    EventRecorder,
    Summary,
    pollUntil,
    signIn,
    startLocalNetwork,
    tempDirectory,
)

PASSWORD = "secret-pw"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
EVE = "eve@yahoo.com"

#: 1,200 characters, most of them outside ASCII (four-byte ones included).
LONG_TEXT = ("Grüße, ça va? Ελληνικά 日本語 😀✓ " * 60)[:1200]
TEXTS = [LONG_TEXT, "first line\nsecond line", "and a third one"]

#: A short grace period: the local network never answers UUM, so every
#: offline send waits this long before it counts as stored.
GRACE = 0.2


#: What these tests compare (the only events recorded): the offline and
#: network-32 events whole, presence by address, conversations without the
#: session.
OFFLINE_EVENTS: dict[str, Summary] = {
    "offlineMessageReceived": None,
    "offlineMessageFailed": None,
    "networkMessageReceived": None,
    "networkTypingReceived": None,
    "networkNudgeReceived": None,
    "contactStatusChanged": LIST_EVENTS["contactStatusChanged"],
    "conversationStarted": CONVERSATION_EVENTS["conversationStarted"],
    "messageReceived": CONVERSATION_EVENTS["messageReceived"],
    "conversationEnded": CONVERSATION_EVENTS["conversationEnded"],
}


def offlineTexts(recorder: EventRecorder) -> list[str]:
    return [m.text for _, m in recorder.named("offlineMessageReceived")]


def failures(recorder: EventRecorder) -> list[Any]:
    return [f for _, f in recorder.named("offlineMessageFailed")]


class RSITamper:
    """
    Wraps the RSI resource of a network so that chosen calls answer
    something else: C{plan} maps a method name (C{"GetMessage"}) to a list
    of answers used up one per call, each C{(status, body)} or
    L{NOT_DONE_YET} (never answer: the client's timeout must fire).
    """

    def __init__(self, network: LocalNetwork) -> None:
        assert network.rsi is not None
        self.resource = network.rsi
        self.original = network.rsi.render_POST
        self.plan: dict[str, list[Any]] = {}
        self.calls: list[str] = []
        self.held: list[Any] = []
        network.rsi.render_POST = self.render_POST  # type: ignore[method-assign]

    def render_POST(self, request: Any) -> Any:
        body = request.content.read()
        request.content.seek(0)
        method = next((m for m in ("GetMetadata", "GetMessage", "DeleteMessages") if m.encode() in body), "?")
        self.calls.append(method)
        answers = self.plan.get(method)
        if not answers:
            return self.original(request)
        answer = answers.pop(0)
        if answer is NOT_DONE_YET:
            self.held.append(request)
            return NOT_DONE_YET
        status, payload = answer
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        return payload


SERVER_FAULT = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Busy.</faultstring>"
    b"</soap:Fault></soap:Body></soap:Envelope>"
)
NO_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b"</soap:Envelope>"
)


class OfflineEndToEndTests(TestCase):
    """
    alice, bob and carol on one local network (alice and bob are mutual
    contacts; carol is nobody's contact); eve is a network-32 account.
    """

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(ALICE, PASSWORD, "Alice"), (BOB, PASSWORD, "Bob"), (CAROL, PASSWORD, "Carol")],
            mutualContacts=[(ALICE, BOB)],
            reactor=reactor,
        )
        self.network.addAccount(EVE, PASSWORD, "Eve", network=NETWORK_YAHOO)
        self.network.addContact(ALICE, EVE, mutual=True)

    async def signIn(
        self, email: str, endpoints: Any = None, **clientArgs: Any
    ) -> tuple[Any, EventRecorder]:
        recorder = EventRecorder(email.split("@")[0], OFFLINE_EVENTS)
        clientArgs.setdefault("uumGracePeriod", GRACE)
        session = await signIn(self, email, PASSWORD, endpoints or self.endpoints, recorder, **clientArgs)
        return session, recorder

    def waiting(self, email: str, network: Optional[LocalNetwork] = None) -> list[Any]:
        return (network or self.network).offlineStore.listOfflineMessages(email)

    async def leaveThree(self, alice: Any, network: Optional[LocalNetwork] = None) -> list[Any]:
        for text in TEXTS:
            self.assertEqual(await alice.sendOfflineMessage(BOB, text), DeliveryResult.STORED_OFFLINE)
        stored = self.waiting(BOB, network)
        self.assertEqual([m.text for m in stored], TEXTS)
        return stored

    def assertReceivedOnce(self, recorder: EventRecorder, stored: list[Any]) -> None:
        messages = [m for _, m in recorder.named("offlineMessageReceived")]
        self.assertEqual([m.text for m in messages], TEXTS)
        self.assertEqual([m.messageId for m in messages], [m.messageId for m in stored])
        for message, original in zip(messages, stored):
            self.assertEqual((message.sender, message.senderName), (ALICE, "Alice"))
            assert message.sent is not None
            # RT is written with milliseconds.
            self.assertTrue(abs(message.sent.timestamp() - original.received) <= 0.001, (message.sent, original))

    # -- the scenarios -----------------------------------------------------------

    async def test_threeMessagesToOfflineBob(self) -> None:
        """
        alice leaves three messages for offline bob (one of 1,200 non-ASCII
        characters, one with a line break); bob signs in and receives all
        three once, in order, with the right sender and times; then they
        are gone from the server.
        """
        alice, _ = await self.signIn(ALICE)
        stored = await self.leaveThree(alice)
        bob, bobEvents = await self.signIn(BOB)
        await bobEvents.waitForEvent("offlineMessageReceived", 3)
        self.assertTrue(await pollUntil(lambda: not self.waiting(BOB), 5))
        assert bob.offlineInbox is not None
        await bob.offlineInbox.whenIdle()
        self.assertReceivedOnce(bobEvents, stored)
        self.assertEqual(failures(bobEvents), [])
        self.assertTrue(bob.isActive)

    async def test_serverRestarted(self) -> None:
        """
        The network, on the SQLite store, stops between the send and bob's
        sign-in, its database is closed and opened again by a new
        network: nothing is lost (ids, texts, times, order).
        """
        path = os.path.join(tempDirectory(self), "server.sqlite3")
        store = SQLiteAccountStore(path)
        store.addAccount(ALICE, PASSWORD, "Alice")
        store.addAccount(BOB, PASSWORD, "Bob")
        store.addContact(ALICE, BOB, mutual=True)
        first = LocalNetwork(reactor=reactor, store=store)
        endpoints = await first.start()
        alice, _ = await self.signIn(ALICE, endpoints)
        stored = await self.leaveThree(alice, first)
        await alice.logout()
        await first.stop()
        store.close()

        reopened = SQLiteAccountStore(path)
        self.addCleanup(reopened.close)
        again = LocalNetwork(reactor=reactor, store=reopened)
        endpoints = await again.start()
        self.addCleanup(again.stop)
        self.assertEqual([m.messageId for m in self.waiting(BOB, again)], [m.messageId for m in stored])
        bob, bobEvents = await self.signIn(BOB, endpoints)
        await bobEvents.waitForEvent("offlineMessageReceived", 3)
        self.assertTrue(await pollUntil(lambda: not self.waiting(BOB, again), 5))
        self.assertReceivedOnce(bobEvents, stored)
        self.assertEqual(reopened.listOfflineMessages(BOB), [])

    async def test_twoPlaces(self) -> None:
        """
        bob is signed in at two places when the messages arrive: both are
        told (the live notification), each place delivers each message at
        most once and in order, every message reaches bob, and each is
        deleted exactly once (the other place's late GetMessage or
        DeleteMessages is refused and taken as handled elsewhere).
        """
        deleted: list[str] = []
        store = self.network.offlineStore
        originalDelete = store.deleteOfflineMessages

        def countingDelete(recipient: str, ids: Any) -> list[str]:
            done = originalDelete(recipient, ids)
            deleted.extend(done)
            return done

        store.deleteOfflineMessages = countingDelete  # type: ignore[method-assign]
        stored: list[Any] = []
        originalStore = store.storeOfflineMessage

        def recordingStore(message: Any) -> None:
            originalStore(message)
            stored.append(message)

        store.storeOfflineMessage = recordingStore  # type: ignore[method-assign]
        bob1, events1 = await self.signIn(BOB, identity=ClientIdentity(placeName="one"))
        bob2, events2 = await self.signIn(BOB, identity=ClientIdentity(placeName="two"))
        alice, _ = await self.signIn(ALICE)
        for text in TEXTS:
            self.assertEqual(await alice.sendOfflineMessage(BOB, text), DeliveryResult.STORED_OFFLINE)
        self.assertEqual([m.text for m in stored], TEXTS)
        ids = [m.messageId for m in stored]
        self.assertTrue(await pollUntil(lambda: not self.waiting(BOB), 10))
        for session in (bob1, bob2):
            await session.offlineInbox.whenIdle()
        got1 = [m.messageId for _, m in events1.named("offlineMessageReceived")]
        got2 = [m.messageId for _, m in events2.named("offlineMessageReceived")]
        for got in (got1, got2):
            self.assertEqual(len(got), len(set(got)))
            self.assertEqual(got, [i for i in ids if i in got])
        self.assertEqual(set(got1) | set(got2), set(ids))
        self.assertEqual(sorted(deleted), sorted(ids))
        self.assertTrue(bob1.isActive and bob2.isActive)

    async def test_rsiFailsFirst(self) -> None:
        """
        The first GetMessage of each message fails (a soap:Server fault,
        HTTP 500 without a fault, no answer at all): the message stays on
        the server, is reported with willRetry, and arrives after the retry.
        """
        tamper = RSITamper(self.network)
        bob, bobEvents = await self.signIn(BOB)
        assert bob.offlineInbox is not None and bob.rsi is not None
        bob.offlineInbox.initialDelay = 0.05
        bob.rsi.timeout = 0.5
        onServerAtFailure: list[list[str]] = []

        def snapshot(session: Any, failure: Any) -> tuple[Any, ...]:
            # The ids on the server at the moment the failure is reported.
            onServerAtFailure.append([m.messageId for m in self.waiting(BOB)])
            return (session, failure)

        bobEvents.summaries = {**OFFLINE_EVENTS, "offlineMessageFailed": snapshot}
        alice, _ = await self.signIn(ALICE)
        for number, answer in enumerate([(500, SERVER_FAULT), (500, b"oops"), NOT_DONE_YET], 1):
            tamper.plan["GetMessage"] = [answer]
            text = f"message {number}"
            await alice.sendOfflineMessage(BOB, text)
            await bobEvents.waitFor(lambda: len(failures(bobEvents)) >= number, f"failure {number}")
            failure = failures(bobEvents)[-1]
            self.assertEqual((failure.stage, failure.attempt, failure.willRetry), (FETCH, 1, True))
            self.assertIn(failure.messageId, onServerAtFailure[-1])
            await bobEvents.waitFor(lambda: text in offlineTexts(bobEvents), text)
        self.assertTrue(await pollUntil(lambda: not self.waiting(BOB), 5))
        self.assertEqual(offlineTexts(bobEvents), ["message 1", "message 2", "message 3"])
        self.assertTrue(bob.isActive)

    async def test_sendTextAfterContactLeft(self) -> None:
        """
        alice and bob are talking; bob signs out; alice's next sendText on
        the same conversation becomes an offline message, and its result
        says so; strict=True keeps the old failure. bob gets the text at
        his next sign-in.
        """
        alice, aliceEvents = await self.signIn(ALICE)
        bob, bobEvents = await self.signIn(BOB)
        conversation = await alice.openConversation(BOB)
        self.assertEqual(await conversation.sendText("are you there?"), DeliveryResult.DELIVERED_ONLINE)
        await bobEvents.waitForEvent("messageReceived")
        await bob.logout()
        await aliceEvents.waitFor(
            lambda: (BOB, Status.OFFLINE) in aliceEvents.named("contactStatusChanged"), "bob offline"
        )
        await aliceEvents.waitForEvent("conversationEnded")
        with self.assertRaises((MessageNotDelivered, ContactOffline)):
            await conversation.sendText("strictly online", strict=True)
        self.assertEqual(await conversation.sendText("call me back"), DeliveryResult.STORED_OFFLINE)
        self.assertEqual([m.text for m in self.waiting(BOB)], ["call me back"])
        bob2, bobEvents2 = await self.signIn(BOB)
        await bobEvents2.waitForEvent("offlineMessageReceived")
        self.assertEqual(offlineTexts(bobEvents2), ["call me back"])

    async def test_sendTextCALRefused(self) -> None:
        """
        A contact whose presence alice does not know (not on her list):
        the switchboard's CAL is answered 217, and the text is left as an
        offline message instead.
        """
        alice, _ = await self.signIn(ALICE)
        conversation = Conversation(alice.conversationManager, [CAROL])
        alice.conversationManager.conversations.append(conversation)
        self.assertEqual(await conversation.sendText("hello carol"), DeliveryResult.STORED_OFFLINE)
        self.assertEqual([m.text for m in self.waiting(CAROL)], ["hello carol"])

    # -- hostile input -----------------------------------------------------------------------

    async def test_bogusMailData(self) -> None:
        """
        Mail data with bogus XML is reported (stage announce); the session
        goes on and later messages still arrive.
        """
        bob, bobEvents = await self.signIn(BOB)
        payload = (
            b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsoimnotification; charset=UTF-8\r\n\r\n"
            b"Mail-Data: <MD><M><I>unterminated</M><!DOCTYPE x [<!ENTITY a 'b'>]>\r\n"
        )
        for place in self.network.onlineSessions(BOB):
            place.sendRaw(Command("MSG", None, ("Hotmail", "Hotmail"), payload))
        await bobEvents.waitFor(lambda: bool(failures(bobEvents)), "the announce failure")
        self.assertEqual(failures(bobEvents)[0].stage, ANNOUNCE)
        self.assertTrue(bob.isActive)
        alice, _ = await self.signIn(ALICE)
        await alice.sendOfflineMessage(BOB, "still works")
        await bobEvents.waitFor(lambda: "still works" in offlineTexts(bobEvents), "the real message")

    async def test_rsiReplyWithoutBody(self) -> None:
        """
        Every GetMessage answer lacks its SOAP body: each attempt is
        reported, the inbox gives up after its last attempt, and the
        message, never delivered, is still on the server.
        """
        tamper = RSITamper(self.network)
        tamper.plan["GetMessage"] = [(200, NO_BODY)] * 10
        bob, bobEvents = await self.signIn(BOB)
        assert bob.offlineInbox is not None
        bob.offlineInbox.initialDelay = 0.05
        alice, _ = await self.signIn(ALICE)
        await alice.sendOfflineMessage(BOB, "kept for later")
        attempts = bob.offlineInbox.maxAttempts
        await bobEvents.waitFor(lambda: len(failures(bobEvents)) >= attempts, "every attempt")
        await bob.offlineInbox.whenIdle()
        reported = failures(bobEvents)
        self.assertEqual([f.attempt for f in reported], list(range(1, attempts + 1)))
        self.assertEqual([f.willRetry for f in reported], [True] * (attempts - 1) + [False])
        self.assertIn("SOAP body is missing", str(reported[0].error))
        self.assertEqual(offlineTexts(bobEvents), [])
        self.assertEqual([m.text for m in self.waiting(BOB)], ["kept for later"])
        self.assertNotIn("DeleteMessages", tamper.calls)
        self.assertTrue(bob.isActive)

    async def test_tenMegabytes(self) -> None:
        """
        A 10 MB text is refused before anything is sent (ValueError naming
        the sizes); a 10 MB GetMessage answer is cut off at the client's
        cap, reported once (not retried), and the message stays on the
        server; both sessions go on.
        """
        alice, _ = await self.signIn(ALICE)
        huge = "x" * (10 * 1024 * 1024)
        with self.assertRaises(ValueError) as caught:
            await alice.sendOfflineMessage(BOB, huge)
        self.assertIn("limit is", str(caught.exception))
        self.assertEqual(self.waiting(BOB), [])

        tamper = RSITamper(self.network)
        tamper.plan["GetMessage"] = [(200, b"<a>" + b"y" * (10 * 1024 * 1024) + b"</a>")]
        await alice.sendOfflineMessage(BOB, "small")
        bob, bobEvents = await self.signIn(BOB)
        await bobEvents.waitFor(lambda: bool(failures(bobEvents)), "the size failure")
        assert bob.offlineInbox is not None
        await bob.offlineInbox.whenIdle()
        (failure,) = failures(bobEvents)
        self.assertEqual((failure.stage, failure.willRetry), (FETCH, False))
        self.assertEqual(offlineTexts(bobEvents), [])
        self.assertEqual([m.text for m in self.waiting(BOB)], ["small"])
        self.assertTrue(alice.isActive and bob.isActive)

    async def test_undecodableMessageKept(self) -> None:
        """
        A GetMessage answer that is no message (bad base64) is reported as
        a decode failure and the message is not deleted.
        """
        tamper = RSITamper(self.network)
        envelope = (
            '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            '<soap:Body><GetMessageResponse xmlns="http://www.hotmail.msn.com/ws/2004/09/oim/rsi">'
            "<GetMessageResult>From: &lt;alice@example.com&gt;&#13;\nContent-Transfer-Encoding: base64&#13;\n&#13;\n"
            "!!!not base64!!!</GetMessageResult></GetMessageResponse></soap:Body></soap:Envelope>"
        ).encode()
        tamper.plan["GetMessage"] = [(200, envelope)]
        alice, _ = await self.signIn(ALICE)
        await alice.sendOfflineMessage(BOB, "undecodable")
        bob, bobEvents = await self.signIn(BOB)
        await bobEvents.waitFor(lambda: bool(failures(bobEvents)), "the decode failure")
        assert bob.offlineInbox is not None
        await bob.offlineInbox.whenIdle()
        self.assertEqual([f.stage for f in failures(bobEvents)], [DECODE])
        self.assertEqual([m.text for m in self.waiting(BOB)], ["undecodable"])

    # -- network 32 --------------------------------------------------------------------------

    async def test_networkContact(self) -> None:
        """
        eve is a network-32 contact of alice: alice's list says so, FQY
        answers t="32"; text, typing and nudges go both ways as UUM/UBM
        (alice with sendNetworkText or a conversation's sendText, eve's
        gateway side with network=1); nothing is stored offline.
        """
        alice, aliceEvents = await self.signIn(ALICE)
        eve, eveEvents = await self.signIn(EVE)
        contact = alice.contacts.get(EVE)
        assert contact is not None
        self.assertEqual(contact.network, NETWORK_YAHOO)

        fqy = await alice.protocol.sendCommand("FQY", payload=b'<ml><d n="yahoo.com"><c n="eve" /></d></ml>')
        self.assertIn(b't="32"', fqy.payload or b"")

        self.assertEqual(await alice.sendNetworkText(EVE, "hi from Live"), DeliveryResult.SENT_TO_NETWORK)
        await eveEvents.waitForEvent("networkMessageReceived")
        (_, message), = eveEvents.named("networkMessageReceived")
        self.assertEqual((message.sender, message.text), (ALICE, "hi from Live"))

        conversation = Conversation(alice.conversationManager, [EVE])
        self.assertEqual(await conversation.sendText("through sendText"), DeliveryResult.SENT_TO_NETWORK)
        self.assertEqual(await alice.sendOfflineMessage(EVE, "offline?"), DeliveryResult.SENT_TO_NETWORK)
        await alice.sendNetworkTyping(EVE)
        await alice.sendNetworkNudge(EVE)
        await eveEvents.waitForEvent("networkNudgeReceived")
        self.assertEqual(
            [m.text for _, m in eveEvents.named("networkMessageReceived")],
            ["hi from Live", "through sendText", "offline?"],
        )
        self.assertEqual(eveEvents.named("networkTypingReceived"), [(eve, ALICE)])

        # The other way: eve's side writes UUM to network 1, alice gets UBM.
        await eve.sendNetworkText(ALICE, "hi from Yahoo!", network=1)
        await eve.sendNetworkTyping(ALICE, network=1)
        await aliceEvents.waitForEvent("networkTypingReceived")
        (_, message), = aliceEvents.named("networkMessageReceived")
        self.assertEqual((message.sender, message.text, message.senderName), (EVE, "hi from Yahoo!", "Eve"))
        self.assertEqual(aliceEvents.named("networkTypingReceived"), [(alice, EVE)])
        self.assertEqual(self.waiting(ALICE) + self.waiting(EVE), [])

        # eve offline: the message is dropped (no offline store on her network).
        await eve.logout()
        self.assertEqual(await alice.sendNetworkText(EVE, "nobody home"), DeliveryResult.SENT_TO_NETWORK)
        self.assertEqual(self.waiting(EVE), [])
        self.assertTrue(alice.isActive)
