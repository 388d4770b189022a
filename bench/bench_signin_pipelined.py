"""
Sign-in wall time of L{msnp.MSNClient.login} at 10 and at 1,000 contacts,
against a blocking-socket script that does the same steps but pipelines
what the protocol lets it pipeline, in the same run.

The baseline (built on L{bench_login}'s blocking client): DS
C{VER}/C{CVR}/C{USR SSO I} -> C{XFR NS}; NS C{VER}/C{CVR}/C{USR SSO I};
the real RST2 request, the two ABCH downloads (C{FindMembership},
C{ABFindContactsPaged}) and the roamed profile (storage C{GetProfile}) with
C{http.client} against the LocalNetwork's HTTP
services on one keep-alive connection; C{USR SSO S}; then C{BLP}, every
C{ADL}, C{PRP MFN}, both C{UUX} and C{CHG} written in one go, and their
replies read afterwards (a numeric reply to any of them fails the run). It
uses msnp's pure codecs, so what differs is the client machinery and the
round trips it waits for.

Each size has its own L{LocalNetwork} in a child process (10: a ring of
mutual contacts; 1,000: account 0 with 1,000 mutual contacts). Runs
alternate msnp / baseline after warm-up; medians are printed.

Usage: C{python bench/bench_signin_pipelined.py [--quick] [--runs 15]}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _localnet import NetworkProcess, accountName, accountPassword  # noqa: E402
from bench_login import (  # noqa: E402
    _FIND_CONTACTS,
    _FIND_MEMBERSHIP,
    BlockingConnection,
    _identify,
    _quietLogs,
    _soap,
)

from msnp.challenge import computeChallengeResponse  # noqa: E402
from msnp.contacts import Status, normalizeGuid  # noqa: E402
from msnp.listpayload import buildListPayloads  # noqa: E402
from msnp.endpoints import ClientIdentity, newMachineGuid  # noqa: E402
from msnp.soap.addressbook import parseAddressBook  # noqa: E402
from msnp.soap.sharing import parseMembership  # noqa: E402
from msnp.soap.sync import buildContactList, initialListEntries  # noqa: E402
from msnp.mbi import mbiResponse  # noqa: E402
from msnp.namespaces import MBI_KEY_OLD  # noqa: E402
from msnp.sso import buildRST2Request, parseSSOResponse  # noqa: E402
from msnp.wire import encodeParameter, serializeCommand  # noqa: E402
from msnp.namespaces import STORAGE, STORAGE_NS  # noqa: E402
from msnp.roaming import cidFromHex  # noqa: E402
from msnp.soap.storage import _handle, buildEnvelope as buildStorageEnvelope  # noqa: E402
from msnp.xmlsafe import parseXML  # noqa: E402
from msnp.xmlsafe import escapeText  # noqa: E402


def _getProfile(web: Any, path: str, ticket: str, cid: int) -> Any:
    body = (
        f'<GetProfile xmlns="{STORAGE_NS}"><profileHandle>{_handle(cid, "MyProfile")}</profileHandle>'
        "<profileAttributes><ResourceID>true</ResourceID><DateModified>true</DateModified>"
        "<ExpressionProfileAttributes><ResourceID>true</ResourceID><DisplayName>true</DisplayName>"
        "<PersonalStatus>true</PersonalStatus><Photo>true</Photo></ExpressionProfileAttributes>"
        "</profileAttributes></GetProfile>"
    )
    web.request("POST", path, body=buildStorageEnvelope(body, ticket, "Initial"), headers={
        "SOAPAction": f'"{STORAGE_NS}/GetProfile"', "Content-Type": "text/xml; charset=utf-8",
    })
    response = web.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"GetProfile: HTTP {response.status}")
    return parseXML(data)


def pipelinedLogin(endpoints: Any, account: str, password: str) -> tuple[BlockingConnection, int]:
    """
    Sign in with blocking sockets, the post-authentication commands
    pipelined; the open NS connection and the number of contacts synced.
    """
    import http.client

    identity = ClientIdentity(machineGuid=newMachineGuid())
    _, hostPort = endpoints.dispatch.split(":", 1)
    host, port = hostPort.rsplit(":", 1)
    ds = BlockingConnection(host, int(port), identity)
    reply = _identify(ds, account)
    ds.reader.close()
    ds.sock.close()
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
    usr = ns.send("USR", "SSO", "S", tokens.messengerTicket, mbiResponse(tokens.messengerSecret, nonce),
                  normalizeGuid(identity.machineGuid))
    ns.reply(usr, "USR")

    ticket = tokens.contactsTicket
    membership = parseMembership(_soap(web, urlsplit(endpoints.sharing).path, "FindMembership", _FIND_MEMBERSHIP, ticket))
    book = parseAddressBook(_soap(web, urlsplit(endpoints.addressBook).path, "ABFindContactsPaged", _FIND_CONTACTS, ticket))
    synced = buildContactList(membership, book, account)
    # The roamed profile (storage service), as msnp reads it at sign-in.
    cid = synced.profile.cid if synced.profile.cid is not None else cidFromHex(tokens.cid)
    if cid is not None and STORAGE in tokens.tokens:
        _getProfile(web, urlsplit(endpoints.storage).path, tokens.token(STORAGE).ticket, cid)
    web.close()

    # Everything after authentication in one write, then all the replies.
    commands: list[bytes] = []
    trids: set[int] = set()

    def queue(name: str, *args: str, payload: Any = None) -> None:
        ns.trid += 1
        trids.add(ns.trid)
        commands.append(serializeCommand(name, ns.trid, args, payload))

    queue("BLP", synced.profile.blp)
    for payload in buildListPayloads(initialListEntries(synced.contacts), initial=True):
        queue("ADL", payload=payload)
    queue("PRP", "MFN", encodeParameter(synced.profile.displayName or account))
    queue("UUX", payload=(
        f"<PrivateEndpointData><EpName>{escapeText(identity.placeName)}</EpName><Idle>false</Idle>"
        f"<ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>"
    ).encode("utf-8"))
    guid = normalizeGuid(identity.machineGuid)[1:-1]
    queue("UUX", payload=(
        f"<Data><PSM></PSM><CurrentMedia></CurrentMedia><MachineGuid>&#x7B;{guid}&#x7D;</MachineGuid>"
        "<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene><ColorScheme>-3</ColorScheme></Data>"
    ).encode("utf-8"))
    queue("CHG", Status.ONLINE.code, identity.capabilities, "0")
    ns.sock.sendall(b"".join(commands))
    while trids:
        command = ns.read()
        if command.name == "CHL":
            answer = computeChallengeResponse(command.arg(0), identity.productId, identity.productKey)
            ns.send("QRY", identity.productId, payload=answer.encode("ascii"))
            continue
        if command.trid in trids:
            if command.isError:
                raise RuntimeError(f"server error {command.name} for trid {command.trid}")
            trids.discard(command.trid)
    return ns, len(synced.contacts)


def measure(reactor: Any, network: NetworkProcess, account: str, password: str, contacts: int,
            runs: int, warmup: int) -> Any:
    from twisted.internet.defer import ensureDeferred

    from msnp import MSNClient

    times: dict[str, list[float]] = {"msnp": [], "pipelined": []}

    async def run() -> dict[str, list[float]]:
        for index in range(warmup + runs):
            keep = index >= warmup
            client = MSNClient(account, password, network.endpoints, reactor=reactor, loginTimeout=300.0)
            started = time.perf_counter()
            session = await client.login()
            elapsed = time.perf_counter() - started
            if len(session.contacts) < contacts:
                raise RuntimeError(f"expected {contacts} contacts, got {len(session.contacts)}")
            await session.logout()
            if keep:
                times["msnp"].append(elapsed)

            started = time.perf_counter()
            ns, synced = pipelinedLogin(network.endpoints, account, password)
            elapsed = time.perf_counter() - started
            ns.close()
            if synced < contacts:
                raise RuntimeError(f"baseline synced {synced} contacts of {contacts}")
            if keep:
                times["pipelined"].append(elapsed)
        return times

    return ensureDeferred(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs at 10 contacts, 3 at 1,000")
    parser.add_argument("--runs", type=int, default=15, help="runs at 10 contacts (a third as many at 1,000)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    small, large = (5, 3) if args.quick else (args.runs, max(3, args.runs // 3))

    _quietLogs()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    rows: list[tuple[int, dict[str, list[float]]]] = []
    outcome: list[Any] = []

    async def run() -> None:
        for contacts, runs in ((10, small), (1000, large)):
            if contacts == 10:
                network = NetworkProcess.start(accounts=11, contacts=10)
            else:
                network = NetworkProcess.start(accounts=1001, star=1000)
            try:
                times = await measure(reactor, network, accountName(0), accountPassword(0), contacts, runs, args.warmup)
            finally:
                network.stop()
            rows.append((contacts, times))

    def finished(result: Any) -> None:
        outcome.append(result)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(finished))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()

    print(f"Sign-in wall time, msnp against a pipelined blocking-socket script, LocalNetwork in a child process, "
          f"Python {sys.version.split()[0]}")
    print()
    print(f"{'contacts':>9}{'runs':>6}{'msnp login()':>14}{'pipelined':>12}{'ratio':>8}")
    for contacts, times in rows:
        a, b = statistics.median(times["msnp"]), statistics.median(times["pipelined"])
        print(f"{contacts:>9}{len(times['msnp']):>6}{a * 1000:>12.1f}ms{b * 1000:>10.1f}ms{a / b:>7.2f}x")


if __name__ == "__main__":
    main()
