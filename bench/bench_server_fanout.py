"""
Server cost of one presence change with 200 and with 1,000 signed-in
sessions: the goal is a cost independent of how many are online.

A L{LocalNetwork} runs in a child process (L{_localnet.NetworkProcess},
1,001 accounts, each with its 10 following accounts as mutual contacts, no
C{CHL}). Raw blocking-socket clients sign in (NS C{VER}/C{CVR}/C{USR},
the real RST2 request, C{USR SSO S}, C{BLP}, an initial C{ADL} of their 10
contacts, C{CHG NLN}); they never read again, their few notifications stay
in the socket buffers. One of them, the I{changer}, then sends
C{--changes} status changes (C{CHG} alternating C{AWY}/C{NLN}) and as many
personal-message changes (C{UUX}), one at a time, each awaited. Only the
changer's watchers must hear of each change, whatever the number online.

The changer is C{user10}: its contacts are the 10 accounts before it and
the 10 after it in the ring (the mutual contacts of the 10 before it
include it), so its 20 watchers are online in every phase. (Until
2026-12-03 the changer was C{user0}, whose 10 predecessors are the last
accounts of the ring: it had 10 watchers online with 200 signed in and 20
with 1,000, which doubled the per-watcher part of the cost in the 1,000
figure and so inflated the ratio.)

What is measured is the child's CPU time (C{/proc/<pid>/stat}, user +
system) over the changes, divided by their number, with 200 online, then
1,000, then 200 again (the extra 800 signed out); the ratio is the 1,000
figure over the median of the two 200 figures.

Usage: C{python bench/bench_server_fanout.py [--quick] [--changes 400]}
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess, accountName, accountPassword  # noqa: E402
from bench_login import BlockingConnection, _identify  # noqa: E402

from msnp.contacts import Status, normalizeGuid  # noqa: E402
from msnp.endpoints import ClientIdentity, newMachineGuid  # noqa: E402
from msnp.mbi import mbiResponse  # noqa: E402
from msnp.sso import MBI_KEY_OLD, buildRST2Request, parseSSOResponse  # noqa: E402

CONTACTS = 10
#: The changer: its 2 * CONTACTS contacts (before and after it) are online in every phase.
CHANGER = CONTACTS
WATCHERS = 2 * CONTACTS
TICKS = os.sysconf("SC_CLK_TCK")


def cpuSeconds(pid: int) -> float:
    """
    User + system CPU time of process C{pid}.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rawSignIn(nsAddress: tuple[str, int], ssoURL: str, index: int, accounts: int) -> BlockingConnection:
    """
    Sign account C{index} in on a raw socket, straight at the NS.
    """
    account = accountName(index)
    identity = ClientIdentity(machineGuid=newMachineGuid())
    ns = BlockingConnection(nsAddress[0], nsAddress[1], identity)
    challenge = _identify(ns, account)
    policy, nonce = challenge.arg(2), challenge.arg(3)
    sso = urlsplit(ssoURL)
    web = http.client.HTTPConnection(sso.hostname or "127.0.0.1", sso.port)
    now = time.time()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 300))
    web.request("POST", sso.path, body=buildRST2Request(account, accountPassword(index), policy or MBI_KEY_OLD,
                                                       str(int(now)), created, expires),
                headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    tokens = parseSSOResponse(web.getresponse().read())
    web.close()
    ns.reply(ns.send("USR", "SSO", "S", tokens.messengerTicket, mbiResponse(tokens.messengerSecret, nonce),
                     normalizeGuid(identity.machineGuid)), "USR")
    ns.reply(ns.send("BLP", "AL"), "BLP")
    names = "".join(f'<c n="user{(index + step) % accounts}" l="3" t="1" />' for step in range(1, CONTACTS + 1))
    ns.reply(ns.send("ADL", payload=f'<ml l="1"><d n="example.com">{names}</d></ml>'.encode("ascii")), "ADL")
    ns.reply(ns.send("CHG", Status.ONLINE.code, identity.capabilities, "0"), "CHG")
    return ns


def changes(network: NetworkProcess, changer: BlockingConnection, count: int) -> dict[str, float]:
    """
    Server CPU seconds per C{CHG} and per C{UUX}, C{count} of each.
    """
    result = {}
    guid = normalizeGuid(changer.identity.machineGuid)[1:-1]
    for kind in ("CHG", "UUX"):
        started = cpuSeconds(network.pid)
        wall = time.perf_counter()
        for i in range(count):
            if kind == "CHG":
                changer.reply(changer.send("CHG", "AWY" if i % 2 == 0 else "NLN", changer.identity.capabilities, "0"), "CHG")
            else:
                payload = (f"<Data><PSM>change {i}</PSM><CurrentMedia></CurrentMedia>"
                           f"<MachineGuid>&#x7B;{guid}&#x7D;</MachineGuid></Data>").encode("ascii")
                changer.reply(changer.send("UUX", payload=payload), "UUX")
        result[kind] = (cpuSeconds(network.pid) - started) / count
        result[kind + " wall"] = (time.perf_counter() - wall) / count
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 changes of each kind")
    parser.add_argument("--changes", type=int, default=400, help="status changes and PSM changes, each")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1000)
    args = parser.parse_args()
    count = 100 if args.quick else args.changes

    accounts = args.large + 1
    network = NetworkProcess.start(accounts=accounts, contacts=CONTACTS, sendChallenge=False)
    rows: list[tuple[int, dict[str, float]]] = []
    try:
        probe = BlockingConnection(*_dispatch(network), ClientIdentity())
        xfr = _identify(probe, accountName(0))
        probe.close()
        host, port = xfr.arg(1).rsplit(":", 1)
        nsAddress = (host, int(port))
        started = time.perf_counter()
        online = [rawSignIn(nsAddress, network.endpoints.sso, i, accounts) for i in range(args.small)]
        rows.append((len(online), changes(network, online[CHANGER], count)))
        online += [rawSignIn(nsAddress, network.endpoints.sso, i, accounts) for i in range(args.small, args.large)]
        signInSeconds = time.perf_counter() - started
        rows.append((len(online), changes(network, online[CHANGER], count)))
        for ns in online[args.small:]:
            ns.close()
        del online[args.small:]
        # Wait until the server has signed the 800 out (its CPU goes quiet).
        before = cpuSeconds(network.pid)
        while True:
            time.sleep(0.5)
            now = cpuSeconds(network.pid)
            if now - before < 0.02:
                break
            before = now
        rows.append((len(online), changes(network, online[CHANGER], count)))
        for ns in online:
            ns.close()
    finally:
        network.stop()

    print(f"Server CPU per presence change, {count} CHG and {count} UUX from one session with {WATCHERS} watchers, "
          f"LocalNetwork in a child process, Python {sys.version.split()[0]} ({args.large} raw sign-ins took "
          f"{signInSeconds:.1f}s)")
    print()
    print(f"{'online':>7}{'CPU/CHG':>12}{'CPU/UUX':>12}{'wall/CHG':>12}{'wall/UUX':>12}")
    for n, r in rows:
        print(f"{n:>7}{r['CHG'] * 1e3:>10.2f}ms{r['UUX'] * 1e3:>10.2f}ms{r['CHG wall'] * 1e3:>10.2f}ms{r['UUX wall'] * 1e3:>10.2f}ms")
    small = [r for n, r in rows if n == args.small]
    large = [r for n, r in rows if n == args.large][0]
    print()
    for kind in ("CHG", "UUX"):
        base = statistics.median(r[kind] for r in small)
        print(f"ratio {kind} cost, {args.large} online / {args.small} online: {large[kind] / base:.2f}x")


def _dispatch(network: NetworkProcess) -> tuple[str, int]:
    _, host, port = network.endpoints.dispatch.split(":")
    return host, int(port)


if __name__ == "__main__":
    main()
