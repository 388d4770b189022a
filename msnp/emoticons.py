# -*- test-case-name: test.test_emoticons -*-
"""
Custom emoticons, winks, voice clips and ink for a session: the glue
between the codec (L{msnp.richcontent}), the conversations and the P2P
side (L{msnp.pictures.DisplayPictures}).

L{RichContent} is, at once:
  - the registry of the user's custom emoticons (shortcut to image) and of
    the winks and voice clips they sent, and an L{IObjectSource} serving
    those objects to whoever asks over P2P (the display picture is served
    by L{msnp.pictures.DisplayPictures}, which consults this source next);
  - what a L{msnp.conversation.Conversation} asks for the emoticon
    messages to send before a text (only the shortcuts the text uses);
  - the reader of received rich messages: emoticon definitions wait,
    per conversation and sender, for the next text, which then lists them
    in L{msnp.mime.TextMessage.emoticons}; wink and voice-clip datacasts
    and ink become observer events.

Fetching the objects goes through the same cache and P2P manager as the
pictures (L{msnp.pictures.DisplayPictures.fetch}: one transfer for
concurrent callers, SHA1D checked, memory and optional disk cache), via
L{msnp.session.Session.fetchEmoticon} and friends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping, Optional

from twisted.logger import Logger
from zope.interface import implementer

from msnp.interfaces import notifyObserver
from msnp.p2p.errors import TransferError
from msnp.mime import MimeMessage, datacastId
from msnp.p2p.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, TYPE_WINK, MSNObject, friendlyName
from msnp.p2p.session import IObjectSource
from msnp.richcontent import (
    DATACAST_VOICE_CLIP,
    DATACAST_WINK,
    EMOTICON_TYPES,
    INK_GIF_TYPE,
    INK_ISF_TYPE,
    MAX_EMOTICONS_PER_MESSAGE,
    Ink,
    MalformedRichContent,
    VoiceClip,
    Wink,
    buildEmoticonPayloads,
    buildInkPayloads,
    buildObjectDatacast,
    checkShortcut,
    parseEmoticons,
    parseInk,
    parseObjectDatacast,
)

if TYPE_CHECKING:
    from msnp.conversation import Conversation

log = Logger()

#: The largest custom emoticon image (bytes). WLM 2009 scales emoticons
#: to 19x19 (animated GIFs stay small too); 128 KiB leaves room and keeps
#: a transfer to about a hundred chunks.
MAX_EMOTICON_SIZE = 128 * 1024
#: The largest wink or voice clip we send or fetch (bytes). WLM's winks
#: are CAB archives of a few hundred KB; its clips last 15 seconds.
MAX_MEDIA_SIZE = 1024 * 1024
#: How many custom emoticons a session may register.
MAX_REGISTERED_EMOTICONS = 64
#: How many sent winks and voice clips stay servable (the oldest is
#: forgotten first; a peer fetches right after the datacast).
MAX_SENT_MEDIA = 16
#: How many (conversation, sender) pairs may have definitions waiting for
#: their text.
MAX_PENDING_SENDERS = 64

class UnfetchableObject(TransferError):
    """
    An object that is not fetched: not of the type asked for, or larger
    than the cap for its kind (L{MAX_EMOTICON_SIZE}, L{MAX_MEDIA_SIZE}).
    Nothing was sent to the peer.
    """


def checkFetchable(obj: MSNObject, type: int) -> None:
    """
    Refuse to fetch C{obj} as a type C{type} object when it is not one, or
    when it announces more bytes than such an object may have.

    @raise UnfetchableObject: so.
    """
    if not isinstance(obj, MSNObject) or obj.type != type:
        raise UnfetchableObject(f"not a type {type} MSN object: {obj!r:.120}")
    cap = MAX_EMOTICON_SIZE if type == TYPE_EMOTICON else MAX_MEDIA_SIZE
    if not 0 < obj.size <= cap:
        raise UnfetchableObject(f"a type {type} object of {obj.size} bytes (1 to {cap} allowed)")


_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"\xff\xd8\xff")


def checkEmoticonImage(data: bytes) -> None:
    """
    Refuse what cannot be a custom emoticon.

    @raise ValueError: not bytes, empty, over L{MAX_EMOTICON_SIZE}, or not
        PNG, GIF or JPEG (by their signatures).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"an emoticon image is bytes, not {type(data).__name__}")
    if not data or len(data) > MAX_EMOTICON_SIZE:
        raise ValueError(f"an emoticon image of {len(data)} bytes (1 to {MAX_EMOTICON_SIZE} allowed)")
    if not bytes(data).startswith(_IMAGE_SIGNATURES):
        raise ValueError("an emoticon image must be PNG, GIF or JPEG")


