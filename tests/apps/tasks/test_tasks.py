"""Tasks, decomposition, dependencies, progress and comments through the service layer,
on SQLite and PostgreSQL: what works, and every kind of bad input changing nothing."""

from __future__ import annotations

from datetime import date

import pytest

from tests.apps.tasks.conftest import City, count, event_types, task_input, tree_size
from xietong.apps.tasks import queries, service
from xietong.apps.tasks.models import ProgressReport, Task, TaskLink
from xietong.apps.tasks.rules import TaskPatch
from xietong.kernel.errors import Forbidden, InvalidInput, NotFound


def goal_tree(city: City) -> tuple[int, int, int]:
    """A task force's goal decomposed to the lead bureau and one cooperating bureau."""
    root = service.create_task(
        city.ctx,
        city.supervisor,
        task_input(
            "餐饮油烟与消防安全联合整治",
            "dc",
            supervising_department_code="dc",
            goal_name="整改完成率",
            goal_unit="%",
            goal_baseline=40,
            goal_target=95,
            basis=(
                {
                    "kind": "policy",
                    "title": "长沙市餐饮业综合整治方案",
                    "ref": "长政办发〔2026〕3号",
                },
            ),
        ),
    )
    lead = service.create_task(
        city.ctx,
        city.supervisor,
        task_input(
            "组织餐饮门店排查",
            "scjg",
            parent_id=root.id,
            cooperating_codes=("xf", "sthj"),
            owner="scjg_head",
        ),
    )
    coop = service.create_task(
        city.ctx,
        city.scjg_head,
        task_input("消防通道检查", "xf", parent_id=lead.id, planned_end=date(2026, 3, 20)),
    )
    return root.id, lead.id, coop.id


def test_decompose_a_goal(city: City) -> None:
    root_id, lead_id, coop_id = goal_tree(city)
    detail = queries.get_task(city.ctx, city.supervisor, root_id)
    assert detail.task.level == "task_force" and detail.task.level_zh == "专班"
    assert detail.task.goal.target == 95 and detail.task.goal.unit == "%"
    assert detail.task.basis[0]["ref"] == "长政办发〔2026〕3号"
    assert detail.children == [lead_id]
    lead = queries.get_task(city.ctx, city.scjg_head, lead_id).task
    assert lead.level == "lead" and lead.root_id == root_id
    assert [d.code for d in lead.cooperating] == ["xf", "sthj"]
    assert lead.owner == "scjg_head"
    assert lead.duration_days == 22  # working days of March 2026 (2 to 31)
    coop = queries.get_task(city.ctx, city.xf_head, coop_id).task
    assert coop.level == "cooperating" and coop.status == "not_started"
    nodes = queries.tree(city.ctx, city.supervisor, root_id)
    assert nodes[0].task.id == root_id and nodes[0].children[0].children[0].task.id == coop_id
    assert event_types(city.ctx).count("task.created") == 3


def test_visibility_follows_the_tree(city: City) -> None:
    root_id, lead_id, coop_id = goal_tree(city)
    # the cooperating bureau sees its branch, not the task force's other work
    xf_ids = {t.id for t in queries.list_tasks(city.ctx, city.xf_clerk, queries.TaskQuery()).items}
    assert xf_ids == {lead_id, coop_id}
    with pytest.raises(NotFound):
        queries.get_task(city.ctx, city.jy_head, lead_id)
    assert queries.list_tasks(city.ctx, city.jy_head, queries.TaskQuery()).total == 0
    # the cooperating bureau's tree starts at the branch it sees
    assert [n.task.id for n in queries.tree(city.ctx, city.xf_clerk, root_id)] == [lead_id]


def test_working_day_duration(city: City) -> None:
    # Friday 6 March + 3 working days: Friday, Monday, Tuesday
    view = service.create_task(
        city.ctx,
        city.scjg_head,
        task_input(
            "短期任务", "scjg", planned_start=date(2026, 3, 6), planned_end=None, duration_days=3
        ),
    )
    assert view.planned_end == date(2026, 3, 10) and view.duration_days == 3
    # across 劳动节 2026 (1–5 May off): Thursday 30 April, then 6 and 7 May
    over = service.create_task(
        city.ctx,
        city.scjg_head,
        task_input(
            "节后任务", "scjg", planned_start=date(2026, 4, 30), planned_end=None, duration_days=3
        ),
    )
    assert over.planned_end == date(2026, 5, 7)


def test_end_before_start_changes_nothing(city: City) -> None:
    before = tree_size(city.ctx)
    with pytest.raises(InvalidInput) as error:
        service.create_task(
            city.ctx, city.scjg_head, task_input("倒序", "scjg", planned_end=date(2026, 2, 1))
        )
    assert error.value.code == "end_before_start"
    assert count(city.ctx, Task) == 0 and tree_size(city.ctx) == before
    _, lead_id, _ = goal_tree(city)
    before = tree_size(city.ctx)
    with pytest.raises(InvalidInput) as error:
        service.update_task(
            city.ctx, city.supervisor, lead_id, TaskPatch(planned_end=date(2026, 3, 1))
        )
    assert error.value.code == "end_before_start"
    assert queries.get_task(city.ctx, city.supervisor, lead_id).task.planned_end == date(
        2026, 3, 31
    )
    assert tree_size(city.ctx) == before


