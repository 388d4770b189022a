"""
Property tests (hypothesis) for the P2P codecs and L{P2PManager}'s input
handling: random bytes only ever raise the codec's own exception, chunking
never changes a message, and hostile chunk streams neither escape
L{P2PManager.payloadReceived} nor grow its buffers past their caps.
Example counts are modest so the file runs in a few seconds.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from msnp.p2p import slp
from msnp.p2p.errors import MalformedP2P, MalformedSLP
from msnp.p2p.msnobject import MalformedMSNObject, MSNObject
from msnp.p2p.session import IP2PTransport, P2PManager
from msnp.p2p.transport import (
    DATA_FLAGS,
    FLAG_ACK,
    Chunk,
    Header,
    Reassembler,
    buildFrame,
    parseFrame,
    splitMessage,
)

SETTINGS = settings(
    max_examples=100, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PREFIX = b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\nP2P-Dest: alice@example.com\r\n\r\n"
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
smallish = st.integers(0, 5000)


@implementer(IP2PTransport)
class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendP2P(self, peer: str, payload: bytes) -> "Deferred[Any]":
        self.sent.append(payload)
        return succeed(None)


@st.composite
def hostileChunks(draw: Any) -> bytes:
    """
    Chunks with plausible and implausible headers, sometimes lying about
    their sizes, sometimes of a known session id.
    """
    payload = draw(st.binary(max_size=300))
    header = Header(
        sessionId=draw(st.sampled_from([0, 0, 1234, 64]) | u32),
        identifier=draw(st.integers(0, 5)),
        offset=draw(st.sampled_from([0, 0, 300, 1202]) | u64),
        totalSize=draw(st.sampled_from([len(payload), 4, 10**6, 2**40]) | smallish),
        length=len(payload) if draw(st.booleans()) else draw(u32),
        flags=draw(st.sampled_from(sorted(DATA_FLAGS) + [0, FLAG_ACK, 0x01000000, 0x40, 0x80, 0x8, 0x100]) | u32),
        ackId=draw(u32),
    )
    body = header.pack() + payload + draw(st.binary(min_size=4, max_size=4))
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return PREFIX + body


class CodecProperties(SynchronousTestCase):
    @SETTINGS
    @given(st.binary(max_size=400), st.booleans())
    def test_parseFrameRaisesOnlyMalformed(self, data: bytes, prefixed: bool) -> None:
        """
        Any bytes parse or raise L{MalformedP2P} (L{P2PVersion2} included).
        """
        try:
            parseFrame(PREFIX + data if prefixed else data)
        except MalformedP2P:
            pass

    @SETTINGS
    @given(st.binary(max_size=6000), st.integers(1, 1202), u32, u32, st.integers(1, 2**32 - 1))
    def test_splitThenReassemble(self, payload: bytes, size: int, sid: int, ident: int, ack: int) -> None:
        """
        Through the frame codec and the reassembler, any message comes back
        whole, in as many chunks as ceil(len / size).
        """
        chunks = splitMessage(payload, sessionId=sid, identifier=ident, flags=0x20, ackId=ack, appId=12, maxChunk=size)
        self.assertEqual(len(chunks), max(1, -(-len(payload) // size)))
        r = Reassembler(maxSize=10000)
        results = [r.add("bob", parseFrame(buildFrame("alice@example.com", c)).chunk) for c in chunks]
        complete = results[-1]
        assert complete is not None
        self.assertEqual((complete.payload, complete.appId), (payload, 12))
        self.assertTrue(all(x is None for x in results[:-1]))

    @SETTINGS
    @given(st.binary(max_size=600))
    def test_parseSLPRaisesOnlyMalformed(self, data: bytes) -> None:
        """
        Any bytes parse or raise L{MalformedSLP}, also after a valid start.
        """
        for candidate in (data, b"INVITE MSNMSGR:a@b MSNSLP/1.0\r\n" + data, b"MSNSLP/1.0 200 OK\r\n" + data):
            try:
                parseSLP = slp.parseSLP(candidate)
                parseSLP.branch, parseSLP.sessionId, parseSLP.sender, parseSLP.contentType
            except MalformedSLP:
                pass

    @SETTINGS
    @given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z-]{0,10}", fullmatch=True),
                              st.text(alphabet=st.characters(exclude_characters="\r\n\0", codec="utf-8"), max_size=30)),
                    max_size=6),
           u32)
    def test_slpRoundTrip(self, fields: list[tuple[str, str]], sid: int) -> None:
        """
        Built messages parse back with the same body fields (values
        trimmed) and a Content-Length equal to the body bytes.
        """
        message = slp.buildInvite("b@x", "a@x", eufGuid=slp.EUF_MSN_OBJECT, sessionId=sid, appId=12, context="AA==")
        message = slp.SLPMessage(message.method, message.target, None, "", message.headers, message.body + tuple(fields))
        data = message.encode()
        parsed = slp.parseSLP(data)
        self.assertEqual(parsed.body, tuple((k, v.strip()) for k, v in message.body))
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertEqual(int(parsed.header("Content-Length") or -1), len(body))
        self.assertEqual(parsed.sessionId, sid)

    @SETTINGS
    @given(st.text(max_size=300))
    def test_msnObjectRaisesOnlyMalformed(self, text: str) -> None:
        """
        Any text parses or raises L{MalformedMSNObject}, as object and as
        Context.
        """
        for candidate in (text, "<msnobj " + text + "/>"):
            try:
                MSNObject.parse(candidate)
            except MalformedMSNObject:
                pass
        try:
            MSNObject.fromContext(text)
        except MalformedMSNObject:
            pass

    @SETTINGS
    @given(st.binary(max_size=500), st.from_regex(r"[a-z0-9.]{1,12}@[a-z]{1,8}\.com", fullmatch=True), st.text(max_size=20))
    def test_msnObjectRoundTrip(self, data: bytes, creator: str, location: str) -> None:
        """
        Built objects survive XML and Context, and match their data.
        """
        obj = MSNObject.fromData(creator, data, location=location)
        self.assertEqual(MSNObject.parse(obj.toXml()), obj)
        self.assertEqual(MSNObject.fromContext(obj.contextValue()), obj)
        self.assertTrue(obj.matches(data) and obj.checksumValid())


class ManagerProperties(SynchronousTestCase):
    @settings(SETTINGS, max_examples=80)
    @given(st.lists(hostileChunks() | st.binary(max_size=200), max_size=40))
    def test_hostileStreamsAreContained(self, payloads: list[bytes]) -> None:
        """
        A stream of hostile payloads never raises out of
        L{P2PManager.payloadReceived}, never grows the reassembler beyond
        its caps, and gets nothing but ACKs and SLP answers in reply.
        """
        sink = Sink()
        manager = P2PManager("alice@example.com", sink, None, Clock(), maxObjectSize=4096, rng=random.Random(0))
        for payload in payloads:
            manager.payloadReceived("bob@example.com", payload)
            self.assertLessEqual(manager._reassembler.pendingBytes(), 32 * 4096)
        for sent in sink.sent:
            chunk = parseFrame(sent).chunk
            self.assertEqual(chunk.header.sessionId if not chunk.header.isAck else 0, 0)
