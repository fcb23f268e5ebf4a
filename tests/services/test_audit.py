"""The tamper-evident audit log on SQLite and PostgreSQL.

Tampering is done the way an insider would: SQL straight into the `audit_*` tables.
Proofs are checked with the RFC 6962 definitions written out again below (recursive
MTH / PATH / SUBPROOF), not with `waybillguard.domain.merkle`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from tests.conftest import make_settings, scan_text, seeded_pii
from waybillguard.adapters.db.engine import WriteTurns
from waybillguard.domain import merkle
from waybillguard.domain.audit_event import AuditEvent, format_timestamp
from waybillguard.services import audit
from waybillguard.services.app import App, initialise, open_app
from waybillguard.services.importer import import_file
from waybillguard.services.synth import write_synth

# -- an independent RFC 6962 implementation ---------------------------------------------


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes, RFC 6962 §2.1."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def root_from_path(leaf: bytes, m: int, n: int, proof: list[bytes]) -> bytes:
    """Inverse of PATH(m, D[n]) (§2.1.1): the root the proof leads to."""
    if n == 1:
        assert proof == []
        return leaf
    k = split(n)
    if m < k:
        return sha(b"\x01" + root_from_path(leaf, m, k, proof[:-1]) + proof[-1])
    return sha(b"\x01" + proof[-1] + root_from_path(leaf, m - k, n - k, proof[:-1]))


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of §2.1.2."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = split(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def check_checkpoint(cp: dict[str, Any]) -> None:
    """Signature (Ed25519 via `cryptography`) over the C2SP-style body, and the body
    says what the JSON says."""
    body = cp["body"].encode()
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(cp["public_key"])).verify(
        bytes.fromhex(cp["signature"]), body
    )
    root = base64.b64encode(bytes.fromhex(cp["root_hash"])).decode()
    assert cp["body"] == f"{cp['origin']}\n{cp['tree_size']}\n{root}\n{cp['timestamp']}\n"


# -- helpers ----------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
WAYBILLS = [f"WG{n:07d}{(n * 7919) % 10**6:06d}" for n in range(12)]


def event(n: int, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "action": ("reveal", "search", "waybill.show")[n % 3],
        "actor": f"agent{n % 4}",
        "role": ("cs_agent", "courier")[n % 2],
        "unit": ("hq", "sh-pudong", "bj-chaoyang")[n % 3],
        "decision": ("allow", "deny")[n % 5 == 0],
        "rule": "policy.v1.ticket",
        "purpose": "ticket",
        "waybills": (WAYBILLS[n % len(WAYBILLS)],),
        "fields": ("recipient.phone",) if n % 3 == 0 else (),
        "client": "10.1.2.3 web",
        "at": format_timestamp(T0 + timedelta(seconds=n)),
        "detail": {"n": n},
    }
    values.update(changes)
    return AuditEvent(**values)


def sql(app: App, statement: str, **params: Any) -> list[Any]:
    with app.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def build_log(app: App, count: int = 40, batch: int = 7) -> dict[str, Any]:
    audit.record_many(app, [event(n) for n in range(count)])
    assert audit.seal(app, batch=batch) == count
    return audit.checkpoint(app)


def all_leaves(app: App) -> list[bytes]:
    rows = sql(app, "SELECT data FROM audit_events ORDER BY seq")
    return [sha(b"\x00" + bytes(r[0])) for r in rows]


def shift(app: App, first: int, by: int) -> None:
    """Renumber seq >= first by `by`, in two steps so the primary key never collides."""
    sql(app, "UPDATE audit_events SET seq = -seq - 1000 WHERE seq >= :f", f=first)
    sql(app, "UPDATE audit_events SET seq = -seq - 1000 + :by WHERE seq < 0", by=by)


def forge_state(app: App, size: int) -> None:
    """What a careful insider would also do after truncating: make audit_state, the
    stored tree and the stored checkpoints agree with the shorter log."""
    tree = merkle.CompactTree()
    tree.extend(all_leaves(app)[:size])
    frontier = orjson.dumps([[h, d.hex()] for h, d in tree.frontier()]).decode()
    sql(
        app,
        "UPDATE audit_state SET tree_size = :n, frontier = :f, root_hash = :r",
        n=size,
        f=frontier,
        r=tree.root(),
    )
    sql(app, "DELETE FROM audit_checkpoints WHERE tree_size > :n", n=size)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify in chunks of 8 leaves and store leaf tiles of 2 (tree nodes from level 1
    up) so chunk and tile boundaries fall inside the test logs."""
    monkeypatch.setattr(audit, "CHUNK_LEVEL", 3)
    monkeypatch.setattr(audit, "TILE_LEVEL", 1)


