# -*- test-case-name: test.test_wire -*-
"""
The MSNP18 wire codec: bytes to L{Command} values and back, with no sockets.

A command line is C{NAME[ SP arg]* CRLF}; a payload command's last token is
the byte length of the payload that follows the line (reference section
1.4). Whether a line announces a payload, and whether its first argument is
a transaction id, depends on the command and on the direction it travels,
so both are decided here from explicit tables rather than guessed from the
shape of the line. Nothing in this module imports C{twisted.internet}.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence
from urllib.parse import quote, unquote

from msnp.errors import ProtocolError


class Direction(enum.Enum):
    """
    Which way a command travels; the grammar differs between the two.
    """

    FROM_SERVER = "server-to-client"
    FROM_CLIENT = "client-to-server"


@dataclass(frozen=True)
class PayloadRule:
    """
    How a payload command announces its length.

    @ivar position: index, among the arguments (TrID included), of the
        length token; C{-1} is the last token, which is where MSNP always
        puts it.
    @ivar replyForms: last tokens that mean "this is the payload-less reply
        form" (C{ADL trid OK}); any other non-numeric length is malformed.
    """

    position: int = -1
    replyForms: frozenset[str] = frozenset()


_OK = frozenset({"OK"})

#: Commands a server sends that may carry a payload (reference 1.4).
PAYLOAD_FROM_SERVER: dict[str, PayloadRule] = {
    "MSG": PayloadRule(),
    "GCF": PayloadRule(),
    "NOT": PayloadRule(),
    "UBX": PayloadRule(),
    "UBN": PayloadRule(),
    "UBM": PayloadRule(),
    "IPG": PayloadRule(),
    "ADL": PayloadRule(replyForms=_OK),
    "RML": PayloadRule(replyForms=_OK),
    "FQY": PayloadRule(),
    "UUX": PayloadRule(),
    "UUN": PayloadRule(replyForms=_OK),
    "NFY": PayloadRule(),
    "SDG": PayloadRule(),
    "PUT": PayloadRule(replyForms=_OK),
    "DEL": PayloadRule(replyForms=_OK),
    "GET": PayloadRule(),
}

#: Commands a client sends that carry a payload (reference 1.4).
PAYLOAD_FROM_CLIENT: dict[str, PayloadRule] = {
    name: PayloadRule()
    for name in (
        "MSG", "QRY", "ADL", "RML", "FQY", "UUX", "UUN", "UUM", "UBM",
        "NOT", "PUT", "DEL", "SDG", "SDC", "PGD", "VAS",
    )
}

#: Server commands that never carry a TrID (reference 1.3).
NO_TRID_FROM_SERVER = frozenset(
    {"QNG", "IPG", "NOT", "NLN", "FLN", "UBN", "UBM", "UBX", "NFY", "MSG",
     "OUT", "RNG", "JOI", "BYE"}
)

#: Client commands that never carry a TrID.
NO_TRID_FROM_CLIENT = frozenset({"PNG", "OUT"})

#: Lengths with more digits than this are refused before conversion.
_MAX_LENGTH_DIGITS = 18


def payloadRules(direction: Direction) -> dict[str, PayloadRule]:
    return PAYLOAD_FROM_SERVER if direction is Direction.FROM_SERVER else PAYLOAD_FROM_CLIENT


def noTridCommands(direction: Direction) -> frozenset[str]:
    return NO_TRID_FROM_SERVER if direction is Direction.FROM_SERVER else NO_TRID_FROM_CLIENT


class MalformedLine(ProtocolError):
    """
    A line could not be understood. When C{payloadLength} is set, the line
    still announced a payload of that many bytes, which the reader must
    consume (and drop) to stay in step with the stream.
    """

    def __init__(self, message: str, payloadLength: Optional[int] = None) -> None:
        super().__init__(message)
        self.payloadLength = payloadLength


def isErrorCode(name: str) -> bool:
    """
    Whether a command name is a three-digit numeric error.
    """
    return len(name) == 3 and name.isdigit()


# Commands whose arguments hold credentials, and which argument indexes
# (TrID included, 0-based) are secret.
_SECRET_ARGUMENTS: dict[tuple[str, str], tuple[int, ...]] = {
    ("USR", "S"): (3, 4),  # USR trid SSO S ticket response guid
    ("USR", "SB"): (2,),  # USR trid account;{guid} authstring  (switchboard)
    ("ANS", ""): (2,),  # ANS trid account;{guid} authstring sessionid
    ("XFR", "SB"): (4,),  # XFR trid SB host:port CKI authstring ...
    ("RNG", ""): (3,),  # RNG sessid host:port CKI authstring ...
    ("USR", "A"): (3,),  # USR trid SHA A ticket
}

REDACTED = "<redacted>"


def _secretIndexes(name: str, arguments: Sequence[str]) -> tuple[int, ...]:
    if name == "USR":
        if len(arguments) >= 3 and arguments[2] in ("S", "A") and arguments[1] in ("SSO", "SHA"):
            return _SECRET_ARGUMENTS[("USR", arguments[2])]
        if len(arguments) == 3 and arguments[1] != "SSO" and arguments[1] != "OK":
            return _SECRET_ARGUMENTS[("USR", "SB")]
        return ()
    if name == "XFR" and len(arguments) >= 2 and arguments[1] == "SB":
        return _SECRET_ARGUMENTS[("XFR", "SB")]
    if name in ("ANS", "RNG"):
        return _SECRET_ARGUMENTS[(name, "")]
    return ()


def redactArguments(name: str, arguments: Sequence[str]) -> list[str]:
    """
    The arguments with tickets, MBI responses and switchboard auth strings
    replaced by a placeholder, for logs and reprs.
    """
    hidden = _secretIndexes(name, arguments)
    return [REDACTED if i in hidden else a for i, a in enumerate(arguments)]


@dataclass(frozen=True)
class Command:
    """
    One MSNP command, in either direction.

    @ivar name: the three-character command name (or numeric error code).
    @ivar trid: the transaction id, or L{None} for commands without one.
    @ivar arguments: the remaining arguments (the length token of a payload
        command is not among them; it is derived from C{payload}).
    @ivar payload: the payload bytes of a payload command, else L{None}.
    """

    name: str
    trid: Optional[int] = None
    arguments: tuple[str, ...] = ()
    payload: Optional[bytes] = field(default=None)

    @property
    def isError(self) -> bool:
        return isErrorCode(self.name)

    @property
    def errorCode(self) -> Optional[int]:
        return int(self.name) if self.isError else None

    def arg(self, index: int, default: str = "") -> str:
        """
        The argument at C{index}, or C{default} when the line was short.
        """
        return self.arguments[index] if -len(self.arguments) <= index < len(self.arguments) else default

    def describe(self) -> str:
        """
        A one-line rendering safe for logs: secrets redacted, payload summarised.
        """
        tokens = [self.name]
        allArgs = ([str(self.trid)] if self.trid is not None else []) + list(self.arguments)
        tokens += redactArguments(self.name, allArgs)
        if self.payload is not None:
            tokens.append(f"<{len(self.payload)} bytes>")
        return " ".join(tokens)

    def __repr__(self) -> str:
        return f"<Command {self.describe()}>"


@dataclass(frozen=True)
class ParsedLine:
    """
    A command line decoded on its own, before its payload (if any) arrives.
    """

    name: str
    trid: Optional[int]
    arguments: tuple[str, ...]
    payloadLength: Optional[int]

    def withPayload(self, payload: Optional[bytes]) -> Command:
        return Command(self.name, self.trid, self.arguments, payload)


def _parseLength(token: bytes) -> Optional[int]:
    if not token.isdigit() or not token.isascii():
        return None
    if len(token) > _MAX_LENGTH_DIGITS:
        # Larger than any cap; report it as huge without converting.
        return 10 ** _MAX_LENGTH_DIGITS
    return int(token)


def parseLine(line: bytes, direction: Direction) -> ParsedLine:
    """
    Decode one command line (without its line terminator).

    The payload length is found from the raw bytes before any text decoding,
    so that even a line with broken UTF-8 tells the reader how many payload
    bytes to skip.

    @raise MalformedLine: the line is empty, has an impossible command name,
        is not UTF-8, or announces a non-numeric length; C{payloadLength} on
        the exception says how many bytes still belong to it.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    tokens = line.split(b" ")
    rawName = tokens[0]
    if len(rawName) != 3 or not (rawName.isalpha() and rawName.isupper() or rawName.isdigit()) or not rawName.isascii():
        raise MalformedLine(f"not a command line: {line[:40]!r}")
    name = rawName.decode("ascii")
    rawArgs = tokens[1:]

    payloadLength: Optional[int] = None
    if isErrorCode(name):
        if len(rawArgs) == 2:
            payloadLength = _parseLength(rawArgs[1])
            if payloadLength is None:
                raise MalformedLine(f"error {name} with a non-numeric length")
            rawArgs = rawArgs[:1]
    else:
        rule = payloadRules(direction).get(name)
        if rule is not None and not (name == "QRY" and direction is Direction.FROM_SERVER):
            if rawArgs:
                last = rawArgs[rule.position]
                payloadLength = _parseLength(last)
                if payloadLength is not None:
                    del rawArgs[rule.position]
                elif last.decode("ascii", "replace") not in rule.replyForms:
                    raise MalformedLine(f"{name} with a non-numeric payload length")
            elif direction is Direction.FROM_CLIENT or rule.replyForms == frozenset():
                raise MalformedLine(f"{name} without a payload length")

    try:
        arguments = [a.decode("utf-8") for a in rawArgs]
    except UnicodeDecodeError:
        raise MalformedLine(f"{name} line is not valid UTF-8", payloadLength) from None
    if any(a == "" for a in arguments):
        # Doubled or trailing spaces: tolerate them as real servers do.
        arguments = [a for a in arguments if a != ""]

    trid: Optional[int] = None
    if arguments and name not in noTridCommands(direction):
        first = arguments[0]
        if first.isdigit() and first.isascii() and len(first) <= _MAX_LENGTH_DIGITS:
            trid = int(first)
            arguments = arguments[1:]
    return ParsedLine(name, trid, tuple(arguments), payloadLength)


