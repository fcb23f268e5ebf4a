"""Authentication: logins, sessions, step-up.

* **Staff** log in with username + password (argon2id); every role above courier also
  needs a TOTP code (RFC 6238), and a courier must log in from the device registered for
  them. **Partner clients** log in with client id + client secret (`client_login`) and
  get a token scoped to their contract; neither path accepts the other's credentials.
* **Lockout with back-off.** From the 5th consecutive failure the account is locked for
  1 minute, doubling with each further failure up to 1 hour; a success resets the
  counter. During a lockout nothing is checked at all, so a guess made then reveals
  nothing about the password. Otherwise the credentials are checked without holding any
  lock (argon2 is slow on purpose), and then the outcome commits in one transaction
  that holds the account's credentials row: a failure increments the counter, a success
  resets it and opens the session, together with the attempt's audit event. If
  concurrent attempts locked the account while this one was being checked, its outcome
  is withheld: it is refused as locked out and not charged, whatever the password was.
  So parallel guesses cannot overtake the counter (of 12 simultaneous wrong guesses
  exactly 5 get an answer), and no counter change or session exists without its audit
  event: if the event cannot be written, nothing changes.
* **Sessions.** Tokens are `wg_…` (256 random bits), stored as SHA-256. Staff sessions
  end after 15 minutes without use or 8 hours after login, whichever comes first;
  client tokens live 1 hour. `authenticate` slides the idle window.
* **Audit.** Every login outcome is an audit event (`login`, decision allow/deny, rule
  `auth.…`), every logout and step-up too; those that change state (a failure counted,
  a session opened or ended, `mfa_at` recorded) commit in the same transaction as the
  change. Events never carry a password, secret, TOTP code or device id; an unknown
  username is recorded as `anonymous`, because what was typed there is sometimes a
  password.

`AuthError.code` is stable for programs: bad_credentials, locked_out, totp_required,
bad_totp, device_required, device_unregistered, device_mismatch, account_disabled,
account_locked, session_invalid, session_expired, session_revoked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Connection

from waybillguard.adapters.db.identity_store import CredentialRow, IdentityStore, StoredPrincipal
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import (
    Principal,
    PrincipalKind,
    PrincipalState,
    Role,
    parse_username,
    requires_totp,
)
from waybillguard.services import activity
from waybillguard.services.activity import Actor
from waybillguard.services.app import App
from waybillguard.services.identities import (
    check_password_length,
    parse_device_id,
    store_for,
)
from waybillguard.vault import CLIENT_SECRET_PREFIX, SESSION_TOKEN_PREFIX, CredentialError

IDLE_TIMEOUT: Final = timedelta(minutes=15)
ABSOLUTE_TIMEOUT: Final = timedelta(hours=8)
CLIENT_TOKEN_LIFETIME: Final = timedelta(hours=1)
LOCKOUT_THRESHOLD: Final = 5
LOCKOUT_BASE: Final = timedelta(minutes=1)
LOCKOUT_MAX: Final = timedelta(hours=1)
# last_seen_at is rewritten at most this often per session: a write per request would
# serialise every authenticated call on SQLite's write lock for nothing.
TOUCH_GRANULARITY: Final = timedelta(seconds=10)
MAX_TOKEN_CHARS: Final = 128
CLIENT_SCOPE_READ: Final = "waybills:read"

_TOTP_SHAPE = re.compile(r"[0-9]{6}")
# Any run of 7+ digits (optionally split by single spaces or hyphens) in a client label
# is cut out: the audit log refuses what could be a phone or identity number.
_DIGITS = re.compile(r"\d(?:[ \-]?\d){6,}")


class AuthError(Exception):
    """Authentication failed; `code` is stable, `message` is for people (Chinese first)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_MESSAGES: Final[dict[str, str]] = {
    "bad_credentials": "用户名或密码错误 / wrong username or password",
    "bad_client_credentials": "客户端编号或密钥错误 / wrong client id or secret",
    "locked_out": "登录失败次数过多，账户暂时锁定 / too many failed attempts; account locked",
    "totp_required": "此账户需要动态口令 / this account needs a TOTP code (--totp)",
    "totp_not_enrolled": (
        "此账户未登记动态口令，请联系管理员重置 / no TOTP enrolled; ask an administrator "
        "to reset it (users reset-password --reset-totp)"
    ),
    "bad_totp": "动态口令错误或已使用 / the TOTP code is wrong or was already used",
    "device_required": "快递员须在登记的设备上登录 / couriers must give their device id (--device)",
    "device_unregistered": (
        "此快递员未登记设备，请联系管理员 / no device is registered for this courier; "
        "ask an administrator (users bind-device)"
    ),
    "device_mismatch": "设备与登记的不符 / this is not the registered device",
    "account_disabled": "账户已停用 / the account is disabled",
    "account_locked": "账户已锁定，待复核 / the account is locked pending review",
    "session_invalid": "会话无效，请重新登录 / invalid session; log in again",
    "session_expired": "会话已过期，请重新登录 / session expired; log in again",
    "session_revoked": "会话已注销，请重新登录 / session was ended; log in again",
}


