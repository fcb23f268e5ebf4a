"""Errors as the API answers them: `{"error": {"code": "stable_code", "message": "…"}}`.

Codes are stable English identifiers for programs; messages are for people, Chinese
first. Neither ever carries a value from the request (a phone, a name, an address, a
password): services already build their messages that way (field + reason), and the
catch-all here answers with the exception's type only in the log, never its text.
The mapping mirrors the command line's exit codes (reveal_cli, access_cli).
"""

from __future__ import annotations

import re
from typing import Any, Final

from waybillguard.domain.errors import FieldError
from waybillguard.domain.lifecycle import IllegalTransition
from waybillguard.domain.tracking import TrackingSpaceExhausted
from waybillguard.services import (
    approvals,
    audit,
    auth,
    break_glass,
    deliveries,
    exports,
    identities,
    intake,
    policy_admin,
    reveal,
    tickets,
    waybills,
)

INTERNAL_MESSAGE: Final = "内部错误 / internal error"
# Which refusal codes of the services mean "no such thing" or "conflicts with its state"
# rather than "not allowed".
_NOT_FOUND_SUFFIXES: Final = (".unknown", ".not_found")
_CONFLICT_SUFFIXES: Final = (".closed", ".complete", ".exists", ".twice", ".expired")
_SAFE_LOC = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,40}")
_DIGITS = re.compile(r"\d{5,}")


class ApiError(Exception):
    """An answer other than success, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _refusal_status(code: str) -> int:
    if code.endswith(_NOT_FOUND_SUFFIXES):
        return 404
    if code.endswith(_CONFLICT_SUFFIXES):
        return 409
    return 403


def from_exception(exc: BaseException) -> ApiError | None:
    """The API error for a service exception, or None if it is not one we expect."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, intake.IntakeRejected):
        rows = [{"row": r, "field": f, "reason": why} for r, f, why in exc.errors]
        if exc.conflict:
            return ApiError(409, "duplicate_order", "订单已存在 / order already stored", rows=rows)
        return ApiError(422, "rows_rejected", "运单数据有误，均未保存 / rows rejected", rows=rows)
    if isinstance(exc, FieldError):
        return ApiError(422, "invalid_input", f"{exc.field}: {exc.reason}", field=exc.field)
    if isinstance(
        exc,
        approvals.ApprovalError
        | exports.ExportError
        | break_glass.BreakGlassRefused
        | deliveries.AssignmentRefused
        | tickets.TicketError,
    ):
        return ApiError(_refusal_status(exc.code), exc.code, str(exc))
    if isinstance(exc, policy_admin.PolicyVersionError):
        return ApiError(409, "policy.version", str(exc))
    if isinstance(exc, auth.AuthError):
        return ApiError(401, exc.code, exc.message)
    if isinstance(exc, identities.NotAllowed | PermissionError):
        return ApiError(403, "not_allowed", f"不允许 / not allowed: {exc}")
    if isinstance(exc, waybills.WaybillNotFound):
        return ApiError(404, "waybill.not_found", "无此运单 / no such waybill")
    if isinstance(exc, IllegalTransition):
        return ApiError(409, "waybill.illegal_transition", str(exc))
    if isinstance(exc, waybills.ConcurrentUpdate):
        return ApiError(409, "waybill.concurrent_update", str(exc))
    if isinstance(exc, reveal.RevealFailed):
        return ApiError(410, "reveal.failed", "已授权但无法解密（运单已销毁？）/ " + str(exc))
    if isinstance(exc, audit.AuditError):
        return ApiError(404, "audit.not_found", "无此审计事件 / no such audit event")
    if isinstance(exc, TrackingSpaceExhausted):
        return ApiError(409, "tracking.exhausted", "运单号已用尽 / tracking numbers exhausted")
    if isinstance(exc, ValueError):
        # Some library ValueErrors quote their input: answer without the text.
        return ApiError(422, "invalid_input", "输入无效 / invalid input")
    return None


def safe_location(loc: tuple[Any, ...] | list[Any]) -> str:
    """Where a validation error is, without anything the client chose that could be
    personal data (an unexpected JSON key is the client's text)."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(str(item))
        elif isinstance(item, str) and _SAFE_LOC.fullmatch(item) and not _DIGITS.search(item):
            parts.append(item)
        else:
            parts.append("*")
    return ".".join(parts)


def validation_body(errors: list[Any]) -> dict[str, Any]:
    """A 422 for malformed requests: where and why, never the input."""
    problems = []
    for e in errors[:20]:
        reason = str(e.get("type", "invalid"))
        problems.append({"location": safe_location(e.get("loc", ())), "reason": reason})
    return error_body(
        "invalid_request",
        "请求格式不正确 / the request is malformed",
        problems=problems,
    )


# The exception classes `from_exception` answers (registered as handlers on the app).
HANDLED: Final[tuple[type[Exception], ...]] = (
    ApiError,
    intake.IntakeRejected,
    FieldError,
    approvals.ApprovalError,
    exports.ExportError,
    break_glass.BreakGlassRefused,
    deliveries.AssignmentRefused,
    tickets.TicketError,
    policy_admin.PolicyVersionError,
    auth.AuthError,
    identities.NotAllowed,
    PermissionError,
    waybills.WaybillNotFound,
    IllegalTransition,
    waybills.ConcurrentUpdate,
    reveal.RevealFailed,
    audit.AuditError,
    TrackingSpaceExhausted,
    ValueError,
)
