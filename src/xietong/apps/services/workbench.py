"""The clerk's side: todo / done sub-cases, the sub-case page, 补正, approve or refuse.

A clerk sees a sub-case only when holding a role in its department (or above), and the
sub-case page shows only the fields and materials that matter needs — never the rest
of the applicant's form (data minimisation). Each decision is one unit of work that
completes (or suspends, or terminates) the matter's process instance and moves the
application on (``progress``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from xietong.apps.services import progress
from xietong.apps.services.applications import MATERIALS_OF_APPLICATION
from xietong.apps.services.models import Application, Matter, SubCase
from xietong.apps.services.vocab import (
    REFUSAL_ZH,
    SUB_CASE_STATUS_ZH,
    RefusalKind,
    SubCaseStatus,
)
from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize, visible_departments
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow._ops import finish_task, holder, require_status
from xietong.kernel.workflow._run import InstanceState, Run
from xietong.kernel.workflow.events import InstanceSuspended
from xietong.kernel.workflow.store import WfInstance, WfTask, WfToken

HANDLE = "services.sub_case.handle"
READ = "services.sub_case.read"
MAX_TEXT = 2000


def guard(sub: SubCase) -> Resource:
    return Resource(kind="services.sub_case", department_id=sub.department_id, id=sub.id)


@dataclass(frozen=True)
class WorkItem:
    sub_case_id: int
    application_number: str
    matter_code: str
    matter_name: str
    department_name: str
    status: str
    status_zh: str
    applicant_name: str
    started_at: Any
    due_date: Any
    ended_at: Any


@dataclass(frozen=True)
class SubCaseDetail:
    item: WorkItem
    form_schema: dict[str, Any]
    form: dict[str, Any]  # only this matter's fields
    materials: list[dict[str, Any]]  # only this matter's materials
    outputs_spec: list[dict[str, Any]]
    outputs: dict[str, Any]
    opinion: str | None
    reason: str | None
    supplement: dict[str, Any] | None
    task_id: int | None
    step: str | None  # the open task's name (受理审查, 审批决定 …)
    can_act: bool
    awaiting_external: bool = False  # no task: a system (e.g. the bank) is at work


def _item(sub: SubCase, app: Application, matter: Matter, department_name: str) -> WorkItem:
    return WorkItem(
        sub.id,
        app.number,
        matter.code,
        matter.name,
        department_name,
        sub.status,
        SUB_CASE_STATUS_ZH[SubCaseStatus(sub.status)],
        app.applicant_name,
        sub.started_at,
        sub.due_date,
        sub.ended_at,
    )


def _items(session: Session, stmt: Any) -> list[WorkItem]:
    stmt = stmt.add_columns(Department.name).join(
        Department, Department.id == SubCase.department_id
    )
    return [_item(*row) for row in session.execute(stmt)]


def work_list(
    ctx: Context, actor: Actor, *, done: bool = False, limit: int = 100
) -> list[WorkItem]:
    """待办: processing or awaiting 补正 in my departments; 已办: ended ones."""
    authorize(actor, READ)
    departments = visible_departments(actor, READ)
    statuses = (
        [SubCaseStatus.CONCLUDED, SubCaseStatus.REFUSED]
        if done
        else [SubCaseStatus.PROCESSING, SubCaseStatus.SUPPLEMENT]
    )
    stmt = (
        select(SubCase, Application, Matter)
        .join(Application, Application.id == SubCase.application_id)
        .join(Matter, Matter.id == SubCase.matter_id)
        .where(SubCase.status.in_([s.value for s in statuses]))
        .order_by(SubCase.id.desc() if done else SubCase.id)
        .limit(min(max(limit, 1), 500))
    )
    if departments is not None:
        stmt = stmt.where(SubCase.department_id.in_(departments))
    with ctx.db.read() as session:
        return _items(session, stmt)


def _open_task(session: Session, sub: SubCase) -> WfTask | None:
    if sub.instance_id is None:
        return None
    return session.scalar(
        select(WfTask)
        .where(WfTask.instance_id == sub.instance_id, WfTask.status == "open")
        .order_by(WfTask.id)
        .limit(1)
    )


# the sub-case page's queries, built once (with bound parameters)
_DETAIL = (
    select(
        SubCase,
        Matter,
        Department.name,
        Application.id,
        Application.number,
        Application.applicant_name,
    )
    .join(Application, Application.id == SubCase.application_id)
    .join(Matter, Matter.id == SubCase.matter_id)
    .join(Department, Department.id == SubCase.department_id)
    .where(SubCase.id == bindparam("sub"))
)
_DETAIL_TASK = (
    select(WfInstance.status, WfTask)
    .outerjoin(WfTask, (WfTask.instance_id == WfInstance.id) & (WfTask.status == "open"))
    .where(WfInstance.id == bindparam("instance"))
    .order_by(WfTask.id)
    .limit(1)
)


def get_sub_case(ctx: Context, actor: Actor, sub_case_id: int) -> SubCaseDetail:
    authorize(actor, READ)
    with ctx.db.read() as session:
        # the sub-case with its application, matter and department in one query; its
        # process instance and open task in another (they were seven queries)
        row = session.execute(_DETAIL, {"sub": sub_case_id}).first()
        if row is None:
            raise NotFound.of("子件", "Sub-case", sub_case_id)
        sub, matter, department_name, app_id, number, applicant_name = row
        authorize(actor, READ, guard(sub))
        item = WorkItem(
            sub.id,
            number,
            matter.code,
            matter.name,
            department_name,
            sub.status,
            SUB_CASE_STATUS_ZH[SubCaseStatus(sub.status)],
            applicant_name,
            sub.started_at,
            sub.due_date,
            sub.ended_at,
        )
        codes = {m["code"] for m in matter.materials}
        materials = [
            {
                "code": code,
                "name": name,
                "sha256": sha256,
                "media_type": media_type,
                "size": size,
                "filename": filename,
                "revision": revision,
            }
            for code, name, sha256, size, media_type, filename, revision in session.execute(
                MATERIALS_OF_APPLICATION, {"app": app_id}
            )
            if code in codes
        ]
        task, instance_status = _task_and_instance(session, sub)
        from xietong.kernel.access import can

        # no task, yet the process runs: a system is at work (the bank's webhook, its answer)
        awaiting = (
            task is None and sub.status == SubCaseStatus.PROCESSING and instance_status == "running"
        )
        return SubCaseDetail(
            item=item,
            form_schema=matter.form_schema,
            form=dict(sub.form),
            materials=materials,
            outputs_spec=list(matter.outputs),
            outputs=dict(sub.outputs or {}),
            opinion=sub.opinion,
            reason=sub.reason,
            supplement=sub.supplement,
            task_id=task.id if task else None,
            step=task.name if task else None,
            can_act=sub.status == SubCaseStatus.PROCESSING
            and task is not None
            and can(actor, HANDLE, guard(sub))
            and _may_hold(session, actor, task),
            awaiting_external=awaiting,
        )


def _task_and_instance(session: Session, sub: SubCase) -> tuple[WfTask | None, str | None]:
    """The first open task of the sub-case's process instance, and the instance's status."""
    if sub.instance_id is None:
        return None, None
    rows = session.execute(_DETAIL_TASK, {"instance": sub.instance_id}).first()
    if rows is None:
        return None, None
    status, task = rows
    return task, status


def _may_hold(session: Session, actor: Actor, task: WfTask) -> bool:
    """Whether ``actor`` may complete ``task`` now (its assignee, delegate or candidate)."""
    from xietong.kernel.errors import Forbidden

    try:
        holder(session, actor, task)
    except Forbidden:
        return False
    return True


def material_bytes(
    ctx: Context, actor: Actor, sub_case_id: int, code: str
) -> tuple[bytes, str, str]:
    """A material of a sub-case for its department's staff (only materials it needs)."""
    from xietong.apps.services.files import read_blob

    detail = get_sub_case(ctx, actor, sub_case_id)
    for material in detail.materials:
        if material["code"] == code:
            data = read_blob(ctx, material["sha256"])
            return data, material["media_type"], material["filename"]
    raise NotFound.of("材料", "Material", code)


