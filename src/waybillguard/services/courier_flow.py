"""The courier's delivery flow: scan the label's QR → resolve → navigate and call →
mark delivered.

    resolve  token (vault: authentic, unexpired) → waybill out for delivery?
             → caller is the courier assigned to it, on their registered device?
             → reveal `recipient.address` for purpose "delivery" (authorised by the
               policy, charged to the courier's quota, audited — like any reveal)
             → the waybill's virtual line (allocated if needed) and masked name
    deliver  courier + device + assignment + out for delivery → waybill `delivered`
             (proof reference kept with the event) → the binding now expires
             `grace` (15 days by default) after delivery; audited

The QR token dies at delivery: resolving needs the waybill to be out for delivery now.
Refusals before the reveal are audited as `courier.resolve` / `courier.deliver` with
decision `deny`; the reveal audits itself. The courier's device id is checked but
never written to the audit log (the log's client field says `courier-device`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from waybillguard.domain.audit_event import check_free_text
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import Role
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services import reveal, virtual_numbers, waybills
from waybillguard.services.activity import emit, emit_in
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.vault import InvalidDeliveryToken

PURPOSE: Final = "delivery"
FIELD: Final = "recipient.address"
DEVICE_CLIENT: Final = "courier-device"  # what the audit log records instead of the id
_PROOF = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{5,63}")

_MESSAGES: Final[dict[str, str]] = {
    "courier.token_invalid": "二维码无效 / the QR token is not valid",
    "courier.token_expired": "二维码已过期 / the QR token has expired",
    "courier.token_dead": (
        "运单不在派送中，二维码已失效 / the waybill is not out for delivery; the QR token "
        "no longer resolves"
    ),
    "courier.not_courier": "只有快递员可扫码派送 / only couriers resolve delivery QR codes",
    "courier.device": (
        "请在登记的派送设备上操作 / use the device registered for you (device-bound session)"
    ),
    "courier.not_assigned": "此运单未指派给你 / this waybill is not assigned to you",
    "waybill.not_found": "无此运单 / no such waybill",
    "courier.status": "运单不在派送中 / the waybill is not out for delivery",
}


class CourierRefused(PermissionError):
    """A courier-flow request was refused; `code` is stable, the message Chinese first."""

    def __init__(self, code: str) -> None:
        super().__init__(_MESSAGES[code])
        self.code = code
        self.message = _MESSAGES[code]


@dataclass
class Resolution:
    decision: str  # allow | deny (or what the reveal decided: step_up, locked, …)
    rule: str
    message: str
    tracking_number: str | None = None
    address: str | None = field(default=None, repr=False)
    virtual_number: str | None = None
    extension: str | None = None
    recipient_name: str | None = None  # masked
    audit_event: int | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def line(self) -> str | None:
        if self.virtual_number is None or self.extension is None:
            return None
        return f"{self.virtual_number}转{self.extension}"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "decision": self.decision,
            "rule": self.rule,
            "message": self.message,
        }
        if self.tracking_number is not None:
            data["tracking_number"] = self.tracking_number
        if self.allowed:
            data.update(
                address=self.address,
                recipient_name=self.recipient_name,
                call={
                    "line": self.line,
                    "virtual_number": self.virtual_number,
                    "extension": self.extension,
                },
            )
        if self.audit_event is not None:
            data["audit_event"] = self.audit_event
        return data


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _device_problem(caller: Caller) -> str | None:
    principal = caller.principal
    if principal.role is not Role.COURIER:
        return "courier.not_courier"
    if not principal.device_id or caller.client != principal.device_id:
        return "courier.device"
    return None


def _masked(caller: Caller) -> Caller:
    """The caller as the audit log may see it: the device id replaced by a label."""
    return replace(caller, client=DEVICE_CLIENT)


def _facts(app: App, number: str) -> tuple[str | None, int | None]:
    store = virtual_numbers.store_for(app)
    with store.read() as conn:
        return store.waybill_status(conn, number), store.assigned_courier(conn, number)


def _deny(
    app: App, caller: Caller, action: str, code: str, number: str | None = None
) -> Resolution:
    event = emit(
        app,
        _masked(caller).actor,
        action,
        waybills=[number] if number else [],
        purpose=PURPOSE,
        decision="deny",
        rule=code,
    )
    return Resolution("deny", code, _MESSAGES[code], number, audit_event=event)


def resolve(app: App, caller: Caller, token: str, now: datetime | None = None) -> Resolution:
    """Resolve a label's QR token for the courier delivering it: the address for
    navigation, the virtual line to call, the recipient's masked name."""
    now = _now(now)
    try:
        number, expires_at = app.vault.open_delivery_token(token)
    except InvalidDeliveryToken:
        return _deny(app, caller, "courier.resolve", "courier.token_invalid")
    if now.timestamp() >= expires_at:
        return _deny(app, caller, "courier.resolve", "courier.token_expired", number)
    problem = _device_problem(caller)
    if problem is not None:
        return _deny(app, caller, "courier.resolve", problem, number)
    status, assigned = _facts(app, number)
    if status is None:
        return _deny(app, caller, "courier.resolve", "waybill.not_found", number)
    if status != Status.OUT_FOR_DELIVERY.value:
        return _deny(app, caller, "courier.resolve", "courier.token_dead", number)
    if assigned != caller.principal.id:
        return _deny(app, caller, "courier.resolve", "courier.not_assigned", number)
    outcome = reveal.reveal(app, _masked(caller), number, FIELD, PURPOSE, now=now)
    if not outcome.allowed:
        return Resolution(
            outcome.decision.effect.value,
            outcome.decision.rule,
            outcome.decision.message,
            number,
            audit_event=outcome.audit_event,
        )
    result = Resolution(
        "allow",
        outcome.decision.rule,
        "可派送 / deliver",
        number,
        address=outcome.fields[number][FIELD],
        audit_event=outcome.audit_event,
    )
    stored = app.store.get(number)
    result.recipient_name = stored.masks["recipient.name"] if stored is not None else None
    try:
        binding = virtual_numbers.allocate_for(app, _masked(caller).actor, number, now)
    except virtual_numbers.NumbersError as exc:
        result.message = f"可派送；隐私号暂不可用 / deliver; no virtual line: {exc.message}"
    else:
        result.virtual_number, result.extension = binding.virtual_number, binding.extension
    return result