def _error(code: str, extra: str = "") -> AuthError:
    public = "bad_credentials" if code == "bad_client_credentials" else code
    return AuthError(public, _MESSAGES[code] + extra)


@dataclass(frozen=True, slots=True)
class Session:
    """A new session. The token is handed out once; only its hash is stored."""

    token: str = field(repr=False)
    expires_at: datetime
    principal: Principal
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AuthContext:
    """Who a session token belongs to, as of this request."""

    principal: Principal
    session_id_hash_hex_prefix: str  # first 12 hex digits of SHA-256(token): for logs
    mfa_at: datetime | None
    device_id: str | None
    expires_at: datetime  # the earlier of the absolute and the idle deadline
    scopes: frozenset[str] = frozenset()
    token_hash: bytes = field(default=b"", repr=False, compare=False)


# -- helpers -------------------------------------------------------------------------------
def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def client_label(address: str) -> str:
    """What the audit log and the session row keep of the caller's address or device."""
    text = "".join(ch for ch in address.strip() if ch.isprintable())[:64]
    return _DIGITS.sub("#", text)


def lockout_for(failures: int) -> timedelta | None:
    """How long an account stays locked after `failures` consecutive failures."""
    if failures < LOCKOUT_THRESHOLD:
        return None
    doublings = min(failures - LOCKOUT_THRESHOLD, 12)  # 2**12 min is far beyond the cap
    lock: timedelta = LOCKOUT_BASE * (2**doublings)
    return min(lock, LOCKOUT_MAX)


def _anonymous(client: str) -> Actor:
    return Actor(name="anonymous", role="anonymous", client=client)


def _deny(
    app: App,
    actor: Actor,
    rule: str,
    action: str = "login",
    **detail: str | int,
) -> None:
    """Audit a refusal that changes nothing (no such account, a lockout in force)."""
    activity.emit(app, actor, action, decision="deny", rule=rule, detail=detail)


def _is_locked(cred: CredentialRow, at: datetime) -> bool:
    return cred.locked_until is not None and cred.locked_until > at


def _read_credentials(store: IdentityStore, principal_id: int) -> CredentialRow | None:
    with store.read() as conn:
        return store.credentials(conn, principal_id)


def _locked_message(until: datetime, at: datetime) -> str:
    seconds = max(1, int((until - at).total_seconds() + 0.999))
    return f"（{seconds} 秒后再试 / try again in {seconds} s, after {until:%H:%M:%S} UTC）"


def _locked_detail(action: str, kind: str, until: datetime, at: datetime) -> dict[str, str | int]:
    """What the audit event of an attempt refused during a lockout holds."""
    if action == "step_up":
        return {}
    detail: dict[str, str | int] = {"locked_s": int((until - at).total_seconds())}
    if kind:
        detail["kind"] = kind
    return detail


