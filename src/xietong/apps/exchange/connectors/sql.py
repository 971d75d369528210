"""SQL connector: a table or view in the provider's database, read-only.

Every query is built with SQLAlchemy Core from the *reflected* table: a field or filter
name that is not one of its columns is refused before any SQL exists, and values only
ever travel as bound parameters — no SQL is ever assembled from strings, so a filter
value such as ``' OR 1=1 --`` is just a value that matches nothing.

Read-only is enforced twice: by the connection (SQLite opened with ``mode=ro``;
PostgreSQL sessions with ``default_transaction_read_only``), and by never committing —
each call runs in a transaction that is rolled back. Rows are paged in the database
(``ORDER BY`` the key, ``LIMIT``/``OFFSET``), never loaded whole.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from xietong.apps.exchange.connectors.base import (
    FetchRequest,
    FetchResult,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    page_of,
)
from xietong.kernel.errors import InvalidInput


def check_url(url: str) -> None:
    """InvalidInput unless ``url`` is a SQLite file or a PostgreSQL database URL."""
    _parse(url)


def _parse(url: str) -> Any:
    try:
        parsed = make_url(url)
    except ArgumentError as bad:
        raise InvalidInput(
            "数据库连接串格式不正确", "Malformed database URL", code="invalid_sql_url"
        ) from bad
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise InvalidInput(
            f"暂不支持的数据库类型：{backend}（支持 sqlite、postgresql）",
            f"Unsupported database: {backend} (sqlite, postgresql)",
            code="unsupported_database",
        )
    if backend == "sqlite" and (not parsed.database or parsed.database == ":memory:"):
        raise InvalidInput(
            "SQLite 连接须指向一个数据库文件",
            "A SQLite connection must name a database file",
            code="invalid_sql_url",
        )
    return parsed


def _engine(url: str, timeout_s: float) -> Engine:
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=timeout_s, check_same_thread=False
            )

        # An explicit QueuePool: for a URL without a file name SQLAlchemy would pick
        # SingletonThreadPool, which closes connections other threads are still using.
        return create_engine(
            "sqlite://", creator=connect, poolclass=QueuePool, pool_size=8, max_overflow=8
        )
    options = "-c default_transaction_read_only=on"  # PostgreSQL, the other one allowed
    options += f" -c statement_timeout={int(timeout_s * 1000)}"
    return create_engine(
        parsed,
        connect_args={"options": options, "connect_timeout": max(1, int(timeout_s))},
        pool_size=8,
        max_overflow=8,
    )


class SqlConnector:
    def __init__(self, url: str, table: str, *, key: str | None = None, timeout_s: float = 5.0):
        self.engine = _engine(url, timeout_s)
        self.table_name = table
        self.key = key
        self._table: Table | None = None

    def table(self) -> Table:
        """The reflected table or view (cached): the only source of column names."""
        if self._table is None:
            schema, _, name = self.table_name.rpartition(".")
            try:
                self._table = Table(
                    name, MetaData(), schema=schema or None, autoload_with=self.engine
                )
            except NoSuchTableError as missing:
                raise ProviderError(
                    f"提供方数据库中没有表或视图：{self.table_name}",
                    f"No table or view {self.table_name} in the provider's database",
                ) from missing
            except DBAPIError as down:
                raise ProviderUnavailable(
                    "无法连接提供方数据库", "Cannot reach the provider's database"
                ) from down
        return self._table

    def columns(self) -> list[str]:
        return [column.name for column in self.table().columns]

    def _column(self, name: str) -> Any:
        table = self.table()
        if name not in table.c:
            raise ProviderError(
                f"提供方表中没有字段：{name}",
                f"The provider's table has no column {name}",
                details={"column": name},
            )
        return table.c[name]

    def fetch(self, request: FetchRequest) -> FetchResult:
        table = self.table()
        chosen = [self._column(name) for name in request.fields]
        query = select(*chosen)
        for name, value in request.filters.items():
            query = query.where(self._column(name) == value)
        order = [self._column(self.key)] if self.key else list(table.primary_key.columns)
        if request.after is not None:
            column = self._column(request.after[0])
            query = query.where(column > request.after[1])
            order = [column, *order]
        query = query.order_by(*(order or [table.c[0]]))
        query = query.limit(request.limit + 1).offset(request.offset)
        try:
            with self.engine.connect() as connection:
                try:
                    rows = [dict(row._mapping) for row in connection.execute(query)]
                finally:
                    connection.rollback()
        except DBAPIError as failed:
            text = str(failed.orig).lower()
            if "timeout" in text or "canceling statement" in text:
                raise ProviderTimeout(
                    "提供方数据库查询超时", "The provider's database query timed out"
                ) from failed
            raise ProviderUnavailable(
                "提供方数据库查询失败", "The provider's database query failed"
            ) from failed
        except SQLAlchemyError as failed:
            raise ProviderError(
                "提供方数据库查询失败", "The provider's database query failed"
            ) from failed
        return page_of(rows, request.limit)

    def close(self) -> None:
        self.engine.dispose()
