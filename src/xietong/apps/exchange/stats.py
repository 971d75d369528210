"""Sharing statistics per department (共享交换统计), and the monthly report workbook.

Per department, over a month (``YYYY-MM``, China time) or all time:

- as provider: resources published, requests received / approved / refused / pending,
  median approval time (有条件共享 requests decided by a person: created → decided),
  gateway queries served, median gateway latency (successful queries), failed provider
  calls (unavailable, timeout, error), data-quality failures;
- as consumer: requests made, queries made.

Counts are aggregated in SQL; medians are taken over the month's values in Python
(a city's month is thousands of requests and a few million queries at most; the
latency median reads one float column through an index on (provider, time)).
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from xietong.apps.exchange.models import Resource
from xietong.apps.exchange.sharing_models import QueryLog, ShareRequest
from xietong.apps.exchange.vocab import Status
from xietong.kernel.access import Actor, authorize
from xietong.kernel.clock import CST as CHINA
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.org.models import Department

READ = "exchange.stats.read"
FAILED = ("provider_unavailable", "provider_timeout", "provider_error")


@dataclass(frozen=True)
class DepartmentStats:
    department_id: int
    code: str
    name: str
    resources_published: int = 0
    requests_received: int = 0
    requests_approved: int = 0
    requests_refused: int = 0
    requests_pending: int = 0
    median_approval_hours: float | None = None
    queries_served: int = 0
    median_latency_ms: float | None = None
    failed_provider_calls: int = 0
    quality_failures: int = 0
    requests_made: int = 0
    queries_made: int = 0


COLUMNS_ZH = {
    "code": "部门代码",
    "name": "部门",
    "resources_published": "发布资源数",
    "requests_received": "收到申请",
    "requests_approved": "同意",
    "requests_refused": "拒绝",
    "requests_pending": "待审",
    "median_approval_hours": "审批时长中位数（小时）",
    "queries_served": "提供查询次数",
    "median_latency_ms": "网关时延中位数（毫秒）",
    "failed_provider_calls": "提供方调用失败",
    "quality_failures": "数据质量问题",
    "requests_made": "发出申请",
    "queries_made": "调用查询次数",
}


def period(month: str | None) -> tuple[datetime | None, datetime | None]:
    """The month's bounds in UTC-aware datetimes (China time months); None: all time."""
    if not month:
        return None, None
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError as bad:
        raise InvalidInput(
            "月份格式应为 YYYY-MM", "A month is written YYYY-MM", code="invalid_month"
        ) from bad
    after = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time(), tzinfo=CHINA),
        datetime.combine(after, time(), tzinfo=CHINA),
    )


def _within(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    return [] if start is None else [column >= start, column < end]


def department_stats(ctx: Context, actor: Actor, month: str | None = None) -> list[DepartmentStats]:
    authorize(actor, READ)
    start, end = period(month)
    values: dict[int, dict[str, Any]] = defaultdict(dict)
    with ctx.db.read() as session:
        published = select(Resource.provider_id, func.count()).where(
            Resource.status == Status.PUBLISHED.value,
            *_within(Resource.published_at, start, end),
        )
        for dept, count in session.execute(published.group_by(Resource.provider_id)):
            values[dept]["resources_published"] = count
        requests = select(ShareRequest.provider_id, ShareRequest.status, func.count()).where(
            *_within(ShareRequest.created_at, start, end)
        )
        for dept, status, count in session.execute(
            requests.group_by(ShareRequest.provider_id, ShareRequest.status)
        ):
            row = values[dept]
            row["requests_received"] = row.get("requests_received", 0) + count
            key = {"approved": "requests_approved", "refused": "requests_refused"}.get(
                status, "requests_pending"
            )
            row[key] = row.get(key, 0) + count
        made = select(ShareRequest.consumer_id, func.count()).where(
            *_within(ShareRequest.created_at, start, end)
        )
        for dept, count in session.execute(made.group_by(ShareRequest.consumer_id)):
            values[dept]["requests_made"] = count
        decided = select(
            ShareRequest.provider_id, ShareRequest.created_at, ShareRequest.decided_at
        ).where(
            ShareRequest.process_instance_id.is_not(None),
            ShareRequest.decided_at.is_not(None),
            *_within(ShareRequest.created_at, start, end),
        )
        hours: dict[int, list[float]] = defaultdict(list)
        for dept, created, decided_at in session.execute(decided):
            hours[dept].append((decided_at - created).total_seconds() / 3600)
        for dept, spans in hours.items():
            values[dept]["median_approval_hours"] = round(statistics.median(spans), 2)
        logs = select(QueryLog.provider_id, QueryLog.outcome, func.count()).where(
            *_within(QueryLog.created_at, start, end)
        )
        for dept, outcome, count in session.execute(
            logs.group_by(QueryLog.provider_id, QueryLog.outcome)
        ):
            row = values[dept]
            if outcome == "ok":
                row["queries_served"] = count
            elif outcome == "quality_failure":
                row["quality_failures"] = count
            elif outcome in FAILED:
                row["failed_provider_calls"] = row.get("failed_provider_calls", 0) + count
        consumed = select(QueryLog.consumer_id, func.count()).where(
            QueryLog.outcome == "ok", *_within(QueryLog.created_at, start, end)
        )
        for dept, count in session.execute(consumed.group_by(QueryLog.consumer_id)):
            values[dept]["queries_made"] = count
        for dept in [d for d, row in values.items() if row.get("queries_served")]:
            latencies = list(
                session.scalars(
                    select(QueryLog.latency_ms).where(
                        QueryLog.provider_id == dept,
                        QueryLog.outcome == "ok",
                        *_within(QueryLog.created_at, start, end),
                    )
                )
            )
            values[dept]["median_latency_ms"] = round(statistics.median(latencies), 2)
        names = {
            dept: (code, name)
            for dept, code, name in session.execute(
                select(Department.id, Department.code, Department.name).where(
                    Department.id.in_(list(values))
                )
            )
        }
    result = [
        DepartmentStats(dept, *names[dept], **row) for dept, row in values.items() if dept in names
    ]
    return sorted(result, key=lambda s: (-s.queries_served, -s.requests_received, s.code))


def stats_xlsx(ctx: Context, actor: Actor, month: str | None = None) -> bytes:
    """The monthly report a data office sends: one row per department."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    rows = department_stats(ctx, actor, month)
    book = Workbook()
    sheet = book.active
    sheet.title = "共享交换统计"
    sheet.append([f"政务数据共享交换统计（{month or '累计'}）"])
    sheet["A1"].font = Font(bold=True, size=14)
    names = [f.name for f in fields(DepartmentStats) if f.name in COLUMNS_ZH]
    sheet.append([COLUMNS_ZH[name] for name in names])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in rows:
        data = asdict(row)
        sheet.append([data[name] for name in names])
    total = ["合计", ""] + [
        sum(getattr(r, name) or 0 for r in rows) if not name.startswith("median") else None
        for name in names[2:]
    ]
    sheet.append(total)
    for column, name in zip("ABCDEFGHIJKLMNOP", names, strict=False):
        sheet.column_dimensions[column].width = max(10, len(COLUMNS_ZH[name]) * 2 + 2)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
