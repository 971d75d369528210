"""The exchange app's hook implementations: tables, actions, API routes, demo content.

Routes and the demo are imported inside the hooks, not at module level: the plugin
manager imports this module while it is being built, and the routes ask it for actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xietong.kernel.access import Role, register_action
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from xietong.kernel.access import Actor
    from xietong.kernel.context import Context


@hookimpl
def model_modules() -> list[str]:
    return ["xietong.apps.exchange.models", "xietong.apps.exchange.sharing_models"]


@hookimpl
def register_actions() -> None:
    # Signed-in only, not public: the 共享目录 is the government's internal catalogue. It
    # lists 不予共享 entries with their legal basis and every item with its level — a map
    # of what is held about people and firms. The public subset (开放目录) is a later,
    # separate export of the entries whose open_type allows it.
    register_action(
        "exchange.catalogue.read",
        "authenticated",
        [],
        "查看政务信息资源目录",
        "Read the resource catalogue",
        read_only=True,
    )
    register_action(
        "exchange.resource.manage",
        "department",
        [Role.DATA_STEWARD, Role.HEAD],
        "编制与发布本部门信息资源",
        "Maintain and publish a department's resources",
    )
    _sharing_actions()


def _sharing_actions() -> None:
    stewards = [Role.DATA_STEWARD, Role.HEAD]
    staff = [Role.DATA_STEWARD, Role.HEAD, Role.WINDOW_CLERK, Role.REVIEWER, Role.APPROVER]
    register_action(
        "exchange.connector.manage",
        "department",
        stewards,
        "配置与测试本部门资源的连接器",
        "Configure and test the connectors of a department's resources",
    )
    register_action(
        "exchange.request.create",
        "department",
        staff,
        "为本部门申请共享资源",
        "Request a resource for one's department",
    )
    register_action(
        "exchange.request.read",
        "department",
        staff,
        "查看本部门的共享申请与授权",
        "Read a department's share requests and grants",
        read_only=True,
    )
    register_action(
        "exchange.request.decide",
        "department",
        stewards,
        "审核对本部门资源的共享申请",
        "Approve or refuse requests for a department's resources",
    )
    register_action(
        "exchange.grant.manage",
        "department",
        stewards,
        "撤销授权、调整频率上限",
        "Revoke grants and set their rate limits",
    )
    register_action(
        "exchange.gateway.query",
        "authenticated",
        [],
        "通过共享网关查询已授权资源（接入系统）",
        "Query a granted resource through the gateway (connected systems)",
    )
    register_action(
        "exchange.receipt.read",
        "authenticated",
        [],
        "取回本系统网关查询的审计凭证",
        "Fetch the audit receipt (inclusion proof) of one's own gateway query",
        read_only=True,
    )
    register_action(
        "exchange.change.publish",
        "department",
        stewards,
        "发布本部门资源的数据变更",
        "Publish changes of a department's resources",
    )
    register_action(
        "exchange.subscription.manage",
        "department",
        stewards,
        "订阅已授权资源的数据变更",
        "Subscribe to the changes of a granted resource",
    )
    register_action(
        "exchange.stats.read",
        "authenticated",
        [],
        "查看共享交换统计",
        "Read the sharing statistics",
        read_only=True,
    )


@hookimpl
def event_consumers() -> list[tuple[str, str, Callable[..., None]]]:
    from xietong.apps.exchange.approval import on_task_completed

    return [("exchange.approval", "workflow.task.completed", on_task_completed)]


@hookimpl
def periodic_jobs() -> list[tuple[str, float, Callable[[Context], int]]]:
    from xietong.apps.exchange.subscriptions import poll_all

    return [("exchange.poll_changes", 60.0, poll_all)]


@hookimpl
def api_routers() -> list[APIRouter]:
    from xietong.apps.exchange.routes import router
    from xietong.apps.exchange.sharing_routes import router as sharing

    return [sharing, router]  # sharing first: see sharing_routes


@hookimpl
def hot_routes() -> list[Any]:
    from xietong.apps.exchange.gateway_http import HOT_ROUTE

    return [HOT_ROUTE]


@hookimpl
def web_routers() -> list[APIRouter]:
    from fastapi import APIRouter

    from xietong.apps.exchange.demo_sharing import serve_demo_provider
    from xietong.apps.exchange.gateway_http import close_sessions
    from xietong.apps.exchange.pages import router

    # No routes: their lifespans run the demo's provider service beside the server and
    # close the gateway's sessions to providers at shutdown
    provider = APIRouter(lifespan=serve_demo_provider)
    sessions = APIRouter(lifespan=close_sessions)
    return [router, provider, sessions]


@hookimpl
def template_dirs() -> list[str]:
    from pathlib import Path

    return [str(Path(__file__).parent / "templates")]


@hookimpl
def nav_items(actor: Actor) -> list[dict[str, Any]]:
    if not actor.roles:  # staff only: the catalogue is the government's internal one
        return []
    return [{"href": "/exchange", "label_zh": "数据共享", "label_en": "Data sharing"}]


@hookimpl
def demo_data(ctx: Context) -> None:
    from xietong.apps.exchange.demo import load_demo_catalogue

    load_demo_catalogue(ctx)
    from xietong.apps.exchange.demo_sharing import load_demo_sharing

    load_demo_sharing(ctx)
