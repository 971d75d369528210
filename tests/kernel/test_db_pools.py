"""SQLite: writers queued for the in-process writer lock must not starve readers.

A queued writer holds a pooled connection while it waits. When the pool had a bound
(5 + 10), fifteen queued writers left no connection for a read made by the writer
holding the lock (the working calendar reloading inside a step), which then waited out
the pool's 30-s timeout while everyone waited for it."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from xietong.kernel.db import Database, _writer_lock


def test_a_writer_reads_while_many_writers_queue(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'pools.db'}")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    holder = db.write_session()
    holder.begin()
    holder.execute(text("INSERT INTO t VALUES (0)"))  # BEGIN IMMEDIATE: holds the lock
    queued = threading.Barrier(21)

    def write(n: int) -> None:
        queued.wait()
        with db.write_session() as session, session.begin():
            session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

    with ThreadPoolExecutor(20) as pool:
        writers = [pool.submit(write, n) for n in range(1, 21)]
        queued.wait()
        deadline = time.monotonic() + 10
        while _waiting(db) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waiting(db) >= 15  # more than the pool keeps: once, none were left
        # the holder reads through another session while twenty writers queue
        with ThreadPoolExecutor(1) as one:
            read = one.submit(lambda: _count(db))
            assert read.result(timeout=10) == 0
        holder.commit()
        holder.close()
        for writer in writers:
            writer.result(timeout=60)
    assert _count(db) == 21
    db.dispose()


def _count(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(text("SELECT count(*) FROM t")).scalar_one())


def _waiting(db: Database) -> int:
    """Connections checked out (the holder's and the queued writers')."""
    return int(db.engine.pool.checkedout())


def test_a_writer_begins_immediate_and_a_failed_begin_frees_the_lock(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE goes to the driver directly (not through exec_driver_sql): it must
    still take SQLite's write lock at once, fail as SQLAlchemy's OperationalError when
    another process holds that lock, and then leave the in-process writer lock free."""
    path = tmp_path / "begin.db"
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))

    @event.listens_for(db.engine, "connect")
    def _no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")  # fail at once instead of after 30 s

    db.engine.dispose()  # reconnect with the listener above
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        # The writer holds SQLite's lock from its first statement, a read included.
        with db.write_session() as session, session.begin():
            session.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        # Another process's writer: our BEGIN IMMEDIATE fails like any statement.
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"), db.write_session() as session:
            session.execute(text("SELECT 1"))
        assert not _writer_lock(db.url).locked()
        other.execute("COMMIT")
        with db.write_session() as session, session.begin():
            session.execute(text("INSERT INTO t VALUES (1)"))
        assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        other.close()
        db.dispose()
