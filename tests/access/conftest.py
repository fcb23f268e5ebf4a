from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from waybillguard.vault import credentials


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at its production cost is tested in tests/vault; here it would only slow
    down building the test organisation."""
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    yield
