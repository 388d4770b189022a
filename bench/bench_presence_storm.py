"""
Presence storm: how long the real client takes to process a long burst of
presence commands after a real sign-in, against a bare L{LineReceiver}
that only frames and counts the same bytes, measured in the same run.

A L{LocalNetwork} runs in a child process (L{_localnet.NetworkProcess},
C{--star}: account 0 has C{--contacts} mutual contacts). The client signs
account 0 in with the public API (L{msnp.MSNClient}, an observer counting
its events), then asks the child, over the child's control port, to write a
pre-built stream to its NS connection (a scripted tail after the real
sign-in): C{--commands} commands in the mix of issue 13, about 36 % C{NLN},
46 % C{UBX}, 16 % C{FLN}, 1 % address-book-change C{NOT} and 1 % C{MSG},
for random contacts with fresh names, personal messages, MSN objects and
places, ended by a marker C{NLN} (a display name no other line uses). The
client is timed from the request to the observer's C{contactNameChanged}
for the marker.

The baseline asks the same child to write the same bytes to a plain
connection and times a L{LineReceiver} that counts lines and skips payloads
(raw mode) up to the last line. The same stream with every C{NOT} sent as an C{MSG} instead is
measured too, which separates the cost of the address-book refreshes from
the presence path. Runs alternate: both baselines, the client without
C{NOT}s, both baselines, the client on the full mix (last: its refreshes
outlive the session); before each run the network process must be idle.
C{--repeat} repeats the first three; medians are printed.

After the marker the client's process is watched until it is idle (under
10 % of a core for half a second and no address-book request in the same
window, at most C{--idle-timeout} seconds; C{--profile} writes cProfiles
of the client runs, sign-in and idle watch included): every C{NOT} queues an address
book refresh, and their number and the time they keep the process busy are
printed too (the child's HTTP request counter gives the downloads).

Usage: C{python bench/bench_presence_storm.py [--quick] [--contacts 1000]
[--commands 200000] [--repeat 1] [--idle-timeout 30] [--profile FILE]}
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from typing import Any, Optional
from urllib.parse import quote
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess, accountName, accountPassword  # noqa: E402

MARKER = "__storm_end__"
STATUSES = ("NLN", "BSY", "IDL", "BRB", "AWY", "PHN", "LUN")
WORDS = ("coffee", "at work", "gone fishing", "brb", "(L)", "100% <done>", "Café", "☕ time", "a&b", "zzz")
MIX = (("NLN", 36), ("UBX", 46), ("FLN", 16), ("NOT", 1), ("MSG", 1))


# -- the stream -------------------------------------------------------------------------


def _guid(rng: random.Random) -> str:
    h = "%032X" % rng.getrandbits(128)
    return f"{{{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}}}"


def _msnObject(rng: random.Random, email: str) -> str:
    if rng.random() < 0.3:
        return "0"
    sha = "%040x" % rng.getrandbits(160)
    text = (f'<msnobj Creator="{email}" Size="{rng.randint(1000, 30000)}" Type="3" Location="TFR{rng.randint(1, 99)}.dat" '
            f'Friendly="AAA=" SHA1D="{sha}"/>')
    return quote(text, safe="")


def _notPayload(owner: str, serial: int) -> bytes:
    body = escape(
        '<NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<Service>ABCHInternal</Service><CID>-5100000000000000001</CID>"
        f"<LastModifiedDate>2010-01-01T00:{serial // 60 % 60:02d}:{serial % 60:02d}.0000000-08:00</LastModifiedDate>"
        "<HasNewItem>false</HasNewItem></NotificationData>"
    )
    return (
        f'<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><TO pid="0x00000003:0xbe19c000" '
        f'name="{owner}"><VIA agent="messenger" /></TO><MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" />'
        f"<BODY>{body}</BODY></MSG></NOTIFICATION>"
    ).encode("utf-8")


_MAIL = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n"
    b"Mail-Data: <MD><E><I>3</I><IU>1</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
)


def buildStorm(owner: str, contacts: list[str], count: int, seed: int = 13,
               notifications: bool = True) -> tuple[bytes, dict[str, int]]:
    """
    The storm's bytes (C{count} commands, then the marker) and how many
    commands of each kind it holds. Deterministic for a seed; without
    C{notifications} each C{NOT} is an C{MSG} instead, all else the same.
    """
    rng = random.Random(seed)
    kinds: list[str] = []
    for kind, share in MIX:
        kinds += [kind] * (count * share // 100)
    kinds += ["NLN"] * (count - len(kinds))
    rng.shuffle(kinds)
    places: dict[str, list[str]] = {email: [_guid(rng)] for email in contacts}
    out: list[bytes] = []
    counts: dict[str, int] = {}
    for serial, kind in enumerate(kinds):
        if kind == "NOT" and not notifications:
            kind = "MSG"
        counts[kind] = counts.get(kind, 0) + 1
        email = rng.choice(contacts)
        if kind == "NLN":
            name = f"{email.split('@')[0]} {rng.choice(WORDS)} {rng.randint(0, 10**6)}"
            caps = f"{rng.choice((2789003324, 2788999228, 1985229100))}:{rng.choice((48, 32, 0))}"
            out.append(f"NLN {rng.choice(STATUSES)} 1:{email} {quote(name, safe='')} {caps} {_msnObject(rng, email)}\r\n".encode("utf-8"))
        elif kind == "UBX":
            if rng.random() < 0.2:
                places[email] = [_guid(rng) for _ in range(rng.randint(1, 3))]
            endpoints = "".join(
                f'<EndpointData id="{g}"><Capabilities>2789003324:48</Capabilities></EndpointData>' for g in places[email]
            )
            psm = f"{rng.choice(WORDS)} #{rng.randint(0, 10**6)}"
            media = "" if rng.random() < 0.7 else f"\\0Music\\01\\0{{0}} - {{1}}\\0Song {rng.randint(0, 999)}\\0Artist\\0\\0"
            payload = (
                f"<Data><PSM>{escape(psm)}</PSM><CurrentMedia>{escape(media)}</CurrentMedia>{endpoints}"
                f"<MachineGuid>&#x7B;{places[email][0][1:-1]}&#x7D;</MachineGuid><DDP></DDP><SignatureSound></SignatureSound>"
                "<Scene></Scene><ColorScheme>-3</ColorScheme></Data>"
            ).encode("utf-8")
            out.append(f"UBX 1:{email} {len(payload)}\r\n".encode("ascii") + payload)
        elif kind == "FLN":
            if rng.random() < 0.3:
                out.append(f"FLN 1:{email};{rng.choice(places[email])} 0:0\r\n".encode("ascii"))
            else:
                out.append(f"FLN 1:{email} 0:0\r\n".encode("ascii"))
        elif kind == "NOT":
            payload = _notPayload(owner, serial)
            out.append(f"NOT {len(payload)}\r\n".encode("ascii") + payload)
        else:
            out.append(f"MSG Hotmail Hotmail {len(_MAIL)}\r\n".encode("ascii") + _MAIL)
    out.append(f"NLN NLN 1:{contacts[0]} {MARKER} 2789003324:48 0\r\n".encode("ascii"))
    return b"".join(out), counts


# -- the baseline -----------------------------------------------------------------------


def baselineRun(reactor: Any, control: int, expected: int, storm: int) -> Any:
    """
    A L{Deferred} firing with the seconds a bare L{LineReceiver} takes to
    read the storm from the child's C{REPLAY}, C{expected} lines.
    """
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.protocols.basic import LineReceiver

    done: Deferred[float] = Deferred()

    class Counter(LineReceiver):
        MAX_LENGTH = 1 << 20
        lines = 0
        pending = 0
        started = 0.0

        def connectionMade(self) -> None:
            self.started = time.perf_counter()
            assert self.transport is not None
            self.transport.write(b"REPLAY %d\n" % storm)

        def lineReceived(self, line: bytes) -> None:
            self.lines += 1
            if line[:3] in (b"UBX", b"NOT", b"MSG"):
                size = int(line.rsplit(b" ", 1)[1])
                if size:
                    self.pending = size
                    self.setRawMode()
            elif self.lines == expected:
                assert MARKER.encode() in line, line
                done.callback(time.perf_counter() - self.started)
                assert self.transport is not None
                self.transport.loseConnection()

        def rawDataReceived(self, data: bytes) -> None:
            if len(data) < self.pending:
                self.pending -= len(data)
                return
            rest, self.pending = data[self.pending:], 0
            self.setLineMode(rest)

    connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", control), Counter())
    return done


# -- the client -------------------------------------------------------------------------


def _observer(done: Any) -> Any:
    from msnp.handlers import ObserverBase

    class Counting(ObserverBase):
        def __init__(self) -> None:
            self.events: dict[str, int] = {}
            self.markerAt: Optional[float] = None

        def _count(self, name: str) -> None:
            self.events[name] = self.events.get(name, 0) + 1

        def contactStatusChanged(self, session: Any, contact: Any, status: Any) -> None:
            self._count("contactStatusChanged")

        def contactNameChanged(self, session: Any, contact: Any, displayName: str) -> None:
            self._count("contactNameChanged")
            if displayName == MARKER and self.markerAt is None:
                self.markerAt = time.perf_counter()
                done.callback(self.markerAt)

        def contactPersonalMessageChanged(self, session: Any, contact: Any, personalMessage: str) -> None:
            self._count("contactPersonalMessageChanged")

        def contactListChanged(self, session: Any) -> None:
            self._count("contactListChanged")

        def profileReceived(self, session: Any, profile: dict[str, str]) -> None:
            self._count("profileReceived")

    return Counting()


def _control(control: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", control)) as s:
        s.sendall(line)
        if line.startswith(b"COUNT"):
            return s.makefile("rb").readline()
    return b""


def abchRequests(control: int) -> int:
    return int(json.loads(_control(control, b"COUNT\n"))["abch"])


def cpuSeconds(pid: int) -> float:
    """
    User + system CPU time of process C{pid} (Linux C{/proc}).
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serverIdle(reactor: Any, pid: int, limit: float = 60.0) -> None:
    """
    Wait until the network process uses under 5 % of a core for half a
    second (it may still be answering a finished run's refreshes).
    """
    from twisted.internet.task import deferLater

    deadline = time.perf_counter() + limit
    before = cpuSeconds(pid)
    while time.perf_counter() < deadline:
        await deferLater(reactor, 0.5, lambda: None)
        now = cpuSeconds(pid)
        if now - before < 0.025:
            return
        before = now


