"""
Tests for L{msnp.offline.OfflineInbox}: once, in order, deleted only after
delivery, retried on a L{Clock}, never raising.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import ConnectionLost, RequestTimeout, ServerError, ServiceError
from msnp.http import BodyTooLarge
from msnp.offline import ANNOUNCE, DECODE, DELETE, FETCH, LIST, OfflineFailure, OfflineInbox, acceptedUnlessRefused
from msnp.oim import MailData, OfflineMessage, OfflineMessageAnnouncement
from msnp.soap.rsi import RSIFault
from msnp.uum import DeliveryResult
from msnp.wire import Command

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def mailText(text: str, sender: str = "alice@example.com") -> str:
    """
    A GetMessage text carrying C{text}.
    """
    body = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return (
        f"From: =?utf-8?B?QWxpY2U=?= <{sender}>\nContent-Type: text/plain; charset=UTF-8\n"
        f"Content-Transfer-Encoding: base64\n\n{body}"
    )


def announce(messageId: str, seconds: int) -> OfflineMessageAnnouncement:
    return OfflineMessageAnnouncement(
        messageId, "alice@example.com", "Alice", T0 + timedelta(seconds=seconds)
    )


class FakeService:
    """
    Fetch and delete by id from a dict, with scripted failures.

    @ivar failures: id (or C{"delete"}) to a list of exceptions raised by
        the next calls, one each.
    """

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = dict(texts)
        self.failures: dict[str, list[Exception]] = {}
        self.fetched: list[str] = []
        self.deleteCalls: list[list[str]] = []
        self.hold: Optional[Deferred[str]] = None

    def fetch(self, messageId: str) -> "Deferred[str]":
        self.fetched.append(messageId)
        queued = self.failures.get(messageId)
        if queued:
            return fail(queued.pop(0))
        if self.hold is not None:
            return self.hold
        if messageId not in self.texts:
            return fail(RSIFault("gone", status=500, faultCode="soap:Client"))
        return succeed(self.texts[messageId])

    def delete(self, ids: list[str]) -> "Deferred[None]":
        self.deleteCalls.append(list(ids))
        queued = self.failures.get("delete")
        if queued:
            return fail(queued.pop(0))
        if any(i not in self.texts for i in ids):
            return fail(RSIFault("gone", status=500, faultCode="soap:Client"))
        for i in ids:
            del self.texts[i]
        return succeed(None)


class InboxTests(SynchronousTestCase):
    """
    L{OfflineInbox} with a fake service.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.service = FakeService(
            {"A": mailText("first"), "B": mailText("second"), "C": mailText("third")}
        )
        self.delivered: list[OfflineMessage] = []
        self.failures: list[OfflineFailure] = []
        self.inbox = self.makeInbox()

    def makeInbox(self, deliver: Optional[Callable[[OfflineMessage], None]] = None, **kwargs: object) -> OfflineInbox:
        return OfflineInbox(
            self.service.fetch, self.service.delete, deliver or self.delivered.append, self.clock,
            report=self.failures.append, **kwargs,  # type: ignore[arg-type]
        )

    def texts(self) -> list[str]:
        return [m.text for m in self.delivered]

    def test_orderOnceDeleted(self) -> None:
        """
        Announced out of order and twice, each message is delivered once,
        by send time, with sender and time, then all are deleted.
        """
        self.inbox.announce(MailData((announce("C", 30), announce("A", 10), announce("B", 20))))
        self.inbox.announce(MailData((announce("A", 10),)))
        self.assertEqual(self.texts(), ["first", "second", "third"])
        self.assertEqual(self.delivered[0].sender, "alice@example.com")
        self.assertEqual(self.delivered[0].senderName, "Alice")
        self.assertEqual(self.delivered[1].sent, T0 + timedelta(seconds=20))
        self.assertEqual(self.service.texts, {})
        self.assertEqual(self.failures, [])
        self.inbox.announce(MailData((announce("B", 20),)))
        self.assertEqual(len(self.delivered), 3)
        self.assertTrue(self.inbox.whenIdle().called)

    def test_retryKeepsOrderAndDelaysDelete(self) -> None:
        """
        A fetch that fails (a server fault, a timeout) is retried after the
        backoff; the messages after it wait, so order holds; nothing is
        deleted before delivery; each failure is reported.
        """
        self.service.failures["A"] = [RSIFault("busy", status=500, faultCode="soap:Server"), ServiceError("timeout")]
        self.inbox.announce(MailData((announce("A", 10), announce("B", 20))))
        self.assertEqual(self.delivered, [])
        self.assertEqual(self.service.deleteCalls, [])
        self.assertEqual([(f.stage, f.attempt, f.willRetry) for f in self.failures], [(FETCH, 1, True)])
        self.clock.advance(2)
        self.assertEqual(self.delivered, [])
        self.clock.advance(4)
        self.assertEqual(self.texts(), ["first", "second"])
        self.assertEqual(self.service.deleteCalls, [["A", "B"]])
        self.assertEqual([f.attempt for f in self.failures], [1, 2])

    def test_giveUpLeavesMessage(self) -> None:
        """
        After C{maxAttempts} failures the message is reported as given up,
        not delivered, not deleted; the others go on.
        """
        self.service.failures["A"] = [ServiceError("HTTP 500")] * 4
        self.inbox.announce(MailData((announce("A", 10), announce("B", 20))))
        self.clock.pump([2, 4, 8])
        self.assertEqual(self.texts(), ["second"])
        self.assertIn("A", self.service.texts)
        self.assertEqual(self.service.deleteCalls, [["B"]])
        self.assertEqual([f.willRetry for f in self.failures], [True, True, True, False])

    def test_permanentNotRetried(self) -> None:
        """
        An oversized answer, an undecodable message, or a client fault
        (deleted by another place) is reported once and not retried;
        nothing of it is deleted.
        """
        self.service.texts["D"] = "no blank line"
        self.service.failures["A"] = [BodyTooLarge("10 MB", status=200)]
        self.inbox.announce(MailData((announce("A", 10), announce("D", 15), announce("X", 16))))
        self.clock.advance(100)
        self.assertEqual(self.delivered, [])
        self.assertEqual([(f.messageId, f.stage, f.willRetry) for f in self.failures],
                         [("A", FETCH, False), ("D", DECODE, False), ("X", FETCH, False)])
        self.assertEqual(self.service.deleteCalls, [])
        self.assertEqual(self.service.fetched, ["A", "D", "X"])

    def test_deleteRetriedThenSplit(self) -> None:
        """
        A failed delete is retried; an all-or-nothing refusal (one id gone)
        is retried id by id, so the others are still deleted.
        """
        self.service.failures["delete"] = [ServiceError("HTTP 503")]
        self.inbox.announce(MailData((announce("A", 10), announce("B", 20))))
        del self.service.texts["A"]  # deleted meanwhile by another place
        self.clock.advance(2)
        self.assertEqual(self.service.deleteCalls, [["A", "B"], ["A", "B"], ["A"], ["B"]])
        self.assertEqual(self.service.texts, {"C": mailText("third")})
        self.assertEqual([f.stage for f in self.failures], [DELETE, DELETE])

    def test_callbackErrorStillDelivered(self) -> None:
        """
        A delivery callback that raises does not stop the inbox; the
        message counts as handed over (and is deleted, never redelivered).
        """
        def explode(message: OfflineMessage) -> None:
            self.delivered.append(message)
            raise RuntimeError("bug in the bot")

        inbox = self.makeInbox(deliver=explode)
        inbox.announce(MailData((announce("A", 10), announce("B", 20))))
        self.assertEqual(self.texts(), ["first", "second"])
        self.assertEqual(self.service.deleteCalls, [["A", "B"]])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_stopCancels(self) -> None:
        """
        L{OfflineInbox.stop} during a fetch or a retry wait cancels it;
        nothing more is delivered or deleted, and no timer is left.
        """
        self.service.hold = Deferred()
        self.inbox.announce(MailData((announce("A", 10),)))
        self.inbox.stop()
        self.assertTrue(self.service.hold.called)
        self.service.failures["A"] = [ServiceError("x")]
        inbox = self.makeInbox()
        self.service.hold = None
        inbox.announce(MailData((announce("A", 10),)))
        inbox.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        inbox.announce(MailData((announce("B", 10),)))
        self.assertEqual(self.delivered, [])
        self.assertEqual(self.service.deleteCalls, [])

    def test_tooLargeLists(self) -> None:
        """
        C{too-large} calls the listing, retried on failure; its entries
        are then fetched. Without a listing the condition is reported.
        """
        listings: list[int] = []

        def listAll() -> "Deferred[MailData]":
            listings.append(1)
            if len(listings) == 1:
                return fail(ServiceError("HTTP 500"))
            return succeed(MailData((announce("B", 2), announce("A", 1))))

        inbox = self.makeInbox(listAll=listAll)
        inbox.announce(MailData(tooLarge=True))
        self.clock.advance(2)
        self.assertEqual(self.texts(), ["first", "second"])
        self.assertEqual(self.failures[0].stage, LIST)
        self.makeInbox().announce(MailData(tooLarge=True))
        self.assertEqual(self.failures[-1].stage, LIST)

    def test_announcedDuringFetch(self) -> None:
        """
        A message announced while a fetch is under way is fetched after it,
        in the next round.
        """
        held: Deferred[str] = Deferred()
        self.service.hold = held
        self.inbox.announce(MailData((announce("A", 10),)))
        self.inbox.announce(MailData((announce("B", 20),)))
        self.service.hold = None
        held.callback(mailText("first"))
        self.assertEqual(self.texts(), ["first", "second"])
        self.assertEqual(self.service.fetched, ["A", "B"])

    def test_pendingCap(self) -> None:
        """
        Announcements beyond C{maxPending} are left for another session.
        """
        self.service.hold = Deferred()
        inbox = self.makeInbox(maxPending=2)
        inbox.announce(MailData((announce("A", 1), announce("B", 2), announce("C", 3))))
        self.assertEqual(inbox.pendingIds, frozenset({"A", "B"}))
        inbox.stop()


