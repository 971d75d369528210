"""The workflow API end to end: deploy BPMN, start, work the todo list, operations."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World
from xietong.kernel.access import Role, operator_actor
from xietong.kernel.org import service

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
             xmlns:xietong="https://xietong.org/bpmn"
             xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
             targetNamespace="https://xietong.org/test">
  <process id="permit" name="许可审批" isExecutable="true">
    <startEvent id="start"/>
    <userTask id="accept" name="受理" camunda:assignee="clerk_a"/>
    <userTask id="approve" name="审批" camunda:assignee="head_a"/>
    <exclusiveGateway id="xor" default="to_refused"/>
    <endEvent id="granted"/>
    <endEvent id="refused"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <sequenceFlow id="f2" sourceRef="accept" targetRef="approve"/>
    <sequenceFlow id="f3" sourceRef="approve" targetRef="xor"/>
    <sequenceFlow id="to_granted" sourceRef="xor" targetRef="granted">
      <conditionExpression>${outcome == 'approve'}</conditionExpression>
    </sequenceFlow>
    <sequenceFlow id="to_refused" sourceRef="xor" targetRef="refused"/>
  </process>
</definitions>
"""


def _user_id(world: World, username: str) -> int:
    found = service.get_user_by_username(world.ctx, username)
    assert found is not None
    return found.id


def _deploy(world: World) -> dict[str, Any]:
    response = world.client.post(
        "/api/v1/workflow/definitions",
        content=BPMN.encode(),
        headers={**world.token("admin"), "Content-Type": "application/xml"},
    )
    assert response.status_code == 201, response.text
    return response.json()[0]


