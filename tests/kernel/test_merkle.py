"""Tests for xietong.kernel.merkle against RFC 9162 itself and external test vectors.

Three independent oracles: the transparency-dev/merkle JSON vectors (shared data), a
recursive implementation transcribed from the RFC text below, and the verifiers. The
store-based code must agree with all of them, and must read the store once per call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xietong.kernel.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryStore,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rfc6962-testdata"

# The leaves behind the vectors' happy paths (transparency-dev/merkle testonly, RFC 6962).
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


# --- Reference implementation, straight from RFC 9162 section 2.1 -----------------------


def ref_split(n: int) -> int:
    """Largest power of two smaller than n, by counting rather than bit tricks."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = ref_split(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = ref_split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]), defined by the RFC for 0 < m <= n."""
    return ref_subproof(m, leaves, True)


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = ref_split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


# --- Helpers -----------------------------------------------------------------------------


def build_store(leaves: Sequence[bytes]) -> MemoryStore:
    store = MemoryStore()
    for leaf in leaves:
        store.append(leaf)
    return store


class CountingReader:
    """Wraps a reader and records every get_nodes call, to pin down the read pattern."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[tuple[int, int]]] = []

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        self.calls.append(list(keys))
        return self.inner.get_nodes(keys)


class SyntheticTree:
    """Perfect-subtree hashes of a virtual log with leaf i = str(i), computed on demand.

    Subtrees of MEMO_LEVEL and above are memoised; smaller ones are hashed afresh, which
    keeps memory small while a 2**20-leaf root still costs each leaf hash only once.
    """

    MEMO_LEVEL = 8

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hash(str(index).encode())
        if level < self.MEMO_LEVEL:
            return node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))
        key = (level, index)
        if key not in self._memo:
            left = self.node(level - 1, 2 * index)
            self._memo[key] = node_hash(left, self.node(level - 1, 2 * index + 1))
        return self._memo[key]

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        return {key: self.node(*key) for key in keys}


def log2_ceil(n: int) -> int:
    return (n - 1).bit_length()


# --- External vectors (transparency-dev/merkle testdata) ---------------------------------


def require_vectors() -> None:
    reason = f"shared RFC 6962 test vectors not found at {VECTORS}"
    if not VECTORS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; they are mandatory in CI")
        pytest.skip(reason)


def vector_files(kind: str) -> list[Any]:
    if not VECTORS.is_dir():
        return [pytest.param(None, id="vectors-missing")]
    return [
        pytest.param(path, id=path.relative_to(VECTORS / kind).as_posix())
        for path in sorted((VECTORS / kind).rglob("*.json"))
    ]


def load_vector(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    decoded = {
        key: base64.b64decode(data[key])
        for key in ("root", "leafHash", "root1", "root2")
        if key in data
    }
    decoded["proof"] = [base64.b64decode(h) for h in data["proof"] or []]
    return {**data, **decoded}


def test_vector_corpus_is_present() -> None:
    require_vectors()
    for kind in ("inclusion", "consistency"):
        cases = [load_vector(path) for path in (VECTORS / kind).rglob("*.json")]
        assert any(not case["wantErr"] for case in cases), f"no passing {kind} vectors"
        assert any(case["wantErr"] for case in cases), f"no failing {kind} vectors"


@pytest.mark.parametrize("path", vector_files("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    require_vectors()
    assert path is not None
    case = load_vector(path)
    args = (case["leafHash"], case["leafIdx"], case["treeSize"], case["proof"], case["root"])
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    if case["desc"] == "happy path":
        store = build_store(RFC_LEAVES[: case["treeSize"]])
        assert root_hash(store, case["treeSize"]) == case["root"]
        assert inclusion_proof(store, case["leafIdx"], case["treeSize"]) == case["proof"]


@pytest.mark.parametrize("path", vector_files("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    require_vectors()
    assert path is not None
    case = load_vector(path)
    args = (case["size1"], case["size2"], case["root1"], case["root2"], case["proof"])
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
        return
    verify_consistency(*args)
    if case["desc"] == "happy path":
        store = build_store(RFC_LEAVES[: case["size2"]])
        assert root_hash(store, case["size1"]) == case["root1"]
        assert root_hash(store, case["size2"]) == case["root2"]
        assert consistency_proof(store, case["size1"], case["size2"]) == case["proof"]


# --- Agreement with the reference for every small tree -----------------------------------

SMALL = 70
SMALL_LEAVES = [b""] + [f"entry {i}".encode() for i in range(1, SMALL)]


@cache
def small_store() -> MemoryStore:
    """One store of SMALL leaves serves every smaller size: extra nodes must not matter."""
    return build_store(SMALL_LEAVES)


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_inclusion_matches_reference(size: int) -> None:
    store = small_store()
    leaves = SMALL_LEAVES[:size]
    root = root_hash(store, size)
    assert root == ref_mth(leaves)
    assert Frontier.from_reader(store, size).root() == root
    for index in range(size):
        proof = inclusion_proof(store, index, size)
        assert proof == ref_path(index, leaves)
        verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_consistency_matches_reference(size: int) -> None:
    store = small_store()
    leaves = SMALL_LEAVES[:size]
    root = ref_mth(leaves)
    for first in range(1, size + 1):
        proof = consistency_proof(store, first, size)
        assert proof == ref_proof(first, leaves)
        verify_consistency(first, size, ref_mth(leaves[:first]), root, proof)


# --- Random larger trees -----------------------------------------------------------------

LARGE = 5000


@cache
def large_leaves() -> list[bytes]:
    rng = random.Random(6962)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(LARGE)]


@cache
def large_store() -> MemoryStore:
    return build_store(large_leaves())


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_trees_agree_and_verify(data: st.DataObject) -> None:
    store = large_store()
    size = data.draw(st.integers(1, LARGE), label="size")
    root = root_hash(store, size)
    assert Frontier.from_reader(store, size).root() == root
    assert root == ref_mth(large_leaves()[:size])

    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(store, index, size)
    leaf = leaf_hash(large_leaves()[index])
    verify_inclusion(leaf, index, size, proof, root)

    first = data.draw(st.integers(1, size), label="first")
    first_root = root_hash(store, first)
    consistency = consistency_proof(store, first, size)
    verify_consistency(first, size, first_root, root, consistency)

    if proof:
        tampered = flip_bit(proof, data.draw(st.integers(0, len(proof) - 1), label="flip"))
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, tampered, root)
    if consistency:
        position = data.draw(st.integers(0, len(consistency) - 1), label="flip")
        with pytest.raises(ProofError):
            verify_consistency(first, size, first_root, root, flip_bit(consistency, position))


def flip_bit(proof: Sequence[bytes], position: int) -> list[bytes]:
    tampered = list(proof)
    tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
    return tampered


@settings(max_examples=40, deadline=None)
@given(first=st.integers(0, LARGE), extra=st.integers(0, 300))
def test_frontier_resumes_and_emits_stored_nodes(first: int, extra: int) -> None:
    store = large_store()
    second = min(first + extra, LARGE)
    frontier = Frontier.from_reader(store, first)
    assert frontier.size == first
    for index in range(first, second):
        created = frontier.append(leaf_hash(large_leaves()[index]))
        assert created[0][:2] == (0, index)
        trailing_ones = (~index & (index + 1)).bit_length() - 1
        assert len(created) == 1 + trailing_ones
        keys = [(level, position) for level, position, _ in created]
        assert store.get_nodes(keys) == {(lvl, pos): h for lvl, pos, h in created}
    assert frontier.size == second
    assert frontier.root() == root_hash(store, second)


# --- Read pattern: one query of O(log n) rows, at scale ----------------------------------


@cache
def synthetic_tree() -> SyntheticTree:
    return SyntheticTree()


SCALE_SIZES = [1, 2, 3, 5, 1023, 1024, 1025, 2**19 - 1, 999_999, 1_000_000, 2**20 - 1, 2**20]


@pytest.mark.parametrize("size", SCALE_SIZES)
def test_single_read_of_logarithmic_keys(size: int) -> None:
    reader = CountingReader(synthetic_tree())
    bound = 2 * log2_ceil(size) + 2

    root = root_hash(reader, size)
    assert len(reader.calls) == 1
    assert len(reader.calls[0]) == size.bit_count()
    reader.calls.clear()

    assert Frontier.from_reader(reader, size).root() == root
    assert len(reader.calls) == 1
    reader.calls.clear()

    rng = random.Random(size)
    indices = {0, 1 % size, size // 2, size - 2 if size > 1 else 0, size - 1, rng.randrange(size)}
    for index in sorted(indices):
        proof = inclusion_proof(reader, index, size)
        assert len(reader.calls) == (1 if proof else 0)
        assert all(len(keys) <= bound for keys in reader.calls)
        reader.calls.clear()
        leaf = leaf_hash(str(index).encode())
        verify_inclusion(leaf, index, size, proof, root)

    for first in sorted({1, 2, 3, size // 2, size - 1, rng.randrange(1, size + 1)} - {0}):
        if first > size:
            continue
        proof = consistency_proof(reader, first, size)
        assert len(reader.calls) == (1 if proof else 0)
        assert all(len(keys) <= bound for keys in reader.calls)
        first_root = root_hash(reader, first)
        reader.calls.clear()
        verify_consistency(first, size, first_root, root, proof)


# --- Building blocks and argument checks -------------------------------------------------


def test_hash_constants() -> None:
    assert EMPTY_ROOT.hex() == ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_hash(MemoryStore(), 0) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


def test_perfect_subtrees_decompose_like_mth() -> None:
    assert perfect_subtrees(0, 0) == []
    assert perfect_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_subtrees(8, 13) == [(2, 2), (0, 12)]
    assert perfect_subtrees(5, 6) == [(0, 5)]
    assert perfect_subtrees(16, 32) == [(4, 1)]
    for start, end in ((1, 3), (2, 5), (4, 9), (-1, 0), (3, 2)):
        with pytest.raises(ValueError):
            perfect_subtrees(start, end)


def test_store_keeps_two_nodes_per_leaf() -> None:
    store = small_store()
    stored = store.get_nodes([(level, i) for level in range(8) for i in range(SMALL)])
    assert len(stored) == 2 * SMALL - SMALL.bit_count()
    assert store.size == SMALL


def test_missing_nodes_are_reported() -> None:
    store = build_store([b"a", b"b", b"c"])
    with pytest.raises(LookupError):
        root_hash(store, 4)
    with pytest.raises(LookupError):
        Frontier.from_reader(store, 4)


def test_invalid_requests_are_refused() -> None:
    store = small_store()
    for index, size in ((-1, 5), (5, 5), (0, 0)):
        with pytest.raises(ValueError):
            inclusion_proof(store, index, size)
    for first, second in ((-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            consistency_proof(store, first, second)
    with pytest.raises(ValueError):
        root_hash(store, -1)
    with pytest.raises(ValueError):
        Frontier(3, [EMPTY_ROOT])
    assert consistency_proof(store, 0, 5) == []
    assert consistency_proof(store, 5, 5) == []


def test_verifiers_reject_malformed_input() -> None:
    store = small_store()
    root = root_hash(store, 10)
    proof = inclusion_proof(store, 3, 10)
    leaf = leaf_hash(SMALL_LEAVES[3])
    verify_inclusion(leaf, 3, 10, proof, root)
    for bad in (
        (leaf[:-1], 3, 10, proof, root),
        (leaf, 3, 10, [*proof[:-1], proof[-1] + b"\x00"], root),
        (leaf, -1, 10, proof, root),
        (leaf, 3, 10, proof[:-1], root),
        (leaf, 3, 10, [*proof, proof[0]], root),
    ):
        with pytest.raises(ProofError):
            verify_inclusion(*bad)
    with pytest.raises(ProofError):
        verify_consistency(-1, 10, root, root, [])
    with pytest.raises(ProofError):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
