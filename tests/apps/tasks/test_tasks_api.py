"""The tasks API: each bad input from the issue is a 4xx JSON error and changes nothing."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import World
from xietong.kernel import audit

API = "/api/v1/tasks"


def body(title: str, dept: str = "dept-a", **changes: Any) -> dict[str, Any]:
    return {
        "title": title,
        "department_code": dept,
        "planned_start": "2026-03-02",
        "planned_end": "2026-03-31",
        **changes,
    }


def size(world: World) -> int:
    with world.ctx.db.read() as session:
        return audit.tree_size(session)


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code and payload["message_zh"] and payload["message_en"]
    return payload


def test_tasks_over_http(world: World) -> None:
    client = world.client
    head = world.token("head_a")
    clerk = world.token("clerk_a")
    outsider = world.token("clerk_b")
    admin = world.token("admin")
    root = client.post(
        API, json=body("专班总任务", goal_name="覆盖率", goal_target=100), headers=head
    )
    assert root.status_code == 201, root.text
    root_id = root.json()["id"]
    child = client.post(API, json=body("分解任务", parent_id=root_id), headers=head)
    assert child.status_code == 201 and child.json()["level"] == "lead"
    child_id = child.json()["id"]
    later = client.post(API, json=body("后续任务", depends_on=[child_id]), headers=head)
    later_id = later.json()["id"]
    assert later.json()["depends_on"] == [child_id]

    before = size(world)
    error(
        client.post(API, json=body("倒序", planned_end="2026-01-01"), headers=head),
        422,
        "end_before_start",
    )
    payload = error(
        client.post(
            f"{API}/{child_id}/dependencies", json={"depends_on_id": later_id}, headers=head
        ),
        422,
        "dependency_cycle",
    )
    assert set(payload["details"]["task_ids"]) == {child_id, later_id}
    error(
        client.post(
            f"{API}/{child_id}/progress", json={"percent": 120, "text": "x"}, headers=clerk
        ),
        422,
        "progress_range",
    )
    assert (
        client.post(
            f"{API}/{child_id}/progress", json={"percent": 50, "text": "过半"}, headers=clerk
        ).status_code
        == 201
    )
    before = size(world)
    error(
        client.post(
            f"{API}/{child_id}/progress", json={"percent": 10, "text": "回退"}, headers=clerk
        ),
        422,
        "progress_decrease_needs_reason",
    )
    # the other bureau cannot see these tasks, so it cannot depend on them or report
    own = client.post(API, json=body("乙局任务", dept="dept-b"), headers=admin).json()
    error(client.get(f"{API}/{child_id}", headers=outsider), 404, "not_found")
    error(
        client.post(
            f"{API}/{child_id}/progress", json={"percent": 60, "text": "x"}, headers=outsider
        ),
        404,
        "not_found",
    )
    hidden = client.post(
        f"{API}/{own['id']}/dependencies", json={"depends_on_id": child_id}, headers=admin
    )
    assert hidden.status_code == 200  # the administrator sees everything
    assert size(world) == before + 2  # the outsider's calls wrote nothing
    listing = client.get(API, params={"root_id": root_id}, headers=clerk).json()
    assert listing["total"] == 2
    assert client.get(f"{API}/{root_id}/tree", headers=clerk).json()[0]["task"]["id"] == root_id
    patched = client.patch(
        f"{API}/{child_id}", json={"duration_days": 5, "planned_end": None}, headers=head
    )
    assert patched.status_code == 200 and patched.json()["planned_end"] == "2026-03-06"
    error(
        client.patch(f"{API}/{child_id}", json={"title": "x", "expected_version": 1}, headers=head),
        409,
        "version_conflict",
    )
    error(client.post(API, json=body("x", unknown=1), headers=head), 422, "invalid_request")


def test_reading_needs_a_login(world: World) -> None:
    assert world.client.get(API).status_code == 401


def test_closure_without_evidence_is_422(world: World) -> None:
    client = world.client
    head = world.token("head_a")
    task = client.post(API, json=body("可销号任务"), headers=head).json()
    assert (
        client.post(
            f"{API}/{task['id']}/progress", json={"percent": 100, "text": "完成"}, headers=head
        ).status_code
        == 201
    )
    before = size(world)
    error(
        client.post(f"{API}/{task['id']}/closure", json={"evidence": []}, headers=head),
        422,
        "evidence_required",
    )
    assert size(world) == before
    uploaded = client.post(
        "/api/v1/files", files={"file": ("验收单.pdf", b"%PDF-1.7\n ok")}, headers=head
    ).json()
    made = client.post(
        f"{API}/{task['id']}/closure",
        json={"evidence": [{"file_id": uploaded["id"]}], "note": "已完成"},
        headers=head,
    )
    assert made.status_code == 201 and made.json()["status"] == "pending"


def test_supervision_over_http(world: World) -> None:
    from xietong.kernel.access import Role, operator_actor
    from xietong.kernel.org import service as org

    user = org.add_user(world.ctx, operator_actor("t"), "sup_a", "SUP", "secret")
    org.grant_membership(world.ctx, operator_actor("t"), user.id, world.dept_a, Role.SUPERVISOR)
    client = world.client
    head, sup, clerk = world.token("head_a"), world.token("sup_a"), world.token("clerk_a")
    task = client.post(API, json=body("督办对象"), headers=head).json()
    error(
        client.post(f"{API}/{task['id']}/supervisions", json={"message": "x"}, headers=head),
        403,
        "forbidden",
    )
    notice = client.post(
        f"{API}/{task['id']}/supervisions", json={"message": "请加快进度"}, headers=sup
    )
    assert notice.status_code == 201, notice.text
    sid = notice.json()["id"]
    assert (
        client.post(f"{API}/supervisions/{sid}/urge", json={"text": "请反馈"}, headers=sup).json()[
            "urges"
        ]
        == 1
    )
    error(
        client.post(f"{API}/supervisions/{sid}/urge", json={"text": "再催"}, headers=sup),
        409,
        "urged_recently",
    )
    assert (
        client.post(
            f"{API}/supervisions/{sid}/respond", json={"text": "本周完成"}, headers=clerk
        ).json()["status"]
        == "answered"
    )
    kinds = [s["kind"] for s in client.get(f"{API}/supervisions/{sid}/steps", headers=head).json()]
    assert kinds == ["notice", "urge", "respond"]
    assert client.get(f"{API}/{task['id']}/warnings", headers=head).json() == []


def test_analysis_over_http(world: World) -> None:
    client = world.client
    head = world.token("head_a")
    root = client.post(API, json=body("专班", goal_name="完成率"), headers=head).json()
    first = client.post(
        API, json=body("前置", parent_id=root["id"], planned_end="2026-03-06"), headers=head
    ).json()
    client.post(
        API,
        json=body(
            "后续",
            parent_id=root["id"],
            planned_start="2026-03-09",
            planned_end="2026-03-31",
            depends_on=[first["id"]],
        ),
        headers=head,
    )
    result = client.get(f"{API}/analysis", params={"root_id": root["id"]}, headers=head)
    assert result.status_code == 200, result.text
    assert result.json()["tasks"] == 3 and result.json()["critical_path"]
    answer = client.get(
        f"{API}/analysis/what-if", params={"task_id": first["id"], "slip": 3}, headers=head
    )
    assert answer.status_code == 200
    late = answer.json()["late_goals"]
    assert late and late[0]["task_id"] == root["id"] and late[0]["working_days_late"] == 3
    bad = client.get(
        f"{API}/analysis/what-if", params={"task_id": first["id"], "slip": -2}, headers=head
    )
    assert bad.status_code == 422
