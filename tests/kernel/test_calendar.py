"""Working-day arithmetic, the fallback for years without data, and loading 放假安排."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
import pytest
from sqlalchemy import func, select

from xietong.kernel import audit
from xietong.kernel.access import Actor, Role
from xietong.kernel.calendar import (
    CalendarDay,
    CalendarSchedule,
    Deadline,
    DeadlineAt,
    WorkCalendar,
    load_schedule,
    load_schedule_file,
    package_covers,
    parse_schedule,
    region_chain,
    to_local_date,
)
from xietong.kernel.clock import CST
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput
from xietong.kernel.outbox import OutboxEvent
from xietong.plugins import plugin_manager

ADMIN = Actor(kind="user", id=1, name="admin", scopes={Role.ADMIN: frozenset()})
CLERK = Actor(kind="user", id=2, name="clerk", scopes={Role.WINDOW_CLERK: frozenset({1})})

# A plausible 2028 schedule: chinese-calendar stops at 2026, so 2028 is "unknown".
SCHEDULE_2028: dict[str, Any] = {
    "year": 2028,
    "holidays": [
        {"name": "元旦", "days": ["2028-01-01/2028-01-03"]},
        {"name": "春节", "days": ["2028-01-25/2028-01-31"]},
    ],
    "workdays": [{"name": "春节调休", "days": ["2028-01-22", "2028-02-05"]}],
}


@pytest.fixture(autouse=True)
def _actions() -> None:
    plugin_manager()  # registers "calendar.manage" with the other kernel actions


@pytest.fixture
def cal(ctx: Context) -> WorkCalendar:
    assert ctx.calendar is not None
    return ctx.calendar


def d(text: str) -> date:
    return date.fromisoformat(text)


def cst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CST)


def counts(ctx: Context) -> tuple[int, int, int]:
    """(audit tree size, calendar_day rows, calendar_schedule rows)."""
    with ctx.db.read() as session:
        return (
            audit.tree_size(session),
            session.scalar(select(func.count()).select_from(CalendarDay)) or 0,
            session.scalar(select(func.count()).select_from(CalendarSchedule)) or 0,
        )


# --- the package's years ---------------------------------------------------------------


def test_national_day_2026_one_working_day_after_the_holiday(cal: WorkCalendar) -> None:
    start = d("2026-09-30")
    expected = next(
        day
        for day in (start + timedelta(days=k) for k in range(1, 30))
        if chinese_calendar.is_workday(day)
    )
    assert expected == d("2026-10-08")  # 10-01 … 10-07 off
    assert cal.add_working_days(start, 1) == Deadline(d("2026-10-08"), estimated=False)


def test_adjusted_working_days_count(cal: WorkCalendar) -> None:
    # Spring Festival 2026: Saturday 02-14 and Saturday 02-28 are working days.
    assert d("2026-02-14").weekday() == 5
    assert cal.is_workday(d("2026-02-14"))
    assert cal.add_working_days(d("2026-02-13"), 1).day == d("2026-02-14")
    assert cal.add_working_days(d("2026-02-14"), 1).day == d("2026-02-24")
    assert cal.add_working_days(d("2026-02-27"), 1).day == d("2026-02-28")
    # National Day: Saturday 10-10 is a working day, Sunday 10-11 is not.
    assert cal.add_working_days(d("2026-09-30"), 3).day == d("2026-10-10")
    assert cal.add_working_days(d("2026-09-30"), 4).day == d("2026-10-12")


def test_zero_and_negative_days(cal: WorkCalendar) -> None:
    assert cal.add_working_days(d("2026-09-30"), 0) == Deadline(d("2026-09-30"), False)
    assert cal.add_working_days(d("2026-10-01"), 0).day == d("2026-10-08")
    assert cal.add_working_days(d("2026-10-10"), 0).day == d("2026-10-10")
    with pytest.raises(ValueError):
        cal.add_working_days(d("2026-09-30"), -1)


def test_working_days_between(cal: WorkCalendar) -> None:
    # (09-30, 10-12]: 10-08, 10-09, 10-10 (adjusted Saturday), 10-12
    assert cal.working_days_between(d("2026-09-30"), d("2026-10-12")) == 4
    assert cal.working_days_between(d("2026-10-12"), d("2026-09-30")) == 0
    assert cal.working_days_between(d("2026-09-30"), d("2026-09-30")) == 0
    start = d("2026-03-02")
    for n in (1, 5, 20, 60):
        end = cal.add_working_days(start, n).day
        assert cal.working_days_between(start, end) == n


def test_day_info_names_holidays(cal: WorkCalendar) -> None:
    info = cal.day_info(d("2026-10-01"))
    assert (info.is_workday, info.name, info.basis, info.estimated) == (
        False,
        "国庆节",
        "package",
        False,
    )
    adjusted = cal.day_info(d("2026-10-10"))
    assert adjusted.is_workday and adjusted.name == "国庆节 (调休上班)"


# --- years without data ----------------------------------------------------------------


def test_year_without_data_falls_back_to_weekends(ctx: Context, cal: WorkCalendar) -> None:
    assert not package_covers(2028), "chinese-calendar now knows 2028: move this test on"
    assert cal.has_official_data(2026)
    assert not cal.has_official_data(2027)
    assert not cal.has_official_data(2028)
    # 2028-01-01 is a Saturday: Mon-Fri only, so the next working day is Monday 01-03.
    assert cal.add_working_days(d("2027-12-31"), 1) == Deadline(d("2028-01-03"), True)
    assert cal.is_workday(d("2028-01-26"))  # 春节 is unknown without data
    assert not cal.is_workday(d("2028-01-22"))
    info = cal.day_info(d("2028-01-03"))
    assert (info.basis, info.estimated) == ("fallback", True)
    # A deadline that only touches known days is not flagged, even if it starts in 2026.
    assert not cal.add_working_days(d("2026-12-01"), 5).estimated
    # Crossing into a year without data is flagged.
    assert cal.add_working_days(d("2026-12-30"), 3).estimated


def test_loading_a_schedule_makes_the_year_official(ctx: Context, cal: WorkCalendar) -> None:
    before = counts(ctx)
    result = load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin")
    assert result.years == (2028,)
    assert (result.holidays, result.workdays, result.replaced) == (10, 2, 0)
    assert result.region_code is None
    assert result.weekend_holidays == (
        d("2028-01-01"),
        d("2028-01-02"),
        d("2028-01-29"),
        d("2028-01-30"),
    )
    assert counts(ctx) == (before[0] + 1, before[1] + 12, before[2] + 1)

    assert cal.has_official_data(2028)
    # Same question as in the fallback test, now answered from the schedule.
    assert cal.add_working_days(d("2027-12-31"), 1) == Deadline(d("2028-01-04"), False)
    # 2027 has no data: counting through it is still flagged.
    assert cal.add_working_days(d("2027-12-30"), 1) == Deadline(d("2027-12-31"), True)
    assert cal.add_working_days(d("2028-01-21"), 1) == Deadline(d("2028-01-22"), False)
    assert cal.add_working_days(d("2028-01-24"), 1) == Deadline(d("2028-02-01"), False)
    info = cal.day_info(d("2028-01-26"))
    assert (info.is_workday, info.name, info.basis) == (False, "春节", "national")

    with ctx.db.read() as session:
        events = [
            event.to_cloudevent()
            for event in session.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "calendar.schedule.loaded")
            )
        ]
        payload = json.loads(audit.get_leaf(session, before[0]).payload)
    assert [event["data"] for event in events] == [{"year": 2028, "region_code": None}]
    assert events[0]["source"] == "/xietong/calendar"
    assert events[0]["subject"] == "calendar/national/2028"
    assert (payload["years"], payload["holidays"], payload["workdays"]) == ([2028], 10, 2)


def test_reloading_a_year_replaces_it(ctx: Context, cal: WorkCalendar) -> None:
    load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin")
    corrected = {"year": 2028, "holidays": [{"name": "元旦", "days": ["2028-01-03"]}]}
    result = load_schedule(ctx, ADMIN, corrected, source="file:2028.json")
    assert result.replaced == 12
    assert counts(ctx)[1:] == (1, 1)
    assert cal.is_workday(d("2028-01-26"))  # 春节 gone with the old load
    assert not cal.is_workday(d("2028-01-03"))
    with ctx.db.read() as session:
        row = session.execute(
            select(CalendarSchedule.source, CalendarSchedule.holidays, CalendarSchedule.loaded_by)
        ).one()
    assert tuple(row) == ("file:2028.json", 1, "user:admin")


def test_several_years_in_one_load(ctx: Context, cal: WorkCalendar) -> None:
    schedule_2027 = {"year": 2027, "holidays": [{"name": "元旦", "days": ["2027-01-01"]}]}
    result = load_schedule(ctx, ADMIN, [schedule_2027, SCHEDULE_2028], source="admin")
    assert result.years == (2027, 2028)
    assert cal.has_official_data(2027) and cal.has_official_data(2028)
    assert not cal.add_working_days(d("2027-12-31"), 1).estimated
    assert counts(ctx)[0] == 1  # one audit leaf for the whole load


def test_load_schedule_file(ctx: Context, cal: WorkCalendar, tmp_path: Path) -> None:
    path = tmp_path / "2028.json"
    # Written with a BOM, as some Windows editors do.
    path.write_text(json.dumps(SCHEDULE_2028, ensure_ascii=False), encoding="utf-8-sig")
    load_schedule_file(ctx, ADMIN, path)
    with ctx.db.read() as session:
        sources = set(session.scalars(select(CalendarDay.source)))
    assert sources == {"file:2028.json"}
    assert cal.has_official_data(2028)

    broken = tmp_path / "broken.json"
    broken.write_text('{"year": 2029,', encoding="utf-8")
    with pytest.raises(InvalidInput):
        load_schedule_file(ctx, ADMIN, broken)
    with pytest.raises(InvalidInput):
        load_schedule_file(ctx, ADMIN, tmp_path / "missing.json")


def test_only_administrators_load_schedules(ctx: Context) -> None:
    with pytest.raises(Forbidden):
        load_schedule(ctx, CLERK, SCHEDULE_2028, source="admin")
    assert counts(ctx) == (0, 0, 0)


# --- regions ---------------------------------------------------------------------------


def test_region_override_only_affects_that_region(ctx: Context, cal: WorkCalendar) -> None:
    local = {"year": 2026, "holidays": [{"name": "长沙市特别休假", "days": ["2026-10-09"]}]}
    result = load_schedule(ctx, ADMIN, local, source="admin", region_code="430100")
    assert result.region_code == "430100"

    assert not cal.is_workday(d("2026-10-09"), "430100")
    assert not cal.is_workday(d("2026-10-09"), "430102")  # a district of the city
    assert cal.is_workday(d("2026-10-09"), "440100")
    assert cal.is_workday(d("2026-10-09"), "430000")  # the province is not the city
    assert cal.is_workday(d("2026-10-09"))
    assert cal.add_working_days(d("2026-09-30"), 2, "430100").day == d("2026-10-10")
    assert cal.add_working_days(d("2026-09-30"), 2).day == d("2026-10-09")
    info = cal.day_info(d("2026-10-09"), "430102")
    assert (info.basis, info.region_code, info.name) == ("region", "430100", "长沙市特别休假")
    # which calendar each region follows: the city's for its districts, else nationwide
    assert cal.calendar_region("430102") == cal.calendar_region("430100") == "430100"
    assert cal.calendar_region("430000") is None and cal.calendar_region("440100") is None
    assert cal.calendar_region(None) is None


def test_regional_schedule_alone_does_not_make_a_year_official(
    ctx: Context, cal: WorkCalendar
) -> None:
    local = {"year": 2028, "workdays": [{"name": "调休", "days": ["2028-01-08"]}]}
    load_schedule(ctx, ADMIN, local, source="admin", region_code="430100")
    assert cal.is_workday(d("2028-01-08"), "430100")
    assert not cal.is_workday(d("2028-01-08"))
    assert not cal.has_official_data(2028, "430100")
    assert cal.add_working_days(d("2028-01-07"), 1, "430100") == Deadline(d("2028-01-08"), True)


def test_region_chain() -> None:
    assert region_chain(None) == ()
    assert region_chain("") == ()
    assert region_chain("430102") == ("430102", "430100", "430000")
    assert region_chain("430100") == ("430100", "430000")
    assert region_chain("430102001") == ("430102001", "430102", "430100", "430000")
    assert region_chain("custom") == ("custom",)


# --- bad schedules ---------------------------------------------------------------------


def _entry(kind: str, name: str, *days: str) -> dict[str, Any]:
    return {kind: [{"name": name, "days": list(days)}]}


BAD_SCHEDULES: dict[str, tuple[Any, str]] = {
    "outside the year": (
        {"year": 2028, **_entry("holidays", "元旦", "2027-12-31")},
        "2028.holidays[0] 元旦",
    ),
    "holiday and workday": (
        {
            "year": 2028,
            **_entry("holidays", "春节", "2028-01-22"),
            **_entry("workdays", "春节调休", "2028-01-22"),
        },
        "2028.workdays[0] 春节调休",
    ),
    "malformed date": ({"year": 2028, **_entry("holidays", "元旦", "2028-1-3")}, "元旦"),
    "impossible date": ({"year": 2028, **_entry("holidays", "元旦", "2028-02-30")}, "元旦"),
    "backwards range": (
        {"year": 2028, **_entry("holidays", "元旦", "2028-01-03/2028-01-01")},
        "元旦",
    ),
    "weekday as workday": (
        {
            "year": 2028,
            **_entry("holidays", "元旦", "2028-01-03"),
            **_entry("workdays", "调休", "2028-01-04"),
        },
        "2028.workdays[0] 调休",
    ),
    "listed twice": (
        {
            "year": 2028,
            "holidays": [
                {"name": "元旦", "days": ["2028-01-03"]},
                {"name": "又元旦", "days": ["2028-01-03"]},
            ],
        },
        "2028.holidays[1] 又元旦",
    ),
    "misspelt key": ({"year": 2028, **_entry("holiday", "元旦", "2028-01-03")}, "2028"),
    "no year": (_entry("holidays", "元旦", "2028-01-03"), "schedule.year"),
    "empty national": ({"year": 2028, "holidays": []}, "2028"),
    "not a list": ({"year": 2028, "holidays": {"name": "元旦"}}, "2028.holidays"),
    "no days": ({"year": 2028, "holidays": [{"name": "元旦", "days": []}]}, "元旦"),
    "year twice": ([SCHEDULE_2028, SCHEDULE_2028], "[1]"),
}


@pytest.mark.parametrize("case", list(BAD_SCHEDULES))
def test_bad_schedule_is_rejected_and_writes_nothing(ctx: Context, case: str) -> None:
    data, entry = BAD_SCHEDULES[case]
    before = counts(ctx)
    with pytest.raises(InvalidInput) as raised:
        load_schedule(ctx, ADMIN, data, source="admin")
    errors = raised.value.details["errors"]
    assert any(entry in error["entry"] for error in errors), errors
    assert entry in raised.value.message_en and entry in raised.value.message_zh
    assert counts(ctx) == before


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "year": 2028,
        "holidays": [{"name": "元旦", "days": ["2027-12-31", "2028-13-01", "2028-01-03"]}],
        "workdays": [{"name": "调休", "days": ["2028-01-03", "2028-01-04"]}],
    }
    with pytest.raises(InvalidInput) as raised:
        parse_schedule(data)
    assert len(raised.value.details["errors"]) == 4


def test_bad_region_code_and_source(ctx: Context) -> None:
    with pytest.raises(InvalidInput):
        load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin", region_code="4301")
    with pytest.raises(InvalidInput):
        load_schedule(ctx, ADMIN, SCHEDULE_2028, source=" ")
    assert counts(ctx) == (0, 0, 0)


def test_a_failed_reload_keeps_the_previous_schedule(ctx: Context, cal: WorkCalendar) -> None:
    load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin")
    before = counts(ctx)
    with pytest.raises(InvalidInput):
        load_schedule(ctx, ADMIN, BAD_SCHEDULES["outside the year"][0], source="admin")
    assert counts(ctx) == before
    assert not cal.is_workday(d("2028-01-26"))


# --- the cache -------------------------------------------------------------------------


def test_other_calendars_see_loads_after_invalidate(ctx: Context) -> None:
    other = WorkCalendar(ctx.db, cache_ttl=None)
    assert other.is_workday(d("2028-01-03"))
    load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin")
    assert other.is_workday(d("2028-01-03"))  # still the cached rows
    other.invalidate()
    assert not other.is_workday(d("2028-01-03"))

    expiring = WorkCalendar(ctx.db, cache_ttl=0)
    assert not expiring.is_workday(d("2028-01-03"))


# --- working hours ---------------------------------------------------------------------


def test_working_hours_across_lunch(cal: WorkCalendar) -> None:
    result = cal.add_working_hours(cst("2026-09-29T11:00"), 2)
    assert result == DeadlineAt(cst("2026-09-29T14:30"), estimated=False)
    assert result.at.utcoffset() == timedelta(hours=8)
    # Ending exactly at closing time stays on that day.
    assert cal.add_working_hours(cst("2026-09-29T16:30"), 1).at == cst("2026-09-29T17:30")
    assert cal.add_working_hours(cst("2026-09-29T11:00"), 1).at == cst("2026-09-29T12:00")
    # Starting during lunch counts from 13:30.
    assert cal.add_working_hours(cst("2026-09-29T12:15"), 0.5).at == cst("2026-09-29T14:00")


def test_working_hours_across_a_weekend(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(cst("2026-10-16T16:30"), 2).at == cst("2026-10-19T10:00")
    # A full working day is 7 hours.
    assert cal.add_working_hours(cst("2026-10-16T09:00"), 14).at == cst("2026-10-19T17:30")


def test_working_hours_across_a_holiday(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(cst("2026-09-30T17:00"), 1).at == cst("2026-10-08T09:30")
    # The adjusted Saturday has office hours too.
    assert cal.add_working_hours(cst("2026-10-09T17:00"), 1).at == cst("2026-10-10T09:30")


def test_working_hours_start_and_input_checks(cal: WorkCalendar) -> None:
    assert cal.add_working_hours(cst("2026-09-29T07:00"), 0).at == cst("2026-09-29T09:00")
    utc_start = datetime(2026, 9, 29, 1, 0, tzinfo=UTC)  # 09:00 in China
    assert cal.add_working_hours(utc_start, 1).at == cst("2026-09-29T10:00")
    with pytest.raises(ValueError):
        cal.add_working_hours(datetime(2026, 9, 29, 9, 0), 1)
    with pytest.raises(ValueError):
        cal.add_working_hours(cst("2026-09-29T09:00"), -1)


def test_working_hours_in_a_year_without_data(ctx: Context, cal: WorkCalendar) -> None:
    flagged = cal.add_working_hours(cst("2028-01-21T17:00"), 1)
    assert flagged == DeadlineAt(cst("2028-01-24T09:30"), estimated=True)
    load_schedule(ctx, ADMIN, SCHEDULE_2028, source="admin")
    assert cal.add_working_hours(cst("2028-01-21T17:00"), 1) == DeadlineAt(
        cst("2028-01-22T09:30"), estimated=False
    )


def test_to_local_date() -> None:
    assert to_local_date(datetime(2026, 9, 30, 16, 30, tzinfo=UTC)) == d("2026-10-01")
    assert to_local_date(datetime(2026, 9, 30, 15, 59, tzinfo=UTC)) == d("2026-09-30")
    with pytest.raises(ValueError):
        to_local_date(datetime(2026, 9, 30, 12, 0))
