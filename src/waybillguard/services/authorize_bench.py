"""`waybillguard bench authorize`: the full reveal path against pycasbin's bare decision.

One run builds a realistic organisation in a fresh embedded home — headquarters, regions,
stations covering every district the synthetic waybills go to, `principals` staff
(station clerks mostly, with couriers, managers and customer-service agents) and
`waybills` imported waybills — then times, one request after another in-process:

* **reveal**: authenticate-free `reveal.reveal` for a station clerk on a waybill of their
  own station — policy decision, exact quota charge, audit event (one committed
  transaction), then decryption of one field;
* **casbin**: `Enforcer.enforce(user, station, /waybills/<n>, reveal)` on an equivalent
  RBAC-with-domains model holding the same users, roles and stations — a decision
  only: no quota, no audit, no decryption, nothing durable.

Principals are inserted directly (no password hashing: argon2id at 10,000 users would
time the password hash, not authorisation) and given grade 9 so every timed reveal is
allowed without step-up.

Every principal starts with a past: `history` reveals already charged (default 300, ten
a day), spread over the 30 days before the run, written to the quota ledger and its
hour sums as the reveal path writes them. A reveal reads its principal's usage in three
rolling windows, and in a real organisation that usage is not zero; a bench of brand-new
accounts would hide what a long ledger costs. `--history 0` gives the earlier setting.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from waybillguard.adapters.db.access_store import clock_hour, sqlite_time
from waybillguard.adapters.db.identity_store import IdentityStore
from waybillguard.config import DATABASE_FILE, Settings
from waybillguard.domain.identity import Principal, PrincipalKind, Role, Unit, UnitKind
from waybillguard.services import policy_admin
from waybillguard.services import reveal as reveal_service
from waybillguard.services.app import App, initialise, open_app
from waybillguard.services.caller import Caller
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

Log = Callable[[str], None]

CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch(r.obj, p.obj) && r.act == p.act
"""

