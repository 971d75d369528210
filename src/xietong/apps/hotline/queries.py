"""Reading tickets: one ticket with its timeline, lists (dispatcher queue, department
inbox), the citizen's view, and the hotline centre's overview.

Who sees what: dispatchers, supervisors and administrators see every ticket; a
department's staff see the tickets dispatched to it. The citizen's phone and name are
masked in every view; the handling department reads them in full through
``handling.reveal_contact``, which writes an audit leaf (ADR 0060); the citizen sees
their own ticket through the key they got at intake.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from xietong.apps.hotline._common import DISPATCH, READ, STATS, guarded, load_ticket
from xietong.apps.hotline.dispatch import RouteTable, Suggestion, suggestions
from xietong.apps.hotline.handling import is_handler, token_matches
from xietong.apps.hotline.models import (
    Attachment,
    Dispatch,
    Extension,
    FollowUp,
    Step,
    Ticket,
)
from xietong.apps.hotline.vocab import OPEN_STATUSES, Status
from xietong.kernel import clock
from xietong.kernel.access import Actor, Role, authorize, can, get_action
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, NotFound
from xietong.kernel.org.models import Department, Region

MAX_LIMIT = 200


def sees_all(actor: Actor) -> bool:
    return actor.is_admin or can(actor, DISPATCH) or can(actor, STATS)


@dataclass(frozen=True)
class TicketView:
    number: str
    status: str
    channel: str
    type: str
    title: str
    text: str
    place: str
    district_code: str | None
    district_name: str | None
    contact_name: str  # masked (张*): the full contact only through reveal_contact
    contact: str  # masked (139****1111)
    can_reveal_contact: bool  # the viewer handles the ticket (handling.reveal_contact)
    category: str | None
    department_code: str | None
    department_name: str | None
    predicted_category: str | None
    predicted_confidence: float | None
    model_version: str | None
    duplicate_of: str | None
    duplicate_score: float | None
    merged_into: str | None
    created_at: datetime
    due_at: datetime | None
    due_estimated: bool
    warned: bool
    overdue: bool
    reply: str | None
    replied_at: datetime | None
    rating: str | None
    reopen_count: int
    closed_at: datetime | None
    external_id: str | None


@dataclass(frozen=True)
class StepView:
    kind: str
    actor: str
    note: str
    details: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class DispatchView:
    department_code: str
    department_name: str
    category: str
    mode: str
    model_version: str | None
    confidence: float | None
    dispatched_by: str
    created_at: datetime
    outcome: str
    outcome_reason: str | None


@dataclass(frozen=True)
class ExtensionView:
    id: int
    hours: int
    reason: str
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decision_note: str | None


@dataclass(frozen=True)
class AttachmentView:
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class TicketDetail:
    ticket: TicketView
    steps: list[StepView]
    dispatches: list[DispatchView] = field(default_factory=list)
    extensions: list[ExtensionView] = field(default_factory=list)
    attachments: list[AttachmentView] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)


def _names(session: Session, tickets: list[Ticket]) -> tuple[dict[int, Department], dict]:
    dept_ids = {t.department_id for t in tickets if t.department_id}
    depts = (
        {d.id: d for d in session.scalars(select(Department).where(Department.id.in_(dept_ids)))}
        if dept_ids
        else {}
    )
    codes = {t.district_code for t in tickets if t.district_code}
    regions = (
        {r.code: r.name for r in session.scalars(select(Region).where(Region.code.in_(codes)))}
        if codes
        else {}
    )
    return depts, regions


def _numbers(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids))).all())


def _views(
    ctx: Context, session: Session, actor: Actor | None, tickets: list[Ticket]
) -> list[TicketView]:
    depts, regions = _names(session, tickets)
    linked = _numbers(
        session,
        {t.duplicate_of_id for t in tickets if t.duplicate_of_id}
        | {t.merged_into_id for t in tickets if t.merged_into_id},
    )
    now = clock.now()
    views = []
    for t in tickets:
        handler = actor is not None and actor.kind == "user" and is_handler(actor, t)
        dept = depts.get(t.department_id) if t.department_id else None
        views.append(
            TicketView(
                t.number,
                t.status,
                t.channel,
                t.type,
                t.title,
                t.text,
                t.place,
                t.district_code,
                regions.get(t.district_code) if t.district_code else None,
                _mask_name(t.contact_name),
                t.contact_masked,
                handler,
                t.category,
                dept.code if dept else None,
                (dept.short_name or dept.name) if dept else None,
                t.predicted_category,
                t.predicted_confidence,
                t.model_version,
                linked.get(t.duplicate_of_id) if t.duplicate_of_id else None,
                t.duplicate_score,
                linked.get(t.merged_into_id) if t.merged_into_id else None,
                t.created_at,
                t.due_at,
                t.due_estimated,
                t.warned_at is not None,
                t.status in OPEN_STATUSES and t.due_at is not None and now > t.due_at,
                t.reply,
                t.replied_at,
                t.rating,
                t.reopen_count,
                t.closed_at,
                t.external_id,
            )
        )
    return views


def _mask_name(name: str) -> str:
    from xietong.kernel.org.identity import mask_name

    return mask_name(name) if name else ""


def _check_read(actor: Actor, ticket: Ticket) -> None:
    authorize(actor, READ)
    if sees_all(actor):
        return
    if ticket.department_id is None or ticket.department_id not in actor.departments_for(
        get_action(READ).roles
    ):
        # the same answer as for a missing ticket: numbers are not probed this way
        raise NotFound.of("工单", "Ticket", ticket.number)
    authorize(actor, READ, guarded(ticket))


def _detail(ctx: Context, session: Session, actor: Actor | None, ticket: Ticket) -> TicketDetail:
    view = _views(ctx, session, actor, [ticket])[0]
    steps = [
        StepView(s.kind, s.actor, s.note, s.details or {}, s.at)
        for s in session.scalars(
            select(Step).where(Step.ticket_id == ticket.id).order_by(Step.at, Step.id)
        )
    ]
    dispatches = [
        DispatchView(
            dept.code,
            dept.short_name or dept.name,
            d.category,
            d.mode,
            d.model_version,
            d.confidence,
            d.dispatched_by,
            d.created_at,
            d.outcome,
            d.outcome_reason,
        )
        for d, dept in session.execute(
            select(Dispatch, Department)
            .join(Department, Department.id == Dispatch.department_id)
            .where(Dispatch.ticket_id == ticket.id)
            .order_by(Dispatch.id)
        ).all()
    ]
    extensions = [
        ExtensionView(
            e.id,
            e.hours,
            e.reason,
            e.requested_by,
            e.requested_at,
            e.status,
            e.decided_by,
            e.decision_note,
        )
        for e in session.scalars(
            select(Extension).where(Extension.ticket_id == ticket.id).order_by(Extension.id)
        )
    ]
    attachments = [
        AttachmentView(a.id, a.filename, a.content_type, a.size, a.sha256)
        for a in session.scalars(
            select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
        )
    ]
    follow_ups = [
        {"channel": f.channel, "rating": f.rating, "note": f.note, "at": f.at}
        for f in session.scalars(
            select(FollowUp).where(FollowUp.ticket_id == ticket.id).order_by(FollowUp.id)
        )
    ]
    return TicketDetail(
        view,
        steps,
        dispatches,
        extensions,
        attachments,
        suggestions(session, ticket),
        follow_ups,
    )


def get_ticket(ctx: Context, actor: Actor, number: str) -> TicketDetail:
    with ctx.db.read() as session:
        ticket = load_ticket(session, number)
        _check_read(actor, ticket)
        return _detail(ctx, session, actor, ticket)


def get_ticket_for_citizen(ctx: Context, number: str, token: str) -> TicketDetail:
    """The citizen's own ticket, by its number and the key they got at intake."""
    with ctx.db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == (number or "").strip()))
        if ticket is None or not token_matches(ticket, token):
            raise Forbidden(
                "工单编号或查询码不正确", "Wrong ticket number or key", code="wrong_token"
            )
        detail = _detail(ctx, session, None, ticket)
        # the citizen sees what happened, not who inside the government did it
        steps = [
            StepView(s.kind, "", s.note if s.kind in CITIZEN_NOTES else "", {}, s.at)
            for s in detail.steps
            if s.kind in CITIZEN_STEPS
        ]
        return TicketDetail(detail.ticket, steps, attachments=detail.attachments)


