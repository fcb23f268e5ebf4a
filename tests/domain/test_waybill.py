"""OrderValidator: the values-tuple path validates exactly as the mapping path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import AddressResolver
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ORDER_FIELDS
from waybillguard.domain.waybill import Order, OrderValidator

VALIDATOR = OrderValidator(AddressResolver(load_divisions()))

GOOD = {
    "order_ref": "ORD-1",
    "merchant": "北岸小铺",
    "sender.name": "欧阳娜娜",
    "sender.phone": "13800138000",
    "sender.address": "广东省深圳市南山区科技园路12号3栋502室",
    "recipient.name": "José Müller",
    "recipient.phone": "010-12345678",
    "recipient.address": "北京市朝阳区建国路88号",
    "parcel.weight_g": "470",
    "parcel.category": "化妆品",
}
BAD_VALUES = ["", "   ", None, "x" * 300, "<b>", "王", "12", "火星基地", "abc", "0"]


def _outcome(values: list[str | None]) -> Order | tuple[str, str]:
    try:
        return VALIDATOR.validate_values(values)
    except FieldError as exc:
        return exc.field, exc.reason


def _reference(values: list[str | None]) -> Order | tuple[str, str]:
    """Field by field, presence and length checked just before each parse."""
    try:
        return VALIDATOR._validate_in_order(values)
    except FieldError as exc:
        return exc.field, exc.reason


def test_good_row() -> None:
    order = VALIDATOR.validate(GOOD)
    assert order.sender.name.surname == "欧阳"
    assert order.recipient.phone.kind == "landline"
    assert order.parcel.weight_g == 470
    assert (
        _outcome([GOOD[f] for f in ORDER_FIELDS])
        == order
        == _reference([GOOD[f] for f in ORDER_FIELDS])
    )


@settings(max_examples=500)
@given(st.dictionaries(st.sampled_from(ORDER_FIELDS), st.sampled_from(BAD_VALUES), max_size=5))
def test_faulty_rows_report_the_same_first_field(faults: dict[str, str | None]) -> None:
    row = {**GOOD, **faults}
    values = [row[f] for f in ORDER_FIELDS]
    assert _outcome(values) == _reference(values)


def test_merchant_is_checked_before_order_ref() -> None:
    row = {**GOOD, "merchant": "<b>", "order_ref": "", "sender.name": None}
    assert _outcome([row[f] for f in ORDER_FIELDS])[0] == "merchant"  # type: ignore[index]
