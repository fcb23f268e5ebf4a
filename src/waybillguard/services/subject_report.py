"""The data-subject report: who has seen a person's data (PIPL right to know, art. 44-45).

Given a phone number, the report lists every waybill where that number is a party and
every audited access to each of them: when, by which role of which unit, what was
done, to which fields, for what purpose, and what was decided. It is rendered as HTML
(Jinja2) and PDF (reportlab, with the Chinese font embedded), Chinese first.

The phone only lives in memory long enough to compute its blind index: the report
names the subject by that index (hex), shows the subject's own party as the stored
masks, and is itself audited with the index, never the number. Staff usernames are
shown only where the operator configured it (`[subject_report] include_staff_names`
in config.toml); otherwise an access reads "role @ unit", which is what the person
needs to exercise their rights without exposing individual employees.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from jinja2 import Environment, PackageLoader

from waybillguard.adapters.db.waybill_store import StoredWaybill
from waybillguard.adapters.fonts import FontNotFound, register_reportlab_cjk_font
from waybillguard.config import Settings
from waybillguard.domain.audit_event import format_timestamp
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_ATTRIBUTES, ROLES
from waybillguard.domain.identity import ROLE_LABELS
from waybillguard.domain.phone import mask_phone, parse_phone
from waybillguard.domain.purpose import PURPOSE_LABELS, parse_purpose
from waybillguard.services import audit
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App

__all__ = [
    "FontNotFound",
    "SubjectReport",
    "build_report",
    "check_output_names",
    "ensure_pdf_font",
    "render_html",
    "render_pdf",
    "staff_names_configured",
]

Lang = Literal["zh", "en"]
LANGS: Final = ("zh", "en")
ACTION: Final = "subject.report"
# A merchant's own number can be a party to millions of waybills; a person's report is
# for a person. Past this the report says it is cut short (never silently).
MAX_WAYBILLS: Final = 1000
MAX_ACCESSES: Final = audit.MAX_QUERY
CONFIG_SECTION: Final = "subject_report"
# China has kept one offset (no daylight saving) since 1991: people read Beijing time.
BEIJING: Final = timezone(timedelta(hours=8), "CST")


@dataclass(frozen=True, slots=True)
class Label:
    """A code with its Chinese and English wording."""

    code: str
    zh: str
    en: str

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


def _label(table: Mapping[str, tuple[str, str]], code: str) -> Label:
    zh, en = table.get(code, (code, code))
    return Label(code, zh, en)


ACTION_LABELS: Final[dict[str, tuple[str, str]]] = {
    "import": ("录入运单", "waybill imported"),
    "search": ("按电话查询", "lookup by phone"),
    "waybill.show": ("查看运单（脱敏）", "viewed the waybill (masked)"),
    "waybill.list": ("浏览运单列表（脱敏）", "listed waybills (masked)"),
    "reveal": ("查看明文（解密）", "revealed (decrypted)"),
    "export.request": ("申请导出", "export requested"),
    "export.approve": ("批准导出", "export approved"),
    "export.download": ("下载导出文件", "export downloaded"),
    "label.print": ("打印面单", "label printed"),
    "assign": ("分配派送任务", "assigned for delivery"),
    "ticket.open": ("创建客服工单", "customer-service ticket opened"),
    "ticket.close": ("关闭客服工单", "customer-service ticket closed"),
    "break_glass.open": ("紧急访问开启", "emergency access opened"),
    "break_glass.close": ("紧急访问结束", "emergency access closed"),
    "event": ("更新运单状态", "status updated"),
    "shred": ("加密销毁（删除）", "crypto-shredded (erased)"),
    ACTION: ("生成个人信息处理记录报告", "data-subject report generated"),
}
# Actions that show the whole waybill, masked, without naming fields.
MASKED_VIEW_ACTIONS: Final = frozenset({"search", "waybill.show", "waybill.list"})

DECISION_LABELS: Final[dict[str, tuple[str, str]]] = {
    "allow": ("允许", "allowed"),
    "deny": ("拒绝", "denied"),
    "step_up": ("需二次验证", "step-up required"),
    "approval_required": ("需审批", "approval required"),
    "locked": ("账号已锁定，拒绝", "account locked, denied"),
    "n/a": ("不适用", "n/a"),
}

# Roles of this release's command line and system jobs, beside the staff roles.
_ROLE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "operator": ("系统运维人员", "system operator"),
    "system": ("系统自动处理", "automated system"),
    **{role.value: labels for role, labels in ROLE_LABELS.items()},
}

_PARTY_LABELS: Final[dict[str, tuple[str, str]]] = {
    "sender": ("寄件人", "sender"),
    "recipient": ("收件人", "recipient"),
}
_ATTRIBUTE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "name": ("姓名", "name"),
    "phone": ("电话", "phone"),
    "address": ("地址", "address"),
}
FIELD_LABELS: Final[dict[str, tuple[str, str]]] = {
    f"{role}.{attr}": (
        _PARTY_LABELS[role][0] + _ATTRIBUTE_LABELS[attr][0],
        f"{_PARTY_LABELS[role][1]} {_ATTRIBUTE_LABELS[attr][1]}",
    )
    for role in ROLES
    for attr in PII_ATTRIBUTES
}

STATUS_LABELS: Final[dict[str, tuple[str, str]]] = {
    "created": ("已下单", "created"),
    "picked_up": ("已揽收", "picked up"),
    "in_transit": ("运输中", "in transit"),
    "out_for_delivery": ("派送中", "out for delivery"),
    "delivered": ("已签收", "delivered"),
    "returned": ("已退回", "returned"),
    "cancelled": ("已取消", "cancelled"),
}


@dataclass(frozen=True, slots=True)
class Access:
    """One audited access to a waybill, as the person is shown it."""

    event_id: int
    seq: int | None
    at: str  # RFC 3339 UTC, as logged
    action: Label
    role: Label
    unit: str
    staff: str | None  # only when staff names are configured to be shown
    fields: tuple[Label, ...]
    purpose: Label
    decision: Label
    by_subject_phone: bool  # a lookup made with this person's own number


@dataclass(frozen=True, slots=True)
class MaskedField:
    field: Label
    mask: str


@dataclass(frozen=True, slots=True)
class WaybillAccesses:
    tracking_number: str
    status: Label
    parties: tuple[Label, ...]  # sender and/or recipient: what this number is on the waybill
    masks: tuple[MaskedField, ...]  # the subject's own party, masked as stored
    accesses: tuple[Access, ...]
    accesses_truncated: bool


@dataclass(frozen=True, slots=True)
class SubjectReport:
    generated_at: str  # RFC 3339 UTC
    subject_ref: str  # blind index of the phone (hex); never the phone
    waybills: tuple[WaybillAccesses, ...]
    waybills_truncated: bool
    include_staff_names: bool
    audit_event_id: int

    @property
    def access_count(self) -> int:
        return sum(len(w.accesses) for w in self.waybills)

    def summary(self) -> dict[str, Any]:
        return {
            "subject_ref": self.subject_ref,
            "generated_at": self.generated_at,
            "waybills": len(self.waybills),
            "accesses": self.access_count,
            "waybills_truncated": self.waybills_truncated,
            "accesses_truncated": any(w.accesses_truncated for w in self.waybills),
            "audit_event_id": self.audit_event_id,
        }


# -- configuration ---------------------------------------------------------------------
def staff_names_configured(settings: Settings) -> bool:
    """`[subject_report] include_staff_names = true` in the home's config.toml.

    A configuration setting rather than a command-line switch: whether employees are
    named to data subjects is a company decision, not one operator's."""
    path = settings.config_path
    if not path.is_file():
        return False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return False
    section = data.get(CONFIG_SECTION)
    return isinstance(section, dict) and section.get("include_staff_names") is True


