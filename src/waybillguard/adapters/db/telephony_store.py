"""Storage of the virtual-number pool, bindings, couriers' registered phones and the
provider's callback tokens (SQLAlchemy Core, SQLite and PostgreSQL).

Methods take the caller's connection so a change and its audit event commit together.
Allocation is exact under concurrency:

* SQLite: `write()` begins with BEGIN IMMEDIATE, so writers are serialised;
* PostgreSQL: the free slot is taken with `SELECT … FOR UPDATE SKIP LOCKED` (parallel
  allocations pass each other instead of queueing on one row), and the database's unique
  constraints (`vn_slots.binding_id`, `vn_slots.tracking_number`) refuse a second
  binding on a slot or a second active binding for a waybill whatever the interleaving.

Nothing here decrypts: sealed parts are handed to the vault by the services.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from waybillguard.adapters.db.access_tables import assignments
from waybillguard.adapters.db.engine import KeptConnection, TurnTakingWriter, is_sqlite
from waybillguard.adapters.db.tables import waybill_events, waybills
from waybillguard.adapters.db.telephony_tables import (
    vn_bindings,
    vn_config,
    vn_courier_phones,
    vn_numbers,
    vn_provider_tokens,
    vn_slots,
)
from waybillguard.domain.virtual_number import Binding, BindingState

__all__ = [
    "AlreadyRegistered",
    "ConfigRow",
    "CourierPhoneRow",
    "NumberRow",
    "RouteRow",
    "SealedPhone",
    "SlotConflict",
    "TelephonyStore",
]


class AlreadyRegistered(RuntimeError):
    """The phone is already registered for another courier."""


class SlotConflict(RuntimeError):
    """A concurrent transaction bound the same waybill (or slot) first; retry."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _aware_req(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ConfigRow:
    cooldown_days: int
    grace_days: int
    undelivered_days: int
    low_percent: int
    low_free: int
    low_alerted: bool


@dataclass(frozen=True, slots=True)
class NumberRow:
    number: str
    extensions: int
    bound: int
    cooling: int
    added_at: datetime
    retired: bool


@dataclass(frozen=True, slots=True)
class SealedPhone:
    """A sealed phone number and what the vault needs to open it; no plaintext."""

    uid: bytes
    kek_id: str | None
    wrapped_dek: bytes | None
    ciphertext: bytes | None


@dataclass(frozen=True, slots=True)
class CourierPhoneRow:
    principal_id: int
    phone_index: bytes
    mask: str
    sealed: SealedPhone
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class RouteRow:
    """Everything one routing decision reads about a line, in one transaction."""

    binding_id: int | None
    state: BindingState | None  # None: the line never carried a binding
    expires_at: datetime | None
    tracking_number: str | None
    waybill_id: int | None
    status: str | None
    sender_index: bytes | None
    recipient_index: bytes | None
    courier_id: int | None
    courier_active: bool
    courier_index: bytes | None
    recipient_phone: SealedPhone | None
    recipient_mask: str | None
    courier_phone: SealedPhone | None
    courier_mask: str | None
    last_events: tuple[tuple[str, datetime], ...] = ()  # newest first, at most two


_BINDING_COLUMNS = (
    vn_bindings.c.id,
    vn_numbers.c.number,
    vn_slots.c.extension,
    vn_bindings.c.tracking_number,
    vn_bindings.c.state,
    vn_bindings.c.created_at,
    vn_bindings.c.expires_at,
    vn_bindings.c.ended_at,
)
_BINDING_JOIN = vn_bindings.join(vn_slots, vn_slots.c.id == vn_bindings.c.slot_id).join(
    vn_numbers, vn_numbers.c.id == vn_slots.c.number_id
)


def _binding(row: Any) -> Binding:
    return Binding(
        id=int(row[0]),
        virtual_number=row[1],
        extension=row[2],
        tracking_number=row[3],
        state=BindingState(row[4]),
        created_at=_aware_req(row[5]),
        expires_at=_aware_req(row[6]),
        ended_at=_aware(row[7]),
    )


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


class TelephonyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._kept = KeptConnection(engine)
        self._writer = TurnTakingWriter(engine)

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (`engine.TurnTakingWriter`)."""
        return self._writer.write()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def hot_write(self) -> AbstractContextManager[Connection]:
        """A write transaction on this thread's kept connection (the routing path)."""
        return self._kept.write()

    def close(self) -> None:
        self._kept.close()

    # -- driver SQL for the routing path (SQLAlchemy's statement building would cost
    # more than the queries themselves) -----------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    def _rows(self, conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql(sql), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _time_req(self, value: Any) -> datetime:
        found = self._time_out(value)
        if found is None:
            raise ValueError("missing timestamp")
        return found

    def _time_out(self, value: Any) -> datetime | None:
        """A timestamp as the driver returns it: SQLite gives naive UTC text."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return _aware(value)

    # -- settings ------------------------------------------------------------------------
    def config(self, conn: Connection) -> ConfigRow:
        [row] = self._rows(
            conn,
            "SELECT cooldown_days, grace_days, undelivered_days, low_percent, low_free, "
            "low_alerted FROM vn_config WHERE id = 1",
            (),
        )
        return ConfigRow(
            cooldown_days=int(row[0]),
            grace_days=int(row[1]),
            undelivered_days=int(row[2]),
            low_percent=int(row[3]),
            low_free=int(row[4]),
            low_alerted=bool(row[5]),
        )

    def update_config(
        self, conn: Connection, values: dict[str, int], now: datetime, by: str
    ) -> None:
        conn.execute(
            update(vn_config)
            .where(vn_config.c.id == 1)
            .values(**values, updated_at=_utc(now), updated_by=by)
        )

    def flip_low_alert(self, conn: Connection, to: bool) -> bool:
        """Set the pool-low latch to `to` if it is not already: True when this call
        changed it (so exactly one of several concurrent callers raises the alert)."""
        result = conn.execute(
            update(vn_config)
            .where(and_(vn_config.c.id == 1, vn_config.c.low_alerted == (not to)))
            .values(low_alerted=to)
        )
        return result.rowcount == 1

    # -- the pool ------------------------------------------------------------------------
    def add_numbers(
        self,
        conn: Connection,
        numbers: Sequence[str],
        extensions: Sequence[str],
        now: datetime,
        by: str,
    ) -> list[str]:
        """Add X numbers with their extensions; numbers already in the pool are skipped.
        Returns the numbers added. Slots are inserted extension-major, so consecutive
        allocations spread over the X numbers."""
        now = _utc(now)
        existing = set(
            conn.execute(
                select(vn_numbers.c.number).where(vn_numbers.c.number.in_(list(numbers)))
            ).scalars()
        )
        added = [n for n in dict.fromkeys(numbers) if n not in existing]
        if not added:
            return []
        ids: list[int] = []
        for number in added:
            result = conn.execute(
                insert(vn_numbers).values(
                    number=number, extensions=len(extensions), added_at=now, added_by=by
                )
            )
            ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
        rows = [
            {"number_id": nid, "extension": ext, "free_after": now}
            for ext in extensions
            for nid in ids
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(insert(vn_slots), rows[start : start + 5000])
        return added

    def pool_counts(self, conn: Connection, now: datetime) -> tuple[int, int, int, int]:
        """(numbers in service, slots, slots bound, slots cooling) right now."""
        now = _utc(now)
        row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((vn_slots.c.binding_id.is_not(None), 1), else_=0)), 0),
                func.coalesce(
                    func.sum(
                        case(
                            (
                                and_(vn_slots.c.binding_id.is_(None), vn_slots.c.free_after > now),
                                1,
                            ),
                            else_=0,
                        )
                    ),
                    0,
                ),
            )
            .select_from(vn_slots.join(vn_numbers, vn_numbers.c.id == vn_slots.c.number_id))
            .where(vn_numbers.c.retired_at.is_(None))
        ).one()
        count = conn.execute(
            select(func.count()).select_from(vn_numbers).where(vn_numbers.c.retired_at.is_(None))
        ).scalar_one()
        return int(count), int(row[0]), int(row[1]), int(row[2])

    def number_rows(self, conn: Connection, now: datetime, limit: int) -> list[NumberRow]:
        now = _utc(now)
        bound = func.coalesce(func.sum(case((vn_slots.c.binding_id.is_not(None), 1), else_=0)), 0)
        cooling = func.coalesce(
            func.sum(
                case(
                    (and_(vn_slots.c.binding_id.is_(None), vn_slots.c.free_after > now), 1),
                    else_=0,
                )
            ),
            0,
        )
        rows = conn.execute(
            select(
                vn_numbers.c.number,
                vn_numbers.c.extensions,
                bound,
                cooling,
                vn_numbers.c.added_at,
                vn_numbers.c.retired_at,
            )
            .select_from(vn_numbers.outerjoin(vn_slots, vn_slots.c.number_id == vn_numbers.c.id))
            .group_by(
                vn_numbers.c.id,
                vn_numbers.c.number,
                vn_numbers.c.extensions,
                vn_numbers.c.added_at,
                vn_numbers.c.retired_at,
            )
            .order_by(vn_numbers.c.id)
            .limit(limit)
        ).all()
        return [
            NumberRow(r[0], int(r[1]), int(r[2]), int(r[3]), _aware_req(r[4]), r[5] is not None)
            for r in rows
        ]

    # -- waybills --------------------------------------------------------------------------
    def waybill_status(self, conn: Connection, tracking_number: str) -> str | None:
        return conn.execute(
            select(waybills.c.status).where(waybills.c.tracking_number == tracking_number)
        ).scalar_one_or_none()

    def last_event_at(self, conn: Connection, tracking_number: str, status: str) -> datetime | None:
        """When the waybill last entered `status`."""
        at = conn.execute(
            select(waybill_events.c.at)
            .select_from(
                waybill_events.join(waybills, waybills.c.id == waybill_events.c.waybill_id)
            )
            .where(
                and_(
                    waybills.c.tracking_number == tracking_number, waybill_events.c.status == status
                )
            )
            .order_by(waybill_events.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        return _aware(at)

    def assigned_courier(self, conn: Connection, tracking_number: str) -> int | None:
        return conn.execute(
            select(assignments.c.courier_id).where(assignments.c.tracking_number == tracking_number)
        ).scalar_one_or_none()

    # -- bindings ----------------------------------------------------------------------------
    def active_binding(self, conn: Connection, tracking_number: str) -> Binding | None:
        row = conn.execute(
            select(*_BINDING_COLUMNS)
            .select_from(_BINDING_JOIN)
            .where(
                and_(
                    vn_slots.c.tracking_number == tracking_number,
                    vn_slots.c.binding_id == vn_bindings.c.id,
                )
            )
        ).first()
        return _binding(row) if row is not None else None

    def active_bindings(self, conn: Connection, tracking_numbers: Sequence[str]) -> list[Binding]:
        found: list[Binding] = []
        for start in range(0, len(tracking_numbers), 500):
            chunk = list(tracking_numbers[start : start + 500])
            rows = conn.execute(
                select(*_BINDING_COLUMNS)
                .select_from(_BINDING_JOIN)
                .where(
                    and_(
                        vn_slots.c.tracking_number.in_(chunk),
                        vn_slots.c.binding_id == vn_bindings.c.id,
                    )
                )
            ).all()
            found += [_binding(r) for r in rows]
        return found

    def latest_binding(self, conn: Connection, tracking_number: str) -> Binding | None:
        row = conn.execute(
            select(*_BINDING_COLUMNS)
            .select_from(_BINDING_JOIN)
            .where(vn_bindings.c.tracking_number == tracking_number)
            .order_by(vn_bindings.c.id.desc())
            .limit(1)
        ).first()
        return _binding(row) if row is not None else None

    def binding(self, conn: Connection, binding_id: int) -> Binding | None:
        row = conn.execute(
            select(*_BINDING_COLUMNS)
            .select_from(_BINDING_JOIN)
            .where(vn_bindings.c.id == binding_id)
        ).first()
        return _binding(row) if row is not None else None

    def allocate(
        self,
        conn: Connection,
        tracking_number: str,
        now: datetime,
        expires_at: datetime,
        by: str,
    ) -> Binding | None:
        """Bind the free slot whose cool-down ended longest ago to the waybill; None when
        no slot is free. Raises IntegrityError if a concurrent transaction bound the same
        waybill first (the caller retries and finds that binding)."""
        now = _utc(now)
        query = (
            select(vn_slots.c.id, vn_slots.c.extension, vn_numbers.c.number)
            .select_from(vn_slots.join(vn_numbers, vn_numbers.c.id == vn_slots.c.number_id))
            .where(
                and_(
                    vn_slots.c.binding_id.is_(None),
                    vn_slots.c.free_after <= now,
                    vn_numbers.c.retired_at.is_(None),
                )
            )
            .order_by(vn_slots.c.free_after, vn_slots.c.id)
            .limit(1)
        )
        if not self.sqlite:
            query = query.with_for_update(skip_locked=True, of=vn_slots)
        slot = conn.execute(query).first()
        if slot is None:
            return None
        try:
            result = conn.execute(
                insert(vn_bindings).values(
                    slot_id=slot[0],
                    tracking_number=tracking_number,
                    state=BindingState.ACTIVE.value,
                    created_at=now,
                    created_by=by,
                    expires_at=_utc(expires_at),
                )
            )
            binding_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            taken = conn.execute(
                update(vn_slots)
                .where(and_(vn_slots.c.id == slot[0], vn_slots.c.binding_id.is_(None)))
                .values(binding_id=binding_id, tracking_number=tracking_number)
            )
        except IntegrityError:
            raise SlotConflict("the waybill was bound concurrently") from None
        if taken.rowcount != 1:  # cannot happen under the lock; never hand out a slot twice
            raise SlotConflict("the slot was taken concurrently")
        return Binding(
            id=binding_id,
            virtual_number=slot[2],
            extension=slot[1],
            tracking_number=tracking_number,
            state=BindingState.ACTIVE,
            created_at=now,
            expires_at=_utc(expires_at),
        )

    def end_binding(
        self,
        conn: Connection,
        binding_id: int,
        state: BindingState,
        now: datetime,
        free_after: datetime,
    ) -> bool:
        """Release or expire an active binding; its slot cools down until `free_after`."""
        now = _utc(now)
        ended = conn.execute(
            update(vn_bindings)
            .where(
                and_(
                    vn_bindings.c.id == binding_id,
                    vn_bindings.c.state == BindingState.ACTIVE.value,
                )
            )
            .values(state=state.value, ended_at=now)
        )
        if ended.rowcount != 1:
            return False
        conn.execute(
            update(vn_slots)
            .where(vn_slots.c.binding_id == binding_id)
            .values(
                binding_id=None,
                tracking_number=None,
                last_released_at=now,
                free_after=_utc(free_after),
            )
        )
        return True

    def set_expiry(self, conn: Connection, binding_id: int, expires_at: datetime) -> bool:
        result = conn.execute(
            update(vn_bindings)
            .where(
                and_(
                    vn_bindings.c.id == binding_id,
                    vn_bindings.c.state == BindingState.ACTIVE.value,
                )
            )
            .values(expires_at=_utc(expires_at))
        )
        return result.rowcount == 1

    def due_bindings(self, conn: Connection, now: datetime, limit: int) -> list[int]:
        return [
            int(v)
            for v in conn.execute(
                select(vn_bindings.c.id)
                .where(
                    and_(
                        vn_bindings.c.state == BindingState.ACTIVE.value,
                        vn_bindings.c.expires_at <= _utc(now),
                    )
                )
                .order_by(vn_bindings.c.expires_at, vn_bindings.c.id)
                .limit(limit)
            ).scalars()
        ]

    # -- routing -------------------------------------------------------------------------------
    def route_row(self, conn: Connection, number: str, extension: str) -> RouteRow | None:
        """The line's current binding (or, if none, how its last one ended) with the
        waybill's routing facts, blind indexes, assignment and sealed target phones:
        one query, plus the waybill's last two lifecycle events."""
        rows = self._rows(
            conn,
            "SELECT s.id, s.binding_id, b.state, b.expires_at, b.tracking_number, "
            "w.id, w.status, w.bi_sender_phone, w.bi_recipient_phone, w.uid, w.kek_id, "
            "w.wrapped_dek, w.ct_recipient_phone, w.mask_recipient_phone, "
            "a.courier_id, p.state, cp.phone_index, cp.uid, cp.kek_id, cp.wrapped_dek, "
            "cp.ct_phone, cp.mask "
            "FROM vn_numbers n JOIN vn_slots s ON s.number_id = n.id "
            "LEFT JOIN vn_bindings b ON b.id = s.binding_id "
            "LEFT JOIN waybills w ON w.tracking_number = b.tracking_number "
            "LEFT JOIN assignments a ON a.tracking_number = b.tracking_number "
            "LEFT JOIN principals p ON p.id = a.courier_id "
            "LEFT JOIN vn_courier_phones cp ON cp.principal_id = a.courier_id "
            "WHERE n.number = ? AND s.extension = ?",
            (number, extension),
        )
        if not rows:
            return None
        row = rows[0]
        if row[1] is None:
            last = self._rows(
                conn,
                "SELECT id, state, tracking_number FROM vn_bindings WHERE slot_id = ? "
                "ORDER BY id DESC LIMIT 1",
                (row[0],),
            )
            if not last:
                return None
            return RouteRow(
                binding_id=int(last[0][0]),
                state=BindingState(last[0][1]),
                expires_at=None,
                tracking_number=last[0][2],
                waybill_id=None,
                status=None,
                sender_index=None,
                recipient_index=None,
                courier_id=None,
                courier_active=False,
                courier_index=None,
                recipient_phone=None,
                recipient_mask=None,
                courier_phone=None,
                courier_mask=None,
            )
        events: tuple[tuple[str, datetime], ...] = ()
        if row[5] is not None:
            found = self._rows(
                conn,
                "SELECT status, at FROM waybill_events WHERE waybill_id = ? "
                "ORDER BY id DESC LIMIT 2",
                (row[5],),
            )
            events = tuple((str(e[0]), self._time_req(e[1])) for e in found)
        recipient = (
            SealedPhone(bytes(row[9]), row[10], _bytes(row[11]), _bytes(row[12]))
            if row[5] is not None
            else None
        )
        courier = (
            SealedPhone(bytes(row[17]), row[18], _bytes(row[19]), _bytes(row[20]))
            if row[16] is not None
            else None
        )
        return RouteRow(
            binding_id=int(row[1]),
            state=BindingState(row[2]),
            expires_at=self._time_out(row[3]),
            tracking_number=row[4],
            waybill_id=row[5],
            status=row[6],
            sender_index=_bytes(row[7]),
            recipient_index=_bytes(row[8]),
            courier_id=row[14],
            courier_active=row[15] == "active",
            courier_index=_bytes(row[16]),
            recipient_phone=recipient,
            recipient_mask=row[13],
            courier_phone=courier,
            courier_mask=row[21],
            last_events=events,
        )

    # -- couriers' registered phones -------------------------------------------------------------
    def set_courier_phone(
        self,
        conn: Connection,
        principal_id: int,
        phone_index: bytes,
        sealed: SealedPhone,
        mask: str,
        now: datetime,
        by: str,
    ) -> None:
        owner = conn.execute(
            select(vn_courier_phones.c.principal_id).where(
                vn_courier_phones.c.phone_index == phone_index
            )
        ).scalar_one_or_none()
        if owner is not None and owner != principal_id:
            raise AlreadyRegistered("phone already registered for another courier")
        conn.execute(
            vn_courier_phones.delete().where(vn_courier_phones.c.principal_id == principal_id)
        )
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(vn_courier_phones).values(
                        principal_id=principal_id,
                        phone_index=phone_index,
                        uid=sealed.uid,
                        kek_id=sealed.kek_id,
                        wrapped_dek=sealed.wrapped_dek,
                        ct_phone=sealed.ciphertext,
                        mask=mask,
                        registered_at=_utc(now),
                        registered_by=by,
                    )
                )
        except IntegrityError:
            raise AlreadyRegistered("phone already registered for another courier") from None

    def courier_phone(self, conn: Connection, principal_id: int) -> CourierPhoneRow | None:
        cp = vn_courier_phones
        row = conn.execute(
            select(
                cp.c.principal_id,
                cp.c.phone_index,
                cp.c.mask,
                cp.c.uid,
                cp.c.kek_id,
                cp.c.wrapped_dek,
                cp.c.ct_phone,
                cp.c.registered_at,
            ).where(cp.c.principal_id == principal_id)
        ).first()
        if row is None:
            return None
        return CourierPhoneRow(
            principal_id=int(row[0]),
            phone_index=bytes(row[1]),
            mask=row[2],
            sealed=SealedPhone(bytes(row[3]), row[4], _bytes(row[5]), _bytes(row[6])),
            registered_at=_aware_req(row[7]),
        )

    # Key rotation moves these wraps too: a courier's phone sealed under a retired KEK
    # would be unreadable once that key is destroyed.
    def courier_wraps_count(self, conn: Connection, kek_ids: Sequence[str]) -> int:
        cp = vn_courier_phones
        query = select(func.count()).select_from(cp).where(cp.c.kek_id.in_(list(kek_ids)))
        return int(conn.execute(query).scalar_one())

    def courier_wraps_under(
        self, conn: Connection, kek_ids: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, bytes, str, bytes]]:
        """(principal id, uid, kek id, wrapped key) under `kek_ids`, walking from `after_id`."""
        cp = vn_courier_phones
        rows = conn.execute(
            select(cp.c.principal_id, cp.c.uid, cp.c.kek_id, cp.c.wrapped_dek)
            .where(and_(cp.c.principal_id > after_id, cp.c.kek_id.in_(list(kek_ids))))
            .order_by(cp.c.principal_id)
            .limit(limit)
        )
        return [(int(r[0]), bytes(r[1]), r[2], bytes(r[3])) for r in rows]

    def update_courier_wraps(
        self, conn: Connection, moved: Sequence[tuple[int, str, str, bytes]]
    ) -> None:
        """(principal id, old kek, new kek, new wrap): only rows still under the old key move."""
        cp = vn_courier_phones
        for principal_id, old, new, wrapped in moved:
            conn.execute(
                update(cp)
                .where(and_(cp.c.principal_id == principal_id, cp.c.kek_id == old))
                .values(kek_id=new, wrapped_dek=wrapped)
            )

    def remove_courier_phone(self, conn: Connection, principal_id: int) -> bool:
        result = conn.execute(
            vn_courier_phones.delete().where(vn_courier_phones.c.principal_id == principal_id)
        )
        return result.rowcount == 1

    # -- provider callback tokens ------------------------------------------------------------------
    def add_provider_token(
        self, conn: Connection, token_hash: bytes, label: str, now: datetime, by: str
    ) -> None:
        conn.execute(
            insert(vn_provider_tokens).values(
                token_hash=token_hash, label=label, created_at=_utc(now), created_by=by
            )
        )

    def provider_token_label(self, conn: Connection, token_hash: bytes) -> str | None:
        return conn.execute(
            select(vn_provider_tokens.c.label).where(
                and_(
                    vn_provider_tokens.c.token_hash == token_hash,
                    vn_provider_tokens.c.revoked_at.is_(None),
                )
            )
        ).scalar_one_or_none()

    def revoke_provider_tokens(self, conn: Connection, label: str, now: datetime) -> int:
        result = conn.execute(
            update(vn_provider_tokens)
            .where(
                and_(
                    vn_provider_tokens.c.label == label,
                    vn_provider_tokens.c.revoked_at.is_(None),
                )
            )
            .values(revoked_at=_utc(now))
        )
        return int(result.rowcount)
