"""The organisation workbook: import all-or-nothing with row-level errors, template, export."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xietong.kernel import audit
from xietong.kernel.access import Actor, Role
from xietong.kernel.context import Context
from xietong.kernel.errors import Forbidden, InvalidInput
from xietong.kernel.org import (
    actor_for_user,
    create_region,
    export_org_xlsx,
    import_org_xlsx,
    org_template_xlsx,
)
from xietong.kernel.org.models import Department, Membership, User
from xietong.kernel.passwords import check_password as verify_password
from xietong.plugins import plugin_manager

ADMIN = Actor(kind="user", id=None, name="admin", scopes={Role.ADMIN: frozenset()})
DEPT_HEADER = ["部门编码", "部门名称", "简称", "行政区划代码", "上级部门编码"]
USER_HEADER = ["用户名", "姓名", "初始密码", "手机号"]
MEMBER_HEADER = ["用户名", "部门编码", "角色"]


@pytest.fixture(autouse=True)
def _actions() -> None:
    plugin_manager()


@pytest.fixture
def regions(ctx: Context) -> Context:
    create_region(ctx, ADMIN, "430000", "湖南省", "province")
    create_region(ctx, ADMIN, "430100", "长沙市", "city", "430000")
    create_region(ctx, ADMIN, "430102", "芙蓉区", "county", "430100")
    return ctx


def workbook(sheets: dict[str, list[list[Any]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def good_sheets() -> dict[str, list[list[Any]]]:
    return {
        "部门": [
            DEPT_HEADER,
            # the child comes first: parents may be defined later in the sheet
            ["zwfw-sp", "审批科", "", 430100, "zwfw"],
            ["zwfw", "长沙市政务服务局", "政务局", "430100", None],
            ["frq-zwfw", "芙蓉区政务服务中心", None, "430102", ""],
        ],
        "用户": [
            USER_HEADER,
            ["zhangsan", "张三", "pass1234", 13812345678],
            ["lisi", "李四", 1234, None],
        ],
        "成员": [
            MEMBER_HEADER,
            ["zhangsan", "zwfw", "负责人"],
            ["lisi", "frq-zwfw", "window_clerk"],
            ["lisi", "frq-zwfw", "窗口受理"],  # the same membership twice: counted once
        ],
    }


def password_hashes(session: Session) -> dict[str, str]:
    rows = session.execute(select(User.username, User.password_hash))
    return {username: password_hash for username, password_hash in rows}


def tree_size(ctx: Context) -> int:
    with ctx.db.read() as session:
        return audit.tree_size(session)


def count(ctx: Context, model: type) -> int:
    with ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_good_workbook_imports_in_one_audited_unit(regions: Context, tmp_path: Path) -> None:
    ctx = regions
    path = tmp_path / "org.xlsx"
    path.write_bytes(workbook(good_sheets()))
    before = tree_size(ctx)
    report = import_org_xlsx(ctx, ADMIN, path)
    assert report.ok, report.errors
    assert report.created == {"departments": 3, "users": 2, "memberships": 2}
    assert report.updated == {"departments": 0, "users": 0}
    assert len(report.sha256) == 64
    assert tree_size(ctx) == before + 1
    with ctx.db.read() as session:
        depts = {d.code: d for d in session.scalars(select(Department))}
        assert depts["zwfw-sp"].parent_id == depts["zwfw"].id
        assert depts["zwfw-sp"].region_code == "430100"
        assert depts["zwfw"].short_name == "政务局"
        zhang = session.scalar(select(User).where(User.username == "zhangsan"))
        assert verify_password(zhang.password_hash, "pass1234")
        assert zhang.mobile_masked == "138****5678"
        lisi = session.scalar(select(User).where(User.username == "lisi"))
        assert verify_password(lisi.password_hash, "1234")
        actor = actor_for_user(session, zhang)
        assert actor.scopes[Role.HEAD] == {depts["zwfw"].id, depts["zwfw-sp"].id}


def test_reimport_is_idempotent_and_updates_what_changed(regions: Context) -> None:
    ctx = regions
    data = workbook(good_sheets())
    import_org_xlsx(ctx, ADMIN, data)
    with ctx.db.read() as session:
        hashes = password_hashes(session)
    again = import_org_xlsx(ctx, ADMIN, data)
    assert again.created == {"departments": 0, "users": 0, "memberships": 0}
    assert again.updated == {"departments": 0, "users": 0}
    changed = good_sheets()
    changed["部门"][2][1] = "长沙市数据资源局"
    changed["用户"][1][2] = "another-password"  # initial passwords never overwrite
    changed["用户"][2][3] = "13900001111"
    third = import_org_xlsx(ctx, ADMIN, workbook(changed))
    assert third.updated == {"departments": 1, "users": 1}
    assert count(ctx, Department) == 3 and count(ctx, Membership) == 2
    with ctx.db.read() as session:
        assert password_hashes(session) == hashes
        name = session.scalar(select(Department.name).where(Department.code == "zwfw"))
    assert name == "长沙市数据资源局"


def test_bad_workbook_reports_every_error_and_writes_nothing(regions: Context) -> None:
    ctx = regions
    sheets = {
        "部门": [
            DEPT_HEADER,
            ["d1", "一局", "", "43010", ""],  # malformed region code
            ["d2", "二局", "", "439999", ""],  # unknown region
            ["d3", "三局", "", "430100", "nowhere"],  # unknown parent
            ["d1", "一局重复", "", "430100", ""],  # duplicate code
        ],
        "用户": [
            USER_HEADER,
            ["wang", "王五", "secret", "12345"],  # invalid mobile
            ["wang", "王五二", "secret", ""],  # duplicate username
            ["zhao", "赵六", "", ""],  # a new user without a password
        ],
        "成员": [
            MEMBER_HEADER,
            ["wang", "d3", "门卫"],  # unknown role
            ["ghost", "d3", "审核"],  # unknown user
            ["wang", "dx", "审核"],  # unknown department
        ],
    }
    before = tree_size(ctx)
    report = import_org_xlsx(ctx, ADMIN, workbook(sheets))
    assert not report.ok
    assert report.created == {} and report.updated == {}
    found = {(e.sheet, e.row, e.column) for e in report.errors}
    assert found == {
        ("部门", 2, "行政区划代码"),
        ("部门", 3, "行政区划代码"),
        ("部门", 4, "上级部门编码"),
        ("部门", 5, "部门编码"),
        ("用户", 2, "手机号"),
        ("用户", 3, "用户名"),
        ("用户", 4, "初始密码"),
        ("成员", 2, "角色"),
        ("成员", 3, "用户名"),
        ("成员", 4, "部门编码"),
    }
    assert all(e.message_zh and e.message_en for e in report.errors)
    assert tree_size(ctx) == before
    assert count(ctx, Department) == 0 and count(ctx, User) == 0


def test_missing_column_and_parent_loop(regions: Context) -> None:
    ctx = regions
    sheets = {
        "部门": [
            DEPT_HEADER,
            ["p", "甲", "", "430100", "q"],
            ["q", "乙", "", "430100", "p"],
        ],
        "用户": [["用户名", "初始密码"], ["wang", "secret"]],
    }
    report = import_org_xlsx(ctx, ADMIN, workbook(sheets))
    found = {(e.sheet, e.row, e.column) for e in report.errors}
    assert found == {
        ("部门", 2, "上级部门编码"),
        ("部门", 3, "上级部门编码"),
        ("用户", 1, "姓名"),
    }
    assert count(ctx, Department) == 0


def test_english_headers_and_dry_run(regions: Context) -> None:
    ctx = regions
    sheets = {
        "departments": [["code", "name", "region_code"], ["d", "一局", "430100"]],
        "users": [["username", "display_name", "password"], ["wang", "王五", "secret"]],
        "memberships": [["username", "department_code", "role"], ["wang", "d", "reviewer"]],
    }
    before = tree_size(ctx)
    report = import_org_xlsx(ctx, ADMIN, workbook(sheets), dry_run=True)
    assert report.ok and report.dry_run
    assert report.created == {"departments": 1, "users": 1, "memberships": 1}
    assert tree_size(ctx) == before and count(ctx, Department) == 0
    assert import_org_xlsx(ctx, ADMIN, workbook(sheets)).ok
    assert count(ctx, Membership) == 1


def test_not_an_xlsx_file(regions: Context) -> None:
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    for data in (b"department,name\n", b"", plain_zip.getvalue()):
        with pytest.raises(InvalidInput) as caught:
            import_org_xlsx(regions, ADMIN, data)
        assert caught.value.code == "invalid_xlsx"
    with pytest.raises(InvalidInput) as caught:
        import_org_xlsx(regions, ADMIN, workbook({"Sheet1": [["a"]]}))
    assert caught.value.code == "invalid_org_workbook"


def test_only_org_managers_import(regions: Context) -> None:
    head = Actor(kind="user", id=1, name="head", scopes={Role.HEAD: frozenset({1})})
    with pytest.raises(Forbidden):
        import_org_xlsx(regions, head, workbook(good_sheets()))
    with pytest.raises(Forbidden):
        export_org_xlsx(regions, head)


def test_template_and_export_round_trip(regions: Context) -> None:
    ctx = regions
    template = openpyxl.load_workbook(io.BytesIO(org_template_xlsx()), read_only=True)
    headers = {
        name: [c.value for c in next(template[name].iter_rows(max_row=1))]
        for name in ("部门", "用户", "成员")
    }
    assert headers == {"部门": DEPT_HEADER, "用户": USER_HEADER, "成员": MEMBER_HEADER}
    assert import_org_xlsx(ctx, ADMIN, org_template_xlsx()).created == {
        "departments": 0,
        "users": 0,
        "memberships": 0,
    }

    import_org_xlsx(ctx, ADMIN, workbook(good_sheets()))
    exported = export_org_xlsx(ctx, ADMIN)
    book = openpyxl.load_workbook(io.BytesIO(exported), read_only=True)
    users = list(book["用户"].iter_rows(min_row=2, values_only=True))
    assert sorted(users) == [
        ("lisi", "李四", None, None),
        ("zhangsan", "张三", None, "13812345678"),
    ]
    report = import_org_xlsx(ctx, ADMIN, exported)
    assert report.ok, report.errors
    assert report.created == {"departments": 0, "users": 0, "memberships": 0}
    assert report.updated == {"departments": 0, "users": 0}


def test_left_out_columns_and_sheets_keep_what_is_stored(regions: Context) -> None:
    ctx = regions
    import_org_xlsx(ctx, ADMIN, workbook(good_sheets()))
    only_departments = {
        "部门": [
            ["部门编码", "部门名称", "行政区划代码"],
            ["zwfw-sp", "审批科", "430100"],
            ["zwfw", "长沙市政务服务局", "430100"],
        ]
    }
    report = import_org_xlsx(ctx, ADMIN, workbook(only_departments))
    assert report.updated == {"departments": 0, "users": 0}
    with ctx.db.read() as session:
        depts = {d.code: d for d in session.scalars(select(Department))}
        assert depts["zwfw-sp"].parent_id == depts["zwfw"].id
        assert depts["zwfw"].short_name == "政务局"
    # a member row naming a user whose own row is wrong reports that row only
    sheets = {
        "用户": [USER_HEADER, ["wang", "", "secret", ""]],
        "成员": [MEMBER_HEADER, ["wang", "zwfw", "审核"]],
    }
    errors = import_org_xlsx(ctx, ADMIN, workbook(sheets)).errors
    assert [(e.sheet, e.row, e.column) for e in errors] == [("用户", 2, "姓名")]
