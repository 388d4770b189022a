# -*- test-case-name: test.test_server_store -*-
"""
Passwords as salted scrypt hashes, and the one place the 16-character rule
lives.

The historical Messenger clients send at most the first 16 characters of a
password (the Passport login form truncated it, and WLM keeps doing so), so
an account whose password is longer must still sign in with those clients.
L{significantPassword} applies the rule; it is used both when a hash is
made and when a password is checked, and nowhere else, so the rule has one
definition (see C{docs/store.md}).

A hash is self-describing, C{scrypt$n$r$p$salt$hash} (base64 fields), so a
store keeps verifying old hashes after the cost is raised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

#: Characters of a password the historical clients send (and we compare).
MAX_PASSWORD_LENGTH = 16


def significantPassword(password: str) -> str:
    """
    The part of C{password} a Messenger client actually sends: its first
    L{MAX_PASSWORD_LENGTH} characters.
    """
    return password[:MAX_PASSWORD_LENGTH]


@dataclass(frozen=True)
class ScryptCost:
    """
    scrypt's cost parameters: C{n} (CPU/memory, a power of two), C{r}
    (block size), C{p} (parallelism).
    """

    n: int
    r: int
    p: int

    @property
    def maxmem(self) -> int:
        # scrypt needs 128 * n * r bytes, plus a margin hashlib asks for.
        return 128 * self.n * self.r * 2 + 1024 * 1024


#: Production cost: 16 MiB and tens of milliseconds per hash, the
#: interactive-login parameters of RFC 7914 section 2. Measured in
#: C{bench/bench_store.py}.
PRODUCTION_COST = ScryptCost(n=2**14, r=8, p=1)

#: For tests only: microseconds per hash, no protection at all.
TEST_COST = ScryptCost(n=2**4, r=1, p=1)

#: The cost new hashes are made with when a store is not given one. Test
#: suites set it to L{TEST_COST} (see C{test/conftest.py}); nothing else
#: should change it.
defaultCost = PRODUCTION_COST

_SALT_BYTES = 16
_HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class PasswordHasher:
    """
    Makes and checks scrypt hashes.
    """

    def __init__(self, cost: "ScryptCost | None" = None) -> None:
        """
        @param cost: the cost of new hashes (L{defaultCost} at the time of
            each hash when L{None}).
        """
        self._cost = cost

    @property
    def cost(self) -> ScryptCost:
        return self._cost if self._cost is not None else defaultCost

    def hash(self, password: str) -> str:
        """
        A fresh salted hash of the significant part of C{password}.
        """
        cost = self.cost
        salt = os.urandom(_SALT_BYTES)
        digest = _scrypt(significantPassword(password), salt, cost)
        return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"

    def verify(self, password: str, encoded: str) -> bool:
        """
        Whether C{password} matches the hash C{encoded} (compared in
        constant time); a malformed hash matches nothing.
        """
        try:
            scheme, n, r, p, salt, digest = encoded.split("$")
            if scheme != "scrypt":
                return False
            cost = ScryptCost(int(n), int(r), int(p))
            expected = base64.b64decode(digest, validate=True)
            computed = _scrypt(
                significantPassword(password), base64.b64decode(salt, validate=True), cost
            )
        except ValueError:
            return False
        return hmac.compare_digest(computed, expected)


def _scrypt(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.maxmem,
        dklen=_HASH_BYTES,
    )
