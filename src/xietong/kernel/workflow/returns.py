"""Operations that move work backwards: 退回, 驳回, 撤回, 拿回.

退回 (``send_back``) returns the flow to any earlier node this instance actually entered
(the history says so; a node never reached is refused). Which other work stops is
decided by forks, since every history row carries the fork its token was in:

- target in the same branch (same fork): only the sender's token is cancelled — with
  every signer task of a 会签 group on it; the other branches go on;
- target before the fork the sender is in (an enclosing scope): every token inside that
  fork is cancelled (the other branches' open tasks end with reason ``send_back``); the
  fork runs again when the flow reaches it;
- target inside a branch that already finished and was joined (e.g. the approver after
  the join sends back to 审核A): that branch re-runs alone; the join is re-armed with
  the other branches' arrivals, so it fires as soon as the re-run branch arrives;
- target in a sibling branch that is still running: refused (``node_in_other_branch``).

The re-created task goes to whoever handled the target node last.
"""

from __future__ import annotations

from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.bus import schedule_job
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime, tokens
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow._ops import flush_task, holder, load_task, require_status
from xietong.kernel.workflow._run import JOB_TIMEOUT, InstanceState, Run
from xietong.kernel.workflow.store import ALIVE_TOKEN, WfHistory, WfTask, WfToken
from xietong.kernel.workflow.views import TaskView

RETURNABLE = ("user_task", "service_task", "call")


def _other_branch(node_id: str) -> InvalidInput:
    return InvalidInput(
        f"节点 {node_id} 位于另一个仍在进行的分支，不能退回",
        f"Node {node_id} lies in another branch that is still running",
        code="node_in_other_branch",
        details={"node": node_id},
    )


def _last_entry(run: Run, instance_id: int, node_id: str) -> WfHistory | None:
    return run.session.scalars(
        select(WfHistory)
        .where(
            WfHistory.instance_id == instance_id,
            WfHistory.node_id == node_id,
            WfHistory.kind == "node.entered",
        )
        .order_by(WfHistory.id.desc())
        .limit(1)
    ).first()


def _last_handler(run: Run, instance_id: int, node_id: str) -> int | None:
    return run.session.scalar(
        select(WfTask.assignee_id)
        .where(
            WfTask.instance_id == instance_id,
            WfTask.node_id == node_id,
            WfTask.status == "completed",
        )
        .order_by(WfTask.id.desc())
        .limit(1)
    )


def _cancel_scope(
    run: Run, state: InstanceState, token: WfToken, scope: int | None, reason: str
) -> None:
    """Cancel ``token`` alone (``scope`` is its own branch), or every token inside the
    split that sits directly below ``scope`` in the token's chain of branches."""
    branches = tokens.branches_of(run, state.row.id)
    chain = branches.chain(token.fork_id)
    index = chain.index(scope)
    if index == 0:
        runtime.cancel_token(run, state, token, reason)
        return
    split = branches.split_of(chain[index - 1])
    for other in tokens.alive_tokens(run, state.row.id):
        if branches.in_split(other.fork_id, split):
            runtime.cancel_token(run, state, other, reason)


def return_to(run: Run, state: InstanceState, token: WfToken, node_id: str, reason: str) -> WfToken:
    """Cancel what the semantics above say and start a token at ``node_id``."""
    node = state.graph.nodes.get(node_id)
    if node is None or node.kind not in RETURNABLE:
        raise InvalidInput(
            f"不能退回到节点 {node_id}",
            f"Cannot send back to node {node_id}",
            code="not_returnable",
            details={"node": node_id},
        )
    entry = _last_entry(run, state.row.id, node_id)
    if entry is None:
        raise InvalidInput(
            f"流程尚未经过节点 {node_id}",
            f"The instance never reached node {node_id}",
            code="node_not_reached",
            details={"node": node_id},
        )
    chain = tokens.branches_of(run, state.row.id).chain(token.fork_id)
    handler = _last_handler(run, state.row.id, node_id) if node.multi is None else None
    if entry.fork_id in chain:
        _cancel_scope(run, state, token, entry.fork_id, reason)
    else:
        _rearm_join(run, state, token, entry, chain, reason)
    fresh = tokens.new_token(run, state, node_id, fork_id=entry.fork_id)
    if handler is not None:
        fresh.state = {"return_to": handler}
    return fresh


def _rearm_join(
    run: Run,
    state: InstanceState,
    token: WfToken,
    entry: WfHistory,
    chain: list[int | None],
    reason: str,
) -> None:
    """The target's branch finished at a join: re-arm that join with the other arrivals."""
    branch = run.session.get(WfToken, entry.token_id) if entry.token_id else None
    if branch is None or branch.status != "done" or branch.fork_id != entry.fork_id:
        raise _other_branch(entry.node_id or "")
    out_id = (branch.state or {}).get("joined_into")
    out = run.session.get(WfToken, out_id) if out_id else None
    if out is None or out.fork_id not in chain:
        raise _other_branch(entry.node_id or "")
    siblings = [
        t
        for t in run.session.scalars(
            select(WfToken).where(
                WfToken.instance_id == state.row.id,
                WfToken.node_id == branch.node_id,
                WfToken.status == "done",
            )
        )
        if (t.state or {}).get("joined_into") == out_id and t.id != branch.id
    ]
    _cancel_scope(run, state, token, out.fork_id, reason)
    for sibling in siblings:
        tokens.new_token(
            run,
            state,
            branch.node_id,
            fork_id=sibling.fork_id,
            via=sibling.arrived_via,
            status="waiting",
        )


