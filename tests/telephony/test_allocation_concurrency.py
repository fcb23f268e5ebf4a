"""Parallel processes allocating virtual lines, on SQLite and PostgreSQL.

Several real OS processes (spawned, each with its own App and connections) allocate at
the same moment: every process binds the same shared waybills (idempotency across
processes) and its own share of the others. No two waybills may ever get the same
(X, extension), and every waybill ends with exactly one binding.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.telephony.conftest import build_phones
from waybillguard.config import Settings
from waybillguard.services import virtual_numbers
from waybillguard.services.app import App, open_app

PROCESSES = 4
START_TIMEOUT = 120.0


def _allocate(
    settings: Settings, mine: list[str], shared: list[str], barrier: Any, results: Any
) -> None:
    report: dict[str, Any] = {"pid": os.getpid(), "lines": {}, "error": None}
    try:
        with open_app(settings) as app:
            virtual_numbers.pool_status(app)  # warm up
            barrier.wait(timeout=START_TIMEOUT)
            order = [n for pair in zip(shared, mine, strict=False) for n in pair]
            order += mine[len(shared) :]
            for number in order:
                b = virtual_numbers.allocate(app, number)
                report["lines"][number] = (b.id, b.virtual_number, b.extension)
    except BaseException:
        report["error"] = traceback.format_exc()
    results.put(report)


@pytest.mark.slow
def test_parallel_allocations_never_collide(app: App, tmp_path: Path) -> None:
    phones = build_phones(app, tmp_path, extensions=40)  # 80 lines for 60 waybills
    numbers = phones.net.numbers
    shared, rest = numbers[:8], numbers[8:]
    shares = [rest[i::PROCESSES] for i in range(PROCESSES)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_allocate, args=(app.settings, shares[i], shared, barrier, results))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=300))
    except queue.Empty:
        pytest.fail("a process did not report back")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    errors = [r["error"] for r in reports if r["error"]]
    assert not errors, errors[0]

    by_waybill: dict[str, set[tuple[int, str, str]]] = {}
    for r in reports:
        for number, line in r["lines"].items():
            by_waybill.setdefault(number, set()).add(tuple(line))
    assert set(by_waybill) == set(numbers)
    # idempotent across processes: every process that bound a shared waybill got its line
    assert all(len(lines) == 1 for lines in by_waybill.values())
    lines = Counter((x, ext) for (only,) in by_waybill.values() for (_, x, ext) in [only])
    assert max(lines.values()) == 1, "two waybills share a line"
    with app.engine.connect() as conn:
        active = conn.execute(
            text("SELECT tracking_number FROM vn_bindings WHERE state = 'active'")
        ).scalars()
        counts = Counter(active)
    assert set(counts) == set(numbers) and set(counts.values()) == {1}
    status = virtual_numbers.pool_status(app)
    assert (status.bound, status.free) == (60, 20)
