# -*- test-case-name: test.test_sso -*-
"""
The MBI response to the NS's C{USR SSO S} nonce (reference section 2.4):
keys derived from the login token's binary secret, the nonce encrypted with
3DES-CBC and signed with HMAC-SHA1, in the Windows C{BCRYPT} blob layout.

The client computes it (L{mbiResponse}) and the local network checks it
(L{verifyMBIResponse}), so it is one of the modules L{msnp.server} may
import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from typing import Optional

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

_HASH_MAGIC = b"WS-SecureConversationSESSION KEY HASH"
_ENCRYPTION_MAGIC = b"WS-SecureConversationSESSION KEY ENCRYPTION"
_HEADER = struct.Struct("<7I")
_CRYPT_MODE_CBC = 1
_CALG_3DES = 0x6603
_CALG_SHA1 = 0x8004
_IV_LENGTH = 8
_HASH_LENGTH = 20
_PADDING = b"\x08" * 8


def _hmacSHA1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def _deriveKey(key: bytes, magic: bytes) -> bytes:
    a1 = _hmacSHA1(key, magic)
    a2 = _hmacSHA1(key, a1 + magic)
    a3 = _hmacSHA1(key, a1)
    a4 = _hmacSHA1(key, a3 + magic)
    return a2 + a4[:4]


def _mbiKeys(secret: str) -> tuple[bytes, bytes]:
    try:
        key1 = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the BinarySecret is not valid base64") from None
    if not key1:
        raise ValueError("the BinarySecret is empty")
    return _deriveKey(key1, _HASH_MAGIC), _deriveKey(key1, _ENCRYPTION_MAGIC)


def _nonceBytes(nonce: str) -> bytes:
    if not nonce or not nonce.isascii():
        raise ValueError("the MBI nonce must be non-empty ASCII text")
    data = nonce.encode("ascii")
    if len(data) % 8:
        raise ValueError(f"an MBI nonce of {len(data)} bytes cannot be encrypted (not a multiple of 8)")
    return data


def mbiResponse(secret: str, nonce: str, iv: Optional[bytes] = None) -> str:
    """
    Answer the NS's C{USR SSO S MBI_KEY_OLD <nonce>} challenge.

    @param secret: the base64 C{BinarySecret} of the C{messengerclear.live.com}
        token (never another token's).
    @param nonce: the nonce exactly as the NS sent it; its ASCII text is
        used, not a base64 decoding of it.
    @param iv: the 8-byte 3DES IV; random unless given (tests fix it).
    @return: the base64 blob to send as the second token of C{USR SSO S}.
    @raise ValueError: the secret is not base64, the nonce is not ASCII or
        its length is not a multiple of 8 (real nonces are 64 characters),
        or the IV is not 8 bytes.
    """
    key2, key3 = _mbiKeys(secret)
    data = _nonceBytes(nonce)
    if iv is None:
        iv = os.urandom(_IV_LENGTH)
    if len(iv) != _IV_LENGTH:
        raise ValueError("the MBI IV must be 8 bytes")
    digest = _hmacSHA1(key2, data)
    # The eight 0x08 bytes are appended by hand and encrypted without
    # further padding, as every historical client did.
    encryptor = Cipher(TripleDES(key3), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(data + _PADDING) + encryptor.finalize()
    header = _HEADER.pack(
        _HEADER.size, _CRYPT_MODE_CBC, _CALG_3DES, _CALG_SHA1,
        _IV_LENGTH, _HASH_LENGTH, len(ciphertext),
    )
    return base64.b64encode(header + iv + digest + ciphertext).decode("ascii")


def verifyMBIResponse(secret: str, nonce: str, response: str) -> bool:
    """
    Check a client's MBI response, as a server does before accepting
    C{USR SSO S}.

    Both the HMAC and the ciphertext must match; anything malformed (bad
    base64, wrong header fields, wrong lengths) is simply a mismatch.

    @param secret: the base64 proof key the STS issued with the ticket.
    @param nonce: the nonce this server sent.
    @param response: the client's base64 blob.
    @return: whether the response is right. Never raises.
    """
    try:
        key2, key3 = _mbiKeys(secret)
        data = _nonceBytes(nonce)
        blob = base64.b64decode(response.strip(), validate=True)
        cipherLength = len(data) + len(_PADDING)
        expectedLength = _HEADER.size + _IV_LENGTH + _HASH_LENGTH + cipherLength
        if len(blob) != expectedLength:
            return False
        fields = _HEADER.unpack_from(blob, 0)
        if fields != (
            _HEADER.size, _CRYPT_MODE_CBC, _CALG_3DES, _CALG_SHA1,
            _IV_LENGTH, _HASH_LENGTH, cipherLength,
        ):
            return False
        offset = _HEADER.size
        iv = blob[offset:offset + _IV_LENGTH]
        offset += _IV_LENGTH
        digest = blob[offset:offset + _HASH_LENGTH]
        offset += _HASH_LENGTH
        ciphertext = blob[offset:]
        if not hmac.compare_digest(digest, _hmacSHA1(key2, data)):
            return False
        decryptor = Cipher(TripleDES(key3), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        return hmac.compare_digest(plaintext, data + _PADDING)
    except Exception:
        return False
