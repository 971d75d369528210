"""The outbox relay, idempotent consumers and scheduled jobs, on SQLite and PostgreSQL.

What must hold: events leave only after their command committed (and never on
rollback); a consumer applies each event once however often it is delivered; relays and
job runners working at the same time never handle one item twice; a dead worker's
claimed job comes back once its lease runs out.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import WORKER
from xietong.kernel.bus import (
    InProcessBus,
    ProcessedEvent,
    ScheduledJob,
    Worker,
    cancel_job,
    claim,
    complete_job,
    deliver_to_consumer,
    idempotent,
    matches,
    register_job_handler,
    relay_once,
    run_due_jobs,
    schedule_job,
)
from xietong.kernel.bus.jobs import JOB_LEASE
from xietong.kernel.canonical import rfc3339
from xietong.kernel.context import Context
from xietong.kernel.events import Event, event_type
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.uow import UnitOfWork


@event_type("test.bus.thing.happened", "A test thing happened")
@dataclass(frozen=True)
class ThingHappened(Event):
    n: int

    @property
    def subject(self) -> str:
        return f"thing:{self.n}"


def do_things(ctx: Context, *numbers: int, fail: bool = False) -> None:
    """A command: one audit entry and one event per number, in one transaction."""
    with UnitOfWork(ctx, WORKER) as uow:
        for n in numbers:
            uow.record("test.thing", f"thing:{n}", {"n": n})
            uow.emit(ThingHappened(n=n), module="test")
        if fail:
            raise RuntimeError("the command failed before commit")
        uow.commit()


def test_outbox_rows_hold_the_cloudevents_as_before(ctx: Context) -> None:
    """A command's events share one formatted time, and their JSON comes from a prebuilt
    encoder: the stored text must still be json.dumps(cloud, ensure_ascii=False,
    sort_keys=True) of a CloudEvent whose time is rfc3339 of the command's moment, in
    emission order."""
    do_things(ctx, 3, 1, 2)
    rows = outbox(ctx)
    assert [row.subject for row in rows] == ["thing:3", "thing:1", "thing:2"]
    for row in rows:
        cloud = json.loads(row.cloudevent)
        assert row.cloudevent == json.dumps(cloud, ensure_ascii=False, sort_keys=True)
        assert cloud["time"] == rfc3339(row.created_at)
        assert (cloud["id"], cloud["type"]) == (row.event_id, row.type)


class Recorder:
    """A consumer that records the events it applied (and optionally fails or stalls)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail_times = 0
        self.delay = 0.0
        self.lock = threading.Lock()

    def __call__(self, ctx: Context, event: dict[str, Any], session: Session) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("consumer failure")
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.seen.append(event["id"])


class RecordingBus(InProcessBus):
    """Counts every publication, so a duplicate hidden by consumer markers still shows."""

    def __init__(self, ctx: Context, consumers: list[Any], published: list[str]) -> None:
        super().__init__(ctx, consumers)
        self.published = published

    def publish(self, event: dict[str, Any]) -> None:
        super().publish(event)
        self.published.append(event["id"])


# Job handlers are registered once per process (a kind has one handler), so they write
# to this shared log, which each test clears.
JOB_LOG: list[Any] = []
JOB_LOCK = threading.Lock()


def _record_job(ctx: Context, job: ScheduledJob) -> None:
    JOB_LOG.append((job.key, job.payload))


def _explode(ctx: Context, job: ScheduledJob) -> None:
    raise ValueError("boom")


def _complete_inside(ctx: Context, job: ScheduledJob) -> None:
    with ctx.db.write_session() as session, session.begin():
        JOB_LOG.append(job.id)
        assert complete_job(session, job)


def _count_concurrently(ctx: Context, job: ScheduledJob) -> None:
    time.sleep(0.002)
    with JOB_LOCK:
        JOB_LOG.append(job.id)


register_job_handler("test.job.record", _record_job)
register_job_handler("test.job.explode", _explode)
register_job_handler("test.job.lease", _complete_inside)
register_job_handler("test.job.concurrent", _count_concurrently)


@pytest.fixture(autouse=True)
def _clear_job_log() -> None:
    JOB_LOG.clear()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    frozen_clock = clock.FrozenClock(datetime.now(UTC))
    previous = clock.use_clock(frozen_clock)
    yield frozen_clock
    clock.use_clock(previous)


def outbox(ctx: Context) -> list[OutboxEvent]:
    with ctx.db.read() as session:
        rows = list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))
        session.expunge_all()
        return rows


def test_patterns() -> None:
    assert matches("test.bus.thing.happened", "test.bus.thing.happened")
    assert matches("test.bus.*", "test.bus.thing.happened")
    assert matches("*", "anything")
    assert not matches("test.bus", "test.bus.thing.happened")
    assert not matches("test.other.*", "test.bus.thing.happened")