def set_leaf_hash(app: App, position: int, digest: bytes) -> None:
    """Overwrite the leaf hash stored for `position` in its tile (as an insider would)."""
    tile, offset = position >> audit.TILE_LEVEL, position % (1 << audit.TILE_LEVEL)
    hashes = bytearray(sql(app, "SELECT hashes FROM audit_leaves WHERE tile = :t", t=tile)[0][0])
    hashes[32 * offset : 32 * offset + 32] = digest
    sql(app, "UPDATE audit_leaves SET hashes = :h WHERE tile = :t", h=bytes(hashes), t=tile)


def verify(app: App, external: Path | None = None) -> audit.VerifyReport:
    return audit.verify(app, external, workers=1)


# -- the happy path ---------------------------------------------------------------------


def test_intact_log_verifies_and_checkpoints_are_signed(app: App, small_chunks: None) -> None:
    cp = build_log(app, 41)
    report = verify(app)
    assert report.ok, report
    assert (report.tree_size, report.first_bad_seq, report.problem) == (41, None, None)
    check_checkpoint(cp)
    leaves = all_leaves(app)
    assert bytes.fromhex(cp["root_hash"]) == mth(leaves)
    assert cp["origin"] == "waybillguard/WG"


def test_verify_in_worker_processes(app: App, small_chunks: None) -> None:
    build_log(app, 70, batch=16)
    assert audit.verify(app, workers=2).ok
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 45", d=b'{"x":1}')
    report = audit.verify(app, workers=2)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 45, "edited")


def test_empty_log_verifies(app: App) -> None:
    assert verify(app).ok
    cp = audit.checkpoint(app)
    assert cp["tree_size"] == 0
    assert bytes.fromhex(cp["root_hash"]) == sha(b"")
    assert verify(app).ok


def test_record_rejects_pii_and_writes_nothing(app: App) -> None:
    with pytest.raises(ValueError, match="purpose"):
        audit.record_many(app, [event(1), event(2, purpose="callback 138 1234 5678")])
    assert sql(app, "SELECT count(*) FROM audit_pending")[0][0] == 0
    assert sql(app, "SELECT count(*) FROM audit_index")[0][0] == 0


def test_record_stamps_time_and_returns_durable_ids(app: App) -> None:
    ids = audit.record_many(app, [event(1, at=""), event(2)])
    assert ids[1] == ids[0] + 1
    rows = sql(app, "SELECT id, data FROM audit_pending ORDER BY id")
    assert [r[0] for r in rows] == ids
    assert orjson.loads(bytes(rows[0][1]))["at"].endswith("Z")
    # Durable but not sealed: visible to queries, provable once sealed.
    assert [e["event_id"] for e in audit.by_waybill(app, WAYBILLS[1])] == [ids[0]]
    assert audit.by_waybill(app, WAYBILLS[1])[0]["seq"] is None
    seq = audit.resolve_event(app, ids[1])
    assert seq == 1
    assert audit.prove(app, seq)["event_id"] == ids[1]


# -- tampering, directly in the database ------------------------------------------------


def test_edited_row_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    data = bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 17")[0][0])
    forged = data.replace(b'"actor":"agent1"', b'"actor":"agent9"')
    assert forged != data
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 17", d=forged)
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 17, "edited")


def test_edit_with_recomputed_leaf_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    data = bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 17")[0][0])
    forged = data.replace(b'"decision":"allow"', b'"decision":"deny"')
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 17", d=forged)
    set_leaf_hash(app, 17, sha(b"\0" + forged))
    report = verify(app)
    # The stored pair node (16, 17) no longer matches: damage within [16, 18).
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 16, "tree-damaged")


