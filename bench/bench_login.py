"""
Sign-in wall time: L{msnp.client.MSNClient.login} against a bare
blocking-socket client doing the same steps, both against the same
L{LocalNetwork} on loopback.

The network runs in a child process (L{_localnet.NetworkProcess}) so that
both clients, which run in this process, see the same servers and neither
pays for them. Runs alternate between the two clients.

The baseline is what a minimal hand-written client would do, one blocking
socket at a time: DS C{VER}/C{CVR}/C{USR SSO I} -> C{XFR NS}; NS
C{VER}/C{CVR}/C{USR SSO I} -> C{USR SSO S} challenge; an RST2 POST with
C{http.client}; the MBI response (L{msnp.sso.mbiResponse});
C{USR SSO S} -> C{USR OK}; the two ABCH POSTs (one after the other, on one
keep-alive connection); then C{BLP}, C{ADL}, C{PRP MFN}, the two C{UUX} and
C{CHG}, as the msnp client sends them, answering C{CHL} when it comes. It
reuses msnp's pure codecs (the RST2 envelope and its parser, the SOAP
envelope and response parsers, the contact-list merge, the C{ADL} builder,
the command serializer and line parser), so the difference measured is the
cost of the Twisted machinery, Deferreds, observers and state keeping, not
of parsing.

The msnp client is timed from C{login()} to the L{Session}; the baseline
from the first connect to the C{CHG} reply. Sign-out is not timed.

Usage: C{python bench/bench_login.py [--runs 30] [--contacts 10]}
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import sys
import time
from typing import Any, Optional
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess, accountName, accountPassword  # noqa: E402

from msnp.challenge import computeChallengeResponse  # noqa: E402
from msnp.contacts import Status, normalizeGuid  # noqa: E402
from msnp.listpayload import buildListPayloads  # noqa: E402
from msnp.endpoints import ClientIdentity, newMachineGuid  # noqa: E402
from msnp.soap.addressbook import parseAddressBook  # noqa: E402
from msnp.namespaces import ACTION_PREFIX, AB_NS  # noqa: E402
from msnp.soap.envelope import buildEnvelope  # noqa: E402
from msnp.soap.sharing import parseMembership  # noqa: E402
from msnp.soap.sync import buildContactList, initialListEntries  # noqa: E402
from msnp.mbi import mbiResponse  # noqa: E402
from msnp.namespaces import MBI_KEY_OLD  # noqa: E402
from msnp.sso import buildRST2Request, parseSSOResponse  # noqa: E402
from msnp.wire import Command, Direction, encodeParameter, parseLine, serializeCommand  # noqa: E402
from msnp.xmlsafe import child, escapeText, parseXML  # noqa: E402

# -- the blocking baseline ---------------------------------------------------------


class BlockingConnection:
    """
    One MSNP connection on a blocking socket.
    """

    def __init__(self, host: str, port: int, identity: ClientIdentity) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.trid = 0
        self.identity = identity

    def send(self, name: str, *args: str, payload: Optional[bytes] = None) -> int:
        self.trid += 1
        self.sock.sendall(serializeCommand(name, self.trid, args, payload))
        return self.trid

    def read(self) -> Command:
        line = self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        parsed = parseLine(line.rstrip(b"\r\n"), Direction.FROM_SERVER)
        payload = None
        if parsed.payloadLength is not None:
            payload = self.reader.read(parsed.payloadLength) if parsed.payloadLength else b""
        return parsed.withPayload(payload)

    def reply(self, trid: int, *names: str) -> Command:
        """
        Read until the reply to C{trid}, answering C{CHL} on the way.
        """
        while True:
            command = self.read()
            if command.name == "CHL":
                answer = computeChallengeResponse(command.arg(0), self.identity.productId, self.identity.productKey)
                self.send("QRY", self.identity.productId, payload=answer.encode("ascii"))
                continue
            if command.trid == trid:
                if command.isError:
                    raise RuntimeError(f"server error {command.name} for trid {trid}")
                if not names or command.name in names:
                    return command

    def close(self) -> None:
        try:
            self.sock.sendall(b"OUT\r\n")
        except OSError:
            pass
        self.reader.close()
        self.sock.close()


def _identify(conn: BlockingConnection, account: str) -> Command:
    i = conn.identity
    trid = conn.send("VER", *i.protocolVersions, "CVR0")
    conn.reply(trid, "VER")
    cvr = conn.send("CVR", i.localeId, i.osType, i.osVersion, i.architecture, i.clientName, i.clientVersion, i.brand, account)
    usr = conn.send("USR", "SSO", "I", account)
    conn.reply(cvr, "CVR")
    return conn.reply(usr, "USR", "XFR")


def _soap(http: http.client.HTTPConnection, path: str, action: str, body: str, ticket: str) -> Any:
    envelope = buildEnvelope(body, ticket, "Initial")
    http.request("POST", path, body=envelope, headers={
        "SOAPAction": f'"{ACTION_PREFIX}{action}"', "Content-Type": "text/xml; charset=utf-8",
    })
    response = http.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{action}: HTTP {response.status}")
    soapBody = child(parseXML(data), "Body")
    assert soapBody is not None
    return soapBody[0]


_FIND_MEMBERSHIP = (
    f'<FindMembership xmlns="{AB_NS}"><serviceFilter><Types>'
    + "".join(f"<ServiceType>{t}</ServiceType>" for t in ("Messenger", "Invitation", "SocialNetwork", "Space", "Profile"))
    + "</Types></serviceFilter></FindMembership>"
)
_FIND_CONTACTS = (
    f'<ABFindContactsPaged xmlns="{AB_NS}"><filterOptions><DeltasOnly>false</DeltasOnly>'
    "<LastChanged>0001-01-01T00:00:00.0000000-08:00</LastChanged>"
    "<ContactFilter><IncludeHiddenContacts>true</IncludeHiddenContacts></ContactFilter>"
    "</filterOptions><abView>MessengerClient8</abView>"
    "<extendedContent>AB AllGroups CircleResult</extendedContent></ABFindContactsPaged>"
)


def blockingLogin(endpoints: Any, account: str, password: str) -> BlockingConnection:
    """
    Sign in with blocking sockets; returns the open NS connection.
    """
    identity = ClientIdentity(machineGuid=newMachineGuid())
    _, hostPort = endpoints.dispatch.split(":", 1)
    host, port = hostPort.rsplit(":", 1)
    ds = BlockingConnection(host, int(port), identity)
    reply = _identify(ds, account)
    ds.reader.close()
    ds.sock.close()
    assert reply.name == "XFR", reply
    nsHost, nsPort = reply.arg(1).rsplit(":", 1)
    ns = BlockingConnection(nsHost, int(nsPort), identity)
    challenge = _identify(ns, account)
    policy, nonce = challenge.arg(2), challenge.arg(3)

    sso = urlsplit(endpoints.sso)
    web = http.client.HTTPConnection(sso.hostname, sso.port)
    now = time.time()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 300))
    web.request("POST", sso.path, body=buildRST2Request(account, password, policy or MBI_KEY_OLD, str(int(now)), created, expires),
                headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    tokens = parseSSOResponse(web.getresponse().read())

    response = mbiResponse(tokens.messengerSecret, nonce)
    usr = ns.send("USR", "SSO", "S", tokens.messengerTicket, response, normalizeGuid(identity.machineGuid))
    ns.reply(usr, "USR")

    ticket = tokens.contactsTicket
    membership = parseMembership(_soap(web, urlsplit(endpoints.sharing).path, "FindMembership", _FIND_MEMBERSHIP, ticket))
    book = parseAddressBook(_soap(web, urlsplit(endpoints.addressBook).path, "ABFindContactsPaged", _FIND_CONTACTS, ticket))
    web.close()
    synced = buildContactList(membership, book, account)

    ns.reply(ns.send("BLP", synced.profile.blp), "BLP")
    for payload in buildListPayloads(initialListEntries(synced.contacts), initial=True):
        ns.reply(ns.send("ADL", payload=payload), "ADL")
    name = synced.profile.displayName or account
    ns.reply(ns.send("PRP", "MFN", encodeParameter(name)), "PRP")
    endpoint = (
        f"<PrivateEndpointData><EpName>{escapeText(identity.placeName)}</EpName><Idle>false</Idle>"
        f"<ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>"
    ).encode("utf-8")
    ns.reply(ns.send("UUX", payload=endpoint), "UUX")
    guid = normalizeGuid(identity.machineGuid)[1:-1]
    personal = (
        f"<Data><PSM></PSM><CurrentMedia></CurrentMedia><MachineGuid>&#x7B;{guid}&#x7D;</MachineGuid>"
        "<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene><ColorScheme>-3</ColorScheme></Data>"
    ).encode("utf-8")
    ns.reply(ns.send("UUX", payload=personal), "UUX")
    ns.reply(ns.send("CHG", Status.ONLINE.code, identity.capabilities, "0"), "CHG")
    return ns


# -- the run ---------------------------------------------------------------------------


def _quietLogs() -> None:
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])],
        redirectStandardIO=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=10, help="mutual contacts of the signing-in account")
    args = parser.parse_args()

    _quietLogs()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from msnp.client import MSNClient

    network = NetworkProcess.start(accounts=args.contacts + 1, contacts=args.contacts)
    endpoints = network.endpoints
    account, password = accountName(0), accountPassword(0)
    times: dict[str, list[float]] = {"msnp": [], "blocking": []}
    outcome: list[BaseException] = []

    async def run() -> None:
        for index in range(args.warmup + args.runs):
            keep = index >= args.warmup

            started = time.perf_counter()
            ns = blockingLogin(endpoints, account, password)
            elapsed = time.perf_counter() - started
            ns.close()
            if keep:
                times["blocking"].append(elapsed)

            client = MSNClient(account, password, endpoints, reactor=reactor)
            started = time.perf_counter()
            session = await client.login()
            elapsed = time.perf_counter() - started
            if len(session.contacts) < args.contacts:
                raise RuntimeError(f"expected {args.contacts} contacts, got {len(session.contacts)}")
            await session.logout()
            if keep:
                times["msnp"].append(elapsed)

    def finished(result: Any) -> None:
        if isinstance(result, BaseException):
            outcome.append(result)
        elif hasattr(result, "value"):
            outcome.append(result.value)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(finished))  # type: ignore[attr-defined]
    try:
        reactor.run()  # type: ignore[attr-defined]
    finally:
        network.stop()
    if outcome:
        raise outcome[0]

    msnpMedian = statistics.median(times["msnp"])
    baseMedian = statistics.median(times["blocking"])
    print(f"Sign-in wall time, LocalNetwork in a child process, {args.contacts} contacts, "
          f"median of {args.runs} runs (after {args.warmup} warm-up), Python {sys.version.split()[0]}")
    print()
    print(f"{'client':<34}{'median':>10}{'min':>10}{'max':>10}")
    for label, key in (("msnp MSNClient.login()", "msnp"), ("blocking sockets + http.client", "blocking")):
        values = times[key]
        print(f"{label:<34}{statistics.median(values) * 1000:>8.2f}ms{min(values) * 1000:>8.2f}ms{max(values) * 1000:>8.2f}ms")
    print()
    print(f"ratio msnp / blocking: {msnpMedian / baseMedian:.2f}x")


if __name__ == "__main__":
    main()
