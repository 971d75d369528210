"""Writing, listing and reading in-app messages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, Role, authorize
from xietong.kernel.bus.claim import insert_ignore
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.notify.models import NotifyMessage
from xietong.kernel.org.models import Membership, User
from xietong.kernel.uow import UnitOfWork

READ = "notify.read"
MAX_PAGE = 100


@dataclass(frozen=True)
class MessageView:
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    created_at: datetime
    read: bool

    @classmethod
    def of(cls, row: NotifyMessage, language: str) -> MessageView:
        zh = language.startswith("zh")
        return cls(
            id=row.id,
            kind=row.kind,
            title=row.title_zh if zh else row.title_en,
            body=row.body_zh if zh else row.body_en,
            link=row.link,
            created_at=row.created_at,
            read=row.read_at is not None,
        )


def notify(
    session: Session,
    user_ids: Iterable[int],
    kind: str,
    *,
    title_zh: str,
    title_en: str,
    body_zh: str = "",
    body_en: str = "",
    link: str | None = None,
    source_event_id: str | None = None,
) -> int:
    """Add a message for each user in the caller's transaction; returns how many.

    With ``source_event_id`` a second call for the same event and user adds nothing,
    so consumers stay idempotent even without their own marker.
    """
    now = clock.now()
    rows = [
        {
            "user_id": user_id,
            "kind": kind,
            "title_zh": title_zh[:300],
            "title_en": title_en[:300],
            "body_zh": body_zh,
            "body_en": body_en,
            "link": link,
            "source_event_id": source_event_id,
            "created_at": now,
        }
        for user_id in dict.fromkeys(user_ids)  # each recipient once, in order
    ]
    if not rows:
        return 0
    if source_event_id is None:
        session.execute(NotifyMessage.__table__.insert(), rows)
        return len(rows)
    return insert_ignore(session, NotifyMessage, rows, ["user_id", "source_event_id"])


def role_holders(session: Session, department_id: int, roles: Iterable[Role]) -> list[int]:
    """Active users holding any of ``roles`` in the department: who hears about work
    addressed to a department rather than to a person (a 督办 notice, an escalation)."""
    return list(
        session.scalars(
            select(Membership.user_id)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.department_id == department_id,
                Membership.role.in_([role.value for role in roles]),
                User.active.is_(True),
            )
            .distinct()
            .order_by(Membership.user_id)
        )
    )


def _own(actor: Actor) -> int:
    authorize(actor, READ)
    if actor.kind != "user" or actor.id is None:
        raise InvalidInput(
            "只有用户有站内消息", "Only users have in-app messages", code="not_a_user"
        )
    return actor.id


def unread_count(ctx: Context, actor: Actor) -> int:
    user_id = _own(actor)
    with ctx.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(NotifyMessage)
                .where(NotifyMessage.user_id == user_id, NotifyMessage.read_at.is_(None))
            )
            or 0
        )


def list_messages(
    ctx: Context,
    actor: Actor,
    *,
    unread_only: bool = False,
    before_id: int | None = None,
    limit: int = 20,
    language: str = "zh-CN",
) -> list[MessageView]:
    """Newest first; page with ``before_id`` (the last id of the previous page)."""
    user_id = _own(actor)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"每页条数应在 1 到 {MAX_PAGE} 之间",
            f"limit must be between 1 and {MAX_PAGE}",
            code="invalid_limit",
        )
    query = select(NotifyMessage).where(NotifyMessage.user_id == user_id)
    if unread_only:
        query = query.where(NotifyMessage.read_at.is_(None))
    if before_id is not None:
        query = query.where(NotifyMessage.id < before_id)
    with ctx.db.read() as session:
        rows = session.scalars(query.order_by(NotifyMessage.id.desc()).limit(limit))
        return [MessageView.of(row, language) for row in rows]


def mark_read(ctx: Context, actor: Actor, ids: list[int] | None = None) -> int:
    """Mark the given messages (or, with ``None``, all) of the actor as read.

    Ids of other users' messages are ignored rather than reported: telling the caller
    which ids exist would leak who received what.
    """
    user_id = _own(actor)
    if ids is not None and len(ids) > 1000:
        raise InvalidInput("一次最多 1000 条", "At most 1000 ids at once", code="too_many_ids")
    stmt = (
        update(NotifyMessage)
        .where(NotifyMessage.user_id == user_id, NotifyMessage.read_at.is_(None))
        .values(read_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if ids is not None:
        stmt = stmt.where(NotifyMessage.id.in_(ids))
    with UnitOfWork(ctx, actor) as uow:
        count = int(uow.session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
        uow.record(READ, f"user:{user_id}", {"op": "mark_read", "count": count})
        uow.commit()
    return count
