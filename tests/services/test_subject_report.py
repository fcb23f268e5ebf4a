"""The data-subject report (PIPL right to know): the right waybills and accesses, staff
names hidden unless configured, no personal data in HTML or PDF, Chinese embedded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from reportlab.pdfbase import pdfmetrics

from tests.conftest import make_settings, scan_bytes, scan_text, seeded_pii, seeded_rows
from waybillguard.adapters import fonts
from waybillguard.domain.errors import FieldError
from waybillguard.domain.phone import parse_phone
from waybillguard.services import audit, lookup, shredding, subject_report, waybills
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

CS = Actor("wang.cs", "cs_agent", "SH-PD-01")
COURIER = Actor("li.courier", "courier", "SH-PD-02")
CLERK = Actor("zhao.clerk", "station_clerk", "JS-NJ-09")
SECURITY = Actor("zhou.sec", "security", "HQ")
STRANGER = Actor("eve.other", "cs_agent", "ZJ-HZ-03")
STAFF_NAMES = ("wang.cs", "li.courier", "zhao.clerk", "zhou.sec", "eve.other")


@dataclass
class Scenario:
    data: Path
    phone: str
    as_recipient: str  # tracking numbers
    as_sender: str
    shredded: str
    other: str

    def needles(self) -> set[str]:
        """Every seeded personal value, plus the subject's number in the forms a reader
        (or a careless template) would write it."""
        parsed = parse_phone(self.phone, "phone")
        return seeded_pii(self.data) | {self.phone, parsed.national, parsed.e164}


def _scenario(app: App, tmp_path: Path) -> Scenario:
    """60 synthetic waybills; the recipient of row 2 also sends row 7 and receives row 12.
    Accesses to those and to someone else's waybill (row 20)."""
    data = tmp_path / "orders.jsonl"
    write_synth(data, 60, seed=71)
    rows = seeded_rows(data)
    phone = rows[2]["recipient"]["phone"]
    rows[7]["sender"]["phone"] = phone
    rows[12]["recipient"]["phone"] = phone
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    assert import_file(app, data, workers=1).imported == 60
    numbers = {w.order_ref: w.tracking_number for w in app.store.page(100)}
    s = Scenario(
        data,
        phone,
        numbers[rows[2]["order_ref"]],
        numbers[rows[7]["order_ref"]],
        numbers[rows[12]["order_ref"]],
        numbers[rows[20]["order_ref"]],
    )

    found = lookup.by_phone(app, phone, actor=CS)
    assert {w["tracking_number"] for w in found} == {s.as_recipient, s.as_sender, s.shredded}
    waybills.show(app, s.as_recipient, actor=COURIER)
    emit(
        app,
        COURIER,
        "reveal",
        waybills=[s.as_recipient],
        fields=["recipient.phone", "recipient.address"],
        purpose="delivery",
    )
    emit(
        app,
        CLERK,
        "reveal",
        waybills=[s.as_recipient],
        fields=["recipient.phone"],
        purpose="ticket:T123",
        decision="deny",
        rule="quota.daily",
    )
    emit(
        app,
        SECURITY,
        "export.request",
        waybills=[s.as_sender],
        fields=["sender.name", "sender.phone"],
        purpose="legal:GA-2024-17",
        decision="approval_required",
    )
    waybills.show(app, s.other, actor=STRANGER)
    emit(app, STRANGER, "reveal", waybills=[s.other], fields=["recipient.phone"], purpose="claim")
    shredding.shred(app, [s.shredded])
    return s


def _actions(entry: subject_report.WaybillAccesses) -> list[tuple[str, str]]:
    return [(a.action.code, a.decision.code) for a in entry.accesses]


def test_report_lists_the_subjects_waybills_and_every_access(app: App, tmp_path: Path) -> None:
    s = _scenario(app, tmp_path)
    report = subject_report.build_report(app, s.phone, actor=SECURITY)

    by_number = {w.tracking_number: w for w in report.waybills}
    # The shredded waybill no longer links to the number (its blind indexes are gone).
    assert set(by_number) == {s.as_recipient, s.as_sender}
    received, sent = by_number[s.as_recipient], by_number[s.as_sender]
    assert [p.code for p in received.parties] == ["recipient"]
    assert [p.code for p in sent.parties] == ["sender"]
    stored = app.store.get(s.as_recipient)
    assert stored is not None
    assert [(m.field.code, m.mask) for m in received.masks] == [
        (f"recipient.{a}", stored.masks[f"recipient.{a}"]) for a in ("name", "phone", "address")
    ]
    assert [m.field.zh for m in sent.masks] == ["寄件人姓名", "寄件人电话", "寄件人地址"]

    assert _actions(received) == [
        ("search", "allow"),
        ("waybill.show", "allow"),
        ("reveal", "allow"),
        ("reveal", "deny"),
    ]
    assert _actions(sent) == [("search", "allow"), ("export.request", "approval_required")]
    search, show, reveal, denied = received.accesses
    assert search.by_subject_phone and not show.by_subject_phone
    assert (search.role.zh, search.unit) == ("客服", "SH-PD-01")
    assert [f.zh for f in reveal.fields] == ["收件人电话", "收件人地址"]
    assert (reveal.purpose.zh, reveal.action.zh) == ("派送", "查看明文（解密）")
    assert (denied.purpose.zh, denied.decision.zh) == ("客服工单 T123", "拒绝")
    assert sent.accesses[1].purpose.zh.endswith("GA-2024-17")
    # Someone else's waybill and who looked at it stay out.
    assert all(a.unit != STRANGER.unit for w in report.waybills for a in w.accesses)
    assert report.access_count == 6 and not report.waybills_truncated
    # Staff names are hidden unless configured.
    assert all(a.staff is None for w in report.waybills for a in w.accesses)
    html = subject_report.render_html(report)
    assert "客服（cs_agent） @ SH-PD-01" in html
    assert not [name for name in STAFF_NAMES if name in html]

    # The report itself is audited: the blind-index reference and the waybills, no PII.
    logged = audit.by_waybill(app, s.as_recipient)[-1]
    assert logged["action"] == "subject.report" and logged["event_id"] == report.audit_event_id
    assert logged["subject_refs"] == [report.subject_ref]
    assert set(logged["waybills"]) == {s.as_recipient, s.as_sender}
    assert logged["detail"]["accesses"] == 6 and logged["actor"] == SECURITY.name
    assert scan_text(json.dumps(logged, ensure_ascii=False), s.needles()) == []

    # The next report shows that one among the accesses: nothing is left out.
    again = subject_report.build_report(app, s.phone, include_staff_names=True)
    latest = {w.tracking_number: w for w in again.waybills}[s.as_recipient].accesses[-1]
    assert (latest.action.zh, latest.staff) == ("生成个人信息处理记录报告", SECURITY.name)
    assert {a.staff for w in again.waybills for a in w.accesses} >= {CS.name, COURIER.name}
    assert "wang.cs · 客服（cs_agent） @ SH-PD-01" in subject_report.render_html(again)


