"""Administration: units, staff users, partner clients, policy, alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from waybillguard.domain.identity import Principal, Role
from waybillguard.entrypoints.http.common import (
    API_PREFIX,
    ERROR_RESPONSES,
    MAX_ID,
    AfterQuery,
    LimitQuery,
    page_of,
)
from waybillguard.entrypoints.http.deps import AppDep, CallerDep, require
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.entrypoints.http.schemas import (
    ClientIn,
    DeviceIn,
    ExplainIn,
    GradeIn,
    Page,
    PasswordIn,
    PolicyTextIn,
    ReasonIn,
    UnitIn,
    UserIn,
)
from waybillguard.entrypoints.identity_json import principal_json, unit_summary_json
from waybillguard.services import alerts, identities, policy_admin, reveal
from waybillguard.services.caller import Caller

router = APIRouter(prefix=API_PREFIX, tags=["administration"], responses=ERROR_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=64, description="用户名 / username")]
Code = Annotated[str, Path(min_length=1, max_length=32, description="单位代码 / unit code")]
REVIEWERS = (Role.ADMIN, Role.SECURITY)


def _admin(caller: Caller) -> Principal:
    require(caller, Role.ADMIN)
    return caller.principal


def _in_scope(admin: Principal, p: Principal) -> bool:
    return p.within(admin.unit)


# -- units ---------------------------------------------------------------------------------
@router.get("/units", response_model=Page, summary="单位列表 / units")
def list_units(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    _admin(caller)
    rows = [unit_summary_json(s) for s in identities.list_units(app)]
    return page_of(rows, limit, after)


@router.post("/units", status_code=201, summary="新增单位 / add a unit")
def add_unit(body: UnitIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    unit = identities.add_unit(
        app,
        caller.actor,
        body.code,
        body.kind,
        body.name,
        parent=body.parent,
        covers=body.covers,
        franchise=body.franchise,
    )
    return {
        "code": unit.code,
        "kind": unit.kind.value,
        "name": unit.name,
        "parent": unit.parent,
        "franchise": unit.franchise,
    }


@router.post("/units/{code}/disable", summary="停用单位 / disable a unit")
def disable_unit(code: Code, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    unit = identities.disable_unit(app, caller.actor, code)
    return {"code": unit.code, "disabled": True}


# -- users ---------------------------------------------------------------------------------
@router.get("/users", response_model=Page, summary="员工列表（本管辖范围）/ staff users")
def list_users(
    app: AppDep,
    caller: CallerDep,
    unit: Annotated[str | None, Query(max_length=32)] = None,
    role: Annotated[str | None, Query(max_length=32)] = None,
    limit: int = LimitQuery,
    after: int = AfterQuery,
) -> dict[str, Any]:
    admin = _admin(caller)
    found = identities.list_users(app, unit=unit, role=role)
    rows = [principal_json(p) for p in found if _in_scope(admin, p)]
    return page_of(rows, limit, after)


@router.get("/users/{username}", summary="员工 / one user")
def get_user(username: Name, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    admin = _admin(caller)
    p = identities.get_principal(app, username)
    if p is None or not _in_scope(admin, p):
        raise ApiError(404, "user.not_found", "无此用户 / no such user")
    return principal_json(p)


@router.post("/users", status_code=201, summary="新增员工（动态口令密钥仅此一次）/ add a user")
def add_user(body: UserIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    principal, secret = identities.add_user(
        app,
        caller.actor,
        body.username,
        body.role,
        body.unit,
        password=body.password,
        grade=body.grade,
        device_id=body.device,
    )
    return {"username": principal.username, "totp_secret": secret}


@router.post("/users/{username}/disable", summary="停用员工 / disable a user")
def disable_user(username: Name, body: ReasonIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    return principal_json(identities.disable_user(app, caller.actor, username, reason=body.reason))


@router.post("/users/{username}/enable", summary="启用员工 / enable a user")
def enable_user(username: Name, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    return principal_json(identities.enable_user(app, caller.actor, username))


@router.post("/users/{username}/grade", summary="调整等级 / set the grade")
def set_grade(username: Name, body: GradeIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    return principal_json(identities.set_grade(app, caller.actor, username, body.grade))


@router.post("/users/{username}/password", summary="重置密码 / reset the password")
def reset_password(
    username: Name, body: PasswordIn, app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    _admin(caller)
    secret = identities.reset_password(
        app, caller.actor, username, body.password, reset_totp=body.reset_totp
    )
    return {"username": username, "totp_secret": secret}


@router.post("/users/{username}/device", summary="登记设备 / bind a courier's device")
def bind_device(username: Name, body: DeviceIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    return principal_json(identities.bind_device(app, caller.actor, username, body.device))


# -- partner clients -------------------------------------------------------------------------
@router.get("/clients", response_model=Page, summary="合作方 / partner clients")
def list_clients(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    admin = _admin(caller)
    rows = [principal_json(p) for p in identities.list_clients(app) if _in_scope(admin, p)]
    return page_of(rows, limit, after)


@router.post("/clients", status_code=201, summary="新增合作方（密钥仅此一次）/ add a client")
def add_client(body: ClientIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    _admin(caller)
    principal, secret = identities.add_client(
        app, caller.actor, body.name, body.unit, body.merchant, body.fields, grade=body.grade
    )
    return {"client_id": principal.username, "client_secret": secret}


@router.post("/clients/{client_id}/disable", summary="停用合作方 / disable a client")
def disable_client(
    client_id: Name, body: ReasonIn, app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    _admin(caller)
    return principal_json(
        identities.disable_client(app, caller.actor, client_id, reason=body.reason)
    )


# -- policy ----------------------------------------------------------------------------------
@router.get("/policy", summary="当前策略原文 / the policy text in force")
def policy_text(app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    version, text = policy_admin.text_in_force(app)
    return {"version": version, "text": text}


@router.get("/policy/history", response_model=Page, summary="策略历史 / versions applied")
def policy_history(
    app: AppDep, caller: CallerDep, limit: int = LimitQuery, after: int = AfterQuery
) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    return page_of(policy_admin.history(app), limit, after)


@router.post("/policy/check", summary="校验策略 / validate a policy text")
def policy_check(body: PolicyTextIn, caller: CallerDep) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    policy = policy_admin.check(body.text)
    return {"valid": True, "version": policy.version, "sha256": policy.sha256}


@router.post("/policy/apply", summary="生效策略（审计）/ put a policy in force")
def policy_apply(body: PolicyTextIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    policy = policy_admin.apply(app, caller.actor, body.text)
    return {"applied": True, "version": policy.version, "sha256": policy.sha256}


@router.post("/policy/explain", summary="解释决策（不计额度）/ explain without charging")
def policy_explain(body: ExplainIn, app: AppDep, caller: CallerDep) -> dict[str, Any]:
    me = caller.principal
    if body.user is not None and body.user != me.username:
        require(caller, *REVIEWERS)
        principal = identities.get_principal(app, body.user)
        if principal is None:
            raise ApiError(404, "user.not_found", "无此用户 / no such user")
    else:
        principal = me
    return reveal.explain(app, principal, body.waybill, body.fields, body.purpose)


# -- alerts ----------------------------------------------------------------------------------
@router.get("/alerts", response_model=Page, summary="安全告警 / security alerts")
def list_alerts(
    app: AppDep,
    caller: CallerDep,
    all: Annotated[bool, Query(description="含已确认 / include acknowledged")] = False,
    limit: int = LimitQuery,
    after: int = AfterQuery,
) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    rows = alerts.list_alerts(app, open_only=not all, limit=limit + 1, after_id=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next": rows[-1]["id"] if more and rows else None}


@router.post("/alerts/{alert_id}/ack", summary="确认告警 / acknowledge an alert")
def ack_alert(
    alert_id: Annotated[int, Path(ge=1, le=MAX_ID)], app: AppDep, caller: CallerDep
) -> dict[str, Any]:
    require(caller, *REVIEWERS)
    return {"id": alert_id, "acknowledged": alerts.acknowledge(app, caller.actor, alert_id)}
