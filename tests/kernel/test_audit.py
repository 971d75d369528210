"""The audit log on a real database (SQLite and PostgreSQL through the ``ctx`` fixture).

What is checked here, beyond the pure Merkle code of ``test_merkle.py``:

- leaves are written by ``UnitOfWork`` and by ``audit.append`` inside the caller's
  transaction, as canonical JSON with exactly the documented keys, and vanish on rollback;
- roots and proofs served from ``audit_node`` equal those of ``merkle.MemoryStore`` over
  the same leaf bytes, and verify;
- signed tree heads carry the root in their signed text and verify with the public key;
- ``verify_log`` names the first bad index for every kind of tampering (leaf, payload,
  gap, swap, truncation, inner node), including a rewrite that keeps every stored hash
  consistent (only a signed head catches that);
- concurrent commits keep the indexes dense (the state row lock, and on a fresh log the
  race to create it);
- an RFC 9162 verifier written here from the RFC text alone, sharing no code with
  ``xietong.kernel.merkle``, accepts our proofs against the signed head.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from xietong.kernel import audit, clock, merkle
from xietong.kernel.access import Actor
from xietong.kernel.canonical import canonical_json, rfc3339
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.org.models import Region
from xietong.kernel.uow import UnitOfWork

ORIGIN = "test.xietong.local/audit"
LEAF_KEYS = {"index", "time", "actor", "action", "subject", "payload_sha256"}


@pytest.fixture
def actor() -> Actor:
    return Actor(kind="user", id=1, name="alice")


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    fixed = clock.FrozenClock(datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC))
    previous = clock.use_clock(fixed)
    yield fixed
    clock.use_clock(previous)


# --- helpers -------------------------------------------------------------------------


def record(ctx: Context, actor: Actor, *items: tuple[str, str, dict[str, Any]]) -> range:
    """One command through the unit of work, recording the given (action, subject, payload)."""
    with UnitOfWork(ctx, actor) as uow:
        for action, subject, payload in items:
            uow.record(action, subject, payload)
        uow.commit()
    return uow.audit_indexes


def fill(ctx: Context, count: int, *, start: int = 0) -> range:
    """Append ``count`` leaves directly, in one transaction."""
    entries = [
        audit.Entry("user:alice", "test.fill", f"case:{n}", {"n": n, "备注": "测试"})
        for n in range(start, start + count)
    ]
    session = ctx.db.write_session()
    try:
        with session.begin():
            return audit.append(session, entries)
    finally:
        session.close()


def stored_leaves(ctx: Context) -> list[bytes]:
    with ctx.db.read() as session:
        return list(session.scalars(select(audit.AuditLeaf.leaf).order_by(audit.AuditLeaf.idx)))


def memory_store(leaves: Sequence[bytes]) -> merkle.MemoryStore:
    store = merkle.MemoryStore()
    for leaf in leaves:
        store.append(leaf)
    return store


def size_of(ctx: Context) -> int:
    with ctx.db.read() as session:
        return audit.tree_size(session)


def root_of(ctx: Context, size: int) -> bytes:
    with ctx.db.read() as session:
        return audit.root_hash(session, size)


def sign(ctx: Context, size: int | None = None, *, store: bool = True) -> audit.TreeHead:
    session = ctx.db.write_session()
    try:
        with session.begin():
            return audit.sign_head(session, ctx.keys, ORIGIN, size, store=store)
    finally:
        session.close()


def verify(ctx: Context) -> audit.VerifyReport:
    with ctx.db.read() as session:
        return audit.verify_log(session, ctx.keys.public_key_raw)


def sql(ctx: Context, statement: str, **params: Any) -> None:
    """Tamper behind the platform's back, the way someone with database access could."""
    with ctx.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def leaf_row(ctx: Context, index: int) -> tuple[bytes, str]:
    with ctx.db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT leaf, payload FROM audit_leaf WHERE idx = :i"), {"i": index}
        ).one()
    return bytes(row[0]), row[1]


def rewritten(leaf: bytes, **changes: Any) -> bytes:
    """The leaf with some fields changed, still canonical JSON."""
    return canonical_json({**json.loads(leaf), **changes})


# --- appending -----------------------------------------------------------------------


