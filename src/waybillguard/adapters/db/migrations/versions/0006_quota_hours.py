"""quota usage summed per principal and clock hour

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Every reveal reads its principal's usage in three rolling windows (hour, day, 30 days).
Until 0005 that summed every `quota_charges` row of the last 30 days: a clerk with
20,000 charges paid ~36 ms a reveal, inside the database's write lock. `quota_hours`
keeps the charges summed per clock hour; a window's usage is then the whole hours after
its start plus the ledger rows of the one hour its start falls in. The upgrade fills it
from the ledger as it is, and widens the ledger's index by `records` so that hour is
read from the index alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "quota_hours",
        sa.Column("principal_id", _ID, nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"]),
        sa.PrimaryKeyConstraint("principal_id", "hour"),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_quota_charges_principal_at", table_name="quota_charges")
    op.create_index(
        "ix_quota_charges_principal_at_records",
        "quota_charges",
        ["principal_id", "at", "records"],
    )
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":  # `at` is naive UTC text there
        hour = "CAST(strftime('%s', at) AS INTEGER) / 3600"
    else:
        hour = "CAST(floor(extract(epoch FROM at) / 3600) AS BIGINT)"
    conn.execute(
        sa.text(
            "INSERT INTO quota_hours (principal_id, hour, records) "
            f"SELECT principal_id, {hour}, SUM(records) FROM quota_charges "
            f"GROUP BY principal_id, {hour}"
        )
    )


def downgrade() -> None:
    op.drop_table("quota_hours")
    op.drop_index("ix_quota_charges_principal_at_records", table_name="quota_charges")
    op.create_index("ix_quota_charges_principal_at", "quota_charges", ["principal_id", "at"])
