"""Working days (工作日) for China: holidays, adjusted working days, regional overrides.

Whether a day is a working day is decided, first match wins, by:

1. an override loaded for the region or one of its parent regions (``430102`` is
   covered by overrides for ``430100`` and ``430000``);
2. a nationwide override (an administrator-loaded 放假安排);
3. the ``chinese-calendar`` package;
4. Monday to Friday, for a year the package has no data for.

``chinese-calendar`` only knows the years the State Council has announced and raises
``NotImplementedError`` outside them. A deadline must never fail because of that, so
step 4 applies and every result that depended on a day of such a year is flagged
``estimated``. When an administrator loads that year's schedule (``load_schedule``),
a ``calendar.schedule.loaded`` event tells the apps to recompute their flagged
deadlines.

Storage note: nationwide rows are stored with ``region_code = ""`` rather than NULL.
A unique constraint treats NULLs as distinct on both SQLite and PostgreSQL (before
PostgreSQL 15's ``NULLS NOT DISTINCT``), so NULL would allow two nationwide rows for
the same day. The public API uses ``None`` for nationwide; ``""`` stays inside.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import threading
import time as monotonic_time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import chinese_calendar
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Integer,
    String,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.canonical import canonical_json
from xietong.kernel.clock import CST
from xietong.kernel.db import Base, Database
from xietong.kernel.errors import Conflict, InvalidInput
from xietong.kernel.events import Event, event_type
from xietong.kernel.uow import UnitOfWork

if TYPE_CHECKING:
    from xietong.kernel.context import Context

NATIONWIDE = ""  # the stored region_code of nationwide rows (see the module docstring)

# Office hours for deadlines counted in working hours (hotline SLAs), China time.
OFFICE_HOURS: tuple[tuple[time, time], ...] = (
    (time(9, 0), time(12, 0)),
    (time(13, 30), time(17, 30)),
)

# A run of this many non-working days can only come from corrupt overrides; stop there
# rather than loop forever.
_MAX_NON_WORKING_RUN = 366

_REGION_RE = re.compile(r"^(\d{6}|\d{9}|\d{12})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID = BigInteger().with_variant(Integer, "sqlite")


# --- storage -----------------------------------------------------------------------


class CalendarDay(Base):
    """One overridden day: a holiday or an adjusted working day, nationwide or regional."""

    __tablename__ = "calendar_day"
    __table_args__ = (UniqueConstraint("region_code", "day"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    # "" = nationwide; NULL is avoided so that the unique constraint holds (see above).
    region_code: Mapped[str] = mapped_column(
        String(12), default=NATIONWIDE, server_default=NATIONWIDE
    )
    day: Mapped[date] = mapped_column(Date)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(100))  # 国庆节, 春节调休 …
    source: Mapped[str] = mapped_column(String(200))  # "admin", "file:2027.json" …
    created_at: Mapped[datetime]


class CalendarSchedule(Base):
    """Which years' schedules were loaded, per region.

    Kept apart from the days because "2028 is officially known" cannot be inferred from
    the day rows alone (a year is a fact about the whole year, not about any one day).
    """

    __tablename__ = "calendar_schedule"
    __table_args__ = (UniqueConstraint("region_code", "year"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(
        String(12), default=NATIONWIDE, server_default=NATIONWIDE
    )
    year: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200))
    holidays: Mapped[int] = mapped_column(Integer)
    workdays: Mapped[int] = mapped_column(Integer)
    loaded_by: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime]


@event_type("calendar.schedule.loaded", "A year's 放假安排 was loaded for a region or nationwide")
@dataclass(frozen=True)
class ScheduleLoaded(Event):
    """A year's 放假安排 was loaded; deadlines flagged as estimated should be recomputed."""

    year: int
    region_code: str | None  # None = nationwide

    @property
    def subject(self) -> str:
        return f"calendar/{self.region_code or 'national'}/{self.year}"


# --- results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A computed date; ``estimated`` when a day counted fell in a year without data."""

    day: date
    estimated: bool


@dataclass(frozen=True)
class DeadlineAt:
    """A computed moment (aware, China time) for deadlines counted in working hours."""

    at: datetime
    estimated: bool


Basis = Literal["region", "national", "package", "fallback"]


@dataclass(frozen=True)
class DayInfo:
    """Why a day is or is not a working day, for showing users how a deadline came out."""

    day: date
    is_workday: bool
    name: str | None  # 国庆节, 春节 (调休上班) … or None for an ordinary day
    basis: Basis
    region_code: str | None  # the region whose override decided, for basis "region"
    estimated: bool


