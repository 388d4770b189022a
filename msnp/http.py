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
from typing import Any, Mapping

import treq
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

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


async def _post(
    httpClient: Any,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    maxBytes: int,
) -> HTTPResult:
    response = await httpClient.post(
        url, data=body, headers={k: [v] for k, v in headers.items()}
    )
    chunks: list[bytes] = []
    received = 0

    def collect(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if received > maxBytes:
            raise BodyTooLarge(
                f"response from {url} exceeded {maxBytes} bytes", status=response.code
            )
        chunks.append(data)

    await treq.collect(response, collect)
    return HTTPResult(response.code, b"".join(chunks))


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
    d = ensureDeferred(_post(httpClient, url, body, headers, maxBytes))
    timedOut = False

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
