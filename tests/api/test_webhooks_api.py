"""Webhook subscriptions through the API: create, list deliveries, replay, bad input."""

from __future__ import annotations

from xietong.kernel import bus


def test_subscription_lifecycle(world) -> None:
    admin = world.token("admin")
    types = world.client.get("/api/v1/webhooks/event-types", headers=admin).json()
    assert any(t["type"].startswith("org.") for t in types)
    created = world.client.post(
        "/api/v1/webhooks/subscriptions",
        json={"name": "办公系统", "url": "http://127.0.0.1:9/hook", "event_types": ["org.*"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    sub_id = body["subscription"]["id"]

    world.client.post(
        "/api/v1/org/regions",
        json={"code": "430102", "name": "芙蓉区", "level": "county", "parent_code": "430100"},
        headers=admin,
    )
    bus.relay_once(world.ctx, bus.InProcessBus(world.ctx, consumers=[]))
    deliveries = world.client.get(
        f"/api/v1/webhooks/subscriptions/{sub_id}/deliveries", headers=admin
    ).json()
    assert deliveries["counts"]["pending"] >= 1
    assert deliveries["items"][0]["event_type"].startswith("org.")
    replay = world.client.post(
        f"/api/v1/webhooks/subscriptions/{sub_id}/replay", json={}, headers=admin
    )
    assert replay.status_code == 200
    assert replay.json() == {"queued": 0}
    gone = world.client.delete(f"/api/v1/webhooks/subscriptions/{sub_id}", headers=admin)
    assert gone.json()["active"] is False


def test_subscription_bad_input_and_access(world) -> None:
    admin = world.token("admin")
    bad_url = world.client.post(
        "/api/v1/webhooks/subscriptions",
        json={"name": "x", "url": "not a url", "event_types": ["org.*"]},
        headers=admin,
    )
    assert bad_url.status_code == 422
    bad_secret = world.client.post(
        "/api/v1/webhooks/subscriptions",
        json={
            "name": "x",
            "url": "http://127.0.0.1:9/",
            "event_types": ["org.*"],
            "secret": "whsec_!!",
        },
        headers=admin,
    )
    assert bad_secret.status_code == 422
    clerk = world.token("clerk_a")
    assert world.client.get("/api/v1/webhooks/subscriptions", headers=clerk).status_code == 403
    assert (
        world.client.get("/api/v1/webhooks/subscriptions/999/deliveries", headers=admin).json()[
            "items"
        ]
        == []
    )