def check_output_names(phone: str, paths: Iterable[Path]) -> None:
    """Refuse output file names that carry the number (e.g. `report-13800138000.pdf`):
    file names end up in directory listings, mail attachments and logs. Raises
    FieldError for an invalid phone too, so call it before anything is written."""
    national = parse_phone(phone, "phone").national
    for path in paths:
        digits = "".join(str(int(ch)) for ch in path.name if ch.isdecimal())  # full-width too
        if national in digits or national.lstrip("0") in digits:
            raise FieldError("output file name", "contains the phone number; choose another")


def ensure_pdf_font() -> None:
    """Fail before anything is built or audited if a PDF cannot be made here
    (FontNotFound names the Debian package to install)."""
    register_reportlab_cjk_font()


# -- building --------------------------------------------------------------------------
def _purpose(text: str) -> Label:
    if not text:
        return Label("", "未填写", "not stated")
    try:
        purpose = parse_purpose(text)
    except FieldError:
        # Free text from older events: already checked to be free of personal data.
        return Label(text, text, text)
    zh, en = PURPOSE_LABELS[purpose.kind]
    if purpose.ref:
        return Label(text, f"{zh} {purpose.ref}", f"{en} {purpose.ref}")
    return Label(text, zh, en)


def _access(event: Mapping[str, Any], subject_ref: str, include_staff_names: bool) -> Access:
    return Access(
        event_id=int(event["event_id"]),
        seq=event.get("seq"),
        at=str(event.get("at", "")),
        action=_label(ACTION_LABELS, str(event.get("action", ""))),
        role=_label(_ROLE_LABELS, str(event.get("role", ""))),
        unit=str(event.get("unit", "")),
        staff=str(event.get("actor", "")) if include_staff_names else None,
        fields=tuple(_label(FIELD_LABELS, str(f)) for f in event.get("fields", ())),
        purpose=_purpose(str(event.get("purpose", ""))),
        decision=_label(DECISION_LABELS, str(event.get("decision", ""))),
        by_subject_phone=subject_ref in event.get("subject_refs", ()),
    )


