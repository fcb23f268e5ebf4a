"""RFC 6962 (Certificate Transparency) Merkle tree hashing, proofs and verification.

Pure functions over SHA-256 (``hashlib``); no I/O. The definitions follow RFC 6962 §2.1
(also RFC 9162 §2.1):

* ``leaf_hash(d)   = SHA-256(0x00 || d)``
* ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* ``MTH({})        = SHA-256("")``, ``MTH(D[n])`` splits at the largest power of two < n.

Terms used below:

* a *perfect subtree* ``(level, index)`` is the subtree over the ``2**level`` leaves
  starting at leaf ``index * 2**level``; every internal node of a tree built by
  appending is one of them, and once complete its hash never changes;
* the *frontier* (a "compact range") of a tree of ``size`` leaves is the list of its
  maximal perfect subtrees, one per set bit of ``size``, left to right (largest first).
  It is all an appender needs to keep: ``O(log n)`` hashes.

Proofs read perfect-subtree hashes through a :class:`NodeSource` (a store keeps every
perfect subtree in a table); an inclusion or consistency proof costs ``O(log n)``
lookups plus at most ``O(log n)`` hashes. Verification follows the algorithms of
RFC 9162 §2.1.3.2 and §2.1.4.2 and returns a bool, never raises on bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, count, repeat
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "ListNodeSource",
    "Node",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "levels_above",
    "node_hash",
    "perfect_subtrees_completed",
    "root_of",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
# Copying a hasher already fed the one-byte prefix is measurably cheaper than creating a
# new one per node (OpenSSL 3 context set-up), which matters when re-hashing a whole log.
_LEAF_PREFIXED = hashlib.sha256(b"\x00")
_NODE_PREFIXED = hashlib.sha256(b"\x01")

# (level, index, hash) of a perfect subtree: 2**level leaves from leaf index * 2**level.
Node = tuple[int, int, bytes]


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """``[leaf_hash(e) for e in entries]``, as fast as pure Python gets."""
    copy = _LEAF_PREFIXED.copy
    out: list[bytes] = []
    append = out.append
    for data in entries:
        h = copy()
        h.update(data)
        append(h.digest())
    return out


def levels_above(leaves: Sequence[bytes], height: int) -> list[list[bytes]]:
    """The perfect subtrees of heights 0 .. ``height`` over ``leaves`` (leaf hashes,
    the first of them at a multiple of ``2**height``): ``result[h][i]`` is subtree ``i``
    of height ``h`` counted from the first leaf. Incomplete subtrees are left out."""
    levels = [list(leaves)]
    for _ in range(height):
        levels.append(_hash_pairs(iter(levels[-1])))
    return levels


def _hash_pairs(nodes: Iterator[bytes]) -> list[bytes]:
    """Hash consecutive pairs of an iterator of nodes; an odd last node is ignored."""
    copy = _NODE_PREFIXED.copy
    out: list[bytes] = []
    append = out.append
    for left, right in zip(nodes, nodes, strict=False):
        h = copy()
        h.update(left + right)
        append(h.digest())
    return out


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1 over already hashed leaves."""
    tree = CompactTree()
    tree.extend(leaf_hashes)
    return tree.root()


class CompactTree:
    """An append-only Merkle tree that keeps only its frontier (``O(log n)`` hashes).

    ``append``/``extend`` add leaf *hashes*; ``root()`` is MTH of everything appended.
    ``extend_with_nodes`` does the same and returns every perfect subtree (level >= 1)
    the batch completed, so a store can persist all interior nodes for proofs.
    ``frontier()``/``from_frontier()`` persist and resume the tree.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self.size = 0
        # _nodes[h] is the frontier's perfect subtree of height h (bit h of size set), else None.
        self._nodes: list[bytes | None] = []

    def __repr__(self) -> str:
        return f"CompactTree(size={self.size})"

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        nodes = self._nodes
        size = self.size
        node = leaf
        height = 0
        while size >> height & 1:
            left = nodes[height]
            assert left is not None
            node = _sha256(b"\x01" + left + node).digest()
            nodes[height] = None
            height += 1
        if height == len(nodes):
            nodes.append(node)
        else:
            nodes[height] = node
        self.size = size + 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes; level by level, about one SHA-256 per leaf."""
        self._extend(leaves, None)

    def extend_with_nodes(self, leaves: Iterable[bytes], min_level: int = 1) -> list[Node]:
        """Append many leaf hashes and return the perfect subtrees they completed.

        The result lists ``(level, index, hash)`` for every perfect subtree of level >=
        ``min_level`` (at least 1) that is complete after the batch but was not before,
        ordered by level, then index. Together with the leaves (level 0) these are every
        node a :class:`NodeSource` will be asked for; a store that keeps only the upper
        levels recomputes the lower ones from the leaves.
        """
        runs: list[tuple[int, int, list[bytes]]] = []
        self._extend(leaves, runs)
        completed: list[Node] = []
        for level, first, hashes in runs:
            if level >= min_level:
                completed.extend(zip(repeat(level), count(first), hashes, strict=False))
        return completed

    def _extend(
        self, leaves: Iterable[bytes], runs: list[tuple[int, int, list[bytes]]] | None
    ) -> None:
        current = leaves if isinstance(leaves, list) else list(leaves)
        if not current:
            return
        nodes = self._nodes
        old = self.size  # shifted right once per level: old size in units of 2**height
        self.size += len(current)
        height = 0
        while current:
            if height == len(nodes):
                nodes.append(None)
            if old & 1:
                # The frontier's node at this height is the left sibling of the first new one.
                carried = nodes[height]
                assert carried is not None
                pending: Iterator[bytes] = chain((carried,), current)
                count = len(current) + 1
            else:
                pending = iter(current)
                count = len(current)
            # An odd node out is the new frontier node at this height.
            nodes[height] = current[-1] if count & 1 else None
            current = _hash_pairs(pending)
            height += 1
            old >>= 1
            if runs is not None and current:
                runs.append((height, old, current))

    def root(self) -> bytes:
        """MTH of the leaves appended so far (EMPTY_ROOT for none)."""
        root: bytes | None = None
        for node in self._nodes:
            if node is not None:
                root = node if root is None else _sha256(b"\x01" + node + root).digest()
        return EMPTY_ROOT if root is None else root

    def frontier(self) -> list[tuple[int, bytes]]:
        """``(height, hash)`` of the maximal perfect subtrees, left to right (tallest first)."""
        return [
            (height, node)
            for height, node in reversed(list(enumerate(self._nodes)))
            if node is not None
        ]

    def copy(self) -> CompactTree:
        clone = CompactTree()
        clone.size = self.size
        clone._nodes = list(self._nodes)
        return clone

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[tuple[int, bytes]]) -> CompactTree:
        """Resume a tree of ``size`` leaves from its :meth:`frontier`.

        Raises ValueError unless the heights are exactly the set bits of ``size``,
        tallest first, and every hash is 32 bytes.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("tree size must be a non-negative integer")
        expected = [h for h in range(size.bit_length() - 1, -1, -1) if size >> h & 1]
        if [height for height, _ in frontier] != expected:
            raise ValueError("frontier heights do not match the tree size")
        tree = cls()
        tree.size = size
        tree._nodes = [None] * size.bit_length()
        for height, digest in frontier:
            if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
                raise ValueError("frontier hashes must be 32 bytes")
            tree._nodes[height] = digest
        return tree


def perfect_subtrees_completed(
    size_before: int, frontier: Sequence[tuple[int, bytes]], leaves: Sequence[bytes]
) -> tuple[list[Node], CompactTree]:
    """Nodes (level >= 1) completed by appending ``leaves`` to the tree described by
    ``size_before``/``frontier``, and the tree after the batch. Does not mutate inputs."""
    tree = CompactTree.from_frontier(size_before, frontier)
    return tree.extend_with_nodes(leaves), tree


class NodeSource(Protocol):
    """Read access to the stored perfect subtrees of a log."""

    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree of ``2**level`` leaves from leaf ``index * 2**level``
        (level 0: the leaf hash itself)."""
        ...


