"""The exchange app's hook implementations: tables, actions, API routes, demo content.

Routes and the demo are imported inside the hooks, not at module level: the plugin
manager imports this module while it is being built, and the routes ask it for actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xietong.kernel.access import Role, register_action
from xietong.kernel.hooks import hookimpl

if TYPE_CHECKING:
    from fastapi import APIRouter

    from xietong.kernel.context import Context


@hookimpl
def model_modules() -> list[str]:
    return ["xietong.apps.exchange.models"]


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


@hookimpl
def api_routers() -> list[APIRouter]:
    from xietong.apps.exchange.routes import router

    return [router]


@hookimpl
def demo_data(ctx: Context) -> None:
    from xietong.apps.exchange.demo import load_demo_catalogue

    load_demo_catalogue(ctx)
