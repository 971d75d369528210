"""What the service returns: plain dataclasses, rendered as JSON by the API and as HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks.analysis import Status
from xietong.apps.tasks.models import (
    Closure,
    ProgressReport,
    Supervision,
    Task,
    TaskComment,
    TaskLink,
    TaskWarning,
)
from xietong.apps.tasks.rights import cooperating
from xietong.kernel.org.models import Department, User

LEVEL_LABELS = {"task_force": "专班", "lead": "牵头", "cooperating": "配合"}


@dataclass(frozen=True)
class DepartmentRef:
    id: int
    code: str
    name: str

    @classmethod
    def of(cls, dept: Department) -> DepartmentRef:
        return cls(dept.id, dept.code, dept.short_name or dept.name)


@dataclass(frozen=True)
class Goal:
    name: str | None
    unit: str | None
    baseline: float | None
    target: float | None
    current: float | None


@dataclass(frozen=True)
class TaskView:
    id: int
    parent_id: int | None
    root_id: int
    level: str
    level_zh: str
    title: str
    content: str
    basis: list[dict[str, Any]]
    goal: Goal
    department: DepartmentRef
    cooperating: list[DepartmentRef]
    owner: str | None
    supervising_department: DepartmentRef | None
    planned_start: date
    planned_end: date
    duration_days: int
    dates_estimated: bool
    weight: float
    progress: float
    status: str
    status_zh: str
    finished_on: date | None
    depends_on: list[int]
    warn_margin: float | None
    warn_due_days: int | None
    template_key: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    warnings: list[WarningView] = field(default_factory=list)


@dataclass(frozen=True)
class WarningView:
    id: int
    task_id: int
    level: str
    code: str
    message_zh: str
    message_en: str
    details: dict[str, Any]
    fired_on: date
    fired_at: datetime
    cleared_at: datetime | None

    @classmethod
    def of(cls, row: TaskWarning) -> WarningView:
        return cls(
            row.id,
            row.task_id,
            row.level,
            row.code,
            row.message_zh,
            row.message_en,
            dict(row.details or {}),
            row.fired_on,
            row.fired_at,
            row.cleared_at,
        )


@dataclass(frozen=True)
class ReportView:
    id: int
    task_id: int
    percent: float
    previous: float
    text: str
    reason: str | None
    goal_value: float | None
    attachments: list[dict[str, Any]]
    reported_by: str
    reported_at: datetime

    @classmethod
    def of(cls, row: ProgressReport) -> ReportView:
        return cls(
            row.id,
            row.task_id,
            row.percent,
            row.previous,
            row.text,
            row.reason,
            row.goal_value,
            list(row.attachments or []),
            row.reported_by,
            row.reported_at,
        )


@dataclass(frozen=True)
class CommentView:
    id: int
    task_id: int
    author: str
    text: str
    created_at: datetime

    @classmethod
    def of(cls, row: TaskComment) -> CommentView:
        return cls(row.id, row.task_id, row.author, row.text, row.created_at)


@dataclass(frozen=True)
class ClosureView:
    id: int
    task_id: int
    evidence: list[dict[str, Any]]
    note: str
    instance_id: int | None
    status: str
    opinion: str | None
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None

    @classmethod
    def of(cls, row: Closure) -> ClosureView:
        return cls(
            row.id,
            row.task_id,
            list(row.evidence or []),
            row.note,
            row.instance_id,
            row.status,
            row.opinion,
            row.requested_by,
            row.requested_at,
            row.decided_by,
            row.decided_at,
        )


@dataclass(frozen=True)
class SupervisionView:
    id: int
    task_id: int
    to_department_id: int
    message: str
    status: str
    respond_by: date
    issued_by: str
    issued_at: datetime
    automatic: bool
    urges: int
    escalated_to_id: int | None
    escalated_at: datetime | None
    response: str | None
    responded_at: datetime | None

    @classmethod
    def of(cls, row: Supervision) -> SupervisionView:
        return cls(
            row.id,
            row.task_id,
            row.to_department_id,
            row.message,
            row.status,
            row.respond_by,
            row.issued_by,
            row.issued_at,
            row.automatic,
            row.urges,
            row.escalated_to_id,
            row.escalated_at,
            row.response,
            row.responded_at,
        )


@dataclass(frozen=True)
class TaskDetail:
    task: TaskView
    reports: list[ReportView]
    comments: list[CommentView]
    closures: list[ClosureView]
    supervisions: list[SupervisionView]
    children: list[int]
    dependents: list[int]


def status_zh(status: str) -> str:
    return Status(status).label_zh


def task_views(session: Session, rows: list[Task], *, with_warnings: bool = True) -> list[TaskView]:
    """Views of ``rows`` with their departments, owners, links and open warnings, in a
    fixed number of queries whatever the count."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    coop = cooperating(session, ids)
    dept_ids = {row.department_id for row in rows}
    dept_ids |= {row.supervising_department_id for row in rows if row.supervising_department_id}
    for extra in coop.values():
        dept_ids.update(extra)
    depts = {
        d.id: DepartmentRef.of(d)
        for d in session.scalars(select(Department).where(Department.id.in_(dept_ids)))
    }
    owner_ids = {row.owner_id for row in rows if row.owner_id}
    owners = (
        dict(session.execute(select(User.id, User.username).where(User.id.in_(owner_ids))).all())
        if owner_ids
        else {}
    )
    links: dict[int, list[int]] = {task_id: [] for task_id in ids}
    for task_id, on in session.execute(
        select(TaskLink.task_id, TaskLink.depends_on_id)
        .where(TaskLink.task_id.in_(ids))
        .order_by(TaskLink.depends_on_id)
    ):
        links[task_id].append(on)
    warnings: dict[int, list[WarningView]] = {task_id: [] for task_id in ids}
    if with_warnings:
        for warning in session.scalars(
            select(TaskWarning)
            .where(TaskWarning.task_id.in_(ids), TaskWarning.cleared_at.is_(None))
            .order_by(TaskWarning.id)
        ):
            warnings[warning.task_id].append(WarningView.of(warning))
    return [
        TaskView(
            id=row.id,
            parent_id=row.parent_id,
            root_id=row.root_id or row.id,
            level=row.level,
            level_zh=LEVEL_LABELS[row.level],
            title=row.title,
            content=row.content,
            basis=list(row.basis or []),
            goal=Goal(
                row.goal_name, row.goal_unit, row.goal_baseline, row.goal_target, row.goal_current
            ),
            department=depts[row.department_id],
            cooperating=[depts[d] for d in coop[row.id]],
            owner=owners.get(row.owner_id) if row.owner_id else None,
            supervising_department=depts.get(row.supervising_department_id)
            if row.supervising_department_id
            else None,
            planned_start=row.planned_start,
            planned_end=row.planned_end,
            duration_days=row.duration_days,
            dates_estimated=row.dates_estimated,
            weight=row.weight,
            progress=row.progress,
            status=row.status,
            status_zh=status_zh(row.status),
            finished_on=row.finished_on,
            depends_on=links[row.id],
            warn_margin=row.warn_margin,
            warn_due_days=row.warn_due_days,
            template_key=row.template_key,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            warnings=warnings[row.id],
        )
        for row in rows
    ]
