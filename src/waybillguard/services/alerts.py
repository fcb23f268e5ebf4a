"""Alerts for the security team: ceilings hit, break-glass opened, lockouts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from waybillguard.domain.errors import valid_id
from waybillguard.domain.identity import Role
from waybillguard.services import policy_admin
from waybillguard.services.activity import Actor, emit_in
from waybillguard.services.app import App

MAX_LIST = 1000


def raise_alert(
    app: App,
    kind: str,
    severity: str,
    message: str,
    *,
    principal_id: int | None = None,
    unit_code: str | None = None,
) -> int:
    store = policy_admin.access_store(app)
    with store.write() as conn:
        return store.add_alert(
            conn,
            kind,
            severity,
            message,
            datetime.now(UTC),
            principal_id=principal_id,
            unit_code=unit_code,
        )


def list_alerts(
    app: App, open_only: bool = True, limit: int = MAX_LIST, after_id: int = 0
) -> list[dict[str, Any]]:
    store = policy_admin.access_store(app)
    with store.read() as conn:
        rows = store.alerts(conn, open_only, limit, after_id)
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "kind": r.kind,
            "severity": r.severity,
            "unit": r.unit_code,
            "message": r.message,
            "acknowledged_by": r.acknowledged_by,
        }
        for r in rows
    ]


def acknowledge(app: App, actor: Actor, alert_id: int) -> bool:
    if actor.role not in (Role.SECURITY.value, Role.ADMIN.value, "operator"):
        raise PermissionError(
            "只有安全或管理员可确认告警 / only security or admins acknowledge alerts"
        )
    store = policy_admin.access_store(app)
    with store.write() as conn:
        done = valid_id(alert_id) and store.ack_alert(conn, alert_id, actor.name, datetime.now(UTC))
        emit_in(app, conn, actor, "alert.ack", detail={"alert": alert_id, "done": int(done)})
    return done
