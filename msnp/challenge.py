# -*- test-case-name: test.test_challenge -*-
"""
The answer to the notification server's C{CHL} challenge (sent back in C{QRY}).

The server checks that the client knows a product key it recognises; a wrong
answer costs a C{540} and the connection. The algorithm mixes an MD5 of the
challenge and the key with a small hash over the challenge and the product
id; it is the same for every MSNP11+ client, only the id/key pair differs.
The id sent in C{QRY} must be the one whose key computed the answer.
"""

from __future__ import annotations

import hashlib
import struct

#: Product id of Windows Live Messenger 2009 (14.0.8089), the MSNP18 client.
WLM2009_PRODUCT_ID = "PROD0120PW!CCV9@"
#: Product key that goes with L{WLM2009_PRODUCT_ID}.
WLM2009_PRODUCT_KEY = "C1BX{V4W}Q3*10SM"

_MASK = 0x7FFFFFFF
_MAGIC = 0x0E79A9C1


def computeChallengeResponse(
    challenge: str,
    productId: str = WLM2009_PRODUCT_ID,
    productKey: str = WLM2009_PRODUCT_KEY,
) -> str:
    """
    Compute the 32 hex digits that answer C{CHL 0 <challenge>}.

    @param challenge: the decimal digits the server sent.
    @param productId: the product id that will be named in C{QRY}.
    @param productKey: the secret key paired with C{productId}.
    @return: 32 lower-case hexadecimal characters.
    @raise ValueError: C{challenge} is empty or not made of ASCII digits,
        or the product id/key are not ASCII.
    """
    if not challenge or not (challenge.isascii() and challenge.isdigit()):
        raise ValueError(f"a CHL challenge is a string of decimal digits, not {challenge!r}")
    if not (productId.isascii() and productKey.isascii()):
        raise ValueError("product id and key must be ASCII")

    digest = hashlib.md5((challenge + productKey).encode("ascii")).digest()
    words = struct.unpack("<4I", digest)
    h = [w & _MASK for w in words]

    data = (challenge + productId).encode("ascii")
    # Pad to whole 8-byte blocks with ASCII zeros; a length already on a
    # block boundary is left alone (the two historical variants differ only
    # there, and no real challenge hits that case).
    if len(data) % 8:
        data += b"0" * (8 - len(data) % 8)
    c = struct.unpack(f"<{len(data) // 4}I", data)

    a = 0
    b = 0
    for i in range(0, len(c), 2):
        t = (c[i] * _MAGIC) % _MASK
        t = (h[0] * (t + a) + h[1]) % _MASK
        a = (c[i + 1] + t) % _MASK
        a = (h[2] * a + h[3]) % _MASK
        b += a + t
    a = (a + h[1]) % _MASK
    b = (b + h[3]) % _MASK

    out = struct.pack("<4I", words[0] ^ a, words[1] ^ b, words[2] ^ a, words[3] ^ b)
    return out.hex()
