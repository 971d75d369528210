"""Writing the engine's own rows without the ORM's flush.

A step creates and changes a handful of instance, branch, token and task rows. The
ORM's unit of work (dependency sort, per-mapper actions, statement compilation, one
UPDATE per changed row) was the largest single cost of a step. These rows are simple:
their ids are given before they are written (``Run.new_id``), no relationship is read
or set, and two tables carry a version counter. So they are written here as plain
statements in a ``Batch`` — on PostgreSQL one pipeline, one round trip — and the
objects are then made persistent and unmodified in the session, exactly as after a
flush, with SQLAlchemy's public ``make_transient_to_detached`` and ``Session.add``.

What the ORM did and this keeps: column defaults applied on INSERT and set on the
object; an UPDATE only of the columns that changed; ``version = version + 1 … WHERE
version = ?`` on versioned rows and a row count check on every UPDATE (a mismatch is
``StaleRow``, which the engine turns into a Conflict); INSERTs before UPDATEs, in
foreign-key order (instance, branch, token, task). Whatever this does not handle — a
deleted row, a new row without its id, a new row of a table the engine's rows refer
to (a user, a department, a definition) — goes to the ORM's flush, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import NO_VALUE

from xietong.kernel.db import Batch, Processor
from xietong.kernel.workflow.store import WfFork, WfInstance, WfTask, WfToken

ENGINE_CLASSES: tuple[type[Any], ...] = (WfInstance, WfFork, WfToken, WfTask)
"""In foreign-key order: a branch refers to its instance, a task to its token."""

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class _Shape:
    """One engine table: its columns, attribute keys, defaults and version column."""

    def __init__(self, cls: type[Any]) -> None:
        mapper = inspect(cls)
        table = mapper.local_table
        assert isinstance(table, Table)
        self.table = table
        self.columns = [column.name for column in table.columns]
        self.keys = [mapper.get_property_by_column(column).key for column in table.columns]
        self.key_of = dict(zip(self.columns, self.keys, strict=True))
        self.column_of = dict(zip(self.keys, self.columns, strict=True))
        self.position = {name: index for index, name in enumerate(self.columns)}
        self.version = mapper.version_id_col.name if mapper.version_id_col is not None else None
        self.defaults: dict[str, Callable[[], Any]] = {}
        for column, key in zip(table.columns, self.keys, strict=True):
            default = column.default
            if default is None or column.primary_key:
                continue
            if getattr(default, "is_scalar", False):
                value = default.arg  # type: ignore[attr-defined]
                self.defaults[key] = lambda value=value: value
            elif getattr(default, "is_callable", False):
                call = default.arg  # type: ignore[attr-defined]
                self.defaults[key] = lambda call=call: call(None)
        self._updates: dict[tuple[str, tuple[str, ...]], tuple[str, list[Processor]]] = {}

    def update(self, dialect: Any, columns: tuple[str, ...]) -> tuple[str, list[Processor]]:
        """``UPDATE … SET <columns> WHERE id = ? [AND version = ?]`` and its processors."""
        cache_key = (dialect.name, columns)
        found = self._updates.get(cache_key)
        if found is None:
            mark = _PLACEHOLDERS[dialect.paramstyle]
            quote = dialect.identifier_preparer.quote
            sets = [f"{quote(name)} = {mark}" for name in columns]
            where = f"id = {mark}"
            if self.version is not None:
                sets.append(f"{quote(self.version)} = {mark}")
                where += f" AND {quote(self.version)} = {mark}"
            sql = f"UPDATE {quote(self.table.name)} SET {', '.join(sets)} WHERE {where}"
            processors = [
                self.table.c[name].type._cached_bind_processor(dialect) for name in columns
            ]
            found = self._updates[cache_key] = (sql, processors)
        return found


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[Any]) -> _Shape:
    found = _SHAPES.get(cls)
    if found is None:
        found = _SHAPES[cls] = _Shape(cls)
    return found


def _referenced_tables() -> frozenset[str]:
    """Tables outside the engine's that its rows refer to by foreign key."""
    own = {_shape(cls).table.name for cls in ENGINE_CLASSES}
    return frozenset(
        fk.column.table.name
        for cls in ENGINE_CLASSES
        for fk in _shape(cls).table.foreign_keys
        if fk.column.table.name not in own
    )


