"""User tasks: who gets them, and when a node's signers have decided.

One activation of a user task node is a *group* of tasks (one task for a plain node,
one per signer for a multi-instance node). Each task has a weight and whether its
outcome ``counts``; the node's outcome is decided from the counted tasks:

- plain node and ``countersign_all`` (会签): any reject decides *reject*; when every
  counted task approved, *approve*.
- ``countersign_any`` (或签): the first approval decides *approve* and cancels the
  others. A reject is that signer's vote only: the node is *rejected* when every
  signer has rejected (nobody is left who could approve).
- ``vote`` (票签): *approve* as soon as the approving weight reaches ``pass_ratio`` of
  the total; *reject* as soon as it no longer can; the rest are cancelled.
- ``sequential_sign`` (顺签): one task open at a time in list order; a reject decides
  *reject*, the last approval *approve*.

加签 changes the group: a "before" signer advises (does not count) and blocks the
original task until done; an "after" signer receives the original signer's vote when
that signer approves (a reject still decides); a "parallel" signer is one more counted
task, which turns a plain node into a 会签.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.bus import schedule_job
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.org.models import Department, User
from xietong.kernel.workflow._durations import after_working_days
from xietong.kernel.workflow._rows import add_new, connection_of, load_rows, plain_rows, reader_sql
from xietong.kernel.workflow._run import JOB_TIMEOUT, InstanceState, Run, add_candidates
from xietong.kernel.workflow.events import MODULE, TaskCreated
from xietong.kernel.workflow.expressions import compile_expression, is_expression
from xietong.kernel.workflow.model import Node
from xietong.kernel.workflow.store import LIVE_TASK, WfTask, WfToken

OUTCOMES = ("approve", "reject")
EPSILON = 1e-9


def _value(run: Run, state: InstanceState, text: str) -> Any:
    if is_expression(text):
        return compile_expression(text).evaluate(run.variables(state))
    return text


def _names(value: Any) -> list[str]:
    """A list of usernames from a list, or a comma-separated string; duplicates dropped."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise InvalidInput(
            "签署人须为用户名列表",
            "Signers must be a list of usernames",
            code="invalid_signers",
        )
    return list(dict.fromkeys(item for item in items if item))


def user_ids(run: Run, usernames: Iterable[str]) -> dict[str, int]:
    """Active users by username; an unknown or inactive one is NotFound."""
    wanted = list(dict.fromkeys(usernames))
    rows = run.session.execute(
        select(User.username, User.id).where(User.username.in_(wanted), User.active.is_(True))
    ).all()
    found = dict(rows)
    for name in wanted:
        if name not in found:
            raise NotFound(
                f"用户不存在或已停用：{name}",
                f"User not found or inactive: {name}",
                code="user_not_found",
                details={"username": name},
            )
    return found


def _department(run: Run, state: InstanceState, node: Node) -> int | None:
    code = node.assignment.candidate_department if node.assignment else None
    if not code:
        return state.row.department_id
    code = str(_value(run, state, code))
    found = run.session.scalar(select(Department.id).where(Department.code == code))
    if found is None:
        raise NotFound(
            f"候选部门不存在：{code}",
            f"Candidate department not found: {code}",
            code="department_not_found",
            details={"code": code},
        )
    return found


def new_task(run: Run, state: InstanceState, token: WfToken, node: Node, **values: Any) -> WfTask:
    values.setdefault("status", "open")
    values.setdefault("previous_task_id", run.origin_task_id)
    row = state.row
    task: WfTask = add_new(
        run.session,
        WfTask,
        {
            "id": run.new_id("wf_task"),
            "instance_id": row.id,
            "token_id": token.id,
            "process_key": row.process_key,
            "business_key": row.business_key,
            "node_id": node.id,
            "name": (node.name or node.id)[:300],
            "group_id": token.state.get("group", token.id),
            "created_at": clock.now(),
            "attachments": [],
            **values,
        },
    )
    # how many tasks the token's group has: a group of one (a plain task nobody added
    # signers to) decides on its own completion without reading the group back
    token.state = {**token.state, "tasks": int(token.state.get("tasks", 0)) + 1}
    return task


def announce(run: Run, task: WfTask) -> None:
    run.uow.emit(
        TaskCreated(
            task.id,
            task.instance_id,
            task.process_key,
            task.node_id,
            task.assignee_id,
            task.candidate_department_id,
            task.candidate_role,
        ),
        module=MODULE,
    )