def test_deleted_row_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "DELETE FROM audit_events WHERE seq = 23")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 23, "deleted")


def test_deleted_row_with_renumbering_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "DELETE FROM audit_events WHERE seq = 23")
    shift(app, 24, -1)
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 23, "deleted")


def test_inserted_row_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    shift(app, 11, +1)
    forged = orjson.dumps(
        orjson.loads(bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 3")[0][0]))
        | {"actor": "ghost"},
        option=orjson.OPT_SORT_KEYS,
    )
    sql(app, "INSERT INTO audit_events (seq, event_id, data) VALUES (11, 9999, :d)", d=forged)
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 11, "inserted")


def test_row_appended_behind_the_sequencer_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "INSERT INTO audit_events (seq, event_id, data) VALUES (40, 9999, :d)", d=b"{}")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 40, "inserted")


def test_swapped_rows_are_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "UPDATE audit_events SET seq = -1 WHERE seq = 5")
    sql(app, "UPDATE audit_events SET seq = 5 WHERE seq = 30")
    sql(app, "UPDATE audit_events SET seq = 30 WHERE seq = -1")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 5, "reordered")
    assert "30" in (report.detail or "")


def test_truncation_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "DELETE FROM audit_events WHERE seq >= 30")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 30, "truncated")


def test_covered_up_truncation_is_found_with_an_external_checkpoint(
    app: App, small_chunks: None, tmp_path: Path
) -> None:
    build_log(app, 32)
    kept = tmp_path / "regulator.json"
    audit.export_checkpoint(app, kept)
    audit.record_many(app, [event(n) for n in range(32, 40)])
    audit.checkpoint(app)
    sql(app, "DELETE FROM audit_events WHERE seq >= 30")
    forge_state(app, 30)
    assert verify(app).ok  # nothing inside the database can tell any more …
    report = verify(app, kept)  # … but the checkpoint a third party kept can
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 30, "truncated")


def test_rewritten_history_is_found_with_an_external_checkpoint(
    app: App, small_chunks: None, tmp_path: Path
) -> None:
    build_log(app, 24)
    kept = tmp_path / "regulator.json"
    audit.export_checkpoint(app, kept)
    # Rewrite event 12 and rebuild everything derived from it.
    data = bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 12")[0][0])
    sql(
        app,
        "UPDATE audit_events SET data = :d WHERE seq = 12",
        d=data.replace(b'"decision":"allow"', b'"decision":"deny"'),
    )
    rebuild_tree(app)
    sql(app, "DELETE FROM audit_checkpoints")
    assert verify(app).ok
    report = verify(app, kept)
    assert (report.ok, report.problem) == (False, "rewritten")
    assert report.first_bad_seq is not None and report.first_bad_seq <= 12


def test_stored_checkpoint_catches_rewriting(app: App, small_chunks: None) -> None:
    build_log(app, 16)
    audit.record_many(app, [event(n) for n in range(16, 24)])
    audit.checkpoint(app)
    data = bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 20")[0][0])
    forged = data.replace(b'"purpose":"ticket"', b'"purpose":"audit"')
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 20", d=forged)
    rebuild_tree(app)
    report = verify(app)
    # The checkpoint at 16 still matches, the one at 24 does not: damage in [16, 24).
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 16, "rewritten")


def test_damaged_tree_node_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "UPDATE audit_nodes SET hash = :h WHERE level = 2 AND idx = 3", h=bytes(32))
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 12, "tree-damaged")
    # Above the verify chunk size too.
    build = sql(app, "SELECT count(*) FROM audit_nodes WHERE level = 4")[0][0]
    assert build == 2


def test_deep_verify_checks_the_lookup_tables(app: App) -> None:
    build_log(app, 20)
    assert audit.verify(app, deep=True, workers=1).ok
    event_id = sql(app, "SELECT event_id FROM audit_events WHERE seq = 9")[0][0]
    sql(app, "UPDATE audit_index SET actor = 'someone' WHERE event_id = :i", i=event_id)
    assert audit.verify(app, workers=1).ok  # the hashed log itself is intact
    report = audit.verify(app, deep=True, workers=1)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 9, "index-mismatch")
    sql(app, "UPDATE audit_index SET actor = 'agent1' WHERE event_id = :i", i=event_id)
    sql(app, "DELETE FROM audit_waybill_refs WHERE event_id = :i", i=event_id)
    report = audit.verify(app, deep=True, workers=1)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 9, "index-mismatch")


