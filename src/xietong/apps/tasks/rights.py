"""Who may see and change which task: the tree decides.

A department sees the tasks it leads or cooperates on and everything decomposed below
them; the supervising office (督办) of a tree sees the whole tree. Managing a task
(editing, decomposing, 销号) needs ``tasks.task.manage`` — 负责人 or 督办员 — in the
department of the task or of a task above it: whoever assigned the work may change it.
Reporting and commenting need any office role in the task's lead or a cooperating
department.

Visibility is computed in Python over the (id, parent, department) columns of all tasks:
one indexed scan, fine for the tens of thousands of tasks a city runs. A task that may
not be seen is reported as "not found", never as "forbidden", so ids do not leak.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.tasks.models import Task, TaskCooperation
from xietong.kernel.access import Actor, Role, can
from xietong.kernel.access import Resource as Guarded
from xietong.kernel.errors import Forbidden, NotFound

READ = "tasks.task.read"
MANAGE = "tasks.task.manage"
REPORT = "tasks.progress.report"
SUPERVISE = "tasks.supervision.manage"
ANALYSE = "tasks.analysis.read"
CAPACITY = "tasks.capacity.manage"
INSPECT = "tasks.inspection.manage"
PUBLIC_RESULTS = "tasks.inspection.public"

OFFICE_ROLES = [
    Role.WINDOW_CLERK,
    Role.REVIEWER,
    Role.APPROVER,
    Role.HEAD,
    Role.DATA_STEWARD,
    Role.SUPERVISOR,
    Role.DISPATCHER,
]


def guarded(department_id: int | None) -> Guarded:
    return Guarded(kind="task", department_id=department_id)


def actor_departments(actor: Actor) -> frozenset[int]:
    found: set[int] = set(actor.department_ids)
    for departments in actor.scopes.values():
        found |= departments
    return frozenset(found)


def cooperating(session: Session, task_ids: Iterable[int]) -> dict[int, list[int]]:
    ids = list(task_ids)
    found: dict[int, list[int]] = {task_id: [] for task_id in ids}
    if not ids:
        return found
    for task_id, dept in session.execute(
        select(TaskCooperation.task_id, TaskCooperation.department_id)
        .where(TaskCooperation.task_id.in_(ids))
        .order_by(TaskCooperation.task_id, TaskCooperation.department_id)
    ):
        found[task_id].append(dept)
    return found


def visible_ids(session: Session, actor: Actor) -> set[int] | None:
    """The ids of the tasks ``actor`` may see; ``None`` means every task (admin)."""
    if actor.is_admin:
        return None
    departments = actor_departments(actor)
    if not departments or not actor.is_authenticated:
        return set()
    involved = set(
        session.scalars(
            select(TaskCooperation.task_id).where(TaskCooperation.department_id.in_(departments))
        )
    )
    visible: set[int] = set()
    rows = session.execute(
        select(
            Task.id, Task.parent_id, Task.department_id, Task.supervising_department_id
        ).order_by(Task.id)
    )
    # Ids ascend from parent to child (a parent exists before its children), so one pass
    # in id order sees each parent's verdict before its children.
    for task_id, parent_id, dept, supervising in rows:
        if (
            dept in departments
            or supervising in departments
            or task_id in involved
            or (parent_id is not None and parent_id in visible)
        ):
            visible.add(task_id)
    return visible


def chain(session: Session, task: Task) -> list[Task]:
    """The task and its ancestors, nearest first."""
    found = [task]
    while found[-1].parent_id is not None:
        found.append(session.get_one(Task, found[-1].parent_id))
    return found


def _departments_of(session: Session, tasks: list[Task]) -> set[int]:
    depts = {t.department_id for t in tasks}
    depts |= {t.supervising_department_id for t in tasks if t.supervising_department_id}
    for extra in cooperating(session, [t.id for t in tasks]).values():
        depts.update(extra)
    return depts


def can_see(session: Session, actor: Actor, task: Task) -> bool:
    if actor.is_admin:
        return True
    if not actor.is_authenticated:
        return False
    return bool(_departments_of(session, chain(session, task)) & actor_departments(actor))


def load_visible(session: Session, actor: Actor, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None or not can_see(session, actor, task):
        raise NotFound.of("任务", "Task", task_id)
    return task


def may_manage(session: Session, actor: Actor, task: Task) -> bool:
    """负责人/督办员 of the task's department, of a department above it in the tree, or
    of the tree's supervising office."""
    ancestors = chain(session, task)
    depts = {t.department_id for t in ancestors}
    depts |= {t.supervising_department_id for t in ancestors if t.supervising_department_id}
    return any(can(actor, MANAGE, guarded(dept)) for dept in depts)


def require_manage(session: Session, actor: Actor, task: Task) -> None:
    if not may_manage(session, actor, task):
        raise Forbidden(
            "只有任务所在部门或上级任务部门的负责人、督办员可以修改或分解该任务",
            "Only a head or supervisor of the task's department (or of a task above it) may"
            " change or decompose it",
            code="not_task_manager",
            details={"task_id": task.id},
        )


def may_report(session: Session, actor: Actor, task: Task) -> bool:
    depts = [task.department_id, *cooperating(session, [task.id])[task.id]]
    return any(can(actor, REPORT, guarded(dept)) for dept in depts) or may_manage(
        session, actor, task
    )


def require_report(session: Session, actor: Actor, task: Task) -> None:
    if not may_report(session, actor, task):
        raise Forbidden(
            "只有牵头或配合部门的人员可以报送进展、发表意见",
            "Only staff of the lead or a cooperating department may report or comment",
            code="not_task_member",
            details={"task_id": task.id},
        )