def _charge_in(
    app: App,
    store: IdentityStore,
    conn: Connection,
    actor: Actor,
    cred: CredentialRow,
    at: datetime,
    code: str,
    rule: str,
    action: str = "login",
    kind: str = "",
) -> AuthError:
    """Inside the caller's write transaction, holding the credentials row `cred`: charge
    one failed attempt and append its audit event, so the counter and the event commit
    together. Returns the error to raise once committed.

    If concurrent attempts locked the account while this one was being checked, nothing
    is charged and the outcome is withheld: the attempt is refused as locked out,
    whatever its password or code was."""
    if _is_locked(cred, at):
        assert cred.locked_until is not None
        detail = _locked_detail(action, kind, cred.locked_until, at)
        activity.emit_in(
            app, conn, actor, action, decision="deny", rule="auth.locked_out", detail=detail
        )
        return _error("locked_out", _locked_message(cred.locked_until, at))
    failures = cred.failed_attempts + 1
    lock = lockout_for(failures)
    until = at + lock if lock is not None else None
    store.update_credentials(conn, cred.principal_id, failed_attempts=failures, locked_until=until)
    locked_s = int((until - at).total_seconds()) if until is not None and until > at else 0
    activity.emit_in(
        app,
        conn,
        actor,
        action,
        decision="deny",
        rule=rule,
        detail={"failures": failures, "locked_s": locked_s},
    )
    extra = ""
    if until is not None and locked_s > 0:
        extra = "；" + _MESSAGES["locked_out"] + _locked_message(until, at)
    return _error(code, extra)


def _fail_attempt(
    app: App,
    store: IdentityStore,
    actor: Actor,
    principal_id: int,
    at: datetime,
    code: str,
    rule: str,
    action: str = "login",
    kind: str = "",
) -> AuthError:
    """Charge a failed attempt and audit it in one transaction; the error to raise."""
    with store.write() as conn:
        cred = store.credentials(conn, principal_id, for_update=True)
        if cred is None:  # the credentials record vanished meanwhile: nothing to charge
            activity.emit_in(app, conn, actor, action, decision="deny", rule="auth.no_credentials")
            return _error(code)
        return _charge_in(app, store, conn, actor, cred, at, code, rule, action, kind)


def _state_rule(stored: StoredPrincipal) -> str | None:
    if stored.principal.state is PrincipalState.LOCKED:
        return "account_locked"
    if stored.principal.state is not PrincipalState.ACTIVE or stored.unit_disabled:
        return "account_disabled"
    return None


def _check_totp_shape(code: str | None, field_name: str = "totp") -> str | None:
    if code is None:
        return None
    text = code.strip()
    if not _TOTP_SHAPE.fullmatch(text):
        raise FieldError(field_name, "a TOTP code is 6 digits")
    return text


def _verify_totp(
    app: App, principal_id: int, cred: CredentialRow, code: str, at: datetime
) -> tuple[int | None, bool]:
    """(matched step or None, whether the code was a replay of an accepted one)."""
    if cred.totp_sealed is None:
        return None, False
    try:
        step = app.vault.verify_totp(principal_id, cred.totp_sealed, code, at, cred.totp_last_step)
        if step is not None:
            return step, False
        seen = app.vault.verify_totp(principal_id, cred.totp_sealed, code, at, None)
    except CredentialError:
        return None, False
    return None, seen is not None


