"""
Tests for L{msnp.p2p.transport}, the pure P2P v1 codec, against the byte
examples of MSNP18-p2p.md (P.3.6, P.7.3) and the reassembly rules of P.3.5.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.p2p.errors import MalformedP2P, P2PVersion2
from msnp.p2p.transport import (
    FLAG_ACK,
    FLAG_OBJECT_DATA,
    HEADER_SIZE,
    MAX_CHUNK,
    Address,
    Chunk,
    Header,
    Kind,
    Reassembler,
    buildFrame,
    classify,
    isVersion2,
    makeAck,
    parseFrame,
    splitMessage,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(" ".join(line.split("#")[0] for line in text.strip().splitlines()))


#: Message 1 of P.7.3 (Alice's INVITE header).
INVITE_HEADER = hexbytes("""
00 00 00 00 01 E1 F5 05 00 00 00 00 00 00 00 00
7A 02 00 00 00 00 00 00 7A 02 00 00 00 00 00 00
4D 3C 2B 1A 00 00 00 00 00 00 00 00 00 00 00 00
""")
#: Message 2 of P.7.3 = the ACK of P.3.6, footer included.
ACK_BYTES = hexbytes("""
00 00 00 00 01 C2 EB 0B 00 00 00 00 00 00 00 00
7A 02 00 00 00 00 00 00 00 00 00 00 02 00 00 00
01 E1 F5 05 4D 3C 2B 1A 7A 02 00 00 00 00 00 00
00 00 00 00
""")
#: Message 5 of P.7.3: the data preparation, payload and footer 12.
PREP_BYTES = hexbytes("""
87 D6 12 00 03 C2 EB 0B 00 00 00 00 00 00 00 00
04 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00
60 5F 4E 3D 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 0C
""")
#: Message 7 of P.7.3: the first data chunk's header.
DATA_HEADER = hexbytes("""
87 D6 12 00 04 C2 EB 0B 00 00 00 00 00 00 00 00
C4 09 00 00 00 00 00 00 B2 04 00 00 20 00 00 01
71 60 5F 4E 00 00 00 00 00 00 00 00 00 00 00 00
""")
PICTURE = bytes((7 * i) % 256 for i in range(2500))


class ReferenceBytesTests(SynchronousTestCase):
    def test_inviteHeader(self) -> None:
        """
        The INVITE's header packs to the bytes of P.7.3 message 1.
        """
        header = Header(0, 0x05F5E101, 0, 634, 634, 0, 0x1A2B3C4D)
        self.assertEqual(header.pack(), INVITE_HEADER)
        self.assertEqual(Header.unpack(INVITE_HEADER), header)
        self.assertEqual(HEADER_SIZE, 48)

    def test_ack(self) -> None:
        """
        L{makeAck} of that INVITE is Bob's ACK of P.3.6, byte for byte.
        """
        invite = Header(0, 0x05F5E101, 0, 634, 634, 0, 0x1A2B3C4D)
        self.assertEqual(makeAck(invite, 0x0BEBC201).encode(), ACK_BYTES)
        self.assertIs(classify(Chunk.decode(ACK_BYTES).header, b""), Kind.ACK)

    def test_dataPreparation(self) -> None:
        """
        Message 5 decodes as a data preparation with footer 12.
        """
        chunk = Chunk.decode(PREP_BYTES)
        self.assertEqual((chunk.header.sessionId, chunk.appId), (1234567, 12))
        self.assertIs(classify(chunk.header, chunk.payload), Kind.DATA_PREPARATION)

    def test_dataChunks(self) -> None:
        """
        Splitting the 2500-byte picture gives chunks of 1202, 1202 and 96
        bytes at offsets 0, 1202, 2404, the first with P.7.3's header, and
        MSG lengths 1344, 1344 and 238 towards Alice (90 header bytes).
        """
        chunks = splitMessage(
            PICTURE, sessionId=1234567, identifier=0x0BEBC204, flags=FLAG_OBJECT_DATA,
            ackId=0x4E5F6071, appId=12,
        )
        self.assertEqual([(c.header.offset, c.header.length) for c in chunks], [(0, 1202), (1202, 1202), (2404, 96)])
        self.assertEqual(chunks[0].header.pack(), DATA_HEADER)
        self.assertEqual([len(buildFrame("alice@example.com", c)) for c in chunks], [1344, 1344, 238])

    def test_frameLengths(self) -> None:
        """
        The MIME header block is 88 bytes towards Bob: the INVITE's MSG is
        774 bytes, the ACK towards Alice 142.
        """
        invite = Chunk(Header(0, 0x05F5E101, 0, 634, 634, 0, 0x1A2B3C4D), b"x" * 634)
        self.assertEqual(len(buildFrame("bob@example.com", invite)), 774)
        self.assertEqual(len(buildFrame("alice@example.com", Chunk.decode(ACK_BYTES))), 142)


class FrameTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A frame parses back to its destination and chunk, headers in any
        case and order.
        """
        chunk = Chunk(Header(0, 5, 0, 3, 3, 0, 9), b"abc", 0)
        frame = parseFrame(buildFrame("Bob@Example.com", chunk))
        self.assertEqual((frame.destination, frame.chunk, frame.source), (Address("bob@example.com"), chunk, None))
        swapped = b"p2p-dest: bob@example.com\r\ncontent-type: Application/X-MSNMSGRP2P\r\n\r\n" + chunk.encode()
        self.assertEqual(parseFrame(swapped).chunk, chunk)

    def test_bareSource(self) -> None:
        """
        MSNPSharp's bare C{P2P-Src} is version 1.
        """
        chunk = Chunk(Header(0, 5, 0, 0, 0, 0, 9))
        frame = parseFrame(buildFrame("bob@example.com", chunk, source="alice@example.com"))
        self.assertEqual(frame.source, Address("alice@example.com"))

    def test_version2Detected(self) -> None:
        """
        C{;{epid}} in either header means version 2: L{P2PVersion2}, and a
        v1 frame refuses to write such an address.
        """
        body = b"\x18\x03" + b"\0" * 60
        for dest, src in [("bob@example.com;{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}", None),
                          ("bob@example.com", "alice@example.com;{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}")]:
            lines = ["Content-Type: application/x-msnmsgrp2p", f"P2P-Dest: {dest}"] + ([f"P2P-Src: {src}"] if src else [])
            payload = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
            self.assertRaises(P2PVersion2, parseFrame, payload)
        self.assertTrue(isVersion2("a@b;{x}", None))
        self.assertEqual(Address.parse("Bob@x;{G}"), Address("bob@x", "{G}"))
        self.assertRaises(ValueError, buildFrame, "bob@example.com;{G}", Chunk(Header()))

    def test_malformed(self) -> None:
        """
        Wrong type, missing P2P-Dest, no blank line, short body, f5 that
        disagrees with the payload, a chunk outside its message.
        """
        good = Chunk(Header(0, 5, 0, 3, 3, 0, 9), b"abc").encode()
        cases = [
            b"Content-Type: text/plain\r\nP2P-Dest: a@b\r\n\r\n" + good,
            b"Content-Type: application/x-msnmsgrp2p\r\n\r\n" + good,
            b"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n" + good,
            b"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n" + good[:50],
            b"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n" + Chunk(Header(0, 5, 0, 9, 4, 0, 9), b"abc").encode(),
            b"Content-Type: application/x-msnmsgrp2p\r\nP2P-Dest: a@b\r\n\r\n" + Chunk(Header(0, 5, 8, 9, 3, 0, 9), b"abc").encode(),
        ]
        for payload in cases:
            self.assertRaises(MalformedP2P, parseFrame, payload)


