"""Import: file -> rows -> validate -> seal -> number -> store, in constant memory.

Worker processes validate and seal chunks of rows (the CPU-heavy part); the
parent process owns the database: for each chunk it drops orders already
stored, reserves exactly as many tracking counters as it stores, issues the
numbers and inserts everything in one transaction. A chunk is stored whole or
not at all, so a killed import leaves no half-stored waybill and a rerun picks
up where it stopped (orders already stored are recognised by merchant +
order_ref and skipped).
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from waybillguard.adapters.db.waybill_store import KekNotActive, NewWaybill
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import AddressResolver
from waybillguard.domain.errors import FieldError
from waybillguard.domain.waybill import Order, OrderValidator
from waybillguard.services.app import App
from waybillguard.services.readers import RawRow, iter_rows
from waybillguard.vault import Vault

CHUNK_ROWS = 2000
Progress = Callable[[int], None]
# (row number, field, reason) — never the value.
Rejection = tuple[int, str, str]
_SealedTuple = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int
    rejected: int
    duplicates: int
    rows: int
    errors_file: Path | None

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "rows": self.rows,
            "errors_file": str(self.errors_file) if self.errors_file else None,
        }


class StrictImportFailed(RuntimeError):
    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"--strict: {report.rejected} row(s) rejected; nothing was imported"
        )
        self.report = report


# -- sealing (runs in worker processes) -----------------------------------------------
class Sealer:
    """Validates rows and seals the valid ones. One per process."""

    def __init__(self, keyring_path: Path) -> None:
        self.vault = Vault.from_keyring_file(keyring_path)
        self.validator = OrderValidator(AddressResolver(load_divisions()))

    def seal_order(self, order: Order) -> NewWaybill:
        sealed = self.vault.seal(order.pii())
        s, r = order.sender, order.recipient
        masks = {}
        for role, party in (("sender", s), ("recipient", r)):
            for attr, value in party.masked().items():
                masks[f"{role}.{attr}"] = value
        vault = self.vault
        return NewWaybill(
            uid=sealed.uid,
            merchant=order.merchant,
            order_ref=order.order_ref,
            weight_g=order.parcel.weight_g,
            category=order.parcel.category,
            origin_adcode=s.address.adcode,
            destination_adcode=r.address.adcode,
            kek_id=sealed.kek_id,
            wrapped_dek=sealed.wrapped_dek,
            ciphertexts=sealed.ciphertexts,
            masks=masks,
            blind_indexes=(
                vault.index_phone(s.phone.e164),
                vault.index_phone(r.phone.e164),
                vault.index_name_phone(s.name.value, s.phone.e164),
                vault.index_name_phone(r.name.value, r.phone.e164),
            ),
        )

    def seal_rows(self, rows: Sequence[RawRow]) -> tuple[list[tuple[int, NewWaybill]], list[Rejection]]:
        sealed: list[tuple[int, NewWaybill]] = []
        rejected: list[Rejection] = []
        for raw in rows:
            if raw.error is not None:
                rejected.append((raw.row, raw.error[0], raw.error[1]))
                continue
            try:
                order = self.validator.validate(raw.fields)
            except FieldError as exc:
                rejected.append((raw.row, exc.field, exc.reason))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the import or leak data
                rejected.append((raw.row, "row", f"internal validation error ({type(exc).__name__})"))
                continue
            sealed.append((raw.row, self.seal_order(order)))
        return sealed, rejected


_SEALER: Sealer | None = None


def _init_worker(keyring_path: str) -> None:
    global _SEALER  # noqa: PLW0603 - one sealer per worker process
    _SEALER = Sealer(Path(keyring_path))


def _seal_in_worker(rows: list[RawRow]) -> tuple[list[tuple[int, NewWaybill]], list[Rejection]]:
    assert _SEALER is not None
    return _SEALER.seal_rows(rows)


# -- orchestration (parent process) ---------------------------------------------------
def _chunks(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    chunk: list[RawRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sealed_chunks(
    keyring_path: Path, chunks: Iterator[list[RawRow]], workers: int
) -> Iterator[tuple[int, tuple[list[tuple[int, NewWaybill]], list[Rejection]]]]:
    """Seal chunks in order, with at most 2 chunks per worker in flight (bounded memory)."""
    if workers <= 1:
        sealer = Sealer(keyring_path)
        for chunk in chunks:
            yield len(chunk), sealer.seal_rows(chunk)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(keyring_path),)) as pool:
        pending: deque[tuple[int, Any]] = deque()
        for chunk in chunks:
            pending.append((len(chunk), pool.apply_async(_seal_in_worker, (chunk,))))
            if len(pending) >= workers * 2:
                n, result = pending.popleft()
                yield n, result.get()
        while pending:
            n, result = pending.popleft()
            yield n, result.get()


class _ErrorFile:
    """Rejections as CSV (row, field, reason), created only when there is one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None
        self._writer: Any = None

    def write(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        if self._writer is None:
            self._handle = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["row", "field", "reason"])
        self._writer.writerows(rejections)

    @property
    def used(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _store_chunk(app: App, conn: Connection, sealed: list[tuple[int, NewWaybill]]) -> tuple[int, int]:
    """Store one sealed chunk inside `conn`'s transaction. Returns (stored, duplicates)."""
    store, vault = app.store, app.vault
    keys = [(w.merchant, w.order_ref) for _, w in sealed]
    existing = store.existing_orders(conn, keys)
    fresh: list[NewWaybill] = []
    seen: set[tuple[str, str]] = set()
    for key, (_, waybill) in zip(keys, sealed, strict=True):
        if key in existing or key in seen:
            continue
        seen.add(key)
        fresh.append(waybill)
    duplicates = len(sealed) - len(fresh)
    if not fresh:
        return 0, duplicates
    try:
        store.require_active_keks(conn, [w.kek_id for w in fresh])
    except KekNotActive:
        fresh = _rewrap_to_active(app, conn, fresh)
    counters = store.reserve_counters(conn, app.settings.tracking_prefix, len(fresh))
    numbers = vault.issue_tracking_numbers(app.settings.tracking_prefix, counters)
    stored = store.insert_batch(conn, fresh, numbers)
    return stored, duplicates + (len(fresh) - stored)


def _rewrap_to_active(app: App, conn: Connection, batch: list[NewWaybill]) -> list[NewWaybill]:
    """A rotation started while this batch was sealed: move its keys to the new KEK."""
    vault = app.vault
    states = app.store.kek_states()
    active = next((k for k, s in states.items() if s == "active"), vault.active_kek_id)
    moved = [
        replace(w, kek_id=active, wrapped_dek=vault.rewrap(w.uid, w.kek_id, w.wrapped_dek, active))
        if w.kek_id != active
        else w
        for w in batch
    ]
    app.store.require_active_keks(conn, [w.kek_id for w in moved])
    return moved


def import_file(
    app: App,
    path: Path,
    *,
    strict: bool = False,
    errors_path: Path | None = None,
    workers: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> ImportReport:
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    errors = _ErrorFile(errors_path or path.with_name(path.name + ".errors.csv"))
    imported = rejected = duplicates = rows = 0
    app.vault  # noqa: B018 - load the keyring before forking workers
    try:
        with ExitStack() as stack:
            strict_conn = stack.enter_context(app.store.write()) if strict else None
            for n, (sealed, rejections) in _sealed_chunks(
                app.settings.keyring_path, _chunks(iter_rows(path), chunk_rows), workers
            ):
                rows += n
                rejected += len(rejections)
                errors.write(rejections)
                if strict_conn is not None:
                    if not rejected:
                        stored, dups = _store_chunk(app, strict_conn, sealed)
                        imported += stored
                        duplicates += dups
                else:
                    with app.store.write() as conn:
                        stored, dups = _store_chunk(app, conn, sealed)
                    imported += stored
                    duplicates += dups
                if progress is not None:
                    progress(n)
            if strict_conn is not None and rejected:
                # Raising inside the transaction's context rolls everything back.
                report = ImportReport(0, rejected, 0, rows, errors.path)
                raise StrictImportFailed(report)
    finally:
        errors.close()
    return ImportReport(imported, rejected, duplicates, rows, errors.path if errors.used else None)

