"""Approvals, bulk exports (two-person rule) and break-glass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from waybillguard.domain.identity import Principal, Role
from waybillguard.entrypoints.http.common import (
    API_PREFIX,
    ERROR_RESPONSES,
    MAX_ID,
    AfterQuery,
    LimitQuery,
)
from waybillguard.entrypoints.http.deps import SESSION_CACHE, AppDep, CallerDep, token_of
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.entrypoints.http.schemas import (
    BreakGlassIn,
    ExportDecisionIn,
    ExportIn,
    Page,
)
from waybillguard.services import approvals, break_glass, exports, identities
from waybillguard.services.app import App
from waybillguard.services.caller import session_step_up

router = APIRouter(prefix=API_PREFIX, tags=["approvals and exports"], responses=ERROR_RESPONSES)

Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _may_see_request(app: App, me: Principal, requester_id: int) -> bool:
    """Reviewers see the requests they could vote on; everyone sees their own."""
    if requester_id == me.id or me.role is Role.SECURITY:
        return True
    if me.role is Role.STATION_MANAGER:
        requester = identities.get_principal_by_id(app, requester_id)
        return requester is not None and requester.within(me.unit)
    return False


# -- approvals -------------------------------------------------------------------------------
@router.get("/approvals", response_model=Page, summary="审批单 / approval requests you may see")
def list_approvals(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    rows = approvals.pending(app, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    me = caller.principal
    visible = [r for r in rows if _may_see_request(app, me, int(r["requester_id"]))]
    return {"items": visible, "next": rows[-1]["request_id"] if more and rows else None}


@router.get("/approvals/{request_id}", summary="审批单详情 / one request, with its reason")
def show_approval(request_id: Id, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    data = approvals.show(app, request_id)
    if not _may_see_request(app, caller.principal, int(data["requester_id"])):
        raise ApiError(404, "approval.unknown", "无此申请 / no such request")
    return data


@router.post("/approvals/{request_id}/approve", summary="批准 / approve (manager, then security)")
def approve(request_id: Id, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    result = approvals.vote(app, caller, request_id, "approve", identities.get_principal_by_id)
    return result.as_json()


@router.post("/approvals/{request_id}/deny", summary="驳回 / deny")
def deny(request_id: Id, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    result = approvals.vote(app, caller, request_id, "deny", identities.get_principal_by_id)
    return result.as_json()


# -- exports -------------------------------------------------------------------------------
@router.post("/exports", status_code=201, summary="申请导出 / request a bulk export")
def request_export(body: ExportIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    flt = exports.ExportFilter(
        station=body.station, merchant=body.merchant, status=body.status, limit=body.limit
    )
    export_id = exports.request_export(
        app, caller, ",".join(body.fields), flt, body.purpose, body.reason
    )
    return {"export_id": export_id, "state": "requested"}


@router.get("/exports", response_model=Page, summary="导出列表 / exports you may see")
def list_exports(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    me = caller.principal
    everyone = me.role in (Role.SECURITY, Role.ADMIN)
    rows = [
        r
        for r in exports.list_exports(app)
        if int(r["export_id"]) > after and (everyone or r["requester_id"] == me.id)
    ]
    rows.sort(key=lambda r: int(r["export_id"]))
    page = rows[:limit]
    return {"items": page, "next": page[-1]["export_id"] if len(rows) > limit else None}


@router.post("/exports/{export_id}/approve", summary="批准导出（非申请人）/ approve an export")
def approve_export(
    export_id: Id, body: ExportDecisionIn, app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    return exports.decide_export(app, caller, export_id, True, body.hours)


@router.post("/exports/{export_id}/deny", summary="驳回导出 / deny an export")
def deny_export(export_id: Id, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return exports.decide_export(app, caller, export_id, False, 1)


@router.get(
    "/exports/{export_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV，逐行生成 / streamed CSV"}},
    summary="下载导出（仅申请人，审计并计额）/ download (requester only, audited)",
)
def download_export(export_id: Id, app: AppDep, caller: CallerDep) -> StreamingResponse:
    stream = exports.stream_download(app, caller, export_id)

    def body() -> Iterator[bytes]:
        for line in stream.lines:
            yield line.encode("utf-8")

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="export-{export_id}.csv"',
            "X-Audit-Event": str(stream.audit_event),
            "X-Export-Rows": str(stream.rows),
        },
    )


# -- break-glass ---------------------------------------------------------------------------
@router.post("/break-glass", status_code=201, summary="开启紧急授权 / open break-glass")
def open_break_glass(body: BreakGlassIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    if body.totp:
        SESSION_CACHE.evict(token_of(caller))
    grant = break_glass.open_grant(
        app, caller, body.reason, body.minutes, totp=body.totp, step_up=session_step_up
    )
    return grant.as_json()


@router.post("/break-glass/close", summary="结束紧急授权 / end your break-glass grants")
def close_break_glass(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return {"closed": break_glass.close_grants(app, caller)}
