"""一件事: bundles of matters across departments, validated and published.

Publishing computes what the applicant sees and checks that the bundle can run:

- every dependency names a matter of the bundle, and there is no cycle (``graphlib``);
- every mapping takes an output the upstream matter declares, from a matter the target
  depends on (directly or through others), into a field the target's form has, with
  the same type;
- every required field of every matter comes from the applicant's merged form or from
  a mapping; a field marked ``x-applicant: false`` must come from a mapping;
- a field asked by several matters has one type everywhere (it is asked once).

Each problem names the matter and the field. The merged form asks each field once and
the merged materials list asks each material once; the bundle's limit is the longest
chain of promised limits through the dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xietong.apps.services import forms
from xietong.apps.services.catalogue import CODE, READ, department_by_code
from xietong.apps.services.events import MODULE, BundlePublished
from xietong.apps.services.models import Bundle, BundleMatter, Matter
from xietong.apps.services.views import BundleMatterView, BundleView
from xietong.apps.services.vocab import Audience, BundleStatus
from xietong.kernel import clock, search
from xietong.kernel.access import Actor, Resource, authorize
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.org.models import Department
from xietong.kernel.uow import UnitOfWork

MANAGE = "services.bundle.manage"


@dataclass(frozen=True)
class MemberInput:
    matter_code: str
    depends_on: list[str] = field(default_factory=list)
    # [{"from": matter code, "output": output name, "to": field name}]
    mappings: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class BundleInput:
    code: str
    name: str
    lead_department_code: str
    region_code: str
    matters: list[MemberInput]
    description: str = ""
    life_event: str = ""
    audience: str = Audience.PERSON.value


@dataclass(frozen=True)
class Problem:
    matter: str | None
    field: str | None
    code: str
    message_zh: str
    message_en: str


def _guard(department_id: int) -> Resource:
    return Resource(kind="services.bundle", department_id=department_id)


def save_bundle(ctx: Context, actor: Actor, data: BundleInput) -> BundleView:
    """Create a draft bundle, or replace a draft's (or a withdrawn one's) content."""
    authorize(actor, MANAGE)
    code, name = (data.code or "").strip(), (data.name or "").strip()
    if not CODE.match(code) or not name or len(name) > 200:
        raise InvalidInput(
            "一件事须有编码与名称", "A bundle needs a code and a name", code="invalid_bundle"
        )
    if data.audience not in {a.value for a in Audience}:
        raise InvalidInput(
            "服务对象须为 person 或 organization", "Bad audience", code="invalid_bundle"
        )
    if not data.matters or len(data.matters) > 50:
        raise InvalidInput(
            "一件事须包含 1–50 个事项", "A bundle has 1–50 matters", code="invalid_bundle"
        )
    codes = [m.matter_code for m in data.matters]
    if len(set(codes)) != len(codes):
        raise InvalidInput("事项重复", "A matter is listed twice", code="duplicate_matter")
    if not (data.region_code or "").isdigit() or len(data.region_code) != 6:
        raise InvalidInput(
            "行政区划代码须为 6 位数字", "Region code: 6 digits", code="invalid_region"
        )
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        lead = department_by_code(session, data.lead_department_code)
        authorize(actor, MANAGE, _guard(lead.id))
        matters = _matters_by_code(session, codes)
        row = session.scalar(select(Bundle).where(Bundle.code == code))
        now = clock.now()
        if row is None:
            row = Bundle(code=code, created_at=now, version=0)
            session.add(row)
        elif row.status == BundleStatus.PUBLISHED:
            raise Conflict(
                "已发布的一件事不能修改，请先撤回",
                "Withdraw a published bundle before editing it",
                code="bundle_published",
            )
        else:
            authorize(actor, MANAGE, _guard(row.lead_department_id))
        row.name, row.description = name, (data.description or "").strip()[:4000]
        row.life_event, row.audience = (data.life_event or "").strip()[:64], data.audience
        row.lead_department_id, row.region_code = lead.id, data.region_code
        row.status, row.updated_at, row.version = BundleStatus.DRAFT.value, now, row.version + 1
        row.search_text = search.document([name, row.description, row.life_event, lead.name])
        session.flush()
        session.query(BundleMatter).filter(BundleMatter.bundle_id == row.id).delete()
        for position, member in enumerate(data.matters):
            session.add(
                BundleMatter(
                    bundle_id=row.id,
                    matter_id=matters[member.matter_code].id,
                    position=position,
                    depends_on=[str(d) for d in member.depends_on],
                    mappings=[dict(m) for m in member.mappings],
                )
            )
        session.flush()
        uow.record("services.bundle.save", f"services.bundle:{code}", {"version": row.version})
        view = bundle_view(session, row)
        uow.commit()
    return view


def _matters_by_code(session: Session, codes: list[str]) -> dict[str, Matter]:
    rows = {m.code: m for m in session.scalars(select(Matter).where(Matter.code.in_(codes)))}
    missing = [c for c in codes if c not in rows]
    if missing:
        raise InvalidInput(
            f"事项不存在：{'、'.join(missing)}",
            f"Unknown matters: {', '.join(missing)}",
            code="unknown_matter",
            details={"missing": missing},
        )
    return rows


def _members(session: Session, bundle_id: int) -> list[tuple[BundleMatter, Matter]]:
    stmt = (
        select(BundleMatter, Matter)
        .join(Matter, Matter.id == BundleMatter.matter_id)
        .where(BundleMatter.bundle_id == bundle_id)
        .order_by(BundleMatter.position)
    )
    return [(bm, m) for bm, m in session.execute(stmt)]


def check_bundle(
    members: list[tuple[BundleMatter, Matter]],
) -> tuple[list[Problem], dict[str, Any]]:
    """Every problem of a bundle, and (when there is none) what publishing computes."""
    problems: list[Problem] = []
    by_code = {m.code: (bm, m) for bm, m in members}

    def bad(matter: str | None, fld: str | None, code: str, zh: str, en: str) -> None:
        problems.append(Problem(matter, fld, code, zh, en))

    graph: dict[str, set[str]] = {}
    for bm, m in members:
        if not m.active:
            bad(m.code, None, "inactive_matter", f"事项 {m.name} 已停用", f"{m.code} is inactive")
        graph[m.code] = set()
        for dep in bm.depends_on:
            if dep not in by_code or dep == m.code:
                bad(
                    m.code,
                    None,
                    "unknown_dependency",
                    f"事项 {m.name} 依赖的事项 {dep} 不在本一件事中",
                    f"{m.code} depends on {dep}, which is not in the bundle",
                )
            else:
                graph[m.code].add(dep)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        path = " → ".join(str(c) for c in cycle.args[1])
        bad(
            None, None, "dependency_cycle", f"事项依赖存在循环：{path}", f"Dependency cycle: {path}"
        )
        return problems, {}
    upstream: dict[str, set[str]] = {}
    for code in order:
        upstream[code] = set(graph[code])
        for dep in graph[code]:
            upstream[code] |= upstream[dep]
    mapped: dict[str, set[str]] = {}
    for bm, m in members:
        mapped[m.code] = set()
        schema = m.form_schema or {}
        for mapping in bm.mappings:
            source, output, target = mapping.get("from"), mapping.get("output"), mapping.get("to")
            where = f"{m.code}.{target}"
            if source not in by_code:
                bad(
                    m.code,
                    target,
                    "unknown_source",
                    f"事项 {m.name} 字段 {target} 的数据来源 {source} 不在本一件事中",
                    f"{where}: source matter {source} is not in the bundle",
                )
                continue
            if source not in upstream[m.code]:
                bad(
                    m.code,
                    target,
                    "source_not_upstream",
                    f"事项 {m.name} 字段 {target} 取自 {source}，但未依赖该事项",
                    f"{where}: {source} is not a prerequisite of {m.code}",
                )
            source_outputs = {o["name"]: o for o in by_code[source][1].outputs}
            if output not in source_outputs:
                bad(
                    m.code,
                    target,
                    "unknown_output",
                    f"事项 {by_code[source][1].name} 没有办理结果 {output}",
                    f"{source} has no output {output}",
                )
                continue
            target_type = forms.field_type(schema, str(target))
            if target_type is None:
                bad(
                    m.code,
                    target,
                    "unknown_field",
                    f"事项 {m.name} 的表单没有字段 {target}",
                    f"{where}: no such field",
                )
                continue
            if source_outputs[output]["type"] != target_type:
                bad(
                    m.code,
                    target,
                    "type_mismatch",
                    f"事项 {m.name} 字段 {target}（{target_type}）与 {source} 的结果 {output}"
                    f"（{source_outputs[output]['type']}）类型不一致",
                    f"{where} is {target_type} but {source}.{output} is "
                    f"{source_outputs[output]['type']}",
                )
            mapped[m.code].add(str(target))
    merged: dict[str, Any] = {}
    required: list[str] = []
    owners: dict[str, str] = {}
    for _bm, m in members:
        schema = m.form_schema or {}
        own = forms.applicant_fields(schema)
        for name in forms.required(schema):
            if name in mapped[m.code]:
                continue
            if name not in own:
                bad(
                    m.code,
                    name,
                    "unsourced_field",
                    f"事项 {m.name} 的必填字段 {name} 既不由申请人填写，也没有上游事项提供",
                    f"{m.code}.{name} is required but neither asked nor mapped",
                )
            elif name not in required:
                required.append(name)
        for name, spec in own.items():
            if name in mapped[m.code]:
                continue
            if name in merged and merged[name].get("type") != spec.get("type"):
                bad(
                    m.code,
                    name,
                    "field_type_conflict",
                    f"字段 {name} 在 {owners[name]} 与 {m.code} 中类型不同",
                    f"Field {name} has different types in {owners[name]} and {m.code}",
                )
                continue
            merged.setdefault(name, spec)
            owners.setdefault(name, m.code)
    materials: dict[str, dict[str, Any]] = {}
    for _bm, m in members:
        for material in m.materials:
            entry = materials.setdefault(
                material["code"],
                {
                    "code": material["code"],
                    "name": material["name"],
                    "required": False,
                    "matters": [],
                },
            )
            entry["required"] = entry["required"] or material.get("required", True)
            entry["matters"].append(m.code)
    finish: dict[str, int] = {}
    for code in order:
        start = max((finish[d] for d in graph[code]), default=0)
        finish[code] = start + by_code[code][1].promised_days
    computed = {
        "merged_form": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": merged,
            "required": required,
            "additionalProperties": False,
        },
        "merged_materials": list(materials.values()),
        "promised_days": max(finish.values(), default=0),
    }
    return problems, computed


def publish_bundle(ctx: Context, actor: Actor, code: str) -> BundleView:
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        session = uow.session
        row = load(session, code)
        authorize(actor, MANAGE, _guard(row.lead_department_id))
        if row.status == BundleStatus.PUBLISHED:
            raise Conflict("一件事已发布", "Already published", code="already_published")
        members = _members(session, row.id)
        problems, computed = check_bundle(members)
        departments = {m.department_id for _bm, m in members}
        if row.lead_department_id not in departments:
            problems.append(
                Problem(
                    None,
                    None,
                    "lead_not_member",
                    "牵头部门须负责其中至少一个事项",
                    "The lead department must own one of the matters",
                )
            )
        if problems:
            first = problems[0]
            raise InvalidInput(
                first.message_zh,
                first.message_en,
                code="invalid_bundle",
                details={"problems": [p.__dict__ for p in problems]},
            )
        row.merged_form = computed["merged_form"]
        row.merged_materials = computed["merged_materials"]
        row.promised_days = computed["promised_days"]
        row.status = BundleStatus.PUBLISHED.value
        row.published_at = row.updated_at = clock.now()
        row.version += 1
        view = bundle_view(session, row)
        uow.record(
            "services.bundle.publish",
            f"services.bundle:{code}",
            {"version": row.version, "matters": [m.matter_code for m in view.matters]},
        )
        uow.emit(BundlePublished(code, row.version), MODULE)
        uow.commit()
    return view


def withdraw_bundle(ctx: Context, actor: Actor, code: str) -> BundleView:
    authorize(actor, MANAGE)
    with UnitOfWork(ctx, actor) as uow:
        row = load(uow.session, code)
        authorize(actor, MANAGE, _guard(row.lead_department_id))
        if row.status != BundleStatus.PUBLISHED:
            raise Conflict("一件事未发布", "Not published", code="not_published")
        row.status = BundleStatus.WITHDRAWN.value
        row.version += 1
        row.updated_at = clock.now()
        uow.record("services.bundle.withdraw", f"services.bundle:{code}", {"version": row.version})
        view = bundle_view(uow.session, row)
        uow.commit()
    return view


def load(session: Session, code: str) -> Bundle:
    row = session.scalar(select(Bundle).where(Bundle.code == code))
    if row is None:
        raise NotFound.of("一件事", "Bundle", code)
    return row


def bundle_view(session: Session, row: Bundle) -> BundleView:
    names = dict(session.execute(select(Department.id, Department.name)).all())
    members = _members(session, row.id)
    titles = {m.code: {o["name"]: o["title"] for o in m.outputs} for _bm, m in members}

    def titled(mapping: dict[str, str]) -> dict[str, str]:
        title = titles.get(mapping.get("from", ""), {}).get(mapping.get("output", ""), "")
        return {**mapping, "title": title or mapping.get("output", "")}

    return BundleView(
        id=row.id,
        code=row.code,
        name=row.name,
        description=row.description,
        life_event=row.life_event,
        audience=row.audience,
        lead_department_id=row.lead_department_id,
        lead_department_name=names.get(row.lead_department_id, ""),
        region_code=row.region_code,
        status=row.status,
        matters=[
            BundleMatterView(
                matter_code=m.code,
                matter_name=m.name,
                department_id=m.department_id,
                department_name=names.get(m.department_id, ""),
                depends_on=list(bm.depends_on),
                mappings=[titled(m) for m in bm.mappings],
                promised_days=m.promised_days,
            )
            for bm, m in members
        ],
        merged_form=dict(row.merged_form or {}),
        merged_materials=list(row.merged_materials or []),
        promised_days=row.promised_days,
        version=row.version,
        published_at=row.published_at,
    )


def get_bundle(ctx: Context, actor: Actor, code: str) -> BundleView:
    """A published bundle for anyone; drafts only for those who manage bundles."""
    authorize(actor, READ)
    with ctx.db.read() as session:
        row = load(session, code)
        if row.status != BundleStatus.PUBLISHED:
            authorize(actor, MANAGE, _guard(row.lead_department_id))
        return bundle_view(session, row)


def list_bundles(
    ctx: Context,
    actor: Actor,
    q: str | None = None,
    *,
    life_event: str | None = None,
    department_id: int | None = None,
    published_only: bool = True,
) -> list[BundleView]:
    authorize(actor, READ)
    stmt = select(Bundle).order_by(Bundle.code)
    if published_only:
        stmt = stmt.where(Bundle.status == BundleStatus.PUBLISHED.value)
    if life_event:
        stmt = stmt.where(Bundle.life_event == life_event)
    if q:
        condition = search.condition(Bundle.search_text, q)
        if condition is not None:
            stmt = stmt.where(condition)
    with ctx.db.read() as session:
        views = [bundle_view(session, row) for row in session.scalars(stmt)]
    if department_id is not None:
        views = [v for v in views if any(m.department_id == department_id for m in v.matters)]
    return views
