"""Storage of what access control decides and charges: assignments, tickets, the quota
ledger, approval requests, exports, alerts, policy versions and break-glass grants.

Methods take the caller's connection so a decision, its charge and its audit event
commit in one transaction. `lock_principal` serialises everything one principal does
(PostgreSQL: a row lock; SQLite: the write transaction is already exclusive), which is
what makes quota counting exact under concurrency: charge first, then reveal.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from waybillguard.adapters.db.access_tables import (
    alerts,
    approval_requests,
    approval_votes,
    assignments,
    break_glass,
    exports,
    policy_versions,
    principals,
    tickets,
)
from waybillguard.adapters.db.engine import KeptConnection, TurnTakingWriter, is_sqlite
from waybillguard.adapters.db.tables import CT_COLUMNS, station_coverage, waybill_events, waybills
from waybillguard.domain.lifecycle import TERMINAL, Status
from waybillguard.domain.policy import TicketFacts, WaybillFacts
from waybillguard.domain.quota import WINDOW_SECONDS, Window


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# The usage query's windows, their spans and its SQL, built once (it runs on every reveal).
# A window holds the charges after its start (`at > start`). Those are the clock hours
# after the hour the start falls in (`quota_hours`), plus the ledger rows of that one
# hour that come after the start: whatever a principal has charged in 30 days, a reveal
# reads at most ~720 hour rows and one hour of its ledger.
_WINDOWS = tuple(Window)
_WINDOW_SPANS = tuple(timedelta(seconds=WINDOW_SECONDS[w]) for w in _WINDOWS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_USAGE_SQL = (  # per window: the whole hours after its start's hour, and that hour's sum
    "SELECT "
    + ", ".join(
        "(SELECT SUM(records) FROM quota_hours WHERE principal_id = ? AND hour > ?)"
        for _ in _WINDOWS
    )
    + ", "
    + ", ".join(
        "(SELECT records FROM quota_hours WHERE principal_id = ? AND hour = ?)" for _ in _WINDOWS
    )
)
_EDGE_SQL = "SELECT SUM(records) FROM quota_charges WHERE principal_id = ? AND at > ? AND at < ?"
_CHARGE_HOUR_SQL = (
    "INSERT INTO quota_hours (principal_id, hour, records) VALUES (?, ?, ?) "
    "ON CONFLICT (principal_id, hour) DO UPDATE SET records = quota_hours.records + ?"
)


def clock_hour(value: datetime) -> int:
    """Whole hours from 1970-01-01 UTC to `value` (exact: timedelta arithmetic)."""
    return (value - _EPOCH) // _HOUR


def sqlite_time(value: datetime) -> str:
    """`value` as SQLite stores it: naive UTC text with microseconds, the same text as
    strftime("%Y-%m-%d %H:%M:%S.%f") (years 1000-9999) in about half the time; the
    reveal path formats four a request."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.cache
def _context_sql(fields: tuple[str, ...], with_state: bool) -> str:
    """A reveal's read of one waybill: routing facts, stations, courier and the sealed
    fields wanted; with `with_state`, the principal's state first."""
    state = "(SELECT state FROM principals WHERE id = ?), " if with_state else ""
    cts = ", ".join(f"w.{CT_COLUMNS[f]}" for f in fields)
    return (
        f"SELECT {state}w.id, w.status, w.merchant, w.shredded_at, oc.station_code, "
        "dc.station_code, a.courier_id, w.origin_adcode, w.destination_adcode, w.uid, "
        f"w.kek_id, w.wrapped_dek, {cts} FROM waybills w "
        "LEFT JOIN station_coverage oc ON oc.adcode = w.origin_adcode "
        "LEFT JOIN station_coverage dc ON dc.adcode = w.destination_adcode "
        "LEFT JOIN assignments a ON a.tracking_number = w.tracking_number "
        "WHERE w.tracking_number = ?"
    )


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: int
    kind: str
    requester_id: int
    tracking_number: str | None
    fields: frozenset[str]
    purpose: str
    reason: str
    records: int
    needs: tuple[str, ...]
    state: str
    created_at: datetime
    expires_at: datetime
    votes: tuple[tuple[int, str, str], ...]  # (approver id, capacity, decision)

    @property
    def approved_by(self) -> frozenset[str]:
        return frozenset(c for _, c, d in self.votes if d == "approve")


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    at: datetime
    kind: str
    severity: str
    principal_id: int | None
    unit_code: str | None
    message: str
    acknowledged_by: str | None


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: int
    requester_id: int
    fields: tuple[str, ...]
    filter: str
    purpose: str
    reason: str
    state: str
    approver_id: int | None
    expires_at: datetime | None
    trace_id: str
    row_count: int | None
    downloads: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SealedParts:
    """A waybill's sealed fields and what the vault needs to open them; no plaintext."""

    uid: bytes
    kek_id: str | None
    wrapped_dek: bytes | None
    ciphertexts: dict[str, bytes]
    origin_adcode: str
    destination_adcode: str


