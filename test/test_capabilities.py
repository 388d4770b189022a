"""
Tests for L{msnp.capabilities}: the advertised C{caps:extcaps} claims only
implemented features, and the table decodes WLM 2009's value as the
reference does.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.capabilities import (
    CAPABILITY_BITS,
    IMPLEMENTED,
    Capabilities,
    Feature,
    advertisedCapabilities,
    claimedWithoutFeature,
)
from msnp.endpoints import ClientIdentity

#: Bits a switchboard-only P2P v1 stack must never claim (MSNP18-p2p.md P.12).
NEVER = {
    "P2PV2", "RTC_VIDEO", "P2P_BOOTSTRAP_VIA_UUN", "P2P_TURN", "FTURN", "P2P_MIXER_RELAY",
    "P2P_ENVELOPE", "DIRECTIM", "VIDEO_CHAT", "SIP_INVITE", "MULTI_VV", "SCHANNEL",
}


class DefaultIdentityTests(SynchronousTestCase):
    def test_defaultClaimsOnlyImplemented(self) -> None:
        """
        Decoding the default L{ClientIdentity} capabilities finds no bit
        whose feature is missing from L{IMPLEMENTED}.
        """
        value = Capabilities.fromString(ClientIdentity().capabilities)
        self.assertEqual(claimedWithoutFeature(value), [])
        self.assertFalse(NEVER & set(value.names()))

    def test_defaultIsComputed(self) -> None:
        """
        The default is the computed value: multi-packet messages, nudges,
        MSNC9 (P2P v1: pictures, emoticons, winks, voice clips), custom
        emoticons, winks, voice clips and GIF ink; never ISF ink (read but
        not claimed), P2P v2 or webcam. The first number is the one
        MSNP18-p2p.md P.12 computes for all listed features.
        """
        value = Capabilities.fromString(ClientIdentity().capabilities)
        self.assertEqual(value, advertisedCapabilities())
        self.assertEqual(
            sorted(value.names()),
            ["CUSTOM_SMILEY", "INK_GIF", "MSNC9", "NUDGES", "PACKET", "VOICEIM", "WINKS"],
        )
        self.assertNotIn("INK_ISF", value.names())
        self.assertEqual(value.msncVersion, 9)
        self.assertEqual(value.extended & 0x30, 0)
        self.assertEqual(str(value), "2416214052:134218752")

    def test_richFeaturesNeedTheirBits(self) -> None:
        """
        Taking one of the rich-content features out of L{IMPLEMENTED} makes
        the default value claim a bit without its feature: each bit is
        tied to the feature, not written by hand.
        """
        value = Capabilities.fromString(ClientIdentity().capabilities)
        for feature, name in [
            (Feature.WINKS, "WINKS"), (Feature.VOICE_CLIPS, "VOICEIM"),
            (Feature.INK_GIF, "INK_GIF"), (Feature.CUSTOM_EMOTICONS, "CUSTOM_SMILEY"),
        ]:
            self.assertEqual(claimedWithoutFeature(value, IMPLEMENTED - {feature}), [name])

    def test_oldDefaultIsCaught(self) -> None:
        """
        WLM 2009's C{2789003324:48} (the old default) is reported as
        claiming features msnp lacks, among them P2P v2 and webcam.
        """
        wrong = claimedWithoutFeature(Capabilities.fromString("2789003324:48"))
        self.assertTrue({"P2PV2", "RTC_VIDEO", "VIDEO_CHAT", "DIRECTIM", "P2P_TURN"} <= set(wrong))


class TableTests(SynchronousTestCase):
    def test_wlm2009Decomposition(self) -> None:
        """
        C{2789003324:48} decodes to the bits listed in reference 4.3.
        """
        value = Capabilities.fromString("2789003324:48")
        self.assertEqual(value.msncVersion, 10)
        self.assertEqual(value.unknownBits(), (0, 0))
        self.assertEqual(
            set(value.names()),
            {"MSNC9", "P2P_BOOTSTRAP_VIA_UUN", "P2P_TURN", "MULTI_VV", "SIP_INVITE", "SCHANNEL",
             "VOICEIM", "WINKS", "DIRECTIM", "SPACE", "PACKET", "VIDEO_CHAT", "INK_ISF", "INK_GIF",
             "P2PV2", "RTC_VIDEO"},
        )

    def test_p2pFeatureGivesMsnc9(self) -> None:
        """
        Adding P2P v1 sets the MSNC9 nibble and nothing of v2.
        """
        value = advertisedCapabilities(IMPLEMENTED | {Feature.P2P_V1})
        self.assertEqual(value.msncVersion, 9)
        self.assertEqual(value.extended & 0x30, 0)

    def test_allFeatures(self) -> None:
        """
        With every feature, the value is the reference's full v1 set plus
        ext bits for nudges, OIM and emoticons; still no forbidden bit.
        """
        value = advertisedCapabilities(set(Feature))
        self.assertEqual(value.caps, 0x90048024 | 0x8)
        self.assertEqual(value.extended, 0x400 | 0x100 | 0x8000000)
        self.assertFalse(NEVER & set(value.names()))

    def test_bitsUnique(self) -> None:
        """
        No bit appears twice in the table.
        """
        keys = [(b.value, b.extended) for b in CAPABILITY_BITS]
        self.assertEqual(len(keys), len(set(keys)))

    def test_unknownBitsReported(self) -> None:
        """
        A bit no entry names counts as claimed without a feature.
        """
        value = Capabilities(0x20, 0x4000)
        self.assertEqual(claimedWithoutFeature(value, IMPLEMENTED), ["unknown:0x0:0x4000"])

    def test_parse(self) -> None:
        """
        Lone numbers are MSNP15 values; junk raises L{ValueError}.
        """
        self.assertEqual(Capabilities.fromString("32"), Capabilities(32, 0))
        for bad in ("", "x:1", "1:-2", "99999999999:0", "4294967296:0"):
            self.assertRaises(ValueError, Capabilities.fromString, bad)