def test_deleted_state_is_found(app: App, small_chunks: None) -> None:
    build_log(app, 20)
    sql(app, "DELETE FROM audit_state")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 20, "state-damaged")
    sql(app, "DELETE FROM audit_events WHERE seq = 4")
    report = verify(app)
    assert (report.ok, report.first_bad_seq, report.problem) == (False, 4, "deleted")


def test_forged_checkpoint_is_found(app: App, small_chunks: None) -> None:
    build_log(app)
    sql(app, "UPDATE audit_checkpoints SET root_hash = :r", r=bytes(32))
    report = verify(app)
    assert (report.ok, report.problem) == (False, "bad-signature")


def test_external_checkpoint_with_bad_signature_is_rejected(
    app: App, small_chunks: None, tmp_path: Path
) -> None:
    build_log(app)
    kept = tmp_path / "cp.json"
    data = audit.export_checkpoint(app, kept)
    data["tree_size"] = 39
    kept.write_bytes(orjson.dumps(data))
    report = verify(app, kept)
    assert (report.ok, report.problem) == (False, "bad-signature")


# -- proofs, checked independently ------------------------------------------------------


def test_inclusion_proofs_verify_independently(app: App) -> None:
    build_log(app, 37, batch=5)
    leaves = all_leaves(app)
    for seq in (0, 1, 17, 31, 32, 36):
        proof = audit.prove(app, seq)
        leaf_data = bytes.fromhex(proof["leaf_data"])
        leaf = sha(b"\x00" + leaf_data)
        assert leaf.hex() == proof["leaf_hash"] and leaf == leaves[seq]
        path = [bytes.fromhex(p) for p in proof["proof"]]
        n = proof["tree_size"]
        assert root_from_path(leaf, seq, n, path).hex() == proof["root_hash"]
        assert proof["checkpoint"]["root_hash"] == proof["root_hash"]
        assert proof["checkpoint"]["tree_size"] == n
        check_checkpoint(proof["checkpoint"])
        assert orjson.loads(leaf_data) == proof["event"]


def test_prove_makes_a_checkpoint_when_none_covers_the_event(app: App) -> None:
    build_log(app, 8)
    ids = audit.record_many(app, [event(100)])
    seq = audit.resolve_event(app, ids[0])
    proof = audit.prove(app, seq)
    assert proof["tree_size"] == 9
    leaf = bytes.fromhex(proof["leaf_hash"])
    path = [bytes.fromhex(p) for p in proof["proof"]]
    assert root_from_path(leaf, 8, 9, path).hex() == proof["root_hash"]


def test_consistency_between_exported_and_later_checkpoint(app: App, tmp_path: Path) -> None:
    build_log(app, 13)
    old = tmp_path / "old.json"
    old_cp = audit.export_checkpoint(app, old)
    audit.record_many(app, [event(n) for n in range(13, 50)])
    result = audit.consistency_with(app, old)
    assert result["consistent"] is True
    assert (result["old_size"], result["new_size"]) == (13, 50)
    leaves = all_leaves(app)
    expected = subproof(13, leaves, True)
    assert [bytes.fromhex(p) for p in result["proof"]] == expected
    assert mth(leaves[:13]).hex() == old_cp["root_hash"] == result["old_root"]
    assert mth(leaves).hex() == result["new_root"]
    check_checkpoint(result["new_checkpoint"])
    by_size = audit.consistency(app, 5, 50)
    assert [bytes.fromhex(p) for p in by_size["proof"]] == subproof(5, leaves, True)
    assert by_size["consistent"]


