"""Exact lookup by phone, or by name + phone, through the blind indexes.

The caller's phone and name are validated and normalised exactly as at import,
turned into keyed blind indexes by the vault, and matched without decrypting
anything. Results are masked views.
"""

from __future__ import annotations

from typing import Any

from waybillguard.domain.identity import Principal
from waybillguard.domain.person_name import parse_name
from waybillguard.domain.phone import parse_phone
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.visibility import visible
from waybillguard.services.waybills import masked_view

MAX_RESULTS = 100


def by_phone(
    app: App,
    phone: str,
    name: str | None = None,
    limit: int = MAX_RESULTS,
    actor: Actor | None = None,
    principal: Principal | None = None,
) -> list[dict[str, Any]]:
    """Masked waybills of a party. The audit event records the blind-index reference
    (never the phone or name) and every waybill returned."""
    parsed_phone = parse_phone(phone, "phone")
    phone_index = app.vault.index_phone(parsed_phone.e164)
    name_index = None
    if name is not None:
        parsed_name = parse_name(name, "name")
        name_index = app.vault.index_name_phone(parsed_name.value, parsed_phone.e164)
    found = visible(
        app,
        principal,
        app.store.find_by_phone_index(phone_index, name_index, max(1, min(limit, MAX_RESULTS))),
    )
    emit(
        app,
        actor or Actor.local_operator(),
        "search",
        waybills=[w.tracking_number for w in found],
        subject_refs=[(name_index or phone_index).hex()],
        detail={"count": len(found), "by": "name+phone" if name_index else "phone"},
    )
    return [masked_view(w) for w in found]
