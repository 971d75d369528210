"""The NATS JetStream bus against a real server (nats://127.0.0.1:4222).

Each test run uses its own stream and subject prefix (streams may not overlap in
subjects), and deletes the stream afterwards. Skips when NATS is absent, fails under CI.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.conftest import NATS_URL, nats_available, require
from xietong.kernel.access import WORKER
from xietong.kernel.bus import ProcessedEvent, PublisherUnavailable, make_publisher, relay_once
from xietong.kernel.bus.jetstream import NatsBus, filter_subject, run_nats_consumers
from xietong.kernel.context import Context
from xietong.kernel.events import Event, event_type
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.uow import UnitOfWork


@event_type("test.nats.thing.happened", "A NATS test thing happened")
@dataclass(frozen=True)
class ThingHappened(Event):
    n: int


@dataclass
class Stream:
    name: str
    prefix: str


async def _stream_messages(name: str) -> int:
    nc = await nats.connect(NATS_URL)
    try:
        return (await nc.jetstream().stream_info(name)).state.messages
    finally:
        await nc.close()


async def _delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
def stream() -> Iterator[Stream]:
    require(nats_available(), f"NATS is not reachable at {NATS_URL}")
    token = uuid.uuid4().hex[:10]
    created = Stream(name=f"XIETONG_TEST_{token}", prefix=f"xietong_test_{token}")
    yield created
    asyncio.run(_delete_stream(created.name))


def do_things(ctx: Context, *numbers: int) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        for n in numbers:
            uow.record("test.thing", f"thing:{n}", {"n": n})
            uow.emit(ThingHappened(n=n), module="test")
        uow.commit()


def test_filter_subjects() -> None:
    assert filter_subject("x", "*") == "x.>"
    assert filter_subject("x", "org.*") == "x.org.>"
    assert filter_subject("x", "org.user*") == "x.>"  # partial token: filtered in code
    assert filter_subject("x", "org.user.created") == "x.org.user.created"


def test_publisher_choice(ctx: Context) -> None:
    assert type(make_publisher(ctx)).__name__ == "InProcessBus"
    ctx.settings = ctx.settings.model_copy(update={"nats_url": "nats://127.0.0.1:1"})
    bus = make_publisher(ctx)
    try:
        assert isinstance(bus, NatsBus)  # connects lazily, on the first publish
    finally:
        bus.close()


def test_relay_publishes_to_jetstream_and_a_pull_consumer_applies_once(
    ctx: Context, stream: Stream
) -> None:
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(ctx: Context, event: dict[str, Any], session: Session) -> None:
        received.append(event)
        if len(received) >= 3:
            done.set()

    bus = NatsBus(ctx, url=NATS_URL, stream=stream.name, subject_prefix=stream.prefix)
    try:
        do_things(ctx, 1, 2, 3)
        assert relay_once(ctx, bus) == 3
        assert asyncio.run(_stream_messages(stream.name)) == 3

        # A relay that died before marking publishes again: JetStream keeps one copy.
        first = None
        with ctx.db.write_session() as session, session.begin():
            first = session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)).first()
            assert first is not None
            session.execute(update(OutboxEvent).values(published_at=None))
        assert bus.publish_ack(first.to_cloudevent()) is True  # a duplicate by message id
        assert relay_once(ctx, bus) == 3
        assert asyncio.run(_stream_messages(stream.name)) == 3
    finally:
        bus.close()

    stop = threading.Event()
    consumers = [("test.nats.consumer", "test.nats.*", handler)]
    runner = threading.Thread(
        target=run_nats_consumers,
        args=(ctx, stop),
        kwargs={
            "consumers": consumers,
            "url": NATS_URL,
            "stream": stream.name,
            "subject_prefix": stream.prefix,
            "fetch_timeout": 0.5,
        },
        daemon=True,
    )
    runner.start()
    try:
        assert done.wait(20), "the pull consumer received nothing"
        time.sleep(0.3)  # room for an unexpected fourth delivery to show up
    finally:
        stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert sorted(event["data"]["n"] for event in received) == [1, 2, 3]
    with ctx.db.read() as session:
        markers = session.scalars(select(ProcessedEvent.event_id)).all()
    assert sorted(markers) == sorted(event["id"] for event in received)

    # A restarted runner resumes the durable consumer: nothing is delivered again.
    stop = threading.Event()
    runner = threading.Thread(
        target=run_nats_consumers,
        args=(ctx, stop),
        kwargs={
            "consumers": consumers,
            "url": NATS_URL,
            "stream": stream.name,
            "subject_prefix": stream.prefix,
            "fetch_timeout": 0.5,
        },
        daemon=True,
    )
    runner.start()
    time.sleep(1.0)
    stop.set()
    runner.join(timeout=10)
    assert len(received) == 3


def test_relay_keeps_events_when_nats_is_down(ctx: Context) -> None:
    bus = NatsBus(ctx, url="nats://127.0.0.1:1", stream="XIETONG_TEST_DOWN", timeout=0.5)
    try:
        do_things(ctx, 1, 2)
        started = time.monotonic()
        assert relay_once(ctx, bus) == 0
        assert time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(PublisherUnavailable):
            bus.publish({"id": "x", "type": "test.nats.thing.happened"})
        assert time.monotonic() - started < 0.5  # cooling down: no second connect wait
    finally:
        bus.close()
    with ctx.db.read() as session:
        rows = list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))
        # The batch stopped at the first failure: the second event was not even tried.
        assert [row.attempts for row in rows] == [1, 0]
        assert all(row.published_at is None for row in rows)
