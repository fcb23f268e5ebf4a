"""Credentials: password and client-secret hashes, TOTP second factors, session tokens.

* **Passwords and client secrets** are hashed with argon2id (argon2-cffi's
  ``PasswordHasher``) using the second profile RFC 9106 recommends ("low memory"):
  time cost 3, memory 64 MiB, parallelism 4, 16-byte random salt, 32-byte tag. One
  hash or verification takes ~0.17 s on a 2-core machine, which is the point: an
  offline guesser pays the same per guess. The encoded hash (``$argon2id$v=19$m=…``)
  carries its parameters, so raising them later is a matter of ``needs_rehash`` at the
  next successful login. Passwords are NFC-normalised first, so the same password typed
  through different input methods gives the same bytes.
* **TOTP** (RFC 6238): SHA-1, 30-second steps, 6 digits, 160-bit secrets, accepted one
  step either side of now. ``verify_totp`` returns the time step that matched; the caller
  stores it and passes it back as ``after_step`` so no code is ever accepted twice.
* **TOTP secrets at rest** are sealed with AES-256-GCM under a key derived by
  HKDF-SHA256 from the keyring's ``credentials`` secret; the associated data names the
  principal, so a sealed secret copied onto another account does not open.
* **Session tokens** are ``wg_`` + 32 random bytes (URL-safe base64); only their SHA-256
  is stored. A token already carries 256 bits of entropy, so an unkeyed hash is enough:
  nobody can enumerate the token space the way one could enumerate phone numbers.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import unicodedata
from datetime import datetime
from typing import Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "PASSWORD_HASHER",
    "SESSION_TOKEN_PREFIX",
    "TOTP_DIGITS",
    "TOTP_PERIOD",
    "TOTP_WINDOW",
    "CredentialError",
    "TotpSealer",
    "hash_secret",
    "needs_rehash",
    "new_client_secret",
    "new_session_token",
    "new_totp_secret",
    "token_digest",
    "totp_step",
    "verify_secret",
    "verify_totp",
]

# Module-level so tests can swap in cheaper parameters; production never changes it.
PASSWORD_HASHER: PasswordHasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)

TOTP_DIGITS: Final = 6
TOTP_PERIOD: Final = 30
TOTP_WINDOW: Final = 1  # steps either side of now: tolerates ±30 s of clock drift
TOTP_SECRET_CHARS: Final = 32  # base32 characters: 160 bits, the RFC 4226 recommendation

SESSION_TOKEN_PREFIX: Final = "wg_"  # noqa: S105 - a visible marker, not a secret
CLIENT_SECRET_PREFIX: Final = "wgs_"  # noqa: S105 - a visible marker, not a secret
TOKEN_BYTES: Final = 32

_HKDF_INFO: Final = b"waybillguard/v1/totp-seal"
_SEAL_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_AD_LABEL: Final = b"waybillguard/v1/totp|"


class CredentialError(ValueError):
    """A stored credential cannot be used (corrupt, or sealed for someone else)."""


def _normalise(secret: str) -> bytes:
    return unicodedata.normalize("NFC", secret).encode("utf-8", errors="surrogatepass")


# -- passwords and client secrets ------------------------------------------------------
def hash_secret(secret: str) -> str:
    """The argon2id encoded hash of a password or client secret."""
    return PASSWORD_HASHER.hash(_normalise(secret))


@functools.cache
def _dummy_hash() -> str:
    # Verified against when an account does not exist, so that "no such user" costs
    # as much time as "wrong password" and the two cannot be told apart by timing.
    return PASSWORD_HASHER.hash(secrets.token_bytes(16))


def verify_secret(encoded: str | None, secret: str) -> bool:
    """True if `secret` matches the stored hash. With no hash (unknown account, or a
    credential of another kind) it still spends the time of one verification."""
    target = encoded or _dummy_hash()
    try:
        ok = PASSWORD_HASHER.verify(target, _normalise(secret))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and encoded is not None


def needs_rehash(encoded: str) -> bool:
    """True when the stored hash was made with other parameters than today's."""
    try:
        return PASSWORD_HASHER.check_needs_rehash(encoded)
    except InvalidHashError:
        return True


def new_client_secret() -> tuple[str, str]:
    """(secret shown once to the partner, its argon2id hash to store)."""
    secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    return secret, hash_secret(secret)


# -- session tokens --------------------------------------------------------------------
def token_digest(token: str) -> bytes:
    """SHA-256 of a token: what the database stores and looks up by."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()


def new_session_token() -> tuple[str, bytes]:
    """(token handed to the caller once, its SHA-256 to store)."""
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_digest(token)


# -- TOTP ------------------------------------------------------------------------------
def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(TOTP_SECRET_CHARS)


def totp_step(at: datetime) -> int:
    """The RFC 6238 time step (T) of an aware moment."""
    if at.tzinfo is None:
        raise ValueError("TOTP time must be timezone-aware")
    return int(at.timestamp()) // TOTP_PERIOD


def verify_totp(secret_b32: str, code: str, at: datetime, after_step: int | None) -> int | None:
    """The time step `code` belongs to (within ±TOTP_WINDOW of `at`), or None.

    Steps at or before `after_step` (the last one accepted) never match: a code seen
    once cannot be replayed, nor can an older code from the window.
    """
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    otp = pyotp.TOTP(secret_b32, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    now = totp_step(at)
    matched: int | None = None
    # Every candidate is compared (no early exit) with a constant-time comparison.
    for step in range(now - TOTP_WINDOW, now + TOTP_WINDOW + 1):
        usable = after_step is None or step > after_step
        if hmac.compare_digest(otp.generate_otp(step), code) and usable and matched is None:
            matched = step
    return matched


class TotpSealer:
    """Seals TOTP secrets at rest: AES-256-GCM, key from HKDF-SHA256(keyring secret),
    associated data binding the blob to one principal id.

    Blob layout: version byte (0x01) ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag.
    """

    __slots__ = ("_aead",)

    def __init__(self, keyring_secret: bytes) -> None:
        if len(keyring_secret) < 32:
            raise ValueError("the credentials secret must be at least 32 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            keyring_secret
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "TotpSealer()"

    @staticmethod
    def _associated_data(principal_id: int) -> bytes:
        return _AD_LABEL + _SEAL_VERSION + str(int(principal_id)).encode("ascii")

    def seal(self, principal_id: int, secret_b32: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        body = self._aead.encrypt(
            nonce, secret_b32.encode("ascii"), self._associated_data(principal_id)
        )
        return _SEAL_VERSION + nonce + body

    def open(self, principal_id: int, blob: bytes) -> str:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _SEAL_VERSION:
            raise CredentialError("sealed TOTP secret is malformed")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, body, self._associated_data(principal_id))
        except InvalidTag:
            raise CredentialError("sealed TOTP secret does not open for this account") from None
        return plain.decode("ascii")
