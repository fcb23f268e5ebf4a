"""Import: file -> rows -> validate -> number -> seal -> store, in constant memory.

The parent process reads rows, drops orders already stored (merchant +
order_ref), reserves one tracking counter per remaining row and hands the chunk
to a worker process. Workers validate, number and seal (the CPU-heavy part) and
return rows ready to insert; the parent inserts each chunk in one transaction.
A chunk is stored whole or not at all, so a killed import leaves no half-stored
waybill and a rerun picks up where it stopped.

Counters reserved for rows that are then rejected, or for chunks in flight when
the process is killed, are not reused: tracking numbers stay unique at the cost
of a few numbers of the prefix's 10^7 (see docs/tracking-numbers.md).
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from waybillguard.adapters.db.tables import KEK_POS, UID_POS, WRAP_POS
from waybillguard.adapters.db.waybill_store import KekNotActive, NewWaybillRow
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import AddressResolver
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import PII_FIELDS
from waybillguard.domain.waybill import Order, OrderValidator, order_key
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.readers import RawRow, iter_rows
from waybillguard.vault import Vault

CHUNK_ROWS = 2000
DEFAULT_MERCHANT = "default"
Progress = Callable[[int], None]
# (row number, field, reason) — never the value.
Rejection = tuple[int, str, str]
SealedChunk = tuple[list[NewWaybillRow], list[Rejection]]


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
        super().__init__(f"--strict: {report.rejected} row(s) rejected; nothing was imported")
        self.report = report


# -- sealing (runs in worker processes) -----------------------------------------------
class Sealer:
    """Validates, numbers and seals rows. One per process."""

    def __init__(self, keyring_path: Path, prefix: str) -> None:
        self.vault = Vault.from_keyring_file(keyring_path)
        self.validator = OrderValidator(AddressResolver(load_divisions()))
        self.prefix = prefix

    def row_for(self, order: Order, tracking_number: str) -> NewWaybillRow:
        sealed = self.vault.seal(order.pii())
        s, r = order.sender, order.recipient
        sm, rm = s.masked(), r.masked()
        index_phone, index_name_phone = self.vault.index_phone, self.vault.index_name_phone
        cts = sealed.ciphertexts
        return (
            sealed.uid,
            tracking_number,
            order.merchant,
            order.order_ref,
            order.parcel.weight_g,
            order.parcel.category,
            s.address.adcode,
            r.address.adcode,
            sealed.kek_id,
            sealed.wrapped_dek,
            *(cts[f] for f in PII_FIELDS),
            sm["name"],
            sm["phone"],
            sm["address"],
            rm["name"],
            rm["phone"],
            rm["address"],
            index_phone(s.phone.e164),
            index_phone(r.phone.e164),
            index_name_phone(s.name.value, s.phone.e164),
            index_name_phone(r.name.value, r.phone.e164),
        )

    def seal_rows(self, rows: Sequence[RawRow], first_counter: int) -> SealedChunk:
        """Row i of the chunk owns counter first_counter + i (a rejected row wastes its own)."""
        valid: list[tuple[int, Order]] = []
        rejected: list[Rejection] = []
        for i, raw in enumerate(rows):
            if raw.error is not None:
                rejected.append((raw.row, raw.error[0], raw.error[1]))
                continue
            try:
                valid.append((first_counter + i, self.validator.validate(raw.fields)))
            except FieldError as exc:
                rejected.append((raw.row, exc.field, exc.reason))
            except Exception as exc:
                rejected.append((raw.row, "row", f"internal error ({type(exc).__name__})"))
        numbers = self.vault.issue_tracking_numbers(self.prefix, [c for c, _ in valid])
        sealed = [self.row_for(order, n) for (_, order), n in zip(valid, numbers, strict=True)]
        return sealed, rejected


_SEALER: Sealer | None = None


def _init_worker(keyring_path: str, prefix: str) -> None:
    global _SEALER
    _SEALER = Sealer(Path(keyring_path), prefix)


def _seal_in_worker(rows: list[RawRow], first_counter: int) -> SealedChunk:
    assert _SEALER is not None
    return _SEALER.seal_rows(rows, first_counter)


# -- orchestration (parent process) ---------------------------------------------------
@dataclass(slots=True)
class _Work:
    rows: list[RawRow]
    read: int  # rows read from the file for this chunk, duplicates included
    duplicates: int
    first_counter: int


def _chunks(rows: Iterable[RawRow], size: int) -> Iterator[list[RawRow]]:
    chunk: list[RawRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Importer:
    def __init__(self, app: App, strict_conn: Connection | None, merchant: str) -> None:
        self.app = app
        self.strict_conn = strict_conn
        self.merchant = merchant

    def _tx(self) -> AbstractContextManager[Connection]:
        if self.strict_conn is not None:
            return nullcontext(self.strict_conn)
        return self.app.store.write()

    def prepare(self, chunk: list[RawRow]) -> _Work:
        """Drop orders already stored, then reserve one counter per remaining row."""
        store = self.app.store
        for raw in chunk:
            if raw.error is None and not raw.fields.get("merchant", "").strip():
                raw.fields["merchant"] = self.merchant
        keys = [order_key(r.fields) if r.error is None else None for r in chunk]
        with self._tx() as conn:
            existing = store.existing_orders(conn, [k for k in keys if k is not None])
            todo: list[RawRow] = []
            seen: set[tuple[str, str]] = set()
            for raw, key in zip(chunk, keys, strict=True):
                if key is not None and (key in existing or key in seen):
                    continue
                if key is not None:
                    seen.add(key)
                todo.append(raw)
            counters = store.reserve_counters(conn, self.app.settings.tracking_prefix, len(todo))
        return _Work(todo, len(chunk), len(chunk) - len(todo), counters.start)

    def store(self, sealed: list[NewWaybillRow]) -> tuple[int, int]:
        """Insert one sealed chunk atomically. Returns (stored, skipped as duplicates)."""
        if not sealed:
            return 0, 0
        store = self.app.store
        with self._tx() as conn:
            try:
                store.require_active_keks(conn, {row[KEK_POS] for row in sealed})
            except KekNotActive:
                sealed = self._rewrap_to_active(conn, sealed)
            stored = store.insert_rows(conn, sealed)
        return stored, len(sealed) - stored

    def _rewrap_to_active(self, conn: Connection, rows: list[NewWaybillRow]) -> list[NewWaybillRow]:
        """A rotation began while this chunk was sealed: move its keys to the new KEK."""
        vault, store = self.app.vault, self.app.store
        active = next(
            (k for k, s in store.kek_states().items() if s == "active"), vault.active_kek_id
        )
        moved = []
        for row in rows:
            if row[KEK_POS] != active:
                wrapped = vault.rewrap(row[UID_POS], row[KEK_POS], row[WRAP_POS], active)
                row = (*row[:KEK_POS], active, wrapped, *row[WRAP_POS + 1 :])
            moved.append(row)
        store.require_active_keks(conn, [active])
        return moved


def _sealed(
    app: App, importer: _Importer, chunks: Iterator[list[RawRow]], workers: int
) -> Iterator[tuple[_Work, SealedChunk]]:
    """Seal chunks in order, at most 2 chunks per worker in flight (bounded memory)."""
    settings = app.settings
    if workers <= 1:
        sealer = Sealer(settings.keyring_path, settings.tracking_prefix)
        for chunk in chunks:
            work = importer.prepare(chunk)
            yield work, sealer.seal_rows(work.rows, work.first_counter)
        return
    ctx = multiprocessing.get_context("fork")
    initargs = (str(settings.keyring_path), settings.tracking_prefix)
    with ctx.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        pending: deque[tuple[_Work, Any]] = deque()
        for chunk in chunks:
            work = importer.prepare(chunk)
            pending.append(
                (work, pool.apply_async(_seal_in_worker, (work.rows, work.first_counter)))
            )
            if len(pending) >= workers * 2:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


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


def import_file(
    app: App,
    path: Path,
    *,
    strict: bool = False,
    errors_path: Path | None = None,
    workers: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    merchant: str = DEFAULT_MERCHANT,
    progress: Progress | None = None,
    actor: Actor | None = None,
) -> ImportReport:
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    errors = _ErrorFile(errors_path or path.with_name(path.name + ".errors.csv"))
    imported = rejected = duplicates = rows = 0
    rows_iter = iter_rows(path)  # whole-file problems surface before anything is stored
    app.vault  # noqa: B018 - load the keyring before forking workers
    try:
        with ExitStack() as stack:
            strict_conn = stack.enter_context(app.store.write()) if strict else None
            importer = _Importer(app, strict_conn, merchant)
            for work, (sealed, rejections) in _sealed(
                app, importer, _chunks(rows_iter, chunk_rows), workers
            ):
                rows += work.read
                rejected += len(rejections)
                errors.write(rejections)
                duplicates += work.duplicates
                if not (strict and rejected):
                    stored, skipped = importer.store(sealed)
                    imported += stored
                    duplicates += skipped
                if progress is not None:
                    progress(work.read)
            if strict and rejected:
                # Raising inside the transaction's context rolls everything back.
                raise StrictImportFailed(ImportReport(0, rejected, 0, rows, errors.path))
    finally:
        errors.close()
    emit(
        app,
        actor or Actor.local_operator(),
        "import",
        detail={
            "imported": imported,
            "rejected": rejected,
            "duplicates": duplicates,
            "rows": rows,
        },
    )
    return ImportReport(imported, rejected, duplicates, rows, errors.path if errors.used else None)
