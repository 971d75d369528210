"""Storage: one SQLAlchemy 2 engine per process, SQLite by default, PostgreSQL in production.

SQLite runs in WAL mode with foreign keys on and ``synchronous`` chosen in settings
(FULL by default — see docs/decisions/0002-sqlite-durability.md). Write transactions
start with ``BEGIN IMMEDIATE`` so two writers never both read and then fail to upgrade
their lock; read-only sessions start deferred and never block writers. Within one
process, writers of one SQLite file queue on a lock before ``BEGIN IMMEDIATE``: SQLite's
own busy handler makes a waiting writer sleep (1, 2, 5, 10 … 100 ms) and retry, which
with eight threads cut throughput by half and put 0.4 s on the slowest steps; the lock
hands the database over the moment the previous writer's commit returns. Other
processes still meet at SQLite's lock, as before.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out — on SQLite too, which drops the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime}  # noqa: RUF012 (SQLAlchemy API)


def is_sqlite(url_or_engine: str | Engine | Connection) -> bool:
    if isinstance(url_or_engine, str):
        return url_or_engine.startswith("sqlite")
    return url_or_engine.dialect.name == "sqlite"


_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()
_HOLDS_WRITER_LOCK = "xietong_writer_lock"
WRITER_LOCK_TIMEOUT_S = 30.0
"""As long as SQLite's busy timeout: a writer waits that long, then fails as before."""


def _writer_lock(url: str) -> threading.Lock:
    """One lock per SQLite file in this process (every engine on the file shares it)."""
    database = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
    key = os.path.realpath(database) if database and database != ":memory:" else url
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.Lock())


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> Engine:
    if not is_sqlite(url):
        # No ``pool_pre_ping``: it cost a round trip on every checkout, i.e. on every
        # command and read. A connection the server dropped (a restart) fails the one
        # statement that finds it; SQLAlchemy then sees a disconnect and invalidates
        # the whole pool, so the next checkout connects afresh. ``pool_recycle``
        # retires connections before an idle timeout in between (a proxy, a firewall)
        # can cut them.
        return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800)

    # A small pool of long-lived connections: opening one costs the pragmas, and closing
    # the last connection of a process checkpoints the WAL — per command, that made a
    # trivial audited command cost 5 ms. The pool hands a connection to one thread at a
    # time, so ``check_same_thread`` can be off. Beyond the pool, connections are opened
    # as needed, without a bound: a writer queued for the writer lock holds its
    # connection while it waits, and with a bound a dozen queued writers left none for a
    # read made by the writer holding the lock (the calendar reloading inside a step),
    # which waited out the pool's timeout while every writer waited for it. Threads
    # bound the connections instead (one each at most).
    engine = create_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=-1,
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    writer_lock = _writer_lock(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that our BEGIN is
        # the one that runs (see the "begin" listener).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            # A writer: queue in-process first (see the module docstring). The lock is
            # released when the connection goes back to the pool, after COMMIT or
            # ROLLBACK has returned.
            info = conn.connection.info
            if not info.get(_HOLDS_WRITER_LOCK):
                if not writer_lock.acquire(timeout=WRITER_LOCK_TIMEOUT_S):
                    raise sqlite3.OperationalError("database is locked")
                info[_HOLDS_WRITER_LOCK] = True
        statement = f"BEGIN {mode}"
        try:
            # Straight to the driver: this runs for every transaction, and SQLAlchemy's
            # statement execution (context, cursor wrapping, result setup) cost more
            # than the BEGIN itself. A driver error is wrapped as exec_driver_sql would
            # have wrapped it (sqlalchemy.exc.OperationalError for "database is locked").
            try:
                conn.connection.driver_connection.execute(statement)
            except sqlite3.Error as bad:
                raise DBAPIError.instance(statement, (), bad, sqlite3.Error) from bad
        except BaseException:
            _release_writer(conn.connection.info, writer_lock)
            raise

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        _release_writer(record.info, writer_lock)

    @event.listens_for(engine, "close")
    def _close(_dbapi_conn: Any, record: Any) -> None:
        _release_writer(record.info, writer_lock)

    return engine


def _release_writer(info: dict[Any, Any], lock: threading.Lock) -> None:
    if info.pop(_HOLDS_WRITER_LOCK, False):
        lock.release()


# --- plain inserts for hot paths -------------------------------------------------------

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_ROWS_PER_STATEMENT = 100

Processor = Callable[[Any], Any] | None


class PlainInsert:
    """The SQL text and bind processors of one INSERT, built once per dialect."""

    def __init__(self, dialect: Any, table: Table, columns: Sequence[str]) -> None:
        mark = _PLACEHOLDERS[dialect.paramstyle]
        quote = dialect.identifier_preparer.quote
        self.head = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
        )
        self.one_row = f"({', '.join([mark] * len(columns))})"
        self.processors: list[Processor] = [
            table.c[c].type._cached_bind_processor(dialect) for c in columns
        ]

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """Python values to the driver's, as the ORM converts them; None stays SQL NULL."""
        # list comprehensions, not generators: these run for every value of every row
        # a command writes, and resuming a generator per value cost more than the work
        return tuple(
            [
                value if process is None or value is None else process(value)
                for value, process in zip(row, self.processors, strict=True)
            ]
        )


