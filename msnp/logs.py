# -*- test-case-name: test.test_twistdsupport -*-
"""
Log observers ready for C{twistd --logger}.

C{twistd --logger} takes the dotted name of a callable with no arguments
that returns a log observer; L{twisted.logger.jsonFileLogObserver} needs a
file, so naming it fails with a C{TypeError}. L{jsonLogObserver} is that
observer on standard output, one JSON object per line, which is what
journald, Docker and most log shippers read::

    twistd -n --logger msnp.logs.jsonLogObserver msnp --account ...

Every msnp event logged by C{--handler log} carries C{msnpEvent} and its
fields, so they come out as JSON keys.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def jsonLogObserver() -> ILogObserver:
    """
    Every log event as one line of JSON on standard output.
    """
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
