"""The tasks app's hook implementations: tables, actions, routes, consumers, jobs, demo.

Routes, consumers and the demo are imported inside the hooks, not at module level: the
plugin manager imports this module while it is being built, and the routes ask it for
actions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from xietong.apps.tasks import rights
from xietong.kernel.access import Role, register_action
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from xietong.kernel.access import Actor
    from xietong.kernel.context import Context


@hookimpl
def model_modules() -> list[str]:
    return ["xietong.apps.tasks.models"]


@hookimpl
def register_actions() -> None:
    register_action(
        rights.READ,
        "authenticated",
        [],
        "查看本部门参与的任务",
        "Read the tasks one's departments take part in",
        read_only=True,
    )
    register_action(
        rights.MANAGE,
        "department",
        [Role.HEAD, Role.SUPERVISOR],
        "创建、分解、调整任务与依赖，申请销号",
        "Create, decompose and change tasks and dependencies; request closure",
    )
    register_action(
        rights.REPORT,
        "department",
        rights.OFFICE_ROLES,
        "报送任务进展、发表协调意见",
        "Report progress and comment on a task",
    )
    register_action(
        rights.SUPERVISE,
        "department",
        [Role.SUPERVISOR],
        "督办：发督办通知、催办、升级",
        "Supervise: send notices, urge, escalate",
    )
    register_action(
        rights.ANALYSE,
        "authenticated",
        [],
        "查看任务分析（关键路径、阻塞、负荷、推演）",
        "Read task analysis (critical path, blocking, load, what-if)",
        read_only=True,
    )
    register_action(
        rights.CAPACITY,
        "global",
        [Role.SUPERVISOR],
        "设定部门任务承载能力",
        "Set departments' task capacity",
    )
    register_action(
        rights.INSPECT,
        "department",
        [Role.HEAD, Role.SUPERVISOR],
        "双随机抽取与结果公示",
        "Random inspection draws and publishing results",
    )
    register_action(
        rights.PUBLIC_RESULTS,
        "public",
        [],
        "查看已公示的双随机抽查结果",
        "Read published random inspection results",
        read_only=True,
    )


@hookimpl
def api_routers() -> list[APIRouter]:
    from xietong.apps.tasks.routes import router

    return [router]


@hookimpl
def event_consumers() -> list[tuple[str, str, Callable[..., None]]]:
    from xietong.apps.tasks import closure

    return [
        ("tasks.closure.decided", "workflow.task.completed", closure.on_workflow_task_completed),
        (
            "tasks.closure.terminated",
            "workflow.instance.terminated",
            closure.on_workflow_instance_terminated,
        ),
    ]


@hookimpl
def periodic_jobs() -> list[tuple[str, float, Callable[[Context], int]]]:
    from xietong.apps.tasks import monitor

    return [(monitor.JOB_NAME, monitor.INTERVAL_S, monitor.run_job)]


@hookimpl
def web_routers() -> list[APIRouter]:
    from xietong.apps.tasks.pages import router

    return [router]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    if not actor.roles:  # staff only: citizens and visitors have no tasks
        return []
    return [{"href": "/tasks", "label_zh": "任务督办", "label_en": "Tasks"}]


@hookimpl
def cli_apps() -> list[tuple[str, Any]]:
    from xietong.apps.tasks.cli import app

    return [("tasks", app)]


@hookimpl
def demo_data(ctx: Context) -> None:
    from xietong.apps.tasks.demo import load_demo_tasks

    load_demo_tasks(ctx)


@hookimpl
def file_references(
    session: Session, file_ids: list[int], digests: list[str]
) -> tuple[set[int], set[str]]:
    from xietong.apps.tasks.attachments import cited_files

    return cited_files(session, file_ids), set()