async def clientRun(reactor: Any, endpoints: Any, control: int, idleTimeout: float, storm: int) -> dict[str, Any]:
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    from msnp import MSNClient

    marker: Deferred[float] = Deferred()
    observer = _observer(marker)
    session = await MSNClient(accountName(0), accountPassword(0), endpoints, observer=observer, reactor=reactor,
                              loginTimeout=300.0, requestTimeout=300.0).login()
    before = abchRequests(control)
    observer.events.clear()
    started = time.perf_counter()
    _control(control, f"STORM {accountName(0)} {storm}\n".encode("ascii"))
    markerAt = await marker
    elapsed = markerAt - started
    atMarker = dict(observer.events)
    abchAtMarker = abchRequests(control) - before

    # Idle: under 10 % CPU over 0.5 s and no ABCH request in that window.
    window = 0.5
    idleAfter: Optional[float] = None
    cpu, requests = time.process_time(), abchRequests(control)
    while time.perf_counter() - markerAt < idleTimeout:
        await deferLater(reactor, window, lambda: None)
        nowCpu, nowRequests = time.process_time(), abchRequests(control)
        if nowCpu - cpu < 0.1 * window and nowRequests == requests:
            idleAfter = time.perf_counter() - markerAt - window
            break
        cpu, requests = nowCpu, nowRequests
    result = {
        "seconds": elapsed, "eventsAtMarker": atMarker, "abchAtMarker": abchAtMarker,
        "abchAtEnd": abchRequests(control) - before, "events": dict(observer.events),
        "idleAfter": idleAfter, "watched": time.perf_counter() - markerAt,
    }
    try:
        await session.logout()
    except Exception:
        pass
    return result


