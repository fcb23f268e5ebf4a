"""Credentials in the vault: argon2id hashes, TOTP (RFC 6238) with replay protection,
TOTP secrets sealed to one principal, session tokens stored as SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher

from waybillguard.vault import (
    CLIENT_SECRET_PREFIX,
    SESSION_TOKEN_PREFIX,
    CredentialError,
    KeyringError,
    Vault,
    credentials,
    initialise_keyring,
)

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    path = tmp_path / "keyring.json"
    initialise_keyring(path)
    return Vault.from_keyring_file(path)


# -- passwords -----------------------------------------------------------------------------
def test_password_hash_is_argon2id_with_rfc9106_parameters(vault: Vault) -> None:
    encoded = vault.hash_password("correct horse battery staple")
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse" not in encoded
    assert vault.verify_password(encoded, "correct horse battery staple")
    assert not vault.verify_password(encoded, "correct horse battery stapler")
    assert not vault.verify_password(encoded, "")
    assert not vault.password_needs_rehash(encoded)
    # Same password, fresh salt: hashes differ.
    assert vault.hash_password("correct horse battery staple") != encoded


def test_password_is_nfc_normalised(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    composed = "Café-口令-密码ǅ"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    encoded = vault.hash_password(composed)
    assert vault.verify_password(encoded, decomposed)


def test_missing_hash_costs_a_verification_and_fails(vault: Vault) -> None:
    assert not vault.verify_password(None, "anything at all")
    assert not vault.verify_client_secret(None, "wgs_x")
    assert not vault.verify_password("not-a-hash", "anything at all")


def test_rehash_when_parameters_change(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    weak = vault.hash_password("a long enough password")
    assert not vault.password_needs_rehash(weak)
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(2, 2048, 1))
    assert vault.password_needs_rehash(weak)
    assert vault.verify_password(weak, "a long enough password")  # still verifies
    assert vault.password_needs_rehash("garbage")


def test_client_secret_is_shown_once_and_hashed(vault: Vault) -> None:
    secret, encoded = vault.new_client_secret()
    assert secret.startswith(CLIENT_SECRET_PREFIX) and len(secret) > 40
    assert encoded.startswith("$argon2id$") and secret not in encoded
    assert vault.verify_client_secret(encoded, secret)
    assert not vault.verify_client_secret(encoded, secret + "x")
    assert vault.new_client_secret()[0] != secret


# -- TOTP ----------------------------------------------------------------------------------
def test_totp_matches_rfc6238_within_one_step(vault: Vault) -> None:
    secret, sealed = vault.enrol_totp(7)
    assert len(secret) == 32 and base64.b32decode(secret)  # 160 bits, base32
    otp = pyotp.TOTP(secret)  # SHA-1, 6 digits, 30 s: the authenticator apps' default
    step = credentials.totp_step(T0)
    assert vault.verify_totp(7, sealed, otp.at(T0), T0, None) == step
    assert vault.verify_totp(7, sealed, otp.at(T0 - timedelta(seconds=30)), T0, None) == step - 1
    assert vault.verify_totp(7, sealed, otp.at(T0 + timedelta(seconds=30)), T0, None) == step + 1
    assert vault.verify_totp(7, sealed, otp.at(T0 - timedelta(seconds=60)), T0, None) is None
    assert vault.verify_totp(7, sealed, otp.at(T0 + timedelta(seconds=60)), T0, None) is None


def test_totp_code_is_never_accepted_twice(vault: Vault) -> None:
    secret, sealed = vault.enrol_totp(7)
    otp = pyotp.TOTP(secret)
    code = otp.at(T0)
    step = vault.verify_totp(7, sealed, code, T0, None)
    assert step is not None
    assert vault.verify_totp(7, sealed, code, T0, step) is None  # replay
    older = otp.at(T0 - timedelta(seconds=30))
    assert vault.verify_totp(7, sealed, older, T0, step) is None  # older than the last one
    newer = otp.at(T0 + timedelta(seconds=30))
    assert vault.verify_totp(7, sealed, newer, T0 + timedelta(seconds=30), step) == step + 1


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "12345a", "１２３４５６", " 123456", "x" * 10_000]
)
def test_totp_malformed_codes_never_match(vault: Vault, code: str) -> None:
    _, sealed = vault.enrol_totp(7)
    assert vault.verify_totp(7, sealed, code, T0, None) is None


def test_totp_needs_an_aware_time(vault: Vault) -> None:
    _secret, sealed = vault.enrol_totp(7)
    with pytest.raises(ValueError):
        vault.verify_totp(7, sealed, "123456", datetime(2026, 1, 1), None)


def test_sealed_totp_secret_is_bound_to_the_principal(vault: Vault) -> None:
    secret, sealed = vault.enrol_totp(7)
    assert secret.encode() not in sealed
    assert base64.b32decode(secret) not in sealed
    code = pyotp.TOTP(secret).at(T0)
    with pytest.raises(CredentialError):
        vault.verify_totp(8, sealed, code, T0, None)  # copied onto another account
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(CredentialError):
        vault.verify_totp(7, tampered, code, T0, None)
    with pytest.raises(CredentialError):
        vault.verify_totp(7, b"\x02" + sealed[1:], code, T0, None)
    with pytest.raises(CredentialError):
        vault.verify_totp(7, b"short", code, T0, None)


def test_sealed_totp_secret_needs_this_keyring(vault: Vault, tmp_path: Path) -> None:
    _, sealed = vault.enrol_totp(7)
    other_path = tmp_path / "other" / "keyring.json"
    initialise_keyring(other_path)
    other = Vault.from_keyring_file(other_path)
    with pytest.raises(CredentialError):
        other.verify_totp(7, sealed, "123456", T0, None)


def test_old_keyring_gains_the_credentials_secret(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    initialise_keyring(path)
    document = json.loads(path.read_text())
    del document["secrets"]["credentials"]
    path.write_text(json.dumps(document))
    old = Vault.from_keyring_file(path)  # everything else still works
    assert len(old.index_phone("+8613800000000")) == 16
    with pytest.raises(KeyringError, match="waybillguard init"):
        old.enrol_totp(1)
    assert initialise_keyring(path) is False  # `init` on an existing home upgrades it
    assert "credentials" in json.loads(path.read_text())["secrets"]
    Vault.from_keyring_file(path).enrol_totp(1)


def test_sealer_repr_holds_no_key() -> None:
    sealer = credentials.TotpSealer(b"k" * 32)
    assert repr(sealer) == "TotpSealer()"
    with pytest.raises(ValueError):
        credentials.TotpSealer(b"short")


# -- session tokens ------------------------------------------------------------------------
def test_session_tokens_are_random_and_stored_as_sha256(vault: Vault) -> None:
    tokens = set()
    for _ in range(50):
        token, digest = vault.new_session_token()
        assert token.startswith(SESSION_TOKEN_PREFIX)
        assert len(token) == len(SESSION_TOKEN_PREFIX) + 43  # 32 bytes, URL-safe base64
        assert digest == hashlib.sha256(token.encode()).digest()
        assert vault.session_token_hash(token) == digest
        tokens.add(token)
    assert len(tokens) == 50
