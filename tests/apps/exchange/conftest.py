"""Fixtures for the exchange app: two departments with their data stewards, and entries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.api.conftest import World, world  # noqa: F401 (the API tests' fixture)
from xietong.apps.exchange.rules import CategoryLevel, ItemInput, ResourceInput
from xietong.kernel import audit
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user
from xietong.plugins import plugin_manager

ADMIN = operator_actor("test")
POPULATION = (
    CategoryLevel("1", "基础信息资源"),
    CategoryLevel("01", "人口基础信息"),
    CategoryLevel("001", "户籍人口"),
)
ITEMS = (
    ItemInput("姓名", "string", "sensitive", "居民姓名"),
    ItemInput("公民身份号码", "string", "sensitive"),
    ItemInput("出生日期", "date", "internal"),
)


@dataclass
class Org:
    ctx: Context
    dept_a: int
    dept_b: int
    steward_a: Actor
    steward_b: Actor
    head_a: Actor
    clerk_a: Actor  # no catalogue role at all


def make_actor(ctx: Context, username: str, dept: int, roles: list[Role]) -> Actor:
    user = service.add_user(ctx, ADMIN, username, username.upper(), "secret")
    for role in roles:
        service.grant_membership(ctx, ADMIN, user.id, dept, role)
    with ctx.db.read() as session:
        return actor_for_user(session, session.get_one(User, user.id))


@pytest.fixture
def org(ctx: Context) -> Org:
    plugin_manager()
    service.create_region(ctx, ADMIN, "430000", "湖南省", "province")
    service.create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
    a = service.create_department(ctx, ADMIN, "dept-a", "甲局", "430100")
    b = service.create_department(ctx, ADMIN, "dept-b", "乙局", "430100")
    return Org(
        ctx,
        a.id,
        b.id,
        make_actor(ctx, "steward_a", a.id, [Role.DATA_STEWARD]),
        make_actor(ctx, "steward_b", b.id, [Role.DATA_STEWARD]),
        make_actor(ctx, "head_a", a.id, [Role.HEAD]),
        make_actor(ctx, "clerk_a", a.id, [Role.WINDOW_CLERK]),
    )


def entry(
    provider: str = "dept-a", share_type: str = "unconditional", **changes: Any
) -> ResourceInput:
    """A valid entry of the given share type; ``changes`` override any field."""
    base = ResourceInput(
        name="户籍人口基本信息",
        category=POPULATION,
        provider_code=provider,
        summary="户籍人口的身份与户籍登记信息。",
        format="database",
        share_type=share_type,
        update_cycle="realtime",
        items=ITEMS,
        share_methods=("api",) if share_type != "not_shared" else (),
    )
    if share_type == "conditional":
        base = replace(base, share_conditions="限于出生一件事联办使用。")
    if share_type == "not_shared":
        base = replace(base, not_shared_basis="《中华人民共和国税收征收管理法》第八条")
    return replace(base, **changes)


def tree_size(ctx: Context) -> int:
    with ctx.db.read() as session:
        return audit.tree_size(session)
