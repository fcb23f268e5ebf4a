"""Key-encryption keys and secret keys, kept outside the database.

A `KeyProvider` owns key-encryption keys (KEKs) and performs wrapping itself, so
a KMS or HSM can implement the same interface without ever exporting a KEK.
`FileKeyProvider` is the embedded default: one JSON file, mode 0600, written
atomically (write to a temporary file, fsync, rename) so a crash never leaves a
half-written keyring.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_WRAP_LABEL = b"waybillguard/v1/dek-wrap|"
KEYRING_FORMAT = 1


class KeyringError(RuntimeError):
    """The keyring is missing, unreadable, unsafe or inconsistent."""


class KeyProvider(Protocol):
    """What the vault needs from wherever key-encryption keys live."""

    def active_kek_id(self) -> str: ...

    def kek_ids(self) -> list[str]: ...

    def wrap(self, kek_id: str, dek: bytes, context: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes: ...

    def create_kek(self) -> str:
        """Add a new KEK and make it the active one for new wraps."""
        ...

    def retire_kek(self, kek_id: str) -> None:
        """Destroy a KEK that no wrapped key depends on any more."""
        ...

    def secret(self, purpose: str) -> bytes:
        """A 32-byte secret for one purpose (blind index, tracking numbers)."""
        ...


@dataclass(frozen=True, slots=True)
class _Kek:
    kek_id: str
    key: bytes
    created: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FileKeyProvider:
    """Keys in a local JSON file with owner-only permissions."""

    SECRET_PURPOSES = (
        "blind_index",
        "tracking",
        "audit_checkpoint",
        "credentials",
        "delivery_token",
    )

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keks: dict[str, _Kek] = {}
        self._active = ""
        self._secrets: dict[str, bytes] = {}
        self._aead: dict[str, AESGCM] = {}
        self._load()

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def create(cls, path: Path) -> FileKeyProvider:
        """Create a new keyring; refuses to overwrite an existing one."""
        if path.exists():
            raise KeyringError("keyring already exists; refusing to overwrite keys")
        kek_id = "kek-1"
        document = {
            "format": KEYRING_FORMAT,
            "active_kek": kek_id,
            "keks": {kek_id: {"key": _b64(secrets.token_bytes(KEY_BYTES)), "created": _now()}},
            "secrets": {p: _b64(secrets.token_bytes(KEY_BYTES)) for p in cls.SECRET_PURPOSES},
        }
        _write_private(path, document, exclusive=True)
        return cls(path)

    def _load(self) -> None:
        try:
            mode = self._path.stat().st_mode
        except FileNotFoundError:
            raise KeyringError("keyring not found; run `waybillguard init`") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError("keyring file is readable by others; chmod 600 it")
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
            keks = {
                kid: _Kek(kid, _unb64(entry["key"]), entry["created"])
                for kid, entry in document["keks"].items()
            }
            active = document["active_kek"]
            secrets_ = {p: _unb64(v) for p, v in document["secrets"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError("keyring file is malformed") from exc
        if active not in keks or any(len(k.key) != KEY_BYTES for k in keks.values()):
            raise KeyringError("keyring file is inconsistent")
        self._keks, self._active, self._secrets = keks, active, secrets_
        self._aead = {kid: AESGCM(k.key) for kid, k in keks.items()}

    def _save(self) -> None:
        document = {
            "format": KEYRING_FORMAT,
            "active_kek": self._active,
            "keks": {
                kid: {"key": _b64(k.key), "created": k.created} for kid, k in self._keks.items()
            },
            "secrets": {p: _b64(v) for p, v in self._secrets.items()},
        }
        _write_private(self._path, document, exclusive=False)

    def reload(self) -> None:
        self._load()

    def active_kek_id(self) -> str:
        return self._active

    def kek_ids(self) -> list[str]:
        return sorted(self._keks, key=_kek_number)

    def wrap(self, kek_id: str, dek: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._cipher(kek_id).encrypt(nonce, dek, _WRAP_LABEL + context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: bytes) -> bytes:
        return self._cipher(kek_id).decrypt(wrapped[:12], wrapped[12:], _WRAP_LABEL + context)

    def _cipher(self, kek_id: str) -> AESGCM:
        cipher = self._aead.get(kek_id)
        if cipher is None:
            # Another process may have rotated since we loaded: look again once.
            self._load_new_keks()
            cipher = self._aead.get(kek_id)
        if cipher is None:
            raise KeyringError(f"key-encryption key {kek_id} is not in the keyring")
        return cipher

    def _load_new_keks(self) -> None:
        """Pick up KEKs added by another process, keeping the ones we hold."""
        held = dict(self._keks)
        self._load()
        for kid, kek in held.items():
            if kid not in self._keks:
                self._keks[kid] = kek
                self._aead[kid] = AESGCM(kek.key)

    def create_kek(self) -> str:
        kek_id = f"kek-{max(_kek_number(k) for k in self._keks) + 1}"
        key = secrets.token_bytes(KEY_BYTES)
        self._keks[kek_id] = _Kek(kek_id, key, _now())
        self._aead[kek_id] = AESGCM(key)
        self._active = kek_id
        self._save()
        return kek_id

    def retire_kek(self, kek_id: str) -> None:
        if kek_id == self._active:
            raise KeyringError("the active key-encryption key cannot be retired")
        self._keks.pop(kek_id, None)
        self._aead.pop(kek_id, None)
        self._save()

    def secret(self, purpose: str) -> bytes:
        try:
            return self._secrets[purpose]
        except KeyError:
            raise KeyringError(
                f"keyring has no secret for {purpose}; run `waybillguard init` to upgrade it"
            ) from None

    def add_missing_secrets(self) -> list[str]:
        """Upgrade an older keyring: add secrets for purposes it lacks. Never replaces one."""
        missing = [p for p in self.SECRET_PURPOSES if p not in self._secrets]
        if missing:
            for purpose in missing:
                self._secrets[purpose] = secrets.token_bytes(KEY_BYTES)
            self._save()
        return missing


def _kek_number(kek_id: str) -> int:
    return int(kek_id.rsplit("-", 1)[1])


def _write_private(path: Path, document: dict[str, object], *, exclusive: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, indent=2).encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=".keyring-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp_name, path)  # fails if a keyring appeared meanwhile
            os.unlink(tmp_name)
        else:
            os.replace(tmp_name, path)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise KeyringError("keyring already exists; refusing to overwrite keys") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
