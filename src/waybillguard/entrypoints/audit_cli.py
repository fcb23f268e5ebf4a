"""`waybillguard audit …` and `waybillguard bench audit`: the tamper-evident audit log.

Exit codes follow cli.py: 0 success; 1 the log is tampered with / the thing asked
about is missing or inconsistent; 2 usage or configuration error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from waybillguard.domain.errors import FieldError
from waybillguard.entrypoints.common import HomeOpt, JsonOpt, emit_result, err, out
from waybillguard.entrypoints.common import emit_json as _emit_json
from waybillguard.entrypoints.common import fail as _fail
from waybillguard.entrypoints.common import open_home as _open
from waybillguard.services import audit, audit_bench, subject_report

audit_app = typer.Typer(
    help="审计日志 / tamper-evident audit log (RFC 6962 Merkle tree, signed checkpoints)",
    no_args_is_help=True,
)


@audit_app.command("verify")
def verify(
    home: HomeOpt = None,
    json: JsonOpt = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint file exported earlier (e.g. kept by a regulator).",
            dir_okay=False,
        ),
    ] = None,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also check the query lookup tables against the log.")
    ] = False,
) -> None:
    """校验 / Recompute the whole log; exit 0 intact, 1 tampered (names the first bad position)."""
    with _open(home) as application:
        try:
            report = audit.verify(application, checkpoint, deep=deep)
        except audit.AuditError as exc:
            _fail(str(exc), 2, as_json=json)
        pending = audit.status(application)["pending"]
    if json:
        _emit_json({**report.as_json(), "pending": pending})
    elif report.ok:
        out.print(
            f"OK 完整: {report.tree_size:,} events, {report.checkpoints_checked} checkpoints "
            f"verified in {report.seconds:.2f} s"
        )
        if pending:
            out.print(
                f"{pending:,} recorded event(s) not yet sealed into the tree 待封存; "
                "`waybillguard audit seal` adds them"
            )
    else:
        out.print(
            f"TAMPERED 已篡改: first bad position 首个异常位置 {report.first_bad_seq} "
            f"({report.problem}): {report.detail}"
        )
        for other in report.other_problems:
            out.print(f"  also: {other['kind']} at {other['position']}: {other['detail']}")
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("seal")
def seal(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """封存 / Sequence pending events into the Merkle tree now."""
    with _open(home) as application:
        sealed = audit.seal(application)
        state = audit.status(application)
    data = {"sealed": sealed, "tree_size": state["tree_size"], "root_hash": state["root_hash"]}
    if json:
        _emit_json(data)
    else:
        out.print(f"sealed 已封存 {sealed}; tree size {state['tree_size']:,}")


@audit_app.command("status")
def status(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Tree size, root, pending events and the newest checkpoint."""
    with _open(home) as application:
        data = audit.status(application)
    if json:
        _emit_json(data)
        return
    out.print(f"origin {data['origin']}\ntree size {data['tree_size']:,}\nroot {data['root_hash']}")
    out.print(f"pending 待封存 {data['pending']:,}")
    latest = data["latest_checkpoint"]
    if latest:
        out.print(f"latest checkpoint: size {latest['tree_size']:,} at {latest['timestamp']}")


