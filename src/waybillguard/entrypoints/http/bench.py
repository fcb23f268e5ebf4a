"""`waybillguard bench http`: reveals through the real server against a trivial route.

A fresh temporary home gets a small synthetic network: `waybills` synthetic waybills,
one station covering all their destinations, and `principals` station clerks at the
top grade (9: 2,000 reveals an hour freely, 2,800 with a fresh TOTP and a reason —
every bench reveal carries a reason, and each clerk logs in with TOTP just before, so
every reveal stays allowed). The server is started as `waybillguard serve` would be
(uvicorn, `workers` processes, SQLite unless WAYBILLGUARD_DATABASE_URL says otherwise).

`clients` concurrent keep-alive HTTP/1.1 connections (a lean asyncio client, so the
load generator takes as little of the machine's CPU as possible) first hit `/healthz`
for `seconds`, then reveal one field of rotating waybills for `seconds`. Reported:
requests per second and p99 latency of each phase and their ratio.

The client shares the machine with the server, so it runs on uvloop when that is
installed (as the server does), and reports what it cost: `*_client_cpu_share` is the
client's CPU time over the phase's wall time (1.0 = one core busy the whole phase).
Where /proc exists, `*_server_cpu_ms` is the server processes' CPU time per answered
request (workers, their threads and the supervisor together).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyotp

from waybillguard.config import DATABASE_URL_ENV, HOME_ENV, load_settings
from waybillguard.services import identities, waybills
from waybillguard.services.activity import Actor
from waybillguard.services.app import initialise, open_app
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

PASSWORD = "bench-password-not-secret"  # noqa: S105 - synthetic bench accounts
REASON = "bench: route planning check"
FIELD = "recipient.phone"
Log = Callable[[str], None]


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    answered: int = 0  # responses in the whole phase, warm-up included
    client_cpu: float = 0.0  # seconds of this process's CPU over the whole phase
    wall: float = 0.0  # seconds, warm-up included (what the CPU figures cover)
    server_cpu: float | None = None  # seconds of the server processes' CPU, same span

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu / self.wall if self.wall else 0.0

    @property
    def server_cpu_ms(self) -> float | None:
        """Server CPU per answered request, in ms."""
        if self.server_cpu is None or not self.answered:
            return None
        return self.server_cpu * 1000 / self.answered


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(home: Path, count: int, principals: int, log: Log) -> tuple[list[str], dict[str, str]]:
    settings = load_settings(home)
    initialise(settings)
    data = home / "bench.jsonl"
    write_synth(data, count, seed=11)
    operator = Actor.local_operator()
    with open_app(settings) as app:
        import_file(app, data, workers=1, actor=operator)
        views = waybills.list_waybills(app, count, 0, operator)
        numbers = [v["tracking_number"] for v in views]
        adcodes = sorted({v["destination_adcode"] for v in views})
        identities.add_unit(app, operator, "HQ", "hq", "总部")
        identities.add_unit(
            app, operator, "BENCH", "station", "基准网点", parent="HQ", covers=adcodes
        )
        secrets: dict[str, str] = {}
        for i in range(principals):
            name = f"bench{i:02d}"
            _p, secret = identities.add_user(
                app, operator, name, "station_clerk", "BENCH", password=PASSWORD, grade=9
            )
            assert secret is not None
            secrets[name] = secret
    data.unlink()
    log(f"home ready: {len(numbers)} waybills, {principals} clerks (grade 9)")
    return numbers, secrets


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _client(
    port: int, requests: list[bytes], phase: Phase, start: float, stop: float
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop:
                break
            writer.write(requests[i % len(requests)])
            i += 1
            status, _body = await _read_response(reader)
            done = time.perf_counter()
            phase.answered += 1
            if now >= start:  # after the warm-up
                if status == 200:
                    phase.latencies.append(done - now)
                else:
                    phase.errors += 1
    finally:
        writer.close()


async def _run_phase(
    port: int, per_client: list[list[bytes]], seconds: float, warmup: float
) -> Phase:
    phase = Phase()
    begin = time.perf_counter()
    start, stop = begin + warmup, begin + warmup + seconds
    await asyncio.gather(*(_client(port, reqs, phase, start, stop) for reqs in per_client))
    phase.elapsed = seconds
    return phase


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _phase(
    port: int, per_client: list[list[bytes]], seconds: float, warmup: float, server_pid: int
) -> Phase:
    """One timed phase on a fresh event loop, with the CPU both sides spent on it."""
    server0 = _tree_cpu_seconds(server_pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        phase = runner.run(_run_phase(port, per_client, seconds, warmup))
    phase.client_cpu = time.process_time() - cpu0
    phase.wall = time.perf_counter() - wall0
    server1 = _tree_cpu_seconds(server_pid)
    if server0 is not None and server1 is not None:
        phase.server_cpu = server1 - server0
    return phase


def _tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU of a process and its descendants, including descendants that
    have exited and been waited for, from /proc (None elsewhere)."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        # utime + stime, plus cutime + cstime: a child that exited and was reaped
        # (a worker uvicorn restarted) moves its CPU to its parent, so the tree's sum
        # never drops between two readings.
        used[pid] = sum(int(f) for f in fields[11:15]) / ticks
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(used.get(pid, 0.0) for pid in tree)


def _request(method: str, path: str, token: str | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _login(port: int, name: str, secret: str) -> str:
    import httpx

    body = {"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secret).now()}
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/login", json=body, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"bench login failed: {r.status_code}")
    return str(r.json()["token"])


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def run(
    *,
    clients: int = 32,
    workers: int = 2,
    seconds: float = 5.0,
    warmup: float = 1.0,
    waybills_count: int = 2000,
    principals: int = 8,
    log: Log = print,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="wg-bench-http-"))
    home = root / "home"
    proc: subprocess.Popen[bytes] | None = None
    try:
        numbers, secrets = _setup(home, waybills_count, principals, log)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
        env[HOME_ENV] = str(home)
        if DATABASE_URL_ENV in os.environ:
            env[DATABASE_URL_ENV] = os.environ[DATABASE_URL_ENV]
        server_log = (root / "server.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "waybillguard.entrypoints.http.server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(proc, port)
        tokens = [_login(port, name, secret) for name, secret in secrets.items()]
        log(f"server up on 127.0.0.1:{port} with {workers} workers; {len(tokens)} sessions")
        baseline_reqs = [[_request("GET", "/healthz")] for _ in range(clients)]
        reveal_reqs: list[list[bytes]] = []
        for c in range(clients):
            token = tokens[c % len(tokens)]
            body = orjson.dumps({"fields": [FIELD], "purpose": "delivery", "reason": REASON})
            mine = numbers[c::clients] or numbers
            reveal_reqs.append(
                [_request("POST", f"/api/v1/waybills/{n}/reveal", token, body) for n in mine]
            )
        baseline = _phase(port, baseline_reqs, seconds, warmup, proc.pid)
        log(f"baseline /healthz: {baseline.rps:,.0f} req/s, p99 {baseline.percentile(0.99):.1f} ms")
        reveals = _phase(port, reveal_reqs, seconds, warmup, proc.pid)
        log(f"reveal: {reveals.rps:,.0f} req/s, p99 {reveals.percentile(0.99):.1f} ms")
        return {
            "reveal_rps": round(reveals.rps, 1),
            "reveal_p99_ms": round(reveals.percentile(0.99), 2),
            "baseline_rps": round(baseline.rps, 1),
            "ratio": round(reveals.rps / baseline.rps, 3) if baseline.rps else 0.0,
            "reveal_p50_ms": round(reveals.percentile(0.50), 2),
            "baseline_p99_ms": round(baseline.percentile(0.99), 2),
            "reveal_errors": reveals.errors,
            "baseline_errors": baseline.errors,
            "reveal_client_cpu_share": round(reveals.client_cpu_share, 3),
            "baseline_client_cpu_share": round(baseline.client_cpu_share, 3),
            "reveal_server_cpu_ms": _round(reveals.server_cpu_ms, 3),
            "baseline_server_cpu_ms": _round(baseline.server_cpu_ms, 3),
            "client_loop": "uvloop" if _event_loop_factory() else "asyncio",
            "clients": clients,
            "workers": workers,
            "seconds": seconds,
            "database": "postgresql" if DATABASE_URL_ENV in os.environ else "sqlite",
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
