"""The workbench lists: todo (direct, 代理, candidate), done and cc — one query each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from xietong.kernel import clock
from xietong.kernel.errors import InvalidInput, NotFound
from xietong.kernel.org import add_delegation
from xietong.kernel.workflow import operations, queries
from xietong.kernel.workflow.model import Assignment
from xietong.kernel.workflow.queries import TaskFilters

from .conftest import Flowbed, line, node, task


@contextmanager
def statements(bed: Flowbed) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(bed.ctx.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(bed.ctx.db.engine, "before_cursor_execute", record)


def test_todo_direct_paged_and_filtered(bed: Flowbed) -> None:
    bed.deploy(line("p1", task("a", "rev1")))
    bed.deploy(line("p2", task("b", "rev1")))
    for number in range(5):
        bed.start("p1", business_key=f"K{number}")
    bed.start("p2", business_key="K9")
    rev1 = bed.actor("rev1")
    with statements(bed) as seen:
        page = queries.todo(bed.ctx, rev1, offset=0, limit=4)
    assert len(seen) == 1  # items and total in one statement
    assert page.total == 6 and len(page.items) == 4
    assert page.items[0].business_key == "K9"  # newest first
    rest = queries.todo(bed.ctx, rev1, offset=4, limit=4)
    assert (rest.total, len(rest.items)) == (6, 2)
    beyond = queries.todo(bed.ctx, rev1, offset=40, limit=4)
    assert (beyond.total, beyond.items) == (6, [])
    only = queries.todo(bed.ctx, rev1, TaskFilters(process_key="p1", business_key="K3"))
    assert [t.business_key for t in only.items] == ["K3"]
    by_node = queries.todo(bed.ctx, rev1, TaskFilters(node_id="b"))
    assert by_node.total == 1
    later = queries.todo(
        bed.ctx, rev1, TaskFilters(created_from=clock.now() + timedelta(minutes=1))
    )
    assert later.total == 0
    assert queries.todo(bed.ctx, bed.actor("rev2")).total == 0
    with pytest.raises(InvalidInput):
        queries.todo(bed.ctx, rev1, limit=0)


def test_todo_includes_delegated_work_and_candidate_tasks(bed: Flowbed) -> None:
    bed.deploy(line("mine", task("a", "boss")))
    bed.deploy(line("pool", node("r", assignment=Assignment(candidate_roles=("reviewer",)))))
    # no assignment at all (the validator refuses it; the runtime falls back to any
    # member of the instance's department rather than strand the task)
    bed.deploy(line("dept", node("d")), check=False)
    bed.start("mine")
    pooled = bed.start("pool")
    bed.start("dept")
    rev1 = bed.actor("rev1")
    assert {t.process_key for t in queries.todo(bed.ctx, rev1).items} == {"pool", "dept"}
    assert {t.process_key for t in queries.todo(bed.ctx, bed.actor("clerk_b")).items} == set()
    now = clock.now()
    add_delegation(
        bed.ctx,
        bed.actor("boss"),
        bed.user_ids["boss"],
        bed.user_ids["rev1"],
        now - timedelta(minutes=5),
        now + timedelta(days=1),
    )
    with statements(bed) as seen:
        page = queries.todo(bed.ctx, rev1)
    assert len(seen) == 1
    assert {t.process_key for t in page.items} == {"mine", "pool", "dept"}
    # a claimed candidate task leaves the other candidates' lists
    operations.claim(bed.ctx, bed.actor("rev2"), bed.open_task(pooled.id, "r").id)
    assert {t.process_key for t in queries.todo(bed.ctx, rev1).items} == {"mine", "dept"}
    assert {t.process_key for t in queries.todo(bed.ctx, bed.actor("rev2")).items} == {
        "pool",
        "dept",
    }


def test_done_lists_what_i_completed(bed: Flowbed) -> None:
    bed.deploy(line("d", task("a", "rev1"), task("b", "rev2")))
    first = bed.start("d")
    bed.start("d")
    operations.complete(bed.ctx, bed.actor("rev1"), bed.open_task(first.id, "a").id)
    page = queries.done(bed.ctx, bed.actor("rev1"))
    assert [(t.node_id, t.status) for t in page.items] == [("a", "completed")]
    assert page.total == 1
    assert queries.done(bed.ctx, bed.actor("rev2")).total == 0


def test_cc_list_with_unread_count(bed: Flowbed) -> None:
    bed.deploy(line("c", task("a", "rev1")))
    started = bed.start("c")
    applicant = bed.actor("applicant")
    for _ in range(3):
        operations.cc(bed.ctx, applicant, started.id, [bed.user_ids["rev2"]])
    listing = queries.cc_list(bed.ctx, bed.actor("rev2"))
    assert (listing.total, listing.unread) == (3, 3)
    operations.mark_cc_read(bed.ctx, bed.actor("rev2"), listing.items[0].id)
    listing = queries.cc_list(bed.ctx, bed.actor("rev2"))
    assert (listing.total, listing.unread) == (3, 2)
    unread = queries.cc_list(bed.ctx, bed.actor("rev2"), unread_only=True)
    assert len(unread.items) == 2


def test_task_detail_lists_the_allowed_operations(bed: Flowbed) -> None:
    bed.deploy(line("t", task("a", "rev1"), task("b", "rev2")))
    started = bed.start("t")
    a = bed.open_task(started.id, "a")
    mine = queries.get_task(bed.ctx, bed.actor("rev1"), a.id)
    assert {"complete", "send_back", "transfer", "delegate"} <= set(mine.operations)
    theirs = queries.get_task(bed.ctx, bed.actor("applicant"), a.id)
    assert theirs.operations == ["urge"]
    with pytest.raises(NotFound):
        queries.get_task(bed.ctx, bed.actor("clerk_b"), a.id)
    operations.complete(bed.ctx, bed.actor("rev1"), a.id)
    assert "withdraw" in queries.get_task(bed.ctx, bed.actor("rev1"), a.id).operations
