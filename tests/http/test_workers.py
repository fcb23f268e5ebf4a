"""Several uvicorn worker processes on one database (SQLite and PostgreSQL).

* Quotas stay exact: 32 concurrent clients hammer one customer-service agent's hourly
  allowance through a server with 3 workers; exactly the allowance is granted.
* A worker killed with `kill -9` under load loses nothing committed: every reveal that
  got a 200 has its audit event in the database afterwards, and every waybill whose
  creation got a 201 is stored.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http.harness import API, Seeded, Server, start_server, tokens_for
from waybillguard.services import audit
from waybillguard.services.app import open_app
from waybillguard.services.synth import synth_rows

CLIENTS = 32


@pytest.fixture(scope="module")
def server3(seeded: Seeded) -> Iterator[Server]:
    log = seeded.settings.home.parent / "server3.log"
    srv = start_server(seeded.settings, log, workers=3)
    yield srv
    srv.stop()


def _hammer(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    out: list[httpx.Response] = []
    barrier = threading.Barrier(CLIENTS)
    lock = threading.Lock()

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            barrier.wait(timeout=60)
            for path, body in calls[i::CLIENTS]:
                # a connection per request, so the kernel spreads them over the workers
                headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
                r = c.post(path, json=body, headers=headers)
                with lock:
                    out.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out


def test_quota_exact_with_three_workers(server3: Server, seeded: Seeded) -> None:
    tokens = tokens_for(server3, seeded, ["cs1", "sec1"])
    n = seeded.net.numbers[7]
    r = server3.request(
        tokens["cs1"],
        "POST",
        f"{API}/tickets",
        json={
            "ticket_id": "Q-1",
            "waybill": n,
            "party": "recipient",
            "contact_phone": seeded.net.rows[7]["recipient"]["phone"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["verified"] is True
    body = {"fields": ["recipient.phone"], "purpose": "ticket:Q-1"}
    calls = [(f"{API}/waybills/{n}/reveal", body)] * (CLIENTS * 2)
    responses = _hammer(server3.url, tokens["cs1"], calls)
    decisions = Counter(r.json()["decision"] for r in responses)
    assert len(responses) == CLIENTS * 2
    # grade 2: 20 an hour freely; beyond that a written reason is missing → step_up
    assert decisions["allow"] == 20, decisions
    assert decisions["step_up"] == CLIENTS * 2 - 20, decisions
    assert all(
        r.status_code == (200 if r.json()["decision"] == "allow" else 403) for r in responses
    )
    allowance = server3.request(tokens["cs1"], "GET", f"{API}/allowance").json()
    assert allowance["hour"]["used"] == 20
    events = server3.request(
        tokens["sec1"], "GET", f"{API}/audit/actors/cs1", params={"limit": 500}
    ).json()["items"]
    reveals = Counter(e["decision"] for e in events if e["action"] == "reveal")
    assert reveals["allow"] == 20 and sum(reveals.values()) == CLIENTS * 2
    # the three workers all served some of it
    served = {line for line in server3.log().splitlines() if "/reveal" in line}
    assert len({_pid(line) for line in served}) >= 2


def _pid(line: str) -> str:
    start = line.find('"pid":')
    return line[start : line.find(",", start)]


def test_kill_9_worker_under_load_loses_nothing(server3: Server, seeded: Seeded) -> None:
    tokens = tokens_for(server3, seeded, ["admin1", "clerk1", "entry1"])
    r = server3.request(tokens["admin1"], "POST", f"{API}/users/clerk1/grade", json={"grade": 9})
    assert r.status_code == 200
    time.sleep(1.1)  # the cached session carries the old grade for at most a second
    numbers = seeded.net.s1_numbers
    reveal_body = {
        "fields": ["recipient.name"],
        "purpose": "delivery",
        "reason": "load test of the delivery route",
    }
    rows = list(synth_rows(400, seed=4242))
    stop = time.monotonic() + 6.0
    allowed_events: list[int] = []
    created: list[str] = []
    failures: Counter[str] = Counter()
    lock = threading.Lock()

    def revealer(i: int) -> None:
        with httpx.Client(base_url=server3.url, timeout=60) as c:
            k = i
            while time.monotonic() < stop:
                n = numbers[k % len(numbers)]
                k += 16
                try:
                    r = c.post(
                        f"{API}/waybills/{n}/reveal",
                        json=reveal_body,
                        headers={"Authorization": f"Bearer {tokens['clerk1']}"},
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        failures[type(exc).__name__] += 1
                    continue
                if r.status_code == 200:
                    with lock:
                        allowed_events.append(int(r.json()["audit_event"]))
                else:
                    with lock:
                        failures[str(r.status_code)] += 1

    def creator(i: int) -> None:
        with httpx.Client(base_url=server3.url, timeout=60) as c:
            k = i
            while time.monotonic() < stop and k < len(rows):
                row = rows[k]
                k += 2
                try:
                    r = c.post(
                        f"{API}/waybills",
                        json=row,
                        headers={"Authorization": f"Bearer {tokens['entry1']}"},
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        failures[type(exc).__name__] += 1
                    continue
                if r.status_code == 201:
                    with lock:
                        created.append(r.json()["tracking_number"])

    threads = [threading.Thread(target=revealer, args=(i,)) for i in range(14)]
    threads += [threading.Thread(target=creator, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    victims = server3.worker_pids()
    assert len(victims) == 3, victims
    os.kill(victims[0], signal.SIGKILL)
    for t in threads:
        t.join(timeout=120)
    assert allowed_events and created, (len(allowed_events), len(created), failures)
    server3.stop()
    with open_app(seeded.settings) as app:
        recorded = {
            int(e["event_id"]) for e in audit.by_actor(app, "clerk1", limit=audit.MAX_QUERY)
        }
        missing = [e for e in allowed_events if e not in recorded]
        assert missing == []
        assert [n for n in created if app.store.get(n) is None] == []
        assert audit.verify(app, workers=1).ok


def test_metrics_directory_removed_on_shutdown(
    seeded: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A multi-worker server makes its own Prometheus multiprocess directory and removes
    it when it stops (SIGTERM), so restarts do not pile up directories in /tmp."""
    tmp = tmp_path_factory.mktemp("server-tmp")
    log = tmp / "server2.log"
    srv = start_server(seeded.settings, log, workers=2, extra_env={"TMPDIR": str(tmp)})
    try:
        made = list(tmp.glob("wg-metrics-*"))
        assert len(made) == 1 and made[0].is_dir()
    finally:
        assert srv.stop() == 0
    assert not list(tmp.glob("wg-metrics-*"))
