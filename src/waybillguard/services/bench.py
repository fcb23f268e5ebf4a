"""`waybillguard bench ingest`: end-to-end ingest against the raw limit, same rows, same run.

The raw limit is what the hardware and libraries allow with no product logic:
read the same rows, one AES-GCM call per row, `executemany` into a bare SQLite
table with the same pragmas, one process. The ratio says how much of that
ceiling the real pipeline (parse, validate, number, encrypt per field, blind
indexes, masks, constraints and indexes) keeps.
"""

from __future__ import annotations

import itertools
import os
import platform
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waybillguard.adapters.db.engine import SQLITE_PRAGMAS
from waybillguard.config import DATABASE_FILE, Settings
from waybillguard.services.app import initialise, open_app
from waybillguard.services.importer import Sealer, import_file
from waybillguard.services.readers import iter_rows
from waybillguard.services.synth import write_synth
from waybillguard.vault import throwaway_sealer

Log = Callable[[str], None]


def _raw_limit(source: Path, db_path: Path, chunk: int = 2000) -> tuple[int, float]:
    seal = throwaway_sealer()
    conn = sqlite3.connect(db_path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    conn.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, ct BLOB NOT NULL)")
    rows: list[tuple[bytes]] = []
    count = 0
    started = time.perf_counter()

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO bare (ct) VALUES (?)", rows)
        conn.execute("COMMIT")
        rows.clear()

    for raw in iter_rows(source):
        plaintext = "\x1f".join(raw.fields.values()).encode("utf-8")
        rows.append((seal(plaintext),))
        count += 1
        if len(rows) >= chunk:
            flush()
    if rows:
        flush()
    elapsed = time.perf_counter() - started
    conn.close()
    return count, elapsed


def _peak_rss_mb(workers: int) -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # ru_maxrss of children is the largest single child; all workers run at once,
    # so parent + workers x largest child bounds the pipeline's total from above.
    return {
        "parent": round(own, 1),
        "largest_worker": round(child, 1),
        "total_upper_bound": round(own + workers * child, 1),
    }


def _stage_costs(source: Path, tmp: Path, sample: int = 10_000) -> dict[str, float]:
    """Single-process cost of each stage on the first `sample` rows, in µs per row:
    where the time goes, so the end-to-end figure can be explained."""
    home = tmp / "stages"
    settings = Settings(
        home=home, database_url=f"sqlite:///{home / DATABASE_FILE}", tracking_prefix="WG"
    )
    initialise(settings)
    sealer = Sealer(settings.keyring_path, "WG")
    # Warm-up, not timed: the address resolver builds its prefix table for each
    # province on first use; a real import pays that once per worker, not per row.
    for raw in itertools.islice(iter_rows(source), 2000):
        sealer.validator.validate(raw.fields)
    started = time.perf_counter()
    rows = list(itertools.islice(iter_rows(source), sample))
    read = time.perf_counter() - started
    n = len(rows)
    started = time.perf_counter()
    orders = [sealer.validator.validate(r.fields) for r in rows]
    validate = time.perf_counter() - started
    started = time.perf_counter()
    numbers = sealer.vault.issue_tracking_numbers("WG", list(range(n)))
    number = time.perf_counter() - started
    started = time.perf_counter()
    sealed = [sealer.row_for(o, t) for o, t in zip(orders, numbers, strict=True)]
    seal = time.perf_counter() - started
    with open_app(settings) as app:
        started = time.perf_counter()
        for i in range(0, n, 2000):
            with app.store.write() as conn:
                app.store.insert_rows(conn, sealed[i : i + 2000])
        store = time.perf_counter() - started
    return {
        "read_parse": round(read / n * 1e6, 1),
        "validate": round(validate / n * 1e6, 1),
        "number": round(number / n * 1e6, 1),
        "mask_seal_index": round(seal / n * 1e6, 1),
        "insert": round(store / n * 1e6, 1),
    }


def ingest(
    count: int, *, seed: int = 7, workers: int | None = None, log: Log = print
) -> dict[str, Any]:
    workers = workers or min(os.cpu_count() or 1, 4)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "rows.jsonl"
        log(f"generating {count:,} synthetic rows …")
        write_synth(source, count, seed)
        home = tmp / "home"
        settings = Settings(
            home=home, database_url=f"sqlite:///{home / DATABASE_FILE}", tracking_prefix="WG"
        )
        initialise(settings)
        log(f"ingesting with {workers} worker process(es) …")
        with open_app(settings) as app:
            started = time.perf_counter()
            report = import_file(app, source, workers=workers, errors_path=tmp / "errors.csv")
            elapsed = time.perf_counter() - started
        rss = _peak_rss_mb(workers)
        log("measuring the raw limit on the same rows …")
        limit_rows, limit_elapsed = _raw_limit(source, tmp / "limit.db")
        log("measuring each stage on a sample …")
        stages = _stage_costs(source, tmp)
    per_s = report.imported / elapsed
    limit_per_s = limit_rows / limit_elapsed
    return {
        "count": count,
        "imported": report.imported,
        "rejected": report.rejected,
        "workers": workers,
        "seconds": round(elapsed, 2),
        "waybills_per_s": round(per_s),
        "limit_per_s": round(limit_per_s),
        "ratio_to_limit": round(per_s / limit_per_s, 3),
        "peak_rss_mb": rss["total_upper_bound"],
        "rss_mb": rss,
        "stage_us_per_row_single_process": stages,
        "machine": {
            # 1-minute load average when the run started and ended: other jobs on the
            # machine take CPU from the pipeline, so figures are only comparable at
            # similar load.
            "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
