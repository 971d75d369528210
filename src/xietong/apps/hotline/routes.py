"""The hotline API under /api/v1/hotline: intake, dispatch, handling, knowledge, stats.

Routes parse and render only; each calls one service function, which checks access
and the ticket's state itself. Tickets are addressed by their number.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.apps.hotline import dispatch, handling, intake, knowledge, queries, throttle
from xietong.apps.hotline._common import (
    DISPATCH,
    EXTENSION_DECIDE,
    FOLLOW_UP,
    HANDLE,
    INTAKE,
    KNOWLEDGE_READ,
    RATE,
    READ,
    ROUTE_MANAGE,
    ROUTE_READ,
    STATS,
    TRAINING_EXPORT,
)
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

router = APIRouter(prefix="/hotline", tags=["hotline 接诉即办"])
CtxDep = Annotated[Context, Depends(get_ctx)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AttachmentIn(Strict):
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=100)
    content_base64: str = Field(max_length=7_000_000)


class TicketIn(Strict):
    """What the 12345 agent typed, or a connected system's ticket."""

    text: str = Field(max_length=20_000)
    contact_phone: str = Field(max_length=40)
    channel: str = Field(default="phone", max_length=16)
    title: str = Field(default="", max_length=1000)
    contact_name: str = Field(default="", max_length=1000)
    type: str | None = Field(default=None, max_length=32)
    district_code: str | None = Field(default=None, max_length=12)
    place: str = Field(default="", max_length=1000)
    external_id: str | None = Field(default=None, max_length=200)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)

    def to_input(self) -> intake.TicketInput:
        files = []
        for item in self.attachments:
            try:
                data = base64.b64decode(item.content_base64, validate=True)
            except (binascii.Error, ValueError) as bad:
                raise InvalidInput(
                    f"附件不是有效的 Base64：{item.filename}",
                    f"Attachment is not valid base64: {item.filename}",
                    code="invalid_attachment",
                ) from bad
            files.append(intake.AttachmentInput(item.filename, item.content_type, data))
        return intake.TicketInput(
            text=self.text,
            contact_phone=self.contact_phone,
            channel=self.channel,
            title=self.title,
            contact_name=self.contact_name,
            type=self.type,
            district_code=self.district_code,
            place=self.place,
            external_id=self.external_id,
            attachments=tuple(files),
        )


class DispatchIn(Strict):
    category: str = Field(max_length=32)
    department_code: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=2000)
    suggested_category: str | None = Field(default=None, max_length=32)


class ReplyIn(Strict):
    text: str = Field(max_length=20_000)


class ExtensionIn(Strict):
    hours: int
    reason: str = Field(default="", max_length=2000)


class DecisionIn(Strict):
    approve: bool
    note: str = Field(default="", max_length=2000)


class RatingIn(Strict):
    rating: str = Field(max_length=32)
    note: str = Field(default="", max_length=4000)


class CitizenRatingIn(RatingIn):
    token: str = Field(max_length=200)


class MergeIn(Strict):
    into: str = Field(max_length=32)


class RouteIn(Strict):
    category: str = Field(max_length=32)
    department_code: str = Field(max_length=64)
    district_code: str | None = Field(default=None, max_length=12)


class KnowledgeIn(Strict):
    title: str = Field(max_length=200)
    question: str = Field(max_length=5000)
    answer: str = Field(max_length=10_000)
    category: str | None = Field(default=None, max_length=32)


def _detail(ctx: Context, actor: Actor, number: str) -> Any:
    return asdict(queries.get_ticket(ctx, actor, number))


@router.post("/tickets", status_code=201)
def create_ticket(
    request: Request,
    body: TicketIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(INTAKE))],
) -> Any:
    throttle.check_intake(request, ctx, actor)
    result = intake.submit_ticket(ctx, actor, body.to_input())
    payload = {**asdict(result)}
    return JSONResponse(payload, status_code=200 if result.replayed else 201)


@router.get("/tickets")
def list_tickets(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(READ))],
    status: str | None = None,
    department: str | None = None,
    q: str | None = None,
    mine: bool = False,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    page = queries.list_tickets(
        ctx,
        actor,
        status=status,
        department_code=department,
        q=q,
        mine=mine,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return asdict(page)


@router.get("/queue")
def dispatcher_queue(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(DISPATCH))],
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    items, total = queries.dispatcher_queue(ctx, actor, q=q, limit=limit, offset=offset)
    return {"items": [asdict(item) for item in items], "total": total}


