"""汇总进度: a parent's progress is the weighted mean of its children's, level by level."""

from __future__ import annotations

import pytest

from tests.apps.tasks.conftest import City, signed_in, task_input
from xietong.apps.tasks import queries, service
from xietong.apps.tasks.analysis import Node, rolled_progress


def test_weighted_mean_level_by_level() -> None:
    found = rolled_progress(
        [
            Node(1, None, 1, 5, False),  # its own report (5%) is not mixed in
            Node(2, 1, 3, 0, False),  # rolls up from 4 and 5
            Node(3, 1, 1, 80, False),
            Node(4, 2, 1, 20, False),
            Node(5, 2, 3, 0, True),  # finished: counts 100 whatever it reported
        ]
    )
    assert found[4] == 20 and found[5] == 100 and found[3] == 80
    assert found[2] == pytest.approx((1 * 20 + 3 * 100) / 4)  # 80
    assert found[1] == pytest.approx((3 * 80 + 1 * 80) / 4)  # 80


def test_zero_weights_hidden_parents_and_deep_trees() -> None:
    # all children weigh 0: the plain mean
    assert rolled_progress(
        [Node(1, None, 1, 0, False), Node(2, 1, 0, 30, False), Node(3, 1, 0, 60, False)]
    )[1] == pytest.approx(45)
    # a parent not in the input (hidden from the asker): its child is a top node
    assert rolled_progress([Node(7, 99, 1, 40, False)]) == {7: 40}
    # a chain deeper than Python's recursion limit
    chain = [Node(0, None, 1, 0, False)] + [Node(i, i - 1, 1, 0, False) for i in range(1, 5000)]
    chain[-1] = Node(4999, 4998, 1, 70, False)
    assert rolled_progress(chain)[0] == 70


def test_tree_and_overview_show_the_roll_up(city: City) -> None:
    ctx, sup = city.ctx, city.supervisor
    root = service.create_task(ctx, sup, task_input("专班", "dc", supervising_department_code="dc"))
    lead = service.create_task(ctx, sup, task_input("牵头", "scjg", parent_id=root.id, weight=3))
    other = service.create_task(ctx, sup, task_input("另一牵头", "xf", parent_id=root.id))
    a = service.create_task(ctx, sup, task_input("配合甲", "scjg", parent_id=lead.id, weight=1))
    b = service.create_task(ctx, sup, task_input("配合乙", "scjg", parent_id=lead.id, weight=1))
    service.report_progress(ctx, city.scjg_clerk, a.id, 100, "完成")
    service.report_progress(ctx, city.scjg_clerk, b.id, 40, "推进中")
    service.report_progress(ctx, city.xf_clerk, other.id, 20, "推进中")
    service.report_progress(ctx, sup, root.id, 10, "专班自报")

    [top] = queries.tree(ctx, sup, root.id)
    assert top.task.progress == 10  # the report stays as reported ...
    by_id = {n.task.id: n for n in top.children}
    assert by_id[lead.id].rollup == 70  # (100 + 40) / 2
    assert by_id[other.id].rollup == 20
    assert top.rollup == pytest.approx((3 * 70 + 1 * 20) / 4)  # ... the roll-up is 57.5
    overview = queries.overview(ctx, sup, root.id)
    assert overview.progress == 57.5
    assert [(r["task_id"], r["progress"], r["reported"]) for r in overview.branches] == [
        (lead.id, 70.0, 0.0),
        (other.id, 20.0, 20.0),
    ]
    # the task's page shows both figures
    page = signed_in(ctx, "supervisor").get(f"/tasks/{root.id}").text
    assert 'id="progress">10%' in page and 'id="rollup">57.5%' in page
    assert queries.rollup_of(ctx, sup, lead.id, root.id) == 70  # the whole tree, not a page
    # a department sees its own branch, rolled up from what it sees (all of its subtree)
    [mine] = queries.tree(ctx, city.scjg_clerk, root.id)
    assert mine.task.id == lead.id and mine.rollup == 70