def test_unit_of_work_appends_canonical_leaves(
    ctx: Context, actor: Actor, frozen: clock.FrozenClock
) -> None:
    payload = {"name": "长沙市卫健委", "level": 2, "tags": ["a", "b"], "ok": True}
    written = record(
        ctx, actor, ("org.department.create", "department:7", payload), ("x.y", "s:1", {})
    )
    assert written == range(0, 2)

    with ctx.db.read() as session:
        assert audit.tree_size(session) == 2
        first = audit.get_leaf(session, 0)
        first_leaf, first_payload = first.leaf, first.payload
        second_leaf = audit.get_leaf(session, 1).leaf

    fields = json.loads(first_leaf)
    assert set(fields) == LEAF_KEYS
    assert fields == {
        "index": 0,
        "time": "2026-03-01T09:30:00.123456Z",
        "actor": "user:alice",
        "action": "org.department.create",
        "subject": "department:7",
        "payload_sha256": hashlib.sha256(canonical_json(payload)).hexdigest(),
    }
    # Exact bytes: sorted keys, no spaces, UTF-8 (no \u escapes).
    assert first_leaf == canonical_json(fields)
    assert first_leaf.startswith(b'{"action":"org.department.create","actor":"user:alice"')
    assert b" " not in first_leaf
    assert first_payload == canonical_json(payload).decode("utf-8")
    assert "长沙市卫健委" in first_payload
    assert json.loads(second_leaf)["index"] == 1
    assert json.loads(second_leaf)["payload_sha256"] == hashlib.sha256(b"{}").hexdigest()


def test_leaf_time_follows_the_clock(ctx: Context, actor: Actor, frozen: clock.FrozenClock) -> None:
    record(ctx, actor, ("a.b", "s:1", {}))
    frozen.advance(timedelta(minutes=5))
    record(ctx, actor, ("a.b", "s:2", {}))
    times = [json.loads(leaf)["time"] for leaf in stored_leaves(ctx)]
    assert times == ["2026-03-01T09:30:00.123456Z", "2026-03-01T09:35:00.123456Z"]


def test_direct_append_continues_the_log(ctx: Context, actor: Actor) -> None:
    record(ctx, actor, ("a.first", "s:0", {"k": 0}))
    moment = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    session = ctx.db.write_session()
    with session.begin():
        written = audit.append(
            session,
            (audit.Entry("system:sync", "b.sync", f"item:{n}", {"n": n}) for n in range(3)),
            now=moment,
        )
        assert audit.append(session, []) == range(0)
    session.close()

    assert written == range(1, 4)
    leaves = [json.loads(leaf) for leaf in stored_leaves(ctx)]
    assert [leaf["index"] for leaf in leaves] == [0, 1, 2, 3]
    assert {leaf["time"] for leaf in leaves[1:]} == {rfc3339(moment)}
    assert [leaf["subject"] for leaf in leaves[1:]] == ["item:0", "item:1", "item:2"]
    assert all(leaf["actor"] == "system:sync" for leaf in leaves[1:])


NASTY = [
    'quote " and backslash \\',
    "newline\n tab\t nul\x00 unit\x1f del\x7f",
    "line\u2028separators\u2029",
    "长沙市 12345 热线 · 😀",
    "</script><b>&amp;",
    "",
]


def test_payloads_are_exactly_canonical_json(ctx: Context, actor: Actor) -> None:
    """append encodes payloads with its own prebuilt encoder; it must give canonical_json's
    very bytes (key order, non-ASCII, escapes, floats) and refuse what canonical_json
    refuses (NaN), leaving the tree unchanged."""
    payloads = [
        {"z": 1, "a": {"y": [1.5, None, True], "b": "长沙 😀"}, "m": ""},
        {text: text for text in NASTY},
        {"big": 2**70, "neg": -0.0, "exp": 1e-7},
    ]
    with UnitOfWork(ctx, actor) as uow:
        for payload in payloads:
            uow.record("test.payload", "case:1", payload)
        uow.commit()
    with ctx.db.read() as session:
        stored = session.scalars(select(audit.AuditLeaf.payload).order_by(audit.AuditLeaf.idx))
        assert list(stored) == [canonical_json(p).decode("utf-8") for p in payloads]
    with pytest.raises(ValueError), UnitOfWork(ctx, actor) as uow:
        uow.record("test.payload", "case:1", {"nan": float("nan")})
        uow.commit()
    with ctx.db.read() as session:
        assert audit.tree_size(session) == len(payloads)


