"""Opaque, authenticated, expiring tokens for the QR code on a shipping label.

A token is AES-256-GCM over (tracking number, expiry) under a key derived by HKDF from
the keyring's `delivery_token` secret, with a random 96-bit nonce:

    "wgq1." + base64url(nonce ‖ ciphertext ‖ tag)       (73 characters)

Encryption makes it opaque (a photographed label shows no tracking number, no id to
increment), the GCM tag makes it unforgeable, and the expiry inside is authenticated.
It carries no personal data and no courier: who may resolve it is decided at resolve
time from the waybill's current assignment and status, so a label printed at the origin
works for whichever courier the destination station assigns, and for nobody else.
"""

from __future__ import annotations

import base64
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "wgq1."
_AD = b"waybillguard delivery token v1"
_INFO = b"waybillguard delivery token key v1"
_NUMBER_BYTES = 15
_MAX_TOKEN_CHARS = 128


class InvalidDeliveryToken(ValueError):
    """Malformed, forged, or from another keyring. Says nothing more on purpose."""

    def __init__(self) -> None:
        super().__init__("invalid delivery token")


class DeliveryTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the delivery-token secret must be at least 32 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)

    def issue(self, tracking_number: str, expires_at: int) -> str:
        """A token for `tracking_number` valid until `expires_at` (Unix seconds)."""
        number = tracking_number.encode("ascii")
        if len(number) != _NUMBER_BYTES:
            raise ValueError("not a tracking number")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, number + struct.pack(">Q", expires_at), _AD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> tuple[str, int]:
        """(tracking number, expiry) of an authentic token; expiry is the caller's to
        check. Raises InvalidDeliveryToken for anything else."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise InvalidDeliveryToken()
        if not token.startswith(PREFIX):
            raise InvalidDeliveryToken()
        body = token[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            raise InvalidDeliveryToken() from None
        if len(raw) != 12 + _NUMBER_BYTES + 8 + 16:
            raise InvalidDeliveryToken()
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], _AD)
        except InvalidTag:
            raise InvalidDeliveryToken() from None
        number = plain[:_NUMBER_BYTES].decode("ascii")
        (expires_at,) = struct.unpack(">Q", plain[_NUMBER_BYTES:])
        return number, int(expires_at)
