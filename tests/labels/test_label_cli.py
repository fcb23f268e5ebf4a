"""`waybillguard label` through the real console script: the virtual-number pool feeds
the label's phone line, codes decode from the rasterised PDF, nothing personal leaks."""

from __future__ import annotations

import json
import re
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


def test_label_printing_is_scoped_for_logged_in_users(tmp_path: Path) -> None:
    """A logged-in principal prints only in a printing role and only their own station's
    waybills; the local operator (who holds the keyring) prints anything."""
    import pyotp

    home = tmp_path / "home"
    data = tmp_path / "o.jsonl"
    for args in (("init",), ("synth", "--count", "20", "--seed", "4", "--out", str(data)),
                 ("import", str(data)), ("numbers", "pool", "add", "17000001234")):  # fmt: skip
        run_cli(*args, home=home, check=True)
    views = json.loads(run_cli("list", "--limit", "20", "--json", home=home, check=True).stdout)
    own, other = (
        views[0],
        next(v for v in views if v["destination_adcode"] != views[0]["destination_adcode"]),
    )
    run_cli("units", "add", "HQ", "--kind", "hq", "--name", "总部", home=home, check=True)
    run_cli("units", "add", "S1", "--kind", "station", "--name", "一号", "--parent", "HQ",
            "--covers", own["destination_adcode"], home=home, check=True)  # fmt: skip
    secrets = {}
    for user, role in (("clerk1", "station_clerk"), ("cs1", "cs_agent")):
        unit = "S1" if role == "station_clerk" else "HQ"
        out = json.loads(run_cli("users", "add", user, "--role", role, "--unit", unit,
                                 "--password-stdin", "--json", home=home,
                                 input_text="a long pass phrase\n", check=True).stdout)  # fmt: skip
        secrets[user] = out["totp_secret"]

    def as_user(user: str, *args: str) -> subprocess.CompletedProcess[str]:
        run_cli("login", "--user", user, "--password-stdin", "--totp",
                pyotp.TOTP(secrets[user]).now(), home=home,
                input_text="a long pass phrase\n", check=True)  # fmt: skip
        return run_cli(*args, home=home)

    ok = as_user("clerk1", "label", own["tracking_number"], "--out", str(tmp_path / "a.pdf"))
    assert ok.returncode == 0, ok.stderr
    result = run_cli("label", other["tracking_number"], "--out", str(tmp_path / "b.pdf"), home=home)
    assert result.returncode == 1 and not (tmp_path / "b.pdf").exists()
    refused = as_user("cs1", "label", own["tracking_number"], "--out", str(tmp_path / "c.pdf"))
    assert refused.returncode == 1 and not (tmp_path / "c.pdf").exists()
    run_cli("logout", home=home, check=True)
    assert run_cli("label", other["tracking_number"], "--out", str(tmp_path / "d.pdf"),
                   home=home).returncode == 0  # fmt: skip


def test_a_large_zpl_batch_on_two_processes(tmp_path: Path) -> None:
    """`label --processes 2`: a batch over the pool threshold is rendered by two
    processes into one stream: every label, in order, every recalled glyph defined."""
    home = tmp_path / "home"
    data = tmp_path / "o.jsonl"
    for args in (("init",), ("synth", "--count", "2100", "--seed", "9", "--out", str(data)),
                 ("import", str(data)),
                 ("numbers", "pool", "add", "17000001234", "--extensions", "3000")):  # fmt: skip
        run_cli(*args, home=home, check=True)
    numbers = [w["tracking_number"] for w in json.loads(
        run_cli("list", "--limit", "2100", "--json", home=home, check=True).stdout)]  # fmt: skip
    assert len(numbers) == 2100
    wanted = tmp_path / "numbers.txt"
    wanted.write_text("\n".join(numbers) + "\n", encoding="utf-8")
    zpl = tmp_path / "batch.zpl"
    bad = run_cli("label", "--from", str(wanted), "--format", "zpl", "--processes", "0",
                  "--out", str(zpl), home=home)  # fmt: skip
    assert bad.returncode == 2 and "--processes" in bad.stderr
    assert not zpl.exists()
    run_cli("label", "--from", str(wanted), "--format", "zpl", "--processes", "2",
            "--out", str(zpl), home=home, check=True, timeout=600)  # fmt: skip
    body = zpl.read_text(encoding="utf-8")
    printed = re.findall(r"\^BCN,[^\^]*\^FD([A-Z0-9]+)\^FS", body)
    assert printed == numbers
    defined = set(re.findall(r"~DGR:(\w+)\.GRF", body))
    recalled = set(re.findall(r"\^XGR:(\w+)\.GRF", body))
    assert recalled and recalled <= defined
    needles = set().union(*(row_pii(r) for r in seeded_rows(data)))
    assert scan_bytes(body.encode("utf-8"), needles) == []
