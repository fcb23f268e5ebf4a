"""A throwaway AES-256-GCM sealer for measuring the raw limit in benchmarks.

Lives in the vault because only the vault touches cryptographic primitives;
its key is random, never stored and dies with the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def throwaway_sealer() -> Callable[[bytes], bytes]:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, plaintext, None)

    return seal
