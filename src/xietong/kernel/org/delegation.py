"""代理 (delegation): A's work also goes to B between two times, for one process or all.

A user sets up their own delegations; an organisation administrator may set them for
anyone (someone falls ill and cannot do it). Two active delegations of the same user
for the same process may not overlap in time, so "who acts for A now" has one answer
per process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, authorize
from xietong.kernel.canonical import rfc3339
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.events import DelegationAdded, DelegationRevoked
from xietong.kernel.org.models import Delegation, User
from xietong.kernel.org.views import Delegate, DelegationView
from xietong.kernel.uow import UnitOfWork


def _authorize_for(actor: Actor, from_user_id: int) -> None:
    authorize(actor, "org.delegation.manage", Resource(kind="delegation", id=from_user_id))
    if not (actor.kind == "user" and actor.id == from_user_id):
        authorize(actor, "org.manage", Resource(kind="delegation", id=from_user_id))


def add_delegation(
    ctx: Context,
    actor: Actor,
    from_user_id: int,
    to_user_id: int,
    starts_at: datetime,
    ends_at: datetime,
    *,
    process_key: str | None = None,
    reason: str = "",
) -> DelegationView:
    _authorize_for(actor, from_user_id)
    if from_user_id == to_user_id:
        raise InvalidInput("不能委托给自己", "Cannot delegate to oneself", code="self_delegation")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("时间须带时区", "Times must carry a time zone", code="naive_datetime")
    if ends_at <= starts_at:
        raise InvalidInput(
            "代理结束时间须晚于开始时间",
            "A delegation must end after it starts",
            code="invalid_delegation_period",
        )
    process_key = (process_key or "").strip() or None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        # Lock the delegating user's row: concurrent adds for the same user serialise
        # here, so the overlap check below cannot be raced on PostgreSQL.
        source = session.scalar(select(User).where(User.id == from_user_id).with_for_update())
        if source is None:
            raise NotFound.of("委托人", "Delegating user", from_user_id)
        target = session.get(User, to_user_id)
        if target is None or not target.active:
            raise NotFound.of("代理人", "Delegate", to_user_id)
        same_process = (
            Delegation.process_key.is_(None)
            if process_key is None
            else Delegation.process_key == process_key
        )
        clash = session.scalar(
            select(Delegation.id).where(
                Delegation.from_user_id == from_user_id,
                same_process,
                Delegation.revoked_at.is_(None),
                Delegation.starts_at < ends_at,
                Delegation.ends_at > starts_at,
            )
        )
        if clash is not None:
            raise Conflict(
                "该时间段已有代理设置",
                "Another delegation covers part of this period",
                code="delegation_overlap",
                details={"delegation_id": clash},
            )
        row = Delegation(
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            starts_at=starts_at,
            ends_at=ends_at,
            process_key=process_key,
            reason=reason.strip(),
            created_at=clock.now(),
        )
        session.add(row)
        session.flush()
        payload = {
            "from_user_id": from_user_id,
            "to_user_id": to_user_id,
            "starts_at": rfc3339(starts_at),
            "ends_at": rfc3339(ends_at),
            "process_key": process_key,
        }
        uow.record("org.delegation.add", f"delegation:{row.id}", payload)
        uow.emit(
            DelegationAdded(
                row.id,
                from_user_id,
                to_user_id,
                rfc3339(starts_at),
                rfc3339(ends_at),
                process_key,
            ),
            module="org",
        )
        uow.commit()
    return DelegationView.of(row)


def revoke_delegation(ctx: Context, actor: Actor, delegation_id: int) -> DelegationView:
    with ctx.db.read() as session:
        row = session.get(Delegation, delegation_id)
        if row is None:
            raise NotFound.of("代理设置", "Delegation", delegation_id)
        from_user_id = row.from_user_id
    _authorize_for(actor, from_user_id)
    with UnitOfWork(ctx, actor) as uow:
        row = uow.session.get(Delegation, delegation_id)
        if row is None:  # pragma: no cover - delegations are revoked, never deleted
            raise NotFound.of("代理设置", "Delegation", delegation_id)
        if row.revoked_at is not None:
            raise Conflict("代理已撤销", "Delegation already revoked", code="already_revoked")
        row.revoked_at = clock.now()
        uow.record("org.delegation.revoke", f"delegation:{row.id}", {})
        uow.emit(DelegationRevoked(row.id, row.from_user_id, row.to_user_id), module="org")
        uow.commit()
    return DelegationView.of(row)


def active_delegates_for(
    session: Session,
    user_id: int,
    *,
    at: datetime | None = None,
    process_key: str | None = None,
) -> list[Delegate]:
    """Users acting for ``user_id`` at ``at`` (default now).

    A delegation for all processes always applies; one for a specific process applies
    only when ``process_key`` names it. Inactive delegates are left out.
    """
    moment = at or clock.now()
    applies = Delegation.process_key.is_(None)
    if process_key is not None:
        applies = applies | (Delegation.process_key == process_key)
    rows = session.execute(
        select(User.id, User.username, User.display_name, Delegation.id, Delegation.ends_at)
        .join(Delegation, and_(Delegation.to_user_id == User.id, User.active.is_(True)))
        .where(
            Delegation.from_user_id == user_id,
            Delegation.revoked_at.is_(None),
            Delegation.starts_at <= moment,
            Delegation.ends_at > moment,
            applies,
        )
        .order_by(Delegation.id)
    )
    return [Delegate(*row) for row in rows]


def list_delegations(ctx: Context, actor: Actor, user_id: int) -> list[DelegationView]:
    """Delegations given by or to ``user_id`` (their own, or any for an administrator)."""
    _authorize_for(actor, user_id)
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Delegation)
            .where((Delegation.from_user_id == user_id) | (Delegation.to_user_id == user_id))
            .order_by(Delegation.starts_at)
        )
        return [DelegationView.of(row) for row in rows]
