"""Virtual numbers (隐私号): the pool, bindings per waybill, and call routing.

    label  → label_phone_line(app, number) → allocate (idempotent) → "17012345678转4821"
    call   → carrier callback → route_call → decision (domain, over blind indexes)
           → audit event "call.route" (committed) → decrypt the target (vault, grant
             citing that event) → carrier connects

* Allocation is exact under concurrency (see `adapters/db/telephony_store.py`) and never
  hands out an (X, extension) before its cool-down ended.
* The pool level is checked after allocations (sampled: every `interval`-th binding id,
  the interval a tenth of the low threshold, so the crossing is seen long before the
  pool runs dry), on `pool add`, `pool status` and `expire`; crossing into *low* raises
  one alert (`numbers.pool_low`), recovering re-arms it.
* Every routed call is audited, allowed or refused, before any number is decrypted: if
  the audit event cannot be written, no number leaves the vault. The caller appears in
  the log only as the blind index of their number; virtual numbers do not appear at all
  (the log refuses 11-digit runs): bindings are referred to by id.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection

from waybillguard.adapters.db.telephony_store import (
    AlreadyRegistered,
    RouteRow,
    SealedPhone,
    SlotConflict,
    TelephonyStore,
)
from waybillguard.adapters.telephony.provider import HttpProvider, NullProvider, TelephonyProvider
from waybillguard.domain.audit_event import letter_digest
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import Principal, Role
from waybillguard.domain.lifecycle import TERMINAL, Status
from waybillguard.domain.phone import mask_phone, parse_phone
from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.domain.virtual_number import (
    DEFAULT_EXTENSIONS,
    Binding,
    BindingState,
    PoolLevel,
    PoolSettings,
    PoolStatus,
    RouteDecision,
    RouteFacts,
    Target,
    extensions_for,
    level_change,
    parse_days,
    parse_extension,
    parse_virtual_number,
    route,
)
from waybillguard.services import alerts, identities, keys, policy_admin
from waybillguard.services.activity import Actor, emit_in
from waybillguard.services.app import App
from waybillguard.vault import RevealGrant, SealedFields, SealedRecord

PROVIDER_URL_ENV: Final = "WAYBILLGUARD_TELEPHONY_PROVIDER_URL"
MAX_NUMBERS_PER_ADD: Final = 1000
MAX_LIST: Final = 10_000
EXPIRE_BATCH: Final = 1000
MANAGE_ROLES: Final = frozenset({Role.ADMIN.value, "operator"})
# Who may bind, renew and release lines by hand (labels are printed by station staff
# and data-entry clerks; couriers get a binding only through the courier flow).
BIND_ROLES: Final = frozenset(
    {
        Role.ADMIN.value,
        Role.STATION_CLERK.value,
        Role.STATION_MANAGER.value,
        Role.DATA_ENTRY.value,
        "operator",
        "system",
    }
)
_LABEL = re.compile(r"[a-z][a-z0-9_-]{1,31}")
COURIER_PHONE_FIELD: Final = "courier.phone"


class NumbersError(ValueError):
    """A virtual-number request was refused; `code` is stable, the message Chinese first."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PoolExhausted(NumbersError):
    def __init__(self) -> None:
        super().__init__(
            "numbers.exhausted",
            "隐私号池已用尽，请扩容 / the virtual-number pool is exhausted; add numbers",
        )


class RouteFailed(RuntimeError):
    """The call was allowed and audited, but the target could not be decrypted (e.g. the
    waybill was shredded meanwhile). No number left the vault."""


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def store_for(app: App) -> TelephonyStore:
    """The telephony store of this app (one per app)."""
    store = app.__dict__.get("_telephony_store")
    if store is None:
        store = TelephonyStore(app.engine)
        app.__dict__["_telephony_store"] = store
    return store


def provider_for(app: App) -> TelephonyProvider:
    """The carrier to notify of bindings: `WAYBILLGUARD_TELEPHONY_PROVIDER_URL` (the
    simulator or a carrier adapter speaking the same API), else none."""
    provider = app.__dict__.get("_telephony_provider")
    if provider is None:
        url = os.environ.get(PROVIDER_URL_ENV)
        provider = HttpProvider(url) if url else NullProvider()
        app.__dict__["_telephony_provider"] = provider
    return provider


