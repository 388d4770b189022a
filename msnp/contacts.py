# -*- test-case-name: test.test_contacts -*-
"""
The client's model of the contact list: L{Status}, the L{Lists} flags,
L{Contact} and its signed-in L{Place}s, L{Group}, L{ContactList}, the
account's L{Profile}, and the C{CurrentMedia} format.

Everything here is pure: no sockets, no Deferreds. The session keeps one
L{ContactList} and changes it only after the server confirmed a change;
L{ContactList.snapshot} is a frozen copy to compare against. The
C{ADL}/C{RML} payload codec is L{msnp.listpayload}.
"""

from __future__ import annotations

import copy
import enum
import re
import sys
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional


#: The address the historical clients never put into an C{ADL} (pidgin).
MESSENGER_BOT = "messenger@microsoft.com"

#: Network ids (reference section 3.1) used by this library.
NETWORK_PASSPORT = 1
NETWORK_PHONE = 4
NETWORK_YAHOO = 32


class Status(enum.Enum):
    """
    A presence status and its three-letter wire code (reference section 4.1).
    """

    ONLINE = "NLN"
    BUSY = "BSY"
    IDLE = "IDL"
    BE_RIGHT_BACK = "BRB"
    AWAY = "AWY"
    ON_THE_PHONE = "PHN"
    OUT_TO_LUNCH = "LUN"
    HIDDEN = "HDN"
    OFFLINE = "FLN"

    @property
    def code(self) -> str:
        """
        The code as it appears in C{CHG}, C{NLN} and C{ILN}.
        """
        return str(self.value)

    @classmethod
    def fromCode(cls, code: str) -> "Status":
        """
        The status for a wire code.

        @raise ValueError: the code is not one of the nine of MSNP18.
        """
        # Exact codes, as every presence line carries them, skip the
        # normalisation and the enum's own lookup.
        status = _STATUS_BY_CODE.get(code) if type(code) is str else None
        if status is not None:
            return status
        try:
            return cls(code.strip().upper())
        except (ValueError, AttributeError):
            raise ValueError(f"unknown status code: {code!r}") from None


_STATUS_BY_CODE: dict[str, Status] = {status.value: status for status in Status}


class Lists(enum.IntFlag):
    """
    The list bits of C{ADL}/C{RML} (reference section 3.1).
    """

    FORWARD = 1
    ALLOW = 2
    BLOCK = 4
    REVERSE = 8
    PENDING = 16


#: The only bits a client may send in C{ADL}/C{RML}; RL and PL are the
#: server's to maintain (error 241).
SENDABLE_LISTS = Lists.FORWARD | Lists.ALLOW | Lists.BLOCK

#: Sharing-service role names and the list bit each stands for.
ROLE_LISTS: dict[str, Lists] = {
    "Allow": Lists.ALLOW,
    "Block": Lists.BLOCK,
    "Reverse": Lists.REVERSE,
    "Pending": Lists.PENDING,
}


def normalizeEmail(email: str) -> str:
    """
    The key an address is stored under: stripped and lower-cased, since
    Passport names are case-insensitive. Interned: the same address is
    kept by the contact list, the contact and the delta sync's members and
    address-book entries, one copy instead of one each (issue 13).
    """
    return sys.intern(email.strip().lower())


@lru_cache(maxsize=4096)
def normalizeGuid(text: str) -> str:
    """
    The canonical form of an endpoint GUID: upper case, in braces.

    Servers echo GUIDs lower-cased, with or without braces (reference
    section 10.3), so every comparison goes through this. Results are
    memoised (a bounded LRU): every C{UBX}, C{FLN} and L{Place} of a
    contact spells the same few GUIDs again.

    @raise ValueError: C{text} holds no GUID at all.
    """
    inner = text.strip()
    if inner.startswith("{"):
        inner = inner[1:]
    if inner.endswith("}"):
        inner = inner[:-1]
    inner = inner.strip()
    if not inner:
        raise ValueError(f"not a GUID: {text!r}")
    return "{" + inner.upper() + "}"


@dataclass
class Group:
    """
    A group of the address book (groups are unknown to the NS in MSNP18).
    """

    groupId: str
    name: str


