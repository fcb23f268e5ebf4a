"""Bringing a database to the current schema with Alembic.

Every command opens the home and compares the database's revision with this
version's head. Alembic itself (~0.15 s to import, more to load the migration
scripts) is only needed to migrate, so the comparison does without it: the stored
revision is read with one query, and the head is the newest migration file's
number — the migrations are one linear chain whose revision ids are their file
numbers (`tests/services/test_schema_revision.py` checks both against Alembic's own
answers)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION_FILE = re.compile(r"(\d{4})_\w+\.py")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(engine: Engine) -> None:
    from alembic import command

    config = alembic_config(engine)
    with engine.connect().execution_options(immediate=True) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None if it was never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        stored = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    if len(stored) > 1:
        raise RuntimeError(f"the database records {len(stored)} schema heads; expected one")
    return str(stored[0]) if stored else None


def head_revision(_engine: Engine | None = None) -> str | None:
    """The revision this version of waybillguard needs (the newest migration)."""
    return _newest_migration()


@functools.cache
def _newest_migration() -> str | None:
    numbers = [
        m.group(1)
        for path in (MIGRATIONS / "versions").iterdir()
        if (m := _VERSION_FILE.fullmatch(path.name))
    ]
    return max(numbers) if numbers else None
