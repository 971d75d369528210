"""The catalogue's closed vocabularies: code names (the glossary's) and their Chinese labels.

Code names travel through the API, the database and events; the Chinese labels are what
a data office writes in its spreadsheet and what the UI shows. ``parse`` accepts either,
plus a few spellings found in real sheets (e.g. the guide's one-letter data-type codes
``C``/``N``/``D``), so an import is forgiving about wording but never about meaning.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class ShareType(StrEnum):
    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"


class ShareMethod(StrEnum):
    API = "api"
    FILE = "file"
    TABLE = "table"


class OpenType(StrEnum):
    OPEN = "open"
    CONDITIONALLY_OPEN = "conditionally_open"
    NOT_OPEN = "not_open"


class UpdateCycle(StrEnum):
    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    SEMIANNUAL = "semiannual"
    YEARLY = "yearly"
    IRREGULAR = "irregular"


class ResourceFormat(StrEnum):
    """信息资源格式 — the guide's format classes; the concrete type goes in ``format_detail``."""

    DATABASE = "database"
    ELECTRONIC_FILE = "electronic_file"
    SPREADSHEET = "spreadsheet"
    IMAGE = "image"
    STREAMING = "streaming"
    SELF_DESCRIBING = "self_describing"
    OTHER = "other"


class DataType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    BINARY = "binary"


class Classification(StrEnum):
    """An item's classification level (分级): who may see the values at all."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"


class Status(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


# member -> (the Chinese label, other accepted spellings)
_LABELS: dict[StrEnum, tuple[str, tuple[str, ...]]] = {
    ShareType.UNCONDITIONAL: ("无条件共享", ("无条件",)),
    ShareType.CONDITIONAL: ("有条件共享", ("有条件",)),
    ShareType.NOT_SHARED: ("不予共享", ("不共享",)),
    ShareMethod.API: ("接口", ("接口方式", "服务接口", "API")),
    ShareMethod.FILE: ("文件", ("文件下载", "文件方式")),
    ShareMethod.TABLE: ("库表", ("库表交换", "库表方式", "数据库")),
    OpenType.OPEN: ("无条件开放", ("开放", "是")),
    OpenType.CONDITIONALLY_OPEN: ("有条件开放", ()),
    OpenType.NOT_OPEN: ("不予开放", ("不开放", "否")),
    UpdateCycle.REALTIME: ("实时", ("实时更新",)),
    UpdateCycle.DAILY: ("每日", ("每天", "日")),
    UpdateCycle.WEEKLY: ("每周", ("周",)),
    UpdateCycle.MONTHLY: ("每月", ("月",)),
    UpdateCycle.QUARTERLY: ("每季度", ("季度",)),
    UpdateCycle.SEMIANNUAL: ("每半年", ("半年",)),
    UpdateCycle.YEARLY: ("每年", ("年",)),
    UpdateCycle.IRREGULAR: ("不定期", ("不定时",)),
    ResourceFormat.DATABASE: ("数据库", ()),
    ResourceFormat.ELECTRONIC_FILE: ("电子文件", ()),
    ResourceFormat.SPREADSHEET: ("电子表格", ()),
    ResourceFormat.IMAGE: ("图形图像", ("图像",)),
    ResourceFormat.STREAMING: ("流媒体", ()),
    ResourceFormat.SELF_DESCRIBING: ("自描述格式", ()),
    ResourceFormat.OTHER: ("其他", ()),
    # The guide's letter codes: N (数值), Y (货币), B (双精度), F (浮点) are all decimals
    # here, M (备注) is text and G (通用) binary — export writes the canonical label.
    DataType.STRING: ("字符型", ("C", "字符串", "备注型", "M", "文本")),
    DataType.INTEGER: ("整型", ("I", "整数")),
    DataType.DECIMAL: ("数值型", ("N", "货币型", "Y", "双精度型", "B", "浮点型", "F", "小数")),
    DataType.DATE: ("日期型", ("D", "日期")),
    DataType.DATETIME: ("日期时间型", ("T", "日期时间")),
    DataType.BOOLEAN: ("布尔型", ("L", "逻辑型")),
    DataType.BINARY: ("二进制", ("G", "通用型")),
    Classification.PUBLIC: ("公开", ()),
    Classification.INTERNAL: ("内部", ()),
    Classification.SENSITIVE: ("敏感", ()),
    Status.DRAFT: ("草稿", ()),
    Status.PUBLISHED: ("已发布", ()),
    Status.WITHDRAWN: ("已撤回", ()),
}

# 类 of the guide's classification: the first digit of every resource code.
CLASS_NAMES = {"1": "基础信息资源", "2": "主题信息资源", "3": "部门信息资源"}

E = TypeVar("E", bound=StrEnum)


def label(member: StrEnum) -> str:
    """The Chinese label of a vocabulary member."""
    return _LABELS[member][0]


def parse(enum: type[E], text: str | None) -> E | None:
    """The member named by its code, its Chinese label or an accepted spelling; else None."""
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    for member in enum:
        zh, aliases = _LABELS[member]
        if cleaned in (member.value, zh, *aliases) or cleaned.lower() == member.value:
            return member
    return None


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


def choices_zh(enum: type[StrEnum]) -> str:
    """``无条件共享/有条件共享/不予共享`` — for error messages and the template's guide."""
    return "/".join(label(member) for member in enum)
