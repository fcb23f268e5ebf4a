"""Privacy shipping labels: `POST /api/v1/labels`, the HTTP face of `waybillguard label`.

Tracking numbers travel in the JSON body (a batch would not fit a URL, and URLs are
logged). The route does what the CLI does, in the same order: `labels.check_printer`
(printing role, view scope), the virtual-number lines, then `labels.issue_labels`,
which renders, writes the `label.print` audit events and only then hands back the
bytes. A refusal anywhere stops the batch before anything is issued or audited.
"""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Final, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from waybillguard.entrypoints.http.common import API_PREFIX, ERROR_RESPONSES
from waybillguard.entrypoints.http.deps import AppDep, CallerDep
from waybillguard.entrypoints.http.errors import ApiError
from waybillguard.entrypoints.http.schemas import Strict
from waybillguard.services import labels, virtual_numbers
from waybillguard.services.caller import Caller

# A label batch is answered in one response, rendered and held in memory by a worker
# thread (on SQLite the worker's only one). 1,000 labels is a shift's printing at a
# busy station and stays within seconds and megabytes: PDF ~1 s and ~1.7 MB, ZPL
# ~4.5 MB, PNG ~13 s and ~15 MB (docs/labels.md, Performance), plus one binding
# transaction per waybill that has no virtual number yet. Larger runs belong to the
# CLI (`label --from FILE`, up to labels.MAX_BATCH, with a ZPL render pool).
MAX_HTTP_BATCH: Final = 1_000

MEDIA_TYPES: Final = {
    "pdf": "application/pdf",
    # A printer command stream, forwarded to the printer byte for byte (raw port 9100):
    # not text for people, so not text/plain, which invites re-encoding and newline
    # rewriting on the way.
    "zpl": "application/zpl",
    "png": "image/png",
    "zip": "application/zip",
}

TrackingNumber = Annotated[str, Field(min_length=1, max_length=32)]

router = APIRouter(prefix=API_PREFIX, tags=["labels"], responses=ERROR_RESPONSES)


class LabelsIn(Strict):
    tracking_numbers: Annotated[
        list[TrackingNumber],
        Field(
            min_length=1,
            max_length=MAX_HTTP_BATCH,
            description="运单号，按打印顺序（重复的只打一次）/ tracking numbers, in print order "
            "(a repeated one prints once)",
        ),
    ]
    format: Literal["pdf", "png", "zpl"] = "pdf"
    size: Literal["100x180", "76x130", "100x150"] = "100x180"
    dpi: Literal[203, 300] = Field(203, description="PNG/ZPL 分辨率 / PNG and ZPL resolution")


NOT_FOUND: Final = ("waybill.not_found", "无此运单或不在你的范围内 / no such waybill in your scope")


def _check_printer(app: AppDep, caller: Caller, numbers: list[str]) -> None:
    """`labels.check_printer` decides; the route only tells a role refusal (403) from
    a waybill that is missing or outside the caller's scope (404, the same answer for
    both, so the API is no oracle for other stations' tracking numbers)."""
    principal = caller.principal
    try:
        labels.check_printer(app, principal, numbers)
    except labels.LabelRefused:
        if principal.role not in labels.PRINTING_ROLES or not principal.active:
            raise ApiError(
                403, "not_allowed", "该角色不可打印面单 / this role does not print labels"
            ) from None
        raise ApiError(404, *NOT_FOUND) from None


def _phone_lines(app: AppDep, caller: Caller, numbers: list[str]) -> dict[str, str]:
    try:
        return virtual_numbers.label_phone_lines(app, numbers, actor=caller.actor)
    except virtual_numbers.NumbersError as exc:
        if exc.code.endswith(".not_found"):
            raise ApiError(404, *NOT_FOUND) from None
        # Pool exhausted, waybill closed, allocation contended: the message is the
        # service's own (field and reason, no value).
        raise ApiError(409, exc.code, exc.message) from None


def _zip(issued: labels.IssuedLabels, pngs: tuple[bytes, ...]) -> bytes:
    buffer = io.BytesIO()
    # PNG is already deflated: stored entries cost no CPU and lose nothing.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for number, png in zip(issued.tracking_numbers, pngs, strict=True):
            archive.writestr(zipfile.ZipInfo(f"{number}.png", date_time=(1980, 1, 1, 0, 0, 0)), png)
    return buffer.getvalue()


def _answer(issued: labels.IssuedLabels) -> Response:
    rendered = issued.rendered
    if isinstance(rendered, tuple):
        if len(rendered) == 1:
            body, kind, name = rendered[0], "png", f"{issued.tracking_numbers[0]}.png"
        else:
            body, kind, name = _zip(issued, rendered), "zip", "labels.zip"
    else:
        body, kind, name = rendered, issued.format, f"labels.{issued.format}"
    return Response(
        body,
        media_type=MEDIA_TYPES[kind],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Audit-Event": ",".join(map(str, issued.audit_events)),
            "X-Label-Count": str(issued.count),
        },
    )


@router.post(
    "/labels",
    response_class=Response,
    summary="打印隐私面单（审计）/ print privacy labels (audited)",
    description=(
        "站点文员、站点经理、管理员，仅限可见范围内的运单。PDF 每页一张；ZPL 一个流；PNG "
        "单张为图片，多张为 ZIP（`<运单号>.png`）。审计事件 `label.print` 在返回之前写入。\n\n"
        "Station clerks, station managers and administrators, for waybills in their view "
        "scope only. PDF: one page per label; ZPL: one stream (`application/zpl`); PNG: "
        "one label as `image/png`, several as a ZIP of `<tracking number>.png`. The "
        "`label.print` audit event is written before the answer (header `X-Audit-Event`). "
        f"At most {MAX_HTTP_BATCH:,} tracking numbers a request."
    ),
    responses={
        200: {
            "description": "面单 / the labels",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        }
    },
)
def print_labels(body: LabelsIn, app: AppDep, caller: CallerDep) -> Response:
    numbers = labels.print_order(body.tracking_numbers)
    _check_printer(app, caller, numbers)
    lines = _phone_lines(app, caller, numbers)
    try:
        issued = labels.issue_labels(
            app, numbers, lines, body.format, body.size, body.dpi, actor=caller.actor
        )
    except labels.LabelRefused:
        # The service's message names the waybill; the answer names none.
        raise ApiError(
            409,
            "label.refused",
            "运单已销毁、已结束或数据无法脱敏，整批未打印 / a waybill is shredded, finished or "
            "its data would not be masked; nothing was printed",
        ) from None
    return _answer(issued)
