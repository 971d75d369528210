"""Graph algorithms on integer-indexed dependency lists, all iterative.

Plans reach 100,000 tasks with chains thousands deep; Python's recursion limit (and its
cost per frame) rules out recursive depth-first search, so every walk here keeps its own
stack or queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xietong.apps.tasks.analysis.model import TaskId, TaskSpec


def topological_order(preds: Sequence[Sequence[int]], succs: Sequence[Sequence[int]]) -> list[int]:
    """Kahn's algorithm; the order is shorter than ``preds`` exactly when there is a cycle.

    Ready nodes are taken from a stack rather than a queue: that follows one goal's chain
    before starting the next, which keeps the bitsets of ``blocking_counts`` short-lived.
    """
    remaining = [len(p) for p in preds]
    ready = [node for node, count in enumerate(remaining) if count == 0]
    ready.reverse()  # so that, among independent tasks, input order comes first
    order: list[int] = []
    append, pop = order.append, ready.pop
    while ready:
        node = pop()
        append(node)
        for succ in succs[node]:
            remaining[succ] -= 1
            if remaining[succ] == 0:
                ready.append(succ)
    return order


def cycle_in(preds: Sequence[Sequence[int]], order: Sequence[int]) -> list[int]:
    """One cycle among the nodes ``topological_order`` could not place, in dependency
    order (each node depends on the one before it, the first on the last).

    Every unplaced node still waits for an unplaced predecessor, so walking from one to
    such a predecessor, again and again, must come back to a node already seen.
    """
    placed = bytearray(len(preds))
    for node in order:
        placed[node] = 1
    start = placed.find(0)
    if start < 0:
        return []
    seen: dict[int, int] = {}
    path: list[int] = []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in preds[node] if not placed[p])
    cycle = path[seen[node] :]
    cycle.reverse()  # the walk went against the dependencies
    return cycle


def find_cycle(specs: Iterable[TaskSpec]) -> list[TaskId] | None:
    """The ids of the tasks in one dependency cycle, or ``None`` when there is none.

    In the returned list each task depends on the one before it and the first on the
    last (``[a]`` for a task depending on itself). Dependencies on unknown ids are
    ignored here: they cannot close a cycle.
    """
    specs = list(specs)
    index = {spec.id: position for position, spec in enumerate(specs)}
    preds: list[list[int]] = []
    succs: list[list[int]] = [[] for _ in specs]
    for position, spec in enumerate(specs):
        mine = [index[d] for d in dict.fromkeys(spec.depends_on) if d in index]
        preds.append(mine)
        for pred in mine:
            succs[pred].append(position)
    order = topological_order(preds, succs)
    if len(order) == len(specs):
        return None
    return [specs[node].id for node in cycle_in(preds, order)]
