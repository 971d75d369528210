"""The tamper-evident audit log: RFC 9162 Merkle tree over every command and exchange.

Each command appends one leaf in its own transaction. A leaf is the canonical JSON of
``{index, time, actor, action, subject, payload_sha256}``, kept as exact bytes in
``audit_leaf.leaf``; the payload itself sits beside it so an auditor can check the
digest. The hash of every perfect subtree is stored in ``audit_node`` (level, index),
so an append writes O(log n) rows (about two on average) and a proof is one indexed
query of O(log n) rows — the tree is never recomputed.

Signed tree heads are C2SP-checkpoint-like text::

    <origin>
    <tree size>
    <base64 root hash>
    — time <RFC 3339>

signed with the platform's Ed25519 key. Anyone holding the public key can check a head
and, with inclusion and consistency proofs, that no entry was changed or dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from json.encoder import encode_basestring
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg.pq import TransactionStatus
from sqlalchemy import BigInteger, LargeBinary, SmallInteger, Text, event, insert, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from xietong.kernel import clock, merkle
from xietong.kernel.canonical import canonical_json, parse_rfc3339, rfc3339
from xietong.kernel.db import Base
from xietong.kernel.errors import InvalidInput, NotFound


class AuditLeaf(Base):
    __tablename__ = "audit_leaf"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    payload: Mapped[str] = mapped_column(Text)


class AuditNode(Base):
    """Hash of the perfect subtree covering leaves [idx·2^level, (idx+1)·2^level)."""

    __tablename__ = "audit_node"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditState(Base):
    """One row; locking it serialises appends so indexes are dense and ordered."""

    __tablename__ = "audit_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


class AuditTreeHead(Base):
    __tablename__ = "audit_tree_head"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    timestamp: Mapped[datetime]
    signed_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class Entry:
    """What a command records: who did what to which subject, with its details."""

    actor: str
    action: str
    subject: str
    payload: Mapping[str, Any]


_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
"""Positional placeholders of the DBAPI paramstyles we write plain SQL for."""
_ROWS_PER_INSERT = 100
"""Rows per multi-row INSERT: 300 parameters, far below SQLite's and PostgreSQL's limits."""


class SessionNodeReader:
    """Reads perfect-subtree hashes for the Merkle functions in one query."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        if not keys:
            return {}
        # One point lookup per key, OR-ed: SQLite answers a row-value IN list with a full
        # scan of audit_node (O(n) per proof) but each (level = ? AND idx = ?) term with a
        # primary-key search (MULTI-INDEX OR); PostgreSQL uses a BitmapOr. The SQL is
        # written out for the driver: building the same expression with SQLAlchemy cost
        # more than the query itself (about 50 µs per key).
        connection = self.session.connection()
        mark = _PLACEHOLDERS.get(connection.dialect.paramstyle)
        if mark is None:
            rows: Iterable[Any] = self.session.execute(
                select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
                    or_(*((AuditNode.level == lv) & (AuditNode.idx == ix) for lv, ix in keys))
                )
            )
        else:
            term = f"(level = {mark} AND idx = {mark})"
            rows = connection.exec_driver_sql(
                f"SELECT level, idx, hash FROM audit_node WHERE {' OR '.join([term] * len(keys))}",
                tuple(value for key in keys for value in key),
            )
        found = {(level, idx): digest for level, idx, digest in rows}
        missing = [key for key in keys if key not in found]
        if missing:
            raise LookupError(f"audit tree nodes missing: {missing[:5]}")
        return found


# --- appending ---------------------------------------------------------------------


