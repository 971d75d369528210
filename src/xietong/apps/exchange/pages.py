"""Exchange pages (zh-CN first): the catalogue, a resource with its request form, the
provider's approval inbox, my department's requests and grants, the statistics.

Each form posts to one route that calls one service function; an error comes back on
the same page in the user's language and changes nothing.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xietong.api.deps import current_actor, get_ctx
from xietong.apps.exchange import connector_service, grants, queries, stats
from xietong.apps.exchange.masking import RULES
from xietong.apps.exchange.queries import ResourceQuery
from xietong.apps.exchange.service import MANAGE
from xietong.apps.exchange.vocab import (
    Classification,
    DataType,
    ShareMethod,
    ShareType,
    UpdateCycle,
    label,
    parse,
)
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Unauthenticated, XietongError
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/exchange", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]
PAGE = 20
STATUS = {
    "pending": ("待审批", "Pending", "yellow"),
    "approved": ("已同意", "Approved", "green"),
    "refused": ("未同意", "Refused", "red"),
    "withdrawn": ("已撤回", "Withdrawn", "gray"),
    "active": ("有效", "Active", "green"),
    "revoked": ("已撤销", "Revoked", "red"),
    "expired": ("已过期", "Expired", "gray"),
    "not_yet_valid": ("未生效", "Not yet valid", "gray"),
}
SHARE_BADGE = {"unconditional": "green", "conditional": "yellow", "not_shared": "red"}


def _signed_in(actor: Actor) -> None:
    if not actor.is_authenticated:
        raise Unauthenticated()


def _vocab(enum: Any, value: str, english: bool = False) -> str:
    """The Chinese label; in English the glossary's code name (``conditional``)."""
    member = parse(enum, value)
    if member is None:
        return value
    return member.value.replace("_", " ") if english else label(member)


def _globals(request: Request) -> dict[str, Any]:
    en = language(request) == "en"
    return {
        "share_label": lambda v: _vocab(ShareType, v, en),
        "cycle_label": lambda v: _vocab(UpdateCycle, v, en),
        "type_label": lambda v: _vocab(DataType, v, en),
        "level_label": lambda v: _vocab(Classification, v, en),
        "share_badge": SHARE_BADGE,
        "method_label": lambda v: _vocab(ShareMethod, v, en),
        "status_of": STATUS,
        "rules": RULES,
        "flash": request.session.pop("flash", None),
    }


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    return render(request, name, **_globals(request), **context)


