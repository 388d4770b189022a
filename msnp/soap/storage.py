# -*- test-case-name: test.test_storage -*-
"""
The storage service (C{SchematizedStore.asmx}): the roaming profile that
carries the owner's display name, personal message and display picture to
every place (supplement Q.3).

Unlike the ABCH, every call carries the C{storage.msn.com} ticket in a
C{StorageUserHeader}, and an C{AffinityCacheHeader} once the service handed
out a cache key. Faults come with HTTP 500 or 200 and carry
C{detail/errorcode} (C{ItemDoesNotExist}, ...); they become L{StorageFault}.
The ticket is read from a provider at each call and never logged.

Reading the roamed profile is L{StorageService.getProfile}; writing name and
message is L{StorageService.updateProfile}; the picture is a document
(L{StorageService.createDocument} / L{StorageService.updateDocument}) linked
to the expression profile (L{StorageService.createRelationship}), whose
bytes are fetched with L{StorageService.fetchPicture}.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, urljoin
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from msnp.endpoints import HISTORICAL_STORAGE as HISTORICAL_STORAGE  # the default of Endpoints.storage
from msnp.errors import ServiceError
from msnp.http import DEFAULT_HTTP_TIMEOUT, getBody
from msnp.namespaces import (
    ITEM_DOES_NOT_EXIST as ITEM_DOES_NOT_EXIST,
    STORAGE_FAULT_NS as STORAGE_FAULT_NS,
    STORAGE_NS as STORAGE_NS,
    TICKET_EXPIRED as TICKET_EXPIRED,
    USER_TILE_STATIC as USER_TILE_STATIC,
)
from msnp.namespaces import SOAP_NS, XSD_NS, XSI_NS
from msnp.soap.envelope import optionalInt
from msnp.soap.post import DetailedFault, postSOAP, readDetailedFault, soapBody
from msnp.xmlsafe import child, children, escapeText, findPath, localName, textOf

log = Logger()

#: MSNPSharp's application id (unchecked by every server).
APPLICATION_ID = "Messenger Client 9.0"

#: Scenarios of the C{StorageApplicationHeader} (Q.3.1).
SCENARIO_INITIAL = "Initial"
SCENARIO_IDENTITY_CHANGED = "RoamingIdentityChanged"
SCENARIO_SEED = "RoamingSeed"


#: Largest picture accepted from the service (a WLM tile is a few KB).
MAX_PICTURE_BYTES = 1024 * 1024
#: Largest SOAP answer accepted (a profile is a few KB).
MAX_RESPONSE_BYTES = 256 * 1024


class StorageFault(DetailedFault):
    """
    The storage service answered with a SOAP fault.

    @ivar errorCode: C{detail/errorcode} (C{ItemDoesNotExist}, ...) or L{None}.
    """

    @property
    def itemMissing(self) -> bool:
        """
        Whether the fault says the profile or document does not exist (the
        cue to create it; MSNPSharp also accepts "does not exist" in the text).
        """
        if self.errorCode == ITEM_DOES_NOT_EXIST:
            return True
        return "does not exist" in (self.faultString or "").lower()


@dataclass(frozen=True)
class RoamingPicture:
    """
    The display picture of a roaming profile: where its bytes are, not the
    bytes (fetch them with L{StorageService.fetchPicture}).

    @ivar resourceId: the photo document id (for C{UpdateDocument}).
    @ivar url: the C{PreAuthURL} of the C{UserTileStatic} stream, absolute.
    @ivar sha1: the stream's C{SHA1Hash} text as the service wrote it (to
        tell whether the picture changed without downloading it).
    """

    resourceId: str
    url: str
    mimeType: str = ""
    size: Optional[int] = None
    sha1: str = ""


@dataclass(frozen=True)
class RoamingProfile:
    """
    What the storage service roams for the owner.

    L{None} means "not set" (the element was absent), which a place must
    not confuse with an empty value the user chose.

    @ivar resourceId: the profile id (for C{UpdateProfile}).
    @ivar expressionProfileId: the expression profile id (for
        C{CreateRelationships} of a new picture), or L{None} when the
        account has no expression profile at all.
    """

    resourceId: str
    expressionProfileId: Optional[str] = None
    displayName: Optional[str] = None
    personalMessage: Optional[str] = None
    picture: Optional[RoamingPicture] = None
    dateModified: str = ""


@dataclass(frozen=True)
class StorageDocument:
    """
    One document of C{FindDocuments}.
    """

    resourceId: str
    name: str = ""


def _handle(cid: int, relationship: str) -> str:
    """
    An C{Alias} handle naming the owner by CID (signed decimal, Q.3.2).
    """
    return (
        f"<Alias><Name>{int(cid)}</Name><NameSpace>MyCidStuff</NameSpace></Alias>"
        f"<RelationshipName>{escapeText(relationship)}</RelationshipName>"
    )


def _photoStream(data: bytes, mimeType: str) -> str:
    return (
        '<DocumentStreams><DocumentStream xsi:type="PhotoStream">'
        f"<DocumentStreamType>{USER_TILE_STATIC}</DocumentStreamType>"
        f"<MimeType>{escapeText(mimeType)}</MimeType>"
        f"<Data>{base64.b64encode(data).decode('ascii')}</Data>"
        "<DataSize>0</DataSize></DocumentStream></DocumentStreams>"
    )


def buildEnvelope(body: str, ticket: str, scenario: str, cacheKey: Optional[str] = None) -> bytes:
    """
    Wrap a storage method element (XML text) in the SOAP envelope with the
    three storage headers (Q.3.1); the affinity header only with a key.
    """
    affinity = (
        f'<AffinityCacheHeader xmlns="{STORAGE_NS}"><CacheKey>{escapeText(cacheKey)}</CacheKey>'
        "</AffinityCacheHeader>"
        if cacheKey
        else ""
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
        f"<soap:Header>{affinity}"
        f'<StorageApplicationHeader xmlns="{STORAGE_NS}"><ApplicationID>{APPLICATION_ID}</ApplicationID>'
        f"<Scenario>{escapeText(scenario)}</Scenario></StorageApplicationHeader>"
        f'<StorageUserHeader xmlns="{STORAGE_NS}"><Puid>0</Puid>'
        f"<TicketToken>{escapeText(ticket)}</TicketToken></StorageUserHeader>"
        f"</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode("utf-8")


def faultFromDocument(root: Element, status: Optional[int]) -> Optional[StorageFault]:
    """
    The L{StorageFault} a response document carries, or L{None}.
    """
    return readDetailedFault(root, status, StorageFault, "storage fault", useErrorString=False)


def _optionalText(element: Optional[Element], name: str) -> Optional[str]:
    found = child(element, name)
    if found is None:
        return None
    return found.text or ""


def parseProfile(response: Element, serviceURL: str) -> RoamingProfile:
    """
    Read a C{GetProfileResponse}. A relative C{PreAuthURL} is resolved
    against the storage service's own URL.

    @raise ServiceError: no C{GetProfileResult} or no profile id.
    """
    result = child(response, "GetProfileResult")
    resourceId = textOf(result, "ResourceID").strip()
    if result is None or not resourceId:
        raise ServiceError(f"GetProfile: unexpected response <{localName(response.tag)}>")
    expression = child(result, "ExpressionProfile")
    picture: Optional[RoamingPicture] = None
    photo = child(expression, "Photo")
    if photo is not None:
        holder = child(photo, "DocumentStreams")
        streams = children(holder, "DocumentStream") if holder is not None else []
        tile = next((s for s in streams if textOf(s, "DocumentStreamType").strip() == USER_TILE_STATIC), None)
        photoId = textOf(photo, "ResourceID").strip()
        url = textOf(tile, "PreAuthURL").strip() if tile is not None else ""
        if photoId and url:
            picture = RoamingPicture(
                resourceId=photoId,
                url=urljoin(serviceURL, url),
                mimeType=textOf(tile, "MimeType").strip(),
                size=optionalInt(textOf(tile, "DataSize")),
                sha1=textOf(tile, "SHA1Hash").strip(),
            )
    return RoamingProfile(
        resourceId=resourceId,
        expressionProfileId=(textOf(expression, "ResourceID").strip() or None) if expression is not None else None,
        displayName=_optionalText(expression, "DisplayName"),
        personalMessage=_optionalText(expression, "PersonalStatus"),
        picture=picture,
        dateModified=textOf(result, "DateModified").strip(),
    )


@dataclass
class StorageCache:
    """
    The newest C{AffinityCacheHeader/CacheKey}, sent with every later call.
    """

    cacheKey: Optional[str] = field(default=None)


class StorageService:
    """
    Client of C{SchematizedStore.asmx}.

    @ivar url: the service URL.
    """

    def __init__(
        self,
        httpClient: Any,
        url: str,
        ticketProvider: Callable[[], str],
        clock: IReactorTime,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        """
        @param httpClient: a L{treq.client.HTTPClient} or L{treq.testing.StubTreq}.
        @param ticketProvider: returns the current C{storage.msn.com} ticket.
        @param clock: the clock the request deadlines run on.
        @param timeout: seconds allowed for each call.
        """
        self.httpClient = httpClient
        self.url = url
        self.ticketProvider = ticketProvider
        self.clock = clock
        self.timeout = timeout
        self.cache = StorageCache()

    def __repr__(self) -> str:
        return f"<StorageService {self.url}>"

    # -- plumbing ----------------------------------------------------------------

    def call(self, action: str, body: str, scenario: str) -> "Deferred[Element]":
        """
        POST one method call.

        @return: a L{Deferred} firing with the C{...Response} element, or
            failing with L{StorageFault} (a SOAP fault, any status) or
            L{ServiceError} (transport error, timeout, HTTP error status
            without fault such as 403 for a refused ticket, or a body that
            is not a SOAP response).
        """
        return ensureDeferred(self._call(action, body, scenario))

    async def _call(self, action: str, body: str, scenario: str) -> Element:
        envelope = buildEnvelope(body, self.ticketProvider(), scenario, self.cache.cacheKey)
        log.debug("Storage {action} ({scenario}) to {url}", action=action, scenario=scenario, url=self.url)
        what = f"storage {action}"
        root, status = await postSOAP(
            self.httpClient, self.url, envelope, f"{STORAGE_NS}/{action}", self.clock, self.timeout,
            MAX_RESPONSE_BYTES, what, faultFromDocument, lambda status: f"{what}: HTTP {status} without a body",
        )
        key = textOf(findPath(root, "Header", "AffinityCacheHeader"), "CacheKey").strip()
        if key:
            self.cache.cacheKey = key
        return soapBody(root, what, status)

    # -- the profile -------------------------------------------------------------

    def getProfile(self, cid: int, scenario: str = SCENARIO_INITIAL) -> "Deferred[RoamingProfile]":
        """
        Read the owner's roaming profile (C{cid}: the owner's CID from the
        address book's Me contact).
        """
        attributes = "".join(
            f"<{name}>true</{name}>"
            for name in (
                "ResourceID", "DateModified", "DisplayName", "DisplayNameLastModified",
                "PersonalStatus", "PersonalStatusLastModified", "StaticUserTilePublicURL",
                "Photo", "Attachments", "Flag",
            )
        )
        body = (
            f'<GetProfile xmlns="{STORAGE_NS}"><profileHandle>{_handle(cid, "MyProfile")}</profileHandle>'
            "<profileAttributes><ResourceID>true</ResourceID><DateModified>true</DateModified>"
            f"<ExpressionProfileAttributes>{attributes}</ExpressionProfileAttributes>"
            "</profileAttributes></GetProfile>"
        )
        return self.call("GetProfile", body, scenario).addCallback(parseProfile, self.url)

    def updateProfile(
        self,
        profileId: str,
        displayName: Optional[str] = None,
        personalMessage: Optional[str] = None,
        scenario: str = SCENARIO_IDENTITY_CHANGED,
    ) -> "Deferred[None]":
        """
        Change the roamed name and/or message: L{None} leaves a field as it
        is, C{""} clears it (the C{profileAttributesToDelete} block, Q.3.3).
        """
        fields = ["<FreeText>Update</FreeText>"]
        deleted = []
        for element, value in (("DisplayName", displayName), ("PersonalStatus", personalMessage)):
            if value is None:
                continue
            if value:
                fields.append(f"<{element}>{escapeText(value)}</{element}>")
            else:
                deleted.append(f"<{element}>true</{element}>")
        fields.append("<Flags>0</Flags>")
        deleteBlock = (
            "<profileAttributesToDelete><ExpressionProfileAttributes>"
            f"{''.join(deleted)}</ExpressionProfileAttributes></profileAttributesToDelete>"
            if deleted
            else ""
        )
        body = (
            f'<UpdateProfile xmlns="{STORAGE_NS}"><profile><ResourceID>{escapeText(profileId)}</ResourceID>'
            f"<ExpressionProfile>{''.join(fields)}</ExpressionProfile></profile>{deleteBlock}</UpdateProfile>"
        )
        return self.call("UpdateProfile", body, scenario).addCallback(lambda _: None)

    # -- the picture document ------------------------------------------------------

    def findDocuments(self, cid: int, scenario: str = SCENARIO_INITIAL) -> "Deferred[list[StorageDocument]]":
        """
        The documents under C{/UserTiles} (the owner's display pictures).
        """
        body = (
            f'<FindDocuments xmlns="{STORAGE_NS}"><objectHandle>{_handle(cid, "/UserTiles")}</objectHandle>'
            "<documentAttributes><ResourceID>true</ResourceID><Name>true</Name></documentAttributes>"
            "<documentFilter><FilterAttributes>None</FilterAttributes></documentFilter>"
            "<documentSort><SortBy>DateModified</SortBy></documentSort>"
            "<findContext><FindMethod>Default</FindMethod><ChunkSize>25</ChunkSize></findContext></FindDocuments>"
        )

        def documents(response: Element) -> list[StorageDocument]:
            result = child(response, "FindDocumentsResult")
            found = []
            for document in children(result, "Document") if result is not None else []:
                resourceId = textOf(document, "ResourceID").strip()
                if resourceId:
                    found.append(StorageDocument(resourceId, textOf(document, "Name").strip()))
            return found

        return self.call("FindDocuments", body, scenario).addCallback(documents)

    def createDocument(
        self,
        cid: int,
        data: bytes,
        mimeType: str = "image/png",
        name: str = "tile",
        scenario: str = SCENARIO_IDENTITY_CHANGED,
    ) -> "Deferred[str]":
        """
        Store a new display picture under C{/UserTiles}; fires with its id.
        """
        body = (
            f'<CreateDocument xmlns="{STORAGE_NS}"><parentHandle>{_handle(cid, "/UserTiles")}</parentHandle>'
            f'<document xsi:type="Photo"><Name>{escapeText(name)}</Name>{_photoStream(data, mimeType)}</document>'
            "<relationshipName>Messenger User Tile</relationshipName></CreateDocument>"
        )

        def created(response: Element) -> str:
            resourceId = textOf(response, "CreateDocumentResult").strip()
            if not resourceId:
                raise ServiceError("CreateDocument: the service returned no document id")
            return resourceId

        return self.call("CreateDocument", body, scenario).addCallback(created)

    def updateDocument(
        self,
        photoId: str,
        data: bytes,
        mimeType: str = "image/png",
        name: str = "tile",
        scenario: str = SCENARIO_IDENTITY_CHANGED,
    ) -> "Deferred[None]":
        """
        Replace the bytes of the display picture C{photoId}.
        """
        body = (
            f'<UpdateDocument xmlns="{STORAGE_NS}"><document xsi:type="Photo">'
            f"<ResourceID>{escapeText(photoId)}</ResourceID><Name>{escapeText(name)}</Name>"
            f"{_photoStream(data, mimeType)}</document></UpdateDocument>"
        )
        return self.call("UpdateDocument", body, scenario).addCallback(lambda _: None)

    def createRelationship(
        self, expressionProfileId: str, photoId: str, scenario: str = SCENARIO_IDENTITY_CHANGED
    ) -> "Deferred[None]":
        """
        Make C{photoId} the picture of the expression profile.
        """
        body = (
            f'<CreateRelationships xmlns="{STORAGE_NS}"><relationships><Relationship>'
            f"<SourceID>{escapeText(expressionProfileId)}</SourceID><SourceType>SubProfile</SourceType>"
            f"<TargetID>{escapeText(photoId)}</TargetID><TargetType>Photo</TargetType>"
            "<RelationshipName>ProfilePhoto</RelationshipName></Relationship></relationships></CreateRelationships>"
        )
        return self.call("CreateRelationships", body, scenario).addCallback(lambda _: None)

    def deleteRelationship(
        self, expressionProfileId: str, photoId: str, scenario: str = SCENARIO_IDENTITY_CHANGED
    ) -> "Deferred[None]":
        """
        Unlink C{photoId} from the expression profile; a document already
        gone (C{ItemDoesNotExist}) counts as success, as papyon does.
        """
        body = (
            f'<DeleteRelationships xmlns="{STORAGE_NS}"><sourceHandle>'
            f"<ResourceID>{escapeText(expressionProfileId)}</ResourceID></sourceHandle>"
            f"<targetHandles><ObjectHandle><ResourceID>{escapeText(photoId)}</ResourceID></ObjectHandle>"
            "</targetHandles></DeleteRelationships>"
        )

        def missingIsFine(failure: Any) -> None:
            failure.trap(StorageFault)
            if not failure.value.itemMissing:
                return failure  # type: ignore[no-any-return]
            return None

        return self.call("DeleteRelationships", body, scenario).addCallbacks(lambda _: None, missingIsFine)

    def fetchPicture(self, picture: RoamingPicture) -> "Deferred[bytes]":
        """
        Download the picture's bytes: GET its C{PreAuthURL} with C{?t=} and
        the URL-encoded ticket after its leading C{t=} (Q.3.5, MSNPSharp's
        form), under the same deadline, capped at L{MAX_PICTURE_BYTES}.

        @return: a L{Deferred} failing with L{ServiceError} for an HTTP
            error status, a timeout or an oversized picture.
        """
        ticket = self.ticketProvider()
        if ticket.startswith("t="):
            ticket = ticket[2:]
        separator = "&" if "?" in picture.url else "?"
        url = f"{picture.url}{separator}t={quote(ticket, safe='')}"

        def checked(result: Any) -> bytes:
            if not (200 <= result.status < 300):
                raise ServiceError(f"display picture download: HTTP {result.status}", status=result.status)
            return bytes(result.body)

        def hideTicket(failure: Any) -> Any:
            # The URL carries the ticket; errors name the picture URL only.
            error = failure.value
            if isinstance(error, ServiceError) and ticket and quote(ticket, safe="") in str(error):
                raise ServiceError(
                    f"display picture download from {picture.url} failed", status=error.status
                )
            return failure

        d = getBody(self.httpClient, url, self.clock, self.timeout, MAX_PICTURE_BYTES)
        return d.addErrback(hideTicket).addCallback(checked)
