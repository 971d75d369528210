"""Tables of the workflow engine: definitions, instances, tokens, tasks, variables, history.

Runtime state is relational — never one serialised document per instance — so a step
touches a handful of rows, and "tasks I can work on" over millions of tasks is one
indexed query. Columns copied from the instance onto its tasks (``process_key``,
``business_key``) are there for that query: the todo list filters without a join.

Rows that only grow (tokens, tasks, history) get 64-bit ids on PostgreSQL.

The engine gives new rows their ids before it writes them (``Run.new_id``) and writes a
step's rows in one flush. The ORM orders the INSERTs of one flush by the relationships
between mappers (otherwise by class name), so the many-to-one ``_…_ref`` relationships
below exist for that order alone — instance, branch, token, task — and are never read
or set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xietong.kernel.db import Base

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer, "sqlite")

INSTANCE_STATUSES = ("running", "suspended", "completed", "terminated")
TOKEN_STATUSES = ("active", "waiting", "done", "cancelled")
# pending: created but not yet workable (a later signer of 顺签, or behind a 加签 before)
TASK_STATUSES = ("pending", "open", "delegated", "completed", "cancelled")
ALIVE_TOKEN = ("active", "waiting")
LIVE_TASK = ("pending", "open", "delegated")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class WfDefinition(Base):
    """One deployed version of a process; immutable once written."""

    __tablename__ = "wf_definition"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_wf_definition_key_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))
    source_format: Mapped[str] = mapped_column(String(8))  # bpmn | yaml | graph
    source: Mapped[str] = mapped_column(Text)
    graph: Mapped[dict[str, Any]] = mapped_column(JSON)  # ProcessGraph.to_dict()
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(200))


class WfInstance(Base):
    __tablename__ = "wf_instance"
    __table_args__ = (
        CheckConstraint(_in("status", INSTANCE_STATUSES), name="status"),
        Index("ix_wf_instance_key_business", "process_key", "business_key"),
        Index("ix_wf_instance_department_status", "department_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("wf_definition.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), default="running")
    end_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), default=None)
    started_by: Mapped[str] = mapped_column(String(200))  # the actor's label
    started_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), default=None)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # call activities: the parent instance and the token waiting there for this child
    parent_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("wf_instance.id"), index=True, default=None
    )
    parent_token_id: Mapped[int | None] = mapped_column(BigId, default=None)
    # bumped by every UPDATE (the ORM's version counter): a stale writer's
    # UPDATE … WHERE version = ? matches nothing and fails instead of overwriting
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy API)


class WfFork(Base):
    """One branch of one activation of a splitting gateway (tokens' ``fork_id``).

    The branches of one split share ``split_id`` (the id of the token that entered the
    gateway); ``parent_fork_id`` is the branch the split happened in, so a token's chain
    of branches says exactly where it runs. Joins wait for tokens of one split; 退回
    compares the target's branch with the sender's chain.
    """

    __tablename__ = "wf_fork"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"), index=True)
    node_id: Mapped[str] = mapped_column(String(200))
    split_id: Mapped[int] = mapped_column(BigId)
    parent_fork_id: Mapped[int | None] = mapped_column(BigId, default=None)
    branches: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]

    _instance_ref = relationship("WfInstance", foreign_keys=[instance_id])


class WfToken(Base):
    __tablename__ = "wf_token"
    __table_args__ = (
        CheckConstraint(_in("status", TOKEN_STATUSES), name="status"),
        Index("ix_wf_token_instance_status", "instance_id", "status"),
        Index("ix_wf_token_message", "message_name", "correlation", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"))
    node_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    fork_id: Mapped[int | None] = mapped_column(ForeignKey("wf_fork.id"), default=None)
    arrived_via: Mapped[str | None] = mapped_column(String(200), default=None)  # a flow id
    # the task whose completion moved this token on (撤回 undoes exactly that move)
    origin_task_id: Mapped[int | None] = mapped_column(BigId, default=None)
    message_name: Mapped[str | None] = mapped_column(String(200), default=None)
    correlation: Mapped[str | None] = mapped_column(String(300), default=None)
    # node-specific bookkeeping: multi-instance mode, service-call attempts, timer flags
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    _instance_ref = relationship("WfInstance", foreign_keys=[instance_id])
    _fork_ref = relationship("WfFork", foreign_keys=[fork_id])


class WfVariable(Base):
    __tablename__ = "wf_variable"
    __table_args__ = (UniqueConstraint("instance_id", "name", name="uq_wf_variable_instance_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"))
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)


class WfTask(Base):
    """A user task (one per signer for multi-instance nodes)."""

    __tablename__ = "wf_task"
    __table_args__ = (
        CheckConstraint(_in("status", TASK_STATUSES), name="status"),
        # the todo list: direct and delegated (代理) assignments
        Index("ix_wf_task_assignee_status", "assignee_id", "status", "created_at"),
        # the done list
        Index("ix_wf_task_completed_by", "completed_by_user_id", "completed_at"),
        Index("ix_wf_task_instance_status", "instance_id", "status"),
        Index("ix_wf_task_group", "group_id", "position"),
        Index("ix_wf_task_previous", "previous_task_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"))
    token_id: Mapped[int] = mapped_column(ForeignKey("wf_token.id"))
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200), default=None)
    node_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), default=None)
    owner_id: Mapped[int | None] = mapped_column(Integer, default=None)  # 委派: gets it back
    previous_assignee_id: Mapped[int | None] = mapped_column(Integer, default=None)  # 拿回
    candidate_department_id: Mapped[int | None] = mapped_column(Integer, default=None)
    candidate_role: Mapped[str | None] = mapped_column(String(32), default=None)
    # multi-instance: the signers of one node activation share a group
    group_id: Mapped[int] = mapped_column(BigId)
    position: Mapped[int] = mapped_column(Integer, default=0)  # 顺签 order
    weight: Mapped[float] = mapped_column(Float, default=1.0)  # 票签 weight
    # whether this task's outcome counts toward the node's decision (a 加签 "before"
    # signer advises; an approving signer with an "after" signer passes its vote on)
    counts: Mapped[bool] = mapped_column(Boolean, default=True)
    kind: Mapped[str] = mapped_column(String(16), default="normal")  # normal|before|after|...
    blocked_by_task_id: Mapped[int | None] = mapped_column(BigId, default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    opinion: Mapped[str | None] = mapped_column(Text, default=None)
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_by: Mapped[str | None] = mapped_column(String(200), default=None)  # label
    completed_by_user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    on_behalf_of_user_id: Mapped[int | None] = mapped_column(Integer, default=None)  # 代理
    cancel_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    previous_task_id: Mapped[int | None] = mapped_column(BigId, default=None)
    last_urged_at: Mapped[datetime | None] = mapped_column(default=None)
    # optimistic concurrency: every UPDATE is ``… WHERE id = ? AND version = ?``, so of
    # two requests completing one task the second matches no row and fails (Conflict)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy API)

    _instance_ref = relationship("WfInstance", foreign_keys=[instance_id])
    _token_ref = relationship("WfToken", foreign_keys=[token_id])


class WfTaskCandidate(Base):
    """Who besides the assignee may claim an unassigned task: a user, or a (department,
    role) pair. The todo query reaches candidate tasks through these two indexes."""

    __tablename__ = "wf_task_candidate"
    __table_args__ = (
        Index("ix_wf_task_candidate_user", "user_id", "task_id"),
        Index("ix_wf_task_candidate_role", "department_id", "role", "task_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("wf_task.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    department_id: Mapped[int | None] = mapped_column(Integer, default=None)
    role: Mapped[str | None] = mapped_column(String(32), default=None)


class WfHistory(Base):
    """The event log: case (instance), activity, time, actor — what XES exports."""

    __tablename__ = "wf_history"
    __table_args__ = (Index("ix_wf_history_instance_node", "instance_id", "node_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"))
    token_id: Mapped[int | None] = mapped_column(BigId, default=None)
    task_id: Mapped[int | None] = mapped_column(BigId, default=None)
    fork_id: Mapped[int | None] = mapped_column(BigId, default=None)
    node_id: Mapped[str | None] = mapped_column(String(200), default=None)
    activity: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))  # node.entered, task.completed, send_back…
    actor: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    on_behalf_of_user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    opinion: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    at: Mapped[datetime]


class WfCc(Base):
    """抄送: a copy of an instance (or one task) sent to a user, with read status."""

    __tablename__ = "wf_cc"
    __table_args__ = (Index("ix_wf_cc_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(BigId, default=None)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    sent_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None] = mapped_column(default=None)


class WfIncident(Base):
    """A service task that kept failing: the token waits until an operator retries."""

    __tablename__ = "wf_incident"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("wf_instance.id"), index=True)
    token_id: Mapped[int] = mapped_column(BigId)
    node_id: Mapped[str] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(200), default=None)
