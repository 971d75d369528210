"""Reading tasks: the list, one task with its feedback, a tree, a department's board and
the task force's overview. Every query returns only what the actor may see."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks import rights
from xietong.apps.tasks.analysis import Node, Status, rolled_progress
from xietong.apps.tasks.models import (
    Closure,
    ProgressReport,
    Supervision,
    Task,
    TaskComment,
    TaskCooperation,
    TaskLink,
    TaskWarning,
)
from xietong.apps.tasks.views import (
    ClosureView,
    CommentView,
    ReportView,
    SupervisionView,
    TaskDetail,
    TaskView,
    WarningView,
    task_views,
)
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound
from xietong.kernel.org.models import Department

MAX_LIMIT = 500


@dataclass(frozen=True)
class TaskQuery:
    root_id: int | None = None
    department_code: str | None = None
    status: str | None = None
    level: str | None = None
    warning: str | None = None  # red · yellow · blocked · any
    q: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class Page:
    total: int
    items: list[TaskView]


def _visible_rows(session: Session, actor: Actor, query: TaskQuery) -> list[Task]:
    visible = rights.visible_ids(session, actor)
    stmt = select(Task).order_by(Task.root_id, Task.id)
    if query.root_id is not None:
        stmt = stmt.where(Task.root_id == query.root_id)
    if query.status:
        stmt = stmt.where(Task.status == query.status)
    if query.level:
        stmt = stmt.where(Task.level == query.level)
    if query.q:
        stmt = stmt.where(Task.title.contains(query.q.strip()))
    if query.department_code:
        dept = session.scalar(select(Department.id).where(Department.code == query.department_code))
        coop = select(TaskCooperation.task_id).where(TaskCooperation.department_id == dept)
        stmt = stmt.where((Task.department_id == dept) | Task.id.in_(coop))
    if query.warning:
        open_warnings = select(TaskWarning.task_id).where(TaskWarning.cleared_at.is_(None))
        if query.warning != "any":
            open_warnings = open_warnings.where(TaskWarning.level == query.warning)
        stmt = stmt.where(Task.id.in_(open_warnings))
    rows = list(session.scalars(stmt))
    if visible is not None:
        rows = [row for row in rows if row.id in visible]
    return rows


def list_tasks(ctx: Context, actor: Actor, query: TaskQuery) -> Page:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        rows = _visible_rows(session, actor, query)
        limit = max(1, min(query.limit, MAX_LIMIT))
        window = rows[query.offset : query.offset + limit]
        return Page(len(rows), task_views(session, window))


def get_task(ctx: Context, actor: Actor, task_id: int) -> TaskDetail:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        task = rights.load_visible(session, actor, task_id)
        view = task_views(session, [task])[0]
        reports = session.scalars(
            select(ProgressReport)
            .where(ProgressReport.task_id == task_id)
            .order_by(ProgressReport.id.desc())
        )
        comments = session.scalars(
            select(TaskComment).where(TaskComment.task_id == task_id).order_by(TaskComment.id)
        )
        closures = session.scalars(
            select(Closure).where(Closure.task_id == task_id).order_by(Closure.id.desc())
        )
        supervisions = session.scalars(
            select(Supervision)
            .where(Supervision.task_id == task_id)
            .order_by(Supervision.id.desc())
        )
        visible = rights.visible_ids(session, actor)
        children = [
            i
            for i in session.scalars(
                select(Task.id).where(Task.parent_id == task_id).order_by(Task.id)
            )
            if visible is None or i in visible
        ]
        dependents = [
            i
            for i in session.scalars(
                select(TaskLink.task_id).where(TaskLink.depends_on_id == task_id)
            )
            if visible is None or i in visible
        ]
        return TaskDetail(
            task=view,
            reports=[ReportView.of(r) for r in reports],
            comments=[CommentView.of(c) for c in comments],
            closures=[ClosureView.of(c) for c in closures],
            supervisions=[SupervisionView.of(s) for s in supervisions],
            children=children,
            dependents=sorted(dependents),
        )


@dataclass(frozen=True)
class TreeNode:
    task: TaskView
    children: list[TreeNode] = field(default_factory=list)
    rollup: float = 0.0  # 汇总进度 (see analysis.rollup); the task's own is task.progress


def rollups(views: list[TaskView]) -> dict[int, float]:
    """Every view's rolled-up progress (children's weighted mean for a parent)."""
    return rolled_progress(
        Node(v.id, v.parent_id, v.weight, v.progress, Status(v.status).finished) for v in views
    )


def rollup_of(ctx: Context, actor: Actor, task_id: int, root_id: int) -> float | None:
    """One task's rolled-up progress over every visible task of its tree, as the tree
    page computes it (a page of the task list would leave children out)."""
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        views = task_views(session, _visible_rows(session, actor, TaskQuery(root_id=root_id)))
    return rollups(views).get(task_id)


def tree(ctx: Context, actor: Actor, root_id: int) -> list[TreeNode]:
    """The visible tasks of a tree as nested nodes; a visible task whose parent is hidden
    becomes a top node (a cooperating department sees its own branch)."""
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        rows = _visible_rows(session, actor, TaskQuery(root_id=root_id))
        if not rows:
            raise NotFound.of("任务", "Task", root_id)
        views = task_views(session, rows)
        rolled = rollups(views)
        nodes = {view.id: TreeNode(view, rollup=round(rolled[view.id], 1)) for view in views}
        top: list[TreeNode] = []
        for node in nodes.values():
            parent = nodes.get(node.task.parent_id) if node.task.parent_id else None
            (parent.children if parent else top).append(node)
        return top


def task_forces(ctx: Context, actor: Actor) -> list[TaskView]:
    """The top tasks (专班) the actor sees, for the overview's picker."""
    return list_tasks(ctx, actor, TaskQuery(level="task_force", limit=MAX_LIMIT)).items


