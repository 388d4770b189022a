# -*- test-case-name: test.test_server_limits -*-
"""
The resource limits of the local network, in one typed object.

msnp-server is meant to be reachable from the internet by a few friends, so
every quantity a peer can make the server hold (buffered bytes, open
connections, tokens, invitations, list entries, log lines, guesses) has a
cap here. Each default is chosen so that no legitimate client of the time
comes near it, and so that a hostile one cannot grow the server by more
than a bounded amount per connection or per account. C{docs/limits.md}
lists each limit with its rule.

L{ServerLimits} is frozen: pass one to L{msnp.server.network.LocalNetwork}
(C{limits=}) or use the C{twistd msnp-server} options, and use
L{dataclasses.replace} to change a few fields of the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ServerLimits:
    """
    Every limit the servers enforce. Times are seconds on the network's
    clock; sizes are bytes.

    @ivar preLoginPayload: the largest payload accepted on a DS/NS
        connection before C{USR OK} and on a switchboard connection before
        C{USR}/C{ANS} (no login command carries a payload at all).
    @ivar usedTicketMemory: how many presented NS tickets are remembered
        (to refuse a reuse); only tickets of real grants count, and each is
        forgotten once its grant has expired anyway.
    @ivar writeHighWater: bytes a connection may have queued beyond the
        transport's own buffer while its peer does not read; more closes
        the connection (the switchboard refuses a message with C{NAK}
        instead, see L{switchboardQueue}).
    @ivar switchboardQueue: bytes queued towards a switchboard member that
        does not read, beyond which a message for it is refused with
        C{NAK} rather than acknowledged.
    @ivar loginTimeout: seconds from connecting to C{USR OK} (NS), to the
        redirect (DS) or to C{USR}/C{ANS} (SB).
    @ivar idleTimeout: seconds without any command (C{PNG} counts) before
        a signed-in NS connection is closed; clients ping every 50.
    @ivar switchboardIdleTimeout: the same for a joined switchboard
        connection.
    @ivar connectionsPerAddress: open connections one peer address may
        hold to the network, all servers together (DS, NS, SB, HTTP).
    @ivar logArgument: characters of a peer-supplied value kept in a log
        line; the rest is summarised as a length.
    @ivar ignoredLinesLogged: ignored lines logged per connection; the
        later ones are only counted.
    @ivar requestBody: the largest HTTP request body, enforced from the
        C{Content-Length} header and while a chunked body arrives.
    @ivar xfrTokensPerAccount: outstanding C{XFR SB} tokens per account;
        a new one retires the oldest.
    @ivar invitationsPerAccount: outstanding C{RNG} invitations an
        account's switchboard connections may have sent; more C{CAL}s get
        C{800}.
    @ivar membershipsPerAccount: entries per role list (Allow, Block, ...)
        an account may hold through the sharing service.
    @ivar contactsPerAccount: address-book contacts per account.
    @ivar annotationsPerContact: annotations kept per contact or profile.
    @ivar groupsPerAccount: address-book groups per account.
    @ivar signInFreeFailures: failed password checks per account (and per
        address) answered at once within L{signInWindow}.
    @ivar signInDelay: seconds the answer to each further attempt is held
        back, doubling per failure up to L{signInMaxDelay}.
    @ivar signInMaxDelay: the longest hold-back.
    @ivar signInWindow: seconds after which failures are forgotten.
    @ivar logRotateLength: bytes after which C{twistd msnp-server}'s own
        log file is rotated.
    @ivar logMaxRotatedFiles: rotated log files kept.
    """

    preLoginPayload: int = 4 * 1024
    usedTicketMemory: int = 100_000
    writeHighWater: int = 256 * 1024
    switchboardQueue: int = 64 * 1024
    loginTimeout: float = 120.0
    idleTimeout: float = 300.0
    switchboardIdleTimeout: float = 600.0
    connectionsPerAddress: int = 128
    logArgument: int = 64
    ignoredLinesLogged: int = 20
    requestBody: int = 1024 * 1024
    xfrTokensPerAccount: int = 32
    invitationsPerAccount: int = 64
    membershipsPerAccount: int = 2_000
    contactsPerAccount: int = 2_000
    annotationsPerContact: int = 32
    groupsPerAccount: int = 200
    signInFreeFailures: int = 5
    signInDelay: float = 1.0
    signInMaxDelay: float = 30.0
    signInWindow: float = 900.0
    logRotateLength: int = 10 * 1024 * 1024
    logMaxRotatedFiles: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if value <= 0:
                raise ValueError(f"ServerLimits.{f.name} must be positive, not {value!r}")


#: The limits used when none are given.
DEFAULT_LIMITS = ServerLimits()


def summarise(text: str, limit: int = DEFAULT_LIMITS.logArgument) -> str:
    """
    C{text} as it may appear in a log: at most C{limit} characters, the
    rest replaced by its length, control characters escaped, so a peer
    cannot make the log grow faster than the number of lines it sends.
    """
    shown = text[:limit].encode("unicode_escape", "replace").decode("ascii", "replace")[: limit * 2]
    if len(text) > limit:
        return f"{shown}...(+{len(text) - limit} chars)"
    return shown
