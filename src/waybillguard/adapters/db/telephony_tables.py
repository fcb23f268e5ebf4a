"""Tables of the virtual-number pool (隐私号) and call routing.

No customer phone number is stored here. Couriers' registered phones are kept the way
waybills keep personal fields: AES-GCM ciphertext under a data key wrapped by the
vault, a keyed blind index for matching a caller, and a masked rendering.

* `vn_numbers`         X numbers leased from the carrier, and how many extensions each has.
* `vn_slots`           one row per (X, extension): the active binding it carries (if any),
                       its waybill, and when its cool-down ends (`free_after`).
                       `binding_id` and `tracking_number` are unique: one binding per
                       slot, one active binding per waybill, enforced by the database.
* `vn_bindings`        every binding ever made: active → released | expired.
* `vn_courier_phones`  couriers' registered phones (sealed + blind index + mask).
* `vn_config`          one row: cool-down, grace, thresholds, the pool-low alert latch.
* `vn_provider_tokens` bearer tokens of the telephony provider's routing callback
                       (SHA-256 only).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

import waybillguard.adapters.db.access_tables  # noqa: F401  (principals, for the FK)
from waybillguard.adapters.db.tables import metadata

_ID = BigInteger().with_variant(Integer(), "sqlite")

vn_numbers = Table(
    "vn_numbers",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("number", String(11), nullable=False, unique=True),
    Column("extensions", Integer, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("added_by", String(64), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

vn_slots = Table(
    "vn_slots",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("number_id", _ID, ForeignKey("vn_numbers.id"), nullable=False),
    Column("extension", String(4), nullable=False),
    Column("binding_id", _ID, nullable=True, unique=True),
    Column("tracking_number", String(15), nullable=True, unique=True),
    Column("free_after", DateTime(timezone=True), nullable=False),
    Column("last_released_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("number_id", "extension", name="uq_vn_slots_line"),
)
# Allocation walks this partial index: only unbound slots, oldest cool-down first.
Index(
    "ix_vn_slots_free",
    vn_slots.c.free_after,
    vn_slots.c.id,
    postgresql_where=vn_slots.c.binding_id.is_(None),
    sqlite_where=vn_slots.c.binding_id.is_(None),
)

vn_bindings = Table(
    "vn_bindings",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("slot_id", _ID, ForeignKey("vn_slots.id"), nullable=False),
    Column("tracking_number", String(15), nullable=False),
    Column("state", String(12), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Index("ix_vn_bindings_waybill", "tracking_number"),
    Index("ix_vn_bindings_due", "state", "expires_at"),
)

vn_courier_phones = Table(
    "vn_courier_phones",
    metadata,
    Column("principal_id", _ID, ForeignKey("principals.id"), primary_key=True),
    Column("phone_index", LargeBinary(16), nullable=False, unique=True),
    Column("uid", LargeBinary(16), nullable=False),
    Column("kek_id", String(32), nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("ct_phone", LargeBinary, nullable=False),
    Column("mask", String(32), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("registered_by", String(64), nullable=False),
)

vn_config = Table(
    "vn_config",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("cooldown_days", Integer, nullable=False),
    Column("grace_days", Integer, nullable=False),
    Column("undelivered_days", Integer, nullable=False),
    Column("low_percent", Integer, nullable=False),
    Column("low_free", Integer, nullable=False),
    Column("low_alerted", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("updated_by", String(64), nullable=True),
)

vn_provider_tokens = Table(
    "vn_provider_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("label", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
