"""Shared fixtures: a fresh home per test (a copy of one initialised per session), seeded
synthetic data, PII scanners."""

from __future__ import annotations

import json
import os
import re
import shutil
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


def pytest_configure(config: pytest.Config) -> None:
    """Console scripts, servers and workers the tests start are fresh interpreters: with
    PYTHONDONTWRITEBYTECODE (set on these machines) each one compiled the project's
    ~30,000 lines again (~0.3 s of CPU a process, hundreds of processes). Children keep
    their bytecode in a cache of the test runs instead, outside the source tree; this
    process itself is left as it was started."""
    prefix = config.rootpath / ".pytest_cache" / "pycache"
    prefix.mkdir(parents=True, exist_ok=True)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# Modules that take a minute or more of a serial run (console scripts, servers, browsers,
# PostgreSQL WAL scans), longest first. Under pytest-xdist (`make unit`: two workers,
# `--dist loadscope --no-loadscope-reorder`, a module stays on one worker) they are handed
# out first and the many short modules fill in around them; handed out last they made a
# tail of several minutes with one worker idle. A serial run keeps the collection order.
LONG_MODULES = (
    "tests/access/test_hostile_access.py",
    "tests/cli/test_reveal_cli.py",
    "tests/services/test_import_store.py",
    "tests/cli/test_cli_flow.py",
    "tests/labels/test_label_cli.py",
    "tests/services/test_identities.py",
    "tests/http/test_workers.py",
    "tests/web/test_console.py",
    "tests/services/test_audit.py",
    "tests/services/test_auth.py",
    "tests/telephony/test_simulator.py",
    "tests/services/test_lookup_and_concurrency.py",
    "tests/cli/test_subject_report_cli.py",
    "tests/cli/test_hostile_input.py",
    "tests/cli/test_access_cli.py",
    "tests/http/test_schemathesis.py",
    "tests/http/test_authorization_matrix.py",
    "tests/http/test_api.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    rank = {module: i for i, module in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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


class HomeTemplates:
    """One home initialised per back end and session (`initialise`: keys, migrations to
    head, the first policy version); each test gets a copy of it: the home's files copied
    (modes kept), and on PostgreSQL a database created from the template's. A copy is
    what `initialise` would have left (~0.05 s instead of 0.2-1.3 s a test); the keys are
    the same across the tests of a session, each test's home is its own. Tests of
    initialisation itself call `initialise` on homes of their own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._templates: dict[str, Settings] = {}

    def copy(self, home: Path, backend: str, server: PostgresServer | None) -> Settings:
        template = self._templates.get(backend)
        if template is None:
            url = server.create_database() if server is not None else None
            template = make_settings(self.root / backend / "home", url)
            initialise(template)
            self._templates[backend] = template
        shutil.copytree(template.home, home)
        url = None
        if server is not None:
            url = server.create_database(template=template.database_url)
        return make_settings(home, url)


@pytest.fixture(scope="session")
def home_templates(tmp_path_factory: pytest.TempPathFactory) -> HomeTemplates:
    return HomeTemplates(tmp_path_factory.mktemp("home-templates"))


@pytest.fixture
def settings(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, home_templates: HomeTemplates
) -> Settings:
    server = request.getfixturevalue("pg_server") if backend == "postgresql" else None
    return home_templates.copy(tmp_path / "home", backend, server)


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
