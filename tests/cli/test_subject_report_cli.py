"""`waybillguard audit subject-report`: the phone comes from stdin only, an invalid one
exits 1 naming the field, and neither the files nor the terminal carry the number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_settings, run_cli, scan_bytes, scan_text, seeded_pii, seeded_rows
from waybillguard.domain.phone import parse_phone
from waybillguard.services import audit, waybills
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import initialise, open_app
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

COURIER = Actor("li.courier", "courier", "SH-PD-02")


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, str, str, set[str]]:
    """A home with 40 waybills, one of them viewed and revealed; returns the home, the
    recipient's phone, that waybill and every seeded personal value."""
    home = tmp_path / "home"
    settings = make_settings(home)
    initialise(settings)
    data = tmp_path / "orders.jsonl"
    write_synth(data, 40, seed=83)
    row = seeded_rows(data)[4]
    with open_app(settings) as app:
        import_file(app, data, workers=1)
        number = next(
            w.tracking_number for w in app.store.page(40) if w.order_ref == row["order_ref"]
        )
        waybills.show(app, number, actor=COURIER)
        emit(
            app,
            COURIER,
            "reveal",
            waybills=[number],
            fields=["recipient.phone"],
            purpose="delivery",
        )
    phone = row["recipient"]["phone"]
    parsed = parse_phone(phone, "phone")
    return home, phone, number, seeded_pii(data) | {phone, parsed.national, parsed.e164}


def test_subject_report_writes_html_and_pdf(
    seeded: tuple[Path, str, str, set[str]], tmp_path: Path
) -> None:
    home, phone, number, needles = seeded
    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    result = run_cli(
        "audit",
        "subject-report",
        "--phone-stdin",
        "--out-html",
        str(html),
        "--out-pdf",
        str(pdf),
        "--json",
        home=home,
        input_text=phone + "\n",
        check=True,
    )
    summary = json.loads(result.stdout)
    assert summary["waybills"] == 1 and summary["accesses"] == 2
    assert summary["html"] == str(html) and summary["pdf"] == str(pdf)
    assert len(summary["subject_ref"]) in (32, 64)
    assert scan_text(result.stdout + result.stderr, needles) == []
    page = html.read_text(encoding="utf-8")
    assert number in page and "快递员（courier） @ SH-PD-02" in page and "li.courier" not in page
    assert scan_text(page, needles) == []
    blob = pdf.read_bytes()
    assert blob.startswith(b"%PDF-") and b"/FontFile2" in blob
    assert scan_bytes(blob, needles) == []
    assert not list(tmp_path.glob(".*.tmp"))

    with open_app(make_settings(home)) as app:
        logged = audit.by_waybill(app, number)[-1]
    assert logged["action"] == "subject.report"
    assert logged["subject_refs"] == [summary["subject_ref"]]

    # English, HTML only; the human summary names the files, never the number.
    english = tmp_path / "report-en.html"
    result = run_cli(
        "audit",
        "subject-report",
        "--phone-stdin",
        "--out-html",
        str(english),
        "--lang",
        "en",
        home=home,
        input_text=phone,
        # Wide enough that the path is not wrapped at 80 columns (a pytest-xdist worker's
        # temporary directory made it 82 characters long).
        env_extra={"COLUMNS": "400"},
        check=True,
    )
    assert str(english) in result.stdout and scan_text(result.stdout, needles) == []
    assert "Personal data processing record" in english.read_text(encoding="utf-8")


def test_staff_names_only_when_configured(
    seeded: tuple[Path, str, str, set[str]], tmp_path: Path
) -> None:
    home, phone, _, _ = seeded
    with (home / "config.toml").open("a", encoding="utf-8") as handle:
        handle.write("\n[subject_report]\ninclude_staff_names = true\n")
    html = tmp_path / "named.html"
    run_cli(
        "audit",
        "subject-report",
        "--phone-stdin",
        "--out-html",
        str(html),
        home=home,
        input_text=phone + "\n",
        check=True,
    )
    assert "li.courier · 快递员（courier） @ SH-PD-02" in html.read_text(encoding="utf-8")


def test_invalid_phone_and_usage_errors(
    seeded: tuple[Path, str, str, set[str]], tmp_path: Path
) -> None:
    home, phone, _, _ = seeded
    html = tmp_path / "r.html"
    bad = run_cli(
        "audit", "subject-report", "--phone-stdin", "--out-html", str(html), "--json",
        home=home, input_text="12345 678\n",
    )  # fmt: skip
    assert bad.returncode == 1
    assert "phone:" in bad.stderr and "12345" not in bad.stderr + bad.stdout
    assert json.loads(bad.stdout)["error"].startswith("phone:")
    assert not html.exists()

    # The number is never an argument: without --phone-stdin nothing is read or written.
    usage = run_cli("audit", "subject-report", "--out-html", str(html), home=home)
    assert usage.returncode == 2 and "--phone-stdin" in usage.stderr
    assert run_cli("audit", "subject-report", "--phone-stdin", home=home).returncode == 2
    assert (
        run_cli("audit", "subject-report", phone, "--out-html", str(html), home=home).returncode
        == 2
    )

    named = tmp_path / f"report-{phone}.pdf"
    refused = run_cli(
        "audit", "subject-report", "--phone-stdin", "--out-pdf", str(named),
        home=home, input_text=phone + "\n",
    )  # fmt: skip
    assert refused.returncode == 1 and "output file name" in refused.stderr
    assert not named.exists() and not html.exists()
