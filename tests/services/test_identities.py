"""Organisation and identities: units, users, partner clients — validated, scoped to
administrators, audited, and never echoing a password or secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from waybillguard.domain.errors import FieldError
from waybillguard.domain.identity import (
    DEFAULT_GRADES,
    STAFF_ROLES,
    PrincipalKind,
    PrincipalState,
    Role,
    UnitKind,
)
from waybillguard.services import audit, identities
from waybillguard.services.activity import Actor
from waybillguard.services.app import App
from waybillguard.vault import credentials

OP = Actor.local_operator()
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at the production cost takes ~0.2 s a hash; these tests make hundreds.
    The parameters themselves are tested in tests/vault/test_credentials.py."""
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    yield


@pytest.fixture
def org(app: App) -> App:
    identities.add_unit(app, OP, "HQ", "hq", "总部")
    identities.add_unit(app, OP, "GD", "region", "广东区域", parent="HQ")
    identities.add_unit(app, OP, "BJ", "region", "北京区域", parent="HQ")
    identities.add_unit(
        app, OP, "SZ-NS", "station", "深圳南山网点", parent="GD", covers=["440305", "440304"]
    )
    identities.add_unit(app, OP, "BJ-CY", "station", "北京朝阳网点", parent="BJ", covers=["110105"])
    identities.add_unit(
        app, OP, "SZ-FT9", "station", "福田加盟网点", parent="GD", covers=["440303"], franchise=True
    )
    return app


def _events(app: App) -> list[dict[str, object]]:
    return audit.by_actor(app, None)


# -- units ---------------------------------------------------------------------------------
def test_unit_tree_and_coverage(org: App) -> None:
    summaries = {s.unit.code: s for s in identities.list_units(org)}
    assert set(summaries) == {"HQ", "GD", "BJ", "SZ-NS", "BJ-CY", "SZ-FT9"}
    ns = summaries["SZ-NS"]
    assert ns.unit.kind is UnitKind.STATION and ns.unit.parent == "GD"
    assert ns.covers == ("440304", "440305")
    assert summaries["SZ-FT9"].unit.franchise and not ns.unit.franchise
    assert summaries["HQ"].covers == () and summaries["HQ"].unit.parent is None
    changes = [e for e in _events(org) if e["action"] == "unit.change"]
    assert [e["detail"]["code"] for e in changes] == ["HQ", "GD", "BJ", "SZ-NS", "BJ-CY", "SZ-FT9"]
    assert all(e["actor"] == OP.name and e["decision"] == "allow" for e in changes)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("x", "station", "n", {"parent": "GD"}), "code"),  # too short
        (("A B", "station", "n", {"parent": "GD"}), "code"),
        (("ST12345", "station", "n", {"parent": "GD"}), "code"),  # digit run
        (("S1", "warehouse", "n", {"parent": "GD"}), "kind"),
        (("S1", "station", "", {"parent": "GD"}), "name"),
        (("S1", "station", "n\x00", {"parent": "GD"}), "name"),
        (("S1", "station", "长" * 129, {"parent": "GD"}), "name"),
        (("S1", "station", "n", {}), "parent"),  # a station needs a parent
        (("S1", "station", "n", {"parent": "NOPE"}), "parent"),
        (("S1", "station", "n", {"parent": "SZ-NS"}), "parent"),  # not under a station
        (("R1", "region", "n", {"parent": "GD"}), "parent"),
        (("HQ2", "hq", "n", {}), "kind"),  # one headquarters
        (("SZ-NS", "station", "n", {"parent": "GD"}), "code"),  # exists
        (("R1", "region", "n", {"parent": "HQ", "covers": ["440305"]}), "covers"),
        (("R1", "region", "n", {"parent": "HQ", "franchise": True}), "franchise"),
        (("S1", "station", "n", {"parent": "GD", "covers": ["44030"]}), "covers"),
        (("S1", "station", "n", {"parent": "GD", "covers": ["999999"]}), "covers"),
        (("S1", "station", "n", {"parent": "GD", "covers": ["440300"]}), "covers"),  # a city
        (("S1", "station", "n", {"parent": "GD", "covers": ["４４０３０５"]}), "covers"),
        (("S1", "station", "n", {"parent": "GD", "covers": ["440305"]}), "covers"),  # taken
    ],
)
def test_unit_validation(org: App, args: tuple, field: str) -> None:  # type: ignore[type-arg]
    code, kind, name, options = args
    before = len(identities.list_units(org))
    with pytest.raises(FieldError) as caught:
        identities.add_unit(org, OP, code, kind, name, **options)
    assert caught.value.field == field
    assert len(identities.list_units(org)) == before