# SQLite (the write transaction holds the lock): the open task with its instance and
# token in one query, as the engine's ``load_task`` reads them (were three queries)
_OPEN_TASK_WITH_INSTANCE = (
    select(WfTask, WfInstance, WfToken)
    .join(WfInstance, WfInstance.id == WfTask.instance_id)
    .join(WfToken, WfToken.id == WfTask.token_id)
    .where(WfTask.instance_id == bindparam("instance"), WfTask.status == "open")
    .order_by(WfTask.id)
    .limit(1)
    .execution_options(populate_existing=True)
)


def _open_task_of_step(run: Run, sub: SubCase) -> tuple[InstanceState, WfTask] | None:
    """The sub-case's first open task and its instance (PostgreSQL: the instance locked)."""
    if sub.instance_id is None:
        return None
    if run.ctx.db.is_sqlite:
        row = run.session.execute(_OPEN_TASK_WITH_INSTANCE, {"instance": sub.instance_id}).first()
        if row is None:
            return None
        task, instance, token = row
        run.held.append(token)  # finish_task reads it from the identity map
        return run.loaded(instance), task
    task = _open_task(run.session, sub)
    if task is None:
        return None
    return run.instance(task.instance_id), task


def _load(uow: UnitOfWork, sub_case_id: int) -> tuple[Run, progress.Case, SubCase]:
    run = Run(uow)
    case = progress.load_case(run, sub_case_id)
    sub = next((s for s in case.subs if s.id == sub_case_id), None)
    if sub is None:  # pragma: no cover - the sub-case was read a statement ago
        raise NotFound.of("子件", "Sub-case", sub_case_id)
    authorize(uow.actor, HANDLE, guard(sub))
    return run, case, sub


