"""
L{msnp.endpoints.connectQuietly}: the connection attempt every client
connection goes through (the login's DS and NS, each switchboard). Its
L{Deferred} fires or fails, and cancelling it never raises, whatever state
Twisted's connector is in.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectingCancelledError, NotConnectingError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msnp.endpoints import connectQuietly


class ConnectQuietlyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.protocol = Protocol()
        self.connecting = connectQuietly(TCP4ClientEndpoint(self.reactor, "127.0.0.1", 1863), self.protocol)

    def connect(self) -> StringTransport:
        transport = StringTransport()
        built = self.reactor.tcpClients[0][2].buildProtocol(None)
        assert built is not None
        built.makeConnection(transport)
        return transport

    def test_connected(self) -> None:
        """
        It fires with the very protocol once connected.
        """
        self.connect()
        self.assertIs(self.successResultOf(self.connecting), self.protocol)

    def test_cancelledWhileConnecting(self) -> None:
        """
        Cancelled while connecting, it fails as the endpoint does.
        """
        self.connecting.cancel()
        self.failureResultOf(self.connecting, ConnectingCancelledError)

    def test_connectorRefusesToStop(self) -> None:
        """
        When Twisted refuses to stop the connector (connected, but the
        protocol never started: C{NotConnectingError}), cancelling raises
        nothing and the attempt ends, with no error logged.
        """
        def refuse() -> None:
            raise NotConnectingError()

        self.reactor.connectors[0].stopConnecting = refuse  # type: ignore[method-assign]
        self.connecting.cancel()
        self.failureResultOf(self.connecting, ConnectingCancelledError)
        self.assertEqual(self.flushLoggedErrors(), [])


def _refuse(attempt: "Deferred[Any]") -> None:
    """
    A canceller that raises and leaves its attempt waiting (a L{Deferred}
    whose canceller raises is not failed by C{cancel}).
    """
    raise NotConnectingError()


class _Endpoint:
    """
    An endpoint whose attempt is a bare L{Deferred} with the given
    canceller: the shapes Twisted's own endpoints do not show.
    """

    def __init__(self, canceller: Any) -> None:
        self.attempt: Deferred[Any] = Deferred(canceller)

    def connect(self, factory: Any) -> "Deferred[Any]":
        self.factory = factory
        return self.attempt


class UnusualEndpointTests(SynchronousTestCase):
    def test_cancellerRaisesAndLeavesItWaiting(self) -> None:
        """
        A canceller that raises without failing its attempt: the attempt
        handed out fails with C{CancelledError}, and nothing raises.
        """
        endpoint = _Endpoint(_refuse)
        connecting = connectQuietly(endpoint, Protocol())
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_connectedAfterGivingUp(self) -> None:
        """
        The attempt left waiting by its canceller connects after all: the
        connection has no owner, and it is aborted, not left open.
        """
        endpoint = _Endpoint(_refuse)
        protocol = Protocol()
        connecting = connectQuietly(endpoint, protocol)
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        built = endpoint.factory.buildProtocol(None)
        transport = StringTransport()
        built.makeConnection(transport)
        endpoint.attempt.callback(built)
        self.assertTrue(transport.disconnecting)

    def test_failureAfterGivingUpIsQuiet(self) -> None:
        """
        The attempt failing after it was given up is not an unhandled
        error.
        """
        endpoint = _Endpoint(_refuse)
        connecting = connectQuietly(endpoint, Protocol())
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        endpoint.attempt.errback(Failure(ConnectionRefusedError()))
        del endpoint
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])
