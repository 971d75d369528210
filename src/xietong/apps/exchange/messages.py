"""Every validation message of the catalogue, by error code (zh, en; ``str.format`` fields).

Keeping them in one table keeps the wording consistent between the API, which raises
the first problem as ``InvalidInput``, and the workbook import, which reports each one
against its cell; docs/apps/exchange-catalogue.md lists the same codes.
"""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "missing_value": ("{zh}不能为空", "{en} is required"),
    "text_too_long": (
        "{zh}过长（最多 {max} 个字符）",
        "{en} is too long (at most {max} characters)",
    ),
    "invalid_choice": ("{zh}应为 {choices}：{value}", "{en} must be one of {codes}: {value}"),
    "invalid_category": (
        "分类须有类、项、目（细目可选）",
        "The category needs a class, subclass and group (detail optional)",
    ),
    "invalid_category_code": (
        "分类“{zh}”的代码应为 {rule_zh}：{value}",
        "The {en} code must be {rule_en}: {value}",
    ),
    "missing_category_name": ("分类“{zh}”须有名称", "The {en} level needs a name"),
    "too_many_items": ("信息项最多 {max} 个", "At most {max} items"),
    "duplicate_item": ("信息项名称重复：{value}", "Duplicate item name: {value}"),
    "items_required": (
        "发布前须至少填写一个信息项",
        "A resource needs at least one item before it is published",
    ),
    "conditions_required": (
        "有条件共享须填写共享条件",
        "A conditionally shared resource needs its share conditions",
    ),
    "conditions_unexpected": (
        "只有有条件共享的资源填写共享条件",
        "Share conditions belong to conditionally shared resources only",
    ),
    "legal_basis_required": (
        "不予共享须填写法律、行政法规或政策依据",
        "A resource that is not shared needs its legal basis",
    ),
    "legal_basis_unexpected": (
        "只有不予共享的资源填写不予共享依据",
        "A legal basis for not sharing belongs to not-shared resources only",
    ),
    "share_method_required": (
        "共享的资源须填写共享方式（接口/文件/库表）",
        "A shared resource needs a share method (api/file/table)",
    ),
    "share_method_unexpected": (
        "不予共享的资源没有共享方式",
        "A resource that is not shared has no share method",
    ),
    "open_conditions_required": (
        "有条件开放须填写开放条件",
        "A conditionally open resource needs its open conditions",
    ),
    "open_conditions_unexpected": (
        "只有有条件开放的资源填写开放条件",
        "Open conditions belong to conditionally open resources only",
    ),
    "open_needs_sharing": (
        "不予共享的资源不能向社会开放",
        "A resource that is not shared between departments cannot be open to the public",
    ),
    "invalid_code": (
        "资源代码格式应为“分类代码/6位顺序码”：{value}",
        "A resource code is '<category code>/<6-digit sequence>': {value}",
    ),
    "code_category_mismatch": (
        "资源代码 {value} 与分类代码 {category} 不符",
        "Resource code {value} does not match the category code {category}",
    ),
    "invalid_related_code": (
        "关联资源代码格式不正确：{value}",
        "Malformed related resource code: {value}",
    ),
    "related_to_itself": ("资源不能关联自身", "A resource cannot be related to itself"),
    "too_many_related": ("关联资源最多 {max} 个", "At most {max} related resources"),
    "unknown_provider": ("提供方部门不存在：{value}", "No department with code {value}"),
    "provider_forbidden": (
        "无权维护该部门的资源：{value}",
        "Not allowed to maintain the resources of department {value}",
    ),
    "code_taken": ("资源代码已存在：{value}", "Resource code taken: {value}"),
    "invalid_date": (
        "日期格式应为 YYYY-MM-DD：{value}",
        "A date is written YYYY-MM-DD: {value}",
    ),
}


def message(code: str, **fields: object) -> tuple[str, str]:
    """The (zh, en) message for ``code`` with ``fields`` filled in."""
    zh, en = MESSAGES[code]
    values = {key: "" if value is None else value for key, value in fields.items()}
    return zh.format_map(_Blank(values)), en.format_map(_Blank(values))


class _Blank(dict[str, object]):
    """A missing field renders empty instead of raising: a message never crashes a request."""

    def __missing__(self, key: str) -> str:
        return ""