def _parties(waybill: StoredWaybill, phone_mask: str) -> tuple[str, ...]:
    """Which side(s) of the waybill carry this number. The store matched the blind index
    on either side without saying which; the stored phone masks tell them apart. If both
    match (sending to oneself, or two numbers that mask alike) both are named, and if
    neither does (masks from an older rule) none is, rather than guessing."""
    return tuple(r for r in ROLES if waybill.masks.get(f"{r}.phone") == phone_mask)


def _waybill(
    waybill: StoredWaybill,
    parties: Sequence[str],
    events: Sequence[Mapping[str, Any]],
    subject_ref: str,
    include_staff_names: bool,
) -> WaybillAccesses:
    masks = tuple(
        MaskedField(_label(FIELD_LABELS, f"{r}.{a}"), waybill.masks.get(f"{r}.{a}", ""))
        for r in parties
        for a in PII_ATTRIBUTES
    )
    return WaybillAccesses(
        tracking_number=waybill.tracking_number,
        status=_label(STATUS_LABELS, waybill.status),
        parties=tuple(_label(_PARTY_LABELS, r) for r in parties),
        masks=masks,
        accesses=tuple(_access(e, subject_ref, include_staff_names) for e in events),
        accesses_truncated=len(events) >= MAX_ACCESSES,
    )


def build_report(
    app: App,
    phone: str,
    *,
    include_staff_names: bool = False,
    actor: Actor | None = None,
) -> SubjectReport:
    """Everything the log knows about accesses to the waybills of `phone`.

    Raises FieldError (naming the field "phone", never the value) for an invalid
    number. The generation is audited (action "subject.report", the blind-index
    reference and the waybills) before the report is returned; if that event cannot
    be written, no report is returned."""
    parsed = parse_phone(phone, "phone")
    phone_index = app.vault.index_phone(parsed.e164)
    phone_mask = mask_phone(parsed)
    del parsed, phone  # nothing below needs the number itself
    subject_ref = phone_index.hex()

    found = app.store.find_by_phone_index(phone_index, None, MAX_WAYBILLS + 1)
    truncated = len(found) > MAX_WAYBILLS
    found = found[:MAX_WAYBILLS]
    entries = tuple(
        _waybill(
            w,
            _parties(w, phone_mask),
            audit.by_waybill(app, w.tracking_number, MAX_ACCESSES),
            subject_ref,
            include_staff_names,
        )
        for w in found
    )
    generated_at = format_timestamp(datetime.now(UTC))
    event_id = emit(
        app,
        actor or Actor.local_operator(),
        ACTION,
        waybills=[w.tracking_number for w in entries],
        subject_refs=[subject_ref],
        detail={
            "waybills": len(entries),
            "accesses": sum(len(w.accesses) for w in entries),
            "staff_names": int(include_staff_names),
            "truncated": int(truncated),
        },
    )
    return SubjectReport(
        generated_at=generated_at,
        subject_ref=subject_ref,
        waybills=entries,
        waybills_truncated=truncated,
        include_staff_names=include_staff_names,
        audit_event_id=event_id,
    )


