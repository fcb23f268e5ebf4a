"""Waybill storage: ciphertext, blind indexes, masked renderings and routing fields.

Nothing here can decrypt: the store hands sealed records to the vault and
masked records to everyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from waybillguard.adapters.db.engine import TurnTakingWriter, is_sqlite
from waybillguard.adapters.db.tables import (
    BLIND_INDEX_COLUMNS,
    CT_COLUMNS,
    INSERT_COLUMNS,
    MASK_COLUMNS,
    keks,
    station_coverage,
    tracking_counters,
    waybill_events,
    waybills,
)
from waybillguard.domain.tracking import BODY_SPACE, TrackingSpaceExhausted

SHREDDED_MASK = "[已销毁]"


def utcnow() -> datetime:
    return datetime.now(UTC)


# A sealed waybill ready to insert: values in INSERT_COLUMNS order, without the
# trailing status and timestamps (the store adds those).
NewWaybillRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class StoredWaybill:
    """The masked view of a waybill: everything a caller may see without a reveal."""

    id: int
    tracking_number: str
    merchant: str
    order_ref: str
    status: str
    weight_g: int
    category: str
    origin_adcode: str
    destination_adcode: str
    origin_station: str | None
    destination_station: str | None
    masks: Mapping[str, str]
    created_at: datetime
    updated_at: datetime
    shredded_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    status: str
    at: datetime
    actor: str
    note: str | None


@dataclass(frozen=True, slots=True)
class SealedRow:
    tracking_number: str
    uid: bytes
    kek_id: str | None
    wrapped_dek: bytes | None
    ciphertexts: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class WrapRow:
    id: int
    uid: bytes
    kek_id: str
    wrapped_dek: bytes


_origin = station_coverage.alias("origin_cov")
_dest = station_coverage.alias("dest_cov")
_VIEW_COLUMNS = [
    waybills.c.id,
    waybills.c.tracking_number,
    waybills.c.merchant,
    waybills.c.order_ref,
    waybills.c.status,
    waybills.c.weight_g,
    waybills.c.category,
    waybills.c.origin_adcode,
    waybills.c.destination_adcode,
    _origin.c.station_code.label("origin_station"),
    _dest.c.station_code.label("destination_station"),
    *(waybills.c[name] for name in MASK_COLUMNS.values()),
    waybills.c.created_at,
    waybills.c.updated_at,
    waybills.c.shredded_at,
]
_VIEW_FROM = waybills.outerjoin(_origin, _origin.c.adcode == waybills.c.origin_adcode).outerjoin(
    _dest, _dest.c.adcode == waybills.c.destination_adcode
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _view(row: Row[Any]) -> StoredWaybill:
    m = row._mapping
    return StoredWaybill(
        id=m["id"],
        tracking_number=m["tracking_number"],
        merchant=m["merchant"],
        order_ref=m["order_ref"],
        status=m["status"],
        weight_g=m["weight_g"],
        category=m["category"],
        origin_adcode=m["origin_adcode"],
        destination_adcode=m["destination_adcode"],
        origin_station=m["origin_station"],
        destination_station=m["destination_station"],
        masks={f: m[col] for f, col in MASK_COLUMNS.items()},
        created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]),
        shredded_at=_aware(m["shredded_at"]) if m["shredded_at"] else None,
    )


class KekNotActive(RuntimeError):
    """A batch was wrapped under a key-encryption key that rotation is retiring."""

    def __init__(self, kek_id: str) -> None:
        super().__init__(f"key-encryption key {kek_id} is not active")
        self.kek_id = kek_id


class WaybillStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = TurnTakingWriter(engine)

    # -- transactions --------------------------------------------------------------
    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (`engine.TurnTakingWriter`)."""
        return self._writer.write()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- tracking counters ---------------------------------------------------------
    def reserve_counters(self, conn: Connection, prefix: str, count: int) -> range:
        """Reserve `count` consecutive counters for `prefix` atomically."""
        self._ensure_counter(conn, prefix)
        current = conn.execute(
            select(tracking_counters.c.next_value)
            .where(tracking_counters.c.prefix == prefix)
            .with_for_update()
        ).scalar_one()
        if current + count > BODY_SPACE:
            raise TrackingSpaceExhausted(
                f"prefix {prefix} has {BODY_SPACE - current} tracking numbers left, "
                f"{count} requested; configure a new prefix"
            )
        conn.execute(
            update(tracking_counters)
            .where(tracking_counters.c.prefix == prefix)
            .values(next_value=current + count)
        )
        return range(current, current + count)

    def counters_used(self, prefix: str) -> int:
        with self.read() as conn:
            value = conn.execute(
                select(tracking_counters.c.next_value).where(tracking_counters.c.prefix == prefix)
            ).scalar()
        return int(value or 0)

    def _ensure_counter(self, conn: Connection, prefix: str) -> None:
        stmt = self._insert(tracking_counters).values(prefix=prefix, next_value=0)
        conn.execute(stmt.on_conflict_do_nothing())

    def _insert(self, table: Any) -> Any:
        return sqlite.insert(table) if is_sqlite(self.engine) else postgresql.insert(table)

    # -- import --------------------------------------------------------------------
    def existing_orders(
        self, conn: Connection, keys: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which (merchant, order_ref) pairs are stored already.

        The keys drive a join through the unique index; a row-value IN list would
        make SQLite scan the whole index for every chunk.
        """
        found: set[tuple[str, str]] = set()
        mark = "?" if is_sqlite(self.engine) else "%s"
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            values = ", ".join([f"({mark}, {mark})"] * len(chunk))
            sql = (
                f"WITH k(m, o) AS (VALUES {values}) SELECT w.merchant, w.order_ref "
                "FROM k JOIN waybills w ON w.merchant = k.m AND w.order_ref = k.o"
            )
            params = tuple(x for key in chunk for x in key)
            found.update((r[0], r[1]) for r in conn.exec_driver_sql(sql, params))
        return found

    def require_active_keks(self, conn: Connection, kek_ids: Iterable[str]) -> None:
        """Raise KekNotActive when a wrapping key is being retired, so the caller can
        re-wrap under the active key inside the same transaction."""
        for kek_id in set(kek_ids):
            self._require_active_kek(conn, kek_id)

    def insert_rows(self, conn: Connection, rows: Sequence[NewWaybillRow]) -> int:
        """Bulk insert of sealed waybills; an existing (merchant, order_ref) is skipped.

        Goes to the driver with one prepared statement and plain tuples: at import
        rates the per-value processing of a Core insert costs more than SQLite itself.
        Call require_active_keks first, in the same transaction.
        """
        if not rows:
            return 0
        now = self._datetime_param(utcnow())
        tail = ("created", now, now)
        result = conn.exec_driver_sql(self._insert_sql, [row + tail for row in rows])
        return int(result.rowcount)

    @cached_property
    def _insert_sql(self) -> str:
        mark = "?" if is_sqlite(self.engine) else "%s"
        columns = ", ".join(INSERT_COLUMNS)
        marks = ", ".join([mark] * len(INSERT_COLUMNS))
        return f"INSERT INTO waybills ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"

    def _datetime_param(self, value: datetime) -> Any:
        """The value the driver would receive from a Core insert (SQLite: SQLAlchemy's
        text format), computed once per batch instead of once per row."""
        dialect = self.engine.dialect
        processor = waybills.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        return processor(value) if processor else value

    # -- key-encryption keys -------------------------------------------------------
    def _require_active_kek(self, conn: Connection, kek_id: str) -> None:
        query = select(keks.c.state).where(keks.c.kek_id == kek_id)
        if not is_sqlite(self.engine):
            query = query.with_for_update(read=True)
        state = conn.execute(query).scalar()
        if state is None:
            conn.execute(
                self._insert(keks)
                .values(kek_id=kek_id, state="active", created_at=utcnow())
                .on_conflict_do_nothing()
            )
            state = conn.execute(select(keks.c.state).where(keks.c.kek_id == kek_id)).scalar()
        if state != "active":
            raise KekNotActive(kek_id)

    def register_kek(self, conn: Connection, kek_id: str, state: str = "active") -> None:
        conn.execute(
            self._insert(keks)
            .values(kek_id=kek_id, state=state, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        conn.execute(update(keks).where(keks.c.kek_id == kek_id).values(state=state))

    def set_kek_state(self, conn: Connection, kek_id: str, state: str) -> None:
        values: dict[str, Any] = {"state": state}
        if state == "retired":
            values["retired_at"] = utcnow()
        conn.execute(update(keks).where(keks.c.kek_id == kek_id).values(**values))

    def lock_kek(self, conn: Connection, kek_id: str) -> None:
        query = select(keks.c.state).where(keks.c.kek_id == kek_id)
        if not is_sqlite(self.engine):
            query = query.with_for_update()
        conn.execute(query)

    def kek_states(self) -> dict[str, str]:
        with self.read() as conn:
            return {r[0]: r[1] for r in conn.execute(select(keks.c.kek_id, keks.c.state))}

    def wraps_count(self, conn: Connection, kek_ids: Iterable[str]) -> int:
        ids = list(kek_ids)
        return int(
            conn.execute(
                select(func.count()).select_from(waybills).where(waybills.c.kek_id.in_(ids))
            ).scalar_one()
        )

    def wraps_under(
        self, conn: Connection, kek_ids: Iterable[str], after_id: int, limit: int
    ) -> list[WrapRow]:
        """Wrapped keys under `kek_ids`, walking the primary key from `after_id`."""
        rows = conn.execute(
            select(waybills.c.id, waybills.c.uid, waybills.c.kek_id, waybills.c.wrapped_dek)
            .where(and_(waybills.c.id > after_id, waybills.c.kek_id.in_(list(kek_ids))))
            .order_by(waybills.c.id)
            .limit(limit)
        )
        return [WrapRow(r[0], r[1], r[2], r[3]) for r in rows]

    def update_wraps(self, conn: Connection, moved: Sequence[tuple[int, str, str, bytes]]) -> None:
        """(id, old kek, new kek, new wrap): only rows still under the old key move."""
        if not moved:
            return
        stmt = (
            update(waybills)
            .where(
                and_(waybills.c.id == bindparam("w_id"), waybills.c.kek_id == bindparam("w_old"))
            )
            .values(kek_id=bindparam("w_new"), wrapped_dek=bindparam("w_wrap"))
        )
        conn.execute(
            stmt,
            [{"w_id": i, "w_old": o, "w_new": n, "w_wrap": w} for i, o, n, w in moved],
        )

    # -- reads ---------------------------------------------------------------------
    def get(self, tracking_number: str) -> StoredWaybill | None:
        with self.read() as conn:
            row = conn.execute(
                select(*_VIEW_COLUMNS)
                .select_from(_VIEW_FROM)
                .where(waybills.c.tracking_number == tracking_number)
            ).first()
        return _view(row) if row else None

    def page(self, limit: int, after_id: int = 0) -> list[StoredWaybill]:
        with self.read() as conn:
            rows = conn.execute(
                select(*_VIEW_COLUMNS)
                .select_from(_VIEW_FROM)
                .where(waybills.c.id > after_id)
                .order_by(waybills.c.id)
                .limit(limit)
            )
            return [_view(r) for r in rows]

    def count(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(waybills)).scalar_one())

    def find_by_phone_index(
        self, phone_index: bytes, name_phone_index: bytes | None = None, limit: int = 100
    ) -> list[StoredWaybill]:
        """Waybills where a party has this phone (and, if given, this name+phone)."""
        sender = waybills.c.bi_sender_phone == phone_index
        recipient = waybills.c.bi_recipient_phone == phone_index
        if name_phone_index is not None:
            sender = and_(sender, waybills.c.bi_sender_name_phone == name_phone_index)
            recipient = and_(recipient, waybills.c.bi_recipient_name_phone == name_phone_index)
        with self.read() as conn:
            rows = conn.execute(
                select(*_VIEW_COLUMNS)
                .select_from(_VIEW_FROM)
                .where(or_(sender, recipient))
                .order_by(waybills.c.id)
                .limit(limit)
            )
            return [_view(r) for r in rows]

    def sealed(self, tracking_number: str) -> SealedRow | None:
        columns = [waybills.c.uid, waybills.c.kek_id, waybills.c.wrapped_dek] + [
            waybills.c[c] for c in CT_COLUMNS.values()
        ]
        with self.read() as conn:
            row = conn.execute(
                select(*columns).where(waybills.c.tracking_number == tracking_number)
            ).first()
        if row is None:
            return None
        cts = {f: row._mapping[c] for f, c in CT_COLUMNS.items() if row._mapping[c] is not None}
        return SealedRow(tracking_number, row[0], row[1], row[2], cts)

    def events(self, waybill_id: int) -> list[StoredEvent]:
        with self.read() as conn:
            rows = conn.execute(
                select(
                    waybill_events.c.status,
                    waybill_events.c.at,
                    waybill_events.c.actor,
                    waybill_events.c.note,
                )
                .where(waybill_events.c.waybill_id == waybill_id)
                .order_by(waybill_events.c.id)
            )
            return [StoredEvent(r[0], _aware(r[1]), r[2], r[3]) for r in rows]

    # -- lifecycle -------------------------------------------------------------------
    def current_status(self, conn: Connection, tracking_number: str) -> tuple[int, str] | None:
        row = conn.execute(
            select(waybills.c.id, waybills.c.status).where(
                waybills.c.tracking_number == tracking_number
            )
        ).first()
        return (row[0], row[1]) if row else None

    def record_event(
        self,
        conn: Connection,
        waybill_id: int,
        old_status: str,
        new_status: str,
        actor: str,
        note: str | None,
    ) -> bool:
        now = utcnow()
        changed = conn.execute(
            update(waybills)
            .where(and_(waybills.c.id == waybill_id, waybills.c.status == old_status))
            .values(status=new_status, updated_at=now)
        ).rowcount
        if not changed:
            return False
        conn.execute(
            waybill_events.insert().values(
                waybill_id=waybill_id, status=new_status, at=now, actor=actor, note=note
            )
        )
        return True

    # -- shredding -------------------------------------------------------------------
    def shred(self, conn: Connection, tracking_number: str) -> bool:
        """Destroy the wrapped data key, ciphertexts, blind indexes and masks of one waybill."""
        values: dict[str, Any] = {"kek_id": None, "wrapped_dek": None, "shredded_at": utcnow()}
        values.update({c: None for c in CT_COLUMNS.values()})
        values.update({c: None for c in BLIND_INDEX_COLUMNS})
        values.update({c: SHREDDED_MASK for c in MASK_COLUMNS.values()})
        result = conn.execute(
            update(waybills)
            .where(
                and_(
                    waybills.c.tracking_number == tracking_number,
                    waybills.c.shredded_at.is_(None),
                )
            )
            .values(**values)
        )
        return bool(result.rowcount)

    def flush_to_main_file(self) -> None:
        """SQLite: move the WAL into the main file and truncate it, so freed pages
        (zeroed by secure_delete) are the only copy left on disk."""
        if not is_sqlite(self.engine):
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def set_coverage(self, conn: Connection, station_code: str, adcodes: Iterable[str]) -> None:
        for adcode in adcodes:
            stmt = self._insert(station_coverage).values(adcode=adcode, station_code=station_code)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["adcode"], set_={"station_code": station_code}
                )
            )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
