"""how a customer-service ticket's party was verified

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

A ticket opened with the customer's phone number, which matched the phone of the party
it names (compared by blind index), records `verified_by = 'phone'`. Policies whose
ticket roles use `tickets = "verified"` (the default) accept only such tickets; tickets
opened before this revision, or bound on a first reveal, stay unverified (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("verified_by", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("verified_by")
