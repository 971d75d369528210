"""What-if: "if task X slips N working days, which goals (and tasks) are late?"

The slip lengthens X by N working days; the forward pass is redone only for the tasks
downstream of X (in topological order, through a heap keyed by rank in that order) and
stops wherever slack absorbs the slip. Given the baseline pass, a question costs what it
touches plus one linear scan for the goals that were already late.

A goal is late when any task carrying it (own or inherited) finishes after the goal's
deadline, the latest planned end among those tasks: the same deadline as slack in
``Schedule(deadline="goal")``, so a slip no larger than a task's slack makes no goal
late. Goals already late before the slip are told apart from those the slip makes
late. Tasks pushed past their own planned end are listed too: the goal may survive
while a department still misses its date.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from xietong.apps.tasks.analysis.model import TaskId, TaskSpec, WorkingDays
from xietong.apps.tasks.analysis.plan import Plan
from xietong.apps.tasks.analysis.schedule import check_slip, forward_pass


@dataclass(frozen=True)
class WhatIf:
    task_id: TaskId
    slip: int  # working days
    late_by: dict[Hashable, int]  # every late goal (the slip's or not) -> working days late
    newly_late_goals: tuple[Hashable, ...]  # late only because of the slip
    newly_late_tasks: tuple[TaskId, ...]  # now past their own planned end, and not before
    delayed: dict[TaskId, int]  # task -> working days its earliest finish moved, in order

    @property
    def late_goals(self) -> tuple[Hashable, ...]:
        return tuple(self.late_by)


def what_if(
    specs: Plan | Iterable[TaskSpec],
    task_id: TaskId,
    slip_working_days: int,
    *,
    calendar: WorkingDays | None = None,
    baseline: tuple[list[int], list[int]] | None = None,
) -> WhatIf:
    """Slip ``task_id`` by ``slip_working_days`` and report what becomes late.

    ``specs`` may be a ``Plan`` already built (then ``calendar`` is ignored), and
    ``baseline`` the ``(es, ef)`` of its forward pass (``Schedule.es``/``.ef``), so that
    asking many questions of one plan does not redo the shared work.
    """
    plan = specs if isinstance(specs, Plan) else Plan(specs, calendar)
    check_slip(slip_working_days)
    target = plan.position(task_id)
    es0, ef0 = baseline if baseline is not None else forward_pass(plan)

    position = plan.rank
    ef = {target: ef0[target] + slip_working_days}  # only the finishes that moved
    heap = [(position[s], s) for s in plan.succs[target]]
    heapq.heapify(heap)
    queued = {s for _, s in heap}
    start, duration, preds, succs = plan.start, plan.duration, plan.preds, plan.succs
    # Popping by topological rank means every predecessor of a node has settled before
    # the node is recomputed, so each node is recomputed at most once.
    while heap:
        _, node = heapq.heappop(heap)
        earliest = start[node]
        for pred in preds[node]:
            finish = ef.get(pred, ef0[pred])
            if finish > earliest:
                earliest = finish
        if earliest == es0[node]:
            continue  # absorbed by slack or another predecessor: nothing moves further
        ef[node] = earliest + duration[node]
        for succ in succs[node]:
            if succ not in queued:
                queued.add(succ)
                heapq.heappush(heap, (position[succ], succ))

    end, goals, specs_ = plan.end, plan.goals, plan.specs
    moved = sorted(
        (node for node, finish in ef.items() if finish > ef0[node]), key=position.__getitem__
    )
    deadline: dict[Hashable, int] = {}  # the goal's deadline: its tasks' latest planned end
    before: dict[Hashable, int] = {}  # when the goal's last task finishes, before the slip
    for node, carried in enumerate(goals):
        for goal in carried:
            if deadline.get(goal, -1) < end[node]:
                deadline[goal] = end[node]
            if before.get(goal, -1) < ef0[node]:
                before[goal] = ef0[node]
    after = dict(before)  # a slip only moves finishes later: only moved tasks can raise it
    for node in moved:
        for goal in goals[node]:
            if after[goal] < ef[node]:
                after[goal] = ef[node]
    late_by = {goal: after[goal] - deadline[goal] for goal in after if after[goal] > deadline[goal]}
    return WhatIf(
        task_id=task_id,
        slip=slip_working_days,
        late_by=late_by,
        newly_late_goals=tuple(g for g in late_by if before[g] <= deadline[g]),
        newly_late_tasks=tuple(
            specs_[node].id for node in moved if ef[node] > end[node] >= ef0[node]
        ),
        delayed={specs_[node].id: ef[node] - ef0[node] for node in moved},
    )
