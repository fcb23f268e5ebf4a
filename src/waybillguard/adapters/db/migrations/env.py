"""Alembic environment: runs on a connection handed over by `waybillguard.adapters.db.schema`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import waybillguard.adapters.db.access_tables
import waybillguard.adapters.db.audit_tables
import waybillguard.adapters.db.telephony_tables  # noqa: F401
from waybillguard.adapters.db.tables import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
