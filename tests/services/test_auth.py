"""Authentication: passwords, TOTP, device binding, lockout with back-off, sessions,
partner client credentials, step-up — with an injected clock, never sleeping."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from tests.conftest import storage_files
from tests.services.test_identities import audit_writes_fail, state_snapshot
from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import STAFF_ROLES, Role
from waybillguard.services import audit, auth, identities
from waybillguard.services.activity import Actor
from waybillguard.services.app import App
from waybillguard.vault import credentials

OP = Actor.local_operator()
PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at production cost takes ~0.2 s; the parameters are tested in
    tests/vault/test_credentials.py."""
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    yield


class People:
    def __init__(self, app: App) -> None:
        self.app = app
        self.secrets: dict[str, str] = {}
        self.client_secret = ""

    def code(self, username: str, at: datetime) -> str:
        return pyotp.TOTP(self.secrets[username]).at(at)

    def login(self, username: str, at: datetime, **kwargs: object) -> auth.Session:
        return auth.login(
            self.app,
            username,
            str(kwargs.pop("password", PASSWORD)),
            kwargs.pop("totp", self.code(username, at) if username in self.secrets else None),  # type: ignore[arg-type]
            kwargs.pop("device_id", None),  # type: ignore[arg-type]
            "10.0.0.7",
            now=at,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def people(app: App) -> People:
    identities.add_unit(app, OP, "HQ", "hq", "总部")
    identities.add_unit(app, OP, "GD", "region", "广东区域", parent="HQ")
    identities.add_unit(app, OP, "SZ-NS", "station", "南山网点", parent="GD", covers=["440305"])
    p = People(app)
    _, secret = identities.add_user(app, OP, "alice", "cs_agent", "SZ-NS", password=PASSWORD)
    assert secret is not None
    p.secrets["alice"] = secret
    identities.add_user(
        app, OP, "carl", "courier", "SZ-NS", password=PASSWORD, device_id="PDA-0001"
    )
    _, p.client_secret = identities.add_client(
        app, OP, "shop-alpha", "SZ-NS", "shop-0001", ["recipient.name", "recipient.address"]
    )
    return p


def _login_error(people: People, username: str, at: datetime, **kwargs: object) -> auth.AuthError:
    with pytest.raises(auth.AuthError) as caught:
        people.login(username, at, **kwargs)
    return caught.value


def _credentials(app: App, username: str):  # type: ignore[no-untyped-def]
    store = identities.store_for(app)
    principal = identities.get_principal(app, username)
    assert principal is not None
    with store.read() as conn:
        return store.credentials(conn, principal.id)


def _login_events(app: App) -> list[dict[str, object]]:
    return [e for e in audit.by_actor(app, None) if e["action"] in ("login", "step_up", "logout")]


# -- passwords and second factors ----------------------------------------------------------
def test_login_with_password_and_totp(people: People) -> None:
    session = people.login("alice", T0)
    assert session.token.startswith("wg_") and session.token not in repr(session)
    assert session.expires_at == T0 + auth.ABSOLUTE_TIMEOUT
    assert session.principal.username == "alice" and session.principal.unit_path == ("GD", "HQ")
    context = auth.authenticate(people.app, session.token, now=T0 + timedelta(minutes=1))
    assert context.principal == session.principal
    assert context.mfa_at == T0 and context.device_id is None
    assert len(context.session_id_hash_hex_prefix) == 12
    assert session.token not in repr(context)
    event = _login_events(people.app)[-1]
    assert (event["actor"], event["decision"], event["rule"]) == ("alice", "allow", "auth.ok")
    assert event["client"] == "10.0.0.7" and event["detail"] == {"method": "password+totp"}


def test_wrong_password_and_unknown_user_look_the_same(people: People) -> None:
    wrong = _login_error(people, "alice", T0, password="not the password!")
    unknown = _login_error(people, "nobody", T0, password=PASSWORD, totp="123456")
    assert wrong.code == unknown.code == "bad_credentials"
    assert str(wrong) == str(unknown) == "用户名或密码错误 / wrong username or password"
    events = _login_events(people.app)
    assert [(e["actor"], e["rule"]) for e in events] == [
        ("alice", "auth.bad_password"),
        ("anonymous", "auth.unknown_user"),
    ]
    assert "nobody" not in orjson.dumps(events).decode()  # it might have been a password
    assert events[0]["detail"] == {"failures": 1, "locked_s": 0}


@pytest.mark.parametrize("role", [r for r in STAFF_ROLES if r is not Role.COURIER])
def test_totp_required_above_courier(people: People, role: Role) -> None:
    name = f"x-{role.value.replace('_', '-')}"
    _, secret = identities.add_user(people.app, OP, name, role, "SZ-NS", password=PASSWORD)
    assert secret is not None
    people.secrets[name] = secret
    error = _login_error(people, name, T0, totp=None)
    assert error.code == "totp_required"
    assert people.login(name, T0).principal.role is role


def test_wrong_totp_and_replay_are_refused(people: People) -> None:
    assert _login_error(people, "alice", T0, totp="000000").code == "bad_totp"
    code = people.code("alice", T0)
    people.login("alice", T0, totp=code)
    replay = _login_error(people, "alice", T0 + timedelta(seconds=5), totp=code)
    assert replay.code == "bad_totp"
    # The previous step's code was still inside the window, but it is older than the last
    # accepted one.
    older = people.code("alice", T0 - timedelta(seconds=30))
    assert _login_error(people, "alice", T0, totp=older).code == "bad_totp"
    rules = [e["rule"] for e in _login_events(people.app)]
    assert rules == ["auth.bad_totp", "auth.ok", "auth.totp_replay", "auth.totp_replay"]
    later = T0 + timedelta(seconds=30)
    people.login("alice", later)


def test_concurrent_logins_with_one_code_open_one_session(people: People) -> None:
    code = people.code("alice", T0)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            people.login("alice", T0, totp=code)
            outcomes.append("ok")
        except auth.AuthError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["bad_totp", "bad_totp", "bad_totp", "ok"]


# -- lockout -------------------------------------------------------------------------------
def test_lockout_back_off_doubles_up_to_an_hour(people: People) -> None:
    at = T0
    for n in range(1, 5):
        assert _login_error(people, "alice", at, password="wrong wrong wrong").code == (
            "bad_credentials"
        )
        assert _credentials(people.app, "alice").failed_attempts == n
        assert _credentials(people.app, "alice").locked_until is None
    fifth = _login_error(people, "alice", at, password="wrong wrong wrong")
    assert fifth.code == "bad_credentials" and "locked" in str(fifth)
    assert _credentials(people.app, "alice").locked_until == at + timedelta(minutes=1)

    # During the lockout nothing is checked: right and wrong passwords look the same.
    during = at + timedelta(seconds=59)
    right = _login_error(people, "alice", during)
    wrong = _login_error(people, "alice", during, password="wrong wrong wrong")
    assert right.code == wrong.code == "locked_out" and str(right) == str(wrong)
    assert _credentials(people.app, "alice").failed_attempts == 5  # not charged

    expected = [2, 4, 8, 16, 32, 60, 60]  # minutes, for failures 6, 7, 8, …
    lock = timedelta(minutes=1)
    for minutes in expected:
        at = at + lock
        assert _login_error(people, "alice", at, password="wrong wrong wrong").code == (
            "bad_credentials"
        )
        lock = timedelta(minutes=minutes)
        assert _credentials(people.app, "alice").locked_until == at + lock
    assert [auth.lockout_for(n) for n in (4, 5, 6, 10, 11, 1000)] == [
        None,
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=32),
        timedelta(hours=1),
        timedelta(hours=1),
    ]

    at = at + lock
    people.login("alice", at)  # success resets the counter
    cred = _credentials(people.app, "alice")
    assert cred.failed_attempts == 0 and cred.locked_until is None

    rules = [e["rule"] for e in _login_events(people.app)]
    assert rules.count("auth.locked_out") == 2
    assert rules.count("auth.bad_password") == 12 and rules[-1] == "auth.ok"
    locked_event = next(e for e in _login_events(people.app) if e["rule"] == "auth.locked_out")
    assert locked_event["decision"] == "deny" and locked_event["detail"]["locked_s"] == 1  # type: ignore[index]


