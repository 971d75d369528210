"""Scheduled jobs: durable timers any worker may run (workflow timers, task warnings).

A module schedules a job in the same transaction as the change that needs it::

    schedule_job(uow.session, "workflow.timer", due_at=deadline, key=f"token:{token.id}",
                 payload={"token": token.id})

and registers the code that runs it, once, at import time of its module::

    register_job_handler("workflow.timer", fire_timer)   # fire_timer(ctx, job) -> None

Workers claim due jobs with a lease (``claim.claim``). A handler may commit its own
transactions; a worker that dies after the handler's commit but before marking the job
done runs it again, so handlers are idempotent — or call ``complete_job(session, job)``
inside their own transaction, which makes the job's completion part of their change.
A job that raises is retried with exponential backoff up to ``max_attempts``, then
``failed`` (kept, with ``last_error``, for an operator to inspect and reschedule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.bus import claim
from xietong.kernel.bus.models import ScheduledJob
from xietong.kernel.context import Context

log = logging.getLogger(__name__)

JobHandler = Callable[[Context, ScheduledJob], None]
_HANDLERS: dict[str, JobHandler] = {}

JOB_LEASE = timedelta(minutes=5)


def register_job_handler(kind: str, handler: JobHandler) -> None:
    existing = _HANDLERS.get(kind)
    if existing is not None and existing is not handler:
        raise ValueError(f"job kind {kind!r} already has a handler")
    _HANDLERS[kind] = handler


def job_handlers() -> dict[str, JobHandler]:
    return dict(_HANDLERS)


def schedule_job(
    session: Session,
    kind: str,
    *,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    max_attempts: int = 5,
) -> None:
    """Add a job, or with ``key`` move the (kind, key) job to a new time and payload.

    Moving a job that a worker is running makes it pending again and clears its owner,
    so the running worker's completion (fenced on the owner) no longer counts.
    """
    now = clock.now()
    values: dict[str, Any] = {
        "due_at": due_at,
        "payload": payload or {},
        "status": "pending",
        "attempts": 0,
        "max_attempts": max_attempts,
        "locked_by": None,
        "locked_until": None,
        "last_error": None,
        "finished_at": None,
    }
    if key is None:
        session.add(ScheduledJob(kind=kind, key=None, created_at=now, **values))
        return
    # An upsert, not select-then-insert: two transactions scheduling the same key at
    # once on PostgreSQL must not fail on the unique (kind, key).
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ScheduledJob).values(kind=kind, key=key, created_at=now, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["kind", "key"], set_=values))


def cancel_job(session: Session, kind: str, key: str) -> bool:
    """Remove a not-yet-finished job (e.g. the task completed before its warning)."""
    result = session.execute(
        delete(ScheduledJob)
        .where(ScheduledJob.kind == kind, ScheduledJob.key == key)
        .where(ScheduledJob.status.in_(["pending", "running"]))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def complete_job(session: Session, job: ScheduledJob) -> bool:
    """Mark ``job`` done inside the caller's transaction (fenced on the claim's owner)."""
    return claim.finish(
        session,
        ScheduledJob,
        job.id,
        owner=job.locked_by or "",
        claimed="running",
        values={"status": "done", "finished_at": clock.now(), "last_error": None},
    )


def run_due_jobs(ctx: Context, owner: str, batch: int = 20) -> int:
    """Claim due jobs and run their handlers; returns how many were attempted."""
    now = clock.now()
    jobs = claim.claim(
        ctx,
        ScheduledJob,
        where=claim.ready(
            ScheduledJob, pending="pending", claimed="running", due=ScheduledJob.due_at, now=now
        ),
        order_by=[ScheduledJob.due_at, ScheduledJob.id],
        limit=batch,
        owner=owner,
        lease=JOB_LEASE,
        claimed="running",
    )
    for job in jobs:
        _run(ctx, job, owner)
    return len(jobs)


def _run(ctx: Context, job: ScheduledJob, owner: str) -> None:
    handler = _HANDLERS.get(job.kind)
    error: str | None = None
    if handler is None:
        error = f"no handler registered for job kind {job.kind!r}"
    else:
        try:
            handler(ctx, job)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = repr(exc)
    now = clock.now()
    if error is None:
        values: dict[str, Any] = {"status": "done", "finished_at": now, "last_error": None}
    elif job.attempts >= job.max_attempts:
        values = {"status": "failed", "finished_at": now, "last_error": error[:2000]}
    else:
        values = {
            "status": "pending",
            "due_at": now + claim.backoff(job.attempts),
            "last_error": error[:2000],
        }
    with ctx.db.write_session() as session, session.begin():
        claim.finish(session, ScheduledJob, job.id, owner=owner, claimed="running", values=values)


def reschedule_failed(session: Session, job_id: int, due_at: datetime) -> bool:
    """Give a failed job a fresh set of attempts (an operator's repair)."""
    result = session.execute(
        update(ScheduledJob)
        .where(ScheduledJob.id == job_id, ScheduledJob.status == "failed")
        .values(status="pending", due_at=due_at, attempts=0, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