def _notify(app: App, call: Callable[[TelephonyProvider], None]) -> None:
    """Binding notifications are advisory (the routing callback decides every call): a
    carrier that cannot be reached does not undo a committed binding."""
    with contextlib.suppress(Exception):
        call(provider_for(app))


def _notify_bind(app: App, binding: Binding) -> None:
    _notify(app, lambda p: p.bind(binding.virtual_number, binding.extension, binding.expires_at))


def _notify_unbind(app: App, binding: Binding) -> None:
    _notify(app, lambda p: p.unbind(binding.virtual_number, binding.extension))


def _require(actor: Actor, roles: frozenset[str], what: str) -> None:
    if actor.role not in roles:
        raise PermissionError(f"无权{what} / not allowed to {what}")


def _tracking(number: str) -> str:
    parsed = parse_tracking_number(number)
    if parsed is None:
        raise NumbersError("waybill.not_found", "无此运单 / no such waybill")
    return str(parsed)


# -- settings ------------------------------------------------------------------------------
def _settings_in(store: TelephonyStore, conn: Connection) -> tuple[PoolSettings, bool]:
    row = store.config(conn)
    settings = PoolSettings(
        cooldown=timedelta(days=row.cooldown_days),
        grace=timedelta(days=row.grace_days),
        undelivered_ttl=timedelta(days=row.undelivered_days),
        low_percent=row.low_percent,
        low_free=row.low_free,
    )
    return settings, row.low_alerted


def settings(app: App) -> PoolSettings:
    store = store_for(app)
    with store.read() as conn:
        return _settings_in(store, conn)[0]


def configure(
    app: App,
    actor: Actor,
    *,
    cooldown_days: int | None = None,
    grace_days: int | None = None,
    undelivered_days: int | None = None,
    low_percent: int | None = None,
    low_free: int | None = None,
) -> PoolSettings:
    """Change the pool's settings (administrators or the local operator); audited."""
    _require(actor, MANAGE_ROLES, "修改隐私号设置 / change virtual-number settings")
    values: dict[str, int] = {}
    for name, value in (
        ("cooldown_days", cooldown_days),
        ("grace_days", grace_days),
        ("undelivered_days", undelivered_days),
    ):
        if value is not None:
            parse_days(value, name)
            values[name] = value
    if low_percent is not None:
        if not 0 <= low_percent <= 100:
            raise FieldError("low_percent", "between 0 and 100")
        values["low_percent"] = low_percent
    if low_free is not None:
        if not 0 <= low_free <= 10**6:
            raise FieldError("low_free", "between 0 and 1000000")
        values["low_free"] = low_free
    store = store_for(app)
    with store.write() as conn:
        if values:
            store.update_config(conn, values, _now(None), actor.name)
            emit_in(app, conn, actor, "numbers.config", detail=dict(values))
        result = _settings_in(store, conn)[0]
    check_pool(app)
    return result


