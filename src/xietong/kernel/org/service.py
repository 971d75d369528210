"""Org commands and queries: regions, departments, users and their memberships.

Every command authorises first, changes state in one ``UnitOfWork`` and records one
audit leaf; bad input raises before anything is written. Delegations, persons and
organisations, and connected systems have their own modules; the actor builders live
in ``scopes`` and are re-exported here because ``auth`` imports them from this module.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.kernel import clock
from xietong.kernel.access import Actor, Resource, Role, authorize, can
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from xietong.kernel.org import _checks as checks
from xietong.kernel.org.events import (
    DepartmentCreated,
    MembershipGranted,
    MembershipRevoked,
    UserCreated,
    UserDeactivated,
)
from xietong.kernel.org.identity import mask_mobile, normalize_mobile
from xietong.kernel.org.models import REGION_LEVELS, Department, Membership, Region, User
from xietong.kernel.org.scopes import actor_for_system, actor_for_user, department_subtree
from xietong.kernel.org.views import DepartmentView, MembershipView, RegionView, UserView
from xietong.kernel.passwords import hash_password
from xietong.kernel.uow import UnitOfWork

__all__ = [
    "ORG_WIDE_ROLES",
    "actor_for_system",
    "actor_for_user",
    "add_user",
    "create_department",
    "create_region",
    "deactivate_user",
    "department_subtree",
    "get_user_by_username",
    "grant_membership",
    "list_departments",
    "list_regions",
    "list_users",
    "revoke_membership",
    "set_password",
]

# Roles whose actions are usually "global" (audit, supervision, dispatch) or everything
# (admin): held in any department they reach across all of them, so only an actor with
# org.manage may grant or remove them — a department head must not mint auditors.
ORG_WIDE_ROLES = frozenset({Role.ADMIN, Role.AUDITOR, Role.SUPERVISOR, Role.DISPATCHER})

# Significant prefix length of a code at each level: a city 430100 lies in 43xxxx.
_PREFIX = {"province": 2, "city": 4, "county": 6, "street": 9}
USER_MOBILE_AD = b"user.mobile"


def _check_region(code: str, level: str, parent: Region | None) -> None:
    shape_ok = {
        "province": len(code) == 6 and code[2:] == "0000",
        "city": len(code) == 6 and code[4:] == "00" and code[2:4] != "00",
        "county": len(code) == 6 and code[4:] != "00",
        "street": len(code) in (9, 12),
    }[level]
    if not shape_ok:
        raise InvalidInput(
            f"行政区划代码 {code} 与级别 {level} 不符",
            f"Region code {code} does not fit level {level}",
            code="invalid_region_code",
        )
    if parent is None:
        return
    parent_rank, rank = REGION_LEVELS.index(parent.level), REGION_LEVELS.index(level)
    prefix = _PREFIX[parent.level]
    if parent_rank >= rank or code[:prefix] != parent.code[:prefix]:
        raise InvalidInput(
            f"上级区划 {parent.code} 不能包含 {code}",
            f"Region {parent.code} cannot contain {code}",
            code="region_parent_mismatch",
        )


def create_region(
    ctx: Context, actor: Actor, code: str, name: str, level: str, parent_code: str | None = None
) -> RegionView:
    """Add a GB/T 2260 region; the code must fit its level and lie inside its parent."""
    authorize(actor, "org.manage")
    code = checks.region_code(code)
    name = checks.text(name, "区划名称", "Region name", 100, code="invalid_name")
    if level not in REGION_LEVELS:
        raise InvalidInput(
            f"区划级别应为 {'/'.join(REGION_LEVELS)}",
            f"Region level must be one of {', '.join(REGION_LEVELS)}",
            code="invalid_region_level",
        )
    with UnitOfWork(ctx, actor) as uow:
        if uow.session.get(Region, code) is not None:
            raise Conflict(
                f"行政区划已存在：{code}", f"Region exists: {code}", code="region_exists"
            )
        parent = None
        if parent_code:
            parent = uow.session.get(Region, parent_code)
            if parent is None:
                raise NotFound.of("上级行政区划", "Parent region", parent_code)
        _check_region(code, level, parent)
        region = Region(code=code, name=name, level=level, parent_code=parent_code or None)
        uow.session.add(region)
        checks.flush_or_conflict(
            uow.session, "行政区划已存在", "Region exists", code="region_exists"
        )
        uow.record("org.region.create", f"region:{code}", {"name": name, "level": level})
        uow.commit()
    return RegionView.of(region)


def create_department(
    ctx: Context,
    actor: Actor,
    code: str,
    name: str,
    region_code: str,
    *,
    short_name: str | None = None,
    parent_id: int | None = None,
) -> DepartmentView:
    authorize(actor, "org.manage")
    code = checks.code(code, "部门编码", "Department code")
    name = checks.text(name, "部门名称", "Department name", 200, code="invalid_name")
    short_name = (short_name or "").strip()[:100] or None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        if session.scalar(select(Department.id).where(Department.code == code)) is not None:
            raise Conflict(
                f"部门编码已存在：{code}",
                f"Department code taken: {code}",
                code="department_exists",
            )
        if session.get(Region, region_code) is None:
            raise NotFound.of("行政区划", "Region", region_code)
        if parent_id is not None and session.get(Department, parent_id) is None:
            raise NotFound.of("上级部门", "Parent department", parent_id)
        dept = Department(
            code=code,
            name=name,
            short_name=short_name,
            region_code=region_code,
            parent_id=parent_id,
            active=True,
            created_at=clock.now(),
        )
        session.add(dept)
        checks.flush_or_conflict(
            session, "部门编码已存在", "Department code taken", code="department_exists"
        )
        uow.record(
            "org.department.create",
            f"department:{dept.id}",
            {"code": code, "name": name, "region_code": region_code, "parent_id": parent_id},
        )
        uow.emit(DepartmentCreated(dept.id, code, name, region_code, parent_id), module="org")
        uow.commit()
    return DepartmentView.of(dept)


def add_user(
    ctx: Context,
    actor: Actor,
    username: str,
    display_name: str,
    password: str,
    *,
    mobile: str | None = None,
) -> UserView:
    """Create an account; the password is stored as an argon2 hash only."""
    authorize(actor, "org.manage")
    username = checks.username(username)
    display_name = checks.text(display_name, "姓名", "Display name", 100, code="invalid_name")
    password_hash = hash_password(checks.password(password))
    mobile = normalize_mobile(mobile) if mobile else None
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(
                f"用户名已存在：{username}", f"Username taken: {username}", code="username_taken"
            )
        user = User(
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            mobile_cipher=ctx.keys.encrypt(mobile.encode(), USER_MOBILE_AD) if mobile else None,
            mobile_masked=mask_mobile(mobile) if mobile else None,
            active=True,
            created_at=clock.now(),
        )
        session.add(user)
        checks.flush_or_conflict(session, "用户名已存在", "Username taken", code="username_taken")
        uow.record("org.user.create", f"user:{user.id}", {"username": username})
        uow.emit(UserCreated(user.id, username, display_name), module="org")
        uow.commit()
    return _user_view(user, ())


def _get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound.of("用户", "User", user_id)
    return user


def set_password(ctx: Context, actor: Actor, user_id: int, password: str) -> None:
    authorize(actor, "org.manage", Resource(kind="user", id=user_id))
    password_hash = hash_password(checks.password(password))
    with UnitOfWork(ctx, actor) as uow:
        _get_user(uow.session, user_id).password_hash = password_hash
        uow.record("org.user.set_password", f"user:{user_id}", {})
        uow.commit()


def deactivate_user(ctx: Context, actor: Actor, user_id: int) -> None:
    """Disable an account; its tokens stop working because actors are rebuilt per request."""
    authorize(actor, "org.manage", Resource(kind="user", id=user_id))
    with UnitOfWork(ctx, actor) as uow:
        user = _get_user(uow.session, user_id)
        user.active = False
        uow.record("org.user.deactivate", f"user:{user_id}", {"username": user.username})
        uow.emit(UserDeactivated(user_id, user.username), module="org")
        uow.commit()


def check_role_authority(actor: Actor, role: Role) -> None:
    if role in ORG_WIDE_ROLES and not can(actor, "org.manage"):
        raise Forbidden(
            "只有组织管理员可以授予或撤销该角色",
            "Only organisation administrators may grant or remove this role",
            code="role_needs_admin",
            details={"role": role.value},
        )


def grant_membership(
    ctx: Context, actor: Actor, user_id: int, department_id: int, role: str | Role
) -> MembershipView:
    """Give a user a role in a department (heads manage their own departments)."""
    authorize(
        actor, "org.department.manage", Resource(kind="department", department_id=department_id)
    )
    checked_role = checks.role(role)
    check_role_authority(actor, checked_role)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        _get_user(session, user_id)
        dept = session.get(Department, department_id)
        if dept is None:
            raise NotFound.of("部门", "Department", department_id)
        existing = session.scalar(
            select(Membership.id).where(
                Membership.user_id == user_id,
                Membership.department_id == department_id,
                Membership.role == checked_role.value,
            )
        )
        if existing is not None:
            raise Conflict(
                "该用户已有此角色", "The user already has this role", code="membership_exists"
            )
        session.add(
            Membership(
                user_id=user_id,
                department_id=department_id,
                role=checked_role.value,
                created_at=clock.now(),
            )
        )
        checks.flush_or_conflict(
            session, "该用户已有此角色", "The user already has this role", code="membership_exists"
        )
        payload = {"department_id": department_id, "role": checked_role.value}
        uow.record("org.membership.grant", f"user:{user_id}", payload)
        uow.emit(MembershipGranted(user_id, department_id, checked_role.value), module="org")
        uow.commit()
    return MembershipView(department_id, dept.code, dept.name, checked_role.value)


def revoke_membership(
    ctx: Context, actor: Actor, user_id: int, department_id: int, role: str | Role
) -> None:
    authorize(
        actor, "org.department.manage", Resource(kind="department", department_id=department_id)
    )
    checked_role = checks.role(role)
    check_role_authority(actor, checked_role)
    with UnitOfWork(ctx, actor) as uow:
        membership = uow.session.scalar(
            select(Membership).where(
                Membership.user_id == user_id,
                Membership.department_id == department_id,
                Membership.role == checked_role.value,
            )
        )
        if membership is None:
            raise NotFound.of("成员角色", "Membership", f"{user_id}/{department_id}/{role}")
        uow.session.delete(membership)
        payload = {"department_id": department_id, "role": checked_role.value}
        uow.record("org.membership.revoke", f"user:{user_id}", payload)
        uow.emit(MembershipRevoked(user_id, department_id, checked_role.value), module="org")
        uow.commit()


# --- queries -------------------------------------------------------------------------


def _user_view(user: User, memberships: tuple[MembershipView, ...]) -> UserView:
    return UserView(
        user.id,
        user.username,
        user.display_name,
        user.active,
        user.mobile_masked,
        user.created_at,
        memberships,
    )


def _memberships(session: Session, user_ids: list[int]) -> dict[int, list[MembershipView]]:
    found: dict[int, list[MembershipView]] = defaultdict(list)
    if not user_ids:
        return found
    rows = session.execute(
        select(Membership.user_id, Department.id, Department.code, Department.name, Membership.role)
        .join(Department, Department.id == Membership.department_id)
        .where(Membership.user_id.in_(user_ids))
        .order_by(Department.code, Membership.role)
    )
    for user_id, dept_id, dept_code, dept_name, role in rows:
        found[user_id].append(MembershipView(dept_id, dept_code, dept_name, role))
    return found


def get_user_by_username(ctx: Context, username: str) -> UserView | None:
    """The account named ``username`` with its memberships (no access check: used by login)."""
    with ctx.db.read() as session:
        user = session.scalar(select(User).where(User.username == username.strip()))
        if user is None:
            return None
        return _user_view(user, tuple(_memberships(session, [user.id])[user.id]))


def list_users(ctx: Context, actor: Actor) -> list[UserView]:
    authorize(actor, "org.read")
    with ctx.db.read() as session:
        users = list(session.scalars(select(User).order_by(User.username)))
        memberships = _memberships(session, [user.id for user in users])
        return [_user_view(user, tuple(memberships[user.id])) for user in users]


def list_departments(ctx: Context, actor: Actor) -> list[DepartmentView]:
    authorize(actor, "org.read")
    with ctx.db.read() as session:
        rows = session.scalars(select(Department).order_by(Department.code))
        return [DepartmentView.of(row) for row in rows]


def list_regions(ctx: Context, actor: Actor) -> list[RegionView]:
    authorize(actor, "org.read")
    with ctx.db.read() as session:
        return [RegionView.of(row) for row in session.scalars(select(Region).order_by(Region.code))]
