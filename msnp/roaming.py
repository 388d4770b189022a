# -*- test-case-name: test.test_roaming -*-
"""
Keeping the roamed copy of the user's name, message and picture in step,
for a session to drive (issue #17): read it once at sign-in, write every
change the user makes, and never let the storage service fail a login.

Guarantees a caller can rely on:

  - L{RoamingProfileSync.load} never fails: a storage error is logged and
    gives L{None} (the session goes on with its own values).
  - Changes are coalesced: the newest wanted name, message and picture are
    what gets written; a change made while a write is under way is written
    right after it.
  - A failed write is retried on the injected clock with a growing delay
    (up to L{MAX_RETRY_DELAY}), until it succeeds or L{stop} is called.
  - Every L{Deferred} handed out fires: with C{True} once the change is
    stored, C{False} when the write failed (a retry is then scheduled) or
    the sync was stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from msnp.errors import MSNPError
from msnp.soap.storage import (
    SCENARIO_IDENTITY_CHANGED,
    RoamingProfile,
    StorageFault,
    StorageService,
)

log = Logger()

#: First delay before a failed write is tried again, in seconds.
FIRST_RETRY_DELAY = 30.0
#: The retry delay doubles up to this.
MAX_RETRY_DELAY = 15 * 60.0


@dataclass(frozen=True)
class SignInProfile:
    """
    The name and message a session announces at sign-in, and whether each
    came from the roamed copy.
    """

    displayName: str
    personalMessage: str
    nameFromRoaming: bool = False
    messageFromRoaming: bool = False


def chooseSignInProfile(
    roamed: Optional[RoamingProfile],
    callerName: Optional[str],
    callerMessage: Optional[str],
    fallbackName: str,
) -> SignInProfile:
    """
    What to announce at sign-in: the caller's own values win; otherwise the
    roamed ones (when they were ever set); otherwise C{fallbackName} (the
    address-book name) and an empty message.
    """
    name, nameRoamed = fallbackName, False
    if callerName:
        name = callerName
    elif roamed is not None and roamed.displayName:
        name, nameRoamed = roamed.displayName, True
    message, messageRoamed = "", False
    if callerMessage is not None:
        message = callerMessage
    elif roamed is not None and roamed.personalMessage is not None:
        message, messageRoamed = roamed.personalMessage, True
    return SignInProfile(name, message, nameRoamed, messageRoamed)


def cidFromHex(text: Optional[str]) -> Optional[int]:
    """
    The signed 64-bit CID from its hex form (the SSO C{CID} property), as
    the address book and the storage service write it in decimal;
    L{None} for a missing or unreadable value.
    """
    if not text:
        return None
    try:
        value = int(text.strip(), 16)
    except ValueError:
        return None
    if not 0 <= value < 1 << 64:
        return None
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class _Picture:
    data: bytes
    mimeType: str

    def __repr__(self) -> str:
        return f"<picture {len(self.data)} bytes {self.mimeType}>"


class RoamingProfileSync:
    """
    The roamed profile of one signed-in account.

    @ivar profile: the profile read by L{load}, or L{None}.
    """

    def __init__(self, service: StorageService, cid: int, clock: IReactorTime) -> None:
        """
        @param service: the storage client (with the session's storage ticket).
        @param cid: the owner's CID (the address book's Me contact).
        @param clock: where retries are scheduled.
        """
        self.service = service
        self.cid = cid
        self.clock = clock
        self.profile: Optional[RoamingProfile] = None
        self._wantedName: Optional[str] = None
        self._wantedMessage: Optional[str] = None
        self._wantedPicture: Optional[_Picture] = None
        self._writing = False
        self._waiters: list[Deferred[bool]] = []
        self._retry: Optional[IDelayedCall] = None
        self._delay = FIRST_RETRY_DELAY
        self._stopped = False

    def __repr__(self) -> str:
        return f"<RoamingProfileSync cid={self.cid} pending={self.pending}>"

    @property
    def pending(self) -> bool:
        """
        Whether a change is still to be written.
        """
        return any(v is not None for v in (self._wantedName, self._wantedMessage, self._wantedPicture))

    def load(self) -> "Deferred[Optional[RoamingProfile]]":
        """
        Read the roamed profile; L{None} (logged) when the service fails.
        """
        return ensureDeferred(self._load())

    async def _load(self) -> Optional[RoamingProfile]:
        try:
            self.profile = await self.service.getProfile(self.cid)
        except MSNPError as e:
            log.info("Roaming profile unavailable, using local values: {error}", error=str(e))
            return None
        return self.profile

    def fetchPicture(self) -> "Deferred[Optional[bytes]]":
        """
        The roamed picture's bytes, or L{None} (none roamed, or the download
        failed, logged).
        """
        return ensureDeferred(self._fetchPicture())

    async def _fetchPicture(self) -> Optional[bytes]:
        if self.profile is None or self.profile.picture is None:
            return None
        try:
            return await self.service.fetchPicture(self.profile.picture)
        except MSNPError as e:
            log.info("Roamed display picture unavailable: {error}", error=str(e))
            return None

    def change(
        self,
        displayName: Optional[str] = None,
        personalMessage: Optional[str] = None,
        picture: Optional[bytes] = None,
        mimeType: str = "image/png",
    ) -> "Deferred[bool]":
        """
        Roam a change the user made (L{None}: that field did not change;
        C{""} clears the message).

        @return: a L{Deferred} firing C{True} once everything wanted so far
            is stored, C{False} if this attempt failed or the sync stopped.
        """
        if displayName is not None:
            self._wantedName = displayName
        if personalMessage is not None:
            self._wantedMessage = personalMessage
        if picture is not None:
            self._wantedPicture = _Picture(picture, mimeType)
        waiter: Deferred[bool] = Deferred()
        if self._stopped:
            waiter.callback(False)
            return waiter
        self._waiters.append(waiter)
        if not self._writing:
            self._cancelRetry()
            ensureDeferred(self._write())
        return waiter

    def stop(self) -> None:
        """
        Give up: no more retries; waiting callers get C{False}.
        """
        self._stopped = True
        self._cancelRetry()
        self._tell(False)

    # -- writing -------------------------------------------------------------------

    def _cancelRetry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _tell(self, outcome: bool) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(outcome)

    async def _write(self) -> None:
        self._writing = True
        try:
            while self.pending and not self._stopped:
                await self._writeOnce()
        except Exception as e:
            if isinstance(e, MSNPError):
                log.info("Roaming profile not updated ({error}); retrying in {delay:g}s", error=str(e), delay=self._delay)
            else:
                log.failure("Roaming profile update failed unexpectedly; retrying in {delay:g}s", delay=self._delay)
            self._writing = False
            if not self._stopped:
                self._retry = self.clock.callLater(self._delay, self._retryNow)
                self._delay = min(self._delay * 2, MAX_RETRY_DELAY)
            self._tell(False)
            return
        self._writing = False
        self._delay = FIRST_RETRY_DELAY
        self._tell(not self._stopped)

    def _retryNow(self) -> None:
        self._retry = None
        if self.pending and not self._writing and not self._stopped:
            ensureDeferred(self._write())

    async def _writeOnce(self) -> None:
        if self.profile is None:
            self.profile = await self.service.getProfile(self.cid, SCENARIO_IDENTITY_CHANGED)
        name, message = self._wantedName, self._wantedMessage
        if name is not None or message is not None:
            # An empty name is never roamed: the address is the fallback.
            await self.service.updateProfile(self.profile.resourceId, name or None, message)
            if self._wantedName == name:
                self._wantedName = None
            if self._wantedMessage == message:
                self._wantedMessage = None
        picture = self._wantedPicture
        if picture is not None:
            await self._writePicture(picture)
            if self._wantedPicture is picture:
                self._wantedPicture = None

    async def _writePicture(self, picture: _Picture) -> None:
        """
        Replace the roamed picture (MSNPSharp's order): update the existing
        document, and when there is none, create one and link it to the
        expression profile.
        """
        assert self.profile is not None
        existing = self.profile.picture
        if existing is not None:
            try:
                await self.service.updateDocument(existing.resourceId, picture.data, picture.mimeType)
                return
            except StorageFault as fault:
                if not fault.itemMissing:
                    raise
        photoId = await self.service.createDocument(self.cid, picture.data, picture.mimeType)
        if self.profile.expressionProfileId:
            await self.service.createRelationship(self.profile.expressionProfileId, photoId)
        # Read back, so the next change updates the new document.
        self.profile = await self.service.getProfile(self.cid, SCENARIO_IDENTITY_CHANGED)
