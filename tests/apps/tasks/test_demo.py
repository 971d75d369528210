"""The demo task force: a decomposed goal with history, late tasks and warnings."""

from __future__ import annotations

from sqlalchemy import select

from tests.apps.tasks.conftest import count, tree_size
from xietong.apps.tasks import insight, queries
from xietong.apps.tasks.demo import TITLE, load_demo_tasks
from xietong.apps.tasks.models import InspectionDraw, Supervision, Task
from xietong.demo.city import load_city
from xietong.kernel.access import operator_actor
from xietong.kernel.context import Context
from xietong.plugins import plugin_manager

ADMIN = operator_actor("test")


def test_demo_task_force(ctx: Context) -> None:
    plugin_manager()
    load_city(ctx, ADMIN)
    load_demo_tasks(ctx)
    forces = queries.task_forces(ctx, ADMIN)
    root = next(f for f in forces if f.title == TITLE)
    overview = queries.overview(ctx, ADMIN, root.id)
    assert overview.total == 11
    assert overview.by_level["red"] >= 2 and overview.by_level["blocked"] >= 1
    assert overview.by_level["yellow"] >= 1
    titles = {
        v.title: v for v in queries.list_tasks(ctx, ADMIN, queries.TaskQuery(root_id=root.id)).items
    }
    assert titles["芙蓉区、天心区门店油烟检测"].status == "done"
    assert titles["油烟净化设施安装整改督导"].status == "overdue"
    assert titles["无证经营餐饮单位查处"].warnings[0].code == "predecessor_overdue"
    # warnings fired on the days they would have, before today
    fired = {w.fired_on for w in overview.warnings}
    assert len(fired) > 1
    with ctx.db.read() as session:
        assert session.scalar(select(Supervision.id).where(Supervision.automatic.is_(True)))
        assert session.scalar(select(InspectionDraw.published_at)) is not None
    result = insight.analysis(ctx, ADMIN, root.id)
    assert result.critical_path and result.on_time
    assert any(p["code"] == "no_owner" for p in result.allocation)
    # loading again changes nothing
    before = (tree_size(ctx), count(ctx, Task))
    load_demo_tasks(ctx)
    assert (tree_size(ctx), count(ctx, Task)) == before
