"""销号: closing a finished task with evidence, approved through the workflow engine.

The app deploys its own small process (``tasks_closure``: one review by the tree's
supervising office, 督办员, with 审批意见). A request writes the ``Closure`` row and
starts the process instance in the same unit of work, so there is never a request
without its approval or the other way round. The decision comes back as a
``workflow.task.completed`` event: the consumer closes the task (同意) or reopens it
(不同意), keeping the approver's opinion. A terminated instance reopens it too. The
consumer runs in the transaction that marks the event processed, so a redelivered
event changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks import attachments as attached
from xietong.apps.tasks import rights
from xietong.apps.tasks.analysis import Status
from xietong.apps.tasks.events import MODULE, ClosureRequested, TaskClosed, TaskReopened
from xietong.apps.tasks.models import Closure, Task
from xietong.apps.tasks.rules import check_attachments, check_text, derive_status
from xietong.apps.tasks.service import dept_code, emit_info, today
from xietong.apps.tasks.views import ClosureView
from xietong.kernel import audit, clock, files
from xietong.kernel.access import WORKER, Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.events import Event, to_cloudevent
from xietong.kernel.org.models import User
from xietong.kernel.outbox import row_values, write_events
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.definitions import deploy, graph_of
from xietong.kernel.workflow.store import WfDefinition, WfTask

PROCESS_KEY = "tasks_closure"
PROCESS = """\
key: tasks_closure
name: 任务销号审批
description: 督办部门审核任务完成情况与佐证材料，同意则销号，不同意则退回重办
steps:
  - id: review
    name: 督办部门审核销号
    task:
      roles: [supervisor]
      department: "${supervising_department}"
"""


def ensure_process(ctx: Context) -> int:
    """The id of the deployed closure process; deployed on first use (and by the demo)."""
    with ctx.db.read() as session:
        row = session.scalars(
            select(WfDefinition.id)
            .where(WfDefinition.key == PROCESS_KEY)
            .order_by(WfDefinition.version.desc())
            .limit(1)
        ).first()
        if row is not None:
            return row
    deploy(ctx, WORKER, PROCESS, "yaml")
    return ensure_process(ctx)


def request_closure(
    ctx: Context,
    actor: Actor,
    task_id: int,
    evidence: list[dict[str, Any]],
    note: str = "",
    *,
    uploads: Sequence[files.Incoming] = (),
) -> ClosureView:
    """Ask the supervising office to close a done task. Evidence is required: at least
    one file, sent with the request (``uploads``) or uploaded before and cited by id;
    links to documents elsewhere may accompany it but are not evidence on their own."""
    authorize(actor, rights.MANAGE)
    checked = check_attachments(evidence or [], len(uploads))
    if not checked.file_ids and not uploads:
        raise InvalidInput(
            "销号须上传佐证材料（至少一个文件）",
            "Closure needs evidence: upload at least one document",
            code="evidence_required",
        )
    attached.precheck(uploads)
    note = check_text(note, "销号说明", "Note", required=False, limit=4000)
    definition_id = ensure_process(ctx)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        definition = session.get_one(WfDefinition, definition_id)
        task = rights.load_visible(session, actor, task_id)
        rights.require_manage(session, actor, task)
        if task.status == Status.CLOSED:
            raise Conflict("任务已销号", "The task is already closed", code="task_closed")
        if task.status != Status.DONE:
            raise Conflict(
                f"任务尚未完成（进度 {task.progress:g}%），不能申请销号",
                f"The task is not done ({task.progress:g}%); closure needs it done",
                code="not_done",
            )
        pending = session.scalar(
            select(Closure.id).where(Closure.task_id == task.id, Closure.status == "pending")
        )
        if pending is not None:
            raise Conflict(
                "已有待审批的销号申请",
                "A closure request is already pending",
                code="closure_pending",
            )
        refs = attached.collect(ctx, uow, actor, checked, uploads)
        root = session.get_one(Task, task.root_id or task.id)
        office = root.supervising_department_id or root.department_id
        closure = Closure(
            task_id=task.id,
            evidence=refs,
            note=note,
            status="pending",
            requested_by=actor.label,
            requested_at=clock.now(),
        )
        session.add(closure)
        session.flush()
        run = Run(uow)
        state = runtime.start_instance(
            run,
            definition,
            graph_of(ctx.db, definition),
            variables={
                "task_id": task.id,
                "task_title": task.title,
                "supervising_department": dept_code(session, office),
            },
            business_key=f"task-closure:{closure.id}",
            # the approval is the supervising office's work: its 督办员 must be able to
            # open the instance from their todo list (the requester sees it as starter)
            department_id=office,
        )
        closure.instance_id = state.row.id
        uow.record(
            "tasks.closure.request",
            f"task:{task.id}",
            {"closure_id": closure.id, "instance_id": state.row.id, "evidence": refs},
        )
        uow.emit(ClosureRequested(*emit_info(session, task), closure.id, state.row.id), MODULE)
        run.finish()
        view = ClosureView.of(closure)
        uow.commit()
    return view


def _write(
    ctx: Context,
    session: Session,
    actor: str,
    action: str,
    task: Task,
    payload: dict[str, Any],
    event: Event,
) -> None:
    """An audit leaf and an outbox event inside the consumer's transaction."""
    moment = clock.now()
    cloud = to_cloudevent(event, event_id=clock.new_id(), time=moment, module=MODULE)
    write_events(session.connection(), [row_values(cloud, created_at=moment)])
    audit.append(session, [audit.Entry(actor, action, f"task:{task.id}", payload)], now=moment)
    ctx.outbox_notify()


