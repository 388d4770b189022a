"""
Tests for L{msnp.interfaces}: delivering events to several observers, and
refusing event names the interface does not declare.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from msnp.client import MSNClient
from msnp.interfaces import EVENTS, IMessengerObserver, Observers, notifyObserver
from msnp.testing import RecordingObserver
from twisted.internet.task import Clock


class _Raising:
    def signedIn(self, session: Any) -> None:
        raise RuntimeError("observer bug")


class ObserversTests(SynchronousTestCase):
    """
    L{Observers} and L{notifyObserver}.
    """

    def setUp(self) -> None:
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def test_oneRaisingDoesNotStopOthers(self) -> None:
        """
        An observer that raises is logged, and the observers after it still
        hear the event.
        """
        first, last = RecordingObserver("first", reactor=Clock()), RecordingObserver("last", reactor=Clock())
        observers = Observers([first, _Raising(), last])
        notifyObserver(observers, "signedIn", "the session")
        self.assertEqual(first.named("signedIn"), [("the session",)])
        self.assertEqual(last.named("signedIn"), [("the session",)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_undeclaredEventRefused(self) -> None:
        """
        A name that is not an L{IMessengerObserver} method is a programming
        error, refused even when nobody listens.
        """
        self.assertRaises(ValueError, notifyObserver, None, "messageRecieved", "c", "m")
        self.assertEqual(EVENTS, frozenset(IMessengerObserver.names()))

    def test_addRemove(self) -> None:
        """
        L{MSNClient.addObserver} adds observers (each once), L{removeObserver}
        removes one; C{client.observer} is the first, and setting it
        replaces them all.
        """
        clock = Clock()
        a, b = RecordingObserver("a", reactor=clock), RecordingObserver("b", reactor=clock)
        client = MSNClient("alice@example.com", "pw", observer=a, reactor=clock)
        client.addObserver(b)
        client.addObserver(b)
        self.assertEqual(list(client.observers), [a, b])
        self.assertIs(client.observer, a)
        notifyObserver(client.observers, "loginStep", client, "VER", 0.5)
        self.assertEqual(b.named("loginStep"), [(client, "VER", 0.5)])
        client.removeObserver(a)
        self.assertIs(client.observer, b)
        client.observer = None
        self.assertEqual(list(client.observers), [])
        self.assertIsNone(client.observer)


class SessionFirstTests(SynchronousTestCase):
    """
    The rule every event follows, so that it holds for events added later.
    """

    def test_sessionFirst(self) -> None:
        """
        Every declared event's first parameter is C{session}, but for
        C{loginStep}, which comes before the session exists and carries the
        client instead; no other event may be an exception.
        """
        first = {name: IMessengerObserver[name].positional[0] for name in IMessengerObserver.names()}
        self.assertEqual({name: p for name, p in first.items() if p != "session"}, {"loginStep": "client"})

    def test_argumentsTyped(self) -> None:
        """
        Every argument of every event is annotated, and none as C{Any}:
        each names the msnp value it is (read from the source, since the
        interface keeps no annotations).
        """
        import ast
        import inspect

        import msnp.interfaces

        tree = ast.parse(inspect.getsource(msnp.interfaces))
        [interface] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "IMessengerObserver"]
        untyped = {
            (method.name, argument.arg)
            for method in interface.body
            if isinstance(method, ast.FunctionDef)
            for argument in method.args.args
            if argument.annotation is None or "Any" in ast.unparse(argument.annotation)
        }
        self.assertEqual(untyped, set())
        self.assertEqual(
            {m.name for m in interface.body if isinstance(m, ast.FunctionDef)}, set(IMessengerObserver.names())
        )
