"""Reveal end to end through the services, on SQLite and PostgreSQL: policy, tickets,
volume tiers, approvals, ceilings, break-glass, fail-closed auditing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from tests.access.network import OPERATOR, Network, build_network
from tests.conftest import row_pii, scan_text
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import PrincipalState
from waybillguard.services import (
    alerts,
    approvals,
    audit,
    break_glass,
    deliveries,
    identities,
    policy_admin,
    reveal,
    tickets,
)
from waybillguard.services.app import App


@pytest.fixture
def net(app: App, tmp_path: Path) -> Network:
    return build_network(app, tmp_path)


def _row(net: Network, number: str) -> dict:  # type: ignore[type-arg]
    return net.rows[net.numbers.index(number)]


def _charges(app: App) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT COALESCE(SUM(records), 0) FROM quota_charges")).scalar_one()
        )


def test_courier_sees_address_of_assigned_delivery_only(net: Network) -> None:
    app = net.app
    number, other = net.s1_numbers[0], net.s1_numbers[1]
    deliveries.assign(app, OPERATOR, None, number, net.users["courier1"])
    net.advance(number, "in_transit")
    early = reveal.reveal(app, net.caller("courier1"), number, "recipient.address", "delivery")
    assert early.decision.effect == "deny" and early.decision.rule == "courier.status"

    net.advance(number, "out_for_delivery")
    got = reveal.reveal(app, net.caller("courier1"), number, "recipient.address", "delivery")
    assert got.allowed, got.decision
    assert got.fields[number]["recipient.address"] == _row(net, number)["recipient"]["address"]
    assert got.as_json()["fields"] == {
        "recipient.address": _row(net, number)["recipient"]["address"]
    }

    second = reveal.reveal(app, net.caller("courier2"), number, "recipient.address", "delivery")
    assert second.decision.effect == "deny" and second.decision.rule == "courier.not_assigned"
    assert second.fields == {}
    phone = reveal.reveal(app, net.caller("courier1"), number, "sender.phone", "delivery")
    assert phone.decision.rule == "courier.field.sender.phone" and not phone.fields
    unassigned = reveal.reveal(app, net.caller("courier1"), other, "recipient.address", "delivery")
    assert unassigned.decision.rule == "courier.not_assigned"


def test_courier_grace_period_after_delivery(net: Network) -> None:
    app = net.app
    number = net.s1_numbers[0]
    deliveries.assign(app, OPERATOR, None, number, net.users["courier1"])
    net.advance(number, "delivered")
    soon = datetime.now(UTC) + timedelta(minutes=100)
    later = datetime.now(UTC) + timedelta(minutes=125)
    c = net.caller("courier1")
    assert reveal.reveal(app, c, number, "recipient.address", "delivery", now=soon).allowed
    late = reveal.reveal(app, c, number, "recipient.address", "delivery", now=later)
    assert late.decision.rule == "courier.status"


def test_courier_cannot_be_assigned_another_stations_waybill(net: Network) -> None:
    with pytest.raises(deliveries.AssignmentRefused) as info:
        deliveries.assign(net.app, OPERATOR, None, net.s1_numbers[0], net.users["courier3"])
    assert info.value.code == "assign.other_station"
    with pytest.raises(deliveries.AssignmentRefused):
        deliveries.assign(
            net.app, OPERATOR, net.users["clerk2"], net.s1_numbers[0], net.users["courier1"]
        )


def test_station_staff_only_own_station(net: Network) -> None:
    app = net.app
    own, other = net.s1_numbers[0], net.other_numbers[0]
    ok = reveal.reveal(app, net.caller("clerk1"), own, "recipient.phone", "return")
    assert ok.allowed and ok.fields[own]["recipient.phone"] == _row(net, own)["recipient"]["phone"]
    no = reveal.reveal(app, net.caller("clerk1"), other, "recipient.phone", "return")
    assert no.decision.rule == "station_clerk.not_own_station"
    franchise = reveal.reveal(app, net.caller("clerk2"), own, "recipient.phone", "return")
    assert franchise.decision.rule == "station_clerk.not_own_station"
    purpose = reveal.reveal(app, net.caller("clerk1"), own, "recipient.phone", "ticket:T9")
    assert purpose.decision.rule == "station_clerk.purpose"


def test_closed_waybills_only_for_a_while(net: Network) -> None:
    """Station staff and partners reveal a closed waybill only for `closed_days` after it
    closed (30 for clerks, 90 for managers and partners by default): the archive of
    delivered parcels is what insiders harvest."""
    app = net.app
    number = net.s1_numbers[1]
    net.advance(number, "delivered")
    now = datetime.now(UTC)
    clerk, manager = net.caller("clerk1"), net.caller("manager1")
    day29, day31 = now + timedelta(days=29), now + timedelta(days=31)
    assert reveal.reveal(app, clerk, number, "recipient.phone", "claim", now=day29).allowed
    late = reveal.reveal(app, clerk, number, "recipient.phone", "claim", now=day31)
    assert not late.allowed and late.decision.rule == "station_clerk.closed"
    assert late.fields == {}
    explained = reveal.explain(app, clerk.principal, number, "recipient.phone", "claim", now=day31)
    assert explained["rule"] == "station_clerk.closed"
    assert reveal.reveal(app, manager, number, "recipient.phone", "claim", now=day31).allowed
    day91 = now + timedelta(days=91)
    old = reveal.reveal(app, manager, number, "recipient.phone", "claim", now=day91)
    assert old.decision.rule == "station_manager.closed"
    # An open waybill has no such limit.
    open_number = net.s1_numbers[2]
    assert reveal.reveal(app, clerk, open_number, "recipient.phone", "claim", now=day91).allowed


def test_customer_service_ticket_binds_waybill_and_party(net: Network) -> None:
    app = net.app
    a, b = net.numbers[0], net.numbers[1]
    cs = net.caller("cs1")
    made_up = reveal.reveal(app, cs, a, "recipient.phone", "ticket:T123")
    assert made_up.decision.rule == "cs_agent.ticket_not_open" and not made_up.fields
    assert net.open_ticket("T123", a, "recipient")
    first = reveal.reveal(app, cs, a, "recipient.phone,recipient.name", "ticket:T123")
    assert first.allowed
    again = reveal.reveal(app, cs, a, "recipient.address", "ticket:T123")
    assert again.allowed
    sender = reveal.reveal(app, cs, a, "sender.phone", "ticket:T123")
    assert sender.decision.rule == "cs_agent.ticket_party"
    elsewhere = reveal.reveal(app, cs, b, "recipient.phone", "ticket:T123")
    assert elsewhere.decision.rule == "cs_agent.ticket_waybill"
    mixed = reveal.reveal(app, cs, b, "recipient.phone,sender.phone", "ticket:T124")
    assert mixed.decision.rule == "cs_agent.ticket_one_party"
    no_ticket = reveal.reveal(app, cs, b, "recipient.phone", "delivery")
    assert no_ticket.decision.rule == "cs_agent.purpose"


def test_a_ticket_is_verified_only_by_the_partys_own_phone(net: Network) -> None:
    app = net.app
    a, b = net.numbers[3], net.numbers[4]
    cs = net.caller("cs1")
    row_a, row_b = (net.rows[net.numbers.index(n)] for n in (a, b))
    # Another waybill's phone, or the other party's, does not open a ticket: refused and
    # audited, nothing stored.
    for ticket, phone in (("V1", row_b["recipient"]["phone"]), ("V2", row_a["sender"]["phone"])):
        with pytest.raises(tickets.TicketError) as refused:
            tickets.open_ticket(app, cs.actor, ticket, a, "recipient", phone)
        assert refused.value.code == "ticket.contact_mismatch"
        denied = reveal.reveal(app, cs, a, "recipient.phone", f"ticket:{ticket}")
        assert denied.decision.rule == "cs_agent.ticket_not_open"
    events = [e for e in audit.by_waybill(app, a) if e["action"] == "ticket.open"]
    assert [(e["decision"], e["rule"]) for e in events] == [("deny", "ticket.contact_mismatch")] * 2
    # Without a phone the ticket opens unverified, which the default policy refuses.
    assert tickets.open_ticket(app, cs.actor, "V3", a, "recipient") is False
    unverified = reveal.reveal(app, cs, a, "recipient.phone", "ticket:V3")
    assert unverified.decision.rule == "cs_agent.ticket_unverified"
    # The party's own phone, written as a customer may (spaces, +86), verifies it.
    digits = "".join(c for c in row_a["recipient"]["phone"] if c.isdigit())[-11:]
    spaced = f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
    assert tickets.open_ticket(app, cs.actor, "V4", a, "recipient", spaced) is True
    assert reveal.reveal(app, cs, a, "recipient.phone", "ticket:V4").allowed


def test_guessing_phones_stops_after_a_few_mismatches_and_alerts(net: Network) -> None:
    """A masked phone still hides six digits: a million tries would find the number.
    After MAX_MISMATCHES refusals within an hour the agent opens no ticket with a phone
    (not even the right one), security gets one alert, and nothing was stored."""
    app = net.app
    number = net.numbers[5]
    cs = net.caller("cs1")
    wrong = net.rows[6]["recipient"]["phone"]
    for i in range(tickets.MAX_MISMATCHES):
        with pytest.raises(tickets.TicketError) as refused:
            tickets.open_ticket(app, cs.actor, f"G{i}", number, "recipient", wrong)
        assert refused.value.code == "ticket.contact_mismatch"
    right = net.rows[5]["recipient"]["phone"]
    with pytest.raises(tickets.TicketError) as paused:
        tickets.open_ticket(app, cs.actor, "G-right", number, "recipient", right)
    assert paused.value.code == "ticket.contact_attempts"
    assert right not in str(paused.value)
    raised = [a for a in alerts.list_alerts(app) if a["kind"] == "ticket.contact_mismatches"]
    assert len(raised) == 1 and "cs1" in raised[0]["message"]
    assert scan_text(raised[0]["message"], {right, wrong}) == []
    rules = [e["rule"] for e in audit.by_waybill(app, number) if e["action"] == "ticket.open"]
    assert rules == ["ticket.contact_mismatch"] * tickets.MAX_MISMATCHES + [
        "ticket.contact_attempts"
    ]
    assert reveal.reveal(app, cs, number, "recipient.phone", "ticket:G-right").decision.rule == (
        "cs_agent.ticket_not_open"
    )
    # Another agent is not affected.
    assert net.open_ticket("G-other", number, "recipient", by="cs2")


def test_partner_own_shipments_and_contract_fields(net: Network) -> None:
    app = net.app
    merchant = net.rows[0]["merchant"]
    own = next(n for n, r in zip(net.numbers, net.rows, strict=True) if r["merchant"] == merchant)
    foreign = next(
        (n for n, r in zip(net.numbers, net.rows, strict=True) if r["merchant"] != merchant), None
    )
    shop = net.caller("shop1")
    assert reveal.reveal(app, shop, own, "recipient.address", "return").allowed
    outside = reveal.reveal(app, shop, own, "recipient.phone", "return")
    assert outside.decision.rule == "partner.contract.recipient.phone"
    if foreign is not None:
        other = reveal.reveal(app, shop, foreign, "recipient.address", "return")
        assert other.decision.rule == "partner.not_own_shipment"


@pytest.mark.parametrize("username", ["admin1", "sec1", "entry1"])
def test_no_nationwide_plaintext_by_default(net: Network, username: str) -> None:
    got = reveal.reveal(
        net.app, net.caller(username), net.numbers[0], "recipient.phone", "legal:L1"
    )
    assert not got.allowed and not got.fields


def test_break_glass_needs_reason_alerts_and_expires(net: Network) -> None:
    app = net.app
    sec = net.caller("sec1")
    with pytest.raises(FieldError):
        break_glass.open_grant(app, sec, "short", 30)
    with pytest.raises(break_glass.BreakGlassRefused):
        break_glass.open_grant(app, net.caller("admin1"), "incident 42 investigation", 30)
    with pytest.raises(FieldError):
        break_glass.open_grant(app, sec, "incident 42 investigation", 100_000)
    stale = net.caller("sec1", mfa=False)
    with pytest.raises(break_glass.BreakGlassRefused):
        break_glass.open_grant(app, stale, "incident 42 investigation", 30)
    grant = break_glass.open_grant(app, sec, "incident 42 investigation", 30)
    assert any(a["kind"] == "break_glass" for a in alerts.list_alerts(app))
    number = net.other_numbers[0]
    no_reason = reveal.reveal(app, sec, number, "recipient.phone", "legal:L1")
    assert no_reason.decision.effect == "step_up"
    ok = reveal.reveal(app, sec, number, "recipient.phone", "legal:L1", reason="court order 7")
    assert ok.allowed and ok.decision.rule.startswith("break_glass")
    after = grant.expires_at + timedelta(seconds=1)
    expired = reveal.reveal(
        app, sec, number, "recipient.phone", "legal:L1", reason="court order 7", now=after
    )
    assert not expired.allowed


def test_cs_agent_allowance_then_step_up_then_locked(net: Network) -> None:
    """Default policy, grade 2: 20 an hour freely, 10 more with step-up, then locked."""
    app = net.app
    cs_stale = net.caller("cs1", mfa=False)
    number = net.numbers[2]
    net.open_ticket("A1", number, "recipient")
    decisions = []
    for _ in range(20):
        got = reveal.reveal(app, cs_stale, number, "recipient.phone", "ticket:A1")
        decisions.append(got.decision.effect)
    assert decisions == ["allow"] * 20
    step = reveal.reveal(app, cs_stale, number, "recipient.phone", "ticket:A1")
    assert step.decision.effect == "step_up" and not step.fields
    no_reason = reveal.reveal(app, net.caller("cs1"), number, "recipient.phone", "ticket:A1")
    assert no_reason.decision.effect == "step_up"
    cs = net.caller("cs1")
    for _ in range(10):
        got = reveal.reveal(
            app, cs, number, "recipient.phone", "ticket:A1", reason="caller lost parcel"
        )
        assert got.allowed, got.decision
    assert _charges(app) == 30
    locked = reveal.reveal(
        app, cs, number, "recipient.phone", "ticket:A1", reason="caller lost parcel"
    )
    assert locked.decision.effect == "locked" and not locked.fields
    assert locked.request_id is not None
    assert identities.get_principal(app, "cs1").state is PrincipalState.LOCKED  # type: ignore[union-attr]
    assert any(a["kind"] == "quota.ceiling" for a in alerts.list_alerts(app))
    still = reveal.reveal(
        app, cs, number, "recipient.phone", "ticket:A1", reason="caller lost parcel"
    )
    assert still.decision.rule == "account.locked"
    assert _charges(app) == 30

    # Unlocking is a review by two different people: the agent's manager, then security.
    lookup = identities.get_principal_by_id
    with pytest.raises(approvals.ApprovalError) as info:
        approvals.vote(app, net.caller("sec1"), locked.request_id, "approve", lookup)
    assert info.value.code == "approval.not_manager"
    with pytest.raises(approvals.ApprovalError):
        approvals.vote(app, net.caller("manager1"), locked.request_id, "approve", lookup)
    first = approvals.vote(app, net.caller("hqmgr"), locked.request_id, "approve", lookup)
    assert first.state == "pending"
    with pytest.raises(approvals.ApprovalError):
        approvals.vote(app, net.caller("hqmgr"), locked.request_id, "approve", lookup)
    second = approvals.vote(app, net.caller("sec1"), locked.request_id, "approve", lookup)
    assert second.state == "approved"
    assert identities.get_principal(app, "cs1").state is PrincipalState.ACTIVE  # type: ignore[union-attr]


def test_daily_bands_need_manager_then_security_approval(net: Network) -> None:
    app = net.app
    store = policy_admin.access_store(app)
    cs = net.caller("cs1")
    now = datetime.now(UTC)
    with store.write() as conn:  # 149 records revealed earlier today (outside the hour)
        store.charge(conn, cs.principal.id, 149, now - timedelta(hours=3), None)
    number = net.numbers[3]
    net.open_ticket("B1", number, "recipient")
    why = "customer dispute 88"
    assert reveal.reveal(app, cs, number, "recipient.name", "ticket:B1", reason=why).allowed
    need = reveal.reveal(app, cs, number, "recipient.name", "ticket:B1", reason=why)
    assert need.decision.effect == "approval_required"
    assert need.decision.needs == ("manager",) and need.request_id is not None
    assert need.as_json()["request_id"] == need.request_id
    same = reveal.reveal(app, cs, number, "recipient.name", "ticket:B1", reason=why)
    assert same.request_id == need.request_id  # one request, not one per retry

    lookup = identities.get_principal_by_id
    with pytest.raises(approvals.ApprovalError) as info:
        approvals.vote(app, cs, need.request_id, "approve", lookup)
    assert info.value.code == "approval.self"
    approvals.vote(app, net.caller("hqmgr"), need.request_id, "approve", lookup)
    used = reveal.reveal(
        app, cs, number, "recipient.name", "ticket:B1", reason=why, approval_id=need.request_id
    )
    assert used.allowed and "approval" in used.decision.rule
    reuse = reveal.reveal(
        app, cs, number, "recipient.name", "ticket:B1", reason=why, approval_id=need.request_id
    )
    assert reuse.decision.rule == "approval.used"
    with store.write() as conn:  # jump to the security band (> 200 today)
        store.charge(conn, cs.principal.id, 50, now - timedelta(hours=2), None)
    sec_band = reveal.reveal(app, cs, number, "recipient.name", "ticket:B1", reason=why)
    assert sec_band.decision.needs == ("manager", "security")
    approvals.vote(app, net.caller("hqmgr"), sec_band.request_id, "approve", lookup)
    half = reveal.reveal(
        app, cs, number, "recipient.name", "ticket:B1", reason=why, approval_id=sec_band.request_id
    )
    assert half.decision.effect == "deny" and half.decision.rule == "approval.pending"
    approvals.vote(app, net.caller("sec1"), sec_band.request_id, "approve", lookup)
    full = reveal.reveal(
        app, cs, number, "recipient.name", "ticket:B1", reason=why, approval_id=sec_band.request_id
    )
    assert full.allowed


def test_explain_charges_nothing(net: Network) -> None:
    app = net.app
    before = _charges(app)
    number = net.s1_numbers[0]
    out = reveal.explain(app, net.users["clerk1"], number, "recipient.phone", "delivery")
    assert out["decision"] == "allow" and out["rule"] == "station_clerk.own_station"
    assert out["charged"] is False
    denied = reveal.explain(app, net.users["courier2"], number, "sender.phone")
    assert denied["decision"] == "deny" and denied["rule"] == "courier.field.sender.phone"
    assert _charges(app) == before


def test_reason_with_personal_data_is_refused(net: Network) -> None:
    phone = net.rows[0]["recipient"]["phone"]
    with pytest.raises(FieldError) as info:
        reveal.reveal(
            net.app,
            net.caller("cs1"),
            net.numbers[0],
            "recipient.phone",
            "ticket:C1",
            reason=f"call {phone}",
        )
    assert phone not in str(info.value)


def test_audit_failure_fails_closed(net: Network) -> None:
    """Fault injection in the database itself: inserting into the audit log fails."""
    app = net.app
    number = net.s1_numbers[0]
    before = _charges(app)
    with app.engine.begin() as conn:
        if app.settings.uses_embedded_database:
            conn.execute(
                text(
                    "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_pending "
                    "BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected audit failure'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_pending "
                    "FOR EACH ROW EXECUTE FUNCTION fail_audit()"
                )
            )
    outcome = None
    with pytest.raises(Exception) as info:
        outcome = reveal.reveal(app, net.caller("clerk1"), number, "recipient.phone", "delivery")
    assert outcome is None
    assert _row(net, number)["recipient"]["phone"] not in str(info.value)
    assert _charges(app) == before  # nothing charged: the charge and the event commit together


def test_audit_events_of_reveals_hold_no_personal_data(net: Network) -> None:
    app = net.app
    number = net.s1_numbers[0]
    reveal.reveal(
        app,
        net.caller("clerk1"),
        number,
        "recipient.phone,sender.name",
        "claim",
        reason="damaged parcel claim",
    )
    net.open_ticket("D1", number, "recipient")  # the phone goes to the vault, not the log
    reveal.reveal(app, net.caller("cs1"), number, "recipient.phone", "ticket:D1")
    reveal.reveal_by_phone(
        app,
        net.caller("clerk1"),
        _row(net, number)["recipient"]["phone"],
        "recipient.address",
        "delivery",
    )
    audit.seal(app)
    buf = __import__("io").BytesIO()
    audit.export_jsonl(app, buf)
    exported = buf.getvalue().decode("utf-8")
    needles = set().union(*(row_pii(r) for r in net.rows))
    assert scan_text(exported, needles) == []
    events = [orjson.loads(line)["event"] for line in exported.splitlines()]
    reveals = [e for e in events if e.get("action") == "reveal"]
    assert {e["decision"] for e in reveals} == {"allow"}
    assert any(e.get("subject_refs") for e in reveals)


def test_reveal_by_phone_same_rules(net: Network) -> None:
    app = net.app
    number = net.s1_numbers[0]
    phone = _row(net, number)["recipient"]["phone"]
    got = reveal.reveal_by_phone(app, net.caller("clerk1"), phone, "recipient.address", "delivery")
    assert got.allowed and number in got.fields
    assert all(set(f) == {"recipient.address"} for f in got.fields.values())
    courier = reveal.reveal_by_phone(
        app, net.caller("courier1"), phone, "recipient.address", "delivery"
    )
    assert not courier.allowed and not courier.fields


def test_policy_apply_validates_versions_and_reloads(net: Network, app: App) -> None:
    version, body = policy_admin.text_in_force(app)
    assert version == 1
    with pytest.raises(FieldError) as info:
        policy_admin.apply(app, OPERATOR, body.replace("[roles.admin]", "[roles.nobody]"))
    assert info.value.field.startswith("roles.")
    with pytest.raises(policy_admin.PolicyVersionError):
        policy_admin.apply(app, OPERATOR, body)
    tightened = body.replace("version = 1", "version = 2").replace(
        'fields = ["recipient.address"]', 'fields = ["recipient.name"]'
    )
    policy_admin.apply(app, OPERATOR, tightened)
    assert policy_admin.current(app).version == 2
    assert [h["version"] for h in policy_admin.history(app)] == [1, 2]
