"""The hotline app's hook implementations: tables, actions, API and pages, the SLA job,
the CLI group of the classifier, and the demo.

Routes, pages and the demo are imported inside the hooks, not at module level: the
plugin manager imports this module while it is being built, and the routes ask it for
actions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xietong.kernel.access import Actor, Role, register_action
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from xietong.kernel.context import Context

STAFF = [Role.WINDOW_CLERK, Role.REVIEWER, Role.APPROVER, Role.HEAD]


@hookimpl
def model_modules() -> list[str]:
    return ["xietong.apps.hotline.models"]


@hookimpl
def app_state(state: Any) -> None:
    from xietong.apps.hotline.throttle import IntakeLimiter

    state.hotline_intake_limiter = IntakeLimiter()


@hookimpl
def register_actions() -> None:
    register_action(
        "hotline.ticket.submit", "public", [], "提交市民诉求", "Submit a citizen's request"
    )
    register_action(
        "hotline.ticket.intake",
        "global",
        [Role.DISPATCHER],
        "受理热线工单（话务员、12345 系统）",
        "Take in hotline tickets (agents, the 12345 system)",
    )
    register_action(
        "hotline.ticket.read",
        "department",
        [*STAFF, Role.DISPATCHER, Role.SUPERVISOR],
        "查看热线工单",
        "Read hotline tickets",
        read_only=True,
    )
    register_action(
        "hotline.dispatch",
        "global",
        [Role.DISPATCHER],
        "派单、改派与合并工单",
        "Dispatch, redirect and merge tickets",
    )
    register_action(
        "hotline.ticket.handle",
        "department",
        STAFF,
        "承办工单（受理、退单、答复、申请延期）",
        "Handle tickets (accept, send back, reply, ask for more time)",
    )
    register_action(
        "hotline.extension.decide",
        "global",
        [Role.DISPATCHER],
        "审批延期申请",
        "Decide on extension requests",
    )
    register_action(
        "hotline.follow_up",
        "global",
        [Role.DISPATCHER],
        "回访并记录评价",
        "Record follow-up calls and ratings",
    )
    register_action(
        "hotline.ticket.rate", "public", [], "市民评价答复", "A citizen rates the reply"
    )
    register_action(
        "hotline.route.read",
        "authenticated",
        [],
        "查看派单路由表",
        "Read the routing table",
        read_only=True,
    )
    register_action(
        "hotline.route.manage", "global", [Role.ADMIN], "维护派单路由表", "Edit the routing table"
    )
    register_action(
        "hotline.knowledge.read",
        "public",
        [],
        "检索知识库",
        "Search the knowledge base",
        read_only=True,
    )
    register_action(
        "hotline.knowledge.manage",
        "global",
        [Role.DISPATCHER],
        "维护知识库",
        "Maintain the knowledge base",
    )
    register_action(
        "hotline.stats.read",
        "global",
        [Role.DISPATCHER, Role.SUPERVISOR],
        "查看热线统计与热点",
        "Read hotline figures and hotspots",
        read_only=True,
    )
    register_action(
        "hotline.training.export",
        "global",
        [Role.DISPATCHER],
        "导出分类纠错数据",
        "Export the dispatch corrections for training",
        read_only=True,
    )


@hookimpl
def api_routers() -> list[APIRouter]:
    from xietong.apps.hotline.routes import router

    return [router]


@hookimpl
def web_routers() -> list[APIRouter]:
    from xietong.apps.hotline.pages import router

    return [router]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if actor.has_role(Role.DISPATCHER):
        items.append({"href": "/hotline/queue", "label_zh": "派单", "label_en": "Dispatch"})
    if any(actor.has_role(role) for role in STAFF):
        items.append({"href": "/hotline/inbox", "label_zh": "热线工单", "label_en": "Tickets"})
    if actor.has_role(Role.DISPATCHER) or actor.has_role(Role.SUPERVISOR):
        items.append({"href": "/hotline", "label_zh": "热线中心", "label_en": "Hotline centre"})
    if not items:  # visitors and citizens: where to raise a problem, and the answers so far
        items.append(
            {"href": "/hotline/new", "label_zh": "我要反映", "label_en": "Report a problem"}
        )
        items.append({"href": "/hotline/faq", "label_zh": "常见问题", "label_en": "FAQ"})
    return items


@hookimpl
def periodic_jobs() -> list[tuple[str, float, Callable[[Context], int]]]:
    from xietong.apps.hotline.sla import INTERVAL_SECONDS, check_sla

    return [("hotline.sla", INTERVAL_SECONDS, check_sla)]


@hookimpl
def cli_apps() -> list[tuple[str, Any]]:
    try:
        from xietong.apps.hotline.cli import app
    except ImportError:  # the classifier's CLI is not there (yet)
        return []
    return [("hotline", app)]


@hookimpl
def demo_data(ctx: Context) -> None:
    from xietong.apps.hotline.demo import load_demo_hotline

    load_demo_hotline(ctx)
