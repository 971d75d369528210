"""The catalogue's rules, without storage: every problem is found and named by its field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.apps.exchange.conftest import ITEMS, POPULATION, entry
from xietong.apps.exchange.rules import CategoryLevel, ItemInput, check_resource
from xietong.apps.exchange.vocab import ShareType, UpdateCycle, label, parse


@pytest.mark.parametrize("share_type", ["unconditional", "conditional", "not_shared"])
def test_a_valid_entry_of_every_share_type_passes(share_type: str) -> None:
    cleaned, problems = check_resource(entry(share_type=share_type))
    assert problems == []
    assert cleaned.category == POPULATION


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("not_shared", {"not_shared_basis": " "}, "not_shared_basis", "legal_basis_required"),
    ("conditional", {"share_conditions": None}, "share_conditions", "conditions_required"),
    ("unconditional", {"share_conditions": "x"}, "share_conditions", "conditions_unexpected"),
    ("unconditional", {"not_shared_basis": "x"}, "not_shared_basis", "legal_basis_unexpected"),
    ("unconditional", {"share_methods": ()}, "share_methods", "share_method_required"),
    ("not_shared", {"share_methods": ("api",)}, "share_methods", "share_method_unexpected"),
    ("not_shared", {"open_type": "open"}, "open_type", "open_needs_sharing"),
    (
        "unconditional",
        {"open_type": "conditionally_open"},
        "open_conditions",
        "open_conditions_required",
    ),
    ("unconditional", {"share_methods": ("fax",)}, "share_methods", "invalid_choice"),
    ("sometimes", {}, "share_type", "invalid_choice"),
    ("unconditional", {"update_cycle": "hourly"}, "update_cycle", "invalid_choice"),
    ("unconditional", {"format": "paper"}, "format", "invalid_choice"),
    ("unconditional", {"name": ""}, "name", "missing_value"),
    ("unconditional", {"summary": "x" * 4001}, "summary", "text_too_long"),
    ("unconditional", {"code": "101001-1"}, "code", "invalid_code"),
    ("unconditional", {"code": "102001/000001"}, "code", "code_category_mismatch"),
    ("unconditional", {"related_codes": ("nope",)}, "related_codes", "invalid_related_code"),
    (
        "unconditional",
        {"code": "101001/000009", "related_codes": ("101001/000009",)},
        "related_codes",
        "related_to_itself",
    ),
    (
        "unconditional",
        {"items": (*ITEMS, ItemInput("姓名 ", "string", "public"))},
        "items[3].name",
        "duplicate_item",
    ),
    (
        "unconditional",
        {"items": (ItemInput("年龄", "number", "public"),)},
        "items[0].data_type",
        "invalid_choice",
    ),
    (
        "unconditional",
        {"items": (ItemInput("年龄", "integer", "secret"),)},
        "items[0].classification",
        "invalid_choice",
    ),
    (
        "unconditional",
        {"category": (POPULATION[0], CategoryLevel("1", "人口"), POPULATION[2])},
        "category.subclass",
        "invalid_category_code",
    ),
    (
        "unconditional",
        {"category": (CategoryLevel("4", ""), *POPULATION[1:])},
        "category.class",
        "invalid_category_code",
    ),
    ("unconditional", {"category": POPULATION[:2]}, "category", "invalid_category"),
    (
        "unconditional",
        {"category": (*POPULATION[:2], CategoryLevel("001", ""))},
        "category.group",
        "missing_category_name",
    ),
]


@pytest.mark.parametrize(("share_type", "changes", "field", "code"), CASES)
def test_each_rule_names_its_field_and_code(
    share_type: str, changes: dict[str, Any], field: str, code: str
) -> None:
    _cleaned, problems = check_resource(entry(share_type=share_type, **changes))
    assert (field, code) in [(p.field, p.code) for p in problems], problems
    found = next(p for p in problems if p.code == code)
    assert found.message_zh and found.message_en


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = entry(share_type="not_shared", not_shared_basis=None, name="", update_cycle="x")
    _cleaned, problems = check_resource(data)
    assert {"legal_basis_required", "missing_value", "invalid_choice"} <= {p.code for p in problems}


def test_cleaning_normalises_what_does_not_change_meaning() -> None:
    data = entry(
        name="  户籍人口基本信息 ",
        share_methods=("table", "api", "table"),
        related_codes=("102001/000001", " 102001/000001", ""),
        category=(CategoryLevel("1", ""), *POPULATION[1:], CategoryLevel("", "")),
    )
    cleaned, problems = check_resource(data)
    assert problems == []
    assert cleaned.name == "户籍人口基本信息"
    assert cleaned.share_methods == ("api", "table")
    assert cleaned.related_codes == ("102001/000001",)
    assert cleaned.category == POPULATION  # 类 1 named by the guide; the empty 细目 dropped
    detailed = replace(data, category=(*POPULATION, CategoryLevel("01", "城镇")))
    assert check_resource(detailed)[0].category[3] == CategoryLevel("01", "城镇")


def test_labels_and_spellings_parse_to_code_names() -> None:
    assert parse(ShareType, "有条件共享") is ShareType.CONDITIONAL
    assert parse(ShareType, "not_shared") is ShareType.NOT_SHARED
    assert parse(UpdateCycle, "每季度") is UpdateCycle.QUARTERLY
    assert parse(UpdateCycle, "sometimes") is None
    assert label(UpdateCycle.SEMIANNUAL) == "每半年"