@dataclass
class Place:
    """
    One signed-in place of a contact (or of the user, with MPOP).

    The GUID is stored normalised (L{normalizeGuid}) so that equality does
    not depend on how a server spelled it.
    """

    guid: str
    capabilities: str = ""
    name: str = ""
    idle: bool = False
    clientType: str = ""
    state: str = ""

    def __post_init__(self) -> None:
        self.guid = normalizeGuid(self.guid)


#: The former name of L{Place} (it is not a Twisted endpoint nor L{msnp.Endpoints}).
Endpoint = Place


#: The default of L{Contact.groupIds} until it is read (see L{_readGroupIds}).
_GROUPS_NOT_BUILT: Any = None


@dataclass
class Contact:
    """
    Everything the client knows about one address.

    @ivar lists: the list bits, L{Lists.REVERSE} and L{Lists.PENDING}
        included (those come from the sharing service, never from us).
    @ivar membershipIds: sharing-service membership id per role
        (C{"Pending"} → id), needed to delete a Pending membership.
    @ivar endpoints: the contact's signed-in places, keyed by normalised GUID.
    """

    email: str
    displayName: str = ""
    network: int = NETWORK_PASSPORT
    cid: Optional[int] = None
    contactId: Optional[str] = None
    lists: Lists = Lists(0)
    #: The address-book groups the contact is in (a plain C{set}: callers
    #: may change it). Built when first read: most contacts are in no
    #: group, and an empty C{set} costs about 200 bytes (issue 13).
    groupIds: set[str] = field(default=_GROUPS_NOT_BUILT)
    isMessengerUser: bool = False
    status: Status = Status.OFFLINE
    personalMessage: str = ""
    currentMedia: str = ""
    capabilities: str = "0:0"
    msnObject: Optional[str] = None
    #: The display picture as last announced in C{NLN}/C{ILN}: the
    #: L{msnp.p2p.msnobject.MSNObject} parsed from L{msnObject}, L{None}
    #: for none or one that does not parse. Parsed when first read after
    #: an announcement (L{announceObject}): a presence storm repeats
    #: fresh objects that nobody may look at (issue 13).
    #: L{msnp.session.Session.fetchDisplayPicture} fetches it.
    picture: Optional[Any] = None
    endpoints: dict[str, Place] = field(default_factory=dict)
    membershipIds: dict[str, int] = field(default_factory=dict)
    inviteMessage: Optional[str] = None

    @property
    def nowPlaying(self) -> str:
        """
        The "now playing" line to show (C{"Title - Artist"}), C{""} when
        nothing is playing; C{currentMedia} is the raw C{UBX} value.
        """
        return parseCurrentMedia(self.currentMedia)

    @property
    def isOnline(self) -> bool:
        """
        Whether the contact is visibly signed in (hidden looks offline).
        """
        return self.status not in (Status.OFFLINE, Status.HIDDEN)

    @property
    def onForwardList(self) -> bool:
        return bool(self.lists & Lists.FORWARD)

    @property
    def isAllowed(self) -> bool:
        return bool(self.lists & Lists.ALLOW)

    @property
    def isBlocked(self) -> bool:
        return bool(self.lists & Lists.BLOCK)

    @property
    def isPending(self) -> bool:
        """
        Whether the contact added us and waits for our accept or decline.
        """
        return bool(self.lists & Lists.PENDING)

    @property
    def onReverseList(self) -> bool:
        return bool(self.lists & Lists.REVERSE)

    def announceObject(self, msnObject: Optional[str]) -> None:
        """
        Record the MSN object text a presence line announced; L{picture}
        is parsed from it when it is next read.
        """
        self.msnObject = msnObject
        setattr(self, "_picture", _UNPARSED)

    def addEndpoint(self, endpoint: Place) -> None:
        """
        Record or replace one place of this contact.
        """
        self.endpoints[endpoint.guid] = endpoint

    def removeEndpoint(self, guid: str) -> Optional[Place]:
        """
        Forget the place C{guid} (in any case, with or without braces);
        the removed L{Place}, or L{None} if it was unknown.

        @raise ValueError: C{guid} holds no GUID at all.
        """
        return self.endpoints.pop(normalizeGuid(guid), None)