# -- what both renderings say ----------------------------------------------------------
TEXT: Final[dict[str, dict[str, str]]] = {
    "zh": {
        "title": "个人信息处理记录报告",
        "subtitle": "谁查看过您的信息 ——《个人信息保护法》第四十四条、第四十五条（知情权、查阅权）",
        "generated_at": "生成时间",
        "subject_ref": "查询对象编号",
        "subject_ref_note": "由电话号码加密计算所得的索引，不含号码本身",
        "summary": "共 {waybills} 张运单，{accesses} 条访问记录。",
        "none": "没有找到与该电话号码关联的运单。",
        "waybill": "运单",
        "status": "状态",
        "your_part": "您在此运单中的身份",
        "gap": "　",
        "unknown_part": "未能确定",
        "your_data": "您的信息（脱敏显示）",
        "time": "时间（北京时间）",
        "who": "访问者",
        "action": "操作",
        "fields": "涉及字段",
        "purpose": "目的",
        "decision": "结果",
        "no_access": "暂无访问记录。",
        "masked_fields": "全部信息（脱敏）",
        "no_fields": "—",
        "no_unit": "未登记单位",
        "own_phone": "（以您的号码查询）",
        "accesses_truncated": "此运单的访问记录超过 {limit} 条，仅列出最早的 {limit} 条。",
        "waybills_truncated": (
            "关联运单超过 {limit} 张，仅列出前 {limit} 张；请联系我们获取完整记录。"
        ),
        "about": "说明",
        "note_staff_hidden": "访问者以“角色 @ 单位”表示；按公司规定，不显示员工姓名或账号。",
        "note_staff_shown": "按公司规定，访问者显示员工账号、角色和单位。",
        "note_masked": (
            "“脱敏”的操作只能看到部分隐藏的信息（如 138******34）；"
            "“查看明文”是解密后查看，记录中列出所涉及的字段。"
        ),
        "note_denied": (
            "未获允许的请求（拒绝、需审批、需二次验证）也一并列出并以红色标出："
            "这些请求本身没有让对方看到信息。"
        ),
        "note_shredded": (
            "已加密销毁（删除）的运单，其与电话号码的关联已随之销毁，因此不在本报告中。"
        ),
        "note_audited": "本报告的生成本身也记入审计日志（记录编号 {event_id}）。",
        "page": "第 {page} 页",
    },
    "en": {
        "title": "Personal data processing record",
        "subtitle": (
            "Who has seen your data — PIPL articles 44 and 45 (right to know, right of access)"
        ),
        "generated_at": "Generated at",
        "subject_ref": "Subject reference",
        "subject_ref_note": "a keyed index computed from the phone number; not the number",
        "summary": "{waybills} waybill(s), {accesses} recorded access(es).",
        "none": "No waybill is linked to this phone number.",
        "waybill": "Waybill",
        "status": "Status",
        "your_part": "Your role on this waybill",
        "gap": " · ",
        "unknown_part": "could not be determined",
        "your_data": "Your data (masked)",
        "time": "Time (Beijing, UTC+8)",
        "who": "Who",
        "action": "Action",
        "fields": "Fields",
        "purpose": "Purpose",
        "decision": "Decision",
        "no_access": "No recorded access.",
        "masked_fields": "all data (masked)",
        "no_fields": "—",
        "no_unit": "no unit recorded",
        "own_phone": " (looked up with your number)",
        "accesses_truncated": "More than {limit} accesses to this waybill; the first {limit} "
        "are listed.",
        "waybills_truncated": "More than {limit} waybills are linked to this number; the first "
        "{limit} are listed. Contact us for the complete record.",
        "about": "About this report",
        "note_staff_hidden": "Accesses are shown as “role @ unit”; by company policy staff "
        "names and accounts are not shown.",
        "note_staff_shown": "By company policy, accesses show the staff account, role and unit.",
        "note_masked": "Masked actions only show partly hidden data (e.g. 138******34); "
        "“revealed” means the listed fields were decrypted and seen.",
        "note_denied": "Requests that were not allowed (denied, awaiting approval or step-up) "
        "are listed too, highlighted in red: they did not show anyone your data.",
        "note_shredded": "Waybills that were crypto-shredded (erased) no longer link to the "
        "phone number, so they cannot appear in this report.",
        "note_audited": "Generating this report was itself recorded in the audit log "
        "(event {event_id}).",
        "page": "Page {page}",
    },
}


