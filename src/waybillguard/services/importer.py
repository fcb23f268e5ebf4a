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
import gc
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from waybillguard.adapters.db.engine import SQLITE_PRAGMAS
from waybillguard.adapters.db.tables import KEK_POS, UID_POS, WRAP_POS
from waybillguard.adapters.db.waybill_store import KekNotActive, NewWaybillRow
from waybillguard.adapters.divisions import load_divisions
from waybillguard.domain.address import AddressResolver, mask_address
from waybillguard.domain.errors import FieldError
from waybillguard.domain.fields import ORDER_FIELDS, PII_FIELDS
from waybillguard.domain.person_name import mask_name
from waybillguard.domain.phone import mask_phone
from waybillguard.domain.waybill import Order, OrderValidator, order_key
from waybillguard.services.activity import Actor, emit
from waybillguard.services.app import App
from waybillguard.services.readers import RawRow, iter_rows
from waybillguard.vault import Vault

CHUNK_ROWS = 2000
# Rows per write transaction (several chunks; see _Group).
COMMIT_ROWS = 20_000
# SQLite page cache of the import's connection, KiB: the random-key indexes of a large
# table stay in memory instead of being re-read from the OS for every chunk. The
# engine's own size is restored when the import ends.
IMPORT_CACHE_KIB = 64 * 1024
SQLITE_CACHE_PRAGMA = next(p for p in SQLITE_PRAGMAS if "cache_size" in p)
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
# One row as the parent hands it to a worker: (row number, values in ORDER_FIELDS order)
# for a readable row, (row number, (field, reason)) for one the reader rejected. Plain
# tuples pickle at a fraction of the cost of RawRow objects.
WorkRow = tuple[int, tuple[str | None, ...] | tuple[str, str]]


class Sealer:
    """Validates, numbers and seals rows. One per process."""

    def __init__(self, keyring_path: Path, prefix: str) -> None:
        self.vault = Vault.from_keyring_file(keyring_path)
        self.validator = OrderValidator(AddressResolver(load_divisions()))
        self.prefix = prefix

    def row_for(self, order: Order, tracking_number: str) -> NewWaybillRow:
        """The row to insert. Its binary values are `bytearray`s: CPython 3.11's sqlite3
        binds those directly but sends every `bytes` value through its adapter lookup,
        which fails by formatting an AttributeError (~0.6 µs a value, 12 values a
        waybill, in the import's single writer). Both are stored as the same BLOB;
        psycopg sends both as bytea."""
        ba = bytearray
        vault = self.vault
        sealed = vault.seal(order.pii())
        s, r = order.sender, order.recipient
        s_name, s_phone, s_address = s.name, s.phone, s.address
        r_name, r_phone, r_address = r.name, r.phone, r.address
        s_e164, r_e164 = s_phone.e164, r_phone.e164
        cts = sealed.ciphertexts
        names = (s_name.value, r_name.value)
        parcel = order.parcel
        return (
            ba(sealed.uid),
            tracking_number,
            order.merchant,
            order.order_ref,
            parcel.weight_g,
            parcel.category,
            s_address.adcode,
            r_address.adcode,
            sealed.kek_id,
            ba(sealed.wrapped_dek),
            *[ba(cts[f]) for f in PII_FIELDS],
            mask_name(s_name),
            mask_phone(s_phone),
            mask_address(s_address, names),
            mask_name(r_name),
            mask_phone(r_phone),
            mask_address(r_address, names),
            ba(vault.index_phone(s_e164)),
            ba(vault.index_phone(r_e164)),
            ba(vault.index_name_phone(s_name.value, s_e164)),
            ba(vault.index_name_phone(r_name.value, r_e164)),
        )

    def seal_rows(self, rows: Sequence[RawRow], first_counter: int) -> SealedChunk:
        """Row i of the chunk owns counter first_counter + i (a rejected row wastes its own)."""
        return self.seal_work([_work_row(raw) for raw in rows], first_counter)

    def seal_work(self, rows: Sequence[WorkRow], first_counter: int) -> SealedChunk:
        """`seal_rows` for rows in the worker format (see WorkRow)."""
        valid: list[tuple[int, Order]] = []
        rejected: list[Rejection] = []
        validate = self.validator.validate_values
        for i, (row, values) in enumerate(rows):
            if len(values) == 2:  # the reader's (field, reason)
                rejected.append((row, str(values[0]), str(values[1])))
                continue
            try:
                valid.append((first_counter + i, validate(values)))
            except FieldError as exc:
                rejected.append((row, exc.field, exc.reason))
            except Exception as exc:
                rejected.append((row, "row", f"internal error ({type(exc).__name__})"))
        numbers = self.vault.issue_tracking_numbers(self.prefix, [c for c, _ in valid])
        row_for = self.row_for
        sealed = [row_for(order, n) for (_, order), n in zip(valid, numbers, strict=True)]
        return sealed, rejected


def _work_row(raw: RawRow) -> WorkRow:
    if raw.error is not None:
        return raw.row, raw.error
    return raw.row, tuple(map(raw.fields.get, ORDER_FIELDS))


