"""Reveals committed in groups (`reveal.reveal_batch`, `KeptConnection.group`), on SQLite
and PostgreSQL: the same decisions, charges and audit events as one reveal after
another; one call's failure rolls back that call alone; a lost group transaction fails
every call; nothing is decrypted before the decisions are durable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from tests.access.network import Network, build_network
from waybillguard.adapters.db.engine import GroupLost
from waybillguard.domain.errors import FieldError
from waybillguard.services import policy_admin, reveal
from waybillguard.services.app import App
from waybillguard.services.reveal import RevealCall, RevealOutcome
from waybillguard.vault import credentials


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at its production cost is tested in tests/vault."""
    monkeypatch.setattr(credentials, "PASSWORD_HASHER", PasswordHasher(1, 1024, 1))
    yield


@pytest.fixture
def net(app: App, tmp_path: Path) -> Network:
    return build_network(app, tmp_path)


def _count(app: App, sql: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _charges(app: App) -> int:
    return _count(app, "SELECT COALESCE(SUM(records), 0) FROM quota_charges")


def _events(app: App) -> int:
    return _count(app, "SELECT count(*) FROM audit_pending") + _count(
        app, "SELECT count(*) FROM audit_events"
    )


def _phone(net: Network, number: str) -> str:
    return str(net.rows[net.numbers.index(number)]["recipient"]["phone"])


def _allowed_to(net: Network, username: str) -> str:
    """A waybill whose recipient phone this user may reveal for delivery."""
    principal = net.users[username]
    return next(
        n
        for n in net.numbers
        if reveal.explain(net.app, principal, n, "recipient.phone", "delivery")["decision"]
        == "allow"
    )


def _fail_charges_of(app: App, principal_id: int, how: str = "ABORT") -> None:
    """Make inserting a quota charge of one principal fail inside the database."""
    with app.engine.begin() as conn:
        if app.settings.uses_embedded_database:
            conn.execute(
                text(
                    f"CREATE TRIGGER fail_charge BEFORE INSERT ON quota_charges "
                    f"WHEN NEW.principal_id = {principal_id} "
                    f"BEGIN SELECT RAISE({how}, 'injected charge failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION fail_charge() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.principal_id = {principal_id} THEN "
                    "RAISE EXCEPTION 'injected charge failure'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER fail_charge BEFORE INSERT ON quota_charges "
                    "FOR EACH ROW EXECUTE FUNCTION fail_charge()"
                )
            )


def test_a_batch_counts_exactly_like_one_reveal_after_another(net: Network) -> None:
    """cs1 (grade 2, no fresh second factor): 20 an hour freely, then step-up. A batch
    of 25 sees the charges of the calls before it in the same transaction."""
    app = net.app
    number = net.numbers[2]
    cs = net.caller("cs1", mfa=False)
    net.open_ticket("G1", number, "recipient")
    calls = [RevealCall(cs, number, "recipient.phone", "ticket:G1") for _ in range(25)]
    before_events = _events(app)
    results = reveal.reveal_batch(app, calls)
    assert all(isinstance(r, RevealOutcome) for r in results)
    decisions = [r.decision.effect.value for r in results if isinstance(r, RevealOutcome)]
    assert decisions == ["allow"] * 20 + ["step_up"] * 5
    assert _charges(app) == 20
    assert _events(app) == before_events + 25
    first = results[0]
    assert isinstance(first, RevealOutcome)
    assert first.fields == {number: {"recipient.phone": _phone(net, number)}}
    refused = results[-1]
    assert isinstance(refused, RevealOutcome) and refused.fields == {}
    # and the next reveal, alone, continues from there
    after = reveal.reveal(app, cs, number, "recipient.phone", "ticket:G1")
    assert after.decision.effect.value == "step_up"


def test_one_failing_call_is_rolled_back_alone(net: Network) -> None:
    app = net.app
    number = net.s1_numbers[0]
    _fail_charges_of(app, net.users["clerk2"].id)
    s2_number = _allowed_to(net, "clerk2")
    before_charges, before_events = _charges(app), _events(app)
    clerk1, clerk2 = net.caller("clerk1"), net.caller("clerk2")
    results = reveal.reveal_batch(
        app,
        [
            RevealCall(clerk1, number, "recipient.phone", "delivery"),
            RevealCall(clerk2, s2_number, "recipient.phone", "delivery"),  # its charge fails
            RevealCall(clerk1, number, "bogus.field", "delivery"),  # refused before any write
            RevealCall(clerk1, number, "recipient.name", "delivery"),
        ],
    )
    ok1, failed, bad, ok2 = results
    assert isinstance(ok1, RevealOutcome) and ok1.allowed
    assert isinstance(ok2, RevealOutcome) and ok2.allowed
    assert isinstance(failed, Exception) and not isinstance(failed, RevealOutcome)
    assert _phone(net, s2_number) not in str(failed)
    assert isinstance(bad, FieldError)
    # the failed call's audit event went with its charge; the others committed
    assert _charges(app) == before_charges + 2
    assert _events(app) == before_events + 2
    assert ok1.fields[number]["recipient.phone"] == _phone(net, number)


def test_a_lost_group_transaction_fails_every_call(net: Network) -> None:
    """RAISE(ROLLBACK) makes SQLite roll back the whole transaction, not one statement:
    the calls before it lost their charges and events too, so none may be answered."""
    app = net.app
    if not policy_admin.access_store(app).groups_writes:
        pytest.skip("PostgreSQL commits each reveal of a batch on its own")
    number = net.s1_numbers[0]
    _fail_charges_of(app, net.users["clerk2"].id, how="ROLLBACK")
    s2_number = _allowed_to(net, "clerk2")
    before_charges, before_events = _charges(app), _events(app)
    clerk1, clerk2 = net.caller("clerk1"), net.caller("clerk2")
    opened: list[Any] = []
    real_open = app.vault.open_fields

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        return real_open(*args, **kwargs)

    app.vault.open_fields = spy  # type: ignore[method-assign]
    with pytest.raises(GroupLost):
        reveal.reveal_batch(
            app,
            [
                RevealCall(clerk1, number, "recipient.phone", "delivery"),
                RevealCall(clerk2, s2_number, "recipient.phone", "delivery"),
                RevealCall(clerk1, number, "recipient.name", "delivery"),
            ],
        )
    assert opened == []  # nothing was decrypted
    assert (_charges(app), _events(app)) == (before_charges, before_events)
    # the kept connection is usable afterwards
    app.vault.open_fields = real_open  # type: ignore[method-assign]
    again = reveal.reveal(app, clerk1, number, "recipient.phone", "delivery")
    assert again.allowed


def test_nothing_is_decrypted_before_every_decision_of_the_batch_is_committed(
    net: Network,
) -> None:
    """When the vault opens a field, another connection already sees the audit events
    and charges of the whole batch: they are committed, not pending in a transaction."""
    app = net.app
    number = net.s1_numbers[0]
    before_charges, before_events = _charges(app), _events(app)
    seen: list[tuple[int, int]] = []
    real_open = app.vault.open_fields

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((_charges(app), _events(app)))  # pooled connection, not the kept one
        return real_open(*args, **kwargs)

    app.vault.open_fields = spy  # type: ignore[method-assign]
    clerk1 = net.caller("clerk1")
    results = reveal.reveal_batch(
        app, [RevealCall(clerk1, number, "recipient.phone", "delivery") for _ in range(5)]
    )
    assert all(isinstance(r, RevealOutcome) and r.allowed for r in results)
    assert seen == [(before_charges + 5, before_events + 5)] * 5


def test_grouped_writes_are_one_transaction_on_sqlite(app: App) -> None:
    store = policy_admin.access_store(app)
    with store.hot_write() as conn:
        conn.execute(text("CREATE TABLE group_probe (n INTEGER)"))
    with store.hot_group():
        with store.hot_write() as conn:
            conn.execute(text("INSERT INTO group_probe VALUES (1)"))
        with pytest.raises(RuntimeError), store.hot_write() as conn:
            conn.execute(text("INSERT INTO group_probe VALUES (2)"))
            raise RuntimeError("this write fails")
        with store.hot_write() as conn:
            conn.execute(text("INSERT INTO group_probe VALUES (3)"))
        visible = _count(app, "SELECT count(*) FROM group_probe")
    # inside a group on SQLite nothing is visible to others before the end; on
    # PostgreSQL each write committed on its own
    assert visible == (0 if store.groups_writes else 2)
    assert _count(app, "SELECT count(*) FROM group_probe") == 2
    assert _count(app, "SELECT sum(n) FROM group_probe") == 4
