"""The reveal route's fast lane (`entrypoints/http/reveal_lane.py`), on SQLite and
PostgreSQL: it answers exactly as the FastAPI route does, takes only the plain case,
labels its log line and metrics with the route template, and under a burst commits
reveals in groups on SQLite while counting exactly."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.access.network import PASSWORD
from tests.http.harness import API, Seeded
from waybillguard.entrypoints.http.app import create_app
from waybillguard.entrypoints.http.reveal_lane import RevealLane

VOLATILE = ("audit_event", "request_id")


@pytest.fixture(scope="module")
def clients(seeded: Seeded) -> Iterator[tuple[TestClient, TestClient]]:
    """The same home served twice in this process: with the fast lane, and without."""
    with (
        TestClient(create_app(seeded.settings), raise_server_exceptions=False) as fast,
        TestClient(
            create_app(seeded.settings, reveal_lane=False), raise_server_exceptions=False
        ) as plain,
    ):
        yield fast, plain


@pytest.fixture(scope="module")
def tokens(clients: tuple[TestClient, TestClient], seeded: Seeded) -> dict[str, str]:
    fast, _plain = clients
    out: dict[str, str] = {}
    for name in ("clerk1", "courier1"):
        body: dict[str, Any] = {"username": name, "password": PASSWORD}
        if name == "courier1":
            body["device"] = "dev-courier1"
        else:
            body["totp"] = pyotp.TOTP(seeded.net.totp[name]).now()
        r = fast.post(f"{API}/auth/login", json=body)
        assert r.status_code == 200, r.text
        out[name] = r.json()["token"]
    r = fast.post(
        f"{API}/auth/token", json={"client_id": "shopx", "client_secret": seeded.client_secret}
    )
    assert r.status_code == 200, r.text
    out["shopx"] = r.json()["token"]
    return out


def _lane(client: TestClient) -> RevealLane:
    lane = client.app.state.wg_reveal_lane  # type: ignore[attr-defined]
    assert isinstance(lane, RevealLane)
    return lane


def _answer(r: httpx.Response) -> tuple[int, Any]:
    try:
        body = r.json()
    except ValueError:
        return r.status_code, r.content
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return r.status_code, body


def _cases(seeded: Seeded, tokens: dict[str, str]) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, request, taken by the lane) — the request as httpx.Client.post's kwargs."""
    net = seeded.net
    mine, other = net.s1_numbers[1], net.other_numbers[0]
    clerk = {"Authorization": f"Bearer {tokens['clerk1']}"}
    phone = {"fields": ["recipient.phone"], "purpose": "delivery"}

    def post(number: str, headers: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        return {
            "url": f"{API}/waybills/{number}/reveal",
            "headers": clerk if headers is None else headers,
            **kw,
        }

    as_text = {**clerk, "Content-Type": "text/plain"}
    as_json = {**clerk, "Content-Type": "application/json"}
    courier = {"Authorization": f"Bearer {tokens['courier1']}"}
    partner = {"Authorization": f"Bearer {tokens['shopx']}"}
    names = {"fields": ["recipient.name"], "purpose": "delivery"}
    address = {"fields": ["recipient.address"], "purpose": "delivery"}
    two = {**phone, "fields": ["recipient.name", "sender.name"]}
    raw = b'{"fields": ["recipient.phone"], "purpose": "delivery"}'
    return [
        ("allowed", post(mine, json=phone), True),
        ("other station", post(other, json=phone), True),
        ("no such waybill", post("WG0000000000000", json=phone), True),
        ("malformed number", post("WG12", json=phone), True),
        ("number too long", post("W" * 33, json=phone), False),
        ("reason with a phone", post(mine, json={**phone, "reason": "call 13800138000"}), True),
        ("unknown approval", post(mine, json={**phone, "approval_id": 99999}), True),
        ("several fields", post(mine, json=two), True),
        ("no token", post(mine, headers={}, json=phone), False),
        ("unknown token", post(mine, headers={"Authorization": "Bearer wg_x"}, json=phone), False),
        ("basic auth", post(mine, headers={"Authorization": "Basic eDp5"}, json=phone), False),
        ("broken JSON", post(mine, content=b'{"fields": [', headers=as_json), False),
        ("JSON array", post(mine, json=[phone]), False),
        ("extra key", post(mine, json={**phone, "extra": 1}), False),
        ("no purpose", post(mine, json={"fields": ["recipient.phone"]}), False),
        ("text/plain body", post(mine, content=raw, headers=as_text), False),
        ("courier's delivery", post(seeded.assigned, headers=courier, json=address), True),
        ("partner's own", post(seeded.extra["partner_own"], headers=partner, json=names), True),
        ("partner's other", post(mine, headers=partner, json=names), True),
        ("step-up code", post(mine, json={**phone, "totp": "000000", "reason": "lost"}), False),
    ]


def test_both_lanes_answer_every_request_the_same(
    clients: tuple[TestClient, TestClient], seeded: Seeded, tokens: dict[str, str]
) -> None:
    fast, plain = clients
    lane = _lane(fast)
    statuses = Counter()
    for label, request, taken in _cases(seeded, tokens):
        before = lane.calls
        got = _answer(fast.post(**request))
        assert (lane.calls > before) == taken, label
        expected = _answer(plain.post(**request))
        assert got == expected, label
        statuses[got[0]] += 1
    # the cases cover allow, refusals, bad input and missing authentication
    assert {200, 401, 403, 422} <= set(statuses), statuses


def test_the_lane_reveals_the_plaintext_and_labels_metrics_with_the_template(
    clients: tuple[TestClient, TestClient], seeded: Seeded, tokens: dict[str, str]
) -> None:
    fast, _plain = clients
    number = seeded.net.s1_numbers[2]
    row = seeded.net.rows[seeded.net.numbers.index(number)]
    before = _lane(fast).calls
    r = fast.post(
        f"{API}/waybills/{number}/reveal",
        headers={"Authorization": f"Bearer {tokens['clerk1']}", "X-Request-ID": "lane-check-1"},
        json={"fields": ["recipient.phone", "recipient.address"], "purpose": "delivery"},
    )
    assert _lane(fast).calls == before + 1
    assert r.status_code == 200 and r.headers["x-request-id"] == "lane-check-1"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["decision"] == "allow" and body["tracking_number"] == number
    assert body["fields"]["recipient.phone"] == row["recipient"]["phone"]
    assert body["fields"]["recipient.address"] == row["recipient"]["address"]
    assert isinstance(body["audit_event"], int)
    metrics = fast.get("/metrics").text
    template = 'route="/api/v1/waybills/{number}/reveal"'
    assert any(
        line.startswith("waybillguard_http_requests_total{")
        and template in line
        and 'status="2xx"' in line
        for line in metrics.splitlines()
    )
    assert "/waybills/" + number not in metrics


async def _burst(api: FastAPI, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://lane") as client:
            answers = await asyncio.gather(*(client.post(**r) for r in requests))
            api.state.burst_lane = api.state.wg_reveal_lane
            return list(answers)


def test_a_burst_is_committed_in_groups_and_counted_exactly(
    clients: tuple[TestClient, TestClient], seeded: Seeded
) -> None:
    """cs2 (grade 2, no fresh second factor): 20 an hour freely. 40 reveals at once
    through the lane: exactly 20 allowed, the rest stepped up; on SQLite the lane's
    thread took them in fewer groups than requests."""
    fast, _plain = clients
    body = {
        "username": "cs2",
        "password": PASSWORD,
        "totp": pyotp.TOTP(seeded.net.totp["cs2"]).now(),
    }
    token = fast.post(f"{API}/auth/login", json=body).json()["token"]
    number = seeded.net.numbers[5]
    phone = seeded.net.rows[5]["recipient"]["phone"]
    ticket = {
        "ticket_id": "LANE-1",
        "waybill": number,
        "party": "recipient",
        "contact_phone": phone,
    }
    headers = {"Authorization": f"Bearer {token}"}
    assert fast.post(f"{API}/tickets", json=ticket, headers=headers).status_code == 201
    api = create_app(seeded.settings)
    request = {
        "url": f"{API}/waybills/{number}/reveal",
        "headers": headers,
        "json": {"fields": ["recipient.phone"], "purpose": "ticket:LANE-1"},
    }
    # the login's second factor is fresh for a while: step-up bands need a reason too,
    # and these requests carry none, so beyond the allowance each is stepped up
    answers = asyncio.run(_burst(api, [request] * 40))
    decisions = Counter(r.json()["decision"] for r in answers)
    assert decisions == {"allow": 20, "step_up": 20}, decisions
    lane = api.state.burst_lane
    assert lane.calls == 40
    if lane.grouped:
        assert 1 <= lane.batches < 40
    else:
        assert lane.batches == 0
    allowance = fast.get(f"{API}/allowance", headers=headers).json()
    assert allowance["hour"]["used"] == 20


def test_concurrent_requests_share_one_session_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session whose cache entry expired is looked up once for all the requests that
    arrive meanwhile; a failed lookup fails each of them with its own AuthError."""
    from waybillguard.entrypoints.http import deps
    from waybillguard.services import auth
    from waybillguard.services.caller import Caller

    looked_up: list[str] = []
    principal = object()

    def slow_lookup(_app: object, token: str, client: str) -> Caller:
        looked_up.append(token)
        time.sleep(0.05)
        if token == "wg_revoked":
            raise auth.AuthError("session_revoked", "revoked")
        return Caller(principal, client=client, session_token=token)  # type: ignore[arg-type]

    monkeypatch.setattr(deps, "from_session", slow_lookup)

    async def many(token: str) -> list[Any]:
        return await asyncio.gather(
            *(deps.caller_for(None, token, "http:test") for _ in range(10)),  # type: ignore[arg-type]
            return_exceptions=True,
        )

    callers = asyncio.run(many("wg_shared"))
    assert looked_up == ["wg_shared"]
    assert all(isinstance(c, Caller) and c.session_token == "wg_shared" for c in callers)
    assert deps.SESSION_CACHE.get("wg_shared", "http:test") is callers[0]

    looked_up.clear()
    failures = asyncio.run(many("wg_revoked"))
    assert all(isinstance(f, auth.AuthError) and f.code == "session_revoked" for f in failures)
    assert deps.SESSION_CACHE.get("wg_revoked", "http:test") is None
    assert deps._LOOKUPS == {}


def test_the_lane_survives_its_thread_dying_and_a_closed_loop(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread killed by a BaseException answers its group with an error and a new
    thread serves the next reveal; results for a loop that closed meanwhile are dropped
    without stopping the thread."""
    from waybillguard.entrypoints.http import reveal_lane
    from waybillguard.services.reveal import RevealCall

    lane = RevealLane(app)
    if not lane.grouped:
        pytest.skip("PostgreSQL runs each reveal on the thread pool, not on the lane's thread")
    outcome = object()
    failures = [SystemExit("simulated")]

    def fake_batch(_app: object, calls: list[RevealCall]) -> list[object]:
        if failures:
            raise failures.pop()
        return [outcome] * len(calls)

    monkeypatch.setattr(reveal_lane, "reveal_batch", fake_batch)
    call = RevealCall(None, "WG1", "recipient.phone", "delivery")  # type: ignore[arg-type]

    async def one() -> object:
        return await lane.reveal(call)

    with pytest.raises(RuntimeError, match="stopped"):
        asyncio.run(one())
    first = lane._thread
    assert asyncio.run(one()) is outcome
    assert lane._thread is not first

    # a loop that is gone when its answers come back
    gone = asyncio.new_event_loop()
    future = gone.create_future()
    gone.close()
    reveal_lane._deliver([(call, future, gone)], [outcome])  # type: ignore[list-item]
    assert asyncio.run(one()) is outcome
    lane.close()
