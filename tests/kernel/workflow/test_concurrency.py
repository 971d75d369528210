"""Concurrent requests: a task is completed exactly once; a join fires exactly once.

On PostgreSQL the requests really overlap (the instance row lock and the task's version
counter decide); on SQLite the write lock serialises them. Both must give one winner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from xietong.kernel.errors import Conflict
from xietong.kernel.workflow import operations
from xietong.kernel.workflow.store import WfHistory, WfTask

from .conftest import Flowbed, graph, line, node, task


def _race(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            value = call()
        except BaseException as error:
            with lock:
                errors.append(error)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_sixteen_threads_complete_one_task_exactly_once(bed: Flowbed) -> None:
    bed.deploy(line("race", task("a", "rev1"), task("b", "rev2")))
    started = bed.start("race")
    a = bed.open_task(started.id, "a")
    actor = bed.actor("rev1")
    size = bed.audit_size()
    results, errors = _race(
        [lambda: operations.complete(bed.ctx, actor, a.id, opinion="同意") for _ in range(16)]
    )
    assert len(results) == 1, errors
    assert len(errors) == 15
    assert all(isinstance(error, Conflict) for error in errors), errors
    assert {error.code for error in errors} <= {"task_already_completed", "stale"}
    assert bed.audit_size() == size + 1
    b_tasks = [t for t in bed.tasks(started.id) if t.node_id == "b"]
    assert len(b_tasks) == 1
    with bed.ctx.db.read() as session:
        completed = session.query(WfHistory).filter_by(kind="task.completed").count()
        assert completed == 1
        assert session.get(WfTask, a.id).version == a.version + 1


def test_two_branches_completed_at_once_fire_the_join_once(bed: Flowbed) -> None:
    bed.deploy(
        graph(
            "pjoin",
            [
                node("start", "start"),
                node("fork", "parallel"),
                task("a", "rev1"),
                task("b", "rev2"),
                node("join", "parallel"),
                task("final", "boss"),
                node("end", "end"),
            ],
            [
                ("start", "fork"),
                ("fork", "a"),
                ("fork", "b"),
                ("a", "join"),
                ("b", "join"),
                ("join", "final"),
                ("final", "end"),
            ],
        )
    )
    for _ in range(3):  # a few rounds: the interleaving differs from run to run
        started = bed.start("pjoin")
        a = bed.open_task(started.id, "a")
        b = bed.open_task(started.id, "b")
        rev1, rev2 = bed.actor("rev1"), bed.actor("rev2")
        results, errors = _race(
            [
                lambda a=a, rev1=rev1: operations.complete(bed.ctx, rev1, a.id),
                lambda b=b, rev2=rev2: operations.complete(bed.ctx, rev2, b.id),
            ]
        )
        assert errors == [] and len(results) == 2
        finals = [t for t in bed.tasks(started.id) if t.node_id == "final"]
        assert len(finals) == 1
        assert bed.waiting_nodes(started.id) == ["final"]
