"""Import end to end on the embedded store: encryption at rest, idempotency, rotation, shred."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import (
    row_pii,
    scan_bytes,
    scan_text,
    seeded_pii,
    seeded_rows,
    storage_files,
)
from waybillguard.services import keys, shredding, waybills
from waybillguard.services.app import App
from waybillguard.services.importer import StrictImportFailed, import_file
from waybillguard.services.synth import write_synth
from waybillguard.vault import DecryptionError, KeyringError, RevealGrant, SealedRecord

ALL_FIELDS = frozenset(
    f"{r}.{a}" for r in ("sender", "recipient") for a in ("name", "phone", "address")
)


def reveal_all(app: App, number: str) -> dict[str, str]:
    row = app.store.sealed(number)
    assert row is not None
    record = SealedRecord(number, row.uid, row.kek_id, row.wrapped_dek, row.ciphertexts)
    return app.vault.open_fields(record, RevealGrant(number, ALL_FIELDS, audit_ref="test"))


def all_numbers(app: App) -> list[str]:
    return [w["tracking_number"] for w in waybills.list_waybills(app, 10_000)]


@pytest.fixture
def synth_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.jsonl"
    write_synth(path, 600, seed=3)
    return path


def test_import_stores_only_ciphertext(
    app: App, synth_file: Path, request: pytest.FixtureRequest
) -> None:
    report = import_file(app, synth_file, workers=2, chunk_rows=100)
    assert (report.imported, report.rejected, report.errors_file) == (600, 0, None)
    blob = b"".join(p.read_bytes() for p in storage_files(app, request))
    assert len(blob) > 100_000
    assert scan_bytes(blob, seeded_pii(synth_file)) == []


def test_decrypted_fields_match_the_source(app: App, synth_file: Path) -> None:
    import_file(app, synth_file, workers=1)
    source = [json.loads(line) for line in synth_file.read_text(encoding="utf-8").splitlines()]
    by_order = {(r["merchant"], r["order_ref"]): r for r in source}
    for view in waybills.list_waybills(app, 50):
        row = by_order[(view["merchant"], view["order_ref"])]
        opened = reveal_all(app, view["tracking_number"])
        assert opened["recipient.name"] == row["recipient"]["name"]
        assert row["recipient"]["address"].endswith(opened["recipient.address"])
        digits = "".join(c for c in row["recipient"]["phone"] if c.isdigit())
        assert digits.endswith(opened["recipient.phone"].lstrip("0"))


def test_masked_view_never_contains_plaintext(app: App, synth_file: Path) -> None:
    import_file(app, synth_file, workers=1)
    views = {(v["merchant"], v["order_ref"]): v for v in waybills.list_waybills(app, 10_000)}
    for row in seeded_rows(synth_file):
        text = json.dumps(views[(row["merchant"], row["order_ref"])], ensure_ascii=False)
        assert scan_text(text, row_pii(row)) == []
    phones = {n for n in seeded_pii(synth_file) if n.isdigit()}
    assert scan_text(json.dumps(list(views.values())), phones) == []
    view = waybills.list_waybills(app, 1)[0]
    assert set(view) >= {
        "tracking_number",
        "status",
        "sender",
        "recipient",
        "origin_adcode",
        "destination_adcode",
        "origin_station",
        "destination_station",
    }
    assert set(view["recipient"]) == {"name", "phone", "address"}


def test_import_is_idempotent(app: App, synth_file: Path) -> None:
    first = import_file(app, synth_file, workers=1)
    second = import_file(app, synth_file, workers=1)
    assert first.imported == 600
    assert (second.imported, second.duplicates) == (0, 600)
    assert app.store.count() == 600
    assert app.store.counters_used("WG") == 600  # no tracking numbers burnt on duplicates


def test_a_failed_import_keeps_whole_committed_transactions_and_a_rerun_completes(
    app: App, synth_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transactions span several chunks (commit_rows): an error in the fifth chunk
    rolls back the open transaction only, and the rerun stores exactly the rest."""
    real_insert = app.store.insert_rows
    calls = {"n": 0}

    def failing_insert(conn, rows):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk on fire")
        return real_insert(conn, rows)

    monkeypatch.setattr(app.store, "insert_rows", failing_insert)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_file(app, synth_file, workers=2, chunk_rows=100, commit_rows=300)
    assert app.store.count() == 300  # chunks 1-3 committed; chunk 4 rolled back with 5
    monkeypatch.setattr(app.store, "insert_rows", real_insert)
    rerun = import_file(app, synth_file, workers=1, chunk_rows=100, commit_rows=300)
    assert (rerun.imported, rerun.duplicates) == (300, 300)
    assert app.store.count() == 600
    assert sorted(reveal_all(app, n)["sender.name"] for n in all_numbers(app)) == sorted(
        row["sender"]["name"] for row in map(json.loads, synth_file.read_text().splitlines())
    )


