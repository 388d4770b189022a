# -*- test-case-name: test.test_tap -*-
"""
C{twistd msnp}: a long-running MSNP18 client that stays signed in and
hands every event to a handler (a bot).

The password never goes on the command line (where C{ps} shows it): it
comes from C{--password-file} or the C{MSNP_PASSWORD} environment
variable. The endpoint defaults are those of C{twistd msnp-server} with its
default ports, so the two work together out of the box.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from twisted.application.service import IService
from twisted.python import usage

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits
from msnp.contacts import Status
from msnp.endpoints import ClientIdentity, Endpoints, newMachineGuid, parseMachineGuid
from msnp.handlers import HandlerFactory, checkHandlerFactory, loadHandlerFactory
from msnp.service import MessengerService, RetryPolicy
from msnp.twistdsupport import EXIT_FAILED, TwistdOptionsMixin, exitAfterShutdown, parseLimitChange

#: The environment variable holding the password.
PASSWORD_VARIABLE = "MSNP_PASSWORD"

DEFAULT_SERVER = "tcp:127.0.0.1:1863"
DEFAULT_SSO = "http://127.0.0.1:8080/RST2.srf"
DEFAULT_SHARING = "http://127.0.0.1:8080/abservice/SharingService.asmx"
DEFAULT_ADDRESS_BOOK = "http://127.0.0.1:8080/abservice/abservice.asmx"
DEFAULT_RSI = "http://127.0.0.1:8080/rsi/rsi.asmx"
DEFAULT_STORAGE = "http://127.0.0.1:8080/storageservice/SchematizedStore.asmx"

#: Friendly status names accepted by C{--status}, besides the wire codes.
STATUS_NAMES: dict[str, Status] = {
    "online": Status.ONLINE,
    "available": Status.ONLINE,
    "busy": Status.BUSY,
    "idle": Status.IDLE,
    "brb": Status.BE_RIGHT_BACK,
    "be-right-back": Status.BE_RIGHT_BACK,
    "away": Status.AWAY,
    "phone": Status.ON_THE_PHONE,
    "on-the-phone": Status.ON_THE_PHONE,
    "lunch": Status.OUT_TO_LUNCH,
    "out-to-lunch": Status.OUT_TO_LUNCH,
    "hidden": Status.HIDDEN,
    "invisible": Status.HIDDEN,
    "appear-offline": Status.HIDDEN,
}


def parseStatus(text: str) -> Status:
    """
    A status from a friendly name (C{online}, C{busy}, C{away}, ...) or a
    wire code (C{NLN}, C{BSY}, ...). Offline is refused: a signed-in
    client cannot be offline; use C{hidden}.

    @raise ValueError: naming the accepted values.
    """
    key = text.strip().lower().replace("_", "-").replace(" ", "-")
    status = STATUS_NAMES.get(key)
    if status is None:
        try:
            status = Status.fromCode(text)
        except ValueError:
            status = None
    if status is None or status is Status.OFFLINE:
        accepted = ", ".join(sorted(STATUS_NAMES))
        raise ValueError(f"unknown status {text!r}; use one of: {accepted} (or a wire code such as NLN, BSY, AWY)")
    return status


def checkClientEndpoint(description: str) -> None:
    """
    Parse a client endpoint string without connecting anywhere.

    @raise ValueError: it is malformed.
    """
    from twisted.internet.endpoints import clientFromString

    try:
        # Parsing builds the endpoint object only; nothing connects until
        # someone calls its connect(), so no reactor is touched here.
        clientFromString(None, description)
    except Exception as e:
        raise ValueError(f"malformed endpoint {description!r}: {e} (expected e.g. tcp:host:port)") from None


def checkURL(url: str, what: str) -> None:
    """
    @raise ValueError: C{url} is not an absolute http(s) URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an http:// or https:// URL, not {url!r}")


