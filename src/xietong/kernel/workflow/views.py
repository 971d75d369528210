"""What workflow services return: plain frozen values, never live ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from xietong.kernel.workflow.store import (
    WfCc,
    WfHistory,
    WfIncident,
    WfInstance,
    WfTask,
    WfToken,
)

T = TypeVar("T")


@dataclass(frozen=True)
class TaskView:
    id: int
    instance_id: int
    process_key: str
    business_key: str | None
    node_id: str
    name: str
    status: str
    assignee_id: int | None
    owner_id: int | None
    candidate_department_id: int | None
    candidate_role: str | None
    group_id: int
    position: int
    weight: float
    kind: str
    outcome: str | None
    opinion: str | None
    attachments: list[Any]
    created_at: datetime
    due_at: datetime | None
    completed_at: datetime | None
    completed_by_user_id: int | None
    on_behalf_of_user_id: int | None
    cancel_reason: str | None
    previous_task_id: int | None
    version: int

    @classmethod
    def of(cls, row: WfTask) -> TaskView:
        return cls(
            id=row.id,
            instance_id=row.instance_id,
            process_key=row.process_key,
            business_key=row.business_key,
            node_id=row.node_id,
            name=row.name,
            status=row.status,
            assignee_id=row.assignee_id,
            owner_id=row.owner_id,
            candidate_department_id=row.candidate_department_id,
            candidate_role=row.candidate_role,
            group_id=row.group_id,
            position=row.position,
            weight=row.weight,
            kind=row.kind,
            outcome=row.outcome,
            opinion=row.opinion,
            attachments=list(row.attachments or []),
            created_at=row.created_at,
            due_at=row.due_at,
            completed_at=row.completed_at,
            completed_by_user_id=row.completed_by_user_id,
            on_behalf_of_user_id=row.on_behalf_of_user_id,
            cancel_reason=row.cancel_reason,
            previous_task_id=row.previous_task_id,
            version=row.version,
        )


@dataclass(frozen=True)
class TokenView:
    id: int
    node_id: str
    status: str
    fork_id: int | None

    @classmethod
    def of(cls, row: WfToken) -> TokenView:
        return cls(row.id, row.node_id, row.status, row.fork_id)


@dataclass(frozen=True)
class HistoryView:
    id: int
    node_id: str | None
    activity: str
    kind: str
    actor: str
    user_id: int | None
    on_behalf_of_user_id: int | None
    task_id: int | None
    outcome: str | None
    opinion: str | None
    details: dict[str, Any] | None
    at: datetime

    @classmethod
    def of(cls, row: WfHistory) -> HistoryView:
        return cls(
            row.id,
            row.node_id,
            row.activity,
            row.kind,
            row.actor,
            row.user_id,
            row.on_behalf_of_user_id,
            row.task_id,
            row.outcome,
            row.opinion,
            row.details,
            row.at,
        )


@dataclass(frozen=True)
class InstanceView:
    id: int
    definition_id: int
    process_key: str
    version: int
    business_key: str | None
    status: str
    end_reason: str | None
    department_id: int | None
    started_by: str
    started_by_user_id: int | None
    started_at: datetime
    ended_at: datetime | None
    parent_instance_id: int | None

    @classmethod
    def of(cls, row: WfInstance, version: int) -> InstanceView:
        return cls(
            row.id,
            row.definition_id,
            row.process_key,
            version,
            row.business_key,
            row.status,
            row.end_reason,
            row.department_id,
            row.started_by,
            row.started_by_user_id,
            row.started_at,
            row.ended_at,
            row.parent_instance_id,
        )


@dataclass(frozen=True)
class InstanceDetail:
    instance: InstanceView
    tokens: list[TokenView]
    variables: dict[str, Any]
    tasks: list[TaskView]
    history: list[HistoryView]
    incidents: list[IncidentView] = field(default_factory=list)


@dataclass(frozen=True)
class CcView:
    id: int
    instance_id: int
    task_id: int | None
    user_id: int
    sent_by: str
    note: str | None
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, row: WfCc) -> CcView:
        return cls(
            row.id,
            row.instance_id,
            row.task_id,
            row.user_id,
            row.sent_by,
            row.note,
            row.created_at,
            row.read_at,
        )


@dataclass(frozen=True)
class IncidentView:
    id: int
    instance_id: int
    token_id: int
    node_id: str
    error: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: WfIncident) -> IncidentView:
        return cls(
            row.id,
            row.instance_id,
            row.token_id,
            row.node_id,
            row.error,
            row.attempts,
            row.created_at,
            row.resolved_at,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int
