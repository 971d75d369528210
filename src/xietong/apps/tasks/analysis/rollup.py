"""汇总进度: a parent task's progress rolled up from its children.

The rule (docs/apps/tasks.md, "Progress roll-up"):

- a finished task (已完成, 已销号) counts 100%: its work was accepted as done;
- a task without children counts its own reported progress;
- a task with children counts the weighted mean of its children's rolled-up progress,
  ``Σ weightᵢ × progressᵢ / Σ weightᵢ``, each child weighted by its own ``weight`` (its
  share of the parent's work, as set when decomposing); when every child weighs 0,
  the plain mean.

A parent's own report is not mixed in: once decomposed, the children are its work. It
stays on the parent and is shown beside the rolled-up figure, so a task force sees both
what was reported and what the departments' work adds up to. Children missing from the
input (not visible to the asker) are not counted; visibility is closed downwards (who
sees a task sees its subtree), so a visible parent's figure is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xietong.apps.tasks.analysis.model import TaskId


@dataclass(frozen=True, slots=True)
class Node:
    id: TaskId
    parent_id: TaskId | None
    weight: float
    progress: float  # 0–100, as reported
    finished: bool


def rolled_progress(nodes: Iterable[Node]) -> dict[TaskId, float]:
    """Each task's rolled-up progress (0–100), children before parents, no recursion (a
    tree may be deeper than Python's stack)."""
    by_id = {node.id: node for node in nodes}
    children: dict[TaskId, list[TaskId]] = {}
    for node in by_id.values():
        if node.parent_id is not None and node.parent_id in by_id:
            children.setdefault(node.parent_id, []).append(node.id)
    # an explicit post-order: every child is settled before its parent
    order: list[TaskId] = []
    stack = [n.id for n in by_id.values() if n.parent_id is None or n.parent_id not in by_id]
    while stack:
        current = stack.pop()
        order.append(current)
        stack.extend(children.get(current, ()))
    rolled: dict[TaskId, float] = {}
    for task_id in reversed(order):
        node = by_id[task_id]
        kids = children.get(task_id)
        if node.finished:
            rolled[task_id] = 100.0
        elif not kids:
            rolled[task_id] = float(node.progress)
        else:
            total = sum(by_id[k].weight for k in kids)
            if total > 0:
                value = sum(by_id[k].weight * rolled[k] for k in kids) / total
            else:
                value = sum(rolled[k] for k in kids) / len(kids)
            rolled[task_id] = min(100.0, max(0.0, value))
    return rolled