def test_events_commit_with_the_command_and_only_then_publish(ctx: Context) -> None:
    recorder = Recorder()
    bus = InProcessBus(ctx, [("test.recorder", "test.bus.*", recorder)])
    assert relay_once(ctx, bus) == 0

    ctx.outbox_wakeup.clear()
    do_things(ctx, 1, 2)
    assert ctx.outbox_wakeup.is_set()  # the commit woke the relay
    rows = outbox(ctx)
    assert [row.type for row in rows] == ["test.bus.thing.happened"] * 2
    assert all(row.published_at is None for row in rows)
    assert recorder.seen == []  # committed, not yet published: nothing delivered

    assert relay_once(ctx, bus) == 2
    assert recorder.seen == [row.event_id for row in rows]
    cloud = outbox(ctx)[0].to_cloudevent()
    assert cloud["specversion"] == "1.0" and cloud["source"] == "/xietong/test"
    assert cloud["subject"] == "thing:1" and cloud["data"] == {"n": 1}
    assert all(row.published_at is not None for row in outbox(ctx))
    assert relay_once(ctx, bus) == 0


def test_rollback_leaves_no_event(ctx: Context) -> None:
    with pytest.raises(RuntimeError):
        do_things(ctx, 1, fail=True)
    assert outbox(ctx) == []
    assert relay_once(ctx, InProcessBus(ctx, [])) == 0


def test_a_consumer_applies_each_event_once(ctx: Context) -> None:
    recorder = Recorder()
    bus = InProcessBus(ctx, [("test.recorder", "test.bus.*", recorder)])
    do_things(ctx, 1, 2, 3)
    assert relay_once(ctx, bus) == 3

    # The relay died after publishing, before marking: everything is published again.
    with ctx.db.write_session() as session, session.begin():
        session.execute(update(OutboxEvent).values(published_at=None))
    assert relay_once(ctx, bus) == 3
    assert len(recorder.seen) == 3 == len(set(recorder.seen))

    event = outbox(ctx)[0].to_cloudevent()
    assert deliver_to_consumer(ctx, "test.recorder", recorder, event) is False
    assert deliver_to_consumer(ctx, "test.other", recorder, event) is True
    with ctx.db.read() as session:
        markers = session.scalar(select(func.count()).select_from(ProcessedEvent))
    assert markers == 4


def test_idempotent_decorator_and_rollback_of_a_failing_handler(ctx: Context) -> None:
    calls: list[str] = []

    @idempotent("test.decorated")
    def handler(ctx: Context, event: dict[str, Any], session: Session) -> None:
        calls.append(event["id"])
        schedule_job(session, "test.effect", due_at=clock.now(), key=event["id"])
        if len(calls) == 1:
            raise RuntimeError("first try fails after its effect was written")

    event = {"id": "evt-1", "type": "test.bus.thing.happened"}
    with pytest.raises(RuntimeError):
        handler(ctx, event)
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ScheduledJob)) == 0
        assert session.get(ProcessedEvent, ("test.decorated", "evt-1")) is None
    assert handler(ctx, event) is True
    assert handler(ctx, event) is False
    assert calls == ["evt-1", "evt-1"]
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ScheduledJob)) == 1


def test_a_failing_consumer_keeps_the_event_for_the_next_relay(ctx: Context) -> None:
    good, flaky = Recorder(), Recorder()
    flaky.fail_times = 1
    bus = InProcessBus(ctx, [("test.good", "*", good), ("test.flaky", "test.bus.*", flaky)])
    do_things(ctx, 1)
    assert relay_once(ctx, bus) == 0
    row = outbox(ctx)[0]
    assert row.published_at is None and row.attempts == 1 and "consumer failure" in row.last_error
    assert good.seen == [row.event_id] and flaky.seen == []

    assert relay_once(ctx, bus) == 1
    assert good.seen == [row.event_id] == flaky.seen  # the good one was not repeated
    assert outbox(ctx)[0].last_error is None


def test_two_relays_at_once_never_publish_an_event_twice(ctx: Context) -> None:
    for start in range(0, 80, 20):
        do_things(ctx, *range(start, start + 20))
    published: list[str] = []
    recorder = Recorder()
    recorder.delay = 0.002  # widen the window in which a second relay could interfere
    consumers = [("test.recorder", "test.bus.*", recorder)]
    buses = [RecordingBus(ctx, consumers, published) for _ in range(2)]
    errors: list[BaseException] = []

    def relay(bus: InProcessBus) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and relay_once(ctx, bus, batch=10):
                pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=relay, args=(bus,)) for bus in buses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not errors
    assert relay_once(ctx, buses[0]) == 0
    assert len(published) == 80 == len(set(published))
    assert sorted(recorder.seen) == sorted(published)


