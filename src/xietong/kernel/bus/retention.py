"""Retention: the bus's bookkeeping rows are pruned once they can no longer matter.

Without it the outbox, the consumer markers, finished jobs and delivered webhooks grow
by one row per event forever. What is kept, and why:

- outbox events not yet published — always (the relay still needs them);
- published events younger than ``bus_retention_days`` — the window ``replay_from``
  can reach back into (older requests are refused with a clear error);
- consumer markers as long as their event could still be redelivered, which is the
  same window: a published event older than it is gone from the outbox, and JetStream
  keeps a stream no longer than that either;
- dead webhook deliveries and failed jobs — always: an operator must see them;
- delivered webhooks and done jobs — the same window, for the delivery log.

The audit log is never pruned here: it is append-only and its tree must stay whole.
Each pass deletes in bounded batches so it never holds the writer lock for long.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Table, delete, select, tuple_

from xietong.kernel import clock
from xietong.kernel.bus.models import ProcessedEvent, ScheduledJob, WebhookDelivery
from xietong.kernel.context import Context
from xietong.kernel.outbox import OutboxEvent

BATCH = 1000


def retention_cutoff(ctx: Context) -> datetime:
    """Events and bookkeeping older than this moment may be gone."""
    return clock.now() - timedelta(days=ctx.settings.bus_retention_days)


def _delete_batch(ctx: Context, table: Table, keys: list[Column[Any]], condition: Any) -> int:
    """Delete up to BATCH rows matching ``condition``, chosen by their primary ``keys``;
    one short transaction, so the writer lock is held only briefly."""
    victims = select(*keys).where(condition).limit(BATCH)
    target = keys[0] if len(keys) == 1 else tuple_(*keys)
    with ctx.db.write_session() as session, session.begin():
        result = session.execute(delete(table).where(target.in_(victims)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def prune_once(ctx: Context) -> int:
    """One bounded pass over every kind of row; returns how many rows were deleted."""
    cutoff = retention_cutoff(ctx)
    outbox = OutboxEvent.__table__
    deliveries = WebhookDelivery.__table__
    jobs = ScheduledJob.__table__
    markers = ProcessedEvent.__table__
    batches = [
        (
            outbox,
            [outbox.c.seq],
            outbox.c.published_at.is_not(None) & (outbox.c.published_at < cutoff),
        ),
        (
            deliveries,
            [deliveries.c.id],
            (deliveries.c.status == "delivered") & (deliveries.c.delivered_at < cutoff),
        ),
        (jobs, [jobs.c.id], (jobs.c.status == "done") & (jobs.c.finished_at < cutoff)),
        (
            markers,
            [markers.c.consumer, markers.c.event_id],
            markers.c.processed_at < cutoff,
        ),
    ]
    return sum(_delete_batch(ctx, *batch) for batch in batches)


def prune(ctx: Context) -> int:
    """The periodic job: bounded passes until one finds nothing more to delete."""
    total = 0
    for _ in range(100):
        deleted = prune_once(ctx)
        total += deleted
        if deleted == 0:
            break
    return total