def _close(run: Run, task: WfTask, outcome: str, opinion: str | None, on_behalf: int | None):
    task.status = "completed"
    task.outcome = outcome
    task.opinion = opinion
    task.completed_at = clock.now()
    task.completed_by = run.actor.label
    task.completed_by_user_id = run.user_id
    task.on_behalf_of_user_id = on_behalf
    if task.assignee_id is None:
        task.assignee_id = run.user_id
    flush_task(run)


def _send(
    ctx: Context,
    actor: Actor,
    task_id: int,
    target: str | None,
    opinion: str | None,
    kind: str,
) -> TaskView:
    authorize(actor, "workflow.task.work")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        on_behalf = holder(run.session, actor, task)
        if target is None:
            target = _applicant_node(run, state)
        token = run.session.get(WfToken, task.token_id)
        assert token is not None
        outcome = "send_back" if kind == "send_back" else "reject"
        _close(run, task, outcome, opinion, on_behalf)
        run.on_behalf_of = on_behalf
        run.history(
            state,
            kind,
            node_id=task.node_id,
            token=token,
            task_id=task.id,
            outcome=outcome,
            opinion=opinion,
            details={"to": target},
        )
        run.on_behalf_of = None
        fresh = return_to(run, state, token, target, kind)
        run.set_variables(state, {f"{task.node_id}_outcome": outcome, "outcome": outcome})
        runtime.drive(run, state, [fresh])
        uow.record(f"workflow.task.{kind}", f"task:{task.id}", {"task_id": task.id, "to": target})
        run.finish()
        uow.commit()
    return TaskView.of(task)


def send_back(
    ctx: Context, actor: Actor, task_id: int, node_id: str, *, opinion: str | None = None
) -> TaskView:
    """退回 to ``node_id``, an earlier node of this instance (see the module docs)."""
    return _send(ctx, actor, task_id, node_id, opinion, "send_back")


def reject_to_applicant(
    ctx: Context, actor: Actor, task_id: int, *, opinion: str | None = None
) -> TaskView:
    """驳回: back to the instance's first user task (the applicant's), to redo from there."""
    return _send(ctx, actor, task_id, None, opinion, "reject_to_applicant")


def _applicant_node(run: Run, state: InstanceState) -> str:
    for node_id in run.session.scalars(
        select(WfHistory.node_id)
        .where(WfHistory.instance_id == state.row.id, WfHistory.kind == "node.entered")
        .order_by(WfHistory.id)
    ):
        node = state.graph.nodes.get(node_id or "")
        if node is not None and node.kind == "user_task":
            return node.id
    raise InvalidInput(
        "流程没有申请人节点可驳回", "The instance has no applicant task", code="no_applicant_task"
    )


def _already_started() -> Conflict:
    return Conflict(
        "下一步已开始办理，不能撤回",
        "The next step has already started; it cannot be withdrawn",
        code="already_started",
    )


def withdraw(ctx: Context, actor: Actor, task_id: int) -> TaskView:
    """撤回: whoever completed ``task_id`` takes it back while what followed is untouched."""
    authorize(actor, "workflow.task.work")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "completed")
        if actor.kind != "user" or actor.id not in (
            task.completed_by_user_id,
            task.on_behalf_of_user_id,
        ):
            raise Forbidden("只有办理人可以撤回", "Only the sender may withdraw", code="not_sender")
        token = run.session.get(WfToken, task.token_id)
        assert token is not None
        if token.status == "waiting" and token.node_id == task.node_id:
            _reopen_in_group(run, task)  # the group has not decided yet
        else:
            _undo_move(run, state, task, token)
        run.history(state, "withdraw", node_id=task.node_id, token=token, task_id=task.id)
        uow.record("workflow.task.withdraw", f"task:{task.id}", {"task_id": task.id})
        run.finish()
        uow.commit()
    return TaskView.of(task)


def _untouched(task: WfTask) -> bool:
    return task.status in ("open", "pending") and task.claimed_at is None


def _reopen_in_group(run: Run, task: WfTask) -> None:
    """Undo a completion that did not decide its group: what it opened (the next 顺签
    signer, an "after" signer) goes back to waiting, if nobody has started on it."""
    opened = [
        other
        for other in task_rules.group_tasks(run, task.group_id)
        if other.previous_task_id == task.id and other.id != task.id
    ]
    if not all(_untouched(other) for other in opened):
        raise _already_started()
    for other in opened:
        other.status = "pending"
    _reopen(task)


def _reopen(task: WfTask) -> None:
    task.status = "open"
    task.outcome = task.opinion = task.completed_at = task.completed_by = None
    task.completed_by_user_id = task.on_behalf_of_user_id = None
    task.counts = task.kind != "before"


