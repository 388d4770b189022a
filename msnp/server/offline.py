# -*- test-case-name: test.test_server_offline -*-
"""
The local network's offline messages: where they wait, and the payloads
that announce and carry them (reference Q.1.2, Q.1.4, Q.1.6, Q.1.9).

  - L{IOfflineMessageStore} is the contract: C{storeOfflineMessage},
    C{listOfflineMessages}, C{deleteOfflineMessages}. The durable account
    store provides the same three methods; L{MemoryOfflineStore} is the
    in-memory one, with the same per-recipient cap.
  - L{messageFromUUM} turns an accepted C{UUM} into a
    L{StoredOfflineMessage} with an unguessable id; L{mayLeaveMessage} is
    the privacy rule a real server applies first.
  - The builders write what the NS sends (the initial mail data after the
    first C{CHG}, the live OIM notification, the active-mail message after
    a deletion) and the RFC 822 text RSI C{GetMessage} returns.

Everything taken from a request is escaped or encoded on the way out.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from msnp.contacts import NETWORK_PASSPORT, NETWORK_YAHOO, normalizeEmail
from msnp.oim import (
    INITIAL_MAIL_DATA_TYPE,
    OIM_FOLDER,
    OIM_NOTIFICATION_TYPE,
    TOO_LARGE,
    encodeName,
    formatTimestamp,
)
from msnp.server.accountmodel import ALLOW, BLOCK, Account
from msnp.uum import (
    MAX_UUM_PAYLOAD,
    MalformedNetworkMessage,
    MessageKind,
    NetworkMessage,
    parseUUM,
    relayAsUBM,
)
from msnp.wire import Command
from msnp.xmlsafe import escapeText

log = Logger()

#: Messages one recipient may have waiting; one more is refused.
DEFAULT_MAX_PER_RECIPIENT = 100
#: More waiting messages than this are announced as C{too-large}
#: (Escargot's threshold, Q.1.4).
MAX_LISTED = 25
#: The quota figures of the C{Q} element (Escargot's values).
QUOTA_MAX = 409600
QUOTA_NEXT = 204800


class OfflineQuotaExceeded(Exception):
    """
    The recipient already has as many offline messages waiting as the
    store allows; the new one was not stored.
    """

    def __init__(self, recipient: str, limit: int) -> None:
        super().__init__(f"{recipient} already has {limit} offline messages waiting")
        self.recipient = recipient
        self.limit = limit


@dataclass(frozen=True)
class StoredOfflineMessage:
    """
    One waiting offline message.

    @ivar messageId: an upper-case GUID from 122 random bits: the RSI
        serves a message to whoever names its id with the right ticket,
        so ids must not be guessable or sequential.
    @ivar received: when the server accepted it (Unix seconds).
    @ivar runId: C{X-OIM-Run-Id}, a braced GUID.
    @ivar sequence: C{X-OIM-Sequence-Num} within the run (1 for a UUM).
    """

    messageId: str
    recipient: str
    sender: str
    senderName: str
    text: str = field(repr=False)
    received: float
    runId: str
    sequence: int = 1

    @property
    def receivedTime(self) -> datetime:
        """
        L{received} as an aware UTC datetime.
        """
        return datetime.fromtimestamp(self.received, timezone.utc)


def newMessageId() -> str:
    """
    A fresh message id: C{uuid4} draws on C{os.urandom}.
    """
    return str(uuid.uuid4()).upper()


class IOfflineMessageStore(Interface):
    """
    Where the offline messages of the local network wait for their
    recipients. Synchronous, reactor thread only, like the account store.
    """

    def storeOfflineMessage(message: StoredOfflineMessage) -> None:
        """
        Keep C{message} for C{message.recipient}.

        @raise OfflineQuotaExceeded: the recipient's cap is reached.
        """

    def listOfflineMessages(recipient: str) -> list[StoredOfflineMessage]:
        """
        The messages waiting for C{recipient}, oldest first.
        """

    def deleteOfflineMessages(recipient: str, messageIds: Iterable[str]) -> list[str]:
        """
        Delete those of C{messageIds} that wait for C{recipient} (ids of
        other recipients are left alone); the ids actually deleted.
        """


@implementer(IOfflineMessageStore)
class MemoryOfflineStore:
    """
    L{IOfflineMessageStore} in memory (lost on restart; the durable
    account store replaces it).
    """

    def __init__(self, maxPerRecipient: int = DEFAULT_MAX_PER_RECIPIENT) -> None:
        if maxPerRecipient < 1:
            raise ValueError(f"maxPerRecipient must be at least 1, not {maxPerRecipient!r}")
        self.maxPerRecipient = maxPerRecipient
        # Insertion-ordered: messages received at the same instant are
        # listed in the order they arrived.
        self._byRecipient: dict[str, dict[str, StoredOfflineMessage]] = {}

    def storeOfflineMessage(self, message: StoredOfflineMessage) -> None:
        recipient = normalizeEmail(message.recipient)
        waiting = self._byRecipient.setdefault(recipient, {})
        if len(waiting) >= self.maxPerRecipient:
            raise OfflineQuotaExceeded(recipient, self.maxPerRecipient)
        waiting[message.messageId] = message

    def listOfflineMessages(self, recipient: str) -> list[StoredOfflineMessage]:
        waiting = self._byRecipient.get(normalizeEmail(recipient), {})
        return sorted(waiting.values(), key=lambda m: m.received)

    def deleteOfflineMessages(self, recipient: str, messageIds: Iterable[str]) -> list[str]:
        key = normalizeEmail(recipient)
        waiting = self._byRecipient.get(key, {})
        deleted = [i for i in dict.fromkeys(messageIds) if waiting.pop(i, None) is not None]
        if not waiting:
            self._byRecipient.pop(key, None)
        return deleted


@implementer(IOfflineMessageStore)
class AccountStoreMailbox:
    """
    L{IOfflineMessageStore} over the account store's own offline-message
    methods (L{msnp.server.interfaces.IAccountStore}: C{storeOfflineMessage(
    recipient, sender, senderName, payload)} and friends), so that with
    the SQLite store the messages are committed to disk and survive a
    restart of the server.

    The account store numbers its messages sequentially, which would make
    them guessable on the RSI; so each message keeps its own unguessable
    id, run and sequence inside the stored payload (a small JSON
    document), and the store's numbers are used only to delete.
    """

    def __init__(self, accounts: object, maxPerRecipient: int = DEFAULT_MAX_PER_RECIPIENT) -> None:
        """
        @param accounts: an L{msnp.server.interfaces.IAccountStore}.
        """
        if maxPerRecipient < 1:
            raise ValueError(f"maxPerRecipient must be at least 1, not {maxPerRecipient!r}")
        self.accounts: Any = accounts
        self.maxPerRecipient = maxPerRecipient

    def __repr__(self) -> str:
        return f"<AccountStoreMailbox over {self.accounts!r}>"

    def _rows(self, recipient: str) -> list[tuple[Any, StoredOfflineMessage]]:
        rows = []
        for row in self.accounts.listOfflineMessages(recipient):
            message = _decodeRow(row)
            if message is not None:
                rows.append((row.messageId, message))
        return rows

    def storeOfflineMessage(self, message: StoredOfflineMessage) -> None:
        recipient = normalizeEmail(message.recipient)
        if len(self.accounts.listOfflineMessages(recipient)) >= self.maxPerRecipient:
            raise OfflineQuotaExceeded(recipient, self.maxPerRecipient)
        payload = json.dumps({
            "v": 1, "id": message.messageId, "text": message.text, "received": message.received,
            "run": message.runId, "seq": message.sequence,
        }).encode("utf-8")
        try:
            self.accounts.storeOfflineMessage(recipient, message.sender, message.senderName, payload)
        except KeyError:
            raise OfflineQuotaExceeded(recipient, 0) from None

    def listOfflineMessages(self, recipient: str) -> list[StoredOfflineMessage]:
        return [message for _, message in self._rows(recipient)]

    def deleteOfflineMessages(self, recipient: str, messageIds: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(messageIds))
        byId = {message.messageId: rowId for rowId, message in self._rows(recipient)}
        found = [i for i in wanted if i in byId]
        if found:
            self.accounts.deleteOfflineMessages(recipient, [byId[i] for i in found])
        return found


def _decodeRow(row: Any) -> Optional[StoredOfflineMessage]:
    """
    The message an account-store row holds, or L{None} (logged) for a row
    that is not one of ours.
    """
    try:
        document = json.loads(bytes(row.payload).decode("utf-8"))
        return StoredOfflineMessage(
            messageId=str(document["id"]),
            recipient=row.recipient,
            sender=row.sender,
            senderName=row.senderName,
            text=str(document["text"]),
            received=float(document.get("received", row.received)),
            runId=str(document["run"]),
            sequence=int(document["seq"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warn("Ignoring an unreadable stored offline message {id}", id=getattr(row, "messageId", "?"))
        return None


# -- accepting a UUM -----------------------------------------------------------------------


def mayLeaveMessage(sender: Account, recipient: Account) -> bool:
    """
    Whether C{recipient} accepts offline messages from C{sender}: not when
    the sender is blocked, nor under C{BLP BL} unless allowed (Q.1.2, as
    Escargot checks; a refused message is dropped silently).
    """
    if recipient.hasRole(BLOCK, sender.email):
        return False
    if recipient.blp == "BL" and not recipient.hasRole(ALLOW, sender.email):
        return False
    return True


def messageFromUUM(
    message: NetworkMessage, sender: str, senderName: str, now: float,
    runId: Optional[str] = None, sequence: int = 1,
) -> StoredOfflineMessage:
    """
    The message to store for an accepted offline C{UUM} (network 1, text,
    C{Dest-Agent: client}; the caller checks those and L{mayLeaveMessage}).
    The text is the body as sent (UTF-8), formatting discarded.

    @param runId: the run it belongs to (a fresh one by default).
    @param sequence: its number within the run.
    """
    return StoredOfflineMessage(
        messageId=newMessageId(),
        recipient=normalizeEmail(message.recipient),
        sender=normalizeEmail(sender),
        senderName=senderName,
        text=message.text,
        received=now,
        runId=runId or newRunId(),
        sequence=sequence,
    )


def newRunId() -> str:
    """
    A fresh C{X-OIM-Run-Id}: a braced upper-case GUID.
    """
    return "{" + str(uuid.uuid4()).upper() + "}"


class UUMAction(enum.Enum):
    """
    What the NS does with a received C{UUM}.
    """

    #: Keep it as an offline message and announce it.
    STORE = "store"
    #: Pass it on as C{UBM} (a network-32 contact that is signed in).
    RELAY = "relay"
    #: Ignore it; C{UUM} has no reply, so nothing is sent back.
    DROP = "drop"


@dataclass(frozen=True)
class UUMVerdict:
    """
    L{judgeUUM}'s answer, with the reason for the log.
    """

    action: UUMAction
    reason: str


def judgeUUM(
    message: NetworkMessage,
    sender: Account,
    recipient: Optional[Account],
    recipientOnline: bool,
    recipientNetwork: int = NETWORK_PASSPORT,
) -> UUMVerdict:
    """
    Decide what happens to a C{UUM} (reference Q.1.2 and Q.2;
    docs/offline.md for where msnp differs from Escargot).

    @param recipient: the recipient's account, L{None} if unknown.
    @param recipientOnline: whether the recipient has a place signed in
        and not hidden.
    @param recipientNetwork: the network the local network has the
        recipient on (32 for its Yahoo! test accounts).
    """
    if recipient is None:
        return UUMVerdict(UUMAction.DROP, "unknown recipient")
    if sender.network == NETWORK_YAHOO and not message.offline:
        # A network-32 account (standing for a Yahoo! user) writing to a
        # Live contact: passed on as UBM, like the other direction.
        if message.recipientNetwork != recipientNetwork:
            return UUMVerdict(UUMAction.DROP, f"recipient is not on network {message.recipientNetwork}")
        if not mayLeaveMessage(sender, recipient):
            return UUMVerdict(UUMAction.DROP, "the recipient does not accept messages from the sender")
        if not recipientOnline:
            return UUMVerdict(UUMAction.DROP, "recipient of a network-32 message is offline")
        return UUMVerdict(UUMAction.RELAY, "message from network 32")
    if message.recipientNetwork != recipientNetwork:
        return UUMVerdict(UUMAction.DROP, f"recipient is not on network {message.recipientNetwork}")
    if not mayLeaveMessage(sender, recipient):
        return UUMVerdict(UUMAction.DROP, "the recipient does not accept messages from the sender")
    if message.recipientNetwork == NETWORK_YAHOO:
        if not recipientOnline:
            return UUMVerdict(UUMAction.DROP, "network-32 recipient is offline")
        return UUMVerdict(UUMAction.RELAY, "network-32 message")
    if message.kind is not MessageKind.TEXT:
        return UUMVerdict(UUMAction.DROP, "typing or nudge to a Live contact")
    if not message.offline:
        return UUMVerdict(UUMAction.DROP, "no Dest-Agent: client")
    # Escargot drops a UUM to a recipient who is online; msnp keeps it
    # (the sender believed the recipient offline, and the live OIM
    # notification reaches the recipient), so nothing is lost to a race.
    return UUMVerdict(UUMAction.STORE, "offline message")


# -- what the NS sends ---------------------------------------------------------------------


def _entry(message: StoredOfflineMessage, withTime: bool, folder: str) -> str:
    received = f"<RT>{formatTimestamp(message.receivedTime)}</RT>" if withTime else ""
    return (
        f"<M><T>11</T><S>6</S>{received}<RS>0</RS><SZ>{len(getMessageText(message))}</SZ>"
        f"<E>{escapeText(message.sender)}</E><I>{escapeText(message.messageId)}</I>"
        f"<F>{folder}</F><N>{escapeText(encodeName(message.senderName))}</N></M>"
    )


def mailDataDocument(messages: Iterable[StoredOfflineMessage], initial: bool = True) -> str:
    """
    The C{MD} document: with the mailbox and quota elements and C{RT}
    times for the initial message and GetMetadata, the bare C{M} entries
    with the live folder name for a notification (Q.1.4).
    """
    if not initial:
        entries = "".join(_entry(m, True, ".!!OIM") for m in messages)
        return f"<MD>{entries}</MD>"
    entries = "".join(_entry(m, True, OIM_FOLDER) for m in messages)
    return (
        "<MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>"
        f"<Q><QTM>{QUOTA_MAX}</QTM><QNM>{QUOTA_NEXT}</QNM></Q>{entries}</MD>"
    )


def _nsPayload(contentType: str, lines: list[str]) -> bytes:
    text = (
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {contentType}; charset=UTF-8\r\n\r\n"
        + "".join(line + "\r\n" for line in lines)
    )
    return text.encode("utf-8")


def buildInitialMailData(messages: Iterable[StoredOfflineMessage]) -> bytes:
    """
    The payload of the C{MSG Hotmail Hotmail} sent after a place's first
    C{CHG}: every waiting message, or C{too-large} past L{MAX_LISTED}.
    """
    waiting = list(messages)
    value = TOO_LARGE if len(waiting) > MAX_LISTED else mailDataDocument(waiting)
    return _nsPayload(INITIAL_MAIL_DATA_TYPE, [f"Mail-Data: {value}"])


def buildOIMNotification(messages: Iterable[StoredOfflineMessage]) -> bytes:
    """
    The payload announcing messages that arrived while the recipient is
    signed in (sent to each place that has sent its first C{CHG}).
    """
    return _nsPayload(OIM_NOTIFICATION_TYPE, [f"Mail-Data: {mailDataDocument(messages, initial=False)}"])


def buildActiveMailNotification(count: int) -> bytes:
    """
    The payload telling the place that deleted C{count} messages that
    they moved from the OIM folder to the bin.
    """
    return _nsPayload(
        "text/x-msmsgsactivemailnotification",
        ["Src-Folder: .!!OIM", "Dest-Folder: .!!trAsH", f"Message-Delta: {int(count)}"],
    )


def getMessageText(message: StoredOfflineMessage) -> str:
    """
    The RFC 822 text RSI C{GetMessage} returns (Q.1.6): CR LF line ends,
    the text base64 in lines of 76, C{Date} in RFC 2822 form (UTC).
    """
    encoded = base64.b64encode(message.text.encode("utf-8")).decode("ascii")
    body = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    name = encodeName(message.senderName)
    sender = f"{name} <{message.sender}>" if name else f"<{message.sender}>"
    headers = [
        ("From", sender),
        ("To", message.recipient),
        ("Subject", ""),
        ("X-OIM-originatingSource", "127.0.0.1"),
        ("X-OIMProxy", "MSNMSGR"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("Content-Transfer-Encoding", "base64"),
        ("X-OIM-Message-Type", "OfflineMessage"),
        ("X-OIM-Run-Id", message.runId),
        ("X-OIM-Sequence-Num", str(message.sequence)),
        ("Message-ID", f"<{message.messageId}@oim.msnp.invalid>"),
        ("Date", email.utils.format_datetime(message.receivedTime)),
        ("Return-Path", "ndr@oim.messenger.msn.com"),
    ]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"{head}\r\n{body}"


# -- the NS side, in one place -------------------------------------------------------------

#: Sends one C{MSG Hotmail Hotmail} payload to every place of an account
#: that has sent its first C{CHG} (the NS implements it).
Announce = Callable[[str, bytes], None]


@dataclass(frozen=True)
class UUMOutcome:
    """
    What L{OfflineMessageService.receiveUUM} did.

    @ivar verdict: stored, relayed or dropped, and why.
    @ivar relay: for L{UUMAction.RELAY}, the C{UBM} to send to the recipient.
    @ivar stored: for L{UUMAction.STORE}, the message kept.
    """

    verdict: UUMVerdict
    relay: Optional[Command] = None
    stored: Optional[StoredOfflineMessage] = None


class OfflineMessageService:
    """
    The notification server's part in offline messages: take C{UUM}s,
    keep them in the store, and say what to announce. The NS keeps the
    sockets; this object keeps the rules, so the NS handler stays short.
    """

    def __init__(
        self, store: IOfflineMessageStore, clock: IReactorTime, announce: Announce,
        maxPayload: int = MAX_UUM_PAYLOAD,
    ) -> None:
        """
        @param store: where messages wait (the durable account store, or
            a L{MemoryOfflineStore}).
        @param clock: where receive times come from.
        @param announce: sends a payload to an account's signed-in places.
        @param maxPayload: larger C{UUM} payloads are dropped.
        """
        self.store = store
        self.clock = clock
        self.announce = announce
        self.maxPayload = maxPayload
        # One run per sender and recipient for the life of the server,
        # numbered from 1, as a client's Store2 session numbers its
        # messages: it keeps messages of one instant in order.
        self._runs: dict[tuple[str, str], tuple[str, int]] = {}

    def receiveUUM(
        self,
        command: Command,
        sender: Account,
        recipient: Optional[Account],
        recipientOnline: bool,
        recipientNetwork: int = NETWORK_PASSPORT,
    ) -> UUMOutcome:
        """
        Handle one C{UUM} from C{sender}: nothing is ever answered on the
        wire (docs/offline.md), whatever the outcome; a stored message is
        announced at once to the recipient's places (the live OIM
        notification). Never raises for bad input.
        """
        if len(command.payload or b"") > self.maxPayload:
            return self._dropped(sender, f"payload over {self.maxPayload} bytes")
        try:
            message = parseUUM(command)
        except MalformedNetworkMessage as e:
            return self._dropped(sender, str(e))
        verdict = judgeUUM(message, sender, recipient, recipientOnline, recipientNetwork)
        if verdict.action is UUMAction.DROP or recipient is None:
            return self._dropped(sender, verdict.reason)
        if verdict.action is UUMAction.RELAY:
            return UUMOutcome(verdict, relay=relayAsUBM(message, sender.email, sender.network))
        pair = (sender.email, recipient.email)
        runId, last = self._runs.get(pair, (newRunId(), 0))
        stored = messageFromUUM(
            message, sender.email, sender.displayName, self.clock.seconds(), runId, last + 1
        )
        try:
            self.store.storeOfflineMessage(stored)
        except OfflineQuotaExceeded as e:
            return self._dropped(sender, str(e))
        self._runs[pair] = (runId, last + 1)
        log.info("Stored an offline message from {sender} for {recipient}",
                 sender=sender.email, recipient=recipient.email)
        self.announce(recipient.email, buildOIMNotification([stored]))
        return UUMOutcome(verdict, stored=stored)

    def _dropped(self, sender: Account, reason: str) -> UUMOutcome:
        log.info("Dropping UUM from {sender}: {reason}", sender=sender.email, reason=reason)
        return UUMOutcome(UUMVerdict(UUMAction.DROP, reason))

    def initialMailData(self, recipient: str) -> bytes:
        """
        The mail-data payload for a place's first C{CHG}.
        """
        return buildInitialMailData(self.store.listOfflineMessages(recipient))

    def messagesDeleted(self, account: Account, messageIds: list[str]) -> None:
        """
        The RSI deleted messages (its C{onDeleted}): tell the account's
        places that they moved to the bin.
        """
        self.announce(account.email, buildActiveMailNotification(len(messageIds)))
