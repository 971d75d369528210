"""Organisation API: regions, departments, users, memberships, delegations, parties, systems.

Routes only parse and render; each calls one service function, which checks the
department scope itself (a head manages only their own department's members).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.org import delegation, importer, parties, service, systems

router = APIRouter(prefix="/org", tags=["org 组织机构"])
CtxDep = Annotated[Context, Depends(get_ctx)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_XLSX_BYTES = 10 * 1024 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegionIn(Strict):
    code: str = Field(min_length=6, max_length=12)
    name: str = Field(min_length=1, max_length=100)
    level: str
    parent_code: str | None = None


class DepartmentIn(Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    region_code: str
    short_name: str | None = None
    parent_id: int | None = None


class UserIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=4, max_length=200)
    mobile: str | None = None


class MembershipIn(Strict):
    department_id: int
    role: str


class DelegationIn(Strict):
    from_user_id: int
    to_user_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    process_key: str | None = None
    reason: str = Field(default="", max_length=500)


class PersonIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    id_number: str = Field(min_length=15, max_length=18)
    mobile: str | None = None


class OrganizationIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    uscc: str = Field(min_length=18, max_length=18)
    legal_representative: str | None = None
    region_code: str | None = None


class SystemIn(Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    department_id: int
    roles: list[str] = Field(default_factory=list)


def _out(value: Any) -> Any:
    if isinstance(value, list):
        return [_out(item) for item in value]
    return asdict(value)


@router.get("/regions")
def list_regions(ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.read"))]) -> Any:
    return _out(service.list_regions(ctx, actor))


@router.post("/regions", status_code=201)
def create_region(
    body: RegionIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.manage"))]
) -> Any:
    return _out(
        service.create_region(ctx, actor, body.code, body.name, body.level, body.parent_code)
    )


@router.get("/departments")
def list_departments(ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.read"))]) -> Any:
    return _out(service.list_departments(ctx, actor))


@router.post("/departments", status_code=201)
def create_department(
    body: DepartmentIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.manage"))]
) -> Any:
    return _out(
        service.create_department(
            ctx,
            actor,
            body.code,
            body.name,
            body.region_code,
            short_name=body.short_name,
            parent_id=body.parent_id,
        )
    )


@router.get("/users")
def list_users(ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.manage"))]) -> Any:
    return _out(service.list_users(ctx, actor))


@router.post("/users", status_code=201)
def add_user(
    body: UserIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.manage"))]
) -> Any:
    return _out(
        service.add_user(
            ctx, actor, body.username, body.display_name, body.password, mobile=body.mobile
        )
    )


@router.post("/users/{user_id}/memberships", status_code=201)
def grant_membership(
    user_id: int,
    body: MembershipIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.department.manage"))],
) -> Any:
    return _out(service.grant_membership(ctx, actor, user_id, body.department_id, body.role))


@router.delete("/users/{user_id}/memberships", status_code=204)
def revoke_membership(
    user_id: int,
    body: MembershipIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.department.manage"))],
) -> Response:
    service.revoke_membership(ctx, actor, user_id, body.department_id, body.role)
    return Response(status_code=204)


@router.post("/delegations", status_code=201)
def add_delegation(
    body: DelegationIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.delegation.manage"))],
) -> Any:
    return _out(
        delegation.add_delegation(
            ctx,
            actor,
            body.from_user_id,
            body.to_user_id,
            body.starts_at,
            body.ends_at,
            process_key=body.process_key,
            reason=body.reason,
        )
    )


@router.delete("/delegations/{delegation_id}")
def revoke_delegation(
    delegation_id: int,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.delegation.manage"))],
) -> Any:
    return _out(delegation.revoke_delegation(ctx, actor, delegation_id))


@router.post("/persons", status_code=201)
def register_person(
    body: PersonIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.person.register"))]
) -> Any:
    return _out(parties.register_person(ctx, actor, body.name, body.id_number, mobile=body.mobile))


@router.get("/persons/{person_id}")
def get_person(
    person_id: int, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.person.read"))]
) -> Any:
    return _out(parties.get_person(ctx, actor, person_id))


@router.post("/organizations", status_code=201)
def register_organization(
    body: OrganizationIn,
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.person.register"))],
) -> Any:
    return _out(
        parties.register_organization(
            ctx,
            actor,
            body.name,
            body.uscc,
            legal_representative=body.legal_representative,
            region_code=body.region_code,
        )
    )


@router.get("/systems")
def list_systems(ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.system.manage"))]) -> Any:
    return _out(systems.list_systems(ctx, actor))


@router.post("/systems", status_code=201)
def register_system(
    body: SystemIn, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.system.manage"))]
) -> Any:
    issued = systems.register_connected_system(
        ctx, actor, body.code, body.name, body.department_id, list(body.roles)
    )
    return {"system": asdict(issued.system), "api_key": issued.api_key}


@router.post("/systems/{system_id}/rotate-key")
def rotate_key(
    system_id: int, ctx: CtxDep, actor: Annotated[Actor, Depends(allow("org.system.manage"))]
) -> Any:
    issued = systems.rotate_system_key(ctx, actor, system_id)
    return {"system": asdict(issued.system), "api_key": issued.api_key}


@router.post("/import")
async def import_workbook(
    ctx: CtxDep,
    actor: Annotated[Actor, Depends(allow("org.manage"))],
    file: Annotated[UploadFile, File(description="xlsx with sheets 部门, 用户, 成员")],
    dry_run: bool = False,
) -> Any:
    data = await file.read(MAX_XLSX_BYTES + 1)
    report = importer.import_org_xlsx(ctx, actor, data, dry_run=dry_run)
    if report.errors:
        raise InvalidInput(
            f"导入失败：{len(report.errors)} 处错误，未写入任何数据",
            f"Import failed: {len(report.errors)} errors, nothing written",
            code="import_invalid",
            details=asdict(report),
        )
    return {"status": "validated" if dry_run else "imported", **asdict(report)}


@router.get("/import/template")
def import_template(actor: Annotated[Actor, Depends(allow("org.manage"))]) -> Response:
    return Response(
        importer.org_template_xlsx(),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="org-template.xlsx"'},
    )
