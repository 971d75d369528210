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

``aquery`` is the API route's path (async end to end, ADR 0032); ``query`` the same
steps, blocking, for the CLI, the demo loader and tests. The catalogue data and the
caller's grants come from ``gateway_cache`` (bounded staleness, stated there).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from anyio import to_thread
from sqlalchemy import select

from xietong.apps.exchange import gateway_cache as cache
from xietong.apps.exchange.connectors.base import (
    MAX_PAGE,
    FetchRequest,
    FetchResult,
    ProviderError,
    ProviderFailure,
)
from xietong.apps.exchange.connectors.settings import LIVE
from xietong.apps.exchange.gateway_cache import GrantSnapshot
from xietong.apps.exchange.grants import grant_state, today
from xietong.apps.exchange.group_commit import acommit_leaf, commit_leaf
from xietong.apps.exchange.masking import MASKERS
from xietong.apps.exchange.models import Item, Resource
from xietong.apps.exchange.quality import Column, shape
from xietong.apps.exchange.ratelimit import LIMITER, retry_after
from xietong.apps.exchange.sharing_models import Connector, Grant
from xietong.apps.exchange.vocab import Status
from xietong.kernel import audit
from xietong.kernel.access import Actor, authorize
from xietong.kernel.canonical import canonical_json
from xietong.kernel.concurrency import load_once
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound, RateLimited, XietongError

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
    floats: bool  # an item may hold a float (数值型): see ``_canonical``
    columns: tuple[Column, ...]  # item, provider field, type, masker: ``quality.shape``


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
    """What the gateway needs of the catalogue and the connector (``gateway_cache``)."""

    resource_id: int
    provider_id: int
    connector: Connector | None  # detached, read-only
    types: dict[str, str]


def forget(ctx: Context, code: str) -> None:
    """Drop the cached catalogue data of ``code`` (after its connector changed)."""
    cache.forget_resource(ctx.db.url, code)


def _grants_key(ctx: Context, actor: Actor, resource_id: int) -> tuple[Any, ...]:
    return (ctx.db.url, resource_id, tuple(sorted(actor.department_ids)))


def _cached_inputs(
    ctx: Context, actor: Actor, code: str
) -> tuple[_Meta, tuple[GrantSnapshot, ...]] | None:
    """The catalogue data and the caller's grants if both are cached — no I/O."""
    meta = cache.META.get((ctx.db.url, code))
    if meta is None:
        return None
    grants = cache.GRANTS.get(_grants_key(ctx, actor, meta.resource_id))
    return None if grants is None else (meta, grants)


def _read_inputs(ctx: Context, actor: Actor, code: str) -> tuple[_Meta, tuple[GrantSnapshot, ...]]:
    """The catalogue data and the caller's grants, from the cache or the database.

    The catalogue (resource, connector, item types) and the grants are cached for a
    bounded time (``gateway_cache``): a revocation in this process takes effect at the
    next query, one made elsewhere within ``GRANT_TTL_S``.
    """
    found = _cached_inputs(ctx, actor, code)
    if found is not None:
        return found
    read_at = cache.now()
    with ctx.db.read() as session:
        meta_key = (ctx.db.url, code)
        meta = cache.META.get(meta_key)
        if meta is None:
            resource = session.scalar(select(Resource).where(Resource.code == code))
            if resource is None or resource.status != Status.PUBLISHED.value:
                cache.META.pop(meta_key)
                raise NotFound.of("信息资源", "Resource", code)
            connector = session.scalar(
                select(Connector).where(Connector.resource_id == resource.id)
            )
            if connector is not None:
                session.expunge(connector)
            types = {
                name: data_type
                for name, data_type in session.execute(
                    select(Item.name, Item.data_type).where(Item.resource_id == resource.id)
                )
            }
            meta = _Meta(resource.id, resource.provider_id, connector, types)
            cache.META.put(meta_key, meta, read_at)
        rows = session.scalars(
            select(Grant).where(
                Grant.resource_id == meta.resource_id,
                Grant.consumer_id.in_(sorted(actor.department_ids)),
                Grant.status == "active",
            )
        )
        grants = tuple(
            GrantSnapshot(
                row.id,
                row.consumer_id,
                tuple(row.items),
                dict(row.masked or {}),
                row.purpose,
                row.valid_from,
                row.valid_until,
                row.rate_per_minute,
                row.status,
            )
            for row in rows
        )
    cache.GRANTS.put(_grants_key(ctx, actor, meta.resource_id), grants, read_at)
    return meta, grants


