"""共享申请与授权: a consuming department requests a resource; grants and their end.

What happens to a request depends on the resource's 共享类型:

- 无条件共享 (unconditional): granted at once, in the request's own transaction;
- 有条件共享 (conditional): pending; an approval process (``approval``) starts in the
  same transaction, and the provider's decision arrives as a workflow event;
- 不予共享 (not_shared): refused at once, the catalogue's legal basis recorded as the
  opinion.

A grant names its items, which of them are masked and how (``masking.rule_for``), the
purpose, its validity (valid_from … valid_until, inclusive, China time) and a rate
limit. It ends when it expires or when the provider revokes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.exchange import approval
from xietong.apps.exchange.events import GrantCreated, GrantRevoked, ShareRequested
from xietong.apps.exchange.gateway_cache import forget_grants
from xietong.apps.exchange.masking import rule_for
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.service import load
from xietong.apps.exchange.sharing_models import Grant, ShareRequest
from xietong.apps.exchange.vocab import Classification, ShareType, Status
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize, visible_departments
from xietong.kernel.access import Resource as Guarded
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

REQUEST = "exchange.request.create"
READ = "exchange.request.read"
MANAGE_GRANT = "exchange.grant.manage"
MODULE = "exchange"
MAX_TEXT = 1000
MAX_PERIOD = timedelta(days=3 * 366)
DEFAULT_RATE = 600  # queries per minute per grant
MAX_RATE = 1_000_000


@dataclass(frozen=True)
class RequestInput:
    resource_code: str
    items: tuple[str, ...]
    purpose: str
    legal_basis: str
    valid_until: date
    valid_from: date | None = None
    consumer_code: str | None = None  # default: the actor's own department


@dataclass(frozen=True)
class RequestView:
    id: int
    resource_code: str
    resource_name: str
    provider_id: int
    provider_name: str
    consumer_id: int
    consumer_name: str
    requested_by: str
    items: tuple[str, ...]
    purpose: str
    legal_basis: str
    valid_from: date
    valid_until: date
    status: str
    share_type: str
    opinion: str | None
    decided_by: str | None
    decided_at: datetime | None
    process_instance_id: int | None
    created_at: datetime
    grant_id: int | None = None
    task_id: int | None = None


@dataclass(frozen=True)
class GrantView:
    id: int
    request_id: int
    resource_code: str
    resource_name: str
    provider_id: int
    provider_name: str
    consumer_id: int
    consumer_name: str
    items: tuple[str, ...]
    masked: dict[str, str]
    purpose: str
    valid_from: date
    valid_until: date
    rate_per_minute: int
    status: str  # active · revoked · expired · not_yet_valid
    created_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


def today() -> date:
    return clock.local_now().date()


def grant_state(row: Grant, on: date) -> str:
    if row.status == "revoked":
        return "revoked"
    if on > row.valid_until:
        return "expired"
    if on < row.valid_from:
        return "not_yet_valid"
    return "active"


def _names(session: Session, *ids: int) -> dict[int, str]:
    rows = session.execute(select(Department.id, Department.name).where(Department.id.in_(ids)))
    return {key: value for key, value in rows}


def request_view(session: Session, row: ShareRequest, **extra: Any) -> RequestView:
    resource = session.get_one(Resource, row.resource_id)
    names = _names(session, row.provider_id, row.consumer_id)
    grant_id = session.scalar(select(Grant.id).where(Grant.request_id == row.id))
    return RequestView(
        row.id,
        resource.code,
        resource.name,
        row.provider_id,
        names.get(row.provider_id, ""),
        row.consumer_id,
        names.get(row.consumer_id, ""),
        row.requested_by,
        tuple(row.items),
        row.purpose,
        row.legal_basis,
        row.valid_from,
        row.valid_until,
        row.status,
        row.share_type,
        row.opinion,
        row.decided_by,
        row.decided_at,
        row.process_instance_id,
        row.created_at,
        grant_id,
        **extra,
    )


def grant_view(session: Session, row: Grant, on: date | None = None) -> GrantView:
    resource = session.get_one(Resource, row.resource_id)
    names = _names(session, row.provider_id, row.consumer_id)
    return GrantView(
        row.id,
        row.request_id,
        resource.code,
        resource.name,
        row.provider_id,
        names.get(row.provider_id, ""),
        row.consumer_id,
        names.get(row.consumer_id, ""),
        tuple(row.items),
        dict(row.masked or {}),
        row.purpose,
        row.valid_from,
        row.valid_until,
        row.rate_per_minute,
        grant_state(row, on or today()),
        row.created_at,
        row.revoked_at,
        row.revoke_reason,
    )


def _text(value: str, zh: str, en: str, code: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned or len(cleaned) > MAX_TEXT:
        raise InvalidInput(
            f"请填写{zh}（最多 {MAX_TEXT} 个字符）",
            f"{en} is required (at most {MAX_TEXT} characters)",
            code=code,
        )
    return cleaned


def _check_items(resource: Resource, items: tuple[str, ...]) -> tuple[str, ...]:
    names = [item.name for item in resource.items]
    wanted = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not wanted:
        raise InvalidInput(
            "请选择至少一个信息项", "Choose at least one item", code="items_required"
        )
    unknown = [item for item in wanted if item not in names]
    if unknown:
        raise InvalidInput(
            f"资源没有这些信息项：{'、'.join(unknown)}",
            f"The resource has no items {', '.join(unknown)}",
            code="unknown_items",
            details={"items": unknown},
        )
    return tuple(name for name in names if name in wanted)  # catalogue order


def _consumer(session: Session, actor: Actor, code: str | None) -> Department:
    if code:
        dept = session.scalar(select(Department).where(Department.code == code.strip()))
        if dept is None:
            raise NotFound.of("部门", "Department", code)
        return dept
    if len(actor.department_ids) != 1:
        raise InvalidInput(
            "请指定申请部门", "Name the requesting department", code="consumer_required"
        )
    return session.get_one(Department, next(iter(actor.department_ids)))


def masked_items(resource: Resource, items: tuple[str, ...]) -> dict[str, str]:
    """Items to mask and their rules: a matching name on a non-public item."""
    levels = {item.name: item.classification for item in resource.items}
    masked = {}
    for name in items:
        rule = rule_for(name)
        if rule and levels.get(name) != Classification.PUBLIC.value:
            masked[name] = rule
    return masked


def new_grant(request: ShareRequest, resource: Resource, now: datetime) -> Grant:
    items = tuple(request.items)
    return Grant(
        request_id=request.id,
        resource_id=request.resource_id,
        provider_id=request.provider_id,
        consumer_id=request.consumer_id,
        items=list(items),
        masked=masked_items(resource, items),
        purpose=request.purpose,
        valid_from=request.valid_from,
        valid_until=request.valid_until,
        rate_per_minute=DEFAULT_RATE,
        status="active",
        created_at=now,
    )


def grant_event(grant: Grant, code: str) -> GrantCreated:
    return GrantCreated(
        code,
        grant.consumer_id,
        (grant.provider_id, grant.consumer_id),
        grant.id,
        tuple(grant.items),
        grant.valid_until.isoformat(),
    )


def submit_request(ctx: Context, actor: Actor, data: RequestInput) -> RequestView:
    """File a request; its share type decides what happens at once (see the module)."""
    authorize(actor, REQUEST)
    purpose = _text(data.purpose, "用途", "The purpose", "purpose_required")
    basis = _text(data.legal_basis, "依据", "The legal basis", "legal_basis_required")
    start = data.valid_from or today()
    if data.valid_until < start or data.valid_until < today():
        raise InvalidInput(
            "有效期截止日期须晚于开始日期且不早于今天",
            "The period must end after it starts, and not in the past",
            code="invalid_period",
        )
    if data.valid_until - start > MAX_PERIOD:
        raise InvalidInput(
            "申请期限最长三年", "A request covers at most three years", code="period_too_long"
        )
    with ctx.db.read() as session:  # checked before anything is deployed or written
        resource = load(session, data.resource_code)
        if resource.status != Status.PUBLISHED.value:
            raise NotFound.of("信息资源", "Resource", data.resource_code)
        _check_items(resource, data.items)
        conditional = resource.share_type == ShareType.CONDITIONAL.value
    process = approval.ensure_process(ctx) if conditional else 0
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        resource = load(session, data.resource_code)
        if resource.status != Status.PUBLISHED.value:
            raise NotFound.of("信息资源", "Resource", data.resource_code)
        consumer = _consumer(session, actor, data.consumer_code)
        authorize(actor, REQUEST, Guarded("exchange.request", consumer.id))
        if consumer.id == resource.provider_id:
            raise InvalidInput(
                "提供方部门无需申请本部门的资源",
                "A department does not request its own resource",
                code="own_resource",
            )
        items = _check_items(resource, data.items)
        pending = session.scalar(
            select(ShareRequest.id).where(
                ShareRequest.resource_id == resource.id,
                ShareRequest.consumer_id == consumer.id,
                ShareRequest.status == "pending",
            )
        )
        if pending is not None:
            raise Conflict(
                f"该部门已有待审批的申请（编号 {pending}）",
                f"The department already has a pending request ({pending})",
                code="request_pending",
                details={"request_id": pending},
            )
        now = clock.now()
        row = ShareRequest(
            resource_id=resource.id,
            provider_id=resource.provider_id,
            consumer_id=consumer.id,
            requested_by=actor.label,
            items=list(items),
            purpose=purpose,
            legal_basis=basis,
            valid_from=start,
            valid_until=data.valid_until,
            status="pending",
            share_type=resource.share_type,
            created_at=now,
        )
        session.add(row)
        session.flush()
        payload: dict[str, Any] = {
            "request_id": row.id,
            "resource": resource.code,
            "consumer": consumer.code,
            "items": list(items),
            "purpose": purpose,
            "legal_basis": basis,
            "valid_from": start.isoformat(),
            "valid_until": data.valid_until.isoformat(),
            "share_type": resource.share_type,
        }
        subject = f"exchange.request:{row.id}"
        departments = (resource.provider_id, consumer.id)
        if resource.share_type == ShareType.UNCONDITIONAL.value:
            row.status, row.decided_at, row.decided_by = "approved", now, "system:exchange"
            row.opinion = "无条件共享，自动授权"
            grant = new_grant(row, resource, now)
            session.add(grant)
            session.flush()
            payload |= {"status": "approved", "grant_id": grant.id, "masked": grant.masked}
            uow.emit(grant_event(grant, resource.code), MODULE)
        elif resource.share_type == ShareType.NOT_SHARED.value:
            row.status, row.decided_at, row.decided_by = "refused", now, "system:exchange"
            row.opinion = f"不予共享。依据：{resource.not_shared_basis}"
            payload |= {"status": "refused", "basis": resource.not_shared_basis}
        else:
            state = approval.start(uow, process, row, resource, consumer)
            row.process_instance_id = state
            payload |= {"status": "pending", "process_instance_id": state}
        uow.record(REQUEST, subject, payload)
        uow.emit(
            ShareRequested(resource.code, consumer.id, departments, row.id, resource.share_type),
            MODULE,
        )
        view = request_view(session, row)
        uow.commit()
    if view.grant_id is not None:
        forget_grants()
    return view


def _readable(actor: Actor) -> frozenset[int] | None:
    return visible_departments(actor, READ)


def list_requests(
    ctx: Context,
    actor: Actor,
    *,
    role: str = "consumer",  # consumer: my department's requests · provider: the inbox
    status: str | None = None,
    limit: int = 100,
) -> list[RequestView]:
    authorize(actor, READ)
    if role not in {"consumer", "provider"}:
        raise InvalidInput("role 应为 consumer 或 provider", "role: consumer or provider")
    departments = _readable(actor)
    column = ShareRequest.consumer_id if role == "consumer" else ShareRequest.provider_id
    query = select(ShareRequest).order_by(ShareRequest.id.desc()).limit(min(limit, 500))
    if departments is not None:
        query = query.where(column.in_(sorted(departments)))
    if status:
        query = query.where(ShareRequest.status == status)
    with ctx.db.read() as session:
        rows = list(session.scalars(query))
        tasks = approval.open_tasks(session, [row.process_instance_id for row in rows])
        return [
            request_view(session, row, task_id=tasks.get(row.process_instance_id or -1))
            for row in rows
        ]


def get_request(ctx: Context, actor: Actor, request_id: int) -> RequestView:
    authorize(actor, READ)
    with ctx.db.read() as session:
        row = session.get(ShareRequest, request_id)
        if row is None:
            raise NotFound.of("共享申请", "Share request", request_id)
        authorize(
            actor,
            READ,
            Guarded("exchange.request", row.provider_id, frozenset({row.consumer_id})),
        )
        tasks = approval.open_tasks(session, [row.process_instance_id])
        return request_view(session, row, task_id=tasks.get(row.process_instance_id or -1))


def decide_request(
    ctx: Context, actor: Actor, request_id: int, *, approve: bool, opinion: str
) -> RequestView:
    """The provider's 同意 / 不同意 with 审批意见, as the approval task's completion.

    The grant itself is written when the workflow's event arrives (``approval``), so a
    decision taken in the workflow workbench and one taken here end the same way.
    """
    authorize(actor, "exchange.request.decide")
    opinion = _text(opinion, "审批意见", "An opinion", "opinion_required")
    with ctx.db.read() as session:
        row = session.get(ShareRequest, request_id)
        if row is None:
            raise NotFound.of("共享申请", "Share request", request_id)
        authorize(actor, "exchange.request.decide", Guarded("exchange.request", row.provider_id))
        if row.status != "pending" or row.process_instance_id is None:
            raise Conflict(
                "该申请已处理", "The request has already been decided", code="already_decided"
            )
        task_id = approval.open_tasks(session, [row.process_instance_id]).get(
            row.process_instance_id
        )
    if task_id is None:
        raise Conflict("审批任务不存在或已办结", "No open approval task", code="no_open_task")
    approval.complete(ctx, actor, task_id, approve=approve, opinion=opinion)
    return get_request(ctx, actor, request_id)


def list_grants(
    ctx: Context, actor: Actor, *, role: str = "consumer", limit: int = 200
) -> list[GrantView]:
    authorize(actor, READ)
    departments = _readable(actor)
    column = Grant.consumer_id if role == "consumer" else Grant.provider_id
    query = select(Grant).order_by(Grant.id.desc()).limit(min(limit, 500))
    if departments is not None:
        query = query.where(column.in_(sorted(departments)))
    with ctx.db.read() as session:
        on = today()
        return [grant_view(session, row, on) for row in session.scalars(query)]


def _load_grant_for_provider(session: Session, actor: Actor, grant_id: int) -> Grant:
    row = session.get(Grant, grant_id)
    if row is None:
        raise NotFound.of("授权", "Grant", grant_id)
    authorize(actor, MANAGE_GRANT, Guarded("exchange.grant", row.provider_id))
    return row


def revoke_grant(ctx: Context, actor: Actor, grant_id: int, reason: str) -> GrantView:
    authorize(actor, MANAGE_GRANT)
    reason = _text(reason, "撤销原因", "A reason", "reason_required")
    with UnitOfWork(ctx, actor) as uow:
        row = _load_grant_for_provider(uow.session, actor, grant_id)
        if row.status == "revoked":
            raise Conflict("授权已撤销", "The grant is already revoked", code="already_revoked")
        row.status, row.revoked_at, row.revoke_reason = "revoked", clock.now(), reason
        view = grant_view(uow.session, row)
        uow.record("exchange.grant.revoke", f"exchange.grant:{grant_id}", {"reason": reason})
        uow.emit(
            GrantRevoked(
                view.resource_code,
                row.consumer_id,
                (row.provider_id, row.consumer_id),
                row.id,
                reason,
            ),
            MODULE,
        )
        uow.commit()
    forget_grants()
    return view


def set_rate_limit(ctx: Context, actor: Actor, grant_id: int, per_minute: int) -> GrantView:
    authorize(actor, MANAGE_GRANT)
    if not 1 <= per_minute <= MAX_RATE:
        raise InvalidInput(
            f"频率上限应在 1–{MAX_RATE} 次/分钟之间",
            f"The rate limit must be 1–{MAX_RATE} per minute",
            code="invalid_rate_limit",
        )
    with UnitOfWork(ctx, actor) as uow:
        row = _load_grant_for_provider(uow.session, actor, grant_id)
        old, row.rate_per_minute = row.rate_per_minute, per_minute
        uow.record(
            "exchange.grant.rate_limit",
            f"exchange.grant:{grant_id}",
            {"from": old, "to": per_minute},
        )
        view = grant_view(uow.session, row)
        uow.commit()
    forget_grants()
    return view
