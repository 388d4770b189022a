"""
A typed echo bot: checked with C{mypy --strict} against msnp's public API
(C{.ci/run} and C{test/test_examples.py} do), so the names and types a bot
relies on stay what the README says.

Run it against a network, e.g. C{twistd -n msnp-server} on this machine::

    MSNP_PASSWORD=... python examples/echo_bot.py bot@example.com
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from msnp import (
    Contact,
    Conversation,
    DeliveryResult,
    Endpoints,
    MSNClient,
    ObserverBase,
    OfflineMessage,
    Session,
    Status,
    TextMessage,
)


class EchoBot(ObserverBase):
    """
    Answers every message with its text, and says who came online.
    """

    def signedIn(self, session: Session) -> None:
        print(f"online as {session.account} with {len(session.contacts)} contacts")

    def contactStatusChanged(self, session: Session, contact: Contact, status: Status) -> None:
        print(f"{contact.email} is now {status.name.lower()}")

    def offlineMessageReceived(self, session: Session, message: OfflineMessage) -> None:
        print(f"offline message from {message.sender} (sent {message.sent}): {message.text}")

    def messageReceived(self, session: Session, conversation: Conversation, message: TextMessage) -> None:
        sent: Deferred[DeliveryResult] = conversation.sendText(f"you said: {message.text}")
        sent.addErrback(lambda failure: print("not delivered:", failure.getErrorMessage()))


async def main(reactor: object, account: str, password: str) -> None:
    endpoints = Endpoints(
        dispatch="tcp:127.0.0.1:1863",
        sso="http://127.0.0.1:8080/RST2.srf",
        sharing="http://127.0.0.1:8080/abservice/SharingService.asmx",
        addressBook="http://127.0.0.1:8080/abservice/abservice.asmx",
    )
    client = MSNClient(account, password, endpoints, observer=EchoBot(), reactor=reactor)
    session: Session = await client.login()
    conversations: list[Conversation] = session.conversations
    print(f"{len(conversations)} conversations open")
    reason: Optional[str] = await session.whenEnded()
    print("signed out:", reason)


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, sys.argv[1], os.environ["MSNP_PASSWORD"])))
