"""
Property tests: hostile byte streams fed to the real DS, NS and SB
protocols, client and server side.

The generators and the per-stream checks are those of the standalone fuzz
driver (C{test/fuzzstreams.py}; C{bench/fuzz_wire.py} runs a million streams); here
hypothesis drives a bounded number of them on every test run, so a
regression in any protocol's handlers is caught by the suite itself.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from test import fuzzstreams as fuzz


TARGETS = fuzz.targets()
NAMES = {target.name for target in TARGETS}


class HostileStreamTests(SynchronousTestCase):
    """
    No stream, however mangled or chunked, makes a protocol misbehave.
    """

    def test_allProtocolsPresent(self) -> None:
        """
        The property below really covers the client DS/NS/SB protocols and
        the three servers, not only the shared base class.
        """
        for name in (
            "PreambleProtocol",
            "NotificationProtocol",
            "SwitchboardProtocol",
            "server DispatchServer",
            "server NotificationServer",
            "server SwitchboardServer",
        ):
            self.assertIn(name, NAMES)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
    )
    @given(seed=st.integers(min_value=0, max_value=2**32 - 1))
    def test_noMisbehaviour(self, seed: int) -> None:
        """
        For every protocol, a mutated realistic stream (flipped and dropped
        bytes, truncations, huge lengths up to 2**63, lines without an end,
        invalid UTF-8, bad percent-encoding) fed in random chunks with
        requests pending: no exception escapes C{dataReceived}, buffers stay
        within the limits, and every pending request ends once the
        connection is lost.
        """
        tally = fuzz.LogTally()
        globalLogPublisher.addObserver(tally)
        try:
            rng = random.Random(seed)
            for target in TARGETS:
                outcome: Any
                outcome, detail = fuzz.runOne(rng, target, tally)
                self.assertNotEqual(outcome, "misbehaved", f"{target.name}: {detail} (seed {seed})")
            self.assertEqual(sum(tally.handlerErrors.values()), 0, dict(tally.handlerErrors))
        finally:
            globalLogPublisher.removeObserver(tally)