def test_bad_rows_are_reported_and_good_rows_stored(app: App, tmp_path: Path) -> None:
    good = json.loads(_one_row(tmp_path))
    bad_phone = dict(good, order_ref="BAD-1", recipient=dict(good["recipient"], phone="12345"))
    bad_weight = dict(good, order_ref="BAD-2", parcel={"weight_g": -5, "category": "食品"})
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in [good, bad_phone, bad_weight])
        + "\n{not json\n",
        encoding="utf-8",
    )
    report = import_file(app, path, workers=1)
    assert (report.imported, report.rejected) == (1, 3)
    assert report.errors_file is not None
    lines = report.errors_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row,field,reason"
    assert lines[1].startswith("2,recipient.phone,")
    assert lines[2].startswith("3,parcel.weight_g,")
    assert lines[3].startswith("4,")
    assert "12345" not in report.errors_file.read_text(encoding="utf-8")


def test_strict_import_is_all_or_nothing(app: App, tmp_path: Path) -> None:
    good = json.loads(_one_row(tmp_path))
    bad = dict(good, order_ref="BAD-1", sender=dict(good["sender"], name="X1"))
    path = tmp_path / "strict.jsonl"
    path.write_text(
        json.dumps(good, ensure_ascii=False) + "\n" + json.dumps(bad) + "\n", encoding="utf-8"
    )
    with pytest.raises(StrictImportFailed) as info:
        import_file(app, path, strict=True, workers=1)
    assert info.value.report.rejected == 1
    assert app.store.count() == 0
    assert app.store.counters_used("WG") == 0


def test_rotate_then_decrypt_all(app: App, synth_file: Path) -> None:
    import_file(app, synth_file, workers=1)
    before = {n: reveal_all(app, n) for n in all_numbers(app)}
    report = keys.rotate(app, batch=128)
    assert report.rewrapped == 600 and report.retired == ["kek-1"]
    assert app.vault.kek_ids() == [report.new_kek]
    assert app.store.kek_states() == {"kek-1": "retired", report.new_kek: "active"}
    after = {n: reveal_all(app, n) for n in all_numbers(app)}
    assert after == before
    keyring = json.loads(app.settings.keyring_path.read_text())
    assert list(keyring["keks"]) == [report.new_kek]


def test_import_after_rotation_uses_new_key(app: App, synth_file: Path, tmp_path: Path) -> None:
    keys.rotate(app)
    import_file(app, synth_file, workers=1)
    assert set(app.store.kek_states().values()) == {"active", "retired"}
    number = all_numbers(app)[0]
    assert reveal_all(app, number)


def test_swapped_ciphertexts_in_the_database_fail(app: App, synth_file: Path) -> None:
    import_file(app, synth_file, workers=1)
    a, b = all_numbers(app)[:2]
    select_ct = text("SELECT ct_recipient_phone FROM waybills WHERE tracking_number = :n")
    update_ct = text("UPDATE waybills SET ct_recipient_phone = :ct WHERE tracking_number = :n")
    with app.engine.begin() as conn:  # an insider with database access swaps two cells
        ct_a = conn.execute(select_ct, {"n": a}).scalar_one()
        ct_b = conn.execute(select_ct, {"n": b}).scalar_one()
        conn.execute(update_ct, {"ct": ct_b, "n": a})
        conn.execute(update_ct, {"ct": ct_a, "n": b})
    for number in (a, b):
        with pytest.raises(DecryptionError):
            reveal_all(app, number)


