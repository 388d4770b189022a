# -*- test-case-name: test.test_client,test.test_roaming,test.test_soap_client -*-
"""
What the login of L{msnp.client.MSNClient} builds around its NS chain.

The HTTP client a session uses (L{httpClientFor}), the SSO requests and
the ticket renewer, the download of the lists (memberships and address
book, creating the address book when there is none), the roamed-profile
sync and its first load, and the initial C{ADL} payloads.
L{LoginServices} is a base class of L{msnp.client.MSNClient}; these are
apart from L{msnp.client} so that module holds the login chain itself,
readable from start to end, and these the services it calls on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred, FirstError, ensureDeferred, gatherResults
from twisted.logger import Logger

from msnp.contacts import ContactList
from msnp.listpayload import buildListPayloads
from msnp.endpoints import Endpoints
from msnp.errors import AuthenticationError
from msnp.namespaces import CONTACTS, STORAGE
from msnp.roaming import RoamingProfileSync, cidFromHex
from msnp.soap.storage import RoamingProfile, StorageService
from msnp.soap.addressbook import AddressBookResult, AddressBookService
from msnp.soap.envelope import ABCHCache, ABCHFault
from msnp.soap.sharing import MembershipResult, SharingService
from msnp.soap.sync import initialListEntries
from msnp.sso import SSOClient, SSOResult
from msnp.httpclient import SharedHTTPClient, sharedHTTPClient
from msnp.session import ContactsTicket

log = Logger()


def _drop(d: "Deferred[Any]") -> None:
    """
    Give up on C{d}: cancel it, leaving no unhandled failure behind.
    """
    d.addErrback(lambda _: None)
    d.cancel()


@dataclass
class EarlyDownloads:
    """
    The contact-list services of a login and the downloads started on them
    as soon as the SSO tokens are known (L{LoginServices._startDownloads}):
    they need the contacts and storage tickets, not the NS, so they run
    while C{USR SSO S} is being answered. The login awaits C{USR OK} first,
    so an NS refusal still fails it with its own error; L{drop} gives up on
    downloads nobody will wait for.

    @ivar lists: fires with the memberships and the address book.
    @ivar roaming: the roamed-profile sync found from the tickets' CID, or
        L{None}.
    @ivar roamed: L{LoginServices._loadRoamed} of C{roaming}.
    """

    contactsTicket: ContactsTicket
    sharing: SharingService
    addressBook: AddressBookService
    lists: "Deferred[tuple[MembershipResult, AddressBookResult]]"
    roaming: Optional[RoamingProfileSync]
    roamed: "Deferred[tuple[Optional[RoamingProfile], Optional[bytes]]]"

    def drop(self) -> None:
        """
        Cancel both downloads (a failed or abandoned login).
        """
        _drop(self.lists)
        _drop(self.roamed)


def httpClientFor(reactor: Any, endpoints: Endpoints) -> SharedHTTPClient:
    """
    The HTTP client a session uses when the caller gave none: a claim on
    the one persistent pool of C{reactor} (every session on it shares its
    connections; see L{msnp.httpclient.sharedHTTPClient}), certificates
    always verified, trusting only C{endpoints.trustRoot} when it is set
    (self-hosted servers), else the platform's store. The session gives the
    claim back when it ends; the pool closes with the last claim.
    """
    return sharedHTTPClient(reactor, endpoints.trustRoot)


def _initialPayloads(contacts: ContactList) -> list[bytes]:
    """
    The initial C{ADL} payloads. An address the payload format cannot
    express (no domain, say, from a damaged address book) is left out and
    logged rather than failing the whole login.
    """
    entries = initialListEntries(contacts)
    try:
        return buildListPayloads(entries, initial=True)
    except ValueError:
        usable = []
        for entry in entries:
            try:
                buildListPayloads([entry], initial=True)
            except ValueError as e:
                log.warn("Leaving {email} out of the initial ADL: {error}", email=entry.email, error=str(e))
            else:
                usable.append(entry)
        return buildListPayloads(usable, initial=True)


def _unwrapFirstError(error: BaseException) -> BaseException:
    while isinstance(error, FirstError):
        inner = error.subFailure.value
        if inner is None:
            break
        error = inner
    return error


class _Renewer:
    """
    L{LoginServices._renewTicket} with its arguments: one slotted object
    (a partial is three: itself, its bound method and its tuple).
    """

    __slots__ = ("_login", "_httpClient", "_policy", "_address")

    def __init__(self, login: "LoginServices", httpClient: Any, policy: str, address: str) -> None:
        self._login = login
        self._httpClient = httpClient
        self._policy = policy
        self._address = address

    def __call__(self) -> "Deferred[str]":
        return self._login._renewTicket(self._httpClient, self._policy, self._address)


class LoginServices:
    """
    The services the login of L{msnp.client.MSNClient} calls on: SSO,
    ticket renewal, the list download, the roamed profile.
    """

    if TYPE_CHECKING:
        # Set up by msnp.client.MSNClient, which this class is a base of.
        account: str
        _password: str
        endpoints: Endpoints
        reactor: Any
        requestTimeout: float
        displayPicture: Optional[bytes]

    def _loadRoamed(
        self, roaming: Optional[RoamingProfileSync]
    ) -> "Deferred[tuple[Optional[RoamingProfile], Optional[bytes]]]":
        """
        The roamed profile and, when the caller has no picture of its own,
        the roamed picture's bytes (either L{None}: none roamed, no storage
        ticket, or a storage failure, logged).
        """

        async def load() -> "tuple[Optional[RoamingProfile], Optional[bytes]]":
            if roaming is None:
                return None, None
            roamed = await roaming.load()
            if self.displayPicture is not None or roamed is None or roamed.picture is None:
                return roamed, None
            # No picture of the caller's own: start with the roamed one,
            # like name and message (a failed download leaves none).
            return roamed, await roaming.fetchPicture()

        return ensureDeferred(load())

    def _roamingSync(
        self, httpClient: Any, tokens: SSOResult, cid: Optional[int], quiet: bool = False
    ) -> Optional[RoamingProfileSync]:
        """
        The roamed-profile sync of this session, or L{None} (logged) when
        the SSO service issued no storage ticket or no CID is known.

        @param cid: the address book's CID; L{None}: the tickets' one.
        @param quiet: log nothing (a first try before the address book).
        """
        try:
            ticket = tokens.token(STORAGE).ticket
        except AuthenticationError:
            if not quiet:
                log.info("No {address} ticket for {account}: no roaming profile", address=STORAGE, account=self.account)
            return None
        if cid is None:
            cid = cidFromHex(tokens.cid)
        if cid is None:
            if not quiet:
                log.info("No CID known for {account}: no roaming profile", account=self.account)
            return None
        # ticket.__str__ returns the ticket itself: the getter without a
        # closure and its cell, kept for the session's life (issue 13).
        service = StorageService(
            httpClient, self.endpoints.storage, ticket.__str__, self.reactor, timeout=self.requestTimeout
        )
        return RoamingProfileSync(service, cid, self.reactor)

    def _renewer(self, httpClient: Any, policy: str, address: str = CONTACTS) -> Callable[[], "Deferred[str]"]:
        """
        How one of the session's tickets (by default the contacts ticket)
        is renewed: the login's SSO request again, same account, password
        and policy. A L{_Renewer} rather than a closure or a partial: a
        session keeps two of these for its lifetime (issue 13).
        """
        return _Renewer(self, httpClient, policy, address)

    def _renewTicket(self, httpClient: Any, policy: str, address: str) -> "Deferred[str]":
        log.info("Renewing the {address} ticket of {account}", address=address, account=self.account)

        def renewed(tokens: SSOResult) -> str:
            log.info("{address} ticket of {account} renewed", address=address, account=self.account)
            return tokens.token(address).ticket

        return self._requestTokens(httpClient, policy).addCallback(renewed)

    def _requestTokens(self, httpClient: Any, policy: str) -> "Deferred[SSOResult]":
        """
        One SSO request for this account (at login, and again whenever the
        contacts ticket has expired).
        """
        sso = SSOClient(httpClient, self.endpoints.sso, self.reactor, timeout=self.requestTimeout)
        return sso.requestTokens(self.account, self._password, policy)

    def _startDownloads(self, httpClient: Any, tokens: SSOResult, policy: str) -> EarlyDownloads:
        """
        Build the sharing and address-book services on the contacts ticket
        and start the list download (memberships and address book side by
        side) and, when the tickets name the CID, the roamed profile: the
        same HTTP requests, in the same order, that follow C{USR OK}, only
        no longer waiting for it (the services take tickets, not the NS
        session).
        """
        contactsTicket = ContactsTicket(tokens.contactsTicket, self._renewer(httpClient, policy))
        cache = ABCHCache()
        sharing = SharingService(
            httpClient, self.endpoints.sharing, contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=contactsTicket.renew,
        )
        addressBook = AddressBookService(
            httpClient, self.endpoints.addressBook, contactsTicket, self.reactor,
            timeout=self.requestTimeout, cache=cache, renewTicket=contactsTicket.renew,
        )
        lists = ensureDeferred(self._downloadLists(sharing, addressBook))
        roaming = self._roamingSync(httpClient, tokens, None, quiet=True)
        return EarlyDownloads(contactsTicket, sharing, addressBook, lists, roaming, self._loadRoamed(roaming))

    async def _downloadLists(
        self, sharing: SharingService, addressBook: AddressBookService
    ) -> tuple[MembershipResult, AddressBookResult]:
        membership: MembershipResult
        book: AddressBookResult
        try:
            both: list[Any] = await gatherResults(
                [sharing.findMembership(), addressBook.findContactsPaged()],  # type: ignore[list-item]
                consumeErrors=True,
            )
            membership, book = both
        except FirstError as e:
            error = _unwrapFirstError(e)
            if not (isinstance(error, ABCHFault) and error.errorCode == "ABDoesNotExist"):
                raise error from None
            log.info("{account} has no address book yet; creating it", account=self.account)
            await addressBook.abAdd(self.account)
            membership = await sharing.findMembership()
            book = await addressBook.findContactsPaged()
        return membership, book
