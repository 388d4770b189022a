"""
Tests for L{msnp.challenge}: the C{CHL}/C{QRY} answer.
"""

from twisted.trial.unittest import SynchronousTestCase

from msnp.challenge import WLM2009_PRODUCT_ID, WLM2009_PRODUCT_KEY, computeChallengeResponse

MSN70 = ("PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL")
WLM81 = ("PROD0113H11T8$X_", "RG@XY*28Q5QHS%Q5")


class ChallengeVectorTests(SynchronousTestCase):
    """
    Every vector of reference section 4.12 is reproduced.
    """

    def test_productConstants(self) -> None:
        """
        The default pair is the WLM 2009 one.
        """
        self.assertEqual(WLM2009_PRODUCT_ID, "PROD0120PW!CCV9@")
        self.assertEqual(WLM2009_PRODUCT_KEY, "C1BX{V4W}Q3*10SM")

    def test_workedExample(self) -> None:
        """
        The worked example (and fixture 8.1) with the default WLM 2009 pair.
        """
        self.assertEqual(
            computeChallengeResponse("22210219642164014968"), "6e92a312bf6b70ee58e75a1e3315695c"
        )

    def test_wlm2009Vectors(self) -> None:
        """
        The additional WLM 2009 vectors, including a 27-digit challenge.
        """
        for challenge, expected in [
            ("11533365622852247127", "d30f6619c1130b588a81d19066730fd9"),
            ("237191752526424888127371168", "6818ab47621265f1f04c898cea09eac7"),
            ("36819795137093047918", "3a8d091254aa7f3255424e4f0f7d2851"),
        ]:
            self.assertEqual(
                computeChallengeResponse(challenge, WLM2009_PRODUCT_ID, WLM2009_PRODUCT_KEY),
                expected,
                challenge,
            )

    def test_publishedMSN70Vectors(self) -> None:
        """
        The published vectors for the MSN 7.0 pair.
        """
        self.assertEqual(
            computeChallengeResponse("22210219642164014968", *MSN70), "85ecb0db8f32113df79ce0892b9a102c"
        )
        self.assertEqual(
            computeChallengeResponse("36819795137093047918", *MSN70), "e7ad3cb09d3e9e4e7c720175984809e9"
        )

    def test_publishedWLM81Vectors(self) -> None:
        """
        The published vectors for the WLM 8.1 pair, one with a 27-digit challenge.
        """
        self.assertEqual(
            computeChallengeResponse("11533365622852247127", *WLM81), "f086d1ded067186deca8dba2231602cf"
        )
        self.assertEqual(
            computeChallengeResponse("237191752526424888127371168", *WLM81),
            "65b6b623c649c25629af048d34066040",
        )

    def test_shape(self) -> None:
        """
        The answer is always 32 lower-case hex characters.
        """
        for challenge in ("1", "12345678901234567890123456789012345", "0" * 20):
            answer = computeChallengeResponse(challenge)
            self.assertEqual(len(answer), 32)
            self.assertEqual(answer, answer.lower())
            int(answer, 16)


class ChallengeInputTests(SynchronousTestCase):
    """
    Anything but a string of ASCII digits is refused with L{ValueError}.
    """

    def test_badChallenges(self) -> None:
        """
        Empty, non-digit, signed, spaced and non-ASCII digit strings are refused.
        """
        for bad in ("", "abc", "123a", "-123", " 123", "123\r\n", "\u0661\u0662", "\u00b2"):
            self.assertRaises(ValueError, computeChallengeResponse, bad)

    def test_nonAsciiProduct(self) -> None:
        """
        A product id or key that is not ASCII is refused.
        """
        self.assertRaises(ValueError, computeChallengeResponse, "123", "PROD\u00e9", "KEY")
