"""销号 through the workflow engine: evidence required, approval closes, refusal reopens
with the approver's opinion, the decision event applied once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.apps.tasks.conftest import City, count, event_types, task_input, tree_size
from xietong.apps.tasks import closure, queries, service
from xietong.apps.tasks.models import Closure
from xietong.kernel import files
from xietong.kernel.bus.relay import InProcessBus, relay_once
from xietong.kernel.errors import Conflict, InvalidInput
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.workflow import instances, operations
from xietong.kernel.workflow import queries as wf_queries
from xietong.kernel.workflow.store import WfInstance

EVIDENCE = [files.Incoming("整改验收报告.pdf", b"%PDF-1.7\n acceptance report")]


def finished_task(city: City) -> int:
    root = service.create_task(
        city.ctx, city.supervisor, task_input("专班", "dc", supervising_department_code="dc")
    )
    lead = service.create_task(
        city.ctx, city.supervisor, task_input("门店排查", "scjg", parent_id=root.id)
    )
    service.report_progress(city.ctx, city.scjg_clerk, lead.id, 100, "排查完毕")
    return lead.id


def relay(city: City) -> None:
    bus = InProcessBus(city.ctx)
    while relay_once(city.ctx, bus):
        pass


def decide(city: City, outcome: str, opinion: str) -> None:
    todo = wf_queries.todo(city.ctx, city.supervisor).items
    assert [t.process_key for t in todo] == ["tasks_closure"]
    operations.complete(city.ctx, city.supervisor, todo[0].id, outcome, opinion=opinion)
    relay(city)


def test_approval_closes_the_task(city: City) -> None:
    task_id = finished_task(city)
    view = closure.request_closure(
        city.ctx, city.scjg_head, task_id, [], "已全部整改", uploads=EVIDENCE
    )
    assert view.status == "pending" and view.instance_id is not None
    with city.ctx.db.read() as session:
        instance = session.get_one(WfInstance, view.instance_id)
        assert instance.business_key == f"task-closure:{view.id}"
    # the approver opens the instance from the todo list; the requester still sees it
    for actor in (city.supervisor, city.scjg_head):
        assert instances.get_instance(city.ctx, actor, view.instance_id).instance.id
    with pytest.raises(Conflict) as twice:
        closure.request_closure(city.ctx, city.scjg_head, task_id, [], uploads=EVIDENCE)
    assert twice.value.code == "closure_pending"
    decide(city, "approve", "佐证材料齐全，同意销号")
    detail = queries.get_task(city.ctx, city.scjg_head, task_id)
    assert detail.task.status == "closed" and detail.task.status_zh == "已销号"
    assert detail.closures[0].status == "approved"
    assert detail.closures[0].opinion == "佐证材料齐全，同意销号"
    assert detail.closures[0].decided_by == "user:supervisor"
    assert "task.closed" in event_types(city.ctx)
    # a redelivered decision changes nothing
    with city.ctx.db.read() as session:
        raw = session.scalar(
            select(OutboxEvent.cloudevent).where(OutboxEvent.type == "workflow.task.completed")
        )
    import json

    size = tree_size(city.ctx)
    InProcessBus(city.ctx).publish(json.loads(raw))
    assert tree_size(city.ctx) == size
    with pytest.raises(Conflict):
        service.report_progress(city.ctx, city.scjg_clerk, task_id, 100, "再报")


def test_refusal_reopens_with_the_opinion(city: City) -> None:
    task_id = finished_task(city)
    closure.request_closure(city.ctx, city.scjg_head, task_id, [], uploads=EVIDENCE)
    decide(city, "reject", "缺少复查照片，请补充后重新申请")
    detail = queries.get_task(city.ctx, city.scjg_head, task_id)
    assert detail.task.status == "in_progress" and detail.task.finished_on is None
    assert detail.closures[0].status == "rejected"
    assert detail.closures[0].opinion.startswith("缺少复查照片")
    assert "task.reopened" in event_types(city.ctx)
    # fixed and reported again, it can be closed on a second request
    service.report_progress(city.ctx, city.scjg_clerk, task_id, 100, "已补充复查照片")
    closure.request_closure(city.ctx, city.scjg_head, task_id, [], uploads=EVIDENCE)
    decide(city, "approve", "同意")
    assert queries.get_task(city.ctx, city.scjg_head, task_id).task.status == "closed"


def test_closure_without_evidence_changes_nothing(city: City) -> None:
    task_id = finished_task(city)
    before = (tree_size(city.ctx), count(city.ctx, Closure), count(city.ctx, WfInstance))
    with pytest.raises(InvalidInput) as error:
        closure.request_closure(city.ctx, city.scjg_head, task_id, [])
    assert error.value.code == "evidence_required"
    with pytest.raises(InvalidInput):
        closure.request_closure(city.ctx, city.scjg_head, task_id, [{"name": "无链接"}])
    # a link alone is not evidence: the supervising office must be able to open it
    with pytest.raises(InvalidInput) as link_only:
        closure.request_closure(
            city.ctx,
            city.scjg_head,
            task_id,
            [{"name": "验收单", "url": "https://oa.example.gov.cn/ys.pdf"}],
        )
    assert link_only.value.code == "evidence_required"
    assert (tree_size(city.ctx), count(city.ctx, Closure), count(city.ctx, WfInstance)) == before


def test_only_done_tasks_close(city: City) -> None:
    task = service.create_task(city.ctx, city.scjg_head, task_input("未完成", "scjg"))
    with pytest.raises(Conflict) as error:
        closure.request_closure(city.ctx, city.scjg_head, task.id, [], uploads=EVIDENCE)
    assert error.value.code == "not_done"
    assert count(city.ctx, Closure) == 0
