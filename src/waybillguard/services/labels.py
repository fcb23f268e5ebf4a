"""Label issue: waybill → masked fields + virtual number + signed QR token → layout →
PDF / PNG / ZPL (see docs/labels.md).

Nothing here decrypts. A label is built from the waybill's stored masked rendering
(the same one every masked view shows), the recipient's virtual number line (隐私号,
allocated by the virtual-number service) and a delivery token from the vault; the
domain's :class:`~waybillguard.domain.label.LabelData` refuses anything that looks
unmasked. Every issue is audited (``label.print``, one event per batch of at most
10,000 waybills, naming each) before a file is written: if the audit log cannot be
written, no label leaves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal

from waybillguard.adapters.divisions import load_divisions
from waybillguard.adapters.labels.pdf import render_pdf
from waybillguard.adapters.labels.png import render_png
from waybillguard.adapters.labels.zpl import render_zpl
from waybillguard.adapters.labels.zpl_pool import ZplPool
from waybillguard.domain.identity import Principal, Role
from waybillguard.domain.label import (
    DEFAULT_SIZE,
    LabelData,
    LabelLayout,
    LabelSize,
    UnmaskedLabelData,
    big_sort_code,
    layout,
    parse_size,
)
from waybillguard.domain.lifecycle import TERMINAL, Status
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.visibility import view_check
from waybillguard.services.waybills import WaybillNotFound, masked_view

Format = Literal["pdf", "png", "zpl"]
FORMATS: Final = ("pdf", "png", "zpl")
DPIS: Final = (203, 300)
DEFAULT_TOKEN_TTL_DAYS: Final = 30
MAX_WAYBILLS_PER_EVENT: Final = 10_000
MAX_BATCH: Final = 100_000
# Labels print the time in China Standard Time (UTC+8, no daylight saving).
CHINA_TIME: Final = timezone(timedelta(hours=8), "CST")

Log = Callable[[str], None]

__all__ = [
    "FORMATS",
    "IssuedLabels",
    "LabelBatch",
    "LabelRefused",
    "ZplPool",
    "bench_labels",
    "issue_labels",
    "label_data",
    "render",
    "write_labels",
]


class LabelRefused(ValueError):
    """No label for this waybill (shredded, finished, or its data would not be masked).
    The message never carries personal data."""


PRINTING_ROLES = frozenset({Role.STATION_CLERK, Role.STATION_MANAGER, Role.ADMIN})


def check_printer(app: App, principal: Principal, numbers: Sequence[str]) -> None:
    """A logged-in principal prints labels only in a printing role and only for waybills
    in their view scope (a franchise station prints its own parcels, nobody else's)."""
    if principal.role not in PRINTING_ROLES or not principal.active:
        raise LabelRefused("该角色不可打印面单 / this role does not print labels")
    decide = view_check(app, principal)
    for number in numbers:
        stored = app.store.get(number)
        if stored is None or not decide(stored).allowed:
            raise LabelRefused("无此运单或不在你的范围内 / no such waybill in your scope")


def _check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise ValueError(f"unknown label format; expected one of {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def _check_dpi(dpi: int) -> int:
    if dpi not in DPIS:
        raise ValueError("dpi must be 203 or 300")
    return dpi


def sort_code_for(destination_adcode: str) -> str:
    """The big sorting code of a destination division code ("粤 深圳 南山")."""
    table = load_divisions()
    try:
        _, city, district = table.path(destination_adcode)
    except (KeyError, ValueError):
        return big_sort_code(destination_adcode, "", "")
    return big_sort_code(destination_adcode, city.name, district.name)


def label_data(
    app: App,
    number: str,
    phone_line: str,
    *,
    token_ttl_days: int = DEFAULT_TOKEN_TTL_DAYS,
    now: datetime | None = None,
) -> LabelData:
    """The data of one label: the stored masked view of ``number``, the recipient's
    ``phone_line`` (virtual number with extension, e.g. "17012345678转4821") and a fresh
    delivery token valid for ``token_ttl_days``. Not audited by itself: the batch that
    prints it is (``write_labels``).

    Raises WaybillNotFound, LabelRefused (shredded or finished waybill, or data that
    does not look masked)."""
    if not 1 <= token_ttl_days <= 366:
        raise ValueError("token_ttl_days must be between 1 and 366")
    parsed = parse_tracking_number(number)
    stored = app.store.get(str(parsed)) if parsed else None
    if stored is None:
        raise WaybillNotFound()
    view = masked_view(stored)
    if view["shredded"]:
        raise LabelRefused(f"{stored.tracking_number}: the waybill was shredded")
    if Status(view["status"]) in TERMINAL:
        raise LabelRefused(f"{stored.tracking_number}: the waybill is {view['status']}")
    moment = (now or datetime.now(UTC)).astimezone(CHINA_TIME)
    expires = int((moment + timedelta(days=token_ttl_days)).timestamp())
    token = app.vault.issue_delivery_token(stored.tracking_number, expires)
    sender, recipient = view["sender"], view["recipient"]
    try:
        return LabelData(
            tracking_number=stored.tracking_number,
            recipient_name=recipient["name"],
            recipient_address=recipient["address"],
            recipient_phone=phone_line,
            sender_name=sender["name"],
            sender_phone=sender["phone"],
            sender_address=sender["address"],
            sort_code=sort_code_for(view["destination_adcode"]),
            station=view["destination_station"] or "",
            category=view["parcel"]["category"],
            weight_g=int(view["parcel"]["weight_g"]),
            qr_token=token,
            printed_at=moment,
        )
    except UnmaskedLabelData as exc:
        raise LabelRefused(f"{stored.tracking_number}: {exc}") from None


def render(
    datas: Sequence[LabelData],
    fmt: str = "pdf",
    size: LabelSize | str = DEFAULT_SIZE,
    dpi: int = 203,
    zpl_pool: ZplPool | None = None,
) -> bytes | list[bytes]:
    """PDF: one file, a page per label. ZPL: one stream (on the pool's processes when
    one is given and the batch is large). PNG: one image per label."""
    fmt = _check_format(fmt)
    shape = layout(parse_size(size))
    if not datas:
        raise ValueError("no labels to render")
    if fmt == "pdf":
        return render_pdf(datas, shape)
    dpi = _check_dpi(dpi)
    if fmt == "zpl":
        return zpl_pool.render(datas, shape, dpi) if zpl_pool else render_zpl(datas, shape, dpi)
    return [render_png(data, shape, dpi) for data in datas]


@dataclass(frozen=True, slots=True)
class LabelBatch:
    count: int
    format: str
    size: str
    dpi: int
    paths: tuple[Path, ...]
    audit_events: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "format": self.format,
            "size": self.size,
            "dpi": self.dpi,
            "paths": [str(p) for p in self.paths],
            "audit_events": list(self.audit_events),
        }


def print_order(numbers: Iterable[str]) -> list[str]:
    """Tracking numbers as a batch prints them: each in its canonical form (anything
    that does not parse is kept, stripped, for the look-up to refuse), in the order
    given, a repeated one once. The CLI and the HTTP API both take this."""
    canonical = (
        str(parsed) if (parsed := parse_tracking_number(n)) is not None else n.strip()
        for n in numbers
    )
    return list(dict.fromkeys(canonical))


def _phone_lines(
    numbers: Sequence[str], phone_lines: Sequence[str] | Mapping[str, str]
) -> list[str]:
    if isinstance(phone_lines, Mapping):
        try:
            return [phone_lines[n] for n in numbers]
        except KeyError:
            raise ValueError("a phone line is missing for a waybill") from None
    if len(phone_lines) != len(numbers):
        raise ValueError("one phone line per waybill is needed")
    return list(phone_lines)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class IssuedLabels:
    """A batch issued and audited, not yet written anywhere: ``rendered`` is one PDF
    or ZPL stream, or one PNG per label in the order of ``tracking_numbers``."""

    count: int
    format: str
    size: str
    dpi: int
    tracking_numbers: tuple[str, ...]
    rendered: bytes | tuple[bytes, ...]
    audit_events: tuple[int, ...]


def issue_labels(
    app: App,
    numbers: Sequence[str],
    phone_lines: Sequence[str] | Mapping[str, str],
    fmt: str = "pdf",
    size: LabelSize | str = DEFAULT_SIZE,
    dpi: int = 203,
    *,
    actor: Actor | None = None,
    token_ttl_days: int = DEFAULT_TOKEN_TTL_DAYS,
    now: datetime | None = None,
    zpl_pool: ZplPool | None = None,
) -> IssuedLabels:
    """Issue labels for ``numbers`` (in order): build and render every label, then
    write the ``label.print`` audit events durably, and only then return the bytes.

    Any refusal stops the batch before anything is issued; if an audit write fails
    the exception propagates and no bytes are returned. A batch names each waybill
    once in its events. Callers decide where the bytes go (``write_labels``: files;
    the HTTP API: the response body)."""
    fmt = _check_format(fmt)
    shape_size = parse_size(size)
    dpi = _check_dpi(dpi)
    if not numbers:
        raise ValueError("no waybills given")
    if len(numbers) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH:,} labels per batch")
    lines = _phone_lines(numbers, phone_lines)
    moment = now or datetime.now(UTC)
    datas = [
        label_data(app, number, line, token_ttl_days=token_ttl_days, now=moment)
        for number, line in zip(numbers, lines, strict=True)
    ]
    rendered = render(datas, fmt, shape_size, dpi, zpl_pool=zpl_pool)
    waybills = [d.tracking_number for d in datas]
    events = tuple(
        emit(
            app,
            actor or Actor.local_operator(),
            "label.print",
            waybills=waybills[i : i + MAX_WAYBILLS_PER_EVENT],
            detail={
                "format": fmt,
                "size": shape_size.value,
                "dpi": dpi,
                "count": len(waybills[i : i + MAX_WAYBILLS_PER_EVENT]),
                "token_ttl_days": token_ttl_days,
            },
        )
        for i in range(0, len(waybills), MAX_WAYBILLS_PER_EVENT)
    )
    return IssuedLabels(
        count=len(datas),
        format=fmt,
        size=shape_size.value,
        dpi=dpi,
        tracking_numbers=tuple(waybills),
        rendered=tuple(rendered) if isinstance(rendered, list) else rendered,
        audit_events=events,
    )


