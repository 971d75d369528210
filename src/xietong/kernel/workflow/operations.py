"""Approval operations on one task: claim, complete (同意/不同意 + 审批意见), 转办, 委派 and
its return, 催办, 抄送.

Each is one unit of work: authorise, lock the instance, check the task's state and
version, change, one audit leaf, history rows, events — or raise before commit and
change nothing. The operations that move tokens backwards (退回, 驳回, 撤回, 拿回, 跳转)
are in ``returns``; 加签 / 减签 in ``signers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow._ops import (
    finish_task,
    holder,
    is_candidate,
    load_task,
    require_status,
    require_version,
)
from xietong.kernel.workflow._run import InstanceState, Run, check_variables
from xietong.kernel.workflow.events import MODULE, TaskAssigned, TaskCarbonCopied, TaskUrged
from xietong.kernel.workflow.store import WfCc, WfTask, WfToken
from xietong.kernel.workflow.views import CcView, TaskView

URGE_INTERVAL = timedelta(hours=1)
MAX_OPINION = 4000


def _opinion(opinion: str | None) -> str | None:
    if opinion is None:
        return None
    opinion = opinion.strip()
    if len(opinion) > MAX_OPINION:
        raise InvalidInput(
            f"审批意见不能超过 {MAX_OPINION} 字",
            f"An opinion may not exceed {MAX_OPINION} characters",
            code="opinion_too_long",
        )
    return opinion or None


def _outcome(outcome: str) -> str:
    if outcome not in task_rules.OUTCOMES:
        raise InvalidInput(
            f"审批结果须为 approve 或 reject：{outcome}",
            f"Outcome must be approve or reject: {outcome}",
            code="invalid_outcome",
        )
    return outcome


def claim(ctx: Context, actor: Actor, task_id: int) -> TaskView:
    """A candidate takes an unassigned task; it leaves the other candidates' lists."""
    authorize(actor, "workflow.task.work")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        if task.assignee_id is not None:
            raise Conflict("任务已被签收", "The task is already claimed", code="already_claimed")
        if not is_candidate(run.session, actor, task):
            raise Forbidden(
                "您不是该任务的候选人",
                "You are not a candidate for this task",
                code="not_candidate",
            )
        task.assignee_id = actor.id
        task.claimed_at = clock.now()
        _changed_hands(run, state, task, "claim")
        uow.record("workflow.task.claim", f"task:{task.id}", {"task_id": task.id})
        run.finish()
        uow.commit()
    return TaskView.of(task)


