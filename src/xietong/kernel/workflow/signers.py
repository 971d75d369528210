"""加签 / 减签: change who signs a user task node while it is open.

- ``before``: the new signers work first, one after the other, and advise (their
  outcome does not decide); then the original task opens again.
- ``after``: when the original signer approves, the new signers follow in turn and the
  vote passes to the last of them; a reject by the original still decides.
- ``parallel``: extra signers in the current group (a plain node becomes a 会签; in a
  顺签 they join at the end of the order).

减签 cancels a signer's open or waiting task; removing the last undecided signer is
refused. Removing one may decide the node (the others already approved a 会签), and
then the process moves on in the same step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.org.models import User
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow._ops import conclude, holder, load_task, require_status
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import LIVE_TASK, WfTask, WfToken
from xietong.kernel.workflow.views import TaskView

Position = Literal["before", "after", "parallel"]


def _users(run: Run, user_ids: Iterable[int]) -> list[int]:
    wanted = list(dict.fromkeys(user_ids))
    if not wanted:
        raise InvalidInput("请选择加签人", "Choose at least one signer", code="no_signers")
    for user_id in wanted:
        user = run.session.get(User, user_id)
        if user is None or not user.active:
            raise NotFound(
                f"用户不存在或已停用：{user_id}",
                f"User not found or inactive: {user_id}",
                code="user_not_found",
                details={"user_id": user_id},
            )
    return wanted


def add_signer(
    ctx: Context,
    actor: Actor,
    task_id: int,
    user_ids: Iterable[int],
    position: Position = "parallel",
    *,
    opinion: str | None = None,
) -> list[TaskView]:
    """加签; returns the new tasks."""
    authorize(actor, "workflow.task.work")
    if position not in ("before", "after", "parallel"):
        raise InvalidInput(
            "加签方式须为 before、after 或 parallel",
            "Position must be before, after or parallel",
            code="invalid_position",
        )
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, task = load_task(run, task_id)
        run.require_active(state)
        require_status(task, "open")
        holder(run.session, actor, task)
        users = _users(run, user_ids)
        token = run.session.get(WfToken, task.token_id)
        assert token is not None
        node = state.graph.nodes[task.node_id]
        group = task_rules.group_tasks(run, task.group_id)
        created: list[WfTask] = []
        if position == "parallel":
            mode = token.state.get("mode")
            if mode is None:
                token.state = {**token.state, "mode": "countersign_all"}
            last = max(t.position for t in group)
            for offset, user_id in enumerate(users, start=1):
                later = mode == "sequential_sign"
                created.append(
                    task_rules.new_task(
                        run,
                        state,
                        token,
                        node,
                        status="pending" if later else "open",
                        assignee_id=user_id,
                        position=last + offset,
                        kind="parallel",
                        previous_task_id=task.previous_task_id,
                    )
                )
        else:
            blocker: WfTask | None = task if position == "after" else None
            for user_id in users:
                added = task_rules.new_task(
                    run,
                    state,
                    token,
                    node,
                    status="open" if blocker is None else "pending",
                    assignee_id=user_id,
                    position=task.position,
                    weight=task.weight,
                    kind=position,
                    counts=position == "after",
                    blocked_by_task_id=blocker.id if blocker is not None else None,
                    previous_task_id=task.previous_task_id,
                )
                run.session.flush()
                created.append(added)
                blocker = added
            if position == "before":
                task.status = "pending"
                task.blocked_by_task_id = created[-1].id
        if task.claimed_at is None:
            task.claimed_at = clock.now()  # the holder has started on it (拿回 refused)
        run.session.flush()
        for new in created:
            if new.status == "open":
                task_rules.announce(run, new)
        run.history(
            state,
            "add_signer",
            node_id=task.node_id,
            token=token,
            task_id=task.id,
            opinion=opinion,
            details={"user_ids": users, "position": position},
        )
        uow.record(
            "workflow.task.add_signer",
            f"task:{task.id}",
            {"task_id": task.id, "user_ids": users, "position": position},
        )
        run.finish()
        uow.commit()
    return [TaskView.of(new) for new in created]


def remove_signer(
    ctx: Context, actor: Actor, task_id: int, *, opinion: str | None = None
) -> TaskView:
    """减签: cancel the signer task ``task_id`` (by another signer of the group or a
    manager of the instance)."""
    authorize(actor, "workflow.task.work")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        state, target = load_task(run, task_id)
        run.require_active(state)
        require_status(target, "open", "pending")
        group = task_rules.group_tasks(run, target.group_id)
        manager = can(
            actor,
            "workflow.instance.manage",
            Resource(kind="process_instance", department_id=state.row.department_id),
        )
        if not manager and not _holds_sibling(run, actor, group, target):
            raise Forbidden(
                "只有同组签署人或流程管理人可以减签",
                "Only a signer of the same group or a manager may remove a signer",
                code="not_group_signer",
            )
        undecided = [t for t in group if t.counts and t.status in LIVE_TASK]
        if target.counts and len(undecided) <= 1:
            raise Conflict(
                "不能减去最后一个签署人",
                "Cannot remove the last remaining signer",
                code="last_signer",
            )
        for blocked in group:
            if blocked.blocked_by_task_id == target.id and blocked.status == "pending":
                # what waited for the removed signer waits for whom it waited for
                blocked.blocked_by_task_id = target.blocked_by_task_id
                if target.status == "open" and target.kind == "before":
                    task_rules.open_task(run, blocked)
        task_rules.cancel_task(target, "removed")
        token = run.session.get(WfToken, target.token_id)
        assert token is not None
        run.history(
            state,
            "remove_signer",
            node_id=target.node_id,
            token=token,
            task_id=target.id,
            opinion=opinion,
            details={"user_id": target.assignee_id},
        )
        decision = task_rules.decide(run, token)
        conclude(run, state, token, target.node_id, decision, origin_task_id=None)
        uow.record("workflow.task.remove_signer", f"task:{target.id}", {"task_id": target.id})
        run.finish()
        uow.commit()
    return TaskView.of(target)


def _holds_sibling(run: Run, actor: Actor, group: list[WfTask], target: WfTask) -> bool:
    for sibling in group:
        if sibling.id == target.id or sibling.status not in ("open", "delegated"):
            continue
        try:
            holder(run.session, actor, sibling, candidates=False)
        except Forbidden:
            continue
        return True
    return False