_REFERENCED: frozenset[str] | None = None


def queue_rows(session: Session, batch: Batch) -> Callable[[], None] | None:
    """Queue the session's new and changed engine rows on ``batch``.

    Returns what to call once the batch ran (it marks the objects flushed), or None
    when the ORM must flush this session's changes instead (nothing is queued then).
    """
    global _REFERENCED
    if _REFERENCED is None:
        _REFERENCED = _referenced_tables()
    for item in session.deleted:
        if type(item) in _SHAPES or isinstance(item, ENGINE_CLASSES):
            return None
    new: dict[type[Any], list[Any]] = {}
    for item in session.new:
        cls = type(item)
        if cls in ENGINE_CLASSES:
            if item.id is None:
                return None
            new.setdefault(cls, []).append(item)
        else:
            table = getattr(item, "__table__", None)
            if table is None or table.name in _REFERENCED:
                return None
    dirty = [item for item in session.dirty if type(item) in ENGINE_CLASSES]
    if not new and not dirty:
        return lambda: None
    dialect = batch.connection.dialect
    for cls in ENGINE_CLASSES:
        rows = new.get(cls)
        if rows:
            shape = _shape(cls)
            batch.add_rows(shape.table, shape.columns, [_insert_values(shape, r) for r in rows])
    for item in sorted(dirty, key=lambda row: (ENGINE_CLASSES.index(type(row)), row.id)):
        _queue_update(dialect, batch, _shape(type(item)), item)
    written = [item for rows in new.values() for item in rows] + dirty
    return lambda: _settle(session, written)


# private (pyproject pins SQLAlchemy below 2.2; test_rows.py fails if it goes away)
_REGISTER_PERSISTENT: Callable[[Session, set[Any]], None] | None = getattr(
    Session, "_register_persistent", None
)


def _settle(session: Session, written: list[Any]) -> None:
    """Mark the written objects as a flush would: persistent, in the identity map,
    unmodified, and known to the transaction (a rollback expires them)."""
    if _REGISTER_PERSISTENT is not None:
        # the ORM's own last step of a flush (UOWTransaction.finalize_flush_changes);
        # tests/kernel/workflow/test_rows.py checks the session's view afterwards
        _REGISTER_PERSISTENT(session, {inspect(item) for item in written})
        return
    for item in written:  # the public way, at several times the cost
        if inspect(item).persistent:
            session.expunge(item)
            make_transient(item)
        elif inspect(item).pending:
            session.expunge(item)
        make_transient_to_detached(item)
        session.add(item)


def _insert_values(shape: _Shape, item: Any) -> tuple[Any, ...]:
    values = item.__dict__
    for key, default in shape.defaults.items():
        if values.get(key) is None:
            # as the ORM does on INSERT: a column left unset (or None) gets its default,
            # which is also set on the object
            values[key] = default()
    return tuple(values.get(key) for key in shape.keys)


def _queue_update(dialect: Any, batch: Batch, shape: _Shape, item: Any) -> None:
    state = inspect(item)
    current = state.dict
    changed: list[str] = []
    values: list[Any] = []
    # the attributes set since the row was loaded or last written, with their values
    # then; one set back to its old value is not written (nor by the ORM)
    for key, original in state.committed_state.items():
        column = shape.column_of.get(key)
        if column is None or column == shape.version or key not in current:
            continue
        value = current[key]
        if original is not NO_VALUE and value == original:
            continue
        changed.append(column)
        values.append(value)
    if not changed:
        return
    if len(changed) > 1:  # one statement per set of columns, whatever the order set
        pairs = sorted(zip(changed, values, strict=True), key=lambda p: shape.position[p[0]])
        changed = [column for column, _ in pairs]
        values = [value for _, value in pairs]
    sql, processors = shape.update(dialect, tuple(changed))
    params = [
        value if process is None or value is None else process(value)
        for value, process in zip(values, processors, strict=True)
    ]
    params.append(item.id)
    if shape.version is not None:
        key = shape.key_of[shape.version]
        old = item.__dict__[key]
        params[-1:-1] = [old + 1]
        params.append(old)
        item.__dict__[key] = old + 1  # settled with the rest: the row's new version
    batch.add(sql, tuple(params), expect=1)