def _positiveFloat(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _timeout(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0 seconds (a login with no time at all would be retried forever)")
    return value


class Options(TwistdOptionsMixin, usage.Options):
    """
    Command-line options of C{twistd msnp}.

    After parsing, C{self.password} holds the password (never in the
    option dictionary, so it cannot leak through a dump of the options),
    and C{self.handlerFactory}, C{self.status} and C{self.endpoints} the
    checked values.
    """

    synopsis = "[options]  (password from --password-file or $MSNP_PASSWORD)"
    commandName = "twistd msnp"

    optParameters = [
        ["account", "a", None, "The account (e-mail address) to sign in with."],
        ["password-file", "p", None, f"A file holding the password (else ${PASSWORD_VARIABLE} is used)."],
        ["server", "s", DEFAULT_SERVER, "Client endpoint string of the dispatch (or notification) server."],
        ["sso-url", None, DEFAULT_SSO, "URL of the Passport RST2 service."],
        ["sharing-url", None, DEFAULT_SHARING, "URL of the ABCH sharing service."],
        ["ab-url", None, DEFAULT_ADDRESS_BOOK, "URL of the ABCH address-book service."],
        ["rsi-url", None, DEFAULT_RSI, "URL of the RSI service (offline messages)."],
        ["storage-url", None, DEFAULT_STORAGE, "URL of the storage service (roaming profile)."],
        ["trust-root", None, None, "PEM file of the CA certificates to trust for https URLs."],
        ["status", None, "online", "Status to sign in with: online, busy, away, brb, phone, lunch, idle, hidden, "
         "or a wire code."],
        ["display-name", None, None, "Display name to publish."],
        ["personal-message", None, None, "Personal message to publish."],
        ["display-picture", None, None, "PNG or JPEG file to publish as the display picture (at most 256 KiB)."],
        ["picture-cache", None, None, "Directory keeping contacts' display pictures across restarts."],
        ["handler", None, "log", "echo, log, or the dotted path of a factory callable(client) -> observer."],
        ["machine-guid", None, None, "This place's MPOP endpoint GUID (keep it to stay the same place)."],
        ["locale", None, "0x0409", "Locale id sent in CVR."],
        ["client-version", None, "14.0.8089.0726", "Client version sent in CVR."],
        ["os-version", None, "6.1.0", "Operating system version sent in CVR."],
        ["place-name", None, "MSNP", "The name of this place shown to other places (MPOP)."],
        ["login-timeout", None, 60.0, "Seconds one login may take (more than 0).", _timeout],
        ["min-retry-delay", None, 1.0, "Seconds before the first reconnection attempt.", _positiveFloat],
        ["max-retry-delay", None, 300.0, "Longest wait between reconnection attempts.", _positiveFloat],
    ]

    optFlags = [
        ["trace", "t", "Log every protocol command both ways (secrets redacted)."],
    ]

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        """
        @param environ: where C{MSNP_PASSWORD} is looked up (the process
            environment by default).
        """
        usage.Options.__init__(self)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.password: str = ""
        self.status: Status = Status.ONLINE
        self.handlerFactory: Optional[HandlerFactory] = None
        self.endpoints: Endpoints = Endpoints()
        self.displayPicture: Optional[bytes] = None
        self.limits: ClientLimits = DEFAULT_CLIENT_LIMITS
        self._limitChanges: dict[str, Any] = {}

    def opt_limit(self, assignment: str) -> None:
        """
        Change one client limit against a hostile server, NAME=VALUE
        (repeatable), e.g. --limit openConversations=16; the names and
        defaults are in docs/limits.md.
        """
        name, value = parseLimitChange(assignment, ClientLimits)
        self._limitChanges[name] = value

    def __repr__(self) -> str:
        return f"<msnp.tap.Options account={self['account']!r}>"

    def opt_password(self, value: str) -> None:
        """
        Refused: use $MSNP_PASSWORD or --password-file.
        """
        # Declared so that "--password" is not taken as an abbreviation of
        # "--password-file" (getopt accepts any unique prefix).
        raise usage.UsageError(
            f"there is no --password option (a command line is visible to every user through ps): "
            f"set {PASSWORD_VARIABLE} or give --password-file FILE"
        )

    def postOptions(self) -> None:
        account = (self["account"] or "").strip()
        if not account:
            raise usage.UsageError("no account: give the address to sign in with, --account user@example.com")
        if "@" not in account:
            raise usage.UsageError(f"--account must be an e-mail address, not {account!r}")
        self["account"] = account
        self.password = self._readPassword()
        try:
            self.status = parseStatus(self["status"])
            checkClientEndpoint(self["server"])
            checkURL(self["sso-url"], "--sso-url")
            checkURL(self["sharing-url"], "--sharing-url")
            checkURL(self["ab-url"], "--ab-url")
            checkURL(self["rsi-url"], "--rsi-url")
            checkURL(self["storage-url"], "--storage-url")
            self.handlerFactory = loadHandlerFactory(self["handler"])
            checkHandlerFactory(self["handler"], self.handlerFactory)
            if self["machine-guid"] is not None:
                self["machine-guid"] = parseMachineGuid(self["machine-guid"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        trustRoot = self["trust-root"]
        if trustRoot is not None:
            self._checkTrustRoot(trustRoot)
        try:
            self.limits = DEFAULT_CLIENT_LIMITS.replace(**self._limitChanges)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["display-picture"] is not None:
            self.displayPicture = readPicture(self["display-picture"])
        if self["max-retry-delay"] < self["min-retry-delay"]:
            raise usage.UsageError("--max-retry-delay must not be smaller than --min-retry-delay")
        self.endpoints = Endpoints(
            dispatch=self["server"],
            sso=self["sso-url"],
            sharing=self["sharing-url"],
            addressBook=self["ab-url"],
            rsi=self["rsi-url"],
            storage=self["storage-url"],
            trustRoot=trustRoot,
        )

    def _readPassword(self) -> str:
        path = self["password-file"]
        if path is not None:
            try:
                with open(path, encoding="utf-8") as f:
                    password = f.read().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as e:
                raise usage.UsageError(f"cannot read the password file {path!r}: {getattr(e, 'strerror', None) or e}")
            if not password:
                raise usage.UsageError(f"no password: the password file {path!r} is empty")
            return password
        if PASSWORD_VARIABLE not in self.environ:
            raise usage.UsageError(
                f"no password: set the {PASSWORD_VARIABLE} environment variable or give --password-file "
                "(there is no --password option, so the password never shows in the process list)"
            )
        password = self.environ[PASSWORD_VARIABLE]
        if not password:
            raise usage.UsageError(f"no password: {PASSWORD_VARIABLE} is empty")
        return password

    def _checkTrustRoot(self, path: str) -> None:
        from twisted.internet.ssl import Certificate

        try:
            with open(path, "rb") as f:
                Certificate.loadPEM(f.read())
        except OSError as e:
            raise usage.UsageError(f"cannot read the trust root {path!r}: {e.strerror or e}") from None
        except Exception as e:
            raise usage.UsageError(f"the trust root {path!r} is not a PEM certificate: {e}") from None

    def identity(self) -> ClientIdentity:
        """
        The client identity the options describe.
        """
        return ClientIdentity(
            localeId=self["locale"],
            osVersion=self["os-version"],
            clientVersion=self["client-version"],
            machineGuid=self["machine-guid"] or newMachineGuid(),
            placeName=self["place-name"],
        )


def readPicture(path: str) -> bytes:
    """
    The display picture in C{path}, checked as the session will check it.

    @raise usage.UsageError: unreadable, empty, too large, not PNG/JPEG.
    """
    from msnp.pictures import MAX_PICTURE_SIZE, checkPicture

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PICTURE_SIZE + 1)
    except OSError as e:
        raise usage.UsageError(f"cannot read the display picture {path!r}: {e.strerror or e}") from None
    try:
        checkPicture(data)
    except ValueError as e:
        raise usage.UsageError(f"--display-picture {path!r}: {e}") from None
    return data


def makeClient(options: Options, reactor: Any = None) -> Any:
    """
    The L{msnp.client.MSNClient} the options describe, with its handler
    attached as the observer.
    """
    from msnp.client import MSNClient

    client = MSNClient(
        options["account"],
        options.password,
        endpoints=options.endpoints,
        reactor=reactor,
        identity=options.identity(),
        loginTimeout=options["login-timeout"],
        trace=bool(options["trace"]),
        initialStatus=options.status,
        displayName=options["display-name"],
        personalMessage=options["personal-message"],
        displayPicture=options.displayPicture,
        pictureCacheDirectory=options["picture-cache"],
        limits=options.limits,
    )
    if options.handlerFactory is not None:
        client.observer = options.handlerFactory(client)
    return client


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the client service from parsed options: a L{MessengerService}
    that signs in, and signs in again (with backoff) when the session
    drops, until stopped.
    """
    policy = RetryPolicy(initialDelay=options["min-retry-delay"], maxDelay=options["max-retry-delay"])
    service = MessengerService(makeClient(options, reactor), reactor=reactor, policy=policy)
    service.setName("msnp")
    if options.parent is not None:
        # Under twistd: a service that gave up for good (refused
        # credentials, OUT OTH) ends the process with an error, so a
        # supervisor restarts it or alerts, instead of it idling.
        def finished(reason: Optional[BaseException]) -> None:
            if reason is not None:
                exitAfterShutdown(service.reactor, EXIT_FAILED)

        service.whenFinished().addCallback(finished)
    return service
