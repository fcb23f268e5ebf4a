"""Every endpoint × every role over HTTP, with the expected status written out, plus one
principal's token against another principal's resources.

Roles: courier, station_clerk, station_manager, cs_agent, security, admin, data_entry,
partner (a client token) and anonymous (no token). `ALLOW`/`DENY` below are the
statuses the role must get; requests are chosen to be harmless (unknown ids, invalid
inputs that pass the role check but fail validation) unless the point is success."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.http.harness import API, ROLE_USERS, Seeded, Server, tokens_for
from waybillguard.services.synth import synth_rows

ROLES = [*ROLE_USERS, "anonymous"]
CREATORS = {"data_entry", "station_clerk", "station_manager", "admin", "partner"}
EVENT_RECORDERS = {"courier", "station_clerk", "station_manager", "admin"}
AUDITORS = {"security", "admin"}
REVIEWERS = {"security", "admin"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Callable[[str], Any] | None
    expect: Callable[[str], set[int]]


def only(roles: set[str], ok: set[int], denied: int = 403) -> Callable[[str], set[int]]:
    return lambda role: ok if role in roles else {denied}


def everyone(ok: set[int]) -> Callable[[str], set[int]]:
    return lambda role: ok


def table(mapping: dict[str, set[int]]) -> Callable[[str], set[int]]:
    return lambda role: mapping[role]


@pytest.fixture(scope="module")
def tokens(server: Server, seeded: Seeded) -> dict[str, str]:
    found = tokens_for(server, seeded, [*ROLE_USERS.values(), "courier2", "manager2"])
    return found


def cases(seeded: Seeded) -> list[Case]:
    net = seeded.net
    partner_merchant = seeded.extra["partner_merchant"]
    unassigned = net.s1_numbers[2]
    to_assign = net.s1_numbers[3]
    own = seeded.extra["partner_own"]  # destined to S1, the partner's merchant, unassigned
    assert own not in (seeded.assigned, unassigned, to_assign)
    other = next(
        n
        for n in net.other_numbers
        if net.rows[net.numbers.index(n)]["merchant"] != partner_merchant
    )
    phone = net.rows[net.numbers.index(own)]["recipient"]["phone"]
    rows = list(synth_rows(len(ROLES) + 2, seed=314))

    def new_row(role: str) -> dict[str, Any]:
        row = dict(rows[ROLES.index(role)])
        row.pop("merchant", None)
        row["order_ref"] = f"MX-{role.replace('_', '-')}"
        return row

    reveal = {"fields": ["recipient.name"], "purpose": "delivery"}
    return [
        Case("whoami", "GET", "/auth/whoami", None, everyone({200})),
        Case("allowance", "GET", "/allowance", None, everyone({200})),
        Case("list", "GET", "/waybills", None, everyone({200})),
        Case(
            "show own-station partner waybill",
            "GET",
            f"/waybills/{own}",
            None,
            table(
                {
                    "courier": {404},
                    "station_clerk": {200},
                    "station_manager": {200},
                    "cs_agent": {200},
                    "security": {200},
                    "admin": {200},
                    "data_entry": {404},
                    "partner": {200},
                }
            ),
        ),
        Case(
            "show another station's waybill",
            "GET",
            f"/waybills/{other}",
            None,
            table(
                {
                    "courier": {404},
                    "station_clerk": {404},
                    "station_manager": {404},
                    "cs_agent": {200},
                    "security": {200},
                    "admin": {200},
                    "data_entry": {404},
                    "partner": {404},
                }
            ),
        ),
        Case(
            "reveal own-station partner waybill",
            "POST",
            f"/waybills/{own}/reveal",
            lambda role: reveal,
            table(
                {
                    "courier": {403},
                    "station_clerk": {200},
                    "station_manager": {200},
                    "cs_agent": {403},
                    "security": {403},
                    "admin": {403},
                    "data_entry": {403},
                    "partner": {200},
                }
            ),
        ),
        Case(
            "reveal another station's waybill",
            "POST",
            f"/waybills/{other}/reveal",
            lambda role: reveal,
            everyone({403}),
        ),
        Case("lookup", "POST", "/lookup", lambda role: {"phone": phone}, everyone({200})),
        Case(
            "lookup reveal",
            "POST",
            "/lookup/reveal",
            lambda role: {"phone": phone, **reveal},
            table(
                {
                    "courier": {403},
                    "station_clerk": {200},
                    "station_manager": {200},
                    "cs_agent": {403},
                    "security": {403},
                    "admin": {403},
                    "data_entry": {403},
                    "partner": {200},
                }
            ),
        ),
        Case("create", "POST", "/waybills", new_row, only(CREATORS, {201})),
        Case(
            "create batch (invalid row)",
            "POST",
            "/waybills/batch",
            lambda role: {"waybills": [{**new_row(role), "order_ref": ""}]},
            only(CREATORS, {422}),
        ),
        Case(
            "record event",
            "POST",
            f"/waybills/{unassigned}/events",
            lambda role: {"status": "picked_up"},
            table(
                {
                    "courier": {404},  # not in a courier's view
                    "station_clerk": {200, 409},
                    "station_manager": {200, 409},
                    "cs_agent": {403},
                    "security": {403},
                    "admin": {200, 409},
                    "data_entry": {403},
                    "partner": {403},
                }
            ),
        ),
        Case(
            "assign",
            "POST",
            f"/waybills/{to_assign}/assign",
            lambda role: {"courier": "courier1"},
            only({"station_clerk", "station_manager", "admin"}, {200}),
        ),
        Case("deliveries", "GET", "/deliveries", None, only({"courier"}, {200})),
        Case(
            "open ticket",
            "POST",
            "/tickets",
            lambda role: {"ticket_id": f"MX-{role[:4]}", "waybill": own, "party": "recipient"},
            only({"cs_agent"}, {201}),
        ),
        Case("close ticket", "POST", "/tickets/NOPE-1/close", None, only({"cs_agent"}, {200})),
        Case("users", "GET", "/users", None, only({"admin"}, {200})),
        Case("user", "GET", "/users/clerk1", None, only({"admin"}, {200})),
        Case(
            "add user (short password)",
            "POST",
            "/users",
            lambda role: {
                "username": "mx-new",
                "role": "courier",
                "unit": "S1",
                "password": "short",
            },
            only({"admin"}, {422}),
        ),
        Case(
            "set grade (unknown)",
            "POST",
            "/users/nobody-x/grade",
            lambda r: {"grade": 1},
            only({"admin"}, {422}),
        ),
        Case("units", "GET", "/units", None, only({"admin"}, {200})),
        Case("disable unit (unknown)", "POST", "/units/NOPE/disable", None, only({"admin"}, {422})),
        Case("clients", "GET", "/clients", None, only({"admin"}, {200})),
        Case("policy", "GET", "/policy", None, only(REVIEWERS, {200})),
        Case("policy history", "GET", "/policy/history", None, only(REVIEWERS, {200})),
        Case(
            "policy check (invalid)",
            "POST",
            "/policy/check",
            lambda r: {"text": "version = 1"},
            only(REVIEWERS, {422}),
        ),
        Case(
            "policy apply (invalid)",
            "POST",
            "/policy/apply",
            lambda r: {"text": "version = 99"},
            only(REVIEWERS, {422}),
        ),
        Case(
            "explain own",
            "POST",
            "/policy/explain",
            lambda r: {"waybill": own, "fields": ["recipient.name"]},
            everyone({200}),
        ),
        Case(
            "explain someone else",
            "POST",
            "/policy/explain",
            lambda r: {"user": "cs1", "waybill": own, "fields": ["recipient.name"]},
            lambda role: {200} if role in REVIEWERS or role == "cs_agent" else {403},
        ),
        Case("approvals", "GET", "/approvals", None, everyone({200})),
        Case("approval (unknown)", "GET", "/approvals/999999", None, everyone({404})),
        Case("vote (unknown)", "POST", "/approvals/999999/approve", None, everyone({404})),
        Case("exports", "GET", "/exports", None, everyone({200})),
        Case(
            "request export",
            "POST",
            "/exports",
            lambda r: {
                "fields": ["recipient.name"],
                "purpose": "legal:MX-1",
                "reason": "matrix test of export requests",
                "station": "S1",
                "limit": 3,
            },
            only({"security", "station_manager"}, {201}),
        ),
        Case(
            "approve export (unknown)",
            "POST",
            "/exports/999999/approve",
            lambda r: {"hours": 1},
            only({"security", "admin"}, {404}),
        ),
        Case(
            "download export (unknown)",
            "GET",
            "/exports/999999/download",
            None,
            everyone({404}),
        ),
        Case(
            "break-glass",
            "POST",
            "/break-glass",
            lambda r: {"reason": "matrix: incident drill", "minutes": 1},
            only({"security"}, {201}),
        ),
        Case("close break-glass", "POST", "/break-glass/close", None, everyone({200})),
        Case("alerts", "GET", "/alerts", None, only(REVIEWERS, {200})),
        Case("ack alert (unknown)", "POST", "/alerts/999999/ack", None, only(REVIEWERS, {200})),
        Case("audit by waybill", "GET", f"/audit/waybills/{own}", None, only(AUDITORS, {200})),
        Case(
            "audit by actor",
            "GET",
            "/audit/actors/clerk1",
            None,
            only({*AUDITORS, "station_manager"}, {200}),
        ),
        Case("top revealers", "GET", "/audit/top-revealers", None, only(AUDITORS, {200})),
        Case("audit status", "GET", "/audit/status", None, only(AUDITORS, {200})),
        Case("new checkpoint", "POST", "/audit/checkpoint", None, only(AUDITORS, {200})),
        Case("checkpoint", "GET", "/audit/checkpoint", None, only(AUDITORS, {200})),
        Case("proof", "GET", "/audit/events/1/proof", None, only(AUDITORS, {200})),
    ]


def test_every_endpoint_for_every_role(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    by_role = {role: tokens[user] for role, user in ROLE_USERS.items()}
    failures = []
    for case in cases(seeded):
        for role in ROLES:
            token = by_role.get(role)
            kwargs: dict[str, Any] = {}
            if case.body is not None:
                kwargs["json"] = case.body(role)
            elif case.method == "POST":
                kwargs["json"] = {}
            r = server.request(token, case.method, API + case.path, **kwargs)
            expected = {401} if role == "anonymous" else case.expect(role)
            if r.status_code not in expected:
                failures.append(
                    f"{case.name} as {role}: {r.status_code} not in {expected}: {r.text[:160]}"
                )
            if r.status_code >= 400 and r.headers.get("content-type", "").startswith(
                "application/json"
            ):
                body = r.json()
                assert "error" in body or "decision" in body, (case.name, role, body)
    assert failures == []


def test_one_principal_against_anothers_resources(
    server: Server, seeded: Seeded, tokens: dict[str, str]
) -> None:
    net = seeded.net
    mine = seeded.assigned  # courier1's waybill, out for delivery
    c2 = tokens["courier2"]
    assert server.request(c2, "GET", f"{API}/waybills/{mine}").status_code == 404
    r = server.request(
        c2,
        "POST",
        f"{API}/waybills/{mine}/reveal",
        json={"fields": ["recipient.address"], "purpose": "delivery"},
    )
    assert r.status_code == 403 and r.json()["rule"] == "courier.not_assigned"
    r = server.request(c2, "POST", f"{API}/waybills/{mine}/events", json={"status": "delivered"})
    assert r.status_code == 404
    assert mine not in server.request(c2, "GET", f"{API}/deliveries").json()["items"]
    # a station manager of another (franchise) station cannot read S1 people's activity
    r = server.request(tokens["manager2"], "GET", f"{API}/audit/actors/clerk1")
    assert r.status_code == 403
    # a partner cannot see or reveal another merchant's shipment
    other = next(
        n
        for n in net.numbers
        if net.rows[net.numbers.index(n)]["merchant"] != net.rows[0]["merchant"]
    )
    partner = tokens["shopx"]
    assert server.request(partner, "GET", f"{API}/waybills/{other}").status_code == 404
    r = server.request(
        partner,
        "POST",
        f"{API}/waybills/{other}/reveal",
        json={"fields": ["recipient.name"], "purpose": "delivery"},
    )
    assert r.status_code == 403 and r.json()["rule"] == "partner.not_own_shipment"
    # nor a field outside its contract on its own shipment
    r = server.request(
        partner,
        "POST",
        f"{API}/waybills/{seeded.extra['partner_own']}/reveal",
        json={"fields": ["recipient.phone"], "purpose": "delivery"},
    )
    assert r.status_code == 403 and r.json()["rule"].startswith("partner.contract"), r.text
    # a manager's export is downloaded by nobody else
    r = server.request(
        tokens["manager1"],
        "POST",
        f"{API}/exports",
        json={
            "fields": ["recipient.name"],
            "purpose": "claim",
            "reason": "claims review for the station",
            "station": "S1",
            "limit": 2,
        },
    )
    assert r.status_code == 201, r.text
    export_id = r.json()["export_id"]
    r = server.request(tokens["manager1"], "POST", f"{API}/exports/{export_id}/approve", json={})
    assert r.status_code == 403  # a station manager approves no export, least of all their own
    assert (
        server.request(
            tokens["sec1"], "POST", f"{API}/exports/{export_id}/approve", json={}
        ).status_code
        == 200
    )
    assert (
        server.request(tokens["manager2"], "GET", f"{API}/exports/{export_id}/download").status_code
        == 404
    )
    assert (
        server.request(tokens["sec1"], "GET", f"{API}/exports/{export_id}/download").status_code
        == 404
    )
    r = server.request(tokens["manager1"], "GET", f"{API}/exports/{export_id}/download")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
