"""Dates as working-day ordinals, so that scheduling is integer arithmetic.

Offset ``k`` is the k-th working day (from 0) counted from an origin date. A task that
works from ``start`` to ``end`` inclusive occupies offsets ``[start_offset(start),
end_offset(end))``: the half-open form makes durations plain differences and
finish-to-start links plain comparisons (a successor may start at its predecessor's
exclusive end).
"""

from __future__ import annotations

from datetime import date, timedelta

from xietong.apps.tasks.analysis.model import WorkingDays


class WorkdayIndex:
    """Maps dates to working-day offsets and back, asking the calendar once per day."""

    def __init__(self, calendar: WorkingDays, first: date, last: date) -> None:
        self.calendar = calendar
        self.origin = first
        self._origin_ordinal = first.toordinal()
        # _prefix[i] = working days in [origin, origin + i days): a prefix sum, so that
        # any date's offset is one list lookup.
        self._prefix: list[int] = [0]
        self._workdays: list[date] = []  # offset -> date
        self._extend_to(last + timedelta(days=1))

    def _extend_to(self, day: date) -> None:
        """Cover the table up to and including ``day``."""
        prefix, workdays = self._prefix, self._workdays
        current = self.origin + timedelta(days=len(prefix) - 1)
        is_workday = self.calendar.is_workday
        while current <= day:
            if is_workday(current):
                workdays.append(current)
            prefix.append(len(workdays))
            current += timedelta(days=1)

    def _count_before(self, day: date) -> int:
        """Working days in [origin, day), negative for a day before the origin."""
        position = day.toordinal() - self._origin_ordinal
        if position < 0:
            # Rare (a "today" before every task): count backwards instead of moving the
            # origin, which would shift every offset already handed out.
            is_workday = self.calendar.is_workday
            return -sum(is_workday(day + timedelta(days=i)) for i in range(-position))
        if position >= len(self._prefix):
            self._extend_to(day)
        return self._prefix[position]

    def prefix_table(self, last: date) -> tuple[list[int], int]:
        """The raw prefix list covering ``last + 1 day`` and the origin's ordinal, for
        bulk conversion in a tight loop (``prefix[d.toordinal() - ordinal]``)."""
        self._extend_to(last + timedelta(days=1))
        return self._prefix, self._origin_ordinal

    def start_offset(self, day: date) -> int:
        """The offset of the first working day on or after ``day``."""
        return self._count_before(day)

    def end_offset(self, day: date) -> int:
        """The exclusive offset after ``day``: one past the last working day up to ``day``."""
        return self._count_before(day + timedelta(days=1))

    def day(self, offset: int) -> date:
        """The working day at ``offset`` (extending the table as far as needed)."""
        if offset < 0:
            # A latest start before the plan's first day (a badly late plan): walk back.
            day, remaining = self.origin, -offset
            while remaining:
                day -= timedelta(days=1)
                remaining -= self.calendar.is_workday(day)
            return day
        step = 64
        while offset >= len(self._workdays):
            self._extend_to(self.origin + timedelta(days=len(self._prefix) - 1 + step))
            step *= 2
        return self._workdays[offset]

    def finish_day(self, start: int, finish: int) -> date:
        """The last working day of a task occupying ``[start, finish)``; its start day for
        a milestone (zero duration)."""
        return self.day(finish - 1 if finish > start else start)