CITIZEN_STEPS = frozenset(
    {"intake", "dispatch", "accept", "reply", "rating", "follow_up", "reopen", "merge", "escalate"}
)
CITIZEN_NOTES = frozenset({"reply"})


@dataclass(frozen=True)
class TicketPage:
    items: list[TicketView]
    total: int


def list_tickets(
    ctx: Context,
    actor: Actor,
    *,
    status: str | None = None,
    department_code: str | None = None,
    q: str | None = None,
    mine: bool = False,
    overdue: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> TicketPage:
    """Tickets the actor may see, newest first; ``mine``: the actor's departments' only."""
    authorize(actor, READ)
    query = select(Ticket)
    if mine or not sees_all(actor):
        departments = actor.departments_for(get_action(READ).roles)
        if actor.is_admin and not mine:
            departments = frozenset()
        if mine or not actor.is_admin:
            query = query.where(Ticket.department_id.in_(departments or {-1}))
    if status:
        statuses = [part for part in status.split(",") if part in Status._value2member_map_]
        query = query.where(Ticket.status.in_(statuses or ["-"]))
    if overdue:
        query = query.where(Ticket.status.in_(tuple(OPEN_STATUSES)), Ticket.due_at < clock.now())
    if q:
        pattern = f"%{q.strip()[:100]}%"
        query = query.where(
            or_(Ticket.number.like(pattern), Ticket.title.like(pattern), Ticket.text.like(pattern))
        )
    with ctx.db.read() as session:
        if department_code:
            dept = session.scalar(select(Department.id).where(Department.code == department_code))
            query = query.where(Ticket.department_id == (dept or -1))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(max(1, min(limit, MAX_LIMIT)))
            .offset(max(0, offset))
        ).all()
        return TicketPage(_views(ctx, session, actor, list(rows)), total)


