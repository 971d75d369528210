"""Input checks shared by the commands: every problem is found before anything is written.

Plan dates are in working days: a task gives its planned start and either its planned
end or its duration in working days; the end is counted with the kernel's calendar
(China's holidays and 调休, the lead department's region's overrides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from xietong.apps.tasks.analysis import Status
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

BASIS_KINDS = ("policy", "document", "meeting", "instruction", "other")
MAX_ATTACHMENTS = 20
MAX_TEXT = 4000
DEFAULT_MARGIN = 10.0
DEFAULT_DUE_DAYS = 3


@dataclass(frozen=True)
class TaskInput:
    """A new task. ``parent_id`` None makes a task force's task (专班) at a tree's top."""

    title: str
    department_code: str
    planned_start: date
    planned_end: date | None = None
    duration_days: int | None = None
    parent_id: int | None = None
    content: str = ""
    basis: tuple[dict[str, Any], ...] = ()
    goal_name: str | None = None
    goal_unit: str | None = None
    goal_baseline: float | None = None
    goal_target: float | None = None
    goal_current: float | None = None
    cooperating_codes: tuple[str, ...] = ()
    owner: str | None = None
    supervising_department_code: str | None = None
    depends_on: tuple[int, ...] = ()
    weight: float = 1.0
    level: str | None = None
    warn_margin: float | None = None
    warn_due_days: int | None = None


@dataclass(frozen=True)
class TaskPatch:
    """A change to a task: only the fields given (not None) change."""

    title: str | None = None
    content: str | None = None
    basis: tuple[dict[str, Any], ...] | None = None
    goal_name: str | None = None
    goal_unit: str | None = None
    goal_baseline: float | None = None
    goal_target: float | None = None
    planned_start: date | None = None
    planned_end: date | None = None
    duration_days: int | None = None
    owner: str | None = None
    cooperating_codes: tuple[str, ...] | None = None
    weight: float | None = None
    warn_margin: float | None = None
    warn_due_days: int | None = None
    changed: tuple[str, ...] = field(default=())


def invalid(code: str, zh: str, en: str, **details: Any) -> InvalidInput:
    return InvalidInput(zh, en, code=code, details=details or None)


def check_text(value: str | None, zh: str, en: str, *, required: bool, limit: int) -> str:
    text = (value or "").strip()
    if required and not text:
        raise invalid("missing_value", f"{zh}不能为空", f"{en} is required", field=en)
    if len(text) > limit:
        raise invalid(
            "text_too_long",
            f"{zh}过长（最多 {limit} 个字符）",
            f"{en} is too long (at most {limit} characters)",
            field=en,
        )
    return text


def check_number(value: float | None, zh: str, en: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value):
        raise invalid("invalid_number", f"{zh}须为有限数值", f"{en} must be a finite number")
    return float(value)


def check_basis(items: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """依据 by reference: ``{kind, title, ref}`` — a policy's code, a document number, a URL."""
    if len(items) > 50:
        raise invalid("too_many_basis", "依据最多 50 条", "At most 50 basis references")
    cleaned = []
    for position, item in enumerate(items):
        kind = str(item.get("kind", "document"))
        if kind not in BASIS_KINDS:
            raise invalid(
                "invalid_basis",
                f"第 {position + 1} 条依据的类型应为 {'/'.join(BASIS_KINDS)}：{kind}",
                f"Basis {position + 1}: kind must be one of {', '.join(BASIS_KINDS)}: {kind}",
            )
        title = check_text(item.get("title"), "依据名称", "Basis title", required=True, limit=300)
        ref = check_text(
            item.get("ref"), "依据文号或链接", "Basis reference", required=False, limit=300
        )
        cleaned.append({"kind": kind, "title": title, "ref": ref})
    return cleaned


@dataclass(frozen=True)
class Attachments:
    """Checked attachments: uploaded files cited by id, and links to documents kept in
    another system (an OA's file URL)."""

    file_ids: tuple[int, ...]
    links: tuple[dict[str, str], ...]


