"""The delivery log and dead letters: what an operator sees and replays.

Deliveries that kept failing are *dead* (kept, never dropped). ``replay_dead`` gives them
a fresh set of attempts once the receiver is fixed; ``replay_from`` re-sends everything a
subscription wanted since a moment — including events from before it existed. Receivers
deduplicate on ``webhook-id`` (the event id), so a replay is safe for them. Both are
audited under ``bus.webhook.manage``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.bus.claim import insert_ignore
from xietong.kernel.bus.models import DELIVERY_STATUSES, WebhookDelivery
from xietong.kernel.bus.relay import subscription_wants
from xietong.kernel.bus.retention import retention_cutoff
from xietong.kernel.bus.webhooks import ACTION, load_subscription
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.uow import UnitOfWork


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    subscription_id: int
    event_id: str
    event_type: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def replay_dead(
    ctx: Context,
    actor: Actor,
    *,
    delivery_ids: list[int] | None = None,
    subscription_id: int | None = None,
) -> int:
    """Send dead letters again from a fresh attempt count; returns how many."""
    authorize(actor, ACTION)
    if not delivery_ids and subscription_id is None:
        raise InvalidInput(
            "请指定投递记录或订阅", "Give delivery ids or a subscription", details=None
        )
    stmt = update(WebhookDelivery).where(WebhookDelivery.status == "dead")
    if delivery_ids:
        stmt = stmt.where(WebhookDelivery.id.in_(delivery_ids))
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    with UnitOfWork(ctx, actor) as uow:
        if subscription_id is not None:
            load_subscription(uow.session, subscription_id)
        result = uow.session.execute(
            stmt.values(_requeue()).execution_options(synchronize_session=False)
        )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        subject = f"webhook:{subscription_id}" if subscription_id is not None else "webhook:*"
        payload = {"op": "replay_dead", "delivery_ids": delivery_ids or [], "count": count}
        uow.record(ACTION, subject, payload)
        uow.commit()
    return count


def _requeue() -> dict[str, Any]:
    return {
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": clock.now(),
        "locked_by": None,
        "locked_until": None,
        "delivered_at": None,
    }


def replay_from(ctx: Context, actor: Actor, subscription_id: int, since: datetime) -> int:
    """Queue again every published event since ``since`` that the subscription wants.

    Deliveries already made are sent again (receivers deduplicate on ``webhook-id``,
    which is the event id); events from before the subscription existed are added.
    Deliveries in flight are left to finish. Returns the number queued.
    """
    authorize(actor, ACTION)
    kept_since = retention_cutoff(ctx)
    if since < kept_since:
        raise InvalidInput(
            f"只能重放保留期（{ctx.settings.bus_retention_days} 天）内的事件，"
            f"最早 {kept_since.isoformat()}",
            f"Only events within the retention window ({ctx.settings.bus_retention_days} "
            f"days) can be replayed, from {kept_since.isoformat()}",
            code="replay_beyond_retention",
            details={"since": since.isoformat(), "earliest": kept_since.isoformat()},
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load_subscription(session, subscription_id)
        events = session.execute(
            select(OutboxEvent.event_id, OutboxEvent.cloudevent)
            .where(OutboxEvent.created_at >= since, OutboxEvent.published_at.is_not(None))
            .order_by(OutboxEvent.seq)
            .execution_options(yield_per=500)
        )
        wanted = [
            event_id for event_id, text in events if subscription_wants(row, json.loads(text))
        ]
        count = 0
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .where(WebhookDelivery.event_id.in_(chunk))
                .where(WebhookDelivery.status != "delivering")
                .values(_requeue())
                .execution_options(synchronize_session=False)
            )
            count += int(result.rowcount or 0)  # type: ignore[attr-defined]
            now = clock.now()
            fresh = [
                {
                    "subscription_id": subscription_id,
                    "event_id": event_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event_id in chunk
            ]
            count += insert_ignore(session, WebhookDelivery, fresh, ["subscription_id", "event_id"])
        payload = {"op": "replay_from", "since": since.isoformat(), "count": count}
        uow.record(ACTION, f"webhook:{subscription_id}", payload)
        uow.commit()
    return count


def list_deliveries(
    ctx: Context,
    actor: Actor,
    *,
    subscription_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[DeliveryInfo]:
    """Newest first, with the event type, for the operator's delivery log."""
    authorize(actor, ACTION)
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(
            f"未知的投递状态：{status}", f"Unknown delivery status: {status}", details=None
        )
    stmt = (
        select(WebhookDelivery, OutboxEvent.type)
        .outerjoin(OutboxEvent, OutboxEvent.event_id == WebhookDelivery.event_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(max(1, min(limit, 500)))
        .offset(max(offset, 0))
    )
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    with ctx.db.read() as session:
        return [_delivery_info(row, event_type) for row, event_type in session.execute(stmt)]


def count_deliveries(ctx: Context, actor: Actor, subscription_id: int) -> dict[str, int]:
    """Deliveries of one subscription by status (for the subscription's page)."""
    authorize(actor, ACTION)
    with ctx.db.read() as session:
        rows = session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.subscription_id == subscription_id)
            .group_by(WebhookDelivery.status)
        )
        counts = {status: 0 for status in DELIVERY_STATUSES}
        counts.update({status: int(n) for status, n in rows})
        return counts


def _delivery_info(row: WebhookDelivery, event_type: str | None) -> DeliveryInfo:
    return DeliveryInfo(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )
