"""Analysis from stored tasks: critical path and slack, blocking, capacity, allocation,
on-time rates and what-if, over what the asker may see."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tests.apps.tasks.conftest import City, task_input
from xietong.apps.tasks import insight, service
from xietong.kernel import clock
from xietong.kernel.errors import InvalidInput, NotFound


def build(city: City) -> dict[str, int]:
    root = service.create_task(
        city.ctx,
        city.supervisor,
        task_input("油烟整治专班", "dc", supervising_department_code="dc", goal_name="整改完成率"),
    ).id

    def make(title: str, dept: str, start: date, end: date, **kw: object) -> int:
        data = task_input(title, dept, parent_id=root, planned_start=start, planned_end=end, **kw)
        return service.create_task(city.ctx, city.supervisor, data).id

    a = make("门店排查", "scjg", date(2026, 3, 2), date(2026, 3, 6), owner="scjg_head")
    b = make(
        "消防整改", "xf", date(2026, 3, 9), date(2026, 3, 13), depends_on=(a,), owner="xf_head"
    )
    c = make(
        "油烟复测",
        "sthj",
        date(2026, 3, 16),
        date(2026, 3, 20),
        depends_on=(b,),
        owner="supervisor",
    )
    d = make("卫生宣传", "wjw", date(2026, 3, 2), date(2026, 3, 31))
    e = make("门店排查", "xf", date(2026, 3, 2), date(2026, 3, 6), owner="xf_head")
    f = make("证照核查", "scjg", date(2026, 3, 2), date(2026, 3, 13), weight=2, owner="scjg_head")
    return {"root": root, "a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


def test_analysis_answers_from_data(city: City, frozen: clock.FrozenClock) -> None:
    ids = build(city)
    service.set_capacity(city.ctx, city.supervisor, "scjg", 1.5)
    service.set_capacity(city.ctx, city.supervisor, "xf", 5)
    frozen.set(datetime(2026, 3, 5, 10, tzinfo=clock.CST))
    service.report_progress(city.ctx, city.scjg_clerk, ids["a"], 100, "排查完毕")
    frozen.set(datetime(2026, 3, 9, 10, tzinfo=clock.CST))
    service.report_progress(city.ctx, city.xf_clerk, ids["e"], 100, "排查完毕（逾期）")
    result = insight.analysis(city.ctx, city.supervisor, ids["root"])
    assert result.tasks == 7
    slack = {t.task.id: t.slack for t in result.timings}
    # the chain ends on 20 March; the goal's deadline is 31 March: 7 working days to spare
    assert slack[ids["c"]] == 7 and slack[ids["d"]] == 0
    # the top task is a summary: the path runs through the work itself
    assert [t.id for t in result.critical_path] == [ids["d"]]
    summary = {t.task.id for t in result.timings if t.summary}
    assert summary == {ids["root"]}
    blocking = {entry["task"].id: entry["downstream"] for entry in result.top_blocking}
    assert blocking[ids["b"]] == 1 and ids["a"] not in blocking  # a is done: blocks nothing
    over = {row["department"]: row for row in result.capacity}
    # 证照核查 (weight 2, 0%) is open; 门店排查 is done and weighs nothing any more
    assert over["scjg"]["load"] == 2.0 and over["scjg"]["open_tasks"] == 1
    assert result.over_capacity == ["scjg"]
    assert over["xf"]["over"] is False and over["xf"]["load"] == 1.0  # 消防整改 has started
    codes = {(p["code"], tuple(sorted(t.id for t in p["tasks"]))) for p in result.allocation}
    assert ("no_owner", (ids["d"],)) in codes
    assert ("duplicate_assignment", tuple(sorted((ids["a"], ids["e"])))) in codes
    rates = {row["department"]: row["rate"] for row in result.on_time}
    assert rates == {"scjg": 1.0, "xf": 0.0}


def test_what_if(city: City) -> None:
    ids = build(city)
    fine = insight.slip(city.ctx, city.supervisor, ids["a"], 7)
    assert fine.late_goals == [] and [d["task"].id for d in fine.delayed] == [
        ids["a"],
        ids["b"],
        ids["c"],
    ]
    late = insight.slip(city.ctx, city.supervisor, ids["a"], 8)
    assert late.late_goals == [
        {
            "task_id": ids["root"],
            "title": "油烟整治专班",
            "goal": "整改完成率",
            "working_days_late": 1,
            "because_of_slip": True,
        }
    ]
    assert {t.id for t in late.newly_late_tasks} == {ids["a"], ids["b"], ids["c"]}
    with pytest.raises(InvalidInput):
        insight.slip(city.ctx, city.supervisor, ids["a"], -1)
    with pytest.raises(NotFound):
        insight.slip(city.ctx, city.jy_head, ids["a"], 1)
    with pytest.raises(InvalidInput) as summary:
        insight.slip(city.ctx, city.supervisor, ids["root"], 1)
    assert summary.value.code == "summary_task"


def test_links_to_a_summary_mean_its_subtasks(city: City) -> None:
    ids = build(city)
    # 复查 waits for the whole 整治 branch: a link to the branch is a link to its work
    branch = service.create_task(
        city.ctx,
        city.supervisor,
        task_input("整改分支", "xf", parent_id=ids["root"], planned_end=date(2026, 3, 13)),
    ).id
    late = service.create_task(
        city.ctx,
        city.supervisor,
        task_input("分支内整改", "xf", parent_id=branch, planned_end=date(2026, 3, 13)),
    ).id
    after = service.create_task(
        city.ctx,
        city.supervisor,
        task_input(
            "分支后复查",
            "sthj",
            parent_id=ids["root"],
            planned_start=date(2026, 3, 16),
            planned_end=date(2026, 3, 20),
            depends_on=(branch,),
        ),
    ).id
    answer = insight.slip(city.ctx, city.supervisor, late, 3)
    assert after in {d["task"].id for d in answer.delayed}


def test_analysis_sees_only_the_visible(city: City) -> None:
    ids = build(city)
    assert insight.analysis(city.ctx, city.jy_head).tasks == 0
    mine = insight.analysis(city.ctx, city.xf_clerk)
    assert {t.task.id for t in mine.timings} == {ids["b"], ids["e"]}


def test_analysis_counts_the_calendar_its_tasks_follow(
    city: City, frozen: clock.FrozenClock
) -> None:
    """长沙 gives Wednesday 4 March off. A task force of 长沙's departments is counted in
    长沙's working days; once a 株洲 department joins, the forest falls back to the
    nationwide count, while the task force (led from 长沙) and a what-if on its task
    keep 长沙's."""
    from tests.apps.tasks.conftest import ADMIN
    from xietong.kernel.calendar import load_schedule
    from xietong.kernel.org import service as org

    local = {"year": 2026, "holidays": [{"name": "长沙市特别休假", "days": ["2026-03-04"]}]}
    load_schedule(city.ctx, ADMIN, local, source="admin", region_code="430100")
    frozen.set(datetime(2026, 3, 2, 9, tzinfo=clock.CST))
    root = service.create_task(city.ctx, city.supervisor, task_input("专班", "dc")).id
    week = {"planned_start": date(2026, 3, 2), "planned_end": date(2026, 3, 6)}
    work = service.create_task(
        city.ctx, city.supervisor, task_input("排查", "scjg", parent_id=root, **week)
    ).id
    result = insight.analysis(city.ctx, city.supervisor, root)
    assert (result.calendar_region, result.calendar_name) == ("430100", "长沙市")
    assert result.critical_path_days == 4  # Monday to Friday less 长沙's Wednesday
    assert insight.slip(city.ctx, city.supervisor, work, 1).calendar_region == "430100"

    org.create_region(city.ctx, ADMIN, "430200", "株洲市", "city", "430000")
    org.create_department(city.ctx, ADMIN, "zz-scjg", "株洲市市场监管局", "430200")
    service.create_task(
        city.ctx, city.supervisor, task_input("株洲配合", "zz-scjg", parent_id=root, **week)
    )
    everything = insight.analysis(city.ctx, city.supervisor)
    assert (everything.calendar_region, everything.calendar_name) == (None, None)
    assert insight.analysis(city.ctx, city.supervisor, root).calendar_region == "430100"
    assert insight.slip(city.ctx, city.supervisor, work, 1).calendar_region == "430100"
