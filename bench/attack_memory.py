"""
Resource attacks against a LocalNetwork in a subprocess: the server's RSS
before and after each one (issue 11, points 1-6).

    .venv/bin/python bench/attack_memory.py [--scale 1.0]

The child process runs the network with its default limits and answers
``rss`` on stdin with its resident set size; this process attacks it over
loopback with raw sockets:

  payloads  up to 1,000 connections each announcing a 1 MiB payload before
            VER and sending 64 KiB of it (point 1; the pre-login cap and
            the per-address connection cap apply)
  tickets   2,000 forged ``USR SSO S`` on fresh NS connections (point 2)
  noread    one NS connection sending 50,000 ``USR SSO I`` and reading
            nothing (point 3)
  idle      up to 1,000 idle connections each to DS, NS and SB (point 4)
  logs      20 MB of ignored pre-login lines (point 5)
  http      two requests announcing 300 MiB bodies, sending 8 MiB each
            (point 6)

Figures are printed against the baseline measured in the same run; this
is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))


def rssMiB() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def serve() -> None:
    """
    The child: run a LocalNetwork and answer ``rss`` lines on stdin.
    """
    sys.path.insert(0, os.path.dirname(HERE))
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from msnp.server.network import LocalNetwork

    network = LocalNetwork(reactor=reactor, sendChallenge=False)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            if line.strip() == b"rss":
                self.sendLine(json.dumps({"rss": rssMiB()}).encode())
            elif line.strip() == b"quit":
                reactor.stop()

    def started(endpoints: object) -> None:
        print(json.dumps({
            "ds": network.endpoints.dispatch.split(":", 1)[1] if network.endpoints else "",
            "ns": network.notificationAddress,
            "sb": network.switchboardAddress,
            "http": network.endpoints.sso.split("/")[2] if network.endpoints else "",
            "rss": rssMiB(),
        }), flush=True)
        stdio.StandardIO(Control())

    network.start().addCallback(started)
    reactor.run()


class Child:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.info = json.loads(self.process.stdout.readline())

    def rss(self) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("rss\n")
        self.process.stdin.flush()
        return float(json.loads(self.process.stdout.readline())["rss"])

    def quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.wait(timeout=10)


def address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def openMany(target: tuple[str, int], count: int, first: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(target, timeout=2)
            s.setblocking(False)
            if first:
                try:
                    s.send(first)
                except OSError:
                    pass
            socks.append(s)
        except OSError:
            break
    return socks


def openConnections(socks: list[socket.socket]) -> int:
    """
    How many of C{socks} the server still holds open.
    """
    alive = 0
    for s in socks:
        try:
            data = s.recv(65536)
            if data:
                alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def closeAll(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def attackPayloads(child: Child, n: int) -> str:
    socks = openMany(address(child.info["ns"]), n, b"MSG 1 A 1048576\r\n" + b"x" * 65536)
    time.sleep(1.0)
    alive = openConnections(socks)
    closeAll(socks)
    return f"{len(socks)} connections, {alive} still open after 1 s"


def attackTickets(child: Child, n: int) -> str:
    target = address(child.info["ns"])
    for i in range(n):
        s = socket.create_connection(target, timeout=2)
        s.sendall(f"VER 1 MSNP18 CVR0\r\nUSR 2 SSO I a{i}@x.org\r\nUSR 3 SSO S t=forged{i}&p= x\r\n".encode())
        s.close()
    return f"{n} forged tickets"


def attackNoRead(child: Child, n: int) -> str:
    s = socket.create_connection(address(child.info["ns"]), timeout=2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    data = b"VER 1 MSNP18 CVR0\r\n" + b"USR 2 SSO I alice@example.com\r\n" * n
    sent = 0
    deadline = time.time() + 3
    while sent < len(data) and time.time() < deadline:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    s.close()
    return f"{sent // 1024} KiB of requests accepted of {len(data) // 1024} KiB sent"


def attackIdle(child: Child, n: int) -> str:
    socks: list[socket.socket] = []
    for key in ("ds", "ns", "sb"):
        socks += openMany(address(child.info[key]), n)
    time.sleep(0.5)
    alive = openConnections(socks)
    closeAll(socks)
    return f"{len(socks)} idle connections opened, {alive} held (cap per address, all servers together)"


def attackLogs(child: Child, megabytes: int) -> str:
    s = socket.create_connection(address(child.info["ns"]), timeout=5)
    s.sendall(b"VER 1 MSNP18 CVR0\r\n")
    line = b"XYZ " + b"a" * 10_000 + b"\r\n"
    for _ in range(megabytes * 100):
        s.sendall(line)
    s.close()
    return f"{megabytes} MB of ignored lines"


def attackHTTP(child: Child, megabytes: int) -> str:
    results = []
    for _ in range(2):
        s = socket.create_connection(address(child.info["http"]), timeout=5)
        s.sendall(b"POST /abservice/abservice.asmx HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n")
        sent = 0
        try:
            for _ in range(megabytes * 16):
                s.sendall(b"x" * 65536)
                sent += 65536
        except OSError:
            pass
        try:
            results.append(s.recv(100).split(b"\r\n")[0].decode())
        except OSError:
            results.append("closed")
        s.close()
    return f"answers {results}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0)
    options = parser.parse_args()
    if options.serve:
        serve()
        return
    scale = options.scale
    child = Child()
    try:
        time.sleep(0.3)
        baseline = child.rss()
        print(f"server RSS at start: {baseline:.1f} MiB")
        attacks: list[tuple[str, Callable[[], str]]] = [
            ("payloads", lambda: attackPayloads(child, int(1000 * scale))),
            ("tickets", lambda: attackTickets(child, int(2000 * scale))),
            ("noread", lambda: attackNoRead(child, int(50_000 * scale))),
            ("idle", lambda: attackIdle(child, int(1000 * scale))),
            ("logs", lambda: attackLogs(child, max(1, int(20 * scale)))),
            ("http", lambda: attackHTTP(child, max(1, int(8 * scale)))),
        ]
        for name, attack in attacks:
            before = child.rss()
            what = attack()
            time.sleep(0.5)
            after = child.rss()
            print(f"{name:9s} {what}: RSS {before:.1f} -> {after:.1f} MiB "
                  f"(x{after / baseline:.2f} of start)")
        print(f"server RSS at the end: {child.rss():.1f} MiB (x{child.rss() / baseline:.2f} of start)")
    finally:
        child.quit()


if __name__ == "__main__":
    main()
