"""Outbound webhooks: subscriptions, their deliveries, replay of dead letters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.kernel import bus
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.events import registered_types

router = APIRouter(prefix="/webhooks", tags=["webhooks 事件订阅"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Manager = Annotated[Actor, Depends(allow("bus.webhook.manage"))]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    url: AnyHttpUrl
    event_types: list[str] = Field(min_length=1, max_length=100)
    secret: str | None = None
    department_id: int | None = None


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery_ids: list[int] | None = None
    since: AwareDatetime | None = None


@router.get("/event-types")
def event_types(actor: Manager) -> list[dict[str, str]]:
    """Every event type an integrator can subscribe to."""
    return [
        {"type": name, "description": cls.description}
        for name, cls in sorted(registered_types().items())
    ]


@router.get("/subscriptions")
def list_subscriptions(ctx: CtxDep, actor: Manager) -> list[dict[str, Any]]:
    return [asdict(s) for s in bus.list_subscriptions(ctx, actor)]


@router.post("/subscriptions", status_code=201)
def create_subscription(body: SubscriptionIn, ctx: CtxDep, actor: Manager) -> dict[str, Any]:
    """The secret is in this response only; the receiver verifies signatures with it."""
    created = bus.create_subscription(
        ctx,
        actor,
        name=body.name,
        url=str(body.url),
        event_types=body.event_types,
        secret=body.secret,
        department_id=body.department_id,
    )
    return {"subscription": asdict(created.subscription), "secret": created.secret}


@router.delete("/subscriptions/{subscription_id}")
def deactivate_subscription(subscription_id: int, ctx: CtxDep, actor: Manager) -> dict[str, Any]:
    return asdict(bus.deactivate_subscription(ctx, actor, subscription_id))


@router.get("/subscriptions/{subscription_id}/deliveries")
def list_deliveries(
    subscription_id: int,
    ctx: CtxDep,
    actor: Manager,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    items = bus.list_deliveries(
        ctx, actor, subscription_id=subscription_id, status=status, limit=limit, offset=offset
    )
    return {
        "counts": bus.count_deliveries(ctx, actor, subscription_id),
        "items": [asdict(item) for item in items],
    }


@router.post("/subscriptions/{subscription_id}/replay")
def replay(subscription_id: int, body: ReplayIn, ctx: CtxDep, actor: Manager) -> dict[str, int]:
    """Dead letters again (all, or the given ones), or every event since a time."""
    if body.since is not None:
        queued = bus.replay_from(ctx, actor, subscription_id, body.since)
    elif body.delivery_ids:
        queued = bus.replay_dead(ctx, actor, delivery_ids=body.delivery_ids)
    else:
        queued = bus.replay_dead(ctx, actor, subscription_id=subscription_id)
    return {"queued": queued}
