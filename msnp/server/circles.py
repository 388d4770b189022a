# -*- test-case-name: test.test_server_circles -*-
"""
The local network's circles: who is in which circle with what role, the
pending invitations, the circle tickets, and which signed-in places are in
each circle's conversation.

Two kinds of state, kept apart on purpose:
  - B{memberships} (circles, members, roles, invitations) are durable: every
    change goes through L{ICircleStore.saveCircle}, the seam for the
    SQLite-backed account store; L{MemoryCircleStore} keeps them in memory;
  - B{conversations} (which place subscribed with a circle C{ADL}, which
    joined the roster with C{PUT}) live only as long as the places and are
    never stored.

The registry decides; it sends nothing. L{msnp.server.circlerouting} turns
its answers into commands for places, and L{msnp.server.circleabch} into
SOAP answers. Refusals raise L{CircleRefused} with the ABCH error code and
the NS error number, so each caller can answer in its own terms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from msnp.circles import (
    CIRCLE_DOMAIN,
    CIRCLE_ID_PREFIX,
    CircleProtocolError,
    CircleRole,
    CircleState,
    normalizeCircleId,
)
from msnp.circlewire import formatEpid
from msnp.xmlsafe import escapeText

log = Logger()

#: The longest circle name accepted (WLM limits names to about this).
MAX_CIRCLE_NAME = 64
#: How many circles one account may be in or invited to.
MAX_CIRCLES_PER_ACCOUNT = 100
#: How many members (any state) a circle may hold.
MAX_MEMBERS = 500
#: The longest invitation message kept.
MAX_INVITE_MESSAGE = 512


class CircleRefused(Exception):
    """
    A circle operation the registry refuses.

    @ivar errorCode: the ABCH C{errorcode} (C{ContactAlreadyExists}, ...).
    @ivar nsCode: the NS error number for the same refusal (C{201}, C{933}).
    """

    def __init__(self, errorCode: str, message: str, nsCode: int = 201) -> None:
        super().__init__(message)
        self.errorCode = errorCode
        self.message = message
        self.nsCode = nsCode


@dataclass
class CircleMembership:
    """
    One account's membership of one circle.

    @ivar contactId: the account's contact id in the circle's book.
    @ivar inviter: who invited it (L{None} for the creator).
    @ivar connected: for an invitation, whether C{ManageWLConnection}
        followed the C{CreateContact} (only then does the invitee see it).
    """

    email: str
    role: CircleRole
    state: CircleState
    contactId: str
    inviter: Optional[str] = None
    message: str = ""
    connected: bool = True


@dataclass
class CircleRecord:
    """
    A circle as the store keeps it.

    @ivar members: by lower-case e-mail, every state (a declined or left
        entry is removed, so "no trace" holds).
    """

    circleId: str
    name: str
    created: float
    members: dict[str, CircleMembership] = field(default_factory=dict)
    cid: int = 0

    def accepted(self) -> list[str]:
        """
        The accounts in the circle (state C{Accepted}), in joining order.
        """
        return [m.email for m in self.members.values() if m.state is CircleState.ACCEPTED]

    def membership(self, email: str) -> Optional[CircleMembership]:
        return self.members.get(email.strip().lower())


class ICircleStore(Interface):
    """
    Where circle memberships are kept. The registry calls L{saveCircle}
    after every change and L{deleteCircle} when the last member left; it
    reads everything once, at start, with L{loadCircles}.
    """

    def loadCircles() -> Iterable[CircleRecord]:
        """
        Every stored circle.
        """

    def saveCircle(record: CircleRecord) -> None:
        """
        Store C{record} (a whole circle, replacing what was stored).
        """

    def deleteCircle(circleId: str) -> None:
        """
        Forget a circle.
        """


@implementer(ICircleStore)
class MemoryCircleStore:
    """
    An L{ICircleStore} in memory: the default, and the test double.
    """

    def __init__(self) -> None:
        self.records: dict[str, CircleRecord] = {}
        self.saves = 0

    def loadCircles(self) -> Iterable[CircleRecord]:
        return list(self.records.values())

    def saveCircle(self, record: CircleRecord) -> None:
        self.saves += 1
        self.records[record.circleId] = record

    def deleteCircle(self, circleId: str) -> None:
        self.records.pop(circleId, None)


@dataclass(frozen=True)
class Place:
    """
    One signed-in place: an account and its endpoint id (lower case, in
    braces, as circle routing writes it).
    """

    email: str
    epid: str

    @classmethod
    def of(cls, email: str, epid: str) -> "Place":
        return cls(email.strip().lower(), formatEpid(epid))


def newCircleId() -> str:
    """
    A fresh circle id: the fixed prefix and 12 random hex digits.
    """
    return CIRCLE_ID_PREFIX + secrets.token_hex(6)


def _isoTime(seconds: float) -> str:
    whole = int(seconds)
    fraction = int(round((seconds - whole) * 10_000_000)) % 10_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:07d}Z"


class CircleRegistry:
    """
    The circles of the local network.
    """

    def __init__(
        self,
        store: Optional[ICircleStore] = None,
        clock: Optional[IReactorTime] = None,
        ticketKey: Optional[bytes] = None,
        newId: Callable[[], str] = newCircleId,
    ) -> None:
        """
        @param store: where memberships are kept; in memory by default.
        @param clock: the source of creation times and ticket stamps.
        @param ticketKey: the key circle tickets are signed with; random
            by default (tickets then do not survive a restart, and a client
            simply downloads a new one with the address book).
        @param newId: makes circle ids (tests pass a predictable one).
        """
        self.store: ICircleStore = store if store is not None else MemoryCircleStore()
        self.clock = clock
        self._key = ticketKey if ticketKey is not None else secrets.token_bytes(32)
        self._newId = newId
        self._circles: dict[str, CircleRecord] = {}
        for record in self.store.loadCircles():
            self._circles[record.circleId] = record
        # Volatile conversation state.
        self._subscribed: dict[str, set[Place]] = {}
        self._roster: dict[str, set[Place]] = {}
        self._notifNum: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<CircleRegistry {len(self._circles)} circles>"

    def now(self) -> float:
        return self.clock.seconds() if self.clock is not None else time.time()

    # -- memberships ---------------------------------------------------------------

    def get(self, circleId: str) -> Optional[CircleRecord]:
        try:
            return self._circles.get(normalizeCircleId(circleId))
        except CircleProtocolError:
            return None

    def __iter__(self) -> Iterator[CircleRecord]:
        return iter(list(self._circles.values()))

    def require(self, circleId: str) -> CircleRecord:
        """
        @raise CircleRefused: no such circle (C{CircleDoesNotExist}, 933).
        """
        record = self.get(circleId)
        if record is None:
            raise CircleRefused("CircleDoesNotExist", "No such circle.", 933)
        return record

    def circlesOf(self, email: str, states: Iterable[CircleState] = (CircleState.ACCEPTED,)) -> list[CircleRecord]:
        """
        The circles C{email} is in, in the given states, oldest first.
        """
        wanted = set(states)
        email = email.strip().lower()
        return [
            r for r in self._circles.values()
            if (m := r.members.get(email)) is not None and m.state in wanted
        ]

    def isMember(self, email: str, circleId: str) -> bool:
        record = self.get(circleId)
        membership = record.membership(email) if record is not None else None
        return membership is not None and membership.state is CircleState.ACCEPTED

    def _save(self, record: CircleRecord) -> None:
        self.store.saveCircle(record)

    def create(self, owner: str, name: str) -> CircleRecord:
        """
        Make a circle with C{owner} as its C{Admin}, C{Accepted}.

        @raise CircleRefused: an empty or too long name, or too many circles.
        """
        owner = owner.strip().lower()
        name = name.strip()
        if not name or len(name) > MAX_CIRCLE_NAME or any(ord(c) < 32 for c in name):
            raise CircleRefused("InvalidArgument", "The circle name is empty, too long or not printable.")
        if len(self.circlesOf(owner, CircleState)) >= MAX_CIRCLES_PER_ACCOUNT:
            raise CircleRefused("MaxCirclesReached", "Too many circles.")
        circleId = normalizeCircleId(self._newId())
        if circleId in self._circles:
            raise CircleRefused("InternalError", "Circle id already in use.", 500)
        record = CircleRecord(circleId, name, self.now(), cid=secrets.randbits(63) - 2**62)
        record.members[owner] = CircleMembership(owner, CircleRole.ADMIN, CircleState.ACCEPTED, str(uuid.uuid4()))
        self._circles[circleId] = record
        self._save(record)
        log.info("Circle {circle} created by {owner}", circle=circleId, owner=owner)
        return record

    def invite(
        self, inviter: str, circleId: str, invitee: str, message: str = "", connected: bool = True
    ) -> CircleMembership:
        """
        Add C{invitee} as C{StatePendingOutbound}/C{WaitingResponse}.

        @param connected: L{False} for the ABCH's two steps: C{CreateContact}
            adds the entry, C{ManageWLConnection} (L{connect}) sends it.

        @raise CircleRefused: no such circle, the inviter may not invite
            (C{AccessDenied}), or the invitee is already there
            (C{ContactAlreadyExists}).
        """
        record = self.require(circleId)
        inviter, invitee = inviter.strip().lower(), invitee.strip().lower()
        own = record.membership(inviter)
        if own is None or own.state is not CircleState.ACCEPTED or not own.role.mayInvite:
            raise CircleRefused("AccessDenied", "Only the circle's administrators may invite.")
        existing = record.members.get(invitee)
        if existing is not None and not existing.connected and not connected:
            # A CreateContact whose ManageWLConnection never came (the
            # inviter's client failed half-way): retrying must work.
            return existing
        if existing is not None:
            raise CircleRefused("ContactAlreadyExists", "Already a member or invited.")
        if len(record.members) >= MAX_MEMBERS:
            raise CircleRefused("MaxMembersReached", "The circle is full.")
        if len(self.circlesOf(invitee, CircleState)) >= MAX_CIRCLES_PER_ACCOUNT:
            raise CircleRefused("MaxCirclesReached", "The invitee is in too many circles.")
        membership = CircleMembership(
            invitee, CircleRole.PENDING, CircleState.WAITING_RESPONSE, str(uuid.uuid4()),
            inviter=inviter, message=message[:MAX_INVITE_MESSAGE], connected=connected,
        )
        record.members[invitee] = membership
        self._save(record)
        return membership

    def connect(self, inviter: str, circleId: str, contactId: str, message: str = "") -> CircleMembership:
        """
        Send the invitation C{invite(..., connected=False)} prepared.

        @raise CircleRefused: no such circle, the caller may not invite, or
            no pending entry has that contact id (C{ContactDoesNotExist}).
        """
        record = self.require(circleId)
        own = record.membership(inviter)
        if own is None or own.state is not CircleState.ACCEPTED or not own.role.mayInvite:
            raise CircleRefused("AccessDenied", "Only the circle's administrators may invite.")
        for membership in record.members.values():
            if membership.contactId == contactId and membership.state is CircleState.WAITING_RESPONSE:
                membership.connected = True
                if message:
                    membership.message = message[:MAX_INVITE_MESSAGE]
                self._save(record)
                return membership
        raise CircleRefused("ContactDoesNotExist", "No such invitee in the circle's book.")

    def invitationsOf(self, email: str) -> list[CircleRecord]:
        """
        The circles C{email} is invited to (sent invitations only).
        """
        email = email.strip().lower()
        return [
            r for r in self.circlesOf(email, (CircleState.WAITING_RESPONSE,))
            if r.members[email].connected
        ]

    def respond(self, invitee: str, circleId: str, accept: bool) -> CircleRecord:
        """
        Accept (C{Member}/C{Accepted}) or decline an invitation. A declined
        invitation is removed entirely.

        @raise CircleRefused: no such circle, or no pending invitation
            (C{InvitationNotFound}).
        """
        record = self.require(circleId)
        invitee = invitee.strip().lower()
        membership = record.membership(invitee)
        if membership is None or membership.state is not CircleState.WAITING_RESPONSE or not membership.connected:
            raise CircleRefused("InvitationNotFound", "No pending invitation into that circle.")
        if accept:
            membership.role = CircleRole.MEMBER
            membership.state = CircleState.ACCEPTED
        else:
            del record.members[invitee]
        self._save(record)
        return record

    def leave(self, email: str, circleId: str) -> CircleRecord:
        """
        Take C{email} out of the circle (and out of its conversation). The
        last member leaving deletes the circle.

        @raise CircleRefused: not a member, or the only admin while others
            remain (C{LastAdmin}).
        """
        record = self.require(circleId)
        email = email.strip().lower()
        membership = record.membership(email)
        if membership is None or membership.state is not CircleState.ACCEPTED:
            raise CircleRefused("MemberDoesNotExist", "Not a member of that circle.")
        others = [m for m in record.members.values() if m.email != email and m.state is CircleState.ACCEPTED]
        if membership.role is CircleRole.ADMIN and others and not any(m.role is CircleRole.ADMIN for m in others):
            raise CircleRefused("LastAdmin", "The only administrator cannot leave.")
        del record.members[email]
        for places in (self._subscribed, self._roster):
            held = places.get(record.circleId)
            if held is not None:
                held.difference_update({p for p in held if p.email == email})
        if not others:
            for email_ in [m.email for m in record.members.values()]:
                del record.members[email_]
            del self._circles[record.circleId]
            self.store.deleteCircle(record.circleId)
            self._subscribed.pop(record.circleId, None)
            self._roster.pop(record.circleId, None)
        else:
            self._save(record)
        return record

    # -- tickets -------------------------------------------------------------------------

    def _sign(self, data: str) -> str:
        return base64.b64encode(hmac.new(self._key, data.encode("ascii"), hashlib.sha256).digest()).decode("ascii")

    def issueTicket(self, email: str, cid: int) -> str:
        """
        The C{CircleTicket} document for C{email} (unescaped): a
        C{<Ticket>} listing its accepted circles, base64 in C{Data}, signed
        in C{Sig}. The signature is an HMAC under the registry's key, where
        Escargot uses a per-login RSA key: clients never look inside.
        """
        circles = "".join(
            f'<Circle Id="{r.circleId}" HostedDomain="{CIRCLE_DOMAIN}" />' for r in self.circlesOf(email)
        )
        inner = f"<?xml version=\"1.0\" encoding=\"utf-16\"?><Ticket>{circles}<TS>{_isoTime(self.now())}</TS><CID>{int(cid)}</CID></Ticket>"
        data = base64.b64encode(inner.encode("utf-8")).decode("ascii")
        return _ticketDocument(data, self._sign(data))

    def verifyTicket(self, cid: int, text: str) -> bool:
        """
        Whether C{text} is, byte for byte, a ticket this registry issued
        for the account with C{cid}: the document is rebuilt from its
        C{Data} and compared whole (as Escargot does), so a client that
        re-serialised it is refused.
        """
        start, end = text.find("<Data>"), text.find("</Data>")
        if start < 0 or end < start or len(text) > 64 * 1024:
            return False
        data = text[start + len("<Data>") : end]
        if not hmac.compare_digest(_ticketDocument(data, self._sign(data)), text):
            return False
        try:
            inner = base64.b64decode(data, validate=True).decode("utf-8")
        except (ValueError, UnicodeError):
            return False
        return f"<CID>{int(cid)}</CID>" in inner

    # -- conversations (volatile) -------------------------------------------------------

    def subscribe(self, place: Place, circleId: str) -> CircleRecord:
        """
        Record a circle C{ADL} of C{place}.

        @raise CircleRefused: no such circle, or the account is not an
            accepted member (933, as Escargot answers).
        """
        record = self.require(circleId)
        if not self.isMember(place.email, record.circleId):
            raise CircleRefused("AccessDenied", "Not a member of that circle.", 933)
        self._subscribed.setdefault(record.circleId, set()).add(place)
        return record

    def isSubscribed(self, place: Place, circleId: str) -> bool:
        return place in self._subscribed.get(circleId, ())

    def join(self, place: Place, circleId: str) -> CircleRecord:
        """
        Put C{place} into the circle's conversation roster (C{PUT}).

        @raise CircleRefused: unknown circle, not a member, or no circle
            C{ADL} from this place first (all 201).
        """
        record = self.get(circleId)
        if record is None or not self.isMember(place.email, record.circleId):
            raise CircleRefused("AccessDenied", "Not a member of that circle.", 201)
        if not self.isSubscribed(place, record.circleId):
            raise CircleRefused("AccessDenied", "No circle ADL from this place.", 201)
        self._roster.setdefault(record.circleId, set()).add(place)
        return record

    def inRoster(self, place: Place, circleId: str) -> bool:
        return place in self._roster.get(circleId, ())

    def rosterPlaces(self, circleId: str) -> list[Place]:
        """
        The places in the circle's conversation, sorted (deterministic
        delivery order).
        """
        return sorted(self._roster.get(circleId, ()), key=lambda p: (p.email, p.epid))

    def rosterAccounts(self, circleId: str) -> list[str]:
        """
        The accounts with at least one place in the conversation, sorted.
        """
        return sorted({p.email for p in self._roster.get(circleId, ())})

    def partRoster(self, place: Place, circleId: str) -> bool:
        """
        Take C{place} out of one circle's roster (a C{DEL}); it stays
        subscribed.

        @return: whether the account has no place left in that roster.
        """
        places = self._roster.get(circleId)
        if places is None or place not in places:
            return False
        places.discard(place)
        return not any(p.email == place.email for p in places)

    def part(self, place: Place) -> list[str]:
        """
        Forget C{place} everywhere (it signed out).

        @return: the circles whose roster lost the account's last place
            (their members get an C{NFY DEL}).
        """
        emptied: list[str] = []
        for circleId, places in list(self._roster.items()):
            if place in places:
                places.discard(place)
                if not any(p.email == place.email for p in places):
                    emptied.append(circleId)
        for places in self._subscribed.values():
            places.discard(place)
        return emptied

    def nextNotifNum(self, circleId: str) -> int:
        """
        The C{NotifNum} of the circle's next C{NFY DEL}.
        """
        number = self._notifNum.get(circleId, 0)
        self._notifNum[circleId] = number + 1
        return number


def _ticketDocument(data: str, sig: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-16"?>'
        '<SignedTicket xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" ver="1" keyVer="1">'
        f"<Data>{escapeText(data)}</Data><Sig>{escapeText(sig)}</Sig></SignedTicket>"
    )
