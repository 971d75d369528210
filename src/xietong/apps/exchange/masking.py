"""脱敏 (masking): hiding parts of personal data in the rows a grant lets through.

Five rules, after the common practice of GB/T 35273 and the 政务数据 masking guides.
Each keeps just enough for a clerk to tell records apart and check them against a
document in hand, and hides the rest with ``*`` (one per hidden character, so the
length stays visible — a clerk can still see that a number is complete):

| rule | example in | example out |
| --- | --- | --- |
| ``id_number`` (身份证号) | 430102199003071234 | 430102********1234 |
| ``mobile`` (手机号) | 13812345678 | 138****5678 |
| ``name`` (姓名) | 欧阳娜娜 | 欧*** |
| ``address`` (地址) | 长沙市芙蓉区五一大道 389 号 | 长沙市芙蓉区******** |
| ``bank_card`` (银行卡号) | 6222021234567890123 | 622202*********0123 |

A grant records which of its items are masked and by which rule. When a request is
granted, each item whose name matches a rule's pattern gets that rule (``rule_for``);
the provider can then only add masking, never lift it below the pattern's default
for a 敏感 item.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

RULES: dict[str, tuple[str, str]] = {
    "id_number": ("身份证号", "ID card number"),
    "mobile": ("手机号", "Mobile number"),
    "name": ("姓名", "Name"),
    "address": ("地址", "Address"),
    "bank_card": ("银行卡号", "Bank card number"),
}

# Item-name patterns, checked in this order (证件号码 before 号码, 卡号 before 号 …).
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bank_card", re.compile(r"银行卡|银行账号|卡号|账号")),
    ("id_number", re.compile(r"身份证|身份号码|证件号码|公民身份")),
    ("mobile", re.compile(r"手机|移动电话|联系电话|电话")),
    ("address", re.compile(r"地址|住址|住所|坐落|居住地")),
    ("name", re.compile(r"姓名")),
]


def rule_for(item_name: str) -> str | None:
    """The masking rule an item's name calls for, or None."""
    for rule, pattern in _PATTERNS:
        if pattern.search(item_name):
            return rule
    return None


def _keep(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        # Too short to keep both ends: hide all but the first character.
        return text[:1] + "*" * (len(text) - 1) if text else text
    return text[:head] + "*" * (len(text) - head - tail) + (text[-tail:] if tail else "")


def mask_id_number(text: str) -> str:
    return _keep(text, 6, 4)


def mask_mobile(text: str) -> str:
    digits = text.strip()
    if digits.startswith("+86"):
        return "+86" + _keep(digits[3:], 3, 4)
    return _keep(digits, 3, 4)


def mask_name(text: str) -> str:
    return _keep(text, 1, 0)


_DISTRICT = re.compile(r"^(.*?(?:省|自治区))?(.*?(?:市|自治州|地区|盟))?(.*?(?:区|县|旗|市))?")


def mask_address(text: str) -> str:
    """Keep the administrative part (省/市/区县), hide the street and number."""
    match = _DISTRICT.match(text)
    kept = match.group(0) if match else ""
    if not kept or len(kept) >= len(text):
        kept = text[: min(6, max(len(text) // 3, 1))]
    return kept + "*" * (len(text) - len(kept))


def mask_bank_card(text: str) -> str:
    return _keep(text.replace(" ", ""), 6, 4)


MASKERS: dict[str, Callable[[str], str]] = {
    "id_number": mask_id_number,
    "mobile": mask_mobile,
    "name": mask_name,
    "address": mask_address,
    "bank_card": mask_bank_card,
}


def mask_value(rule: str, value: Any) -> Any:
    """Mask one value; None stays None, anything else is masked as its text."""
    if value is None:
        return None
    return MASKERS[rule](str(value))


def mask_rows(rows: list[dict[str, Any]], masked: Mapping[str, str]) -> list[dict[str, Any]]:
    """Apply the grant's rules to every row (new dicts; the input is not changed)."""
    if not masked:
        return rows
    plan = [(item, MASKERS[rule]) for item, rule in masked.items()]
    result = []
    for row in rows:
        copy = dict(row)
        for item, masker in plan:
            value = copy.get(item)
            if value is not None:
                copy[item] = masker(str(value))
        result.append(copy)
    return result
