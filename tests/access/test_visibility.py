"""Masked views are scoped too: tracking numbers and routes are what brushing fraud buys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.access.network import OPERATOR, Network, build_network
from waybillguard.services import deliveries, lookup, waybills
from waybillguard.services.activity import Actor
from waybillguard.services.app import App


@pytest.fixture
def net(app: App, tmp_path: Path) -> Network:
    return build_network(app, tmp_path)


def _as(net: Network, user: str) -> tuple[Actor, object]:
    principal = net.users[user]
    return Actor.for_principal(principal, "test"), principal


def test_station_staff_see_only_their_station(net: Network) -> None:
    own = net.s1_numbers[0]
    actor, clerk1 = _as(net, "clerk1")
    assert waybills.show(net.app, own, actor, clerk1)["tracking_number"] == own  # type: ignore[arg-type]
    actor2, clerk2 = _as(net, "clerk2")
    with pytest.raises(waybills.WaybillNotFound) as info:
        waybills.show(net.app, own, actor2, clerk2)  # type: ignore[arg-type]
    assert str(info.value) == str(waybills.WaybillNotFound())  # same answer as a missing one
    page = waybills.list_waybills(net.app, 100, 0, actor, clerk1)  # type: ignore[arg-type]
    everything = waybills.list_waybills(net.app, 100)
    assert len(everything) == len(net.numbers)
    station_s1 = {
        w["tracking_number"]
        for w in everything
        if "S1" in (w["origin_station"], w["destination_station"])
    }
    assert {w["tracking_number"] for w in page} == station_s1
    assert set(net.s1_numbers) <= station_s1


def test_courier_sees_assignments_and_records_events_only_on_them(net: Network) -> None:
    number, other = net.s1_numbers[0], net.s1_numbers[1]
    deliveries.assign(net.app, OPERATOR, None, number, net.users["courier1"])
    actor, courier = _as(net, "courier1")
    page = waybills.list_waybills(net.app, 100, 0, actor, courier)  # type: ignore[arg-type]
    assert [w["tracking_number"] for w in page] == [number]
    waybills.record_event(net.app, number, "picked_up", actor, principal=courier)  # type: ignore[arg-type]
    with pytest.raises(waybills.WaybillNotFound):
        waybills.record_event(net.app, other, "picked_up", actor, principal=courier)  # type: ignore[arg-type]


def test_data_entry_sees_nothing_and_lookup_is_scoped(net: Network) -> None:
    actor, entry = _as(net, "entry1")
    assert waybills.list_waybills(net.app, 100, 0, actor, entry) == []  # type: ignore[arg-type]
    number = net.s1_numbers[0]
    phone = net.rows[net.numbers.index(number)]["recipient"]["phone"]
    actor2, clerk2 = _as(net, "clerk2")
    assert lookup.by_phone(net.app, phone, actor=actor2, principal=clerk2) == []  # type: ignore[arg-type]
    actor1, clerk1 = _as(net, "clerk1")
    found = lookup.by_phone(net.app, phone, actor=actor1, principal=clerk1)  # type: ignore[arg-type]
    assert number in {w["tracking_number"] for w in found}