def test_taken_district_names_its_station(org: App) -> None:
    with pytest.raises(FieldError, match="440305 is already covered by station SZ-NS"):
        identities.add_unit(org, OP, "SZ-X", "station", "n", parent="GD", covers=["440305"])


def test_disable_unit_is_audited(org: App) -> None:
    unit = identities.disable_unit(org, OP, "bj-cy")
    assert unit.disabled
    assert {s.unit.code: s.unit.disabled for s in identities.list_units(org)}["BJ-CY"]
    assert any(
        e["action"] == "unit.change" and e["detail"] == {"op": "disable", "code": "BJ-CY"}
        for e in _events(org)
    )
    with pytest.raises(FieldError, match="unit is disabled"):
        identities.add_user(org, OP, "carol", "station_clerk", "BJ-CY", password=PASSWORD)
    with pytest.raises(FieldError, match="no such unit"):
        identities.disable_unit(org, OP, "NOPE")


# -- users ---------------------------------------------------------------------------------
def test_add_user_defaults_and_second_factor(org: App) -> None:
    for role in STAFF_ROLES:
        unit = "SZ-NS"
        principal, secret = identities.add_user(
            org, OP, f"u-{role.value.replace('_', '-')}", role.value, unit, password=PASSWORD
        )
        assert principal.role is role and principal.grade == DEFAULT_GRADES[role]
        assert principal.unit == "SZ-NS" and principal.unit_path == ("GD", "HQ")
        assert principal.kind is PrincipalKind.USER and principal.active
        if role is Role.COURIER:
            assert secret is None
        else:
            assert secret is not None and len(secret) == 32
    assert len(identities.list_users(org)) == len(STAFF_ROLES)
    assert [p.username for p in identities.list_users(org, role="courier")] == ["u-courier"]
    assert identities.list_users(org, unit="GD") == []


def test_user_with_grade_and_device(org: App) -> None:
    principal, secret = identities.add_user(
        org, OP, "dan", Role.COURIER, "SZ-NS", password=PASSWORD, grade=4, device_id="IMEI-A1"
    )
    assert principal.grade == 4 and principal.device_id == "IMEI-A1" and secret is None
    assert identities.get_principal(org, "dan") == principal
    assert identities.get_principal_by_id(org, principal.id) == principal
    assert identities.get_principal(org, "nobody") is None
    assert identities.get_principal(org, "'; DROP TABLE principals; --") is None


