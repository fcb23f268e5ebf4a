"""Keyed blind indexes: exact lookup without decrypting.

HMAC-SHA256 under a key of its own (never the data keys), truncated to 128 bits.
A plain hash of a mobile number would be reversed by enumerating the ~10^10
numbering space; a keyed HMAC cannot be enumerated without the key.
"""

from __future__ import annotations

import hashlib
import hmac

INDEX_BYTES = 16


class BlindIndexer:
    def __init__(self, key: bytes) -> None:
        self._phone = hmac.new(key, b"waybillguard/v1/phone|", hashlib.sha256)
        self._name_phone = hmac.new(key, b"waybillguard/v1/name+phone|", hashlib.sha256)

    def phone(self, e164: str) -> bytes:
        mac = self._phone.copy()
        mac.update(e164.encode("ascii"))
        return mac.digest()[:INDEX_BYTES]

    def name_phone(self, name: str, e164: str) -> bytes:
        mac = self._name_phone.copy()
        mac.update(e164.encode("ascii") + b"|" + name.encode("utf-8"))
        return mac.digest()[:INDEX_BYTES]
