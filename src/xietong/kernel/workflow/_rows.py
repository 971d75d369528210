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
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, configure_mappers, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import NO_VALUE, instance_state

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
    return tuple([values.get(key) for key in shape.keys])


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


# --- reading the engine's rows without the ORM's query machinery ------------------------
#
# A step reads a few rows by key (the task, its instance and token; the live tokens and
# the group's tasks at a join or a multi-instance node). Through ``Session.execute`` each
# such read cost more than the query itself on SQLite: statement caching and
# compilation lookup, execution context, result metadata, the loading machinery. Here
# the SQL is written once per dialect, runs on the driver's connection, and each row
# becomes an object exactly as the ORM's loader makes one for a row it has not seen:
# a new instance with its identity key, attached to the session's identity map, its
# columns converted by the columns' own result processors and committed (unmodified).


_CONNECTION_KEY = "xietong.workflow.connection"


def connection_of(session: Session) -> Connection:
    """``session.connection()``, kept for the transaction: a step asks for it a dozen
    times, and each ``Session.connection`` call walks the session's transaction state."""
    held = session.info.get(_CONNECTION_KEY)
    transaction = session.get_transaction()
    if held is not None and held[0] is transaction and transaction is not None:
        return held[1]
    connection = session.connection()
    session.info[_CONNECTION_KEY] = (session.get_transaction(), connection)
    return connection


class _Reader:
    """SELECT list and result processors of one engine table, for one dialect."""

    def __init__(self, cls: type[Any], dialect: Any) -> None:
        shape = _shape(cls)
        self.cls = cls
        self.mapper = inspect(cls)
        self.manager = self.mapper.class_manager
        self.keys = shape.keys
        self.width = len(shape.columns)
        self.quoted = [dialect.identifier_preparer.quote(name) for name in shape.columns]
        self.dialect = dialect
        self.types = [column.type for column in shape.table.columns]
        # set from the first result's description: some processors depend on the type
        # the driver reports (PostgreSQL's numeric types)
        self.processors: list[Processor] | None = None
        self.id_at = shape.position["id"]

    def select_list(self, alias: str) -> str:
        return ", ".join(f"{alias}.{name}" for name in self.quoted)


_READERS: dict[tuple[str, type[Any]], _Reader] = {}


def reader(dialect: Any, cls: type[Any]) -> _Reader:
    key = (dialect.name, cls)
    found = _READERS.get(key)
    if found is None:
        found = _READERS[key] = _Reader(cls, dialect)
    return found


class Known(Exception):
    """A row read is already in the session: the caller reads it through the ORM."""


def load_rows(
    session: Session,
    classes: tuple[type[Any], ...],
    sql: str,
    params: tuple[Any, ...],
    *,
    refresh: bool = False,
) -> list[tuple[Any, ...]]:
    """Run ``sql`` (its columns: each class's ``select_list`` in turn) on the driver and
    return one tuple of objects per row.

    A row whose object the session already holds gives that object, unchanged (as an
    ORM query without ``populate_existing``); with ``refresh`` (the ORM's
    ``populate_existing``), such a row raises ``Known`` instead, and the caller reads
    through the ORM, which knows how to overwrite an object in use.
    """
    connection = connection_of(session)
    dialect = connection.dialect
    readers = [reader(dialect, cls) for cls in classes]
    cursor = connection.connection.driver_connection.execute(sql, params)
    rows = cursor.fetchall()
    if not rows:
        return []
    start = 0
    for read in readers:
        if read.processors is None:
            described = cursor.description[start : start + read.width]
            read.processors = [
                kind._cached_result_processor(dialect, column[1])
                for kind, column in zip(read.types, described, strict=True)
            ]
        start += read.width
    identity_map = session.identity_map
    session_id = session.hash_key
    out: list[tuple[Any, ...]] = []
    for row in rows:
        objects = []
        start = 0
        for read in readers:
            end = start + read.width
            row_id = row[start + read.id_at]
            key = (read.cls, (row_id,), None)
            found = identity_map.get(key)
            if found is not None:
                if refresh:
                    raise Known(key)
                objects.append(found)
                start = end
                continue
            instance = read.manager.new_instance()
            state = instance_state(instance)
            values = state.dict
            processors = read.processors
            assert processors is not None
            for name, process, value in zip(read.keys, processors, row[start:end], strict=True):
                values[name] = value if process is None or value is None else process(value)
            state.key = key
            state.identity_token = None
            state.session_id = session_id
            identity_map._add_unpresent(state, key)
            objects.append(instance)
            start = end
        out.append(tuple(objects))
    return out


def placeholder(dialect: Any) -> str:
    return _PLACEHOLDERS[dialect.paramstyle]


_PLAIN: dict[tuple[str, str], str] = {}
_TEMPLATES: dict[tuple[str, str], str] = {}


def plain_rows(session: Session, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of plain columns (ints, strings) read on the driver's connection.

    ``sql`` is written with ``?`` placeholders; on a ``%s`` driver they are swapped
    once per statement. Only for columns whose driver values are already what the
    engine compares (no result processor: ids, strings).
    """
    connection = connection_of(session)
    dialect = connection.dialect
    key = (dialect.paramstyle, sql)
    text = _PLAIN.get(key)
    if text is None:
        text = _PLAIN[key] = sql.replace("?", _PLACEHOLDERS[dialect.paramstyle])
    return connection.connection.driver_connection.execute(text, params).fetchall()


def reader_sql(dialect: Any, classes: tuple[type[Any], ...], template: str) -> str:
    """``template`` with ``{0}``, ``{1}`` … the select lists of ``classes`` (aliases
    ``c0``, ``c1`` …) and ``?`` placeholders in the dialect's style; built once."""
    key = (dialect.name, template)  # the select lists quote names as the dialect does
    text = _TEMPLATES.get(key)
    if text is None:
        lists = [reader(dialect, cls).select_list(f"c{n}") for n, cls in enumerate(classes)]
        text = template.format(*lists).replace("?", _PLACEHOLDERS[dialect.paramstyle])
        _TEMPLATES[key] = text
    return text


_CONFIGURED: set[type[Any]] = set()


def add_new(session: Session, cls: type[Any], values: dict[str, Any]) -> Any:
    """A new engine row, added to the session: ``session.add(cls(**values))`` without
    the constructor's instrumented ``setattr`` per column (half the cost of a new row
    here). The values go straight into the object's state, as the ORM's own loader
    fills it; a new object has no history to record, and ``queue_rows`` writes it from
    that state."""
    if cls not in _CONFIGURED:
        configure_mappers()  # what the first construction of any mapped class does
        _CONFIGURED.add(cls)
    instance = inspect(cls).class_manager.new_instance()
    instance_state(instance).dict.update(values)
    session.add(instance)
    return instance