def test_leaf_bytes_are_exactly_canonical_json(ctx: Context) -> None:
    """append writes leaves from a template; it must give canonical_json's very bytes."""
    entries = [
        audit.Entry(actor=a, action=b, subject=c, payload={"k": a})
        for a in NASTY
        for b, c in ((a, a), ("x", a), (a, "y"))
    ]
    entries.append(audit.Entry("user:x", "a.b", 42, {}))  # type: ignore[arg-type]
    session = ctx.db.write_session()
    with session.begin():
        audit.append(session, entries)
    session.close()
    leaves = stored_leaves(ctx)
    assert len(leaves) == len(entries)
    for index, (leaf, entry) in enumerate(zip(leaves, entries, strict=True)):
        fields = json.loads(leaf)
        assert leaf == canonical_json(fields)
        assert set(fields) == LEAF_KEYS
        assert (fields["index"], fields["actor"], fields["action"], fields["subject"]) == (
            index,
            entry.actor,
            entry.action,
            entry.subject,
        )
    assert verify(ctx).ok


def test_get_leaf_of_unknown_index_is_not_found(ctx: Context) -> None:
    fill(ctx, 2)
    with ctx.db.read() as session, pytest.raises(NotFound):
        audit.get_leaf(session, 2)


def test_rollback_leaves_the_tree_unchanged(ctx: Context, actor: Actor) -> None:
    record(ctx, actor, *[("a.b", f"s:{n}", {"n": n}) for n in range(3)])
    root_before = root_of(ctx, 3)

    # A command that fails after recording: nothing of it remains.
    with pytest.raises(RuntimeError, match="boom"), UnitOfWork(ctx, actor) as uow:
        uow.record("a.b", "s:lost", {})
        uow.session.flush()
        raise RuntimeError("boom")
    # A command that records nothing may not commit.
    with (
        pytest.raises(RuntimeError, match="at least one audit entry"),
        UnitOfWork(ctx, actor) as uow,
    ):
        uow.commit()
    # A direct append rolled back by its caller after the leaves were written.
    session = ctx.db.write_session()
    session.begin()
    assert audit.append(session, [audit.Entry("u:x", "a.b", "s:gone", {})]) == range(3, 4)
    session.rollback()
    session.close()

    with ctx.db.read() as session:
        assert audit.tree_size(session) == 3
        assert audit.root_hash(session, 3) == root_before
        assert session.scalar(select(func.count()).select_from(audit.AuditLeaf)) == 3
        # 3 leaves store nodes (0,0) (0,1) (1,0) (0,2): nothing more.
        assert session.scalar(select(func.count()).select_from(audit.AuditNode)) == 4

    assert record(ctx, actor, ("a.b", "s:next", {})) == range(3, 4)
    assert verify(ctx).ok


def _region(ctx: Context, code: str) -> Region | None:
    with ctx.db.read() as session:
        return session.get(Region, code)


def test_changes_left_for_after_the_pipelined_commit_fail_loudly(
    ctx: Context, actor: Actor
) -> None:
    """PostgreSQL commits the audit leaf in the driver's pipeline, behind SQLAlchemy:
    a change not yet flushed then would land in a new transaction outside the audited
    one. Before that COMMIT, and after it (a flush inside Session.commit), it is refused."""
    if ctx.db.is_sqlite:
        pytest.skip("the pipelined COMMIT is PostgreSQL's")
    record(ctx, actor, ("a.b", "s:0", {}))
    # pending before the COMMIT: refused, and nothing of the transaction is written
    session = ctx.db.write_session()
    session.begin()
    session.add(Region(code="999901", name="早", level="county"))
    with pytest.raises(audit.AuditCommitError, match="unflushed changes"):
        audit.append(session, [audit.Entry("u:x", "a.b", "s:early", {})], commit=True)
    session.rollback()
    session.close()
    assert size_of(ctx) == 1 and _region(ctx, "999901") is None
    # flushed by Session.commit after the COMMIT (a before_commit hook): refused, and
    # it stays unwritten; the audited command itself was committed
    with pytest.raises(audit.AuditCommitError, match="outside"), UnitOfWork(ctx, actor) as uow:
        uow.record("a.b", "s:late", {})

        @event.listens_for(uow.session, "before_commit")
        def late(session: Session) -> None:
            session.add(Region(code="999902", name="晚", level="county"))

        uow.commit()
    assert size_of(ctx) == 2 and _region(ctx, "999902") is None
    assert record(ctx, actor, ("a.b", "s:next", {})) == range(2, 3)
    assert verify(ctx).ok


