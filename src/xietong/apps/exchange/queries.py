"""Reading the catalogue: one entry, a filtered page, and the published set.

Published entries are visible to every signed-in person and connected system; drafts
and withdrawn entries only to those who may manage the provider's resources. An entry
the actor may not see answers "not found", so drafts do not leak through their codes.

Search cuts the query into words with jieba (``kernel.search.query_terms``); an entry matches when
every word appears, case-insensitively, in its name, summary, code or an item name —
enough for a city's few thousand entries (docs/search.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from xietong.apps.exchange.models import Item, Resource
from xietong.apps.exchange.service import MANAGE, READ, guarded, load
from xietong.apps.exchange.views import ResourcePage, ResourceView
from xietong.apps.exchange.vocab import ShareType, Status, values
from xietong.kernel import search
from xietong.kernel.access import Actor, authorize, can, visible_departments
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.org.models import Department

MAX_LIMIT = 200

__all__ = ["ResourceQuery", "get_resource", "published_resources", "search_resources"]


@dataclass(frozen=True)
class ResourceQuery:
    text: str | None = None  # in name, summary, code or an item name
    code: str | None = None  # code prefix
    provider: str | None = None  # the providing department's code
    category: str | None = None  # category code prefix: "1" (基础), "101" (… 人口) …
    share_type: str | None = None
    status: str | None = None  # None: every entry the actor may see
    limit: int = 50
    offset: int = 0


def _prefix(value: str) -> str:
    return search.contains(value)[1:]


def _anywhere_in_entry(pattern: str) -> ColumnElement[bool]:
    """The entry's name, summary, code or an item's name is like ``pattern``."""
    esc = search.ESCAPE
    in_items = exists().where(
        and_(Item.resource_id == Resource.id, Item.name.ilike(pattern, escape=esc))
    )
    return or_(
        Resource.name.ilike(pattern, escape=esc),
        Resource.summary.ilike(pattern, escape=esc),
        Resource.code.ilike(pattern, escape=esc),
        in_items,
    )


def _visible(actor: Actor) -> ColumnElement[bool] | None:
    """The SQL filter for what ``actor`` may see; None when it sees everything."""
    manageable = visible_departments(actor, MANAGE)
    if manageable is None:
        return None
    published = Resource.status == Status.PUBLISHED.value
    if not manageable:
        return published
    return or_(published, Resource.provider_id.in_(sorted(manageable)))


def _check(query: ResourceQuery) -> None:
    for value, enum_values, name in (
        (query.share_type, values(ShareType), "share_type"),
        (query.status, values(Status), "status"),
    ):
        if value and value not in enum_values:
            raise InvalidInput(
                f"{name} 应为 {'/'.join(enum_values)}",
                f"{name} must be one of {', '.join(enum_values)}",
                code=f"invalid_{name}",
            )
    if not 1 <= query.limit <= MAX_LIMIT or query.offset < 0:
        raise InvalidInput(
            f"limit 应在 1–{MAX_LIMIT} 之间，offset 不小于 0",
            f"limit must be 1–{MAX_LIMIT} and offset at least 0",
            code="invalid_page",
        )


def _filtered(actor: Actor, query: ResourceQuery) -> Select[tuple[Resource]]:
    stmt = select(Resource)
    conditions: list[ColumnElement[bool]] = []
    visible = _visible(actor)
    if visible is not None:
        conditions.append(visible)
    # every word, anywhere in the entry
    found = search.all_terms(search.query_terms(query.text), _anywhere_in_entry)
    if found is not None:
        conditions.append(found)
    if query.code:
        conditions.append(Resource.code.like(_prefix(query.code.strip()), escape="\\"))
    if query.category:
        pattern = _prefix(query.category.strip())
        conditions.append(Resource.category_code.like(pattern, escape="\\"))
    if query.provider:
        provider_ids = select(Department.id).where(Department.code == query.provider.strip())
        conditions.append(Resource.provider_id.in_(provider_ids))
    if query.share_type:
        conditions.append(Resource.share_type == query.share_type)
    if query.status:
        conditions.append(Resource.status == query.status)
    return stmt.where(and_(*conditions)) if conditions else stmt


def views_of(session: Session, rows: Sequence[Resource]) -> list[ResourceView]:
    dept_ids = {row.provider_id for row in rows}
    depts = {
        dept.id: dept
        for dept in session.scalars(select(Department).where(Department.id.in_(dept_ids)))
    }
    return [ResourceView.of(row, depts[row.provider_id]) for row in rows]


def search_resources(ctx: Context, actor: Actor, query: ResourceQuery) -> ResourcePage:
    """A page of the entries ``actor`` may see that match ``query``, ordered by code."""
    authorize(actor, READ)
    _check(query)
    stmt = _filtered(actor, query)
    with ctx.db.read() as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(
            stmt.options(selectinload(Resource.items))
            .order_by(Resource.code)
            .limit(query.limit)
            .offset(query.offset)
        ).all()
        views = views_of(session, rows)
    return ResourcePage(tuple(views), total, query.limit, query.offset)


def all_visible(ctx: Context, actor: Actor, query: ResourceQuery) -> list[ResourceView]:
    """Every matching entry, unpaged (the workbook export)."""
    authorize(actor, READ)
    _check(query)
    with ctx.db.read() as session:
        stmt = _filtered(actor, query).options(selectinload(Resource.items))
        return views_of(session, session.scalars(stmt.order_by(Resource.code)).all())


def get_resource(ctx: Context, actor: Actor, code: str) -> ResourceView:
    authorize(actor, READ)
    with ctx.db.read() as session:
        row = load(session, code)
        hidden = row.status != Status.PUBLISHED and not can(actor, MANAGE, guarded(row.provider_id))
        if hidden:
            raise NotFound.of("信息资源", "Resource", code)
        return views_of(session, [row])[0]


def published_resources(ctx: Context, actor: Actor) -> list[ResourceView]:
    """The published catalogue, ordered by code (the DCAT export's content)."""
    authorize(actor, READ)
    with ctx.db.read() as session:
        stmt = (
            select(Resource)
            .where(Resource.status == Status.PUBLISHED.value)
            .options(selectinload(Resource.items))
            .order_by(Resource.code)
        )
        return views_of(session, session.scalars(stmt).all())