def _quietLogs() -> None:
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.error)])],
        redirectStandardIO=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 contacts, 20,000 commands, 15 s idle watch")
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1, help="client runs on the stream without NOTs")
    parser.add_argument("--idle-timeout", type=float, default=30.0)
    parser.add_argument("--profile", help="write cProfiles of the client runs to FILE-full.prof and FILE-nonot.prof")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.commands, args.idle_timeout = 200, 20_000, 15.0

    contacts = [accountName(i) for i in range(1, args.contacts + 1)]
    storm, counts = buildStorm(accountName(0), contacts, args.commands)
    quiet, _ = buildStorm(accountName(0), contacts, args.commands, notifications=False)
    files = []
    for data in (storm, quiet):
        with tempfile.NamedTemporaryFile(prefix="storm-", delete=False) as f:
            f.write(data)
        files.append(f.name)
    _quietLogs()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    network = NetworkProcess.start(accounts=args.contacts + 1, star=args.contacts, storms=tuple(files))
    assert network.control is not None
    control = network.control
    baseline: dict[int, list[float]] = {0: [], 1: []}
    client: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    outcome: list[Any] = []
    profilers: dict[int, Any] = {}
    if args.profile:
        import cProfile

        profilers = {0: cProfile.Profile(), 1: cProfile.Profile()}

    async def run() -> None:
        expected = args.commands + 1
        # Baselines of both streams, then the client on the stream without
        # NOTs, both baselines again, then the client on the full mix last:
        # the refreshes it leaves queued outlive its session and keep the
        # network busy, so no baseline runs after it.
        for _ in range(args.repeat):
            for index in (0, 1):
                await serverIdle(reactor, network.pid)
                baseline[index].append(await baselineRun(reactor, control, expected, index))
            await serverIdle(reactor, network.pid)
            if profilers:
                profilers[1].enable()
            client[1].append(await clientRun(reactor, network.endpoints, control, args.idle_timeout, 1))
            if profilers:
                profilers[1].disable()
        for index in (0, 1):
            await serverIdle(reactor, network.pid)
            baseline[index].append(await baselineRun(reactor, control, expected, index))
        await serverIdle(reactor, network.pid)
        if profilers:
            profilers[0].enable()
        client[0].append(await clientRun(reactor, network.endpoints, control, args.idle_timeout, 0))
        if profilers:
            profilers[0].disable()

    def finished(result: Any) -> None:
        outcome.append(result)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(finished))  # type: ignore[attr-defined]
    try:
        reactor.run()  # type: ignore[attr-defined]
    finally:
        network.stop()
        for name in files:
            os.unlink(name)
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    for index, suffix in ((0, "full"), (1, "nonot")):
        if index in profilers:
            profilers[index].dump_stats(f"{args.profile}-{suffix}.prof")

    mix = ", ".join(f"{counts.get(k, 0)} {k}" for k, _ in MIX)
    print(f"Presence storm after a real sign-in with {args.contacts} contacts: {args.commands} commands "
          f"({mix}; {len(storm) / 2**20:.1f} MiB), LocalNetwork in a child process, Python {sys.version.split()[0]}")
    print()
    print(f"{'stream':<22}{'msnp MSNClient':>16}{'bare LineReceiver':>19}{'ratio':>8}{'msnp cmd/s':>12}")
    for index, label in ((0, "full mix"), (1, "NOTs sent as MSGs")):
        subject = statistics.median(r["seconds"] for r in client[index])
        base = statistics.median(baseline[index])
        print(f"{label:<22}{subject:>15.2f}s{base:>18.2f}s{subject / base:>7.1f}x{args.commands / subject:>12.0f}")
    print()
    for index, label in ((0, "full mix"), (1, "NOTs sent as MSGs")):
        print(f"runs, {label}: client {[round(r['seconds'], 2) for r in client[index]]}, "
              f"baseline {[round(b, 2) for b in baseline[index]]}")
    last = client[0][-1]
    print(f"observer events up to the marker (full mix): {last['eventsAtMarker']}")
    refreshes = last["events"].get("contactListChanged", 0)
    print(f"address-book NOTs: {counts.get('NOT', 0)}; ABCH requests by the marker: {last['abchAtMarker']}, "
          f"{last['watched']:.1f}s after it: {last['abchAtEnd']} (refreshes finished: {refreshes})")
    for index, label in ((0, "full mix"), (1, "NOTs sent as MSGs")):
        r = client[index][-1]
        if r["idleAfter"] is None:
            print(f"idle after the storm ({label}): NOT idle {r['watched']:.0f}s after the marker")
        else:
            print(f"idle after the storm ({label}): {r['idleAfter']:.1f}s after the marker")


if __name__ == "__main__":
    main()
