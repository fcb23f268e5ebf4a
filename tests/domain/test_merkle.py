"""RFC 6962 Merkle tree: known answers, and proofs checked by an independent implementation.

Everything named ``ref_*`` below is written from the text of RFC 6962 §2.1 as plain
recursion over a list of leaves and shares no code with ``waybillguard.domain.merkle``:
proofs produced by the module are compared with the reference proofs and verified by
reference verifiers that rebuild both roots by recursion (not the RFC 9162 bit-walking
algorithm the module uses).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waybillguard.domain.merkle import (
    EMPTY_ROOT,
    CompactTree,
    ListNodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    levels_above,
    node_hash,
    perfect_subtrees_completed,
    root_of,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------
# Independent reference (RFC 6962 §2.1, recursive)
# ---------------------------------------------------------------------------------------


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(bytes([0]) + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(bytes([1]) + left + right).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes."""
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = ref_k(len(d))
    return ref_node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = ref_k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def ref_path_length(m: int, n: int) -> int:
    if n == 1:
        return 0
    k = ref_k(n)
    return 1 + (ref_path_length(m, k) if m < k else ref_path_length(m - k, n - k))


def ref_root_from_path(leaf: bytes, m: int, n: int, path: Sequence[bytes]) -> bytes | None:
    """Rebuild MTH(D[n]) from a leaf and its PATH by recursion; None if the shape is wrong."""
    if n == 1:
        return leaf if not path else None
    if not path:
        return None
    k = ref_k(n)
    sibling, rest = path[-1], path[:-1]
    if m < k:
        left = ref_root_from_path(leaf, m, k, rest)
        return None if left is None else ref_node(left, sibling)
    right = ref_root_from_path(leaf, m - k, n - k, rest)
    return None if right is None else ref_node(sibling, right)


def ref_verify_inclusion(leaf: bytes, m: int, n: int, path: Sequence[bytes], root: bytes) -> bool:
    if not 0 <= m < n:
        return False
    return ref_root_from_path(leaf, m, n, path) == root


def ref_roots_from_subproof(
    m: int, n: int, proof: Sequence[bytes], b: bool, old_root: bytes
) -> tuple[bytes, bytes] | None:
    """(hash of the old tree's part, hash of the new subtree) rebuilt from SUBPROOF."""
    if m == n:
        if b:
            return None if proof else (old_root, old_root)
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = ref_k(n)
    sibling, rest = proof[-1], proof[:-1]
    if m <= k:
        inner = ref_roots_from_subproof(m, k, rest, b, old_root)
        return None if inner is None else (inner[0], ref_node(inner[1], sibling))
    inner = ref_roots_from_subproof(m - k, n - k, rest, False, old_root)
    if inner is None:
        return None
    return ref_node(sibling, inner[0]), ref_node(sibling, inner[1])


def ref_verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    if not 0 < m <= n:
        return False
    roots = ref_roots_from_subproof(m, n, proof, True, old_root)
    return roots is not None and roots == (old_root, new_root)


# ---------------------------------------------------------------------------------------
# Known answers: the certificate-transparency reference tree (merkle_tree_test.cc)
# ---------------------------------------------------------------------------------------

CT_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, path); the CT file numbers leaves from 1.
CT_PATHS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_LEAVES = [ref_leaf(x) for x in CT_INPUTS]


def test_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == CT_LEAVES[0]
    assert leaf_hash(b"") == bytes.fromhex(CT_ROOTS[0])
    assert node_hash(b"a" * 32, b"b" * 32) == ref_node(b"a" * 32, b"b" * 32)
    assert leaf_hashes(CT_INPUTS) == CT_LEAVES
    assert root_of([]) == EMPTY_ROOT == CompactTree().root()


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_reference_roots(n: int) -> None:
    expected = bytes.fromhex(CT_ROOTS[n - 1])
    assert root_of([leaf_hash(x) for x in CT_INPUTS[:n]]) == expected
    assert ref_mth(CT_LEAVES[:n]) == expected  # the reference itself is right
    tree = CompactTree()
    for leaf in CT_LEAVES[:n]:
        tree.append(leaf)
    assert tree.root() == expected
    assert ListNodeSource(CT_LEAVES[:n]).root() == expected


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_ct_reference_paths(index: int, size: int, path: list[str]) -> None:
    source = ListNodeSource(CT_LEAVES)
    proof = inclusion_proof(source, index, size)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(CT_ROOTS[size - 1])
    assert ref_verify_inclusion(CT_LEAVES[index], index, size, proof, root)
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, root)


