# -*- test-case-name: test.test_probe -*-
"""
C{python -m msnp probe}: which reference behaviours an MSNP18 server shows.

A server author (or our own CI, against C{twistd msnp-server}) points it
at a dispatch address, an SSO URL and one account; it signs in the way
WLM 2009 does, line by line, and prints one line per behaviour the
reference (C{MSNP18.md}) describes as a choice or as commonly missing:

  - redirect: whether C{USR SSO I} is answered C{XFR NS} (the real
    service) or directly (most emulators);
  - sign-in: C{USR OK}, and what arrives before the first C{CHG};
  - challenge: whether a C{CHL} came, and whether our C{QRY} was taken;
  - presence: C{ILN} (contacts online when signing in, reference 4.7)
    or C{NLN} for them, if any contact was online;
  - URL, PNG: answered or not;
  - switchboard: C{CAL} of one's own account (C{RINGING} or an error),
    and what each ack mode (C{U N A D}) gives for a message nobody
    else receives;
  - errors: the answer to an unknown command (a numeric error, silence
    or a disconnect).

It is a plain line client on purpose (no L{msnp.client} logic that could
paper over a server's difference) and imports nothing of L{msnp.server}.
The password is read from C{MSNP_PROBE_PASSWORD} or one line of standard
input, never from the command line, and never printed. Exit status: 0
when the sign-in worked (whatever the behaviours), 1 when it did not, 2
for bad usage.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python import usage
from twisted.python.failure import Failure

from msnp.challenge import WLM2009_PRODUCT_ID, computeChallengeResponse
from msnp.mbi import mbiResponse
from msnp.namespaces import MESSENGER_CLEAR
from msnp.sso import buildRST2Request, parseSSOResponse
from msnp.wire import Command, Direction, ParsedLine, parseIncoming

CVR = "CVR {trid} 0x0409 winnt 6.1.0 i386 MSNMSGR 14.0.8089.0726 msmsgs {email}"
CAPS = "2789003324:48"
TEXT = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nmsnp probe"


class ProbeError(Exception):
    """
    The probe could not go on (the sign-in failed, the server went away).
    """


class LineClient(Protocol):
    """
    Queues the server's commands (payloads read by length) for L{next}.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.pending: Optional[ParsedLine] = None
        self.queue: list[Command] = []
        self.waiting: Optional[Deferred[Optional[Command]]] = None
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.pending is not None:
                size = self.pending.payloadLength or 0
                if len(self.buffer) < size:
                    return
                payload, self.buffer = self.buffer[:size], self.buffer[size:]
                self._got(self.pending.withPayload(payload))
                self.pending = None
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            parsed = parseIncoming(line, Direction.FROM_SERVER)
            if isinstance(parsed, ParsedLine):
                self.pending = parsed
            else:
                self._got(parsed)

    def _got(self, command: Command) -> None:
        self.queue.append(command)
        self._wake()

    def _wake(self) -> None:
        if self.waiting is not None and (self.queue or self.closed):
            waiting, self.waiting = self.waiting, None
            waiting.callback(self.queue.pop(0) if self.queue else None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self._wake()

    def send(self, line: str | bytes) -> None:
        assert self.transport is not None
        self.transport.write(line if isinstance(line, bytes) else line.encode("utf-8") + b"\r\n")

    def next(self, reactor: Any, timeout: float) -> "Deferred[Optional[Command]]":
        """
        The next command, or L{None} when the connection closed or nothing
        came within C{timeout} seconds.
        """
        d: Deferred[Optional[Command]] = Deferred()
        self.waiting = d
        self._wake()
        if not d.called:
            d.addTimeout(timeout, reactor, onTimeoutCancel=lambda *_: None)
        return d


@dataclass
class Report:
    """
    What the probe saw: C{(behaviour, finding)} lines in order.
    """

    lines: list[tuple[str, str]] = field(default_factory=list)
    signedIn: bool = False

    def add(self, behaviour: str, finding: str) -> None:
        self.lines.append((behaviour, finding))

    def get(self, behaviour: str) -> Optional[str]:
        return next((f for b, f in self.lines if b == behaviour), None)

    def render(self) -> str:
        width = max((len(b) for b, _ in self.lines), default=0)
        return "".join(f"{b.ljust(width)}  {f}\n" for b, f in self.lines)


def _describe(command: Optional[Command]) -> str:
    if command is None:
        return "nothing (silence or closed)"
    if command.isError:
        return f"error {command.name}"
    return " ".join([command.name, *command.arguments[:2]])


class Probe:
    """
    One run: L{run} fills and returns a L{Report}.
    """

    def __init__(self, reactor: Any, dispatch: str, ssoURL: str, email: str, password: str,
                 timeout: float = 5.0, http: Any = None) -> None:
        self.reactor = reactor
        self.dispatch = dispatch
        self.ssoURL = ssoURL
        self.email = email
        self._password = password
        self.timeout = timeout
        self.http = http
        self.guid = "{" + str(uuid.uuid4()).upper() + "}"
        self.report = Report()
        self.trid = 0
        self.challenged = False

    def __repr__(self) -> str:
        return f"<Probe {self.dispatch} {self.email}>"

    def _trid(self) -> int:
        self.trid += 1
        return self.trid

    async def _connect(self, address: str) -> LineClient:
        client = LineClient()
        await connectProtocol(clientFromString(self.reactor, address), client)
        return client

    async def _next(self, client: LineClient) -> Optional[Command]:
        return await client.next(self.reactor, self.timeout)

    async def _until(self, client: LineClient, trid: int) -> tuple[Optional[Command], list[Command]]:
        """
        Read until the answer with C{trid}; return it and what came before.
        """
        before: list[Command] = []
        while True:
            command = await self._next(client)
            if command is None or command.trid == trid and command.name != "CHL":
                return command, before
            if command.name == "CHL" and command.arguments:
                self._answerChallenge(client, command)
            before.append(command)

    async def _pingUntilQNG(self, client: LineClient, seen: list[Command], answerChallenges: bool) -> None:
        """
        Send C{PNG} and collect into C{seen} every command up to its C{QNG}
        (or the end of the connection), answering C{CHL}s on the way if
        C{answerChallenges}.
        """
        client.send(f"PNG {self._trid()}")
        while True:
            command = await self._next(client)
            if command is None:
                break
            if answerChallenges and command.name == "CHL" and command.arguments:
                self._answerChallenge(client, command)
            seen.append(command)
            if command.name == "QNG":
                break

    def _answerChallenge(self, client: LineClient, command: Command) -> None:
        if self.challenged:
            return
        self.challenged = True
        answer = computeChallengeResponse(command.arguments[0])
        client.send(f"QRY {self._trid()} {WLM2009_PRODUCT_ID} 32\r\n".encode() + answer.encode())

    async def _preamble(self, client: LineClient) -> Optional[Command]:
        trid = self._trid()
        client.send(f"VER {trid} MSNP18 MSNP17 CVR0")
        ver, _ = await self._until(client, trid)
        if ver is None or ver.isError:
            raise ProbeError(f"VER answered {_describe(ver)}")
        if self.report.get("dialect") is None:
            self.report.add("dialect", " ".join(ver.arguments))
        trid = self._trid()
        client.send(CVR.format(trid=trid, email=self.email))
        await self._until(client, trid)
        trid = self._trid()
        client.send(f"USR {trid} SSO I {self.email}")
        answer, _ = await self._until(client, trid)
        return answer

    async def run(self) -> Report:
        """
        Probe everything; a step that fails ends the run with what was
        seen so far (the failure is the last line).
        """
        try:
            await self._run()
        except (ProbeError, DeferredTimeout, ConnectionError, OSError) as e:
            self.report.add("stopped", str(e) or type(e).__name__)
        return self.report

    async def _run(self) -> None:
        client = await self._connect(self.dispatch)
        answer = await self._preamble(client)
        if answer is not None and answer.name == "XFR":
            target = answer.arguments[1] if len(answer.arguments) > 1 else ""
            self.report.add("redirect", f"yes: XFR NS to {target}")
            if client.transport is not None:
                client.transport.loseConnection()
            host, _, port = target.rpartition(":")
            client = await self._connect(f"tcp:{host}:{port}")
            answer = await self._preamble(client)
        else:
            self.report.add("redirect", "no: USR SSO I answered on the first connection")
        if answer is None or answer.name != "USR" or len(answer.arguments) < 4:
            raise ProbeError(f"USR SSO I answered {_describe(answer)}")
        policy, nonce = answer.arguments[2], answer.arguments[3]
        ticket, secret = await self._tokens(policy)
        trid = self._trid()
        client.send(f"USR {trid} SSO S {ticket} {mbiResponse(secret, nonce)} {self.guid}")
        ok, _ = await self._until(client, trid)
        if ok is None or ok.isError or not ok.arguments or ok.arguments[0] != "OK":
            raise ProbeError(f"USR SSO S answered {_describe(ok)}")
        self.report.signedIn = True
        self.report.add("sign-in", "USR OK")
        await self._session(client, [])
        await self._switchboard(client)
        await self._errors(client)

    async def _tokens(self, policy: str) -> tuple[str, str]:
        if self.http is None:
            import treq

            self.http = treq
        now = time.time()
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        body = buildRST2Request(self.email, self._password, policy, "1", stamp(now), stamp(now + 300))
        response = await self.http.post(self.ssoURL, data=body, headers={"Content-Type": ["application/soap+xml"]})
        content = await response.content()
        try:
            result = parseSSOResponse(content)
        except Exception as e:
            raise ProbeError(f"SSO refused the sign-in ({type(e).__name__})") from None
        token = result.tokens.get(MESSENGER_CLEAR)
        if token is None or not token.binarySecret:
            raise ProbeError("SSO answered without a messengerclear token")
        self.report.add("sso", f"HTTP {response.code}, {len(result.tokens)} tokens")
        return token.ticket, token.binarySecret

    async def _session(self, client: LineClient, seen: list[Command]) -> None:
        trid = self._trid()
        client.send(f"BLP {trid} AL")
        _, before = await self._until(client, trid)
        seen.extend(before)
        trid = self._trid()
        client.send(f"CHG {trid} NLN {CAPS} 0")
        chg, before = await self._until(client, trid)
        seen.extend(before)
        self.report.add("status", _describe(chg))
        # Presence (and a late challenge) come after CHG; PNG marks the end.
        await self._pingUntilQNG(client, seen, answerChallenges=True)
        if self.challenged:
            # Let the QRY answer (or the server's refusal) arrive.
            await self._pingUntilQNG(client, seen, answerChallenges=False)
        names = [c.name for c in seen]
        if not self.challenged:
            self.report.add("challenge", "no CHL after sign-in")
        else:
            qry = "QRY answered" if "QRY" in names else "QRY not answered"
            self.report.add("challenge", f"CHL sent; {qry}")
        presence = [n for n in names if n in ("ILN", "NLN")]
        self.report.add("presence", f"{', '.join(sorted(set(presence)))} ({len(presence)} lines)"
                        if presence else "no contact online at sign-in")
        self.report.add("keep-alive", "QNG" if "QNG" in names else "no QNG")
        trid = self._trid()
        client.send(f"URL {trid} INBOX")
        url, _ = await self._until(client, trid)
        self.report.add("URL", " ".join(url.arguments[:1] + url.arguments[2:3]) if url and not url.isError
                        else _describe(url))

    async def _switchboard(self, client: LineClient) -> None:
        trid = self._trid()
        client.send(f"XFR {trid} SB")
        xfr, _ = await self._until(client, trid)
        if xfr is None or xfr.isError or len(xfr.arguments) < 4:
            self.report.add("switchboard", f"XFR SB answered {_describe(xfr)}")
            return
        host, _, port = xfr.arguments[1].rpartition(":")
        sb = await self._connect(f"tcp:{host}:{port}")
        sb.send(f"USR 1 {self.email};{self.guid} {xfr.arguments[3]}")
        usr, _ = await self._until(sb, 1)
        if usr is None or usr.isError:
            self.report.add("switchboard", f"USR answered {_describe(usr)}")
            return
        sb.send(f"CAL 2 {self.email}")
        cal, _ = await self._until(sb, 2)
        self.report.add("CAL self", _describe(cal))
        modes = []
        for index, mode in enumerate("UNAD", start=3):
            sb.send(f"MSG {index} {mode} {len(TEXT)}\r\n".encode() + TEXT)
            sb.send(f"CAL {index + 10} {self.email}")
            answer: Optional[Command] = None
            while True:
                command = await self._next(sb)
                if command is None or command.trid == index + 10:
                    break
                if command.trid == index:
                    answer = command
            modes.append(f"{mode}={'none' if answer is None else answer.name}")
            if sb.closed:
                modes.append("(closed)")
                break
        self.report.add("ack modes, alone", " ".join(modes))
        if sb.transport is not None:
            sb.send("OUT")
            sb.transport.loseConnection()

    async def _errors(self, client: LineClient) -> None:
        trid = self._trid()
        client.send(f"ZZZ {trid}")
        client.send(f"PNG {self._trid()}")
        answer: Optional[Command] = None
        while True:
            command = await self._next(client)
            if command is None or command.name == "QNG":
                break
            if command.trid == trid:
                answer = command
                break
        if answer is None and client.closed:
            self.report.add("unknown command", "disconnected")
        else:
            self.report.add("unknown command", _describe(answer))
        if client.transport is not None and not client.closed:
            client.send("OUT")
            client.transport.loseConnection()


class ProbeOptions(usage.Options):
    """
    C{python -m msnp probe DISPATCH --sso URL --account EMAIL}
    """

    synopsis = "python -m msnp probe tcp:HOST:PORT --sso URL --account EMAIL"
    optParameters = [
        ["sso", None, None, "the RST2.srf URL of the server's Passport service"],
        ["account", None, None, "the account to sign in with (password: $MSNP_PROBE_PASSWORD or stdin)"],
        ["timeout", None, "5", "seconds to wait for each answer", float],
    ]

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        # usage.Options stops at the first positional argument; the address
        # comes first in this command's synopsis.
        argv = list(sys.argv[1:] if options is None else options)
        if argv and not argv[0].startswith("-"):
            argv = argv[1:] + ["--", argv[0]]
        super().parseOptions(argv)

    def parseArgs(self, dispatch: str) -> None:  # type: ignore[override]
        self["dispatch"] = dispatch

    def postOptions(self) -> None:
        if not self["sso"] or not self["account"]:
            raise usage.UsageError("--sso and --account are required")


def readPassword(environ: Optional[Mapping[str, str]] = None) -> str:
    """
    The password from C{MSNP_PROBE_PASSWORD}, else one line of stdin.
    """
    variables: Mapping[str, str] = os.environ if environ is None else environ
    if "MSNP_PROBE_PASSWORD" in variables:
        return variables["MSNP_PROBE_PASSWORD"]
    return sys.stdin.readline().rstrip("\r\n")


async def probe(reactor: Any, options: ProbeOptions, password: str) -> Report:
    """
    Run the probe, print its report; L{Report.signedIn} says if it worked.
    """
    report = await Probe(reactor, options["dispatch"], options["sso"], options["account"], password,
                         timeout=options["timeout"]).run()
    sys.stdout.write(report.render())
    sys.stdout.flush()
    return report


def main(argv: list[str]) -> int:
    """
    The C{probe} command: parse, run, exit status.
    """
    from twisted.internet.task import react

    options = ProbeOptions()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        sys.stderr.write(f"python -m msnp probe: {e}\n{options}")
        return 2
    password = readPassword()

    async def run(reactor: Any) -> None:
        report = await probe(reactor, options, password)
        if not report.signedIn:
            raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
    return 0