def _lock_size(session: Session) -> int:
    """The current tree size, with the state row locked until this transaction ends."""
    # Plain SQL: this runs in every command, and the ORM select cost ten times the query.
    # SQLite has no FOR UPDATE (its write transaction already excludes other writers).
    connection = session.connection()
    sql = "SELECT size FROM audit_state WHERE id = 1"
    if connection.dialect.name != "sqlite":
        sql += " FOR UPDATE"
    size = connection.exec_driver_sql(sql).scalar()
    if size is None:
        # The very first append. Two may race here (FOR UPDATE locked no row): ON CONFLICT
        # makes the loser wait for the winner's row instead of failing on the primary key,
        # and the second SELECT then locks that row. Portable to SQLite and PostgreSQL.
        connection.exec_driver_sql(
            "INSERT INTO audit_state (id, size) VALUES (1, 0) ON CONFLICT (id) DO NOTHING"
        )
        size = connection.exec_driver_sql(sql).scalar_one()
    return size


def _insert_many(
    session: Session, model: type[Base], columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert plain tuples on the session's connection, ``_ROWS_PER_INSERT`` per statement.

    The ORM bulk insert spent about two thirds of an append building and processing
    per-row parameters; these rows are already in column order and of DBAPI types (int,
    bytes, str), so they go to the driver as they are, as multi-row VALUES statements
    (another 10-20 % on SQLite: fewer statement steps). Other paramstyles fall back to a
    Core insert.
    """
    connection = session.connection()
    mark = _PLACEHOLDERS.get(connection.dialect.paramstyle)
    if mark is None:
        table = model.__table__
        connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    head = f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) VALUES "
    one_row = f"({', '.join([mark] * len(columns))})"
    chunk = _ROWS_PER_INSERT
    whole = len(rows) - len(rows) % chunk
    if whole:
        connection.exec_driver_sql(
            head + ", ".join([one_row] * chunk),
            [tuple(chain.from_iterable(rows[i : i + chunk])) for i in range(0, whole, chunk)],
        )
    if whole < len(rows):
        connection.exec_driver_sql(head + one_row, rows[whole:])


# A leaf's keys are fixed, so its canonical JSON is written from a template: the very
# bytes canonical_json gives (keys sorted, no spaces, strings escaped by the json module's
# own encoder) at a third of the cost. tests/kernel/test_audit.py holds the two equal.
_LEAF_TEMPLATE = (
    '{"action":%s,"actor":%s,"index":%d,"payload_sha256":"%s","subject":%s,"time":"%s"}'
)


def _leaf_bytes(index: int, moment: str, entry: Entry, payload_sha256: str) -> bytes:
    """canonical_json of {index, time, actor, action, subject, payload_sha256}."""
    actor, action, subject = entry.actor, entry.action, entry.subject
    if type(actor) is str and type(action) is str and type(subject) is str:
        q = encode_basestring
        return (
            _LEAF_TEMPLATE % (q(action), q(actor), index, payload_sha256, q(subject), moment)
        ).encode("utf-8")
    return canonical_json(
        {
            "index": index,
            "time": moment,
            "actor": actor,
            "action": action,
            "subject": subject,
            "payload_sha256": payload_sha256,
        }
    )


# canonical_json's encoder, built once: json.dumps builds a JSONEncoder for every call
# given options, and this runs for every leaf. Same options, so the same bytes
# (tests/kernel/test_audit.py holds the two equal).
_PAYLOAD_ENCODER = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)


def append(
    session: Session,
    entries: Iterable[Entry],
    *,
    now: datetime | None = None,
    before: Sequence[tuple[str, tuple[Any, ...]]] = (),
    commit: bool = False,
) -> range:
    """Append entries as consecutive leaves inside the caller's transaction.

    Returns the range of leaf indexes written. Nothing is visible until the caller
    commits, and a rollback leaves the tree as it was.

    ``before``: plain statements (SQL, parameters) of the caller's to run first, ahead
    of the tree-size lock (on PostgreSQL in the same round trip as the lock).
    ``commit``: the caller commits right after this; on PostgreSQL the leaf's write
    and the COMMIT then go in one round trip, and the caller's own commit finds the
    transaction already committed. The lock is held from the lock's statement to that
    COMMIT: one round trip and the COMMIT, instead of two round trips and the COMMIT.
    """
    entries = list(entries)
    connection = session.connection()
    if not entries:
        for sql, params in before:
            connection.exec_driver_sql(sql, params)
        return range(0)
    few = _few_round_trips(connection, len(entries))
    if few and connection.dialect.driver != "psycopg":
        few = False  # the pipelined statements below speak psycopg
    local = _sqlite_driver(connection, len(entries))
    if not few and local is None:
        for sql, params in before:
            connection.exec_driver_sql(sql, params)
    if local is not None:
        locked = _sqlite_size_with_frontier(local, before)
    else:
        locked = _lock_with_frontier(connection, before) if few else None
    if locked is None:
        size = _lock_size(session)
        frontier = merkle.Frontier.from_reader(SessionNodeReader(session), size)
    else:
        size, nodes = locked
        frontier = merkle.Frontier.from_reader(_ReadNodes(nodes, SessionNodeReader(session)), size)
    moment = rfc3339(now or clock.now())
    leaf_rows: list[tuple[int, bytes, str]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    for offset, entry in enumerate(entries):
        index = size + offset
        payload = _PAYLOAD_ENCODER.encode(entry.payload).encode("utf-8")
        leaf = _leaf_bytes(index, moment, entry, hashlib.sha256(payload).hexdigest())
        leaf_rows.append((index, leaf, payload.decode("utf-8")))
        node_rows.extend(frontier.append(merkle.leaf_hash(leaf)))
    new_size = size + len(entries)
    if few:
        if commit:
            _require_nothing_pending(session)
        _write_in_one_statement(connection, leaf_rows, node_rows, new_size, commit=commit)
        if commit:
            session.info[_COMMITTED_BEHIND] = True
        return range(size, new_size)
    if local is not None:
        _sqlite_write(local, leaf_rows, node_rows, new_size)
        return range(size, new_size)
    _insert_many(session, AuditLeaf, ("idx", "leaf", "payload"), leaf_rows)
    _insert_many(session, AuditNode, ("level", "idx", "hash"), node_rows)
    mark = _PLACEHOLDERS.get(connection.dialect.paramstyle)
    if mark is None:
        session.execute(
            AuditState.__table__.update().where(AuditState.id == 1).values(size=new_size)
        )
    else:
        connection.exec_driver_sql(
            f"UPDATE audit_state SET size = {mark} WHERE id = 1", (new_size,)
        )
    return range(size, new_size)


# PostgreSQL, a command's few leaves: two statements instead of five. The tree-size row
# lock is held from the first statement to COMMIT and every command needs it, so the
# round trips in between bound how many commands per second the whole platform commits
# (with many client threads in one process, each round trip also waits for the GIL).
_FEW_LEAVES = 16

# Lock the size row and read the frontier — one (level, (size >> level) - 1) node per
# set bit of the size, as merkle.perfect_subtrees(0, size) — in one statement. After a
# wait for the lock some nodes may be invisible to it: see _ReadNodes.
_LOCK_WITH_FRONTIER = """
SELECT s.size, a.level, a.idx, a.hash
FROM (SELECT size FROM audit_state WHERE id = 1 FOR UPDATE) AS s
LEFT JOIN generate_series(0, 62) AS bit(level) ON ((s.size >> bit.level) & 1) = 1
LEFT JOIN audit_node AS a ON a.level = bit.level AND a.idx = (s.size >> bit.level) - 1
"""


# SQLite, a command's few leaves: the size and the frontier in one statement (the write
# transaction already excludes other writers), and every statement straight to the
# driver, where SQLAlchemy's execution cost more than the statements.
_SIZE_WITH_FRONTIER = """
WITH RECURSIVE bit(level) AS (SELECT 0 UNION ALL SELECT level + 1 FROM bit WHERE level < 62)
SELECT s.size, a.level, a.idx, a.hash
FROM (SELECT size FROM audit_state WHERE id = 1) AS s
LEFT JOIN bit ON ((s.size >> bit.level) & 1) = 1
LEFT JOIN audit_node AS a ON a.level = bit.level AND a.idx = (s.size >> bit.level) - 1
"""


def _sqlite_driver(connection: Any, count: int) -> Any:
    """The sqlite3 connection for a command's few leaves, else None."""
    if connection.dialect.driver != "pysqlite" or count > _FEW_LEAVES:
        return None
    return connection.connection.driver_connection


def _sqlite_size_with_frontier(
    raw: Any, before: Sequence[tuple[str, tuple[Any, ...]]]
) -> tuple[int, dict[tuple[int, int], bytes]] | None:
    for sql, params in before:
        raw.execute(sql, params)
    rows = raw.execute(_SIZE_WITH_FRONTIER).fetchall()
    if not rows:
        return None
    nodes = {(level, idx): bytes(digest) for _size, level, idx, digest in rows if level is not None}
    return rows[0][0], nodes


def _sqlite_write(
    raw: Any,
    leaf_rows: list[tuple[int, bytes, str]],
    node_rows: list[tuple[int, int, bytes]],
    new_size: int,
) -> None:
    leaves = ", ".join(["(?, ?, ?)"] * len(leaf_rows))
    nodes = ", ".join(["(?, ?, ?)"] * len(node_rows))
    raw.execute(
        f"INSERT INTO audit_leaf (idx, leaf, payload) VALUES {leaves}",
        tuple(chain.from_iterable(leaf_rows)),
    )
    raw.execute(
        f"INSERT INTO audit_node (level, idx, hash) VALUES {nodes}",
        tuple(chain.from_iterable(node_rows)),
    )
    raw.execute("UPDATE audit_state SET size = ? WHERE id = 1", (new_size,))


def _few_round_trips(connection: Any, count: int) -> bool:
    dialect = connection.dialect
    return (
        dialect.name == "postgresql"
        and dialect.paramstyle in _PLACEHOLDERS
        and (count <= _FEW_LEAVES)
    )


def _lock_with_frontier(
    connection: Any, before: Sequence[tuple[str, tuple[Any, ...]]] = ()
) -> tuple[int, dict[tuple[int, int], bytes]] | None:
    """(size, frontier nodes) with the size row locked; None before the first append.

    ``before`` runs first, in the same pipeline (one round trip with the lock)."""
    raw = connection.connection.driver_connection
    if before:
        with raw.pipeline():
            for sql, params in before:
                raw.execute(sql, params)
            rows = raw.execute(_LOCK_WITH_FRONTIER).fetchall()
    else:
        rows = raw.execute(_LOCK_WITH_FRONTIER).fetchall()
    if not rows:
        return None
    nodes = {(level, idx): bytes(digest) for _size, level, idx, digest in rows if level is not None}
    return rows[0][0], nodes


class _ReadNodes:
    """Nodes read with the lock, and a second read for any the first one could not see.

    When the lock was waited for, PostgreSQL returns the size row as the previous holder
    committed it, but the joined node rows come from the statement's older snapshot: the
    nodes that holder wrote are missing there. Nodes never change once written, so the
    ones found are right and only the missing ones are read again, in a new statement.
    """

    def __init__(self, nodes: Mapping[tuple[int, int], bytes], more: SessionNodeReader) -> None:
        self.nodes = nodes
        self.more = more

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        found = {key: self.nodes[key] for key in keys if key in self.nodes}
        missing = [key for key in keys if key not in found]
        if missing:
            found.update(self.more.get_nodes(missing))
        return found


def _write_in_one_statement(
    connection: Any,
    leaf_rows: list[tuple[int, bytes, str]],
    node_rows: list[tuple[int, int, bytes]],
    new_size: int,
    *,
    commit: bool = False,
) -> None:
    """Leaves, nodes and the new size in one statement (PostgreSQL's writable CTEs);
    with ``commit``, followed by COMMIT in the same round trip."""
    mark = _PLACEHOLDERS[connection.dialect.paramstyle]
    leaves = ", ".join([f"({mark}, {mark}, {mark})"] * len(leaf_rows))
    nodes = ", ".join([f"({mark}, {mark}, {mark})"] * len(node_rows))
    sql = (
        f"WITH leaves AS (INSERT INTO audit_leaf (idx, leaf, payload) VALUES {leaves}), "
        f"nodes AS (INSERT INTO audit_node (level, idx, hash) VALUES {nodes}) "
        f"UPDATE audit_state SET size = {mark} WHERE id = 1"
    )
    values = [*chain.from_iterable(leaf_rows), *chain.from_iterable(node_rows), new_size]
    raw = connection.connection.driver_connection
    if not commit:
        raw.execute(sql, tuple(values))
        return
    with raw.pipeline():
        raw.execute(sql, tuple(values))
        raw.execute("COMMIT")
    if raw.info.transaction_status != TransactionStatus.IDLE:
        raise AuditCommitError(
            f"the pipelined COMMIT left the connection {raw.info.transaction_status.name}"
        )


class AuditCommitError(RuntimeError):
    """The PostgreSQL commit of ``append(commit=True)`` would not cover every change.

    That COMMIT goes to the driver behind SQLAlchemy's back; ``Session.commit`` then
    only finds an idle connection. Anything the session still had to write — before
    the COMMIT, or flushed by ``Session.commit`` itself afterwards — would run in a new
    implicit transaction outside the audited one, so it is refused instead.
    """


# session.info: the transaction was committed by append(commit=True); a flush now
# would open a new transaction outside the audited one (see _no_flush_after_commit)
_COMMITTED_BEHIND = "xietong.audit.committed_behind"


def _require_nothing_pending(session: Session) -> None:
    if session.new or session.dirty or session.deleted:
        raise AuditCommitError(
            "unflushed changes before the audit's COMMIT: "
            f"{len(session.new)} new, {len(session.dirty)} dirty, {len(session.deleted)} deleted"
        )


@event.listens_for(Session, "before_flush")
def _no_flush_after_commit(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_COMMITTED_BEHIND):
        raise AuditCommitError(
            "a change flushed after the audit's COMMIT would be written outside the "
            "audited transaction"
        )


def end_commit(session: Session) -> None:
    """Forget ``append(commit=True)``'s commit once the caller's commit has run."""
    session.info.pop(_COMMITTED_BEHIND, None)


# --- reading and proofs ------------------------------------------------------------


def tree_size(session: Session) -> int:
    # Plain SQL: every proof asks this first, and an ORM select costs ten times the query.
    connection = session.connection()
    size = connection.exec_driver_sql("SELECT size FROM audit_state WHERE id = 1").scalar()
    return size or 0


def _check_size(session: Session, size: int) -> int:
    current = tree_size(session)
    if size < 0 or size > current:
        raise InvalidInput(
            f"树大小必须在 0 到 {current} 之间",
            f"tree size must be between 0 and {current}",
            code="bad_tree_size",
            details={"tree_size": size, "current": current},
        )
    return current


def root_hash(session: Session, size: int) -> bytes:
    _check_size(session, size)
    return merkle.root_hash(SessionNodeReader(session), size)


def get_leaf(session: Session, index: int) -> AuditLeaf:
    leaf = session.get(AuditLeaf, index)
    if leaf is None:
        raise NotFound.of("审计条目", "audit entry", index)
    return leaf


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    _check_size(session, size)
    if not 0 <= index < size:
        raise InvalidInput(
            "条目序号必须小于树大小",
            "index must be below the tree size",
            code="bad_leaf_index",
            details={"index": index, "tree_size": size},
        )
    return merkle.inclusion_proof(SessionNodeReader(session), index, size)


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    _check_size(session, second)
    if not 0 <= first <= second:
        raise InvalidInput(
            "first 必须在 0 与 second 之间",
            "first must lie between 0 and second",
            code="bad_tree_size",
            details={"first": first, "second": second},
        )
    return merkle.consistency_proof(SessionNodeReader(session), first, second)


# --- signed tree heads -------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp: datetime
    signed_bytes: bytes
    signature: bytes
    public_key: bytes

    def to_json(self) -> dict[str, Any]:
        b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
        return {
            "tree_size": self.tree_size,
            "root_hash": b64(self.root_hash),
            "timestamp": rfc3339(self.timestamp),
            "signed_bytes": b64(self.signed_bytes),
            "signature": b64(self.signature),
            "public_key": b64(self.public_key),
        }


def checkpoint_text(origin: str, size: int, root: bytes, moment: datetime) -> bytes:
    root_b64 = base64.b64encode(root).decode("ascii")
    return f"{origin}\n{size}\n{root_b64}\n— time {rfc3339(moment)}\n".encode()


def parse_checkpoint(signed: bytes) -> tuple[str, int, bytes, datetime]:
    try:
        origin, size, root_b64, time_line = signed.decode("utf-8").split("\n")[:4]
        return (
            origin,
            int(size),
            base64.b64decode(root_b64, validate=True),
            parse_rfc3339(time_line.removeprefix("— time ")),
        )
    except (ValueError, UnicodeDecodeError) as bad:
        raise ValueError(f"malformed checkpoint: {bad}") from bad


def sign_head(
    session: Session, keys: Any, origin: str, size: int | None = None, *, store: bool = True
) -> TreeHead:
    """Sign the head at ``size`` (default: the current size) now.

    The current head is stored (once per size) so that ``audit verify`` can later check
    that the log never contradicted what it once signed.
    """
    current = tree_size(session)
    size = current if size is None else size
    _check_size(session, size)
    root = merkle.root_hash(SessionNodeReader(session), size)
    moment = clock.now()
    signed = checkpoint_text(origin, size, root, moment)
    head = TreeHead(size, root, moment, signed, keys.sign(signed), keys.public_key_raw)
    if store and session.get(AuditTreeHead, size) is None:
        session.add(
            AuditTreeHead(
                tree_size=size,
                root_hash=root,
                timestamp=moment,
                signed_bytes=signed,
                signature=head.signature,
            )
        )
    return head


def verify_head(public_key: bytes, signed_bytes: bytes, signature: bytes) -> None:
    """Raises ``ValueError`` unless ``signature`` is the key's signature of the bytes."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signed_bytes)
    except InvalidSignature as bad:
        raise ValueError("tree head signature does not verify") from bad


# --- full verification -------------------------------------------------------------


@dataclass
class VerifyReport:
    tree_size: int = 0
    heads_checked: int = 0
    problem: str | None = None
    bad_index: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _stream_leaves(
    session: Session, batch: int = 5000
) -> Iterator[tuple[int, bytes, str, bytes | None]]:
    """(index, leaf, payload, stored leaf hash) in index order, in bounded memory."""
    last = -1
    while True:
        rows = session.execute(
            select(AuditLeaf.idx, AuditLeaf.leaf, AuditLeaf.payload, AuditNode.hash)
            .outerjoin(AuditNode, (AuditNode.level == 0) & (AuditNode.idx == AuditLeaf.idx))
            .where(AuditLeaf.idx > last)
            .order_by(AuditLeaf.idx)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row[0], row[1], row[2], row[3]
        last = rows[-1][0]


def verify_log(session: Session, public_key: bytes) -> VerifyReport:
    """Recompute the tree from the stored leaves and hold it against every signed head.

    Detects an altered leaf or payload (digest, index field, stored leaf hash), a removed
    or reordered leaf (gaps, index fields out of place), a stored inner node that differs
    from the tree recomputed from the leaves (proofs and new heads are served from those
    nodes), and any rewrite that kept the hashes consistent but contradicts a signed head.
    """
    report = VerifyReport(tree_size=tree_size(session))
    heads = {
        head.tree_size: head
        for head in session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size))
    }
    for head in heads.values():
        try:
            verify_head(public_key, head.signed_bytes, head.signature)
            _, size, root, _ = parse_checkpoint(head.signed_bytes)
        except ValueError as bad:
            report.problem = f"tree head {head.tree_size}: {bad}"
            return report
        if size != head.tree_size or root != head.root_hash:
            report.problem = f"tree head {head.tree_size}: stored fields differ from signed text"
            return report

    frontier = merkle.Frontier()
    expected = 0
    last_good_head = 0
    inner: dict[tuple[int, int], bytes] = {}  # recomputed inner nodes not yet compared
    for idx, leaf, payload, stored_hash in _stream_leaves(session):
        problem = _leaf_problem(idx, leaf, payload, expected)
        digest = merkle.leaf_hash(leaf)
        if problem is None and stored_hash != digest:
            problem = "leaf hash differs from the stored tree node"
        if problem is not None:
            report.problem, report.bad_index = problem, expected
            return report
        for level, node_idx, node in frontier.append(digest)[1:]:
            inner[level, node_idx] = node
        expected += 1
        head = heads.get(expected)
        if head is not None or len(inner) >= _NODE_CHECK_BATCH:
            if _inner_node_problem(session, inner, report):
                return report
            inner.clear()
        if head is not None:
            report.heads_checked += 1
            if frontier.root() != head.root_hash:
                report.problem = (
                    f"leaves {last_good_head}..{expected - 1} do not match the signed "
                    f"tree head of size {expected}"
                )
                report.bad_index = last_good_head
                return report
            last_good_head = expected
    if _inner_node_problem(session, inner, report):
        return report
    if expected != report.tree_size:
        report.problem = f"log holds {expected} leaves but its size is {report.tree_size}"
        report.bad_index = expected
    elif heads and max(heads) > expected:
        report.problem = f"a signed tree head of size {max(heads)} exceeds the log"
        report.bad_index = expected
    return report


_NODE_CHECK_BATCH = 4096
"""Recomputed inner nodes compared with the stored ones per query in verify_log."""


def _inner_node_problem(
    session: Session, recomputed: Mapping[tuple[int, int], bytes], report: VerifyReport
) -> bool:
    """Compare recomputed inner nodes with the stored ones; report the first that differs.

    The nodes come from consecutive leaves, so each level's indexes form one range and
    the stored side is read with one range condition per level.
    """
    if not recomputed:
        return False
    ranges: dict[int, tuple[int, int]] = {}
    for level, idx in recomputed:
        low, high = ranges.get(level, (idx, idx))
        ranges[level] = (min(low, idx), max(high, idx))
    rows = session.execute(
        select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(
            or_(
                *(
                    (AuditNode.level == level) & AuditNode.idx.between(low, high)
                    for level, (low, high) in ranges.items()
                )
            )
        )
    )
    stored = {(level, idx): digest for level, idx, digest in rows}
    bad = [key for key, digest in recomputed.items() if stored.get(key) != digest]
    if not bad:
        return False
    level, idx = min(bad, key=lambda key: (key[1] << key[0], key[0]))
    first, last = idx << level, ((idx + 1) << level) - 1
    report.problem = (
        f"stored tree node (level {level}, index {idx}) over leaves {first}..{last} "
        "differs from the hash recomputed from the leaves"
    )
    report.bad_index = first
    return True


def _leaf_problem(idx: int, leaf: bytes, payload: str, expected: int) -> str | None:
    if idx != expected:
        return f"leaf {expected} is missing (next stored index is {idx})"
    try:
        fields = json.loads(leaf)
    except ValueError:
        return "leaf is not valid JSON"
    if canonical_json(fields) != leaf:
        return "leaf is not canonical JSON"
    if fields.get("index") != expected:
        return f"leaf at position {expected} says index {fields.get('index')} (reordered?)"
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    if fields.get("payload_sha256") != digest:
        return "payload does not match the leaf's payload_sha256"
    return None