def _decide(
    ctx: Context,
    session: Session,
    instance_id: int,
    approved: bool,
    opinion: str | None,
    decided_by: str,
) -> None:
    closure = session.scalar(
        select(Closure).where(Closure.instance_id == instance_id).with_for_update()
    )
    if closure is None or closure.status != "pending":
        return  # not ours, or already decided (the instance's other events)
    task = session.get(Task, closure.task_id)
    if task is None:
        return
    now = clock.now()
    closure.status = "approved" if approved else "rejected"
    closure.opinion = opinion
    closure.decided_by, closure.decided_at = decided_by, now
    payload = {"closure_id": closure.id, "opinion": opinion, "decided_by": decided_by}
    if approved:
        task.status = Status.CLOSED.value
        task.closed_at = now
        event: Event = TaskClosed(*emit_info(session, task), closure.id)
        action = "tasks.closure.approve"
    else:
        task.status = derive_status("in_progress", 0.0, task.planned_end, today(), True)
        task.finished_on = None
        event = TaskReopened(*emit_info(session, task), closure.id)
        action = "tasks.closure.reject"
    task.version += 1
    task.updated_at = now
    session.flush()
    _write(ctx, session, decided_by, action, task, payload, event)


def on_workflow_task_completed(ctx: Context, event: dict[str, Any], session: Session) -> None:
    data = event.get("data") or {}
    if data.get("process_key") != PROCESS_KEY:
        return
    wf_task = session.get(WfTask, data["task_id"])
    opinion = wf_task.opinion if wf_task is not None else None
    user_id = data.get("completed_by_user_id")
    username = session.scalar(select(User.username).where(User.id == user_id)) if user_id else None
    decided_by = f"user:{username}" if username else "worker:workflow"
    _decide(
        ctx,
        session,
        int(data["instance_id"]),
        data.get("outcome") == "approve",
        opinion,
        decided_by,
    )


def on_workflow_instance_terminated(ctx: Context, event: dict[str, Any], session: Session) -> None:
    data = event.get("data") or {}
    if data.get("process_key") != PROCESS_KEY:
        return
    reason = data.get("reason") or "流程已终止"
    _decide(ctx, session, int(data["instance_id"]), False, reason, "worker:workflow")


def closure_of(ctx: Context, actor: Actor, closure_id: int) -> ClosureView:
    authorize(actor, rights.READ)
    with ctx.db.read() as session:
        closure = session.get(Closure, closure_id)
        if closure is None:
            raise NotFound.of("销号申请", "Closure", closure_id)
        rights.load_visible(session, actor, closure.task_id)
        return ClosureView.of(closure)