@pytest.mark.parametrize("tile_level", [1, 2, 3, 4, 6])
def test_proofs_across_tile_and_node_levels(
    app: App, monkeypatch: pytest.MonkeyPatch, tile_level: int
) -> None:
    """Proof paths mix hashes recomputed from a leaf tile (levels below the tile
    level) with stored nodes; full and partial tiles, sealed in uneven batches."""
    monkeypatch.setattr(audit, "TILE_LEVEL", tile_level)
    build_log(app, 45, batch=6)
    leaves = all_leaves(app)
    for seq in range(45):
        proof = audit.prove(app, seq)
        path = [bytes.fromhex(p) for p in proof["proof"]]
        assert root_from_path(leaves[seq], seq, 45, path) == mth(leaves)
    for old_size in (1, 7, 8, 16, 33, 44):
        result = audit.consistency(app, old_size, 45)
        assert [bytes.fromhex(p) for p in result["proof"]] == subproof(old_size, leaves, True)
        assert result["consistent"]
    per_tile = 1 << tile_level
    tiles = sql(app, "SELECT tile, hashes FROM audit_leaves ORDER BY tile")
    assert [int(t) for t, _ in tiles] == list(range((45 + per_tile - 1) // per_tile))
    assert b"".join(bytes(h) for _, h in tiles) == b"".join(leaves)
    lowest = sql(app, "SELECT min(level) FROM audit_nodes")[0][0]
    assert lowest == (tile_level if per_tile <= 45 else None)
    assert verify(app).ok


def test_migration_0005_moves_leaf_hashes_into_tiles(app: App) -> None:
    """A log written with one node row per leaf (schema 0004) is converted in place
    and still verifies and proves; the downgrade restores the old rows."""
    from alembic import command

    from waybillguard.adapters.db.schema import alembic_config

    build_log(app, 150, batch=40)
    before = sql(app, "SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
    leaves = all_leaves(app)
    config = alembic_config(app.engine)
    command.downgrade(config, "0004")
    old = sql(app, "SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
    assert [(0, i, h) for i, h in enumerate(leaves)] == [
        (int(lvl), int(i), bytes(h)) for lvl, i, h in old if lvl == 0
    ]
    assert sum(1 for r in old if r[0] == 1) == 75
    command.upgrade(config, "head")
    after = sql(app, "SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert verify(app).ok
    proof = audit.prove(app, 129)
    path = [bytes.fromhex(p) for p in proof["proof"]]
    assert root_from_path(leaves[129], 129, 150, path) == mth(leaves)
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 70", d=b"{}")
    assert (verify(app).first_bad_seq, verify(app).problem) == (70, "edited")


def rebuild_tree(app: App) -> None:
    """The insider recomputes every stored node from the (edited) events."""
    leaves = all_leaves(app)
    tree = merkle.CompactTree()
    nodes = tree.extend_with_nodes(leaves, min_level=audit.TILE_LEVEL)
    per_tile = 1 << audit.TILE_LEVEL
    tiles = [
        {"t": n // per_tile, "h": b"".join(leaves[n : n + per_tile])}
        for n in range(0, len(leaves), per_tile)
    ]
    with app.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_nodes"))
        conn.execute(text("DELETE FROM audit_leaves"))
        conn.execute(text("INSERT INTO audit_leaves (tile, hashes) VALUES (:t, :h)"), tiles)
        if nodes:
            conn.execute(
                text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                [{"l": lvl, "i": i, "h": h} for lvl, i, h in nodes],
            )
    forge_state(app, len(leaves))


def test_consistency_fails_after_rewrite(app: App, tmp_path: Path) -> None:
    build_log(app, 13)
    old = tmp_path / "old.json"
    audit.export_checkpoint(app, old)
    data = bytes(sql(app, "SELECT data FROM audit_events WHERE seq = 2")[0][0])
    sql(app, "UPDATE audit_events SET data = :d WHERE seq = 2", d=data.replace(b"ticket", b"tick"))
    rebuild_tree(app)
    sql(app, "DELETE FROM audit_checkpoints")
    audit.record_many(app, [event(n) for n in range(13, 20)])
    result = audit.consistency_with(app, old)
    assert result["consistent"] is False
    assert result["new_size"] == 20


# -- queries and export -----------------------------------------------------------------


def test_queries(app: App) -> None:
    build_log(app, 30)
    who = audit.by_waybill(app, WAYBILLS[4])
    assert [e["detail"]["n"] for e in who] == [4, 16, 28]
    assert all(e["sealed"] and WAYBILLS[4] in e["waybills"] for e in who)
    mine = audit.by_actor(app, "agent1", "2026-03-01T10:00:05Z", "2026-03-01T10:00:21Z")
    assert [e["detail"]["n"] for e in mine] == [5, 9, 13, 17]
    top = audit.top_revealers(app, limit=10)
    reveals = [n for n in range(30) if n % 3 == 0]
    assert sum(r["events"] for r in top) == len(reveals)
    assert sum(r["denied"] for r in top) == sum(1 for n in reveals if n % 5 == 0)
    assert {(r["unit"], r["role"]) for r in top} == {("hq", "cs_agent"), ("hq", "courier")}
    assert top[0]["events"] >= top[-1]["events"]


def test_export_is_streaming_and_resumable(app: App) -> None:
    build_log(app, 25)
    whole = io.BytesIO()
    assert audit.export_jsonl(app, whole) == 25
    first, rest = io.BytesIO(), io.BytesIO()
    assert audit.export_jsonl(app, first, 0) == 25
    assert audit.export_jsonl(app, rest, 20) == 5
    lines = whole.getvalue().splitlines()
    assert rest.getvalue().splitlines() == lines[20:]
    for n, line in enumerate(lines):
        record = orjson.loads(line)
        assert record["seq"] == n
        canonical = orjson.dumps(record["event"], option=orjson.OPT_SORT_KEYS)
        assert sha(b"\x00" + canonical).hex() == record["leaf_hash"]


# -- no personal data anywhere ----------------------------------------------------------


def test_no_pii_in_audit_tables_or_export(app: App, tmp_path: Path) -> None:
    orders = tmp_path / "orders.jsonl"
    write_synth(orders, 150, seed=11)
    import_file(app, orders, workers=1)
    rows = sql(
        app,
        "SELECT tracking_number, bi_sender_phone, bi_recipient_phone FROM waybills ORDER BY id",
    )
    events = []
    for n, (number, sender_bi, recipient_bi) in enumerate(rows):
        refs = (bytes(sender_bi).hex(), bytes(recipient_bi).hex())
        common = {"actor": f"agent{n % 7}", "waybills": (number,), "detail": {}}
        events += [
            event(n, action="search", fields=(), subject_refs=refs[1:], **common),
            event(n, action="waybill.show", fields=(), **common),
            event(
                n,
                action="reveal",
                fields=("recipient.name", "recipient.phone", "recipient.address"),
                subject_refs=refs,
                decision="allow" if n % 4 else "deny",
                **common,
            ),
        ]
    audit.record_many(app, events[:200])
    audit.seal(app)
    audit.checkpoint(app)
    audit.record_many(app, events[200:])  # some stay pending
    needles = seeded_pii(orders)
    tables = [
        r[0]
        for r in sql(
            app,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit_%'"
            if app.settings.uses_embedded_database
            else "SELECT tablename FROM pg_tables WHERE tablename LIKE 'audit_%'",
        )
    ]
    assert len(tables) == 8  # every audit_* table, audit_leaves included
    dumped = []
    for table in tables:
        for row in sql(app, f"SELECT * FROM {table}"):
            for value in row:
                dumped.append(
                    bytes(value).decode("utf-8", "replace")
                    if isinstance(value, bytes | memoryview)
                    else str(value)
                )
    corpus = "\n".join(dumped)
    assert "recipient.phone" in corpus and rows[0][0] in corpus  # the scan sees the data
    assert scan_text(corpus, needles) == []
    out = io.BytesIO()
    audit.seal(app)
    exported = audit.export_jsonl(app, out)  # our events plus the import's own event(s)
    assert exported == sql(app, "SELECT count(*) FROM audit_events")[0][0] >= len(events)
    assert scan_text(out.getvalue().decode(), needles) == []
    assert scan_text(orjson.dumps(audit.by_waybill(app, rows[3][0])).decode(), needles) == []


# -- concurrent writers -----------------------------------------------------------------


def _writer(settings: Any, writer: int, count: int, queue: Any) -> None:
    with open_app(settings) as app:
        ids: list[int] = []
        for start in range(0, count, 25):
            batch = [
                event(writer * 1000 + n, detail={"writer": writer, "n": n})
                for n in range(start, min(start + 25, count))
            ]
            ids += audit.record_many(app, batch)
            if writer == 0:
                audit.seal(app, batch=40)
        queue.put((writer, ids))


def test_concurrent_writers_lose_and_duplicate_nothing(app: App) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    writers, count = 4, 300
    procs = [
        context.Process(target=_writer, args=(app.settings, w, count, queue))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    sealed = 0
    results = []
    deadline = time.monotonic() + 60
    while len(results) < writers:
        sealed += audit.seal(app, batch=64)
        while not queue.empty():
            results.append(queue.get())
        assert all(p.exitcode in (None, 0) for p in procs), "a writer failed"
        assert time.monotonic() < deadline, "writers did not finish"
        time.sleep(0.01)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    audit.seal(app)
    ids = [i for _, batch in results for i in batch]
    assert len(ids) == len(set(ids)) == writers * count
    rows = sql(app, "SELECT seq, event_id, data FROM audit_events ORDER BY seq")
    assert [r[0] for r in rows] == list(range(writers * count))
    assert sorted(r[1] for r in rows) == sorted(ids)
    marks = [
        (e["detail"]["writer"], e["detail"]["n"])
        for e in map(orjson.loads, (bytes(r[2]) for r in rows))
    ]
    assert sorted(marks) == [(w, n) for w in range(writers) for n in range(count)]
    assert sql(app, "SELECT count(*) FROM audit_pending")[0][0] == 0
    report = audit.verify(app, workers=1)
    assert report.ok and report.tree_size == writers * count
    # Each writer's events keep their relative order in the log.
    for writer, batch in results:
        seqs = [audit.resolve_event(app, i) for i in batch[::50]]
        assert seqs == sorted(seqs), writer


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Any:
    """An app on an SQLite file whatever the backend parameter: these tests are about
    how audit writers use SQLite."""
    settings = make_settings(tmp_path / "sqlite-home")
    initialise(settings)
    with open_app(settings) as application:
        yield application


def test_sqlite_audit_commit_syncs_the_log(sqlite_app: App) -> None:
    """An acknowledged event survives a power cut: on SQLite (WAL) every connection of
    the engine, the audit writer's included, commits with synchronous=FULL, also after
    a rolled-back write. (PostgreSQL commits durably by default: synchronous_commit=on.)"""
    app = sqlite_app
    store = audit._store(app)
    with store.write() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(RuntimeError), store.write() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2
        raise RuntimeError("rolled back")
    assert audit.record(app, event(1)) > 0


@pytest.mark.parametrize("writer", ["audit", "identity", "waybills", "access", "telephony"])
def test_sqlite_writers_queue_for_their_turn(sqlite_app: App, writer: str) -> None:
    """Every store's writes on one SQLite file wait for the turn lock (a flock next to
    the database) before taking SQLite's write lock, and go on once it is released —
    not only the hot paths: a session's touch (identity store) that polled SQLite's lock
    instead slept in its busy handler for up to 100 ms behind a reveal group."""
    from waybillguard.services import identities, policy_admin, virtual_numbers

    app = sqlite_app
    stores: dict[str, Any] = {
        "identity": identities.store_for,
        "waybills": lambda a: a.store,
        "access": policy_admin.access_store,
        "telephony": virtual_numbers.store_for,
    }

    def write() -> None:
        if writer == "audit":
            audit.record(app, event(2))
            return
        with stores[writer](app).write() as conn:
            conn.execute(text("SELECT 1"))

    turns = WriteTurns.for_engine(app.engine)
    assert turns is not None
    other = WriteTurns(turns.path)  # another holder: its own open file
    done = threading.Event()
    with other.turn():
        worker = threading.Thread(target=lambda: (write(), done.set()))
        worker.start()
        assert not done.wait(0.3)  # queued behind the turn
    assert done.wait(30)
    worker.join()
    if writer == "audit":
        assert sql(app, "SELECT count(*) FROM audit_pending")[0][0] == 1
