"""`waybillguard label` through the real console script: the virtual-number pool feeds
the label's phone line, codes decode from the rasterised PDF, nothing personal leaks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import zxingcpp
from PIL import Image

from tests.conftest import row_pii, run_cli, scan_bytes, seeded_rows


def test_label_command_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = tmp_path / "o.jsonl"
    for args in (("init",), ("synth", "--count", "20", "--seed", "4", "--out", str(data)),
                 ("import", str(data)), ("numbers", "pool", "add", "17000001234")):  # fmt: skip
        run_cli(*args, home=home, check=True)
    numbers = [w["tracking_number"] for w in json.loads(
        run_cli("list", "--limit", "3", "--json", home=home, check=True).stdout)]  # fmt: skip
    pdf = tmp_path / "labels.pdf"
    out = json.loads(run_cli("label", *numbers, "--format", "pdf", "--out", str(pdf), "--json",
                             home=home, check=True).stdout)  # fmt: skip
    assert out["count"] == 3 and out["audit_events"]
    subprocess.run(["pdftoppm", "-r", "203", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == 3
    for number, page in zip(numbers, pages, strict=True):
        decoded = {r.format.name: r.text for r in zxingcpp.read_barcodes(Image.open(page))}
        assert decoded.get("Code128") == number
        assert decoded.get("QRCode", "").startswith("wgq1.")
    zpl = tmp_path / "l.zpl"
    run_cli("label", *numbers, "--format", "zpl", "--out", str(zpl), home=home, check=True)
    body = zpl.read_bytes()
    assert all(n.encode() in body for n in numbers)
    needles = set().union(*(row_pii(r) for r in seeded_rows(data)))
    assert scan_bytes(body, needles) == []
    assert scan_bytes(pdf.read_bytes(), needles) == []
