"""Courier assignments: which courier delivers which waybill.

A courier may only be assigned a waybill destined to their own station (when the
network routes that district to a station at all). Assigning is done by the
destination station's staff, an administrator, or the local operator; audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from waybillguard.domain.identity import Principal, Role
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services import policy_admin
from waybillguard.services.activity import Actor, emit_in
from waybillguard.services.app import App

MAX_LIST = 500


class AssignmentRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def assign(
    app: App, actor: Actor, assigner: Principal | None, number: str, courier: Principal
) -> str:
    """Assign `courier` to waybill `number`; `assigner` None means the local operator."""
    parsed = parse_tracking_number(number)
    if courier.role is not Role.COURIER or not courier.active:
        raise AssignmentRefused(
            "assign.not_courier", "该用户不是在岗快递员 / not an active courier"
        )
    store = policy_admin.access_store(app)
    with store.write() as conn:
        facts = store.waybill_facts(conn, str(parsed)) if parsed else None
        if facts is None:
            raise AssignmentRefused("waybill.not_found", "无此运单 / no such waybill")
        if facts.destination_station and courier.unit != facts.destination_station:
            raise AssignmentRefused(
                "assign.other_station",
                "快递员不属于目的网点 / the courier belongs to another station",
            )
        if assigner is not None and not _may_assign(assigner, facts.destination_station):
            raise AssignmentRefused(
                "assign.not_allowed",
                "只有目的网点人员或管理员可指派 / only the destination station's staff assign",
            )
        store.assign(conn, facts.tracking_number, courier.id, actor.name, datetime.now(UTC))
        emit_in(
            app,
            conn,
            actor,
            "assign",
            waybills=[facts.tracking_number],
            detail={"courier": courier.username, "routed": int(bool(facts.destination_station))},
        )
    return facts.tracking_number


def _may_assign(assigner: Principal, destination: str | None) -> bool:
    if assigner.role is Role.ADMIN:
        return True
    station_staff = assigner.role in (Role.STATION_CLERK, Role.STATION_MANAGER)
    return station_staff and destination is not None and assigner.unit == destination


def assigned(app: App, courier: Principal, limit: int = MAX_LIST) -> list[str]:
    store = policy_admin.access_store(app)
    with store.read() as conn:
        return store.assigned_to(conn, courier.id, limit)
