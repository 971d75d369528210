"""What every task operation shares: loading under lock, who may act, finishing a task.

Loading order matters for concurrency: the task's instance row is locked first
(``SELECT … FOR UPDATE`` on PostgreSQL), *then* the task is read afresh. Of sixteen
requests completing one task, the first to get the lock completes it; the others read
it as completed and get a Conflict. The task's own version counter is the second line:
every UPDATE of a task is ``… WHERE id = ? AND version = ?``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, Role
from xietong.kernel.errors import Conflict, Forbidden, NotFound
from xietong.kernel.org.delegation import active_delegates_for
from xietong.kernel.workflow import runtime
from xietong.kernel.workflow import tasks as task_rules
from xietong.kernel.workflow._rows import (
    Known,
    connection_of,
    load_rows,
    placeholder,
    plain_rows,
    reader,
)
from xietong.kernel.workflow._run import InstanceState, Run, write_candidates
from xietong.kernel.workflow.events import MODULE, TaskCompleted
from xietong.kernel.workflow.store import WfInstance, WfTask, WfToken

_STATUS_ERRORS = {
    "completed": ("任务已办结", "The task is already completed", "task_already_completed"),
    "cancelled": ("任务已取消", "The task was cancelled", "task_cancelled"),
    "pending": ("任务尚未轮到办理", "The task is not ready to be worked yet", "task_not_ready"),
    "delegated": (
        "任务已委派，须由被委派人处理后交回",
        "The task is delegated; the delegate must resolve it first",
        "task_delegated",
    ),
    "open": ("任务尚未办理", "The task is still open", "task_open"),
}


# Statements of every step, built once (building one costs more than running it).
_TASK_WITH_INSTANCE = (
    select(WfTask, WfInstance, WfToken)
    .join(WfInstance, WfInstance.id == WfTask.instance_id)
    .join(WfToken, WfToken.id == WfTask.token_id)
    .where(WfTask.id == bindparam("task"))
    .execution_options(populate_existing=True)
)
_LOCK_INSTANCE_OF_TASK = (
    select(WfInstance)
    .where(
        WfInstance.id
        == select(WfTask.instance_id).where(WfTask.id == bindparam("task")).scalar_subquery()
    )
    .with_for_update()
    .execution_options(populate_existing=True)
)
_TASK_WITH_TOKEN = (
    select(WfTask, WfToken)
    .join(WfToken, WfToken.id == WfTask.token_id)
    .where(WfTask.id == bindparam("task"))
    .execution_options(populate_existing=True)
)
_CANDIDATES_SQL = "SELECT user_id, department_id, role FROM wf_task_candidate WHERE task_id = ?"


def load_task(run: Run, task_id: int) -> tuple[InstanceState, WfTask]:
    """The task (with its token) and its instance, in one query after the lock."""
    session = run.session
    if not (session.new or session.dirty or session.deleted):
        try:
            return _load_task_rows(run, task_id)
        except Known:  # already in the session (read earlier in this step)
            pass
    # through the ORM, which flushes pending changes first and refreshes held rows
    return _load_task_orm(run, task_id)


def _task_sql(dialect: Any) -> tuple[str, str, str]:
    """(SQLite's joined read, PostgreSQL's instance lock, its task-and-token read)."""
    found = _TASK_SQL.get(dialect.name)
    if found is None:
        mark = placeholder(dialect)
        task, instance, token = (reader(dialect, cls) for cls in (WfTask, WfInstance, WfToken))
        joined = (
            f"SELECT {task.select_list('t')}, {instance.select_list('i')}, "
            f"{token.select_list('k')} FROM wf_task AS t "
            "JOIN wf_instance AS i ON i.id = t.instance_id "
            f"JOIN wf_token AS k ON k.id = t.token_id WHERE t.id = {mark}"
        )
        lock = (
            f"SELECT {instance.select_list('i')} FROM wf_instance AS i WHERE i.id = "
            f"(SELECT instance_id FROM wf_task WHERE id = {mark}) FOR UPDATE"
        )
        with_token = (
            f"SELECT {task.select_list('t')}, {token.select_list('k')} FROM wf_task AS t "
            f"JOIN wf_token AS k ON k.id = t.token_id WHERE t.id = {mark}"
        )
        found = _TASK_SQL[dialect.name] = (joined, lock, with_token)
    return found


_TASK_SQL: dict[str, tuple[str, str, str]] = {}


def _load_task_rows(run: Run, task_id: int) -> tuple[InstanceState, WfTask]:
    session = run.session
    joined, lock, with_token = _task_sql(connection_of(session).dialect)
    params = (task_id,)
    if run.ctx.db.is_sqlite:
        # The write transaction began with SQLite's write lock: one joined read is current.
        rows = load_rows(session, (WfTask, WfInstance, WfToken), joined, params, refresh=True)
        if not rows:
            raise NotFound.of("任务", "Task", task_id)
        task, instance, _token = rows[0]
        run.held += rows[0]  # the token too: the identity map holds rows weakly
        return run.loaded(instance), task
    # PostgreSQL: lock the task's instance row first, then read the task (and its token)
    # as it is after every earlier step of the instance committed.
    locked = load_rows(session, (WfInstance,), lock, params, refresh=True)
    if not locked:
        raise NotFound.of("任务", "Task", task_id)
    run.held.append(locked[0][0])
    state = run.loaded(locked[0][0])
    rows = load_rows(session, (WfTask, WfToken), with_token, params, refresh=True)
    if not rows:
        raise NotFound.of("任务", "Task", task_id)
    run.held += rows[0]
    return state, rows[0][0]


def _load_task_orm(run: Run, task_id: int) -> tuple[InstanceState, WfTask]:
    params = {"task": task_id}
    if run.ctx.db.is_sqlite:
        row = run.session.execute(_TASK_WITH_INSTANCE, params).first()
        if row is None:
            raise NotFound.of("任务", "Task", task_id)
        task, instance, token = row
        run.held.append(token)
        return run.loaded(instance), task
    instance = run.session.scalars(_LOCK_INSTANCE_OF_TASK, params).first()
    if instance is None:
        raise NotFound.of("任务", "Task", task_id)
    state = run.loaded(instance)
    row = run.session.execute(_TASK_WITH_TOKEN, params).first()
    if row is None:
        raise NotFound.of("任务", "Task", task_id)
    run.held.append(row[1])
    return state, row[0]


def require_status(task: WfTask, *allowed: str) -> None:
    if task.status in allowed:
        return
    zh, en, code = _STATUS_ERRORS.get(task.status, ("任务状态不符", "Wrong task status", "stale"))
    raise Conflict(zh, en, code=code, details={"task_id": task.id, "status": task.status})


def require_version(task: WfTask, expected: int | None) -> None:
    if expected is not None and expected != task.version:
        raise Conflict(
            "任务已被他人修改，请刷新后重试",
            "The task changed since it was read; reload and retry",
            code="stale",
            details={"task_id": task.id, "version": task.version},
        )


def flush_task(run: Run) -> None:
    """Flush now so a lost optimistic race surfaces as a Conflict, not at commit."""
    run.flush()


def is_candidate(session: Session, actor: Actor, task: WfTask) -> bool:
    if actor.kind != "user" or actor.id is None or task.assignee_id is not None:
        return False
    write_candidates(session)  # a task made earlier in this step: its candidates first
    rows = plain_rows(session, _CANDIDATES_SQL, (task.id,))
    for user_id, department_id, role in rows:
        if user_id is not None and user_id == actor.id:
            return True
        if user_id is None and department_id is not None:
            if role is None and department_id in actor.department_ids:
                return True
            if role is not None and department_id in _role_departments(actor, role):
                return True
    return False


def _role_departments(actor: Actor, role: str) -> frozenset[int]:
    try:
        return actor.scopes.get(Role(role), frozenset())
    except ValueError:
        return frozenset()


def holder(session: Session, actor: Actor, task: WfTask, *, candidates: bool = True) -> int | None:
    """Check ``actor`` may work ``task``; returns the user they act for (代理) or None.

    The assignee may; a user the assignee delegated to (now, for this process or all)
    may, on the assignee's behalf; on an unassigned task, a candidate may.
    """
    if actor.kind == "user" and actor.id is not None:
        if task.assignee_id == actor.id:
            return None
        if task.assignee_id is not None:
            delegates = active_delegates_for(
                session, task.assignee_id, process_key=task.process_key
            )
            if any(d.user_id == actor.id for d in delegates):
                return task.assignee_id
        elif candidates and is_candidate(session, actor, task):
            return None
    raise Forbidden(
        "您不是该任务的办理人", "You are not the holder of this task", code="not_task_holder"
    )


def finish_task(
    run: Run,
    state: InstanceState,
    task: WfTask,
    outcome: str,
    *,
    opinion: str | None,
    attachments: list[object] | None = None,
    variables: dict[str, object] | None = None,
    on_behalf_of: int | None = None,
    history_kind: str = "task.completed",
) -> str | None:
    """Complete ``task`` and, when its group decides, move the token on.

    Returns the node's outcome when decided (the variables ``<node>_outcome`` and
    ``outcome`` carry it to the gateways), else None.
    """
    run.on_behalf_of = on_behalf_of
    if task.assignee_id is None and run.user_id is not None:
        task.assignee_id = run.user_id  # completing a candidate task claims it implicitly
    task.status = "completed"
    task.outcome = outcome
    task.opinion = opinion
    task.attachments = list(attachments or [])
    task.completed_at = clock.now()
    task.completed_by = run.actor.label
    task.completed_by_user_id = run.user_id
    task.on_behalf_of_user_id = on_behalf_of
    # not flushed here: the step's rows go in one flush at ``Run.finish`` (where a lost
    # version race still becomes a Conflict); the instance row lock taken by
    # ``load_task`` already serialises the steps of one instance
    run.set_variables(state, variables or {})
    # the token came with the task (load_task): the identity map has it, and looking
    # there costs a fraction of Session.get
    token = run.session.identity_map.get((WfToken, (task.token_id,), None))
    if token is None:
        token = run.session.get(WfToken, task.token_id)
    assert token is not None
    run.history(
        state,
        history_kind,
        node_id=task.node_id,
        token=token,
        task_id=task.id,
        outcome=outcome,
        opinion=opinion,
    )
    run.on_behalf_of = None  # only the task's own row says "B for A"
    run.uow.emit(
        TaskCompleted(
            task.id, task.instance_id, task.process_key, task.node_id, outcome, run.user_id
        ),
        module=MODULE,
    )
    decision = task_rules.decide(run, token, task)
    conclude(run, state, token, task.node_id, decision, origin_task_id=task.id)
    return decision


def conclude(
    run: Run,
    state: InstanceState,
    token: WfToken,
    node_id: str,
    decision: str | None,
    *,
    origin_task_id: int | None,
) -> None:
    """After a group decided: publish the outcome as variables and move the token on."""
    if decision is None:
        return
    run.set_variables(state, {f"{node_id}_outcome": decision, "outcome": decision}, checked=True)
    if token.state.get("mode"):
        run.history(state, "node.decided", node_id=node_id, token=token, outcome=decision)
    run.origin_task_id = origin_task_id
    runtime.drive(run, state, runtime.leave(run, state, token))
