"""The signed-in user's in-app messages (站内消息)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.kernel import notify
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

router = APIRouter(prefix="/notifications", tags=["notifications 站内消息"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Reader = Annotated[Actor, Depends(allow("notify.read"))]


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(default=None, max_length=1000)
    all: bool = False


def _language(request: Request) -> str:
    accept = request.headers.get("accept-language", "zh-CN")
    return "en" if accept.lower().startswith("en") else "zh-CN"


@router.get("")
def list_messages(
    request: Request,
    ctx: CtxDep,
    actor: Reader,
    unread: bool = False,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=notify.service.MAX_PAGE)] = 20,
) -> dict[str, Any]:
    """Newest first; the next page is ``?before_id=<last id>``."""
    items = notify.list_messages(
        ctx,
        actor,
        unread_only=unread,
        before_id=before_id,
        limit=limit,
        language=_language(request),
    )
    return {"items": [asdict(item) for item in items], "unread": notify.unread_count(ctx, actor)}


@router.get("/unread-count")
def unread_count(ctx: CtxDep, actor: Reader) -> dict[str, int]:
    return {"unread": notify.unread_count(ctx, actor)}


@router.post("/read")
def mark_read(body: ReadIn, ctx: CtxDep, actor: Reader) -> dict[str, int]:
    """Mark ``ids`` read, or everything with ``{"all": true}``."""
    if body.ids is None and not body.all:
        raise InvalidInput(
            "请给出消息编号，或 all=true", "Give ids, or all=true", code="nothing_to_mark"
        )
    count = notify.mark_read(ctx, actor, None if body.all else body.ids)
    return {"marked": count, "unread": notify.unread_count(ctx, actor)}
