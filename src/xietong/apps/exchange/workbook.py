"""The catalogue workbook's layout: sheets 资源 and 信息项, their columns, reading, writing.

A data office keeps its catalogue in a spreadsheet: one row per resource in 资源, one
row per item in 信息项 (tied to its resource by 资源代码). Headers are Chinese (English
column keys are accepted too); cells hold the Chinese labels the office uses
(无条件共享, 接口、文件, 每月 …), which ``importer`` turns into code names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xietong.apps.exchange.vocab import (
    CLASS_NAMES,
    Classification,
    DataType,
    OpenType,
    ResourceFormat,
    ShareMethod,
    ShareType,
    UpdateCycle,
    choices_zh,
)
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workbook import Column, Row, Sheet, SheetSpec, read_sheets, write_workbook

__all__ = [
    "ITEMS",
    "LIST_SEPARATOR",
    "RESOURCES",
    "SHEETS",
    "Column",
    "Row",
    "Sheet",
    "SheetSpec",
    "catalogue_template_xlsx",
    "read_catalogue_workbook",
    "write_catalogue_workbook",
]

LIST_SEPARATOR = "、"  # between share methods and between related codes


RESOURCES = SheetSpec(
    "resources",
    "资源",
    (
        Column("class", "类", True, ("分类-类",)),
        Column("subclass", "项", True, ("分类-项",)),
        Column("group", "目", True, ("分类-目",)),
        Column("detail", "细目", False, ("分类-细目",)),
        Column("name", "名称", True, ("资源名称", "信息资源名称")),
        Column("code", "代码", False, ("资源代码", "信息资源代码")),
        Column("provider_code", "提供方代码", True),
        Column("summary", "摘要", True, ("资源摘要", "信息资源摘要")),
        Column("format", "格式", True, ("资源格式", "信息资源格式")),
        Column("share_type", "共享类型", True),
        Column("share_conditions", "共享条件"),
        Column("not_shared_basis", "不予共享依据"),
        Column("share_methods", "共享方式"),
        Column("open_type", "开放类型", False, ("是否向社会开放",)),
        Column("open_conditions", "开放条件"),
        Column("update_cycle", "更新周期", True),
        Column("publish_date", "发布日期"),
        Column("related_codes", "关联资源代码"),
    ),
)
ITEMS = SheetSpec(
    "items",
    "信息项",
    (
        Column("resource_code", "资源代码", True, ("信息资源代码",)),
        Column("name", "信息项名称", True),
        Column("data_type", "数据类型", True),
        Column("classification", "分级", True, ("分级分类", "敏感级别")),
        Column("description", "说明", False, ("描述", "备注")),
    ),
)
SHEETS = (RESOURCES, ITEMS)


def read_catalogue_workbook(data: bytes) -> dict[str, Sheet]:
    """The sheets present, by spec key; raises ``invalid_xlsx`` for a broken file."""
    sheets = read_sheets(data, SHEETS)
    if sheets[RESOURCES.key] is None:
        raise InvalidInput(
            "工作簿中没有“资源”工作表",
            "The workbook has no sheet 资源 (resources)",
            code="invalid_catalogue_workbook",
        )
    return {key: sheet for key, sheet in sheets.items() if sheet is not None}


def write_catalogue_workbook(resources: Iterable[list[Any]], items: Iterable[list[Any]]) -> bytes:
    """A workbook with both sheets (Chinese headers), the given rows, and a guide sheet."""
    return write_workbook(
        [
            (RESOURCES.zh, [RESOURCES.header(), *resources]),
            (ITEMS.zh, [ITEMS.header(), *items]),
            ("说明", _guide()),
        ]
    )


def _guide() -> list[list[str]]:
    classes = "、".join(f"{code} {name}" for code, name in CLASS_NAMES.items())
    return [
        ["列", "填写说明"],
        ["类/项/目/细目", f"“代码 名称”，如“1 基础信息资源”“01 人口基础信息”；类为 {classes}"],
        ["代码", "分类代码/6 位顺序码，如 101001/000001；留空则自动编号"],
        ["提供方代码", "提供方部门的部门编码"],
        ["格式", f"{choices_zh(ResourceFormat)}，可加具体类型，如“电子表格/xlsx”"],
        ["共享类型", choices_zh(ShareType)],
        ["共享条件", "有条件共享时必填"],
        ["不予共享依据", "不予共享时必填：法律、行政法规或政策依据"],
        ["共享方式", f"{choices_zh(ShareMethod)}，多个用“{LIST_SEPARATOR}”分隔"],
        ["开放类型", choices_zh(OpenType)],
        ["开放条件", "有条件开放时必填"],
        ["更新周期", choices_zh(UpdateCycle)],
        ["发布日期", "YYYY-MM-DD；留空则发布时取当天"],
        ["关联资源代码", f"多个用“{LIST_SEPARATOR}”分隔"],
        ["信息项·资源代码", "所属资源的代码；新资源未填代码时可填资源名称"],
        ["信息项·数据类型", choices_zh(DataType)],
        ["信息项·分级", choices_zh(Classification)],
    ]


def catalogue_template_xlsx() -> bytes:
    """An empty catalogue workbook for a data office to fill in."""
    return write_catalogue_workbook([], [])
