"""Parallel processes hammering one quota, on SQLite and PostgreSQL.

Several real OS processes (spawned, each with its own App, engine and connections)
reveal as the same customer-service agent at the same moment, each asking for more
than the whole allowance. Counting must be exact: no interleaving gets more than the
grade allows, every request is audited once, and running into the ceiling locks the
account once, with one review request and one alert.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.access.network import Network, build_network
from waybillguard.config import Settings
from waybillguard.domain.identity import PrincipalState
from waybillguard.services import audit, identities, reveal
from waybillguard.services.app import App, open_app
from waybillguard.services.caller import Caller

PROCESSES = 4
ATTEMPTS = 24  # per process: each alone asks for more than the hourly allowance (20)
AGENT = "cs1"  # cs_agent, grade 2: 20 an hour freely, 10 more with step-up, then locked
FIELD = "recipient.phone"
PURPOSE = "ticket:Q1"
REASON = "customer lost parcel"
START_TIMEOUT = 120.0  # spawning and importing, on a loaded machine


def _hammer(
    settings: Settings,
    number: str,
    expected: str,
    mfa: bool,
    reason: str,
    barrier: Any,
    results: Any,
) -> None:
    """One process: open the home, wait for the others, then reveal ATTEMPTS times."""
    report: dict[str, Any] = {"pid": os.getpid(), "effects": [], "rules": [], "error": None}
    try:
        with open_app(settings) as app:
            principal = identities.get_principal(app, AGENT)
            assert principal is not None
            # Warm the code paths (policy, divisions) without charging anything.
            reveal.explain(app, principal, number, FIELD, PURPOSE)
            caller = Caller(principal, client="hammer", mfa_at=datetime.now(UTC) if mfa else None)
            barrier.wait(timeout=START_TIMEOUT)
            report["started"] = time.time()
            for _ in range(ATTEMPTS):
                got = reveal.reveal(app, caller, number, FIELD, PURPOSE, reason=reason)
                report["effects"].append(str(got.decision.effect.value))
                report["rules"].append(got.decision.rule)
                if got.allowed:
                    assert got.fields[number][FIELD] == expected
                else:
                    assert not got.fields
            report["finished"] = time.time()
    except BaseException:
        report["error"] = traceback.format_exc()
    results.put(report)


def _run(net: Network, *, mfa: bool, reason: str) -> list[dict[str, Any]]:
    number = net.numbers[2]
    expected = net.rows[2]["recipient"]["phone"]
    net.open_ticket(PURPOSE.removeprefix("ticket:"), number, "recipient")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_hammer,
            args=(net.app.settings, number, expected, mfa, reason, barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    reports: list[dict[str, Any]] = []
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + START_TIMEOUT + 120
        while len(reports) < PROCESSES:
            try:
                reports.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        for worker in workers:
            worker.join(timeout=30)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)
    assert len(reports) == PROCESSES, f"only {len(reports)} of {PROCESSES} processes reported"
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    errors = [r["error"] for r in reports if r["error"]]
    assert errors == [], "\n".join(errors)
    assert len({r["pid"] for r in reports}) == PROCESSES
    # The processes really ran at the same time: every one started before any finished.
    assert max(r["started"] for r in reports) < min(r["finished"] for r in reports)
    return reports


def _scalar(app: App, sql: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _reveal_events(app: App) -> list[dict[str, Any]]:
    audit.seal(app)
    return [e for e in audit.by_actor(app, AGENT) if e["action"] == "reveal"]


def _monotonic(effects: list[str]) -> bool:
    """Within one process, once refused, never allowed again (usage only grows)."""
    first_refusal = next((i for i, e in enumerate(effects) if e != "allow"), len(effects))
    return all(e != "allow" for e in effects[first_refusal:])


@pytest.fixture
def net(app: App, tmp_path: Path) -> Network:
    return build_network(app, tmp_path, count=20)


def test_parallel_processes_get_exactly_the_allowance(net: Network) -> None:
    """Without a fresh second factor only the allowance band passes: 20, however the
    four processes' 96 requests interleave; the rest are stepped up."""
    app = net.app
    reports = _run(net, mfa=False, reason="")
    effects = Counter(e for r in reports for e in r["effects"])
    assert effects == {"allow": 20, "step_up": PROCESSES * ATTEMPTS - 20}
    assert all(_monotonic(r["effects"]) for r in reports)
    assert _scalar(app, "SELECT COALESCE(SUM(records), 0) FROM quota_charges") == 20
    assert _scalar(app, "SELECT COUNT(*) FROM quota_charges") == 20

    events = _reveal_events(app)
    assert len(events) == PROCESSES * ATTEMPTS  # every request audited, once
    assert all(e["sealed"] for e in events)
    assert Counter(e["decision"] for e in events) == effects
    allowed_ids = {e["event_id"] for e in events if e["decision"] == "allow"}
    with app.engine.connect() as conn:
        cited = conn.execute(text("SELECT audit_event_id FROM quota_charges")).scalars()
        charged_ids = {int(i) for i in cited}
    assert charged_ids == allowed_ids  # each charge cites its own allow event

    agent = identities.get_principal(app, AGENT)
    assert agent is not None and agent.state is PrincipalState.ACTIVE
    assert _scalar(app, "SELECT COUNT(*) FROM approval_requests") == 0
    assert _scalar(app, "SELECT COUNT(*) FROM alerts") == 0


def test_parallel_processes_stop_at_the_ceiling_and_lock_once(net: Network) -> None:
    """With step-up (fresh TOTP and a reason) 30 pass, then the hourly ceiling locks
    the account: one lock, one unlock review request, one alert — not one per
    process — and every later request is refused as locked."""
    app = net.app
    reports = _run(net, mfa=True, reason=REASON)
    effects = Counter(e for r in reports for e in r["effects"])
    assert effects == {"allow": 30, "locked": PROCESSES * ATTEMPTS - 30}
    assert all(_monotonic(r["effects"]) for r in reports)
    rules = Counter(
        rule
        for r in reports
        for effect, rule in zip(r["effects"], r["rules"], strict=True)
        if effect == "locked"
    )
    ceiling_hits = {rule: n for rule, n in rules.items() if rule != "account.locked"}
    assert sum(ceiling_hits.values()) == 1, rules  # one request ran into the ceiling
    assert _scalar(app, "SELECT COALESCE(SUM(records), 0) FROM quota_charges") == 30

    agent = identities.get_principal(app, AGENT)
    assert agent is not None and agent.state is PrincipalState.LOCKED
    unlock_requests = _scalar(app, "SELECT COUNT(*) FROM approval_requests WHERE kind = 'unlock'")
    assert unlock_requests == 1
    assert _scalar(app, "SELECT COUNT(*) FROM approval_requests") == 1
    assert _scalar(app, "SELECT COUNT(*) FROM alerts WHERE kind = 'quota.ceiling'") == 1

    events = _reveal_events(app)
    assert len(events) == PROCESSES * ATTEMPTS
    assert Counter(e["decision"] for e in events) == effects
    reviews = [e for e in events if "review_request" in e.get("detail", {})]
    assert len(reviews) == 1 and reviews[0]["decision"] == "locked"
