"""The services app's closed vocabularies: code names with their Chinese labels."""

from __future__ import annotations

from enum import StrEnum


class MatterType(StrEnum):
    LICENSE = "license"  # 行政许可
    BENEFIT = "benefit"  # 行政给付
    CONFIRMATION = "confirmation"  # 行政确认
    PUBLIC_SERVICE = "public_service"  # 公共服务
    OTHER = "other"  # 其他行政权力


MATTER_TYPE_ZH = {
    MatterType.LICENSE: "行政许可",
    MatterType.BENEFIT: "行政给付",
    MatterType.CONFIRMATION: "行政确认",
    MatterType.PUBLIC_SERVICE: "公共服务",
    MatterType.OTHER: "其他行政权力",
}


def matter_type(value: str) -> MatterType | None:
    """A matter type by code name or by its Chinese label."""
    value = (value or "").strip()
    for kind, zh in MATTER_TYPE_ZH.items():
        if value in (kind.value, zh):
            return kind
    return None


class BundleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Audience(StrEnum):
    PERSON = "person"  # 自然人
    ORGANIZATION = "organization"  # 法人


class ApplicationStatus(StrEnum):
    PROCESSING = "processing"  # 办理中
    DELIVERED = "delivered"  # 已办结, results delivered in one notice
    REFUSED = "refused"  # every branch refused: nothing to deliver


class SubCaseStatus(StrEnum):
    WAITING = "waiting"  # 等待前置事项
    PROCESSING = "processing"  # 办理中
    SUPPLEMENT = "supplement"  # 补正中
    CONCLUDED = "concluded"  # 已办结
    REFUSED = "refused"  # 不予受理 / 不予许可
    CANCELLED = "cancelled"  # cannot proceed: a prerequisite was refused


SUB_CASE_STATUS_ZH = {
    SubCaseStatus.WAITING: "等待前置事项办结",
    SubCaseStatus.PROCESSING: "办理中",
    SubCaseStatus.SUPPLEMENT: "待补正",
    SubCaseStatus.CONCLUDED: "已办结",
    SubCaseStatus.REFUSED: "不予办理",
    SubCaseStatus.CANCELLED: "无法办理",
}
SUB_CASE_STATUS_EN = {
    SubCaseStatus.WAITING: "Waiting for prerequisites",
    SubCaseStatus.PROCESSING: "In progress",
    SubCaseStatus.SUPPLEMENT: "Supplement requested",
    SubCaseStatus.CONCLUDED: "Concluded",
    SubCaseStatus.REFUSED: "Refused",
    SubCaseStatus.CANCELLED: "Cannot proceed",
}
OPEN_SUB_CASE = (SubCaseStatus.WAITING, SubCaseStatus.PROCESSING, SubCaseStatus.SUPPLEMENT)


class RefusalKind(StrEnum):
    ACCEPTANCE = "refuse_acceptance"  # 不予受理
    PERMISSION = "refuse_permission"  # 不予许可


REFUSAL_ZH = {RefusalKind.ACCEPTANCE: "不予受理", RefusalKind.PERMISSION: "不予许可"}

# 好差评: five levels, 5 best; 2 (不满意) and 1 (非常不满意) open a rectification
RATING_LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
RATING_LEVELS_EN = {
    5: "Very satisfied",
    4: "Satisfied",
    3: "Fairly satisfied",
    2: "Dissatisfied",
    1: "Very dissatisfied",
}
BAD_RATING = 2


def rating_level(value: object) -> int | None:
    """A level from its number (1–5) or its Chinese label."""
    if isinstance(value, int) and not isinstance(value, bool) and value in RATING_LEVELS:
        return value
    if isinstance(value, str):
        for level, zh in RATING_LEVELS.items():
            if value.strip() in (zh, str(level)):
                return level
    return None


class RectificationStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


# the message an external system's answer delivers to a matter's process (ADR 0042)
EXTERNAL_ANSWER_MESSAGE = "services.external_answer"
