"""A private PostgreSQL server for the test session, started by the tests themselves.

The Makefile installs Debian's `postgresql`; here we only run its binaries: a
throwaway cluster in a temporary directory, listening on 127.0.0.1 on a free
port, trust authentication, fsync off (test data is disposable). Each test gets
a database of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    for candidate in reversed(candidates):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found; `make test` installs Debian's postgresql"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    root: Path
    port: int
    bindir: Path
    _as_postgres: list[str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A new database: empty, or a copy of the database of the URL `template` (which
        nobody may be connected to)."""
        import psycopg

        name = f"wg_{uuid.uuid4().hex[:12]}"
        copy = ""
        if template is not None:
            source = template.rsplit("/", 1)[1]
            assert source.startswith("wg_") and source.isidentifier(), template
            copy = f' TEMPLATE "{source}"'
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def database_files(self, url: str) -> list[Path]:
        """Heap and index files of one database plus the WAL, after a checkpoint."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            oid = conn.execute(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
        # pg_internal.init is the server's relation-cache file (catalog descriptors, no
        # rows): a backend may remove it at any moment, which made reading it flaky.
        files = [
            p
            for p in (self.data_dir / "base" / str(oid)).iterdir()
            if p.is_file() and not p.name.startswith("pg_internal.init")
        ]
        files += [p for p in (self.data_dir / "pg_wal").iterdir() if p.is_file()]
        return files

    def stop(self) -> None:
        subprocess.run(
            [
                *self._as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="wg-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        capture_output=True,
        check=True,
    )
    port = _free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    result = subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")
        raise PostgresUnavailable(f"PostgreSQL did not start: {result.stderr}\n{log}")
    return PostgresServer(root, port, bindir, as_postgres)
