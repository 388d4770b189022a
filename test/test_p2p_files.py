"""
Tests for L{msnp.p2p.files} and L{msnp.filetransfer}: two sans-IO
L{msnp.p2p.session.P2PManager}s with file sessions, wired in memory
through the fake switchboard of L{test.test_p2p_session} on a L{Clock}; no
sockets. Hostile peers are played by building chunks by hand.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.filetransfer import HIGH_WATER, FileTransfers, ProducerSource, openSink, openSource
from msnp.p2p import slp
from msnp.p2p.errors import TransferCancelled, TransferDeclined, TransferError, TransferInterrupted, TransferTimeout
from msnp.p2p.filecontext import FileContext
from msnp.p2p.files import Direction, FileOffer, Transfer, TransferState
from msnp.p2p.transport import FLAG_FILE_DATA, FLAG_TLP_ERROR, Header, Kind, buildFrame, classify, parseFrame, splitMessage

from test.support import tempDirectory
from test.p2psupport import ALICE, BOB, LogCatcher, Pair


class Recorder:
    """
    A session observer keeping the file events.
    """

    def __init__(self) -> None:
        self.offers: list[FileOffer] = []
        self.progress: list[tuple[float, int]] = []
        self.ended: list[Transfer] = []
        self.clock: Optional[Clock] = None

    def fileOfferReceived(self, session: Any, conversation: Any, offer: FileOffer) -> None:
        self.offers.append(offer)

    def transferProgress(self, session: Any, transfer: Transfer) -> None:
        self.progress.append((self.clock.seconds() if self.clock else 0.0, transfer.bytesDone))

    def transferEnded(self, session: Any, transfer: Transfer) -> None:
        self.ended.append(transfer)


class FilePair(Pair):
    """
    alice and bob, each with file transfers on their manager.
    """

    def __init__(self, **options: Any) -> None:
        Pair.__init__(self)
        self.aliceEvents, self.bobEvents = Recorder(), Recorder()
        self.aliceEvents.clock = self.bobEvents.clock = self.clock
        self.aliceFiles = FileTransfers(self.alice, self.aliceEvents, "alice-session", self.clock, **options)
        self.bobFiles = FileTransfers(self.bob, self.bobEvents, "bob-session", self.clock, **options)

    def send(self, data: bytes, name: str = "notes.txt") -> Transfer:
        source, size = openSource(io.BytesIO(data))
        return self.aliceFiles.sessions.offer(BOB, name, size, source)

    def offer(self) -> FileOffer:
        self.run()
        return self.bobEvents.offers[-1]


class Sink(io.BytesIO):
    pass


class TransferTests(SynchronousTestCase):
    def test_sendAndReceive(self) -> None:
        """
        A 5000-byte file: INVITE with EUF-GUID, AppID 2 and the context;
        once accepted, data chunks with flags C{0x01000030} and footer 2;
        bob ACKs the data and sends BYE; both transfers end with all bytes
        and nothing is left on the clock.
        """
        pair = FilePair()
        data = os.urandom(5000)
        transfer = pair.send(data)
        offer = pair.offer()
        self.assertEqual((offer.sender, offer.name, offer.size), (ALICE, "notes.txt", 5000))
        invite = slp.parseSLP(parseFrame(pair.aliceWire.sent[0]).chunk.payload)
        self.assertEqual((invite.field("EUF-GUID"), invite.field("AppID")), (slp.EUF_FILE, "2"))
        self.assertEqual(FileContext.fromBase64(invite.field("Context") or "").size, 5000)
        sink = Sink()
        d = offer.accept(sink)
        pair.run()
        self.assertIs(self.successResultOf(d), sink)
        self.assertEqual(sink.getvalue(), data)
        self.assertIsNone(self.successResultOf(transfer.whenDone()))
        chunks = [parseFrame(p).chunk for p in pair.aliceWire.sent]
        data_chunks = [c for c in chunks if c.header.flags == FLAG_FILE_DATA]
        self.assertEqual(len(data_chunks), 5)
        self.assertEqual({c.appId for c in data_chunks}, {2})
        self.assertEqual(len({c.header.identifier for c in data_chunks}), 1)
        self.assertEqual(pair.bobWire.kinds()[-2:], ["ack", "slp"])
        self.assertEqual((transfer.bytesDone, offer.transfer.bytesDone), (5000, 5000))
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        self.assertEqual(pair.aliceFiles.sessions.transfers() + pair.bobFiles.sessions.transfers(), [])

    def test_preview(self) -> None:
        """
        A preview travels with the offer (the INVITE is then split into
        several chunks); one above the cap, an empty file and an empty
        name are refused with L{ValueError} before anything is sent.
        """
        pair = FilePair()
        preview = b"\x89PNG" + os.urandom(3000)
        source, size = openSource(io.BytesIO(b"abc"))
        pair.aliceFiles.sessions.offer(BOB, "a.txt", size, source, preview)
        self.assertEqual(pair.offer().preview, preview)
        sessions = pair.aliceFiles.sessions
        self.assertRaises(ValueError, sessions.offer, BOB, "a.txt", 3, source, b"x" * (32 * 1024 + 1))
        self.assertRaises(ValueError, sessions.offer, BOB, "a.txt", 0, source)
        self.assertRaises(ValueError, sessions.offer, BOB, "", 3, source)

    def test_declineAndOfferTimeout(self) -> None:
        """
        A decline fails the sender with L{TransferDeclined} (603); an offer
        nobody answers is declined after C{offerTimeout} on the clock.
        """
        pair = FilePair(offerTimeout=30)
        first = pair.send(b"x" * 100)
        pair.offer().decline()
        pair.run()
        self.assertEqual(self.failureResultOf(first.whenDone(), TransferDeclined).value.code, 603)
        second = pair.send(b"y" * 100)
        pair.offer()
        pair.clock.advance(29)
        done = second.whenDone()
        self.assertNoResult(done)
        pair.clock.advance(1)
        pair.run()
        self.failureResultOf(done, TransferDeclined)
        self.assertEqual(pair.bobEvents.offers[-1].transfer.state, TransferState.FAILED)

    def test_cancelBySenderAndByReceiver(self) -> None:
        """
        The sender cancelling mid-file fails both sides with
        L{TransferCancelled} (C{byPeer} telling who); so does the receiver
        cancelling; the receiver's sink is aborted.
        """
        for who in ("alice", "bob"):
            pair = FilePair()
            transfer = pair.send(os.urandom(20_000))
            offer = pair.offer()
            d = offer.accept(Sink())
            pair.step(6)
            (transfer if who == "alice" else offer.transfer).cancel()
            pair.run()
            mine, theirs = (transfer, offer.transfer) if who == "alice" else (offer.transfer, transfer)
            self.assertFalse(self.failureResultOf(mine.whenDone(), TransferCancelled).value.byPeer)
            self.assertTrue(self.failureResultOf(theirs.whenDone(), TransferCancelled).value.byPeer)
            self.assertLess(offer.transfer.bytesDone, 20_000)
            self.failureResultOf(d, TransferCancelled)

    def test_peerGoneAndTimeout(self) -> None:
        """
        The switchboard closing fails both with L{TransferInterrupted};
        a peer silent longer than C{transferTimeout} fails with
        L{TransferTimeout}.
        """
        pair = FilePair()
        transfer = pair.send(os.urandom(20_000))
        offer = pair.offer()
        received = offer.accept(Sink())
        pair.step(4)
        pair.alice.peerGone(BOB)
        pair.bob.peerGone(ALICE)
        self.failureResultOf(transfer.whenDone(), TransferInterrupted)
        self.failureResultOf(received, TransferInterrupted)
        pair = FilePair(transferTimeout=10)
        transfer = pair.send(os.urandom(20_000))
        offer = pair.offer()
        received = offer.accept(Sink())
        pair.step(3)
        pair.queue.clear()  # the switchboard swallows everything from now on
        pair.clock.advance(10)
        self.failureResultOf(received, TransferTimeout)
        self.failureResultOf(transfer.whenDone(), TransferTimeout)

    def test_progressRateLimited(self) -> None:
        """
        C{transferProgress} comes at most once per C{progressInterval} of
        the session's clock, monotone, and once more at the end with the
        total; C{transferEnded} once.
        """
        pair = FilePair(progressInterval=0.25)
        data = os.urandom(60 * 1202)
        transfer = pair.send(data)
        offer = pair.offer()
        offer.accept(Sink())
        while pair.queue:
            pair.step(4)
            pair.clock.advance(0.05)
        self.successResultOf(transfer.whenDone())
        for events in (pair.aliceEvents, pair.bobEvents):
            times = [t for t, _ in events.progress]
            done = [n for _, n in events.progress]
            self.assertEqual(done, sorted(done))
            self.assertEqual(done[-1], len(data))
            self.assertTrue(all(b - a >= 0.25 - 1e-9 for a, b in zip(times, times[1:-1])), times)
            self.assertLess(len(done), 60)
            self.assertEqual(len(events.ended), 1)


class HostileTests(SynchronousTestCase):
    def inject(self, pair: FilePair, chunks: list[Any]) -> None:
        for chunk in chunks:
            pair.bob.payloadReceived(ALICE, buildFrame(BOB, chunk))

    def invite(self, pair: FilePair, context: str, sessionId: int = 987654321) -> None:
        invite = slp.buildInvite(BOB, ALICE, eufGuid=slp.EUF_FILE, sessionId=sessionId, appId=2, context=context)
        self.inject(pair, splitMessage(invite.encode(), sessionId=0, identifier=50, flags=0, ackId=5))
        pair.run()

    def answers(self, pair: FilePair) -> list[Optional[int]]:
        result = []
        for payload in pair.bobWire.sent:
            chunk = parseFrame(payload).chunk
            if classify(chunk.header, chunk.payload) is Kind.SLP:
                result.append(slp.parseSLP(chunk.payload).status)
        return result

    def test_shortContextOversizeAndBadBase64Declined(self) -> None:
        """
        A context shorter than 574 bytes, one that is not base64, and a
        size above the cap are each answered 603 with a logged reason and
        never reach the observer.
        """
        pair = FilePair(maxFileSize=10_000)
        logs = LogCatcher(self)
        self.invite(pair, FileContext("a.txt", 10).toBase64()[:300], 1001)
        self.invite(pair, "not base64 at all!", 1002)
        self.invite(pair, FileContext("a.txt", 10_001).toBase64(), 1003)
        self.assertEqual(self.answers(pair), [603, 603, 603])
        self.assertEqual(pair.bobEvents.offers, [])
        text = logs.text()
        self.assertIn("shorter than 574", text)
        self.assertIn("not base64", text)
        self.assertIn("the cap is 10000", text)

    def test_dataOutsideTheFile(self) -> None:
        """
        Data before the offer is accepted is dropped; data whose total
        differs from the offer, or that jumps past what was received,
        ends the transfer with L{TransferError} (BYE sent), the sink
        aborted; data of a session nobody opened is dropped and logged.
        """
        pair = FilePair()
        logs = LogCatcher(self)
        sid = 4242
        self.invite(pair, FileContext("a.txt", 3000).toBase64(), sid)
        offer = pair.bobEvents.offers[-1]
        early = splitMessage(b"e" * 3000, sessionId=sid, identifier=60, flags=FLAG_FILE_DATA, ackId=6, appId=2)
        self.inject(pair, early[:1])
        self.assertEqual(offer.transfer.bytesDone, 0)
        self.assertIn("not accepted", logs.text())
        sink = Sink()
        d = offer.accept(sink)
        chunks = splitMessage(b"d" * 3000, sessionId=sid, identifier=61, flags=FLAG_FILE_DATA, ackId=7, appId=2)
        self.inject(pair, [chunks[0], chunks[2]])  # a gap
        self.assertIn("after 1202 bytes", str(self.failureResultOf(d, TransferError).value))
        pair.run()
        self.assertEqual(self.answers(pair)[-1], None)  # its BYE (a request: no status)
        self.invite(pair, FileContext("b.txt", 3000).toBase64(), sid + 1)
        other = pair.bobEvents.offers[-1]
        d = other.accept(Sink())
        self.inject(pair, splitMessage(b"d" * 4000, sessionId=sid + 1, identifier=62, flags=FLAG_FILE_DATA,
                                       ackId=8, appId=2)[:1])
        self.assertIn("4000 bytes for a 3000-byte file", str(self.failureResultOf(d, TransferError).value))
        self.inject(pair, [splitMessage(b"z" * 10, sessionId=777777, identifier=63, flags=FLAG_FILE_DATA, ackId=9)[0]])
        self.assertIn("unknown session 777777", logs.text())

    def test_abortFlag(self) -> None:
        """
        An abort message (f6 C{0x80}) for the session cancels it.
        """
        pair = FilePair()
        sid = 5151
        self.invite(pair, FileContext("a.txt", 3000).toBase64(), sid)
        d = pair.bobEvents.offers[-1].accept(Sink())
        self.inject(pair, splitMessage(b"", sessionId=sid, identifier=70, flags=FLAG_TLP_ERROR, ackId=1))
        self.failureResultOf(d, TransferCancelled)

    def test_directorySinkNeverEscapes(self) -> None:
        """
        L{openSink} into a directory writes under the sanitised name
        inside it, a free variant when the name exists, and removes its
        file on abort.
        """
        pair = FilePair()
        root = tempDirectory(self)
        inbox = os.path.join(root, "inbox")
        os.mkdir(inbox)
        self.invite(pair, FileContext("../../../evil.sh", 3).toBase64(), 9001)
        offer = pair.bobEvents.offers[-1]
        self.assertEqual(offer.name, "evil.sh")
        first = openSink(inbox, offer)
        second = openSink(inbox, offer)
        self.assertEqual([os.path.basename(s.path) for s in (first, second)], ["evil.sh", "evil (1).sh"])  # type: ignore[attr-defined]
        second.abort()
        first.write(b"abc")
        self.assertEqual(first.finish(), os.path.join(os.path.realpath(inbox), "evil.sh"))
        self.assertEqual(sorted(os.listdir(root)), ["inbox"])
        self.assertEqual(sorted(os.listdir(inbox)), ["evil.sh"])


class SourceTests(SynchronousTestCase):
    def test_openSource(self) -> None:
        """
        Paths and seekable file objects give their size; a producer gives
        its C{length}; one of unknown length, or a non-file, is refused.
        """
        path = os.path.join(tempDirectory(self), "f")
        with open(path, "wb") as f:
            f.write(b"12345")
        source, size = openSource(path)
        self.assertEqual((size, source.read(10)), (5, b"12345"))
        source.close()
        buffer = io.BytesIO(b"abcdef")
        buffer.read(2)
        self.assertEqual(openSource(buffer)[1], 4)
        self.assertRaises(ValueError, openSource, object())

        class Unknown:
            length = object()

            def startProducing(self, consumer: Any) -> Any:
                return succeed(None)

        self.assertRaises(ValueError, openSource, Unknown())
        self.assertEqual(openSource(Unknown(), size=9)[1], 9)

    def test_producerBackpressure(self) -> None:
        """
        A push producer is paused once more than L{HIGH_WATER} bytes wait,
        resumed when the transfer has read the buffer down, and stopped if
        the transfer ends first.
        """
        calls: list[str] = []

        class Producer:
            length = 10 * HIGH_WATER

            def startProducing(self, consumer: Any) -> "Deferred[None]":
                self.consumer = consumer
                self.done: Deferred[None] = Deferred()
                return self.done

            def pauseProducing(self) -> None:
                calls.append("pause")

            def resumeProducing(self) -> None:
                calls.append("resume")

            def stopProducing(self) -> None:
                calls.append("stop")

        producer = Producer()
        source = ProducerSource(producer)
        wakes: list[int] = []
        source.start(lambda: wakes.append(1))
        self.assertIsNone(source.read(1202))
        producer.consumer.write(b"x" * (HIGH_WATER + 1))
        self.assertEqual(calls, ["pause"])
        while source.read(1202):
            pass
        self.assertEqual(calls, ["pause", "resume"])
        source.close()
        self.assertEqual(calls, ["pause", "resume", "stop"])
        self.assertTrue(wakes)


class ConsumerSinkHashTests(SynchronousTestCase):
    def test_bigFileThroughMemoryWire(self) -> None:
        """
        2 MB through the in-memory wire into a consumer: same hash, and
        the sender never queued more than one data chunk at a time.
        """
        pair = FilePair()
        data = os.urandom(2 * 1024 * 1024)
        transfer = pair.send(data)
        offer = pair.offer()

        class Hasher:
            def __init__(self) -> None:
                self.h = hashlib.sha256()

            def write(self, b: bytes) -> None:
                self.h.update(b)

        hasher = Hasher()
        d = offer.accept(hasher)
        biggest = 0
        while pair.queue:
            biggest = max(biggest, len(pair.queue))
            pair.step()
        self.assertIs(self.successResultOf(d), hasher)
        self.assertEqual(hasher.h.digest(), hashlib.sha256(data).digest())
        self.successResultOf(transfer.whenDone())
        self.assertLessEqual(biggest, 3)
        self.assertEqual(transfer.direction, Direction.SEND)
