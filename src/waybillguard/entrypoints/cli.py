"""Command-line entrypoint. Thin: parse options, call a service, format the result.

Exit codes: 0 success; 1 the thing asked about is invalid, missing or rejected
(e.g. `tracking verify` on a forged number, rows rejected by `import`);
2 usage or configuration error.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import Principal
from waybillguard.domain.lifecycle import IllegalTransition
from waybillguard.domain.parcel import CATEGORIES
from waybillguard.domain.tracking import TrackingSpaceExhausted
from waybillguard.entrypoints.access_cli import acting
from waybillguard.entrypoints.common import (
    HomeOpt,
    JsonOpt,
    emit_result,
    err,
    out,
)
from waybillguard.entrypoints.common import emit_json as _emit_json
from waybillguard.entrypoints.common import fail as _fail
from waybillguard.entrypoints.common import open_home as _open
from waybillguard.entrypoints.common import settings_for as _settings
from waybillguard.entrypoints.common import state as _state
from waybillguard.services import importer, keys, shredding, tracking, waybills
from waybillguard.services import lookup as lookup_service
from waybillguard.services.app import App, initialise
from waybillguard.services.auth import AuthContext
from waybillguard.services.readers import InputFormatError, count_rows_fast
from waybillguard.services.synth import write_synth
from waybillguard.vault import KeyringError

app = typer.Typer(
    help="waybillguard — 快递运单客户数据保险库 / customer-data vault for express waybills.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tracking_app = typer.Typer(help="运单号 / tracking numbers", no_args_is_help=True)
keys_app = typer.Typer(help="密钥 / keys", no_args_is_help=True)
bench_app = typer.Typer(help="性能基准 / benchmarks", no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")
app.add_typer(keys_app, name="keys")
app.add_typer(bench_app, name="bench")


def _principal(context: AuthContext | None) -> Principal | None:
    return context.principal if context is not None else None


@app.callback()
def _main(home: HomeOpt = None) -> None:
    _state["home"] = home


# -- setup -------------------------------------------------------------------------------
@app.command()
def init(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """初始化 / Create or complete a home (idempotent; never overwrites keys)."""
    try:
        report = initialise(_settings(home))
    except KeyringError as exc:
        _fail(str(exc), 2, as_json=json)
    data = {
        "home": str(report.home),
        "created_home": report.created_home,
        "created_keyring": report.created_keyring,
        "created_config": report.created_config,
        "schema_revision": report.schema_revision,
    }
    if json:
        _emit_json(data)
        return
    keyring = "created" if report.created_keyring else "kept (existing keys untouched)"
    out.print(
        f"home 主目录: {report.home}\nkeyring 密钥环: {keyring}\n"
        f"schema 数据库版本: {report.schema_revision}"
    )


@app.command()
def synth(
    count: Annotated[int, typer.Option("--count", min=1, max=50_000_000)],
    out_path: Annotated[Path, typer.Option("--out", help=".jsonl or .csv")],
    seed: Annotated[int, typer.Option("--seed")] = 1,
    headers: Annotated[str, typer.Option("--headers", help="CSV headers: en | zh")] = "en",
    encoding: Annotated[
        str, typer.Option("--encoding", help="CSV encoding, e.g. utf-8, gbk")
    ] = "utf-8",
) -> None:
    """合成数据 / Write deterministic synthetic waybills (JSONL or CSV by extension)."""
    if headers not in ("en", "zh"):
        _fail("--headers must be en or zh", 2)
    written = write_synth(out_path, count, seed, headers=headers, encoding=encoding)  # type: ignore[arg-type]
    err.print(f"wrote {written} synthetic waybills to {out_path}")


# -- import ------------------------------------------------------------------------------
@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    home: HomeOpt = None,
    json: JsonOpt = False,
    strict: Annotated[bool, typer.Option("--strict", help="All rows or nothing.")] = False,
    errors: Annotated[Path | None, typer.Option("--errors", help="Where rejected rows go.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, max=64)] = None,
    merchant: Annotated[
        str,
        typer.Option("--merchant", help="Merchant for rows without one (e.g. CSV without 商家)."),
    ] = importer.DEFAULT_MERCHANT,
) -> None:
    """导入 / Import waybills from JSONL or CSV (UTF-8, UTF-8-BOM, GBK/GB18030)."""
    with _open(home) as application:
        try:
            report = _run_import(application, file, strict, errors, workers, merchant)
        except importer.StrictImportFailed as exc:
            if json:
                _emit_json(exc.report.as_json())
            err.print(f"error: {exc}; reasons in {exc.report.errors_file}")
            raise typer.Exit(1) from None
        except (InputFormatError, TrackingSpaceExhausted) as exc:
            _fail(str(exc), 1, as_json=json)
    if json:
        _emit_json(report.as_json())
    else:
        out.print(
            f"imported 已导入 {report.imported}, rejected 拒绝 {report.rejected}, "
            f"duplicates 重复 {report.duplicates} (of {report.rows} rows)"
        )
        if report.errors_file:
            out.print(f"rejected rows and reasons: {report.errors_file}")
    if report.rejected:
        raise typer.Exit(1)


def _run_import(
    application: App,
    file: Path,
    strict: bool,
    errors: Path | None,
    workers: int | None,
    merchant: str,
) -> importer.ImportReport:
    with ExitStack() as stack:
        progress: importer.Progress | None = None
        if sys.stderr.isatty():
            columns = (
                TextColumn("导入 importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            bar = stack.enter_context(Progress(*columns, console=err, transient=True))
            task = bar.add_task("import", total=count_rows_fast(file))
            progress = lambda n: bar.advance(task, n)  # noqa: E731
        return importer.import_file(
            application,
            file,
            strict=strict,
            errors_path=errors,
            workers=workers,
            merchant=merchant,
            progress=progress,
        )


# -- masked views ------------------------------------------------------------------------
_LABELS = {"name": "姓名 name", "phone": "电话 phone", "address": "地址 address"}
_STATUS_ZH = {
    "created": "已下单",
    "picked_up": "已揽收",
    "in_transit": "运输中",
    "out_for_delivery": "派送中",
    "delivered": "已签收",
    "returned": "已退回",
    "cancelled": "已取消",
}


def _status(value: str) -> str:
    return f"{_STATUS_ZH.get(value, '')} {value}".strip()


@app.command()
def show(number: str, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """查看（脱敏）/ Show one waybill, masked."""
    with _open(home) as application:
        actor, context = acting(application, json)
        try:
            view = waybills.show(application, number, actor, _principal(context))
        except waybills.WaybillNotFound as exc:
            _fail(str(exc), 1, as_json=json)
    if json:
        _emit_json(view)
        return
    table = Table(title=f"运单 Waybill {view['tracking_number']}", show_header=False)
    table.add_row("状态 status", _status(view["status"]))
    for role, label in (("sender", "寄件人 sender"), ("recipient", "收件人 recipient")):
        for attr, attr_label in _LABELS.items():
            table.add_row(f"{label} · {attr_label}", view[role][attr])
    table.add_row("始发 origin", f"{view['origin_adcode']} {view['origin_station'] or '-'}")
    table.add_row(
        "目的 destination", f"{view['destination_adcode']} {view['destination_station'] or '-'}"
    )
    table.add_row("商家 merchant / 订单 order", f"{view['merchant']} / {view['order_ref']}")
    table.add_row("包裹 parcel", f"{view['parcel']['weight_g']} g, {view['parcel']['category']}")
    for event in view["events"]:
        table.add_row(
            "轨迹 event", f"{event['at']}  {_status(event['status'])}  ({event['actor']})"
        )
    out.print(table)


@app.command("list")
def list_(
    home: HomeOpt = None,
    json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=waybills.MAX_LIST)] = 20,
    after: Annotated[int, typer.Option("--after", min=0, help="Page after this row id.")] = 0,
) -> None:
    """列表（脱敏）/ List waybills, masked."""
    with _open(home) as application:
        actor, context = acting(application, json)
        rows = waybills.list_waybills(application, limit, after, actor, _principal(context))
    if json:
        _emit_json(rows)
        return
    table = Table(
        "运单号 tracking", "状态 status", "收件人 recipient", "电话 phone", "地址 address"
    )
    for r in rows:
        rec = r["recipient"]
        table.add_row(
            r["tracking_number"], _status(r["status"]), rec["name"], rec["phone"], rec["address"]
        )
    out.print(table)


@app.command()
def event(
    number: str,
    status: str,
    home: HomeOpt = None,
    json: JsonOpt = False,
    note: Annotated[str | None, typer.Option("--note", max=200)] = None,
) -> None:
    """记录轨迹 / Record a lifecycle event (refuses illegal transitions)."""
    with _open(home) as application:
        actor, context = acting(application, json)
        try:
            result = waybills.record_event(
                application, number, status, actor, note=note, principal=_principal(context)
            )
        except (waybills.WaybillNotFound, IllegalTransition, waybills.ConcurrentUpdate) as exc:
            _fail(str(exc), 1, as_json=json)
        except ValueError as exc:
            _fail(str(exc), 2, as_json=json)
    if json:
        _emit_json(result)
    else:
        out.print(
            f"{result['tracking_number']}: {_status(result['from'])} → {_status(result['status'])}"
        )


@app.command()
def lookup(
    home: HomeOpt = None,
    json: JsonOpt = False,
    with_name: Annotated[
        bool, typer.Option("--with-name", help="Second stdin line is the party's name.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=lookup_service.MAX_RESULTS)] = 20,
) -> None:
    """按电话查询（脱敏）/ Find waybills by phone (and name) via blind index; masked results.

    The phone (and name) are read from standard input, never from arguments, so they
    stay out of shell history and process listings.
    """
    lines = sys.stdin.read().splitlines()
    if not lines or (with_name and len(lines) < 2):
        _fail("expected the phone on the first stdin line (and the name on the second)", 2)
    with _open(home) as application:
        try:
            actor, context = acting(application, json)
            found = lookup_service.by_phone(
                application,
                lines[0],
                lines[1] if with_name else None,
                limit,
                actor,
                _principal(context),
            )
        except FieldError as exc:
            _fail(f"{exc.field}: {exc.reason}", 2, as_json=json)
    if json:
        _emit_json(found)
        return
    table = Table("运单号 tracking", "状态 status", "寄件人 sender", "收件人 recipient")
    for r in found:
        table.add_row(
            r["tracking_number"],
            r["status"],
            f"{r['sender']['name']} {r['sender']['phone']}",
            f"{r['recipient']['name']} {r['recipient']['phone']}",
        )
    out.print(table)


@app.command()
def categories() -> None:
    """物品类型 / Accepted item categories."""
    for name in sorted(set(CATEGORIES.values())):
        aliases = sorted(k for k, v in CATEGORIES.items() if v == name and k != name)
        out.print(f"{name}\t{', '.join(aliases)}")


# -- tracking numbers --------------------------------------------------------------------
@tracking_app.command("verify")
def tracking_verify(number: str, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Exit 0 when the number was issued by this network's key, 1 when not."""
    with _open(home) as application:
        result = tracking.verify(application, number)
    if json:
        _emit_json(result)
    else:
        out.print("valid 有效" if result["valid"] else f"INVALID 无效: {result['reason']}")
    raise typer.Exit(0 if result["valid"] else 1)


