"""督办: supervision notices, urges, escalation to the supervising office, answers.

A notice goes to the department leading a task, with a date to answer by (in working
days). The supervising office may urge (催办) any number of times; a notice left
unanswered past its date is escalated to the tree's supervising office — by a person,
or by the warning job (``monitor``), which also issues a notice by itself when a task
turns red. The department answers (反馈) and the notice is settled. Every step is a
``SupervisionStep`` row, an audit leaf and a ``task.supervision.*`` event.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks import rights
from xietong.apps.tasks.events import (
    MODULE,
    SupervisionAnswered,
    SupervisionEscalated,
    SupervisionIssued,
    SupervisionUrged,
)
from xietong.apps.tasks.models import Supervision, SupervisionStep, Task
from xietong.apps.tasks.rules import check_text
from xietong.apps.tasks.service import dept_code, emit_info, today
from xietong.apps.tasks.views import SupervisionView
from xietong.kernel import clock
from xietong.kernel.access import Actor, Role, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.notify import notify, role_holders
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

RESPOND_DAYS = 2  # working days a department has to answer a notice
URGE_INTERVAL = timedelta(hours=1)


def office_of(session: Session, task: Task) -> int:
    """The tree's supervising office (its lead department when none was named)."""
    root = session.get_one(Task, task.root_id or task.id)
    return root.supervising_department_id or root.department_id


def respond_by(ctx: Context, session: Session, task: Task, start: date, days: int) -> date:
    assert ctx.calendar is not None
    region = session.get_one(Department, task.department_id).region_code
    return ctx.calendar.add_working_days(start, days, region).day


def issue(
    ctx: Context,
    uow: UnitOfWork,
    task: Task,
    message: str,
    *,
    automatic: bool,
    days: int = RESPOND_DAYS,
) -> Supervision:
    """Write a notice, its first step, the audit leaf and the event (no commit)."""
    session = uow.session
    now = clock.now()
    row = Supervision(
        task_id=task.id,
        to_department_id=task.department_id,
        message=message,
        status="open",
        respond_by=respond_by(ctx, session, task, today(), days),
        issued_by=uow.actor.label,
        issued_at=now,
        automatic=automatic,
        urges=0,
    )
    session.add(row)
    session.flush()
    _step(session, row, "notice", message, uow.actor.label)
    uow.record(
        "tasks.supervision.issue",
        f"task:{task.id}",
        {
            "supervision_id": row.id,
            "to": dept_code(session, task.department_id),
            "respond_by": row.respond_by.isoformat(),
            "automatic": automatic,
            "message": message,
        },
    )
    uow.emit(SupervisionIssued(*emit_info(session, task), row.id, automatic), MODULE)
    _tell_department(
        session, task, "tasks.supervision.issued", "督办通知", "Supervision notice", message
    )
    return row


def _tell_department(session: Session, task: Task, kind: str, zh: str, en: str, text: str) -> None:
    """The task's owner hears of it; a task without one, the lead department's heads."""
    users = (
        [task.owner_id] if task.owner_id else role_holders(session, task.department_id, [Role.HEAD])
    )
    notify(
        session,
        users,
        kind,
        title_zh=f"{zh}：{task.title}",
        title_en=f"{en}: {task.title}",
        body_zh=text,
        body_en=text,
        link=f"/tasks/{task.id}",
    )


def escalate_row(uow: UnitOfWork, row: Supervision, task: Task, reason: str) -> None:
    session = uow.session
    office = office_of(session, task)
    row.status = "escalated"
    row.escalated_to_id = office
    row.escalated_at = clock.now()
    _step(session, row, "escalate", reason, uow.actor.label)
    code = dept_code(session, office)
    uow.record(
        "tasks.supervision.escalate",
        f"task:{task.id}",
        {"supervision_id": row.id, "to": code, "reason": reason},
    )
    uow.emit(SupervisionEscalated(*emit_info(session, task), row.id, code), MODULE)
    notify(
        session,
        role_holders(session, office, [Role.SUPERVISOR, Role.HEAD]),
        "tasks.supervision.escalated",
        title_zh=f"督办升级：{task.title}",
        title_en=f"Supervision escalated: {task.title}",
        body_zh=reason,
        body_en=reason,
        link=f"/tasks/{task.id}",
    )


def end_row(uow: UnitOfWork, row: Supervision, task: Task, reason: str) -> None:
    row.status = "ended"
    _step(uow.session, row, "end", reason, uow.actor.label)
    uow.record(
        "tasks.supervision.end", f"task:{task.id}", {"supervision_id": row.id, "reason": reason}
    )


def _step(session: Session, row: Supervision, kind: str, text: str, by: str) -> None:
    session.add(SupervisionStep(supervision_id=row.id, kind=kind, text=text, by=by, at=clock.now()))


