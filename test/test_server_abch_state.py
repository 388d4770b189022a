"""
Tests that the ABCH services' own per-account state (Me contact id,
annotations, cache key) lives in the L{AccountStore}, not in one
L{ABCHResource}: a resource built anew over the same store answers alike.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from msnp.server.abch import ABCHResource
from test.support import ServerHarness, stubTreq


class StateOutlivesResourceTests(SynchronousTestCase):
    """
    The ABCH-only state survives replacing the resource.
    """

    def _remount(self, net: ServerHarness) -> None:
        net.abch = ABCHResource(net.store, net.clock, onChange=net.changed)
        net.treq = stubTreq(b"abservice", net.abch)

    def _read(self, net: ServerHarness) -> Any:
        sharing, book = net.clients()
        d = book.findContactsPaged()
        net.treq.flush()
        result = self.successResultOf(d)
        return result, book.cacheKey

    def test_meContactAnnotationsAndCacheKeyKept(self) -> None:
        """
        After an annotation change through one resource, a second resource
        over the same store answers with the same Me contact id, the changed
        annotation and the same cache key.
        """
        net = ServerHarness()
        sharing, book = net.clients()
        d = book.contactUpdateMe({"MSN.IM.MPOP": "0"})
        net.treq.flush()
        self.successResultOf(d)
        before, keyBefore = self._read(net)
        self._remount(net)
        after, keyAfter = self._read(net)
        self.assertIsNotNone(before.me)
        self.assertEqual(after.me.contactId, before.me.contactId)
        self.assertEqual(after.me.annotations["MSN.IM.MPOP"], "0")
        self.assertIsNotNone(keyBefore)
        self.assertEqual(keyAfter, keyBefore)
        state = net.store.get("alice@example.com").addressBookState
        self.assertEqual(state.meContactId, after.me.contactId)

    def test_stateNotInRepr(self) -> None:
        """
        The account's repr stays short: the ABCH state (with its cache key)
        is not part of it.
        """
        net = ServerHarness()
        self._read(net)
        alice = net.store.get("alice@example.com")
        self.assertNotIn(alice.addressBookState.cacheKey, repr(alice))
