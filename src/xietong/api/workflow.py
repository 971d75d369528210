"""Workflow API: definitions, instances, messages, the workbench lists and task operations.

Routes parse, call one service function and render; the services check access to the
instance or task themselves (assignee, 代理 delegate, candidate, department manager)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, XietongError
from xietong.kernel.workflow import (
    definitions,
    history,
    instances,
    operations,
    queries,
    returns,
    services,
    signers,
)

router = APIRouter(prefix="/workflow", tags=["workflow 流程"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Worker = Annotated[Actor, Depends(allow("workflow.task.work"))]
Reader = Annotated[Actor, Depends(allow("workflow.task.read"))]
Manager = Annotated[Actor, Depends(allow("workflow.instance.manage"))]
Admin = Annotated[Actor, Depends(allow("workflow.instance.jump"))]
Variables = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DefinitionIn(Strict):
    format: Literal["bpmn", "yaml"]
    source: str = Field(min_length=1)


class StartIn(Strict):
    key: str | None = None
    definition_id: int | None = None
    variables: Variables = Field(default_factory=dict)
    business_key: str | None = Field(default=None, max_length=200)
    department_id: int | None = None


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=500)


class JumpIn(Strict):
    node_id: str = Field(min_length=1)


class CcIn(Strict):
    user_ids: list[int] = Field(min_length=1, max_length=100)
    task_id: int | None = None
    note: str | None = Field(default=None, max_length=2000)


class MigrateIn(Strict):
    key: str
    from_version: int
    to_version: int
    node_mapping: dict[str, str] = Field(default_factory=dict)


class MessageIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    key: str | None = Field(default=None, max_length=300)
    variables: Variables = Field(default_factory=dict)


class CompleteIn(Strict):
    outcome: Literal["approve", "reject"] = "approve"
    opinion: str | None = None
    attachments: list[Any] = Field(default_factory=list, max_length=100)
    variables: Variables = Field(default_factory=dict)
    version: int | None = None


class OpinionIn(Strict):
    opinion: str | None = None


class SendBackIn(OpinionIn):
    node_id: str = Field(min_length=1)


class ToUserIn(OpinionIn):
    user_id: int


class SignersIn(OpinionIn):
    user_ids: list[int] = Field(min_length=1, max_length=50)
    position: Literal["before", "after", "parallel"] = "parallel"


class UrgeIn(Strict):
    message: str = Field(default="", max_length=500)


def _out(value: Any) -> Any:
    if isinstance(value, list):
        return [_out(item) for item in value]
    return asdict(value)


# -- definitions --


@router.post("/definitions", status_code=201)
async def deploy_definition(
    request: Request,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.definition.deploy"))],
) -> Any:
    """Upload BPMN 2.0 XML or a YAML template (raw body by content type, or JSON
    ``{"format", "source"}``); every executable process becomes a new version."""
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:  # not JSON (or not UTF-8): 400 like every other route
            raise XietongError(
                "请求体不是合法的 JSON", "Malformed JSON body", code="malformed_json", status=400
            ) from None
        try:
            parsed = DefinitionIn.model_validate(data)
        except (ValueError, TypeError) as error:
            raise InvalidInput(
                "请求体无效", f"Invalid body: {error}", code="invalid_body"
            ) from None
        source, source_format = parsed.source, parsed.format
    elif kind in ("application/xml", "text/xml", "application/bpmn+xml"):
        source, source_format = body.decode("utf-8", errors="replace"), "bpmn"
    elif kind in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
        source, source_format = body.decode("utf-8", errors="replace"), "yaml"
    else:
        raise InvalidInput(
            "请上传 BPMN XML 或 YAML 模板",
            "Send BPMN XML or a YAML template (by Content-Type) or JSON {format, source}",
            code="unsupported_media_type",
        )
    return _out(definitions.deploy(ctx, actor, source, source_format))  # type: ignore[arg-type]


@router.get("/definitions")
def list_definitions(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.definition.read"))],
    key: str | None = None,
) -> Any:
    return _out(definitions.list_definitions(ctx, actor, key))


@router.get("/definitions/{key}/versions/{version}")
def get_definition(
    key: str,
    version: int,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.definition.read"))],
) -> Any:
    return asdict(definitions.get_definition(ctx, actor, key, version))


# -- instances --


@router.post("/instances", status_code=201)
def start_instance(
    body: StartIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.instance.start"))],
) -> Any:
    return asdict(
        instances.start(
            ctx,
            actor,
            body.key,
            definition_id=body.definition_id,
            variables=body.variables,
            business_key=body.business_key,
            department_id=body.department_id,
        )
    )


@router.post("/instances/migrate")
def migrate_instances(body: MigrateIn, ctx: CtxDep, actor: Admin) -> Any:
    moved = instances.migrate_instances(
        ctx, actor, body.key, body.from_version, body.to_version, body.node_mapping
    )
    return {"migrated": moved}


@router.get("/instances/{instance_id}")
def get_instance(instance_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(instances.get_instance(ctx, actor, instance_id))


@router.post("/instances/{instance_id}/suspend")
def suspend_instance(instance_id: int, body: ReasonIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(instances.suspend(ctx, actor, instance_id, reason=body.reason))


@router.post("/instances/{instance_id}/resume")
def resume_instance(instance_id: int, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(instances.resume(ctx, actor, instance_id))


@router.post("/instances/{instance_id}/terminate")
def terminate_instance(instance_id: int, body: ReasonIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(instances.terminate(ctx, actor, instance_id, reason=body.reason))


@router.post("/instances/{instance_id}/jump")
def jump_instance(instance_id: int, body: JumpIn, ctx: CtxDep, actor: Admin) -> Any:
    return asdict(instances.jump(ctx, actor, instance_id, body.node_id))


@router.post("/instances/{instance_id}/cc", status_code=201)
def cc_instance(
    instance_id: int,
    body: CcIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.task.urge"))],
) -> Any:
    return _out(
        operations.cc(ctx, actor, instance_id, body.user_ids, task_id=body.task_id, note=body.note)
    )


@router.post("/messages")
def correlate_message(
    body: MessageIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.message.correlate"))],
) -> Any:
    return asdict(instances.correlate_message(ctx, actor, body.name, body.key, body.variables))


@router.post("/incidents/{incident_id}/retry")
def retry_incident(
    incident_id: int,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.incident.manage"))],
) -> Any:
    return asdict(services.retry_incident(ctx, actor, incident_id))


@router.get("/history.xes")
def export_history(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.history.export"))],
    key: str | None = None,
    instance_id: Annotated[list[int] | None, Query()] = None,
) -> Response:
    data = history.export_xes(ctx, actor, key=key, instance_ids=instance_id)
    name = f"{key or 'instances'}.xes"
    return Response(
        data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- the workbench lists --


def _filters(
    process_key: str | None = None,
    business_key: str | None = None,
    node_id: str | None = None,
    created_from: AwareDatetime | None = None,
    created_to: AwareDatetime | None = None,
) -> queries.TaskFilters:
    return queries.TaskFilters(process_key, business_key, node_id, created_from, created_to)


Filters = Annotated[queries.TaskFilters, Depends(_filters)]
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]


@router.get("/tasks/todo")
def todo(
    ctx: CtxDep, actor: Reader, filters: Filters, offset: Offset = 0, limit: Limit = 20
) -> Any:
    return asdict(queries.todo(ctx, actor, filters, offset=offset, limit=limit))


@router.get("/tasks/done")
def done(
    ctx: CtxDep, actor: Reader, filters: Filters, offset: Offset = 0, limit: Limit = 20
) -> Any:
    return asdict(queries.done(ctx, actor, filters, offset=offset, limit=limit))


@router.get("/tasks/cc")
def cc_list(
    ctx: CtxDep, actor: Reader, unread_only: bool = False, offset: Offset = 0, limit: Limit = 20
) -> Any:
    return asdict(queries.cc_list(ctx, actor, unread_only=unread_only, offset=offset, limit=limit))


@router.post("/tasks/cc/{cc_id}/read")
def mark_cc_read(cc_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(operations.mark_cc_read(ctx, actor, cc_id))


@router.get("/tasks/{task_id}")
def get_task(task_id: int, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(queries.get_task(ctx, actor, task_id))


# -- task operations --


@router.post("/tasks/{task_id}/claim")
def claim(task_id: int, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(operations.claim(ctx, actor, task_id))


@router.post("/tasks/{task_id}/complete")
def complete(task_id: int, body: CompleteIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(
        operations.complete(
            ctx,
            actor,
            task_id,
            body.outcome,
            opinion=body.opinion,
            attachments=body.attachments,
            variables=body.variables,
            expected_version=body.version,
        )
    )


@router.post("/tasks/{task_id}/send-back")
def send_back(task_id: int, body: SendBackIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(returns.send_back(ctx, actor, task_id, body.node_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/reject-to-applicant")
def reject_to_applicant(task_id: int, body: OpinionIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(returns.reject_to_applicant(ctx, actor, task_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/transfer")
def transfer(task_id: int, body: ToUserIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(operations.transfer(ctx, actor, task_id, body.user_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/delegate")
def delegate(task_id: int, body: ToUserIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(operations.delegate(ctx, actor, task_id, body.user_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/resolve")
def resolve(task_id: int, body: OpinionIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(operations.resolve(ctx, actor, task_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/add-signer", status_code=201)
def add_signer(task_id: int, body: SignersIn, ctx: CtxDep, actor: Worker) -> Any:
    return _out(
        signers.add_signer(ctx, actor, task_id, body.user_ids, body.position, opinion=body.opinion)
    )


@router.post("/tasks/{task_id}/remove-signer")
def remove_signer(task_id: int, body: OpinionIn, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(signers.remove_signer(ctx, actor, task_id, opinion=body.opinion))


@router.post("/tasks/{task_id}/withdraw")
def withdraw(task_id: int, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(returns.withdraw(ctx, actor, task_id))


@router.post("/tasks/{task_id}/reclaim")
def reclaim(task_id: int, ctx: CtxDep, actor: Worker) -> Any:
    return asdict(returns.reclaim(ctx, actor, task_id))


@router.post("/tasks/{task_id}/urge")
def urge(
    task_id: int,
    body: UrgeIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("workflow.task.urge"))],
) -> Any:
    return asdict(operations.urge(ctx, actor, task_id, message=body.message))
