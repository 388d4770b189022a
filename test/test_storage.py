"""
Tests for the storage-service client L{msnp.soap.storage}, against small
scripted resources in memory (C{StubTreq}, deadlines on a L{Clock}): the
request shapes of the reference (Q.3), the reading of answers, and a typed
failure for every way a call can go wrong.
"""

from __future__ import annotations

import base64
from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from msnp.errors import ServiceError, UnsafeXML
from msnp.soap.storage import (
    STORAGE_NS,
    RoamingPicture,
    RoamingProfile,
    StorageFault,
    StorageService,
)
from msnp.xmlsafe import findPath, iterByName, parseXML, textOf

URL = "http://127.0.0.1/storageservice/SchematizedStore.asmx"
TICKET = "t=EwCoA+storage/TICKET==&p=P<&>"
CID = -5100000000000000001

PROFILE = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    '<soap:Header><AffinityCacheHeader xmlns="{ns}"><CacheKey>KEY-1</CacheKey></AffinityCacheHeader></soap:Header>'
    '<soap:Body><GetProfileResponse xmlns="{ns}"><GetProfileResult>'
    "<ResourceID>b93929055d81ffff!106</ResourceID><DateModified>2010-01-01T00:00:00Z</DateModified>"
    "<ExpressionProfile><ResourceID>b93929055d81ffff!118</ResourceID>"
    "<Photo><ResourceID>b93929055d81ffff!205</ResourceID><DocumentStreams>"
    "<DocumentStream><DocumentStreamType>Named</DocumentStreamType><PreAuthURL>/small</PreAuthURL></DocumentStream>"
    "<DocumentStream><MimeType>image/png</MimeType><DataSize>42</DataSize><PreAuthURL>/y/tile.png</PreAuthURL>"
    "<DocumentStreamType>UserTileStatic</DocumentStreamType><SHA1Hash>abc=</SHA1Hash></DocumentStream>"
    "</DocumentStreams></Photo>"
    "<PersonalStatus>At the beach &amp; happy</PersonalStatus><DisplayName></DisplayName>"
    "</ExpressionProfile></GetProfileResult></GetProfileResponse></soap:Body></soap:Envelope>"
).format(ns=STORAGE_NS)

FAULT = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
    "<faultcode>soap:Client</faultcode><faultstring>Profile does not exist</faultstring>"
    '<detail><errorcode xmlns="http://www.msn.com/webservices/storage/v1">ItemDoesNotExist</errorcode></detail>'
    "</soap:Fault></soap:Body></soap:Envelope>"
)


