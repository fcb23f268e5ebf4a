"""SQL tables (SQLAlchemy Core). Schema changes go through Alembic migrations.

Personal data appears here only as AES-GCM ciphertext (`ct_*`), keyed blind
indexes (`bi_*`) and masked renderings (`mask_*`). Routing fields (division
codes, status) are clear so parcels can be sorted without decrypting anything.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from waybillguard.domain.fields import PII_FIELDS

metadata = MetaData()


def column_suffix(field: str) -> str:
    return field.replace(".", "_")


CT_COLUMNS = {f: f"ct_{column_suffix(f)}" for f in PII_FIELDS}
MASK_COLUMNS = {f: f"mask_{column_suffix(f)}" for f in PII_FIELDS}
BLIND_INDEX_COLUMNS = (
    "bi_sender_phone",
    "bi_recipient_phone",
    "bi_sender_name_phone",
    "bi_recipient_name_phone",
)
PHONE_INDEX_COLUMNS = ("bi_sender_phone", "bi_recipient_phone")

waybills = Table(
    "waybills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Random 128-bit identity bound into every ciphertext's associated data.
    Column("uid", LargeBinary(16), nullable=False),
    Column("tracking_number", String(15), nullable=False, unique=True),
    Column("merchant", String(64), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("status", String(24), nullable=False),
    Column("weight_g", Integer, nullable=False),
    Column("category", String(16), nullable=False),
    Column("origin_adcode", String(6), nullable=False),
    # Not indexed yet: no query filters on it in this release, and each index costs
    # import throughput (see BENCHMARKS.md). Station views will add it with a migration.
    Column("destination_adcode", String(6), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("kek_id", String(32), nullable=True),
    Column("wrapped_dek", LargeBinary, nullable=True),
    Column("shredded_at", DateTime(timezone=True), nullable=True),
    *(Column(name, LargeBinary, nullable=True) for name in CT_COLUMNS.values()),
    *(Column(name, String(128), nullable=True) for name in MASK_COLUMNS.values()),
    # Phone indexes are B-tree indexed; a name+phone lookup walks the phone index and
    # compares the name+phone column, which saves two index updates per insert.
    *(
        Column(name, LargeBinary(16), nullable=True, index=name in PHONE_INDEX_COLUMNS)
        for name in BLIND_INDEX_COLUMNS
    ),
    UniqueConstraint("merchant", "order_ref", name="uq_waybills_merchant_order"),
)

# Column order of the bulk insert used by import (see WaybillStore.insert_rows):
# the importer's workers build tuples in this order up to the blind indexes; the
# store appends status and timestamps.
INSERT_COLUMNS = (
    "uid",
    "tracking_number",
    "merchant",
    "order_ref",
    "weight_g",
    "category",
    "origin_adcode",
    "destination_adcode",
    "kek_id",
    "wrapped_dek",
    *CT_COLUMNS.values(),
    *MASK_COLUMNS.values(),
    *BLIND_INDEX_COLUMNS,
    "status",
    "created_at",
    "updated_at",
)
UID_POS, KEK_POS, WRAP_POS = 0, 8, 9

waybill_events = Table(
    "waybill_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("waybill_id", Integer, ForeignKey("waybills.id"), nullable=False),
    Column("status", String(24), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("note", String(200), nullable=True),
    Index("ix_waybill_events_waybill", "waybill_id", "id"),
)

# Routing: a station covers district codes; a waybill's origin/destination station
# is the station covering its division code at read time, so waybills imported
# before a station existed are routed to it too.
station_coverage = Table(
    "station_coverage",
    metadata,
    Column("adcode", String(6), primary_key=True),
    Column("station_code", String(32), nullable=False),
)

tracking_counters = Table(
    "tracking_counters",
    metadata,
    Column("prefix", String(2), primary_key=True),
    Column("next_value", BigInteger, nullable=False),
)

# Lifecycle of key-encryption keys as the data sees it: `active`, `retiring`
# (rotation moving wraps away), `retired` (no wrap left; key destroyed).
keks = Table(
    "keks",
    metadata,
    Column("kek_id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)
