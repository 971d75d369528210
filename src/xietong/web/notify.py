"""The inbox page (站内消息) behind the bell in the top bar."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xietong.api.deps import current_actor, get_ctx
from xietong.kernel import notify
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.web.rendering import check_csrf, language, render

router = APIRouter(prefix="/notifications", include_in_schema=False)
CtxDep = Annotated[Context, Depends(get_ctx)]
ActorDep = Annotated[Actor, Depends(current_actor)]
PAGE = 30


@router.get("", response_class=HTMLResponse)
def inbox(
    request: Request, ctx: CtxDep, actor: ActorDep, unread: bool = False, before: int | None = None
) -> Response:
    items = notify.list_messages(
        ctx,
        actor,
        unread_only=unread,
        before_id=before,
        limit=PAGE,
        language=language(request),
    )
    more = items[-1].id if len(items) == PAGE else None
    return render(request, "notifications.html", items=items, unread_only=unread, more=more)


@router.post("/read")
def read_all(
    request: Request, ctx: CtxDep, actor: ActorDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, csrf_token)
    notify.mark_read(ctx, actor, None)
    return RedirectResponse("/notifications", status_code=303)


@router.post("/{message_id}/open")
def open_message(
    request: Request,
    ctx: CtxDep,
    actor: ActorDep,
    message_id: int,
    link: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Mark one message read and follow its link (same-site paths only)."""
    check_csrf(request, csrf_token)
    notify.mark_read(ctx, actor, [message_id])
    target = link if link.startswith("/") and not link.startswith("//") else "/notifications"
    return RedirectResponse(target, status_code=303)
