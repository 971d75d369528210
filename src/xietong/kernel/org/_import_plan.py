"""Validation and write plan for an organisation workbook (used by ``importer``).

``make_plan`` checks every row against the rules the org commands apply and against the
database, collecting every error instead of stopping at the first; ``Plan.apply`` then
writes the planned changes into the caller's session. Departments may name parents that
appear later in the sheet, so parents are resolved after all rows are read, and a
parent chain that loops back (in the sheet or through existing departments) is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Role
from xietong.kernel.errors import InvalidInput
from xietong.kernel.keys import Keys
from xietong.kernel.org import _checks as checks
from xietong.kernel.org.identity import mask_mobile, normalize_mobile
from xietong.kernel.org.models import Department, Membership, Region, User
from xietong.kernel.org.service import USER_MOBILE_AD
from xietong.kernel.org.workbook import SHEETS, Row, Sheet
from xietong.kernel.passwords import hash_password

T = TypeVar("T")
ErrorTuple = tuple[str, int, str, str, str]  # sheet, row, column, message_zh, message_en


@dataclass
class DeptOp:
    row: int
    code: str
    name: str
    short_name: str | None
    region_code: str
    parent_code: str | None
    existing: Department | None
    changed: bool = False  # computed before apply() changes ``existing``


@dataclass
class UserOp:
    username: str
    display_name: str
    password: str
    mobile: str | None
    mobile_given: bool  # the sheet has a 手机号 column: a blank cell clears the number
    existing: User | None
    changed: bool = False


@dataclass
class Plan:
    departments: list[DeptOp] = field(default_factory=list)
    users: list[UserOp] = field(default_factory=list)
    memberships: list[tuple[str, str, Role]] = field(default_factory=list)
    errors: list[ErrorTuple] = field(default_factory=list)
    db_departments: dict[str, Department] = field(default_factory=dict)
    db_users: dict[str, User] = field(default_factory=dict)
    # every code / username the sheets name, valid rows or not: a membership naming a
    # user whose row has an error gets that row's error, not a second "unknown user"
    sheet_departments: set[str] = field(default_factory=set)
    sheet_users: set[str] = field(default_factory=set)

    def new_users(self) -> list[UserOp]:
        return [op for op in self.users if op.existing is None]

    def created(self) -> dict[str, int]:
        return {
            "departments": sum(op.existing is None for op in self.departments),
            "users": len(self.new_users()),
            "memberships": len(self.memberships),
        }

    def updated(self) -> dict[str, int]:
        return {
            "departments": sum(op.changed for op in self.departments),
            "users": sum(op.changed for op in self.users),
        }

    def apply(self, session: Session, keys: Keys, hashes: dict[str, str]) -> None:
        now = clock.now()
        rows: list[tuple[DeptOp, Department]] = []
        for op in self.departments:
            dept = op.existing or Department(code=op.code, active=True, created_at=now)
            dept.name, dept.short_name, dept.region_code = op.name, op.short_name, op.region_code
            session.add(dept)
            rows.append((op, dept))
        session.flush()
        id_of = {dept.code: dept.id for dept in self.db_departments.values()}
        id_of.update({dept.code: dept.id for _op, dept in rows})
        for op, dept in rows:
            parent_id = id_of[op.parent_code] if op.parent_code else None
            if dept.parent_id != parent_id:
                dept.parent_id = parent_id
        users = dict(self.db_users)
        for uop in self.users:
            user = uop.existing
            if user is None:
                password_hash = hashes.get(uop.username) or hash_password(uop.password)
                user = User(username=uop.username, password_hash=password_hash, created_at=now)
                user.active = True
                users[uop.username] = user
                session.add(user)
            elif not uop.changed:
                continue  # unchanged: leave the row (and its mobile ciphertext) alone
            user.display_name = uop.display_name
            if uop.mobile_given or uop.existing is None:
                cipher = keys.encrypt(uop.mobile.encode(), USER_MOBILE_AD) if uop.mobile else None
                user.mobile_cipher = cipher
                user.mobile_masked = mask_mobile(uop.mobile) if uop.mobile else None
        session.flush()
        for username, dept_code, role in self.memberships:
            session.add(
                Membership(
                    user_id=users[username].id,
                    department_id=id_of[dept_code],
                    role=role.value,
                    created_at=now,
                )
            )
        session.flush()


class _Checker:
    """Runs one check on one cell and files its ``InvalidInput`` as a row error."""

    def __init__(self, errors: list[ErrorTuple]) -> None:
        self.errors = errors

    def error(self, sheet: Sheet, row: int, key: str, zh: str, en: str) -> None:
        column = sheet.headers.get(key) or next(c.zh for c in sheet.spec.columns if c.key == key)
        self.errors.append((sheet.spec.zh, row, column, zh, en))

    def run(
        self, sheet: Sheet, row: Row, key: str, check: Callable[..., T], *args: Any, **kw: Any
    ) -> T | None:
        if key not in sheet.headers:
            return None  # a missing column is reported once, on the header row
        try:
            return check(row.values[key], *args, **kw)
        except InvalidInput as bad:
            self.error(sheet, row.number, key, bad.message_zh, bad.message_en)
            return None


def _existing_regions(session: Session, codes: Iterable[str]) -> set[str]:
    wanted, found = sorted(set(codes)), set()
    for start in range(0, len(wanted), 500):  # stay well under bind-parameter limits
        chunk = wanted[start : start + 500]
        found |= set(session.scalars(select(Region.code).where(Region.code.in_(chunk))))
    return found


def make_plan(session: Session, sheets: dict[str, Sheet], keys: Keys) -> Plan:
    plan = Plan()
    plan.db_departments = {d.code: d for d in session.scalars(select(Department))}
    plan.db_users = {u.username: u for u in session.scalars(select(User))}
    check = _Checker(plan.errors)
    for sheet in sheets.values():
        for column in sheet.missing:
            check.errors.append(
                (
                    sheet.spec.zh,
                    1,
                    column.zh,
                    f"缺少“{column.zh}”列",
                    f"Missing column {column.key}",
                )
            )
    if "departments" in sheets:
        _plan_departments(session, plan, sheets["departments"], check)
    if "users" in sheets:
        _plan_users(plan, sheets["users"], check, keys)
    if "memberships" in sheets:
        _plan_memberships(session, plan, sheets["memberships"], check)
    plan.errors.sort(key=lambda error: ([spec.zh for spec in SHEETS].index(error[0]), error[1]))
    return plan


def _plan_departments(session: Session, plan: Plan, sheet: Sheet, check: _Checker) -> None:
    seen: dict[str, int] = {}
    plan.sheet_departments = {row.values.get("code", "") for row in sheet.rows}
    by_id = {dept.id: code for code, dept in plan.db_departments.items()}
    db_parents = {code: by_id.get(d.parent_id) for code, d in plan.db_departments.items()}
    for row in sheet.rows:
        code = check.run(sheet, row, "code", checks.code, "部门编码", "Department code")
        name = check.run(
            sheet, row, "name", checks.text, "部门名称", "Department name", 200, code="invalid_name"
        )
        short = check.run(sheet, row, "short_name", _optional_text, 100)
        region = check.run(sheet, row, "region_code", checks.region_code)
        parent = check.run(sheet, row, "parent_code", _optional_code)
        if code and code in seen:
            check.error(
                sheet,
                row.number,
                "code",
                f"部门编码重复（第 {seen[code]} 行已有）",
                f"Duplicate department code (also on row {seen[code]})",
            )
            continue
        if code:
            seen[code] = row.number
        if code and name and region:
            existing = plan.db_departments.get(code)
            # An optional column left out of the sheet keeps what is stored: a sheet
            # without 上级部门编码 must not flatten the tree.
            if existing is not None and "short_name" not in sheet.headers:
                short = existing.short_name
            if existing is not None and "parent_code" not in sheet.headers:
                parent = db_parents[code]
            plan.departments.append(DeptOp(row.number, code, name, short, region, parent, existing))
    known_regions = _existing_regions(session, (op.region_code for op in plan.departments))
    parents = dict(db_parents)
    parents.update({op.code: op.parent_code for op in plan.departments})
    for op in plan.departments:
        if op.existing is not None:
            dept = op.existing
            current = (dept.name, dept.short_name, dept.region_code, db_parents[op.code])
            op.changed = current != (op.name, op.short_name, op.region_code, op.parent_code)
        if op.region_code not in known_regions:
            check.error(
                sheet,
                op.row,
                "region_code",
                f"行政区划不存在：{op.region_code}",
                f"Unknown region code: {op.region_code}",
            )
        if op.parent_code is None:
            continue
        if op.parent_code not in seen and op.parent_code not in plan.db_departments:
            check.error(
                sheet,
                op.row,
                "parent_code",
                f"上级部门不存在：{op.parent_code}",
                f"Unknown parent department: {op.parent_code}",
            )
        elif _loops(parents, op.code):
            check.error(
                sheet,
                op.row,
                "parent_code",
                "上级部门形成循环",
                "The parent departments form a loop",
            )


def _loops(parents: dict[str, str | None], start: str) -> bool:
    node, steps = parents.get(start), 0
    while node is not None and steps <= len(parents):
        if node == start:
            return True
        node, steps = parents.get(node), steps + 1
    return False


def _plan_users(plan: Plan, sheet: Sheet, check: _Checker, keys: Keys) -> None:
    seen: dict[str, int] = {}
    plan.sheet_users = {row.values.get("username", "") for row in sheet.rows}
    mobile_given = "mobile" in sheet.headers
    for row in sheet.rows:
        username = check.run(sheet, row, "username", checks.username)
        display = check.run(
            sheet,
            row,
            "display_name",
            checks.text,
            "姓名",
            "Display name",
            100,
            code="invalid_name",
        )
        mobile = check.run(sheet, row, "mobile", _optional_mobile)
        if username and username in seen:
            check.error(
                sheet,
                row.number,
                "username",
                f"用户名重复（第 {seen[username]} 行已有）",
                f"Duplicate username (also on row {seen[username]})",
            )
            continue
        if username:
            seen[username] = row.number
        existing = plan.db_users.get(username or "")
        password = row.values.get("password", "")
        if existing is None and username:
            if not password:
                check.error(
                    sheet,
                    row.number,
                    "password",
                    "新用户须填写初始密码",
                    "A new user needs an initial password",
                )
            else:
                password = check.run(sheet, row, "password", checks.password) or ""
        if username and display:
            op = UserOp(username, display, password, mobile, mobile_given, existing)
            if existing is not None:
                current = _current_mobile(existing, keys)
                op.changed = display != existing.display_name or (
                    mobile_given and mobile != current
                )
            plan.users.append(op)


def _plan_memberships(session: Session, plan: Plan, sheet: Sheet, check: _Checker) -> None:
    held = {
        tuple(row)
        for row in session.execute(
            select(Membership.user_id, Membership.department_id, Membership.role)
        )
    }
    planned: set[tuple[str, str, str]] = set()
    for row in sheet.rows:
        username, dept_code = row.values.get("username", ""), row.values.get("department_code", "")
        role = check.run(sheet, row, "role", checks.role)
        user = plan.db_users.get(username)
        if "username" in sheet.headers and not username:
            check.error(sheet, row.number, "username", "用户名不能为空", "Username is required")
            continue
        if "username" in sheet.headers and username not in plan.sheet_users and user is None:
            check.error(
                sheet,
                row.number,
                "username",
                f"用户不存在：{username}",
                f"Unknown user: {username}",
            )
            continue
        dept = plan.db_departments.get(dept_code)
        if "department_code" in sheet.headers and not dept_code:
            check.error(
                sheet,
                row.number,
                "department_code",
                "部门编码不能为空",
                "Department code is required",
            )
            continue
        if (
            "department_code" in sheet.headers
            and dept_code not in plan.sheet_departments
            and dept is None
        ):
            check.error(
                sheet,
                row.number,
                "department_code",
                f"部门不存在：{dept_code}",
                f"Unknown department: {dept_code}",
            )
            continue
        if role is None or (username, dept_code, role.value) in planned:
            continue
        planned.add((username, dept_code, role.value))
        if user is not None and dept is not None and (user.id, dept.id, role.value) in held:
            continue
        plan.memberships.append((username, dept_code, role))


def _optional_text(value: str, max_len: int) -> str | None:
    if len(value) > max_len:
        raise InvalidInput(f"过长（最多 {max_len} 个字符）", f"Too long (at most {max_len})")
    return value or None


def _optional_code(value: str) -> str | None:
    return checks.code(value, "上级部门编码", "Parent code") if value else None


def _optional_mobile(value: str) -> str | None:
    return normalize_mobile(value) if value else None


def _current_mobile(user: User, keys: Keys) -> str | None:
    if user.mobile_cipher is None:
        return None
    return keys.decrypt(user.mobile_cipher, USER_MOBILE_AD).decode("ascii")
