"""The warning job (a worker's periodic job): warnings, overdue status and automatic 督办.

Each run computes, with the analysis engine, every warning that holds today (China
time) over all tasks, and compares it with the stored open warnings:

- a warning that now holds and was not open fires: a ``task_warning`` row with the day
  and moment it fired, an audit leaf, a ``task.warning.fired`` event;
- an open warning that no longer holds is cleared (``cleared_at``), with its event;
- an unfinished task past its planned end becomes 已逾期 (``overdue``);
- a task that turns red gets a supervision notice (自动督办) unless one is open;
- a notice not answered by its date is escalated to the tree's supervising office;
- notices on tasks that are finished are ended.

Thresholds are per tree (``warn_margin``, ``warn_due_days`` on its top task; defaults
10 points and 3 working days). Working days are those of the lead department's region
(the kernel calendar's regional holidays and 调休 over the national ones). Everything
of one run commits in one unit of work, so a worker dying mid-run leaves the previous
state, and the next run redoes it. On PostgreSQL an advisory lock keeps two workers from
firing the same warning twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import select, text

from xietong.apps.tasks import planning, supervision
from xietong.apps.tasks.analysis import Plan, Schedule, WarningOptions, warnings
from xietong.apps.tasks.events import MODULE, WarningCleared, WarningFired
from xietong.apps.tasks.models import Supervision, Task, TaskWarning
from xietong.apps.tasks.rules import DEFAULT_DUE_DAYS, DEFAULT_MARGIN, derive_status
from xietong.apps.tasks.service import emit_info, today
from xietong.kernel import clock
from xietong.kernel.access import WORKER
from xietong.kernel.context import Context
from xietong.kernel.uow import UnitOfWork

JOB_NAME = "tasks.warnings"
INTERVAL_S = 300.0
_LOCK_KEY = 0x7461736B  # "task"


def run_job(ctx: Context) -> int:
    """The periodic job: the number of changes made."""
    return check_warnings(ctx)


def check_warnings(ctx: Context, *, on: date | None = None) -> int:
    day = on or today()
    with UnitOfWork(ctx, WORKER) as uow:
        session = uow.session
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        loaded = planning.load(session)
        if not loaded.specs:
            return 0
        # group the trees by their thresholds: one warnings pass per distinct pair
        options: dict[int, WarningOptions] = {}
        for row in loaded.rows.values():
            if row.parent_id is None:
                options[row.id] = WarningOptions(
                    margin=row.warn_margin if row.warn_margin is not None else DEFAULT_MARGIN,
                    due_soon_days=row.warn_due_days
                    if row.warn_due_days is not None
                    else DEFAULT_DUE_DAYS,
                )
        default = WarningOptions(DEFAULT_MARGIN, DEFAULT_DUE_DAYS)
        by_option: dict[WarningOptions, set[int]] = defaultdict(set)
        for row in loaded.rows.values():
            by_option[options.get(row.root_id or row.id, default)].add(row.id)
        current = {}
        # each task is judged by its lead department's region's working days (a city's
        # own holidays and 调休): one plan per distinct calendar, each keeping the
        # warnings of its own tasks (dependencies on other regions' tasks included)
        for region, in_region in planning.by_calendar(ctx, loaded).items():
            plan = Plan(loaded.specs, planning.calendar(ctx, region))
            timing = Schedule(plan)
            for option, members in by_option.items():
                wanted = members & in_region
                if not wanted:
                    continue
                for found in warnings(plan, day, options=option, earliest_finish=timing.ef):
                    if found.task_id in wanted:
                        current[(found.task_id, found.code)] = found
        changes = 0
        now = clock.now()
        stored = {
            (w.task_id, w.code): w
            for w in session.scalars(select(TaskWarning).where(TaskWarning.cleared_at.is_(None)))
        }
        for key, found in current.items():
            row = stored.get(key)
            if row is not None:
                row.message_zh, row.message_en, row.details = found.zh, found.en, found.details
                continue
            task = loaded.rows[found.task_id]
            warning = TaskWarning(
                task_id=task.id,
                level=found.level.value,
                code=found.code,
                message_zh=found.zh,
                message_en=found.en,
                details=found.details,
                fired_on=day,
                fired_at=now,
            )
            session.add(warning)
            session.flush()
            uow.record(
                "tasks.warning.fire",
                f"task:{task.id}",
                {
                    "warning_id": warning.id,
                    "level": warning.level,
                    "code": warning.code,
                    "on": day.isoformat(),
                },
            )
            uow.emit(
                WarningFired(*emit_info(session, task), warning.id, warning.level, warning.code),
                MODULE,
            )
            changes += 1
        for key, row in stored.items():
            if key in current:
                continue
            row.cleared_at = now
            task = session.get_one(Task, row.task_id)
            uow.record(
                "tasks.warning.clear", f"task:{task.id}", {"warning_id": row.id, "code": row.code}
            )
            uow.emit(WarningCleared(*emit_info(session, task), row.id, row.level, row.code), MODULE)
            changes += 1
        for task in loaded.rows.values():
            if task.status in ("done", "closed"):
                continue
            if day > task.planned_end:
                status = "overdue"
            elif task.status == "overdue":  # the plan was extended
                status = derive_status(
                    "in_progress", task.progress, task.planned_end, day, task.progress > 0
                )
            else:
                continue
            if status != task.status:
                uow.record(
                    "tasks.task.status", f"task:{task.id}", {"from": task.status, "to": status}
                )
                task.status = status
                task.version += 1
                task.updated_at = now
                changes += 1
        changes += _supervise(ctx, uow, loaded.rows, current, day)
        if changes:
            uow.commit()
        return changes


def _supervise(
    ctx: Context, uow: UnitOfWork, rows: dict[int, Task], current: dict, day: date
) -> int:
    session = uow.session
    changes = 0
    red = {task_id for (task_id, _code), found in current.items() if found.level.value == "red"}
    active: dict[int, list[Supervision]] = defaultdict(list)
    for row in session.scalars(
        select(Supervision).where(Supervision.status.in_(("open", "escalated")))
    ):
        active[row.task_id].append(row)
    for task_id in sorted(red):
        if not active.get(task_id):
            task = rows[task_id]
            message = (
                f"任务“{task.title}”已逾期（计划 {task.planned_end} 完成），"
                "请于期限内反馈整改措施和完成时间"
            )
            supervision.issue(ctx, uow, task, message, automatic=True)
            changes += 1
    for task_id, notices in active.items():
        task = rows.get(task_id)
        if task is None:
            continue
        for notice in notices:
            if task.status in ("done", "closed"):
                supervision.end_row(uow, notice, task, "任务已完成，督办结束")
                changes += 1
            elif notice.status == "open" and notice.respond_by < day:
                supervision.escalate_row(
                    uow,
                    notice,
                    task,
                    f"逾期未反馈（应于 {notice.respond_by} 前反馈），自动升级督办",
                )
                changes += 1
    return changes
