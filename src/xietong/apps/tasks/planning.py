"""Task rows → the analysis engine's ``TaskSpec`` records.

Departments are named by code (capacities and on-time rates are keyed by it), owners by
username. A task with its own goal indicator carries its own goal id; the others
inherit their nearest ancestor's, which is what "which goals are late" asks about.
Dependencies on tasks outside the loaded set (not visible to the asker) are left out,
so an analysis never reveals a hidden task, and the engine never sees a dangling link.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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
    summaries: frozenset[int] = frozenset()  # tasks with children (when rolled up)
    regions: dict[int, str] = field(default_factory=dict)  # task id -> lead's region code


def _roll_up(
    rows: dict[int, Task], links: dict[int, list[int]]
) -> tuple[frozenset[int], dict[int, list[int]]]:
    """Scheduling over the work itself: a task with children is a summary (汇总任务).

    In the critical path method a summary is not work: its children are. So a link to
    a summary stands for links to each leaf under it, and a summary's own
    predecessors hold for every leaf under it. The summaries stay in the plan (the goal
    is inherited through them) as zero-length milestones with no links.
    """
    children: dict[int, list[int]] = {}
    for row in rows.values():
        if row.parent_id in rows:
            children.setdefault(row.parent_id, []).append(row.id)
    leaves: dict[int, list[int]] = {}

    def leaves_under(task_id: int) -> list[int]:
        if task_id not in leaves:
            found: list[int] = []
            stack = [task_id]
            while stack:
                node = stack.pop()
                if node in children:
                    stack.extend(children[node])
                else:
                    found.append(node)
            leaves[task_id] = sorted(found)
        return leaves[task_id]

    rolled: dict[int, list[int]] = {}
    for row in rows.values():
        if row.id in children:
            continue
        wanted: set[int] = set()
        node: int | None = row.id
        while node is not None:
            for on in links.get(node, ()):
                wanted.update(leaves_under(on))
            parent = rows[node].parent_id
            node = parent if parent in rows else None
        wanted.discard(row.id)
        rolled[row.id] = sorted(wanted)
    return frozenset(children), rolled


def load(session: Session, ids: Iterable[int] | None = None, *, roll_up: bool = False) -> Loaded:
    """Every task (``ids`` None) or the given ones, as engine input; ``roll_up`` schedules
    summaries through their leaves (see ``_roll_up``), for the critical path and what-if."""
    stmt = select(Task).order_by(Task.id)
    wanted = None if ids is None else set(ids)
    rows = {row.id: row for row in session.scalars(stmt) if wanted is None or row.id in wanted}
    departments = list(session.scalars(select(Department)))
    depts = {d.id: (d.code, d.short_name or d.name) for d in departments}
    region_of = {d.id: d.region_code for d in departments}
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
    summaries: frozenset[int] = frozenset()
    if roll_up:
        summaries, links = _roll_up(rows, links)
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
            duration=0 if row.id in summaries else None,
        )
        for row in rows.values()
    ]
    return Loaded(
        rows,
        specs,
        {code: name for code, name in depts.values()},
        summaries,
        {row.id: region_of[row.department_id] for row in rows.values()},
    )


def calendar(ctx: Context, region_code: str | None = None) -> InRegion:
    """The working-day calendar of a region (China's holidays and 调休, with the
    region's and its parents' own days); nationwide for ``None``."""
    assert ctx.calendar is not None
    return InRegion(ctx.calendar, region_code)


def by_calendar(ctx: Context, loaded: Loaded) -> dict[str | None, set[int]]:
    """The loaded tasks grouped by the calendar their lead department's region follows
    (``WorkCalendar.calendar_region``): one group per distinct calendar, not per region,
    so a city whose districts have no days of their own is computed once."""
    assert ctx.calendar is not None
    follows: dict[str, str | None] = {}
    groups: dict[str | None, set[int]] = {}
    for task_id, region in loaded.regions.items():
        if region not in follows:
            follows[region] = ctx.calendar.calendar_region(region)
        groups.setdefault(follows[region], set()).add(task_id)
    return groups
