"""Timers and 超时自动处理, run by the bus's scheduled jobs.

The engine schedules a job when a token reaches a timer (``timer:<token>``), an
activity with a boundary timer (``boundary:<token>:<event>``) or a user task with a
time-out (``timeout:<token>``), and deletes it when the token leaves first. A worker runs
the due job here: the handler does its work and marks the job done in the same
transaction (``complete_job``), so a worker dying in between cannot fire a timer twice;
a job for a token that has moved on is a no-op.

A timer that comes due while its instance is suspended is held on the token and fires
when the instance is resumed (激活).
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.access import WORKER
from xietong.kernel.bus import ScheduledJob, complete_job, register_job_handler, schedule_job
from xietong.kernel.context import Context
from xietong.kernel.errors import NotFound, RateLimited
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime, tokens
from xietong.kernel.workflow._durations import next_cycle_due
from xietong.kernel.workflow._ops import finish_task
from xietong.kernel.workflow._run import JOB_TIMEOUT, JOB_TIMER, InstanceState, Run
from xietong.kernel.workflow.operations import remind
from xietong.kernel.workflow.store import WfTask, WfToken

AUTO_OPINION = {"approve": "超时自动同意", "reject": "超时自动不同意"}


def load_waiting(run: Run, payload: dict[str, Any]) -> tuple[InstanceState, WfToken] | None:
    try:
        state = run.instance(int(payload["instance"]))
    except NotFound:
        return None
    token = run.session.scalars(
        select(WfToken)
        .where(WfToken.id == int(payload["token"]))
        .execution_options(populate_existing=True)
    ).first()
    if token is None or token.status != "waiting" or token.node_id != payload["node"]:
        return None  # the token moved on before the job ran
    if state.row.status not in ("running", "suspended"):
        return None
    return state, token


def _handle(ctx: Context, job: ScheduledJob, kind: str) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        run = Run(uow)
        loaded = load_waiting(run, job.payload)
        if loaded is None:
            return  # nothing to do: the runner marks the job done
        state, token = loaded
        entry = {"kind": kind, "boundary": job.payload.get("boundary")}
        if state.row.status == "suspended":
            held = [*token.state.get("held", []), entry]
            token.state = {**token.state, "held": held}
            action = "workflow.timer.hold"
        else:
            fire(run, state, token, entry)
            action = f"workflow.{kind}.fire"
        uow.record(action, f"process_instance:{state.row.id}", dict(job.payload))
        complete_job(uow.session, job)
        _repeat(run, state, token, job)
        run.finish()
        uow.commit()


def _repeat(run: Run, state: InstanceState, token: WfToken, job: ScheduledJob) -> None:
    """A non-interrupting boundary cycle (e.g. a reminder ``R3/PT1H``) is scheduled
    again, under the same key, while its activity still waits: the job row goes back to
    pending at the next firing (the runner's own completion of this run no longer
    matches it), and leaving the activity deletes it as before."""
    boundary_id = job.payload.get("boundary")
    if boundary_id is None or token.status != "waiting" or token.node_id != job.payload["node"]:
        return
    boundary = state.graph.nodes.get(boundary_id)
    if boundary is None or boundary.cancel_activity or boundary.timer is None:
        return
    fired = int(job.payload.get("fired", 1))
    following = next_cycle_due(
        boundary.timer,
        job.due_at,
        fired,
        run.variables(state),
        run.ctx.calendar,
        now=clock.now(),
    )
    if following is None:
        return
    due, number = following
    schedule_job(
        run.session,
        JOB_TIMER,
        due_at=due,
        key=job.key,
        payload={**job.payload, "fired": number},
    )


def fire_timer(ctx: Context, job: ScheduledJob) -> None:
    _handle(ctx, job, "timer")


def fire_timeout(ctx: Context, job: ScheduledJob) -> None:
    _handle(ctx, job, "timeout")


def fire(run: Run, state: InstanceState, token: WfToken, entry: dict[str, Any]) -> None:
    if entry["kind"] == "timeout":
        _timeout(run, state, token)
        return
    boundary_id = entry.get("boundary")
    if boundary_id is None:
        run.history(state, "timer.fired", node_id=token.node_id, token=token)
        runtime.drive(run, state, runtime.leave(run, state, token))
        return
    boundary = state.graph.nodes[boundary_id]
    if boundary.cancel_activity:
        # an interrupting boundary timer: the activity is abandoned, the token leaves
        # through the timer's own flow (SLA escalation)
        runtime.interrupt(run, state, token, "boundary_timer")
        token.node_id = boundary.id
        token.status = "active"
        token.state = {}
        moving = token
    else:
        moving = tokens.new_token(run, state, boundary.id, fork_id=token.fork_id)
    run.history(state, "timer.fired", node_id=boundary.id, token=moving)
    runtime.drive(run, state, runtime.leave(run, state, moving))


def _timeout(run: Run, state: InstanceState, token: WfToken) -> None:
    node = state.graph.nodes[token.node_id]
    if node.timeout is None:
        return
    action = node.timeout.action
    run.history(state, "task.timeout", node_id=node.id, token=token, details={"action": action})
    live = _live_tasks(run, token)
    if action == "remind":
        for task in live:
            # urged within the hour already: one reminder is enough
            with contextlib.suppress(RateLimited):
                remind(run, state, task, "任务已超时，请尽快办理")
        return
    # auto-approve / auto-reject as the system, task by task (a 顺签 opens the next
    # signer after each), until the node decides and the token moves on
    while token.status == "waiting" and token.node_id == node.id:
        live = [task for task in _live_tasks(run, token) if task.status != "pending"]
        if not live:
            break
        finish_task(run, state, live[0], action, opinion=AUTO_OPINION[action])


def _live_tasks(run: Run, token: WfToken) -> list[WfTask]:
    return list(
        run.session.scalars(
            select(WfTask)
            .where(
                WfTask.token_id == token.id,
                WfTask.status.in_(("open", "delegated", "pending")),
            )
            .order_by(WfTask.position, WfTask.id)
        )
    )


def fire_held(run: Run, state: InstanceState) -> None:
    """On 激活: fire what came due while the instance was suspended."""
    for token in tokens.alive_tokens(run, state.row.id):
        held = token.state.get("held")
        if not held:
            continue
        token.state = {key: value for key, value in token.state.items() if key != "held"}
        for entry in held:
            if token.status == "waiting":
                fire(run, state, token, entry)


register_job_handler(JOB_TIMER, fire_timer)
register_job_handler(JOB_TIMEOUT, fire_timeout)
