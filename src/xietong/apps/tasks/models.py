"""Tables of 任务协同 / 督查督办: tasks, their links, feedback, closure, warnings, supervision.

A task tree starts at a task force's task (专班, ``level='task_force'``) that carries the
goal; it decomposes into the lead department's tasks (牵头) and those into the
cooperating departments' tasks (配合). ``root_id`` names the tree's top task so that a
tree loads with one indexed query. Departments and users are the kernel's rows,
referenced by foreign key and never copied.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel.db import Base

STATUSES = ("not_started", "in_progress", "done", "overdue", "closed")
LEVELS = ("task_force", "lead", "cooperating")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Task(Base):
    """One duty task with its five elements (依据, 目标, 内容, 依赖 via ``TaskLink``,
    协调与反馈 via comments and progress reports)."""

    __tablename__ = "task_task"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        CheckConstraint(_one_of("level", LEVELS), name="level"),
        CheckConstraint("planned_end >= planned_start", name="dates"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_task.id", ondelete="CASCADE"), index=True, default=None
    )
    root_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    level: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text, default="")  # 内容
    basis: Mapped[list[Any]] = mapped_column(JSON, default=list)  # 依据: [{kind, ref, title}]
    # 目标: one indicator with its unit, baseline, target and current value
    goal_name: Mapped[str | None] = mapped_column(String(200), default=None)
    goal_unit: Mapped[str | None] = mapped_column(String(32), default=None)
    goal_baseline: Mapped[float | None] = mapped_column(Float, default=None)
    goal_target: Mapped[float | None] = mapped_column(Float, default=None)
    goal_current: Mapped[float | None] = mapped_column(Float, default=None)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)  # 牵头
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), default=None)
    # the 督办 office of a tree, kept on its top task (escalations and closure go there)
    supervising_department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id"), default=None
    )
    planned_start: Mapped[date] = mapped_column(Date)
    planned_end: Mapped[date] = mapped_column(Date)
    duration_days: Mapped[int] = mapped_column(Integer)  # working days, inclusive
    dates_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), index=True, default="not_started")
    finished_on: Mapped[date | None] = mapped_column(Date, default=None)
    # warning thresholds of a tree, on its top task (None: the defaults)
    warn_margin: Mapped[float | None] = mapped_column(Float, default=None)
    warn_due_days: Mapped[int | None] = mapped_column(Integer, default=None)
    template_key: Mapped[str | None] = mapped_column(String(32), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class TaskCooperation(Base):
    """A cooperating department (配合单位) of a task."""

    __tablename__ = "task_cooperation"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("task_task.id", ondelete="CASCADE"), primary_key=True
    )
    department_id: Mapped[int] = mapped_column(
        ForeignKey("department.id"), primary_key=True, index=True
    )


class TaskLink(Base):
    """依赖: ``task_id`` may start only after ``depends_on_id`` finishes (finish-to-start)."""

    __tablename__ = "task_link"
    __table_args__ = (CheckConstraint("task_id <> depends_on_id", name="not_self"),)

    task_id: Mapped[int] = mapped_column(
        ForeignKey("task_task.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[int] = mapped_column(
        ForeignKey("task_task.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TaskComment(Base):
    __tablename__ = "task_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ProgressReport(Base):
    """进展: a periodic report with percentage, text, attachments and the goal's value."""

    __tablename__ = "task_progress_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"), index=True)
    percent: Mapped[float] = mapped_column(Float)
    previous: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # why progress went down
    goal_value: Mapped[float | None] = mapped_column(Float, default=None)
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reported_by: Mapped[str] = mapped_column(String(120))
    reported_at: Mapped[datetime]


class Closure(Base):
    """销号: a request with evidence, approved (or not) through a workflow instance."""

    __tablename__ = "task_closure"
    __table_args__ = (
        CheckConstraint(_one_of("status", ("pending", "approved", "rejected")), name="status"),
        Index("ix_task_closure_task", "task_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"))
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    instance_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    opinion: Mapped[str | None] = mapped_column(Text, default=None)
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(120), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)


class TaskWarning(Base):
    """预警 as fired by the worker: kept with when it fired and, once gone, when it cleared."""

    __tablename__ = "task_warning"
    __table_args__ = (
        CheckConstraint(_one_of("level", ("red", "yellow", "blocked")), name="level"),
        Index("ix_task_warning_open", "task_id", "cleared_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(32))
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired_on: Mapped[date] = mapped_column(Date)  # the business day it fired for
    fired_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class Supervision(Base):
    """督办: a notice to a department, and its urges, escalation and response as steps."""

    __tablename__ = "task_supervision"
    __table_args__ = (
        CheckConstraint(
            _one_of("status", ("open", "answered", "escalated", "ended")), name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"), index=True)
    to_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    respond_by: Mapped[date] = mapped_column(Date)  # answer within N working days
    issued_by: Mapped[str] = mapped_column(String(120))
    issued_at: Mapped[datetime]
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    urges: Mapped[int] = mapped_column(Integer, default=0)
    last_urged_at: Mapped[datetime | None] = mapped_column(default=None)
    escalated_to_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)
    response: Mapped[str | None] = mapped_column(Text, default=None)
    responded_at: Mapped[datetime | None] = mapped_column(default=None)


class SupervisionStep(Base):
    """Each step of a supervision, as a row the notice's history is read from."""

    __tablename__ = "task_supervision_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    supervision_id: Mapped[int] = mapped_column(
        ForeignKey("task_supervision.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # notice · urge · escalate · respond · end
    text: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime]


class DepartmentCapacity(Base):
    """How much weighted open work a department can carry (for over-capacity analysis)."""

    __tablename__ = "task_capacity"

    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), primary_key=True)
    capacity: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class InspectionDraw(Base):
    """双随机一公开: inspectors and businesses drawn with a recorded seed, then results."""

    __tablename__ = "task_inspection_draw"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task_task.id", ondelete="CASCADE"), index=True)
    seed: Mapped[str] = mapped_column(String(64))
    pool: Mapped[dict[str, Any]] = mapped_column(JSON)  # the candidates as given
    assignments: Mapped[list[Any]] = mapped_column(JSON)  # [{business, inspectors: [...]}]
    excluded: Mapped[list[Any]] = mapped_column(JSON)  # conflicts of interest avoided
    results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # uscc -> result
    drawn_by: Mapped[str] = mapped_column(String(120))
    drawn_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(default=None)
