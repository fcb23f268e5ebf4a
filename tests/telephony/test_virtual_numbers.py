"""Virtual numbers through the services, on SQLite and PostgreSQL: the pool, bindings,
cool-down, the pool-low alert, routing real calls, audit, fail-closed."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from tests.access.network import OPERATOR
from tests.conftest import row_pii, scan_text
from tests.telephony.conftest import COURIER_PHONES, X_NUMBERS, Phones, build_phones
from waybillguard.domain.errors import FieldError
from waybillguard.domain.phone import parse_phone
from waybillguard.domain.virtual_number import BindingState
from waybillguard.services import alerts, audit, identities, keys, virtual_numbers
from waybillguard.services.activity import Actor
from waybillguard.services.app import App

PROVIDER = Actor(name="provider:test", role="provider", client="telephony")


def e164(phone: str) -> str:
    return parse_phone(phone, "phone").e164


def _route(p: Phones, number: str, caller: str | None, now: datetime | None = None):  # type: ignore[no-untyped-def]
    binding = virtual_numbers.binding_for(p.app, number)
    assert binding is not None
    return virtual_numbers.route_call(
        p.app, binding.virtual_number, binding.extension, caller, now, actor=PROVIDER
    )


# -- the pool and bindings ----------------------------------------------------------------------
def test_pool_add_is_idempotent_and_validated(phones: Phones) -> None:
    app = phones.app
    again = virtual_numbers.add_numbers(app, OPERATOR, [X_NUMBERS[0], "16512345678"], 20)
    assert (again["added"], again["skipped"]) == (1, 1)
    status = virtual_numbers.pool_status(app)
    assert (status.numbers, status.total, status.bound) == (3, 60, 0)
    with pytest.raises(FieldError) as info:
        virtual_numbers.add_numbers(app, OPERATOR, ["01012345678"], 10)
    assert "01012345678" not in str(info.value)
    clerk = Actor.for_principal(phones.net.users["clerk1"])
    with pytest.raises(PermissionError):
        virtual_numbers.add_numbers(app, clerk, ["16512345679"], 10)


def test_allocate_is_idempotent_per_waybill(phones: Phones) -> None:
    app = phones.app
    a, b = phones.net.numbers[0], phones.net.numbers[1]
    first = virtual_numbers.allocate(app, a)
    assert virtual_numbers.allocate(app, a) == first
    assert virtual_numbers.label_phone_line(app, a) == first.line
    assert first.line == f"{first.virtual_number}转{first.extension}"
    assert first.virtual_number in X_NUMBERS and len(first.extension) == 4
    other = virtual_numbers.allocate(app, b)
    assert (other.virtual_number, other.extension) != (first.virtual_number, first.extension)
    assert first.expires_at - first.created_at == timedelta(days=30)  # not delivered yet
    with pytest.raises(virtual_numbers.NumbersError) as info:
        virtual_numbers.allocate(app, "WG0000000000000")
    assert info.value.code == "waybill.not_found"


def test_label_phone_lines_batch(phones: Phones) -> None:
    app = phones.app
    numbers = phones.net.numbers[:6]
    single = virtual_numbers.label_phone_line(app, numbers[0])
    lines = virtual_numbers.label_phone_lines(app, [*numbers, numbers[1]])
    assert list(lines) == numbers and lines[numbers[0]] == single
    assert len(set(lines.values())) == 6
    assert virtual_numbers.label_phone_lines(app, numbers) == lines  # reprints: same lines


def test_renew_release_and_expire(phones: Phones) -> None:
    app = phones.app
    number = phones.net.numbers[0]
    now = datetime.now(UTC)
    binding = virtual_numbers.allocate(app, number, now=now)
    renewed = virtual_numbers.renew(app, number, days=60, now=now)
    assert renewed.expires_at == now + timedelta(days=60)
    assert virtual_numbers.renew(app, number, days=1, now=now).expires_at == renewed.expires_at
    released = virtual_numbers.release(app, number, now=now)
    assert released.state is BindingState.RELEASED
    assert virtual_numbers.binding_for(app, number) is None
    with pytest.raises(virtual_numbers.NumbersError):
        virtual_numbers.release(app, number, now=now)
    # a new binding for the same waybill takes another line (the old one cools down)
    again = virtual_numbers.allocate(app, number, now=now)
    assert (again.virtual_number, again.extension) != (binding.virtual_number, binding.extension)
    assert virtual_numbers.expire_due(app, now + timedelta(days=29)) == 0
    assert virtual_numbers.expire_due(app, now + timedelta(days=31)) == 1
    assert virtual_numbers.binding_for(app, number) is None


def test_closed_waybills_get_no_new_binding(phones: Phones) -> None:
    number = phones.net.numbers[0]
    phones.net.advance(number, "delivered")
    with pytest.raises(virtual_numbers.NumbersError) as info:
        virtual_numbers.allocate(phones.app, number)
    assert info.value.code == "numbers.waybill_closed"


def test_cool_down_is_never_violated(app: App, tmp_path: Path) -> None:
    """A random walk of allocations and releases over a small pool, with time moving on:
    no line is ever handed out again within 30 days of its last release."""
    p = build_phones(app, tmp_path, extensions=4)  # 8 lines
    rng = random.Random(11)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    released_at: dict[tuple[str, str], datetime] = {}
    live: dict[str, tuple[str, str]] = {}
    exhausted = 0
    for _ in range(120):
        now += timedelta(days=rng.choice((0, 0, 1, 3, 7)))
        free_numbers = [n for n in p.net.numbers if n not in live]
        if live and (rng.random() < 0.45 or not free_numbers):
            number = rng.choice(sorted(live))
            virtual_numbers.release(app, number, now=now)
            released_at[live.pop(number)] = now
            continue
        number = rng.choice(free_numbers)
        try:
            binding = virtual_numbers.allocate(app, number, now=now)
        except virtual_numbers.PoolExhausted:
            exhausted += 1
            continue
        line = (binding.virtual_number, binding.extension)
        assert line not in live.values()
        if line in released_at:
            assert now - released_at[line] >= timedelta(days=30), "reused within cool-down"
        live[number] = line
        # bindings made here expire 30 days on: the sweep frees them with a cool-down too
        for n, ln in list(live.items()):
            b = virtual_numbers.binding_for(app, n)
            if b is None or b.state is not BindingState.ACTIVE:
                released_at[ln] = now
                del live[n]
    assert exhausted > 0  # the walk did run the pool dry at times


def test_exact_cool_down_boundary(app: App, tmp_path: Path) -> None:
    p = build_phones(app, tmp_path, extensions=1)  # 2 lines
    t0 = datetime.now(UTC)
    w = p.net.numbers
    first = virtual_numbers.allocate(app, w[0], now=t0)
    virtual_numbers.allocate(app, w[1], now=t0)
    virtual_numbers.release(app, w[0], now=t0)
    with pytest.raises(virtual_numbers.PoolExhausted):
        virtual_numbers.allocate(app, w[2], now=t0 + timedelta(days=30) - timedelta(seconds=1))
    got = virtual_numbers.allocate(app, w[2], now=t0 + timedelta(days=30))
    assert (got.virtual_number, got.extension) == (first.virtual_number, first.extension)


def _pool_alerts(app: App) -> list[dict]:  # type: ignore[type-arg]
    return [a for a in alerts.list_alerts(app, open_only=False) if a["kind"] == "numbers.pool_low"]


def test_pool_low_alert_before_exhaustion_once_per_crossing(app: App, tmp_path: Path) -> None:
    p = build_phones(app, tmp_path, extensions=10)  # 20 lines
    # 20 lines under the default threshold (100 free) was low at once: one alert
    assert len(_pool_alerts(app)) == 1
    virtual_numbers.configure(app, OPERATOR, low_percent=0, low_free=5, cooldown_days=0)
    before = len(_pool_alerts(app))  # the new threshold re-armed the alert
    numbers = p.net.numbers
    for i in range(15):
        virtual_numbers.allocate(app, numbers[i])
    assert len(_pool_alerts(app)) == before  # 5 free: not below the threshold
    virtual_numbers.allocate(app, numbers[15])  # 4 free
    raised = _pool_alerts(app)
    assert len(raised) == before + 1 and virtual_numbers.pool_status(app).free == 4
    newest = max(raised, key=lambda a: a["id"])
    assert "可用 4" in newest["message"] and "pool low" in newest["message"]
    for i in range(16, 20):
        virtual_numbers.allocate(app, numbers[i])
    assert virtual_numbers.pool_status(app).free == 0
    with pytest.raises(virtual_numbers.PoolExhausted):
        virtual_numbers.allocate(app, numbers[20])
    assert len(_pool_alerts(app)) == before + 1  # one alert per crossing, not per label
    for i in range(10):  # recover (cool-down 0: the lines are free at once)
        virtual_numbers.release(app, numbers[i])
    assert virtual_numbers.pool_status(app).level.value == "ok"
    for i in range(20, 27):
        virtual_numbers.allocate(app, numbers[i])
    assert len(_pool_alerts(app)) == before + 2  # crossed again
    for a in _pool_alerts(app):
        assert scan_text(a["message"], set().union(*(row_pii(r) for r in p.net.rows))) == []


# -- routing --------------------------------------------------------------------------------------
def test_routing_real_calls(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number, "courier1")
    recipient = e164(phones.recipient(number))

    got = _route(phones, number, COURIER_PHONES["courier1"])
    assert got.allowed and got.decision.rule == "route.courier"
    assert got.connect_to == recipient
    assert recipient not in repr(got)  # the number stays out of reprs and logs

    other = _route(phones, number, COURIER_PHONES["courier2"])  # registered, not assigned
    assert not other.allowed and other.decision.rule == "route.stranger"
    assert other.connect_to is None

    sender = _route(phones, number, phones.sender(number))
    assert sender.allowed and sender.decision.rule == "route.sender"
    assert sender.connect_to == recipient

    back = _route(phones, number, phones.recipient(number))
    assert back.allowed and back.decision.rule == "route.recipient_callback"
    assert back.connect_to == e164(COURIER_PHONES["courier1"])

    for stranger in ("13800000000", "+8618600000000", "", "not a number", "010-12345678"):
        refused = _route(phones, number, stranger)
        assert not refused.allowed and refused.connect_to is None

    later = datetime.now(UTC) + timedelta(days=31)  # undelivered bindings live 30 days
    for caller in (COURIER_PHONES["courier1"], phones.sender(number)):
        expired = _route(phones, number, caller, later)
        assert not expired.allowed and expired.decision.rule == "route.expired"

    binding = virtual_numbers.binding_for(app, number)
    assert binding is not None
    virtual_numbers.expire_due(app, later)
    after = virtual_numbers.route_call(
        app, binding.virtual_number, binding.extension, phones.sender(number), actor=PROVIDER
    )
    assert not after.allowed and after.decision.rule == "route.expired"
    unknown = virtual_numbers.route_call(app, X_NUMBERS[1], "9999", phones.sender(number))
    assert unknown.decision.rule == "route.unknown_line"
    bad = virtual_numbers.route_call(app, "12345", "1", phones.sender(number))
    assert bad.decision.rule == "route.unknown_line"


def test_courier_window_and_disabled_courier(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[1]
    virtual_numbers.allocate(app, number)
    from waybillguard.services import deliveries

    deliveries.assign(app, OPERATOR, None, number, phones.net.users["courier1"])
    phones.net.advance(number, "in_transit")
    early = _route(phones, number, COURIER_PHONES["courier1"])
    assert early.decision.rule == "route.courier_window"
    phones.net.advance(number, "out_for_delivery")
    assert _route(phones, number, COURIER_PHONES["courier1"]).allowed
    identities.disable_user(app, OPERATOR, "courier1")
    assert _route(phones, number, COURIER_PHONES["courier1"]).decision.rule == "route.stranger"


def test_check_route_shows_masks_only(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    binding = virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number)
    got = virtual_numbers.route_call(
        app, binding.virtual_number, binding.extension, phones.sender(number), decrypt=False
    )
    assert got.allowed and got.connect_to is None
    digits = phones.recipient(number)
    data = orjson.dumps(got.as_json()).decode()
    assert digits not in data and got.target_masked is not None
    assert got.target_masked[:3] == digits[:3] and "******" in got.target_masked


def test_audit_events_hold_no_phone_numbers(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    binding = virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number)
    callers = [COURIER_PHONES["courier1"], COURIER_PHONES["courier2"], phones.sender(number)]
    callers += [phones.recipient(number), "13800000000", ""]
    for caller in callers:
        _route(phones, number, caller)
    virtual_numbers.renew(app, number, days=20)
    virtual_numbers.release(app, number)
    _ = virtual_numbers.route_call(app, binding.virtual_number, binding.extension, callers[0])
    audit.seal(app)
    buf = io.BytesIO()
    audit.export_jsonl(app, buf)
    exported = buf.getvalue().decode("utf-8")
    needles = set().union(*(row_pii(r) for r in phones.net.rows))
    needles |= set(COURIER_PHONES.values()) | {"13800000000"}
    needles |= set(X_NUMBERS)  # not personal, but the log refuses 11-digit runs anyway
    assert scan_text(exported, needles) == []
    events = [orjson.loads(line)["event"] for line in exported.splitlines()]
    routes = [e for e in events if e["action"] == "call.route"]
    assert len(routes) == len(callers) + 1
    assert {e["decision"] for e in routes} == {"allow", "deny"}
    allowed = [e for e in routes if e["decision"] == "allow"]
    assert all(e["waybills"] == [number] for e in allowed)
    assert all(e["subject_refs"] for e in routes if e["rule"] != "route.no_caller_id")
    courier_ref = app.vault.index_phone(e164(COURIER_PHONES["courier1"])).hex()
    assert any(e["subject_refs"] == [courier_ref] for e in allowed)
    actions = {e["action"] for e in events}
    assert {"numbers.pool", "numbers.bind", "numbers.renew", "numbers.release"} <= actions
    assert "courier.phone" in actions


def test_audit_failure_fails_closed(phones: Phones) -> None:
    """Fault injection in the database: the audit insert fails, so no number leaves."""
    app = phones.app
    number = phones.net.s1_numbers[0]
    binding = virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number)
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
    result = None
    with pytest.raises(Exception) as info:
        result = virtual_numbers.route_call(
            app, binding.virtual_number, binding.extension, COURIER_PHONES["courier1"]
        )
    assert result is None
    assert phones.recipient(number) not in str(info.value)
    assert e164(phones.recipient(number)) not in str(info.value)


def test_courier_phone_registration(phones: Phones) -> None:
    app = phones.app
    with pytest.raises(virtual_numbers.NumbersError) as info:
        virtual_numbers.register_courier_phone(
            app, OPERATOR, "courier3", COURIER_PHONES["courier1"]
        )
    assert info.value.code == "courier.phone_taken"
    with pytest.raises(virtual_numbers.NumbersError):
        virtual_numbers.register_courier_phone(app, OPERATOR, "clerk1", "13911115555")
    admin = Actor.for_principal(phones.net.users["admin1"])
    got = virtual_numbers.register_courier_phone(app, admin, "courier3", "13911115555")
    assert got == {"username": "courier3", "phone_masked": "139******55"}
    with pytest.raises(PermissionError):
        virtual_numbers.register_courier_phone(
            app, Actor.for_principal(phones.net.users["courier3"]), "courier3", "13911116666"
        )
    with app.engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM vn_courier_phones")).all()
    assert "13911115555" not in repr(stored)


def test_provider_tokens(phones: Phones) -> None:
    app = phones.app
    token = virtual_numbers.create_provider_token(app, OPERATOR, "sim")
    actor = virtual_numbers.provider_actor(app, token)
    assert actor is not None and actor.name == "provider:sim"
    assert virtual_numbers.provider_actor(app, token + "x") is None
    assert virtual_numbers.provider_actor(app, None) is None
    with pytest.raises(PermissionError):
        virtual_numbers.create_provider_token(
            app, Actor.for_principal(phones.net.users["clerk1"]), "sim2"
        )


def test_key_rotation_moves_couriers_phones(phones: Phones) -> None:
    """A courier's phone is sealed like a waybill field: rotation re-wraps it, and once
    the old key is destroyed, calls back to the courier still connect."""
    app = phones.app
    number = phones.net.s1_numbers[0]
    virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number, "courier1")
    old = app.vault.active_kek_id

    report = keys.rotate(app)

    assert report.retired == [old] and old not in app.vault.kek_ids()
    with app.engine.connect() as conn:
        kek_ids = {r[0] for r in conn.execute(text("SELECT kek_id FROM vn_courier_phones"))}
    assert kek_ids == {report.new_kek}
    back = _route(phones, number, phones.recipient(number))
    assert back.allowed and back.connect_to == e164(COURIER_PHONES["courier1"])


def test_courier_phone_sealed_before_a_rotation_lands_under_the_new_key(
    phones: Phones, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration sealed under a key that a rotation retired before it was stored is
    sealed again under the new key, never stored under a destroyed one."""
    app = phones.app
    real_seal = app.vault.seal
    rotated: list[keys.RotationReport] = []

    def seal_then_rotate(fields):  # type: ignore[no-untyped-def]
        sealed = real_seal(fields)
        if not rotated:
            rotated.append(keys.rotate(app))  # completes between sealing and storing
        return sealed

    monkeypatch.setattr(app.vault, "seal", seal_then_rotate)
    virtual_numbers.register_courier_phone(app, OPERATOR, "courier2", "13911115555")
    monkeypatch.undo()
    new_kek = rotated[0].new_kek
    with app.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT kek_id FROM vn_courier_phones cp JOIN principals p "
                "ON p.id = cp.principal_id WHERE p.username = 'courier2'"
            )
        ).one()
    assert row[0] == new_kek
    number = phones.net.s1_numbers[1]
    virtual_numbers.allocate(app, number)
    phones.out_for_delivery(number, "courier2")
    back = _route(phones, number, phones.recipient(number))
    assert back.allowed and back.connect_to == e164("13911115555")
