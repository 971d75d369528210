"""Tasks API under /api/v1/tasks. Routes parse and render; each calls one service
function, which checks the task's tree and departments itself."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.api.files import download
from xietong.apps.tasks import (
    attachments,
    closure,
    insight,
    inspection,
    queries,
    rights,
    scenarios,
    service,
    supervision,
)
from xietong.apps.tasks.rules import TaskInput, TaskPatch
from xietong.kernel.access import Actor
from xietong.kernel.context import Context

router = APIRouter(prefix="/tasks", tags=["tasks 任务协同与督查督办"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Reader = Annotated[Actor, Depends(allow(rights.READ))]
Manager = Annotated[Actor, Depends(allow(rights.MANAGE))]
Reporter = Annotated[Actor, Depends(allow(rights.REPORT))]
CapacityManager = Annotated[Actor, Depends(allow(rights.CAPACITY))]
Supervisor = Annotated[Actor, Depends(allow(rights.SUPERVISE))]
Analyst = Annotated[Actor, Depends(allow(rights.ANALYSE))]
Inspector = Annotated[Actor, Depends(allow(rights.INSPECT))]
Public = Annotated[Actor, Depends(allow(rights.PUBLIC_RESULTS))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BasisIn(Strict):
    kind: str = Field(default="document", max_length=16)
    title: str = Field(max_length=300)
    ref: str = Field(default="", max_length=300)


class TaskIn(Strict):
    title: str = Field(max_length=200)
    department_code: str = Field(max_length=64)
    planned_start: date
    planned_end: date | None = None
    duration_days: int | None = None
    parent_id: int | None = None
    content: str = Field(default="", max_length=4000)
    basis: list[BasisIn] = Field(default_factory=list, max_length=50)
    goal_name: str | None = Field(default=None, max_length=200)
    goal_unit: str | None = Field(default=None, max_length=32)
    goal_baseline: float | None = None
    goal_target: float | None = None
    goal_current: float | None = None
    cooperating_codes: list[str] = Field(default_factory=list, max_length=50)
    owner: str | None = Field(default=None, max_length=64)
    supervising_department_code: str | None = Field(default=None, max_length=64)
    depends_on: list[int] = Field(default_factory=list, max_length=200)
    weight: float = 1.0
    level: str | None = Field(default=None, max_length=16)
    warn_margin: float | None = None
    warn_due_days: int | None = None

    def to_input(self) -> TaskInput:
        data = self.model_dump()
        data["basis"] = tuple(b.model_dump() for b in self.basis)
        data["cooperating_codes"] = tuple(self.cooperating_codes)
        data["depends_on"] = tuple(self.depends_on)
        return TaskInput(**data)


class TaskPatchIn(Strict):
    title: str | None = Field(default=None, max_length=200)
    content: str | None = Field(default=None, max_length=4000)
    basis: list[BasisIn] | None = Field(default=None, max_length=50)
    goal_name: str | None = Field(default=None, max_length=200)
    goal_unit: str | None = Field(default=None, max_length=32)
    goal_baseline: float | None = None
    goal_target: float | None = None
    planned_start: date | None = None
    planned_end: date | None = None
    duration_days: int | None = None
    owner: str | None = Field(default=None, max_length=64)
    cooperating_codes: list[str] | None = Field(default=None, max_length=50)
    weight: float | None = None
    warn_margin: float | None = None
    warn_due_days: int | None = None
    expected_version: int | None = Field(default=None, ge=1)

    def to_patch(self) -> TaskPatch:
        data = self.model_dump(exclude={"expected_version"})
        if self.basis is not None:
            data["basis"] = tuple(b.model_dump() for b in self.basis)
        if self.cooperating_codes is not None:
            data["cooperating_codes"] = tuple(self.cooperating_codes)
        return TaskPatch(**data)


class LinkIn(Strict):
    depends_on_id: int


class AttachmentIn(Strict):
    """A file uploaded through ``POST /api/v1/files`` (``file_id``), or a link to a
    document kept elsewhere (``name`` and ``url``)."""

    file_id: int | None = None
    name: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=500)


class ProgressIn(Strict):
    percent: float
    text: str = Field(max_length=4000)
    reason: str | None = Field(default=None, max_length=4000)
    goal_value: float | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=20)


class CommentIn(Strict):
    text: str = Field(max_length=4000)


class ClosureIn(Strict):
    evidence: list[AttachmentIn] = Field(default_factory=list, max_length=20)
    note: str = Field(default="", max_length=4000)


class NoticeIn(Strict):
    message: str = Field(max_length=2000)
    days: int = 2


class TextIn(Strict):
    text: str = Field(max_length=4000)


class InstantiateIn(Strict):
    start: date
    departments: dict[str, str]
    title: str | None = Field(default=None, max_length=200)


class BusinessIn(Strict):
    uscc: str = Field(max_length=32)
    name: str = Field(max_length=200)


class InspectorIn(Strict):
    id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    department: str = Field(default="", max_length=100)
    conflicts: list[str] = Field(default_factory=list, max_length=200)


class DrawIn(Strict):
    businesses: list[BusinessIn] = Field(max_length=5000)
    inspectors: list[InspectorIn] = Field(max_length=5000)
    count: int
    per_business: int = 2
    seed: str | None = Field(default=None, max_length=64)


class ResultIn(Strict):
    uscc: str = Field(max_length=32)
    result: str = Field(max_length=16)
    note: str = Field(default="", max_length=1000)


class CapacityIn(Strict):
    capacity: float


@router.get("")
def list_tasks(
    ctx: CtxDep,
    actor: Reader,
    root_id: int | None = None,
    department: str | None = None,
    status: str | None = None,
    level: str | None = None,
    warning: str | None = None,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    query = queries.TaskQuery(root_id, department, status, level, warning, q, limit, offset)
    return asdict(queries.list_tasks(ctx, actor, query))


@router.post("", status_code=201)
def create_task(body: TaskIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.create_task(ctx, actor, body.to_input()))


@router.put("/capacity/{department_code}")
def set_capacity(
    department_code: str, body: CapacityIn, ctx: CtxDep, actor: CapacityManager
) -> Any:
    value = service.set_capacity(ctx, actor, department_code, body.capacity)
    return {"department_code": department_code, "capacity": value}


@router.get("/analysis")
def analysis(ctx: CtxDep, actor: Analyst, root_id: int | None = None) -> Any:
    return asdict(insight.analysis(ctx, actor, root_id))


@router.get("/analysis/what-if")
def what_if(
    ctx: CtxDep,
    actor: Analyst,
    task_id: int,
    slip: Annotated[int, Query(ge=0, le=insight.MAX_SLIP)],
) -> Any:
    return asdict(insight.slip(ctx, actor, task_id, slip))


@router.get("/templates")
def list_templates(actor: Reader) -> Any:
    return [scenarios.describe(t) for t in scenarios.TEMPLATES.values()]


@router.post("/templates/{key}/instantiate", status_code=201)
def instantiate(key: str, body: InstantiateIn, ctx: CtxDep, actor: Manager) -> Any:
    views = scenarios.instantiate(
        ctx, actor, key, start=body.start, departments=body.departments, title=body.title
    )
    return [asdict(view) for view in views]


@router.get("/inspections/{draw_id}")
def get_draw(draw_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(inspection.get_draw(ctx, actor, draw_id))


@router.get("/inspections/{draw_id}/public")
def public_results(draw_id: int, ctx: CtxDep, actor: Public) -> Any:
    return inspection.public_results(ctx, actor, draw_id)


@router.post("/inspections/{draw_id}/results")
def record_result(draw_id: int, body: ResultIn, ctx: CtxDep, actor: Inspector) -> Any:
    view = inspection.record_result(ctx, actor, draw_id, body.uscc, body.result, body.note)
    return asdict(view)


@router.post("/inspections/{draw_id}/publish")
def publish_results(draw_id: int, ctx: CtxDep, actor: Inspector) -> Any:
    return asdict(inspection.publish(ctx, actor, draw_id))


@router.get("/board/{department_code}")
def board(department_code: str, ctx: CtxDep, actor: Reader) -> Any:
    columns = queries.board(ctx, actor, department_code)
    return {status: [asdict(view) for view in views] for status, views in columns.items()}


@router.get("/{task_id}")
def get_task(task_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(queries.get_task(ctx, actor, task_id))


@router.patch("/{task_id}")
def update_task(task_id: int, body: TaskPatchIn, ctx: CtxDep, actor: Manager) -> Any:
    view = service.update_task(
        ctx, actor, task_id, body.to_patch(), expected_version=body.expected_version
    )
    return asdict(view)


@router.get("/{task_id}/tree")
def task_tree(task_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return [asdict(node) for node in queries.tree(ctx, actor, task_id)]


@router.get("/{task_id}/overview")
def task_overview(task_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(queries.overview(ctx, actor, task_id))


@router.post("/{task_id}/dependencies")
def add_dependency(task_id: int, body: LinkIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.add_dependency(ctx, actor, task_id, body.depends_on_id))


@router.delete("/{task_id}/dependencies/{depends_on_id}")
def remove_dependency(task_id: int, depends_on_id: int, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.remove_dependency(ctx, actor, task_id, depends_on_id))


@router.post("/{task_id}/progress", status_code=201)
def report_progress(task_id: int, body: ProgressIn, ctx: CtxDep, actor: Reporter) -> Any:
    view = service.report_progress(
        ctx,
        actor,
        task_id,
        body.percent,
        body.text,
        attachments=[a.model_dump(exclude_none=True) for a in body.attachments],
        reason=body.reason,
        goal_value=body.goal_value,
    )
    return asdict(view)


@router.post("/{task_id}/comments", status_code=201)
def add_comment(task_id: int, body: CommentIn, ctx: CtxDep, actor: Reporter) -> Any:
    return asdict(service.add_comment(ctx, actor, task_id, body.text))


@router.post("/{task_id}/closure", status_code=201)
def request_closure(task_id: int, body: ClosureIn, ctx: CtxDep, actor: Manager) -> Any:
    evidence = [a.model_dump(exclude_none=True) for a in body.evidence]
    return asdict(closure.request_closure(ctx, actor, task_id, evidence, body.note))


@router.get("/{task_id}/files/{file_id}")
def attachment(task_id: int, file_id: int, ctx: CtxDep, actor: Reader) -> Response:
    """A file attached to the task's progress reports or 销号 evidence."""
    return download(*attachments.read(ctx, actor, task_id, file_id))