def create_user_tasks(
    run: Run,
    state: InstanceState,
    token: WfToken,
    node: Node,
    *,
    assignee: int | None = None,
) -> list[WfTask]:
    """The tasks of one activation of ``node``; ``assignee`` overrides a plain node's
    assignment (退回 returns the task to whoever handled the node before)."""
    multi = node.multi
    token.state = {
        "group": token.id,
        "mode": multi.mode if multi else None,
        "pass_ratio": multi.pass_ratio if multi else None,
    }
    department_id = _department(run, state, node)
    tasks: list[WfTask] = []
    if multi is not None:
        usernames = _names(_value(run, state, multi.signers))
        if not usernames:
            raise InvalidInput(
                f"节点 {node.id} 没有签署人", f"Node {node.id} has no signers", code="no_signers"
            )
        ids = user_ids(run, usernames)
        weights: Mapping[str, Any] = {}
        if multi.weights:
            raw = _value(run, state, multi.weights)
            weights = raw if isinstance(raw, Mapping) else {}
        for position, username in enumerate(usernames):
            later = multi.mode == "sequential_sign" and position > 0
            tasks.append(
                new_task(
                    run,
                    state,
                    token,
                    node,
                    status="pending" if later else "open",
                    assignee_id=ids[username],
                    position=position,
                    weight=float(weights.get(username, 1.0)),
                    candidate_department_id=department_id,
                )
            )
    else:
        tasks.append(_plain_task(run, state, token, node, department_id, assignee))
    for task in tasks:
        if task.status == "open":
            announce(run, task)
    _candidates(run, state, node, tasks[0], department_id, assignee)
    if node.timeout is not None:
        due = after_working_days(run.ctx.calendar, clock.now(), node.timeout.after_working_days)
        for task in tasks:
            task.due_at = due
        schedule_job(
            run.session,
            JOB_TIMEOUT,
            due_at=due,
            key=f"timeout:{token.id}",
            payload={"instance": state.row.id, "token": token.id, "node": node.id},
        )
    return tasks


def _plain_task(
    run: Run,
    state: InstanceState,
    token: WfToken,
    node: Node,
    department_id: int | None,
    assignee: int | None,
) -> WfTask:
    rule = node.assignment
    if assignee is None and rule is not None and rule.assignee:
        name = str(_value(run, state, rule.assignee))
        assignee = user_ids(run, [name])[name]
    role = rule.candidate_roles[0] if rule and rule.candidate_roles and assignee is None else None
    return new_task(
        run,
        state,
        token,
        node,
        assignee_id=assignee,
        candidate_department_id=department_id,
        candidate_role=role,
    )


def _candidates(
    run: Run,
    state: InstanceState,
    node: Node,
    task: WfTask,
    department_id: int | None,
    assignee: int | None,
) -> None:
    """Candidate rows for an unassigned plain task: named users, or (department, role)
    pairs, or — with neither — any member of the candidate department."""
    if task.assignee_id is not None or node.multi is not None:
        return
    rule = node.assignment
    rows: list[tuple[int, int | None, int | None, str | None]] = []
    if rule is not None and rule.candidate_users:
        names: list[str] = []
        for text in rule.candidate_users:
            names.extend(_names(_value(run, state, text)))
        for user_id in user_ids(run, names).values():
            rows.append((task.id, user_id, None, None))
    if rule is not None and rule.candidate_roles:
        for role in rule.candidate_roles:
            rows.append((task.id, None, department_id, role))
    if not rows:
        rows.append((task.id, None, department_id, None))
    add_candidates(run.session, rows)


_GROUP_SQL = "SELECT {0} FROM wf_task AS c0 WHERE c0.group_id = ? ORDER BY c0.position, c0.id"


def group_tasks(run: Run, group_id: int) -> list[WfTask]:
    """The group's tasks as this step sees them, without flushing the step's changes
    first: rows already loaded keep their in-memory state, and tasks made in this step
    (not yet flushed) are added from the session."""
    session = run.session
    sql = reader_sql(connection_of(session).dialect, (WfTask,), _GROUP_SQL)
    found = {row[0].id: row[0] for row in load_rows(session, (WfTask,), sql, (group_id,))}
    for item in session.new:
        if isinstance(item, WfTask) and item.group_id == group_id:
            found[item.id] = item
    return sorted(found.values(), key=lambda task: (task.position, task.id))