class Scripted(Resource):
    """
    Answers every request with the next scripted C{(status, body)} (or
    never, for L{None}) and records the requests.
    """

    isLeaf = True

    def __init__(self, *answers: Optional[tuple[int, bytes]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    def render(self, request: Request) -> Any:
        assert request.content is not None
        headers = {k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()}
        self.requests.append((request.uri, headers, request.content.read()))
        answer = self.answers.pop(0)
        if answer is None:
            return NOT_DONE_YET
        request.setResponseCode(answer[0])
        return answer[1]


class StorageClientTests(SynchronousTestCase):
    """
    L{StorageService} against L{Scripted}.
    """

    def service(self, *answers: Optional[tuple[int, bytes]]) -> tuple[StorageService, Scripted]:
        self.resource = Scripted(*answers)
        self.stub = StubTreq(self.resource)
        self.clock = Clock()
        return StorageService(self.stub, URL, lambda: TICKET, self.clock, timeout=10), self.resource

    def resolve(self, d: "Deferred[Any]") -> Any:
        self.stub.flush()
        return self.successResultOf(d)

    def failure(self, d: "Deferred[Any]", *kinds: type) -> Any:
        self.stub.flush()
        return self.failureResultOf(d, *kinds).value

    def test_getProfileRequest(self) -> None:
        """
        GetProfile names the owner by signed decimal CID, carries the whole
        ticket escaped in C{StorageUserHeader}, the scenario, and the
        C{SOAPAction} of the w10 namespace; no affinity header yet.
        """
        service, resource = self.service((200, PROFILE.encode()))
        self.resolve(service.getProfile(CID))
        _, headers, body = resource.requests[0]
        self.assertEqual(headers[b"soapaction"], f'"{STORAGE_NS}/GetProfile"'.encode())
        root = parseXML(body)
        self.assertEqual(textOf(findPath(root, "Header", "StorageUserHeader"), "TicketToken"), TICKET)
        self.assertEqual(textOf(findPath(root, "Header", "StorageApplicationHeader"), "Scenario"), "Initial")
        self.assertIsNone(findPath(root, "Header", "AffinityCacheHeader"))
        self.assertEqual(
            textOf(findPath(root, "Body", "GetProfile", "profileHandle", "Alias", "Name")), str(CID)
        )

    def test_profileRead(self) -> None:
        """
        The answer becomes a L{RoamingProfile}: ids, an absent element is
        L{None} but an empty one C{""}, the picture is the C{UserTileStatic}
        stream (not the first one) with its URL made absolute.
        """
        service, _ = self.service((200, PROFILE.encode()))
        profile = self.resolve(service.getProfile(CID))
        self.assertEqual(
            profile,
            RoamingProfile(
                resourceId="b93929055d81ffff!106",
                expressionProfileId="b93929055d81ffff!118",
                displayName="",
                personalMessage="At the beach & happy",
                picture=RoamingPicture(
                    "b93929055d81ffff!205", "http://127.0.0.1/y/tile.png", "image/png", 42, "abc="
                ),
                dateModified="2010-01-01T00:00:00Z",
            ),
        )

    def test_cacheKeyKept(self) -> None:
        """
        The affinity key of an answer goes into the next request.
        """
        service, resource = self.service((200, PROFILE.encode()), (200, PROFILE.encode()))
        self.resolve(service.getProfile(CID))
        self.resolve(service.getProfile(CID))
        root = parseXML(resource.requests[1][2])
        self.assertEqual(textOf(findPath(root, "Header", "AffinityCacheHeader"), "CacheKey"), "KEY-1")

    def test_updateProfileBodies(self) -> None:
        """
        Set values are sent escaped, C{""} goes into the delete block,
        L{None} is left out.
        """
        empty = b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><UpdateProfileResponse/></soap:Body></soap:Envelope>'
        service, resource = self.service((200, empty), (200, empty))
        self.assertIsNone(self.resolve(service.updateProfile("x!106", "A <b>", "")))
        root = parseXML(resource.requests[0][2])
        update = findPath(root, "Body", "UpdateProfile")
        self.assertEqual(textOf(update, "profile", "ExpressionProfile", "DisplayName"), "A <b>")
        self.assertIsNone(findPath(update, "profile", "ExpressionProfile", "PersonalStatus"))
        deleted = findPath(update, "profileAttributesToDelete", "ExpressionProfileAttributes")
        self.assertEqual(textOf(deleted, "PersonalStatus"), "true")
        self.assertEqual(
            textOf(findPath(root, "Header", "StorageApplicationHeader"), "Scenario"), "RoamingIdentityChanged"
        )
        self.resolve(service.updateProfile("x!106", personalMessage="hi"))
        update = findPath(parseXML(resource.requests[1][2]), "Body", "UpdateProfile")
        self.assertIsNone(findPath(update, "profile", "ExpressionProfile", "DisplayName"))
        self.assertIsNone(findPath(update, "profileAttributesToDelete"))

    def test_createDocumentBody(self) -> None:
        """
        The picture goes out base64 in a C{UserTileStatic} stream; the
        answer's id is returned.
        """
        answer = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            "<CreateDocumentResponse><CreateDocumentResult>c!205</CreateDocumentResult>"
            "</CreateDocumentResponse></soap:Body></soap:Envelope>"
        ).encode()
        service, resource = self.service((200, answer))
        self.assertEqual(self.resolve(service.createDocument(CID, b"\x89PNG data")), "c!205")
        stream = next(iterByName(parseXML(resource.requests[0][2]), "DocumentStream"))
        self.assertEqual(base64.b64decode(textOf(stream, "Data")), b"\x89PNG data")
        self.assertEqual(textOf(stream, "DocumentStreamType"), "UserTileStatic")

    def test_faultWith500(self) -> None:
        """
        A fault with HTTP 500 is a L{StorageFault} with its error code,
        which says the item is missing.
        """
        service, _ = self.service((500, FAULT.encode()))
        fault = self.failure(service.getProfile(CID), StorageFault)
        self.assertEqual((fault.status, fault.errorCode, fault.faultCode), (500, "ItemDoesNotExist", "soap:Client"))
        self.assertTrue(fault.itemMissing)

    def test_faultWith200(self) -> None:
        """
        A fault is a fault even with HTTP 200.
        """
        service, _ = self.service((200, FAULT.encode()))
        self.assertEqual(self.failure(service.getProfile(CID), StorageFault).status, 200)

    def test_refusedTicket(self) -> None:
        """
        A bare 403 (the ticket refused) is a L{ServiceError} with the
        status, and the ticket is nowhere in the message.
        """
        service, _ = self.service((403, b""))
        error = self.failure(service.getProfile(CID), ServiceError)
        self.assertNotIsInstance(error, StorageFault)
        self.assertEqual(error.status, 403)
        self.assertNotIn("TICKET", str(error))

    def test_errorWithoutFault(self) -> None:
        """
        HTTP 500 with a non-fault document, or HTTP 200 with garbage or a
        DTD, are typed failures.
        """
        service, _ = self.service((500, b"<html/>"), (200, b"not xml"), (200, b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'))
        self.assertEqual(self.failure(service.getProfile(CID), ServiceError).status, 500)
        self.failure(service.getProfile(CID), UnsafeXML)
        self.failure(service.getProfile(CID), UnsafeXML)

    def test_unexpectedAnswer(self) -> None:
        """
        A SOAP answer without a profile id is a L{ServiceError}.
        """
        service, _ = self.service(
            (200, b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Other/></soap:Body></soap:Envelope>')
        )
        self.failure(service.getProfile(CID), ServiceError)

    def test_timeout(self) -> None:
        """
        A service that never answers fails the call at the deadline, not
        one tick earlier.
        """
        service, _ = self.service(None)
        d = service.getProfile(CID)
        self.stub.flush()
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertIn("within 10s", str(self.failureResultOf(d, ServiceError).value))

    def test_deleteRelationshipMissingIsSuccess(self) -> None:
        """
        Unlinking a picture that is already gone succeeds; another fault
        does not.
        """
        other = FAULT.replace("ItemDoesNotExist", "Busy").replace("does not exist", "busy")
        service, _ = self.service((500, FAULT.encode()), (500, other.encode()))
        self.assertIsNone(self.resolve(service.deleteRelationship("x!118", "x!205")))
        self.assertEqual(self.failure(service.deleteRelationship("x!118", "x!205"), StorageFault).errorCode, "Busy")

    def test_fetchPicture(self) -> None:
        """
        The picture is fetched from its URL with C{t=} and the encoded
        ticket after its leading C{t=}.
        """
        service, resource = self.service((200, b"PNGBYTES"))
        picture = RoamingPicture("x!205", "http://127.0.0.1/tile?v=2")
        self.assertEqual(self.resolve(service.fetchPicture(picture)), b"PNGBYTES")
        self.assertEqual(
            resource.requests[0][0], b"/tile?v=2&t=EwCoA%2Bstorage%2FTICKET%3D%3D%26p%3DP%3C%26%3E"
        )

    def test_fetchPictureFailuresHideTicket(self) -> None:
        """
        A 404 and a timeout are L{ServiceError}s that do not show the
        ticket, although it was in the URL.
        """
        service, _ = self.service((404, b"no"), None)
        picture = RoamingPicture("x!205", "http://127.0.0.1/tile")
        self.assertEqual(self.failure(service.fetchPicture(picture), ServiceError).status, 404)
        d = service.fetchPicture(picture)
        self.stub.flush()
        self.clock.advance(10)
        error = self.failureResultOf(d, ServiceError).value
        self.assertNotIn("TICKET", str(error))
        self.assertIn("http://127.0.0.1/tile", str(error))

    def test_reprHidesTicket(self) -> None:
        """
        The service's repr names the URL only.
        """
        service, _ = self.service()
        self.assertEqual(repr(service), f"<StorageService {URL}>")
