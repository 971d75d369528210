"""Organisation endpoints: access rules between departments, bad input, API keys."""

from __future__ import annotations

import io

from openpyxl import Workbook
from stdnum.cn import ric

from xietong.kernel import audit


def _tree_size(world) -> int:
    with world.ctx.db.read() as session:
        return audit.tree_size(session)


def _user_id(world, username: str) -> int:
    admin = world.token("admin")
    users = world.client.get("/api/v1/org/users", headers=admin).json()
    return next(u["id"] for u in users if u["username"] == username)


def test_head_manages_own_department_only(world) -> None:
    head = world.token("head_a")
    clerk_b = _user_id(world, "clerk_b")
    own = world.client.post(
        f"/api/v1/org/users/{clerk_b}/memberships",
        json={"department_id": world.dept_a, "role": "窗口受理"},
        headers=head,
    )
    assert own.status_code == 201, own.text
    before = _tree_size(world)
    other = world.client.post(
        f"/api/v1/org/users/{clerk_b}/memberships",
        json={"department_id": world.dept_b, "role": "审核"},
        headers=head,
    )
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden"
    assert _tree_size(world) == before


def test_clerk_cannot_list_users_or_add_departments(world) -> None:
    clerk = world.token("clerk_a")
    assert world.client.get("/api/v1/org/users", headers=clerk).status_code == 403
    created = world.client.post(
        "/api/v1/org/departments",
        json={"code": "x", "name": "X", "region_code": "430100"},
        headers=clerk,
    )
    assert created.status_code == 403


def test_persons_are_validated_and_masked(world) -> None:
    clerk = world.token("clerk_a")
    body = "43010219900315123"
    number = body + ric.calc_check_digit(body + "0")
    created = world.client.post(
        "/api/v1/org/persons", json={"name": "张晓明", "id_number": number}, headers=clerk
    )
    assert created.status_code == 201, created.text
    person = created.json()
    assert number not in created.text
    assert person["id_number_masked"] == "430102********" + number[-4:]
    before = _tree_size(world)
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    bad = world.client.post(
        "/api/v1/org/persons", json={"name": "张晓明", "id_number": wrong}, headers=clerk
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_id_number"
    bad_uscc = world.client.post(
        "/api/v1/org/organizations",
        json={"name": "某公司", "uscc": "91430102MA4L1XYZ0X"},
        headers=clerk,
    )
    assert bad_uscc.status_code == 422
    assert bad_uscc.json()["code"] == "invalid_uscc"
    assert _tree_size(world) == before


def test_connected_system_authenticates_with_its_key(world) -> None:
    admin = world.token("admin")
    issued = world.client.post(
        "/api/v1/org/systems",
        json={
            "code": "a-sys",
            "name": "甲局业务系统",
            "department_id": world.dept_a,
            "roles": ["window_clerk"],
        },
        headers=admin,
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()["api_key"]
    me = world.client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["kind"] == "system"
    rotated = world.client.post(
        f"/api/v1/org/systems/{issued.json()['system']['id']}/rotate-key", headers=admin
    )
    assert rotated.status_code == 200
    assert world.client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_unknown_ids_are_404(world) -> None:
    admin = world.token("admin")
    response = world.client.post(
        "/api/v1/org/users/99999/memberships",
        json={"department_id": world.dept_a, "role": "审核"},
        headers=admin,
    )
    assert response.status_code == 404
    assert world.client.get("/api/v1/org/persons/424242", headers=admin).status_code == 404


def test_import_reports_rows_and_writes_nothing(world) -> None:
    admin = world.token("admin")
    book = Workbook()
    sheet = book.active
    sheet.title = "部门"
    sheet.append(["部门编码", "部门名称", "简称", "行政区划代码", "上级部门编码"])
    sheet.append(["d1", "一局", "一局", "999999", None])
    users = book.create_sheet("用户")
    users.append(["用户名", "姓名", "初始密码", "手机号"])
    users.append(["u1", "用户一", "demo", "123"])
    members = book.create_sheet("成员")
    members.append(["用户名", "部门编码", "角色"])
    members.append(["u1", "d1", "不存在的角色"])
    buffer = io.BytesIO()
    book.save(buffer)
    before = _tree_size(world)
    response = world.client.post(
        "/api/v1/org/import",
        files={"file": ("org.xlsx", buffer.getvalue(), "application/octet-stream")},
        headers=admin,
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "import_invalid"
    errors = body["details"]["errors"]
    assert {(e["sheet"], e["row"]) for e in errors} >= {("部门", 2), ("用户", 2), ("成员", 2)}
    assert _tree_size(world) == before
    not_xlsx = world.client.post(
        "/api/v1/org/import", files={"file": ("x.xlsx", b"hello", "text/plain")}, headers=admin
    )
    assert not_xlsx.status_code == 422
    assert not_xlsx.json()["code"] == "invalid_xlsx"
