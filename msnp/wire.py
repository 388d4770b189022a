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
from codecs import escape_decode as _escapeDecode  # type: ignore[attr-defined]
from dataclasses import dataclass, field
from functools import lru_cache
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

    The length is always the last token of the line.

    @ivar replyForms: last tokens that mean "this is the payload-less reply
        form" (C{ADL trid OK}); any other non-numeric length is malformed.
    """

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


REDACTED = "<redacted>"

#: C{USR} forms that carry no switchboard auth string after the account.
_USR_PUBLIC_FORMS = frozenset({"SSO", "SHA", "OK", "TWN", "MD5"})


def _secretIndexes(name: str, arguments: Sequence[str]) -> tuple[int, ...]:
    # Indexes count the TrID; a missing TrID must not shift a secret out of
    # view, so positions are taken relative to the first non-TrID token.
    if name in ("XFR", "RNG"):
        # XFR trid SB host:port CKI <auth> ... / RNG sessid host:port CKI <auth> ...
        for i, token in enumerate(arguments[:-1]):
            if token == "CKI":
                return (i + 1,)
        return ()
    if name not in ("USR", "ANS"):
        return ()
    start = 1 if arguments and arguments[0].isdigit() else 0
    rest = arguments[start:]
    if name == "ANS" or (rest and rest[0] not in _USR_PUBLIC_FORMS):
        # ANS trid account;{guid} <auth> sessid / SB USR trid account;{guid} <auth>
        return (start + 1,)
    if len(rest) >= 3 and rest[0] == "SSO" and rest[1] == "S":
        # USR trid SSO S <ticket> <response> {guid}
        return (start + 2, start + 3)
    if len(rest) >= 3 and rest[0] == "SHA" and rest[1] == "A":
        # USR trid SHA A <circle ticket>
        return (start + 2,)
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


def _parseLength(token: str) -> Optional[int]:
    if not token.isdigit() or not token.isascii():
        return None
    if len(token) > _MAX_LENGTH_DIGITS:
        # Larger than any cap; report it as huge without converting.
        return 10 ** _MAX_LENGTH_DIGITS
    return int(token)


_FROM_SERVER = Direction.FROM_SERVER

#: Command names already found well formed, and whether each is a numeric
#: error. Only valid names are remembered, so it holds at most 26**3 + 1000
#: entries whatever a peer sends.
_VALID_NAMES: dict[str, bool] = {}


def _checkName(name: str, line: bytes) -> bool:
    if len(name) != 3 or not name.isascii() or not (name.isdigit() or name.isalpha() and name.isupper()):
        raise MalformedLine(f"not a command line: {line[:40]!r}")
    isError = _VALID_NAMES[name] = name.isdigit()
    return isError


def parseIncoming(line: bytes, direction: Direction) -> "Command | ParsedLine":
    """
    Decode one command line (without its line terminator) as a reader
    wants it: the finished L{Command} when the line announces no payload,
    else the L{ParsedLine} that waits for its payload bytes.

    A line that is not UTF-8 is still split and measured (as Latin-1, one
    character per byte, which leaves names and digits as they are), so that
    it tells the reader how many payload bytes to skip. This runs once per
    line on every connection, so a payload-less line becomes its
    L{Command} without an intermediate value.

    @raise MalformedLine: the line is empty, has an impossible command name,
        is not UTF-8, or announces a non-numeric length; C{payloadLength} on
        the exception says how many bytes still belong to it.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    try:
        arguments = line.decode("utf-8").split(" ")
        decodable = True
    except UnicodeDecodeError:
        arguments = line.decode("latin-1").split(" ")
        decodable = False
    name = arguments.pop(0)
    isError = _VALID_NAMES.get(name)
    if isError is None:
        isError = _checkName(name, line)
    if "" in arguments:
        # Doubled or trailing spaces: tolerated as real servers do, and
        # dropped before looking for the length ("MSG a b 12 " frames).
        arguments = [a for a in arguments if a]

    fromServer = direction is _FROM_SERVER
    payloadLength: Optional[int] = None
    if isError:
        # ERR trid len carries a payload; ERR trid (or an odd ERR trid x)
        # does not, and is still worth delivering to the waiting request.
        if len(arguments) == 2:
            payloadLength = _parseLength(arguments[1])
            if payloadLength is not None:
                del arguments[1]
    else:
        rule = (PAYLOAD_FROM_SERVER if fromServer else PAYLOAD_FROM_CLIENT).get(name)
        if rule is not None and not (fromServer and name == "QRY"):
            if arguments:
                last = arguments[-1]
                payloadLength = _parseLength(last)
                if payloadLength is not None:
                    del arguments[-1]
                elif last not in rule.replyForms:
                    raise MalformedLine(f"{name} with a non-numeric payload length")
            elif not fromServer or not rule.replyForms:
                raise MalformedLine(f"{name} without a payload length")
    if not decodable:
        raise MalformedLine(f"{name} line is not valid UTF-8", payloadLength)

    trid: Optional[int] = None
    if arguments and name not in (NO_TRID_FROM_SERVER if fromServer else NO_TRID_FROM_CLIENT):
        first = arguments[0]
        if first.isdigit() and first.isascii() and len(first) <= _MAX_LENGTH_DIGITS:
            trid = int(first)
            del arguments[0]
    if payloadLength is None:
        return Command(name, trid, tuple(arguments), None)
    return ParsedLine(name, trid, tuple(arguments), payloadLength)