def _plan(meta: _Meta, grants: tuple[GrantSnapshot, ...], query: GatewayQuery) -> _Plan:
    on = today()
    valid = [grant for grant in grants if grant_state(grant, on) == "active"]  # type: ignore[arg-type]
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
    granted = grant.items
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
    fields = connector.fields or {}
    masked = {k: v for k, v in grant.masked.items() if k in ordered}
    columns = tuple(
        (
            item,
            fields.get(item, item),
            meta.types[item],
            MASKERS[masked[item]] if item in masked else None,
        )
        for item in ordered
    )
    return _Plan(
        meta.resource_id,
        meta.provider_id,
        grant.consumer_id,
        grant.id,
        grant.rate_per_minute,
        grant.purpose,
        ordered,
        {item: meta.types[item] for item in ordered},
        masked,
        filters,
        connector,
        {item: fields.get(item, item) for item in set(ordered) | set(filters)},
        any(meta.types[item] == "decimal" for item in ordered),
        columns,
    )


def _leaf(
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
) -> tuple[audit.Entry, dict[str, Any]]:
    """The audit leaf and the query-log row, to be committed together (``group_commit``).

    Not through ``UnitOfWork``: the log row stores the leaf's index, which only
    ``audit.append`` knows, and concurrent queries share one transaction. The gateway
    emits no events, so nothing else is skipped.
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
    return entry, row


@dataclass
class _Done:
    """A query's result before its leaf is committed: the answer, or the error to raise."""

    entry: audit.Entry
    row: dict[str, Any]
    answer: GatewayAnswer | None = None
    error: XietongError | None = None

    def deliver(self, index: int) -> GatewayAnswer:
        if self.error is not None:
            self.error.details = {**(self.error.details or {}), "audit_index": index}
            raise self.error
        assert self.answer is not None
        return replace(self.answer, audit_index=index)


def _check_caller(actor: Actor, client: str, request: GatewayQuery) -> None:
    authorize(actor, ACTION)
    if actor.kind != "system":
        raise _denied(
            "共享网关仅供接入系统调用（使用 X-API-Key）",
            "The gateway serves connected systems (X-API-Key) only",
            "systems_only",
        )
    _check_query(client, request)


def _admit(ctx: Context, plan: _Plan, request: GatewayQuery) -> FetchRequest:
    """The rate limit, then the connector's request in the provider's field names."""
    wait = LIMITER.take((ctx.db.url, plan.grant_id), plan.rate)
    if wait:
        raise RateLimited(
            f"超过授权的调用频率上限（{plan.rate} 次/分钟）",
            f"Over the grant's rate limit ({plan.rate} per minute)",
            details={"retry_after_s": retry_after(wait), "rate_per_minute": plan.rate},
        )
    return FetchRequest(
        tuple(plan.source[item] for item in plan.items),
        {plan.source[k]: v for k, v in plan.filters.items()},
        request.limit,
        request.offset,
    )