def _undo_move(run: Run, state: InstanceState, task: WfTask, token: WfToken) -> None:
    moved = list(run.session.scalars(select(WfToken).where(WfToken.origin_task_id == task.id)))
    if not moved:
        raise _already_started()
    undo: dict[int, WfToken] = {}  # live tokens that stand where this completion led
    joins: list[tuple[WfToken, WfToken]] = []  # (an arrival this task made, the join's out)
    for t in moved:
        node = state.graph.nodes.get(t.node_id)
        if t.status in ALIVE_TOKEN:
            _check_untouched(run, state, t, task.id)
            undo[t.id] = t
            continue
        joined_into = (t.state or {}).get("joined_into")
        if t.status == "done" and joined_into is not None:
            # the branch's arrival fired (or joined) a parallel join: what left the join
            # must still stand untouched at its next wait
            out = run.session.get(WfToken, joined_into)
            if out is None or out.status not in ALIVE_TOKEN:
                raise _already_started()
            _check_untouched(run, state, out, None)
            undo[out.id] = out
            joins.append((t, out))
            continue
        # a token that ended at a splitting gateway only passed through it
        splits = node is not None and len(state.graph.outgoing(node.id)) > 1
        if not (t.status == "done" and splits):
            raise _already_started()
    for t in undo.values():
        runtime.cancel_token(run, state, t, "withdraw")
    for arrival, out in joins:
        _rearm(run, state, arrival, out)
    fork_id = run.session.scalar(
        select(WfHistory.fork_id).where(
            WfHistory.task_id == task.id, WfHistory.kind == "task.completed"
        )
    )
    fresh = tokens.new_token(run, state, task.node_id, fork_id=fork_id, status="waiting")
    fresh.state = {**(token.state or {}), "group": task.group_id}
    # the activity waits again: its boundary timers run anew from now, its 超时 job
    # keeps the task's deadline (both were dropped when the token left)
    node = state.graph.nodes[task.node_id]
    runtime.arm_boundaries(run, state, fresh, node)
    if node.timeout is not None and task.due_at is not None:
        schedule_job(
            run.session,
            JOB_TIMEOUT,
            due_at=task.due_at,
            key=f"timeout:{fresh.id}",
            payload={"instance": state.row.id, "token": fresh.id, "node": node.id},
        )
    for other in task_rules.group_tasks(run, task.group_id):
        if other.id == task.id or (
            other.status == "cancelled" and other.cancel_reason == "decided"
        ):
            other.token_id = fresh.id
            if other.id != task.id:
                other.status, other.cancel_reason, other.completed_at = "open", None, None
    _reopen(task)
    task.token_id = fresh.id


def _check_untouched(run: Run, state: InstanceState, token: WfToken, made_by: int | None) -> None:
    """Refuse unless ``token`` waits where nobody has started work: no service call or
    sub-process may have begun, and its tasks (those ``made_by`` that completion, or all
    of them) are neither claimed nor worked."""
    node = state.graph.nodes.get(token.node_id)
    if node is None or node.kind in ("service_task", "call"):
        raise _already_started()  # a call to another system may have happened
    created = select(WfTask).where(WfTask.token_id == token.id)
    if made_by is not None:
        created = created.where(WfTask.previous_task_id == made_by)
    for other in run.session.scalars(created):
        if other.status == "cancelled":
            continue
        if not _untouched(other):
            raise _already_started()


def _rearm(run: Run, state: InstanceState, arrival: WfToken, out: WfToken) -> None:
    """Undo a join's firing: the other arrivals it consumed wait at the join again."""
    for sibling in run.session.scalars(
        select(WfToken).where(
            WfToken.instance_id == state.row.id,
            WfToken.node_id == arrival.node_id,
            WfToken.status == "done",
        )
    ):
        if (sibling.state or {}).get("joined_into") == out.id and sibling.id != arrival.id:
            tokens.new_token(
                run,
                state,
                sibling.node_id,
                fork_id=sibling.fork_id,
                via=sibling.arrived_via,
                status="waiting",
            )


def reclaim(ctx: Context, actor: Actor, task_id: int) -> TaskView:
    """拿回: take back a task one transferred or delegated, before the new holder starts."""
    authorize(actor, "workflow.task.work")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open", "delegated")
        if actor.kind != "user" or task.previous_assignee_id != actor.id:
            raise Forbidden(
                "只有转出或委派该任务的人可以拿回",
                "Only who transferred or delegated the task may reclaim it",
                code="not_previous_holder",
            )
        if task.claimed_at is not None:
            raise _already_started()
        task.assignee_id = actor.id
        task.owner_id = None
        task.previous_assignee_id = None
        task.status = "open"
        token = run.session.get(WfToken, task.token_id)
        run.history(state, "task.reclaim", node_id=task.node_id, token=token, task_id=task.id)
        uow.record("workflow.task.reclaim", f"task:{task.id}", {"task_id": task.id})
        run.finish()
        uow.commit()
    return TaskView.of(task)
