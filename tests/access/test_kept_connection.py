"""The connection a hot path keeps (reveal, call routing): on SQLite it is opened for that
purpose with a small page cache, never a pooled connection whose cache's hash table an
import or a large read has grown (see `KeptConnection`); it commits what it writes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from waybillguard.adapters.db.engine import HOT_CACHE_KIB, is_sqlite
from waybillguard.services import policy_admin
from waybillguard.services.app import App


def _raw(conn: object) -> object:
    return conn.connection.dbapi_connection  # type: ignore[attr-defined]


def test_sqlite_kept_connection_is_its_own_with_a_small_cache(app: App) -> None:
    if not is_sqlite(app.engine):
        pytest.skip("the page cache in question is SQLite's")
    store = policy_admin.access_store(app)
    with app.engine.connect() as pooled:
        pooled_raw = _raw(pooled)
        assert pooled.exec_driver_sql("PRAGMA cache_size").scalar_one() != -HOT_CACHE_KIB
    with store.hot_write() as conn:
        assert _raw(conn) is not pooled_raw
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -HOT_CACHE_KIB
        # the pool's other settings still hold on it
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        kept = _raw(conn)
    with store.hot_write() as conn:
        assert _raw(conn) is kept  # kept between transactions on this thread


def test_kept_connection_commits_and_a_failed_one_is_replaced(app: App) -> None:
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        conn.execute(text("CREATE TABLE kept_probe (n INTEGER)"))
        conn.execute(text("INSERT INTO kept_probe VALUES (1)"))
        first = _raw(conn)
    with app.engine.connect() as other:  # another connection sees the committed row
        assert other.execute(text("SELECT count(*) FROM kept_probe")).scalar_one() == 1
    with pytest.raises(RuntimeError), store.hot_write() as conn:
        conn.execute(text("INSERT INTO kept_probe VALUES (2)"))
        raise RuntimeError("fails mid-transaction")
    with store.hot_write() as conn:
        assert _raw(conn) is not first  # the failed connection was closed, not reused
        assert conn.execute(text("SELECT count(*) FROM kept_probe")).scalar_one() == 1
        if is_sqlite(app.engine):
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -HOT_CACHE_KIB


def test_sqlite_kept_transaction_holds_the_write_lock_from_its_start(app: App) -> None:
    """Begun on the driver, it is still BEGIN IMMEDIATE: a read-then-write never finds
    another writer between its read and its write."""
    if not is_sqlite(app.engine):
        pytest.skip("SQLite's write lock; PostgreSQL locks rows (tests/access quota tests)")
    import sqlite3

    path = app.engine.url.database
    assert path is not None
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        conn.connection.dbapi_connection.execute("SELECT 1")  # type: ignore[union-attr]
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_driver_and_sqlalchemy_statements_commit_and_fail_together(app: App) -> None:
    """One transaction whichever layer a statement goes through: both rows or neither."""
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        conn.execute(text("CREATE TABLE kept_mixed (n INTEGER)"))
    marker = "?" if is_sqlite(app.engine) else "%s"

    def driver_insert(conn: object, n: int) -> None:
        cursor = _raw(conn).cursor()  # type: ignore[attr-defined]
        cursor.execute(f"INSERT INTO kept_mixed VALUES ({marker})", (n,))
        cursor.close()

    with pytest.raises(RuntimeError), store.hot_write() as conn:
        driver_insert(conn, 1)
        conn.execute(text("INSERT INTO kept_mixed VALUES (2)"))
        raise RuntimeError("fails after both writes")
    with store.hot_write() as conn:
        driver_insert(conn, 3)  # driver only
    with store.hot_write() as conn:
        conn.execute(text("INSERT INTO kept_mixed VALUES (4)"))  # SQLAlchemy first
        driver_insert(conn, 5)
    with app.engine.connect() as other:
        rows = other.execute(text("SELECT n FROM kept_mixed ORDER BY n")).scalars().all()
    assert rows == [3, 4, 5]


def test_sqlite_commits_are_synced_on_every_connection(app: App) -> None:
    """A reveal's audit event and charge survive a power cut once the reveal returned:
    every SQLite connection, pooled or kept, commits with synchronous=FULL (in WAL mode
    NORMAL would sync only at checkpoints)."""
    if not is_sqlite(app.engine):
        pytest.skip("SQLite's setting; PostgreSQL commits durably by default")
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    with app.engine.connect() as pooled:
        assert pooled.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2


def test_sqlite_kept_writes_queue_for_their_turn(app: App) -> None:
    """A hot-path writer waits for the write turn (a flock next to the database) held by
    another writer, instead of polling SQLite's lock with sleeps, and goes on at once
    when it is released; a thread that holds the turn may take it again."""
    if not is_sqlite(app.engine):
        pytest.skip("the turn queues writers of one SQLite file")
    import threading

    from waybillguard.adapters.db.engine import WriteTurns

    turns = WriteTurns.for_engine(app.engine)
    assert turns is not None
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        conn.execute(text("CREATE TABLE kept_turn (n INTEGER)"))
    done = threading.Event()

    def write() -> None:
        with store.hot_write() as conn:
            conn.execute(text("INSERT INTO kept_turn VALUES (1)"))
        done.set()

    with turns.turn():
        with turns.turn():  # re-entrant in one thread
            pass
        worker = threading.Thread(target=write)
        worker.start()
        assert not done.wait(0.3)  # queued behind the turn
    assert done.wait(30)
    worker.join()
    with app.engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM kept_turn")).scalar_one() == 1
