"""
What the login puts on the wire, end to end over loopback: the order of
the NS commands after authentication, and the dispatch connection closed
once it has said C{XFR NS}.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from test.support import WAIT, asyncTest, pollUntil, signIn, startLocalNetwork

ALICE, BOB = "alice@example.com", "bob@example.com"


class LoginWireTests(TestCase):
    """
    alice and bob, mutual contacts, on a network with a separate dispatch
    server.
    """

    timeout = 30

    async def network(self) -> Any:
        return await startLocalNetwork(
            self, [(ALICE, "pw-a", "Alice"), (BOB, "pw-b", "Bob")], mutualContacts=[(ALICE, BOB)]
        )

    @asyncTest
    async def test_loginCommandOrder(self) -> None:
        """
        After C{USR SSO S} succeeds the client sends C{BLP} before the first
        C{ADL}, every C{ADL} before the profile (C{PRP}, C{UUX}), and
        C{CHG} last.
        """
        _, endpoints = await self.network()
        sent: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_format") == ">>> {line}":
                sent.append(str(event["line"]).split(" ", 1)[0])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        await signIn(self, ALICE, "pw-a", endpoints, trace=True)
        globalLogPublisher.removeObserver(observe)
        last = len(sent) - 1 - sent[::-1].index("USR")
        after = [name for name in sent[last + 1 :] if name not in ("PNG", "QRY")]
        self.assertEqual(after[0], "BLP")
        adls = [i for i, name in enumerate(after) if name == "ADL"]
        self.assertTrue(adls)
        profile = [i for i, name in enumerate(after) if name in ("PRP", "UUX")]
        self.assertTrue(profile)
        self.assertLess(max(adls), min(profile))
        self.assertEqual(after[-1], "CHG")
        self.assertEqual(after.count("CHG"), 1)

    @asyncTest
    async def test_dispatchClosedAfterRedirect(self) -> None:
        """
        The dispatch connection that answered C{XFR NS} is closed: once
        alice is signed in, the dispatch server has no connection left.
        """
        network, endpoints = await self.network()
        dispatchFactory = network._factories[1]
        await signIn(self, ALICE, "pw-a", endpoints)
        self.assertTrue(await pollUntil(lambda: not dispatchFactory.connections(), WAIT))
        self.assertEqual(len(network.onlineSessions(ALICE)), 1)

    @asyncTest
    async def test_refusedTicketAfterTheDownloadsStarted(self) -> None:
        """
        The contact list is requested along with C{USR SSO S}; when the NS
        refuses the login (a wrong MBI response here: C{911}) the login
        still fails with L{AuthenticationError}, at C{USR OK}, and leaves
        no HTTP pool, connection or timer behind.
        """
        from twisted.internet import reactor

        import msnp.client
        from msnp import MSNClient
        from msnp.errors import AuthenticationError
        from msnp.httpclient import _shared

        _, endpoints = await self.network()
        self.patch(msnp.client, "mbiResponse", lambda secret, nonce: "AAAA")
        steps: list[str] = []

        class Steps:
            def loginStep(self, client: Any, step: str, elapsed: float) -> None:
                steps.append(step)

        client = MSNClient(ALICE, "pw-a", endpoints, observer=Steps())
        with self.assertRaises(AuthenticationError):
            await client.login()
        self.assertIn("SSO", steps)
        self.assertNotIn("USR OK", steps)
        self.assertTrue(await pollUntil(lambda: (id(reactor), None) not in _shared, WAIT))
