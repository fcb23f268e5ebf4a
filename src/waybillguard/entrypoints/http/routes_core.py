"""Sessions, waybills (create, masked views, events), reveal, lookup by phone,
assignments, deliveries, tickets and the caller's allowance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from waybillguard.domain.identity import Role
from waybillguard.entrypoints.http.common import (
    API_PREFIX,
    ERROR_RESPONSES,
    AfterQuery,
    JsonResponse,
    LimitQuery,
    page_of,
)
from waybillguard.entrypoints.http.deps import (
    SESSION_CACHE,
    AppDep,
    CallerDep,
    client_label,
    require,
    token_of,
)
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.entrypoints.http.observability import count_reveal
from waybillguard.entrypoints.http.schemas import (
    AssignIn,
    BatchIn,
    BatchOut,
    CreatedOut,
    EventIn,
    LoginIn,
    LookupIn,
    LookupRevealIn,
    Page,
    RevealIn,
    RevealOut,
    SessionOut,
    StepUpIn,
    TicketIn,
    TokenIn,
    WaybillIn,
)
from waybillguard.entrypoints.identity_json import principal_json
from waybillguard.services import (
    auth,
    browse,
    deliveries,
    identities,
    intake,
    lookup,
    reveal,
    tickets,
    waybills,
)
from waybillguard.services.caller import Caller, session_step_up

Number = Annotated[str, Path(min_length=1, max_length=32, description="运单号 / tracking number")]

# Who may create waybills: data entry, station staff, administrators and partners (their
# own merchant's orders only).
CREATORS = (Role.DATA_ENTRY, Role.STATION_CLERK, Role.STATION_MANAGER, Role.ADMIN, Role.PARTNER)
# Who records lifecycle events (each only within their view scope).
EVENT_RECORDERS = (Role.COURIER, Role.STATION_CLERK, Role.STATION_MANAGER, Role.ADMIN)

auth_router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"], responses=ERROR_RESPONSES)
router = APIRouter(prefix=API_PREFIX, tags=["waybills"], responses=ERROR_RESPONSES)


def _session(session: auth.Session) -> dict[str, Any]:
    p = session.principal
    return {
        "token": session.token,
        "expires_at": session.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "username": p.username,
        "role": p.role.value,
        "unit": p.unit,
        "scopes": sorted(session.scopes),
    }


# -- auth ----------------------------------------------------------------------------------
@auth_router.post("/login", response_model=SessionOut, summary="员工登录 / staff login")
def login(body: LoginIn, request: Request, app: AppDep) -> dict[str, Any]:
    session = auth.login(
        app, body.username, body.password, body.totp, body.device, client_label(request)
    )
    request.state.role = session.principal.role.value
    return _session(session)


@auth_router.post("/token", response_model=SessionOut, summary="合作方令牌 / partner token")
def client_token(body: TokenIn, request: Request, app: AppDep) -> dict[str, Any]:
    session = auth.client_login(app, body.client_id, body.client_secret, client_label(request))
    request.state.role = session.principal.role.value
    return _session(session)


@auth_router.post("/logout", summary="退出登录 / end this session")
def logout(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    SESSION_CACHE.evict(token_of(caller))
    return {"logged_out": auth.logout(app, token_of(caller))}


@auth_router.get("/whoami", summary="当前身份 / who this token is")
def whoami(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    context = auth.authenticate(app, token_of(caller))
    return {
        **principal_json(context.principal),
        "session": context.session_id_hash_hex_prefix,
        "expires_at": context.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mfa_at": context.mfa_at.strftime("%Y-%m-%dT%H:%M:%SZ") if context.mfa_at else None,
        "scopes": sorted(context.scopes),
    }


@auth_router.post("/step-up", summary="二次验证 / prove a fresh TOTP code for this session")
def step_up(body: StepUpIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    SESSION_CACHE.evict(token_of(caller))  # the session's mfa_at changes
    proven = session_step_up(app, caller, body.totp)
    if proven is None:
        raise ApiError(401, "bad_totp", "动态口令错误或已使用 / the TOTP code is wrong or used")
    return {"mfa_at": proven.strftime("%Y-%m-%dT%H:%M:%SZ")}


# -- waybills -------------------------------------------------------------------------------
def _create(app: AppDep, caller: Caller, rows: list[WaybillIn]) -> list[dict[str, Any]]:
    require(caller, *CREATORS)
    merchant = caller.principal.merchant if caller.principal.role is Role.PARTNER else None
    if caller.principal.role is Role.PARTNER and merchant is None:
        raise ApiError(403, "not_allowed", "合作方未绑定商户 / the partner has no merchant")
    created = intake.create(
        app, caller.actor, [r.model_dump(exclude_none=True) for r in rows], merchant=merchant
    )
    return [c.as_json() for c in created]


@router.post(
    "/waybills", status_code=201, response_model=CreatedOut, summary="新建运单 / create one"
)
def create_waybill(body: WaybillIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return _create(app, caller, [body])[0]


@router.post(
    "/waybills/batch",
    status_code=201,
    response_model=BatchOut,
    summary="批量新建（全部成功或全部不存）/ create many, all or nothing",
)
def create_batch(body: BatchIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return {"created": _create(app, caller, body.waybills)}


@router.get("/waybills", response_model=Page, summary="运单列表（脱敏、按范围）/ masked list")
def list_waybills(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    items, cursor = browse.page(app, caller.actor, caller.principal, limit, after)
    return {"items": items, "next": cursor}


@router.get("/waybills/{number}", summary="查看运单（脱敏）/ one waybill, masked")
def show_waybill(number: Number, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return waybills.show(app, number, caller.actor, caller.principal)


@router.post("/waybills/{number}/events", summary="记录轨迹 / record a lifecycle event")
def record_event(number: Number, body: EventIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *EVENT_RECORDERS)
    return waybills.record_event(
        app, number, body.status, caller.actor, note=body.note, principal=caller.principal
    )


@router.post(
    "/waybills/{number}/reveal",
    response_model=RevealOut,
    response_model_exclude_none=True,
    responses={403: {"model": RevealOut, "description": "拒绝、需二次验证、需审批或已锁定"}},
    summary="查看明文（授权、计额、审计）/ reveal fields",
)
def reveal_waybill(number: Number, body: RevealIn, app: AppDep, caller: CallerDep) -> JsonResponse:
    if body.totp:
        SESSION_CACHE.evict(token_of(caller))  # a step-up changes the session's mfa_at
    outcome = reveal.reveal(
        app,
        caller,
        number,
        body.fields,
        body.purpose,
        reason=body.reason,
        totp=body.totp,
        approval_id=body.approval_id,
        step_up=session_step_up,
    )
    count_reveal(outcome.decision.effect.value)
    return JsonResponse(outcome.as_json(single=True), status_code=200 if outcome.allowed else 403)


@router.post(
    "/waybills/{number}/assign", summary="指派快递员 / assign a courier (destination station)"
)
def assign(number: Number, body: AssignIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    target = identities.get_principal(app, body.courier)
    if target is None:
        raise ApiError(404, "user.not_found", "无此快递员 / no such courier")
    done = deliveries.assign(app, caller.actor, caller.principal, number, target)
    return {"tracking_number": done, "courier": target.username}


# -- lookup by phone (PII only in bodies) ----------------------------------------------------
@router.post("/lookup", response_model=Page, summary="按电话查询（脱敏）/ find by phone, masked")
def lookup_by_phone(body: LookupIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    found = lookup.by_phone(
        app, body.phone, body.name, body.limit, caller.actor, principal=caller.principal
    )
    return {"items": found, "next": None}


@router.post(
    "/lookup/reveal",
    response_model=RevealOut,
    response_model_exclude_none=True,
    responses={403: {"model": RevealOut, "description": "拒绝、需二次验证或已锁定"}},
    summary="按电话查看明文 / reveal by phone",
)
def reveal_by_phone(body: LookupRevealIn, app: AppDep, caller: CallerDep) -> JsonResponse:
    if body.totp:
        SESSION_CACHE.evict(token_of(caller))
    outcome = reveal.reveal_by_phone(
        app,
        caller,
        body.phone,
        body.fields,
        body.purpose,
        name=body.name,
        reason=body.reason,
        totp=body.totp,
        step_up=session_step_up,
    )
    count_reveal(outcome.decision.effect.value)
    return JsonResponse(outcome.as_json(single=False), status_code=200 if outcome.allowed else 403)


# -- couriers, tickets, allowance ------------------------------------------------------------
@router.get("/deliveries", response_model=Page, summary="我的派件 / my assigned waybills")
def my_deliveries(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    require(caller, Role.COURIER)
    numbers = deliveries.assigned(app, caller.principal, min(after + limit + 1, 100_000))
    return page_of(numbers, limit, after)


@router.post("/tickets", status_code=201, summary="开工单 / open a ticket")
def open_ticket(body: TicketIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, Role.CS_AGENT)
    verified = tickets.open_ticket(
        app, caller.actor, body.ticket_id, body.waybill, body.party, body.contact_phone
    )
    return {
        "ticket": body.ticket_id,
        "waybill": body.waybill,
        "party": body.party,
        "verified": verified,
    }


@router.post("/tickets/{ticket_id}/close", summary="关工单 / close a ticket")
def close_ticket(
    ticket_id: Annotated[str, Path(min_length=1, max_length=48)], app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    require(caller, Role.CS_AGENT)
    return {"ticket": ticket_id, "closed": tickets.close_ticket(app, caller.actor, ticket_id)}


@router.get("/allowance", summary="剩余额度 / what you may still reveal per window")
def my_allowance(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    return reveal.allowance(app, caller.principal)
