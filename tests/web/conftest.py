"""A seeded home, a real uvicorn server with the API and the console, and headless
Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.access.network import OPERATOR, Network, build_network
from tests.conftest import make_settings, row_pii
from waybillguard.config import Settings
from waybillguard.services import deliveries, exports, reveal, virtual_numbers
from waybillguard.services.app import initialise, open_app
from waybillguard.vault import credentials

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img"
COURIER_PHONE = "13911112222"  # synthetic, registered for courier1
X_NUMBERS = ["17000000001"]


@dataclass
class Console:
    url: str
    settings: Settings
    net: Network
    needles: set[str]
    assigned: str  # out for delivery, assigned to courier1
    qr_token: str  # the label token of `assigned`
    export_id: int  # requested by sec2, waiting for a second person
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def row(self, number: str) -> dict:  # type: ignore[type-arg]
        return self.net.rows[self.net.numbers.index(number)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(tmp: Path) -> tuple[Settings, Network, str, str, int]:
    settings = make_settings(tmp / "home")
    initialise(settings)
    with pytest.MonkeyPatch.context() as mp, open_app(settings) as app:
        mp.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
        net = build_network(app, tmp, count=40)
        assigned = net.s1_numbers[0]
        net.advance(assigned, "out_for_delivery")
        deliveries.assign(app, OPERATOR, None, assigned, net.users["courier1"])
        virtual_numbers.add_numbers(app, OPERATOR, X_NUMBERS, 20)
        virtual_numbers.register_courier_phone(app, OPERATOR, "courier1", COURIER_PHONE)
        token = app.vault.issue_delivery_token(assigned, int(time.time()) + 3600)
        # Some history for the charts: a clerk's reveals of their own station's waybills.
        for number in net.s1_numbers[1:4]:
            done = reveal.reveal(app, net.caller("clerk1"), number, "recipient.name", "delivery")
            assert done.allowed, done.decision
        export_id = exports.request_export(
            app,
            net.caller("sec2"),
            "recipient.name",
            exports.ExportFilter(station="S1", limit=10),
            "legal:CASE-A7",
            "court order for a fraud investigation",
        )
    net.app = None  # type: ignore[assignment]  # closed; the server owns the home now
    return settings, net, assigned, token, export_id


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    settings, net, assigned, token, export_id = _seed(tmp)
    needles: set[str] = {COURIER_PHONE}
    for row in net.rows:
        needles |= row_pii(row)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYBILLGUARD_", "PROMETHEUS"))}
    env["WAYBILLGUARD_HOME"] = str(settings.home)
    env["WAYBILLGUARD_DATABASE_URL"] = settings.database_url
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.web.serve", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(log_path.read_text(errors="replace")[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        yield Console(url, settings, net, needles, assigned, token, export_id, log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )
    yield browser
    browser.close()
