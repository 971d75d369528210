"""派单: the routing table (category × district → department) and dispatch decisions.

A ticket is dispatched automatically only when the classifier says ``auto`` (its
confidence clears the threshold chosen for ≥ 97% precision) and the routing table has
a department for the category and the ticket's district; otherwise it waits for a
dispatcher (派单员), who sees the top three suggestions, each with the department the
table would pick. Every decision is a ``hotline_dispatch`` row with the model version
and confidence. A dispatcher who picks another category than the model predicted
leaves a correction (labelled data for the next training); so does a redispatch after
a 退单.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.apps.hotline._common import (
    DISPATCH,
    MODULE,
    ROUTE_MANAGE,
    ROUTE_READ,
    add_step,
    department_by_code,
    load_ticket,
    require_status,
    start_sla,
    text_field,
    touch,
)
from xietong.apps.hotline._model import Guess
from xietong.apps.hotline.events import RouteChanged, TicketDispatched
from xietong.apps.hotline.models import Correction, Dispatch, Route, Ticket
from xietong.apps.hotline.vocab import Status
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department, Region
from xietong.kernel.uow import UnitOfWork

# Who the timeline names for an automatic dispatch (the audit leaf keeps the real actor).
AUTO_DISPATCH = Actor(kind="worker", id=None, name="auto-dispatch", display_name="自动派单")

# The seven categories of the labelled history (train.csv); the routing table and the
# classifier share them. A deployment with other categories adds routes for them.
CATEGORIES: tuple[str, ...] = (
    "城乡建设",
    "环境保护",
    "交通运输",
    "教育文体",
    "劳动和社会保障",
    "商贸旅游",
    "卫生计生",
)


def check_category(value: str) -> str:
    category = (value or "").strip()
    if category not in CATEGORIES:
        raise InvalidInput(
            f"未知的分类：{value}（应为 {'、'.join(CATEGORIES)}）",
            f"Unknown category: {value}",
            code="unknown_category",
            details={"categories": list(CATEGORIES)},
        )
    return category


@dataclass(frozen=True)
class RouteTable:
    """The routing table and the region tree, read once (a queue page asks it 150 times)."""

    routes: dict[tuple[str, str], int]
    parents: dict[str, str | None]
    departments: dict[int, Department]

    @classmethod
    def load(cls, session: Session) -> RouteTable:
        routes = {
            (row.category, row.district_code): row.department_id
            for row in session.scalars(select(Route))
        }
        parents = dict(session.execute(select(Region.code, Region.parent_code)).all())
        ids = set(routes.values())
        departments = (
            {d.id: d for d in session.scalars(select(Department).where(Department.id.in_(ids)))}
            if ids
            else {}
        )
        return cls(routes, parents, departments)

    def department(self, category: str, district_code: str | None) -> Department | None:
        """For ``category``: the district's row, its parent regions', or the city-wide one."""
        chain: list[str] = []
        code = district_code
        while code and code not in chain and len(chain) < 6:
            chain.append(code)
            code = self.parents.get(code)
        for candidate in [*chain, ""]:
            dept_id = self.routes.get((category, candidate))
            if dept_id is not None:
                dept = self.departments.get(dept_id)
                if dept is not None and dept.active:
                    return dept
        return None


def route_for(session: Session, category: str, district_code: str | None) -> Department | None:
    """The department for ``category`` in the district, its parent regions, or city-wide."""
    return RouteTable.load(session).department(category, district_code)


@dataclass(frozen=True)
class Suggestion:
    category: str
    confidence: float
    department_code: str | None
    department_name: str | None


def suggestions(
    session: Session, ticket: Ticket, table: RouteTable | None = None
) -> list[Suggestion]:
    """The classifier's top three for a ticket, each with the department it routes to."""
    table = table or RouteTable.load(session)
    found: list[Suggestion] = []
    for category, confidence in ticket.suggestions or []:
        dept = table.department(category, ticket.district_code)
        found.append(
            Suggestion(
                category,
                float(confidence),
                dept.code if dept else None,
                (dept.short_name or dept.name) if dept else None,
            )
        )
    return found


def apply_dispatch(
    ctx: Context,
    uow: UnitOfWork,
    ticket: Ticket,
    dept: Department,
    category: str,
    *,
    mode: str,
    guess: Guess | None,
    note: str = "",
) -> Dispatch:
    """Record the decision and hand the ticket to ``dept``; the SLA starts now."""
    now = clock.now()
    row = Dispatch(
        ticket_id=ticket.id,
        department_id=dept.id,
        category=category,
        district_code=ticket.district_code,
        mode=mode,
        model_version=guess.model_version if guess else ticket.model_version,
        confidence=guess.confidence if guess else ticket.predicted_confidence,
        top3=[list(pair) for pair in (guess.top3 if guess else ticket.suggestions or [])],
        dispatched_by=uow.actor.label,
        note=note,
        created_at=now,
    )
    uow.session.add(row)
    ticket.category = category
    ticket.department_id = dept.id
    ticket.status = Status.DISPATCHED.value
    start_sla(ctx, ticket, now)
    touch(ticket, now)
    add_step(
        uow.session,
        ticket,
        AUTO_DISPATCH if mode == "auto" else uow.actor,
        "dispatch",
        note,
        mode=mode,
        department=dept.short_name or dept.name,
        category=category,
        confidence=row.confidence,
    )
    uow.emit(
        TicketDispatched(
            ticket.number,
            ticket.status,
            dept.code,
            category,
            mode,
            row.confidence,
            row.model_version,
        ),
        MODULE,
    )
    return row