def check_attachments(items: list[dict[str, Any]], incoming: int = 0) -> Attachments:
    """Attachments as ``{file_id}`` (uploaded through the kernel's files endpoint) or
    ``{name, url}`` (an http(s) link); with ``incoming`` files uploaded in the same
    request, at most 20 in all."""
    if len(items) + incoming > MAX_ATTACHMENTS:
        raise invalid(
            "too_many_attachments",
            f"附件最多 {MAX_ATTACHMENTS} 个",
            f"At most {MAX_ATTACHMENTS} attachments",
        )
    file_ids: list[int] = []
    links: list[dict[str, str]] = []
    for item in items:
        file_id = item.get("file_id")
        if file_id is not None:
            if isinstance(file_id, bool) or not isinstance(file_id, int) or file_id < 1:
                raise invalid("invalid_file_id", "文件编号无效", "Invalid file id")
            if file_id not in file_ids:
                file_ids.append(file_id)
            continue
        name = check_text(item.get("name"), "附件名称", "Attachment name", required=True, limit=200)
        url = check_text(item.get("url"), "附件链接", "Attachment link", required=True, limit=500)
        if not url.lower().startswith(("https://", "http://")):
            raise invalid(
                "invalid_link",
                f"附件链接须以 http:// 或 https:// 开头：{url}",
                f"An attachment link must start with http:// or https://: {url}",
            )
        links.append({"name": name, "url": url})
    return Attachments(tuple(file_ids), tuple(links))


def check_warn_options(margin: float | None, due_days: int | None) -> None:
    if margin is not None and not 0 <= margin <= 100:
        raise invalid("invalid_margin", "预警偏差须在 0–100 之间", "The margin must be 0–100")
    if due_days is not None and not 0 <= due_days <= 60:
        raise invalid(
            "invalid_due_days", "临期天数须在 0–60 个工作日之间", "Due-soon days must be 0–60"
        )


@dataclass(frozen=True)
class PlannedDates:
    start: date
    end: date
    duration: int
    estimated: bool


def plan_dates(
    ctx: Context,
    region: str | None,
    start: date,
    end: date | None,
    duration: int | None,
) -> PlannedDates:
    """The end from a duration in working days (inclusive of the start), or the duration
    of the given dates. An end before the start is refused."""
    calendar = ctx.calendar
    assert calendar is not None
    if end is None and duration is None:
        raise invalid(
            "missing_end",
            "请填写计划完成日期或工期（工作日）",
            "Give a planned end or a duration in working days",
        )
    if end is not None and duration is not None:
        raise invalid(
            "end_and_duration",
            "计划完成日期与工期只能填写一项",
            "Give either a planned end or a duration, not both",
        )
    if duration is not None:
        if not 1 <= duration <= 2000:
            raise invalid(
                "invalid_duration",
                "工期须为 1–2000 个工作日",
                "The duration must be 1–2000 working days",
            )
        found = calendar.add_working_days(start - timedelta(days=1), duration, region)
        return PlannedDates(start, found.day, duration, found.estimated)
    assert end is not None
    if end < start:
        raise invalid(
            "end_before_start",
            f"计划完成日期 {end} 早于开始日期 {start}",
            f"The planned end {end} is before the planned start {start}",
            planned_start=start.isoformat(),
            planned_end=end.isoformat(),
        )
    if (end - start).days > 3650:
        raise invalid("plan_too_long", "计划周期不能超过十年", "A plan may not exceed ten years")
    days = calendar.working_days_between(start - timedelta(days=1), end, region)
    estimated = not all(
        calendar.has_official_data(year, region) for year in range(start.year, end.year + 1)
    )
    return PlannedDates(start, end, days, estimated)


def derive_status(
    current: str, progress: float, planned_end: date, today: date, started: bool
) -> str:
    """The status a task's figures imply (销号 is only ever set by the approval)."""
    if current == Status.CLOSED:
        return Status.CLOSED.value
    if progress >= 100:
        return Status.DONE.value
    if today > planned_end:
        return Status.OVERDUE.value
    if progress > 0 or started:
        return Status.IN_PROGRESS.value
    return Status.NOT_STARTED.value
