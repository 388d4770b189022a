"""
Tests for L{msnp.server.offline}: the in-memory store and its cap, the
privacy rule, and that what the server writes is what the client reads.
"""

from __future__ import annotations

import os
from typing import Any

from zope.interface.verify import verifyObject

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msnp.oim import (
    INITIAL_MAIL_DATA_TYPE,
    OIM_NOTIFICATION_TYPE,
    decodeOfflineMessage,
    inSendOrder,
    parseMailDataPayload,
)
from msnp.server.accountmodel import ALLOW, BLOCK
from msnp.server.accounts import AccountStore
from msnp.server.tickets import TicketState
from msnp.server.offline import (
    MAX_LISTED,
    AccountStoreMailbox,
    IOfflineMessageStore,
    MemoryOfflineStore,
    OfflineMessageService,
    OfflineQuotaExceeded,
    StoredOfflineMessage,
    buildActiveMailNotification,
    buildInitialMailData,
    buildOIMNotification,
    UUMAction,
    judgeUUM,
    getMessageText,
    mayLeaveMessage,
    messageFromUUM,
    newMessageId,
)
from msnp.uum import NetworkMessage, buildNetworkText, buildNetworkTyping, buildOfflineText, parseUUM
from msnp.wire import Command, Direction, parseCommand, serialize


def stored(messageId: str, recipient: str = "bob@example.com", received: float = 1262332800.25,
           text: str = "hello") -> StoredOfflineMessage:
    return StoredOfflineMessage(
        messageId=messageId, recipient=recipient, sender="alice@example.com",
        senderName="Älice", text=text, received=received, runId="{RUN}",
    )


class StoreTests(SynchronousTestCase):
    """
    L{MemoryOfflineStore}.
    """

    def test_interface(self) -> None:
        """
        It provides L{IOfflineMessageStore}.
        """
        self.assertTrue(verifyObject(IOfflineMessageStore, MemoryOfflineStore()))

    def test_storeListDelete(self) -> None:
        """
        Messages are listed per recipient, oldest first; deleting returns
        only the ids that were there, and never touches another recipient's.
        """
        store = MemoryOfflineStore()
        store.storeOfflineMessage(stored("B", received=2))
        store.storeOfflineMessage(stored("A", received=1))
        store.storeOfflineMessage(stored("C", recipient="carol@example.com"))
        self.assertEqual([m.messageId for m in store.listOfflineMessages("Bob@Example.com")], ["A", "B"])
        self.assertEqual(store.deleteOfflineMessages("bob@example.com", ["A", "C", "Z"]), ["A"])
        self.assertEqual([m.messageId for m in store.listOfflineMessages("carol@example.com")], ["C"])
        self.assertEqual([m.messageId for m in store.listOfflineMessages("bob@example.com")], ["B"])

    def test_cap(self) -> None:
        """
        Past the per-recipient cap the store refuses with a clear error;
        other recipients are unaffected; a deletion makes room.
        """
        store = MemoryOfflineStore(maxPerRecipient=2)
        store.storeOfflineMessage(stored("A"))
        store.storeOfflineMessage(stored("B"))
        error = self.assertRaises(OfflineQuotaExceeded, store.storeOfflineMessage, stored("C"))
        self.assertIn("bob@example.com", str(error))
        self.assertEqual(error.limit, 2)
        store.storeOfflineMessage(stored("D", recipient="carol@example.com"))
        store.deleteOfflineMessages("bob@example.com", ["A"])
        store.storeOfflineMessage(stored("C"))

    def test_idsUnguessable(self) -> None:
        """
        Ids are random GUIDs, all different, in the upper-case form.
        """
        ids = {newMessageId() for _ in range(200)}
        self.assertEqual(len(ids), 200)
        self.assertTrue(all(len(i) == 36 and i == i.upper() for i in ids))


