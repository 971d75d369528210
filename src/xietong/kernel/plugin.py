"""The kernel's own hook implementations: its tables, actions and worker jobs."""

from __future__ import annotations

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
