# -*- test-case-name: test.test_capabilities -*-
"""
The C{caps:extcaps} value a client advertises, computed from what it does.

Peers read these bits to decide what to try with us: a client that claims
webcam, direct IM or P2P version 2 gets invitations it cannot answer and
the user on the other side sees failures (reference sections 4.3 and P.12).
So the advertised value is never written by hand: L{CAPABILITY_BITS} is the
one table of bits and the L{Feature} each stands for, L{IMPLEMENTED} lists
the features this library really handles, and L{advertisedCapabilities}
sets exactly the bits whose feature is implemented. Bits with no feature
(webcam, SIP, TURN, P2P v2, ...) can never be advertised; adding a feature
to L{IMPLEMENTED} is the only way to claim a bit.

Nothing here imports Twisted: it is a table and two pure functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional


class Feature(enum.Enum):
    """
    Something a client can do that peers learn of through a capability bit.
    """

    #: Receiving and sending messages split with C{Message-ID}/C{Chunks}
    #: (reference 6.5).
    MULTI_PACKET = "multi-packet messages"
    #: Nudge datacasts (reference 6.6 c).
    NUDGES = "nudges"
    #: MSNP2P version 1 over the switchboard with MSNSLP: display pictures
    #: and other MSN objects (MSNP18-p2p.md). Advertised as the MSNC version
    #: nibble, which is what peers read as "P2P aware".
    P2P_V1 = "P2P version 1 (MSN objects over the switchboard)"
    #: GIF ink (C{image/gif} messages).
    INK_GIF = "GIF ink"
    #: ISF ink (C{application/x-ms-ink} messages).
    INK_ISF = "ISF ink"
    #: Fetching and showing winks (type 8 objects over P2P).
    WINKS = "winks"
    #: Fetching and playing voice clips (type 11 objects over P2P).
    VOICE_CLIPS = "voice clips"
    #: Custom emoticons (type 2 objects over P2P).
    CUSTOM_EMOTICONS = "custom emoticons"
    #: Offline messages (OIM).
    OFFLINE_IM = "offline messages"


@dataclass(frozen=True)
class CapabilityBit:
    """
    One bit of C{caps} or C{extcaps}.

    @ivar value: the bit (or, for the MSNC version, the nibble value).
    @ivar extended: whether it lives in C{extcaps} (the second number).
    @ivar name: the name pidgin's C{msn.h} gives it.
    @ivar feature: what must be implemented to claim it; L{None} for bits
        this library never claims.
    """

    value: int
    extended: bool
    name: str
    feature: Optional[Feature] = None


#: The MSNC version mask of C{caps} (reference 4.3).
MSNC_MASK = 0xF0000000
#: The MSNC version a P2P v1 client announces: MSNC9, pidgin's value, which
#: WLM 2009 is known to answer in v1 (MSNP18-p2p.md P.12, P.15 point 1).
P2P_MSNC_VERSION = 0x90000000

#: Every bit the references name, with the feature that allows claiming it.
CAPABILITY_BITS: tuple[CapabilityBit, ...] = (
    CapabilityBit(0x00000001, False, "VIA_MOBILE"),
    CapabilityBit(0x00000002, False, "VIA_TEXAS"),
    CapabilityBit(0x00000004, False, "INK_GIF", Feature.INK_GIF),
    CapabilityBit(0x00000008, False, "INK_ISF", Feature.INK_ISF),
    CapabilityBit(0x00000010, False, "VIDEO_CHAT"),
    CapabilityBit(0x00000020, False, "PACKET", Feature.MULTI_PACKET),
    CapabilityBit(0x00000040, False, "MOBILE_ON"),
    CapabilityBit(0x00000080, False, "WEB_WATCH"),
    CapabilityBit(0x00000100, False, "ACTIVITIES"),
    CapabilityBit(0x00000200, False, "VIA_WEBIM"),
    CapabilityBit(0x00000400, False, "MOBILE_DEV"),
    CapabilityBit(0x00000800, False, "VIA_FEDERATED"),
    CapabilityBit(0x00001000, False, "SPACE"),
    CapabilityBit(0x00002000, False, "MCE"),
    CapabilityBit(0x00004000, False, "DIRECTIM"),
    CapabilityBit(0x00008000, False, "WINKS", Feature.WINKS),
    CapabilityBit(0x00010000, False, "SEARCH"),
    CapabilityBit(0x00020000, False, "BOT"),
    CapabilityBit(0x00040000, False, "VOICEIM", Feature.VOICE_CLIPS),
    CapabilityBit(0x00080000, False, "SCHANNEL"),
    CapabilityBit(0x00100000, False, "SIP_INVITE"),
    CapabilityBit(0x00200000, False, "MULTI_VV"),
    CapabilityBit(0x00400000, False, "SDRIVE"),
    CapabilityBit(0x00800000, False, "PAGE_MODE_MESSAGING"),
    CapabilityBit(0x01000000, False, "ONECARE"),
    CapabilityBit(0x02000000, False, "P2P_TURN"),
    CapabilityBit(0x04000000, False, "P2P_BOOTSTRAP_VIA_UUN"),
    CapabilityBit(0x08000000, False, "USING_ALIAS"),
    CapabilityBit(P2P_MSNC_VERSION, False, "MSNC9", Feature.P2P_V1),
    CapabilityBit(0x00000001, True, "SMS_ONLY"),
    CapabilityBit(0x00000002, True, "VOICE_OVER_MSNP"),
    CapabilityBit(0x00000004, True, "UUCP_SIP"),
    CapabilityBit(0x00000008, True, "APPLICATION_MESSAGES"),
    CapabilityBit(0x00000010, True, "RTC_VIDEO"),
    CapabilityBit(0x00000020, True, "P2PV2"),
    CapabilityBit(0x00000040, True, "AUTHENTICATED_WEBIM"),
    CapabilityBit(0x00000080, True, "ONE_ON_ONE_VIA_GROUP"),
    CapabilityBit(0x00000100, True, "OFFLINE_IM", Feature.OFFLINE_IM),
    CapabilityBit(0x00000200, True, "SHARING_VIDEO"),
    CapabilityBit(0x00000400, True, "NUDGES", Feature.NUDGES),
    CapabilityBit(0x00000800, True, "CIRCLE_VOICE_IM"),
    CapabilityBit(0x00001000, True, "SHARING"),
    CapabilityBit(0x00002000, True, "MOBILE_SUSPEND_FANOUT_DISABLED"),
    CapabilityBit(0x00008000, True, "P2P_MIXER_RELAY"),
    CapabilityBit(0x00020000, True, "CONV_WINDOW_FT"),
    CapabilityBit(0x00040000, True, "VIDEO_16X9"),
    CapabilityBit(0x00080000, True, "P2P_ENVELOPE"),
    CapabilityBit(0x00400000, True, "YAHOO_IM_DISABLED"),
    CapabilityBit(0x00800000, True, "SIP_TUNNEL_V2"),
    CapabilityBit(0x01000000, True, "VOICE_CLIP_WMA"),
    CapabilityBit(0x02000000, True, "VOICE_CLIP_CIRCLE_IM"),
    CapabilityBit(0x04000000, True, "SOCIAL_NEWS"),
    CapabilityBit(0x08000000, True, "CUSTOM_SMILEY", Feature.CUSTOM_EMOTICONS),
    CapabilityBit(0x10000000, True, "UTF8_MOODS"),
    CapabilityBit(0x20000000, True, "FTURN"),
    CapabilityBit(0x40000000, True, "P4_ACTIVITY"),
    CapabilityBit(0x80000000, True, "MULTIPARTY_CONVERSATIONS"),
)

#: What this library handles today: the session serves and fetches display
#: pictures, custom emoticons, winks and voice clips over P2P v1
#: (L{msnp.pictures}, L{msnp.emoticons}), so the MSNC9 nibble and those
#: bits are claimed; GIF ink is received and sent. ISF ink is read when it
#: arrives but not claimed: a peer that knows we take only GIF sends GIF,
#: which a bridge can show, where ISF needs a renderer (docs/p2p.md 8).
IMPLEMENTED: frozenset[Feature] = frozenset({
    Feature.MULTI_PACKET, Feature.NUDGES, Feature.P2P_V1, Feature.CUSTOM_EMOTICONS,
    Feature.WINKS, Feature.VOICE_CLIPS, Feature.INK_GIF,
})


@dataclass(frozen=True)
class Capabilities:
    """
    A decoded C{caps:extcaps} pair.

    @ivar caps: the first number (flags plus the MSNC version nibble).
    @ivar extended: the second number.
    """

    caps: int
    extended: int

    @classmethod
    def fromString(cls, value: str) -> "Capabilities":
        """
        Parse C{"caps:extcaps"} (or a lone C{"caps"}, MSNP15 and older).

        @raise ValueError: not one or two unsigned 32-bit decimals.
        """
        first, _, second = value.strip().partition(":")
        numbers = [first, second or "0"]
        if not all(n.isdigit() and len(n) <= 10 for n in numbers):
            raise ValueError(f"not a caps:extcaps value: {value!r}")
        caps, extended = (int(n) for n in numbers)
        if caps > 0xFFFFFFFF or extended > 0xFFFFFFFF:
            raise ValueError(f"capability value out of range: {value!r}")
        return cls(caps, extended)

    def __str__(self) -> str:
        return f"{self.caps}:{self.extended}"

    @property
    def msncVersion(self) -> int:
        """
        The MSNC generation (0 for none, 9 for MSNC9, 10 for WLM 2009).
        """
        return (self.caps & MSNC_MASK) >> 28

    def bits(self) -> list[CapabilityBit]:
        """
        The table entries set in this value. The MSNC nibble counts as the
        MSNC9 entry when it is nonzero, since any MSNC version tells peers
        that P2P is spoken.
        """
        found = []
        for bit in CAPABILITY_BITS:
            if bit.value == P2P_MSNC_VERSION and not bit.extended:
                if self.caps & MSNC_MASK:
                    found.append(bit)
                continue
            if (self.extended if bit.extended else self.caps) & bit.value:
                found.append(bit)
        return found

    def unknownBits(self) -> tuple[int, int]:
        """
        Set bits no table entry names, as C{(caps, extcaps)} masks.
        """
        caps, extended = self.caps & ~MSNC_MASK, self.extended
        for bit in CAPABILITY_BITS:
            if bit.value == P2P_MSNC_VERSION and not bit.extended:
                continue
            if bit.extended:
                extended &= ~bit.value
            else:
                caps &= ~bit.value
        return caps, extended

    def names(self) -> list[str]:
        """
        The names of the bits set, for logs and tests.
        """
        return [bit.name for bit in self.bits()]


def advertisedCapabilities(features: Iterable[Feature] = IMPLEMENTED) -> Capabilities:
    """
    The value to send in C{CHG} and C{UUX <EndpointData>}: exactly the bits
    whose feature is in C{features}.
    """
    wanted = frozenset(features)
    caps = extended = 0
    for bit in CAPABILITY_BITS:
        if bit.feature is None or bit.feature not in wanted:
            continue
        if bit.extended:
            extended |= bit.value
        else:
            caps |= bit.value
    return Capabilities(caps, extended)


def claimedWithoutFeature(value: Capabilities, features: Iterable[Feature] = IMPLEMENTED) -> list[str]:
    """
    The names of bits set in C{value} that C{features} do not allow (bits
    with no feature at all, and unknown bits, are always in this list).
    """
    allowed = frozenset(features)
    wrong = [bit.name for bit in value.bits() if bit.feature is None or bit.feature not in allowed]
    caps, extended = value.unknownBits()
    if caps or extended:
        wrong.append(f"unknown:{caps:#x}:{extended:#x}")
    return wrong
