"""Working-day calendar API: ask for a deadline, load a year's 放假安排."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from xietong.api.deps import allow, get_ctx
from xietong.kernel.access import Actor
from xietong.kernel.calendar import WorkCalendar, load_schedule
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

router = APIRouter(prefix="/calendar", tags=["calendar 工作日历"])
CtxDep = Annotated[Context, Depends(get_ctx)]


def _calendar(ctx: Context) -> WorkCalendar:
    if ctx.calendar is None:
        raise RuntimeError("context has no calendar")
    return ctx.calendar


@router.get("/deadline", dependencies=[Depends(allow("calendar.read"))])
def deadline(
    ctx: CtxDep,
    start: date,
    working_days: Annotated[int, Query(ge=0, le=3650)],
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,2}$")] = None,
) -> dict[str, Any]:
    """The day ``working_days`` working days after ``start`` (the start day not counted)."""
    result = _calendar(ctx).add_working_days(start, working_days, region_code)
    return {
        "start": start,
        "working_days": working_days,
        "day": result.day,
        "estimated": result.estimated,
    }


@router.get("/days/{day}", dependencies=[Depends(allow("calendar.read"))])
def day_info(
    day: date,
    ctx: CtxDep,
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,2}$")] = None,
) -> dict[str, Any]:
    return asdict(_calendar(ctx).day_info(day, region_code))


@router.post("/schedules", status_code=201)
def load(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("calendar.manage"))],
    schedule: Annotated[dict[str, Any] | list[Any], Body()],
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,2}$")] = None,
    source: Annotated[str, Query(max_length=200)] = "api",
) -> dict[str, Any]:
    """Load one or more years' holidays and adjusted working days (replaces that year)."""
    if not schedule:
        raise InvalidInput("放假安排为空", "Empty schedule", code="invalid_schedule")
    return asdict(load_schedule(ctx, actor, schedule, source, region_code))
