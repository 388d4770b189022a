"""
C{python -m msnp probe} against the local network, over real sockets and
real HTTP (the CI runs it against C{twistd msnp-server} too: .ci/run).
"""

from __future__ import annotations

import ast
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock

from msnp.probe import Probe, ProbeOptions, readPassword
from msnp.server.network import LocalNetwork

from test.support import GUID_B, LimitsTestCase, httpClient


class ProbeTests(LimitsTestCase):
    """
    The probe reports what the local network does.
    """

    async def startWith(self, **options: Any) -> LocalNetwork:
        self.timers = Clock()
        self.network = LocalNetwork(reactor=reactor, timeoutClock=self.timers, **options)
        self.raws = []
        self.addCleanup(self._stop)
        self.endpoints = await self.network.start()
        for name in ("alice", "bob"):
            self.network.addAccount(f"{name}@example.com", "pw", name.capitalize())
        return self.network

    async def probe(self, password: str = "pw") -> dict[str, str]:
        report = await Probe(reactor, self.endpoints.dispatch, self.endpoints.sso, "alice@example.com", password,
                             timeout=5, http=httpClient()).run()
        self.report = report
        return dict(report.lines)

    async def test_localNetwork(self) -> None:
        """
        Against a LocalNetwork without redirect, sending challenges, with a
        contact online: no redirect, USR OK, a CHL answered, the contact's
        presence (NLN, as the local network sends it), URL and CAL self
        answered, ack modes of a message nobody receives, unknown commands
        ignored.
        """
        await self.startWith(redirect=False, sendChallenge=True)
        self.network.store.addContact("alice@example.com", "bob@example.com", mutual=True)
        await self.signIn("bob@example.com", GUID_B)
        found = await self.probe()
        self.assertTrue(self.report.signedIn, found)
        self.assertTrue(found["redirect"].startswith("no"), found)
        self.assertEqual(found["sign-in"], "USR OK")
        self.assertEqual(found["challenge"], "CHL sent; QRY answered")
        self.assertEqual(found["presence"], "NLN (1 lines)")
        self.assertEqual(found["URL"], "/cgi-bin/HoTMaiL 2")
        self.assertTrue(found["CAL self"].startswith("CAL RINGING"), found)
        self.assertEqual(found["ack modes, alone"], "U=none N=NAK A=NAK D=NAK")
        self.assertEqual(found["unknown command"], "nothing (silence or closed)")
        self.assertNotIn("stopped", found)

    async def test_redirect(self) -> None:
        """
        With the dispatch server in front, the redirect is reported and
        the probe follows it; without challenges none is reported.
        """
        await self.startWith(redirect=True, sendChallenge=False)
        found = await self.probe()
        self.assertTrue(self.report.signedIn, found)
        self.assertEqual(found["redirect"], f"yes: XFR NS to {self.network.notificationAddress}")
        self.assertEqual(found["challenge"], "no CHL after sign-in")
        self.assertEqual(found["presence"], "no contact online at sign-in")

    async def test_badPassword(self) -> None:
        """
        A refused sign-in is reported and ends the run; the password is
        not in the report.
        """
        await self.start()
        found = await self.probe("wrong-secret")
        self.assertFalse(self.report.signedIn)
        self.assertIn("SSO refused", found["stopped"])
        self.assertNotIn("wrong-secret", self.report.render())

    def test_options(self) -> None:
        """
        The dispatch address is positional, --sso and --account required;
        the password comes from the environment, never argv.
        """
        options = ProbeOptions()
        options.parseOptions(["tcp:127.0.0.1:1863", "--sso", "http://127.0.0.1/RST2.srf", "--account", "a@b.c"])
        self.assertEqual(options["dispatch"], "tcp:127.0.0.1:1863")
        self.assertEqual(readPassword({"MSNP_PROBE_PASSWORD": "pw"}), "pw")
        from twisted.python import usage

        self.assertRaises(usage.UsageError, ProbeOptions().parseOptions, ["tcp:127.0.0.1:1"])

    def test_noServerImport(self) -> None:
        """
        The probe is client code: it imports nothing of msnp.server.
        """
        path = os.path.join(os.path.dirname(__file__), "..", "msnp", "probe.py")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        self.assertFalse([n for n in names if n.startswith("msnp.server")])
