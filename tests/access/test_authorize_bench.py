"""`bench authorize` at a small size: it runs the real reveal path and reports the keys
operators script against (the figures themselves are recorded in BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from waybillguard.services import authorize_bench
from waybillguard.services.app import App


def test_bench_authorize_reports_its_keys() -> None:
    result = authorize_bench.run(principals=60, waybills=600, reveals=80, log=lambda _: None)
    for key in ("reveals_per_s", "p50_ms", "p99_ms", "casbin_enforce_per_s", "ratio_vs_casbin"):
        assert result[key] > 0, key
    assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["reveals"] == 80 and result["waybills"] == 600


def test_bench_principals_start_with_a_ledger() -> None:
    result = authorize_bench.run(
        principals=60, waybills=600, reveals=80, history=25, log=lambda _: None
    )
    assert result["history_per_principal"] == 25
    assert result["ledger_rows_before"] == 60 * 25


def test_bench_history_is_written_as_the_reveal_path_writes_it(app: App) -> None:
    """Hour sums equal the ledger, so every window's usage counts the whole history."""
    import random
    from datetime import UTC, datetime

    from waybillguard.domain.quota import Window
    from waybillguard.services import identities, policy_admin
    from waybillguard.services.activity import Actor

    if app.engine.dialect.name != "sqlite":
        pytest.skip("the bench builds its own SQLite home; its history writer speaks SQLite")
    operator = Actor.local_operator()
    identities.add_unit(app, operator, "BHQ", "hq", "总部")
    identities.add_unit(app, operator, "BST", "station", "网点", parent="BHQ")
    principal, _ = identities.add_user(
        app, operator, "bench-past", "station_clerk", "BST", password="bench-history-test"
    )
    assert authorize_bench._charge_history(app, 40, random.Random(3), lambda _: None) == 40
    store = policy_admin.access_store(app)
    with store.write() as conn:
        used = store.usage(conn, principal.id, datetime.now(UTC))
        hours = conn.exec_driver_sql(
            f"SELECT SUM(records) FROM quota_hours WHERE principal_id = {principal.id}"
        ).scalar_one()
    assert used[Window.MONTH] == 40 == hours
    assert used[Window.HOUR] <= used[Window.DAY] <= used[Window.MONTH]
