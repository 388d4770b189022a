"""
Tests for L{msnp.p2p.session}: two sans-IO L{P2PManager}s, a picture owner
and a fetcher, wired to each other in memory through a fake switchboard
that delivers on a L{Clock}; no sockets.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.p2p import slp
from msnp.p2p.errors import (
    ChecksumMismatch,
    TransferCancelled,
    TransferDeclined,
    TransferError,
    TransferInterrupted,
    TransferTimeout,
)
from msnp.p2p.msnobject import MSNObject
from msnp.p2p.session import P2PManager
from msnp.p2p.transport import (
    FLAG_ACK,
    FLAG_OBJECT_DATA,
    MAX_CHUNK,
    Chunk,
    Header,
    Kind,
    buildFrame,
    classify,
    parseFrame,
    splitMessage,
)

from test.p2psupport import ALICE, BOB, MAX_PAYLOAD, LogCatcher, Pair, picture


class TransferTests(SynchronousTestCase):
    def fetch(self, size: int) -> tuple[Pair, bytes]:
        pair = Pair()
        data = picture(size)
        obj = pair.bobObjects.publish(BOB, data)
        d = pair.alice.fetchObject(obj)
        pair.run()
        return pair, self.successResultOf(d)

    def test_1k(self) -> None:
        """
        A 1 KB picture arrives whole; Bob sends ACK, 200 OK, data
        preparation, one data chunk, and the ACK of Alice's BYE; Alice sends
        INVITE, ACKs of the answer, preparation and data, then BYE.
        Nothing is left behind on either side.
        """
        pair, got = self.fetch(1024)
        self.assertEqual(got, picture(1024))
        self.assertEqual(pair.bobWire.kinds(), ["ack", "slp", "data-preparation", "data", "ack"])
        self.assertEqual(pair.aliceWire.kinds(), ["slp", "ack", "ack", "ack", "slp"])
        self.assertEqual((pair.alice.activeSessions(), pair.bob.activeSessions()), (0, 0))
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_200k(self) -> None:
        """
        A 200 KB picture travels in 171 chunks of at most 1202 bytes, every
        switchboard payload within 1664 bytes, and arrives whole.
        """
        pair, got = self.fetch(200 * 1024)
        self.assertEqual(got, picture(200 * 1024))
        data = [parseFrame(p).chunk for p in pair.bobWire.sent]
        data = [c for c in data if c.header.flags == FLAG_OBJECT_DATA]
        self.assertEqual(len(data), -(-200 * 1024 // MAX_CHUNK))
        self.assertEqual(len({c.header.identifier for c in data}), 1)
        self.assertLessEqual(max(len(p) for p in pair.bobWire.sent + pair.aliceWire.sent), MAX_PAYLOAD)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_controlOvertakesData(self) -> None:
        """
        While Bob streams a 200 KB picture, Alice asks for a second one:
        Bob's answer to it goes out between two chunks of the first instead
        of after all of them, and both pictures arrive.
        """
        pair = Pair()
        big = pair.bobObjects.publish(BOB, picture(200 * 1024))
        small = pair.bobObjects.publish(BOB, picture(700, seed=5))
        first = pair.alice.fetchObject(big)
        pair.step(12)
        second = pair.alice.fetchObject(small)
        pair.run()
        self.assertEqual(self.successResultOf(first), picture(200 * 1024))
        self.assertEqual(self.successResultOf(second), picture(700, seed=5))
        chunks = [parseFrame(p).chunk for p in pair.bobWire.sent]
        oks = [i for i, c in enumerate(chunks) if classify(c.header, c.payload) is Kind.SLP]
        bigData = [i for i, c in enumerate(chunks) if c.header.flags == FLAG_OBJECT_DATA and c.header.totalSize == 200 * 1024]
        self.assertLess(oks[1], bigData[-1] - 100)

    def test_invitePerReference(self) -> None:
        """
        The INVITE carries the object EUF-GUID, AppID 12 and the object as
        base64 in Context; f1 = 0, f6 = 0, footer 0, f7 nonzero.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(500))
        pair.alice.fetchObject(obj)
        chunk = parseFrame(pair.aliceWire.sent[0]).chunk
        self.assertEqual((chunk.header.sessionId, chunk.header.flags, chunk.appId), (0, 0, 0))
        self.assertNotEqual(chunk.header.ackId, 0)
        invite = slp.parseSLP(chunk.payload)
        self.assertEqual(invite.method, "INVITE")
        self.assertEqual(invite.field("EUF-GUID"), slp.EUF_MSN_OBJECT)
        self.assertEqual(invite.field("AppID"), "12")
        self.assertEqual(MSNObject.fromContext(invite.field("Context") or ""), obj)

    def test_dataFlagsAndFooter(self) -> None:
        """
        Bob's data carries f6 = 0x01000020 and the INVITE's AppID in the
        footer; the preparation message is four zero bytes with f4 = 4.
        """
        pair, _ = self.fetch(3000)
        chunks = [parseFrame(p).chunk for p in pair.bobWire.sent]
        prep = [c for c in chunks if classify(c.header, c.payload) is Kind.DATA_PREPARATION]
        data = [c for c in chunks if c.header.flags == FLAG_OBJECT_DATA]
        self.assertEqual([(c.header.totalSize, c.appId) for c in prep], [(4, 12)])
        self.assertEqual({c.appId for c in data}, {12})
        self.assertEqual([c.header.offset for c in data], [0, 1202, 2404])

    def test_declined(self) -> None:
        """
        Asking for an object Bob does not have fails with
        L{TransferDeclined} code 603.
        """
        pair = Pair()
        obj = MSNObject.fromData(BOB, b"never published")
        d = pair.alice.fetchObject(obj)
        pair.run()
        self.assertEqual(self.failureResultOf(d, TransferDeclined).value.code, 603)
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_silentWhenAskedTo(self) -> None:
        """
        With C{declineUnknown=False} Bob stays silent, and Alice's fetch
        times out on the clock after the response timeout, with a BYE.
        """
        pair = Pair(declineUnknown=False, responseTimeout=10)
        d = pair.alice.fetchObject(MSNObject.fromData(BOB, b"x" * 10))
        pair.run()
        self.assertNoResult(d)
        pair.clock.advance(10)
        self.failureResultOf(d, TransferTimeout)
        self.assertEqual(slp.parseSLP(parseFrame(pair.aliceWire.sent[-1]).chunk.payload).method, "BYE")

    def test_stalledTransferTimesOut(self) -> None:
        """
        Once accepted, a transfer that stops making progress fails with
        L{TransferTimeout} after the transfer timeout.
        """
        pair = Pair(transferTimeout=5)
        obj = pair.bobObjects.publish(BOB, picture(5000))
        d = pair.alice.fetchObject(obj)
        pair.bobWire.connected = True
        # let INVITE, ACK and 200 OK through, then cut Bob's side silently
        pair.step(3)  # INVITE, then Bob's ACK and 200 OK
        pair.bobWire.other = None
        pair.run()
        self.assertNoResult(d)
        pair.clock.advance(5)
        self.failureResultOf(d, TransferTimeout)

    def test_peerGoneMidTransfer(self) -> None:
        """
        The switchboard closing mid-transfer fails that fetch with
        L{TransferInterrupted}; the next fetch works.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(50000))
        d = pair.alice.fetchObject(obj)
        pair.step(12)
        self.assertNoResult(d)
        pair.alice.peerGone(BOB)
        pair.bob.peerGone(ALICE)
        self.failureResultOf(d, TransferInterrupted)
        pair.run()
        d2 = pair.alice.fetchObject(obj)
        pair.run()
        self.assertEqual(self.successResultOf(d2), picture(50000))

    def test_sendFailure(self) -> None:
        """
        A payload the switchboard refuses fails the fetch that sent it.
        """
        pair = Pair()
        pair.aliceWire.failNext = True
        d = pair.alice.fetchObject(pair.bobObjects.publish(BOB, picture(100)))
        self.failureResultOf(d, TransferInterrupted)

    def test_checksumMismatch(self) -> None:
        """
        Bytes that do not hash to SHA1D fail with L{ChecksumMismatch}.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(2000))
        pair.bobObjects.override = picture(2000, seed=3)
        d = pair.alice.fetchObject(obj)
        pair.run()
        self.failureResultOf(d, ChecksumMismatch)

    def test_cancel(self) -> None:
        """
        Cancelling a fetch sends BYE and fails it with C{CancelledError};
        Bob stops serving on the BYE.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(100000))
        d = pair.alice.fetchObject(obj)
        pair.step(10)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        pair.run()
        self.assertEqual((pair.alice.activeSessions(), pair.bob.activeSessions()), (0, 0))
        sentData = [p for p in pair.bobWire.sent if parseFrame(p).chunk.header.flags == FLAG_OBJECT_DATA]
        self.assertLess(len(sentData), 84)

    def test_byeBeforeData(self) -> None:
        """
        A BYE from the peer before the data is complete fails the fetch
        with L{TransferCancelled}.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(100000))
        d = pair.alice.fetchObject(obj)
        pair.step(10)
        (session,) = pair.bob._byCallId.values()
        pair.bob._sendBye(session)
        pair.bob._finish(session)
        pair.run()
        self.failureResultOf(d, TransferCancelled)

    def test_otherRequestsDeclined(self) -> None:
        """
        A file INVITE (any EUF-GUID but the MSN object one) gets C{603}.
        """
        pair = Pair()
        invite = slp.buildInvite(BOB, ALICE, eufGuid=slp.EUF_FILE, sessionId=99999, appId=2, context="AAAA")
        pair.alice._sendSLP(BOB, invite)
        pair.run()
        answers = [slp.parseSLP(c.payload) for c in (parseFrame(p).chunk for p in pair.bobWire.sent)
                   if classify(c.header, c.payload) is Kind.SLP]
        self.assertEqual([a.status for a in answers], [603])

    def test_secondAnswerIgnored(self) -> None:
        """
        Under MPOP two places may answer one INVITE; the first answer
        counts and a late 603 does not fail an accepted fetch.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(3000))
        d = pair.alice.fetchObject(obj)
        invite = slp.parseSLP(parseFrame(pair.aliceWire.sent[0]).chunk.payload)
        pair.step(1)  # Bob has queued ACK, 200 OK, preparation and data
        pair.bob._sendSLP(ALICE, slp.buildResponse(invite, BOB, 603))  # "another place" declines
        pair.run()
        self.assertEqual(self.successResultOf(d), picture(3000))

    def test_transportInviteAnswered(self) -> None:
        """
        A direct-connection proposal for a running session gets C{200 OK}
        with C{Listening: false} (P.5), not a decline.
        """
        pair = Pair()
        obj = pair.bobObjects.publish(BOB, picture(100000))
        pair.alice.fetchObject(obj)
        pair.step(6)
        (session,) = pair.alice._byCallId.values()
        proposal = slp.SLPMessage(
            "INVITE", BOB, None, "",
            (("To", f"<msnmsgr:{BOB}>"), ("From", f"<msnmsgr:{ALICE}>"),
             ("Via", "MSNSLP/1.0/TLP ;branch={11111111-2222-3333-4444-555555555555}"),
             ("CSeq", "0"), ("Call-ID", session.callId), ("Content-Type", slp.TRANSPORT_REQUEST)),
            (("Bridges", "TCPv1"), ("NetID", "0"), ("SessionID", str(session.sessionId))),
        )
        before = len(pair.bobWire.sent)
        pair.alice._sendSLP(BOB, proposal)
        pair.run()
        answers = [slp.parseSLP(c.payload) for c in (parseFrame(p).chunk for p in pair.bobWire.sent[before:])
                   if classify(c.header, c.payload) is Kind.SLP]
        transport = [a for a in answers if a.contentType == slp.TRANSPORT_RESPONSE]
        self.assertEqual([(a.status, a.field("Listening")) for a in transport], [(200, "false")])


class HostileInputTests(SynchronousTestCase):
    """
    What a peer may send that must be dropped with a logged reason, without
    a reply, a crash or a buffer that grows.
    """

    def setUp(self) -> None:
        self.pair = Pair(maxObjectSize=10000)
        self.logs = LogCatcher(self)

    def feed(self, payload: bytes) -> None:
        self.pair.alice.payloadReceived(BOB, payload)
        self.pair.run()

    def assertQuiet(self) -> None:
        self.assertEqual(self.pair.aliceWire.sent, [])
        self.assertEqual(len(self.pair.alice._reassembler), 0)

    def test_version2(self) -> None:
        """
        A message whose P2P-Dest names an endpoint is version 2: dropped
        with a logged reason, its binary part never read as v1.
        """
        self.feed(
            b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\n"
            b"P2P-Dest: alice@example.com;{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}\r\n"
            b"P2P-Src: bob@example.com;{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}\r\n\r\n"
            + bytes.fromhex("18 03 02 C4 6A 23 43 FF 01 0C 00 02 00 00 00 0E") + b"\0" * 40
        )
        self.assertQuiet()
        self.assertIn("version 2", self.logs.text())

    def test_unknownSession(self) -> None:
        """
        Data for a session nobody opened is dropped before buffering.
        """
        chunk = splitMessage(b"x" * 5000, sessionId=4242, identifier=5, flags=FLAG_OBJECT_DATA, ackId=9)[0]
        self.feed(buildFrame(ALICE, chunk))
        self.assertQuiet()
        self.assertIn("unknown session 4242", self.logs.text())

    def test_totalAboveCap(self) -> None:
        """
        An SLP message announcing more than the SLP cap is refused.
        """
        header = Header(0, 5, 0, 10**9, 4, 0, 9)
        self.feed(buildFrame(ALICE, Chunk(header, b"INVI")))
        self.assertQuiet()

    def test_malformedSLP(self) -> None:
        """
        Text that is not MSNSLP is logged and dropped, unacknowledged.
        """
        (chunk,) = splitMessage(b"HELLO there\r\n\r\n\0", sessionId=0, identifier=5, flags=0, ackId=9)
        self.feed(buildFrame(ALICE, chunk))
        self.assertQuiet()
        self.assertIn("malformed SLP", self.logs.text())

    def test_malformedChunk(self) -> None:
        """
        A binary part whose f5 disagrees with its length is dropped.
        """
        header = Header(0, 5, 0, 100, 50, 0, 9)
        self.feed(buildFrame(ALICE, Chunk(header, b"short")))
        self.assertQuiet()
        self.assertIn("malformed P2P", self.logs.text())

    def test_notForUs(self) -> None:
        """
        P2P addressed to someone else in a multi-party switchboard is
        ignored, as is P2P from our own address.
        """
        invite = slp.buildInvite(ALICE, BOB, eufGuid=slp.EUF_FILE, sessionId=77777, appId=2, context="AA==")
        (chunk,) = splitMessage(invite.encode(), sessionId=0, identifier=5, flags=0, ackId=9)
        self.feed(buildFrame("carol@example.com", chunk))
        self.pair.alice.payloadReceived(ALICE, buildFrame(ALICE, chunk))
        self.pair.run()
        self.assertQuiet()

    def test_forgedSender(self) -> None:
        """
        SLP whose C{From} is not the account that sent the C{MSG} is
        dropped with a logged reason.
        """
        invite = slp.buildInvite(ALICE, "carol@example.com", eufGuid=slp.EUF_FILE, sessionId=77777, appId=2, context="AA==")
        (chunk,) = splitMessage(invite.encode(), sessionId=0, identifier=5, flags=0, ackId=9)
        self.feed(buildFrame(ALICE, chunk))
        self.assertQuiet()
        self.assertIn("claiming to be from carol@example.com", self.logs.text())

    def test_responseForUnknownCall(self) -> None:
        """
        A 200 OK for a Call-ID we never used gets no ACK (P.14.1).
        """
        invite = slp.buildInvite(BOB, ALICE, eufGuid=slp.EUF_MSN_OBJECT, sessionId=55555, appId=12, context="")
        (chunk,) = splitMessage(slp.buildResponse(invite, BOB, 200).encode(), sessionId=0, identifier=5, flags=0, ackId=9)
        self.feed(buildFrame(ALICE, chunk))
        self.assertQuiet()

    def test_ackNeverAcknowledged(self) -> None:
        """
        An ACK is never acknowledged nor buffered.
        """
        header = Header(0, 5, 0, 634, 0, FLAG_ACK, 1, 2, 634)
        self.feed(buildFrame(ALICE, Chunk(header)))
        self.assertQuiet()

    def test_oversizedObjectRefused(self) -> None:
        """
        Fetching an object above the cap fails at once.
        """
        d = self.pair.alice.fetchObject(MSNObject.fromData(BOB, b"x" * 10001))
        self.failureResultOf(d, TransferError)
        self.assertEqual(self.pair.aliceWire.sent, [])

    def test_wrongDataSize(self) -> None:
        """
        Data whose total disagrees with the object's Size is refused at its
        first chunk, before anything is buffered, with a logged reason.
        """
        pair = Pair(maxObjectSize=10000)
        obj = pair.bobObjects.publish(BOB, picture(3000))
        pair.bobObjects.override = picture(9000)
        d = pair.alice.fetchObject(obj)
        pair.run()
        self.failureResultOf(d, ChecksumMismatch)
        self.assertIn("Refusing 9000-byte data", self.logs.text())
        self.assertEqual(len(pair.alice._reassembler), 0)
