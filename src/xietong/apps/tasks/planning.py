"""Task rows → the analysis engine's ``TaskSpec`` records.

Departments are named by code (capacities and on-time rates are keyed by it), owners by
username. A task with its own goal indicator carries its own goal id; the others
inherit their nearest ancestor's, which is what "which goals are late" asks about.
Dependencies on tasks outside the loaded set (not visible to the asker) are left out,
so an analysis never reveals a hidden task, and the engine never sees a dangling link.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks.analysis import InRegion, Status, TaskSpec
from xietong.apps.tasks.models import Task, TaskCooperation, TaskLink
from xietong.kernel.context import Context
from xietong.kernel.org.models import Department, User


@dataclass(frozen=True)
class Loaded:
    rows: dict[int, Task]
    specs: list[TaskSpec]
    departments: dict[str, str]  # code -> short name


def load(session: Session, ids: Iterable[int] | None = None) -> Loaded:
    """Every task (``ids`` None) or the given ones, as engine input."""
    stmt = select(Task).order_by(Task.id)
    wanted = None if ids is None else set(ids)
    rows = {row.id: row for row in session.scalars(stmt) if wanted is None or row.id in wanted}
    depts = {d.id: (d.code, d.short_name or d.name) for d in session.scalars(select(Department))}
    owners = dict(session.execute(select(User.id, User.username)).all())
    coop: dict[int, list[str]] = {}
    for task_id, dept in session.execute(
        select(TaskCooperation.task_id, TaskCooperation.department_id)
    ):
        if task_id in rows:
            coop.setdefault(task_id, []).append(depts[dept][0])
    links: dict[int, list[int]] = {}
    for task_id, on in session.execute(select(TaskLink.task_id, TaskLink.depends_on_id)):
        if task_id in rows and on in rows:
            links.setdefault(task_id, []).append(on)
    specs = [
        TaskSpec(
            id=row.id,
            parent_id=row.parent_id if row.parent_id in rows else None,
            title=row.title,
            content=row.content,
            planned_start=row.planned_start,
            planned_end=row.planned_end,
            department=depts[row.department_id][0],
            cooperating=tuple(sorted(coop.get(row.id, ()))),
            owner=owners.get(row.owner_id) if row.owner_id else None,
            progress=row.progress,
            status=Status(row.status),
            weight=row.weight,
            goal_ids=(row.id,) if row.goal_name else (),
            depends_on=tuple(links.get(row.id, ())),
            finished_on=row.finished_on,
        )
        for row in rows.values()
    ]
    return Loaded(rows, specs, {code: name for code, name in depts.values()})


def calendar(ctx: Context) -> InRegion:
    """The nationwide working-day calendar (China's holidays and 调休)."""
    assert ctx.calendar is not None
    return InRegion(ctx.calendar, None)
