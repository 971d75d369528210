"""The task analysis engine: pure functions over a task forest, no storage.

The service layer loads task rows, turns them into ``TaskSpec`` records and calls:

- ``find_cycle(specs)``: the tasks of one dependency cycle, or ``None``;
- ``Plan(specs, calendar)``: validate and index once (raises ``InvalidInput``);
- ``Schedule(plan)`` / ``schedule(plan)``: critical path, slack (working days);
- ``warnings(plan, today)``: yellow, red and blocked warnings with reasons;
- ``blocking_counts`` / ``top_blocking``: downstream tasks each task holds up;
- ``capacity`` / ``over_capacity``: open weighted work against department capacity;
- ``allocation_problems``: no owner, no lead, double assignment;
- ``on_time_rates``: finished on time ÷ finished, per department;
- ``what_if(specs, task_id, n)``: the goals and tasks a slip of n working days makes late;
- ``rolled_progress(nodes)``: a parent's progress as the weighted mean of its children's;
- ``analyse(specs, today, …)``: all of the above at once.

See docs/apps/tasks-analysis.md.
"""

from xietong.apps.tasks.analysis.allocation import (
    AllocationProblem,
    OnTimeRate,
    allocation_problems,
    normalise,
    on_time_rates,
)
from xietong.apps.tasks.analysis.days import WorkdayIndex
from xietong.apps.tasks.analysis.graph import find_cycle
from xietong.apps.tasks.analysis.load import (
    DepartmentLoad,
    blocking_counts,
    capacity,
    over_capacity,
    top_blocking,
)
from xietong.apps.tasks.analysis.model import (
    WEEKDAYS,
    InRegion,
    Status,
    TaskId,
    TaskSpec,
    WeekdayCalendar,
    WorkingDays,
)
from xietong.apps.tasks.analysis.plan import Plan
from xietong.apps.tasks.analysis.report import Analysis, analyse
from xietong.apps.tasks.analysis.rollup import Node, rolled_progress
from xietong.apps.tasks.analysis.schedule import Deadline, Schedule, TaskTiming, schedule
from xietong.apps.tasks.analysis.warning import (
    Level,
    TaskWarning,
    WarningOptions,
    warnings,
    worst,
)
from xietong.apps.tasks.analysis.whatif import WhatIf, what_if

__all__ = [
    "WEEKDAYS",
    "AllocationProblem",
    "Analysis",
    "Deadline",
    "DepartmentLoad",
    "InRegion",
    "Level",
    "Node",
    "OnTimeRate",
    "Plan",
    "Schedule",
    "Status",
    "TaskId",
    "TaskSpec",
    "TaskTiming",
    "TaskWarning",
    "WarningOptions",
    "WeekdayCalendar",
    "WhatIf",
    "WorkdayIndex",
    "WorkingDays",
    "allocation_problems",
    "analyse",
    "blocking_counts",
    "capacity",
    "find_cycle",
    "normalise",
    "on_time_rates",
    "over_capacity",
    "rolled_progress",
    "schedule",
    "top_blocking",
    "warnings",
    "what_if",
    "worst",
]