def emoticonObject(account: str, shortcut: str, data: bytes) -> MSNObject:
    """
    The type 2 object of C{data} as C{account}'s emoticon C{shortcut}
    (Friendly = the shortcut, as WLM shows it when the image is missing).
    """
    return MSNObject.fromData(account, bytes(data), TYPE_EMOTICON, friendly=friendlyName(shortcut))


def _isAnimated(data: bytes) -> bool:
    # A GIF with more than one image; a rough test, enough to choose the
    # content type (receivers treat both the same).
    return bytes(data[:6]) in (b"GIF87a", b"GIF89a") and bytes(data).count(b"\x00\x2c") > 1


@implementer(IObjectSource)
class RichContent:
    """
    One session's custom emoticons, winks, voice clips and ink.

    @param account: the session's account.
    @ivar servedCount: requests for our emoticons, winks and clips
        answered with their data.
    """

    def __init__(self, account: str) -> None:
        self.account = account.lower()
        self._emoticons: dict[str, tuple[MSNObject, bytes]] = {}
        self._sent: OrderedDict[str, tuple[MSNObject, bytes]] = OrderedDict()
        self._pending: OrderedDict[tuple[int, str], dict[str, MSNObject]] = OrderedDict()
        self.servedCount = 0

    def __repr__(self) -> str:
        return f"<RichContent of {self.account}: {len(self._emoticons)} emoticons>"

    # -- our emoticons -----------------------------------------------------------

    @property
    def emoticons(self) -> dict[str, MSNObject]:
        """
        The registered emoticons: shortcut to object (a copy).
        """
        return {s: obj for s, (obj, _) in self._emoticons.items()}

    def setEmoticon(self, shortcut: str, data: Optional[bytes]) -> Optional[MSNObject]:
        """
        Bind C{shortcut} to the image C{data} (L{None}: unbind it). Later
        texts containing the shortcut announce it, and the image is served
        to whoever asks.

        @return: the emoticon's object (L{None} when unbound).
        @raise ValueError: see L{checkShortcut} and L{checkEmoticonImage};
            or more than L{MAX_REGISTERED_EMOTICONS} shortcuts.
        """
        checkShortcut(shortcut)
        if data is None:
            self._emoticons.pop(shortcut, None)
            return None
        checkEmoticonImage(data)
        if shortcut not in self._emoticons and len(self._emoticons) >= MAX_REGISTERED_EMOTICONS:
            raise ValueError(f"at most {MAX_REGISTERED_EMOTICONS} custom emoticons")
        obj = emoticonObject(self.account, shortcut, data)
        self._emoticons[shortcut] = (obj, bytes(data))
        return obj

    def definitionsFor(self, text: str, extra: Optional[Mapping[str, bytes]] = None) -> list[bytes]:
        """
        The emoticon messages to send before C{text}: the registered
        emoticons and those of C{extra} (which are registered too, so they
        can be served) whose shortcut occurs in the text, in the order of
        their first occurrence; at most L{MAX_EMOTICONS_PER_MESSAGE}, the
        most a receiver keeps.

        @raise ValueError: an C{extra} shortcut or image is refused.
        """
        for shortcut, data in (extra or {}).items():
            self.setEmoticon(shortcut, data)
        used = sorted(
            ((text.find(s), s) for s in self._emoticons if s in text), key=lambda pair: pair[0]
        )[:MAX_EMOTICONS_PER_MESSAGE]
        if not used:
            return []
        pairs = [(s, self._emoticons[s][0]) for _, s in used]
        animated = any(_isAnimated(self._emoticons[s][1]) for _, s in used)
        return buildEmoticonPayloads(pairs, animated=animated)

    # -- winks, voice clips, ink we send ----------------------------------------------------

    def winkPayload(self, data: bytes, name: str = "") -> tuple[Wink, bytes]:
        """
        Publish C{data} (a wink, as WLM's CAB archives) and return the wink
        and the datacast that announces it.

        @raise ValueError: empty or over L{MAX_MEDIA_SIZE}.
        """
        obj = self._publishMedia(data, TYPE_WINK, name)
        return Wink(obj), buildObjectDatacast(obj)

    def voiceClipPayload(self, data: bytes) -> tuple[VoiceClip, bytes]:
        """
        Publish C{data} (a voice clip) and return it with its datacast.

        @raise ValueError: empty or over L{MAX_MEDIA_SIZE}.
        """
        obj = self._publishMedia(data, TYPE_VOICE_CLIP, "")
        return VoiceClip(obj), buildObjectDatacast(obj)

    def _publishMedia(self, data: bytes, type: int, name: str) -> MSNObject:
        if not isinstance(data, (bytes, bytearray)) or not data or len(data) > MAX_MEDIA_SIZE:
            raise ValueError(f"a wink or voice clip is 1 to {MAX_MEDIA_SIZE} bytes")
        if name:
            obj = MSNObject.fromData(self.account, bytes(data), type, friendly=friendlyName(name))
        else:
            obj = MSNObject.fromData(self.account, bytes(data), type)
        self._sent[obj.sha1d] = (obj, bytes(data))
        self._sent.move_to_end(obj.sha1d)
        while len(self._sent) > MAX_SENT_MEDIA:
            self._sent.popitem(last=False)
        return obj

    @staticmethod
    def inkPayloads(ink: Ink) -> list[bytes]:
        """
        The messages carrying C{ink} (see L{msnp.richcontent.buildInkPayloads}).
        """
        return buildInkPayloads(ink)

    # -- IObjectSource -----------------------------------------------------------

    def objectData(self, requested: MSNObject) -> Optional[bytes]:
        candidates = [entry for entry in self._emoticons.values()]
        sent = self._sent.get(requested.sha1d)
        if sent is not None:
            candidates.append(sent)
        for obj, data in candidates:
            if obj.sha1d == requested.sha1d and obj.type == requested.type:
                self.servedCount += 1
                return data
        return None

    # -- receiving ------------------------------------------------------------------

    def handles(self, kind: str, message: MimeMessage) -> bool:
        """
        Whether a message of content type C{kind} is ours to read.
        """
        if kind in EMOTICON_TYPES or kind in (INK_GIF_TYPE, INK_ISF_TYPE):
            return True
        return kind == "text/x-msnmsgr-datacast" and datacastId(message) in (DATACAST_WINK, DATACAST_VOICE_CLIP)

    def received(self, conversation: "Conversation", sender: str, kind: str, message: MimeMessage) -> None:
        """
        Read one rich message from C{sender} (one for which L{handles} is
        true). Never raises: what cannot be read is logged and dropped.
        """
        observer = conversation.manager.observer
        session = conversation.session
        if kind in EMOTICON_TYPES:
            definitions = parseEmoticons(message.body, sender)
            for reason in definitions.dropped:
                log.info("Dropped from {sender}'s emoticons: {reason}", sender=sender, reason=reason)
            self._remember(conversation, sender, definitions.emoticons)
            return
        if kind in (INK_GIF_TYPE, INK_ISF_TYPE):
            try:
                ink = parseInk(kind, message.body)
            except MalformedRichContent as e:
                log.info("Dropping ink from {sender}: {reason}", sender=sender, reason=str(e))
                return
            notifyObserver(observer, "inkReceived", session, conversation, sender, ink)
            return
        ident = datacastId(message)
        try:
            item = parseObjectDatacast(ident or 0, message.body, sender)
        except MalformedRichContent as e:
            log.info("Dropping a datacast from {sender}: {reason}", sender=sender, reason=str(e))
            return
        if isinstance(item, Wink):
            notifyObserver(observer, "winkReceived", session, conversation, sender, item)
        else:
            notifyObserver(observer, "voiceClipReceived", session, conversation, sender, item)

    def _remember(self, conversation: "Conversation", sender: str, emoticons: Mapping[str, MSNObject]) -> None:
        if not emoticons:
            return
        key = (id(conversation), sender)
        waiting = self._pending.pop(key, {})
        for shortcut, obj in emoticons.items():
            if shortcut in waiting or len(waiting) < 2 * MAX_EMOTICONS_PER_MESSAGE:
                waiting[shortcut] = obj
        self._pending[key] = waiting
        while len(self._pending) > MAX_PENDING_SENDERS:
            self._pending.popitem(last=False)

    def takeEmoticons(self, conversation: "Conversation", sender: str, text: str) -> dict[str, MSNObject]:
        """
        The definitions C{sender} sent in C{conversation} since their last
        text, kept for this C{text} only when the shortcut occurs in it;
        the rest are forgotten (definitions apply to the next text, as
        papyon reads them).
        """
        waiting = self._pending.pop((id(conversation), sender), None)
        if not waiting:
            return {}
        return {s: obj for s, obj in waiting.items() if s in text}

    def forget(self, conversation: "Conversation") -> None:
        """
        C{conversation}'s switchboard closed: drop its waiting definitions.
        """
        for key in [k for k in self._pending if k[0] == id(conversation)]:
            del self._pending[key]

