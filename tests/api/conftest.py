"""An HTTP client around a fresh platform with a few users in two departments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from xietong.app import create_app
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.org import service


@dataclass
class World:
    client: TestClient
    ctx: Context
    dept_a: int
    dept_b: int

    def token(self, username: str, password: str = "secret") -> dict[str, str]:
        response = self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def world(ctx: Context) -> Iterator[World]:
    op = operator_actor("test")
    service.create_region(ctx, op, "430000", "湖南省", "province")
    service.create_region(ctx, op, "430100", "长沙市", "city", "430000")
    a = service.create_department(ctx, op, "dept-a", "甲局", "430100")
    b = service.create_department(ctx, op, "dept-b", "乙局", "430100")
    for username, dept, roles in [
        ("admin", a.id, [Role.ADMIN]),
        ("auditor", a.id, [Role.AUDITOR]),
        ("head_a", a.id, [Role.HEAD]),
        ("clerk_a", a.id, [Role.WINDOW_CLERK]),
        ("clerk_b", b.id, [Role.WINDOW_CLERK]),
    ]:
        user = service.add_user(ctx, op, username, username.upper(), "secret")
        for role in roles:
            service.grant_membership(ctx, op, user.id, dept, role)
    app = create_app(ctx)
    with TestClient(app) as client:
        yield World(client=client, ctx=ctx, dept_a=a.id, dept_b=b.id)
