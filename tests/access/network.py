"""A small courier network for access-control tests: units, one user per role, a
partner client, imported synthetic waybills routed to station S1."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from waybillguard.domain.identity import Principal, Role
from waybillguard.services import identities, tickets, waybills
from waybillguard.services.activity import Actor
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

OPERATOR = Actor.local_operator()
PASSWORD = "correct horse battery"


@dataclass
class Network:
    app: App
    rows: list[dict]  # type: ignore[type-arg]
    numbers: list[str]  # tracking numbers, in row order
    s1_numbers: list[str]  # destined to S1
    other_numbers: list[str]  # neither from nor to S1/S2
    users: dict[str, Principal] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)

    def caller(self, username: str, *, mfa: bool = True) -> Caller:
        principal = identities.get_principal(self.app, username)
        assert principal is not None
        return Caller(principal, client="test", mfa_at=datetime.now(UTC) if mfa else None)

    def open_ticket(self, ticket_id: str, number: str, party: str, by: str = "cs1") -> bool:
        """A ticket verified by the party's own phone (what the default policy needs)."""
        phone = self.rows[self.numbers.index(number)][party]["phone"]
        return tickets.open_ticket(self.app, self.caller(by).actor, ticket_id, number, party, phone)

    def advance(self, number: str, to: str) -> None:
        path = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
        current = waybills.show(self.app, number)["status"]
        start = path.index(current) + 1 if current in path else 0
        for status in path[start : path.index(to) + 1]:
            waybills.record_event(self.app, number, status)


def build_network(app: App, tmp_path: Path, count: int = 60, seed: int = 5) -> Network:
    data = tmp_path / "net.jsonl"
    write_synth(data, count, seed=seed)
    import_file(app, data, workers=1)
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    views = waybills.list_waybills(app, count)
    by_ref = {v["order_ref"]: v for v in views}
    ordered = [by_ref[r["order_ref"]] for r in rows]
    s1_cover = sorted({v["destination_adcode"] for v in ordered[:10]})
    s2_adcode = next(
        v["destination_adcode"] for v in ordered if v["destination_adcode"] not in s1_cover
    )
    covered = {*s1_cover, s2_adcode}
    identities.add_unit(app, OPERATOR, "HQ", "hq", "总部")
    identities.add_unit(app, OPERATOR, "EAST", "region", "华东大区", parent="HQ")
    identities.add_unit(app, OPERATOR, "S1", "station", "一号网点", parent="EAST", covers=s1_cover)
    identities.add_unit(
        app,
        OPERATOR,
        "S2",
        "station",
        "二号网点",
        parent="EAST",
        covers=[s2_adcode],
        franchise=True,
    )
    net = Network(
        app=app,
        rows=rows,
        numbers=[v["tracking_number"] for v in ordered],
        s1_numbers=[v["tracking_number"] for v in ordered if v["destination_adcode"] in s1_cover],
        other_numbers=[
            v["tracking_number"]
            for v in ordered
            if v["destination_adcode"] not in covered and v["origin_adcode"] not in covered
        ],
    )
    specs = [
        ("courier1", Role.COURIER, "S1"),
        ("courier2", Role.COURIER, "S1"),
        ("courier3", Role.COURIER, "S2"),
        ("clerk1", Role.STATION_CLERK, "S1"),
        ("clerk2", Role.STATION_CLERK, "S2"),
        ("manager1", Role.STATION_MANAGER, "S1"),
        ("manager2", Role.STATION_MANAGER, "S2"),
        ("regionmgr", Role.STATION_MANAGER, "EAST"),
        ("cs1", Role.CS_AGENT, "HQ"),
        ("cs2", Role.CS_AGENT, "HQ"),
        ("hqmgr", Role.STATION_MANAGER, "HQ"),
        ("sec1", Role.SECURITY, "HQ"),
        ("sec2", Role.SECURITY, "HQ"),
        ("admin1", Role.ADMIN, "HQ"),
        ("entry1", Role.DATA_ENTRY, "S1"),
    ]
    for username, role, unit in specs:
        device = f"dev-{username}" if role is Role.COURIER else None
        principal, secret = identities.add_user(
            app, OPERATOR, username, role, unit, password=PASSWORD, device_id=device
        )
        net.users[username] = principal
        if secret:
            net.totp[username] = secret
    merchant = rows[0]["merchant"]
    client, _secret = identities.add_client(
        app, OPERATOR, "shop1", "HQ", merchant, ["recipient.name", "recipient.address"]
    )
    net.users["shop1"] = client
    return net
