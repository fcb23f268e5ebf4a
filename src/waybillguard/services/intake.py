"""Create waybills one request at a time (the HTTP API's single and batch create).

The same path as a file import, for a handful of rows and all or nothing:

    rows → validate + normalise every row (domain, the importer's `Sealer`)
         → refuse the whole request if any row is invalid or already stored
         → reserve one tracking counter per row (its own short transaction)
         → number + seal + blind-index (vault, outside any lock)
         → insert every row and the `waybill.create` audit event in one transaction

Rejections name the row (1-based, in request order), the field and the reason — never
the value. Counters reserved for a request that then loses a race to a concurrent one
are not reused, exactly as with a killed import (see docs/tracking-numbers.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from waybillguard.domain.errors import FieldError
from waybillguard.domain.waybill import Order
from waybillguard.services.activity import Actor, emit_in
from waybillguard.services.app import App
from waybillguard.services.importer import DEFAULT_MERCHANT, Rejection, Sealer, _Importer
from waybillguard.services.readers import FIELDS

MAX_BATCH: Final = 500
DUPLICATE_REASON: Final = "an order with this merchant and order_ref is already stored"


class IntakeRejected(ValueError):
    """Nothing was stored: `errors` lists (row, field, reason) for every bad row.
    `conflict` is true when the only problem is orders that already exist."""

    def __init__(self, errors: Sequence[Rejection], *, conflict: bool = False) -> None:
        super().__init__(f"{len(errors)} row(s) rejected; nothing was stored")
        self.errors = list(errors)
        self.conflict = conflict


@dataclass(frozen=True, slots=True)
class Created:
    row: int
    tracking_number: str
    merchant: str
    order_ref: str

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "tracking_number": self.tracking_number,
            "merchant": self.merchant,
            "order_ref": self.order_ref,
        }


def _sealer(app: App) -> Sealer:
    """One Sealer per app (it loads the keyring and the division table once)."""
    sealer = app.__dict__.get("_intake_sealer")
    if sealer is None:
        sealer = Sealer(app.settings.keyring_path, app.settings.tracking_prefix)
        app.__dict__["_intake_sealer"] = sealer
    return sealer


def _text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, "expected a string or a number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flatten(row: Mapping[str, Any]) -> dict[str, str]:
    """A nested row ({"sender": {"name": …}, "parcel": {…}}) as the dotted fields the
    readers produce (`readers.FIELDS`); absent values are left out."""
    out: dict[str, str] = {}
    for name in FIELDS:
        group, _, attribute = name.partition(".")
        if attribute:
            sub = row.get(group)
            if sub is None:
                continue
            if not isinstance(sub, Mapping):
                raise FieldError(group, "expected an object")
            value = sub.get(attribute)
        else:
            value = row.get(name)
        if value is not None:
            out[name] = _text(value, name)
    return out


def _validate(
    sealer: Sealer, rows: Sequence[Mapping[str, Any]], merchant: str | None
) -> tuple[list[Order], list[Rejection]]:
    orders: list[Order] = []
    errors: list[Rejection] = []
    seen: set[tuple[str, str]] = set()
    for number, row in enumerate(rows, start=1):
        try:
            fields = flatten(row)
            given = fields.get("merchant", "").strip()
            if merchant is not None:
                if given and given != merchant:
                    raise FieldError("merchant", "you may only create your own merchant's orders")
                fields["merchant"] = merchant
            elif not given:
                fields["merchant"] = DEFAULT_MERCHANT
            order = sealer.validator.validate(fields)
        except FieldError as exc:
            errors.append((number, exc.field, exc.reason))
            continue
        key = (order.merchant, order.order_ref)
        if key in seen:
            errors.append((number, "order_ref", "the same order appears twice in this request"))
            continue
        seen.add(key)
        orders.append(order)
    return orders, errors


def create(
    app: App,
    actor: Actor,
    rows: Sequence[Mapping[str, Any]],
    *,
    merchant: str | None = None,
) -> list[Created]:
    """Validate, number, seal and store `rows`, all or none (raises IntakeRejected).

    `merchant`, when given (a partner client), is the only merchant the rows may name;
    rows that name none get it. Otherwise rows without a merchant get the importer's
    default merchant."""
    if not rows:
        raise FieldError("waybills", "give at least one waybill")
    if len(rows) > MAX_BATCH:
        raise FieldError("waybills", f"at most {MAX_BATCH} waybills per request")
    sealer = _sealer(app)
    orders, errors = _validate(sealer, rows, merchant)
    if errors:
        raise IntakeRejected(errors)
    keys = [(o.merchant, o.order_ref) for o in orders]
    store = app.store
    prefix = app.settings.tracking_prefix
    with store.write() as conn:
        existing = store.existing_orders(conn, keys)
        if existing:
            raise IntakeRejected(_duplicates(keys, existing), conflict=True)
        counters = store.reserve_counters(conn, prefix, len(orders))
    numbers = sealer.vault.issue_tracking_numbers(prefix, list(counters))
    sealed = [sealer.row_for(o, n) for o, n in zip(orders, numbers, strict=True)]
    with store.write() as conn:
        existing = store.existing_orders(conn, keys)  # stored meanwhile by another request
        if existing:
            raise IntakeRejected(_duplicates(keys, existing), conflict=True)
        # The importer's store step: re-wraps keys if a rotation began meanwhile.
        stored, skipped = _Importer(app, conn, DEFAULT_MERCHANT).store(sealed)
        if skipped:
            # Lost a race on the unique index after the check: roll back all of it.
            raise IntakeRejected(
                [(i, "order_ref", DUPLICATE_REASON) for i in range(1, len(keys) + 1)],
                conflict=True,
            )
        emit_in(
            app,
            conn,
            actor,
            "waybill.create",
            waybills=numbers,
            detail={"count": stored},
        )
    return [
        Created(i, n, o.merchant, o.order_ref)
        for i, (o, n) in enumerate(zip(orders, numbers, strict=True), start=1)
    ]


def _duplicates(keys: list[tuple[str, str]], existing: set[tuple[str, str]]) -> list[Rejection]:
    return [(i, "order_ref", DUPLICATE_REASON) for i, k in enumerate(keys, 1) if k in existing]
