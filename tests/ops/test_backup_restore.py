"""The documented backup and restore procedure (docs/http-api.md), run for real.

Back up the database and the keyring, wipe the home (and drop the PostgreSQL
database), restore both, then: a reveal still decrypts to the original value, and
`waybillguard audit verify` passes, also against a checkpoint handed out before the
backup. SQLite: `sqlite3 DB ".backup FILE"` + copy keyring.json. PostgreSQL:
`pg_dump -Fc` / `pg_restore` + copy keyring.json."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_settings, run_cli
from tests.http.harness import Seeded, backend_url, seed_home
from waybillguard.config import DATABASE_FILE, KEYRING_FILE
from waybillguard.services import audit, identities, reveal
from waybillguard.services.app import open_app
from waybillguard.services.caller import Caller


def _reveal(seeded: Seeded, database_url: str | None) -> tuple[str, str]:
    settings = make_settings(seeded.settings.home, database_url)
    number = seeded.net.s1_numbers[4]
    with open_app(settings) as app:
        clerk = identities.get_principal(app, "clerk1")
        assert clerk is not None
        caller = Caller(clerk, client="restore-test", mfa_at=datetime.now(UTC))
        outcome = reveal.reveal(app, caller, number, ["recipient.phone"], "delivery")
        assert outcome.allowed, outcome.decision
        return number, outcome.fields[number]["recipient.phone"]


def _verify(home: Path, database_url: str | None, checkpoint: Path) -> None:
    env = {"WAYBILLGUARD_DATABASE_URL": database_url} if database_url else {}
    result = run_cli(
        "audit", "verify", "--checkpoint", str(checkpoint), "--json", home=home, env_extra=env
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_wipe_restore(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = backend_url(backend, request)
    seeded = seed_home(tmp_path, url, count=20)
    home = seeded.settings.home
    number, phone = _reveal(seeded, url)
    expected = seeded.net.rows[seeded.net.numbers.index(number)]["recipient"]["phone"]
    assert phone == expected
    checkpoint = tmp_path / "handed-out-checkpoint.json"
    with open_app(seeded.settings) as app:
        audit.export_checkpoint(app, checkpoint)

    backup = tmp_path / "backup"
    backup.mkdir(mode=0o700)
    # -- back up: database, then the keyring (and the config) -----------------------
    if url is None:
        subprocess.run(
            ["sqlite3", str(home / DATABASE_FILE), f".backup {backup / DATABASE_FILE}"],
            check=True,
        )
    else:
        pg = request.getfixturevalue("pg_server")
        subprocess.run(
            [str(pg.bindir / "pg_dump"), "-Fc", "-f", str(backup / "waybillguard.dump"), url],
            check=True,
        )
    shutil.copy2(home / KEYRING_FILE, backup / KEYRING_FILE)
    shutil.copy2(home / "config.toml", backup / "config.toml")

    # -- disaster: the home and the database are gone ----------------------------------
    shutil.rmtree(home)
    restored_url = url
    if url is not None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        restored_url = pg.create_database()

    # -- restore ----------------------------------------------------------------------
    home.mkdir(mode=0o700)
    shutil.copy2(backup / KEYRING_FILE, home / KEYRING_FILE)
    (home / KEYRING_FILE).chmod(0o600)
    shutil.copy2(backup / "config.toml", home / "config.toml")
    if restored_url is None:
        shutil.copy2(backup / DATABASE_FILE, home / DATABASE_FILE)
    else:
        subprocess.run(
            [
                str(pg.bindir / "pg_restore"),
                "--no-owner",
                "-d",
                restored_url,
                str(backup / "waybillguard.dump"),
            ],
            check=True,
        )

    # -- check: a reveal decrypts, the log verifies against the old checkpoint ----------
    again, phone_again = _reveal(seeded, restored_url)
    assert (again, phone_again) == (number, expected)
    _verify(home, restored_url, checkpoint)
    readiness = run_cli(
        "audit",
        "status",
        "--json",
        home=home,
        env_extra={"WAYBILLGUARD_DATABASE_URL": restored_url} if restored_url else {},
    )
    assert readiness.returncode == 0, readiness.stderr
