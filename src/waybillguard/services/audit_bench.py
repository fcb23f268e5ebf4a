"""`waybillguard bench audit`: the audit log's append, verify and proof costs.

* `append_per_s`: durable appends — `record_many` (validate, encode, one committed
  transaction per batch) from `writers` processes at once, while the sequencer
  (`seal`, 10,000 per transaction) runs concurrently in the parent. Counted from the
  start signal to the last writer's last commit. `sealed_per_s` counts until the
  sequencer has caught up with everything.
* `verify_per_s`: `verify` of the whole log (every leaf and stored node recomputed,
  roots compared with the checkpoints), events per second.
* `verify_limit_per_s`: what this CPU can hash at all, measured in the same run: bare
  SHA-256 of the same event bytes (leaf hashes and every tree level above them, in
  verify's chunks) on as many processes as verify uses, nothing read or compared. The
  gap to `verify_per_s` is what reading and checking cost; the limit itself is the
  ceiling for any verifier in Python on these cores.
* `proof_ms` / `proof_bytes`: one inclusion proof through `prove` (store reads, path
  built and checked against the signed checkpoint), median over random events; bytes
  are the proof's hashes (32 × ⌈log2 n⌉), `proof_json_bytes` the whole document.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import queue
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import orjson

from waybillguard.config import DATABASE_FILE, Settings
from waybillguard.domain import merkle
from waybillguard.domain.audit_event import AuditEvent, format_timestamp
from waybillguard.domain.fields import PII_FIELDS
from waybillguard.services import audit
from waybillguard.services.app import App, initialise, open_app

Log = Callable[[str], None]
WRITERS = 2
BATCH = 1000
PROOF_SAMPLES = 200
LIMIT_SAMPLE = 1 << 19  # events hashed for verify_limit_per_s (about 150 MB held)

_ACTIONS = ("reveal", "search", "waybill.show", "waybill.list", "export.request", "login")
_ROLES = ("cs_agent", "courier", "station_manager", "auditor")
_UNITS = ("hq", "sh-pudong", "bj-chaoyang", "gz-tianhe", "cd-wuhou")
_DECISIONS = ("allow", "allow", "allow", "deny")


def synthetic_event(n: int) -> AuditEvent:
    """A plausible event without personal data: ids, field names, blind-index refs."""
    action = _ACTIONS[n % len(_ACTIONS)]
    fields = (PII_FIELDS[n % len(PII_FIELDS)],) if action == "reveal" else ()
    return AuditEvent(
        action=action,
        actor=f"u{n % 5000:05d}",
        role=_ROLES[n % len(_ROLES)],
        unit=_UNITS[n % len(_UNITS)],
        decision=_DECISIONS[(n // 7) % len(_DECISIONS)],
        rule="policy.v1.reveal_on_ticket" if action == "reveal" else "default",
        purpose="customer complaint ticket" if action == "reveal" else "",
        waybills=(f"WG{n % 10**7:07d}{(n * 7919) % 10**6:06d}",),
        fields=fields,
        subject_refs=(f"{(n * 2654435761) % 2**128:032x}",) if action == "reveal" else (),
        client="10.0.0.1 web",
        at=format_timestamp(datetime.now(UTC)),
    )


def _writer(
    settings: Settings,
    first: int,
    count: int,
    batch: int,
    go: EventType,
    ready: Any,
    done: Any,
) -> None:
    events = [synthetic_event(first + n) for n in range(count)]
    with open_app(settings) as app:
        ready.put(first)
        go.wait()
        for start in range(0, count, batch):
            audit.record_many(app, events[start : start + batch])
    done.put(time.monotonic())


def _append_phase(
    settings: Settings, count: int, writers: int, batch: int, log: Log
) -> tuple[float, float]:
    context = multiprocessing.get_context("fork")
    go = context.Event()
    ready = context.Queue()
    done = context.Queue()
    share = [count // writers + (1 if n < count % writers else 0) for n in range(writers)]
    firsts = [sum(share[:n]) for n in range(writers)]
    procs = [
        context.Process(
            target=_writer, args=(settings, firsts[n], share[n], batch, go, ready, done)
        )
        for n in range(writers)
    ]
    for p in procs:
        p.start()
    log(f"building {count:,} synthetic events in {writers} writer process(es) …")
    waiting = len(procs)
    while waiting:  # the clock starts once every writer holds its events
        try:
            ready.get(timeout=1)
            waiting -= 1
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("an audit bench writer failed") from None
    log(f"appending {count:,} events from {writers} writer process(es), sealing meanwhile …")
    with open_app(settings) as app:
        started = time.monotonic()
        go.set()
        finished: list[float] = []
        while len(finished) < writers:
            if audit.seal(app) == 0:
                time.sleep(0.005)
            while not done.empty():
                finished.append(done.get())
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("an audit bench writer failed")
        audit.seal(app)
        sealed_at = time.monotonic()
    for p in procs:
        p.join()
    return max(finished) - started, sealed_at - started


def _hash_share(data: list[bytes], spans: list[tuple[int, int]], go: EventType, done: Any) -> None:
    go.wait()
    for start, end in spans:
        merkle.levels_above(merkle.leaf_hashes(data[start:end]), audit.CHUNK_LEVEL)
    done.put(time.monotonic())


def _hash_limit(app: App, count: int, workers: int) -> float:
    """Events per second that `workers` processes hash (leaf + tree levels), bare: the
    same bytes and chunks as verify, held in memory, nothing read or compared."""
    sample = min(count, LIMIT_SAMPLE)
    data = [data for _, (_seq, _id, data) in zip(range(sample), audit.events(app), strict=False)]
    chunk = 1 << audit.CHUNK_LEVEL
    spans = [(start, min(start + chunk, sample)) for start in range(0, sample, chunk)]
    context = multiprocessing.get_context("fork")
    go = context.Event()
    done = context.Queue()
    procs = [
        context.Process(target=_hash_share, args=(data, spans[n::workers], go, done))
        for n in range(min(workers, len(spans)))
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)  # forked and waiting before the clock starts
    started = time.monotonic()
    go.set()
    finished: list[float] = [done.get() for _ in procs]
    for p in procs:
        p.join()
    return sample / (max(finished) - started)


def run(
    count: int = 1_000_000,
    *,
    writers: int = WRITERS,
    batch: int = BATCH,
    database_url: str | None = None,
    log: Log = print,
) -> dict[str, Any]:
    verify_workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="wg-audit-bench-") as tmp_name:
        home = Path(tmp_name) / "home"
        settings = Settings(
            home=home,
            database_url=database_url or f"sqlite:///{home / DATABASE_FILE}",
            tracking_prefix="WG",
        )
        initialise(settings)
        append_s, sealed_s = _append_phase(settings, count, writers, batch, log)
        with open_app(settings) as app:
            first_cp = audit.checkpoint(app)
            log("verifying …")
            report = audit.verify(app, workers=verify_workers)
            if not report.ok:
                raise RuntimeError(f"bench log failed verification: {report.detail}")
            verify_limit = _hash_limit(app, count, verify_workers)
            log("proofs …")
            rng = random.Random(7)
            timings: list[float] = []
            sizes: list[int] = []
            json_sizes: list[int] = []
            for _ in range(PROOF_SAMPLES):
                seq = rng.randrange(count)
                started = time.perf_counter()
                proof = audit.prove(app, seq)
                timings.append(time.perf_counter() - started)
                sizes.append(32 * len(proof["proof"]))
                json_sizes.append(len(orjson.dumps(proof)))
            audit.record_many(app, [synthetic_event(count + n) for n in range(1000)])
            later = audit.checkpoint(app)
            started = time.perf_counter()
            cons = audit.consistency(app, int(first_cp["tree_size"]), int(later["tree_size"]))
            consistency_ms = (time.perf_counter() - started) * 1000
            db_bytes = sum(p.stat().st_size for p in home.glob(f"{DATABASE_FILE}*") if p.is_file())
    return {
        "count": count,
        "backend": "sqlite" if database_url is None else database_url.split(":")[0],
        "writers": writers,
        "batch": batch,
        "append_per_s": round(count / append_s),
        "append_seconds": round(append_s, 2),
        "sealed_per_s": round(count / sealed_s),
        "verify_per_s": round(count / report.seconds) if report.seconds else None,
        "verify_seconds": report.seconds,
        "verify_workers": verify_workers,
        "verify_limit_per_s": round(verify_limit),
        "verify_of_limit": round(count / report.seconds / verify_limit, 2)
        if report.seconds
        else None,
        "proof_ms": round(statistics.median(timings) * 1000, 3),
        "proof_ms_p99": round(sorted(timings)[int(len(timings) * 0.99) - 1] * 1000, 3),
        "proof_bytes": max(sizes),
        "proof_hashes": max(sizes) // 32,
        "proof_json_bytes": max(json_sizes),
        "consistency_ms": round(consistency_ms, 3),
        "consistency_bytes": 32 * len(cons["proof"]),
        "database_bytes": db_bytes,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