def require_processing(sub: SubCase) -> None:
    if sub.status == SubCaseStatus.SUPPLEMENT:
        raise Conflict(
            "该事项正在等待申请人补正",
            "Waiting for the applicant's supplement",
            code="awaiting_supplement",
        )
    if sub.status != SubCaseStatus.PROCESSING:
        raise Conflict(
            f"该事项当前状态为“{SUB_CASE_STATUS_ZH[SubCaseStatus(sub.status)]}”，不能办理",
            f"The sub-case is {sub.status}; nothing to do",
            code="sub_case_not_processing",
            details={"status": sub.status},
        )


def _text(value: str | None, zh: str, en: str, *, required: bool) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(f"请填写{zh}", f"{en} is required", code="reason_required")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{zh}不能超过 {MAX_TEXT} 字", f"{en} too long", code="text_too_long")
    return value or None


def approve(
    ctx: Context,
    actor: Actor,
    sub_case_id: int,
    *,
    outputs: dict[str, Any] | None = None,
    opinion: str | None = None,
) -> None:
    """同意: complete the open task; when the process ends, the sub-case concludes."""
    authorize(actor, HANDLE)
    opinion = _text(opinion, "审批意见", "Opinion", required=False)
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        run, case, sub = _load(uow, sub_case_id)
        require_processing(sub)
        matter = case.matter(sub)
        cleaned = progress.check_outputs(matter, outputs or {})
        found = _open_task_of_step(run, sub)
        if found is None:
            raise Conflict(
                "该事项没有待办任务", "No open task for this sub-case", code="no_open_task"
            )
        state, task = found
        run.require_active(state)
        require_status(task, "open")
        on_behalf = holder(uow.session, actor, task)
        finish_task(
            run,
            state,
            task,
            "approve",
            opinion=opinion,
            variables={"outputs": cleaned},
            on_behalf_of=on_behalf,
        )
        uow.record(
            "services.sub_case.approve",
            f"services.sub_case:{sub.id}",
            {"application": case.app.number, "matter": matter.code, "task_id": task.id},
        )
        if state.row.status == "completed":
            progress.conclude(case, sub, cleaned, opinion, actor.label)
        run.finish()
        uow.commit()