@dataclass(frozen=True)
class ScheduleLoadResult:
    region_code: str | None
    years: tuple[int, ...]
    holidays: int
    workdays: int
    replaced: int  # rows of earlier loads of the same years and region removed
    # Holidays on a Saturday or Sunday change nothing (those are days off anyway) but
    # the official notices list them inside a holiday span; reported, not rejected.
    weekend_holidays: tuple[date, ...]


# --- helpers -----------------------------------------------------------------------


def to_local_date(moment: datetime) -> date:
    """The date in China (Asia/Shanghai) of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("to_local_date needs an aware datetime")
    return moment.astimezone(CST).date()


def region_chain(region_code: str | None) -> tuple[str, ...]:
    """The region and its parents, most specific first; ``()`` for nationwide.

    GB/T 2260 codes are 6 digits (省 ``43 00 00``, 市 ``43 01 00``, 区县 ``43 01 02``);
    street (街道/乡镇) codes extend them to 9 and village codes to 12 digits. Codes that
    do not look like that are used as given, without parents.
    """
    if not region_code:
        return ()
    if not _REGION_RE.match(region_code):
        return (region_code,)
    chain = [region_code]
    for cut in (9, 6):
        if len(region_code) > cut:
            chain.append(region_code[:cut])
    county = region_code[:6]
    for keep in (4, 2):
        chain.append(county[:keep].ljust(6, "0"))
    return tuple(dict.fromkeys(code for code in chain if code.strip("0")))


_PACKAGE_NAMES_ZH = {holiday.value: holiday.chinese for holiday in chinese_calendar.Holiday}


@functools.cache
def package_covers(year: int) -> bool:
    """Whether ``chinese-calendar`` has the State Council's schedule for ``year``."""
    # Probing is the package's own definition of coverage: it raises
    # NotImplementedError for any date of a year outside its data.
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# --- the calendar ------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """The override rows as loaded at one moment; replaced whole, never mutated."""

    days: dict[tuple[str, date], tuple[bool, str]]
    national_years: frozenset[int]
    loaded_at: float
    regions: frozenset[str] = frozenset()  # regions with overrides of their own


