"""API under /api/v1/services: catalogue, bundles, uploads, applications, the
workbench, ratings and rectifications, result verification.

Routes parse and render only; each calls one service function, which checks the
department (a clerk acts only on their department's sub-cases) itself.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from xietong.api.deps import allow, request_ctx
from xietong.apps.services import (
    applications,
    bundles,
    catalogue,
    external,
    files,
    ratings,
    results,
    workbench,
    workbook,
)
from xietong.apps.services.bundles import BundleInput, MemberInput
from xietong.apps.services.catalogue import MatterInput
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput

router = APIRouter(prefix="/services", tags=["services 一件事一次办"])
# What applicants and clerks call at volume — apply, read an application, approve —
# matched before the app's other routes: FastAPI tries routes one by one, twice per
# request, and approving came after some forty of this app's.
hot_router = APIRouter(prefix="/services", tags=["services 一件事一次办"])
CtxDep = Annotated[Context, Depends(request_ctx)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _actor(action: str) -> Any:
    return Annotated[Actor, Depends(allow(action))]


Reader = _actor("services.catalogue.read")
MatterManager = _actor("services.matter.manage")
BundleManager = _actor("services.bundle.manage")
Applicant = _actor("services.application.submit")
AppReader = _actor("services.application.read")
StaffReader = _actor("services.sub_case.read")
Handler = _actor("services.sub_case.handle")
Rater = _actor("services.rating.give")
Rectifier = _actor("services.rectification.handle")
StatsReader = _actor("services.statistics.read")
Verifier = _actor("services.document.verify")
ExternalSystem = _actor(external.ACTION)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MaterialIn(Strict):
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    required: bool = True


class OutputIn(Strict):
    name: str = Field(max_length=64)
    title: str = Field(default="", max_length=200)
    type: str = Field(default="string", max_length=16)


class MatterIn(Strict):
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    department_code: str = Field(max_length=64)
    matter_type: str = Field(max_length=32)
    promised_days: int
    statutory_days: int
    process_key: str = Field(max_length=200)
    form_schema: dict[str, Any] = Field(default_factory=dict)
    legal_basis: str = Field(default="", max_length=4000)
    materials: list[MaterialIn] = Field(default_factory=list, max_length=100)
    fee: str = Field(default="0", max_length=20)
    outputs: list[OutputIn] = Field(default_factory=list, max_length=50)
    active: bool = True
    external_system_code: str = Field(default="", max_length=64)

    def to_input(self) -> MatterInput:
        data = self.model_dump()
        return MatterInput(**data)


class MatterUpdateIn(MatterIn):
    expected_version: int | None = Field(default=None, ge=1)

    def to_input(self) -> MatterInput:
        data = self.model_dump(exclude={"expected_version"})
        return MatterInput(**data)


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", max_length=64)
    output: str = Field(max_length=64)
    to: str = Field(max_length=64)


class MemberIn(Strict):
    matter_code: str = Field(max_length=64)
    depends_on: list[str] = Field(default_factory=list, max_length=50)
    mappings: list[MappingIn] = Field(default_factory=list, max_length=200)


class BundleIn(Strict):
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    lead_department_code: str = Field(max_length=64)
    region_code: str = Field(max_length=12)
    matters: list[MemberIn] = Field(max_length=50)
    description: str = Field(default="", max_length=4000)
    life_event: str = Field(default="", max_length=64)
    audience: str = Field(default="person", max_length=16)

    def to_input(self) -> BundleInput:
        return BundleInput(
            code=self.code,
            name=self.name,
            lead_department_code=self.lead_department_code,
            region_code=self.region_code,
            description=self.description,
            life_event=self.life_event,
            audience=self.audience,
            matters=[
                MemberInput(
                    m.matter_code,
                    list(m.depends_on),
                    [{"from": x.from_, "output": x.output, "to": x.to} for x in m.mappings],
                )
                for m in self.matters
            ],
        )


class ApplyIn(Strict):
    bundle: str = Field(max_length=64)
    form: dict[str, Any]
    materials: dict[str, str] = Field(default_factory=dict)


class SupplementIn(Strict):
    fields: dict[str, Any] = Field(default_factory=dict)
    materials: dict[str, str] = Field(default_factory=dict)


class ApproveIn(Strict):
    outputs: dict[str, Any] = Field(default_factory=dict)
    opinion: str | None = Field(default=None, max_length=2000)


class RefuseIn(Strict):
    kind: str = Field(max_length=32)
    reason: str = Field(max_length=2000)


class SupplementRequestIn(Strict):
    reason: str = Field(max_length=2000)
    fields: list[str] = Field(default_factory=list, max_length=100)
    materials: list[str] = Field(default_factory=list, max_length=100)


class RatingIn(Strict):
    level: int | str
    comment: str = Field(default="", max_length=1000)


class RateIn(Strict):
    bundle: RatingIn
    departments: dict[int, RatingIn]


class OutcomeIn(Strict):
    outcome: str = Field(max_length=2000)


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: dict[str, Any] | str
    signature: str = Field(max_length=200)


# -- catalogue --


@router.get("/matters")
def search_matters(
    ctx: CtxDep,
    actor: Reader,
    q: str | None = Query(default=None, max_length=200),
    department: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    found = catalogue.search_matters(
        ctx, actor, q, department_code=department, limit=limit, offset=offset
    )
    return {"matters": [asdict(m) for m in found]}


@router.post("/matters", status_code=201)
def create_matter(body: MatterIn, ctx: CtxDep, actor: MatterManager) -> Any:
    return asdict(catalogue.create_matter(ctx, actor, body.to_input()))


@router.get("/matters/export")
def export_matters(ctx: CtxDep, actor: Reader) -> Response:
    return Response(
        workbook.export_matters_xlsx(ctx, actor),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="matters.xlsx"'},
    )


@router.post("/matters/import")
async def import_matters(
    ctx: CtxDep,
    actor: MatterManager,
    file: Annotated[UploadFile, File(description="xlsx with the sheet 事项")],
    dry_run: bool = False,
) -> Any:
    data = await file.read(workbook.MAX_XLSX_BYTES + 1)
    report = workbook.import_matters_xlsx(ctx, actor, data, dry_run=dry_run)
    if report.errors:
        raise InvalidInput(
            f"导入失败：{len(report.errors)} 处错误，未写入任何数据",
            f"Import failed: {len(report.errors)} errors, nothing written",
            code="import_invalid",
            details=asdict(report),
        )
    return {"status": "validated" if dry_run else "imported", **asdict(report)}


@router.get("/matters/{code}")
def get_matter(code: str, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(catalogue.get_matter(ctx, actor, code))


@router.put("/matters/{code}")
def update_matter(code: str, body: MatterUpdateIn, ctx: CtxDep, actor: MatterManager) -> Any:
    view = catalogue.update_matter(
        ctx, actor, code, body.to_input(), expected_version=body.expected_version
    )
    return asdict(view)


@router.delete("/matters/{code}", status_code=204)
def delete_matter(code: str, ctx: CtxDep, actor: MatterManager) -> Response:
    catalogue.delete_matter(ctx, actor, code)
    return Response(status_code=204)


# -- bundles --


@router.get("/bundles")
def list_bundles(
    ctx: CtxDep,
    actor: Reader,
    q: str | None = Query(default=None, max_length=200),
    life_event: str | None = None,
) -> Any:
    return {
        "bundles": [asdict(b) for b in bundles.list_bundles(ctx, actor, q, life_event=life_event)]
    }


@router.put("/bundles/{code}")
def save_bundle(code: str, body: BundleIn, ctx: CtxDep, actor: BundleManager) -> Any:
    if body.code != code:
        raise InvalidInput(
            "路径与正文的编码不一致", "Code in path and body differ", code="code_mismatch"
        )
    return asdict(bundles.save_bundle(ctx, actor, body.to_input()))


@router.post("/bundles/{code}/publish")
def publish_bundle(code: str, ctx: CtxDep, actor: BundleManager) -> Any:
    return asdict(bundles.publish_bundle(ctx, actor, code))


@router.post("/bundles/{code}/withdraw")
def withdraw_bundle(code: str, ctx: CtxDep, actor: BundleManager) -> Any:
    return asdict(bundles.withdraw_bundle(ctx, actor, code))


@router.get("/bundles/{code}")
def get_bundle(code: str, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(bundles.get_bundle(ctx, actor, code))


# -- applying --


@router.post("/uploads", status_code=201)
async def upload(
    ctx: CtxDep, actor: Applicant, file: Annotated[UploadFile, File(description="pdf/jpg/png/ofd")]
) -> Any:
    data = await file.read(files.MAX_BYTES + 1)
    return asdict(await run_in_threadpool(files.upload, ctx, actor, file.filename or "", data))


@hot_router.post("/applications", status_code=201)
def submit(
    body: ApplyIn,
    ctx: CtxDep,
    actor: Applicant,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> Any:
    view = applications.submit(
        ctx, actor, body.bundle, body.form, body.materials, idempotency_key or ""
    )
    if not view.created:
        response.status_code = 200
    return view  # serialised as asdict(view) would be, without the deep copy


@router.get("/applications")
def my_applications(ctx: CtxDep, actor: AppReader) -> Any:
    return {"applications": applications.my_applications(ctx, actor)}


@hot_router.get("/applications/{number}")
def get_application(number: str, ctx: CtxDep, actor: AppReader) -> Any:
    return applications.get_application(ctx, actor, number)


@router.post("/applications/{number}/sub-cases/{sub_case_id}/supplement")
def supplement(
    number: str, sub_case_id: int, body: SupplementIn, ctx: CtxDep, actor: Applicant
) -> Any:
    return asdict(
        applications.supplement(ctx, actor, number, sub_case_id, body.fields, body.materials)
    )


@router.post("/applications/{number}/rating")
def rate(number: str, body: RateIn, ctx: CtxDep, actor: Rater) -> Any:
    view = ratings.rate(
        ctx,
        actor,
        number,
        bundle=body.bundle.model_dump(),
        departments={k: v.model_dump() for k, v in body.departments.items()},
    )
    return asdict(view)


# -- workbench --


@router.get("/workbench/todo")
def todo(ctx: CtxDep, actor: StaffReader) -> Any:
    return {"items": workbench.work_list(ctx, actor)}


@router.get("/workbench/done")
def done(ctx: CtxDep, actor: StaffReader) -> Any:
    return {"items": workbench.work_list(ctx, actor, done=True)}


@router.get("/sub-cases/{sub_case_id}")
def get_sub_case(sub_case_id: int, ctx: CtxDep, actor: StaffReader) -> Any:
    return workbench.get_sub_case(ctx, actor, sub_case_id)


@router.get("/sub-cases/{sub_case_id}/materials/{code}")
def sub_case_material(sub_case_id: int, code: str, ctx: CtxDep, actor: StaffReader) -> Response:
    data, media_type, _name = workbench.material_bytes(ctx, actor, sub_case_id, code)
    return Response(data, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})


@hot_router.post("/sub-cases/{sub_case_id}/approve")
def approve(sub_case_id: int, body: ApproveIn, ctx: CtxDep, actor: Handler) -> Any:
    workbench.approve(ctx, actor, sub_case_id, outputs=body.outputs, opinion=body.opinion)
    return workbench.get_sub_case(ctx, actor, sub_case_id)


@router.post("/sub-cases/{sub_case_id}/refuse")
def refuse(sub_case_id: int, body: RefuseIn, ctx: CtxDep, actor: Handler) -> Any:
    workbench.refuse(ctx, actor, sub_case_id, kind=body.kind, reason=body.reason)
    return workbench.get_sub_case(ctx, actor, sub_case_id)


@router.post("/sub-cases/{sub_case_id}/supplement-request")
def request_supplement(
    sub_case_id: int, body: SupplementRequestIn, ctx: CtxDep, actor: Handler
) -> Any:
    workbench.request_supplement(
        ctx, actor, sub_case_id, reason=body.reason, fields=body.fields, materials=body.materials
    )
    return workbench.get_sub_case(ctx, actor, sub_case_id)


class ExternalAnswerIn(Strict):
    reference: str = Field(max_length=200)
    outputs: dict[str, Any] = Field(default_factory=dict)
    refused: bool = False
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/external-answers")
def external_answer(body: ExternalAnswerIn, ctx: CtxDep, actor: ExternalSystem) -> Any:
    """An external system (X-API-Key of a connected system) answers for its matter."""
    return asdict(
        external.answer(
            ctx,
            actor,
            body.reference,
            outputs=body.outputs,
            refused=body.refused,
            reason=body.reason,
        )
    )


# -- 好差评 follow-up and statistics --


@router.get("/rectifications")
def list_rectifications(ctx: CtxDep, actor: Rectifier, status: str | None = None) -> Any:
    return {"items": [asdict(r) for r in ratings.list_rectifications(ctx, actor, status=status)]}


@router.post("/rectifications/{rectification_id}/complete")
def complete_rectification(
    rectification_id: int, body: OutcomeIn, ctx: CtxDep, actor: Rectifier
) -> Any:
    return asdict(ratings.complete_rectification(ctx, actor, rectification_id, body.outcome))


@router.get("/statistics/departments")
def statistics(ctx: CtxDep, actor: StatsReader) -> Any:
    return {"departments": [asdict(s) for s in ratings.department_statistics(ctx, actor)]}


# -- anyone: the public key and verification --


@router.get("/public-key")
def public_key(ctx: CtxDep, actor: Verifier) -> Any:
    return asdict(results.public_key(ctx))


@router.post("/documents/verify")
def verify(body: VerifyIn, ctx: CtxDep, actor: Verifier) -> Any:
    return asdict(results.verify(ctx, body.content, body.signature))