def _failed(
    actor: Actor,
    code: str,
    client: str,
    plan: _Plan,
    failure: ProviderFailure,
    started: float,
    provider_started: float,
) -> _Done:
    provider_ms = (time.perf_counter() - provider_started) * 1000
    entry, row = _leaf(
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
    return _Done(entry, row, error=failure)


def _finish(
    actor: Actor,
    code: str,
    client: str,
    plan: _Plan,
    request: GatewayQuery,
    result: FetchResult,
    started: float,
    provider_started: float,
) -> _Done:
    """The provider's schema check, masking and the response digest."""
    provider_ms = (time.perf_counter() - provider_started) * 1000
    masked, problems = shape(result.rows, plan.columns)
    if problems:
        detail = "; ".join(
            f"row {p.row}: {p.item} {p.problem} (expected {p.expected}, got {p.found})"
            for p in problems[:5]
        )
        entry, row = _leaf(
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
        error = ProviderError(
            "提供方返回的数据不符合目录声明的信息项（已记录数据质量问题）",
            "The provider's data does not match the catalogue's items (quality failure logged)",
            code="provider_schema_mismatch",
            details={"problems": [p.__dict__ for p in problems]},
        )
        return _Done(entry, row, error=error)
    digest = hashlib.sha256(_canonical(masked, plan.floats)).hexdigest()
    entry, row = _leaf(
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
    answer = GatewayAnswer(
        code,
        plan.items,
        plan.masked,
        masked,
        request.limit,
        request.offset,
        result.has_more,
        -1,
        digest,
    )
    return _Done(entry, row, answer=answer)


def _canonical(rows: list[dict[str, Any]], floats: bool) -> bytes:
    """``canonical_json(rows)``, the bytes the response digest is taken of.

    orjson with sorted keys writes the same bytes as ``canonical_json`` for what the
    schema check leaves in a row — text, integers, booleans, null — at a twentieth of
    the CPU (tested on random rows). Floats (from 数值型 items) it may spell otherwise
    (``1e16`` for ``1e+16``), so rows that can hold one, and an integer beyond 64 bits
    (which orjson refuses), go to ``canonical_json`` itself.
    """
    if not floats:
        try:
            return orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return canonical_json(rows)


def query(
    ctx: Context, actor: Actor, code: str, client: str, request: GatewayQuery
) -> GatewayAnswer:
    """The gateway, blocking (the CLI, the demo loader, tests); see ``aquery``."""
    started = time.perf_counter()
    _check_caller(actor, client, request)
    plan = _plan(*_read_inputs(ctx, actor, code), request)
    fetch = _admit(ctx, plan, request)
    provider_started = time.perf_counter()
    try:
        try:
            result = LIVE.get(ctx, plan.connector).fetch(fetch)
        except ProviderFailure as failure:
            done = _failed(actor, code, client, plan, failure, started, provider_started)
        else:
            done = _finish(actor, code, client, plan, request, result, started, provider_started)
    except BaseException:
        LIMITER.release([((ctx.db.url, plan.grant_id), 1)])  # admitted, never logged
        raise
    return done.deliver(commit_leaf(ctx, done.entry, done.row))


async def aquery(
    ctx: Context, actor: Actor, code: str, client: str, request: GatewayQuery
) -> GatewayAnswer:
    """The gateway on the event loop (the API route): no thread is held for a query.

    With warm caches the access check reads nothing; a REST connector's call is awaited
    on its shared pooled client; the leaf joins the loop's group commit, whose batch is
    written in one worker thread. Only a cache miss, a SQL or file connector, and the
    batch's commit go to threads.
    """
    started = time.perf_counter()
    _check_caller(actor, client, request)
    inputs = _cached_inputs(ctx, actor, code)
    if inputs is None:  # one read for all the queries that missed together
        key = ("exchange.gateway", ctx.db.url, code, tuple(sorted(actor.department_ids)))
        inputs = await load_once(key, _read_inputs, ctx, actor, code)
    plan = _plan(*inputs, request)
    fetch = _admit(ctx, plan, request)
    provider_started = time.perf_counter()
    try:
        connector = LIVE.peek(ctx, plan.connector)
        if connector is None:  # cold or changed: build it off the event loop
            connector = await to_thread.run_sync(LIVE.get, ctx, plan.connector)
        afetch = getattr(connector, "afetch", None)
        try:
            if afetch is not None:
                result = await afetch(fetch)
            else:
                result = await to_thread.run_sync(connector.fetch, fetch)
        except ProviderFailure as failure:
            done = _failed(actor, code, client, plan, failure, started, provider_started)
        else:
            done = _finish(actor, code, client, plan, request, result, started, provider_started)
    except BaseException:  # a cancelled request included
        LIMITER.release([((ctx.db.url, plan.grant_id), 1)])  # admitted, never logged
        raise
    return done.deliver(await acommit_leaf(ctx, done.entry, done.row))
