"""同步机制: providers publish changes; subscribers with a grant receive them.

A change is ``{op: upsert|delete, key, data: {item: value}}``. It arrives by API push
(the provider's system, ``publish_changes``) or by the connector poll (``poll_all``, a
periodic worker job reading rows whose ``poll_field`` grew past the stored cursor).

Each change is stored once, unmasked (``exchange_change``; its id orders all changes).
In the same transaction, one ``exchange.change.delivered`` event per active
subscription whose department holds an active grant is put in the outbox, with the
data cut to that grant's items and masked by its rules. The bus carries it to in-process
and NATS consumers; the kernel's webhook machinery to the subscriber's endpoint, signed
(Standard Webhooks), retried with backoff, dead-lettered when it keeps failing.

Replay from a given point: ``changes_since`` reads a subscription's changes after a
change id (cut and masked by the grant as it is *now*); ``replay`` puts them on the bus
and webhooks again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.exchange.connectors.base import FetchRequest, ProviderFailure
from xietong.apps.exchange.connectors.settings import LIVE
from xietong.apps.exchange.events import ChangeDelivered
from xietong.apps.exchange.grants import grant_state, today
from xietong.apps.exchange.masking import mask_rows
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.service import guarded, load
from xietong.apps.exchange.sharing_models import Change, Connector, Grant, Subscription
from xietong.apps.exchange.vocab import Status
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize, operator_actor
from xietong.kernel.access import Resource as Guarded
from xietong.kernel.bus.models import WebhookSubscription
from xietong.kernel.bus.webhooks import SECRET_AD, check_url, generate_secret
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

PUBLISH = "exchange.change.publish"
MANAGE = "exchange.subscription.manage"
EVENT_TYPE = "exchange.change.delivered"
MAX_CHANGES = 1000
POLL_BATCH = 500


@dataclass(frozen=True)
class ChangeInput:
    op: str
    key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    resource_code: str
    consumer_id: int
    webhook_id: int | None
    webhook_url: str | None
    active: bool
    created_at: datetime
    webhook_secret: str | None = None  # only in the answer that created it


@dataclass(frozen=True)
class ChangeView:
    id: int
    op: str
    key: str
    data: dict[str, Any]
    source: str
    created_at: datetime


def _active_grant(session: Session, resource_id: int, consumer_id: int) -> Grant | None:
    on = today()
    rows = session.scalars(
        select(Grant).where(
            Grant.resource_id == resource_id,
            Grant.consumer_id == consumer_id,
            Grant.status == "active",
        )
    )
    valid = [row for row in rows if grant_state(row, on) == "active"]
    return max(valid, key=lambda g: len(g.items)) if valid else None


def cut(grant: Grant, data: dict[str, Any]) -> dict[str, Any]:
    """The change's data as this grant may see it: its items only, masked."""
    kept = {item: data[item] for item in grant.items if item in data}
    return mask_rows([kept], {k: v for k, v in (grant.masked or {}).items() if k in kept})[0]


def _view(session: Session, row: Subscription, code: str, secret: str | None = None):
    url = None
    if row.webhook_id is not None:
        hook = session.get(WebhookSubscription, row.webhook_id)
        url = hook.url if hook is not None else None
    return SubscriptionView(
        row.id, code, row.consumer_id, row.webhook_id, url, row.active, row.created_at, secret
    )


