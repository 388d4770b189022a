# -*- test-case-name: test.test_twistdsupport -*-
"""
What C{twistd msnp} and C{twistd msnp-server} need from C{twistd} that it
does not give a plugin: an exit code a process supervisor can act on, one
line (not the whole usage) for a bad option, and a log level.

Shared by both plugins' C{tap} modules (it imports nothing of either side),
so the client and the local network behave the same. See
C{docs/exits-and-logs.md} for the choices made here.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import fields
from typing import Any, Optional, TextIO, Union

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.reflect import namedAny

#: Exit codes: 1 for "the service gave up / could not start", 2 for bad
#: options (as argparse and most Unix tools do).
EXIT_FAILED = 1
EXIT_USAGE = 2

#: The names C{--log-level} accepts.
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def parseLogLevel(text: str) -> LogLevel:
    """
    @raise ValueError: C{text} is not one of L{LOG_LEVELS}.
    """
    name = text.strip().lower()
    if name == "warning":
        name = "warn"
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r}; use one of: {', '.join(LOG_LEVELS)}")
    return LogLevel.levelWithName(name)


def parseLimitChange(assignment: str, limitsClass: type) -> tuple[str, Union[int, float]]:
    """
    Read one C{--limit NAME=VALUE} of either plugin: C{NAME} a field of the
    limits dataclass C{limitsClass}, C{VALUE} a number of that field's type.

    @raise usage.UsageError: no C{=}, an unknown name, or not a number.
    """
    name, sep, value = assignment.partition("=")
    kinds = {f.name: f.type for f in fields(limitsClass)}
    if not sep or name not in kinds:
        raise usage.UsageError(f"--limit wants NAME=VALUE with NAME one of: {', '.join(sorted(kinds))}")
    convert = float if kinds[name] in (float, "float") else int
    try:
        return name, convert(value)
    except ValueError:
        raise usage.UsageError(f"--limit {name}: {value!r} is not a number") from None


class TwistdOptionsMixin:
    """
    Mixed into a plugin's L{usage.Options}.

    Under C{twistd} (the options have a C{parent}), a bad option ends the
    process with one line on standard error and exit code 2, whatever the
    Twisted version: C{twistd} before 26.10 prints its whole usage for a
    plugin's L{usage.UsageError} and exits 0. Parsed on their own (tests,
    other programs), the options raise L{usage.UsageError} as usual.

    It also gives the plugin C{--log-level}, which filters what C{twistd}
    logs, to its default log file or standard output as well as to a
    C{--logger}.
    """

    parent: Any = None
    commandName = "twistd"

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        try:
            usage.Options.parseOptions(self, options)  # type: ignore[arg-type]
        except usage.UsageError as e:
            if self.parent is None:
                raise
            sys.stderr.write(f"{self.commandName}: {e}\n({self.commandName} --help lists the options)\n")
            sys.stderr.flush()
            raise SystemExit(EXIT_USAGE)

    def opt_log_level(self, value: str) -> None:
        """
        Log only events at this level or above: debug, info (default), warn, error, critical.
        """
        try:
            level = parseLogLevel(value)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["log-level"] = level.name  # type: ignore[index]
        if self.parent is not None:
            installLogLevel(self.parent, level)


#: What L{installLogLevel} arranged, for L{levelFilteredObserver}: twistd
#: resolves its C{--logger} option by dotted name, so the factory it is
#: given must be a module-level name and cannot carry arguments.
_chosenLogging: Optional[dict[str, Any]] = None


def installLogLevel(twistdOptions: Any, level: LogLevel) -> None:
    """
    Make C{twistd} log only events at C{level} or above.

    C{twistd} builds its log observer from its C{--logger} option after the
    plugin's options are parsed; this points that option at
    L{levelFilteredObserver}, which builds the observer C{twistd} would
    have built (the C{--logger} given, else its text log to standard
    output or C{--logfile}) wrapped in a level filter. With C{--syslog}
    the level is not applied (and a warning says so), since C{twistd}'s
    syslog observer is built elsewhere.
    """
    global _chosenLogging
    if twistdOptions.get("syslog"):
        sys.stderr.write("--log-level is not applied with --syslog\n")
        return
    chosen = twistdOptions.get("logger")
    if isinstance(chosen, str):
        try:
            chosen = namedAny(chosen)
        except Exception as e:
            raise usage.UsageError(f"Logger {chosen!r} could not be imported: {e}") from None
    _chosenLogging = {
        "factory": chosen,
        "logfile": twistdOptions.get("logfile"),
        "nodaemon": bool(twistdOptions.get("nodaemon")),
        "level": level,
    }
    twistdOptions["logger"] = f"{__name__}.levelFilteredObserver"


def levelFilteredObserver() -> ILogObserver:
    """
    The observer L{installLogLevel} arranged (a C{--logger} factory).
    """
    chosen = _chosenLogging or {"factory": None, "logfile": None, "nodaemon": True, "level": LogLevel.info}
    factory = chosen["factory"]
    observer = factory() if factory is not None else _defaultObserver(chosen["logfile"], chosen["nodaemon"])
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=chosen["level"])])


def _defaultObserver(logfile: Optional[str], nodaemon: bool) -> ILogObserver:
    """
    The text observer C{twistd} uses without C{--logger}: standard output
    for C{-n} without C{--logfile} (or C{--logfile -}), else the log file
    (C{twistd.log} by default).
    """
    out: TextIO
    if logfile == "-" or (nodaemon and not logfile):
        out = sys.stdout
    else:
        from twisted.python.logfile import LogFile

        out = LogFile.fromFullPath(logfile or "twistd.log")  # type: ignore[assignment]
    return textFileLogObserver(out)


def exitAfterShutdown(reactor: Any, code: int) -> None:
    """
    Stop C{reactor} and make the process exit with C{code} once C{twistd}
    has finished shutting down (services stopped, pid file removed, logs
    written).

    C{twistd} has no way for a plugin to set the exit code: it returns
    normally after the reactor stops, so the process exits 0. The last
    C{atexit} hook is the first point after that; it flushes standard
    output and error and ends the process with C{code}.
    """

    def exitNow() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)

    atexit.register(exitNow)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)

