# -*- test-case-name: test.test_notification -*-
"""
What the notification server says, as values: one pure function per
command (presence, personal data, invitations, switchboard tickets) and the
payload documents the client sends (C{UUX}). Nothing here touches a socket;
L{msnp.notification.NotificationProtocol} applies these values.

Presence arrives in the MSNP18 form (C{1:bob@example.com}) or the older ones
(C{bob@example.com 1}); both are read (reference 9.3).
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Optional

from msnp.contacts import (
    NETWORK_PASSPORT,
    ContactList,
    Place,
    Profile,
    Status,
    normalizeEmail,
    normalizeGuid,
)
from msnp.errors import ProtocolError
from msnp.mime import parseMimeHeaders
from msnp.ubxscan import scanUserData, scanUserDataFields
from msnp.wire import Command, decodeParameter
from msnp.xmlsafe import childrenByName, escapeText, localName, parseXML, textOf

_NETWORK_PREFIX = re.compile(r"^(\d+):(.+)$")


@dataclass(frozen=True)
class SwitchboardTicket:
    """
    The answer to C{XFR trid SB}: where to connect and what to present.

    @ivar address: C{host:port} of the switchboard.
    @ivar authToken: the single-use authorization string (kept out of reprs).
    """

    address: str
    authToken: str = field(repr=False)


@dataclass(frozen=True)
class Invitation:
    """
    An invitation to a switchboard session, from C{RNG} on the NS.

    @ivar sessionId: the opaque session id for C{ANS}.
    @ivar address: C{host:port} of the switchboard.
    @ivar authToken: the authorization string (kept out of reprs).
    @ivar inviter: the inviter's address.
    @ivar inviterName: the inviter's display name, decoded.
    """

    sessionId: str
    address: str
    authToken: str = field(repr=False)
    inviter: str
    inviterName: str


# -- the session's state ------------------------------------------------------------


@dataclass
class SessionState:
    """
    What the NS connection knows about the signed-in account and its
    contacts. L{msnp.session.Session} exposes it; the protocol keeps it
    current. Nothing here changes on a request alone, only on the server's
    confirmation or notification.

    @ivar places: this account's signed-in endpoints (MPOP), ours included,
        keyed by normalised GUID.
    @ivar hotmailProfile: the headers of the C{text/x-msmsgsprofile} message.
    @ivar verified: the C{verified} flag of C{USR OK} (C{False}: the
        server refuses display-name changes).
    """

    account: str
    machineGuid: str
    contacts: ContactList = field(default_factory=ContactList)
    profile: Optional[Profile] = None
    status: Status = Status.OFFLINE
    displayName: str = ""
    personalMessage: str = ""
    currentMedia: str = ""
    places: dict[str, Place] = field(default_factory=dict)
    verified: bool = True
    #: The decoded MSN object of our display picture as the last C{CHG}
    #: echo confirmed it (L{None}: no picture); every later C{CHG} repeats
    #: it, so a status change never drops the picture.
    msnObject: Optional[str] = None
    #: The header block of the profile message as it came (see
    #: L{hotmailProfile}); kept out of the C{repr} (it holds C{MSPAuth}).
    profileHead: bytes = field(default=b"", repr=False)

    @property
    def hotmailProfile(self) -> dict[str, str]:
        """
        The headers of the C{text/x-msmsgsprofile} message, parsed from
        L{profileHead} at each read (a new dict each time): few callers
        read them, and the bytes cost a session about 1 KiB less than the
        dict of strings (issue 13).
        """
        return parseMimeHeaders(self.profileHead) if self.profileHead else {}

    @hotmailProfile.setter
    def hotmailProfile(self, headers: dict[str, str]) -> None:
        self.profileHead = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("utf-8")


@dataclass(frozen=True)
class LoginAccepted:
    """
    C{USR trid OK <account> <verified> 0}.
    """

    account: str
    verified: bool


# -- parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountReference:
    """
    An address as the NS writes it in presence commands.

    @ivar endpoint: the C{;{guid}} suffix, normalised, if there was one.
    @ivar via: the C{;via=} suffix (circle membership), if any.
    """

    email: str
    network: int = NETWORK_PASSPORT
    endpoint: Optional[str] = None
    via: Optional[str] = None


_GUID_SUFFIX = re.compile(r"^[0-9A-Fa-f-]{36}$")


def _splitNetwork(address: str) -> Optional[tuple[int, str]]:
    """
    The network id and address of C{7:bob@example.com}, or L{None} when
    there is no numeric prefix: what C{_NETWORK_PREFIX} matches, with
    string methods (presence lines are the bulk of NS traffic).
    """
    head, sep, tail = address.partition(":")
    if not (sep and tail and head.isdecimal()):
        return None
    if "\n" in tail:
        # Not in a real token; let the pattern decide the odd case.
        match = _NETWORK_PREFIX.match(address)
        return (int(match.group(1)), match.group(2)) if match else None
    return int(head), tail


@lru_cache(maxsize=4096)
def parseAccount(token: str, network: Optional[str] = None) -> AccountReference:
    """
    Read C{1:bob@example.com}, C{bob@example.com} (with the network id in a
    separate token, MSNP17 and older), with optional C{;via=...} and
    C{;{guid}} suffixes, which are split off.

    Results are memoised (a bounded LRU of immutable values; errors are
    not): every presence command names a contact this way.

    @raise ProtocolError: no address at all, or a non-numeric network.
    """
    endpoint: Optional[str] = None
    via: Optional[str] = None
    if ";" in token:
        address, *suffixes = token.split(";")
        for suffix in suffixes:
            if suffix.startswith("via="):
                via = suffix[4:]
            elif suffix.startswith("{") or _GUID_SUFFIX.match(suffix):
                try:
                    endpoint = normalizeGuid(suffix)
                except ValueError:
                    pass
    else:
        address = token
    networkId = NETWORK_PASSPORT
    prefixed = _splitNetwork(address)
    if prefixed is not None:
        networkId, address = prefixed
    elif network is not None:
        if not (network.isascii() and network.isdigit()):
            raise ProtocolError(f"network id {network!r} is not a number")
        networkId = int(network)
    address = address.strip()
    digits = address[:-1] if address.endswith(":") else address
    if not digits or digits.isdecimal():
        # Nothing but a network prefix ("1:", "", "12").
        raise ProtocolError(f"no address in {token!r}")
    return AccountReference(normalizeEmail(address), networkId, endpoint, via)


def _hasNetworkPrefix(token: str) -> bool:
    return _splitNetwork(token.partition(";")[0]) is not None


def _accountAt(args: tuple[str, ...], index: int) -> tuple[AccountReference, int]:
    """
    The account written at C{args[index]}, and the index of the argument
    after it. MSNP18 writes C{1:bob@example.com} in one token; MSNP15-17
    write C{bob@example.com 1}, so a bare numeric next token is the
    network id. C{NLN}, C{FLN} and C{UBX} all need this one rule.

    @raise ProtocolError: see L{parseAccount}.
    """
    token = args[index]
    after = index + 1
    if after < len(args) and args[after].isdigit() and not _hasNetworkPrefix(token):
        return parseAccount(token, args[after]), after + 1
    return parseAccount(token), after


@dataclass(frozen=True)
class PresenceUpdate:
    """
    An C{NLN} or C{ILN}: a contact is (still) signed in with this status.

    @ivar displayName: already percent-decoded.
    @ivar msnObject: the decoded MSN object, or L{None} for C{0}.
    """

    account: AccountReference
    status: Status
    displayName: str
    capabilities: str = "0:0"
    msnObject: Optional[str] = None


def parsePresence(command: Command) -> PresenceUpdate:
    """
    Read C{NLN STATUS 1:acct name caps msnobj [icon]} (MSNP18), or
    C{NLN STATUS acct netId name caps msnobj} (MSNP15-17); C{ILN} is the
    same after its TrID.

    @raise ProtocolError: too short, or an unknown status code.
    """
    args = command.arguments
    if len(args) < 2:
        raise ProtocolError(f"{command.name} too short: {command.describe()}")
    try:
        status = Status.fromCode(args[0])
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    account, after = _accountAt(args, 1)
    rest = args[after:]
    name = decodeParameter(rest[0]) if len(rest) > 0 else account.email
    caps = rest[1] if len(rest) > 1 else "0:0"
    rawObject = rest[2] if len(rest) > 2 else "0"
    msnObject = decodeParameter(rawObject) if rawObject not in ("", "0") else None
    return PresenceUpdate(account, status, name, caps, msnObject)


def parseOffline(command: Command) -> AccountReference:
    """
    Read C{FLN 1:acct [caps]} (MSNP18) or C{FLN acct netId [caps]}.

    @raise ProtocolError: no address.
    """
    args = command.arguments
    if not args:
        raise ProtocolError("FLN without an address")
    return _accountAt(args, 0)[0]


@dataclass(frozen=True)
class UserData:
    """
    A C{UBX}: what a contact (or we, from another place) published.

    @ivar endpoints: the C{EndpointData} and C{PrivateEndpointData} merged
        per GUID, or L{None} when the payload was empty (nothing known).
    @ivar private: whether any C{PrivateEndpointData} was present (only
        our own account's UBX has them).
    """

    account: AccountReference
    personalMessage: str = ""
    currentMedia: str = ""
    endpoints: Optional[dict[str, Place]] = None
    private: bool = False


def parseUserData(command: Command) -> UserData:
    """
    Read C{UBX 1:acct len} (MSNP18) or C{UBX acct netId len} plus its XML.

    Unknown elements are ignored; an empty payload means "nothing
    published" (the PSM is cleared).

    @raise ProtocolError: no address.
    @raise ServiceError: the payload is not usable XML (L{parseXML}).
    """
    args = command.arguments
    if not args:
        raise ProtocolError("UBX without an address")
    return userDataOf(_accountAt(args, 0)[0], command.payload or b"")


def userDataOf(account: AccountReference, payload: bytes) -> UserData:
    """
    L{parseUserData} once the account is known: the payload through the
    scanner, or the strict parser when the scanner declines.

    @raise ServiceError: the payload is not usable XML (L{parseXML}).
    @raise ProtocolError: its root is not C{<Data>}.
    """
    if not payload.strip():
        return UserData(account)
    scanned = scanUserData(payload)
    if scanned is not None:
        personalMessage, currentMedia, endpoints = scanned
        return UserData(account, personalMessage, currentMedia, endpoints)
    return _parseUserDataXML(account, payload)


def _parseUserDataXML(account: AccountReference, payload: bytes) -> UserData:
    """
    L{parseUserData} through the strict parser.
    """
    root = parseXML(payload)
    if localName(root.tag) != "Data":
        raise ProtocolError(f"UBX payload root is <{localName(root.tag)}>, not <Data>")
    # One pass over the children instead of one scan per field: a UBX
    # arrives for every contact at sign-in and on every PSM change.
    byName = childrenByName(root)
    endpoints: dict[str, Place] = {}
    for element in byName.get("EndpointData", ()):
        guid = _guidOf(element.get("id"))
        if guid is None:
            continue
        endpoint = endpoints.setdefault(guid, Place(guid))
        endpoint.capabilities = textOf(element, "Capabilities").strip()
    privates = byName.get("PrivateEndpointData", ())
    for element in privates:
        guid = _guidOf(element.get("id"))
        if guid is None:
            continue
        endpoint = endpoints.setdefault(guid, Place(guid))
        endpoint.name = textOf(element, "EpName")
        endpoint.idle = textOf(element, "Idle").strip().lower() == "true"
        endpoint.clientType = textOf(element, "ClientType").strip()
        endpoint.state = textOf(element, "State").strip()
    psm, media = byName.get("PSM"), byName.get("CurrentMedia")
    return UserData(
        account,
        personalMessage=textOf(psm[0] if psm else None),
        currentMedia=textOf(media[0] if media else None),
        endpoints=endpoints,
        private=bool(privates),
    )


def _guidOf(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    try:
        return normalizeGuid(value)
    except ValueError:
        return None


def parseInvitation(command: Command) -> Invitation:
    """
    Read C{RNG sessionId host:port CKI authToken inviter inviterName ...}.

    @raise ProtocolError: fields are missing.
    """
    args = command.arguments
    if len(args) < 5:
        raise ProtocolError(f"RNG too short: {command.describe()}")
    inviter = parseAccount(args[4]).email
    name = decodeParameter(args[5]) if len(args) > 5 else inviter
    return Invitation(
        sessionId=args[0], address=args[1], authToken=args[3], inviter=inviter, inviterName=name
    )


def parseSwitchboardTicket(command: Command) -> SwitchboardTicket:
    """
    Read C{XFR trid SB host:port CKI authToken [U messenger.msn.com 1]}.

    @raise ProtocolError: not a switchboard transfer, or fields missing.
    """
    args = command.arguments
    if len(args) < 4 or args[0] != "SB":
        raise ProtocolError(f"expected XFR SB, got {command.describe()}")
    return SwitchboardTicket(address=args[1], authToken=args[3])


def personalDataPayload(
    personalMessage: str, currentMedia: str, machineGuid: str
) -> bytes:
    """
    The C{UUX} C{<Data>} document exactly as WLM 2009 writes it (reference
    section 4.5), braces of the GUID as character references.
    """
    inner = normalizeGuid(machineGuid)[1:-1]
    return (
        f"<Data><PSM>{escapeText(personalMessage)}</PSM>"
        f"<CurrentMedia>{escapeText(currentMedia)}</CurrentMedia>"
        f"<MachineGuid>&#x7B;{escapeText(inner)}&#x7D;</MachineGuid>"
        "<DDP></DDP><SignatureSound></SignatureSound><Scene></Scene>"
        "<ColorScheme>-3</ColorScheme></Data>"
    ).encode("utf-8")


def privateEndpointPayload(placeName: str, status: Status, idle: bool = False) -> bytes:
    """
    The C{UUX} C{<PrivateEndpointData>} document (MPOP place name and state).
    """
    return (
        f"<PrivateEndpointData><EpName>{escapeText(placeName)}</EpName>"
        f"<Idle>{'true' if idle else 'false'}</Idle><ClientType>1</ClientType>"
        f"<State>{status.code}</State></PrivateEndpointData>"
    ).encode("utf-8")


