"""Hostile and broken input: clear errors naming row, field and reason; nothing
half-stored; nothing already stored lost; no personal data in any output."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli
from waybillguard.config import DATABASE_FILE

GOOD = {
    "order_ref": "ORD-1",
    "merchant": "shop-0001",
    "sender": {
        "name": "欧阳娜娜",
        "phone": "13912345678",
        "address": "广东省深圳市南山区科技园路12号3栋502室",
    },
    "recipient": {
        "name": "张伟",
        "phone": "13698765432",
        "address": "北京市朝阳区建国路88号1单元1101室",
    },
    "parcel": {"weight_g": 1200, "category": "数码"},
}
SECRET_VALUES = ["欧阳娜娜", "13912345678", "3栋502室", "13698765432", "1单元1101室", "张伟"]


def _with(**changes: object) -> dict[str, object]:
    row = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        target = row
        *parents, leaf = dotted.split("__")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return row


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "h"
    run_cli("init", home=h, check=True)
    return h


def _count(home: Path) -> int:
    with sqlite3.connect(home / DATABASE_FILE) as db:
        return int(db.execute("SELECT count(*) FROM waybills").fetchone()[0])


def test_injection_and_junk_values_are_rejected_with_row_field_reason(
    home: Path, tmp_path: Path
) -> None:
    rows = [
        _with(order_ref="OK-1"),
        _with(order_ref="X-2", recipient__name="Robert'); DROP TABLE waybills;--"),
        _with(order_ref="X-3", recipient__address="<script>alert(1)</script>"),
        _with(order_ref="X-4", sender__phone="13912345678' OR '1'='1"),
        _with(order_ref="X-5", recipient__name="张\u202e伟"),
        _with(order_ref="X-6", parcel__weight_g="1e9"),
        _with(order_ref="X-7", parcel__category='=HYPERLINK("http://x")'),
        _with(order_ref="'; DELETE FROM waybills; --"),
        _with(order_ref="X-9", recipient__phone="138****5678"),
        _with(order_ref="X-10", recipient__address="火星省某某市某某区1号"),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    result = run_cli("import", str(path), "--json", home=home)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["imported"], report["rejected"]) == (1, 9)
    errors = Path(report["errors_file"]).read_text(encoding="utf-8").splitlines()
    assert errors[0] == "row,field,reason"
    fields = {int(line.split(",")[0]): line.split(",")[1] for line in errors[1:]}
    assert fields == {
        2: "recipient.name",
        3: "recipient.address",
        4: "sender.phone",
        5: "recipient.name",
        6: "parcel.weight_g",
        7: "parcel.category",
        8: "order_ref",
        9: "recipient.phone",
        10: "recipient.address",
    }
    everything = result.stdout + result.stderr + "\n".join(errors)
    for value in [*SECRET_VALUES, "DROP TABLE", "<script>", "HYPERLINK"]:
        assert value not in everything
    assert _count(home) == 1


def test_broken_files(home: Path, tmp_path: Path) -> None:
    # 400 good rows first: the encoding sniffer (first 64 KiB) sees clean UTF-8.
    good = [
        json.dumps(_with(order_ref=f"ORD-{i}"), ensure_ascii=False).encode("utf-8")
        for i in range(400)
    ]
    huge = b'{"order_ref": "' + b"A" * 2_000_000 + b'"}'
    broken = [
        b"\xff\xfe\x00garbage",
        huge,
        b"[1, 2, 3]",
        b'{"order_ref": "ORD-X", "sender": "not an object"}',
        b"\x00\x00\x00",
        json.dumps(_with(order_ref="ORD-GBK"), ensure_ascii=False).encode("gbk"),
    ]
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(good + broken) + b"\n")
    result = run_cli("import", str(path), "--json", home=home)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == 400 and report["rejected"] == 6
    errors = Path(report["errors_file"]).read_text(encoding="utf-8")
    assert len(errors) < 2000  # the 2 MB line is not echoed
    rows = [int(line.split(",")[0]) for line in errors.splitlines()[1:]]
    assert rows == list(range(401, 407))
    assert "not valid UTF-8" in errors and "longer than" in errors
    assert _count(home) == 400


def test_unknown_format_and_missing_columns(home: Path, tmp_path: Path) -> None:
    txt = tmp_path / "orders.txt"
    txt.write_text("hello", encoding="utf-8")
    result = run_cli("import", str(txt), home=home)
    assert result.returncode == 1 and "error" in result.stderr
    csv_path = tmp_path / "orders.csv"
    csv_path.write_text("订单号,收件人\nA1,张伟\n", encoding="utf-8")
    result = run_cli("import", str(csv_path), home=home)
    assert result.returncode == 1
    assert "张伟" not in result.stderr + result.stdout
    assert _count(home) == 0


def test_strict_import_keeps_what_was_stored_before(home: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_text(
        json.dumps(_with(order_ref="KEEP-1"), ensure_ascii=False) + "\n", encoding="utf-8"
    )
    run_cli("import", str(first), home=home, check=True)
    second = tmp_path / "second.jsonl"
    second.write_text(
        json.dumps(_with(order_ref="NEW-1"), ensure_ascii=False)
        + "\n"
        + json.dumps(_with(order_ref="NEW-2", sender__phone="000"), ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    result = run_cli("import", str(second), "--strict", "--json", home=home)
    assert result.returncode == 1
    assert json.loads(result.stdout)["rejected"] == 1
    assert _count(home) == 1  # NEW-1 not stored, KEEP-1 not lost


def test_lookup_reads_pii_from_stdin_only(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    run_cli("import", str(path), home=home, check=True)
    result = run_cli(
        "lookup", "--json", "--with-name", home=home, input_text="139 1234 5678\n欧阳娜娜\n"
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [w["order_ref"] for w in found] == ["ORD-1"]
    assert found[0]["sender"]["name"] == "欧阳**"
    assert found[0]["sender"]["phone"] == "139******78"
    for value in SECRET_VALUES:
        assert value not in result.stdout
    bad = run_cli("lookup", home=home, input_text="12345\n")
    assert bad.returncode == 2 and "12345" not in bad.stderr
