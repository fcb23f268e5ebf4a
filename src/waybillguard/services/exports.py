"""Bulk export under the two-person rule, traceable to its recipient.

    request (fields, filter, purpose, reason) → approval by a second person
    (security or admin; never the requester) → download by the requester before it
    expires, every download audited and charged.

Each export reserves a real tracking number from the network's sequence (valid check
digits, never given to a parcel) and plants it in its file as a canary row with
synthetic personal data. A leaked copy is traced with `export trace FILE`: the canary
names the export, who requested it and who approved it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from waybillguard.adapters.db.access_store import ExportRow
from waybillguard.domain.audit_event import AuditEvent, format_timestamp
from waybillguard.domain.errors import FieldError, valid_id
from waybillguard.domain.identity import Principal, Role
from waybillguard.domain.lifecycle import parse_status
from waybillguard.domain.purpose import PurposeKind, parse_purpose
from waybillguard.services import audit, policy_admin
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.services.reveal import (
    check_reason,
    complete_addresses,
    parse_fields,
    reason_ref,
)
from waybillguard.services.synth import synth_rows
from waybillguard.vault import RevealGrant, SealedRecord

MAX_EXPORT_ROWS = 10_000  # one audit event names every waybill of a download
MAX_TRACE_BYTES = 64 * 2**20  # a leaked file to trace; split larger dumps first
DEFAULT_VALID_HOURS = 24
MAX_VALID_HOURS = 24 * 7
_TRACKING = re.compile(r"\b[A-Z]{2}\d{13}\b")


class ExportError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ExportFilter:
    station: str | None = None
    status: str | None = None
    merchant: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = MAX_EXPORT_ROWS

    def as_json(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "status": self.status,
            "merchant": self.merchant,
            "created_from": self.created_from.isoformat() if self.created_from else None,
            "created_to": self.created_to.isoformat() if self.created_to else None,
            "limit": self.limit,
        }

    @classmethod
    def from_json(cls, text: str) -> ExportFilter:
        data = orjson.loads(text)
        return cls(
            station=data.get("station"),
            status=data.get("status"),
            merchant=data.get("merchant"),
            created_from=datetime.fromisoformat(data["created_from"])
            if data.get("created_from")
            else None,
            created_to=datetime.fromisoformat(data["created_to"])
            if data.get("created_to")
            else None,
            limit=int(data.get("limit", MAX_EXPORT_ROWS)),
        )


def export_json(row: ExportRow) -> dict[str, Any]:
    return {
        "export_id": row.id,
        "requester_id": row.requester_id,
        "fields": list(row.fields),
        "filter": orjson.loads(row.filter),
        "purpose": row.purpose,
        "state": row.state,
        "approver_id": row.approver_id,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "row_count": row.row_count,
        "downloads": row.downloads,
        "created_at": row.created_at.isoformat(),
    }


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _check_filter(principal: Principal, flt: ExportFilter, fields: frozenset[str]) -> None:
    """Who may ask for which rows: a station manager for their own station, a partner
    for their own shipments within their contract, security for a legal request."""
    if not 1 <= flt.limit <= MAX_EXPORT_ROWS:
        raise FieldError("limit", f"between 1 and {MAX_EXPORT_ROWS}")
    if flt.status is not None:
        parse_status(flt.status)
    role = principal.role
    if role is Role.STATION_MANAGER:
        if flt.station != principal.unit:
            raise ExportError("export.station", "只能导出本网点运单 / export your own station only")
    elif role is Role.PARTNER:
        if flt.merchant != principal.merchant:
            raise ExportError("export.merchant", "只能导出本商户运单 / export your own shipments")
        if not fields <= principal.contract_fields:
            raise ExportError(
                "export.contract", "合同未包含这些字段 / fields outside your contract"
            )
    elif role is not Role.SECURITY:
        raise ExportError("export.role", "该角色不可申请导出 / this role may not request exports")


def request_export(
    app: App,
    caller: Caller,
    fields: str,
    flt: ExportFilter,
    purpose: str,
    reason: str,
    now: datetime | None = None,
) -> int:
    now = _now(now)
    principal = caller.principal
    if not principal.active:
        raise ExportError("account.inactive", "账户不可用 / your account is not active")
    wanted = parse_fields(fields)
    parsed_purpose = parse_purpose(purpose)
    if principal.role is Role.SECURITY and parsed_purpose.kind is not PurposeKind.LEGAL:
        raise ExportError(
            "export.purpose", "安全导出须为司法请求 / security exports need legal:REF"
        )
    text = check_reason(reason)
    policy = policy_admin.current(app)
    if len(text) < policy.reason_min_length:
        raise FieldError("reason", f"at least {policy.reason_min_length} characters")
    _check_filter(principal, flt, wanted)
    prefix = app.settings.tracking_prefix
    with app.store.write() as conn:
        counter = app.store.reserve_counters(conn, prefix, 1)
        trace_id = app.vault.issue_tracking_numbers(prefix, list(counter))[0]
        store = policy_admin.access_store(app)
        export_id = store.create_export(
            conn,
            requester_id=principal.id,
            fields=sorted(wanted),
            filter_json=orjson.dumps(flt.as_json()).decode(),
            purpose=str(parsed_purpose),
            reason=text,
            trace_id=trace_id,
            now=now,
        )
        _audit(
            app,
            conn,
            caller,
            "export.request",
            now,
            fields=sorted(wanted),
            purpose=str(parsed_purpose),
            detail={"export": export_id, "reason_ref": reason_ref(text)},
        )
    return export_id


def _audit(
    app: App,
    conn: Any,
    caller: Caller,
    action: str,
    now: datetime,
    *,
    fields: list[str] | tuple[str, ...] = (),
    purpose: str = "",
    waybills: list[str] | tuple[str, ...] = (),
    decision: str = "allow",
    rule: str = "",
    detail: dict[str, str | int] | None = None,
) -> int:
    event = AuditEvent(
        action=action,
        actor=caller.actor.name,
        role=caller.actor.role,
        unit=caller.actor.unit,
        decision=decision,
        rule=rule,
        purpose=purpose,
        waybills=tuple(waybills),
        fields=tuple(fields),
        client=caller.actor.client,
        at=format_timestamp(now),
        detail=detail or {},
    )
    return audit.record_in(app, conn, [event])[0]


def decide_export(
    app: App,
    caller: Caller,
    export_id: int,
    approve: bool,
    hours: int = DEFAULT_VALID_HOURS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The second person's decision. The requester can never approve their own export."""
    if not valid_id(export_id):
        raise ExportError("export.unknown", "无此导出 / no such export")
    now = _now(now)
    approver = caller.principal
    if not 1 <= hours <= MAX_VALID_HOURS:
        raise FieldError("hours", f"between 1 and {MAX_VALID_HOURS}")
    if approver.role not in (Role.SECURITY, Role.ADMIN) or not approver.active:
        raise ExportError(
            "export.approver", "只有安全或管理员可审批导出 / security or admin approves"
        )
    store = policy_admin.access_store(app)
    with store.write() as conn:
        row = store.export(conn, export_id, lock=True)
        if row is None:
            raise ExportError("export.unknown", "无此导出 / no such export")
        if row.requester_id == approver.id:
            raise ExportError(
                "export.self", "不能审批自己的导出 / you cannot approve your own export"
            )
        if row.state != "requested":
            raise ExportError("export.closed", f"导出状态为 {row.state} / export is {row.state}")
        state = "approved" if approve else "denied"
        store.update_export(
            conn,
            export_id,
            state=state,
            approver_id=approver.id,
            decided_at=now,
            expires_at=now + timedelta(hours=hours) if approve else None,
        )
        _audit(
            app,
            conn,
            caller,
            "export.approve",
            now,
            fields=row.fields,
            purpose=row.purpose,
            decision="allow" if approve else "deny",
            rule="export.two_person",
            detail={"export": export_id, "hours": hours if approve else 0},
        )
        updated = store.export(conn, export_id)
    assert updated is not None
    return export_json(updated)