def dispatcher_queue(
    ctx: Context,
    actor: Actor,
    *,
    q: str | None = None,
    limit: int = MAX_LIMIT,
    offset: int = 0,
) -> tuple[list[TicketDetail], int]:
    """待派单 with the top-three suggestions, oldest first (first come, first served),
    and how many wait in all; ``q`` finds a ticket by number, title or text."""
    authorize(actor, DISPATCH)
    waiting = Ticket.status == Status.PENDING_DISPATCH.value
    if q and q.strip():
        pattern = f"%{q.strip()[:100]}%"
        waiting = waiting & or_(
            Ticket.number.like(pattern), Ticket.title.like(pattern), Ticket.text.like(pattern)
        )
    with ctx.db.read() as session:
        total = session.scalar(select(func.count()).where(waiting)) or 0
        rows = session.scalars(
            select(Ticket)
            .where(waiting)
            .order_by(Ticket.created_at, Ticket.id)
            .limit(max(1, min(limit, MAX_LIMIT)))
            .offset(max(0, offset))
        ).all()
        views = _views(ctx, session, actor, list(rows))
        table = RouteTable.load(session)
        items = [
            TicketDetail(view, [], suggestions=suggestions(session, row, table))
            for view, row in zip(views, rows, strict=True)
        ]
        return items, total


