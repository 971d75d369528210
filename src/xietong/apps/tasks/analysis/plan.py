"""A validated, indexed task forest: the common input of every analysis.

Building a ``Plan`` does the per-task work once (id lookup, dependency lists, the
topological order, working-day offsets, inherited goals) so that the schedule, the
warnings and what-if questions run over integer lists only.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date

from xietong.apps.tasks.analysis._gc import paused_gc
from xietong.apps.tasks.analysis.days import WorkdayIndex
from xietong.apps.tasks.analysis.graph import cycle_in, topological_order
from xietong.apps.tasks.analysis.model import WEEKDAYS, Status, TaskId, TaskSpec, WorkingDays
from xietong.kernel.errors import InvalidInput

_EMPTY_ORIGIN = date(2000, 1, 1)  # any date will do when there are no tasks
_FINISHED = frozenset(status for status in Status if status.finished)


@dataclass(frozen=True)
class _Problem:
    code: str
    task_ids: tuple[TaskId, ...]
    zh: str
    en: str


class Plan:
    """Tasks by integer position: ``specs[i]``, ``preds[i]``, ``start[i]`` … all line up.

    ``start[i]`` and ``end[i]`` are the working-day offsets of the planned dates (``end``
    exclusive, see ``days``), ``duration[i]`` the working days the task takes, ``goals[i]``
    its own or inherited goal ids, ``finished[i]`` whether it is done or closed, and
    ``order`` a topological order of the dependencies.

    Raises ``InvalidInput`` (naming every offending task, nothing computed) for duplicate
    ids, an end before its start, progress outside 0–100, a negative duration or
    weight, a dependency or parent that is not in the plan, a parent cycle, or a
    dependency cycle (naming the tasks in it).
    """

    def __init__(self, specs: Iterable[TaskSpec], calendar: WorkingDays | None = None) -> None:
        self.specs = list(specs)
        self.calendar = calendar if calendar is not None else WEEKDAYS
        with paused_gc():
            self._build()

    def _build(self) -> None:
        specs = self.specs
        self.index: dict[TaskId, int] = {spec.id: position for position, spec in enumerate(specs)}
        problems: list[_Problem] = []
        if len(self.index) < len(specs):
            seen: set[TaskId] = set()
            for spec in specs:
                if spec.id in seen:
                    problems.append(_problem("duplicate_id", spec.id, "编号重复", "duplicate id"))
                seen.add(spec.id)
        # One cheap screening pass; the detailed checks run only on the few that fail it.
        for spec in specs:
            if (
                spec.planned_end < spec.planned_start
                or not 0 <= spec.progress <= 100
                or spec.weight < 0
                or (spec.duration is not None and spec.duration < 0)
            ):
                _check_values(spec, problems)
        self.preds, self.succs = self._links(problems)
        self.parent = self._parents(problems)
        if problems:
            raise _invalid(problems)
        self.order = topological_order(self.preds, self.succs)
        if len(self.order) < len(self.specs):
            ids = [self.specs[i].id for i in cycle_in(self.preds, self.order)]
            names = " → ".join(map(str, [*ids, ids[0]]))
            raise InvalidInput(
                f"任务依赖存在循环：{names}",
                f"The task dependencies form a cycle: {names}",
                code="dependency_cycle",
                details={"cycle": ids},
            )
        self.goals = self._inherited_goals()
        self.has_children = bytearray(len(self.specs))
        for parent in self.parent:
            if parent >= 0:
                self.has_children[parent] = 1
        # Read in every pass; the enum property costs more than the lookup.
        self.finished = bytes(spec.status in _FINISHED for spec in self.specs)
        self._offsets()

    def _links(self, problems: list[_Problem]) -> tuple[list[list[int]], list[list[int]]]:
        # Whole-plan comprehensions rather than a loop per task: at 100,000 tasks the
        # per-task interpreter overhead was most of the cost of building a plan.
        specs, index = self.specs, self.index
        wanted = [dep for spec in specs for dep in spec.depends_on]
        dependent = [position for position, spec in enumerate(specs) for _ in spec.depends_on]
        try:
            found = [index[dep] for dep in wanted]
        except KeyError:
            found = [index.get(dep, -1) for dep in wanted]
            problems.extend(
                _problem(
                    "unknown_dependency",
                    specs[position].id,
                    f"依赖的任务不存在：{dep}",
                    f"depends on an unknown task: {dep}",
                )
                for dep, position, pred in zip(wanted, dependent, found, strict=True)
                if pred < 0
            )
        links = list(zip(found, dependent, strict=True))
        if len(set(links)) < len(links) or problems:
            # A repeated link is one link; unknown ones are dropped (and reported above).
            links = [link for link in dict.fromkeys(links) if link[0] >= 0]
        preds: list[list[int]] = [[] for _ in specs]
        succs: list[list[int]] = [[] for _ in specs]
        for pred, succ in links:
            preds[succ].append(pred)
            succs[pred].append(succ)
        return preds, succs

    def _parents(self, problems: list[_Problem]) -> list[int]:
        get = self.index.get
        parent = [-1 if spec.parent_id is None else get(spec.parent_id, -2) for spec in self.specs]
        for position, found in enumerate(parent):
            if found == -2:
                spec = self.specs[position]
                problems.append(
                    _problem(
                        "unknown_parent",
                        spec.id,
                        f"上级任务不存在：{spec.parent_id}",
                        f"unknown parent task: {spec.parent_id}",
                    )
                )
                parent[position] = -1
        # A parent cycle would make goal inheritance loop; colour-walk each chain once.
        state = bytearray(len(parent))  # 0 unseen, 1 on the current walk, 2 done
        for first in range(len(parent)):
            walk, node = [], first
            while node >= 0 and state[node] == 0:
                state[node] = 1
                walk.append(node)
                node = parent[node]
            if node >= 0 and state[node] == 1:
                loop = walk[walk.index(node) :]
                problems.append(
                    _problem(
                        "parent_cycle",
                        tuple(self.specs[i].id for i in loop),
                        "任务分解存在循环",
                        "the decomposition tree has a cycle",
                    )
                )
            for done in walk:
                state[done] = 2
        return parent

    def _inherited_goals(self) -> list[tuple[Hashable, ...]]:
        """Each task's goals: its own, else its nearest ancestor's that has some."""
        # None = not known yet; each chain is walked once and every task on it filled in.
        goals: list[tuple[Hashable, ...] | None] = [spec.goal_ids or None for spec in self.specs]
        for first in range(len(goals)):
            walk, node = [], first
            while node >= 0 and goals[node] is None:
                walk.append(node)
                node = self.parent[node]
            inherited = goals[node] if node >= 0 else ()
            for child in walk:
                goals[child] = inherited
        return [found or () for found in goals]

    def _offsets(self) -> None:
        specs = self.specs
        if specs:
            first = min(spec.planned_start for spec in specs)
            last = max(spec.planned_end for spec in specs)
        else:
            first = last = _EMPTY_ORIGIN
        self.days = WorkdayIndex(self.calendar, first, last)
        prefix, origin = self.days.prefix_table(last)
        self.start = [prefix[spec.planned_start.toordinal() - origin] for spec in specs]
        # Exclusive: the working days up to and including the planned end.
        self.end = [prefix[spec.planned_end.toordinal() - origin + 1] for spec in specs]
        self.duration = [
            spec.duration if spec.duration is not None else end - start
            for spec, start, end in zip(specs, self.start, self.end, strict=True)
        ]

    @functools.cached_property
    def rank(self) -> list[int]:
        """Each task's position in ``order`` (a predecessor always ranks lower)."""
        rank = [0] * len(self.specs)
        for position, node in enumerate(self.order):
            rank[node] = position
        return rank

    def __len__(self) -> int:
        return len(self.specs)

    def position(self, task_id: TaskId) -> int:
        found = self.index.get(task_id)
        if found is None:
            raise InvalidInput(
                f"任务不存在：{task_id}",
                f"no such task in the plan: {task_id}",
                code="unknown_task",
                details={"task_id": task_id},
            )
        return found


