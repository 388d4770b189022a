"""
File transfer end to end: real L{msnp.client.MSNClient}s on a
L{msnp.server.network.LocalNetwork} over loopback sockets; the INVITE,
answers and data travel as P2P v1 switchboard messages relayed by the
local switchboard server, nothing stored there.

Tests wait for observer events and socket outcomes, never for wall-clock
time; each wait is bounded.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
import tracemalloc
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from msnp.capabilities import Capabilities
from msnp.p2p import slp
from msnp.p2p.errors import TransferCancelled, TransferDeclined, TransferInterrupted
from msnp.p2p.filecontext import FileContext
from msnp.p2p.transport import FLAG_FILE_DATA, buildFrame, splitMessage

from test.support import EventRecorder, signIn, startLocalNetwork, tempDirectory, waitUntil

PASSWORD = "secret-pw"
ALICE, BOB = "alice@example.com", "bob@example.com"
MB = 1024 * 1024


class FileEvents(EventRecorder):
    def fileOfferReceived(self, session: Any, conversation: Any, offer: Any) -> None:
        self._record("fileOfferReceived", conversation, offer)

    def transferProgress(self, session: Any, transfer: Any) -> None:
        self._record("transferProgress", transfer, transfer.bytesDone)

    def transferEnded(self, session: Any, transfer: Any) -> None:
        self._record("transferEnded", transfer, transfer.error)

    def messageReceived(self, session: Any, conversation: Any, message: Any) -> None:
        self._record("messageReceived", conversation, message)

    def offers(self, count: int = 1) -> "Deferred[None]":
        return self.waitForEvent("fileOfferReceived", count)

    def texts(self) -> list[str]:
        return [m.text for _, m in self.named("messageReceived")]


class RandomFile(io.RawIOBase):
    """
    A readable binary file of C{size} pseudo-random bytes generated on
    demand, so the sender's side holds no copy of it.
    """

    def __init__(self, size: int, seed: int = 1) -> None:
        self.size = size
        self.position = 0
        self._rng = random.Random(seed)
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, count: int = -1) -> bytes:
        count = self.size - self.position if count < 0 else min(count, self.size - self.position)
        data = self._rng.randbytes(count)
        self.position += count
        self.digest.update(data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) not in ((0, os.SEEK_END), (self.position, 0)):
            raise OSError("not seekable")
        return self.size if whence == os.SEEK_END else self.position


class HashingConsumer:
    """
    An C{IConsumer} that keeps only a hash and a count of what it gets.
    """

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.count += len(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class MeasuringConsumer(HashingConsumer):
    """
    A L{HashingConsumer} that traces the heap between the C{start}th and
    the C{stop}th byte and keeps how far its peak rose above the level at
    C{start} (C{growth}).
    """

    def __init__(self, start: int, stop: int) -> None:
        HashingConsumer.__init__(self)
        self.start, self.stop = start, stop
        self.base = 0
        self.growth: Any = None

    def write(self, data: bytes) -> None:
        HashingConsumer.write(self, data)
        if self.count >= self.start and not tracemalloc.is_tracing() and self.growth is None:
            tracemalloc.start()
            self.base, _ = tracemalloc.get_traced_memory()
        elif self.count >= self.stop and tracemalloc.is_tracing():
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.growth = peak - self.base


class FileTransferTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.network, self.endpoints = await startLocalNetwork(
            self,
            [(e, PASSWORD, e.split("@")[0].capitalize()) for e in (ALICE, BOB)],
            mutualContacts=[(ALICE, BOB)],
            reactor=reactor,
        )
        self.alice, self.aliceEvents = await self.signIn(ALICE)
        self.bob, self.bobEvents = await self.signIn(BOB)
        self.conversation = await self.alice.openConversation(BOB)
        self.directory = tempDirectory(self)

    async def signIn(self, email: str, **clientArgs: Any) -> tuple[Any, FileEvents]:
        events = FileEvents(email)
        session = await signIn(self, email, PASSWORD, self.endpoints, events, **clientArgs)
        return session, events

    def sourceFile(self, size: int, name: str = "notes.txt", seed: int = 1) -> tuple[str, bytes]:
        data = random.Random(seed).randbytes(size)
        path = os.path.join(tempDirectory(self), name)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    async def offered(self, count: int = 1) -> Any:
        await self.bobEvents.offers(count)
        return self.bobEvents.named("fileOfferReceived")[-1][1]

    async def textStillWorks(self, text: str) -> None:
        await self.conversation.sendText(text)
        await self.bobEvents.waitFor(lambda: text in self.bobEvents.texts(), f"text {text!r}")

    def filesIn(self, directory: str) -> list[str]:
        return sorted(os.listdir(directory))

    async def test_smallFileIntoDirectory(self) -> None:
        """
        A 3000-byte file arrives whole under its name, the offer carries
        sender, name and size, progress reaches the total on both sides,
        and both advertise the file-transfer bit (ext CONV_WINDOW_FT).
        """
        path, data = self.sourceFile(3000)
        transfer = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        self.assertEqual((offer.sender, offer.name, offer.size, offer.preview), (ALICE, "notes.txt", 3000, None))
        self.assertEqual(self.bobEvents.named("fileOfferReceived")[0][0].contacts, {ALICE})
        written = await offer.accept(self.directory)
        await transfer.whenDone()
        self.assertEqual(written, os.path.join(os.path.realpath(self.directory), "notes.txt"))
        with open(written, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual((transfer.bytesDone, transfer.total, offer.transfer.bytesDone), (3000, 3000, 3000))
        await self.aliceEvents.waitForEvent("transferEnded")
        self.assertEqual(self.aliceEvents.named("transferProgress")[-1][1], 3000)
        caps = Capabilities.fromString(self.bob.contacts.get(ALICE).capabilities)
        self.assertIn("CONV_WINDOW_FT", caps.names())

    async def test_tenMegabytes(self) -> None:
        """
        10 MB from alice to bob through the local network: the bytes
        hash alike, progress on both sides is monotone and reaches the
        total, and while 1 MB passes (from 3 MB to 4 MB, measured with
        C{tracemalloc}, which slows Python several times, hence not over
        the whole file) the heap's peak grows by far less than that: both
        ends stream, nothing holds the file.
        """
        size = 10 * MB
        source = RandomFile(size, seed=3)
        sink = MeasuringConsumer(start=3 * MB, stop=4 * MB)
        self.addCleanup(lambda: tracemalloc.stop() if tracemalloc.is_tracing() else None)
        started = time.monotonic()
        transfer = self.conversation.sendFile("big.bin", source)
        offer = await self.offered()
        self.assertEqual(offer.size, size)
        result = await offer.accept(sink)
        await transfer.whenDone()
        elapsed = time.monotonic() - started
        self.assertIs(result, sink)
        self.assertEqual(sink.count, size)
        self.assertEqual(sink.digest.hexdigest(), source.digest.hexdigest())
        self.assertIsNotNone(sink.growth)
        self.assertLess(sink.growth, 512 * 1024, "the transfer held on to what it moved")
        for events in (self.aliceEvents, self.bobEvents):
            await events.waitForEvent("transferEnded")
            progress = [done for _, done in events.named("transferProgress")]
            self.assertEqual(progress, sorted(progress))
            self.assertEqual(progress[-1], size)
            self.assertLess(len(progress), 4 * elapsed + 4, "progress events are not rate-limited")
        print(f"\n10 MB transfer: {elapsed:.2f} s; heap peak growth over 1 MB: {sink.growth / 1024:.0f} KiB")

    async def test_declined(self) -> None:
        """
        A declined offer fails the sender's transfer with
        L{TransferDeclined}; no file is written; text still goes through.
        """
        path, _ = self.sourceFile(5000)
        transfer = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        offer.decline()
        error = await self.assertFailure(transfer.whenDone(), TransferDeclined)
        self.assertEqual(error.code, 603)
        self.assertEqual(self.filesIn(self.directory), [])
        await self.textStillWorks("after the decline")

    async def test_unansweredOfferDeclinedAfterTimeout(self) -> None:
        """
        An offer nobody answers is declined after the session's offer
        timeout (here shortened): the sender hears L{TransferDeclined}.
        """
        self.bob.files.sessions.offerTimeout = 0.2
        path, _ = self.sourceFile(5000)
        transfer = self.conversation.sendFile("notes.txt", path)
        await self.assertFailure(transfer.whenDone(), TransferDeclined)
        offer = self.bobEvents.named("fileOfferReceived")[0][1]
        self.assertFalse(offer.pending)

    async def test_cancelHalfWay(self) -> None:
        """
        alice cancels half-way through a 1 MB file: her transfer fails
        with L{TransferCancelled} (by her), bob's with L{TransferCancelled}
        (by the peer), the partial file is removed, text still goes
        through, and the next file arrives whole.
        """
        path, data = self.sourceFile(MB)
        transfer = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        received = offer.accept(self.directory)
        await waitUntil(lambda: offer.transfer.bytesDone >= MB // 2, timeout=30)
        transfer.cancel()
        mine = await self.assertFailure(transfer.whenDone(), TransferCancelled)
        self.assertFalse(mine.byPeer)
        theirs = await self.assertFailure(received, TransferCancelled)
        self.assertTrue(theirs.byPeer)
        self.assertEqual(self.filesIn(self.directory), [])
        await self.textStillWorks("after the cancel")
        second = self.conversation.sendFile("again.txt", path)
        offer = await self.offered(2)
        written = await offer.accept(self.directory)
        await second.whenDone()
        with open(written, "rb") as f:
            self.assertEqual(f.read(), data)

    async def test_textOvertakesFile(self) -> None:
        """
        A text sent while a 2 MB file is on its way arrives before the file
        is complete: it is not queued behind the file.
        """
        path, _ = self.sourceFile(2 * MB)
        transfer = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        received = offer.accept(self.directory)
        await waitUntil(lambda: offer.transfer.bytesDone > 100_000, timeout=30)
        await self.textStillWorks("while the file goes")
        self.assertLess(offer.transfer.bytesDone, 2 * MB)
        await received
        await transfer.whenDone()

    async def test_switchboardKilledMidFile(self) -> None:
        """
        bob's switchboard is cut in the middle of a 1 MB file: both sides
        fail with L{TransferInterrupted}, the partial file is removed, and
        the next transfer (on a new switchboard) works.
        """
        path, data = self.sourceFile(MB)
        transfer = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        received = offer.accept(self.directory)
        await waitUntil(lambda: offer.transfer.bytesDone >= MB // 3, timeout=30)
        (conversation,) = [c for c in self.bob.conversations if c.contacts == {ALICE}]
        conversation._switchboard.transport.abortConnection()
        await self.assertFailure(received, TransferInterrupted)
        await self.assertFailure(transfer.whenDone(), TransferInterrupted)
        self.assertEqual(self.filesIn(self.directory), [])
        second = self.conversation.sendFile("notes.txt", path)
        offer = await self.offered(2)
        written = await offer.accept(self.directory)
        await second.whenDone()
        with open(written, "rb") as f:
            self.assertEqual(f.read(), data)

    async def test_existingFileNotOverwritten(self) -> None:
        """
        A file whose name exists in the directory is saved as
        C{name (1).ext}; the existing file is untouched.
        """
        existing = os.path.join(self.directory, "notes.txt")
        with open(existing, "wb") as f:
            f.write(b"mine")
        path, data = self.sourceFile(2000)
        self.conversation.sendFile("notes.txt", path)
        offer = await self.offered()
        written = await offer.accept(self.directory)
        self.assertEqual(os.path.basename(written), "notes (1).txt")
        with open(existing, "rb") as f:
            self.assertEqual(f.read(), b"mine")

    # -- hostile offers, sent by hand as alice ----------------------------------------

    def hostileInvite(self, context: str, sessionId: int = 987654321) -> "Deferred[None]":
        manager = self.alice.pictures.manager
        invite = slp.buildInvite(BOB, ALICE, eufGuid=slp.EUF_FILE, sessionId=sessionId, appId=2, context=context)
        manager.sendSLP(BOB, invite)
        return succeed(None)

    async def test_hostileNamesSanitised(self) -> None:
        """
        Offers named C{../../evil.txt}, an absolute path and a name with
        control characters and backslashes are offered (and saved) under
        a single safe name inside the destination; nothing is written
        outside it.
        """
        outside = tempDirectory(self)
        destination = os.path.join(outside, "inbox")
        os.mkdir(destination)
        names = ["../../evil.txt", "/etc/passwd", "..\\..\\win\x07dows\x1b.ini", "..", "con.txt"]
        for index, name in enumerate(names):
            path, data = self.sourceFile(1500, seed=index)
            transfer = self.conversation.sendFile(name, path)
            offer = await self.offered(index + 1)
            self.assertNotIn("/", offer.name)
            self.assertNotIn("\\", offer.name)
            self.assertFalse(offer.name.startswith("."))
            self.assertEqual(offer.originalName, name)
            written = await offer.accept(destination)
            await transfer.whenDone()
            self.assertEqual(os.path.dirname(written), os.path.realpath(destination))
        self.assertEqual(sorted(os.listdir(outside)), ["inbox"])
        self.assertEqual(sorted(os.listdir(destination)), ["_con.txt", "evil.txt", "file", "passwd", "windows.ini"])

    async def test_sizeAboveCapRefused(self) -> None:
        """
        An offer above bob's cap is declined without reaching the
        observer: the sender gets L{TransferDeclined}.
        """
        self.bob.files.sessions.maxFileSize = 1000
        path, _ = self.sourceFile(1001)
        transfer = self.conversation.sendFile("notes.txt", path)
        await self.assertFailure(transfer.whenDone(), TransferDeclined)
        self.assertEqual(self.bobEvents.named("fileOfferReceived"), [])

    async def test_shortContextAndStrayDataRefused(self) -> None:
        """
        An INVITE whose context is too short is declined with 603; data
        for a session nobody opened is dropped (no offer, no transfer, no
        file); the conversation still carries text afterwards. (Data
        outside an offered file: L{test.test_p2p_files.HostileTests}.)
        """
        manager = self.alice.pictures.manager
        responses: list[Any] = []
        original = manager._slpReceived

        def spy(peer: str, message: Any) -> None:
            responses.append(slp.parseSLP(message.payload))
            original(peer, message)

        manager._slpReceived = spy
        short = FileContext("notes.txt", 100).toBase64()[:200]
        await self.hostileInvite(short)
        await waitUntil(lambda: any(r.status == 603 for r in responses), timeout=10)
        for chunk in splitMessage(b"x" * 3000, sessionId=424242, identifier=7, flags=FLAG_FILE_DATA, ackId=9, appId=2):
            await self.conversation.sendP2P(buildFrame(BOB, chunk))
        self.assertEqual(self.bobEvents.named("fileOfferReceived"), [])
        self.assertEqual(self.bob.files.sessions.transfers(), [])
        await self.textStillWorks("after the hostile input")

    async def test_producerSource(self) -> None:
        """
        A streaming producer (C{length} + C{startProducing}) is sent with
        backpressure: it is paused while its buffer is high, and the bytes
        arrive whole into a path.
        """
        from twisted.web.client import FileBodyProducer

        path, data = self.sourceFile(300_000)
        handle = open(path, "rb")
        self.addCleanup(handle.close)
        producer = FileBodyProducer(handle, readSize=32 * 1024)
        transfer = self.conversation.sendFile("produced.bin", producer)
        self.assertEqual(transfer.total, 300_000)
        offer = await self.offered()
        target = os.path.join(self.directory, "chosen.bin")
        written = await offer.accept(target)
        await transfer.whenDone()
        self.assertEqual(written, target)
        with open(written, "rb") as f:
            self.assertEqual(hashlib.sha1(f.read()).digest(), hashlib.sha1(data).digest())

    async def test_consoleSendAndAccept(self) -> None:
        """
        In C{python -m msnp chat}'s console, alice's C{/send bob FILE}
        offers the file; bob's console shows the offer, C{/accept alice
        DIR} saves it there, progress bars reach 100 % on both sides, and
        C{/decline} answers the next offer.
        """
        from msnp.console import Console

        path, data = self.sourceFile(200_000, name="photo.jpg")
        aliceLines: list[str] = []
        bobLines: list[str] = []
        aliceConsole = Console(aliceLines.append, timestamps=False)
        bobConsole = Console(bobLines.append, timestamps=False)
        self.alice.client.addObserver(aliceConsole)
        self.bob.client.addObserver(bobConsole)
        aliceConsole.attach(self.alice)
        bobConsole.attach(self.bob)
        aliceConsole.command(f"/send {BOB} {path}")
        await waitUntil(lambda: any(f"{ALICE} offers the file photo.jpg (195.3 KB)" in line for line in bobLines), 30)
        bobConsole.command(f"/accept {ALICE} {self.directory}")
        await waitUntil(lambda: any(line.startswith("Sent photo.jpg") for line in aliceLines), timeout=30)
        await waitUntil(lambda: any(line.startswith("Saved photo.jpg") for line in bobLines), timeout=30)
        with open(os.path.join(self.directory, "photo.jpg"), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertTrue(any("photo.jpg to bob@example.com [####################] 100%" in line for line in aliceLines),
                        aliceLines)
        self.assertTrue(any("photo.jpg from alice@example.com [####################] 100%" in line for line in bobLines),
                        bobLines)
        aliceConsole.command(f"/send {BOB} {path}")
        await waitUntil(lambda: len([line for line in bobLines if "offers the file" in line]) == 2, 30)
        bobConsole.command("/decline")
        self.assertIn(f"Declined photo.jpg from {ALICE}.", bobLines)
        await waitUntil(lambda: any("error: peer answered 603" in line for line in aliceLines), timeout=30)
        self.assertEqual(self.filesIn(self.directory), ["photo.jpg"])