def test_invalid_or_unknown_phone(app: App, tmp_path: Path) -> None:
    before = audit.status(app)["pending"]
    with pytest.raises(FieldError) as info:
        subject_report.build_report(app, "12345")
    assert info.value.field == "phone" and "12345" not in str(info.value)
    assert audit.status(app)["pending"] == before  # nothing audited, nothing built

    empty = subject_report.build_report(app, "13912345678")
    assert empty.waybills == () and empty.access_count == 0
    assert "没有找到与该电话号码关联的运单" in subject_report.render_html(empty)
    assert "No waybill is linked" in subject_report.render_html(empty, lang="en")
    with pytest.raises(ValueError, match="lang"):
        subject_report.render_html(empty, lang="fr")


def test_output_names_never_carry_the_phone() -> None:
    subject_report.check_output_names("13912345678", [Path("report.pdf"), Path("r-2024.html")])
    for name in ("139-1234-5678.pdf", "r_13912345678.html", "x１３９１２３４５６７８.pdf"):
        with pytest.raises(FieldError, match="output file name"):
            subject_report.check_output_names("+86 139 1234 5678", [Path(name)])


def _pdf_text_and_metadata(path: Path) -> tuple[str, str]:
    pdf = pdfium.PdfDocument(path)
    try:
        text = "\n".join(page.get_textpage().get_text_range() for page in pdf)
        return text, json.dumps(pdf.get_metadata_dict(), ensure_ascii=False)
    finally:
        pdf.close()


def _render_first_page(path: Path, png: Path) -> Any:
    pdf = pdfium.PdfDocument(path)
    try:
        image = pdf[0].render(scale=1.5).to_pil()
    finally:
        pdf.close()
    image.save(png)
    return image


def test_html_and_pdf_carry_no_personal_data_and_embed_the_font(app: App, tmp_path: Path) -> None:
    s = _scenario(app, tmp_path)
    report = subject_report.build_report(app, s.phone)
    needles = s.needles()
    for lang, title in (("zh", "个人信息处理记录报告"), ("en", "Personal data processing record")):
        html = subject_report.render_html(report, lang=lang)
        assert title in html and s.as_recipient in html
        assert scan_text(html, needles) == []

        pdf_path = tmp_path / f"report-{lang}.pdf"
        subject_report.render_pdf(report, pdf_path, lang=lang)
        blob = pdf_path.read_bytes()
        assert blob.startswith(b"%PDF-") and b"/FontFile2" in blob
        assert b"/Helvetica" not in blob  # every glyph comes from the embedded font
        assert scan_bytes(blob, needles) == []
        text, metadata = _pdf_text_and_metadata(pdf_path)
        assert title in text and s.as_sender in text and report.subject_ref in metadata
        assert scan_text(text, needles) == [] and scan_text(metadata, needles) == []

        image = _render_first_page(pdf_path, tmp_path / f"page1-{lang}.png")
        dark = sum(image.convert("L").histogram()[:128])
        assert dark > 5000, "the first page rasterises blank"

    # No tofu: the embedded font has a glyph for every character the PDF draws.
    font = pdfmetrics.getFont(fonts.register_reportlab_cjk_font())
    for lang in subject_report.LANGS:
        drawn = json.dumps(subject_report.view_model(report, lang), ensure_ascii=False)
        missing = {ch for ch in drawn if ord(ch) not in font.face.charToGlyph}
        assert missing == set(), f"no glyph for {sorted(missing)}"


def test_staff_names_setting_comes_from_the_config_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert subject_report.staff_names_configured(settings) is False
    settings.config_path.write_text('[tracking]\nprefix = "WG"\n', encoding="utf-8")
    assert subject_report.staff_names_configured(settings) is False
    with settings.config_path.open("a", encoding="utf-8") as handle:
        handle.write("[subject_report]\ninclude_staff_names = true\n")
    assert subject_report.staff_names_configured(settings) is True


def test_missing_font_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fonts.FONT_ENV, raising=False)
    monkeypatch.setattr(fonts, "CANDIDATES", ())
    with pytest.raises(fonts.FontNotFound, match="fonts-wqy-zenhei"):
        fonts.cjk_font_path()
    monkeypatch.setenv(fonts.FONT_ENV, "/nonexistent/font.ttc#0")
    with pytest.raises(fonts.FontNotFound, match=fonts.FONT_ENV):
        fonts.cjk_font()