@dataclass(frozen=True, slots=True)
class RevealContext:
    state: str | None
    facts: WaybillFacts | None
    sealed: SealedParts | None


class AccessStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._kept = KeptConnection(engine)
        self._writer = TurnTakingWriter(engine)

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction (`engine.TurnTakingWriter`)."""
        return self._writer.write()

    def hot_write(self) -> AbstractContextManager[Connection]:
        """A write transaction on this thread's kept connection (the reveal path)."""
        return self._kept.write()

    def hot_group(self) -> AbstractContextManager[None]:
        """Several `hot_write`s of this thread in one transaction and one synced commit
        (SQLite; elsewhere each commits alone): `KeptConnection.group`."""
        return self._kept.group()

    @property
    def groups_writes(self) -> bool:
        return self._kept.groups

    def close(self) -> None:
        self._kept.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- principals (state only; identities live in the identity store) ------------------
    def lock_principal(self, conn: Connection, principal_id: int) -> str | None:
        """Lock one principal's row for the rest of the transaction; returns its state."""
        query = select(principals.c.state).where(principals.c.id == principal_id)
        if not self.sqlite:
            query = query.with_for_update()
        return conn.execute(query).scalar_one_or_none()

    def set_principal_state(
        self, conn: Connection, principal_id: int, state: str, reason: str | None, now: datetime
    ) -> None:
        conn.execute(
            update(principals)
            .where(principals.c.id == principal_id)
            .values(state=state, state_reason=reason, updated_at=now)
        )

    # -- quota ledger ----------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    def _time(self, value: datetime) -> Any:
        """A timestamp as SQLAlchemy would bind it: SQLite stores naive UTC text."""
        if not self.sqlite:
            return value
        return sqlite_time(value)

    def _row(self, conn: Connection, sql: str, params: Sequence[Any]) -> Any:
        """One row straight from the driver, in the caller's transaction (the reveal path
        runs these on every request; SQLAlchemy's result machinery would double its cost)."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql(sql), tuple(params))
            return cursor.fetchone()
        finally:
            cursor.close()

    def _exec(self, conn: Connection, sql: str, params: Sequence[Any]) -> None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._sql(sql), tuple(params))
        finally:
            cursor.close()

    def usage(self, conn: Connection, principal_id: int, now: datetime) -> dict[Window, int]:
        """Records charged to the principal in each rolling window ending now. (Driver SQL:
        this runs on every reveal, inside the principal's lock.)"""
        starts = [now - span for span in _WINDOW_SPANS]
        hours = [clock_hour(start) for start in starts]
        per_hour = [value for hour in hours for value in (principal_id, hour)]
        row = self._row(conn, _USAGE_SQL, per_hour * 2)
        count = len(_WINDOWS)
        used: dict[Window, int] = {}
        for n, window in enumerate(_WINDOWS):
            total = int(row[n] or 0)
            if row[count + n]:  # the start's own hour has charges: read those after it
                end = _EPOCH + (hours[n] + 1) * _HOUR
                edge = self._row(
                    conn, _EDGE_SQL, [principal_id, self._time(starts[n]), self._time(end)]
                )
                total += int(edge[0] or 0)
            used[window] = total
        return used

    def charge(
        self,
        conn: Connection,
        principal_id: int,
        records: int,
        now: datetime,
        audit_event_id: int | None,
        reason: str | None = None,
    ) -> None:
        self._exec(
            conn,
            "INSERT INTO quota_charges (principal_id, at, records, audit_event_id, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            (principal_id, self._time(now), records, audit_event_id, reason or None),
        )
        self._exec(conn, _CHARGE_HOUR_SQL, (principal_id, clock_hour(now), records, records))

    def reveal_context(
        self,
        conn: Connection,
        principal_id: int,
        tracking_number: str,
        fields: Sequence[str],
        *,
        delivery_end: bool,
        closed_end: bool = False,
    ) -> RevealContext:
        """Everything one reveal needs, read under the principal's lock: its state, the
        waybill's routing facts and the sealed fields wanted (so the decryption after
        commit uses exactly what was decided on)."""
        if self.sqlite:
            # BEGIN IMMEDIATE already holds the database's write lock: the state can be
            # read in the waybill's statement (one round trip fewer on every reveal).
            sql = _context_sql(tuple(fields), True)
            row = self._row(conn, sql, [principal_id, tracking_number])
            if row is None:
                return RevealContext(self._state(conn, principal_id), None, None)
            state, row = row[0], row[1:]
        else:  # the principal's row lock first, then the waybill
            state = self._state(conn, principal_id)
            row = self._row(conn, _context_sql(tuple(fields), False), [tracking_number])
            if row is None:
                return RevealContext(state, None, None)
        status = Status(row[1])
        ended = self._delivery_ended_at(conn, row[0], status) if delivery_end else None
        closed = self._closed_at(conn, row[0], status) if closed_end else None
        facts = WaybillFacts(
            tracking_number=tracking_number,
            status=status,
            origin_station=row[4],
            destination_station=row[5],
            merchant=row[2],
            assigned_courier=row[6],
            delivery_ended_at=ended,
            shredded=row[3] is not None,
            closed_at=closed,
        )
        sealed = SealedParts(
            uid=bytes(row[9]),
            kek_id=row[10],
            wrapped_dek=bytes(row[11]) if row[11] is not None else None,
            ciphertexts={
                f: bytes(v) for f, v in zip(fields, row[12:], strict=True) if v is not None
            },
            origin_adcode=row[7],
            destination_adcode=row[8],
        )
        return RevealContext(state, facts, sealed)

    def _state(self, conn: Connection, principal_id: int) -> str | None:
        """The principal's state; on PostgreSQL, its row locked for the transaction."""
        lock = "" if self.sqlite else " FOR UPDATE"
        row = self._row(conn, f"SELECT state FROM principals WHERE id = ?{lock}", [principal_id])
        return row[0] if row else None

    # -- waybill facts ---------------------------------------------------------------------
    def waybill_facts(self, conn: Connection, tracking_number: str) -> WaybillFacts | None:
        origin = station_coverage.alias("origin_cov")
        dest = station_coverage.alias("dest_cov")
        row = conn.execute(
            select(
                waybills.c.id,
                waybills.c.status,
                waybills.c.merchant,
                waybills.c.shredded_at,
                origin.c.station_code,
                dest.c.station_code,
                assignments.c.courier_id,
            )
            .select_from(
                waybills.outerjoin(origin, origin.c.adcode == waybills.c.origin_adcode)
                .outerjoin(dest, dest.c.adcode == waybills.c.destination_adcode)
                .outerjoin(assignments, assignments.c.tracking_number == waybills.c.tracking_number)
            )
            .where(waybills.c.tracking_number == tracking_number)
        ).first()
        if row is None:
            return None
        status = Status(row[1])
        return WaybillFacts(
            tracking_number=tracking_number,
            status=status,
            origin_station=row[4],
            destination_station=row[5],
            merchant=row[2],
            assigned_courier=row[6],
            delivery_ended_at=self._delivery_ended_at(conn, row[0], status),
            shredded=row[3] is not None,
            closed_at=self._closed_at(conn, row[0], status),
        )

    def _delivery_ended_at(
        self, conn: Connection, waybill_id: int, status: Status
    ) -> datetime | None:
        if status is Status.OUT_FOR_DELIVERY:
            return None
        last_two = conn.execute(
            select(waybill_events.c.status, waybill_events.c.at)
            .where(waybill_events.c.waybill_id == waybill_id)
            .order_by(waybill_events.c.id.desc())
            .limit(2)
        ).all()
        if len(last_two) == 2 and last_two[1][0] == Status.OUT_FOR_DELIVERY.value:
            return _aware(last_two[0][1])
        return None

    def _closed_at(self, conn: Connection, waybill_id: int, status: Status) -> datetime | None:
        """When a closed waybill took its final status: its last event."""
        if status not in TERMINAL:
            return None
        last = self._row(
            conn,
            "SELECT at FROM waybill_events WHERE waybill_id = ? ORDER BY id DESC LIMIT 1",
            [waybill_id],
        )
        if last is None:
            return None
        at = last[0]
        return _aware(at if isinstance(at, datetime) else datetime.fromisoformat(at))

    # -- assignments -----------------------------------------------------------------------
    def assign(
        self, conn: Connection, tracking_number: str, courier_id: int, by: str, now: datetime
    ) -> None:
        conn.execute(assignments.delete().where(assignments.c.tracking_number == tracking_number))
        conn.execute(
            assignments.insert().values(
                tracking_number=tracking_number,
                courier_id=courier_id,
                assigned_by=by,
                assigned_at=now,
            )
        )

    def assigned_to(self, conn: Connection, courier_id: int, limit: int) -> list[str]:
        return list(
            conn.execute(
                select(assignments.c.tracking_number)
                .where(assignments.c.courier_id == courier_id)
                .order_by(assignments.c.assigned_at.desc())
                .limit(limit)
            ).scalars()
        )

    # -- tickets -----------------------------------------------------------------------------
    def ticket(self, conn: Connection, ticket_id: str) -> TicketFacts | None:
        row = conn.execute(
            select(
                tickets.c.tracking_number,
                tickets.c.party,
                tickets.c.closed_at,
                tickets.c.verified_by,
            ).where(tickets.c.ticket_id == ticket_id)
        ).first()
        if row is None:
            return None
        return TicketFacts(
            ticket_id, row[0], row[1], closed=row[2] is not None, verified=row[3] is not None
        )

    def open_ticket(
        self,
        conn: Connection,
        ticket_id: str,
        tracking_number: str,
        party: str,
        by: str,
        now: datetime,
        verified_by: str | None = None,
    ) -> None:
        conn.execute(
            tickets.insert().values(
                ticket_id=ticket_id,
                tracking_number=tracking_number,
                party=party,
                opened_by=by,
                opened_at=now,
                verified_by=verified_by,
            )
        )

    def party_phone_index(self, conn: Connection, tracking_number: str, party: str) -> bytes | None:
        """The blind index of a party's phone (None: no such waybill, or shredded)."""
        column = waybills.c.bi_sender_phone if party == "sender" else waybills.c.bi_recipient_phone
        row = conn.execute(
            select(column, waybills.c.shredded_at).where(
                waybills.c.tracking_number == tracking_number
            )
        ).first()
        if row is None or row[1] is not None or row[0] is None:
            return None
        return bytes(row[0])

    def close_ticket(self, conn: Connection, ticket_id: str, now: datetime) -> bool:
        return bool(
            conn.execute(
                update(tickets)
                .where(and_(tickets.c.ticket_id == ticket_id, tickets.c.closed_at.is_(None)))
                .values(closed_at=now)
            ).rowcount
        )

    # -- approval requests ---------------------------------------------------------------------
    def create_approval(
        self,
        conn: Connection,
        *,
        kind: str,
        requester_id: int,
        tracking_number: str | None,
        fields: Sequence[str],
        purpose: str,
        reason: str,
        records: int,
        needs: Sequence[str],
        now: datetime,
        expires_at: datetime,
    ) -> int:
        result = conn.execute(
            approval_requests.insert().values(
                kind=kind,
                requester_id=requester_id,
                tracking_number=tracking_number,
                fields=",".join(sorted(fields)),
                purpose=purpose,
                reason=reason,
                records=records,
                needs=",".join(needs),
                state="pending",
                created_at=now,
                expires_at=expires_at,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def approval(
        self, conn: Connection, request_id: int, *, lock: bool = False
    ) -> ApprovalRow | None:
        query = select(approval_requests).where(approval_requests.c.id == request_id)
        if lock and not self.sqlite:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            return None
        votes = conn.execute(
            select(
                approval_votes.c.approver_id, approval_votes.c.capacity, approval_votes.c.decision
            )
            .where(approval_votes.c.request_id == request_id)
            .order_by(approval_votes.c.at)
        ).all()
        return _approval(row, votes)

    def pending_approval_for(
        self,
        conn: Connection,
        requester_id: int,
        tracking_number: str,
        fields: Sequence[str],
        purpose: str,
        now: datetime,
    ) -> int | None:
        return conn.execute(
            select(approval_requests.c.id)
            .where(
                and_(
                    approval_requests.c.kind == "reveal",
                    approval_requests.c.requester_id == requester_id,
                    approval_requests.c.tracking_number == tracking_number,
                    approval_requests.c.fields == ",".join(sorted(fields)),
                    approval_requests.c.purpose == purpose,
                    approval_requests.c.state.in_(("pending", "approved")),
                    approval_requests.c.expires_at > now,
                )
            )
            .order_by(approval_requests.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()

    def approvals(
        self, conn: Connection, states: Sequence[str], limit: int, after_id: int = 0
    ) -> list[ApprovalRow]:
        ids = conn.execute(
            select(approval_requests.c.id)
            .where(and_(approval_requests.c.state.in_(states), approval_requests.c.id > after_id))
            .order_by(approval_requests.c.id)
            .limit(limit)
        ).scalars()
        return [a for i in list(ids) if (a := self.approval(conn, int(i))) is not None]

    def add_vote(
        self,
        conn: Connection,
        request_id: int,
        approver_id: int,
        capacity: str,
        decision: str,
        now: datetime,
    ) -> None:
        conn.execute(
            approval_votes.insert().values(
                request_id=request_id,
                approver_id=approver_id,
                capacity=capacity,
                decision=decision,
                at=now,
            )
        )

    def set_approval_state(
        self, conn: Connection, request_id: int, state: str, now: datetime
    ) -> None:
        conn.execute(
            update(approval_requests)
            .where(approval_requests.c.id == request_id)
            .values(state=state, decided_at=now)
        )

    # -- alerts ------------------------------------------------------------------------------
    def add_alert(
        self,
        conn: Connection,
        kind: str,
        severity: str,
        message: str,
        now: datetime,
        principal_id: int | None = None,
        unit_code: str | None = None,
    ) -> int:
        result = conn.execute(
            alerts.insert().values(
                at=now,
                kind=kind,
                severity=severity,
                principal_id=principal_id,
                unit_code=unit_code,
                message=message,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def alerts(
        self, conn: Connection, open_only: bool, limit: int, after_id: int = 0
    ) -> list[AlertRow]:
        query = select(alerts).where(alerts.c.id > after_id)
        if open_only:
            query = query.where(alerts.c.acknowledged_at.is_(None))
        rows = conn.execute(query.order_by(alerts.c.id).limit(limit)).all()
        return [
            AlertRow(
                id=r.id,
                at=_aware(r.at) or r.at,
                kind=r.kind,
                severity=r.severity,
                principal_id=r.principal_id,
                unit_code=r.unit_code,
                message=r.message,
                acknowledged_by=r.acknowledged_by,
            )
            for r in rows
        ]

    def ack_alert(self, conn: Connection, alert_id: int, by: str, now: datetime) -> bool:
        return bool(
            conn.execute(
                update(alerts)
                .where(and_(alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None)))
                .values(acknowledged_by=by, acknowledged_at=now)
            ).rowcount
        )

    # -- policy versions ---------------------------------------------------------------------
    def current_policy(self, conn: Connection) -> tuple[int, str] | None:
        row = conn.execute(
            select(policy_versions.c.version, policy_versions.c.body)
            .order_by(policy_versions.c.version.desc())
            .limit(1)
        ).first()
        return (int(row[0]), str(row[1])) if row else None

    def current_policy_version(self, conn: Connection) -> int | None:
        value = conn.execute(select(func.max(policy_versions.c.version))).scalar_one_or_none()
        return int(value) if value is not None else None

    def add_policy_version(
        self, conn: Connection, version: int, sha256: str, body: str, by: str, now: datetime
    ) -> None:
        conn.execute(
            policy_versions.insert().values(
                version=version, sha256=sha256, body=body, applied_by=by, applied_at=now
            )
        )

    def policy_history(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(
                policy_versions.c.version,
                policy_versions.c.sha256,
                policy_versions.c.applied_by,
                policy_versions.c.applied_at,
            ).order_by(policy_versions.c.version)
        ).all()
        return [
            {
                "version": r[0],
                "sha256": r[1],
                "applied_by": r[2],
                "applied_at": (_aware(r[3]) or r[3]).isoformat(),
            }
            for r in rows
        ]

    # -- break-glass -------------------------------------------------------------------------
    def active_break_glass(
        self, conn: Connection, principal_id: int, now: datetime
    ) -> datetime | None:
        value = conn.execute(
            select(func.max(break_glass.c.expires_at)).where(
                and_(
                    break_glass.c.principal_id == principal_id,
                    break_glass.c.expires_at > now,
                    break_glass.c.ended_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        return _aware(value)

    def start_break_glass(
        self, conn: Connection, principal_id: int, reason: str, now: datetime, until: datetime
    ) -> int:
        result = conn.execute(
            break_glass.insert().values(
                principal_id=principal_id, reason=reason, started_at=now, expires_at=until
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def end_break_glass(self, conn: Connection, principal_id: int, now: datetime) -> int:
        return int(
            conn.execute(
                update(break_glass)
                .where(
                    and_(
                        break_glass.c.principal_id == principal_id,
                        break_glass.c.ended_at.is_(None),
                        break_glass.c.expires_at > now,
                    )
                )
                .values(ended_at=now)
            ).rowcount
        )

    # -- exports -----------------------------------------------------------------------------
    def create_export(
        self,
        conn: Connection,
        *,
        requester_id: int,
        fields: Sequence[str],
        filter_json: str,
        purpose: str,
        reason: str,
        trace_id: str,
        now: datetime,
    ) -> int:
        result = conn.execute(
            exports.insert().values(
                requester_id=requester_id,
                fields=",".join(fields),
                filter=filter_json,
                purpose=purpose,
                reason=reason,
                state="requested",
                trace_id=trace_id,
                downloads=0,
                created_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def export(self, conn: Connection, export_id: int, *, lock: bool = False) -> ExportRow | None:
        query = select(exports).where(exports.c.id == export_id)
        if lock and not self.sqlite:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return _export(row) if row else None

    def exports(self, conn: Connection, states: Sequence[str], limit: int) -> list[ExportRow]:
        rows = conn.execute(
            select(exports).where(exports.c.state.in_(states)).order_by(exports.c.id).limit(limit)
        ).all()
        return [_export(r) for r in rows]

    def update_export(self, conn: Connection, export_id: int, **values: Any) -> None:
        conn.execute(update(exports).where(exports.c.id == export_id).values(**values))

    def select_for_export(
        self,
        conn: Connection,
        *,
        station: str | None,
        status: str | None,
        merchant: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
        limit: int,
    ) -> list[str]:
        """Tracking numbers matching an export filter (live waybills only), oldest first."""
        origin = station_coverage.alias("origin_cov")
        dest = station_coverage.alias("dest_cov")
        query = select(waybills.c.tracking_number).where(waybills.c.shredded_at.is_(None))
        if station is not None:
            query = query.select_from(
                waybills.outerjoin(origin, origin.c.adcode == waybills.c.origin_adcode).outerjoin(
                    dest, dest.c.adcode == waybills.c.destination_adcode
                )
            ).where((origin.c.station_code == station) | (dest.c.station_code == station))
        if status is not None:
            query = query.where(waybills.c.status == status)
        if merchant is not None:
            query = query.where(waybills.c.merchant == merchant)
        if created_from is not None:
            query = query.where(waybills.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(waybills.c.created_at < created_to)
        return list(conn.execute(query.order_by(waybills.c.id).limit(limit)).scalars())

    def export_by_trace(self, conn: Connection, trace_id: str) -> ExportRow | None:
        row = conn.execute(select(exports).where(exports.c.trace_id == trace_id)).first()
        return _export(row) if row else None


def _approval(row: Any, votes: Sequence[Any]) -> ApprovalRow:
    return ApprovalRow(
        id=row.id,
        kind=row.kind,
        requester_id=row.requester_id,
        tracking_number=row.tracking_number,
        fields=frozenset(f for f in row.fields.split(",") if f),
        purpose=row.purpose,
        reason=row.reason,
        records=row.records,
        needs=tuple(n for n in row.needs.split(",") if n),
        state=row.state,
        created_at=_aware(row.created_at) or row.created_at,
        expires_at=_aware(row.expires_at) or row.expires_at,
        votes=tuple((int(v[0]), str(v[1]), str(v[2])) for v in votes),
    )


def _export(row: Any) -> ExportRow:
    return ExportRow(
        id=row.id,
        requester_id=row.requester_id,
        fields=tuple(f for f in row.fields.split(",") if f),
        filter=row.filter,
        purpose=row.purpose,
        reason=row.reason,
        state=row.state,
        approver_id=row.approver_id,
        expires_at=_aware(row.expires_at),
        trace_id=row.trace_id,
        row_count=row.row_count,
        downloads=row.downloads,
        created_at=_aware(row.created_at) or row.created_at,
    )
