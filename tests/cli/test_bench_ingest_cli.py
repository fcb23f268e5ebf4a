"""`waybillguard bench ingest --json`: the keys issue 2 names, on a small run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_bench_ingest_reports_the_contract_keys(tmp_path: Path) -> None:
    result = run_cli(
        "bench", "ingest", "--count", "300", "--workers", "1", "--json", home=tmp_path / "h"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    for key in ("waybills_per_s", "limit_per_s", "ratio_to_limit", "peak_rss_mb"):
        assert isinstance(report[key], int | float) and report[key] > 0, key
    assert abs(report["ratio_to_limit"] - report["waybills_per_s"] / report["limit_per_s"]) < 0.01
