"""The hotline's fixed vocabularies: channels, ticket types, statuses, ratings and SLAs.

Code names follow docs GLOSSARY; the Chinese label is what users see. SLAs are counted
in office hours of working days (``WorkCalendar.add_working_hours``: 7 office hours make
one working day), so 咨询 answered "within one working day" and 建议 "within ten" are
one rule with two numbers.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    APP = "app"
    WECHAT = "wechat"
    EMAIL = "email"
    LETTER = "letter"


CHANNEL_NAMES: dict[str, tuple[str, str]] = {
    "phone": ("电话", "Phone"),
    "web": ("网站", "Website"),
    "app": ("移动端", "Mobile app"),
    "wechat": ("微信", "WeChat"),
    "email": ("电子邮件", "Email"),
    "letter": ("来信", "Letter"),
}


class TicketType(StrEnum):
    CONSULTATION = "consultation"
    HELP = "help"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"


TYPE_NAMES: dict[str, tuple[str, str]] = {
    "consultation": ("咨询", "Consultation"),
    "help": ("求助", "Request for help"),
    "complaint": ("投诉", "Complaint"),
    "report": ("举报", "Report"),
    "suggestion": ("建议", "Suggestion"),
}

# Office hours allowed for the reply, by type (7 office hours = 1 working day).
HOURS_PER_DAY = 7
SLA_HOURS: dict[str, int] = {
    "consultation": 1 * HOURS_PER_DAY,
    "help": 3 * HOURS_PER_DAY,
    "complaint": 5 * HOURS_PER_DAY,
    "report": 5 * HOURS_PER_DAY,
    "suggestion": 10 * HOURS_PER_DAY,
}
# The warning goes out when this share of the allowed time has passed.
WARN_SHARE = 0.75


class Status(StrEnum):
    PENDING_DISPATCH = "pending_dispatch"  # 待派单: waits for a human dispatcher
    DISPATCHED = "dispatched"  # 已派单: the department has not accepted yet
    IN_PROGRESS = "in_progress"  # 办理中
    REPLIED = "replied"  # 已答复: waits for the citizen's rating / 回访
    CLOSED = "closed"  # 已办结
    ESCALATED = "escalated"  # 已督办: unsatisfied after 重办, handed to supervision
    MERGED = "merged"  # 已合并: a duplicate that follows another ticket


STATUS_NAMES: dict[str, tuple[str, str]] = {
    "pending_dispatch": ("待派单", "Awaiting dispatch"),
    "dispatched": ("已派单", "Dispatched"),
    "in_progress": ("办理中", "In progress"),
    "replied": ("已答复", "Replied"),
    "closed": ("已办结", "Closed"),
    "escalated": ("已督办", "Escalated"),
    "merged": ("已合并", "Merged"),
}

OPEN_STATUSES = frozenset({"pending_dispatch", "dispatched", "in_progress"})
FINAL_STATUSES = frozenset({"closed", "escalated", "merged"})


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


RATING_NAMES: dict[str, tuple[str, str]] = {
    "satisfied": ("满意", "Satisfied"),
    "basically_satisfied": ("基本满意", "Basically satisfied"),
    "unsatisfied": ("不满意", "Unsatisfied"),
}

# How many times an unsatisfied rating reopens a ticket before it is escalated.
MAX_REOPENS = 1

DISPATCH_MODES: dict[str, tuple[str, str]] = {
    "auto": ("自动派单", "Automatic"),
    "manual": ("人工派单", "Manual"),
}


def label(names: dict[str, tuple[str, str]], code: str | None, lang: str = "zh-CN") -> str:
    if code is None:
        return ""
    zh, en = names.get(code, (code, code))
    return zh if lang.startswith("zh") else en


def by_label(names: dict[str, tuple[str, str]], value: str) -> str | None:
    """Accept a code name or its Chinese / English label (咨询, Complaint …)."""
    value = (value or "").strip()
    for code, (zh, en) in names.items():
        if value in (code, zh, en):
            return code
    return None
