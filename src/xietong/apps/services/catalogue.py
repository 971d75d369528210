"""事项目录: create, edit, read and search matters.

Input is checked first (every problem named, nothing written when one is bad); then one
``UnitOfWork`` checks the actor may manage the owning department's matters, writes the
row, an audit leaf and an event. Administrators and department heads maintain the
catalogue; anyone — signed in or not — may read and search it (the catalogue is public,
as the national 政务服务事项目录 is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from xietong.apps.services import forms
from xietong.apps.services.events import MODULE, MatterChanged
from xietong.apps.services.models import Matter
from xietong.apps.services.views import MatterView
from xietong.apps.services.vocab import MATTER_TYPE_ZH, matter_type
from xietong.kernel import clock, search
from xietong.kernel.access import Actor, Resource, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow.store import WfDefinition

MANAGE = "services.matter.manage"
READ = "services.catalogue.read"
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{1,63}$")
# a connected system's code, as the kernel's registry accepts it
SYSTEM_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_DAYS = 3650


@dataclass(frozen=True)
class MatterInput:
    code: str
    name: str
    department_code: str
    matter_type: str
    promised_days: int
    statutory_days: int
    process_key: str
    form_schema: dict[str, Any] = field(default_factory=dict)
    legal_basis: str = ""
    materials: list[dict[str, Any]] = field(default_factory=list)
    fee: str = "0"
    outputs: list[dict[str, Any]] = field(default_factory=list)
    active: bool = True
    # the connected system that answers for the matter ("" = none may)
    external_system_code: str = ""


@dataclass(frozen=True)
class Problem:
    field: str
    message_zh: str
    message_en: str


def check_matter(data: MatterInput) -> tuple[MatterInput, list[Problem]]:
    """The input cleaned, and every problem with it (by field)."""
    problems: list[Problem] = []

    def bad(name: str, zh: str, en: str) -> None:
        problems.append(Problem(name, zh, en))

    code, name = (data.code or "").strip(), (data.name or "").strip()
    if not CODE.match(code):
        bad("code", "事项编码须为 2–64 位字母、数字、点、横线或下划线", "Bad matter code")
    if not name or len(name) > 200:
        bad("name", "请填写事项名称（最多 200 字）", "Give a name (at most 200 characters)")
    kind = matter_type(data.matter_type)
    if kind is None:
        bad(
            "matter_type",
            f"事项类型须为：{'、'.join(MATTER_TYPE_ZH.values())}",
            f"Unknown matter type: {data.matter_type}",
        )
    for label, days in (
        ("promised_days", data.promised_days),
        ("statutory_days", data.statutory_days),
    ):
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DAYS:
            bad(label, f"时限须为 0–{MAX_DAYS} 个工作日", f"{label}: 0–{MAX_DAYS} working days")
    if (
        isinstance(data.promised_days, int)
        and isinstance(data.statutory_days, int)
        and data.promised_days > data.statutory_days
    ):
        bad("promised_days", "承诺时限不能长于法定时限", "The promised limit exceeds the statutory")
    try:
        fee = Decimal(str(data.fee or "0").strip())
        if fee < 0 or fee > Decimal("1e9") or fee != fee.quantize(Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        bad(
            "fee",
            "收费须为不小于 0 的金额（元，最多两位小数）",
            "Fee must be a non-negative amount",
        )
        fee = Decimal("0")
    process_key = (data.process_key or "").strip()
    if not process_key or len(process_key) > 200:
        bad("process_key", "请填写办理流程（流程定义的 key）", "Give the process definition key")
    for message in forms.schema_problems(data.form_schema):
        bad("form_schema", message, message)
    materials = _materials(data.materials, bad)
    outputs = _outputs(data.outputs, bad)
    system_code = str(data.external_system_code or "").strip()
    if system_code and not SYSTEM_CODE.match(system_code):
        bad(
            "external_system_code",
            "外部系统编码须为 1–64 位字母、数字、点、下划线或连字符",
            "External system code: 1–64 letters, digits, '.', '_' or '-'",
        )
    cleaned = MatterInput(
        code=code,
        name=name,
        department_code=(data.department_code or "").strip(),
        matter_type=kind.value if kind else data.matter_type,
        promised_days=data.promised_days,
        statutory_days=data.statutory_days,
        process_key=process_key,
        form_schema=data.form_schema,
        legal_basis=(data.legal_basis or "").strip()[:4000],
        materials=materials,
        fee=f"{fee:.2f}",
        outputs=outputs,
        active=bool(data.active),
        external_system_code=system_code,
    )
    return cleaned, problems


def _materials(raw: object, bad: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        bad("materials", "申请材料须为列表", "Materials must be a list")
        return []
    found: list[dict[str, Any]] = []
    codes: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not CODE.match(str(item.get("code", ""))):
            bad(f"materials[{index}]", "材料须有编码与名称", "A material needs a code and a name")
            continue
        material_name = str(item.get("name", "")).strip()
        if not material_name or item["code"] in codes:
            bad(f"materials[{index}]", "材料名称为空或编码重复", "Empty name or duplicate code")
            continue
        codes.add(item["code"])
        found.append(
            {
                "code": item["code"],
                "name": material_name[:200],
                "required": bool(item.get("required", True)),
            }
        )
    return found


def _outputs(raw: object, bad: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        bad("outputs", "办理结果须为列表", "Outputs must be a list")
        return []
    found: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not NAME_RE.match(str(item.get("name", "")))
            or item.get("type", "string") not in forms.FIELD_TYPES
            or item["name"] in names
        ):
            bad(
                f"outputs[{index}]",
                "办理结果须有唯一的英文名、标题和类型（string/integer/number/boolean）",
                "An output needs a unique name, a title and a type",
            )
            continue
        names.add(item["name"])
        title = str(item.get("title") or item["name"]).strip()[:200]
        found.append({"name": item["name"], "title": title, "type": item.get("type", "string")})
    return found


def raise_problems(problems: list[Problem], code: str = "invalid_matter") -> None:
    if problems:
        first = problems[0]
        raise InvalidInput(
            f"{first.message_zh}（{first.field}）",
            f"{first.message_en} ({first.field})",
            code=code,
            details={"problems": [p.__dict__ for p in problems]},
        )


def department_by_code(session: Session, code: str) -> Department:
    dept = session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise InvalidInput(
            f"部门不存在：{code}", f"Unknown department: {code}", code="unknown_department"
        )
    return dept


def require_process(session: Session, key: str) -> None:
    if session.scalar(select(WfDefinition.id).where(WfDefinition.key == key).limit(1)) is None:
        raise InvalidInput(
            f"办理流程未部署：{key}",
            f"Process definition not deployed: {key}",
            code="unknown_process",
        )


def guarded(department_id: int) -> Resource:
    return Resource(kind="services.matter", department_id=department_id)


def view_of(session: Session, row: Matter) -> MatterView:
    dept = session.get_one(Department, row.department_id)
    return MatterView.of(row, dept.code, dept.name)


def write(row: Matter, data: MatterInput, dept: Department) -> bool:
    """Copy ``data`` onto ``row``; True when anything changed."""
    values = {
        "name": data.name,
        "department_id": dept.id,
        "matter_type": data.matter_type,
        "legal_basis": data.legal_basis,
        "materials": data.materials,
        "form_schema": data.form_schema,
        "promised_days": data.promised_days,
        "statutory_days": data.statutory_days,
        "fee": Decimal(data.fee),
        "process_key": data.process_key,
        "outputs": data.outputs,
        "active": data.active,
        "external_system_code": data.external_system_code or None,
    }
    changed = False
    for key, value in values.items():
        if getattr(row, key, None) != value:
            setattr(row, key, value)
            changed = True
    row.search_text = search.document(
        [
            data.name,
            data.code,
            dept.name,
            dept.short_name,
            MATTER_TYPE_ZH.get(matter_type(data.matter_type), ""),  # type: ignore[arg-type]
            data.legal_basis,
            *(m["name"] for m in data.materials),
        ]
    )
    return changed


def save_matter(uow: UnitOfWork, data: MatterInput) -> tuple[MatterView, str]:
    """Create or update inside ``uow``; returns the view and "created"/"updated"/"unchanged"."""
    session = uow.session
    dept = department_by_code(session, data.department_code)
    authorize(uow.actor, MANAGE, guarded(dept.id))
    require_process(session, data.process_key)
    row = session.scalar(select(Matter).where(Matter.code == data.code))
    now = clock.now()
    if row is None:
        row = Matter(code=data.code, version=1, created_at=now, updated_at=now)
        write(row, data, dept)
        session.add(row)
        outcome = "created"
    else:
        authorize(uow.actor, MANAGE, guarded(row.department_id))  # moving needs both sides
        if not write(row, data, dept):
            return view_of(session, row), "unchanged"
        row.version += 1
        row.updated_at = now
        outcome = "updated"
    try:
        session.flush()
    except IntegrityError as clash:
        raise Conflict(
            f"事项编码已存在：{data.code}", f"Matter code taken: {data.code}", code="code_taken"
        ) from clash
    view = view_of(session, row)
    uow.record(
        f"services.matter.{'create' if outcome == 'created' else 'update'}",
        f"services.matter:{row.code}",
        {"code": row.code, "version": row.version, "department": dept.code},
    )
    uow.emit(MatterChanged(row.code, row.version, outcome == "created"), MODULE)
    return view, outcome


def create_matter(ctx: Context, actor: Actor, data: MatterInput) -> MatterView:
    authorize(actor, MANAGE)
    cleaned, problems = check_matter(data)
    raise_problems(problems)
    with UnitOfWork(ctx, actor) as uow:
        if uow.session.scalar(select(Matter.id).where(Matter.code == cleaned.code)):
            raise Conflict(
                f"事项编码已存在：{cleaned.code}",
                f"Matter code taken: {cleaned.code}",
                code="code_taken",
            )
        view, _ = save_matter(uow, cleaned)
        uow.commit()
    return view


def update_matter(
    ctx: Context, actor: Actor, code: str, data: MatterInput, *, expected_version: int | None = None
) -> MatterView:
    authorize(actor, MANAGE)
    if data.code.strip() != code:
        raise InvalidInput("事项编码不可修改", "A matter code cannot change", code="code_immutable")
    cleaned, problems = check_matter(data)
    raise_problems(problems)
    with UnitOfWork(ctx, actor) as uow:
        row = load(uow.session, code)
        if expected_version is not None and row.version != expected_version:
            raise Conflict(
                f"事项已被他人修改（当前版本 {row.version}），请刷新后重试",
                f"The matter changed meanwhile (now version {row.version})",
                code="version_conflict",
            )
        view, outcome = save_matter(uow, cleaned)
        if outcome != "unchanged":
            uow.commit()
    return view


def load(session: Session, code: str) -> Matter:
    row = session.scalar(select(Matter).where(Matter.code == code))
    if row is None:
        raise NotFound.of("事项", "Matter", code)
    return row


def get_matter(ctx: Context, actor: Actor, code: str) -> MatterView:
    authorize(actor, READ)
    with ctx.db.read() as session:
        return view_of(session, load(session, code))


def search_matters(
    ctx: Context,
    actor: Actor,
    q: str | None = None,
    *,
    department_code: str | None = None,
    include_inactive: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[MatterView]:
    authorize(actor, READ)
    stmt = select(Matter, Department).join(Department, Department.id == Matter.department_id)
    if q:
        condition = search.condition(Matter.search_text, q)
        if condition is not None:
            stmt = stmt.where(condition)
    if department_code:
        stmt = stmt.where(Department.code == department_code)
    if not include_inactive:
        stmt = stmt.where(Matter.active.is_(True))
    stmt = stmt.order_by(Matter.code).limit(min(max(limit, 1), 500)).offset(max(offset, 0))
    with ctx.db.read() as session:
        return [MatterView.of(m, d.code, d.name) for m, d in session.execute(stmt)]


def all_matters(ctx: Context, actor: Actor) -> list[MatterView]:
    authorize(actor, READ)
    stmt = select(Matter, Department).join(Department, Department.id == Matter.department_id)
    with ctx.db.read() as session:
        return [
            MatterView.of(m, d.code, d.name) for m, d in session.execute(stmt.order_by(Matter.code))
        ]


def delete_matter(ctx: Context, actor: Actor, code: str) -> None:
    """Delete a matter no bundle uses (a used one is deactivated instead: ``active``)."""
    from xietong.apps.services.models import BundleMatter, SubCase

    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, guarded(row.department_id))
        used = session.scalar(
            select(BundleMatter.id).where(BundleMatter.matter_id == row.id).limit(1)
        ) or session.scalar(select(SubCase.id).where(SubCase.matter_id == row.id).limit(1))
        if used:
            raise Conflict(
                "事项已被一件事或办件使用，不能删除；请改为停用",
                "The matter is used by a bundle or an application; deactivate it instead",
                code="matter_in_use",
            )
        session.delete(row)
        uow.record("services.matter.delete", f"services.matter:{code}", {"code": code})
        uow.emit(MatterChanged(code, row.version, False), MODULE)
        uow.commit()