@router.get("/{task_id}/warnings")
def warning_history(task_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return [asdict(view) for view in queries.warning_history(ctx, actor, task_id)]


@router.post("/{task_id}/supervisions", status_code=201)
def issue_notice(task_id: int, body: NoticeIn, ctx: CtxDep, actor: Supervisor) -> Any:
    return asdict(supervision.issue_notice(ctx, actor, task_id, body.message, days=body.days))


@router.post("/supervisions/{supervision_id}/urge")
def urge(supervision_id: int, body: TextIn, ctx: CtxDep, actor: Supervisor) -> Any:
    return asdict(supervision.urge(ctx, actor, supervision_id, body.text))


@router.post("/supervisions/{supervision_id}/escalate")
def escalate(supervision_id: int, body: TextIn, ctx: CtxDep, actor: Supervisor) -> Any:
    return asdict(supervision.escalate(ctx, actor, supervision_id, body.text))


@router.post("/supervisions/{supervision_id}/respond")
def respond(supervision_id: int, body: TextIn, ctx: CtxDep, actor: Reporter) -> Any:
    return asdict(supervision.respond(ctx, actor, supervision_id, body.text))


@router.get("/supervisions/{supervision_id}/steps")
def supervision_steps(supervision_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return supervision.steps(ctx, actor, supervision_id)


@router.post("/{task_id}/inspections", status_code=201)
def draw(task_id: int, body: DrawIn, ctx: CtxDep, actor: Inspector) -> Any:
    view = inspection.draw(
        ctx,
        actor,
        task_id,
        businesses=[b.model_dump() for b in body.businesses],
        inspectors=[i.model_dump() for i in body.inspectors],
        count=body.count,
        per_business=body.per_business,
        seed=body.seed,
    )
    return asdict(view)