def _open_session(
    app: App,
    store: IdentityStore,
    actor: Actor,
    stored: StoredPrincipal,
    at: datetime,
    *,
    step: int | None,
    new_hash: dict[str, str],
    expires_at: datetime,
    device_id: str | None,
    client: str,
    scopes: frozenset[str],
    method: str,
    kind: str = "",
) -> Session:
    """Reset the failure counter, record the TOTP step, open the session and append the
    `login` audit event — one transaction: no audit record, no session, and the token
    never leaves this function. If the TOTP step was taken by a concurrent login
    meanwhile, the attempt is charged as a failure instead; if concurrent attempts
    locked the account, it is refused as locked out."""
    pid = stored.principal.id
    token, token_hash = app.vault.new_session_token()
    failure: AuthError | None = None
    with store.write() as conn:
        cred = store.credentials(conn, pid, for_update=True)
        if cred is None:
            activity.emit_in(app, conn, actor, "login", decision="deny", rule="auth.no_credentials")
            failure = _error("bad_credentials")
        elif _is_locked(cred, at) or (
            step is not None and cred.totp_last_step is not None and step <= cred.totp_last_step
        ):
            failure = _charge_in(
                app, store, conn, actor, cred, at, "bad_totp", "auth.totp_replay", kind=kind
            )
        else:
            values: dict[str, object] = {"failed_attempts": 0, "locked_until": None, **new_hash}
            if step is not None:
                values["totp_last_step"] = step
            store.update_credentials(conn, pid, **values)
            store.insert_session(
                conn,
                token_hash,
                pid,
                created_at=at,
                expires_at=expires_at,
                mfa_at=at if step is not None else None,
                device_id=device_id,
                client_address=client or None,
                scopes=sorted(scopes),
            )
            activity.emit_in(
                app,
                conn,
                actor,
                "login",
                decision="allow",
                rule="auth.ok",
                detail={"method": method},
            )
    if failure is not None:
        raise failure
    return Session(token=token, expires_at=expires_at, principal=stored.principal, scopes=scopes)


# -- staff login ---------------------------------------------------------------------------
def login(
    app: App,
    username: str,
    password: str,
    totp: str | None = None,
    device_id: str | None = None,
    client_address: str = "",
    *,
    now: datetime | None = None,
    absolute: timedelta = ABSOLUTE_TIMEOUT,
) -> Session:
    """Log a staff user in; raises AuthError (or FieldError for malformed input)."""
    at = _now(now)
    client = client_label(client_address)
    name = parse_username(username)
    check_password_length(password)
    code = _check_totp_shape(totp)
    device = parse_device_id(device_id) if device_id else None
    store = store_for(app)
    with store.read() as conn:
        stored = store.principal(conn, username=name)
    if stored is None or stored.principal.kind is not PrincipalKind.USER:
        app.vault.verify_password(None, password)  # same cost as a real check
        rule = "auth.unknown_user" if stored is None else "auth.not_a_user"
        actor = (
            _anonymous(client) if stored is None else Actor.for_principal(stored.principal, client)
        )
        _deny(app, actor, rule)
        raise _error("bad_credentials")
    principal = stored.principal
    actor = Actor.for_principal(principal, client)
    cred = _read_credentials(store, principal.id)
    if cred is None:
        app.vault.verify_password(None, password)
        _deny(app, actor, "auth.no_credentials")
        raise _error("bad_credentials")
    if _is_locked(cred, at):
        assert cred.locked_until is not None
        _deny(
            app,
            actor,
            "auth.locked_out",
            locked_s=int((cred.locked_until - at).total_seconds()),
        )
        raise _error("locked_out", _locked_message(cred.locked_until, at))

    def fail(code: str, rule: str) -> AuthError:
        return _fail_attempt(app, store, actor, principal.id, at, code, rule)

    if not app.vault.verify_password(cred.password_hash, password):
        raise fail("bad_credentials", "auth.bad_password")
    state = _state_rule(stored)
    if state is not None:
        raise fail(state, f"auth.{state}")
    step: int | None = None
    if requires_totp(principal.role):
        if code is None:
            raise fail("totp_required", "auth.totp_required")
        if cred.totp_sealed is None:
            raise fail("totp_not_enrolled", "auth.totp_not_enrolled")
        step, replayed = _verify_totp(app, principal.id, cred, code, at)
        if step is None:
            raise fail("bad_totp", "auth.totp_replay" if replayed else "auth.bad_totp")
    if principal.role is Role.COURIER:
        if principal.device_id is None:
            raise fail("device_unregistered", "auth.device_unregistered")
        if device is None:
            raise fail("device_required", "auth.device_required")
        if device != principal.device_id:
            raise fail("device_mismatch", "auth.device_mismatch")
    new_hash: dict[str, str] = {}
    if cred.password_hash and app.vault.password_needs_rehash(cred.password_hash):
        new_hash["password_hash"] = app.vault.hash_password(password)
    method = "password+totp" if step is not None else "password"
    if principal.role is Role.COURIER:
        method = "password+device"
    return _open_session(
        app,
        store,
        actor,
        stored,
        at,
        step=step,
        new_hash=new_hash,
        expires_at=at + absolute,
        device_id=device if principal.role is Role.COURIER else None,
        client=client,
        scopes=frozenset(),
        method=method,
    )


