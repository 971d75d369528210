"""The kernel's pages: login, logout, the home page per role, organisation and audit views."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import desc, func, select

from xietong.api.deps import current_actor, get_ctx
from xietong.kernel import audit
from xietong.kernel.access import Actor, Role, authorize
from xietong.kernel.auth import login
from xietong.kernel.canonical import rfc3339
from xietong.kernel.context import Context
from xietong.kernel.errors import XietongError
from xietong.kernel.org import queries as org_queries
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after login is a phishing tool."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def demo_accounts(ctx: Context) -> list[dict[str, str]]:
    path = ctx.settings.data_dir / "demo-accounts.json"
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: CtxDep, next: str = "/") -> Response:
    return render(request, "login.html", demo_accounts=demo_accounts(ctx), next=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    ctx: CtxDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        check_csrf(request, csrf_token)
        client = request.client.host if request.client else ""
        actor = login(ctx, username, password, client=client)
    except XietongError as error:
        return render(
            request,
            "login.html",
            status_code=error.status,
            error=error.message(language(request)),
            username=username,
            demo_accounts=demo_accounts(ctx),
            next=_safe_next(next),
        )
    lang = request.session.get("lang")
    request.session.clear()  # a fresh session on login: no fixation
    request.session["user_id"] = actor.id
    if lang:
        request.session["lang"] = lang
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    if not actor.is_authenticated:
        return render(request, "home.html")
    lang = language(request)
    with ctx.db.read() as session:
        memberships = org_queries.memberships_of(session, actor.id, lang) if actor.id else []
        cards = org_queries.home_cards(session, actor)
        if actor.has_role(Role.AUDITOR):
            cards.append(
                {
                    "href": "/audit",
                    "value": audit.tree_size(session),
                    "label_zh": "审计日志条目",
                    "label_en": "Audit log entries",
                }
            )
    return render(request, "home.html", memberships=memberships, cards=cards)


@router.get("/org", response_class=HTMLResponse)
def org_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    authorize(actor, "org.manage")
    lang = language(request)
    with ctx.db.read() as session:
        departments = org_queries.department_rows(session)
        users = org_queries.user_rows(session, lang)
    return render(request, "org.html", departments=departments, users=users)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    authorize(actor, "audit.read")
    session = ctx.db.write_session()
    with session.begin():
        head = audit.sign_head(session, ctx.keys, ctx.settings.audit_origin).to_json()
    session.close()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(audit.AuditLeaf).order_by(desc(audit.AuditLeaf.idx)).limit(50)
        ).all()
        entries = [json.loads(row.leaf) for row in rows]
        total = session.scalar(select(func.count()).select_from(audit.AuditLeaf))
    return render(request, "audit.html", head=head, entries=entries, total=total,
                  now=rfc3339)


def html_error(request: Request, error: XietongError) -> Response:
    """Errors on pages: a login redirect for the anonymous, a readable page otherwise."""
    if error.status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    lang = language(request)
    title = "出错了" if lang == "zh-CN" else "Something went wrong"
    return render(request, "error.html", status_code=error.status, title=title,
                  message=error.message(lang))
