"""
Property tests (hypothesis) for the offline-message codecs: whatever a
hostile server or contact sends, the parsers fail only with their own
exceptions, never with anything else.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msnp.oim import (
    MalformedMailData,
    MalformedOfflineMessage,
    decodeEncodedWords,
    decodeOfflineMessage,
    parseMailData,
    parseMailDataPayload,
)
from msnp.uum import MalformedNetworkMessage, parseUBM
from msnp.wire import Command

SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

#: Fragments that steer generated text towards the interesting paths.
_PIECES = st.sampled_from([
    "From: ", "<bob@example.com>", "=?utf-8?B?", "=?idna?Q?=FF?=", "=?x?B?!!?=", "?=", "\n", "\r\n", "\n\n",
    "Content-Type: multipart/mixed; boundary=B\n", "--B\n", "--B--", "Content-Type: text/plain; charset=idna\n",
    "Content-Transfer-Encoding: base64\n", "Content-Transfer-Encoding: quoted-printable\n", "aGk=", "=FF",
    "<MD>", "</MD>", "<M>", "</M>", "<I>", "</I>", "<E>", "</E>", "a@b.c", "<RT>", "</RT>", "Mail-Data: ",
    "&amp;", "<!DOCTYPE", "\x00", "é", "🦊",
])
hostileText = st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=30).map("".join)


class PropertyTests(SynchronousTestCase):
    """
    Hostile input meets only the documented exceptions.
    """

    @SETTINGS
    @given(hostileText)
    def test_decodeOfflineMessage(self, text: str) -> None:
        """
        L{decodeOfflineMessage} returns a message or raises
        L{MalformedOfflineMessage}.
        """
        try:
            message = decodeOfflineMessage(text, "ID")
        except MalformedOfflineMessage:
            return
        self.assertIsInstance(message.text, str)

    @SETTINGS
    @given(hostileText)
    def test_names(self, text: str) -> None:
        """
        L{decodeEncodedWords} never raises.
        """
        self.assertIsInstance(decodeEncodedWords(text), str)

    @SETTINGS
    @given(hostileText)
    def test_mailData(self, text: str) -> None:
        """
        The Mail-Data parsers return a value or raise L{MalformedMailData}.
        """
        for parse, value in ((parseMailData, text), (parseMailDataPayload, text.encode("utf-8", "replace"))):
            try:
                parse(value)  # type: ignore[operator]
            except MalformedMailData:
                pass

    @SETTINGS
    @given(st.lists(st.text(max_size=12), min_size=0, max_size=7), st.binary(max_size=200))
    def test_ubm(self, arguments: list[str], payload: bytes) -> None:
        """
        L{parseUBM} returns a value or raises L{MalformedNetworkMessage}.
        """
        try:
            parseUBM(Command("UBM", None, tuple(arguments), payload))
        except MalformedNetworkMessage:
            pass