def parseCommand(data: bytes, direction: Direction) -> Command:
    """
    Decode one complete command: a line and, for a payload command, exactly
    its payload. Useful for tests and fixtures.

    @raise MalformedLine: as L{parseLine}, or when the payload length does
        not match the bytes given.
    """
    line, sep, rest = data.partition(b"\n")
    if not sep:
        raise MalformedLine("no line terminator")
    parsed = parseLine(line, direction)
    if parsed.payloadLength is None:
        if rest:
            raise MalformedLine("bytes after a command without payload")
        return parsed.withPayload(None)
    if len(rest) != parsed.payloadLength:
        raise MalformedLine(f"payload is {len(rest)} bytes, line announced {parsed.payloadLength}")
    return parsed.withPayload(rest)


def _checkToken(token: str) -> str:
    if not token or any(c in token for c in " \r\n"):
        raise ValueError(f"MSNP argument must be non-empty and contain no space or line break: {token!r}")
    return token


def serializeCommand(
    name: str,
    trid: Optional[int] = None,
    arguments: Iterable[str] = (),
    payload: Optional[bytes] = None,
) -> bytes:
    """
    Encode a command for the wire. A payload's length is measured in bytes
    and appended as the last token.

    @raise ValueError: an argument contains a space or line break (encode
        such values with L{encodeParameter} first).
    """
    tokens = [_checkToken(name)]
    if trid is not None:
        tokens.append(str(trid))
    tokens.extend(_checkToken(a) for a in arguments)
    if payload is not None:
        tokens.append(str(len(payload)))
    line = " ".join(tokens).encode("utf-8") + b"\r\n"
    return line + payload if payload is not None else line


def serialize(command: Command) -> bytes:
    """
    Encode a L{Command} value for the wire.
    """
    return serializeCommand(command.name, command.trid, command.arguments, command.payload)


def encodeParameter(text: str) -> str:
    """
    Percent-encode a free-text parameter (display name, msnobj) as MSNP
    does: UTF-8 bytes, everything but letters, digits and C{-._~} escaped,
    so a space becomes C{%20} and a C{+} becomes C{%2B}.
    """
    return quote(text, safe="")


def decodeParameter(text: str) -> str:
    """
    Decode a percent-encoded parameter. C{+} stays literal (never
    C{unquote_plus}); malformed escapes stay as they are and invalid UTF-8
    becomes U+FFFD, so a hostile value cannot raise.
    """
    return unquote(text, errors="replace")
