"""Real uvicorn servers in subprocesses, a seeded network, and logged-in clients.

Each test module starts its own server on a free loopback port against a home built
here (SQLite file or a fresh database on the session's private PostgreSQL), drives it
with httpx, and stops it at the end (SIGTERM: graceful shutdown)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher

from tests.access.network import PASSWORD, Network, build_network
from tests.conftest import make_settings
from waybillguard.config import Settings
from waybillguard.domain.identity import Role
from waybillguard.services import identities, policy_admin
from waybillguard.services.activity import Actor
from waybillguard.services.app import initialise, open_app
from waybillguard.vault import credentials

OPERATOR = Actor.local_operator()
API = "/api/v1"
ROLE_USERS = {
    "courier": "courier1",
    "station_clerk": "clerk1",
    "station_manager": "manager1",
    "cs_agent": "cs1",
    "security": "sec1",
    "admin": "admin1",
    "data_entry": "entry1",
    "partner": "shopx",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    settings: Settings
    _http: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def request(self, token: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request on a kept client (a new httpx client costs ~0.1 s of TLS setup)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=60)
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self._http.request(method, path, headers=headers, **kw)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        pids = [int(p) for p in out.split()]
        # uvicorn's supervisor also runs a resource tracker; workers are spawn_main children.
        return [p for p in pids if "spawn_main" in _cmdline(p)]

    def stop(self) -> int:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode or 0)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def start_server(
    settings: Settings,
    log_path: Path,
    workers: int = 1,
    timeout: float = 90,
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYBILLGUARD_", "PROMETHEUS"))}
    env.update(extra_env or {})
    env["WAYBILLGUARD_HOME"] = str(settings.home)
    env["WAYBILLGUARD_DATABASE_URL"] = settings.database_url
    log = log_path.open("wb")
    proc = subprocess.Popen(
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
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = Server(proc, port, log_path, settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {server.log()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
            if ready and (workers == 1 or len(server.worker_pids()) >= workers):
                return server
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server did not become ready: {server.log()[-2000:]}")


@dataclass
class Seeded:
    """A home with the access tests' network plus a partner whose secret we know."""

    settings: Settings
    net: Network
    client_secret: str
    assigned: str = ""  # out for delivery, assigned to courier1
    extra: dict[str, Any] = field(default_factory=dict)


def seed_home(tmp: Path, database_url: str | None, count: int = 60) -> Seeded:
    settings = make_settings(tmp / "home", database_url)
    initialise(settings)
    with pytest.MonkeyPatch.context() as mp, open_app(settings) as app:
        mp.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
        net = build_network(app, tmp, count=count)
        own = net.s1_numbers[-1]  # the partner's own shipment, destined to S1
        merchant = net.rows[net.numbers.index(own)]["merchant"]
        _client, secret = identities.add_client(
            app, OPERATOR, "shopx", "HQ", merchant, ["recipient.name", "recipient.address"]
        )
        assigned = net.s1_numbers[0]
        net.advance(assigned, "out_for_delivery")
        from waybillguard.services import deliveries

        deliveries.assign(app, OPERATOR, None, assigned, net.users["courier1"])
        policy_admin.current(app)
    seeded = Seeded(settings, net, secret, assigned)
    seeded.extra["partner_merchant"] = merchant
    seeded.extra["partner_own"] = own
    net.app = None  # type: ignore[assignment]  # closed; the server owns the home now
    return seeded


def backend_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None
    return str(request.getfixturevalue("pg_server").create_database())


def login(server: Server, seeded: Seeded, username: str) -> str:
    """A session token for one user of the network (each logs in once: TOTP codes are
    single-use per account)."""
    net = seeded.net
    body: dict[str, Any] = {"username": username, "password": PASSWORD}
    principal = net.users[username]
    if principal.role is Role.COURIER:
        body["device"] = f"dev-{username}"
    elif username in net.totp:
        body["totp"] = pyotp.TOTP(net.totp[username]).now()
    with server.client() as c:
        r = c.post(f"{API}/auth/login", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def partner_token(server: Server, seeded: Seeded) -> str:
    with server.client() as c:
        r = c.post(
            f"{API}/auth/token", json={"client_id": "shopx", "client_secret": seeded.client_secret}
        )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def tokens_for(server: Server, seeded: Seeded, usernames: list[str]) -> dict[str, str]:
    out = {u: login(server, seeded, u) for u in usernames if u != "shopx"}
    if "shopx" in usernames:
        out["shopx"] = partner_token(server, seeded)
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


@contextlib.contextmanager
def running(settings: Settings, log_path: Path, workers: int = 1) -> Iterator[Server]:
    server = start_server(settings, log_path, workers)
    try:
        yield server
    finally:
        server.stop()
