"""The catalogue workbook: all-or-nothing import with row-level errors, export round trip."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import openpyxl
import pytest

from tests.apps.exchange.conftest import ADMIN, Org, entry, tree_size
from xietong.apps.exchange import importer, queries, service
from xietong.apps.exchange.queries import ResourceQuery
from xietong.apps.exchange.workbook import ITEMS, RESOURCES
from xietong.kernel.errors import InvalidInput

RES_HEADER = [column.zh for column in RESOURCES.columns]
ITEM_HEADER = [column.zh for column in ITEMS.columns]


def workbook(resources: list[list[Any]], items: list[list[Any]] | None = None) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    sheet = book.create_sheet("资源")
    for row in [RES_HEADER, *resources]:
        sheet.append(row)
    if items is not None:
        sheet = book.create_sheet("信息项")
        for row in [ITEM_HEADER, *items]:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def resource_row(**cells: Any) -> list[Any]:
    """A valid 资源 row (dept-a, 无条件共享) with ``cells`` (by column key) replaced."""
    values = {
        "class": "1 基础信息资源",
        "subclass": "01 人口基础信息",
        "group": "001 户籍人口",
        "detail": None,
        "name": "户籍人口基本信息",
        "code": "101001/000001",
        "provider_code": "dept-a",
        "summary": "户籍人口的身份与户籍登记信息。",
        "format": "数据库",
        "share_type": "无条件共享",
        "share_conditions": None,
        "not_shared_basis": None,
        "share_methods": "接口、文件",
        "open_type": "不予开放",
        "open_conditions": None,
        "update_cycle": "实时",
        "publish_date": date(2024, 3, 1),
        "related_codes": None,
        **cells,
    }
    return [values[column.key] for column in RESOURCES.columns]


ITEM_ROWS = [
    ["101001/000001", "姓名", "字符型", "敏感", "居民姓名"],
    ["101001/000001", "公民身份号码", "C", "敏感", None],
    ["101001/000001", "出生日期", "日期型", "内部", None],
]


def test_a_good_workbook_imports_and_publishes(org: Org) -> None:
    data = workbook(
        [
            # Excel drops the leading zeros of a typed 01 / 001: the import restores them
            resource_row(subclass="1 人口基础信息", group="1 户籍人口"),
            resource_row(
                code=None,  # numbered on import; its items name it by 名称
                name="企业登记信息",
                subclass="02 法人单位基础信息",
                group="001 企业登记",
                provider_code="dept-b",
                share_type="有条件共享",
                share_conditions="按事项申请",
                share_methods="库表",
                format="电子表格/xlsx",
                update_cycle="每日",
                related_codes="101001/000001",
            ),
        ],
        [*ITEM_ROWS, ["企业登记信息", "统一社会信用代码", "字符型", "公开", None]],
    )
    before = tree_size(org.ctx)
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, data, publish=True)
    assert report.errors == []
    assert (report.created, report.updated, report.published) == (2, 0, 2)
    assert report.codes == ["101001/000001", "102001/000001"]
    # per entry: a create and a publish leaf; plus one leaf for the import
    assert tree_size(org.ctx) == before + 5
    people = queries.get_resource(org.ctx, ADMIN, "101001/000001")
    assert people.status == "published" and people.publish_date == date(2024, 3, 1)
    assert people.share_methods == ("api", "file")
    assert [level.code for level in people.category] == ["1", "01", "001"]
    assert [(i.name, i.data_type, i.classification) for i in people.items] == [
        ("姓名", "string", "sensitive"),
        ("公民身份号码", "string", "sensitive"),
        ("出生日期", "date", "internal"),
    ]
    firms = queries.get_resource(org.ctx, ADMIN, "102001/000001")
    assert firms.provider_code == "dept-b" and firms.format_detail == "xlsx"
    assert firms.share_conditions == "按事项申请" and firms.related_codes == ("101001/000001",)


def test_every_bad_row_is_reported_and_nothing_is_written(org: Org) -> None:
    data = workbook(
        [
            resource_row(),  # fine
            resource_row(code="101001/000002", share_type="不予共享", share_methods=None),
            resource_row(code="101001/000003", share_type="有条件共享"),
            resource_row(code="101001/000001"),  # the same code twice
            resource_row(code="101001/000004", provider_code="nobody", update_cycle="每小时"),
            resource_row(code="102001/000005", publish_date="2024-13-45"),
        ],
        [
            *ITEM_ROWS,
            ["101001/000001", "姓名", "字符型", "公开", None],  # duplicate item name
            ["101001/000009", "电话", "字符型", "内部", None],  # no such resource row
            ["101001/000003", "住址", "地址型", "绝密", None],
        ],
    )
    before = tree_size(org.ctx)
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, data)
    found = {(e.sheet, e.row, e.column) for e in report.errors}
    assert found == {
        ("资源", 3, "不予共享依据"),
        ("资源", 4, "共享条件"),
        ("资源", 5, "代码"),
        ("资源", 6, "提供方代码"),
        ("资源", 6, "更新周期"),
        ("资源", 7, "发布日期"),
        ("资源", 7, "代码"),  # 102001/… does not match the category 101001
        ("信息项", 5, "信息项名称"),
        ("信息项", 6, "资源代码"),
        ("信息项", 7, "数据类型"),
        ("信息项", 7, "分级"),
    }, report.errors
    assert all(e.message_zh and e.message_en for e in report.errors)
    assert tree_size(org.ctx) == before
    assert queries.search_resources(org.ctx, ADMIN, ResourceQuery()).total == 0


def test_a_steward_imports_only_their_own_departments_rows(org: Org) -> None:
    theirs = resource_row(code="101001/000002", provider_code="dept-b")
    data = workbook([resource_row(), theirs], ITEM_ROWS)
    report = importer.import_catalogue_xlsx(org.ctx, org.steward_a, data)
    assert [(e.row, e.column) for e in report.errors] == [(3, "提供方代码")]
    assert queries.search_resources(org.ctx, ADMIN, ResourceQuery()).total == 0
    ok = importer.import_catalogue_xlsx(
        org.ctx, org.steward_a, workbook([resource_row()], ITEM_ROWS)
    )
    assert ok.created == 1


def test_export_round_trips(org: Org) -> None:
    ctx = org.ctx
    for share in ("unconditional", "conditional", "not_shared"):
        changes: dict[str, Any] = {"name": f"{share} 资源"}
        if share == "unconditional":
            changes.update(
                open_type="conditionally_open",
                open_conditions="仅公开统计结果",
                format="spreadsheet",
                format_detail="xlsx",
                share_methods=("api", "file", "table"),
                summary='=HYPERLINK("http://evil")',  # must stay text in the export
            )
        created = service.create_resource(ctx, ADMIN, entry(share_type=share, **changes))
        service.publish_resource(ctx, ADMIN, created.code)
    draft = service.create_resource(ctx, org.steward_b, entry(provider="dept-b", items=()))
    exported = importer.export_catalogue_xlsx(ctx, ADMIN)
    book = openpyxl.load_workbook(io.BytesIO(exported))
    assert book.sheetnames == ["资源", "信息项", "说明"]
    assert [c.value for c in book["资源"][1]] == RES_HEADER
    summaries = [row[7] for row in book["资源"].iter_rows(min_row=2)]
    assert any(cell.data_type == "s" and cell.value.startswith("=") for cell in summaries)

    before = queries.all_visible(ctx, ADMIN, ResourceQuery())
    leaves = tree_size(ctx)
    report = importer.import_catalogue_xlsx(ctx, ADMIN, exported)
    assert report.errors == []
    assert (report.created, report.updated, report.unchanged) == (0, 0, 4)
    assert tree_size(ctx) == leaves  # an import that changes nothing records nothing
    assert queries.all_visible(ctx, ADMIN, ResourceQuery()) == before
    assert draft.code in report.codes


def test_dry_run_reports_and_writes_nothing(org: Org) -> None:
    before = tree_size(org.ctx)
    data = workbook([resource_row(code=None)], [["户籍人口基本信息", "姓名", "字符型", "敏感"]])
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, data, dry_run=True, publish=True)
    assert report.errors == [] and report.dry_run
    assert (report.created, report.published, report.codes) == (1, 1, ["101001/000001"])
    assert tree_size(org.ctx) == before
    assert queries.search_resources(org.ctx, ADMIN, ResourceQuery()).total == 0


def test_without_an_items_sheet_existing_entries_keep_their_items(org: Org) -> None:
    created = service.create_resource(org.ctx, ADMIN, entry())
    data = workbook([resource_row(code=created.code, name="户籍人口信息（新）")])
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, data)
    assert report.updated == 1
    updated = queries.get_resource(org.ctx, ADMIN, created.code)
    assert updated.name == "户籍人口信息（新）" and len(updated.items) == 3


def test_publishing_needs_items(org: Org) -> None:
    report = importer.import_catalogue_xlsx(
        org.ctx, ADMIN, workbook([resource_row()], []), publish=True
    )
    assert [(e.sheet, e.row, e.column) for e in report.errors] == [("资源", 2, "名称")]


def test_broken_files_and_missing_columns(org: Org) -> None:
    with pytest.raises(InvalidInput) as broken:
        importer.import_catalogue_xlsx(org.ctx, ADMIN, b"not a workbook")
    assert broken.value.code == "invalid_xlsx"
    book = openpyxl.Workbook()
    book.active.title = "别的表"
    buffer = io.BytesIO()
    book.save(buffer)
    with pytest.raises(InvalidInput) as no_sheet:
        importer.import_catalogue_xlsx(org.ctx, ADMIN, buffer.getvalue())
    assert no_sheet.value.code == "invalid_catalogue_workbook"
    book = openpyxl.Workbook()
    book.active.title = "资源"
    book.active.append(["名称", "代码"])
    buffer = io.BytesIO()
    book.save(buffer)
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, buffer.getvalue())
    assert {e.column for e in report.errors} >= {"类", "提供方代码", "共享类型", "更新周期"}
    assert all(e.row == 1 for e in report.errors)


def test_the_template_imports_as_an_empty_catalogue(org: Org) -> None:
    template = importer.catalogue_template_xlsx()
    book = openpyxl.load_workbook(io.BytesIO(template))
    assert [c.value for c in book["信息项"][1]] == ITEM_HEADER
    assert book["说明"].max_row > 10
    report = importer.import_catalogue_xlsx(org.ctx, ADMIN, template)
    assert report.errors == [] and report.codes == []
