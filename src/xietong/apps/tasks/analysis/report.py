"""Everything at once, for the service layer's analysis page and the benchmark."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from xietong.apps.tasks.analysis.allocation import (
    AllocationProblem,
    OnTimeRate,
    allocation_problems,
    on_time_rates,
)
from xietong.apps.tasks.analysis.load import DepartmentLoad, blocking_counts, capacity, top_blocking
from xietong.apps.tasks.analysis.model import TaskId, TaskSpec, WorkingDays
from xietong.apps.tasks.analysis.plan import Plan
from xietong.apps.tasks.analysis.schedule import Deadline, Schedule
from xietong.apps.tasks.analysis.warning import TaskWarning, WarningOptions, warnings


@dataclass(frozen=True)
class Analysis:
    plan: Plan
    schedule: Schedule
    warnings: list[TaskWarning]
    blocking: list[int]  # by position in plan.specs
    top_blocking: list[tuple[TaskId, int]]
    capacity: list[DepartmentLoad]
    allocation: list[AllocationProblem]
    on_time: dict[str, OnTimeRate]

    @property
    def over_capacity(self) -> list[DepartmentLoad]:
        return [load for load in self.capacity if load.over]


def analyse(
    specs: Plan | Iterable[TaskSpec],
    today: date,
    *,
    calendar: WorkingDays | None = None,
    capacities: Mapping[str, float] | None = None,
    deadline: Deadline = "goal",
    options: WarningOptions | None = None,
    top: int = 10,
) -> Analysis:
    """Build the plan (unless given one) and run every analysis over it once.

    Raises ``InvalidInput`` for bad input, a dependency cycle included (see ``Plan``).
    """
    plan = specs if isinstance(specs, Plan) else Plan(specs, calendar)
    timing = Schedule(plan, deadline)
    counts = blocking_counts(plan)
    return Analysis(
        plan=plan,
        schedule=timing,
        warnings=warnings(plan, today, options=options, earliest_finish=timing.ef),
        blocking=counts,
        top_blocking=top_blocking(plan, top, counts),
        capacity=capacity(plan, capacities or {}, today),
        allocation=allocation_problems(plan),
        on_time=on_time_rates(plan),
    )
