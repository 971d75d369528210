"""预警: yellow (at risk), red (overdue) and blocked, each with a reason code and zh/en text.

Finished tasks (已完成, 已销号) never warn. A task may carry several warnings (late
*and* blocked, for instance); ``worst`` picks the one to colour it by.

- ``overdue`` (red): today is after the planned end.
- ``behind_plan`` (yellow): progress is more than ``margin`` points below the elapsed
  share of the planned working days. "Elapsed" counts the working days before today:
  workers run during the day, and today's work cannot be expected done yet.
- ``due_soon`` (yellow): at most ``due_soon_days`` working days remain until the
  planned end, i.e. in (today, planned end]; 0 means due today.
- ``predecessor_overdue`` (blocked): an unfinished predecessor is overdue.
- ``predecessor_late`` (blocked): an unfinished predecessor's earliest finish, from the
  schedule, leaves no room to start this task on its planned start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from xietong.apps.tasks.analysis._gc import paused_gc
from xietong.apps.tasks.analysis.model import TaskId
from xietong.apps.tasks.analysis.plan import Plan
from xietong.apps.tasks.analysis.schedule import forward_pass


class Level(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    BLOCKED = "blocked"


_SEVERITY = {Level.RED: 0, Level.YELLOW: 1, Level.BLOCKED: 2}


@dataclass(frozen=True)
class WarningOptions:
    margin: float = 10.0  # percentage points behind the elapsed share before yellow
    due_soon_days: int = 3  # working days before the planned end that are "due soon"


@dataclass(frozen=True, slots=True)
class TaskWarning:
    task_id: TaskId
    level: Level
    code: str
    zh: str
    en: str
    details: dict[str, Any] = field(default_factory=dict)


def warnings(
    plan: Plan,
    today: date,
    *,
    options: WarningOptions | None = None,
    earliest_finish: list[int] | None = None,
) -> list[TaskWarning]:
    """Every warning in the plan on ``today``, in topological order.

    ``earliest_finish`` is ``Schedule.ef`` when a schedule was computed already;
    otherwise a forward pass is run for the ``predecessor_late`` check.
    """
    options = options or WarningOptions()
    if earliest_finish is None:
        earliest_finish = forward_pass(plan)[1]
    with paused_gc():
        return _warnings(plan, today, options, earliest_finish)


def _warnings(plan: Plan, today: date, options: WarningOptions, ef: list[int]) -> list[TaskWarning]:
    days, specs, start, end, preds = plan.days, plan.specs, plan.start, plan.end, plan.preds
    finished = plan.finished
    before_today = days.start_offset(today)  # working days in [origin, today)
    through_today = days.end_offset(today)  # working days in [origin, today]
    # Dates, not offsets: a task ending on Friday is overdue on Saturday, though no
    # working day has passed since.
    overdue = [
        not done and today > spec.planned_end for spec, done in zip(specs, finished, strict=True)
    ]
    found: list[TaskWarning] = []
    add = found.append
    for node in plan.order:
        if finished[node]:
            continue
        spec = specs[node]
        if overdue[node]:
            late = through_today - end[node]
            add(
                TaskWarning(
                    spec.id,
                    Level.RED,
                    "overdue",
                    f"已逾期：计划 {spec.planned_end} 完成"
                    + (f"，已超 {late} 个工作日" if late else ""),
                    f"overdue: planned end {spec.planned_end}"
                    + (f", {late} working days ago" if late else ""),
                    {"planned_end": spec.planned_end.isoformat(), "working_days_late": late},
                )
            )
        else:
            span = end[node] - start[node]
            elapsed = min(max(before_today - start[node], 0), span)
            expected = 100.0 * elapsed / span if span else 0.0
            if spec.progress < expected - options.margin:
                add(_behind(spec.id, spec.progress, expected, options.margin))
            left = end[node] - through_today  # working days in (today, planned end]
            if left <= options.due_soon_days:
                add(
                    TaskWarning(
                        spec.id,
                        Level.YELLOW,
                        "due_soon",
                        f"{left} 个工作日后到期，尚未完成" if left else "今天到期，尚未完成",
                        f"due in {left} working days and not done" if left else "due today",
                        {"working_days_left": left},
                    )
                )
        for pred in preds[node]:
            if finished[pred]:
                continue
            before = specs[pred]
            if overdue[pred]:
                add(
                    TaskWarning(
                        spec.id,
                        Level.BLOCKED,
                        "predecessor_overdue",
                        f"前置任务 {before.id} 已逾期",
                        f"predecessor {before.id} is overdue",
                        {"predecessor": before.id},
                    )
                )
            elif ef[pred] > start[node]:
                can_start = days.day(ef[pred])
                add(
                    TaskWarning(
                        spec.id,
                        Level.BLOCKED,
                        "predecessor_late",
                        f"前置任务 {before.id} 无法按时完成，本任务最早 {can_start} 才能开始"
                        f"（计划 {spec.planned_start}）",
                        f"predecessor {before.id} cannot finish in time: this task can start"
                        f" {can_start} at the earliest (planned {spec.planned_start})",
                        {"predecessor": before.id, "earliest_start": can_start.isoformat()},
                    )
                )
    return found


def _behind(task_id: TaskId, progress: float, expected: float, margin: float) -> TaskWarning:
    return TaskWarning(
        task_id,
        Level.YELLOW,
        "behind_plan",
        f"进度 {progress:g}% 落后于计划进度 {expected:.0f}% 超过 {margin:g} 个百分点",
        f"progress {progress:g}% is more than {margin:g} points behind the planned {expected:.0f}%",
        {"progress": progress, "expected": round(expected, 1), "margin": margin},
    )


def worst(found: Iterable[TaskWarning]) -> dict[TaskId, Level]:
    """The level to show per task: red over yellow over blocked."""
    levels: dict[TaskId, Level] = {}
    for warning in found:
        current = levels.get(warning.task_id)
        if current is None or _SEVERITY[warning.level] < _SEVERITY[current]:
            levels[warning.task_id] = warning.level
    return levels