@pytest.mark.parametrize(("old", "new", "expected"), CT_CONSISTENCY)
def test_ct_reference_consistency(old: int, new: int, expected: list[str]) -> None:
    source = ListNodeSource(CT_LEAVES)
    proof = consistency_proof(source, old, new)
    assert [p.hex() for p in proof] == expected
    old_root, new_root = bytes.fromhex(CT_ROOTS[old - 1]), bytes.fromhex(CT_ROOTS[new - 1])
    assert ref_verify_consistency(old, new, old_root, new_root, proof)
    assert verify_consistency(old, new, old_root, new_root, proof)


# ---------------------------------------------------------------------------------------
# Properties against the reference
# ---------------------------------------------------------------------------------------

MAX_LEAVES = 2048
LEAVES = [ref_leaf(i.to_bytes(4, "big")) for i in range(MAX_LEAVES)]
# Reference roots of every prefix, computed once (ref_mth over 2,048 prefixes is too slow).
_prefix = CompactTree()
PREFIX_ROOTS = [EMPTY_ROOT]
for _leaf in LEAVES:
    _prefix.append(_leaf)
    PREFIX_ROOTS.append(_prefix.root())
SOURCE = ListNodeSource(LEAVES)  # a proof for a tree of size n only reads nodes inside [0, n)


def test_prefix_roots_match_reference_sample() -> None:
    for n in [*range(0, 70), 255, 256, 257, 1000, 1023, 1024, 1025, 2047, 2048]:
        assert PREFIX_ROOTS[n] == ref_mth(LEAVES[:n]), n


def test_compact_tree_matches_reference_for_every_size_up_to_300() -> None:
    for n in range(301):
        expected = ref_mth(LEAVES[:n])
        assert root_of(LEAVES[:n]) == expected
        tree = CompactTree()
        tree.extend(LEAVES[:n])
        assert tree.size == n
        assert tree.root() == expected
        one_by_one = CompactTree()
        for leaf in LEAVES[:n]:
            one_by_one.append(leaf)
        assert one_by_one.frontier() == tree.frontier()
        assert [h for h, _ in tree.frontier()] == [
            h for h in range(n.bit_length() - 1, -1, -1) if n >> h & 1
        ]


@given(st.integers(0, 300), st.lists(st.integers(0, 120), max_size=5))
@settings(max_examples=150, deadline=None)
def test_from_frontier_resumes(first: int, batches: list[int]) -> None:
    tree = CompactTree()
    tree.extend(LEAVES[:first])
    resumed = CompactTree.from_frontier(tree.size, tree.frontier())
    assert resumed.root() == tree.root() == ref_mth(LEAVES[:first])
    position = first
    for batch in batches:
        resumed.extend(LEAVES[position : position + batch])
        position += batch
        resumed = CompactTree.from_frontier(resumed.size, resumed.frontier())
        assert resumed.root() == PREFIX_ROOTS[position]


def test_from_frontier_rejects_mismatch() -> None:
    tree = CompactTree()
    tree.extend(LEAVES[:6])  # heights 2 and 1
    frontier = tree.frontier()
    with pytest.raises(ValueError):
        CompactTree.from_frontier(7, frontier)
    with pytest.raises(ValueError):
        CompactTree.from_frontier(6, list(reversed(frontier)))
    with pytest.raises(ValueError):
        CompactTree.from_frontier(6, [(2, b"short"), frontier[1]])
    with pytest.raises(ValueError):
        CompactTree.from_frontier(-1, [])