def test_parallel_guesses_cannot_overtake_the_counter(people: People) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess() -> None:
        try:
            people.login("alice", T0, password="parallel guess!")
        except auth.AuthError as exc:
            with lock:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each attempt is charged before the password is checked: exactly five get a check.
    assert outcomes.count("bad_credentials") == 5
    assert outcomes.count("locked_out") == 7
    assert _credentials(people.app, "alice").failed_attempts == 5


def test_missing_totp_counts_as_a_failure(people: People) -> None:
    for _ in range(5):
        _login_error(people, "alice", T0, totp=None)
    assert _login_error(people, "alice", T0).code == "locked_out"


# -- account state -------------------------------------------------------------------------
def test_disabled_and_locked_accounts_cannot_log_in(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    identities.disable_user(app, OP, "alice")
    at = T0 + timedelta(seconds=30)
    error = _login_error(people, "alice", at)
    assert error.code == "account_disabled" and "disabled" in str(error)
    # A wrong password on a disabled account says only that the password is wrong.
    assert _login_error(people, "alice", at, password="nope nope nope").code == "bad_credentials"
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, session.token, now=at)
    assert caught.value.code == "session_revoked"

    identities.enable_user(app, OP, "alice")
    at = T0 + timedelta(seconds=60)
    session = people.login("alice", at)
    principal = identities.get_principal(app, "alice")
    assert principal is not None
    store = identities.store_for(app)
    with store.write() as conn:  # what a reveal ceiling does
        store.update_principal(conn, principal.id, at, state="locked")
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, session.token, now=at)
    assert caught.value.code == "account_locked"
    error = _login_error(people, "alice", at + timedelta(seconds=30))
    assert error.code == "account_locked" and "pending review" in str(error)


