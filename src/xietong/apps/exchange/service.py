"""Catalogue commands: draft, edit, publish, withdraw and delete resources.

Every command checks the input first (nothing is written when it is bad), then, in one
``UnitOfWork``, checks that the actor may manage the provider's resources — a data
steward or head of the providing department (or a department above it), or an
administrator — writes the change, one audit leaf that pins the entry's content by its
SHA-256, and the event. Queries live in ``queries``.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.apps.exchange import _store
from xietong.apps.exchange.events import (
    ResourceCreated,
    ResourceDeleted,
    ResourcePublished,
    ResourceUpdated,
    ResourceWithdrawn,
)
from xietong.apps.exchange.gateway_cache import forget_resource
from xietong.apps.exchange.messages import message
from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.rules import (
    Problem,
    ResourceInput,
    category_code,
    check_resource,
    publish_problems,
)
from xietong.apps.exchange.views import ResourceView
from xietong.apps.exchange.vocab import Status
from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.access import Resource as Guarded
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

MANAGE = "exchange.resource.manage"
READ = "exchange.catalogue.read"
MODULE = "exchange"

__all__ = [
    "create_resource",
    "delete_resource",
    "publish_resource",
    "update_resource",
    "withdraw_resource",
]


def guarded(department_id: int) -> Guarded:
    """What the access check sees of a resource: its providing department."""
    return Guarded(kind="exchange.resource", department_id=department_id)


def raise_problems(problems: list[Problem]) -> None:
    if not problems:
        return
    first = problems[0]
    raise InvalidInput(
        first.message_zh,
        first.message_en,
        code=first.code,
        details={"problems": [problem.__dict__ for problem in problems]},
    )


def provider_by_code(session: Session, code: str) -> Department:
    dept = session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise InvalidInput(*message("unknown_provider", value=code), code="unknown_provider")
    return dept


def load(session: Session, code: str) -> Resource:
    row = session.scalar(select(Resource).where(Resource.code == code.strip()))
    if row is None:
        raise NotFound.of("信息资源", "Resource", code)
    return row


def _view(session: Session, row: Resource) -> ResourceView:
    session.flush()
    return ResourceView.of(row, session.get_one(Department, row.provider_id))


def _flush(session: Session, code: str) -> None:
    try:
        session.flush()
    except IntegrityError as clash:  # a concurrent command took the code first
        raise Conflict(*message("code_taken", value=code), code="code_taken") from clash


def create_resource(ctx: Context, actor: Actor, data: ResourceInput) -> ResourceView:
    """Draft a catalogue entry; without a code it gets the next one in its category."""
    authorize(actor, MANAGE)
    cleaned, problems = check_resource(data)
    raise_problems(problems)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        dept = provider_by_code(session, cleaned.provider_code)
        authorize(actor, MANAGE, guarded(dept.id))
        code = cleaned.code or _store.next_code(session, category_code(cleaned.category))
        if session.scalar(select(Resource.id).where(Resource.code == code)) is not None:
            raise Conflict(*message("code_taken", value=code), code="code_taken")
        row = _store.new_row(code, dept.id, clock.now())
        _store.write(row, cleaned, dept.id)
        session.add(row)
        _flush(session, code)
        view = _view(session, row)
        uow.record(
            "exchange.resource.create", f"exchange.resource:{code}", _store.audit_payload(view)
        )
        uow.emit(ResourceCreated(row.id, code, dept.code, row.version, view.name), MODULE)
        uow.commit()
    return view


def update_resource(
    ctx: Context,
    actor: Actor,
    code: str,
    data: ResourceInput,
    *,
    expected_version: int | None = None,
) -> ResourceView:
    """Replace an entry's description (its code stays); a no-op edit changes nothing."""
    authorize(actor, MANAGE)
    if data.code is not None and data.code.strip() != code:
        raise InvalidInput(
            "资源代码不可修改（如需改分类，请撤回后新建）",
            "A resource code cannot change (withdraw it and create a new one to reclassify)",
            code="code_immutable",
        )
    cleaned, problems = check_resource(replace(data, code=code))
    raise_problems(problems)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, guarded(row.provider_id))
        if expected_version is not None and row.version != expected_version:
            raise Conflict(
                f"资源已被他人修改（当前版本 {row.version}），请刷新后重试",
                f"The resource was changed meanwhile (now version {row.version}); reload it",
                code="version_conflict",
                details={"version": row.version},
            )
        dept = provider_by_code(session, cleaned.provider_code)
        authorize(actor, MANAGE, guarded(dept.id))  # moving it needs rights on both sides
        if row.status == Status.PUBLISHED:
            raise_problems(publish_problems(len(cleaned.items)))
        if not _store.write(row, cleaned, dept.id):
            return _view(session, row)  # nothing to record: the unit of work rolls back
        row.version += 1
        row.updated_at = clock.now()
        view = _view(session, row)
        uow.record(
            "exchange.resource.update", f"exchange.resource:{code}", _store.audit_payload(view)
        )
        event = ResourceUpdated(row.id, code, dept.code, row.version, view.name, row.status)
        uow.emit(event, MODULE)
        uow.commit()
    forget_resource(ctx.db.url, code)
    return view


