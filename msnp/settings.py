# -*- test-case-name: test.test_settings -*-
"""
The account settings the address book keeps as annotations of the Me
contact: who may see and reach me (C{MSN.IM.BLP}, reference section 4.13)
and whether my other places stay signed in (C{MSN.IM.MPOP}, section 5.4).

Both are changed the same way (MSNPSharp C{UpdateMe}): C{ABContactUpdate}
of the Me contact with the new annotation, and for the privacy also the
C{BLP} command, which the client re-sends at every sign-in because the
NS itself forgets it. L{meAnnotations} builds the mapping that
L{msnp.soap.addressbook.AddressBookService.contactUpdateMe} sends.
"""

from __future__ import annotations

import enum
from typing import Optional

#: The Me-contact annotation holding the privacy mode.
BLP_ANNOTATION = "MSN.IM.BLP"
#: The Me-contact annotation holding the MPOP choice.
MPOP_ANNOTATION = "MSN.IM.MPOP"


class Privacy(enum.Enum):
    """
    Who may see my presence and start conversations with me.

    The value is the C{BLP} argument.
    """

    #: Everybody not on my block list (C{AL}, the default).
    EVERYONE_NOT_BLOCKED = "AL"
    #: Only the people on my allow list (C{BL}).
    ALLOW_LIST_ONLY = "BL"

    @classmethod
    def fromCommand(cls, value: str) -> "Privacy":
        """
        The privacy named by a C{BLP} argument.

        @raise ValueError: neither C{AL} nor C{BL}.
        """
        try:
            return cls(value.strip().upper())
        except ValueError:
            raise ValueError(f"not a BLP value: {value!r}") from None

    @classmethod
    def fromAnnotation(cls, value: Optional[str], freshAccount: bool = False) -> "Privacy":
        """
        Read C{MSN.IM.BLP}. C{1} is C{AL}; the historical service (and
        MSNPSharp) wrote C{0} for C{BL}, Escargot writes C{2} for C{BL} and
        C{0} for "never set". So C{0} and C{2} (and anything else) are
        C{BL}, except a missing value, or C{0} on a fresh account, where
        the default C{AL} is the safe reading (the same rule as
        L{msnp.contacts.blpFromAnnotation}).
        """
        text = (value or "").strip()
        if text in ("", "1") or (text == "0" and freshAccount):
            return cls.EVERYONE_NOT_BLOCKED
        return cls.ALLOW_LIST_ONLY

    @property
    def annotationValue(self) -> str:
        """
        What to write into C{MSN.IM.BLP}: C{1} for C{AL}, C{0} for C{BL}, as
        the reference and MSNPSharp (which imitated WLM 2009) write it.
        """
        return "1" if self is Privacy.EVERYONE_NOT_BLOCKED else "0"


class MpopMode(enum.Enum):
    """
    What happens to my other places when I sign in somewhere (C{MSN.IM.MPOP}).
    """

    #: Other places stay signed in (C{1}, MSNPSharp "KeepOnline"; the default).
    KEEP_OTHER_PLACES = "1"
    #: Other places are signed out (C{0}, MSNPSharp "AutoLogoff").
    SIGN_OUT_OTHER_PLACES = "0"

    @classmethod
    def fromAnnotation(cls, value: Optional[str]) -> "MpopMode":
        """
        Read C{MSN.IM.MPOP}; only an explicit C{0} signs other places out,
        so a missing or unexpected value keeps them (the default).
        """
        if (value or "").strip() == "0":
            return cls.SIGN_OUT_OTHER_PLACES
        return cls.KEEP_OTHER_PLACES

    @property
    def annotationValue(self) -> str:
        """
        What to write into C{MSN.IM.MPOP}.
        """
        return self.value


def meAnnotations(
    privacy: Optional[Privacy] = None, mpop: Optional[MpopMode] = None
) -> dict[str, str]:
    """
    The Me-contact annotations that set C{privacy} and/or C{mpop} (only the
    ones given), for C{ABContactUpdate}.
    """
    annotations: dict[str, str] = {}
    if privacy is not None:
        annotations[BLP_ANNOTATION] = privacy.annotationValue
    if mpop is not None:
        annotations[MPOP_ANNOTATION] = mpop.annotationValue
    return annotations
