"""The tamper-evident audit log: record, seal, checkpoint, verify, prove, query, export.

Trillian/Tessera style (see docs/audit.md):

* **Writers** (`record`, `record_many`) append encoded events to `audit_pending` in a
  short transaction of their own; its commit is the durable acknowledgement and the
  returned event id is what a reveal grant cites. Writers never wait for sealing.
* **The sequencer** (`seal`) takes the oldest pending events in batches, gives them
  consecutive positions (`seq`, the 0-based leaf index), stores their leaf hashes by
  position in tiles (`audit_leaves`) and the perfect subtrees of level >= TILE_LEVEL
  they complete in `audit_nodes`, and advances `audit_state` (size + compact-tree
  frontier + root) — one transaction per batch, exclusive.
* **Checkpoints** sign (origin, tree size, root, time) with the vault's Ed25519 key.
* **verify** recomputes everything from the event bytes and names the first bad
  position; **prove** / **consistency** produce RFC 6962 proofs that verify offline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Connection

from waybillguard.adapters.db import audit_tables
from waybillguard.adapters.db.audit_store import (
    AuditStore,
    CheckpointRow,
    IndexedEvent,
    PendingEvent,
    TreeState,
)
from waybillguard.adapters.db.engine import make_engine
from waybillguard.domain import merkle
from waybillguard.domain.audit_event import AuditEvent, encode_event, format_timestamp
from waybillguard.services.app import App
from waybillguard.vault import checkpoint_body, verify_signature

SEAL_BATCH = 10_000
CHUNK_LEVEL = 16  # verify works in aligned chunks of 2**16 leaves (one per worker task)
# Leaf hashes are stored in tiles of 2**TILE_LEVEL, tree nodes from that level up; the
# levels below are recomputed from one tile (2**TILE_LEVEL - 1 hashes) when a proof
# needs them. CHUNK_LEVEL must not be smaller.
TILE_LEVEL = audit_tables.TILE_LEVEL
CHECKPOINT_FORMAT = "waybillguard-checkpoint/v1"
PROOF_FORMAT = "waybillguard-inclusion-proof/v1"
REVEAL_ACTIONS = ("reveal",)
MAX_QUERY = 10_000


class AuditError(RuntimeError):
    """A request the log cannot serve (unknown event, malformed checkpoint file...)."""


# -- plumbing --------------------------------------------------------------------------
def _store(app: App) -> AuditStore:
    store = app.__dict__.get("_audit_store")
    if store is None:
        store = AuditStore(app.engine)
        app.__dict__["_audit_store"] = store
    return store


def origin(app: App) -> str:
    """The log's name in its checkpoints: one log per network (tracking prefix)."""
    return f"waybillguard/{app.settings.tracking_prefix}"


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC with microseconds (naive = UTC): the stored, sortable form."""
    return format_timestamp(value if value.tzinfo else value.replace(tzinfo=UTC))


def parse_time(value: str | datetime) -> str:
    """Any RFC 3339 / ISO 8601 time (naive = UTC) as the stored sortable form."""
    if isinstance(value, datetime):
        return rfc3339(value)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return rfc3339(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from None


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def _frontier_json(tree: merkle.CompactTree) -> str:
    return orjson.dumps([[h, d.hex()] for h, d in tree.frontier()]).decode()


def _frontier(text: str) -> list[tuple[int, bytes]]:
    return [(int(h), bytes.fromhex(d)) for h, d in orjson.loads(text)]


# -- recording -------------------------------------------------------------------------
def _pending(event: AuditEvent, now: str) -> PendingEvent:
    """Stamp the time if the caller left it empty, validate and encode (raises
    FieldError, a ValueError naming the attribute, on a PII-looking value)."""
    if not event.at:
        event = replace(event, at=now)
    data = encode_event(event)
    at = event.at
    # Validated RFC 3339 UTC ("...Z", 0-9 decimals): with exactly six decimals (27
    # characters, what format_timestamp writes) it already is the stored sortable form.
    if len(at) != 27:
        at = parse_time(at)
    return PendingEvent(
        data, at, event.action, event.actor, event.role, event.unit, event.decision, event.waybills
    )


def record(app: App, event: AuditEvent) -> int:
    """Append one event durably; returns its event id once committed."""
    return record_many(app, [event])[0]


def record_many(app: App, events: Sequence[AuditEvent]) -> list[int]:
    """Append events in one transaction (all or none); returns their event ids.

    Raises ValueError (nothing written) when an event carries a PII-looking value.
    """
    now = _now()
    pending = [_pending(e, now) for e in events]
    store = _store(app)
    with store.write() as conn:
        return store.append(conn, pending)


def record_in(app: App, conn: Connection, events: Sequence[AuditEvent]) -> list[int]:
    """Append events inside the caller's write transaction, so the event and the state
    change it describes (a quota charge, a lock) commit together or not at all."""
    now = "" if all(e.at for e in events) else _now()  # a reveal brings its own time
    return _store(app).append(conn, [_pending(e, now) for e in events])


# -- sequencing ------------------------------------------------------------------------
def _partial_tile(store: AuditStore, conn: Connection, size: int) -> bytes:
    """The leaf hashes already stored in the tile the next leaf goes to."""
    held = size % (1 << TILE_LEVEL)
    if not held:
        return b""
    tile = size >> TILE_LEVEL
    hashes = store.leaf_tiles(conn, [tile]).get(tile, b"")
    if len(hashes) < held * merkle.HASH_SIZE:
        raise AuditError(f"leaf tile {tile} is damaged; run `audit verify`")
    return hashes[: held * merkle.HASH_SIZE]


def _extend(
    size: int, frontier: str, partial: bytes, rows: Sequence[tuple[int, bytes]], now: str
) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, bytes]], TreeState]:
    """Completed subtrees (level >= TILE_LEVEL, idx, hash) and the leaf tiles written
    (tile, hashes) when `rows` are appended to the tree (size, frontier) whose last,
    partial tile holds `partial`; and the state after them."""
    tree = merkle.CompactTree.from_frontier(size, _frontier(frontier))
    leaves = merkle.leaf_hashes(data for _, data in rows)
    nodes = tree.extend_with_nodes(leaves, min_level=TILE_LEVEL)
    span = merkle.HASH_SIZE << TILE_LEVEL
    hashes = partial + b"".join(leaves)
    first = size >> TILE_LEVEL
    tiles = [
        (first + n, hashes[at : at + span]) for n, at in enumerate(range(0, len(hashes), span))
    ]
    return nodes, tiles, TreeState(tree.size, _frontier_json(tree), tree.root(), now)


def _seal_batch(app: App, batch: int) -> int:
    """Sequence up to `batch` pending events in one transaction.

    The hashing is done before taking the sequencer lock, on a snapshot; under the lock
    the state is compared with that snapshot (any other sequencer would have advanced
    it) and, if it moved, the batch is re-read and re-hashed under the lock."""
    store = _store(app)
    now = _now()
    with store.read() as conn:
        seen = store.state(conn)
        rows = store.pending_batch(conn, batch)
        size, frontier = (seen.tree_size, seen.frontier) if seen else (0, "[]")
        partial = _partial_tile(store, conn, size) if rows else b""
    if not rows:
        return 0
    nodes, tiles, after = _extend(size, frontier, partial, rows, now)
    with store.write() as conn:
        state = store.lock_state(conn, merkle.EMPTY_ROOT, now)
        if (state.tree_size, state.frontier) != (size, frontier):
            rows = store.pending_batch(conn, batch)
            if not rows:
                return 0
            partial = _partial_tile(store, conn, state.tree_size)
            nodes, tiles, after = _extend(state.tree_size, state.frontier, partial, rows, now)
        store.sequence(conn, state.tree_size, rows, nodes, tiles, after)
    return len(rows)


def seal(app: App, batch: int = SEAL_BATCH) -> int:
    """Sequence every pending event, `batch` per transaction; returns how many.

    Safe to run from several processes at once: each batch holds the sequencer lock.
    Stops after the first partial batch, so concurrent writers cannot keep it busy."""
    total = 0
    while True:
        sealed = _seal_batch(app, batch)
        total += sealed
        if sealed < batch:
            return total


# -- checkpoints -----------------------------------------------------------------------
def _checkpoint_json(cp: CheckpointRow) -> dict[str, Any]:
    body = checkpoint_body(cp.origin, cp.tree_size, cp.root_hash, cp.timestamp)
    return {
        "format": CHECKPOINT_FORMAT,
        "origin": cp.origin,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash.hex(),
        "timestamp": cp.timestamp,
        "key_id": cp.key_id,
        "public_key": cp.public_key.hex(),
        "signature": cp.signature.hex(),
        "body": body.decode("utf-8"),
    }


def checkpoint(app: App) -> dict[str, Any]:
    """Seal what is pending, then sign and store a checkpoint of the whole tree."""
    seal(app)
    store = _store(app)
    signer = app.vault.checkpoint_signer()
    name = origin(app)
    with store.write() as conn:
        state = store.lock_state(conn, merkle.EMPTY_ROOT, _now())
        timestamp = _now()
        body = checkpoint_body(name, state.tree_size, state.root_hash, timestamp)
        signature = signer.sign(body)
        unsaved = CheckpointRow(
            0,
            name,
            state.tree_size,
            state.root_hash,
            timestamp,
            signer.key_id,
            signer.public_key,
            signature,
        )
        cp = replace(unsaved, id=store.add_checkpoint(conn, unsaved))
    return _checkpoint_json(cp)


def export_checkpoint(app: App, path: Path) -> dict[str, Any]:
    """Make a checkpoint and write it to `path` (JSON, atomically)."""
    data = checkpoint(app)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
    return data


def load_checkpoint(path: Path) -> CheckpointRow:
    """Parse a checkpoint file written by `export_checkpoint` (signature not checked here)."""
    try:
        data = orjson.loads(path.read_bytes())
        return CheckpointRow(
            id=0,
            origin=str(data["origin"]),
            tree_size=int(data["tree_size"]),
            root_hash=bytes.fromhex(data["root_hash"]),
            timestamp=str(data["timestamp"]),
            key_id=str(data["key_id"]),
            public_key=bytes.fromhex(data["public_key"]),
            signature=bytes.fromhex(data["signature"]),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AuditError(
            f"{path} is not a waybillguard checkpoint ({type(exc).__name__})"
        ) from None


def _signature_ok(cp: CheckpointRow) -> bool:
    body = checkpoint_body(cp.origin, cp.tree_size, cp.root_hash, cp.timestamp)
    return verify_signature(cp.public_key, body, cp.signature)


# -- node sources ----------------------------------------------------------------------
class _Recorder:
    """A NodeSource that only notes which nodes a proof needs (hash values are dummies:
    the proof algorithms never branch on them)."""

    def __init__(self) -> None:
        self.keys: set[tuple[int, int]] = set()

    def subtree(self, level: int, index: int) -> bytes:
        self.keys.add((level, index))
        return bytes(merkle.HASH_SIZE)


class _TreeSource:
    """A NodeSource over stored nodes (level >= TILE_LEVEL) and leaf tiles, from which
    the levels below TILE_LEVEL are recomputed (once per tile)."""

    def __init__(self, nodes: dict[tuple[int, int], bytes], tiles: dict[int, bytes]) -> None:
        self.nodes = nodes
        self.tiles = tiles
        self.levels: dict[int, list[list[bytes]]] = {}

    def subtree(self, level: int, index: int) -> bytes:
        if level >= TILE_LEVEL:
            found = self.nodes.get((level, index))
            if found is None:
                raise AuditError(f"tree node ({level}, {index}) is missing")
            return found
        tile = (index << level) >> TILE_LEVEL
        levels = self.levels.get(tile)
        if levels is None:
            hashes = self.tiles.get(tile, b"")
            size = merkle.HASH_SIZE
            leaves = [hashes[at : at + size] for at in range(0, len(hashes), size)]
            levels = self.levels[tile] = merkle.levels_above(leaves, TILE_LEVEL - 1)
        row = levels[level]
        offset = index - ((tile << TILE_LEVEL) >> level)
        if offset >= len(row):
            raise AuditError(f"tree node ({level}, {index}) is missing")
        return row[offset]


def _tree_source(
    store: AuditStore, conn: Connection, keys: Iterable[tuple[int, int]]
) -> _TreeSource:
    """The stored nodes and leaf tiles that the subtrees `keys` are read from."""
    wanted = list(keys)
    nodes = store.nodes(conn, [key for key in wanted if key[0] >= TILE_LEVEL])
    tiles = store.leaf_tiles(
        conn, {(idx << level) >> TILE_LEVEL for level, idx in wanted if level < TILE_LEVEL}
    )
    return _TreeSource(nodes, tiles)


class _DictSource:
    """A NodeSource over known nodes; a missing node above `computable_above` is
    computed from its children (and remembered)."""

    def __init__(self, nodes: dict[tuple[int, int], bytes], computable_above: int) -> None:
        self.nodes = nodes
        self.computable_above = computable_above

    def subtree(self, level: int, index: int) -> bytes:
        found = self.nodes.get((level, index))
        if found is not None:
            return found
        if level <= self.computable_above:
            raise AuditError(f"tree node ({level}, {index}) is missing")
        digest = merkle.node_hash(
            self.subtree(level - 1, 2 * index), self.subtree(level - 1, 2 * index + 1)
        )
        self.nodes[(level, index)] = digest
        return digest


def _with_stored_nodes(app: App, build: Callable[[merkle.NodeSource], list[bytes]]) -> list[bytes]:
    """Run a proof builder twice: once to learn which nodes it reads, then on those
    nodes fetched in one query."""
    recorder = _Recorder()
    build(recorder)
    store = _store(app)
    with store.read() as conn:
        source = _tree_source(store, conn, recorder.keys)
    return build(source)


# -- proofs ----------------------------------------------------------------------------
def resolve_event(app: App, event_id: int) -> int:
    """The log position of event `event_id`, sealing first if it is still pending."""
    store = _store(app)
    with store.read() as conn:
        where, seq = store.locate(conn, event_id)
    if where == "pending":
        seal(app)
        with store.read() as conn:
            where, seq = store.locate(conn, event_id)
    if seq is None:
        raise AuditError(f"no audit event with id {event_id}")
    return seq


def _prove_from_store(app: App, seq: int) -> dict[str, Any] | None:
    """The proof against the newest checkpoint covering `seq`, read in one
    transaction; None when no checkpoint covers it yet."""
    store = _store(app)
    with store.read() as conn:
        cp = store.latest_checkpoint(conn, min_size=seq + 1)
        if cp is None:
            return None
        found = store.event_at(conn, seq)
        if found is None:
            raise AuditError(f"position {seq} is missing from the log; run `audit verify`")
        recorder = _Recorder()
        merkle.inclusion_proof(recorder, seq, cp.tree_size)
        source = _tree_source(store, conn, recorder.keys)
    event_id, data = found
    leaf = merkle.leaf_hash(data)
    path = merkle.inclusion_proof(source, seq, cp.tree_size)
    if not merkle.verify_inclusion(leaf, seq, cp.tree_size, path, cp.root_hash):
        raise AuditError(f"position {seq} does not match the checkpoint; run `audit verify`")
    return {
        "format": PROOF_FORMAT,
        "event_id": event_id,
        "index": seq,
        "tree_size": cp.tree_size,
        "leaf_data": data.hex(),
        "leaf_hash": leaf.hex(),
        "proof": [p.hex() for p in path],
        "root_hash": cp.root_hash.hex(),
        "checkpoint": _checkpoint_json(cp),
        "event": orjson.loads(data),
    }


def prove(app: App, seq: int) -> dict[str, Any]:
    """Everything needed to check offline that the event at `seq` is in the log: the
    event bytes, the RFC 6962 inclusion path to the root of the newest checkpoint
    covering it, and that checkpoint with its signature and public key. When no
    checkpoint covers the event yet, pending events are sealed and one is made."""
    if seq < 0:
        raise AuditError("positions start at 0")
    proof = _prove_from_store(app, seq)
    if proof is None:
        checkpoint(app)
        proof = _prove_from_store(app, seq)
    if proof is None:
        raise AuditError(f"position {seq} is not in the log")
    return proof


def _root_at(app: App, size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    return _with_stored_nodes(app, lambda source: [merkle.subtree_root(source, 0, size)])[0]


def consistency(app: App, old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """RFC 6962 consistency proof that the tree of `old_size` events is a prefix of the
    tree of `new_size` (default: the newest checkpoint, made now). Roots are taken from
    stored checkpoints of those sizes when they exist, else computed from stored nodes."""
    store = _store(app)
    if new_size is None:
        new_size = int(checkpoint(app)["tree_size"])
    with store.read() as conn:
        state = store.state(conn)
        old_cp = store.checkpoint_at(conn, old_size)
        new_cp = store.checkpoint_at(conn, new_size)
    size = state.tree_size if state else 0
    if not 0 <= old_size <= new_size <= size:
        raise AuditError(f"sizes must satisfy 0 <= old <= new <= {size}")
    old_root = old_cp.root_hash if old_cp else _root_at(app, old_size)
    new_root = new_cp.root_hash if new_cp else _root_at(app, new_size)
    path = _with_stored_nodes(
        app, lambda source: merkle.consistency_proof(source, old_size, new_size)
    )
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root.hex(),
        "new_root": new_root.hex(),
        "proof": [p.hex() for p in path],
        "consistent": merkle.verify_consistency(old_size, new_size, old_root, new_root, path),
        "old_checkpoint": _checkpoint_json(old_cp) if old_cp else None,
        "new_checkpoint": _checkpoint_json(new_cp) if new_cp else None,
    }


def consistency_with(app: App, path: Path) -> dict[str, Any]:
    """Is the log today an extension of the checkpoint in `path` (handed out earlier)?
    Makes a new checkpoint, proves old -> new and checks the proof against the root
    in the file (not the database) and both signatures."""
    old = load_checkpoint(path)
    new = checkpoint(app)
    new_size = int(new["tree_size"])
    result: dict[str, Any] = {
        "old_size": old.tree_size,
        "new_size": new_size,
        "old_root": old.root_hash.hex(),
        "new_root": new["root_hash"],
        # Signed by this log's key (the one in the new checkpoint), over its own body.
        "old_signature_valid": _signature_ok(old) and old.public_key.hex() == new["public_key"],
        "proof": [],
        "consistent": False,
        "new_checkpoint": new,
    }
    if old.tree_size > new_size:
        result["problem"] = (
            f"the checkpoint covers {old.tree_size} events but the log has {new_size}: truncated"
        )
        return result
    proof = _with_stored_nodes(
        app, lambda source: merkle.consistency_proof(source, old.tree_size, new_size)
    )
    result["proof"] = [p.hex() for p in proof]
    result["consistent"] = bool(
        result["old_signature_valid"]
        and old.origin == new["origin"]
        and merkle.verify_consistency(
            old.tree_size, new_size, old.root_hash, bytes.fromhex(new["root_hash"]), proof
        )
    )
    return result


# -- verification ----------------------------------------------------------------------
@dataclass
class VerifyReport:
    ok: bool
    tree_size: int
    first_bad_seq: int | None = None
    problem: str | None = None  # edited | inserted | deleted | reordered | duplicated |
    # truncated | rewritten | tree-damaged | state-damaged | bad-signature | index-mismatch
    detail: str | None = None
    events_checked: int = 0
    checkpoints_checked: int = 0
    external_checkpoint: dict[str, Any] | None = None
    other_problems: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Problem:
    position: int | None
    kind: str
    detail: str

    def sort_key(self) -> tuple[int, int]:
        return (0, self.position) if self.position is not None else (1, 0)


@dataclass
class _ChunkResult:
    start: int
    end: int
    problem: tuple[int, str, str] | None = None  # (position, raw kind, detail)
    nodes: dict[tuple[int, int], bytes] = field(default_factory=dict)


def _first_difference(expected: Sequence[Any], actual: Sequence[Any]) -> int:
    for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
        if a != b:
            return i
    return min(len(expected), len(actual))


@dataclass(frozen=True, slots=True)
class _Shape:
    """The tree layout a verify worker needs (module constants, passed explicitly so a
    worker process sees the caller's values)."""

    chunk_level: int
    tile_level: int


def _shape() -> _Shape:
    if CHUNK_LEVEL < TILE_LEVEL:
        raise ValueError("CHUNK_LEVEL must not be smaller than TILE_LEVEL")
    return _Shape(CHUNK_LEVEL, TILE_LEVEL)


def _check_tiles(
    start: int, leaves: bytes, tiles: Sequence[tuple[int, bytes]], tile_level: int
) -> tuple[int, str, str] | None:
    """Compare recomputed leaf hashes (concatenated, from leaf `start`, tile-aligned)
    with the stored tiles: None, or the first position that differs."""
    span = merkle.HASH_SIZE << tile_level
    size = merkle.HASH_SIZE
    stored = dict(tiles)
    first_tile = start >> tile_level
    for n, at in enumerate(range(0, len(leaves), span)):
        mine = leaves[at : at + span]
        theirs = stored.get(first_tile + n, b"")[: len(mine)]
        if theirs == mine:
            continue
        position = start + at // size
        if len(theirs) < len(mine) and mine.startswith(theirs):
            missing = position + len(theirs) // size
            return (missing, "node-missing", "leaf hash missing from audit_leaves")
        offset = next(
            n for n in range(0, len(mine), size) if mine[n : n + size] != theirs[n : n + size]
        )
        return (position + offset // size, "leaf", "event bytes do not match the leaf hash")
    return None


def _check_chunk(
    store: AuditStore, start: int, end: int, sizes: Sequence[int], shape: _Shape
) -> _ChunkResult:
    """Recompute leaves [start, end) (start aligned to 2**chunk_level) and every perfect
    subtree inside, compare with what is stored, and return the computed nodes the
    caller needs: the chunk root when complete, and the frontier of [start, s) for
    each size s of interest."""
    chunk_level, tile_level = shape.chunk_level, shape.tile_level
    result = _ChunkResult(start, end)
    count = end - start
    per_tile = 1 << tile_level
    with store.read() as conn:
        rows = store.events_in_range(conn, start, end)
        tiles = store.tiles_in_range(conn, start >> tile_level, (end + per_tile - 1) >> tile_level)
        stored_levels = {
            level: store.nodes_in_range(conn, level, start >> level, end >> level)
            for level in range(tile_level, chunk_level + 1)
            if count >> level
        }
    seqs = [seq for seq, _ in rows]
    if len(rows) != count or (rows and (seqs[0] != start or seqs[-1] != end - 1)):
        at = _first_difference(range(start, end), seqs)
        result.problem = (start + at, "missing", "no event stored at this position")
        return result
    leaves = merkle.leaf_hashes([data for _, data in rows])
    problem = _check_tiles(start, b"".join(leaves), tiles, tile_level)
    if problem is not None:
        result.problem = problem
        return result
    computed = merkle.levels_above(leaves, chunk_level)
    for level, stored_nodes in stored_levels.items():
        mine = computed[level]
        first_idx = start >> level
        indices = [i for i, _ in stored_nodes]
        theirs = [digest for _, digest in stored_nodes]
        if indices != list(range(first_idx, first_idx + len(mine))) or theirs != mine:
            at = min(
                _first_difference(range(first_idx, first_idx + len(mine)), indices),
                _first_difference(mine, theirs),
            )
            result.problem = (
                (first_idx + at) << level,
                "tree",
                f"stored tree node at level {level} does not match the events below it",
            )
            return result
    if count == 1 << chunk_level:
        result.nodes[(chunk_level, start >> chunk_level)] = computed[chunk_level][0]
    for size in sizes:
        if not start < size <= end:
            continue
        offset = 0
        span = size - start
        for height in range(span.bit_length() - 1, -1, -1):
            if span >> height & 1:
                result.nodes[(height, (start + offset) >> height)] = computed[height][
                    offset >> height
                ]
                offset += 1 << height
    return result


def _check_chunk_in_worker(
    url: str, start: int, end: int, sizes: Sequence[int], shape: _Shape
) -> _ChunkResult:
    engine = make_engine(url)
    try:
        return _check_chunk(AuditStore(engine), start, end, sizes, shape)
    finally:
        engine.dispose()


def _run_chunks(app: App, size: int, sizes: Sequence[int], workers: int) -> list[_ChunkResult]:
    shape = _shape()
    step = 1 << shape.chunk_level
    spans = [(start, min(start + step, size)) for start in range(0, size, step)]
    if workers <= 1 or len(spans) <= 1:
        return [_check_chunk(_store(app), s, e, sizes, shape) for s, e in spans]
    url = app.engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(max_workers=min(workers, len(spans))) as pool:
        futures = [pool.submit(_check_chunk_in_worker, url, s, e, sizes, shape) for s, e in spans]
        return [f.result() for f in futures]


def _classify(app: App, position: int, size: int) -> _Problem:
    """Describe a leaf mismatch at `position`: what happened to the row there?"""
    store = _store(app)
    with store.read() as conn:
        here = store.event_at(conn, position)
        tile = position >> TILE_LEVEL
        at = (position - (tile << TILE_LEVEL)) * merkle.HASH_SIZE
        expected = store.leaf_tiles(conn, [tile]).get(tile, b"")[at : at + merkle.HASH_SIZE]
        assert here is not None and expected
        actual = merkle.leaf_hash(here[1])
        elsewhere = [
            q for q in store.leaf_positions(conn, actual, 0, size, TILE_LEVEL) if q != position
        ]
        following = store.event_at(conn, position + 1) if position + 1 < size else None
        later = [q for q in elsewhere if q > position]
        swapped_with = None
        if later:
            other = store.event_at(conn, later[0])
            if other is not None and merkle.leaf_hash(other[1]) == expected:
                swapped_with = later[0]
    if swapped_with is not None:
        return _Problem(
            position, "reordered", f"the events at {position} and {swapped_with} were swapped"
        )
    if following is not None and merkle.leaf_hash(following[1]) == expected:
        return _Problem(
            position,
            "inserted",
            f"an event was inserted at {position}; the original is now at {position + 1}",
        )
    if later and later[0] == position + 1:
        return _Problem(
            position,
            "deleted",
            f"the event at {position} was deleted and later events renumbered to close the gap",
        )
    earlier = [q for q in elsewhere if q < position]
    if earlier:
        return _Problem(position, "duplicated", f"position {position} holds a copy of {earlier[0]}")
    return _Problem(position, "edited", f"the event at {position} was altered")


def _chunk_problem(app: App, raw: tuple[int, str, str], size: int) -> _Problem:
    position, kind, detail = raw
    if kind == "leaf":
        return _classify(app, position, size)
    if kind == "missing":
        store = _store(app)
        with store.read() as conn:
            after = store.seqs_from(conn, position, 1)
        if not after or after[0] >= size:
            return _Problem(
                position,
                "truncated",
                f"the log ends at {position}; the sequencer recorded {size} events",
            )
        return _Problem(position, "deleted", f"events {position}..{after[0] - 1} are missing")
    if kind == "node-missing":
        return _Problem(position, "tree-damaged", detail)
    return _Problem(position, "tree-damaged", detail)


def verify(
    app: App,
    external_checkpoint: Path | None = None,
    *,
    workers: int | None = None,
    deep: bool = False,
) -> VerifyReport:
    """Recompute the log from its event bytes and check it against the stored tree,
    the sequencer state, every stored checkpoint and `external_checkpoint` (a file
    from `export_checkpoint`, e.g. one a regulator kept). Names the first bad position.

    `deep` also checks the lookup tables (`audit_index`, `audit_waybill_refs`) against
    the hashed events, so queries cannot be made to miss an event."""
    started = time.perf_counter()
    store = _store(app)
    external = load_checkpoint(external_checkpoint) if external_checkpoint else None
    signer = app.vault.checkpoint_signer()
    with store.read() as conn:
        state = store.state(conn)
        stored_cps = store.checkpoints(conn)
        _rows, low, high = store.log_extent(conn)
        size = state.tree_size if state else 0
        if state is None and high is not None:
            size = high + 1  # the state row is gone: check the events that are there
        beyond = store.seqs_from(conn, size, 1) if high is not None and high >= size else []
    problems: list[_Problem] = []
    if state is None and high is not None:
        problems.append(_Problem(size, "state-damaged", "audit_state is missing"))
    if low is not None and low < 0:
        problems.append(_Problem(0, "inserted", "rows with negative positions"))
    if beyond:
        problems.append(
            _Problem(beyond[0], "inserted", f"row at {beyond[0]} lies beyond the sealed log")
        )

    named = [(cp, f"stored checkpoint #{cp.id}") for cp in stored_cps]
    if external is not None:
        named.append((external, "external checkpoint"))
    trusted: list[tuple[CheckpointRow, str]] = []
    for cp, label in named:
        if not _signature_ok(cp):
            reason = "its signature does not verify"
        elif cp.key_id != signer.key_id or cp.public_key != signer.public_key:
            reason = f"it is signed by key {cp.key_id}, not by this vault's key {signer.key_id}"
        elif cp.origin != origin(app):
            reason = f"it is for log {cp.origin}, not {origin(app)}"
        else:
            trusted.append((cp, label))
            continue
        # An unverifiable checkpoint proves nothing about the log: reported, not used.
        problems.append(_Problem(None, "bad-signature", f"{label} (size {cp.tree_size}): {reason}"))
    for cp, label in trusted:
        if cp.tree_size > size:
            problems.append(
                _Problem(
                    size,
                    "truncated",
                    f"{label} covers {cp.tree_size} events, the log has {size}",
                )
            )

    sizes = sorted({size} | {cp.tree_size for cp, _ in trusted if 0 < cp.tree_size <= size})
    results = _run_chunks(app, size, sizes, workers or os.cpu_count() or 1)
    chunk_problems = [r.problem for r in results if r.problem is not None]
    if chunk_problems:
        problems.append(_chunk_problem(app, min(chunk_problems), size))
    else:
        problems.extend(_check_tree(app, results, state, size, trusted))
    if deep:
        mismatch = _check_lookups(app, size)
        if mismatch is not None:
            problems.append(mismatch)

    problems.sort(key=_Problem.sort_key)
    report = VerifyReport(
        ok=not problems,
        tree_size=size,
        events_checked=size,
        checkpoints_checked=len(named),
        external_checkpoint=(
            {"tree_size": external.tree_size, "root_hash": external.root_hash.hex()}
            if external
            else None
        ),
    )
    if problems:
        first = problems[0]
        report.first_bad_seq = first.position
        report.problem = first.kind
        report.detail = first.detail
        report.other_problems = [asdict(p) for p in problems[1:]]
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _check_tree(
    app: App,
    results: Sequence[_ChunkResult],
    state: TreeState | None,
    size: int,
    named: Sequence[tuple[CheckpointRow, str]],
) -> list[_Problem]:
    """Every chunk matched its stored nodes: check the nodes above the chunks, the
    sequencer state and each checkpoint's root against the recomputed tree."""
    problems: list[_Problem] = []
    computed: dict[tuple[int, int], bytes] = {}
    for r in results:
        computed.update(r.nodes)
    source = _DictSource(computed, computable_above=CHUNK_LEVEL)
    store = _store(app)
    with store.read() as conn:
        above = store.nodes_above(conn, CHUNK_LEVEL, size)
    for level, idx, digest in above:
        if source.subtree(level, idx) != digest:
            problems.append(
                _Problem(
                    idx << level,
                    "tree-damaged",
                    f"stored tree node at level {level} does not match the events below it",
                )
            )
            break
    root = merkle.subtree_root(source, 0, size) if size else merkle.EMPTY_ROOT
    if state is not None:
        try:
            frontier = _frontier(state.frontier)
            tree = merkle.CompactTree.from_frontier(state.tree_size, frontier)
            offset = 0
            for height, digest in frontier:
                if source.subtree(height, offset >> height) != digest:
                    raise ValueError(f"frontier node at {offset} differs")
                offset += 1 << height
            if tree.root() != root or state.root_hash != root:
                raise ValueError("root differs")
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(
                _Problem(size, "state-damaged", f"audit_state does not match the log: {exc}")
            )
    good_below = 0
    for cp, label in sorted(named, key=lambda item: item[0].tree_size):
        if cp.tree_size > size:
            continue
        expected = (
            merkle.subtree_root(source, 0, cp.tree_size) if cp.tree_size else (merkle.EMPTY_ROOT)
        )
        if expected == cp.root_hash:
            good_below = max(good_below, cp.tree_size)
            continue
        problems.append(
            _Problem(
                good_below,
                "rewritten",
                f"the log differs from {label} (size {cp.tree_size}, {cp.timestamp}): "
                f"events in [{good_below}, {cp.tree_size}) were rewritten",
            )
        )
    return problems


def _check_lookups(app: App, size: int, chunk: int = 5000) -> _Problem | None:
    """The first sealed event whose lookup rows disagree with its hashed bytes."""
    store = _store(app)
    batch: list[tuple[int, int, bytes]] = []

    def check() -> _Problem | None:
        ids = [event_id for _, event_id, _ in batch]
        with store.read() as conn:
            index = store.index_for(conn, ids)
            refs = store.refs_of(conn, ids)
        for seq, event_id, data in batch:
            try:
                e = orjson.loads(data)
                at = parse_time(e["at"])
                expected = (at, e["action"], e["actor"], e["role"], e["unit"], e["decision"])
                ok = index.get(event_id) == expected and refs[event_id] == set(e["waybills"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                return _Problem(
                    seq,
                    "index-mismatch",
                    f"the lookup rows of event {event_id} (position {seq}) disagree with the "
                    "event: queries could miss or misreport it",
                )
        batch.clear()
        return None

    for row in store.stream_events(0):
        if row[0] >= size:
            break
        batch.append(row)
        if len(batch) >= chunk and (problem := check()) is not None:
            return problem
    return check() if batch else None


# -- queries ---------------------------------------------------------------------------
def _found_json(found: Iterable[IndexedEvent]) -> list[dict[str, Any]]:
    return [
        {"event_id": f.event_id, "seq": f.seq, "sealed": f.seq is not None, **orjson.loads(f.data)}
        for f in found
    ]


def by_waybill(app: App, number: str, limit: int = MAX_QUERY) -> list[dict[str, Any]]:
    """Every recorded access to waybill `number` (sealed or pending), oldest first.
    The lookup tables only find candidates; what is returned is the hashed event."""
    store = _store(app)
    with store.read() as conn:
        found = store.by_waybill(conn, number, limit)
    events = _found_json(found)
    return [e for e in events if number in e.get("waybills", ())]


def denied_since(app: App, actor: str, action: str, since: datetime) -> int:
    """How many of `actor`'s `action` events since `since` were denied."""
    store = _store(app)
    with store.read() as conn:
        return store.count_denied(conn, actor, action, parse_time(since))


def by_actor(
    app: App,
    actor: str | None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    limit: int = MAX_QUERY,
) -> list[dict[str, Any]]:
    """What `actor` did in [since, until) (any actor when None), oldest first."""
    store = _store(app)
    low = parse_time(since) if since is not None else None
    high = parse_time(until) if until is not None else None
    with store.read() as conn:
        found = store.by_actor(conn, actor, low, high, limit)
    events = _found_json(found)
    return [e for e in events if actor is None or e.get("actor") == actor]


def top_revealers(
    app: App,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Units and roles with the most reveal requests in [since, until)."""
    store = _store(app)
    low = parse_time(since) if since is not None else None
    high = parse_time(until) if until is not None else None
    with store.read() as conn:
        return store.top_revealers(conn, REVEAL_ACTIONS, low, high, limit)


def status(app: App) -> dict[str, Any]:
    store = _store(app)
    with store.read() as conn:
        state = store.state(conn)
        pending = store.pending_count(conn)
        latest = store.latest_checkpoint(conn)
    return {
        "origin": origin(app),
        "tree_size": state.tree_size if state else 0,
        "root_hash": (state.root_hash if state else merkle.EMPTY_ROOT).hex(),
        "pending": pending,
        "latest_checkpoint": _checkpoint_json(latest) if latest else None,
    }


# -- export ----------------------------------------------------------------------------
def events(app: App, from_seq: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(seq, event_id, hashed bytes) of the sealed events from `from_seq` on, in order,
    read in chunks (no long snapshot)."""
    return _store(app).stream_events(from_seq)


def export_jsonl(app: App, out: IO[bytes], from_seq: int = 0) -> int:
    """Write sealed events from position `from_seq` on as JSON Lines
    (`{"seq", "event_id", "leaf_hash", "event"}`; `event` is the hashed bytes verbatim).
    Streams in chunks; to resume, pass the last exported seq + 1."""
    count = 0
    for seq, event_id, data in _store(app).stream_events(from_seq):
        out.write(
            b'{"seq":%d,"event_id":%d,"leaf_hash":"%s","event":%s}\n'
            % (seq, event_id, merkle.leaf_hash(data).hex().encode(), data)
        )
        count += 1
    return count