@pytest.mark.parametrize(
    ("username", "role", "unit", "kwargs", "field"),
    [
        ("ok-user", "courier", "GD", {}, "unit"),  # a courier belongs to a station
        ("ok-user", "courier", "HQ", {}, "unit"),
        ("ok-user", "partner", "SZ-NS", {}, "role"),
        ("ok-user", "boss", "SZ-NS", {}, "role"),
        ("ok-user", "cs_agent", "NOPE", {}, "unit"),
        ("ok-user", "cs_agent", "SZ-NS", {"grade": 10}, "grade"),
        ("ok-user", "cs_agent", "SZ-NS", {"grade": -1}, "grade"),
        ("ok-user", "cs_agent", "SZ-NS", {"device_id": "D1"}, "device"),
        ("ok-user", "courier", "SZ-NS", {"device_id": "bad device!"}, "device"),
        ("ok-user", "courier", "SZ-NS", {"device_id": "d" * 65}, "device"),
        ("ok-user", "cs_agent", "SZ-NS", {"password": "short"}, "password"),
        ("ok-user", "cs_agent", "SZ-NS", {"password": "ok-user"}, "password"),
        ("longusername", "cs_agent", "SZ-NS", {"password": "LongUserName"}, "password"),
        ("ok-user", "cs_agent", "SZ-NS", {"password": "twelve chars\x00here"}, "password"),
        ("ok-user", "cs_agent", "SZ-NS", {"password": "zero\u200bwidth-joiner"}, "password"),
        ("ok-user", "cs_agent", "SZ-NS", {"password": "x" * 1_000_000}, "password"),
        ("Alice", "cs_agent", "SZ-NS", {}, "username"),
        ("alice'; DROP TABLE principals; --", "cs_agent", "SZ-NS", {}, "username"),
        ("' OR '1'='1", "cs_agent", "SZ-NS", {}, "username"),
        ("ａｌｉｃｅ", "cs_agent", "SZ-NS", {}, "username"),  # full-width letters
        ("alice\u202e", "cs_agent", "SZ-NS", {}, "username"),  # right-to-left override
        ("张伟", "cs_agent", "SZ-NS", {}, "username"),
        ("a", "cs_agent", "SZ-NS", {}, "username"),
        ("a" * 33, "cs_agent", "SZ-NS", {}, "username"),
        ("u13812345678", "cs_agent", "SZ-NS", {}, "username"),  # a phone number
        ("", "cs_agent", "SZ-NS", {}, "username"),
    ],
)
def test_user_validation_names_the_field_never_the_value(
    org: App, username: str, role: str, unit: str, kwargs: dict[str, object], field: str
) -> None:
    options: dict[str, object] = {"password": PASSWORD, **kwargs}
    with pytest.raises(FieldError) as caught:
        identities.add_user(org, OP, username, role, unit, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    password = str(options["password"])
    assert password not in str(caught.value) or len(password) < 4
    assert identities.list_users(org) == []  # nothing half-created, the table still there


def test_duplicate_username(org: App) -> None:
    identities.add_user(org, OP, "erin", "cs_agent", "SZ-NS", password=PASSWORD)
    with pytest.raises(FieldError, match="username: already exists"):
        identities.add_user(org, OP, "erin", "station_clerk", "BJ-CY", password=PASSWORD)


def test_odd_unicode_passwords_are_accepted(org: App) -> None:
    for n, password in enumerate(
        ["密码是一二三四五六七八九十", "🔐🔑🗝️ emoji pass 🚚", "مرحبا بالعالم كلمة"]
    ):
        identities.add_user(org, OP, f"uni{n}", "cs_agent", "SZ-NS", password=password)


def test_disable_enable_and_locked_stays_locked(org: App) -> None:
    identities.add_user(org, OP, "frank", "station_clerk", "SZ-NS", password=PASSWORD)
    assert identities.disable_user(org, OP, "frank", reason="left the company").state is (
        PrincipalState.DISABLED
    )
    assert identities.get_principal(org, "frank").state is PrincipalState.DISABLED  # type: ignore[union-attr]
    assert identities.enable_user(org, OP, "frank").state is PrincipalState.ACTIVE
    # A reveal ceiling locks the account (policy); only the review may lift it.
    store = identities.store_for(org)
    principal = identities.get_principal(org, "frank")
    assert principal is not None
    with store.write() as conn:
        store.update_principal(conn, principal.id, datetime.now(UTC), state="locked")
    with pytest.raises(FieldError, match="locked pending review"):
        identities.enable_user(org, OP, "frank")
    with pytest.raises(FieldError, match="locked pending review"):
        identities.disable_user(org, OP, "frank")
    with pytest.raises(FieldError, match="reason"):
        identities.disable_user(org, OP, "erin-none", reason="x" * 200)
    with pytest.raises(FieldError, match="no such user"):
        identities.disable_user(org, OP, "nobody")


def test_set_grade(org: App) -> None:
    identities.add_user(org, OP, "gina", "cs_agent", "SZ-NS", password=PASSWORD)
    assert identities.set_grade(org, OP, "gina", 5).grade == 5
    assert identities.get_principal(org, "gina").grade == 5  # type: ignore[union-attr]
    with pytest.raises(FieldError, match="grade"):
        identities.set_grade(org, OP, "gina", 10)
    event = [e for e in _events(org) if e["detail"].get("op") == "set_grade"][-1]  # type: ignore[union-attr]
    assert event["detail"] == {"op": "set_grade", "subject": "gina", "from": 2, "to": 5}


def test_reset_password_and_totp(org: App) -> None:
    _, first = identities.add_user(org, OP, "hank", "security", "HQ", password=PASSWORD)
    assert identities.reset_password(org, OP, "hank", "a brand new passphrase") is None
    second = identities.reset_password(org, OP, "hank", "another passphrase!", reset_totp=True)
    assert second is not None and second != first
    identities.add_user(org, OP, "ivan", "courier", "SZ-NS", password=PASSWORD)
    with pytest.raises(FieldError, match="totp"):
        identities.reset_password(org, OP, "ivan", "a brand new passphrase", reset_totp=True)
    with pytest.raises(FieldError, match="password"):
        identities.reset_password(org, OP, "ivan", "short")


def test_bind_device_only_for_couriers(org: App) -> None:
    identities.add_user(org, OP, "jack", "courier", "SZ-NS", password=PASSWORD)
    identities.add_user(org, OP, "kate", "cs_agent", "SZ-NS", password=PASSWORD)
    assert identities.bind_device(org, OP, "jack", "PDA-0042").device_id == "PDA-0042"
    with pytest.raises(FieldError, match="only couriers"):
        identities.bind_device(org, OP, "kate", "PDA-0043")
    with pytest.raises(FieldError, match="device"):
        identities.bind_device(org, OP, "jack", "PDA 0042; rm -rf /")


# -- partner clients -----------------------------------------------------------------------
def test_partner_clients(org: App) -> None:
    client, secret = identities.add_client(
        org, OP, "shop-alpha", "SZ-NS", "shop-0001", ["recipient.name", "recipient.address"]
    )
    assert secret.startswith("wgs_")
    assert client.kind is PrincipalKind.CLIENT and client.role is Role.PARTNER
    assert client.merchant == "shop-0001"
    assert client.contract_fields == frozenset({"recipient.name", "recipient.address"})
    assert client.grade == DEFAULT_GRADES[Role.PARTNER]
    assert [c.username for c in identities.list_clients(org)] == ["shop-alpha"]
    assert identities.list_users(org) == []  # clients are not users
    with pytest.raises(FieldError, match="fields"):
        identities.add_client(org, OP, "shop-b", "SZ-NS", "m", ["recipient.ssn"])
    with pytest.raises(FieldError, match="merchant"):
        identities.add_client(org, OP, "shop-b", "SZ-NS", "m; drop", ["recipient.name"])
    with pytest.raises(FieldError, match="name: already exists"):
        identities.add_client(org, OP, "shop-alpha", "SZ-NS", "m", ["recipient.name"])
    assert identities.disable_client(org, OP, "shop-alpha").state is PrincipalState.DISABLED
    with pytest.raises(FieldError, match="no such client"):
        identities.disable_client(org, OP, "nobody")
    with pytest.raises(FieldError, match="no such user"):
        identities.disable_user(org, OP, "shop-alpha")  # a client is not a user
    event = next(e for e in _events(org) if e["action"] == "client.change")
    assert event["detail"]["fields"] == "recipient.address,recipient.name"  # type: ignore[index]
    assert secret not in orjson.dumps(_events(org)).decode()


# -- who may manage ------------------------------------------------------------------------
def test_only_administrators_manage_within_their_scope(org: App) -> None:
    hq_admin, _ = identities.add_user(org, OP, "root-admin", "admin", "HQ", password=PASSWORD)
    gd_admin, _ = identities.add_user(org, OP, "gd-admin", "admin", "GD", password=PASSWORD)
    agent, _ = identities.add_user(org, OP, "agent", "cs_agent", "SZ-NS", password=PASSWORD)
    as_hq = Actor.for_principal(hq_admin, "test")
    as_gd = Actor.for_principal(gd_admin, "test")
    as_agent = Actor.for_principal(agent, "test")

    with pytest.raises(identities.NotAllowed):
        identities.add_user(org, as_agent, "mallory", "cs_agent", "SZ-NS", password=PASSWORD)
    with pytest.raises(identities.NotAllowed):
        identities.set_grade(org, as_agent, "agent", 9)  # not even for oneself
    with pytest.raises(identities.NotAllowed):
        identities.add_unit(org, as_agent, "SZ-Z", "station", "n", parent="GD")

    # A region's administrator manages its own stations, not another region's.
    identities.add_user(org, as_gd, "sz-clerk", "station_clerk", "SZ-NS", password=PASSWORD)
    identities.add_unit(org, as_gd, "SZ-LG", "station", "龙岗网点", parent="GD")
    with pytest.raises(identities.NotAllowed, match="scope"):
        identities.add_user(org, as_gd, "bj-clerk", "station_clerk", "BJ-CY", password=PASSWORD)
    with pytest.raises(identities.NotAllowed, match="scope"):
        identities.add_unit(org, as_gd, "BJ-HD", "station", "海淀网点", parent="BJ")
    with pytest.raises(identities.NotAllowed, match="scope"):
        identities.add_client(org, as_gd, "shop-bj", "BJ-CY", "m", ["recipient.name"])
    with pytest.raises(FieldError, match="own unit"):
        identities.disable_unit(org, as_gd, "GD")
    with pytest.raises(FieldError, match="own account"):
        identities.disable_user(org, as_gd, "gd-admin")

    # Headquarters' administrator manages everything.
    identities.add_user(org, as_hq, "bj-clerk", "station_clerk", "BJ-CY", password=PASSWORD)
    identities.disable_unit(org, as_hq, "SZ-LG")
    # A disabled administrator manages nothing.
    identities.disable_user(org, as_hq, "gd-admin")
    with pytest.raises(identities.NotAllowed, match="not active"):
        identities.add_user(org, as_gd, "late", "station_clerk", "SZ-NS", password=PASSWORD)

    actors = {e["actor"] for e in _events(org) if e["action"] == "user.change"}
    assert actors == {OP.name, "gd-admin", "root-admin"}


def test_no_password_or_secret_in_audit(org: App) -> None:
    secrets: list[str] = [PASSWORD]
    _, totp = identities.add_user(org, OP, "lena", "cs_agent", "SZ-NS", password=PASSWORD)
    secrets.append(totp or "")
    new = identities.reset_password(org, OP, "lena", "new pass phrase 42", reset_totp=True)
    secrets += ["new pass phrase 42", new or ""]
    _, client_secret = identities.add_client(org, OP, "shop-c", "SZ-NS", "m", ["recipient.name"])
    secrets.append(client_secret)
    identities.add_user(org, OP, "mike", "courier", "SZ-NS", password=PASSWORD, device_id="IMEI-9")
    secrets.append("IMEI-9")
    dumped = orjson.dumps(_events(org)).decode()
    for secret in secrets:
        assert secret and secret not in dumped
    assert "lena" in dumped  # the subject is named


# -- audit atomicity -----------------------------------------------------------------------
_STATE_TABLES = ("units", "station_coverage", "principals", "credentials", "sessions")


@contextmanager
def audit_writes_fail(app: App) -> Iterator[None]:
    """Fault injection in the database itself: while active, every insert into the audit
    log raises (a trigger on `audit_pending`, on SQLite and PostgreSQL)."""
    sqlite = app.settings.uses_embedded_database
    with app.engine.begin() as conn:
        if sqlite:
            conn.execute(
                text(
                    "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_pending "
                    "BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION fail_audit() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected audit failure'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_pending "
                    "FOR EACH ROW EXECUTE FUNCTION fail_audit()"
                )
            )
    try:
        yield
    finally:
        with app.engine.begin() as conn:
            if sqlite:
                conn.execute(text("DROP TRIGGER fail_audit"))
            else:
                conn.execute(text("DROP TRIGGER fail_audit ON audit_pending"))
                conn.execute(text("DROP FUNCTION fail_audit()"))


def state_snapshot(app: App) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables identities and sessions live in, in a stable order."""
    with app.engine.connect() as conn:
        return {
            table: sorted(
                (tuple(row) for row in conn.execute(text(f"SELECT * FROM {table}"))), key=repr
            )
            for table in _STATE_TABLES
        }


def _audit_count(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM audit_pending")).scalar_one())


@pytest.fixture
def staffed(org: App) -> App:
    identities.add_user(org, OP, "alice", "cs_agent", "SZ-NS", password=PASSWORD)
    identities.add_user(
        org, OP, "carl", "courier", "SZ-NS", password=PASSWORD, device_id="PDA-0001"
    )
    identities.add_user(org, OP, "dora", "cs_agent", "SZ-NS", password=PASSWORD)
    identities.disable_user(org, OP, "dora")
    identities.add_client(org, OP, "shop-alpha", "SZ-NS", "shop-0001", ["recipient.name"])
    store = identities.store_for(org)
    now = datetime.now(UTC)
    with store.write() as conn:  # a live session each, which disable / reset would end
        for name in ("alice", "carl"):
            stored = store.principal(conn, username=name)
            assert stored is not None
            store.insert_session(
                conn,
                name.encode().ljust(32, b"\0"),
                stored.principal.id,
                created_at=now,
                expires_at=now + timedelta(hours=1),
                mfa_at=None,
                device_id="PDA-0001" if name == "carl" else None,
                client_address=None,
                scopes=[],
            )
    return org


_CHANGES: dict[str, Callable[[App], object]] = {
    "add_unit": lambda a: identities.add_unit(
        a, OP, "SZ-BA", "station", "宝安网点", parent="GD", covers=["440306"]
    ),
    "disable_unit": lambda a: identities.disable_unit(a, OP, "BJ-CY"),
    "add_user": lambda a: identities.add_user(
        a, OP, "newbie", "cs_agent", "SZ-NS", password=PASSWORD
    ),
    "add_courier": lambda a: identities.add_user(
        a, OP, "newcourier", "courier", "SZ-NS", password=PASSWORD, device_id="PDA-0002"
    ),
    "set_grade": lambda a: identities.set_grade(a, OP, "alice", 7),
    "disable_user": lambda a: identities.disable_user(a, OP, "alice", reason="left"),
    "enable_user": lambda a: identities.enable_user(a, OP, "dora"),
    "reset_password": lambda a: identities.reset_password(
        a, OP, "alice", "another long passphrase", reset_totp=True
    ),
    "bind_device": lambda a: identities.bind_device(a, OP, "carl", "PDA-0009"),
    "add_client": lambda a: identities.add_client(
        a, OP, "shop-beta", "SZ-NS", "shop-0002", ["recipient.address"]
    ),
    "disable_client": lambda a: identities.disable_client(a, OP, "shop-alpha"),
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_change_and_its_audit_event_commit_together(staffed: App, change: str) -> None:
    """If the audit event of a change cannot be written, the change is not made either;
    once the log works again the same change goes through, with its event."""
    app = staffed
    before = state_snapshot(app)
    events_before = _audit_count(app)
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        _CHANGES[change](app)
    assert state_snapshot(app) == before
    assert _audit_count(app) == events_before

    _CHANGES[change](app)
    assert state_snapshot(app) != before
    assert _audit_count(app) == events_before + 1


def test_user_add_with_failing_audit_leaves_no_user(staffed: App) -> None:
    app = staffed
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        identities.add_user(app, OP, "ghost", "station_clerk", "SZ-NS", password=PASSWORD)
    assert identities.get_principal(app, "ghost") is None
    assert "ghost" not in [p.username for p in identities.list_users(app)]
    with app.engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT COUNT(*) FROM credentials WHERE principal_id NOT IN "
                "(SELECT id FROM principals)"
            )
        ).scalar_one()
    assert orphans == 0
    assert '"ghost"' not in orjson.dumps(_events(app)).decode()


def test_set_grade_with_failing_audit_keeps_the_grade(staffed: App) -> None:
    app = staffed
    grade = identities.get_principal(app, "alice").grade  # type: ignore[union-attr]
    with audit_writes_fail(app), pytest.raises(Exception, match="injected audit failure"):
        identities.set_grade(app, OP, "alice", grade + 1)
    assert identities.get_principal(app, "alice").grade == grade  # type: ignore[union-attr]
    ops = [e["detail"]["op"] for e in _events(app) if e["action"] == "user.change"]  # type: ignore[index]
    assert "set_grade" not in ops
