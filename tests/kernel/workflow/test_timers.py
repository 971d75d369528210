"""Timers, boundary timers and 超时自动处理, fired by the bus's scheduled jobs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from xietong.kernel import clock
from xietong.kernel.bus import ScheduledJob, run_due_jobs
from xietong.kernel.clock import CST
from xietong.kernel.workflow import instances, operations, timers
from xietong.kernel.workflow.model import TaskTimeout, Timer

from .conftest import Flowbed, graph, line, node, task

assert timers  # importing registers the job handlers

# Thursday 12 June 2025, 10:00 in China: two working days later is Monday the 16th
THURSDAY = datetime(2025, 6, 12, 10, 0, tzinfo=CST)


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    moment = clock.FrozenClock(THURSDAY)
    previous = clock.use_clock(moment)
    yield moment
    clock.use_clock(previous)


def _run_jobs(bed: Flowbed) -> int:
    return run_due_jobs(bed.ctx, "test-worker", 50)


def test_an_intermediate_timer_waits_then_continues(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    wait = node("wait", "timer", timer=Timer(kind="duration", expression="PT2H"))
    bed.deploy(line("tm", wait, task("after", "rev1")))
    started = bed.start("tm")
    assert bed.waiting_nodes(started.id) == ["wait"]
    assert _run_jobs(bed) == 0
    frozen.advance(timedelta(hours=2, seconds=1))
    assert _run_jobs(bed) == 1
    assert bed.waiting_nodes(started.id) == ["after"]
    assert _run_jobs(bed) == 0  # fired once


def test_a_working_day_timer_skips_the_weekend(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    wait = node("wait", "timer", timer=Timer("duration", "P2D", working_days=True))
    bed.deploy(line("wd", wait, task("after", "rev1")))
    started = bed.start("wd")
    with bed.ctx.db.read() as session:
        job = session.query(ScheduledJob).filter_by(kind="workflow.timer").one()
        assert job.due_at == datetime(2025, 6, 16, 10, 0, tzinfo=CST)
    frozen.set(datetime(2025, 6, 15, 23, 0, tzinfo=CST))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["wait"]
    frozen.set(datetime(2025, 6, 16, 10, 1, tzinfo=CST))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["after"]


def escalating(interrupting: bool) -> object:
    return graph(
        "esc",
        [
            node("start", "start"),
            task("a", "rev1"),
            node(
                "sla",
                "timer",
                timer=Timer("duration", "PT4H"),
                attached_to="a",
                cancel_activity=interrupting,
            ),
            task("escalate", "head"),
            node("end", "end"),
            node("end2", "end"),
        ],
        [("start", "a"), ("a", "end"), ("sla", "escalate"), ("escalate", "end2")],
    )


def test_an_interrupting_boundary_timer_abandons_the_task(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(escalating(True))
    started = bed.start("esc")
    frozen.advance(timedelta(hours=5))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["escalate"]
    a = next(t for t in bed.tasks(started.id, None) if t.node_id == "a")
    assert (a.status, a.cancel_reason) == ("cancelled", "boundary_timer")


def test_a_non_interrupting_boundary_timer_adds_a_branch(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(escalating(False))
    started = bed.start("esc")
    frozen.advance(timedelta(hours=5))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["a", "escalate"]


def test_leaving_the_activity_first_drops_the_boundary_timer(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(escalating(True))
    started = bed.start("esc")
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)
    assert bed.instance(started.id).instance.status == "completed"
    assert bed.count(ScheduledJob) == 0
    frozen.advance(timedelta(days=1))
    assert _run_jobs(bed) == 0


def _timeout_process(action: str) -> object:
    guarded = task("a", "rev1", timeout=TaskTimeout(after_working_days=2, action=action))  # type: ignore[arg-type]
    return line(f"to_{action}", guarded, task("after", "boss"))


def test_time_out_auto_approves_after_working_days(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    bed.deploy(_timeout_process("approve"))
    started = bed.start("to_approve")
    a = bed.open_task(started.id, "a")
    assert a.due_at == datetime(2025, 6, 16, 10, 0, tzinfo=CST)
    frozen.set(datetime(2025, 6, 16, 10, 5, tzinfo=CST))
    _run_jobs(bed)
    done = next(t for t in bed.tasks(started.id, None) if t.id == a.id)
    assert (done.status, done.outcome, done.opinion) == ("completed", "approve", "超时自动同意")
    assert bed.waiting_nodes(started.id) == ["after"]
    history = bed.instance(started.id).history
    timeout = next(h for h in history if h.kind == "task.timeout")
    assert timeout.actor == "worker:worker"


def test_time_out_auto_rejects(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    bed.deploy(_timeout_process("reject"))
    started = bed.start("to_reject")
    frozen.advance(timedelta(days=10))
    _run_jobs(bed)
    assert bed.instance(started.id).variables["a_outcome"] == "reject"


def test_time_out_reminds(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    bed.deploy(_timeout_process("remind"))
    started = bed.start("to_remind")
    frozen.advance(timedelta(days=10))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["a"]
    kinds = [h.kind for h in bed.instance(started.id).history]
    assert "task.urged" in kinds


def test_a_timer_due_while_suspended_fires_on_resume(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    wait = node("wait", "timer", timer=Timer(kind="duration", expression="PT1H"))
    bed.deploy(line("held", wait, task("after", "rev1")))
    started = bed.start("held")
    instances.suspend(bed.ctx, bed.actor("head"), started.id)
    frozen.advance(timedelta(hours=2))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["wait"]
    instances.resume(bed.ctx, bed.actor("head"), started.id)
    assert bed.waiting_nodes(started.id) == ["after"]


def _reminding(timer: Timer, interrupting: bool = False) -> object:
    return graph(
        f"cyc_{int(interrupting)}",
        [
            node("start", "start"),
            task("a", "rev1"),
            node("nag", "timer", timer=timer, attached_to="a", cancel_activity=interrupting),
            node("end", "end"),
            node("nagged", "end"),
        ],
        [("start", "a"), ("a", "end"), ("nag", "nagged")],
    )


def _fired(bed: Flowbed, instance_id: int) -> int:
    return sum(1 for h in bed.instance(instance_id).history if h.kind == "timer.fired")


def test_a_boundary_cycle_fires_n_times_while_the_task_waits(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(_reminding(Timer("cycle", "R3/PT1H")))
    started = bed.start("cyc_0")
    for hour in range(1, 6):
        frozen.advance(timedelta(hours=1, seconds=1))
        _run_jobs(bed)
        assert _fired(bed, started.id) == min(hour, 3)
    assert bed.waiting_nodes(started.id) == ["a"]
    assert bed.count(ScheduledJob) == 1  # the finished cycle's job row, done
    with bed.ctx.db.read() as session:
        assert session.query(ScheduledJob).one().status == "done"


def test_an_unbounded_cycle_repeats_until_the_task_is_done(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(_reminding(Timer("cycle", "R/PT1H")))
    started = bed.start("cyc_0")
    for _ in range(4):
        frozen.advance(timedelta(hours=1, seconds=1))
        _run_jobs(bed)
    assert _fired(bed, started.id) == 4
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(started.id, "a").id)
    assert bed.instance(started.id).instance.status == "completed"
    assert bed.count(ScheduledJob) == 0  # leaving the task deleted the next firing
    frozen.advance(timedelta(hours=5))
    assert _run_jobs(bed) == 0


def test_an_interrupting_cycle_fires_once(bed: Flowbed, frozen: clock.FrozenClock) -> None:
    bed.deploy(_reminding(Timer("cycle", "R3/PT1H"), interrupting=True))
    started = bed.start("cyc_1")
    frozen.advance(timedelta(hours=1, seconds=1))
    _run_jobs(bed)
    assert bed.instance(started.id).instance.status == "completed"
    frozen.advance(timedelta(hours=5))
    assert _run_jobs(bed) == 0
    assert _fired(bed, started.id) == 1


def test_a_cycle_with_a_start_date_or_an_end_date() -> None:
    from xietong.kernel.workflow._durations import due_at, next_cycle_due

    start = Timer("cycle", "R2/2025-06-13T09:00:00+08:00/P1D")
    assert due_at(start, THURSDAY, {}, None) == datetime(2025, 6, 13, 9, 0, tzinfo=CST)
    ending = Timer("cycle", "R/PT10H/2025-06-13T00:00:00+08:00")
    first = due_at(ending, THURSDAY, {}, None)
    assert first == THURSDAY + timedelta(hours=10)
    assert next_cycle_due(ending, first, 1, {}, None) is None  # past the end date
    assert next_cycle_due(start, THURSDAY, 2, {}, None) is None  # fired twice: done
    assert next_cycle_due(start, THURSDAY, 1, {}, None) == (THURSDAY + timedelta(days=1), 2)


def test_a_cycle_skips_the_occurrences_it_missed() -> None:
    """A start date in the past (or a worker that was down) fires once, not in a burst."""
    from xietong.kernel.workflow._durations import next_cycle_due

    daily = Timer("cycle", "R5/2025-06-01T09:00:00+08:00/P1D")
    first_due = datetime(2025, 6, 1, 9, 0, tzinfo=CST)
    now = datetime(2025, 6, 3, 12, 0, tzinfo=CST)  # fired late, on the 3rd at noon
    # the 2nd and 3rd occurrences are past: skipped, counted; next is the 4th, on the 4th
    assert next_cycle_due(daily, first_due, 1, {}, None, now=now) == (
        datetime(2025, 6, 4, 9, 0, tzinfo=CST),
        4,
    )
    # everything missed: done
    late = datetime(2025, 6, 9, 12, 0, tzinfo=CST)
    assert next_cycle_due(daily, first_due, 1, {}, None, now=late) is None


def test_a_cycle_of_zero_length_is_refused_and_a_long_gap_is_skipped_at_once() -> None:
    from xietong.kernel.errors import InvalidInput
    from xietong.kernel.workflow._durations import next_cycle_due, parse_cycle

    for text in ("R/PT0S", "R3/P0D", "R/2025-01-01T00:00:00+08:00/PT0S"):
        with pytest.raises(InvalidInput) as refused:
            parse_cycle(text)
        assert refused.value.code == "invalid_timer"
    # a start six years back with a one-second interval: skipped in one step, not 2e8
    every_second = Timer("cycle", "R/2020-01-01T00:00:00+08:00/PT1S")
    start = datetime(2020, 1, 1, tzinfo=CST)
    now = datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=CST)
    due, number = next_cycle_due(every_second, start, 1, {}, None, now=now)
    assert due == datetime(2026, 1, 1, 0, 0, 1, tzinfo=CST)
    assert number == int((due - start).total_seconds()) + 1


def test_a_boundary_cycle_whose_worker_was_down_does_not_fire_in_a_burst(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    bed.deploy(_reminding(Timer("cycle", "R/PT1H")))
    started = bed.start("cyc_0")
    frozen.advance(timedelta(hours=5, minutes=30))  # four firings missed meanwhile
    _run_jobs(bed)
    _run_jobs(bed)
    assert _fired(bed, started.id) == 1
    frozen.advance(timedelta(minutes=31))  # the schedule goes on: 6:00 after the start
    _run_jobs(bed)
    assert _fired(bed, started.id) == 2


def test_a_task_reopened_by_withdraw_rearms_its_boundary_timer(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    from xietong.kernel.workflow import returns

    guarded = graph(
        "rearm",
        [
            node("start", "start"),
            task("a", "rev1"),
            node("sla", "timer", timer=Timer("duration", "PT4H"), attached_to="a"),
            task("b", "rev2"),
            task("escalate", "head"),
            node("end", "end"),
            node("end2", "end"),
        ],
        [("start", "a"), ("a", "b"), ("b", "end"), ("sla", "escalate"), ("escalate", "end2")],
    )
    bed.deploy(guarded)
    started = bed.start("rearm")
    a = bed.open_task(started.id, "a")
    operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    assert bed.count(ScheduledJob) == 0  # leaving a dropped its timer
    returns.withdraw(bed.ctx, bed.actor("rev1"), a.id)
    assert bed.waiting_nodes(started.id) == ["a"]
    assert bed.count(ScheduledJob) == 1
    frozen.advance(timedelta(hours=4, seconds=1))
    _run_jobs(bed)
    assert bed.waiting_nodes(started.id) == ["escalate"]


def test_a_task_reopened_by_withdraw_keeps_its_time_out(
    bed: Flowbed, frozen: clock.FrozenClock
) -> None:
    from xietong.kernel.workflow import returns

    bed.deploy(_timeout_process("approve"))
    started = bed.start("to_approve")
    a = bed.open_task(started.id, "a")
    operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    returns.withdraw(bed.ctx, bed.actor("rev1"), a.id)
    frozen.set(datetime(2025, 6, 16, 10, 5, tzinfo=CST))  # the original deadline
    _run_jobs(bed)
    done = next(t for t in bed.tasks(started.id, None) if t.id == a.id)
    assert (done.status, done.outcome) == ("completed", "approve")
