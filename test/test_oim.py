"""
Tests for L{msnp.oim}: the Mail-Data announcements and the GetMessage
decoder, on the reference's examples and on hostile input.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from twisted.trial.unittest import SynchronousTestCase

from msnp.oim import (
    MAX_ENTRIES,
    MAX_MESSAGE_CHARS,
    MailData,
    MalformedMailData,
    MalformedOfflineMessage,
    OfflineMessage,
    OfflineMessageAnnouncement,
    decodeEncodedWords,
    decodeOfflineMessage,
    encodeName,
    formatTimestamp,
    parseMailData,
    parseMailDataPayload,
    parseTimestamp,
    inSendOrder,
)

#: The initial mail-data message of reference Q.1.4 (Escargot's form).
INITIAL = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n\r\n"
    b"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM>"
    b"<QNM>204800</QNM></Q><M><T>11</T><S>6</S><RT>2010-01-01T08:00:00Z</RT><RS>0</RS>"
    b"<SZ>1077</SZ><E>bob@example.com</E><I>5D6E2B1C-7A84-4C10-9F3E-2B6A1C0D9E87</I>"
    b"<F>00000000-0000-0000-0000-000000000009</F><N>=?utf-8?B?Qm9i?=</N></M></MD>\r\n"
)

#: The live notification of reference Q.1.4 (a space before C{?=}, C{SU}).
LIVE = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsoimnotification; charset=UTF-8\r\n\r\n"
    b"Mail-Data: <MD><M><T>11</T><S>6</S><RS>0</RS><SZ>1077</SZ><E>bob@example.com</E>"
    b"<I>5D6E2B1C-7A84-4C10-9F3E-2B6A1C0D9E87</I><F>.!!OIM</F><N>=?utf-8?B?Qm9i ?=</N></M>"
    b"<SU> </SU></MD>\r\n"
)

#: The GetMessageResult of reference 6.12 (as the XML parser hands it: LF).
MESSAGE = (
    "From: =?utf-8?B?Qm9i?= <bob@example.com>\n"
    "To: alice@example.com\n"
    "Subject: \n"
    "X-OIM-originatingSource: 203.0.113.9\n"
    "X-OIMProxy: MSNMSGR\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: base64\n"
    "X-OIM-Message-Type: OfflineMessage\n"
    "X-OIM-Run-Id: {3A3BE82F-8F9A-4F6F-9B0A-2B9F3C3C0F21}\n"
    "X-OIM-Sequence-Num: 1\n"
    "Message-ID: <OIM-EXAMPLE-0001@oim.example.invalid>\n"
    "Date: 01 Jan 2010 00:00:00 -0800\n"
    "Return-Path: ndr@oim.messenger.msn.com\n"
    "\n"
    "Q2FsbCBtZSB3aGVuIHlvdSBhcmUgYmFjaw==\n"
)

ID = "5D6E2B1C-7A84-4C10-9F3E-2B6A1C0D9E87"


class MailDataTests(SynchronousTestCase):
    """
    L{parseMailDataPayload} and L{parseMailData}.
    """

    def test_initial(self) -> None:
        """
        The reference's initial message yields its one entry, every field read.
        """
        data = parseMailDataPayload(INITIAL)
        self.assertFalse(data.tooLarge)
        self.assertEqual(
            data.messages,
            (
                OfflineMessageAnnouncement(
                    messageId=ID,
                    sender="bob@example.com",
                    senderName="Bob",
                    received=datetime(2010, 1, 1, 8, 0, tzinfo=timezone.utc),
                    size=1077,
                    senderKind=11,
                ),
            ),
        )

    def test_live(self) -> None:
        """
        The live form (no time, C{.!!OIM}, a space inside the encoded name,
        C{SU} after the entry) is read too.
        """
        (entry,) = parseMailDataPayload(LIVE).messages
        self.assertEqual((entry.messageId, entry.senderName, entry.folder), (ID, "Bob", ".!!OIM"))
        self.assertIsNone(entry.received)

    def test_tooLarge(self) -> None:
        """
        C{Mail-Data: too-large} says to call GetMetadata.
        """
        payload = b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgsinitialmdatanotification\r\n\r\nMail-Data: too-large\r\n"
        self.assertEqual(parseMailDataPayload(payload), MailData(tooLarge=True))

    def test_bogusXML(self) -> None:
        """
        A Mail-Data value that is not XML is L{MalformedMailData}.
        """
        payload = INITIAL.replace(b"</MD>", b"</MX>")
        self.assertRaises(MalformedMailData, parseMailDataPayload, payload)

    def test_entityRefused(self) -> None:
        """
        A document with a DTD (an entity bomb's door) is refused.
        """
        self.assertRaises(
            MalformedMailData, parseMailData, '<!DOCTYPE MD [<!ENTITY a "aaaa">]><MD>&a;</MD>'
        )

    def test_wrongRoot(self) -> None:
        """
        Another root element is refused.
        """
        self.assertRaises(MalformedMailData, parseMailData, "<Other/>")

    def test_noHeader(self) -> None:
        """
        A payload without a Mail-Data line is refused.
        """
        self.assertRaises(MalformedMailData, parseMailDataPayload, b"MIME-Version: 1.0\r\n\r\n")

    def test_badEntriesSkipped(self) -> None:
        """
        Entries without an id, with an id that could smuggle markup, or
        without a sender are skipped and counted; the others survive.
        """
        document = (
            "<MD><M><E>a@example.com</E></M>"
            "<M><E>a@example.com</E><I>bad id&lt;x&gt;</I></M>"
            f"<M><I>{ID}</I></M>"
            f"<M><E>a@example.com</E><I>{ID}</I><RT>garbage</RT><SZ>x</SZ></M></MD>"
        )
        data = parseMailData(document)
        self.assertEqual(data.skipped, 3)
        self.assertEqual(len(data.messages), 1)
        self.assertIsNone(data.messages[0].received)
        self.assertIsNone(data.messages[0].size)

    def test_entriesCapped(self) -> None:
        """
        No more than L{MAX_ENTRIES} entries are kept from one document.
        """
        entry = f"<M><E>a@example.com</E><I>{ID}</I></M>"
        data = parseMailData("<MD>" + entry * (MAX_ENTRIES + 5) + "</MD>")
        self.assertEqual((len(data.messages), data.skipped), (MAX_ENTRIES, 5))


class NameAndTimeTests(SynchronousTestCase):
    """
    RFC 2047 names and timestamps.
    """

    def test_encodedWords(self) -> None:
        """
        B and Q words decode; white space between two words vanishes;
        unknown charsets and bad base64 do not raise.
        """
        self.assertEqual(decodeEncodedWords("=?utf-8?B?Qm9i?="), "Bob")
        self.assertEqual(decodeEncodedWords("=?utf-8?Q?J=C3=BCrgen_M?="), "Jürgen M")
        self.assertEqual(decodeEncodedWords("=?utf-8?B?Qm9i?= =?utf-8?B?Qm9i?="), "BobBob")
        self.assertEqual(decodeEncodedWords("Hi =?utf-8?B?Qm9i?= x"), "Hi Bob x")
        self.assertEqual(decodeEncodedWords("=?x-unknown?B?Qm9i?="), "Bob")
        self.assertIsInstance(decodeEncodedWords("=?utf-8?B?!!!?="), str)

    def test_encodeRoundTrip(self) -> None:
        """
        L{encodeName} produces what L{decodeEncodedWords} reads back.
        """
        name = "Zoë 🦊"
        self.assertEqual(decodeEncodedWords(encodeName(name)), name)
        self.assertEqual(encodeName(""), "")

    def test_timestamps(self) -> None:
        """
        C{RT} forms with and without fraction or offset; garbage is L{None};
        L{formatTimestamp} writes milliseconds and reads back.
        """
        utc = timezone.utc
        self.assertEqual(parseTimestamp("2010-01-01T08:00:00.000Z"), datetime(2010, 1, 1, 8, tzinfo=utc))
        self.assertEqual(parseTimestamp("2010-01-01T09:00:00+01:00"), datetime(2010, 1, 1, 8, tzinfo=utc))
        self.assertIsNone(parseTimestamp("yesterday"))
        when = datetime(2010, 1, 1, 8, 0, 0, 123000, tzinfo=utc)
        self.assertEqual(formatTimestamp(when), "2010-01-01T08:00:00.123Z")
        self.assertEqual(parseTimestamp(formatTimestamp(when)), when)


class DecodeTests(SynchronousTestCase):
    """
    L{decodeOfflineMessage}.
    """

    def test_reference(self) -> None:
        """
        The reference's example: sender, name, text, Date time, run id and
        sequence number.
        """
        message = decodeOfflineMessage(MESSAGE, ID)
        self.assertEqual(message.sender, "bob@example.com")
        self.assertEqual(message.senderName, "Bob")
        self.assertEqual(message.text, "Call me when you are back")
        self.assertEqual(message.sent, datetime(2010, 1, 1, 8, 0, tzinfo=timezone.utc))
        self.assertEqual(message.runId, "{3A3BE82F-8F9A-4F6F-9B0A-2B9F3C3C0F21}")
        self.assertEqual(message.sequence, 1)

    def test_announcementTimeWins(self) -> None:
        """
        The announcement's C{RT} is preferred over C{Date}; without a
        sequence number the field is L{None}; CR LF line ends work.
        """
        rt = datetime(2011, 5, 5, 5, 5, 5, 500000, tzinfo=timezone.utc)
        announcement = OfflineMessageAnnouncement(ID, "bob@example.com", "Bob", rt)
        text = MESSAGE.replace("X-OIM-Sequence-Num: 1\n", "").replace("\n", "\r\n")
        message = decodeOfflineMessage(text, ID, announcement)
        self.assertEqual(message.sent, rt)
        self.assertIsNone(message.sequence)

    def test_unicodeAndWrappedBase64(self) -> None:
        """
        A long non-ASCII text with a newline, base64 wrapped at 76 columns.
        """
        original = "Grüße aus Köln 🦊\nzweite Zeile " * 40
        encoded = base64.b64encode(original.encode("utf-8")).decode("ascii")
        wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        text = MESSAGE.split("\n\n")[0] + "\n\n" + wrapped + "\n"
        self.assertEqual(decodeOfflineMessage(text, ID).text, original)

    def test_multipart(self) -> None:
        """
        A multipart body yields its C{text/plain} part.
        """
        text = (
            "From: <bob@example.com>\n"
            'Content-Type: multipart/alternative; boundary="XX"\n\n'
            "--XX\nContent-Type: text/x-vnd.ms-msnipg\n\nignored\n"
            "--XX\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: base64\n\n"
            "aGk=\n--XX--\n"
        )
        self.assertEqual(decodeOfflineMessage(text, ID).text, "hi")

    def test_senderFromAnnouncement(self) -> None:
        """
        Without a usable C{From}, the announcement names the sender.
        """
        announcement = OfflineMessageAnnouncement(ID, "carol@example.com", "Carol")
        message = decodeOfflineMessage("Subject: x\n\naGk=", ID, announcement)
        self.assertEqual((message.sender, message.senderName), ("carol@example.com", "Carol"))

    def test_hostile(self) -> None:
        """
        No blank line, no sender, bad base64, non-UTF-8 bytes and an
        oversized text are each L{MalformedOfflineMessage}.
        """
        head = "From: <bob@example.com>\nContent-Transfer-Encoding: base64\n"
        for text in [
            "From: <bob@example.com>",
            "Subject: x\n\naGk=",
            head + "\n!!not base64!!",
            head + "\n" + base64.b64encode(b"\xff\xfe\xfa").decode(),
            head + "\n" + "A" * (MAX_MESSAGE_CHARS + 1),
        ]:
            self.assertRaises(MalformedOfflineMessage, decodeOfflineMessage, text, ID)

    def test_sendOrder(self) -> None:
        """
        Messages sort by time; at the same instant a run's messages follow
        their sequence numbers, different runs keep the announcement order
        (whatever their random run ids); no time goes last.
        """
        base = decodeOfflineMessage(MESSAGE, ID)

        def variant(messageId: str, **changes: object) -> OfflineMessage:
            return replace(base, messageId=messageId, **changes)  # type: ignore[arg-type]

        untimed = variant("untimed", sent=None)
        run2 = variant("run2-seq1", runId="{00000000-0000-0000-0000-000000000000}", sequence=1)
        seq2 = variant("run1-seq2", sequence=2)
        seq1 = variant("run1-seq1", sequence=1)
        earlier = variant("earlier", sent=base.sent - timedelta(seconds=1) if base.sent else None)
        ordered = inSendOrder([untimed, seq2, run2, seq1, earlier])
        self.assertEqual(
            [m.messageId for m in ordered], ["earlier", "run1-seq1", "run1-seq2", "run2-seq1", "untimed"]
        )
