"""Storage: one SQLAlchemy 2 engine per process, SQLite by default, PostgreSQL in production.

SQLite runs in WAL mode with foreign keys on and ``synchronous`` chosen in settings
(FULL by default — see docs/decisions/0002-sqlite-durability.md). Write transactions
start with ``BEGIN IMMEDIATE`` so two writers never both read and then fail to upgrade
their lock; read-only sessions start deferred and never block writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Connection
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


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> Engine:
    if not is_sqlite(url):
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)

    # A small pool of long-lived connections: opening one costs the pragmas, and closing
    # the last connection of a process checkpoints the WAL — per command, that made a
    # trivial audited command cost 5 ms. The pool hands a connection to one thread at a
    # time, so ``check_same_thread`` can be off.
    engine = create_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=10,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

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
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


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