# --- roots and proofs against the in-memory reference ---------------------------------

SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 32, 33, 50, 64, 65, 100]


def test_roots_and_proofs_equal_the_memory_store(ctx: Context) -> None:
    with ctx.db.read() as session:
        assert audit.root_hash(session, 0) == merkle.EMPTY_ROOT

    # Grow the log through every size in SIZES, checking the root as it grows.
    size = 0
    for target in SIZES:
        fill(ctx, target - size, start=size)
        size = target
        reference = memory_store(stored_leaves(ctx))
        assert root_of(ctx, size) == merkle.root_hash(reference, size)

    leaves = stored_leaves(ctx)
    assert len(leaves) == SIZES[-1]
    reference = memory_store(leaves)
    with ctx.db.read() as session:
        for n in SIZES:
            root = audit.root_hash(session, n)
            assert root == merkle.root_hash(reference, n)
            for i in range(n):
                proof = audit.inclusion_proof(session, i, n)
                assert proof == merkle.inclusion_proof(reference, i, n)
                merkle.verify_inclusion(merkle.leaf_hash(leaves[i]), i, n, proof, root)
            for m in SIZES:
                if m > n:
                    break
                proof = audit.consistency_proof(session, m, n)
                assert proof == merkle.consistency_proof(reference, m, n)
                merkle.verify_consistency(m, n, audit.root_hash(session, m), root, proof)


def test_proofs_beyond_the_log_are_refused(ctx: Context) -> None:
    fill(ctx, 5)
    with ctx.db.read() as session:
        for bad in (
            lambda: audit.root_hash(session, 6),
            lambda: audit.root_hash(session, -1),
            lambda: audit.inclusion_proof(session, 5, 5),
            lambda: audit.inclusion_proof(session, 0, 6),
            lambda: audit.inclusion_proof(session, -1, 5),
            lambda: audit.consistency_proof(session, 3, 6),
            lambda: audit.consistency_proof(session, 4, 3),
        ):
            with pytest.raises(InvalidInput):
                bad()


# --- signed tree heads ---------------------------------------------------------------


def test_signed_tree_head(ctx: Context) -> None:
    fill(ctx, 11)
    head = sign(ctx)
    assert head.tree_size == 11
    assert head.root_hash == root_of(ctx, 11)
    assert head.public_key == ctx.keys.public_key_raw

    root_b64 = base64.b64encode(head.root_hash).decode()
    lines = head.signed_bytes.decode("utf-8").split("\n")
    assert lines[:3] == [ORIGIN, "11", root_b64]
    assert lines[3] == f"— time {rfc3339(head.timestamp)}"
    assert head.signed_bytes.endswith(b"\n")
    audit.verify_head(ctx.keys.public_key_raw, head.signed_bytes, head.signature)
    assert audit.parse_checkpoint(head.signed_bytes) == (
        ORIGIN,
        11,
        head.root_hash,
        head.timestamp,
    )

    # The JSON form is what the API serves: every binary field base64.
    body = head.to_json()
    assert body["tree_size"] == 11
    assert base64.b64decode(body["signed_bytes"]) == head.signed_bytes
    assert base64.b64decode(body["root_hash"]) == head.root_hash
    audit.verify_head(
        base64.b64decode(body["public_key"]),
        base64.b64decode(body["signed_bytes"]),
        base64.b64decode(body["signature"]),
    )

    # Any change to the signed text, or another key, fails.
    forged = head.signed_bytes.replace(b"\n11\n", b"\n12\n")
    with pytest.raises(ValueError, match="does not verify"):
        audit.verify_head(ctx.keys.public_key_raw, forged, head.signature)
    with pytest.raises(ValueError):
        audit.verify_head(bytes(reversed(head.public_key)), head.signed_bytes, head.signature)


