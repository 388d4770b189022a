"""
Tests for the ready-made observers of L{msnp.handlers}.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from msnp.richcontent import Ink, VoiceClip, Wink
from msnp.p2p.msnobject import TYPE_VOICE_CLIP, TYPE_WINK
from msnp.circles import Circle
from msnp.contacts import Contact, Place, Status
from msnp.errors import MessageNotDelivered
from msnp.p2p.msnobject import MSNObject
from msnp.handlers import EchoHandler, LogHandler, ObserverBase, loadHandlerFactory
from msnp.interfaces import IMessengerObserver, notifyObserver
from msnp.mime import TextMessage
from msnp.offline import OfflineFailure
from msnp.oim import OfflineMessage
from msnp.uun import ReceivedNotification, RTCActivity


class FakeConversation:
    """
    Records what is sent.
    """

    def __init__(self, result: "Deferred[None] | None" = None) -> None:
        self.sent: list[str] = []
        self.participants = {"bob@example.com"}
        self.result = result

    def sendText(self, text: str, format: Any = None) -> "Deferred[None]":
        self.sent.append(text)
        return self.result if self.result is not None else succeed(None)


class EchoHandlerTests(SynchronousTestCase):
    """
    L{EchoHandler} sends every text back where it came from.
    """

    def test_interface(self) -> None:
        """
        It provides the whole L{IMessengerObserver}.
        """
        self.assertTrue(verifyObject(IMessengerObserver, EchoHandler()))

    def test_echoes(self) -> None:
        """
        A message is answered with the same text in the same conversation.
        """
        handler = EchoHandler(client=object())
        conversation = FakeConversation()
        notifyObserver(handler, "messageReceived", conversation, TextMessage("bob@example.com", "Bob", "hi there"))
        self.assertEqual(conversation.sent, ["hi there"])
        self.assertEqual(handler.echoed, 1)

    def test_emptyIgnored(self) -> None:
        """
        An empty text is not echoed.
        """
        conversation = FakeConversation()
        EchoHandler().messageReceived(conversation, TextMessage("bob@example.com", "Bob", ""))
        self.assertEqual(conversation.sent, [])

    def test_failureLogged(self) -> None:
        """
        A message that cannot be delivered back is logged, not raised.
        """
        events: list[dict[str, Any]] = []
        handler = EchoHandler()
        handler.log = Logger(observer=events.append)  # type: ignore[arg-type]
        conversation = FakeConversation(fail(MessageNotDelivered("NAK")))
        handler.messageReceived(conversation, TextMessage("bob@example.com", "Bob", "hi"))
        self.assertEqual(len(events), 1)
        self.assertIn("bob@example.com", formatEvent(events[0]))
        self.assertIn("NAK", formatEvent(events[0]))


class LogHandlerTests(SynchronousTestCase):
    """
    L{LogHandler} turns every event into a structured log event.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.handler = LogHandler(logger=Logger(observer=self.events.append))  # type: ignore[arg-type]

    def test_interface(self) -> None:
        """
        It provides the whole L{IMessengerObserver}.
        """
        self.assertTrue(verifyObject(IMessengerObserver, self.handler))

    def test_everyEvent(self) -> None:
        """
        Each method of the interface emits exactly one event tagged with
        its name, whose text formats without error.
        """
        contact = Contact("bob@example.com", displayName="Bob")
        session = type("S", (), {"account": "me@example.com"})()
        conversation = FakeConversation()
        circle = Circle("00000000-0000-0000-0009-0123456789ab", "Family")
        arguments: dict[str, tuple[Any, ...]] = {
            "loginStep": ("SSO", 0.25),
            "signedIn": (session,),
            "signedOut": (session, "OTH"),
            "profileReceived": (session, {"MSPAuth": "x"}),
            "endpointsChanged": (session, {"{A}": object()}),
            "placeSignedIn": (session, Place("{11111111-2222-3333-4444-555555555555}", name="Laptop")),
            "placeSignedOut": (session, Place("{11111111-2222-3333-4444-555555555555}", name="Laptop")),
            "notificationReceived": (session, ReceivedNotification("bob@example.com", None, RTCActivity(1))),
            "contactCurrentMediaChanged": (contact, "Song - Artist"),
            "contactStatusChanged": (contact, Status.BUSY),
            "contactNameChanged": (contact, "Bobby"),
            "contactPersonalMessageChanged": (contact, "hello"),
            "contactPictureChanged": (contact, MSNObject.fromData("bob@example.com", b"\x89PNG\r\n\x1a\n")),
            "contactAddedYou": ("carol@example.com", "Carol"),
            "contactRemovedYou": ("carol@example.com",),
            "contactListChanged": (session,),
            "conversationStarted": (conversation,),
            "messageReceived": (conversation, TextMessage("bob@example.com", "Bob", "hi")),
            "typingReceived": (conversation, "bob@example.com"),
            "nudgeReceived": (conversation, "bob@example.com"),
            "participantJoined": (conversation, "bob@example.com"),
            "participantLeft": (conversation, "bob@example.com"),
            "conversationEnded": (conversation,),
            "circleJoined": (session, circle),
            "circleLeft": (session, circle),
            "circleChanged": (session, circle),
            "circleInvitationReceived": (session, circle),
            "circleRosterChanged": (session, circle, frozenset({"bob@example.com"}), frozenset()),
            "circleMessageReceived": (session, circle, "bob@example.com", TextMessage("bob@example.com", "Bob", "hi")),
            "circleTypingReceived": (session, circle, "bob@example.com"),
            "circleNudgeReceived": (session, circle, "bob@example.com"),
            "offlineMessageReceived": (
                session,
                OfflineMessage("ID", "bob@example.com", "Bob", "hi", datetime(2009, 1, 1, tzinfo=timezone.utc)),
            ),
            "offlineMessageFailed": (session, OfflineFailure("ID", "fetch", ValueError("x"), 1, True)),
            "networkMessageReceived": (session, TextMessage("eve@yahoo.com", "Eve", "hi")),
            "networkTypingReceived": (session, "eve@yahoo.com"),
            "networkNudgeReceived": (session, "eve@yahoo.com"),
            "winkReceived": (session, conversation, "bob@example.com",
                             Wink(MSNObject.fromData("bob@example.com", b"cab", TYPE_WINK))),
            "voiceClipReceived": (session, conversation, "bob@example.com",
                                  VoiceClip(MSNObject.fromData("bob@example.com", b"wav", TYPE_VOICE_CLIP))),
            "inkReceived": (session, conversation, "bob@example.com", Ink("gif", b"GIF89a...")),
        }
        self.assertEqual(set(arguments), set(IMessengerObserver.names()))
        for name, args in arguments.items():
            del self.events[:]
            notifyObserver(self.handler, name, *args)
            self.assertEqual(len(self.events), 1, name)
            event = self.events[0]
            self.assertEqual(event["msnpEvent"], name)
            self.assertTrue(formatEvent(event), name)
            self.assertNotIn("Unable to format", formatEvent(event), name)

    def test_fields(self) -> None:
        """
        Fields are plain values: addresses, status codes, texts.
        """
        self.handler.contactStatusChanged(Contact("bob@example.com"), Status.AWAY)
        self.assertEqual(self.events[-1]["contact"], "bob@example.com")
        self.assertEqual(self.events[-1]["status"], "AWY")
        self.handler.messageReceived(FakeConversation(), TextMessage("bob@example.com", "Bob", "yo"))
        self.assertEqual(self.events[-1]["sender"], "bob@example.com")
        self.assertEqual(self.events[-1]["text"], "yo")
        self.assertIn("'yo'", formatEvent(self.events[-1]))


