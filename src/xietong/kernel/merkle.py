"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and verification, with no database.

The audit log is an append-only Merkle tree so that anyone holding a signed root can
later check that an entry is in the log (inclusion) and that the log only ever grew
(consistency). Everything here is pure computation; persistence is behind `NodeReader`.

Storage model: the store keeps the hash of every *perfect* subtree, keyed by
``(level, index)``. Level 0 index ``i`` is the leaf hash of leaf ``i``; ``(L, j)`` is
the hash of the perfect subtree over leaves ``[j * 2**L, (j + 1) * 2**L)``. Every range
the RFC algorithms hash is a tree node whose leaf range decomposes into O(log n) such
perfect subtrees, so a root or a proof needs O(log n) stored hashes and no hashing of
leaves. Each function first works out every key it needs and then calls
`NodeReader.get_nodes` once, so a proof is one indexed query however large the log.

Appends go through `Frontier`, which keeps only the right-most perfect subtrees and
emits the stored nodes each new leaf completes (two per leaf, amortised).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import sha256
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "MemoryStore",
    "NodeReader",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""SHA-256 digest size; proof hashes of any other length are rejected outright."""

EMPTY_ROOT = sha256(b"").digest()
"""MTH of the empty tree (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Key = tuple[int, int]
"""A stored perfect subtree: ``(level, index)``."""


def leaf_hash(leaf: bytes) -> bytes:
    """Hash a leaf with the 0x00 domain prefix so a leaf can never pose as an inner node."""
    return sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children with the 0x01 prefix, the other half of the domain separation."""
    return sha256(_NODE_PREFIX + left + right).digest()


class NodeReader(Protocol):
    """Read access to stored perfect-subtree hashes.

    Implementations return the hashes they hold for the requested keys; a key absent
    from the result means the store lacks it, which the callers here report as an error.
    """

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]: ...


class ProofError(ValueError):
    """A proof did not verify; the message says which check failed."""


def perfect_subtrees(start: int, end: int) -> list[Key]:
    """Keys of the perfect subtrees whose fold is MTH of leaves ``[start, end)``.

    MTH splits at the largest power of two below the length, so the pieces are the
    binary decomposition of the length, largest first. That only lines up with stored
    subtrees when ``start`` is a multiple of the smallest power of two covering the
    range, which holds for every range RFC 9162 proofs hash; anything else is a bug in
    the caller and raises ValueError rather than silently hashing the wrong tree.
    """
    length = end - start
    if start < 0 or length < 0:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    if length and start % (1 << (length - 1).bit_length()):
        raise ValueError(f"leaf range [{start}, {end}) is not a subtree of any Merkle tree")
    keys = []
    position = start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


def root_hash(reader: NodeReader, size: int) -> bytes:
    """Root of the tree over the first ``size`` leaves, from at most log2(size) stored hashes."""
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _hash_ranges(reader, [(0, size)])[0]


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1, lowest sibling first.

    The recursion is unrolled top-down: at each step the sibling of the half holding
    ``index`` joins the proof, so the siblings are collected and then reversed.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            siblings.append((middle, high))
            high = middle
        else:
            siblings.append((low, middle))
            low = middle
    siblings.reverse()
    return _hash_ranges(reader, siblings)


def consistency_proof(reader: NodeReader, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) of RFC 9162 section 2.1.4.1.

    Empty when ``first`` is 0 or equal to ``second``: nothing can be proven about the
    empty tree and an unchanged tree needs no proof. SUBPROOF is unrolled top-down like
    PATH; its flag ``b`` becomes false once the walk has stepped into a right half,
    from where the node ending at ``first`` is no longer a root the verifier already has.
    """
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    ranges = []
    low, high = 0, second
    complete = True
    while first != high:
        middle = low + _split(high - low)
        if first <= middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
            complete = False
    if not complete:
        ranges.append((low, high))
    ranges.reverse()
    return _hash_ranges(reader, ranges)


def _split(length: int) -> int:
    """The largest power of two strictly below ``length`` (which must be at least 2)."""
    return 1 << ((length - 1).bit_length() - 1)


def _hash_ranges(reader: NodeReader, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each leaf range, fetching every perfect subtree they need in one read."""
    pieces = [perfect_subtrees(start, end) for start, end in ranges]
    keys = [key for piece in pieces for key in piece]
    if not keys:
        return []
    nodes = _read(reader, keys)
    hashes = []
    for piece in pieces:
        value = nodes[piece[-1]]
        for key in reversed(piece[:-1]):
            value = node_hash(nodes[key], value)
        hashes.append(value)
    return hashes


def _read(reader: NodeReader, keys: Sequence[Key]) -> Mapping[Key, bytes]:
    """The single store read of an operation; a missing node means a corrupt store."""
    nodes = reader.get_nodes(keys)
    missing = [key for key in keys if key not in nodes]
    if missing:
        raise LookupError(f"node store lacks perfect subtrees {missing}")
    return nodes


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Follows RFC 9162 section 2.1.3.2 step by step, which also rejects proofs that are
    too long or too short for the position. Raises ProofError on any failure.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash_sizes(leaf_hash, proof)
    fn, sn = index, size - 1
    result = leaf_hash
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if result != root:
        raise ProofError("inclusion proof leads to a different root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``second`` with ``second_root`` extends the one of ``first``.

    RFC 9162 section 2.1.4.2, with the edge cases of transparency-dev/merkle whose test
    vectors we pass: equal sizes need an empty proof and equal roots (and for size 0 the
    root must be the empty-tree hash); a proof from size 0 to a larger tree is rejected as
    meaningless, since every tree extends the empty one and a caller holding no earlier
    root has nothing to check. Raises ProofError on any failure.
    """
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("roots differ for the same tree size")
        if first == 0 and first_root != EMPTY_ROOT:
            raise ProofError("root of the empty tree is not the hash of the empty string")
        return
    if first == 0:
        raise ProofError("consistency proof from the empty tree is meaningless")
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_hash_sizes(None, proof)
    if first & (first - 1):
        seed, path = proof[0], proof[1:]
    else:
        seed, path = first_root, proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_result = second_result = seed
    for node in path:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            first_result = node_hash(node, first_result)
            second_result = node_hash(node, second_result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            second_result = node_hash(second_result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if first_result != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if second_result != second_root:
        raise ProofError("consistency proof does not lead to the second root")


def _check_hash_sizes(leaf: bytes | None, proof: Sequence[bytes]) -> None:
    """Reject malformed hashes up front so the error names them, not a root mismatch."""
    if leaf is not None and len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(f"proof hash {position} is {len(value)} bytes, expected {HASH_SIZE}")


class Frontier:
    """The right edge of the tree: enough state to append leaves and compute the root.

    Holds one hash per set bit of the size, i.e. the perfect subtrees of
    `perfect_subtrees(0, size)`, left (highest level) to right. Appending a leaf merges
    it with equal-sized subtrees exactly like a binary increment carries, and every merge
    is a newly completed perfect subtree the store must keep.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} frontier hashes")
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> Frontier:
        """Resume appending after ``size`` leaves, from one read of O(log n) stored hashes."""
        keys = perfect_subtrees(0, size)
        if not keys:
            return cls()
        nodes = _read(reader, keys)
        return cls(size, [nodes[key] for key in keys])

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the ``(level, index, hash)`` nodes to store, leaf first.

        This is the audit log's hot path, so it hashes inline instead of calling
        `node_hash`.
        """
        index = self._size
        hashes = self._hashes
        created = [(0, index, leaf_hash)]
        value = leaf_hash
        level = 0
        position = index
        while position & 1:
            value = sha256(_NODE_PREFIX + hashes.pop() + value).digest()
            level += 1
            position >>= 1
            created.append((level, position, value))
        hashes.append(value)
        self._size = index + 1
        return created

    def root(self) -> bytes:
        """Current root, folded from the frontier without reading the store."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        value = hashes[-1]
        for left in reversed(hashes[:-1]):
            value = node_hash(left, value)
        return value


class MemoryStore:
    """A `NodeReader` over a dict, for tests and for verifiers that replay a log."""

    __slots__ = ("_frontier", "_nodes")

    def __init__(self) -> None:
        self._nodes: dict[Key, bytes] = {}
        self._frontier = Frontier()

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._frontier.size

    def append(self, leaf: bytes) -> int:
        """Append a raw leaf and return its index."""
        index = self._frontier.size
        for level, position, value in self._frontier.append(leaf_hash(leaf)):
            self._nodes[level, position] = value
        return index

    def get_nodes(self, keys: Sequence[Key]) -> Mapping[Key, bytes]:
        """Like a database query: the keys it holds, silently without the rest."""
        nodes = self._nodes
        return {key: nodes[key] for key in keys if key in nodes}
