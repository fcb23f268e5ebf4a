"""The demo's network as `make demo` builds it: every role, and customer-service tickets
that the default policy accepts (verified by the caller's phone), on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import row_pii, scan_text, seeded_rows
from waybillguard.services import demo_network, identities, reveal
from waybillguard.services.app import App
from waybillguard.services.caller import Caller
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth


def test_demo_network_gives_cs1_verified_tickets(app: App, tmp_path: Path) -> None:
    source = tmp_path / "demo-waybills.jsonl"
    write_synth(source, 1500, seed=7)
    import_file(app, source, workers=1)
    logins = demo_network.build(app, tmp_path / "demo-logins.json")
    assert {login.role for login in logins} >= {"cs_agent", "courier", "security", "partner"}
    tickets_file = tmp_path / "demo-tickets.json"
    opened = demo_network.open_demo_tickets(app, source, tickets_file)
    assert len(opened) == demo_network.DEMO_TICKETS
    # A second run reads them back instead of opening them again.
    assert demo_network.open_demo_tickets(app, source, tickets_file) == opened
    # The file names tickets and tracking numbers only, never the callers' phones.
    needles = set().union(*(row_pii(r) for r in seeded_rows(source)))
    assert scan_text(tickets_file.read_text("utf-8"), needles) == []
    cs1 = identities.get_principal(app, "cs1")
    assert cs1 is not None
    caller = Caller(cs1, client="test", mfa_at=datetime.now(UTC))
    for ticket, number in opened.items():
        got = reveal.reveal(app, caller, number, "recipient.phone", f"ticket:{ticket}")
        assert got.allowed, got.decision
        other = reveal.reveal(app, caller, number, "sender.phone", f"ticket:{ticket}")
        assert other.decision.rule == "cs_agent.ticket_party"
    assert json.loads(tickets_file.read_text("utf-8")) == opened