_SEALER: Sealer | None = None
# Rows are alive from read to insert: with the default threshold (700) the collector
# walks each row's objects two or three times before they die by reference count, about
# a tenth of the parent's CPU. Raised for the length of an import, never to "off".
_IMPORT_GC_THRESHOLD = (50_000, 20, 20)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(*_IMPORT_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _init_worker(keyring_path: str, prefix: str) -> None:
    global _SEALER
    _SEALER = Sealer(Path(keyring_path), prefix)
    # Everything loaded so far lives as long as the worker: keep the cyclic collector
    # from walking it again and again (the rows themselves create no cycles).
    gc.freeze()
    gc.set_threshold(*_IMPORT_GC_THRESHOLD)


def _seal_in_worker(rows: list[WorkRow], first_counter: int) -> bytes:
    """A sealed chunk, pickled here with protocol 5: the pool's own pickling
    (protocol 4) rebuilds each bytearray (see Sealer.row_for) through a function call
    in the parent."""
    assert _SEALER is not None
    return pickle.dumps(_SEALER.seal_work(rows, first_counter), protocol=5)


# -- orchestration (parent process) ---------------------------------------------------
@dataclass(slots=True)
class _Work:
    rows: list[WorkRow]
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


class _Group:
    """One connection whose write transaction spans several chunks.

    Each commit writes every page the transaction dirtied to the WAL; the random keys
    of the tracking-number and phone indexes dirty about one index page per row and
    index, so committing every chunk of 2,000 rows wrote (and checkpointed) ~3 pages
    per row once the indexes outgrew a chunk's reach. A transaction of many chunks
    writes each dirty page once. Still all or nothing per transaction: a killed import
    loses at most the open transaction, and a rerun skips what was committed.
    """

    def __init__(self, app: App, commit_rows: int, cache_kib: int) -> None:
        self._store = app.store
        self._commit_rows = commit_rows
        self._cache_kib = cache_kib
        self._conn: Connection | None = None
        self._tx: Any = None
        self._rows = 0

    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._store.engine.connect().execution_options(immediate=True)
            self._pragma(f"PRAGMA cache_size=-{int(self._cache_kib)}")
        if self._tx is None:
            self._tx = self._conn.begin()
        return self._conn

    def _pragma(self, pragma: str) -> None:
        # Straight to the driver, outside any transaction (Core would begin one).
        if self._cache_kib and self._conn is not None and self._conn.dialect.name == "sqlite":
            driver = self._conn.connection.driver_connection
            assert driver is not None
            driver.execute(pragma)

    def stored(self, rows: int) -> None:
        self._rows += rows
        if self._rows >= self._commit_rows:
            self.commit()

    def commit(self) -> None:
        if self._tx is not None:
            self._tx.commit()
            self._tx = None
        self._rows = 0

    def close(self) -> None:
        """Roll back what is not committed (an error is on its way) and give the
        connection back with the engine's own page-cache size."""
        if self._conn is None:
            return
        if self._tx is not None:
            self._tx.rollback()
            self._tx = None
        self._pragma(SQLITE_CACHE_PRAGMA)
        self._conn.close()
        self._conn = None


class _Importer:
    def __init__(
        self,
        app: App,
        strict_conn: Connection | None,
        merchant: str,
        group: _Group | None = None,
    ) -> None:
        self.app = app
        self.strict_conn = strict_conn
        self.merchant = merchant
        self.group = group

    def _tx(self) -> AbstractContextManager[Connection]:
        if self.strict_conn is not None:
            return nullcontext(self.strict_conn)
        if self.group is not None:
            return nullcontext(self.group.connection())
        return self.app.store.write()

    def prepare(self, chunk: list[RawRow]) -> _Work:
        """Drop orders already stored, then reserve one counter per remaining row."""
        store = self.app.store
        merchant = self.merchant
        keys: list[tuple[str, str] | None] = []
        for raw in chunk:
            if raw.error is None:
                fields = raw.fields
                if not fields.get("merchant", "").strip():
                    fields["merchant"] = merchant
                keys.append(order_key(fields))
            else:
                keys.append(None)
        with self._tx() as conn:
            existing = store.existing_orders(conn, [k for k in keys if k is not None])
            todo: list[WorkRow] = []
            seen: set[tuple[str, str]] = set()
            for raw, key in zip(chunk, keys, strict=True):
                if key is not None:
                    if key in existing or key in seen:
                        continue
                    seen.add(key)
                todo.append(_work_row(raw))
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
        if self.group is not None:
            self.group.stored(len(sealed))
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
            yield work, sealer.seal_work(work.rows, work.first_counter)
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
                yield done, pickle.loads(result.get())  # noqa: S301 - our worker's own output
        while pending:
            done, result = pending.popleft()
            yield done, pickle.loads(result.get())  # noqa: S301 - our worker's own output


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
    commit_rows: int = COMMIT_ROWS,
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
    group = None if strict else _Group(app, commit_rows, IMPORT_CACHE_KIB)
    try:
        with ExitStack() as stack:
            stack.enter_context(_fewer_collections())
            strict_conn = stack.enter_context(app.store.write()) if strict else None
            importer = _Importer(app, strict_conn, merchant, group)
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
            if group is not None:
                group.commit()
    finally:
        if group is not None:
            group.close()
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
