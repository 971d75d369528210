"""The outbox relay: committed events go to the bus, then fan out to webhook deliveries.

``relay_once`` takes unpublished ``OutboxEvent`` rows in ``seq`` order, hands each to a
publisher, and marks it published only after the publisher accepted it. A relay that
dies in between publishes the row again on the next run; consumers deduplicate by
event id and JetStream by message id, so at-least-once publication has one effect.

In the transaction that marks events published, one ``WebhookDelivery`` is inserted per
matching active subscription (insert-if-absent, so a re-relay adds nothing).

Several relays at once:

- PostgreSQL: the batch is selected ``FOR UPDATE SKIP LOCKED`` in a transaction held
  while publishing, so two workers never publish the same row concurrently, and a
  worker's death releases its rows (the transaction aborts).
- SQLite: the write lock cannot be held while publishing — in-process consumers write
  to the same database. Rows are read, published, then marked in a short write
  transaction; relays of one process take turns on a lock. SQLite deployments run one
  worker process; a second one would at worst publish a row twice (deduplicated).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.bus.claim import insert_ignore
from xietong.kernel.bus.consumers import (
    CloudEvent,
    Consumer,
    deliver_to_consumer,
    hook_consumers,
    matches,
)
from xietong.kernel.bus.models import WebhookDelivery, WebhookSubscription
from xietong.kernel.context import Context
from xietong.kernel.outbox import OutboxEvent

log = logging.getLogger(__name__)


class PublisherUnavailable(Exception):
    """The bus cannot take messages now (NATS down): stop this batch, retry later."""


class ConsumerFailed(Exception):
    """At least one in-process consumer raised; the event stays unpublished and retries."""


class Publisher(Protocol):
    def publish(self, event: CloudEvent) -> None:
        """Return once the bus durably accepted ``event``; raise otherwise."""

    def close(self) -> None: ...


class InProcessBus:
    """Delivers each event to the matching in-process consumers, each idempotently.

    A failing consumer does not stop the others; the event is reported failed and the
    next relay delivers it again — consumers that already applied it skip it.
    """

    def __init__(self, ctx: Context, consumers: Sequence[Consumer] | None = None) -> None:
        self.ctx = ctx
        self._consumers = list(consumers) if consumers is not None else None

    @property
    def consumers(self) -> list[Consumer]:
        if self._consumers is None:
            self._consumers = hook_consumers(self.ctx)
        return self._consumers

    def publish(self, event: CloudEvent) -> None:
        failures: list[str] = []
        for name, pattern, handler in self.consumers:
            if not matches(pattern, event["type"]):
                continue
            try:
                deliver_to_consumer(self.ctx, name, handler, event)
            except Exception as error:
                log.exception("consumer %s failed on event %s", name, event["id"])
                failures.append(f"{name}: {error!r}")
        if failures:
            raise ConsumerFailed("; ".join(failures)[:2000])

    def close(self) -> None:
        pass


_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def _sqlite_lock(ctx: Context) -> threading.Lock:
    with _sqlite_locks_guard:
        return _sqlite_locks.setdefault(ctx.db.url, threading.Lock())


def relay_once(ctx: Context, publisher: Publisher, batch: int = 100) -> int:
    """Publish up to ``batch`` committed events; returns how many were published."""
    unpublished = (
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.seq)
        .limit(batch)
    )
    if ctx.db.is_sqlite:
        with _sqlite_lock(ctx):
            with ctx.db.read() as reader:
                rows = list(reader.scalars(unpublished))
                reader.expunge_all()  # keep them loaded past the read's rollback
            if not rows:
                return 0
            outcome = _publish(publisher, rows)
            with ctx.db.write_session() as session, session.begin():
                return _record(session, rows, outcome)
    with ctx.db.write_session() as session, session.begin():
        rows = list(session.scalars(unpublished.with_for_update(skip_locked=True)))
        if not rows:
            return 0
        outcome = _publish(publisher, rows)
        return _record(session, rows, outcome)


def _publish(publisher: Publisher, rows: Sequence[OutboxEvent]) -> dict[int, str | None]:
    """Publish rows in order: seq → None when accepted, or the error text."""
    outcome: dict[int, str | None] = {}
    for row in rows:
        try:
            publisher.publish(row.to_cloudevent())
            outcome[row.seq] = None
        except PublisherUnavailable as error:
            # The bus is down: the rest of the batch would fail the same way, slowly.
            log.warning("bus unavailable, relay pauses: %s", error)
            outcome[row.seq] = repr(error)
            break
        except Exception as error:
            log.exception("publishing event %s failed", row.event_id)
            outcome[row.seq] = repr(error)
    return outcome


def _record(session: Session, rows: Sequence[OutboxEvent], outcome: dict[int, str | None]) -> int:
    now = clock.now()
    published = [row for row in rows if row.seq in outcome and outcome[row.seq] is None]
    for row in rows:
        error = outcome.get(row.seq)
        if error is not None:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.seq == row.seq)
                .values(attempts=OutboxEvent.attempts + 1, last_error=error[:2000])
                .execution_options(synchronize_session=False)
            )
    if published:
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_([row.seq for row in published]))
            .where(OutboxEvent.published_at.is_(None))
            .values(published_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )
        fan_out(session, [row.to_cloudevent() for row in published])
    return len(published)


def subscription_wants(subscription: WebhookSubscription, event: CloudEvent) -> bool:
    """Type matches a pattern, and for a department's subscription, the event is its own.

    A department-scoped subscription sees only events whose data names its department
    (``department_id`` or ``department_ids``): a department sees its own cases and what
    was shared with it, and an event that names no department is not its business.
    """
    if not any(matches(pattern, event["type"]) for pattern in subscription.event_types):
        return False
    if subscription.department_id is None:
        return True
    data: Any = event.get("data")
    if not isinstance(data, dict):
        return False
    named = set(data.get("department_ids") or [])
    named.add(data.get("department_id"))
    return subscription.department_id in named


def fan_out(session: Session, events: Sequence[CloudEvent]) -> int:
    """Queue one pending delivery per (matching active subscription, event)."""
    subscriptions = list(
        session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))
    )
    if not subscriptions:
        return 0
    now = clock.now()
    rows = [
        {
            "subscription_id": sub.id,
            "event_id": event["id"],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for sub in subscriptions
        if subscription_wants(sub, event)
    ]
    return insert_ignore(session, WebhookDelivery, rows, ["subscription_id", "event_id"])