def list_exports(
    app: App, states: tuple[str, ...] = ("requested", "approved")
) -> list[dict[str, Any]]:
    store = policy_admin.access_store(app)
    with store.read() as conn:
        return [export_json(r) for r in store.exports(conn, states, 1000)]


def download(
    app: App, caller: Caller, export_id: int, out: Path, now: datetime | None = None
) -> dict[str, Any]:
    """Write the export to `out` (CSV, mode 0600): `stream_download` into a file."""
    stream = stream_download(app, caller, export_id, now)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(stream.lines)
    tmp.replace(out)
    return {
        "export_id": export_id,
        "rows": stream.rows,
        "path": str(out),
        "audit_event": stream.audit_event,
    }


def _canary_position(trace_id: str, count: int) -> int:
    return int(trace_id[2:]) % (count + 1)


def _canary(row: ExportRow, fields: list[str]) -> list[str]:
    person = next(iter(synth_rows(1, seed=int(row.trace_id[2:]))))
    values = {
        f"{role}.{attr}": person[role][attr]
        for role in ("sender", "recipient")
        for attr in ("name", "phone", "address")
    }
    return [row.trace_id, *(values[f] for f in fields)]


def trace(app: App, path: Path) -> list[dict[str, Any]]:
    """Which exports a (leaked) file came from: every canary tracking number in it."""
    try:
        with path.open("rb") as handle:
            blob = handle.read(MAX_TRACE_BYTES + 1)
    except OSError as exc:
        raise ExportError(
            "trace.unreadable", f"cannot read the file ({type(exc).__name__})"
        ) from None
    if len(blob) > MAX_TRACE_BYTES:
        raise ExportError("trace.too_large", f"larger than {MAX_TRACE_BYTES // 2**20} MiB")
    text = blob.decode("utf-8", errors="replace")
    found: list[dict[str, Any]] = []
    store = policy_admin.access_store(app)
    with store.read() as conn:
        for number in sorted(set(_TRACKING.findall(text))):
            row = store.export_by_trace(conn, number)
            if row is not None:
                found.append({**export_json(row), "trace_id": number})
    return found


