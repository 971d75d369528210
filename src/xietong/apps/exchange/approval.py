"""The approval of 有条件共享 requests, run by the workflow engine.

The app deploys a small process (``exchange_share_approval``: one 共享审核 task for the
provider's 数据管理员 or 负责人) the first time it is needed, starts an instance in the
same transaction as the request (business key ``exchange.request:<id>``), and learns
the decision from the engine's ``workflow.task.completed`` event: approve → a grant,
reject → refused; the approver's 审批意见 becomes the request's opinion. Because the
grant follows the event, a decision made in the workflow workbench (/workflow/tasks)
and one made in the exchange's inbox end the same way, and a redelivered event takes
effect once (the consumer is idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.exchange._in_session import SessionUnit
from xietong.apps.exchange.events import ShareRequestDecided
from xietong.apps.exchange.gateway_cache import forget_grants
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.sharing_models import ShareRequest
from xietong.kernel import clock
from xietong.kernel.access import Actor, operator_actor
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import definitions, operations, runtime
from xietong.kernel.workflow._run import Run
from xietong.kernel.workflow.store import WfDefinition, WfTask

PROCESS_KEY = "exchange_share_approval"
BUSINESS_PREFIX = "exchange.request:"
PROCESS = {
    "key": PROCESS_KEY,
    "name": "数据共享申请审核",
    "description": "有条件共享资源的提供方审核（同意 / 不同意，附审批意见）",
    "steps": [
        {
            "id": "provider_review",
            "name": "提供方审核",
            "task": {"roles": ["data_steward", "head"]},
        }
    ],
}


def ensure_process(ctx: Context) -> int:
    """The id of the approval process's latest version, deploying it the first time."""
    with ctx.db.read() as session:
        found = session.scalar(
            select(WfDefinition.id)
            .where(WfDefinition.key == PROCESS_KEY)
            .order_by(WfDefinition.version.desc())
            .limit(1)
        )
    if found is not None:
        return found
    from xietong.kernel.workflow.template import compile_template

    try:
        return definitions.deploy_graph(
            ctx, operator_actor("exchange"), compile_template(PROCESS), source_format="yaml"
        ).id
    except Conflict:  # deployed concurrently by another request
        return ensure_process(ctx)


def start(
    uow: UnitOfWork, definition_id: int, row: ShareRequest, resource: Resource, consumer: Department
) -> int:
    """Start the approval in ``uow``'s transaction; returns the instance id."""
    run = Run(uow)
    definition = uow.session.get_one(WfDefinition, definition_id)
    state = runtime.start_instance(
        run,
        definition,
        definitions.graph_of(uow.ctx.db, definition),
        variables={
            "resource_code": resource.code,
            "resource_name": resource.name,
            "consumer": consumer.name,
            "items": list(row.items),
            "purpose": row.purpose,
        },
        business_key=f"{BUSINESS_PREFIX}{row.id}",
        department_id=resource.provider_id,
    )
    run.finish()
    return state.row.id


def open_tasks(session: Session, instance_ids: Iterable[int | None]) -> dict[int, int]:
    """instance id -> its open approval task's id."""
    ids = [i for i in instance_ids if i is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(WfTask.instance_id, WfTask.id).where(
            WfTask.instance_id.in_(ids), WfTask.status == "open"
        )
    )
    return {key: value for key, value in rows}


def complete(ctx: Context, actor: Actor, task_id: int, *, approve: bool, opinion: str) -> None:
    """Claim the task if nobody holds it, then complete it with the opinion."""
    try:
        operations.complete(
            ctx, actor, task_id, "approve" if approve else "reject", opinion=opinion
        )
    except Forbidden:
        operations.claim(ctx, actor, task_id)
        operations.complete(
            ctx, actor, task_id, "approve" if approve else "reject", opinion=opinion
        )


def on_task_completed(ctx: Context, event: dict[str, Any], session: Session) -> None:
    """Grant or refuse the request whose approval task was just completed."""
    from xietong.apps.exchange.grants import grant_event, new_grant

    data = event.get("data") or {}
    if data.get("process_key") != PROCESS_KEY:
        return
    task = session.get(WfTask, data["task_id"])
    if task is None or not (task.business_key or "").startswith(BUSINESS_PREFIX):
        return
    request = session.get(ShareRequest, int(task.business_key.removeprefix(BUSINESS_PREFIX)))
    if request is None:
        raise NotFound.of("共享申请", "Share request", task.business_key)
    if request.status != "pending":
        return  # decided already (a second signer, or a replay of an old event)
    now = clock.now()
    approved = data.get("outcome") == "approve"
    request.status = "approved" if approved else "refused"
    request.opinion = task.opinion or ("同意" if approved else "不同意")
    request.decided_by, request.decided_at = task.completed_by, now
    resource = session.get_one(Resource, request.resource_id)
    unit = SessionUnit(session, task.completed_by or "worker:exchange")
    payload: dict[str, Any] = {
        "request_id": request.id,
        "status": request.status,
        "opinion": request.opinion,
        "task_id": task.id,
    }
    departments = (request.provider_id, request.consumer_id)
    if approved:
        grant = new_grant(request, resource, now)
        session.add(grant)
        session.flush()
        # the consumer's session commits after we return: forget cached grants then
        sa_event.listen(session, "after_commit", lambda _s: forget_grants(), once=True)
        payload |= {"grant_id": grant.id, "items": list(grant.items), "masked": grant.masked}
        unit.emit(grant_event(grant, resource.code))
    unit.record("exchange.request.decide", f"exchange.request:{request.id}", payload)
    unit.emit(
        ShareRequestDecided(
            resource.code, request.consumer_id, departments, request.id, request.status
        )
    )
    unit.write()
