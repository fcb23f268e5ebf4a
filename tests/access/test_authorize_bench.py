"""`bench authorize` at a small size: it runs the real reveal path and reports the keys
operators script against (the figures themselves are recorded in BENCHMARKS.md)."""

from __future__ import annotations

from waybillguard.services import authorize_bench


def test_bench_authorize_reports_its_keys() -> None:
    result = authorize_bench.run(principals=60, waybills=600, reveals=80, log=lambda _: None)
    for key in ("reveals_per_s", "p50_ms", "p99_ms", "casbin_enforce_per_s", "ratio_vs_casbin"):
        assert result[key] > 0, key
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["reveals"] == 80 and result["waybills"] == 600
