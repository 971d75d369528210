"""The services app's hook implementations: tables, actions, API and pages, navigation,
the reaction to process instances ending, demo content.

Routes, pages and the demo are imported inside the hooks: the plugin manager imports
this module while it is being built, and the routes ask it for actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from xietong.kernel.access import Actor, Role, register_action
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from xietong.kernel.context import Context

STAFF = [Role.WINDOW_CLERK, Role.REVIEWER, Role.APPROVER]


@hookimpl
def model_modules() -> list[str]:
    return ["xietong.apps.services.models"]


@hookimpl
def register_actions() -> None:
    register_action(
        "services.catalogue.read",
        "public",
        [],
        "查看事项目录与一件事",
        "Read the matter catalogue",
        read_only=True,
    )
    register_action(
        "services.matter.manage",
        "department",
        [Role.HEAD],
        "维护本部门事项",
        "Maintain a department's matters",
    )
    register_action(
        "services.bundle.manage",
        "department",
        [Role.HEAD],
        "编制与发布一件事（牵头部门）",
        "Compose and publish bundles (lead department)",
    )
    register_action(
        "services.application.submit",
        "authenticated",
        [],
        "申请一件事、上传材料、补正",
        "Apply for a bundle, upload materials, supplement",
    )
    register_action(
        "services.application.read",
        "authenticated",
        [],
        "查看本人办件（工作人员：本部门办件）",
        "Read own applications (staff: their department's)",
        read_only=True,
    )
    register_action(
        "services.sub_case.read",
        "department",
        [*STAFF, Role.HEAD],
        "查看本部门子件",
        "Read a department's sub-cases",
        read_only=True,
    )
    register_action(
        "services.sub_case.handle",
        "department",
        STAFF,
        "办理子件：受理、补正、办结、不予办理",
        "Handle sub-cases: approve, request supplements, refuse",
    )
    register_action(
        "services.external.answer",
        "department",
        # Only the outside party's role: a clerk's key would open the whole department.
        [Role.EXTERNAL],
        "外部系统回执办理结果（接入系统）",
        "An external system answers for its matter (connected systems)",
    )
    register_action(
        "services.rating.give",
        "authenticated",
        [],
        "好差评",
        "Rate a delivered application",
    )
    register_action(
        "services.rectification.handle",
        "department",
        [Role.HEAD, Role.APPROVER],
        "办理差评整改",
        "Handle rectifications after bad ratings",
    )
    register_action(
        "services.statistics.read",
        "global",
        [Role.HEAD, Role.SUPERVISOR, Role.AUDITOR],
        "查看各部门办件与好差评统计",
        "Read department statistics",
        read_only=True,
    )
    register_action(
        "services.document.verify",
        "public",
        [],
        "核验办理结果文书签名",
        "Verify a result document's signature",
        read_only=True,
    )


@hookimpl
def api_routers() -> list[APIRouter]:
    from xietong.apps.services.routes import hot_router, router

    return [hot_router, router]  # apply, read an application, approve first: see routes


@hookimpl
def web_routers() -> list[APIRouter]:
    from xietong.apps.services.pages import router

    return [router]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    from xietong.kernel.access import can

    items = [{"href": "/services", "label_zh": "办事服务", "label_en": "Services"}]
    if actor.kind == "user":
        items.append(
            {"href": "/services/mine", "label_zh": "我的办件", "label_en": "My applications"}
        )
    if actor.roles & set(STAFF) or actor.is_admin:
        items.append(
            {
                "href": "/services/workbench",
                "label_zh": "一件事工作台",
                "label_en": "Service workbench",
            }
        )
    if can(actor, "services.rectification.handle") and (Role.HEAD in actor.roles or actor.is_admin):
        items.append(
            {
                "href": "/services/rectifications",
                "label_zh": "差评整改",
                "label_en": "Rectifications",
            }
        )
    return items


@hookimpl
def event_consumers() -> list[tuple[str, str, Any]]:
    from xietong.apps.services.consumers import on_instance_ended

    return [
        ("services.instance_completed", "workflow.instance.completed", on_instance_ended),
        ("services.instance_terminated", "workflow.instance.terminated", on_instance_ended),
    ]


@hookimpl
def cli_apps() -> list[tuple[str, Any]]:
    from xietong.apps.services.walkthrough import cli

    return [("services", cli)]


@hookimpl
def demo_commands() -> list[tuple[str, Any]]:
    from xietong.apps.services.walkthrough import walkthrough

    return [("walkthrough", walkthrough)]


@hookimpl
def demo_data(ctx: Context) -> None:
    from xietong.apps.services.demo import load_demo

    load_demo(ctx)


@hookimpl
def file_references(
    session: Session, file_ids: list[int], digests: list[str]
) -> tuple[set[int], set[str]]:
    from xietong.apps.services.files import cited_digests

    return set(), cited_digests(session, digests)