class ListNodeSource:
    """A :class:`NodeSource` over in-memory leaf hashes; levels are computed on first use."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._levels: list[list[bytes]] = [list(leaves)]

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def subtree(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0:
            raise IndexError("negative level or index")
        levels = self._levels
        while len(levels) <= level:
            levels.append(_hash_pairs(iter(levels[-1])))
        return levels[level][index]

    def root(self) -> bytes:
        return subtree_root(self, 0, self.size) if self.size else EMPTY_ROOT


def subtree_root(source: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees.

    ``O(log n)`` lookups when ``start`` is a multiple of the smallest power of two
    >= ``end - start`` (true of every range RFC 6962 proofs ask for); any other range
    is still computed correctly, from smaller aligned pieces.
    """
    if not 0 <= start <= end:
        raise ValueError("invalid leaf range")
    if start == end:
        return EMPTY_ROOT
    parts: list[bytes] = []
    while True:
        n = end - start
        if n & (n - 1) == 0 and start & (n - 1) == 0:
            level = n.bit_length() - 1
            parts.append(source.subtree(level, start >> level))
            break
        k = _split(n)
        if start & (k - 1) == 0:
            level = k.bit_length() - 1
            parts.append(source.subtree(level, start >> level))
        else:
            parts.append(subtree_root(source, start, start + k))
        start += k
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = node_hash(part, root)
    return root


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")


def inclusion_proof(source: NodeSource, index: int, tree_size: int) -> list[bytes]:
    """PATH(index, D[tree_size]) of RFC 6962 §2.1.1, leaf to root."""
    _check_size("index", index)
    _check_size("tree_size", tree_size)
    if index >= tree_size:
        raise ValueError("index outside the tree")
    path: list[bytes] = []
    start, end = 0, tree_size
    while end - start > 1:
        k = _split(end - start)
        middle = start + k
        if index < middle:
            path.append(subtree_root(source, middle, end))
            end = middle
        else:
            level = k.bit_length() - 1
            path.append(source.subtree(level, start >> level))
            start = middle
    path.reverse()
    return path


def consistency_proof(source: NodeSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 6962 §2.1.2 (empty when either tree is
    empty or the sizes are equal)."""
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    if old_size > new_size:
        raise ValueError("old tree larger than new tree")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, m = 0, new_size, old_size
    whole_old_tree = True  # the "b" flag of SUBPROOF
    while True:
        n = end - start
        if m == n:
            if not whole_old_tree:
                proof.append(subtree_root(source, start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_root(source, start + k, end))
            end = start + k
        else:
            level = k.bit_length() - 1
            proof.append(source.subtree(level, start >> level))
            start += k
            m -= k
            whole_old_tree = False
    proof.reverse()
    return proof


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree
    of ``tree_size`` leaves whose root is ``root``?"""
    if not (_is_hash(leaf) and _is_hash(root) and _is_size(index) and _is_size(tree_size)):
        return False
    if index >= tree_size or not all(_is_hash(p) for p in proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree ``(old_size, old_root)`` is a prefix
    of ``(new_size, new_root)``? Equal sizes need an empty proof and equal roots; an empty
    old tree needs an empty proof and ``old_root == EMPTY_ROOT``."""
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        return False
    if not all(_is_hash(p) for p in proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
