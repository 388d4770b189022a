# -*- test-case-name: test.test_server_abch_delta -*-
"""
Delta answers of the local ABCH (C{FindMembership} with C{deltasOnly},
C{ABFindContactsPaged} with C{DeltasOnly}): only what changed since the
C{lastChange} the client got from an earlier answer, deleted items marked
deleted, as the real service answered (reference sections 3.3, 3.4 and
8.3; C{docs/performance.md}, "Delta sync").

How: every answer of either service is remembered as a snapshot, one
XML fragment per item (a member of a role, a contact, a group) keyed by
the item's identity, under the C{lastChange} stamp the answer carried. A
delta request names such a stamp; the answer is the difference between
that snapshot and the current items: the new and changed ones as they are
now, and the vanished ones as they were, flagged deleted. The store is not
involved: the snapshots live in memory, a few per account and service
(unchanged items shared between them), so
a stamp the journal no longer holds (too old, or issued before the
network restarted) is refused with the C{FullSyncRequired} fault the real
service sent, and the client does a full sync instead.

A stamp names exactly one state: when an answer finds the items changed
since the snapshot of the current stamp (a change that did not move the
account's C{lastChange}, such as a list command on the NS), the stamp is
moved forward first. So a client applying a delta to what it got with
that stamp ends with exactly the current items.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional
from xml.etree.ElementTree import Element

from msnp.server.soapservice import ServiceFault, isTrue
from msnp.xmlsafe import localName

#: Written into the fragments where the answer's stamp goes; it cannot
#: come from any escaped text (a literal C{<} is always escaped).
STAMP = "<stamp/>"

#: The snapshots kept per account and service; an older stamp is refused.
KEEP = 8

def fullSyncRequired() -> ServiceFault:
    """
    The fault of a refused delta request: the real service's
    C{FullSyncRequired}, with HTTP 200 as it came (reference section 10.3).
    """
    return ServiceFault(
        "FullSyncRequired",
        "Need to do full sync. Can't sync deltas Reason: the change history does not reach that far back.",
        200,
        "soap:Client",
    )


class DeltaJournal:
    """
    The snapshots of the answers of one service, per account.
    """

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._snapshots: dict[str, OrderedDict[str, dict[str, str]]] = {}

    def record(self, account: str, stamp: str, items: dict[str, str], moveStamp: Callable[[], str]) -> str:
        """
        Remember C{items} as what C{stamp} stands for and return the stamp
        the answer must carry: C{stamp} itself, or a new one from
        C{moveStamp} when C{stamp} already names different items.
        """
        snapshots = self._snapshots.setdefault(account, OrderedDict())
        known = snapshots.get(stamp)
        if known is not None and known != items:
            stamp = moveStamp()
            known = snapshots.get(stamp)
        if known is None:
            # Unchanged items share the previous snapshot's strings, so a
            # snapshot costs memory for what changed only.
            latest = next(reversed(snapshots.values()), None) if snapshots else None
            if latest is None:
                snapshots[stamp] = dict(items)
            else:
                snapshots[stamp] = {
                    key: previous if (previous := latest.get(key)) == xml else xml for key, xml in items.items()
                }
            while len(snapshots) > self.keep:
                snapshots.popitem(last=False)
        return stamp

    def since(self, account: str, stamp: str) -> Optional[dict[str, str]]:
        """
        The items C{stamp} stood for, or L{None} when the journal does not
        hold it (a delta request must then be refused).
        """
        snapshots = self._snapshots.get(account)
        return None if snapshots is None else snapshots.get(stamp.strip())

    def forget(self, account: str) -> None:
        """
        Drop every snapshot of C{account} (its next delta request is refused).
        """
        self._snapshots.pop(account, None)


def difference(old: dict[str, str], new: dict[str, str], deleted: Callable[[str], str]) -> dict[str, str]:
    """
    The delta from C{old} to C{new}: every item of C{new} that C{old}
    lacks or had otherwise, and every item of C{old} that C{new} lacks,
    turned into its deleted form by C{deleted}; in C{new}'s order, the
    deleted ones last.
    """
    changed = {key: xml for key, xml in new.items() if old.get(key) != xml}
    for key, xml in old.items():
        if key not in new:
            changed[key] = deleted(xml)
    return changed


def deltaRequest(method: Element, flag: str, since: str) -> Optional[str]:
    """
    The C{lastChange} a request asks deltas since, or L{None} for a full
    answer: C{flag} (C{deltasOnly}, any case, anywhere in the request) is
    C{true} and C{since} names a stamp. A delta request without a stamp
    is a full request, as a client's first sync is.
    """
    wantsDeltas = False
    stamp = ""
    flag, since = flag.lower(), since.lower()
    for element in method.iter():
        name = localName(element.tag).lower()
        if name == flag:
            wantsDeltas = isTrue(element.text or "")
        elif name == since:
            stamp = (element.text or "").strip()
    if not wantsDeltas or not stamp or stamp.startswith("0001-01-01"):
        return None
    return stamp


def answerItems(
    journal: DeltaJournal,
    email: str,
    since: Optional[str],
    lastChange: str,
    items: dict[str, str],
    moveLastChange: Callable[[], str],
    deletedFlag: str,
) -> tuple[dict[str, str], str, bool]:
    """
    The items one answer carries, its stamp, and whether it is a delta:
    every item for a full request; for a delta request (C{since}) only what
    changed since then, removed items marked C{<deletedFlag>true} (the
    address book says C{fDeleted}, the sharing service C{Deleted}). The
    same for both services, so they answer deltas alike.

    @raise ServiceFault: C{FullSyncRequired}, when the journal no longer
        holds C{since}.
    """
    old = None
    if since is not None:
        old = journal.since(email, since)
        if old is None:
            raise fullSyncRequired()
    stamp = journal.record(email, lastChange, items, moveLastChange)
    if old is None:
        return items, stamp, False
    live, gone = f"<{deletedFlag}>false</{deletedFlag}>", f"<{deletedFlag}>true</{deletedFlag}>"
    return difference(old, items, lambda xml: xml.replace(live, gone, 1)), stamp, True
