"""Warnings and supervision fire on time: a frozen clock walks through a week and the
worker's periodic job is run each day, as the worker would."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.apps.tasks.conftest import City, event_types, task_input, tree_size
from xietong.apps.tasks import monitor, queries, service, supervision
from xietong.apps.tasks.models import Supervision, SupervisionStep, Task, TaskWarning
from xietong.kernel import clock, notify
from xietong.kernel.access import Actor
from xietong.kernel.bus.worker import Worker, hook_periodic_jobs
from xietong.kernel.errors import Conflict, Forbidden
from xietong.kernel.org.models import User
from xietong.kernel.org.scopes import actor_for_user


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=clock.CST)


def open_warnings(city: City) -> dict[tuple[int, str], date]:
    with city.ctx.db.read() as session:
        return {
            (w.task_id, w.code): w.fired_on
            for w in session.scalars(select(TaskWarning).where(TaskWarning.cleared_at.is_(None)))
        }


def plan(city: City, **root_options: object) -> tuple[int, int, int]:
    root = service.create_task(
        city.ctx,
        city.supervisor,
        task_input("专班", "dc", supervising_department_code="dc", **root_options),
    )
    first = service.create_task(
        city.ctx,
        city.supervisor,
        task_input(
            "门店排查",
            "scjg",
            parent_id=root.id,
            planned_end=date(2026, 3, 6),
        ),
    )
    second = service.create_task(
        city.ctx,
        city.supervisor,
        task_input(
            "消防整改",
            "xf",
            parent_id=root.id,
            planned_start=date(2026, 3, 9),
            planned_end=date(2026, 3, 13),
            depends_on=(first.id,),
        ),
    )
    return root.id, first.id, second.id


def test_warnings_fire_on_time(city: City, frozen: clock.FrozenClock) -> None:
    _, first, second = plan(city)
    assert ("tasks.warnings", 300.0) in [(n, i) for n, i, _ in hook_periodic_jobs(city.ctx)]
    # Monday 2 March: four working days left, nothing expected yet
    assert monitor.run_job(city.ctx) == 0 and open_warnings(city) == {}
    # Tuesday: three working days left (due soon), and 0% against 20% planned (behind)
    frozen.set(at(date(2026, 3, 3)))
    Worker(city.ctx, name="test").run_once()
    assert open_warnings(city) == {
        (first, "due_soon"): date(2026, 3, 3),
        (first, "behind_plan"): date(2026, 3, 3),
    }
    # Wednesday: 60% reported, no longer behind plan; still due soon (fired Tuesday)
    frozen.set(at(date(2026, 3, 4)))
    service.report_progress(city.ctx, city.scjg_clerk, first, 60, "已排查 300 家")
    monitor.run_job(city.ctx)
    assert open_warnings(city) == {(first, "due_soon"): date(2026, 3, 3)}
    assert monitor.run_job(city.ctx) == 0  # nothing new: nothing written
    # Friday, the last planned day: still not red
    frozen.set(at(date(2026, 3, 6)))
    monitor.run_job(city.ctx)
    assert (first, "overdue") not in open_warnings(city)
    # Saturday 7 March: red, and the task that depends on it is blocked
    frozen.set(at(date(2026, 3, 7)))
    monitor.run_job(city.ctx)
    found = open_warnings(city)
    assert found[(first, "overdue")] == date(2026, 3, 7)
    assert found[(second, "predecessor_overdue")] == date(2026, 3, 7)
    assert (first, "due_soon") not in found
    detail = queries.get_task(city.ctx, city.scjg_head, first)
    assert detail.task.status == "overdue" and detail.task.status_zh == "已逾期"
    # ... and the job sent a supervision notice to the lead department by itself
    notice = detail.supervisions[0]
    assert (
        notice.automatic and notice.status == "open" and notice.to_department_id == city.ids["scjg"]
    )
    assert notice.respond_by == date(2026, 3, 10)  # two working days after Saturday
    # Tuesday 10 March: still within the time to answer
    frozen.set(at(date(2026, 3, 10)))
    monitor.run_job(city.ctx)
    assert queries.get_task(city.ctx, city.scjg_head, first).supervisions[0].status == "open"
    # Wednesday 11 March: unanswered, escalated to the supervising office
    frozen.set(at(date(2026, 3, 11)))
    monitor.run_job(city.ctx)
    escalated = queries.get_task(city.ctx, city.scjg_head, first).supervisions[0]
    assert escalated.status == "escalated" and escalated.escalated_to_id == city.ids["dc"]
    types = event_types(city.ctx)
    for kind in (
        "task.warning.fired",
        "task.warning.cleared",
        "task.supervision.issued",
        "task.supervision.escalated",
    ):
        assert kind in types
    # finishing the task clears the red warning and ends the supervision
    service.report_progress(city.ctx, city.scjg_clerk, first, 100, "排查完毕")
    monitor.run_job(city.ctx)
    assert (first, "overdue") not in open_warnings(city)
    assert queries.get_task(city.ctx, city.scjg_head, first).supervisions[0].status == "ended"


def test_margin_is_configurable_per_tree(city: City, frozen: clock.FrozenClock) -> None:
    _, first, _ = plan(city, warn_margin=50, warn_due_days=1)
    frozen.set(at(date(2026, 3, 3)))
    monitor.run_job(city.ctx)
    assert open_warnings(city) == {}  # 0% against 20% planned is within 50 points
    frozen.set(at(date(2026, 3, 5)))  # one working day left, 0% against 60% planned
    monitor.run_job(city.ctx)
    assert set(open_warnings(city)) == {(first, "due_soon"), (first, "behind_plan")}


def test_supervision_by_hand(city: City, frozen: clock.FrozenClock) -> None:
    _, first, _ = plan(city)
    size = tree_size(city.ctx)
    notice = supervision.issue_notice(city.ctx, city.supervisor, first, "请加快排查进度", days=3)
    assert notice.respond_by == date(2026, 3, 5)
    with pytest.raises(Forbidden):
        supervision.issue_notice(city.ctx, city.scjg_head, first, "自己督办自己")
    supervision.urge(city.ctx, city.supervisor, notice.id, "请尽快反馈")
    with pytest.raises(Conflict) as again:
        supervision.urge(city.ctx, city.supervisor, notice.id, "再催")
    assert again.value.code == "urged_recently"
    frozen.advance(timedelta(hours=2))
    urged = supervision.urge(city.ctx, city.supervisor, notice.id, "再催")
    assert urged.urges == 2
    supervision.escalate(city.ctx, city.supervisor, notice.id, "多次催办未反馈")
    answered = supervision.respond(city.ctx, city.scjg_clerk, notice.id, "已增派人员，周五前完成")
    assert answered.status == "answered"
    # every step is an audit leaf and a step row
    assert tree_size(city.ctx) == size + 5
    steps = supervision.steps(city.ctx, city.supervisor, notice.id)
    assert [s["kind"] for s in steps] == ["notice", "urge", "urge", "escalate", "respond"]
    with city.ctx.db.read() as session:
        assert session.scalar(select(Supervision.urges)) == 2
        assert len(list(session.scalars(select(SupervisionStep)))) == 5
    assert "task.supervision.urged" in event_types(city.ctx)


def test_notices_urges_and_escalations_reach_people_in_their_inbox(
    city: City, frozen: clock.FrozenClock
) -> None:
    _, first, _ = plan(city)
    notice = supervision.issue_notice(city.ctx, city.supervisor, first, "请加快排查进度")
    supervision.urge(city.ctx, city.supervisor, notice.id, "请尽快反馈")
    supervision.escalate(city.ctx, city.supervisor, notice.id, "多次催办未反馈")
    with city.ctx.db.read() as session:
        owner = session.get_one(Task, first).owner_id
    told = owner if owner else city.scjg_head.id
    titles = [m.title for m in notify.list_messages(city.ctx, _as_user(city, told))]
    assert [t.split("：")[0] for t in titles] == ["催办", "督办通知"]
    office = [m.title for m in notify.list_messages(city.ctx, city.supervisor)]
    assert office and office[0].startswith("督办升级：")


def _as_user(city: City, user_id: int) -> Actor:
    with city.ctx.db.read() as session:
        return actor_for_user(session, session.get_one(User, user_id))


def test_warnings_count_the_lead_departments_regional_calendar(
    city: City, frozen: clock.FrozenClock
) -> None:
    """长沙 gives Wednesday 4 March off; 株洲 works as the nation does. The same plan is
    due soon in 长沙 on Monday (three working days left), not yet in 株洲 (four)."""
    from tests.apps.tasks.conftest import ADMIN, make_actor
    from xietong.kernel.access import Role
    from xietong.kernel.calendar import load_schedule
    from xietong.kernel.org import service as org

    org.create_region(city.ctx, ADMIN, "430200", "株洲市", "city", "430000")
    zz = org.create_department(city.ctx, ADMIN, "zz-scjg", "株洲市市场监管局", "430200")
    zz_head = make_actor(city.ctx, "zz_head", zz.id, [Role.HEAD])
    local = {"year": 2026, "holidays": [{"name": "长沙市特别休假", "days": ["2026-03-04"]}]}
    load_schedule(city.ctx, ADMIN, local, source="admin", region_code="430100")
    week = {"planned_start": date(2026, 3, 2), "planned_end": date(2026, 3, 6)}
    changsha = service.create_task(city.ctx, city.scjg_head, task_input("长沙", "scjg", **week))
    zhuzhou = service.create_task(city.ctx, zz_head, task_input("株洲", "zz-scjg", **week))
    assert (changsha.duration_days, zhuzhou.duration_days) == (4, 5)
    monitor.run_job(city.ctx)
    found = open_warnings(city)
    assert (changsha.id, "due_soon") in found and (zhuzhou.id, "due_soon") not in found
    with city.ctx.db.read() as session:
        details = session.scalars(
            select(TaskWarning.details).where(TaskWarning.task_id == changsha.id)
        ).one()
    assert details == {"working_days_left": 3}
    # Tuesday: 株洲 has three days left as well, 长沙 two
    frozen.set(at(date(2026, 3, 3)))
    monitor.run_job(city.ctx)
    found = open_warnings(city)
    assert (zhuzhou.id, "due_soon") in found
    with city.ctx.db.read() as session:
        left = {
            w.task_id: w.details["working_days_left"]
            for w in session.scalars(select(TaskWarning).where(TaskWarning.code == "due_soon"))
        }
    assert left == {changsha.id: 2, zhuzhou.id: 3}