# -- partner clients -----------------------------------------------------------------------
def client_scopes(principal: Principal) -> frozenset[str]:
    """What a partner token may do: read its merchant's masked waybills and reveal the
    fields its contract lists."""
    return frozenset({CLIENT_SCOPE_READ, *(f"reveal:{f}" for f in principal.contract_fields)})


def client_login(
    app: App,
    client_id: str,
    client_secret: str,
    client_address: str = "",
    *,
    now: datetime | None = None,
    lifetime: timedelta = CLIENT_TOKEN_LIFETIME,
) -> Session:
    """Log a partner client in with its client credentials; the token lives `lifetime`."""
    at = _now(now)
    client = client_label(client_address)
    name = parse_username(client_id, "client_id")
    check_password_length(client_secret, "client_secret")
    store = store_for(app)
    with store.read() as conn:
        stored = store.principal(conn, username=name)
    if stored is None or stored.principal.kind is not PrincipalKind.CLIENT:
        app.vault.verify_client_secret(None, client_secret)
        rule = "auth.unknown_client" if stored is None else "auth.not_a_client"
        actor = (
            _anonymous(client) if stored is None else Actor.for_principal(stored.principal, client)
        )
        _deny(app, actor, rule, kind="client")
        raise _error("bad_client_credentials")
    principal = stored.principal
    actor = Actor.for_principal(principal, client)
    cred = _read_credentials(store, principal.id)
    if cred is None:
        app.vault.verify_client_secret(None, client_secret)
        _deny(app, actor, "auth.no_credentials", kind="client")
        raise _error("bad_client_credentials")
    if _is_locked(cred, at):
        assert cred.locked_until is not None
        _deny(
            app,
            actor,
            "auth.locked_out",
            locked_s=int((cred.locked_until - at).total_seconds()),
            kind="client",
        )
        raise _error("locked_out", _locked_message(cred.locked_until, at))
    if not client_secret.startswith(CLIENT_SECRET_PREFIX) or not app.vault.verify_client_secret(
        cred.client_secret_hash, client_secret
    ):
        raise _fail_attempt(
            app,
            store,
            actor,
            principal.id,
            at,
            "bad_client_credentials",
            "auth.bad_client_secret",
            kind="client",
        )
    state = _state_rule(stored)
    if state is not None:
        raise _fail_attempt(
            app, store, actor, principal.id, at, state, f"auth.{state}", kind="client"
        )
    return _open_session(
        app,
        store,
        actor,
        stored,
        at,
        step=None,
        new_hash={},
        expires_at=at + lifetime,
        device_id=None,
        client=client,
        scopes=client_scopes(principal),
        method="client_secret",
        kind="client",
    )


# -- sessions ------------------------------------------------------------------------------
def _token_hash(app: App, token: str) -> bytes:
    if (
        not isinstance(token, str)
        or not token.startswith(SESSION_TOKEN_PREFIX)
        or len(token) > MAX_TOKEN_CHARS
    ):
        raise _error("session_invalid")
    return app.vault.session_token_hash(token)


