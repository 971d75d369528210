"""Catalogue commands and queries on both stores: lifecycle, validation, access, search."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.apps.exchange.conftest import ADMIN, ITEMS, Org, entry, tree_size
from xietong.apps.exchange import queries, service
from xietong.apps.exchange.queries import ResourceQuery
from xietong.apps.exchange.rules import CategoryLevel, ItemInput
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.outbox import OutboxEvent


def _event_types(org: Org) -> list[str]:
    with org.ctx.db.read() as session:
        stmt = select(OutboxEvent.type).where(OutboxEvent.type.like("exchange.%"))
        return list(session.scalars(stmt.order_by(OutboxEvent.seq)))


def test_create_numbers_codes_in_the_category_and_records_it(org: Org) -> None:
    before = tree_size(org.ctx)
    first = service.create_resource(org.ctx, org.steward_a, entry())
    second = service.create_resource(org.ctx, org.steward_a, entry(name="流动人口信息"))
    assert (first.code, second.code) == ("101001/000001", "101001/000002")
    assert first.status == "draft" and first.version == 1
    assert first.provider_code == "dept-a" and first.provider_name == "甲局"
    assert [item.name for item in first.items] == ["姓名", "公民身份号码", "出生日期"]
    assert first.category_path == "基础信息资源 / 人口基础信息 / 户籍人口"
    assert tree_size(org.ctx) == before + 2
    assert _event_types(org)[-2:] == ["exchange.resource.created"] * 2
    given = service.create_resource(org.ctx, org.steward_a, entry(code="101001/000100"))
    assert given.code == "101001/000100"
    # the next generated code follows the highest one in the category
    assert service.create_resource(org.ctx, org.steward_a, entry()).code == "101001/000101"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"share_type": "not_shared", "share_methods": ()}, "legal_basis_required"),
        ({"share_type": "conditional"}, "conditions_required"),
        ({"items": (*ITEMS, ItemInput("姓名", "string", "public"))}, "duplicate_item"),
        ({"provider_code": "nobody"}, "unknown_provider"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(org: Org, changes: dict, code: str) -> None:
    before = tree_size(org.ctx)
    with pytest.raises(InvalidInput) as refused:
        service.create_resource(org.ctx, org.steward_a, replace(entry(), **changes))
    assert refused.value.code == code
    assert tree_size(org.ctx) == before
    assert queries.search_resources(org.ctx, ADMIN, ResourceQuery()).total == 0


def test_codes_are_unique(org: Org) -> None:
    service.create_resource(org.ctx, org.steward_a, entry(code="101001/000007"))
    with pytest.raises(Conflict) as taken:
        service.create_resource(org.ctx, org.steward_a, entry(code="101001/000007"))
    assert taken.value.code == "code_taken"


def test_lifecycle_draft_publish_withdraw_republish(org: Org) -> None:
    ctx, steward = org.ctx, org.steward_a
    draft = service.create_resource(ctx, steward, entry(items=()))
    with pytest.raises(InvalidInput) as empty:
        service.publish_resource(ctx, steward, draft.code)
    assert empty.value.code == "items_required"
    edited = service.update_resource(ctx, steward, draft.code, entry(), expected_version=1)
    assert edited.version == 2 and len(edited.items) == 3
    with pytest.raises(Conflict) as stale:
        service.update_resource(ctx, steward, draft.code, entry(), expected_version=1)
    assert stale.value.code == "version_conflict"
    before = tree_size(ctx)
    same = service.update_resource(ctx, steward, draft.code, entry())
    assert same.version == 2 and tree_size(ctx) == before  # a no-op edit records nothing

    published = service.publish_resource(ctx, steward, draft.code)
    assert published.status == "published" and published.publish_date is not None
    assert published.published_at is not None
    with pytest.raises(Conflict):
        service.publish_resource(ctx, steward, draft.code)
    with pytest.raises(InvalidInput) as emptied:
        service.update_resource(ctx, steward, draft.code, entry(items=()))
    assert emptied.value.code == "items_required"
    with pytest.raises(Conflict) as not_draft:
        service.delete_resource(ctx, steward, draft.code)
    assert not_draft.value.code == "not_a_draft"

    with pytest.raises(InvalidInput):
        service.withdraw_resource(ctx, steward, draft.code, " ")
    withdrawn = service.withdraw_resource(ctx, steward, draft.code, "数据源停用")
    assert withdrawn.status == "withdrawn" and withdrawn.withdrawn_at is not None
    again = service.publish_resource(ctx, steward, draft.code)
    assert again.publish_date == published.publish_date  # the first publication date stays
    assert _event_types(org) == [
        "exchange.resource.created",
        "exchange.resource.updated",
        "exchange.resource.published",
        "exchange.resource.withdrawn",
        "exchange.resource.published",
    ]


def test_items_keep_their_ids_across_edits(org: Org) -> None:
    created = service.create_resource(org.ctx, org.steward_a, entry())
    ids = {item.name: item.id for item in created.items}
    reordered = (ITEMS[2], ITEMS[0], ItemInput("民族", "string", "internal"))
    edited = service.update_resource(org.ctx, org.steward_a, created.code, entry(items=reordered))
    assert [item.name for item in edited.items] == ["出生日期", "姓名", "民族"]
    assert edited.items[0].id == ids["出生日期"] and edited.items[1].id == ids["姓名"]


def test_the_code_and_its_category_cannot_change(org: Org) -> None:
    created = service.create_resource(org.ctx, org.steward_a, entry())
    with pytest.raises(InvalidInput) as immutable:
        service.update_resource(org.ctx, org.steward_a, created.code, entry(code="101001/000009"))
    assert immutable.value.code == "code_immutable"
    other = (CategoryLevel("1", ""), CategoryLevel("02", "法人"), CategoryLevel("001", "企业"))
    with pytest.raises(InvalidInput) as moved:
        service.update_resource(org.ctx, org.steward_a, created.code, entry(category=other))
    assert moved.value.code == "code_category_mismatch"


def test_a_steward_manages_only_their_own_department(org: Org) -> None:
    ctx = org.ctx
    mine = service.create_resource(ctx, org.steward_a, entry())
    theirs = service.create_resource(ctx, org.steward_b, entry(provider="dept-b"))
    with pytest.raises(Forbidden):
        service.create_resource(ctx, org.steward_a, entry(provider="dept-b"))
    with pytest.raises(Forbidden):
        service.update_resource(ctx, org.steward_a, theirs.code, entry(provider="dept-b"))
    with pytest.raises(Forbidden):
        service.publish_resource(ctx, org.steward_a, theirs.code)
    with pytest.raises(Forbidden):
        service.delete_resource(ctx, org.steward_a, theirs.code)
    with pytest.raises(Forbidden):  # handing one's entry to another department
        service.update_resource(ctx, org.steward_a, mine.code, entry(provider="dept-b"))
    with pytest.raises(Forbidden):  # a window clerk maintains no catalogue
        service.create_resource(ctx, org.clerk_a, entry())
    # the department head may; so may an administrator, anywhere
    assert service.publish_resource(ctx, org.head_a, mine.code).status == "published"
    assert service.publish_resource(ctx, ADMIN, theirs.code).status == "published"


def test_drafts_are_visible_only_to_their_maintainers(org: Org) -> None:
    ctx = org.ctx
    draft = service.create_resource(ctx, org.steward_a, entry())
    published = service.create_resource(ctx, org.steward_b, entry(provider="dept-b"))
    service.publish_resource(ctx, org.steward_b, published.code)
    with pytest.raises(NotFound):
        queries.get_resource(ctx, org.steward_b, draft.code)
    with pytest.raises(NotFound):
        queries.get_resource(ctx, org.clerk_a, draft.code)  # same department, no role
    assert queries.get_resource(ctx, org.head_a, draft.code).status == "draft"
    assert queries.get_resource(ctx, org.clerk_a, published.code).status == "published"

    def codes(actor, **query) -> list[str]:  # type: ignore[no-untyped-def]
        page = queries.search_resources(ctx, actor, ResourceQuery(**query))
        return [view.code for view in page.resources]

    assert codes(org.steward_a) == [draft.code, published.code]
    assert codes(org.steward_b) == [published.code]
    assert codes(org.clerk_a) == [published.code]
    assert codes(ADMIN, status="draft") == [draft.code]


def test_search_filters(org: Org) -> None:
    ctx = org.ctx
    people = service.create_resource(ctx, org.steward_a, entry())
    firms = service.create_resource(
        ctx,
        org.steward_b,
        entry(
            provider="dept-b",
            share_type="conditional",
            name="企业登记信息",
            summary="企业设立、变更与注销登记。",
            category=(
                CategoryLevel("1", ""),
                CategoryLevel("02", "法人单位基础信息"),
                CategoryLevel("001", "企业登记"),
            ),
            items=(ItemInput("统一社会信用代码", "string", "public"),),
        ),
    )

    def codes(**query) -> list[str]:  # type: ignore[no-untyped-def]
        return [
            v.code for v in queries.search_resources(ctx, ADMIN, ResourceQuery(**query)).resources
        ]

    assert codes(text="企业") == [firms.code]
    assert codes(text="信用代码") == [firms.code]  # an item name
    assert codes(text="101001") == [people.code]
    assert codes(text="%") == []  # LIKE wildcards are matched literally
    assert codes(provider="dept-a") == [people.code]
    assert codes(category="102") == [firms.code]
    assert codes(category="1") == [people.code, firms.code]
    assert codes(share_type="conditional") == [firms.code]
    assert codes(code="102001/") == [firms.code]
    page = queries.search_resources(ctx, ADMIN, ResourceQuery(limit=1, offset=1))
    assert page.total == 2 and [v.code for v in page.resources] == [firms.code]
    with pytest.raises(InvalidInput):
        queries.search_resources(ctx, ADMIN, ResourceQuery(share_type="sometimes"))
    with pytest.raises(InvalidInput):
        queries.search_resources(ctx, ADMIN, ResourceQuery(limit=0))


def test_only_never_published_drafts_are_deleted(org: Org) -> None:
    draft = service.create_resource(org.ctx, org.steward_a, entry())
    service.delete_resource(org.ctx, org.steward_a, draft.code)
    with pytest.raises(NotFound):
        queries.get_resource(org.ctx, ADMIN, draft.code)
    assert _event_types(org)[-1] == "exchange.resource.deleted"
    assert replace(entry(), code=None).code is None


def test_search_cuts_chinese_queries_into_words(org: Org) -> None:
    from xietong.kernel.search import query_terms as search_terms

    assert search_terms("户籍人口信息") == ["户籍", "人口", "信息"]
    assert search_terms("101001/000001 的") == ["101001/000001"]
    service.create_resource(org.ctx, org.steward_a, entry())  # 户籍人口基本信息
    found = queries.search_resources(org.ctx, org.steward_a, ResourceQuery(text="户籍人口信息"))
    assert found.total == 1  # a substring match would find nothing
    assert (
        queries.search_resources(org.ctx, org.steward_a, ResourceQuery(text="户籍 企业")).total == 0
    )
