"""The workbench lists: 待办 (todo), 已办 (done), 抄送 (cc) — each one indexed query.

"Tasks I can work on" is one statement: tasks assigned to me; tasks assigned to someone
who delegated their work to me right now (代理, for that process or all, through a
correlated sub-select on the delegation table); and unassigned tasks whose candidates
include me, by user or by a (department, role) I hold — through the candidate table's
two indexes. The total comes from a window function in the same statement, so a page
and its count cost one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, union_all
from sqlalchemy.orm import aliased

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound
from xietong.kernel.org.models import Delegation
from xietong.kernel.workflow import _ops
from xietong.kernel.workflow.instances import may_read
from xietong.kernel.workflow.store import WfCc, WfInstance, WfTask, WfTaskCandidate
from xietong.kernel.workflow.views import CcView, Page, TaskView

MAX_LIMIT = 200
_WORKABLE = ("open", "delegated")


@dataclass(frozen=True)
class TaskFilters:
    process_key: str | None = None
    business_key: str | None = None
    node_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _paging(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"分页参数无效（每页 1–{MAX_LIMIT} 条）",
            f"Invalid paging (limit 1–{MAX_LIMIT}, offset ≥ 0)",
            code="invalid_paging",
        )
    return offset, limit


def _filtered(stmt: Select[Any], filters: TaskFilters) -> Select[Any]:
    if filters.process_key:
        stmt = stmt.where(WfTask.process_key == filters.process_key)
    if filters.business_key:
        stmt = stmt.where(WfTask.business_key == filters.business_key)
    if filters.node_id:
        stmt = stmt.where(WfTask.node_id == filters.node_id)
    if filters.created_from is not None:
        stmt = stmt.where(WfTask.created_at >= filters.created_from)
    if filters.created_to is not None:
        stmt = stmt.where(WfTask.created_at < filters.created_to)
    return stmt


def workable(actor: Actor, statuses: tuple[str, ...] | None = None) -> Any:
    """The condition "``actor`` can work this task now" over ``WfTask`` columns.

    ``WfTask.id IN (three indexed selects, UNION ALL)``: tasks assigned to me (index on
    assignee and status), tasks of the users who delegated to me now (the delegation
    index, then the same task index), and unassigned tasks whose candidates include me
    (the candidate table's two indexes, then the task by primary key). Written as one OR
    of the three, PostgreSQL could use no index for the correlated delegation test and
    scanned every task: seconds at a million open tasks. ``statuses`` restricts each
    branch to tasks in those states, so the index on (assignee, status) is used whole.
    """
    me = actor.id
    now = clock.now()
    in_state = WfTask.status.in_(statuses) if statuses else None

    def live(stmt: Select[Any], task: Any = WfTask) -> Select[Any]:
        return stmt.where(task.status.in_(statuses)) if in_state is not None else stmt

    mine = live(select(WfTask.id).where(WfTask.assignee_id == me))
    delegated = aliased(WfTask)
    for_delegators = live(
        select(delegated.id)
        .join(Delegation, Delegation.from_user_id == delegated.assignee_id)
        .where(
            Delegation.to_user_id == me,
            Delegation.revoked_at.is_(None),
            Delegation.starts_at <= now,
            Delegation.ends_at > now,
            or_(Delegation.process_key.is_(None), Delegation.process_key == delegated.process_key),
        ),
        delegated,
    )
    candidacy = [WfTaskCandidate.user_id == me]
    for role, departments in actor.scopes.items():
        if departments:
            candidacy.append(
                and_(
                    WfTaskCandidate.role == role.value,
                    WfTaskCandidate.department_id.in_(sorted(departments)),
                )
            )
    if actor.department_ids:
        candidacy.append(
            and_(
                WfTaskCandidate.role.is_(None),
                WfTaskCandidate.department_id.in_(sorted(actor.department_ids)),
            )
        )
    open_to_me = aliased(WfTask)
    as_candidate = live(
        select(WfTaskCandidate.task_id)
        .join(open_to_me, open_to_me.id == WfTaskCandidate.task_id)
        .where(open_to_me.assignee_id.is_(None), or_(*candidacy)),
        open_to_me,
    )
    return WfTask.id.in_(union_all(mine, for_delegators, as_candidate))


def _page(ctx: Context, stmt: Select[Any], offset: int, limit: int) -> Page[TaskView]:
    with ctx.db.read() as session:
        rows = session.execute(stmt.offset(offset).limit(limit)).all()
        items = [TaskView.of(row[0]) for row in rows]
        if rows:
            total = int(rows[0][1])
        else:  # past the last page the window has no row to carry the count
            count = select(func.count()).select_from(
                stmt.with_only_columns(WfTask.id).order_by(None).subquery()
            )
            total = session.scalar(count) or 0
    return Page(items=items, total=total, offset=offset, limit=limit)


def todo(
    ctx: Context,
    actor: Actor,
    filters: TaskFilters | None = None,
    *,
    offset: int = 0,
    limit: int = 20,
) -> Page[TaskView]:
    """待办: open tasks ``actor`` can work on now, newest first."""
    authorize(actor, "workflow.task.read")
    offset, limit = _paging(offset, limit)
    if actor.kind != "user" or actor.id is None:
        return Page(items=[], total=0, offset=offset, limit=limit)
    stmt = (
        select(WfTask, func.count().over().label("total"))
        .where(WfTask.status.in_(_WORKABLE), workable(actor, _WORKABLE))
        .order_by(WfTask.created_at.desc(), WfTask.id.desc())
    )
    return _page(ctx, _filtered(stmt, filters or TaskFilters()), offset, limit)


def done(
    ctx: Context,
    actor: Actor,
    filters: TaskFilters | None = None,
    *,
    offset: int = 0,
    limit: int = 20,
) -> Page[TaskView]:
    """已办: tasks ``actor`` completed (themselves or for someone), latest first."""
    authorize(actor, "workflow.task.read")
    offset, limit = _paging(offset, limit)
    if actor.kind != "user" or actor.id is None:
        return Page(items=[], total=0, offset=offset, limit=limit)
    stmt = (
        select(WfTask, func.count().over().label("total"))
        .where(WfTask.completed_by_user_id == actor.id, WfTask.status == "completed")
        .order_by(WfTask.completed_at.desc(), WfTask.id.desc())
    )
    return _page(ctx, _filtered(stmt, filters or TaskFilters()), offset, limit)


@dataclass(frozen=True)
class CcList:
    items: list[CcView]
    total: int
    unread: int
    offset: int
    limit: int


def cc_list(
    ctx: Context, actor: Actor, *, unread_only: bool = False, offset: int = 0, limit: int = 20
) -> CcList:
    """抄送 to ``actor``, newest first, with the unread count."""
    authorize(actor, "workflow.task.read")
    offset, limit = _paging(offset, limit)
    if actor.kind != "user" or actor.id is None:
        return CcList([], 0, 0, offset, limit)
    unread = func.sum(case((WfCc.read_at.is_(None), 1), else_=0)).over()
    stmt = (
        select(WfCc, func.count().over(), unread)
        .where(WfCc.user_id == actor.id)
        .order_by(WfCc.created_at.desc(), WfCc.id.desc())
    )
    if unread_only:
        stmt = stmt.where(WfCc.read_at.is_(None))
    with ctx.db.read() as session:
        rows = session.execute(stmt.offset(offset).limit(limit)).all()
        items = [CcView.of(row[0]) for row in rows]
        if rows:
            return CcList(items, int(rows[0][1]), int(rows[0][2] or 0), offset, limit)
        total, unread_count = session.execute(
            select(
                func.count(), func.coalesce(func.sum(case((WfCc.read_at.is_(None), 1), else_=0)), 0)
            ).where(WfCc.user_id == actor.id)
        ).one()
        return CcList([], 0 if unread_only else int(total), int(unread_count), offset, limit)


@dataclass(frozen=True)
class TaskDetail:
    task: TaskView
    operations: list[str]  # what this actor may do now


def get_task(ctx: Context, actor: Actor, task_id: int) -> TaskDetail:
    """One task with the operations ``actor`` may perform on it now."""
    authorize(actor, "workflow.task.read")
    with ctx.db.read() as session:
        task = session.get(WfTask, task_id)
        if task is None:
            raise NotFound.of("任务", "Task", task_id)
        instance = session.get(WfInstance, task.instance_id)
        assert instance is not None
        visible = may_read(session, actor, instance)
        allowed = allowed_operations(session, actor, task, instance, visible=visible)
        if not allowed and not visible:
            raise NotFound.of("任务", "Task", task_id)
        return TaskDetail(TaskView.of(task), allowed)


def allowed_operations(
    session: Any, actor: Actor, task: WfTask, instance: WfInstance, *, visible: bool
) -> list[str]:
    if instance.status != "running" or actor.kind != "user":
        return []
    found: list[str] = []
    try:
        _ops.holder(session, actor, task)
        holds = True
    except Forbidden:
        holds = False
    if task.status == "open" and holds:
        if task.assignee_id is None:
            found.append("claim")
        found += [
            "complete",
            "send_back",
            "reject_to_applicant",
            "transfer",
            "add_signer",
            "cc",
        ]
        if task.assignee_id is not None:
            found.append("delegate")
    if task.status == "delegated" and holds:
        found.append("resolve")
    if task.status == "completed" and actor.id in (
        task.completed_by_user_id,
        task.on_behalf_of_user_id,
    ):
        found.append("withdraw")
    if task.status in ("open", "delegated") and task.previous_assignee_id == actor.id:
        found.append("reclaim")
    if task.status in ("open", "delegated", "pending") and visible and not holds:
        found.append("urge")
    return found