class AcceptTests(SynchronousTestCase):
    """
    L{mayLeaveMessage} and L{messageFromUUM}.
    """

    def test_privacy(self) -> None:
        """
        A blocked sender may not leave a message; under C{BLP BL} only an
        allowed one may.
        """
        accounts = AccountStore()
        alice = accounts.addAccount("alice@example.com", "pw")
        bob = accounts.addAccount("bob@example.com", "pw")
        self.assertTrue(mayLeaveMessage(alice, bob))
        accounts.setRole(bob, BLOCK, alice.email)
        self.assertFalse(mayLeaveMessage(alice, bob))
        accounts.clearRole(bob, BLOCK, alice.email)
        bob.blp = "BL"
        self.assertFalse(mayLeaveMessage(alice, bob))
        accounts.setRole(bob, ALLOW, alice.email)
        self.assertTrue(mayLeaveMessage(alice, bob))

    def test_fromUUM(self) -> None:
        """
        An offline C{UUM} becomes a stored message with the text as sent
        (UTF-8, newline kept), the sender, a fresh id and run id.
        """
        wire = serialize(buildOfflineText(5, "bob@example.com", "naïve\nline"))
        uum = parseUUM(parseCommand(wire, Direction.FROM_CLIENT))
        first = messageFromUUM(uum, "Alice@Example.com", "Alice", 100.0)
        second = messageFromUUM(uum, "alice@example.com", "Alice", 100.0)
        self.assertEqual((first.recipient, first.sender, first.text), ("bob@example.com", "alice@example.com", "naïve\nline"))
        self.assertNotEqual(first.messageId, second.messageId)
        self.assertTrue(first.runId.startswith("{") and first.runId != second.runId)


class PayloadTests(SynchronousTestCase):
    """
    What the NS sends is what the client's parsers read.
    """

    def test_initialMailData(self) -> None:
        """
        The initial message announces every message with id, sender,
        name and the exact receive time (milliseconds).
        """
        payload = buildInitialMailData([stored("A"), stored("B", received=1262332801.5)])
        self.assertIn(INITIAL_MAIL_DATA_TYPE.encode(), payload)
        data = parseMailDataPayload(payload)
        self.assertEqual([m.messageId for m in data.messages], ["A", "B"])
        self.assertEqual(data.messages[0].senderName, "Älice")
        self.assertEqual(data.messages[0].received, stored("A").receivedTime)
        self.assertEqual(data.messages[1].received, stored("B", received=1262332801.5).receivedTime)

    def test_tooLarge(self) -> None:
        """
        Past L{MAX_LISTED} waiting messages the initial message says
        C{too-large}; no messages at all is an empty C{MD}.
        """
        many = [stored(str(i)) for i in range(MAX_LISTED + 1)]
        self.assertTrue(parseMailDataPayload(buildInitialMailData(many)).tooLarge)
        self.assertEqual(parseMailDataPayload(buildInitialMailData([])).messages, ())

    def test_notification(self) -> None:
        """
        The live notification carries the new message in the live folder.
        """
        payload = buildOIMNotification([stored("A")])
        self.assertIn(OIM_NOTIFICATION_TYPE.encode(), payload)
        (entry,) = parseMailDataPayload(payload).messages
        self.assertEqual((entry.messageId, entry.folder), ("A", ".!!OIM"))

    def test_activeMail(self) -> None:
        """
        The deletion notice names the folders and the count.
        """
        payload = buildActiveMailNotification(3)
        self.assertIn(b"Message-Delta: 3\r\n", payload)
        self.assertIn(b"Src-Folder: .!!OIM\r\n", payload)

    def test_getMessageTextDecodes(self) -> None:
        """
        The GetMessage text decodes back to the message: a long non-ASCII
        text with a newline, the sender and name, the time.
        """
        text = ("Grüße, 世界! 🦊\n" * 80)[:1200]
        message = stored("A", text=text)
        decoded = decodeOfflineMessage(getMessageText(message), "A")
        self.assertEqual(decoded.text, text)
        self.assertEqual((decoded.sender, decoded.senderName), ("alice@example.com", "Älice"))
        self.assertEqual(decoded.sent, message.receivedTime.replace(microsecond=0))
        self.assertEqual((decoded.runId, decoded.sequence), ("{RUN}", 1))


