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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_committers: dict[str, _Committer] = {}
_guard = threading.Lock()


def commit_leaf(ctx: Context, entry: audit.Entry, row: dict[str, Any]) -> int:
    """Append ``entry`` and insert the query-log ``row``; returns the leaf index once
    durable."""
    with _guard:
        committer = _committers.setdefault(ctx.db.url, _Committer())
    return committer.submit(ctx, _Item(entry, row))
