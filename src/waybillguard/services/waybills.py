"""Masked views and lifecycle events. Nothing here decrypts."""

from __future__ import annotations

from typing import Any

from waybillguard.adapters.db.waybill_store import StoredEvent, StoredWaybill
from waybillguard.domain.fields import PII_ATTRIBUTES, ROLES
from waybillguard.domain.identity import Principal
from waybillguard.domain.lifecycle import Status, check_transition, parse_status
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.visibility import view_check, visible

MAX_LIST = 10_000


class WaybillNotFound(LookupError):
    def __init__(self) -> None:
        super().__init__("no waybill with that tracking number")


class ConcurrentUpdate(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the waybill changed while the event was recorded; retry")


def masked_view(w: StoredWaybill, events: list[StoredEvent] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tracking_number": w.tracking_number,
        "status": w.status,
        **{role: {a: w.masks[f"{role}.{a}"] for a in PII_ATTRIBUTES} for role in ROLES},
        "origin_adcode": w.origin_adcode,
        "destination_adcode": w.destination_adcode,
        "origin_station": w.origin_station,
        "destination_station": w.destination_station,
        "merchant": w.merchant,
        "order_ref": w.order_ref,
        "parcel": {"weight_g": w.weight_g, "category": w.category},
        "created_at": w.created_at.isoformat(),
        "updated_at": w.updated_at.isoformat(),
        "shredded": w.shredded_at is not None,
    }
    if events is not None:
        history: list[dict[str, Any]] = [
            {"status": Status.CREATED.value, "at": w.created_at.isoformat(), "actor": "import"}
        ]
        history += [
            {"status": e.status, "at": e.at.isoformat(), "actor": e.actor, "note": e.note}
            for e in events
        ]
        view["events"] = history
    return view


def _normalise_number(number: str) -> str:
    parsed = parse_tracking_number(number)
    if parsed is None:
        raise WaybillNotFound()
    return str(parsed)


def show(
    app: App, number: str, actor: Actor | None = None, principal: Principal | None = None
) -> dict[str, Any]:
    """One masked waybill. Audited (found, outside the caller's scope, or not found)
    before anything is returned; out of scope answers exactly like not found."""
    actor = actor or Actor.local_operator()
    parsed = parse_tracking_number(number)
    stored = app.store.get(str(parsed)) if parsed else None
    decision, rule = ("allow", "") if stored else ("n/a", "")
    if stored is not None and principal is not None:
        verdict = view_check(app, principal)(stored)
        decision, rule = verdict.effect.value, verdict.rule
    emit(
        app,
        actor,
        "waybill.show",
        waybills=[stored.tracking_number] if stored else [],
        decision=decision,
        rule=rule,
        detail={"found": 1 if stored else 0},
    )
    if stored is None or decision != "allow":
        raise WaybillNotFound()
    return masked_view(stored, app.store.events(stored.id))


def list_waybills(
    app: App,
    limit: int,
    after_id: int = 0,
    actor: Actor | None = None,
    principal: Principal | None = None,
) -> list[dict[str, Any]]:
    """A page of masked waybills (only those in the caller's scope). The audit event
    names every waybill shown."""
    limit = max(1, min(limit, MAX_LIST))
    page = visible(app, principal, app.store.page(limit, after_id))
    emit(
        app,
        actor or Actor.local_operator(),
        "waybill.list",
        waybills=[w.tracking_number for w in page],
        detail={"count": len(page), "after_id": after_id},
    )
    return [masked_view(w) for w in page]


def record_event(
    app: App,
    number: str,
    status: str,
    actor: Actor | None = None,
    note: str | None = None,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Record a lifecycle event; a logged-in principal only on waybills in their scope."""
    actor = actor or Actor.local_operator()
    wanted = parse_status(status)
    tracking = _normalise_number(number)
    if principal is not None:
        stored = app.store.get(tracking)
        if stored is None or not view_check(app, principal)(stored).allowed:
            raise WaybillNotFound()
    with app.store.write() as conn:
        current = app.store.current_status(conn, tracking)
        if current is None:
            raise WaybillNotFound()
        waybill_id, old = current
        check_transition(Status(old), wanted)
        if not app.store.record_event(conn, waybill_id, old, wanted.value, actor.name, note):
            raise ConcurrentUpdate()
    emit(app, actor, "event", waybills=[tracking], detail={"from": old, "to": wanted.value})
    return {"tracking_number": tracking, "from": old, "status": wanted.value}
