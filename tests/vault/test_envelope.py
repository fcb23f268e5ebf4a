"""Envelope encryption: round trip, binding to waybill and field, tamper detection."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from waybillguard.vault import DecryptionError, RevealGrant, SealedRecord, Vault, initialise_keyring
from waybillguard.vault.key_provider import FileKeyProvider, KeyringError

FIELDS = {
    "sender.name": "欧阳娜娜",
    "sender.phone": "13912345678",
    "sender.address": "科技园路12号3栋502室",
    "recipient.name": "阿卜杜拉·买买提",
    "recipient.phone": "075526543210",
    "recipient.address": "建国路88号1单元1101室",
}


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    path = tmp_path / "keyring.json"
    initialise_keyring(path)
    return Vault.from_keyring_file(path)


def record(number: str, sealed) -> SealedRecord:  # type: ignore[no-untyped-def]
    return SealedRecord(number, sealed.uid, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertexts)


def grant(number: str, fields) -> RevealGrant:  # type: ignore[no-untyped-def]
    return RevealGrant(number, frozenset(fields), audit_ref="test-event-1")


def test_round_trip_only_granted_fields(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    opened = vault.open_fields(record("WG1", sealed), grant("WG1", ["recipient.address"]))
    assert opened == {"recipient.address": FIELDS["recipient.address"]}


def test_ciphertexts_hold_no_plaintext(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    blob = b"".join(sealed.ciphertexts.values()) + sealed.wrapped_dek
    for value in FIELDS.values():
        assert value.encode() not in blob


def test_swapped_fields_fail(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    cts = dict(sealed.ciphertexts)
    cts["sender.phone"], cts["recipient.phone"] = cts["recipient.phone"], cts["sender.phone"]
    swapped = SealedRecord("WG1", sealed.uid, sealed.kek_id, sealed.wrapped_dek, cts)
    with pytest.raises(DecryptionError):
        vault.open_fields(swapped, grant("WG1", ["sender.phone"]))


def test_ciphertext_moved_to_another_waybill_fails(vault: Vault) -> None:
    a, b = vault.seal(FIELDS), vault.seal(FIELDS)
    # b's wrapped key with a's ciphertexts, and a's wrapped key under b's uid.
    mixed = SealedRecord("WG2", b.uid, b.kek_id, b.wrapped_dek, a.ciphertexts)
    with pytest.raises(DecryptionError):
        vault.open_fields(mixed, grant("WG2", ["sender.name"]))
    moved_key = SealedRecord("WG2", b.uid, a.kek_id, a.wrapped_dek, a.ciphertexts)
    with pytest.raises(DecryptionError):
        vault.open_fields(moved_key, grant("WG2", ["sender.name"]))


def test_flipped_bit_fails(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    cts = dict(sealed.ciphertexts)
    blob = bytearray(cts["recipient.name"])
    blob[-1] ^= 1
    cts["recipient.name"] = bytes(blob)
    with pytest.raises(DecryptionError):
        vault.open_fields(
            SealedRecord("WG1", sealed.uid, sealed.kek_id, sealed.wrapped_dek, cts),
            grant("WG1", ["recipient.name"]),
        )


def test_grant_must_match_waybill_and_be_audited(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    with pytest.raises(PermissionError):
        vault.open_fields(record("WG1", sealed), grant("WG2", ["sender.name"]))
    with pytest.raises(PermissionError):
        vault.open_fields(
            record("WG1", sealed), RevealGrant("WG1", frozenset({"sender.name"}), audit_ref="")
        )


def test_nonces_never_repeat(vault: Vault) -> None:
    nonces = set()
    for _ in range(200):
        for blob in vault.seal(FIELDS).ciphertexts.values():
            nonces.add(blob[:12])
    assert len(nonces) == 200 * len(FIELDS)


def test_keyring_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    assert initialise_keyring(path) is True
    before = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert initialise_keyring(path) is False
    assert path.read_bytes() == before
    with pytest.raises(KeyringError):
        FileKeyProvider.create(path)


def test_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    initialise_keyring(path)
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        FileKeyProvider(path)


def test_malformed_keyring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text("{not json")
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="malformed"):
        FileKeyProvider(path)


def test_blind_indexes_are_keyed(tmp_path: Path) -> None:
    a_path, b_path = tmp_path / "a.json", tmp_path / "b.json"
    initialise_keyring(a_path)
    initialise_keyring(b_path)
    a, b = Vault.from_keyring_file(a_path), Vault.from_keyring_file(b_path)
    assert a.index_phone("+8613912345678") == a.index_phone("+8613912345678")
    assert a.index_phone("+8613912345678") != b.index_phone("+8613912345678")
    assert a.index_phone("+8613912345678") != a.index_phone("+8613912345679")
    assert a.index_name_phone("王五", "+8613912345678") != a.index_phone("+8613912345678")


def test_init_upgrades_an_older_keyring_without_replacing_keys(tmp_path: Path) -> None:
    import json

    path = tmp_path / "keyring.json"
    initialise_keyring(path)
    document = json.loads(path.read_text())
    del document["secrets"]["audit_checkpoint"]
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(KeyringError, match="waybillguard init"):
        FileKeyProvider(path).secret("audit_checkpoint")
    assert initialise_keyring(path) is False
    upgraded = json.loads(path.read_text())
    assert upgraded["keks"] == document["keks"]
    assert upgraded["secrets"]["blind_index"] == document["secrets"]["blind_index"]
    assert upgraded["secrets"]["tracking"] == document["secrets"]["tracking"]
    assert len(FileKeyProvider(path).secret("audit_checkpoint")) == 32


def test_blind_indexes_are_hmac_sha256_of_label_and_value() -> None:
    """The stored indexes of earlier imports must keep matching: the values are
    HMAC-SHA256(key, label | value) truncated to 16 bytes, whatever HMAC code computes them."""
    import hashlib
    import hmac

    from waybillguard.vault.blind_index import BlindIndexer

    key = bytes(range(32))
    indexer = BlindIndexer(key)
    for e164, name in (("+8613912345678", "王五"), ("+861012345678", "José Müller")):
        phone = hmac.new(key, b"waybillguard/v1/phone|" + e164.encode(), hashlib.sha256)
        assert indexer.phone(e164) == phone.digest()[:16]
        both = b"waybillguard/v1/name+phone|" + e164.encode() + b"|" + name.encode("utf-8")
        assert indexer.name_phone(name, e164) == hmac.new(key, both, hashlib.sha256).digest()[:16]


def test_every_field_has_its_own_nonce_and_opens(vault: Vault) -> None:
    sealed = vault.seal(FIELDS)
    assert len({ct[:12] for ct in sealed.ciphertexts.values()}) == len(FIELDS)
    assert vault.open_fields(record("WG1", sealed), grant("WG1", FIELDS)) == FIELDS