class PluggingTests(SynchronousTestCase):
    """
    Handlers are found by name or dotted path.
    """

    def test_builtins(self) -> None:
        """
        C{echo} and C{log} name the built-in handlers.
        """
        self.assertIs(loadHandlerFactory("echo"), EchoHandler)
        self.assertIs(loadHandlerFactory("log"), LogHandler)

    def test_dottedPath(self) -> None:
        """
        A dotted path names any factory; it is called with the client.
        """
        factory = loadHandlerFactory(f"{__name__}.ShoutBot")
        client = object()
        bot: Any = factory(client)
        self.assertIs(bot.client, client)
        conversation = FakeConversation()
        notifyObserver(bot, "messageReceived", conversation, TextMessage("b@example.com", "B", "hey"))
        self.assertEqual(conversation.sent, ["HEY"])

    def test_bad(self) -> None:
        """
        Unknown names and broken paths raise L{ValueError} saying why.
        """
        self.assertIn("unknown handler", str(self.assertRaises(ValueError, loadHandlerFactory, "nope")))
        self.assertIn("does not import", str(self.assertRaises(ValueError, loadHandlerFactory, "no.such.thing")))
        self.assertIn("not callable", str(self.assertRaises(ValueError, loadHandlerFactory, "msnp.handlers.__doc__")))


class ShoutBot(ObserverBase):
    """
    The example bot of the L{msnp.handlers} docstring.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def messageReceived(self, conversation: Any, message: Any) -> None:
        conversation.sendText(message.text.upper())
