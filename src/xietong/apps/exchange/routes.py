"""Catalogue API under /api/v1/exchange: entries, search, the workbook, the DCAT-AP export.

Routes parse and render only; each calls one service function, which checks the
provider's department itself (a data steward manages only their own department's
resources). Resources are addressed by their code, which contains one "/"
(``101001/000001``), hence the ``{code:path}`` parameters.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from xietong.api.deps import allow, get_ctx
from xietong.apps.exchange import dcat, importer, queries, service
from xietong.apps.exchange.rules import CategoryLevel, ItemInput, ResourceInput
from xietong.kernel.access import Actor
from xietong.kernel.context import Context
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workbook import MAX_BYTES

router = APIRouter(prefix="/exchange", tags=["exchange 数据共享交换"])
CtxDep = Annotated[Context, Depends(get_ctx)]
Reader = Annotated[Actor, Depends(allow("exchange.catalogue.read"))]
Manager = Annotated[Actor, Depends(allow("exchange.resource.manage"))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_XLSX_BYTES = MAX_BYTES  # read one byte more, so the kernel refuses a larger file


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LevelIn(Strict):
    code: str = Field(max_length=16)
    name: str = Field(default="", max_length=100)


class ItemIn(Strict):
    name: str = Field(max_length=100)
    data_type: str = Field(max_length=16)
    classification: str = Field(max_length=16)
    description: str = Field(default="", max_length=500)


class ResourceIn(Strict):
    """Enumerations by code name: share_type unconditional/conditional/not_shared …"""

    name: str = Field(max_length=200)
    category: list[LevelIn] = Field(min_length=3, max_length=4)
    provider_code: str = Field(max_length=64)
    summary: str = Field(max_length=4000)
    format: str = Field(max_length=32)
    format_detail: str | None = Field(default=None, max_length=32)
    items: list[ItemIn] = Field(default_factory=list, max_length=500)
    share_type: str = Field(max_length=16)
    share_conditions: str | None = Field(default=None, max_length=2000)
    not_shared_basis: str | None = Field(default=None, max_length=2000)
    share_methods: list[str] = Field(default_factory=list, max_length=3)
    open_type: str = Field(default="not_open", max_length=24)
    open_conditions: str | None = Field(default=None, max_length=2000)
    update_cycle: str = Field(max_length=16)
    publish_date: date | None = None
    related_codes: list[str] = Field(default_factory=list, max_length=50)
    code: str | None = Field(default=None, max_length=32)

    def to_input(self) -> ResourceInput:
        return ResourceInput(
            name=self.name,
            category=tuple(CategoryLevel(level.code, level.name) for level in self.category),
            provider_code=self.provider_code,
            summary=self.summary,
            format=self.format,
            format_detail=self.format_detail,
            items=tuple(
                ItemInput(i.name, i.data_type, i.classification, i.description) for i in self.items
            ),
            share_type=self.share_type,
            share_conditions=self.share_conditions,
            not_shared_basis=self.not_shared_basis,
            share_methods=tuple(self.share_methods),
            open_type=self.open_type,
            open_conditions=self.open_conditions,
            update_cycle=self.update_cycle,
            publish_date=self.publish_date,
            related_codes=tuple(self.related_codes),
            code=self.code,
        )


class ResourceUpdateIn(ResourceIn):
    expected_version: int | None = Field(default=None, ge=1)


class WithdrawIn(Strict):
    reason: str = Field(max_length=500)


def _query(
    q: str | None = None,
    code: str | None = None,
    provider: str | None = None,
    category: str | None = None,
    share_type: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> queries.ResourceQuery:
    return queries.ResourceQuery(q, code, provider, category, share_type, status, limit, offset)


@router.get("/resources")
def search_resources(
    ctx: CtxDep,
    actor: Reader,
    q: str | None = None,
    code: str | None = None,
    provider: str | None = None,
    category: str | None = None,
    share_type: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    query = _query(q, code, provider, category, share_type, status, limit, offset)
    return asdict(queries.search_resources(ctx, actor, query))


@router.post("/resources", status_code=201)
def create_resource(body: ResourceIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.create_resource(ctx, actor, body.to_input()))


@router.post("/import")
async def import_workbook(
    ctx: CtxDep,
    actor: Manager,
    file: Annotated[UploadFile, File(description="xlsx with sheets 资源 and 信息项")],
    publish: bool = False,
    dry_run: bool = False,
) -> Any:
    data = await file.read(MAX_XLSX_BYTES + 1)
    report = importer.import_catalogue_xlsx(ctx, actor, data, publish=publish, dry_run=dry_run)
    if report.errors:
        raise InvalidInput(
            f"导入失败：{len(report.errors)} 处错误，未写入任何数据",
            f"Import failed: {len(report.errors)} errors, nothing written",
            code="import_invalid",
            details=asdict(report),
        )
    return {"status": "validated" if dry_run else "imported", **asdict(report)}


@router.get("/import/template")
def import_template(actor: Reader) -> Response:
    return Response(
        importer.catalogue_template_xlsx(),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="catalogue-template.xlsx"'},
    )


@router.get("/export")
def export_workbook(
    ctx: CtxDep,
    actor: Reader,
    q: str | None = None,
    provider: str | None = None,
    category: str | None = None,
    share_type: str | None = None,
    status: str | None = None,
) -> Response:
    query = _query(q, None, provider, category, share_type, status)
    return Response(
        importer.export_catalogue_xlsx(ctx, actor, query),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="catalogue.xlsx"'},
    )


@router.get("/catalog.ttl")
def catalog_turtle(request: Request, ctx: CtxDep, actor: Reader) -> Response:
    graph = dcat.build_catalog(ctx, actor, str(request.base_url))
    return Response(dcat.to_turtle(graph), media_type="text/turtle; charset=utf-8")


@router.get("/catalog.jsonld")
def catalog_jsonld(request: Request, ctx: CtxDep, actor: Reader) -> Response:
    graph = dcat.build_catalog(ctx, actor, str(request.base_url))
    return Response(dcat.to_jsonld(graph), media_type="application/ld+json")


# The code-addressed routes come last: ``{code:path}`` would otherwise swallow the
# fixed paths above.


@router.post("/resources/{code:path}/publish")
def publish_resource(code: str, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.publish_resource(ctx, actor, code))


@router.post("/resources/{code:path}/withdraw")
def withdraw_resource(code: str, body: WithdrawIn, ctx: CtxDep, actor: Manager) -> Any:
    return asdict(service.withdraw_resource(ctx, actor, code, body.reason))


@router.get("/resources/{code:path}")
def get_resource(code: str, ctx: CtxDep, actor: Reader) -> Any:
    return asdict(queries.get_resource(ctx, actor, code))


@router.put("/resources/{code:path}")
def update_resource(code: str, body: ResourceUpdateIn, ctx: CtxDep, actor: Manager) -> Any:
    view = service.update_resource(
        ctx, actor, code, body.to_input(), expected_version=body.expected_version
    )
    return asdict(view)


@router.delete("/resources/{code:path}", status_code=204)
def delete_resource(code: str, ctx: CtxDep, actor: Manager) -> Response:
    service.delete_resource(ctx, actor, code)
    return Response(status_code=204)
