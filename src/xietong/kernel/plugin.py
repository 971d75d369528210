"""The kernel's own hook implementations: its tables, actions and worker jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xietong.kernel.access import Actor, Role
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from xietong.kernel.context import Context

KERNEL_MODEL_MODULES = [
    "xietong.kernel.audit",
    "xietong.kernel.outbox",
    "xietong.kernel.calendar",
    "xietong.kernel.org.models",
    "xietong.kernel.auth",
    "xietong.kernel.bus.models",
    "xietong.kernel.workflow.store",
    "xietong.kernel.notify.models",
    "xietong.kernel.files.models",
]


@hookimpl
def model_modules() -> list[str]:
    return KERNEL_MODEL_MODULES


@hookimpl
def register_actions() -> None:
    from xietong.kernel import actions

    actions.register()


@hookimpl
def periodic_jobs() -> list[tuple[str, float, Callable[[Context], int]]]:
    # Importing registers the workflow's scheduled-job handlers (timers, time-outs,
    # service calls) in the worker process; the jobs themselves are due rows, not loops.
    from xietong.kernel.bus.retention import prune
    from xietong.kernel.files import retention
    from xietong.kernel.workflow import services, timers  # noqa: F401

    return [
        ("bus.retention", 3600.0, prune),
        (retention.JOB_NAME, retention.INTERVAL_S, retention.run_job),
    ]


@hookimpl
def event_consumers() -> list[tuple[str, str, Callable[..., None]]]:
    from xietong.kernel.notify.workflow_messages import CONSUMER, on_workflow_event

    return [(CONSUMER, "workflow.task.*", on_workflow_event)]


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    if not actor.roles:  # visitors and citizens have no staff work
        return []
    items: list[dict[str, Any]] = [
        {"href": "/workflow/tasks", "label_zh": "我的工作", "label_en": "My work"},
        {"href": "/workflow", "label_zh": "流程", "label_en": "Processes"},
    ]
    if actor.has_role(Role.ADMIN):
        items.append({"href": "/org", "label_zh": "组织机构", "label_en": "Organisation"})
    if actor.has_role(Role.AUDITOR):
        items.append({"href": "/audit", "label_zh": "审计日志", "label_en": "Audit log"})
    return items
