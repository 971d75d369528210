"""Fixtures for the tasks app: a small city with a supervising office and four bureaus,
staff with the roles the tasks need, and a frozen clock on a known working day."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.conftest import World, world  # noqa: F401 (the API tests' fixture)
from xietong.apps.tasks.rules import TaskInput
from xietong.kernel import audit, clock
from xietong.kernel.access import Actor, Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user
from xietong.kernel.outbox import OutboxEvent
from xietong.plugins import plugin_manager

ADMIN = operator_actor("test")
# Monday 2 March 2026, 09:00 in China: an ordinary working day.
START = datetime(2026, 3, 2, 9, 0, tzinfo=clock.CST)


@dataclass
class City:
    ctx: Context
    ids: dict[str, int]
    supervisor: Actor  # 市政府督查室 督办员 + 负责人
    scjg_head: Actor  # 市场监管局 负责人
    scjg_clerk: Actor
    xf_head: Actor  # 消防 负责人
    xf_clerk: Actor
    wjw_clerk: Actor
    jy_head: Actor  # 教育局: takes part in nothing


def make_actor(ctx: Context, username: str, dept: int, roles: list[Role]) -> Actor:
    user = service.add_user(ctx, ADMIN, username, username.upper(), "secret")
    for role in roles:
        service.grant_membership(ctx, ADMIN, user.id, dept, role)
    with ctx.db.read() as session:
        return actor_for_user(session, session.get_one(User, user.id))


def build_city(ctx: Context) -> dict[str, int]:
    plugin_manager()
    service.create_region(ctx, ADMIN, "430000", "湖南省", "province")
    service.create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
    ids = {}
    for code, name in [
        ("dc", "市政府督查室"),
        ("scjg", "市市场监管局"),
        ("xf", "市消防救援支队"),
        ("sthj", "市生态环境局"),
        ("wjw", "市卫健委"),
        ("jy", "市教育局"),
    ]:
        ids[code] = service.create_department(ctx, ADMIN, code, name, "430100").id
    return ids


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(START)
    previous = clock.use_clock(frozen)
    yield frozen
    clock.use_clock(previous)


@pytest.fixture
def city(ctx: Context, frozen: clock.FrozenClock) -> City:
    ids = build_city(ctx)
    return City(
        ctx,
        ids,
        make_actor(ctx, "supervisor", ids["dc"], [Role.SUPERVISOR, Role.HEAD]),
        make_actor(ctx, "scjg_head", ids["scjg"], [Role.HEAD]),
        make_actor(ctx, "scjg_clerk", ids["scjg"], [Role.WINDOW_CLERK]),
        make_actor(ctx, "xf_head", ids["xf"], [Role.HEAD]),
        make_actor(ctx, "xf_clerk", ids["xf"], [Role.WINDOW_CLERK]),
        make_actor(ctx, "wjw_clerk", ids["wjw"], [Role.WINDOW_CLERK]),
        make_actor(ctx, "jy_head", ids["jy"], [Role.HEAD]),
    )


def task_input(title: str, dept: str, **changes: Any) -> TaskInput:
    base: dict[str, Any] = {
        "title": title,
        "department_code": dept,
        "planned_start": date(2026, 3, 2),
        "planned_end": date(2026, 3, 31),
    }
    base.update(changes)
    return TaskInput(**base)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None
    return found.group(1)


def signed_in(ctx: Context, username: str) -> TestClient:
    """A client of the pages, signed in as ``username`` (password "secret")."""
    from xietong.app import create_app

    client = TestClient(create_app(ctx))
    token = csrf(client.get("/login").text)
    client.post(
        "/login",
        data={"username": username, "password": "secret", "csrf_token": token, "next": "/"},
    )
    return client


def tree_size(ctx: Context) -> int:
    with ctx.db.read() as session:
        return audit.tree_size(session)


def event_types(ctx: Context) -> list[str]:
    with ctx.db.read() as session:
        return list(session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq)))


def count(ctx: Context, model: Any) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0
