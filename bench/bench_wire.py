#!/usr/bin/env python
"""
Benchmark the NS client framing: MB/s and commands/s of L{MSNPProtocol}
(no-op handlers) and of the real L{msnp.notification.NotificationProtocol}
when importable, against a bare C{LineReceiver} that only frames lines and
payloads (raw mode by length) and does nothing else, on the same realistic
multi-megabyte stream (NLN, UBX with payload, FLN, MSG Hotmail, NOT) fed in
chunks of 1-4 KiB.

Usage::

    python bench/bench_wire.py [--megabytes 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any, Callable, cast

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.logger import ILogObserver, globalLogBeginner  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402

from msnp.protocol import MSNPProtocol  # noqa: E402
from msnp.wire import PAYLOAD_FROM_SERVER, Command  # noqa: E402

UBX = (
    b'<Data><PSM>%s</PSM><CurrentMedia></CurrentMedia><EndpointData id="{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}">'
    b"<Capabilities>2789003324:48</Capabilities></EndpointData></Data>"
)
MAIL = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n"
    b"From: Carol\r\nMessage-URL: /cgi-bin/getmsg?msg=MSG%d\r\nPost-URL: https://login.example/\r\n"
    b"Subject: Hello\r\nDest-Folder: ACTIVE\r\nFrom-Addr: carol@example.net\r\nid: 2\r\n"
)
NOTIFICATION = (
    b'<NOTIFICATION id="%d" siteid="0" siteurl="http://example.invalid"><TO pid="0x0:0x0" name="alice@example.com">'
    b'<VIA agent="messenger" /></TO><MSG id="0"><BODY>text</BODY></MSG></NOTIFICATION>'
)


def buildStream(megabytes: float) -> tuple[bytes, int]:
    """
    A stream of NS traffic of about C{megabytes} MB; returns it and its
    number of commands.
    """
    rng = random.Random(18)
    parts: list[bytes] = []
    size = commands = 0
    target = int(megabytes * 1024 * 1024)
    while size < target:
        contact = b"user%d@example.com" % rng.randrange(2000)
        kind = rng.randrange(10)
        if kind < 4:
            part = b"NLN %s 1:%s User%%20%d 2789003324:48 0\r\n" % (rng.choice([b"NLN", b"AWY", b"BSY"]), contact, kind)
        elif kind < 7:
            payload = UBX % (b"status %d" % rng.randrange(10**6))
            part = b"UBX 1:%s %d\r\n" % (contact, len(payload)) + payload
        elif kind < 8:
            part = b"FLN 1:%s 0:0\r\n" % contact
        elif kind < 9:
            payload = MAIL % rng.randrange(10**6)
            part = b"MSG Hotmail Hotmail %d\r\n" % len(payload) + payload
        else:
            payload = NOTIFICATION % rng.randrange(10**6)
            part = b"NOT %d\r\n" % len(payload) + payload
        parts.append(part)
        size += len(part)
        commands += 1
    return b"".join(parts), commands


def chunked(stream: bytes) -> list[bytes]:
    rng = random.Random(4)
    out, i = [], 0
    while i < len(stream):
        n = rng.randint(1024, 4096)
        out.append(stream[i:i + n])
        i += n
    return out


class BareFraming(LineReceiver):
    """
    Frames lines and payloads (raw mode by length) and does nothing else:
    the floor any MSNP reader built on C{LineReceiver} has to pay.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024

    def __init__(self) -> None:
        self.count = 0
        self._need = 0

    def lineReceived(self, line: bytes) -> None:
        tokens = line.rstrip(b"\r").split(b" ")
        if tokens[0].decode("ascii", "replace") in PAYLOAD_FROM_SERVER and tokens[-1].isdigit() and int(tokens[-1]):
            self._need = int(tokens[-1])
            self.setRawMode()
        else:
            self.count += 1

    def rawDataReceived(self, data: bytes) -> None:
        if len(data) < self._need:
            self._need -= len(data)
            return
        rest = data[self._need:]
        self.count += 1
        self.setLineMode(rest)


class NoOpProtocol(MSNPProtocol):
    """
    L{MSNPProtocol} with a no-op handler for every command in the stream.
    """

    def __init__(self, clock: Any) -> None:
        MSNPProtocol.__init__(self, clock=clock)
        self.count = 0

    def handle_NLN(self, command: Command) -> None:
        self.count += 1

    handle_UBX = handle_FLN = handle_MSG = handle_NOT = handle_NLN


def makers() -> list[tuple[str, Callable[[], Any]]]:
    found: list[tuple[str, Callable[[], Any]]] = [
        ("bare LineReceiver (framing only)", BareFraming),
        ("MSNPProtocol, no-op handlers", lambda: NoOpProtocol(Clock())),
    ]
    try:
        from msnp.endpoints import ClientIdentity
        from msnp.notification import NotificationProtocol

        found.append((
            "NotificationProtocol (real handlers)",
            lambda: NotificationProtocol("alice@example.com", ClientIdentity(), clock=Clock()),
        ))
    except ImportError:
        pass
    return found


def measure(make: Callable[[], Any], pieces: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        protocol = make()
        protocol.makeConnection(StringTransport())
        started = time.perf_counter()
        for piece in pieces:
            protocol.dataReceived(piece)
        best = min(best, time.perf_counter() - started)
        count = getattr(protocol, "count", None)
        if count is not None and count != EXPECTED[0]:
            raise SystemExit(f"{make} framed {count} commands, expected {EXPECTED[0]}")
    return best


EXPECTED = [0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MSNP framing benchmark")
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation; the best is kept")
    options = parser.parse_args(argv)
    # Keep the real protocol's log calls cheap and quiet.
    globalLogBeginner.beginLoggingTo([cast(ILogObserver, lambda event: None)], discardBuffer=True, redirectStandardIO=False)

    stream, commands = buildStream(options.megabytes)
    EXPECTED[0] = commands
    pieces = chunked(stream)
    megabytes = len(stream) / (1024 * 1024)
    print(f"stream: {megabytes:.2f} MiB, {commands} commands, {len(pieces)} chunks of 1-4 KiB, best of {options.repeat}")
    print(f"{'implementation':<40} {'MiB/s':>8} {'commands/s':>12} {'time (s)':>9} {'vs bare':>8}")
    bare = None
    for name, make in makers():
        seconds = measure(make, pieces, options.repeat)
        if bare is None:
            bare = seconds
        print(f"{name:<40} {megabytes / seconds:8.1f} {commands / seconds:12,.0f} {seconds:9.3f} {seconds / bare:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
