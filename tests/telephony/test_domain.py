"""The pure model: numbers, extensions, slot choice, pool level, and the routing
decision written out as a matrix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybillguard.domain.errors import FieldError
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.virtual_number import (
    Binding,
    BindingState,
    PoolLevel,
    PoolSettings,
    PoolStatus,
    RouteFacts,
    SlotFacts,
    Target,
    choose_slot,
    extensions_for,
    format_line,
    level_change,
    parse_extension,
    parse_virtual_number,
    route,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COURIER, SENDER, RECIPIENT, STRANGER = (bytes([i]) * 16 for i in range(1, 5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17012345678", "17012345678"),
        ("171 0000 0002", "17100000002"),
        ("+86 165-1234-5678", "16512345678"),
        ("008617000000001", "17000000001"),
        ("95013123456", "95013123456"),  # 95xxx enterprise service range
    ],
)
def test_virtual_numbers_accepted(text: str, expected: str) -> None:
    assert parse_virtual_number(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1701234567", "170123456789", "01012345678", "4001234567", "10086", "abc", "12345678901"],
)
def test_virtual_numbers_refused_without_echo(text: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_virtual_number(text)
    assert info.value.field == "virtual_number"
    if text:
        assert text not in str(info.value)


def test_extensions() -> None:
    assert parse_extension(" 0042 ") == "0042"
    for bad in ("", "123", "12345", "12a4"):
        with pytest.raises(FieldError):
            parse_extension(bad)
    assert extensions_for(3) == ["1000", "1001", "1002"]
    assert len(extensions_for(9000)) == 9000 and extensions_for(9000)[-1] == "9999"
    for bad_count in (0, 9001):
        with pytest.raises(FieldError):
            extensions_for(bad_count)
    assert format_line("17012345678", "4821") == "17012345678转4821"


def test_settings_defaults_and_threshold() -> None:
    s = PoolSettings()
    assert (s.cooldown, s.grace, s.undelivered_ttl) == (
        timedelta(days=30),
        timedelta(days=15),
        timedelta(days=30),
    )
    assert s.threshold(100_000) == 10_000  # 10 %
    assert s.threshold(200) == 100  # or at least 100 free
    assert s.expiry_after_delivery(NOW) == NOW + timedelta(days=15)
    with pytest.raises(FieldError):
        PoolSettings(low_percent=101)
    with pytest.raises(FieldError):
        PoolSettings(cooldown=timedelta(days=-1))


def test_pool_level_and_once_per_crossing() -> None:
    assert PoolStatus(1, 100, 50, 0, 10).level is PoolLevel.OK
    assert PoolStatus(1, 100, 85, 6, 10).level is PoolLevel.LOW  # 9 free
    assert PoolStatus(1, 100, 90, 10, 10).level is PoolLevel.EXHAUSTED
    assert PoolStatus(1, 100, 90, 0, 10).level is PoolLevel.OK  # exactly the threshold
    assert level_change(False, PoolLevel.OK) is None
    assert level_change(False, PoolLevel.LOW) is True  # raise now
    assert level_change(True, PoolLevel.LOW) is None  # already raised
    assert level_change(True, PoolLevel.EXHAUSTED) is None
    assert level_change(True, PoolLevel.OK) is False  # re-arm


def test_choose_slot_takes_the_oldest_cooled_slot() -> None:
    slots = [
        SlotFacts(1, bound=True, free_after=NOW - timedelta(days=90)),
        SlotFacts(2, bound=False, free_after=NOW + timedelta(seconds=1)),  # cooling
        SlotFacts(3, bound=False, free_after=NOW - timedelta(days=1)),
        SlotFacts(4, bound=False, free_after=NOW - timedelta(days=2)),
        SlotFacts(5, bound=False, free_after=NOW - timedelta(days=2)),
    ]
    chosen = choose_slot(slots, NOW)
    assert chosen is not None and chosen.id == 4
    assert choose_slot(slots[:2], NOW) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=-100, max_value=100)),
        min_size=0,
        max_size=30,
    ),
)
def test_choose_slot_never_returns_a_bound_or_cooling_slot(
    raw: list[tuple[bool, int]],
) -> None:
    slots = [SlotFacts(i, bound, NOW + timedelta(days=d)) for i, (bound, d) in enumerate(raw)]
    chosen = choose_slot(slots, NOW)
    eligible = [s for s in slots if not s.bound and s.free_after <= NOW]
    if not eligible:
        assert chosen is None
    else:
        assert chosen is not None and not chosen.bound and chosen.free_after <= NOW
        assert all(chosen.free_after <= s.free_after for s in eligible)


def test_binding_live_and_line() -> None:
    b = Binding(1, "17000000001", "1000", "WG0000000000000", BindingState.ACTIVE, NOW, NOW)
    assert b.line == "17000000001转1000"
    assert not b.live(NOW)
    assert b.live(NOW - timedelta(seconds=1))


# -- routing ---------------------------------------------------------------------------------
def facts(
    *,
    state: BindingState = BindingState.ACTIVE,
    expires: timedelta = timedelta(days=10),
    status: Status = Status.OUT_FOR_DELIVERY,
    closed_ago: timedelta | None = None,
    out_ended_ago: timedelta | None = None,
    courier: bytes | None = COURIER,
) -> RouteFacts:
    return RouteFacts(
        state=state,
        expires_at=NOW + expires,
        status=status,
        closed_at=NOW - closed_ago if closed_ago is not None else None,
        out_ended_at=NOW - out_ended_ago if out_ended_ago is not None else None,
        sender_index=SENDER,
        recipient_index=RECIPIENT,
        courier_index=courier,
    )


ACTIVE_OUT = facts()
IN_TRANSIT = facts(status=Status.IN_TRANSIT)
DELIVERED_1H = facts(
    status=Status.DELIVERED, closed_ago=timedelta(hours=1), out_ended_ago=timedelta(hours=1)
)
DELIVERED_3H = facts(
    status=Status.DELIVERED, closed_ago=timedelta(hours=3), out_ended_ago=timedelta(hours=3)
)
DELIVERED_16D = facts(
    status=Status.DELIVERED, closed_ago=timedelta(days=16), out_ended_ago=timedelta(days=16)
)
EXPIRED_BY_TIME = facts(expires=timedelta(0))
EXPIRED_STATE = facts(state=BindingState.EXPIRED)
RELEASED = facts(state=BindingState.RELEASED)
NO_COURIER = facts(courier=None)

# (facts, caller, expected rule, expected target) — every row written out.
MATRIX: list[tuple[str, RouteFacts | None, bytes | None, str, Target | None]] = [
    ("no binding", None, COURIER, "route.unknown_line", None),
    ("courier, out for delivery", ACTIVE_OUT, COURIER, "route.courier", Target.RECIPIENT),
    ("sender, out for delivery", ACTIVE_OUT, SENDER, "route.sender", Target.RECIPIENT),
    ("recipient calls back", ACTIVE_OUT, RECIPIENT, "route.recipient_callback", Target.COURIER),
    ("stranger", ACTIVE_OUT, STRANGER, "route.stranger", None),
    ("withheld number", ACTIVE_OUT, None, "route.no_caller_id", None),
    ("courier before out for delivery", IN_TRANSIT, COURIER, "route.courier_window", None),
    ("sender before out for delivery", IN_TRANSIT, SENDER, "route.sender", Target.RECIPIENT),
    ("recipient, no courier out", IN_TRANSIT, RECIPIENT, "route.recipient_no_courier", None),
    ("courier 1 h after delivery", DELIVERED_1H, COURIER, "route.courier", Target.RECIPIENT),
    ("courier 3 h after delivery", DELIVERED_3H, COURIER, "route.courier_window", None),
    ("sender 3 h after delivery", DELIVERED_3H, SENDER, "route.sender", Target.RECIPIENT),
    ("sender 16 days after delivery", DELIVERED_16D, SENDER, "route.expired", None),
    ("courier 16 days after delivery", DELIVERED_16D, COURIER, "route.expired", None),
    ("courier, expired by time", EXPIRED_BY_TIME, COURIER, "route.expired", None),
    ("sender, expired by time", EXPIRED_BY_TIME, SENDER, "route.expired", None),
    ("courier, expired state", EXPIRED_STATE, COURIER, "route.expired", None),
    ("sender, released", RELEASED, SENDER, "route.released", None),
    ("courier, released", RELEASED, COURIER, "route.released", None),
    ("recipient, nobody assigned", NO_COURIER, RECIPIENT, "route.recipient_no_courier", None),
    ("sender, nobody assigned", NO_COURIER, SENDER, "route.sender", Target.RECIPIENT),
    ("a courier's phone when none is assigned", NO_COURIER, COURIER, "route.stranger", None),
]


@pytest.mark.parametrize(
    ("case", "given_facts", "caller", "rule", "target"), MATRIX, ids=[m[0] for m in MATRIX]
)
def test_routing_matrix(
    case: str,
    given_facts: RouteFacts | None,
    caller: bytes | None,
    rule: str,
    target: Target | None,
) -> None:
    decision = route(given_facts, caller, NOW)
    assert decision.rule == rule, case
    assert decision.target is target
    assert decision.allowed is (target is not None)
    assert decision.message  # Chinese first, then English
    assert "/" in decision.message


def test_sender_who_is_also_the_recipient_reaches_the_courier() -> None:
    same = RouteFacts(
        BindingState.ACTIVE,
        NOW + timedelta(days=1),
        Status.OUT_FOR_DELIVERY,
        None,
        None,
        SENDER,
        SENDER,
        COURIER,
    )
    assert route(same, SENDER, NOW).rule == "route.recipient_callback"