def parse_proof_ref(text: str, field_name: str = "proof") -> str:
    """A signature or photo reference: an opaque id the device's upload returned
    (6-64 characters A-Z a-z 0-9 . _ : -, starting with a letter). Never personal data:
    a run of 7 or more digits (a phone or id number?) is refused."""
    value = text.strip() if isinstance(text, str) else ""
    if not _PROOF.fullmatch(value):
        raise FieldError(
            field_name, "an opaque reference of 6-64 characters A-Z a-z 0-9 . _ : - (letter first)"
        )
    try:
        check_free_text(field_name, value, 64)
    except FieldError:
        raise FieldError(field_name, "must not contain a phone or identity number") from None
    return value


def deliver(
    app: App, caller: Caller, number: str, proof_ref: str, now: datetime | None = None
) -> dict[str, Any]:
    """Mark the waybill delivered by its assigned courier, with a proof reference; its
    virtual line then expires `grace` after delivery. Raises CourierRefused (audited)."""
    proof = parse_proof_ref(proof_ref)
    parsed = parse_tracking_number(number)
    tracking = str(parsed) if parsed is not None else None
    _ = _now(now)
    if tracking is None:
        _deny(app, caller, "courier.deliver", "waybill.not_found")
        raise CourierRefused("waybill.not_found")
    problem = _device_problem(caller)
    if problem is None:
        status, assigned = _facts(app, tracking)
        if status is None:
            problem = "waybill.not_found"
        elif assigned != caller.principal.id:
            problem = "courier.not_assigned"
        elif status != Status.OUT_FOR_DELIVERY.value:
            problem = "courier.status"
    if problem is not None:
        _deny(app, caller, "courier.deliver", problem, tracking)
        raise CourierRefused(problem)
    actor = _masked(caller).actor
    waybills.record_event(
        app, tracking, Status.DELIVERED.value, actor, f"proof:{proof}", caller.principal
    )
    store = virtual_numbers.store_for(app)
    with store.write() as conn:
        delivered_at = store.last_event_at(conn, tracking, Status.DELIVERED.value) or _now(None)
        binding = virtual_numbers.expire_after_delivery_in(app, conn, tracking, delivered_at)
        emit_in(
            app,
            conn,
            actor,
            "courier.deliver",
            waybills=[tracking],
            purpose=PURPOSE,
            detail={"proof_ref": proof, "binding": binding.id if binding else 0},
        )
    return {
        "tracking_number": tracking,
        "status": Status.DELIVERED.value,
        "delivered_at": delivered_at.isoformat(),
        "binding_expires_at": binding.expires_at.isoformat() if binding else None,
    }
