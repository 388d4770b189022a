# -*- test-case-name: test.test_server_watchers -*-
"""
The index from each account to the signed-in sessions that may hold a view
of it, so that a presence change costs as much as the account has watchers,
not as many sessions as are online.

A session can only ever be shown an account it has on its session forward
list (C{NotificationServer.forward}); whatever it was last shown is in its
C{announced} map. A change of the account itself (a C{CHG}, its privacy, its
name, its sign-in or sign-out) can therefore alter only the views of the
sessions that have it in one of the two, and L{WatcherIndex} keeps exactly
those, per account: for every registered session,
C{session in index.watchersOf(subject)} exactly when
C{subject in session.forward or subject in session.announced}. Who is I{allowed} to see the account (the
store's forward list, block and allow, C{BLP}) is not indexed: it is checked
for each of these candidates at the moment of the refresh, as before, so a
privacy change needs no index update at all, only a refresh of the owner as
a subject (L{msnp.server.presence.Presence.refreshSubject}).

The index is told of every change of the two sets: L{register} when a
session signs in (its forward list taken from the store), L{unregister}
when it goes, L{follow} and L{unfollow} for incremental C{ADL}/C{RML}, and
L{forgetView} when a refresh removes an entry from C{announced}. Nothing
else may change C{forward} of a signed-in session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from msnp.server.notification import NotificationServer


class WatcherIndex:
    """
    Account (normalized address) to the sessions watching it.

    Sessions are kept in insertion order (a C{dict} used as an ordered
    set), so the order in which watchers are told of a change does not
    depend on object addresses, and test transcripts stay reproducible.
    """

    def __init__(self) -> None:
        self._watching: dict[str, dict["NotificationServer", None]] = {}

    def __len__(self) -> int:
        """
        How many accounts have at least one watcher.
        """
        return len(self._watching)

    def watchersOf(self, subject: str) -> list["NotificationServer"]:
        """
        The sessions that have C{subject} (normalized) on their forward list
        or were last shown it online: a copy, as refreshing them may change
        the index.
        """
        return list(self._watching.get(subject, ()))

    def _add(self, session: "NotificationServer", subject: str) -> None:
        self._watching.setdefault(subject, {})[session] = None

    def _discard(self, session: "NotificationServer", subject: str) -> None:
        sessions = self._watching.get(subject)
        if sessions is None:
            return
        sessions.pop(session, None)
        if not sessions:
            del self._watching[subject]

    def register(self, session: "NotificationServer") -> None:
        """
        Index a session that just signed in, under every account on its
        forward list (and any it was already shown, normally none).
        """
        for subject in session.forward:
            self._add(session, subject)
        for subject in session.announced:
            self._add(session, subject)

    def unregister(self, session: "NotificationServer") -> None:
        """
        Forget a session that signed out: it watches nobody any more.
        """
        for subject in session.forward:
            self._discard(session, subject)
        for subject in session.announced:
            self._discard(session, subject)

    def follow(self, session: "NotificationServer", subject: str) -> None:
        """
        Put C{subject} on the forward list of C{session}, indexed.
        """
        session.forward.add(subject)
        self._add(session, subject)

    def unfollow(self, session: "NotificationServer", subject: str) -> None:
        """
        Take C{subject} off the forward list of C{session}. The session
        stays indexed under it while it still holds a view of it, until the
        refresh that follows sends the C{FLN} (L{forgetView}).
        """
        session.forward.discard(subject)
        if subject not in session.announced:
            self._discard(session, subject)

    def forgetView(self, session: "NotificationServer", subject: str) -> None:
        """
        A refresh removed C{subject} from C{session.announced}: unindex it
        unless it is still on the forward list.
        """
        if subject not in session.forward:
            self._discard(session, subject)

    def isWatching(self, session: "NotificationServer", subject: str) -> bool:
        """
        Whether C{session} is indexed under C{subject} (for consistency
        checks in tests).
        """
        return session in self._watching.get(subject, ())