def test_tree_head_of_an_earlier_size(ctx: Context) -> None:
    fill(ctx, 4)
    root_at_4 = root_of(ctx, 4)
    fill(ctx, 6, start=4)
    head = sign(ctx, 4, store=False)
    assert head.tree_size == 4
    assert head.root_hash == root_at_4
    _, size, root, _ = audit.parse_checkpoint(head.signed_bytes)
    assert (size, root) == (4, root_at_4)
    audit.verify_head(ctx.keys.public_key_raw, head.signed_bytes, head.signature)
    with ctx.db.read() as session:
        assert session.get(audit.AuditTreeHead, 4) is None
        with pytest.raises(InvalidInput):
            audit.sign_head(session, ctx.keys, ORIGIN, 11, store=False)


def test_current_head_is_stored_once_per_size(ctx: Context) -> None:
    fill(ctx, 3)
    first = sign(ctx)
    sign(ctx)
    fill(ctx, 2, start=3)
    sign(ctx)
    with ctx.db.read() as session:
        heads = session.scalars(select(audit.AuditTreeHead).order_by(audit.AuditTreeHead.tree_size))
        stored = [(h.tree_size, h.signed_bytes) for h in heads]
    assert [size for size, _ in stored] == [3, 5]
    assert stored[0][1] == first.signed_bytes
    report = verify(ctx)
    assert report.ok, report.problem
    assert report.heads_checked == 2


# --- verify_log and tampering ----------------------------------------------------------


@pytest.fixture
def log(ctx: Context, actor: Actor) -> Context:
    """20 leaves written by 5 commands, with a signed head stored after each command."""
    for command in range(5):
        record(
            ctx,
            actor,
            *[
                ("case.update", f"case:{command}", {"step": n, "意见": "同意"})
                for n in range(4 * command, 4 * command + 4)
            ],
        )
        sign(ctx)
    report = verify(ctx)
    assert report.ok, report.problem
    assert (report.tree_size, report.heads_checked) == (20, 5)
    return ctx


def test_verify_log_fails_on_altered_leaf_bytes(log: Context) -> None:
    leaf, _ = leaf_row(log, 7)
    sql(
        log,
        "UPDATE audit_leaf SET leaf = :leaf WHERE idx = 7",
        leaf=rewritten(leaf, action="case.delete"),
    )
    report = verify(log)
    assert not report.ok
    assert report.bad_index == 7
    assert "leaf hash" in (report.problem or "")


def test_verify_log_fails_on_non_canonical_leaf(log: Context) -> None:
    leaf, _ = leaf_row(log, 3)
    sql(log, "UPDATE audit_leaf SET leaf = :leaf WHERE idx = 3", leaf=leaf.replace(b",", b", "))
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 3)
    assert "canonical" in (report.problem or "")


def test_verify_log_fails_on_altered_payload(log: Context) -> None:
    _, payload = leaf_row(log, 12)
    sql(
        log,
        "UPDATE audit_leaf SET payload = :p WHERE idx = 12",
        p=payload.replace("同意", "不同意"),
    )
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 12)
    assert "payload" in (report.problem or "")


def test_verify_log_fails_on_deleted_leaf(log: Context) -> None:
    sql(log, "DELETE FROM audit_leaf WHERE idx = 9")
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 9)
    assert "missing" in (report.problem or "")


def test_verify_log_fails_on_swapped_leaves(log: Context) -> None:
    leaf5, payload5 = leaf_row(log, 5)
    leaf6, payload6 = leaf_row(log, 6)
    sql(log, "UPDATE audit_leaf SET leaf = :l, payload = :p WHERE idx = 5", l=leaf6, p=payload6)
    sql(log, "UPDATE audit_leaf SET leaf = :l, payload = :p WHERE idx = 6", l=leaf5, p=payload5)
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 5)
    assert "index 6" in (report.problem or "")


def test_verify_log_fails_when_the_last_leaf_is_removed(log: Context) -> None:
    sql(log, "DELETE FROM audit_leaf WHERE idx = 19")
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 19)
    assert "19 leaves" in (report.problem or "")


