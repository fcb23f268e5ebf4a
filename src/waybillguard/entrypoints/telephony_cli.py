"""`waybillguard numbers …`, `courier …`, `telephony …` and `bench routes`.

Registered on the main app in cli.py::

    from waybillguard.entrypoints import telephony_cli
    app.add_typer(telephony_cli.numbers_app, name="numbers")
    app.add_typer(telephony_cli.courier_app, name="courier")
    app.add_typer(telephony_cli.telephony_app, name="telephony")
    bench_app.command("routes")(telephony_cli.bench_routes)

(`python -m waybillguard.entrypoints.telephony_cli …` runs the same commands alone.)

Who acts: the session in `<home>/session` (or `WAYBILLGUARD_TOKEN`), else the local
operator. Pool management and courier phones: administrators or the local operator;
bind / renew / release: station staff, data-entry clerks, administrators, the local
operator; `numbers route` (a routing check that shows masks only): the local operator;
`courier …`: the assigned courier's device-bound session.

Exit codes: 0 done / allowed; 1 no such waybill, binding or courier (or the pool is
exhausted); 2 invalid input or configuration; 3 refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

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
from waybillguard.entrypoints.common import settings_for as _settings
from waybillguard.entrypoints.common import state as _state
from waybillguard.services import courier_flow, virtual_numbers
from waybillguard.services.activity import Actor
from waybillguard.services.app import App
from waybillguard.services.caller import Caller

REFUSED = 3
PROVIDER_TOKEN_ENV = "WAYBILLGUARD_PROVIDER_TOKEN"  # noqa: S105 - a variable name
_MAX_STDIN = 4096

numbers_app = typer.Typer(
    help="隐私号 / virtual numbers (AXN with extension)", no_args_is_help=True
)
pool_app = typer.Typer(help="号码池 / the pool of virtual numbers", no_args_is_help=True)
numbers_app.add_typer(pool_app, name="pool")
courier_app = typer.Typer(help="快递员派送 / the courier's delivery flow", no_args_is_help=True)
telephony_app = typer.Typer(
    help="话务接入 / telephony provider: simulator, routing endpoint, tokens",
    no_args_is_help=True,
)


# -- plumbing ------------------------------------------------------------------------------
@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    try:
        yield
    except FieldError as exc:
        fail(str(exc), 2, as_json=as_json)
    except courier_flow.CourierRefused as exc:
        _refuse(exc.code, exc.message, as_json)
    except PermissionError as exc:
        fail(f"不允许 / not allowed: {exc}", REFUSED, as_json=as_json)
    except virtual_numbers.NumbersError as exc:
        code = 1 if exc.code.endswith(("not_found", "no_binding", "exhausted")) else REFUSED
        fail(exc.message, code, as_json=as_json)
    except virtual_numbers.RouteFailed as exc:
        fail(str(exc), 1, as_json=as_json)


def _refuse(rule: str, message: str, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"decision": "deny", "rule": rule, "message": message})
    err.print(f"[red]拒绝 / denied[/red] ({rule}): {message}", markup=True, highlight=False)
    raise typer.Exit(REFUSED)


def _actor(app: App, as_json: bool) -> Actor:
    return acting(app, as_json)[0]


def _courier(app: App, as_json: bool) -> Caller:
    """The logged-in courier, with the device their session was opened on."""
    _, context = acting(app, as_json)
    if context is None:
        _refuse("auth.required", "请先登录 / log in first: waybillguard login --user U", as_json)
    return Caller(context.principal, client=context.device_id or "", mfa_at=context.mfa_at)


def _stdin_line(field: str, as_json: bool) -> str:
    raw = sys.stdin.buffer.read(_MAX_STDIN + 1)
    if len(raw) > _MAX_STDIN:
        fail(f"{field}: standard input is too long", 2, as_json=as_json)
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        fail(f"{field}: standard input is not valid UTF-8", 2, as_json=as_json)
    return lines[0].strip() if lines else ""


def _binding_out(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    out.print(
        f"{data['tracking_number']}  {data['line']}  {data['state']}  "
        f"到期 expires {data['expires_at']}",
        markup=False,
    )


# -- numbers pool --------------------------------------------------------------------------
@pool_app.command("add")
def pool_add(
    numbers: Annotated[list[str], typer.Argument(help="虚拟号码 X / virtual numbers (11 digits)")],
    extensions: Annotated[
        int, typer.Option("--extensions", min=1, max=9000, help="每个号码的分机数 / per number")
    ] = 1000,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """添加号码 / Add virtual numbers to the pool, each with N extensions (1000, 1001, …)."""
    with open_home(home) as app, _errors(json):
        result = virtual_numbers.add_numbers(app, _actor(app, json), numbers, extensions)
    if json:
        emit_json(result)
        return
    pool = result["pool"]
    out.print(
        f"已添加 added {result['added']}, 已存在 skipped {result['skipped']}; "
        f"可用 free {pool['free']} / {pool['total']} ({pool['level']})"
    )


@pool_app.command("status")
def pool_status(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """号码池余量 / How full the pool is (raises the low-pool alert on a crossing)."""
    with open_home(home) as app, _errors(json):
        status = virtual_numbers.pool_status(app)
        data = {**status.as_json(), "settings": _settings_json(virtual_numbers.settings(app))}
    if json:
        emit_json(data)
        return
    level_zh = {"ok": "正常", "low": "不足", "exhausted": "已用尽"}[status.level.value]
    out.print(
        f"号码 numbers {status.numbers}, 分机 slots {status.total}: "
        f"已绑定 bound {status.bound}, 冷却中 cooling {status.cooling}, 可用 free {status.free} "
        f"(阈值 threshold {status.threshold}) — {level_zh} / {status.level.value}"
    )


@pool_app.command("list")
def pool_list(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """号码列表 / The virtual numbers and their use."""
    with open_home(home) as app, _errors(json):
        rows = virtual_numbers.list_numbers(app)
    if json:
        emit_json(rows)
        return
    table = Table("虚拟号码 number", "分机 ext", "绑定 bound", "冷却 cooling", "可用 free")
    for r in rows:
        table.add_row(
            r["virtual_number"],
            str(r["extensions"]),
            str(r["bound"]),
            str(r["cooling"]),
            str(r["free"]),
        )
    out.print(table)


def _settings_json(s: Any) -> dict[str, int]:
    return {
        "cooldown_days": s.cooldown.days,
        "grace_days": s.grace.days,
        "undelivered_days": s.undelivered_ttl.days,
        "low_percent": s.low_percent,
        "low_free": s.low_free,
    }


@pool_app.command("config")
def pool_config(
    cooldown_days: Annotated[
        int | None, typer.Option("--cooldown-days", help="分机冷却期 / cool-down (30)")
    ] = None,
    grace_days: Annotated[
        int | None, typer.Option("--grace-days", help="签收后保留天数 / after delivery (15)")
    ] = None,
    undelivered_days: Annotated[
        int | None, typer.Option("--undelivered-days", help="未签收的绑定期 / before (30)")
    ] = None,
    low_percent: Annotated[
        int | None, typer.Option("--low-percent", help="余量告警百分比 / low below % (10)")
    ] = None,
    low_free: Annotated[
        int | None, typer.Option("--low-free", help="余量告警条数 / low below N free (100)")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """号码池设置 / Show or change cool-down, grace and the low-pool thresholds."""
    with open_home(home) as app, _errors(json):
        result = virtual_numbers.configure(
            app,
            _actor(app, json),
            cooldown_days=cooldown_days,
            grace_days=grace_days,
            undelivered_days=undelivered_days,
            low_percent=low_percent,
            low_free=low_free,
        )
    emit_result(_settings_json(result), json)


# -- bindings ------------------------------------------------------------------------------
@numbers_app.command("bind")
def bind(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """绑定隐私号 / The waybill's virtual line (allocated if it has none; idempotent)."""
    with open_home(home) as app, _errors(json):
        binding = virtual_numbers.allocate(app, number, actor=_actor(app, json))
    _binding_out(binding.as_json(), json)


