"""The telephony router in-process (FastAPI TestClient): the courier's device endpoints
with a device-bound session, and the routing callback's authentication."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.access.network import OPERATOR, PASSWORD
from tests.telephony.conftest import COURIER_PHONES, Phones
from waybillguard.entrypoints.telephony_http import create_app
from waybillguard.services import auth, virtual_numbers


@pytest.mark.parametrize("backend", ["sqlite"])
def test_courier_endpoints_and_callback(phones: Phones) -> None:
    app = phones.app
    number = phones.net.s1_numbers[0]
    phones.out_for_delivery(number, "courier1")
    token = app.vault.issue_delivery_token(number, int(time.time()) + 3600)
    c1 = auth.login(app, "courier1", PASSWORD, device_id="dev-courier1").token
    c2 = auth.login(app, "courier2", PASSWORD, device_id="dev-courier2").token
    provider = virtual_numbers.create_provider_token(app, OPERATOR, "http-test")
    with TestClient(create_app(app.settings)) as client:
        assert client.post("/api/v1/courier/resolve", json={"token": token}).status_code == 401
        denied = client.post(
            "/api/v1/courier/resolve",
            json={"token": token},
            headers={"Authorization": f"Bearer {c2}"},
        )
        assert denied.status_code == 403 and denied.json()["rule"] == "courier.not_assigned"
        got = client.post(
            "/api/v1/courier/resolve",
            json={"token": token},
            headers={"Authorization": f"Bearer {c1}"},
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["address"] == phones.row(number)["recipient"]["address"]
        line = body["call"]

        call = {
            "call_id": "c-1",
            "virtual_number": line["virtual_number"],
            "extension": line["extension"],
            "caller": COURIER_PHONES["courier1"],
        }
        assert client.post("/api/v1/telephony/route", json=call).status_code == 401
        routed = client.post(
            "/api/v1/telephony/route", json=call, headers={"Authorization": f"Bearer {c1}"}
        )
        assert routed.status_code == 401  # a session token is not a provider token
        routed = client.post(
            "/api/v1/telephony/route", json=call, headers={"Authorization": f"Bearer {provider}"}
        )
        assert routed.status_code == 200 and routed.json()["action"] == "connect"

        bad = client.post(
            "/api/v1/courier/deliver",
            json={"tracking_number": number, "proof_ref": "13912345678"},
            headers={"Authorization": f"Bearer {c1}"},
        )
        assert bad.status_code == 422 and "13912345678" not in bad.text
        done = client.post(
            "/api/v1/courier/deliver",
            json={"tracking_number": number, "proof_ref": "photo-xyz987"},
            headers={"Authorization": f"Bearer {c1}"},
        )
        assert done.status_code == 200 and done.json()["status"] == "delivered"
        dead = client.post(
            "/api/v1/courier/resolve",
            json={"token": token},
            headers={"Authorization": f"Bearer {c1}"},
        )
        assert dead.status_code == 403 and dead.json()["rule"] == "courier.token_dead"