def authenticate(
    app: App,
    token: str,
    *,
    now: datetime | None = None,
    idle: timedelta = IDLE_TIMEOUT,
) -> AuthContext:
    """The principal behind a session token, if the session is alive; slides its idle
    deadline. Raises AuthError (session_invalid / session_revoked / session_expired /
    account_disabled / account_locked)."""
    at = _now(now)
    token_hash = _token_hash(app, token)
    store = store_for(app)
    with store.read() as conn:
        row = store.session(conn, token_hash)
        stored = store.principal(conn, principal_id=row.principal_id) if row else None
    if row is None or stored is None:
        raise _error("session_invalid")
    if row.revoked_at is not None:
        raise _error("session_revoked")
    principal = stored.principal
    staff = principal.kind is PrincipalKind.USER
    deadline = row.expires_at
    if staff:
        if at - row.last_seen_at >= idle:
            raise _error("session_expired")
        deadline = min(deadline, at + idle)
    if at >= row.expires_at:
        raise _error("session_expired")
    state = _state_rule(stored)
    if state is not None:
        raise _error(state)
    if principal.role is Role.COURIER and row.device_id != principal.device_id:
        # The courier was bound to another device since this session began.
        raise _error("session_invalid")
    if staff and at - row.last_seen_at >= TOUCH_GRANULARITY:
        with store.write() as conn:
            store.touch_session(conn, token_hash, at)
    return AuthContext(
        principal=principal,
        session_id_hash_hex_prefix=token_hash[:6].hex(),
        mfa_at=row.mfa_at,
        device_id=row.device_id,
        expires_at=deadline,
        scopes=frozenset(row.scopes),
        token_hash=token_hash,
    )


def logout(app: App, token: str, *, now: datetime | None = None) -> bool:
    """End a session. True if a live session was ended (and audited)."""
    at = _now(now)
    try:
        token_hash = _token_hash(app, token)
    except AuthError:
        return False
    store = store_for(app)
    with store.write() as conn:
        row = store.session(conn, token_hash)
        if row is None or not store.revoke_session(conn, token_hash, at):
            return False
        stored = store.principal(conn, principal_id=row.principal_id)
        if stored is not None:
            actor = Actor.for_principal(stored.principal, row.client_address or "")
            activity.emit_in(app, conn, actor, "logout", rule="auth.logout")
    return True


def step_up(
    app: App,
    principal: Principal,
    totp_code: str,
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Prove a fresh TOTP code now (for a reveal beyond the grade's allowance). The code
    must not have been used before; on success the session of `token` (if given) records
    `mfa_at`. A wrong code counts toward the lockout like a wrong password."""
    at = _now(now)
    store = store_for(app)
    with store.read() as conn:
        stored = store.principal(conn, principal_id=principal.id)
    if stored is None or not requires_totp(stored.principal.role):
        return False
    current = stored.principal
    actor = Actor.for_principal(current, "")
    if _state_rule(stored) is not None:
        _deny(app, actor, f"auth.{_state_rule(stored)}", "step_up")
        return False
    token_hash = _token_hash(app, token) if token is not None else None
    code = totp_code.strip() if isinstance(totp_code, str) else ""
    cred = _read_credentials(store, current.id)
    if cred is None:
        return False
    if _is_locked(cred, at):
        _deny(app, actor, "auth.locked_out", "step_up")
        return False
    if not _TOTP_SHAPE.fullmatch(code):
        _fail_attempt(app, store, actor, current.id, at, "bad_totp", "auth.bad_totp", "step_up")
        return False
    step, replayed = _verify_totp(app, current.id, cred, code, at)
    if step is None:
        rule = "auth.totp_replay" if replayed else "auth.bad_totp"
        _fail_attempt(app, store, actor, current.id, at, "bad_totp", rule, "step_up")
        return False
    # Record the step, the session's mfa_at and the audit event in one transaction; a
    # code taken meanwhile by a concurrent login or step-up is charged as a replay.
    with store.write() as conn:
        latest = store.credentials(conn, current.id, for_update=True)
        if latest is None:
            return False
        fresh = latest.totp_last_step is None or step > latest.totp_last_step
        if _is_locked(latest, at) or not fresh:
            _charge_in(
                app, store, conn, actor, latest, at, "bad_totp", "auth.totp_replay", "step_up"
            )
            return False
        store.update_credentials(
            conn, current.id, totp_last_step=step, failed_attempts=0, locked_until=None
        )
        if token_hash is not None:
            row = store.session(conn, token_hash)
            if row is not None and row.principal_id == current.id:
                store.set_session_mfa(conn, token_hash, at)
        activity.emit_in(app, conn, actor, "step_up", decision="allow", rule="auth.ok")
    return True
