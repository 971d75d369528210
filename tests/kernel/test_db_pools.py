"""SQLite: writers queued for the in-process writer lock must not starve readers.

A queued writer holds a pooled connection while it waits. When the pool had a bound
(5 + 10), fifteen queued writers left no connection for a read made by the writer
holding the lock (the working calendar reloading inside a step), which then waited out
the pool's 30-s timeout while everyone waited for it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from xietong.kernel.db import Database


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