@dataclass(frozen=True)
class Overview:
    root: TaskView
    total: int
    by_status: dict[str, int]
    by_level: dict[str, int]  # open warnings: red · yellow · blocked
    by_department: list[dict[str, Any]]
    warnings: list[WarningView]
    progress: float  # the top task's rolled-up progress (analysis.rollup)
    branches: list[dict[str, Any]]  # the top task's children with their rolled-up progress


def overview(ctx: Context, actor: Actor, root_id: int) -> Overview:
    """The task force's overview: counts by status, red/yellow/blocked, per department."""
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        rows = _visible_rows(session, actor, TaskQuery(root_id=root_id))
        root = next((row for row in rows if row.id == root_id), None)
        if root is None:
            raise NotFound.of("任务", "Task", root_id)
        views = task_views(session, rows)
        rolled = rollups(views)
        branches = [
            {
                "task_id": view.id,
                "title": view.title,
                "department": view.department.name,
                "weight": view.weight,
                "reported": view.progress,
                "progress": round(rolled[view.id], 1),
                "status": view.status,
            }
            for view in views
            if view.parent_id == root_id
        ]
        warnings = [w for view in views for w in view.warnings]
        per_dept: dict[str, dict[str, Any]] = {}
        for view in views:
            entry = per_dept.setdefault(
                view.department.code,
                {
                    "department": view.department.name,
                    "code": view.department.code,
                    "tasks": 0,
                    "red": 0,
                    "yellow": 0,
                    "blocked": 0,
                    "done": 0,
                },
            )
            entry["tasks"] += 1
            entry["done"] += view.status in ("done", "closed")
            for level in {w.level for w in view.warnings}:
                entry[level] += 1
        return Overview(
            root=next(view for view in views if view.id == root_id),
            total=len(views),
            by_status=dict(Counter(view.status for view in views)),
            by_level={
                level: len({w.task_id for w in warnings if w.level == level})
                for level in ("red", "yellow", "blocked")
            },
            by_department=sorted(
                per_dept.values(), key=lambda e: (-e["red"], -e["yellow"], e["code"])
            ),
            warnings=sorted(
                warnings, key=lambda w: ({"red": 0, "yellow": 1, "blocked": 2}[w.level], w.task_id)
            ),
            progress=round(rolled[root_id], 1),
            branches=branches,
        )


def board(ctx: Context, actor: Actor, department_code: str) -> dict[str, list[TaskView]]:
    """A department's board: its tasks (lead or cooperating) by status column."""
    page = list_tasks(ctx, actor, TaskQuery(department_code=department_code, limit=MAX_LIMIT))
    columns: dict[str, list[TaskView]] = {
        s: [] for s in ("not_started", "in_progress", "overdue", "done", "closed")
    }
    for view in page.items:
        columns[view.status].append(view)
    return columns


def warning_history(ctx: Context, actor: Actor, task_id: int) -> list[WarningView]:
    """Every warning a task has had, open and cleared, newest first."""
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        rights.load_visible(session, actor, task_id)
        return [
            WarningView.of(row)
            for row in session.scalars(
                select(TaskWarning)
                .where(TaskWarning.task_id == task_id)
                .order_by(TaskWarning.id.desc())
            )
        ]
