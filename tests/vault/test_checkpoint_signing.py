"""Checkpoint signatures: RFC 8032 known answer, tamper detection, body layout."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from waybillguard.vault.checkpoint_signing import (
    CheckpointSigner,
    checkpoint_body,
    derive_seed,
    key_id_of,
    parse_checkpoint_body,
    verify_signature,
)

# RFC 8032 §7.1, TEST 1 and TEST 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]

ROOT = hashlib.sha256(b"root").digest()


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    signer = CheckpointSigner(bytes.fromhex(seed))
    assert signer.public_key.hex() == public
    assert signer.sign(bytes.fromhex(message)).hex() == signature
    assert verify_signature(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature))
    assert signer.key_id == hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16]
    assert key_id_of(signer.public_key) == signer.key_id
    assert seed not in repr(signer)


def test_sign_and_verify_checkpoint() -> None:
    signer = CheckpointSigner(derive_seed(b"k" * 32))
    body = checkpoint_body("waybillguard.test/audit", 42, ROOT, "2024-05-01T12:00:00.000000Z")
    signature = signer.sign(body)
    assert len(signature) == 64
    assert verify_signature(signer.public_key, body, signature)
    # Verifies with cryptography's own API too (standard Ed25519, nothing bespoke).
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(signature, body)

    other = checkpoint_body("waybillguard.test/audit", 43, ROOT, "2024-05-01T12:00:00.000000Z")
    assert not verify_signature(signer.public_key, other, signature)
    tampered = bytearray(signature)
    tampered[10] ^= 1
    assert not verify_signature(signer.public_key, body, bytes(tampered))
    stranger = CheckpointSigner(derive_seed(b"s" * 32))
    assert not verify_signature(stranger.public_key, body, signature)
    assert not verify_signature(signer.public_key[:31], body, signature)
    assert not verify_signature(signer.public_key, body, signature[:63])
    assert not verify_signature(b"\x00" * 32, body, signature)


def test_derive_seed() -> None:
    seed = derive_seed(b"a" * 32)
    assert len(seed) == 32
    assert seed == derive_seed(b"a" * 32)
    assert seed != derive_seed(b"b" * 32)
    assert seed != b"a" * 32
    with pytest.raises(ValueError):
        derive_seed(b"short")
    with pytest.raises(ValueError):
        CheckpointSigner(b"\x00" * 31)


def test_checkpoint_body_layout_and_parse() -> None:
    body = checkpoint_body("waybillguard.test/audit", 1234, ROOT, "2024-05-01T12:00:00Z")
    expected = (
        "waybillguard.test/audit\n1234\n"
        + base64.b64encode(ROOT).decode()
        + "\n2024-05-01T12:00:00Z\n"
    )
    assert body == expected.encode()
    assert parse_checkpoint_body(body) == (
        "waybillguard.test/audit",
        1234,
        ROOT,
        "2024-05-01T12:00:00Z",
    )
    for bad in [
        body[:-1],
        body + b"extra\n",
        body.replace(b"1234", b"01234"),
        body.replace(b"1234", b"-1"),
        body.replace(b"1234", b"\xd9\xa1"),  # Arabic-Indic digit one
        body.replace(base64.b64encode(ROOT), base64.b64encode(ROOT[:31])),
        body.replace(base64.b64encode(ROOT), b"not base64!"),
        b"\xff\n1\nAA==\nt\n",
    ]:
        with pytest.raises(ValueError):
            parse_checkpoint_body(bad)


@pytest.mark.parametrize(
    ("origin", "size", "root", "timestamp"),
    [
        ("two\nlines", 1, ROOT, "t"),
        ("", 1, ROOT, "t"),
        ("o", -1, ROOT, "t"),
        ("o", True, ROOT, "t"),
        ("o", 1, ROOT[:16], "t"),
        ("o", 1, ROOT, "t\n"),
    ],
)
def test_checkpoint_body_refuses_bad_input(
    origin: str, size: int, root: bytes, timestamp: str
) -> None:
    with pytest.raises(ValueError):
        checkpoint_body(origin, size, root, timestamp)
