# -*- test-case-name: test.test_offline -*-
"""
The offline inbox of one session: announced messages in, each handed to
the application once, in the order it was sent, and only then deleted.

Guarantees a caller can rely on (reference Q.1.8, docs/offline.md):

  - B{exactly once per session}: a message id is delivered at most once,
    however often it is announced (the initial mail data, a later OIM
    notification, a C{GetMetadata} list);
  - B{nothing lost}: a message is deleted only after the delivery callback
    was called with it; one that could not be fetched or decoded stays on
    the server (it is announced again at the next sign-in);
  - B{send order}: each round fetches every message announced so far,
    oldest announcement first, then delivers the fetched ones sorted by
    L{msnp.oim.inSendOrder}; a fetch that fails blocks the messages after it
    while it is retried, so a retry cannot reorder them;
  - B{no crash, no hang}: failures are retried with exponential backoff on
    the injected clock, reported to a callback, and never raised into the
    caller; L{OfflineInbox.stop} cancels whatever is under way.

The inbox knows nothing of SOAP or the NS: it is given the fetch and delete
operations (the RSI client's C{getMessage} and C{deleteMessages}), so it is
tested with plain functions on a L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.errors import RequestTimeout
from msnp.http import BodyTooLarge
from msnp.oim import (
    MailData,
    MalformedMailData,
    MalformedOfflineMessage,
    OfflineMessage,
    OfflineMessageAnnouncement,
    announcementOrder,
    decodeOfflineMessage,
    parseMailDataPayload,
    inSendOrder,
)
from msnp.soap.rsi import MAX_DELETE_IDS, RSIFault, RSIService
from msnp.uum import DeliveryResult
from msnp.wire import Command

log = Logger()

#: Fetches the RFC 822 text of one message by id.
FetchMessage = Callable[[str], "Deferred[str]"]
#: Deletes messages by id (all or none).
DeleteMessages = Callable[[list[str]], "Deferred[None]"]
#: Lists every waiting message (RSI C{GetMetadata}).
ListMessages = Callable[[], "Deferred[MailData]"]

#: The stages an L{OfflineFailure} can name.
ANNOUNCE, LIST, FETCH, DECODE, DELETE = "announce", "list", "fetch", "decode", "delete"


@dataclass(frozen=True)
class OfflineFailure:
    """
    One failed step, as reported to the session.

    @ivar messageId: the message concerned (L{None} for a failed listing).
    @ivar stage: L{ANNOUNCE} (an unreadable mail-data message), L{LIST},
        L{FETCH}, L{DECODE} or L{DELETE}.
    @ivar error: what went wrong.
    @ivar attempt: which attempt failed (1 for the first).
    @ivar willRetry: whether the inbox will try again; when false the
        message is left on the server (fetch, decode) or may be
        announced again at the next sign-in (delete).
    """

    messageId: Optional[str]
    stage: str
    error: BaseException
    attempt: int
    willRetry: bool


def isPermanentError(error: BaseException) -> bool:
    """
    Whether repeating the call cannot help: the service refused the request
    itself (a C{soap:Client} fault: unknown or already deleted id, a ticket
    it does not know), the answer exceeded the size cap, or the message
    cannot be decoded. Timeouts, transport errors, HTTP errors, server
    faults and unreadable answers may pass, so they are retried.
    """
    if isinstance(error, RSIFault):
        return error.isClientFault
    return isinstance(error, (BodyTooLarge, MalformedOfflineMessage, MalformedMailData, ValueError))


class OfflineInbox:
    """
    Fetches, delivers and deletes the offline messages of one session.

    @ivar delivered: the ids delivered in this session.
    """

    def __init__(
        self,
        fetch: FetchMessage,
        delete: DeleteMessages,
        deliver: Callable[[OfflineMessage], None],
        clock: IReactorTime,
        report: Optional[Callable[[OfflineFailure], None]] = None,
        listAll: Optional[ListMessages] = None,
        maxAttempts: int = 4,
        initialDelay: float = 2.0,
        maxDelay: float = 60.0,
        maxPending: int = 1000,
        isPermanent: Callable[[BaseException], bool] = isPermanentError,
    ) -> None:
        """
        @param fetch: fetches one message's text (C{RSIService.getMessage}).
        @param delete: deletes messages (C{RSIService.deleteMessages}).
        @param deliver: called once with each message, in send order.
            Whatever it raises is logged; the message still counts as
            delivered (the application had it) and is deleted.
        @param clock: where the retry delays run.
        @param report: told of every failed step (its exceptions are logged).
        @param listAll: lists the waiting messages after C{too-large}
            (C{RSIService.getMetadata}); without it C{too-large} is reported.
        @param maxAttempts: attempts per step before giving up (at least 1).
        @param initialDelay: seconds before the first retry; doubled after
            each further failure, up to C{maxDelay}.
        @param maxPending: announcements beyond this many waiting ones are
            ignored (they stay on the server for the next session).
        """
        if maxAttempts < 1:
            raise ValueError(f"maxAttempts must be at least 1, not {maxAttempts!r}")
        self._fetch = fetch
        self._delete = delete
        self._deliver = deliver
        self._report = report
        self._listAll = listAll
        self.clock = clock
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxPending = maxPending
        self._isPermanent = isPermanent
        self.delivered: set[str] = set()
        self._pending: dict[str, OfflineMessageAnnouncement] = {}
        self._inFlight: set[str] = set()
        self._running: Optional[Deferred[None]] = None
        self._listing: Optional[Deferred[None]] = None
        self._deletions: list[Deferred[None]] = []
        self._outstanding: set[Deferred[Any]] = set()
        self._idleWaiters: list[Deferred[None]] = []
        self._stopped = False

    def __repr__(self) -> str:
        return (
            f"<OfflineInbox {len(self._pending)} pending, {len(self._inFlight)} in flight, "
            f"{len(self.delivered)} delivered>"
        )

    @classmethod
    def overRSI(
        cls,
        rsi: RSIService,
        deliver: Callable[[OfflineMessage], None],
        clock: IReactorTime,
        report: Optional[Callable[[OfflineFailure], None]] = None,
    ) -> "OfflineInbox":
        """
        The inbox of a session, fetching, listing and deleting through
        C{rsi}.
        """
        return cls(
            rsi.getMessage, rsi.deleteMessages, deliver, clock, report=report, listAll=rsi.getMetadata
        )

    # -- input -----------------------------------------------------------------------

    def announcePayload(self, payload: bytes) -> None:
        """
        Take the payload of an NS C{MSG Hotmail Hotmail} of type
        L{msnp.oim.INITIAL_MAIL_DATA_TYPE} or L{msnp.oim.OIM_NOTIFICATION_TYPE}.
        An unreadable one is reported (stage L{ANNOUNCE}) and ignored.
        """
        try:
            mailData = parseMailDataPayload(payload)
        except MalformedMailData as e:
            self._tell(None, ANNOUNCE, e, 1, False)
            return
        self.announce(mailData)

    def announce(self, mailData: MailData) -> None:
        """
        Take the messages of a C{Mail-Data} value (initial or live) and
        start fetching those not yet seen. C{too-large} starts a listing.
        Never raises.
        """
        if self._stopped:
            return
        if mailData.tooLarge:
            self._startListing()
            return
        added = 0
        for announcement in mailData.messages:
            messageId = announcement.messageId
            if messageId in self.delivered or messageId in self._inFlight or messageId in self._pending:
                continue
            if len(self._pending) + len(self._inFlight) >= self.maxPending:
                log.info("Offline inbox full; {id} left for a later session", id=messageId)
                continue
            self._pending[messageId] = announcement
            added += 1
        if added:
            self._startRun()

    def stop(self) -> None:
        """
        End of the session: cancel the waits and calls under way and accept
        nothing more. Messages not yet delivered stay on the server.
        """
        self._stopped = True
        self._pending.clear()
        for d in [*self._outstanding, self._listing, self._running, *self._deletions]:
            if d is not None and not d.called:
                d.cancel()
        self._fireIdle()

    def whenIdle(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once nothing is pending, fetching, listing or
        deleting (at once if that is so now, or after L{stop}).
        """
        if self._isIdle():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idleWaiters.append(waiter)
        return waiter

    @property
    def pendingIds(self) -> frozenset[str]:
        """
        The ids announced and not yet delivered or given up.
        """
        return frozenset(self._pending) | frozenset(self._inFlight)

    # -- the work --------------------------------------------------------------------

    def _isIdle(self) -> bool:
        return self._stopped or (
            not self._pending and self._running is None and self._listing is None
            and not self._deletions
        )

    def _fireIdle(self) -> None:
        if not self._isIdle():
            return
        waiters, self._idleWaiters = self._idleWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _startRun(self) -> None:
        if self._running is not None or self._stopped:
            return
        self._running = ensureDeferred(self._run())

        def finished(result: object) -> None:
            self._running = None
            if isinstance(result, Failure) and not result.check(CancelledError):
                log.failure("Offline inbox stopped unexpectedly", result)
            self._fireIdle()

        self._running.addBoth(finished)

    def _startListing(self) -> None:
        if self._listing is not None:
            return
        if self._listAll is None:
            self._tell(None, LIST, ValueError("Mail-Data too-large and no way to list messages"), 1, False)
            return
        self._listing = ensureDeferred(self._list())

        def finished(_: object) -> None:
            self._listing = None
            self._fireIdle()

        self._listing.addBoth(finished)

    async def _list(self) -> None:
        assert self._listAll is not None
        listAll = self._listAll
        mailData = await self._attempt(None, LIST, lambda: maybeDeferred(listAll))
        if isinstance(mailData, MailData) and not mailData.tooLarge:
            self.announce(mailData)

    async def _run(self) -> None:
        while self._pending and not self._stopped:
            batch = sorted(self._pending.values(), key=announcementOrder)
            self._pending.clear()
            self._inFlight.update(a.messageId for a in batch)
            fetched: list[OfflineMessage] = []
            for announcement in batch:
                if self._stopped:
                    return
                message = await self._fetchOne(announcement)
                if message is not None:
                    fetched.append(message)
                else:
                    self._inFlight.discard(announcement.messageId)
            for message in inSendOrder(fetched):
                if self._stopped:
                    return
                self._handOver(message)
            if fetched:
                self._startDeletion([m.messageId for m in fetched])

    async def _fetchOne(self, announcement: OfflineMessageAnnouncement) -> Optional[OfflineMessage]:
        messageId = announcement.messageId
        fetch = self._fetch
        text = await self._attempt(messageId, FETCH, lambda: maybeDeferred(fetch, messageId))
        if not isinstance(text, str):
            return None
        try:
            return decodeOfflineMessage(text, messageId, announcement)
        except MalformedOfflineMessage as e:
            self._tell(messageId, DECODE, e, 1, False)
            return None

    def _handOver(self, message: OfflineMessage) -> None:
        self._inFlight.discard(message.messageId)
        self.delivered.add(message.messageId)
        try:
            self._deliver(message)
        except Exception:
            log.failure("Offline message delivery callback failed for {id}", id=message.messageId)

    def _startDeletion(self, messageIds: list[str]) -> None:
        d = ensureDeferred(self._deleteAll(messageIds))
        self._deletions.append(d)

        def finished(_: object) -> None:
            if d in self._deletions:
                self._deletions.remove(d)
            self._fireIdle()

        d.addBoth(finished)

    async def _deleteAll(self, messageIds: list[str]) -> None:
        for start in range(0, len(messageIds), MAX_DELETE_IDS):
            await self._deleteSome(messageIds[start : start + MAX_DELETE_IDS])

    async def _deleteSome(self, messageIds: list[str]) -> None:
        delete = self._delete
        label = messageIds[0] if len(messageIds) == 1 else None
        outcome = await self._attempt(
            label, DELETE, lambda: maybeDeferred(delete, list(messageIds)), quietPermanent=len(messageIds) > 1
        )
        if outcome is _REFUSED and len(messageIds) > 1:
            # All-or-nothing: one id already deleted by another place fails
            # the whole call, so delete the others one by one.
            for messageId in messageIds:
                await self._deleteSome([messageId])

    async def _attempt(
        self, messageId: Optional[str], stage: str, call: Callable[[], "Deferred[object]"],
        quietPermanent: bool = False,
    ) -> object:
        """
        Run C{call} until it succeeds, fails permanently, or has been tried
        L{maxAttempts} times; its result, or L{_REFUSED} (permanent), or
        L{None} (gave up, or stopped).
        """
        attempt = 0
        while not self._stopped:
            attempt += 1
            try:
                return await self._track(call())
            except CancelledError:
                if self._stopped:
                    return None
                error: BaseException = CancelledError()
            except Exception as e:
                error = e
            permanent = self._isPermanent(error)
            willRetry = not permanent and attempt < self.maxAttempts
            wait: Optional[Deferred[None]] = None
            if willRetry:
                # Scheduled before the report, so that whoever is told
                # "will retry" finds the retry already on the clock.
                delay = min(self.initialDelay * 2 ** (attempt - 1), self.maxDelay)
                wait = self._track(deferLater(self.clock, delay, lambda: None))
            if not (permanent and quietPermanent):
                self._tell(messageId, stage, error, attempt, willRetry)
            if permanent:
                return _REFUSED
            if wait is None:
                return None
            try:
                await wait
            except CancelledError:
                return None
        return None

    def _track(self, d: "Deferred[Any]") -> "Deferred[Any]":
        """
        Keep C{d} among the calls and waits L{stop} cancels, until it fires.
        """
        self._outstanding.add(d)

        def forget(result: object) -> object:
            self._outstanding.discard(d)
            return result

        return d.addBoth(forget)

    def _tell(self, messageId: Optional[str], stage: str, error: BaseException, attempt: int, willRetry: bool) -> None:
        log.info(
            "Offline message {id}: {stage} failed (attempt {attempt}{retry}): {error}",
            id=messageId or "-", stage=stage, attempt=attempt,
            retry=", will retry" if willRetry else "", error=str(error) or type(error).__name__,
        )
        if self._report is None:
            return
        try:
            self._report(OfflineFailure(messageId, stage, error, attempt, willRetry))
        except Exception:
            log.failure("Offline failure report callback failed")


#: How long a C{UUM} may still be refused by a numeric error before it
#: counts as accepted (servers send no positive reply, docs/offline.md).
UUM_GRACE_PERIOD = 5.0


def acceptedUnlessRefused(sent: "Deferred[Command]", result: DeliveryResult) -> "Deferred[DeliveryResult]":
    """
    Turn the Deferred of a C{UUM} sent with C{sendCommand(..., timeout=
    UUM_GRACE_PERIOD)} into its outcome: no reply within the grace period
    (L{RequestTimeout}) means accepted and fires with C{result}; any reply
    that is not an error also fires with C{result}; a numeric error
    (L{msnp.errors.ServerError}) or a lost connection fails as it came.
    Since the request carries its own timeout, the returned Deferred
    always fires.
    """

    def timedOut(failure: Failure) -> DeliveryResult:
        failure.trap(RequestTimeout)
        return result

    return sent.addCallbacks(lambda _: result, timedOut)


class _Refused:
    def __repr__(self) -> str:
        return "<refused>"


#: What L{OfflineInbox._attempt} returns for a permanent failure.
_REFUSED = _Refused()