class WorkCalendar:
    """Working-day arithmetic with the overrides cached in memory.

    The override rows (a few dozen per year and region) are read once, lazily, and
    kept until ``invalidate()`` — which ``load_schedule`` calls after its commit — or
    until ``cache_ttl`` seconds have passed, so that other processes (web workers, the
    worker) pick up a schedule loaded elsewhere without a restart. A consumer of
    ``calendar.schedule.loaded`` in another process should call ``invalidate()`` before
    recomputing, rather than wait for the TTL.
    """

    def __init__(self, db: Database, *, cache_ttl: float | None = 60.0) -> None:
        self.db = db
        self.cache_ttl = cache_ttl
        self._snapshot_value: _Snapshot | None = None
        self._lock = threading.Lock()
        # Bumped by invalidate(): a load that started before an invalidation must not
        # install its (possibly stale) rows afterwards.
        self._generation = 0

    # -- cache --

    def invalidate(self) -> None:
        """Forget the cached overrides; the next question reloads them."""
        self._generation += 1
        self._snapshot_value = None

    def _snapshot(self) -> _Snapshot:
        snapshot = self._snapshot_value
        if snapshot is not None and not self._expired(snapshot):
            return snapshot
        with self._lock:
            snapshot = self._snapshot_value
            if snapshot is None or self._expired(snapshot):
                generation = self._generation
                snapshot = self._load()
                if generation == self._generation:
                    self._snapshot_value = snapshot
            return snapshot

    def _expired(self, snapshot: _Snapshot) -> bool:
        if self.cache_ttl is None:
            return False
        return monotonic_time.monotonic() - snapshot.loaded_at > self.cache_ttl

    def _load(self) -> _Snapshot:
        with self.db.read() as session:
            rows = session.execute(
                select(
                    CalendarDay.region_code,
                    CalendarDay.day,
                    CalendarDay.is_workday,
                    CalendarDay.name,
                )
            ).all()
            years = session.scalars(
                select(CalendarSchedule.year).where(CalendarSchedule.region_code == NATIONWIDE)
            ).all()
        return _Snapshot(
            days={(region, day): (workday, name) for region, day, workday, name in rows},
            national_years=frozenset(years),
            loaded_at=monotonic_time.monotonic(),
            regions=frozenset(region for region, *_rest in rows if region != NATIONWIDE),
        )

    # -- single days --

    def _decide(self, snapshot: _Snapshot, day: date, chain: Sequence[str]) -> tuple[bool, bool]:
        """(is_workday, official) for one day: the hot path of every computation."""
        official = package_covers(day.year) or day.year in snapshot.national_years
        for region in (*chain, NATIONWIDE):
            found = snapshot.days.get((region, day))
            if found is not None:
                return found[0], official
        if package_covers(day.year):
            return chinese_calendar.is_workday(day), True
        return day.weekday() < 5, official

    def is_workday(self, day: date, region_code: str | None = None) -> bool:
        return self._decide(self._snapshot(), day, region_chain(region_code))[0]

    def calendar_region(self, region_code: str | None) -> str | None:
        """The region whose calendar ``region_code`` follows: the most specific region
        of its chain with overrides of its own, ``None`` for the nationwide calendar.

        Two regions with the same answer have the same working days, so a caller
        computing for many regions (the tasks app's warnings) needs one calendar per
        distinct answer, not one per region. The chain's less specific overrides still
        apply (``430102`` answers ``430100`` and also follows ``430000``'s days).
        """
        regions = self._snapshot().regions
        return next((r for r in region_chain(region_code) if r in regions), None)

    def has_official_data(self, year: int, region_code: str | None = None) -> bool:
        """Whether ``year``'s holidays are known: by the package or a nationwide load.

        A regional schedule alone does not make a year official: regional schedules
        add local days to the national 放假安排 and do not contain 春节 and the rest, so
        a deadline computed with only them would be wrong without being flagged.
        ``region_code`` is accepted for symmetry with the other methods.
        """
        del region_code  # see the docstring
        return package_covers(year) or year in self._snapshot().national_years

    def day_info(self, day: date, region_code: str | None = None) -> DayInfo:
        snapshot = self._snapshot()
        chain = region_chain(region_code)
        official = package_covers(day.year) or day.year in snapshot.national_years
        for region in (*chain, NATIONWIDE):
            found = snapshot.days.get((region, day))
            if found is not None:
                basis: Basis = "region" if region else "national"
                return DayInfo(day, found[0], found[1], basis, region or None, not official)
        if package_covers(day.year):
            _off, name_en = chinese_calendar.get_holiday_detail(day)
            workday = chinese_calendar.is_workday(day)
            name = _PACKAGE_NAMES_ZH.get(name_en, name_en) if name_en else None
            if name and workday:
                name = f"{name} (调休上班)"
            return DayInfo(day, workday, name, "package", None, False)
        return DayInfo(day, day.weekday() < 5, None, "fallback", None, not official)

    # -- arithmetic --

    def add_working_days(self, start: date, n: int, region_code: str | None = None) -> Deadline:
        """The day ``n`` working days after ``start`` (``start`` itself does not count).

        ``n == 0`` gives ``start`` when it is a working day, else the next working day.
        """
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        snapshot = self._snapshot()
        chain = region_chain(region_code)
        estimated = False
        day = start
        if n == 0:
            day -= timedelta(days=1)  # so the loop below examines ``start`` itself
            n = 1
        remaining, run = n, 0
        while remaining:
            day += timedelta(days=1)
            workday, official = self._decide(snapshot, day, chain)
            estimated |= not official
            if workday:
                remaining -= 1
                run = 0
            else:
                run = _check_run(run, day)
        return Deadline(day, estimated)

    def working_days_between(self, a: date, b: date, region_code: str | None = None) -> int:
        """The number of working days in (a, b]; 0 when ``b`` is not after ``a``."""
        snapshot = self._snapshot()
        chain = region_chain(region_code)
        count = 0
        day = a + timedelta(days=1)
        while day <= b:
            count += self._decide(snapshot, day, chain)[0]
            day += timedelta(days=1)
        return count

    def add_working_hours(
        self,
        start: datetime,
        hours: float,
        region_code: str | None = None,
        *,
        office_hours: Sequence[tuple[time, time]] = OFFICE_HOURS,
    ) -> DeadlineAt:
        """The moment ``hours`` office hours after ``start``, in China time.

        Only office hours of working days count (09:00–12:00 and 13:30–17:30 by
        default). A start outside them counts from the next opening. A deadline that
        falls exactly on a closing time stays there (17:30, not the next 09:00).
        """
        if start.tzinfo is None:
            raise ValueError("add_working_hours needs an aware datetime")
        if hours < 0:
            raise ValueError(f"hours must not be negative, got {hours}")
        periods = _check_periods(office_hours)
        snapshot = self._snapshot()
        chain = region_chain(region_code)
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(CST)
        day = cursor.date()
        estimated = False
        run = 0
        while True:
            workday, official = self._decide(snapshot, day, chain)
            estimated |= not official
            if workday:
                run = 0
                for opens, closes in periods:
                    period_start = datetime.combine(day, opens, CST)
                    period_end = datetime.combine(day, closes, CST)
                    if cursor >= period_end:
                        continue
                    begin = max(cursor, period_start)
                    available = period_end - begin
                    if remaining <= available:
                        return DeadlineAt(begin + remaining, estimated)
                    remaining -= available
                    cursor = period_end
            else:
                run = _check_run(run, day)
            day += timedelta(days=1)
            cursor = datetime.combine(day, time(0), CST)


