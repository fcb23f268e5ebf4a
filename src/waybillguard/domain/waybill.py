"""A validated order, ready to be numbered and sealed, and its masked rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from waybillguard.domain.address import Address, AddressResolver, mask_address
from waybillguard.domain.errors import FieldError
from waybillguard.domain.parcel import (
    Parcel,
    parse_category,
    parse_merchant,
    parse_order_ref,
    parse_weight,
)
from waybillguard.domain.person_name import PersonName, mask_name, parse_name
from waybillguard.domain.phone import Phone, mask_phone, parse_phone

MAX_FIELD_CHARS = 256


@dataclass(frozen=True, slots=True)
class Party:
    name: PersonName
    phone: Phone
    address: Address

    def masked(self) -> dict[str, str]:
        return {
            "name": mask_name(self.name),
            "phone": mask_phone(self.phone),
            "address": mask_address(self.address),
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
        out: dict[str, str] = {}
        for role, party in (("sender", self.sender), ("recipient", self.recipient)):
            for attr, value in party.secrets().items():
                out[f"{role}.{attr}"] = value
        return out


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

    def _text(self, fields: Mapping[str, str], field: str) -> str:
        value = fields.get(field)
        if value is None or not value.strip():
            raise FieldError(field, "required field is missing or empty")
        if len(value) > MAX_FIELD_CHARS:
            raise FieldError(field, f"longer than {MAX_FIELD_CHARS} characters")
        return value

    def _party(self, fields: Mapping[str, str], role: str) -> Party:
        name = parse_name(self._text(fields, f"{role}.name"), f"{role}.name")
        phone = parse_phone(self._text(fields, f"{role}.phone"), f"{role}.phone")
        address = self._resolver.resolve(self._text(fields, f"{role}.address"), f"{role}.address")
        return Party(name, phone, address)

    def validate(self, fields: Mapping[str, str]) -> Order:
        return Order(
            merchant=parse_merchant(self._text(fields, "merchant")),
            order_ref=parse_order_ref(self._text(fields, "order_ref")),
            sender=self._party(fields, "sender"),
            recipient=self._party(fields, "recipient"),
            parcel=Parcel(
                parse_weight(self._text(fields, "parcel.weight_g")),
                parse_category(self._text(fields, "parcel.category")),
            ),
        )
