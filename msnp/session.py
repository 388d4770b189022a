# -*- test-case-name: test.test_client -*-
"""
L{Session}: one signed-in account, the long-lived state a user works with.

It is built by L{msnp.client.MSNClient.login} once the NS has accepted the
ticket: its roster (L{msnp.roster.RosterManager}) over the ABCH services,
and itself as that connection's L{msnp.notification.INotificationListener};
its conversations (L{msnp.conversation.ConversationManager}), pictures,
files, circles and offline inbox are built on first use
(L{msnp.sessionparts}), so an idle session stays small. Every attribute
reflects what the server confirmed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from msnp.clientlimits import DEFAULT_CLIENT_LIMITS, ClientLimits, permitsInvitation
from msnp.contacts import ContactList, Place, Profile, Status
from msnp.conversation import Conversation
from msnp.errors import ServiceError
from msnp.httpclient import HTTPClientOwner
from msnp.interfaces import notifyObserver
from msnp.listpayload import ListEntry
from msnp.offline import UUM_GRACE_PERIOD
from msnp.soap.rsi import RSIService
from msnp.wire import Command
from msnp.notification import INotificationListener, NotificationProtocol
from msnp.nsmessages import Invitation, SessionState
from msnp.pictures import PictureCache
from msnp.roaming import RoamingProfileSync
from msnp.sessioncontacts import SessionContacts
from msnp.sessionmessaging import SessionMessaging
from msnp.sessionparts import SessionParts
from msnp.sessionprofile import SessionProfile
from msnp.roster import RosterManager
from msnp.settings import MpopMode, Privacy
from msnp.soap.addressbook import AddressBookService
from msnp.soap.sharing import SharingService

if TYPE_CHECKING:
    from msnp.client import MSNClient

log = Logger()


# -- tickets ------------------------------------------------------------------------------


class ContactsTicket:
    """
    The session's current C{contacts.msn.com} ticket, which the ABCH
    clients read at every call; a renewal swaps it in place. Calling the
    object returns the ticket, so it is itself the ticket provider.
    The ticket never appears in the C{repr}.
    """

    __slots__ = ("_ticket", "_renew", "_closed")

    def __init__(self, ticket: str, renew: Optional[Callable[[], "Deferred[str]"]] = None) -> None:
        """
        @param renew: runs a new SSO request and fires with the new ticket
            (L{None}: this ticket cannot be renewed).
        """
        self._ticket = ticket
        self._renew = renew
        self._closed = False

    def __call__(self) -> str:
        return self._ticket

    def replace(self, ticket: str) -> None:
        """
        Use C{ticket} from the next call on.
        """
        self._ticket = ticket

    def __repr__(self) -> str:
        return "<ContactsTicket (hidden)>"

    def renew(self) -> "Deferred[None]":
        """
        Get a new ticket and use it from the next call on; the ABCH clients
        call this when the service says the ticket has expired.
        """
        if self._closed:
            return fail(ServiceError("the session has ended; its tickets cannot be renewed"))
        if self._renew is None:
            return fail(ServiceError("this session has no HTTP client to renew its tickets with"))
        return self._renew().addCallback(self.replace)

    def close(self) -> None:
        """
        The session ended: refuse renewals from now on.
        """
        self._closed = True


# -- the session --------------------------------------------------------------------------


@implementer(INotificationListener)
class Session(SessionParts, SessionProfile, SessionMessaging, SessionContacts):
    """
    A signed-in account: its state, its contacts, its conversations.

    Every attribute reflects what the server confirmed; the setters change
    them only when the server echoes the change.
    """

    def __init__(
        self,
        protocol: NotificationProtocol,
        sharing: SharingService,
        addressBook: AddressBookService,
        contactsTicket: ContactsTicket,
        observer: Optional[object],
        reactor: Any,
        requestTimeout: float = 30.0,
        trace: bool = False,
        http: Optional[HTTPClientOwner] = None,
        client: Optional["MSNClient"] = None,
        pictureCache: Optional[PictureCache] = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
        rsi: Optional[RSIService] = None,
        webTicket: Optional[ContactsTicket] = None,
        uumGracePeriod: float = UUM_GRACE_PERIOD,
    ) -> None:
        """
        Build the session: its roster over the two ABCH services, and
        itself as the NS connection's L{INotificationListener}; the other
        managers are built on first use (L{msnp.sessionparts.SessionParts}).

        @param contactsTicket: the ticket the ABCH services read (and renew).
        @param http: the HTTP client the login took (a claim on the
            reactor's shared pool), given back when the session ends, which
            closes the pool only if no other session holds it (L{None}: the
            caller's own client, left open).
        @param client: the L{msnp.client.MSNClient} that signed in, if any.
        @param pictureCache: where fetched display pictures are kept (the
            client's, so it outlives reconnects); by default a new one in
            memory.
        @param limits: the caps against a hostile server; every switchboard
            wait (connect, acknowledgement, set-up) derives from
            C{requestTimeout}.
        @param rsi: the RSI client offline messages are fetched and deleted
            with (L{None}: announced offline messages are not fetched).
        @param webTicket: the C{messenger.msn.com} ticket C{rsi} reads,
            closed when the session ends.
        @param uumGracePeriod: seconds an offline message may still be
            refused by a numeric error before it counts as stored
            (docs/offline.md).
        """
        self.client = client
        self.protocol = protocol
        self.observer = observer
        self._http = http
        self._signedIn = False
        self._ended_ = False
        self._endReason: Optional[str] = None
        self._endWaiters: list[Deferred[Optional[str]]] = []
        self._cleanedUp: Optional[Deferred[None]] = None
        self._contactsTicket = contactsTicket
        self._addressBook = addressBook
        #: The roamed profile (storage service), L{None} until the login
        #: set it up or when the network has no storage ticket.
        self.roaming: Optional[RoamingProfileSync] = None
        self.roster = RosterManager(
            self.contacts, sharing, addressBook, protocol.sendListCommand, observer,
            session=self, ownEmail=self.account, clock=reactor,
        )
        # The conversation, picture, file, rich-content and circle managers
        # and the offline inbox are built on first use (msnp.sessionparts).
        self._keepPartsOptions(reactor, requestTimeout, trace, limits, pictureCache, sharing)
        self.uumGracePeriod = uumGracePeriod
        self._webTicket = webTicket
        self._announcements: list[bytes] = []
        self.rsi = rsi
        protocol.session = self
        protocol.listener = self

    def __repr__(self) -> str:
        return f"<Session {self.account} {self.status.code}{' ended' if self._ended_ else ''}>"

    def renewTicket(self) -> "Deferred[None]":
        """
        Renew the C{contacts.msn.com} ticket the ABCH clients use: run the
        SSO request of the login again (same account, password and policy)
        and swap in the new ticket. The NS session is not touched (reference
        section 7.4). The ABCH clients do this by themselves when the
        service says the ticket has expired.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing once the new ticket is in use, or
            failing with L{msnp.errors.AuthenticationError} (the password is
            no longer accepted) or L{msnp.errors.ServiceError}.
        """
        return self._contactsTicket.renew()

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """
        The NS connection's live state; the other properties read it, so
        they never disagree with what the server confirmed.
        """
        return self.protocol.state

    @property
    def account(self) -> str:
        return self.state.account

    @property
    def contacts(self) -> ContactList:
        return self.state.contacts

    @property
    def profile(self) -> Optional[Profile]:
        return self.state.profile

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def displayName(self) -> str:
        return self.state.displayName

    @property
    def personalMessage(self) -> str:
        return self.state.personalMessage

    @property
    def currentMedia(self) -> str:
        return self.state.currentMedia

    @property
    def machineGuid(self) -> str:
        return self.state.machineGuid

    @property
    def policy(self) -> Optional[bytes]:
        """
        The C{GCF} policy document the server pushed at login, if any.
        """
        return self.protocol.policy

    @property
    def places(self) -> dict[str, Place]:
        """
        This account's signed-in places (MPOP), ours included.
        """
        return self.state.places

    @property
    def otherPlaces(self) -> dict[str, Place]:
        """
        This account's other signed-in places (MPOP), by normalised GUID,
        each with its name (C{Place.name}); this place is left out.
        """
        own = self.machineGuid
        return {guid: place for guid, place in self.places.items() if guid != own}

    @property
    def privacy(self) -> Privacy:
        """
        Who may see and reach me (C{BLP}), as the address book keeps it.
        """
        profile = self.profile
        return Privacy.fromCommand(profile.blp) if profile is not None else Privacy.EVERYONE_NOT_BLOCKED

    @property
    def mpopMode(self) -> MpopMode:
        """
        The MPOP choice the address book keeps (C{MSN.IM.MPOP}).
        """
        profile = self.profile
        if profile is None or profile.mpop:
            return MpopMode.KEEP_OTHER_PLACES
        return MpopMode.SIGN_OUT_OTHER_PLACES

    @property
    def hotmailProfile(self) -> dict[str, str]:
        return self.state.hotmailProfile

    @property
    def isActive(self) -> bool:
        """
        Whether the login finished and the session has not ended: only
        then do requests on it make sense.
        """
        return self._signedIn and not self._ended_

    # -- what the NS connection tells us (INotificationListener) ----------------------------------

    def useContactList(self, contacts: ContactList, profile: Profile) -> None:
        """
        The login downloaded the lists: from now on they are the session's
        (and its roster's) contact list and profile.
        """
        self.state.contacts = contacts
        self.state.profile = profile
        self.roster.contacts = contacts

    def markSignedIn(self) -> None:
        """
        The login finished (C{CHG} echoed): from now on the session is
        active and its end is reported to the observer; offline messages
        announced so far start to be fetched.
        """
        self._signedIn = True
        announcements, self._announcements = self._announcements, []
        for payload in announcements:
            self.mailDataReceived(payload)

    def _contactNetwork(self, email: str) -> Optional[int]:
        contact = self.contacts.get(email)
        return contact.network if contact is not None else None

    def _isKnownOffline(self, email: str) -> bool:
        contact = self.contacts.get(email)
        return contact is not None and contact.status is Status.OFFLINE

    def serverListChanged(self, entries: list[ListEntry], added: bool) -> None:
        d = self.roster.serverListChanged(entries, added)
        d.addErrback(lambda f: log.info("Applying a server list change failed: {e}", e=f.getErrorMessage()))

    def addressBookChanged(self) -> None:
        d = self.roster.addressBookChanged()
        d.addErrback(lambda f: log.info("Address book refresh failed: {e}", e=f.getErrorMessage()))
        # The circles are re-read after the contact list, whose delta may
        # show there is nothing to re-read (_refreshCircles).
        d.addCallback(lambda _: self._circleRefreshes.request())

    def _refreshCircles(self) -> "Deferred[None]":
        manager = self._circleManager
        if self.roster.bookDeltaListsCircles is False and (
            manager is None or not (manager.circles or manager.invitations)
        ):
            # In no circle and invited to none, and the address book's
            # delta lists none either: the personal book (a megabyte at a
            # thousand contacts) would bring nothing (issue 13).
            return succeed(None)
        circles = self.circleManager.refresh()
        circles.addErrback(lambda f: log.info("Circle refresh failed: {e}", e=f.getErrorMessage()))
        return circles

    def circleCommandReceived(self, command: Command) -> None:
        self.circleManager.commandReceived(command)

    def circleNotified(self, circleId: str) -> None:
        d = self.circleManager.circleNotified(circleId)
        d.addErrback(lambda f: log.info("Circle {circle} refresh failed: {e}", circle=circleId, e=f.getErrorMessage()))

    def invited(self, invitation: Invitation) -> None:
        self.conversationManager.invited(invitation)

    def _permitsInvitation(self, email: str) -> bool:
        """
        Whether our privacy, as known now, lets C{email} reach us: not
        blocked, and on the Allow list under C{BLP BL}. The conversations
        ask at the moment of use (each C{RNG}, each message).
        """
        profile = self.profile
        return permitsInvitation(self.contacts.get(email), profile.blp if profile is not None else "AL")

    def notificationEnded(self, reason: Optional[str]) -> None:
        self._ended(reason)

    def _ended(self, reason: Optional[str]) -> None:
        """
        The NS connection closed: end everything that hangs off it.
        """
        if self._ended_:
            return
        self._ended_ = True
        self._endReason = reason
        self.roster.close()
        # Only the parts built so far (msnp.sessionparts): one built later
        # starts closed.
        pictures, conversations, inbox, circleRefreshes = self._builtParts()
        if circleRefreshes is not None:
            circleRefreshes.close()
        self._contactsTicket.close()
        if pictures is not None:
            pictures.close()
        if self._webTicket is not None:
            self._webTicket.close()
        if inbox is not None:
            inbox.stop()
        if self.roaming is not None:
            self.roaming.stop()
        if conversations is not None:
            try:
                conversations.closeAll()
            except Exception:
                log.failure("Error while closing the conversations of {account}", account=self.account)
        cleanup: Deferred[None] = self._http.close() if self._http is not None else succeed(None)
        cleanup.addErrback(lambda f: log.failure("Error while closing the HTTP pool", f))
        self._cleanedUp = cleanup
        if not self._signedIn:
            return
        log.info("Session of {account} ended: {reason}", account=self.account, reason=reason)
        notifyObserver(self.observer, "signedOut", self, reason)

        def tellWaiters(_: object) -> None:
            waiters, self._endWaiters = self._endWaiters, []
            for waiter in waiters:
                waiter.callback(reason)

        cleanup.addCallback(tellWaiters)

    # -- lifetime ----------------------------------------------------------------------------------

    def logout(self) -> "Deferred[None]":
        """
        Send C{OUT}, close the conversations and the connection.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing when everything is closed.
        """
        return ensureDeferred(self._logout())

    async def _logout(self) -> None:
        if not self._ended_ and self.roaming is not None and self.roaming.pending:
            # Give a roaming write the user is waiting on its chance (it
            # never fails; it is bounded by the storage call's deadline).
            await self.roaming.change()
        self.roster.close()
        self._circleRefreshes.close()
        conversations = self._builtParts()[1]
        if not self._ended_ and conversations is not None:
            try:
                conversations.closeAll()
            except Exception:
                log.failure("Error while closing the conversations of {account}", account=self.account)
        # The connection's waiters (signOut) are told before the session
        # ends (notificationEnded comes right after): wait for the end
        # too, so that what logout() promises is closed (the HTTP claim
        # above all) is closed when it fires, not a reactor turn later.
        ended = self.whenEnded() if self._signedIn and not self._ended_ else None
        await self.protocol.signOut()
        if ended is not None:
            await ended
        if self._cleanedUp is not None and not self._cleanedUp.called:
            done: Deferred[None] = Deferred()

            def passOn(result: object) -> object:
                done.callback(None)
                return result

            self._cleanedUp.addBoth(passOn)
            await done

    def whenEnded(self) -> "Deferred[Optional[str]]":
        """
        A L{Deferred <twisted.internet.defer.Deferred>} firing once the session is over, with the reason: the
        server's C{OUT} code (C{"OTH"}, C{"SSD"}, ...), C{"logout"},
        C{"connection lost"}, or C{"signed out from another place"}.
        """
        if self._ended_ and not self._endWaiters and self._cleanedUp is not None and self._cleanedUp.called:
            return succeed(self._endReason)
        d: Deferred[Optional[str]] = Deferred()
        self._endWaiters.append(d)
        return d

    # -- conversations ---------------------------------------------------------------------------------

    def openConversation(self, email: str) -> "Deferred[Conversation]":
        """
        Start (or reuse) a conversation with C{email}.

        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing with the L{Conversation} once the
            contact has joined, or failing (L{msnp.errors.ContactOffline},
            L{msnp.errors.ServerError}, a timeout).
        """
        return self.conversationManager.openConversation(email)

    # -- conversations (continued) -----------------------------------------------------------------------

    @property
    def conversations(self) -> list[Conversation]:
        """
        The open L{msnp.conversation.Conversation}s.
        """
        conversations = self._builtParts()[1]
        return conversations.conversations if conversations is not None else []