def _readGroupIds(contact: Contact) -> set[str]:
    """
    L{Contact.groupIds}: the set given or assigned, or a new empty one kept
    from its first reading on, so that a change made through it sticks as
    it did when every contact was built with its own set.
    """
    groups: Optional[set[str]] = getattr(contact, "_groupIds")
    if groups is None:
        groups = contact._groupIds = set()  # type: ignore[attr-defined]
    return groups


def _writeGroupIds(contact: Contact, groups: set[str]) -> None:
    contact._groupIds = groups  # type: ignore[attr-defined]


class _Unparsed:
    """
    The value of a L{Contact}'s picture between an announcement and its
    first reading. Copies and pickles of a contact keep this very object
    (a new one would be taken for a picture).
    """

    def __repr__(self) -> str:
        return "<picture not parsed yet>"

    def __reduce__(self) -> str:
        return "_UNPARSED"


_UNPARSED = _Unparsed()


def _readPicture(contact: Contact) -> Optional[Any]:
    """
    L{Contact.picture}: what was assigned, or the object announced last
    (L{Contact.announceObject}), parsed now and kept.
    """
    picture: Any = getattr(contact, "_picture")
    if picture is _UNPARSED:
        from msnp.p2p.msnobject import parsePicture

        picture = parsePicture(contact.msnObject)
        setattr(contact, "_picture", picture)
    return picture


def _writePicture(contact: Contact, picture: Optional[Any]) -> None:
    setattr(contact, "_picture", picture)


# After @dataclass, which made groupIds and picture ordinary fields of
# __init__, __eq__ and __repr__ (all three go through the properties).
Contact._groupIds = None  # type: ignore[attr-defined]
Contact.groupIds = property(_readGroupIds, _writeGroupIds)  # type: ignore[assignment]
setattr(Contact, "_picture", None)
Contact.picture = property(_readPicture, _writePicture)  # type: ignore[assignment]


@dataclass(frozen=True)
class ContactListSnapshot:
    """
    A frozen copy of a L{ContactList}'s state, to compare against later.
    """

    contacts: dict[str, Contact]
    groups: dict[str, Group]


class ContactList:
    """
    The contacts and groups of one session, keyed by lower-cased address.

    Iteration yields L{Contact}s in the order they were added, which keeps
    payloads and displays stable.
    """

    def __init__(
        self, contacts: Iterable[Contact] = (), groups: Iterable[Group] = ()
    ) -> None:
        self._contacts: dict[str, Contact] = {}
        self.groups: dict[str, Group] = {g.groupId: g for g in groups}
        for contact in contacts:
            self.add(contact)

    def __repr__(self) -> str:
        return f"<ContactList {len(self._contacts)} contacts, {len(self.groups)} groups>"

    def get(self, email: str) -> Optional[Contact]:
        """
        The contact for C{email} (any case), or L{None}.
        """
        return self._contacts.get(normalizeEmail(email))

    def getNormalized(self, email: str) -> Optional[Contact]:
        """
        L{get} for an address already normalised (L{normalizeEmail}), as
        the parsed presence commands carry it: one lookup.
        """
        return self._contacts.get(email)

    def __contains__(self, email: object) -> bool:
        return isinstance(email, str) and normalizeEmail(email) in self._contacts

    def __iter__(self) -> Iterator[Contact]:
        return iter(list(self._contacts.values()))

    def __len__(self) -> int:
        return len(self._contacts)

    def add(self, contact: Contact) -> Contact:
        """
        Add C{contact}, replacing any contact with the same address.
        """
        self._contacts[normalizeEmail(contact.email)] = contact
        return contact

    def remove(self, email: str) -> Optional[Contact]:
        """
        Forget C{email}; the removed contact, or L{None} if it was unknown.
        """
        return self._contacts.pop(normalizeEmail(email), None)

    def withList(self, flag: Lists) -> list[Contact]:
        """
        The contacts that have every bit of C{flag}.
        """
        return [c for c in self._contacts.values() if (c.lists & flag) == flag]

    def pending(self) -> list[Contact]:
        """
        The people who added us and await an answer.
        """
        return self.withList(Lists.PENDING)

    def byContactId(self, contactId: str) -> Optional[Contact]:
        """
        The contact with this address-book id (GUIDs compared case-insensitively).
        """
        wanted = contactId.lower()
        for contact in self._contacts.values():
            if contact.contactId is not None and contact.contactId.lower() == wanted:
                return contact
        return None

    def groupNamed(self, name: str) -> Optional[Group]:
        """
        The group called C{name}, or L{None}.
        """
        for group in self.groups.values():
            if group.name == name:
                return group
        return None

    def snapshot(self) -> ContactListSnapshot:
        """
        A deep copy of the current state, to compare the list against
        later (it stays as it is whatever the list does).
        """
        return ContactListSnapshot(
            copy.deepcopy(self._contacts), copy.deepcopy(self.groups)
        )



