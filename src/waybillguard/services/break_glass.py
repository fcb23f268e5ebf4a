"""Break-glass: a time-boxed, reasoned, alerted widening of one principal's scope.

Only roles the policy marks `break_glass = true` may open it; it needs a fresh TOTP and
a written reason, lasts at most the policy's `break_glass_max_minutes`, raises a
high-severity alert for security, and is audited on open and close. Volume tiers still
apply while it is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from waybillguard.domain.errors import FieldError
from waybillguard.services import policy_admin
from waybillguard.services.activity import emit_in
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.services.reveal import StepUp, check_reason, reason_ref


class BreakGlassRefused(PermissionError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class BreakGlassGrant:
    grant_id: int
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id, "expires_at": self.expires_at.isoformat()}


def open_grant(
    app: App,
    caller: Caller,
    reason: str,
    minutes: int,
    *,
    totp: str | None = None,
    step_up: StepUp | None = None,
    now: datetime | None = None,
) -> BreakGlassGrant:
    now = now or datetime.now(UTC)
    policy = policy_admin.current(app)
    principal = caller.principal
    if not principal.active:
        raise BreakGlassRefused("account.inactive", "账户不可用 / your account is not active")
    if not policy.roles[principal.role].break_glass:
        raise BreakGlassRefused(
            "break_glass.role", "该角色不可使用紧急授权 / this role may not break glass"
        )
    text = check_reason(reason)
    if len(text) < policy.reason_min_length:
        raise FieldError("reason", f"at least {policy.reason_min_length} characters")
    limit = int(policy.break_glass_max.total_seconds() // 60)
    if not 1 <= minutes <= limit:
        raise FieldError("minutes", f"between 1 and {limit}")
    if not caller.mfa_fresh(now, policy.step_up_valid):
        proven = step_up(app, caller, totp) if (totp and step_up) else None
        if proven is None:
            raise BreakGlassRefused(
                "break_glass.step_up", "需要新的动态码 / a fresh TOTP code (--totp) is required"
            )
    until = now + timedelta(minutes=minutes)
    store = policy_admin.access_store(app)
    with store.write() as conn:
        grant_id = store.start_break_glass(conn, principal.id, text, now, until)
        store.add_alert(
            conn,
            "break_glass",
            "high",
            f"{principal.username} ({principal.role.value}@{principal.unit}) opened "
            f"break-glass #{grant_id} for {minutes} min",
            now,
            principal_id=principal.id,
            unit_code=principal.unit,
        )
        emit_in(
            app,
            conn,
            caller.actor,
            "break_glass.open",
            rule="break_glass",
            detail={"grant": grant_id, "minutes": minutes, "reason_ref": reason_ref(text)},
        )
    return BreakGlassGrant(grant_id, until)


def close_grants(app: App, caller: Caller, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    store = policy_admin.access_store(app)
    with store.write() as conn:
        closed = store.end_break_glass(conn, caller.principal.id, now)
        emit_in(app, conn, caller.actor, "break_glass.close", detail={"closed": closed})
    return closed
