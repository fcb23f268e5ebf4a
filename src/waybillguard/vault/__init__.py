"""The vault: the only code that holds keys and the only code that decrypts.

Its public face is small, in the spirit of `cryptography`'s recipes:

* `Vault.seal(fields)`                        -> SealedFields (uid, ciphertexts, wrapped key)
* `Vault.open_fields(record, grant)`          -> plaintext of the granted fields only
* `Vault.index_phone / index_name_phone`      -> keyed blind indexes for exact lookup
* `Vault.issue_tracking_numbers / verify_tracking_number`
* `Vault.rewrap(...)`                         -> key rotation without touching ciphertexts
* `Vault.checkpoint_signer()`                 -> Ed25519 signer for audit-log checkpoints
* `Vault.hash_password / verify_password`, `new_client_secret / verify_client_secret`,
  `enrol_totp / verify_totp`, `new_session_token / session_token_hash`
                                               -> credentials (see `vault.credentials`)

Shredding is the destruction of a wrapped data key by the store; see
`waybillguard.services.shredding`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from waybillguard.vault import credentials as _credentials
from waybillguard.vault.blind_index import BlindIndexer
from waybillguard.vault.checkpoint_signing import (
    CheckpointSigner,
    checkpoint_body,
    derive_seed,
    key_id_of,
    parse_checkpoint_body,
    verify_signature,
)
from waybillguard.vault.credentials import (
    CLIENT_SECRET_PREFIX,
    SESSION_TOKEN_PREFIX,
    CredentialError,
    TotpSealer,
)
from waybillguard.vault.delivery_tokens import DeliveryTokens, InvalidDeliveryToken
from waybillguard.vault.envelope import (
    DecryptionError,
    SealedFields,
    new_uid,
    open_fields,
    rewrap_dek,
    seal_fields,
)
from waybillguard.vault.key_provider import FileKeyProvider, KeyProvider, KeyringError
from waybillguard.vault.raw_cipher import throwaway_sealer
from waybillguard.vault.tracking import TrackingAuthority

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "SESSION_TOKEN_PREFIX",
    "CheckpointSigner",
    "CredentialError",
    "DecryptionError",
    "InvalidDeliveryToken",
    "KeyProvider",
    "KeyringError",
    "RevealGrant",
    "SealedFields",
    "SealedRecord",
    "Vault",
    "checkpoint_body",
    "initialise_keyring",
    "key_id_of",
    "parse_checkpoint_body",
    "throwaway_sealer",
    "verify_signature",
]


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """What the store hands back for decryption: no plaintext, no keys."""

    tracking_number: str
    uid: bytes
    kek_id: str | None
    wrapped_dek: bytes | None
    ciphertexts: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class RevealGrant:
    """Permission to decrypt named fields of one waybill.

    Issued only after the decision was made, the quota charged and the audit
    event made durable (`audit_ref` names that event); the vault refuses to
    decrypt anything the grant does not name.
    """

    tracking_number: str
    fields: frozenset[str]
    audit_ref: str


class ShreddedError(DecryptionError):
    """The waybill's data key was destroyed: its personal data is gone for good."""


def initialise_keyring(path: Path) -> bool:
    """Create a keyring at `path` unless one exists. Returns True when created."""
    if path.exists():
        FileKeyProvider(path).add_missing_secrets()  # validates permissions and format
        return False
    FileKeyProvider.create(path)
    return True


