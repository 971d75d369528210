"""Analysis answered from the stored tasks: the engine over what the asker may see.

``analysis`` gives the critical path and every task's slack, the tasks that block the
most downstream work, departments over capacity (open weighted work against the
capacity set for them), allocation problems (no owner, the same work led by two
departments), and on-time rates per department. ``what_if`` answers "if task X slips N
working days, which goals are late?". Both run the engine in memory over one read; the
engine's cost is measured in bench/tasks.py (100 000 tasks in well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from xietong.apps.tasks import planning, rights
from xietong.apps.tasks.analysis import Plan, Schedule, analyse, what_if
from xietong.apps.tasks.models import DepartmentCapacity, Task
from xietong.apps.tasks.service import today
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.org.models import Department, Region

MAX_SLIP = 250


@dataclass(frozen=True)
class TaskRef:
    id: int
    title: str
    department: str
    department_name: str


@dataclass(frozen=True)
class Timing:
    task: TaskRef
    earliest_start: date
    earliest_finish: date
    latest_finish: date
    slack: int
    critical: bool
    summary: bool  # has subtasks: scheduled through them, not work itself


@dataclass(frozen=True)
class AnalysisView:
    today: date
    tasks: int
    critical_path: list[TaskRef]
    critical_path_days: int
    timings: list[Timing]
    top_blocking: list[dict[str, Any]]
    capacity: list[dict[str, Any]]
    over_capacity: list[str]
    allocation: list[dict[str, Any]]
    on_time: list[dict[str, Any]]
    calendar_region: str | None  # the region whose working days were counted; None: nationwide
    calendar_name: str | None  # its name


@dataclass(frozen=True)
class WhatIfView:
    task: TaskRef
    slip: int
    late_goals: list[dict[str, Any]]  # every goal late after the slip
    newly_late_goals: list[int]
    newly_late_tasks: list[TaskRef]
    delayed: list[dict[str, Any]]
    calendar_region: str | None


def _scope(session: Any, actor: Actor, root_id: int | None) -> set[int] | None:
    visible = rights.visible_ids(session, actor)
    if root_id is None:
        return visible
    ids = set(session.scalars(select(Task.id).where(Task.root_id == root_id)))
    if visible is not None:
        ids &= visible
    if not ids:
        raise NotFound.of("任务", "Task", root_id)
    return ids


def _counting_calendar(ctx: Context, loaded: planning.Loaded, anchor: int | None) -> str | None:
    """The one calendar a whole plan is counted in (a path crosses departments and needs
    a single count of days): the calendar every task in it follows when they agree, else
    the calendar of ``anchor``'s lead department (the task force analysed, the task
    slipped), else nationwide."""
    assert ctx.calendar is not None
    groups = planning.by_calendar(ctx, loaded)
    if len(groups) == 1:
        return next(iter(groups))
    if anchor is not None and anchor in loaded.regions:
        return ctx.calendar.calendar_region(loaded.regions[anchor])
    return None


def analysis(ctx: Context, actor: Actor, root_id: int | None = None) -> AnalysisView:
    """Every analysis over the visible tasks (of one tree when ``root_id`` is given)."""
    authorize(actor, rights.ANALYSE)
    with ctx.db.read() as session:
        loaded = planning.load(session, _scope(session, actor, root_id), roll_up=True)
        capacities = {
            code: cap
            for code, cap in session.execute(
                select(Department.code, DepartmentCapacity.capacity).join(
                    DepartmentCapacity, DepartmentCapacity.department_id == Department.id
                )
            )
        }
        region = _counting_calendar(ctx, loaded, root_id)
        # a calendar may be loaded for a code the region table does not hold: show the code
        region_name = (
            session.scalar(select(Region.name).where(Region.code == region)) or region
            if region
            else None
        )
    day = today()
    plan = Plan(loaded.specs, planning.calendar(ctx, region))
    found = analyse(plan, day, capacities=capacities, top=10)
    timing = found.schedule
    refs = {spec.id: _ref_fast(loaded, spec) for spec in loaded.specs}
    path = [i for i in timing.critical_path() if i not in loaded.summaries]
    names = loaded.departments
    return AnalysisView(
        today=day,
        tasks=len(loaded.specs),
        critical_path=[refs[i] for i in path],
        critical_path_days=timing.critical_path_length if loaded.specs else 0,
        timings=[
            Timing(
                refs[t.task_id],
                t.earliest_start,
                t.earliest_finish,
                t.latest_finish,
                t.slack,
                t.critical,
                t.task_id in loaded.summaries,
            )
            for t in timing.timings()
        ],
        top_blocking=[
            {"task": refs[task_id], "downstream": count} for task_id, count in found.top_blocking
        ],
        capacity=[
            {
                "department": load.department,
                "department_name": names.get(load.department, load.department),
                "capacity": load.capacity,
                "load": round(load.load, 2),
                "open_tasks": load.open_tasks,
                "utilisation": None if load.utilisation is None else round(load.utilisation, 3),
                "over": load.over,
            }
            for load in sorted(found.capacity, key=lambda x: -(x.utilisation or 0))
        ],
        over_capacity=[load.department for load in found.over_capacity],
        allocation=[
            {
                "code": p.code,
                "tasks": [refs[i] for i in p.task_ids],
                "departments": list(p.departments),
                "message_zh": p.zh,
                "message_en": p.en,
            }
            for p in found.allocation
        ],
        on_time=[
            {
                "department": rate.department,
                "department_name": names.get(rate.department, rate.department),
                "finished": rate.finished,
                "on_time": rate.on_time,
                "rate": None if rate.rate is None else round(rate.rate, 3),
            }
            for rate in found.on_time.values()
        ],
        calendar_region=region,
        calendar_name=region_name,
    )


def _ref_fast(loaded: planning.Loaded, spec: Any) -> TaskRef:
    code = spec.department or ""
    return TaskRef(spec.id, spec.title, code, loaded.departments.get(code, ""))


def slip(ctx: Context, actor: Actor, task_id: int, days: int) -> WhatIfView:
    """What-if: the goals (and tasks) late if ``task_id`` slips ``days`` working days."""
    authorize(actor, rights.ANALYSE)
    if not 0 <= days <= MAX_SLIP:
        raise InvalidInput(
            f"推迟天数须在 0–{MAX_SLIP} 个工作日之间",
            f"The slip must be 0–{MAX_SLIP} working days",
            code="invalid_slip",
        )
    with ctx.db.read() as session:
        rights.load_visible(session, actor, task_id)
        loaded = planning.load(session, _scope(session, actor, None), roll_up=True)
        if task_id in loaded.summaries:
            raise InvalidInput(
                "请选择具体承办的任务：有子任务的汇总任务由其子任务决定进度",
                "Choose a task without subtasks: a summary task moves with its subtasks",
                code="summary_task",
            )
        goal_rows = {
            row.id: (row.title, row.goal_name) for row in loaded.rows.values() if row.goal_name
        }
    region = _counting_calendar(ctx, loaded, task_id)
    plan = Plan(loaded.specs, planning.calendar(ctx, region))
    timing = Schedule(plan)
    answer = what_if(plan, task_id, days, baseline=(timing.es, timing.ef))
    refs = {spec.id: _ref_fast(loaded, spec) for spec in loaded.specs}
    return WhatIfView(
        task=refs[task_id],
        slip=days,
        late_goals=[
            {
                "task_id": goal,
                "title": goal_rows[goal][0],
                "goal": goal_rows[goal][1],
                "working_days_late": late,
                "because_of_slip": goal in answer.newly_late_goals,
            }
            for goal, late in answer.late_by.items()
        ],
        newly_late_goals=list(answer.newly_late_goals),
        newly_late_tasks=[refs[i] for i in answer.newly_late_tasks],
        delayed=[{"task": refs[i], "working_days": d} for i, d in answer.delayed.items()],
        calendar_region=region,
    )
