"""Database engines with the settings waybillguard relies on.

SQLite: WAL for concurrent readers; `synchronous=FULL`, so a commit has reached the
disk before it returns (in WAL mode `NORMAL` syncs only at checkpoints: after a power
cut or a kernel crash the last seconds of commits would be gone — audit events of
reveals whose plaintext was already shown, quota charges, waybills — although each had
been acknowledged; PostgreSQL's default `synchronous_commit=on` is the same promise);
`secure_delete` so shredded keys are overwritten on disk instead of lingering in free
pages; a busy timeout so parallel importers queue instead of failing; and explicit
BEGIN IMMEDIATE for write transactions so a read-then-write never deadlocks on lock
upgrade. Writers on hot paths also queue for their turn (`WriteTurns`).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
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


class _LockFile:
    """One thread's descriptor of the turn file, closed when the thread ends (its
    thread-local slot is dropped) or when a forked child replaces it."""

    __slots__ = ("fd", "pid")

    def __init__(self, path: str) -> None:
        self.pid = os.getpid()
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __del__(self) -> None:
        # Closing a child's inherited copy does not release a flock its parent holds
        # (that takes LOCK_UN or closing every copy).
        with suppress(OSError):
            os.close(self.fd)


class WriteTurns:
    """Turn-taking between the writers of hot paths on one SQLite file: reveals, routed
    calls, audit writers and the audit sequencer, in every process.

    SQLite lets one transaction write at a time; a connection that finds the write lock
    taken polls for it, sleeping 1, 2, 5 … up to 100 ms between tries (the busy
    handler), and most of its wait is sleep after the lock was released. These writers
    therefore queue on an exclusive `flock` of `<database>-writelock` before BEGIN
    IMMEDIATE, which the kernel hands to the next waiter the moment it is released.

    This is only a queue: the SQLite write lock is still what excludes writers (other
    writers of the database do not take the turn and are excluded by SQLite as
    before), so correctness never depends on it. Each thread of each process opens
    its own descriptor (a flock belongs to the open file, and a forked child shares
    its parent's), and the kernel drops the lock if its holder dies. A thread that
    already holds the turn goes on (a nested write would wait for SQLite's lock, and
    fail after the busy timeout, as it always did — never hang on the flock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    @classmethod
    def for_engine(cls, engine: Engine) -> WriteTurns | None:
        """The turns of an SQLite file's writers; None elsewhere (PostgreSQL locks rows)."""
        path = sqlite_path(engine)
        if path is None or str(path) == ":memory:":
            return None
        return cls(f"{path}-writelock")

    def _fd(self) -> int:
        held: _LockFile | None = getattr(self._local, "file", None)
        if held is None or held.pid != os.getpid():
            held = self._local.file = _LockFile(self.path)
        return held.fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = self._fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)


class TurnTakingWriter:
    """Write transactions on an engine (SQLite: BEGIN IMMEDIATE), committed on success.

    On an SQLite file each first waits for its turn (`WriteTurns`): every store's writes
    queue with the hot paths instead of polling SQLite's lock with its sleeping busy
    handler. A session's touch that met a reveal group used to sleep up to 100 ms
    between tries, in the middle of a request (bench http p99 130-180 ms; with the
    turn 51-58 ms). The commit is the durability point of what the transaction wrote
    (SQLite connections commit with `synchronous=FULL`; PostgreSQL with its default
    `synchronous_commit=on`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._turns = WriteTurns.for_engine(engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with (
            self._turns.turn() if self._turns is not None else nullcontext(),
            self._engine.connect().execution_options(immediate=True) as conn,
            conn.begin(),
        ):
            yield conn


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
        self._turns = WriteTurns.for_engine(engine)

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
        if getattr(self._local, "group", None) is not None:
            with self._savepoint() as conn:
                yield conn
            return
        with (
            self._turns.turn() if self._turns is not None else nullcontext(),
            self._transaction() as conn,
        ):
            yield conn

    @property
    def groups(self) -> bool:
        """Whether `group` shares one transaction (SQLite) rather than doing nothing."""
        return self._on_driver

    @contextmanager
    def group(self) -> Iterator[None]:
        """One transaction, and so one synced commit, for every `write` of this thread
        inside the block: on SQLite, where writers take turns anyway, a burst of
        reveals then pays for one BEGIN, one COMMIT and one WAL sync instead of one
        each. Each `write` inside is a savepoint: one that raises is rolled back alone
        and the others still commit. Nothing inside is durable, and so nothing may be
        acted on, until the block has exited without an exception; if the commit fails,
        or an error made SQLite roll back the whole transaction, it raises.

        Elsewhere (PostgreSQL, which commits concurrent transactions with one WAL flush
        by itself and locks rows, not the database) it does nothing: each `write`
        commits on its own, as outside a group."""
        if not self._on_driver or getattr(self._local, "group", None) is not None:
            yield
            return
        with (
            self._turns.turn() if self._turns is not None else nullcontext(),
            self._transaction(),
        ):
            self._local.group = _Group()
            try:
                yield
                if self._local.group.lost:
                    raise GroupLost("the group's transaction was rolled back")
            finally:
                self._local.group = None

    @contextmanager
    def _savepoint(self) -> Iterator[Connection]:
        if self._local.group.lost:  # a SAVEPOINT now would begin, and commit, anew
            raise GroupLost("the group's transaction was rolled back")
        conn = self._local.conn
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("SAVEPOINT hot_write")
        try:
            yield conn
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK TO hot_write")
                raw.execute("RELEASE hot_write")
            else:  # SQLite gave up the whole transaction (I/O error, full disk …)
                self._local.group.lost = True
            raise
        raw.execute("RELEASE hot_write")

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
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


class GroupLost(RuntimeError):
    """A group's shared transaction was rolled back: none of its writes happened."""


@dataclass
class _Group:
    lost: bool = False


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
