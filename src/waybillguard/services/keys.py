"""Key rotation: re-wrap every data key under a new key-encryption key.

No downtime: readers keep working throughout (both keys are in the keyring
while wraps move); importers that sealed under the old key re-wrap their batch
inside their own insert transaction once the old key is `retiring`. The old
key is destroyed only after a locked count finds no wrap left under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App

BATCH = 2000


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_kek: str
    retired: list[str]
    rewrapped: int


def rotate(app: App, batch: int = BATCH, actor: Actor | None = None) -> RotationReport:
    store, vault = app.store, app.vault
    new_kek = vault.create_kek()
    old_keks = [k for k in vault.kek_ids() if k != new_kek]
    with store.write() as conn:
        store.register_kek(conn, new_kek, "active")
        for kek in old_keks:
            store.register_kek(conn, kek, "retiring")
    rewrapped = 0
    after_id = 0
    while True:
        with store.write() as conn:
            rows = store.wraps_under(conn, old_keks, after_id, batch)
            if not rows:
                for kek in old_keks:
                    store.lock_kek(conn, kek)
                if store.wraps_count(conn, old_keks) == 0:
                    for kek in old_keks:
                        store.set_kek_state(conn, kek, "retired")
                    break
                after_id = 0  # stragglers written meanwhile: walk again
                continue
            after_id = rows[-1].id
            moved = [
                (r.id, r.kek_id, new_kek, vault.rewrap(r.uid, r.kek_id, r.wrapped_dek, new_kek))
                for r in rows
            ]
            store.update_wraps(conn, moved)
            rewrapped += len(moved)
    # Only now, with every wrap moved and committed, is the old key destroyed.
    for kek in old_keks:
        vault.retire_kek(kek)
    emit(
        app,
        actor or Actor.local_operator(),
        "key.rotate",
        detail={"new_kek": new_kek, "retired": ",".join(old_keks), "rewrapped": rewrapped},
    )
    return RotationReport(new_kek, old_keks, rewrapped)