def dispatch_ticket(
    ctx: Context,
    actor: Actor,
    number: str,
    *,
    category: str,
    department_code: str | None = None,
    note: str = "",
) -> None:
    """人工派单 (or 改派 before the department accepted): by category, or to a department."""
    authorize(actor, DISPATCH)
    category = check_category(category)
    note = text_field(note, "派单说明", "Note", 1000, code="invalid_note", required=False)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        ticket = load_ticket(session, number, lock=True)
        require_status(
            ticket,
            Status.PENDING_DISPATCH,
            Status.DISPATCHED,
            action_zh="派单",
            action_en="dispatch it",
        )
        if department_code:
            dept = department_by_code(session, department_code)
        else:
            found = route_for(session, category, ticket.district_code)
            if found is None:
                raise InvalidInput(
                    f"路由表中没有“{category}”在该区县的承办部门，请指定部门",
                    f"No route for {category} in this district: name a department",
                    code="no_route",
                )
            dept = found
        if ticket.status == Status.DISPATCHED:
            _close_open_dispatch(session, ticket, actor, "redirected")
        if ticket.predicted_category and category != ticket.predicted_category:
            session.add(
                Correction(
                    ticket_id=ticket.id,
                    source="manual_dispatch",
                    title=ticket.title,
                    text=ticket.text,
                    predicted_category=ticket.predicted_category,
                    wrong_category=ticket.predicted_category,
                    label=category,
                    model_version=ticket.model_version,
                    created_at=clock.now(),
                )
            )
        # a 退单 left a correction without a label: the redispatch supplies it
        for open_correction in session.scalars(
            select(Correction).where(
                Correction.ticket_id == ticket.id,
                Correction.source == "send_back",
                Correction.label.is_(None),
            )
        ):
            open_correction.label = category
        row = apply_dispatch(ctx, uow, ticket, dept, category, mode="manual", guess=None, note=note)
        uow.record(
            "hotline.ticket.dispatch",
            f"hotline.ticket:{ticket.number}",
            {
                "department": dept.code,
                "category": category,
                "mode": "manual",
                "predicted": ticket.predicted_category,
                "confidence": row.confidence,
                "model_version": row.model_version,
            },
        )
        uow.commit()


def _close_open_dispatch(session: Session, ticket: Ticket, actor: Actor, outcome: str) -> None:
    """改派: the earlier dispatch ends without an answer from its department."""
    for row in session.scalars(
        select(Dispatch).where(Dispatch.ticket_id == ticket.id, Dispatch.outcome == "pending")
    ):
        row.outcome = "sent_back"
        row.outcome_reason = "改派" if outcome == "redirected" else outcome
        row.outcome_by = actor.label
        row.outcome_at = clock.now()


# --- the routing table ---------------------------------------------------------------


@dataclass(frozen=True)
class RouteView:
    id: int
    category: str
    district_code: str | None
    district_name: str | None
    department_code: str
    department_name: str
    updated_by: str
    updated_at: str


def list_routes(ctx: Context, actor: Actor) -> list[RouteView]:
    authorize(actor, ROUTE_READ)
    with ctx.db.read() as session:
        rows = session.execute(
            select(Route, Department, Region)
            .join(Department, Department.id == Route.department_id)
            .outerjoin(Region, Region.code == Route.district_code)
            .order_by(Route.category, Route.district_code)
        ).all()
        return [
            RouteView(
                route.id,
                route.category,
                route.district_code or None,
                region.name if region else None,
                dept.code,
                dept.short_name or dept.name,
                route.updated_by,
                route.updated_at.isoformat(),
            )
            for route, dept, region in rows
        ]


def set_route(
    ctx: Context,
    actor: Actor,
    *,
    category: str,
    department_code: str,
    district_code: str | None = None,
) -> RouteView:
    """Add or change one row: ``category`` in ``district_code`` (None: city-wide) → dept."""
    authorize(actor, ROUTE_MANAGE)
    category = check_category(category)
    district = (district_code or "").strip()
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        if district and session.get(Region, district) is None:
            raise InvalidInput(
                f"行政区划不存在：{district}",
                f"Unknown district: {district}",
                code="unknown_district",
            )
        dept = department_by_code(session, department_code)
        row = session.scalar(
            select(Route).where(Route.category == category, Route.district_code == district)
        )
        now = clock.now()
        previous = None
        if row is None:
            row = Route(category=category, district_code=district, department_id=dept.id)
            session.add(row)
        else:
            previous = row.department_id
        row.department_id, row.updated_by, row.updated_at = dept.id, actor.label, now
        try:
            session.flush()
        except IntegrityError as clash:
            raise Conflict("路由已被他人修改，请重试", "Route changed meanwhile; retry") from clash
        uow.record(
            "hotline.route.set",
            f"hotline.route:{category}/{district or 'default'}",
            {"department": dept.code, "previous_department_id": previous},
        )
        uow.emit(RouteChanged(category, district, dept.code), MODULE)
        uow.commit()
        region = session.get(Region, district) if district else None
        return RouteView(
            row.id,
            category,
            district or None,
            region.name if region else None,
            dept.code,
            dept.short_name or dept.name,
            row.updated_by,
            now.isoformat(),
        )


def delete_route(ctx: Context, actor: Actor, route_id: int) -> None:
    authorize(actor, ROUTE_MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        row = uow.session.get(Route, route_id)
        if row is None:
            raise NotFound.of("路由", "Route", route_id)
        category, district = row.category, row.district_code
        uow.session.delete(row)
        uow.record(
            "hotline.route.delete",
            f"hotline.route:{category}/{district or 'default'}",
            {"route_id": route_id},
        )
        uow.emit(RouteChanged(category, district, None), MODULE)
        uow.commit()
