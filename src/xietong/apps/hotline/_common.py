"""What every hotline command shares: actions, loading a ticket, the timeline, SLAs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.hotline.models import Step, Ticket
from xietong.apps.hotline.vocab import SLA_HOURS, STATUS_NAMES, WARN_SHARE
from xietong.kernel import clock
from xietong.kernel.access import Actor
from xietong.kernel.access import Resource as Guarded
from xietong.kernel.calendar import WorkCalendar
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department

MODULE = "hotline"
SUBMIT = "hotline.ticket.submit"
INTAKE = "hotline.ticket.intake"
READ = "hotline.ticket.read"
DISPATCH = "hotline.dispatch"
HANDLE = "hotline.ticket.handle"
EXTENSION_DECIDE = "hotline.extension.decide"
FOLLOW_UP = "hotline.follow_up"
RATE = "hotline.ticket.rate"
ROUTE_READ = "hotline.route.read"
ROUTE_MANAGE = "hotline.route.manage"
KNOWLEDGE_READ = "hotline.knowledge.read"
KNOWLEDGE_MANAGE = "hotline.knowledge.manage"
STATS = "hotline.stats.read"
TRAINING_EXPORT = "hotline.training.export"


def guarded(ticket: Ticket) -> Guarded:
    return Guarded(kind="hotline.ticket", department_id=ticket.department_id, id=ticket.number)


def load_ticket(session: Session, number: str, *, lock: bool = False) -> Ticket:
    query = select(Ticket).where(Ticket.number == (number or "").strip())
    if lock:
        query = query.with_for_update()
    ticket = session.scalar(query)
    if ticket is None:
        raise NotFound.of("工单", "Ticket", number)
    return ticket


def department_by_code(session: Session, code: str) -> Department:
    dept = session.scalar(select(Department).where(Department.code == (code or "").strip()))
    if dept is None or not dept.active:
        raise InvalidInput(
            f"部门不存在：{code}", f"No such department: {code}", code="unknown_department"
        )
    return dept


def department_code(session: Session, department_id: int | None) -> str:
    if department_id is None:
        return ""
    dept = session.get(Department, department_id)
    return dept.code if dept else ""


def require_status(ticket: Ticket, *allowed: str, action_zh: str, action_en: str) -> None:
    if ticket.status in allowed:
        return
    zh, en = STATUS_NAMES.get(ticket.status, (ticket.status, ticket.status))
    raise Conflict(
        f"工单{ticket.number}当前为“{zh}”，不能{action_zh}",
        f"Ticket {ticket.number} is {en.lower()}: cannot {action_en}",
        code="invalid_status",
        details={"status": ticket.status},
    )


def text_field(
    value: Any, zh: str, en: str, max_len: int, *, code: str, required: bool = True
) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise InvalidInput(f"请填写{zh}", f"{en} is required", code=code)
    if len(text) > max_len:
        raise InvalidInput(
            f"{zh}过长（最多 {max_len} 个字符）",
            f"{en} is too long (at most {max_len} characters)",
            code=code,
            details={"max": max_len},
        )
    return text


def add_step(
    session: Session,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    note: str = "",
    **details: Any,
) -> None:
    session.add(
        Step(
            ticket_id=ticket.id,
            kind=kind,
            actor=actor.display_name or actor.name,
            note=note,
            details=details,
            at=clock.now(),
        )
    )


def touch(ticket: Ticket, now: datetime | None = None) -> None:
    ticket.updated_at = now or clock.now()
    ticket.version += 1


def calendar(ctx: Context) -> WorkCalendar:
    if ctx.calendar is None:
        ctx.calendar = WorkCalendar(ctx.db)
    return ctx.calendar


def start_sla(ctx: Context, ticket: Ticket, start: datetime) -> None:
    """The reply deadline in office hours from ``start`` (each dispatch restarts it)."""
    hours = SLA_HOURS[ticket.type]
    cal = calendar(ctx)
    due = cal.add_working_hours(start, hours, ticket.district_code)
    warn = cal.add_working_hours(start, hours * WARN_SHARE, ticket.district_code)
    ticket.sla_started_at = start
    ticket.due_at, ticket.warn_at = due.at, warn.at
    ticket.due_estimated = due.estimated
    ticket.warned_at = ticket.breached_at = None


def clear_sla(ticket: Ticket) -> None:
    ticket.sla_started_at = ticket.due_at = ticket.warn_at = None
    ticket.warned_at = ticket.breached_at = None
    ticket.due_estimated = False


def extend_sla(ctx: Context, ticket: Ticket, hours: int) -> None:
    if ticket.due_at is None:
        return
    cal = calendar(ctx)
    due = cal.add_working_hours(ticket.due_at, hours, ticket.district_code)
    warn = cal.add_working_hours(
        ticket.due_at, max(hours - SLA_HOURS[ticket.type] * (1 - WARN_SHARE), 0)
    )
    ticket.due_at, ticket.warn_at = due.at, warn.at
    ticket.due_estimated = ticket.due_estimated or due.estimated
    ticket.warned_at = ticket.breached_at = None