def _require_supervisor(session: Session, actor: Actor, task: Task) -> None:
    depts = {t.department_id for t in rights.chain(session, task)} | {office_of(session, task)}
    if not any(can(actor, rights.SUPERVISE, rights.guarded(d)) for d in depts):
        raise Forbidden(
            "只有督办部门或上级任务部门的督办员可以督办",
            "Only a supervisor of the supervising office or of a department above may supervise",
            code="not_supervisor",
        )


def _load(session: Session, actor: Actor, supervision_id: int) -> tuple[Supervision, Task]:
    row = session.get(Supervision, supervision_id)
    if row is None:
        raise NotFound.of("督办", "Supervision", supervision_id)
    task = rights.load_visible(session, actor, row.task_id)
    return row, task


def _message(text: str) -> str:
    return check_text(text, "督办内容", "Message", required=True, limit=2000)


def issue_notice(
    ctx: Context, actor: Actor, task_id: int, message: str, *, days: int = RESPOND_DAYS
) -> SupervisionView:
    """Send a supervision notice (督办通知) to the task's lead department."""
    authorize(actor, rights.SUPERVISE)
    message = _message(message)
    if not 1 <= days <= 30:
        raise InvalidInput(
            "答复期限须为 1–30 个工作日", "Answer within 1–30 working days", code="invalid_days"
        )
    with UnitOfWork(ctx, actor) as uow:
        task = rights.load_visible(uow.session, actor, task_id)
        _require_supervisor(uow.session, actor, task)
        if task.status in ("done", "closed"):
            raise Conflict("任务已完成，无需督办", "The task is finished", code="task_finished")
        row = issue(ctx, uow, task, message, automatic=False, days=days)
        view = SupervisionView.of(row)
        uow.commit()
    return view


def urge(ctx: Context, actor: Actor, supervision_id: int, message: str) -> SupervisionView:
    """催办: remind the department; at most once an hour per notice."""
    authorize(actor, rights.SUPERVISE)
    message = _message(message)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row, task = _load(session, actor, supervision_id)
        _require_supervisor(session, actor, task)
        if row.status not in ("open", "escalated"):
            raise Conflict("该督办已办结", "The supervision is settled", code="supervision_settled")
        now = clock.now()
        if row.last_urged_at is not None and now - row.last_urged_at < URGE_INTERVAL:
            raise Conflict(
                "催办过于频繁，请稍后再试", "Urged less than an hour ago", code="urged_recently"
            )
        row.urges += 1
        row.last_urged_at = now
        _step(session, row, "urge", message, actor.label)
        uow.record(
            "tasks.supervision.urge",
            f"task:{task.id}",
            {"supervision_id": row.id, "urges": row.urges, "message": message},
        )
        uow.emit(SupervisionUrged(*emit_info(session, task), row.id, row.urges), MODULE)
        _tell_department(session, task, "tasks.supervision.urged", "催办", "Reminder", message)
        session.flush()
        view = SupervisionView.of(row)
        uow.commit()
    return view


def escalate(ctx: Context, actor: Actor, supervision_id: int, reason: str) -> SupervisionView:
    """Escalate a notice to the tree's supervising office (升级督办)."""
    authorize(actor, rights.SUPERVISE)
    reason = _message(reason)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row, task = _load(session, actor, supervision_id)
        _require_supervisor(session, actor, task)
        if row.status != "open":
            raise Conflict(
                "只能升级未办结的督办", "Only an open notice can be escalated", code="not_open"
            )
        escalate_row(uow, row, task, reason)
        session.flush()
        view = SupervisionView.of(row)
        uow.commit()
    return view


def respond(ctx: Context, actor: Actor, supervision_id: int, text: str) -> SupervisionView:
    """The department answers the notice (督办反馈)."""
    authorize(actor, rights.READ)
    text = check_text(text, "反馈内容", "Answer", required=True, limit=4000)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row, task = _load(session, actor, supervision_id)
        rights.require_report(session, actor, task)
        if row.status not in ("open", "escalated"):
            raise Conflict("该督办已办结", "The supervision is settled", code="supervision_settled")
        row.status = "answered"
        row.response = text
        row.responded_at = clock.now()
        _step(session, row, "respond", text, actor.label)
        uow.record("tasks.supervision.respond", f"task:{task.id}", {"supervision_id": row.id})
        uow.emit(SupervisionAnswered(*emit_info(session, task), row.id), MODULE)
        session.flush()
        view = SupervisionView.of(row)
        uow.commit()
    return view


def steps(ctx: Context, actor: Actor, supervision_id: int) -> list[dict[str, object]]:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        _load(session, actor, supervision_id)
        return [
            {"kind": s.kind, "text": s.text, "by": s.by, "at": s.at}
            for s in session.scalars(
                select(SupervisionStep)
                .where(SupervisionStep.supervision_id == supervision_id)
                .order_by(SupervisionStep.id)
            )
        ]