def test_jobs_run_when_due_and_keys_deduplicate(ctx: Context, frozen: clock.FrozenClock) -> None:
    now = clock.now()
    with ctx.db.write_session() as session, session.begin():
        schedule_job(session, "test.job.record", due_at=now, key="a", payload={"v": 1})
        schedule_job(session, "test.job.record", due_at=now + timedelta(hours=1), key="b")
        schedule_job(session, "test.job.record", due_at=now + timedelta(hours=2), key="c")
    with ctx.db.write_session() as session, session.begin():
        # The same key again moves the job rather than adding one.
        schedule_job(session, "test.job.record", due_at=now, key="a", payload={"v": 2})
        assert cancel_job(session, "test.job.record", "c")
    assert run_due_jobs(ctx, "w1") == 1
    assert JOB_LOG == [("a", {"v": 2})]
    frozen.advance(timedelta(hours=1))
    assert run_due_jobs(ctx, "w1") == 1 and run_due_jobs(ctx, "w1") == 0
    with ctx.db.read() as session:
        rows = session.execute(select(ScheduledJob.key, ScheduledJob.status))
        statuses = {key: status for key, status in rows}
    assert statuses == {"a": "done", "b": "done"}


def test_a_failing_job_backs_off_then_fails(ctx: Context, frozen: clock.FrozenClock) -> None:
    with ctx.db.write_session() as session, session.begin():
        schedule_job(session, "test.job.explode", due_at=clock.now(), max_attempts=3)

    def job() -> ScheduledJob:
        with ctx.db.read() as session:
            row = session.scalars(select(ScheduledJob)).one()
            session.expunge(row)
            return row

    assert run_due_jobs(ctx, "w") == 1
    first = job()
    assert first.status == "pending" and first.attempts == 1 and "boom" in first.last_error
    wait = first.due_at - clock.now()
    assert timedelta(seconds=5) <= wait <= timedelta(seconds=6.25)
    assert run_due_jobs(ctx, "w") == 0  # not yet due
    frozen.advance(wait)
    assert run_due_jobs(ctx, "w") == 1
    assert timedelta(seconds=10) <= job().due_at - clock.now() <= timedelta(seconds=12.5)
    frozen.advance(timedelta(minutes=1))
    assert run_due_jobs(ctx, "w") == 1
    assert job().status == "failed" and job().attempts == 3


def test_a_dead_workers_job_is_claimed_again_after_its_lease(
    ctx: Context, frozen: clock.FrozenClock
) -> None:
    with ctx.db.write_session() as session, session.begin():
        schedule_job(session, "test.job.lease", due_at=clock.now(), key="x")
    # A worker claims the job, then dies (it never finishes it).
    stale = claim.claim(
        ctx, ScheduledJob, where=ScheduledJob.status == "pending", order_by=[ScheduledJob.id],
        limit=5, owner="dead", lease=JOB_LEASE, claimed="running",
    )  # fmt: skip
    assert len(stale) == 1
    assert run_due_jobs(ctx, "w2") == 0  # leased to the dead worker
    frozen.advance(JOB_LEASE + timedelta(seconds=1))
    assert run_due_jobs(ctx, "w2") == 1
    assert [stale[0].id] == JOB_LOG
    with ctx.db.write_session() as session, session.begin():
        # The dead worker coming back cannot overwrite the new owner's result.
        lost = {"owner": "dead", "claimed": "running", "values": {"status": "failed"}}
        assert not claim.finish(session, ScheduledJob, stale[0].id, **lost)
    with ctx.db.read() as session:
        done = session.scalars(select(ScheduledJob)).one()
        assert done.status == "done" and done.attempts == 2


def test_two_job_runners_never_run_a_job_twice(ctx: Context) -> None:
    with ctx.db.write_session() as session, session.begin():
        for n in range(60):
            schedule_job(session, "test.job.concurrent", due_at=clock.now(), key=str(n))

    def runner(name: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run_due_jobs(ctx, claim.owner_token(name), 5):
            pass

    threads = [threading.Thread(target=runner, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    ran = Counter(JOB_LOG)
    assert len(ran) == 60 and set(ran.values()) == {1}


def test_worker_run_once_does_everything_and_runs_periodic_jobs(ctx: Context) -> None:
    recorder = Recorder()
    ticks: list[int] = []
    worker = Worker(
        ctx,
        "test",
        publisher=InProcessBus(ctx, [("test.recorder", "test.bus.*", recorder)]),
        periodic=[("test.tick", 3600.0, lambda ctx: ticks.append(1) or 1)],
    )
    try:
        do_things(ctx, 1, 2)
        assert worker.run_once() == 3  # two events and one periodic tick
        assert worker.run_once() == 0  # the tick's interval has not passed
        assert len(recorder.seen) == 2 and ticks == [1]
    finally:
        worker.close()


def test_background_worker_relays_on_wakeup(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from xietong.kernel.bus import worker as worker_module

    recorder = Recorder()
    bus = InProcessBus(ctx, [("test.recorder", "test.bus.*", recorder)])
    ctx.settings = ctx.settings.model_copy(update={"worker_poll_s": 30.0})
    monkeypatch.setattr(worker_module, "make_publisher", lambda ctx: bus)
    stop = worker_module.start_background_worker(ctx)
    time.sleep(0.05)  # let its first pass find nothing and start waiting
    do_things(ctx, 7)
    deadline = time.monotonic() + 10
    while not recorder.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    stop()
    # Delivered long before the 30 s poll: the commit's wake-up did it.
    assert len(recorder.seen) == 1