def _start(world: World, username: str = "clerk_a", **extra: Any) -> dict[str, Any]:
    response = world.client.post(
        "/api/v1/workflow/instances",
        json={"key": "permit", "business_key": "XK-1", "department_id": world.dept_a, **extra},
        headers=world.token(username),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _todo(world: World, username: str) -> dict[str, Any]:
    response = world.client.get("/api/v1/workflow/tasks/todo", headers=world.token(username))
    assert response.status_code == 200, response.text
    return response.json()


def test_deploy_start_and_complete_through_the_api(world: World) -> None:
    deployed = _deploy(world)
    assert (deployed["key"], deployed["version"]) == ("permit", 1)
    listed = world.client.get("/api/v1/workflow/definitions", headers=world.token("clerk_a"))
    assert [d["key"] for d in listed.json()] == ["permit"]
    version = world.client.get(
        "/api/v1/workflow/definitions/permit/versions/1", headers=world.token("clerk_a")
    )
    assert version.status_code == 200 and "<process" in version.json()["source"]

    started = _start(world)
    assert started["status"] == "running"
    todo = _todo(world, "clerk_a")
    assert todo["total"] == 1
    task = todo["items"][0]
    assert (task["node_id"], task["business_key"]) == ("accept", "XK-1")

    detail = world.client.get(
        f"/api/v1/workflow/tasks/{task['id']}", headers=world.token("clerk_a")
    ).json()
    assert "complete" in detail["operations"]

    denied = world.client.post(
        f"/api/v1/workflow/tasks/{task['id']}/complete",
        json={"outcome": "approve"},
        headers=world.token("clerk_b"),
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "not_task_holder"

    done = world.client.post(
        f"/api/v1/workflow/tasks/{task['id']}/complete",
        json={"outcome": "approve", "opinion": "材料齐全", "version": task["version"]},
        headers=world.token("clerk_a"),
    )
    assert done.status_code == 200, done.text
    again = world.client.post(
        f"/api/v1/workflow/tasks/{task['id']}/complete",
        json={"outcome": "approve"},
        headers=world.token("clerk_a"),
    )
    assert again.status_code == 409 and again.json()["code"] == "task_already_completed"

    approve = _todo(world, "head_a")["items"][0]
    world.client.post(
        f"/api/v1/workflow/tasks/{approve['id']}/complete",
        json={"outcome": "approve", "opinion": "同意"},
        headers=world.token("head_a"),
    ).raise_for_status()
    instance = world.client.get(
        f"/api/v1/workflow/instances/{started['id']}", headers=world.token("clerk_a")
    ).json()
    assert instance["instance"]["status"] == "completed"
    assert [h["kind"] for h in instance["history"]].count("task.completed") == 2
    done_list = world.client.get(
        "/api/v1/workflow/tasks/done", headers=world.token("clerk_a")
    ).json()
    assert done_list["total"] == 1

    xes = world.client.get(
        "/api/v1/workflow/history.xes", params={"key": "permit"}, headers=world.token("auditor")
    )
    assert xes.status_code == 200 and b"<trace>" in xes.content
    assert (
        world.client.get(
            "/api/v1/workflow/history.xes", params={"key": "permit"}, headers=world.token("clerk_a")
        ).status_code
        == 403
    )


def test_operations_through_the_api(world: World) -> None:
    _deploy(world)
    started = _start(world)
    task = _todo(world, "clerk_a")["items"][0]
    base = f"/api/v1/workflow/tasks/{task['id']}"
    clerk, head = world.token("clerk_a"), world.token("head_a")

    moved = world.client.post(
        f"{base}/transfer", json={"user_id": _user_id(world, "head_a")}, headers=clerk
    )
    assert moved.status_code == 200, moved.text
    assert world.client.post(f"{base}/reclaim", headers=clerk).status_code == 200
    lent = world.client.post(
        f"{base}/delegate", json={"user_id": _user_id(world, "clerk_b")}, headers=clerk
    )
    assert lent.json()["status"] == "delegated"
    back = world.client.post(
        f"{base}/resolve", json={"opinion": "已核"}, headers=world.token("clerk_b")
    )
    assert back.json()["status"] == "open"
    added = world.client.post(
        f"{base}/add-signer",
        json={"user_ids": [_user_id(world, "head_a")], "position": "parallel"},
        headers=clerk,
    )
    assert added.status_code == 201, added.text
    removed = world.client.post(
        f"/api/v1/workflow/tasks/{added.json()[0]['id']}/remove-signer", json={}, headers=clerk
    )
    assert removed.json()["status"] == "cancelled"
    unknown = world.client.post(f"{base}/add-signer", json={"user_ids": [987654]}, headers=clerk)
    assert unknown.status_code == 404

    world.client.post(f"{base}/complete", json={}, headers=clerk).raise_for_status()
    assert world.client.post(f"{base}/withdraw", headers=clerk).status_code == 200
    world.client.post(f"{base}/complete", json={}, headers=clerk).raise_for_status()

    approve = _todo(world, "head_a")["items"][0]
    never = world.client.post(
        f"/api/v1/workflow/tasks/{approve['id']}/send-back",
        json={"node_id": "nowhere"},
        headers=head,
    )
    assert never.status_code == 422
    sent = world.client.post(
        f"/api/v1/workflow/tasks/{approve['id']}/send-back",
        json={"node_id": "accept", "opinion": "补正"},
        headers=head,
    )
    assert sent.status_code == 200, sent.text
    again = _todo(world, "clerk_a")["items"][0]
    assert again["node_id"] == "accept"
    urged = world.client.post(
        f"/api/v1/workflow/tasks/{again['id']}/urge", json={"message": "请尽快"}, headers=head
    )
    assert urged.status_code == 200, urged.text
    too_soon = world.client.post(
        f"/api/v1/workflow/tasks/{again['id']}/urge", json={}, headers=head
    )
    assert too_soon.status_code == 429

    copied = world.client.post(
        f"/api/v1/workflow/instances/{started['id']}/cc",
        json={"user_ids": [_user_id(world, "clerk_b")]},
        headers=clerk,
    )
    assert copied.status_code == 201, copied.text
    inbox = world.client.get("/api/v1/workflow/tasks/cc", headers=world.token("clerk_b")).json()
    assert (inbox["total"], inbox["unread"]) == (1, 1)
    read = world.client.post(
        f"/api/v1/workflow/tasks/cc/{inbox['items'][0]['id']}/read",
        headers=world.token("clerk_b"),
    )
    assert read.json()["read_at"] is not None

    instance = f"/api/v1/workflow/instances/{started['id']}"
    assert world.client.post(f"{instance}/suspend", json={}, headers=clerk).status_code == 403
    assert world.client.post(f"{instance}/suspend", json={}, headers=head).status_code == 200
    blocked = world.client.post(
        f"/api/v1/workflow/tasks/{again['id']}/complete", json={}, headers=clerk
    )
    assert blocked.status_code == 409 and blocked.json()["code"] == "instance_suspended"
    assert world.client.post(f"{instance}/resume", headers=head).status_code == 200
    jumped = world.client.post(
        f"{instance}/jump", json={"node_id": "approve"}, headers=world.token("admin")
    )
    assert jumped.status_code == 200, jumped.text
    ended = world.client.post(f"{instance}/terminate", json={"reason": "撤件"}, headers=head)
    assert ended.json()["status"] == "terminated"
    # clerk_b got a copy (抄送), so reads it; a colleague of clerk_b with no task, no
    # copy and no part in it cannot
    assert world.client.get(instance, headers=world.token("clerk_b")).status_code == 200
    op = operator_actor("test")
    colleague = service.add_user(world.ctx, op, "clerk_b2", "B2", "secret")
    service.grant_membership(world.ctx, op, colleague.id, world.dept_b, Role.WINDOW_CLERK)
    hidden = world.client.get(instance, headers=world.token("clerk_b2"))
    assert hidden.status_code == 404


def test_yaml_messages_and_migration_through_the_api(world: World) -> None:
    template = """
key: paid
name: 缴费
steps:
  - id: wait_payment
    wait: {message: payment, correlation: "${order}"}
  - id: check
    task: {assignee: clerk_a}
"""
    deployed = world.client.post(
        "/api/v1/workflow/definitions",
        json={"format": "yaml", "source": template},
        headers=world.token("admin"),
    )
    assert deployed.status_code == 201, deployed.text
    started = world.client.post(
        "/api/v1/workflow/instances",
        json={"key": "paid", "variables": {"order": "O-1"}, "department_id": world.dept_a},
        headers=world.token("clerk_a"),
    ).json()
    missing = world.client.post(
        "/api/v1/workflow/messages",
        json={"name": "payment", "key": "O-404"},
        headers=world.token("clerk_a"),
    )
    assert missing.status_code == 404
    delivered = world.client.post(
        "/api/v1/workflow/messages",
        json={"name": "payment", "key": "O-1", "variables": {"amount": 12}},
        headers=world.token("clerk_a"),
    )
    assert delivered.status_code == 200, delivered.text
    assert _todo(world, "clerk_a")["items"][0]["instance_id"] == started["id"]
    world.client.post(
        "/api/v1/workflow/definitions",
        json={"format": "yaml", "source": template},
        headers=world.token("admin"),
    ).raise_for_status()
    migrated = world.client.post(
        "/api/v1/workflow/instances/migrate",
        json={"key": "paid", "from_version": 1, "to_version": 2},
        headers=world.token("admin"),
    )
    assert migrated.json() == {"migrated": [started["id"]]}
    bad = world.client.post(
        "/api/v1/workflow/definitions",
        content=b"<definitions",
        headers={**world.token("admin"), "Content-Type": "application/xml"},
    )
    assert bad.status_code == 422


CROSS_DEPARTMENT = (
    BPMN.replace('id="permit"', 'id="cosign"')
    .replace("https://xietong.org/bpmn", "http://xietong.org/schema/1.0/bpmn")
    .replace(
        'camunda:assignee="head_a"',
        'xietong:department="dept-b" xietong:candidateRoles="window_clerk"',
    )
)


def test_a_candidate_of_another_department_may_open_the_case(world: World) -> None:
    """The task page shows its instance: a candidate must be able to read it."""
    response = world.client.post(
        "/api/v1/workflow/definitions",
        content=CROSS_DEPARTMENT.encode(),
        headers={**world.token("admin"), "Content-Type": "application/xml"},
    )
    assert response.status_code == 201, response.text
    started = _start(world, key="cosign")
    accept = _todo(world, "clerk_a")["items"][0]
    world.client.post(
        f"/api/v1/workflow/tasks/{accept['id']}/complete",
        json={"outcome": "approve"},
        headers=world.token("clerk_a"),
    ).raise_for_status()
    case = f"/api/v1/workflow/instances/{started['id']}"
    # clerk_b is neither in the instance's department nor has touched it yet
    seen = world.client.get(case, headers=world.token("clerk_b"))
    assert seen.status_code == 200, seen.text
    assert [t["node_id"] for t in seen.json()["tasks"] if t["status"] == "open"] == ["approve"]
    # someone who may not work the open task still does not see the case
    stranger = service.add_user(world.ctx, operator_actor("test"), "clerk_c", "C", "secret")
    service.grant_membership(
        world.ctx, operator_actor("test"), stranger.id, world.dept_b, Role.HEAD
    )
    assert world.client.get(case, headers=world.token("clerk_c")).status_code == 404
