# -*- test-case-name: test.test_client,test.test_circles_e2e -*-
"""
L{SessionContacts}: the contact list and circles of a signed-in account,
as L{msnp.session.Session} offers them (a base class of it).

Each method hands over to the session's L{msnp.roster.RosterManager} or
L{msnp.circlechat.CircleManager}; they are apart from L{msnp.session} so
that module keeps the session's lifetime and state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from msnp.circlechat import ChatCircle, PendingCircleInvitation
from msnp.contacts import Contact, Group
from msnp.roster import GroupReference

if TYPE_CHECKING:
    from msnp.circlechat import CircleManager
    from msnp.conversation import ConversationManager
    from msnp.roster import RosterManager

log = Logger()


class SessionContacts:
    """
    The contact management and circle methods of L{msnp.session.Session}.
    """

    if TYPE_CHECKING:
        # Set up by msnp.session.Session, which this class is a base of.
        roster: RosterManager

        @property
        def circleManager(self) -> CircleManager: ...

        @property
        def conversationManager(self) -> ConversationManager: ...

    # -- circles (see msnp.circlechat.CircleManager) ----------------------------------------------------

    @property
    def circles(self) -> dict[str, ChatCircle]:
        """
        The circles (group chats) this account is in, by circle id.
        """
        return self.circleManager.circles

    @property
    def circleInvitations(self) -> dict[str, PendingCircleInvitation]:
        """
        The circle invitations not yet accepted or declined, by circle id.
        """
        return self.circleManager.invitations

    def createCircle(self, name: str) -> "Deferred[ChatCircle]":
        """
        Create a circle with this account as its administrator and join
        its conversation; fires with the new circle.
        """
        return self.circleManager.createCircle(name)

    # -- contact management (see msnp.roster.RosterManager) ---------------------------------------------

    def addContact(self, email: str, group: Optional[GroupReference] = None) -> "Deferred[Contact]":
        """
        Add C{email} to the contact list (optionally into C{group}); fires
        with the new L{Contact}.
        """
        return self.roster.addContact(email, group)

    def removeContact(self, email: str) -> "Deferred[None]":
        """
        Take C{email} off the contact list (address book and forward list).
        """
        return self.roster.removeContact(email)

    def blockContact(self, email: str) -> "Deferred[None]":
        """
        Block C{email}: they see you offline and cannot talk to you.
        """
        return self.roster.blockContact(email).addCallback(
            lambda _: self.conversationManager.contactBlocked(email)
        )

    def unblockContact(self, email: str) -> "Deferred[None]":
        """
        Allow C{email} again.
        """
        return self.roster.unblockContact(email)

    def acceptContactRequest(self, email: str, addToList: bool = True) -> "Deferred[Contact]":
        """
        Accept someone who added you; with C{addToList} (the default) add
        them to your list too, so you see each other.
        """
        return self.roster.acceptContactRequest(email, addToList)

    def declineContactRequest(self, email: str) -> "Deferred[Contact]":
        """
        Decline someone who added you: they are blocked.
        """
        return self.roster.declineContactRequest(email)

    def addGroup(self, name: str) -> "Deferred[Group]":
        """
        Create a group; fires with the new L{msnp.contacts.Group}.
        """
        return self.roster.addGroup(name)

    def renameGroup(self, group: GroupReference, newName: str) -> "Deferred[Group]":
        """
        Rename a group, given as a L{msnp.contacts.Group}, its id or its name.
        """
        return self.roster.renameGroup(group, newName)

    def removeGroup(self, group: GroupReference) -> "Deferred[None]":
        """
        Delete a group (its contacts stay on the list, without the group).
        """
        return self.roster.removeGroup(group)

    def moveContactToGroup(self, email: str, group: Optional[GroupReference]) -> "Deferred[Contact]":
        """
        Put a contact in C{group} only (L{None}: in no group).
        """
        return self.roster.moveContactToGroup(email, group)
