"""The schema revision check every command makes (`adapters/db/schema.py`) does without
Alembic; here its two answers are held to Alembic's own, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from waybillguard.adapters.db import schema
from waybillguard.services.app import App


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(schema.alembic_config(create_engine("sqlite://")))


def _assigned(path: Path, name: str) -> object:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                assert node.value is not None
                return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} assigns no {name}")


def test_head_is_alembics_head() -> None:
    assert schema.head_revision() == _script().get_current_head()


def test_migrations_are_one_chain_numbered_by_their_files() -> None:
    files = sorted((schema.MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert files, "no migrations found"
    previous = None
    for path in files:
        assert _assigned(path, "revision") == path.name[:4], path.name
        assert _assigned(path, "down_revision") == previous, path.name
        previous = path.name[:4]
    assert len(files) == len(list(_script().walk_revisions()))


def test_current_revision_is_alembics(app: App) -> None:
    with app.engine.connect() as conn:
        expected = MigrationContext.configure(conn).get_current_revision()
    assert expected is not None
    assert schema.current_revision(app.engine) == expected == schema.head_revision()


def test_a_database_never_migrated_has_no_revision(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert schema.current_revision(engine) is None
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    assert schema.current_revision(engine) is None  # the table exists, no row yet
    engine.dispose()