def test_verify_log_fails_on_a_truncated_log_with_its_size(log: Context) -> None:
    """Cutting the tail and fixing the size is caught by the head signed at 20."""
    sql(log, "DELETE FROM audit_leaf WHERE idx >= 18")
    for level in range(5):  # every stored subtree reaching past leaf 17
        sql(log, "DELETE FROM audit_node WHERE level = :l AND idx >= :i", l=level, i=18 >> level)
    sql(log, "UPDATE audit_state SET size = 18")
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, 18)
    assert "exceeds the log" in (report.problem or "")


@pytest.mark.parametrize(
    ("statement", "bad_index", "node"),
    [
        ("UPDATE audit_node SET hash = :h WHERE level = 1 AND idx = 3", 6, "level 1, index 3"),
        ("UPDATE audit_node SET hash = :h WHERE level = 4 AND idx = 0", 0, "level 4, index 0"),
        ("DELETE FROM audit_node WHERE level = 2 AND idx = 2", 8, "level 2, index 2"),
    ],
    ids=["inner-node", "root-subtree", "missing-node"],
)
def test_verify_log_fails_on_a_bad_inner_node(
    log: Context, statement: str, bad_index: int, node: str
) -> None:
    """Proofs and new heads are served from the stored nodes: they must match the leaves."""
    sql(log, statement, **({"h": bytes(32)} if ":h" in statement else {}))
    report = verify(log)
    assert (report.ok, report.bad_index) == (False, bad_index)
    assert node in (report.problem or "")


def test_verify_log_checks_inner_nodes_across_batches(ctx: Context) -> None:
    """More inner nodes than one comparison query holds: the later batches count too."""
    fill(ctx, 10_000)
    sign(ctx)
    assert verify(ctx).ok
    sql(ctx, "UPDATE audit_node SET hash = :h WHERE level = 3 AND idx = 1100", h=bytes(32))
    report = verify(ctx)
    assert (report.ok, report.bad_index) == (False, 8800)
    assert "level 3, index 1100" in (report.problem or "")


def test_verify_log_fails_on_a_forged_head(log: Context) -> None:
    sql(log, "UPDATE audit_tree_head SET signature = :s WHERE tree_size = 12", s=bytes(64))
    report = verify(log)
    assert not report.ok
    assert "tree head 12" in (report.problem or "")

    # A stored root that differs from the signed text is refused as well.
    good = sign(log, 12, store=False)
    sql(
        log,
        "UPDATE audit_tree_head SET signed_bytes = :b, signature = :s, root_hash = :r"
        " WHERE tree_size = 12",
        b=good.signed_bytes,
        s=good.signature,
        r=bytes(32),
    )
    report = verify(log)
    assert not report.ok
    assert "differ from signed text" in (report.problem or "")


def test_consistent_rewrite_is_caught_only_by_signed_heads(log: Context) -> None:
    """Rewrite leaf 13 and every stored hash so the tree is self-consistent again.

    The leaf hashes then match their nodes, so only a head signed before the rewrite
    can tell: verify_log reports the first leaf after the last head that still holds
    (size 12), and an auditor holding the size-20 head sees the root changed.
    """
    held = sign(log, 20, store=False)  # what an outside auditor fetched earlier
    leaf, _ = leaf_row(log, 13)
    sql(
        log,
        "UPDATE audit_leaf SET leaf = :leaf WHERE idx = 13",
        leaf=rewritten(leaf, actor="user:mallory"),
    )
    leaves = stored_leaves(log)
    frontier = merkle.Frontier()
    nodes = [
        node for leaf_bytes in leaves for node in frontier.append(merkle.leaf_hash(leaf_bytes))
    ]
    sql(log, "DELETE FROM audit_node")
    with log.db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_node (level, idx, hash) VALUES (:level, :idx, :hash)"),
            [{"level": level, "idx": idx, "hash": digest} for level, idx, digest in nodes],
        )
    assert root_of(log, 20) == merkle.root_hash(memory_store(leaves), 20)
    assert root_of(log, 20) != held.root_hash

    report = verify(log)
    assert not report.ok
    assert report.bad_index == 12
    assert "signed tree head of size 16" in (report.problem or "")

    # Without the stored heads the rewrite would pass: the heads are the anchor...
    sql(log, "DELETE FROM audit_tree_head")
    assert verify(log).ok
    # ...which is why auditors keep the heads they fetch: the head held from before
    # no longer matches, and no consistency proof can bridge to the rewritten tree.
    with log.db.read() as session:
        assert audit.root_hash(session, 20) != held.root_hash
        proof = audit.consistency_proof(session, 12, 20)
        earlier = audit.root_hash(session, 12)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(12, 20, earlier, held.root_hash, proof)


