# -*- test-case-name: test.test_server_notification -*-
"""
The fixed documents and generated payloads the notification server sends:
the C{GCF} policy, the mail-data and profile messages of a login, the
nonces and challenges, and the address-book change C{NOT}.

They are pure functions of their arguments (and of randomness where a
nonce is made), kept apart from the protocol so they can be read and
tested against the reference without a connection.
"""

from __future__ import annotations

import base64
import os
import secrets

from msnp.server.accountmodel import Account
from msnp.xmlsafe import escapeText

#: The policy pushed with C{GCF 0} (reference section 2.5), 497 bytes.
POLICY = (
    b'<Policies><Policy type="SHIELDS"><config><shield><cli maj="7" min="0" minbld="0" '
    b'maxbld="9999" deny=" " /></shield><block></block></config></Policy><Policy type="ABCH">'
    b'<policy><set id="push" service="ABCH" priority="200"><r id="pushstorage" threshold="180000" />'
    b'</set><set id="using_notifications" service="ABCH" priority="100"><r id="pullab" threshold="0" '
    b'timer="1800000" trigger="Timer" /><r id="pullmembership" threshold="0" timer="1800000" '
    b'trigger="Timer" /></set></policy></Policy></Policies>'
)

#: The initial mail-data message: an empty inbox, no offline messages.
MAIL_DATA = (
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/x-msmsgsinitialmdatanotification; charset=UTF-8\r\n"
    b"\r\n"
    b"Mail-Data: <MD><E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>"
    b"<Q><QTM>409600</QTM><QNM>204800</QNM></Q></MD>\r\n"
    b"Inbox-URL: /cgi-bin/HoTMaiL\r\n"
    b"Folders-URL: /cgi-bin/folders\r\n"
    b"Post-URL: http://www.hotmail.com\r\n"
)


def newNonce() -> str:
    """
    A fresh C{MBI_KEY_OLD} nonce: 48 random bytes, base64 (64 characters).
    """
    return base64.b64encode(os.urandom(48)).decode("ascii")


def newChallenge() -> str:
    """
    Twenty random decimal digits for C{CHL 0}.
    """
    return str(10**19 + secrets.randbelow(9 * 10**19))


def splitMemberId(puid: int) -> tuple[int, int]:
    """
    A PUID as the profile's C{MemberIdHigh}/C{MemberIdLow}: the high 32
    bits unsigned, the low 32 bits as a signed integer.
    """
    high = (puid >> 32) & 0xFFFFFFFF
    low = puid & 0xFFFFFFFF
    if low >= 2**31:
        low -= 2**32
    return high, low


def profileMessage(account: Account, loginTime: int, clientIP: str, clientPort: int, mpop: bool) -> bytes:
    """
    The C{text/x-msmsgsprofile} message of reference section 8.4, with the
    values of C{account}. Its C{MSPAuth} is random: it is derived from no
    ticket or secret, since nothing on the local network uses it.
    """
    high, low = splitMemberId(account.puid)
    headers = [
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/x-msmsgsprofile; charset=UTF-8"),
        ("LoginTime", str(loginTime)),
        ("EmailEnabled", "1"),
        ("MemberIdHigh", str(high)),
        ("MemberIdLow", str(low)),
        ("lang_preference", "1033"),
        ("preferredEmail", account.email),
        ("country", "US"),
        ("PostalCode", ""),
        ("Gender", ""),
        ("Kid", "0"),
        ("Age", ""),
        ("BDayPre", ""),
        ("Birthday", ""),
        ("Wallet", ""),
        ("Flags", "536872513"),
        ("sid", "507"),
        ("MSPAuth", secrets.token_hex(24) + "$$"),
        ("ClientIP", clientIP),
        ("ClientPort", str(clientPort)),
        ("ABCHMigrated", "1"),
        ("MPOPEnabled", "1" if mpop else "0"),
    ]
    text = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return text.encode("utf-8")


#: The C{siteid} of address-book change notifications (reference 3.11).
ABCH_SITE_ID = "45705"


def notificationPid(puid: int) -> str:
    """
    The C{pid} of a C{NOT}'s C{<TO>}: the PUID's low and high 32-bit
    halves in hex, C{0x<low>:0x<high>} (reference 3.11 leaves the order
    unconfirmed; this is the order of its example).
    """
    low = puid & 0xFFFFFFFF
    high = (puid >> 32) & 0xFFFFFFFF
    return f"0x{low:08x}:0x{high:08x}"


def _escapeMarkup(text: str) -> str:
    """
    Escape XML text as element content: C{&}, C{<} and C{>} only (quotes
    need no escaping there, and the reference's example leaves them as
    they are).
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def addressBookChangedPayload(account: Account, lastModified: str, hasNewItem: bool = False) -> bytes:
    """
    The C{NOT} payload telling every place of C{account} that its address
    book or memberships changed elsewhere (reference section 3.11): site
    C{45705}, and in C{<BODY>} an escaped C{<NotificationData>} naming the
    C{ABCHInternal} service, the account's CID and the change time.

    @param lastModified: the change time as an C{xsd:dateTime} text.
    """
    data = (
        '<NotificationData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<Service>ABCHInternal</Service>"
        f"<CID>{account.cid}</CID>"
        f"<LastModifiedDate>{escapeText(lastModified)}</LastModifiedDate>"
        f"<HasNewItem>{'true' if hasNewItem else 'false'}</HasNewItem>"
        "</NotificationData>"
    )
    text = (
        f'<NOTIFICATION id="0" siteid="{ABCH_SITE_ID}" siteurl="http://contacts.msn.com">'
        f'<TO pid="{notificationPid(account.puid)}" name="{escapeText(account.email)}">'
        '<VIA agent="messenger" /></TO>'
        '<MSG id="0"><SUBSCR url="s.htm" /><ACTION url="a.htm" />'
        f"<BODY>{_escapeMarkup(data)}</BODY></MSG></NOTIFICATION>"
    )
    return text.encode("utf-8")