@tracking_app.command("status")
def tracking_status(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """How many numbers the configured prefix has issued and has left."""
    with _open(home) as application:
        result = tracking.capacity(application)
    if json:
        _emit_json(result)
    else:
        out.print(
            f"prefix {result['prefix']}: issued {result['issued']:,} of {result['capacity']:,} "
            f"({result['used_fraction']:.2%})"
        )


# -- keys and shredding ------------------------------------------------------------------
@keys_app.command("rotate")
def keys_rotate(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Re-wrap every data key under a new key-encryption key; retire the old one."""
    with _open(home) as application:
        report = keys.rotate(application)
    data = {"new_kek": report.new_kek, "retired": report.retired, "rewrapped": report.rewrapped}
    if json:
        _emit_json(data)
    else:
        out.print(
            f"active key 当前密钥: {report.new_kek}; re-wrapped {report.rewrapped}; "
            f"retired {', '.join(report.retired) or '-'}"
        )


@keys_app.command("status")
def keys_status(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Key-encryption keys and their state."""
    with _open(home) as application:
        states = application.store.kek_states()
        data = {"active": application.vault.active_kek_id, "keks": states}
    if json:
        _emit_json(data)
    else:
        for kek, state in sorted(states.items()):
            out.print(f"{kek}\t{state}")


@app.command()
def shred(
    numbers: Annotated[list[str], typer.Argument(help="Tracking numbers")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """销毁 / Destroy waybills' data keys: their personal data becomes unrecoverable."""
    with _open(home) as application:
        report = shredding.shred(application, numbers)
    data = {
        "shredded": report.shredded,
        "already_shredded": report.already_shredded,
        "not_found": report.not_found,
    }
    if json:
        _emit_json(data)
    else:
        out.print(
            f"shredded 已销毁 {len(report.shredded)}, already {len(report.already_shredded)}, "
            f"not found {len(report.not_found)}"
        )
    if report.not_found:
        raise typer.Exit(1)


# -- benchmarks --------------------------------------------------------------------------
@bench_app.command("ingest")
def bench_ingest(
    count: Annotated[int, typer.Option("--count", min=100)] = 200_000,
    json: JsonOpt = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, max=64)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """End-to-end ingest vs the raw limit (one AES-GCM + executemany) on the same rows."""
    from waybillguard.services import bench as bench_service  # only this command needs it

    emit_result(bench_service.ingest(count, seed=seed, workers=workers, log=err.print), json)


@app.command()
def demo(
    home: HomeOpt = None,
    bench_count: Annotated[int, typer.Option("--bench-count")] = 50_000,
    serve: Annotated[
        bool, typer.Option("--serve", help="演示网络并启动服务 / build the demo network and serve")
    ] = False,
    rows: Annotated[int, typer.Option("--rows", min=1, max=10_000_000)] = 5000,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """演示 / Set up the home, import synthetic data and print a short tour; with --serve,
    also build a demo network (every role) and start the server and console."""
    from waybillguard.services import demo as demo_service

    settings = _settings(home)
    demo_service.run(settings, out, bench_count=bench_count, rows=rows, network=serve)
    if serve:
        from waybillguard.entrypoints.http import serve as serve_http

        out.print(f"console 控制台: http://127.0.0.1:{port}/console/  (Ctrl-C stops)")
        serve_http("127.0.0.1", port, 1, settings.home)


def _register_audit_commands() -> None:
    from waybillguard.entrypoints.audit_cli import audit_app, bench_audit

    app.add_typer(audit_app, name="audit")
    bench_app.command("audit")(bench_audit)


_register_audit_commands()


def _register_access_commands() -> None:
    from waybillguard.entrypoints import access_cli, reveal_cli

    app.add_typer(access_cli.units_app, name="units")
    app.add_typer(access_cli.users_app, name="users")
    app.add_typer(access_cli.clients_app, name="clients")
    app.command("login")(access_cli.login)
    app.command("logout")(access_cli.logout)
    app.command("whoami")(access_cli.whoami)
    app.command("reveal")(reveal_cli.reveal_command)
    app.command("allowance")(reveal_cli.allowance_command)
    app.command("assign")(reveal_cli.assign_command)
    app.command("deliveries")(reveal_cli.deliveries_command)
    app.add_typer(reveal_cli.tickets_app, name="tickets")
    app.add_typer(reveal_cli.policy_app, name="policy")
    app.add_typer(reveal_cli.approvals_app, name="approvals")
    app.add_typer(reveal_cli.export_app, name="export")
    app.add_typer(reveal_cli.break_glass_app, name="break-glass")
    app.add_typer(reveal_cli.alerts_app, name="alerts")
    bench_app.command("authorize")(reveal_cli.bench_authorize)


def _register_delivery_commands() -> None:
    from waybillguard.entrypoints import telephony_cli

    app.add_typer(telephony_cli.numbers_app, name="numbers")
    app.add_typer(telephony_cli.courier_app, name="courier")
    app.add_typer(telephony_cli.telephony_app, name="telephony")
    bench_app.command("routes")(telephony_cli.bench_routes)
    from waybillguard.entrypoints import label_cli

    app.command("label")(label_cli.label_command)
    bench_app.command("labels")(label_cli.bench_labels_command)
    from waybillguard.entrypoints import http_cli

    app.command("serve")(http_cli.serve_command)
    bench_app.command("http")(http_cli.bench_http_command)


_register_access_commands()
_register_delivery_commands()


def main() -> None:
    """Run the CLI. An unexpected exception is reported by type only: library messages
    can quote data (a driver's error may echo a value), and personal data must never
    reach a terminal or a log by that route. WAYBILLGUARD_DEBUG=1 shows the traceback."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("WAYBILLGUARD_DEBUG") == "1":
            raise
        err.print(
            f"error: internal error ({type(exc).__name__}); rerun with WAYBILLGUARD_DEBUG=1 "
            "to see the traceback (it may contain data)"
        )
        raise SystemExit(70) from None


if __name__ == "__main__":
    main()
