"""Hotline pages (zh-CN first): the citizens' form and "my tickets", the dispatcher
queue with the top-three suggestions, the department inbox, the ticket page with its
timeline and the operations this user may perform, the hotline centre's overview with
hotspots (ECharts), the routing table, and FAQ search.

Each form posts to one route that calls one service function; errors come back on the
same page in the user's language and change nothing. A citizen's tickets are
remembered in their browser session with the key they got at intake (citizens have no
accounts); the key also opens the ticket from another browser.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from xietong.api.deps import current_actor, get_ctx
from xietong.api.errors import wants_html
from xietong.apps.hotline import dispatch, handling, intake, knowledge, queries, throttle, vocab
from xietong.apps.hotline._common import (
    DISPATCH,
    EXTENSION_DECIDE,
    FOLLOW_UP,
    HANDLE,
    INTAKE,
    ROUTE_MANAGE,
    STATS,
)
from xietong.kernel.access import Actor, authorize, can
from xietong.kernel.clock import CST
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, RateLimited, XietongError
from xietong.kernel.org import service as org
from xietong.kernel.org.models import Region
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/hotline", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]
SESSION_KEY = "hotline_tickets"
MAX_REMEMBERED = 20

OPERATIONS: dict[str, tuple[str, str]] = {
    "dispatch": ("派单", "Dispatch"),
    "accept": ("受理", "Accept"),
    "send_back": ("退单", "Send back"),
    "reply": ("答复", "Reply"),
    "extension": ("申请延期", "Ask for more time"),
    "decide_extension": ("延期审批", "Extension decision"),
    "follow_up": ("回访", "Follow-up"),
    "merge": ("合并", "Merge"),
    "reveal_contact": ("查看完整联系方式", "Show full contact"),
}
STEP_NAMES: dict[str, tuple[str, str]] = {
    "intake": ("受理登记", "Taken in"),
    "dispatch": ("派单", "Dispatched"),
    "accept": ("承办单位受理", "Accepted"),
    "send_back": ("退单", "Sent back"),
    "reply": ("答复", "Replied"),
    "rating": ("市民评价", "Rated by the citizen"),
    "follow_up": ("回访", "Follow-up call"),
    "reopen": ("重办", "Reopened"),
    "escalate": ("转督办", "Escalated"),
    "merge": ("合并到其他工单", "Merged"),
    "merged_in": ("合并了重复工单", "Duplicate merged in"),
    "extension_requested": ("申请延期", "Extension requested"),
    "extension_approved": ("同意延期", "Extension approved"),
    "extension_rejected": ("不同意延期", "Extension refused"),
    "sla_warning": ("即将超时预警", "Deadline near"),
    "sla_breached": ("已超时", "Deadline passed"),
    "classifier_unavailable": ("分类模型不可用，转人工", "Model unavailable: manual dispatch"),
    "no_route": ("路由表无承办部门，转人工", "No route: manual dispatch"),
}


def _flash(request: Request, message: str) -> None:
    request.session["flash"] = message


def _take_flash(request: Request) -> str | None:
    return request.session.pop("flash", None)


def _remember(request: Request, number: str, token: str) -> None:
    saved = dict(request.session.get(SESSION_KEY) or {})
    saved[number] = token
    request.session[SESSION_KEY] = dict(list(saved.items())[-MAX_REMEMBERED:])


def _names(lang: str) -> dict[str, Any]:
    def table(names: dict[str, tuple[str, str]]) -> dict[str, str]:
        return {code: vocab.label(names, code, lang) for code in names}

    return {
        "status_names": table(vocab.STATUS_NAMES),
        "type_names": table(vocab.TYPE_NAMES),
        "channel_names": table(vocab.CHANNEL_NAMES),
        "rating_names": table(vocab.RATING_NAMES),
        "mode_names": table(vocab.DISPATCH_MODES),
        "step_names": table(STEP_NAMES),
        "categories": dispatch.CATEGORIES,
        "local": _local,
    }


def _local(moment: datetime | None) -> str:
    """China time for display (stored times are UTC)."""
    return moment.astimezone(CST).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return render(
        request,
        name,
        status_code=status_code,
        flash=_take_flash(request),
        **_names(language(request)),
        **context,
    )


def _districts(ctx: Context, actor: Actor) -> list[tuple[str, str]]:
    """(code, name) of the districts, for anyone: the portal form is public."""
    with ctx.db.read() as session:
        return [
            (code, name)
            for code, name in session.execute(
                select(Region.code, Region.name)
                .where(Region.level == "county")
                .order_by(Region.code)
            )
        ]


# --- citizens ------------------------------------------------------------------------


@router.get("/new", response_class=HTMLResponse)
def new_ticket_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    return _page(
        request,
        "hotline/new.html",
        agent=can(actor, INTAKE),
        districts=_districts(ctx, actor),
        form={},
    )


@router.post("/new", response_class=HTMLResponse)
async def new_ticket_submit(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    text: Annotated[str, Form(max_length=20000)] = "",
    title: Annotated[str, Form(max_length=1000)] = "",
    contact_phone: Annotated[str, Form(max_length=40)] = "",
    contact_name: Annotated[str, Form(max_length=200)] = "",
    district_code: Annotated[str, Form(max_length=12)] = "",
    place: Annotated[str, Form(max_length=1000)] = "",
    type: Annotated[str, Form(max_length=32)] = "",
    channel: Annotated[str, Form(max_length=16)] = "web",
    csrf_token: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    agent = can(actor, INTAKE)
    attachments = []
    for upload in (files or [])[: intake.MAX_ATTACHMENTS + 1]:
        if not upload.filename:
            continue  # the browser sends an empty part when no file was chosen
        data = await upload.read(intake.MAX_ATTACHMENT_BYTES + 1)
        attachments.append(
            intake.AttachmentInput(
                upload.filename, upload.content_type or "application/octet-stream", data
            )
        )
    data = intake.TicketInput(
        text=text,
        contact_phone=contact_phone,
        channel=channel if agent else "web",
        title=title,
        contact_name=contact_name,
        type=type or None,
        district_code=district_code or None,
        place=place,
        attachments=tuple(attachments),
    )
    try:
        check_csrf(request, csrf_token)
        throttle.check_intake(request, ctx, actor)
        result = await run_in_threadpool(intake.submit_ticket, ctx, actor, data, portal=not agent)
    except XietongError as error:
        limited = isinstance(error, RateLimited)
        if limited and not wants_html(request):
            raise  # the JSON error (429, Retry-After) of api/errors.py
        page = _page(
            request,
            "hotline/new.html",
            status_code=error.status,
            error=error.message(language(request)),
            agent=agent,
            districts=_districts(ctx, actor),
            form=data.__dict__,
        )
        if limited:
            page.headers["Retry-After"] = str(error.details["retry_after_s"])
        return page
    assert result.citizen_token is not None
    _remember(request, result.number, result.citizen_token)
    if agent:
        _flash(request, f"工单 {result.number} 已受理")
        return RedirectResponse(f"/hotline/tickets/{result.number}", status_code=303)
    return RedirectResponse(f"/hotline/my/{result.number}?key={result.citizen_token}", 303)


@router.get("/my", response_class=HTMLResponse)
def my_tickets_page(request: Request, ctx: CtxDep) -> Response:
    saved: dict[str, str] = request.session.get(SESSION_KEY) or {}
    items = []
    for number, token in reversed(list(saved.items())):
        try:
            detail = queries.get_ticket_for_citizen(ctx, number, token)
        except XietongError:
            continue
        items.append((detail.ticket, token))
    return _page(request, "hotline/my.html", items=items)


@router.get("/my/{number}", response_class=HTMLResponse)
def citizen_ticket_page(
    request: Request, number: str, ctx: CtxDep, key: str = "", error: str | None = None
) -> Response:
    saved: dict[str, str] = request.session.get(SESSION_KEY) or {}
    token = key or saved.get(number, "")
    try:
        detail = queries.get_ticket_for_citizen(ctx, number, token)
    except XietongError as failure:
        return _page(
            request,
            "hotline/my.html",
            status_code=failure.status,
            error=failure.message(language(request)),
            items=[],
        )
    _remember(request, number, token)
    return _page(request, "hotline/citizen_ticket.html", detail=detail, key=token, error=error)


@router.post("/my/{number}/rate", response_class=HTMLResponse)
def citizen_rate(
    request: Request,
    number: str,
    ctx: CtxDep,
    actor: ActorDep,
    rating: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        handling.rate(ctx, actor, number, rating, note=note, citizen_token=key)
    except XietongError as error:
        return citizen_ticket_page(request, number, ctx, key=key, error=error.message(lang))
    _flash(request, "感谢您的评价" if lang == "zh-CN" else "Thank you for your rating")
    return RedirectResponse(f"/hotline/my/{number}?key={key}", status_code=303)


@router.get("/faq", response_class=HTMLResponse)
def faq_page(request: Request, ctx: CtxDep, actor: ActorDep, q: str = "") -> Response:
    hits = knowledge.search(ctx, actor, q[:200]) if q.strip() else []
    return _page(request, "hotline/faq.html", q=q, hits=hits)


# --- staff ---------------------------------------------------------------------------


QUEUE_PAGE = 20


@router.get("/queue", response_class=HTMLResponse)
def queue_page(
    request: Request, ctx: CtxDep, actor: ActorDep, page: int = 1, q: str = ""
) -> Response:
    authorize(actor, DISPATCH)
    page = max(1, page)
    items, total = queries.dispatcher_queue(
        ctx, actor, q=q, limit=QUEUE_PAGE, offset=(page - 1) * QUEUE_PAGE
    )
    return _page(
        request,
        "hotline/queue.html",
        items=items,
        total=total,
        page=page,
        pages=(total + QUEUE_PAGE - 1) // QUEUE_PAGE,
        q=q,
        extensions=queries.pending_extensions(ctx, actor),
        departments=org.list_departments(ctx, actor),
    )


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request, ctx: CtxDep, actor: ActorDep, tab: str = "todo", page: int = 1
) -> Response:
    statuses = {
        "todo": "dispatched,in_progress",
        "replied": "replied",
        "done": "closed,escalated",
    }
    tab = tab if tab in statuses else "todo"
    page = max(1, page)
    result = queries.list_tickets(
        ctx, actor, status=statuses[tab], mine=True, limit=50, offset=(page - 1) * 50
    )
    return _page(
        request,
        "hotline/inbox.html",
        items=result.items,
        total=result.total,
        tab=tab,
        page=page,
        pages=(result.total + 49) // 50,
    )


def _operations(actor: Actor, detail: queries.TicketDetail) -> list[str]:
    ticket = detail.ticket
    ops: list[str] = []
    dispatcher = can(actor, DISPATCH)
    handler = ticket.can_reveal_contact and can(actor, HANDLE)
    if dispatcher and ticket.status in ("pending_dispatch", "dispatched"):
        ops.append("dispatch")
    if dispatcher and ticket.status == "pending_dispatch":
        ops.append("merge")
    if handler and ticket.status == "dispatched":
        ops += ["accept", "send_back"]
    if handler and ticket.status == "in_progress":
        ops.append("reply")
    if (
        handler
        and ticket.status in ("dispatched", "in_progress")
        and not any(e.status == "pending" for e in detail.extensions)
    ):
        ops.append("extension")
    if can(actor, EXTENSION_DECIDE) and any(e.status == "pending" for e in detail.extensions):
        ops.append("decide_extension")
    if can(actor, FOLLOW_UP) and ticket.status == "replied":
        ops.append("follow_up")
    return ops


def _ticket_page(
    request: Request,
    ctx: CtxDep,
    actor: Actor,
    number: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    contact: handling.Contact | None = None,
) -> Response:
    detail = queries.get_ticket(ctx, actor, number)
    ops = _operations(actor, detail)
    similar = knowledge.similar_tickets(ctx, actor, number) if "merge" in ops else []
    suggestions = knowledge.reply_suggestions(ctx, actor, number) if "reply" in ops else []
    return _page(
        request,
        "hotline/ticket.html",
        status_code=status_code,
        detail=detail,
        ops=ops,
        labels={op: vocab.label(OPERATIONS, op, language(request)) for op in OPERATIONS},
        similar=similar,
        reply_suggestions=suggestions,
        departments=org.list_departments(ctx, actor) if "dispatch" in ops else [],
        error=error,
        contact=contact,
    )


@router.get("/tickets/{number}", response_class=HTMLResponse)
def ticket_page(request: Request, number: str, ctx: CtxDep, actor: ActorDep) -> Response:
    return _ticket_page(request, ctx, actor, number)


@router.post("/tickets/{number}", response_class=HTMLResponse)
def ticket_operation(
    request: Request,
    number: str,
    ctx: CtxDep,
    actor: ActorDep,
    op: Annotated[str, Form(max_length=40)],
    csrf_token: Annotated[str, Form()] = "",
    category: Annotated[str, Form(max_length=32)] = "",
    department_code: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    text: Annotated[str, Form(max_length=20000)] = "",
    hours: Annotated[str, Form(max_length=8)] = "",
    extension_id: Annotated[str, Form(max_length=12)] = "",
    approve: Annotated[str, Form(max_length=8)] = "",
    rating: Annotated[str, Form(max_length=32)] = "",
    into: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    lang = language(request)

    def number_of(value: str, zh: str, en: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise InvalidInput(
                f"{zh}应为整数", f"{en} must be a whole number", code="invalid_number"
            ) from None

    actions: dict[str, Callable[[], Any]] = {
        "dispatch": lambda: dispatch.dispatch_ticket(
            ctx,
            actor,
            number,
            category=category,
            department_code=department_code or None,
            note=note,
        ),
        "accept": lambda: handling.accept(ctx, actor, number),
        "send_back": lambda: handling.send_back(
            ctx, actor, number, reason, suggested_category=category or None
        ),
        "reply": lambda: handling.reply(ctx, actor, number, text),
        "extension": lambda: handling.request_extension(
            ctx, actor, number, number_of(hours, "延期时长", "Hours"), reason
        ),
        "decide_extension": lambda: handling.decide_extension(
            ctx,
            actor,
            number,
            number_of(extension_id, "延期申请", "Extension"),
            approve=approve == "yes",
            note=note,
        ),
        "follow_up": lambda: handling.rate(ctx, actor, number, rating, note=note),
        "merge": lambda: handling.merge(ctx, actor, number, into),
        "reveal_contact": lambda: handling.reveal_contact(ctx, actor, number),
    }
    try:
        check_csrf(request, csrf_token)
        if op not in actions:
            raise InvalidInput(
                f"未知操作：{op}", f"Unknown operation: {op}", code="unknown_operation"
            )
        result = actions[op]()
        if op == "reveal_contact":
            # shown on this response only: a reload shows the mask again
            return _ticket_page(request, ctx, actor, number, contact=result)
    except XietongError as error:
        return _ticket_page(
            request, ctx, actor, number, error=error.message(lang), status_code=error.status
        )
    zh, en = OPERATIONS.get(op, (op, op))
    _flash(request, f"{zh}成功" if lang == "zh-CN" else f"{en}: done")
    if op == "send_back":
        return RedirectResponse("/hotline/inbox", status_code=303)
    if op in ("dispatch", "merge") and can(actor, DISPATCH):
        return RedirectResponse("/hotline/queue", status_code=303)
    return RedirectResponse(f"/hotline/tickets/{number}", status_code=303)


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    authorize(actor, STATS)
    summary = queries.overview(ctx, actor)
    report = knowledge.hotspots(ctx, actor, weeks=6, limit=10)
    chart = {
        "weeks": report.weeks,
        "labels": [spot.label for spot in report.hotspots],
        "totals": [spot.total for spot in report.hotspots],
        "trends": [{"name": spot.label, "data": spot.trend} for spot in report.hotspots[:5]],
        "status": [
            {"name": vocab.label(vocab.STATUS_NAMES, code, language(request)), "value": count}
            for code, count in summary.by_status.items()
        ],
    }
    return _page(
        request,
        "hotline/overview.html",
        summary=summary,
        report=report,
        chart_json=json.dumps(chart, ensure_ascii=False),
    )


@router.get("/routes", response_class=HTMLResponse)
def routes_page(
    request: Request, ctx: CtxDep, actor: ActorDep, error: str | None = None
) -> Response:
    return _page(
        request,
        "hotline/routes.html",
        status_code=200 if error is None else 422,
        routes=dispatch.list_routes(ctx, actor),
        editable=can(actor, ROUTE_MANAGE),
        departments=org.list_departments(ctx, actor),
        districts=_districts(ctx, actor),
        error=error,
    )


@router.post("/routes", response_class=HTMLResponse)
def routes_submit(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    op: Annotated[str, Form(max_length=10)] = "set",
    category: Annotated[str, Form(max_length=32)] = "",
    department_code: Annotated[str, Form(max_length=64)] = "",
    district_code: Annotated[str, Form(max_length=12)] = "",
    route_id: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    lang = language(request)
    try:
        check_csrf(request, csrf_token)
        if op == "delete":
            dispatch.delete_route(ctx, actor, int(route_id or 0))
        else:
            dispatch.set_route(
                ctx,
                actor,
                category=category,
                department_code=department_code,
                district_code=district_code or None,
            )
    except XietongError as error:
        return routes_page(request, ctx, actor, error=error.message(lang))
    _flash(request, "路由表已更新" if lang == "zh-CN" else "Routing table updated")
    return RedirectResponse("/hotline/routes", status_code=303)