class AcceptedUnlessRefusedTests(SynchronousTestCase):
    """
    L{acceptedUnlessRefused}: the outcome of a C{UUM} nobody answers.
    """

    def test_silenceIsAcceptance(self) -> None:
        """
        The grace period running out (L{RequestTimeout}) fires with the
        given result.
        """
        d: Deferred[Command] = Deferred()
        outcome = acceptedUnlessRefused(d, DeliveryResult.STORED_OFFLINE)
        d.errback(RequestTimeout("no reply"))
        self.assertEqual(self.successResultOf(outcome), DeliveryResult.STORED_OFFLINE)

    def test_errorsPassThrough(self) -> None:
        """
        A numeric error or a lost connection fails the outcome.
        """
        for error in (ServerError(217, "UUM"), ConnectionLost("gone")):
            d: Deferred[Command] = Deferred()
            outcome = acceptedUnlessRefused(d, DeliveryResult.SENT_TO_NETWORK)
            d.errback(error)
            self.assertIs(self.failureResultOf(outcome).value, error)

    def test_anyReplyAccepted(self) -> None:
        """
        A server that does answer with something not an error is accepted.
        """
        d: Deferred[Command] = Deferred()
        outcome = acceptedUnlessRefused(d, DeliveryResult.STORED_OFFLINE)
        d.callback(Command("UUM", 1, ("OK",)))
        self.assertEqual(self.successResultOf(outcome), DeliveryResult.STORED_OFFLINE)


class AnnouncePayloadTests(SynchronousTestCase):
    """
    L{OfflineInbox.announcePayload}: the NS message as it arrives.
    """

    def test_bogusReportedNothingFetched(self) -> None:
        """
        A mail-data message with bogus XML is reported; nothing is fetched
        or deleted, and the inbox still works afterwards.
        """
        service = FakeService({"A": mailText("first")})
        delivered: list[OfflineMessage] = []
        failures: list[OfflineFailure] = []
        inbox = OfflineInbox(service.fetch, service.delete, delivered.append, Clock(), report=failures.append)
        head = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification\r\n\r\n"
        inbox.announcePayload(head + b"Mail-Data: <MD><M><I>A</oops>\r\n")
        self.assertEqual([f.stage for f in failures], [ANNOUNCE])
        self.assertEqual((service.fetched, service.deleteCalls), ([], []))
        inbox.announcePayload(head + b"Mail-Data: <MD><M><E>alice@example.com</E><I>A</I></M></MD>\r\n")
        self.assertEqual([m.text for m in delivered], ["first"])
