"""Which masked waybills a logged-in principal may see (the policy's `view` scope).

Masked views carry no personal data, but tracking numbers and routes are what
"brushing" fraud buys, so a franchise station's account sees its own station's
waybills, a courier its assignments, a partner its shipments. A waybill outside the
scope is reported exactly like a missing one, so probing numbers learns nothing.
The local operator (no session; already holds the keyring) sees everything.
"""

from __future__ import annotations

from collections.abc import Callable

from waybillguard.adapters.db.waybill_store import StoredWaybill
from waybillguard.domain.identity import Principal
from waybillguard.domain.lifecycle import Status
from waybillguard.domain.policy import Decision, Scope, WaybillFacts, decide_view
from waybillguard.services import policy_admin
from waybillguard.services.app import App

MAX_ASSIGNED = 100_000


def _facts(w: StoredWaybill, assigned_to: int | None) -> WaybillFacts:
    return WaybillFacts(
        tracking_number=w.tracking_number,
        status=Status(w.status),
        origin_station=w.origin_station,
        destination_station=w.destination_station,
        merchant=w.merchant,
        assigned_courier=assigned_to,
        shredded=w.shredded_at is not None,
    )


def view_check(app: App, principal: Principal) -> Callable[[StoredWaybill], Decision]:
    """A decision function for these waybills (one query for a courier's assignments)."""
    policy = policy_admin.current(app)
    assigned: set[str] = set()
    if policy.roles[principal.role].view is Scope.ASSIGNED:
        store = policy_admin.access_store(app)
        with store.read() as conn:
            assigned = set(store.assigned_to(conn, principal.id, MAX_ASSIGNED))

    def decide(w: StoredWaybill) -> Decision:
        owner = principal.id if w.tracking_number in assigned else None
        return decide_view(policy, principal, _facts(w, owner))

    return decide


def visible(
    app: App, principal: Principal | None, found: list[StoredWaybill]
) -> list[StoredWaybill]:
    if principal is None:
        return found
    decide = view_check(app, principal)
    return [w for w in found if decide(w).allowed]