def write_labels(
    app: App,
    numbers: Sequence[str],
    phone_lines: Sequence[str] | Mapping[str, str],
    fmt: str = "pdf",
    size: LabelSize | str = DEFAULT_SIZE,
    out: Path = Path("labels.pdf"),
    dpi: int = 203,
    *,
    actor: Actor | None = None,
    token_ttl_days: int = DEFAULT_TOKEN_TTL_DAYS,
    now: datetime | None = None,
    zpl_pool: ZplPool | None = None,
) -> LabelBatch:
    """Issue labels for ``numbers`` (in order, :func:`issue_labels`) and write them: PDF
    and ZPL to the file ``out``, PNG as ``<tracking number>.png`` into the directory
    ``out``. The audit events are written before any file."""
    issued = issue_labels(
        app,
        numbers,
        phone_lines,
        fmt,
        size,
        dpi,
        actor=actor,
        token_ttl_days=token_ttl_days,
        now=now,
        zpl_pool=zpl_pool,
    )
    out = Path(out)
    paths: list[Path]
    if isinstance(issued.rendered, tuple):
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, png in zip(issued.tracking_numbers, issued.rendered, strict=True):
            path = out / f"{number}.png"
            _write_atomically(path, png)
            paths.append(path)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(out, issued.rendered)
        paths = [out]
    return LabelBatch(
        issued.count, issued.format, issued.size, issued.dpi, tuple(paths), issued.audit_events
    )