@dataclass
class Profile:
    """
    The user's own data, from the Me contact of the address book.

    @ivar blp: C{"AL"} (everybody not blocked may see me) or C{"BL"} (only
        allowed people).
    @ivar mpop: whether other places stay signed in (C{MSN.IM.MPOP}).
    @ivar gtc: whether to prompt when someone adds me (C{MSN.IM.GTC}).
    """

    email: str
    displayName: str = ""
    cid: Optional[int] = None
    blp: str = "AL"
    mpop: bool = True
    gtc: bool = True
    annotations: dict[str, str] = field(default_factory=dict)


def blpFromAnnotation(value: Optional[str], freshAccount: bool = False) -> str:
    """
    Read the C{MSN.IM.BLP} annotation of the Me contact.

    C{1} means C{AL}. Servers disagree on the rest (reference sections 4.13
    and 10.3): the historical service wrote C{0} for C{BL}, one emulator
    writes C{0} on an account that never sent C{BLP} and C{2} for C{BL}.
    So anything but C{1} is C{BL}, except a missing value, or C{0} on a fresh
    account, where C{AL} (the default) is the safe reading.
    """
    text = (value or "").strip()
    if text == "" or text == "1":
        return "AL"
    if text == "0" and freshAccount:
        return "AL"
    return "BL"


# -- current media -----------------------------------------------------------------

#: The field separator of C{CurrentMedia}: backslash and zero, as text.
MEDIA_SEPARATOR = "\\0"
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


@lru_cache(maxsize=256)
def parseCurrentMedia(text: str) -> str:
    """
    Turn a C{CurrentMedia} value (reference section 4.5) into the line a
    client shows, e.g. C{"Song Title - Artist"}. Memoised (a bounded LRU):
    a contact's C{UBX} repeats the song until it changes.

    @return: C{""} when the value is empty, hidden (enabled flag C{0}) or
        unusable.
    """
    if not text or MEDIA_SEPARATOR not in text:
        return ""
    fields = text.split(MEDIA_SEPARATOR)
    # fields[0] is the application (usually empty), [1] the category,
    # [2] the enabled flag, [3] the format, [4:] the values.
    if len(fields) < 5:
        return ""
    if fields[2].strip() == "0":
        return ""
    template = fields[3]
    values = fields[4:]
    if template:

        def substitute(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return values[index] if index < len(values) else ""

        shown = _PLACEHOLDER.sub(substitute, template)
    else:
        shown = " - ".join(v for v in values if v)
    shown = shown.strip()
    # A missing artist leaves "Title - "; drop the dangling separator.
    while shown.endswith(" -") or shown.endswith("-"):
        shown = shown[:-1].rstrip()
    while shown.startswith("- "):
        shown = shown[2:].lstrip()
    return shown


def formatCurrentMedia(
    title: str, artist: str = "", album: str = "", category: str = "Music"
) -> str:
    """
    Build a C{CurrentMedia} value for C{UUX}; C{""} (clears it) when
    C{title} is empty. The separator sequence is removed from the values,
    since the format has no way to escape it.
    """

    def clean(value: str) -> str:
        return value.replace(MEDIA_SEPARATOR, "")

    if not title:
        return ""
    template = "{0} - {1}" if artist else "{0}"
    fields = ["", clean(category), "1", template, clean(title), clean(artist), clean(album), ""]
    return MEDIA_SEPARATOR.join(fields) + MEDIA_SEPARATOR
