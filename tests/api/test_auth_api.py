"""Login, tokens, throttling and the error shape of the API."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select, text

from xietong.api.deps import allow
from xietong.kernel import audit
from xietong.kernel.auth import LoginFailure


def _tree_size(world) -> int:
    with world.ctx.db.read() as session:
        return audit.tree_size(session)


def test_token_has_the_documented_shape(world) -> None:
    response = world.client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "secret"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    me = world.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["name"] == "admin"


def test_wrong_password_is_401_with_bilingual_error(world) -> None:
    response = world.client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "nope"}
    )
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "unauthenticated"
    assert body["message_zh"] and body["message_en"]


def test_failed_logins_are_rate_limited(world) -> None:
    limit = world.ctx.settings.login_max_failures
    for _ in range(limit):
        bad = world.client.post(
            "/api/v1/auth/token", json={"username": "clerk_a", "password": "wrong"}
        )
        assert bad.status_code == 401
    blocked = world.client.post(
        "/api/v1/auth/token", json={"username": "clerk_a", "password": "secret"}
    )
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) > 0
    # other accounts are unaffected
    assert world.token("clerk_b")


def test_successful_login_clears_failures(world) -> None:
    world.client.post("/api/v1/auth/token", json={"username": "head_a", "password": "x"})
    world.token("head_a")
    with world.ctx.db.read() as session:
        count = session.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.username == "head_a")
        )
    assert count == 0


def test_bad_input_is_a_clear_4xx_and_writes_nothing(world) -> None:
    before = _tree_size(world)
    client = world.client
    malformed = client.post(
        "/api/v1/auth/token",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "malformed_json"
    wrong_type = client.post("/api/v1/auth/token", json={"username": 5, "password": []})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["code"] == "invalid_request"
    extra = client.post(
        "/api/v1/auth/token", json={"username": "a", "password": "b", "admin": True}
    )
    assert extra.status_code == 422
    huge = client.post(
        "/api/v1/auth/token",
        content=b'{"username": "' + b"a" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["code"] == "payload_too_large"
    assert _tree_size(world) == before


def test_missing_and_forged_auth(world) -> None:
    assert world.client.get("/api/v1/audit/tree-head").status_code == 401
    forged = world.client.get(
        "/api/v1/audit/tree-head", headers={"Authorization": "Bearer abc.def.ghi"}
    )
    assert forged.status_code == 401
    malformed = world.client.get("/api/v1/audit/tree-head", headers={"Authorization": "Basic x"})
    assert malformed.status_code == 401
    bad_key = world.client.get("/api/v1/org/departments", headers={"X-API-Key": "xt_wrong"})
    assert bad_key.status_code == 401


def test_unknown_route_is_json_404(world) -> None:
    response = world.client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_every_api_route_declares_its_action(world) -> None:
    undeclared = []
    for route in world.client.app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/v1"):
            continue
        calls = [dep.call for dep in route.dependant.dependencies]
        if not any(isinstance(call, allow) for call in calls):
            undeclared.append(f"{sorted(route.methods)} {route.path}")
    assert undeclared == []


def test_openapi_and_health(world) -> None:
    spec = world.client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/audit/proofs/inclusion" in spec.json()["paths"]
    assert world.client.get("/healthz").json()["status"] == "ok"


def test_calendar_deadline_and_schedule_loading(world) -> None:
    clerk = world.token("clerk_a")
    answer = world.client.get(
        "/api/v1/calendar/deadline",
        params={"start": "2026-09-30", "working_days": 1},
        headers=clerk,
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "start": "2026-09-30",
        "working_days": 1,
        "day": "2026-10-08",
        "estimated": False,
    }
    refused = world.client.post(
        "/api/v1/calendar/schedules", json={"year": 2028, "holidays": []}, headers=clerk
    )
    assert refused.status_code == 403
    admin = world.token("admin")
    bad = world.client.post(
        "/api/v1/calendar/schedules",
        json={"year": 2028, "holidays": [{"name": "元旦", "days": ["2029-01-01"]}]},
        headers=admin,
    )
    assert bad.status_code == 422
    loaded = world.client.post(
        "/api/v1/calendar/schedules",
        json={"year": 2028, "holidays": [{"name": "元旦", "days": ["2028-01-03"]}], "workdays": []},
        headers=admin,
    )
    assert loaded.status_code == 201, loaded.text
    after = world.client.get(
        "/api/v1/calendar/deadline",
        params={"start": "2027-12-31", "working_days": 1},
        headers=clerk,
    ).json()
    assert after["day"] == "2028-01-04"
    assert after["estimated"] is False


def test_a_writer_that_cannot_get_the_lock_gets_503_and_changes_nothing(world, monkeypatch) -> None:
    if not world.ctx.db.is_sqlite:
        pytest.skip("the writer lock is SQLite's; PostgreSQL writers do not queue on one")
    from xietong.kernel import db as kernel_db

    headers = world.token("admin")
    monkeypatch.setattr(kernel_db, "WRITER_LOCK_TIMEOUT_S", 0.2)
    holder = world.ctx.db.write_session()
    holder.begin()
    holder.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: this session holds the writer lock
    try:
        response = world.client.post(
            "/api/v1/org/departments",
            json={"code": "dept-c", "name": "丙局", "region_code": "430100"},
            headers=headers,
        )
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "busy"
    listed = world.client.get("/api/v1/org/departments", headers=headers).json()
    assert "dept-c" not in str(listed)
