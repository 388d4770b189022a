# -*- test-case-name: test.test_tap -*-
"""
C{twistd msnp}: a long-running MSNP18 client.
"""

from __future__ import annotations

from twisted.application.service import IService, MultiService
from twisted.python import usage


class Options(usage.Options):
    """
    Command-line options of C{twistd msnp}.
    """

    optParameters = [
        ["account", "a", None, "The account (e-mail address) to sign in with."],
    ]


def makeService(options: Options) -> IService:
    """
    Build the client service from parsed options.
    """
    return MultiService()
