"""Subscriptions: pushed and polled changes reach subscribers on the bus and as signed
webhooks, cut to each grant and masked; replay from a change id."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from tests.apps.exchange.conftest import Sharing, drain, tree_size
from tests.apps.exchange.test_gateway import grant
from xietong.apps.exchange import subscriptions
from xietong.kernel.bus import deliver_due
from xietong.kernel.bus.models import WebhookDelivery

API = "/api/v1/exchange"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint collecting what it is sent (body and headers)."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            got.append({"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def subscribe(s: Sharing, url: str | None = None) -> dict[str, Any]:
    made = s.world.client.post(
        f"{API}/subscriptions",
        json={"resource_code": s.code, "webhook_url": url},
        headers=s.consumer,
    )
    assert made.status_code == 201, made.text
    return made.json()


CHANGE = {
    "op": "upsert",
    "key": "430102199003071234",
    "data": {
        "姓名": "王小明",
        "公民身份号码": "430102199003071234",
        "出生日期": "1990-03-07",
        "手机号码": "13812345678",
    },
}


def test_pushed_change_reaches_the_bus_and_a_signed_webhook_masked(
    sharing: Sharing, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    s = sharing
    url, got = receiver
    no_grant = s.world.client.post(
        f"{API}/subscriptions", json={"resource_code": s.code}, headers=s.consumer
    )
    assert no_grant.status_code == 403
    grant(s)  # 姓名, 公民身份号码, 出生日期 — not 手机号码
    sub = subscribe(s, url)
    assert sub["webhook_secret"].startswith("whsec_")
    pushed = s.world.client.post(
        f"{API}/resources/{s.code}/changes", json={"changes": [CHANGE]}, headers=s.provider
    )
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["deliveries"] == 1
    drain(s.world.ctx)
    with httpx.Client() as client:
        assert deliver_due(s.world.ctx, client) == 1
    assert len(got) == 1
    event = Webhook(sub["webhook_secret"]).verify(got[0]["body"], got[0]["headers"])
    assert event["type"] == "exchange.change.delivered"
    data = event["data"]
    assert data["subscription_id"] == sub["id"] and data["resource_code"] == s.code
    assert data["values"] == {
        "姓名": "王**",
        "公民身份号码": "430102********1234",
        "出生日期": "1990-03-07",
    }  # cut to the grant, masked
    with s.world.ctx.db.read() as session:
        statuses = list(session.scalars(select(WebhookDelivery.status)))
    assert statuses == ["delivered"]


def test_only_the_provider_publishes_and_bad_changes_change_nothing(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    before = tree_size(s.world.ctx)
    consumer = s.world.client.post(
        f"{API}/resources/{s.code}/changes", json={"changes": [CHANGE]}, headers=s.consumer
    )
    assert consumer.status_code == 403
    for bad in (
        {**CHANGE, "op": "drop"},
        {**CHANGE, "key": " "},
        {**CHANGE, "data": {"不存在": 1}},
    ):
        answer = s.world.client.post(
            f"{API}/resources/{s.code}/changes", json={"changes": [bad]}, headers=s.provider
        )
        assert answer.status_code == 422, answer.text
    assert tree_size(s.world.ctx) == before


def test_replay_from_a_change_id(sharing: Sharing) -> None:
    s = sharing
    grant(s)
    sub = subscribe(s)
    for number in range(5):
        change = {**CHANGE, "key": f"k{number}"}
        s.world.client.post(
            f"{API}/resources/{s.code}/changes", json={"changes": [change]}, headers=s.provider
        )
    listed = s.world.client.get(
        f"{API}/subscriptions/{sub['id']}/changes", params={"after": 0}, headers=s.consumer
    ).json()
    assert [c["key"] for c in listed] == [f"k{n}" for n in range(5)]
    after = listed[2]["id"]
    tail = s.world.client.get(
        f"{API}/subscriptions/{sub['id']}/changes", params={"after": after}, headers=s.consumer
    ).json()
    assert [c["key"] for c in tail] == ["k3", "k4"]
    assert "手机号码" not in tail[0]["data"] and tail[0]["data"]["姓名"] == "王**"
    queued = s.world.client.post(
        f"{API}/subscriptions/{sub['id']}/replay", json={"after": after}, headers=s.consumer
    )
    assert queued.json() == {"queued": 2}
    # another department may not read this subscription
    other = s.world.client.get(f"{API}/subscriptions/{sub['id']}/changes", headers=s.provider)
    assert other.status_code == 403


def test_connector_poll_publishes_new_rows_once(sharing: Sharing, tmp_path: Path) -> None:
    s = sharing
    grant(s)
    sub = subscribe(s)
    db = tmp_path / "provider.db"
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE people ADD COLUMN changed INTEGER DEFAULT 0")
        conn.execute("UPDATE people SET changed = id WHERE id <= 3")
    s.world.client.put(
        f"{API}/resources/{s.code}/connector",
        json={
            "kind": "sql",
            "config": {"table": "people", "key": "id", "poll_field": "changed", "key_field": "id"},
            "fields": {
                "姓名": "xm",
                "公民身份号码": "sfzh",
                "出生日期": "csrq",
                "手机号码": "sjhm",
                "户籍地址": "dz",
            },
        },
        headers=s.provider,
    )
    ctx = s.world.ctx
    assert subscriptions.poll_all(ctx) == 30  # the first poll reads every row
    assert subscriptions.poll_all(ctx) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE people SET changed = 100, xm = '赵六' WHERE id = 5")
    assert subscriptions.poll_all(ctx) == 1
    changes = s.world.client.get(
        f"{API}/subscriptions/{sub['id']}/changes", params={"limit": 1000}, headers=s.consumer
    ).json()
    assert len(changes) == 31
    assert changes[-1]["key"] == "5" and changes[-1]["data"]["姓名"] == "赵*"
    assert changes[-1]["source"] == "poll"
    events = drain(ctx)
    assert events >= 31


def test_failing_webhook_is_dead_lettered_and_replayable(sharing: Sharing) -> None:
    from xietong.kernel.access import operator_actor
    from xietong.kernel.bus.replay import replay_dead

    s = sharing
    grant(s)
    sub = subscribe(s, "http://127.0.0.1:9/unreachable")
    s.world.client.post(
        f"{API}/resources/{s.code}/changes", json={"changes": [CHANGE]}, headers=s.provider
    )
    drain(s.world.ctx)
    ctx = s.world.ctx
    ctx.settings = ctx.settings.model_copy(update={"webhook_max_attempts": 1})
    with httpx.Client(timeout=1) as client:
        assert deliver_due(ctx, client) == 1
    with ctx.db.read() as session:
        assert list(session.scalars(select(WebhookDelivery.status))) == ["dead"]
    assert replay_dead(ctx, operator_actor("test"), subscription_id=sub["webhook_id"]) == 1
    with ctx.db.read() as session:
        assert list(session.scalars(select(WebhookDelivery.status))) == ["pending"]
