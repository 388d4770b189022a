"""
Tests for L{msnp.http.postXML}: a POST that always ends, with a typed error
when it does not end well.

Deadlines are tested in memory (L{StubTreq} and a L{Clock}); the size cap
and transport errors over real loopback sockets against a C{twisted.web}
server, through the library's own client (L{msnp.httpclient.makeHTTPClient}).
"""

from __future__ import annotations


from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IPullProducer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from msnp.errors import ServiceError
from msnp.http import BodyTooLarge, HTTPResult, postXML
from msnp.httpclient import HTTPClientHandle, makeHTTPClient

from test.support import Silent, TrackingFactory, stopTracked


URL = "http://127.0.0.1/service"
#: Deadline used with real sockets; loopback answers in milliseconds.
TIMEOUT = 10.0


class Echo(Resource):
    """
    Answers a POST with a fixed status and the request body wrapped in XML,
    and records what it received.
    """

    isLeaf = True

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status
        self.requests: list[tuple[bytes, Optional[bytes]]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        body = request.content.read()
        self.requests.append((body, request.getHeader(b"content-type")))
        request.setResponseCode(self.status)
        return b"<echo>" + body + b"</echo>"


class Stall(Resource):
    """
    Sends the headers and part of the body, then nothing more.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    def render_POST(self, request: Request) -> Any:
        self.requests.append(request)
        request.setHeader(b"content-length", b"1000")
        request.write(b"<partial>")
        return NOT_DONE_YET


class InMemoryTests(SynchronousTestCase):
    """
    L{postXML} over L{StubTreq}, with deadlines on a L{Clock}.
    """

    def post(self, resource: Resource, timeout: float = 5.0, maxBytes: int = 1000) -> tuple[Deferred[HTTPResult], Clock, StubTreq]:
        clock = Clock()
        stub = StubTreq(resource)
        d = postXML(stub, URL, b"<q/>", {"Content-Type": "text/xml"}, clock, timeout, maxBytes)
        stub.flush()
        return d, clock, stub

    def test_success(self) -> None:
        """
        The whole body and the status arrive in an L{HTTPResult}, and the
        request carried the body and headers given.
        """
        echo = Echo()
        d, _, _ = self.post(echo)
        self.assertEqual(self.successResultOf(d), HTTPResult(200, b"<echo><q/></echo>"))
        self.assertEqual(echo.requests, [(b"<q/>", b"text/xml")])

    def test_errorStatusIsAResult(self) -> None:
        """
        An HTTP 500 is not an error at this level: SOAP faults come with it.
        """
        d, _, _ = self.post(Echo(500))
        self.assertEqual(self.successResultOf(d).status, 500)

    def test_stallMidBody(self) -> None:
        """
        A server that sends part of the body and stalls is given up on at
        the deadline, with a L{ServiceError} naming the URL and the time;
        not one tick earlier.
        """
        stall = Stall()
        d, clock, _ = self.post(stall, timeout=5.0)
        self.assertEqual(len(stall.requests), 1)
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        error = self.failureResultOf(d, ServiceError).value
        self.assertNotIsInstance(error, BodyTooLarge)
        self.assertIn(URL, str(error))
        self.assertIn("5s", str(error))

    def test_noResponseAtAll(self) -> None:
        """
        A server that never sends headers fails the request at the deadline
        with a L{ServiceError}.
        """
        d, clock, _ = self.post(Silent(), timeout=3.0)
        clock.advance(2.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.failureResultOf(d, ServiceError)

    def test_noResponseAtAllMessage(self) -> None:
        """
        The headers deadline is reported as a timeout.
        """
        d, clock, _ = self.post(Silent(), timeout=3.0)
        clock.advance(3.0)
        self.assertIn("within 3s", str(self.failureResultOf(d, ServiceError).value))

    def test_deadlineCancelled(self) -> None:
        """
        A finished exchange leaves no timer behind on the clock.
        """
        d, clock, _ = self.post(Echo())
        self.successResultOf(d)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_tooLargeInMemory(self) -> None:
        """
        A body over the cap is refused with L{BodyTooLarge}, carrying the
        status; one at the cap is accepted.
        """
        exact = Echo()
        d, _, _ = self.post(exact, maxBytes=len(b"<echo><q/></echo>"))
        self.successResultOf(d)
        d, _, _ = self.post(Echo(), maxBytes=len(b"<echo><q/></echo>") - 1)
        error = self.failureResultOf(d, BodyTooLarge).value
        self.assertIsInstance(error, ServiceError)
        self.assertEqual(error.status, 200)

    def test_unusableURL(self) -> None:
        """
        An error raised before any I/O (a URL treq rejects) is still a
        L{ServiceError}, not an unexpected exception.
        """
        clock = Clock()
        d = postXML(StubTreq(Echo()), "not a url", b"", {}, clock, 5.0)
        self.failureResultOf(d, ServiceError)


# -- real sockets -------------------------------------------------------------------


@implementer(IPullProducer)
class EndlessBody:
    """
    Writes 64 KiB chunks for as long as the client reads.
    """

    chunk = b"<x>" + b"a" * (64 * 1024 - 7) + b"</x>"

    def __init__(self, request: Request) -> None:
        self.request = request
        self.sent = 0
        self.stopped = False

    def resumeProducing(self) -> None:
        if not self.stopped:
            self.sent += len(self.chunk)
            self.request.write(self.chunk)

    def stopProducing(self) -> None:
        self.stopped = True


class Endless(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.producers: list[EndlessBody] = []

    def render_POST(self, request: Request) -> Any:
        producer = EndlessBody(request)
        self.producers.append(producer)
        request.registerProducer(producer, False)
        return NOT_DONE_YET


class HangUp(Resource):
    """
    Promises 1000 bytes, sends a few, and closes the connection.
    """

    isLeaf = True

    def render_POST(self, request: Request) -> Any:
        request.setHeader(b"content-length", b"1000")
        request.write(b"<partial>")
        request.channel.transport.loseConnection()  # type: ignore[union-attr]
        return NOT_DONE_YET


class LoopbackTests(TestCase):
    """
    L{postXML} against a real C{twisted.web} server on 127.0.0.1.
    """

    def serve(self, resource: Resource) -> str:
        root = Resource()
        root.putChild(b"service", resource)
        factory = TrackingFactory(Site(root))
        listener: Any = reactor
        port = listener.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(stopTracked, port, factory)
        self.factory = factory
        return f"http://127.0.0.1:{port.getHost().port}/service"

    def client(self) -> HTTPClientHandle:
        handle = makeHTTPClient(reactor, persistent=True)
        self.addCleanup(handle.close)
        return handle

    def test_roundTrip(self) -> "Deferred[Any]":
        """
        A real exchange returns the body.
        """
        url = self.serve(Echo())
        d = postXML(self.client().client, url, b"<q/>", {}, reactor, TIMEOUT)
        d.addCallback(self.assertEqual, HTTPResult(200, b"<echo><q/></echo>"))
        return d

    def test_endlessBodyAbandoned(self) -> "Deferred[Any]":
        """
        A server streaming an endless body is cut off: L{BodyTooLarge}
        arrives, and the client drops the connection by itself (nothing
        else closes it), so the server stops producing.
        """
        endless = Endless()
        url = self.serve(endless)
        cap = 1024 * 1024
        d: Deferred[Any] = self.assertFailure(
            postXML(self.client().client, url, b"<q/>", {}, reactor, TIMEOUT, maxBytes=cap), BodyTooLarge
        )

        def serverSide(error: BodyTooLarge) -> "Deferred[Any]":
            self.assertIn(str(cap), str(error))
            self.assertEqual(error.status, 200)
            return self.factory.everyConnection[0].lost

        def stopped(_: Any) -> None:
            producer = endless.producers[0]
            self.assertTrue(producer.stopped)
            self.assertGreater(producer.sent, cap)

        return d.addCallback(serverSide).addCallback(stopped)

    def test_connectionRefused(self) -> "Deferred[Any]":
        """
        Nobody listening is a L{ServiceError} naming the URL.
        """
        listener: Any = reactor
        probe = listener.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        deadURL = f"http://127.0.0.1:{probe.getHost().port}/service"
        d = succeed(probe.stopListening())

        def post(_: Any) -> "Deferred[Any]":
            return self.assertFailure(
                postXML(self.client().client, deadURL, b"", {}, reactor, TIMEOUT), ServiceError
            )

        def check(error: ServiceError) -> None:
            self.assertIn(deadURL, str(error))
            self.assertIn("failed", str(error))

        return d.addCallback(post).addCallback(check)

    def test_hangUpMidBody(self) -> "Deferred[Any]":
        """
        A server that closes the connection before the promised length is a
        L{ServiceError}, not a short body taken for a whole one.
        """
        url = self.serve(HangUp())
        d = self.assertFailure(postXML(self.client().client, url, b"", {}, reactor, TIMEOUT), ServiceError)
        d.addCallback(lambda e: self.assertNotIsInstance(e, BodyTooLarge))
        return d

    def test_stallMidBodyClosesConnection(self) -> "Deferred[Any]":
        """
        Over a real connection, a server that sent its headers and part of
        the body and then stalls is given up on at the deadline (on a
        L{Clock}), and the connection is closed at once rather than left
        open until the server gives up.
        """
        stall = Stall()
        url = self.serve(stall)
        clock = Clock()
        handle = self.client()
        responded: Deferred[None] = Deferred()

        class Spy:
            def post(self, *args: Any, **kwargs: Any) -> "Deferred[Any]":
                def seen(response: Any) -> Any:
                    responded.callback(None)
                    return response

                return handle.client.post(*args, **kwargs).addCallback(seen)

        d = self.assertFailure(postXML(Spy(), url, b"", {}, clock, 5.0), ServiceError)

        def midBody(_: Any) -> "Deferred[Any]":
            self.assertNoResult(d)
            clock.advance(5.0)
            return d

        def check(error: ServiceError) -> "Deferred[Any]":
            self.assertIn("within 5s", str(error))
            return DeferredList([c.lost for c in self.factory.everyConnection])

        return responded.addCallback(midBody).addCallback(check)

    def test_silentServerTimesOut(self) -> "Deferred[Any]":
        """
        Over a real connection, a server that never answers is given up on
        at the deadline (on a L{Clock}) with a L{ServiceError} that says it
        timed out, and the connection is not left open.
        """
        silent = Silent()
        url = self.serve(silent)
        clock = Clock()
        d = self.assertFailure(postXML(self.client().client, url, b"", {}, clock, 5.0), ServiceError)

        def arrived(_: Any) -> "Deferred[Any]":
            clock.advance(4.9)
            self.assertNoResult(d)
            clock.advance(0.1)
            return d

        def check(error: ServiceError) -> "Deferred[Any]":
            self.assertIn("within 5s", str(error))
            return DeferredList([c.lost for c in self.factory.everyConnection])

        return silent.received.addCallback(arrived).addCallback(check)


class WireURLTests(SynchronousTestCase):
    """
    L{msnp.http._wireURL}: what treq would send, computed once per URL.
    """

    def test_sameAsTreq(self) -> None:
        """
        The wire form is treq's own C{to_uri().to_text()}, also for a host
        and a path that need IDNA and percent-encoding; C{to_uri} of it is
        itself.
        """
        from hyperlink import EncodedURL

        from msnp.http import _wireURL

        for url in ("http://127.0.0.1:9/RST2.srf", "https://login.live.com:443//RST2.srf?a=b c",
                    "https://b\u00fccher.example/pfad/\u00e4?x=\u00fc"):
            wire = _wireURL(url)
            self.assertEqual(wire.to_uri().to_text(), EncodedURL.from_text(url).to_uri().to_text())
            self.assertIs(wire.to_uri(), wire)
            self.assertIs(_wireURL(url), wire)

    def test_replacedIsAnOrdinaryURL(self) -> None:
        """
        A URL derived from the wire form (treq adds query parameters with
        C{replace}) is encoded again when sent.
        """
        from hyperlink import EncodedURL

        from msnp.http import _WireURL, _wireURL

        derived = _wireURL("http://127.0.0.1/service").replace(query=(("q", "\u00e4"),))
        self.assertNotIsInstance(derived, _WireURL)
        self.assertEqual(derived.to_uri().to_text(), EncodedURL.from_text("http://127.0.0.1/service?q=%C3%A4").to_text())
class EndpointChoiceTests(SynchronousTestCase):
    """
    The pool's endpoints: an IPv4 address is connected to directly (no
    resolver round trip, issue 13), anything else through
    L{HostnameEndpoint}; https is TLS over either.
    """

    def endpointFor(self, uri: bytes) -> Any:
        import weakref

        from twisted.web.client import URI, BrowserLikePolicyForHTTPS

        from msnp.httpclient import _EndpointFactory

        # (The real reactor: nothing is connected, and HostnameEndpoint wants a
        # resolver.)
        factory = _EndpointFactory(reactor, BrowserLikePolicyForHTTPS(), weakref.WeakSet())
        return factory.endpointForURI(URI.fromBytes(uri))._endpoint

    def test_addressIsDirect(self) -> None:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        endpoint = self.endpointFor(b"http://127.0.0.1:8080/abservice/abservice.asmx")
        self.assertIsInstance(endpoint, TCP4ClientEndpoint)
        self.assertEqual((endpoint._host, endpoint._port, endpoint._timeout), ("127.0.0.1", 8080, 30))

    def test_nameIsResolved(self) -> None:
        from twisted.internet.endpoints import HostnameEndpoint

        self.assertIsInstance(self.endpointFor(b"http://contacts.example.com/abservice"), HostnameEndpoint)

    def test_httpsWrapsEither(self) -> None:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        wrapped = self.endpointFor(b"https://127.0.0.1:8443/RST2.srf")
        self.assertIsInstance(wrapped._wrappedEndpoint, TCP4ClientEndpoint)