def _lang(lang: str) -> Lang:
    if lang == "zh":
        return "zh"
    if lang == "en":
        return "en"
    raise ValueError(f"lang must be one of {', '.join(LANGS)}")


def beijing_time(at: str) -> str:
    """An RFC 3339 UTC time as Beijing wall-clock time, to the second."""
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _sep(lang: Lang) -> str:
    return "、" if lang == "zh" else ", "


def _role_code(label: Label, lang: Lang) -> str:
    text = label.text(lang)
    if text == label.code:
        return text
    return f"{text}（{label.code}）" if lang == "zh" else f"{text} ({label.code})"


def _who(access: Access, lang: Lang, t: Mapping[str, str]) -> str:
    who = f"{_role_code(access.role, lang)} @ {access.unit or t['no_unit']}"
    return f"{access.staff} · {who}" if access.staff else who


def _fields(access: Access, lang: Lang, t: Mapping[str, str]) -> str:
    if access.fields:
        return _join(access.fields, lang)
    return t["masked_fields"] if access.action.code in MASKED_VIEW_ACTIONS else t["no_fields"]


def _join(labels: Iterable[Label], lang: Lang) -> str:
    return _sep(lang).join(label.text(lang) for label in labels)


def view_model(report: SubjectReport, lang: str = "zh") -> dict[str, Any]:
    """The report as plain strings in one language: what HTML and PDF both show."""
    language = _lang(lang)
    t = TEXT[language]
    waybills = []
    for w in report.waybills:
        rows = [
            {
                "time": beijing_time(a.at),
                "who": _who(a, language, t),
                "action": a.action.text(language) + (t["own_phone"] if a.by_subject_phone else ""),
                "fields": _fields(a, language, t),
                "purpose": a.purpose.text(language),
                "decision": a.decision.text(language),
                "not_granted": a.decision.code not in ("allow", "n/a"),
            }
            for a in w.accesses
        ]
        waybills.append(
            {
                "tracking_number": w.tracking_number,
                "status": w.status.text(language),
                "parties": _join(w.parties, language) or t["unknown_part"],
                "masks": [(m.field.text(language), m.mask) for m in w.masks],
                "rows": rows,
                "truncated": t["accesses_truncated"].format(limit=MAX_ACCESSES)
                if w.accesses_truncated
                else "",
            }
        )
    notes = [
        t["note_staff_shown"] if report.include_staff_names else t["note_staff_hidden"],
        t["note_masked"],
        t["note_denied"],
        t["note_shredded"],
        t["note_audited"].format(event_id=report.audit_event_id),
    ]
    return {
        "lang": language,
        "html_lang": "zh-CN" if language == "zh" else "en",
        "t": t,
        "generated_at": beijing_time(report.generated_at),
        "subject_ref": report.subject_ref,
        "summary": t["summary"].format(waybills=len(report.waybills), accesses=report.access_count),
        "waybills": waybills,
        "waybills_truncated": t["waybills_truncated"].format(limit=MAX_WAYBILLS)
        if report.waybills_truncated
        else "",
        "notes": notes,
    }


# -- HTML ------------------------------------------------------------------------------
@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("waybillguard", "templates"),
        autoescape=True,  # everything in the report is data, none of it markup
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: SubjectReport, lang: str = "zh") -> str:
    return _environment().get_template("subject_report.html.j2").render(view_model(report, lang))


