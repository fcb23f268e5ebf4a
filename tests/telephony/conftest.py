"""Fixtures of the virtual-number tests: the access-control test network plus a pool
of virtual numbers and registered courier phones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tests.access.network import OPERATOR, Network, build_network
from waybillguard.services import deliveries, virtual_numbers
from waybillguard.services.app import App
from waybillguard.vault import credentials

# Synthetic: never issued by the synth generator (whose numbers are random 11-digit
# mobiles; a collision is checked by the tests that scan for PII).
COURIER_PHONES = {"courier1": "13911112222", "courier2": "13911113333", "courier3": "13911114444"}
X_NUMBERS = ["17000000001", "17100000002"]


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at production cost is tested in tests/vault; here it would only slow
    down building the test organisation."""
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    yield


@dataclass
class Phones:
    net: Network

    @property
    def app(self) -> App:
        return self.net.app

    def row(self, number: str) -> dict:  # type: ignore[type-arg]
        return self.net.rows[self.net.numbers.index(number)]

    def sender(self, number: str) -> str:
        return str(self.row(number)["sender"]["phone"])

    def recipient(self, number: str) -> str:
        return str(self.row(number)["recipient"]["phone"])

    def out_for_delivery(self, number: str, courier: str = "courier1") -> None:
        deliveries.assign(self.app, OPERATOR, None, number, self.net.users[courier])
        self.net.advance(number, "out_for_delivery")


def build_phones(app: App, tmp_path: Path, extensions: int = 20) -> Phones:
    net = build_network(app, tmp_path)
    virtual_numbers.add_numbers(app, OPERATOR, X_NUMBERS, extensions)
    for username, phone in COURIER_PHONES.items():
        virtual_numbers.register_courier_phone(app, OPERATOR, username, phone)
    return Phones(net)


@pytest.fixture
def phones(app: App, tmp_path: Path) -> Phones:
    return build_phones(app, tmp_path)