def open_task(run: Run, task: WfTask, *, opened_by: WfTask | None = None) -> None:
    """Make a pending task workable; ``opened_by`` is the completion that did it (撤回 of
    that completion puts it back to pending while it is untouched)."""
    task.status = "open"
    if opened_by is not None:
        task.previous_task_id = opened_by.id
    announce(run, task)


def decide(run: Run, token: WfToken, completed: WfTask | None = None) -> str | None:
    """The node's outcome once the group has decided (None while it has not).

    Opens what the completion unblocked (a 加签 original, an "after" signer, the next
    顺签 signer) and, on a decision, cancels the group's remaining tasks.
    """
    group = token.state.get("group", token.id)
    if completed is not None and token.state.get("tasks") == 1 and completed.group_id == group:
        tasks = [completed]
    elif _still_waiting(run, token, group, completed):
        return None
    else:
        tasks = group_tasks(run, group)
    if completed is not None:
        for task in tasks:
            if task.blocked_by_task_id != completed.id or task.status != "pending":
                continue
            if task.kind == "after" and completed.outcome != "approve":
                cancel_task(task, "predecessor_rejected")
            else:
                if task.kind == "after":
                    completed.counts = False  # the vote passes to the after-signer
                open_task(run, task, opened_by=completed)
    counted = [t for t in tasks if t.counts and t.status != "cancelled"]
    live = [t for t in counted if t.status in LIVE_TASK]
    approved = sum(t.weight for t in counted if t.status == "completed" and t.outcome == "approve")
    rejected = any(t.status == "completed" and t.outcome == "reject" for t in counted)
    mode = token.state.get("mode")
    decision: str | None = None
    if mode == "countersign_any":
        decision = "approve" if approved > 0 else (None if live else "reject")
    elif mode == "vote":
        total = sum(t.weight for t in counted)
        ratio = token.state.get("pass_ratio") or 0.5
        possible = approved + sum(t.weight for t in live)
        if total > 0 and approved >= ratio * total - EPSILON:
            decision = "approve"
        elif possible < ratio * total - EPSILON or total == 0:
            decision = "reject"
    elif rejected:
        decision = "reject"
    elif not live:
        decision = "approve"
    if decision is not None:
        for task in tasks:
            if task.status in LIVE_TASK:
                cancel_task(task, "decided")
        return decision
    if mode == "sequential_sign" and not any(t.status in ("open", "delegated") for t in live):
        waiting = [t for t in live if t.status == "pending" and t.blocked_by_task_id is None]
        if waiting:
            open_task(run, min(waiting, key=lambda t: (t.position, t.id)), opened_by=completed)
    return None


# The other tasks of a group, counted in one row: how many counted tasks are still
# live, how many wait for the given task (加签), how many counted ones were rejected.
_GROUP_COUNTS = (
    "SELECT "
    "SUM(CASE WHEN counts AND status IN ('pending', 'open', 'delegated') THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN blocked_by_task_id = ? AND status = 'pending' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN counts AND status = 'completed' AND outcome = 'reject' THEN 1 ELSE 0 END) "
    "FROM wf_task WHERE group_id = ? AND id <> ?"
)
assert LIVE_TASK == ("pending", "open", "delegated")  # spelled out above


def _still_waiting(run: Run, token: WfToken, group: int, completed: WfTask | None) -> bool:
    """Whether an approval in a 会签 (or a plain node with 加签 signers) leaves the
    node undecided with nothing to open — the common step of a large group — decided
    from counts, without loading the group's tasks (``decide`` reads them all only
    when something must change: a decision, a task to open).

    Only where the counts say everything ``decide`` would: mode 会签 or plain, an
    approval, and no other task of the step's session changed (their rows in the
    database are then what ``decide`` would see)."""
    if (
        completed is None
        or completed.outcome != "approve"
        or completed.group_id != group
        or token.state.get("mode") not in (None, "countersign_all")
    ):
        return False
    session = run.session
    for item in session.new:
        if isinstance(item, WfTask):
            return False
    for item in session.dirty:
        if isinstance(item, WfTask) and item is not completed:
            return False
    rows = plain_rows(session, _GROUP_COUNTS, (completed.id, group, completed.id))
    live, blocked, rejected = (value or 0 for value in rows[0])
    return live > 0 and blocked == 0 and rejected == 0


def cancel_task(task: WfTask, reason: str) -> None:
    task.status = "cancelled"
    task.cancel_reason = reason
    task.completed_at = clock.now()
