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


@pytest.fixture(autouse=True)
def _fresh_gateway_state() -> None:
    """The gateway's per-process caches and rate counts are keyed by database URL, and
    the PostgreSQL tests reuse one URL for a new database each time."""
    from xietong.apps.exchange import gateway_cache
    from xietong.apps.exchange.ratelimit import LIMITER
    from xietong.kernel.org.systems import forget_api_keys

    gateway_cache.META.clear()
    gateway_cache.GRANTS.clear()
    LIMITER.reset()
    forget_api_keys()


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


# --- sharing: a provider table, a connector, a consumer system ----------------------

PEOPLE_ITEMS = [
    {"name": "姓名", "data_type": "string", "classification": "sensitive"},
    {"name": "公民身份号码", "data_type": "string", "classification": "sensitive"},
    {"name": "出生日期", "data_type": "date", "classification": "internal"},
    {"name": "手机号码", "data_type": "string", "classification": "sensitive"},
    {"name": "户籍地址", "data_type": "string", "classification": "sensitive"},
]


def people_table(path: Any, count: int = 30) -> list[dict[str, Any]]:
    """A real SQLite provider table ``people`` with fake residents; returns the rows."""
    import sqlite3

    from xietong.apps.exchange.fake import people

    rows = people(count)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, xm TEXT, sfzh TEXT, csrq TEXT,"
            " sjhm TEXT, dz TEXT)"
        )
        db.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?)",
            [
                (r["id"], r["姓名"], r["公民身份号码"], r["出生日期"], r["手机号码"], r["户籍地址"])
                for r in rows
            ],
        )
    return rows


PEOPLE_FIELDS = {
    "姓名": "xm",
    "公民身份号码": "sfzh",
    "出生日期": "csrq",
    "手机号码": "sjhm",
    "户籍地址": "dz",
}


@dataclass
class Sharing:
    world: Any
    provider: dict[str, str]  # steward_a's token headers
    consumer: dict[str, str]  # steward_b's token headers
    system_key: str
    code: str
    rows: list[dict[str, Any]]

    def system(self, client: str = "dept-b/population-check") -> dict[str, str]:
        return {"X-API-Key": self.system_key, "X-Xietong-Client": client}


def drain(ctx: Context) -> int:
    """Run the relay (and with it the plugins' consumers) until the outbox is empty."""
    from xietong.kernel.bus import InProcessBus, relay_once

    bus, total = InProcessBus(ctx), 0
    while (count := relay_once(ctx, bus)) > 0:
        total += count
    return total


def publish_people(app: Any, headers: dict[str, str], share_type: str) -> str:
    body: dict[str, Any] = {
        "name": "户籍人口基本信息",
        "category": [
            {"code": "1", "name": "基础信息资源"},
            {"code": "01", "name": "人口基础信息"},
            {"code": "001", "name": "户籍人口"},
        ],
        "provider_code": "dept-a",
        "summary": "户籍人口的身份与户籍登记信息。",
        "format": "database",
        "items": PEOPLE_ITEMS,
        "share_type": share_type,
        "share_methods": ["api"] if share_type != "not_shared" else [],
        "update_cycle": "daily",
    }
    if share_type == "conditional":
        body["share_conditions"] = "限于出生一件事联办使用。"
    if share_type == "not_shared":
        body["not_shared_basis"] = "《中华人民共和国个人信息保护法》第三十四条"
    created = app.client.post("/api/v1/exchange/resources", json=body, headers=headers)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    published = app.client.post(f"/api/v1/exchange/resources/{code}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return code


@pytest.fixture
def sharing(world: Any, tmp_path: Any) -> Sharing:  # noqa: F811 (the fixture)
    from xietong.kernel.org.systems import register_connected_system

    op = operator_actor("test")
    for username, dept in (("steward_a", world.dept_a), ("steward_b", world.dept_b)):
        user = service.add_user(world.ctx, op, username, username.upper(), "secret")
        service.grant_membership(world.ctx, op, user.id, dept, Role.DATA_STEWARD)
    provider, consumer = world.token("steward_a"), world.token("steward_b")
    code = publish_people(world, provider, "unconditional")
    rows = people_table(tmp_path / "provider.db")
    configured = world.client.put(
        f"/api/v1/exchange/resources/{code}/connector",
        json={
            "kind": "sql",
            "config": {"table": "people", "key": "id"},
            "secret": {"url": f"sqlite:///{tmp_path / 'provider.db'}"},
            "fields": PEOPLE_FIELDS,
        },
        headers=provider,
    )
    assert configured.status_code == 200, configured.text
    issued = register_connected_system(
        world.ctx, op, "dept-b-sys", "乙局业务系统", world.dept_b, ["window_clerk"]
    )
    return Sharing(world, provider, consumer, issued.api_key, code, rows)