class JudgeTests(SynchronousTestCase):
    """
    L{judgeUUM}: store, relay or drop.
    """

    def setUp(self) -> None:
        self.accounts = AccountStore()
        self.alice = self.accounts.addAccount("alice@example.com", "pw")
        self.bob = self.accounts.addAccount("bob@example.com", "pw")
        self.eve = self.accounts.addAccount("eve@yahoo.com", "pw")

    def uum(self, command: Command) -> NetworkMessage:
        return parseUUM(parseCommand(serialize(command), Direction.FROM_CLIENT))

    def test_offlineText(self) -> None:
        """
        An offline text is stored whether or not the recipient is online;
        to an unknown or blocking recipient it is dropped.
        """
        message = self.uum(buildOfflineText(1, "bob@example.com", "hi"))
        for online in (False, True):
            self.assertEqual(judgeUUM(message, self.alice, self.bob, online).action, UUMAction.STORE)
        self.assertEqual(judgeUUM(message, self.alice, None, False).action, UUMAction.DROP)
        self.accounts.setRole(self.bob, BLOCK, "alice@example.com")
        verdict = judgeUUM(message, self.alice, self.bob, False)
        self.assertEqual(verdict.action, UUMAction.DROP)
        self.assertIn("does not accept", verdict.reason)

    def test_notOffline(self) -> None:
        """
        Network 1 without C{Dest-Agent: client}, or typing, is dropped.
        """
        plain = self.uum(buildNetworkText(1, "bob@example.com", "hi", network=1))
        typing = self.uum(buildNetworkTyping(2, "bob@example.com", "alice@example.com", network=1))
        for message in (plain, typing):
            self.assertEqual(judgeUUM(message, self.alice, self.bob, False).action, UUMAction.DROP)

    def test_network32(self) -> None:
        """
        To a network-32 account: relayed when it is online, dropped when
        offline or when the network field does not match the account.
        """
        message = self.uum(buildNetworkText(1, "eve@yahoo.com", "hi"))
        self.assertEqual(judgeUUM(message, self.alice, self.eve, True, 32).action, UUMAction.RELAY)
        self.assertEqual(judgeUUM(message, self.alice, self.eve, False, 32).action, UUMAction.DROP)
        self.assertEqual(judgeUUM(message, self.alice, self.eve, True, 1).action, UUMAction.DROP)

    def test_fromNetwork32(self) -> None:
        """
        A network-32 account writing to a Live account (network 1, no
        Dest-Agent: text or typing) is relayed when the recipient is
        online, dropped when offline or blocking; its offline message
        (Dest-Agent) is stored like anyone's.
        """
        yahoo = self.accounts.addAccount("zed@yahoo.com", "pw", network=32)
        text = self.uum(buildNetworkText(1, "bob@example.com", "hi", network=1))
        typing = self.uum(buildNetworkTyping(2, "bob@example.com", "zed@yahoo.com", network=1))
        for message in (text, typing):
            self.assertEqual(judgeUUM(message, yahoo, self.bob, True).action, UUMAction.RELAY)
            self.assertEqual(judgeUUM(message, yahoo, self.bob, False).action, UUMAction.DROP)
        offline = self.uum(buildOfflineText(3, "bob@example.com", "later"))
        self.assertEqual(judgeUUM(offline, yahoo, self.bob, False).action, UUMAction.STORE)
        self.accounts.setRole(self.bob, BLOCK, "zed@yahoo.com")
        self.assertEqual(judgeUUM(text, yahoo, self.bob, True).action, UUMAction.DROP)


