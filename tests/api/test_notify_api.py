"""In-app messages: workflow work reaches its assignee's inbox once; reading is one's own."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.api.conftest import World
from tests.api.test_workflow_operations_api import PERMIT
from xietong.kernel.access import operator_actor
from xietong.kernel.bus import InProcessBus, relay_once
from xietong.kernel.notify.models import NotifyMessage
from xietong.kernel.outbox import OutboxEvent
from xietong.kernel.workflow import definitions, instances

BASE = "/api/v1/notifications"
ERROR_KEYS = {"code", "message_zh", "message_en", "details"}


def _relay(world: World) -> None:
    while relay_once(world.ctx, InProcessBus(world.ctx)):
        pass


def _start_permit(world: World) -> int:
    op = operator_actor("test")
    definitions.deploy(world.ctx, op, PERMIT.format(approver="head_a"), "bpmn")
    started = instances.start(
        world.ctx,
        op,
        "permit",
        business_key="XK-001",
        department_id=world.dept_a,
    )
    return started.id


def _count(world: World) -> int:
    with world.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(NotifyMessage)) or 0)


def test_new_work_notifies_its_assignee_once_and_reading_clears_the_bell(world: World) -> None:
    _start_permit(world)
    _relay(world)
    clerk = world.token("clerk_a")
    body = world.client.get(BASE, headers=clerk).json()
    assert body["unread"] == 1
    (message,) = body["items"]
    assert message["title"] == "新待办：受理" and "XK-001" in message["body"]
    assert message["link"].startswith("/workflow/tasks/") and message["read"] is False
    english = world.client.get(BASE, headers={**clerk, "Accept-Language": "en"}).json()
    assert english["items"][0]["title"] == "New task: 受理"
    # others see nothing of it
    assert world.client.get(BASE, headers=world.token("clerk_b")).json()["items"] == []

    # a redelivered event (a relay that died before marking it published) adds nothing
    with world.ctx.db.write_session() as session, session.begin():
        session.execute(OutboxEvent.__table__.update().values(published_at=None))
    _relay(world)
    assert _count(world) == 1

    marked = world.client.post(f"{BASE}/read", json={"ids": [message["id"]]}, headers=clerk)
    assert marked.json() == {"marked": 1, "unread": 0}
    assert world.client.get(f"{BASE}/unread-count", headers=clerk).json() == {"unread": 0}


def test_completing_a_step_notifies_the_next_assignee(world: World) -> None:
    instance_id = _start_permit(world)
    _relay(world)
    detail = instances.get_instance(world.ctx, operator_actor("test"), instance_id)
    task_id = next(task.id for task in detail.tasks if task.status == "open")
    response = world.client.post(
        f"/api/v1/workflow/tasks/{task_id}/complete",
        json={"outcome": "approve", "opinion": "同意"},
        headers=world.token("clerk_a"),
    )
    assert response.status_code == 200, response.text
    _relay(world)
    head = world.client.get(BASE, headers=world.token("head_a")).json()
    assert [item["title"] for item in head["items"]] == ["新待办：审批"]


def test_bad_requests_change_nothing(world: World) -> None:
    _start_permit(world)
    _relay(world)
    clerk = world.token("clerk_a")
    head = world.token("head_a")
    for response in (
        world.client.post(f"{BASE}/read", json={}, headers=clerk),
        world.client.post(f"{BASE}/read", json={"ids": "x"}, headers=clerk),
        world.client.get(f"{BASE}?limit=0", headers=clerk),
        world.client.get(BASE),
    ):
        assert 400 <= response.status_code < 500 and set(response.json()) == ERROR_KEYS
    # someone else's message id is ignored, not revealed
    mine = world.client.get(BASE, headers=clerk).json()["items"][0]["id"]
    assert (
        world.client.post(f"{BASE}/read", json={"ids": [mine]}, headers=head).json()["marked"] == 0
    )
    assert world.client.get(f"{BASE}/unread-count", headers=clerk).json() == {"unread": 1}
    assert world.client.post(f"{BASE}/read", json={"all": True}, headers=clerk).json() == {
        "marked": 1,
        "unread": 0,
    }
