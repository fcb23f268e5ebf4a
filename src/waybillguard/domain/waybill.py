"""A validated order, ready to be numbered and sealed, and its masked rendering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from waybillguard.domain.address import Address, AddressResolver, mask_address
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ORDER_FIELDS
from waybillguard.domain.parcel import (
    Parcel,
    parse_category,
    parse_merchant,
    parse_order_ref,
    parse_weight,
)
from waybillguard.domain.person_name import PersonName, mask_name, parse_name
from waybillguard.domain.phone import Phone, mask_phone, parse_phone
from waybillguard.domain.slot_setters import slot_setters

MAX_FIELD_CHARS = 256


@dataclass(frozen=True, slots=True)
class Party:
    name: PersonName
    phone: Phone
    address: Address

    def masked(self, names: tuple[str, ...] = ()) -> dict[str, str]:
        """``names``: the other parties', whose names the masked address must not
        show either (this party's own name is always included)."""
        return {
            "name": mask_name(self.name),
            "phone": mask_phone(self.phone),
            "address": mask_address(self.address, (self.name.value, *names)),
        }

    def secrets(self) -> dict[str, str]:
        """The plaintext that goes into the vault (address: detail only; divisions stay clear)."""
        return {
            "name": self.name.value,
            "phone": self.phone.national,
            "address": self.address.detail,
        }


@dataclass(frozen=True, slots=True)
class Order:
    merchant: str
    order_ref: str
    sender: Party
    recipient: Party
    parcel: Parcel

    def pii(self) -> dict[str, str]:
        """The plaintext of every personal field, keyed and ordered as `PII_FIELDS`."""
        s, r = self.sender, self.recipient
        return {
            "sender.name": s.name.value,
            "sender.phone": s.phone.national,
            "sender.address": s.address.detail,
            "recipient.name": r.name.value,
            "recipient.phone": r.phone.national,
            "recipient.address": r.address.detail,
        }


def order_key(fields: Mapping[str, str]) -> tuple[str, str] | None:
    """The idempotency key (merchant, order_ref) as it will be stored; None if invalid."""
    try:
        return parse_merchant(fields.get("merchant", "")), parse_order_ref(
            fields.get("order_ref", "")
        )
    except FieldError:
        return None


class OrderValidator:
    """Turns one raw row (dotted field names -> text) into an `Order` or a FieldError."""

    def __init__(self, resolver: AddressResolver) -> None:
        self._resolver = resolver

    def validate(self, fields: Mapping[str, str]) -> Order:
        return self.validate_values([fields.get(name) for name in ORDER_FIELDS])

    def validate_values(self, values: Sequence[str | None]) -> Order:
        """Same as `validate`, for the values of a row in `ORDER_FIELDS` order (how the
        importer hands rows to its workers: cheaper to pass than one dict per row)."""
        if len(values) != len(ORDER_FIELDS):
            raise ValueError(f"expected {len(ORDER_FIELDS)} values in ORDER_FIELDS order")
        if (
            None in values
            or not all(values)
            or any(map(str.isspace, values))  # type: ignore[arg-type]
            or max(map(len, values)) > MAX_FIELD_CHARS  # type: ignore[arg-type]
        ):
            # A field is missing, blank or too long: check one field after the other.
            return self._validate_in_order(values)
        # Every field is present, so the per-field checks can be skipped (the usual row).
        (
            order_ref,
            merchant,
            s_name,
            s_phone,
            s_address,
            r_name,
            r_phone,
            r_address,
            weight,
            category,
        ) = cast("Sequence[str]", values)
        resolve = self._resolver.resolve
        # Same order as _validate_in_order, so a faulty row reports the same field.
        merchant_ = parse_merchant(merchant)
        order_ref_ = parse_order_ref(order_ref)
        sender = _make_party(
            parse_name(s_name, "sender.name"),
            parse_phone(s_phone, "sender.phone"),
            resolve(s_address, "sender.address"),
        )
        recipient = _make_party(
            parse_name(r_name, "recipient.name"),
            parse_phone(r_phone, "recipient.phone"),
            resolve(r_address, "recipient.address"),
        )
        parcel = _make_parcel(parse_weight(weight), parse_category(category))
        return _make_order(merchant_, order_ref_, sender, recipient, parcel)

    def _validate_in_order(self, values: Sequence[str | None]) -> Order:
        """Each field checked for presence and length just before it is parsed, in the
        order merchant, order_ref, sender, recipient, parcel: the first fault wins."""
        value = dict(zip(ORDER_FIELDS, values, strict=True))

        def text(field: str) -> str:
            return _required(value[field], field)

        resolve = self._resolver.resolve
        merchant = parse_merchant(text("merchant"))
        order_ref = parse_order_ref(text("order_ref"))
        parties = []
        for role in ("sender", "recipient"):
            name = parse_name(text(f"{role}.name"), f"{role}.name")
            phone = parse_phone(text(f"{role}.phone"), f"{role}.phone")
            address = resolve(text(f"{role}.address"), f"{role}.address")
            parties.append(_make_party(name, phone, address))
        weight = parse_weight(text("parcel.weight_g"))
        parcel = _make_parcel(weight, parse_category(text("parcel.category")))
        return _make_order(merchant, order_ref, parties[0], parties[1], parcel)


def _required(value: str | None, field: str) -> str:
    if value is None or not value.strip():
        raise FieldError(field, "required field is missing or empty")
    if len(value) > MAX_FIELD_CHARS:
        raise FieldError(field, f"longer than {MAX_FIELD_CHARS} characters")
    return value


# Four of these per row on the import path: see domain/slot_setters.
_PARTY_SET = slot_setters(Party, ("name", "phone", "address"))
_ORDER_SET = slot_setters(Order, ("merchant", "order_ref", "sender", "recipient", "parcel"))
_PARCEL_SET = slot_setters(Parcel, ("weight_g", "category"))


def _make_party(name: PersonName, phone: Phone, address: Address) -> Party:
    party: Party = object.__new__(Party)
    set_name, set_phone, set_address = _PARTY_SET
    set_name(party, name)
    set_phone(party, phone)
    set_address(party, address)
    return party


def _make_parcel(weight_g: int, category: str) -> Parcel:
    parcel: Parcel = object.__new__(Parcel)
    set_weight, set_category = _PARCEL_SET
    set_weight(parcel, weight_g)
    set_category(parcel, category)
    return parcel


def _make_order(
    merchant: str, order_ref: str, sender: Party, recipient: Party, parcel: Parcel
) -> Order:
    order: Order = object.__new__(Order)
    for setter, value in zip(
        _ORDER_SET, (merchant, order_ref, sender, recipient, parcel), strict=True
    ):
        setter(order, value)
    return order
