"""
The client against a hostile server: the client's RSS before and after
each flood (issue 11, points 17 and 18).

    .venv/bin/python bench/attack_client.py [--scale 1.0] [--unlimited]

This process runs a LocalNetwork on loopback and plays the hostile server
by writing lines itself on its end of the client's NS connection; the
client (a real MSNClient with the default ClientLimits) runs in a child
process, which answers ``rss`` on stdin with its resident set size, the
places it keeps for bob and its conversation count.

  nln   200,000 NLN for bob, each with a new endpoint id (point 17)
  rng   800 RNG from 400 inviters pointing at a switchboard that accepts
        connections and never answers (point 18)

``--unlimited`` gives the client limits so large that nothing is capped,
to show what the caps save. Figures are against the baseline measured in
the same run; this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

ALICE, BOB, PASSWORD = "alice@example.com", "bob@example.com", "bench-pw"


def rssMiB() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def client(endpointsJSON: str, unlimited: bool) -> None:
    """
    The child: sign alice in and answer ``rss`` lines on stdin.
    """
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from msnp.client import MSNClient
    from msnp.clientlimits import ClientLimits
    from msnp.endpoints import Endpoints

    big = 10**9
    limits = (
        ClientLimits(placesPerContact=big, invitationsPerContact=big, openConversations=big,
                     keptConversations=big, trackedInviters=big)
        if unlimited else ClientLimits()
    )
    endpoints = Endpoints(**json.loads(endpointsJSON))
    state: dict[str, Any] = {}

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            session = state["session"]
            bob = session.contacts.get(BOB)
            self.sendLine(json.dumps({
                "rss": rssMiB(),
                "places": len(bob.endpoints) if bob else 0,
                "name": bob.displayName if bob else "",
                "conversations": len(session.conversations),
                "open": session.conversationManager.openCount(),
            }).encode())

    def signedIn(session: Any) -> None:
        state["session"] = session
        stdio.StandardIO(Control())
        print(json.dumps({"ready": True, "rss": rssMiB()}), flush=True)

    def failed(f: Any) -> None:
        print(json.dumps({"error": f.getErrorMessage()}), flush=True)
        reactor.stop()

    MSNClient(ALICE, PASSWORD, endpoints, reactor=reactor, limits=limits).login().addCallbacks(signedIn, failed)
    reactor.run()


async def attack(reactor: Any, scale: float, unlimited: bool) -> None:
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
    from twisted.internet.task import deferLater

    from msnp.server.network import LocalNetwork

    network = LocalNetwork(reactor=reactor, sendChallenge=False)
    network.addAccount(ALICE, PASSWORD, "Alice")
    network.addAccount(BOB, PASSWORD, "Bob")
    network.addContact(ALICE, BOB, mutual=True)
    endpoints = await network.start()

    silent = Factory.forProtocol(Protocol)
    silent.noisy = False
    port = reactor.listenTCP(0, silent, interface="127.0.0.1")
    sbAddress = f"127.0.0.1:{port.getHost().port}"

    class Child(ProcessProtocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.waiting: list[Deferred[dict[str, Any]]] = []

        def outReceived(self, data: bytes) -> None:
            self.buffer += data
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if line.strip().startswith(b"{") and self.waiting:
                    self.waiting.pop(0).callback(json.loads(line))

        def next(self) -> "Deferred[dict[str, Any]]":
            d: Deferred[dict[str, Any]] = Deferred()
            self.waiting.append(d)
            return d

        def ask(self) -> "Deferred[dict[str, Any]]":
            d = self.next()
            self.transport.write(b"rss\n")  # type: ignore[union-attr]
            return d

    child = Child()
    fields = {"dispatch": endpoints.dispatch, "sso": endpoints.sso,
              "sharing": endpoints.sharing, "addressBook": endpoints.addressBook}
    ready = child.next()
    reactor.spawnProcess(
        child, sys.executable,
        [sys.executable, os.path.abspath(__file__), "--client", json.dumps(fields)]
        + (["--unlimited"] if unlimited else []),
        env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)),
    )
    started = await ready
    if "error" in started:
        raise SystemExit(f"client login failed: {started['error']}")

    def hostile(lines: list[bytes]) -> None:
        [server] = network.presence.sessionsOf(ALICE)
        server.transport.write(b"".join(lines))

    async def settle(name: str) -> dict[str, Any]:
        hostile([f"NLN NLN 1:{BOB} {name} 0:0 0\r\n".encode()])
        while True:
            report = await child.ask()
            if report["name"] == name:
                return report
            await deferLater(reactor, 0.2, lambda: None)

    base = await child.ask()
    print(f"client limits: {'unlimited' if unlimited else 'defaults'}")
    print(f"baseline: client RSS {base['rss']:.1f} MiB")

    count = int(200_000 * scale)
    for start in range(0, count, 10_000):
        hostile([
            f"NLN NLN 1:{BOB};{{{i:08X}-1111-4222-8333-444455556666}} Bob 0:0 0\r\n".encode()
            for i in range(start, min(count, start + 10_000))
        ])
        await deferLater(reactor, 0.05, lambda: None)
    after = await settle("after-nln")
    print(f"nln   {count} new endpoint ids: RSS {base['rss']:.1f} -> {after['rss']:.1f} MiB, "
          f"places kept for bob: {after['places']}")

    rngs = int(800 * scale)
    hostile([
        f"RNG {i} {sbAddress} CKI tok{i} u{i % 400}@example.com U{i} U messenger.msn.com 1\r\n".encode()
        for i in range(rngs)
    ])
    await deferLater(reactor, 1.0, lambda: None)
    final = await settle("after-rng")
    print(f"rng   {rngs} invitations: RSS {after['rss']:.1f} -> {final['rss']:.1f} MiB, "
          f"conversations {final['conversations']}, open {final['open']}")

    child.transport.signalProcess("TERM")  # type: ignore[union-attr]
    await port.stopListening()
    await network.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--unlimited", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.unlimited)
        return
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    react(lambda reactor: ensureDeferred(attack(reactor, args.scale, args.unlimited)))


if __name__ == "__main__":
    main()
