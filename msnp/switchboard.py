# -*- test-case-name: test.test_switchboard -*-
"""
One switchboard (SB) connection, client side: C{USR}/C{ANS}, C{CAL},
C{JOI}/C{IRO}/C{BYE}, C{MSG} and its C{ACK}/C{NAK} (reference sections
6.1-6.5). Message payloads are L{msnp.mime}'s; the long-lived object a user
talks through is L{msnp.conversation.Conversation}.

Every L{Deferred} handed out fires or fails: messages fail with
L{MessageNotDelivered} on C{NAK}, on an acknowledgement timeout, or when the
switchboard goes away first.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msnp.contacts import normalizeEmail
from msnp.errors import ContactOffline, ServerError
from msnp.mime import CHUNK_TIMEOUT, ChunkAssembler, MalformedMime, parseMime
from msnp.protocol import ClientProtocol
from msnp.wire import Command, Direction, decodeParameter

log = Logger()

def splitAddress(text: str) -> tuple[str, Optional[str]]:
    """
    C{"bob@example.com;{guid}"} to C{("bob@example.com", "{guid}")}; the
    address is lower-cased so that it can be compared.
    """
    address, sep, guid = text.partition(";")
    return normalizeEmail(address), (guid or None) if sep else None






class SwitchboardProtocol(ClientProtocol):
    """
    One switchboard connection (client side).

    It authenticates (L{authenticate} or L{answer}), invites (L{call}),
    sends messages and reports what arrives to its C{listener} (a
    L{Conversation}): C{switchboardJoined(protocol, email, guid, name)},
    C{switchboardLeft(protocol, email, guid)}, C{switchboardMessage(protocol,
    email, name, MimeMessage)} and C{switchboardClosed(protocol)}. Lines
    about the user's own address (other endpoints, the self-C{JOI} after
    C{ANS OK}) are dropped here.
    """

    receiving = Direction.FROM_SERVER

    def __init__(
        self,
        account: str,
        machineGuid: str,
        clock: Optional[IReactorTime] = None,
        requestTimeout: Optional[float] = 30.0,
        trace: bool = False,
        chunkTimeout: float = CHUNK_TIMEOUT,
    ) -> None:
        super().__init__(
            clock=clock, requestTimeout=requestTimeout, maxPayloadLength=64 * 1024, trace=trace
        )
        self.account = normalizeEmail(account)
        self.machineGuid = machineGuid
        self.listener: Any = None
        self.sessionId: Optional[str] = None
        self.assembler = ChunkAssembler(self.clock, timeout=chunkTimeout)
        self.closed = False

    def __repr__(self) -> str:
        return f"<SwitchboardProtocol account={self.account!r} session={self.sessionId!r}>"

    @property
    def endpointAddress(self) -> str:
        """
        C{account;{guid}}: how this place names itself on a switchboard, so
        that with MPOP the other places of the account are told apart.
        """
        return f"{self.account};{self.machineGuid}"

    # -- requests -------------------------------------------------------------

    def authenticate(self, authToken: str) -> "Deferred[Command]":
        """
        C{USR trid account;{guid} token}; fires with the C{USR OK} reply.
        """
        return self.sendCommand("USR", self.endpointAddress, authToken)

    def answer(self, authToken: str, sessionId: str) -> "Deferred[Command]":
        """
        C{ANS trid account;{guid} token sessionId}; the C{IRO} lines that
        come first go to the listener; fires with C{ANS trid OK}.
        """
        self.sessionId = sessionId
        return self.sendCommand("ANS", self.endpointAddress, authToken, sessionId, expect=("ANS",))

    def call(self, email: str) -> "Deferred[Optional[str]]":
        """
        Invite C{email}: fires with the session id of C{CAL trid RINGING sid},
        or L{None} on C{215} (already there, harmless).

        @raise ContactOffline: C{217} (offline, hidden or unknown).
        """

        def ringing(reply: Command) -> Optional[str]:
            if reply.arg(0) == "RINGING" and reply.arg(1):
                self.sessionId = reply.arg(1)
            return self.sessionId

        def failed(failure: Failure) -> Optional[str]:
            error = failure.check(ServerError) and failure.value
            if isinstance(error, ServerError):
                if error.code == 217:
                    raise ContactOffline(f"{email} is offline or does not exist")
                if error.code == 215:
                    return None
            failure.raiseException()
            return None  # pragma: no cover

        return self.sendCommand("CAL", email).addCallbacks(ringing, failed)

    def sendMessage(self, mode: str, payload: bytes, timeout: Optional[float] = -1.0) -> "Deferred[Command]":
        """
        C{MSG trid A|D len} waiting for C{ACK} or C{NAK} (the reply is the
        Command; the caller tells them apart).
        """
        return self.sendCommand("MSG", mode, payload=payload, expect=("ACK", "NAK"), timeout=timeout)

    def sendUnacknowledged(self, mode: str, payload: bytes) -> None:
        """
        C{MSG trid U|N len}: nobody waits for a reply.
        """
        self.sendNoReply("MSG", mode, payload=payload)

    def leave(self) -> None:
        """
        C{OUT}, then close our side.
        """
        if self.connected and self.transport is not None:
            self.sendNoReply("OUT", withTrid=False)
            self.transport.loseConnection()

    # -- events -----------------------------------------------------------------

    def _tell(self, event: str, *args: Any) -> None:
        method = getattr(self.listener, event, None)
        if method is not None:
            method(self, *args)

    def _participant(self, command: Command, first: int) -> None:
        address = command.arg(first)
        if not address:
            return
        email, guid = splitAddress(address)
        if email == self.account:
            return
        name = decodeParameter(command.arg(first + 1, email))
        self._tell("switchboardJoined", email, guid, name)

    def handle_JOI(self, command: Command) -> None:
        self._participant(command, 0)

    def handle_IRO(self, command: Command) -> None:
        # IRO trid index total address name caps
        self._participant(command, 2)

    def handle_BYE(self, command: Command) -> None:
        address = command.arg(0)
        if not address:
            return
        email, guid = splitAddress(address)
        if email == self.account:
            return
        self._tell("switchboardLeft", email, guid)

    def handle_MSG(self, command: Command) -> None:
        sender, _ = splitAddress(command.arg(0))
        if not sender or command.payload is None:
            return
        if sender == self.account:
            log.debug("Ignoring a message from another place of ours")
            return
        name = decodeParameter(command.arg(1, sender))
        try:
            mime = parseMime(command.payload)
        except MalformedMime as e:
            log.info("Ignoring a message from {sender}: {error}", sender=sender, error=str(e))
            return
        whole = self.assembler.feed(sender, mime)
        if whole is not None:
            self._tell("switchboardMessage", sender, name, whole)

    def handle_OUT(self, command: Command) -> None:
        # The server is closing this switchboard (shutdown, idle).
        log.info("Switchboard closed by the server: {reason}", reason=command.arg(0, "-"))
        if self.transport is not None:
            self.transport.loseConnection()

    def handle_ACK(self, command: Command) -> None:
        log.debug("Late or unexpected ACK {trid}", trid=command.trid)

    def handle_NAK(self, command: Command) -> None:
        log.debug("Late or unexpected NAK {trid}", trid=command.trid)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self.connected = False
        self.assembler.clear()
        # The listener hears of the close before the pending acknowledgements
        # fail, so that a message sent from their errbacks goes to a new
        # switchboard instead of this dead one.
        self._tell("switchboardClosed")
        ClientProtocol.connectionLost(self, reason)