def parseLine(line: bytes, direction: Direction) -> ParsedLine:
    """
    Decode one command line (without its line terminator), payload or not;
    see L{parseIncoming} for the rules.

    @raise MalformedLine: as L{parseIncoming}.
    """
    parsed = parseIncoming(line, direction)
    if isinstance(parsed, Command):
        return ParsedLine(parsed.name, parsed.trid, parsed.arguments, None)
    return parsed


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

    @raise ValueError: an argument is empty or contains a space or line
        break (encode such values with L{encodeParameter} first), or the
        TrID is negative.
    @raise TypeError: the payload is not bytes.
    """
    if payload is not None and not isinstance(payload, (bytes, bytearray)):
        # A str payload would be measured in characters, not bytes.
        raise TypeError(f"MSNP payload must be bytes, not {type(payload).__name__}")
    tokens = [_checkToken(name)]
    if trid is not None:
        if not isinstance(trid, int) or trid < 0:
            raise ValueError(f"TrID must be a non-negative integer: {trid!r}")
        tokens.append(str(trid))
    tokens.extend(_checkToken(a) for a in arguments)
    if payload is not None:
        tokens.append(str(len(payload)))
    line = " ".join(tokens).encode("utf-8") + b"\r\n"
    return line + bytes(payload) if payload is not None else line


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


@lru_cache(maxsize=512)
def decodeParameter(text: str) -> str:
    """
    Decode a percent-encoded parameter. C{+} stays literal (never
    C{unquote_plus}); malformed escapes stay as they are and invalid UTF-8
    becomes U+FFFD, so a hostile value cannot raise.

    Results are memoised (a bounded LRU): the same display names and MSN
    objects come back in every C{NLN} of a contact. A fresh value (a new
    name, a new picture) is decoded by L{_percentDecode} in C, which is
    eight times faster than C{urllib.parse.unquote} on an MSN object.
    """
    if "%" not in text:
        return text
    return _percentDecode(text)


def _percentDecode(text: str) -> str:
    """
    C{urllib.parse.unquote} with C{errors="replace"}, by way of the C
    escape decoder: C{%XX} becomes C{\\xXX} and the bytes are decoded
    once. Exactly the same result (property-tested against C{unquote} in
    C{test/test_wire_properties.py}): the literal characters between the
    escapes are whole UTF-8 sequences, so decoding everything at once
    replaces the same invalid bytes as decoding each run of escapes on
    its own. A backslash in the text (which the escape decoder would
    read) or a C{%} without two hex digits after it (which it refuses)
    goes to C{unquote} instead.
    """
    if "\\" not in text:
        try:
            return _escapeDecode(text.replace("%", "\\x"))[0].decode("utf-8", "replace")
        except ValueError:
            pass
    return unquote(text, errors="replace")
