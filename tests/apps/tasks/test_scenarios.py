"""Scenario templates and 双随机一公开: instantiate with departments and dates, draw with
a recorded seed avoiding conflicts of interest, publish the results."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select
from stdnum.cn import uscc

from tests.apps.tasks.conftest import City, count, tree_size
from xietong.apps.tasks import inspection, queries, scenarios
from xietong.apps.tasks.models import InspectionDraw, Task, TaskLink
from xietong.kernel.access import ANONYMOUS
from xietong.kernel.errors import Conflict, InvalidInput, NotFound

SLOTS = {"lead": "scjg", "fire": "xf", "environment": "sthj", "health": "wjw", "office": "dc"}


def make_uscc(n: int) -> str:
    body = f"91430102MA4L{n:04d}X"
    return body + uscc.calc_check_digit(body)


BUSINESSES = [{"uscc": make_uscc(i), "name": f"长沙湘味餐馆{i}号店"} for i in range(1, 21)]
INSPECTORS = [
    {"id": f"S{i:02d}", "name": f"执法员{i}", "department": "市市场监管局"} for i in range(1, 7)
]


def test_joint_supervision_template(city: City) -> None:
    views = scenarios.instantiate(
        city.ctx, city.scjg_head, "joint_supervision", start=date(2026, 3, 7), departments=SLOTS
    )
    root, lead, *steps = views
    assert root.level == "task_force" and root.supervising_department.code == "dc"
    assert root.goal.name == "抽查任务完成率" and root.basis[0]["ref"] == "国发〔2019〕5号"
    assert lead.department.code == "scjg"
    assert [d.code for d in lead.cooperating] == ["xf", "sthj", "wjw"]
    by_title = {v.title: v for v in steps}
    plan = by_title["制定联合抽查计划和检查事项清单"]
    assert plan.planned_start == date(2026, 3, 9)  # Saturday 7 March → the next working day
    assert plan.planned_end == date(2026, 3, 11)
    fire = by_title["消防安全检查"]
    assert fire.department.code == "xf" and fire.planned_start == date(2026, 3, 13)
    assert fire.depends_on == [by_title["双随机抽取检查对象和执法检查人员"].id]
    publish = by_title["汇总检查结果并向社会公示"]
    assert len(publish.depends_on) == 3
    assert count(city.ctx, Task) == 8 and count(city.ctx, TaskLink) == 7
    # the cooperating bureau sees its part of the tree
    xf_tasks = queries.list_tasks(city.ctx, city.xf_clerk, queries.TaskQuery(root_id=root.id))
    assert fire.id in {t.id for t in xf_tasks.items}


def test_template_needs_every_slot(city: City) -> None:
    before = (tree_size(city.ctx), count(city.ctx, Task))
    with pytest.raises(InvalidInput) as error:
        scenarios.instantiate(
            city.ctx,
            city.scjg_head,
            "joint_supervision",
            start=date(2026, 3, 9),
            departments={"lead": "scjg"},
        )
    assert error.value.code == "template_slots"
    with pytest.raises(InvalidInput):
        scenarios.instantiate(
            city.ctx,
            city.scjg_head,
            "joint_supervision",
            start=date(2026, 3, 9),
            departments={**SLOTS, "fire": "nope"},
        )
    assert (tree_size(city.ctx), count(city.ctx, Task)) == before


def test_policy_payout_template(city: City) -> None:
    views = scenarios.instantiate(
        city.ctx,
        city.supervisor,
        "policy_payout",
        start=date(2026, 3, 2),
        departments={"lead": "scjg", "finance": "jy", "tax": "xf", "data": "sthj", "office": "dc"},
        title="2026 年个体工商户纾困补贴兑付",
    )
    assert views[0].title == "2026 年个体工商户纾困补贴兑付" and len(views) == 9


def test_random_inspection(city: City) -> None:
    views = scenarios.instantiate(
        city.ctx, city.scjg_head, "joint_supervision", start=date(2026, 3, 9), departments=SLOTS
    )
    task = next(v for v in views if v.title.startswith("双随机"))
    conflicted = dict(INSPECTORS[0], conflicts=[b["uscc"] for b in BUSINESSES])
    pool = [conflicted, *INSPECTORS[1:]]
    drawn = inspection.draw(
        city.ctx,
        city.scjg_head,
        task.id,
        businesses=BUSINESSES,
        inspectors=pool,
        count=5,
        per_business=2,
        seed="2026-03-12-scjg",
    )
    assert drawn.seed == "2026-03-12-scjg" and len(drawn.assignments) == 5
    for item in drawn.assignments:
        assert "S01" not in [i["id"] for i in item["inspectors"]]  # conflict avoided
        assert len({i["id"] for i in item["inspectors"]}) == 2
    assert {(e["uscc"], e["inspector"]) for e in drawn.excluded} == {
        (a["uscc"], "S01") for a in drawn.assignments
    }
    # the same seed and pool always give the same draw (anyone can check it)
    again = inspection.draw(
        city.ctx,
        city.scjg_head,
        task.id,
        businesses=list(reversed(BUSINESSES)),
        inspectors=pool,
        count=5,
        per_business=2,
        seed="2026-03-12-scjg",
    )
    assert again.assignments == drawn.assignments
    with pytest.raises(NotFound):  # not published yet
        inspection.public_results(city.ctx, ANONYMOUS, drawn.id)
    first = drawn.assignments[0]["uscc"]
    inspection.record_result(city.ctx, city.scjg_head, drawn.id, first, "rectify", "灭火器过期")
    with pytest.raises(Conflict) as error:
        inspection.publish(city.ctx, city.scjg_head, drawn.id)
    assert error.value.code == "results_incomplete"
    for item in drawn.assignments[1:]:
        inspection.record_result(city.ctx, city.scjg_head, drawn.id, item["uscc"], "pass")
    inspection.publish(city.ctx, city.scjg_head, drawn.id)
    public = inspection.public_results(city.ctx, ANONYMOUS, drawn.id)
    assert public["items"][0]["label"] == "发现问题，责令整改"
    assert "conflicts" not in public["pool"]["inspectors"][0]
    # replaying from what was published gives what was drawn
    conflicts: dict[str, list[str]] = {}
    for pair in public["excluded"]:
        conflicts.setdefault(pair["inspector"], []).append(pair["uscc"])
    replay_pool = {
        "businesses": public["pool"]["businesses"],
        "inspectors": [
            dict(i, conflicts=conflicts.get(i["id"], [])) for i in public["pool"]["inspectors"]
        ],
    }
    assert inspection.replay(replay_pool, public["seed"], 5, 2)[0] == drawn.assignments
    with pytest.raises(Conflict):
        inspection.record_result(city.ctx, city.scjg_head, drawn.id, first, "pass")


def test_draw_bad_input_changes_nothing(city: City) -> None:
    views = scenarios.instantiate(
        city.ctx, city.scjg_head, "joint_supervision", start=date(2026, 3, 9), departments=SLOTS
    )
    task_id = views[3].id
    before = tree_size(city.ctx)
    cases = [
        (
            {
                "businesses": [{"uscc": "91430102MA4L0001X0", "name": "坏代码"}],
                "inspectors": INSPECTORS,
                "count": 1,
            },
            "invalid_uscc",
        ),
        (
            {"businesses": BUSINESSES, "inspectors": INSPECTORS, "count": 50},
            "not_enough_businesses",
        ),
        (
            {"businesses": BUSINESSES, "inspectors": INSPECTORS[:1], "count": 2},
            "not_enough_inspectors",
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(InvalidInput) as error:
            inspection.draw(city.ctx, city.scjg_head, task_id, **kwargs)
        assert error.value.code == code
    with city.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(InspectionDraw)) == 0
    assert tree_size(city.ctx) == before
