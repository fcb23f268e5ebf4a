"""The courier's delivery flow on SQLite and PostgreSQL: QR token → resolve (a reveal)
→ call line → deliver → the token dies, the binding expires after the grace."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import text

from tests.conftest import row_pii, scan_text
from tests.telephony.conftest import COURIER_PHONES, Phones
from waybillguard.domain.errors import FieldError
from waybillguard.services import audit, courier_flow, virtual_numbers
from waybillguard.services.caller import Caller


def courier(p: Phones, username: str, device: str | None = None) -> Caller:
    return Caller(p.net.users[username], client=device or f"dev-{username}")


def token_for(p: Phones, number: str, seconds: int = 3600) -> str:
    return p.app.vault.issue_delivery_token(number, int(time.time()) + seconds)


def _charges(p: Phones) -> int:
    with p.app.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT COALESCE(SUM(records), 0) FROM quota_charges")).scalar_one()
        )


def test_assigned_courier_resolves_address_and_line(phones: Phones) -> None:
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    before = _charges(phones)
    got = courier_flow.resolve(phones.app, courier(phones, "courier1"), token_for(phones, number))
    assert got.allowed, got
    assert got.address == phones.row(number)["recipient"]["address"]
    assert got.line is not None and got.line == virtual_numbers.label_phone_line(phones.app, number)
    name = phones.row(number)["recipient"]["name"]
    assert got.recipient_name is not None and got.recipient_name != name
    assert got.recipient_name[0] == name[0] and "*" in got.recipient_name
    assert _charges(phones) == before + 1  # charged like any reveal
    data = got.as_json()
    assert data["call"]["line"] == got.line and data["decision"] == "allow"
    assert phones.recipient(number) not in orjson.dumps(data).decode()
    # the line it shows connects this courier's phone to the recipient
    binding = virtual_numbers.binding_for(phones.app, number)
    assert binding is not None
    routed = virtual_numbers.route_call(
        phones.app, binding.virtual_number, binding.extension, COURIER_PHONES["courier1"]
    )
    assert routed.allowed and routed.connect_to is not None


def test_token_of_courier_a_fails_for_courier_b(phones: Phones) -> None:
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    token = token_for(phones, number)
    for other in ("courier2", "courier3"):  # same station, other station
        got = courier_flow.resolve(phones.app, courier(phones, other), token)
        assert not got.allowed and got.rule == "courier.not_assigned"
        assert got.address is None and got.line is None
    for staff in ("clerk1", "cs1", "admin1"):
        got = courier_flow.resolve(phones.app, Caller(phones.net.users[staff], client="x"), token)
        assert not got.allowed and got.rule == "courier.not_courier"


def test_wrong_device_invalid_and_expired_tokens(phones: Phones) -> None:
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    app = phones.app
    c1 = courier(phones, "courier1")
    stolen = courier(phones, "courier1", device="someone-elses-phone")
    assert courier_flow.resolve(app, stolen, token_for(phones, number)).rule == "courier.device"
    for bad in ("", "wgq1.AAAA", "x" * 200, token_for(phones, number)[:-2] + "AA"):
        got = courier_flow.resolve(app, c1, bad)
        assert not got.allowed and got.rule == "courier.token_invalid"
    expired = token_for(phones, number, seconds=-1)
    assert courier_flow.resolve(app, c1, expired).rule == "courier.token_expired"
    later = datetime.now(UTC) + timedelta(hours=2)
    assert courier_flow.resolve(app, c1, token_for(phones, number), now=later).rule == (
        "courier.token_expired"
    )


def test_token_only_while_out_for_delivery(phones: Phones) -> None:
    number = phones.net.s1_numbers[0]
    from tests.access.network import OPERATOR
    from waybillguard.services import deliveries

    deliveries.assign(phones.app, OPERATOR, None, number, phones.net.users["courier1"])
    phones.net.advance(number, "in_transit")
    c1 = courier(phones, "courier1")
    got = courier_flow.resolve(phones.app, c1, token_for(phones, number))
    assert got.rule == "courier.token_dead"


def test_deliver_kills_token_and_schedules_expiry(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    c1 = courier(phones, "courier1")
    token = token_for(phones, number)
    assert courier_flow.resolve(app, c1, token).allowed

    with pytest.raises(courier_flow.CourierRefused) as refused:
        courier_flow.deliver(app, courier(phones, "courier2"), number, "photo-abc123")
    assert refused.value.code == "courier.not_assigned"
    for bad in ("", "ab", "photo 1", "sig-13912345678", "照片123456"):
        with pytest.raises(FieldError):
            courier_flow.deliver(app, c1, number, bad)

    done = courier_flow.deliver(app, c1, number, "photo-abc123")
    delivered_at = datetime.fromisoformat(done["delivered_at"])
    assert done["status"] == "delivered"
    assert datetime.fromisoformat(done["binding_expires_at"]) == delivered_at + timedelta(days=15)

    after = courier_flow.resolve(app, c1, token)
    assert not after.allowed and after.rule == "courier.token_dead"
    with pytest.raises(courier_flow.CourierRefused):
        courier_flow.deliver(app, c1, number, "photo-abc123")

    # calls: the courier within the policy's 2 h grace, the sender until the binding ends
    binding = virtual_numbers.binding_for(app, number)
    assert binding is not None

    def call(caller: str, at: datetime) -> str:
        assert binding is not None
        return virtual_numbers.route_call(
            app, binding.virtual_number, binding.extension, caller, at
        ).decision.rule

    now = datetime.now(UTC)
    assert call(COURIER_PHONES["courier1"], now) == "route.courier"
    assert call(COURIER_PHONES["courier1"], now + timedelta(hours=3)) == "route.courier_window"
    assert call(phones.sender(number), now + timedelta(days=14)) == "route.sender"
    assert call(phones.sender(number), now + timedelta(days=15, minutes=1)) == "route.expired"
    assert virtual_numbers.expire_due(app, now + timedelta(days=15, minutes=1)) == 1
    assert call(phones.sender(number), now) == "route.expired"


def test_courier_flow_audit_holds_no_personal_data(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    c1 = courier(phones, "courier1")
    courier_flow.resolve(app, c1, token_for(phones, number))
    courier_flow.resolve(app, courier(phones, "courier2"), token_for(phones, number))
    courier_flow.resolve(app, c1, "garbage")
    courier_flow.deliver(app, c1, number, "photo-abc123")
    audit.seal(app)
    buf = io.BytesIO()
    audit.export_jsonl(app, buf)
    exported = buf.getvalue().decode("utf-8")
    needles = set().union(*(row_pii(r) for r in phones.net.rows)) | set(COURIER_PHONES.values())
    assert scan_text(exported, needles) == []
    assert "dev-courier1" not in exported  # device ids stay out of the log
    events = [orjson.loads(line)["event"] for line in exported.splitlines()]
    reveals = [e for e in events if e["action"] == "reveal" and e["waybills"] == [number]]
    assert reveals and reveals[0]["purpose"] == "delivery"
    assert reveals[0]["fields"] == ["recipient.address"]
    denials = [e for e in events if e["action"] == "courier.resolve"]
    assert {e["rule"] for e in denials} == {"courier.not_assigned", "courier.token_invalid"}
    deliver = [e for e in events if e["action"] == "courier.deliver"]
    assert deliver and deliver[0]["detail"]["proof_ref"] == "photo-abc123"