@router.get("/tickets/{number}")
def get_ticket(number: str, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(READ))]) -> Any:
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/dispatch")
def dispatch_ticket(
    number: str, body: DispatchIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(DISPATCH))]
) -> Any:
    dispatch.dispatch_ticket(
        ctx,
        actor,
        number,
        category=body.category,
        department_code=body.department_code,
        note=body.note,
    )
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/merge")
def merge_ticket(
    number: str, body: MergeIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(DISPATCH))]
) -> Any:
    handling.merge(ctx, actor, number, body.into)
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/accept")
def accept_ticket(number: str, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]) -> Any:
    handling.accept(ctx, actor, number)
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/contact")
def reveal_contact(
    number: str, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]
) -> Any:
    """The citizen's full name and phone (POST: every reveal is an audit leaf)."""
    return asdict(handling.reveal_contact(ctx, actor, number))


@router.post("/tickets/{number}/send-back")
def send_back_ticket(
    number: str, body: ReasonIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]
) -> Any:
    handling.send_back(ctx, actor, number, body.reason, suggested_category=body.suggested_category)
    return {"number": number, "status": "pending_dispatch"}


@router.post("/tickets/{number}/reply")
def reply_ticket(
    number: str, body: ReplyIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]
) -> Any:
    handling.reply(ctx, actor, number, body.text)
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/extensions", status_code=201)
def request_extension(
    number: str, body: ExtensionIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]
) -> Any:
    extension_id = handling.request_extension(ctx, actor, number, body.hours, body.reason)
    return {"id": extension_id, "number": number, "status": "pending"}


@router.post("/tickets/{number}/extensions/{extension_id}/decision")
def decide_extension(
    number: str,
    extension_id: int,
    body: DecisionIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(EXTENSION_DECIDE))],
) -> Any:
    handling.decide_extension(
        ctx, actor, number, extension_id, approve=body.approve, note=body.note
    )
    return _detail(ctx, actor, number)


@router.post("/tickets/{number}/follow-up")
def follow_up(
    number: str, body: RatingIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(FOLLOW_UP))]
) -> Any:
    status = handling.rate(ctx, actor, number, body.rating, note=body.note)
    return {"number": number, "status": status}


@router.post("/tickets/{number}/rating")
def citizen_rating(
    number: str,
    body: CitizenRatingIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(RATE))],
) -> Any:
    status = handling.rate(
        ctx, actor, number, body.rating, note=body.note, citizen_token=body.token
    )
    return {"number": number, "status": status}


@router.get("/tickets/{number}/citizen")
def citizen_view(
    number: str,
    token: Annotated[str, Query(max_length=200)],
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(RATE))],
) -> Any:
    return asdict(queries.get_ticket_for_citizen(ctx, number, token))


@router.get("/tickets/{number}/similar")
def similar_tickets(number: str, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(READ))]) -> Any:
    return [asdict(item) for item in knowledge.similar_tickets(ctx, actor, number)]


@router.get("/tickets/{number}/reply-suggestions")
def reply_suggestions(
    number: str, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(HANDLE))]
) -> Any:
    return [asdict(item) for item in knowledge.reply_suggestions(ctx, actor, number)]


@router.get("/routes")
def list_routes(ctx: CtxDep, actor: Annotated[Actor, Depends(allow(ROUTE_READ))]) -> Any:
    return [asdict(row) for row in dispatch.list_routes(ctx, actor)]


@router.put("/routes")
def set_route(
    body: RouteIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(ROUTE_MANAGE))]
) -> Any:
    view = dispatch.set_route(
        ctx,
        actor,
        category=body.category,
        department_code=body.department_code,
        district_code=body.district_code,
    )
    return asdict(view)


@router.delete("/routes/{route_id}", status_code=204)
def delete_route(
    route_id: int, ctx: CtxDep, actor: Annotated[Actor, Depends(allow(ROUTE_MANAGE))]
) -> Response:
    dispatch.delete_route(ctx, actor, route_id)
    return Response(status_code=204)


@router.get("/faq")
def search_faq(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(KNOWLEDGE_READ))],
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Any:
    return [asdict(item) for item in knowledge.search(ctx, actor, q, limit=limit)]


@router.post("/knowledge", status_code=201)
def add_knowledge(
    body: KnowledgeIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("hotline.knowledge.manage"))],
) -> Any:
    entry_id = knowledge.add_entry(
        ctx, actor, body.title, body.question, body.answer, category=body.category
    )
    return {"id": entry_id}


@router.get("/hotspots")
def hotspots(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow(STATS))],
    weeks: Annotated[int, Query(ge=1, le=26)] = 4,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Any:
    return asdict(knowledge.hotspots(ctx, actor, weeks=weeks, limit=limit))


@router.get("/overview")
def overview(ctx: CtxDep, actor: Annotated[Actor, Depends(allow(STATS))]) -> Any:
    return asdict(queries.overview(ctx, actor))


@router.get("/training-data.csv")
def training_data(
    ctx: CtxDep, actor: Annotated[Actor, Depends(allow(TRAINING_EXPORT))]
) -> Response:
    rows = knowledge.training_rows(ctx, actor)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "title", "text", "label", "source"])
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="hotline-corrections.csv"'},
    )
