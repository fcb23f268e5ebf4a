"""Approvals: reveals beyond a grade's step-up band, and unlocking an account that ran
into a ceiling.

Votes come in order — the requester's manager first, then security — and nobody
votes on their own request. A reveal request approved by the capacities it needs can
be used once, by its requester, for exactly the waybill, fields and purpose it names,
before it expires. An unlock always needs two different people (a manager and
security): the two-person rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from waybillguard.adapters.db.access_store import ApprovalRow
from waybillguard.domain.errors import valid_id
from waybillguard.domain.identity import Principal, PrincipalState, Role
from waybillguard.services import policy_admin
from waybillguard.services.activity import emit_in
from waybillguard.services.app import App
from waybillguard.services.caller import Caller

MAX_LIST = 500


class ApprovalError(ValueError):
    """A vote that may not be cast (own request, wrong capacity, wrong order…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class VoteResult:
    request_id: int
    capacity: str
    decision: str
    state: str  # the request's state after the vote

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "capacity": self.capacity,
            "decision": self.decision,
            "state": self.state,
        }


PrincipalLookup = Any  # Callable[[App, int], Principal | None]


def _capacity_for(row: ApprovalRow, approver: Principal, requester: Principal) -> str:
    """Which capacity the approver votes in, or raise why they may not vote."""
    if approver.id == row.requester_id:
        raise ApprovalError(
            "approval.self", "不能审批自己的申请 / you cannot approve your own request"
        )
    if any(voter == approver.id for voter, _, _ in row.votes):
        raise ApprovalError("approval.twice", "你已投过票 / you already voted on this request")
    missing = [n for n in row.needs if n not in row.approved_by]
    if not missing:
        raise ApprovalError("approval.complete", "该申请已获批 / the request is already approved")
    wanted = missing[0]  # in order: manager before security
    if wanted == "manager":
        if approver.role is not Role.STATION_MANAGER or not requester.within(approver.unit):
            raise ApprovalError(
                "approval.not_manager",
                "需由申请人所在单位的负责人先审批 / the requester's manager must approve first",
            )
    elif wanted == "security" and approver.role is not Role.SECURITY:
        raise ApprovalError(
            "approval.not_security", "需由安全审计员审批 / a security auditor must approve next"
        )
    return wanted


def vote(
    app: App,
    caller: Caller,
    request_id: int,
    decision: str,
    principal_by_id: PrincipalLookup,
    now: datetime | None = None,
) -> VoteResult:
    """Approve or deny a pending request in the next capacity it needs."""
    if decision not in ("approve", "deny"):
        raise ApprovalError("approval.decision", "decision must be approve or deny")
    if not valid_id(request_id):
        raise ApprovalError("approval.unknown", "无此申请 / no such request")
    now = now or datetime.now(UTC)
    store = policy_admin.access_store(app)
    approver = caller.principal
    if not approver.active:
        raise ApprovalError("account.inactive", "账户不可用 / your account is not active")
    with store.write() as conn:
        row = store.approval(conn, request_id, lock=True)
        if row is None:
            raise ApprovalError("approval.unknown", "无此申请 / no such request")
        if row.state != "pending":
            raise ApprovalError(
                "approval.closed", f"申请状态为 {row.state} / request is {row.state}"
            )
        if row.expires_at <= now:
            store.set_approval_state(conn, request_id, "expired", now)
            raise ApprovalError("approval.expired", "申请已过期 / the request expired")
        requester = principal_by_id(app, row.requester_id)
        if requester is None:
            raise ApprovalError("approval.unknown", "申请人不存在 / requester no longer exists")
        capacity = _capacity_for(row, approver, requester)
        store.add_vote(conn, request_id, approver.id, capacity, decision, now)
        state = "pending"
        if decision == "deny":
            state = "denied"
        elif all(n in row.approved_by | {capacity} for n in row.needs):
            state = "approved"
        if state != "pending":
            store.set_approval_state(conn, request_id, state, now)
        if state == "approved" and row.kind == "unlock":
            store.set_principal_state(
                conn, row.requester_id, PrincipalState.ACTIVE.value, None, now
            )
        emit_in(
            app,
            conn,
            caller.actor,
            "approval.vote" if row.kind == "reveal" else f"{row.kind}.review",
            waybills=[row.tracking_number] if row.tracking_number else [],
            fields=sorted(row.fields),
            decision="allow" if decision == "approve" else "deny",
            rule=f"approval.{capacity}",
            detail={"request": request_id, "state": state, "requester": requester.username},
        )
    return VoteResult(request_id, capacity, decision, state)


def pending(app: App, limit: int = MAX_LIST, after_id: int = 0) -> list[dict[str, Any]]:
    store = policy_admin.access_store(app)
    with store.read() as conn:
        rows = store.approvals(conn, ("pending", "approved"), limit, after_id)
    return [approval_json(r) for r in rows]


def approval_json(row: ApprovalRow) -> dict[str, Any]:
    return {
        "request_id": row.id,
        "kind": row.kind,
        "requester_id": row.requester_id,
        "tracking_number": row.tracking_number,
        "fields": sorted(row.fields),
        "purpose": row.purpose,
        "records": row.records,
        "needs": list(row.needs),
        "approved_by": sorted(row.approved_by),
        "state": row.state,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
    }


def show(app: App, request_id: int) -> dict[str, Any]:
    """One request including its reason (visible to reviewers, never in the audit log)."""
    store = policy_admin.access_store(app)
    with store.read() as conn:
        row = store.approval(conn, request_id) if valid_id(request_id) else None
    if row is None:
        raise ApprovalError("approval.unknown", "无此申请 / no such request")
    return {**approval_json(row), "reason": row.reason}
