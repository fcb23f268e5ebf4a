"""Commands of access control that act on customer data: reveal, assignments, tickets,
policy, approvals, exports, break-glass, alerts.

Exit codes: 0 allowed / done; 3 the request was refused (deny, step_up,
approval_required, locked — JSON says which and why); 1 the thing asked about is
invalid or missing; 2 usage or configuration error.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from waybillguard.domain.errors import FieldError
from waybillguard.entrypoints.access_cli import acting
from waybillguard.entrypoints.common import (
    HomeOpt,
    JsonOpt,
    emit_json,
    emit_result,
    err,
    fail,
    open_home,
    out,
)
from waybillguard.entrypoints.session_file import SessionFileError, load_token
from waybillguard.services import (
    alerts,
    approvals,
    auth,
    break_glass,
    deliveries,
    exports,
    identities,
    policy_admin,
    reveal,
    tickets,
)
from waybillguard.services.app import App
from waybillguard.services.caller import Caller, from_session, session_step_up

REFUSED = 3

policy_app = typer.Typer(help="访问策略 / access policy", no_args_is_help=True)
approvals_app = typer.Typer(help="审批 / approvals", no_args_is_help=True)
export_app = typer.Typer(
    help="批量导出（双人规则）/ bulk export (two-person rule)", no_args_is_help=True
)
break_glass_app = typer.Typer(help="紧急授权 / break-glass", no_args_is_help=True)
alerts_app = typer.Typer(help="安全告警 / security alerts", no_args_is_help=True)
tickets_app = typer.Typer(help="客服工单 / customer-service tickets", no_args_is_help=True)


def _client() -> str:
    return auth.client_label(f"cli@{socket.gethostname()}")


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    try:
        yield
    except FieldError as exc:
        fail(str(exc), 2, as_json=as_json)
    except (
        approvals.ApprovalError,
        exports.ExportError,
        break_glass.BreakGlassRefused,
        deliveries.AssignmentRefused,
        tickets.TicketError,
        policy_admin.PolicyVersionError,
        identities.NotAllowed,
        PermissionError,
    ) as exc:
        fail(str(exc), REFUSED, as_json=as_json)
    except auth.AuthError as exc:
        fail(exc.message, REFUSED, as_json=as_json)
    except reveal.RevealFailed as exc:
        fail(str(exc), 1, as_json=as_json)


def _caller(app: App, as_json: bool) -> Caller:
    """The logged-in caller; these commands never fall back to the local operator."""
    try:
        token = load_token(app.settings)
    except SessionFileError as exc:
        fail(str(exc), 2, as_json=as_json)
    if token is None:
        _refuse("auth.required", "请先登录 / log in first: waybillguard login --user U", as_json)
    try:
        return from_session(app, token, _client())
    except auth.AuthError as exc:
        _refuse(f"auth.{exc.code}", exc.message, as_json)


def _refuse(rule: str, message: str, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"decision": "deny", "rule": rule, "message": message})
    err.print(f"[red]拒绝 / denied[/red] ({rule}): {message}", markup=True, highlight=False)
    raise typer.Exit(REFUSED)


def _read_stdin_lines(limit: int = 4096) -> list[str]:
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        fail("stdin: too long", 2)
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        fail("stdin: not valid UTF-8", 2)


def _show_outcome(outcome: reveal.RevealOutcome, as_json: bool, single: bool) -> None:
    data = outcome.as_json(single=single)
    if as_json:
        emit_json(data)
    elif outcome.allowed:
        for entry in data.get("waybills") or [
            {"tracking_number": data.get("tracking_number"), "fields": data["fields"]}
        ]:
            out.print(f"[bold]{entry['tracking_number']}[/bold]")
            for name, value in entry["fields"].items():
                out.print(f"  {name}: {value}", markup=False)
    else:
        err.print(
            f"[yellow]{data['decision']}[/yellow] ({data['rule']}): {data['message']}",
            markup=True,
            highlight=False,
        )
        if "request_id" in data:
            err.print(f"审批单 / request id: {data['request_id']}")
    if not outcome.allowed:
        raise typer.Exit(REFUSED)


# -- reveal ---------------------------------------------------------------------------------
def reveal_command(
    number: Annotated[str | None, typer.Argument(help="运单号 / tracking number")] = None,
    fields: Annotated[
        str, typer.Option("--fields", help="e.g. recipient.phone,recipient.address")
    ] = "",
    purpose: Annotated[
        str, typer.Option("--purpose", help="delivery|ticket:ID|return|claim|legal:REF")
    ] = "",
    reason: Annotated[
        str, typer.Option("--reason", help="书面理由 / written reason (step-up)")
    ] = "",
    totp: Annotated[str | None, typer.Option("--totp", help="新的动态码 / fresh TOTP code")] = None,
    approval: Annotated[
        int | None, typer.Option("--approval", help="已批准的审批单 / approved request id")
    ] = None,
    phone_stdin: Annotated[
        bool,
        typer.Option(
            "--phone-stdin",
            help="按电话查找：电话（及可选姓名）从标准输入读取 / reveal by phone read from stdin",
        ),
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """查看明文 / Reveal personal fields of a waybill (authorised, charged, audited)."""
    if not fields or not purpose:
        fail("--fields and --purpose are required", 2, as_json=json)
    if (number is None) == (not phone_stdin):
        fail("give a tracking number or --phone-stdin (not both)", 2, as_json=json)
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        if phone_stdin:
            lines = _read_stdin_lines()
            phone = lines[0].strip() if lines else ""
            name = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
            outcome = reveal.reveal_by_phone(
                app,
                caller,
                phone,
                fields,
                purpose,
                name=name,
                reason=reason,
                totp=totp,
                step_up=session_step_up,
            )
            _show_outcome(outcome, json, single=False)
            return
        assert number is not None
        outcome = reveal.reveal(
            app,
            caller,
            number,
            fields,
            purpose,
            reason=reason,
            totp=totp,
            approval_id=approval,
            step_up=session_step_up,
        )
        _show_outcome(outcome, json, single=True)


def allowance_command(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """剩余额度 / What you may still reveal in each window."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        data = reveal.allowance(app, caller.principal)
        if json:
            emit_json(data)
            return
        for window, v in data.items():
            out.print(f"{window}: {v['used']} / {v['allowance']} (上限 ceiling {v['ceiling']})")


