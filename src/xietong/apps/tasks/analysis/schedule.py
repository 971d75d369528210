"""Critical path method over working-day offsets: forward and backward passes, slack.

Earliest start = the later of the planned start and every predecessor's earliest finish
(finish-to-start). Latest finish = the earlier of the task's deadline and every
successor's latest start. Total slack = latest finish − earliest finish; a task with
slack ≤ 0 is critical (negative slack: the plan cannot be met as it stands).

The deadline against which slack is measured is a choice (``deadline=``):

- ``"goal"`` (default): the goal's deadline, i.e. the latest planned end among the
  tasks that carry the goal (own or inherited). A task may finish late against its own
  dates as long as the goal is still met. Tasks without a goal use the project end.
- ``"project"``: the project end (the latest earliest finish) for every task: textbook
  CPM, and what ``networkx.dag_longest_path`` measures.
- ``"task"``: each task's own planned end. Slack is then never positive for tasks whose
  duration comes from their dates, so this mode answers "which tasks does the plan
  itself already make late" rather than "where is there room".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Literal

from xietong.apps.tasks.analysis.model import TaskId
from xietong.apps.tasks.analysis.plan import Plan
from xietong.kernel.errors import InvalidInput

Deadline = Literal["goal", "project", "task"]


def forward_pass(plan: Plan) -> tuple[list[int], list[int]]:
    """Earliest start and (exclusive) earliest finish offsets, by position."""
    start, duration, preds = plan.start, plan.duration, plan.preds
    es = [0] * len(plan)
    ef = [0] * len(plan)
    for node in plan.order:
        earliest = start[node]
        for pred in preds[node]:
            finish = ef[pred]
            if finish > earliest:
                earliest = finish
        es[node] = earliest
        ef[node] = earliest + duration[node]
    return es, ef


def deadlines(plan: Plan, mode: Deadline, project_finish: int) -> list[int]:
    """Each task's own bound on its latest finish (see the module docstring)."""
    if mode == "task":
        return list(plan.end)
    if mode == "project":
        return [project_finish] * len(plan)
    if mode != "goal":
        raise ValueError(f"unknown deadline mode: {mode!r}")
    goal_end: dict[Hashable, int] = {}
    for goals, end in zip(plan.goals, plan.end, strict=True):
        for goal in goals:
            if goal_end.get(goal, -1) < end:
                goal_end[goal] = end
    return [
        min(goal_end[goal] for goal in goals) if goals else project_finish for goals in plan.goals
    ]


def backward_pass(plan: Plan, ef: list[int], bound: list[int]) -> list[int]:
    """Latest (exclusive) finish offsets, by position."""
    duration, succs = plan.duration, plan.succs
    lf = list(bound)
    for node in reversed(plan.order):
        latest = lf[node]
        for succ in succs[node]:
            start = lf[succ] - duration[succ]
            if start < latest:
                latest = start
        lf[node] = latest
    return lf


@dataclass(frozen=True, slots=True)
class TaskTiming:
    """One task's schedule in dates; ``slack`` in working days."""

    task_id: TaskId
    earliest_start: date
    earliest_finish: date
    latest_start: date
    latest_finish: date
    slack: int
    critical: bool


