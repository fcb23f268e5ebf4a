"""`bench http` at a small size: every reveal allowed, and the keys it reports, including
what the load generator and the server spent in CPU."""

from __future__ import annotations

import pytest

from waybillguard.entrypoints.http import bench


@pytest.mark.slow
def test_bench_http_small_run_reports_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYBILLGUARD_DATABASE_URL", raising=False)
    result = bench.run(
        clients=4,
        workers=2,
        seconds=1.0,
        warmup=0.3,
        waybills_count=120,
        principals=2,
        log=lambda _: None,
    )
    for key in ("reveal_rps", "reveal_p99_ms", "baseline_rps", "ratio"):
        assert result[key] > 0, key
    assert result["reveal_errors"] == 0 and result["baseline_errors"] == 0
    for phase in ("reveal", "baseline"):
        assert 0 < result[f"{phase}_client_cpu_share"] <= 1.5
        assert result[f"{phase}_server_cpu_ms"] > 0  # /proc is there on the CI machines
    assert result["client_loop"] in ("uvloop", "asyncio")
    assert result["database"] == "sqlite"
