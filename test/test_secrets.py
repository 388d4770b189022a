"""
Secrets never leak: a real sign-in with C{trace=True} against a
L{LocalNetwork} on loopback, with every log event of the process captured
(client and servers alike) and the C{repr} of every object a user or a bug
report could print, searched for the password, the tickets, the proof key
and the MBI response.

The secrets themselves are caught on their way through the library (spies
on L{msnp.sso.parseSSOResponse} and the client's C{mbiResponse}) and read
back from the network's ticket grants, so the test knows exactly what to
look for; it also checks that the capture really saw the login, so it
cannot pass by capturing nothing.
"""

from __future__ import annotations

from typing import Any, Optional, cast
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

import msnp.client
import msnp.protocol
import msnp.sso
from msnp.client import MSNClient
from msnp.errors import AuthenticationError
from msnp.server.network import LocalNetwork
from msnp.wire import Command
from msnp.xmlsafe import escapeText

from test.support import WAIT, EventRecorder, startLocalNetwork

ALICE = "alice@example.com"
BOB = "bob@example.com"
#: Distinctive, and no longer than the 16 characters Passport accepts.
PASSWORD = "Pw-7f3K9zQ!x2Lm"
WRONG_PASSWORD = "Wr0ng-Pa55-Vq8J"


class Everything:
    """
    Collects every log event and every object repr of one test run.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.commands: list[Command] = []
        self.observers: list[EventRecorder] = []
        self.objects: list[Any] = []

    def logEvent(self, event: dict[str, Any]) -> None:
        self.events.append(dict(event))

    def texts(self) -> list[str]:
        """
        Everything rendered as text: each event formatted, each value of
        each event repr'd (and a failure's traceback), each command and
        observer event repr'd, each object repr'd and str'd.
        """
        found: list[str] = []
        for event in self.events:
            found.append(formatEvent(event))
            for key, value in event.items():
                found.append(f"{key}={value!r}")
                if isinstance(value, Failure):
                    found.append(value.getTraceback())
        found += [repr(c) for c in self.commands]
        found += [repr(c.describe()) for c in self.commands]
        found += [repr(e) for observer in self.observers for e in observer.events]
        for obj in self.objects:
            found.append(repr(obj))
            found.append(str(obj))
        return found


def needlesFor(secret: str) -> set[str]:
    """
    The forms a secret could take in text: itself, XML-escaped,
    percent-encoded, and each long part of a C{t=...&p=...} ticket.
    """
    needles = {secret, escapeText(secret), quote(secret, safe="")}
    for part in secret.split("&"):
        value = part.split("=", 1)[-1]
        if len(value) >= 12:
            needles.add(value)
    return {n for n in needles if n}


class SecretsTests(TestCase):
    """
    No secret in any log event or repr, for a good and a failed login.
    """

    def setUp(self) -> "Any":
        self.everything = Everything()
        observer = cast(ILogObserver, self.everything.logEvent)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        self.tokens: list[Any] = []
        self.mbiResponses: list[str] = []
        realParse = msnp.sso.parseSSOResponse
        realMBI = msnp.client.mbiResponse

        def parseSpy(body: bytes) -> Any:
            result = realParse(body)
            self.tokens.append(result)
            return result

        def mbiSpy(secret: str, nonce: str, iv: Optional[bytes] = None) -> str:
            response = realMBI(secret, nonce, iv)
            self.mbiResponses.append(response)
            return response

        self.patch(msnp.sso, "parseSSOResponse", parseSpy)
        self.patch(msnp.client, "mbiResponse", mbiSpy)

        realDispatch = msnp.protocol.MSNPProtocol._dispatch
        realWrite = msnp.protocol.MSNPProtocol._writeCommand
        commands = self.everything.commands

        def dispatchSpy(protocol: Any, command: Command) -> None:
            commands.append(command)
            realDispatch(protocol, command)

        def writeSpy(protocol: Any, command: Command, data: bytes) -> None:
            commands.append(command)
            realWrite(protocol, command, data)

        self.patch(msnp.protocol.MSNPProtocol, "_dispatch", dispatchSpy)
        self.patch(msnp.protocol.MSNPProtocol, "_writeCommand", writeSpy)

        started = startLocalNetwork(
            self, [(ALICE, PASSWORD, "Alice"), (BOB, "bob-password", "Bob")], [(ALICE, BOB)], reactor=reactor
        )
        return ensureDeferred(started).addCallback(self._started)

    def _started(self, started: tuple[LocalNetwork, Any]) -> None:
        self.network, self.endpoints = started

    def client(self, password: str) -> MSNClient:
        observer = EventRecorder("alice")
        self.everything.observers.append(observer)
        client = MSNClient(
            ALICE, password, self.endpoints, observer=observer, reactor=reactor,
            loginTimeout=WAIT, requestTimeout=WAIT, trace=True,
        )
        self.everything.objects.append(client)
        return client

    def secretsOfLogin(self) -> dict[str, str]:
        """
        Every secret the login handled, by name, as the spies and the
        network's grant record saw them.
        """
        secrets: dict[str, str] = {}
        for index, result in enumerate(self.tokens):
            for address, token in result.tokens.items():
                secrets[f"ticket {address} #{index}"] = token.ticket
                if token.binarySecret:
                    secrets[f"BinarySecret {address} #{index}"] = token.binarySecret
            grant = self.network.store.grantForTicket(result.messengerTicket)
            self.assertIsNotNone(grant, "the network has no grant for the ticket the client got")
            assert grant is not None
            secrets[f"grant clear ticket #{index}"] = grant.clearTicket
            secrets[f"grant BinarySecret #{index}"] = grant.binarySecret
            secrets[f"grant contacts ticket #{index}"] = grant.contactsTicket
            secrets[f"grant web ticket #{index}"] = grant.webTicket
        for index, response in enumerate(self.mbiResponses):
            secrets[f"MBI response #{index}"] = response
        return secrets

    def assertNothingLeaks(self, secrets: dict[str, str]) -> None:
        texts = self.everything.texts()
        # The capture must have seen the login, or finding nothing proves nothing.
        joined = "\n".join(texts)
        self.assertIn(ALICE, joined)
        self.assertIn(">>> VER", joined)
        self.assertIn("<<< VER", joined)
        self.assertIn("USR", joined)
        for name, secret in secrets.items():
            self.assertTrue(len(secret) >= 8, f"{name} is too short to search for: {secret!r}")
            for needle in needlesFor(secret):
                for text in texts:
                    if needle in text:
                        self.fail(f"{name} leaked into: {text[:300]!r}")

    async def _goodLogin(self) -> None:
        client = self.client(PASSWORD)
        session = await client.login()
        self.addCleanup(session.logout)
        self.assertEqual(len(self.tokens), 1)
        self.assertEqual(len(self.mbiResponses), 1)
        result = self.tokens[0]
        self.everything.objects += [
            session, session.contacts, session.profile, session.state, session.protocol,
            session.roster, session.conversationManager, result, list(result.tokens.values()),
            self.network, self.network.store.grantForTicket(result.messengerTicket),
        ]
        self.everything.objects += list(session.contacts)
        self.everything.objects += self.network.onlineSessions(ALICE)
        await session.logout()
        secrets = self.secretsOfLogin()
        secrets["password"] = PASSWORD
        self.assertIn("MBI response #0", secrets)
        self.assertIn("ticket messengerclear.live.com #0", secrets)
        self.assertIn("ticket contacts.msn.com #0", secrets)
        self.assertIn("BinarySecret messengerclear.live.com #0", secrets)
        self.assertNothingLeaks(secrets)

    def test_goodLogin(self) -> "Any":
        """
        After a complete traced sign-in and sign-out, neither the password,
        nor any ticket, nor the BinarySecret, nor the MBI response appears
        in any log event (formatted or as a value repr), observer event,
        command repr, or the repr/str of the client, session, contacts,
        SSO result, network or grant.
        """
        return ensureDeferred(self._goodLogin())

    async def _failedLogin(self) -> None:
        client = self.client(WRONG_PASSWORD)
        d = client.login()
        error = await self.assertFailure(d, AuthenticationError)
        self.everything.objects += [error, Failure(error)]
        self.assertEqual(self.tokens, [])
        self.assertEqual(self.mbiResponses, [])
        self.assertNothingLeaks({"wrong password": WRONG_PASSWORD, "password": PASSWORD})

    def test_failedLogin(self) -> "Any":
        """
        A sign-in with the wrong password fails with
        L{AuthenticationError}, and neither the password tried nor the real
        one appears in any log event, repr, or the error itself.
        """
        return ensureDeferred(self._failedLogin())

    def test_needles(self) -> None:
        """
        The search covers a ticket's escaped and encoded forms and its
        parts, so a log that XML-escaped a ticket would still be caught.
        """
        needles = needlesFor("t=abcdefghijklmnop&p=qrstuvwxyz0123456")
        self.assertIn("t=abcdefghijklmnop&amp;p=qrstuvwxyz0123456", needles)
        self.assertIn("t%3Dabcdefghijklmnop%26p%3Dqrstuvwxyz0123456", needles)
        self.assertIn("abcdefghijklmnop", needles)
        self.assertIn("qrstuvwxyz0123456", needles)

    def test_detectsALeak(self) -> None:
        """
        The checker fails when a secret does appear in a log event: the
        test can fail.
        """
        self.everything.events.append(
            {"log_format": "oops {t}", "t": "t=abcdefghijklmnop&p=q", "log_namespace": "x"}
        )
        self.everything.events.append({"log_format": ">>> VER <<< VER USR " + ALICE})
        self.assertRaises(
            self.failureException, self.assertNothingLeaks, {"ticket": "t=abcdefghijklmnop&p=q"}
        )