class ServiceTests(SynchronousTestCase):
    """
    L{OfflineMessageService}: the NS side of offline messages.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1262332800.5)
        self.accounts = AccountStore()
        self.alice = self.accounts.addAccount("alice@example.com", "pw", "Alice")
        self.bob = self.accounts.addAccount("bob@example.com", "pw")
        self.eve = self.accounts.addAccount("eve@yahoo.com", "pw")
        self.store = MemoryOfflineStore(maxPerRecipient=1)
        self.announced: list[tuple[str, bytes]] = []
        self.service = OfflineMessageService(self.store, self.clock, lambda e, p: self.announced.append((e, p)))

    def wire(self, command: Command) -> Command:
        return parseCommand(serialize(command), Direction.FROM_CLIENT)

    def test_storeAndAnnounce(self) -> None:
        """
        An offline text is stored with the sender's name and the clock's
        time, and announced to the recipient; the initial mail data then
        lists it. Past the cap the next one is dropped, not announced.
        """
        outcome = self.service.receiveUUM(self.wire(buildOfflineText(1, "bob@example.com", "hi")), self.alice, self.bob, False)
        self.assertEqual(outcome.verdict.action, UUMAction.STORE)
        assert outcome.stored is not None
        self.assertEqual((outcome.stored.senderName, outcome.stored.received), ("Alice", 1262332800.5))
        ((recipient, payload),) = self.announced
        self.assertEqual(recipient, "bob@example.com")
        (entry,) = parseMailDataPayload(payload).messages
        self.assertEqual(entry.messageId, outcome.stored.messageId)
        (listed,) = parseMailDataPayload(self.service.initialMailData("bob@example.com")).messages
        self.assertEqual(listed.messageId, outcome.stored.messageId)
        again = self.service.receiveUUM(self.wire(buildOfflineText(2, "bob@example.com", "2")), self.alice, self.bob, False)
        self.assertEqual(again.verdict.action, UUMAction.DROP)
        self.assertIn("already has 1", again.verdict.reason)
        self.assertEqual(len(self.announced), 1)

    def test_relay(self) -> None:
        """
        A network-32 text to a signed-in network-32 account becomes a UBM.
        """
        command = self.wire(buildNetworkText(1, "eve@yahoo.com", "hi eve"))
        outcome = self.service.receiveUUM(command, self.alice, self.eve, True, 32)
        assert outcome.relay is not None
        self.assertEqual(outcome.relay.arguments, ("alice@example.com", "1", "eve@yahoo.com", "32", "1"))
        self.assertEqual(self.announced, [])

    def test_relayBack(self) -> None:
        """
        A network-32 account's text to a Live account becomes C{UBM sender
        32 recipient 1}, the payload unchanged.
        """
        yahoo = self.accounts.addAccount("zed@yahoo.com", "pw", network=32)
        command = self.wire(buildNetworkText(1, "bob@example.com", "hi bob", network=1))
        outcome = self.service.receiveUUM(command, yahoo, self.bob, True)
        assert outcome.relay is not None
        self.assertEqual(outcome.relay.arguments, ("zed@yahoo.com", "32", "bob@example.com", "1", "1"))
        self.assertEqual(outcome.relay.payload, command.payload)

    def test_hostileDropped(self) -> None:
        """
        A malformed or oversized UUM is dropped without raising.
        """
        bad = Command("UUM", 1, ("bob@example.com", "1", "9"), b"x")
        self.assertEqual(self.service.receiveUUM(bad, self.alice, self.bob, False).verdict.action, UUMAction.DROP)
        huge = Command("UUM", 1, ("bob@example.com", "1", "1"), b"\r\n\r\n" + b"x" * 9000)
        self.assertEqual(self.service.receiveUUM(huge, self.alice, self.bob, False).verdict.action, UUMAction.DROP)
        self.assertEqual(self.store.listOfflineMessages("bob@example.com"), [])

    def test_deletedAnnounced(self) -> None:
        """
        A deletion is announced as active mail with the count.
        """
        self.service.messagesDeleted(self.bob, ["A", "B"])
        self.assertEqual(self.announced, [("bob@example.com", buildActiveMailNotification(2))])

    def test_sameInstantKeepsOrder(self) -> None:
        """
        Three texts received at the same instant share a run with
        sequence numbers 1-3, are listed in arrival order, and the
        client's ordering of what GetMessage returns keeps that order.
        """
        service = OfflineMessageService(MemoryOfflineStore(), self.clock, lambda e, p: None)
        for n, text in enumerate(["one", "two", "three"], start=1):
            service.receiveUUM(self.wire(buildOfflineText(n, "bob@example.com", text)), self.alice, self.bob, False)
        waiting = service.store.listOfflineMessages("bob@example.com")
        self.assertEqual([(m.text, m.sequence) for m in waiting], [("one", 1), ("two", 2), ("three", 3)])
        self.assertEqual(len({m.runId for m in waiting}), 1)
        data = parseMailDataPayload(service.initialMailData("bob@example.com"))
        decoded = [decodeOfflineMessage(getMessageText(m), m.messageId, a) for m, a in zip(waiting, data.messages)]
        self.assertEqual([m.text for m in inSendOrder(list(reversed(decoded)))], ["one", "two", "three"])


class WebTicketTests(SynchronousTestCase):
    """
    L{AccountStore.checkWebTicket}: the RSI's view of the SSO's
    C{messenger.msn.com} tickets.
    """

    def test_check(self) -> None:
        """
        A ticket of a grant is valid (with its account) until the grant
        expires; an unknown one, or one whose account is gone, is unknown.
        """
        clock = Clock()
        accounts = AccountStore(ticketLifetime=10, clock=clock)
        alice = accounts.addAccount("alice@example.com", "pw")
        grant = accounts.issueTickets(alice)
        check = accounts.checkWebTicket(grant.webTicket)
        self.assertEqual((check.state, check.account), (TicketState.VALID, alice))
        self.assertEqual(accounts.checkWebTicket(grant.contactsTicket).state, TicketState.UNKNOWN)
        self.assertEqual(accounts.checkWebTicket("t=x&p=").state, TicketState.UNKNOWN)
        clock.advance(10)
        self.assertEqual(accounts.checkWebTicket(grant.webTicket).state, TicketState.EXPIRED)

    def test_networkOfAccount(self) -> None:
        """
        Accounts are on network 1 unless made a network-32 one; other
        networks are refused.
        """
        accounts = AccountStore()
        self.assertEqual(accounts.addAccount("a@example.com", "pw").network, 1)
        self.assertEqual(accounts.addAccount("y@yahoo.com", "pw", network=32).network, 32)
        with self.assertRaises(ValueError):
            accounts.addAccount("p@example.com", "pw", network=4)


class AccountStoreMailboxTests(SynchronousTestCase):
    """
    L{AccountStoreMailbox}: the offline messages in the account store's
    own mailbox, in memory and in SQLite (across a reopen).
    """

    def stores(self) -> list[Any]:
        from msnp.server.sqlstore import SQLiteAccountStore

        from test.support import tempDirectory

        path = os.path.join(tempDirectory(self), "mailbox.sqlite3")
        sqlite = SQLiteAccountStore(path)
        self.addCleanup(sqlite.close)
        result = [AccountStore(), sqlite]
        for accounts in result:
            accounts.addAccount("alice@example.com", "pw")
            accounts.addAccount("bob@example.com", "pw")
        self.path = path
        return result

    def test_roundTrip(self) -> None:
        """
        Messages come back whole and in order with their own ids; deleting
        removes only the named ones of that recipient; past the cap the
        next one is refused.
        """
        for accounts in self.stores():
            mailbox = AccountStoreMailbox(accounts, maxPerRecipient=3)
            self.assertTrue(verifyObject(IOfflineMessageStore, mailbox))
            first = stored("A" * 8 + "-0000-4000-8000-000000000001", text="ü😀\nline")
            second = stored("B" * 8 + "-0000-4000-8000-000000000002")
            third = stored("C" * 8 + "-0000-4000-8000-000000000003")
            for message in (first, second, third):
                mailbox.storeOfflineMessage(message)
            self.assertEqual(mailbox.listOfflineMessages("bob@example.com"), [first, second, third])
            with self.assertRaises(OfflineQuotaExceeded):
                mailbox.storeOfflineMessage(stored("D" * 8 + "-0000-4000-8000-000000000004"))
            self.assertEqual(mailbox.deleteOfflineMessages("alice@example.com", [first.messageId]), [])
            self.assertEqual(
                mailbox.deleteOfflineMessages("bob@example.com", [first.messageId, "nope", first.messageId]),
                [first.messageId],
            )
            self.assertEqual(mailbox.listOfflineMessages("bob@example.com"), [second, third])

    def test_survivesReopen(self) -> None:
        """
        With the SQLite store the messages are on disk.
        """
        from msnp.server.sqlstore import SQLiteAccountStore

        _, sqlite = self.stores()
        message = stored("E" * 8 + "-0000-4000-8000-000000000005", text="kept")
        AccountStoreMailbox(sqlite).storeOfflineMessage(message)
        sqlite.close()
        reopened = SQLiteAccountStore(self.path)
        self.addCleanup(reopened.close)
        self.assertEqual(AccountStoreMailbox(reopened).listOfflineMessages("bob@example.com"), [message])

    def test_foreignRowsIgnored(self) -> None:
        """
        A row someone else put in the account store's mailbox (not our
        JSON) is skipped, not fatal.
        """
        accounts = AccountStore()
        accounts.addAccount("bob@example.com", "pw")
        accounts.storeOfflineMessage("bob@example.com", "x@example.com", "X", b"\xff not json")
        self.assertEqual(AccountStoreMailbox(accounts).listOfflineMessages("bob@example.com"), [])