@numbers_app.command("show")
def show(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """查看绑定 / The waybill's live binding, if any."""
    with open_home(home) as app, _errors(json):
        binding = virtual_numbers.binding_for(app, number)
    if binding is None:
        fail("此运单无有效隐私号 / no live binding", 1, as_json=json)
    _binding_out(binding.as_json(), json)


@numbers_app.command("renew")
def renew(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    days: Annotated[
        int | None,
        typer.Option("--days", min=0, max=3650, help="至少再保留 / keep at least N days"),
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """续期 / Extend the waybill's binding (default: by the grace period)."""
    with open_home(home) as app, _errors(json):
        binding = virtual_numbers.renew(app, number, days=days, actor=_actor(app, json))
    _binding_out(binding.as_json(), json)


@numbers_app.command("release")
def release(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """解绑 / End the waybill's binding now (the line cools down before reuse)."""
    with open_home(home) as app, _errors(json):
        binding = virtual_numbers.release(app, number, actor=_actor(app, json))
    _binding_out(binding.as_json(), json)


@numbers_app.command("expire")
def expire(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """过期清理 / Expire every binding whose time is up (run it from cron)."""
    with open_home(home) as app, _errors(json):
        count = virtual_numbers.expire_due(app, actor=_actor(app, json))
    emit_result({"expired": count}, json)


@numbers_app.command("route")
def route(
    virtual: Annotated[str, typer.Option("--virtual", help="虚拟号码 X / virtual number")],
    ext: Annotated[str, typer.Option("--ext", help="分机 / extension")],
    caller_stdin: Annotated[
        bool, typer.Option("--caller-stdin", help="主叫号码从标准输入读取 / caller number on stdin")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """路由检查 / Where a call would go (audited like a call; the target only masked)."""
    if not caller_stdin:
        fail("--caller-stdin is required (the caller's number is read from stdin)", 2, as_json=json)
    caller = _stdin_line("caller", json)
    with open_home(home) as app, _errors(json):
        actor, context = acting(app, json)
        if context is not None:
            _refuse(
                "route.operator_only",
                "路由检查仅限本机运维 / only the local operator checks routing",
                json,
            )
        result = virtual_numbers.route_call(
            app, virtual, ext, caller or None, actor=actor, decrypt=False
        )
    data = result.as_json()
    if json:
        emit_json(data)
    elif result.allowed:
        out.print(
            f"接通 connect → {data['target']} {data['target_masked'] or ''} ({data['rule']})",
            markup=False,
        )
    else:
        err.print(f"拒绝 / refused ({data['rule']}): {data['message']}", markup=False)
    if not result.allowed:
        raise typer.Exit(REFUSED)


@numbers_app.command("courier-phone")
def courier_phone(
    username: Annotated[str, typer.Argument(help="快递员用户名 / courier's username")],
    phone_stdin: Annotated[
        bool, typer.Option("--phone-stdin", help="手机号从标准输入读取 / phone number on stdin")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """登记快递员电话 / Register the phone a courier calls recipients from (sealed)."""
    if not phone_stdin:
        fail("--phone-stdin is required (never put a phone number on the command line)", 2)
    phone = _stdin_line("phone", json)
    with open_home(home) as app, _errors(json):
        result = virtual_numbers.register_courier_phone(app, _actor(app, json), username, phone)
    if json:
        emit_json(result)
        return
    out.print(f"已登记 registered {result['username']}: {result['phone_masked']}", markup=False)


# -- courier flow --------------------------------------------------------------------------
@courier_app.command("resolve")
def resolve(
    token: Annotated[str, typer.Argument(help="面单二维码内容 / the label's QR payload")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """扫码 / Resolve a label's QR token: address, call line, masked name (a reveal)."""
    with open_home(home) as app, _errors(json):
        caller = _courier(app, json)
        result = courier_flow.resolve(app, caller, token)
    data = result.as_json()
    if json:
        emit_json(data)
    elif result.allowed:
        out.print(f"运单 waybill: {data['tracking_number']}", markup=False)
        out.print(f"收件人 recipient: {data['recipient_name']}", markup=False)
        out.print(f"地址 address: {data['address']}", markup=False)
        out.print(f"电话 call: {data['call']['line'] or '—'}", markup=False)
    else:
        err.print(f"拒绝 / denied ({data['rule']}): {data['message']}", markup=False)
    if not result.allowed:
        raise typer.Exit(REFUSED)


@courier_app.command("deliver")
def deliver(
    number: Annotated[str, typer.Argument(help="运单号 / tracking number")],
    proof: Annotated[str, typer.Option("--proof", help="签收凭证编号 / signature or photo ref")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """签收 / Mark delivered with a proof reference (the line expires after the grace)."""
    with open_home(home) as app, _errors(json):
        caller = _courier(app, json)
        result = courier_flow.deliver(app, caller, number, proof)
    if json:
        emit_json(result)
        return
    out.print(
        f"已签收 delivered {result['tracking_number']}; 隐私号到期 line expires "
        f"{result['binding_expires_at'] or '—'}",
        markup=False,
    )


# -- telephony -----------------------------------------------------------------------------
@telephony_app.command("simulator")
def simulator(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free port")],
    route_url: Annotated[
        str,
        typer.Option(
            "--route-url", help="路由回调地址 / e.g. http://127.0.0.1:8080/api/v1/telephony/route"
        ),
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    token_stdin: Annotated[
        bool,
        typer.Option("--token-stdin", help=f"令牌从标准输入读取（否则 ${PROVIDER_TOKEN_ENV}）"),
    ] = False,
) -> None:
    """模拟话务平台 / Run the simulated carrier (documented HTTP callback)."""
    token = _stdin_line("token", False) if token_stdin else os.environ.get(PROVIDER_TOKEN_ENV, "")
    if not token:
        fail(f"a provider token is required (--token-stdin or ${PROVIDER_TOKEN_ENV})", 2)
    if not route_url.startswith(("http://", "https://")):
        fail("--route-url: an http(s) URL", 2)
    virtual_numbers.run_simulator(host, port, route_url, token)


@telephony_app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    home: HomeOpt = None,
) -> None:
    """路由服务 / Serve the routing callback and courier endpoints on their own."""
    import uvicorn

    from waybillguard.entrypoints.telephony_http import create_app

    with open_home(home):
        pass  # refuse an uninitialised home before binding the port
    api = create_app(_settings(home))
    err.print(f"routing endpoint: http://{host}:{port}/api/v1/telephony/route", highlight=False)
    uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)


@telephony_app.command("token")
def token(
    label: Annotated[str, typer.Option("--label", help="令牌名称 / label")] = "carrier",
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """回调令牌 / Issue a bearer token for the carrier's routing callback (shown once)."""
    with open_home(home) as app, _errors(json):
        value = virtual_numbers.create_provider_token(app, _actor(app, json), label)
    if json:
        emit_json({"label": label, "token": value})
        return
    out.print(value, markup=False)


# -- benchmark -----------------------------------------------------------------------------
def bench_routes(
    count: Annotated[int, typer.Option("--count", min=1000, max=100_000_000)] = 1_000_000,
    service_calls: Annotated[int, typer.Option("--service-calls", min=0, max=1_000_000)] = 2000,
    json: JsonOpt = False,
) -> None:
    """路由基准 / Routing decisions per second (pure) and the full service path."""
    emit_result(
        virtual_numbers.bench_routes(count, log=err.print, service_calls=service_calls), json
    )


# -- standalone ----------------------------------------------------------------------------
cli = typer.Typer(help="waybillguard virtual numbers and courier flow", no_args_is_help=True)
cli.add_typer(numbers_app, name="numbers")
cli.add_typer(courier_app, name="courier")
cli.add_typer(telephony_app, name="telephony")
_bench = typer.Typer(no_args_is_help=True)
_bench.command("routes")(bench_routes)
cli.add_typer(_bench, name="bench")


@cli.callback()
def _main(home: HomeOpt = None) -> None:
    _state["home"] = home


if __name__ == "__main__":
    cli()
