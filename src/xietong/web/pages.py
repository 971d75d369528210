"""The kernel's pages: login, logout, the home page per role, organisation and audit views."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import desc, select

from xietong.api.deps import current_actor, get_ctx
from xietong.kernel import audit
from xietong.kernel.access import Actor, Role, authorize
from xietong.kernel.auth import login
from xietong.kernel.context import Context
from xietong.kernel.errors import XietongError
from xietong.kernel.org import service as org
from xietong.kernel.org.systems import list_systems
from xietong.web.rendering import check_csrf, language, render, role_label

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
    user = org.get_user_by_username(ctx, actor.name) if actor.kind == "user" else None
    regions = {region.code: region.name for region in org.list_regions(ctx, actor)}
    departments = {d.id: d for d in org.list_departments(ctx, actor)}
    grouped: dict[int, dict[str, object]] = {}
    for m in user.memberships if user else ():
        row = grouped.setdefault(
            m.department_id,
            {
                "department": m.department_name,
                "region": regions.get(departments[m.department_id].region_code, ""),
                "roles": [],
            },
        )
        row["roles"].append(role_label(Role(m.role), lang))  # type: ignore[union-attr]
    memberships = list(grouped.values())
    return render(request, "home.html", memberships=memberships, cards=_cards(ctx, actor))


def _cards(ctx: Context, actor: Actor) -> list[dict[str, object]]:
    """The figures each role starts from; apps add their own through nav items."""
    cards: list[dict[str, object]] = []
    if actor.has_role(Role.ADMIN):
        cards += [
            {
                "href": "/org",
                "value": len(org.list_departments(ctx, actor)),
                "label_zh": "部门",
                "label_en": "Departments",
            },
            {
                "href": "/org",
                "value": len(org.list_users(ctx, actor)),
                "label_zh": "用户",
                "label_en": "Users",
            },
            {
                "href": "/org",
                "value": len(list_systems(ctx, actor)),
                "label_zh": "接入系统",
                "label_en": "Connected systems",
            },
        ]
    if actor.has_role(Role.AUDITOR):
        with ctx.db.read() as session:
            size = audit.tree_size(session)
        cards.append(
            {
                "href": "/audit",
                "value": size,
                "label_zh": "审计日志条目",
                "label_en": "Audit log entries",
            }
        )
    return cards


@router.get("/org", response_class=HTMLResponse)
def org_page(request: Request, ctx: CtxDep, actor: ActorDep) -> Response:
    authorize(actor, "org.manage")
    lang = language(request)
    regions = {region.code: region.name for region in org.list_regions(ctx, actor)}
    all_departments = org.list_departments(ctx, actor)
    names = {d.id: d.name for d in all_departments}
    users = org.list_users(ctx, actor)
    members: dict[int, int] = {}
    for user in users:
        for m in user.memberships:
            members[m.department_id] = members.get(m.department_id, 0) + 1
    departments = [
        {
            "code": d.code,
            "name": d.name,
            "region": regions.get(d.region_code, d.region_code),
            "parent": names.get(d.parent_id) if d.parent_id else None,
            "members": members.get(d.id, 0),
        }
        for d in all_departments
    ]
    user_rows = [
        {
            "username": u.username,
            "display_name": u.display_name,
            "active": u.active,
            "memberships": "；".join(
                f"{m.department_name}·{role_label(Role(m.role), lang)}" for m in u.memberships
            ),
        }
        for u in users
    ]
    return render(request, "org.html", departments=departments, users=user_rows)


AUDIT_PAGE_SIZE = 50
AUDIT_SCAN_LIMIT = 20_000
"""Leaves a filtered page reads at most: a filter that matches little stops here and
offers to search further back, so one page never reads a million-leaf log."""


def _matches(entry: dict[str, object], needle: str) -> bool:
    return any(needle in str(entry.get(key, "")) for key in ("actor", "action", "subject"))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, ctx: CtxDep, actor: ActorDep, before: int | None = None, q: str = ""
) -> Response:
    """Newest first, 50 a page; ``q`` filters by actor, action or subject."""
    authorize(actor, "audit.read")
    needle = q.strip()[:100]
    session = ctx.db.write_session()
    with session.begin():
        head = audit.sign_head(session, ctx.keys, ctx.settings.audit_origin).to_json()
    session.close()
    size = head["tree_size"]
    start = size if before is None else max(0, min(before, size))
    entries: list[dict[str, object]] = []
    scanned_to = start
    with ctx.db.read() as session:
        # Read back in batches so a filter that matches rarely still pages in bounded work.
        while scanned_to > 0 and len(entries) < AUDIT_PAGE_SIZE:
            if start - scanned_to >= (AUDIT_SCAN_LIMIT if needle else AUDIT_PAGE_SIZE):
                break
            batch = AUDIT_PAGE_SIZE if not needle else 500
            rows = session.execute(
                select(audit.AuditLeaf.idx, audit.AuditLeaf.leaf)
                .where(audit.AuditLeaf.idx < scanned_to)
                .order_by(desc(audit.AuditLeaf.idx))
                .limit(batch)
            ).all()
            if not rows:
                scanned_to = 0
                break
            for idx, leaf in rows:
                scanned_to = idx
                entry = json.loads(leaf)
                if not needle or _matches(entry, needle):
                    entries.append(entry)
                    if len(entries) == AUDIT_PAGE_SIZE:
                        break
    return render(
        request,
        "audit.html",
        head=head,
        entries=entries,
        total=size,
        q=needle,
        start=start,
        older=scanned_to if scanned_to > 0 else None,
        newer=min(size, start + AUDIT_PAGE_SIZE) if start < size else None,
    )


@router.get("/audit/{index}", response_class=HTMLResponse)
def audit_entry_page(request: Request, ctx: CtxDep, actor: ActorDep, index: int) -> Response:
    """One leaf with its recorded details and how to check it against the signed head."""
    authorize(actor, "audit.read")
    with ctx.db.read() as session:
        size = audit.tree_size(session)
        leaf = audit.get_leaf(session, index)
        entry = json.loads(leaf.leaf)
        details = json.dumps(json.loads(leaf.payload), ensure_ascii=False, indent=2)
    return render(request, "audit_entry.html", entry=entry, details=details, size=size)


def html_error(request: Request, error: XietongError) -> Response:
    """Errors on pages: a login redirect for the anonymous, a readable page otherwise."""
    if error.status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    lang = language(request)
    title = "出错了" if lang == "zh-CN" else "Something went wrong"
    return render(
        request, "error.html", status_code=error.status, title=title, message=error.message(lang)
    )