@audit_app.command("checkpoint")
def checkpoint(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint (JSON).")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """检查点 / Seal, sign and export a checkpoint to hand to a third party."""
    with _open(home) as application:
        data = audit.export_checkpoint(application, out_path)
    if json:
        _emit_json(data)
    else:
        out.print(
            f"checkpoint 检查点: size {data['tree_size']:,} root {data['root_hash']} "
            f"({data['timestamp']}, key {data['key_id']}) → {out_path}"
        )


@audit_app.command("prove")
def prove(
    event_id: Annotated[int, typer.Argument(help="Log position (seq), or event id with --id.")],
    home: HomeOpt = None,
    json: JsonOpt = False,
    by_id: Annotated[
        bool, typer.Option("--id", help="EVENT_ID is the id `record` returned, not a position.")
    ] = False,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Also write the proof (JSON) to this file.")
    ] = None,
) -> None:
    """证明 / Inclusion proof of one event against a signed checkpoint (verifiable offline)."""
    with _open(home) as application:
        try:
            seq = audit.resolve_event(application, event_id) if by_id else event_id
            proof = audit.prove(application, seq)
        except audit.AuditError as exc:
            _fail(str(exc), 1, as_json=json)
    if out_path is not None:
        out_path.write_bytes(orjson.dumps(proof, option=orjson.OPT_INDENT_2) + b"\n")
    if json:
        _emit_json(proof)
        return
    out.print(f"event {proof['event_id']} at position {proof['index']} of {proof['tree_size']:,}")
    out.print(f"leaf hash  {proof['leaf_hash']}")
    for n, step in enumerate(proof["proof"]):
        out.print(f"path[{n:2d}]   {step}")
    out.print(f"root       {proof['root_hash']}")
    cp = proof["checkpoint"]
    out.print(f"signed by  {cp['key_id']} ({cp['public_key']}) at {cp['timestamp']}")
    out.print("verify offline: docs/audit.md#verifying-an-inclusion-proof-offline")


@audit_app.command("consistency")
def consistency(
    checkpoint_file: Annotated[
        Path, typer.Option("--checkpoint", help="An earlier checkpoint file.", dir_okay=False)
    ],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """一致性 / Prove the log today extends an earlier checkpoint; exit 0 yes, 1 no."""
    with _open(home) as application:
        try:
            result = audit.consistency_with(application, checkpoint_file)
        except audit.AuditError as exc:
            _fail(str(exc), 2, as_json=json)
    if json:
        _emit_json(result)
    elif result["consistent"]:
        out.print(
            f"consistent 一致: size {result['old_size']:,} → {result['new_size']:,} "
            f"({len(result['proof'])} proof hashes)"
        )
    else:
        out.print(
            f"INCONSISTENT 不一致: size {result['old_size']:,} → {result['new_size']:,}"
            + (f": {result['problem']}" if result.get("problem") else "")
        )
    raise typer.Exit(0 if result["consistent"] else 1)


def _event_row(event: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(event["seq"]) if event["seq"] is not None else f"(id {event['event_id']})",
        event["at"],
        event["action"],
        f"{event['actor']} ({event['role']}, {event['unit']})",
        event["decision"],
        ", ".join(event["fields"]) or "-",
        event["purpose"] or "-",
    )


@audit_app.command("query")
def query(
    home: HomeOpt = None,
    json: JsonOpt = False,
    waybill: Annotated[
        str | None, typer.Option("--waybill", help="Who accessed this waybill.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="What this principal did.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="RFC 3339 time (inclusive).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="RFC 3339 time (exclusive).")] = None,
    top: Annotated[
        int | None, typer.Option("--top", min=1, max=1000, help="Top K revealers by unit and role.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=audit.MAX_QUERY)] = 100,
) -> None:
    """查询 / Who accessed a waybill; what a principal did; top revealers by unit and role."""
    chosen = [waybill is not None, actor is not None, top is not None]
    if sum(chosen) != 1 and not (sum(chosen) == 0 and (since or until)):
        _fail(
            "choose one of --waybill, --actor or --top (with optional --since/--until)",
            2,
            as_json=json,
        )
    with _open(home) as application:
        try:
            if top is not None:
                rows = audit.top_revealers(application, since, until, top)
            elif waybill is not None:
                rows = audit.by_waybill(application, waybill, limit)
                low = audit.parse_time(since) if since else None
                high = audit.parse_time(until) if until else None
                rows = [
                    e
                    for e in rows
                    if (low is None or audit.parse_time(e["at"]) >= low)
                    and (high is None or audit.parse_time(e["at"]) < high)
                ]
            else:
                rows = audit.by_actor(application, actor, since, until, limit)
        except ValueError as exc:
            _fail(str(exc), 2, as_json=json)
    if json:
        _emit_json(rows)
        return
    if top is not None:
        table = Table(
            "单位 unit", "角色 role", "查看 reveals", "允许 allowed", "拒绝 denied", "人数 actors"
        )
        for r in rows:
            table.add_row(
                r["unit"],
                r["role"],
                str(r["events"]),
                str(r["allowed"]),
                str(r["denied"]),
                str(r["actors"]),
            )
    else:
        table = Table(
            "位置 seq",
            "时间 at",
            "操作 action",
            "人员 actor",
            "决定 decision",
            "字段 fields",
            "目的 purpose",
        )
        for e in rows:
            table.add_row(*_event_row(e))
    out.print(table)


@audit_app.command("export")
def export(
    out_path: Annotated[Path, typer.Option("--out", help="JSON Lines file.")],
    home: HomeOpt = None,
    json: JsonOpt = False,
    from_seq: Annotated[
        int,
        typer.Option("--from", min=0, help="First position; > 0 appends to --out (resume)."),
    ] = 0,
) -> None:
    """导出 / Stream sealed events as JSON Lines for a SIEM; resumable with --from."""
    with _open(home) as application, out_path.open("ab" if from_seq else "wb") as handle:
        count = audit.export_jsonl(application, handle, from_seq)
    data = {
        "exported": count,
        "from": from_seq,
        "next_from": from_seq + count,
        "out": str(out_path),
    }
    if json:
        _emit_json(data)
    else:
        out.print(
            f"exported 已导出 {count:,} events to {out_path}; resume with --from {from_seq + count}"
        )


class ReportLang(StrEnum):
    ZH = "zh"
    EN = "en"


def _read_phone() -> str:
    """The phone from stdin: a pipe gives one line, a terminal a prompt that does not echo
    (so the number is not left on screen or in a terminal's scrollback)."""
    if sys.stdin.isatty():
        return str(typer.prompt("电话号码 / phone", hide_input=True, err=True))
    return sys.stdin.readline().strip()


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    # A half-written report must never sit at the requested path looking complete.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@audit_app.command("subject-report")
def subject_report_cmd(
    home: HomeOpt = None,
    json: JsonOpt = False,
    phone_stdin: Annotated[
        bool,
        typer.Option(
            "--phone-stdin",
            help="Read the phone number from standard input (it is never an argument, "
            "so it stays out of shell history and process lists).",
        ),
    ] = False,
    out_html: Annotated[
        Path | None, typer.Option("--out-html", help="Write the report as HTML.", dir_okay=False)
    ] = None,
    out_pdf: Annotated[
        Path | None, typer.Option("--out-pdf", help="Write the report as PDF.", dir_okay=False)
    ] = None,
    lang: Annotated[
        ReportLang, typer.Option("--lang", help="zh (中文, default) or en.")
    ] = ReportLang.ZH,
) -> None:
    """个人信息处理记录 / Who has seen a person's data: every access to every waybill of a
    phone number (PIPL right to know), as HTML and/or PDF."""
    if not phone_stdin:
        _fail("the phone number is read from standard input: pass --phone-stdin", 2, as_json=json)
    outputs = [p for p in (out_html, out_pdf) if p is not None]
    if not outputs:
        _fail("give --out-html FILE and/or --out-pdf FILE", 2, as_json=json)
    phone = _read_phone()
    with _open(home) as application:
        try:
            subject_report.check_output_names(phone, outputs)
            if out_pdf is not None:
                subject_report.ensure_pdf_font()
            report = subject_report.build_report(
                application,
                phone,
                include_staff_names=subject_report.staff_names_configured(application.settings),
            )
        except FieldError as exc:
            _fail(f"{exc.field}: {exc.reason}", 1, as_json=json)
        except subject_report.FontNotFound as exc:
            _fail(str(exc), 2, as_json=json)
    del phone
    if out_html is not None:
        html = subject_report.render_html(report, lang.value)
        _write_atomically(out_html, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    if out_pdf is not None:
        _write_atomically(out_pdf, lambda tmp: subject_report.render_pdf(report, tmp, lang.value))
    data = {
        **report.summary(),
        "lang": lang.value,
        "html": str(out_html) if out_html else None,
        "pdf": str(out_pdf) if out_pdf else None,
    }
    if json:
        _emit_json(data)
        return
    out.print(
        f"个人信息处理记录报告 / data-subject report: {data['waybills']} 张运单 waybills, "
        f"{data['accesses']} 条访问 accesses; subject {data['subject_ref']}"
    )
    for path in outputs:
        out.print(f"  → {path}")
    if data["waybills_truncated"] or data["accesses_truncated"]:
        out.print("[yellow]部分记录超出上限，报告中已注明 / some lists were cut short[/]")


@audit_app.command("synth", hidden=True)
def synth(
    count: Annotated[int, typer.Option("--count", min=1, max=10_000_000)],
    home: HomeOpt = None,
    json: JsonOpt = False,
    seal_now: Annotated[bool, typer.Option("--seal/--no-seal")] = True,
    start: Annotated[int, typer.Option("--start", min=0, help="First synthetic number.")] = 0,
) -> None:
    """Append synthetic audit events (no personal data) — for demos and checks."""
    with _open(home) as application:
        recorded = 0
        for first in range(start, start + count, audit_bench.BATCH):
            last = min(first + audit_bench.BATCH, start + count)
            events = [audit_bench.synthetic_event(n) for n in range(first, last)]
            recorded += len(audit.record_many(application, events))
        sealed = audit.seal(application) if seal_now else 0
    data = {"recorded": recorded, "sealed": sealed}
    if json:
        _emit_json(data)
    else:
        out.print(f"recorded 已记录 {recorded:,}, sealed {sealed:,}")


def bench_audit(
    count: Annotated[int, typer.Option("--count", min=1000)] = 1_000_000,
    json: JsonOpt = False,
    writers: Annotated[
        int, typer.Option("--writers", min=1, max=32, help="Writer processes.")
    ] = audit_bench.WRITERS,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=100_000, help="Events per writer transaction.")
    ] = audit_bench.BATCH,
) -> None:
    """审计基准 / Audit log: durable appends (sealing running), verify, proof size and time."""
    emit_result(audit_bench.run(count, writers=writers, batch=batch, log=err.print), json)


# Also reachable as `waybillguard audit bench` until `bench audit` is registered.
audit_app.command("bench", hidden=True)(bench_audit)


if __name__ == "__main__":  # local use: python -m waybillguard.entrypoints.audit_cli
    audit_app()