# -- benchmark ---------------------------------------------------------------------------


def synthetic_label_data(count: int, seed: int = 20250301) -> list[LabelData]:
    """Label data for ``count`` synthetic waybills, masked by the domain's own masking
    functions (no database, no keys): what a batch of real labels looks like."""
    from waybillguard.domain.address import AddressResolver, mask_address
    from waybillguard.domain.person_name import mask_name, parse_name
    from waybillguard.domain.phone import mask_phone, parse_phone
    from waybillguard.services.synth import synth_rows

    table = load_divisions()
    resolver = AddressResolver(table)
    printed = datetime(2025, 3, 1, 9, 30, tzinfo=CHINA_TIME)
    datas: list[LabelData] = []
    for i, row in enumerate(synth_rows(count, seed)):
        sender, recipient = row["sender"], row["recipient"]
        destination = resolver.resolve(recipient["address"], "recipient.address")
        names = (sender["name"], recipient["name"])
        # A token has the vault's shape (73 characters) and is as unique, not signed.
        token = "wgq1." + format(i * 2654435761 + seed, "x").rjust(68, "q")[-68:]
        datas.append(
            LabelData(
                tracking_number=f"WG{i % 10_000_000:07d}{(i * 7919) % 1_000_000:06d}",
                recipient_name=mask_name(parse_name(recipient["name"], "recipient.name")),
                recipient_address=mask_address(destination, names),
                recipient_phone=f"170{(i // 9999) % 100_000_000:08d}转{i % 9999 + 1}",
                sender_name=mask_name(parse_name(sender["name"], "sender.name")),
                sender_phone=mask_phone(parse_phone(sender["phone"], "sender.phone")),
                sender_address=mask_address(
                    resolver.resolve(sender["address"], "s.address"), names
                ),
                sort_code=sort_code_for(destination.adcode),
                station=f"ST-{int(destination.adcode) % 997:03d}",
                category=row["parcel"]["category"],
                weight_g=int(row["parcel"]["weight_g"]),
                qr_token=token,
                printed_at=printed,
            )
        )
    return datas


