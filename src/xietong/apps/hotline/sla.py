"""The SLA watch: warnings before a reply deadline, and breaches after it.

A worker job (``periodic_jobs``) that finds open tickets whose warning moment or
deadline has passed and marks them — once each: ``warned_at`` / ``breached_at`` are set
in the same transaction as the audit leaf and the event, and the query skips rows that
have them, so a job that dies half-way or runs in two workers does the rest next time
without repeating what is done.
"""

from __future__ import annotations

from sqlalchemy import select

from xietong.apps.hotline._common import MODULE, add_step, department_code
from xietong.apps.hotline.events import SlaBreached, SlaWarning
from xietong.apps.hotline.models import Ticket
from xietong.apps.hotline.vocab import OPEN_STATUSES
from xietong.kernel import clock
from xietong.kernel.access import WORKER
from xietong.kernel.context import Context
from xietong.kernel.uow import UnitOfWork

BATCH = 200
INTERVAL_SECONDS = 60.0


def check_sla(ctx: Context) -> int:
    """Mark due warnings and breaches; returns how many tickets were marked."""
    marked = 0
    for kind in ("breach", "warning"):
        while True:
            done = _batch(ctx, kind)
            marked += done
            if done < BATCH:
                break
    return marked


def _batch(ctx: Context, kind: str) -> int:
    now = clock.now()
    with UnitOfWork(ctx, WORKER) as uow:
        session = uow.session
        query = select(Ticket).where(Ticket.status.in_(tuple(OPEN_STATUSES)))
        if kind == "breach":
            query = query.where(Ticket.breached_at.is_(None), Ticket.due_at <= now)
        else:
            query = query.where(
                Ticket.warned_at.is_(None), Ticket.warn_at <= now, Ticket.due_at > now
            )
        rows = session.scalars(query.order_by(Ticket.id).limit(BATCH).with_for_update()).all()
        if not rows:
            return 0
        for ticket in rows:
            dept = department_code(session, ticket.department_id)
            due = ticket.due_at.isoformat() if ticket.due_at else ""
            if kind == "breach":
                ticket.breached_at = now
                ticket.warned_at = ticket.warned_at or now
                add_step(session, ticket, WORKER, "sla_breached", "", due_at=due)
                uow.emit(SlaBreached(ticket.number, ticket.status, dept, due), MODULE)
            else:
                ticket.warned_at = now
                add_step(session, ticket, WORKER, "sla_warning", "", due_at=due)
                uow.emit(SlaWarning(ticket.number, ticket.status, dept, due), MODULE)
        uow.record(
            f"hotline.sla.{kind}",
            "hotline.sla",
            {"tickets": [ticket.number for ticket in rows]},
        )
        uow.commit()
        return len(rows)
