"""
The local switchboard relays P2P messages as the real service does: ack
mode C{D} only, the 1664-byte limit, and only to the places its
C{P2P-Dest} names (all places of a bare address; one place for
C{account;{guid}}). Over StringTransport, with the fixtures of
L{test_server_switchboard}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.p2p.transport import Chunk, Header, buildFrame
from msnp.server.switchboard import SwitchboardServerFactory, p2pDestination

from test.support import ALICE_GUID, BOB_GUID, BOB_GUID2, Client, FakeNS, FakeNetwork


def p2pPayload(destination: str, size: int = 100) -> bytes:
    """
    A P2P payload for C{destination}; an endpoint id (version 2 form) is
    written into the header by hand, since the v1 codec refuses it.
    """
    chunk = Chunk(Header(0, 12345, 0, size, size, 0, 777), b"x" * size, 0)
    account, _, guid = destination.partition(";")
    payload = buildFrame(account, chunk)
    if guid:
        payload = payload.replace(f"P2P-Dest: {account}".encode(), f"P2P-Dest: {destination}".encode(), 1)
    return payload


class DestinationTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        C{P2P-Dest} is read from P2P messages only, GUIDs compared without
        braces or case; other messages give L{None}.
        """
        self.assertEqual(p2pDestination(p2pPayload("Bob@Example.com")), ("bob@example.com", ""))
        self.assertEqual(
            p2pDestination(p2pPayload(f"bob@example.com;{BOB_GUID}")),
            ("bob@example.com", BOB_GUID.strip("{}").lower()),
        )
        self.assertIsNone(p2pDestination(b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nP2P-Dest: x"))
        self.assertEqual(
            p2pDestination(b"Content-Type: application/x-msnmsgrp2p\r\n\r\n\0\0"), ("", "")
        )


class RelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = FakeNetwork()
        self.network.online["carol@example.net"] = [
            FakeNS("carol@example.net", "{CCCCCCCC-0000-0000-0000-000000000000}", "Carol")
        ]
        self.factory = SwitchboardServerFactory(self.network)
        token = self.network.switchboards.issueXfrToken("alice@example.com", ALICE_GUID)
        self.alice = Client(self.factory)
        self.alice.send(f"USR 1 alice@example.com;{ALICE_GUID} {token}\r\n".encode())
        self.alice.send(b"CAL 2 bob@example.com\r\n")
        ring = self.network.rings[-1]
        self.bob1 = Client(self.factory)
        self.bob1.send(f"ANS 1 bob@example.com;{BOB_GUID} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.bob2 = Client(self.factory)
        self.bob2.send(f"ANS 1 bob@example.com;{BOB_GUID2} {ring.authToken} {ring.sessionId}\r\n".encode())
        self.alice.send(b"CAL 3 carol@example.net\r\n")
        ring = self.network.rings[-1]
        self.carol = Client(self.factory)
        self.carol.send(
            f"ANS 1 carol@example.net;{{CCCCCCCC-0000-0000-0000-000000000000}} {ring.authToken} {ring.sessionId}\r\n".encode()
        )
        for client in (self.alice, self.bob1, self.bob2, self.carol):
            client.clear()

    def send(self, mode: str, payload: bytes, trid: int = 9) -> None:
        self.alice.send(f"MSG {trid} {mode} {len(payload)}\r\n".encode() + payload)

    def relayed(self, client: Client) -> list[bytes]:
        return [c.payload or b"" for c in client.commands() if c.name == "MSG"]

    def test_bareDestinationReachesEveryPlaceOfThatAccount(self) -> None:
        """
        A version 1 message (bare C{P2P-Dest}) reaches both places of bob,
        not carol, and is acknowledged.
        """
        payload = p2pPayload("bob@example.com")
        self.send("D", payload)
        self.assertEqual(self.relayed(self.bob1), [payload])
        self.assertEqual(self.relayed(self.bob2), [payload])
        self.assertEqual(self.relayed(self.carol), [])
        self.assertEqual(self.alice.lines(), ["ACK 9"])

    def test_endpointDestinationReachesThatPlaceOnly(self) -> None:
        """
        C{P2P-Dest: bob;{guid}} (version 2, MPOP) reaches that place only,
        the GUID matched in any case.
        """
        payload = p2pPayload(f"bob@example.com;{BOB_GUID2.lower()}")
        self.send("D", payload)
        self.assertEqual(self.relayed(self.bob1), [])
        self.assertEqual(self.relayed(self.bob2), [payload])
        self.assertEqual(self.relayed(self.carol), [])
        self.assertEqual(self.alice.lines(), ["ACK 9"])

    def test_absentDestinationNaks(self) -> None:
        """
        A P2P message for someone not on the switchboard is delivered to
        nobody and gets C{NAK}.
        """
        self.send("D", p2pPayload("dave@example.com"))
        self.assertEqual([self.relayed(c) for c in (self.bob1, self.bob2, self.carol)], [[], [], []])
        self.assertEqual(self.alice.lines(), ["NAK 9"])

    def test_otherModeCloses(self) -> None:
        """
        P2P in ack mode C{A}, C{N} or C{U} closes the sender's connection
        and reaches nobody.
        """
        for mode in ("A", "N", "U"):
            self.setUp()
            self.send(mode, p2pPayload("bob@example.com"))
            self.assertTrue(self.alice.transport.disconnecting, mode)
            self.assertEqual(self.relayed(self.bob1), [], mode)

    def test_fullChunkFitsTheLimit(self) -> None:
        """
        A full 1202-byte chunk (1342 bytes framed) is relayed; a P2P
        payload over 1664 bytes closes the connection like any other.
        """
        payload = p2pPayload("bob@example.com", 1202)
        self.assertEqual(len(payload), 1342)
        self.send("D", payload)
        self.assertEqual(self.relayed(self.bob1), [payload])
        big = payload + b"y" * (1665 - len(payload))
        self.send("D", big, trid=10)
        self.assertTrue(self.alice.transport.disconnecting)