def _bench_zpl(
    pool: ZplPool, datas: list[LabelData], batch: int, shape: LabelLayout, log: Log
) -> dict[str, Any]:
    """ZPL figures of :func:`bench_labels`, with ``pool`` warmed first."""
    from waybillguard.adapters.labels.glyphs import GLYPHS

    result: dict[str, Any] = {}
    warmed = 0
    for seed in range(7, 16):  # at most 9 batches
        known = len(GLYPHS)
        pool.render(synthetic_label_data(batch, seed=seed), shape, 203)
        warmed += batch
        new = len(GLYPHS) - known + pool.last.new_glyphs_workers
        if seed > 7 and new < 5:  # settled: < 5 new glyphs in a batch, in all processes
            break
    log(f"ZPL glyph cache warmed with {warmed:,} other labels")
    result["zpl_warmup_labels"] = warmed

    log("ZPL: one stream …")
    known = len(GLYPHS)
    start = time.perf_counter()
    zpl = pool.render(datas, shape, 203)
    seconds = time.perf_counter() - start
    cost = pool.last
    result["zpl_labels_per_s"] = round(len(datas) / seconds, 1)
    result["zpl_processes"] = cost.processes
    # CPU of every process that rendered: less noisy under load than the rate
    result["zpl_cpu_us_per_label"] = round((cost.cpu_here + cost.cpu_workers) / len(datas) * 1e6, 1)
    result["zpl_bytes_per_label"] = len(zpl) // len(datas)
    result["zpl_new_glyphs"] = len(GLYPHS) - known + cost.new_glyphs_workers

    log("ZPL: one stream, this process alone …")
    others = synthetic_label_data(len(datas), seed=20250302)
    start = time.perf_counter()
    render_zpl(others, shape, 203)
    result["zpl_one_process_labels_per_s"] = round(len(others) / (time.perf_counter() - start), 1)
    return result


def bench_labels(count: int = 5000, log: Log = print) -> dict[str, Any]:
    """Labels per second over ``count`` synthetic labels (100x180 mm, 203 dpi):
    ``pdf_labels_per_s`` for one PDF file of all of them, ``zpl_labels_per_s`` for one
    ZPL stream of all of them, ``png_labels_per_s`` for one PNG per label (on a
    sample of at most 500).

    Steady state, as in a print service that has been running: the font, the layouts
    and the glyph and run caches are first warmed by as many *other* synthetic labels
    (another seed: other people, other streets); the measured labels are new. The
    glyph cache (the font rendered by FreeType, ~0.2-0.7 ms a glyph) takes longer to
    settle: ZPL is warmed with further batches of other labels until a batch needs
    fewer than a handful of new glyphs (``zpl_warmup_labels``); ``zpl_new_glyphs``
    says how many the measured stream still had to render.

    ZPL is rendered as a print service renders a batch: by a :class:`ZplPool` of one
    process per core (``zpl_processes``); ``zpl_cpu_us_per_label`` counts the CPU of
    all of them. ``zpl_one_process_labels_per_s`` is the same kind of batch (other new
    labels) rendered by this process alone, in the same run."""
    if count < 1:
        raise ValueError("count must be at least 1")
    batch = min(count, 5000)
    log(f"building {count:,} synthetic labels, and {batch:,} to warm up …")
    datas = synthetic_label_data(count)
    warm = synthetic_label_data(batch, seed=7)
    shape = layout(DEFAULT_SIZE)
    log("warming up …")
    render_pdf(warm, shape)
    for data in warm[:20]:
        render_png(data, shape, 203)
    result: dict[str, Any] = {"labels": count, "size": DEFAULT_SIZE.value, "dpi": 203}

    log("PDF: one file …")
    start = time.perf_counter()
    pdf = render_pdf(datas, shape)
    seconds = time.perf_counter() - start
    result["pdf_labels_per_s"] = round(count / seconds, 1)
    result["pdf_bytes_per_label"] = len(pdf) // count

    with ZplPool() as pool:
        result.update(_bench_zpl(pool, datas, batch, shape, log))

    sample = datas[: min(count, 500)]
    log(f"PNG: {len(sample):,} images …")
    start = time.perf_counter()
    total = sum(len(render_png(data, shape, 203)) for data in sample)
    seconds = time.perf_counter() - start
    result["png_labels_per_s"] = round(len(sample) / seconds, 1)
    result["png_bytes_per_label"] = total // len(sample)
    return result