def pending_extensions(ctx: Context, actor: Actor) -> list[tuple[str, ExtensionView]]:
    authorize(actor, DISPATCH)
    with ctx.db.read() as session:
        rows = session.execute(
            select(Ticket.number, Extension)
            .join(Ticket, Ticket.id == Extension.ticket_id)
            .where(Extension.status == "pending")
            .order_by(Extension.requested_at)
        ).all()
        return [
            (
                number,
                ExtensionView(
                    e.id,
                    e.hours,
                    e.reason,
                    e.requested_by,
                    e.requested_at,
                    e.status,
                    e.decided_by,
                    e.decision_note,
                ),
            )
            for number, e in rows
        ]


@dataclass(frozen=True)
class Overview:
    total: int
    by_status: dict[str, int]
    open: int
    overdue: int
    warned: int
    auto_dispatch_share: float | None
    send_back_share: float | None
    satisfaction: float | None  # (满意 + 基本满意) / rated
    by_department: list[dict[str, Any]]
    overdue_tickets: list[TicketView]


def overview(ctx: Context, actor: Actor) -> Overview:
    """The hotline centre's figures: statuses, SLA breaches, dispatch and satisfaction."""
    authorize(actor, STATS)
    now = clock.now()
    with ctx.db.read() as session:
        by_status = dict(
            session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
        )
        open_filter = Ticket.status.in_(tuple(OPEN_STATUSES))
        overdue_rows = session.scalars(
            select(Ticket).where(open_filter, Ticket.due_at < now).order_by(Ticket.due_at).limit(50)
        ).all()
        overdue_count = session.scalar(select(func.count()).where(open_filter, Ticket.due_at < now))
        warned = session.scalar(
            select(func.count()).where(
                open_filter, Ticket.warned_at.is_not(None), Ticket.due_at >= now
            )
        )
        modes = Counter(
            dict(session.execute(select(Dispatch.mode, func.count()).group_by(Dispatch.mode)).all())
        )
        outcomes = Counter(
            dict(
                session.execute(
                    select(Dispatch.outcome, func.count()).group_by(Dispatch.outcome)
                ).all()
            )
        )
        ratings = Counter(
            dict(
                session.execute(
                    select(FollowUp.rating, func.count()).group_by(FollowUp.rating)
                ).all()
            )
        )
        per_dept = session.execute(
            select(
                Department.code,
                Department.short_name,
                Department.name,
                func.count(Ticket.id),
                func.sum(case((open_filter, 1), else_=0)),
            )
            .join(Ticket, Ticket.department_id == Department.id)
            .group_by(Department.code, Department.short_name, Department.name)
            .order_by(func.count(Ticket.id).desc())
        ).all()
        overdue_by_dept = Counter(
            dict(
                session.execute(
                    select(Department.code, func.count())
                    .join(Ticket, Ticket.department_id == Department.id)
                    .where(open_filter, Ticket.due_at < now)
                    .group_by(Department.code)
                ).all()
            )
        )
        dispatched = modes["auto"] + modes["manual"]
        decided = outcomes["accepted"] + outcomes["sent_back"]
        rated = sum(ratings.values())
        return Overview(
            total=sum(by_status.values()),
            by_status=by_status,
            open=sum(by_status.get(s, 0) for s in OPEN_STATUSES),
            overdue=overdue_count or 0,
            warned=warned or 0,
            auto_dispatch_share=modes["auto"] / dispatched if dispatched else None,
            send_back_share=outcomes["sent_back"] / decided if decided else None,
            satisfaction=(ratings["satisfied"] + ratings["basically_satisfied"]) / rated
            if rated
            else None,
            by_department=[
                {
                    "code": code,
                    "name": short or name,
                    "total": total,
                    "open": int(open_ or 0),
                    "overdue": overdue_by_dept.get(code, 0),
                }
                for code, short, name, total, open_ in per_dept
            ],
            overdue_tickets=_views(ctx, session, actor, list(overdue_rows)),
        )


def is_dispatcher(actor: Actor) -> bool:
    return actor.is_admin or Role.DISPATCHER in actor.roles