class SplitTests(SynchronousTestCase):
    def test_shared(self) -> None:
        """
        Every chunk repeats f1, f2, f4, f6, f7 and the footer; none exceeds
        1202 bytes; an empty message is one empty chunk.
        """
        chunks = splitMessage(b"z" * 5000, sessionId=7, identifier=8, flags=FLAG_OBJECT_DATA, ackId=9, appId=12)
        self.assertEqual({(c.header.sessionId, c.header.identifier, c.header.totalSize, c.header.flags, c.header.ackId, c.appId) for c in chunks},
                         {(7, 8, 5000, FLAG_OBJECT_DATA, 9, 12)})
        self.assertLessEqual(max(c.header.length for c in chunks), MAX_CHUNK)
        (empty,) = splitMessage(b"", sessionId=7, identifier=8, flags=FLAG_OBJECT_DATA, ackId=9)
        self.assertEqual((empty.header.totalSize, empty.header.length), (0, 0))

    def test_zeroAckIdRefused(self) -> None:
        """
        f7 = 0 would make MSNPSharp miss our ACKs (P.3.4).
        """
        self.assertRaises(ValueError, splitMessage, b"a", sessionId=0, identifier=1, flags=0, ackId=0)

    def test_classify(self) -> None:
        """
        The classification of P.3.3.
        """
        self.assertIs(classify(Header(0, 1, 0, 5, 5, 0x01000000, 1), b"hello"), Kind.SLP)
        self.assertIs(classify(Header(9, 1, 0, 5, 5, 0x20, 1), b"hello"), Kind.DATA)
        self.assertIs(classify(Header(9, 1, 0, 0, 0, 0x40, 1), b""), Kind.CLOSE)
        self.assertIs(classify(Header(9, 1, 0, 0, 0, 0x80, 1), b""), Kind.ABORT)
        self.assertIs(classify(Header(9, 1, 0, 4, 4, 0, 1), b"\0\0\0\1"), Kind.OTHER)
        self.assertIs(classify(Header(0, 1, 0, 4, 4, 0x100, 1), b"\0\0\0\0"), Kind.OTHER)