@dataclass(frozen=True, slots=True)
class DownloadStream:
    """An authorised, audited and charged download, decrypted row by row as `lines`
    is consumed (CSV text, header first, the export's canary row planted among the rows)."""

    export_id: int
    rows: int
    audit_event: int
    lines: Iterator[str]


def stream_download(
    app: App, caller: Caller, export_id: int, now: datetime | None = None
) -> DownloadStream:
    """`download` for a network response instead of a file: the same checks, the same
    audit event (naming every waybill) and charge, committed before anything is
    decrypted; then the CSV is produced lazily, one decrypted row at a time."""
    if not valid_id(export_id):
        raise ExportError("export.unknown", "无此导出 / no such export")
    now = _now(now)
    principal = caller.principal
    store = policy_admin.access_store(app)
    with store.write() as conn:
        row = store.export(conn, export_id, lock=True)
        if row is None or row.requester_id != principal.id:
            raise ExportError("export.unknown", "无此导出 / no such export of yours")
        if row.state != "approved":
            raise ExportError(
                "export.not_approved", f"导出状态为 {row.state} / export is {row.state}"
            )
        if row.expires_at is None or row.expires_at <= now:
            store.update_export(conn, export_id, state="expired")
            expired = True
        else:
            expired = False
        if not expired:
            if not principal.active:
                raise ExportError("account.inactive", "账户不可用 / your account is not active")
            flt = ExportFilter.from_json(row.filter)
            numbers = store.select_for_export(
                conn,
                station=flt.station,
                status=flt.status,
                merchant=flt.merchant,
                created_from=flt.created_from,
                created_to=flt.created_to,
                limit=flt.limit,
            )
            event_id = _audit(
                app,
                conn,
                caller,
                "export.download",
                now,
                fields=row.fields,
                purpose=row.purpose,
                waybills=numbers,
                rule="export.two_person",
                detail={"export": export_id, "rows": len(numbers), "download": row.downloads + 1},
            )
            store.charge(conn, principal.id, len(numbers), now, event_id, None)
            store.update_export(
                conn, export_id, downloads=row.downloads + 1, row_count=len(numbers)
            )
    if expired:  # the expiry is recorded (committed) before refusing
        raise ExportError("export.expired", "导出已过期 / the export expired")
    return DownloadStream(
        export_id, len(numbers), event_id, _csv_lines(app, row, numbers, str(event_id))
    )


def _csv_lines(app: App, row: ExportRow, numbers: list[str], audit_ref: str) -> Iterator[str]:
    fields = list(row.fields)
    wanted = frozenset(fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(["tracking_number", *fields])
    canary_at = _canary_position(row.trace_id, len(numbers))
    for position, number in enumerate(numbers):
        if position == canary_at:
            yield line(_canary(row, fields))
        sealed = app.store.sealed(number)
        if sealed is None or sealed.kek_id is None:
            continue  # shredded since: its data is gone, and stays gone
        record = SealedRecord(
            number, sealed.uid, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertexts
        )
        values = complete_addresses(
            app, number, app.vault.open_fields(record, RevealGrant(number, wanted, audit_ref))
        )
        yield line([number, *(values[f] for f in fields)])
    if canary_at >= len(numbers):
        yield line(_canary(row, fields))
