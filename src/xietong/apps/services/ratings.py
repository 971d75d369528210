"""好差评: the applicant rates a delivered application — the bundle and each department
that handled a sub-case — once; a bad rating (不满意 or worse) opens a 整改 for that
department with a deadline in working days; its outcome is reported back on the
application and counted in the department's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from xietong.apps.services import progress
from xietong.apps.services.applications import load_application, read_view
from xietong.apps.services.events import MODULE, RatingGiven, RectificationChanged
from xietong.apps.services.models import Application, Rating, Rectification, SubCase
from xietong.apps.services.views import ApplicationView
from xietong.apps.services.vocab import (
    BAD_RATING,
    RATING_LEVELS,
    ApplicationStatus,
    RectificationStatus,
    rating_level,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, visible_departments
from xietong.kernel.calendar import to_local_date
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

RATE = "services.rating.give"
RECTIFY = "services.rectification.handle"
STATS = "services.statistics.read"
RECTIFICATION_DAYS = 5
MAX_COMMENT = 1000


def _level(value: object, what: str) -> int:
    level = rating_level(value)
    if level is None:
        raise InvalidInput(
            f"{what}的评价须为：{'、'.join(RATING_LEVELS.values())}",
            f"{what}: a level 1–5 or its Chinese label",
            code="invalid_rating",
        )
    return level


def _comment(value: object) -> str:
    text = str(value or "").strip()
    if len(text) > MAX_COMMENT:
        raise InvalidInput(
            f"评价内容不能超过 {MAX_COMMENT} 字", "Comment too long", code="comment_too_long"
        )
    return text


def rate(
    ctx: Context,
    actor: Actor,
    number: str,
    *,
    bundle: dict[str, Any],
    departments: dict[int, dict[str, Any]],
) -> ApplicationView:
    """Rate the bundle and every department that handled a sub-case, all at once."""
    authorize(actor, RATE)
    bundle_level = _level((bundle or {}).get("level"), "一件事")
    bundle_comment = _comment((bundle or {}).get("comment"))
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        app = load_application(session, number)
        if actor.id != app.applicant_user_id:
            raise Forbidden(
                "只有申请人可以评价", "Only the applicant may rate", code="not_applicant"
            )
        if app.status != ApplicationStatus.DELIVERED and app.status != ApplicationStatus.REFUSED:
            raise Conflict("办结后才能评价", "Rate after delivery", code="not_delivered")
        if session.scalar(select(Rating.id).where(Rating.application_id == app.id).limit(1)):
            raise Conflict("该办件已评价，不能重复评价", "Already rated", code="already_rated")
        handled = set(
            session.scalars(select(SubCase.department_id).where(SubCase.application_id == app.id))
        )
        given = {int(k): v for k, v in (departments or {}).items()}
        if set(given) != handled:
            raise InvalidInput(
                "请对每个办理部门逐一评价",
                "Rate every department that handled a sub-case",
                code="rate_every_department",
                details={"departments": sorted(handled)},
            )
        now = clock.now()
        entries = [("bundle", None, bundle_level, bundle_comment)]
        for dept_id in sorted(given):
            value = given[dept_id] if isinstance(given[dept_id], dict) else {}
            entries.append(
                (
                    f"department:{dept_id}",
                    dept_id,
                    _level(value.get("level"), f"部门 {dept_id}"),
                    _comment(value.get("comment")),
                )
            )
        for target, dept_id, level, comment in entries:
            rating = Rating(
                application_id=app.id,
                target=target,
                department_id=dept_id,
                level=level,
                comment=comment,
                created_at=now,
            )
            session.add(rating)
            session.flush()
            uow.emit(RatingGiven(app.number, target, level), MODULE)
            if dept_id is not None and level <= BAD_RATING:
                dept = session.get_one(Department, dept_id)
                due = (
                    ctx.calendar.add_working_days(
                        to_local_date(now), RECTIFICATION_DAYS, dept.region_code
                    ).day
                    if ctx.calendar
                    else to_local_date(now)
                )
                fix = Rectification(
                    rating_id=rating.id,
                    application_id=app.id,
                    department_id=dept_id,
                    status=RectificationStatus.OPEN.value,
                    due_date=due,
                    created_at=now,
                )
                session.add(fix)
                session.flush()
                uow.emit(RectificationChanged(app.number, fix.id, dept_id, fix.status), MODULE)
        uow.record(
            "services.rating.give",
            f"services.application:{number}",
            {"ratings": [{"target": t, "level": lv} for t, _d, lv, _c in entries]},
        )
        app_id = app.id
        uow.commit()
    return read_view(ctx, app_id)


@dataclass(frozen=True)
class RectificationView:
    id: int
    application_number: str
    department_id: int
    department_name: str
    status: str
    due_date: Any
    level: int
    level_zh: str
    comment: str
    outcome: str | None
    completed_at: Any


def list_rectifications(
    ctx: Context, actor: Actor, *, status: str | None = None
) -> list[RectificationView]:
    authorize(actor, RECTIFY)
    departments = visible_departments(actor, RECTIFY)
    stmt = (
        select(Rectification, Rating, Application, Department)
        .join(Rating, Rating.id == Rectification.rating_id)
        .join(Application, Application.id == Rectification.application_id)
        .join(Department, Department.id == Rectification.department_id)
        .order_by(Rectification.id.desc())
    )
    if departments is not None:
        stmt = stmt.where(Rectification.department_id.in_(departments))
    if status:
        stmt = stmt.where(Rectification.status == status)
    with ctx.db.read() as session:
        return [
            RectificationView(
                f.id,
                a.number,
                d.id,
                d.name,
                f.status,
                f.due_date,
                r.level,
                RATING_LEVELS[r.level],
                r.comment,
                f.outcome,
                f.completed_at,
            )
            for f, r, a, d in session.execute(stmt)
        ]


def complete_rectification(
    ctx: Context, actor: Actor, rectification_id: int, outcome: str
) -> RectificationView:
    """整改完成: the outcome is reported back to the applicant on the application."""
    authorize(actor, RECTIFY)
    text = (outcome or "").strip()
    if not text or len(text) > 2000:
        raise InvalidInput(
            "请填写整改情况（最多 2000 字）",
            "Describe the outcome (≤ 2000 chars)",
            code="outcome_required",
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        fix = session.get(Rectification, rectification_id)
        if fix is None:
            raise NotFound.of("整改", "Rectification", rectification_id)
        authorize(
            actor, RECTIFY, Resource(kind="services.rectification", department_id=fix.department_id)
        )
        if fix.status != RectificationStatus.OPEN:
            raise Conflict("整改已完成", "Already completed", code="rectification_done")
        fix.status = RectificationStatus.DONE.value
        fix.outcome = text
        fix.completed_at = clock.now()
        fix.completed_by = actor.display_name or actor.name
        app = session.get_one(Application, fix.application_id)
        uow.record(
            "services.rectification.complete",
            f"services.rectification:{fix.id}",
            {"application": app.number, "department_id": fix.department_id},
        )
        uow.emit(RectificationChanged(app.number, fix.id, fix.department_id, fix.status), MODULE)
        uow.commit()
    return next(r for r in list_rectifications(ctx, actor) if r.id == rectification_id)


@dataclass(frozen=True)
class DepartmentStats:
    department_id: int
    department_name: str
    sub_cases: int
    concluded: int
    on_time: int
    ratings: int
    average: float | None
    bad: int
    rectifications_open: int
    rectifications_done: int


def department_statistics(ctx: Context, actor: Actor) -> list[DepartmentStats]:
    authorize(actor, STATS)
    with ctx.db.read() as session:
        names = dict(session.execute(select(Department.id, Department.name)).all())
        subs: dict[int, list[int]] = {}
        for dept, status, due, ended in session.execute(
            select(SubCase.department_id, SubCase.status, SubCase.due_date, SubCase.ended_at)
        ):
            row = subs.setdefault(dept, [0, 0, 0])
            row[0] += 1
            if status == "concluded":
                row[1] += 1
                if due is not None and ended is not None and to_local_date(ended) <= due:
                    row[2] += 1
        rated = {
            d: (n, avg, bad)
            for d, n, avg, bad in session.execute(
                select(
                    Rating.department_id,
                    func.count(),
                    func.avg(Rating.level),
                    func.sum(case((Rating.level <= BAD_RATING, 1), else_=0)),
                )
                .where(Rating.department_id.is_not(None))
                .group_by(Rating.department_id)
            )
        }
        fixes: dict[int, list[int]] = {}
        for dept, status, count in session.execute(
            select(Rectification.department_id, Rectification.status, func.count()).group_by(
                Rectification.department_id, Rectification.status
            )
        ):
            fixes.setdefault(dept, [0, 0])[0 if status == "open" else 1] += count
    out: list[DepartmentStats] = []
    for dept in sorted(set(subs) | set(rated) | set(fixes)):
        s = subs.get(dept, [0, 0, 0])
        n, avg, bad = rated.get(dept, (0, None, 0))
        f = fixes.get(dept, [0, 0])
        out.append(
            DepartmentStats(
                dept,
                names.get(dept, ""),
                s[0],
                s[1],
                s[2],
                int(n),
                round(float(avg), 2) if avg is not None else None,
                int(bad or 0),
                f[0],
                f[1],
            )
        )
    return out