def test_cycle_is_refused_naming_its_tasks(city: City) -> None:
    a = service.create_task(city.ctx, city.scjg_head, task_input("摸底", "scjg")).id
    b = service.create_task(
        city.ctx, city.scjg_head, task_input("整改", "scjg", depends_on=(a,))
    ).id
    c = service.create_task(
        city.ctx, city.scjg_head, task_input("复查", "scjg", depends_on=(b,))
    ).id
    before = (tree_size(city.ctx), count(city.ctx, TaskLink))
    with pytest.raises(InvalidInput) as error:
        service.add_dependency(city.ctx, city.scjg_head, a, c)
    assert error.value.code == "dependency_cycle"
    assert set(error.value.details["task_ids"]) == {a, b, c}
    for title in ("摸底", "整改", "复查"):
        assert title in error.value.message_zh
    with pytest.raises(InvalidInput) as error:
        service.add_dependency(city.ctx, city.scjg_head, a, a)
    assert error.value.code == "dependency_cycle"
    assert (tree_size(city.ctx), count(city.ctx, TaskLink)) == before
    service.remove_dependency(city.ctx, city.scjg_head, c, b)
    service.add_dependency(city.ctx, city.scjg_head, a, c)  # no longer a cycle


def test_dependency_on_a_hidden_task_is_refused(city: City) -> None:
    _, lead_id, _ = goal_tree(city)
    before = (tree_size(city.ctx), count(city.ctx, Task))
    with pytest.raises(InvalidInput) as error:
        service.create_task(
            city.ctx, city.jy_head, task_input("校园食堂", "jy", depends_on=(lead_id,))
        )
    assert error.value.code == "dependency_not_visible"
    own = service.create_task(city.ctx, city.jy_head, task_input("校园食堂", "jy"))
    with pytest.raises(InvalidInput) as error:
        service.add_dependency(city.ctx, city.jy_head, own.id, lead_id)
    assert error.value.code == "dependency_not_visible"
    # a task that does not exist reads the same: no probing for ids
    with pytest.raises(InvalidInput) as missing:
        service.add_dependency(city.ctx, city.jy_head, own.id, 99999)
    assert missing.value.code == "dependency_not_visible"
    assert count(city.ctx, Task) == before[1] + 1 and count(city.ctx, TaskLink) == 0


def test_progress_reports(city: City) -> None:
    _, lead_id, coop_id = goal_tree(city)
    report = service.report_progress(
        city.ctx,
        city.scjg_clerk,
        lead_id,
        30,
        "已排查芙蓉区门店 120 家",
        attachments=[{"name": "排查台账.xlsx", "url": "https://oa.example.gov.cn/tz.xlsx"}],
        goal_value=55,
    )
    assert report.previous == 0 and report.attachments[0]["name"] == "排查台账.xlsx"
    task = queries.get_task(city.ctx, city.scjg_head, lead_id).task
    assert task.progress == 30 and task.status == "in_progress" and task.goal.current == 55
    # a cooperating department reports too; an outsider may not
    service.report_progress(city.ctx, city.xf_clerk, lead_id, 40, "消防检查同步开展")
    with pytest.raises(NotFound):
        service.report_progress(city.ctx, city.jy_head, lead_id, 50, "越权")
    before = (tree_size(city.ctx), count(city.ctx, ProgressReport))
    with pytest.raises(InvalidInput) as error:
        service.report_progress(city.ctx, city.scjg_clerk, lead_id, 101, "超额")
    assert error.value.code == "progress_range"
    with pytest.raises(InvalidInput) as error:
        service.report_progress(city.ctx, city.scjg_clerk, lead_id, 20, "回退")
    assert error.value.code == "progress_decrease_needs_reason"
    assert (tree_size(city.ctx), count(city.ctx, ProgressReport)) == before
    assert queries.get_task(city.ctx, city.scjg_head, lead_id).task.progress == 40
    service.report_progress(
        city.ctx, city.scjg_clerk, lead_id, 20, "复核", reason="复核发现台账重复"
    )
    done = service.report_progress(city.ctx, city.xf_clerk, coop_id, 100, "检查完毕")
    assert done.percent == 100
    finished = queries.get_task(city.ctx, city.xf_head, coop_id).task
    assert finished.status == "done" and finished.finished_on == date(2026, 3, 2)
    assert "task.progress.reported" in event_types(city.ctx)


def test_comments_and_rights(city: City) -> None:
    root_id, lead_id, _ = goal_tree(city)
    comment = service.add_comment(city.ctx, city.xf_clerk, lead_id, "消防支队已安排检查组")
    assert comment.author == "user:xf_clerk"
    with pytest.raises(Forbidden):  # sees the branch, but only heads decompose it
        service.create_task(
            city.ctx, city.xf_clerk, task_input("越权分解", "xf", parent_id=lead_id)
        )
    with pytest.raises(NotFound):
        service.create_task(city.ctx, city.jy_head, task_input("越权分解", "jy", parent_id=root_id))
    assert queries.get_task(city.ctx, city.supervisor, lead_id).comments[0].text.startswith("消防")
