# -*- test-case-name: test.test_http -*-
"""
One POST with a deadline and a size cap, for the SSO and SOAP clients.

A service that stalls in the middle of its body, or streams an endless one,
must not hang a login or fill memory: the whole exchange (connect, headers,
body) runs under one timeout on an injectable clock, and the body is read
incrementally and abandoned as soon as it exceeds the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from msnp.errors import ServiceError

#: Default deadline of one HTTP exchange, body included.
DEFAULT_HTTP_TIMEOUT = 30.0
#: Default cap on a response body.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyTooLarge(ServiceError):
    """
    The response body grew past the configured cap and was abandoned.
    """


@dataclass(frozen=True)
class HTTPResult:
    """
    A completed HTTP exchange: status code and the whole body.
    """

    status: int
    body: bytes


class _BoundedBody(Protocol):
    """
    Collects a response body up to a cap.

    Unlike C{treq.collect}, cancelling L{finished} (the deadline of
    L{postXML}) stops the transfer and closes the connection at once, so a
    server stalling in the middle of its body does not keep a socket open.
    """

    def __init__(self, url: str, status: int, maxBytes: int) -> None:
        self.url = url
        self.status = status
        self.maxBytes = maxBytes
        self.received = 0
        self.chunks: list[bytes] = []
        self.finished: "Deferred[HTTPResult]" = Deferred(lambda _: self._stop())

    def _stop(self) -> None:
        # The body's transport is a producer: stopping it drops the
        # connection underneath.
        stopProducing = getattr(self.transport, "stopProducing", None)
        if stopProducing is not None:
            stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.received += len(data)
        if self.received > self.maxBytes:
            self._stop()
            self.finished.errback(
                BodyTooLarge(
                    f"response from {self.url} exceeded {self.maxBytes} bytes", status=self.status
                )
            )
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(HTTPResult(self.status, b"".join(self.chunks)))
        else:
            self.finished.errback(reason)


@implementer(IBodyProducer)
class _BytesBody:
    """
    A request body already in memory, written in one go when the request
    starts, right after its headers: treq's default producer for C{bytes}
    (a C{FileBodyProducer}) writes it from a cooperator task, at least a
    reactor turn later.
    """

    __slots__ = ("_body", "length")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> "Deferred[None]":
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """
        Nothing to pause: the body is written at once.
        """

    def resumeProducing(self) -> None:
        """
        Nothing to resume.
        """

    def stopProducing(self) -> None:
        """
        Nothing to stop.
        """


class _WireURL(EncodedURL):
    """
    A URL already in its wire form: treq turns every URL it is given into
    one (C{to_uri}, an IDNA and percent-encoding pass, then C{to_text})
    on every request, about a tenth of a request's CPU time in the client;
    the service URLs of a session never change, so L{_wireURL} does that
    once per URL. Anything derived from it (C{replace}) is an ordinary URL
    again.
    """

    _text = ""

    def to_uri(self) -> "EncodedURL":
        return self

    def to_text(self, with_password: bool = False) -> str:
        if with_password or not self._text:
            return str(EncodedURL.to_text(self, with_password))
        return self._text

    def replace(self, *args: Any, **kwargs: Any) -> "EncodedURL":
        return EncodedURL.from_text(self.to_text(True)).replace(*args, **kwargs)


#: URL text -> its L{_WireURL}; bounded (cleared when full), since
#: picture URLs come from peers.
_wireURLs: dict[str, EncodedURL] = {}
_MAX_WIRE_URLS = 256


def _wireURL(url: str) -> EncodedURL:
    """
    C{url} as treq would send it, computed once per URL.
    """
    cached = _wireURLs.get(url)
    if cached is None:
        uri = EncodedURL.from_text(url).to_uri()
        cached = _WireURL(
            scheme=uri.scheme, host=uri.host, path=uri.path, query=uri.query, fragment=uri.fragment,
            port=uri.port, rooted=uri.rooted, userinfo=uri.userinfo, uses_netloc=uri.uses_netloc,
        )
        cached._text = uri.to_text()
        if len(_wireURLs) >= _MAX_WIRE_URLS:
            _wireURLs.clear()
        _wireURLs[url] = cached
    return cached


async def _request(
    httpClient: Any,
    method: str,
    url: str,
    body: Optional[bytes],
    headers: Mapping[str, str],
    maxBytes: int,
    expired: Callable[[], bool],
) -> HTTPResult:
    wireHeaders = {k: [v] for k, v in headers.items()}
    # treq's own HTTPClient takes a producer; StubTreq (tests) only bytes.
    data: Any = body
    target: Any = url
    if isinstance(httpClient, HTTPClient):
        target = _wireURL(url)
        if body is not None:
            data = _BytesBody(body)
    if method == "POST":
        response = await httpClient.post(target, data=data, headers=wireHeaders)
    else:
        response = await httpClient.request(method, target, data=data, headers=wireHeaders)
    collector = _BoundedBody(url, response.code, maxBytes)
    response.deliverBody(collector)
    if expired():
        # The deadline passed while the headers were being delivered, when
        # there was nothing to cancel yet: stop the body here.
        collector.finished.cancel()
    return await collector.finished


def postXML(
    httpClient: Any,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    clock: IReactorTime,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    maxBytes: int = DEFAULT_MAX_BODY_BYTES,
) -> "Deferred[HTTPResult]":
    """
    POST C{body} to C{url} and collect the whole response.

    @param httpClient: a L{treq.client.HTTPClient} (or L{treq.testing.StubTreq}).
    @param clock: the clock the deadline runs on.
    @return: a L{Deferred} firing with an L{HTTPResult} whatever the status
        (SOAP faults come with 200 and 500 alike), or failing with
        L{ServiceError} on a transport error, a timeout or an oversized body.
    """
    return requestBody(httpClient, "POST", url, body, headers, clock, timeout, maxBytes)


def getBody(
    httpClient: Any,
    url: str,
    clock: IReactorTime,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    maxBytes: int = DEFAULT_MAX_BODY_BYTES,
    headers: Mapping[str, str] = {},
) -> "Deferred[HTTPResult]":
    """
    GET C{url} (a picture, a document) under the same deadline and cap as
    L{postXML}, with the same results and failures.
    """
    return requestBody(httpClient, "GET", url, None, headers, clock, timeout, maxBytes)


def requestBody(
    httpClient: Any,
    method: str,
    url: str,
    body: Optional[bytes],
    headers: Mapping[str, str],
    clock: IReactorTime,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    maxBytes: int = DEFAULT_MAX_BODY_BYTES,
) -> "Deferred[HTTPResult]":
    """
    One HTTP exchange of any C{method}; see L{postXML}.
    """
    timedOut = False
    d = ensureDeferred(_request(httpClient, method, url, body, headers, maxBytes, lambda: timedOut))

    def expire() -> None:
        nonlocal timedOut
        timedOut = True
        d.cancel()

    timer = clock.callLater(timeout, expire)

    def stopTimer(result: object) -> object:
        if timer.active():
            timer.cancel()
        return result

    def translate(failure: Failure) -> Failure:
        # However the HTTP client wraps the cancellation, a deadline that
        # fired is reported as a timeout.
        if timedOut or failure.check(CancelledError, TimeoutError):
            raise ServiceError(f"no complete response from {url} within {timeout:g}s")
        if failure.check(ServiceError):
            return failure
        raise ServiceError(
            f"HTTP request to {url} failed: {failure.getErrorMessage() or repr(failure.value)}"
        )

    d.addBoth(stopTimer)
    d.addErrback(translate)
    return d
