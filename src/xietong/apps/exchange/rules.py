"""What a catalogue entry must satisfy, checked the same way for the API and the workbook.

``check_resource`` cleans a ``ResourceInput`` and returns every problem it finds (not just
the first), each naming its field: the service raises the first as ``InvalidInput`` with
all of them in ``details``; the importer turns each into a cell-level row error. Rules
that need the database (the provider exists, the code is free, the actor may manage the
provider) live in the service and the importer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from xietong.apps.exchange.messages import message
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
    values,
)

# 信息资源代码 = 前段码 (类 1 digit + 项 2 + 目 3 + optional 细目 1–9) "/" 后段码 (6 digits)
CODE = re.compile(r"(?P<category>[1-3]\d{5}\d{0,9})/(?P<sequence>\d{6})")
SEQUENCE_DIGITS = 6
MAX_ITEMS = 500
MAX_RELATED = 50

# (field key, Chinese name, English name, code pattern, the pattern in words: zh, en)
LEVELS = (
    ("class", "类", "class", re.compile(r"[1-3]"), ("1、2 或 3", "1, 2 or 3")),
    ("subclass", "项", "subclass", re.compile(r"\d{2}"), ("2 位数字", "2 digits")),
    ("group", "目", "group", re.compile(r"\d{3}"), ("3 位数字", "3 digits")),
    ("detail", "细目", "detail", re.compile(r"\d{1,9}"), ("1–9 位数字", "1–9 digits")),
)
WIDTHS = {"subclass": 2, "group": 3}  # fixed-width levels (an import pads "1" to "01")


@dataclass(frozen=True)
class CategoryLevel:
    code: str
    name: str


@dataclass(frozen=True)
class ItemInput:
    name: str
    data_type: str
    classification: str
    description: str = ""


@dataclass(frozen=True)
class ResourceInput:
    """A resource as its maintainer describes it; enumerations by code name."""

    name: str
    category: tuple[CategoryLevel, ...]  # 类, 项, 目 and optionally 细目
    provider_code: str  # 提供方代码: the providing department's code
    summary: str
    format: str
    share_type: str
    update_cycle: str
    items: tuple[ItemInput, ...] = ()
    code: str | None = None  # None: the next free sequence number in the category
    format_detail: str | None = None
    share_conditions: str | None = None
    not_shared_basis: str | None = None
    share_methods: tuple[str, ...] = ()
    open_type: str = OpenType.NOT_OPEN.value
    open_conditions: str | None = None
    publish_date: date | None = None
    related_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    field: str  # "name", "category.group", "items[2].data_type", …
    code: str
    message_zh: str
    message_en: str


def category_code(levels: tuple[CategoryLevel, ...]) -> str:
    return "".join(level.code for level in levels)


def make_code(category: str, sequence: int) -> str:
    return f"{category}/{sequence:0{SEQUENCE_DIGITS}d}"


def _opt(value: str | None) -> str | None:
    cleaned = (value or "").strip()
    return cleaned or None


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, field: str, code: str, **fields: object) -> None:
        self.problems.append(Problem(field, code, *message(code, **fields)))

    def text(self, field: str, value: str | None, zh: str, en: str, max_len: int) -> str:
        cleaned = (value or "").strip()
        if not cleaned:
            self.add(field, "missing_value", zh=zh, en=en)
        elif len(cleaned) > max_len:
            self.add(field, "text_too_long", zh=zh, en=en, max=max_len)
        return cleaned

    def long_text(self, field: str, value: str | None, zh: str, en: str) -> str | None:
        cleaned = _opt(value)
        if cleaned is not None and len(cleaned) > 2000:
            self.add(field, "text_too_long", zh=zh, en=en, max=2000)
        return cleaned

    def choice(self, field: str, value: str, enum: type[StrEnum], zh: str, en: str) -> None:
        if value not in values(enum):
            codes = ", ".join(values(enum))
            fields = {"zh": zh, "en": en, "choices": choices_zh(enum), "codes": codes}
            self.add(field, "invalid_choice", value=value or "—", **fields)


def _check_category(
    c: _Checker, levels: tuple[CategoryLevel, ...]
) -> tuple[tuple[CategoryLevel, ...], str]:
    """The cleaned levels and the category code ("" when the levels are not valid)."""
    cleaned = [CategoryLevel(lv.code.strip(), lv.name.strip()) for lv in levels]
    if len(cleaned) == 4 and not cleaned[3].code and not cleaned[3].name:
        cleaned.pop()  # an empty 细目
    if len(cleaned) not in (3, 4):
        c.add("category", "invalid_category")
        return tuple(cleaned), ""
    valid = True
    for index, level in enumerate(cleaned):
        key, zh, en, pattern, rule = LEVELS[index]
        field = f"category.{key}"
        if not pattern.fullmatch(level.code):
            rule_zh, rule_en = rule
            fields = {"zh": zh, "en": en, "rule_zh": rule_zh, "rule_en": rule_en}
            c.add(field, "invalid_category_code", value=level.code, **fields)
            valid = False
        name = level.name or (CLASS_NAMES.get(level.code, "") if key == "class" else "")
        if not name:
            c.add(field, "missing_category_name", zh=zh, en=en)
        elif len(name) > 100:
            c.add(field, "text_too_long", zh=f"分类“{zh}”名称", en=f"The {en} name", max=100)
        cleaned[index] = CategoryLevel(level.code, name)
    levels = tuple(cleaned)
    return levels, category_code(levels) if valid else ""


def _check_items(c: _Checker, items: tuple[ItemInput, ...]) -> tuple[ItemInput, ...]:
    if len(items) > MAX_ITEMS:
        c.add("items", "too_many_items", max=MAX_ITEMS)
    seen: set[str] = set()
    cleaned: list[ItemInput] = []
    for index, item in enumerate(items):
        prefix = f"items[{index}]"
        name = c.text(f"{prefix}.name", item.name, "信息项名称", "Item name", 100)
        if name and name in seen:
            c.add(f"{prefix}.name", "duplicate_item", value=name)
        seen.add(name)
        data_type, level = item.data_type.strip(), item.classification.strip()
        c.choice(f"{prefix}.data_type", data_type, DataType, "数据类型", "Data type")
        c.choice(f"{prefix}.classification", level, Classification, "分级", "Classification")
        description = (item.description or "").strip()
        if len(description) > 500:
            c.add(f"{prefix}.description", "text_too_long", zh="说明", en="Description", max=500)
        cleaned.append(ItemInput(name, data_type, level, description))
    return tuple(cleaned)


def _check_sharing(c: _Checker, data: ResourceInput) -> tuple[str, ...]:
    share_type = data.share_type.strip()
    c.choice("share_type", share_type, ShareType, "共享类型", "Share type")
    conditions, basis = _opt(data.share_conditions), _opt(data.not_shared_basis)
    if share_type == ShareType.CONDITIONAL and not conditions:
        c.add("share_conditions", "conditions_required")
    if share_type != ShareType.CONDITIONAL and conditions:
        c.add("share_conditions", "conditions_unexpected")
    if share_type == ShareType.NOT_SHARED and not basis:
        c.add("not_shared_basis", "legal_basis_required")
    if share_type != ShareType.NOT_SHARED and basis:
        c.add("not_shared_basis", "legal_basis_unexpected")
    methods = [method.strip() for method in data.share_methods if method.strip()]
    for method in methods:
        c.choice("share_methods", method, ShareMethod, "共享方式", "Share method")
    if share_type == ShareType.NOT_SHARED and methods:
        c.add("share_methods", "share_method_unexpected")
    elif share_type in (ShareType.UNCONDITIONAL, ShareType.CONDITIONAL) and not methods:
        c.add("share_methods", "share_method_required")
    # one canonical order, so an edit that only reorders the methods changes nothing
    return tuple(method for method in values(ShareMethod) if method in methods)


def _check_opening(c: _Checker, data: ResourceInput) -> None:
    open_type = data.open_type.strip()
    c.choice("open_type", open_type, OpenType, "开放类型", "Open type")
    conditions = _opt(data.open_conditions)
    if open_type == OpenType.CONDITIONALLY_OPEN and not conditions:
        c.add("open_conditions", "open_conditions_required")
    if open_type != OpenType.CONDITIONALLY_OPEN and conditions:
        c.add("open_conditions", "open_conditions_unexpected")
    opened = open_type in (OpenType.OPEN, OpenType.CONDITIONALLY_OPEN)
    if data.share_type.strip() == ShareType.NOT_SHARED and opened:
        c.add("open_type", "open_needs_sharing")


def _check_codes(c: _Checker, data: ResourceInput, category: str) -> tuple[str | None, list[str]]:
    code = _opt(data.code)
    if code is not None:
        match = CODE.fullmatch(code)
        if match is None:
            c.add("code", "invalid_code", value=code)
        elif category and match["category"] != category:
            c.add("code", "code_category_mismatch", value=code, category=category)
    related: list[str] = []
    for value in data.related_codes:
        cleaned = value.strip()
        if not cleaned or cleaned in related:
            continue
        if not CODE.fullmatch(cleaned):
            c.add("related_codes", "invalid_related_code", value=cleaned)
        elif cleaned == code:
            c.add("related_codes", "related_to_itself")
        related.append(cleaned)
    if len(related) > MAX_RELATED:
        c.add("related_codes", "too_many_related", max=MAX_RELATED)
    return code, related


def check_resource(data: ResourceInput) -> tuple[ResourceInput, list[Problem]]:
    """The cleaned input and every problem found in it (an empty list: valid)."""
    c = _Checker()
    name = c.text("name", data.name, "资源名称", "Resource name", 200)
    levels, category = _check_category(c, data.category)
    code, related = _check_codes(c, data, category)
    provider = c.text("provider_code", data.provider_code, "提供方代码", "Provider code", 64)
    summary = c.text("summary", data.summary, "资源摘要", "Summary", 4000)
    fmt = data.format.strip()
    c.choice("format", fmt, ResourceFormat, "资源格式", "Format")
    detail = _opt(data.format_detail)
    if detail is not None and len(detail) > 32:
        c.add("format", "text_too_long", zh="格式类型", en="Format detail", max=32)
    methods = _check_sharing(c, data)
    _check_opening(c, data)
    update_cycle = data.update_cycle.strip()
    c.choice("update_cycle", update_cycle, UpdateCycle, "更新周期", "Update cycle")
    items = _check_items(c, data.items)
    cleaned = replace(
        data,
        name=name,
        category=levels,
        provider_code=provider,
        summary=summary,
        format=fmt,
        format_detail=detail,
        share_type=data.share_type.strip(),
        share_conditions=c.long_text(
            "share_conditions", data.share_conditions, "共享条件", "Share conditions"
        ),
        not_shared_basis=c.long_text(
            "not_shared_basis", data.not_shared_basis, "不予共享依据", "Legal basis"
        ),
        share_methods=methods,
        open_type=data.open_type.strip(),
        open_conditions=c.long_text(
            "open_conditions", data.open_conditions, "开放条件", "Open conditions"
        ),
        update_cycle=update_cycle,
        code=code,
        related_codes=tuple(related),
        items=items,
    )
    return cleaned, c.problems


def publish_problems(item_count: int) -> list[Problem]:
    """A published entry must list its items: consumers request items, not whole tables."""
    if item_count:
        return []
    return [Problem("items", "items_required", *message("items_required"))]
