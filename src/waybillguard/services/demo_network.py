"""The demo's synthetic courier network: units, one user of every role, a merchant
partner, waybills in various states. Passwords and TOTP secrets are demo values printed
for the person trying the console; never use this in production."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from waybillguard.domain.fields import PII_FIELDS
from waybillguard.domain.identity import Role
from waybillguard.services import deliveries, identities, tickets, virtual_numbers, waybills
from waybillguard.services.activity import Actor
from waybillguard.services.app import App

OPERATOR = Actor(name="demo", role="operator", client="demo")
DEMO_PASSWORD = "waybillguard-demo-2026"  # noqa: S105 - a published demo credential
STATES = {"picked_up": 400, "in_transit": 300, "out_for_delivery": 200, "delivered": 100}
DEMO_TICKETS = 3
USERS = (
    ("courier1", Role.COURIER, "S1"),
    ("clerk1", Role.STATION_CLERK, "S1"),
    ("manager1", Role.STATION_MANAGER, "S1"),
    ("cs1", Role.CS_AGENT, "HQ"),
    ("sec1", Role.SECURITY, "HQ"),
    ("sec2", Role.SECURITY, "HQ"),
    ("admin1", Role.ADMIN, "HQ"),
    ("entry1", Role.DATA_ENTRY, "S1"),
)


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    role: str
    unit: str
    totp_secret: str | None
    device: str | None


def open_demo_tickets(app: App, source: Path, tickets_file: Path) -> dict[str, str]:
    """Customer-service tickets for the demo's cs1 to reveal under: opened as a ticketing
    system would, with the phone each customer called from (read from the demo's own
    synthetic source file), so they are verified. Ticket id -> tracking number; created
    once, read back from `tickets_file` later."""
    if tickets_file.exists():
        opened: dict[str, str] = json.loads(tickets_file.read_text("utf-8"))
        return opened
    by_order = {(w["merchant"], w["order_ref"]): w for w in waybills.list_waybills(app, 50)}
    opened = {}
    with source.open(encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            found = by_order.get((row["merchant"], row["order_ref"]))
            if found is None:
                continue
            ticket = f"DEMO-{len(opened) + 1}"
            number = str(found["tracking_number"])
            phone = row["recipient"]["phone"]
            tickets.open_ticket(app, OPERATOR, ticket, number, "recipient", phone)
            opened[ticket] = number
            if len(opened) == DEMO_TICKETS:
                break
    tickets_file.write_text(json.dumps(opened, indent=1), "utf-8")
    return opened


def build(app: App, credentials_file: Path) -> list[DemoLogin]:
    """Create the network once; later runs read the logins back from `credentials_file`."""
    if credentials_file.exists():
        return [DemoLogin(**d) for d in json.loads(credentials_file.read_text("utf-8"))]
    page = waybills.list_waybills(app, 2000, 0, OPERATOR)
    s1 = sorted({w["destination_adcode"] for w in page[:600]})
    s2 = sorted({w["destination_adcode"] for w in page[600:1200]} - set(s1))
    identities.add_unit(app, OPERATOR, "HQ", "hq", "总部")
    identities.add_unit(app, OPERATOR, "EAST", "region", "华东大区", parent="HQ")
    identities.add_unit(app, OPERATOR, "S1", "station", "一号网点", parent="EAST", covers=s1)
    identities.add_unit(
        app, OPERATOR, "S2", "station", "二号加盟网点", parent="EAST", covers=s2, franchise=True
    )
    logins = []
    for username, role, unit in USERS:
        device = "demo-pda-1" if role is Role.COURIER else None
        _principal, secret = identities.add_user(
            app, OPERATOR, username, role, unit, password=DEMO_PASSWORD, device_id=device
        )
        logins.append(DemoLogin(username, role.value, unit, secret, device))
    merchant = page[0]["merchant"]
    _client, client_secret = identities.add_client(
        app, OPERATOR, "shop1", "HQ", merchant, [f for f in PII_FIELDS if f.startswith("recipient")]
    )
    logins.append(DemoLogin("shop1", Role.PARTNER.value, "HQ", None, None))
    _advance(app, page)
    virtual_numbers.add_numbers(app, OPERATOR, ["17000001234", "17000005678", "17000009012"])
    credentials_file.write_text(
        json.dumps([asdict(d) for d in logins], ensure_ascii=False, indent=1), "utf-8"
    )
    credentials_file.chmod(0o600)
    (credentials_file.parent / "demo-client-secret.txt").write_text(client_secret + "\n")
    return logins


def _advance(app: App, page: list[dict[str, object]]) -> None:
    """Move some waybills along their lifecycle; the courier gets today's deliveries."""
    path = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
    courier = identities.get_principal(app, "courier1")
    assert courier is not None
    todo = [w for w in page if w.get("destination_station") == "S1"]
    start = 0
    for state, count in STATES.items():
        for w in todo[start : start + count]:
            number = str(w["tracking_number"])
            if state in ("out_for_delivery", "delivered"):
                deliveries.assign(app, OPERATOR, None, number, courier)
            for step in path[: path.index(state) + 1]:
                waybills.record_event(app, number, step, OPERATOR)
        start += count
