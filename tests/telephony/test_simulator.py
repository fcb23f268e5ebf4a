"""The whole call flow with real processes and real HTTP: waybillguard's routing
endpoint (uvicorn, `telephony serve`) and the simulated carrier (`telephony simulator`)
as subprocesses; calls dialled into the simulator before and after expiry. Plus the
command line of `numbers` and `courier`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.access.network import OPERATOR, PASSWORD
from tests.conftest import row_pii, scan_text
from tests.telephony.conftest import COURIER_PHONES, Phones
from waybillguard.domain.phone import mask_phone, parse_phone
from waybillguard.services import courier_flow, virtual_numbers
from waybillguard.services.app import App
from waybillguard.services.caller import Caller

MODULE = [sys.executable, "-m", "waybillguard.entrypoints.telephony_cli"]
MAIN = [sys.executable, "-m", "waybillguard"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(app: App, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    env["WAYBILLGUARD_HOME"] = str(app.settings.home)
    if not app.settings.uses_embedded_database:
        env["WAYBILLGUARD_DATABASE_URL"] = app.settings.database_url
    env.update(extra)
    return env


def _http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if _http(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _start_routing(app: App, processes: list[subprocess.Popen[bytes]]) -> str:
    port = _free_port()
    proc = subprocess.Popen(
        [*MODULE, "telephony", "serve", "--port", str(port)],
        env=_env(app),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(proc)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return f"http://127.0.0.1:{port}/api/v1/telephony/route"


def _start_simulator(
    app: App, processes: list[subprocess.Popen[bytes]], route_url: str, token: str
) -> str:
    proc = subprocess.Popen(
        [*MODULE, "telephony", "simulator", "--port", "0", "--route-url", route_url],
        env=_env(app, WAYBILLGUARD_PROVIDER_TOKEN=token),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(proc)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert line.startswith("simulator listening on http://"), line
    base = line.split()[-1]
    _wait_http(f"{base}/health", proc)
    return base


def _dial(sim: str, x: str, ext: str, caller: str) -> dict[str, Any]:
    status, body = _http(f"{sim}/calls", {"virtual_number": x, "extension": ext, "caller": caller})
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@pytest.mark.slow
def test_simulated_calls_before_and_after_expiry(
    phones: Phones, processes: list[subprocess.Popen[bytes]]
) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    binding = virtual_numbers.allocate(app, number)
    x, ext = binding.virtual_number, binding.extension
    token = virtual_numbers.create_provider_token(app, OPERATOR, "simulator")
    route_url = _start_routing(app, processes)
    sim = _start_simulator(app, processes, route_url, token)
    recipient_mask = mask_phone(parse_phone(phones.recipient(number), "r"))

    got = _dial(sim, x, ext, "+86" + COURIER_PHONES["courier1"])
    assert got["outcome"] == "connected", got
    assert (got["target"], got["rule"], got["callee_masked"]) == (
        "recipient",
        "route.courier",
        recipient_mask,
    )
    sender = _dial(sim, x, ext, phones.sender(number))
    assert sender["outcome"] == "connected" and sender["rule"] == "route.sender"
    back = _dial(sim, x, ext, phones.recipient(number))
    assert back["outcome"] == "connected" and back["target"] == "courier"
    assert back["callee_masked"] == mask_phone(parse_phone(COURIER_PHONES["courier1"], "c"))
    for caller in (COURIER_PHONES["courier2"], "13800000000", ""):
        refused = _dial(sim, x, ext, caller)
        assert refused["outcome"] == "refused" and refused["callee_masked"] == ""
        assert refused["announcement"]
    assert _dial(sim, x, "9999", phones.sender(number))["rule"] == "route.unknown_line"

    # a carrier without a valid token gets nothing
    rogue = _start_simulator(app, processes, route_url, "wg_not-a-valid-token")
    denied = _dial(rogue, x, ext, "+86" + COURIER_PHONES["courier1"])
    assert denied["outcome"] == "refused" and denied["rule"] == "provider.http_401"

    # the courier delivers; 15 days later the binding has expired: every call refused
    c1 = Caller(phones.net.users["courier1"], client="dev-courier1")
    courier_flow.deliver(app, c1, number, "photo-abc123")
    assert _dial(sim, x, ext, phones.sender(number))["outcome"] == "connected"
    assert virtual_numbers.expire_due(app, datetime.now(UTC) + timedelta(days=16)) == 1
    for caller in ("+86" + COURIER_PHONES["courier1"], phones.sender(number)):
        after = _dial(sim, x, ext, caller)
        assert after["outcome"] == "refused" and after["rule"] == "route.expired"

    # the simulator's call records and the routing server's output hold no numbers
    status, records = _http(f"{sim}/calls")
    assert status == 200 and len(records) >= 10
    needles = set().union(*(row_pii(r) for r in phones.net.rows)) | set(COURIER_PHONES.values())
    assert scan_text(json.dumps(records, ensure_ascii=False), needles) == []
    for proc in processes:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
        assert scan_text(stderr.decode(errors="replace"), needles) == []


def test_routing_endpoint_refuses_without_token_and_bad_calls(
    phones: Phones, processes: list[subprocess.Popen[bytes]]
) -> None:
    app = phones.app
    route_url = _start_routing(app, processes)
    status, body = _http(route_url, {"virtual_number": "17000000001", "extension": "1000"})
    assert status == 401 and body["action"] == "refuse"
    token = virtual_numbers.create_provider_token(app, OPERATOR, "direct")
    request = urllib.request.Request(
        route_url,
        data=json.dumps({"virtual_number": "x" * 100, "extension": "1"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 422
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number)
    binding = virtual_numbers.allocate(app, number)
    request = urllib.request.Request(
        route_url,
        data=json.dumps(
            {
                "call_id": "c-1",
                "virtual_number": binding.virtual_number,
                "extension": binding.extension,
                "caller": phones.sender(number),
            }
        ).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert body["action"] == "connect" and body["target"] == "recipient"
    assert body["connect_to"] == parse_phone(phones.recipient(number), "r").e164


@pytest.mark.parametrize("backend", ["sqlite"])
def test_command_line(phones: Phones) -> None:
    app = phones.app
    home = str(app.settings.home)
    env = _env(app)

    def run(
        *args: str, stdin: str | None = None, main: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*(MAIN if main else MODULE), *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    added = run("numbers", "pool", "add", "16512345678", "--extensions", "5", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["added"] == 1
    status = json.loads(run("numbers", "pool", "status", "--json").stdout)
    assert status["numbers"] == 3 and status["total"] == 45
    assert status["settings"]["cooldown_days"] == 30

    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    bound = run("numbers", "bind", number, "--json")
    assert bound.returncode == 0, bound.stderr
    line = json.loads(bound.stdout)
    assert json.loads(run("numbers", "bind", number, "--json").stdout) == line

    routed = run(
        "numbers",
        "route",
        "--virtual",
        line["virtual_number"],
        "--ext",
        line["extension"],
        "--caller-stdin",
        "--json",
        stdin=COURIER_PHONES["courier1"] + "\n",
    )
    assert routed.returncode == 0, routed.stderr
    decision = json.loads(routed.stdout)
    assert decision["decision"] == "allow" and decision["target"] == "recipient"
    assert phones.recipient(number) not in routed.stdout  # masked only
    stranger = run(
        "numbers",
        "route",
        "--virtual",
        line["virtual_number"],
        "--ext",
        line["extension"],
        "--caller-stdin",
        "--json",
        stdin="13800000000\n",
    )
    assert stranger.returncode == 3 and json.loads(stranger.stdout)["rule"] == "route.stranger"

    phone = run("numbers", "courier-phone", "courier2", "--phone-stdin", stdin="13911117777\n")
    assert phone.returncode == 0 and "139******77" in phone.stdout

    token = app.vault.issue_delivery_token(number, int(time.time()) + 3600)
    login = run(
        "login",
        "--user",
        "courier1",
        "--password-stdin",
        "--device",
        "dev-courier1",
        stdin=PASSWORD + "\n",
        main=True,
    )
    assert login.returncode == 0, login.stderr
    resolved = run("courier", "resolve", token, "--json")
    assert resolved.returncode == 0, resolved.stderr
    data = json.loads(resolved.stdout)
    assert data["call"]["line"] == f"{line['virtual_number']}转{line['extension']}"
    assert data["address"] == phones.row(number)["recipient"]["address"]
    # a session user may not run the operator's routing check
    check = run(
        "numbers",
        "route",
        "--virtual",
        line["virtual_number"],
        "--ext",
        line["extension"],
        "--caller-stdin",
        stdin="13800000000\n",
    )
    assert check.returncode == 3
    delivered = run("courier", "deliver", number, "--proof", "sig-xyzabc", "--json")
    assert delivered.returncode == 0, delivered.stderr
    assert json.loads(delivered.stdout)["status"] == "delivered"
    again = run("courier", "resolve", token, "--json")
    assert again.returncode == 3 and json.loads(again.stdout)["rule"] == "courier.token_dead"
    assert run("logout", main=True).returncode == 0

    expired = run("numbers", "expire", "--json")
    assert expired.returncode == 0 and json.loads(expired.stdout) == {"expired": 0}
    released = run("numbers", "release", number, "--json")
    assert released.returncode == 0 and json.loads(released.stdout)["state"] == "released"
    assert run("numbers", "show", number).returncode == 1
    assert home  # the same home throughout
