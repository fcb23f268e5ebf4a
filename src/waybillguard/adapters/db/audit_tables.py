"""Tables of the tamper-evident audit log. Every name starts with `audit_`.

Covered by the Merkle tree (tampering is detected by `waybillguard audit verify`):

* `audit_events`      the log: `seq` (0-based leaf index) and the canonical event bytes.
* `audit_leaves`      the leaf hashes by position, in tiles of 2**TILE_LEVEL (one row
                      per tile: `hashes` is their concatenation, the last tile may be
                      partial), so a row moved, inserted or deleted in `audit_events` no
                      longer lines up with the leaf hash recorded for its position.
* `audit_nodes`       the perfect subtrees of level >= TILE_LEVEL (the levels below are
                      recomputed from one tile of leaf hashes), so proofs read one tile
                      and O(log n) node rows.
* `audit_checkpoints` signed (tree size, root hash, time) statements.

Bookkeeping, checked against the above by `verify`:

* `audit_pending`     events made durable by writers and not yet sequenced.
* `audit_state`       one row: sequenced tree size, compact-tree frontier and root.

Derived lookup data (not hashed; `verify --deep` checks it against the hashed events):

* `audit_index`       when/who/what of each event, keyed by its event id.
* `audit_waybill_refs` which waybills each event names.

An event's id (`event_id`) is its `audit_pending.id`, the number a writer receives
when its event is durable; `audit_events.event_id` keeps it after sequencing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)

from waybillguard.adapters.db.tables import metadata

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (no second index, rows
# stored in key order; AUTOINCREMENT requires it); PostgreSQL gets 64-bit integers.
Int64Key = BigInteger().with_variant(Integer(), "sqlite")

# Timestamps are stored as RFC 3339 UTC strings with microseconds ("...Z"): they sort
# lexicographically in time order on every backend and need no conversion per row.
TIMESTAMP_LENGTH = 32

audit_pending = Table(
    "audit_pending",
    metadata,
    Column("id", Int64Key, primary_key=True, autoincrement=True),
    Column("data", LargeBinary, nullable=False),
    # AUTOINCREMENT: ids are never reused after sealing empties the table.
    sqlite_autoincrement=True,
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Int64Key, primary_key=True, autoincrement=False),
    Column("event_id", BigInteger, nullable=False, unique=True),
    Column("data", LargeBinary, nullable=False),
)

# Height of a leaf tile; `services.audit` builds and reads the tree with it and
# migration 0005 converted older databases to it. Changing it needs a migration.
TILE_LEVEL = 4

audit_leaves = Table(
    "audit_leaves",
    metadata,
    Column("tile", Int64Key, primary_key=True, autoincrement=False),
    Column("hashes", LargeBinary, nullable=False),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,
)

audit_state = Table(
    "audit_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
    # JSON list of [height, hex hash] pairs: the compact tree after `tree_size` leaves.
    Column("frontier", Text, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("updated_at", String(TIMESTAMP_LENGTH), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Int64Key, primary_key=True, autoincrement=True),
    Column("origin", String(128), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("timestamp", String(TIMESTAMP_LENGTH), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Index("ix_audit_checkpoints_size", "tree_size"),
    sqlite_autoincrement=True,
)

audit_index = Table(
    "audit_index",
    metadata,
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(TIMESTAMP_LENGTH), nullable=False),
    Column("action", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("role", String(64), nullable=False),
    Column("unit", String(128), nullable=False),
    Column("decision", String(32), nullable=False),
    Index("ix_audit_index_actor_at", "actor", "at"),
    Index("ix_audit_index_at", "at"),
)

audit_waybill_refs = Table(
    "audit_waybill_refs",
    metadata,
    Column("waybill", String(32), primary_key=True, autoincrement=False),
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

AUDIT_TABLES = (
    audit_pending,
    audit_events,
    audit_leaves,
    audit_nodes,
    audit_state,
    audit_checkpoints,
    audit_index,
    audit_waybill_refs,
)
