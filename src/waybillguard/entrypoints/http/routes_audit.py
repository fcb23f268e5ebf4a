"""Audit queries and proofs. Security and administrators see everything; a station
manager sees what the people of their own unit (and beneath it) did."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from waybillguard.domain.identity import Role
from waybillguard.entrypoints.http.common import (
    API_PREFIX,
    ERROR_RESPONSES,
    AfterQuery,
    LimitQuery,
    page_of,
)
from waybillguard.entrypoints.http.deps import AppDep, CallerDep, require
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.entrypoints.http.schemas import Page
from waybillguard.services import audit, identities

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"], responses=ERROR_RESPONSES)

AUDITORS = (Role.SECURITY, Role.ADMIN)
Time = Annotated[
    str | None, Query(max_length=40, description="RFC 3339, e.g. 2026-01-01T00:00:00Z")
]


def _window(limit: int, after: int) -> int:
    return min(after + limit + 1, audit.MAX_QUERY)


@router.get("/waybills/{number}", response_model=Page, summary="谁访问过此运单 / who accessed it")
def by_waybill(
    number: Annotated[str, Path(min_length=1, max_length=32)],
    app: AppDep,
    caller: CallerDep,
    limit: int = LimitQuery,
    after: int = AfterQuery,
) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return page_of(audit.by_waybill(app, number, _window(limit, after)), limit, after)


@router.get("/actors/{name}", response_model=Page, summary="某人做了什么 / what someone did")
def by_actor(
    name: Annotated[str, Path(min_length=1, max_length=64)],
    app: AppDep,
    caller: CallerDep,
    since: Annotated[Time, Query(alias="from")] = None,
    until: Annotated[Time, Query(alias="to")] = None,
    limit: int = LimitQuery,
    after: int = AfterQuery,
) -> dict[str, Any]:
    me = caller.principal
    if me.role is Role.STATION_MANAGER:
        subject = identities.get_principal(app, name)
        if subject is None or not subject.within(me.unit):
            raise ApiError(403, "not_allowed", "只能查看本单位人员 / your own unit's people only")
    else:
        require(caller, *AUDITORS)
    events = audit.by_actor(app, name, since, until, _window(limit, after))
    return page_of(events, limit, after)


@router.get("/top-revealers", summary="查看明文最多的单位与角色 / top revealers")
def top_revealers(
    app: AppDep,
    caller: CallerDep,
    since: Annotated[Time, Query(alias="from")] = None,
    until: Annotated[Time, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return {"items": audit.top_revealers(app, since, until, limit), "next": None}


@router.get("/events/{event_id}/proof", summary="包含证明 / inclusion proof of one event")
def proof(
    event_id: Annotated[int, Path(ge=1, le=2**62)], app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return audit.prove(app, audit.resolve_event(app, event_id))


@router.get("/checkpoint", summary="最新签名检查点 / the latest signed checkpoint")
def latest_checkpoint(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *AUDITORS)
    latest = audit.status(app)["latest_checkpoint"]
    if latest is None:
        raise ApiError(404, "audit.no_checkpoint", "尚无检查点 / no checkpoint yet")
    return dict(latest)


@router.post("/checkpoint", summary="封存并签发检查点 / seal and sign a new checkpoint")
def new_checkpoint(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return audit.checkpoint(app)


@router.get("/status", summary="日志状态 / log status")
def status(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return audit.status(app)


@router.post("/verify", summary="校验整个日志 / verify the whole log")
def verify(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *AUDITORS)
    return audit.verify(app, workers=1).as_json()