def publish_resource(ctx: Context, actor: Actor, code: str) -> ResourceView:
    """Put a draft (or a withdrawn entry) in the catalogue; 发布日期 defaults to today."""
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, guarded(row.provider_id))
        if row.status == Status.PUBLISHED:
            raise Conflict(
                f"资源已发布：{code}", f"Already published: {code}", code="already_published"
            )
        raise_problems(publish_problems(len(row.items)))
        _store.mark_published(row, clock.now())
        view = _view(session, row)
        uow.record(
            "exchange.resource.publish", f"exchange.resource:{code}", _store.audit_payload(view)
        )
        event = ResourcePublished(
            row.id, code, view.provider_code, row.version, view.name, view.share_type
        )
        uow.emit(event, MODULE)
        uow.commit()
    forget_resource(ctx.db.url, code)
    return view


def withdraw_resource(ctx: Context, actor: Actor, code: str, reason: str) -> ResourceView:
    """Take a published entry out of the catalogue, with the reason (kept in the log)."""
    authorize(actor, MANAGE)
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise InvalidInput(
            "请填写撤回原因（最多 500 个字符）",
            "Give a reason for withdrawing (at most 500 characters)",
            code="reason_required",
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, guarded(row.provider_id))
        if row.status != Status.PUBLISHED:
            raise Conflict(f"资源未发布：{code}", f"Not published: {code}", code="not_published")
        now = clock.now()
        row.status, row.withdrawn_at, row.updated_at = Status.WITHDRAWN.value, now, now
        row.version += 1
        view = _view(session, row)
        payload = _store.audit_payload(view, reason=reason)
        uow.record("exchange.resource.withdraw", f"exchange.resource:{code}", payload)
        uow.emit(ResourceWithdrawn(row.id, code, view.provider_code, row.version, reason), MODULE)
        uow.commit()
    forget_resource(ctx.db.url, code)
    return view


def delete_resource(ctx: Context, actor: Actor, code: str) -> None:
    """Delete a draft. A published entry is withdrawn instead: others may refer to it."""
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, guarded(row.provider_id))
        if row.status != Status.DRAFT or row.published_at is not None:
            raise Conflict(
                "只能删除从未发布的草稿；已发布的资源请撤回",
                "Only never-published drafts can be deleted; withdraw a published one",
                code="not_a_draft",
            )
        view = _view(session, row)
        session.delete(row)
        uow.record(
            "exchange.resource.delete", f"exchange.resource:{code}", _store.audit_payload(view)
        )
        uow.emit(ResourceDeleted(view.id, code, view.provider_code, view.version), MODULE)
        uow.commit()
