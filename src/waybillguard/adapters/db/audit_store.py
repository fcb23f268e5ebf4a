"""Storage of the tamper-evident audit log (tables in `audit_tables`).

The store moves bytes and hashes; it computes nothing. The sequencing logic (leaf
hashes, tree nodes, checkpoints) lives in `waybillguard.services.audit`, which runs
the store's calls inside one transaction per step.

Hot paths (appending pending events, sealing a batch, streaming the log) go to the
driver with plain tuples, like the waybill importer: at audit rates SQLAlchemy's
per-value processing would cost more than the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, select

from waybillguard.adapters.db.audit_tables import (
    audit_checkpoints,
    audit_events,
    audit_index,
    audit_pending,
    audit_waybill_refs,
)
from waybillguard.adapters.db.engine import TurnTakingWriter, is_sqlite

STATE_ID = 1
_STATE_SQL = "SELECT tree_size, frontier, root_hash, updated_at FROM audit_state WHERE id = ?"
_CHECKPOINT_SQL = (
    "SELECT id, origin, tree_size, root_hash, timestamp, key_id, public_key, signature "
    "FROM audit_checkpoints"
)


class PendingEvent(NamedTuple):
    """An encoded event and the lookup fields derived from it (not hashed). A named
    tuple, not a dataclass: one is made per appended event, and its fields go to the
    driver as they are."""

    data: bytes
    at: str
    action: str
    actor: str
    role: str
    unit: str
    decision: str
    waybills: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TreeState:
    tree_size: int
    frontier: str  # JSON, see audit_tables.audit_state
    root_hash: bytes
    updated_at: str


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: str
    key_id: str
    public_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """One event found by a query: its ids, where it is, and its hashed bytes."""

    event_id: int
    seq: int | None  # None while pending (durable, not yet sequenced)
    data: bytes


def _checkpoint(row: Sequence[Any]) -> CheckpointRow:
    return CheckpointRow(
        id=int(row[0]),
        origin=row[1],
        tree_size=int(row[2]),
        root_hash=bytes(row[3]),
        timestamp=row[4],
        key_id=row[5],
        public_key=bytes(row[6]),
        signature=bytes(row[7]),
    )


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self.mark = "?" if self.sqlite else "%s"
        self._writer = TurnTakingWriter(engine)

    # -- driver access -------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    def _fetch(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows as the driver returns them (tuples), inside the caller's transaction:
        no per-row processing, which matters when streaming millions of events."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql(sql), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _run(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql(sql), tuple(params))
        finally:
            cursor.close()

    def _run_many(self, conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(rows) == 1:
                cursor.execute(self._sql(sql), tuple(rows[0]))
            else:
                cursor.executemany(self._sql(sql), rows)
        finally:
            cursor.close()

    # -- transactions --------------------------------------------------------------
    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (`engine.TurnTakingWriter`): its commit is the
        durability point of whatever it wrote."""
        return self._writer.write()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction seeing one snapshot (PostgreSQL: REPEATABLE READ)."""
        options: dict[str, Any] = {} if self.sqlite else {"isolation_level": "REPEATABLE READ"}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    # -- writers ---------------------------------------------------------------------
    def append(self, conn: Connection, events: Sequence[PendingEvent]) -> list[int]:
        """Insert events as pending; returns their event ids, in order. Durable when
        the caller's transaction commits."""
        if not events:
            return []
        ids = self._insert_pending(conn, [(e.data,) for e in events])
        index_rows: list[tuple[Any, ...]] = []
        ref_rows: list[tuple[str, int]] = []
        add_index, add_ref = index_rows.append, ref_rows.append
        for i, (_data, at, action, actor, role, unit, decision, waybills) in zip(
            ids, events, strict=True
        ):
            add_index((i, at, action, actor, role, unit, decision))
            if len(waybills) == 1:
                add_ref((waybills[0], i))
            elif waybills:
                ref_rows.extend((w, i) for w in sorted(set(waybills)))
        self._run_many(
            conn,
            "INSERT INTO audit_index (event_id, at, action, actor, role, unit, decision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            index_rows,
        )
        self._run_many(
            conn, "INSERT INTO audit_waybill_refs (waybill, event_id) VALUES (?, ?)", ref_rows
        )
        return ids

    def _insert_pending(self, conn: Connection, rows: list[tuple[bytes]]) -> list[int]:
        if self.sqlite:
            if len(rows) == 1:  # one event (a reveal): its row id, from the same statement
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute("INSERT INTO audit_pending (data) VALUES (?)", rows[0])
                    return [int(cursor.lastrowid)]
                finally:
                    cursor.close()
            # Inside BEGIN IMMEDIATE nobody else inserts, and AUTOINCREMENT hands out
            # consecutive ids: the batch holds last - n + 1 .. last.
            self._run_many(conn, "INSERT INTO audit_pending (data) VALUES (?)", rows)
            last = int(self._fetch(conn, "SELECT last_insert_rowid()")[0][0])
            return list(range(last - len(rows) + 1, last + 1))
        # PostgreSQL: reserve the ids first, so they are known in input order.
        reserved = self._fetch(
            conn,
            "SELECT nextval(pg_get_serial_sequence('audit_pending', 'id')) "
            "FROM generate_series(1, ?)",
            (len(rows),),
        )
        ids = [int(r[0]) for r in reserved]
        self._run_many(
            conn,
            "INSERT INTO audit_pending (id, data) VALUES (?, ?)",
            [(i, row[0]) for i, row in zip(ids, rows, strict=True)],
        )
        return ids

    # -- sequencer -------------------------------------------------------------------
    def lock_state(self, conn: Connection, empty_root: bytes, now: str) -> TreeState:
        """The tree state, locked against other sequencers until the transaction ends
        (SQLite: the BEGIN IMMEDIATE write lock; PostgreSQL: the state row's lock)."""
        self._run(
            conn,
            "INSERT INTO audit_state (id, tree_size, frontier, root_hash, updated_at) "
            "VALUES (?, 0, '[]', ?, ?) ON CONFLICT DO NOTHING",
            (STATE_ID, empty_root, now),
        )
        lock = "" if self.sqlite else " FOR UPDATE"
        row = self._fetch(conn, _STATE_SQL + lock, (STATE_ID,))[0]
        return TreeState(int(row[0]), row[1], bytes(row[2]), row[3])

    def state(self, conn: Connection) -> TreeState | None:
        rows = self._fetch(conn, _STATE_SQL, (STATE_ID,))
        return (
            TreeState(int(rows[0][0]), rows[0][1], bytes(rows[0][2]), rows[0][3]) if rows else None
        )

    def pending_batch(self, conn: Connection, limit: int) -> list[tuple[int, bytes]]:
        """The oldest pending events (id, data), by id."""
        rows = self._fetch(
            conn, f"SELECT id, data FROM audit_pending ORDER BY id LIMIT {int(limit)}"
        )
        if self.sqlite:  # the driver's tuples already are (int, bytes)
            return rows
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def pending_count(self, conn: Connection) -> int:
        return int(self._fetch(conn, "SELECT count(*) FROM audit_pending")[0][0])

    def sequence(
        self,
        conn: Connection,
        first_seq: int,
        batch: Sequence[tuple[int, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        tiles: Sequence[tuple[int, bytes]],
        state: TreeState,
    ) -> None:
        """Move `batch` from pending to the log at first_seq.., store the tree nodes,
        the leaf tiles it wrote to (whole contents: a partial tile grows) and the new
        state, all in the caller's transaction."""
        self._run_many(
            conn,
            "INSERT INTO audit_events (seq, event_id, data) VALUES (?, ?, ?)",
            [(first_seq + n, event_id, data) for n, (event_id, data) in enumerate(batch)],
        )
        self._run_many(conn, "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        self._run_many(
            conn,
            "INSERT INTO audit_leaves (tile, hashes) VALUES (?, ?) "
            "ON CONFLICT (tile) DO UPDATE SET hashes = excluded.hashes",
            tiles,
        )
        ids = [event_id for event_id, _ in batch]
        if self.sqlite:
            # Under the write lock the batch is exactly the ids up to its last one.
            # Pending rows hold no personal data (events are validated before they
            # are written), so their freed cells need not be zeroed: secure_delete,
            # on for every connection because of shredding, is paused for this one
            # statement (it halves the sequencer's cost).
            self._run(conn, "PRAGMA secure_delete=OFF")
            try:
                self._run(conn, "DELETE FROM audit_pending WHERE id <= ?", (ids[-1],))
            finally:
                self._run(conn, "PRAGMA secure_delete=ON")
        else:
            # A writer's transaction can commit a smaller id after we read: name ours.
            self._run(conn, "DELETE FROM audit_pending WHERE id = ANY(?)", (ids,))
        self._run(
            conn,
            "UPDATE audit_state SET tree_size = ?, frontier = ?, root_hash = ?, updated_at = ? "
            "WHERE id = ?",
            (state.tree_size, state.frontier, state.root_hash, state.updated_at, STATE_ID),
        )

    # -- checkpoints -------------------------------------------------------------------
    def add_checkpoint(self, conn: Connection, cp: CheckpointRow) -> int:
        """Store a signed checkpoint (its `id` is ignored); returns the new id."""
        result = conn.execute(
            audit_checkpoints.insert()
            .values(
                origin=cp.origin,
                tree_size=cp.tree_size,
                root_hash=cp.root_hash,
                timestamp=cp.timestamp,
                key_id=cp.key_id,
                public_key=cp.public_key,
                signature=cp.signature,
            )
            .returning(audit_checkpoints.c.id)
        )
        return int(result.scalar_one())

    def checkpoints(self, conn: Connection) -> list[CheckpointRow]:
        rows = self._fetch(conn, f"{_CHECKPOINT_SQL} ORDER BY tree_size, id")
        return [_checkpoint(r) for r in rows]

    def latest_checkpoint(self, conn: Connection, min_size: int = 0) -> CheckpointRow | None:
        """The newest checkpoint covering at least `min_size` events."""
        rows = self._fetch(
            conn,
            f"{_CHECKPOINT_SQL} WHERE tree_size >= ? ORDER BY tree_size DESC, id DESC LIMIT 1",
            (min_size,),
        )
        return _checkpoint(rows[0]) if rows else None

    def checkpoint_at(self, conn: Connection, tree_size: int) -> CheckpointRow | None:
        rows = self._fetch(
            conn, f"{_CHECKPOINT_SQL} WHERE tree_size = ? ORDER BY id DESC LIMIT 1", (tree_size,)
        )
        return _checkpoint(rows[0]) if rows else None

    # -- the log and its tree ------------------------------------------------------------
    def nodes(
        self, conn: Connection, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Stored hashes of the perfect subtrees `keys` ((level, idx)); missing ones
        are absent from the result. One query per 100 keys."""
        wanted = sorted(set(keys))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
            params = [x for key in chunk for x in key]
            for level, idx, digest in self._fetch(
                conn, f"SELECT level, idx, hash FROM audit_nodes WHERE {where}", params
            ):
                found[(int(level), int(idx))] = bytes(digest)
        return found

    def nodes_in_range(
        self, conn: Connection, level: int, first: int, end: int
    ) -> list[tuple[int, bytes]]:
        """(idx, hash) of stored nodes at `level` with first <= idx < end, by idx."""
        rows = self._fetch(
            conn,
            "SELECT idx, hash FROM audit_nodes WHERE level = ? AND idx >= ? AND idx < ? "
            "ORDER BY idx",
            (level, first, end),
        )
        if self.sqlite:
            return rows
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def nodes_above(
        self, conn: Connection, level: int, end_leaf: int
    ) -> list[tuple[int, int, bytes]]:
        """Stored nodes of levels > `level` lying inside the first `end_leaf` leaves."""
        rows = self._fetch(
            conn,
            "SELECT level, idx, hash FROM audit_nodes WHERE level > ? ORDER BY level, idx",
            (level,),
        )
        return [
            (int(lvl), int(idx), bytes(digest))
            for lvl, idx, digest in rows
            if (int(idx) + 1) << int(lvl) <= end_leaf
        ]

    def leaf_tiles(self, conn: Connection, tiles: Iterable[int]) -> dict[int, bytes]:
        """Stored leaf tiles (concatenated leaf hashes) by tile number; missing ones
        are absent from the result."""
        wanted = sorted(set(tiles))
        found: dict[int, bytes] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            marks = ", ".join(["?"] * len(chunk))
            for tile, hashes in self._fetch(
                conn, f"SELECT tile, hashes FROM audit_leaves WHERE tile IN ({marks})", chunk
            ):
                found[int(tile)] = bytes(hashes)
        return found

    def tiles_in_range(self, conn: Connection, first: int, end: int) -> list[tuple[int, bytes]]:
        """(tile, hashes) of stored leaf tiles with first <= tile < end, by tile."""
        rows = self._fetch(
            conn,
            "SELECT tile, hashes FROM audit_leaves WHERE tile >= ? AND tile < ? ORDER BY tile",
            (first, end),
        )
        if self.sqlite:
            return rows
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def leaf_positions(
        self, conn: Connection, digest: bytes, first: int, end: int, tile_level: int
    ) -> list[int]:
        """Positions in [first, end) whose stored leaf hash is `digest` (a scan of the
        tiles: used only to describe damage once verification has failed)."""
        found: list[int] = []
        per_tile = 1 << tile_level
        tile = first >> tile_level
        last = (end + per_tile - 1) >> tile_level
        while tile < last:
            upto = min(tile + 1024, last)
            for number, hashes in self.tiles_in_range(conn, tile, upto):
                at = hashes.find(digest)
                while at >= 0:
                    if at % 32 == 0:
                        position = (int(number) << tile_level) + at // 32
                        if first <= position < end:
                            found.append(position)
                    at = hashes.find(digest, at + 1)
            tile = upto
        return found

    def events_in_range(self, conn: Connection, first: int, end: int) -> list[tuple[int, bytes]]:
        """(seq, data) with first <= seq < end, by seq."""
        rows = self._fetch(
            conn,
            "SELECT seq, data FROM audit_events WHERE seq >= ? AND seq < ? ORDER BY seq",
            (first, end),
        )
        if self.sqlite:
            return rows
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def event_at(self, conn: Connection, seq: int) -> tuple[int, bytes] | None:
        """(event_id, data) at position `seq`."""
        rows = self._fetch(conn, "SELECT event_id, data FROM audit_events WHERE seq = ?", (seq,))
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def locate(self, conn: Connection, event_id: int) -> tuple[str, int | None]:
        """Where event `event_id` is: ("sealed", seq), ("pending", None) while durable
        but not yet sequenced, ("unknown", None) when no such event is stored."""
        rows = self._fetch(conn, "SELECT seq FROM audit_events WHERE event_id = ?", (event_id,))
        if rows:
            return "sealed", int(rows[0][0])
        if self._fetch(conn, "SELECT id FROM audit_pending WHERE id = ?", (event_id,)):
            return "pending", None
        return "unknown", None

    def log_extent(self, conn: Connection) -> tuple[int, int | None, int | None]:
        """(row count, smallest seq, largest seq) of audit_events."""
        count, low, high = self._fetch(
            conn, "SELECT count(*), min(seq), max(seq) FROM audit_events"
        )[0]
        return (
            int(count),
            None if low is None else int(low),
            None if high is None else int(high),
        )

    def seqs_from(self, conn: Connection, first: int, limit: int) -> list[int]:
        rows = self._fetch(
            conn,
            f"SELECT seq FROM audit_events WHERE seq >= ? ORDER BY seq LIMIT {int(limit)}",
            (first,),
        )
        return [int(r[0]) for r in rows]

    def stream_events(
        self, first_seq: int, chunk: int = 10_000
    ) -> Iterator[tuple[int, int, bytes]]:
        """(seq, event_id, data) from `first_seq` on, in order, one short read per chunk
        (so a long export neither holds a snapshot nor blocks the sequencer)."""
        after = first_seq
        while True:
            with self.read() as conn:
                rows = self._fetch(
                    conn,
                    "SELECT seq, event_id, data FROM audit_events WHERE seq >= ? "
                    f"ORDER BY seq LIMIT {int(chunk)}",
                    (after,),
                )
            if not rows:
                return
            for seq, event_id, data in rows:
                yield int(seq), int(event_id), bytes(data)
            after = int(rows[-1][0]) + 1

    # -- derived lookups -----------------------------------------------------------------
    @cached_property
    def _found_columns(self) -> tuple[Any, ...]:
        data = func.coalesce(audit_events.c.data, audit_pending.c.data).label("data")
        return (audit_index.c.event_id, audit_events.c.seq, data)

    def _found_from(self, base: Any) -> Any:
        return base.outerjoin(
            audit_events, audit_events.c.event_id == audit_index.c.event_id
        ).outerjoin(audit_pending, audit_pending.c.id == audit_index.c.event_id)

    @staticmethod
    def _found(rows: Iterable[Any]) -> list[IndexedEvent]:
        return [
            IndexedEvent(int(r[0]), None if r[1] is None else int(r[1]), bytes(r[2]))
            for r in rows
            if r[2] is not None
        ]

    def by_waybill(self, conn: Connection, waybill: str, limit: int) -> list[IndexedEvent]:
        base = audit_waybill_refs.join(
            audit_index, audit_index.c.event_id == audit_waybill_refs.c.event_id
        )
        rows = conn.execute(
            select(*self._found_columns)
            .select_from(self._found_from(base))
            .where(audit_waybill_refs.c.waybill == waybill)
            .order_by(audit_index.c.at, audit_index.c.event_id)
            .limit(limit)
        )
        return self._found(rows)

    def by_actor(
        self, conn: Connection, actor: str | None, since: str | None, until: str | None, limit: int
    ) -> list[IndexedEvent]:
        conditions: list[ColumnElement[bool]] = []
        if actor is not None:
            conditions.append(audit_index.c.actor == actor)
        if since is not None:
            conditions.append(audit_index.c.at >= since)
        if until is not None:
            conditions.append(audit_index.c.at < until)
        rows = conn.execute(
            select(*self._found_columns)
            .select_from(self._found_from(audit_index))
            .where(and_(True, *conditions))
            .order_by(audit_index.c.at, audit_index.c.event_id)
            .limit(limit)
        )
        return self._found(rows)

    def count_denied(self, conn: Connection, actor: str, action: str, since: str) -> int:
        """How many of `actor`'s `action` events since `since` were denied (pending
        events included: the index row is written with the event)."""
        return int(
            conn.execute(
                select(func.count())
                .select_from(audit_index)
                .where(
                    audit_index.c.actor == actor,
                    audit_index.c.at >= since,
                    audit_index.c.action == action,
                    audit_index.c.decision == "deny",
                )
            ).scalar_one()
        )

    def top_revealers(
        self,
        conn: Connection,
        actions: Sequence[str],
        since: str | None,
        until: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Per (unit, role): reveal events, allowed / denied split, distinct actors."""
        conditions: list[ColumnElement[bool]] = [audit_index.c.action.in_(list(actions))]
        if since is not None:
            conditions.append(audit_index.c.at >= since)
        if until is not None:
            conditions.append(audit_index.c.at < until)
        events = func.count().label("events")
        allowed = func.sum(case((audit_index.c.decision == "allow", 1), else_=0))
        denied = func.sum(case((audit_index.c.decision == "deny", 1), else_=0))
        rows = conn.execute(
            select(
                audit_index.c.unit,
                audit_index.c.role,
                events,
                allowed.label("allowed"),
                denied.label("denied"),
                func.count(audit_index.c.actor.distinct()).label("actors"),
            )
            .where(and_(*conditions))
            .group_by(audit_index.c.unit, audit_index.c.role)
            .order_by(events.desc(), audit_index.c.unit, audit_index.c.role)
            .limit(limit)
        )
        return [
            {
                "unit": r.unit,
                "role": r.role,
                "events": int(r.events),
                "allowed": int(r.allowed or 0),
                "denied": int(r.denied or 0),
                "actors": int(r.actors),
            }
            for r in rows
        ]

    def index_for(
        self, conn: Connection, event_ids: Sequence[int]
    ) -> dict[int, tuple[str, str, str, str, str, str]]:
        """audit_index rows (at, action, actor, role, unit, decision) of `event_ids`."""
        if not event_ids:
            return {}
        rows = conn.execute(
            select(
                audit_index.c.event_id,
                audit_index.c.at,
                audit_index.c.action,
                audit_index.c.actor,
                audit_index.c.role,
                audit_index.c.unit,
                audit_index.c.decision,
            ).where(audit_index.c.event_id.in_(list(event_ids)))
        )
        return {int(r[0]): (r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}

    def refs_of(self, conn: Connection, event_ids: Sequence[int]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {i: set() for i in event_ids}
        if not event_ids:
            return out
        rows = conn.execute(
            select(audit_waybill_refs.c.event_id, audit_waybill_refs.c.waybill).where(
                audit_waybill_refs.c.event_id.in_(list(event_ids))
            )
        )
        for event_id, waybill in rows:
            out.setdefault(int(event_id), set()).add(waybill)
        return out
