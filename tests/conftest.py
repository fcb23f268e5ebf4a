"""Shared fixtures: a fresh home per test, seeded synthetic data, PII scanners."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import PostgresServer, start_server
from waybillguard.config import DATABASE_FILE, Settings
from waybillguard.services.app import App, initialise, open_app

CLI = [sys.executable, "-m", "waybillguard"]


def make_settings(home: Path, database_url: str | None = None) -> Settings:
    return Settings(
        home=home,
        database_url=database_url or f"sqlite:///{home / DATABASE_FILE}",
        tracking_prefix="WG",
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("pg_server").create_database()
    s = make_settings(tmp_path / "home", url)
    initialise(s)
    return s


def storage_files(app: App, request: pytest.FixtureRequest) -> list[Path]:
    """The raw files that hold this app's database: SQLite file + WAL, or PostgreSQL's
    heap/index files of the database plus its WAL (after a checkpoint)."""
    if app.settings.uses_embedded_database:
        app.store.flush_to_main_file()
        return database_files(app.settings.home)
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.database_files(app.settings.database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    with open_app(settings) as application:
        yield application


def run_cli(
    *args: str,
    home: Path | None = None,
    input_text: str | None = None,
    env_extra: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    if home is not None:
        env["WAYBILLGUARD_HOME"] = str(home)
    env.update(env_extra or {})
    result = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=env,
        input=input_text,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stderr}")
    return result


def seeded_rows(jsonl: Path) -> list[dict[str, Any]]:
    with jsonl.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def row_pii(row: dict[str, Any]) -> set[str]:
    """A row's personal values as someone would search for them: full names, the 11
    (or area+subscriber) digits of phones, full addresses and their house-number part."""
    values: set[str] = set()
    for role in ("sender", "recipient"):
        party = row[role]
        values.add(party["name"])
        digits = "".join(ch for ch in party["phone"] if ch.isdigit())
        values.add(digits[-11:] if len(digits) >= 11 else digits)
        values.add(party["address"])
        house = re.search(r"\d+号.*$", party["address"])
        if house:
            values.add(house.group(0))
    return {v for v in values if len(v) >= 2}


def seeded_pii(jsonl: Path) -> set[str]:
    values: set[str] = set()
    for row in seeded_rows(jsonl):
        values |= row_pii(row)
    return values


# Characters personal values are made of; anything else cannot be inside a needle.
_RUN = re.compile(r"[0-9A-Za-z\u3400-\u9fff\U00020000-\U0003ffff·\-' .]{2,}")


def scan_text(text: str, needles: set[str]) -> list[str]:
    """Which needles occur in text: runs of name/phone/address characters are found by a
    regex (C speed), then matched against the needles indexed by their first 2, 3 or 4
    characters (4 keeps the thousands of phone numbers sharing "13" apart)."""
    index: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for needle in needles:
        key_length = min(len(needle), 4)
        index[key_length][needle[:key_length]].append(needle)
    lookups = [(length, table.get) for length, table in index.items()]
    found: set[str] = set()
    for match in _RUN.finditer(text):
        run = match.group(0)
        for i in range(len(run) - 1):
            for length, get in lookups:
                candidates = get(run[i : i + length])
                if candidates:
                    found.update(n for n in candidates if run.startswith(n, i))
    return sorted(found)


def scan_bytes(blob: bytes, needles: set[str]) -> list[str]:
    """Needles in raw bytes stored as UTF-8 (how SQLite and PostgreSQL store text)."""
    return scan_text(blob.decode("utf-8", errors="replace"), needles)


def database_files(home: Path) -> list[Path]:
    base = home / DATABASE_FILE
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if p.exists()]
