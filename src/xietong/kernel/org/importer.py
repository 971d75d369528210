"""Import and export the organisation as an xlsx workbook (部门 / 用户 / 成员).

All or nothing: every row is validated first and every problem is reported with its
sheet, row and column; only a workbook without errors is written, in one unit of work
with one audit leaf that carries the counts and the file's SHA-256. Re-importing the
same workbook changes nothing: departments and users are matched by code and username,
and only differing fields count as updates. The import adds and updates; it never
deletes a department, a user or a membership that the workbook leaves out, and it
sets a password only when it creates the user (初始密码 = initial password).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from xietong.kernel.access import ROLE_NAMES, Actor, Role, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict
from xietong.kernel.org._import_plan import Plan, make_plan
from xietong.kernel.org.events import OrgImported
from xietong.kernel.org.models import Department, Membership, User
from xietong.kernel.org.service import USER_MOBILE_AD
from xietong.kernel.org.workbook import org_template_xlsx, read_org_workbook, write_workbook
from xietong.kernel.passwords import hash_password
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workbook import RowError

__all__ = ["ImportReport", "RowError", "export_org_xlsx", "import_org_xlsx", "org_template_xlsx"]


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def _report(plan: Plan, sha256: str, dry_run: bool) -> ImportReport:
    errors = [RowError(*error) for error in plan.errors]
    if errors:
        return ImportReport(errors=errors, sha256=sha256, dry_run=dry_run)
    return ImportReport(plan.created(), plan.updated(), [], sha256, dry_run)


def import_org_xlsx(
    ctx: Context, actor: Actor, source: bytes | Path, *, dry_run: bool = False
) -> ImportReport:
    """Validate the workbook and, when it has no errors and ``dry_run`` is off, write it."""
    authorize(actor, "org.manage")
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    sha256 = hashlib.sha256(data).hexdigest()
    sheets = read_org_workbook(data)
    with ctx.db.read() as session:
        plan = make_plan(session, sheets, ctx.keys)
    if plan.errors or dry_run:
        return _report(plan, sha256, dry_run)

    # argon2 is slow on purpose: hash before taking the write lock, not while holding it.
    hashes = {op.username: hash_password(op.password) for op in plan.new_users()}
    try:
        with UnitOfWork(ctx, actor) as uow:
            # Plan again inside the transaction: what was checked is what gets written,
            # even if someone changed the organisation in the meantime.
            plan = make_plan(uow.session, sheets, ctx.keys)
            if plan.errors:
                return _report(plan, sha256, dry_run)
            plan.apply(uow.session, ctx.keys, hashes)
            report = _report(plan, sha256, dry_run)
            uow.record(
                "org.import",
                f"import:{sha256[:16]}",
                {"sha256": sha256, "created": report.created, "updated": report.updated},
            )
            uow.emit(OrgImported(sha256, report.created, report.updated), module="org")
            uow.commit()
    except IntegrityError as clash:
        raise Conflict(
            "导入时组织机构被同时修改，请重试",
            "The organisation changed during the import; try again",
            code="import_conflict",
        ) from clash
    return report


def export_org_xlsx(ctx: Context, actor: Actor) -> bytes:
    """The organisation as a workbook that imports back unchanged (no passwords).

    It contains staff mobile numbers in the clear, so it is an administrator's,
    audited, action — hence the ``actor``.
    """
    authorize(actor, "org.manage")
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        departments = list(session.scalars(select(Department).order_by(Department.code)))
        code_of = {dept.id: dept.code for dept in departments}
        users = list(session.scalars(select(User).order_by(User.username)))
        name_of = {user.id: user.username for user in users}
        memberships = session.scalars(select(Membership).order_by(Membership.id))
        rows: dict[str, list[list[str]]] = {
            "departments": [
                [
                    dept.code,
                    dept.name,
                    dept.short_name or "",
                    dept.region_code,
                    code_of.get(dept.parent_id, "") if dept.parent_id else "",
                ]
                for dept in departments
            ],
            "users": [[user.username, user.display_name, "", _mobile(ctx, user)] for user in users],
            "memberships": sorted(
                [name_of[m.user_id], code_of[m.department_id], _role_name(m.role)]
                for m in memberships
            ),
        }
        counts = {key: len(value) for key, value in rows.items()}
        uow.record("org.export", "org", {"counts": counts})
        uow.commit()
    return write_workbook(rows)


def _mobile(ctx: Context, user: User) -> str:
    if user.mobile_cipher is None:
        return ""
    return ctx.keys.decrypt(user.mobile_cipher, USER_MOBILE_AD).decode("ascii")


def _role_name(value: str) -> str:
    try:
        return ROLE_NAMES[Role(value)][0]
    except ValueError:
        return value
