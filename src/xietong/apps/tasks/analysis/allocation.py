"""Allocation problems (错配 / 漏配 / 重配) and on-time rates per department."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass

from xietong.apps.tasks.analysis._gc import paused_gc
from xietong.apps.tasks.analysis.model import TaskId
from xietong.apps.tasks.analysis.plan import Plan

# Anything but letters and digits (of any script: CJK characters are word characters).
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class AllocationProblem:
    """``code`` is one of ``no_owner``, ``missing_lead``, ``lead_also_cooperating``,
    ``duplicate_assignment``."""

    code: str
    task_ids: tuple[TaskId, ...]
    departments: tuple[str, ...]
    zh: str
    en: str


def normalise(text: str) -> str:
    """Text compared for "the same work": full-width and case folded, punctuation and
    spaces dropped, so that "食品抽检（第一批）" and "食品抽检(第一批) " match."""
    if not text:
        return ""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def allocation_problems(plan: Plan) -> list[AllocationProblem]:
    """Unfinished tasks without an owner, leaf tasks without a lead department, a lead
    department also listed as cooperating, and the same work (same normalised title and
    content under the same parent) led by two or more departments."""
    with paused_gc():
        return _allocation_problems(plan)


def _allocation_problems(plan: Plan) -> list[AllocationProblem]:
    found: list[AllocationProblem] = []
    # Most work is unique: remember the first task per key, make a group only on a repeat.
    first: dict[tuple[Hashable, str, str], int] = {}
    same_work: dict[tuple[Hashable, str, str], list[int]] = {}
    for node, spec in enumerate(plan.specs):
        lead = spec.department
        if not plan.finished[node] and not spec.owner:
            found.append(
                AllocationProblem(
                    "no_owner", (spec.id,), (lead,) if lead else (), "未指定责任人", "no owner"
                )
            )
        if not lead and not plan.has_children[node]:
            found.append(
                AllocationProblem(
                    "missing_lead",
                    (spec.id,),
                    (),
                    "末级任务未指定牵头部门",
                    "a leaf task without a lead department",
                )
            )
        if lead and lead in spec.cooperating:
            found.append(
                AllocationProblem(
                    "lead_also_cooperating",
                    (spec.id,),
                    (lead,),
                    f"{lead} 既是牵头部门又是配合部门",
                    f"{lead} is both the lead and a cooperating department",
                )
            )
        key = (spec.parent_id, normalise(spec.title), normalise(spec.content))
        if key[1] or key[2]:
            earlier = first.setdefault(key, node)
            if earlier != node:
                same_work.setdefault(key, [earlier]).append(node)
    for nodes in same_work.values():
        leads = tuple(dict.fromkeys(d for n in nodes if (d := plan.specs[n].department)))
        if len(leads) < 2:
            continue  # the same lead twice is a duplicate row, not a double assignment
        ids = tuple(plan.specs[n].id for n in nodes)
        title = plan.specs[nodes[0]].title or plan.specs[nodes[0]].content
        found.append(
            AllocationProblem(
                "duplicate_assignment",
                ids,
                leads,
                f"同一工作「{title}」同时交由 {'、'.join(leads)} 牵头",
                f"the same work ({title}) is led by {', '.join(leads)}",
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class OnTimeRate:
    department: str
    finished: int  # finished tasks with a known finishing date
    on_time: int  # of those, finished on or before the planned end
    undated: int  # finished, but the finishing date is unknown (not in the rate)

    @property
    def rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None


def on_time_rates(plan: Plan) -> dict[str, OnTimeRate]:
    """Per lead department: finished on or before the planned end ÷ finished."""
    finished: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for spec in plan.specs:
        if spec.department is None or not spec.status.finished:
            continue
        counts = finished[spec.department]
        if spec.finished_on is None:
            counts[2] += 1
            continue
        counts[0] += 1
        counts[1] += spec.finished_on <= spec.planned_end
    return {
        department: OnTimeRate(department, done, on_time, undated)
        for department, (done, on_time, undated) in sorted(finished.items())
    }
