"""The actor behind a bearer token is read once and remembered (ADR 0063), yet a
deactivation, a revoked or granted membership, or a new department takes effect on
the very next request; a change this process cannot see is seen within the bound."""

from __future__ import annotations

from sqlalchemy import event, select, text

from xietong.kernel.access import Role, operator_actor
from xietong.kernel.auth import actors
from xietong.kernel.org import service
from xietong.kernel.org.models import User

OP = operator_actor("test")


def _me(world, headers) -> tuple[int, dict]:
    response = world.client.get("/api/v1/auth/me", headers=headers)
    return response.status_code, response.json()


def _user_id(world, username: str) -> int:
    with world.ctx.db.read() as session:
        return session.scalar(select(User.id).where(User.username == username))


def test_a_remembered_actor_costs_no_query(world) -> None:
    headers = world.token("clerk_a")
    assert _me(world, headers)[0] == 200
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(world.ctx.db.engine, "before_cursor_execute", count)
    try:
        status, body = _me(world, headers)
    finally:
        event.remove(world.ctx.db.engine, "before_cursor_execute", count)
    assert status == 200 and body["roles"] == {"window_clerk": [world.dept_a]}
    assert statements == []


def test_deactivation_bites_on_the_next_request(world) -> None:
    headers = world.token("clerk_a")
    assert _me(world, headers)[0] == 200
    service.deactivate_user(world.ctx, OP, _user_id(world, "clerk_a"))
    status, body = _me(world, headers)
    assert status == 401 and body["code"] == "unauthenticated"


def test_membership_changes_bite_on_the_next_request(world) -> None:
    headers = world.token("clerk_a")
    uid = _user_id(world, "clerk_a")
    assert _me(world, headers)[1]["roles"] == {"window_clerk": [world.dept_a]}
    service.revoke_membership(world.ctx, OP, uid, world.dept_a, Role.WINDOW_CLERK)
    assert _me(world, headers)[1]["roles"] == {}
    service.grant_membership(world.ctx, OP, uid, world.dept_b, Role.WINDOW_CLERK)
    assert _me(world, headers)[1]["roles"] == {"window_clerk": [world.dept_b]}


def test_a_new_sub_department_is_covered_at_once(world) -> None:
    headers = world.token("head_a")
    assert _me(world, headers)[1]["roles"] == {"head": [world.dept_a]}
    child = service.create_department(
        world.ctx, OP, "dept-a-1", "甲局一科", "430100", parent_id=world.dept_a
    )
    assert _me(world, headers)[1]["roles"] == {"head": sorted([world.dept_a, child.id])}


def test_a_change_made_elsewhere_is_seen_within_the_bound(world, monkeypatch) -> None:
    headers = world.token("clerk_a")
    assert _me(world, headers)[0] == 200
    # another process (here: SQL this process's ORM does not see) deactivates the user
    with world.ctx.db.engine.begin() as connection:
        connection.execute(text("UPDATE app_user SET active = false WHERE username = 'clerk_a'"))
    assert _me(world, headers)[0] == 200  # remembered, within the bound
    now = actors.monotonic()
    monkeypatch.setattr(actors, "monotonic", lambda: now + actors.TTL_S)
    assert _me(world, headers)[0] == 401