@router.get("", response_class=HTMLResponse)
def catalogue(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    q: str = "",
    share_type: str = "",
    provider: str = "",
    page: int = 1,
) -> Response:
    _signed_in(actor)
    page = max(1, page)
    query = ResourceQuery(
        text=q or None,
        share_type=share_type or None,
        provider=provider or None,
        status="published",
        limit=PAGE,
        offset=(page - 1) * PAGE,
    )
    found = queries.search_resources(ctx, actor, query)
    return _page(
        request,
        "exchange/catalogue.html",
        found=found,
        q=q,
        share_type=share_type,
        provider=provider,
        page=page,
        pages=max(1, -(-found.total // PAGE)),
        share_types=[(m.value, label(m)) for m in ShareType],
    )


def _requestable_departments(actor: Actor, provider_id: int) -> list[int]:
    return sorted(
        dept
        for dept in actor.department_ids
        if dept != provider_id and can(actor, grants.REQUEST, Resource("exchange.request", dept))
    )


def _resource_page(
    request: Request, ctx: Context, actor: Actor, code: str, **extra: Any
) -> HTMLResponse:
    view = queries.get_resource(ctx, actor, code)
    manages = can(actor, MANAGE, Resource("exchange.resource", view.provider_id))
    connector = None
    if manages:
        try:
            connector = connector_service.get_connector(ctx, actor, code)
        except XietongError:
            connector = None
    from xietong.apps.exchange.masking import rule_for

    return _page(
        request,
        "exchange/resource.html",
        r=view,
        manages=manages,
        connector=connector,
        can_request=bool(_requestable_departments(actor, view.provider_id)),
        masked_rule={i.name: rule_for(i.name) for i in view.items if i.classification != "public"},
        default_until=(date.today() + timedelta(days=365)).isoformat(),
        **extra,
    )


@router.get("/resources/{code:path}", response_class=HTMLResponse)
def resource_detail(request: Request, code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    _signed_in(actor)
    return _resource_page(request, ctx, actor, code)


@router.post("/resources/{code:path}/request", response_class=HTMLResponse)
async def submit_request(request: Request, code: str, ctx: CtxDep, actor: ActorDep) -> Response:
    _signed_in(actor)
    form = await request.form()
    items = tuple(str(v) for v in form.getlist("items"))
    values = {k: str(form.get(k) or "") for k in ("purpose", "legal_basis", "valid_until")}
    try:
        check_csrf(request, str(form.get("csrf_token") or ""))
        try:
            until = date.fromisoformat(values["valid_until"])
        except ValueError:
            from xietong.kernel.errors import InvalidInput

            raise InvalidInput(
                "请填写有效期截止日期", "Give the end of the period", code="invalid_period"
            ) from None
        made = grants.submit_request(
            ctx,
            actor,
            grants.RequestInput(code, items, values["purpose"], values["legal_basis"], until),
        )
    except XietongError as error:
        return _resource_page(
            request,
            ctx,
            actor,
            code,
            error=error.message(language(request)),
            form=values,
            chosen=items,
            status_code=error.status,
        )
    zh, en, _ = STATUS[made.status]
    request.session["flash"] = (
        f"申请已提交（编号 {made.id}）：{zh}"
        if language(request) == "zh-CN"
        else f"Request {made.id} filed: {en}"
    )
    return RedirectResponse("/exchange/requests", status_code=303)


@router.get("/requests", response_class=HTMLResponse)
def my_requests(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    _signed_in(actor)
    rows = grants.list_requests(ctx, actor, role="consumer")
    return _page(request, "exchange/requests.html", rows=rows, inbox=False)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    _signed_in(actor)
    rows = grants.list_requests(ctx, actor, role="provider")
    rows.sort(key=lambda r: (r.status != "pending", -r.id))
    return _page(request, "exchange/requests.html", rows=rows, inbox=True)


@router.post("/requests/{request_id}/decide")
def decide(
    request: Request,
    request_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    decision: Annotated[str, Form()] = "",
    opinion: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    _signed_in(actor)
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        grants.decide_request(
            ctx, actor, request_id, approve=decision == "approve", opinion=opinion
        )
        request.session["flash"] = (
            f"已提交审批意见（申请 {request_id}）"
            if lang == "zh-CN"
            else f"Decision recorded (request {request_id})"
        )
    except XietongError as error:
        request.session["flash"] = error.message(lang)
    return RedirectResponse("/exchange/inbox", status_code=303)


@router.get("/grants", response_class=HTMLResponse)
def my_grants(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    _signed_in(actor)
    received = grants.list_grants(ctx, actor, role="consumer")
    given = grants.list_grants(ctx, actor, role="provider")
    manageable = {
        g.id for g in given if can(actor, grants.MANAGE_GRANT, Resource("g", g.provider_id))
    }
    return _page(
        request, "exchange/grants.html", received=received, given=given, manageable=manageable
    )


@router.post("/grants/{grant_id}/revoke")
def revoke(
    request: Request,
    grant_id: int,
    ctx: CtxDep,
    actor: ActorDep,
    reason: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    _signed_in(actor)
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        grants.revoke_grant(ctx, actor, grant_id, reason)
        request.session["flash"] = "授权已撤销" if lang == "zh-CN" else "Grant revoked"
    except XietongError as error:
        request.session["flash"] = error.message(lang)
    return RedirectResponse("/exchange/grants", status_code=303)


@router.post("/connector-test/{code:path}")
def test_connector(
    request: Request,
    code: str,
    ctx: CtxDep,
    actor: ActorDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    _signed_in(actor)
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        result = connector_service.test_connection(ctx, actor, code)
        message = result.message_zh if lang == "zh-CN" else result.message_en
        request.session["flash"] = f"{message}（{result.elapsed_ms} ms）"
    except XietongError as error:
        request.session["flash"] = error.message(lang)
    return RedirectResponse(f"/exchange/resources/{code}", status_code=303)


@router.get("/stats", response_class=HTMLResponse)
def statistics(request: Request, ctx: CtxDep, actor: ActorDep, month: str = "") -> Response:
    _signed_in(actor)
    authorize(actor, stats.READ)
    try:
        rows = stats.department_stats(ctx, actor, month or None)
        error = None
    except XietongError as failure:
        rows, error = [], failure.message(language(request))
    chart = {
        "departments": [r.name for r in rows],
        "served": [r.queries_served for r in rows],
        "made": [r.queries_made for r in rows],
        "approved": [r.requests_approved for r in rows],
        "refused": [r.requests_refused for r in rows],
        "pending": [r.requests_pending for r in rows],
        "latency": [r.median_latency_ms for r in rows],
        "failures": [r.failed_provider_calls + r.quality_failures for r in rows],
    }
    totals = {
        "published": sum(r.resources_published for r in rows),
        "requests": sum(r.requests_received for r in rows),
        "queries": sum(r.queries_served for r in rows),
        "failures": sum(r.failed_provider_calls + r.quality_failures for r in rows),
    }
    return _page(
        request,
        "exchange/stats.html",
        rows=rows,
        month=month,
        error=error,
        totals=totals,
        chart_json=json.dumps(chart, ensure_ascii=False),
    )
