"""
Tests for L{msnp.twistdsupport}, L{msnp.logs} and
L{msnp.service.MessengerService.whenFinished}: what the plugins need to exit
and log honestly.
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from msnp.errors import AuthenticationError
from msnp.service import MessengerService
from msnp.twistdsupport import installLogLevel, levelFilteredObserver, parseLogLevel


class RefusedClient:
    account = "bot@example.com"

    def login(self) -> Any:
        return fail(AuthenticationError("password refused"))


class NeverClient:
    account = "bot@example.com"

    def login(self) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred()


class WhenFinishedTests(SynchronousTestCase):
    """
    C{whenFinished} tells a process when the service will not sign in again.
    """

    def test_gaveUp(self) -> None:
        """
        Refused credentials: it fires with the error, also for a caller
        asking after the fact.
        """
        service = MessengerService(RefusedClient(), reactor=Clock())
        d = service.whenFinished()
        service.startService()
        self.assertIsInstance(self.successResultOf(d), AuthenticationError)
        self.assertIsInstance(self.successResultOf(service.whenFinished()), AuthenticationError)

    def test_stopped(self) -> None:
        """
        A plain C{stopService} fires it with L{None}.
        """
        service = MessengerService(NeverClient(), reactor=Clock())
        d = service.whenFinished()
        service.startService()
        self.assertNoResult(d)
        service.stopService()
        self.assertIsNone(self.successResultOf(d))


class LogLevelTests(SynchronousTestCase):
    """
    C{--log-level} names and the filtered observer.
    """

    def test_names(self) -> None:
        """
        The five level names (and C{warning}) are accepted; others refused.
        """
        self.assertIs(parseLogLevel("WARNING"), LogLevel.warn)
        self.assertIs(parseLogLevel("debug"), LogLevel.debug)
        self.assertRaises(ValueError, parseLogLevel, "loud")

    def test_filteredLogger(self) -> None:
        """
        The twistd C{--logger} option is pointed at a factory by dotted
        name (twistd resolves it so) whose observer drops lower levels.
        """
        seen: list[dict[str, Any]] = []
        options = {"logger": lambda: seen.append}
        installLogLevel(options, LogLevel.warn)
        self.assertEqual(options["logger"], "msnp.twistdsupport.levelFilteredObserver")
        observer = levelFilteredObserver()
        observer({"log_level": LogLevel.info, "log_namespace": "x", "log_format": "quiet"})
        observer({"log_level": LogLevel.error, "log_namespace": "x", "log_format": "loud"})
        self.assertEqual([event["log_format"] for event in seen], ["loud"])


class JSONObserverTests(SynchronousTestCase):
    """
    L{msnp.logs.jsonLogObserver} writes one JSON object per line.
    """

    def test_jsonLines(self) -> None:
        import sys

        from msnp.logs import jsonLogObserver

        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = jsonLogObserver()
        observer({"log_level": LogLevel.info, "log_namespace": "msnp", "log_format": "hi {x}", "x": 1,
                  "log_time": 0.0})
        (line,) = out.getvalue().splitlines()
        self.assertEqual(json.loads(line)["x"], 1)
