"""Key rotation: re-wrap every data key under a new key-encryption key.

Every table holding wrapped data keys moves: waybills and couriers' registered
phones. No downtime: readers keep working throughout (both keys are in the keyring
while wraps move); importers that sealed under the old key re-wrap their batch
inside their own insert transaction once the old key is `retiring`. The old
key is destroyed only after a locked count finds no wrap left under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from waybillguard.adapters.db.telephony_store import TelephonyStore
from waybillguard.adapters.db.waybill_store import KekNotActive
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App

BATCH = 2000


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_kek: str
    retired: list[str]
    rewrapped: int


Wrap = tuple[int, bytes, str, bytes]  # (row id, uid, kek id, wrapped data key)


@dataclass(frozen=True, slots=True)
class _Holder:
    """A table holding data keys wrapped under a KEK: waybills, couriers' phones."""

    under: Callable[[Connection, list[str], int, int], list[Wrap]]
    count: Callable[[Connection, list[str]], int]
    update: Callable[[Connection, list[tuple[int, str, str, bytes]]], None]


def _holders(app: App) -> list[_Holder]:
    store, phones = app.store, TelephonyStore(app.engine)

    def waybill_wraps(conn: Connection, keks: list[str], after: int, limit: int) -> list[Wrap]:
        return [
            (r.id, r.uid, r.kek_id, r.wrapped_dek)
            for r in store.wraps_under(conn, keks, after, limit)
        ]

    return [
        _Holder(waybill_wraps, store.wraps_count, store.update_wraps),
        _Holder(
            phones.courier_wraps_under, phones.courier_wraps_count, phones.update_courier_wraps
        ),
    ]


def rotate(app: App, batch: int = BATCH, actor: Actor | None = None) -> RotationReport:
    store, vault = app.store, app.vault
    new_kek = vault.create_kek()
    old_keks = [k for k in vault.kek_ids() if k != new_kek]
    with store.write() as conn:
        store.register_kek(conn, new_kek, "active")
        for kek in old_keks:
            store.register_kek(conn, kek, "retiring")
    holders = _holders(app)
    rewrapped = 0
    after = [0] * len(holders)
    while True:
        with store.write() as conn:
            moved_any = False
            for n, holder in enumerate(holders):
                rows = holder.under(conn, old_keks, after[n], batch)
                if not rows:
                    continue
                moved_any = True
                after[n] = rows[-1][0]
                moved = [
                    (i, kek, new_kek, vault.rewrap(uid, kek, wrapped, new_kek))
                    for i, uid, kek, wrapped in rows
                ]
                holder.update(conn, moved)
                rewrapped += len(moved)
            if moved_any:
                continue
            for kek in old_keks:
                store.lock_kek(conn, kek)
            if sum(holder.count(conn, old_keks) for holder in holders) == 0:
                for kek in old_keks:
                    store.set_kek_state(conn, kek, "retired")
                break
            after = [0] * len(holders)  # stragglers written meanwhile: walk again
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


def kek_active(app: App, conn: Connection, kek_id: str) -> bool:
    """Whether a data key wrapped under `kek_id` may be stored in this transaction. On
    PostgreSQL this holds a share lock on the key's row, so a rotation's final count
    waits for the caller's commit and then moves what it stored."""
    try:
        app.store.require_active_keks(conn, [kek_id])
    except KekNotActive:
        return False
    return True
