"""Ed25519 signatures over audit-log checkpoints.

A checkpoint states "the log named ORIGIN had TREE_SIZE entries with Merkle root ROOT at
TIME". Its body follows the C2SP signed-note / tlog-checkpoint layout, one item per line
with a final newline::

    waybillguard.example/audit
    1234
    <base64 of the 32-byte RFC 6962 root>
    2024-05-01T12:00:00.000000Z

(the tlog-checkpoint "other data" line carries the timestamp). The signature is plain
Ed25519 (RFC 8032) from ``cryptography`` over exactly those bytes; anyone holding the
32-byte public key can check it with any Ed25519 implementation.

The signing key is a 32-byte Ed25519 seed. The keyring derives it from a secret it holds
with HKDF-SHA256 (``derive_seed``), so the key is never stored on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "CheckpointSigner",
    "checkpoint_body",
    "derive_seed",
    "key_id_of",
    "parse_checkpoint_body",
    "verify_signature",
]

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32
HKDF_INFO = b"waybillguard/v1/audit-checkpoint"


def derive_seed(secret: bytes) -> bytes:
    """The Ed25519 seed for checkpoints: HKDF-SHA256(secret, salt=None, info=HKDF_INFO)."""
    if len(secret) < 32:
        raise ValueError("the checkpoint secret must be at least 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None, info=HKDF_INFO).derive(
        secret
    )


def key_id_of(public_key: bytes) -> str:
    """Hex of the first 8 bytes of SHA-256(public key): 16 hex characters."""
    return hashlib.sha256(public_key).digest()[:8].hex()


class CheckpointSigner:
    """Signs checkpoint bodies with one Ed25519 key; never exposes the private key."""

    __slots__ = ("_key", "_public")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public

    @property
    def key_id(self) -> str:
        return key_id_of(self._public)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message``."""
        return self._key.sign(message)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` under the raw
    32-byte ``public_key``; False for anything else, including malformed inputs."""
    if not (
        isinstance(public_key, bytes)
        and len(public_key) == PUBLIC_KEY_BYTES
        and isinstance(signature, bytes)
        and len(signature) == SIGNATURE_BYTES
        and isinstance(message, bytes)
    ):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_line(name: str, value: str) -> None:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"checkpoint {name} must be non-empty printable text on one line")


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes, timestamp: str) -> bytes:
    """``f"{origin}\\n{tree_size}\\n{base64(root_hash)}\\n{timestamp}\\n"`` in UTF-8."""
    _check_line("origin", origin)
    _check_line("timestamp", timestamp)
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
        raise ValueError("checkpoint tree size must be a non-negative integer")
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_BYTES:
        raise ValueError("checkpoint root hash must be 32 bytes")
    root = base64.b64encode(root_hash).decode("ascii")
    return f"{origin}\n{tree_size}\n{root}\n{timestamp}\n".encode()


def parse_checkpoint_body(body: bytes) -> tuple[str, int, bytes, str]:
    """Inverse of ``checkpoint_body``: (origin, tree_size, root_hash, timestamp).

    Strict: only the exact bytes ``checkpoint_body`` would produce are accepted.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("checkpoint body is not UTF-8") from None
    lines = text.split("\n")
    if len(lines) != 5 or lines[4] != "":
        raise ValueError("checkpoint body must have exactly four lines")
    origin, size_text, root_text, timestamp = lines[:4]
    if not size_text.isascii() or not size_text.isdigit() or size_text != str(int(size_text)):
        raise ValueError("checkpoint tree size is not a canonical decimal number")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("checkpoint root hash is not base64") from None
    tree_size = int(size_text)
    if len(root) != HASH_BYTES or checkpoint_body(origin, tree_size, root, timestamp) != body:
        raise ValueError("checkpoint body is not canonical")
    return origin, tree_size, root, timestamp
