"""Organisation and identities: units, staff users, partner clients.

Only an administrator (a logged-in principal of role `admin`) or the local operating-
system operator (who already holds the keyring file, and so bootstraps the first
administrator) may manage them. An administrator manages only the units beneath their
own unit: a region's administrator cannot create users at another region's stations.

Every change is written to the audit log (`unit.change`, `user.change`,
`client.change`) with the acting `Actor`, inside the transaction that makes the change:
the change and its event commit together, or neither does (if the event cannot be
written, nothing changes). Events name the subject account, never a password, secret
or TOTP seed. Errors are `FieldError`s naming the field and the
reason, never the rejected value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection

from waybillguard.adapters.db.identity_store import AlreadyExists, IdentityStore, StoredPrincipal
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_FIELDS
from waybillguard.domain.identity import (
    DEFAULT_GRADES,
    Principal,
    PrincipalKind,
    PrincipalState,
    Role,
    Unit,
    UnitKind,
    check_parent,
    parse_grade,
    parse_role,
    parse_unit_code,
    parse_unit_kind,
    parse_username,
    requires_totp,
)
from waybillguard.domain.parcel import parse_merchant
from waybillguard.services import activity
from waybillguard.services.activity import Actor
from waybillguard.services.app import App

MIN_PASSWORD_CHARS: Final = 12
# Long enough for any passphrase, short enough that nobody hashes a megabyte.
MAX_PASSWORD_CHARS: Final = 1024
MAX_UNIT_NAME: Final = 128
MAX_REASON: Final = 128
MAX_DEVICE_ID: Final = 64
# Roles that may manage units, users and clients. "operator" is the local OS account
# without a session (`Actor.local_operator()`).
MANAGER_ROLES: Final = frozenset({Role.ADMIN.value, "operator"})
# Unicode categories refused in a new password: controls, format characters (zero-width
# joiners, direction marks), surrogates, unassigned code points, line/paragraph separators.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Cn", "Co", "Zl", "Zp"})


class NotAllowed(PermissionError):
    """The actor may not manage this unit, user or client."""


@dataclass(frozen=True, slots=True)
class UnitSummary:
    unit: Unit
    covers: tuple[str, ...]
    members: int  # active principals in this unit (not below it)


def store_for(app: App) -> IdentityStore:
    """The identity store of this app (one per app, like the audit store)."""
    store = app.__dict__.get("_identity_store")
    if store is None:
        store = IdentityStore(app.engine)
        app.__dict__["_identity_store"] = store
    return store


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


# -- input checks -------------------------------------------------------------------------
def check_password_length(password: str, field: str = "password") -> None:
    if len(password) > MAX_PASSWORD_CHARS:
        raise FieldError(field, f"is longer than {MAX_PASSWORD_CHARS} characters")


def check_new_password(password: str, username: str) -> None:
    """Rules for a password being set (not for one being tried at login)."""
    check_password_length(password)
    text = unicodedata.normalize("NFC", password)
    if len(text) < MIN_PASSWORD_CHARS:
        raise FieldError("password", f"must be at least {MIN_PASSWORD_CHARS} characters")
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text):
        raise FieldError("password", "contains control, invisible or unassigned characters")
    if text.strip().casefold() == username.casefold():
        raise FieldError("password", "must not be the username")


def parse_device_id(text: str, field: str = "device") -> str:
    value = text.strip()
    if not 1 <= len(value) <= MAX_DEVICE_ID:
        raise FieldError(field, f"a device id is 1-{MAX_DEVICE_ID} characters")
    if not value.isascii() or not all(ch.isalnum() or ch in "._:-" for ch in value):
        raise FieldError(field, "a device id is ASCII letters, digits, '.', '_', ':' or '-'")
    return value


def parse_contract_fields(items: Iterable[str], field: str = "fields") -> frozenset[str]:
    chosen: set[str] = set()
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name not in PII_FIELDS:
            raise FieldError(field, f"unknown field; choose from {', '.join(PII_FIELDS)}")
        chosen.add(name)
    return frozenset(chosen)


def parse_adcodes(items: Iterable[str], field: str = "covers") -> tuple[str, ...]:
    """District codes a station covers: 6-digit county-level codes known to the division
    table (a city or province code is refused: list its districts)."""
    table = load_divisions()
    found: list[str] = []
    for raw in items:
        code = raw.strip()
        if not code:
            continue
        if len(code) != 6 or not code.isascii() or not code.isdigit():
            raise FieldError(field, "district codes are 6 digits (GB/T 2260)")
        try:
            table.path(code)
        except KeyError:
            raise FieldError(field, f"{code} is not a known district code") from None
        except ValueError:
            raise FieldError(
                field, f"{code} is a province or city; list the districts it contains"
            ) from None
        if code not in found:
            found.append(code)
    return tuple(found)


def _unit_name(text: str) -> str:
    name = unicodedata.normalize("NFC", text).strip()
    if not name:
        raise FieldError("name", "is required")
    if len(name) > MAX_UNIT_NAME:
        raise FieldError("name", f"is longer than {MAX_UNIT_NAME} characters")
    if not name.isprintable():
        raise FieldError("name", "contains control or invisible characters")
    return name


def _reason(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > MAX_REASON or not value.isprintable():
        raise FieldError("reason", f"is 1-{MAX_REASON} printable characters")
    return value


# -- who may manage ------------------------------------------------------------------------
def _require_role(actor: Actor) -> None:
    if actor.role not in MANAGER_ROLES:
        raise NotAllowed("只有管理员可以管理单位、用户和客户端 / only administrators may do this")


def _require_manager(
    store: IdentityStore, conn: Connection, actor: Actor, unit_code: str | None
) -> None:
    """Raise NotAllowed unless `actor` may manage things in `unit_code` (None: the
    organisation as a whole, e.g. a new headquarters)."""
    _require_role(actor)
    if actor.role == "operator":
        return
    stored = store.principal(conn, username=actor.name)
    if stored is None or not stored.principal.active or stored.unit_disabled:
        raise NotAllowed("管理员账户不可用 / the administrator account is not active")
    admin = stored.principal
    if admin.role is not Role.ADMIN:
        raise NotAllowed("只有管理员可以管理单位、用户和客户端 / only administrators may do this")
    if unit_code is None:
        if admin.unit_path:  # only a headquarters administrator speaks for everything
            raise NotAllowed("超出管理范围 / outside your administrative scope")
        return
    chain = [u.code for u in store.unit_chain(conn, unit_code)]
    if admin.unit not in chain:
        raise NotAllowed("超出管理范围 / outside your administrative scope")


def _existing_unit(store: IdentityStore, conn: Connection, code: str, field: str) -> Unit:
    unit = store.unit(conn, code)
    if unit is None:
        raise FieldError(field, "no such unit")
    if unit.disabled:
        raise FieldError(field, "unit is disabled")
    return unit


def _existing(
    store: IdentityStore,
    conn: Connection,
    username: str,
    kind: PrincipalKind,
    field: str = "username",
) -> StoredPrincipal:
    name = parse_username(username, field)
    stored = store.principal(conn, username=name)
    if stored is None or stored.principal.kind is not kind:
        raise FieldError(field, "no such user" if kind is PrincipalKind.USER else "no such client")
    return stored


# -- units ---------------------------------------------------------------------------------
def add_unit(
    app: App,
    actor: Actor,
    code: str,
    kind: UnitKind | str,
    name: str,
    *,
    parent: str | None = None,
    covers: Iterable[str] = (),
    franchise: bool = False,
    now: datetime | None = None,
) -> Unit:
    """Create a unit; a station may cover district codes (waybills destined to them,
    including ones imported earlier, become the station's)."""
    _require_role(actor)
    at = _now(now)
    unit_code = parse_unit_code(code, "code")
    unit_kind = kind if isinstance(kind, UnitKind) else parse_unit_kind(kind)
    unit_name = _unit_name(name)
    parent_code = parse_unit_code(parent, "parent") if parent else None
    adcodes = parse_adcodes(covers)
    if adcodes and unit_kind is not UnitKind.STATION:
        raise FieldError("covers", "only a station covers districts")
    if franchise and unit_kind is not UnitKind.STATION:
        raise FieldError("franchise", "only a station can be a franchise")
    store = store_for(app)
    with store.write() as conn:
        parent_unit = _existing_unit(store, conn, parent_code, "parent") if parent_code else None
        _require_manager(store, conn, actor, parent_code)
        check_parent(unit_kind, parent_unit)
        if store.unit(conn, unit_code) is not None:
            raise FieldError("code", "a unit with this code already exists")
        if unit_kind is UnitKind.HQ and any(u.kind is UnitKind.HQ for u in store.units(conn)):
            raise FieldError("kind", "there is already a headquarters unit")
        taken = store.covering_stations(conn, adcodes)
        if taken:
            first = sorted(taken)[0]
            raise FieldError("covers", f"{first} is already covered by station {taken[first]}")
        unit = Unit(unit_code, unit_kind, unit_name, parent_code, franchise)
        try:
            store.insert_unit(conn, unit, at)
        except AlreadyExists:
            raise FieldError("code", "a unit with this code already exists") from None
        if adcodes:
            app.store.set_coverage(conn, unit_code, adcodes)
        activity.emit_in(
            app,
            conn,
            actor,
            "unit.change",
            detail={
                "op": "add",
                "code": unit_code,
                "kind": unit_kind.value,
                "parent": parent_code or "",
                "covers": len(adcodes),
                "franchise": int(franchise),
            },
        )
    return unit


def list_units(app: App) -> list[UnitSummary]:
    store = store_for(app)
    with store.read() as conn:
        found = store.units(conn)
        coverage = store.coverage(conn)
        members = store.member_counts(conn)
    return [UnitSummary(u, tuple(coverage.get(u.code, ())), members.get(u.code, 0)) for u in found]


def disable_unit(app: App, actor: Actor, code: str, *, now: datetime | None = None) -> Unit:
    """Disable a unit: nobody in it or beneath it can log in or use a session any more.
    Its district coverage stays, so waybills keep routing to it until reassigned."""
    _require_role(actor)
    _now(now)
    unit_code = parse_unit_code(code, "code")
    store = store_for(app)
    with store.write() as conn:
        unit = store.unit(conn, unit_code)
        if unit is None:
            raise FieldError("code", "no such unit")
        _require_manager(store, conn, actor, unit.code)
        if unit.code == _actor_unit(store, conn, actor):
            raise FieldError("code", "you cannot disable your own unit")
        store.set_unit_disabled(conn, unit_code, True)
        activity.emit_in(
            app, conn, actor, "unit.change", detail={"op": "disable", "code": unit_code}
        )
    return replace(unit, disabled=True)


def _actor_unit(store: IdentityStore, conn: Connection, actor: Actor) -> str | None:
    if actor.role == "operator":
        return None
    stored = store.principal(conn, username=actor.name)
    return stored.principal.unit if stored else None


# -- staff users ---------------------------------------------------------------------------
def add_user(
    app: App,
    actor: Actor,
    username: str,
    role: Role | str,
    unit: str,
    *,
    password: str,
    grade: int | None = None,
    device_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Principal, str | None]:
    """Create a staff user. Returns the principal and, for roles that need a second
    factor, the base32 TOTP secret to enrol in an authenticator (shown once, never
    stored in the clear); None for couriers, who are bound to a device instead."""
    _require_role(actor)
    at = _now(now)
    name = parse_username(username)
    user_role = role if isinstance(role, Role) else parse_role(role)
    if user_role is Role.PARTNER:
        raise FieldError("role", "partner clients are added with `clients add`")
    unit_code = parse_unit_code(unit, "unit")
    user_grade = parse_grade(grade) if grade is not None else DEFAULT_GRADES[user_role]
    device = parse_device_id(device_id) if device_id else None
    if device and user_role is not Role.COURIER:
        raise FieldError("device", "only couriers are bound to a device")
    check_new_password(password, name)
    password_hash = app.vault.hash_password(password)  # slow on purpose: outside the lock
    store = store_for(app)
    totp_secret: str | None = None
    with store.write() as conn:
        home = _existing_unit(store, conn, unit_code, "unit")
        _require_manager(store, conn, actor, unit_code)
        if user_role is Role.COURIER and home.kind is not UnitKind.STATION:
            raise FieldError("unit", "a courier must belong to a station")
        try:
            principal_id = store.insert_principal(
                conn,
                username=name,
                kind=PrincipalKind.USER,
                role=user_role,
                unit=unit_code,
                grade=user_grade,
                now=at,
                device_id=device,
            )
        except AlreadyExists:
            raise FieldError("username", "already exists") from None
        sealed: bytes | None = None
        if requires_totp(user_role):
            totp_secret, sealed = app.vault.enrol_totp(principal_id)
        store.insert_credentials(
            conn, principal_id, at, password_hash=password_hash, totp_sealed=sealed
        )
        stored = store.principal(conn, principal_id=principal_id)
        activity.emit_in(
            app,
            conn,
            actor,
            "user.change",
            detail={
                "op": "add",
                "subject": name,
                "role": user_role.value,
                "unit": unit_code,
                "grade": user_grade,
                "totp": int(totp_secret is not None),
                "device": int(device is not None),
            },
        )
    assert stored is not None
    return stored.principal, totp_secret


def list_users(
    app: App, *, unit: str | None = None, role: Role | str | None = None
) -> list[Principal]:
    unit_code = parse_unit_code(unit, "unit") if unit else None
    user_role = (role if isinstance(role, Role) else parse_role(role)) if role else None
    store = store_for(app)
    with store.read() as conn:
        found = store.principals(conn, unit=unit_code, role=user_role, kind=PrincipalKind.USER)
    return [s.principal for s in found]


def _change_state(
    app: App,
    actor: Actor,
    username: str,
    kind: PrincipalKind,
    state: PrincipalState,
    reason: str | None,
    now: datetime | None,
) -> Principal:
    _require_role(actor)
    at = _now(now)
    why = _reason(reason)
    field = "username" if kind is PrincipalKind.USER else "client_id"
    store = store_for(app)
    with store.write() as conn:
        stored = _existing(store, conn, username, kind, field)
        principal = stored.principal
        _require_manager(store, conn, actor, principal.unit)
        if principal.state is PrincipalState.LOCKED:
            # Only the two-person review may lift or replace a ceiling lock.
            raise FieldError(field, "account is locked pending review; the review decides")
        if principal.username == actor.name and state is not PrincipalState.ACTIVE:
            raise FieldError(field, "you cannot disable your own account")
        store.update_principal(
            conn,
            principal.id,
            at,
            state=state.value,
            state_reason=why if state is not PrincipalState.ACTIVE else None,
        )
        if state is not PrincipalState.ACTIVE:
            store.revoke_sessions_of(conn, principal.id, at)
        if state is PrincipalState.ACTIVE:
            # A fresh start: failures piled up while disabled do not carry over.
            store.update_credentials(conn, principal.id, failed_attempts=0, locked_until=None)
        op = "enable" if state is PrincipalState.ACTIVE else "disable"
        action = "user.change" if kind is PrincipalKind.USER else "client.change"
        activity.emit_in(app, conn, actor, action, detail={"op": op, "subject": principal.username})
    return replace(principal, state=state)


def disable_user(
    app: App,
    actor: Actor,
    username: str,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> Principal:
    """Disable a user and end their sessions. `reason` is kept with the account (not in
    the audit log, which takes no free text about people)."""
    return _change_state(
        app, actor, username, PrincipalKind.USER, PrincipalState.DISABLED, reason, now
    )


def enable_user(app: App, actor: Actor, username: str, *, now: datetime | None = None) -> Principal:
    """Re-enable a disabled user. A user locked at a reveal ceiling stays locked: only
    the review can unlock them."""
    return _change_state(app, actor, username, PrincipalKind.USER, PrincipalState.ACTIVE, None, now)


def set_grade(
    app: App, actor: Actor, username: str, grade: int, *, now: datetime | None = None
) -> Principal:
    _require_role(actor)
    at = _now(now)
    new_grade = parse_grade(grade)
    store = store_for(app)
    with store.write() as conn:
        stored = _existing(store, conn, username, PrincipalKind.USER)
        principal = stored.principal
        _require_manager(store, conn, actor, principal.unit)
        store.update_principal(conn, principal.id, at, grade=new_grade)
        activity.emit_in(
            app,
            conn,
            actor,
            "user.change",
            detail={
                "op": "set_grade",
                "subject": principal.username,
                "from": principal.grade,
                "to": new_grade,
            },
        )
    return replace(principal, grade=new_grade)


def reset_password(
    app: App,
    actor: Actor,
    username: str,
    password: str,
    *,
    reset_totp: bool = False,
    now: datetime | None = None,
) -> str | None:
    """Set a new password (ends the user's sessions and any temporary lockout). With
    `reset_totp`, also enrol a new TOTP secret and return it (shown once)."""
    _require_role(actor)
    at = _now(now)
    name = parse_username(username)
    check_new_password(password, name)
    password_hash = app.vault.hash_password(password)
    store = store_for(app)
    totp_secret: str | None = None
    with store.write() as conn:
        stored = _existing(store, conn, name, PrincipalKind.USER)
        principal = stored.principal
        _require_manager(store, conn, actor, principal.unit)
        values: dict[str, object] = {
            "password_hash": password_hash,
            "failed_attempts": 0,
            "locked_until": None,
            "changed_at": at,
        }
        if reset_totp:
            if not requires_totp(principal.role):
                raise FieldError("totp", "this role has no TOTP second factor")
            totp_secret, sealed = app.vault.enrol_totp(principal.id)
            values.update(totp_sealed=sealed, totp_last_step=None)
        if not store.update_credentials(conn, principal.id, **values):
            raise FieldError("username", "account has no credentials record")
        store.revoke_sessions_of(conn, principal.id, at)
        activity.emit_in(
            app,
            conn,
            actor,
            "user.change",
            detail={
                "op": "reset_password",
                "subject": principal.username,
                "totp": int(totp_secret is not None),
            },
        )
    return totp_secret


def bind_device(
    app: App, actor: Actor, username: str, device_id: str, *, now: datetime | None = None
) -> Principal:
    """Register the device a courier's sessions must come from (replacing any previous
    one; sessions from the old device end)."""
    _require_role(actor)
    at = _now(now)
    device = parse_device_id(device_id)
    store = store_for(app)
    with store.write() as conn:
        stored = _existing(store, conn, username, PrincipalKind.USER)
        principal = stored.principal
        _require_manager(store, conn, actor, principal.unit)
        if principal.role is not Role.COURIER:
            raise FieldError("device", "only couriers are bound to a device")
        store.update_principal(conn, principal.id, at, device_id=device)
        store.revoke_sessions_of(conn, principal.id, at)
        activity.emit_in(
            app,
            conn,
            actor,
            "user.change",
            detail={
                "op": "bind_device",
                "subject": principal.username,
                "replaced": int(principal.device_id is not None),
            },
        )
    return replace(principal, device_id=device)


# -- partner clients -----------------------------------------------------------------------
def add_client(
    app: App,
    actor: Actor,
    name: str,
    unit: str,
    merchant: str,
    fields: Iterable[str],
    *,
    grade: int | None = None,
    now: datetime | None = None,
) -> tuple[Principal, str]:
    """Register a partner client (merchant or platform). Its client id is `name`; the
    returned client secret is shown once and stored only as an argon2id hash."""
    _require_role(actor)
    at = _now(now)
    client_id = parse_username(name, "name")
    merchant_code = parse_merchant(merchant)
    contract = parse_contract_fields(fields)
    unit_code = parse_unit_code(unit, "unit")
    client_grade = parse_grade(grade) if grade is not None else DEFAULT_GRADES[Role.PARTNER]
    secret, secret_hash = app.vault.new_client_secret()
    store = store_for(app)
    with store.write() as conn:
        _existing_unit(store, conn, unit_code, "unit")
        _require_manager(store, conn, actor, unit_code)
        try:
            principal_id = store.insert_principal(
                conn,
                username=client_id,
                kind=PrincipalKind.CLIENT,
                role=Role.PARTNER,
                unit=unit_code,
                grade=client_grade,
                now=at,
                merchant=merchant_code,
                contract_fields=contract,
            )
        except AlreadyExists:
            raise FieldError("name", "already exists") from None
        store.insert_credentials(conn, principal_id, at, client_secret_hash=secret_hash)
        stored = store.principal(conn, principal_id=principal_id)
        activity.emit_in(
            app,
            conn,
            actor,
            "client.change",
            detail={
                "op": "add",
                "subject": client_id,
                "unit": unit_code,
                "grade": client_grade,
                "fields": ",".join(sorted(contract)),
            },
        )
    assert stored is not None
    return stored.principal, secret


def list_clients(app: App, *, unit: str | None = None) -> list[Principal]:
    unit_code = parse_unit_code(unit, "unit") if unit else None
    store = store_for(app)
    with store.read() as conn:
        found = store.principals(conn, unit=unit_code, kind=PrincipalKind.CLIENT)
    return [s.principal for s in found]


def disable_client(
    app: App,
    actor: Actor,
    client_id: str,
    *,
    reason: str | None = None,
    now: datetime | None = None,
) -> Principal:
    return _change_state(
        app, actor, client_id, PrincipalKind.CLIENT, PrincipalState.DISABLED, reason, now
    )


# -- lookups -------------------------------------------------------------------------------
def get_principal(app: App, username: str) -> Principal | None:
    """A user or client by name, with `unit_path` filled (ancestors nearest first);
    None if there is none (or the name cannot be one)."""
    try:
        name = parse_username(username)
    except FieldError:
        return None
    store = store_for(app)
    with store.read() as conn:
        stored = store.principal(conn, username=name)
    return stored.principal if stored else None


def get_principal_by_id(app: App, principal_id: int) -> Principal | None:
    store = store_for(app)
    with store.read() as conn:
        stored = store.principal(conn, principal_id=principal_id)
    return stored.principal if stored else None
