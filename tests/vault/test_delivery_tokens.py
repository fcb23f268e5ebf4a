from __future__ import annotations

import os

import pytest

from waybillguard.vault.delivery_tokens import PREFIX, DeliveryTokens, InvalidDeliveryToken

NUMBER = "WG1234567890123"


def test_round_trip_is_opaque_and_bounded() -> None:
    tokens = DeliveryTokens(os.urandom(32))
    token = tokens.issue(NUMBER, 1_900_000_000)
    assert token.startswith(PREFIX) and len(token) == 73
    assert NUMBER not in token and "1234567890" not in token
    assert tokens.open(token) == (NUMBER, 1_900_000_000)
    assert tokens.issue(NUMBER, 1_900_000_000) != token  # random nonce: not linkable


def test_forged_altered_and_foreign_tokens_are_refused() -> None:
    tokens = DeliveryTokens(os.urandom(32))
    token = tokens.issue(NUMBER, 1_900_000_000)
    other = DeliveryTokens(os.urandom(32))
    body = token[len(PREFIX) :]
    flipped = PREFIX + body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    bad = [
        "", "wgq1.", token[:-1], token + "A", flipped, token.replace(PREFIX, "wgq2."),
        PREFIX + "!" * 64, "x" * 10_000, PREFIX + "' OR 1=1 --", other.issue(NUMBER, 2**40),
    ]  # fmt: skip
    for candidate in bad:
        with pytest.raises(InvalidDeliveryToken) as info:
            tokens.open(candidate)
        assert str(info.value) == "invalid delivery token"
    with pytest.raises(InvalidDeliveryToken):
        tokens.open(None)  # type: ignore[arg-type]