def _check_run(run: int, day: date) -> int:
    run += 1
    if run > _MAX_NON_WORKING_RUN:
        raise RuntimeError(f"no working day in the {run} days up to {day}: check the overrides")
    return run


def _check_periods(periods: Sequence[tuple[time, time]]) -> Sequence[tuple[time, time]]:
    if not periods:
        raise ValueError("office_hours must not be empty")
    previous_end = time(0)
    for opens, closes in periods:
        if not (previous_end <= opens < closes):
            raise ValueError("office_hours must be ordered, non-overlapping periods")
        previous_end = closes
    return periods


# --- loading a year's 放假安排 -----------------------------------------------------

_DOCUMENT_KEYS = {"year", "holidays", "workdays", "note"}
_KINDS = (("holidays", False), ("workdays", True))


@dataclass
class _Problem:
    entry: str
    message_zh: str
    message_en: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass
class YearSchedule:
    """One year's validated schedule, as ``parse_schedule`` returns it."""

    year: int
    days: dict[date, tuple[bool, str]]  # day -> (is_workday, name)


def _parse_day(text: Any) -> date | None:
    if not isinstance(text, str) or not _DATE_RE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _expand_days(text: Any) -> list[date] | None:
    """One ``YYYY-MM-DD`` or an inclusive ``YYYY-MM-DD/YYYY-MM-DD`` range."""
    if isinstance(text, str) and "/" in text:
        first, _, last = text.partition("/")
        begin, end = _parse_day(first), _parse_day(last)
        if begin is None or end is None or end < begin:
            return None
        return [begin + timedelta(days=offset) for offset in range((end - begin).days + 1)]
    single = _parse_day(text)
    return None if single is None else [single]


def _parse_document(
    document: Any, label: str, problems: list[_Problem], weekend_holidays: list[date]
) -> YearSchedule | None:
    if not isinstance(document, dict):
        problems.append(_Problem(label, "应为 JSON 对象", "must be a JSON object"))
        return None
    year = document.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        problems.append(_Problem(f"{label}.year", f"年份无效：{year!r}", f"invalid year: {year!r}"))
        return None
    label = f"{year}"
    unknown = sorted(set(document) - _DOCUMENT_KEYS)
    if unknown:
        # A misspelt "holiday" would otherwise load an empty, "official" year.
        problems.append(
            _Problem(
                label, f"未知字段：{', '.join(unknown)}", f"unknown keys: {', '.join(unknown)}"
            )
        )
    schedule = YearSchedule(year, {})
    where: dict[date, str] = {}
    for kind, is_workday in _KINDS:
        entries = document.get(kind, [])
        if not isinstance(entries, list):
            problems.append(_Problem(f"{label}.{kind}", "应为列表", "must be a list"))
            continue
        for position, entry in enumerate(entries):
            entry_label = f"{label}.{kind}[{position}]"
            if not isinstance(entry, dict) or set(entry) - {"name", "days"}:
                problems.append(
                    _Problem(
                        entry_label,
                        "应为只含 name 与 days 的对象",
                        "must be an object with only name and days",
                    )
                )
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > 100:
                problems.append(_Problem(entry_label, "名称缺失或过长", "name missing or too long"))
                continue
            entry_label = f"{entry_label} {name}"
            days = entry.get("days")
            if not isinstance(days, list) or not days:
                problems.append(_Problem(entry_label, "days 应为非空列表", "days must be a list"))
                continue
            for text in days:
                expanded = _expand_days(text)
                if expanded is None:
                    problems.append(
                        _Problem(
                            entry_label,
                            f"日期格式无效（应为 YYYY-MM-DD）：{text!r}",
                            f"malformed date (expected YYYY-MM-DD): {text!r}",
                        )
                    )
                    continue
                for day in expanded:
                    _add_day(schedule, where, day, is_workday, name.strip(), entry_label, problems)
                    if not is_workday and day.weekday() >= 5 and day.year == year:
                        weekend_holidays.append(day)
    return schedule