def test_shred_destroys_key_and_leaves_no_trace(
    app: App, synth_file: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    import_file(app, synth_file, workers=1)
    target, other = all_numbers(app)[:2]
    sealed = app.store.sealed(target)
    assert sealed is not None and sealed.wrapped_dek is not None
    secrets_of_target = [sealed.wrapped_dek, *sealed.ciphertexts.values()]
    plain = reveal_all(app, target)
    report = shredding.shred(app, [target, "WG0000000000000"])
    assert report.shredded == [target] and report.not_found == ["WG0000000000000"]
    blob = b"".join(p.read_bytes() for p in storage_files(app, request))
    for value in plain.values():
        assert value.encode("utf-8") not in blob
    if backend == "sqlite":  # secure_delete + WAL truncation: not even the ciphertext is left
        for secret in secrets_of_target:
            assert secret not in blob
    # Final against any copy (PostgreSQL dead tuples, WAL, backups): once the key that
    # wrapped the destroyed data key is rotated away, no key in the keyring opens it.
    keys.rotate(app)
    with pytest.raises(KeyringError):
        app.vault.rewrap(sealed.uid, sealed.kek_id, sealed.wrapped_dek, app.vault.active_kek_id)
    view = waybills.show(app, target)
    assert view["shredded"] is True and view["status"] == "created"
    assert view["destination_adcode"]  # routing data stays
    with pytest.raises(DecryptionError):
        reveal_all(app, target)
    assert reveal_all(app, other)  # neighbours unharmed
    assert shredding.shred(app, [target]).already_shredded == [target]


def test_lifecycle_events(app: App, synth_file: Path) -> None:
    from waybillguard.domain.lifecycle import IllegalTransition

    import_file(app, synth_file, workers=1)
    a, b = all_numbers(app)[:2]
    for status in ("picked_up", "in_transit", "in_transit", "out_for_delivery", "delivered"):
        waybills.record_event(app, a, status)
    view = waybills.show(app, a)
    assert view["status"] == "delivered"
    assert [e["status"] for e in view["events"]] == [
        "created",
        "picked_up",
        "in_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    waybills.record_event(app, b, "cancelled")
    with pytest.raises(IllegalTransition):
        waybills.record_event(app, b, "delivered")
    with pytest.raises(IllegalTransition):
        waybills.record_event(app, a, "returned")
    with pytest.raises(waybills.WaybillNotFound):
        waybills.record_event(app, "WG0000000000000", "picked_up")


def test_destination_station_follows_coverage(app: App, synth_file: Path) -> None:
    import_file(app, synth_file, workers=1)
    view = waybills.list_waybills(app, 1)[0]
    assert view["destination_station"] is None
    with app.store.write() as conn:  # a station created after the import
        app.store.set_coverage(conn, "ST-001", [view["destination_adcode"]])
    assert waybills.show(app, view["tracking_number"])["destination_station"] == "ST-001"


def _one_row(tmp_path: Path) -> str:
    path = tmp_path / "one.jsonl"
    write_synth(path, 1, seed=11)
    return path.read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_binary_values_are_stored_as_blobs_whatever_the_writer_binds(
    app: App, synth_file: Path, workers: int
) -> None:
    """The importer hands the writer bytearrays (cheaper to bind on SQLite): the
    stored values are the same binary type as any other insert's, and read back
    as bytes that decrypt."""
    import_file(app, synth_file, workers=workers, chunk_rows=100)
    columns = [
        "uid",
        "wrapped_dek",
        *(f"ct_{r}_{a}" for r in ("sender", "recipient") for a in ("name", "phone", "address")),
        "bi_sender_phone",
        "bi_recipient_phone",
        "bi_sender_name_phone",
        "bi_recipient_name_phone",
    ]
    with app.store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            types = conn.execute(
                text("SELECT " + ", ".join(f"typeof({c})" for c in columns) + " FROM waybills")
            ).all()
            assert {t for row in types for t in row} == {"blob"}
        else:
            types = conn.execute(
                text(
                    "SELECT "
                    + ", ".join(f"pg_typeof({c})::text" for c in columns)
                    + " FROM waybills LIMIT 1"
                )
            ).one()
            assert set(types) == {"bytea"}
    number = all_numbers(app)[0]
    row = app.store.sealed(number)
    assert row is not None and type(row.uid) is bytes and type(row.wrapped_dek) is bytes
    assert set(reveal_all(app, number)) == ALL_FIELDS
