"""
The one place that picks the global reactor when none was given, so that
every other module takes an injected reactor (and tests a
L{twisted.internet.task.Clock}).
"""

from __future__ import annotations

from typing import Any


def reactorOrDefault(reactor: Any) -> Any:
    """
    The given reactor, or the global one when L{None}.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        return globalReactor
    return reactor