_INSERTS: dict[tuple[str, str, tuple[str, ...]], PlainInsert] = {}


def plain_insert(dialect: Any, table: Table, columns: Sequence[str]) -> PlainInsert:
    key = (dialect.name, table.name, tuple(columns))
    found = _INSERTS.get(key)
    if found is None:
        found = _INSERTS[key] = PlainInsert(dialect, table, columns)
    return found


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT ``rows`` (values in ``columns`` order) as multi-row VALUES statements.

    For the write paths that run in every command (history, outbox): no ORM unit of
    work, no statement compilation and no cache-key walk; the rows go to the driver as
    tuples, converted by the columns' own bind processors (JSON, UTC datetimes). A None
    is written as SQL NULL.
    """
    if not rows:
        return
    for sql, params in insert_statements(connection.dialect, table, columns, rows):
        connection.exec_driver_sql(sql, params)


def insert_statements(
    dialect: Any, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[tuple[str, tuple[Any, ...]]]:
    """``insert_rows`` as (SQL, parameters) pairs, for a ``Batch``."""
    prepared = plain_insert(dialect, table, columns)
    converted = [prepared.convert(row) for row in rows]
    return [
        (
            prepared.head + ", ".join([prepared.one_row] * len(chunk)),
            tuple([value for row in chunk for value in row]),
        )
        for chunk in (
            converted[start : start + _ROWS_PER_STATEMENT]
            for start in range(0, len(converted), _ROWS_PER_STATEMENT)
        )
    ]


class StaleRow(Exception):
    """A statement of a ``Batch`` changed another number of rows than expected."""

    def __init__(self, sql: str, expected: int, changed: int) -> None:
        super().__init__(f"{changed} rows changed, {expected} expected: {sql[:120]}")
        self.expected = expected


class Batch:
    """Plain statements that need no answer but their row counts, sent together.

    On PostgreSQL (psycopg) they go in one pipeline: one round trip for all of them
    instead of one each, in the caller's transaction. On SQLite, where a statement costs
    no round trip, they run one after the other through the connection. Either way they
    run in order, and a statement given ``expect`` rows (an UPDATE with a version check)
    that changed another number raises ``StaleRow`` after the batch ran; the caller's
    transaction must then roll back.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.items: list[tuple[str, tuple[Any, ...], int | None]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, sql: str, params: tuple[Any, ...], *, expect: int | None = None) -> None:
        self.items.append((sql, params, expect))

    def add_rows(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            for sql, params in insert_statements(self.connection.dialect, table, columns, rows):
                self.add(sql, params)

    def send(self) -> None:
        items, self.items = self.items, []
        if not items:
            return
        # The statements go to the driver directly, so SQLAlchemy's cursor events (echo,
        # statement counters) do not see them; bench/workflow.py counts at the driver.
        driver = self.connection.dialect.driver
        raw = self.connection.connection.driver_connection
        if driver == "psycopg" and len(items) > 1:
            counts = _pipelined(raw, items)
        elif driver == "pysqlite":
            # SQLite: no round trips to save, but SQLAlchemy's execution (result setup,
            # events, cursor wrapping) cost more than the statements themselves
            counts = [raw.execute(sql, params).rowcount for sql, params, _ in items]
        else:
            counts = [
                self.connection.exec_driver_sql(sql, params).rowcount for sql, params, _ in items
            ]
        for (sql, _params, expect), count in zip(items, counts, strict=True):
            if expect is not None and count != expect:
                raise StaleRow(sql, expect, count)


def _pipelined(raw: Any, items: Sequence[tuple[str, tuple[Any, ...], int | None]]) -> list[int]:
    """Run statements in one psycopg pipeline on the connection's transaction."""
    with raw.pipeline():
        cursors = [raw.execute(sql, params) for sql, params, _ in items]
    return [cursor.rowcount for cursor in cursors]


class Database:
    """The engine and the two kinds of session the platform opens."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False):
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, echo=echo)
        self.is_sqlite = is_sqlite(url)
        writer_bind = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self._writer = sessionmaker(bind=writer_bind, expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)

    def write_session(self) -> Session:
        """A session for one command: on SQLite it holds the write lock from its start."""
        return self._writer()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session; rolled back at the end, whatever happened."""
        session = self._reader()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