def test_disabled_unit_stops_its_people(people: People) -> None:
    courier = people.login("carl", T0, device_id="PDA-0001")
    identities.disable_unit(people.app, OP, "SZ-NS")
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(people.app, courier.token, now=T0)
    assert caught.value.code == "account_disabled"
    assert _login_error(people, "carl", T0, device_id="PDA-0001").code == "account_disabled"


# -- couriers and devices ------------------------------------------------------------------
def test_courier_device_binding(people: People) -> None:
    app = people.app
    identities.add_user(app, OP, "dora", "courier", "SZ-NS", password=PASSWORD)
    assert _login_error(people, "dora", T0).code == "device_unregistered"
    assert _login_error(people, "dora", T0, device_id="PDA-0009").code == "device_unregistered"
    identities.bind_device(app, OP, "dora", "PDA-0009")
    assert _login_error(people, "dora", T0).code == "device_required"
    assert _login_error(people, "dora", T0, device_id="PDA-0001").code == "device_mismatch"
    session = people.login("dora", T0, device_id="PDA-0009")
    assert session.principal.device_id == "PDA-0009"
    context = auth.authenticate(app, session.token, now=T0)
    assert context.device_id == "PDA-0009" and context.mfa_at is None
    rules = [e["rule"] for e in _login_events(app) if e["actor"] == "dora"]
    assert rules == [
        "auth.device_unregistered",
        "auth.device_unregistered",
        "auth.device_required",
        "auth.device_mismatch",
        "auth.ok",
    ]
    # Re-binding ends the old device's sessions.
    identities.bind_device(app, OP, "dora", "PDA-0010")
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, session.token, now=T0)
    assert caught.value.code == "session_revoked"
    # Even a session that escaped revocation is refused from the old device.
    fresh = people.login("dora", T0, device_id="PDA-0010")
    principal = identities.get_principal(app, "dora")
    assert principal is not None
    store = identities.store_for(app)
    with store.write() as conn:
        store.update_principal(conn, principal.id, T0, device_id="PDA-0011")
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, fresh.token, now=T0)
    assert caught.value.code == "session_invalid"


