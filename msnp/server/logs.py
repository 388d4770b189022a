# -*- test-case-name: test.test_server_limits -*-
"""
The server's own log file, with bounded retention.

twistd's C{--logfile} rotates at 1 MB but keeps every rotated file, so a
peer that makes the server log (even summarised lines) fills the disk in
the end. L{BoundedLogService} writes the log to a file of its own that is
rotated at C{logRotateLength} bytes with at most C{logMaxRotatedFiles} old
files kept: at most C{(1 + logMaxRotatedFiles) * logRotateLength} bytes
on disk, whatever is logged.
"""

from __future__ import annotations

from typing import IO, Any, Optional, cast

from twisted.application.service import Service
from twisted.logger import FileLogObserver, formatEventAsClassicLogText, globalLogPublisher
from twisted.python.logfile import LogFile

from msnp.server.limits import DEFAULT_LIMITS, ServerLimits


class BoundedLogService(Service):
    """
    While running, copies every log event to C{path}, rotated and pruned.

    @ivar logFile: the open L{LogFile}, L{None} while stopped.
    """

    def __init__(self, path: str, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.logFile: Optional[LogFile] = None
        self._observer: Optional[FileLogObserver] = None

    def startService(self) -> None:
        self.logFile = LogFile.fromFullPath(
            self.path,
            rotateLength=self.limits.logRotateLength,
            maxRotatedFiles=self.limits.logMaxRotatedFiles,
        )
        self._observer = FileLogObserver(cast(IO[Any], self.logFile), lambda event: formatEventAsClassicLogText(event))
        globalLogPublisher.addObserver(self._observer)
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            self._observer = None
        if self.logFile is not None:
            self.logFile.close()
            self.logFile = None
