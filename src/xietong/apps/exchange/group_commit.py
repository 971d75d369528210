"""Group commit for the gateway's audit leaves: many queries, one transaction.

Every gateway answer waits for its audit leaf to be durable (the consumer gets the
leaf's index, and an exchange that is not in the log must not have happened). With one
transaction per query, the commit — an fsync on SQLite with ``synchronous=FULL``, the
tree-size row lock on PostgreSQL — bounds the whole gateway. Here a query hands its
leaf and query-log row to the committer and waits; the first waiter becomes the
leader, takes everything pending, writes it in one transaction and wakes the others.
Queries arriving meanwhile form the next batch. Nothing waits on a timer: alone, a
query commits at once; under load, batches grow by themselves.

A failed batch fails every query in it (each answers 500 and nothing was logged for
any of them), so "answered" still implies "in the log".

Two committers with the same batching: ``commit_leaf`` for blocking callers (threads
wait on a condition; the first becomes the leader and writes) and ``acommit_leaf`` for
the async gateway route (queries await a future; one task per event loop drains the
pending list, writing each batch in a worker thread so the loop keeps serving while
SQLite fsyncs or PostgreSQL round-trips). The two may run at once in one process: each
batch is one ``audit.append`` transaction, and the audit log serialises those itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from anyio import to_thread

from xietong.apps.exchange.ratelimit import LIMITER
from xietong.apps.exchange.sharing_models import QueryLog
from xietong.kernel import audit, clock
from xietong.kernel.context import Context


@dataclass
class _Item:
    entry: audit.Entry
    row: dict[str, Any]
    done: bool = False
    index: int = -1
    error: BaseException | None = None
    moment: datetime | None = field(default=None)


class _Committer:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: list[_Item] = []
        self.leading = False

    def submit(self, ctx: Context, item: _Item) -> int:
        with self.cond:
            self.pending.append(item)
            while not item.done and self.leading:
                self.cond.wait()
            if not item.done:
                self.leading = True
                batch, self.pending = self.pending, []
            else:
                batch = []
        if batch:
            try:
                _write(ctx, batch)
            except BaseException as error:
                for each in batch:
                    each.error = error
            finally:
                with self.cond:
                    for each in batch:
                        each.done = True
                    self.leading = False
                    self.cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.index


def _write(ctx: Context, batch: list[_Item]) -> None:
    """One transaction: the leaves, the query-log rows and the grants' rate windows.

    The queries were admitted by the rate limiter (pending there); once this commits
    they are counted in the database, and the limiter learns the windows as they now
    stand — other processes' queries included. If it fails, they are released.
    """
    counts = Counter(
        (ctx.db.url, item.row["grant_id"]) for item in batch if item.row.get("grant_id")
    )
    session = ctx.db.write_session()
    try:
        session.begin()
        now = clock.now()
        indexes = audit.append(session, [item.entry for item in batch], now=now)
        rows = []
        for item, index in zip(batch, indexes, strict=True):
            item.index = index
            rows.append({**item.row, "audit_index": index, "created_at": now})
        session.execute(QueryLog.__table__.insert(), rows)
        seen = (
            LIMITER.record(session.connection(), ctx.db.url, {g: n for (_, g), n in counts.items()})
            if counts
            else {}
        )
        session.commit()
    except BaseException:
        session.rollback()
        LIMITER.release(counts.items())
        raise
    finally:
        session.close()
    LIMITER.committed(counts, seen)


_committers: dict[str, _Committer] = {}
_guard = threading.Lock()


def commit_leaf(ctx: Context, entry: audit.Entry, row: dict[str, Any]) -> int:
    """Append ``entry`` and insert the query-log ``row``; returns the leaf index once
    durable."""
    with _guard:
        committer = _committers.setdefault(ctx.db.url, _Committer())
    return committer.submit(ctx, _Item(entry, row))


class _AsyncCommitter:
    """One per (database, event loop): the loop's queries wait on futures, and a single
    drain task writes whatever is pending, batch after batch, until nothing is."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: list[tuple[_Item, asyncio.Future[int]]] = []
        self.draining: asyncio.Task[None] | None = None

    async def submit(self, item: _Item) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self.draining is None:
            self.draining = asyncio.get_running_loop().create_task(self._drain())
        # shield: a client that disconnects must not cancel the batch its leaf is in
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await to_thread.run_sync(_write, self.ctx, [item for item, _ in batch])
                except BaseException as error:  # the whole batch failed: so does each query
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                else:
                    for item, future in batch:
                        if not future.done():
                            future.set_result(item.index)
        finally:
            self.draining = None


_async_committers: dict[tuple[str, asyncio.AbstractEventLoop], _AsyncCommitter] = {}


async def acommit_leaf(ctx: Context, entry: audit.Entry, row: dict[str, Any]) -> int:
    """``commit_leaf`` for coroutines on the event loop: no thread waits for the commit."""
    key = (ctx.db.url, asyncio.get_running_loop())
    committer = _async_committers.get(key)
    if committer is None:
        with _guard:
            for stale in [k for k in _async_committers if k[1].is_closed()]:
                del _async_committers[stale]
            committer = _async_committers.setdefault(key, _AsyncCommitter(ctx))
    return await committer.submit(_Item(entry, row))
