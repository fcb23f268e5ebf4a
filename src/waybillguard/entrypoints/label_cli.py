"""`waybillguard label NUMBER…` and `waybillguard bench labels`: privacy shipping labels.

The lead registers them (see cli.py)::

    app.command("label")(label_cli.label_command)
    bench_app.command("labels")(label_cli.bench_labels_command)

Exit codes follow cli.py: 0 done; 1 a waybill is missing or refused a label (nothing
is written, nothing audited); 2 usage or configuration error.
"""

from __future__ import annotations

from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from waybillguard.entrypoints.access_cli import acting
from waybillguard.entrypoints.common import HomeOpt, JsonOpt, emit_json, emit_result, err, fail
from waybillguard.entrypoints.common import open_home as _open
from waybillguard.services.waybills import WaybillNotFound

MAX_PROCESSES = 4  # ZPL render processes a batch may use


class LabelFormat(StrEnum):
    pdf = "pdf"
    png = "png"
    zpl = "zpl"


class LabelSizeOpt(StrEnum):
    s100x180 = "100x180"
    s76x130 = "76x130"
    s100x150 = "100x150"


class Dpi(StrEnum):
    d203 = "203"
    d300 = "300"


def _numbers_from(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc.__class__.__name__}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def label_command(
    numbers: Annotated[
        list[str] | None, typer.Argument(help="Tracking numbers 运单号.", show_default=False)
    ] = None,
    format: Annotated[
        LabelFormat, typer.Option("--format", "-f", help="pdf | png | zpl")
    ] = LabelFormat.pdf,
    size: Annotated[
        LabelSizeOpt, typer.Option("--size", help="Label size in mm 面单尺寸.")
    ] = LabelSizeOpt.s100x180,
    dpi: Annotated[Dpi, typer.Option("--dpi", help="PNG/ZPL resolution.")] = Dpi.d203,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output file (pdf, zpl) or directory (png, one file per label)."
        ),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from", help="File with one tracking number per line (batch).", dir_okay=False
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            help="ZPL: processes rendering a batch of 2,000+ labels (1: this one only; "
            "a one-off batch pays ~1 s to start the others).",
        ),
    ] = 1,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """打印隐私面单 / Print privacy labels (GB/T 41833-2022 zones; masked names and
    addresses, the recipient's virtual number, a courier-only QR token). Audited."""
    # Imported here: the label renderers (reportlab, segno, PIL) cost ~0.1 s to import,
    # which every other command would pay at start-up.
    from waybillguard.services import labels, virtual_numbers

    wanted = list(numbers or [])
    try:
        if from_file is not None:
            wanted += _numbers_from(from_file)
    except ValueError as exc:
        fail(str(exc), 2, as_json=json)
    wanted = labels.print_order(wanted)
    if not wanted:
        fail("give tracking numbers or --from FILE", 2, as_json=json)
    if len(wanted) > labels.MAX_BATCH:
        fail(f"at most {labels.MAX_BATCH:,} labels per batch", 2, as_json=json)
    if not 1 <= processes <= MAX_PROCESSES:
        fail(f"--processes must be 1 to {MAX_PROCESSES}", 2, as_json=json)
    target = out or Path("labels" if format is LabelFormat.png else f"labels.{format.value}")
    pool = labels.ZplPool(processes - 1) if format is LabelFormat.zpl and processes > 1 else None
    with _open(home) as application, pool or nullcontext():
        actor, context = acting(application, json)
        try:
            if context is not None:
                labels.check_printer(application, context.principal, wanted)
            lines = dict(virtual_numbers.label_phone_lines(application, wanted))
            batch = labels.write_labels(
                application,
                wanted,
                lines,
                format.value,
                size.value,
                target,
                int(dpi.value),
                actor=actor,
                zpl_pool=pool,
            )
        except WaybillNotFound as exc:
            fail(str(exc), 1, as_json=json)
        except labels.LabelRefused as exc:
            fail(str(exc), 1, as_json=json)
        except LookupError as exc:  # e.g. a waybill the virtual-number service cannot bind
            fail(str(exc), 1, as_json=json)
        except ValueError as exc:
            fail(str(exc), 2, as_json=json)
    if json:
        emit_json(batch.as_json())
        return
    where = batch.paths[0] if len(batch.paths) == 1 else batch.paths[0].parent
    err.print(
        f"{batch.count:,} label(s) 面单 {batch.format.upper()} {batch.size} mm → {where} "
        f"(audit event {', '.join(map(str, batch.audit_events))})"
    )


def bench_labels_command(
    count: Annotated[int, typer.Option("--count", help="Labels per format.")] = 5000,
    json: JsonOpt = False,
) -> None:
    """面单性能 / PDF, PNG and ZPL labels per second, and call-routing decisions per second."""
    if count < 1:
        fail("--count must be at least 1", 2, as_json=json)
    from waybillguard.services import labels, virtual_numbers

    result = labels.bench_labels(count, log=err.print)
    routes = virtual_numbers.bench_decisions(max(100_000, count * 20))
    result["route_decisions_per_s"] = routes["route_decisions_per_s"]
    emit_result(result, json)