# -- assignments and tickets -------------------------------------------------------------
def assign_command(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    courier: Annotated[str, typer.Option("--courier", help="快递员用户名 / courier username")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """指派快递员 / Assign a courier to a waybill."""
    with open_home(home) as app, _errors(json):
        actor, context = acting(app, json)
        target = identities.get_principal(app, courier)
        if target is None:
            fail("courier: no such user", 1, as_json=json)
        done = deliveries.assign(app, actor, context.principal if context else None, number, target)
        if json:
            emit_json({"tracking_number": done, "courier": target.username})
        else:
            out.print(f"已指派 / assigned: {done} → {target.username}")


def deliveries_command(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """我的派件 / Waybills assigned to the logged-in courier."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        numbers = deliveries.assigned(app, caller.principal)
        if json:
            emit_json({"tracking_numbers": numbers})
        else:
            for n in numbers:
                out.print(n)


@tickets_app.command("open")
def tickets_open(
    ticket_id: Annotated[str, typer.Argument(help="工单号 / ticket id")],
    waybill: Annotated[str, typer.Option("--waybill")],
    party: Annotated[str, typer.Option("--party", help="sender | recipient")],
    contact_stdin: Annotated[
        bool,
        typer.Option(
            "--contact-stdin",
            help="The customer's phone on standard input: verifies the party (never an argument).",
        ),
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """开工单 / Open a ticket bound to one waybill and one party.

    With --contact-stdin, the phone the customer called from is checked against the
    party's phone (blind index): a match makes the ticket verified, which the default
    policy requires; a mismatch is refused and audited.
    """
    contact = _contact_phone(json) if contact_stdin else None
    with open_home(home) as app, _errors(json):
        actor, _ = acting(app, json)
        verified = tickets.open_ticket(app, actor, ticket_id, waybill, party, contact)
        if json:
            emit_json(
                {"ticket": ticket_id, "waybill": waybill, "party": party, "verified": verified}
            )
        else:
            state = "已核验 / verified" if verified else "未核验 / not verified"
            out.print(f"工单已开 / ticket opened: {ticket_id} ({state})")


def _contact_phone(as_json: bool) -> str:
    line = sys.stdin.readline(64)
    phone = line.strip()
    if not phone:
        fail("contact_phone: expected the customer's phone on standard input", 2, as_json=as_json)
    return phone


@tickets_app.command("close")
def tickets_close(
    ticket_id: Annotated[str, typer.Argument()], home: HomeOpt = None, json: JsonOpt = False
) -> None:
    """关工单 / Close a ticket: no further reveals under it."""
    with open_home(home) as app, _errors(json):
        actor, _ = acting(app, json)
        closed = tickets.close_ticket(app, actor, ticket_id)
        if json:
            emit_json({"ticket": ticket_id, "closed": closed})
        else:
            out.print("已关闭 / closed" if closed else "无此未关闭工单 / no such open ticket")


# -- policy ---------------------------------------------------------------------------------
def _read_file(path: Path, as_json: bool, limit: int = 1_000_000) -> str:
    try:
        with path.open("rb") as handle:
            blob = handle.read(limit + 1)  # never more than the limit, whatever the file is
    except OSError as exc:
        fail(f"{path.name}: cannot read ({type(exc).__name__})", 2, as_json=as_json)
    if len(blob) > limit:
        fail(f"{path.name}: larger than {limit / 1e6:g} MB", 2, as_json=as_json)
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{path.name}: not UTF-8 text", 2, as_json=as_json)


def _admin_or_operator(app: App, as_json: bool) -> Any:
    actor, context = acting(app, as_json)
    if context is not None and context.principal.role.value not in ("admin", "security"):
        fail("不允许 / not allowed: administrators or security only", REFUSED, as_json=as_json)
    return actor


@policy_app.command("check")
def policy_check(path: Annotated[Path, typer.Argument()], json: JsonOpt = False) -> None:
    """校验策略文件 / Validate a policy file without applying it."""
    text = _read_file(path, json)
    try:
        policy = policy_admin.check(text)
    except FieldError as exc:
        fail(f"{path.name}: {exc}", 1, as_json=json)
    data = {"valid": True, "version": policy.version, "sha256": policy.sha256}
    if json:
        emit_json(data)
    else:
        out.print(f"有效 / valid: version {policy.version} sha256 {policy.sha256[:16]}")


@policy_app.command("apply")
def policy_apply(
    path: Annotated[Path, typer.Argument()], home: HomeOpt = None, json: JsonOpt = False
) -> None:
    """生效策略 / Validate and put a policy in force as a new version (audited)."""
    text = _read_file(path, json)
    with open_home(home) as app, _errors(json):
        actor = _admin_or_operator(app, json)
        try:
            policy = policy_admin.apply(app, actor, text)
        except FieldError as exc:
            fail(f"{path.name}: {exc}", 1, as_json=json)
        data = {"applied": True, "version": policy.version, "sha256": policy.sha256}
        if json:
            emit_json(data)
        else:
            out.print(f"已生效 / in force: version {policy.version}")


@policy_app.command("show")
def policy_show(home: HomeOpt = None) -> None:
    """当前策略原文 / Print the policy text in force."""
    with open_home(home) as app:
        _version, text = policy_admin.text_in_force(app)
        sys.stdout.write(text)


@policy_app.command("history")
def policy_history(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """策略版本历史 / Every version applied, by whom, when."""
    with open_home(home) as app:
        rows = policy_admin.history(app)
        if json:
            emit_json(rows)
            return
        for r in rows:
            out.print(
                f"v{r['version']}  {r['applied_at']}  {r['applied_by']}  {str(r['sha256'])[:16]}"
            )


@policy_app.command("explain")
def policy_explain(
    user: Annotated[str, typer.Option("--user")],
    waybill: Annotated[str, typer.Option("--waybill")],
    fields: Annotated[str, typer.Option("--fields")],
    action: Annotated[str, typer.Option("--action")] = "reveal",
    purpose: Annotated[str | None, typer.Option("--purpose")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """解释决策（不计额度）/ Explain a decision without charging anything."""
    if action != "reveal":
        fail("--action: only reveal is explained", 2, as_json=json)
    with open_home(home) as app, _errors(json):
        _actor, context = acting(app, json)
        if context is not None and context.principal.username != user:
            _admin_or_operator(app, json)
        principal = identities.get_principal(app, user)
        if principal is None:
            fail("user: no such user", 1, as_json=json)
        data = reveal.explain(app, principal, waybill, fields, purpose)
        if json:
            emit_json(data)
            return
        out.print(f"决定 / decision: [bold]{data['decision']}[/bold]")
        out.print(f"规则 / rule: {data['rule']}")
        out.print(f"说明 / message: {data['message']}")
        out.print(
            f"额度 / usage: {data['usage']}  "
            f"(grade {data['grade']}, policy v{data['policy_version']})"
        )


# -- approvals ------------------------------------------------------------------------------
@approvals_app.command("list")
def approvals_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """待审批 / Pending and approved-but-unused requests."""
    with open_home(home) as app, _errors(json):
        _caller(app, json)
        rows = approvals.pending(app)
        if json:
            emit_json(rows)
            return
        for r in rows:
            out.print(
                f"#{r['request_id']} {r['kind']} {r['tracking_number'] or ''} "
                f"{','.join(r['fields'])} needs {'+'.join(r['needs'])} "
                f"approved {'+'.join(r['approved_by']) or '-'} [{r['state']}]"
            )


@approvals_app.command("show")
def approvals_show(request_id: int, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """审批单详情（含理由）/ One request, with its reason."""
    with open_home(home) as app, _errors(json):
        _caller(app, json)
        emit_json(approvals.show(app, request_id))


def _vote(request_id: int, decision: str, home: Path | None, as_json: bool) -> None:
    with open_home(home) as app, _errors(as_json):
        caller = _caller(app, as_json)
        result = approvals.vote(app, caller, request_id, decision, identities.get_principal_by_id)
        if as_json:
            emit_json(result.as_json())
        else:
            out.print(f"#{request_id}: {result.capacity} {result.decision} → {result.state}")


@approvals_app.command("approve")
def approvals_approve(request_id: int, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """批准 / Approve in the next capacity the request needs (manager, then security)."""
    _vote(request_id, "approve", home, json)


@approvals_app.command("deny")
def approvals_deny(request_id: int, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """驳回 / Deny a request."""
    _vote(request_id, "deny", home, json)


# -- exports --------------------------------------------------------------------------------
@export_app.command("request")
def export_request(
    fields: Annotated[str, typer.Option("--fields")],
    purpose: Annotated[str, typer.Option("--purpose")],
    reason: Annotated[str, typer.Option("--reason")],
    station: Annotated[str | None, typer.Option("--station")] = None,
    merchant: Annotated[str | None, typer.Option("--merchant")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit")] = exports.MAX_EXPORT_ROWS,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """申请导出 / Request a bulk export (a second person must approve)."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        flt = exports.ExportFilter(station=station, merchant=merchant, status=status, limit=limit)
        export_id = exports.request_export(app, caller, fields, flt, purpose, reason)
        if json:
            emit_json({"export_id": export_id, "state": "requested"})
        else:
            out.print(f"导出申请 / export requested: #{export_id}")


def _decide_export(
    export_id: int, approve: bool, hours: int, home: Path | None, as_json: bool
) -> None:
    with open_home(home) as app, _errors(as_json):
        caller = _caller(app, as_json)
        data = exports.decide_export(app, caller, export_id, approve, hours)
        if as_json:
            emit_json(data)
        else:
            out.print(f"#{export_id}: {data['state']}")


@export_app.command("approve")
def export_approve(
    export_id: int,
    hours: Annotated[int, typer.Option("--hours")] = exports.DEFAULT_VALID_HOURS,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """批准导出（不能是申请人）/ Approve an export (never your own)."""
    _decide_export(export_id, True, hours, home, json)


@export_app.command("deny")
def export_deny(export_id: int, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """驳回导出 / Deny an export."""
    _decide_export(export_id, False, 1, home, json)


@export_app.command("list")
def export_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """导出列表 / Requested and approved exports."""
    with open_home(home) as app, _errors(json):
        _caller(app, json)
        rows = exports.list_exports(app)
        if json:
            emit_json(rows)
            return
        for r in rows:
            out.print(f"#{r['export_id']} {r['state']} {','.join(r['fields'])} {r['purpose']}")


@export_app.command("download")
def export_download(
    export_id: int,
    out_path: Annotated[Path, typer.Option("--out")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """下载导出（仅申请人，审计）/ Download an approved export (requester only, audited)."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        data = exports.download(app, caller, export_id, out_path)
        if json:
            emit_json(data)
        else:
            out.print(f"已写入 / written: {data['rows']} rows → {out_path}")


@export_app.command("trace")
def export_trace(
    path: Annotated[Path, typer.Argument()], home: HomeOpt = None, json: JsonOpt = False
) -> None:
    """溯源泄露文件 / Which export a leaked file came from."""
    with open_home(home) as app, _errors(json):
        _admin_or_operator(app, json)
        try:
            found = exports.trace(app, path)
        except exports.ExportError as exc:  # the file, not a refusal
            fail(f"{path.name}: {exc}", 2, as_json=json)
        if json:
            emit_json(found)
        elif not found:
            out.print("未发现导出标记 / no export canary found")
        else:
            for r in found:
                out.print(
                    f"导出 / export #{r['export_id']} requester {r['requester_id']} "
                    f"approver {r['approver_id']} created {r['created_at']}"
                )
        if not found:
            raise typer.Exit(1)


# -- break-glass and alerts -----------------------------------------------------------------
@break_glass_app.command("open")
def break_glass_open(
    reason: Annotated[str, typer.Option("--reason")],
    minutes: Annotated[int, typer.Option("--minutes")] = 60,
    totp: Annotated[str | None, typer.Option("--totp")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """开启紧急授权（告警、限时）/ Open break-glass (alerts security, expires)."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        grant = break_glass.open_grant(
            app, caller, reason, minutes, totp=totp, step_up=session_step_up
        )
        if json:
            emit_json(grant.as_json())
        else:
            out.print(f"紧急授权至 / break-glass until {grant.expires_at.isoformat()}")


@break_glass_app.command("close")
def break_glass_close(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """结束紧急授权 / End your break-glass grants now."""
    with open_home(home) as app, _errors(json):
        caller = _caller(app, json)
        closed = break_glass.close_grants(app, caller)
        if json:
            emit_json({"closed": closed})
        else:
            out.print(f"已结束 / closed: {closed}")


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="含已确认 / include acknowledged")] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """安全告警 / Security alerts."""
    with open_home(home) as app, _errors(json):
        _admin_or_operator(app, json)
        rows = alerts.list_alerts(app, open_only=not all_)
        if json:
            emit_json(rows)
            return
        for r in rows:
            out.print(
                f"#{r['id']} {r['at']} [{r['severity']}] {r['kind']}: {r['message']}", markup=False
            )


@alerts_app.command("ack")
def alerts_ack(alert_id: int, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """确认告警 / Acknowledge an alert."""
    with open_home(home) as app, _errors(json):
        actor = _admin_or_operator(app, json)
        done = alerts.acknowledge(app, actor, alert_id)
        if json:
            emit_json({"id": alert_id, "acknowledged": done})
        else:
            out.print("已确认 / acknowledged" if done else "无此未确认告警 / no such open alert")


def bench_authorize(
    principals: Annotated[int, typer.Option("--principals")] = 10_000,
    waybills: Annotated[int, typer.Option("--waybills")] = 1_000_000,
    reveals: Annotated[int, typer.Option("--reveals")] = 20_000,
    history: Annotated[
        int, typer.Option("--history", min=0, help="past reveals charged to each principal")
    ] = 300,
    json: JsonOpt = False,
) -> None:
    """授权性能 / Full reveal path vs pycasbin's bare decision, in the same run."""
    from waybillguard.services import authorize_bench

    result = authorize_bench.run(
        principals=principals, waybills=waybills, reveals=reveals, history=history, log=err.print
    )
    emit_result(result, json)
