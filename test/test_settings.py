"""
Tests for L{msnp.settings}: the privacy and MPOP settings and their
Me-contact annotations.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msnp.contacts import blpFromAnnotation
from msnp.settings import BLP_ANNOTATION, MPOP_ANNOTATION, MpopMode, Privacy, meAnnotations


class PrivacyTests(SynchronousTestCase):
    """
    L{Privacy}.
    """

    def test_commandValues(self) -> None:
        """
        The values are the C{BLP} arguments; others are refused.
        """
        self.assertEqual(Privacy.fromCommand("AL"), Privacy.EVERYONE_NOT_BLOCKED)
        self.assertEqual(Privacy.fromCommand(" bl "), Privacy.ALLOW_LIST_ONLY)
        self.assertEqual(Privacy.ALLOW_LIST_ONLY.value, "BL")
        self.assertRaises(ValueError, Privacy.fromCommand, "XX")

    def test_annotationRoundTrip(self) -> None:
        """
        C{AL} is written C{1} and C{BL} C{0} (reference 4.13), and both read back.
        """
        self.assertEqual(Privacy.EVERYONE_NOT_BLOCKED.annotationValue, "1")
        self.assertEqual(Privacy.ALLOW_LIST_ONLY.annotationValue, "0")
        for privacy in Privacy:
            self.assertEqual(Privacy.fromAnnotation(privacy.annotationValue), privacy)

    def test_serverVariants(self) -> None:
        """
        Escargot's C{2} is C{BL}; missing is C{AL}; C{0} on a fresh account
        is C{AL}; the reading agrees with the address-book sync's.
        """
        cases = [(None, False), ("", False), ("1", False), ("0", False), ("2", False), ("0", True), ("x", False)]
        for value, fresh in cases:
            self.assertEqual(
                Privacy.fromAnnotation(value, fresh).value, blpFromAnnotation(value, fresh), (value, fresh)
            )
        self.assertEqual(Privacy.fromAnnotation("2"), Privacy.ALLOW_LIST_ONLY)


class MpopTests(SynchronousTestCase):
    """
    L{MpopMode} and L{meAnnotations}.
    """

    def test_annotation(self) -> None:
        """
        Only an explicit C{0} signs the other places out.
        """
        self.assertEqual(MpopMode.fromAnnotation("0"), MpopMode.SIGN_OUT_OTHER_PLACES)
        for value in ("1", None, "", "junk"):
            self.assertEqual(MpopMode.fromAnnotation(value), MpopMode.KEEP_OTHER_PLACES)
        self.assertEqual(MpopMode.SIGN_OUT_OTHER_PLACES.annotationValue, "0")

    def test_meAnnotations(self) -> None:
        """
        Only the settings given are in the mapping.
        """
        self.assertEqual(meAnnotations(), {})
        self.assertEqual(meAnnotations(privacy=Privacy.ALLOW_LIST_ONLY), {BLP_ANNOTATION: "0"})
        self.assertEqual(
            meAnnotations(Privacy.EVERYONE_NOT_BLOCKED, MpopMode.SIGN_OUT_OTHER_PLACES),
            {BLP_ANNOTATION: "1", MPOP_ANNOTATION: "0"},
        )
