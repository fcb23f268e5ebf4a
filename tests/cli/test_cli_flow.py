"""The reviewer's path through the CLI, as separate processes on a fresh home."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import (
    CLI,
    database_files,
    run_cli,
    scan_bytes,
    scan_text,
    seeded_pii,
)
from waybillguard.config import DATABASE_FILE


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("cli") / "home"
    data = home.parent / "orders.jsonl"
    run_cli("init", home=home, check=True)
    run_cli("synth", "--count", "5000", "--seed", "7", "--out", str(data), check=True)
    result = run_cli("import", str(data), "--json", home=home)
    return {"home": home, "data": data, "import": result}


def test_import_json_contract(flow: dict[str, object]) -> None:
    result = flow["import"]
    assert isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == 5000 and report["rejected"] == 0
    assert report["errors_file"] is None


def test_list_and_show_are_masked(flow: dict[str, object]) -> None:
    home = flow["home"]
    assert isinstance(home, Path)
    listed = json.loads(run_cli("list", "--limit", "5", "--json", home=home, check=True).stdout)
    assert len(listed) == 5
    number = listed[0]["tracking_number"]
    shown = json.loads(run_cli("show", number, "--json", home=home, check=True).stdout)
    for key in (
        "tracking_number",
        "status",
        "sender",
        "recipient",
        "origin_adcode",
        "destination_adcode",
        "origin_station",
        "destination_station",
    ):
        assert key in shown
    phone = shown["recipient"]["phone"]
    assert sum(c == "*" for c in phone) >= 6
    assert shown["recipient"]["name"].endswith("**")
    assert not any(c.isdigit() for c in shown["recipient"]["address"])
    assert len(shown["origin_adcode"]) == 6 and shown["origin_adcode"].isdigit()


def test_tracking_verify(flow: dict[str, object]) -> None:
    home = flow["home"]
    assert isinstance(home, Path)
    listed = json.loads(run_cli("list", "--limit", "3", "--json", home=home, check=True).stdout)
    number = listed[0]["tracking_number"]
    assert run_cli("tracking", "verify", number, home=home).returncode == 0
    altered = number[:8] + str((int(number[8]) + 1) % 10) + number[9:]
    assert run_cli("tracking", "verify", altered, home=home).returncode == 1
    rng = random.Random(7)
    guesses = "\n".join(f"WG{rng.randrange(10**13):013d}" for _ in range(1000))
    script = (
        "import sys\nfrom waybillguard.config import load_settings\n"
        "from waybillguard.services.app import open_app\n"
        "from waybillguard.services import tracking\n"
        "app = open_app(load_settings())\n"
        "print(sum(tracking.verify(app, n)['valid'] for n in sys.stdin.read().split()))\n"
    )
    env = {**os.environ, "WAYBILLGUARD_HOME": str(home)}
    out = subprocess.run(
        [CLI[0], "-c", script], input=guesses, capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "0"


def test_database_bytes_hold_no_seeded_pii(flow: dict[str, object]) -> None:
    home, data = flow["home"], flow["data"]
    assert isinstance(home, Path) and isinstance(data, Path)
    blob = b"".join(p.read_bytes() for p in database_files(home))
    assert len(blob) > 1_000_000
    assert scan_bytes(blob, seeded_pii(data)) == []


def test_outputs_hold_no_seeded_pii(flow: dict[str, object]) -> None:
    home, data = flow["home"], flow["data"]
    assert isinstance(home, Path) and isinstance(data, Path)
    needles = seeded_pii(data)
    outputs = [
        run_cli("list", "--limit", "10000", "--json", home=home).stdout,
        run_cli("list", "--limit", "50", home=home).stdout,
        flow["import"].stdout + flow["import"].stderr,  # type: ignore[attr-defined]
    ]
    for text in outputs:
        assert scan_text(text, needles) == []


def test_init_is_idempotent_and_keeps_keys(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first = json.loads(run_cli("init", "--json", home=home, check=True).stdout)
    keyring = home / "keyring.json"
    content = keyring.read_bytes()
    second = json.loads(run_cli("init", "--json", home=home, check=True).stdout)
    assert first["created_keyring"] is True and second["created_keyring"] is False
    assert keyring.read_bytes() == content
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_home_option_and_env(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run_cli("--home", str(a), "init", check=True)
    run_cli("init", "--home", str(b), check=True)
    assert (a / "keyring.json").exists() and (b / "keyring.json").exists()
    assert run_cli("list", home=tmp_path / "never").returncode == 2


def test_commands_refuse_an_uninitialised_home(tmp_path: Path) -> None:
    result = run_cli("show", "WG0000000000000", home=tmp_path / "none")
    assert result.returncode == 2 and "waybillguard init" in result.stderr


def test_event_command_refuses_illegal_transitions(tmp_path: Path) -> None:
    home = tmp_path / "h"
    data = tmp_path / "one.jsonl"
    run_cli("init", home=home, check=True)
    run_cli("synth", "--count", "2", "--seed", "1", "--out", str(data), check=True)
    run_cli("import", str(data), home=home, check=True)
    number = json.loads(run_cli("list", "--json", home=home, check=True).stdout)[0][
        "tracking_number"
    ]
    assert run_cli("event", number, "cancelled", home=home).returncode == 0
    refused = run_cli("event", number, "delivered", "--json", home=home)
    assert refused.returncode == 1
    assert "cancelled waybill cannot become delivered" in refused.stderr
    assert run_cli("event", number, "teleported", home=home).returncode == 2


def test_gbk_csv_with_chinese_headers(tmp_path: Path) -> None:
    home = tmp_path / "h"
    data = tmp_path / "excel.csv"
    run_cli("init", home=home, check=True)
    run_cli(
        "synth",
        "--count",
        "300",
        "--seed",
        "5",
        "--out",
        str(data),
        "--headers",
        "zh",
        "--encoding",
        "gbk",
        check=True,
    )
    raw = data.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "收件人电话".encode("gbk") in raw
    result = run_cli("import", str(data), "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 300


def test_kill_9_mid_import_then_rerun(tmp_path: Path) -> None:
    home = tmp_path / "h"
    data = tmp_path / "big.jsonl"
    rows = 40_000
    run_cli("init", home=home, check=True)
    run_cli("synth", "--count", str(rows), "--seed", "9", "--out", str(data), check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    env["WAYBILLGUARD_HOME"] = str(home)
    proc = subprocess.Popen(
        [*CLI, "import", str(data), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    db_path = home / DATABASE_FILE
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db_path, timeout=1) as db:
                stored = db.execute("SELECT count(*) FROM waybills").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if stored >= 4000:
            break
    assert proc.poll() is None, "import finished before it could be killed; raise the row count"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db_path) as db:
        partial = db.execute("SELECT count(*) FROM waybills").fetchone()[0]
        assert 0 < partial < rows
        assert partial % 2000 == 0  # whole chunks only
    result = run_cli("import", str(data), "--json", home=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == rows - partial and report["duplicates"] == partial
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM waybills").fetchone()[0] == rows
        assert (
            db.execute(
                "SELECT count(DISTINCT merchant || '/' || order_ref) FROM waybills"
            ).fetchone()[0]
            == rows
        )
        assert (
            db.execute(
                "SELECT count(*) FROM waybills"
                " WHERE wrapped_dek IS NULL OR ct_recipient_address IS NULL"
            ).fetchone()[0]
            == 0
        )


def test_shred_cli_and_file_scan(tmp_path: Path) -> None:
    home = tmp_path / "h"
    data = tmp_path / "few.jsonl"
    run_cli("init", home=home, check=True)
    run_cli("synth", "--count", "20", "--seed", "4", "--out", str(data), check=True)
    run_cli("import", str(data), home=home, check=True)
    number = json.loads(run_cli("list", "--json", home=home, check=True).stdout)[0][
        "tracking_number"
    ]
    with sqlite3.connect(home / DATABASE_FILE) as db:
        wrapped = db.execute(
            "SELECT wrapped_dek FROM waybills WHERE tracking_number=?", (number,)
        ).fetchone()[0]
    result = run_cli("shred", number, "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["shredded"] == [number]
    blob = b"".join(p.read_bytes() for p in database_files(home))
    assert wrapped not in blob
    shown = json.loads(run_cli("show", number, "--json", home=home, check=True).stdout)
    assert shown["shredded"] is True


def test_demo_tour_runs_and_is_idempotent(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    first = run_cli("demo", "--bench-count", "1000", home=home)
    assert first.returncode == 0, first.stderr
    for marker in ("imported 导入 5000 new", "INVALID", "verify → intact", "waybills/s"):
        assert marker in first.stdout
    second = run_cli("demo", "--bench-count", "1000", home=home)
    assert second.returncode == 0, second.stderr
    assert "imported 导入 0 new waybills (5000 already present" in second.stdout