def test_courier_needs_no_totp_and_cannot_step_up(people: People) -> None:
    session = people.login("carl", T0, device_id="PDA-0001", totp=None)
    assert not auth.step_up(people.app, session.principal, "123456", token=session.token, now=T0)


# -- sessions ------------------------------------------------------------------------------
def test_idle_timeout_slides_and_expires(people: People) -> None:
    session = people.login("alice", T0)
    app = people.app
    at = T0
    for _ in range(3):
        at += timedelta(minutes=14)
        context = auth.authenticate(app, session.token, now=at)
        assert context.expires_at == at + auth.IDLE_TIMEOUT
    at += timedelta(minutes=15)
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, session.token, now=at)
    assert caught.value.code == "session_expired" and "expired" in str(caught.value)


def test_absolute_timeout(people: People) -> None:
    session = people.login("alice", T0)
    at = T0
    while at + timedelta(minutes=14) < T0 + auth.ABSOLUTE_TIMEOUT:
        at += timedelta(minutes=14)
        auth.authenticate(people.app, session.token, now=at)
    context = auth.authenticate(people.app, session.token, now=at)
    assert context.expires_at == T0 + auth.ABSOLUTE_TIMEOUT  # the earlier deadline
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(people.app, session.token, now=T0 + auth.ABSOLUTE_TIMEOUT)
    assert caught.value.code == "session_expired"


def test_timeouts_are_overridable(people: People) -> None:
    session = people.login("alice", T0, absolute=timedelta(minutes=2))
    with pytest.raises(auth.AuthError):
        auth.authenticate(people.app, session.token, now=T0 + timedelta(minutes=2))
    session = people.login("alice", T0 + timedelta(seconds=30))
    with pytest.raises(auth.AuthError):
        auth.authenticate(
            people.app, session.token, now=T0 + timedelta(minutes=2), idle=timedelta(minutes=1)
        )


def test_logout_revokes(people: People) -> None:
    session = people.login("alice", T0)
    assert auth.logout(people.app, session.token, now=T0)
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(people.app, session.token, now=T0)
    assert caught.value.code == "session_revoked"
    assert not auth.logout(people.app, session.token, now=T0)
    assert not auth.logout(people.app, "not a token")
    assert _login_events(people.app)[-1]["action"] == "logout"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "wg_", "wg_" + "A" * 43, "Bearer wg_x", "wg_" + "x" * 1_000_000, "wg_\x00"],
)
def test_invalid_tokens(people: People, token: str) -> None:
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(people.app, token, now=T0)
    assert caught.value.code == "session_invalid"


# -- partner clients -----------------------------------------------------------------------
def test_client_credentials(people: People) -> None:
    app = people.app
    session = auth.client_login(app, "shop-alpha", people.client_secret, "203.0.113.9", now=T0)
    assert session.scopes == {"waybills:read", "reveal:recipient.name", "reveal:recipient.address"}
    assert session.expires_at == T0 + auth.CLIENT_TOKEN_LIFETIME
    # No idle timeout for client tokens; one hour absolute.
    context = auth.authenticate(app, session.token, now=T0 + timedelta(minutes=59))
    assert context.scopes == session.scopes and context.principal.merchant == "shop-0001"
    with pytest.raises(auth.AuthError) as caught:
        auth.authenticate(app, session.token, now=T0 + timedelta(hours=1))
    assert caught.value.code == "session_expired"
    with pytest.raises(auth.AuthError) as caught:
        auth.client_login(app, "shop-alpha", "wgs_wrong", now=T0)
    assert caught.value.code == "bad_credentials"