# -- PDF -------------------------------------------------------------------------------
def render_pdf(report: SubjectReport, path: Path, lang: str = "zh") -> None:
    """Write the report as an A4 PDF, one table per waybill, the CJK font embedded.

    Raises FontNotFound (naming the Debian package) when no CJK font is installed."""
    # Imported here: reportlab is only needed for PDFs.
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )
    from reportlab.platypus.flowables import Flowable

    model = view_model(report, lang)
    t: Mapping[str, str] = model["t"]
    font = register_reportlab_cjk_font()
    # wordWrap CJK: break between any two characters, as Chinese text is set.
    body = ParagraphStyle(
        "body", fontName=font, bulletFontName=font, fontSize=9, leading=13, wordWrap="CJK"
    )
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=10)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5, alignment=TA_LEFT)
    head_cell = ParagraphStyle("head_cell", parent=cell, textColor=colors.white)
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=22, spaceAfter=4)
    heading = ParagraphStyle(
        "heading", parent=body, fontSize=11.5, leading=15, spaceBefore=10, spaceAfter=3
    )
    warn = ParagraphStyle("warn", parent=body, textColor=colors.HexColor("#9a3412"))

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(_pdf_escape(text), style)

    story: list[Flowable] = [
        p(t["title"], title),
        p(t["subtitle"], small),
        Spacer(1, 4 * mm),
        p(f"{t['generated_at']}: {model['generated_at']}"),
        p(f"{t['subject_ref']}: {model['subject_ref']}（{t['subject_ref_note']}）", small)
        if model["lang"] == "zh"
        else p(f"{t['subject_ref']}: {model['subject_ref']} ({t['subject_ref_note']})", small),
        Spacer(1, 2 * mm),
        p(model["summary"]),
    ]
    if model["waybills_truncated"]:
        story.append(p(model["waybills_truncated"], warn))
    if not model["waybills"]:
        story.append(p(t["none"]))

    widths = [27 * mm, 40 * mm, 30 * mm, 32 * mm, 27 * mm, 18 * mm]
    columns = [t["time"], t["who"], t["action"], t["fields"], t["purpose"], t["decision"]]
    for w in model["waybills"]:
        block: list[Flowable] = [
            p(f"{t['waybill']} {w['tracking_number']}", heading),
            p(f"{t['status']}: {w['status']}{t['gap']}{t['your_part']}: {w['parties']}"),
        ]
        if w["masks"]:
            masks = t["gap"].join(f"{name}: {mask}" for name, mask in w["masks"])
            block.append(p(f"{t['your_data']}: {masks}"))
        if not w["rows"]:
            block.append(p(t["no_access"], small))
            story.append(KeepTogether(block))
            continue
        data = [[p(c, head_cell) for c in columns]]
        style = [
            ("FONTNAME", (0, 0), (-1, -1), font),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#334155")),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#94a3b8")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]
        for n, row in enumerate(w["rows"], start=1):
            data.append(
                [
                    p(row[k], cell)
                    for k in ("time", "who", "action", "fields", "purpose", "decision")
                ]
            )
            if row["not_granted"]:
                style.append(("BACKGROUND", (0, n), (-1, n), colors.HexColor("#fee2e2")))
            elif n % 2 == 0:
                style.append(("BACKGROUND", (0, n), (-1, n), colors.HexColor("#f1f5f9")))
        table = Table(data, colWidths=widths, repeatRows=1)
        table.setStyle(TableStyle(style))
        block.append(Spacer(1, 1.5 * mm))
        story.append(KeepTogether(block))
        story.append(table)
        if w["truncated"]:
            story.append(p(w["truncated"], warn))

    story += [Spacer(1, 6 * mm), p(t["about"], heading)]
    # "·", not "•": the WenQuanYi fonts have no glyph for U+2022.
    story += [p(f"· {note}", small) for note in model["notes"]]

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(font, 7.5)
        canvas.setFillColor(colors.HexColor("#64748b"))
        canvas.drawString(18 * mm, 10 * mm, f"{t['title']} · {report.subject_ref[:16]}…")
        canvas.drawRightString(
            A4[0] - 18 * mm, 10 * mm, t["page"].format(page=canvas.getPageNumber())
        )
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        # Document metadata: the title and the subject reference, never the phone.
        title=t["title"],
        subject=report.subject_ref,
        author="waybillguard",
        creator="waybillguard",
        lang="zh-CN" if model["lang"] == "zh" else "en",
        # Else every page names Helvetica, a font not embedded, though nothing uses it.
        initialFontName=font,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def _pdf_escape(text: str) -> str:
    """reportlab paragraphs read a little markup: escape the data so it stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