def complete(
    ctx: Context,
    actor: Actor,
    task_id: int,
    outcome: str = "approve",
    *,
    opinion: str | None = None,
    attachments: list[Any] | None = None,
    variables: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> TaskView:
    """同意 / 不同意 with 审批意见; when the node decides, the process moves on."""
    authorize(actor, "workflow.task.work")
    outcome = _outcome(outcome)
    opinion = _opinion(opinion)
    variables = check_variables(variables or {})
    if not isinstance(attachments or [], list):
        raise InvalidInput("附件须为列表", "Attachments must be a list", code="invalid_attachments")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        on_behalf = holder(run.session, actor, task)
        require_version(task, expected_version)
        decision = finish_task(
            run,
            state,
            task,
            outcome,
            opinion=opinion,
            attachments=attachments,
            variables=variables,
            on_behalf_of=on_behalf,
        )
        payload = {"task_id": task.id, "outcome": outcome, "node_outcome": decision}
        if on_behalf is not None:
            payload["on_behalf_of_user_id"] = on_behalf
        uow.record("workflow.task.complete", f"task:{task.id}", payload)
        run.finish()
        uow.commit()
    return TaskView.of(task)


def _user(run: Run, user_id: int) -> int:
    from xietong.kernel.org.models import User

    user = run.session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(
            f"用户不存在或已停用：{user_id}",
            f"User not found or inactive: {user_id}",
            code="user_not_found",
            details={"user_id": user_id},
        )
    return user.id


def _changed_hands(run: Run, state: InstanceState, task: WfTask, operation: str, **extra: Any):
    token = run.session.get(WfToken, task.token_id)
    run.history(
        state,
        f"task.{operation}",
        node_id=task.node_id,
        token=token,
        task_id=task.id,
        details={"assignee_id": task.assignee_id, **extra},
    )
    run.uow.emit(
        TaskAssigned(
            task.id, task.instance_id, task.process_key, task.node_id, task.assignee_id, operation
        ),
        module=MODULE,
    )


def _manages(actor: Actor, state: InstanceState) -> bool:
    resource = Resource(kind="process_instance", department_id=state.row.department_id)
    return can(actor, "workflow.instance.manage", resource)


def transfer(
    ctx: Context, actor: Actor, task_id: int, to_user_id: int, *, opinion: str | None = None
) -> TaskView:
    """转办: the task is someone else's from now on (the holder or a manager does it)."""
    authorize(actor, "workflow.task.work")
    opinion = _opinion(opinion)
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        if not _manages(actor, state):
            holder(run.session, actor, task)
        previous = task.assignee_id
        task.assignee_id = _user(run, to_user_id)
        if task.assignee_id == previous:
            raise InvalidInput(
                "不能转办给当前办理人", "Already assigned to that user", code="same_user"
            )
        task.previous_assignee_id = previous if previous is not None else run.user_id
        task.claimed_at = None
        _changed_hands(run, state, task, "transfer", from_user_id=previous, opinion=opinion)
        payload = {"task_id": task.id, "from_user_id": previous, "to_user_id": to_user_id}
        uow.record("workflow.task.transfer", f"task:{task.id}", payload)
        run.finish()
        uow.commit()
    return TaskView.of(task)


def delegate(
    ctx: Context, actor: Actor, task_id: int, to_user_id: int, *, opinion: str | None = None
) -> TaskView:
    """委派: lend the task; the delegate works it and ``resolve`` gives it back."""
    authorize(actor, "workflow.task.work")
    opinion = _opinion(opinion)
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        holder(run.session, actor, task, candidates=False)
        owner = task.assignee_id
        target = _user(run, to_user_id)
        if target == owner:
            raise InvalidInput("不能委派给自己", "Cannot delegate to oneself", code="same_user")
        task.owner_id = owner
        task.previous_assignee_id = owner
        task.assignee_id = target
        task.status = "delegated"
        task.claimed_at = None
        _changed_hands(run, state, task, "delegate", owner_id=owner, opinion=opinion)
        payload = {"task_id": task.id, "owner_id": owner, "to_user_id": target}
        uow.record("workflow.task.delegate", f"task:{task.id}", payload)
        run.finish()
        uow.commit()
    return TaskView.of(task)


def resolve(ctx: Context, actor: Actor, task_id: int, *, opinion: str | None = None) -> TaskView:
    """The delegate hands a 委派 task back to its owner, with their opinion."""
    authorize(actor, "workflow.task.work")
    opinion = _opinion(opinion)
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "delegated")
        on_behalf = holder(run.session, actor, task, candidates=False)
        run.on_behalf_of = on_behalf
        delegate_id = task.assignee_id
        task.assignee_id = task.owner_id
        task.owner_id = None
        # Back with its owner: nothing is left to reclaim (拿回) from the delegate.
        task.previous_assignee_id = None
        task.status = "open"
        _changed_hands(run, state, task, "resolve", delegate_id=delegate_id, opinion=opinion)
        uow.record("workflow.task.resolve", f"task:{task.id}", {"task_id": task.id})
        run.finish()
        uow.commit()
    return TaskView.of(task)


def _took_part(run: Run, actor: Actor, state: InstanceState) -> bool:
    if actor.kind != "user" or actor.id is None:
        return False
    if state.row.started_by_user_id == actor.id:
        return True
    found = run.session.scalar(
        select(WfTask.id)
        .where(
            WfTask.instance_id == state.row.id,
            (WfTask.assignee_id == actor.id) | (WfTask.completed_by_user_id == actor.id),
        )
        .limit(1)
    )
    return found is not None


