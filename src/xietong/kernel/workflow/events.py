"""Events the workflow engine publishes (CloudEvents source ``/xietong/workflow``).

They carry ids, keys and outcomes — never variables, which may hold personal data and
would outlive every access check once on the bus.
"""

from __future__ import annotations

from dataclasses import dataclass

from xietong.kernel.events import Event, event_type

MODULE = "workflow"


@event_type("workflow.definition.deployed", "A process definition version was deployed")
@dataclass(frozen=True)
class DefinitionDeployed(Event):
    definition_id: int
    key: str
    version: int

    @property
    def subject(self) -> str:
        return f"process:{self.key}:{self.version}"


@dataclass(frozen=True)
class _InstanceEvent(Event):
    instance_id: int
    process_key: str
    business_key: str | None

    @property
    def subject(self) -> str:
        return f"process_instance:{self.instance_id}"


@event_type("workflow.instance.started", "A process instance started")
@dataclass(frozen=True)
class InstanceStarted(_InstanceEvent):
    version: int
    department_id: int | None


@event_type("workflow.instance.completed", "A process instance completed")
@dataclass(frozen=True)
class InstanceCompleted(_InstanceEvent):
    pass


@event_type("workflow.instance.terminated", "A process instance was terminated")
@dataclass(frozen=True)
class InstanceTerminated(_InstanceEvent):
    reason: str


@event_type("workflow.instance.suspended", "A process instance was suspended")
@dataclass(frozen=True)
class InstanceSuspended(_InstanceEvent):
    pass


@event_type("workflow.instance.resumed", "A process instance was resumed")
@dataclass(frozen=True)
class InstanceResumed(_InstanceEvent):
    pass


@dataclass(frozen=True)
class _TaskEvent(Event):
    task_id: int
    instance_id: int
    process_key: str
    node_id: str

    @property
    def subject(self) -> str:
        return f"task:{self.task_id}"


@event_type("workflow.task.created", "A user task was created (someone has new work)")
@dataclass(frozen=True)
class TaskCreated(_TaskEvent):
    assignee_id: int | None
    candidate_department_id: int | None
    candidate_role: str | None


@event_type("workflow.task.completed", "A user task was completed with an outcome")
@dataclass(frozen=True)
class TaskCompleted(_TaskEvent):
    outcome: str
    completed_by_user_id: int | None


@event_type("workflow.task.assigned", "A user task changed hands (claim, 转办, 委派, 拿回)")
@dataclass(frozen=True)
class TaskAssigned(_TaskEvent):
    assignee_id: int | None
    operation: str


@event_type("workflow.task.urged", "催办: the holder of a task was reminded")
@dataclass(frozen=True)
class TaskUrged(_TaskEvent):
    assignee_id: int | None
    by: str
    message: str


@event_type("workflow.task.cc", "抄送: a copy of an instance was sent to a user")
@dataclass(frozen=True)
class TaskCarbonCopied(Event):
    cc_id: int
    instance_id: int
    user_id: int

    @property
    def subject(self) -> str:
        return f"process_instance:{self.instance_id}"


@event_type("workflow.incident.opened", "A service task kept failing and needs an operator")
@dataclass(frozen=True)
class IncidentOpened(Event):
    incident_id: int
    instance_id: int
    node_id: str
    error: str

    @property
    def subject(self) -> str:
        return f"process_instance:{self.instance_id}"