_ROLE_MIX = (
    (Role.STATION_CLERK, 0.6),
    (Role.COURIER, 0.3),
    (Role.STATION_MANAGER, 0.05),
    (Role.CS_AGENT, 0.05),
)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _build_org(
    app: App, principals: int, rng: random.Random
) -> tuple[dict[str, list[str]], list[Principal]]:
    """Stations covering every destination district; returns station → tracking numbers
    destined to it, and the clerks (the principals the timed reveals run as)."""
    with app.store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tracking_number, destination_adcode FROM waybills ORDER BY id"
        ).all()
    districts = sorted({r[1] for r in rows})
    stations = [f"ST{i:04d}" for i in range(max(1, min(len(districts), principals // 10)))]
    station_of = {d: stations[i % len(stations)] for i, d in enumerate(districts)}
    by_station: dict[str, list[str]] = {s: [] for s in stations}
    for number, adcode in rows:
        by_station[station_of[adcode]].append(number)
    ids = IdentityStore(app.engine)
    now = datetime.now(UTC)
    regions = [f"RG{i:02d}" for i in range(10)]
    clerks: list[Principal] = []
    with ids.write() as conn:
        ids.insert_unit(conn, Unit("HQ", UnitKind.HQ, "总部"), now)
        for r in regions:
            ids.insert_unit(conn, Unit(r, UnitKind.REGION, f"大区{r}", parent="HQ"), now)
        for i, s in enumerate(stations):
            region = regions[i % len(regions)]
            ids.insert_unit(conn, Unit(s, UnitKind.STATION, f"网点{s}", parent=region), now)
        for s in stations:
            app.store.set_coverage(conn, s, [d for d, st in station_of.items() if st == s])
        roles = [r for r, _ in _ROLE_MIX]
        weights = [w for _, w in _ROLE_MIX]
        for n in range(principals):
            role = rng.choices(roles, weights)[0]
            station = stations[n % len(stations)]
            unit = "HQ" if role is Role.CS_AGENT else station
            username = f"u{n:05d}".replace("0", "o")  # no long digit runs in usernames
            pid = ids.insert_principal(
                conn,
                username=username,
                kind=PrincipalKind.USER,
                role=role,
                unit=unit,
                grade=9,
                now=now,
            )
            if role is Role.STATION_CLERK:
                region = regions[stations.index(station) % len(regions)]
                clerks.append(Principal(pid, username, role, unit, 9, unit_path=(region, "HQ")))
    return by_station, clerks


def _charge_history(app: App, per_principal: int, rng: random.Random, log: Log) -> int:
    """`per_principal` past charges of one record for every principal, at random times in
    the 30 days before now, in the ledger and in its hour sums. Returns rows written."""
    if per_principal <= 0:
        return 0
    now = datetime.now(UTC)
    span = 30 * 86_400 - 60  # the last minute stays free: the hourly window has room
    with app.engine.connect() as conn:
        ids = [int(r[0]) for r in conn.exec_driver_sql("SELECT id FROM principals").all()]
    log(f"charging {per_principal} past reveals to each of {len(ids):,} principals…")
    written = 0
    for first in range(0, len(ids), 500):
        charges: list[tuple[int, str, int]] = []
        hours: dict[tuple[int, int], int] = {}
        for pid in ids[first : first + 500]:
            for _ in range(per_principal):
                at = now - timedelta(seconds=60 + rng.random() * span)
                charges.append((pid, sqlite_time(at), 1))
                key = (pid, clock_hour(at))
                hours[key] = hours.get(key, 0) + 1
        charges.sort(key=lambda c: c[1])  # the ledger grows in time order, as in service
        with app.engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.executemany(
                "INSERT INTO quota_charges (principal_id, at, records) VALUES (?, ?, ?)", charges
            )
            raw.executemany(
                "INSERT INTO quota_hours (principal_id, hour, records) VALUES (?, ?, ?)",
                [(pid, hour, n) for (pid, hour), n in hours.items()],
            )
        written += len(charges)
    return written


def _casbin_enforcer(clerks: list[Principal]) -> Any:
    import casbin
    from casbin.model import Model

    model = Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    for role in ("station_clerk", "station_manager"):
        for station in sorted({c.unit for c in clerks}):
            enforcer.add_policy(role, station, "/waybills/*", "reveal")
    for c in clerks:
        enforcer.add_grouping_policy(c.username, c.role.value, c.unit)
    return enforcer


def _checkpoint(app: App) -> None:
    """Fold the import's write-ahead log into the database before timing, as SQLite does
    on its own once an import is over (the automatic checkpoint, or the last connection
    closing): a reveal is timed against the organisation's database, not against the
    tail of a million-row import still waiting in the log."""
    if app.engine.dialect.name == "sqlite":
        with app.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def run(
    *,
    principals: int = 10_000,
    waybills: int = 1_000_000,
    reveals: int = 20_000,
    history: int = 300,
    seed: int = 11,
    log: Log = print,
) -> dict[str, Any]:
    rng = random.Random(seed)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wg-bench-authorize-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings(
            home=home, database_url=f"sqlite:///{home / DATABASE_FILE}", tracking_prefix="WB"
        )
        initialise(settings)
        source = Path(tmp) / "orders.jsonl"
        log(f"synthesising and importing {waybills:,} waybills…")
        write_synth(source, waybills, seed=seed)
        with open_app(settings) as app:
            import_file(app, source)
            log(f"creating {principals:,} principals…")
            by_station, clerks = _build_org(app, principals, rng)
            clerks = [c for c in clerks if by_station[c.unit]]
            ledger = _charge_history(app, history, rng, log)
            work = [
                (c, rng.choice(by_station[c.unit]))
                for c in (rng.choice(clerks) for _ in range(reveals))
            ]
            policy_admin.current(app)
            _checkpoint(app)
            # warm-up: caches, prepared statements, first-touch pages
            for clerk, number in work[:200]:
                reveal_service.reveal(app, Caller(clerk), number, "recipient.phone", "delivery")
            log(f"timing {reveals:,} reveals…")
            latencies: list[float] = []
            # This thread's CPU time per reveal too: on a shared machine the wall-clock
            # tail is mostly waiting for a core, which the CPU figures leave out.
            cpu: list[float] = []
            started = time.perf_counter()
            for clerk, number in work:
                c0 = time.thread_time()
                t0 = time.perf_counter()
                outcome = reveal_service.reveal(
                    app, Caller(clerk), number, "recipient.phone", "delivery"
                )
                latencies.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                if not outcome.allowed:
                    raise RuntimeError(f"bench reveal refused: {outcome.decision.rule}")
            elapsed = time.perf_counter() - started
        log("timing casbin…")
        enforcer = _casbin_enforcer(clerks)
        requests = [(c.username, c.unit, f"/waybills/{n}", "reveal") for c, n in work]
        for r in requests[:200]:
            enforcer.enforce(*r)
        c0 = time.perf_counter()
        allowed = sum(1 for r in requests if enforcer.enforce(*r))
        casbin_elapsed = time.perf_counter() - c0
        if allowed != len(requests):
            raise RuntimeError("casbin model disagrees with the workload")
    reveals_per_s = len(work) / elapsed
    casbin_per_s = len(requests) / casbin_elapsed
    return {
        "reveals_per_s": round(reveals_per_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p90_ms": round(_percentile(latencies, 0.9) * 1000, 3),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 3),
        "cpu_p50_ms": round(statistics.median(cpu) * 1000, 3),
        "cpu_p99_ms": round(_percentile(cpu, 0.99) * 1000, 3),
        "casbin_enforce_per_s": round(casbin_per_s, 1),
        "ratio_vs_casbin": round(reveals_per_s / casbin_per_s, 3),
        "principals": principals,
        "waybills": waybills,
        "reveals": len(work),
        "history_per_principal": history,
        "ledger_rows_before": ledger,
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
