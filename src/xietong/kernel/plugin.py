"""The kernel's own hook implementations: its tables, actions and worker jobs."""

from __future__ import annotations

from typing import Any

from xietong.kernel.access import Actor, Role
from xietong.kernel.hooks import hookimpl

KERNEL_MODEL_MODULES = [
    "xietong.kernel.audit",
    "xietong.kernel.outbox",
    "xietong.kernel.calendar",
    "xietong.kernel.org.models",
    "xietong.kernel.auth",
    "xietong.kernel.bus.models",
]


@hookimpl
def model_modules() -> list[str]:
    return KERNEL_MODEL_MODULES


@hookimpl
def register_actions() -> None:
    from xietong.kernel import actions

    actions.register()


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if actor.has_role(Role.ADMIN):
        items.append({"href": "/org", "label_zh": "组织机构", "label_en": "Organisation"})
    if actor.has_role(Role.AUDITOR):
        items.append({"href": "/audit", "label_zh": "审计日志", "label_en": "Audit log"})
    return items