def ref_perfect_nodes(n: int) -> set[tuple[int, int, bytes]]:
    """Every perfect subtree (level >= 1) complete in a tree of n leaves."""
    nodes = set()
    level = 1
    while 1 << level <= n:
        width = 1 << level
        for index in range(n // width):
            nodes.add((level, index, ref_mth(LEAVES[index * width : (index + 1) * width])))
        level += 1
    return nodes


@given(st.lists(st.integers(0, 70), max_size=6))
@settings(max_examples=60, deadline=None)
def test_extend_with_nodes_reports_each_completed_node_once(batches: list[int]) -> None:
    tree = CompactTree()
    seen: list[tuple[int, int, bytes]] = []
    position = 0
    for batch in batches:
        before_size, before_frontier = tree.size, tree.frontier()
        nodes = tree.extend_with_nodes(LEAVES[position : position + batch])
        helper_nodes, helper_tree = perfect_subtrees_completed(
            before_size, before_frontier, LEAVES[position : position + batch]
        )
        assert helper_nodes == nodes and helper_tree.root() == tree.root()
        assert nodes == sorted(nodes, key=lambda node: (node[0], node[1]))
        seen.extend(nodes)
        position += batch
        assert tree.root() == PREFIX_ROOTS[position]
    assert len(seen) == len(set(seen))
    assert set(seen) == ref_perfect_nodes(position)


@given(st.lists(st.integers(0, 70), max_size=6), st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_extend_with_nodes_from_a_minimum_level(batches: list[int], min_level: int) -> None:
    tree = CompactTree()
    seen: list[tuple[int, int, bytes]] = []
    position = 0
    for batch in batches:
        seen.extend(tree.extend_with_nodes(LEAVES[position : position + batch], min_level))
        position += batch
        assert tree.root() == PREFIX_ROOTS[position]
    expected = {node for node in ref_perfect_nodes(position) if node[0] >= min_level}
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_levels_above_are_the_perfect_subtrees() -> None:
    levels = levels_above(LEAVES[:45], 4)
    assert len(levels) == 5
    for height, row in enumerate(levels):
        width = 1 << height
        assert len(row) == 45 // width
        for index, digest in enumerate(row):
            assert digest == ref_mth(LEAVES[index * width : (index + 1) * width])


def test_subtree_root_any_range() -> None:
    source = ListNodeSource(LEAVES[:100])
    for start in range(0, 40):
        for end in range(start, 100, 7):
            assert subtree_root(source, start, end) == ref_mth(LEAVES[start:end])


class CountingSource:
    def __init__(self, inner: ListNodeSource) -> None:
        self.inner = inner
        self.lookups = 0

    def subtree(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.inner.subtree(level, index)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LEAVES))
    return size, draw(st.integers(0, size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(1, new)), new


@given(size_and_index())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    size, index = case
    source = CountingSource(SOURCE)
    proof = inclusion_proof(source, index, size)
    assert source.lookups <= 2 * size.bit_length() + 1  # O(log n)
    root = PREFIX_ROOTS[size]
    leaf = LEAVES[index]
    assert ref_verify_inclusion(leaf, index, size, proof, root)  # independent verifier
    assert verify_inclusion(leaf, index, size, proof, root)
    if size <= 300:
        assert proof == ref_path(index, LEAVES[:size])


@given(two_sizes())
@settings(max_examples=400, deadline=None)
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    old, new = case
    source = CountingSource(SOURCE)
    proof = consistency_proof(source, old, new)
    assert source.lookups <= 2 * new.bit_length() + 1  # O(log n)
    old_root, new_root = PREFIX_ROOTS[old], PREFIX_ROOTS[new]
    assert ref_verify_consistency(old, new, old_root, new_root, proof)  # independent verifier
    assert verify_consistency(old, new, old_root, new_root, proof)
    if new <= 300:
        assert proof == ref_proof(old, LEAVES[:new])


def flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    tampered = list(proof)
    item = bytearray(tampered[position])
    item[bit // 8] ^= 1 << (bit % 8)
    tampered[position] = bytes(item)
    return tampered


@given(size_and_index(), st.data())
@settings(max_examples=300, deadline=None)
def test_tampered_inclusion_fails(case: tuple[int, int], data: st.DataObject) -> None:
    size, index = case
    proof = inclusion_proof(SOURCE, index, size)
    root, leaf = PREFIX_ROOTS[size], LEAVES[index]

    def both(leaf_: bytes, index_: int, size_: int, proof_: list[bytes], root_: bytes) -> bool:
        ours = verify_inclusion(leaf_, index_, size_, proof_, root_)
        assert ours == ref_verify_inclusion(leaf_, index_, size_, proof_, root_)
        return ours

    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        assert not both(
            leaf, index, size, flip(proof, position, data.draw(st.integers(0, 255))), root
        )
        assert not both(leaf, index, size, proof[:-1], root)
        assert not both(leaf, index, size, proof[:position] + proof[position + 1 :], root)
    assert not both(leaf, index, size, [*proof, proof[0] if proof else leaf], root)
    assert not both(flip([leaf], 0, data.draw(st.integers(0, 255)))[0], index, size, proof, root)
    assert not both(ref_leaf(b"not in the log"), index, size, proof, root)
    wrong_index = data.draw(st.integers(0, size).filter(lambda i: i != index))
    assert not both(leaf, wrong_index, size, proof, root)
    if wrong_index < size:
        assert not both(LEAVES[wrong_index], index, size, proof, root)
    assert not both(leaf, index, size, proof, PREFIX_ROOTS[size - 1])
    for other in (size - 1, size + 1, size + 2, 2 * size, 2 * size + 1, 4 * size):
        if other <= MAX_LEAVES:
            assert not both(leaf, index, other, proof, PREFIX_ROOTS[other])
        # A proof whose length does not fit the claimed size is refused whatever the root.
        # (With the same length, a (size, root) pair only means something when signed.)
        if index < other and ref_path_length(index, other) != len(proof):
            assert not both(leaf, index, other, proof, root)
    assert not verify_inclusion(leaf, -1, size, proof, root)
    assert not verify_inclusion(leaf, index, size, [b"x"], root)


@given(two_sizes(), st.data())
@settings(max_examples=300, deadline=None)
def test_tampered_consistency_fails(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    proof = consistency_proof(SOURCE, old, new)
    old_root, new_root = PREFIX_ROOTS[old], PREFIX_ROOTS[new]

    def both(m: int, n: int, r1: bytes, r2: bytes, proof_: list[bytes]) -> bool:
        ours = verify_consistency(m, n, r1, r2, proof_)
        if m > 0:
            assert ours == ref_verify_consistency(m, n, r1, r2, proof_)
        return ours

    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        assert not both(
            old, new, old_root, new_root, flip(proof, position, data.draw(st.integers(0, 255)))
        )
        assert not both(old, new, old_root, new_root, proof[:-1])
        assert not both(old, new, old_root, new_root, [*proof, proof[0]])
    bad_root = flip([old_root], 0, data.draw(st.integers(0, 255)))[0]
    assert not both(old, new, bad_root, new_root, proof)
    assert not both(old, new, old_root, flip([new_root], 0, 7)[0], proof)
    if old < new:
        # The genuine proof does not vouch for a different new tree of the same size.
        rewritten = [*LEAVES[:old], ref_leaf(b"forged"), *LEAVES[old + 1 : new]]
        assert not both(old, new, old_root, ref_mth(rewritten), proof)
        # Rewriting an entry the old checkpoint covers cannot be proved consistent.
        early = data.draw(st.integers(0, old - 1))
        changed = [*LEAVES[:early], ref_leaf(b"forged"), *LEAVES[early + 1 : new]]
        changed_source = ListNodeSource(changed)
        proof2 = consistency_proof(changed_source, old, new)
        assert not both(old, new, old_root, ref_mth(changed), proof2)
        # Truncation back below the old size is not an extension.
        assert not both(old, old - 1, old_root, PREFIX_ROOTS[old - 1], [])
    if old > 1 and old < new:
        wrong_old = old - 1
        assert not both(wrong_old, new, old_root, new_root, proof)


def test_edge_cases() -> None:
    source = ListNodeSource(LEAVES[:10])
    assert consistency_proof(source, 0, 10) == []
    assert verify_consistency(0, 10, EMPTY_ROOT, PREFIX_ROOTS[10], [])
    assert not verify_consistency(0, 10, PREFIX_ROOTS[1], PREFIX_ROOTS[10], [])
    assert verify_consistency(10, 10, PREFIX_ROOTS[10], PREFIX_ROOTS[10], [])
    assert not verify_consistency(10, 10, PREFIX_ROOTS[10], PREFIX_ROOTS[9], [])
    assert not verify_consistency(3, 10, PREFIX_ROOTS[3], PREFIX_ROOTS[10], [])
    assert not verify_consistency(10, 3, PREFIX_ROOTS[10], PREFIX_ROOTS[3], [])
    assert inclusion_proof(ListNodeSource(LEAVES[:1]), 0, 1) == []
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    for bad in [(-1, 10), (10, 10), (0, 0)]:
        with pytest.raises(ValueError):
            inclusion_proof(source, *bad)
    with pytest.raises(ValueError):
        consistency_proof(source, 5, 4)
    with pytest.raises(IndexError):
        source.subtree(4, 1)  # [16, 32) is not complete in a tree of 10


class UniformSource:
    """A consistent virtual tree of identical leaves: any size, O(log n) memory."""

    def __init__(self) -> None:
        self.levels = [ref_leaf(b"same")]
        for _ in range(63):
            self.levels.append(ref_node(self.levels[-1], self.levels[-1]))
        self.lookups = 0

    def subtree(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.levels[level]


def test_proofs_at_ten_million_leaves_are_small_and_fast() -> None:
    source = UniformSource()
    n = 10_000_000
    root = subtree_root(source, 0, n)
    old = 7_654_321
    old_root = subtree_root(source, 0, old)
    indices = range(17, n, 1_000_003)
    started = time.perf_counter()
    proofs = [inclusion_proof(source, i, n) for i in indices]
    elapsed = (time.perf_counter() - started) / len(proofs)
    assert elapsed < 0.001
    for i, proof in zip(indices, proofs, strict=True):
        assert len(proof) <= 24
        assert ref_verify_inclusion(source.levels[0], i, n, proof, root)
        assert verify_inclusion(source.levels[0], i, n, proof, root)
    source.lookups = 0
    proof = consistency_proof(source, old, n)
    assert source.lookups <= 2 * n.bit_length()
    assert ref_verify_consistency(old, n, old_root, root, proof)
    assert verify_consistency(old, n, old_root, root, proof)