def test_clients_and_users_cannot_swap_login_paths(people: People) -> None:
    app = people.app
    with pytest.raises(auth.AuthError) as caught:
        auth.login(app, "shop-alpha", people.client_secret, None, None, "x", now=T0)
    assert caught.value.code == "bad_credentials"
    with pytest.raises(auth.AuthError) as caught:
        auth.client_login(app, "alice", PASSWORD, "x", now=T0)
    assert caught.value.code == "bad_credentials"
    with pytest.raises(auth.AuthError):
        auth.client_login(app, "shop-alpha", PASSWORD, "x", now=T0)
    rules = [e["rule"] for e in _login_events(app)]
    assert rules == ["auth.not_a_user", "auth.not_a_client", "auth.bad_client_secret"]
    identities.disable_client(app, OP, "shop-alpha")
    with pytest.raises(auth.AuthError) as caught:
        auth.client_login(app, "shop-alpha", people.client_secret, now=T0)
    assert caught.value.code == "account_disabled"


# -- step-up -------------------------------------------------------------------------------
def test_step_up_needs_a_fresh_code(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    later = T0 + timedelta(minutes=5)
    code = people.code("alice", later)
    assert auth.step_up(app, session.principal, code, token=session.token, now=later)
    context = auth.authenticate(app, session.token, now=later + timedelta(seconds=1))
    assert context.mfa_at == later
    assert not auth.step_up(app, session.principal, code, token=session.token, now=later)
    wrong_shape = "12345x"
    assert not auth.step_up(app, session.principal, wrong_shape, now=later)
    events = [e for e in _login_events(app) if e["action"] == "step_up"]
    assert [(e["decision"], e["rule"]) for e in events] == [
        ("allow", "auth.ok"),
        ("deny", "auth.totp_replay"),
        ("deny", "auth.bad_totp"),
    ]


def test_wrong_step_up_codes_count_toward_lockout(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    at = T0 + timedelta(minutes=1)
    for _ in range(5):
        assert not auth.step_up(app, session.principal, "000000", token=session.token, now=at)
    good = people.code("alice", at)
    assert not auth.step_up(app, session.principal, good, token=session.token, now=at)  # locked
    assert _login_error(people, "alice", at).code == "locked_out"


# -- hostile input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "'; DROP TABLE principals; --"}, "username"),
        ({"username": "alice' OR '1'='1"}, "username"),
        ({"username": "alice\x00"}, "username"),
        ({"username": "ａｌｉｃｅ"}, "username"),
        ({"username": "x" * 1_000_000}, "username"),
        ({"password": "p" * 1_000_000}, "password"),
        ({"totp": "12345a"}, "totp"),
        ({"totp": "1" * 1_000_000}, "totp"),
        ({"totp": "１２３４５６"}, "totp"),
        ({"device_id": "PDA'; --"}, "device"),
    ],
)
def test_hostile_login_input_is_refused_clearly(
    people: People, kwargs: dict[str, str], field: str
) -> None:
    args = {"username": "alice", "password": PASSWORD, "totp": "123456", "device_id": None}
    args.update(kwargs)
    with pytest.raises(FieldError) as caught:
        auth.login(
            people.app,
            args["username"],  # type: ignore[arg-type]
            args["password"],  # type: ignore[arg-type]
            args["totp"],
            args["device_id"],
            "x",
            now=T0,
        )
    assert caught.value.field == field
    assert len(str(caught.value)) < 200  # never the value back
    assert _credentials(people.app, "alice").failed_attempts == 0
    assert identities.get_principal(people.app, "alice") is not None


def test_odd_unicode_password_round_trip(people: People) -> None:
    import unicodedata

    password = "Zoë 的口令 🚚 مرحبا"
    _, secret = identities.add_user(people.app, OP, "uni", "cs_agent", "SZ-NS", password=password)
    people.secrets["uni"] = secret or ""
    people.login("uni", T0, password=unicodedata.normalize("NFD", password))


