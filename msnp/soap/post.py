# -*- test-case-name: test.test_soap_client,test.test_storage,test.test_soap_rsi -*-
"""
One SOAP call over HTTP, as the ABCH, storage and RSI clients make it: POST
the envelope, read the reply, turn a SOAP fault (on any HTTP status) into
the service's exception, and hand back the checked envelope.

Only the parts that differ stay with each service: its envelope headers,
its fault type and the response headers it keeps.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar
from xml.etree.ElementTree import Element

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from msnp.errors import ServiceError
from msnp.http import postXML
from msnp.xmlsafe import XMLError, child, iterByName, localName, parseXML, soapFault, textOf

log = Logger()

#: Reads the fault a response document carries (L{None} without one).
FaultReader = Callable[[Element, Optional[int]], Optional[Exception]]


class DetailedFault(ServiceError):
    """
    A service answered with a SOAP fault that may carry C{detail/errorcode}.

    @ivar errorCode: the text of C{detail/errorcode}, or L{None}; this is
        what a caller should branch on.
    """

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        faultCode: Optional[str] = None,
        faultString: Optional[str] = None,
        errorCode: Optional[str] = None,
    ) -> None:
        super().__init__(message, status=status, faultCode=faultCode, faultString=faultString)
        self.errorCode = errorCode


_Fault = TypeVar("_Fault", bound=DetailedFault)


def readDetailedFault(
    root: Element,
    status: Optional[int],
    faultClass: type[_Fault],
    label: str,
    useErrorString: bool,
) -> Optional[_Fault]:
    """
    The C{faultClass} a response document carries, or L{None}.

    @param label: how the message names the fault (C{"ABCH fault"}).
    @param useErrorString: whether C{detail/errorstring} stands in for a
        missing C{faultstring} in the message.
    """
    fault = soapFault(root)
    if fault is None:
        return None
    faultCode = textOf(fault, "faultcode").strip() or None
    faultString = textOf(fault, "faultstring").strip() or None
    detail = child(fault, "detail")
    errorCode = None
    errorString = None
    if detail is not None:
        errorCode = next((e.text.strip() for e in iterByName(detail, "errorcode") if e.text), None)
        if useErrorString:
            errorString = next(
                (e.text.strip() for e in iterByName(detail, "errorstring") if e.text), None
            )
    message = f"{label} {faultCode or '(no code)'}"
    if errorCode:
        message += f" [{errorCode}]"
    message += f": {faultString or errorString or 'no reason given'}"
    if status is not None:
        message += f" (HTTP {status})"
    return faultClass(
        message, status=status, faultCode=faultCode, faultString=faultString, errorCode=errorCode
    )


async def postSOAP(
    httpClient: Any,
    url: str,
    envelope: bytes,
    soapAction: str,
    clock: IReactorTime,
    timeout: float,
    maxBytes: int,
    what: str,
    readFault: FaultReader,
    emptyBody: Callable[[int], str],
) -> tuple[Element, int]:
    """
    POST C{envelope} and return the response envelope with its HTTP status.

    @param soapAction: the C{SOAPAction} header's value (without quotes).
    @param what: names the call in errors and logs (C{"ABCH FindMembership"}).
    @param readFault: the service's fault reader; the fault it finds is
        raised whatever the HTTP status.
    @param emptyBody: the error text for a reply without a body, given
        its status.
    @raise ServiceError: a transport error, a timeout, no body, an HTTP
        error status without a fault, or a document that is not a SOAP
        envelope (L{XMLError} for one that is not safe XML).
    """
    headers = {"SOAPAction": f'"{soapAction}"', "Content-Type": "text/xml; charset=utf-8"}
    result = await postXML(httpClient, url, envelope, headers, clock, timeout, maxBytes)
    status = result.status
    if not result.body.strip():
        raise ServiceError(emptyBody(status), status=status)
    try:
        root = parseXML(result.body, maxBytes)
    except XMLError as e:
        raise XMLError(f"{what}: unusable response (HTTP {status}): {e}", status=status) from None
    fault = readFault(root, status)
    if fault is not None:
        log.info("{what} failed: {fault}", what=what, fault=str(fault))
        raise fault
    if not (200 <= status < 300):
        raise ServiceError(f"{what}: HTTP {status}", status=status)
    if localName(root.tag) != "Envelope":
        raise ServiceError(f"{what}: response is not a SOAP envelope", status=status)
    return root, status


def soapBody(root: Element, what: str, status: int) -> Element:
    """
    The first child of C{soap:Body} (the C{...Response} element).

    @raise ServiceError: the body is missing or empty.
    """
    body = child(root, "Body")
    if body is None or len(body) == 0:
        raise ServiceError(f"{what}: SOAP body is missing or empty", status=status)
    return body[0]
