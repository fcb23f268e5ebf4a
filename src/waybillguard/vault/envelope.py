"""Envelope encryption of one waybill's personal data.

Composition (documented in docs/cryptography.md):

* every waybill gets a fresh 256-bit data key (DEK) from the OS CSPRNG;
* each personal field is sealed separately with AES-256-GCM under that DEK, a
  random 96-bit nonce and associated data ``v1|<waybill uid>|<field>``, so a
  ciphertext moved to another waybill or another field fails authentication;
* the DEK is wrapped by the key provider's active key-encryption key (AES-256-GCM
  with the waybill uid as associated data) and only the wrapped form is stored.

The waybill uid is a random 128-bit identity fixed at sealing time (the tracking
number is assigned later, inside the store's insert transaction).

Shredding a waybill destroys its wrapped DEK; without it the ciphertexts are noise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from waybillguard.vault.key_provider import KeyProvider

NONCE_BYTES = 12
DEK_BYTES = 32
_AD_PREFIX = b"v1|"


class DecryptionError(RuntimeError):
    """A ciphertext or wrapped key failed authentication (tampered, swapped or shredded)."""


@dataclass(frozen=True, slots=True)
class SealedFields:
    """Everything the store keeps for one waybill's personal data."""

    uid: bytes
    kek_id: str
    wrapped_dek: bytes
    ciphertexts: Mapping[str, bytes]


UID_BYTES = 16


def new_uid() -> bytes:
    return os.urandom(UID_BYTES)


def _field_ad(uid: bytes, field: str) -> bytes:
    return _AD_PREFIX + uid + _field_suffix(field)


@functools.lru_cache(maxsize=64)  # a handful of field names, sealed millions of times
def _field_suffix(field: str) -> bytes:
    return b"|" + field.encode("ascii")


def _wrap_context(uid: bytes) -> bytes:
    return uid


def seal_fields(provider: KeyProvider, uid: bytes, fields: Mapping[str, str]) -> SealedFields:
    randomness = os.urandom(DEK_BYTES + NONCE_BYTES * len(fields))
    dek = randomness[:DEK_BYTES]
    encrypt = AESGCM(dek).encrypt
    ad_head = _AD_PREFIX + uid
    ciphertexts: dict[str, bytes] = {}
    at = DEK_BYTES
    for field, value in fields.items():
        nonce = randomness[at : at + NONCE_BYTES]
        at += NONCE_BYTES
        ad = ad_head + _field_suffix(field)
        ciphertexts[field] = nonce + encrypt(nonce, value.encode("utf-8"), ad)
    kek_id = provider.active_kek_id()
    wrapped = provider.wrap(kek_id, dek, _wrap_context(uid))
    return SealedFields(uid, kek_id, wrapped, ciphertexts)


def unwrap_dek(provider: KeyProvider, uid: bytes, kek_id: str, wrapped: bytes) -> bytes:
    try:
        return provider.unwrap(kek_id, wrapped, _wrap_context(uid))
    except InvalidTag:
        raise DecryptionError("data key failed authentication") from None


def open_fields(
    provider: KeyProvider,
    uid: bytes,
    kek_id: str,
    wrapped_dek: bytes,
    ciphertexts: Mapping[str, bytes],
    wanted: Iterable[str],
) -> dict[str, str]:
    aead = AESGCM(unwrap_dek(provider, uid, kek_id, wrapped_dek))
    opened: dict[str, str] = {}
    for field in wanted:
        blob = ciphertexts[field]
        try:
            plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _field_ad(uid, field))
        except InvalidTag:
            raise DecryptionError(f"{field} failed authentication") from None
        opened[field] = plain.decode("utf-8")
    return opened


def rewrap_dek(
    provider: KeyProvider, uid: bytes, kek_id: str, wrapped: bytes, new_kek_id: str
) -> bytes:
    dek = unwrap_dek(provider, uid, kek_id, wrapped)
    return provider.wrap(new_kek_id, dek, _wrap_context(uid))
