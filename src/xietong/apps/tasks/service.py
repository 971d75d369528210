"""Task commands: create and decompose, edit the plan, link dependencies, report progress,
comment. Each is one ``UnitOfWork``: the change, its audit leaf and its ``task.*`` event
commit together; every check runs before anything is written, so bad input changes
nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from xietong.apps.tasks import attachments as attached
from xietong.apps.tasks import rights
from xietong.apps.tasks.analysis import Status
from xietong.apps.tasks.events import (
    MODULE,
    CommentAdded,
    DependencyAdded,
    ProgressReported,
    TaskCreated,
    TaskUpdated,
)
from xietong.apps.tasks.models import (
    DepartmentCapacity,
    ProgressReport,
    Task,
    TaskComment,
    TaskCooperation,
    TaskLink,
)
from xietong.apps.tasks.rules import (
    MAX_TEXT,
    TaskInput,
    TaskPatch,
    check_attachments,
    check_basis,
    check_number,
    check_text,
    check_warn_options,
    derive_status,
    invalid,
    plan_dates,
)
from xietong.apps.tasks.views import CommentView, ReportView, TaskView, task_views
from xietong.kernel import clock, files
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput
from xietong.kernel.org.models import Department, User
from xietong.kernel.uow import UnitOfWork

MAX_CHILDREN = 500


def today() -> date:
    return clock.local_now().date()


def department_by_code(session: Session, code: str, what: str = "部门") -> Department:
    dept = session.scalar(select(Department).where(Department.code == code.strip()))
    if dept is None or not dept.active:
        raise invalid(
            "unknown_department",
            f"{what}不存在：{code}",
            f"Unknown department: {code}",
            department=code,
        )
    return dept


def user_by_username(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        raise invalid("unknown_owner", f"责任人不存在：{username}", f"Unknown owner: {username}")
    return user


def dept_code(session: Session, department_id: int) -> str:
    return session.get_one(Department, department_id).code


def view_of(session: Session, task: Task) -> TaskView:
    session.flush()
    return task_views(session, [task])[0]


def emit_info(session: Session, task: Task) -> tuple[int, int, str]:
    return task.id, task.root_id or task.id, dept_code(session, task.department_id)


def _cooperating(session: Session, codes: tuple[str, ...], lead: Department) -> list[int]:
    found: list[int] = []
    for code in codes:
        dept = department_by_code(session, code, "配合部门")
        if dept.id == lead.id:
            raise invalid(
                "lead_also_cooperating",
                f"牵头部门不能同时是配合部门：{code}",
                f"The lead department cannot also cooperate: {code}",
            )
        if dept.id not in found:
            found.append(dept.id)
    return found


def _visible_dependency(session: Session, actor: Actor, task_id: int) -> Task:
    """A dependency must be a task the actor may see; unknown and hidden read the same."""
    found = session.get(Task, task_id)
    if found is None or not rights.can_see(session, actor, found):
        raise invalid(
            "dependency_not_visible",
            f"依赖的任务不存在或无权查看：{task_id}",
            f"The task depended on does not exist or is not visible to you: {task_id}",
            depends_on=task_id,
        )
    return found


def create_task(ctx: Context, actor: Actor, data: TaskInput) -> TaskView:
    """Create a task force's task, or decompose a parent into a lead or cooperating task."""
    authorize(actor, rights.MANAGE)
    title = check_text(data.title, "任务名称", "Title", required=True, limit=200)
    content = check_text(data.content, "任务内容", "Content", required=False, limit=MAX_TEXT)
    basis = check_basis(data.basis)
    goal_name = check_text(data.goal_name, "目标指标", "Goal", required=False, limit=200) or None
    goal_unit = (
        check_text(data.goal_unit, "目标单位", "Goal unit", required=False, limit=32) or None
    )
    numbers = [
        check_number(data.goal_baseline, "基线值", "Baseline"),
        check_number(data.goal_target, "目标值", "Target"),
        check_number(data.goal_current, "当前值", "Current value"),
    ]
    if not 0 <= data.weight <= 1000:
        raise invalid("invalid_weight", "工作量权重须在 0–1000 之间", "The weight must be 0–1000")
    check_warn_options(data.warn_margin, data.warn_due_days)
    if data.level is not None and data.level not in ("task_force", "lead", "cooperating"):
        raise invalid("invalid_level", f"层级无效：{data.level}", f"Invalid level: {data.level}")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        lead = department_by_code(session, data.department_code, "牵头部门")
        parent: Task | None = None
        if data.parent_id is not None:
            parent = rights.load_visible(session, actor, data.parent_id)
            rights.require_manage(session, actor, parent)
            if parent.status == Status.CLOSED:
                raise Conflict(
                    "上级任务已销号，不能再分解", "The parent task is closed", code="parent_closed"
                )
            depth = len(rights.chain(session, parent))
            level = data.level or ("lead" if depth == 1 else "cooperating")
        else:
            authorize(actor, rights.MANAGE, rights.guarded(lead.id))
            level = data.level or "task_force"
        if (parent is None) != (level == "task_force"):
            raise invalid(
                "invalid_level",
                "只有顶层任务是专班任务",
                "Only a top-level task is a task force's task",
            )
        coop = _cooperating(session, data.cooperating_codes, lead)
        supervising = (
            department_by_code(session, data.supervising_department_code, "督办部门").id
            if data.supervising_department_code
            else None
        )
        owner = user_by_username(session, data.owner).id if data.owner else None
        dates = plan_dates(
            ctx, lead.region_code, data.planned_start, data.planned_end, data.duration_days
        )
        for dep in data.depends_on:
            _visible_dependency(session, actor, dep)
        now = clock.now()
        task = Task(
            parent_id=parent.id if parent else None,
            root_id=(parent.root_id or parent.id) if parent else None,
            level=level,
            title=title,
            content=content,
            basis=basis,
            goal_name=goal_name,
            goal_unit=goal_unit,
            goal_baseline=numbers[0],
            goal_target=numbers[1],
            goal_current=numbers[2],
            department_id=lead.id,
            owner_id=owner,
            supervising_department_id=supervising,
            planned_start=dates.start,
            planned_end=dates.end,
            duration_days=dates.duration,
            dates_estimated=dates.estimated,
            weight=data.weight,
            progress=0.0,
            status=derive_status("not_started", 0.0, dates.end, today(), False),
            warn_margin=data.warn_margin,
            warn_due_days=data.warn_due_days,
            version=1,
            created_by=actor.label,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.flush()
        if task.root_id is None:
            task.root_id = task.id
        for dept_id in coop:
            session.add(TaskCooperation(task_id=task.id, department_id=dept_id))
        for dep in dict.fromkeys(data.depends_on):
            session.add(TaskLink(task_id=task.id, depends_on_id=dep))
        view = view_of(session, task)
        uow.record(
            "tasks.task.create",
            f"task:{task.id}",
            {
                "title": title,
                "parent_id": task.parent_id,
                "level": level,
                "department": lead.code,
                "cooperating": [d.code for d in view.cooperating],
                "planned_start": dates.start.isoformat(),
                "planned_end": dates.end.isoformat(),
                "depends_on": list(data.depends_on),
            },
        )
        uow.emit(
            TaskCreated(*emit_info(session, task), title, task.parent_id, dates.end.isoformat()),
            MODULE,
        )
        uow.commit()
    return view


def update_task(
    ctx: Context,
    actor: Actor,
    task_id: int,
    patch: TaskPatch,
    *,
    expected_version: int | None = None,
) -> TaskView:
    """Change a task's elements or plan; dates are re-counted in working days."""
    authorize(actor, rights.MANAGE)
    check_warn_options(patch.warn_margin, patch.warn_due_days)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        task = rights.load_visible(session, actor, task_id)
        rights.require_manage(session, actor, task)
        if expected_version is not None and task.version != expected_version:
            raise Conflict(
                f"任务已被他人修改（当前版本 {task.version}），请刷新后重试",
                f"The task was changed meanwhile (now version {task.version}); reload it",
                code="version_conflict",
                details={"version": task.version},
            )
        if task.status == Status.CLOSED:
            raise Conflict("任务已销号，不能修改", "The task is closed", code="task_closed")
        changed: dict[str, Any] = {}

        def put(name: str, value: Any) -> None:
            if getattr(task, name) != value:
                setattr(task, name, value)
                changed[name] = value if not isinstance(value, date) else value.isoformat()

        if patch.title is not None:
            put("title", check_text(patch.title, "任务名称", "Title", required=True, limit=200))
        if patch.content is not None:
            put(
                "content",
                check_text(patch.content, "任务内容", "Content", required=False, limit=MAX_TEXT),
            )
        if patch.basis is not None:
            put("basis", check_basis(patch.basis))
        if patch.goal_name is not None:
            put(
                "goal_name",
                check_text(patch.goal_name, "目标指标", "Goal", required=False, limit=200) or None,
            )
        if patch.goal_unit is not None:
            put(
                "goal_unit",
                check_text(patch.goal_unit, "目标单位", "Goal unit", required=False, limit=32)
                or None,
            )
        if patch.goal_baseline is not None:
            put("goal_baseline", check_number(patch.goal_baseline, "基线值", "Baseline"))
        if patch.goal_target is not None:
            put("goal_target", check_number(patch.goal_target, "目标值", "Target"))
        if patch.weight is not None:
            if not 0 <= patch.weight <= 1000:
                raise invalid(
                    "invalid_weight", "工作量权重须在 0–1000 之间", "The weight must be 0–1000"
                )
            put("weight", patch.weight)
        if patch.warn_margin is not None:
            put("warn_margin", patch.warn_margin)
        if patch.warn_due_days is not None:
            put("warn_due_days", patch.warn_due_days)
        if patch.owner is not None:
            put("owner_id", user_by_username(session, patch.owner).id if patch.owner else None)
        if patch.planned_start or patch.planned_end or patch.duration_days:
            lead = session.get_one(Department, task.department_id)
            start = patch.planned_start or task.planned_start
            end = patch.planned_end
            if end is None and patch.duration_days is None:
                end = task.planned_end
            dates = plan_dates(ctx, lead.region_code, start, end, patch.duration_days)
            put("planned_start", dates.start)
            put("planned_end", dates.end)
            put("duration_days", dates.duration)
            put("dates_estimated", dates.estimated)
            started = task.status != Status.NOT_STARTED
            put("status", derive_status(task.status, task.progress, dates.end, today(), started))
        if patch.cooperating_codes is not None:
            lead = session.get_one(Department, task.department_id)
            wanted = _cooperating(session, patch.cooperating_codes, lead)
            current = rights.cooperating(session, [task.id])[task.id]
            if sorted(wanted) != current:
                session.execute(delete(TaskCooperation).where(TaskCooperation.task_id == task.id))
                for dept_id in wanted:
                    session.add(TaskCooperation(task_id=task.id, department_id=dept_id))
                changed["cooperating"] = list(patch.cooperating_codes)
        if not changed:
            return view_of(session, task)  # nothing to record; the unit of work rolls back
        task.version += 1
        task.updated_at = clock.now()
        view = view_of(session, task)
        uow.record("tasks.task.update", f"task:{task.id}", {"changed": changed})
        uow.emit(TaskUpdated(*emit_info(session, task), task.version), MODULE)
        uow.commit()
    return view


def _links(session: Session) -> dict[int, list[int]]:
    preds: dict[int, list[int]] = {}
    for task_id, on in session.execute(select(TaskLink.task_id, TaskLink.depends_on_id)):
        preds.setdefault(task_id, []).append(on)
    return preds


def _cycle_through(preds: dict[int, list[int]], task_id: int, on_id: int) -> list[int] | None:
    """The tasks of the cycle adding ``task_id → on_id`` would close: a path from
    ``on_id`` back to ``task_id`` along existing dependencies (breadth first: shortest)."""
    if on_id == task_id:
        return [task_id]
    came_from: dict[int, int] = {on_id: on_id}
    queue = deque([on_id])
    while queue:
        node = queue.popleft()
        for pred in preds.get(node, ()):
            if pred in came_from:
                continue
            came_from[pred] = node
            if pred == task_id:
                path = [task_id]
                while path[-1] != on_id:
                    path.append(came_from[path[-1]])
                return path
            queue.append(pred)
    return None


def add_dependency(ctx: Context, actor: Actor, task_id: int, depends_on_id: int) -> TaskView:
    """依赖: ``task_id`` starts after ``depends_on_id`` finishes. A cycle is refused,
    naming the tasks in it."""
    authorize(actor, rights.MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        task = rights.load_visible(session, actor, task_id)
        rights.require_manage(session, actor, task)
        _visible_dependency(session, actor, depends_on_id)
        if session.get(TaskLink, (task_id, depends_on_id)) is not None:
            return view_of(session, task)
        cycle = _cycle_through(_links(session), task_id, depends_on_id)
        if cycle is not None:
            titles = dict(
                session.execute(select(Task.id, Task.title).where(Task.id.in_(cycle))).all()
            )
            names = " → ".join(f"{titles[i]}（#{i}）" for i in [*cycle, cycle[0]])
            raise InvalidInput(
                f"依赖形成循环：{names}",
                "Dependency cycle: " + " → ".join(f"#{i}" for i in [*cycle, cycle[0]]),
                code="dependency_cycle",
                details={"task_ids": cycle},
            )
        session.add(TaskLink(task_id=task_id, depends_on_id=depends_on_id))
        task.version += 1
        task.updated_at = clock.now()
        view = view_of(session, task)
        uow.record("tasks.task.link", f"task:{task_id}", {"depends_on": depends_on_id, "add": True})
        uow.emit(DependencyAdded(*emit_info(session, task), depends_on_id), MODULE)
        uow.commit()
    return view


def remove_dependency(ctx: Context, actor: Actor, task_id: int, depends_on_id: int) -> TaskView:
    authorize(actor, rights.MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        task = rights.load_visible(session, actor, task_id)
        rights.require_manage(session, actor, task)
        link = session.get(TaskLink, (task_id, depends_on_id))
        if link is None:
            raise InvalidInput(
                f"不存在该依赖：#{task_id} → #{depends_on_id}",
                f"No such dependency: #{task_id} → #{depends_on_id}",
                code="no_such_dependency",
            )
        session.delete(link)
        task.version += 1
        task.updated_at = clock.now()
        view = view_of(session, task)
        uow.record(
            "tasks.task.link", f"task:{task_id}", {"depends_on": depends_on_id, "add": False}
        )
        uow.emit(TaskUpdated(*emit_info(session, task), task.version), MODULE)
        uow.commit()
    return view


def report_progress(
    ctx: Context,
    actor: Actor,
    task_id: int,
    percent: float,
    text: str,
    *,
    attachments: list[dict[str, Any]] | None = None,
    uploads: Sequence[files.Incoming] = (),
    reason: str | None = None,
    goal_value: float | None = None,
) -> ReportView:
    """进展: a periodic report. Over 100% is refused; going down needs a reason.

    ``attachments`` cite files the actor uploaded (``{file_id}``) or link elsewhere
    (``{name, url}``); ``uploads`` are files sent with the report, kept with it in one
    transaction (see ``attachments``)."""
    authorize(actor, rights.READ)
    if percent is None or not 0 <= percent <= 100:
        raise invalid(
            "progress_range",
            f"进度须在 0–100% 之间：{percent}",
            f"Progress must be between 0 and 100%: {percent}",
        )
    text = check_text(text, "进展情况", "Report text", required=True, limit=MAX_TEXT)
    reason = check_text(reason, "进度回退原因", "Reason", required=False, limit=MAX_TEXT) or None
    checked = check_attachments(attachments or [], len(uploads))
    attached.precheck(uploads)
    value = check_number(goal_value, "目标当前值", "Goal value")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        task = rights.load_visible(session, actor, task_id)
        rights.require_report(session, actor, task)
        if task.status == Status.CLOSED:
            raise Conflict("任务已销号，不能再报送进展", "The task is closed", code="task_closed")
        if percent < task.progress and not reason:
            raise invalid(
                "progress_decrease_needs_reason",
                f"进度从 {task.progress:g}% 下调到 {percent:g}%，请说明原因",
                f"Progress goes down from {task.progress:g}% to {percent:g}%: give a reason",
                previous=task.progress,
            )
        refs = attached.collect(ctx, uow, actor, checked, uploads)
        now = clock.now()
        report = ProgressReport(
            task_id=task.id,
            percent=float(percent),
            previous=task.progress,
            text=text,
            reason=reason,
            goal_value=value,
            attachments=refs,
            reported_by=actor.label,
            reported_at=now,
        )
        session.add(report)
        task.progress = float(percent)
        if value is not None:
            task.goal_current = value
        status = derive_status(task.status, task.progress, task.planned_end, today(), True)
        if status == Status.DONE and task.finished_on is None:
            task.finished_on = today()
        if status != Status.DONE:
            task.finished_on = None
        task.status = status
        task.version += 1
        task.updated_at = now
        session.flush()
        uow.record(
            "tasks.progress.report",
            f"task:{task.id}",
            {
                "report_id": report.id,
                "percent": percent,
                "previous": report.previous,
                "reason": reason,
                "status": status,
                "attachments": refs,
            },
        )
        uow.emit(ProgressReported(*emit_info(session, task), float(percent), status), MODULE)
        view = ReportView.of(report)
        uow.commit()
    return view


def add_comment(ctx: Context, actor: Actor, task_id: int, text: str) -> CommentView:
    """协调与反馈: a comment from the lead, a cooperating department or a manager."""
    authorize(actor, rights.READ)
    text = check_text(text, "意见", "Comment", required=True, limit=MAX_TEXT)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        task = rights.load_visible(session, actor, task_id)
        rights.require_report(session, actor, task)
        row = TaskComment(task_id=task.id, author=actor.label, text=text, created_at=clock.now())
        session.add(row)
        session.flush()
        uow.record("tasks.comment.add", f"task:{task.id}", {"comment_id": row.id})
        uow.emit(CommentAdded(*emit_info(session, task), row.id), MODULE)
        view = CommentView.of(row)
        uow.commit()
    return view


def set_capacity(ctx: Context, actor: Actor, department_code: str, capacity: float) -> float:
    """How much weighted open work a department can carry; 0 removes the figure."""
    authorize(actor, rights.CAPACITY)
    if capacity is None or not 0 <= capacity <= 1_000_000:
        raise invalid("invalid_capacity", "承载能力须在 0–1000000 之间", "Capacity must be 0–1e6")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        dept = department_by_code(session, department_code)
        row = session.get(DepartmentCapacity, dept.id)
        if capacity == 0:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(
                DepartmentCapacity(department_id=dept.id, capacity=capacity, updated_at=clock.now())
            )
        else:
            row.capacity, row.updated_at = capacity, clock.now()
        uow.record("tasks.capacity.set", f"department:{dept.code}", {"capacity": capacity})
        uow.commit()
    return capacity


def next_day(day: date) -> date:
    return day + timedelta(days=1)