def _add_day(
    schedule: YearSchedule,
    where: dict[date, str],
    day: date,
    is_workday: bool,
    name: str,
    label: str,
    problems: list[_Problem],
) -> None:
    iso = day.isoformat()
    if day.year != schedule.year:
        problems.append(
            _Problem(
                label,
                f"{iso} 不在 {schedule.year} 年内",
                f"{iso} is outside {schedule.year}",
            )
        )
        return
    if is_workday and day.weekday() < 5:
        problems.append(
            _Problem(
                label,
                f"{iso} 是周一至周五，调休上班日应为周末",
                f"{iso} is a weekday; an adjusted working day must be a Saturday or Sunday",
            )
        )
        return
    previous = schedule.days.get(day)
    if previous is not None:
        if previous[0] != is_workday:
            problems.append(
                _Problem(
                    label,
                    f"{iso} 同时列为放假日和上班日（另见 {where[day]}）",
                    f"{iso} is listed as both a holiday and a working day (see {where[day]})",
                )
            )
        else:
            problems.append(
                _Problem(
                    label,
                    f"{iso} 重复列出（另见 {where[day]}）",
                    f"{iso} is listed twice (see {where[day]})",
                )
            )
        return
    schedule.days[day] = (is_workday, name)
    where[day] = label


def parse_schedule(
    data: dict[str, Any] | list[Any], region_code: str | None = None
) -> tuple[list[YearSchedule], tuple[date, ...]]:
    """Validate a schedule (one year's object, or a list of them); raise on any problem."""
    problems: list[_Problem] = []
    weekend_holidays: list[date] = []
    documents: Iterable[Any] = data if isinstance(data, list) else [data]
    if isinstance(data, list) and not data:
        problems.append(_Problem("schedule", "列表为空", "empty list"))
    schedules: list[YearSchedule] = []
    for position, document in enumerate(documents):
        label = f"[{position}]" if isinstance(data, list) else "schedule"
        parsed = _parse_document(document, label, problems, weekend_holidays)
        if parsed is None:
            continue
        if any(existing.year == parsed.year for existing in schedules):
            problems.append(
                _Problem(label, f"{parsed.year} 年重复", f"year {parsed.year} given twice")
            )
        holidays = sum(not workday for workday, _name in parsed.days.values())
        if not region_code and holidays == 0:
            # Every national schedule has 元旦 at least; an empty one would mark the year
            # official and silently drop every holiday.
            problems.append(
                _Problem(
                    str(parsed.year),
                    "全国放假安排至少应有一个放假日",
                    "a nationwide schedule must list at least one holiday",
                )
            )
        schedules.append(parsed)
    if problems:
        raise _invalid(problems)
    return schedules, tuple(sorted(set(weekend_holidays)))


def _invalid(problems: list[_Problem]) -> InvalidInput:
    shown = problems[:5]
    more_zh = f"等 {len(problems)} 处" if len(problems) > len(shown) else ""
    more_en = f" ({len(problems)} problems in all)" if len(problems) > len(shown) else ""
    return InvalidInput(
        "放假安排有误：" + "；".join(f"{p.entry}：{p.message_zh}" for p in shown) + more_zh,
        "Invalid holiday schedule: "
        + "; ".join(f"{p.entry}: {p.message_en}" for p in shown)
        + more_en,
        details={"errors": [problem.as_dict() for problem in problems]},
    )


def _check_region(region_code: str | None) -> str:
    if region_code is None or region_code == NATIONWIDE:
        return NATIONWIDE
    if not _REGION_RE.match(region_code) or not region_code.strip("0"):
        raise InvalidInput(
            f"行政区划代码无效：{region_code!r}（应为 6、9 或 12 位数字）",
            f"invalid region code {region_code!r} (expected 6, 9 or 12 digits)",
            details={"region_code": region_code},
        )
    return region_code


