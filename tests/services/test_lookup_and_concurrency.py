"""Blind-index lookup, and the store under concurrent importers and key rotation."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI
from waybillguard.config import DATABASE_URL_ENV, HOME_ENV, PREFIX_ENV
from waybillguard.domain.errors import FieldError
from waybillguard.services import keys, lookup, waybills
from waybillguard.services.app import App
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth
from waybillguard.vault import RevealGrant, SealedRecord


def _rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lookup_by_phone_and_name(app: App, tmp_path: Path) -> None:
    data = tmp_path / "o.jsonl"
    write_synth(data, 300, seed=21)
    import_file(app, data, workers=1)
    row = _rows(data)[17]
    phone, name = row["recipient"]["phone"], row["recipient"]["name"]
    found = lookup.by_phone(app, phone)
    assert row["order_ref"] in {w["order_ref"] for w in found}
    assert all(phone not in json.dumps(w, ensure_ascii=False) for w in found)
    written_differently = "+86 " + phone[:3] + " " + phone[3:7] + " " + phone[7:]
    assert {w["order_ref"] for w in lookup.by_phone(app, written_differently)} == {
        w["order_ref"] for w in found
    }
    with_name = lookup.by_phone(app, phone, name)
    assert row["order_ref"] in {w["order_ref"] for w in with_name}
    wrong_name = "欧阳某某" if name != "欧阳某某" else "司马某某"
    assert lookup.by_phone(app, phone, wrong_name) == []
    with pytest.raises(FieldError) as info:
        lookup.by_phone(app, "12345")
    assert "12345" not in str(info.value)


def _env(app: App) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILLGUARD_")}
    env[HOME_ENV] = str(app.settings.home)
    env[PREFIX_ENV] = app.settings.tracking_prefix
    if not app.settings.uses_embedded_database:
        env[DATABASE_URL_ENV] = app.settings.database_url
    return env


def test_parallel_importers_never_collide(app: App, tmp_path: Path) -> None:
    files = []
    for seed in (31, 32, 33):
        path = tmp_path / f"part{seed}.jsonl"
        write_synth(path, 4000, seed=seed)
        files.append(path)
    procs = [
        subprocess.Popen(
            [*CLI, "import", str(f), "--workers", "1", "--json"],
            env=_env(app),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert [r["imported"] for r in reports] == [4000, 4000, 4000]
    numbers = [w["tracking_number"] for w in waybills.list_waybills(app, 10_000)]
    numbers += [w["tracking_number"] for w in waybills.list_waybills(app, 10_000, after_id=10_000)]
    assert len(numbers) == len(set(numbers)) == 12_000
    assert app.store.counters_used("WG") == 12_000
    assert all(app.vault.verify_tracking_number(n) for n in numbers[::50])


def test_rotation_during_import_loses_nothing(app: App, tmp_path: Path) -> None:
    data = tmp_path / "big.jsonl"
    write_synth(data, 24_000, seed=41)
    proc = subprocess.Popen(
        [*CLI, "import", str(data), "--workers", "2", "--json"],
        env=_env(app),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while app.store.count() < 2000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "import finished before rotation started"
    report = keys.rotate(app, batch=500)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert json.loads(out)["imported"] == 24_000
    assert report.retired == ["kek-1"]
    assert app.store.kek_states()["kek-1"] == "retired"
    # Every waybill, whether written before, during or after the rotation, still opens.
    after = 0
    while True:
        page = app.store.page(1000, after)
        if not page:
            break
        for w in page[::97]:
            sealed = app.store.sealed(w.tracking_number)
            assert sealed is not None and sealed.kek_id == report.new_kek
            record = SealedRecord(
                w.tracking_number, sealed.uid, sealed.kek_id, sealed.wrapped_dek, sealed.ciphertexts
            )
            grant = RevealGrant(w.tracking_number, frozenset({"recipient.phone"}), "test")
            assert app.vault.open_fields(record, grant)["recipient.phone"]
        after = page[-1].id
    assert app.store.count() == 24_000
    with app.store.read() as conn:
        assert app.store.wraps_count(conn, ["kek-1"]) == 0