def test_hostile_client_address_is_kept_out_of_the_log(people: People) -> None:
    auth.login(
        people.app,
        "alice",
        PASSWORD,
        people.code("alice", T0),
        None,
        "138 1234 5678\x1b[31m" + "y" * 500,
        now=T0,
    )
    event = _login_events(people.app)[-1]
    assert "1234" not in str(event["client"]) and "\x1b" not in str(event["client"])


def test_rehash_on_login_when_parameters_change(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "m=1024" in (_credentials(people.app, "alice").password_hash or "")
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(2, 2048, 1))
    people.login("alice", T0)
    stored = _credentials(people.app, "alice").password_hash or ""
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    people.login("alice", T0 + timedelta(seconds=30))


# -- nothing secret anywhere ---------------------------------------------------------------
def test_no_secret_in_audit_logs_or_database(
    people: People, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.DEBUG)
    app = people.app
    tokens: list[str] = []
    codes: list[str] = []
    at = T0
    for step in range(3):
        at = T0 + timedelta(seconds=30 * step)
        code = people.code("alice", at)
        codes.append(code)
        tokens.append(people.login("alice", at, totp=code).token)
    _login_error(people, "alice", at, password="a wrong password guess")
    _login_error(people, "alice", at, password=PASSWORD, totp=codes[-1])  # replay
    tokens.append(people.login("carl", at, device_id="PDA-0001").token)
    tokens.append(auth.client_login(app, "shop-alpha", people.client_secret, now=at).token)
    auth.step_up(app, identities.get_principal(app, "alice"), "000000", now=at)  # type: ignore[arg-type]
    auth.logout(app, tokens[0], now=at)

    secret = people.secrets["alice"]
    needles = [
        PASSWORD,
        "a wrong password guess",
        people.client_secret,
        secret,
        "PDA-0001",
        *tokens,
        # A bare 6-digit run turns up by chance in timestamps; a code would be a value.
        *(f'"{c}"' for c in codes),
        *(f"'{c}'" for c in codes),
    ]
    audit.seal(app)
    events = orjson.dumps(audit.by_actor(app, None)).decode()
    for needle in needles:
        assert needle not in events
        assert needle not in caplog.text

    blobs = [path.read_bytes() for path in storage_files(app, request)]
    raw_secret = base64.b32decode(secret)
    for blob in blobs:
        assert secret.encode() not in blob and raw_secret not in blob
        assert PASSWORD.encode() not in blob
        assert people.client_secret.encode() not in blob
        for token in tokens:
            assert token.encode() not in blob


# -- audit atomicity -----------------------------------------------------------------------
def _session_count(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one())


def test_login_with_failing_audit_opens_no_session(people: People) -> None:
    """Fault injection in the database: the `login` event cannot be written, so there is
    no session, the failure counter is untouched and the TOTP step is not used up."""
    app = people.app
    code = people.code("alice", T0)
    before = state_snapshot(app)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        people.login("alice", T0, totp=code)
    assert _session_count(app) == 0
    assert state_snapshot(app) == before
    cred = _credentials(app, "alice")
    assert cred.failed_attempts == 0 and cred.totp_last_step is None
    assert _login_events(app) == []
    # The same code still works once the log does: the step was never recorded.
    session = people.login("alice", T0, totp=code)
    assert auth.authenticate(app, session.token, now=T0).principal.username == "alice"
    assert _session_count(app) == 1
    assert [e["rule"] for e in _login_events(app)] == ["auth.ok"]


