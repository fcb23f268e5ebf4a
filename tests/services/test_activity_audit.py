"""Every use case of the vault core leaves an audit event, and none carries PII."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import text

from tests.conftest import scan_bytes, scan_text, seeded_pii, seeded_rows
from waybillguard.services import audit, keys, lookup, shredding, waybills
from waybillguard.services.app import App
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth


def test_core_operations_are_audited_without_pii(app: App, tmp_path: Path) -> None:
    data = tmp_path / "o.jsonl"
    write_synth(data, 200, seed=51)
    import_file(app, data, workers=1)
    row = seeded_rows(data)[5]
    page = waybills.list_waybills(app, 3)
    first, second = page[0]["tracking_number"], page[1]["tracking_number"]
    waybills.show(app, first)
    waybills.record_event(app, first, "picked_up")
    found = lookup.by_phone(app, row["recipient"]["phone"], row["recipient"]["name"])
    shredding.shred(app, [second])
    keys.rotate(app)

    actions_on_first = [e["action"] for e in audit.by_waybill(app, first)]
    assert actions_on_first.count("waybill.list") == 1
    assert "waybill.show" in actions_on_first and "event" in actions_on_first
    assert "shred" in [e["action"] for e in audit.by_waybill(app, second)]
    searched = found[0]["tracking_number"]
    assert "search" in [e["action"] for e in audit.by_waybill(app, searched)]
    everything = audit.by_actor(app, None)
    assert {"import", "waybill.list", "waybill.show", "event", "search", "shred", "key.rotate"} <= {
        e["action"] for e in everything
    }
    assert all(e["actor"].startswith("os:") for e in everything)

    # No seeded personal value in any audit_ table or in the SIEM export.
    needles = seeded_pii(data)
    with app.engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'audit_%'"
                    if app.settings.uses_embedded_database
                    else "SELECT tablename FROM pg_tables WHERE tablename LIKE 'audit_%'"
                )
            )
        ]
        assert len(tables) >= 4
        for table in tables:
            for record in conn.execute(text(f"SELECT * FROM {table}")):
                for value in record:
                    blob = value if isinstance(value, bytes | memoryview) else str(value).encode()
                    assert scan_bytes(bytes(blob), needles) == []
    audit.seal(app)
    out = io.BytesIO()
    assert audit.export_jsonl(app, out) >= 7
    assert scan_text(out.getvalue().decode("utf-8"), needles) == []
    assert audit.verify(app, None).ok