def refuse(ctx: Context, actor: Actor, sub_case_id: int, *, kind: str, reason: str | None) -> None:
    """不予受理 / 不予许可 with a reason: this branch ends, dependants cannot proceed."""
    authorize(actor, HANDLE)
    try:
        refusal = RefusalKind(kind)
    except ValueError:
        raise InvalidInput(
            "请选择不予受理或不予许可",
            "kind: refuse_acceptance or refuse_permission",
            code="invalid_refusal",
        ) from None
    text = _text(reason, "理由", "A reason", required=True) or ""
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        run, case, sub = _load(uow, sub_case_id)
        require_processing(sub)
        if sub.instance_id is not None:
            state = run.instance(sub.instance_id)
            if state.row.status in ("running", "suspended"):
                from xietong.kernel.workflow import runtime

                runtime.end_instance(run, state, "terminated", reason=REFUSAL_ZH[refusal])
        uow.record(
            f"services.sub_case.{refusal.value}",
            f"services.sub_case:{sub.id}",
            {"application": case.app.number, "matter": case.matter(sub).code, "reason": text},
        )
        progress.refuse(case, sub, refusal, text, actor.label)
        run.finish()
        uow.commit()


def request_supplement(
    ctx: Context,
    actor: Actor,
    sub_case_id: int,
    *,
    reason: str | None,
    fields: list[str] | None = None,
    materials: list[str] | None = None,
) -> None:
    """补正: suspend this matter's process and tell the applicant exactly what to supply."""
    authorize(actor, HANDLE)
    text = _text(reason, "补正原因", "A reason", required=True)
    fields, materials = list(fields or []), list(materials or [])
    if not fields and not materials:
        raise InvalidInput(
            "请列出需补正的字段或材料",
            "List fields or materials to supply",
            code="empty_supplement",
        )
    progress.calendar_ready(ctx)
    with UnitOfWork(ctx, actor) as uow:
        run, case, sub = _load(uow, sub_case_id)
        require_processing(sub)
        matter = case.matter(sub)
        own_fields = set(matter.form_schema.get("properties", {}))
        own_materials = {m["code"] for m in matter.materials}
        bad = [f for f in fields if f not in own_fields] + [
            m for m in materials if m not in own_materials
        ]
        if bad:
            raise InvalidInput(
                f"本事项没有该字段或材料：{bad[0]}",
                f"Not part of this matter: {bad[0]}",
                code="unknown_supplement_item",
                details={"unknown": bad},
            )
        if sub.instance_id is not None:
            state = run.instance(sub.instance_id)
            run.require_active(state)
            state.row.status = "suspended"
            run.history(state, "instance.suspended", activity="补正", details={"reason": text})
            row = state.row
            uow.emit(
                InstanceSuspended(row.id, row.process_key, row.business_key), module="workflow"
            )
        sub.status = SubCaseStatus.SUPPLEMENT.value
        sub.supplement = {
            "reason": text,
            "fields": sorted(set(fields)),
            "materials": sorted(set(materials)),
            "requested_at": clock.now().isoformat(),
            "requested_by": actor.display_name or actor.name,
        }
        case.changed(sub)
        progress.tell_applicant(
            case,
            "services.sub_case.supplement",
            f"请补正材料：{matter.name}",
            f"Supplementary material requested: {matter.name}",
            text,
        )
        uow.record(
            "services.sub_case.request_supplement",
            f"services.sub_case:{sub.id}",
            {"application": case.app.number, "matter": matter.code, **sub.supplement},
        )
        run.finish()
        uow.commit()