# -- the pool ------------------------------------------------------------------------------
def add_numbers(
    app: App,
    actor: Actor,
    numbers: Sequence[str],
    extensions: int = DEFAULT_EXTENSIONS,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Add X numbers to the pool, each with `extensions` extensions (1000, 1001, …).
    Numbers already in the pool are left as they are. Audited without the numbers
    themselves (the log refuses 11-digit runs): their count and a digest."""
    _require(actor, MANAGE_ROLES, "管理隐私号池 / manage the virtual-number pool")
    if not numbers:
        raise FieldError("numbers", "name at least one virtual number")
    if len(numbers) > MAX_NUMBERS_PER_ADD:
        raise FieldError("numbers", f"at most {MAX_NUMBERS_PER_ADD} per call")
    parsed = [parse_virtual_number(n, f"numbers[{i}]") for i, n in enumerate(numbers)]
    exts = extensions_for(extensions)
    now = _now(now)
    store = store_for(app)
    with store.write() as conn:
        added = store.add_numbers(conn, parsed, exts, now, actor.name)
        emit_in(
            app,
            conn,
            actor,
            "numbers.pool",
            detail={
                "op": "add",
                "added": len(added),
                "skipped": len(set(parsed)) - len(added),
                "extensions": extensions,
                "numbers_ref": letter_digest(",".join(sorted(added))) if added else "",
            },
        )
    status = check_pool(app, now)
    return {
        "added": len(added),
        "skipped": len(set(parsed)) - len(added),
        "extensions": extensions,
        "pool": status.as_json(),
    }


def _status_in(store: TelephonyStore, conn: Connection, now: datetime) -> tuple[PoolStatus, bool]:
    cfg, alerted = _settings_in(store, conn)
    numbers, total, bound, cooling = store.pool_counts(conn, now)
    return PoolStatus(numbers, total, bound, cooling, cfg.threshold(total)), alerted


def pool_status(app: App, now: datetime | None = None) -> PoolStatus:
    """How full the pool is (and raise the low-pool alert if it just crossed)."""
    return check_pool(app, now)


def check_pool(app: App, now: datetime | None = None) -> PoolStatus:
    """Compute the pool level; on a crossing into low (or exhausted) raise one alert,
    on recovery re-arm it. Exactly one of several concurrent checkers raises."""
    now = _now(now)
    store = store_for(app)
    with store.read() as conn:
        status, alerted = _status_in(store, conn, now)
    app.__dict__["_vn_check_interval"] = max(1, status.threshold // 10)
    change = level_change(alerted, status.level)
    if change is None:
        return status
    with store.write() as conn:
        flipped = store.flip_low_alert(conn, change)
    if flipped and change:
        severity = "high" if status.level is PoolLevel.EXHAUSTED else "medium"
        try:
            alerts.raise_alert(
                app,
                "numbers.pool_low",
                severity,
                f"隐私号池余量不足：可用 {status.free} / 共 {status.total}"
                f"（阈值 {status.threshold}）"
                f" / virtual-number pool low: {status.free} of {status.total} free "
                f"(threshold {status.threshold}); add numbers",
            )
        except Exception:
            with store.write() as conn:  # let the next check raise it again
                store.flip_low_alert(conn, False)
            raise
    return status


def _maybe_check_pool(app: App, binding_id: int, now: datetime) -> None:
    interval = int(app.__dict__.get("_vn_check_interval", 1))
    if binding_id % interval == 0:
        check_pool(app, now)


def list_numbers(
    app: App, now: datetime | None = None, limit: int = MAX_LIST
) -> list[dict[str, Any]]:
    now = _now(now)
    store = store_for(app)
    with store.read() as conn:
        rows = store.number_rows(conn, now, max(1, min(limit, MAX_LIST)))
    return [
        {
            "virtual_number": r.number,
            "extensions": r.extensions,
            "bound": r.bound,
            "cooling": r.cooling,
            "free": 0 if r.retired else r.extensions - r.bound - r.cooling,
            "added_at": r.added_at.isoformat(),
            "retired": r.retired,
        }
        for r in rows
    ]


# -- bindings ------------------------------------------------------------------------------
def binding_for(app: App, number: str) -> Binding | None:
    """The waybill's active binding, if any (no audit: nothing personal)."""
    tracking = _tracking(number)
    store = store_for(app)
    with store.read() as conn:
        return store.active_binding(conn, tracking)


def allocate(
    app: App, number: str, *, actor: Actor | None = None, now: datetime | None = None
) -> Binding:
    """The waybill's live binding, allocating one if it has none (idempotent per
    waybill, also across processes). Raises NumbersError for an unknown or closed
    waybill, PoolExhausted when no slot is free even after sweeping expired bindings."""
    actor = actor or Actor.local_operator()
    _require(actor, BIND_ROLES, "分配隐私号 / bind virtual numbers")
    return allocate_for(app, actor, number, now)


def allocate_for(app: App, actor: Actor, number: str, now: datetime | None = None) -> Binding:
    """`allocate` for a caller that was already authorised (the courier flow, after the
    courier's reveal was allowed)."""
    tracking = _tracking(number)
    now = _now(now)
    swept = False
    for _attempt in range(5):
        try:
            binding, created = _allocate_once(app, actor, tracking, now)
        except SlotConflict:
            continue  # a concurrent transaction bound this waybill: read it next time
        if binding is not None:
            if created:
                _notify_bind(app, binding)
                _maybe_check_pool(app, binding.id, now)
            return binding
        if swept:
            break
        expire_due(app, now)
        swept = True
    else:
        raise NumbersError("numbers.busy", "分配冲突，请重试 / allocation contended; retry")
    check_pool(app, now)
    raise PoolExhausted()


def _allocate_once(
    app: App, actor: Actor, tracking: str, now: datetime
) -> tuple[Binding | None, bool]:
    store = store_for(app)
    with store.write() as conn:
        status = store.waybill_status(conn, tracking)
        if status is None:
            raise NumbersError("waybill.not_found", "无此运单 / no such waybill")
        existing = store.active_binding(conn, tracking)
        cfg, _ = _settings_in(store, conn)
        if existing is not None:
            if existing.live(now):
                return existing, False
            store.end_binding(conn, existing.id, BindingState.EXPIRED, now, now + cfg.cooldown)
            emit_in(
                app,
                conn,
                actor,
                "numbers.expire",
                waybills=[tracking],
                detail={"binding": existing.id, "count": 1},
            )
        if Status(status) in TERMINAL:
            raise NumbersError(
                "numbers.waybill_closed",
                "运单已结束，不再分配隐私号 / the waybill is closed; no new binding",
            )
        binding = store.allocate(conn, tracking, now, now + cfg.undelivered_ttl, actor.name)
        if binding is None:
            return None, False
        emit_in(
            app,
            conn,
            actor,
            "numbers.bind",
            waybills=[tracking],
            detail={"binding": binding.id, "extension": binding.extension},
        )
        return binding, True


def label_phone_line(app: App, number: str, *, actor: Actor | None = None) -> str:
    """The recipient's phone as a label prints it: the virtual number and extension of
    the waybill's binding (allocated if needed), e.g. ``17012345678转4821``."""
    return allocate(app, number, actor=actor).line


def label_phone_lines(
    app: App,
    numbers: Sequence[str],
    *,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """`label_phone_line` for a batch of labels: one read for the waybills that already
    have a live binding (reprints), one allocation each for the others. Keys are the
    normalised tracking numbers."""
    actor = actor or Actor.local_operator()
    _require(actor, BIND_ROLES, "分配隐私号 / bind virtual numbers")
    now = _now(now)
    wanted = list(dict.fromkeys(_tracking(n) for n in numbers))
    store = store_for(app)
    with store.read() as conn:
        live = {
            b.tracking_number: b.line for b in store.active_bindings(conn, wanted) if b.live(now)
        }
    for tracking in wanted:
        if tracking not in live:
            live[tracking] = allocate_for(app, actor, tracking, now).line
    return {t: live[t] for t in wanted}


def renew(
    app: App,
    number: str,
    *,
    days: int | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> Binding:
    """Extend a live binding to at least now + `days` (default: the grace period)."""
    actor = actor or Actor.local_operator()
    _require(actor, BIND_ROLES, "续期隐私号 / renew virtual numbers")
    tracking = _tracking(number)
    now = _now(now)
    store = store_for(app)
    with store.write() as conn:
        binding = store.active_binding(conn, tracking)
        if binding is None or not binding.live(now):
            raise NumbersError("numbers.no_binding", "此运单无有效隐私号 / no live binding")
        cfg, _ = _settings_in(store, conn)
        extend = parse_days(days, "days") if days is not None else cfg.grace
        expires_at = max(binding.expires_at, now + extend)
        store.set_expiry(conn, binding.id, expires_at)
        emit_in(
            app,
            conn,
            actor,
            "numbers.renew",
            waybills=[tracking],
            detail={"binding": binding.id, "days": extend.days},
        )
    renewed = replace(binding, expires_at=expires_at)
    _notify_bind(app, renewed)
    return renewed


def release(
    app: App, number: str, *, actor: Actor | None = None, now: datetime | None = None
) -> Binding:
    """End a waybill's binding now; its line cools down before anyone gets it again."""
    actor = actor or Actor.local_operator()
    _require(actor, BIND_ROLES, "解绑隐私号 / release virtual numbers")
    tracking = _tracking(number)
    now = _now(now)
    store = store_for(app)
    with store.write() as conn:
        binding = store.active_binding(conn, tracking)
        if binding is None:
            raise NumbersError("numbers.no_binding", "此运单无有效隐私号 / no live binding")
        cfg, _ = _settings_in(store, conn)
        store.end_binding(conn, binding.id, BindingState.RELEASED, now, now + cfg.cooldown)
        emit_in(
            app, conn, actor, "numbers.release", waybills=[tracking], detail={"binding": binding.id}
        )
    _notify_unbind(app, binding)
    _maybe_check_pool(app, binding.id, now)
    return replace(binding, state=BindingState.RELEASED, ended_at=now)


def expire_due(app: App, now: datetime | None = None, *, actor: Actor | None = None) -> int:
    """Expire every active binding whose time is up; returns how many. Audited in
    batches (one event naming the waybills of each batch)."""
    actor = actor or Actor.local_operator()
    now = _now(now)
    store = store_for(app)
    total = 0
    ended: list[Binding] = []
    while True:
        with store.write() as conn:
            cfg, _ = _settings_in(store, conn)
            due = store.due_bindings(conn, now, EXPIRE_BATCH)
            batch: list[Binding] = []
            for binding_id in due:
                binding = store.binding(conn, binding_id)
                if binding is not None and store.end_binding(
                    conn, binding_id, BindingState.EXPIRED, now, now + cfg.cooldown
                ):
                    batch.append(binding)
            if batch:
                emit_in(
                    app,
                    conn,
                    actor,
                    "numbers.expire",
                    waybills=sorted({b.tracking_number for b in batch}),
                    detail={"count": len(batch)},
                )
        total += len(batch)
        ended += batch
        if len(due) < EXPIRE_BATCH:
            break
    for binding in ended:
        _notify_unbind(app, binding)
    if total:
        check_pool(app, now)
    return total


def expire_after_delivery_in(
    app: App, conn: Connection, number: str, delivered_at: datetime
) -> Binding | None:
    """Inside the caller's transaction: the waybill was delivered, so its binding now
    ends `grace` after `delivered_at` (never later than it already would)."""
    store = store_for(app)
    binding = store.active_binding(conn, number)
    if binding is None:
        return None
    cfg, _ = _settings_in(store, conn)
    expires_at = min(binding.expires_at, cfg.expiry_after_delivery(_now(delivered_at)))
    store.set_expiry(conn, binding.id, expires_at)
    return replace(binding, expires_at=expires_at)


# -- couriers' registered phones -----------------------------------------------------------
def register_courier_phone(
    app: App, actor: Actor, username: str, phone: str, *, now: datetime | None = None
) -> dict[str, str]:
    """Register the phone a courier calls from (sealed by the vault; matched by blind
    index; shown masked). Administrators or the local operator; audited with the blind
    index, never the number."""
    _require(actor, MANAGE_ROLES, "登记快递员电话 / register couriers' phones")
    principal = identities.get_principal(app, username)
    if principal is None or principal.role is not Role.COURIER:
        raise NumbersError("courier.not_found", "无此快递员 / no such courier")
    parsed = parse_phone(phone, "phone")
    if parsed.kind != "mobile":
        raise FieldError("phone", "a courier's registered phone is a mobile number")
    index = app.vault.index_phone(parsed.e164)
    mask = mask_phone(parsed)
    store = store_for(app)
    for _ in range(3):
        sealed = app.vault.seal({COURIER_PHONE_FIELD: parsed.e164})
        with store.write() as conn:
            if not keys.kek_active(app, conn, sealed.kek_id):
                continue  # a rotation retired the key between sealing and storing: again
            _store_courier_phone(app, store, conn, actor, principal, index, sealed, mask, now)
            return {"username": principal.username, "phone_masked": mask}
    raise NumbersError("key.rotating", "密钥轮换中，请重试 / keys are rotating, try again")


def _store_courier_phone(
    app: App,
    store: TelephonyStore,
    conn: Connection,
    actor: Actor,
    principal: Principal,
    index: bytes,
    sealed: SealedFields,
    mask: str,
    now: datetime | None,
) -> None:
    try:
        store.set_courier_phone(
            conn,
            principal.id,
            index,
            SealedPhone(
                sealed.uid,
                sealed.kek_id,
                sealed.wrapped_dek,
                sealed.ciphertexts[COURIER_PHONE_FIELD],
            ),
            mask,
            _now(now),
            actor.name,
        )
    except AlreadyRegistered:
        raise NumbersError(
            "courier.phone_taken",
            "该号码已登记给其他快递员 / the phone is registered for another courier",
        ) from None
    emit_in(
        app,
        conn,
        actor,
        "courier.phone",
        subject_refs=[index.hex()],
        detail={"op": "set", "subject": principal.username},
    )


def courier_phone_mask(app: App, principal: Principal) -> str | None:
    store = store_for(app)
    with store.read() as conn:
        row = store.courier_phone(conn, principal.id)
    return row.mask if row else None


# -- the provider's callback credentials ---------------------------------------------------
def create_provider_token(app: App, actor: Actor, label: str = "carrier") -> str:
    """A bearer token for the carrier's routing callback (shown once; SHA-256 stored)."""
    _require(actor, MANAGE_ROLES, "签发话务回调令牌 / issue provider tokens")
    if not _LABEL.fullmatch(label):
        raise FieldError("label", "2-32 characters a-z 0-9 _ -, starting with a letter")
    token, digest = app.vault.new_session_token()
    store = store_for(app)
    with store.write() as conn:
        store.add_provider_token(conn, digest, label, _now(None), actor.name)
        emit_in(app, conn, actor, "telephony.token", detail={"op": "issue", "label": label})
    return token


def provider_actor(app: App, token: str | None) -> Actor | None:
    """The provider behind a callback token, or None if the token is not valid."""
    if not token or len(token) > 128:
        return None
    digest = app.vault.session_token_hash(token)
    store = store_for(app)
    with store.read() as conn:
        label = store.provider_token_label(conn, digest)
    if label is None:
        return None
    return Actor(name=f"provider:{label}", role="provider", client="telephony")


# -- call routing --------------------------------------------------------------------------
@dataclass
class RouteResult:
    decision: RouteDecision
    connect_to: str | None = field(default=None, repr=False)  # E.164, only when allowed
    target_masked: str | None = None
    tracking_number: str | None = None
    binding_id: int | None = None
    audit_event: int | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def as_json(self) -> dict[str, Any]:
        """For people (CLI): the decision and the target masked, never the number."""
        return {
            "decision": self.decision.effect.value,
            "rule": self.decision.rule,
            "message": self.decision.message,
            "target": self.decision.target.value if self.decision.target else None,
            "target_masked": self.target_masked,
            "binding": self.binding_id,
            "tracking_number": self.tracking_number,
            "audit_event": self.audit_event,
        }


def _facts(row: RouteRow | None, cfg: PoolSettings, courier_grace: timedelta) -> RouteFacts | None:
    if row is None or row.state is None:
        return None
    if row.state is not BindingState.ACTIVE or row.expires_at is None or row.status is None:
        return RouteFacts(
            state=row.state if row.state is not BindingState.ACTIVE else BindingState.EXPIRED,
            expires_at=datetime.min.replace(tzinfo=UTC),
            status=Status.CREATED,
            closed_at=None,
            out_ended_at=None,
            sender_index=None,
            recipient_index=None,
            courier_index=None,
        )
    status = Status(row.status)
    events = row.last_events
    closed_at = events[0][1] if status in TERMINAL and events else None
    out_ended_at = None
    if (
        status is not Status.OUT_FOR_DELIVERY
        and len(events) == 2
        and events[1][0] == Status.OUT_FOR_DELIVERY.value
    ):
        out_ended_at = events[0][1]
    return RouteFacts(
        state=row.state,
        expires_at=row.expires_at,
        status=status,
        closed_at=closed_at,
        out_ended_at=out_ended_at,
        sender_index=row.sender_index,
        recipient_index=row.recipient_index,
        courier_index=row.courier_index if row.courier_active else None,
        courier_grace=courier_grace,
        closed_grace=cfg.grace,
    )


def _caller_index(app: App, caller_number: str | None) -> bytes | None:
    if not caller_number:
        return None
    try:
        return app.vault.index_phone(parse_phone(caller_number, "caller").e164)
    except FieldError:
        return None


def _courier_grace(app: App) -> timedelta:
    return policy_admin.current(app).roles[Role.COURIER].grace


def route_call(
    app: App,
    virtual_number: str,
    extension: str,
    caller_number: str | None,
    now: datetime | None = None,
    *,
    actor: Actor | None = None,
    decrypt: bool = True,
) -> RouteResult:
    """Decide where a call to (virtual number, extension) from `caller_number` goes.

    The decision and its audit event ("call.route", allow or deny, the caller as a
    blind index) commit in one transaction; only then, and only when allowed, is the
    target's number decrypted under a grant citing that event. If the event cannot be
    written nothing is decrypted (the exception propagates). `decrypt=False` decides
    and audits without decrypting (the CLI's check, which shows masks only)."""
    now = _now(now)
    actor = actor or Actor.local_operator()
    try:
        line: tuple[str, str] | None = (
            parse_virtual_number(virtual_number),
            parse_extension(extension),
        )
    except FieldError:
        line = None
    caller_index = _caller_index(app, caller_number)
    courier_grace = _courier_grace(app)
    store = store_for(app)
    with store.hot_write() as conn:
        cfg, _ = _settings_in(store, conn)
        row = store.route_row(conn, *line) if line is not None else None
        decision = route(_facts(row, cfg, courier_grace), caller_index, now)
        tracking = row.tracking_number if row is not None else None
        target = decision.target
        detail: dict[str, str | int] = {
            "binding": row.binding_id or 0 if row is not None else 0,
            "target": target.value if target is not None else "",
        }
        if line is not None:
            detail["extension"] = line[1]
        event_id = emit_in(
            app,
            conn,
            actor,
            "call.route",
            waybills=[tracking] if tracking else [],
            fields=["recipient.phone"] if target is Target.RECIPIENT else [],
            subject_refs=[caller_index.hex()] if caller_index is not None else [],
            purpose="call",
            decision="allow" if decision.allowed else "deny",
            rule=decision.rule,
            detail=detail,
        )
    result = RouteResult(
        decision,
        tracking_number=tracking,
        binding_id=row.binding_id if row is not None else None,
        audit_event=event_id,
    )
    if not decision.allowed or row is None or tracking is None:
        return result
    if target is Target.RECIPIENT:
        sealed, field_name, result.target_masked = (
            row.recipient_phone,
            "recipient.phone",
            row.recipient_mask,
        )
    else:
        sealed, field_name, result.target_masked = (
            row.courier_phone,
            COURIER_PHONE_FIELD,
            row.courier_mask,
        )
    if decrypt:
        result.connect_to = _open_phone(app, tracking, sealed, field_name, event_id)
    return result


def _open_phone(
    app: App, tracking: str, sealed: SealedPhone | None, field_name: str, event_id: int
) -> str:
    """Decrypt one phone under a grant citing the committed "call.route" event."""
    if sealed is None or sealed.ciphertext is None:
        raise RouteFailed("no sealed number for this target")
    record = SealedRecord(
        tracking, sealed.uid, sealed.kek_id, sealed.wrapped_dek, {field_name: sealed.ciphertext}
    )
    grant = RevealGrant(tracking, frozenset({field_name}), str(event_id))
    try:
        value = app.vault.open_fields(record, grant)[field_name]
        return parse_phone(value, "phone").e164
    except Exception as exc:  # the vault's errors never carry plaintext
        raise RouteFailed(f"could not decrypt: {type(exc).__name__}") from None


# -- the simulated provider ----------------------------------------------------------------
def run_simulator(host: str, port: int, route_url: str, token: str) -> None:
    """Run the local simulated carrier (blocks until interrupted)."""
    from waybillguard.adapters.telephony.simulator import serve

    serve(host, port, route_url, token)


# -- benchmark -----------------------------------------------------------------------------
Log = Callable[[str], None]


def _bench_facts(count: int, rng: random.Random, now: datetime) -> list[tuple[RouteFacts, bytes]]:
    """A realistic mix of prepared facts and callers: couriers, senders, recipients
    calling back, strangers, expired and released lines."""
    prepared: list[tuple[RouteFacts, bytes]] = []
    for _ in range(count):
        courier, sender, recipient, stranger = (rng.randbytes(16) for _ in range(4))
        kind = rng.random()
        state = BindingState.ACTIVE
        expires = now + timedelta(days=10)
        status = Status.OUT_FOR_DELIVERY if rng.random() < 0.7 else Status.IN_TRANSIT
        if kind < 0.05:
            state = BindingState.RELEASED
        elif kind < 0.10:
            expires = now - timedelta(days=1)
        facts = RouteFacts(
            state=state,
            expires_at=expires,
            status=status,
            closed_at=None,
            out_ended_at=None,
            sender_index=sender,
            recipient_index=recipient,
            courier_index=courier,
        )
        caller = rng.choice((courier, courier, sender, recipient, stranger))
        prepared.append((facts, caller))
    return prepared


def bench_decisions(count: int, now: datetime | None = None) -> dict[str, Any]:
    now = _now(now)
    rng = random.Random(20260101)  # a benchmark's mix, not a secret
    prepared = _bench_facts(min(count, 100_000), rng, now)
    repeat = max(1, count // len(prepared))
    decide = route
    allowed = 0
    started = time.perf_counter()
    for _ in range(repeat):
        for facts, caller in prepared:
            if decide(facts, caller, now).allowed:
                allowed += 1
    elapsed = time.perf_counter() - started
    total = repeat * len(prepared)
    return {
        "route_decisions": total,
        "route_decisions_per_s": round(total / elapsed),
        "route_allowed_share": round(allowed / total, 3),
    }


def bench_routes(
    count: int = 1_000_000, log: Log = print, service_calls: int = 2000
) -> dict[str, Any]:
    """`route_decisions_per_s`: the pure domain decision over prepared facts (target
    >= 100,000/s); `service_routes_per_s` and its p50/p99: the full service path
    (read the line, decide, audit, decrypt) on a throwaway SQLite home."""
    log(f"timing {count:,} routing decisions…")
    result = bench_decisions(count)
    if service_calls > 0:
        log(f"timing {service_calls:,} routed calls through the service…")
        result.update(_bench_service(service_calls))
    return result


def _bench_service(calls: int) -> dict[str, Any]:
    from waybillguard.config import DATABASE_FILE, Settings
    from waybillguard.services import deliveries, waybills
    from waybillguard.services.app import initialise, open_app
    from waybillguard.services.importer import import_file
    from waybillguard.services.synth import write_synth

    with tempfile.TemporaryDirectory(prefix="wg-bench-routes-") as tmp:
        home = Path(tmp) / "home"
        cfg = Settings(home, f"sqlite:///{home / DATABASE_FILE}", "WG")
        initialise(cfg)
        with open_app(cfg) as app:
            data = Path(tmp) / "rows.jsonl"
            write_synth(data, 50, seed=7)
            import_file(app, data, workers=1)
            operator = Actor.local_operator()
            views = waybills.list_waybills(app, 50)
            adcode = views[0]["destination_adcode"]
            identities.add_unit(app, operator, "HQ", "hq", "总部")
            identities.add_unit(
                app, operator, "BENCH", "station", "基准网点", parent="HQ", covers=[adcode]
            )
            courier, _ = identities.add_user(
                app,
                operator,
                "benchcourier",
                Role.COURIER,
                "BENCH",
                password="bench password 1",  # noqa: S106 - throwaway home
                device_id="bench-device",
            )
            courier_phone = "+8619900001111"
            register_courier_phone(app, operator, "benchcourier", courier_phone)
            add_numbers(app, operator, ["17000000001"], 100)
            number = views[0]["tracking_number"]
            deliveries.assign(app, operator, None, number, courier)
            for status in ("picked_up", "in_transit", "out_for_delivery"):
                waybills.record_event(app, number, status)
            binding = allocate(app, number)
            provider = Actor(name="provider:bench", role="provider", client="telephony")
            samples: list[float] = []
            started = time.perf_counter()
            for i in range(calls):
                caller = courier_phone if i % 2 == 0 else "+8613900000000"
                t0 = time.perf_counter()
                route_call(app, binding.virtual_number, binding.extension, caller, actor=provider)
                samples.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - started
    samples.sort()
    return {
        "service_routes": calls,
        "service_routes_per_s": round(calls / elapsed),
        "service_p50_ms": round(samples[len(samples) // 2] * 1000, 3),
        "service_p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3),
    }