class Vault:
    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider
        self._indexer = BlindIndexer(provider.secret("blind_index"))
        self._tracking = TrackingAuthority(provider.secret("tracking"))
        # Derived on first use: a keyring from before logins existed still opens for
        # everything else until `waybillguard init` adds the credentials secret.
        self._totp_sealer: TotpSealer | None = None
        self._tokens: DeliveryTokens | None = None

    @classmethod
    def from_keyring_file(cls, path: Path) -> Vault:
        return cls(FileKeyProvider(path))

    # -- sealing -------------------------------------------------------------
    def seal(self, fields: Mapping[str, str]) -> SealedFields:
        """Encrypt one waybill's personal fields under a fresh data key."""
        return seal_fields(self._provider, new_uid(), fields)

    def open_fields(self, record: SealedRecord, grant: RevealGrant) -> dict[str, str]:
        if grant.tracking_number != record.tracking_number or not grant.audit_ref:
            raise PermissionError("reveal grant does not cover this waybill")
        if record.kek_id is None or record.wrapped_dek is None:
            raise ShreddedError("waybill was shredded")
        wanted = sorted(grant.fields)
        missing = [f for f in wanted if f not in record.ciphertexts]
        if missing:
            raise KeyError(f"no sealed field named {missing[0]}")
        return open_fields(
            self._provider,
            record.uid,
            record.kek_id,
            record.wrapped_dek,
            record.ciphertexts,
            wanted,
        )

    # -- blind indexes -----------------------------------------------------------
    def index_phone(self, e164: str) -> bytes:
        return self._indexer.phone(e164)

    def index_name_phone(self, name: str, e164: str) -> bytes:
        return self._indexer.name_phone(name, e164)

    def phone_matches(self, e164: str, index: bytes | None) -> bool:
        """Whether ``e164`` is the phone behind a stored blind index (compared in
        constant time; None, a waybill without one, never matches)."""
        return index is not None and hmac.compare_digest(self._indexer.phone(e164), index)

    # -- tracking numbers ----------------------------------------------------------
    def issue_tracking_numbers(self, prefix: str, counters: Sequence[int]) -> list[str]:
        return self._tracking.issue(prefix, counters)

    def verify_tracking_number(self, number: str) -> bool:
        return self._tracking.verify(number)

    # -- audit checkpoints -----------------------------------------------------------
    def checkpoint_signer(self) -> CheckpointSigner:
        """The Ed25519 key that signs audit-log checkpoints (seed derived by HKDF from
        the keyring's audit secret; the private key never leaves the vault)."""
        return CheckpointSigner(derive_seed(self._provider.secret("audit_checkpoint")))

    # -- key rotation --------------------------------------------------------------
    @property
    def active_kek_id(self) -> str:
        return self._provider.active_kek_id()

    def kek_ids(self) -> list[str]:
        return self._provider.kek_ids()

    def create_kek(self) -> str:
        return self._provider.create_kek()

    def retire_kek(self, kek_id: str) -> None:
        self._provider.retire_kek(kek_id)

    def rewrap(self, uid: bytes, kek_id: str, wrapped: bytes, new_kek_id: str) -> bytes:
        return rewrap_dek(self._provider, uid, kek_id, wrapped, new_kek_id)

    # -- label QR tokens ---------------------------------------------------------------
    def issue_delivery_token(self, tracking_number: str, expires_at: int) -> str:
        """An opaque, authenticated, expiring token for a label's QR code (no PII)."""
        return self._delivery_tokens().issue(tracking_number, expires_at)

    def open_delivery_token(self, token: str) -> tuple[str, int]:
        """(tracking number, expiry) of an authentic token; raises InvalidDeliveryToken."""
        return self._delivery_tokens().open(token)

    def _delivery_tokens(self) -> DeliveryTokens:
        if self._tokens is None:
            self._tokens = DeliveryTokens(self._provider.secret("delivery_token"))
        return self._tokens

    # -- credentials -----------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        """argon2id encoded hash (``$argon2id$v=19$m=65536,t=3,p=4$…``)."""
        return _credentials.hash_secret(password)

    def verify_password(self, encoded: str | None, password: str) -> bool:
        """Constant work whether or not there is a stored hash (no user enumeration)."""
        return _credentials.verify_secret(encoded, password)

    def password_needs_rehash(self, encoded: str) -> bool:
        return _credentials.needs_rehash(encoded)

    def new_client_secret(self) -> tuple[str, str]:
        """(client secret to show once, its argon2id hash to store)."""
        return _credentials.new_client_secret()

    def verify_client_secret(self, encoded: str | None, secret: str) -> bool:
        return _credentials.verify_secret(encoded, secret)

    def _sealer(self) -> TotpSealer:
        if self._totp_sealer is None:
            self._totp_sealer = TotpSealer(self._provider.secret("credentials"))
        return self._totp_sealer

    def enrol_totp(self, principal_id: int) -> tuple[str, bytes]:
        """(base32 secret for the authenticator app, shown once; the sealed blob to store)."""
        secret = _credentials.new_totp_secret()
        return secret, self._sealer().seal(principal_id, secret)

    def verify_totp(
        self,
        principal_id: int,
        sealed: bytes,
        code: str,
        at: datetime,
        after_step: int | None,
    ) -> int | None:
        """The matched RFC 6238 time step (> `after_step`), or None. Raises
        CredentialError if the sealed secret does not belong to this principal."""
        secret = self._sealer().open(principal_id, sealed)
        return _credentials.verify_totp(secret, code, at, after_step)

    def new_session_token(self) -> tuple[str, bytes]:
        """(``wg_…`` token for the caller, its SHA-256 to store)."""
        return _credentials.new_session_token()

    def session_token_hash(self, token: str) -> bytes:
        return _credentials.token_digest(token)
