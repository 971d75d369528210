"""Webhook subscriptions and deliveries against a real HTTP receiver on 127.0.0.1.

The receiver checks every request's Standard Webhooks signature with the
``standardwebhooks`` package itself, can be told to fail or stall, and counts requests
per ``webhook-id`` — the integrator's view of "each event once".
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from xietong.kernel import clock
from xietong.kernel.access import ANONYMOUS, WORKER, Actor, Role
from xietong.kernel.audit import AuditLeaf
from xietong.kernel.bus import (
    InProcessBus,
    WebhookDelivery,
    WebhookSubscription,
    Worker,
    create_subscription,
    deactivate_subscription,
    deliver_due,
    fan_out,
    list_deliveries,
    list_subscriptions,
    relay_once,
    replay_dead,
    replay_from,
    rotate_secret,
    update_subscription,
)
from xietong.kernel.bus.jobs import schedule_job
from xietong.kernel.bus.models import ProcessedEvent, ScheduledJob
from xietong.kernel.bus.retention import prune
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from xietong.kernel.events import Event, event_type
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.uow import UnitOfWork
from xietong.plugins import plugin_manager

ADMIN = Actor(kind="user", id=1, name="admin", scopes={Role.ADMIN: frozenset()})
CLERK = Actor(kind="user", id=2, name="clerk", scopes={Role.WINDOW_CLERK: frozenset({1})})


@event_type("test.webhooks.thing.happened", "A webhook test thing happened")
@dataclass(frozen=True)
class ThingHappened(Event):
    n: int
    department_id: int | None = None


def do_things(ctx: Context, *numbers: int, department_id: int | None = None) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        for n in numbers:
            uow.record("test.thing", f"thing:{n}", {"n": n})
            uow.emit(ThingHappened(n=n, department_id=department_id), module="test")
        uow.commit()


class Receiver:
    """A webhook endpoint: verifies signatures, fails ``fail_next`` times, may stall."""

    def __init__(self) -> None:
        self.secret = ""
        self.fail_next = 0
        self.delay = 0.0
        self.accepted: Counter[str] = Counter()
        self.rejected = 0
        self.bodies: dict[str, Any] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            request.send_response(400)
            request.end_headers()
            return
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
            else:
                self.accepted[request.headers["webhook-id"]] += 1
                self.bodies[request.headers["webhook-id"]] = event
        request.send_response(503 if failing else 204)
        request.end_headers()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    plugin_manager()  # registers the kernel's actions (bus.webhook.manage)
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen_clock = clock.FrozenClock(datetime.now(UTC))
    previous = clock.use_clock(frozen_clock)
    yield frozen_clock
    clock.use_clock(previous)


def subscribe(ctx: Context, receiver: Receiver, **extra: Any) -> int:
    created = create_subscription(
        ctx, ADMIN, name="接收方", url=receiver.url, event_types=["test.webhooks.*"], **extra
    )
    receiver.secret = created.secret
    return created.subscription.id


def deliveries(ctx: Context) -> list[WebhookDelivery]:
    with ctx.db.read() as session:
        rows = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        session.expunge_all()
        return rows


def relay(ctx: Context) -> int:
    return relay_once(ctx, InProcessBus(ctx, []))


def test_subscription_commands_are_checked_and_audited(ctx: Context, receiver: Receiver) -> None:
    created = create_subscription(
        ctx, ADMIN, name="统计局", url=receiver.url, event_types=["test.webhooks.*", "org.*"]
    )
    assert created.secret.startswith("whsec_")
    Webhook(created.secret)  # a valid Standard Webhooks secret
    with ctx.db.read() as session:
        row = session.get(WebhookSubscription, created.subscription.id)
        assert row is not None and created.secret.encode() not in row.secret_encrypted
        leaves = [leaf.payload for leaf in session.scalars(select(AuditLeaf))]
    assert len(leaves) == 1 and "统计局" in leaves[0] and created.secret not in leaves[0]

    sub_id = created.subscription.id
    updated = update_subscription(ctx, ADMIN, sub_id, name="统计局二", event_types=["x.y"])
    assert updated.name == "统计局二" and updated.event_types == ["x.y"]
    assert not deactivate_subscription(ctx, ADMIN, sub_id).active
    assert rotate_secret(ctx, ADMIN, sub_id) != created.secret
    assert [info.id for info in list_subscriptions(ctx, ADMIN)] == [sub_id]

    with pytest.raises(InvalidInput):
        create_subscription(ctx, ADMIN, name="x", url="ftp://example.org", event_types=["a.b"])
    with pytest.raises(InvalidInput):
        create_subscription(ctx, ADMIN, name="x", url=receiver.url, event_types=["a b"])
    with pytest.raises(InvalidInput):
        create_subscription(
            ctx, ADMIN, name="x", url=receiver.url, event_types=["a.b"], secret="whsec_short"
        )
    with pytest.raises(Forbidden):
        create_subscription(ctx, CLERK, name="x", url=receiver.url, event_types=["a.b"])
    with pytest.raises(Unauthenticated):
        list_subscriptions(ctx, ANONYMOUS)
    with pytest.raises(NotFound):
        update_subscription(ctx, ADMIN, 9999, name="none")
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditLeaf)) == 4


def test_deliveries_are_signed_and_fan_out_once(
    ctx: Context, receiver: Receiver, http: httpx.Client
) -> None:
    subscribe(ctx, receiver)
    create_subscription(ctx, ADMIN, name="other", url=receiver.url, event_types=["org.*"])
    do_things(ctx, 1, 2)
    assert relay(ctx) == 2
    assert len(deliveries(ctx)) == 2  # only the subscription that matches
    with ctx.db.read() as session:
        events = [row.to_cloudevent() for row in session.scalars(select(OutboxEvent))]
    with ctx.db.write_session() as session, session.begin():
        assert fan_out(session, events) == 0  # a re-relay adds nothing
    assert deliver_due(ctx, http) == 2
    assert receiver.rejected == 0 and set(receiver.accepted.values()) == {1}
    body = receiver.bodies[deliveries(ctx)[0].event_id]
    assert body["type"] == "test.webhooks.thing.happened" and body["data"]["n"] in {1, 2}
    assert all(row.status == "delivered" and row.last_status_code == 204 for row in deliveries(ctx))
    assert deliver_due(ctx, http) == 0

    # A forged or stale signature is refused by the receiver: the check is real.
    rejected = http.post(receiver.url, content=b"{}", headers={"webhook-id": "x"})
    assert rejected.status_code == 400


def test_department_subscription_sees_only_its_department(
    ctx: Context, receiver: Receiver, http: httpx.Client
) -> None:
    subscribe(ctx, receiver, department_id=7)
    do_things(ctx, 1, department_id=7)
    do_things(ctx, 2, department_id=8)
    do_things(ctx, 3)
    assert relay(ctx) == 3
    assert deliver_due(ctx, http) == 1
    assert [event["data"]["n"] for event in receiver.bodies.values()] == [1]


def test_retries_back_off_then_deliver(
    ctx: Context, receiver: Receiver, http: httpx.Client, frozen: clock.FrozenClock
) -> None:
    subscribe(ctx, receiver)
    receiver.fail_next = 2
    do_things(ctx, 1)
    relay(ctx)
    assert deliver_due(ctx, http) == 1
    (row,) = deliveries(ctx)
    assert row.status == "pending" and row.attempts == 1 and row.last_status_code == 503
    assert timedelta(seconds=5) <= row.next_attempt_at - clock.now() <= timedelta(seconds=6.25)
    assert deliver_due(ctx, http) == 0  # not due yet

    frozen.advance(timedelta(seconds=6.5))
    assert deliver_due(ctx, http) == 1
    (row,) = deliveries(ctx)
    assert row.attempts == 2
    assert timedelta(seconds=10) <= row.next_attempt_at - clock.now() <= timedelta(seconds=12.5)

    frozen.advance(timedelta(seconds=13))
    assert deliver_due(ctx, http) == 1
    (row,) = deliveries(ctx)
    assert row.status == "delivered" and row.attempts == 3 and row.delivered_at == clock.now()
    assert list(receiver.accepted.values()) == [1]


def test_dead_letter_after_max_attempts_and_replay(
    ctx: Context, receiver: Receiver, http: httpx.Client, frozen: clock.FrozenClock
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"webhook_max_attempts": 3})
    sub_id = subscribe(ctx, receiver)
    receiver.fail_next = 1000
    do_things(ctx, 1, 2)
    relay(ctx)
    for _ in range(3):
        assert deliver_due(ctx, http) == 2
        frozen.advance(timedelta(hours=6))
    assert [row.status for row in deliveries(ctx)] == ["dead", "dead"]
    assert deliver_due(ctx, http) == 0
    dead = list_deliveries(ctx, ADMIN, subscription_id=sub_id, status="dead")
    assert len(dead) == 2 and dead[0].event_type == "test.webhooks.thing.happened"
    assert dead[0].attempts == 3 and "503" in (dead[0].last_error or "")

    receiver.fail_next = 0
    assert replay_dead(ctx, ADMIN, delivery_ids=[dead[0].id]) == 1
    assert deliver_due(ctx, http) == 1
    assert replay_dead(ctx, ADMIN, subscription_id=sub_id) == 1
    assert deliver_due(ctx, http) == 1
    assert [row.status for row in deliveries(ctx)] == ["delivered", "delivered"]
    assert sorted(receiver.accepted.values()) == [1, 1]
    with pytest.raises(InvalidInput):
        replay_dead(ctx, ADMIN)


def test_replay_from_requeues_and_backfills(
    ctx: Context, receiver: Receiver, http: httpx.Client, frozen: clock.FrozenClock
) -> None:
    do_things(ctx, 1)
    relay(ctx)  # published before any subscription existed
    frozen.advance(timedelta(minutes=10))
    since = clock.now()
    do_things(ctx, 2)
    relay(ctx)
    sub_id = subscribe(ctx, receiver)
    do_things(ctx, 3)
    relay(ctx)
    assert deliver_due(ctx, http) == 1  # only event 3 was fanned out to the new subscription

    assert replay_from(ctx, ADMIN, sub_id, since) == 2  # 2 backfilled, 3 re-queued
    assert deliver_due(ctx, http) == 2
    numbers = sorted(event["data"]["n"] for event in receiver.bodies.values())
    assert numbers == [2, 3]
    assert sorted(receiver.accepted.values()) == [1, 2]  # the receiver sees the same id again


def test_inactive_subscriptions_wait_and_timeouts_are_bounded(
    ctx: Context, receiver: Receiver, http: httpx.Client, frozen: clock.FrozenClock
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"webhook_timeout_s": 0.3})
    sub_id = subscribe(ctx, receiver)
    do_things(ctx, 1)
    relay(ctx)
    deactivate_subscription(ctx, ADMIN, sub_id)
    assert deliver_due(ctx, http) == 0
    update_subscription(ctx, ADMIN, sub_id, active=True)

    receiver.delay = 2.0
    started = time.monotonic()
    assert deliver_due(ctx, http) == 1
    assert time.monotonic() - started < 1.5
    (row,) = deliveries(ctx)
    assert row.status == "pending" and "Timeout" in (row.last_error or "")
    receiver.delay = 0.0
    frozen.advance(timedelta(seconds=10))
    assert deliver_due(ctx, http) == 1
    assert deliveries(ctx)[0].status == "delivered"


def test_two_workers_relay_and_deliver_each_item_once(
    ctx: Context, receiver: Receiver, http: httpx.Client
) -> None:
    subscribe(ctx, receiver)
    for start in range(0, 80, 20):
        do_things(ctx, *range(start, start + 20))
    receiver.delay = 0.002
    workers = [
        Worker(ctx, f"w{i}", publisher=InProcessBus(ctx, []), http_client=http, periodic=[])
        for i in range(2)
    ]
    for worker in workers:
        worker.delivery_batch = 5
        worker.relay_batch = 10

    def run(worker: Worker) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(receiver.accepted.values()) < 80:
            if worker.run_once() == 0:
                time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert len(receiver.accepted) == 80 and set(receiver.accepted.values()) == {1}
    assert {row.status for row in deliveries(ctx)} == {"delivered"}
    assert {row.attempts for row in deliveries(ctx)} == {1}


def _count(ctx: Context, model: type) -> int:
    with ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_retention_prunes_old_bookkeeping_and_keeps_what_an_operator_needs(
    ctx: Context, receiver: Receiver, http: httpx.Client, frozen: clock.FrozenClock
) -> None:
    ctx.settings = ctx.settings.model_copy(
        update={"bus_retention_days": 30, "webhook_max_attempts": 1}
    )
    sub_id = subscribe(ctx, receiver)
    seen: list[int] = []
    marker_bus = InProcessBus(
        ctx, [("test.retention", "test.webhooks.*", lambda c, e, s: seen.append(1))]
    )
    do_things(ctx, 1, 2)
    relay_once(ctx, marker_bus)
    assert deliver_due(ctx, http) == 2  # delivered
    receiver.fail_next = 1
    do_things(ctx, 3)
    relay_once(ctx, marker_bus)
    assert deliver_due(ctx, http) == 1  # dead after one attempt
    do_things(ctx, 4)  # never published
    with ctx.db.write_session() as session, session.begin():
        schedule_job(session, "test.retention.job", due_at=clock.now())
        session.flush()
        session.execute(update(ScheduledJob).values(status="done", finished_at=clock.now()))
    assert (_count(ctx, OutboxEvent), _count(ctx, ProcessedEvent)) == (4, 3)

    assert prune(ctx) == 0  # nothing is old yet
    frozen.advance(timedelta(days=31))
    assert prune(ctx) == 3 + 3 + 2 + 1  # events, markers, delivered webhooks, the done job
    with ctx.db.read() as session:
        kept = [json_n(row) for row in session.scalars(select(OutboxEvent))]
        statuses = [row.status for row in session.scalars(select(WebhookDelivery))]
    assert kept == [4]  # the unpublished event waits for the relay
    assert statuses == ["dead"]  # dead letters stay for an operator
    assert (_count(ctx, ProcessedEvent), _count(ctx, ScheduledJob)) == (0, 0)
    assert prune(ctx) == 0

    with pytest.raises(InvalidInput) as refused:
        replay_from(ctx, ADMIN, sub_id, clock.now() - timedelta(days=40))
    assert refused.value.code == "replay_beyond_retention"


def json_n(row: OutboxEvent) -> int:
    return int(row.to_cloudevent()["data"]["n"])


def test_webhook_urls_with_credentials_or_outside_the_allow_list_are_refused(
    ctx: Context, receiver: Receiver
) -> None:
    with pytest.raises(InvalidInput) as credentials:
        create_subscription(
            ctx, ADMIN, name="x", url="https://u:p@oa.example.gov.cn/h", event_types=["*"]
        )
    assert credentials.value.code == "webhook_url_credentials"
    ctx.settings = ctx.settings.model_copy(
        update={"webhook_allowed_hosts": ["*.changsha.gov.cn", "127.0.0.1"]}
    )
    with pytest.raises(InvalidInput) as outside:
        create_subscription(ctx, ADMIN, name="x", url="http://10.0.0.8/h", event_types=["*"])
    assert outside.value.code == "webhook_host_not_allowed"
    assert _count(ctx, WebhookSubscription) == 0  # nothing was created
    create_subscription(
        ctx, ADMIN, name="oa", url="https://OA.Changsha.gov.cn/h", event_types=["*"]
    )
    sub_id = subscribe(ctx, receiver)  # 127.0.0.1 is listed
    with pytest.raises(InvalidInput):
        update_subscription(ctx, ADMIN, sub_id, url="https://evil.example.com/h")
