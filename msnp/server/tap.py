# -*- test-case-name: test.test_server_tap -*-
"""
C{twistd msnp-server}: the local MSNP18 network as a service.
"""

from __future__ import annotations

from twisted.application.service import IService, MultiService
from twisted.python import usage


class Options(usage.Options):
    """
    Command-line options of C{twistd msnp-server}.
    """

    optParameters = [
        ["interface", None, "127.0.0.1", "The address to listen on."],
    ]


def makeService(options: Options) -> IService:
    """
    Build the network service from parsed options.
    """
    return MultiService()
