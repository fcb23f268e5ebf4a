"""Issuing and verifying self-authenticating tracking numbers.

Composition (docs/tracking-numbers.md):

* body = P(counter), where P is a keyed permutation of [0, 10^7): a 10-round
  alternating Feistel network on the split 10^3 x 10^4 with modular addition
  (the structure of NIST SP 800-38G FF1), whose round function is AES-256 under a
  key derived by HKDF-SHA256 from the keyring's tracking secret. A permutation
  of a counter never collides and reveals no sequence to an outsider.
* check = HMAC-SHA256(check key, prefix || body) reduced mod 10^6 (64-bit
  reduction, bias < 10^-13). It is what makes numbers unforgeable; the
  permutation only hides issuance order.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from waybillguard.domain.tracking import (
    BODY_SPACE,
    CHECK_SPACE,
    TrackingSpaceExhausted,
    parse_tracking_number,
    validate_prefix,
)

ROUNDS = 10
_LEFT = 10**3
_RIGHT = 10**4
_BLOCK = struct.Struct(">2sB5xQ")
_ROUND_OUT = struct.Struct(">Q8x")


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class TrackingAuthority:
    """Issues and verifies tracking numbers under one secret."""

    def __init__(self, secret: bytes) -> None:
        perm_key = _derive(secret, b"waybillguard/v1/tracking-permutation")
        self._check = hmac.new(
            _derive(secret, b"waybillguard/v1/tracking-check"), digestmod=hashlib.sha256
        )
        self._ecb = Cipher(algorithms.AES(perm_key), modes.ECB())  # noqa: S305 - PRF blocks, not a message mode

    def _round_values(self, prefix: bytes, rnd: int, halves: Sequence[int]) -> list[int]:
        encryptor = self._ecb.encryptor()
        blocks = b"".join([_BLOCK.pack(prefix, rnd, h) for h in halves])
        out = encryptor.update(blocks)
        return [v[0] for v in _ROUND_OUT.iter_unpack(out)]

    def permute(self, prefix: str, counters: Sequence[int]) -> list[int]:
        pfx = prefix.encode("ascii")
        left = [c // _RIGHT for c in counters]
        right = [c % _RIGHT for c in counters]
        for rnd in range(ROUNDS):
            if rnd % 2 == 0:
                f = self._round_values(pfx, rnd, right)
                left = [(a + x) % _LEFT for a, x in zip(left, f, strict=True)]
            else:
                f = self._round_values(pfx, rnd, left)
                right = [(b + x) % _RIGHT for b, x in zip(right, f, strict=True)]
        return [a * _RIGHT + b for a, b in zip(left, right, strict=True)]

    def unpermute(self, prefix: str, bodies: Sequence[int]) -> list[int]:
        pfx = prefix.encode("ascii")
        left = [c // _RIGHT for c in bodies]
        right = [c % _RIGHT for c in bodies]
        for rnd in reversed(range(ROUNDS)):
            if rnd % 2 == 0:
                f = self._round_values(pfx, rnd, right)
                left = [(a - x) % _LEFT for a, x in zip(left, f, strict=True)]
            else:
                f = self._round_values(pfx, rnd, left)
                right = [(b - x) % _RIGHT for b, x in zip(right, f, strict=True)]
        return [a * _RIGHT + b for a, b in zip(left, right, strict=True)]

    def _check_digits(self, prefix: str, body: str) -> str:
        mac = self._check.copy()
        mac.update((prefix + body).encode("ascii"))
        value = int.from_bytes(mac.digest()[:8], "big") % CHECK_SPACE
        return f"{value:06d}"

    def issue(self, prefix: str, counters: Sequence[int]) -> list[str]:
        validate_prefix(prefix)
        if counters and (min(counters) < 0 or max(counters) >= BODY_SPACE):
            raise TrackingSpaceExhausted(f"prefix {prefix} has no tracking numbers left")
        bodies = [f"{b:07d}" for b in self.permute(prefix, counters)]
        return [prefix + body + self._check_digits(prefix, body) for body in bodies]

    def verify(self, number: str) -> bool:
        parsed = parse_tracking_number(number)
        if parsed is None:
            return False
        expected = self._check_digits(parsed.prefix, parsed.body)
        return hmac.compare_digest(expected, parsed.check)