def _problem(code: str, ids: TaskId | tuple[TaskId, ...], zh: str, en: str) -> _Problem:
    return _Problem(code, ids if isinstance(ids, tuple) else (ids,), zh, en)


def _check_values(spec: TaskSpec, problems: list[_Problem]) -> None:
    if spec.planned_end < spec.planned_start:
        problems.append(
            _problem("end_before_start", spec.id, "计划结束早于开始", "planned end before start")
        )
    if not 0 <= spec.progress <= 100:
        problems.append(
            _problem("progress_range", spec.id, "进度应在 0–100 之间", "progress must be 0–100")
        )
    if spec.duration is not None and spec.duration < 0:
        problems.append(
            _problem("negative_duration", spec.id, "工期不能为负", "duration must not be negative")
        )
    if spec.weight < 0:
        problems.append(
            _problem("negative_weight", spec.id, "工作量不能为负", "weight must not be negative")
        )


def _invalid(problems: list[_Problem]) -> InvalidInput:
    shown = problems[:5]
    more_zh = f"等 {len(problems)} 处" if len(problems) > len(shown) else ""
    more_en = f" ({len(problems)} problems in all)" if len(problems) > len(shown) else ""
    return InvalidInput(
        "任务数据有误：" + "；".join(f"{p.task_ids[0]}：{p.zh}" for p in shown) + more_zh,
        "Invalid tasks: " + "; ".join(f"{p.task_ids[0]}: {p.en}" for p in shown) + more_en,
        code="invalid_tasks",
        details={
            "errors": [
                {"code": p.code, "task_ids": list(p.task_ids), "zh": p.zh, "en": p.en}
                for p in problems
            ]
        },
    )
