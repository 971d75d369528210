"""When a timer is due: ISO 8601 durations, dates and cycles, and working days.

Chinese time limits count working days (工作日): a timer ``P3D`` marked ``working_days``
is due three working days later on the kernel calendar, at the same time of day in
China time. A cycle ``R3/PT1H`` is due after its first interval, then (on a
non-interrupting boundary event, see ``next_cycle_due``) every interval after the
previous firing until it has fired n times (``R/PT1H``: while the activity waits).
``R2/2030-01-01T09:00:00/P1D`` first fires at the start date (at once if that is past,
then on its schedule: missed occurrences are not made up); ``R2/P1D/<end>`` never
fires after the end date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from xietong.kernel.calendar import WorkCalendar, to_local_date
from xietong.kernel.clock import CST
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.expressions import compile_expression, is_expression
from xietong.kernel.workflow.model import Timer

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def _bad(text: str, reason: str) -> InvalidInput:
    return InvalidInput(
        f"定时器表达式无效：{text}（{reason}）",
        f"Invalid timer expression {text!r}: {reason}",
        code="invalid_timer",
        details={"expression": text},
    )


def parse_duration(text: str) -> tuple[timedelta, int | None]:
    """(the duration, or whole days when it is exactly ``PnD``/``PnW``) of ISO 8601 text."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise _bad(text, "not an ISO 8601 duration")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    # years and months have no fixed length; count them as 365 and 30 days
    days = parts.get("years", 0) * 365 + parts.get("months", 0) * 30
    days += parts.get("weeks", 0) * 7 + parts.get("days", 0)
    delta = timedelta(
        days=days,
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    whole = set(parts) <= {"days", "weeks"} and float(days).is_integer()
    return delta, int(days) if whole else None


def after_working_days(calendar: WorkCalendar | None, start: datetime, days: int) -> datetime:
    """``days`` working days after ``start``, at the same time of day in China time."""
    if calendar is None:  # a context without a calendar: plain days (tests of other parts)
        return start + timedelta(days=days)
    local = start.astimezone(CST)
    day = calendar.add_working_days(to_local_date(start), days).day
    return datetime.combine(day, local.timetz())


def _text(timer: Timer, variables: Mapping[str, Any]) -> str:
    text = timer.expression.strip()
    if is_expression(text):
        value = compile_expression(text).evaluate(variables)
        if isinstance(value, datetime):
            return value.isoformat()
        text = str(value).strip()
    return text


def due_at(
    timer: Timer,
    now: datetime,
    variables: Mapping[str, Any],
    calendar: WorkCalendar | None,
) -> datetime:
    text = _text(timer, variables)
    if timer.kind == "date":
        return _date(text)
    if timer.kind == "cycle":
        cycle = parse_cycle(text)
        if cycle.start is not None:
            return cycle.start
        first = _plus(cycle.delta, cycle.whole_days, timer, now, calendar)
        return first if cycle.end is None or first <= cycle.end else cycle.end
    delta, whole_days = parse_duration(text)
    return _plus(delta, whole_days, timer, now, calendar)


def _plus(
    delta: timedelta,
    whole_days: int | None,
    timer: Timer,
    moment: datetime,
    calendar: WorkCalendar | None,
) -> datetime:
    if timer.working_days and whole_days is not None:
        return after_working_days(calendar, moment, whole_days)
    return moment + delta


@dataclass(frozen=True)
class Cycle:
    repetitions: int | None  # None: unbounded (``R/…``)
    delta: timedelta
    whole_days: int | None
    start: datetime | None = None
    end: datetime | None = None


def _date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(text, "not an ISO 8601 date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CST)


_MAX_SKIPPED_WORKING_STEPS = 1_000
"""Missed working-day occurrences a cycle skips one by one (about four years)."""


def parse_cycle(text: str) -> Cycle:
    """``Rn/duration``, ``Rn/start/duration`` or ``Rn/duration/end`` (ISO 8601)."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R"):
        raise _bad(text, "a cycle is Rn/duration")
    count = parts[0][1:]
    if count and not count.isdigit():
        raise _bad(text, "a cycle is Rn/duration")
    repetitions = int(count) if count else None
    if len(parts) == 2:
        delta, whole = _interval(text, parts[1])
        return Cycle(repetitions, delta, whole)
    if parts[1].startswith("P"):
        delta, whole = _interval(text, parts[1])
        return Cycle(repetitions, delta, whole, end=_date(parts[2]))
    delta, whole = _interval(text, parts[2])
    return Cycle(repetitions, delta, whole, start=_date(parts[1]))


def _interval(text: str, duration: str) -> tuple[timedelta, int | None]:
    delta, whole = parse_duration(duration)
    if delta <= timedelta(0):
        # A cycle that repeats every 0 seconds would fire without end.
        raise _bad(text, "a cycle's interval must be longer than zero")
    return delta, whole


def next_cycle_due(
    timer: Timer,
    previous: datetime,
    fired: int,
    variables: Mapping[str, Any],
    calendar: WorkCalendar | None,
    *,
    now: datetime | None = None,
) -> tuple[datetime, int] | None:
    """When a cycle that has fired ``fired`` times (the last due at ``previous``) fires
    next, and which firing that is; None when it is done (n firings, or past its end).

    Occurrences already past at ``now`` are skipped and count against the repetitions:
    a cycle whose start date lies in the past, or whose worker was down for a while,
    fires once for what it missed and then keeps its schedule, instead of firing every
    missed occurrence in a burst (Quartz calls this "fire once now").
    """
    if timer.kind != "cycle":
        return None
    cycle = parse_cycle(_text(timer, variables))
    number = fired + 1
    following = _plus(cycle.delta, cycle.whole_days, timer, previous, calendar)
    if now is not None and following <= now:
        if timer.working_days and cycle.whole_days is not None:
            # Working days have no fixed length: step, but never past what could fire.
            for _ in range(_MAX_SKIPPED_WORKING_STEPS):
                if following > now or (
                    cycle.repetitions is not None and number > cycle.repetitions
                ):
                    break
                number += 1
                following = _plus(cycle.delta, cycle.whole_days, timer, following, calendar)
            else:
                return None  # years of missed working days: a dead schedule
        else:
            missed = (now - following) // cycle.delta + 1  # parse_cycle refuses delta 0
            number += missed
            following += cycle.delta * missed
    if cycle.repetitions is not None and number > cycle.repetitions:
        return None
    if cycle.end is not None and following > cycle.end:
        return None
    return following, number
