"""Sharing API under /api/v1/exchange: connectors, requests, grants, the gateway, receipts.

Mounted before the catalogue's router: its ``/resources/{code:path}`` routes would
otherwise take ``/resources/<code>/connector`` for a resource code.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, allow_async, get_ctx
from xietong.apps.exchange import (
    connector_service,
    gateway,
    gateway_http,
    grants,
    receipts,
    stats,
    subscriptions,
)
from xietong.apps.exchange.connectors.settings import ConnectorInput
from xietong.apps.exchange.gateway_http import QueryIn
from xietong.kernel.access import Actor
from xietong.kernel.context import Context

router = APIRouter(prefix="/exchange", tags=["exchange 数据共享交换"])
CtxDep = Annotated[Context, Depends(get_ctx)]


def _as(action: str) -> Any:
    return Annotated[Actor, Depends(allow(action))]


ConnectorManager = _as("exchange.connector.manage")
Requester = _as("exchange.request.create")
RequestReader = _as("exchange.request.read")
Decider = _as("exchange.request.decide")
GrantManager = _as("exchange.grant.manage")
# The gateway's route is async end to end: its dependencies must be too, or FastAPI
# runs each in the thread pool (a hop per dependency per query).
Querier = Annotated[Actor, Depends(allow_async("exchange.gateway.query"))]


async def _ctx(request: Request) -> Context:
    return get_ctx(request)


AsyncCtx = Annotated[Context, Depends(_ctx)]
ReceiptReader = _as("exchange.receipt.read")
Publisher = _as("exchange.change.publish")
Subscriber = _as("exchange.subscription.manage")
StatsReader = _as("exchange.stats.read")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConnectorIn(Strict):
    """kind rest: config {url, timeout_s, retries}, secret {headers};
    sql: config {table, key, timeout_s}, secret {url}; file: config {path, sheet}.
    Any kind: config {poll_field, key_field} for change polling; fields {item: source}."""

    kind: str = Field(max_length=8)
    config: dict[str, Any] = Field(default_factory=dict)
    secret: dict[str, Any] | None = None
    fields: dict[str, str] = Field(default_factory=dict)


class RequestIn(Strict):
    resource_code: str = Field(max_length=32)
    items: list[str] = Field(min_length=1, max_length=500)
    purpose: str = Field(max_length=1000)
    legal_basis: str = Field(max_length=1000)
    valid_until: date
    valid_from: date | None = None
    consumer_code: str | None = Field(default=None, max_length=64)


class DecisionIn(Strict):
    approve: bool
    opinion: str = Field(max_length=1000)


class RevokeIn(Strict):
    reason: str = Field(max_length=1000)


class RateIn(Strict):
    rate_per_minute: int


class ChangeIn(Strict):
    op: str = Field(default="upsert", max_length=8)
    key: str = Field(max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


class ChangesIn(Strict):
    changes: list[ChangeIn] = Field(min_length=1, max_length=subscriptions.MAX_CHANGES)


class SubscriptionIn(Strict):
    resource_code: str = Field(max_length=32)
    webhook_url: str | None = Field(default=None, max_length=2000)
    consumer_code: str | None = Field(default=None, max_length=64)


class ReplayIn(Strict):
    after: int = Field(default=0, ge=0)


# Connected systems (an API key) are served by the gateway's hot route (``gateway_http``,
# ADR 0065) before this one is reached; this route answers everyone else — a person, or
# a caller with no key — and documents the route in the OpenAPI schema. Both render
# through ``gateway_http``, and a test holds them to the same answers.
@router.post("/resources/{code:path}/query")
async def gateway_query(
    code: str,
    body: QueryIn,
    ctx: AsyncCtx,
    actor: Querier,
    client: Annotated[str, Header(alias="X-Xietong-Client")] = "",
) -> Response:
    answer = await gateway.aquery(ctx, actor, code, client, body.to_query())
    payload, headers = gateway_http.render(answer)
    return Response(
        payload,
        media_type="application/json",
        headers={name.decode(): value.decode() for name, value in headers},
    )


@router.get("/stats")
def department_stats(ctx: CtxDep, actor: StatsReader, month: str | None = None) -> Any:
    return [asdict(row) for row in stats.department_stats(ctx, actor, month)]


@router.get("/stats.xlsx")
def stats_workbook(ctx: CtxDep, actor: StatsReader, month: str | None = None) -> Response:
    name = f"exchange-stats-{month or 'all'}.xlsx"
    return Response(
        stats.stats_xlsx(ctx, actor, month),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/subscriptions")
def list_subscriptions(ctx: CtxDep, actor: Subscriber) -> Any:
    return [asdict(v) for v in subscriptions.list_subscriptions(ctx, actor)]


@router.post("/subscriptions", status_code=201)
def subscribe(body: SubscriptionIn, ctx: CtxDep, actor: Subscriber) -> Any:
    view = subscriptions.subscribe(
        ctx,
        actor,
        body.resource_code,
        webhook_url=body.webhook_url,
        consumer_code=body.consumer_code,
    )
    return asdict(view)


@router.get("/subscriptions/{subscription_id}/changes")
def subscription_changes(
    subscription_id: int,
    ctx: CtxDep,
    actor: Subscriber,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    found = subscriptions.changes_since(ctx, actor, subscription_id, after, limit)
    return [asdict(v) for v in found]


@router.post("/subscriptions/{subscription_id}/replay")
def replay_subscription(
    subscription_id: int, body: ReplayIn, ctx: CtxDep, actor: Subscriber
) -> Any:
    return {"queued": subscriptions.replay(ctx, actor, subscription_id, body.after)}


@router.get("/requests")
def list_requests(
    ctx: CtxDep,
    actor: RequestReader,
    role: str = "consumer",
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    return [
        asdict(v) for v in grants.list_requests(ctx, actor, role=role, status=status, limit=limit)
    ]


@router.post("/requests", status_code=201)
def submit_request(body: RequestIn, ctx: CtxDep, actor: Requester) -> Any:
    data = grants.RequestInput(
        body.resource_code,
        tuple(body.items),
        body.purpose,
        body.legal_basis,
        body.valid_until,
        body.valid_from,
        body.consumer_code,
    )
    return asdict(grants.submit_request(ctx, actor, data))


@router.get("/requests/{request_id}")
def get_request(request_id: int, ctx: CtxDep, actor: RequestReader) -> Any:
    return asdict(grants.get_request(ctx, actor, request_id))


@router.post("/requests/{request_id}/decision")
def decide_request(request_id: int, body: DecisionIn, ctx: CtxDep, actor: Decider) -> Any:
    view = grants.decide_request(ctx, actor, request_id, approve=body.approve, opinion=body.opinion)
    return asdict(view)


@router.get("/grants")
def list_grants(ctx: CtxDep, actor: RequestReader, role: str = "consumer") -> Any:
    return [asdict(v) for v in grants.list_grants(ctx, actor, role=role)]


@router.post("/grants/{grant_id}/revoke")
def revoke_grant(grant_id: int, body: RevokeIn, ctx: CtxDep, actor: GrantManager) -> Any:
    return asdict(grants.revoke_grant(ctx, actor, grant_id, body.reason))


@router.put("/grants/{grant_id}/rate-limit")
def set_rate_limit(grant_id: int, body: RateIn, ctx: CtxDep, actor: GrantManager) -> Any:
    return asdict(grants.set_rate_limit(ctx, actor, grant_id, body.rate_per_minute))


@router.get("/receipts/{index}")
def get_receipt(index: int, ctx: CtxDep, actor: ReceiptReader) -> Any:
    return asdict(receipts.get_receipt(ctx, actor, index))


@router.get("/resources/{code:path}/connector")
def get_connector(code: str, ctx: CtxDep, actor: ConnectorManager) -> Any:
    return asdict(connector_service.get_connector(ctx, actor, code))


@router.put("/resources/{code:path}/connector")
def configure_connector(code: str, body: ConnectorIn, ctx: CtxDep, actor: ConnectorManager) -> Any:
    data = ConnectorInput(body.kind, body.config, body.secret, body.fields)
    return asdict(connector_service.configure_connector(ctx, actor, code, data))


@router.post("/resources/{code:path}/connector/test")
def test_connector(code: str, ctx: CtxDep, actor: ConnectorManager) -> Any:
    return asdict(connector_service.test_connection(ctx, actor, code))


@router.post("/resources/{code:path}/changes")
def publish_changes(code: str, body: ChangesIn, ctx: CtxDep, actor: Publisher) -> Any:
    changes = [subscriptions.ChangeInput(c.op, c.key, c.data) for c in body.changes]
    return subscriptions.publish_changes(ctx, actor, code, changes)