class Schedule:
    """The result of both passes; offsets by position, dates on request."""

    def __init__(self, plan: Plan, deadline: Deadline = "goal") -> None:
        self.plan = plan
        self.deadline = deadline
        self.es, self.ef = forward_pass(plan)
        self.project_start = min(plan.start, default=0)
        self.project_finish = max(self.ef, default=0)
        self.lf = backward_pass(plan, self.ef, deadlines(plan, deadline, self.project_finish))
        self.slack = [lf - ef for lf, ef in zip(self.lf, self.ef, strict=True)]

    @property
    def critical_path_length(self) -> int:
        """Working days from the earliest planned start to the project's finish: the
        length of the longest chain, planned-start waits included."""
        return self.project_finish - self.project_start

    def slack_of(self, task_id: TaskId) -> int:
        return self.slack[self.plan.position(task_id)]

    def timing(self, task_id: TaskId) -> TaskTiming:
        return self._timing(self.plan.position(task_id))

    def timings(self) -> Iterator[TaskTiming]:
        return (self._timing(node) for node in range(len(self.plan)))

    def _timing(self, node: int) -> TaskTiming:
        days, duration = self.plan.days, self.plan.duration[node]
        es, ef, lf = self.es[node], self.ef[node], self.lf[node]
        return TaskTiming(
            task_id=self.plan.specs[node].id,
            earliest_start=days.day(es),
            earliest_finish=days.finish_day(es, ef),
            latest_start=days.day(lf - duration),
            latest_finish=days.finish_day(lf - duration, lf),
            slack=self.slack[node],
            critical=self.slack[node] <= 0,
        )

    def late_tasks(self) -> list[TaskId]:
        """Tasks whose earliest finish is after their own planned end."""
        end, ef, specs = self.plan.end, self.ef, self.plan.specs
        return [specs[i].id for i in self.plan.order if ef[i] > end[i]]

    def critical_path(self) -> list[TaskId]:
        """The chain that sets the project's finish, first task first.

        Walks back from the task finishing last through predecessors that finish exactly
        when it starts (the ones holding it back), preferring the least slack.
        """
        if not self.plan.specs:
            return []
        es, ef, slack, preds = self.es, self.ef, self.slack, self.plan.preds
        node = max(self.plan.order, key=ef.__getitem__)  # the first of equals, in order
        chain = [node]
        while True:
            driving = [p for p in preds[node] if ef[p] == es[node]]
            if not driving:
                break
            node = min(driving, key=slack.__getitem__)
            chain.append(node)
        chain.reverse()
        return [self.plan.specs[i].id for i in chain]

    def critical_paths(self, limit: int = 100) -> list[list[TaskId]]:
        """Chains of critical tasks (slack ≤ 0), longest span first.

        A link belongs to a chain when the predecessor both drives the successor's
        earliest start and is bound by its latest start; chains run from a critical task
        with no such incoming link to one with no such outgoing link. Diamonds multiply
        the number of chains, so enumeration stops after ``limit`` of them (the first
        found, by their first task's topological rank) before they are sorted.
        """
        es, ef, lf, slack = self.es, self.ef, self.lf, self.slack
        duration, succs = self.plan.duration, self.plan.succs

        def links(node: int) -> list[int]:
            return [
                s
                for s in succs[node]
                if slack[s] <= 0 and es[s] == ef[node] and lf[s] - duration[s] == lf[node]
            ]

        critical = [node for node in self.plan.order if slack[node] <= 0]
        has_incoming = bytearray(len(self.plan))
        for node in critical:
            for succ in links(node):
                has_incoming[succ] = 1
        found: list[list[int]] = []
        # Depth-first with parent pointers: copying the path at every step would be
        # quadratic in the length of a long chain.
        frames: list[tuple[int, int]] = []  # (node, index of the previous frame or -1)
        for source in critical:
            if has_incoming[source]:
                continue
            frames.append((source, -1))
            stack = [len(frames) - 1]
            while stack and len(found) < limit:
                frame = stack.pop()
                onward = links(frames[frame][0])
                if not onward:
                    found.append(_unwind(frames, frame))
                for succ in reversed(onward):
                    frames.append((succ, frame))
                    stack.append(len(frames) - 1)
            if len(found) >= limit:
                break
        found.sort(key=lambda path: es[path[0]] - ef[path[-1]])  # longest span first
        return [[self.plan.specs[i].id for i in path] for path in found]


def _unwind(frames: list[tuple[int, int]], frame: int) -> list[int]:
    path = []
    while frame >= 0:
        node, frame = frames[frame]
        path.append(node)
    path.reverse()
    return path


def schedule(plan: Plan, deadline: Deadline = "goal") -> Schedule:
    """Both CPM passes over ``plan`` (see the module docstring for ``deadline``)."""
    return Schedule(plan, deadline)


def check_slip(slip: int) -> None:
    if isinstance(slip, bool) or not isinstance(slip, int) or slip < 0:
        raise InvalidInput(
            f"延误天数应为非负整数：{slip!r}",
            f"the slip must be a non-negative number of working days: {slip!r}",
            code="invalid_slip",
        )
