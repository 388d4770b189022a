# -*- test-case-name: test.test_server_storage -*-
"""
The local network's storage service: C{/storageservice/SchematizedStore.asmx}
(roaming profile and display-picture document, supplement Q.3) and
C{/storageservice/usertile/<cid>/static} (the picture bytes behind the
C{PreAuthURL}).

Only the owner gets in: every call must carry a C{storage.msn.com} ticket
this network issued (L{IStorageTickets}), and every handle or id in the
call must be the ticket owner's own. An unknown ticket (or none) gets a
bare HTTP 403 like the ABCH here; an expired one the fault
C{TicketExpired} with HTTP 500; a handle naming someone else's profile is
answered as if it did not exist (C{ItemDoesNotExist}), so the service does
not tell which CIDs exist.

The roamed values live behind L{msnp.server.roaming.IRoamingProfileStore}
(C{getRoamingProfile}/C{setRoamingProfile}), the tickets behind
L{msnp.server.roaming.IStorageTickets}. Every text from a request is escaped before it goes into
a response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from msnp.server.accountmodel import Account
from msnp.server.tickets import TicketCheck, TicketState
from msnp.server.roaming import IRoamingProfileStore, IStorageTickets, RoamedPicture, RoamedProfile
from msnp.namespaces import SOAP_NS, XSD_NS, XSI_NS
from msnp.namespaces import (
    ITEM_DOES_NOT_EXIST,
    STORAGE_FAULT_NS,
    STORAGE_NS,
    TICKET_EXPIRED,
    USER_TILE_STATIC,
)
from msnp.xmlsafe import XMLError, child, escapeText, findPath, iterByName, localName, parseXML, textOf

log = Logger()

#: The namespace MSNPSharp 3.2.1 uses; answers go out in the one asked in.
STORAGE_NS_2008 = "http://www.msn.com/webservices/storage/2008"
#: Largest picture stored (a WLM tile is a few KB).
MAX_PICTURE_BYTES = 512 * 1024
#: Largest request read: a maximal picture in base64 plus the envelope.
MAX_REQUEST_BYTES = MAX_PICTURE_BYTES * 4 // 3 + 64 * 1024
#: Longest display name or personal message kept (characters).
MAX_TEXT_LENGTH = 1024

_PROFILE_SUFFIX = "!106"
_EXPRESSION_SUFFIX = "!118"
_PHOTO_SUFFIX = "!205"

_SNIFFED = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


#: Called after a call changed C{account}'s roamed profile.
ProfileChanged = Callable[[Account, RoamedProfile], None]


# -- helpers ------------------------------------------------------------------------


class _Fault(Exception):
    def __init__(self, errorCode: str, message: str, httpStatus: int = 500) -> None:
        super().__init__(message)
        self.errorCode = errorCode
        self.message = message
        self.httpStatus = httpStatus


def _missing() -> _Fault:
    return _Fault(ITEM_DOES_NOT_EXIST, "The item does not exist.")


def _isoTime(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(seconds))) + "Z"


def cidKey(account: Account) -> str:
    """
    The owner part of the account's resource ids: the CID as 16 hex digits.
    """
    return f"{account.cid & 0xFFFFFFFFFFFFFFFF:016x}"


def _sniff(data: bytes, declared: str) -> str:
    for magic, mimeType in _SNIFFED:
        if data.startswith(magic):
            return mimeType
    declared = declared.strip().lower()
    if declared and "/" not in declared:
        declared = "image/" + declared
    return declared if declared.startswith("image/") else "application/octet-stream"


def _text(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT_LENGTH:
        raise _Fault("InvalidArgument", "The text is too long.")
    return value


@dataclass(frozen=True)
class _Call:
    """
    One storage call being served: who, what, and the namespace to answer in.
    """

    account: Account
    method: Element
    request: Request
    ns: str


class _SOAPEndpoint(Resource):
    isLeaf = True

    def __init__(self, storage: "StorageResource") -> None:
        super().__init__()
        self.storage = storage

    def render_POST(self, request: Request) -> bytes:
        return self.storage.handle(request)


class _UserTiles(Resource):
    """
    C{usertile/<cid>/static?t=ticket}: the picture bytes, for the owner only.
    """

    isLeaf = True

    def __init__(self, storage: "StorageResource") -> None:
        super().__init__()
        self.storage = storage

    def render_GET(self, request: Request) -> bytes:
        return self.storage.servePicture(request)


class StorageResource(Resource):
    """
    The C{/storageservice} resource: C{SchematizedStore.asmx} (POST, names
    matched case-insensitively) and C{usertile} (GET).
    """

    def __init__(
        self,
        tickets: IStorageTickets,
        profiles: IRoamingProfileStore,
        clock: Optional[IReactorTime] = None,
        onChange: Optional[ProfileChanged] = None,
        mountPath: str = "/storageservice",
    ) -> None:
        """
        @param tickets: checks the storage tickets.
        @param profiles: where roamed profiles are read and written.
        @param clock: source of timestamps; the system time when L{None}.
        @param onChange: told after each change (errors logged, ignored),
            so the NS can tell the other places.
        @param mountPath: where this resource is mounted (for C{PreAuthURL}s).
        """
        super().__init__()
        self.tickets = tickets
        self.profiles = profiles
        self.clock = clock
        self.onChange = onChange
        self.mountPath = "/" + mountPath.strip("/")
        self._soap = _SOAPEndpoint(self)
        self._tiles = _UserTiles(self)
        self._cacheKeys: dict[str, str] = {}
        self._actions: dict[str, Callable[[_Call], str]] = {
            "GetProfile": self.getProfile,
            "UpdateProfile": self.updateProfile,
            "FindDocuments": self.findDocuments,
            "CreateDocument": self.createDocument,
            "UpdateDocument": self.updateDocument,
            "CreateRelationships": self.createRelationships,
            "DeleteRelationships": self.deleteRelationships,
        }

    def getChild(self, path: bytes, request: Request) -> IResource:
        name = path.lower()
        if name == b"schematizedstore.asmx":
            return self._soap
        if name == b"usertile":
            return self._tiles
        return notFound()

    def now(self) -> float:
        return self.clock.seconds() if self.clock is not None else time.time()

    # -- plumbing -----------------------------------------------------------------

    def handle(self, request: Request) -> bytes:
        """
        Serve one POST: read, check the ticket, dispatch on the body
        element (as Escargot does), answer in the namespace asked in.
        """
        assert request.content is not None
        data = request.content.read(MAX_REQUEST_BYTES + 1)
        if len(data) > MAX_REQUEST_BYTES:
            request.setResponseCode(413)
            return b""
        action = (request.getHeader("SOAPAction") or "").strip().strip('"')
        namespace = STORAGE_NS if action.startswith(STORAGE_NS + "/") or not action else STORAGE_NS_2008
        try:
            root = parseXML(data, MAX_REQUEST_BYTES)
        except XMLError as e:
            log.info("Storage: malformed request ({error})", error=str(e))
            return self._fault(request, namespace, _Fault("InvalidArgument", "The request is not well-formed XML.", 400))
        ticket = textOf(findPath(root, "Header", "StorageUserHeader"), "TicketToken").strip()
        check = self.tickets.checkStorageTicket(ticket) if ticket else TicketCheck(TicketState.UNKNOWN)
        if check.state is TicketState.EXPIRED:
            log.info("Storage: expired ticket refused")
            return self._fault(request, namespace, _Fault(TICKET_EXPIRED, "The ticket has expired."))
        account = check.account
        if account is None:
            log.info("Storage: request without a valid ticket refused")
            request.setResponseCode(403)
            return b""
        body = child(root, "Body")
        method = body[0] if body is not None and len(body) else None
        name = localName(method.tag) if method is not None else ""
        handler = self._actions.get(name)
        if handler is None or method is None:
            log.info("Storage: unknown method {name!r} from {account}", name=name, account=account.email)
            return self._fault(request, namespace, _Fault("InvalidArgument", f"Unknown method {name!r}.", 500))
        try:
            responseBody = handler(_Call(account, method, request, namespace))
        except _Fault as fault:
            log.info("Storage {name} for {account} refused: {code}", name=name, account=account.email, code=fault.errorCode)
            return self._fault(request, namespace, fault)
        log.info("Storage {name} for {account}", name=name, account=account.email)
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        key = self._cacheKeys.setdefault(account.email, secrets.token_urlsafe(24))
        header = (
            f'<AffinityCacheHeader xmlns="{namespace}"><CacheKey>{escapeText(key)}</CacheKey>'
            "</AffinityCacheHeader>"
        )
        return self._envelope(header, responseBody)

    def _envelope(self, header: str, body: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
            f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
        ).encode("utf-8")

    def _fault(self, request: Request, namespace: str, fault: _Fault) -> bytes:
        request.setResponseCode(fault.httpStatus)
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        body = (
            "<soap:Fault><faultcode>soap:Client</faultcode>"
            f"<faultstring>{escapeText(fault.message)}</faultstring>"
            f'<detail><errorcode xmlns="{STORAGE_FAULT_NS}">{escapeText(fault.errorCode)}</errorcode>'
            f'<errorstring xmlns="{STORAGE_FAULT_NS}">{escapeText(fault.message)}</errorstring></detail>'
            "</soap:Fault>"
        )
        return self._envelope("", body)

    def _profile(self, account: Account) -> RoamedProfile:
        return self.profiles.getRoamingProfile(account.email) or RoamedProfile()

    def _save(self, account: Account, profile: RoamedProfile) -> None:
        self.profiles.setRoamingProfile(account.email, profile)
        if self.onChange is not None:
            try:
                self.onChange(account, profile)
            except Exception:
                log.failure("Storage onChange callback failed for {account}", account=account.email)

    def _requireOwnHandle(self, account: Account, handle: Optional[Element], suffix: str) -> None:
        """
        A handle names the owner either by C{Alias/Name} (the signed decimal
        CID) or by C{ResourceID}; anything else is treated as missing.
        """
        if handle is None:
            raise _Fault("InvalidArgument", "The handle is missing.")
        alias = textOf(handle, "Alias", "Name").strip()
        resourceId = textOf(handle, "ResourceID").strip()
        if alias:
            if alias != str(account.cid):
                raise _missing()
        elif resourceId.lower() != cidKey(account) + suffix:
            raise _missing()

    def _pictureURL(self, request: Request, account: Account, picture: RoamedPicture) -> str:
        host = (request.getHeader("host") or "127.0.0.1").strip()
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}{self.mountPath}/usertile/{cidKey(account)}/static?v={picture.version}"

    # -- the profile ----------------------------------------------------------------

    def getProfile(self, call: _Call) -> str:
        """
        C{GetProfile}: the account always has a profile (as on Escargot);
        unset fields and a missing picture are left out.
        """
        account, method, request = call.account, call.method, call.request
        self._requireOwnHandle(account, child(method, "profileHandle"), _PROFILE_SUFFIX)
        profile = self._profile(account)
        key = cidKey(account)
        stamp = _isoTime(profile.modified or self.now())
        photo = ""
        if profile.picture is not None:
            picture = profile.picture
            sha1 = base64.b64encode(hashlib.sha1(picture.data).digest()).decode("ascii")
            photo = (
                f"<Photo><ResourceID>{key}{_PHOTO_SUFFIX}</ResourceID><Name>{escapeText(picture.name)}</Name>"
                f"<ItemType>Photo</ItemType><DateModified>{stamp}</DateModified><DocumentStreams>"
                f"<DocumentStream><DocumentStreamName>UserTileStatic</DocumentStreamName>"
                f"<MimeType>{escapeText(picture.mimeType)}</MimeType><DataSize>{len(picture.data)}</DataSize>"
                f"<PreAuthURL>{escapeText(self._pictureURL(request, account, picture))}</PreAuthURL>"
                f"<DocumentStreamType>{USER_TILE_STATIC}</DocumentStreamType><WriteMode>Overwrite</WriteMode>"
                f"<StreamVersion>{picture.version}</StreamVersion><SHA1Hash>{sha1}</SHA1Hash>"
                "</DocumentStream></DocumentStreams></Photo>"
            )
        status = ""
        if profile.personalMessage is not None:
            status = (
                f"<PersonalStatus>{escapeText(profile.personalMessage)}</PersonalStatus>"
                f"<PersonalStatusLastModified>{_isoTime(profile.personalMessageModified)}</PersonalStatusLastModified>"
            )
        name = ""
        if profile.displayName is not None:
            name = (
                f"<DisplayName>{escapeText(profile.displayName)}</DisplayName>"
                f"<DisplayNameLastModified>{_isoTime(profile.displayNameModified)}</DisplayNameLastModified>"
            )
        return (
            f'<GetProfileResponse xmlns="{call.ns}"><GetProfileResult>'
            f"<ResourceID>{key}{_PROFILE_SUFFIX}</ResourceID><DateModified>{stamp}</DateModified>"
            f"<ExpressionProfile><ResourceID>{key}{_EXPRESSION_SUFFIX}</ResourceID>"
            f"<DateModified>{stamp}</DateModified><Version>205</Version><Flags>0</Flags>"
            f"{photo}<Attachments />{status}{name}</ExpressionProfile>"
            "</GetProfileResult></GetProfileResponse>"
        )

    def updateProfile(self, call: _Call) -> str:
        """
        C{UpdateProfile}: non-empty values are saved, what
        C{profileAttributesToDelete} names is cleared (Q.3.3); an empty
        element is ignored, as MSNPSharp's omission means "unchanged".
        """
        account, method = call.account, call.method
        profileElement = child(method, "profile")
        if textOf(profileElement, "ResourceID").strip().lower() != cidKey(account) + _PROFILE_SUFFIX:
            raise _missing()
        expression = child(profileElement, "ExpressionProfile")
        now = self.now()
        profile = self._profile(account)
        changes: dict[str, object] = {}
        name = child(expression, "DisplayName")
        if name is not None and (name.text or "").strip():
            changes.update(displayName=_text(name.text or ""), displayNameModified=now)
        message = child(expression, "PersonalStatus")
        if message is not None and (message.text or "").strip():
            changes.update(personalMessage=_text(message.text or ""), personalMessageModified=now)
        deleted = findPath(method, "profileAttributesToDelete", "ExpressionProfileAttributes")
        if textOf(deleted, "DisplayName").strip().lower() == "true":
            changes.update(displayName=None, displayNameModified=now)
        if textOf(deleted, "PersonalStatus").strip().lower() == "true":
            changes.update(personalMessage=None, personalMessageModified=now)
        if changes:
            self._save(account, replace(profile, modified=now, **changes))  # type: ignore[arg-type]
        return f'<UpdateProfileResponse xmlns="{call.ns}" />'

    # -- the picture ------------------------------------------------------------------

    def findDocuments(self, call: _Call) -> str:
        """
        C{FindDocuments} under C{/UserTiles}: the one picture, if any.
        """
        account, method = call.account, call.method
        self._requireOwnHandle(account, child(method, "objectHandle"), _PROFILE_SUFFIX)
        picture = self._profile(account).picture
        documents = ""
        if picture is not None:
            documents = (
                f"<Document><ResourceID>{cidKey(account)}{_PHOTO_SUFFIX}</ResourceID>"
                f"<Name>{escapeText(picture.name)}</Name></Document>"
            )
        return f'<FindDocumentsResponse xmlns="{call.ns}"><FindDocumentsResult>{documents}</FindDocumentsResult></FindDocumentsResponse>'

    def _pictureOf(self, document: Optional[Element], version: int) -> RoamedPicture:
        stream = next(
            (
                s
                for s in iterByName(document if document is not None else Element("none"), "DocumentStream")
                if textOf(s, "DocumentStreamType").strip() in ("", USER_TILE_STATIC)
            ),
            None,
        )
        if stream is None:
            raise _Fault("InvalidArgument", "The document has no UserTileStatic stream.")
        encoded = "".join(textOf(stream, "Data").split())
        if len(encoded) > MAX_PICTURE_BYTES * 4 // 3 + 4:
            raise _Fault("InvalidArgument", "The picture is too large.")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _Fault("InvalidArgument", "The picture data is not base64.") from None
        if not data or len(data) > MAX_PICTURE_BYTES:
            raise _Fault("InvalidArgument", "The picture is empty or too large.")
        name = textOf(document, "Name").strip()[:MAX_TEXT_LENGTH] or "tile"
        return RoamedPicture(data, _sniff(data, textOf(stream, "MimeType")), name, version)

    def _setPicture(self, account: Account, document: Optional[Element]) -> None:
        profile = self._profile(account)
        version = profile.picture.version + 1 if profile.picture is not None else 1
        picture = self._pictureOf(document, version)
        self._save(account, replace(profile, picture=picture, modified=self.now()))

    def createDocument(self, call: _Call) -> str:
        """
        C{CreateDocument}: the new picture replaces the account's one
        picture (Escargot keeps one too); its id is always C{<cid>!205}.
        """
        account, method = call.account, call.method
        self._requireOwnHandle(account, child(method, "parentHandle"), _PROFILE_SUFFIX)
        self._setPicture(account, child(method, "document"))
        return (
            f'<CreateDocumentResponse xmlns="{call.ns}">'
            f"<CreateDocumentResult>{cidKey(account)}{_PHOTO_SUFFIX}</CreateDocumentResult></CreateDocumentResponse>"
        )

    def updateDocument(self, call: _Call) -> str:
        """
        C{UpdateDocument} of the existing picture (a missing one is
        C{ItemDoesNotExist}: MSNPSharp then creates it).
        """
        account, method = call.account, call.method
        document = child(method, "document")
        if textOf(document, "ResourceID").strip().lower() != cidKey(account) + _PHOTO_SUFFIX:
            raise _missing()
        if self._profile(account).picture is None:
            raise _missing()
        self._setPicture(account, document)
        return f'<UpdateDocumentResponse xmlns="{call.ns}" />'

    def createRelationships(self, call: _Call) -> str:
        """
        C{CreateRelationships} of the picture to the expression profile: the
        one picture is always linked, so only the ids are checked.
        """
        account, method = call.account, call.method
        key = cidKey(account)
        for relationship in iterByName(method, "Relationship"):
            if textOf(relationship, "SourceID").strip().lower() != key + _EXPRESSION_SUFFIX:
                raise _missing()
            if textOf(relationship, "TargetID").strip().lower() != key + _PHOTO_SUFFIX:
                raise _missing()
            if self._profile(account).picture is None:
                raise _missing()
        return f'<CreateRelationshipsResponse xmlns="{call.ns}" />'

    def deleteRelationships(self, call: _Call) -> str:
        """
        C{DeleteRelationships}: unlinking the picture (from the expression
        profile or from C{/UserTiles}) removes it; a picture already gone
        is C{ItemDoesNotExist}, which papyon treats as success.
        """
        account, method = call.account, call.method
        source = child(method, "sourceHandle")
        if textOf(source, "Alias", "Name").strip():
            self._requireOwnHandle(account, source, _PROFILE_SUFFIX)
        else:
            self._requireOwnHandle(account, source, _EXPRESSION_SUFFIX)
        targets = [textOf(t, "ResourceID").strip().lower() for t in iterByName(method, "ObjectHandle")]
        if not targets or any(t != cidKey(account) + _PHOTO_SUFFIX for t in targets):
            raise _missing()
        profile = self._profile(account)
        if profile.picture is None:
            raise _missing()
        self._save(account, replace(profile, picture=None, modified=self.now()))
        return f'<DeleteRelationshipsResponse xmlns="{call.ns}" />'

    # -- the bytes ---------------------------------------------------------------------

    def servePicture(self, request: Request) -> bytes:
        """
        GET C{usertile/<cid>/static?t=...}: 403 unless the ticket is the
        owner's, 404 when there is no picture.
        """
        path = request.postpath or []
        values = request.args.get(b"t") or [b""]
        presented = values[0].decode("utf-8", "replace")
        check = TicketCheck(TicketState.UNKNOWN)
        for candidate in ("t=" + presented, presented):
            if presented:
                check = self.tickets.checkStorageTicket(candidate)
                if check.account is not None:
                    break
        account = check.account
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        if account is None or not path or path[0].decode("ascii", "replace").lower() != cidKey(account):
            request.setResponseCode(403)
            return b"Forbidden.\n"
        picture = self._profile(account).picture
        if picture is None or path[1:] not in ([b"static"], []):
            request.setResponseCode(404)
            return b"No picture.\n"
        request.setHeader(b"Content-Type", picture.mimeType.encode("ascii", "replace"))
        return picture.data
