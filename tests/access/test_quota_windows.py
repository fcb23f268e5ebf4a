"""A principal's usage in each rolling window, read from hour sums plus one hour of the
ledger (`AccessStore.usage`), is exactly the sum of its ledger rows after the window's
start, whatever the history: charges on hour boundaries, on a window's start, in the
future, many in one hour. Checked against a plain sum over the charges made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waybillguard.adapters.db.access_store import AccessStore
from waybillguard.config import Settings
from waybillguard.domain.quota import WINDOW_SECONDS, Window
from waybillguard.services import identities, policy_admin
from waybillguard.services.activity import Actor
from waybillguard.services.app import App

NOW = datetime(2026, 11, 28, 9, 41, 17, 250_000, tzinfo=UTC)
_DAYS_31 = 31 * 86_400 * 1_000_000

# Offsets from NOW in microseconds: anywhere in 31 days back (and a little ahead), plus
# the instants where an off-by-one would show: each window's start, hour boundaries.
_SPECIAL = [-WINDOW_SECONDS[w] * 1_000_000 + d for w in Window for d in (-1, 0, 1)] + [
    -(17 * 60 + 17) * 1_000_000 - 250_000 - h * 3_600_000_000 for h in (0, 1, 24, 720)
]
_OFFSETS = st.one_of(
    st.integers(min_value=-_DAYS_31, max_value=60_000_000),
    st.sampled_from(_SPECIAL),
)
_CHARGES = st.lists(st.tuples(_OFFSETS, st.integers(min_value=1, max_value=50)), max_size=40)


def _principal(app: App, name: str) -> int:
    operator = Actor.local_operator()
    identities.add_unit(app, operator, "QHQ", "hq", "总部")
    identities.add_unit(app, operator, "QW", "station", "配额网点", parent="QHQ")
    principal, _secret = identities.add_user(
        app, operator, name, "station_clerk", "QW", password="quota-window-test"
    )
    return principal.id


def _expected(charges: list[tuple[int, int]], window: Window) -> int:
    start = NOW - timedelta(seconds=WINDOW_SECONDS[window])
    return sum(r for offset, r in charges if NOW + timedelta(microseconds=offset) > start)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(charges=_CHARGES)
def test_usage_is_the_ledger_sum_after_each_window_start(
    app: App, charges: list[tuple[int, int]]
) -> None:
    store: AccessStore = policy_admin.access_store(app)
    with store.write() as conn:
        existing = conn.exec_driver_sql("SELECT id FROM principals WHERE username = 'qw1'").first()
    principal = int(existing[0]) if existing else _principal(app, "qw1")
    with store.write() as conn:  # each example starts from an empty ledger
        conn.exec_driver_sql(f"DELETE FROM quota_hours WHERE principal_id = {principal}")
        conn.exec_driver_sql(f"DELETE FROM quota_charges WHERE principal_id = {principal}")
    with store.write() as conn:
        for offset, records in charges:
            store.charge(conn, principal, records, NOW + timedelta(microseconds=offset), None)
    with store.write() as conn:
        used = store.usage(conn, principal, NOW)
    assert used == {w: _expected(charges, w) for w in Window}


def test_other_principals_charges_do_not_count(app: App) -> None:
    store = policy_admin.access_store(app)
    mine = _principal(app, "qw-mine")
    operator = Actor.local_operator()
    other, _ = identities.add_user(
        app, operator, "qw-other", "station_clerk", "QW", password="quota-window-test"
    )
    with store.write() as conn:
        store.charge(conn, other.id, 7, NOW - timedelta(minutes=5), None)
        store.charge(conn, mine, 2, NOW - timedelta(minutes=90), None)
    with store.write() as conn:
        assert store.usage(conn, mine, NOW) == {Window.HOUR: 0, Window.DAY: 2, Window.MONTH: 2}


def test_hour_sums_match_the_ledger(app: App) -> None:
    """`quota_hours` holds, for every principal and clock hour, the sum of its ledger."""
    store = policy_admin.access_store(app)
    mine = _principal(app, "qw-sums")
    times = [NOW - timedelta(minutes=m) for m in (0, 1, 41, 42, 101, 60 * 24 * 3)]
    with store.write() as conn:
        for n, at in enumerate(times):
            store.charge(conn, mine, n + 1, at, None)
    with store.write() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT hour, records FROM quota_hours WHERE principal_id = {mine} ORDER BY hour"
        ).all()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected: dict[int, int] = {}
    for n, at in enumerate(times):
        hour = int((at - epoch).total_seconds()) // 3600
        expected[hour] = expected.get(hour, 0) + n + 1
    assert [(int(h), int(r)) for h, r in rows] == sorted(expected.items())


@pytest.mark.parametrize("charges", [5_000])
def test_a_long_ledger_is_not_read_whole(app: App, charges: int) -> None:
    """30 days of heavy use: usage reads the hour sums and one hour of the ledger, so it
    stays exact; the count of ledger rows visited is not observable here, its cost is
    measured by `bench authorize --history`."""
    store = policy_admin.access_store(app)
    mine = _principal(app, "qw-long")
    step = timedelta(seconds=30 * 86_400 / charges)
    with store.write() as conn:
        for n in range(charges):
            store.charge(conn, mine, 1, NOW - step * n, None)
    with store.write() as conn:
        used = store.usage(conn, mine, NOW)
    expected = {
        w: sum(1 for n in range(charges) if step * n < timedelta(seconds=WINDOW_SECONDS[w]))
        for w in Window
    }
    assert used == expected


def test_an_older_home_is_told_to_upgrade_and_its_ledger_is_summed(
    app: App, settings: Settings
) -> None:
    """A home at schema 0005 (before `quota_hours`) is refused with the revisions and
    the command that upgrades it; `init` then fills the hour sums from the ledger."""
    from alembic import command

    from waybillguard.adapters.db.schema import alembic_config, head_revision
    from waybillguard.services.app import NotInitialised, initialise, open_app

    store = policy_admin.access_store(app)
    mine = _principal(app, "qw-upgrade")
    with store.write() as conn:
        for minutes, records in ((5, 2), (50, 3), (61, 4), (60 * 30, 5)):
            store.charge(conn, mine, records, NOW - timedelta(minutes=minutes), None)
    command.downgrade(alembic_config(app.engine), "0005")
    with pytest.raises(NotInitialised) as refused:
        open_app(settings)
    head = head_revision()
    assert head is not None and head >= "0006"
    assert "0005" in str(refused.value) and head in str(refused.value)
    assert "waybillguard init" in str(refused.value)
    initialise(settings)
    with open_app(settings) as upgraded:
        again = policy_admin.access_store(upgraded)
        with again.write() as conn:
            used = again.usage(conn, mine, NOW)
    assert used == {Window.HOUR: 5, Window.DAY: 9, Window.MONTH: 14}