# --- concurrency -----------------------------------------------------------------------


def test_concurrent_commits_keep_indexes_dense(ctx: Context, actor: Actor) -> None:
    threads_n, per_thread = 8, 25
    start = threading.Barrier(threads_n)
    written: list[range] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                indexes = record(ctx, actor, ("load.test", f"t{number}:{n}", {"t": number}))
                with lock:
                    written.append(indexes)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    total = threads_n * per_thread
    assert sorted(i for r in written for i in r) == list(range(total))
    assert size_of(ctx) == total
    leaves = [json.loads(leaf) for leaf in stored_leaves(ctx)]
    assert [leaf["index"] for leaf in leaves] == list(range(total))
    assert len({leaf["subject"] for leaf in leaves}) == total
    report = verify(ctx)
    assert report.ok, report.problem
    assert root_of(ctx, total) == merkle.root_hash(memory_store(stored_leaves(ctx)), total)


# --- an independent verifier --------------------------------------------------------------
# Written from RFC 9162 sections 2.1.3.2 and 2.1.4.2 alone; it shares nothing with
# xietong.kernel.merkle, so a mistake mirrored on both sides cannot hide.


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_inclusion_ok(
    index: int, size: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def rfc_consistency_ok(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    if first == second:
        return not path and first_root == second_root
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:  # an exact power of two: the first root starts the path
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root


def checked_head(head: audit.TreeHead) -> tuple[int, bytes]:
    """What an auditor does with a head: check the signature, read size and root."""
    try:
        Ed25519PublicKey.from_public_bytes(head.public_key).verify(
            head.signature, head.signed_bytes
        )
    except InvalidSignature:
        pytest.fail("tree head signature does not verify")
    _origin, size, root_b64 = head.signed_bytes.decode("utf-8").split("\n")[:3]
    return int(size), base64.b64decode(root_b64, validate=True)


def test_independent_rfc9162_verifier_accepts_our_proofs(ctx: Context, actor: Actor) -> None:
    fill(ctx, 37)
    record(ctx, actor, ("a.b", "s:1", {"k": "v"}), ("a.c", "s:2", {}))
    size, root = checked_head(sign(ctx))
    assert size == 39

    leaves = stored_leaves(ctx)
    with ctx.db.read() as session:
        for i, leaf in enumerate(leaves):
            proof = audit.inclusion_proof(session, i, size)
            leaf_hash = hashlib.sha256(b"\x00" + leaf).digest()
            assert rfc_inclusion_ok(i, size, leaf_hash, proof, root), i
            # and a wrong leaf, position or path is refused
            assert not rfc_inclusion_ok(i, size, hashlib.sha256(b"x").digest(), proof, root)
            assert not rfc_inclusion_ok((i + 1) % size, size, leaf_hash, proof, root)
            if proof:
                assert not rfc_inclusion_ok(i, size, leaf_hash, proof[:-1], root)
                bent = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
                assert not rfc_inclusion_ok(i, size, leaf_hash, bent, root)

    # Heads of earlier sizes, signed now, are consistent with the current one.
    with ctx.db.read() as session:
        for first in range(1, size + 1):
            first_size, first_root = checked_head(
                audit.sign_head(session, ctx.keys, ORIGIN, first, store=False)
            )
            assert first_size == first
            proof = audit.consistency_proof(session, first, size)
            assert rfc_consistency_ok(first, size, first_root, root, proof), first
            if first < size:
                assert not rfc_consistency_ok(first, size, root, root, proof)
                assert not rfc_consistency_ok(first, size, first_root, first_root, proof)