class ReassemblerTests(SynchronousTestCase):
    def chunks(self, size: int = 3000) -> list[Chunk]:
        return splitMessage(bytes(range(256)) * (size // 256) + b"x" * (size % 256),
                            sessionId=7, identifier=8, flags=FLAG_OBJECT_DATA, ackId=9)

    def test_inOrder(self) -> None:
        """
        Chunks in order complete the message with the first chunk's header.
        """
        r = Reassembler()
        results = [r.add("bob", c) for c in self.chunks()]
        self.assertEqual(results[:-1], [None, None])
        complete = results[-1]
        assert complete is not None
        self.assertEqual(complete.payload, b"".join(c.payload for c in self.chunks()))
        self.assertEqual((complete.header.offset, complete.header.length, complete.kind), (0, 3000, Kind.DATA))
        self.assertEqual(len(r), 0)

    def test_duplicateDropped(self) -> None:
        """
        A repeated chunk (resent after NAK) is dropped quietly.
        """
        r = Reassembler()
        a, b, c = self.chunks()
        r.add("bob", a)
        r.add("bob", b)
        self.assertIsNone(r.add("bob", b))
        self.assertIsNotNone(r.add("bob", c))

    def test_gapAborts(self) -> None:
        """
        A gap drops the message; later chunks then belong to nothing.
        """
        r = Reassembler()
        a, b, c = self.chunks()
        r.add("bob", a)
        self.assertRaises(MalformedP2P, r.add, "bob", c)
        self.assertRaises(MalformedP2P, r.add, "bob", b)
        self.assertEqual(len(r), 0)

    def test_cap(self) -> None:
        """
        A total above the cap is refused before anything is kept.
        """
        r = Reassembler(maxSize=2999)
        self.assertRaises(MalformedP2P, r.add, "bob", self.chunks()[0])
        self.assertEqual(r.pendingBytes(), 0)

    def test_pendingBounded(self) -> None:
        """
        At most C{maxPending} messages are held; the oldest makes room.
        """
        r = Reassembler(maxPending=3)
        for identifier in range(10):
            r.add("bob", Chunk(Header(7, identifier, 0, 2000, 1000, FLAG_OBJECT_DATA, 9), b"y" * 1000))
        self.assertEqual(len(r), 3)

    def test_keyedBySender(self) -> None:
        """
        Two places sending the same f1/f2 (MPOP) never mix.
        """
        r = Reassembler()
        a, b, c = self.chunks()
        r.add("bob", a)
        r.add("carol", a)
        r.discard("carol")
        r.add("bob", b)
        self.assertIsNotNone(r.add("bob", c))
        self.assertRaises(MalformedP2P, r.add, "carol", b)

    def test_disagreeingChunk(self) -> None:
        """
        A chunk whose f4 differs from its message's first chunk drops it.
        """
        r = Reassembler()
        a, b, _ = self.chunks()
        r.add("bob", a)
        bad = Chunk(Header(7, 8, 1202, 4000, 1202, FLAG_OBJECT_DATA, 9), b.payload)
        self.assertRaises(MalformedP2P, r.add, "bob", bad)
        self.assertEqual(len(r), 0)
