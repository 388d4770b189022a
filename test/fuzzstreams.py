# -*- test-case-name: test.test_hostile_streams -*-
"""
Hostile MSNP streams: mutated, randomly chunked DS/NS/SB streams in both
directions, the protocols they are fed to (L{targets}), and the check of
one stream (L{runOne}) that tells a clean failure (the connection dropped
with a L{msnp.errors.ProtocolError}, or lines logged and skipped) from
misbehaviour (an exception escaping C{dataReceived}, the framing's own
catch-all firing, buffers over their limit, a request left unresolved
after the connection is lost).

L{test.test_hostile_streams} runs a few thousand of them on every test
run; C{bench/fuzz_wire.py} runs a million.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Callable

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver
from twisted.python.failure import Failure
from zope.interface import implementer

from msnp.errors import ProtocolError
from msnp.protocol import MSNPProtocol
from msnp.wire import Direction

# -- realistic streams (reference 8.2 and friends) ------------------------------------------

PROFILE = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsprofile; charset=UTF-8\r\nLoginTime: 1262304000\r\n"
    b"EmailEnabled: 1\r\nMemberIdHigh: 3\r\nMemberIdLow: -1105625088\r\nlang_preference: 1033\r\n"
    b"preferredEmail: alice@example.com\r\ncountry: US\r\nPostalCode: \r\nGender: \r\nKid: 0\r\nAge: \r\n"
    b"BDayPre: \r\nBirthday: \r\nWallet: \r\nFlags: 536872513\r\nsid: 507\r\n"
    b"MSPAuth: EwCoARAnAAAUclearTICKETexample0001$$\r\nClientIP: 203.0.113.7\r\nClientPort: 41478\r\n"
    b"ABCHMigrated: 1\r\nMPOPEnabled: 1\r\n\r\n"
)
MDATA = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n"
    b"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
    b"Inbox-URL: /cgi-bin/HoTMaiL\r\nFolders-URL: /cgi-bin/folders\r\nPost-URL: http://www.hotmail.com\r\n"
)
NEWMAIL = (
    b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n"
    b"From: Carol\r\nMessage-URL: /cgi-bin/getmsg?msg=MSG1\r\nPost-URL: https://login.example/\r\n"
    b"Subject: =?utf-8?B?w6dh?=\r\nDest-Folder: ACTIVE\r\nFrom-Addr: carol@example.net\r\nid: 2\r\n"
)
GCF = (
    b'<Policies><Policy type="SHIELDS"><config><shield><cli maj="7" min="0" minbld="0" maxbld="9999" deny=" " />'
    b'</shield><block></block></config></Policy></Policies>'
)
UBX_BOB = (
    b'<Data><PSM>Bob here</PSM><CurrentMedia></CurrentMedia><EndpointData id="{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}">'
    b"<Capabilities>2789003324:48</Capabilities></EndpointData></Data>"
)
UBX_SELF = (
    b'<Data><PSM>Hello</PSM><CurrentMedia></CurrentMedia><EndpointData id="{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}">'
    b'<Capabilities>2789003324:48</Capabilities></EndpointData><PrivateEndpointData id="{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}">'
    b"<EpName>ALICE-PC</EpName><Idle>false</Idle><ClientType>1</ClientType><State>NLN</State></PrivateEndpointData></Data>"
)
ML = b'<ml><d n="example.com"><c n="bob" l="8" t="1" /></d></ml>'
ML_ADD = b'<ml><d n="example.com"><c n="dave" t="1" l="8" f="Dave" /></d></ml>'
NOT_AB = (
    b'<NOTIFICATION id="0" siteid="45705" siteurl="http://contacts.msn.com"><TO pid="0x0:0x0" name="alice@example.com">'
    b'<VIA agent="messenger" /></TO><MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" /><BODY>&lt;NotificationData&gt;'
    b"ABCHInternal&lt;/NotificationData&gt;</BODY></MSG></NOTIFICATION>"
)
TXT = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"X-MMS-IM-Format: FN=Segoe%20UI; EF=; CO=0; CS=1; PF=0\r\n\r\nHi Bob! \xc3\xa7a va?"
)
TYPING = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\nTypingUser: bob@example.com\r\n\r\n\r\n"
NUDGE = b"MIME-Version: 1.0\r\nContent-Type: text/x-msnmsgr-datacast\r\n\r\nID: 1\r\n\r\n"
CHUNKED = (
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nMessage-ID: {A-B}\r\nChunks: 2\r\n\r\npart one "
)
CHUNK2 = b"Message-ID: {A-B}\r\nChunk: 1\r\n\r\npart two"
UUX_DATA = b"<Data><PSM>Hi</PSM><CurrentMedia></CurrentMedia><MachineGuid>{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}</MachineGuid></Data>"
PED = b"<PrivateEndpointData><EpName>ALICE-PC</EpName><Idle>false</Idle><ClientType>1</ClientType><State>NLN</State></PrivateEndpointData>"
GUID = b"{6F0D1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B}"
BOB_GUID = b"{0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9}"


def withPayload(line: bytes, payload: bytes) -> bytes:
    return line + b" %d\r\n" % len(payload) + payload


DS_FROM_SERVER = [
    b"VER 1 MSNP18\r\n",
    b"CVR 2 14.0.8089 14.0.8089 14.0.8089 http://download.example.invalid/wlsetup.exe http://messenger.example.invalid\r\n",
    b"XFR 3 NS 127.0.0.1:1863 U D\r\n",
]
NS_FROM_SERVER = DS_FROM_SERVER[:2] + [
    b"USR 3 SSO S MBI_KEY_OLD BuQMZCPqK0R6/J68yErhdzd6pBQqpT6HtpiPksRo9jRPbY2is7ADeWLBK6P+BCuM\r\n",
    withPayload(b"GCF 0", GCF),
    b"USR 4 OK alice@example.com 1 0\r\n",
    b"SBS 0 null\r\n",
    withPayload(b"MSG Hotmail Hotmail", PROFILE),
    b"UBX 1:alice@example.com 0\r\n",
    withPayload(b"MSG Hotmail Hotmail", MDATA),
    b"CHL 0 22210219642164014968\r\n",
    b"QRY 5\r\n",
    b"ADL 6 OK\r\n",
    b"PRP 7 MFN Alice%20Liddell\r\n",
    b"UUX 8 0\r\n",
    b"BLP 9 AL\r\n",
    b"UUX 10 0\r\n",
    b"CHG 11 NLN 2789003324:48 0\r\n",
    b"ILN 11 NLN 1:carol@example.net Carol%20C 2789003324:48 0\r\n",
    b"NLN NLN 1:bob@example.com Bob 2789003324:48 0\r\n",
    withPayload(b"UBX 1:bob@example.com", UBX_BOB),
    withPayload(b"UBX 1:alice@example.com", UBX_SELF),
    b"QNG 50\r\n",
    b"XFR 12 SB 127.0.0.1:1864 CKI 17262740.1050826919.32308 U messenger.msn.com 1\r\n",
    b"RNG 11752013 127.0.0.1:1864 CKI 849102291.520491113 bob@example.com Bob U messenger.msn.com 1\r\n",
    withPayload(b"ADL 0", ML_ADD),
    withPayload(b"RML 0", ML_ADD),
    withPayload(b"NOT", NOT_AB),
    withPayload(b"MSG Hotmail Hotmail", NEWMAIL),
    withPayload(b"UBN bob@example.com;" + BOB_GUID + b" 5", b"<State>NLN</State>"),
    withPayload(b"241 13", ML),
    b"715 14\r\n",
    b"UUN 15 OK\r\n",
    withPayload(b"IPG", b"<NOTIFICATION/>"),
    withPayload(b"NFY PUT", b"Routing: 1.0\r\n\r\n"),
    withPayload(b"SDG 0", b"Routing: 1.0\r\n\r\n"),
    b"NLN AWY 1:bob@example.com Bob%20(away) 2789003324:48 0\r\n",
    b"FLN 1:bob@example.com 0:0\r\n",
    b"OUT OTH\r\n",
]
SB_FROM_SERVER = [
    b"USR 1 OK alice@example.com;" + GUID + b" Alice\r\n",
    b"CAL 2 RINGING 11752013\r\n",
    b"JOI bob@example.com Bob 2789003324:48\r\n",
    b"JOI bob@example.com;" + BOB_GUID + b" Bob 2789003324:48\r\n",
    b"IRO 1 1 2 bob@example.com Bob 2789003324:48\r\n",
    b"IRO 1 2 2 bob@example.com;" + BOB_GUID + b" Bob 2789003324:48\r\n",
    b"ANS 1 OK\r\n",
    withPayload(b"MSG bob@example.com Bob", TYPING),
    withPayload(b"MSG bob@example.com Bob", TXT),
    withPayload(b"MSG bob@example.com Bob", NUDGE),
    withPayload(b"MSG bob@example.com Bob", CHUNKED),
    withPayload(b"MSG bob@example.com Bob", CHUNK2),
    b"ACK 3\r\n",
    b"NAK 4\r\n",
    b"217 5\r\n",
    b"BYE bob@example.com;" + BOB_GUID + b"\r\n",
    b"BYE bob@example.com 1\r\n",
]
DS_FROM_CLIENT = [
    b"VER 1 MSNP18 MSNP17 CVR0\r\n",
    b"CVR 2 0x0804 winnt 5.1 i386 MSNMSGR 14.0.8089.0726 msmsgs test@live.cn\r\n",
    b"USR 3 SSO I test@live.cn\r\n",
]
NS_FROM_CLIENT = DS_FROM_CLIENT + [
    b"USR 4 SSO S t=EwCoARAnAAAUclearTICKETexample0001&p=EwCoAPROFILEexample0001 HAAAAAEAAAADZgAABIAAAAgAAAAUAAAASAAAA " + GUID + b"\r\n",
    withPayload(b"QRY 5 PROD0120PW!CCV9@", b"6e92a312bf6b70ee58e75a1e3315695c"),
    withPayload(b"ADL 6", b'<ml l="1"><d n="example.com"><c n="bob" l="3" t="1" /></d></ml>'),
    b"PRP 7 MFN Alice\r\n",
    withPayload(b"UUX 8", PED),
    b"BLP 9 AL\r\n",
    withPayload(b"UUX 10", UUX_DATA),
    b"CHG 11 NLN 2789003324:48 0\r\n",
    b"PNG\r\n",
    b"XFR 12 SB\r\n",
    withPayload(b"UUN 13 bob@example.com 5", b"<State>NLN</State>"),
    withPayload(b"RML 14", ML_ADD),
    withPayload(b"FQY 15", ML),
    withPayload(b"UUM 16 bob@example.com 32 1", TXT),
    b"OUT\r\n",
]
SB_FROM_CLIENT = [
    b"USR 1 alice@example.com;" + GUID + b" 17262740.1050826919.32308\r\n",
    b"ANS 1 bob@example.com;" + BOB_GUID + b" 849102291.520491113 11752013\r\n",
    b"CAL 2 bob@example.com\r\n",
    withPayload(b"MSG 3 N", TXT),
    withPayload(b"MSG 4 U", TYPING),
    withPayload(b"MSG 5 A", NUDGE),
    withPayload(b"MSG 6 D", b"MIME-Version: 1.0\r\nContent-Type: application/x-msnmsgrp2p\r\n\r\n" + b"\x00" * 48),
    b"OUT\r\n",
]

HUGE = [2**63, 2**63 - 1, 2**64, 2**31, 10**40, 16 * 1024 * 1024, 65 * 1024]

# -- mutations ------------------------------------------------------------------------------


def mutate(rng: random.Random, stream: bytes) -> bytes:
    data = bytearray(stream)
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
        kind = rng.randrange(12)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[at:]
        elif kind == 2:
            name = rng.choice((b"MSG Hotmail Hotmail", b"UBX 1:bob@example.com", b"GCF 0", b"241 3", b"NOT", b"MSG \xff x"))
            data[at:at] = name + b" %d\r\n" % rng.choice(HUGE)
        elif kind == 3:
            data[at:at] = b"NLN " + b"x" * rng.choice((10, 1000, 17000, 40000))
        elif kind == 4:
            data[at:at] = rng.choice((b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"MSG \xff\xfe x 4\r\nabcd", b"\x80"))
        elif kind == 5:
            data[at:at] = rng.choice((b"PRP 1 MFN %zz%\r\n", b"NLN NLN 1:a@b.c %C3%28 1:0 0\r\n", b"RNG 1 h:1 CKI x %ff%fe U m 1\r\n"))
        elif kind == 6:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif kind == 7:
            # Change a length (or any number) to a nearby or random one.
            digits = [i for i in range(max(0, at - 200), min(len(data), at + 200)) if 48 <= data[i] <= 57]
            if digits:
                i = rng.choice(digits)
                data[i:i + 1] = str(rng.choice((0, 1, 9, 99, 1000, 2**20, rng.randrange(10**6)))).encode()
        elif kind == 8:
            end = min(len(data), at + rng.randint(1, 200))
            del data[at:end]
        elif kind == 9:
            end = min(len(data), at + rng.randint(1, 200))
            data[at:at] = data[at:end]
        elif kind == 10:
            data[:] = data.replace(b"\r\n", b"\n", rng.randint(1, 5))
        else:
            data[at:at] = rng.choice((b" ", b"  ", b"\r", b"\n", b"\r\n", b"\r\r\n", b"OK", b" 0", b" OK\r\n"))
    return bytes(data)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    if len(data) <= 1:
        return [data]
    if rng.random() < 0.02:
        size = rng.randint(1, 16)
        return [data[i:i + size] for i in range(0, len(data), size)]
    cuts = sorted(rng.randrange(len(data)) for _ in range(rng.randint(0, 8)))
    out, start = [], 0
    for cut in cuts + [len(data)]:
        out.append(data[start:cut])
        start = cut
    return out


# -- targets --------------------------------------------------------------------------------


class Target:
    def __init__(self, name: str, build: Callable[[Clock], MSNPProtocol], streams: list[list[bytes]],
                 requests: list[tuple[Any, ...]], weight: int) -> None:
        self.name = name
        self.build = build
        self.streams = streams
        self.requests = requests
        self.weight = weight


class ClientBase(MSNPProtocol):
    receiving = Direction.FROM_SERVER


class ServerBase(MSNPProtocol):
    receiving = Direction.FROM_CLIENT


CLIENT_REQUESTS: list[tuple[Any, ...]] = [
    ("VER", ("MSNP18", "CVR0"), None), ("CHG", ("NLN", "0:0", "0"), None), ("ADL", (), ML),
    ("XFR", ("SB",), None), ("QRY", ("PROD0120PW!CCV9@",), b"0" * 32), ("ANS", ("a@b.c", "x", "1"), None),
]


def targets() -> list[Target]:
    found = [
        Target("MSNPProtocol (client)", lambda c: ClientBase(clock=c),
               [DS_FROM_SERVER, NS_FROM_SERVER, SB_FROM_SERVER], CLIENT_REQUESTS, 4),
        Target("MSNPProtocol (server)", lambda c: ServerBase(clock=c),
               [DS_FROM_CLIENT, NS_FROM_CLIENT, SB_FROM_CLIENT], CLIENT_REQUESTS[:2], 2),
    ]
    from msnp.endpoints import ClientIdentity

    identity = ClientIdentity()
    try:
        from msnp.preamble import PreambleProtocol

        found.append(Target("PreambleProtocol", lambda c: PreambleProtocol("alice@example.com", identity, clock=c),
                            [DS_FROM_SERVER, NS_FROM_SERVER], CLIENT_REQUESTS[:4], 1))
    except ImportError:
        pass
    try:
        from msnp.notification import NotificationProtocol

        found.append(Target("NotificationProtocol", lambda c: NotificationProtocol("alice@example.com", identity, clock=c),
                            [NS_FROM_SERVER], CLIENT_REQUESTS, 2))
    except ImportError:
        pass
    try:
        from msnp.switchboard import SwitchboardProtocol

        found.append(Target("SwitchboardProtocol", lambda c: SwitchboardProtocol("alice@example.com", GUID.decode(), clock=c),
                            [SB_FROM_SERVER], CLIENT_REQUESTS[5:] + CLIENT_REQUESTS[:2], 2))
    except ImportError:
        pass
    try:
        from msnp.server.network import LocalNetwork

        clock = Clock()
        network = LocalNetwork(reactor=clock, clock=clock)
        network.addAccount("alice@example.com", "s3cret!", "Alice")
        network.addAccount("bob@example.com", "pw", "Bob")
        network.addContact("alice@example.com", "bob@example.com", mutual=True)
    except Exception:
        network = None
    if network is not None:
        try:
            from msnp.server.dispatch import DispatchServer

            found.append(Target("server DispatchServer", lambda c: DispatchServer(lambda: "127.0.0.1:1863", clock=c),
                                [DS_FROM_CLIENT], [], 1))
        except ImportError:
            pass
        try:
            from msnp.server.notification import NotificationServer

            found.append(Target("server NotificationServer",
                                lambda c: NotificationServer(network, network.presence, True, 50, c),
                                [NS_FROM_CLIENT], [], 1))
        except ImportError:
            pass
        try:
            from msnp.server.switchboard import SwitchboardDirectory, SwitchboardServer

            directory = SwitchboardDirectory(network, clock=clock)
            found.append(Target("server SwitchboardServer",
                                lambda c: SwitchboardServer(network, directory, clock=c),
                                [SB_FROM_CLIENT], [], 1))
        except ImportError:
            pass
    return found


# -- running ----------------------------------------------------------------------------------


@implementer(ILogObserver)
class LogTally:
    """
    Counts log events by kind, cheaply (no formatting).
    """

    def __init__(self) -> None:
        self.internal = 0
        self.malformed = 0
        self.handlerErrors: Counter[str] = Counter()

    def __call__(self, event: dict[str, Any]) -> None:
        fmt = event.get("log_format") or ""
        failure = event.get("log_failure")
        if failure is not None:
            if fmt.startswith("Unexpected error while reading"):
                self.internal += 1
            else:
                kind = "unhandled Deferred" if fmt.startswith("Unhandled error in Deferred") else "handler"
                self.handlerErrors[f"{kind}: {type(failure.value).__name__}"] += 1
        elif fmt.startswith("Ignoring malformed"):
            self.malformed += 1


def runOne(rng: random.Random, target: Target, tally: LogTally) -> tuple[str, str]:
    """
    Run one stream. Returns (outcome, detail) with outcome one of
    C{clean}, C{dropped}, C{skipped} or C{misbehaved}.
    """
    base = rng.choice(target.streams)
    start = rng.randrange(len(base))
    stream = mutate(rng, b"".join(base[start:start + rng.randint(1, len(base))]))
    clock = Clock()
    protocol = target.build(clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    boxes: list[list[Any]] = []
    for name, args, payload in target.requests[: rng.randint(0, len(target.requests))]:
        box: list[Any] = []
        protocol.sendCommand(name, *args, payload=payload).addBoth(box.append)
        boxes.append(box)
    internalBefore, malformedBefore = tally.internal, tally.malformed
    limitLine, limitPayload = protocol.maxLineLength + 1, protocol.maxPayloadLength
    for piece in chunks(rng, stream):
        try:
            protocol.dataReceived(piece)
        except BaseException as e:
            return "misbehaved", f"{type(e).__name__} escaped dataReceived: {e}"
        if len(protocol._buffer) > limitLine:
            return "misbehaved", f"line buffer {len(protocol._buffer)} > {limitLine}"
        if protocol._payloadReceived > limitPayload or sum(map(len, protocol._payloadChunks)) > limitPayload:
            return "misbehaved", "payload buffer beyond the limit"
        if rng.random() < 0.05:
            clock.advance(rng.choice((1, 31, 3600)))
    if tally.internal != internalBefore:
        return "misbehaved", "internal error caught by dataReceived"
    dropped = transport.disconnecting
    protocol.connectionLost(Failure(ConnectionDone("fuzz over")))
    if any(not box for box in boxes) or protocol.pendingCount:
        return "misbehaved", "request unresolved after connection loss"
    if dropped or any(isinstance(box[0], Failure) and box[0].check(ProtocolError) for box in boxes):
        return "dropped", ""
    if tally.malformed != malformedBefore:
        return "skipped", ""
    return "clean", ""
