"""Workflow events that a person must hear about: new work, 催办, 抄送.

Candidate tasks (a department role may claim them) notify no one: they sit in the todo
lists of everyone who may claim them, and a message to the whole role would be noise.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from xietong.kernel.context import Context
from xietong.kernel.notify.service import notify
from xietong.kernel.workflow.store import WfInstance, WfTask

CONSUMER = "kernel.notify.workflow"


def _task(session: Session, task_id: int) -> WfTask | None:
    return session.get(WfTask, task_id)


def on_workflow_event(ctx: Context, event: dict[str, Any], session: Session) -> None:
    data = event["data"]
    kind = event["type"]
    if kind in ("workflow.task.created", "workflow.task.assigned"):
        task = _task(session, data["task_id"])
        assignee = data.get("assignee_id")
        if task is None or assignee is None or task.status != "open":
            return
        operation = data.get("operation", "")
        if operation == "claim":
            return  # the claimer acted themselves
        notify(
            session,
            [assignee],
            kind,
            title_zh=f"新待办：{task.name}",
            title_en=f"New task: {task.name}",
            body_zh=f"流程 {task.process_key}"
            + (f"，业务编号 {task.business_key}" if task.business_key else ""),
            body_en=f"Process {task.process_key}"
            + (f", business key {task.business_key}" if task.business_key else ""),
            link=f"/workflow/tasks/{task.id}",
            source_event_id=event["id"],
        )
    elif kind == "workflow.task.urged":
        task = _task(session, data["task_id"])
        assignee = data.get("assignee_id")
        if task is None or assignee is None:
            return
        message = data.get("message") or ""
        notify(
            session,
            [assignee],
            kind,
            title_zh=f"催办：{task.name}",
            title_en=f"Reminder: {task.name}",
            body_zh=message,
            body_en=message,
            link=f"/workflow/tasks/{task.id}",
            source_event_id=event["id"],
        )
    elif kind == "workflow.task.cc":
        instance = session.get(WfInstance, data["instance_id"])
        if instance is None:
            return
        notify(
            session,
            [data["user_id"]],
            kind,
            title_zh=f"抄送：{instance.process_key}",
            title_en=f"Copied to you: {instance.process_key}",
            link=f"/workflow/instances/{instance.id}",
            source_event_id=event["id"],
        )
