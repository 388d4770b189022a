"""
The local ABCH's delta journal (L{msnp.server.abchdelta}).
"""

from __future__ import annotations

from xml.etree.ElementTree import fromstring

from twisted.trial.unittest import SynchronousTestCase

from msnp.server.abchdelta import DeltaJournal, deltaRequest, difference


class JournalTests(SynchronousTestCase):
    def test_stampNamesOneState(self) -> None:
        """
        A stamp whose snapshot holds other items is moved forward before
        the new items are recorded; the same items keep the stamp.
        """
        journal = DeltaJournal()
        moved = []
        self.assertEqual(journal.record("a", "s1", {"x": "1"}, lambda: moved.append(1) or "s2"), "s1")
        self.assertEqual(journal.record("a", "s1", {"x": "1"}, lambda: "never"), "s1")
        self.assertEqual(journal.record("a", "s1", {"x": "2"}, lambda: "s2"), "s2")
        self.assertEqual(journal.since("a", "s1"), {"x": "1"})
        self.assertEqual(journal.since("a", "s2"), {"x": "2"})
        self.assertEqual(moved, [])

    def test_oldStampsForgotten(self) -> None:
        """
        Only the last C{keep} stamps are held; older ones and forgotten
        accounts give L{None} (the request is refused).
        """
        journal = DeltaJournal(keep=2)
        for n in range(3):
            journal.record("a", f"s{n}", {"x": str(n)}, lambda: "never")
        self.assertIsNone(journal.since("a", "s0"))
        self.assertEqual(journal.since("a", "s2"), {"x": "2"})
        journal.forget("a")
        self.assertIsNone(journal.since("a", "s2"))

    def test_difference(self) -> None:
        """
        Changed and new items as they are now, vanished ones in their
        deleted form, deleted last.
        """
        got = difference({"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "4", "d": "5"}, lambda xml: "gone " + xml)
        self.assertEqual(list(got.items()), [("c", "4"), ("d", "5"), ("a", "gone 1")])

    def test_deltaRequest(self) -> None:
        """
        A request asks deltas only with the flag true and a real stamp.
        """
        def parse(text: str) -> object:
            return deltaRequest(fromstring(text), "DeltasOnly", "LastChanged")

        self.assertEqual(parse("<m><f><DeltasOnly>true</DeltasOnly><LastChanged>s1</LastChanged></f></m>"), "s1")
        self.assertIsNone(parse("<m><DeltasOnly>false</DeltasOnly><LastChanged>s1</LastChanged></m>"))
        self.assertIsNone(parse("<m><DeltasOnly>true</DeltasOnly><LastChanged>0001-01-01T00:00:00</LastChanged></m>"))
        self.assertIsNone(parse("<m><DeltasOnly>true</DeltasOnly></m>"))
