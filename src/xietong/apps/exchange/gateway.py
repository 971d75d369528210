"""The sharing gateway (共享网关): a connected system queries a granted resource.

``query`` runs, in order:

1. access — the caller is a connected system (its API key) naming its consuming
   subsystem (``X-Xietong-Client``, like X-Road's ``X-Road-Client``); its department
   holds a grant on the resource that is active today, covers every requested item and
   every filtered item;
2. the grant's rate limit (429 with ``Retry-After``);
3. the provider's connector, asked for one page of the granted fields only;
4. the provider's schema: each row must carry every requested item, with a value of the
   declared type (a failure is logged and answered 502 — never passed on);
5. masking by the grant's rules;
6. one audit leaf — consumer system and subsystem, resource, items, purpose, filters'
   item names (not their values: they may be someone's 身份证号), row count, the
   SHA-256 of the exact rows returned, outcome — committed with a query-log row;
7. the answer, with the leaf's index for the consumer to fetch its inclusion proof.

A provider failure (down, slow, bad answer) is logged and audited the same way, with
its outcome, and answered 504 or 502. Denials (no grant, items beyond it, over the
limit, bad input) change nothing and are answered 4xx.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from xietong.apps.exchange.connectors.base import (
    MAX_PAGE,
    FetchRequest,
    FetchResult,
    ProviderError,
    ProviderFailure,
)
from xietong.apps.exchange.connectors.settings import LIVE
from xietong.apps.exchange.grants import grant_state, today
from xietong.apps.exchange.group_commit import commit_leaf
from xietong.apps.exchange.masking import mask_rows
from xietong.apps.exchange.models import Item, Resource
from xietong.apps.exchange.quality import normalise
from xietong.apps.exchange.ratelimit import LIMITER, retry_after
from xietong.apps.exchange.sharing_models import Connector, Grant
from xietong.apps.exchange.vocab import Status
from xietong.kernel import audit
from xietong.kernel.access import Actor, authorize
from xietong.kernel.canonical import canonical_json
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound, RateLimited

ACTION = "exchange.gateway.query"
CLIENT = re.compile(r"^[\w.:/@-]{1,200}$")
MAX_OFFSET = 1_000_000
MAX_FILTERS = 20


@dataclass(frozen=True)
class GatewayQuery:
    items: tuple[str, ...] | None = None  # None: every granted item
    filters: dict[str, Any] | None = None  # item name -> value (equality)
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class GatewayAnswer:
    resource_code: str
    items: tuple[str, ...]
    masked: dict[str, str]
    rows: list[dict[str, Any]]
    limit: int
    offset: int
    has_more: bool
    audit_index: int
    response_sha256: str


@dataclass(frozen=True)
class _Plan:
    resource_id: int
    provider_id: int
    consumer_id: int
    grant_id: int
    rate: int
    purpose: str
    items: tuple[str, ...]
    types: dict[str, str]
    masked: dict[str, str]
    filters: dict[str, Any]
    connector: Connector
    source: dict[str, str]  # item -> provider field


def _denied(zh: str, en: str, code: str, **details: Any) -> Forbidden:
    return Forbidden(zh, en, code=code, details=details or None)


def _check_query(client: str, query: GatewayQuery) -> None:
    if not CLIENT.match(client or ""):
        raise InvalidInput(
            "请在 X-Xietong-Client 头中注明调用的子系统（字母、数字、. : / @ - _，最多 200 字符）",
            "Name the consuming subsystem in the X-Xietong-Client header",
            code="client_required",
        )
    if not 1 <= query.limit <= MAX_PAGE or not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput(
            f"limit 应在 1–{MAX_PAGE} 之间，offset 在 0–{MAX_OFFSET} 之间",
            f"limit must be 1–{MAX_PAGE} and offset 0–{MAX_OFFSET}",
            code="invalid_page",
        )
    filters = query.filters or {}
    if len(filters) > MAX_FILTERS:
        raise InvalidInput("过滤条件过多", "Too many filters", code="too_many_filters")
    for name, value in filters.items():
        if not isinstance(value, str | int | float | bool) or (
            isinstance(value, str) and len(value) > 500
        ):
            raise InvalidInput(
                f"过滤条件 {name} 的值须为文本、数字或布尔值",
                f"The filter on {name} must be a text, number or boolean",
                code="invalid_filter",
            )


@dataclass(frozen=True)
class _Meta:
    """What the gateway needs of the catalogue and the connector — read once per TTL."""

    resource_id: int
    provider_id: int
    connector: Connector | None  # detached, read-only
    types: dict[str, str]
    read_at: float


META_TTL_S = 2.0
_meta: dict[tuple[str, str], _Meta] = {}


def forget(ctx: Context, code: str) -> None:
    """Drop the cached catalogue data of ``code`` (after its connector changed)."""
    _meta.pop((ctx.db.url, code), None)


def _catalogue(ctx: Context, session: Any, code: str) -> _Meta:
    """The resource's id, provider, connector and item types, cached for ``META_TTL_S``.

    Grants are never cached (a revocation takes effect at the next query); the
    catalogue and connector change rarely, and an edit in this process drops the
    entry at once (``forget``), in another process within two seconds.
    """
    key = (ctx.db.url, code)
    now = time.monotonic()
    found = _meta.get(key)
    if found is not None and now - found.read_at < META_TTL_S:
        return found
    resource = session.scalar(select(Resource).where(Resource.code == code))
    if resource is None or resource.status != Status.PUBLISHED.value:
        _meta.pop(key, None)
        raise NotFound.of("信息资源", "Resource", code)
    connector = session.scalar(select(Connector).where(Connector.resource_id == resource.id))
    if connector is not None:
        session.expunge(connector)
    types = {
        name: data_type
        for name, data_type in session.execute(
            select(Item.name, Item.data_type).where(Item.resource_id == resource.id)
        )
    }
    meta = _Meta(resource.id, resource.provider_id, connector, types, now)
    _meta[key] = meta
    return meta


def _plan(ctx: Context, actor: Actor, code: str, query: GatewayQuery) -> _Plan:
    with ctx.db.read() as session:
        meta = _catalogue(ctx, session, code)
        grants = list(
            session.scalars(
                select(Grant).where(
                    Grant.resource_id == meta.resource_id,
                    Grant.consumer_id.in_(sorted(actor.department_ids)),
                    Grant.status == "active",
                )
            )
        )
        for grant in grants:
            session.expunge(grant)  # loaded: used after the read session ends
    on = today()
    valid = [grant for grant in grants if grant_state(grant, on) == "active"]
    if not valid:
        if grants:
            raise _denied(
                "授权已过期或尚未生效",
                "The grant has expired or is not valid yet",
                "grant_expired",
            )
        raise _denied(
            "本部门没有该资源的有效授权（或已被撤销），请先提交共享申请",
            "Your department holds no grant on this resource (or it was revoked)",
            "no_grant",
        )
    grant = max(valid, key=lambda g: len(g.items))
    granted = tuple(grant.items)
    wanted = tuple(query.items) if query.items else granted
    beyond = [item for item in wanted if item not in granted]
    filters = dict(query.filters or {})
    beyond += [item for item in filters if item not in granted and item not in beyond]
    if beyond:
        raise _denied(
            f"超出授权范围的信息项：{'、'.join(beyond)}",
            f"Items beyond the grant: {', '.join(beyond)}",
            "items_not_granted",
            items=beyond,
        )
    connector = meta.connector
    if connector is None:
        raise ProviderError("提供方尚未配置连接器", "The provider has not configured a connector")
    ordered = tuple(dict.fromkeys(wanted))
    return _Plan(
        meta.resource_id,
        meta.provider_id,
        grant.consumer_id,
        grant.id,
        grant.rate_per_minute,
        grant.purpose,
        ordered,
        {item: meta.types[item] for item in ordered},
        {k: v for k, v in (grant.masked or {}).items() if k in ordered},
        filters,
        connector,
        {item: (connector.fields or {}).get(item, item) for item in set(ordered) | set(filters)},
    )


def _audit(
    ctx: Context,
    actor: Actor,
    code: str,
    client: str,
    plan: _Plan,
    *,
    outcome: str,
    rows: int,
    digest: str | None,
    started: float,
    provider_ms: float,
    detail: str | None = None,
) -> int:
    """The audit leaf and the query-log row, committed together; returns the leaf index.

    Not through ``UnitOfWork``: the log row stores the leaf's index, which only
    ``audit.append`` knows, and concurrent queries share one transaction
    (``group_commit``). The gateway emits no events, so nothing else is skipped.
    """
    entry = audit.Entry(
        actor.label,
        ACTION,
        f"exchange.resource:{code}",
        {
            "consumer_system": actor.name,
            "client": client,
            "consumer_department_id": plan.consumer_id,
            "grant_id": plan.grant_id,
            "resource": code,
            "items": list(plan.items),
            "masked": sorted(plan.masked),
            "filter_items": sorted(plan.filters),
            "purpose": plan.purpose,
            "row_count": rows,
            "response_sha256": digest,
            "outcome": outcome,
        },
    )
    row = {
        "resource_id": plan.resource_id,
        "provider_id": plan.provider_id,
        "consumer_id": plan.consumer_id,
        "grant_id": plan.grant_id,
        "system_code": actor.name,
        "client": client,
        "outcome": outcome,
        "row_count": rows,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "provider_ms": round(provider_ms, 3),
        "detail": detail,
    }
    return commit_leaf(ctx, entry, row)


def query(
    ctx: Context, actor: Actor, code: str, client: str, request: GatewayQuery
) -> GatewayAnswer:
    started = time.perf_counter()
    authorize(actor, ACTION)
    if actor.kind != "system":
        raise _denied(
            "共享网关仅供接入系统调用（使用 X-API-Key）",
            "The gateway serves connected systems (X-API-Key) only",
            "systems_only",
        )
    _check_query(client, request)
    plan = _plan(ctx, actor, code, request)
    wait = LIMITER.take((ctx.db.url, plan.grant_id), plan.rate)
    if wait:
        raise RateLimited(
            f"超过授权的调用频率上限（{plan.rate} 次/分钟）",
            f"Over the grant's rate limit ({plan.rate} per minute)",
            details={"retry_after_s": retry_after(wait), "rate_per_minute": plan.rate},
        )
    source_filters = {plan.source[k]: v for k, v in plan.filters.items()}
    fetch = FetchRequest(
        tuple(plan.source[item] for item in plan.items),
        source_filters,
        request.limit,
        request.offset,
    )
    provider_started = time.perf_counter()
    try:
        result: FetchResult = LIVE.get(ctx, plan.connector).fetch(fetch)
    except ProviderFailure as failure:
        provider_ms = (time.perf_counter() - provider_started) * 1000
        index = _audit(
            ctx,
            actor,
            code,
            client,
            plan,
            outcome=failure.outcome,
            rows=0,
            digest=None,
            started=started,
            provider_ms=provider_ms,
            detail=failure.message_en,
        )
        failure.details = {**(failure.details or {}), "audit_index": index}
        raise
    provider_ms = (time.perf_counter() - provider_started) * 1000
    back = {plan.source[item]: item for item in plan.items}
    renamed = [{back.get(k, k): v for k, v in row.items()} for row in result.rows]
    rows, problems = normalise(renamed, plan.types)
    if problems:
        detail = "; ".join(
            f"row {p.row}: {p.item} {p.problem} (expected {p.expected}, got {p.found})"
            for p in problems[:5]
        )
        index = _audit(
            ctx,
            actor,
            code,
            client,
            plan,
            outcome="quality_failure",
            rows=0,
            digest=None,
            started=started,
            provider_ms=provider_ms,
            detail=detail,
        )
        raise ProviderError(
            "提供方返回的数据不符合目录声明的信息项（已记录数据质量问题）",
            "The provider's data does not match the catalogue's items (quality failure logged)",
            code="provider_schema_mismatch",
            details={"problems": [p.__dict__ for p in problems], "audit_index": index},
        )
    masked = mask_rows(rows, plan.masked)
    digest = hashlib.sha256(canonical_json(masked)).hexdigest()
    index = _audit(
        ctx,
        actor,
        code,
        client,
        plan,
        outcome="ok",
        rows=len(masked),
        digest=digest,
        started=started,
        provider_ms=provider_ms,
    )
    return GatewayAnswer(
        code,
        plan.items,
        plan.masked,
        masked,
        request.limit,
        request.offset,
        result.has_more,
        index,
        digest,
    )