def urge(ctx: Context, actor: Actor, task_id: int, *, message: str = "") -> TaskView:
    """催办: remind the holder (an event the notifier delivers); once an hour per task."""
    authorize(actor, "workflow.task.urge")
    message = (message or "").strip()[:500]
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open", "delegated", "pending")
        if not (_manages(actor, state) or _took_part(run, actor, state)):
            raise Forbidden(
                "只有流程参与人或管理人可以催办",
                "Only participants or managers of the process may urge",
                code="not_participant",
            )
        remind(run, state, task, message)
        uow.record("workflow.task.urge", f"task:{task.id}", {"task_id": task.id})
        run.finish()
        uow.commit()
    return TaskView.of(task)


def remind(run: Run, state: InstanceState, task: WfTask, message: str) -> None:
    """Record and announce a reminder (also used by the time-out handler)."""
    now = clock.now()
    if task.last_urged_at is not None and now - task.last_urged_at < URGE_INTERVAL:
        raise RateLimited(
            "一小时内已催办过该任务",
            "This task was urged less than an hour ago",
            code="urge_too_soon",
            details={"last_urged_at": task.last_urged_at.isoformat()},
        )
    task.last_urged_at = now
    token = run.session.get(WfToken, task.token_id)
    run.history(
        state,
        "task.urged",
        node_id=task.node_id,
        token=token,
        task_id=task.id,
        details={"message": message},
    )
    run.uow.emit(
        TaskUrged(
            task.id,
            task.instance_id,
            task.process_key,
            task.node_id,
            task.assignee_id,
            run.actor.label,
            message,
        ),
        module=MODULE,
    )


def cc(
    ctx: Context,
    actor: Actor,
    instance_id: int,
    user_ids: Iterable[int],
    *,
    task_id: int | None = None,
    note: str | None = None,
) -> list[CcView]:
    """抄送: participants and managers copy an instance to users (read status kept)."""
    authorize(actor, "workflow.task.urge")
    targets = list(dict.fromkeys(user_ids))
    if not targets:
        raise InvalidInput("请选择抄送人", "Choose at least one recipient", code="no_recipients")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state = run.instance(instance_id)
        if not (_manages(actor, state) or _took_part(run, actor, state)):
            raise Forbidden(
                "只有流程参与人或管理人可以抄送",
                "Only participants or managers of the process may send copies",
                code="not_participant",
            )
        if task_id is not None:
            owner = run.session.scalar(select(WfTask.instance_id).where(WfTask.id == task_id))
            if owner != instance_id:
                raise NotFound.of("任务", "Task", task_id)
        rows = []
        for user_id in targets:
            row = WfCc(
                instance_id=instance_id,
                task_id=task_id,
                user_id=_user(run, user_id),
                sent_by=actor.label,
                note=_opinion(note),
                created_at=clock.now(),
            )
            run.session.add(row)
            rows.append(row)
        run.session.flush()
        for row in rows:
            uow.emit(TaskCarbonCopied(row.id, instance_id, row.user_id), module=MODULE)
        run.history(state, "cc", task_id=task_id, activity="抄送", details={"user_ids": targets})
        uow.record(
            "workflow.cc", f"process_instance:{instance_id}", {"user_ids": targets, "task": task_id}
        )
        run.finish()
        uow.commit()
    return [CcView.of(row) for row in rows]


def mark_cc_read(ctx: Context, actor: Actor, cc_id: int) -> CcView:
    authorize(actor, "workflow.task.read")
    with UnitOfWork(ctx, actor) as uow:
        row = uow.session.get(WfCc, cc_id)
        if row is None or actor.kind != "user" or row.user_id != actor.id:
            raise NotFound.of("抄送", "Carbon copy", cc_id)
        if row.read_at is None:
            row.read_at = clock.now()
        uow.record("workflow.cc.read", f"cc:{row.id}", {"cc_id": row.id})
        uow.commit()
    return CcView.of(row)
