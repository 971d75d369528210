"""``task.*`` events (CloudEvents source ``/xietong/tasks``).

They carry ids, titles, departments and levels — what an office system needs to put a
todo in front of someone — and never comments or report texts, which subscribers read
through the API with their own rights. Webhook subscriptions to ``task.*`` push them,
signed, to the office systems (see docs/apps/tasks.md, "Integration").
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type

MODULE = "tasks"


@dataclass(frozen=True)
class _TaskEvent(Event):
    task_id: int
    root_id: int
    department_code: str

    @property
    def subject(self) -> str:
        return f"task:{self.task_id}"


@event_type("task.created", "A task was created or decomposed from a parent")
@dataclass(frozen=True)
class TaskCreated(_TaskEvent):
    title: str = ""
    parent_id: int | None = None
    planned_end: str = ""


@event_type("task.updated", "A task's elements or plan were changed")
@dataclass(frozen=True)
class TaskUpdated(_TaskEvent):
    version: int = 0


@event_type("task.dependency.added", "A finish-to-start dependency was added")
@dataclass(frozen=True)
class DependencyAdded(_TaskEvent):
    depends_on_id: int = 0


@event_type("task.progress.reported", "A department reported progress on a task")
@dataclass(frozen=True)
class ProgressReported(_TaskEvent):
    percent: float = 0.0
    status: str = ""


@event_type("task.comment.added", "A comment was added to a task")
@dataclass(frozen=True)
class CommentAdded(_TaskEvent):
    comment_id: int = 0


@event_type("task.closure.requested", "销号 was requested with evidence, awaiting approval")
@dataclass(frozen=True)
class ClosureRequested(_TaskEvent):
    closure_id: int = 0
    instance_id: int = 0


@event_type("task.closed", "销号 was approved: the task is closed")
@dataclass(frozen=True)
class TaskClosed(_TaskEvent):
    closure_id: int = 0


@event_type("task.reopened", "销号 was refused: the task is open again, with the opinion")
@dataclass(frozen=True)
class TaskReopened(_TaskEvent):
    closure_id: int = 0


@event_type("task.warning.fired", "A yellow, red or blocked warning fired on a task")
@dataclass(frozen=True)
class WarningFired(_TaskEvent):
    warning_id: int = 0
    level: str = ""
    code: str = ""


@event_type("task.warning.cleared", "A warning no longer holds")
@dataclass(frozen=True)
class WarningCleared(_TaskEvent):
    warning_id: int = 0
    level: str = ""
    code: str = ""


@event_type("task.supervision.issued", "督办: a supervision notice was sent to a department")
@dataclass(frozen=True)
class SupervisionIssued(_TaskEvent):
    supervision_id: int = 0
    automatic: bool = False


@event_type("task.supervision.urged", "督办: the department was urged to act")
@dataclass(frozen=True)
class SupervisionUrged(_TaskEvent):
    supervision_id: int = 0
    urges: int = 0


@event_type("task.supervision.escalated", "督办: escalated to the supervising office")
@dataclass(frozen=True)
class SupervisionEscalated(_TaskEvent):
    supervision_id: int = 0
    escalated_to_code: str = ""


@event_type("task.supervision.answered", "督办: the department answered the notice")
@dataclass(frozen=True)
class SupervisionAnswered(_TaskEvent):
    supervision_id: int = 0