def test_courier_and_client_logins_with_failing_audit_open_no_session(people: People) -> None:
    app = people.app
    before = state_snapshot(app)
    with audit_writes_fail(app):
        with pytest.raises(Exception, match="injected audit failure"):
            people.login("carl", T0, device_id="PDA-0001")
        with pytest.raises(Exception, match="injected audit failure"):
            auth.client_login(app, "shop-alpha", people.client_secret, now=T0)
    assert _session_count(app) == 0
    assert state_snapshot(app) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"password": "wrong wrong wrong"},
        {"totp": None},
        {"totp": "000000"},
    ],
    ids=["bad_password", "totp_required", "bad_totp"],
)
def test_failed_login_counter_and_event_commit_together(
    people: People, kwargs: dict[str, object]
) -> None:
    """A failure is counted only with its audit event: four failures recorded, then a
    fifth whose event cannot be written neither counts nor locks the account."""
    app = people.app
    for _ in range(4):
        _login_error(people, "alice", T0, **kwargs)
    assert _credentials(app, "alice").failed_attempts == 4
    before = state_snapshot(app)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        people.login("alice", T0, **kwargs)
    assert state_snapshot(app) == before
    cred = _credentials(app, "alice")
    assert cred.failed_attempts == 4 and cred.locked_until is None
    assert len(_login_events(app)) == 4
    fifth = _login_error(people, "alice", T0, **kwargs)  # the log works again
    assert "locked" in str(fifth)
    cred = _credentials(app, "alice")
    assert cred.failed_attempts == 5 and cred.locked_until == T0 + timedelta(minutes=1)
    assert _login_events(app)[-1]["detail"] == {"failures": 5, "locked_s": 60}


def test_logout_with_failing_audit_keeps_the_session(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        auth.logout(app, session.token, now=T0)
    assert auth.authenticate(app, session.token, now=T0).principal.username == "alice"
    assert auth.logout(app, session.token, now=T0)
    assert [e["action"] for e in _login_events(app)] == ["login", "logout"]


def test_step_up_with_failing_audit_records_nothing(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    later = T0 + timedelta(minutes=5)
    code = people.code("alice", later)
    before = state_snapshot(app)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        auth.step_up(app, session.principal, code, token=session.token, now=later)
    assert state_snapshot(app) == before
    context = auth.authenticate(app, session.token, now=later)
    assert context.mfa_at == T0  # not the step-up time
    # Nor was the code used up, or a failure counted.
    assert _credentials(app, "alice").failed_attempts == 0
    assert auth.step_up(app, session.principal, code, token=session.token, now=later)
    assert auth.authenticate(app, session.token, now=later).mfa_at == later


def test_wrong_step_up_with_failing_audit_is_not_counted(people: People) -> None:
    app = people.app
    session = people.login("alice", T0)
    at = T0 + timedelta(minutes=1)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        auth.step_up(app, session.principal, "000000", token=session.token, now=at)
    assert _credentials(app, "alice").failed_attempts == 0
    assert not auth.step_up(app, session.principal, "000000", token=session.token, now=at)
    assert _credentials(app, "alice").failed_attempts == 1


def test_outcome_is_withheld_when_a_lockout_begins_during_the_check(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is checked without holding a lock; if concurrent guesses lock the
    account meanwhile, this attempt is refused as locked out, uncharged — even with the
    right password — so no guess beyond the fifth ever gets an answer."""
    app = people.app
    store = identities.store_for(app)
    principal = identities.get_principal(app, "alice")
    assert principal is not None
    real_verify = app.vault.verify_password

    def verify_while_others_lock(encoded: str | None, password: str) -> bool:
        with store.write() as conn:  # five concurrent wrong guesses commit meanwhile
            store.update_credentials(
                conn, principal.id, failed_attempts=5, locked_until=T0 + timedelta(minutes=1)
            )
        return real_verify(encoded, password)

    monkeypatch.setattr(app.vault, "verify_password", verify_while_others_lock)
    error = _login_error(people, "alice", T0)  # right password and code
    assert error.code == "locked_out"
    assert _session_count(app) == 0
    cred = _credentials(app, "alice")
    assert cred.failed_attempts == 5 and cred.totp_last_step is None
    event = _login_events(app)[-1]
    assert (event["decision"], event["rule"]) == ("deny", "auth.locked_out")
    assert event["detail"] == {"locked_s": 60}