def load_schedule(
    ctx: Context,
    actor: Actor,
    data: dict[str, Any] | list[Any],
    source: str,
    region_code: str | None = None,
) -> ScheduleLoadResult:
    """Load a year's 放假安排 (or several years'), replacing earlier loads of those years.

    All or nothing: any problem raises ``InvalidInput`` naming every bad entry and
    writes nothing. Records one audit leaf and emits ``calendar.schedule.loaded`` per
    year so apps recompute deadlines that were flagged as estimated.
    """
    authorize(actor, "calendar.manage")
    key = _check_region(region_code)
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise InvalidInput(
            "来源应为 1–200 个字符", "source must be 1–200 characters", details={"source": source}
        )
    if not isinstance(data, dict | list):
        raise _invalid([_Problem("schedule", "应为 JSON 对象或列表", "must be an object or list")])
    schedules, weekend_holidays = parse_schedule(data, key or None)

    moment = clock.now()
    replaced = holidays = workdays = 0
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        for schedule in schedules:
            first, last = date(schedule.year, 1, 1), date(schedule.year, 12, 31)
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    delete(CalendarDay)
                    .where(CalendarDay.region_code == key, CalendarDay.day.between(first, last))
                    .execution_options(synchronize_session=False)
                ),
            )
            replaced += result.rowcount
            session.execute(
                delete(CalendarSchedule)
                .where(CalendarSchedule.region_code == key, CalendarSchedule.year == schedule.year)
                .execution_options(synchronize_session=False)
            )
            year_holidays = sum(not workday for workday, _ in schedule.days.values())
            year_workdays = len(schedule.days) - year_holidays
            holidays += year_holidays
            workdays += year_workdays
            session.add(
                CalendarSchedule(
                    region_code=key,
                    year=schedule.year,
                    source=source,
                    holidays=year_holidays,
                    workdays=year_workdays,
                    loaded_by=actor.label,
                    loaded_at=moment,
                )
            )
            session.add_all(
                CalendarDay(
                    region_code=key,
                    day=day,
                    is_workday=workday,
                    name=name,
                    source=source,
                    created_at=moment,
                )
                for day, (workday, name) in sorted(schedule.days.items())
            )
            uow.emit(ScheduleLoaded(year=schedule.year, region_code=key or None), module="calendar")
        years = tuple(schedule.year for schedule in schedules)
        # The digest pins exactly what was loaded without copying every day into the log.
        digest = hashlib.sha256(
            canonical_json(
                {
                    str(s.year): {d.isoformat(): [w, n] for d, (w, n) in sorted(s.days.items())}
                    for s in schedules
                }
            )
        ).hexdigest()
        uow.record(
            "calendar.schedule.load",
            f"calendar:{key or 'national'}:{','.join(map(str, years))}",
            {
                "region_code": key or None,
                "years": list(years),
                "source": source,
                "holidays": holidays,
                "workdays": workdays,
                "replaced": replaced,
                "schedule_sha256": digest,
            },
        )
        if ctx.calendar is not None:
            uow.after_commit(ctx.calendar.invalidate)
        try:
            uow.commit()
        except IntegrityError as error:
            # Two administrators loading the same year at once on PostgreSQL: one wins.
            raise Conflict(
                "同一年度的放假安排正在被其他人加载，请重试",
                "The same year's schedule is being loaded by someone else; try again",
            ) from error
    return ScheduleLoadResult(
        region_code=key or None,
        years=years,
        holidays=holidays,
        workdays=workdays,
        replaced=replaced,
        weekend_holidays=weekend_holidays,
    )


def load_schedule_file(
    ctx: Context,
    actor: Actor,
    path: str | Path,
    region_code: str | None = None,
    *,
    source: str | None = None,
) -> ScheduleLoadResult:
    """Load a JSON file (UTF-8, with or without BOM) of the shape ``load_schedule`` takes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise InvalidInput(
            f"无法读取文件 {path.name}：{error.strerror}",
            f"cannot read {path.name}: {error.strerror}",
            details={"path": str(path)},
        ) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(
            f"{path.name} 不是有效的 UTF-8 JSON：{error}",
            f"{path.name} is not valid UTF-8 JSON: {error}",
            details={"path": str(path)},
        ) from error
    return load_schedule(ctx, actor, data, source or f"file:{path.name}", region_code)
