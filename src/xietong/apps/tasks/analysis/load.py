"""Who blocks the most downstream work, and which departments carry more than they can.

Blocking counts are exact: the number of distinct transitive successors of each task.
Summing successors' counts would double-count every diamond, and a breadth-first search
per task is quadratic. Instead, in reverse topological order, each task's reachable set
is the union of its successors' sets, held as a Python int used as a bitset: one C-level
``|`` per dependency link, and ``int.bit_count`` for the size. Bit ``n - 1 - rank``
stands for the task at topological ``rank``, so a task's descendants all sit below its
own bit; each set is stored shifted down to its lowest bit, so its length is the span
of ranks it covers, short when work depends mostly on nearby work. A set is dropped as
soon as its last predecessor has read it, which keeps memory to the sets still waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from xietong.apps.tasks.analysis._gc import paused_gc
from xietong.apps.tasks.analysis.model import TaskId
from xietong.apps.tasks.analysis.plan import Plan


def blocking_counts(plan: Plan) -> list[int]:
    """For each task (by position), how many tasks depend on it directly or transitively."""
    with paused_gc():
        return _blocking_counts(plan)


def _blocking_counts(plan: Plan) -> list[int]:
    n = len(plan)
    succs, order = plan.succs, plan.order
    readers = [len(p) for p in plan.preds]  # predecessors yet to read each set
    # Each set as (low, bits): bit i of ``bits`` stands for bit ``low + i`` of the set.
    # Storing the window rather than the whole int keeps every ``|`` as long as the
    # span of ranks the set covers, not as long as the plan.
    low = [0] * n
    bits = [0] * n
    counts = [0] * n
    for rank in range(n - 1, -1, -1):
        node = order[rank]
        base, value = n - 1 - rank, 1  # the task itself, the highest bit of its set
        for succ in succs[node]:
            other = low[succ]
            if other < base:
                value = (value << (base - other)) | bits[succ]
                base = other
            else:
                value |= bits[succ] << (other - base)
            readers[succ] -= 1
            if not readers[succ]:
                bits[succ] = 0  # its last reader: free the memory now
        counts[node] = value.bit_count() - 1
        if readers[node]:
            low[node], bits[node] = base, value
    return counts


def top_blocking(
    plan: Plan, top: int = 10, counts: list[int] | None = None
) -> list[tuple[TaskId, int]]:
    """The ``top`` tasks blocking the most downstream tasks, most first (ties: plan order).

    Finished tasks block nothing any more and are left out.
    """
    counts = counts if counts is not None else blocking_counts(plan)
    specs = plan.specs
    ranked = sorted(
        (node for node in range(len(specs)) if counts[node] and not plan.finished[node]),
        key=lambda node: (-counts[node], node),
    )
    return [(specs[node].id, counts[node]) for node in ranked[:top]]


@dataclass(frozen=True, slots=True)
class DepartmentLoad:
    department: str
    capacity: float | None  # None: no capacity recorded
    load: float  # remaining weighted work of its open tasks
    open_tasks: int
    utilisation: float | None  # load / capacity

    @property
    def over(self) -> bool:
        return self.capacity is not None and self.load > self.capacity


def capacity(
    plan: Plan, capacities: Mapping[str, float], today: date | None = None
) -> list[DepartmentLoad]:
    """Each department's open weighted work against its capacity, most utilised first.

    Open work is what the lead department (牵头) still has on its desk: tasks not
    finished and, when ``today`` is given, planned to have started by then (a task due
    to start next year is not load yet). A task counts with its remaining share,
    ``weight × (100 − progress) / 100``, so that work nearly done does not make a
    department look overloaded.
    """
    load: dict[str, float] = dict.fromkeys(capacities, 0.0)
    count: dict[str, int] = dict.fromkeys(capacities, 0)
    for spec in plan.specs:
        if spec.department is None or spec.status.finished:
            continue
        if today is not None and spec.planned_start > today:
            continue
        load[spec.department] = (
            load.get(spec.department, 0.0) + spec.weight * (100.0 - spec.progress) / 100.0
        )
        count[spec.department] = count.get(spec.department, 0) + 1
    result = []
    for department, work in load.items():
        limit = capacities.get(department)
        if limit is None:
            ratio = None
        elif limit:
            ratio = work / limit
        else:  # a capacity of zero: any work at all is infinitely too much
            ratio = float("inf") if work else 0.0
        result.append(DepartmentLoad(department, limit, work, count[department], ratio))
    result.sort(key=lambda d: (d.utilisation is None, -(d.utilisation or 0.0), d.department))
    return result


def over_capacity(
    plan: Plan, capacities: Mapping[str, float], today: date | None = None
) -> list[DepartmentLoad]:
    """The departments whose open work exceeds their capacity, most utilised first."""
    return [d for d in capacity(plan, capacities, today) if d.over]
