"""The engine's input: task records, statuses, and the working-day calendar it counts with."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

TaskId = Hashable  # the service layer passes database ids (int) or public ids (str)


class Status(StrEnum):
    """A task's status; the values are the stored ones, ``label_zh`` is what users see."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    OVERDUE = "overdue"
    CLOSED = "closed"

    @property
    def label_zh(self) -> str:
        return _LABELS_ZH[self]

    @property
    def finished(self) -> bool:
        """Done or closed (销号 comes after 已完成): no more work, no warnings."""
        return self in (Status.DONE, Status.CLOSED)


_LABELS_ZH = {
    Status.NOT_STARTED: "未启动",
    Status.IN_PROGRESS: "推进中",
    Status.DONE: "已完成",
    Status.OVERDUE: "已逾期",
    Status.CLOSED: "已销号",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """One task as the engine sees it; dates are inclusive (a task ending on Friday works
    on Friday).

    ``duration`` is in working days; ``None`` derives it from the planned dates with the
    calendar. ``depends_on`` are finish-to-start predecessors. ``goal_ids`` empty means
    "the goals of the parent task": decomposed subtasks contribute to their parent's goal
    without every row repeating it.
    """

    id: TaskId
    planned_start: date
    planned_end: date
    parent_id: TaskId | None = None
    title: str = ""
    content: str = ""
    department: str | None = None  # 牵头 (lead)
    cooperating: tuple[str, ...] = ()  # 配合
    owner: str | None = None
    duration: int | None = None
    progress: float = 0.0  # 0–100
    status: Status = Status.NOT_STARTED
    weight: float = 1.0  # work units, compared with department capacities
    goal_ids: tuple[Hashable, ...] = ()
    depends_on: tuple[TaskId, ...] = ()
    finished_on: date | None = None  # when it was done, for on-time rates


class _HasDay(Protocol):
    @property
    def day(self) -> date: ...


@runtime_checkable
class WorkingDays(Protocol):
    """What the engine needs from a calendar.

    ``xietong.kernel.calendar.WorkCalendar`` satisfies it (its extra ``region_code``
    parameters are optional, and its ``add_working_days`` returns a ``Deadline`` with a
    ``day``); tests pass ``WeekdayCalendar``. The engine itself only asks ``is_workday``,
    once per calendar day in the plan's span, and does all further counting on integer
    working-day ordinals: per-task calls would cost more than the whole analysis.
    """

    def is_workday(self, day: date) -> bool: ...

    def add_working_days(self, start: date, n: int) -> date | _HasDay: ...

    def working_days_between(self, a: date, b: date) -> int: ...


def as_date(value: date | _HasDay) -> date:
    """The date of an ``add_working_days`` result, whichever calendar produced it."""
    return value if isinstance(value, date) else value.day


class _Regional(Protocol):
    def is_workday(self, day: date, region_code: str | None = None) -> bool: ...

    def add_working_days(
        self, start: date, n: int, region_code: str | None = None
    ) -> date | _HasDay: ...

    def working_days_between(self, a: date, b: date, region_code: str | None = None) -> int: ...


class InRegion:
    """The kernel's ``WorkCalendar`` for one region (区县 holidays and 调休 included).

    ``WorkCalendar`` alone answers nationwide; its methods take the region as a third
    argument, which the engine does not pass, so this binds it.
    """

    def __init__(self, calendar: _Regional, region_code: str | None) -> None:
        self.calendar = calendar
        self.region_code = region_code

    def is_workday(self, day: date) -> bool:
        return self.calendar.is_workday(day, self.region_code)

    def add_working_days(self, start: date, n: int) -> date:
        return as_date(self.calendar.add_working_days(start, n, self.region_code))

    def working_days_between(self, a: date, b: date) -> int:
        return self.calendar.working_days_between(a, b, self.region_code)


class WeekdayCalendar:
    """Monday to Friday, minus ``holidays``, plus ``workdays`` (调休上班 weekends).

    Pure and storage-free, for tests, the benchmark and what-if sketches; production
    passes the kernel's ``WorkCalendar``. Semantics match the kernel's: ``add_working_days``
    does not count ``start``; ``working_days_between`` counts (a, b].
    """

    def __init__(self, holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> None:
        self.holidays = frozenset(holidays)
        self.workdays = frozenset(workdays)

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, n: int) -> date:
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        day = start
        if n == 0:
            day -= timedelta(days=1)
            n = 1
        while n:
            day += timedelta(days=1)
            n -= self.is_workday(day)
        return day

    def working_days_between(self, a: date, b: date) -> int:
        count, day = 0, a + timedelta(days=1)
        while day <= b:
            count += self.is_workday(day)
            day += timedelta(days=1)
        return count


WEEKDAYS = WeekdayCalendar()
