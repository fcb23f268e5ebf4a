"""audit log: leaf hashes in tiles, tree nodes from the tile level up

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Until 0004 `audit_nodes` held every perfect subtree, one row per leaf hash included
(about two rows per event). From here on the leaf hashes are kept by position in
`audit_leaves`, 2**4 per row (their concatenation), and `audit_nodes` keeps only the
levels >= 4; the levels in between are recomputed from one tile when a proof needs
them. The upgrade moves the stored leaf hashes into tiles as they are (it recomputes
nothing, so damage done before the upgrade is still reported by `audit verify`) and
drops the rows of levels 0-3. The tile height is fixed here on purpose: it is
`audit_tables.TILE_LEVEL` at the time of writing, and changing it needs a migration.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INT64_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TILE_LEVEL = 4
_BATCH_TILES = 4096


def upgrade() -> None:
    op.create_table(
        "audit_leaves",
        sa.Column("tile", _INT64_KEY, autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tile"),
    )
    conn = op.get_bind()
    per_tile = 1 << _TILE_LEVEL
    insert = sa.text("INSERT INTO audit_leaves (tile, hashes) VALUES (:tile, :hashes)")
    pending: list[dict[str, object]] = []
    tile, kept = -1, list[bytes]()  # the tile being filled, its leaf hashes so far
    after = -1
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT idx, hash FROM audit_nodes WHERE level = 0 AND idx > :after "
                "ORDER BY idx LIMIT :limit"
            ),
            {"after": after, "limit": per_tile * _BATCH_TILES},
        ).all()
        for idx, digest in rows:
            position = int(idx)
            if position >> _TILE_LEVEL != tile:
                if kept:
                    pending.append({"tile": tile, "hashes": b"".join(kept)})
                tile, kept = position >> _TILE_LEVEL, []
            # A leaf row missing before the upgrade stays missing: the tile is cut at
            # the gap, which `audit verify` reports as a missing leaf hash.
            if position == (tile << _TILE_LEVEL) + len(kept):
                kept.append(bytes(digest))
        if len(pending) >= _BATCH_TILES or (not rows and pending):
            conn.execute(insert, pending)
            pending = []
        if not rows:
            break
        after = int(rows[-1][0])
    if kept:
        conn.execute(insert, [{"tile": tile, "hashes": b"".join(kept)}])
    conn.execute(sa.text("DELETE FROM audit_nodes WHERE level < :level"), {"level": _TILE_LEVEL})


def _pairs(hashes: list[bytes]) -> list[bytes]:
    return [
        hashlib.sha256(b"\x01" + hashes[n] + hashes[n + 1]).digest()
        for n in range(0, len(hashes) - 1, 2)
    ]


def downgrade() -> None:
    # Back to one row per perfect subtree: the leaf hashes as stored, and levels
    # 1-3 recomputed from them (they were derived data then too).
    conn = op.get_bind()
    insert = sa.text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:level, :idx, :hash)")
    after = -1
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT tile, hashes FROM audit_leaves WHERE tile > :after ORDER BY tile "
                "LIMIT :limit"
            ),
            {"after": after, "limit": _BATCH_TILES},
        ).all()
        if not rows:
            break
        values: list[dict[str, object]] = []
        for tile, blob in rows:
            hashes = [bytes(blob)[at : at + 32] for at in range(0, len(blob), 32)]
            for level in range(_TILE_LEVEL):
                first = (int(tile) << _TILE_LEVEL) >> level
                values += [
                    {"level": level, "idx": first + n, "hash": digest}
                    for n, digest in enumerate(hashes)
                ]
                hashes = _pairs(hashes)
        conn.execute(insert, values)
        after = int(rows[-1][0])
    op.drop_table("audit_leaves")
