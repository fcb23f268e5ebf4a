"""Crypto-shredding: destroy a waybill's data key so its personal data is gone.

Routing fields, status and history stay. On SQLite the freed bytes are zeroed
by `secure_delete` and the WAL is checkpointed and truncated, so no copy of the
key or ciphertexts remains in the database files.
"""

from __future__ import annotations

from dataclasses import dataclass

from waybillguard.domain.tracking import parse_tracking_number
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App


@dataclass(frozen=True, slots=True)
class ShredReport:
    shredded: list[str]
    already_shredded: list[str]
    not_found: list[str]


def shred(app: App, numbers: list[str], actor: Actor | None = None) -> ShredReport:
    shredded: list[str] = []
    already: list[str] = []
    missing: list[str] = []
    with app.store.write() as conn:
        for raw in numbers:
            parsed = parse_tracking_number(raw)
            number = str(parsed) if parsed else raw
            if parsed is None or app.store.current_status(conn, number) is None:
                missing.append(raw if parsed else "(malformed)")
            elif app.store.shred(conn, number):
                shredded.append(number)
            else:
                already.append(number)
    app.store.flush_to_main_file()
    emit(
        app,
        actor or Actor.local_operator(),
        "shred",
        waybills=shredded,
        detail={"shredded": len(shredded), "already": len(already), "not_found": len(missing)},
    )
    return ShredReport(shredded, already, missing)
