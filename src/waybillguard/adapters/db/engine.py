"""Database engines with the settings waybillguard relies on.

SQLite: WAL for concurrent readers, `secure_delete` so shredded keys are
overwritten on disk instead of lingering in free pages, a busy timeout so
parallel importers queue instead of failing, and explicit BEGIN IMMEDIATE for
write transactions so a read-then-write never deadlocks on lock upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA secure_delete=ON",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=60000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
    # Checkpoint every ~40 MB of WAL instead of ~4 MB: bulk imports commit per chunk.
    "PRAGMA wal_autocheckpoint=10000",
)

# Page cache of a hot path's kept connection, in KiB (~460 pages): see KeptConnection.
HOT_CACHE_KIB = 2000


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: Engine) -> Path | None:
    if not is_sqlite(engine) or not engine.url.database:
        return None
    return Path(engine.url.database)


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: this runs once per transaction, on every reveal.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if raw.in_transaction:
            return  # a kept connection's transaction, begun on the driver (see KeptConnection)
        raw.execute("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")


class KeptConnection:
    """A write connection each thread keeps between transactions, for hot paths that run
    one short transaction per request (a reveal, a routed call): checking a connection
    out of the pool and back costs as much as their SQL. On any error the connection is
    closed and forgotten, so a broken one is never reused.

    On an SQLite file the kept connection is opened for this purpose, never taken from
    the pool, and has a small page cache. When an insert splits a b-tree page, SQLite
    renumbers the sibling pages through a temporary page number, the lock-byte page
    (262,145 with 4 KiB pages); the page cache then remembers a page number far past the
    end of the database, and the commit's trim of the cache to the database size walks
    every slot of the cache's hash table. That table grows with the pages cached and
    never shrinks: with the pool's 64 MiB cache it reaches 16,384 slots, ~0.6 ms per
    commit that split a page, about one reveal in eight (random index keys). With ~460
    pages the walk is a few microseconds; the pages a reveal reads at random are mostly
    outside any cache of this size anyway, and come from the OS's page cache.

    On SQLite the transaction is begun and committed on the driver (BEGIN IMMEDIATE,
    COMMIT): SQLAlchemy's transaction bookkeeping and events cost as much as the BEGIN
    itself, and a reveal's statements go to the driver anyway. A SQLAlchemy statement
    inside still works: its autobegin joins the driver's transaction (the engine's begin
    hook sees one open) and the commit below ends both."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._hot: Engine | None = None  # made on first use: some stores never write hot
        self._local = threading.local()
        self._on_driver = is_sqlite(engine)

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            if self._hot is None:
                self._hot = _hot_engine(self._engine)
            conn = self._hot.connect().execution_options(immediate=True)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        conn = self._connection()
        try:
            if not self._on_driver:
                with conn.begin():
                    yield conn
                return
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("BEGIN IMMEDIATE")
            yield conn
            if conn.in_transaction():
                conn.commit()  # a SQLAlchemy statement joined the transaction
            else:
                raw.commit()
        except BaseException:
            self._local.conn = None
            conn.close()  # rolls back whatever is open: closing discards it
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()


def _hot_engine(engine: Engine) -> Engine:
    """The engine kept connections come from: on an SQLite file, its own engine whose
    connections are new (no pool: each thread keeps its one) and have a small cache."""
    path = sqlite_path(engine)
    if path is None or str(path) == ":memory:":
        return engine  # PostgreSQL has no such cache; an in-memory database is per connection
    hot = make_engine(engine.url.render_as_string(hide_password=False), poolclass=NullPool)

    @event.listens_for(hot, "connect")
    def _small_cache(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA cache_size=-{HOT_CACHE_KIB}")

    return hot
