"""Names of the personal fields of a waybill, as used everywhere (policy, vault, store)."""

from __future__ import annotations

ROLES = ("sender", "recipient")
PII_ATTRIBUTES = ("name", "phone", "address")
# Every personal field of a waybill, in the order they are sealed and stored.
PII_FIELDS = tuple(f"{role}.{attr}" for role in ROLES for attr in PII_ATTRIBUTES)

# The fields of one order as read from an import file, in the order rows carry them
# between processes (`OrderValidator.validate_values`).
ORDER_FIELDS = ("order_ref", "merchant", *PII_FIELDS, "parcel.weight_g", "parcel.category")