def subscribe(
    ctx: Context,
    actor: Actor,
    code: str,
    *,
    webhook_url: str | None = None,
    consumer_code: str | None = None,
) -> SubscriptionView:
    """Subscribe a department holding a grant; with a URL, also a signed webhook."""
    authorize(actor, MANAGE)
    url = check_url(webhook_url) if webhook_url else None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        resource = load(session, code)
        if consumer_code:
            consumer = session.scalar(select(Department).where(Department.code == consumer_code))
            if consumer is None:
                raise NotFound.of("部门", "Department", consumer_code)
            consumer_id = consumer.id
        elif len(actor.department_ids) == 1:
            consumer_id = next(iter(actor.department_ids))
        else:
            raise InvalidInput("请指定订阅部门", "Name the subscribing department")
        authorize(actor, MANAGE, Guarded("exchange.subscription", consumer_id))
        if _active_grant(session, resource.id, consumer_id) is None:
            raise Forbidden(
                "订阅须先获得该资源的有效授权",
                "A subscription needs an active grant on the resource",
                code="no_grant",
            )
        now = clock.now()
        secret = None
        webhook_id = None
        if url:
            secret = generate_secret()
            hook = WebhookSubscription(
                name=f"exchange {resource.code} → dept {consumer_id}",
                url=url,
                secret_encrypted=ctx.keys.encrypt(secret.encode("ascii"), SECRET_AD),
                event_types=[EVENT_TYPE],
                department_id=consumer_id,
                active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(hook)
            session.flush()
            webhook_id = hook.id
        row = Subscription(
            resource_id=resource.id,
            consumer_id=consumer_id,
            webhook_id=webhook_id,
            active=True,
            created_by=actor.label,
            created_at=now,
        )
        session.add(row)
        session.flush()
        uow.record(
            "exchange.subscription.create",
            f"exchange.subscription:{row.id}",
            {"resource": resource.code, "consumer_id": consumer_id, "webhook_url": url},
        )
        view = _view(session, row, resource.code, secret)
        uow.commit()
    return view


def _check_changes(resource: Resource, changes: Sequence[ChangeInput]) -> list[ChangeInput]:
    if not changes or len(changes) > MAX_CHANGES:
        raise InvalidInput(
            f"每次发布 1–{MAX_CHANGES} 条变更",
            f"Publish 1–{MAX_CHANGES} changes at a time",
            code="invalid_changes",
        )
    names = {item.name for item in resource.items}
    cleaned = []
    for number, change in enumerate(changes):
        if change.op not in {"upsert", "delete"}:
            raise InvalidInput(
                f"第 {number + 1} 条：op 应为 upsert 或 delete",
                f"Change {number + 1}: op must be upsert or delete",
                code="invalid_change_op",
            )
        key = str(change.key or "").strip()
        if not key or len(key) > 200:
            raise InvalidInput(
                f"第 {number + 1} 条：缺少记录键 key",
                f"Change {number + 1}: a key is required",
                code="invalid_change_key",
            )
        unknown = sorted(set(change.data or {}) - names)
        if unknown:
            raise InvalidInput(
                f"第 {number + 1} 条：资源没有信息项 {'、'.join(unknown)}",
                f"Change {number + 1}: no items {', '.join(unknown)}",
                code="unknown_items",
            )
        cleaned.append(ChangeInput(change.op, key, dict(change.data or {})))
    return cleaned


def _fan_out(uow: UnitOfWork, resource: Resource, rows: Sequence[Change]) -> int:
    """One event per (change, subscription with an active grant); returns the count."""
    session = uow.session
    subscriptions = list(
        session.scalars(
            select(Subscription).where(
                Subscription.resource_id == resource.id, Subscription.active.is_(True)
            )
        )
    )
    sent = 0
    for sub in subscriptions:
        grant = _active_grant(session, resource.id, sub.consumer_id)
        if grant is None:
            continue  # expired or revoked: the subscription stays, deliveries stop
        for row in rows:
            uow.emit(
                ChangeDelivered(
                    resource.code,
                    sub.consumer_id,
                    (resource.provider_id, sub.consumer_id),
                    row.id,
                    sub.id,
                    row.op,
                    row.key,
                    {} if row.op == "delete" else cut(grant, row.data),
                ),
                "exchange",
            )
            sent += 1
    return sent


def _store(
    uow: UnitOfWork, resource: Resource, changes: Sequence[ChangeInput], source: str
) -> tuple[list[Change], int]:
    now = clock.now()
    rows = [
        Change(
            resource_id=resource.id,
            op=change.op,
            key=change.key,
            data=change.data,
            source=source,
            created_at=now,
        )
        for change in changes
    ]
    uow.session.add_all(rows)
    uow.session.flush()
    sent = _fan_out(uow, resource, rows)
    uow.record(
        "exchange.change.publish",
        f"exchange.resource:{resource.code}",
        {
            "source": source,
            "count": len(rows),
            "first_change_id": rows[0].id,
            "last_change_id": rows[-1].id,
            "deliveries": sent,
        },
    )
    return rows, sent


def publish_changes(
    ctx: Context, actor: Actor, code: str, changes: Sequence[ChangeInput]
) -> dict[str, int]:
    """The provider pushes changes (its steward, or its connected system)."""
    authorize(actor, PUBLISH)
    with UnitOfWork(ctx, actor) as uow:
        resource = load(uow.session, code)
        authorize(actor, PUBLISH, guarded(resource.provider_id))
        if resource.status != Status.PUBLISHED.value:
            raise NotFound.of("信息资源", "Resource", code)
        cleaned = _check_changes(resource, changes)
        rows, sent = _store(uow, resource, cleaned, "push")
        result = {"first_change_id": rows[0].id, "count": len(rows), "deliveries": sent}
        uow.commit()
    return result


def _load_subscription(session: Session, actor: Actor, subscription_id: int) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None:
        raise NotFound.of("订阅", "Subscription", subscription_id)
    authorize(actor, MANAGE, Guarded("exchange.subscription", row.consumer_id))
    return row


def changes_since(
    ctx: Context, actor: Actor, subscription_id: int, after: int = 0, limit: int = 100
) -> list[ChangeView]:
    """The subscription's changes after change ``after``, as its grant sees them now."""
    authorize(actor, MANAGE)
    if after < 0 or not 1 <= limit <= 1000:
        raise InvalidInput("after ≥ 0，limit 1–1000", "after ≥ 0, limit 1–1000")
    with ctx.db.read() as session:
        sub = _load_subscription(session, actor, subscription_id)
        grant = _active_grant(session, sub.resource_id, sub.consumer_id)
        if grant is None:
            raise Forbidden("授权已失效", "The grant is no longer active", code="no_grant")
        rows = session.scalars(
            select(Change)
            .where(Change.resource_id == sub.resource_id, Change.id > after)
            .order_by(Change.id)
            .limit(limit)
        )
        return [
            ChangeView(
                row.id,
                row.op,
                row.key,
                {} if row.op == "delete" else cut(grant, row.data),
                row.source,
                row.created_at,
            )
            for row in rows
        ]


def replay(ctx: Context, actor: Actor, subscription_id: int, after: int = 0) -> int:
    """Deliver the subscription's changes after ``after`` again (bus and webhook)."""
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        sub = _load_subscription(session, actor, subscription_id)
        resource = session.get_one(Resource, sub.resource_id)
        grant = _active_grant(session, sub.resource_id, sub.consumer_id)
        if grant is None:
            raise Forbidden("授权已失效", "The grant is no longer active", code="no_grant")
        rows = list(
            session.scalars(
                select(Change)
                .where(Change.resource_id == sub.resource_id, Change.id > after)
                .order_by(Change.id)
                .limit(10_000)
            )
        )
        for row in rows:
            uow.emit(
                ChangeDelivered(
                    resource.code,
                    sub.consumer_id,
                    (resource.provider_id, sub.consumer_id),
                    row.id,
                    sub.id,
                    row.op,
                    row.key,
                    {} if row.op == "delete" else cut(grant, row.data),
                ),
                "exchange",
            )
        uow.record(
            "exchange.subscription.replay",
            f"exchange.subscription:{sub.id}",
            {"after": after, "count": len(rows)},
        )
        uow.commit()
    return len(rows)


def list_subscriptions(ctx: Context, actor: Actor) -> list[SubscriptionView]:
    from xietong.kernel.access import visible_departments

    authorize(actor, MANAGE)
    departments = visible_departments(actor, MANAGE)
    query = select(Subscription, Resource.code).join(Resource).order_by(Subscription.id.desc())
    if departments is not None:
        query = query.where(Subscription.consumer_id.in_(sorted(departments)))
    with ctx.db.read() as session:
        return [_view(session, row, code) for row, code in session.execute(query)]


# --- the connector poll ---------------------------------------------------------------


def poll_resource(ctx: Context, resource_id: int) -> int:
    """Read rows past the cursor and publish them as upserts; returns how many."""
    with ctx.db.read() as session:
        resource = session.get(Resource, resource_id)
        connector = session.scalar(select(Connector).where(Connector.resource_id == resource_id))
        if resource is None or connector is None or resource.status != Status.PUBLISHED.value:
            return 0
        config = connector.config or {}
        poll_field, key_field = config.get("poll_field"), config.get("key_field")
        if not poll_field or not key_field:
            return 0
        items = [item.name for item in resource.items]
        session.expunge(connector)
    mapping = connector.fields or {}
    sources = {item: mapping.get(item, item) for item in items}
    wanted = tuple(dict.fromkeys([*sources.values(), poll_field, key_field]))
    cursor = connector.poll_cursor
    # the cursor keeps its JSON type: an integer sequence compares as a number
    after = (poll_field, json.loads(cursor)) if cursor else None
    request = FetchRequest(wanted, {}, POLL_BATCH, 0, after)
    try:
        page = LIVE.get(ctx, connector).fetch(request)
    except ProviderFailure:
        return 0  # the next poll tries again from the same cursor
    if not page.rows:
        return 0
    changes = [
        ChangeInput(
            "upsert",
            str(row.get(key_field)),
            {item: _plain(row.get(source)) for item, source in sources.items()},
        )
        for row in page.rows
    ]
    newest = json.dumps(_plain(max(row[poll_field] for row in page.rows)), ensure_ascii=False)
    with UnitOfWork(ctx, operator_actor("exchange-poll")) as uow:
        stored = uow.session.get(Connector, connector.id)
        if stored is None or stored.poll_cursor != cursor:
            return 0  # another worker polled meanwhile: its cursor wins
        stored.poll_cursor = newest
        resource = uow.session.get_one(Resource, resource_id)
        _store(uow, resource, changes, "poll")
        uow.commit()
    return len(changes)


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def poll_all(ctx: Context) -> int:
    """The periodic job: poll every connector that has a ``poll_field``."""
    with ctx.db.read() as session:
        ids = [
            resource_id
            for resource_id, config in session.execute(
                select(Connector.resource_id, Connector.config)
            )
            if (config or {}).get("poll_field")
        ]
    return sum(poll_resource(ctx, resource_id) for resource_id in ids)
