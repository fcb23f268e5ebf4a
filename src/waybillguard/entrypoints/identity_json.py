"""The JSON shape of principals and units, one for the command line and the HTTP API
(operators script against both; the two must not drift apart)."""

from __future__ import annotations

from typing import Any

from waybillguard.domain.identity import Principal, Role
from waybillguard.services.identities import UnitSummary


def principal_json(p: Principal) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": p.username,
        "kind": p.kind.value,
        "role": p.role.value,
        "unit": p.unit,
        "unit_path": list(p.unit_path),
        "grade": p.grade,
        "state": p.state.value,
    }
    if p.role is Role.COURIER:
        data["device_bound"] = p.device_id is not None
    if p.merchant is not None:
        data["merchant"] = p.merchant
        data["fields"] = sorted(p.contract_fields)
    return data


def unit_summary_json(s: UnitSummary) -> dict[str, Any]:
    return {
        "code": s.unit.code,
        "kind": s.unit.kind.value,
        "name": s.unit.name,
        "parent": s.unit.parent,
        "franchise": s.unit.franchise,
        "disabled": s.unit.disabled,
        "covers": list(s.covers),
        "members": s.members,
    }
