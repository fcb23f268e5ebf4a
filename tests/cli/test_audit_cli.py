"""`waybillguard audit …` on SQLite, the issue's "how it will be checked" path:
synthetic activity appended, verify passes, a row edited with the sqlite3 shell makes
verify fail naming the position, a checkpoint exported, more events appended and
consistency verified; inclusion proofs checked with the snippet from docs/audit.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import make_settings
from waybillguard.config import DATABASE_FILE
from waybillguard.entrypoints.audit_cli import audit_app
from waybillguard.services.app import initialise

ROOT = Path(__file__).resolve().parents[2]
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
runner = CliRunner()


def audit_cli(home: Path, *args: str, code: int = 0) -> Any:
    result = runner.invoke(audit_app, [*args, "--home", str(home)])
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def doc_snippet() -> str:
    text = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    section = text.split("### Verifying an inclusion proof offline", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    initialise(make_settings(home))
    return home


@pytest.mark.skipif(not Path(SQLITE3).exists(), reason="sqlite3 shell not installed")
def test_how_it_will_be_checked(home: Path, tmp_path: Path) -> None:
    assert audit_cli(home, "synth", "--count", "500", "--json") == {
        "recorded": 500,
        "sealed": 500,
    }
    report = audit_cli(home, "verify", "--json")
    assert report["ok"] is True and report["tree_size"] == 500

    kept = tmp_path / "checkpoint.json"
    cp = audit_cli(home, "checkpoint", "--out", str(kept), "--json")
    assert cp["tree_size"] == 500 and json.loads(kept.read_text())["signature"] == cp["signature"]

    audit_cli(home, "synth", "--count", "250", "--start", "500", "--no-seal", "--json")
    consistent = audit_cli(home, "consistency", "--checkpoint", str(kept), "--json")
    assert consistent["consistent"] is True
    assert (consistent["old_size"], consistent["new_size"]) == (500, 750)
    assert "consistent" in audit_cli(home, "consistency", "--checkpoint", str(kept))

    # An inclusion proof checks out offline with the documented snippet.
    proof_file = tmp_path / "proof.json"
    proof = audit_cli(home, "prove", "321", "--json", "--out", str(proof_file))
    assert proof["index"] == 321 and proof["tree_size"] == 750
    script = tmp_path / "verify_proof.py"
    script.write_text(doc_snippet(), encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, str(script), str(proof_file), cp["public_key"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK: entry 321 of 750 in waybillguard/WG")
    forged = dict(proof, leaf_data=proof["leaf_data"].replace("7265", "7266", 1))
    assert forged["leaf_data"] != proof["leaf_data"]
    proof_file.write_text(json.dumps(forged))
    refused = subprocess.run(
        [sys.executable, str(script), str(proof_file), cp["public_key"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "FAIL" in refused.stderr

    # An insider edits one event with the sqlite3 shell.
    db = home / DATABASE_FILE
    edit = (
        "UPDATE audit_events SET data = CAST(replace(CAST(data AS TEXT), "
        '\'"decision":"deny"\', \'"decision":"allow"\') AS BLOB) WHERE seq = 161;'
    )
    before = subprocess.run(
        [SQLITE3, str(db), "SELECT data FROM audit_events WHERE seq = 161;"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"decision":"deny"' in before
    subprocess.run([SQLITE3, str(db), edit], check=True, capture_output=True)

    report = audit_cli(home, "verify", "--json", code=1)
    assert (report["ok"], report["first_bad_seq"], report["problem"]) == (False, 161, "edited")
    text = audit_cli(home, "verify", code=1)
    assert "161" in text and "edited" in text
    report = audit_cli(home, "verify", "--checkpoint", str(kept), "--json", code=1)
    assert report["first_bad_seq"] == 161


def test_query_export_prove_and_seal(home: Path, tmp_path: Path) -> None:
    audit_cli(home, "synth", "--count", "120", "--no-seal", "--json")
    status = audit_cli(home, "status", "--json")
    assert (status["tree_size"], status["pending"]) == (0, 120)
    assert audit_cli(home, "seal", "--json")["sealed"] == 120

    by_waybill = audit_cli(home, "query", "--waybill", "WG0000007055433", "--json")
    assert [e["seq"] for e in by_waybill] == [7]
    by_actor = audit_cli(home, "query", "--actor", "u00010", "--json")
    assert [e["actor"] for e in by_actor] == ["u00010"]
    assert (
        audit_cli(home, "query", "--actor", "u00010", "--since", "2999-01-01T00:00:00Z", "--json")
        == []
    )
    top = audit_cli(home, "query", "--top", "3", "--json")
    assert len(top) == 3 and {"unit", "role", "events", "allowed", "denied"} <= top[0].keys()
    assert "reveals" in audit_cli(home, "query", "--top", "3")
    assert "error" in audit_cli(home, "query", "--json", code=2)

    out = tmp_path / "audit.jsonl"
    first = audit_cli(home, "export", "--out", str(out), "--json")
    assert (first["exported"], first["next_from"]) == (120, 120)
    audit_cli(home, "synth", "--count", "30", "--start", "120", "--json")
    second = audit_cli(home, "export", "--out", str(out), "--from", "120", "--json")
    assert second["exported"] == 30
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert seqs == list(range(150))

    proof = audit_cli(home, "prove", "5", "--id", "--json")  # event id 5 is position 4
    assert (proof["event_id"], proof["index"]) == (5, 4)
    assert "root" in audit_cli(home, "prove", "4")
    audit_cli(home, "prove", "100000", "--json", code=1)
    audit_cli(home, "verify", "--checkpoint", str(tmp_path / "missing.json"), code=2)


def test_bench_audit_small(home: Path) -> None:
    result = runner.invoke(audit_app, ["bench", "--count", "3000", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["count"] == 3000
    for key in ("append_per_s", "verify_per_s", "verify_limit_per_s", "proof_ms", "proof_bytes"):
        assert data[key] > 0
    assert data["proof_bytes"] == 32 * 12  # ceil(log2(3000)) hashes
